"""The GGAN training recipe and a fast adversarial training loop (also trains the D-GEX baseline).

Generator loss = adv_weight · BCE(D(x, ŷ), real) + λ₁ · |y − ŷ|₁ + λ₂ · ‖G(x; u) − G(x; u′)‖²
where u, u′ are two dropout/noise draws; discriminator loss = BCE on (x, y) real vs (x, ŷ) fake.
``loss="mse"`` trains the same generator with MSE only: the D-GEX baseline.

Speed without changing the maths: the whole z-scored data sit on the device; batches are index
slices of a seeded permutation (no DataLoader); losses are summed on the device and read once per
epoch (no per-step host sync); the discriminator's x-projection is shared by the real and the fake
pair and both pairs go through its head in one batched call; the discriminator's weights are frozen
(no weight gradients) during the generator's backward; Adam uses the fused/foreach kernel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from gengen.errors import GengenError
from gengen.recipes import GGANRecipe
from gengen.runtime import PRECISIONS, Progress, autocast, on_device, resolve_precision, small_model_threads
from gengen.training import make_optimizer

GAN_BETAS = (0.5, 0.999)  # Adam's beta1 = 0.5, as usual for GANs (the D-GEX MLP shares it)

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
        recipe.dropout,
        recipe.activation,
        recipe.input_noise,
        bool(recipe.linear_skip),
    )
    disc = Discriminator(n_x, n_y, (recipe.d_hidden, max(1, recipe.d_hidden // 2))) if recipe.loss == "gan" else None
    return gen, disc


def fit_ggan(
    gen,
    disc,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    recipe: GGANRecipe,
    device,
    quiet: bool = False,
    *,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint=None,
):
    """Train in place (z-scored inputs); restores the generator weights of the best validation MAE.

    Returns the per-epoch history (epoch, g_loss, d_loss, adv, l1, consistency, train_mae, val_mae);
    ``history.attrs`` holds ``best_epoch``, ``best_val_mae`` and ``seconds``. The untrained start is
    epoch 0 and a candidate; a later epoch replaces it only when its validation gain, paired per
    profile, reaches ``recipe.start_margin`` standard errors (``gain_se``; ``rejected_epoch`` names a
    best epoch that fell short). ``on_epoch(epoch, row)`` is called after each epoch (1-based) with a
    copy of its history row; an exception it raises (a sweep's pruning signal) stops training and
    propagates unchanged.

    ``checkpoint`` (a :class:`gengen.training_state.TrainingCheckpoint`, its ``phase`` naming this
    run) saves the loop's whole state on its schedule and, resuming, restores it first: bit-identical
    to an uninterrupted run on the CPU at the same thread count (``history.attrs["cpu_threads"]``).
    """
    import torch

    if recipe.learning_rate is None or recipe.epochs is None:  # a recipe not sized yet: size it to these data
        # (this loop trains the networks it is given; a ridge start is the caller's: ridge_initialise)
        unsized = GGANRecipe.from_dict({**recipe.to_dict(), "ridge_init": bool(recipe.ridge_init)})
        recipe = resolve_ggan_recipe(unsized, len(x_train) + (0 if x_val is None else len(x_val)))
    gan = recipe.loss == "gan"
    gen.to(device)
    if gan:
        disc.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
        yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    n_params = sum(p.numel() for p in gen.parameters()) + (sum(p.numel() for p in disc.parameters()) if gan else 0)
    with small_model_threads(n_params, device):
        history = _fit(gen, disc, xt, yt, xv if has_val else None, yv if has_val else None, recipe, device, quiet,
                       on_epoch, checkpoint)
        history.attrs["cpu_threads"] = torch.get_num_threads()
        return history


def _fit(gen, disc, xt, yt, xv, yv, recipe: GGANRecipe, device, quiet: bool, on_epoch=None, checkpoint=None):
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from gengen.training_state import LoopState

    gan = recipe.loss == "gan"
    has_val = xv is not None
    n = xt.shape[0]
    n_batches = max(1, math.ceil(n / recipe.batch_size))
    opt_g = make_optimizer(gen.parameters(), recipe.learning_rate, weight_decay=recipe.weight_decay, betas=GAN_BETAS)
    opt_d = make_optimizer(disc.parameters(), recipe.d_learning_rate or recipe.learning_rate, betas=GAN_BETAS) if gan else None
    d_params = list(disc.parameters()) if gan else []
    gen_perm = torch.Generator(device="cpu").manual_seed(recipe.seed)
    rows: list[dict] = []
    best = (math.inf, 0, None)
    precision = resolve_precision("fp32" if recipe.precision == "auto" else recipe.precision, device)
    start = None
    if has_val:  # the starting point is a candidate too (it matters with ridge_init)
        start_errors = profile_errors(gen, xv, yv, precision=precision)
        best = (float(start_errors.mean()), 0, {k: v.detach().clone() for k, v in gen.state_dict().items()})
        start = best
    since_best = 0
    t_start = time.perf_counter()
    # what a checkpoint saves and a resumed run restores; the start is recomputed (the caller rebuilds it)
    state = LoopState({"generator": gen, **({"discriminator": disc} if gan else {})},
                      {"generator": opt_g, **({"discriminator": opt_d} if gan else {})},
                      {"permutation": gen_perm}, history=rows, unsaved={"start": start})
    if checkpoint is not None and checkpoint.start(state, device):
        since_best = int(state.values.get("since_best", 0))
        if state.values.get("best_epoch"):
            weights = {k[5:]: v for k, v in state.tensors.items() if k.startswith("best.")}
            best = (float(state.values["best_mae"]), int(state.values["best_epoch"]), weights)
    with Progress(recipe.epochs, "training GGAN" if gan else "training D-GEX", quiet) as bar:
        if state.epoch:
            bar.update(state.epoch)  # resumed: the epochs done before
        for epoch in range(state.epoch, recipe.epochs):
            gen.train()
            if gan:
                disc.train()
            state.begin_epoch()
            perm = torch.randperm(n, generator=gen_perm).to(device)
            sums = state.running("sums", torch.zeros(6, device=device))  # g_loss d_loss adv l1 cons abs_err
            for b, idx in enumerate(torch.tensor_split(perm, n_batches)):
                if b < state.batch:  # done before the run was interrupted
                    continue
                xb, yb = xt[idx], yt[idx]
                with autocast(precision, device):
                    fake = gen(xb).float()
                if gan:
                    # discriminator: real and fake pairs through one batched head call
                    for p in d_params:
                        p.requires_grad_(True)
                    with autocast(precision, device):
                        logits = disc.real_and_fake(xb, yb, fake.detach()).float()
                    target = torch.cat([torch.ones(len(idx), device=device), torch.zeros(len(idx), device=device)])
                    d_loss = F.binary_cross_entropy_with_logits(logits, target)
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                    for p in d_params:
                        p.requires_grad_(False)
                    with autocast(precision, device):
                        d_fake = disc(xb, fake).float()
                        again = gen(xb).float() if recipe.consistency_weight > 0 else None
                    adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones(len(idx), device=device))
                    l1 = (fake - yb).abs().mean()
                    if again is not None:
                        cons = (fake - again).pow(2).mean()
                    else:
                        cons = torch.zeros((), device=device)
                    g_loss = recipe.adv_weight * adv + recipe.l1_weight * l1 + recipe.consistency_weight * cons
                else:
                    g_loss = F.mse_loss(fake, yb)
                    l1 = (fake - yb).abs().mean().detach()
                    adv = cons = d_loss = torch.zeros((), device=device)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                k = float(len(idx))
                sums += (
                    torch.stack(
                        [
                            g_loss.detach(),
                            d_loss.detach(),
                            adv.detach(),
                            l1.detach(),
                            cons.detach(),
                            l1.detach(),
                        ]
                    )
                    * k
                )
                if checkpoint is not None:
                    state.batch = b + 1
                    checkpoint.after_batch(state, device)
            s = (sums / n).tolist()  # the one host sync of the epoch
            row = {
                "epoch": epoch + 1,
                "g_loss": s[0],
                "d_loss": s[1] if gan else float("nan"),
                "adv": s[2] if gan else float("nan"),
                "l1": s[3],
                "consistency": s[4] if gan else float("nan"),
                "train_mae": s[5],
            }
            if has_val:
                row["val_mae"] = validation_mae(gen, xv, yv, precision=precision)
                if row["val_mae"] < best[0] - 1e-6:
                    best = (
                        row["val_mae"],
                        epoch + 1,
                        {k: v.detach().clone() for k, v in gen.state_dict().items()},
                    )
                    since_best = 0
                    state.tensors.update({f"best.{k}": v for k, v in best[2].items()})
                else:
                    since_best += 1
                state.values.update(since_best=since_best, best_epoch=best[1], best_mae=best[0])
            state.end_epoch(row)  # appends to rows
            bar.update(1, g=row["g_loss"], val_mae=row.get("val_mae", float("nan")))
            if not math.isfinite(row["g_loss"]):
                raise GengenError("training diverged (loss is not finite); lower --lr or check the input data.")
            if on_epoch is not None:
                on_epoch(epoch + 1, dict(row))
            if recipe.patience and has_val and since_best >= recipe.patience:
                break
            if checkpoint is not None:
                checkpoint.after_epoch(state, device, last=epoch + 1 == recipe.epochs)
    gain_se, rejected = float("nan"), 0
    if best[2] is not None:
        gen.load_state_dict(best[2])
        if best[1] > 0 and recipe.start_margin:
            gain_se = paired_gain_se(start_errors, profile_errors(gen, xv, yv, precision=precision))
            if gain_se < recipe.start_margin:  # not convincingly better than where it started
                rejected, best = best[1], start
                gen.load_state_dict(best[2])
    gen.eval()
    history = pd.DataFrame(rows)
    history.attrs["seconds"] = state.seconds + time.perf_counter() - t_start
    history.attrs["gain_se"] = gain_se  # the best epoch's validation gain over the start, in standard errors
    history.attrs["rejected_epoch"] = rejected  # better than the start on validation, but not by the margin
    history.attrs["precision"] = precision
    history.attrs["best_epoch"] = int(best[1]) if best[2] is not None else len(rows)
    history.attrs["best_val_mae"] = float(best[0]) if best[2] is not None else float("nan")
    history.attrs["start_val_mae"] = float(start[0]) if start is not None else float("nan")  # epoch 0's
    return history


def validation_mae(gen, x, y, batch_size: int = 8192, precision: str = "fp32") -> float:
    """MAE of the deterministic (dropout off) generator on z-scored data."""
    import torch

    was = gen.training
    gen.eval()
    total = torch.zeros((), device=x.device)
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch_size):
            with autocast(precision, x.device):
                pred = gen(x[s : s + batch_size]).float()
            total += (pred - y[s : s + batch_size]).abs().sum()
    gen.train(was)
    return total.item() / (x.shape[0] * y.shape[1])


def profile_errors(gen, x, y, batch_size: int = 8192, precision: str = "fp32") -> np.ndarray:
    """Per-profile MAE (float64, one value per row) of the deterministic generator on z-scored data."""
    import torch

    was = gen.training
    gen.eval()
    parts = []
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch_size):
            with autocast(precision, x.device):
                pred = gen(x[s : s + batch_size]).float()
            parts.append((pred - y[s : s + batch_size]).abs().mean(dim=1).double().cpu())
    gen.train(was)
    return torch.cat(parts).numpy()


def paired_gain_se(before: np.ndarray, after: np.ndarray) -> float:
    """How many standard errors ``after`` improves on ``before`` (per-profile errors, paired):
    mean(before - after) / (sd / sqrt(n)). The profiles, not the genes, are the independent units."""
    d = np.asarray(before, np.float64) - np.asarray(after, np.float64)
    if len(d) < 2:
        return 0.0  # one validation profile cannot show a reliable gain
    sd = d.std(ddof=1)
    if sd == 0:
        return math.inf if d.mean() > 0 else 0.0
    return float(d.mean() / (sd / math.sqrt(len(d))))


def predict_z(
    gen,
    x: np.ndarray,
    device,
    batch_size: int = 8192,
    precision: str = "auto",
    affine: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Deterministic generator output for z-scored landmarks, in batches, written into one array.

    ``precision`` as the training recipe's; ``auto``: bf16 autocast on a CUDA GPU (large inference
    batches are matrix-bound there: 4.0M vs 0.51M profiles/s on an H100 at 943 -> 3 x 3,000 -> 9,520),
    float32 on the CPU.
    ``affine=(scale, shift)`` maps the output per gene (``z * scale + shift``: back to original units)
    on the device. On a GPU the output of 10,000 genes is ~40 KB per profile, so copying it to the host
    is the cost: each batch is copied into one of two pinned buffers while the next batch computes.
    """
    import torch

    gen.eval()
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    out = np.empty((x.shape[0], gen.n_out), np.float32)
    cuda = device.type == "cuda"
    if affine is not None:
        scale, shift = (torch.as_tensor(np.asarray(a, np.float32), device=device) for a in affine)
    rows = max(1, min(batch_size, x.shape[0]))
    staging = [torch.empty((rows, gen.n_out), pin_memory=True) for _ in range(2)] if cuda else []
    pending: list = []  # (start, rows, buffer, event) of the batch being copied to the host

    def drain() -> None:
        s0, k, buf, event = pending.pop()
        event.synchronize()
        out[s0 : s0 + k] = buf[:k].numpy()

    n_params = sum(p.numel() for p in gen.parameters())
    with torch.inference_mode(), small_model_threads(n_params, device), on_device(device):
        for i, s in enumerate(range(0, x.shape[0], batch_size)):
            xb = torch.as_tensor(x[s : s + batch_size], dtype=torch.float32, device=device)
            with autocast(precision, device):
                pred = gen(xb)
            pred = pred.float()
            if affine is not None:
                pred = torch.addcmul(shift, pred, scale)
            if not cuda:
                out[s : s + len(xb)] = pred.numpy()
                continue
            buf = staging[i % 2]
            buf[: len(xb)].copy_(pred, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            if pending:
                drain()  # the previous batch, while this one computes and copies
            pending.append((s, len(xb), buf, event))
        if pending:
            drain()
    return out
