"""How long `gengen ggan-train` takes with default options on a small reference (issue 10: < 60 s).

Synthesises a 200-profile x 4,000-gene log-scale reference with the correlation structure of bulk
expression (a few dozen co-expression modules of power-law strength, samples from a handful of tissue
groups, gene-specific noise and mean, saturating response), writes it as .h5ad with ~470 landmark genes
(as many as a 4,000-gene array shares with L1000), and times the command as a user types it:

    gengen ggan-train ref.h5ad --landmarks landmarks.txt -o model --threads 2

The reference time, measured in the same run on the same data, is ridge regression (the baseline the
small-reference recipe starts from), fitted by ``gengen.ggan.ridge`` on the same z-scored arrays.

Usage: python benchmarks/ggan_small_reference.py [--profiles 200] [--genes 4000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_reference(n_profiles: int, n_genes: int, seed: int = 0):
    """(samples x genes float32 log2-scale matrix, gene names, tissue labels)."""
    rng = np.random.default_rng(seed)
    n_modules, n_tissues = 40, 5
    tissue = rng.integers(0, n_tissues, n_profiles)
    strength = 1.0 / np.arange(1, n_modules + 1) ** 0.7  # a few strong programmes, many weak ones
    tissue_mean = rng.standard_normal((n_tissues, n_modules)) * strength * 1.5
    activity = tissue_mean[tissue] + rng.standard_normal((n_profiles, n_modules)) * strength
    loadings = np.zeros((n_modules, n_genes))
    for g in range(n_genes):  # each gene answers to 1-3 modules, plus a weak dense background
        mods = rng.choice(n_modules, size=rng.integers(1, 4), replace=False)
        loadings[mods, g] = rng.normal(0, 1, len(mods))
    loadings += 0.05 * rng.standard_normal(loadings.shape)
    signal = activity @ loadings
    signal = 2.5 * np.tanh(signal / 2.5)  # saturating response: not exactly linear in the modules
    mean = rng.uniform(4, 12, n_genes)
    noise_sd = rng.gamma(2.0, 0.15, n_genes)
    X = mean + signal + noise_sd * rng.standard_normal((n_profiles, n_genes))
    genes = [f"GENE{i:05d}" for i in range(n_genes)]
    return X.astype(np.float32), genes, tissue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=int, default=200)
    ap.add_argument("--genes", type=int, default=4000)
    ap.add_argument("--landmarks", type=int, default=470)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import anndata as ad
    import pandas as pd

    X, genes, tissue = synthetic_reference(a.profiles, a.genes, a.seed)
    lm_idx = np.sort(np.random.default_rng(a.seed + 1).permutation(a.genes)[: a.landmarks])
    landmarks = [genes[i] for i in lm_idx]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        obs = pd.DataFrame({"tissue": tissue.astype(str)}, index=[f"S{i}" for i in range(a.profiles)])
        ad.AnnData(X, obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(tmp / "ref.h5ad")
        (tmp / "landmarks.txt").write_text("\n".join(landmarks) + "\n")
        cmd = [sys.executable, "-c", "from gengen.cli import main; main()", "ggan-train", str(tmp / "ref.h5ad"), "--landmarks",
               str(tmp / "landmarks.txt"), "-o", str(tmp / "model"), "--threads", str(a.threads), "--device", "cpu"]
        env = {**os.environ, "GENGEN_NO_PROGRESS": "1"}
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"ggan-train failed:\n{res.stderr}")
        cfg = json.loads((tmp / "model" / "config.json").read_text())

    import torch

    from gengen.ggan import Preprocessor, ridge

    torch.set_num_threads(a.threads)
    target_idx = np.setdiff1d(np.arange(a.genes), lm_idx)
    pre = Preprocessor.fit(X[:, lm_idx], X[:, target_idx])
    xz, yz = pre.transform_x(X[:, lm_idx]), pre.transform_y(X[:, target_idx])
    t0 = time.perf_counter()
    ridge(xz, yz, xz)
    ridge_seconds = time.perf_counter() - t0

    m, r = cfg["metrics"], cfg["recipe"]
    print(f"reference: {a.profiles} profiles x {a.genes} genes ({a.landmarks} landmarks -> "
          f"{a.genes - a.landmarks} targets), --threads {a.threads}, {os.cpu_count()} CPUs")
    print("recipe chosen:")
    for note in r["notes"]:
        print(f"  - {note}")
    print(f"ggan-train (whole command, defaults): {seconds:.1f} s  (training {m['train_seconds']:.1f} s, "
          f"{m['epochs_run']} epochs, best epoch {m['best_epoch']})  target < 60 s: "
          f"{'met' if seconds < 60 else 'MISSED'}")
    print(f"ridge fit on the same arrays: {ridge_seconds:.2f} s; ratio ggan-train / ridge = "
          f"{seconds / max(ridge_seconds, 1e-9):.0f}x")


if __name__ == "__main__":
    main()
