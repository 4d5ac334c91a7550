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
from dataclasses import asdict, dataclass, field

import numpy as np

from gengen.errors import GengenError
from gengen.runtime import PRECISIONS, Progress, autocast, on_device, resolve_precision, small_model_threads


@dataclass
class GGANRecipe:
    """Hyper-parameters. ``epochs=None`` adapts to the data (about ``min_steps`` optimiser steps).

    Defaults follow the D-GEX class (3 hidden layers, tanh, batch 200) with Adam; λ's weight the
    L1 and consistency terms relative to an adversarial weight of 1.
    """

    hidden: int = 3000
    layers: int = 3
    dropout: float = 0.1
    activation: str = "tanh"
    input_noise: float = 0.0
    linear_skip: bool = False
    ridge_init: bool = False
    refit: bool = False
    d_hidden: int = 512
    loss: str = "gan"  # "gan" (GGAN) or "mse" (D-GEX baseline: same generator, MSE only)
    adv_weight: float = 1.0
    l1_weight: float = 10.0
    consistency_weight: float = 1.0
    epochs: int | None = None
    min_steps: int = 1500
    batch_size: int = 200
    learning_rate: float = 5e-4
    d_learning_rate: float | None = None
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int | None = None
    quantile: bool = False
    # auto: train in float32 (at batch 200 bf16 autocast was no faster on an H100: 22-39k vs
    # 29-37k profiles/s), infer with bf16 autocast on a CUDA GPU (8x faster there, 0.3 % relative
    # difference); fp32 / bf16 force one precision for both (see gengen.runtime.resolve_precision)
    precision: str = "auto"
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GGANRecipe:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def resolve_recipe(recipe: GGANRecipe, n_train: int) -> GGANRecipe:
    """Validate and fill the data-dependent fields, noting each adaptation."""
    r = GGANRecipe.from_dict({**recipe.to_dict(), "notes": list(recipe.notes)})
    if r.loss not in ("gan", "mse"):
        raise GengenError(f"loss must be 'gan' or 'mse', got {r.loss!r}.")
    for name in ("hidden", "layers", "batch_size", "d_hidden", "min_steps"):
        if getattr(r, name) < 1:
            raise GengenError(f"{name.replace('_', ' ')} must be positive, got {getattr(r, name)}.")
    if not 0 <= r.dropout < 1:
        raise GengenError(f"dropout must be in [0, 1), got {r.dropout}.")
    if r.learning_rate <= 0:
        raise GengenError(f"learning rate must be positive, got {r.learning_rate}.")
    if min(r.adv_weight, r.l1_weight, r.consistency_weight, r.weight_decay, r.input_noise) < 0:
        raise GengenError("loss weights, weight decay and input noise must not be negative.")
    r.precision = str(r.precision).lower()
    if r.precision not in PRECISIONS:
        raise GengenError(f"precision must be one of {', '.join(PRECISIONS)}, got {r.precision!r}.")
    if r.ridge_init and not r.linear_skip:
        r.linear_skip = True
        r.notes.append("linear skip path on (needed by ridge_init)")
    if r.batch_size > n_train:
        r.notes.append(f"batch size {n_train} (capped at the {n_train} training samples)")
        r.batch_size = n_train
    if r.epochs is None:
        per_epoch = max(1, math.ceil(n_train / r.batch_size))
        r.epochs = int(max(5, math.ceil(r.min_steps / per_epoch)))
        r.notes.append(f"{r.epochs} epochs (~{r.min_steps} optimiser steps on {n_train} training samples)")
    if r.epochs < 1:
        raise GengenError(f"epochs must be positive, got {r.epochs}.")
    return r


