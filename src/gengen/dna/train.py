"""Training the DNA WGAN-GP (Killoran et al. 2017): recipe, the iteration, checkpoints and resume.

Gradient penalty lambda = 10, Adam lr 1e-4, betas (0.5, 0.9), 5 critic steps per generator step,
batch 64. The maths is the paper's; the loop is arranged for speed (see :func:`train_gan`): training
windows live on the device as uint8 codes and become one-hot per batch, the critic's real and fake
halves go through one forward call, fake batches for the critic are drawn without building a
generator graph, the critic's weights are frozen during the generator step (no wasted weight
gradients), and losses are read back only when logged.

Training keeps, besides the last state, the generator weights with the best held-out k-mer check
(mean JS over k = 3, 4); :meth:`gengen.dna.core.GANModel.load` uses them by default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.dna.model import Critic, Generator, ResBlock
from gengen.errors import GengenError
from gengen.recipes import GANRecipe
from gengen.runtime import (
    Progress,
    capture_cuda_graph,
    cuda_graphs_wanted,
    log,
    make_capturable,
    on_device,
    resolve_device,
    seed_everything,
)

if TYPE_CHECKING:
    from gengen.dna.core import GANModel

PIPELINE = "dna-gan"


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


def _flatten_opt(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Optimizer state as flat tensors (safetensors) + param groups (JSON)."""
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"{prefix}.{pid}.{key}"] = t
    # "capturable" is how this run stepped (CUDA graphs), not state: a resume on the CPU must not inherit it
    return tensors, [{**g, "capturable": False} for g in sd["param_groups"]]


def _unflatten_opt(prefix: str, tensors: dict, groups: list, opt: torch.optim.Optimizer, device) -> None:
    state: dict = {}
    for key, val in tensors.items():
        if key.startswith(prefix + "."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = val.to(device) if name != "step" else val
    opt.load_state_dict({"state": state, "param_groups": groups})


@dataclass
class TrainState:
    generator: Generator
    critic: Critic
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    best: dict | None = None  # {"iteration", "score", "criterion"} of the best held-out k-mer check
    best_weights: dict[str, torch.Tensor] | None = None  # generator weights at that check


def _new_state(recipe: GANRecipe, device) -> TrainState:
    g = Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks).to(device)
    d = Critic(recipe.length, recipe.channels, recipe.blocks).to(device)
    betas = (recipe.beta1, recipe.beta2)
    foreach = device.type == "cuda"
    opt_g = torch.optim.Adam(g.parameters(), lr=recipe.learning_rate, betas=betas, foreach=foreach or None)
    opt_d = torch.optim.Adam(d.parameters(), lr=recipe.learning_rate, betas=betas, foreach=foreach or None)
    return TrainState(g, d, opt_g, opt_d)


