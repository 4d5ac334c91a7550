"""ggan-eval: finished folds kept and resumed, the exact lasso, KNN-GE in bounded memory, the default
method set sized to the reference (issue 18, item 9)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app

runner = CliRunner()
TINY = dict(hidden=16, epochs=2, batch_size=32, d_hidden=8, patience=0)


def _data(n=48, n_l=10, n_t=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_l))
    Y = 5 + X @ rng.standard_normal((n_l, n_t)) * 0.4 + 0.3 * rng.standard_normal((n, n_t))
    return X.astype(np.float32) + 7, Y.astype(np.float32), [f"T{j}" for j in range(n_t)]


class Interrupt(BaseException):
    """Stands for a kill in the middle of a fold (not an Exception: nothing may swallow it)."""


@pytest.fixture
def flaky():
    """A registered baseline that stops the run on its third fold while ``flaky.armed`` is set."""
    from gengen.ggan import register_baseline
    from gengen.ggan.baselines import ridge
    from gengen.registry import GGAN_METHODS

    state = {"armed": False, "stop": Interrupt}

    def fit_predict(Xtr, Ytr, Xte, *, seed, info, **_):
        if state["armed"] and seed == 2:
            raise state["stop"]
        return ridge(Xtr, Ytr, Xte, info=info)

    register_baseline("flaky", fit_predict, default=False)
    yield state
    GGAN_METHODS.unregister("flaky")


def _same_tables(a, b):
    pd.testing.assert_frame_equal(a.summary.drop(columns="seconds"), b.summary.drop(columns="seconds"), check_exact=True)
    pd.testing.assert_frame_equal(a.folds, b.folds, check_exact=True)
    pd.testing.assert_frame_equal(a.per_gene, b.per_gene, check_exact=True)


def test_interrupted_evaluation_keeps_finished_folds_and_resumes_to_the_same_result(tmp_path, flaky):
    from gengen.ggan import GGANRecipe, evaluate

    X, Y, tg = _data()
    kw = dict(folds=3, recipe=GGANRecipe(**TINY), methods=("ggan", "ridge", "flaky", "lasso", "knn"), device="cpu")
    whole = evaluate(X, Y, tg, **kw)
    flaky["armed"] = True
    with pytest.raises(Interrupt):
        evaluate(X, Y, tg, **kw, save_folds=tmp_path / "folds")
    kept = sorted(p.name for p in (tmp_path / "folds").iterdir())
    # folds 1 and 2 whole, fold 3 up to the method that was running: written as they finished
    assert kept == sorted([f"fold{f}-{m}.npz" for f in (1, 2) for m in ("ggan", "ridge", "flaky", "lasso", "knn")]
                          + ["fold3-ggan.npz", "fold3-ridge.npz"])
    flaky["armed"] = False
    resumed = evaluate(X, Y, tg, **kw, save_folds=tmp_path / "folds", resume=True)
    assert resumed.info["resumed_results"] == 12
    _same_tables(whole, resumed)
    assert resumed.info["resolved_recipes"] == whole.info["resolved_recipes"]
    # a complete folder resumes without computing anything, and to the same tables
    again = evaluate(X, Y, tg, **kw, save_folds=tmp_path / "folds", resume=True)
    assert again.info["resumed_results"] == 15
    _same_tables(whole, again)


def test_resume_refuses_results_of_another_comparison(tmp_path):
    from gengen.errors import GengenError
    from gengen.ggan import GGANRecipe, evaluate

    X, Y, tg = _data()
    kw = dict(folds=3, methods=("ridge", "mean"), device="cpu")
    with pytest.raises(GengenError, match="nothing to resume"):
        evaluate(X, Y, tg, **kw, save_folds=tmp_path / "f", resume=True)
    evaluate(X, Y, tg, **kw, save_folds=tmp_path / "f")
    with pytest.raises(GengenError, match="another comparison"):
        evaluate(X, Y, tg, **{**kw, "folds": 4}, save_folds=tmp_path / "f", resume=True)
    with pytest.raises(GengenError, match="another comparison"):
        evaluate(X + 1, Y, tg, **kw, save_folds=tmp_path / "f", resume=True)
    evaluate(X, Y, tg, folds=3, methods=("ggan",), recipe=GGANRecipe(**TINY), device="cpu", save_folds=tmp_path / "g")
    with pytest.raises(GengenError, match="other settings"):
        evaluate(X, Y, tg, folds=3, methods=("ggan",), recipe=GGANRecipe(**{**TINY, "hidden": 24}), device="cpu",
                 save_folds=tmp_path / "g", resume=True)
    (tmp_path / "f" / "fold1-ridge.npz").write_bytes(b"not a zip")
    with pytest.raises(GengenError, match="cannot read the fold result"):
        evaluate(X, Y, tg, **kw, save_folds=tmp_path / "f", resume=True)
    # without --resume a folder of earlier results is started over
    ev = evaluate(X, Y, tg, **kw, save_folds=tmp_path / "f")
    assert ev.info["resumed_results"] == 0 and len(list((tmp_path / "f").iterdir())) == 6


def test_evaluation_writes_what_ggan_eval_writes(tmp_path):
    from gengen.ggan import evaluate
    from gengen.ggan.evaluate import EVAL_FILES, eval_outputs

    X, Y, tg = _data()
    ev = evaluate(X, Y, tg, folds=3, methods=("ridge", "mean"), device="cpu")
    assert ev.fold_results is None
    paths = ev.write(tmp_path / "ev")  # the folder is made
    assert paths == eval_outputs(tmp_path / "ev") and list(paths) == ["summary", "folds", "per_gene", "figure", "info"]
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == sorted(EVAL_FILES.values())
    summary = pd.read_csv(paths["summary"], sep="\t")
    assert summary["method"].tolist() == ev.summary["method"].tolist() == ["ridge", "mean"]
    np.testing.assert_allclose(summary["mae_mean"], ev.summary["mae_mean"], rtol=1e-12)
    per_gene = pd.read_csv(paths["per_gene"], sep="\t")
    assert per_gene.shape == (2 * len(tg), 6) and per_gene["gene"].tolist()[: len(tg)] == tg
    assert len(pd.read_csv(paths["folds"], sep="\t")) == 2 * 3
    assert json.loads(paths["info"].read_text())["methods"] == ["ridge", "mean"]
    assert paths["figure"].read_bytes()[:4] == b"\x89PNG"
    kept = evaluate(X, Y, tg, folds=3, methods=("mean",), device="cpu", save_folds=tmp_path / "kept")
    assert kept.fold_results == tmp_path / "kept"  # named by a failed write: --resume writes the tables from it


def _write_reference(d, n=48):
    X, Y, tg = _data(n=n)
    lm = [f"L{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(np.c_[X, Y], index=[f"s{i}" for i in range(n)], columns=lm + tg)
    df.to_csv(d / "ref.csv")
    (d / "lm.txt").write_text("\n".join(lm) + "\n")


def test_cli_stopped_mid_run_keeps_its_folds_and_resume_finishes_like_an_uninterrupted_run(tmp_path, flaky):
    _write_reference(tmp_path)
    base = ["ggan-eval", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"), "--folds", "3",
            "--methods", "ggan,ridge,flaky,knn", "--hidden", "16", "--epochs", "2", "--d-hidden", "8",
            "--patience", "0", "--device", "cpu", "-q"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "whole")])
    assert res.exit_code == 0, res.output
    flaky["armed"], flaky["stop"] = True, SystemExit(143)  # what SIGTERM raises in a command
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "cut")])
    assert res.exit_code == 143, res.output
    out = tmp_path / "cut"
    assert sorted(p.name for p in out.iterdir()) == ["fold_results"]  # the tables only come with the last fold
    assert len(list((out / "fold_results").glob("fold*.npz"))) == 10
    assert not [p for p in out.rglob(".*")], "no temporary or lock left behind"
    flaky["armed"] = False
    res = runner.invoke(app, [*base, "-o", str(out), "--resume"])
    assert res.exit_code == 0, res.output
    for name in ("ggan_eval_summary.tsv", "ggan_eval_folds.tsv", "ggan_eval_per_gene.tsv"):
        a = pd.read_csv(tmp_path / "whole" / name, sep="\t")
        b = pd.read_csv(out / name, sep="\t")
        cols = [c for c in a.columns if c != "seconds"]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    info = json.loads((out / "ggan_eval_info.json").read_text())
    assert info["resumed_results"] == 10 and info["methods"] == ["ggan", "ridge", "flaky", "knn"]


def test_cli_resume_without_finished_folds_is_one_line(tmp_path):
    _write_reference(tmp_path)
    res = runner.invoke(app, ["ggan-eval", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"),
                              "--methods", "ridge", "-o", str(tmp_path / "nothing"), "--resume"])
    assert_one_line_error(res, "nothing to resume")
    assert not (tmp_path / "nothing").exists()


# ----------------------------------------------------------------------------------------- lasso
@pytest.mark.parametrize("n, p", [(30, 80), (120, 25)])  # fewer profiles than landmarks, and more (QR path)
def test_lasso_is_the_exact_lasso(n, p):
    """The old batched FISTA stopped after 150 iterations, short of the optimum (bladderbatch: 23 nonzero
    coefficients per target where the lasso has 18.6); the solver must match scikit-learn's converged Lasso."""
    from sklearn.linear_model import Lasso

    from gengen.ggan.lasso_cd import lasso_solve

    rng = np.random.default_rng(1)
    Z = rng.standard_normal((n, 5))
    X = Z @ rng.standard_normal((5, p)) + 0.5 * rng.standard_normal((n, p))  # correlated features, as landmarks are
    Y = X[:, :6] @ rng.standard_normal((6, 7)) + rng.standard_normal((n, 7))
    X, Y = X - X.mean(0), Y - Y.mean(0)
    for alpha in (0.3, 0.05):
        ours, unconverged, gap = lasso_solve(X, Y, alpha)
        sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(X, Y).coef_
        assert unconverged == 0 and gap <= 1e-8
        np.testing.assert_allclose(ours, sk, atol=1e-6)
        assert ((ours != 0) == (np.abs(sk) > 1e-9)).mean() > 0.99
    # the split over threads does not change any target's answer
    np.testing.assert_array_equal(lasso_solve(X, Y, 0.05, threads=1)[0], lasso_solve(X, Y, 0.05, threads=3)[0])


