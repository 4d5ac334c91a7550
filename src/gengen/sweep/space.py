"""Search spaces: which recipe fields a sweep varies, and over which values.

A space maps parameter names (the pipeline's option names, e.g. ``lr``, ``batch_size``, ``latent``)
to one of three things, written the same way in a TOML file and in Python:

- a list, ``batch_size = [50, 100, 128, 200]``: these values (a categorical choice);
- a range, ``lr = {low = 1e-4, high = 3e-3, log = true}``, optionally with ``step`` (a grid
  ``low, low + step, ..., high``; integer parameters without a step take every integer);
- a single value, ``epochs = 50``: fixed for every trial.

Every value is checked against the parameter's type and bounds when the space is built, so a typo
or an impossible value fails in one line before any training.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gengen.errors import GengenError

MAX_GRID_AXIS = 1000  # values one grid axis takes (each is a choice optuna stores with every trial)
MAX_GRID_LIST = 1_000_000  # points SearchSpace.grid() builds as a list


@dataclass(frozen=True)
class Param:
    """One tunable recipe field: its sweep name, the recipe attribute, type and allowed values."""

    name: str
    attr: str
    kind: str  # "int" | "float" | "bool" | "str"
    low: float | None = None  # inclusive lower bound
    low_open: bool = False  # True: the bound itself is excluded
    high: float | None = None
    high_open: bool = False
    choices: tuple = ()
    help: str = ""
    # a sanity bound on an open-ended number (epochs, widths, rates): far above any sensible value, it
    # stops a typo (``epochs = 1e9``, ``hidden = 1e12``) from becoming a trial that never ends or an
    # allocation that cannot succeed, and is said so in the error
    most: float | None = None

    def check(self, value: Any, where: str = "") -> Any:
        """The value converted to this parameter's type; a one-line error if it is not allowed."""
        at = f"{where}: " if where else ""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise GengenError(f"{at}{self.name} takes true or false, got {value!r}.")
            return value
        if self.kind == "str":
            if value not in self.choices:
                raise GengenError(f"{at}{self.name} must be one of {', '.join(map(str, self.choices))}; got {value!r}.")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GengenError(f"{at}{self.name} takes a number, got {value!r}.")
        if isinstance(value, float) and not math.isfinite(value):  # TOML's inf and nan
            raise GengenError(f"{at}{self.name} must be a finite number, got {value!r}.")
        if self.most is not None and value > self.most:  # before any conversion: 10**400 too
            raise GengenError(f"{at}{self.name} must be at most {self.most:,g} (far above any useful value: a "
                              f"typo?), got {_big(value)}.")
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise GengenError(f"{at}{self.name} takes whole numbers, got {value!r}.")
            value = int(value)
        else:
            value = float(value)
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise GengenError(f"{at}{self.name} must be {'>' if self.low_open else '>='} {self.low:g}, got {value!r}.")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise GengenError(f"{at}{self.name} must be {'<' if self.high_open else '<='} {self.high:g}, got {value!r}.")
        return value


