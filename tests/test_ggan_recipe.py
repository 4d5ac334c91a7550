"""GGAN recipe sized to the reference: small references start from ridge, D-GEX size keeps D-GEX's recipe,
explicit options win, the choices land in config.json; grouped folds; the ridge baseline it starts from."""

from __future__ import annotations

import inspect
import json
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app
from gengen.errors import GengenError

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- resolve_ggan_recipe
def test_small_reference_gets_the_ridge_start_recipe():
    from gengen.ggan import GGANRecipe, resolve_ggan_recipe

    r = resolve_ggan_recipe(GGANRecipe(), 200)
    assert (r.hidden, r.layers, r.d_hidden) == (512, 3, 128)
    assert r.ridge_init and r.linear_skip and r.refit
    assert r.start_margin == 3.0 and r.patience == 20 and r.val_fraction == 0.2
    assert r.learning_rate == 1e-4 and r.batch_size == 160  # 200 capped at the 160 training profiles
    assert r.epochs == 1500  # one step per epoch: ~1,500 steps, bounded in practice by the patience
    text = "\n".join(r.notes)
    for needle in ("width 512", "ridge map", "3 standard errors", "refit", "validation 20%", "early stopping", "Adam 0.0001"):
        assert needle in text, text


def test_dgex_size_keeps_the_dgex_recipe():
    from gengen.ggan import GGANRecipe, resolve_ggan_recipe

    r = resolve_ggan_recipe(GGANRecipe(), 100_000)
    assert (r.hidden, r.layers, r.d_hidden, r.batch_size, r.learning_rate) == (3000, 3, 512, 200, 5e-4)
    assert not r.ridge_init and not r.linear_skip and not r.refit
    assert r.val_fraction == 0.1 and r.patience == 0 and r.start_margin == 0.0
    assert r.epochs == 5  # 90,000 training profiles / batch 200 = 450 steps per epoch; at least 5 epochs
    assert not any("ridge" in n for n in r.notes)


def test_width_grows_with_the_reference_between_the_thresholds():
    from gengen.ggan import GGANRecipe, adaptive_width, resolve_ggan_recipe
    from gengen.ggan.defaults import DGEX_REFERENCE, SMALL_REFERENCE

    sizes = [50, 1_999, 2_000, 5_000, 20_000, 49_999, 50_000, 1_000_000]
    widths = [adaptive_width(n) for n in sizes]
    assert widths[:2] == [512, 512] and widths[-2:] == [3000, 3000]
    assert widths == sorted(widths) and all(w % 64 == 0 or w == 3000 for w in widths)
    mid = resolve_ggan_recipe(GGANRecipe(), 10_000)
    assert 512 < mid.hidden < 3000 and mid.ridge_init and not mid.refit and mid.val_fraction == 0.1
    assert resolve_ggan_recipe(GGANRecipe(), SMALL_REFERENCE - 1).refit
    assert not resolve_ggan_recipe(GGANRecipe(), DGEX_REFERENCE).ridge_init


def test_explicit_options_win():
    from gengen.ggan import GGANRecipe, resolve_ggan_recipe

    given = dict(hidden=64, layers=1, d_hidden=16, ridge_init=False, linear_skip=False, refit=False, patience=0,
                 learning_rate=1e-3, val_fraction=0.3, start_margin=0.0, epochs=7)
    r = resolve_ggan_recipe(GGANRecipe(**given), 200)
    assert {k: getattr(r, k) for k in given} == given
    big = resolve_ggan_recipe(GGANRecipe(hidden=256, ridge_init=True, refit=True, patience=5), 100_000)
    assert (big.hidden, big.ridge_init, big.linear_skip, big.refit, big.patience) == (256, True, True, True, 5)
    forced = resolve_ggan_recipe(GGANRecipe(ridge_init=True, linear_skip=False), 200)
    assert forced.linear_skip and any("needed by ridge_init" in n for n in forced.notes)


@pytest.mark.parametrize(
    "bad, needle",
    [({"patience": -1}, "patience"), ({"val_fraction": 1.0}, "validation fraction"), ({"hidden": 0}, "hidden"),
     ({"start_margin": -1.0}, "start margin"), ({"learning_rate": 0.0}, "learning rate")],
)
def test_impossible_values_are_refused(bad, needle):
    from gengen.ggan import GGANRecipe, check_recipe

    with pytest.raises(GengenError, match=needle):
        check_recipe(GGANRecipe(**bad))


