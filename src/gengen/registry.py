"""Named extension points: the GGAN comparison's methods, the VAE comparison's methods and the kinds of
design objective.

A :class:`Registry` maps a method name to what runs it, a label for tables and figures and whether
it is in the default selection; the method lists, labels, CLI help and "unknown method" errors all
come from it, so a new method is one ``register`` call (from gengen or from user code):

>>> from gengen.ggan import register_baseline
>>> register_baseline("half-mean", lambda Xtr, Ytr, Xte, **_: 0.5 * Ytr.mean(0) + 0 * Xte[:, :1],
...                   label="half the mean")

This module imports nothing heavy (``gengen --help`` reads the names from it); a built-in method's
function is named as ``"module:attribute"`` and imported when first used.

Objective kinds (:data:`OBJECTIVE_KINDS`) are the same idea with two functions each: ``parse`` checks
an ``--objective KIND=SOURCE,...`` spec without reading anything, ``build`` loads it into an
:class:`~gengen.dna.designer.objectives.Objective` (see :func:`gengen.dna.designer.objectives.register_objective_kind`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gengen.errors import GengenError

__all__ = ["GGAN_METHODS", "OBJECTIVE_KINDS", "VAE_COMPARISONS", "Method", "ObjectiveKind", "ObjectiveKinds", "Registry"]


@dataclass(frozen=True)
class Method:
    """One registered method: ``name``, ``label``, what runs it (``run``: a callable or a
    ``"module:attribute"`` path), its ``kind`` (what the registry's user does with it) and whether
    it is in the default selection."""

    name: str
    label: str
    run: Callable | str
    kind: str = ""
    default: bool = True

    def function(self) -> Callable:
        """The callable (a ``"module:attribute"`` path is imported on first use)."""
        return _imported(self.run)


def _imported(run: Callable | str) -> Callable:
    """``run`` itself, or the attribute a ``"module:attribute"`` path names (imported now)."""
    if callable(run):
        return run
    module, _, attr = run.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry:
    """An ordered ``{name: Method}`` of one kind of method (``what`` names it in errors and help)."""

    def __init__(self, what: str, option: str = "--methods"):
        self.what, self.option = what, option
        self._methods: dict[str, Method] = {}

    def register(self, name: str, run: Callable | str, *, label: str | None = None, kind: str = "",
                 default: bool = True, replace: bool = False) -> Method:
        """Add a method (``replace=True`` to override one of the same name).

        Parameters
        ----------
        name : what users type (``--methods NAME``); letters, digits, '-' and '_'.
        run : the callable, or its ``"module:attribute"`` path.
        label : the name in tables and figures (default: ``name``).
        kind : how the registry's user runs it (e.g. ``"baseline"`` or ``"network"`` for GGAN's).
        default : in the default selection.
        replace : allow replacing a method of the same name.

        Returns
        -------
        The registered :class:`Method`.
        """
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise GengenError(f"{self.what} name {name!r}: use letters, digits, '-' and '_'.")
        if name in self._methods and not replace:
            raise GengenError(f"a {self.what} named {name!r} is already registered (pass replace=True to override it).")
        method = Method(name, label or name, run, kind, default)
        self._methods[name] = method
        return method

    def unregister(self, name: str) -> None:
        """Remove a method (no error when absent)."""
        self._methods.pop(name, None)

    def names(self, *, default_only: bool = False) -> tuple[str, ...]:
        """The registered names, in registration order (``default_only``: the default selection)."""
        return tuple(n for n, m in self._methods.items() if m.default or not default_only)

    def label(self, name: str) -> str:
        """The method's label (the name itself for an unknown one)."""
        method = self._methods.get(name)
        return method.label if method is not None else name

    def __getitem__(self, name: str) -> Method:
        try:
            return self._methods[name]
        except KeyError:
            raise GengenError(f"unknown {self.what} {name!r}; choose from {', '.join(self._methods)}.") from None

    def check(self, names: Any) -> tuple[str, ...]:
        """``names`` as a tuple, refusing an empty selection or unknown names (one line listing the choices)."""
        names = tuple(names)
        if not names:
            raise GengenError(f"no {self.what} chosen; choose from {', '.join(self._methods)}.")
        unknown = [n for n in names if n not in self._methods]
        if unknown:
            raise GengenError(f"unknown {self.what}(s) {', '.join(unknown)}; choose from {', '.join(self._methods)}.")
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._methods)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._methods)})"


