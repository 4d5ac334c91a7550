"""Data larger than memory: choosing in-memory or streamed reading, and gene statistics in one pass.

:func:`open_expression` is the one function the commands call to read training or query data. It
chooses the samples (``--samples``, ``--where``) on the file's metadata alone, applies the count
normalisation the recipe asks for, and decides, from the size of what is needed and the memory
available now, whether the data are read into memory (today's path: an AnnData, with exactly the
numbers it always gave) or left on disk as a :class:`~gengen.io.chunked.ChunkedExpression` that the
trainers stream block by block. The decision and its reason are said and recorded.

:class:`GeneStats` gathers, in one pass over the blocks, what the recipes fit on the data: per-gene
count, mean and variance (Chan et al.'s pairwise update in float64, exact), minimum and maximum (on
all samples or the training split), and a fixed-width histogram per gene from which the median,
median absolute deviation and mean absolute deviation are read (the VAE's gene ranking). The
histogram spans the range a pilot read of a few blocks spread over the file shows (widened by half its
span each side; log2(CPM + 1) values have the known range [0, log2(10^6 + 1)]); values beyond it fall
in the end bins, which leaves a quantile in the bulk of a gene's distribution exact to within one bin
(1/512 of the range).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError
from gengen.io.chunked import (
    CHUNKABLE,
    ChunkedExpression,
    normalise_counts,
    open_chunked,
    parse_where,
    read_sample_ids,
    resolve_normalisation,
    select_samples,
)
from gengen.runtime import Progress, log

if TYPE_CHECKING:
    import anndata as ad

STREAM_CHOICES = ("auto", "on", "off")
IN_MEMORY_ONLY = "never"  # a command that needs its data in memory (ggan-eval's baselines): like off, said so
MEMORY_SHARE = 0.5  # stream when the in-memory path's peak would exceed this share of the memory available
HIST_BINS = 512
CPM_LOG_MAX = float(np.log2(1e6 + 1))
PILOT_BLOCKS = 3


# ---------------------------------------------------------------------------------------- memory
def available_memory() -> float | None:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup v2 limit (a SLURM job,
    a container) when one is set."""
    from gengen.runtime.device import _available_memory

    free, _ = _available_memory(None)
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            room = float(int(limit) - int(used))
            free = room if free is None else min(free, room)
    except OSError:
        pass
    return free


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


