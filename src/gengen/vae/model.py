"""The Tybalt VAE as a torch module.

Both encoder heads (z_mean, z_log_var) are Dense + BatchNorm (+ ReLU on z_mean, as Tybalt; the
small-cohort recipe keeps z_mean linear, ``mean_activation="linear"``). They are
computed by *one* Linear of width 2k followed by one BatchNorm over 2k features: numerically the same
model as two separate heads, but one larger GEMM instead of two small ones (faster at batch 50).
The decoder returns logits; the loss uses BCE-with-logits, the stable form of sigmoid + BCE.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

MEAN_ACTIVATIONS = ("relu", "linear")


class TybaltVAE(nn.Module):
    """Encoder ``n_genes [-> hidden] -> (z_mean, z_log_var)``, decoder ``k [-> hidden] -> n_genes``.

    Parameters
    ----------
    n_genes : input width.
    latent_dim : k, the embedding size (Tybalt: 100).
    hidden : optional hidden width (Tybalt's two-layer variant: 300).
    compat : reproduce the published code's ReLU on the log-variance (forces sigma >= 1).
    mean_activation : ``"relu"`` (Tybalt) or ``"linear"``: a linear z_mean keeps both signs of every
        feature, so the model holds PCA as its linear special case (small-cohort recipe).
    """

    def __init__(self, n_genes: int, latent_dim: int = 100, hidden: int | None = None, *, compat: bool = False,
                 mean_activation: str = "relu"):
        super().__init__()
        if mean_activation not in MEAN_ACTIVATIONS:
            raise ValueError(f"mean_activation must be one of {MEAN_ACTIVATIONS}, got {mean_activation!r}")
        self.n_genes, self.latent_dim, self.hidden, self.compat = n_genes, latent_dim, hidden, compat
        self.mean_activation = mean_activation
        width = hidden or n_genes
        self.encoder_hidden = (
            nn.Sequential(nn.Linear(n_genes, hidden), nn.BatchNorm1d(hidden), nn.ReLU()) if hidden else nn.Identity()
        )
        self.heads = nn.Linear(width, 2 * latent_dim)
        self.heads_bn = nn.BatchNorm1d(2 * latent_dim)
        if hidden:
            self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_genes))
        else:
            self.decoder = nn.Sequential(nn.Linear(latent_dim, n_genes))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_mean, z_log_var) for a batch of [0, 1]-scaled profiles."""
        h = self.heads_bn(self.heads(self.encoder_hidden(x)))
        z_mean, z_log_var = h.split(self.latent_dim, dim=1)
        if self.mean_activation == "relu":
            z_mean = F.relu(z_mean)
        if self.compat:
            z_log_var = F.relu(z_log_var)
        return z_mean, z_log_var

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """z_mean only (eval mode): half the head GEMM of :meth:`encode`, for fast embedding."""
        if self.training:
            return self.encode(x)[0]
        k = self.latent_dim
        bn = self.heads_bn
        h = F.linear(self.encoder_hidden(x), self.heads.weight[:k], self.heads.bias[:k])
        h = F.batch_norm(h, bn.running_mean[:k], bn.running_var[:k], bn.weight[:k], bn.bias[:k], False, 0.0, bn.eps)
        return F.relu(h) if self.mean_activation == "relu" else h

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed profiles in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z_mean, z_log_var = self.encode(x)
        z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
        return self.decode_logits(z), z_mean, z_log_var

    def decoder_weight_matrix(self) -> torch.Tensor:
        """(k, n_genes) weights from each latent feature to each gene.

        For the one-layer decoder these are the Dense weights Tybalt analysed; with a hidden layer
        it is the product of the two linear maps (the ReLU between them ignored), a common proxy.
        """
        linears = [m for m in self.decoder if isinstance(m, nn.Linear)]
        w = linears[0].weight.T  # (k, width)
        for lin in linears[1:]:
            w = w @ lin.weight.T
        return w


def vae_loss_terms(
    logits: torch.Tensor, x: torch.Tensor, z_mean: torch.Tensor, *, z_log_var: torch.Tensor,
    gene_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch means of (reconstruction, KL): reconstruction = n_genes x mean BCE = summed BCE.

    ``gene_weights`` (mean 1) weight each gene's BCE; ``None`` is Tybalt's unweighted sum.
    """
    recon = F.binary_cross_entropy_with_logits(logits, x, weight=gene_weights, reduction="sum") / x.shape[0]
    kl = -0.5 * torch.sum(1 + z_log_var - z_mean.pow(2) - z_log_var.exp()) / x.shape[0]
    return recon, kl