# ------------------------------------------------------------------------------------------------ GGAN
GGAN_METHODS = Registry("method")
"""``ggan-eval`` / :func:`gengen.ggan.evaluate` methods. ``kind="network"``: ``run(recipe) -> GGANRecipe``
gives the recipe of a network trained in each fold; ``kind="baseline"``: ``run(Xtr, Ytr, Xte, *, seed,
info) -> Ŷte`` on z-scored arrays (:mod:`gengen.ggan.baselines`)."""
for _name, _label, _run, _kind, _default in (
    ("ggan", "GGAN", "gengen.ggan.evaluate:ggan_recipe", "network", True),
    ("ggan-plain", "GGAN (plain MLP)", "gengen.ggan.evaluate:plain_recipe", "network", False),
    ("dgex", "D-GEX", "gengen.ggan.evaluate:dgex_recipe", "network", True),
    ("linear", "linear (LS)", "gengen.ggan.baselines:linear", "baseline", True),
    ("ridge", "ridge (LR-L2)", "gengen.ggan.baselines:ridge", "baseline", True),
    ("lasso", "lasso (LR-L1)", "gengen.ggan.baselines:lasso", "baseline", True),
    ("knn", "KNN-GE", "gengen.ggan.baselines:knn", "baseline", True),
    ("mean", "mean predictor", "gengen.ggan.baselines:mean_predictor", "baseline", True),
):
    GGAN_METHODS.register(_name, _run, label=_label, kind=_kind, default=_default)

# ------------------------------------------------------------------------------------------------ VAE
VAE_COMPARISONS = Registry("comparison method")
"""``vae-compare`` / :func:`gengen.vae.compare` methods. ``kind="vae"``: the VAE itself; ``kind="scaled"``:
``run(x_fit, k, *, seed, quiet) -> fitted`` on the VAE's [0, 1]-scaled genes, where ``fitted.transform(X)``
embeds and ``fitted.reconstruct(codes)`` (or ``inverse_transform``) maps back, for the held-out BCE;
``kind="matrix"``: ``run(X, k, *, seed) -> embedding`` of the whole input matrix (no held-out BCE)."""
for _name, _label, _run, _kind in (
    ("vae", "VAE", "gengen.vae.core:VAEModel", "vae"),
    ("pca", "PCA", "gengen.vae.compare:fit_pca", "scaled"),
    ("pca-all", "PCA of all genes", "gengen.vae.compare:pca_of_matrix", "matrix"),
    ("nmf", "NMF", "gengen.vae.compare:fit_nmf", "scaled"),
):
    VAE_COMPARISONS.register(_name, _run, label=_label, kind=_kind)

# ------------------------------------------------------------------------------------------------ DNA design
@dataclass(frozen=True)
class ObjectiveKind:
    """One kind of design objective: ``name`` is the spec key that names its source (``model=FILE``),
    ``label`` what that source is (``FILE.pt``: help and errors), ``parse(spec) -> spec`` checks a parsed
    :class:`~gengen.dna.designer.objectives.ObjectiveSpec` (its own keys, the files it reads) without reading
    anything, ``build(spec, context) -> Objective`` loads it, and the optional ``length(spec) -> (name,
    length) | None`` reads the sequence length its model was trained on without loading it. Each
    function is a callable or its ``"module:attribute"`` path."""

    name: str
    label: str
    parse: Callable | str
    build: Callable | str
    length: Callable | str | None = None
    help: str = ""
    default: bool = True

    def parser(self) -> Callable:
        """``parse``, imported on first use."""
        return _imported(self.parse)

    def builder(self) -> Callable:
        """``build``, imported on first use."""
        return _imported(self.build)

    def trained_length(self) -> Callable | None:
        """``length``, imported on first use (None when the kind has none)."""
        return None if self.length is None else _imported(self.length)


