"""Training a :class:`gengen.ggan.GGANModel` on a reference in memory: the whole procedure behind
:meth:`~gengen.ggan.GGANModel.train` and :meth:`~gengen.ggan.GGANModel.train_arrays`.

The recipe is sized to the reference (:mod:`gengen.ggan.defaults`), the profiles split into training
and validation, the transforms fitted on the training split, the networks built (started at the
leave-one-out ridge map below 50,000 profiles) and trained by the loop (:mod:`gengen.ggan.loop`); the
epoch is chosen on validation and, on small references, the model refitted on every profile. A
reference larger than memory takes the same steps by blocks (:mod:`gengen.ggan.streamed`).

The model class comes in as ``cls``: this module sits below :mod:`gengen.ggan.core`, which delegates here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from gengen.checkpoint import overwrite_check
from gengen.errors import GengenError
from gengen.ggan.defaults import resolve_ggan_recipe
from gengen.ggan.loop import fit_ggan
from gengen.ggan.preprocess import Preprocessor
from gengen.ggan.reference import reference_arrays
from gengen.recipes import GGANRecipe
from gengen.runtime import describe_device, log, resolve_device, seed_everything
from gengen.training import split_indices

if TYPE_CHECKING:
    import anndata as ad

    from gengen.saved_model import SavedModel
    from gengen.training_state import Checkpointing

Model = TypeVar("Model", bound="SavedModel")  # GGANModel, passed in as ``cls``


def ridge_initialise(gen, x_train: np.ndarray, y_train: np.ndarray) -> float:
    """Start the generator at the leave-one-out-tuned ridge map: linear path = ridge weights, MLP
    output zeroed. With few profiles this puts training on top of the strongest simple baseline, and
    the adversarial / L1 / consistency losses refine the residual. Returns the ridge α."""
    import torch

    from gengen.ggan.baselines import ridge_fit

    info: dict = {}
    W, xm, ym = ridge_fit(x_train, y_train, info=info)
    last = gen.net[-1]
    with torch.no_grad():
        gen.skip.weight.copy_(torch.as_tensor(W.T, dtype=torch.float32))
        last.weight.zero_()
        last.bias.copy_(torch.as_tensor(ym - xm @ W, dtype=torch.float32))
    return float(info["alpha"])


def build_networks(n_x: int, n_y: int, recipe: GGANRecipe):
    """(generator, discriminator or None) for a resolved recipe (:func:`resolve_ggan_recipe`)."""
    from gengen.ggan.model import Discriminator, Generator

    if recipe.hidden is None or recipe.layers is None or (recipe.loss == "gan" and recipe.d_hidden is None):
        raise GengenError("the recipe's network sizes adapt to the data: resolve it first "
                          "(gengen.ggan.resolve_ggan_recipe(recipe, n_profiles)).")

    gen = Generator(
        n_x,
        n_y,
        (recipe.hidden,) * recipe.layers,
        dropout=recipe.dropout,
        activation=recipe.activation,
        input_noise=recipe.input_noise,
        linear_skip=bool(recipe.linear_skip),
    )
    disc = Discriminator(n_x, n_y, (recipe.d_hidden, max(1, recipe.d_hidden // 2))) if recipe.loss == "gan" else None
    return gen, disc


def train_in_memory(
    cls: type[Model],
    adata: ad.AnnData,
    landmarks: list[str],
    targets: list[str] | None = None,
    *,
    recipe: GGANRecipe | None = None,
    device: str = "auto",
    quiet: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint: Checkpointing | None = None,
) -> Model:
    """:meth:`GGANModel.train <gengen.ggan.GGANModel.train>` on a reference in memory: the landmark and
    target columns checked and taken out with their gene names and probes (:func:`reference_arrays`),
    then :func:`train_arrays`."""
    ref = reference_arrays(adata, landmarks, targets)
    return train_arrays(cls, ref.X, ref.Y, landmarks=ref.landmarks, targets=ref.targets, recipe=recipe, device=device,
                        quiet=quiet, on_epoch=on_epoch, checkpoint=checkpoint, **ref.gene_info())


def train_arrays(
    cls: type[Model],
    X: np.ndarray,
    Y: np.ndarray,
    *,
    landmarks: list[str],
    targets: list[str],
    recipe: GGANRecipe | None = None,
    device: str = "auto",
    quiet: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint: Checkpointing | None = None,
    **gene_info: Any,
) -> Model:
    """:meth:`GGANModel.train_arrays <gengen.ggan.GGANModel.train_arrays>` (its parameters): with a
    checkpoint, the folder is locked from the start."""
    from gengen import distributed

    if checkpoint is None or not distributed.is_main():  # (under torchrun rank 0 holds the output)
        return _train_arrays(cls, X, Y, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint, gene_info)
    from gengen.runtime import plan_outputs

    with plan_outputs(models={checkpoint.directory: overwrite_check(cls.pipeline)}):  # locked from the start (no-op in the CLI)
        return _train_arrays(cls, X, Y, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint, gene_info)


def _train_arrays(cls, X, Y, landmarks, targets, recipe, device, quiet, on_epoch, checkpoint, gene_info):
    import pandas as pd
    import torch

    from gengen.training_state import LoopState, data_fingerprint, finish_model, open_training

    if X.shape[0] != Y.shape[0]:
        raise GengenError(f"{X.shape[0]} landmark profiles but {Y.shape[0]} target profiles.")
    ck = open_training(checkpoint, cls.pipeline, quiet)
    if ck is not None:  # other data first: they would also resolve to other settings
        ck.check_data(data_fingerprint(X, Y, names=(landmarks, targets)))
    given = recipe or GGANRecipe()
    if ck is not None and ck.resuming and recipe is None and ck.saved_recipe() is not None:
        given = GGANRecipe.from_dict(ck.saved_recipe())
    recipe = resolve_ggan_recipe(given, X.shape[0])
    if ck is not None:
        ck.check_recipe({**recipe.to_dict(), "notes": []})
        if ck.resuming and ck.saved_recipe() is not None:  # the original's notes, word for word
            given = GGANRecipe.from_dict(ck.saved_recipe())
            recipe = resolve_ggan_recipe(given, X.shape[0])
        ck.recipe_given = given.to_dict()
        ck.ready(recipe.epochs)
        if ck.finished_already(quiet):
            return cls.load(ck.directory, device=device)
    train_idx, val_idx = split_indices(X.shape[0], recipe.val_fraction, recipe.seed)
    for note in recipe.notes:
        log(f"recipe: {note}", quiet)
    dev = resolve_device(device)
    seed_everything(recipe.seed)
    from gengen.io.expression import looks_like_counts

    linear, why = looks_like_counts(X)
    if linear:
        log(f"warning: the reference looks linear-scale ({why}); GGAN, like D-GEX, models log-scale "
            "expression: log-transform it first (e.g. log2(x+1)) and give queries on the same scale.", quiet)
    pre = Preprocessor.fit(X[train_idx], Y[train_idx], quantile=recipe.quantile)
    Xz, Yz = pre.transform_x(X), pre.transform_y(Y)
    gen, disc = build_networks(X.shape[1], Y.shape[1], recipe)
    if recipe.ridge_init:
        alpha = ridge_initialise(gen, Xz[train_idx], Yz[train_idx])
        log(f"generator starts from the ridge map (alpha {alpha:g})", quiet)
    log(
        f"training {'GGAN' if recipe.loss == 'gan' else 'D-GEX MLP'}: {len(train_idx)} train / "
        f"{len(val_idx)} "
        f"validation profiles, {X.shape[1]} landmarks -> {Y.shape[1]} targets, {recipe.layers} x "
        f"{recipe.hidden} hidden, "
        f"up to {recipe.epochs} epochs on {describe_device(dev)}",
        quiet,
    )
    model = cls(gen, landmarks, targets, preprocessor=pre, recipe=recipe, device=str(dev),
                landmark_fill=X[train_idx].mean(axis=0), **gene_info)
    phase1 = ck.carry.get("phase1") if ck is not None else None
    if phase1 is None:
        if ck is not None:
            ck.write_model = model._checkpoint_parts
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(recipe.seed)
            history = fit_ggan(
                gen,
                disc,
                Xz[train_idx],
                y_train=Yz[train_idx],
                x_val=Xz[val_idx] if len(val_idx) else None,
                y_val=Yz[val_idx] if len(val_idx) else None,
                recipe=recipe,
                device=dev,
                quiet=quiet,
                on_epoch=on_epoch,
                checkpoint=ck,
            )
    else:  # the run was interrupted in the refit: the epoch choice is in the checkpoint
        history = pd.DataFrame(phase1["history"])
        history.attrs.update(phase1["attrs"])
    outcome = outcome_note(history, recipe)
    if outcome:
        recipe.notes.append(outcome)
        log(f"recipe: {outcome}", quiet)
    best_epoch = int(history.attrs["best_epoch"])
    refit = len(val_idx) > 0 and (recipe.refit or (recipe.ridge_init and best_epoch == 0))
    if refit:
        # refit on every profile for the chosen number of epochs: with a few dozen profiles the
        # validation samples are too precious to leave out of the final model. When the ridge
        # start won, this is one ridge solve on all profiles, done whatever `refit` says: the
        # model is then exactly the ridge baseline, never a ridge fitted to less data
        train_idx = np.arange(X.shape[0])
        pre = Preprocessor.fit(X, Y, quantile=recipe.quantile)
        Xz, Yz = pre.transform_x(X), pre.transform_y(Y)
        torch.manual_seed(recipe.seed)
        gen, disc = build_networks(X.shape[1], Y.shape[1], recipe)
        if recipe.ridge_init:
            ridge_initialise(gen, Xz, Yz)
        if best_epoch > 0:
            per_epoch = -(-(X.shape[0] - len(val_idx)) // recipe.batch_size)  # same steps per epoch
            batch = -(-X.shape[0] // per_epoch)
            refit_recipe = GGANRecipe.from_dict(
                {**recipe.to_dict(), "epochs": best_epoch, "batch_size": batch, "notes": []}
            )
            if ck is not None:  # the epoch choice is made: checkpoint it, then the refit as it goes
                if phase1 is None:
                    ck.carry["phase1"] = {"history": history.to_dict("records"), "attrs": dict(history.attrs)}
                    ck.phase = "refit"
                    ck.save(LoopState({}, {}, phase="refit"), dev)  # the model: phase one's choice
                ck.phase = "refit"
                ck.total_epochs = best_epoch
                ck.write_model = cls(gen, landmarks, targets, preprocessor=pre, recipe=recipe, device=str(dev),
                                     landmark_fill=X.mean(axis=0), **gene_info)._checkpoint_parts
            more = fit_ggan(gen, disc, Xz, y_train=Yz, x_val=None, y_val=None, recipe=refit_recipe, device=dev, quiet=quiet, checkpoint=ck)
            history.attrs["seconds"] += more.attrs["seconds"]
        gen.eval()
        if best_epoch == 0 and recipe.ridge_init:
            log(f"final model: the ridge start, not a trained network: the ridge map refitted on all "
                f"{X.shape[0]} profiles (training.png says so too)", quiet)
        else:
            log(f"refitted on all {X.shape[0]} profiles for {best_epoch} epoch(s)", quiet)
    metrics = {
        "best_epoch": history.attrs["best_epoch"],
        "best_val_mae": history.attrs["best_val_mae"],
        "start_val_mae": finite_or_none(history.attrs.get("start_val_mae")),
        "gain_se": finite_or_none(history.attrs.get("gain_se")),
        "rejected_epoch": int(history.attrs.get("rejected_epoch", 0)),
        "epochs_run": len(history),
        "train_seconds": round(float(history.attrs["seconds"]), 3),
        "n_train": len(train_idx),
        "refit": bool(refit),
        "n_val": len(val_idx),
        "device": describe_device(dev),
        "precision": history.attrs.get("precision", "fp32"),
    }
    fill = X[train_idx].mean(axis=0)
    model = cls(
        gen,
        landmarks,
        targets,
        preprocessor=pre,
        recipe=recipe,
        history=history,
        metrics=metrics,
        device=str(dev),
        landmark_fill=fill,
        **gene_info,
    )
    return finish_model(model, ck, history)


def finite_or_none(x) -> float | None:
    """JSON-safe float (None for nan / inf)."""
    return float(x) if x is not None and np.isfinite(x) else None


def outcome_note(history, recipe: GGANRecipe) -> str:
    """One sentence on which checkpoint won and why (recorded in the recipe notes)."""
    if not recipe.ridge_init or "val_mae" not in history.columns:
        return ""
    best, rejected, gain = history.attrs["best_epoch"], history.attrs.get("rejected_epoch", 0), history.attrs["gain_se"]
    if best > 0:
        return (f"kept the trained network of epoch {best}: it beats the ridge start on validation by "
                f"{gain:.1f} standard errors (>= {recipe.start_margin:g})")
    if rejected:
        return (f"kept the ridge start: the best trained epoch ({rejected}) beat it on validation by only "
                f"{gain:.1f} standard errors (< {recipe.start_margin:g})")
    return "kept the ridge start: no trained epoch beat it on validation"
