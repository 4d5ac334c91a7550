"""Tybalt preprocessing: pick the most variable genes, scale each to [0, 1] on the training split.

Tybalt ranked genes by pandas ``.mad()`` -- the *mean* absolute deviation -- while the paper says
*median* absolute deviation. Both are offered (``median-ad`` default, ``mean-ad`` for the original
code); the choice is recorded in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gengen.errors import GengenError
from gengen.io.expression import LINEAR_MAX, looks_like_counts, strided_sample
from gengen.recipes import GENE_RANKS
from gengen.training import split_indices  # noqa: F401  (moved to gengen.training; old import path)


def gene_dispersion(X: np.ndarray, method: str = "median-ad") -> np.ndarray:
    """Per-gene spread used to rank genes (samples in rows)."""
    X = np.asarray(X, dtype=np.float64)
    if method == "median-ad":
        return np.median(np.abs(X - np.median(X, axis=0)), axis=0)
    if method == "mean-ad":
        return np.mean(np.abs(X - X.mean(axis=0)), axis=0)
    if method == "variance":
        return X.var(axis=0)
    raise GengenError(f"unknown --gene-rank {method!r}; use one of {', '.join(GENE_RANKS)}.")


def select_variable_genes(X: np.ndarray, n_genes: int, method: str = "median-ad") -> np.ndarray:
    """Column indices of the ``n_genes`` most dispersed genes, in their original column order.

    Ties are broken by the *mean* absolute deviation, then by column order, so the choice is
    deterministic even for median-AD, which ties often on discretised data.
    """
    n_genes = min(int(n_genes), X.shape[1])
    primary = gene_dispersion(X, method)
    secondary = gene_dispersion(X, "mean-ad") if method != "mean-ad" else np.zeros_like(primary)
    order = np.lexsort((np.arange(X.shape[1]), -secondary, -primary))
    return np.sort(order[:n_genes])


LOG_CHOICES = ("auto", "yes", "no")


def resolve_log(choice: str, X: np.ndarray) -> tuple[bool, str]:
    """Decide on log2(x + 1) for ``--log auto|yes|no``; returns (apply, a sentence saying why)."""
    if choice not in LOG_CHOICES:
        raise GengenError(f"--log must be one of {', '.join(LOG_CHOICES)}, got {choice!r}.")
    if choice == "no":
        return False, "log2(x+1) off (--log no)"
    if choice == "yes":
        if np.nanmin(X) < 0:
            raise GengenError(
                "--log yes needs non-negative values (counts or TPM), but the data hold negative values: "
                "they look log-transformed or centred already; use --log no."
            )
        return True, "log2(x+1) applied before scaling (--log yes)"
    counts, why = looks_like_counts(X)
    if counts:
        return True, (f"the data look like raw counts or linear-scale expression ({why}): log2(x+1) applied "
                      "before scaling (--log no to keep them)")
    return False, f"the data look log-scale or normalised ({why}): used as they are"


@dataclass
class MinMaxScaler:
    """Per-gene affine map to [0, 1], fit on training samples only; constant genes map to 0.

    With ``log2p1`` the data are first mapped through log2(x + 1) (raw counts); ``inverse_transform``
    undoes both, so decoded values come back in the input's units.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    log2p1: bool = False

    @classmethod
    def fit(cls, X: np.ndarray, log2p1: bool = False) -> MinMaxScaler:
        X = np.log2(np.asarray(X, dtype=np.float32) + 1) if log2p1 else np.asarray(X, dtype=np.float32)
        return cls(X.min(axis=0), X.max(axis=0), log2p1)

    @property
    def scale(self) -> np.ndarray:
        span = (self.maximum - self.minimum).astype(np.float32)
        return np.where(span > 0, span, np.float32(1.0)).astype(np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        self.check_scale(X)
        if self.log2p1:
            X = np.log2(X + 1)
        return ((X - self.minimum) / self.scale).astype(np.float32)

    def check_scale(self, X: np.ndarray) -> None:
        """Refuse data on another scale than the training data's: log-scale values given to a model
        trained on counts (or the reverse) would be encoded as silent nonsense."""
        flat = strided_sample(X)
        if flat.size == 0:
            return
        lo, hi = float(flat.min()), float(flat.max())
        if self.log2p1:
            integer = bool(np.all(flat == np.round(flat)))
            if lo < 0 or (not integer and hi < 30):
                raise GengenError(
                    "this model was trained on raw counts / linear-scale values (log2(x+1) applied), but these data "
                    f"range from {lo:.3g} to {hi:.3g}: they look log-transformed already; give the model values on "
                    "the training scale."
                )
        else:
            trained_hi = float(np.max(self.maximum)) if self.maximum.size else 0.0
            if lo >= 0 and hi > LINEAR_MAX and hi > 10 * max(trained_hi, 1.0):
                raise GengenError(
                    f"this model was trained on values up to {trained_hi:.3g} (log scale), but these data reach "
                    f"{hi:,.0f}: they look like raw counts or linear-scale values; log-transform them as the "
                    "training data were (e.g. log2(x+1))."
                )

    def inverse_transform(self, X01: np.ndarray) -> np.ndarray:
        X = np.asarray(X01, dtype=np.float32) * self.scale + self.minimum
        return (np.exp2(X) - 1 if self.log2p1 else X).astype(np.float32)

    def to_dict(self) -> dict:
        return {"type": "minmax", "min": self.minimum.astype(float).tolist(), "max": self.maximum.astype(float).tolist(),
                "log2p1": self.log2p1}

    @classmethod
    def from_dict(cls, d: dict) -> MinMaxScaler:
        if d.get("type") != "minmax" or len(d.get("min", [])) != len(d.get("max", [])):
            raise GengenError("checkpoint scaler is malformed; the config.json is corrupted.")
        return cls(np.asarray(d["min"], dtype=np.float32), np.asarray(d["max"], dtype=np.float32),
                   bool(d.get("log2p1", False)))
