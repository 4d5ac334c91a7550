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


def test_encode_without_model_trains_into_the_store_as_the_default(workdir, tmp_path):
    """Issue 18, item 10: one rule for every pipeline. A model vae-encode trains without an explicit
    model path goes into the store and becomes the default VAE model (it used to land in
    OUTPUT.model/ beside the output, so `gengen models` showed no VAE and the docs' `vae-features
    --data ... --by` line failed with "no default VAE model yet")."""
    out = tmp_path / "fresh.h5ad"
    r = run("vae-encode", workdir / "expr.h5ad", "-o", out, *TRAIN[:-1])
    assert r.exit_code == 0, r.output
    home = tmp_path / "gengen_home" / "models"
    assert (home / "expr-vae" / "model.safetensors").is_file() and not (tmp_path / "fresh.model").exists()
    assert "saved in the model store as 'expr-vae'; it is now the default VAE model" in r.stderr
    assert r.stdout.splitlines() == [str(out), str(home / "expr-vae")]
    a = ad.read_h5ad(out)
    assert a.uns["gengen"]["trained_on_input"] and a.uns["gengen"]["model_path"] == str(home / "expr-vae")
    assert a.uns["gengen"]["input_file"] == str(workdir / "expr.h5ad")
    listed = run("models", "list", "--pipeline", "vae")
    assert listed.exit_code == 0 and "expr-vae  vae*" in listed.stdout, listed.stdout
    r = run("vae-features", "-o", tmp_path / "feat", "--data", workdir / "expr.h5ad", "--by", "group")  # docs/vae.md
    assert r.exit_code == 0 and "model: expr-vae (the default VAE model" in r.stderr, r.output
    r = run("vae-encode", workdir / "expr.h5ad", "-o", tmp_path / "kept.h5ad", "--save-model", tmp_path / "kept", *TRAIN)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "kept" / "model.safetensors").is_file() and sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == ["expr-vae"]
    assert_clean_error(run("vae-encode", workdir / "expr.h5ad", "-m", workdir / "model", "--save-model", tmp_path / "x"),
                       "nothing is trained")


def test_encode_h5ad_has_what_scanpy_users_look_for(workdir, tmp_path):
    """Issue 18, item 15: var['vae_used'], varm['vae_loadings'] (genes x k, NaN for genes the model does
    not read), layers['vae_reconstructed'] on request, input file and model path in uns['gengen']."""
    from gengen.vae import VAEModel

    a = ad.read_h5ad(workdir / "expr.h5ad")
    a = ad.concat([a, ad.AnnData(np.ones((a.n_obs, 1), np.float32), obs=a.obs[[]], var=pd.DataFrame(index=["EXTRA"]))],
                  axis=1, merge="first")
    a.obs["group"] = ad.read_h5ad(workdir / "expr.h5ad").obs["group"]
    a.write_h5ad(tmp_path / "plus.h5ad")
    r = run("vae-encode", tmp_path / "plus.h5ad", "-m", workdir / "model", "-o", tmp_path / "e.h5ad", "--reconstruct", "-q")
    assert r.exit_code == 0, r.output
    e = ad.read_h5ad(tmp_path / "e.h5ad")
    m = VAEModel.load(workdir / "model", device="cpu")
    assert e.var["vae_used"].tolist() == [True] * 60 + [False]
    loadings = e.varm["vae_loadings"]
    assert loadings.shape == (61, 3) and np.isnan(loadings[60]).all()
    np.testing.assert_allclose(loadings[:60], m.decoder_weights().to_numpy().T, rtol=1e-6)
    rec = e.layers["vae_reconstructed"]
    np.testing.assert_allclose(rec[:, :60], m.decode(e.obsm["X_vae"]), rtol=1e-5, atol=1e-5)
    assert np.isnan(rec[:, 60]).all()
    assert abs(np.nanmean(rec) - e.X[:, :60].mean()) < 0.5  # in the input's units (toy data centred at 6)
    assert e.uns["gengen"]["model_path"] == str(workdir / "model")
    assert e.uns["gengen"]["input_file"] == str(tmp_path / "plus.h5ad")
    assert_clean_error(run("vae-encode", tmp_path / "plus.h5ad", "-m", workdir / "model", "-o", tmp_path / "e.csv",
                           "--reconstruct"), "--reconstruct adds a layer to an h5ad output")


