"""Expression matrices larger than memory, read by blocks of samples: ARCHS4 HDF5, h5ad (``X`` or a
layer, by row blocks from disk), GCTX (HDF5 row slices) and Parquet (row groups).

Two layers:

- :class:`ChunkedMatrix` (one subclass per format): gene names, sample ids and the file's own sample
  metadata (ARCHS4 ``meta/samples/*``, h5ad ``obs``, GCTX ``/0/META/COL/*``, Parquet's text columns),
  all read without the matrix; :meth:`ChunkedMatrix.read` returns one block of samples, float32.
- :class:`ChunkedExpression`: a selection of samples (``--samples FILE``, ``--where COLUMN=VALUE``,
  chosen on the metadata alone) and of gene columns (a model's genes, landmarks and targets, probes
  averaged into genes) over a :class:`ChunkedMatrix`, with the count normalisation applied to every
  block it yields (library size to counts per million, then log2(x + 1), when the recipe says so).
  Trainers take it in place of an in-memory AnnData (see :func:`gengen.io.streaming.open_expression`).

Every block is checked (finite values) as it is read; a chunk that does not inflate (a download cut
short) is a one-line error naming the file. Nothing here writes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview

if TYPE_CHECKING:
    import pandas as pd

CHUNKABLE = ("archs4", "h5ad", "gctx", "parquet")
NORMALISATIONS = ("auto", "cpm", "none")
CPM_SCALE = 1e6
BLOCK_BYTES = 64 << 20  # about this much per block read (the raw values of all its genes)
NORMALISED = "log2(CPM + 1): each sample's counts scaled to 1,000,000 (its library size: the sum over all genes of the file), then log2(x + 1)"


class ChunkedMatrix:
    """A samples x genes matrix on disk, read a block of samples at a time (subclass per format).

    Attributes: ``kind`` (format), ``source`` (path as given), ``genes`` (names, unique),
    ``n_samples``, ``integer`` (stored as integers: counts), ``block_samples`` (samples per natural read).
    """

    kind = ""
    source = ""
    genes: list[str]
    n_samples = 0
    integer = False
    block_samples = 1

    _ids: np.ndarray | None = None

    def sample_ids(self) -> np.ndarray:
        """Every sample's id, in file order (str; read once)."""
        if self._ids is None:
            self._ids = np.asarray(self._read_ids(), dtype=object).astype(str)
        return self._ids

    def _read_ids(self) -> np.ndarray:
        raise NotImplementedError

    def meta_columns(self) -> list[str]:
        """The sample metadata columns ``--where`` can select on."""
        return []

    def meta_column(self, name: str) -> np.ndarray:
        """One metadata column, one value per sample in file order."""
        raise KeyError(name)

    def read(self, start: int, stop: int, genes: np.ndarray | None = None) -> np.ndarray:
        """Samples ``start:stop``, all genes or the ``genes`` indices, float32 samples x genes."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> ChunkedMatrix:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.kind}, {self.n_samples:,} samples x {len(self.genes):,} genes"


class _Archs4Matrix(ChunkedMatrix):
    kind = "archs4"

    def __init__(self, path: Path):
        from gengen.io.archs4 import open_archs4

        self._stack = contextlib.ExitStack()
        self.file = self._stack.enter_context(open_archs4(path))
        self.source = str(path)
        self.genes = self.file.genes
        self.n_samples = self.file.n_samples
        self.integer = self.file.integer
        self.block_samples = self.file.block_samples

    def _read_ids(self):
        return self.file.sample_ids()

    def meta_columns(self) -> list[str]:
        return self.file.sample_fields()

    def meta_column(self, name: str) -> np.ndarray:
        return self.file.sample_field(name)

    def read(self, start, stop, genes=None):
        return self.file.read(start, stop, genes)

    def close(self):
        self._stack.close()

    def describe(self) -> str:
        notes = []
        if self.file.duplicated:
            notes.append(f"{self.file.duplicated:,} symbols name several rows (summed)")
        if self.file.unnamed:
            notes.append(f"{self.file.unnamed:,} rows without a symbol left out")
        return (f"ARCHS4, {self.n_samples:,} samples x {len(self.genes):,} genes ({self.file.gene_field})"
                + (f"; {'; '.join(notes)}" if notes else ""))


class _GctxMatrix(ChunkedMatrix):
    kind = "gctx"

    def __init__(self, path: Path):
        from gengen.io.gct import open_gctx

        self._stack = contextlib.ExitStack()
        self.g = self._stack.enter_context(open_gctx(path))
        self.source = str(path)
        self.genes = list(self.g.gene_ids)
        self.n_samples = self.g.n_samples
        self.integer = self.g.matrix.dtype.kind in "iu"
        chunk = self.g.matrix.chunks[0] if self.g.matrix.chunks else 1
        want = max(1, BLOCK_BYTES // max(1, len(self.genes) * 4))
        self.block_samples = int(max(chunk, (want // chunk) * chunk))
        self._meta = None

    def _read_ids(self):
        return self.g.sample_ids()

    def _col_meta(self):
        if self._meta is None:
            self._meta = self.g.col_meta()
        return self._meta

    def meta_columns(self):
        return [str(c) for c in self._col_meta().columns]

    def meta_column(self, name):
        return self._col_meta()[name].to_numpy()

    def read(self, start, stop, genes=None):
        from gengen.io.archs4 import damaged_hdf5

        try:
            block = np.asarray(self.g.matrix[start:stop], dtype=np.float32)
        except OSError as exc:
            raise damaged_hdf5(self.source, exc) from None
        return block if genes is None else np.ascontiguousarray(block[:, genes])

    def close(self):
        self._stack.close()


class _H5adMatrix(ChunkedMatrix):
    """An h5ad's ``X`` (or ``layers[layer]``, ``--layer``), dense or sparse, read by row blocks from disk
    (:class:`gengen.io.h5ad.H5adRows`); ``obs`` and ``var`` read without the matrices."""

    kind = "h5ad"

    def __init__(self, path: Path, layer: str | None = None):
        from gengen.io.h5ad import H5adRows, h5ad_frame

        self.source = str(path)
        self.rows = H5adRows(path, layer).__enter__()  # no X and no --layer: names the layers to choose from
        try:
            self.obs = h5ad_frame(path, "obs")
            self.genes = h5ad_frame(path, "var").index.astype(str).tolist()
        except (OSError, KeyError, ValueError, TypeError) as exc:
            self.close()
            raise GengenError(f"cannot open {self.source!r} as h5ad: {str(exc).splitlines()[0][:200]}") from None
        except BaseException:
            self.close()
            raise
        self.n_samples = self.rows.n_rows
        self.integer = np.dtype(self.rows.matrix.dtype).kind in "iu"
        self.block_samples = int(max(1, BLOCK_BYTES // max(1, len(self.genes) * 4)))

    def _read_ids(self):
        return self.obs.index.astype(str).to_numpy()

    def meta_columns(self):
        return [str(c) for c in self.obs.columns]

    def meta_column(self, name):
        return self.obs[name].to_numpy()

    def read(self, start, stop, genes=None):
        from gengen.io.archs4 import damaged_hdf5

        try:
            block = self.rows[start:stop]
        except OSError as exc:
            raise damaged_hdf5(self.source, exc) from None
        return block if genes is None else np.ascontiguousarray(block[:, genes])

    def close(self):
        with contextlib.suppress(Exception):
            self.rows.__exit__(None, None, None)


class _ParquetMatrix(ChunkedMatrix):
    """Rows = samples, numeric columns = genes, text columns = sample metadata, read by row groups."""

    kind = "parquet"

    def __init__(self, path: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.source = str(path)
        try:
            self.pf = pq.ParquetFile(path, pre_buffer=False)
        except (OSError, pa.ArrowException) as exc:
            raise GengenError(f"cannot read {self.source!r} as Parquet: {str(exc).splitlines()[0][:200]}") from None
        schema = self.pf.schema_arrow
        self.index = parquet_index_column(schema)
        numeric = [n for n, t in zip(schema.names, schema.types, strict=True)
                   if n != self.index and (pa.types.is_integer(t) or pa.types.is_floating(t))]
        self.text = [n for n in schema.names if n != self.index and n not in numeric]
        self.genes = [str(n) for n in numeric]
        self.integer = all(pa.types.is_integer(schema.field(n).type) for n in numeric) and bool(numeric)
        self.n_samples = int(self.pf.metadata.num_rows)
        sizes = [self.pf.metadata.row_group(i).num_rows for i in range(self.pf.num_row_groups)]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.block_samples = int(max(1, max(sizes) if sizes else 1))

    def _read_ids(self):
        if self.index is None:
            return np.arange(self.n_samples).astype(str)
        return self.pf.read(columns=[self.index]).column(0).to_pylist()

    def meta_columns(self):
        return list(self.text)

    def meta_column(self, name):
        return np.asarray(self.pf.read(columns=[name]).column(0).to_pylist(), dtype=object)

    def read(self, start, stop, genes=None):
        import pyarrow as pa

        names = self.genes if genes is None else [self.genes[g] for g in genes]
        out = np.empty((stop - start, len(names)), np.float32)
        first = int(np.searchsorted(self.offsets, start, side="right") - 1)
        group = first
        while group < self.pf.num_row_groups and self.offsets[group] < stop:
            lo, hi = int(self.offsets[group]), int(self.offsets[group + 1])
            try:
                table = self.pf.read_row_group(group, columns=names)
            except (OSError, pa.ArrowException) as exc:
                raise GengenError(f"{self.source!r} is truncated or corrupted: row group {group} could not be read "
                                  f"({str(exc).splitlines()[0][:120]}); download or copy it again.") from None
            a, b = max(start, lo), min(stop, hi)
            for j, column in enumerate(table.columns):
                values = column.to_numpy(zero_copy_only=False)
                out[a - start : b - start, j] = values[a - lo : b - lo]
            group += 1
        return out


_OPENERS = {"archs4": _Archs4Matrix, "gctx": _GctxMatrix, "h5ad": _H5adMatrix, "parquet": _ParquetMatrix}


def open_chunked(path: str | os.PathLike, kind: str, layer: str | None = None) -> ChunkedMatrix:
    """The :class:`ChunkedMatrix` of an input whose format (``kind``, from
    :func:`gengen.io.formats.input_format`) is one of :data:`CHUNKABLE`; ``layer``: an h5ad's layer
    to read instead of ``X``."""
    if kind not in _OPENERS:
        raise GengenError(f"{str(path)!r} is {kind}, which cannot be read by chunks; use h5ad, GCTX, Parquet or an "
                          "ARCHS4 HDF5 file for data larger than memory.")
    if kind == "h5ad":
        return _H5adMatrix(Path(path), layer)
    return _OPENERS[kind](Path(path))


# ---------------------------------------------------------------------------------------- choosing samples
_WHERE = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


def parse_where(clauses: Sequence[str]) -> list[tuple[str, str, str]]:
    """``COLUMN=VALUE`` clauses (also ``!=``, and ``<``, ``<=``, ``>``, ``>=`` on numbers, e.g. ARCHS4's
    ``singlecellprobability<0.5`` for bulk samples) as (column, operator, value); anything else is a
    one-line error."""
    out = []
    for clause in clauses:
        m = _WHERE.match(str(clause))
        if not m or not m.group(1):
            raise GengenError(f"--where {clause!r}: write COLUMN=VALUE (e.g. --where series_id=GSE64016; also !=, and <, "
                              "<=, >, >= on numbers).")
        column, op, value = m.groups()
        if op in ("<", "<=", ">", ">="):
            try:
                float(value)
            except ValueError:
                raise GengenError(f"--where {clause!r}: {op} compares numbers; {value!r} is not one.") from None
        out.append((column, "=" if op == "==" else op, value))
    return out


def read_sample_ids(path: str | os.PathLike) -> list[str]:
    """Sample ids from a file: one per line, or a table's first column (a header naming it is skipped)."""
    from gengen.io.annotations import read_gene_list

    ids = read_gene_list(path)
    if ids and ids[0].lower() in ("sample", "samples", "sample_id", "geo_accession", "gsm", "barcode", "cell"):
        ids = ids[1:]
    if not ids:
        raise GengenError(f"--samples {str(path)!r} lists no sample ids.")
    return ids


