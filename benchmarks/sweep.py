"""gengen sweep: overhead against running the same trials by hand, and 1 vs 2 worker processes.

(1) Overhead, in one process: the same VAE configurations (a grid, pruning off so every trial runs to
    its end) trained one after another by hand -- ``VAEModel.train`` then ``model.save`` for each, as
    ``gengen vae-train`` does -- and through ``run_sweep`` (SQLite study, per-epoch reports to the
    database, heartbeats, best-model saves, trials table, figure). The sweep must give the same
    objective values (same seeds); prints both times and the ratio sweep / by hand (target <= 1.05),
    and also the ratio against training alone (no saves at all: the strictest reference).
(2) Workers: the same 8-trial grid through ``gengen sweep vae`` as one worker process, then as two
    worker processes started together on one SQLite study (``--threads 1`` each); prints the wall
    times (process start to last exit) and the speed-up, next to a control: the same trainings split
    over one or two plain processes (``VAEModel.train``, no sweep), i.e. what the machine itself gives
    a second process at that moment (on a shared machine, possibly nothing).

Workload (defaults): a synthetic Tybalt-shaped matrix, 1,000 samples x 5,000 genes (low-rank plus
noise, log-scale), k = 20..100, batch 50, 10 epochs per trial. The overhead is judged on CPU seconds of
the benchmark process (the machine may be shared: other jobs stretch wall time, not this work); wall
times are printed too.

    python benchmarks/sweep.py                        # both parts (~6 minutes on 2 idle cores)
    python benchmarks/sweep.py --part overhead --samples 500 --epochs 5      # quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GRID = {"latent": [20, 50, 100, 75], "lr": [5e-4, 1e-3]}


def synthetic_expression(n: int, genes: int, seed: int = 0):
    """Samples x genes AnnData on a log2 scale with 20 latent factors."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 20)).astype(np.float32)
    w = rng.standard_normal((20, genes)).astype(np.float32) / 4
    x = 6 + z @ w + 0.5 * rng.standard_normal((n, genes)).astype(np.float32)
    return ad.AnnData(x, obs=pd.DataFrame(index=[f"s{i}" for i in range(n)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))


def overhead(adata, epochs: int, out: Path, repeats: int) -> None:
    from gengen.runtime import set_threads
    from gengen.sweep import ExpressionData, build_space, get_pipeline, run_sweep
    from gengen.vae import VAEModel, VAERecipe

    set_threads(1)  # torch and numpy's BLAS, as --threads 1 does
    space = {**GRID, "epochs": epochs}
    configs = build_space("vae", space, get_pipeline("vae").params).grid()
    # warm-up outside the timings: first-call costs (imports, allocator, kernels) belong to neither side
    VAEModel.train(adata, VAERecipe(latent_dim=20, epochs=1), device="cpu", quiet=True).save(out / "warm")
    import gengen.sweep.study  # noqa: F401  (optuna, sqlalchemy: imported by both sides' process anyway)

    def timed(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        values = fn()
        return time.perf_counter() - wall, time.process_time() - cpu, values

    def by_hand(save: bool, tag: str) -> list[float]:
        values = []
        for i, c in enumerate(configs):
            recipe = VAERecipe(latent_dim=c["latent"], learning_rate=c["lr"], epochs=epochs, seed=0)
            model = VAEModel.train(adata, recipe, device="cpu", quiet=True)
            values.append(float(model.history["val_recon"].iloc[-1]))
            if save:
                model.save(out / f"{tag}_{i}")
        return values

    def sweep(tag: str) -> list[float]:
        res = run_sweep("vae", ExpressionData(adata), out / tag, space=space, pruner="none", quiet=True)
        return res.table.sort_values("trial")["val_recon"].tolist()

    # interleaved repeats, rotating the order: the machine's load drifts, so each side sees the same drift.
    # CPU seconds of this process (all its threads) are the fairer measure on a shared machine: other
    # jobs stretch wall time, not the work done here.
    runs = {"hand": lambda r: by_hand(True, f"hand{r}"), "train": lambda r: by_hand(False, f"train{r}"),
            "sweep": lambda r: sweep(f"sweep{r}")}
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    values: dict[str, list[float]] = {}
    order = list(runs)
    for r in range(repeats):
        for name in order[r % 3:] + order[: r % 3]:
            w, c, values[name] = timed(lambda name=name, r=r: runs[name](r))
            wall[name].append(w)
            cpu[name].append(c)
    same = np.allclose(values["sweep"], values["hand"], rtol=1e-5)
    fmt = lambda ts: " ".join(f"{t:.2f}" for t in ts)  # noqa: E731
    med = {k: float(np.median(v)) for k, v in cpu.items()}
    print(f"overhead: {len(configs)} VAE trials on {adata.n_obs} x {adata.n_vars}, {epochs} epochs each, "
          f"1 thread, {repeats} interleaved repeats")
    for key, label in (("hand", "by hand (train + save each)"), ("train", "training alone (no saves)"),
                       ("sweep", "gengen sweep (SQLite study)")):
        print(f"  {label:30s} CPU s median {med[key]:7.2f} [{fmt(cpu[key])}]   wall s [{fmt(wall[key])}]")
    print(f"  same objective values (sweep vs by hand): {same}")
    print(f"  ratio sweep / by hand (CPU, medians):        {med['sweep'] / med['hand']:.3f}   target <= 1.05")
    print(f"  ratio sweep / training alone (CPU, medians): {med['sweep'] / med['train']:.3f}   "
          f"(difference {med['sweep'] - med['train']:.2f} CPU s for {len(configs)} trials)")
    print(f"  wall ratios per repeat, sweep / by hand: "
          f"{' '.join(f'{s / h:.3f}' for s, h in zip(wall['sweep'], wall['hand']))}")
    if not same:
        print(f"  values differ: sweep {values['sweep']} vs by hand {values['hand']}")


def workers(h5ad: Path, epochs: int, out: Path) -> None:
    space = out / "space.toml"
    space.write_text("".join(f"{k} = {list(v)}\n" for k, v in GRID.items()) + f"epochs = {epochs}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "GENGEN_NO_PROGRESS": "1"}

    def run(n: int, folder: str) -> float:
        cmd = [sys.executable, "-c", "from gengen.cli import main; main()", "sweep", "vae", str(h5ad), "-o",
               str(out / folder), "--space", str(space), "--pruner", "none", "--threads", "1", "-q"]
        start = time.perf_counter()
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL) for _ in range(n)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        if any(codes):
            raise SystemExit(f"a worker failed: exit codes {codes}")
        return wall

    # control: the same 8 trainings split over 1 or 2 plain processes (VAEModel.train, no sweep, no
    # database): what this machine gives two processes at all right now
    script = ("import sys, anndata as ad; from gengen.runtime import set_threads; set_threads(1)\n"
              "from gengen.vae import VAEModel, VAERecipe\n"
              f"a = ad.read_h5ad({str(h5ad)!r}); part, n = int(sys.argv[1]), int(sys.argv[2])\n"
              f"configs = [(k, lr) for k in {GRID['latent']} for lr in {GRID['lr']}]\n"
              "for k, lr in configs[part::n]:\n"
              f"    VAEModel.train(a, VAERecipe(latent_dim=k, learning_rate=lr, epochs={epochs}, seed=0), "
              "device='cpu', quiet=True)\n")

    def control(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", script, str(i), str(n)], env=env) for i in range(n)]
        if any(p.wait() for p in procs):
            raise SystemExit("a control process failed")
        return time.perf_counter() - start

    c1 = control(1)
    one = run(1, "one")
    two = run(2, "two")
    c2 = control(2)
    import pandas as pd

    t1 = pd.read_csv(out / "one" / "trials.csv")
    t2 = pd.read_csv(out / "two" / "trials.csv")
    print(f"workers: 8-trial VAE grid, {epochs} epochs per trial, --threads 1 per worker (process start to exit)")
    print(f"  1 worker:  {one:7.2f} s wall   (trials {t1['duration_s'].sum():.1f} s)")
    print(f"  2 workers: {two:7.2f} s wall   (trials {t2['duration_s'].sum():.1f} s; trials per worker "
          f"{t2['worker'].value_counts().tolist()})")
    print(f"  speed-up 1 -> 2 workers: {one / two:5.2f}x")
    print(f"  control, the same trainings as 1 / 2 plain processes (no sweep): {c1:.2f} / {c2:.2f} s wall, "
          f"speed-up {c1 / c2:.2f}x")
    print(f"  (os.cpu_count() = {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at the end)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "overhead", "workers"), default="all")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--genes", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the overhead timing")
    args = ap.parse_args()
    os.environ.setdefault("GENGEN_NO_PROGRESS", "1")
    adata = synthetic_expression(args.samples, args.genes)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="gengen-sweep-bench-") as tmp:
        out = Path(tmp)
        if args.part in ("all", "overhead"):
            overhead(adata, args.epochs, out, args.repeats)
        if args.part in ("all", "workers"):
            h5ad = out / "data.h5ad"
            adata.write_h5ad(h5ad)
            workers(h5ad, args.epochs, out)


if __name__ == "__main__":
    main()
