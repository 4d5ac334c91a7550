"""GCT and GCTX (the Broad's Connectivity Map / LINCS L1000 formats), read as samples x genes AnnData.

GCT is text (genes in rows, ``#1.2``/``#1.3`` header); GCTX is HDF5 in cmapPy's layout (one HDF5 row per
sample), read whole (:func:`read_gctx`) or by blocks of samples (:func:`iter_gctx`). Both put gene
metadata in ``var`` and sample metadata in ``obs`` through one path (:func:`annotated_matrix`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.files import open_text

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

GCTX_MATRIX = "/0/DATA/0/matrix"  # cmapPy layout: HDF5 row = one sample (column of the GCT)
GCTX_ROW_META = "/0/META/ROW"  # genes: "id" plus optional annotations (pr_gene_symbol, ...)
GCTX_COL_META = "/0/META/COL"  # samples: "id" plus optional annotations


def read_gct(path: str | os.PathLike) -> ad.AnnData:
    """Read a GCT 1.2 / 1.3 file (genes in rows) into samples x genes AnnData; row metadata -> ``var``."""
    import pandas as pd

    with open_text(path) as fh:
        version = fh.readline().strip()
        if version not in ("#1.2", "#1.3"):
            raise GengenError(f"{str(path)!r} does not start with #1.2 or #1.3; it is not a GCT file.")
        dims = fh.readline().split()
        try:
            n_rows, n_cols = int(dims[0]), int(dims[1])
            n_row_meta = int(dims[2]) if version == "#1.3" else 1
            n_col_meta = int(dims[3]) if version == "#1.3" else 0
        except (IndexError, ValueError):
            raise GengenError(f"{str(path)!r}: malformed GCT dimension line {' '.join(dims)!r}.") from None
        table = pd.read_csv(fh, sep="\t", header=0, dtype=str, na_filter=False)
    if table.shape[1] != 1 + n_row_meta + n_cols:
        raise GengenError(
            f"{str(path)!r}: GCT header has {table.shape[1]} columns, expected {1 + n_row_meta + n_cols} "
            f"(id + {n_row_meta} metadata + {n_cols} samples)."
        )
    col_meta = table.iloc[:n_col_meta]
    body = table.iloc[n_col_meta:]
    if len(body) != n_rows:
        raise GengenError(f"{str(path)!r}: GCT declares {n_rows} rows but holds {len(body)}.")
    gene_ids = body.iloc[:, 0].astype(str).values
    row_meta = body.iloc[:, 1 : 1 + n_row_meta].copy()
    row_meta.index = gene_ids
    raw = body.iloc[:, 1 + n_row_meta :]
    values = raw.apply(pd.to_numeric, errors="coerce")
    raw_bad = values.isna().to_numpy() & ~raw.isin(["", "NaN", "nan", "NA"]).to_numpy()
    if raw_bad.any():
        r, c = np.argwhere(raw_bad)[0]
        raise GengenError(f"{str(path)!r}: non-numeric value in gene {gene_ids[r]!r}, sample {values.columns[c]!r}.")
    cm = None
    if n_col_meta:
        cm = col_meta.set_index(col_meta.columns[0]).iloc[:, n_row_meta:].T
    if version == "#1.2" and "Description" in row_meta.columns:
        row_meta = row_meta.rename(columns={"Description": "description"})
    return annotated_matrix(values.to_numpy(dtype=np.float32).T, gene_ids, values.columns, row_meta=row_meta, col_meta=cm)


def annotated_matrix(X, gene_ids, sample_ids, *, row_meta: pd.DataFrame | None = None,
                     col_meta: pd.DataFrame | None = None) -> ad.AnnData:
    """Samples x genes AnnData from a GCT-style matrix: row (gene) metadata -> ``var``, column (sample)
    metadata -> ``obs``, both keyed by the ids as strings.

    GCT and GCTX share this one path so a plate reads the same whichever of the two it came in.
    """
    import anndata as ad
    import pandas as pd

    def frame(meta: pd.DataFrame | None, ids) -> pd.DataFrame:
        index = pd.Index([str(i) for i in ids])
        if meta is None:
            return pd.DataFrame(index=index)
        meta = meta.reset_index(drop=True)
        meta.index = index
        meta.columns = [str(c) for c in meta.columns]
        return meta

    return ad.AnnData(
        X=np.asarray(X, dtype=np.float32), obs=frame(col_meta, sample_ids), var=frame(row_meta, gene_ids)
    )


@dataclass
class GctxFile:
    """An open, validated GCTX (cmapPy layout): the matrix dataset (samples x genes) and its id lists."""

    h5: object  # h5py.File
    matrix: object  # h5py.Dataset, shape (n_samples, n_genes)
    gene_ids: list[str]
    sample_ids_ds: object  # h5py.Dataset, decoded lazily: GEO files hold up to 1.3M sample ids
    source: str

    @property
    def n_samples(self) -> int:
        return int(self.matrix.shape[0])

    def sample_ids(self, start: int = 0, stop: int | None = None) -> list[str]:
        return [str(v) for v in _h5_values(self.sample_ids_ds[start:stop])]

    def row_meta(self) -> pd.DataFrame:
        return _h5_meta(self.h5[GCTX_ROW_META], len(self.gene_ids), "gene", self.source)

    def col_meta(self) -> pd.DataFrame:
        return _h5_meta(self.h5[GCTX_COL_META], self.n_samples, "sample", self.source)


@contextlib.contextmanager
def open_gctx(path: str | os.PathLike) -> Iterator[GctxFile]:
    """Open a GCTX and check its cmapPy layout, with a clear GengenError for anything else."""
    import h5py

    source = str(path)
    if not h5py.is_hdf5(source):
        hint = (" GEO ships .gctx.gz: gunzip it first (HDF5 cannot be read compressed)." if source.endswith(".gz")
                else " If it is a text GCT, name it .gct or pass --format gct.")
        raise GengenError(f"{source!r} is not an HDF5 file, so not a GCTX.{hint}")
    try:
        h5 = h5py.File(source, "r")
    except OSError as exc:
        raise GengenError(f"cannot open {source!r} as HDF5: {str(exc).splitlines()[0][:200]}") from None
    try:
        missing = [n for n in (GCTX_MATRIX, f"{GCTX_ROW_META}/id", f"{GCTX_COL_META}/id")
                   if not isinstance(h5.get(n), h5py.Dataset)]
        if missing:
            raise GengenError(
                f"{source!r} is HDF5 but not a GCTX in the cmapPy layout: no {', '.join(missing)} "
                f"(top-level groups: {preview(list(h5.keys())) or 'none'}); write it with cmapPy's write_gctx, "
                "or use h5ad for AnnData files."
            )
        matrix, rid, cid = h5[GCTX_MATRIX], h5[f"{GCTX_ROW_META}/id"], h5[f"{GCTX_COL_META}/id"]
        if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
            raise GengenError(f"{source!r}: {GCTX_MATRIX} must be a 2-D numeric matrix, found {matrix.shape} "
                              f"of {matrix.dtype}.")
        n_genes, n_samples = rid.shape[0] if rid.ndim == 1 else -1, cid.shape[0] if cid.ndim == 1 else -1
        if matrix.shape != (n_samples, n_genes):
            transposed = matrix.shape == (n_genes, n_samples)
            raise GengenError(
                f"{source!r}: the matrix is {matrix.shape[0]} x {matrix.shape[1]} but the file lists "
                f"{n_samples} sample ids ({GCTX_COL_META}/id) and {n_genes} gene ids ({GCTX_ROW_META}/id); "
                f"a GCTX stores samples x genes ({n_samples} x {n_genes})"
                + ("; this one is written genes x samples: rewrite it with cmapPy's write_gctx." if transposed
                   else "; the file is truncated or its id lists do not belong to it.")
            )
        gene_ids = [str(v) for v in _h5_values(rid[()])]
        yield GctxFile(h5=h5, matrix=matrix, gene_ids=gene_ids, sample_ids_ds=cid, source=source)
    finally:
        h5.close()


def _h5_values(values) -> np.ndarray:
    """An HDF5 column as numbers or str: fixed-length bytes and variable-length strings both decoded."""
    values = np.asarray(values)
    if values.dtype.kind in "SO":
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values],
                        dtype=object)
    if values.dtype.kind == "U":
        return values.astype(object)
    return values


def _h5_meta(group, n: int, what: str, source: str) -> pd.DataFrame:
    """Every 1-D dataset of a META group but ``id``, as columns (numbers stay numbers)."""
    import h5py
    import pandas as pd

    columns = {}
    for name, ds in group.items():
        if name == "id" or not isinstance(ds, h5py.Dataset):
            continue
        if ds.ndim != 1 or ds.shape[0] != n:
            raise GengenError(f"{source!r}: metadata {group.name}/{name} has shape {ds.shape}, expected one value "
                              f"per {what} ({n}); the file is malformed.")
        columns[name] = _h5_values(ds[()])
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def read_gctx(path: str | os.PathLike) -> ad.AnnData:
    """Read a GCTX (HDF5, cmapPy layout) whole into samples x genes AnnData, metadata as ``read_gct``.

    For files too large to hold, stream them with :func:`iter_gctx`.
    """
    with open_gctx(path) as g:
        X = np.asarray(g.matrix[()], dtype=np.float32)
        return annotated_matrix(X, g.gene_ids, g.sample_ids(), row_meta=g.row_meta(), col_meta=g.col_meta())


def gctx_genes(path: str | os.PathLike) -> tuple[list[str], pd.DataFrame]:
    """Gene ids and gene metadata (``var``) of a GCTX without reading its matrix."""
    import pandas as pd

    with open_gctx(path) as g:
        meta = g.row_meta()
        meta.index = pd.Index(g.gene_ids)
        return g.gene_ids, meta


def iter_gctx(
    path: str | os.PathLike, chunk_size: int = 10_000, columns: Sequence[int] | None = None,
    *,
    read_bytes: int = 64 << 20,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """(sample ids, float32 block samples x genes) per ``chunk_size`` samples: HDF5 row slices, so a
    1M-sample GCTX never loads whole.

    With ``columns`` (gene indices) only those genes are kept, read in row blocks of at most
    ``read_bytes``: a GEO Level 3 file has 12,328 genes per sample, and a model needs ~1,000 of them, so
    memory stays ~ chunk_size x len(columns) x 4 bytes instead of ~0.5 GB per 10,000 samples.
    """
    if chunk_size < 1:
        raise GengenError(f"chunk size must be positive, got {chunk_size}.")
    with open_gctx(path) as g:
        if columns is None:
            for s in range(0, g.n_samples, chunk_size):
                e = min(s + chunk_size, g.n_samples)
                yield g.sample_ids(s, e), np.asarray(g.matrix[s:e], dtype=np.float32)
            return
        cols = np.asarray(columns, dtype=np.int64)
        rows_per_read = max(1, read_bytes // max(1, len(g.gene_ids) * 4))
        for s in range(0, g.n_samples, chunk_size):
            e = min(s + chunk_size, g.n_samples)
            block = np.empty((e - s, len(cols)), dtype=np.float32)
            for r in range(s, e, rows_per_read):
                stop = min(r + rows_per_read, e)
                block[r - s : stop - s] = np.asarray(g.matrix[r:stop], dtype=np.float32)[:, cols]
            yield g.sample_ids(s, e), block
