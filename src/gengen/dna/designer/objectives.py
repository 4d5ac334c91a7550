"""What a design is pushed toward: one or several objectives, each a model with a target and a weight.

An objective is a model mapping one-hot ``(N, 4, L)`` (A, C, G, T) to one number per sequence with
a target (``"max"``, ``"min"`` or a value to hit) and a weight. ``dna-design --objective SPEC`` names
one as ``KIND=SOURCE[,key=value...]``: the kinds are a registry
(:data:`gengen.registry.OBJECTIVE_KINDS`; one module each in :mod:`gengen.dna.designer.objective_kinds`):
``motif=FILE_OR_JASPAR_ID`` (a PWM), ``predictor=NAME_OR_DIR`` (a ``dna-train-predictor`` CNN),
``model=FILE.pt`` (any TorchScript model) and ``python=FILE.py:FACTORY`` (the user's own code
returning an ``nn.Module``), each with ``target=max|min|VALUE`` and ``weight=W``. A kind is a
``parse`` (check the spec, read nothing) and ``build`` (load it) pair; :func:`register_objective_kind`
adds one.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from gengen.errors import GengenError

if TYPE_CHECKING:
    from gengen.io.motifs import PWM

CALIBRATION_SEQUENCES = 2048
CALIBRATION_BASES = 2**24  # at most this many random bases: sequences above 8,192 nt calibrate on fewer
CALIBRATION_MIN_SEQUENCES = 256
COMMON_KEYS = ("target", "weight")  # every kind's; the rest of a spec is the kind's own


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


# --------------------------------------------------------------------------------------------------
# Specs: what the user typed, parsed before anything is read


@dataclass
class ObjectiveSpec:
    """A parsed ``--objective`` value: its ``kind`` (a registered objective kind) and ``source``, target,
    weight, the kind's own ``options`` (e.g. ``output`` and ``layout`` of a ``model``), the ``inputs`` it
    reads (set by the kind's ``parse``) and the ``text`` it was parsed from. :func:`parse_objective`
    makes it; :func:`load_objectives` builds it."""

    kind: str
    source: str
    target: str | float = "max"
    weight: float = 1.0
    options: dict[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    text: str = ""

    @property
    def where(self) -> str:
        """How errors name the spec: ``--objective 'model=m.pt,output=3'``."""
        return f"--objective {self.text or f'{self.kind}={self.source}'!r}"

    def refuse_options(self, allowed: tuple[str, ...] = ()) -> None:
        """A one-line error for any of the kind's options that is not in ``allowed`` (what a kind's
        ``parse`` calls first)."""
        unknown = [k for k in self.options if k not in allowed]
        if unknown:
            keys = ", ".join((self.kind, *allowed, *COMMON_KEYS))
            raise GengenError(f"{self.where}: unknown key {unknown[0]!r} for {self.kind}=; the keys are {keys}.")


def parse_objective(spec: str) -> ObjectiveSpec:
    """Parse ``predictor=NAME,target=min,weight=0.5`` (or ``motif=MA0139.2,...``, ``model=m.pt,output=2``,
    ``python=mine.py:make,channels=64``) into an :class:`ObjectiveSpec`, reading nothing.

    Parameters
    ----------
    spec : comma-separated ``key=value`` pairs: exactly one objective kind (``motif``, ``predictor``,
        ``model``, ``python`` or a registered one) naming the source, ``target`` (``max``, ``min`` or
        a number; default ``max``), ``weight`` (a positive number; default 1) and the kind's own keys.

    Returns
    -------
    The parsed spec, checked by its kind; any mistake is a one-line :class:`GengenError` quoting the spec.
    """
    from gengen.registry import OBJECTIVE_KINDS

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
        key, value = key.strip(), value.strip()
        if key.lower() in (*OBJECTIVE_KINDS.names(), *COMMON_KEYS):
            key = key.lower()
        if not sep or not key:
            raise GengenError(f"{where}: {part!r} is not key=value (keys: {', '.join(OBJECTIVE_KINDS.names())}, "
                              f"{', '.join(COMMON_KEYS)} and the kind's own).")
        if key in values:
            raise GengenError(f"{where}: {key} is given twice.")
        if not value:
            raise GengenError(f"{where}: {key}= has no value.")
        values[key] = value
    kinds = [k for k in values if k in OBJECTIVE_KINDS]
    options = {k: v for k, v in values.items() if k not in kinds and k not in COMMON_KEYS}
    if not kinds and options:
        raise GengenError(f"{where}: unknown key {next(iter(options))!r} without an objective kind; give exactly one "
                          f"of {OBJECTIVE_KINDS.usage()}, then {', '.join(COMMON_KEYS)} and the kind's own keys.")
    if len(kinds) != 1:
        raise GengenError(f"{where}: give exactly one of {OBJECTIVE_KINDS.usage()}.")
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
    kind = kinds[0]
    parsed = ObjectiveSpec(kind, values[kind], target, weight, options, (values[kind],), text)
    return OBJECTIVE_KINDS[kind].parser()(parsed)


def register_objective_kind(name: str, parse: Callable | str, build: Callable | str | None = None, *,
                            label: str | None = None, length: Callable | str | None = None, help: str = "",  # noqa: A002
                            replace: bool = False) -> None:
    """Add an objective kind, so ``--objective NAME=SOURCE,...`` (and :func:`load_objectives`) know it.

    >>> def parse(spec):              # check the spec's own keys; read nothing
    ...     spec.refuse_options(("scale",))
    ...     return spec
    >>> def build(spec, context):     # load it
    ...     return Objective(MyModel(spec.source, float(spec.options.get("scale", 1))), spec.target,
    ...                      spec.weight, name=spec.source)
    >>> register_objective_kind("mine", parse, build, label="FILE")

    Parameters
    ----------
    name : the spec key naming the source (``name=SOURCE``).
    parse : ``parse(spec: ObjectiveSpec) -> ObjectiveSpec``: check ``spec.options`` (its own keys; call
        :meth:`ObjectiveSpec.refuse_options`) and set ``spec.inputs`` (the files it reads), raising a
        :class:`GengenError` for a mistake; or a module path holding ``parse``, ``build`` (and
        optionally ``trained_length``).
    build : ``build(spec, context: ObjectiveContext) -> Objective``.
    label : what the source is, for help and errors.
    length : ``length(spec) -> (name, length) | None``: the sequence length the source was trained on,
        read without loading it (design then takes it as its default length and refuses another).
    help : one sentence for ``--help``.
    replace : allow replacing a kind of the same name.

    Returns
    -------
    None; the kind is in :data:`gengen.registry.OBJECTIVE_KINDS`.
    """
    from gengen.registry import OBJECTIVE_KINDS

    OBJECTIVE_KINDS.register(name, parse, build, label=label, length=length, help=help, replace=replace)


@dataclass
class ObjectiveContext:
    """How objectives are built: where (``device``), whether to say what was read (``quiet``), the
    sequence length they will score when known (``length``: each objective is checked on it) and
    whether their gradients are needed (``gradient``: a gradient design), and how motif files are read."""

    device: str | torch.device = "cpu"
    quiet: bool = True
    length: int | None = None
    gradient: bool = False
    motif_format: str | None = None
    motif_name: str | None = None
    pseudocount: float = 1.0


# --------------------------------------------------------------------------------------------------
# Objectives


@dataclass
class Objective:
    """One objective of a design: ``predictor`` (one-hot ``(N, 4, L)`` -> ``(N,)``), ``target``, ``weight``.

    ``center`` and ``scale`` standardise its scores (set by :func:`calibrate`). What an objective
    needs to know about its model is asked through its methods (:meth:`evaluate`, :meth:`exact`,
    :meth:`substitution_scores`, :meth:`check_length`, :attr:`pwm`), never by testing the model's type
    elsewhere: an objective over a :class:`~gengen.dna.predictor.predictors.PWMPredictor` is a
    :class:`~gengen.dna.designer.objective_kinds.motif.MotifObjective` (made by ``Objective(...)`` itself), which
    scores a PWM its own, faster way.
    """

    predictor: nn.Module
    target: str | float = "max"
    weight: float = 1.0
    name: str = "objective"
    center: float = 0.0
    scale: float = 1.0

    # memory per base of a design step, in float32 copies of the one-hot batch (the model's activations)
    activation_copies = 8
    # whether substitution_scores is cheaper than scoring every substituted sequence (more designs per chunk)
    incremental = False
    # whether all_substitutions scores every single substitution its own way (else it returns None)
    own_substitutions = False

    # (does it apply to this model, the subclass): registered by kinds with their own way of scoring
    # (:meth:`specialise`; the motif kind's PWM objective), so the base class imports no kind
    _specialised: ClassVar[list[tuple[Callable[[Any], bool], type]]] = []

    @staticmethod
    def specialise(applies: Callable[[Any], bool]) -> Callable[[type], type]:
        """Class decorator of an objective kind's subclass: ``Objective(model, ...)`` builds it when
        ``applies(model)``; the kind's module is imported with :mod:`gengen.dna`.

        Parameters
        ----------
        applies : called with the model; True when the subclass scores it.

        Returns
        -------
        The decorator (it returns the class unchanged).
        """
        def register(subclass: type) -> type:
            Objective._specialised.append((applies, subclass))
            return subclass

        return register

    def __new__(cls, predictor: nn.Module | None = None, *args: Any, **kwargs: Any):
        if cls is Objective:
            cls = next((special for applies, special in Objective._specialised if applies(predictor)), cls)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        self.target = parse_target(self.target)
        if not (math.isfinite(float(self.weight)) and self.weight > 0):
            raise GengenError(f"objective {self.name!r}: the weight must be a positive number, got {self.weight}.")

    @property
    def pwm(self) -> PWM | None:
        """The motif this objective scans (its hits annotate designs); None for any other model."""
        return None

    @property
    def is_value(self) -> bool:
        return not isinstance(self.target, str)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score the loss sees, exact score) of ``x`` ``(N, 4, L)``; both ``(N,)``. A model gives its
        output for both (a PWM's loss sees a smooth maximum over windows)."""
        out = self.predictor(x)
        return out, out

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the reported score of one-hot ``x``: the model's output (a PWM's best window)."""
        return self.predictor(x)

    def substitution_scores(self, codes: torch.Tensor) -> torch.Tensor:
        """``(m, L, 3)`` exact scores of every single-base substitution of codes ``(m, L)`` (substitution
        ``k`` at position ``p`` puts base ``(c_p + k + 1) % 4``), a bounded batch at a time."""
        return score_substitutions(self.predictor, codes)

    def all_substitutions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Exact scores of one-hot ``x`` ``(N, 4, L)`` and of every single substitution (``(N,)``, and
        ``(N, 4, L)`` with base ``b`` written at position ``i``; at the observed base the sequence's own
        score) when this objective has a faster way than scoring each substituted sequence; None when
        it has not (in-silico mutagenesis then scores each one, through tangermeme). A model with a
        ``substitution_outputs(x)`` method returning that pair (gengen's CNN) gets such an objective."""
        return None

    def check_length(self, length: int, *, gradient: bool = False) -> None:
        """Refuse (one line) a sequence length this objective cannot score, and with ``gradient`` a model
        whose score has no gradient for design to follow. A plain model: nothing to check."""

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
        obj = Objective(objectives, "max" if target is None else target)
        obj.name = obj.pwm.name if obj.pwm is not None else type(objectives).__name__
        return [obj]
    out = [objectives] if isinstance(objectives, Objective) else list(objectives)
    if not out or not all(isinstance(o, Objective) for o in out):
        raise GengenError("design needs a predictor, an Objective or a list of Objectives.")
    if target is not None:
        raise GengenError("give each Objective its own target instead of target=.")
    return out


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
    The random sequences' exact scores ``(n, K)`` (the reference cloud of the trade-off figure). An
    objective that gives NaN or infinity for any of them is a one-line error.
    """
    from gengen.io.sequences import codes_to_one_hot

    n = min(n, max(CALIBRATION_MIN_SEQUENCES, CALIBRATION_BASES // max(length, 1)))  # long designs: fewer
    codes = random_codes(n, length, seed)
    rows = max(1, 2**22 // max(length, 1))  # one-hot a few million bases at a time (one batch up to 2,048 nt)
    scores = np.concatenate([exact_scores(objectives, codes_to_one_hot(codes[i : i + rows], device=device))
                             for i in range(0, n, rows)])
    for obj, col in zip(objectives, scores.T):
        bad = int((~np.isfinite(col)).sum())
        if bad:
            raise GengenError(f"objective {obj.name!r} gives NaN or infinite scores for {bad} of {len(col)} random "
                              f"sequences of {length} nt; it must give a finite number for every sequence (check the "
                              "model's weights and its output for one-hot input).")
        sd = float(np.std(col, ddof=1)) if len(col) > 1 else 0.0
        obj.center = float(np.mean(col))
        obj.scale = sd if math.isfinite(sd) and sd > 1e-12 else 1.0  # a constant predictor: raw units
    return scores


# --------------------------------------------------------------------------------------------------
# Loading what the user named


def read_motif(source: str, context: ObjectiveContext) -> PWM:
    """The motif ``source`` names (a file or a JASPAR id), read as ``context`` says, announced on stderr."""
    from gengen.io.motifs import load_motif
    from gengen.runtime import log

    pwm = load_motif(source, fmt=context.motif_format, name=context.motif_name, pseudocount=context.pseudocount,
                     quiet=context.quiet)
    log(f"motif {pwm.name}: {pwm.length} bp, consensus {pwm.consensus}, best possible score {pwm.max_score:.3f}"
        + (f" (read as {pwm.layout})" if pwm.layout else ""), context.quiet)
    return pwm


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
    length: int | None = None,
    gradient: bool = False,
) -> tuple[list[Objective], PWM | None]:
    """The objectives of ``dna-design`` / ``dna-generate`` / ``dna-score``: each ``--objective`` spec, or
    the one-objective shorthand (``predictor`` with ``target``, else ``motif``; a motif given with a
    predictor only annotates the designs with its best hits).

    Parameters
    ----------
    specs : ``--objective`` values (see :func:`parse_objective`); exclusive with the shorthand. Every
        spec is parsed before any is loaded.
    motif, predictor, target : the shorthand.
    motif_format, motif_name, pseudocount : how motif files are read (every motif).
    device : where models are loaded.
    quiet : no status lines (each motif is announced with how it was read).
    length : the sequence length they will score, when known: each objective is checked on it now
        (a model by a forward pass), so a length it cannot take is refused before any work.
    gradient : with ``length``, also refuse a model whose score carries no gradient (gradient design).

    Returns
    -------
    (objectives, the motif that annotates predictor-only designs or None).
    """
    from gengen.registry import OBJECTIVE_KINDS

    context = ObjectiveContext(device=device, quiet=quiet, length=length, gradient=gradient,
                               motif_format=motif_format, motif_name=motif_name, pseudocount=pseudocount)
    annotation = None
    if specs:
        if motif or predictor or target != "max":
            raise GengenError("--objective replaces --motif, --predictor and --target: give every objective as "
                              "--objective (e.g. --objective motif=MA0139.2,target=max).")
        parsed = [parse_objective(s) for s in specs]  # all parsed before any is loaded
    else:
        target = parse_target(target)
        if predictor:
            parsed = [ObjectiveSpec("predictor", str(predictor), target, text=f"predictor={predictor}")]
            annotation = read_motif(motif, context) if motif else None
        elif motif:
            parsed = [ObjectiveSpec("motif", str(motif), target, text=f"motif={motif}")]
        else:
            raise GengenError("give --motif (file or JASPAR id), --predictor (a dna-train-predictor model) or "
                              "--objective.")
    out = [OBJECTIVE_KINDS[p.kind].builder()(p, context) for p in parsed]
    if length is not None:
        for o in out:
            o.check_length(length, gradient=gradient)
    return out, annotation


def trained_lengths(predictor: str | None = None, specs: list[str] | None = None) -> dict[str, int]:
    """The sequence length each objective's model was trained on, by name, where its kind can read it
    without loading the model (``dna-train-predictor`` models from their config.json, TorchScript
    archives from their ``gengen.json``), so it is known before anything is loaded. A source that cannot
    be read is left out (loading it says why)."""
    from gengen.registry import OBJECTIVE_KINDS

    parsed = [ObjectiveSpec("predictor", str(predictor))] if predictor else []
    parsed += [parse_objective(s) for s in specs or []]
    out = {}
    for p in parsed:
        reader = OBJECTIVE_KINDS[p.kind].trained_length()
        found = reader(p) if reader is not None else None
        if found:
            out[found[0]] = found[1]
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
    return [path for s in specs or [] for path in parse_objective(s).inputs]


# -------------------------------------------- exact scores of substituted sequences (any model's way)
POSITIONS_PER_CALL = 2**18  # one-hot positions per model call when scoring many sequences (bounded memory)


def _substitutions(codes: torch.Tensor) -> torch.Tensor:
    """``(m * L * 3, L)`` all single-base substitutions of ``codes`` ``(m, L)``, in (row, position, k) order."""
    m, length = codes.shape
    cand = codes[:, None, None, :].expand(-1, length, 3, -1).clone()
    pos = torch.arange(length, device=codes.device)
    cand[:, pos, :, pos] = ((codes[:, :, None] + torch.arange(1, 4, device=codes.device)) % 4).permute(1, 0, 2)
    return cand.reshape(-1, length)


def score_codes(predictor, codes: torch.Tensor, batch: int) -> torch.Tensor:
    """One-hot scores of ``(M, L)`` codes, ``batch`` sequences at a time (bounded memory): a PWM's exact
    best window, else the predictor's output."""
    from gengen.dna.predictor.predictors import exact_score

    eye = torch.eye(4, device=codes.device)
    out = []
    with torch.no_grad():
        for i in range(0, len(codes), batch):
            x = eye[codes[i : i + batch].long()].transpose(1, 2)
            out.append(exact_score(predictor, x))
    return torch.cat(out) if out else torch.zeros(0, device=codes.device)


def score_substitutions(predictor, codes: torch.Tensor) -> torch.Tensor:
    """``(m, L, 3)`` exact scores (see :func:`score_codes`) of every single-base substitution of codes
    ``(m, L)``, a bounded batch of substituted sequences at a time: any model's way
    (:meth:`gengen.dna.designer.objectives.Objective.substitution_scores`)."""
    m, length = codes.shape
    batch = max(1, POSITIONS_PER_CALL // max(length, 1))
    return score_codes(predictor, _substitutions(codes.long()), batch).view(m, length, 3)
