"""Delimited text tables (CSV, TSV, whitespace; plain or compressed) and Parquet tables, in and out.

The first column holds the row names; which axis holds the genes is decided from the names
(:func:`gengen.io.checks.genes_are_rows`). Text is parsed by pyarrow straight to float32 and laid out
once as samples x genes; Parquet's typed columns are checked so that dates, true/false values and text
are never read as expression values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.checks import check_gene_names, check_unique_genes, genes_are_rows, numeric_frame
from gengen.io.files import WHITESPACE, damaged, head_lines, open_bytes, open_text, split_fields, stored_kind, wide_text
from gengen.io.formats import TABLE_FORMATS, detect_format, pandas_sep, table_separator
from gengen.runtime import atomic_path, log

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


def _orient(df: pd.DataFrame, genes_in_rows: bool | None, expected_genes, source: str, quiet: bool) -> pd.DataFrame:
    """Return samples x genes, transposing when :func:`genes_are_rows` says so."""
    rows = genes_are_rows(df.index, df.columns, genes_in_rows=genes_in_rows, expected_genes=expected_genes,
                          source=source, quiet=quiet)
    return df.T if rows else df


def _not_expression(col: pd.Series) -> str | None:
    """What a column holds when it is not expression values ("dates", "true/false values", "text", ...);
    None for numbers (also numbers stored as text, which :func:`numeric_frame` converts)."""
    import datetime

    import pandas as pd

    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "true/false values"
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "dates"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "durations"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categories"
    if pd.api.types.is_numeric_dtype(dtype):
        return None
    values = col.dropna()
    if len(values) and all(isinstance(v, bool | np.bool_) for v in values):
        return "true/false values"
    if len(values) and all(isinstance(v, datetime.date | datetime.time) for v in values):
        return "dates"
    converted = pd.to_numeric(values, errors="coerce") if len(values) else values
    return "text" if converted.isna().any() else None


def split_annotations(df: pd.DataFrame, source: str, quiet: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(expression columns, annotation columns or None) of a typed table (Parquet).

    Dates, true/false values, categories and text are not expression values: read as numbers they
    would become nanoseconds or 0/1 and silently change the matrix (a date column alone makes the
    values look like counts, so log2(x+1) is applied to everything). Such columns before the first
    numeric one are annotations, kept (in ``obs``, or ``var`` for a genes x samples table) and named in
    a note; one among the gene columns is an error naming it.
    """
    flagged = [(i, str(c), kind) for i, c in enumerate(df.columns) if (kind := _not_expression(df.iloc[:, i]))]
    if not flagged:
        return df, None
    lead = next((i for i in range(df.shape[1]) if i not in {f[0] for f in flagged}), df.shape[1])
    inside = [f for f in flagged if f[0] >= lead]
    if inside or lead == df.shape[1]:
        i, name, kind = (inside or flagged)[0]
        more = f" ({len(flagged) - 1} more such column(s))" if len(flagged) > 1 else ""
        raise GengenError(
            f"{source}: column {name!r} (#{i + 1}) holds {kind}, not expression values{more}; gengen reads a table of "
            "numbers (samples x genes): drop that column, or put annotations before the gene columns (kept as "
            "annotations) or in a --labels file."
        )
    names = [f[1] for f in flagged]
    kinds = sorted({f[2] for f in flagged})
    log(f"note: {source}: column(s) {preview(names)} hold {', '.join(kinds)}, not expression values: kept as "
        "annotations (obs; --by can name them), not read as genes.", quiet)
    return df.iloc[:, lead:], df.iloc[:, :lead]


def _annotations_for(index, annotations: pd.DataFrame | None) -> pd.DataFrame:
    """``annotations`` when they describe ``index`` (the samples or, transposed, the genes), else an empty frame."""
    import pandas as pd

    names = pd.Index(index).astype(str)
    if annotations is not None and pd.Index(annotations.index).astype(str).equals(names):
        return annotations.set_axis(names)
    return pd.DataFrame(index=names)


def _raw_header(path, sep: str) -> list[str]:
    """The header row as written (names stripped, a byte-order mark dropped), before pandas would
    de-duplicate column names."""
    with open_text(path) as fh:
        line = fh.readline().rstrip("\n\r").lstrip("\ufeff")
    return [f.strip() for f in split_fields(line, sep)]


