"""The VAE against linear baselines at the same k: PCA and NMF (BioBombe's comparison).

All methods are fit on the same training split of the same [0, 1]-scaled genes. Reported per method:
held-out reconstruction (BCE summed over genes, the VAE loss scale) and cross-validated kNN accuracy
of a label from the embedding of every sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError
from gengen.runtime import log
from gengen.vae.core import VAEModel, bce_per_sample
from gengen.vae.preprocess import split_indices
from gengen.vae.train import VAERecipe, resolve_recipe

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


def knn_accuracy(embedding: np.ndarray, labels, n_neighbors: int = 5, n_repeats: int = 5, seed: int = 0) -> tuple[float, float]:
    """Repeated stratified k-fold accuracy of a kNN classifier (Euclidean) on ``embedding``.

    Folds: 5, or fewer when the smallest class is smaller; classes with one sample are dropped
    (they cannot be both trained on and tested). Returns (mean, sd) over all folds.
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


def compare(
    adata: ad.AnnData,
    labels=None,
    recipe: VAERecipe | None = None,
    methods: tuple[str, ...] = ("vae", "pca", "nmf"),
    repeats: int = 1,
    device: str = "auto",
    quiet: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Fit each method at the same k on the same split; return (table, embeddings of the first repeat).

    The table has one row per method: k, heldout_bce, and (with ``labels``) knn_accuracy, knn_sd.
    An ``input`` row gives the kNN accuracy on all selected genes, for reference. With ``repeats`` > 1
    the whole comparison (split, VAE initialisation, CV folds) is redone with seeds seed, seed+1, ...
    and the table reports means, with the spread over repeats in ``*_sd`` columns: on small cohorts
    the seed moves the VAE more than the gaps between methods.
    """
    import pandas as pd

    if repeats < 1:
        raise GengenError(f"repeats must be at least 1, got {repeats}.")
    base = resolve_recipe(recipe or VAERecipe(), adata.n_obs, adata.n_vars)
    if base.val_fraction <= 0:
        raise GengenError("comparison needs a held-out split; use a validation fraction > 0.")
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
    table.attrs.update(n_train=n_train, n_heldout=n_val, repeats=repeats)
    return table, first


def _compare_once(adata: ad.AnnData, labels, recipe: VAERecipe, methods: tuple[str, ...], device: str, quiet: bool):
    """One split, one seed: (rows, embeddings, n_train, n_heldout)."""
    from sklearn.decomposition import NMF, PCA

    model = VAEModel.train(adata, recipe, device=device, quiet=quiet)
    X = model.align(adata)
    train_idx, val_idx = split_indices(X.shape[0], recipe.val_fraction, recipe.seed)
    Xs = np.clip(model.scaler.transform(X), 0, 1)
    k = model.latent_dim
    k_linear = int(min(k, len(train_idx), X.shape[1]))
    embeddings: dict[str, np.ndarray] = {}
    recon: dict[str, float] = {}
    if "vae" in methods:
        embeddings["vae"] = model.encode_array(X)
        recon["vae"] = model.reconstruction_bce(X[val_idx])
    if "pca" in methods:
        pca = PCA(n_components=k_linear, random_state=recipe.seed).fit(Xs[train_idx])
        embeddings["pca"] = pca.transform(Xs)
        recon["pca"] = bce_per_sample(Xs[val_idx], pca.inverse_transform(embeddings["pca"][val_idx]))
    if "nmf" in methods:
        log(f"fitting NMF (k={k_linear})", quiet)
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        nmf = NMF(n_components=k_linear, init="nndsvda", max_iter=400, random_state=recipe.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported in one line below instead
            nmf.fit(Xs[train_idx])
        if nmf.n_iter_ >= nmf.max_iter:
            log(f"note: NMF stopped at {nmf.max_iter} iterations before converging", quiet)
        embeddings["nmf"] = nmf.transform(Xs)
        recon["nmf"] = bce_per_sample(Xs[val_idx], embeddings["nmf"][val_idx] @ nmf.components_)
    rows = []
    for name, Z in embeddings.items():
        row = {"method": name, "k": Z.shape[1], "heldout_bce": recon[name]}
        if labels is not None:
            row["knn_accuracy"], row["knn_sd"] = knn_accuracy(Z, labels, seed=recipe.seed)
        rows.append(row)
    if labels is not None:
        acc, sd = knn_accuracy(Xs, labels, seed=recipe.seed)
        rows.append({"method": "input", "k": Xs.shape[1], "heldout_bce": float("nan"), "knn_accuracy": acc, "knn_sd": sd})
    return rows, embeddings, len(train_idx), len(val_idx)
