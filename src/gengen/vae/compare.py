"""The VAE against linear baselines at the same k: PCA and NMF (BioBombe's comparison), and PCA of the
whole input matrix (the PCA a user would run instead).

Reported per method: held-out reconstruction (BCE summed over genes, the VAE loss scale) and
cross-validated kNN accuracy of a label from the embedding of every sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError
from gengen.registry import VAE_COMPARISONS
from gengen.runtime import log
from gengen.training import split_indices
from gengen.vae.core import VAEModel, bce_per_sample
from gengen.vae.train import VAERecipe, resolve_vae_recipe

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


def knn_accuracy(embedding: np.ndarray, labels, *, n_neighbors: int = 5, n_repeats: int = 5, seed: int = 0) -> tuple[float, float]:
    """Repeated stratified k-fold accuracy of a kNN classifier (Euclidean) on ``embedding``.

    Folds: 5, or fewer when the smallest class is smaller; classes with one sample are dropped
    (they cannot be both trained on and tested). Returns (mean, sd) over all folds.

    Parameters
    ----------
    embedding : ``(n_samples, k)``.
    labels : one label per sample (missing labels are dropped).
    n_neighbors : k of the kNN classifier (fewer when classes are small).
    n_repeats : repeats of the stratified k-fold.
    seed : seed of the folds.

    Returns
    -------
    (mean accuracy, standard deviation over all folds).
    """
    import pandas as pd
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    y = pd.Series(np.asarray(labels, dtype=object)).astype(str)
    counts = y.value_counts()
    keep = (y != "nan").to_numpy() & y.map(counts).ge(2).to_numpy()
    y = y[keep].to_numpy()
    if len(set(y)) < 2:
        raise GengenError("the label needs at least 2 classes with 2 or more samples for kNN accuracy.")
    folds = int(min(5, pd.Series(y).value_counts().min()))
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=n_repeats, random_state=seed)
    k = int(min(n_neighbors, max(1, len(y) * (folds - 1) // folds - 1)))
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), np.asarray(embedding)[keep], y, cv=cv)
    return float(scores.mean()), float(scores.std())


METHODS = VAE_COMPARISONS  # the registry: iterate it for the names, register new methods on it
HELDOUT_FRACTION = 0.1  # held-out share for the reconstruction column when the VAE trains on every sample


def compare(
    adata: ad.AnnData,
    labels=None,
    recipe: VAERecipe | None = None,
    *,
    methods: tuple[str, ...] | None = None,
    repeats: int = 1,
    device: str = "auto",
    quiet: bool = True,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit each method at the same k; return (table, embeddings of the first repeat).

    Methods (:data:`gengen.registry.VAE_COMPARISONS`; :func:`register_comparison` adds one): ``vae``
    (the embedding ``vae-encode`` gives with this recipe), ``pca`` and ``nmf`` on the VAE's own
    selected [0, 1]-scaled genes, and ``pca-all``: PCA of the whole input matrix (every gene,
    centred, not scaled: what ``scanpy.pp.pca`` gives; after log2(x+1) when the VAE log-transformed the
    input), the PCA a user would run instead. The table has one row per method: k, heldout_bce, and
    (with ``labels``) knn_accuracy, knn_sd. An ``input`` row gives the kNN accuracy on all selected
    genes, for reference.

    kNN embeddings come from models fit the way the VAE is (on every sample when the recipe trains on
    every sample); the held-out reconstruction (BCE summed over genes) comes from fits on a seeded
    training split (the recipe's validation fraction, or 10 % when it has none: the VAE is then
    trained a second time on that split). ``pca-all`` has no held-out BCE (it is not on the [0, 1]
    genes). With ``repeats`` > 1 the whole comparison (split, VAE initialisation, CV folds) is redone
    with seeds seed, seed+1, ... and the table reports means, with the spread over repeats in ``*_sd``
    columns: on small cohorts the seed moves the VAE more than the gaps between methods.

    Parameters
    ----------
    adata : samples x genes, original units.
    labels : one label per sample (e.g. cancer type) for the kNN accuracy; None: no kNN columns.
    recipe : the VAE recipe (default: Tybalt's, sized to the data).
    methods : names in :data:`~gengen.registry.VAE_COMPARISONS` (default: every registered method).
    repeats : seeds to run (means and ``*_sd`` columns when > 1).
    device : where the VAE trains.
    quiet : no progress or status lines (the default for library calls).

    Returns
    -------
    (table: one row per method, embeddings of the first repeat: ``{method: (n_samples, k)}``).
    """
    import pandas as pd

    if repeats < 1:
        raise GengenError(f"repeats must be at least 1, got {repeats}.")
    methods = VAE_COMPARISONS.names() if methods is None else VAE_COMPARISONS.check(methods)
    base = resolve_vae_recipe(recipe or VAERecipe(), adata.n_obs, adata.n_vars)
    all_rows, first = [], None
    for r in range(repeats):
        rec = VAERecipe(**{**base.to_dict(), "seed": base.seed + r})
        rows, embeddings, n_train, n_val = _compare_once(adata, labels, rec, methods, device, quiet)
        all_rows += [{**row, "repeat": r} for row in rows]
        first = first or embeddings
    long = pd.DataFrame(all_rows)
    if repeats == 1:
        table = long.drop(columns="repeat")
    else:
        agg = {"k": ("k", "first"), "heldout_bce": ("heldout_bce", "mean"), "heldout_bce_sd": ("heldout_bce", "std")}
        if labels is not None:
            agg.update(knn_accuracy=("knn_accuracy", "mean"), knn_sd=("knn_accuracy", "std"))
        table = long.groupby("method", sort=False).agg(**agg).reset_index()
        table["repeats"] = repeats
    table.attrs.update(n_train=n_train, n_heldout=n_val, repeats=repeats, regime=base.regime)
    return table, first


