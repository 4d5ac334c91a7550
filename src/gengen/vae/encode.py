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
    reconstruct: bool = False,
    input_file: str | os.PathLike | None = None,
    device: str = "auto",
    quiet: bool = True,
) -> tuple[ad.AnnData, VAEModel]:
    """Embed ``adata`` with a VAE; without a model, train one on ``adata`` (Tybalt recipe) first.

    Returns a copy of ``adata`` with what a scanpy user looks for: ``obsm["X_vae"]`` (the embedding),
    ``var["vae_used"]`` (the genes the model reads), ``varm["vae_loadings"]`` (genes x k decoder
    weights, NaN for genes the model does not read), ``layers["vae_reconstructed"]`` on request, and
    ``uns["gengen"]`` (how it was made: model path, input file, seed, recipe); and the model used.
    ``save_model`` writes a newly trained model there.

    Parameters
    ----------
    adata : samples x genes, original units (log2 or linear: the recipe decides and records it).
    model : a :class:`VAEModel`, a checkpoint folder or a store name; None trains one on ``adata``.
    recipe : settings when training (default: Tybalt's, sized to the data).
    save_model : where to save a newly trained model.
    fill_missing : fill genes the model needs but ``adata`` lacks with training mid-range values.
    reconstruct : add ``layers["vae_reconstructed"]``: each sample decoded from its embedding, in the
        input's units (NaN for genes the model does not read).
    input_file : the file ``adata`` was read from, recorded in ``uns["gengen"]``.
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
    annotate_genes(out, model, reconstruct_from=z if reconstruct else None)
    out.uns["gengen"] = provenance(model, trained=trained, input_file=input_file)
    return out, model


LOADINGS_KEY = "vae_loadings"  # varm: genes x k decoder weights
USED_KEY = "vae_used"  # var: the genes the model reads
RECONSTRUCTED_KEY = "vae_reconstructed"  # layers: decoded embeddings, the input's units


def annotate_genes(out: ad.AnnData, model: VAEModel, reconstruct_from: np.ndarray | None = None) -> None:
    """Add ``var["vae_used"]``, ``varm["vae_loadings"]`` (genes x k: each gene's decoder weight per
    feature ``vae_1..vae_k``, NaN for genes the model does not read) and, given the embedding,
    ``layers["vae_reconstructed"]`` (NaN outside the model's genes) to ``out`` in place.

    Parameters
    ----------
    out : the embedded data (samples x genes).
    model : the model that embedded it.
    reconstruct_from : the embedding to decode into the layer (None: no layer).
    """
    pos = model.gene_positions(out.var_names)
    model_cols = np.array([j for j, g in enumerate(model.genes) if g in pos], dtype=np.int64)
    data_cols = np.array([pos[model.genes[j]] for j in model_cols], dtype=np.int64)
    used = np.zeros(out.n_vars, dtype=bool)
    used[data_cols] = True
    out.var[USED_KEY] = used
    weights = model.decoder_weights().to_numpy(dtype=np.float32)  # k x model genes
    loadings = np.full((out.n_vars, weights.shape[0]), np.nan, dtype=np.float32)
    loadings[data_cols] = weights[:, model_cols].T
    out.varm[LOADINGS_KEY] = loadings
    if reconstruct_from is not None:
        decoded = model.decode(np.asarray(reconstruct_from, dtype=np.float32))
        layer = np.full(out.shape, np.nan, dtype=np.float32)
        layer[:, data_cols] = decoded[:, model_cols]
        out.layers[RECONSTRUCTED_KEY] = layer


def provenance(model: VAEModel, trained: bool, input_file: str | os.PathLike | None = None) -> dict:
    """What made an embedding, in h5ad-safe types (no None)."""
    from gengen import __version__

    r = model.recipe
    model_path = getattr(model, "path", "") or ""
    info = {
        "pipeline": "vae",
        "embedding_key": EMBEDDING_KEY,
        "gengen_version": __version__,
        "model_path": os.path.abspath(model_path) if model_path else "",
        "input_file": os.path.abspath(input_file) if input_file else "",
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
