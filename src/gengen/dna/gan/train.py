"""Training the DNA WGAN-GP (Killoran et al. 2017): the iteration, the loop, its checkpoints.

Gradient penalty lambda = 10, Adam lr 1e-4, betas (0.5, 0.9), 5 critic steps per generator step,
batch 64. The maths is the paper's; the loop is arranged for speed (see :func:`fit_gan`): training
windows live on the device as uint8 codes and become one-hot per batch, the critic's real and fake
halves go through one forward call, fake batches for the critic are drawn without building a
generator graph, the critic's weights are frozen during the generator step (no wasted weight
gradients), and losses are read back only when logged.

Training keeps, besides the last state, the generator weights with the best held-out k-mer check
(mean JS over k = 3, 4); :meth:`gengen.dna.gan.core.GANModel.load` uses them by default.

The entry point is :meth:`gengen.dna.gan.core.GANModel.train`; checkpoints and ``--resume`` go through
:mod:`gengen.training_state`, the whole training state in ``model.safetensors`` (docs/checkpoints.md:
the critic, both optimisers and the RNG beside the generator, so a finished run can train on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.dna.gan.model import Critic, Generator, ResBlock, sample_codes
from gengen.errors import GengenError
from gengen.recipes import GANRecipe
from gengen.runtime import Progress, capture_cuda_graph, cuda_graphs_wanted, log, make_capturable, on_device

if TYPE_CHECKING:
    from gengen.training_state import LoopState, Snapshot, TrainingCheckpoint

BEST = "best"  # the loop tensors (``best.<name>``) holding the generator with the best held-out check


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Gulrajani et al.'s penalty: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat."""
    eps = torch.rand(real.shape[0], 1, 1, device=real.device, dtype=real.dtype)
    x_hat = eps * real + (1 - eps) * fake
    # the explicit gradient holds for exactly this piecewise-linear architecture; anything else
    # (another critic, a subclass, swapped blocks) goes through autograd
    explicit = type(critic).forward is Critic.forward and all(type(b) is ResBlock for b in critic.blocks)
    if explicit:
        grad = critic.input_gradient(x_hat)
    else:
        x_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class GANNets:
    """The two networks and their optimisers: what one WGAN-GP iteration updates."""

    generator: Generator
    critic: Critic
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


def new_nets(recipe: GANRecipe, device) -> GANNets:
    """Freshly initialised networks (from torch's global RNG) and Adam optimisers on ``device``."""
    g = Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks).to(device)
    d = Critic(recipe.length, recipe.channels, recipe.blocks).to(device)
    betas = (recipe.beta1, recipe.beta2)
    foreach = device.type == "cuda"
    opt_g = torch.optim.Adam(g.parameters(), lr=recipe.learning_rate, betas=betas, foreach=foreach or None)
    opt_d = torch.optim.Adam(d.parameters(), lr=recipe.learning_rate, betas=betas, foreach=foreach or None)
    return GANNets(g, d, opt_g, opt_d)


def best_generator_weights(state: LoopState) -> dict[str, torch.Tensor]:
    """The generator weights of the best held-out check so far (empty before the first check)."""
    n = len(BEST) + 1
    return {k[n:]: v for k, v in state.tensors.items() if k.startswith(BEST + ".")}