def pca_of_matrix(X: np.ndarray, n_components: int, *, seed: int = 0) -> np.ndarray:
    """PCA scores of a whole matrix: every column, centred, not scaled (``scanpy.pp.pca``'s default)."""
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float32)
    k = int(min(n_components, X.shape[0], X.shape[1]))
    return PCA(n_components=k, random_state=seed).fit_transform(X - X.mean(axis=0))


def register_comparison(name: str, fit: Callable, *, label: str | None = None, replace: bool = False) -> None:
    """Add a method to :func:`compare` and ``vae-compare``, fitted like PCA and NMF.

    Parameters
    ----------
    name : the method's name in the table (and ``methods=``).
    fit : ``fit(x_fit, k, *, seed, quiet)`` on the VAE's [0, 1]-scaled genes (samples x genes) returning
        a fitted object with ``transform(X)`` (the embedding) and, for the held-out reconstruction
        column, ``inverse_transform(codes)`` (an sklearn decomposition fits both).
    label : a longer name for figures (default: ``name``).
    replace : allow replacing a method of the same name.

    Returns
    -------
    None.
    """
    VAE_COMPARISONS.register(name, fit, label=label, kind="scaled", replace=replace)


def fit_pca(x_fit: np.ndarray, k: int, *, seed: int = 0, quiet: bool = True):
    """A fitted sklearn PCA at ``k`` components on [0, 1] data (``transform`` / ``inverse_transform``)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=k, random_state=seed).fit(x_fit)


def fit_nmf(x_fit: np.ndarray, k: int, *, seed: int = 0, quiet: bool = True):
    """A fitted sklearn NMF at ``k`` components on [0, 1] data (nndsvda start, at most 400 iterations)."""
    import warnings

    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    nmf = NMF(n_components=k, init="nndsvda", max_iter=400, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported in one line below instead
        nmf.fit(x_fit)
    if nmf.n_iter_ >= nmf.max_iter:
        log(f"note: NMF stopped at {nmf.max_iter} iterations before converging", quiet)
    return nmf


def _reconstruct(fitted, x01: np.ndarray) -> np.ndarray:
    """``x01`` through a fitted method's embedding and back (NaN when it cannot map back)."""
    inverse = getattr(fitted, "inverse_transform", None)
    if inverse is None:
        return np.full_like(x01, np.nan)
    return np.asarray(inverse(fitted.transform(x01)))


def _compare_once(adata: ad.AnnData, labels, recipe: VAERecipe, methods: tuple[str, ...], device: str, quiet: bool):
    """One seed: (rows, embeddings, n_train, n_heldout) for the held-out split."""
    model = VAEModel.train(adata, recipe, device=device, quiet=quiet)
    frac = recipe.val_fraction if recipe.val_fraction > 0 else HELDOUT_FRACTION
    train_idx, val_idx = split_indices(adata.n_obs, frac, recipe.seed)
    if recipe.val_fraction > 0:
        held, fit_idx = model, train_idx
    else:  # the default model saw every sample: a second fit on the split for the held-out column
        log(f"held-out reconstruction: training a second VAE on {len(train_idx)} of {adata.n_obs} samples", quiet)
        held = VAEModel.train(adata, VAERecipe(**{**recipe.to_dict(), "val_fraction": frac}), device=device, quiet=quiet)
        fit_idx = np.arange(adata.n_obs)
    X = model.align(adata, quiet=quiet)
    k = model.latent_dim
    embeddings: dict[str, np.ndarray] = {}
    recon: dict[str, float] = {}
    if "vae" in methods:
        embeddings["vae"] = model.encode_array(X)
        recon["vae"] = held.reconstruction_bce(X[val_idx])
    Xs = np.clip(model.scaler.transform(X), 0, 1)  # the default model's genes and scale
    Xh = np.clip(held.scaler.transform(X), 0, 1)  # scaled on the split's training samples
    for name in methods:
        method = VAE_COMPARISONS[name]
        if method.kind == "scaled":
            fit = method.function()
            log(f"fitting {method.label} (k={min(k, len(train_idx), X.shape[1])})", quiet)
            on_split = fit(Xh[train_idx], int(min(k, len(train_idx), X.shape[1])), seed=recipe.seed, quiet=quiet)
            recon[name] = bce_per_sample(Xh[val_idx], _reconstruct(on_split, Xh[val_idx]))
            fitted = on_split if held is model else fit(Xs[fit_idx], int(min(k, len(fit_idx), X.shape[1])),
                                                        seed=recipe.seed, quiet=quiet)
            embeddings[name] = np.asarray(fitted.transform(Xs))
        elif method.kind == "matrix":
            whole = np.asarray(adata.X, dtype=np.float32)
            embeddings[name] = method.function()(np.log2(whole + 1) if model.scaler.log2p1 else whole, k,
                                                 seed=recipe.seed)
            recon[name] = float("nan")
    rows = []
    for name in [m for m in VAE_COMPARISONS if m in embeddings]:
        Z = embeddings[name]
        row = {"method": name, "k": Z.shape[1], "heldout_bce": recon[name]}
        if labels is not None:
            row["knn_accuracy"], row["knn_sd"] = knn_accuracy(Z, labels, seed=recipe.seed)
        rows.append(row)
    if labels is not None:
        acc, sd = knn_accuracy(Xs, labels, seed=recipe.seed)
        rows.append({"method": "input", "k": Xs.shape[1], "heldout_bce": float("nan"), "knn_accuracy": acc, "knn_sd": sd})
    return rows, embeddings, len(train_idx), len(val_idx)
