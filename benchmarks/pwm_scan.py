"""PWM scan of a chromosome-sized sequence: memory and speed, against Biopython measured in the same run.

Makes a synthetic sequence (``--length``, default 100 Mb, uniform random bases with 0.1 % N in runs;
nothing is written into the repository) and a random ``--width``-position motif (default 20), then,
each in its own process so that its peak resident memory is its own:

1. **gengen scan**: ``PWMPredictor.scan`` on the sequence's codes (best window, both strands), the
   function ``dna-score`` runs;
2. **gengen dna-score** end to end (``--cli``; default on): the command on a FASTA of the sequence
   written to a temporary folder (removed afterwards), reading and encoding included;
3. **reference**: Biopython's ``PSSM.calculate`` (its C scanner) on both strands of the first
   ``--ref-bases`` (default 10 Mb), with the same log-odds, scaled: the library a Biopython user would
   reach for. Its best score must equal gengen's on that stretch.

Speed is reported per CPU second (``time.process_time``, one thread: "per core") and per wall second;
peak memory is the process's high-water mark (``VmHWM``, else ``ru_maxrss``), with the part taken by
the interpreter and imports before the scan shown apart. Target (issue 18): < 2 GB peak and >= 10 Mb/s
per core for a 20-position motif.

    python benchmarks/pwm_scan.py [--length 100000000] [--width 20] [--threads 1] [--ref-bases 10000000]
        [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FRACTION = 0.001


def peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_codes(length: int, seed: int = 0) -> np.ndarray:
    """uint8 codes (0-3, 4 = N): uniform bases, N in runs of 100 covering about N_FRACTION."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, length, dtype=np.uint8)
    for s in rng.integers(0, max(1, length - 100), int(length * N_FRACTION / 100)):
        codes[s : s + 100] = 4
    return codes


def make_log_odds(width: int, seed: int = 1) -> np.ndarray:
    """(4, W) log-odds (bits) of random counts with a pseudocount: a realistic, non-degenerate motif."""
    counts = np.random.default_rng(seed).integers(0, 60, (4, width)).astype(float) + 0.25
    p = counts / counts.sum(axis=0)
    return np.log2(p / 0.25)


def run_gengen_scan(args) -> dict:
    import torch

    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.motifs import pwm_from_log_odds

    torch.set_num_threads(args.threads)
    codes = make_codes(args.length)
    pred = PWMPredictor(pwm_from_log_odds(make_log_odds(args.width), name="bench"))
    pred.scan(codes[None, :100_000])  # warm-up: the block matrix, the first GEMM
    before = peak_mb()
    c0, w0 = time.process_time(), time.perf_counter()
    hits = pred.scan(codes[None])
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    ref_hits = pred.scan(codes[None, : args.ref_bases], "skip")  # what Biopython scores (it skips N windows)
    return {"cpu_s": cpu, "wall_s": wall, "peak_mb": peak_mb(), "before_mb": before,
            "score": float(hits["score"][0]), "start": int(hits["hit_start"][0]),
            "strand": int(hits["hit_strand"][0]), "ref_stretch_score": float(ref_hits["score"][0])}


def run_biopython(args) -> dict:
    from Bio import motifs

    lo = make_log_odds(args.width)
    codes = make_codes(args.length)[: args.ref_bases]
    seq = np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode()
    m = motifs.Motif(alphabet="ACGT", counts={b: [1.0] * args.width for b in "ACGT"})
    pssm = m.pssm  # replaced by the benchmark's log-odds, so both scan the same matrix
    for i, b in enumerate("ACGT"):
        pssm[b] = list(lo[i])
    rc = pssm.reverse_complement()
    before = peak_mb()
    c0, w0 = time.process_time(), time.perf_counter()
    fwd = pssm.calculate(seq)
    rev = rc.calculate(seq)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    best = float(np.nanmax(np.maximum(np.nan_to_num(fwd, nan=-np.inf), np.nan_to_num(rev, nan=-np.inf))))
    return {"cpu_s": cpu, "wall_s": wall, "peak_mb": peak_mb(), "before_mb": before, "score": best,
            "bases": len(seq)}


