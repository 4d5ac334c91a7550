"""Training helpers shared by the pipelines: the seeded train/validation split and the Adam factory.

They lived in ``gengen.vae`` (the split, an optimiser factory) and ``gengen.ggan`` (another optimiser
factory, a wrapper around the VAE's split); one copy here keeps every trainer's split and optimiser
the same. ``gengen.vae.preprocess.split_indices`` and the pipelines' ``make_optimizer`` names still
work (re-exported).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError

if TYPE_CHECKING:
    import torch

__all__ = ["make_optimizer", "split_indices"]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split; at least one validation sample when a fraction is asked.

    Parameters
    ----------
    n : number of samples.
    val_fraction : share held out for validation, in [0, 1) (0: every sample trains).
    seed : the split's seed (the same seed always gives the same split).

    Returns
    -------
    (train indices, validation indices), each sorted.
    """
    if not 0 <= val_fraction < 1:
        raise GengenError(f"validation fraction must be in [0, 1), got {val_fraction}.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n - n_val < 2:
        raise GengenError(f"only {n} samples: too few to train (need at least 2 training samples plus validation).")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, *, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has it for the parameters' device, else the
    foreach one (the same arithmetic, fewer kernel launches than the per-parameter loop).

    Parameters
    ----------
    params : the parameters to optimise (an iterator is fine: it is read once).
    lr : learning rate.
    weight_decay : L2 penalty (Adam's, not AdamW's).
    betas : Adam's (beta1, beta2); GANs usually take beta1 = 0.5.

    Returns
    -------
    The optimiser.
    """
    import torch

    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
