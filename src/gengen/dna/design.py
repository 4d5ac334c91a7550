"""Gradient-based sequence design against a predictor (Killoran et al. 2017).

- **Direct design** ("DNA deep dream"): optimise per-position logits; the predictor sees the softmax
  relaxation, or, with ``straight_through=True`` (Fast SeqProp, Linder & Seelig 2021), the argmax
  one-hot in the forward pass with softmax gradients in the backward pass. A relaxed sequence can
  score high while its one-hot readout scores low, so every reported score is the **one-hot** score.
- **Joint design**: keep a trained generator fixed and optimise its latent vectors z with Adam
  (step 0.1, gradient noise 1e-5, optional prior weight on ||z||^2), so designs come from the GAN's
  learned distribution rather than free per-base logits. (Measured on dm3: the ||z||^2 prior raises
  scores but makes designs *less* promoter-like; it pulls z toward the origin, away from where a
  100-dimensional Gaussian's samples lie. See docs/dna.md.)

Targets: ``"max"``, ``"min"`` or a number (squared error to it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.errors import GengenError
from gengen.runtime import Progress, check_memory, resolve_device

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.core import GANModel
    from gengen.io.motifs import PWM


def parse_target(target: str | float) -> str | float:
    """``"max"``, ``"min"`` or a float value to hit."""
    if isinstance(target, (int, float)):
        return float(target)
    t = str(target).strip().lower()
    if t in ("max", "min"):
        return t
    try:
        value = float(t)
    except ValueError:
        raise GengenError(f"--target must be max, min or a number, got {target!r}.") from None
    if not math.isfinite(value):
        raise GengenError(f"--target must be max, min or a finite number, got {target!r}.")
    return value


def _loss_score(predictor: nn.Module, x: torch.Tensor, target: str | float) -> torch.Tensor:
    """The score the loss sees. For a value to hit, a PWM's *exact* best window (its smooth maximum
    sits up to tau * log(2 windows) above it, so hitting the smooth score would miss the reported one)."""
    from gengen.dna.predictors import PWMPredictor

    if not isinstance(target, str) and isinstance(predictor, PWMPredictor):
        return predictor.window_scores(x).flatten(1).amax(dim=1)
    return predictor(x)


class _ClosestSeen:
    """For a value to hit: the one-hot sequence whose score came closest to it, per design, over all
    steps. Steps on a discrete readout jump past the value, so the last step is rarely the best."""

    def __init__(self, target: float):
        self.target = float(target)
        self.codes: torch.Tensor | None = None
        self.error: torch.Tensor | None = None

    def update(self, codes: torch.Tensor, onehot_score: torch.Tensor) -> None:
        err = (onehot_score.detach() - self.target).abs()
        if self.codes is None:
            self.codes, self.error = codes.clone(), err
            return
        better = err < self.error
        self.codes[better] = codes[better]
        self.error = torch.minimum(err, self.error)


def argmax_bases(x: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the 4 base channels of ``(N, 4, L)``, first index on ties.

    Written as pairwise comparisons: on CPU, ``argmax(dim=1)`` over the strided channel axis is
    ~20x slower and dominated design time.
    """
    a, c, g, t = x.unbind(1)
    i01 = (c > a).to(torch.uint8)
    i23 = (t > g).to(torch.uint8) + 2
    return torch.where(torch.maximum(g, t) > torch.maximum(a, c), i23, i01)


def hard_one_hot(x: torch.Tensor) -> torch.Tensor:
    """The one-hot readout (argmax base per position) of logits or soft sequences ``(N, 4, L)``."""
    idx = argmax_bases(x)
    return (idx[:, None, :] == torch.arange(4, device=x.device, dtype=idx.dtype)[None, :, None]).to(x.dtype)


def _objective(score: torch.Tensor, target: str | float) -> torch.Tensor:
    """Per-sequence loss summed over the batch (Adam is per-parameter, so sequences stay independent)."""
    if target == "max":
        return -score.sum()
    if target == "min":
        return score.sum()
    return ((score - float(target)) ** 2).sum()


