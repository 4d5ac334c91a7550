"""The VAE's small-cohort recipe: regime choice, input-unit weights, calibrated KL weight, decoder-metric
embedding, checkpoints (old and new), and the embedding against PCA of the whole matrix."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from gengen.errors import GengenError
from gengen.vae import VAEModel, VAERecipe, compare, knn_accuracy, resolve_vae_recipe
from gengen.vae.compare import pca_of_matrix
from gengen.vae.preprocess import MinMaxScaler
from gengen.vae.smallcohort import calibrated_beta, decoder_metric_map, gene_ranges, input_unit_weights

SHORT = dict(latent_dim=4, epochs=20, batch_size=20, seed=0)


def wide_cohort(n=60, genes=300, classes=3, shift=3.0, seed=0, nuisance=1.0):
    """A small cohort with more genes than samples: ``classes`` groups that differ by ``shift`` (in
    units of the genes' noise) in 40 marker genes, genes of unequal noise, and a 2-factor nuisance of
    scale ``nuisance`` on 30 % of the genes."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    sd = np.exp(rng.normal(np.log(0.5), 0.4, genes))
    X = rng.normal(6, 1.5, genes) + sd * rng.standard_normal((n, genes))
    markers = rng.choice(genes, 40, replace=False)
    X[:, markers] += (shift * rng.standard_normal((classes, 40)) * sd[markers])[y]
    X += rng.standard_normal((n, 2)) @ (nuisance * rng.standard_normal((2, genes)) * (rng.random(genes) < 0.3))
    obs = pd.DataFrame({"label": [f"c{c}" for c in y]}, index=[f"s{i}" for i in range(n)])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"G{j}" for j in range(genes)]))


@pytest.fixture(scope="module")
def small_model():
    """A small-regime model on a 60 x 300 cohort (trained briefly; shared by read-only tests)."""
    return VAEModel.train(wide_cohort(), VAERecipe(latent_dim=6, epochs=60), device="cpu", quiet=True)


# ---------------------------------------------------------------------------------------------- recipe
def test_tybalt_scale_recipe_is_exactly_tybalts():
    r = resolve_vae_recipe(VAERecipe(), 10459, 20530)
    assert r.regime == "tybalt"
    assert (r.latent_dim, r.n_genes, r.batch_size, r.epochs, r.learning_rate, r.kappa, r.beta_max, r.val_fraction) == (
        100, 5000, 50, 50, 5e-4, 1.0, 1.0, 0.1)
    assert r.notes == ["Tybalt recipe: 10459 samples >= 5000 genes"]


def test_small_cohort_recipe_and_overrides():
    r = resolve_vae_recipe(VAERecipe(), 64, 6830)
    assert r.regime == "small" and r.val_fraction == 0.0 and r.beta_max is None  # calibrated at training
    assert r.latent_dim == 16 and r.batch_size == 32 and r.epochs == 1500  # 2 batches x 1500 = 3000 steps
    assert any(n.startswith("small-cohort recipe: 64 samples < 5000 genes") for n in r.notes)
    # explicit values are kept; a regime can be forced either way
    kept = resolve_vae_recipe(VAERecipe(beta_max=0.5, val_fraction=0.2), 64, 6830)
    assert kept.beta_max == 0.5 and kept.val_fraction == 0.2 and kept.regime == "small"
    assert resolve_vae_recipe(VAERecipe(regime="tybalt"), 64, 6830).beta_max == 1.0
    assert resolve_vae_recipe(VAERecipe(regime="small"), 10459, 20530).regime == "small"
    # samples >= genes is Tybalt's regime, whatever the size
    assert resolve_vae_recipe(VAERecipe(), 300, 200).regime == "tybalt"
    with pytest.raises(GengenError, match="--regime"):
        resolve_vae_recipe(VAERecipe(regime="tiny"), 64, 100)


def test_tybalt_compat_is_unchanged_on_small_cohorts():
    r = resolve_vae_recipe(VAERecipe(tybalt_compat=True), 57, 22283)
    assert r.regime == "tybalt" and r.val_fraction == 0.1 and r.beta_max == 1.0 and r.batch_size == 25
    with pytest.raises(GengenError, match="tybalt-compat"):
        resolve_vae_recipe(VAERecipe(tybalt_compat=True, regime="small"), 57, 22283)
    model = VAEModel.train(wide_cohort(), VAERecipe(**SHORT, tybalt_compat=True), device="cpu", quiet=True)
    assert (model.history["beta"] == 0).all() and model.latent_map is None
    assert model.module.mean_activation == "relu" and "val_loss" in model.history


