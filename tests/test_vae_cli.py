"""The VAE commands through Typer's CliRunner: outputs, provenance, and one-line errors on bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gengen.cli import app

runner = CliRunner()
TRAIN = ["--latent", "3", "--epochs", "8", "--batch-size", "20", "--device", "cpu", "-q"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, pattern: str):
    """Exit 2, one line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    err = result.stderr if hasattr(result, "stderr") else result.output
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gengen: error:"), err
    assert pytest.importorskip("re").search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from conftest import make_toy_expression

    d = tmp_path_factory.mktemp("vae_cli")
    a = make_toy_expression()
    a.write_h5ad(d / "expr.h5ad")
    a.to_df().to_csv(d / "expr.csv")
    r = run("vae-train", d / "expr.h5ad", "-o", d / "model", *TRAIN)
    assert r.exit_code == 0, r.output
    return d


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("vae-train", "vae-encode", "vae-decode", "vae-sample", "vae-features", "vae-compare", "demo"):
        assert cmd in r.output


def test_train_writes_checkpoint(workdir):
    cfg = json.loads((workdir / "model" / "config.json").read_text())
    assert cfg["pipeline"] == "vae" and cfg["seed"] == 0 and len(cfg["genes"]) == 60
    assert {"train_recon", "train_kl", "val_recon", "device"} <= set(cfg["metrics"])
    hist = pd.read_csv(workdir / "model" / "history.csv")
    assert len(hist) == 8 and {"train_recon", "train_kl", "val_recon", "val_kl"} <= set(hist.columns)
    assert (workdir / "model" / "training.png").stat().st_size > 1000


