"""GGAN on a reference larger than memory (a compendium such as ARCHS4): trained by blocks.

:meth:`gengen.ggan.GGANModel.train` hands a :class:`~gengen.io.chunked.ChunkedExpression` here. The
recipe is resolved for the reference's size as in memory (a streamed reference is large: D-GEX's
3 x 3,000 from 50,000 profiles), with these differences, each recorded in ``recipe.notes``:

- one streaming pass over the training split fits the landmark and target z-scores exactly (per-gene
  mean and standard deviation in float64); with ``--quantile`` a first pass builds D-GEX's quantile
  references (the mean sorted training profile, exact) and a second fits the z-scores of the
  quantile-normalised values;
- training reads block-shuffled batches (:class:`gengen.batches.StreamedRows`);
- the validation MAE (the epoch choice, early stopping) is measured on a seeded random subset of the
  held-out profiles (all of them when they fit in 128 MB), kept in memory;
- training starts from random weights: the leave-one-out ridge start (the default below 50,000
  profiles) and the refit on all profiles need the reference in memory (``--stream off``).

A trained model predicts a streamed query block by block through :func:`gengen.ggan.infer.infer_chunked`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gengen.checkpoint import overwrite_check
from gengen.errors import GengenError
from gengen.runtime import describe_device, log, resolve_device, seed_everything

if TYPE_CHECKING:
    from gengen.ggan.train import Model
    from gengen.io.chunked import ChunkedExpression


def names_only(names) -> object:
    """A zero-sample AnnData with these gene names: what the name-level helpers (probe mapping,
    landmark/target checks) read, without any expression values."""
    import anndata as ad
    import pandas as pd

    return ad.AnnData(np.zeros((0, len(names)), np.float32), var=pd.DataFrame(index=pd.Index([str(n) for n in names])))


def streamed_reference(data: ChunkedExpression, landmarks, targets=None, *, probe_map: bool | None = None,
                       quiet: bool = True) -> tuple[ChunkedExpression, list[str], list[str]]:
    """:func:`gengen.ggan.prepare_reference` for a streamed reference: landmark and target genes
    resolved (D-GEX probe maps averaged into genes as in memory), on names alone.

    Returns
    -------
    (the reference with landmark columns then target columns, landmark names, target names).
    """
    from gengen.ggan.reference import landmarks_and_targets, prepare_reference

    mapped, lm, tg = prepare_reference(names_only(data.names), landmarks, targets, probe_map=probe_map, quiet=quiet)
    lm, tg = landmarks_and_targets(mapped, lm, tg)  # names checked; constant genes after the statistics pass
    if "probes" in mapped.var.columns:
        pos = {n: j for j, n in enumerate(data.names)}
        var = mapped.var.loc[lm + tg]
        columns = [[pos[p] for p in str(probes).split(",") if p in pos] for probes in var["probes"]]
        return (data.with_columns(lm + tg, columns, gene=var["gene"].astype(str).tolist(),
                                  probes=var["probes"].astype(str).tolist()), lm, tg)
    return data.select(lm + tg), lm, tg


def _moments(data: ChunkedExpression, in_train: np.ndarray, split: int, transform, what: str, quiet: bool):
    """Exact per-gene moments of landmarks (columns before ``split``) and targets over the training
    samples (``in_train``: a mask over all samples), and every sample's sum (the data fingerprint)."""
    from gengen.io.streaming import GeneStats, gene_pass

    xs, ys = GeneStats.empty(split), GeneStats.empty(data.n_vars - split)

    def consume(pos, block):
        keep = in_train[pos]
        if keep.any():
            x, y = transform(block[keep])
            xs.update(x)
            ys.update(y)

    sums = gene_pass(data, [consume], what, quiet=quiet)
    return xs.merge_ranks(), ys.merge_ranks(), sums