def test_cli_defaults_are_the_recipe_defaults():
    """The commands must not hard-code numbers that differ from the library's recipe."""
    from gengen.cli.ggan import ggan_eval, ggan_train
    from gengen.ggan import GGANRecipe

    names = {"lr": "learning_rate", "l1": "l1_weight", "consistency": "consistency_weight"}
    fields = GGANRecipe.__dataclass_fields__
    for command in (ggan_train, ggan_eval):
        checked = 0
        for p in inspect.signature(command).parameters.values():
            field = names.get(p.name, p.name)
            if field in fields and field not in ("seed", "precision"):
                assert p.default == fields[field].default, (command.__name__, p.name, p.default)
                checked += 1
        assert checked >= 20


def test_paired_gain_in_standard_errors():
    from gengen.ggan.loop import paired_gain_se

    assert paired_gain_se(np.ones(4), np.array([0.9, 1.1, 0.9, 1.1])) == pytest.approx(0.0)
    # gains 0.1, 0.2, 0.3: mean 0.2, sd 0.1, se 0.1 / sqrt(3)
    assert paired_gain_se(np.ones(3), np.array([0.9, 0.8, 0.7])) == pytest.approx(0.2 / (0.1 / np.sqrt(3)))
    assert paired_gain_se(np.ones(1), np.zeros(1)) == 0.0  # one profile proves nothing


