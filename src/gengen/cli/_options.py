"""What gengen's commands share, declared once: option types, recipe options, output names.

- Option types used by many commands (``--device``, ``--seed``, ``--threads``, ``--quiet``,
  ``--format``, ``--genes-in-rows``, ``--layer``, ``--model``, ``--resume`` and the checkpoint intervals), spelled
  and explained the same everywhere.
- :class:`RecipeOptions`: the options that set a trainer's recipe. Their defaults are the recipe
  dataclass's (``VAERecipe``, ``GGANRecipe``, ``GANRecipe``, ``PredictorRecipe``, ``DesignSettings``),
  the recipe is built from them by keyword, and ``--resume`` maps them back to recipe fields through
  the same table, so the command line and the library cannot disagree
  (``tests/test_cli_options.py`` checks every command).
- Output names: :func:`output_stem` / :func:`beside` (a file's name without its data suffixes, and a
  side file next to it) and :func:`require_suffix`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from gengen.errors import GengenError

# ------------------------------------------------------------------------------ shared option types
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda (auto picks a GPU when present).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Random seed; recorded in the outputs.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU threads for torch (default: $GENGEN_THREADS or all cores).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]
GenesInRowsOpt = Annotated[
    bool | None,
    typer.Option(
        "--genes-in-rows/--genes-in-columns",
        help="Force the table orientation (default: detect; samples x genes unless the names say otherwise).",
        show_default=False,
    ),
]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue the unfinished run checkpointed in -o (same data; options left out take the run's).")]
CheckpointEveryOpt = Annotated[int | None, typer.Option(
    "--checkpoint-every", show_default=False,
    help="Checkpoint after every N epochs \\[default: 10, skipped while saves would cost > 5 % of the training time].")]
CheckpointMinutesOpt = Annotated[float | None, typer.Option(
    "--checkpoint-minutes", show_default=False, help="Checkpoint at least every M minutes of training \\[default: 1].")]
LayerOpt = Annotated[str | None, typer.Option(
    "--layer", help="h5ad input: read this layer (e.g. counts, log1p) instead of X; needed when the file has no X.")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="Force the input format (default: from the content, e.g. HiSeqV2.gz is a gzipped TSV): h5ad, csv, tsv, txt, parquet, gct, gctx, series-matrix, archs4.")]


def model_option(help: str) -> Any:  # noqa: A002
    """``--model`` / ``-m``: a model folder or store name (``help`` says which pipeline's, and the default)."""
    return Annotated[str | None, typer.Option("--model", "-m", help=help)]


# ------------------------------------------------------------------------------ option groups
class OptionGroup:
    """Options several commands take together, declared once.

    Decorating a command (:meth:`__call__`) replaces its parameter named ``marker`` by the
    ``declared`` options (in that order, so ``--help`` lists them there) and passes the command,
    under that name, what :meth:`collect` makes of their values.

    Parameters
    ----------
    marker : the command's placeholder parameter.
    declared : option (parameter name) -> its ``Annotated`` type.
    defaults : option -> default.
    make : builds what the command receives from the options' values, by keyword (default: the dict).
    """

    def __init__(self, marker: str, declared: Mapping[str, Any], defaults: Mapping[str, Any],
                 make: Callable[..., Any] | None = None):
        self.marker = marker
        self.declared = dict(declared)
        self.defaults = dict(defaults)
        self.make = make

    def default(self, option: str) -> Any:
        return self.defaults[option]

    def collect(self, values: dict[str, Any]) -> Any:
        """What the command receives for ``values`` (the declared options and, for a recipe, the
        command's own parameters that are recipe fields)."""
        return self.make(**values) if self.make is not None else values

    def own(self) -> tuple[str, ...]:
        """The command's own parameters :meth:`collect` also reads (not removed from its call)."""
        return ()

    def __call__(self, func: Callable) -> Callable:
        sig = inspect.signature(func, eval_str=True)
        params = list(sig.parameters.values())
        at = [p.name for p in params].index(self.marker)
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        added = [inspect.Parameter(name, kind, annotation=annotation, default=self.default(name))
                 for name, annotation in self.declared.items()]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in self.declared}
            values.update({name: kwargs[name] for name in self.own() if name in kwargs})
            return func(*args, **{self.marker: self.collect(values)}, **kwargs)

        command.__signature__ = sig.replace(parameters=params[:at] + added + params[at + 1:])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}  # type: ignore[attr-defined]
        return command


