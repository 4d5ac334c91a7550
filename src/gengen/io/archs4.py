"""ARCHS4 compendium files (HDF5, as downloaded from maayanlab.cloud/archs4), read by content.

The layout (``human_gene_v2.*.h5``, ``mouse_gene_v2.*.h5``; see archs4py's ``data.py`` / ``utils.ls``):

- ``data/expression``: integer read counts, **genes x samples** (one row per ``meta/genes`` entry);
- ``meta/genes/gene_symbol`` (``meta/genes/symbol`` in some releases): the gene names;
- ``meta/samples/geo_accession``: the GSM id of each column, and beside it the other sample fields
  (``series_id``, ``source_name_ch1``, ``characteristics_ch1``, ``title``, ``singlecellprobability``...),
  one value per sample, which ``--where COLUMN=VALUE`` selects on.

Read with h5py directly rather than archs4py: archs4py imports s3fs, boto3, xalign and qnorm at
module level (its ``data`` module opens remote files through s3fs), pulls a whole selection into one
pandas frame, and reads samples one column per process. gengen needs only the layout above and
block reads of a local file, so the dependency would cost far more than it gives.

Some Ensembl genes share a symbol (ARCHS4 aligns to transcripts and sums them per Ensembl gene): such
rows are summed into one gene, as ``archs4py.utils.aggregate_duplicate_genes`` does, and said so;
rows without a symbol are left out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.gct import _h5_values as decode  # one HDF5 string decoder for GCTX and ARCHS4

EXPRESSION = "data/expression"
GENE_FIELDS = ("meta/genes/gene_symbol", "meta/genes/symbol")
SAMPLE_ID_FIELD = "meta/samples/geo_accession"
SAMPLE_GROUP = "meta/samples"
CHUNK_CACHE_BYTES = 64 << 20  # HDF5's default 1 MB chunk cache would re-inflate a chunk per partial read
READ_BYTES = 64 << 20  # counts read per block (whole chunks along the sample axis)


def is_archs4(h5) -> bool:
    """Whether an open HDF5 file is laid out like ARCHS4 (or nearly: the reader then names what is missing)."""
    meta = h5.get("meta")
    data = h5.get("data")
    return (data is not None and "expression" in data) or (meta is not None and ("genes" in meta or "samples" in meta))


@dataclass
class Archs4File:
    """An open, validated ARCHS4 file: the counts (genes x samples) and the names of both axes.

    ``genes`` are the unique symbols (first-appearance order); ``rows_of[i]`` lists the
    ``data/expression`` rows summed into gene ``i``.
    """

    h5: object  # h5py.File
    matrix: object  # h5py.Dataset (n_rows, n_samples)
    genes: list[str]
    rows_of: list[np.ndarray]
    gene_field: str
    source: str
    n_samples: int
    duplicated: int = 0  # symbols that name several rows (summed)
    unnamed: int = 0  # rows without a symbol (left out)
    _ids: np.ndarray | None = field(default=None, repr=False)

    def sample_ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = decode(self.h5[SAMPLE_ID_FIELD][()])
        return self._ids

    def sample_fields(self) -> list[str]:
        """Sample metadata columns: every 1-D dataset under ``meta/samples`` with one value per sample."""
        import h5py

        group = self.h5[SAMPLE_GROUP]
        return [name for name, ds in group.items()
                if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.shape[0] == self.n_samples]

    def sample_field(self, name: str) -> np.ndarray:
        return decode(self.h5[f"{SAMPLE_GROUP}/{name}"][()])

    @property
    def integer(self) -> bool:
        return self.matrix.dtype.kind in "iu"

    @property
    def block_samples(self) -> int:
        """Samples per natural read: whole chunks along the sample axis, about 64 MB of counts."""
        chunks = self.matrix.chunks
        width = chunks[1] if chunks else 1
        rows = self.matrix.shape[0] * self.matrix.dtype.itemsize
        want = max(1, READ_BYTES // max(1, rows))
        return int(max(width, (want // width) * width))

    def read(self, start: int, stop: int, genes: np.ndarray | None = None) -> np.ndarray:
        """Counts of samples ``start:stop`` as float32 samples x genes (all genes, or the ``genes`` indices),
        duplicate symbols summed. Reads only the chunk rows that hold the wanted genes."""
        if genes is None:
            genes = np.arange(len(self.genes))
        genes = np.asarray(genes, dtype=np.int64)
        rows = [self.rows_of[g] for g in genes]
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        wanted = np.unique(flat)
        block = read_rows(self.matrix, wanted, start, stop=stop, source=self.source)  # (len(wanted), stop - start)
        if len(flat) == len(genes) and (len(genes) < 2 or np.all(np.diff(flat) > 0)):
            return np.ascontiguousarray(block.T, dtype=np.float32)  # one row per gene, in order
        pos = np.searchsorted(wanted, flat)
        out = np.zeros((stop - start, len(genes)), np.float64)
        at = 0
        for j, r in enumerate(rows):
            out[:, j] = block[pos[at : at + len(r)]].sum(axis=0)
            at += len(r)
        return out.astype(np.float32)


def read_rows(ds, wanted: np.ndarray, start: int, *, stop: int, source: str) -> np.ndarray:
    """``ds[wanted, start:stop]`` for sorted row indices, read as runs of whole chunk rows (h5py's
    point selection is slow, and reading every chunk row when few are wanted wastes inflating)."""
    n_rows = ds.shape[0]
    height = ds.chunks[0] if ds.chunks else n_rows
    try:
        if len(wanted) == n_rows:
            return np.asarray(ds[:, start:stop])
        slabs = np.unique(wanted // height)
        if len(slabs) * height >= 0.5 * n_rows:  # most chunk rows are needed anyway: one read
            return np.asarray(ds[:, start:stop])[wanted]
        parts = []
        runs = np.split(slabs, np.flatnonzero(np.diff(slabs) > 1) + 1)
        for run in runs:
            lo, hi = int(run[0]) * height, min(n_rows, (int(run[-1]) + 1) * height)
            inside = wanted[(wanted >= lo) & (wanted < hi)]
            parts.append(np.asarray(ds[lo:hi, start:stop])[inside - lo])
        return np.concatenate(parts, axis=0)
    except OSError as exc:  # a chunk that does not inflate: the download was cut short or damaged
        raise damaged_hdf5(source, exc) from None


def damaged_hdf5(source: str, exc: BaseException) -> GengenError:
    """The one line for an HDF5 file whose data cannot be read back."""
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return GengenError(f"{source!r} is truncated or corrupted: HDF5 data could not be read ({detail}); "
                       "download or copy it again.")


@contextlib.contextmanager
def open_archs4(path: str | os.PathLike) -> Iterator[Archs4File]:
    """Open an ARCHS4 file and check its layout; anything missing or misplaced is one line naming the
    field that was expected (and what the file holds instead)."""
    import h5py

    source = str(path)
    try:
        h5 = h5py.File(source, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise GengenError(f"cannot open {source!r} as HDF5 ({str(exc).splitlines()[0][:160]}); the file is "
                          "truncated or not HDF5: download it again.") from None
    try:
        yield _validated(h5, source)
    finally:
        h5.close()


def _listing(group) -> str:
    return preview(list(group.keys())) if group is not None else "nothing"


def _validated(h5, source: str) -> Archs4File:
    import h5py

    layout = "ARCHS4 layout (data/expression genes x samples, meta/genes/gene_symbol, meta/samples/geo_accession)"
    matrix = h5.get(EXPRESSION)
    if not isinstance(matrix, h5py.Dataset):
        raise GengenError(f"{source!r} looks like an ARCHS4 file but has no {EXPRESSION} dataset (the counts, genes x "
                          f"samples); {'data/ holds ' + _listing(h5.get('data')) if 'data' in h5 else 'top-level: ' + _listing(h5)}. "
                          f"Expected the {layout}.")
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
        raise GengenError(f"{source!r}: {EXPRESSION} must be a 2-D numeric matrix (genes x samples), found shape "
                          f"{matrix.shape} of {matrix.dtype}.")
    gene_field = next((f for f in GENE_FIELDS if isinstance(h5.get(f), h5py.Dataset)), None)
    if gene_field is None:
        raise GengenError(f"{source!r}: no gene names: expected {GENE_FIELDS[0]} (or {GENE_FIELDS[1]}); meta/genes holds "
                          f"{_listing(h5.get('meta/genes'))}. Expected the {layout}.")
    if not isinstance(h5.get(SAMPLE_ID_FIELD), h5py.Dataset):
        raise GengenError(f"{source!r}: no sample ids: expected {SAMPLE_ID_FIELD}; meta/samples holds "
                          f"{_listing(h5.get(SAMPLE_GROUP))}. Expected the {layout}.")
    symbols_ds, ids_ds = h5[gene_field], h5[SAMPLE_ID_FIELD]
    n_genes, n_samples = symbols_ds.shape[0], ids_ds.shape[0]
    if matrix.shape != (n_genes, n_samples):
        swapped = matrix.shape == (n_samples, n_genes)
        raise GengenError(
            f"{source!r}: {EXPRESSION} is {matrix.shape[0]} x {matrix.shape[1]} but {gene_field} lists {n_genes} genes "
            f"and {SAMPLE_ID_FIELD} {n_samples} samples; ARCHS4 stores genes x samples ({n_genes} x {n_samples})"
            + ("; this one is samples x genes (swapped): write it genes x samples, or save it as h5ad."
               if swapped else "; the name lists do not belong to the matrix (a truncated or mixed-up file).")
        )
    symbols = decode(symbols_ds[()])
    groups: dict[str, list[int]] = {}
    unnamed = 0
    for i, s in enumerate(symbols):
        s = str(s).strip()
        if not s or s.lower() in ("nan", "na", "none"):
            unnamed += 1
            continue
        groups.setdefault(s, []).append(i)
    if not groups:
        raise GengenError(f"{source!r}: {gene_field} holds no gene names (all empty).")
    genes = list(groups)
    rows_of = [np.asarray(groups[g], dtype=np.int64) for g in genes]
    duplicated = sum(len(r) > 1 for r in rows_of)
    return Archs4File(h5=h5, matrix=matrix, genes=genes, rows_of=rows_of, gene_field=gene_field, source=source,
                      n_samples=int(n_samples), duplicated=duplicated, unnamed=unnamed)


def write_archs4(path: str | os.PathLike, counts, genes, *, samples, sample_fields: dict | None = None,
                 gene_field: str = GENE_FIELDS[0], chunks: tuple[int, int] | None = None,
                 compression: str | None = "gzip") -> None:
    """Write counts in the ARCHS4 layout (for tests, benchmarks, and counts of one's own to stream).

    Parameters
    ----------
    path : the HDF5 file to create (refused if it exists).
    counts : genes x samples integer counts (an array, or a callable ``(start, stop) -> genes x block``
        to write a matrix larger than memory block by block).
    genes : gene symbols (one per row).
    samples : GSM ids (one per column), stored as ``meta/samples/geo_accession``.
    sample_fields : other ``meta/samples`` fields (name -> one value per sample).
    gene_field : where the symbols go (``meta/genes/gene_symbol``, or ``meta/genes/symbol``).
    chunks : HDF5 chunk shape (genes, samples); default (all genes up to 2,000, 1,000 samples).
    compression : HDF5 filter (ARCHS4's files are gzip-compressed).
    """
    import h5py

    n_genes, n_samples = len(genes), len(samples)
    chunks = chunks or (min(n_genes, 2000), min(n_samples, 1000))
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w-") as h5:
        ds = h5.create_dataset(EXPRESSION, shape=(n_genes, n_samples), dtype="uint32", chunks=chunks,
                               compression=compression)
        if callable(counts):
            for s in range(0, n_samples, chunks[1]):
                e = min(n_samples, s + chunks[1])
                ds[:, s:e] = counts(s, e)
        else:
            ds[...] = np.asarray(counts)
        h5.create_dataset(gene_field, data=np.asarray([str(g) for g in genes], dtype=object), dtype=text)
        h5.create_dataset(SAMPLE_ID_FIELD, data=np.asarray([str(s) for s in samples], dtype=object), dtype=text)
        for name, values in (sample_fields or {}).items():
            values = np.asarray(values)
            if values.dtype.kind in "OUS":
                h5.create_dataset(f"{SAMPLE_GROUP}/{name}", data=values.astype(str).astype(object), dtype=text)
            else:
                h5.create_dataset(f"{SAMPLE_GROUP}/{name}", data=values)