def _quantile_references(data: ChunkedExpression, in_train: np.ndarray, split: int, quiet: bool):
    """D-GEX's quantile references (the mean sorted training profile of landmarks and of targets), exact."""
    from gengen import distributed
    from gengen.ggan.preprocess import QuantileNormalizer
    from gengen.io.streaming import gene_pass

    sums = [np.zeros(split), np.zeros(data.n_vars - split)]

    def consume(pos, block):
        block = block[in_train[pos]]
        sums[0] += np.sort(block[:, :split].astype(np.float64), axis=1).sum(axis=0)
        sums[1] += np.sort(block[:, split:].astype(np.float64), axis=1).sum(axis=0)

    gene_pass(data, [consume], "quantile references", quiet=quiet)
    n = int(in_train.sum())
    return [QuantileNormalizer((distributed.all_reduce_array(s, "sum") / n).astype(np.float32)) for s in sums]


def train_streamed(cls: type[Model], data: ChunkedExpression, landmarks: list[str], targets: list[str] | None,
                   *, recipe=None, device="auto", quiet=True, on_epoch=None, checkpoint=None) -> Model:
    """:meth:`GGANModel.train` on a streamed reference (see the module docstring)."""
    from gengen import distributed
    from gengen.runtime import plan_outputs

    if checkpoint is None or not distributed.is_main():
        return _train(cls, data, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint)
    with plan_outputs(models={checkpoint.directory: overwrite_check(cls.pipeline)}):  # locked from the start (no-op in the CLI)
        return _train(cls, data, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint)


