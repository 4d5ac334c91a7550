"""GGAN at the D-GEX shape (943 landmarks -> 9,520 targets): training and inference speed, streamed RAM.

Synthetic data from a nonlinear low-rank model (y = tanh(x A) B + noise, rank 64). Prints, from the
same run and the same torch thread settings:
  * training throughput (profiles/s) of gengen's trainer (`gengen.ggan.loop.fit_ggan`) and of a
    straightforward reference loop (DataLoader batches, real and fake pairs through D separately,
    `.item()` logging every step), and their ratio;
  * inference throughput of `GGANModel.predict_array`;
  * peak RSS of `infer_file` streaming a Parquet query in chunks, measured in a child process at two
    query sizes (flat peak RSS = memory independent of the number of profiles).

  python benchmarks/ggan_dgex_shape.py                          # paper shape, 100k profiles (GPU-sized)
  python benchmarks/ggan_dgex_shape.py --profiles 4000 --hidden 1000 --steps 20 --stream 2000,8000  # CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(n: int, n_x: int, n_y: int, rank: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_x), dtype=np.float32)
    A = (rng.standard_normal((n_x, rank), dtype=np.float32) / np.sqrt(n_x)).astype(np.float32)
    B = (rng.standard_normal((rank, n_y), dtype=np.float32) / np.sqrt(rank)).astype(np.float32)
    Y = np.tanh(2 * X @ A) @ B
    Y += 0.1 * rng.standard_normal(Y.shape, dtype=np.float32)
    return X, Y.astype(np.float32)


def reference_loop(gen, disc, X, Y, steps: int, batch: int, recipe, device) -> float:
    """A plain PyTorch GAN loop as one would first write it; returns seconds for ``steps`` steps."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(
        TensorDataset(torch.as_tensor(X), torch.as_tensor(Y)), batch_size=batch, shuffle=True, drop_last=True
    )
    opt_g = torch.optim.Adam(gen.parameters(), lr=recipe.learning_rate, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=recipe.learning_rate, betas=(0.5, 0.999))
    gen.to(device).train()
    disc.to(device).train()
    log = []
    done = 0
    t0 = None
    while done < steps + 1:
        for xb, yb in loader:
            if done == 1:  # first step is warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            xb, yb = xb.to(device), yb.to(device)
            fake = gen(xb)
            d_real = disc(xb, yb)
            d_fake = disc(xb, fake.detach())
            d_loss = (
                F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            ) / 2
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            d_out = disc(xb, fake)
            g_loss = (
                recipe.adv_weight * F.binary_cross_entropy_with_logits(d_out, torch.ones_like(d_out))
                + recipe.l1_weight * F.l1_loss(fake, yb)
                + recipe.consistency_weight * F.mse_loss(fake, gen(xb))
            )
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            log.append((d_loss.item(), g_loss.item()))
            done += 1
            if done == steps + 1:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def gengen_loop(gen, disc, X, Y, steps: int, recipe, device) -> float:
    """gengen's trainer for ``steps`` optimiser steps (one warm-up epoch excluded)."""
    from gengen.ggan.loop import fit_ggan
    from gengen.recipes import GGANRecipe

    n = steps * recipe.batch_size
    r = GGANRecipe.from_dict({**recipe.to_dict(), "epochs": 1})
    fit_ggan(gen, disc, X[: recipe.batch_size], y_train=Y[: recipe.batch_size], x_val=None, y_val=None, recipe=r, device=device, quiet=True)
    h = fit_ggan(gen, disc, X[:n], y_train=Y[:n], x_val=None, y_val=None, recipe=r, device=device, quiet=True)
    return float(h.attrs["seconds"])