def _as_text(values) -> np.ndarray:
    """Metadata values as stripped strings (numbers written as they print: 1, 2.5, nan)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.array([f"{v:g}" if np.isfinite(v) else "nan" for v in values], dtype=object)
    return np.array([str(v).strip() for v in values], dtype=object)


def select_samples(ids: np.ndarray, metadata, source: str, *, samples: Sequence[str] | None = None,
                   where: Sequence[tuple[str, str, str]] = ()) -> tuple[np.ndarray, list[str]]:
    """Sorted positions of the samples chosen by ``samples`` (ids) and ``where`` (column, operator, value),
    all of them applying (AND), with a line per choice saying how many it kept.

    ``metadata`` is ``(columns, column_getter)`` so only the columns named are read. A column that
    does not exist lists those that do; a choice that keeps no sample is an error (before any training).
    """
    columns, get = metadata
    keep = np.ones(len(ids), dtype=bool)
    notes = []
    for column, op, value in where:
        clause = f"{column}{op}{value}"
        if column not in columns:
            raise GengenError(f"--where {clause}: {source!r} has no sample column {column!r}; its sample "
                              f"columns are {preview(columns, 12) or 'none'}.")
        raw = get(column)
        text = _as_text(raw)
        if op in ("=", "!="):
            hit = (text == value) if op == "=" else (text != value)
        else:
            import pandas as pd

            numbers = pd.to_numeric(pd.Series(np.asarray(raw, dtype=object)), errors="coerce").to_numpy(float)
            if np.isnan(numbers).all():
                raise GengenError(f"--where {clause}: {column!r} holds no numbers (e.g. "
                                  f"{preview(list(dict.fromkeys(text[:2000].tolist())), 3)}); compare it with = or !=.")
            with np.errstate(invalid="ignore"):
                hit = {"<": numbers < float(value), "<=": numbers <= float(value), ">": numbers > float(value),
                       ">=": numbers >= float(value)}[op]
        if not hit.any():
            lower = np.char.lower(text.astype(str)) == value.lower() if op == "=" else np.zeros(1, bool)
            close = f" (matching case-insensitively: {int(lower.sum()):,})" if lower.any() else ""
            raise GengenError(f"--where {clause} selects no sample of {source!r}{close}; {column!r} holds e.g. "
                              f"{preview(list(dict.fromkeys(text[:2000].tolist())), 4)}.")
        keep &= hit
        notes.append(f"--where {clause}: {int(hit.sum()):,} of {len(ids):,} samples")
    if samples is not None:
        wanted = {str(s) for s in samples}
        hit = np.fromiter((i in wanted for i in ids), dtype=bool, count=len(ids))
        found = int(hit.sum())
        if found == 0:
            raise GengenError(f"none of the {len(wanted):,} ids of --samples is a sample of {source!r} (its ids start "
                              f"{preview(ids[:3].tolist(), 3)}; the list starts {preview(list(wanted)[:3], 3)}).")
        missing = len(wanted) - len(set(ids[hit].tolist()))
        notes.append(f"--samples: {found:,} of the {len(wanted):,} ids found" + (f" ({missing:,} not in the file)" if missing else ""))
        keep &= hit
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise GengenError(f"the sample choice ({'; '.join(n.split(':')[0] for n in notes)}) keeps no sample of {source!r}: "
                          "each choice matches some samples, but none matches all of them.")
    return rows, notes


# ---------------------------------------------------------------------------------------- the streamed view
def normalise_counts(block: np.ndarray, library: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """log2(CPM + 1) of a block of counts (samples x genes, float32), given each sample's library size
    (``in_place``: overwrite ``block``, the caller's own copy)."""
    scale = np.where(library > 0, CPM_SCALE / np.maximum(library, 1e-12), 0.0).astype(np.float32)
    out = np.multiply(block, scale[:, None], out=block if in_place else None)
    np.log2(np.add(out, 1.0, out=out), out=out)
    return out


@dataclass
class ChunkedExpression:
    """Chosen samples and gene columns of a :class:`ChunkedMatrix`, normalised block by block.

    ``rows``: file positions of the chosen samples (sorted). ``columns[j]``: the file's gene indices
    averaged into output column ``j`` (one index for a plain gene; a gene's probes, as D-GEX maps
    them), named ``names[j]``. ``normalize``: ``"cpm"`` (counts -> log2(CPM + 1)) or ``"none"``.
    """

    matrix: ChunkedMatrix
    rows: np.ndarray
    names: list[str]
    columns: list[np.ndarray]
    normalize: str = "none"
    notes: list[str] = field(default_factory=list)
    library: np.ndarray | None = None  # library size of each chosen sample (cpm), NaN until read
    var_extra: dict[str, list] = field(default_factory=dict)  # extra var columns (gene, probes) for mapped views

    # AnnData-like surface read by the trainers and commands
    @property
    def n_obs(self) -> int:
        return len(self.rows)

    @property
    def n_vars(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_obs, self.n_vars)

    @property
    def var_names(self) -> pd.Index:
        import pandas as pd

        return pd.Index(self.names)

    @property
    def var(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.var_extra, index=self.var_names)

    @property
    def obs_names(self) -> pd.Index:
        import pandas as pd

        return pd.Index(self.matrix.sample_ids()[self.rows])

    @property
    def source(self) -> str:
        return self.matrix.source

    def obs(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The chosen samples' metadata (all columns, or those named), indexed by sample id."""
        import pandas as pd

        names = self.matrix.meta_columns() if columns is None else list(columns)
        return pd.DataFrame({c: self.matrix.meta_column(c)[self.rows] for c in names}, index=self.obs_names)

    # choosing columns
    def with_columns(self, names: Sequence[str], columns: Sequence[Sequence[int]], **var_extra) -> ChunkedExpression:
        """The same samples with other output columns (``columns[j]``: file gene indices averaged)."""
        return ChunkedExpression(self.matrix, self.rows, list(names), [np.asarray(c, np.int64) for c in columns],
                                 self.normalize, list(self.notes), self.library, dict(var_extra))

    def select(self, names: Sequence[str]) -> ChunkedExpression:
        """The output columns named ``names`` (they must exist), in that order."""
        pos = {n: j for j, n in enumerate(self.names)}
        missing = [n for n in names if n not in pos]
        if missing:
            raise GengenError(f"{self.source}: {len(missing)} gene(s) not in the file: {preview(missing)}.")
        extra = {k: [v[pos[n]] for n in names] for k, v in self.var_extra.items()}
        return self.with_columns(list(names), [self.columns[pos[n]] for n in names], **extra)

    @property
    def needs_library(self) -> bool:
        return self.normalize == "cpm"

    def _file_genes(self) -> np.ndarray:
        return np.unique(np.concatenate(self.columns)) if self.columns else np.zeros(0, np.int64)

    # reading
    def blocks(self, rows: np.ndarray | None = None, *, block_samples: int | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions among the chosen samples, float32 block positions x columns, normalised), in file
        order; ``rows`` (sorted positions) restricts the samples read. Library sizes of samples not
        seen before are computed from the same read (all genes are read for them)."""
        positions = np.arange(self.n_obs) if rows is None else np.asarray(rows, np.int64)
        if len(positions) == 0:
            return
        file_rows = self.rows[positions]
        step = int(block_samples or self.matrix.block_samples)
        wanted = self._file_genes()
        all_genes = len(wanted) == len(self.matrix.genes)
        if self.needs_library and self.library is None:
            self.library = np.full(self.n_obs, np.nan)
        start_block = file_rows[0] // step
        end_block = file_rows[-1] // step
        lo_pos = 0
        for b in range(int(start_block), int(end_block) + 1):
            e = min((b + 1) * step, self.matrix.n_samples)
            hi_pos = int(np.searchsorted(file_rows, e, side="left"))
            if hi_pos == lo_pos:
                continue
            pos, fr = positions[lo_pos:hi_pos], file_rows[lo_pos:hi_pos]
            lo_pos = hi_pos
            span_s, span_e = int(fr[0]), int(fr[-1]) + 1
            need_lib = self.needs_library and np.isnan(self.library[pos]).any()
            if need_lib or all_genes:
                raw = self.matrix.read(span_s, span_e)
                raw = raw[fr - span_s] if len(fr) != span_e - span_s else raw
                self._check(raw, fr, None)
                if need_lib:
                    self.library[pos] = raw.sum(axis=1, dtype=np.float64)
                raw = raw[:, wanted] if not all_genes else raw
            else:
                raw = self.matrix.read(span_s, span_e, wanted)
                raw = raw[fr - span_s] if len(fr) != span_e - span_s else raw
                self._check(raw, fr, wanted)
            if self.needs_library:  # (raw is this loop's own float32 copy: normalised in place)
                raw = normalise_counts(raw, self.library[pos], in_place=raw.dtype == np.float32)
            yield pos, self._assemble(raw, wanted)

    def _assemble(self, raw: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Output columns from the block of the ``wanted`` file genes: taken, or averaged (probes)."""
        index = np.searchsorted(wanted, np.concatenate(self.columns)) if self.columns else np.zeros(0, np.int64)
        if all(len(c) == 1 for c in self.columns):
            if len(index) == raw.shape[1] and np.array_equal(index, np.arange(len(index))):
                return raw  # every column, in order: the block itself
            return np.ascontiguousarray(raw[:, index])
        out = np.empty((raw.shape[0], len(self.columns)), np.float32)
        at = 0
        for j, c in enumerate(self.columns):
            out[:, j] = raw[:, index[at : at + len(c)]].mean(axis=1)
            at += len(c)
        return out

    def _check(self, raw: np.ndarray, file_rows: np.ndarray, genes: np.ndarray | None) -> None:
        if self.matrix.integer:  # stored as integers (ARCHS4 counts): finite, and non-negative when unsigned
            if self.matrix.kind == "archs4" or not self.needs_library or raw.min(initial=0.0) >= 0:
                return
        elif np.isfinite(raw).all() and (not self.needs_library or raw.min(initial=0.0) >= 0):
            return
        bad = ~np.isfinite(raw) if not np.isfinite(raw).all() else raw < 0
        r, c = np.argwhere(bad)[0]
        gene = self.matrix.genes[int(genes[c]) if genes is not None else int(c)]
        sample = self.matrix.sample_ids()[file_rows[r]]
        what = "a negative count" if np.isfinite(raw[r, c]) else ("NaN" if np.isnan(raw[r, c]) else "an infinite value")
        raise GengenError(f"{self.source}: {what} in sample {sample!r}, gene {gene!r}; "
                          + ("counts normalised to CPM must be non-negative (--normalize none uses the values as they are)."
                             if what == "a negative count" else "impute or drop it first."))

    def read_all(self, quiet: bool = True) -> np.ndarray:
        """Every chosen sample, as one in-memory float32 matrix (for selections that fit)."""
        from gengen.runtime import Progress

        out = np.empty(self.shape, np.float32)
        with Progress(self.n_obs, f"reading {Path(self.source).name}", quiet) as bar:
            for pos, block in self.blocks():
                out[pos] = block
                bar.update(len(pos))
        return out

    def to_anndata(self, quiet: bool = True):
        """The chosen samples and columns in memory, as samples x genes AnnData (metadata in ``obs``)."""
        import anndata as ad

        X = self.read_all(quiet)
        obs = self.obs()
        obs.index = obs.index.astype(str)
        var = self.var
        return ad.AnnData(X=X, obs=obs, var=var)


def resolve_normalisation(choice: str, matrix: ChunkedMatrix | None, pilot: np.ndarray | None, *, source: str
                          ) -> tuple[str, str]:
    """``--normalize auto|cpm|none`` -> (``"cpm"`` or ``"none"``, why). ``auto``: ARCHS4 files hold raw
    read counts of samples sequenced to very different depths (1-100 million reads), so they get
    library-size normalisation and log2(x + 1); other formats are used as they are (as before).
    ``counts`` (a query read for a model trained on normalised counts): ``cpm`` when the query holds
    counts (ARCHS4, or values that look linear-scale), else its values as they are."""
    from gengen.io.checks import looks_like_counts

    if choice not in (*NORMALISATIONS, "counts"):
        raise GengenError(f"--normalize must be one of {', '.join(NORMALISATIONS)}, got {choice!r}.")
    archs4 = matrix is not None and matrix.kind == "archs4"
    if choice == "none":
        return "none", "values used as they are (--normalize none)"
    if choice == "counts" and not archs4:
        counts, why = looks_like_counts(pilot) if pilot is not None else (False, "")
        if not counts:
            return "none", (f"the model was trained on {NORMALISED.split(':')[0]} of counts, and these data look normalised "
                            f"already ({why}): used as they are")
    if choice == "auto" and not archs4:
        return "none", ""
    if pilot is not None and pilot.size and float(np.nanmin(pilot)) < 0:
        raise GengenError(f"{source}: --normalize cpm needs counts, but the values go below 0 (log-scale or centred "
                          "data?); use --normalize none.")
    why = {"auto": "ARCHS4 read counts", "cpm": "--normalize cpm", "counts": "counts, as the model's training data"}[choice]
    return "cpm", f"{why} normalised as {NORMALISED}"


def parquet_index_column(schema) -> str | None:
    """The column holding sample names: pandas' stored index, else a leading string column."""
    import pyarrow as pa

    meta = schema.pandas_metadata or {}
    stored = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    if stored:
        return stored[0]
    if len(schema.names) > 1 and (pa.types.is_string(schema.types[0]) or pa.types.is_large_string(schema.types[0])):
        return schema.names[0]
    return None