def _arrow_matrix(path: Path, sep: str, width: int, source: str):
    """A delimited table read by pyarrow: first column as strings, the ``width - 1`` others as float32.

    pyarrow parses in parallel and straight to float32, where pandas would build float64 columns
    (twice the memory) on one thread. gzip is inflated by pyarrow too (its zlib, in its own thread:
    9 s of CPU instead of Python's 13 s for the 1.5 GB TCGA-size benchmark file), and a truncated or
    corrupted stream is named as such, as :func:`gengen.io.files.open_bytes` does for other readers.
    Returns the table, or ``(column number, value)`` of the first value that is not a number.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"c{i}" for i in range(width)]
    types = {name: pa.float32() for name in names[1:]}
    types[names[0]] = pa.binary()  # names decoded by the caller: a stray Latin-1 byte is not an error
    with open_text(path) as fh:
        row_bytes = len(fh.readline()) + 1  # the header: as wide as a row, near enough
    # ~256 rows per block, 1-32 MB: few chunks per column without big text blocks in flight (measured on
    # the 10,459 x 20,530 benchmark: 8 MB blocks peak at 2.97 GB, 32 MB at 2.42 GB, 174 MB at 3.86 GB)
    block = int(min(32 << 20, max(1 << 20, 256 * row_bytes)))
    compression = stored_kind(path)
    if compression == "gzip" and wide_text(path):  # UTF-16/32 or Windows-1252 inside: open_bytes re-encodes it
        compression = "text"
    stream = (pa.input_stream(str(path), compression="gzip", buffer_size=1 << 20) if compression == "gzip"
              else open_bytes(path))
    with stream as fh:
        try:
            return pcsv.read_csv(
                fh,
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=block),
                parse_options=pcsv.ParseOptions(delimiter=sep),
                convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
        except pa.ArrowInvalid as exc:
            message = str(exc).splitlines()[0]
            column = re.search(r"column #(\d+)", message)
            value = re.search(r"invalid value '([^']*)'", message)
            if column and value:
                return int(column.group(1)), value.group(1)
            raise GengenError(f"cannot read {source!r} as a table: {message[:200]}") from None
        except OSError as exc:
            if compression == "gzip":
                raise damaged(path, "gzip", exc) from None
            raise


def _read_text_matrix(
    path: Path, sep: str, source: str, rows_are_genes: Callable[[list[str], list[str]], bool]
) -> tuple[list[str], list[str], np.ndarray]:
    """(sample names, gene names, float32 samples x genes) of a delimited text table whose first column
    holds row names.

    ``rows_are_genes(row_names, column_names)`` picks the orientation as soon as the names are known;
    the values are then laid out once, directly as samples x genes (a TCGA-size download is 0.86 GB
    as float32), instead of being read, transposed and converted in three copies.
    """
    import pandas as pd

    header = _raw_header(path, sep)
    lines = head_lines(path, 3)
    if len(lines) < 2:
        raise GengenError(f"{source}: no data rows under the header; is this an expression table?")
    width = len(split_fields(lines[1], sep))
    if width < 2:
        raise GengenError(f"{source}: only one column found; is the separator right (tab, comma or spaces)?")
    if width == len(header) + 1:
        columns = header  # R's write.table: the row-name column has no header field
        first_field = 1
    elif width == len(header):
        columns = header[1:]
        first_field = 2
    else:
        raise GengenError(f"{source}: the header has {len(header)} fields but the first data row {width}; "
                          "every row needs a name and one value per column.")
    if sep != WHITESPACE:
        table = _arrow_matrix(path, sep, width, source)
        if isinstance(table, tuple):  # a value that is not a number
            col, value = table
            where = columns[col - 1] if 0 < col <= len(columns) else f"#{col + 1}"
            raise GengenError(
                f"{source}: column {where!r} holds a non-numeric value ({value[:40]!r}); gengen expects a table of "
                "numbers with the names in the first column (move annotations to another file)."
            )
        rows = [r.decode("utf-8", errors="gengen-legacy") for r in table.column(0).to_pylist()]
        transposed = bool(rows) and rows_are_genes(rows, columns)
        X = np.empty((len(columns), len(rows)) if transposed else (len(rows), len(columns)), dtype=np.float32)
        for j in range(len(columns)):
            start = 0
            for chunk in table.column(j + 1).chunks:
                values = chunk.to_numpy(zero_copy_only=False)
                if transposed:
                    X[j, start : start + len(values)] = values
                else:
                    X[start : start + len(values), j] = values
                start += len(values)
        del table
    else:
        with open_bytes(path) as fh:
            df = pd.read_csv(fh, sep=pandas_sep(sep), index_col=0, header=0 if width == len(header) else None,
                             skiprows=0 if width == len(header) else 1)
        df.columns = columns
        df = numeric_frame(df, source)
        rows = [str(r) for r in df.index]
        transposed = bool(rows) and rows_are_genes(rows, columns)
        X = df.to_numpy(dtype=np.float32)
        del df
        if transposed:
            X = np.ascontiguousarray(X.T)
    if not rows:
        raise GengenError(f"{source}: no data rows under the header; is this an expression table?")
    if transposed:
        check_gene_names(rows, source, "data row")
    else:
        empty = [j for j, c in enumerate(columns) if not c]
        if empty:
            raise GengenError(
                f"{source}: field #{empty[0] + first_field} of the header is empty, so that column's gene has no name"
                + (f" ({len(empty) - 1} more such field(s))" if len(empty) > 1 else "")
                + "; name every gene column (it would otherwise become a gene named '')."
            )
    return (columns, rows, X) if transposed else (rows, columns, X)


def read_text_table(path: str | os.PathLike, kind: str | None = None, *, genes_in_rows: bool | None = None,
                    expected_genes=None, quiet: bool = False) -> ad.AnnData:
    """A delimited text table (first column = names; plain or compressed) as samples x genes AnnData.

    Parameters
    ----------
    path : the table.
    kind : ``csv``, ``tsv`` or ``txt``: the delimiter the name says, breaking ties of the sniffed one
        (:func:`gengen.io.formats.table_separator`); None: the name's.
    genes_in_rows, expected_genes, quiet : as :func:`gengen.io.expression.read_expression`.

    Returns
    -------
    AnnData, samples x genes, float32 ``X`` (not yet checked for finite values: see
    :func:`gengen.io.checks.validate_expression`).
    """
    import anndata as ad
    import pandas as pd

    source = str(path)
    samples, genes, X = _read_text_matrix(
        path, table_separator(path, kind), source,
        lambda rows, cols: genes_are_rows(rows, cols, genes_in_rows=genes_in_rows,
                                          expected_genes=expected_genes, source=source, quiet=quiet),
    )
    check_unique_genes(genes, source)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(samples)), var=pd.DataFrame(index=pd.Index(genes)))


def read_parquet_table(path: str | os.PathLike, *, genes_in_rows: bool | None = None, expected_genes=None,
                       quiet: bool = False) -> ad.AnnData:
    """A Parquet table as samples x genes AnnData: a leading text column (or the stored index) names the
    rows, and leading annotation columns (text, dates, true/false, categories) go to ``obs`` (``var`` for a
    genes x samples table; see :func:`split_annotations`).

    Parameters
    ----------
    path : the Parquet file.
    genes_in_rows, expected_genes, quiet : as :func:`gengen.io.expression.read_expression`.

    Returns
    -------
    AnnData, samples x genes, float32 ``X`` (not yet checked for finite values: see
    :func:`gengen.io.checks.validate_expression`).
    """
    import anndata as ad
    import pandas as pd

    source = str(path)
    df = pd.read_parquet(path)
    if isinstance(df.index, pd.RangeIndex) and df.shape[1] and _not_expression(df.iloc[:, 0]) == "text":
        df = df.set_index(df.columns[0])
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise GengenError(f"{source}: no data rows or columns found.")
    df.index = df.index.map(str)
    df.columns = df.columns.map(str)
    df, annotations = split_annotations(df, source, quiet)
    df = _orient(df, genes_in_rows, expected_genes, source, quiet)
    check_gene_names(df.columns, source, "column")
    df = numeric_frame(df, source)
    return ad.AnnData(
        X=df.to_numpy(dtype=np.float32),
        obs=_annotations_for(df.index, annotations),
        var=_annotations_for(df.columns, annotations),
    )


def write_table(df: pd.DataFrame, path: str | os.PathLike, protect=(), *, index: bool = True) -> Path:
    """Write a DataFrame as CSV/TSV/Parquet by extension, atomically."""
    kind = detect_format(path)
    with atomic_path(path, protect=protect) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=index)
        elif kind in TABLE_FORMATS:
            df.to_csv(tmp, sep=TABLE_FORMATS[kind], index=index)
        else:
            raise GengenError(f"cannot write a table as .{kind}; use .csv, .tsv or .parquet.")
    return Path(path)