def test_tybalt_regime_trains_the_same_network_as_before():
    """The Tybalt path is the plain loop: no gene weights, ReLU z_mean, beta 1, 10 % validation, z_mean out."""
    import torch

    from gengen.vae.model import TybaltVAE
    from gengen.vae.preprocess import select_variable_genes, split_indices
    from gengen.vae.train import fit_vae

    a = wide_cohort()
    recipe = VAERecipe(**SHORT, regime="tybalt")
    model = VAEModel.train(a, recipe, device="cpu", quiet=True)
    X = np.asarray(a.X)
    idx = select_variable_genes(X, 300)
    tr, va = split_indices(60, 0.1, 0)
    scaler = MinMaxScaler.fit(X[tr][:, idx])
    xs = scaler.transform(X[:, idx])
    torch.manual_seed(0)
    module = TybaltVAE(300, 4)
    torch.manual_seed(0)
    fit_vae(module, xs[tr], xs[va], recipe=resolve_vae_recipe(recipe, 60, 300), device=torch.device("cpu"), quiet=True)
    module.eval()
    for name, weight in module.state_dict().items():  # the same network, bit for bit
        assert torch.equal(weight, model.module.state_dict()[name]), name
    with torch.no_grad():
        expected = module.encode_mean(torch.as_tensor(xs)).numpy()
    # encode() runs the same weights through its own batching and array layout: BLAS kernels may sum
    # in another order there (seen on AMD EPYC: 3e-6), so the embedding is compared to float32 rounding
    np.testing.assert_allclose(model.encode(a), expected, rtol=1e-5, atol=1e-5)
    assert model.recipe.beta_max == 1.0 and (expected >= 0).all()


# ------------------------------------------------------------------------------------------- mechanism
def test_input_unit_weights_count_error_in_input_units():
    scaler = MinMaxScaler(np.array([0.0, 1.0, 5.0], np.float32), np.array([1.0, 3.0, 5.0], np.float32))
    np.testing.assert_allclose(gene_ranges(scaler), [1, 2, 0])
    w = input_unit_weights(scaler)
    np.testing.assert_allclose(w, [0.6, 2.4, 0.0], rtol=1e-6)  # range^2 / mean(range^2) = [1, 4, 0] / (5/3)
    # a scaled error e on a gene of range r is an input-unit error r * e: w * e^2 = (r e)^2 / mean(r^2)
    e = 0.1
    np.testing.assert_allclose(w * e**2, (gene_ranges(scaler) * e) ** 2 / (5 / 3), rtol=1e-6)


def test_weighted_bce_implies_the_stated_gaussian_noise():
    """The derivation behind calibrated_beta: near p, w * BCE has curvature w / (p(1-p)) in scaled
    units, i.e. a Gaussian of variance mean(r^2) p(1-p) in input units."""
    import torch
    from torch.nn import functional as F

    r, mean_r2, p = 3.0, 5.0, 0.3
    w = r**2 / mean_r2

    def loss(d):  # weighted BCE of target p when the prediction is off by d input units (d / r scaled)
        q = torch.tensor(p + d / r, dtype=torch.float64)
        return float(w * F.binary_cross_entropy(q, torch.tensor(p, dtype=torch.float64)))

    h = 1e-3
    curvature = (loss(h) - 2 * loss(0.0) + loss(-h)) / h**2
    # a Gaussian log-likelihood d^2 / (2 sigma^2) has curvature 1 / sigma^2
    assert curvature == pytest.approx(1 / (mean_r2 * p * (1 - p)), rel=1e-4)


def test_calibrated_beta_matches_rank_k_noise():
    rng = np.random.default_rng(0)
    n, g, sigma = 400, 80, 0.2
    X = 5 + rng.standard_normal((n, 1)) * 2 @ rng.standard_normal((1, g)) + sigma * rng.standard_normal((n, g))
    scaler = MinMaxScaler.fit(X.astype(np.float32))
    x01 = scaler.transform(X.astype(np.float32))
    beta, residual, implied = calibrated_beta(x01, scaler, 1)
    assert residual == pytest.approx(sigma**2, rel=0.1)  # probabilistic PCA's noise estimate
    p = x01.mean(axis=0)
    assert implied == pytest.approx(float((gene_ranges(scaler) ** 2).mean() * (p * (1 - p)).mean()), rel=1e-5)
    assert beta == pytest.approx(residual / implied) and 0 < beta < 1
    assert calibrated_beta(x01[:, :3], MinMaxScaler(scaler.minimum[:3], scaler.maximum[:3]), 5)[0] == 1.0  # k >= genes