def make_optimizer(params, lr: float, weight_decay: float = 0.0, betas=(0.5, 0.999)):
    """Adam with the fused kernel where available, else foreach (β₁ = 0.5 as usual for GANs)."""
    import torch

    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)


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
    """(generator, discriminator or None) for a recipe."""
    from gengen.ggan.model import Discriminator, Generator

    gen = Generator(
        n_x,
        n_y,
        (recipe.hidden,) * recipe.layers,
        recipe.dropout,
        recipe.activation,
        recipe.input_noise,
        recipe.linear_skip,
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
):
    """Train in place (z-scored inputs); restores the generator weights of the best validation MAE.

    Returns the per-epoch history (epoch, g_loss, d_loss, adv, l1, consistency, train_mae, val_mae);
    ``history.attrs`` holds ``best_epoch``, ``best_val_mae`` and ``seconds``. ``on_epoch(epoch, row)``
    is called after each epoch (1-based) with a copy of its history row; an exception it raises (a
    sweep's pruning signal) stops training and propagates unchanged.
    """
    import torch

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
        return _fit(gen, disc, xt, yt, xv if has_val else None, yv if has_val else None, recipe, device, quiet,
                    on_epoch)


def _fit(gen, disc, xt, yt, xv, yv, recipe: GGANRecipe, device, quiet: bool, on_epoch=None):
    import pandas as pd
    import torch
    import torch.nn.functional as F

    gan = recipe.loss == "gan"
    has_val = xv is not None
    n = xt.shape[0]
    n_batches = max(1, math.ceil(n / recipe.batch_size))
    opt_g = make_optimizer(gen.parameters(), recipe.learning_rate, recipe.weight_decay)
    opt_d = make_optimizer(disc.parameters(), recipe.d_learning_rate or recipe.learning_rate) if gan else None
    d_params = list(disc.parameters()) if gan else []
    gen_perm = torch.Generator(device="cpu").manual_seed(recipe.seed)
    rows: list[dict] = []
    best = (math.inf, 0, None)
    precision = resolve_precision("fp32" if recipe.precision == "auto" else recipe.precision, device)
    if has_val:  # the starting point is a candidate too (it matters with ridge_init)
        best = (validation_mae(gen, xv, yv, precision=precision), 0, {k: v.detach().clone() for k, v in gen.state_dict().items()})
    since_best = 0
    start = time.perf_counter()
    with Progress(recipe.epochs, "training GGAN" if gan else "training D-GEX", quiet) as bar:
        for epoch in range(recipe.epochs):
            gen.train()
            if gan:
                disc.train()
            perm = torch.randperm(n, generator=gen_perm).to(device)
            sums = torch.zeros(6, device=device)  # g_loss d_loss adv l1 cons abs_err
            for idx in torch.tensor_split(perm, n_batches):
                xb, yb = xt[idx], yt[idx]
                with autocast(precision, device):
                    fake = gen(xb).float()
                if gan:
                    # discriminator: real and fake pairs through one batched head call
                    for p in d_params:
                        p.requires_grad_(True)
                    with autocast(precision, device):
                        hx = disc.fx(xb)
                        pair = torch.cat([hx, hx]) + disc.fy(torch.cat([yb, fake.detach()]))
                        logits = disc.head(pair).squeeze(-1).float()
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
                else:
                    since_best += 1
            rows.append(row)
            bar.update(1, g=row["g_loss"], val_mae=row.get("val_mae", float("nan")))
            if not math.isfinite(row["g_loss"]):
                raise GengenError("training diverged (loss is not finite); lower --lr or check the input data.")
            if on_epoch is not None:
                on_epoch(epoch + 1, dict(row))
            if recipe.patience is not None and has_val and since_best >= recipe.patience:
                break
    if best[2] is not None:
        gen.load_state_dict(best[2])
    gen.eval()
    history = pd.DataFrame(rows)
    history.attrs["seconds"] = time.perf_counter() - start
    history.attrs["precision"] = precision
    history.attrs["best_epoch"] = int(best[1]) if best[2] is not None else len(rows)
    history.attrs["best_val_mae"] = float(best[0]) if best[2] is not None else float("nan")
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