# ---------------------------------------------------------------------------------------- statistics
@dataclass
class GeneStats:
    """Per-gene statistics gathered block by block (see the module docstring)."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    hist: np.ndarray | None = None  # (genes, bins) counts
    lo: np.ndarray | None = None
    width: np.ndarray | None = None

    @classmethod
    def empty(cls, n_genes: int, hist_range: tuple[np.ndarray, np.ndarray] | None = None,
              bins: int = HIST_BINS) -> GeneStats:
        s = cls(np.zeros(n_genes), np.zeros(n_genes), np.zeros(n_genes), np.full(n_genes, np.inf),
                np.full(n_genes, -np.inf))
        if hist_range is not None:
            lo, hi = (np.asarray(a, np.float64) for a in hist_range)
            s.lo, s.width = lo, np.maximum(hi - lo, 1e-6) / bins
            s.hist = np.zeros((n_genes, bins), np.int64)
        return s

    def update(self, block: np.ndarray) -> None:
        """Add a block of samples (rows) x genes (in slices of ~8 MB of float64: the temporaries stay small)."""
        step = max(1, (8 << 20) // max(1, 8 * block.shape[1]))
        for s in range(0, len(block), step):
            self._update(block[s : s + step])

    def _update(self, block: np.ndarray) -> None:
        if not len(block):
            return
        x = np.asarray(block, np.float64)
        k = x.shape[0]
        bmean = x.mean(axis=0)
        bm2 = ((x - bmean) ** 2).sum(axis=0)
        total = self.n + k
        delta = bmean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + bm2 + delta**2 * (self.n * k / total)
        self.n = total
        np.minimum(self.minimum, x.min(axis=0), out=self.minimum)
        np.maximum(self.maximum, x.max(axis=0), out=self.maximum)
        if self.hist is not None:
            bins = self.hist.shape[1]
            idx = np.clip(((x - self.lo) / self.width).astype(np.int64), 0, bins - 1)
            idx += np.arange(x.shape[1], dtype=np.int64) * bins
            self.hist += np.bincount(idx.ravel(), minlength=self.hist.size).reshape(self.hist.shape)

    def merge_ranks(self) -> GeneStats:
        """Under torchrun, every rank's statistics of its share of the file, combined (Chan et al.'s
        pairwise update over the ranks in order; histograms summed); alone, itself."""
        from gengen import distributed

        if distributed.current() is None:
            return self
        parts = distributed.all_gather_array(np.stack([self.n, self.mean, self.m2]))
        n, mean, m2 = (np.zeros_like(self.n) for _ in range(3))
        for k, mk, m2k in parts:
            total = n + k
            safe = np.maximum(total, 1)
            delta = mk - mean
            mean = mean + delta * (k / safe)
            m2 = m2 + m2k + delta**2 * (n * k / safe)
            n = total
        self.n, self.mean, self.m2 = n, mean, m2
        self.minimum = distributed.all_reduce_array(self.minimum, "min")
        self.maximum = distributed.all_reduce_array(self.maximum, "max")
        if self.hist is not None:
            self.hist = distributed.all_reduce_array(self.hist, "sum").astype(self.hist.dtype)
        return self

    @property
    def var(self) -> np.ndarray:
        """Population variance (``numpy.var``'s ddof 0)."""
        return np.where(self.n > 0, self.m2 / np.maximum(self.n, 1), 0.0)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def _cdf(self, v: np.ndarray) -> np.ndarray:
        """Samples at or below ``v`` (one value per gene), the histogram taken as uniform within bins."""
        bins = self.hist.shape[1]
        cum = np.concatenate([np.zeros((len(self.lo), 1)), np.cumsum(self.hist, axis=1)], axis=1)
        pos = np.clip((v - self.lo) / self.width, 0, bins)
        i = np.minimum(pos.astype(np.int64), bins - 1)
        frac = pos - i
        rows = np.arange(len(self.lo))
        return cum[rows, i] + frac * self.hist[rows, i]

    def quantile(self, q: float) -> np.ndarray:
        """The ``q`` quantile of each gene (within one histogram bin)."""
        bins = self.hist.shape[1]
        cum = np.cumsum(self.hist, axis=1)
        target = q * cum[:, -1]
        i = np.minimum((cum < target[:, None]).sum(axis=1), bins - 1)
        rows = np.arange(len(self.lo))
        before = np.where(i > 0, cum[rows, np.maximum(i - 1, 0)], 0)
        inside = self.hist[rows, i]
        frac = np.where(inside > 0, (target - before) / np.maximum(inside, 1), 0.5)
        return self.lo + (i + np.clip(frac, 0, 1)) * self.width

    def median_ad(self) -> np.ndarray:
        """Median absolute deviation from the median, per gene (bisection on the histogram's CDF)."""
        m = self.quantile(0.5)
        half = 0.5 * self.n
        lo = np.zeros_like(m)
        hi = np.maximum(self.maximum - m, m - self.minimum) + self.width
        for _ in range(40):
            d = 0.5 * (lo + hi)
            inside = self._cdf(m + d) - self._cdf(m - d)
            lower = inside < half
            lo = np.where(lower, d, lo)
            hi = np.where(lower, hi, d)
        return 0.5 * (lo + hi)

    def mean_ad(self) -> np.ndarray:
        """Mean absolute deviation from the (exact) mean, per gene, from the histogram."""
        bins = self.hist.shape[1]
        a = self.lo[:, None] + np.arange(bins)[None, :] * self.width[:, None]
        b = a + self.width[:, None]
        mu = self.mean[:, None]
        above = np.clip(a - mu, 0, None) + 0.5 * self.width[:, None]
        below = np.clip(mu - b, 0, None) + 0.5 * self.width[:, None]
        straddle = ((b - mu) ** 2 + (mu - a) ** 2) / (2 * self.width[:, None])
        per_bin = np.where(a >= mu, above, np.where(b <= mu, below, straddle))
        return (self.hist * per_bin).sum(axis=1) / np.maximum(self.n, 1)


def rank_genes(stats: GeneStats, n_genes: int, method: str) -> np.ndarray:
    """The ``n_genes`` most dispersed genes by ``method`` (median-ad, mean-ad, variance), in column
    order; ties broken by mean absolute deviation, then column order, as
    :func:`gengen.vae.preprocess.select_variable_genes` does on an in-memory matrix."""
    from gengen.recipes import GENE_RANKS

    if method not in GENE_RANKS:
        raise GengenError(f"unknown --gene-rank {method!r}; use one of {', '.join(GENE_RANKS)}.")
    primary = {"median-ad": stats.median_ad, "mean-ad": stats.mean_ad, "variance": lambda: stats.var}[method]()
    secondary = stats.mean_ad() if method != "mean-ad" else np.zeros_like(primary)
    order = np.lexsort((np.arange(len(primary)), -secondary, -primary))
    return np.sort(order[: min(int(n_genes), len(primary))])


def pilot(data: ChunkedExpression, max_values: int = 2_000_000) -> np.ndarray:
    """A few blocks spread over the chosen samples (start, middle, end), at most ``max_values`` values:
    enough to judge the scale (counts or log) and to size the histograms, read cheaply."""
    step = data.matrix.block_samples
    n = data.n_obs
    starts = sorted({0, max(0, n // 2 - step // 2), max(0, n - step)})[:PILOT_BLOCKS]
    rows_per = max(1, min(step, max_values // max(1, data.n_vars * len(starts))))
    picks = np.unique(np.concatenate([np.arange(s, min(n, s + rows_per)) for s in starts]))
    parts = [block for _, block in data.blocks(picks)]
    return np.concatenate(parts) if parts else np.zeros((0, data.n_vars), np.float32)


def histogram_range(data: ChunkedExpression, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene histogram bounds: [0, log2(10^6 + 1)] for log2(CPM + 1) values, else the pilot's range
    widened by half its span on each side."""
    g = data.n_vars
    if data.normalize == "cpm":
        return np.zeros(g), np.full(g, CPM_LOG_MAX)
    lo, hi = sample.min(axis=0).astype(np.float64), sample.max(axis=0).astype(np.float64)
    span = hi - lo
    fallback = max(float(np.nanmax(span)) * 0.01 if span.size else 1.0, 1e-3)
    span = np.where(span > 0, span, fallback)
    return lo - 0.5 * span, hi + 0.5 * span


def gene_pass(data: ChunkedExpression, consumers: Sequence[Callable[[np.ndarray, np.ndarray], None]],
              what: str, *, quiet: bool = True, rows: np.ndarray | None = None) -> np.ndarray:
    """Read the chosen samples once, block by block, handing each ``(positions, block)`` to every consumer.

    Under torchrun each rank reads every ``world``-th of the file's blocks (its own share); the caller
    combines what its consumers gathered (:meth:`GeneStats.merge_ranks`,
    :func:`gengen.distributed.all_reduce_array`). Library sizes found on the way are shared here.

    Returns
    -------
    Each sample's sum over the columns (float64, in the order of ``rows``; every rank's share combined):
    a fingerprint of the data that does not depend on how the pass was split.
    """
    from gengen import distributed

    positions = np.arange(data.n_obs) if rows is None else np.asarray(rows, np.int64)
    shard = distributed.shard()
    mine = positions
    if shard is not None:
        block = data.rows[positions] // data.matrix.block_samples
        mine = positions[block % shard.world == shard.rank]
    index = np.full(data.n_obs, -1, np.int64)
    index[positions] = np.arange(len(positions))
    sums = np.zeros(len(positions))
    with Progress(len(mine), what, quiet) as bar:
        for pos, block in data.blocks(mine):
            sums[index[pos]] = block.sum(axis=1, dtype=np.float64)
            for consume in consumers:
                consume(pos, block)
            bar.update(len(pos))
    if shard is not None:
        sums = distributed.all_reduce_array(sums, "sum")
        if data.library is not None:
            data.library = distributed.all_reduce_array(np.nan_to_num(data.library, nan=-1.0), "max")
            data.library[data.library < 0] = np.nan
    return sums


# ---------------------------------------------------------------------------------------- the one function
@dataclass
class ExpressionInput:
    """What :func:`open_expression` read: ``data`` (AnnData in memory, or a ChunkedExpression to stream),
    the normalisation applied (``"cpm"`` / ``"none"``) and the lines saying what was chosen and why."""

    data: object
    streamed: bool
    normalize: str
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.streamed:
            self.data.matrix.close()


def open_expression(
    path: str | os.PathLike,
    *,
    samples: str | os.PathLike | None = None,
    where: Sequence[str] = (),
    normalize: str = "auto",
    stream: str = "auto",
    fmt: str | None = None,
    genes_in_rows: bool | None = None,
    expected_genes=None,
    genes: Callable[[list[str]], list[str] | None] | None = None,
    layer: str | None = None,
    copies: float = 6.0,
    quiet: bool = False,
) -> ExpressionInput:
    """Read an expression file for training or inference, in memory or streamed (said and returned).

    Parameters
    ----------
    path : h5ad, CSV/TSV, Parquet, GCT, GCTX, GEO series matrix or an ARCHS4 HDF5 file.
    samples : a file of sample ids to keep (``--samples``).
    where : ``COLUMN=VALUE`` clauses on the file's sample metadata (``--where``), all applying.
    normalize : ``auto`` (ARCHS4 counts -> log2(CPM + 1), other files as they are), ``cpm`` or ``none``;
        ``counts`` for a model trained on normalised counts (cpm when these data hold counts).
    stream : ``auto`` (stream when the in-memory path would need more than half the memory available),
        ``on`` or ``off`` (``never``: the caller cannot stream; data that do not fit are an error).
    fmt, genes_in_rows, expected_genes : as :func:`gengen.io.expression.read_expression`.
    genes : given the file's gene names, the names the caller needs (None: all); only those are read
        into memory, and the size estimate counts only them.
    layer : an h5ad input's layer to read instead of ``X`` (``--layer``).
    copies : peak memory of the in-memory path in copies of the float32 matrix (the VAE's float64
        gene ranking makes ~6; the GGAN's split and z-scores ~3).
    quiet : no status lines.

    Returns
    -------
    An :class:`ExpressionInput`; when streamed, its ``data`` keeps the file open until ``close()``.
    """
    from gengen.io.formats import check_layer, input_format
    from gengen.io.readers import read_whole

    if stream not in (*STREAM_CHOICES, IN_MEMORY_ONLY):
        raise GengenError(f"--stream must be one of {', '.join(STREAM_CHOICES)}, got {stream!r}.")
    clauses = parse_where(where)
    ids = read_sample_ids(samples) if samples is not None else None
    source = str(path)
    kind = input_format(path, fmt)
    check_layer(layer, kind, source)
    matrix = None
    if kind in CHUNKABLE and not (genes_in_rows and kind == "h5ad"):
        try:
            matrix = open_chunked(path, kind, layer)
        except GengenError:  # h5ad/GCTX/Parquet that cannot be read by chunks: the whole-file reader says why
            if kind == "archs4" or stream == "on":
                raise
        if matrix is not None and kind == "parquet" and genes_in_rows is not False:
            from gengen.io.checks import genes_are_rows

            if genes_are_rows(matrix.sample_ids(), matrix.genes, genes_in_rows=genes_in_rows,
                              expected_genes=expected_genes, quiet=True):  # genes x samples: read whole, transposed
                matrix.close()
                matrix = None
    if matrix is None:
        if stream == "on":
            raise GengenError(f"--stream on: {source!r} is {kind}, which cannot be read by chunks; convert it to h5ad "
                              "or Parquet (or use --stream auto).")
        adata = read_whole(path, kind, genes_in_rows=genes_in_rows, expected_genes=expected_genes, layer=layer,
                           quiet=quiet)
        return _in_memory(adata, source, ids, clauses, normalize, quiet)
    try:
        metadata = (matrix.meta_columns(), matrix.meta_column)
        if ids is not None or clauses:
            rows, notes = select_samples(matrix.sample_ids(), metadata, source, samples=ids, where=clauses)
        else:
            rows, notes = np.arange(matrix.n_samples), []
        wanted = genes(list(matrix.genes)) if genes is not None else None
        n_genes = len(matrix.genes) if wanted is None else len(wanted)
        nbytes = float(len(rows)) * n_genes * 4
        free = available_memory()
        too_big = free is not None and nbytes * copies > MEMORY_SHARE * free
        streamed = stream == "on" or (stream == "auto" and too_big)
        data = ChunkedExpression(matrix, rows, list(matrix.genes), [np.array([j]) for j in range(len(matrix.genes))])
        raw = pilot(data) if normalize in ("counts", "cpm") else None
        applied, why = resolve_normalisation(normalize, matrix, raw, source=source)
        data.normalize = applied  # (negative values are refused block by block as they are read)
        if not streamed and free is not None and nbytes * copies > free:
            raise GengenError(f"{source}: {len(rows):,} samples x {n_genes:,} genes need about {gib(nbytes * copies)} in "
                              f"memory, more than the {gib(free)} available; choose fewer samples (--samples, --where)"
                              + (" or stream them (--stream auto)." if stream == "off" else "."))
        size = (f"{len(rows):,} samples x {n_genes:,} genes = {gib(nbytes)} as float32; the in-memory path peaks "
                f"near {gib(nbytes * copies)}, {'over' if too_big else 'within'} half of the "
                f"{gib(free) if free is not None else 'unknown'} available")
        if streamed:
            how = "--stream on" if stream == "on" else "too large to hold comfortably"
            notes.append(f"streamed from {Path(source).name} by blocks of {matrix.block_samples:,} samples ({how}: {size})")
        else:
            notes.append(f"read into memory ({size}" + (", --stream off" if stream == "off" and too_big else "") + ")")
        if why:
            notes.append(why)
        plain = not streamed and kind != "archs4" and ids is None and not clauses and applied == "none"
        if plain:  # today's reader, today's numbers, today's messages
            matrix.close()
            adata = read_whole(path, kind, genes_in_rows=genes_in_rows, expected_genes=expected_genes, layer=layer,
                               quiet=quiet)
            return ExpressionInput(adata, False, applied, notes)
        for line in [matrix.describe(), *notes]:
            log(f"data: {line}", quiet)
        if streamed:
            data.notes = notes
            return ExpressionInput(data, True, applied, notes)
        if wanted is not None:
            data = data.select([g for g in data.names if g in set(wanted)])
        adata = data.to_anndata(quiet)
        matrix.close()
        from gengen.io.checks import validate_expression

        return ExpressionInput(validate_expression(adata, source, quiet=quiet), False, applied, notes)
    except BaseException:
        matrix.close()
        raise


def _in_memory(adata: ad.AnnData, source: str, ids, clauses, normalize: str, quiet: bool) -> ExpressionInput:
    """Samples chosen and counts normalised on an AnnData already in memory (text tables, GCT)."""
    notes: list[str] = []
    if ids is not None or clauses:
        obs = adata.obs
        rows, notes = select_samples(adata.obs_names.astype(str).to_numpy(), (list(map(str, obs.columns)),
                                     lambda c: obs[c].to_numpy()), source, samples=ids, where=clauses)
        adata = adata[rows].copy()
    from gengen.io.checks import strided_sample

    applied, why = resolve_normalisation(normalize, None, strided_sample(np.asarray(adata.X)), source=source)
    if applied == "cpm":
        X = np.asarray(adata.X, np.float32)
        adata.X = normalise_counts(X.copy(), X.sum(axis=1, dtype=np.float64))
    if why:
        notes.append(why)
    for line in notes:
        log(f"data: {line}", quiet)
    return ExpressionInput(adata, False, applied, notes)
