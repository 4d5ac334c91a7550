"""Expression matrices in and out: h5ad, CSV/TSV, Parquet, GCT, GCTX, GEO series matrices and ARCHS4
compendia, always as samples x genes AnnData (:func:`read_expression`, :func:`write_expression`).

Inputs are recognised by content when the name does not say: UCSC Xena's ``HiSeqV2.gz`` (a gzipped TSV,
no ``.tsv``) and GEO's ``*_series_matrix.txt.gz`` read as downloaded; output names need a known
extension. Gene names are the join key between data and models, so reading validates them (unique,
present) and the numbers (numeric, finite) up front, with messages that say how to fix the file.

One module per concern, this one on top:

- :mod:`gengen.io.formats`: which format a file is (:func:`input_format`, :func:`output_format`, the
  delimiter of a table);
- :mod:`gengen.io.checks`: the checks every reader shares (gene names and keys, orientation, numbers,
  :func:`validate_expression`, :func:`looks_like_counts`);
- the readers by format: :mod:`gengen.io.tables` (CSV/TSV/whitespace text and Parquet; :func:`write_table`),
  :mod:`gengen.io.gct` (GCT, GCTX), :mod:`gengen.io.geo` (GEO series matrices), :mod:`gengen.io.h5ad`,
  :mod:`gengen.io.archs4`; :mod:`gengen.io.readers` dispatches a whole-file read to them;
- :mod:`gengen.io.annotations`: gene lists, gene id maps and sample annotation tables.

The names those modules define are importable from here too, as they were when they all lived here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.io.annotations import (
    GENE_LIST_HEADERS,
    GENE_MAP_COLUMNS,
    attach_annotations,
    read_gene_list,
    read_gene_map,
)
from gengen.io.checks import (
    LINEAR_MAX,
    check_gene_names,
    check_unique_genes,
    gene_key,
    genes_are_rows,
    looks_like_counts,
    match_by_key,
    mismatch_hint,
    numeric_frame,
    strided_sample,
    use_gene_column,
    validate_expression,
)
from gengen.io.files import check_input
from gengen.io.formats import (
    ARCHS4,
    FORMATS,
    SERIES_MATRIX,
    TABLE_FORMATS,
    check_layer,
    detect_format,
    input_format,
    note_encoding,
    output_format,
    pandas_sep,
    table_separator,
)
from gengen.io.gct import (
    GCTX_COL_META,
    GCTX_MATRIX,
    GCTX_ROW_META,
    GctxFile,
    annotated_matrix,
    gctx_genes,
    iter_gctx,
    open_gctx,
    read_gct,
    read_gctx,
)
from gengen.io.geo import read_series_matrix, series_matrix_samples
from gengen.io.readers import read_errors, read_whole
from gengen.io.tables import split_annotations, write_table
from gengen.runtime import atomic_path

if TYPE_CHECKING:
    import anndata as ad

__all__ = [
    "ARCHS4", "FORMATS", "GCTX_COL_META", "GCTX_MATRIX", "GCTX_ROW_META", "GENE_LIST_HEADERS", "GENE_MAP_COLUMNS",
    "LINEAR_MAX", "SERIES_MATRIX", "TABLE_FORMATS", "GctxFile", "annotated_matrix", "attach_annotations",
    "check_gene_names", "check_layer", "check_unique_genes", "detect_format", "gctx_genes", "gene_key",
    "genes_are_rows", "input_format", "iter_gctx", "looks_like_counts", "match_by_key", "mismatch_hint",
    "note_encoding", "numeric_frame", "open_gctx", "output_format", "pandas_sep", "read_expression", "read_gct",
    "read_gctx", "read_gene_list", "read_gene_map", "read_series_matrix", "series_matrix_samples",
    "split_annotations", "strided_sample", "table_separator", "use_gene_column", "validate_expression",
    "write_expression", "write_table",
]


def read_expression(
    path: str | os.PathLike,
    *,
    genes_in_rows: bool | None = None,
    fmt: str | None = None,
    expected_genes=None,
    gene_column: str | None = None,
    allow_missing_values: bool = False,
    layer: str | None = None,
    quiet: bool = False,
) -> ad.AnnData:
    """Read an expression matrix as samples x genes AnnData with float32 ``X``.

    Parameters
    ----------
    path : h5ad, CSV/TSV/whitespace table (first column = names), Parquet, GCT, GCTX (HDF5, cmapPy
        layout) or GEO series matrix; plain or gzip/bz2/xz. The format is recognised from the content
        when the name does not say (:func:`input_format`), the delimiter by sniffing.
    genes_in_rows : force the orientation of tables (GCT/GCTX/series matrices fix their own);
        ``None`` detects it, using
        ``expected_genes`` (e.g. a model's gene list) when given, else the look of the names.
    fmt : force the format (one of :data:`FORMATS`).
    gene_column : a ``var`` column to use as gene names (e.g. ``pr_gene_symbol`` of an L1000 GCT).
    allow_missing_values : keep NaN instead of raising (callers that impute).
    layer : an h5ad input's layer to read instead of ``X`` (``--layer``); an h5ad without ``X`` needs one.
    quiet : no notes on stderr (how the file was read).

    Returns
    -------
    AnnData, samples x genes, ``X`` float32 (annotations of GCT/GCTX/series matrices in ``obs``/``var``;
    leading non-numeric columns of a Parquet table in ``obs``).
    """
    path = check_input(path)
    kind = input_format(path, fmt)
    if kind != ARCHS4:
        return read_whole(path, kind, genes_in_rows=genes_in_rows, expected_genes=expected_genes,
                          gene_column=gene_column, allow_missing_values=allow_missing_values, layer=layer, quiet=quiet)
    source = str(path)
    check_layer(layer, kind, source)
    note_encoding(path, quiet)
    from gengen.io.streaming import open_expression  # counts as log2(CPM + 1), as every command reads them

    with read_errors(source, kind):
        adata = open_expression(path, fmt=fmt, stream="off", quiet=quiet).data
    if gene_column is not None:
        adata = use_gene_column(adata, gene_column, source)
    return validate_expression(adata, source, allow_missing_values=allow_missing_values, quiet=quiet)


def write_expression(adata: ad.AnnData, path: str | os.PathLike, protect=(), *, obsm_key: str | None = None) -> Path:
    """Write AnnData as h5ad, or a table (``X``, or ``obsm[obsm_key]`` when given) as CSV/TSV/Parquet.

    Parameters
    ----------
    adata : the data to write.
    path : the output; its extension picks the format (h5ad, csv, tsv, parquet).
    protect : input paths the output must not replace.
    obsm_key : write ``adata.obsm[obsm_key]`` (e.g. ``"X_vae"``) instead of ``adata.X`` to a table.

    Returns
    -------
    The written path.
    """
    import pandas as pd

    kind = output_format(path)
    if kind == "h5ad":
        from gengen.io.h5ad import write_h5ad

        with atomic_path(path, protect=protect) as tmp:
            write_h5ad(adata, tmp)
        return Path(path)
    if obsm_key is not None:
        mat = np.asarray(adata.obsm[obsm_key])
        df = pd.DataFrame(mat, index=adata.obs_names, columns=[f"{obsm_key.removeprefix('X_')}_{i + 1}" for i in range(mat.shape[1])])
    else:
        df = adata.to_df()
    df.index.name = "sample"
    return write_table(df, path, protect=protect)