def test_decoder_metric_map_is_the_average_pullback_metric(small_model):
    import torch

    m = small_model
    a = wide_cohort()
    x01 = m.scaler.transform(m.align(a))
    T = m.latent_map
    # T T^T equals mean_i J_i^T J_i, J_i = d(decoded profile in input units) / dz at the sample's z_mean
    ranges = torch.as_tensor(gene_ranges(m.scaler), dtype=torch.float64)
    dec = copy.deepcopy(m.module.decoder[0]).double()
    with torch.no_grad():
        z = m.module.encode_mean(torch.as_tensor(x01)).double()
    metric = np.zeros((6, 6))
    for zi in z:
        J = torch.autograd.functional.jacobian(lambda v: ranges * torch.sigmoid(dec(v)), zi).numpy()
        metric += J.T @ J / len(z)
    np.testing.assert_allclose(T @ T.T, metric, rtol=1e-4, atol=1e-8 * np.abs(metric).max())
    # the embedding's axes are uncorrelated and ordered by variance, with fixed signs
    e = m.encode(a)
    cov = np.cov(e.T)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-3 * cov.max()
    assert (np.diff(np.diag(cov)) <= 1e-6).all()
    assert (e[np.abs(e).argmax(axis=0), np.arange(6)] > 0).all()
    np.testing.assert_allclose(decoder_metric_map(m.module, x01, m.scaler), T, rtol=1e-5, atol=1e-9)


def test_small_model_is_linear_and_decodes_its_own_coordinates(small_model):
    import torch

    m = small_model
    a = wide_cohort()
    assert m.recipe.regime == "small" and m.module.mean_activation == "linear"
    assert 0 < m.recipe.beta_max < 1 and any(n.startswith("KL weight beta") for n in m.recipe.notes)
    assert len(m.history) == 60 and "val_loss" not in m.history  # every sample trained
    e = m.encode(a)
    assert (e < 0).any()  # no ReLU
    x01 = m.scaler.transform(m.align(a))
    with torch.no_grad():
        direct = torch.sigmoid(m.module.decode_logits(m.module.encode_mean(torch.as_tensor(x01)))).numpy()
    np.testing.assert_allclose(m.decode(e, scaled=True), direct, atol=2e-5)
    # decoder weights are per unit of the embedding's features: logits = e @ W + b
    w = m.decoder_weights().to_numpy()
    bias = m.module.decoder[0].bias.detach().numpy()
    with torch.no_grad():
        logits = m.module.decode_logits(m.module.encode_mean(torch.as_tensor(x01))).numpy()
    np.testing.assert_allclose(e @ w + bias, logits, rtol=1e-3, atol=1e-3)
    # prior draws come back in embedding coordinates and decode inside the training range
    draws = m.sample_latent(20, seed=3)
    prior = np.random.default_rng(3).standard_normal((20, 6))
    np.testing.assert_allclose(draws, prior @ m.latent_map, rtol=1e-4, atol=1e-5)
    s = m.sample(20, seed=3)
    np.testing.assert_array_equal(s, m.decode(draws))


