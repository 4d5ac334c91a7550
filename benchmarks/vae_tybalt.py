"""Tybalt-shaped VAE training: gengen's trainer vs a straightforward PyTorch reference, same run.

Workload (defaults): 10,459 x 5,000 synthetic [0, 1] matrix, k = 100, batch 50, 50 epochs, Adam 5e-4,
KL warm-up -- the published recipe. The reference is what one would write from the paper: two separate
Dense+BN heads, sigmoid decoder + BCE, a DataLoader over a TensorDataset, ``loss.item()`` every step.
Prints both times and the ratio (gengen / reference; < 1 is faster), then the encode time.

    python benchmarks/vae_tybalt.py                 # full workload (a few minutes on 2 CPU cores)
    python benchmarks/vae_tybalt.py --epochs 5      # quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def synthetic_tybalt(n: int, genes: int, seed: int = 0) -> np.ndarray:
    """Low-rank structure plus noise, squashed to [0, 1] like MinMax-scaled RNA-seq."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 20)).astype(np.float32)
    w = rng.standard_normal((20, genes)).astype(np.float32) / 4
    x = z @ w + 0.5 * rng.standard_normal((n, genes)).astype(np.float32)
    x -= x.min(0)
    x /= x.max(0)
    return x


class ReferenceVAE(nn.Module):
    def __init__(self, genes: int, k: int):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(genes, k), nn.BatchNorm1d(k), nn.ReLU())
        self.log_var = nn.Sequential(nn.Linear(genes, k), nn.BatchNorm1d(k))
        self.decoder = nn.Sequential(nn.Linear(k, genes), nn.Sigmoid())

    def forward(self, x):
        mu, lv = self.mean(x), self.log_var(x)
        z = mu + torch.exp(lv / 2) * torch.randn_like(mu)
        return self.decoder(z), mu, lv


def reference_train(x: np.ndarray, k: int, epochs: int, batch: int, device) -> float:
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = ReferenceVAE(x.shape[1], k).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=batch, shuffle=True)
    start = time.perf_counter()
    for epoch in range(epochs):
        beta = min(1.0, float(epoch))
        for (xb,) in loader:
            xb = xb.to(device)
            recon, mu, lv = model(xb)
            rec = x.shape[1] * F.binary_cross_entropy(recon, xb)
            kl = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp(), dim=1).mean()
            loss = rec + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            _ = loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def gengen_train(x: np.ndarray, k: int, epochs: int, batch: int, device) -> tuple[float, object]:
    from gengen.vae.model import TybaltVAE
    from gengen.vae.train import VAERecipe, fit_vae

    torch.manual_seed(0)
    module = TybaltVAE(x.shape[1], k)
    recipe = VAERecipe(latent_dim=k, epochs=epochs, batch_size=batch, seed=0)
    start = time.perf_counter()
    fit_vae(module, x, None, recipe=recipe, device=device, quiet=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10459)
    ap.add_argument("--genes", type=int, default=5000)
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    args = ap.parse_args()
    from gengen.runtime import describe_device, resolve_device, set_threads

    set_threads(args.threads)

    device = resolve_device(args.device)
    x = synthetic_tybalt(args.samples, args.genes)
    print(f"workload: {args.samples} x {args.genes}, k={args.latent}, batch {args.batch_size}, "
          f"{args.epochs} epochs on {describe_device(device)}; torch {torch.__version__}")
    t_ref = reference_train(x, args.latent, args.epochs, args.batch_size, device)
    print(f"reference loop : {t_ref:8.2f} s  ({t_ref / args.epochs:.3f} s/epoch)", flush=True)
    t_gen, module = gengen_train(x, args.latent, args.epochs, args.batch_size, device)
    print(f"gengen trainer : {t_gen:8.2f} s  ({t_gen / args.epochs:.3f} s/epoch)")
    print(f"ratio gengen/reference: {t_gen / t_ref:.3f}  (target <= 0.9 on CPU)")

    from gengen.vae.core import VAEModel
    from gengen.vae.preprocess import MinMaxScaler
    from gengen.vae.train import VAERecipe

    model = VAEModel(module, [f"g{i}" for i in range(args.genes)], MinMaxScaler.fit(x), recipe=VAERecipe(), device=str(device))
    model.encode_array(x[:100])  # warm-up
    start = time.perf_counter()
    z = model.encode_array(x)
    print(f"encode {len(z)} samples: {time.perf_counter() - start:.3f} s (target < 2 s on CPU)")


if __name__ == "__main__":
    main()
