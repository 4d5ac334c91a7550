"""GGAN model: recovers a known landmark -> target map, round-trips through a checkpoint, streams."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gengen.errors import GengenError

# the plain GAN from random weights (no ridge start, no early stopping): these tests are about the network itself
FAST = dict(hidden=64, epochs=60, batch_size=64, d_hidden=32, l1_weight=10.0, seed=0, ridge_init=False, patience=0)


def make_data(n=300, n_l=12, n_t=16, seed=0):
    """Targets are a known nonlinear function of the landmarks (plus 2 % noise), in 'log2' units."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_l)).astype(np.float32)
    W = rng.standard_normal((n_l, n_t)) / np.sqrt(n_l)
    Y = 6 + 2 * np.tanh(X @ W) + 0.02 * rng.standard_normal((n, n_t))
    landmarks = [f"L{i}" for i in range(n_l)]
    targets = [f"T{j}" for j in range(n_t)]
    return X * 1.5 + 8, Y.astype(np.float32), landmarks, targets


@pytest.fixture(scope="module")
def trained():
    import anndata as ad

    from gengen.ggan import GGANModel, GGANRecipe

    X, Y, lm, tg = make_data()
    adata = ad.AnnData(
        np.c_[X, Y].astype(np.float32),
        obs=pd.DataFrame(index=[f"s{i}" for i in range(len(X))]),
        var=pd.DataFrame(index=lm + tg),
    )
    model = GGANModel.train(adata[:250].copy(), lm, recipe=GGANRecipe(**FAST), device="cpu", quiet=True)
    return model, adata


def test_recovers_known_map(trained):
    from gengen.ggan import summarize

    model, adata = trained
    assert model.targets == [f"T{j}" for j in range(16)]
    held = adata[250:]
    pred = model.predict(held, quiet=True)
    truth = held[:, model.targets].X
    mae = np.abs(pred.to_numpy() - truth).mean()
    mean_mae = np.abs(adata[:250, model.targets].X.mean(0) - truth).mean()
    assert mae < 0.35 * mean_mae, (mae, mean_mae)
    assert summarize(truth, pred.to_numpy())["ccc"] > 0.85
    h = model.history
    assert {"g_loss", "d_loss", "adv", "l1", "consistency", "val_mae"} <= set(h.columns)
    assert model.metrics["best_val_mae"] == pytest.approx(h["val_mae"].min())


def test_checkpoint_round_trip(trained, tmp_path):
    import json

    from gengen.ggan import GGANModel

    model, adata = trained
    model.save(tmp_path / "m")
    assert {"config.json", "model.safetensors", "history.csv", "training.png"} <= {
        p.name for p in (tmp_path / "m").iterdir()
    }
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (
        cfg["pipeline"] == "ggan" and cfg["landmarks"] == model.landmarks and cfg["targets"] == model.targets
    )
    again = GGANModel.load(tmp_path / "m", device="cpu")
    np.testing.assert_allclose(
        again.predict(adata[250:], quiet=True), model.predict(adata[250:], quiet=True), atol=1e-5
    )


def test_missing_landmarks(trained):
    model, adata = trained
    part = adata[250:, ["L0", "L1"] + [f"L{i}" for i in range(3, 12)]].copy()
    with pytest.raises(GengenError, match="L2"):
        model.predict(part)
    out = model.predict(part, fill_missing=True, quiet=True)
    assert out.shape == (50, 16) and np.isfinite(out.to_numpy()).all()
    with pytest.raises(GengenError, match="none of the model's 12 landmark"):
        model.predict(adata[250:, model.targets].copy())


def test_gct_symbol_fallback(trained):
    import anndata as ad

    model, adata = trained
    q = adata[250:, model.landmarks].copy()
    q = ad.AnnData(
        q.X,
        obs=q.obs,
        var=pd.DataFrame({"pr_gene_symbol": model.landmarks}, index=[f"{i}_at" for i in range(12)]),
    )
    plan = model.plan(q.var_names, q.var)
    assert plan.how == "var column 'pr_gene_symbol'" and not plan.missing.any()
    np.testing.assert_allclose(
        model.predict(q, quiet=True), model.predict(adata[250:], quiet=True), atol=1e-5
    )


def test_streamed_file_inference_matches_memory(trained, tmp_path):
    from gengen.ggan import infer_file

    model, adata = trained
    q = adata[250:, model.landmarks].to_df()
    q.index.name = "sample"  # stored as a named column in Parquet, as infer-targets writes it
    q.to_csv(tmp_path / "q.csv")
    q.to_parquet(tmp_path / "q.parquet")
    expected = model.predict(adata[250:], quiet=True)
    for src, dst in (("q.csv", "p.tsv"), ("q.parquet", "p.parquet")):
        info = infer_file(model, tmp_path / src, tmp_path / dst, chunk_size=7, quiet=True)
        assert info["chunks"] == 8 and info["profiles"] == 50
        got = (
            pd.read_parquet(tmp_path / dst)
            if dst.endswith("parquet")
            else pd.read_csv(tmp_path / dst, sep="\t", index_col=0)
        )
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-4)


