"""Why a sequence scores: per-base attributions, the motifs behind them and their JASPAR 2024 matches.

What ``gengen dna-explain`` runs, each step from the library this field keeps for it:

- **the score explained** is the one a user reads (:class:`ExplainedScore`): a PWM's exact best window
  (not the smooth maximum design optimises), any other objective's output; with several objectives
  the standardised weighted sum a design maximises (:func:`gengen.dna.designer.objectives.combined`).
- **in-silico mutagenesis** (exact: every single substitution of every explained sequence is scored):
  ``tangermeme.saturation_mutagenesis`` with raw outputs. ``ism_delta[n, b, i]`` is the score change
  when base ``b`` is written at position ``i`` (0 at the base already there); the ISM attribution is
  tangermeme's, the deltas minus their mean over the four bases, and a base's contribution is its
  attribution at the base observed.
- **a gradient method**: ``tangermeme.deep_lift_shap`` (DeepLIFT/SHAP against dinucleotide shuffles)
  when its rescale rules cover the model, checked on the library's own convergence test (the
  attributions must add up to the score difference from each reference); a model built from functional
  operations (``torch.relu``, ``amax``) or a PWM's best-window maximum has no rule there, and then
  ``tangermeme.saliency`` runs instead (gradient x input with the gradient correction of Majdandzic et
  al. 2023). Which one ran, and why, is recorded.
- **motifs**: modisco-lite's TF-MoDISco on the ISM contributions (hypothetical, so that seqlets align
  on every base), with windows sized to the sequences (a 36-nt probe cannot hold TF-MoDISco's default
  41-nt seqlets) and the sequences padded with uniform bases of zero contribution, wide enough that
  motifs at their ends are kept.
  With fewer than :data:`MODISCO_MIN_SEQUENCES` sequences, or when TF-MoDISco finds no pattern, seqlets
  are called by ``tangermeme.seqlet.tfmodisco_seqlets`` and clustered here (:func:`cluster_seqlets`:
  leader clustering by the cosine similarity of their contributions over offsets and both strands, a
  step no kept library offers for a handful of sequences).
- **JASPAR matching**: memelite's TOMTOM of every discovered motif (trimmed as modisco-lite's report
  trims them: columns holding at least 30 % of the strongest column's contribution) against JASPAR 2024
  (:mod:`gengen.io.jaspar`), with p-values from TOMTOM and q-values by Benjamini-Hochberg over the
  query's p-values against every profile of the collection (MEME's Tomtom reports the same kind).
- **annotation**: memelite's FIMO scan for JASPAR hits (:func:`jaspar_hits`), also behind
  ``dna-design --annotate``.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.errors import GengenError

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.designer.objectives import Objective
    from gengen.io.jaspar import MotifDatabase
    from gengen.io.sequences import SequenceSet

__all__ = ["Explanation", "ExplainedScore", "explain", "explain_outputs", "jaspar_hits", "match_motifs"]

TOP = 1000  # sequences explained by default: enough seqlets for TF-MoDISco, seconds of ISM at PBM lengths
LOGOS = 10  # attribution logos drawn by default (the top sequences)
LOGO_WIDTH = 100  # longer sequences: the logo shows the window of this many bases holding the most |ISM contribution|
MODISCO_MIN_SEQUENCES = 100  # fewer: seqlet clustering (TF-MoDISco needs about 100 seqlets per metacluster)
MODISCO_MIN_SEQLETS = 50  # TF-MoDISco's min_metacluster_size here (its default, 100, suits 10 kb of peaks)
MODISCO_LEIDEN_RUNS = 10  # Leiden restarts (TF-MoDISco default 50: 5x the time for the same motifs here)
MIN_MOTIF_WIDTH = 4  # narrower discovered motifs are not matched (TOMTOM needs some columns to say anything)
# A discovered motif is matched to JASPAR only with MIN_INFORMATIVE_COLUMNS columns of >= INFORMATIVE_BITS
# of information: every JASPAR 2024 CORE vertebrate profile has 3 such columns (the least
# informative holds 6.0 bits, its best column 1.22), every motif found in real PBM probes here had 4-7,
# while the near-uniform "motifs" of a weak predictor or a GC counter (0.4-0.8 bits at best, up to 42
# columns wide) drew q < 1e-7 matches to long CTCF profiles: a TOMTOM q-value does not protect against them
INFORMATIVE_BITS = 1.0
MIN_INFORMATIVE_COLUMNS = 3
TRIM_FRACTION = 0.3  # modisco-lite's report: keep columns with >= 30 % of the top column's |contribution|
CLUSTER_SIMILARITY = 0.6  # cosine similarity of contributions for a seqlet to join a cluster
MAX_MOTIFS = 20  # at most this many motifs per sign are reported
MATCHES = 3  # JASPAR matches listed per motif (best first)
ANNOTATE_PVALUE = 1e-4  # FIMO's default p-value threshold
DEEPLIFT_SHUFFLES = 20  # tangermeme's default number of dinucleotide-shuffled references
DEEPLIFT_PROBE = 16  # sequences DeepLIFT is first tried on before the whole set
ISM_EDITS_PER_CALL = 2**15  # substitutions per saturation_mutagenesis call (one progress step)
SCORE_BATCH = 4096
TOP_POSITIONS = 5  # positions listed per sequence in summary.tsv


# ------------------------------------------------------------------------------------ the score explained
class ExplainedScore(nn.Module):
    """The score a user reads, as a torch module ``(N, 4, L) -> (N, 1)``: what every attribution explains.

    One objective: its exact score (:meth:`Objective.exact <gengen.dna.designer.objectives.Objective.exact>`: a
    PWM's best window, any other predictor's output). Several: the standardised weighted sum a design
    maximises (the objectives must be calibrated, :func:`gengen.dna.designer.objectives.calibrate`). All-zero
    columns (an ``N`` in the FASTA, or the int8 encoding tangermeme mutates) are read as 0.25 of each
    base, as ``--ambiguous uniform`` scores them everywhere in gengen.
    """

    def __init__(self, objectives: list[Objective], *, ambiguous: bool = True):
        super().__init__()
        self.objectives = list(objectives)
        self.predictors = nn.ModuleList([o.predictor for o in self.objectives])  # so .to() / .eval() reach them
        self.ambiguous = ambiguous  # False when no sequence holds an N: skips the fill (~10 % of a CNN's ISM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = [o.exact(self._filled(x)) for o in self.objectives]
        return self._combined(scores).reshape(-1, 1)

    def _filled(self, x: torch.Tensor) -> torch.Tensor:
        if self.ambiguous:
            x = x + (x.sum(dim=1, keepdim=True) == 0).to(x.dtype) * 0.25
        return x

    def _combined(self, scores: list[torch.Tensor]) -> torch.Tensor:
        from gengen.dna.designer.objectives import combined

        return scores[0] if len(scores) == 1 else combined(self.objectives, scores)

    @property
    def own_substitutions(self) -> bool:
        """Whether every objective scores its single substitutions its own, faster way (then
        :meth:`all_substitutions` does, and :func:`ism` uses it)."""
        return all(o.own_substitutions for o in self.objectives)

    @torch.no_grad()
    def all_substitutions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The explained score of one-hot ``x`` ``(N, 4, L)`` ``(N,)`` and of every single substitution
        ``(N, 4, L)`` (base ``b`` written at position ``i``), when every objective scores its substitutions
        its own, faster way (:meth:`Objective.all_substitutions
        <gengen.dna.designer.objectives.Objective.all_substitutions>`); None otherwise. An edited ``N``
        column holds the base written, the other ``N`` columns stay 0.25 of each base, as in
        :meth:`forward` of each substituted sequence."""
        if not self.own_substitutions:
            return None
        parts = [o.all_substitutions(self._filled(x)) for o in self.objectives]
        return self._combined([p[0] for p in parts]), self._combined([p[1] for p in parts])


def score_label(objectives: list[Objective]) -> str:
    """What the explained score is, in words."""
    if len(objectives) == 1:
        o = objectives[0]
        kind = "best PWM window" if o.pwm is not None else "output"
        return f"{o.name} ({kind})"
    return "combined objective (sd units): " + " + ".join(
        f"{o.weight:g} x {o.name} ({o.target if isinstance(o.target, str) else f'target {o.target:g}'})"
        for o in objectives)


def _utility(objectives: list[Objective], scores: np.ndarray) -> np.ndarray:
    """Higher is better: a single objective's target (max, min, a value to hit) orders its raw scores; a
    combined score is already a utility."""
    if len(objectives) != 1:
        return scores
    target = objectives[0].target
    if target == "max":
        return scores
    if target == "min":
        return -scores
    return -np.abs(scores - float(target))


