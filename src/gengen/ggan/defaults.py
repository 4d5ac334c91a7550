"""The GGAN recipe's adaptive defaults: every field left at ``None`` sized to the reference.

D-GEX's recipe is sized for ~100,000 profiles; :func:`resolve_ggan_recipe` sizes the network, the
start, the validation split, early stopping and the learning rate to the reference at hand and says
why in ``recipe.notes`` (docs/ggan.md lists the thresholds). :func:`check_recipe` refuses impossible
explicit values before any data are read.
"""

from __future__ import annotations

import math

from gengen.errors import GengenError
from gengen.recipes import GGANRecipe
from gengen.runtime import PRECISIONS

# Reference sizes (profiles, before the validation split) at which the default recipe changes; see
# resolve_ggan_recipe and docs/ggan.md. Below SMALL_REFERENCE a 10 % validation split is a handful of
# profiles and the leave-one-out ridge map is the model to beat (it was on every shared reference of
# 57-700 profiles); from DGEX_REFERENCE on, the data are of the size D-GEX was trained on (88,807 GEO
# profiles) and get its recipe unchanged: 3 x 3,000 tanh, Adam 5e-4, batch 200, no linear path.
SMALL_REFERENCE = 2_000
DGEX_REFERENCE = 50_000
SMALL_HIDDEN = 512
DGEX_HIDDEN = 3000
DGEX_LAYERS = 3
SMALL_PATIENCE = 20
DGEX_LR = 5e-4
FINE_TUNE_LR = 1e-4  # from the ridge start the network refines a good solution: smaller steps
# The best of the 20-60 epochs looked at beats the start by ~2 standard errors by chance alone (it did in 1 of
# 24 bulk-reference folds where nothing was gained); 3 SE is one-sided p = 0.00135 per look, ~5 % over 40
# looks even counted as independent (Bonferroni). The real gains on PBMC measured 23-26 SE.
START_MARGIN = 3.0


def adaptive_width(n_profiles: int) -> int:
    """Generator width for a reference of ``n_profiles``: 512 below 2,000 profiles, D-GEX's 3,000 from
    50,000 on, log-linear in between (rounded to 64), so the network grows with the data it is fitted to."""
    if n_profiles < SMALL_REFERENCE:
        return SMALL_HIDDEN
    if n_profiles >= DGEX_REFERENCE:
        return DGEX_HIDDEN
    t = math.log(n_profiles / SMALL_REFERENCE) / math.log(DGEX_REFERENCE / SMALL_REFERENCE)
    return min(DGEX_HIDDEN, int(round(SMALL_HIDDEN * (DGEX_HIDDEN / SMALL_HIDDEN) ** t / 64) * 64))


def check_recipe(recipe: GGANRecipe) -> None:
    """Refuse impossible explicit values (one line each), before any data are read."""
    r = recipe
    if r.loss not in ("gan", "mse"):
        raise GengenError(f"loss must be 'gan' or 'mse', got {r.loss!r}.")
    for name in ("hidden", "layers", "batch_size", "d_hidden", "min_steps", "epochs"):
        value = getattr(r, name)
        if value is not None and value < 1:
            raise GengenError(f"{name.replace('_', ' ')} must be positive, got {value}.")
    if not 0 <= r.dropout < 1:
        raise GengenError(f"dropout must be in [0, 1), got {r.dropout}.")
    if r.learning_rate is not None and r.learning_rate <= 0:
        raise GengenError(f"learning rate must be positive, got {r.learning_rate}.")
    if r.val_fraction is not None and not 0 <= r.val_fraction < 1:
        raise GengenError(f"validation fraction must be in [0, 1), got {r.val_fraction}.")
    if r.patience is not None and r.patience < 0:
        raise GengenError(f"patience must be 0 (off) or positive, got {r.patience}.")
    if min(r.adv_weight, r.l1_weight, r.consistency_weight, r.weight_decay, r.input_noise) < 0:
        raise GengenError("loss weights, weight decay and input noise must not be negative.")
    if r.start_margin is not None and r.start_margin < 0:
        raise GengenError(f"start margin must not be negative, got {r.start_margin}.")
    if str(r.precision).lower() not in PRECISIONS:
        raise GengenError(f"precision must be one of {', '.join(PRECISIONS)}, got {r.precision!r}.")