def _checkpoint_parts(state: LoopState, recipe: GANRecipe) -> tuple[dict, dict, Callable[[Path], None]]:
    """A ``dna-train`` folder (docs/checkpoints.md) from the loop state: model.safetensors holds the last
    generator (``G.``), the critic (``D.``), both optimisers, the best generator (``B.``) and the RNG --
    the whole training state, so a finished run can train on; history.csv, training.png and the last
    check's samples.fa go beside it."""
    from gengen.training_state import flatten_optimizer

    generator, critic = state.modules["G"], state.modules["D"]
    tensors = {f"G.{k}": v for k, v in generator.state_dict().items()}
    tensors.update({f"D.{k}": v for k, v in critic.state_dict().items()})
    tg, groups_g = flatten_optimizer("optG", state.optimizers["G"])
    td, groups_d = flatten_optimizer("optD", state.optimizers["D"])
    tensors.update(tg)
    tensors.update(td)
    tensors.update({f"B.{k}": v for k, v in best_generator_weights(state).items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and next(generator.parameters()).is_cuda:
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    cfg = {
        "recipe": recipe.to_dict(),
        "iteration": state.epoch,
        "alphabet": "ACGT",
        "layout": "(N, 4, L)",
        "opt_groups": {"G": groups_g, "D": groups_d},
        "train_seconds": state.seconds,
        "best": state.values["best"],
        "metrics": state.values["metrics"],
    }
    history = list(state.history)
    samples = state.unsaved.get("samples")

    def write(tmp: Path) -> None:
        import pandas as pd

        from gengen.io.sequences import decode_codes, write_fasta

        if history:
            hist = pd.DataFrame(history)
            hist.to_csv(tmp / "history.csv", index=False)
            _plot_history(hist, tmp / "training.png")
        if samples is not None:
            write_fasta(tmp / "samples.fa", [f"sample_{i + 1}" for i in range(len(samples))], decode_codes(samples))

    return tensors, cfg, write


def training_snapshot(directory, pipeline: str) -> Snapshot:
    """The training state of the ``dna-train`` folder ``directory`` (written by this gengen or an older
    one: the layout is the same) as a :class:`gengen.training_state.Snapshot` for ``restore``."""
    from gengen.checkpoint import load_checkpoint, read_history
    from gengen.training_state import STATE_FORMAT, Snapshot

    tensors, cfg, directory = load_checkpoint(directory, pipeline, note_unfinished=False)
    if not any(k.startswith("D.") for k in tensors):
        raise GengenError(f"{str(directory)!r} holds no critic/optimiser state; it cannot be resumed.")
    # the model file's prefixes as the loop state's (modules G and D, optimisers G and D, the best weights)
    names = {"G": "module.G", "D": "module.D", "optG": "optim.G", "optD": "optim.D", "B": f"loop.{BEST}"}
    state = {}
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        if head in names:
            state[f"{names[head]}.{rest}"] = value
    has_best = bool(cfg.get("best")) and any(k.startswith("B.") for k in tensors)
    if not has_best:
        state = {k: v for k, v in state.items() if not k.startswith(f"loop.{BEST}.")}
    try:
        state["rng.torch"] = tensors["rng.cpu"]
        if "rng.cuda" in tensors:
            state["rng.cuda"] = tensors["rng.cuda"]
        meta = {"format": STATE_FORMAT, "phase": "train", "epoch": int(cfg["iteration"]), "batch": 0,
                "seconds": float(cfg.get("train_seconds", 0.0)), "cpu_threads": cfg.get("cpu_threads"), "carry": {},
                "optimizers": {"G": cfg["opt_groups"]["G"], "D": cfg["opt_groups"]["D"]},
                "values": {"best": dict(cfg["best"]) if has_best else None, "metrics": dict(cfg.get("metrics") or {})}}
    except (KeyError, TypeError, ValueError) as exc:
        raise _inconsistent(directory, exc) from None
    hist = read_history(directory, ("iteration",))
    meta["history"] = hist.to_dict("records") if hist is not None else []
    return Snapshot(state, meta)


def _inconsistent(directory, exc: Exception) -> GengenError:
    return GengenError(
        f"--resume: the training state in {str(directory)!r} is inconsistent ({str(exc).splitlines()[0][:160]}); "
        "the checkpoint is corrupted or from another gengen version."
    )


def resumed_recipe(config: dict, directory: Path, asked: GANRecipe | None) -> GANRecipe:
    """The recipe a resumed run goes on with: the checkpoint's (config.json ``config``), but ``asked``'s
    iterations (resuming may extend training; ``asked=None``: the checkpoint's too); an architecture other
    than the checkpoint's is refused."""
    from gengen.checkpoint import config_section, require_keys

    require_keys(config, ["recipe", "iteration", "opt_groups"], directory)
    recipe = config_section(GANRecipe, config["recipe"], directory, what="recipe")
    recipe.heldout_by = recipe.heldout_by or "name"  # a checkpoint from before the sequence split keeps its own
    if asked is not None:
        for name in ("length", "latent", "channels", "blocks"):
            if getattr(asked, name) != getattr(recipe, name):
                raise GengenError(
                    f"--resume: the checkpoint has {name} {getattr(recipe, name)}, "
                    f"but {getattr(asked, name)} was asked for."
                )
        recipe.iterations = asked.iterations
    return recipe


def _plot_history(hist, path) -> None:
    """Losses per logged interval, and the k-mer JS check at the iterations where it was run."""
    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for col in ("critic_loss", "gen_loss", "wasserstein"):
        if col in hist.columns:
            a.plot(hist["iteration"], hist[col], label=col.replace("_", " "))
    a.set_title("WGAN-GP losses")
    a.set_xlabel("iteration")
    if a.get_legend_handles_labels()[0]:
        a.legend(frameon=False, fontsize=8)
    for col in [c for c in hist.columns if c.startswith("js_k")]:
        sub = hist[hist[col].notna()]
        b.plot(sub["iteration"], sub[col], marker=".", label=col.replace("js_", ""))
    b.set_title("k-mer JS vs held-out windows (bits)")
    b.set_xlabel("iteration")
    b.set_yscale("log")
    if b.get_legend_handles_labels()[0]:
        b.legend(frameon=False, fontsize=8)
    fig.suptitle("DNA WGAN-GP")
    fig.tight_layout()
    save_figure(fig, path)


_CODE_TABLES: dict[str, torch.Tensor] = {}


def _code_table(device: torch.device) -> torch.Tensor:
    """``(5, 4)`` rows for codes 0-3 (one-hot A, C, G, T) and 4 (N/IUPAC: 0.25 each, as
    ``--ambiguous uniform`` keeps them), so a batch is one gather. Cached per device: creating it
    inside a CUDA-graph capture would not be allowed."""
    key = str(device)
    if key not in _CODE_TABLES:
        table = torch.eye(5, 4)
        table[4] = 0.25
        _CODE_TABLES[key] = table.to(device)
    return _CODE_TABLES[key]


def wgan_gp_iteration(state: GANNets, data: torch.Tensor, recipe: GANRecipe) -> tuple[torch.Tensor, ...]:
    """One generator iteration (``critic_steps`` critic updates, then one generator update).

    ``data`` holds training windows as uint8 codes ``(N, L)`` on the device. Returns device tensors
    (critic loss, Wasserstein estimate, gradient penalty, generator loss), not yet synchronised.
    """
    g, d, b = state.generator, state.critic, recipe.batch_size
    dev = data.device
    table = _code_table(dev)
    for p in d.parameters():
        p.requires_grad_(True)
    for _ in range(recipe.critic_steps):
        idx = torch.randint(len(data), (b,), device=dev)
        real = table[data[idx].long()].transpose(1, 2)
        with torch.no_grad():
            fake = g(torch.randn(b, recipe.latent, device=dev))
        out = d(torch.cat([real, fake]))
        wdist = out[:b].mean() - out[b:].mean()
        gp = gradient_penalty(d, real, fake)
        loss_d = -wdist + recipe.gp_weight * gp
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        state.opt_d.step()
    for p in d.parameters():
        p.requires_grad_(False)
    loss_g = -d(g(torch.randn(b, recipe.latent, device=dev))).mean()
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()
    for p in d.parameters():
        p.requires_grad_(True)
    return loss_d.detach(), wdist.detach(), gp.detach(), loss_g.detach()


def make_iteration(
    state: GANNets, data: torch.Tensor, recipe: GANRecipe, *, cuda_graphs: bool | None = None, quiet: bool = True
) -> Callable[[], tuple[torch.Tensor, ...]]:
    """A callable that runs one :func:`wgan_gp_iteration` per call.

    On CUDA (unless ``cuda_graphs=False`` or ``GENGEN_CUDA_GRAPHS=0``) the third call captures the
    whole iteration -- six optimiser steps, about a thousand small kernels at batch 64 -- as one CUDA
    graph and every later call replays it, which removes the per-kernel launch cost that dominates
    at this size. Every call is one real iteration (the capture's warm-up call is the third). The
    returned loss tensors of a replay belong to the graph: read or copy them before the next call.
    """
    cuda_graphs = cuda_graphs_wanted(data.device, cuda_graphs)

    def eager() -> tuple[torch.Tensor, ...]:
        return wgan_gp_iteration(state, data, recipe)

    if not cuda_graphs:
        return eager
    make_capturable(state.opt_g, data.device)
    make_capturable(state.opt_d, data.device)
    outputs: list[tuple[torch.Tensor, ...]] = []
    plan: dict = {"calls": 0, "graph": None, "failed": False}

    def step() -> None:
        outputs.append(wgan_gp_iteration(state, data, recipe))

    def run() -> tuple[torch.Tensor, ...]:
        plan["calls"] += 1
        if plan["graph"] is not None:
            plan["graph"].replay()
            return outputs[-1]
        if plan["failed"] or plan["calls"] < 3:
            return eager()
        try:
            plan["graph"] = capture_cuda_graph(step, warmup=1)
        except RuntimeError as exc:  # an unusual torch/driver: go on eagerly, say so
            plan["failed"] = True
            log(f"note: CUDA graph capture failed ({str(exc).splitlines()[0]}); training without graphs", quiet)
            return outputs[0] if outputs else eager()
        return outputs[0]  # the warm-up call was this iteration; the capture ran nothing

    run.uses_graph = lambda: plan["graph"] is not None  # type: ignore[attr-defined]
    return run


def fit_gan(
    nets: GANNets,
    codes: np.ndarray,
    recipe: GANRecipe,
    *,
    heldout_codes: np.ndarray | None = None,
    checkpoint: TrainingCheckpoint | None = None,
    quiet: bool = True,
    time_limit: float | None = None,
    ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
) -> LoopState:
    """Train ``nets`` in place on ``(N, L)`` uint8 windows ``codes`` up to ``recipe.iterations``.

    Every ``log_every`` iterations a history row; every ``sample_every`` (and at the end) 1,000 samples
    and their k-mer check against ``heldout_codes``, keeping the generator with the best one; with
    ``checkpoint`` (a :class:`gengen.training_state.TrainingCheckpoint` whose model file holds the
    state) a save every ``checkpoint_every`` iterations and at the end, and a resumed run restored
    first. ``time_limit`` (seconds) stops early, cleanly. Returns the loop state: ``epoch`` counts
    iterations, ``values`` holds ``best`` and ``metrics``, :func:`best_generator_weights` the best weights.
    """
    from functools import partial

    from gengen.dna.metrics import js_divergence, kmer_spectrum
    from gengen.training_state import LoopState

    dev = next(nets.generator.parameters()).device
    state = LoopState({"G": nets.generator, "D": nets.critic}, {"G": nets.opt_g, "D": nets.opt_d},
                      values={"best": None, "metrics": {}})
    if checkpoint is not None:
        try:
            checkpoint.start(state, dev)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise _inconsistent(checkpoint.directory, exc) from None
        checkpoint.write_model = partial(_checkpoint_parts, recipe=recipe)
    metrics = state.values["metrics"]
    data = torch.as_tensor(codes, device=dev)
    ref_specs = {k: kmer_spectrum(heldout_codes, k) for k in ks} if heldout_codes is not None else None
    sample_seed = recipe.seed + 12345
    # WGAN training oscillates: keep the generator with the best held-out k-mer check (mean JS over
    # k = 3, 4), besides the last state (which --resume continues from).
    best_ks = [k for k in (3, 4) if k in ks] or list(ks)
    criterion = "mean held-out JS, k=" + ",".join(str(k) for k in best_ks)

    def check(n_samples: int = 1000) -> dict:
        samples = sample_codes(nets.generator, n_samples, sample_seed)
        nets.generator.train()
        out = {}
        if ref_specs is not None:
            for k in ks:
                out[f"js_k{k}"] = js_divergence(kmer_spectrum(samples, k), ref_specs[k])
            score = float(np.mean([out[f"js_k{k}"] for k in best_ks]))
            best = state.values["best"]
            if best is None or score < best["score"]:
                state.values["best"] = {"iteration": state.epoch, "score": score, "criterion": criterion}
                state.tensors.update({f"{BEST}.{k}": v.detach().clone() for k, v in nets.generator.state_dict().items()})
        state.unsaved["samples"] = samples  # samples.fa of the next checkpoint
        return out

    def save(complete: bool = False) -> None:
        if checkpoint is not None:
            metrics.update({"iteration": state.epoch, "train_windows": int(len(codes)), "device": str(dev)})
            checkpoint.save(state, dev, complete=complete)

    acc = torch.zeros(4, device=dev)
    n_acc = 0
    t_start = time.perf_counter()
    seconds_before = state.seconds
    remaining = recipe.iterations - state.epoch
    iteration = make_iteration(nets, data, recipe, quiet=quiet)
    with Progress(max(remaining, 0), "train WGAN-GP", quiet, time_limit=time_limit) as bar, on_device(dev):
        while state.epoch < recipe.iterations:
            nets.generator.train()
            losses = iteration()
            acc += torch.stack(losses)
            n_acc += 1
            state.epoch += 1
            it = state.epoch
            elapsed = time.perf_counter() - t_start
            state.seconds = seconds_before + elapsed
            out_of_time = time_limit is not None and elapsed >= time_limit
            final = it == recipe.iterations or out_of_time
            if it % recipe.log_every == 0 or final:
                vals = (acc / n_acc).tolist()
                row = {
                    "iteration": it,
                    "critic_loss": vals[0],
                    "wasserstein": vals[1],
                    "gp": vals[2],
                    "gen_loss": vals[3],
                    "seconds": round(state.seconds, 2),
                }
                if it % recipe.sample_every == 0 or final:
                    row.update(check())
                state.history.append(row)
                acc.zero_()
                # advance by the iterations since the last update: a time limit or the last iteration can
                # come mid-interval, and a bar stuck at 0/2000 after 42 iterations misleads
                bar.update(n_acc, critic=vals[0], W=vals[1], gen=vals[3])
                n_acc = 0
                if it % recipe.checkpoint_every == 0 and not final:
                    save()
            if out_of_time:
                break
    if state.epoch < recipe.iterations:
        log(
            f"time limit reached at iteration {state.epoch} of {recipe.iterations}; resume with --resume",
            quiet,
        )
        metrics["stopped_early"] = True
    if "samples" not in state.unsaved:
        check()
    metrics["seconds_per_iteration"] = state.seconds / max(state.epoch, 1)
    metrics["cuda_graphs"] = bool(getattr(iteration, "uses_graph", lambda: False)())
    if state.history and any(k.startswith("js_k") for k in state.history[-1]):
        metrics.update({k: v for k, v in state.history[-1].items() if k.startswith("js_k")})
    best = state.values["best"]
    if best is not None:
        row = next((r for r in state.history if r.get("iteration") == best["iteration"]), {})
        metrics["best_iteration"] = best["iteration"]
        metrics["best_score"] = best["score"]
        metrics.update({f"best_{k}": v for k, v in row.items() if k.startswith("js_k") and v == v})
    save(complete=state.epoch >= recipe.iterations)
    return state


def iterations_for(seconds: float, seconds_per_iteration: float) -> int:
    """How many generator iterations fit a time budget (for planning CPU runs)."""
    return max(1, math.floor(seconds / max(seconds_per_iteration, 1e-9)))


def resume_heldout_by(output) -> str:
    """How a resumed run must hold records out: as its checkpoint did (``"name"`` for checkpoints from
    before the sequence split), so no held-out record becomes training data; ``"sequence"`` when there
    is no readable checkpoint (:meth:`~gengen.dna.gan.core.GANModel.train` reports that)."""
    from gengen.checkpoint import read_config

    try:
        recipe = read_config(output)["recipe"]
        return recipe.get("heldout_by") or "name"
    except (OSError, GengenError, KeyError, TypeError, AttributeError):
        return "sequence"


def resume_heldout_fraction(output, asked: float | None) -> float | None:
    """The held-out fraction a resumed run must use: the checkpoint's (resuming with another would train
    on genes it held out); ``asked`` when there is no readable checkpoint (``GANModel.train`` reports that)."""
    from gengen.checkpoint import read_config

    try:
        saved = read_config(output)["recipe"]["heldout_fraction"]
    except (OSError, GengenError, KeyError, TypeError):
        return asked
    if asked is not None and abs(asked - saved) > 1e-12:
        raise GengenError(
            f"--resume: the checkpoint was trained with --heldout-fraction {saved}, not {asked}; resuming with "
            "another fraction would train on genes held out before. Leave the option out to keep the checkpoint's."
        )
    return saved


def training_report(metrics: dict) -> list[str]:
    """What ``dna-train`` prints at the end: iterations, time, the held-out k-mer check, the best checkpoint."""
    m = metrics
    js = "  ".join(f"{k}={v:.4f}" for k, v in m.items() if k.startswith("js_k"))
    lines = [f"{m.get('iteration')} iterations on {m.get('device')} ({m['seconds_per_iteration']:.3f} s each)"
             + (f"; held-out k-mer JS: {js}" if js else "")]
    if "best_iteration" in m:
        lines.append(f"best held-out check (mean JS k=3,4 {m['best_score']:.4f}) at iteration {m['best_iteration']}: "
                     "used by dna-generate/dna-eval/dna-design unless --weights last")
    return lines
