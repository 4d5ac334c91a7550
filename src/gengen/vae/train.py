"""The Tybalt training recipe and a fast training loop.

Speed without changing the maths: the whole (scaled) matrix sits on the device, batches are index
slices of a seeded permutation (no DataLoader, no collate), losses are accumulated on the device and
read once per epoch (no per-step host sync), Adam is the fused/foreach kernel, and the two encoder
heads share one GEMM (see :mod:`gengen.vae.model`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from gengen.errors import GengenError
from gengen.recipes import VAERecipe
from gengen.runtime import (
    Progress,
    capture_cuda_graph,
    cuda_graphs_wanted,
    describe_device,
    log,
    make_capturable,
    on_device,
    small_model_threads,
)
from gengen.training import make_optimizer

# Below this many parameters (e.g. 800 genes x k = 100) a VAE step is a few tiny GEMMs and one thread
# is faster; the Tybalt-sized network (~1.5 M) keeps all cores.
VAE_SMALL_PARAMS = 500_000


REGIMES = ("auto", "tybalt", "small")


MIN_SAMPLES = 4  # fewer: every latent coordinate is a single sample's offset; nothing generalises


def resolve_vae_recipe(recipe: VAERecipe, n_samples: int, n_features: int) -> VAERecipe:
    """Fill the unset fields for this data size, recording each adaptation in ``notes``.

    Tybalt's numbers assume ~10,000 samples. On a small cohort they would give a latent space wider
    than the data and only a few dozen optimiser steps, so: at most 5,000 genes (all, if fewer);
    k = 100 capped at a quarter of the samples; batch 50 capped at half the training set; and enough
    epochs for ``min_steps`` optimiser steps (never fewer than 50).

    The regime: with at least as many samples as genes the recipe is Tybalt's (10 % validation,
    beta = 1). With fewer samples than genes (or ``regime="small"``) the small-cohort recipe trains
    on every sample (nothing is chosen on a validation split, so one would only cost data) and leaves
    ``beta_max`` ``None`` when unset: :meth:`VAEModel.train` calibrates it from the data. ``--tybalt-compat``
    always uses the Tybalt regime.
    """
    r = VAERecipe(**{**recipe.to_dict(), "notes": list(recipe.notes)})
    if r.regime not in REGIMES:
        raise GengenError(f"--regime must be one of {', '.join(REGIMES)}, got {r.regime!r}.")
    if r.n_genes is None:
        r.n_genes = min(5000, n_features)
        if n_features < 5000:
            r.notes.append(f"using all {n_features} genes (fewer than Tybalt's 5,000)")
    if r.n_genes < 2:
        raise GengenError(f"need at least 2 genes, got {r.n_genes}.")
    if n_samples < MIN_SAMPLES:
        raise GengenError(
            f"only {n_samples} samples: too few to learn a latent space (a VAE needs at least {MIN_SAMPLES}; "
            "with fewer, look at the profiles directly or use PCA)."
        )
    n_genes = min(r.n_genes, n_features)
    if r.tybalt_compat:
        if r.regime == "small":
            raise GengenError("--tybalt-compat reproduces the published Tybalt code; it cannot use --regime small.")
        r.regime = "tybalt"
    elif r.regime == "auto":
        r.regime = "small" if n_samples < n_genes else "tybalt"
        r.notes.append(
            f"small-cohort recipe: {n_samples} samples < {n_genes} genes (reconstruction in input units, "
            "calibrated KL weight, linear z_mean, decoder-metric embedding, all samples train)"
            if r.regime == "small" else f"Tybalt recipe: {n_samples} samples >= {n_genes} genes")
    if r.val_fraction is None:
        r.val_fraction = 0.0 if r.regime == "small" else 0.1
        if r.regime == "small":
            r.notes.append("no validation split: every sample trains (--val-fraction to hold some out)")
    if r.beta_max is None and r.regime == "tybalt":
        r.beta_max = 1.0
    n_train = n_samples - max(1, int(round(n_samples * r.val_fraction))) if r.val_fraction > 0 else n_samples
    if r.latent_dim is None:
        r.latent_dim = int(min(100, max(2, n_samples // 4)))
        if r.latent_dim != 100:
            r.notes.append(f"latent size {r.latent_dim} (100 capped at n_samples/4 for {n_samples} samples)")
    if r.batch_size is None:
        r.batch_size = int(min(50, max(2, n_train // 2)))
        if r.batch_size != 50:
            r.notes.append(f"batch size {r.batch_size} (50 capped at half of {n_train} training samples)")
    if r.epochs is None:
        steps_per_epoch = max(1, math.ceil(n_train / r.batch_size))
        r.epochs = int(max(50, math.ceil(r.min_steps / steps_per_epoch)))
        if r.epochs != 50:
            r.notes.append(f"{r.epochs} epochs (~{r.min_steps} optimiser steps on {n_train} training samples)")
    for name in ("latent_dim", "epochs", "batch_size"):
        if getattr(r, name) < 1:
            raise GengenError(f"{name.replace('_', ' ')} must be positive, got {getattr(r, name)}.")
    if r.hidden is not None and r.hidden < 1:
        raise GengenError(f"--hidden must be positive (or left out for one hidden layer), got {r.hidden}.")
    if r.beta_max is not None and r.beta_max < 0:
        raise GengenError(f"--beta must be >= 0, got {r.beta_max}.")
    if r.kappa < 0:
        raise GengenError(f"--kappa must be >= 0, got {r.kappa}.")
    if r.learning_rate <= 0:
        raise GengenError(f"learning rate must be positive, got {r.learning_rate}.")
    return r


def kl_weight(epoch: int, kappa: float, tybalt_compat: bool, *, beta_max: float = 1.0) -> float:
    """beta for a 0-based epoch: Keras' WarmUpCallback starts at 0 and adds kappa after each epoch,
    capped at ``beta_max`` (1: the VAE's ELBO). In the published code beta never reached the loss, so
    compat mode uses 0."""
    if tybalt_compat:
        return 0.0
    return float(min(beta_max, epoch * kappa)) if kappa > 0 else float(beta_max)


def fit_vae(
    module,
    x_train: np.ndarray,
    x_val: np.ndarray | None,
    *,
    recipe: VAERecipe,
    device,
    quiet: bool = False,
    cuda_graphs: bool | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint=None,
    gene_weights: np.ndarray | None = None,
):
    """Train ``module`` in place; returns a per-epoch history DataFrame (see :func:`_fit_vae`).

    ``gene_weights`` (one per gene, mean 1) weight each gene's reconstruction term; ``None`` is
    Tybalt's unweighted sum.

    ``on_epoch(epoch, row)`` is called after each epoch (1-based) with that epoch's history row (a
    copy): sweeps report the validation loss from it, and an exception it raises (e.g. a pruning
    signal) stops training and propagates unchanged.

    ``checkpoint`` (a :class:`gengen.training_state.TrainingCheckpoint`) saves the loop's whole state
    on its schedule and, when resuming, restores it first: the result is then bit-identical to an
    uninterrupted run on the CPU at the same thread count. ``history.attrs["cpu_threads"]`` records
    the thread count the loop ran at.

    ``cuda_graphs`` (default: on for CUDA, see :func:`gengen.runtime.cuda_graphs_wanted`) replays each
    optimiser step as a captured CUDA graph: a Tybalt step is ~30 small kernels, so on a GPU the
    launches, not the arithmetic, set the pace. ``history.attrs["cuda_graphs"]`` says whether it ran.
    """
    import torch

    n_params = sum(p.numel() for p in module.parameters())
    cuda_graphs = cuda_graphs_wanted(torch.device(device), cuda_graphs)
    with small_model_threads(n_params, device, limit=VAE_SMALL_PARAMS), on_device(device):
        history = _fit_vae(module, x_train, x_val, recipe, device, quiet, cuda_graphs, on_epoch, checkpoint, gene_weights)
        history.attrs["device"] = describe_device(device)  # inside: the thread count actually used
        history.attrs["cpu_threads"] = torch.get_num_threads()
    return history


def _capture_vae_steps(module, opt, xt, sizes, beta, sums, weights=None) -> dict:
    """One CUDA graph per batch size (``tensor_split`` gives at most two): gather the batch from the
    device matrix by a static index buffer, forward, loss, backward, Adam step, add the batch's
    (recon, KL) sums into ``sums``. Returns ``{size: (graph, index_buffer)}``.

    Capturing needs a few warm-up steps; they are undone afterwards (weights, BatchNorm statistics
    and Adam's state restored), so the graphed run trains exactly the steps the eager one would.
    ``opt`` must be fresh (no steps taken yet).
    """
    import torch

    from gengen.vae.model import vae_loss_terms

    make_capturable(opt, xt.device)
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    graphs = {}
    try:
        for size in sizes:
            index = torch.arange(size, device=xt.device)

            def step(index=index, size=size):
                opt.zero_grad(set_to_none=True)
                xb = xt[index]
                logits, z_mean, z_log_var = module(xb)
                recon, kl = vae_loss_terms(logits, xb, z_mean, z_log_var=z_log_var, gene_weights=weights)
                (recon + beta * kl).backward()
                opt.step()
                sums.add_(torch.stack([recon.detach(), kl.detach()]) * size)

            graphs[size] = (capture_cuda_graph(step), index)
    finally:  # undo the warm-up steps; a fresh Adam state is all zeros (step 0 included)
        torch.cuda.synchronize(xt.device)
        with torch.no_grad():
            for k, v in module.state_dict().items():
                v.copy_(saved[k])
            for st in opt.state.values():
                for v in st.values():
                    if torch.is_tensor(v):
                        v.zero_()
    sums.zero_()
    return graphs


def _fit_vae(module, x_train, x_val, recipe: VAERecipe, device, quiet: bool, cuda_graphs: bool, on_epoch=None,
             checkpoint=None, gene_weights=None):
    """Train ``module`` in place; returns a per-epoch history DataFrame.

    History columns: epoch, beta, train_recon, train_kl, train_loss, val_recon, val_kl, val_loss
    (reconstruction = BCE summed over genes, KL in nats, both averaged over samples). An unset
    ``recipe.beta_max`` trains with 1 (:meth:`VAEModel.train` calibrates it first on small cohorts).
    """
    import pandas as pd
    import torch

    from gengen import distributed
    from gengen.batches import batches_per_epoch, rows_for
    from gengen.training_state import LoopState
    from gengen.vae.model import vae_loss_terms

    beta_max = 1.0 if recipe.beta_max is None else recipe.beta_max  # unset here: Tybalt's ELBO weight
    module.to(device)
    batches = rows_for([x_train], device, distributed.shard())  # the matrix on the device, or streamed from disk
    xt = None if batches.streamed else batches.tensors[0]
    net = distributed.wrap(module)  # DistributedDataParallel under torchrun, else the module itself
    distributed.reseed(recipe.seed)  # ranks other than 0 draw their own noise (a no-op alone)
    xv = torch.as_tensor(np.clip(x_val, 0, 1), dtype=torch.float32, device=device) if x_val is not None and len(x_val) else None
    wt = None if gene_weights is None else torch.as_tensor(gene_weights, dtype=torch.float32, device=device)
    n = batches.n
    n_batches = batches_per_epoch(n, recipe.batch_size)
    opt = make_optimizer(module.parameters(), recipe.learning_rate)
    gen = torch.Generator(device="cpu").manual_seed(recipe.seed)
    rows = []
    start = time.perf_counter()
    module.train()
    graphs = None
    sizes = sorted({len(c) for c in np.array_split(np.arange(n), n_batches)})
    if cuda_graphs and min(sizes) >= 2 and xt is not None and net is module:
        beta_t = torch.zeros((), device=device)
        sums = torch.zeros(2, device=device)
        try:
            graphs = _capture_vae_steps(module, opt, xt, sizes, beta_t, sums, wt)
        except RuntimeError as exc:  # an unusual torch/driver: train eagerly, say so
            log(f"note: CUDA graph capture failed ({str(exc).splitlines()[0]}); training without graphs", quiet)
            opt = make_optimizer(module.parameters(), recipe.learning_rate)
    # what a checkpoint saves and a resumed run restores (after the capture: it restores in place)
    state = LoopState({"vae": module}, {"adam": opt}, {"permutation": gen}, history=rows)
    if checkpoint is not None and checkpoint.start(state, device):
        distributed.reseed(recipe.seed, state.epoch, state.batch)
    with Progress(recipe.epochs, "training VAE", quiet) as bar:
        if state.epoch:
            bar.update(state.epoch)  # resumed: the epochs done before
        for epoch in range(state.epoch, recipe.epochs):
            beta = kl_weight(epoch, recipe.kappa, recipe.tybalt_compat, beta_max=beta_max)
            module.train()
            state.begin_epoch()
            sum_recon = state.running("sum_recon", torch.zeros((), device=device))
            sum_kl = state.running("sum_kl", torch.zeros((), device=device))
            if graphs is not None:
                perm = torch.randperm(n, generator=gen).to(device)
                beta_t.fill_(beta)
                state.running("sums", sums.zero_())
                for b, idx in enumerate(torch.tensor_split(perm, n_batches)):
                    if b < state.batch:  # done before the run was interrupted
                        continue
                    graph, index = graphs[idx.numel()]
                    index.copy_(idx)
                    graph.replay()
                    if checkpoint is not None:
                        state.batch = b + 1
                        checkpoint.after_batch(state, device)
                sum_recon, sum_kl = sums[0], sums[1]
            else:
                for b, (xb,) in batches.epoch(gen, n_batches, skip=state.batch):  # batches not done before an interruption
                    if xb.shape[0] < 2 and net is module:  # BatchNorm needs two samples
                        continue
                    logits, z_mean, z_log_var = net(xb)
                    recon, kl = vae_loss_terms(logits, xb, z_mean, z_log_var=z_log_var, gene_weights=wt)
                    loss = recon + beta * kl if beta else recon
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sum_recon += recon.detach() * xb.shape[0]
                    sum_kl += kl.detach() * xb.shape[0]
                    if checkpoint is not None:
                        state.batch = b + 1
                        checkpoint.after_batch(state, device)
            if net is not module:  # every rank's share of the epoch
                sum_recon, sum_kl = (distributed.all_reduce_sum(t.clone()) for t in (sum_recon, sum_kl))
            seen = batches.local_n * batches.shard.world if batches.streamed else n  # streamed: a remainder may sit out
            row = {"epoch": epoch + 1, "beta": beta, "train_recon": (sum_recon / seen).item(), "train_kl": (sum_kl / seen).item()}
            row["train_loss"] = row["train_recon"] + beta * row["train_kl"]
            if xv is not None:
                vr, vk = evaluate_loss(module, xv, gene_weights=wt)
                row.update(val_recon=vr, val_kl=vk, val_loss=vr + beta * vk)
            state.end_epoch(row)  # appends to rows
            # no validation split (the small-cohort recipe): no "val=nan" on the status line
            bar.update(1, loss=row["train_loss"], **({"val": row["val_loss"]} if "val_loss" in row else {}))
            if on_epoch is not None:
                on_epoch(epoch + 1, dict(row))
            if checkpoint is not None:
                checkpoint.after_epoch(state, device, last=epoch + 1 == recipe.epochs)
    if not math.isfinite(rows[-1]["train_loss"]):
        raise GengenError("training diverged (loss is not finite); lower --lr or check the input scaling.")
    history = pd.DataFrame(rows)
    history.attrs["seconds"] = state.seconds + time.perf_counter() - start
    history.attrs["cuda_graphs"] = graphs is not None
    return history


def evaluate_loss(module, x, batch_size: int = 4096, *, seed: int = 0, gene_weights=None) -> tuple[float, float]:
    """Mean (reconstruction, KL) with a sampled z, as Keras' validation loss; a fixed noise seed keeps
    it comparable across epochs. ``gene_weights``: as in training (a tensor on ``x``'s device)."""
    import torch

    from gengen.vae.model import vae_loss_terms

    module.eval()
    total_r = total_k = 0.0
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            z_mean, z_log_var = module.encode(xb)
            eps = torch.randn(z_mean.shape, generator=gen, device=x.device)
            logits = module.decode_logits(z_mean + torch.exp(0.5 * z_log_var) * eps)
            r, k = vae_loss_terms(logits, xb, z_mean, z_log_var=z_log_var, gene_weights=gene_weights)
            total_r += r.item() * xb.shape[0]
            total_k += k.item() * xb.shape[0]
    return total_r / x.shape[0], total_k / x.shape[0]


def run_metrics(history, dev) -> dict:
    """The last epoch's losses and how the run went, for config.json."""
    last = history.iloc[-1]
    metrics = {k: float(last[k]) for k in history.columns if k != "epoch"}
    metrics["train_seconds"] = round(float(history.attrs.get("seconds", 0.0)), 3)
    metrics["device"] = history.attrs.get("device", describe_device(dev))
    metrics["cuda_graphs"] = bool(history.attrs.get("cuda_graphs", False))
    return metrics
