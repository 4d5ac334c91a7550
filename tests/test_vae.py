"""The Tybalt VAE library: preprocessing, training, determinism, checkpoints, features, comparison."""

from __future__ import annotations

import numpy as np
import pytest

from gengen.errors import GengenError
from gengen.vae import (
    MinMaxScaler,
    VAEModel,
    VAERecipe,
    compare,
    encode,
    gene_dispersion,
    resolve_vae_recipe,
    select_variable_genes,
    separating_features,
    top_genes,
)
from gengen.vae.train import kl_weight

FAST = dict(latent_dim=4, epochs=30, batch_size=20, seed=0)


@pytest.fixture(scope="module")
def toy_model():
    """One model trained long enough to be good (150 epochs x 6 steps), shared by read-only tests."""
    from conftest import make_toy_expression

    return VAEModel.train(make_toy_expression(), VAERecipe(**{**FAST, "epochs": 150}), device="cpu", quiet=True)


def test_gene_ranking_median_vs_mean():
    X = np.array([[0, 0, 0], [0, 1, 10], [0, 2, 0], [0, 3, 0], [0, 4, 0]], dtype=float)
    # column 2: one outlier -> median AD 0, mean AD 3.2; column 1: spread -> median AD 1, mean AD 1.2
    np.testing.assert_allclose(gene_dispersion(X, "median-ad"), [0, 1, 0])
    np.testing.assert_allclose(gene_dispersion(X, "mean-ad"), [0, 1.2, 3.2])
    assert list(select_variable_genes(X, 1, "median-ad")) == [1]
    assert list(select_variable_genes(X, 1, "mean-ad")) == [2]
    with pytest.raises(GengenError):
        gene_dispersion(X, "bogus")


def test_scaler_round_trip_and_constant_genes():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 2, (30, 4)).astype(np.float32)
    X[:, 3] = 7.0
    s = MinMaxScaler.fit(X)
    Xs = s.transform(X)
    assert Xs.min() >= 0 and Xs.max() <= 1 and np.all(Xs[:, 3] == 0)
    np.testing.assert_allclose(s.inverse_transform(Xs), X, rtol=1e-5, atol=1e-5)
    s2 = MinMaxScaler.from_dict(s.to_dict())
    np.testing.assert_array_equal(s2.transform(X), Xs)


def test_recipe_adapts_to_small_data_and_keeps_tybalt_defaults():
    big = resolve_vae_recipe(VAERecipe(), 10459, 20000)
    assert (big.latent_dim, big.n_genes, big.batch_size, big.epochs) == (100, 5000, 50, 50)
    small = resolve_vae_recipe(VAERecipe(), 57, 22283)  # small-cohort regime: every sample trains
    assert small.latent_dim == 14 and small.batch_size == 28 and small.epochs > 50 and small.notes
    assert kl_weight(0, 1.0, False) == 0.0 and kl_weight(1, 1.0, False) == 1.0
    assert kl_weight(5, 0.1, False) == pytest.approx(0.5)
    assert kl_weight(10, 1.0, True) == 0.0
    assert kl_weight(3, 1.0, False, beta_max=0.25) == 0.25


def test_training_reduces_loss_and_embeds(toy_expression, toy_model):
    model = toy_model
    h = model.history
    assert list(h.columns[:5]) == ["epoch", "beta", "train_recon", "train_kl", "train_loss"]
    assert h["train_recon"].iloc[-1] < h["train_recon"].iloc[0] - 1.0
    # reconstruction beats predicting each gene's mean (BCE has a non-zero floor for non-binary data)
    from gengen.vae.core import bce_per_sample

    xs = np.clip(model.scaler.transform(model.align(toy_expression)), 0, 1)
    mean_bce = bce_per_sample(xs, np.broadcast_to(xs.mean(0), xs.shape))
    assert model.reconstruction_bce(model.align(toy_expression)) < mean_bce - 1.0
    assert h["val_loss"].notna().all()
    z = model.encode(toy_expression)
    assert z.shape == (120, 4) and np.isfinite(z).all() and (z >= 0).all()  # ReLU'd z_mean, as Tybalt
    # the embedding carries the planted groups
    table = separating_features(z, toy_expression.obs["group"].to_numpy())
    assert table["auroc"].min() > 0.9


def test_fast_mean_encoder_matches_full_encoder(toy_expression, toy_model):
    import torch

    x = torch.as_tensor(toy_model.scaler.transform(toy_model.align(toy_expression)))
    toy_model.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(toy_model.module.encode_mean(x), toy_model.module.encode(x)[0])


