"""Inference under the model object: which columns of a data set make the landmarks, and the generator's
batched forward pass on the device.

:class:`LandmarkPlan` is what :meth:`gengen.ggan.GGANModel.plan` finds for a query (by name, a symbol column
or array probes), applied to its values in memory or block by block (:mod:`gengen.ggan.infer`);
:func:`predict_z` is the one forward pass every prediction goes through
(:meth:`gengen.ggan.GGANModel.predict_array`). Both know arrays and networks, not the model object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gengen.runtime import autocast, on_device, resolve_precision, small_model_threads


@dataclass
class LandmarkPlan:
    """How to build the model's landmark matrix from a data set's columns.

    ``columns[i]`` lists the data columns averaged into landmark ``i`` (empty: missing).
    """

    columns: list[list[int]]
    how: str  # "name", "var column <c>" or "probes"

    @property
    def missing(self) -> np.ndarray:
        return np.array([len(c) == 0 for c in self.columns])

    def apply(self, X: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
        """(n, n_landmarks) in original units; missing landmarks take ``fill`` (training means)."""
        X = np.asarray(X, dtype=np.float32)
        out = np.empty((X.shape[0], len(self.columns)), dtype=np.float32)
        single = [i for i, c in enumerate(self.columns) if len(c) == 1]
        if single:
            out[:, single] = X[:, [self.columns[i][0] for i in single]]
        for i, c in enumerate(self.columns):
            if len(c) > 1:
                out[:, i] = X[:, c].mean(axis=1)
            elif not c:
                out[:, i] = fill[i] if fill is not None else np.nan
        return out


def predict_z(
    gen,
    x: np.ndarray,
    device,
    *, batch_size: int = 8192,
    precision: str = "auto",
    affine: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Deterministic generator output for z-scored landmarks, in batches, written into one array.

    ``precision`` as the training recipe's; ``auto``: bf16 autocast on a CUDA GPU (large inference
    batches are matrix-bound there: 4.0M vs 0.51M profiles/s on an H100 at 943 -> 3 x 3,000 -> 9,520),
    float32 on the CPU.
    ``affine=(scale, shift)`` maps the output per gene (``z * scale + shift``: back to original units)
    on the device. On a GPU the output of 10,000 genes is ~40 KB per profile, so copying it to the host
    is the cost: each batch is copied into one of two pinned buffers while the next batch computes.
    """
    import torch

    gen.eval()
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    out = np.empty((x.shape[0], gen.n_out), np.float32)
    cuda = device.type == "cuda"
    if affine is not None:
        scale, shift = (torch.as_tensor(np.asarray(a, np.float32), device=device) for a in affine)
    rows = max(1, min(batch_size, x.shape[0]))
    staging = [torch.empty((rows, gen.n_out), pin_memory=True) for _ in range(2)] if cuda else []
    pending: list = []  # (start, rows, buffer, event) of the batch being copied to the host

    def drain() -> None:
        s0, k, buf, event = pending.pop()
        event.synchronize()
        out[s0 : s0 + k] = buf[:k].numpy()

    n_params = sum(p.numel() for p in gen.parameters())
    with torch.inference_mode(), small_model_threads(n_params, device), on_device(device):
        for i, s in enumerate(range(0, x.shape[0], batch_size)):
            xb = torch.as_tensor(x[s : s + batch_size], dtype=torch.float32, device=device)
            with autocast(precision, device):
                pred = gen(xb)
            pred = pred.float()
            if affine is not None:
                pred = torch.addcmul(shift, pred, scale)
            if not cuda:
                out[s : s + len(xb)] = pred.numpy()
                continue
            buf = staging[i % 2]
            buf[: len(xb)].copy_(pred, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            if pending:
                drain()  # the previous batch, while this one computes and copies
            pending.append((s, len(xb), buf, event))
        if pending:
            drain()
    return out
