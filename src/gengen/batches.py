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
thread while the current one trains.

**Under torchrun** (a :class:`gengen.distributed.Shard`): every rank draws the same order from the same
generator; in memory, rank r takes the r-th of ``world`` equal parts of each global batch (so
DistributedDataParallel's gradient average is the gradient of the global batch); streamed, rank r
takes the r-th of ``world`` equal contiguous parts of the epoch's order (at most ``world - 1`` samples,
different each epoch, are left out) and reads only the blocks that part touches, in batches of
``batch / world``: each rank reads its own share of the chunks.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

WINDOW_BYTES = 256 << 20  # one shuffled window of transformed training rows, in memory at a time (two with prefetch)


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
        z-scored landmarks and targets).
    device : where batches go.
    row_bytes : bytes of one transformed sample (sizes the windows).
    shard : this rank's share (None: all).
    """

    streamed = True

    def __init__(self, data, positions: np.ndarray, transform: Callable[[np.ndarray], list[np.ndarray]], device,
                 row_bytes: int, shard: Shard | None = None, window_bytes: int = WINDOW_BYTES):
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
        self.window_rows = int(max(1, window_bytes // max(1, row_bytes)))
        self.rows_read = 0

    @property
    def local_n(self) -> int:
        """Training samples this rank visits per epoch."""
        return self.n // self.shard.world

    def order(self, generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """This epoch's order of training samples (indices into ``positions``) and its windows (start,
        stop) in that order, drawn from ``generator`` (the same on every rank)."""
        import torch

        block_order = torch.randperm(len(self.blocks), generator=generator).numpy()
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        parts, windows, start, current = [], [], 0, []
        size = 0
        for k in block_order:
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
        """The transformed arrays of training samples ``picks`` (indices into positions), in that order."""
        pos = self.positions[picks]
        sorter = np.argsort(pos, kind="stable")
        blocks, at = [], []
        for p, block in self.data.blocks(pos[sorter]):
            blocks.append(block)
            at.append(p)
        raw = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        arrays = self.transform(raw)
        back = np.empty_like(sorter)
        back[sorter] = np.arange(len(sorter))
        self.rows_read += len(picks)
        return [a[back] for a in arrays]

    def epoch(self, generator, n_batches: int, skip: int = 0) -> Iterator[tuple[int, tuple]]:
        import torch

        order, windows = self.order(generator)
        m = self.local_n
        lo, hi = self.shard.rank * m, self.shard.rank * m + m
        sizes = [len(c) for c in np.array_split(np.arange(m), n_batches)]
        bounds = np.concatenate([[0], np.cumsum(sizes)]) + lo
        first = int(bounds[min(skip, n_batches)])  # the samples of skipped batches are never read
        spans = [(max(a, first), min(b, hi)) for a, b in windows if b > first and a < hi]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            pending = pool.submit(self._load, order[spans[0][0] : spans[0][1]]) if spans else None
            current: list[np.ndarray] | None = None
            at = 0  # rows of ``current`` already handed out
            b = skip
            for i, _ in enumerate(spans):
                arrays = pending.result()
                pending = pool.submit(self._load, order[spans[i + 1][0] : spans[i + 1][1]]) if i + 1 < len(spans) else None
                if current is None or at >= len(current[0]):
                    current, at = arrays, 0
                else:  # a batch straddles two windows: the (small) remainder joins the next window once
                    current, at = [np.concatenate([c[at:], a]) for c, a in zip(current, arrays, strict=True)], 0
                while b < n_batches and len(current[0]) - at >= sizes[b]:
                    take = sizes[b]
                    # a fresh (aligned) tensor per batch: BLAS kernels can round differently on a misaligned
                    # view, and a resumed epoch must see its batches exactly as an uninterrupted one did
                    batch = tuple(torch.tensor(a[at : at + take], device=self.device) for a in current)
                    at += take
                    yield b, batch
                    b += 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


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