def test_determinism_same_seed_identical(toy_expression):
    short = {**FAST, "epochs": 5}
    a = VAEModel.train(toy_expression, VAERecipe(**short), device="cpu", quiet=True).encode(toy_expression)
    b = VAEModel.train(toy_expression, VAERecipe(**short), device="cpu", quiet=True).encode(toy_expression)
    c = VAEModel.train(toy_expression, VAERecipe(**{**short, "seed": 1}), device="cpu", quiet=True).encode(toy_expression)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_checkpoint_round_trip_bit_identical(toy_expression, toy_model, tmp_path):
    model = toy_model
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"model.safetensors", "config.json", "history.csv", "training.png"}
    loaded = VAEModel.load(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(model.encode(toy_expression), loaded.encode(toy_expression))
    z = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.decode(z), loaded.decode(z))
    assert loaded.genes == model.genes and loaded.recipe.seed == 0


def test_decode_and_sample_in_original_units(toy_expression, toy_model):
    model = toy_model
    X = np.asarray(toy_expression.X)
    recon = model.decode(model.encode(toy_expression))
    assert recon.shape == X.shape
    # original units: near the data's scale, and better than predicting the gene means
    assert np.abs(recon - X).mean() < np.abs(X - X.mean(0)).mean()
    samples = model.sample(50, seed=1)
    assert samples.shape == (50, 60)
    lo, hi = model.scaler.minimum, model.scaler.maximum
    assert (samples >= lo - 1e-4).all() and (samples <= hi + 1e-4).all()
    with pytest.raises(GengenError, match="columns"):
        model.decode(np.zeros((2, 3)))


def test_gene_alignment_by_name(toy_expression, toy_model):
    model = toy_model
    shuffled = toy_expression[:, toy_expression.var_names[::-1]].copy()
    np.testing.assert_allclose(model.encode(shuffled), model.encode(toy_expression), rtol=1e-5, atol=1e-6)
    missing = toy_expression[:, toy_expression.var_names[3:]].copy()
    with pytest.raises(GengenError, match="3 of the model's 60 genes are missing"):
        model.encode(missing)
    assert model.encode(missing, fill_missing=True, quiet=True).shape == (120, 4)
    other = toy_expression.copy()
    other.var_names = [f"X{i}" for i in range(60)]
    with pytest.raises(GengenError, match="none of the model's"):
        model.encode(other)


def test_hidden_layer_and_compat_variants(toy_expression):
    short = {**FAST, "epochs": 5}
    two = VAEModel.train(toy_expression, VAERecipe(**short, hidden=16), device="cpu", quiet=True)
    assert two.decoder_weights().shape == (4, 60)
    compat = VAEModel.train(toy_expression, VAERecipe(**short, tybalt_compat=True), device="cpu", quiet=True)
    assert (compat.history["beta"] == 0).all()
    # ReLU on the log-variance forces sigma >= 1
    import torch

    with torch.no_grad():
        _, log_var = compat.module.encode(torch.as_tensor(compat.scaler.transform(compat.align(toy_expression))))
    assert (log_var >= 0).all()


def test_top_genes_table():
    import pandas as pd

    w = pd.DataFrame([[0.5, -2.0, 1.0], [0.0, 0.1, -0.3]], index=["vae_1", "vae_2"], columns=["A", "B", "C"])
    t = top_genes(w, 1)
    first = t[t.feature == "vae_1"].set_index("direction")
    assert first.loc["positive", "gene"] == "C" and first.loc["negative", "gene"] == "B"
    assert len(t) == 4


def test_encode_trains_when_no_model(toy_expression, tmp_path):
    out, model = encode(toy_expression, recipe=VAERecipe(**FAST), save_model=tmp_path / "m", device="cpu", quiet=True)
    assert out.obsm["X_vae"].shape == (120, 4)
    assert out.uns["gengen"]["seed"] == 0 and out.uns["gengen"]["trained_on_input"]
    assert (tmp_path / "m" / "config.json").is_file()
    assert "X_vae" not in toy_expression.obsm  # input untouched


