"""The data options of the commands that read a training or query matrix, declared once: which samples
(``--samples``, ``--where``, chosen on the file's own metadata without reading the matrix) and whether
to stream it from disk (``--stream``). ``--normalize`` is a recipe field (``VAERecipe.normalize``,
``GGANRecipe.normalize``), so it is in the recipe tables; a model's queries are read its way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gengen.cli import _options as opt

if TYPE_CHECKING:
    from gengen.io.streaming import ExpressionInput

SamplesOpt = Annotated[Path | None, typer.Option(
    "--samples", metavar="FILE", help="Use only these samples: a file of sample ids (one per line, or a table's first column), matched "
    "to the file's ids (ARCHS4 geo_accession, h5ad obs names, GCTX column ids).")]
WhereOpt = Annotated[list[str] | None, typer.Option(
    "--where", metavar="COLUMN=VALUE", help="Use only samples whose metadata column equals a value, COLUMN=VALUE (ARCHS4 meta/samples, h5ad "
    "obs, GCTX column metadata), e.g. series_id=GSE64016; also != and, on numbers, < <= > >= (e.g. "
    "'singlecellprobability<0.5'); repeat to require several.")]
StreamOpt = Annotated[str, typer.Option(
    "--stream", help="auto: read the matrix into memory when it fits comfortably (peak under half the memory "
    "available), else train from disk by blocks (said, recorded in config.json) | on | off.")]
NormalizeOpt = Annotated[str, typer.Option(
    "--normalize", help="Count normalisation as the data are read: auto (ARCHS4 counts -> log2(CPM + 1), other files as "
    "they are) | cpm (library size to 1e6 per sample, then log2(x + 1)) | none. Recorded in the model.")]


@dataclass(frozen=True)
class DataChoice:
    """The parsed ``--samples`` / ``--where`` / ``--stream`` of a command."""

    samples: Path | None = None
    where: Any = None
    stream: str = "auto"

    @property
    def selects(self) -> bool:
        return self.samples is not None or bool(self.where)

    def open(self, path: Path, *, stream: str | None = None, **kwargs) -> ExpressionInput:
        """:func:`gengen.io.streaming.open_expression` with these choices (``stream`` overrides the
        option: ``never`` for commands that need their data in memory). A streamed file stays open
        until the command ends."""
        from gengen.cli._app import input_path
        from gengen.io.streaming import open_expression
        from gengen.runtime import on_command_exit

        if self.samples is not None:
            input_path(self.samples)
        inp = open_expression(input_path(path), samples=self.samples, where=tuple(self.where or ()),
                              stream=stream or self.stream, **kwargs)
        if inp.streamed:
            on_command_exit(inp.close)
        return inp


DATA_OPTIONS = opt.OptionGroup("data_choice", {"samples": SamplesOpt, "where": WhereOpt, "stream": StreamOpt},
                               {"samples": None, "where": None, "stream": "auto"}, make=DataChoice)
SELECTION_OPTIONS = opt.OptionGroup("data_choice", {"samples": SamplesOpt, "where": WhereOpt},
                                    {"samples": None, "where": None}, make=DataChoice)

VAE_COPIES = 6.0  # peak of the in-memory VAE path in copies of the float32 matrix (float64 gene ranking)
GGAN_COPIES = 4.0  # the GGAN's probe averaging, split and z-scores


def with_normalisation(recipe, inp: ExpressionInput):
    """The recipe with the normalisation the data were read with (recorded in config.json; ``--resume``
    and the model's queries read the same way)."""
    return opt.replace(recipe, normalize=inp.normalize)


def query_normalisation(recipe) -> str:
    """How to read a model's query: as its training data were (counts to log2(CPM + 1) when the query
    holds counts), else ``auto``."""
    return "counts" if getattr(recipe, "normalize", "auto") == "cpm" else "auto"
