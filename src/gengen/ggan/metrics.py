"""Per-gene accuracy of predicted expression: MAE, Lin's concordance correlation (CCC), Pearson r.

Each metric is computed per target gene over samples (columns of ``(n_samples, n_genes)`` arrays),
as GGAN and D-GEX report them, and then averaged over genes by the caller. CCC is the headline
agreement score because, unlike Pearson, it penalises a shift or a wrong scale.
"""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "ccc", "pearson")


def _as2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def mae_per_gene(y_true, y_pred) -> np.ndarray:
    """Mean absolute error of each gene (column)."""
    return np.abs(_as2d(y_true) - _as2d(y_pred)).mean(axis=0)


def ccc_per_gene(y_true, y_pred) -> np.ndarray:
    """Lin's concordance correlation 2·cov / (var_t + var_p + (mean_t − mean_p)²), population moments.

    NaN (undefined, skipped in averages) where the truth is constant: agreement in variation means
    nothing there, and scoring it 1 for any method that predicts the constant would inflate every
    method's average alike.
    """
    t, p = _as2d(y_true), _as2d(y_pred)
    mt, mp = t.mean(axis=0), p.mean(axis=0)
    cov = ((t - mt) * (p - mp)).mean(axis=0)
    var_t = t.var(axis=0)
    denom = var_t + p.var(axis=0) + (mt - mp) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(var_t > 0, 2 * cov / np.where(denom > 0, denom, 1), np.nan)
    return out


def pearson_per_gene(y_true, y_pred) -> np.ndarray:
    """Pearson r of each gene; NaN where truth or prediction is constant (undefined)."""
    t, p = _as2d(y_true), _as2d(y_pred)
    tc, pc = t - t.mean(axis=0), p - p.mean(axis=0)
    denom = np.sqrt((tc**2).sum(axis=0) * (pc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (tc * pc).sum(axis=0) / np.where(denom > 0, denom, 1), np.nan)


def per_gene_metrics(y_true, y_pred, genes=None):
    """DataFrame with one row per gene: mae, ccc, pearson."""
    import pandas as pd

    t = _as2d(y_true)
    return pd.DataFrame(
        {
            "mae": mae_per_gene(t, y_pred),
            "ccc": ccc_per_gene(t, y_pred),
            "pearson": pearson_per_gene(t, y_pred),
        },
        index=pd.Index(list(genes) if genes is not None else range(t.shape[1]), name="gene"),
    )


def summarize(y_true, y_pred) -> dict[str, float]:
    """Gene-averaged MAE, CCC and Pearson (the NaN CCC / Pearson of constant genes ignored)."""
    m = per_gene_metrics(y_true, y_pred)

    def finite_mean(v):
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else float("nan")

    return {"mae": float(m["mae"].mean()), "ccc": finite_mean(m["ccc"].to_numpy()),
            "pearson": finite_mean(m["pearson"].to_numpy())}
