"""GGAN command line: train -> infer -> eval, and bad input -> one clear line, exit 2, no output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app

runner = CliRunner()
FAST = ["--hidden", "32", "--epochs", "20", "--batch-size", "64", "--d-hidden", "16", "--device", "cpu", "-q"]


def _data(n=160, n_l=8, n_t=10, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_l))
    Y = 5 + np.tanh(X @ rng.standard_normal((n_l, n_t)) / 2) + 0.05 * rng.standard_normal((n, n_t))
    cols = [f"LM{i}" for i in range(n_l)] + [f"TG{j}" for j in range(n_t)]
    return pd.DataFrame(np.c_[X + 7, Y], index=[f"sample_{i}" for i in range(n)], columns=cols)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ggan_cli")
    df = _data()
    df.to_csv(d / "ref.csv")
    (d / "landmarks.txt").write_text("\n".join(df.columns[:8]) + "\n")
    df.iloc[:20, :8].to_csv(d / "query.csv")
    res = runner.invoke(
        app,
        [
            "ggan-train",
            str(d / "ref.csv"),
            "--landmarks",
            str(d / "landmarks.txt"),
            "-o",
            str(d / "model"),
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    return d


def test_train_writes_checkpoint(workdir):
    names = {p.name for p in (workdir / "model").iterdir()}
    assert {"config.json", "model.safetensors", "history.csv", "training.png"} <= names


def test_infer_targets_csv_and_h5ad(workdir):
    import anndata as ad

    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "query.csv"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "pred.csv"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(workdir / "pred.csv", index_col=0)
    assert pred.shape == (20, 10) and list(pred.columns) == [f"TG{j}" for j in range(10)]
    assert abs(pred.to_numpy().mean() - 5) < 1  # back in the reference's units
    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "query.csv"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "pred.h5ad"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    a = ad.read_h5ad(workdir / "pred.h5ad")
    assert a.shape == (20, 10) and a.uns["gengen"]["pipeline"] == "ggan"


def test_infer_gct_genes_in_rows(workdir):
    q = pd.read_csv(workdir / "query.csv", index_col=0).T
    lines = ["#1.3", f"{q.shape[0]}\t{q.shape[1]}\t1\t0", "id\tpr_gene_symbol\t" + "\t".join(q.columns)]
    lines += [
        f"{i}_at\t{g}\t" + "\t".join(f"{v:.5f}" for v in row) for i, (g, row) in enumerate(q.iterrows())
    ]
    (workdir / "plate.gct").write_text("\n".join(lines) + "\n")
    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "plate.gct"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "plate.tsv"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "pr_gene_symbol" in res.output
    assert pd.read_csv(workdir / "plate.tsv", sep="\t", index_col=0).shape == (20, 10)


def test_fill_missing_warns(workdir):
    pd.read_csv(workdir / "query.csv", index_col=0).drop(columns=["LM3"]).to_csv(workdir / "q7.csv")
    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "q7.csv"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "q7_pred.csv"),
        ],
    )
    assert_one_line_error(res, "LM3", "--fill-missing")
    assert not (workdir / "q7_pred.csv").exists()
    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "q7.csv"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "q7_pred.csv"),
            "--fill-missing",
        ],
    )
    assert res.exit_code == 0 and "filled 1 of 8" in res.output


def test_eval_prints_table(workdir):
    out = workdir / "eval"
    res = runner.invoke(
        app,
        [
            "ggan-eval",
            str(workdir / "ref.csv"),
            "--landmarks",
            str(workdir / "landmarks.txt"),
            "--folds",
            "3",
            "-o",
            str(out),
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    for label in (
        "GGAN",
        "D-GEX",
        "linear (LS)",
        "ridge (LR-L2)",
        "lasso (LR-L1)",
        "KNN-GE",
        "mean predictor",
    ):
        assert label in res.output
    per_gene = pd.read_csv(out / "ggan_eval_per_gene.tsv", sep="\t")
    assert len(per_gene) == 7 * 10
    assert (out / "ggan_eval.png").stat().st_size > 0


@pytest.mark.parametrize("case", ["non-numeric", "nan", "duplicate", "no-landmarks"])
def test_bad_query(workdir, case):
    q = pd.read_csv(workdir / "query.csv", index_col=0)
    needle = {
        "non-numeric": "non-numeric",
        "nan": "missing",
        "duplicate": "duplicate",
        "no-landmarks": "none of",
    }[case]
    if case == "non-numeric":
        q = q.astype(object)
        q.iloc[15, 2] = "high"
    elif case == "nan":
        q.iloc[15, 2] = np.nan
    elif case == "duplicate":
        q.columns = ["LM0"] + list(q.columns[1:-1]) + ["LM0"]
    else:
        q.columns = [f"other{i}" for i in range(q.shape[1])]
    src, dst = workdir / f"bad_{case}.csv", workdir / f"bad_{case}_pred.csv"
    q.to_csv(src)
    res = runner.invoke(
        app,
        ["infer-targets", str(src), "--model", str(workdir / "model"), "-o", str(dst), "--chunk-size", "10"],
    )
    assert_one_line_error(res, needle)
    assert not dst.exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(f".bad_{case}_pred")]  # no temp left over


@pytest.mark.parametrize("case", ["non-numeric", "nan", "duplicate"])
def test_bad_reference(workdir, case):
    df = _data(n=30)
    if case == "non-numeric":
        df = df.astype(object)
        df.iloc[3, 9] = "n/a?"
    elif case == "nan":
        df.iloc[3, 9] = np.nan
    ref = workdir / f"ref_{case}.h5ad"
    import anndata as ad

    a = ad.AnnData(
        df.astype(float).to_numpy() if case != "non-numeric" else np.zeros(df.shape),
        obs=pd.DataFrame(index=df.index),
        var=pd.DataFrame(index=df.columns),
    )
    if case == "duplicate":
        a.var_names = ["LM0"] + list(df.columns[1:-1]) + ["LM0"]
    if case == "non-numeric":
        ref = workdir / "ref_non_numeric.csv"
        df.to_csv(ref)
    else:
        a.write_h5ad(ref)
    out = workdir / f"model_{case}"
    res = runner.invoke(
        app, ["ggan-train", str(ref), "--landmarks", str(workdir / "landmarks.txt"), "-o", str(out), *FAST]
    )
    assert_one_line_error(res)
    assert not out.exists()


def test_model_from_another_pipeline(workdir):
    import torch

    from gengen.checkpoint import save_checkpoint

    save_checkpoint(workdir / "vae_model", "vae", {"w": torch.zeros(2)}, config={"genes": ["a"]})
    dst = workdir / "never.csv"
    res = runner.invoke(
        app,
        ["infer-targets", str(workdir / "query.csv"), "--model", str(workdir / "vae_model"), "-o", str(dst)],
    )
    assert_one_line_error(res, "'vae' model", "'ggan'")
    assert not dst.exists()


def test_refuses_to_overwrite_input(workdir):
    res = runner.invoke(
        app,
        [
            "infer-targets",
            str(workdir / "query.csv"),
            "--model",
            str(workdir / "model"),
            "-o",
            str(workdir / "query.csv"),
        ],
    )
    assert_one_line_error(res, "overwrite")
    assert pd.read_csv(workdir / "query.csv", index_col=0).shape == (20, 8)


def test_landmarks_from_query(workdir):
    out = workdir / "model_from_query"
    res = runner.invoke(app, ["ggan-train", str(workdir / "ref.csv"), "--landmarks-from", str(workdir / "query.csv"),
                              "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["landmarks"] == [f"LM{i}" for i in range(8)] and len(cfg["targets"]) == 10


def test_h5ad_output_keeps_the_query_annotations(workdir):
    import anndata as ad

    q = pd.read_csv(workdir / "query.csv", index_col=0)
    qa = ad.AnnData(q.to_numpy(dtype=np.float32), obs=pd.DataFrame(
        {"cell_id": [f"c{i % 3}" for i in range(len(q))]}, index=q.index), var=pd.DataFrame(index=q.columns))
    qa.write_h5ad(workdir / "query_annot.h5ad")
    for query in ("query_annot.h5ad",):
        res = runner.invoke(app, ["infer-targets", str(workdir / query), "--model", str(workdir / "model"),
                                  "-o", str(workdir / "annot_pred.h5ad"), "-q"])
        assert res.exit_code == 0, res.output
        out = ad.read_h5ad(workdir / "annot_pred.h5ad")
        assert list(out.obs_names) == list(q.index) and list(out.obs["cell_id"]) == list(qa.obs["cell_id"])


def test_train_refuses_a_folder_of_user_files_and_a_bad_activation_before_training(workdir, tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    for extra, needle in (([], "not a gengen model"), (["--activation", "swish"], "activation")):
        out = user if not extra else tmp_path / "m2"
        res = runner.invoke(app, ["ggan-train", str(workdir / "ref.csv"), "--landmarks", str(workdir / "landmarks.txt"),
                                  "-o", str(out), *extra, *FAST])
        assert res.exit_code == 2 and needle in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1  # refused before any training line
    assert (user / "notes.txt").read_text() == "keep me"