@torch.no_grad()
def _scores(model: nn.Module, codes: np.ndarray, device: torch.device, quiet: bool) -> np.ndarray:
    """The explained score of every sequence, one-hot encoded a batch at a time (a million sequences never
    sit in memory as one-hot floats)."""
    from gengen.io.sequences import codes_to_one_hot
    from gengen.runtime import Progress

    out = []
    with Progress(len(codes), "score", quiet) as bar:
        for i in range(0, len(codes), SCORE_BATCH):
            x = codes_to_one_hot(codes[i : i + SCORE_BATCH], ambiguous="zero", device=device)
            out.append(model(x).float().cpu().reshape(-1))
            bar.update(len(x))
    return torch.cat(out).numpy().astype(np.float64)


# --------------------------------------------------------------------------------------- attributions
def ism(model: nn.Module, x: torch.Tensor, *, device: torch.device | str = "cpu", batch_size: int = 4096,
        workers: int | None = None, quiet: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exact in-silico saturation mutagenesis: every single substitution scored.

    A model whose objectives score their substitutions their own way (``model.own_substitutions`` and
    ``model.all_substitutions``, see :class:`ExplainedScore`: gengen's CNN recomputes only the positions
    each substitution reaches) uses it; any other runs ``tangermeme.saturation_mutagenesis`` with raw outputs. On a CPU the
    sequences are shared among ``workers`` threads (default: torch's thread count, i.e. ``--threads``),
    each with one torch thread: the network's operations on a batch of edits are too small to split
    well, and OpenMP threads that split them spin while they wait for a core, so on a busy machine two
    of them took 3.3x the wall time of one (measured), while two workers never took longer than one.
    tangermeme's fast path (fastISM) is tried only with one worker: its capture is not made for
    concurrent calls.

    Parameters
    ----------
    model : ``(N, 4, L) -> (N, 1)`` (e.g. :class:`ExplainedScore`); called from several threads at once,
        so it must not change its state in ``forward`` (eval-mode torch modules do not).
    x : one-hot ``(N, 4, L)`` (ambiguous columns all zero).
    device, batch_size : where and how many edited sequences per forward pass (tangermeme).
    workers : threads on a CPU (GPU: always one).
    quiet : no progress bar.

    Returns
    -------
    (scores ``(N,)``, ``delta`` ``(N, 4, L)``: the score of each single substitution minus the score of
    the sequence, 0 at the observed base). :func:`ism_method` says which way it runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    from gengen.runtime import Progress

    dev = torch.device(device) if not isinstance(device, torch.device) else device
    n, _, length = x.shape
    threads = torch.get_num_threads()
    workers = 1 if dev.type != "cpu" else max(1, min(workers or threads, n))
    per_call = max(1, min(ISM_EDITS_PER_CALL // (3 * length), -(-n // (4 * workers))))
    x8 = x.to(torch.int8).cpu()
    chunks = [x8[i : i + per_call] for i in range(0, n, per_call)]
    with torch.no_grad():
        model(x[:1].to(dev))  # set up caches (a PWM's banded matrix) before threads share the model
    own = model.all_substitutions if getattr(model, "own_substitutions", False) else None

    def run(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if own is not None:
            with torch.no_grad():
                y0, table = own(chunk.to(dev, torch.float32))
            y0 = y0.double().cpu()
            delta = table.double().cpu() - y0[:, None, None]
            return y0, delta.masked_fill(chunk == 1, 0.0).float()
        y0, y_hat = saturation_mutagenesis(model, chunk, raw_outputs=True, batch_size=batch_size, device=dev,
                                           fast=workers == 1)
        return y0[:, 0].double(), (y_hat[..., 0].double() - y0[:, 0, None, None].double()).float()

    y0s, deltas = [], []
    with Progress(n, "in-silico mutagenesis", quiet) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tangermeme's notes on its fast path (fastISM) choice
        if workers > 1:
            torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                for (y0, delta), chunk in zip(pool.map(run, chunks), chunks):
                    y0s.append(y0)
                    deltas.append(delta)
                    bar.update(len(chunk))
        finally:
            torch.set_num_threads(threads)
    return torch.cat(y0s).numpy(), torch.cat(deltas).numpy()


def ism_method(model: nn.Module) -> str:
    """How :func:`ism` scores the substitutions of ``model``, in words."""
    if getattr(model, "own_substitutions", False):
        return ("every single substitution scored by the model's own incremental computation (gengen's CNN "
                "recomputes only the positions each substitution reaches, fastISM's idea; equal to "
                "tangermeme.saturation_mutagenesis's forward passes up to float rounding; 0.4-0.7x their time at 50 nt, "
                "0.02-0.03x at 1 kb)")
    return "tangermeme.saturation_mutagenesis (raw outputs): every single substitution scored by a forward pass"


def gradient_problem(model: nn.Module, length: int, device: torch.device | str = "cpu") -> str:
    """Why ``model`` (``(N, 4, L) -> (N, 1)``) has no gradient for attributions to follow, in words ("" when it
    has one): a TorchScript or Python model through argmax or integer steps, say. Tried on a few random
    ``length``-nt sequences, as design checks a model (:func:`gengen.dna.designer.objective_kinds.model.gradient_problem`)."""
    from gengen.dna.designer.objective_kinds.model import PROBE_SEQUENCES
    from gengen.dna.designer.objective_kinds.model import gradient_problem as problem
    from gengen.dna.designer.objectives import random_codes
    from gengen.io.sequences import codes_to_one_hot

    x = codes_to_one_hot(random_codes(PROBE_SEQUENCES, length, seed=length), device=device).requires_grad_(True)
    with torch.enable_grad():
        return problem(x, model(x))


def gradient_attributions(model: nn.Module, x: torch.Tensor, *, method: str = "auto", device: torch.device | str = "cpu",
                          seed: int = 0, shuffles: int = DEEPLIFT_SHUFFLES, quiet: bool = True) -> tuple[np.ndarray, str, str]:
    """Hypothetical gradient attributions ``(N, 4, L)``: DeepLIFT/SHAP where it holds, else gradient x input.

    Parameters
    ----------
    model : ``(N, 4, L) -> (N, 1)``.
    x : one-hot ``(N, 4, L)``.
    method : ``"auto"`` (DeepLIFT/SHAP, falling back to saliency when the library's convergence check
        fails on a probe of :data:`DEEPLIFT_PROBE` sequences or on any batch), ``"deeplift"`` (the same,
        refusing the fallback) or ``"saliency"``.
    device, seed : where; the seed of the dinucleotide-shuffled references.
    shuffles : references per sequence.
    quiet : no progress bar.

    Returns
    -------
    (attributions, the method that ran (``"deep_lift_shap"`` or ``"saliency"``), why, in words).
    """
    if method not in ("auto", "deeplift", "saliency"):
        raise GengenError(f"--gradient must be auto, deeplift or saliency, got {method!r}.")
    if method != "saliency":
        attr, why = _deeplift(model, x, device=device, seed=seed, shuffles=shuffles, quiet=quiet)
        if attr is not None:
            return attr, "deep_lift_shap", (f"DeepLIFT/SHAP against {shuffles} dinucleotide shuffles per sequence "
                                            "(tangermeme.deep_lift_shap); the attributions add up to the score "
                                            "differences (convergence check passed)")
        if method == "deeplift":
            raise GengenError(f"DeepLIFT/SHAP cannot explain this model: {why}; use --gradient saliency or auto.")
        note = f"gradient x input (tangermeme.saliency, corrected gradient): DeepLIFT/SHAP does not hold for this model ({why})"
    else:
        note = "gradient x input (tangermeme.saliency, corrected gradient), as asked"
    return _saliency(model, x, device=device, quiet=quiet), "saliency", note


def _deeplift(model, x, *, device, seed, shuffles, quiet) -> tuple[np.ndarray | None, str]:
    """(attributions, "") or (None, why DeepLIFT/SHAP does not hold)."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    from gengen.runtime import Progress

    def run(part: torch.Tensor) -> tuple[torch.Tensor | None, str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = deep_lift_shap(model, part, hypothetical=True, n_shuffles=shuffles, random_state=seed,
                                     batch_size=max(shuffles, 256), device=device)
            except Exception as exc:  # noqa: BLE001 - any refusal of the library means "does not hold here"
                return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        for w in caught:
            text = str(w.message)
            if text.startswith("Convergence deltas are"):
                share = text.split()[3] if len(text.split()) > 3 else "over 1%"
                return None, (f"its convergence check failed: the attributions miss the score differences by {share} "
                              "on average")
        return out, ""

    n, _, length = x.shape
    probe = min(n, DEEPLIFT_PROBE)
    first, why = run(x[:probe])
    if first is None:
        return None, why
    parts = [first]
    with Progress(n, "DeepLIFT/SHAP", quiet) as bar:
        bar.update(probe)
        step = max(1, 2**14 // max(length, 1))
        for i in range(probe, n, step):
            part, why = run(x[i : i + step])
            if part is None:
                return None, why
            parts.append(part)
            bar.update(len(x[i : i + step]))
    return torch.cat(parts).float().numpy(), ""


def _saliency(model, x, *, device, quiet) -> np.ndarray:
    from tangermeme.saliency import saliency

    from gengen.runtime import Progress

    n, _, length = x.shape
    step = max(1, 2**16 // max(length, 1))
    parts = []
    with Progress(n, "gradient x input", quiet) as bar:
        for i in range(0, n, step):
            part = x[i : i + step]
            parts.append(saliency(model, part, hypothetical=True, gradient_correction=True, batch_size=1024,
                                  device=device).float())
            bar.update(len(part))
    return torch.cat(parts).numpy()


# ------------------------------------------------------------------------------------- motif discovery
@dataclass
class Motif:
    """A discovered motif: ``counts`` ``(4, W)`` of its aligned seqlets' bases, ``contributions`` ``(4, W)``
    their mean contribution (a CWM), the number of seqlets and the sign of its effect (+1 raises the score)."""

    name: str
    counts: np.ndarray
    contributions: np.ndarray
    n_seqlets: int
    sign: int = 1

    @property
    def width(self) -> int:
        return int(self.counts.shape[1])

    def probabilities(self) -> np.ndarray:
        c = self.counts + 1e-3
        return c / c.sum(axis=0, keepdims=True)

    @property
    def consensus(self) -> str:
        return "".join("ACGT"[i] for i in self.counts.argmax(axis=0))

    def information(self) -> np.ndarray:
        """Bits per column: 2 minus the entropy of its bases. Not corrected for few seqlets (as sequence
        logos are, by 3 / (2 ln 2 n) bits): that would leave a motif of one or two seqlets, the case of
        explaining one or two designed sequences, never matched; the junk this guards against came from
        many seqlets (364 at 0.4 bits per column at best)."""
        c = np.asarray(self.counts, dtype=np.float64)
        total = c.sum(axis=0, keepdims=True)
        p = c / np.maximum(total, 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=0)
        return np.where(total[0] > 0, np.clip(2.0 - entropy, 0.0, 2.0), 0.0)  # a column of no bases (N): 0

    @property
    def informative(self) -> bool:
        """Whether the motif holds enough information to be matched (:data:`MIN_INFORMATIVE_COLUMNS`)."""
        return int((self.information() >= INFORMATIVE_BITS).sum()) >= MIN_INFORMATIVE_COLUMNS


@dataclass
class Discovery:
    """Motifs found in the attributions, their seqlets (a table: motif, example index, 0-based start, end,
    strand, contribution) and which method ran, with why."""

    motifs: list[Motif]
    seqlets: pd.DataFrame
    method: str
    note: str
    dropped: int = 0  # motifs left out as narrower than MIN_MOTIF_WIDTH


def _trim(contributions: np.ndarray, fraction: float = TRIM_FRACTION) -> tuple[int, int]:
    """[start, end) of the columns holding at least ``fraction`` of the strongest column's |contribution|."""
    score = np.abs(contributions).sum(axis=0)
    if not np.isfinite(score).all() or score.max() <= 0:
        return 0, contributions.shape[1]
    keep = np.flatnonzero(score >= fraction * score.max())
    return int(keep.min()), int(keep.max()) + 1


def _covered(cover: np.ndarray, members: int) -> tuple[int, int]:
    """[start, end) from the first to the last column that at least half of ``members`` seqlets reach."""
    keep = np.flatnonzero(cover >= 0.5 * max(members, 1))
    if not len(keep):
        return 0, len(cover)
    return int(keep.min()), int(keep.max()) + 1


def modisco_windows(length: int) -> tuple[int, int]:
    """TF-MoDISco's sliding window and flank for sequences of ``length`` nt: its defaults (21, 10) from
    63 nt on, else about a third of the length (at least 7) with half of it as flank, so that a 36-nt
    PBM probe holds whole seqlets."""
    window = int(min(21, max(7, length // 3)))
    return window, max(3, min(10, window // 2))


def _modisco(one_hot: np.ndarray, hyp: np.ndarray, quiet: bool) -> Discovery | None:
    """TF-MoDISco (modisco-lite) on hypothetical contributions ``(N, 4, L)``; None when it finds nothing."""
    import pandas as pd
    from modiscolite.tfmodisco import TFMoDISco

    n, _, length = one_hot.shape
    window, flank = modisco_windows(length)
    # padded with uniform bases of zero contribution, wide enough that a seqlet at either end keeps its
    # place: TF-MoDISco widens each seqlet (window + 2 flanks) to its pattern's width (up to 2 windows +
    # 2 flanks) and drops any that then reach past the track; window + flank of padding lost every motif
    # within 2 nt of an end (measured: 0 of 51 planted GATA1 sites, 42 with this padding)
    pad = 2 * (window + flank)
    oh = np.pad(one_hot.transpose(0, 2, 1).astype(np.float32), ((0, 0), (pad, pad), (0, 0)), constant_values=0.25)
    hy = np.pad(hyp.transpose(0, 2, 1).astype(np.float32), ((0, 0), (pad, pad), (0, 0)))
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        pos, neg = TFMoDISco(oh, hy, sliding_window_size=window, flank_size=flank,
                             min_metacluster_size=MODISCO_MIN_SEQLETS, trim_to_window_size=min(30, 2 * window),
                             initial_flank_to_add=flank, final_min_cluster_size=20, n_leiden_runs=MODISCO_LEIDEN_RUNS,
                             verbose=False)
    motifs, rows = [], []
    for sign, patterns in ((1, pos), (-1, neg)):
        for k, pattern in enumerate((patterns or [])[:MAX_MOTIFS]):
            cwm = np.asarray(pattern.contrib_scores, dtype=np.float64).T  # (4, W)
            ppm = np.asarray(pattern.sequence, dtype=np.float64).T
            seqlets = list(pattern.seqlets)
            # the columns that lie inside the sequences (not the padding) for at least half the seqlets: a
            # pattern TF-MoDISco widened past the ends is no wider than the sequences
            inside = np.zeros(cwm.shape[1])
            for s in seqlets:
                at = (s.end - 1 - np.arange(cwm.shape[1])) if s.is_revcomp else (s.start + np.arange(cwm.shape[1]))
                inside += (at >= pad) & (at < pad + length)
            lo, hi = _covered(inside, len(seqlets))
            a, b = _trim(cwm[:, lo:hi])
            a, b = a + lo, b + lo
            name = f"{'pos' if sign > 0 else 'neg'}_{k + 1}"
            motifs.append(Motif(name, ppm[:, a:b] * len(seqlets), cwm[:, a:b], len(seqlets), sign))
            for s in seqlets:
                start, end = (s.start + a, s.start + b) if not s.is_revcomp else (s.end - b, s.end - a)
                start, end = max(0, start - pad), min(length, end - pad)
                if end <= start:
                    continue
                rows.append((name, int(s.example_idx), start, end, "-" if s.is_revcomp else "+",
                             float((one_hot[s.example_idx, :, start:end] * hyp[s.example_idx, :, start:end]).sum())))
    if not motifs:
        return None
    table = pd.DataFrame(rows, columns=["motif", "example", "start", "end", "strand", "contribution"])
    note = (f"TF-MoDISco (modisco-lite) on the ISM contributions of {n} sequences: window {window}, flank {flank} "
            f"(sized to {length}-nt sequences), {MODISCO_LEIDEN_RUNS} Leiden runs")
    return _drop_narrow(Discovery(motifs, table, "modisco-lite", note))


def _seqlet_calls(projected: np.ndarray) -> pd.DataFrame:
    """Seqlets of projected contributions ``(N, L)``: TF-MoDISco's caller as tangermeme keeps it
    (``tangermeme.seqlet.tfmodisco_seqlets``: windows whose summed contribution passes a Laplace-null
    FDR threshold, 3-20 % of windows), with windows sized to the sequences and the track padded with
    zeros so that seqlets at the ends are seen; clipped back to the sequences. ``sign`` is +1 where the
    seqlet raises the score."""
    import pandas as pd
    from tangermeme.seqlet import tfmodisco_seqlets

    n, length = projected.shape
    window, flank = modisco_windows(length)
    pad = window + flank
    track = torch.as_tensor(np.pad(projected, ((0, 0), (pad, pad))), dtype=torch.float32)
    if not bool((track != 0).any()):
        return pd.DataFrame(columns=["example_idx", "start", "end", "attribution", "sign"])
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            found = tfmodisco_seqlets(track, window_size=window, flank=flank)
    except Exception:  # noqa: BLE001 - its Laplace null / isotonic fit needs more windows than a few sequences give
        found = pd.DataFrame(columns=["example_idx", "start", "end", "attribution"])
    found = found[found["attribution"] != 0].copy()
    if not len(found):
        found = _strong_windows(track.numpy(), window, flank)
    found["start"] = (found["start"] - pad).clip(lower=0)
    found["end"] = (found["end"] - pad).clip(upper=length)
    found = found[found["end"] - found["start"] >= min(MIN_MOTIF_WIDTH, length)]
    found["sign"] = np.where(found["attribution"] > 0, 1, -1)
    # a negative seqlet overlapping a positive one is the weak bases of a motif hit, not a motif of its own
    # (tangermeme's advice for its seqlet callers)
    positive = found[found["sign"] > 0]
    spans = {e: list(zip(g["start"], g["end"])) for e, g in positive.groupby("example_idx")}
    inside = [sign < 0 and any(a < t and s < b for a, b in spans.get(e, ())) for e, s, t, sign in
              zip(found["example_idx"], found["start"], found["end"], found["sign"])]
    return found[~np.asarray(inside, dtype=bool)].reset_index(drop=True)


def _strong_windows(track: np.ndarray, window: int, flank: int, fraction: float = 0.3) -> pd.DataFrame:
    """Seqlets when TF-MoDISco's caller cannot fit its null (a handful of sequences): in each sequence,
    greedily the window with the largest |summed contribution| (neighbours suppressed), kept while it holds
    at least ``fraction`` of the strongest window of the whole set; flanked as TF-MoDISco flanks them."""
    import pandas as pd

    sums = np.lib.stride_tricks.sliding_window_view(track, window, axis=1).sum(axis=2)  # (N, positions)
    strongest = float(np.abs(sums).max()) if sums.size else 0.0
    rows = []
    if strongest > 0:
        for e, row in enumerate(np.abs(sums)):
            row = row.copy()
            row[: flank] = row[len(row) - flank :] = -np.inf  # the flanks must fit in the padded track
            while True:
                i = int(np.argmax(row))
                if not row[i] >= fraction * strongest:
                    break
                rows.append((e, i - flank, i + window + flank, float(sums[e, i])))
                row[max(0, i - window) : i + window] = -np.inf
    return pd.DataFrame(rows, columns=["example_idx", "start", "end", "attribution"])


def _best_alignment(leader: np.ndarray, member: np.ndarray) -> tuple[float, int, bool]:
    """(cosine similarity, offset of ``member`` in the leader's frame, reverse-complemented?) of the best
    placement of two ``(4, w)`` contribution windows, overlapping by at least 60 % of the shorter one."""
    best = (-1.0, 0, False)
    wl, wm = leader.shape[1], member.shape[1]
    need = max(min(3, wl, wm), int(math.ceil(0.6 * min(wl, wm))))
    for rc in (False, True):
        m = member[::-1, ::-1] if rc else member
        for off in range(-(wm - need), wl - need + 1):
            a0, a1 = max(0, off), min(wl, off + wm)
            if a1 - a0 < need:
                continue
            x = leader[:, a0:a1].ravel()
            y = m[:, a0 - off : a1 - off].ravel()
            den = np.linalg.norm(x) * np.linalg.norm(y)
            sim = float(x @ y / den) if den > 0 else 0.0
            if sim > best[0]:
                best = (sim, off, rc)
    return best


def cluster_seqlets(one_hot: np.ndarray, hyp: np.ndarray, *, similarity: float = CLUSTER_SIMILARITY) -> Discovery:
    """Motifs from few sequences: seqlets (``tangermeme.seqlet.tfmodisco_seqlets``) clustered and aligned.

    Leader clustering, strongest seqlet first: each seqlet joins the first cluster whose leader its
    hypothetical contributions match with cosine similarity >= ``similarity`` at some offset and strand
    (placed there), else leads a new cluster. A cluster's motif is its members' bases counted in the
    leader's frame and their mean contribution, trimmed like modisco-lite's motifs. With two or more
    sequences a motif needs two seqlets; with one sequence every seqlet is its own motif.

    Parameters
    ----------
    one_hot, hyp : one-hot sequences and hypothetical contributions, ``(N, 4, L)`` each.
    similarity : the cosine similarity a seqlet needs to join a cluster.

    Returns
    -------
    The :class:`Discovery` (no motif when no seqlet was called).
    """
    import pandas as pd

    n, _, length = one_hot.shape
    projected = (one_hot * hyp).sum(axis=1)
    calls = _seqlet_calls(projected)
    motifs: list[Motif] = []
    rows = []
    for sign in (1, -1):
        mine = calls[calls["sign"] == sign].copy()
        mine["strength"] = [float(abs(projected[e, s:t].sum())) for e, s, t in
                            zip(mine["example_idx"], mine["start"], mine["end"])]
        mine = mine.sort_values("strength", ascending=False, kind="stable")
        clusters: list[dict] = []
        for e, s, t in zip(mine["example_idx"].astype(int), mine["start"].astype(int), mine["end"].astype(int)):
            window = hyp[e, :, s:t] * sign
            placed = None
            for c in clusters:
                sim, off, rc = _best_alignment(c["leader"], window)
                if sim >= similarity:
                    placed = (c, off, rc)
                    break
            if placed is None:
                clusters.append({"leader": window, "members": [(e, s, t, 0, False)]})
            else:
                c, off, rc = placed
                c["members"].append((e, s, t, off, rc))
        keep_min = 1 if n < 2 else 2
        kept = [c for c in clusters if len(c["members"]) >= keep_min]
        kept.sort(key=lambda c: -len(c["members"]))
        for k, c in enumerate(kept[:MAX_MOTIFS]):
            lo = min(off for _, _, _, off, _ in c["members"])
            hi = max(off + (t - s) for _, s, t, off, _ in c["members"])
            counts = np.zeros((4, hi - lo))
            contrib = np.zeros((4, hi - lo))
            cover = np.zeros(hi - lo)
            for e, s, t, off, rc in c["members"]:
                oh, co = one_hot[e, :, s:t], one_hot[e, :, s:t] * hyp[e, :, s:t]
                if rc:
                    oh, co = oh[::-1, ::-1], co[::-1, ::-1]
                counts[:, off - lo : off - lo + t - s] += oh
                contrib[:, off - lo : off - lo + t - s] += co
                cover[off - lo : off - lo + t - s] += 1
            contrib /= np.maximum(cover, 1)
            # columns most members reach, then trimmed like modisco-lite's motifs: members placed at
            # scattered offsets no longer widen a motif past the sequences with columns one seqlet holds
            lo_c, hi_c = _covered(cover, len(c["members"]))
            a, b = _trim(contrib[:, lo_c:hi_c])
            a, b = a + lo_c, b + lo_c
            name = f"{'pos' if sign > 0 else 'neg'}_{k + 1}"
            uniform = np.maximum(len(c["members"]) - cover[a:b], 0) / 4  # columns some members do not reach
            motifs.append(Motif(name, counts[:, a:b] + uniform, contrib[:, a:b], len(c["members"]), sign))
            for e, s, t, off, rc in c["members"]:
                # the trimmed motif's span inside this seqlet, in sequence coordinates
                m0, m1 = a + lo - off, b + lo - off  # trimmed columns relative to the seqlet's own frame
                if rc:
                    m0, m1 = (t - s) - m1, (t - s) - m0
                start, end = max(0, s + m0), min(length, s + m1)
                if end > start:
                    rows.append((name, e, start, end, "-" if rc else "+",
                                 float((one_hot[e, :, start:end] * hyp[e, :, start:end]).sum())))
    table = pd.DataFrame(rows, columns=["motif", "example", "start", "end", "strand", "contribution"])
    return _drop_narrow(Discovery(motifs, table, "seqlet clustering", ""))


def _drop_narrow(found: Discovery) -> Discovery:
    """Leave out motifs narrower than :data:`MIN_MOTIF_WIDTH` after trimming (no factor binds 3 bases:
    they are stray strong bases) and their seqlets; renumber the rest, saying how many went."""
    keep = [m for m in found.motifs if m.width >= MIN_MOTIF_WIDTH]
    dropped = len(found.motifs) - len(keep)
    if not dropped:
        return found
    names = {}
    for sign, prefix in ((1, "pos"), (-1, "neg")):
        for k, m in enumerate([m for m in keep if m.sign == sign], start=1):
            names[m.name] = f"{prefix}_{k}"
    seqlets = found.seqlets[found.seqlets["motif"].isin(names)].copy()
    seqlets["motif"] = seqlets["motif"].map(names)
    for m in keep:
        m.name = names[m.name]
    found.motifs, found.seqlets = keep, seqlets.reset_index(drop=True)
    found.dropped = dropped
    return found


def discover_motifs(one_hot: np.ndarray, hyp: np.ndarray, *, method: str = "auto", quiet: bool = True) -> Discovery:
    """The motifs behind the attributions: TF-MoDISco, or seqlet clustering for few sequences.

    Parameters
    ----------
    one_hot, hyp : one-hot sequences and hypothetical contributions, ``(N, 4, L)`` each.
    method : ``"auto"`` (TF-MoDISco from :data:`MODISCO_MIN_SEQUENCES` sequences on, falling back to
        seqlet clustering when it finds no pattern), ``"modisco"`` (TF-MoDISco alone: no motifs when it
        finds none) or ``"cluster"``.
    quiet : no status lines.

    Returns
    -------
    The :class:`Discovery`, whose ``note`` says which method ran and why.
    """
    import pandas as pd

    if method not in ("auto", "modisco", "cluster"):
        raise GengenError(f"--motif-method must be auto, modisco or cluster, got {method!r}.")
    n = len(one_hot)
    reason = ""
    if method == "cluster":
        reason = "as asked"
    elif method == "auto" and n < MODISCO_MIN_SEQUENCES:
        reason = (f"{n} sequence{'s are' if n != 1 else ' is'} too few for TF-MoDISco (it needs about "
                  f"{MODISCO_MIN_SEQUENCES} for enough seqlets)")
    else:
        from gengen.runtime import log

        log(f"motifs: TF-MoDISco (modisco-lite) on {n} sequences; about a minute per 1,000 sequences of PBM length "
            "on 2 cores", quiet)
        try:
            found = _modisco(one_hot, hyp, quiet)
        except Exception as exc:  # noqa: BLE001 - the library gave up on these data: cluster instead, saying why
            found, reason = None, f"TF-MoDISco stopped ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        else:
            reason = "TF-MoDISco found no pattern with enough seqlets"
        if found is not None and found.motifs:
            return found
        if method == "modisco":  # as asked: no other method in its place
            empty = pd.DataFrame(columns=["motif", "example", "start", "end", "strand", "contribution"])
            return Discovery([], empty, "modisco-lite", f"TF-MoDISco (as asked) on {n} sequences: {reason}; "
                             "no motifs (--motif-method cluster clusters the seqlets of few sequences)")
    found = cluster_seqlets(one_hot, hyp)
    found.note = (f"seqlet clustering (TF-MoDISco's seqlet caller from tangermeme, leader clustering at cosine similarity "
                  f"{CLUSTER_SIMILARITY:g}): {reason}")
    return found


def first_copies(codes: np.ndarray) -> np.ndarray:
    """``(N,)``: for each sequence of ``codes`` ``(N, L)``, the index of its first copy (its own when it
    is not a repeat)."""
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return first[np.asarray(inverse).reshape(-1)]


def _discover_once_each(one_hot: np.ndarray, hyp: np.ndarray, codes: np.ndarray, method: str, quiet: bool) -> Discovery:
    """:func:`discover_motifs` on each distinct sequence once; seqlets are reported on the first copy.

    Repeated records (the same locus twice, a duplicated probe) are windows the seqlet caller's null
    sees several times: measured, four 2-kb promoters of which two were copies lost the one GATA motif
    that the two distinct ones gave."""
    keep = np.flatnonzero(first_copies(codes) == np.arange(len(codes)))  # the distinct ones, in order
    if len(keep) == len(codes):
        return discover_motifs(one_hot, hyp, method=method, quiet=quiet)
    found = discover_motifs(one_hot[keep], hyp[keep], method=method, quiet=quiet)
    if len(found.seqlets):
        found.seqlets = found.seqlets.assign(example=keep[found.seqlets["example"].to_numpy()])
    repeated = len(codes) - len(keep)
    found.note += (f"; {repeated} repeated sequence{'s' if repeated != 1 else ''} (the same bases as an earlier one) "
                   "counted once")
    return found


def _precompile_modisco() -> None:
    """Start modisco-lite's own precompiler (``modiscolite.precompile.start``, what its CLI calls first):
    forked children compile TF-MoDISco's numba kernels into numba's on-disk cache while ISM runs here.
    Called before this process starts any thread (ISM workers, numba's OpenMP layer), without which it
    cannot fork and every run compiled them again, one after another (~40 s measured on 2 cores); later
    runs load them from the cache in milliseconds. It does nothing where forking is not safe."""
    try:
        from modiscolite import precompile
    except ImportError:  # pragma: no cover - a declared dependency; an older modisco-lite has no precompiler
        return
    threads = torch.get_num_threads()
    with contextlib.suppress(Exception):  # only a speed-up: TF-MoDISco compiles what it lacks itself
        precompile.start()
    torch.set_num_threads(threads)  # starting numba's OpenMP layer resets torch's count (--threads)


# ------------------------------------------------------------------------------------- JASPAR matching
def _numba_threads() -> int:
    return max(1, torch.get_num_threads())


@contextlib.contextmanager
def _numba_limited(n: int):
    """numba's parallel kernels (memelite, modisco-lite) on ``n`` threads, as torch's (``--threads``).

    numba's OpenMP layer and torch share the process's OpenMP settings: starting numba's threads (or
    setting their number) changes ``torch.get_num_threads()``, so torch's count is put back after each."""
    threads = torch.get_num_threads()
    try:
        import numba
    except ImportError:  # pragma: no cover - memelite depends on it
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(threads)


def match_motifs(motifs: list[Motif], database: MotifDatabase, *, n_matches: int = MATCHES) -> pd.DataFrame:
    """Each motif's best JASPAR matches by TOMTOM (memelite), with p-, q- and E-values.

    Parameters
    ----------
    motifs : the discovered motifs (already trimmed); those narrower than :data:`MIN_MOTIF_WIDTH` or with
        too little information (:attr:`Motif.informative`) are listed without a match.
    database : the profiles to match (:func:`gengen.io.jaspar.jaspar_database`).
    n_matches : matches listed per motif.

    Returns
    -------
    One row per motif: ``motif, n_seqlets, effect, width, consensus, bits, informative_columns,
    best_match_id, best_match_name,
    best_match_family, match_pvalue, match_qvalue, match_evalue, match_strand``, then ``match2_id,
    match2_name, match2_family, match2_pvalue, match2_qvalue, ...`` up to ``n_matches``. q-values are
    Benjamini-Hochberg over the motif's p-values against every profile of ``database``.
    """
    import pandas as pd
    from scipy.stats import false_discovery_control

    rows = []
    for m in motifs:
        bits = m.information()
        rows.append({"motif": m.name, "n_seqlets": m.n_seqlets, "effect": "raises score" if m.sign > 0 else "lowers score",
                     "width": m.width, "consensus": m.consensus, "bits": round(float(bits.sum()), 2),
                     "informative_columns": int((bits >= INFORMATIVE_BITS).sum())})
    columns = ["motif", "n_seqlets", "effect", "width", "consensus", "bits", "informative_columns"]
    for k in range(1, n_matches + 1):
        pre = "best_match" if k == 1 else f"match{k}"
        val = "match" if k == 1 else f"match{k}"
        columns += [f"{pre}_id", f"{pre}_name", f"{pre}_family", f"{val}_pvalue", f"{val}_qvalue"]
        if k == 1:
            columns += ["match_evalue", "match_strand", "match_offset"]
    queries = [i for i, m in enumerate(motifs) if m.width >= MIN_MOTIF_WIDTH and m.informative]
    if queries:
        from memelite import tomtom

        targets = database.probabilities()
        with warnings.catch_warnings(), _numba_limited(_numba_threads()):
            warnings.simplefilter("ignore")
            p, _, offsets, _, strands = tomtom([motifs[i].probabilities() for i in queries], targets,
                                               n_jobs=_numba_threads())[:5]
        for row_i, qi in enumerate(queries):
            pv = np.clip(np.nan_to_num(np.asarray(p[row_i], dtype=np.float64), nan=1.0), 0.0, 1.0)
            qv = false_discovery_control(pv, method="bh")
            order = np.argsort(pv, kind="stable")[:n_matches]
            for k, j in enumerate(order, start=1):
                pre = "best_match" if k == 1 else f"match{k}"
                val = "match" if k == 1 else f"match{k}"
                rows[qi].update({f"{pre}_id": database.ids[j], f"{pre}_name": database.names[j],
                                 f"{pre}_family": database.families[j], f"{val}_pvalue": float(pv[j]),
                                 f"{val}_qvalue": float(qv[j])})
                if k == 1:
                    rows[qi].update({"match_evalue": float(pv[j] * len(targets)),
                                     "match_strand": "+-"[int(strands[row_i, j])],
                                     "match_offset": int(offsets[row_i, j])})
    return pd.DataFrame(rows, columns=columns)


def unmatched_reason(row: dict) -> str:
    """Why a row of :func:`match_motifs` has no match, in words ("" when it was matched or could be)."""
    if row["width"] < MIN_MOTIF_WIDTH:
        return "too narrow"
    n = int(row["informative_columns"])
    if n >= MIN_INFORMATIVE_COLUMNS:
        return ""
    return (f"too little information ({n} column{'s' if n != 1 else ''} of >= {INFORMATIVE_BITS:g} bit, "
            f"{row['bits']:.1f} bits in all; a match needs {MIN_INFORMATIVE_COLUMNS}, as every JASPAR 2024 CORE "
            "vertebrate profile has)")


def pvalue_label(threshold: float) -> str:
    """``1e-4`` for 0.0001: how a p-value threshold is written in column names."""
    mantissa, exponent = f"{threshold:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def check_pvalue(threshold: float, option: str = "--annotate-pvalue") -> float:
    """A p-value threshold in (0, 1), or a one-line error."""
    from gengen.io.jaspar import JasparChoice

    if not isinstance(threshold, (int, float)):
        raise GengenError(f"{option} must be a p-value between 0 and 1 (e.g. 1e-4), got {threshold!r}.")
    return JasparChoice(annotate_pvalue=float(threshold)).check().annotate_pvalue


def jaspar_hits(codes: np.ndarray, database: MotifDatabase, *, threshold: float = ANNOTATE_PVALUE) -> tuple[list[str], np.ndarray]:
    """Which JASPAR profiles occur in each sequence: memelite's FIMO scan, both strands.

    Parameters
    ----------
    codes : ``(N, L)`` uint8 codes (A, C, G, T = 0..3; ambiguous bases match nothing).
    database : the profiles (:func:`gengen.io.jaspar.jaspar_database`).
    threshold : FIMO p-value threshold of a hit.

    Returns
    -------
    (per sequence, its profiles with a hit, best hit first: ``"CEBPA MA0102.5 12+ p=3.1e-06; ..."`` (1-based
    start and strand of each profile's best hit; "" without hits), the number of distinct profiles hit ``(N,)``).
    """
    from memelite import fimo

    threshold = check_pvalue(threshold)
    codes = np.asarray(codes)
    if not len(codes):
        return [], np.zeros(0, dtype=np.int64)
    x = np.zeros((len(codes), 4, codes.shape[1]), dtype=np.int8)
    for b in range(4):
        x[:, b, :] = codes == b
    # the smallest p-value a profile can give is that of its best word under FIMO's uniform background;
    # a profile that cannot reach the threshold (a 6-column one: 4^-6 = 2.4e-4 > 1e-4) is not scanned,
    # and no p-value is reported below it: memelite's binned score distribution gave p=0 for such hits
    floor = {mid: _best_word_pvalue(p) for mid, p in zip(database.ids, database.probabilities())}
    motifs = {mid: p for mid, p in zip(database.ids, database.probabilities()) if floor[mid] < threshold}
    names = dict(zip(database.ids, database.names))
    if not motifs:
        return [""] * len(codes), np.zeros(len(codes), dtype=np.int64)
    with warnings.catch_warnings(), _numba_limited(_numba_threads()):
        warnings.simplefilter("ignore")
        per_motif = fimo(motifs, x, threshold=threshold, dim=0)  # one frame per profile; sequence_name = index
    frames = [f for f in per_motif if f is not None and len(f)]
    out, counts = [""] * len(codes), np.zeros(len(codes), dtype=np.int64)
    if frames:
        import pandas as pd

        every = pd.concat(frames, ignore_index=True)
        every["p-value"] = np.maximum(every["p-value"].to_numpy(dtype=np.float64),
                                      every["motif_name"].map(floor).to_numpy(dtype=np.float64))
        every = every.sort_values(["sequence_name", "p-value", "start"], kind="stable")
        best = every.drop_duplicates(["sequence_name", "motif_name"])
        for seq, group in best.groupby("sequence_name", sort=True):
            out[int(seq)] = "; ".join(f"{names.get(m, m)} {m} {int(s) + 1}{st} p={float(pv):.2g}" for m, s, st, pv in
                                      zip(group["motif_name"], group["start"], group["strand"], group["p-value"]))
            counts[int(seq)] = len(group)
    return out, counts


def _best_word_pvalue(probabilities: np.ndarray) -> float:
    """P(a uniform random word scores a profile's best score): per column, the share of bases at its maximum."""
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.prod((p == p.max(axis=0, keepdims=True)).sum(axis=0) / 4.0))


# ------------------------------------------------------------------------------------ the explanation
@dataclass
class Explanation:
    """Attributions of the explained sequences, the motifs behind them and their JASPAR matches.

    ``codes`` ``(N, L)`` and ``ids`` are the explained sequences (the top ``N`` of ``n_input``), ``scores``
    their explained score, ``ism_delta`` ``(N, 4, L)`` every single substitution's score change,
    ``gradient`` ``(N, 4, L)`` hypothetical gradient attributions; ``discovery``, ``matches`` (motifs.tsv)
    and ``hits`` (FIMO JASPAR hits of each sequence). ``settings`` records what ran and why.
    """

    ids: list[str]
    codes: np.ndarray
    scores: np.ndarray
    ism_delta: np.ndarray
    gradient: np.ndarray
    gradient_method: str
    discovery: Discovery
    matches: pd.DataFrame
    hits: list[str]
    database: MotifDatabase
    label: str
    n_input: int
    settings: dict = field(default_factory=dict)

    @property
    def one_hot(self) -> np.ndarray:
        """``(N, 4, L)`` uint8 (an ambiguous base: all zeros)."""
        x = np.zeros((len(self.codes), 4, self.codes.shape[1]), dtype=np.uint8)
        for b in range(4):
            x[:, b, :] = self.codes == b
        return x

    @property
    def ism(self) -> np.ndarray:
        """tangermeme's ISM attribution ``(N, 4, L)``: each substitution's delta minus the mean over the four bases."""
        return self.ism_delta - self.ism_delta.mean(axis=1, keepdims=True)

    def contributions(self, which: str = "ism") -> np.ndarray:
        """``(N, L)`` the observed bases' attributions (``"ism"`` or ``"gradient"``)."""
        hyp = self.ism if which == "ism" else self.gradient
        return (self.one_hot * hyp).sum(axis=1)

    def table(self) -> pd.DataFrame:
        """summary.tsv: one row per explained sequence: rank, id, score, the positions that matter most
        (by |ISM contribution|, 1-based), the most damaging and the most helpful substitution, the
        strongest gradient positions, the motifs whose seqlets it holds and its JASPAR hits."""
        import pandas as pd

        from gengen.io.sequences import decode_codes

        seqs = decode_codes(self.codes)
        ism_c, grad_c = self.contributions("ism"), self.contributions("gradient")
        delta = self.ism_delta

        def tops(values: np.ndarray, s: str) -> str:
            idx = np.argsort(-np.abs(values), kind="stable")[:TOP_POSITIONS]
            return ",".join(f"{i + 1}{s[i]}:{values[i]:+.3g}" for i in idx if values[i] != 0)

        def substitution(row: np.ndarray, s: str, worst: bool) -> str:
            flat = int(np.argmin(row) if worst else np.argmax(row))
            b, i = divmod(flat, row.shape[1])
            value = row[b, i]
            if (worst and value >= 0) or (not worst and value <= 0):
                return ""
            return f"{i + 1}{s[i]}>{'ACGT'[b]}:{value:+.3g}"

        motif_of = {}
        if len(self.discovery.seqlets):
            for e, group in self.discovery.seqlets.groupby("example"):
                motif_of[int(e)] = ",".join(f"{m}@{s + 1}{st}" for m, s, st in
                                            zip(group["motif"], group["start"], group["strand"]))
        for k, k0 in enumerate(first_copies(self.codes)):  # a repeat holds the seqlets found on its first copy
            if k0 != k and k0 in motif_of:
                motif_of[k] = motif_of[int(k0)]
        df = pd.DataFrame({
            "rank": np.arange(1, len(self.ids) + 1), "id": self.ids, "score": self.scores, "sequence": seqs,
            "ism_top_positions": [tops(ism_c[k], seqs[k]) for k in range(len(seqs))],
            "worst_substitution": [substitution(delta[k], seqs[k], True) for k in range(len(seqs))],
            "best_substitution": [substitution(delta[k], seqs[k], False) for k in range(len(seqs))],
            "gradient_top_positions": [tops(grad_c[k], seqs[k]) for k in range(len(seqs))],
            "motifs": [motif_of.get(k, "") for k in range(len(seqs))],
        })
        df[self.settings.get("hits_column", "jaspar_hits")] = self.hits
        return df

    def seqlet_table(self) -> pd.DataFrame:
        """seqlets.tsv: motif, the sequence's rank in summary.tsv and its id (ids may repeat), 1-based start
        and end (inclusive), strand, contribution, bases."""
        import pandas as pd

        from gengen.io.sequences import decode_codes

        s = self.discovery.seqlets
        if not len(s):
            return pd.DataFrame(columns=["motif", "rank", "id", "start", "end", "strand", "contribution", "sequence"])
        seqs = decode_codes(self.codes)
        return pd.DataFrame({"motif": s["motif"], "rank": s["example"].astype(int) + 1,
                             "id": [self.ids[e] for e in s["example"]],
                             "start": s["start"] + 1, "end": s["end"], "strand": s["strand"],
                             "contribution": s["contribution"],
                             "sequence": [seqs[e][a:b] for e, a, b in zip(s["example"], s["start"], s["end"])]})

    def report(self) -> list[str]:
        """The lines ``dna-explain`` prints."""
        st = self.settings
        n = len(self.ids)
        lines = [f"explained {n} of {self.n_input} sequence{'s' if self.n_input != 1 else ''}"
                 + (f" (the top {n} by {self.label}; --top sets how many)" if n < self.n_input else "")
                 + f": score {self.label}, mean {np.mean(self.scores):.4g} (min {np.min(self.scores):.4g}, "
                   f"max {np.max(self.scores):.4g})",
                 f"ISM: {st.get('ism_substitutions', 0):,} substitutions scored in {st.get('ism_seconds', 0):.2f} s "
                 f"on {st.get('device', 'cpu')}",
                 f"gradient: {st.get('gradient_note', self.gradient_method)}",
                 f"motifs: {self.discovery.note}; {len(self.discovery.motifs)} motif"
                 f"{'s' if len(self.discovery.motifs) != 1 else ''} from {len(self.discovery.seqlets)} seqlets"
                 + (f" ({self.discovery.dropped} narrower than {MIN_MOTIF_WIDTH} bases left out)"
                    if self.discovery.dropped else "")]
        for row in self.matches.itertuples(index=False):
            d = row._asdict()
            match = ("no JASPAR match computed (too narrow)" if d["width"] < MIN_MOTIF_WIDTH
                     else f"not matched to JASPAR: {unmatched_reason(d)}")
            if isinstance(d.get("best_match_id"), str):
                match = (f"best {self.database.describe().split(':')[0].split(',')[0]} match {d['best_match_id']} {d['best_match_name']}"
                         + (f" ({d['best_match_family']})" if d.get("best_match_family") else "")
                         + f", q={d['match_qvalue']:.2g}")
            lines.append(f"  {d['motif']} ({d['effect']}, {d['n_seqlets']} seqlets): {d['consensus']}; {match}")
        return lines

    def write(self, folder: str | Path, *, logos: int = LOGOS) -> list[Path]:
        """Write every output of ``dna-explain`` into ``folder`` (see :func:`explain_outputs`), each atomically."""
        import json

        from gengen.dna.designer.figures import plot_attribution_logo, plot_motif_matches
        from gengen.io.jaspar import write_jaspar_motifs, write_meme_motifs
        from gengen.io.sequences import decode_codes
        from gengen.runtime import atomic_path

        paths = explain_outputs(folder, min(logos, len(self.ids)))
        p = dict(zip(OUTPUT_KEYS, paths))
        with atomic_path(p["attributions"]) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, ids=np.array(self.ids, dtype=str), sequences=np.array(decode_codes(self.codes), dtype=str),
                                one_hot=self.one_hot, score=self.scores, ism_delta=self.ism_delta.astype(np.float32),
                                ism=self.ism.astype(np.float32), gradient=self.gradient.astype(np.float32),
                                gradient_method=np.array(self.gradient_method))
        with atomic_path(p["summary"]) as tmp:
            self.table().to_csv(tmp, sep="\t", index=False, float_format="%.5g")
        with atomic_path(p["seqlets"]) as tmp:
            self.seqlet_table().to_csv(tmp, sep="\t", index=False, float_format="%.5g")
        with atomic_path(p["motifs"]) as tmp:
            self.matches.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
        motifs = self.discovery.motifs
        write_meme_motifs(p["meme"], [m.name for m in motifs], [m.probabilities() for m in motifs])
        write_jaspar_motifs(p["jaspar"], [m.name for m in motifs], [f"{m.consensus}_{m.n_seqlets}_seqlets" for m in motifs],
                            counts=[m.counts for m in motifs])
        plot_motif_matches(motifs, self.matches, self.database, path=p["motifs_png"], title=self.database.describe(),
                           unmatched={r["motif"]: unmatched_reason(r) for r in self.matches.to_dict("records")})
        with atomic_path(p["config"]) as tmp:
            Path(tmp).write_text(json.dumps(self.settings, indent=2, default=str) + "\n")
        ism_h, grad_h, oh = self.ism, self.gradient, self.one_hot
        length = oh.shape[2]
        for k, path in enumerate(paths[len(OUTPUT_KEYS):]):
            a, b = logo_window(np.abs((oh[k] * ism_h[k]).sum(axis=0)))
            where = f" (positions {a + 1}-{b} of {length}: the {b - a} nt holding the most |ISM contribution|)" \
                if b - a < length else ""
            plot_attribution_logo(oh[k][:, a:b], ism_h[k][:, a:b], self.ism_delta[k][:, a:b],
                                  gradient=None if self.gradient_method == "none" else grad_h[k][:, a:b], path=path,
                                  title=f"#{k + 1} {self.ids[k]}: score {self.scores[k]:.4g}{where}",
                                  gradient_label="DeepLIFT/SHAP" if self.gradient_method == "deep_lift_shap"
                                  else "gradient x input", start=a + 1)
        return paths


def logo_window(strength: np.ndarray, width: int = LOGO_WIDTH) -> tuple[int, int]:
    """[start, end) of the ``width`` positions with the largest summed ``strength`` (the whole sequence
    when it is no longer): a logo of 1,000 bases is unreadable and took seconds per panel to draw."""
    if len(strength) <= width:
        return 0, len(strength)
    sums = np.convolve(strength, np.ones(width), mode="valid")
    a = int(np.argmax(sums))
    return a, a + width


OUTPUT_KEYS = ("attributions", "summary", "seqlets", "motifs", "meme", "jaspar", "motifs_png", "config")
OUTPUT_NAMES = ("attributions.npz", "summary.tsv", "seqlets.tsv", "motifs.tsv", "motifs.meme", "motifs.jaspar",
                "motifs.png", "config.json")


def explain_outputs(folder: str | Path, n_logos: int) -> list[Path]:
    """The files ``dna-explain -o FOLDER`` writes: attributions.npz, summary.tsv, seqlets.tsv, motifs.tsv,
    motifs.meme, motifs.jaspar, motifs.png, config.json, and ``logos/top01.png`` ... for the first
    ``n_logos`` explained sequences."""
    folder = Path(folder)
    digits = max(2, len(str(n_logos)))
    return [folder / name for name in OUTPUT_NAMES] + [folder / "logos" / f"top{k:0{digits}d}.png"
                                                       for k in range(1, n_logos + 1)]


def explain(
    objectives,
    seqs: SequenceSet,
    *,
    top: int = TOP,
    motif_method: str = "auto",
    motifs_from: str = "ism",
    gradient: str = "auto",
    taxon: str = "vertebrates",
    collection: str = "CORE",
    n_matches: int = MATCHES,
    annotate_pvalue: float = ANNOTATE_PVALUE,
    seed: int = 0,
    device: str | torch.device = "auto",
    quiet: bool = True,
) -> Explanation:
    """Explain why sequences score: ISM and gradient attributions, discovered motifs, JASPAR matches.

    Parameters
    ----------
    objectives : an objective, a list of them (:class:`gengen.dna.designer.objectives.Objective`) or a torch
        module mapping one-hot ``(N, 4, L)`` to ``(N,)``.
    seqs : the sequences (:class:`gengen.io.sequences.SequenceSet`, one length).
    top : explain the ``top`` best-scoring sequences (all when there are fewer; "best" follows the
        objective's target: highest for max, lowest for min, closest for a value).
    motif_method : ``"auto"``, ``"modisco"`` or ``"cluster"`` (:func:`discover_motifs`).
    motifs_from : the attributions motifs are found in: ``"ism"`` (exact) or ``"gradient"``.
    gradient : ``"auto"``, ``"deeplift"`` or ``"saliency"`` (:func:`gradient_attributions`).
    taxon, collection : the JASPAR 2024 profiles matched (:func:`gengen.io.jaspar.jaspar_database`).
    n_matches : JASPAR matches listed per motif.
    annotate_pvalue : FIMO p-value threshold of the JASPAR hits listed per sequence.
    seed : seed of the DeepLIFT references.
    device : ``auto``, ``cpu`` or ``cuda``.
    quiet : no progress bars.

    Returns
    -------
    The :class:`Explanation` (``.write(folder)`` writes its files, ``.report()`` its summary lines).
    """
    from gengen.dna.designer.objectives import as_objectives, calibrate
    from gengen.io.jaspar import jaspar_database
    from gengen.io.sequences import codes_to_one_hot
    from gengen.runtime import describe_device, package_versions, resolve_device

    if motifs_from not in ("ism", "gradient"):
        raise GengenError(f"--motifs-from must be ism or gradient, got {motifs_from!r}.")
    if not (isinstance(top, int) and top >= 1):
        raise GengenError(f"--top must be a positive number of sequences, got {top!r}.")
    if not (isinstance(n_matches, int) and n_matches >= 1):
        raise GengenError(f"--matches must be a positive number, got {n_matches!r}.")
    annotate_pvalue = check_pvalue(annotate_pvalue)
    if motif_method not in ("auto", "modisco", "cluster"):
        raise GengenError(f"--motif-method must be auto, modisco or cluster, got {motif_method!r}.")
    if gradient not in ("auto", "deeplift", "saliency"):
        raise GengenError(f"--gradient must be auto, deeplift or saliency, got {gradient!r}.")
    database = jaspar_database(taxon, collection)  # a bad taxon is refused before any work
    objectives = as_objectives(objectives)
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    length = seqs.length
    for o in objectives:  # a motif longer than the sequences, a model that does not take them: one line, no work
        o.check_length(length)
    import tangermeme.saturation_mutagenesis  # noqa: F401  (its import, seconds, is not the ISM's time)

    if motif_method == "modisco" or (motif_method == "auto" and min(top, len(seqs)) >= MODISCO_MIN_SEQUENCES):
        _precompile_modisco()
    if motif_method == "modisco" and min(top, len(seqs)) < MODISCO_MIN_SEQUENCES:
        from gengen.runtime import log

        log(f"note: --motif-method modisco on {min(top, len(seqs))} sequences, fewer than the ~{MODISCO_MIN_SEQUENCES} "
            "TF-MoDISco needs for enough seqlets: it may find no motif (--motif-method cluster suits few sequences)",
            quiet)

    from gengen.dna.designer.design import borrowed

    # the user's models are left as found: device, train/eval mode, requires_grad
    with borrowed([o.predictor for o in objectives], dev), _numba_limited(_numba_threads()):
        if len(objectives) > 1:
            calibrate(objectives, length, seed=seed, device=dev)
        model = ExplainedScore(objectives, ambiguous=bool((seqs.codes >= 4).any()))
        label = score_label(objectives)
        no_gradient = gradient_problem(model, length, dev)
        if no_gradient and (gradient != "auto" or motifs_from == "gradient"):
            asked = f"--gradient {gradient}" if gradient != "auto" else "--motifs-from gradient"
            raise GengenError(f"{asked} needs a gradient, but the score is not differentiable: {no_gradient}; leave "
                              f"{asked.split()[0]} out to explain it by in-silico mutagenesis alone (exact, gradient-free).")
        scores_all = _scores(model, seqs.codes, dev, quiet)
        if not np.isfinite(scores_all).all():
            bad = int((~np.isfinite(scores_all)).sum())
            raise GengenError(f"the objective gave {bad} non-finite score(s) (NaN or inf); check the model.")
        order = np.argsort(-_utility(objectives, scores_all), kind="stable")[: min(top, len(seqs))]
        codes = seqs.codes[order]
        ids = [seqs.ids[i] for i in order]
        x = codes_to_one_hot(codes, ambiguous="zero")
        settings: dict = {
            "command": "dna-explain", "score": label, "n_input": len(seqs), "n_explained": len(order),
            "top": top, "top_why": (f"the {top} best-scoring sequences: enough seqlets for TF-MoDISco, seconds of "
                                    "ISM; --top sets it"),
            "length": length, "device": describe_device(dev), "seed": seed, "threads": torch.get_num_threads(),
            "ambiguous_bases": "all-zero one-hot columns, scored as 0.25 of each base",
        }
        t0 = time.perf_counter()
        ism_scores, delta = ism(model, x, device=dev, quiet=quiet)
        settings["ism_seconds"] = round(time.perf_counter() - t0, 3)
        settings["ism_substitutions"] = int(3 * codes.size + (codes >= 4).sum())  # an N takes all 4 bases
        settings["ism"] = (f"{ism_method(model)}; ism_delta = score(substituted) - score(sequence); ism = ism_delta minus its "
                           "mean over the 4 bases")
        if no_gradient:
            grad, grad_method = np.zeros(x.shape, dtype=np.float32), "none"
            grad_note = (f"none: the score is not differentiable ({no_gradient}); in-silico mutagenesis (exact, "
                         "gradient-free) explains it, and the gradient array is zeros")
        else:
            grad, grad_method, grad_note = gradient_attributions(model, x, method=gradient, device=dev, seed=seed,
                                                                 quiet=quiet)
        settings.update(gradient=grad_method, gradient_note=grad_note)
        one_hot = x.numpy()
        hyp = (delta - delta.mean(axis=1, keepdims=True)) if motifs_from == "ism" else grad
        discovery = _discover_once_each(one_hot, hyp, codes, motif_method, quiet)
        settings.update(motif_method=discovery.method, motif_note=discovery.note, motifs_from=motifs_from)
        matches = match_motifs(discovery.motifs, database, n_matches=n_matches)
        hits, _ = jaspar_hits(codes, database, threshold=annotate_pvalue)
    hits_column = f"jaspar_hits_p{pvalue_label(annotate_pvalue)}"
    settings.update(
        jaspar={"release": database.release, "collection": database.collection, "taxon": database.taxon,
                "profiles": len(database), "described": database.describe(),
                "why": "JASPAR 2024 CORE vertebrates non-redundant by default (--jaspar-taxon, --jaspar-collection)"},
        matching=("memelite TOMTOM (complete score) of each motif trimmed to columns with >= "
                  f"{TRIM_FRACTION:g} of its strongest column's contribution; q-values Benjamini-Hochberg over the "
                  "motif's p-values against every profile; E-value = p x profiles; only motifs with "
                  f"{MIN_INFORMATIVE_COLUMNS} columns of >= {INFORMATIVE_BITS:g} bit of information are "
                  "matched, as every JASPAR 2024 CORE vertebrate profile has: a near-uniform motif draws "
                  "significant but meaningless matches to long profiles"),
        annotation=f"memelite FIMO, both strands, p < {annotate_pvalue:g}", hits_column=hits_column,
        versions=package_versions(),
    )
    if not np.allclose(ism_scores, scores_all[order], rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ism_scores).max()))):
        settings["note"] = "ISM's unedited scores differ from the batch scores beyond rounding (a non-deterministic model?)"
    return Explanation(ids=ids, codes=codes, scores=scores_all[order], ism_delta=delta.astype(np.float32),
                       gradient=grad.astype(np.float32), gradient_method=grad_method, discovery=discovery,
                       matches=matches, hits=hits, database=database, label=label, n_input=len(seqs),
                       settings=settings)