def test_small_checkpoint_round_trip_and_old_checkpoints_load(small_model, tmp_path):
    m = small_model
    a = wide_cohort()
    m.save(tmp_path / "small")
    cfg = json.loads((tmp_path / "small" / "config.json").read_text())
    assert cfg["architecture"]["mean_activation"] == "linear" and cfg["architecture"]["latent_map"] is True
    assert cfg["recipe"]["regime"] == "small" and 0 < cfg["recipe"]["beta_max"] < 1
    back = VAEModel.load(tmp_path / "small", device="cpu")
    np.testing.assert_array_equal(back.encode(a), m.encode(a))
    np.testing.assert_array_equal(back.latent_map, m.latent_map)
    z = m.encode(a)[:5]
    np.testing.assert_array_equal(back.decode(z), m.decode(z))
    # a checkpoint written before regimes existed: no mean_activation, latent map or regime keys
    old = VAEModel.train(a, VAERecipe(**SHORT, regime="tybalt"), device="cpu", quiet=True)
    old.save(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    cfg = json.loads(path.read_text())
    for key in ("mean_activation", "latent_map"):
        del cfg["architecture"][key]
    del cfg["recipe"]["regime"]
    cfg["recipe"]["beta_max"], cfg["recipe"]["val_fraction"] = 1.0, 0.1
    path.write_text(json.dumps(cfg))
    loaded = VAEModel.load(tmp_path / "old", device="cpu")
    assert loaded.module.mean_activation == "relu" and loaded.latent_map is None and loaded.recipe.regime == "tybalt"
    np.testing.assert_array_equal(loaded.encode(a), old.encode(a))
    # config and weights that disagree about the map are a corrupted checkpoint
    cfg["architecture"]["latent_map"] = True
    path.write_text(json.dumps(cfg))
    with pytest.raises(GengenError, match="inconsistent"):
        VAEModel.load(tmp_path / "old", device="cpu")


# ----------------------------------------------------------------------------------- against PCA
def test_default_embedding_at_least_as_good_as_whole_matrix_pca():
    """Strong labels on a 60 x 200 cohort (fewer samples than genes): the default embedding's 5-fold
    kNN accuracy is >= PCA of the whole matrix at the same k. (With a nuisance that dominates the
    variance, nuisance=1.0, both fall and the default can sit a few points below PCA: docs/vae.md.)"""
    a = wide_cohort(shift=3.0, genes=200, nuisance=0.5, seed=1)
    model = VAEModel.train(a, VAERecipe(), device="cpu", quiet=True)
    assert model.recipe.regime == "small" and model.latent_dim == 15
    y = a.obs["label"].to_numpy()
    vae = knn_accuracy(model.encode(a), y)[0]
    pca = knn_accuracy(pca_of_matrix(a.X, model.latent_dim), y)[0]
    assert vae >= pca and vae > 0.95


def test_calibrated_kl_weight_keeps_latent_features_active():
    """Tybalt's beta = 1 with BCE on a few hundred genes pushes every feature toward the prior (a few
    nats of KL in all); the calibrated weight keeps them in use."""
    a = wide_cohort(genes=200)
    short = dict(latent_dim=8, epochs=300, seed=0)
    small = VAEModel.train(a, VAERecipe(**short), device="cpu", quiet=True)
    tybalt = VAEModel.train(a, VAERecipe(**short, regime="tybalt"), device="cpu", quiet=True)
    kl_small, kl_tybalt = small.history["train_kl"].iloc[-1], tybalt.history["train_kl"].iloc[-1]
    assert kl_small > 3 * kl_tybalt, (kl_small, kl_tybalt)

    def kl_per_feature(model):  # mean KL(q(z_j | x) || N(0, 1)) over samples, per latent feature
        import torch

        model.module.eval()
        with torch.no_grad():
            mu, log_var = model.module.encode(torch.as_tensor(model.scaler.transform(model.align(a))))
        return (0.5 * (mu**2 + log_var.exp() - 1 - log_var)).mean(dim=0).numpy()

    assert kl_per_feature(small).min() > kl_per_feature(tybalt).max()  # every feature carries more


def test_compare_reports_pca_of_the_whole_matrix():
    a = wide_cohort(shift=3.0)
    table, emb = compare(a, a.obs["label"].to_numpy(), VAERecipe(latent_dim=5, epochs=30), device="cpu", quiet=True)
    assert list(table["method"]) == ["vae", "pca", "pca-all", "nmf", "input"]
    assert table.attrs["regime"] == "small" and table.attrs["n_heldout"] == 6
    row = table.set_index("method")
    assert np.isnan(row.loc["pca-all", "heldout_bce"]) and np.isfinite(row.loc[["vae", "pca", "nmf"], "heldout_bce"]).all()
    # pca-all is PCA of every gene, centred and not scaled: same distances as scanpy-style PCA
    X = np.asarray(a.X, np.float64)
    u, s, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(emb["pca-all"]), np.abs(u[:, :5] * s[:5]), rtol=1e-3, atol=1e-2)
    assert emb["vae"].shape == (60, 5) and row.loc["pca-all", "knn_accuracy"] > 0.9
    with pytest.raises(GengenError, match="unknown comparison"):
        compare(a, None, VAERecipe(**SHORT), methods=("vae", "ica"))