class ObjectiveKinds(Registry):
    """The ``--objective`` kinds, ``{name: ObjectiveKind}`` in registration order."""

    def __init__(self):
        super().__init__("objective kind", option="--objective")

    def register(self, name: str, parse: Callable | str, build: Callable | str | None = None, *,  # type: ignore[override]
                 label: str | None = None, length: Callable | str | None = None, help: str = "",  # noqa: A002
                 replace: bool = False) -> ObjectiveKind:
        """Add an objective kind (``replace=True`` to override one of the same name).

        Parameters
        ----------
        name : the spec key users type (``name=SOURCE``); letters, digits, '-' and '_'.
        parse : ``parse(spec) -> spec``, or its ``"module:attribute"`` path; a module path alone
            (no ``:``) names a module holding ``parse``, ``build`` and optionally ``trained_length``.
        build : ``build(spec, context) -> Objective`` (or its path; default: from ``parse``'s module).
        label : what the source is, for help and errors (default: ``SOURCE``).
        length : ``length(spec) -> (name, length) | None`` (or its path; default: the module's
            ``trained_length`` when ``parse`` names a module and it has one).
        help : one sentence for ``--help``.
        replace : allow replacing a kind of the same name.

        Returns
        -------
        The registered :class:`ObjectiveKind`.
        """
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise GengenError(f"{self.what} name {name!r}: use letters, digits, '-' and '_'.")
        if name in self._methods and not replace:
            raise GengenError(f"a {self.what} named {name!r} is already registered (pass replace=True to override it).")
        if isinstance(parse, str) and ":" not in parse:  # a module with parse/build/trained_length
            module = parse
            parse, build = f"{module}:parse", build or f"{module}:build"
            length = length or _LazyOptional(f"{module}:trained_length")
        if build is None:
            raise GengenError(f"{self.what} {name!r}: give build= (or a module path holding parse and build).")
        kind = ObjectiveKind(name, label or "SOURCE", parse, build, length, help)
        self._methods[name] = kind  # type: ignore[assignment]
        return kind

    def usage(self) -> str:
        """``motif=FILE_OR_JASPAR_ID, predictor=NAME_OR_DIR, ...``: the kinds as users type them."""
        return ", ".join(f"{k}={self[k].label}" for k in self.names())


class _LazyOptional:
    """A module's optional function, looked up when first called (None when the module has none)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, _, attr = self.path.partition(":")
        function = getattr(importlib.import_module(module), attr, None)
        return None if function is None else function(*args, **kwargs)


OBJECTIVE_KINDS = ObjectiveKinds()
"""``dna-design`` / ``dna-score`` / :func:`gengen.dna.designer.objectives.load_objectives` objective kinds: an
``--objective KIND=SOURCE,...`` spec names one; each is a module of :mod:`gengen.dna.designer.objective_kinds`
(``parse``, ``build``, ``trained_length``). A new kind is one new file and one line here, or a
:func:`gengen.dna.designer.objectives.register_objective_kind` call from user code."""
for _name, _label, _help in (
    ("motif", "FILE_OR_JASPAR_ID", "a PWM (read like --motif), best match over positions and both strands"),
    ("predictor", "NAME_OR_DIR", "a dna-train-predictor model (folder or store name)"),
    ("model", "FILE.pt", "a TorchScript model (torch.jit.save); output=K, layout=NLC"),
    ("python", "FILE.py:FACTORY", "your Python factory returning an nn.Module (runs your code); its own key=value args"),
):
    OBJECTIVE_KINDS.register(_name, f"gengen.dna.designer.objective_kinds.{_name}", label=_label, help=_help)
del _name, _label, _run, _kind, _default, _help