@dataclass(frozen=True)
class Dimension:
    """How one parameter varies: ``values`` (a list), or a ``low``..``high`` range (``log``, ``step``)."""

    param: Param
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def is_range(self) -> bool:
        return self.values is None

    def size(self) -> int | None:
        """How many values a discrete dimension has, counted from its bounds (never listed: an integer
        range 1..10^12 is counted, not built); ``None`` for a continuous range."""
        if not self.is_range:
            return len(self.values)
        if self.step is not None:
            return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        if self.param.kind == "int" and not self.log:
            return int(self.high) - int(self.low) + 1
        return None

    def value(self, i: int) -> Any:
        """The ``i``-th value of a discrete dimension, in order."""
        if not self.is_range:
            return self.values[i]
        if self.step is None:
            return int(self.low) + i
        v = self.low + i * self.step
        return int(round(v)) if self.param.kind == "int" else float(round(v, 12))

    def grid(self) -> list | None:
        """Every value of a discrete dimension, in order; ``None`` for a continuous range (or one with
        more values than a grid axis takes, :data:`MAX_GRID_AXIS`)."""
        n = self.size()
        if n is None or n > MAX_GRID_AXIS:
            return None
        return [self.value(i) for i in range(n)]

    def distribution(self, grid_mode: bool):
        """The optuna distribution this dimension is suggested from (categorical in grid mode)."""
        import optuna

        values = self.grid() if grid_mode else None
        if values is not None or not self.is_range:
            return optuna.distributions.CategoricalDistribution(values if values is not None else list(self.values))
        if self.param.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log,
                                                        step=int(self.step or 1))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> str:
        if not self.is_range:
            return f"{self.name} in [{', '.join(map(_fmt, self.values))}]"
        how = "log" if self.log else "linear"
        step = f", step {_fmt(self.step)}" if self.step is not None else ""
        return f"{self.name} in {_fmt(self.low)}..{_fmt(self.high)} ({how}{step})"

    def to_json(self) -> Any:
        if not self.is_range:
            return list(self.values)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class SearchSpace:
    """A pipeline's swept dimensions and fixed values; ``name`` is the built-in or file it came from."""

    pipeline: str
    dimensions: dict[str, Dimension]
    fixed: dict[str, Any] = field(default_factory=dict)
    name: str = "custom"

    def is_discrete(self) -> bool:
        """Every dimension is a list or a stepped / integer range of at most :data:`MAX_GRID_AXIS` values."""
        return all(d.grid() is not None for d in self.dimensions.values())

    def check_grid(self) -> None:
        """A one-line error unless the space can be a grid (see :meth:`is_discrete`)."""
        bad = [n for n, d in self.dimensions.items() if d.size() is None]
        if bad:
            raise GengenError(
                f"grid sampling needs discrete values, but {', '.join(bad)} {'is a' if len(bad) == 1 else 'are'} "
                "continuous range(s): give a list or a step, or use --sampler tpe."
            )
        wide = [f"{n} ({d.size():,} values)" for n, d in self.dimensions.items() if d.size() > MAX_GRID_AXIS]
        if wide:
            raise GengenError(f"a grid axis takes at most {MAX_GRID_AXIS:,} values, but {', '.join(wide)} has more: "
                              "give a list or a wider step, or use --sampler tpe / random.")

    def grid_size(self) -> int | None:
        """Points of the grid, counted from its axes (the grid itself is never built); ``None`` when the
        space cannot be a grid."""
        if not self.is_discrete():
            return None
        return math.prod(d.size() for d in self.dimensions.values())

    def point(self, index: int) -> dict[str, Any]:
        """The ``index``-th grid point in the order written (the last name varies fastest)."""
        values = {}
        for name, dim in reversed(self.dimensions.items()):
            index, i = divmod(index, dim.size())
            values[name] = dim.value(i)
        return {name: values[name] for name in self.dimensions}

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of a fully discrete space, in the order written (last name varies fastest).
        Sweeps never call this (they take points one by one, :meth:`point`); a grid of more than
        :data:`MAX_GRID_LIST` points is refused."""
        self.check_grid()
        size = self.grid_size()
        if size > MAX_GRID_LIST:
            raise GengenError(f"the grid has {size:,} points, too many to list; take points one by one (point(i)).")
        names = list(self.dimensions)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.dimensions[n].grid() for n in names))]

    def to_json(self) -> dict:
        """Canonical description, stored with a study so every worker checks it runs the same space."""
        return {"dimensions": {n: d.to_json() for n, d in self.dimensions.items()}, "fixed": dict(self.fixed)}

    def fingerprint(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def describe(self) -> str:
        parts = [d.describe() for d in self.dimensions.values()]
        parts += [f"{k} = {_fmt(v)}" for k, v in self.fixed.items()]
        return "; ".join(parts)


def _big(v: int | float) -> str:
    """A number for an error line, however large (``f"{10**400:g}"`` overflows)."""
    if isinstance(v, int) and len(str(abs(v))) > 15:
        return f"a {len(str(abs(v)))}-digit number"
    return f"{v:.6g}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def build_space(pipeline: str, spec: dict[str, Any], params: dict[str, Param], *, name: str = "custom") -> SearchSpace:
    """Validate a ``{name: list | range table | value}`` mapping against a pipeline's parameters."""
    if not isinstance(spec, dict) or not spec:
        raise GengenError(f"the search space {name!r} is empty: give at least one parameter "
                          f"({', '.join(params)}).")
    unknown = [k for k in spec if k not in params]
    if unknown:
        raise GengenError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} in the search space {name!r} for {pipeline}; "
            f"valid names: {', '.join(params)}."
        )
    dims: dict[str, Dimension] = {}
    fixed: dict[str, Any] = {}
    for key, raw in spec.items():
        p = params[key]
        where = f"{name}: {key}"
        if isinstance(raw, list):
            if not raw:
                raise GengenError(f"{where} is an empty list; give at least one value.")
            vals = [p.check(v, name) for v in raw]
            if len(set(map(repr, vals))) != len(vals):
                raise GengenError(f"{where} lists a value twice: {raw}.")
            if len(vals) == 1:
                fixed[key] = vals[0]
            else:
                dims[key] = Dimension(p, values=tuple(vals))
        elif isinstance(raw, dict):
            dims_or_fixed = _range(p, raw, where, name)
            if isinstance(dims_or_fixed, Dimension):
                dims[key] = dims_or_fixed
            else:
                fixed[key] = dims_or_fixed
        else:
            fixed[key] = p.check(raw, name)
    if not dims:
        raise GengenError(f"the search space {name!r} varies nothing (only fixed values): give a list or a range "
                          "for at least one parameter.")
    return SearchSpace(pipeline, dims, fixed, name)


