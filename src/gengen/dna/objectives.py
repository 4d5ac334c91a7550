"""What a design is pushed toward: one or several objectives, each a predictor with a target and a weight.

An objective is a model mapping one-hot ``(N, 4, L)`` to one number per sequence -- a PWM
(:class:`~gengen.dna.predictors.PWMPredictor`) or any torch predictor -- with a target (``"max"``,
``"min"`` or a value to hit) and a weight. ``dna-design --objective SPEC`` builds them from
``predictor=NAME_OR_DIR`` or ``motif=FILE_OR_JASPAR_ID``, ``target=max|min|VALUE`` and ``weight=W``.

**A common scale.** Objectives come in different units (PWM bits, a CNN's log signal), so before they
are weighed each is standardised by its own spread over random sequences: ``u = (s - mean) / sd``,
with the mean and standard deviation of the objective over 2,048 uniform random sequences of the
design length (seeded, so every run of a design uses the same scale). One unit of weight is then "one
standard deviation of what chance gives" for every objective, whatever its units. A design
maximises ``J = sum_i w_i * u_i`` with ``u_i`` the standardised score for ``max``, its negative for
``min`` and ``-|s - v| / sd`` for a value ``v``: every utility changes by one unit per standard
deviation, so a weight is the same exchange rate between objectives wherever the designs are (a
squared miss would make a value target nearly weightless close to it). Adam is (nearly) invariant to
a constant factor on a loss, so a single objective designs as it would unscaled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from gengen.errors import GengenError

if TYPE_CHECKING:
    from gengen.io.motifs import PWM

CALIBRATION_SEQUENCES = 2048
CALIBRATION_BASES = 2**24  # at most this many random bases: sequences above 8,192 nt calibrate on fewer
CALIBRATION_MIN_SEQUENCES = 256
SPEC_KEYS = ("predictor", "motif", "target", "weight")


def parse_target(target: str | float) -> str | float:
    """``"max"``, ``"min"`` or a finite float value to hit."""
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        value = float(target)
    else:
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


@dataclass
class ObjectiveSpec:
    """A parsed ``--objective`` value: which model (``kind`` 'predictor' or 'motif', ``source``), its
    target and weight. :func:`parse_objective` makes it; the CLI loads the model."""

    kind: str
    source: str
    target: str | float = "max"
    weight: float = 1.0


def parse_objective(spec: str) -> ObjectiveSpec:
    """Parse ``predictor=NAME,target=min,weight=0.5`` (or ``motif=MA0139.2,...``) into an :class:`ObjectiveSpec`.

    Parameters
    ----------
    spec : comma-separated ``key=value`` pairs; keys ``predictor`` or ``motif`` (exactly one),
        ``target`` (``max``, ``min`` or a number; default ``max``) and ``weight`` (a positive number;
        default 1).

    Returns
    -------
    The parsed spec; any mistake is a one-line :class:`GengenError` quoting the spec.
    """
    text = str(spec).strip()
    where = f"--objective {text!r}"
    if not text:
        raise GengenError("--objective is empty; give e.g. --objective predictor=NAME,target=max,weight=1.")
    values: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise GengenError(f"{where}: an empty item between commas; write key=value pairs separated by commas.")
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            raise GengenError(f"{where}: {part!r} is not key=value (keys: {', '.join(SPEC_KEYS)}).")
        if key not in SPEC_KEYS:
            raise GengenError(f"{where}: unknown key {key!r}; the keys are {', '.join(SPEC_KEYS)}.")
        if key in values:
            raise GengenError(f"{where}: {key} is given twice.")
        if not value:
            raise GengenError(f"{where}: {key}= has no value.")
        values[key] = value
    models = [k for k in ("predictor", "motif") if k in values]
    if len(models) != 1:
        raise GengenError(f"{where}: give exactly one of predictor=NAME_OR_DIR or motif=FILE_OR_JASPAR_ID.")
    try:
        target = parse_target(values.get("target", "max"))
    except GengenError:
        raise GengenError(f"{where}: target must be max, min or a finite number, got {values['target']!r}.") from None
    weight = 1.0
    if "weight" in values:
        try:
            weight = float(values["weight"])
        except ValueError:
            raise GengenError(f"{where}: weight must be a number, got {values['weight']!r}.") from None
        if not (math.isfinite(weight) and weight > 0):
            raise GengenError(
                f"{where}: weight must be a positive number, got {values['weight']!r} (to push a score down use "
                "target=min)."
            )
    return ObjectiveSpec(models[0], values[models[0]], target, weight)


@dataclass
class Objective:
    """One objective of a design: ``predictor`` (one-hot ``(N, 4, L)`` -> ``(N,)``), ``target``, ``weight``.

    ``center`` and ``scale`` standardise its scores (set by :func:`calibrate`); ``pwm`` is the motif of a
    :class:`~gengen.dna.predictors.PWMPredictor` (for hits and logos).
    """

    predictor: nn.Module
    target: str | float = "max"
    weight: float = 1.0
    name: str = "objective"
    center: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.target = parse_target(self.target)
        if not (math.isfinite(float(self.weight)) and self.weight > 0):
            raise GengenError(f"objective {self.name!r}: the weight must be a positive number, got {self.weight}.")

    @property
    def pwm(self) -> PWM | None:
        return getattr(self.predictor, "pwm", None)

    @property
    def is_value(self) -> bool:
        return not isinstance(self.target, str)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score the loss sees, exact score) of ``x`` ``(N, 4, L)``; both ``(N,)``.

        For a PWM the loss sees the smooth maximum over windows (every window gets gradient), or the
        exact best window when a value is to be hit (the smooth maximum sits above the reported one);
        the exact score is the best window, which is the reported score when ``x`` is one-hot. Any
        other predictor gives one output for both.
        """
        pwm = self.pwm
        if pwm is None:
            out = self.predictor(x)
            return out, out
        windows = self.predictor.window_scores(x).flatten(1)
        exact = windows.amax(dim=1)
        tau = self.predictor.tau
        if self.is_value or tau <= 0:
            return exact, exact
        return tau * torch.logsumexp(windows / tau, dim=1), exact

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the reported score of one-hot ``x``: a PWM's best window, else the predictor's output."""
        pwm = self.pwm
        return self.predictor(x) if pwm is None else self.predictor.window_scores(x).flatten(1).amax(dim=1)

    def utility(self, score: torch.Tensor) -> torch.Tensor:
        """Standardised 'higher is better' value of raw scores (see the module docstring)."""
        u = (score - self.center) / self.scale
        if self.target == "max":
            return u
        if self.target == "min":
            return -u
        return -(score - float(self.target)).abs() / self.scale

    def describe(self) -> str:
        target = self.target if isinstance(self.target, str) else f"{self.target:g}"
        return f"{self.name} ({target}, weight {self.weight:g}, sd {self.scale:.3g})"


def combined(objectives: list[Objective], scores: list[torch.Tensor]) -> torch.Tensor:
    """``J = sum_i w_i * utility_i(score_i)`` per sequence: what a design maximises."""
    total = objectives[0].weight * objectives[0].utility(scores[0])
    for obj, s in zip(objectives[1:], scores[1:]):
        total = total + obj.weight * obj.utility(s)
    return total


def as_objectives(objectives, target: str | float | None = None) -> list[Objective]:
    """A predictor module (with ``target``, default ``"max"``), an :class:`Objective` or a list of them,
    as a list of objectives."""
    if isinstance(objectives, nn.Module):
        return [Objective(objectives, "max" if target is None else target, name=_module_name(objectives))]
    out = [objectives] if isinstance(objectives, Objective) else list(objectives)
    if not out or not all(isinstance(o, Objective) for o in out):
        raise GengenError("design needs a predictor, an Objective or a list of Objectives.")
    if target is not None:
        raise GengenError("give each Objective its own target instead of target=.")
    return out


def _module_name(module: nn.Module) -> str:
    pwm = getattr(module, "pwm", None)
    return pwm.name if pwm is not None else type(module).__name__


def column_names(objectives: list[Objective]) -> list[str]:
    """One table column per objective: ``score_<name>`` (names made safe and unique)."""
    out: list[str] = []
    for obj in objectives:
        slug = re.sub(r"[^0-9A-Za-z.]+", "_", obj.name).strip("_") or "objective"
        col, k = f"score_{slug}", 2
        while col in out:
            col, k = f"score_{slug}_{k}", k + 1
        out.append(col)
    return out


@torch.no_grad()
def exact_scores(objectives: list[Objective], x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Exact scores ``(N, K)`` of one-hot ``x`` for each objective, ``batch_size`` sequences at a time."""
    cols = []
    for obj in objectives:
        parts = [obj.exact(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
        cols.append(torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0))
    return np.stack(cols, axis=1)


def random_codes(n: int, length: int, seed: int = 0) -> np.ndarray:
    """``(n, length)`` uniform random bases, seeded (the calibration and trade-off reference)."""
    return np.random.default_rng(seed).integers(0, 4, size=(n, length)).astype(np.uint8)


def calibrate(
    objectives: list[Objective],
    length: int,
    *,
    n: int = CALIBRATION_SEQUENCES,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Set each objective's ``center`` / ``scale`` to its mean / sd over ``n`` random sequences.

    Parameters
    ----------
    objectives : the objectives to standardise (changed in place).
    length : design length.
    n, seed : number of uniform random sequences (fewer above 8,192 nt: at most 2^24 bases, at least 256
        sequences) and their seed.
    device : where to score them.

    Returns
    -------
    The random sequences' exact scores ``(n, K)`` (the reference cloud of the trade-off figure).
    """
    from gengen.io.sequences import codes_to_one_hot

    n = min(n, max(CALIBRATION_MIN_SEQUENCES, CALIBRATION_BASES // max(length, 1)))  # long designs: fewer
    codes = random_codes(n, length, seed)
    rows = max(1, 2**22 // max(length, 1))  # one-hot a few million bases at a time (one batch up to 2,048 nt)
    scores = np.concatenate([exact_scores(objectives, codes_to_one_hot(codes[i : i + rows], device=device))
                             for i in range(0, n, rows)])
    for obj, col in zip(objectives, scores.T):
        sd = float(np.std(col, ddof=1)) if len(col) > 1 else 0.0
        obj.center = float(np.mean(col))
        obj.scale = sd if math.isfinite(sd) and sd > 1e-12 else 1.0  # a constant predictor: raw units
    return scores


def load_objectives(
    specs: list[str] | None = None,
    *,
    motif: str | None = None,
    predictor: str | None = None,
    target: str = "max",
    motif_format: str | None = None,
    motif_name: str | None = None,
    pseudocount: float = 1.0,
    device: str | torch.device = "cpu",
    quiet: bool = True,
) -> tuple[list[Objective], PWM | None]:
    """The objectives of ``dna-design`` / ``dna-generate``: each ``--objective`` spec, or the one-objective
    shorthand (``predictor`` with ``target``, else ``motif``; a motif given with a predictor only
    annotates the designs with its best hits).

    Parameters
    ----------
    specs : ``--objective`` values (see :func:`parse_objective`); exclusive with the shorthand.
    motif, predictor, target : the shorthand.
    motif_format, motif_name, pseudocount : how motif files are read (every motif).
    device : where predictors are loaded.
    quiet : no status lines (each motif is announced with how it was read).

    Returns
    -------
    (objectives, the motif that annotates predictor-only designs or None).
    """
    from pathlib import Path

    from gengen.dna.predictors import CNNPredictor, PWMPredictor
    from gengen.io.motifs import load_motif
    from gengen.runtime import log

    def read_motif(spec: str) -> PWM:
        pwm = load_motif(spec, fmt=motif_format, name=motif_name, pseudocount=pseudocount, quiet=quiet)
        log(f"motif {pwm.name}: {pwm.length} bp, consensus {pwm.consensus}, best possible score {pwm.max_score:.3f}"
            + (f" (read as {pwm.layout})" if pwm.layout else ""), quiet)
        return pwm

    if specs:
        if motif or predictor or target != "max":
            raise GengenError("--objective replaces --motif, --predictor and --target: give every objective as "
                              "--objective (e.g. --objective motif=MA0139.2,target=max).")
        parsed = [parse_objective(s) for s in specs]  # all parsed before any is loaded
        out = []
        for p in parsed:
            if p.kind == "motif":
                module = PWMPredictor(read_motif(p.source))
                name = module.pwm.name
            else:
                module, name = CNNPredictor.load(p.source, device=device), Path(p.source).name
            out.append(Objective(module, p.target, p.weight, name=name))
        annotation = None
    else:
        target = parse_target(target)
        annotation = read_motif(motif) if motif else None
        if predictor:
            out = [Objective(CNNPredictor.load(predictor, device=device), target, name=Path(predictor).name)]
        elif annotation is None:
            raise GengenError("give --motif (file or JASPAR id), --predictor (a dna-train-predictor model) or "
                              "--objective.")
        else:
            out, annotation = [Objective(PWMPredictor(annotation), target, name=annotation.name)], None
    for o in out:
        if o.pwm is not None and o.is_value and o.target > o.pwm.max_score:
            log(f"note: target {o.target:g} is above {o.name}'s best possible score {o.pwm.max_score:.3f}; the "
                "designs can only approach the consensus", quiet)
    return out, annotation


def trained_lengths(predictor: str | None = None, specs: list[str] | None = None) -> dict[str, int]:
    """The sequence length each ``dna-train-predictor`` model among the objectives (``--predictor``,
    ``--objective predictor=...``) was trained on, by name, read from its config.json alone so it is
    known before anything is loaded. A model that cannot be read is left out (loading it says why)."""
    from pathlib import Path

    from gengen.checkpoint import read_config, resolve_model

    sources = [predictor] if predictor else []
    sources += [p.source for p in map(parse_objective, specs or []) if p.kind == "predictor"]
    out = {}
    for source in sources:
        try:
            cfg = read_config(resolve_model(source, "dna-predictor"))
        except (GengenError, OSError):
            continue
        length = cfg.get("length") if isinstance(cfg, dict) and cfg.get("pipeline") == "dna-predictor" else None
        if isinstance(length, int) and length > 0:
            out[Path(source).name] = length
    return out


def check_trained_length(trained: dict[str, int], length: int, *, how: str, fix: str) -> None:
    """The one check of a sequence length against the lengths trained predictors were fitted on
    (``dna-design``, ``dna-generate``, ``dna-score``), with one message.

    A CNN from ``dna-train-predictor`` pools over positions, so it returns a number for any length,
    but a number for another length than its training sequences' is an extrapolation: a mean pooled
    over more or fewer positions, a maximum over more or fewer chances. Refused, saying what to do.

    Parameters
    ----------
    trained : predictor name -> the length it was trained on (:func:`trained_lengths`).
    length : the length that would be scored.
    how : what has that length and the verb, e.g. ``"--length {asked} differs"``, ``"records of {asked}
        nt differ"``.
    fix : what to do instead. In both, ``{n}`` is replaced by the trained length and ``{asked}`` by ``length``.
    """
    for name, n in trained.items():
        if n != length:
            raise GengenError(
                f"{how.format(n=n, asked=length)} from the {n} nt the predictor {name!r} was trained on (its scores at "
                "other lengths are extrapolations); " + fix.format(n=n, asked=length)
            )


def design_length(trained: dict[str, int], length: int | None = None, *, gan_length: int | None = None,
                  from_option: str = "--length") -> tuple[int | None, str]:
    """The design length that fits the trained predictors, and a note when it was taken from them.

    A CNN from ``dna-train-predictor`` was fitted on sequences of one length and its pooled scores at
    another length are extrapolations, so a length given (``length``, or the GAN's ``gan_length``)
    must be theirs (:func:`check_trained_length`), and without one the predictors' length is used.

    Parameters
    ----------
    trained : predictor name -> the length it was trained on (:func:`trained_lengths`).
    length : the length asked for (None: not given).
    gan_length : the GAN's length in joint design (then ``length`` is not used).
    from_option : how the user gave ``length``, for the error.

    Returns
    -------
    (the length to design at, or None to keep the default; a note for the user or "").
    """
    if not trained:
        return (gan_length or length), ""
    if gan_length is not None:
        check_trained_length(trained, gan_length, how="the GAN's length {asked} differs", fix="use a GAN trained on "
                             "{n}-nt windows, or a predictor trained on {asked}-nt sequences.")
        return gan_length, ""
    if length is not None:
        check_trained_length(trained, length, how=from_option + " {asked} differs", fix=f"leave {from_option} out to "
                             "design at {n} nt, or train a predictor on {asked}-nt sequences.")
        return length, ""
    if len(set(trained.values())) > 1:
        raise GengenError("the predictors were trained on different sequence lengths ("
                          + ", ".join(f"{k}: {v} nt" for k, v in trained.items())
                          + "); design needs predictors of one length.")
    name, n = next(iter(trained.items()))
    return n, f"design length {n} nt, the length predictor {name!r} was trained on"


def objective_inputs(specs: list[str] | None) -> list[str]:
    """The files or model names ``--objective`` specs read (for :func:`gengen.runtime.plan_outputs`)."""
    return [parse_objective(s).source for s in specs or []]
