"""The baselines of the GGAN / D-GEX papers, as ``fit_predict(Xtr, Ytr, Xte) -> Ŷte`` on z-scored data.

- ``mean``: the training mean of each target (the floor every method must beat).
- ``linear``: least squares, L1000's method (minimum-norm solution when landmarks outnumber profiles).
- ``ridge`` (LR-L2): one shared α picked by efficient leave-one-out (generalised CV) over a grid.
- ``lasso`` (LR-L1): every target's exact lasso by compiled coordinate descent (:mod:`gengen.ggan.lasso_cd`;
  scikit-learn's per-target loop reaches the same optimum in ~7 minutes for 21,340 targets); one shared
  α picked on an inner hold-out (searched on up to 1,000 random targets).
- ``knn``: KNN-GE, the mean targets of the k nearest training profiles in landmark space; k by
  leave-one-out on the training profiles.
They are registered, with GGAN and D-GEX, in :data:`gengen.registry.GGAN_METHODS`
(:func:`gengen.ggan.register_baseline` adds another).
The D-GEX MLP lives in :mod:`gengen.ggan.loop` (``loss="mse"``): same generator, MSE only.
"""

from __future__ import annotations

import numpy as np

RIDGE_ALPHAS = np.logspace(-1, 5, 25)
KNN_KS = (1, 2, 3, 5, 7, 10, 15, 20, 30)


def mean_predictor(Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, **_) -> np.ndarray:
    """The training mean of each target for every test profile: the floor every method must beat."""
    return np.broadcast_to(Ytr.mean(axis=0), (Xte.shape[0], Ytr.shape[1])).astype(np.float32)


def linear(Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, **_) -> np.ndarray:
    """Ordinary least squares with intercept (lstsq: minimum-norm when under-determined)."""
    xm, ym = Xtr.mean(axis=0), Ytr.mean(axis=0)
    W, *_ = np.linalg.lstsq((Xtr - xm).astype(np.float64), (Ytr - ym).astype(np.float64), rcond=None)
    return ((Xte - xm) @ W + ym).astype(np.float32)


def ridge(
    Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, *, alphas=RIDGE_ALPHAS, info: dict | None = None, **_
) -> np.ndarray:
    """Ridge with one α for all targets, chosen by exact leave-one-out error from one SVD."""
    W, xm, ym = ridge_fit(Xtr, Ytr, alphas, info=info)
    return ((Xte - xm) @ W + ym).astype(np.float32)


# Above this many training profiles ridge's α is chosen by generalised cross-validation (GCV), the
# rotation-invariant form of leave-one-out: with n >> landmarks every profile's leverage is ~p/n, so the
# two agree, and GCV costs O(p x targets) per α instead of O(n x p^2).
RIDGE_EXACT_LOO_MAX = 2000


def ridge_fit(Xtr: np.ndarray, Ytr: np.ndarray, alphas=RIDGE_ALPHAS, *, info: dict | None = None):
    """(W, x_mean, y_mean) of the leave-one-out-tuned ridge; also GGAN's ``ridge_init`` start.

    α is shared by all targets and chosen by the exact leave-one-out error from one SVD (up to
    ``RIDGE_EXACT_LOO_MAX`` profiles; GCV above). The LOO error is summed per profile through
    ``||r_i||² = ||y_i||² - 2 f_i·y_i + ||f_i||²`` with the fitted row ``f_i`` expressed in the SVD
    basis, so no n x targets matrix is formed per α (the same numbers, ~targets/landmarks times less
    work). Computed in float64 with torch: numpy's OpenBLAS SVD of a 200 x 470 matrix took 2 s of CPU
    (7 s wall on a busy 2-core machine) where torch's takes 0.02 s.
    """
    import torch

    f64 = torch.float64
    X = torch.as_tensor(np.asarray(Xtr), dtype=f64)
    xm = X.mean(dim=0)
    U, s, Vt = torch.linalg.svd(X - xm, full_matrices=False)
    n, r = U.shape
    Yall = torch.as_tensor(np.asarray(Ytr))
    ym = Yall.mean(dim=0, dtype=f64)
    exact = n <= RIDGE_EXACT_LOO_MAX
    UtY = torch.zeros((r, Yall.shape[1]), dtype=f64)
    P = torch.zeros((n, r), dtype=f64) if exact else None  # rows of Yc @ UtY.T
    y_sq = torch.zeros(n, dtype=f64)
    for c in range(0, n, 4096):  # centred targets in float64 a block at a time (no n x targets copy)
        Yc = Yall[c : c + 4096].to(f64) - ym
        UtY += U[c : c + 4096].T @ Yc
        y_sq[c : c + 4096] = (Yc**2).sum(dim=1)
    if exact:
        for c in range(0, n, 4096):
            P[c : c + 4096] = (Yall[c : c + 4096].to(f64) - ym) @ UtY.T
        G = UtY @ UtY.T
        U2 = U**2
    proj_sq = (UtY**2).sum(dim=1)
    best = (np.inf, None)
    for a in alphas:
        d = s**2 / (s**2 + a)
        if exact:
            A = U * d
            fitted_sq = ((A @ G) * A).sum(dim=1)
            resid_sq = (y_sq - 2 * (A * P).sum(dim=1) + fitted_sq).clamp_min(0.0)
            h = U2 @ d + 1.0 / n  # hat diagonal, including the intercept
            err = float((resid_sq / (1 - h) ** 2).sum())
        else:
            resid = max(float(y_sq.sum() - ((2 * d - d**2) * proj_sq).sum()), 0.0)
            err = resid / (1 - (float(d.sum()) + 1) / n) ** 2
        if err < best[0]:
            best = (err, float(a))
    a = best[1]
    W = Vt.T @ ((s / (s**2 + a))[:, None] * UtY)
    if info is not None:
        info["alpha"] = a
        info["alpha_by"] = "leave-one-out" if exact else "GCV"
    return W.numpy(), xm.numpy(), ym.numpy()