def test_deterministic_with_seed():
    from gengen.ggan import GGANModel, GGANRecipe

    X, Y, lm, tg = make_data(n=80)
    r = GGANRecipe(**{**FAST, "epochs": 5})
    a = GGANModel.train_arrays(X, Y, landmarks=lm, targets=tg, recipe=r, device="cpu", quiet=True).predict_array(X[:5])
    b = GGANModel.train_arrays(X, Y, landmarks=lm, targets=tg, recipe=r, device="cpu", quiet=True).predict_array(X[:5])
    np.testing.assert_array_equal(a, b)


def test_evaluate_ranks_methods_and_separates_same_gene():
    from gengen.ggan import GGANRecipe, evaluate

    X, Y, lm, tg = make_data(n=150)
    ev = evaluate(
        X,
        Y,
        tg,
        same_gene=["T0"],
        folds=3,
        recipe=GGANRecipe(**{**FAST, "epochs": 40}),
        methods=("ggan", "dgex", "ridge", "knn", "mean"),
        device="cpu",
        quiet=True,
    )
    s = ev.summary.set_index("label")
    assert s.loc["GGAN", "n_targets"] == 15 and s.loc["GGAN [same gene]", "n_targets"] == 1
    assert s.loc["GGAN", "mae_mean"] < s.loc["KNN-GE", "mae_mean"] < s.loc["mean predictor", "mae_mean"]
    assert set(ev.per_gene["method"]) == {"ggan", "dgex", "ridge", "knn", "mean"}
    assert "±" in ev.table()


def test_ridge_init_and_refit_start_from_ridge():
    from gengen.ggan import GGANModel, GGANRecipe
    from gengen.ggan.baselines import ridge

    X, Y, lm, tg = make_data(n=60)
    r = GGANRecipe(**{**FAST, "epochs": 3, "ridge_init": True, "refit": True, "learning_rate": 1e-4})
    m = GGANModel.train_arrays(X[:50], Y[:50], landmarks=lm, targets=tg, recipe=r, device="cpu", quiet=True)
    assert m.recipe.linear_skip and m.metrics["refit"]
    pre = m.preprocessor
    ours = pre.y_scaler.transform(m.predict_array(X[50:]))
    base = ridge(pre.transform_x(X[:50]), pre.transform_y(Y[:50]), pre.transform_x(X[50:]))
    truth = pre.transform_y(Y[50:])
    assert np.abs(ours - truth).mean() < 1.2 * np.abs(base - truth).mean()


def test_scale_warnings_for_linear_reference_and_far_query(trained, capsys):
    from gengen.ggan import GGANModel, GGANRecipe

    model, adata = trained
    X = np.asarray(adata.X[:, :12], dtype=np.float32)
    model.predict_array(X)
    assert "far from the reference" not in capsys.readouterr().err
    model.predict_array(X + 15)  # ~10 reference SDs away: another platform's units?
    model.predict_array(X + 15)
    assert capsys.readouterr().err.count("far from the reference") == 1  # warned once
    with pytest.raises(GengenError, match="log2"):  # linear-scale query against a log-scale reference
        model.predict_array(np.exp2(X))
    lin = np.exp2(np.asarray(adata.X, dtype=np.float32))
    GGANModel.train_arrays(lin[:, :12], lin[:, 12:], landmarks=model.landmarks, targets=model.targets,
                           recipe=GGANRecipe(**{**FAST, "epochs": 1}), device="cpu", quiet=False)
    assert "looks linear-scale" in capsys.readouterr().err


def test_landmarks_match_across_ensembl_versions():
    import anndata as ad

    from gengen.ggan import GGANModel, GGANRecipe

    X, Y, _, _ = make_data(n=80, n_l=6, n_t=5)
    lm = [f"ENSG0000010{i}.2" for i in range(6)]
    model = GGANModel.train_arrays(X, Y, landmarks=lm, targets=[f"T{j}" for j in range(5)],
                                   recipe=GGANRecipe(hidden=8, layers=1, d_hidden=4, epochs=1, batch_size=40), device="cpu",
                                   quiet=True)
    query = ad.AnnData(X[:4, ::-1].copy(), var=pd.DataFrame(index=[g.replace(".2", ".7") for g in lm][::-1]))
    np.testing.assert_allclose(model.align(query, quiet=True), X[:4], rtol=1e-6)
    # an exact name wins over a sibling version; a stripped id shared by two columns is not guessed
    both = np.c_[X[:4], X[:4, :1] + 100, X[:4, 1:2] - 100]
    names = lm + [lm[0].replace(".2", ".9"), lm[1].replace(".2", ".9")]
    q2 = ad.AnnData(both, var=pd.DataFrame(index=names))
    np.testing.assert_allclose(model.align(q2, quiet=True), X[:4], rtol=1e-6)
