"""A fast adversarial training loop on z-scored arrays (also trains the D-GEX baseline).

Generator loss = adv_weight · BCE(D(x, ŷ), real) + λ₁ · |y − ŷ|₁ + λ₂ · ‖G(x; u) − G(x; u′)‖²
where u, u′ are two dropout/noise draws; discriminator loss = BCE on (x, y) real vs (x, ŷ) fake.
``loss="mse"`` trains the same generator with MSE only: the D-GEX baseline.

Speed without changing the maths: the whole z-scored data sit on the device; batches are index
slices of a seeded permutation (no DataLoader); losses are summed on the device and read once per
epoch (no per-step host sync); the discriminator's x-projection is shared by the real and the fake
pair and both pairs go through its head in one batched call; the discriminator's weights are frozen
(no weight gradients) during the generator's backward; Adam uses the fused/foreach kernel.

:func:`fit_ggan` trains the networks it is given; :mod:`gengen.ggan.train` builds them, prepares the
data and makes a model of the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from gengen.errors import GengenError
from gengen.ggan.defaults import resolve_ggan_recipe
from gengen.recipes import GGANRecipe
from gengen.runtime import Progress, autocast, resolve_precision, small_model_threads
from gengen.training import make_optimizer

GAN_BETAS = (0.5, 0.999)  # Adam's beta1 = 0.5, as usual for GANs (the D-GEX MLP shares it)


def fit_ggan(
    gen,
    disc,
    x_train: np.ndarray,
    *,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    recipe: GGANRecipe,
    device,
    quiet: bool = False,
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

    from gengen import distributed
    from gengen.batches import rows_for

    # the training pairs on the device, or (x_train a StreamedRows, y_train None) streamed from disk
    batches = rows_for([x_train] if y_train is None else [x_train, y_train], device, distributed.shard())
    if recipe.learning_rate is None or recipe.epochs is None:  # a recipe not sized yet: size it to these data
        # (this loop trains the networks it is given; a ridge start is the caller's: ridge_initialise)
        unsized = GGANRecipe.from_dict({**recipe.to_dict(), "ridge_init": bool(recipe.ridge_init)})
        recipe = resolve_ggan_recipe(unsized, batches.n + (0 if x_val is None else len(x_val)))
    gan = recipe.loss == "gan"
    gen.to(device)
    if gan:
        disc.to(device)
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
        yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    n_params = sum(p.numel() for p in gen.parameters()) + (sum(p.numel() for p in disc.parameters()) if gan else 0)
    with small_model_threads(n_params, device):
        history = _fit(gen, disc, batches, xv if has_val else None, yv if has_val else None, recipe, device, quiet,
                       on_epoch, checkpoint)
        history.attrs["cpu_threads"] = torch.get_num_threads()
        return history


def _fit(gen, disc, batches, xv, yv, recipe: GGANRecipe, device, quiet: bool, on_epoch=None, checkpoint=None):
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from gengen import distributed
    from gengen.batches import batches_per_epoch
    from gengen.training_state import LoopState

    gan = recipe.loss == "gan"
    has_val = xv is not None
    n = batches.n
    n_batches = batches_per_epoch(n, recipe.batch_size)
    # under torchrun: DistributedDataParallel for the generator's first pass and the discriminator's
    # real/fake pass (the steps that train them); the generator's consistency pass and the frozen
    # discriminator in the generator's step use the modules themselves. Alone: the modules themselves
    g_net = distributed.wrap(gen)
    d_pairs = (distributed.wrap(disc, "real_and_fake") if g_net is not gen else disc.real_and_fake) if gan else None
    distributed.reseed(recipe.seed)  # ranks other than 0 draw their own noise (a no-op alone)
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
        distributed.reseed(recipe.seed, state.epoch, state.batch)
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
            sums = state.running("sums", torch.zeros(6, device=device))  # g_loss d_loss adv l1 cons abs_err
            for b, (xb, yb) in batches.epoch(gen_perm, n_batches, skip=state.batch):  # not done before an interruption
                size = xb.shape[0]
                with autocast(precision, device):
                    fake = g_net(xb).float()
                if gan:
                    # discriminator: real and fake pairs through one batched head call
                    for p in d_params:
                        p.requires_grad_(True)
                    with autocast(precision, device):
                        logits = d_pairs(xb, yb, fake.detach()).float()
                    target = torch.cat([torch.ones(size, device=device), torch.zeros(size, device=device)])
                    d_loss = F.binary_cross_entropy_with_logits(logits, target)
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                    for p in d_params:
                        p.requires_grad_(False)
                    with autocast(precision, device):
                        d_fake = disc(xb, fake).float()
                        again = gen(xb).float() if recipe.consistency_weight > 0 else None
                    adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones(size, device=device))
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
                k = float(size)
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
            if g_net is not gen:  # every rank's share of the epoch
                sums = distributed.all_reduce_sum(sums.clone())
            seen = batches.local_n * batches.shard.world if batches.streamed else n  # streamed: a remainder may sit out
            s = (sums / seen).tolist()  # the one host sync of the epoch
            row = {
                "epoch": epoch + 1,
                "g_loss": s[0],
                "d_loss": s[1] if gan else float("nan"),
                "adv": s[2] if gan else float("nan"),
                "l1": s[3],
                "consistency": s[4] if gan else float("nan"),
                "train_mae": s[5],
            }
            if has_val:  # (rank 0's value on every rank: the ranks' choices of epoch must agree)
                row["val_mae"] = distributed.broadcast_value(validation_mae(gen, xv, yv, precision=precision))
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
            gain_se = distributed.broadcast_value(paired_gain_se(start_errors, profile_errors(gen, xv, yv, precision=precision)))
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


def validation_mae(gen, x, y, *, batch_size: int = 8192, precision: str = "fp32") -> float:
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


def profile_errors(gen, x, y, *, batch_size: int = 8192, precision: str = "fp32") -> np.ndarray:
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