def test_lasso_baseline_reports_its_choice_and_predicts():
    from gengen.ggan.baselines import lasso

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 40)).astype(np.float32)
    Y = (X[:, :3] @ rng.standard_normal((3, 9)) + 0.1 * rng.standard_normal((60, 9))).astype(np.float32)
    info: dict = {}
    pred = lasso(X[:50], Y[:50], X[50:], info=info)
    assert pred.shape == (10, 9) and pred.dtype == np.float32
    assert np.abs(pred - Y[50:]).mean() < 0.3 * np.abs(Y[50:] - Y[:50].mean(0)).mean()
    assert info["alpha"] in (0.3, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02) and info["max_gap"] <= 1e-8
    assert 3 <= info["nonzero_per_target"] < 40


def test_knn_matches_brute_force_and_chooses_k_by_leave_one_out():
    from gengen.ggan.baselines import KNN_KS, _nearest, knn

    rng = np.random.default_rng(2)
    X = rng.standard_normal((70, 6))
    Y = rng.standard_normal((70, 5))
    D = ((X[:60, None] - X[None, :60]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    order = np.argsort(D, axis=1)
    errs = [np.abs(Y[:60][order[:, :k]].mean(1) - Y[:60]).mean() for k in KNN_KS]
    k = KNN_KS[int(np.argmin(errs))]
    near = np.argsort(((X[60:, None] - X[None, :60]) ** 2).sum(-1), axis=1)[:, :k]
    info: dict = {}
    np.testing.assert_allclose(knn(X[:60], Y[:60], X[60:], info=info), Y[:60][near].mean(1), rtol=1e-6)
    assert info["k"] == k
    np.testing.assert_array_equal(_nearest(X[:60], X[:60], 4, exclude_self=True, block=7), order[:, :4])


# --------------------------------------------------------------------------------- default methods
def test_default_methods_fit_the_reference_size():
    from gengen.ggan.evaluate import default_methods
    from gengen.registry import GGAN_METHODS

    everything = GGAN_METHODS.names(default_only=True)
    # the README's bladderbatch comparison (45 training profiles, 943 -> 21,340): everything runs
    chosen, skipped = default_methods(45, 943, 21_340)
    assert chosen == everything and skipped == {}
    # two million L1000 profiles: the n x n distances of KNN-GE would cost more than GGAN itself
    chosen, skipped = default_methods(2_000_000, 978, 9_520)
    assert "knn" not in chosen and set(skipped) == {"knn"}
    assert "more than training GGAN itself" in skipped["knn"] and "--methods" in skipped["knn"]
    assert [m for m in everything if m != "knn"] == list(chosen)


def test_cli_records_what_the_default_skipped(tmp_path, monkeypatch):
    from gengen.ggan.evaluate import BASELINE_COSTS

    _write_reference(tmp_path)
    monkeypatch.setitem(BASELINE_COSTS, "lasso", lambda n, p, t: 1e30)  # stands for a reference lasso cannot fit
    res = runner.invoke(app, ["ggan-eval", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"),
                              "--folds", "3", "--hidden", "16", "--epochs", "2", "--d-hidden", "8", "--device", "cpu",
                              "-o", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "e" / "ggan_eval_info.json").read_text())
    assert "lasso" not in info["methods"] and "more than training GGAN itself" in info["skipped"]["lasso"]
    assert "# skipped lasso (LR-L1): " in res.output
    summary = pd.read_csv(tmp_path / "e" / "ggan_eval_summary.tsv", sep="\t")
    assert "lasso" not in set(summary["method"]) and {"ggan", "dgex", "ridge", "knn"} <= set(summary["method"])
