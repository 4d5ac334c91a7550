"""Where a training loop's batches come from: the matrix in device memory, or block-shuffled reads of a
file larger than memory; and, under torchrun, each rank's share of every batch.

Both sources give the loop the same thing, ``for b, tensors in rows.epoch(generator, n_batches, skip)``,
and draw an epoch's order from the loop's own permutation generator at the start of the epoch, so
checkpoints and ``--resume`` work as before (the generator is saved as it was when the epoch began;
a resumed epoch redraws the same order and skips the ``skip`` batches already done without reading them).

**In memory** (:class:`InMemoryRows`): exactly today's loop: ``torch.randperm(n)`` cut into
``n_batches`` slices by ``torch.tensor_split``, each batch gathered from the device tensors.

**Streamed** (:class:`StreamedRows`): the training samples are grouped by the file's blocks (the
on-disk chunks along the sample axis). Each epoch draws a uniformly random order of the blocks, lays
them out in that order in windows of about ``window_rows`` samples, and shuffles each window
uniformly; batches are consecutive slices of that order. So every training sample is seen exactly
once per epoch; each epoch's order is a fresh draw; the block order being uniform, a sample is equally
likely to sit anywhere in the epoch; and a batch mixes samples from every block of its window (about
``window_rows / block`` blocks drawn at random from the whole file), which, unlike the in-memory
permutation, is not a draw from the whole file at once. The next window is read by a background
thread while the current one trains. The first epoch's transformed samples are kept in a local
temporary file (:class:`RowCache`), so later epochs cost no decompression.

**Under torchrun** (a :class:`gengen.distributed.Shard`): every rank draws the same order from the same
generator; in memory, rank r takes the r-th of ``world`` equal parts of each global batch (so
DistributedDataParallel's gradient average is the gradient of the global batch); streamed, rank r owns
the file's blocks r, r + world, r + 2 world, ... (its own share of the chunks: it reads and caches only
those), visits them in the epoch's block order, in batches of ``batch / world``, the same number of
samples on every rank (a bigger share leaves out its last few samples, different ones each epoch).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gengen.io.chunked import ChunkedExpression

WINDOW_BYTES = 128 << 20  # one shuffled window of transformed training rows, in memory at a time (two with prefetch)


@dataclass(frozen=True)
class Shard:
    """This process's place among the data-parallel ranks."""

    rank: int = 0
    world: int = 1


class InMemoryRows:
    """Batches gathered from tensors that hold every training sample on the device (today's loop)."""

    streamed = False

    def __init__(self, tensors: Sequence, shard: Shard | None = None):
        self.tensors = list(tensors)
        self.n = int(self.tensors[0].shape[0])
        self.shard = shard if shard is not None and shard.world > 1 else None

    def epoch(self, generator, n_batches: int, skip: int = 0) -> Iterator[tuple[int, tuple]]:
        import torch

        perm = torch.randperm(self.n, generator=generator).to(self.tensors[0].device)
        for b, idx in enumerate(torch.tensor_split(perm, n_batches)):
            if b < skip:  # done before the run was interrupted
                continue
            if self.shard is not None:
                idx = torch.tensor_split(idx, self.shard.world)[self.shard.rank]
            yield b, tuple(t[idx] for t in self.tensors)