@dataclass
class DesignResult:
    """Designed sequences with their one-hot scores, optimisation history and provenance."""

    codes: np.ndarray
    scores: np.ndarray
    history: pd.DataFrame
    method: str
    target: str | float
    initial_scores: np.ndarray
    hit_start: np.ndarray | None = None
    hit_strand: np.ndarray | None = None
    motif_width: int | None = None
    max_score: float | None = None
    settings: dict = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [f"design_{i + 1}" for i in range(len(self.codes))]

    def strings(self) -> list[str]:
        from gengen.io.sequences import decode_codes

        return decode_codes(self.codes)

    def descriptions(self) -> list[str]:
        out = []
        for i, s in enumerate(self.scores):
            d = f"score={s:.4f}"
            if self.hit_start is not None:
                d += f" hit={int(self.hit_start[i]) + 1}{'+-'[int(self.hit_strand[i])]}"
            out.append(d + f" method={self.method}")
        return out

    def table(self) -> pd.DataFrame:
        """Per-sequence table: id, sequence, one-hot score, best hit (1-based start, strand, bases), GC."""
        import pandas as pd

        from gengen.io.sequences import gc_content

        seqs = self.strings()
        df = pd.DataFrame({"id": self.ids, "sequence": seqs, "score": self.scores})
        if self.max_score:
            df["fraction_of_max"] = self.scores / self.max_score
        if self.hit_start is not None:
            w = self.motif_width
            df["hit_start"] = self.hit_start + 1
            df["hit_strand"] = np.where(self.hit_strand == 0, "+", "-")
            df["hit_sequence"] = [s[p : p + w] for s, p in zip(seqs, self.hit_start)]
        df["gc"] = gc_content(self.codes)
        return df

    def records(self):
        """Biopython SeqRecords with the score (and hit) in each description."""
        from gengen.io.sequences import to_records

        return to_records(self.ids, self.strings(), self.descriptions())

    def summary(self) -> dict:
        """Mean/min/max one-hot score, fraction of the maximum, steps to reach 99 %, diversity."""
        from gengen.dna.metrics import hamming_diversity, hit_mask

        s = {
            "n": int(len(self.codes)),
            "length": int(self.codes.shape[1]),
            "method": self.method,
            "target": self.target,
            "score_mean": float(self.scores.mean()),
            "score_min": float(self.scores.min()),
            "score_max": float(self.scores.max()),
            "initial_score_mean": float(self.initial_scores.mean()),
        }
        if self.max_score:
            s["max_possible"] = self.max_score
            s["fraction_of_max"] = s["score_mean"] / self.max_score
            h = self.history
            reached = h.loc[h["onehot_mean"] >= 0.99 * self.max_score, "step"]
            s["steps_to_99pct"] = int(reached.iloc[0]) if len(reached) else None
        if not isinstance(self.target, str):
            s["target_abs_error_mean"] = float(np.abs(self.scores - float(self.target)).mean())
        s["diversity"] = hamming_diversity(self.codes)
        if self.hit_start is not None:
            mask = hit_mask(self.codes.shape[1], self.hit_start, self.motif_width)
            s["diversity_outside_hit"] = hamming_diversity(self.codes, exclude=mask)
        s.update(self.settings)
        return s