def test_compare_reports_all_methods(toy_expression):
    table, emb = compare(toy_expression, toy_expression.obs["group"].to_numpy(),
                         VAERecipe(**{**FAST, "val_fraction": 0.2}), device="cpu", quiet=True)
    assert list(table["method"]) == ["vae", "pca", "pca-all", "nmf", "input"]
    assert (table["k"].iloc[:4] == 4).all() and table.attrs["regime"] == "tybalt"
    bce = table.set_index("method")["heldout_bce"]
    assert bce[["vae", "pca", "nmf"]].between(0, 60 * np.log(2) * 2).all() and np.isnan(bce["pca-all"])
    assert table["knn_accuracy"].min() > 0.8  # three well separated groups
    assert emb["pca"].shape == (120, 4)


def test_compare_repeats_average_over_seeds(toy_expression):
    table, _ = compare(toy_expression, toy_expression.obs["group"].to_numpy(),
                       VAERecipe(**{**FAST, "epochs": 5, "val_fraction": 0.2}), methods=("vae", "pca"),
                       repeats=2, device="cpu", quiet=True)
    assert list(table["method"]) == ["vae", "pca", "input"]  # only the methods asked for
    assert (table["repeats"] == 2).all() and table["knn_sd"].notna().all()
    with pytest.raises(GengenError, match="repeats"):
        compare(toy_expression, None, VAERecipe(**FAST), repeats=0)


def test_counts_are_detected_and_log_transformed(toy_expression, tmp_path):
    from gengen.vae.preprocess import looks_like_counts, resolve_log

    rng = np.random.default_rng(1)
    # counts whose group structure lives on the log scale, with a heavy tail
    counts = rng.poisson(np.exp2(toy_expression.X - 2)).astype(np.float32)
    assert looks_like_counts(counts)[0]
    assert not looks_like_counts(toy_expression.X)[0]  # log-scale floats
    assert not looks_like_counts(np.round(toy_expression.X))[0]  # small integers: not clearly counts
    assert looks_like_counts(counts * 1.37)[0]  # linear-scale floats (TPM-like) too
    assert resolve_log("auto", counts)[0] and not resolve_log("no", counts)[0]
    with pytest.raises(GengenError, match="negative"):
        resolve_log("yes", toy_expression.X - 10)
    with pytest.raises(GengenError, match="--log"):
        resolve_log("maybe", counts)

    adata = toy_expression.copy()
    adata.X = counts
    model = VAEModel.train(adata, VAERecipe(**{**FAST, "epochs": 40}), device="cpu", quiet=True)
    assert model.scaler.log2p1
    assert any("raw counts" in n for n in model.recipe.notes)
    z = model.encode(adata)
    assert np.isfinite(z).all()
    # decoded values come back as counts (non-negative, on the input's scale)
    dec = model.decode(z)
    assert dec.min() >= -1e-3 and 0.2 < dec.mean() / counts[:, [adata.var_names.get_loc(g) for g in model.genes]].mean() < 5
    # the log flag survives the checkpoint
    model.save(tmp_path / "m")
    again = VAEModel.load(tmp_path / "m", device="cpu")
    assert again.scaler.log2p1
    np.testing.assert_allclose(again.encode(adata), z, atol=1e-6)
    # log-scale data given to a counts model: a clear error, not silent nonsense
    for shift in (-3, 0):  # log2(x+1) values, centred or not
        logged = adata.copy()
        logged.X = np.log2(counts + 1) + shift
        with pytest.raises(GengenError, match="raw counts"):
            model.encode(logged)
    # and the reverse: counts given to a model trained on log-scale data
    log_model = VAEModel.train(toy_expression, VAERecipe(**{**FAST, "epochs": 2}), device="cpu", quiet=True)
    assert not log_model.scaler.log2p1
    with pytest.raises(GengenError, match="log-transform them"):
        log_model.encode(adata)


def test_numeric_label_with_many_values_is_refused():
    import anndata as ad
    import pandas as pd

    from gengen.vae.features import labels_from

    a = ad.AnnData(np.zeros((60, 2), np.float32), obs=pd.DataFrame(
        {"age": np.arange(60) + 20.5, "stage": np.arange(60) % 4, "type": ["x", "y"] * 30},
        index=[f"s{i}" for i in range(60)]))
    with pytest.raises(GengenError, match="numeric with 60 distinct"):
        labels_from(a, "age")
    a.obs["years"] = np.arange(60) + 20  # integers, but one per sample
    with pytest.raises(GengenError, match="60 distinct values among 60"):
        labels_from(a, "years")
    assert len(set(labels_from(a, "stage"))) == 4 and len(set(labels_from(a, "type"))) == 2
    a.obs["cluster"] = np.arange(60) % 30  # integer codes are categories, however many
    assert len(set(labels_from(a, "cluster"))) == 30