def _train(cls, data, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint):
    import torch

    from gengen import distributed
    from gengen.batches import StreamedRows, read_rows, stream_fingerprint, validation_subset
    from gengen.ggan.defaults import resolve_ggan_recipe
    from gengen.ggan.loop import fit_ggan
    from gengen.ggan.preprocess import Preprocessor, ZScorer
    from gengen.ggan.train import build_networks, finite_or_none, outcome_note
    from gengen.io.expression import looks_like_counts
    from gengen.io.streaming import pilot
    from gengen.recipes import GGANRecipe
    from gengen.training import split_indices
    from gengen.training_state import finish_model, open_training

    data, lm, tg = streamed_reference(data, landmarks, targets, quiet=quiet)  # (a no-op when already resolved)
    split = len(lm)
    ck = open_training(checkpoint, cls.pipeline, quiet)
    saved = ck.saved_recipe() if ck is not None and ck.resuming else None
    given = GGANRecipe.from_dict(saved) if recipe is None and saved is not None else (recipe or GGANRecipe())
    given = _streamable(given)
    recipe = resolve_ggan_recipe(given, data.n_obs)
    train_idx, val_idx = split_indices(data.n_obs, recipe.val_fraction, recipe.seed)

    def parts(block):
        return block[:, :split], block[:, split:]

    in_train = np.zeros(data.n_obs, bool)
    in_train[train_idx] = True
    quantiles = _quantile_references(data, in_train, split, quiet) if recipe.quantile else None

    def normalised(block):
        x, y = parts(block)
        return (quantiles[0].transform(x), quantiles[1].transform(y)) if quantiles else (x, y)

    xs, ys, sums = _moments(data, in_train, split, normalised, "reference statistics", quiet)
    if ck is not None:
        ck.check_data(stream_fingerprint(data, sums))
        ck.check_recipe({**recipe.to_dict(), "notes": []})
        if saved is not None:
            given = _streamable(GGANRecipe.from_dict(saved))
            recipe = resolve_ggan_recipe(given, data.n_obs)
        ck.recipe_given = given.to_dict()
        ck.ready(recipe.epochs)
        if ck.finished_already(quiet):
            return cls.load(ck.directory, device=device)
    for role, s in (("landmark", xs), ("target", ys)):
        if not (s.maximum > s.minimum).any():
            raise GengenError(f"every {role} gene is constant across the {len(train_idx):,} training profiles: there "
                              "is nothing to learn; check the reference file.")
    for note in recipe.notes:
        log(f"recipe: {note}", quiet)
    dev = resolve_device(device)
    seed_everything(recipe.seed)
    sample = pilot(data)
    linear, why = looks_like_counts(sample[:, :split])
    if linear:
        log(f"warning: the reference looks linear-scale ({why}); GGAN, like D-GEX, models log-scale expression: "
            "log-transform it first (e.g. --normalize cpm for counts) and give queries on the same scale.", quiet)
    pre = Preprocessor(ZScorer(xs.mean.astype(np.float32), _std(xs, 1.0)), ZScorer(ys.mean.astype(np.float32), _std(ys, 0.0)),
                       *(quantiles or (None, None)))

    def transform(block):
        x, y = parts(block)
        return [pre.transform_x(x), pre.transform_y(y)]

    row_bytes = 4 * data.n_vars
    rows = StreamedRows(data, train_idx, transform, device=dev, row_bytes=row_bytes, shard=distributed.shard(), cache=recipe.epochs > 1)
    scored = validation_subset(val_idx, row_bytes, recipe.seed)
    xv, yv = read_rows(data, scored, transform, quiet=quiet) if len(scored) else (None, None)
    notes = [*data.notes,
             f"streamed training: block-wise shuffle (each epoch a uniformly random order of the file's blocks of "
             f"{data.matrix.block_samples:,} samples, shuffled uniformly within windows of ~{rows.window_rows:,} samples)",
             f"z-scores fitted exactly in one pass over the {len(train_idx):,} training profiles"
             + (" after quantile references from a first pass" if quantiles else "")]
    if len(val_idx):
        notes.append(f"validation MAE on {len(scored):,} of the {len(val_idx):,} held-out profiles"
                     + (" (a seeded random subset: all would not fit in 128 MB)" if len(scored) < len(val_idx) else ""))
    recipe.notes.extend(n for n in notes if n not in recipe.notes)
    var = data.var
    gene_info = {"landmark_genes": var["gene"].tolist()[:split], "target_genes": var["gene"].tolist()[split:],
                 "landmark_probes": [p.split(",") for p in var["probes"].tolist()[:split]]} if "gene" in var else {}
    gen, disc = build_networks(split, len(tg), recipe)
    log(f"training {'GGAN' if recipe.loss == 'gan' else 'D-GEX MLP'} (streamed): {len(train_idx):,} train / "
        f"{len(val_idx):,} validation profiles, {split} landmarks -> {len(tg)} targets, {recipe.layers} x {recipe.hidden} "
        f"hidden, up to {recipe.epochs} epochs on {describe_device(dev)}", quiet)
    model = cls(gen, lm, tg, preprocessor=pre, recipe=recipe, device=str(dev), landmark_fill=xs.mean.astype(np.float32),
                **gene_info)
    if ck is not None:
        ck.write_model = model._checkpoint_parts
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(recipe.seed)
        history = fit_ggan(gen, disc, rows, y_train=None, x_val=xv, y_val=yv, recipe=recipe, device=dev, quiet=quiet, on_epoch=on_epoch, checkpoint=ck)
    outcome = outcome_note(history, recipe)
    if outcome:
        recipe.notes.append(outcome)
    model.history = history
    model.metrics = {
        "best_epoch": history.attrs["best_epoch"], "best_val_mae": history.attrs["best_val_mae"],
        "gain_se": finite_or_none(history.attrs.get("gain_se")), "rejected_epoch": int(history.attrs.get("rejected_epoch", 0)),
        "epochs_run": len(history), "train_seconds": round(float(history.attrs["seconds"]), 3),
        "n_train": len(train_idx), "refit": False, "n_val": len(val_idx), "n_val_scored": len(scored),
        "device": describe_device(dev), "precision": history.attrs.get("precision", "fp32"), "streamed": True,
    }
    return finish_model(model, ck, history)


def _std(stats, constant_std: float) -> np.ndarray:
    """:class:`~gengen.ggan.preprocess.ZScorer`'s rule: the population standard deviation, ``constant_std`` for constant genes."""
    std = stats.std
    return np.where(std > 1e-6, std, constant_std).astype(np.float32)


def _streamable(recipe):
    """The recipe a streamed reference can train with: a ridge start or refit left to the default is
    turned off (both need the reference in memory, and a reference this size gets D-GEX's random start
    anyway); asked for explicitly, they are an error."""
    from gengen.recipes import GGANRecipe

    r = GGANRecipe.from_dict({**recipe.to_dict(), "notes": list(recipe.notes)})
    if r.ridge_init or r.refit:
        raise GengenError("--ridge-init / --refit need the reference in memory; leave them out to stream it, or use "
                          "--stream off.")
    if r.ridge_init is None:
        r.ridge_init = False
        r.notes.append("streamed: starts from random weights (the leave-one-out ridge start needs the reference in memory)")
    if r.refit is None:
        r.refit = False
    return r
