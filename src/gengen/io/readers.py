"""Reading a whole expression file of a known format into memory: the one dispatch over the format
readers (h5ad, text tables, Parquet, GCT, GCTX, GEO series matrices), then the shared checks.

:func:`gengen.io.expression.read_expression` recognises the format and comes here for all but ARCHS4
(whose counts are read through :func:`gengen.io.streaming.open_expression`); ``open_expression`` comes
here for what it reads into memory. So this module sits below both, and neither imports the other back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gengen.errors import GengenError
from gengen.io.checks import use_gene_column, validate_expression
from gengen.io.files import check_input
from gengen.io.formats import SERIES_MATRIX, check_layer, note_encoding
from gengen.io.gct import read_gct, read_gctx
from gengen.io.geo import read_series_matrix
from gengen.io.tables import read_parquet_table, read_text_table

if TYPE_CHECKING:
    import anndata as ad


@contextlib.contextmanager
def read_errors(source: str, kind: str) -> Iterator[None]:
    """What a reader raises about a file's content (pandas/pyarrow/HDF5/decoding errors) as one clear
    GengenError naming the file and the format it was read as."""
    import pandas as pd

    try:
        yield
    except GengenError:
        raise
    except pd.errors.EmptyDataError:
        raise GengenError(f"input file {source!r} holds no table.") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError, KeyError) as exc:
        raise GengenError(f"cannot read {source!r} as {kind}: {str(exc).splitlines()[0][:200]}") from None


def read_whole(
    path: str | os.PathLike,
    kind: str,
    *,
    genes_in_rows: bool | None = None,
    expected_genes=None,
    gene_column: str | None = None,
    allow_missing_values: bool = False,
    layer: str | None = None,
    quiet: bool = False,
) -> ad.AnnData:
    """Read an expression file whose format is known (any of :data:`gengen.io.formats.FORMATS` but ARCHS4)
    whole into memory, checked as :func:`gengen.io.expression.read_expression` checks it.

    Parameters
    ----------
    path : the input file.
    kind : its format (:func:`gengen.io.formats.input_format`).
    genes_in_rows, expected_genes, gene_column, allow_missing_values, layer, quiet : as
        :func:`gengen.io.expression.read_expression`.

    Returns
    -------
    AnnData, samples x genes, ``X`` float32.
    """
    import anndata as ad

    path = check_input(path)
    source = str(path)
    check_layer(layer, kind, source)
    note_encoding(path, quiet)
    with read_errors(source, kind):
        if kind == "h5ad":
            from gengen.io.h5ad import pick_matrix

            adata = pick_matrix(ad.read_h5ad(path), layer, source)
            if genes_in_rows:
                adata = adata.T
        elif kind == "gct":
            adata = read_gct(path)
        elif kind == "gctx":
            adata = read_gctx(path)
        elif kind == SERIES_MATRIX:
            adata = read_series_matrix(path, quiet=quiet)
        elif kind == "parquet":
            adata = read_parquet_table(path, genes_in_rows=genes_in_rows, expected_genes=expected_genes, quiet=quiet)
        elif kind in ("csv", "tsv", "txt"):
            adata = read_text_table(path, kind, genes_in_rows=genes_in_rows, expected_genes=expected_genes,
                                    quiet=quiet)
        else:  # ARCHS4 counts are normalised as they are read: gengen.io.streaming.open_expression
            raise GengenError(f"{source!r} is {kind}, which is read with gengen.io.read_expression or open_expression.")
    if gene_column is not None:
        adata = use_gene_column(adata, gene_column, source)
    return validate_expression(adata, source, allow_missing_values=allow_missing_values, quiet=quiet)
