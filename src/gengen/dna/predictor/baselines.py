"""k-mer baselines for labelled sequences: the reference a CNN predictor must beat, and an independent
judge of designs (ridge regression on k-mer counts, a different model family from the CNN)."""

from __future__ import annotations

import numpy as np

from gengen.errors import GengenError


def kmer_counts(codes: np.ndarray, k: int):
    """Sparse ``(N, 4**k)`` k-mer count matrix (both strands pooled by reverse-complement symmetry)."""
    from scipy import sparse

    from gengen.dna.metrics import kmer_index

    idx = kmer_index(codes, k)  # (N, L-k+1), -1 where ambiguous
    rc = kmer_index(np.array([3, 2, 1, 0, 4], dtype=np.uint8)[codes[:, ::-1]], k)
    n, m = idx.shape
    rows = np.repeat(np.arange(n), 2 * m)
    cols = np.concatenate([idx, rc], axis=1).ravel()
    ok = cols >= 0
    return sparse.csr_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(n, 4**k))


def kmer_ridge_baseline(
    codes: np.ndarray, y: np.ndarray, tr_idx, *, val_idx, k: int = 6, alpha: float = 10.0, spearman: bool = False
) -> float | tuple[float, float]:
    """Held-out Pearson r of ridge regression on k-mer counts: the reference a CNN must beat
    (``spearman=True``: ``(pearson, spearman)``)."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    X = kmer_counts(codes, k)
    model = Ridge(alpha=alpha).fit(X[tr_idx], y[tr_idx])
    pred = model.predict(X[val_idx])
    pearson = float(np.corrcoef(pred, y[val_idx])[0, 1])
    return (pearson, float(spearmanr(pred, y[val_idx])[0])) if spearman else pearson


def independent_check(
    probe_codes: np.ndarray,
    y: np.ndarray,
    designed_codes: np.ndarray,
    *, k: int = 6,
    alpha: float = 10.0,
) -> dict:
    """Score designs with an independent model: ridge regression on k-mer counts fitted on *all*
    labelled probes (a different model family from the CNN that guided the design, and trained on
    every probe rather than a 90 % split). ``y`` should already be transformed (e.g. log).

    Returns the ridge's predictions for the designs and the probes, and a summary: designs' mean/min,
    the best probe by the same model, the fraction of designs above it, and the in-sample Pearson r.
    Probes are scored in-sample (the ridge was fitted to them), which favours the probes.
    """
    probe_codes = np.asarray(probe_codes, dtype=np.uint8)
    designed_codes = np.asarray(designed_codes, dtype=np.uint8)
    y = np.asarray(y, dtype=np.float64)
    if len(probe_codes) != len(y):
        raise GengenError(f"{len(probe_codes)} probes but {len(y)} labels.")
    if len(designed_codes) == 0:
        raise GengenError("no designed sequences to score.")
    if designed_codes.shape[1] != probe_codes.shape[1]:
        raise GengenError(
            f"the sequences are {designed_codes.shape[1]} nt but the independent probes {probe_codes.shape[1]} nt: "
            "k-mer counts of other lengths are not comparable; score sequences of the probes' length."
        )
    from sklearn.linear_model import Ridge

    X = kmer_counts(probe_codes, k)
    model = Ridge(alpha=alpha).fit(X, y)
    probe_pred = model.predict(X)
    design_pred = model.predict(kmer_counts(designed_codes, k))
    best = float(probe_pred.max())
    top = np.sort(probe_pred)[-max(1, len(probe_pred) // 100) :]
    return {
        "design_pred": design_pred,
        "probe_pred": probe_pred,
        "design_mean": float(design_pred.mean()),
        "design_min": float(design_pred.min()),
        "best_probe": best,
        "top1pct_probe_mean": float(top.mean()),
        "fraction_above_best_probe": float((design_pred > best).mean()),
        "measured_best_probe_pred": float(probe_pred[int(np.argmax(y))]),
        "in_sample_pearson": float(np.corrcoef(probe_pred, y)[0, 1]),
        "k": k,
    }