def save_training(
    directory,
    state: TrainState,
    recipe: GANRecipe,
    metrics: dict,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Checkpoint everything needed to resume: both nets, both optimisers, the RNG, the history."""
    from gengen.checkpoint import save_checkpoint

    tensors = {f"G.{k}": v for k, v in state.generator.state_dict().items()}
    tensors.update({f"D.{k}": v for k, v in state.critic.state_dict().items()})
    tg, groups_g = _flatten_opt("optG", state.opt_g)
    td, groups_d = _flatten_opt("optD", state.opt_d)
    tensors.update(tg)
    tensors.update(td)
    if state.best_weights is not None:
        tensors.update({f"B.{k}": v for k, v in state.best_weights.items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and next(state.generator.parameters()).is_cuda:
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    cfg = {
        "recipe": recipe.to_dict(),
        "iteration": state.iteration,
        "alphabet": "ACGT",
        "layout": "(N, 4, L)",
        "opt_groups": {"G": groups_g, "D": groups_d},
        "train_seconds": state.seconds,
        "best": state.best,
        "metrics": metrics,
    }
    history = list(state.history)

    def write(tmp: Path) -> None:
        import pandas as pd

        if history:
            hist = pd.DataFrame(history)
            hist.to_csv(tmp / "history.csv", index=False)
            _plot_history(hist, tmp / "training.png")
        if extra is not None:
            extra(tmp)

    return save_checkpoint(directory, PIPELINE, tensors, config=cfg, extra_files=write)


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


def _load_training(path, recipe_override: GANRecipe | None, device) -> tuple[TrainState, GANRecipe, dict]:
    from gengen.checkpoint import config_section, load_checkpoint, read_history, require_keys

    tensors, cfg, directory = load_checkpoint(path, PIPELINE)
    require_keys(cfg, ["recipe", "iteration", "opt_groups"], directory)
    recipe = config_section(GANRecipe, cfg["recipe"], directory, what="recipe")
    recipe.heldout_by = recipe.heldout_by or "name"  # a checkpoint from before the sequence split keeps its own
    if recipe_override is not None:
        for name in ("length", "latent", "channels", "blocks"):
            if getattr(recipe_override, name) != getattr(recipe, name):
                raise GengenError(
                    f"--resume: the checkpoint has {name} {getattr(recipe, name)}, "
                    f"but {getattr(recipe_override, name)} was asked for."
                )
        recipe.iterations = recipe_override.iterations  # resuming may extend training
    if not any(k.startswith("D.") for k in tensors):
        raise GengenError(f"{str(directory)!r} holds no critic/optimiser state; it cannot be resumed.")
    state = _new_state(recipe, device)
    try:
        state.generator.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
        state.critic.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})
        _unflatten_opt("optG", tensors, cfg["opt_groups"]["G"], state.opt_g, device)
        _unflatten_opt("optD", tensors, cfg["opt_groups"]["D"], state.opt_d, device)
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        state.iteration = int(cfg["iteration"])
        state.seconds = float(cfg.get("train_seconds", 0.0))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise GengenError(
            f"--resume: the training state in {str(directory)!r} is inconsistent ({str(exc).splitlines()[0][:160]}); "
            "the checkpoint is corrupted or from another gengen version."
        ) from None
    if cfg.get("best") and any(k.startswith("B.") for k in tensors):
        state.best = dict(cfg["best"])
        state.best_weights = {k[2:]: v.to(device) for k, v in tensors.items() if k.startswith("B.")}
    hist = read_history(directory, ("iteration",))
    if hist is not None:
        state.history = hist.to_dict("records")
    return state, recipe, cfg.get("metrics", {})


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


def wgan_gp_iteration(state: TrainState, data: torch.Tensor, recipe: GANRecipe) -> tuple[torch.Tensor, ...]:
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
    state: TrainState, data: torch.Tensor, recipe: GANRecipe, cuda_graphs: bool | None = None, quiet: bool = True
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


def train_gan(
    train_codes: np.ndarray,
    recipe: GANRecipe | None = None,
    output: str | Path | None = None,
    *,
    heldout_codes: np.ndarray | None = None,
    resume: bool = False,
    device: str = "auto",
    quiet: bool = True,
    time_limit: float | None = None,
    ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
) -> GANModel:
    """Train (or resume) a WGAN-GP on ``(N, L)`` uint8 training windows.

    With ``output``, a resumable checkpoint (both nets, optimisers, RNG, history.csv, training.png,
    samples.fa and a k-mer check against ``heldout_codes``) is written every ``checkpoint_every``
    iterations and at the end; ``resume=True`` continues from it up to ``recipe.iterations``.
    ``time_limit`` (seconds) stops early, cleanly, with a final checkpoint. ``output`` is checked
    and locked before training (a second run writing it gets an error) until the last checkpoint.

    A recipe without ``heldout_by`` records ``"sequence"``, the split of
    :func:`gengen.dna.data.training_windows` (a resumed run keeps its checkpoint's).

    Parameters
    ----------
    train_codes : training windows ``(N, L)``, uint8 codes 0-3 (A, C, G, T).
    recipe : the settings (default :class:`GANRecipe`: the paper's WGAN-GP).
    output : the checkpoint folder (None: train in memory only).
    heldout_codes : held-out windows for the k-mer check that picks the best generator.
    resume : continue the run saved in ``output``.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    quiet : no progress or status lines (the default for library calls).
    time_limit : seconds after which training stops cleanly.
    ks : k-mer sizes of the held-out check's table.

    Returns
    -------
    The model with the best generator (``.last``: the final iteration's).
    """
    from dataclasses import replace

    from gengen.checkpoint import overwrite_check
    from gengen.runtime import plan_outputs

    recipe = recipe or GANRecipe()
    if recipe.heldout_by is None and not resume:
        recipe = replace(recipe, heldout_by="sequence")
    recipe.validate()
    if output is None:
        return _train_gan(train_codes, recipe, None, heldout_codes, resume, device, quiet, time_limit, ks)
    with plan_outputs(models={output: overwrite_check(PIPELINE)}):
        return _train_gan(train_codes, recipe, output, heldout_codes, resume, device, quiet, time_limit, ks)


def _train_gan(train_codes, recipe, output, heldout_codes, resume, device, quiet, time_limit, ks) -> GANModel:
    from gengen.dna.core import GANModel
    from gengen.dna.metrics import js_divergence, kmer_spectrum
    from gengen.io.sequences import decode_codes, write_fasta

    dev = resolve_device(device)
    train_codes = np.asarray(train_codes, dtype=np.uint8)
    if train_codes.ndim != 2 or train_codes.shape[1] != recipe.length:
        raise GengenError(
            f"training windows must be (N, {recipe.length}) codes, got shape {train_codes.shape}."
        )
    if len(train_codes) < recipe.batch_size:
        raise GengenError(
            f"need at least one batch ({recipe.batch_size}) of training windows, got {len(train_codes)}."
        )
    metrics: dict = {}
    if resume:
        if output is None or not (Path(output) / "config.json").is_file():
            raise GengenError(f"--resume: no checkpoint in {str(output)!r} to resume from.")
        state, recipe, metrics = _load_training(output, recipe, dev)
        log(f"resuming from iteration {state.iteration} of {recipe.iterations}", quiet)
    else:
        seed_everything(recipe.seed)
        state = _new_state(recipe, dev)
    data = torch.as_tensor(train_codes, device=dev)
    ref_specs = {k: kmer_spectrum(heldout_codes, k) for k in ks} if heldout_codes is not None else None
    sample_seed = recipe.seed + 12345
    # WGAN training oscillates: keep the generator with the best held-out k-mer check (mean JS over
    # k = 3, 4), besides the last state (which --resume continues from).
    best_ks = [k for k in (3, 4) if k in ks] or list(ks)
    criterion = "mean held-out JS, k=" + ",".join(str(k) for k in best_ks)

    def check(n_samples: int = 1000) -> dict:
        model = GANModel(state.generator, recipe)
        codes = model.generate(n_samples, seed=sample_seed)
        state.generator.train()
        out = {}
        if ref_specs is not None:
            for k in ks:
                out[f"js_k{k}"] = js_divergence(kmer_spectrum(codes, k), ref_specs[k])
            score = float(np.mean([out[f"js_k{k}"] for k in best_ks]))
            if state.best is None or score < state.best["score"]:
                state.best = {"iteration": state.iteration, "score": score, "criterion": criterion}
                state.best_weights = {
                    k: v.detach().clone() for k, v in state.generator.state_dict().items()
                }
        return out, codes

    last_samples: list[np.ndarray] = []

    def checkpoint() -> None:
        if output is None:
            return
        samples = last_samples[-1] if last_samples else None

        def extra(tmp: Path) -> None:
            if samples is not None:
                write_fasta(
                    tmp / "samples.fa",
                    [f"sample_{i + 1}" for i in range(len(samples))],
                    decode_codes(samples),
                )

        metrics.update(
            {"iteration": state.iteration, "train_windows": int(len(train_codes)), "device": str(dev)}
        )
        save_training(output, state, recipe, metrics, extra)

    acc = torch.zeros(4, device=dev)
    n_acc = 0
    t_start = time.perf_counter()
    seconds_before = state.seconds
    remaining = recipe.iterations - state.iteration
    iteration = make_iteration(state, data, recipe, quiet=quiet)
    with Progress(max(remaining, 0), "train WGAN-GP", quiet, time_limit=time_limit) as bar, on_device(dev):
        while state.iteration < recipe.iterations:
            state.generator.train()
            losses = iteration()
            acc += torch.stack(losses)
            n_acc += 1
            state.iteration += 1
            it = state.iteration
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
                    js, codes = check()
                    row.update(js)
                    last_samples[:] = [codes]
                state.history.append(row)
                acc.zero_()
                # advance by the iterations since the last update: a time limit or the last iteration can
                # come mid-interval, and a bar stuck at 0/2000 after 42 iterations misleads
                bar.update(n_acc, critic=vals[0], W=vals[1], gen=vals[3])
                n_acc = 0
                if it % recipe.checkpoint_every == 0 and not final:
                    checkpoint()
            if out_of_time:
                break
    if state.iteration < recipe.iterations:
        log(
            f"time limit reached at iteration {state.iteration} of {recipe.iterations}; resume with --resume",
            quiet,
        )
        metrics["stopped_early"] = True
    if not last_samples:
        _, codes = check()
        last_samples.append(codes)
    metrics["seconds_per_iteration"] = state.seconds / max(state.iteration, 1)
    metrics["cuda_graphs"] = bool(getattr(iteration, "uses_graph", lambda: False)())
    if state.history and any(k.startswith("js_k") for k in state.history[-1]):
        metrics.update({k: v for k, v in state.history[-1].items() if k.startswith("js_k")})
    if state.best is not None:
        row = next((r for r in state.history if r.get("iteration") == state.best["iteration"]), {})
        metrics["best_iteration"] = state.best["iteration"]
        metrics["best_score"] = state.best["score"]
        metrics.update({f"best_{k}": v for k, v in row.items() if k.startswith("js_k") and v == v})
    checkpoint()
    state.generator.eval()
    last = GANModel(state.generator, recipe, {**metrics, "weights": "last"})
    if state.best_weights is None:
        last.last = last
        return last
    best_gen = Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks).to(dev)
    best_gen.load_state_dict(state.best_weights)
    best = GANModel(
        best_gen.eval(), recipe, {**metrics, "weights": "best", "weights_iteration": state.best["iteration"]}
    )
    best.last = last
    return best


def iterations_for(seconds: float, seconds_per_iteration: float) -> int:
    """How many generator iterations fit a time budget (for planning CPU runs)."""
    return max(1, math.floor(seconds / max(seconds_per_iteration, 1e-9)))


def resume_heldout_by(output) -> str:
    """How a resumed run must hold records out: as its checkpoint did (``"name"`` for checkpoints from
    before the sequence split), so no held-out record becomes training data; ``"sequence"`` when there
    is no readable checkpoint (:func:`train_gan` reports that)."""
    from gengen.checkpoint import read_config

    try:
        recipe = read_config(output)["recipe"]
        return recipe.get("heldout_by") or "name"
    except (OSError, GengenError, KeyError, TypeError, AttributeError):
        return "sequence"


def resume_heldout_fraction(output, asked: float | None) -> float | None:
    """The held-out fraction a resumed run must use: the checkpoint's (resuming with another would train
    on genes it held out); ``asked`` when there is no readable checkpoint (:func:`train_gan` reports that)."""
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
