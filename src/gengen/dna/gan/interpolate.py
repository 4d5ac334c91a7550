"""Latent interpolation: what a DNA GAN makes along paths between pairs of latent points (Killoran et al.
2017 drew such paths to show the generator varies smoothly).

Paths are **spherical** (slerp, White 2016): z ~ N(0, I) in 100 dimensions lies near the sphere of
radius ~10, and a straight line between two such points passes through norms down to ~7 in the middle,
a region the generator never saw in training; the great-circle path keeps the norm where the samples
live (for two independent draws it interpolates the angle, about 90 degrees, at a constant rate).
``method="linear"`` is offered for comparison.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gengen.errors import GengenError

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.designer.objectives import Objective
    from gengen.dna.gan.core import GANModel

METHODS = ("slerp", "linear")


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``z0`` and ``z1`` ``(P, d)`` at fractions ``t`` ``(K,)``:
    ``(P, K, d)``. Falls back to the straight line for (anti)parallel pairs, where the arc is undefined."""
    a = z0 / z0.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = z1 / z1.norm(dim=1, keepdim=True).clamp_min(1e-12)
    omega = torch.arccos((a * b).sum(dim=1).clamp(-1, 1))[:, None]  # (P, 1)
    so = torch.sin(omega)
    t = t[None, :]
    straight = so.abs() < 1e-6
    w0 = torch.where(straight, 1 - t, torch.sin((1 - t) * omega) / so.where(~straight, torch.ones_like(so)))
    w1 = torch.where(straight, t, torch.sin(t * omega) / so.where(~straight, torch.ones_like(so)))
    return w0[..., None] * z0[:, None, :] + w1[..., None] * z1[:, None, :]


def check_steps(steps: int | None) -> None:
    """``--interpolate K`` needs the two ends at least (``None``: no interpolation asked)."""
    if steps is not None and steps < 2:
        raise GengenError(f"--interpolate needs at least 2 steps (the two ends), got {steps}.")


def latent_paths(z0: torch.Tensor, z1: torch.Tensor, steps: int, *, method: str = "slerp") -> torch.Tensor:
    """``(P, steps, d)`` points from ``z0`` to ``z1`` (both ends included)."""
    if method not in METHODS:
        raise GengenError(f"interpolation must be one of {', '.join(METHODS)}, got {method!r}.")
    check_steps(steps)
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype)
    if method == "linear":
        return (1 - t)[None, :, None] * z0[:, None, :] + t[None, :, None] * z1[:, None, :]
    return slerp(z0, z1, t)


@dataclass
class Interpolation:
    """Sequences along latent paths: ``table`` (path, step, t, id, sequence, gc, distances from the
    path's first sequence and from the previous step, one score column per objective) and ``codes``."""

    table: pd.DataFrame
    codes: np.ndarray
    score_columns: list[str]
    method: str

    def write(self, path: str | os.PathLike) -> tuple[Path, Path, Path]:
        """FASTA at ``path``, the table (``.tsv``) and the figure (``.png``) beside it, each atomically."""
        from gengen.dna.designer.figures import plot_interpolation
        from gengen.dna.designer.result import design_outputs
        from gengen.io.sequences import write_fasta
        from gengen.runtime import atomic_path

        fasta, tsv, png = design_outputs(path)
        t = self.table
        cols = [t[c].to_numpy() for c in self.score_columns]
        desc = [f"t={t['t'].iat[i]:.3f} path={t['path'].iat[i]} gc={t['gc'].iat[i]:.3f}"
                + "".join(f" {c}={v[i]:.4f}" for c, v in zip(self.score_columns, cols)) for i in range(len(t))]
        write_fasta(fasta, list(t["id"]), list(t["sequence"]), descriptions=desc)
        with atomic_path(tsv) as tmp:
            t.to_csv(tmp, sep="\t", index=False, float_format="%.5g")
        plot_interpolation(t, png, self.score_columns,
                           title=f"{t['path'].nunique()} latent paths ({self.method}), {t['step'].nunique()} steps")
        return fasta, tsv, png

    def summary_line(self) -> str:
        t = self.table
        steps = t["step"].nunique()
        per_step = t.loc[t["step"] > 0, "distance_from_previous"].mean()
        ends = t.loc[t["step"] == steps - 1, "distance_from_start"].mean()
        return (f"{t['path'].nunique()} latent paths of {steps} steps ({self.method}): "
                f"{per_step:.2f} bases change per step on average, {ends:.1f} from end to end")


@torch.no_grad()
def interpolate(
    gan: GANModel,
    n_paths: int = 10,
    steps: int = 8,
    *,
    objectives: list[Objective] | None = None,
    method: str = "slerp",
    seed: int = 0,
) -> Interpolation:
    """Sequences (argmax of G(z)) along ``n_paths`` paths of ``steps`` points between pairs of latent
    draws z ~ N(0, I) (seeded), scored by ``objectives`` if given.

    Parameters
    ----------
    gan : a trained model.
    n_paths, steps : number of paths and points per path (both ends included).
    objectives : score every sequence with these (exact one-hot scores).
    method : ``"slerp"`` (default, see the module docstring) or ``"linear"``.
    seed : seeds the endpoints (the second endpoints follow the first).

    Returns
    -------
    :class:`Interpolation`.
    """
    import pandas as pd

    from gengen.dna.designer.objectives import column_names, exact_scores
    from gengen.io.sequences import codes_to_one_hot, decode_codes, gc_content

    if n_paths < 1:
        raise GengenError(f"-n (paths) must be positive, got {n_paths}.")
    ends = gan.sample_latent(2 * n_paths, seed)
    z = latent_paths(ends[:n_paths], ends[n_paths:], steps, method=method)  # (P, K, d)
    flat = z.reshape(n_paths * steps, -1)
    training = gan.generator.training
    soft = gan.generate_soft(flat)
    gan.generator.train(training)
    codes = soft.argmax(dim=1).to(torch.uint8).cpu().numpy()
    per = codes.reshape(n_paths, steps, -1)
    from_start = (per != per[:, :1]).sum(axis=2).ravel()
    prev = np.concatenate([np.zeros((n_paths, 1), int), (per[:, 1:] != per[:, :-1]).sum(axis=2)], axis=1).ravel()
    path_idx, step_idx = np.divmod(np.arange(n_paths * steps), steps)
    table = pd.DataFrame({
        "path": path_idx + 1, "step": step_idx, "t": np.linspace(0, 1, steps)[step_idx],
        "id": [f"path{p + 1}_step{s}" for p, s in zip(path_idx, step_idx)], "sequence": decode_codes(codes),
        "gc": gc_content(codes), "distance_from_start": from_start, "distance_from_previous": prev,
        "z_norm": flat.norm(dim=1).cpu().numpy(),
    })
    cols: list[str] = []
    if objectives:
        cols = column_names(objectives)
        from gengen.dna.designer.design import borrowed

        with borrowed([o.predictor for o in objectives], gan.device):
            scores = exact_scores(objectives, codes_to_one_hot(codes, device=gan.device))
        for c, v in zip(cols, scores.T):
            table[c] = v
    return Interpolation(table, codes, cols, method)