def lasso(
    Xtr: np.ndarray,
    Ytr: np.ndarray,
    Xte: np.ndarray,
    *,
    seed: int = 0,
    alphas=(0.3, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02),
    search_targets: int = 1000,
    info: dict | None = None,
    **_,
) -> np.ndarray:
    """LR-L1: the exact lasso of every target (:mod:`gengen.ggan.lasso_cd`); α (shared) chosen on a 20 %
    inner hold-out along a warm-started path, searched on up to ``search_targets`` random targets."""
    from gengen.ggan.lasso_cd import lasso_solve

    rng = np.random.default_rng(seed)
    perm = rng.permutation(Xtr.shape[0])
    n_val = max(1, int(round(0.2 * len(perm))))
    fit_i, val_i = perm[n_val:], perm[:n_val]
    cols = np.sort(rng.permutation(Ytr.shape[1])[:search_targets])  # α search on a subset of targets
    X = Xtr[fit_i].astype(np.float64)
    Y = Ytr[fit_i][:, cols].astype(np.float64)
    xm, ym = X.mean(axis=0), Y.mean(axis=0)
    Xv = Xtr[val_i].astype(np.float64) - xm
    Yv = Ytr[val_i][:, cols].astype(np.float64)
    best, W, worst = (np.inf, alphas[0]), None, 0.0
    for a in sorted(alphas, reverse=True):  # largest first: each solution warm-starts the next
        W, _, gap = lasso_solve(X - xm, Y - ym, a, W=W)
        worst = max(worst, gap)
        err = float(np.abs(Xv @ W.T + ym - Yv).mean())
        if err < best[0]:
            best = (err, a)
    X = Xtr.astype(np.float64)
    xm = X.mean(axis=0)
    ym = Ytr.mean(axis=0, dtype=np.float64)
    W, missed, gap = lasso_solve(X - xm, Ytr.astype(np.float64) - ym, best[1])
    if info is not None:
        info["alpha"] = float(best[1])
        info["nonzero_per_target"] = float((W != 0).sum(axis=1).mean())
        info["max_gap"] = float(gap)  # duality gap / ||y||^2, worst target (tolerance GAP_TOL)
        info["search_max_gap"] = float(worst)
        if missed:
            info["targets_over_gap_tol"] = int(missed)
    return ((Xte.astype(np.float64) - xm) @ W.T + ym).astype(np.float32)


def knn(
    Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, *, ks=KNN_KS, info: dict | None = None, **_
) -> np.ndarray:
    """KNN-GE: average targets of the k nearest training profiles (Euclidean, z-scored landmarks).

    k is chosen by leave-one-out over ``ks``. Neighbours are found a block of profiles at a time and
    the neighbour means are running sums, so memory stays profiles x targets (the k-fold stack of
    neighbour targets, profiles x k x targets, took 10 GB for 2,000 profiles x 21,340 targets).
    """
    Xtr64, Ytr64 = Xtr.astype(np.float64), Ytr.astype(np.float64)
    usable = [k for k in ks if k <= Xtr.shape[0] - 1] or [1]
    order = _nearest(Xtr64, Xtr64, max(usable), exclude_self=True)
    total = np.zeros_like(Ytr64)
    errs = []
    for j in range(max(usable)):
        total += Ytr64[order[:, j]]
        if j + 1 in usable:
            errs.append(float(np.abs(total / (j + 1) - Ytr64).mean()))
    k = usable[int(np.argmin(errs))]
    if info is not None:
        info["k"] = int(k)
    nn = _nearest(Xte.astype(np.float64), Xtr64, k)
    pred = np.zeros((Xte.shape[0], Ytr.shape[1]))
    for j in range(k):
        pred += Ytr64[nn[:, j]]
    return (pred / k).astype(np.float32)


def _nearest(A: np.ndarray, B: np.ndarray, k: int, exclude_self: bool = False, block: int | None = None) -> np.ndarray:
    """Indices of the ``k`` rows of ``B`` nearest to each row of ``A`` (Euclidean), nearest first, in
    blocks of ``block`` rows (default: ~256 MB of distances at a time); ``exclude_self``: A is B, skip
    each row itself."""
    k = min(k, B.shape[0] - (1 if exclude_self else 0))
    block = block or int(min(2048, max(16, 2**25 // max(1, B.shape[0]))))
    b2 = (B**2).sum(1)
    out = np.empty((A.shape[0], k), dtype=np.int64)
    for start in range(0, A.shape[0], block):
        a = A[start : start + block]
        d = (a**2).sum(1)[:, None] + b2[None, :] - 2 * a @ B.T
        if exclude_self:
            rows = np.arange(len(a))
            d[rows, start + rows] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(a), 1))
        near = np.take_along_axis(d, part, axis=1)
        out[start : start + len(a)] = np.take_along_axis(part, np.argsort(near, axis=1, kind="stable"), axis=1)
    return out
