"""Compendium scale: memory and throughput of vae-train on synthetic ARCHS4-layout files (issue 20).

Makes ARCHS4-layout HDF5 files in a temporary folder (deleted at the end; nothing is shipped): genes x
samples uint32 counts, gzip level 1, chunks of (all genes up to 2,000) x 1,000 samples, with
``meta/genes/gene_symbol``, ``meta/samples/geo_accession`` and a ``series_id`` field. Counts come from a
pool of 2,000 negative-binomial profiles (3 latent factors, library sizes varying 10-fold), each sample
a pool profile scaled by its own depth, so files of any size are written at disk speed.

Each measurement runs ``gengen vae-train`` as a separate process (``python -m gengen`` or ``torchrun``)
and reads its peak resident memory from the kernel (``wait4``'s ru_maxrss; for torchrun the largest
rank) and its training speed from the model's config.json (``metrics.train_seconds``: the training
loop, the statistics pass excluded):

1. memory: ``--stream on`` on n and 4n samples (peak RSS ratio; flat means <= 1.3x);
2. throughput: n samples in memory (``--stream off``, today's path) and streamed (``--stream on``),
   same recipe: training samples/s and their ratio (>= 0.67x wanted);
3. processes: streamed, one process vs ``torchrun --nproc-per-node 2`` (each rank one thread);
4. ``--big N``: peak RSS at N samples (1,000,000 x 5,000 is 20 GB of counts).

    python benchmarks/compendium.py                          # n = 50,000 x 5,000 genes, 4 epochs, --threads 1
    python benchmarks/compendium.py --n 20000 --epochs 1 --skip-processes
    python benchmarks/compendium.py --big 1000000 --only big  # the large file alone (~7 GB of disk, gzip-1)
    python benchmarks/compendium.py --only processes          # section 3 alone: 1 process vs torchrun x 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def write_synthetic(path: Path, n: int, genes: int, seed: int = 0, compression: str = "gzip") -> float:
    """An ARCHS4-layout file of ``n`` samples; returns the seconds it took."""
    import h5py

    from gengen.io.archs4 import EXPRESSION, GENE_FIELDS, SAMPLE_GROUP, SAMPLE_ID_FIELD

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 40, genes)
    f = rng.standard_normal((2000, 3))
    rate = base[None, :] * np.exp(f @ (0.6 * rng.standard_normal((3, genes))))
    pool = rng.negative_binomial(5, 5 / (5 + rate)).astype(np.float32)  # 2,000 profiles x genes
    chunk = (min(genes, 2000), 1000)
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w-") as h5:
        kw = {"compression": "gzip", "compression_opts": 1} if compression == "gzip" else {}
        ds = h5.create_dataset(EXPRESSION, shape=(genes, n), dtype="uint32", chunks=chunk, **kw)
        for s in range(0, n, 10_000):
            e = min(n, s + 10_000)
            block = pool[rng.integers(0, len(pool), e - s)] * rng.uniform(0.3, 3, e - s)[:, None]
            ds[:, s:e] = np.rint(block).astype(np.uint32).T
        h5.create_dataset(GENE_FIELDS[0], data=np.array([f"G{i}" for i in range(genes)], dtype=object), dtype=text)
        h5.create_dataset(SAMPLE_ID_FIELD, data=np.array([f"GSM{i}" for i in range(n)], dtype=object), dtype=text)
        h5.create_dataset(f"{SAMPLE_GROUP}/series_id", data=np.array([f"GSE{i // 500}" for i in range(n)], dtype=object),
                          dtype=text)
    return time.perf_counter() - t


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB of the process tree's largest member, stderr tail) of a command."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = _watch(proc)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    return wall, peak, err


def _watch(proc: subprocess.Popen) -> float:
    """Peak VmHWM (GB) over the process and its children, sampled every 0.2 s until it exits."""
    peak = 0.0
    while proc.poll() is None:
        for pid in [proc.pid, *_children(proc.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 2**20)
            except OSError:
                pass
        time.sleep(0.2)
    return peak


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out += [int(p), *_children(int(p))]
            except (OSError, IndexError, ValueError):
                pass
    return out


def train(data: Path, out: Path, stream: str, epochs: int, env: dict, procs: int = 1, threads: int | None = None):
    """Run vae-train; returns (wall s, peak RSS GB, training samples/s, metrics)."""
    args = ["vae-train", str(data), "-o", str(out), "--stream", stream, "--epochs", str(epochs), "--device", "cpu",
            "--latent", "100", "--batch-size", "50", "-q"]
    if threads:
        args += ["--threads", str(threads)]
    if procs == 1:
        cmd = [sys.executable, "-m", "gengen", *args]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        cmd = [torchrun, "--nproc-per-node", str(procs), "--rdzv-backend", "c10d", "--rdzv-endpoint",
               f"127.0.0.1:{29500 + os.getpid() % 1000}", "-m", "gengen", *args]
    wall, peak, _ = run(cmd, out.parent, env)
    cfg = json.loads((out / "config.json").read_text())
    m = cfg["metrics"]
    n_train = round(cfg["training"]["data"]["shapes"][0][0] * (1 - cfg["recipe"]["val_fraction"]))
    return wall, peak, n_train * epochs / m["train_seconds"], m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="samples of the small file (the large one has 4n)")
    ap.add_argument("--genes", type=int, default=5_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--big", type=int, default=0, help="also measure peak RSS on a file of this many samples")
    ap.add_argument("--only", choices=("all", "big", "processes"), default="all",
                    help="big: section 4 alone; processes: section 3 alone (on the n-sample file)")
    ap.add_argument("--skip-processes", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="alternated runs per mode in section 2 (the best counts)")
    ap.add_argument("--skip-memory", action="store_true", help="skip section 1 (n and 4n)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of sections 1, 2 and 4 (1: steady on a shared machine)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temporary folder)")
    args = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "GLOO_SOCKET_IFNAME": "lo",
           "GENGEN_NO_PROGRESS": "1"}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        env["GENGEN_HOME"] = str(tmp / "home")
        print(f"# {args.genes:,} genes, VAE k = 100, batch 50, {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}, "
              f"--threads {args.threads} (sections 1, 2, 4)")
        if args.only in ("all", "processes"):
            files = {}
            for n in (args.n,) if args.skip_memory or args.only == "processes" else (args.n, 4 * args.n):
                files[n] = tmp / f"archs4_{n}.h5"
                secs = write_synthetic(files[n], n, args.genes)
                print(f"wrote {n:,} x {args.genes:,} ({files[n].stat().st_size / 2**30:.2f} GB on disk) in {secs:.0f} s")
            if not args.skip_memory and args.only == "all":
                print("\n## 1. peak RSS, streamed, 1 epoch")
                peaks = {}
                for n, f in files.items():
                    wall, peaks[n], rate, _ = train(f, tmp / f"mem_{n}", "on", 1, env, threads=args.threads)
                    print(f"  {n:>9,} samples: peak RSS {peaks[n]:.2f} GB, {wall:.0f} s wall, {rate:,.0f} training samples/s")
                print(f"  ratio 4n / n: {peaks[4 * args.n] / peaks[args.n]:.2f}x (flat: <= 1.3x)")
            if args.only == "all":
                print(f"\n## 2. throughput on {args.n:,} samples, {args.epochs} epochs (runs alternated, best of {args.repeats})")
                runs = {"in memory": [], "streamed": []}
                for r in range(args.repeats):  # alternated: a machine whose load drifts hits both alike
                    for name, stream in (("in memory", "off"), ("streamed", "on")):
                        runs[name].append(train(files[args.n], tmp / f"{stream}_{r}", stream, args.epochs, env,
                                                threads=args.threads))
                best = {name: max(rs, key=lambda x: x[2]) for name, rs in runs.items()}
                for name, (wall, peak, rate, _) in best.items():
                    each = ", ".join(f"{x[2]:,.0f}" for x in runs[name])
                    print(f"  {name:10s} {rate:8,.0f} training samples/s (runs: {each}), {wall:5.0f} s wall, peak RSS {peak:.2f} GB")
                print(f"  streamed / in memory: {best['streamed'][2] / best['in memory'][2]:.2f}x (>= 0.67x wanted)")
            if not args.skip_processes:
                print(f"\n## 3. processes, streamed, {args.n:,} samples, {args.epochs} epochs")
                one = train(files[args.n], tmp / "one", "on", args.epochs, env, threads=1)
                loads = [os.getloadavg()[0]]
                one_all = train(files[args.n], tmp / "one_all", "on", args.epochs, env)
                loads.append(os.getloadavg()[0])
                two = train(files[args.n], tmp / "two", "on", args.epochs, env, procs=2, threads=1)
                loads.append(os.getloadavg()[0])
                for load, (name, (wall, peak, rate, _)) in zip(loads, (
                        ("1 process, 1 thread", one), (f"1 process, {os.cpu_count()} threads", one_all),
                        ("2 processes (torchrun), 1 thread each", two))):
                    print(f"  {name:38s} {rate:8,.0f} training samples/s, {wall:5.0f} s wall, peak RSS {peak:.2f} GB/rank"
                          f" (load {load:.1f} at its end)")
                print(f"  2 processes / 1 process (1 thread each): {two[2] / one[2]:.2f}x")
            for f in files.values():
                f.unlink()
        if args.big:
            f = tmp / f"archs4_{args.big}.h5"
            secs = write_synthetic(f, args.big, args.genes)
            print(f"\nwrote {args.big:,} x {args.genes:,} ({f.stat().st_size / 2**30:.1f} GB on disk) in {secs:.0f} s")
            wall, peak, rate, _ = train(f, tmp / "big", "on", 1, env, threads=args.threads)
            print(f"## 4. {args.big:,} samples, streamed, 1 epoch: peak RSS {peak:.2f} GB, {wall:.0f} s wall, "
                  f"{rate:,.0f} training samples/s")


if __name__ == "__main__":
    main()
