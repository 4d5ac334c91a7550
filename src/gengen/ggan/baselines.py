"""The baselines of the GGAN / D-GEX papers, as ``fit_predict(Xtr, Ytr, Xte) -> Ŷte`` on z-scored data.

- ``mean``: the training mean of each target (the floor every method must beat).
- ``linear``: least squares, L1000's method (minimum-norm solution when landmarks outnumber profiles).
- ``ridge`` (LR-L2): one shared α picked by efficient leave-one-out (generalised CV) over a grid.
- ``lasso`` (LR-L1): all targets solved at once by batched FISTA in torch (scikit-learn's per-target
  coordinate descent needs minutes for 9,520 targets); one shared α picked on an inner hold-out
  (searched on up to 1,000 random targets).
- ``knn``: KNN-GE, the mean targets of the k nearest training profiles in landmark space; k by
  leave-one-out on the training profiles.
They are registered, with GGAN and D-GEX, in :data:`gengen.registry.GGAN_METHODS`
(:func:`gengen.ggan.register_baseline` adds another).
The D-GEX MLP lives in :mod:`gengen.ggan.train` (``loss="mse"``): same generator, MSE only.
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
    W, xm, ym = ridge_fit(Xtr, Ytr, alphas, info)
    return ((Xte - xm) @ W + ym).astype(np.float32)


# Above this many training profiles ridge's α is chosen by generalised cross-validation (GCV), the
# rotation-invariant form of leave-one-out: with n >> landmarks every profile's leverage is ~p/n, so the
# two agree, and GCV costs O(p x targets) per α instead of O(n x p^2).
RIDGE_EXACT_LOO_MAX = 2000


def ridge_fit(Xtr: np.ndarray, Ytr: np.ndarray, alphas=RIDGE_ALPHAS, info: dict | None = None):
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


def _fista(X, Y, alpha: float, W, iters: int, L: float):
    """Minimise 1/(2n)‖Y − XW‖² + α‖W‖₁ for all columns of Y at once (scikit-learn's Lasso scaling)."""
    import torch

    n = X.shape[0]
    Z, t = W.clone(), 1.0
    step = 1.0 / L
    for _ in range(iters):
        G = X.T @ (X @ Z - Y) / n
        W_new = torch.nn.functional.softshrink(Z - step * G, alpha * step)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        Z = W_new + ((t - 1) / t_new) * (W_new - W)
        W, t = W_new, t_new
    return W


def lasso(
    Xtr: np.ndarray,
    Ytr: np.ndarray,
    Xte: np.ndarray,
    *,
    seed: int = 0,
    iters: int = 150,
    alphas=(0.3, 0.2, 0.12, 0.08, 0.05, 0.03, 0.02),
    search_targets: int = 1000,
    info: dict | None = None,
    **_,
) -> np.ndarray:
    """LR-L1: batched FISTA; α (shared) chosen on a 20 % inner hold-out along a warm-started path."""
    import torch

    def centred(Xa, Ya):
        xm, ym = Xa.mean(axis=0), Ya.mean(axis=0)
        return torch.as_tensor(Xa - xm), torch.as_tensor(Ya - ym), xm, ym

    from gengen.runtime import small_model_threads

    with small_model_threads(0, "cpu"):  # memory-bound thin GEMMs: one thread is as fast and shares better
        return _lasso(Xtr, Ytr, Xte, seed, iters, alphas, info, search_targets)


def _lasso(Xtr, Ytr, Xte, seed, iters, alphas, info, search_targets):
    import torch

    def centred(Xa, Ya):
        xm, ym = Xa.mean(axis=0), Ya.mean(axis=0)
        return torch.as_tensor(Xa - xm), torch.as_tensor(Ya - ym), xm, ym

    rng = np.random.default_rng(seed)
    perm = rng.permutation(Xtr.shape[0])
    n_val = max(1, int(round(0.2 * len(perm))))
    fit_i, val_i = perm[n_val:], perm[:n_val]
    cols = np.sort(rng.permutation(Ytr.shape[1])[:search_targets])  # α search on a subset of targets
    X, Y, xm, ym = centred(Xtr[fit_i].astype(np.float32), Ytr[fit_i][:, cols].astype(np.float32))
    L = float(torch.linalg.matrix_norm(X, ord=2) ** 2 / X.shape[0])
    W = torch.zeros(X.shape[1], Y.shape[1])
    Xv = torch.as_tensor(Xtr[val_i].astype(np.float32) - xm)
    Yv = torch.as_tensor(Ytr[val_i][:, cols].astype(np.float32))
    best = (np.inf, alphas[0])
    with torch.no_grad():
        for a in alphas:
            W = _fista(X, Y, a, W, iters, L)
            err = float((Xv @ W + torch.as_tensor(ym) - Yv).abs().mean())
            if err < best[0]:
                best = (err, a)
        X, Y, xm, ym = centred(Xtr.astype(np.float32), Ytr.astype(np.float32))
        L = float(torch.linalg.matrix_norm(X, ord=2) ** 2 / X.shape[0])
        W = _fista(X, Y, best[1], torch.zeros(X.shape[1], Y.shape[1]), iters, L)
        if info is not None:
            info["alpha"] = float(best[1])
            info["nonzero_per_target"] = float((W != 0).sum(0).float().mean())
        return (torch.as_tensor(Xte.astype(np.float32) - xm) @ W).numpy() + ym


def knn(
    Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, *, ks=KNN_KS, info: dict | None = None, **_
) -> np.ndarray:
    """KNN-GE: average targets of the k nearest training profiles (Euclidean, z-scored landmarks)."""

    def sqdist(A, B):
        return (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T

    Xtr64, Ytr64 = Xtr.astype(np.float64), Ytr.astype(np.float64)
    D = sqdist(Xtr64, Xtr64)
    np.fill_diagonal(D, np.inf)
    order = np.argsort(D, axis=1)
    usable = [k for k in ks if k <= Xtr.shape[0] - 1] or [1]
    errs = [np.abs(Ytr64[order[:, :k]].mean(axis=1) - Ytr64).mean() for k in usable]
    k = usable[int(np.argmin(errs))]
    if info is not None:
        info["k"] = int(k)
    nn = np.argsort(sqdist(Xte.astype(np.float64), Xtr64), axis=1)[:, :k]
    return Ytr64[nn].mean(axis=1).astype(np.float32)