def run_cli(args) -> dict:
    """dna-score on a FASTA of the sequence, in a child process; its peak RSS from the kernel."""
    with tempfile.TemporaryDirectory(prefix="gengen-pwm-scan-") as tmp:
        fasta, motif, out = Path(tmp, "chr.fa"), Path(tmp, "motif.txt"), Path(tmp, "hits.tsv")
        codes = make_codes(args.length)
        letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[codes]
        with open(fasta, "wb") as fh:
            fh.write(b">chrSynthetic\n")
            for i in range(0, len(letters), 60 * 100_000):  # 60-column lines, 6 Mb at a time
                block = letters[i : i + 60 * 100_000].tobytes()
                fh.write(b"\n".join(block[j : j + 60] for j in range(0, len(block), 60)) + b"\n")
        del codes, letters
        lo = make_log_odds(args.width)
        motif.write_text("A C G T\n" + "".join(" ".join(f"{v:.6f}" for v in lo[:, j]) + "\n" for j in range(args.width)))
        cmd = [sys.executable, "-c", "import sys; from gengen.cli import main; sys.argv[0] = 'gengen'; main()",
               "dna-score", str(fasta), "--motif", str(motif), "-o", str(out), "--threads", str(args.threads),
               "--device", "cpu"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GENGEN_NO_PROGRESS": "1"})
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"dna-score failed: {res.stderr.strip()[-2000:]}")
        import pandas as pd

        row = pd.read_csv(out, sep="\t").iloc[0]
        return {"cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), "wall_s": wall,
                "peak_mb": after.ru_maxrss / 1024, "score": float(row["motif_score"]),
                "start": int(row["hit_start"]), "strand": row["hit_strand"]}


def child(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--length", str(args.length), "--width", str(args.width),
           "--threads", str(args.threads), "--ref-bases", str(args.ref_bases)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--length", type=int, default=100_000_000)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ref-bases", type=int, default=10_000_000)
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end dna-score run")
    ap.add_argument("--child", choices=["scan", "biopython"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.ref_bases = min(args.ref_bases, args.length)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.child:
        out = run_gengen_scan(args) if args.child == "scan" else run_biopython(args)
        print(json.dumps(out))
        return
    mb = args.length / 1e6
    print(f"# {mb:g} Mb synthetic sequence ({100 * N_FRACTION:g}% N), random {args.width}-position motif, "
          f"{args.threads} thread(s); load average {os.getloadavg()[0]:.2f}")
    bio = child("biopython", args)
    scan = child("scan", args)
    ref_mb = bio["bases"] / 1e6
    bio_cpu, bio_wall = ref_mb / bio["cpu_s"], ref_mb / bio["wall_s"]
    print(f"reference  Biopython PSSM.calculate, both strands, first {ref_mb:g} Mb: {bio_cpu:.2f} Mb per CPU s, "
          f"{bio_wall:.2f} Mb/s wall; peak {bio['peak_mb']:.0f} MB ({bio['before_mb']:.0f} MB before the scan); "
          f"best {bio['score']:.4f}")
    s_cpu, s_wall = mb / scan["cpu_s"], mb / scan["wall_s"]
    print(f"gengen     PWMPredictor.scan, both strands, {mb:g} Mb: {s_cpu:.2f} Mb per CPU s, {s_wall:.2f} Mb/s wall "
          f"({scan['wall_s']:.1f} s); peak {scan['peak_mb']:.0f} MB ({scan['before_mb']:.0f} MB before the scan: "
          f"interpreter, torch, the {mb:g} MB of codes); best {scan['score']:.4f} at {scan['start'] + 1} "
          f"{'+-'[scan['strand']]}")
    agree = abs(scan["ref_stretch_score"] - bio["score"]) < 1e-3
    print(f"same best window score as Biopython on the first {ref_mb:g} Mb (N windows skipped): "
          f"{scan['ref_stretch_score']:.4f} vs {bio['score']:.4f} -> {'yes' if agree else 'NO'}")
    print(f"ratio gengen / Biopython: {s_cpu / bio_cpu:.2f}x per CPU second, {s_wall / bio_wall:.2f}x wall")
    if not args.no_cli:
        cli = run_cli(args)
        print(f"gengen     dna-score end to end (FASTA read, encoded, scanned, TSV written), {mb:g} Mb: "
              f"{cli['wall_s']:.1f} s wall, {cli['cpu_s']:.1f} CPU s ({mb / cli['cpu_s']:.2f} Mb per CPU s); "
              f"peak RSS {cli['peak_mb']:.0f} MB; best {cli['score']:.4f} at {cli['start']} {cli['strand']}")
    target_ok = scan["peak_mb"] < 2048 and s_cpu >= 10
    print(f"target < 2 GB peak and >= 10 Mb/s per core: {'met' if target_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