# ---------------------------------------------------------------------------------------------- training
def _linear_reference(n=150, n_l=20, n_t=30, seed=0):
    """Targets linear in the landmarks plus noise: nothing for a network to add to ridge."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_l))
    Y = X @ rng.standard_normal((n_l, n_t)) * 0.4 + rng.standard_normal((n, n_t))
    return (X + 8).astype(np.float32), (Y + 6).astype(np.float32)


def test_default_model_is_ridge_when_training_cannot_beat_it():
    from gengen.ggan import GGANModel, ridge

    X, Y = _linear_reference()
    m = GGANModel.train_arrays(X[:120], Y[:120], landmarks=[f"L{i}" for i in range(20)],
                               targets=[f"T{j}" for j in range(30)], device="cpu", quiet=True)
    assert m.metrics["best_epoch"] == 0 and m.metrics["refit"]
    assert m.recipe.notes[-1].startswith("kept the ridge start")
    pre = m.preprocessor  # refit: fitted on all 120 profiles, like the ridge below
    ours = pre.y_scaler.transform(m.predict_array(X[120:]))
    theirs = ridge(pre.transform_x(X[:120]), pre.transform_y(Y[:120]), pre.transform_x(X[120:]))
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    """120 + 40 profiles, 30 landmarks -> 60 targets with a saturating (non-linear) response."""
    d = tmp_path_factory.mktemp("ggan_recipe")
    rng = np.random.default_rng(3)
    n, n_l, n_t = 160, 30, 60
    F = rng.standard_normal((n, 6))
    X = F @ rng.standard_normal((6, n_l)) + 0.5 * rng.standard_normal((n, n_l))
    Y = 2 * np.tanh(F @ rng.standard_normal((6, n_t)) / 2) + 0.4 * rng.standard_normal((n, n_t))
    cols = [f"LM{i}" for i in range(n_l)] + [f"TG{j}" for j in range(n_t)]
    df = pd.DataFrame(np.c_[X + 7, Y + 5], index=[f"s{i}" for i in range(n)], columns=cols).astype(np.float32)
    df.iloc[:120].to_csv(d / "ref.csv")
    df.iloc[120:, :n_l].to_csv(d / "query.csv")
    df.iloc[120:, n_l:].to_csv(d / "truth.csv")
    (d / "landmarks.txt").write_text("\n".join(cols[:n_l]) + "\n")
    pd.DataFrame({"donor": [f"d{i % 8}" for i in range(120)]}, index=df.index[:120]).to_csv(d / "donors.csv")
    return d, df


def test_ggan_train_defaults_are_fast_and_not_worse_than_ridge(small_reference):
    from gengen.ggan import Preprocessor, ridge

    d, df = small_reference
    t0 = time.perf_counter()
    res = runner.invoke(app, ["ggan-train", str(d / "ref.csv"), "--landmarks", str(d / "landmarks.txt"),
                              "-o", str(d / "model"), "--device", "cpu"])
    seconds = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    assert seconds < 60, seconds  # a few seconds on a quiet core
    assert "recipe: generator width 512" in res.output and "recipe: starts from the leave-one-out ridge map" in res.output
    cfg = json.loads((d / "model" / "config.json").read_text())
    notes = cfg["recipe"]["notes"]
    assert any("ridge map" in n for n in notes) and notes[-1].startswith("kept ")
    assert cfg["recipe"]["hidden"] == 512 and cfg["recipe"]["ridge_init"] and cfg["recipe"]["refit"]
    assert cfg["architecture"]["hidden"] == [512, 512, 512]
    assert {"gain_se", "rejected_epoch", "best_epoch"} <= set(cfg["metrics"])
    res = runner.invoke(app, ["infer-targets", str(d / "query.csv"), "--model", str(d / "model"),
                              "-o", str(d / "pred.csv"), "-q"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(d / "pred.csv", index_col=0).to_numpy()
    truth = pd.read_csv(d / "truth.csv", index_col=0).to_numpy()
    ref = df.iloc[:120]
    pre = Preprocessor.fit(ref.iloc[:, :30].to_numpy(), ref.iloc[:, 30:].to_numpy())
    base = ridge(pre.transform_x(ref.iloc[:, :30].to_numpy()), pre.transform_y(ref.iloc[:, 30:].to_numpy()),
                 pre.transform_x(df.iloc[120:, :30].to_numpy()))
    ggan_mae = np.abs(pre.transform_y(pred) - pre.transform_y(truth)).mean()
    ridge_mae = np.abs(base - pre.transform_y(truth)).mean()
    assert ggan_mae <= ridge_mae + 1e-4, (ggan_mae, ridge_mae)


def test_ggan_eval_groups_from_a_labels_file(small_reference):
    d, _ = small_reference
    out = d / "eval"
    res = runner.invoke(app, ["ggan-eval", str(d / "ref.csv"), "--landmarks", str(d / "landmarks.txt"),
                              "--methods", "ggan,ridge", "--folds", "2", "--groups", "donor",
                              "--labels", str(d / "donors.csv"), "-o", str(out), "--device", "cpu",
                              "--epochs", "30"])  # quicker; the defaults are timed in the test above
    assert res.exit_code == 0, res.output
    assert "grouped by 'donor' (8 groups)" in res.output
    info = json.loads((out / "ggan_eval_info.json").read_text())
    assert info["grouped"] and info["test_sizes"] == [60, 60]
    assert "ridge map" in " ".join(info["resolved_recipes"]["ggan"]["notes"])
    s = pd.read_csv(out / "ggan_eval_summary.tsv", sep="\t").set_index("method")
    assert s.loc["ggan", "mae_mean"] <= s.loc["ridge", "mae_mean"] + 1e-4


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--groups", "nope"], ["no column 'nope'", "--labels"]),
        (["--groups", "donor", "--labels", "DONORS", "--folds", "9"], ["only 8 groups", "--folds 8"]),
        (["--labels", "DONORS"], ["add --groups"]),
        (["--patience", "-2"], ["patience"]),
    ],
)
def test_ggan_eval_bad_grouping_is_one_line(small_reference, extra, needles):
    d, _ = small_reference
    extra = [str(d / "donors.csv") if e == "DONORS" else e for e in extra]
    res = runner.invoke(app, ["ggan-eval", str(d / "ref.csv"), "--landmarks", str(d / "landmarks.txt"),
                              "--methods", "ridge", "-o", str(d / "bad_eval"), *extra])
    assert_one_line_error(res, *needles)
    assert not (d / "bad_eval" / "ggan_eval_summary.tsv").exists()


def test_ggan_eval_unknown_method_fails_before_the_reference_is_read(small_reference, monkeypatch):
    """--methods is checked with the other options, not after reading the reference (41 s at TCGA size)."""
    import gengen.io.expression
    import gengen.io.readers

    d, _ = small_reference

    def never(*args, **kwargs):
        raise AssertionError("the reference was read")

    monkeypatch.setattr(gengen.io.expression, "read_expression", never)
    monkeypatch.setattr(gengen.io.readers, "read_whole", never)  # what open_expression reads into memory with
    res = runner.invoke(app, ["ggan-eval", str(d / "ref.csv"), "--landmarks", str(d / "landmarks.txt"),
                              "--methods", "ridge,bogus", "-o", str(d / "bad_eval")])
    assert_one_line_error(res, "unknown method(s) bogus", "choose from")


# ---------------------------------------------------------------------------------------------- grouped folds
def test_group_kfold_keeps_every_group_whole_and_balances_folds():
    from gengen.ggan import kfold_indices

    rng = np.random.default_rng(0)
    groups = rng.choice([f"subject{i}" for i in range(23)], size=300)
    splits = kfold_indices(300, 5, 0, groups=groups)
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests.tolist()) == list(range(300))  # every profile tested exactly once
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == 300
    sizes = [len(te) for _, te in splits]
    assert max(sizes) - min(sizes) <= np.unique(groups, return_counts=True)[1].max()
    again = kfold_indices(300, 5, 0, groups=groups)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again, strict=True))


def test_group_kfold_known_assignment_and_missing_labels():
    from gengen.ggan import group_kfold_indices

    groups = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + [None, None]  # missing labels form one group
    splits = group_kfold_indices(groups, 3, seed=0)
    # largest first to the emptiest fold: a (4) -> fold 1, b (3) -> fold 2, c (2) -> fold 3, and the
    # missing-label pair (2) -> fold 3 again (2 < 3 < 4)
    test_sets = [sorted(map(str, np.asarray(groups, dtype=object)[te])) for _, te in splits]
    assert test_sets == [["a"] * 4, ["b"] * 3, ["None", "None", "c", "c"]]
    with pytest.raises(GengenError, match="only 4 groups"):
        group_kfold_indices(groups, 5, seed=0)


# ---------------------------------------------------------------------------------------------- ridge
def _brute_force_loo_alpha(X, Y, alphas):
    best = (np.inf, None)
    for a in alphas:
        err = 0.0
        for i in range(len(X)):
            keep = np.arange(len(X)) != i
            xm, ym = X[keep].mean(0), Y[keep].mean(0)
            Xc, Yc = X[keep] - xm, Y[keep] - ym
            W = np.linalg.solve(Xc.T @ Xc + a * np.eye(X.shape[1]), Xc.T @ Yc)
            err += ((X[i] - xm) @ W + ym - Y[i]) @ ((X[i] - xm) @ W + ym - Y[i])
        best = min(best, (err, a))
    return best[1]


def test_ridge_alpha_is_the_exact_leave_one_out_choice():
    from gengen.ggan.baselines import ridge_fit

    rng = np.random.default_rng(1)
    alphas = np.logspace(-1, 3, 9)
    for n, p in ((25, 40), (40, 6)):  # more landmarks than profiles, and fewer
        X = rng.standard_normal((n, p))
        Y = X[:, :3] @ rng.standard_normal((3, 5)) + rng.standard_normal((n, 5))
        info: dict = {}
        W, xm, ym = ridge_fit(X, Y, alphas, info=info)
        assert info["alpha_by"] == "leave-one-out"
        assert info["alpha"] == _brute_force_loo_alpha(X, Y, alphas)
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        np.testing.assert_allclose(W, np.linalg.solve(Xc.T @ Xc + info["alpha"] * np.eye(p), Xc.T @ Yc), atol=1e-8)


def test_ridge_gcv_on_large_references_agrees_with_loo(monkeypatch):
    from gengen.ggan import baselines

    rng = np.random.default_rng(2)
    X = rng.standard_normal((600, 10))
    Y = X @ rng.standard_normal((10, 8)) * 0.3 + rng.standard_normal((600, 8))
    loo: dict = {}
    baselines.ridge_fit(X, Y, info=loo)
    monkeypatch.setattr(baselines, "RIDGE_EXACT_LOO_MAX", 100)
    gcv: dict = {}
    baselines.ridge_fit(X, Y, info=gcv)
    assert gcv["alpha_by"] == "GCV" and loo["alpha_by"] == "leave-one-out"
    grid = list(baselines.RIDGE_ALPHAS)
    assert abs(grid.index(gcv["alpha"]) - grid.index(loo["alpha"])) <= 1


def test_ridge_start_that_wins_is_ridge_on_all_profiles_even_without_refit():
    from gengen.ggan import GGANModel, GGANRecipe, ridge

    X, Y = _linear_reference()
    m = GGANModel.train_arrays(X[:120], Y[:120], landmarks=[f"L{i}" for i in range(20)],
                               targets=[f"T{j}" for j in range(30)], recipe=GGANRecipe(refit=False, val_fraction=0.1), device="cpu", quiet=True)
    assert not m.recipe.refit and m.metrics["best_epoch"] == 0 and m.metrics["refit"]
    assert m.metrics["n_train"] == 120
    pre = m.preprocessor
    theirs = ridge(pre.transform_x(X[:120]), pre.transform_y(Y[:120]), pre.transform_x(X[120:]))
    np.testing.assert_allclose(pre.y_scaler.transform(m.predict_array(X[120:])), theirs, atol=2e-4)