def test_encode_labels_joined_into_obs_and_by_reported(workdir, tmp_path):
    """Issue 18, item 14: a TSV input gave an h5ad with nothing to colour by; --labels joins a clinical
    table into obs, --by reports how well the embedding separates that label."""
    a = ad.read_h5ad(workdir / "expr.h5ad")
    a.to_df().to_csv(tmp_path / "x.tsv", sep="\t")
    clinical = a.obs[["group"]].assign(stage=["I", "II"] * 60).iloc[::-1]
    clinical.to_csv(tmp_path / "clinical.tsv", sep="\t")
    r = run("vae-encode", tmp_path / "x.tsv", "-m", workdir / "model", "-o", tmp_path / "e.h5ad",
            "--labels", tmp_path / "clinical.tsv", "--by", "group")
    assert r.exit_code == 0, r.output
    e = ad.read_h5ad(tmp_path / "e.h5ad")
    assert e.obs["group"].tolist() == a.obs["group"].tolist() and e.obs["stage"].tolist() == ["I", "II"] * 60
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("group: kNN accuracy"))
    assert float(line.split("embedding ")[1].split()[0]) > 0.8, line  # three well separated groups
    assert_clean_error(run("vae-encode", tmp_path / "x.tsv", "-m", workdir / "model", "-o", tmp_path / "f.h5ad",
                           "--labels", tmp_path / "clinical.tsv", "--by", "grade"), "no column 'grade'")
    assert_clean_error(run("vae-encode", tmp_path / "x.tsv", "-m", workdir / "model", "-o", tmp_path / "f.csv",
                           "--labels", tmp_path / "clinical.tsv"), "--labels joins annotations into an h5ad")
    assert not (tmp_path / "f.h5ad").exists() and not (tmp_path / "f.csv").exists()


def test_feature_panels_name_each_class_in_full_or_distinctly(workdir, tmp_path, monkeypatch):
    """Issue 18, item 14: the tick label cut every class to 14 characters ('steroid-phenot' for every
    steroid-phenotype-* class); the class is now the panel title, wrapped, and never twice the same."""
    from gengen.vae import features

    names = ["steroid-phenotype-high", "steroid-phenotype-low", "steroid-phenotype-intermediate-and-more-x",
             "steroid-phenotype-intermediate-and-more-y"]
    titles = features.panel_titles(names)
    assert titles[:2] == names[:2] and len(set(titles)) == 4
    assert all(len(t.splitlines()) <= 2 and max(map(len, t.splitlines())) <= 24 for t in titles), titles
    assert titles[2].endswith("more-x") and titles[3].endswith("more-y")
    seen = {}

    def capture(fig, path):
        seen["titles"] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return path

    monkeypatch.setattr("gengen.plots.save_figure", capture)
    labels = np.repeat(names, 30)
    z = np.random.default_rng(0).standard_normal((120, 3))
    table = features.separating_features(z, labels)
    features.plot_separating_features(z, labels, table, path=tmp_path / "p.png", label_name="phenotype")
    assert [t.split("\nvae_")[0] for t in seen["titles"]] == features.panel_titles(table["class"])
    assert len(set(seen["titles"])) == 4


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


def test_features_folder_reused_holds_only_the_new_runs_files(workdir, tmp_path):
    """Issue 18 item 14: `vae-features -o feat` run again (another model, no --by) kept the first run's
    separating_group.* beside the new top_genes.tsv. Only files gengen listed go; the user's stay."""
    feat = tmp_path / "feat"
    r = run("vae-features", "-m", workdir / "model", "-o", feat, "--data", workdir / "expr.h5ad", "--by", "group", "-q")
    assert r.exit_code == 0, r.output
    assert (feat / "separating_group.png").is_file()
    (feat / "notes.txt").write_text("mine\n")
    keep = tmp_path / "keep.txt"
    keep.write_text("keep\n")
    r = run("vae-features", "-m", workdir / "model", "-o", feat, "--top", 3, "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in feat.iterdir()) == [".gengen-outputs.json", "notes.txt", "top_genes.tsv"]
    assert len(pd.read_csv(feat / "top_genes.tsv", sep="\t")) == 3 * 2 * 3
    # a link planted at a name the list holds is not followed nor removed: only regular files are tidied
    (feat / ".gengen-outputs.json").write_text('["top_genes.tsv", "gone.tsv", "../keep.txt"]')
    (feat / "gone.tsv").symlink_to(keep)
    r = run("vae-features", "-m", workdir / "model", "-o", feat, "-q")
    assert r.exit_code == 0, r.output
    assert (feat / "gone.tsv").is_symlink() and keep.read_text() == "keep\n"


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
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "gengen_home") == ["bad.csv"]
    store = tmp_path / "gengen_home" / "models"
    assert not store.exists() or not any(store.iterdir())  # the store folder claimed for the model is released


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
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir() if p.name != "gengen_home") == ["good.csv"]
    assert not any((tmp_path / "gengen_home" / "models").iterdir())  # the claimed store folder is released


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
