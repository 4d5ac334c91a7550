"""Gradient-based sequence design toward one or several objectives, under hard constraints
(Killoran et al. 2017; Fast SeqProp, Linder & Seelig 2021; edit budgets as in Ledidi).

One loop (:func:`design`) optimises a **sequence source** with Adam:

- free per-position logits ``(n, 4, L)`` -- **direct** design ("DNA deep dream"); from random logits,
  or from given sequences (``constraints.start``, ``--from``), each design then editing one of them;
- a trained generator's latent vectors z -- **joint** design: designs come from the GAN's learned
  distribution (Adam step 0.1, gradient noise 1e-5, optional prior weight on ||z||^2, as in the paper).

Each step the source gives a relaxed sequence (softmax over bases) and a one-hot readout (the argmax
base, fixed positions put back to the start, and beyond the edit budget only the ``max_edits`` edits
the optimiser wants most -- by how much the new base's logit exceeds the start base's). The objectives
(:mod:`gengen.dna.designer.objectives`) see either the relaxation or -- straight-through -- the readout in the
forward pass with softmax gradients backward. Avoided patterns and the GC range add a penalty (one
unit of the total weight per occurrence or per base off the range).

Straight-through is used whenever a value is to be hit or sequences are edited (so the sequence
scored is the sequence kept, and the best constraint-meeting readout of every design is kept over
all steps); otherwise the plain softmax relaxation, which designed as well or better toward PWM
maxima (docs/dna.md). After the gradient steps: single-base polishing toward value targets, a repair
pass for designs that still break a pattern or GC constraint (:mod:`gengen.dna.designer.greedy`), and the
independent check (:func:`gengen.dna.designer.constraints.verify`): a design that fails it is dropped.

Every reported score is the exact score of the **one-hot** sequence (a relaxed sequence can score
high while its readout does not). The user's models are left as they were found (device, train/eval
mode, ``requires_grad``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.dna.designer.constraints import Constraints, verify
from gengen.dna.designer.greedy import EditRules, better_of, polish, polish_from_start, repair
from gengen.dna.designer.objectives import Objective, as_objectives, calibrate, combined, parse_target
from gengen.dna.designer.result import DesignResult, design_outputs
from gengen.errors import GengenError
from gengen.recipes import DesignSettings
from gengen.runtime import Progress, check_memory, resolve_device

if TYPE_CHECKING:
    from gengen.dna.gan.core import GANModel
    from gengen.io.motifs import PWM

__all__ = [
    "DesignResult", "design", "design_direct", "design_joint", "design_outputs", "parse_target",
    "plot_design", "polish_toward",
]

EDIT_MARGIN = 2.0  # start logits of edited sequences: the start base leads by this much
PENALTY_PER_WEIGHT = 1.0  # constraint penalty per pattern occurrence / base off the GC range, per unit weight


def argmax_bases(x: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the 4 base channels of ``(N, 4, L)``, first index on ties.

    Written as pairwise comparisons: on CPU, ``argmax(dim=1)`` over the strided channel axis is
    ~20x slower and dominated design time.
    """
    a, c, g, t = x.unbind(1)
    i01 = (c > a).to(torch.uint8)
    i23 = (t > g).to(torch.uint8) + 2
    return torch.where(torch.maximum(g, t) > torch.maximum(a, c), i23, i01)


