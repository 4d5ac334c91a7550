"""User-facing VAE operations on AnnData: encode (training first if needed), decode, sample."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.runtime import log
from gengen.vae.core import EMBEDDING_KEY, VAEModel
from gengen.vae.train import VAERecipe

if TYPE_CHECKING:
    import anndata as ad


def encode(
    adata: ad.AnnData,
    model: VAEModel | str | os.PathLike | None = None,
    *,
    recipe: VAERecipe | None = None,
    save_model: str | os.PathLike | None = None,
    fill_missing: bool = False,
    device: str = "auto",
    quiet: bool = True,
) -> tuple[ad.AnnData, VAEModel]:
    """Embed ``adata`` with a VAE; without a model, train one on ``adata`` (Tybalt recipe) first.

    Returns a copy of ``adata`` with ``obsm["X_vae"]`` (z_mean) and ``uns["gengen"]`` (how it was
    made), and the model used. ``save_model`` writes a newly trained model there.

    Parameters
    ----------
    adata : samples x genes, original units (log2 or linear: the recipe decides and records it).
    model : a :class:`VAEModel`, a checkpoint folder or a store name; None trains one on ``adata``.
    recipe : settings when training (default: Tybalt's, sized to the data).
    save_model : where to save a newly trained model.
    fill_missing : fill genes the model needs but ``adata`` lacks with training mid-range values.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    quiet : no progress or status lines (the default for library calls).

    Returns
    -------
    (a copy of ``adata`` with ``obsm["X_vae"]`` and ``uns["gengen"]``, the model used).
    """
    trained = model is None
    if model is None:
        model = VAEModel.train(adata, recipe, device=device, quiet=quiet)
        if save_model is not None:
            model.save(save_model)
            model.path = Path(save_model)
            log(f"saved model to {save_model}", quiet)
    elif not isinstance(model, VAEModel):
        model = VAEModel.load(model, device=device)
    z = model.encode(adata, fill_missing=fill_missing, quiet=quiet)
    out = adata.copy()
    out.obsm[EMBEDDING_KEY] = z.astype(np.float32)
    out.uns["gengen"] = provenance(model, trained=trained)
    return out, model


def provenance(model: VAEModel, trained: bool) -> dict:
    """What made an embedding, in h5ad-safe types (no None)."""
    from gengen import __version__

    r = model.recipe
    info = {
        "pipeline": "vae",
        "embedding_key": EMBEDDING_KEY,
        "gengen_version": __version__,
        "model_path": str(getattr(model, "path", "") or ""),
        "trained_on_input": trained,
        "seed": int(r.seed),
        "device": str(model.metrics.get("device", model.device)),
        "latent_dim": int(model.latent_dim),
        "n_genes": len(model.genes),
        "gene_rank": r.gene_rank,
        "tybalt_compat": bool(r.tybalt_compat),
        "regime": str(r.regime),
        "embedding": "z_mean in decoder-metric coordinates" if model.latent_map is not None else "z_mean",
        "hidden": int(r.hidden or 0),
        "epochs": int(r.epochs or 0),
        "batch_size": int(r.batch_size or 0),
        "learning_rate": float(r.learning_rate),
        "kappa": float(r.kappa),
        "beta_max": float(r.beta_max if r.beta_max is not None else float("nan")),
    }
    return info


def decode_to_anndata(model: VAEModel, z: np.ndarray, obs_names=None) -> ad.AnnData:
    """Decoded profiles (original units) as AnnData with the model's genes."""
    import anndata as ad
    import pandas as pd

    X = model.decode(z)
    names = [str(n) for n in obs_names] if obs_names is not None else [f"sample_{i + 1}" for i in range(len(X))]
    out = ad.AnnData(X=X, obs=pd.DataFrame(index=names), var=pd.DataFrame(index=model.genes))
    out.obsm[EMBEDDING_KEY] = np.asarray(z, dtype=np.float32)
    out.uns["gengen"] = provenance(model, trained=False)
    return out


def read_latent(path: str | os.PathLike, model: VAEModel) -> tuple[np.ndarray, list[str]]:
    """Latent vectors from a CSV/TSV/Parquet table (samples x k) or an h5ad's ``obsm["X_vae"]``."""
    from gengen.errors import GengenError
    from gengen.io.expression import input_format, read_expression

    if input_format(path) == "h5ad":
        import anndata as ad

        a = ad.read_h5ad(path)
        if EMBEDDING_KEY not in a.obsm:
            raise GengenError(f"{str(path)!r} has no obsm[{EMBEDDING_KEY!r}]; encode it first with gengen vae-encode.")
        return np.asarray(a.obsm[EMBEDDING_KEY], dtype=np.float32), a.obs_names.tolist()
    a = read_expression(path, genes_in_rows=False, quiet=True)
    if a.n_vars != model.latent_dim:
        raise GengenError(f"{str(path)!r} has {a.n_vars} columns; this model's latent space has {model.latent_dim}.")
    return np.asarray(a.X, dtype=np.float32), a.obs_names.tolist()