def resolve_ggan_recipe(recipe: GGANRecipe, n_profiles: int) -> GGANRecipe:
    """Validate, and fill every ``None`` field for a reference of ``n_profiles``, noting why in ``notes``.

    D-GEX's recipe (3 x 3,000, ~1,500 steps) is sized for ~100,000 profiles: on 189 profiles it ran for
    over 25 minutes on two CPU cores and, started from random weights, predicted worse than ridge.
    So, by reference size n (thresholds ``SMALL_REFERENCE`` = 2,000 and ``DGEX_REFERENCE`` = 50,000):

    - width: 512 below 2,000, 3,000 from 50,000, log-linear in between; depth 3; discriminator
      a quarter of the width (at most D-GEX-era 512);
    - ``ridge_init`` (and the linear path it needs) below 50,000: training starts at the
      leave-one-out ridge map, and the trained network replaces it only when its validation MAE is
      lower by ``start_margin`` = 3 standard errors (paired per validation profile);
    - ``refit`` below 2,000: once the epoch is chosen the model is rebuilt on every profile (so when
      the ridge start wins the model *is* ridge on all profiles); the validation split is 20 % there
      (it costs the final model nothing), 10 % elsewhere;
    - early stopping after 20 epochs without a better validation MAE below 50,000 (off at D-GEX size);
    - Adam 5e-4 as D-GEX, 1e-4 from the ridge start (fine-tuning a good solution); ~``min_steps``
      optimiser steps (at least 5 epochs) as the most.

    Explicitly set fields are kept (and validated).
    """
    check_recipe(recipe)
    r = GGANRecipe.from_dict({**recipe.to_dict(), "notes": list(recipe.notes)})
    r.precision = str(r.precision).lower()
    n = int(n_profiles)
    if n < 3:
        raise GengenError(f"only {n} reference profiles: too few to train (need at least 3).")
    small, dgex = n < SMALL_REFERENCE, n >= DGEX_REFERENCE
    size = (
        f"{n:,} profiles, under {SMALL_REFERENCE:,}"
        if small
        else f"{n:,} profiles, D-GEX size (>= {DGEX_REFERENCE:,})"
        if dgex
        else f"{n:,} profiles, between {SMALL_REFERENCE:,} and {DGEX_REFERENCE:,}"
    )
    if r.hidden is None:
        r.hidden = adaptive_width(n)
        if not dgex:
            r.notes.append(f"generator width {r.hidden} ({size}; D-GEX's 3,000 is sized for ~100,000 profiles)")
    if r.layers is None:
        r.layers = DGEX_LAYERS
    if r.d_hidden is None:
        r.d_hidden = int(min(512, max(64, r.hidden // 4)))
        if r.d_hidden != 512:
            r.notes.append(f"discriminator width {r.d_hidden} (a quarter of the generator's)")
    if r.ridge_init is None:
        r.ridge_init = not dgex
        if r.ridge_init:
            r.notes.append(
                f"starts from the leave-one-out ridge map ({size}: the linear map is the model to beat)"
            )
    if r.linear_skip is None:
        r.linear_skip = bool(r.ridge_init)
    elif r.ridge_init and not r.linear_skip:
        r.linear_skip = True
        r.notes.append("linear skip path on (needed by ridge_init)")
    if r.start_margin is None:
        r.start_margin = START_MARGIN if r.ridge_init else 0.0
        if r.ridge_init:
            r.notes.append(
                f"keeps the trained network only if it beats the ridge start on validation by "
                f"{r.start_margin:g} standard errors (per-profile paired MAE)"
            )
    if r.refit is None:
        r.refit = bool(small and r.ridge_init)
        if r.refit:
            r.notes.append(f"refit on all profiles once the epoch is chosen ({size}: every profile counts)")
    if r.val_fraction is None:
        r.val_fraction = 0.2 if (small and r.refit) else 0.1
        if r.val_fraction != 0.1:
            r.notes.append(
                f"validation {r.val_fraction:.0%} of the profiles (the refit gives them back to the final model)"
            )
    if r.patience is None:
        r.patience = 0 if dgex else SMALL_PATIENCE
        if r.patience:
            r.notes.append(f"early stopping after {r.patience} epochs without a better validation MAE")
    if r.learning_rate is None:
        r.learning_rate = FINE_TUNE_LR if r.ridge_init else DGEX_LR
        if r.ridge_init:
            r.notes.append(f"Adam {r.learning_rate:g}: fine-tuning the ridge map, a fifth of D-GEX's {DGEX_LR:g}")
    n_val = max(1, int(round(n * r.val_fraction))) if r.val_fraction > 0 else 0
    n_train = n - n_val
    if n_train < 2:
        raise GengenError(f"only {n} profiles: too few to train with a {r.val_fraction:g} validation fraction.")
    if r.batch_size > n_train:
        r.notes.append(f"batch size {n_train} (capped at the {n_train} training profiles)")
        r.batch_size = n_train
    if r.epochs is None:
        per_epoch = max(1, math.ceil(n_train / r.batch_size))
        r.epochs = int(max(5, math.ceil(r.min_steps / per_epoch)))
        r.notes.append(f"up to {r.epochs} epochs (~{r.min_steps} optimiser steps on {n_train} training profiles)")
    return r