class StreamedRows:
    """Block-shuffled batches of training samples read from a :class:`~gengen.io.chunked.ChunkedExpression`.

    Parameters
    ----------
    data : the file's chosen samples and columns.
    positions : the training samples (sorted positions among ``data``'s samples).
    transform : raw block (samples x columns, normalised) -> the loop's arrays (e.g. scaled X; or
        z-scored landmarks and targets); it may work in place on the block it is given.
    device : where batches go.
    row_bytes : bytes of one transformed sample (sizes the windows).
    shard : this rank's share (None: all).
    cache : keep the transformed samples of the first epoch in a local temporary file for the next
        ones (see :class:`RowCache`), when the disk has room.
    """

    streamed = True

    def __init__(self, data, positions: np.ndarray, transform: Callable[[np.ndarray], list[np.ndarray]], *, device,
                 row_bytes: int, shard: Shard | None = None, window_bytes: int | None = None, cache: bool = True):
        self.data = data
        self.positions = np.asarray(positions, np.int64)
        self.n = len(self.positions)
        self.transform = transform
        self.device = device
        self.shard = shard if shard is not None and shard.world > 1 else Shard()
        step = data.matrix.block_samples
        file_rows = data.rows[self.positions]
        block_of = file_rows // step
        cuts = np.flatnonzero(np.diff(block_of)) + 1
        self.blocks = np.split(np.arange(self.n), cuts)  # indices into positions, per on-disk block
        # under torchrun rank r owns blocks r, r + world, ...: it reads (and caches) only those; a file of
        # fewer blocks than 4 per rank has its blocks cut in pieces (ranks then share some chunks)
        world, rank = self.shard.world, self.shard.rank
        if world > 1 and len(self.blocks) < 4 * world:
            pieces = -(-4 * world // max(1, len(self.blocks)))
            self.blocks = [p for blk in self.blocks for p in np.array_split(blk, pieces) if len(p)]
        self.mine = [k for k in range(len(self.blocks)) if k % world == rank]
        owned = [sum(len(self.blocks[k]) for k in range(r, len(self.blocks), world)) for r in range(world)]
        self.local_n = int(min(owned))  # the same number of samples (and steps) on every rank
        if self.local_n < 1:
            from gengen.errors import GengenError

            raise GengenError(f"{self.n} training samples are too few to share among {world} processes.")
        self.window_rows = int(max(1, (window_bytes or WINDOW_BYTES) // max(1, row_bytes)))
        self.row_bytes = row_bytes
        self.use_cache = cache
        self.cache: RowCache | None = None
        self.rows_read = 0

    def order(self, generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """This epoch's order of this rank's training samples (indices into ``positions``) and its
        windows (start, stop) in that order, drawn from ``generator`` (the same draws on every rank)."""
        import torch

        block_order = torch.randperm(len(self.blocks), generator=generator).numpy()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        owned = set(self.mine)
        parts, windows, start, current = [], [], 0, []
        size = 0
        for k in (k for k in block_order if k in owned):
            current.append(self.blocks[k])
            size += len(self.blocks[k])
            if size >= self.window_rows:
                window = np.concatenate(current)
                parts.append(window[rng.permutation(len(window))])
                windows.append((start, start + len(window)))
                start += len(window)
                current, size = [], 0
        if current:
            window = np.concatenate(current)
            parts.append(window[rng.permutation(len(window))])
            windows.append((start, start + len(window)))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64), windows

    def _load(self, picks: np.ndarray) -> list[np.ndarray]:
        """The transformed arrays of training samples ``picks`` (indices into positions), in that order:
        from the cache when it holds them all, else read in file order (and cached), then put in the
        window's order (two copies of the window at most)."""
        sorter = np.argsort(picks, kind="stable")  # positions are sorted: this is file order
        ordered = picks[sorter]
        if self.cache is not None and self.cache.holds(ordered):
            arrays = self.cache.read(ordered)
        else:
            raw = np.concatenate([block for _, block in self.data.blocks(self.positions[ordered])])
            self.rows_read += len(picks)
            arrays = self.transform(raw)
            if self.use_cache and self.cache is None:
                self.cache = RowCache.open(self.n, [a.shape[1] for a in arrays], self.local_n)
                self.use_cache = self.cache is not None
            if self.cache is not None:
                self.cache.write(ordered, arrays)
        back = np.empty_like(sorter)
        back[sorter] = np.arange(len(sorter))
        return [a[back] for a in arrays]

    def epoch(self, generator, n_batches: int, skip: int = 0) -> Iterator[tuple[int, tuple]]:
        import torch

        order, windows = self.order(generator)
        m = self.local_n
        sizes = [len(c) for c in np.array_split(np.arange(m), n_batches)]
        first = int(np.sum(sizes[: min(skip, n_batches)]))  # the samples of skipped batches are never read
        spans = [(max(a, first), min(b, m)) for a, b in windows if b > first and a < m]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            pending = pool.submit(self._load, order[spans[0][0] : spans[0][1]]) if spans else None
            carry: list[np.ndarray] | None = None  # the rows a window left over (fewer than a batch)
            b = skip
            for i, _ in enumerate(spans):
                arrays = pending.result()
                pending = pool.submit(self._load, order[spans[i + 1][0] : spans[i + 1][1]]) if i + 1 < len(spans) else None
                at = 0
                if carry is not None:  # a batch that straddles two windows
                    need = sizes[b] - len(carry[0])
                    if len(arrays[0]) < need:
                        carry = [np.concatenate([c, a]) for c, a in zip(carry, arrays, strict=True)]
                        continue
                    yield b, tuple(torch.tensor(np.concatenate([c, a[:need]]), device=self.device)
                                   for c, a in zip(carry, arrays, strict=True))
                    b, at, carry = b + 1, need, None
                while b < n_batches and len(arrays[0]) - at >= sizes[b]:
                    take = sizes[b]
                    # a fresh (aligned) tensor per batch: BLAS kernels can round differently on a misaligned
                    # view, and a resumed epoch must see its batches exactly as an uninterrupted one did
                    batch = tuple(torch.tensor(a[at : at + take], device=self.device) for a in arrays)
                    at += take
                    yield b, batch
                    b += 1
                if at < len(arrays[0]):
                    carry = [a[at:].copy() for a in arrays]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RowCache:
    """Training samples in their transformed (float32) form, in a temporary file: the first epoch reads
    the compressed input and writes here; later epochs read here, at disk or page-cache speed with
    almost no CPU. The file is unlinked as soon as it is created, so nothing is left behind, even after
    ``kill -9``; it lives in ``$GENGEN_CACHE_DIR`` (default: the system's temporary folder, unless that is
    a RAM disk) and is used only when that disk keeps 1 GB free beside it (``GENGEN_CACHE=0``: never). Reads use ``pread`` into the
    process's own buffers (a memory map would count the file's pages as resident memory)."""

    def __init__(self, fd: int, widths: list[int], n: int):
        self.fd, self.widths, self.width = fd, widths, int(sum(widths))
        self.have = np.zeros(n, bool)

    @classmethod
    def open(cls, n: int, widths: list[int], rows: int) -> RowCache | None:
        import os
        import shutil
        import tempfile

        directory = os.environ.get("GENGEN_CACHE_DIR") or tempfile.gettempdir()
        if os.environ.get("GENGEN_CACHE", "1") == "0":  # turned off
            return None
        need = int(rows) * int(sum(widths)) * 4
        try:
            if "GENGEN_CACHE_DIR" not in os.environ and _on_ram_disk(directory):
                return None
            if shutil.disk_usage(directory).free < need + (1 << 30):
                return None
            fd, path = tempfile.mkstemp(prefix=".gengen-cache-", dir=directory)
            os.unlink(path)
            os.ftruncate(fd, n * int(sum(widths)) * 4)  # sparse: only the rows written take space
        except OSError:
            return None
        import atexit

        cache = cls(fd, list(widths), n)
        atexit.register(cache.close)
        return cache

    def holds(self, idx: np.ndarray) -> bool:
        return bool(self.have[idx].all())

    def _runs(self, idx: np.ndarray):
        cuts = np.flatnonzero(np.diff(idx) != 1) + 1
        at = 0
        for run in np.split(idx, cuts):
            yield at, int(run[0]), len(run)
            at += len(run)

    def write(self, idx: np.ndarray, arrays: list[np.ndarray]) -> None:
        import os

        rows = np.ascontiguousarray(np.concatenate(arrays, axis=1) if len(arrays) > 1 else arrays[0], np.float32)
        for at, first, k in self._runs(idx):
            os.pwrite(self.fd, memoryview(rows[at : at + k]).cast("B"), first * self.width * 4)
        self.have[idx] = True

    def read(self, idx: np.ndarray) -> list[np.ndarray]:
        import os

        rows = np.empty((len(idx), self.width), np.float32)
        for at, first, k in self._runs(idx):
            view = memoryview(rows[at : at + k]).cast("B")
            done = 0
            while done < len(view):
                done += os.preadv(self.fd, [view[done:]], first * self.width * 4 + done)
        edges = np.cumsum([0, *self.widths])
        return [rows[:, a:b] if len(self.widths) > 1 else rows for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def close(self) -> None:
        import os

        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _on_ram_disk(directory: str) -> bool:
    """Whether ``directory`` is on a tmpfs (a cache there would take memory, not disk)."""
    import os

    try:
        path = os.path.realpath(directory)
        best, kind = "", ""
        with open("/proc/mounts") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")) \
                        and len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
        return kind in ("tmpfs", "ramfs")
    except OSError:
        return False


def rows_for(arrays: Sequence, device, shard: Shard | None = None):
    """The batch source for a loop's training data: a :class:`StreamedRows` as given, else the arrays
    moved to ``device`` as float32 tensors (:class:`InMemoryRows`)."""
    if len(arrays) == 1 and isinstance(arrays[0], StreamedRows):
        return arrays[0]
    import torch

    return InMemoryRows([torch.as_tensor(a, dtype=torch.float32, device=device) for a in arrays], shard)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """``ceil(n / batch_size)``, at least one (the loops' rule)."""
    return max(1, math.ceil(n / batch_size))


# ------------------------------------------------------------- shared by the streamed VAE and GGAN trainers
VAL_CACHE_BYTES = 128 << 20


def stream_fingerprint(data: ChunkedExpression, row_sums: np.ndarray) -> dict:
    """What ``--resume`` checks the data by: the chosen samples' ids, the genes, the normalisation and
    every sample's sum over the genes (from the statistics pass, so nothing is read twice; a sum per
    sample does not depend on how the pass was split over torchrun's ranks)."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, data.obs_names)).encode() + b"\x1e")
    h.update("\x1f".join(data.names).encode() + b"\x1e")
    h.update(data.normalize.encode())
    h.update(np.ascontiguousarray(row_sums, dtype=np.float64).tobytes())
    return {"shapes": [[data.n_obs, data.n_vars]], "sha256": h.hexdigest(), "sampled": False,
            "how": "streamed: sample ids, genes and each sample's sum"}


def validation_subset(val_idx: np.ndarray, row_bytes: int, seed: int) -> np.ndarray:
    """The held-out samples scored each epoch: all of them if they fit in ``VAL_CACHE_BYTES``, else a
    seeded random subset of that size (sorted)."""
    cap = max(1, VAL_CACHE_BYTES // max(1, row_bytes))
    if len(val_idx) <= cap:
        return np.asarray(val_idx)
    return np.sort(np.random.default_rng(seed + 1).choice(val_idx, cap, replace=False))


def read_rows(data: ChunkedExpression, rows: np.ndarray, transform, *, quiet: bool = True) -> np.ndarray:
    """The transformed values of samples ``rows`` (sorted positions), in memory."""
    from gengen.runtime import Progress

    parts, out = [], None
    with Progress(len(rows), "reading validation samples", quiet) as bar:
        for _, block in data.blocks(rows):
            parts.append(transform(block))
            bar.update(len(block))
    if parts:
        out = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    return out
