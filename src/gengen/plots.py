"""Figures written next to outputs (matplotlib, Agg backend; no screen needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gengen.runtime import atomic_path

if TYPE_CHECKING:
    import pandas as pd


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_curves(history: pd.DataFrame, panels: list[tuple[str, list[str]]], path, *, x: str = "epoch", title: str = ""):
    """One panel per (title, columns) pair of a history table; columns absent are skipped."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (panel_title, cols) in zip(axes[0], panels):
        for col in cols:
            if col in history.columns and history[col].notna().any():
                ax.plot(history[x], history[col], label=col.replace("_", " "))
        ax.set_xlabel(x)
        ax.set_title(panel_title)
        ax.legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_vae_history(history: pd.DataFrame, path) -> Path:
    """Reconstruction and KL, train and validation, per epoch."""
    return plot_curves(
        history,
        [("reconstruction (BCE x genes)", ["train_recon", "val_recon"]), ("KL divergence", ["train_kl", "val_kl"])],
        path,
        title="VAE training",
    )