def _reportable(predictor: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    from gengen.dna.predictors import report_scores

    return report_scores(predictor, x)


def _finish(
    codes: np.ndarray,
    predictor: nn.Module,
    history: list[dict],
    method: str,
    target,
    initial,
    settings,
    pwm: PWM | None,
    device,
) -> DesignResult:
    import pandas as pd

    from gengen.dna.predictors import PWMPredictor
    from gengen.io.sequences import codes_to_one_hot

    x = codes_to_one_hot(codes, device=device)
    rep = _reportable(predictor, x)
    result = DesignResult(
        codes=codes,
        scores=rep["score"],
        history=pd.DataFrame(history),
        method=method,
        target=target,
        initial_scores=initial,
        settings=settings,
    )
    motif_model = (
        predictor if isinstance(predictor, PWMPredictor) else (PWMPredictor(pwm).to(device) if pwm else None)
    )
    if motif_model is not None:
        hits = _reportable(motif_model, x)
        result.hit_start, result.hit_strand = hits["hit_start"], hits["hit_strand"]
        result.motif_width = motif_model.width
        if motif_model is predictor:
            result.max_score = motif_model.pwm.max_score if target == "max" else None
    return result


def _onehot_score(predictor, x_hard: torch.Tensor) -> torch.Tensor:
    """The reported score of one-hot sequences: a PWM's exact best window, else the predictor's output."""
    from gengen.dna.predictors import PWMPredictor

    with torch.no_grad():
        return predictor.exact(x_hard)[0] if isinstance(predictor, PWMPredictor) else predictor(x_hard)


def _onehot_stats(predictor, x_hard: torch.Tensor) -> tuple[float, float, float]:
    s = _onehot_score(predictor, x_hard)
    return float(s.mean()), float(s.min()), float(s.max())


def _substitution_scores_pwm(predictor, codes: torch.Tensor) -> torch.Tensor:
    """Exact PWM scores of every single-base substitution, ``(N, L, 3)`` (substitution ``k`` at
    position ``p`` puts base ``(c_p + k + 1) % 4``), in O(N·L·W): a substitution changes only the
    windows that overlap it, so the rest is a prefix/suffix maximum over the unchanged windows."""
    weight = predictor.weight.to(codes.device, torch.float32)  # (2, 4, W): forward, reverse strand
    n, length = codes.shape
    width = weight.shape[-1]
    n_pos = length - width + 1
    one_hot = torch.eye(4, device=codes.device)[codes].transpose(1, 2)
    full = predictor.window_scores(one_hot)  # (N, 2, P)
    windows = full.amax(dim=1)  # (N, P): best strand per window start
    neg = torch.full((n, 1), -torch.inf, device=codes.device)
    prefix = torch.cat([neg, torch.cummax(windows, dim=1).values], dim=1)  # prefix[:, k] = max over q < k
    suffix = torch.cat([torch.flip(torch.cummax(torch.flip(windows, [1]), dim=1).values, [1]), neg], dim=1)
    pos = torch.arange(length, device=codes.device)
    lo = (pos - width + 1).clamp(min=0)
    hi = (pos + 1).clamp(max=n_pos)
    untouched = torch.maximum(prefix[:, lo], suffix[:, hi])  # (N, L): windows not covering p
    new_base = (codes[:, :, None] + torch.arange(1, 4, device=codes.device)) % 4  # (N, L, 3)
    best = untouched[:, :, None].expand(-1, -1, 3).clone()
    for j in range(width):  # window starting at q = p - j holds p at its column j
        q = pos - j
        ok = (q >= 0) & (q < n_pos)
        qc = q.clamp(0, n_pos - 1)
        for strand in range(2):
            old = weight[strand][codes, j]  # (N, L)
            delta = weight[strand][new_base, j] - old[:, :, None]  # (N, L, 3)
            cand = full[:, strand, qc][:, :, None] + delta
            best = torch.where(ok[None, :, None], torch.maximum(best, cand), best)
    return best


def _polish_report(closest: _ClosestSeen, polished: torch.Tensor) -> dict:
    """What the substitutions after the gradient steps did (the history and figure end before them)."""
    changed = (polished.long() != closest.codes.long()).sum(dim=1).float()
    return {"error_before_polish": float(closest.error.mean()), "substitutions_mean": float(changed.mean())}


def _score_codes(predictor, codes: torch.Tensor, batch: int) -> torch.Tensor:
    """One-hot scores of ``(M, L)`` codes, ``batch`` sequences at a time (bounded memory)."""
    eye = torch.eye(4, device=codes.device)
    out = [_onehot_score(predictor, eye[codes[i : i + batch]].transpose(1, 2)) for i in range(0, len(codes), batch)]
    return torch.cat(out) if out else torch.zeros(0, device=codes.device)


def polish_toward(predictor, codes: torch.Tensor, target: float, rounds: int = 30, positions_per_call: int = 2**18):
    """Greedy single-base substitutions that bring each sequence's one-hot score closer to ``target``.

    Gradient steps on a relaxed sequence get near a value but not onto it (the one-hot readout moves
    in jumps); rounds of trying all 3·L substitutions per sequence and keeping the best one close the
    rest of the gap. A sequence stops once it is within ``1e-3 · max(1, |target|)`` of the value or
    when no substitution helps (its neighbourhood will not change again). PWMs score substitutions
    incrementally; other predictors see at most ``positions_per_call`` bases per call. Returns uint8
    codes ``(N, L)``.
    """
    from gengen.dna.predictors import PWMPredictor

    codes = codes.clone().long()
    n, length = codes.shape
    tol = 1e-3 * max(1.0, abs(float(target)))
    batch = max(1, positions_per_call // max(length, 1))
    error = (_score_codes(predictor, codes, batch) - target).abs()
    active = torch.nonzero(error > tol).squeeze(1)
    per_seq = 3 * length
    chunk = max(1, batch // per_seq)
    pwm = isinstance(predictor, PWMPredictor)
    for _ in range(rounds):
        if len(active) == 0:
            break
        still = []
        for s in range(0, len(active), chunk if not pwm else max(1, 2**20 // per_seq)):
            rows = active[s : s + (chunk if not pwm else max(1, 2**20 // per_seq))]
            c = codes[rows]
            if pwm:
                with torch.no_grad():
                    scores = _substitution_scores_pwm(predictor, c).reshape(len(rows), per_seq)
            else:
                cand = c[:, None, None, :].expand(-1, length, 3, -1).clone()  # (k, L, 3, L)
                pos = torch.arange(length, device=c.device)
                cand[:, pos, :, pos] = ((c[:, :, None] + torch.arange(1, 4, device=c.device)) % 4).permute(1, 0, 2)
                scores = _score_codes(predictor, cand.reshape(-1, length), batch).view(len(rows), per_seq)
            best_err, best = (scores - target).abs().min(dim=1)
            take = best_err < error[rows] - 1e-9
            if take.any():
                r, b = rows[take], best[take]
                p, k = b // 3, b % 3
                codes[r, p] = (codes[r, p] + k + 1) % 4
                error[r] = best_err[take]
                still.append(r[error[r] > tol])
        active = torch.cat(still) if still else active[:0]
    return codes.to(torch.uint8)


def _history_row(step: int, predictor, x_hard: torch.Tensor, relaxed: torch.Tensor | None = None) -> dict:
    """One row of the score-vs-iteration history: relaxed and one-hot mean/min/max.

    ``relaxed=None`` (no optimisation step taken) reports the one-hot scores for both.
    """
    m, lo, hi = _onehot_stats(predictor, x_hard)
    if relaxed is None:
        r_mean, r_min, r_max = m, lo, hi
    else:
        r_mean, r_min, r_max = float(relaxed.mean()), float(relaxed.min()), float(relaxed.max())
    return {"step": step, "relaxed_mean": r_mean, "relaxed_min": r_min, "relaxed_max": r_max,
            "onehot_mean": m, "onehot_min": lo, "onehot_max": hi}


def _check_learning_rate(learning_rate: float) -> None:
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise GengenError(f"--lr (the Adam step size) must be a positive number, got {learning_rate}.")


def design_direct(
    predictor: nn.Module,
    n: int = 100,
    length: int = 50,
    steps: int = 500,
    learning_rate: float = 0.1,
    target: str | float = "max",
    straight_through: bool = False,
    init_scale: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    record_every: int | None = None,
    pwm: PWM | None = None,
) -> DesignResult:
    """Direct design of ``n`` sequences of ``length`` by optimising per-position logits ``(n, 4, L)``.

    Logits start as seeded N(0, ``init_scale``²) noise, so each design starts from a different random
    sequence (this is what keeps the set diverse outside the motif). Adam at ``learning_rate``.
    ``record_every`` (default: ~200 points) sets how often the relaxed and one-hot scores are logged.
    """
    from gengen.dna.predictors import PWMPredictor

    target = parse_target(target)
    # a value to hit is hit by the one-hot score: its forward pass must see the one-hot sequence
    straight_through = straight_through or not isinstance(target, str)
    if n < 1 or steps < 0 or length < 1:
        raise GengenError(
            f"-n, --length must be positive and --steps non-negative (got {n}, {length}, {steps})."
        )
    _check_learning_rate(learning_rate)
    if isinstance(predictor, PWMPredictor):
        predictor.pwm.check_fits(length)
    dev = resolve_device(device) if isinstance(device, str) else device
    # logits, their gradient, Adam's two moments, softmax, one-hot and the predictor's activations:
    # about 16 float32 copies of (n, 4, L), more for a CNN predictor
    per_base = 16 * 4 * 4 * (1 if isinstance(predictor, PWMPredictor) else 8)
    check_memory(float(per_base) * n * length, f"designing {n} sequences of {length} nt", dev)
    predictor = predictor.to(dev).eval()
    for p in predictor.parameters():
        p.requires_grad_(False)
    g = torch.Generator(device="cpu").manual_seed(seed)
    logits = (init_scale * torch.randn(n, 4, length, generator=g)).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=learning_rate, fused=True)
    every = record_every or max(1, steps // 100)
    history: list[dict] = []
    t0 = time.perf_counter()

    def record(step: int, relaxed: torch.Tensor) -> None:
        history.append(_history_row(step, predictor, hard_one_hot(logits.detach()), relaxed))

    with torch.no_grad():
        initial = _reportable(predictor, hard_one_hot(logits))["score"]
    closest = None if isinstance(target, str) else _ClosestSeen(target)
    with Progress(steps, "direct design", quiet) as bar:
        for step in range(1, steps + 1):
            soft = torch.softmax(logits, dim=1)
            x = hard_one_hot(logits.detach()) + soft - soft.detach() if straight_through else soft
            score = _loss_score(predictor, x, target)
            if closest is not None:  # straight-through: this score is the one-hot sequence's
                closest.update(argmax_bases(logits.detach()), score)
            loss = _objective(score, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % every == 0 or step == steps or step == 1:
                record(step, score.detach())
                bar.update(every if step % every == 0 else 0, score=history[-1]["onehot_mean"])
    if steps == 0:
        with torch.no_grad():
            record(0, predictor(torch.softmax(logits, dim=1)))
    final = argmax_bases(logits.detach())
    polish: dict = {}
    if closest is not None:
        with torch.no_grad():
            closest.update(final, _loss_score(predictor, hard_one_hot(logits.detach()), target))
            final = polish_toward(predictor, closest.codes, float(target))
        polish = _polish_report(closest, final)
    codes = final.to(torch.uint8).cpu().numpy()
    settings = {
        "steps": steps,
        "learning_rate": learning_rate,
        "straight_through": straight_through,
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "device": str(dev),
        **polish,
    }
    return _finish(
        codes,
        predictor,
        history,
        "direct" + ("-st" if straight_through else "-softmax"),
        target,
        initial,
        settings,
        pwm,
        dev,
    )


def design_joint(
    gan: GANModel,
    predictor: nn.Module,
    n: int = 100,
    steps: int = 1000,
    learning_rate: float = 0.1,
    grad_noise: float = 1e-5,
    prior_weight: float = 0.0,
    target: str | float = "max",
    straight_through: bool = False,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    record_every: int | None = None,
    pwm: PWM | None = None,
) -> DesignResult:
    """Joint design: Adam on the GAN's latent z (generator fixed) toward ``target`` of predictor(G(z)).

    The paper's settings: step 0.1, Gaussian gradient noise 1e-5, up to 10,000 iterations; the
    loss adds ``prior_weight * ||z||²`` per sequence when set. ``initial_scores`` are the one-hot
    scores of the unconditioned samples G(z₀), the reference a design must beat.
    """
    from gengen.dna.predictors import PWMPredictor

    target = parse_target(target)
    straight_through = straight_through or not isinstance(target, str)  # as in design_direct
    if n < 1 or steps < 0:
        raise GengenError(f"-n must be positive and --steps non-negative (got {n}, {steps}).")
    _check_learning_rate(learning_rate)
    if isinstance(predictor, PWMPredictor):
        predictor.pwm.check_fits(gan.length)
    dev = resolve_device(device) if isinstance(device, str) else device
    r = gan.recipe  # the generator's activations kept for the backward pass dominate
    check_memory(4.0 * 2 * n * r.length * r.channels * (4 * r.blocks + 4), f"joint design of {n} sequences", dev)
    gen = gan.generator.to(dev).eval()
    predictor = predictor.to(dev).eval()
    for p in list(gen.parameters()) + list(predictor.parameters()):
        p.requires_grad_(False)
    z = gan.sample_latent(n, seed).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=learning_rate)
    noise_gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    every = record_every or max(1, steps // 100)
    history: list[dict] = []
    t0 = time.perf_counter()

    with torch.no_grad():
        initial = _reportable(predictor, hard_one_hot(gen(z)))["score"]
    closest = None if isinstance(target, str) else _ClosestSeen(target)
    with Progress(steps, "joint design", quiet) as bar:
        for step in range(1, steps + 1):
            soft = gen(z)
            x = hard_one_hot(soft.detach()) + soft - soft.detach() if straight_through else soft
            score = _loss_score(predictor, x, target)
            if closest is not None:
                closest.update(argmax_bases(soft.detach()), score)
            loss = _objective(score, target)
            if prior_weight:
                loss = loss + prior_weight * (z * z).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_noise:
                z.grad += grad_noise * torch.randn(z.shape, generator=noise_gen).to(dev)
            opt.step()
            if step % every == 0 or step == steps or step == 1:
                history.append(_history_row(step, predictor, hard_one_hot(soft.detach()), score.detach()))
                bar.update(every if step % every == 0 else 0, score=history[-1]["onehot_mean"])
    with torch.no_grad():
        final = gen(z)
        if steps == 0:
            history.append(_history_row(0, predictor, hard_one_hot(final)))
        codes_t = argmax_bases(final)
        polish: dict = {}
        if closest is not None:
            closest.update(codes_t, _loss_score(predictor, hard_one_hot(final), target))
            codes_t = polish_toward(predictor, closest.codes, float(target))
            polish = _polish_report(closest, codes_t)
        codes = codes_t.to(torch.uint8).cpu().numpy()
    settings = {
        "steps": steps,
        "learning_rate": learning_rate,
        "grad_noise": grad_noise,
        "prior_weight": prior_weight,
        "straight_through": straight_through,
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "device": str(dev),
        **polish,
    }
    return _finish(codes, predictor, history, "joint", target, initial, settings, pwm, dev)


def design(
    predictor: nn.Module, n: int = 100, length: int = 50, gan: GANModel | None = None, **kwargs
) -> DesignResult:
    """Design ``n`` sequences toward ``predictor``: through ``gan``'s latent space if given, else directly.

    ``result.records()`` gives Biopython SeqRecords with scores in the descriptions.
    """
    if gan is not None:
        if length not in (None, gan.length):
            raise GengenError(
                f"the GAN generates {gan.length}-nt sequences; --length {length} does not match."
            )
        return design_joint(gan, predictor, n=n, **kwargs)
    return design_direct(predictor, n=n, length=length, **kwargs)


# --------------------------------------------------------------------------------------------------
# Figure


def _logo_frame(freqs: np.ndarray, background: np.ndarray | None = None) -> pd.DataFrame:
    """Information-content (bits) matrix for logomaker from ``(4, W)`` frequencies."""
    import pandas as pd

    p = np.clip(freqs / freqs.sum(axis=0, keepdims=True), 1e-9, 1)
    bg = np.full(4, 0.25) if background is None else background
    ic = (p * np.log2(p / bg[:, None])).sum(axis=0).clip(min=0)
    return pd.DataFrame((p * ic).T, columns=list("ACGT"))


def aligned_hit_frequencies(
    codes: np.ndarray, starts: np.ndarray, strands: np.ndarray, width: int
) -> np.ndarray:
    """``(4, width)`` base frequencies of each sequence's best hit, reverse-complemented on the - strand."""
    counts = np.zeros((4, width))
    comp = np.array([3, 2, 1, 0, 4])
    for c, s, st in zip(codes, starts, strands):
        w = c[s : s + width]
        if st == 1:
            w = comp[w[::-1]]
        for j, b in enumerate(w):
            if b < 4:
                counts[b, j] += 1
    return counts


def plot_design(result: DesignResult, path, pwm: PWM | None = None, title: str = "") -> None:
    """Motif logo, the designed set's logo (aligned on best hits when a motif is known) and the
    score-versus-iteration curve (relaxed mean with min/max band, one-hot mean), as in the paper."""
    import logomaker

    from gengen.plots import pyplot, save_figure

    plt = pyplot()
    panels = 3 if pwm is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.4), squeeze=False)
    axes = list(axes[0])
    if pwm is not None:
        ax = axes.pop(0)
        logomaker.Logo(_logo_frame(pwm.probabilities(), pwm.background), ax=ax, show_spines=False)
        ax.set_title(f"motif {pwm.name}")
        ax.set_ylabel("bits")
    ax = axes.pop(0)
    if result.hit_start is not None:
        freqs = aligned_hit_frequencies(result.codes, result.hit_start, result.hit_strand, result.motif_width)
        ax.set_title(f"designed set ({len(result.codes)}), aligned on best hits")
    else:
        freqs = np.stack([(result.codes == b).sum(axis=0) for b in range(4)]).astype(float)
        ax.set_title(f"designed set ({len(result.codes)}), by position")
    logomaker.Logo(_logo_frame(freqs + 1e-6), ax=ax, show_spines=False)
    ax.set_ylabel("bits")
    ax = axes.pop(0)
    h = result.history
    ax.fill_between(h["step"], h["relaxed_min"], h["relaxed_max"], alpha=0.2, label="relaxed min-max")
    ax.plot(h["step"], h["relaxed_mean"], label="relaxed mean")
    ax.plot(h["step"], h["onehot_mean"], label="one-hot mean")
    if result.max_score:
        ax.axhline(result.max_score, color="k", ls="--", lw=0.8, label="consensus max")
    ax.set_xlabel("iteration")
    ax.set_ylabel("score")
    ax.set_title("score vs iteration")
    ax.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