class RecipeOptions(OptionGroup):
    """The command-line options that set a recipe's fields, declared once for every command.

    Used as a decorator, the command's ``recipe`` parameter becomes the :attr:`declared` options and
    receives the recipe built from them and from the command's own parameters that are recipe
    fields (e.g. ``--seed``); a command with its options in its own signature calls :meth:`build`.

    Parameters
    ----------
    recipe : the recipe dataclass; each option's default is its field's default.
    fields : option (the command's parameter name) -> recipe field, for every option that sets one.
    declared : the options the decorator adds: option -> its ``Annotated`` type, in help order.
    unset : options whose default is None on the command line although the field has a value:
        None there means the recipe's own default (left out when the recipe is built).
    check : called with every recipe built, to refuse bad values (one line) before any work.
    """

    def __init__(self, recipe: type, fields: Mapping[str, str], *, declared: Mapping[str, Any] | None = None,
                 unset: tuple[str, ...] = (), check: Callable[[Any], None] | None = None):
        super().__init__("recipe", declared or {}, {})
        self.recipe = recipe
        self.fields = dict(fields)
        self.unset = frozenset(unset)
        self.check = check
        unknown = [f for f in self.fields.values() if f not in recipe.__dataclass_fields__]
        if unknown or not set(self.declared) <= set(self.fields) or not self.unset <= set(self.fields):
            raise TypeError(f"{recipe.__name__} options do not match its fields: {unknown or sorted(self.declared)}")

    def default(self, option: str) -> Any:
        """The command-line default of ``option``: its recipe field's default (None for ``unset`` ones)."""
        if option in self.unset:
            return None
        return self.recipe.__dataclass_fields__[self.fields[option]].default

    def own(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def collect(self, values: dict[str, Any]) -> Any:
        return self.build(values)

    def build(self, values: Mapping[str, Any], **fixed: Any) -> Any:
        """The recipe from parsed option ``values`` (by keyword; names not in the table are ignored)
        and ``fixed`` fields, checked."""
        given = {self.fields[k]: v for k, v in values.items()
                 if k in self.fields and not (k in self.unset and v is None)}
        recipe = self.recipe(**{**given, **fixed})
        if self.check is not None:
            self.check(recipe)
        return recipe

    def resume(self, ctx: typer.Context, recipe: Any, saved: dict | None) -> Any:
        """For ``--resume``: the checkpoint's recipe (as its run was given it) with the options given
        on this command line, so options left out continue the run as it was started; the trainer
        then refuses a recipe that differs."""
        if not saved:
            return recipe
        given = {name for name in ctx.params
                 if (src := ctx.get_parameter_source(name)) is not None and not src.name.startswith("DEFAULT")}
        values = {**saved, **{field: getattr(recipe, field) for name, field in self.fields.items() if name in given}}
        known = {k: v for k, v in values.items() if k in self.recipe.__dataclass_fields__}
        return self.recipe(**known)


def replace(recipe: Any, **changes: Any) -> Any:
    """A copy of ``recipe`` with ``changes`` (a command that fixes a field, e.g. ggan-eval's precision)."""
    return dataclasses.replace(recipe, **changes)


# ------------------------------------------------------------------------------ output names
def output_stem(path: Path) -> str:
    """``path``'s file name without its data and compression suffixes (``x.csv.gz`` -> ``x``, ``HiSeqV2.gz``
    -> ``HiSeqV2``): the base of derived names, as the store names models (:func:`gengen.store.data_stem`)."""
    from gengen.store import data_stem

    return data_stem(path)


def beside(path: Path, ending: str) -> Path:
    """The file next to ``path`` named after it: ``beside(Path("d/x.csv.gz"), ".vae.h5ad")`` is ``d/x.vae.h5ad``."""
    return Path(path).with_name(output_stem(path) + ending)


def require_suffix(path: Path | None, allowed: tuple[str, ...], what: str) -> None:
    """Refuse an output name whose extension promises another format, before any work."""
    if path is None:
        return
    suffix = "".join(Path(path).suffixes[-2:]) if Path(path).suffix == ".gz" else Path(path).suffix
    if suffix.lower().removesuffix(".gz") not in allowed:
        raise GengenError(f"output {str(path)!r} should end in {' / '.join(allowed)}: this command writes {what}.")