def _range(p: Param, raw: dict, where: str, name: str):
    extra = [k for k in raw if k not in ("low", "high", "log", "step")]
    if extra:
        raise GengenError(f"{where}: a range takes low, high and optionally log and step; unknown key(s) "
                          f"{', '.join(extra)}.")
    if p.kind in ("bool", "str"):
        raise GengenError(f"{where}: {p.name} takes a list of values, not a range.")
    if "low" not in raw or "high" not in raw:
        raise GengenError(f"{where}: a range needs both low and high.")
    low, high = p.check(raw["low"], name), p.check(raw["high"], name)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise GengenError(f"{where}: log must be true or false, got {log!r}.")
    if low > high:
        raise GengenError(f"{where}: the range {low:g}..{high:g} is empty (low is above high).")
    if log and low <= 0:
        raise GengenError(f"{where}: a log range needs low > 0, got {low:g}.")
    step = raw.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:  # nan too
            raise GengenError(f"{where}: step must be a positive number, got {step!r}.")
        if log:
            raise GengenError(f"{where}: a range takes log or step, not both.")
        if step > high - low and high > low:  # inf and 10**400 too
            raise GengenError(f"{where}: step {_big(step)} is wider than the range {low:g}..{high:g}.")
        if p.kind == "int" and isinstance(step, float) and not step.is_integer():
            raise GengenError(f"{where}: {p.name} is a whole number, so its step must be too; got {step!r}.")
        step = int(step) if p.kind == "int" else float(step)
    if low == high:
        return low
    return Dimension(p, low=low, high=high, log=log, step=step)


def read_space_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML space file into a ``{name: spec}`` mapping (a ``[params]`` table is also accepted)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise GengenError(f"space file {str(path)!r} does not exist.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GengenError(f"cannot read the space file {str(path)!r}: {exc}.") from None
    if set(data) == {"params"} and isinstance(data["params"], dict):
        data = data["params"]
    return data


def resolve_space(pipeline: str, space: str | Path | dict | None, params: dict[str, Param],
                  *, builtins: dict[str, dict]) -> SearchSpace:
    """A built-in space by name (``None``: ``default``), a TOML file path, or a mapping."""
    if space is None:
        space = "default"
    if isinstance(space, dict):
        return build_space(pipeline, space, params, name="custom")
    text = str(space)
    if text in builtins:
        return build_space(pipeline, builtins[text], params, name=text)
    if text.endswith(".toml") or Path(text).exists():
        return build_space(pipeline, read_space_file(text), params, name=Path(text).name)
    raise GengenError(
        f"unknown search space {text!r} for {pipeline}: give a TOML file or a built-in "
        f"({', '.join(builtins)})."
    )