STREAM_CHILD = r"""
import resource, sys, time, json
from gengen.ggan import GGANModel, infer_file
m = GGANModel.load(sys.argv[1], device=sys.argv[4])
t = time.perf_counter()
info = infer_file(m, sys.argv[2], sys.argv[3], chunk_size=int(sys.argv[5]), quiet=True)
print(json.dumps({"seconds": time.perf_counter() - t, "profiles": info["profiles"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", type=int, default=100_000)
    ap.add_argument("--landmarks", type=int, default=943)
    ap.add_argument("--targets", type=int, default=9520)
    ap.add_argument("--hidden", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--steps", type=int, default=50, help="timed optimiser steps per trainer")
    ap.add_argument(
        "--infer-profiles", type=int, default=None, help="profiles for in-memory inference timing"
    )
    ap.add_argument("--stream", default="", help="comma-separated query sizes for the streamed-RAM check")
    ap.add_argument("--chunk-size", type=int, default=10_000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import torch

    from gengen.ggan import GGANModel, GGANRecipe, Preprocessor, resolve_ggan_recipe
    from gengen.ggan.train import build_networks
    from gengen.runtime import describe_device, resolve_device

    device = resolve_device(a.device)
    n = max(a.profiles, a.steps * a.batch_size)
    X, Y = make_data(n, a.landmarks, a.targets, seed=a.seed)
    # the D-GEX recipe at this width: no linear path / ridge start (the default below 50,000 profiles)
    recipe = resolve_ggan_recipe(GGANRecipe(hidden=a.hidden, batch_size=a.batch_size, seed=a.seed, ridge_init=False), n)
    print(
        f"# {n} synthetic profiles, {a.landmarks} -> {a.targets}, generator 3 x {a.hidden}, batch "
        f"{a.batch_size}, "
        f"{a.steps} timed steps, {describe_device(device)}, torch {torch.__version__}"
    )
    results = {}
    for name in ("reference", "gengen", "reference ", "gengen "):  # interleaved twice against drift
        torch.manual_seed(a.seed)
        gen, disc = build_networks(a.landmarks, a.targets, recipe)
        if name.strip() == "reference":
            secs = reference_loop(gen, disc, X, Y, a.steps, a.batch_size, recipe, device)
        else:
            secs = gengen_loop(gen, disc, X, Y, a.steps, recipe, device)
        results.setdefault(name.strip(), []).append(a.steps * a.batch_size / secs)
        print(f"train {name.strip():<9} {a.steps * a.batch_size / secs:10.0f} profiles/s", flush=True)
    ref, gg = max(results["reference"]), max(results["gengen"])
    print(
        f"training throughput (best of 2): gengen {gg:.0f} profiles/s, reference {ref:.0f} profiles/s, "
        f"ratio {gg / ref:.2f}x"
    )

    pre = Preprocessor.fit(X[:2000], Y[:2000])
    model = GGANModel(
        gen,
        [f"L{i}" for i in range(a.landmarks)],
        [f"T{j}" for j in range(a.targets)],
        preprocessor=pre,
        recipe=recipe,
        device=str(device),
    )
    m = min(a.infer_profiles or n, n)
    model.predict_array(X[: min(m, 1000)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    model.predict_array(X[:m], batch_size=a.chunk_size)
    secs = time.perf_counter() - t
    print(f"inference: {m / secs:.0f} profiles/s ({m} profiles in {secs:.2f} s, original units out)")

    if a.stream:
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "model")
            rng = np.random.default_rng(a.seed + 1)
            for size in (int(s) for s in a.stream.split(",")):
                q = Path(tmp) / f"query_{size}.parquet"
                import pyarrow as pa
                import pyarrow.parquet as pq

                writer = None
                for s in range(0, size, 50_000):  # write the query in pieces too
                    k = min(50_000, size - s)
                    df = pd.DataFrame(
                        rng.standard_normal((k, a.landmarks), dtype=np.float32),
                        columns=model.landmarks,
                        index=[f"q{s + i}" for i in range(k)],
                    )
                    t = pa.Table.from_pandas(df)
                    writer = writer or pq.ParquetWriter(q, t.schema)
                    writer.write_table(t)
                writer.close()
                out = Path(tmp) / f"pred_{size}.parquet"
                r = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        STREAM_CHILD,
                        str(Path(tmp) / "model"),
                        str(q),
                        str(out),
                        str(device),
                        str(a.chunk_size),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res = json.loads(r.stdout.strip().splitlines()[-1])
                print(
                    f"streamed inference: {res['profiles']} profiles (chunks of {a.chunk_size}) -> "
                    f"parquet in "
                    f"{res['seconds']:.1f} s, peak RSS {res['peak_rss_mb']:.0f} MB"
                )
                out.unlink()


if __name__ == "__main__":
    main()
