"""The small-cohort recipe: a Tybalt VAE that holds PCA as its linear special case.

With fewer samples than genes, three properties of Tybalt's recipe cost the embedding most of what
PCA of the same matrix keeps (measured in docs/vae.md):

1. Each gene's BCE is counted on its own [0, 1] range, so a gene that barely varies weighs as much
   as one that varies 30-fold; PCA counts error in the input's units. Here each gene's BCE is
   weighted by its squared training range (normalised to mean 1): to first order the reconstruction
   error is then the squared error in the input's units, as PCA's (:func:`input_unit_weights`).
2. BCE treats a [0, 1] value as a Bernoulli probability, i.e. as noise of variance p(1 - p) ~ 0.25 per
   gene: far more than the real residual noise, so with the KL at weight 1 most latent features
   collapse to the prior (2-3 nats of KL on a 198-gene matrix). The KL weight is set so that the
   noise the weighted BCE implies equals the noise a rank-k linear model leaves (the probabilistic
   PCA estimate): a calibrated likelihood (Rybkin et al. 2021, sigma-VAE) (:func:`calibrated_beta`).
   For a linear decoder the ELBO's optimum is then probabilistic PCA's top-k subspace (Tipping &
   Bishop 1999; Lucas et al. 2019).
3. Tybalt's z_mean has unit-scale, roughly whitened features (the KL pulls each toward N(0, 1)), so a
   Euclidean kNN weighs a weak feature as much as a strong one. The embedding is therefore z_mean in
   decoder-metric coordinates: Euclidean distances between embeddings equal (to first order) the
   distances between the samples' decoded profiles in input units, the property PCA scores have;
   the axes are then rotated to be uncorrelated and ordered by variance (:func:`decoder_metric_map`).
   z_mean is linear (no ReLU), so both signs of every feature count.

The linear special case of all this is PCA with each component shrunk by (1 - sigma^2 / lambda)
(probabilistic PCA's posterior mean read in the decoder's metric).
"""

from __future__ import annotations

import numpy as np


def gene_ranges(scaler) -> np.ndarray:
    """Each gene's training range (max - min) in the scaler's input units (log2 units after log2p1);
    0 for a constant gene."""
    return np.maximum(np.asarray(scaler.maximum, np.float64) - np.asarray(scaler.minimum, np.float64), 0.0)


def input_unit_weights(scaler) -> np.ndarray:
    """Per-gene BCE weights range^2 / mean(range^2): a scaled error e on a gene of range r is an error
    r * e in input units, so these weights count squared error in the input's units (mean 1, so the
    total matches Tybalt's genes x BCE scale). Constant genes get weight 0."""
    r2 = gene_ranges(scaler) ** 2
    mean = float(r2.mean()) if r2.size else 0.0
    return (r2 / mean if mean > 0 else np.ones_like(r2)).astype(np.float32)


def calibrated_beta(x_train01: np.ndarray, scaler, latent_dim: int, *, seed: int = 0) -> tuple[float, float, float]:
    """KL weight at which the weighted BCE's implied noise matches the data's residual noise.

    Near a prediction p, BCE weighted by w = r^2 / mean(r^2) is a Gaussian log-likelihood with noise
    variance mean(r^2) * p(1 - p) in input units (r: the gene's range). Probabilistic PCA's maximum-
    likelihood noise for rank k is the mean variance per gene left after the top k components. Scaling
    the KL by their ratio is the same as using a Gaussian likelihood with that noise. Capped at 1 (the
    plain ELBO).

    Parameters
    ----------
    x_train01 : (n, genes) training samples on the scaler's [0, 1] scale.
    scaler : the fitted :class:`~gengen.vae.preprocess.MinMaxScaler`.
    latent_dim : k.
    seed : seed of the randomized SVD used on large matrices.

    Returns
    -------
    (beta, residual noise per gene, BCE-implied noise per gene), the last two in input units squared.
    """
    X = np.asarray(x_train01, np.float64) * gene_ranges(scaler)  # input units, up to a per-gene shift
    n, g = X.shape
    if n < 2 or g <= latent_dim:
        return 1.0, float("nan"), float("nan")
    X = X - X.mean(axis=0)
    k = int(min(latent_dim, n - 1))
    if min(n, g) <= 2000:
        top = np.linalg.svd(X, compute_uv=False)[:k]
    else:
        from sklearn.utils.extmath import randomized_svd

        top = randomized_svd(X, k, n_iter=7, random_state=seed)[1]
    total = float((X**2).sum()) / (n - 1)
    residual = max(total - float((top**2).sum()) / (n - 1), 0.0) / (g - k)
    p = np.clip(np.asarray(x_train01, np.float64).mean(axis=0), 0, 1)
    implied = float((gene_ranges(scaler) ** 2).mean() * (p * (1 - p)).mean())
    if implied <= 0:
        return 1.0, residual, implied
    return float(min(1.0, residual / implied)), residual, implied


def decoder_metric_map(module, x_train01: np.ndarray, scaler) -> np.ndarray:
    """(k, k) matrix T: ``z_mean @ T`` is the embedding in decoder-metric coordinates.

    M = mean over training samples of J^T J, J = d(decoded profile in input units) / dz at the sample's
    z_mean (the average pullback metric); T = S R with S S^T = M (so Euclidean distances of z @ S are
    first-order distances between decoded profiles) and R the rotation to the principal axes of the
    training embedding (uncorrelated features ordered by variance, signs fixed so each feature's
    largest-magnitude value is positive). Tiny eigenvalues of M are floored so T stays invertible
    (decoding an embedding applies T's inverse).
    """
    import torch

    module.eval()
    dev = next(module.parameters()).device
    ranges = torch.as_tensor(gene_ranges(scaler), dtype=torch.float64, device=dev)
    linears = [m for m in module.decoder if isinstance(m, torch.nn.Linear)]
    with torch.inference_mode():
        xt = torch.as_tensor(np.asarray(x_train01, np.float32), device=dev)
        z = module.encode_mean(xt)
        p = torch.sigmoid(module.decode_logits(z)).double()
        d2 = ((ranges * p * (1 - p)) ** 2).mean(dim=0)  # (genes,): mean squared output slope
        w_out = linears[-1].weight.double()  # (genes, width)
        q = w_out.T @ (d2[:, None] * w_out)  # (width, width)
        if len(linears) == 2:  # hidden ReLU layer: average the pattern of active units
            active = (linears[0](z) > 0).double()
            q = q * (active.T @ active) / active.shape[0]
            w_in = linears[0].weight.double()  # (hidden, k)
            metric = w_in.T @ q @ w_in
        else:
            metric = q
        metric = metric.cpu().numpy()
        zn = z.double().cpu().numpy()
    ev, U = np.linalg.eigh((metric + metric.T) / 2)
    floor = max(float(ev.max()), 1e-30) * 1e-10
    S = U * np.sqrt(np.maximum(ev, floor))
    E = zn @ S
    _, _, Vt = np.linalg.svd(E - E.mean(axis=0), full_matrices=True)
    T = S @ Vt.T
    E = zn @ T
    signs = np.sign(E[np.abs(E).argmax(axis=0), np.arange(E.shape[1])])
    return (T * np.where(signs == 0, 1.0, signs)).astype(np.float64)