def test_encode_with_model_to_h5ad_and_csv(workdir):
    out = workdir / "emb.h5ad"
    r = run("vae-encode", workdir / "expr.h5ad", "--model", workdir / "model", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    a = ad.read_h5ad(out)
    assert a.obsm["X_vae"].shape == (120, 3) and "group" in a.obs
    assert a.uns["gengen"]["pipeline"] == "vae" and a.uns["gengen"]["seed"] == 0
    r = run("vae-encode", workdir / "expr.csv", "-m", workdir / "model", "-o", workdir / "emb.csv", "-q")
    assert r.exit_code == 0, r.output
    t = pd.read_csv(workdir / "emb.csv", index_col=0)
    np.testing.assert_allclose(t.to_numpy(), a.obsm["X_vae"], rtol=1e-5, atol=1e-6)
    assert list(t.columns) == ["vae_1", "vae_2", "vae_3"]


def test_encode_without_model_trains_and_saves(workdir):
    out = workdir / "fresh.h5ad"
    r = run("vae-encode", workdir / "expr.h5ad", "-o", out, *TRAIN)
    assert r.exit_code == 0, r.output
    assert (workdir / "fresh.model" / "model.safetensors").is_file()
    a = ad.read_h5ad(out)
    assert a.uns["gengen"]["trained_on_input"] and a.uns["gengen"]["model_path"].endswith("fresh.model")


def test_decode_and_sample(workdir):
    pd.DataFrame(np.zeros((4, 3)), index=list("abcd"), columns=["z1", "z2", "z3"]).to_csv(workdir / "lat.csv")
    r = run("vae-decode", workdir / "lat.csv", "-m", workdir / "model", "-o", workdir / "dec.csv", "-q")
    assert r.exit_code == 0, r.output
    dec = pd.read_csv(workdir / "dec.csv", index_col=0)
    assert dec.shape == (4, 60) and list(dec.index) == list("abcd")
    assert 0 < dec.to_numpy().mean() < 15  # original units (toy data are centred at 6)
    r = run("vae-sample", "-m", workdir / "model", "-n", 7, "-o", workdir / "s.h5ad", "-q")
    assert r.exit_code == 0, r.output
    assert ad.read_h5ad(workdir / "s.h5ad").shape == (7, 60)


def test_features_and_separation(workdir):
    r = run("vae-features", "-m", workdir / "model", "-o", workdir / "feat", "--top", 5,
            "--data", workdir / "expr.h5ad", "--by", "group", "-q")
    assert r.exit_code == 0, r.output
    top = pd.read_csv(workdir / "feat" / "top_genes.tsv", sep="\t")
    assert len(top) == 3 * 2 * 5
    sep = pd.read_csv(workdir / "feat" / "separating_group.tsv", sep="\t")
    assert set(sep["class"]) == {"a", "b", "c"} and sep["auroc"].between(0.5, 1).all()
    assert (workdir / "feat" / "separating_group.png").is_file()


def test_compare_prints_table(workdir):
    r = run("vae-compare", workdir / "expr.h5ad", "--by", "group", *TRAIN)
    assert r.exit_code == 0, r.output
    methods = [line.split()[0] for line in r.stdout.splitlines()[2:]]
    assert methods == ["vae", "pca", "pca-all", "nmf", "input"], r.stdout
    assert r.stdout.startswith("# tybalt recipe") and "pca-all: PCA of the whole matrix" in r.stdout


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("", "empty"),
        ("sample,G1,G2\ns1,1,nan\ns2,2,3\n", "missing or infinite"),
        ("sample,G1,G2\ns1,1,inf\ns2,2,3\n", "missing or infinite"),
        ("sample,G1,G2\ns1,1,abc\ns2,2,3\n", "non-numeric"),
        ("sample,G1,G1\ns1,1,2\ns2,2,3\n", "duplicate gene"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(tmp_path, content, pattern):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    out = tmp_path / "out.h5ad"
    r = run("vae-encode", src, "-o", out, *TRAIN)
    assert_clean_error(r, pattern)
    assert not out.exists() and not (tmp_path / "out.model").exists()
    assert src.read_text() == content  # input untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_unknown_format_and_wrong_gene_set(workdir, tmp_path):
    (tmp_path / "x.xlsx").write_text("junk")
    assert_clean_error(run("vae-encode", tmp_path / "x.xlsx", *TRAIN), "Excel workbook")
    other = pd.DataFrame(np.ones((5, 4)), index=[f"s{i}" for i in range(5)], columns=["Q1", "Q2", "Q3", "Q4"])
    other.to_csv(tmp_path / "other.csv")
    out = tmp_path / "o.h5ad"
    assert_clean_error(run("vae-encode", tmp_path / "other.csv", "-m", workdir / "model", "-o", out), "none of the model")
    assert not out.exists()
    part = ad.read_h5ad(workdir / "expr.h5ad")[:, 5:].copy()
    part.write_h5ad(tmp_path / "part.h5ad")
    assert_clean_error(run("vae-encode", tmp_path / "part.h5ad", "-m", workdir / "model", "-o", out), "missing from the data")
    r = run("vae-encode", tmp_path / "part.h5ad", "-m", workdir / "model", "-o", out, "--fill-missing", "-q")
    assert r.exit_code == 0 and out.exists()


def test_corrupted_config_and_foreign_model(workdir, tmp_path):
    import shutil

    bad = tmp_path / "bad_model"
    shutil.copytree(workdir / "model", bad)
    (bad / "config.json").write_text('{"format_version": 1, "pipeline": "vae", "genes": [')
    out = tmp_path / "o.h5ad"
    assert_clean_error(run("vae-encode", workdir / "expr.h5ad", "-m", bad, "-o", out), "not valid JSON")
    cfg = json.loads((workdir / "model" / "config.json").read_text())
    cfg["genes"] = cfg["genes"][:10]
    (bad / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(run("vae-encode", workdir / "expr.h5ad", "-m", bad, "-o", out), "inconsistent")
    cfg = json.loads((workdir / "model" / "config.json").read_text())
    cfg["pipeline"] = "ggan"
    (bad / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(run("vae-encode", workdir / "expr.h5ad", "-m", bad, "-o", out), "is a 'ggan' model")
    assert not out.exists()


def test_refuses_to_overwrite_input(workdir):
    before = (workdir / "expr.csv").read_bytes()
    r = run("vae-encode", workdir / "expr.csv", "-m", workdir / "model", "-o", workdir / "expr.csv")
    assert_clean_error(r, "refusing to overwrite")
    assert (workdir / "expr.csv").read_bytes() == before


def test_labels_from_annotation_table_for_csv_input(workdir, tmp_path):
    """CSV/Xena inputs have no obs: --labels joins a clinical table by sample id."""
    a = ad.read_h5ad(workdir / "expr.h5ad")
    a.obs[["group"]].iloc[::-1].to_csv(tmp_path / "clinical.tsv", sep="\t")  # order does not matter
    r = run("vae-features", "-m", workdir / "model", "-o", tmp_path / "f", "--data", workdir / "expr.csv",
            "--by", "group", "--labels", tmp_path / "clinical.tsv", "-q")
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(tmp_path / "f" / "separating_group.tsv", sep="\t")["class"]) == {"a", "b", "c"}
    pd.DataFrame({"x": [1]}, index=["nobody"]).to_csv(tmp_path / "wrong.csv")
    assert_clean_error(run("vae-features", "-m", workdir / "model", "-o", tmp_path / "g", "--data", workdir / "expr.csv",
                           "--by", "x", "--labels", tmp_path / "wrong.csv"), "no sample of the data")
    assert not (tmp_path / "g").exists()


def test_encode_refuses_input_as_output_before_training(workdir, tmp_path):
    import shutil

    src = tmp_path / "good.csv"
    shutil.copy(workdir / "expr.csv", src)
    before = src.read_bytes()
    r = run("vae-encode", src, "-o", src, *TRAIN)
    assert_clean_error(r, "refusing to overwrite")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["good.csv"]


@pytest.mark.parametrize("args", [["vae-encode", "--latent", "abc", "x.csv"], ["vae-train", "--bogus"], ["no-such-command"]])
def test_usage_mistakes_are_one_line_too(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gengen: error:"), r.output


def test_bad_output_or_options_are_refused_before_any_training(workdir, tmp_path):
    r = run("vae-encode", workdir / "expr.h5ad", "-o", tmp_path / "out.gct", *TRAIN)
    assert_clean_error(r, "GCT")
    assert not any(tmp_path.iterdir())  # no model saved before the refusal
    r = run("vae-encode", workdir / "expr.h5ad", "-o", tmp_path / "out.xlsx", *TRAIN)
    assert_clean_error(r, r"\.h5ad, \.csv, \.tsv or \.parquet")
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    r = run("vae-train", workdir / "expr.h5ad", "-o", user, *TRAIN)
    assert_clean_error(r, "not a gengen model")
    r = run("vae-train", workdir / "expr.h5ad", "-o", tmp_path / "m", "--gene-rank", "foo")
    assert_clean_error(r, "gene-rank")
    r = run("vae-compare", workdir / "expr.h5ad", "-o", tmp_path / "c.gct", *TRAIN)
    assert_clean_error(r, "GCT")
    r = run("vae-encode", workdir / "expr.h5ad", "-o", tmp_path / "e.h5ad", "--regime", "tiny", *TRAIN)
    assert_clean_error(r, "--regime must be one of auto, tybalt, small")
    r = run("vae-train", workdir / "expr.h5ad", "-o", tmp_path / "m", "--tybalt-compat", "--regime", "small", *TRAIN)
    assert_clean_error(r, "tybalt-compat")
    assert not (tmp_path / "e.h5ad").exists() and not (tmp_path / "m").exists()