def one_hot_codes(codes: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """``(N, L)`` codes 0-3 -> one-hot ``(N, 4, L)``."""
    return (codes[:, None, :] == torch.arange(4, device=codes.device, dtype=codes.dtype)[None, :, None]).to(dtype)


# --------------------------------------------------------------------------------------------------
# Sequence sources: what the optimiser moves


class FreeLogits:
    """Per-position logits ``(n, 4, L)``: seeded N(0, ``init_scale``²) noise, or from start sequences the
    start base leading by ``EDIT_MARGIN`` (plus small noise, so designs of one start differ). Fixed
    positions are pinned to the start's base in the relaxed sequence (no gradient reaches them)."""

    method = "direct"

    def __init__(self, n: int, length: int, *, rules: EditRules, init_scale: float, seed: int, device):
        g = torch.Generator(device="cpu").manual_seed(seed)
        noise = init_scale * torch.randn(n, 4, length, generator=g)
        if rules.start is not None:
            start = one_hot_codes(rules.start.cpu())
            noise = EDIT_MARGIN * start + 0.25 * noise
        self.logits = noise.to(device).requires_grad_(True)
        self.pinned = one_hot_codes(rules.start) if rules.fixed is not None else None
        self.fixed = rules.fixed[None, None, :] if rules.fixed is not None else None

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [self.logits]

    def relaxed(self) -> torch.Tensor:
        soft = torch.softmax(self.logits, dim=1)
        return soft if self.fixed is None else torch.where(self.fixed, self.pinned, soft)

    def extra_loss(self) -> torch.Tensor | float:
        return 0.0

    def logits_for_margin(self) -> torch.Tensor:
        return self.logits.detach()

    def perturb(self) -> None:
        pass


class Latent:
    """A GAN's latent vectors z ``(n, latent)`` ~ N(0, I) (seeded); the relaxed sequence is G(z)."""

    method = "joint"

    def __init__(self, gan: GANModel, n: int, *, seed: int, device, prior_weight: float, grad_noise: float):
        self.generator = gan.generator
        self.z = gan.sample_latent(n, seed).to(device).requires_grad_(True)
        self.prior_weight, self.grad_noise = prior_weight, grad_noise
        self.noise = torch.Generator(device="cpu").manual_seed(seed + 1)

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [self.z]

    def relaxed(self) -> torch.Tensor:
        return self.generator(self.z)

    def extra_loss(self) -> torch.Tensor | float:
        return self.prior_weight * (self.z * self.z).sum() if self.prior_weight else 0.0

    def logits_for_margin(self) -> None:
        return None  # no budget with a GAN

    def perturb(self) -> None:
        if self.grad_noise:
            self.z.grad += self.grad_noise * torch.randn(self.z.shape, generator=self.noise).to(self.z.device)


def _readout(soft: torch.Tensor, rules: EditRules, logits: torch.Tensor | None = None) -> torch.Tensor:
    """The one-hot sequence a relaxed one stands for: argmax bases, projected onto the constraints.
    The budget keeps the edits with the largest log-probability margin over the start base (the logit
    difference, when the source has logits)."""
    codes = argmax_bases(soft).long()
    if rules.start is None or rules.max_edits is None:
        return rules.project(codes, None)
    logp = logits if logits is not None else torch.log(soft.clamp_min(1e-30))
    margin = logp.gather(1, codes[:, None, :])[:, 0] - logp.gather(1, rules.start[:, None, :])[:, 0]
    return rules.project(codes, margin)


# --------------------------------------------------------------------------------------------------
# Leaving the user's models as they were found


@contextlib.contextmanager
def borrowed(modules: list[nn.Module], device: torch.device) -> Iterator[None]:
    """Use ``modules`` on ``device`` in eval mode without weight gradients, then put back each one's
    tensors' devices, every submodule's train/eval mode and every parameter's ``requires_grad``."""
    saved = []
    for m in modules:
        tensors = list(m.parameters()) + list(m.buffers())
        devices = {t.device for t in tensors}
        saved.append((m, [(sub, sub.training) for sub in m.modules()],
                      [(p, p.requires_grad) for p in m.parameters()],
                      devices.pop() if len(devices) == 1 else [(t, t.device) for t in tensors]))
    try:
        for m in modules:
            m.to(device).eval()
            for p in m.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for m, modes, flags, where in saved:
            if isinstance(where, torch.device):
                m.to(where)
            else:
                for t, dev in where:
                    t.data = t.data.to(dev)
            for sub, training in modes:
                sub.train(training)
            for p, flag in flags:
                p.requires_grad_(flag)


# --------------------------------------------------------------------------------------------------
# The loop


def _history_row(step: int, objectives, relaxed: list[torch.Tensor], exact: list[torch.Tensor]) -> dict:
    """Relaxed and one-hot mean/min/max per objective (``_2``, ``_3``... after the first) and the mean
    combined objective of the one-hot sequences."""
    row: dict = {"step": step}
    for i, (r, e) in enumerate(zip(relaxed, exact)):
        sfx = "" if i == 0 else f"_{i + 1}"
        row.update({f"relaxed_mean{sfx}": float(r.mean()), f"relaxed_min{sfx}": float(r.min()),
                    f"relaxed_max{sfx}": float(r.max()), f"onehot_mean{sfx}": float(e.mean()),
                    f"onehot_min{sfx}": float(e.min()), f"onehot_max{sfx}": float(e.max())})
    row["combined_mean"] = float(combined(objectives, exact).mean())
    return row


def _feasible(rules: EditRules, x_hard: torch.Tensor, sums: torch.Tensor | None) -> torch.Tensor:
    """Whether readouts meet the pattern and GC constraints (budget and fixed positions hold by construction)."""
    ok = torch.ones(x_hard.shape[0], dtype=torch.bool, device=x_hard.device)
    if sums is not None:
        ok &= ~(sums > rules.scanner.width - 0.5).any(dim=1)
    if rules.gc is not None:
        gc = x_hard[:, 1:3].sum(dim=(1, 2))
        ok &= (gc > rules.gc[0] - 0.5) & (gc < rules.gc[1] + 0.5)
    return ok


def _optimise(source, objectives: list[Objective], rules: EditRules, *, steps: int, learning_rate: float,
              straight_through: bool, record_every: int, quiet: bool, plateau: tuple[int, float] | None = None):
    """Adam on the source; returns (final codes ``(n, L)`` long, history rows, steps run, the step of the
    score's last rise beyond the plateau tolerance or None without ``plateau``).

    Straight-through, every step's readout is scored exactly anyway (it is what the forward pass
    sees), so each design keeps its best constraint-meeting readout over all steps. With ``plateau =
    (K, tol)`` the loop stops at a recorded step once the mean one-hot combined objective has not
    risen by more than ``tol * max(1, |reference|)`` above the reference (its value at the last such
    rise) for ``K`` steps (see :class:`~gengen.recipes.DesignSettings`); stopping leaves the state of
    a run of exactly that many steps.
    """
    params = source.parameters
    opt = torch.optim.Adam(params, lr=learning_rate, **({"fused": True} if source.method == "direct" else {}))
    weight = sum(o.weight for o in objectives) * PENALTY_PER_WEIGHT
    history: list[dict] = []
    best_codes = best_j = None
    reference = reference_step = None
    ran = steps
    note = "it may stop earlier, when the score stops improving" if plateau else ""
    with Progress(steps, f"{source.method} design", quiet, note=note) as bar:
        for step in range(1, steps + 1):
            soft = source.relaxed()
            if straight_through:  # the forward pass sees the readout
                codes = _readout(soft.detach(), rules, source.logits_for_margin())
                x = one_hot_codes(codes, soft.dtype) + soft - soft.detach()
            else:
                x = soft
            evals = [o.evaluate(x) for o in objectives]
            loss = -combined(objectives, [e[0] for e in evals]).sum() + source.extra_loss()
            sums = rules.scanner.window_sums(x) if rules.scanner else None
            if sums is not None:
                loss = loss + weight * rules.scanner.penalty(sums).sum()
            if rules.gc is not None:
                loss = loss + weight * rules.gc_penalty(x).sum()
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            source.perturb()
            record = step % record_every == 0 or step == steps or step == 1
            if straight_through:  # x is the readout: its exact scores come with the forward pass
                with torch.no_grad():
                    exact = [e[1].detach() for e in evals]
                    j = combined(objectives, exact)
                    j = torch.where(_feasible(rules, x.detach(), None if sums is None else sums.detach()), j,
                                    torch.full_like(j, -torch.inf))
                    if best_j is None:
                        best_codes, best_j = codes.clone(), j
                    else:
                        better = j > best_j
                        best_codes[better], best_j = codes[better], torch.maximum(j, best_j)
            opt.step()
            if record and not straight_through:  # the readout after this step
                with torch.no_grad():
                    after = one_hot_codes(_readout(source.relaxed(), rules), soft.dtype)
                    exact = [o.exact(after) for o in objectives]
            if record:
                history.append(_history_row(step, objectives, [e[0].detach() for e in evals], exact))
                bar.update(record_every if step % record_every == 0 else 0, score=history[-1]["onehot_mean"])
                if plateau is not None:
                    value = history[-1]["combined_mean"]
                    if reference is None or value > reference + plateau[1] * max(1.0, abs(reference)):
                        reference, reference_step = value, step
                    elif step - reference_step >= plateau[0] and step < steps:
                        ran = step
                        break
    with torch.no_grad():
        soft = source.relaxed()
        codes = _readout(soft, rules)
        if steps == 0:
            exact = [o.exact(one_hot_codes(codes, soft.dtype)) for o in objectives]
            history.append(_history_row(0, objectives, [o.evaluate(soft)[0] for o in objectives], exact))
        if best_j is not None:  # the last update's readout competes too
            x = one_hot_codes(codes, soft.dtype)
            exact = [o.exact(x) for o in objectives]
            sums = rules.scanner.window_sums(x) if rules.scanner else None
            j = torch.where(_feasible(rules, x, sums), combined(objectives, exact), torch.full_like(best_j, -torch.inf))
            better = j > best_j
            best_codes[better], best_j = codes[better], torch.maximum(j, best_j)
            seen = torch.isfinite(best_j)  # designs never feasible keep their last readout for repair
            codes = torch.where(seen[:, None], best_codes, codes)
    return codes, history, ran, reference_step


def _check_settings(n: int, length: int, steps: int | None, learning_rate: float, max_steps: int = 1,
                    plateau_steps: int = 1, plateau_tolerance: float = 0.0) -> None:
    if n < 1 or (steps is not None and steps < 0) or length < 1:
        raise GengenError(f"-n, --length must be positive and --steps non-negative (got {n}, {length}, {steps}).")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise GengenError(f"--lr (the Adam step size) must be a positive number, got {learning_rate}.")
    if steps is None and (max_steps < 1 or plateau_steps < 1):
        raise GengenError(f"--max-steps and the plateau window must be positive (got {max_steps}, {plateau_steps}).")
    if not (math.isfinite(plateau_tolerance) and plateau_tolerance >= 0):
        raise GengenError(f"the plateau tolerance must be a non-negative number, got {plateau_tolerance}.")


def design(
    objectives,
    n: int | None = None,
    length: int | None = None,
    *,
    gan: GANModel | None = None,
    constraints: Constraints | None = None,
    target: str | float | None = None,
    steps: int | None = DesignSettings.steps,
    max_steps: int = DesignSettings.max_steps,
    plateau_steps: int = DesignSettings.plateau_steps,
    plateau_tolerance: float = DesignSettings.plateau_tolerance,
    learning_rate: float = DesignSettings.learning_rate,
    straight_through: bool | None = None,
    init_scale: float = DesignSettings.init_scale,
    grad_noise: float = DesignSettings.grad_noise,
    prior_weight: float = DesignSettings.prior_weight,
    seed: int = 0,
    device: str | torch.device = "auto",
    quiet: bool = True,
    record_every: int | None = None,
    pwm: PWM | None = None,
) -> DesignResult:
    """Design ``n`` sequences toward ``objectives``: directly, or through ``gan``'s latent space.

    Parameters
    ----------
    objectives : a predictor (``nn.Module``: one-hot ``(N, 4, L)`` -> ``(N,)``, e.g. a
        :class:`~gengen.dna.predictor.predictors.PWMPredictor`), an :class:`~gengen.dna.designer.objectives.Objective`, or a
        list of them (weighed on a common scale, see :mod:`gengen.dna.designer.objectives`).
    n : number of designs (default: one per start sequence, else 100); start sequences are cycled.
    length : sequence length (default: the start sequences', the GAN's, else 50).
    gan : design through this generator's latent space (joint); without it, direct design.
    constraints : :class:`~gengen.dna.designer.constraints.Constraints` (start sequences, edit budget, fixed
        positions, avoided patterns, GC range); met by every returned design.
    target : ``"max"``, ``"min"`` or a value, when ``objectives`` is a bare predictor.
    steps : exactly this many Adam steps; None (default): up to ``max_steps``, stopping on a plateau.
    max_steps, plateau_steps, plateau_tolerance : without ``steps``, stop once the batch's mean one-hot
        objective has not risen by more than ``plateau_tolerance`` x max(1, |its reference|) for
        ``plateau_steps`` steps (checked every ``max_steps // 100`` steps), or after ``max_steps``; see
        :class:`~gengen.recipes.DesignSettings`. ``settings["stopped"]`` says which.
    learning_rate : Adam step size.
    straight_through : one-hot forward pass with softmax gradients (Fast SeqProp); default: when a
        value is to be hit or sequences are edited, else the softmax relaxation.
    init_scale : sd of the random start logits (direct, without start sequences).
    grad_noise, prior_weight : joint design: Gaussian noise on z's gradient, weight of ``||z||^2``.
    seed, device, quiet : seeding (every design draws from it), where to run, progress output.
    record_every : history interval (default: ~100 points).
    pwm : a motif whose best hits annotate the designs when no objective is a motif.

    Returns
    -------
    :class:`~gengen.dna.designer.result.DesignResult`; ``.write(path)`` writes FASTA, TSV and PNG.
    """
    t0 = time.perf_counter()
    objectives = as_objectives(objectives, target)
    c = constraints or Constraints()
    if gan is not None:
        if c.start is not None or c.fixed is not None or c.max_edits is not None:
            raise GengenError("--from, --fixed and --max-edits edit given sequences directly: leave out --gan.")
        if length not in (None, gan.length):
            raise GengenError(f"the GAN generates {gan.length}-nt sequences; --length {length} does not match.")
        length = gan.length
    if c.start is not None:
        if length not in (None, c.start.shape[1]):
            raise GengenError(f"the --from sequences are {c.start.shape[1]} nt; --length {length} does not match.")
        length = c.start.shape[1]
        n = len(c.start) if n is None else n
    n = 100 if n is None else n
    length = 50 if length is None else length
    _check_settings(n, length, steps, learning_rate, max_steps, plateau_steps, plateau_tolerance)
    plateau = (plateau_steps, plateau_tolerance) if steps is None else None
    cap = max_steps if steps is None else steps
    if prior_weight < 0 or grad_noise < 0:
        raise GengenError(f"--prior-weight and --grad-noise must not be negative (got {prior_weight:g}, {grad_noise:g}).")
    for o in objectives:  # a length it cannot score, and for gradient steps a model without a gradient
        o.check_length(length, gradient=cap > 0)
    if c.start is not None and len(c.start) != n:  # one start per design, cycled
        c = Constraints(**{**vars(c), "start": np.resize(c.start, (n, length)),
                           "start_ids": [c.start_ids[i % len(c.start_ids)] for i in range(n)] if c.start_ids else None})
    c.check(length)
    edit = c.start is not None
    values = any(o.is_value for o in objectives)
    if straight_through is None:
        straight_through = values or edit
    dev = resolve_device(device) if isinstance(device, str) else device
    _check_memory(objectives, gan, n, length, dev)
    models = [o.predictor for o in objectives] + ([gan.generator] if gan is not None else [])
    with borrowed(models, dev):
        reference = calibrate(objectives, length, seed=seed, device=dev)
        rules = EditRules(c, n, length, device=dev)
        if gan is not None:
            source = Latent(gan, n, seed=seed, device=dev, prior_weight=prior_weight, grad_noise=grad_noise)
        else:
            source = FreeLogits(n, length, rules=rules, init_scale=init_scale, seed=seed, device=dev)
        with torch.no_grad():
            initial = _readout(source.relaxed(), rules) if not edit else rules.start
        codes, history, ran, last_rise = _optimise(
            source, objectives, rules, steps=cap, learning_rate=learning_rate, straight_through=straight_through,
            record_every=record_every or max(1, cap // 100), quiet=quiet, plateau=plateau)
        with torch.no_grad():
            polished = polish(codes, objectives, rules) if values else codes.to(torch.uint8)
            polish_report = _polish_report(codes, polished, objectives) if values else {}
            n_greedy = 0
            if c.max_edits is not None:  # under a budget: local search from the gradient's edits and from the start
                refined = polish(polished, objectives, rules, rounds=c.max_edits, every_design=True)
                greedy = polish_from_start(objectives, rules, c.max_edits)
                polished, n_greedy = better_of(refined, greedy, objectives, rules=rules)
            fixed = repair(polished, objectives, rules) if c.any else polished
            n_repaired = int((fixed.long() != polished.long()).any(dim=1).sum())
            result = _finish(fixed.cpu().numpy(), initial.cpu().numpy(), objectives, c, history, source.method, dev, pwm)
    result.reference_scores = reference if not edit else None
    result.reference_label = f"random sequences ({len(reference)})"
    result.settings.update({
        "steps": ran, "learning_rate": learning_rate, "straight_through": straight_through, "seed": seed,
        **({"max_steps": cap, "stopped": "plateau" if ran < cap else "max_steps", "plateau_steps": plateau_steps,
            "plateau_tolerance": plateau_tolerance, "last_rise": last_rise} if plateau else {"stopped": "steps"}),
        "seconds": time.perf_counter() - t0, "device": str(dev), "repaired": n_repaired,
        **polish_report,
        **({"grad_noise": grad_noise, "prior_weight": prior_weight} if gan is not None else {}),
        **({"max_edits": c.max_edits, "greedy_kept": n_greedy} if c.max_edits is not None else {}),
    })
    return result


def _polish_report(before: torch.Tensor, after: torch.Tensor, objectives: list[Objective]) -> dict:
    """What the substitutions after the gradient steps did (the history and figure end before them):
    the first value target's mean |score - value| before them, and substitutions per design."""
    from gengen.dna.designer.greedy import _current

    first = next(o for o in objectives if o.is_value)
    score = _current([first], before)[1][0]
    changed = (after.long() != before.long()).sum(dim=1).float()
    return {"error_before_polish": float((score - float(first.target)).abs().mean()),
            "substitutions_mean": float(changed.mean())}


def _check_memory(objectives, gan, n: int, length: int, dev) -> None:
    if gan is not None:  # the generator's activations kept for the backward pass dominate
        r = gan.recipe
        check_memory(4.0 * 2 * n * r.length * r.channels * (4 * r.blocks + 4), f"joint design of {n} sequences", dev)
        return
    # logits, their gradient, Adam's two moments, softmax, one-hot and the predictors' activations:
    # about 16 float32 copies of (n, 4, L), more for a CNN predictor
    per_base = 16 * 4 * 4 * sum(o.activation_copies for o in objectives)
    check_memory(float(per_base) * n * length, f"designing {n} sequences of {length} nt", dev)


def _finish(codes: np.ndarray, initial: np.ndarray, objectives: list[Objective], c: Constraints, history: list[dict],
            method: str, dev, pwm: PWM | None) -> DesignResult:
    """Verify every design independently, drop those that fail, score the rest exactly."""
    import pandas as pd

    from gengen.dna.designer.greedy import edits_of
    from gengen.dna.designer.objectives import exact_scores
    from gengen.dna.predictor.predictors import PWMPredictor, report_scores
    from gengen.io.sequences import codes_to_one_hot, decode_codes

    problems = verify(decode_codes(codes), c) if c.any else [""] * len(codes)
    keep = np.array([p == "" for p in problems], dtype=bool)
    idx = np.flatnonzero(keep)
    codes, initial = codes[keep], initial[keep]
    x = codes_to_one_hot(codes, device=dev)
    scores = exact_scores(objectives, x) if len(codes) else np.zeros((0, len(objectives)))
    start_scores = exact_scores(objectives, codes_to_one_hot(initial, device=dev)) if len(codes) else scores
    combo = combined(objectives, [torch.as_tensor(col) for col in scores.T]).numpy() if len(codes) else np.zeros(0)
    first = objectives[0]
    motif = next((o.pwm for o in objectives if o.pwm is not None), None) or pwm
    result = DesignResult(
        codes=codes, scores=scores[:, 0], history=pd.DataFrame(history), method=method, target=first.target,
        initial_scores=start_scores[:, 0], objectives=objectives, objective_scores=scores,
        initial_objective_scores=start_scores, combined=combo, index=idx,
        start_codes=c.start[keep] if c.start is not None else None,
        start_ids=[c.start_ids[i] for i in idx] if c.start_ids is not None else None,
        edits=edits_of(codes, c.start[keep]) if c.start is not None else None,
        dropped=int((~keep).sum()), drop_reasons=[p for p in problems if p], pwm=motif,
    )
    if motif is not None and len(codes):
        scanner = first.predictor if first.pwm is motif else PWMPredictor(motif).to(dev)
        hits = report_scores(scanner, x)
        result.hit_start, result.hit_strand = hits["hit_start"], hits["hit_strand"]
        result.motif_width = motif.length
        if first.pwm is motif and first.target == "max" and len(objectives) == 1:
            result.max_score = motif.max_score
    return result


# --------------------------------------------------------------------------------------------------
# The earlier entry points, kept


def design_direct(predictor: nn.Module, n: int = 100, length: int = 50, **kwargs) -> DesignResult:
    """Direct design of ``n`` sequences of ``length`` by optimising per-position logits; see :func:`design`.

    Logits start as seeded N(0, ``init_scale``²) noise, so each design starts from a different random
    sequence (this is what keeps the set diverse outside the motif).
    """
    if kwargs.get("straight_through") is False:
        kwargs["straight_through"] = None  # the earlier default: softmax unless a value is to be hit
    return design(predictor, n, length, **kwargs)


def design_joint(gan: GANModel, predictor: nn.Module, n: int = 100, **kwargs) -> DesignResult:
    """Joint design: Adam on the GAN's latent z (generator fixed) toward the objective of predictor(G(z)).

    The paper's settings: step 0.1, Gaussian gradient noise 1e-5, up to 10,000 iterations; the loss
    adds ``prior_weight * ||z||²`` per sequence when set. ``initial_scores`` are the one-hot scores of
    the unconditioned samples G(z₀), the reference a design must beat. See :func:`design`.
    """
    if kwargs.get("straight_through") is False:
        kwargs["straight_through"] = None
    kwargs.setdefault("steps", 1000)
    return design(predictor, n, None, gan=gan, **kwargs)


def _onehot_score(predictor, x_hard: torch.Tensor) -> torch.Tensor:
    """The reported score of one-hot sequences: a PWM's exact best window, else the predictor's output."""
    from gengen.dna.predictor.predictors import exact_score

    return exact_score(predictor, x_hard)


def polish_toward(predictor: nn.Module, codes: torch.Tensor, target: float, *, rounds: int = 30) -> torch.Tensor:
    """Greedy single-base substitutions that bring each sequence's one-hot score closer to ``target``
    (one per round); see :func:`gengen.dna.designer.greedy.polish`. Returns uint8 codes ``(N, L)``."""
    obj = Objective(predictor, float(target))
    rules = EditRules(None, len(codes), codes.shape[1], device=codes.device)
    return polish(codes, [obj], rules, rounds=rounds)


def plot_design(result: DesignResult, path, pwm: PWM | None = None, *, title: str = "") -> None:
    """See :func:`gengen.dna.designer.figures.plot_design`."""
    from gengen.dna.designer.figures import plot_design as plot

    plot(result, path, pwm=pwm, title=title)
