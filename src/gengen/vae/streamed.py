"""The Tybalt VAE on a matrix larger than memory: trained and applied block by block.

:meth:`gengen.vae.VAEModel.train` hands a :class:`~gengen.io.chunked.ChunkedExpression` here. The recipe
is Tybalt's, fitted the same way as in memory, with these differences, each recorded in
``recipe.notes``:

- one streaming pass over the file gathers what the in-memory path computes on the whole matrix:
  each gene's dispersion for the ranking (median or mean absolute deviation from per-gene histograms,
  within 1/512 of the range; variance exactly) over all samples, and each gene's minimum and maximum
  over the training split (the [0, 1] scaler, exact);
- training reads block-shuffled batches from the file (:class:`gengen.batches.StreamedRows`);
- the validation loss is measured each epoch on a seeded random subset of the held-out samples (all of
  them when they fit in 128 MB), read once and kept in memory; the rest of the held-out samples are
  neither trained on nor scored.

The small-cohort recipe (fewer samples than genes) needs its training matrix in memory (its KL
calibration and decoder-metric map use it whole); such data fit in memory anyway (``--stream off``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from gengen.batches import read_rows, stream_fingerprint, validation_subset
from gengen.errors import GengenError
from gengen.runtime import describe_device, log, resolve_device, seed_everything

if TYPE_CHECKING:
    import anndata as ad

    from gengen.io.chunked import ChunkedExpression
    from gengen.saved_model import SavedModel

def train_streamed(cls: type[SavedModel], data: ChunkedExpression, recipe, device, *, quiet: bool, on_epoch,
                   checkpoint) -> SavedModel:
    """:meth:`gengen.vae.VAEModel.train` (``cls``) on a streamed matrix (see the module docstring)."""
    import torch

    from gengen import distributed
    from gengen.batches import StreamedRows
    from gengen.io.streaming import GeneStats, gene_pass, histogram_range, pilot, rank_genes
    from gengen.training import split_indices
    from gengen.training_state import finish_model, open_training
    from gengen.vae.model import TybaltVAE
    from gengen.vae.preprocess import MinMaxScaler, resolve_log
    from gengen.vae.train import VAERecipe, fit_vae, resolve_vae_recipe, run_metrics

    ck = open_training(checkpoint, cls.pipeline, quiet)
    saved = ck.saved_recipe() if ck is not None and ck.resuming else None
    given = VAERecipe(**saved) if recipe is None and saved is not None else (recipe or VAERecipe())
    recipe = resolve_vae_recipe(given, data.n_obs, data.n_vars)
    if recipe.regime == "small":
        raise GengenError(f"{data.n_obs:,} samples < {recipe.n_genes:,} genes: the small-cohort recipe needs its training "
                          "matrix in memory, and one this size fits: use --stream off (or --regime tybalt).")
    sample = pilot(data)
    use_log, why = resolve_log(recipe.log_transform, sample)
    train_idx, val_idx = split_indices(data.n_obs, recipe.val_fraction, recipe.seed)

    def scaled(block: np.ndarray) -> np.ndarray:  # the scale the network sees (genes are ranked on it)
        return np.log2(block + 1) if use_log else block

    stats = GeneStats.empty(data.n_vars, histogram_range(data, scaled(sample)))
    lo, hi = np.full(data.n_vars, np.inf, np.float32), np.full(data.n_vars, -np.inf, np.float32)
    in_train = np.zeros(data.n_obs, bool)
    in_train[train_idx] = True

    def consume(pos: np.ndarray, block: np.ndarray) -> None:
        x = scaled(block)
        stats.update(x)
        keep = in_train[pos]
        if keep.any():
            np.minimum(lo, x[keep].min(axis=0), out=lo)
            np.maximum(hi, x[keep].max(axis=0), out=hi)

    sums = gene_pass(data, [consume], "gene statistics", quiet=quiet)  # under torchrun: each rank its share
    stats.merge_ranks()
    lo, hi = distributed.all_reduce_array(lo, "min"), distributed.all_reduce_array(hi, "max")
    if ck is not None:
        ck.check_data(stream_fingerprint(data, sums))
        ck.check_recipe({**recipe.to_dict(), "notes": []})
        if saved is not None:  # the original's notes, word for word
            given = VAERecipe(**saved)
            recipe = resolve_vae_recipe(given, data.n_obs, data.n_vars)
        ck.recipe_given = given.to_dict()
        ck.ready(recipe.epochs)
        if ck.finished_already(quiet):
            return cls.load(ck.directory, device=device)
    if not (stats.maximum > stats.minimum).any():
        raise GengenError(f"every gene is constant across the {data.n_obs:,} samples: there is nothing for a VAE to "
                          "learn; check the input file.")
    for note in recipe.notes:
        log(f"recipe: {note}", quiet)
    dev = resolve_device(device)
    seed_everything(recipe.seed)
    log(f"input: {why}", quiet)
    gene_idx = rank_genes(stats, recipe.n_genes, recipe.gene_rank)
    genes = [data.names[i] for i in gene_idx]
    scaler = MinMaxScaler(lo[gene_idx].copy(), hi[gene_idx].copy(), use_log)
    view = data.select(genes)
    span = scaler.scale

    def transform(block: np.ndarray) -> list[np.ndarray]:  # in place: the block is the loader's own copy
        x = np.asarray(block, np.float32)
        if use_log:
            np.log2(np.add(x, 1, out=x), out=x)
        np.subtract(x, scaler.minimum, out=x)
        np.divide(x, span, out=x)
        return [x]

    row_bytes = 4 * len(genes)
    rows = StreamedRows(view, train_idx, transform, device=dev, row_bytes=row_bytes, shard=distributed.shard(), cache=recipe.epochs > 1)
    scored = validation_subset(val_idx, row_bytes, recipe.seed)
    x_val = read_rows(view, scored, transform, quiet=quiet)[0] if len(scored) else None
    notes = [why, *data.notes,
             f"streamed training: block-wise shuffle (each epoch a uniformly random order of the file's blocks of "
             f"{data.matrix.block_samples:,} samples, shuffled uniformly within windows of ~{rows.window_rows:,} samples)",
             f"gene ranking ({recipe.gene_rank}) from per-gene histograms of one pass over all {data.n_obs:,} samples"]
    if len(val_idx):
        notes.append(f"validation loss on {len(scored):,} of the {len(val_idx):,} held-out samples"
                     + (" (a seeded random subset: all would not fit in 128 MB)" if len(scored) < len(val_idx) else ""))
    recipe.notes.extend(n for n in notes if n not in recipe.notes)
    module = TybaltVAE(len(genes), recipe.latent_dim, recipe.hidden, compat=recipe.tybalt_compat)
    model = cls(module, genes, scaler, recipe=recipe, device=str(dev))
    if ck is not None:
        ck.write_model = partial(model._checkpoint_parts, x_train=None)
    log(f"training VAE (streamed): {len(train_idx):,} train / {len(val_idx):,} validation samples, {len(genes)} genes, "
        f"k={recipe.latent_dim}, {recipe.epochs} epochs on {dev}", quiet)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(recipe.seed)
        history = fit_vae(module, rows, x_val, recipe=recipe, device=dev, quiet=quiet, on_epoch=on_epoch, checkpoint=ck)
    module.eval()
    model.history, model.metrics = history, run_metrics(history, dev)
    model.metrics["streamed"] = {"block_samples": int(data.matrix.block_samples), "window_samples": int(rows.window_rows),
                                 "validation_scored": int(len(scored)), "device": describe_device(dev)}
    return finish_model(model, ck, history)


def encode_streamed(model: SavedModel, data: ChunkedExpression, fill_missing: bool = False, *, quiet: bool = True
                    ) -> ad.AnnData:
    """The embedding of every chosen sample of a streamed file, block by block: an AnnData with the
    samples' metadata in ``obs`` (text fields longer than 200 characters on average left out), the
    embedding in ``obsm["X_vae"]`` and no expression (``X`` has no columns: the input stays on disk)."""
    import anndata as ad
    import pandas as pd

    from gengen.io.expression import gene_key
    from gengen.runtime import Progress

    model._require_encoder()
    wanted = set(model.genes) | {gene_key(g) for g in model.genes}
    present = [g for g in data.names if g in wanted or gene_key(g) in wanted]
    probe = ad.AnnData(np.zeros((0, len(present)), np.float32), var=pd.DataFrame(index=pd.Index(present)))
    model.align(probe, fill_missing, quiet)  # missing genes: the error (or the fill note) before any reading
    view = data.select(present)
    z = np.empty((data.n_obs, model.latent_dim), np.float32)
    with Progress(data.n_obs, "encoding", quiet) as bar:
        for pos, block in view.blocks():
            part = ad.AnnData(block, var=probe.var)
            z[pos] = model.encode(part, fill_missing, quiet=True)
            bar.update(len(pos))
    obs = data.obs()
    long = [c for c in obs.columns if obs[c].dtype == object and obs[c].astype(str).str.len().mean() > 200]
    obs = obs.drop(columns=long)
    obs.index = obs.index.astype(str)
    out = ad.AnnData(np.zeros((data.n_obs, 0), np.float32), obs=obs)
    out.obsm["X_vae"] = z
    return out
