"""Reading a TCGA-size expression download: gengen's ``read_expression`` vs plain pandas, same run.

Workload: a generated stand-in for UCSC Xena's ``HiSeqV2.gz`` -- 20,530 genes in rows x 10,459 TCGA
barcodes in columns, gzipped TSV, log2(x+1)-like values written with at most 4 decimals (zeros as
``0``), as Xena writes them. The file is made once (seeded) and cached under ``benchmarks/out/``.

Each reader runs in its own subprocess, so its peak resident memory (``ru_maxrss``) is its own:

- gengen: ``gengen.io.expression.read_expression(path)`` -> samples x genes float32 AnnData
  (format, compression and orientation all recognised from the content and the names);
- reference: ``pandas.read_csv(path, sep="\\t", index_col=0).T`` (float64 DataFrame), what one
  would write by hand.

Prints time and peak RSS of both and the ratios (gengen / reference; < 1 is better). Target (issue 10):
under 2 minutes and 6 GB peak on the 2-core machine.

    python benchmarks/read_expression.py                          # full TCGA size
    python benchmarks/read_expression.py --samples 1000 --genes 2000   # quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


def generate(path: Path, n_samples: int, n_genes: int, seed: int = 0, block: int = 500) -> None:
    """Write a Xena-like gzipped TSV (genes in rows) in row blocks, so memory stays small."""
    import pyarrow as pa
    import pyarrow.csv as pc

    rng = np.random.default_rng(seed)
    samples = [f"TCGA-{rng.integers(10, 99)}-{i:04d}-01" for i in range(n_samples)]
    tmp = path.with_name(path.name + ".part")
    with pa.CompressedOutputStream(str(tmp), "gzip") as out:
        out.write(("sample\t" + "\t".join(samples) + "\n").encode())
        options = pc.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
        for start in range(0, n_genes, block):
            stop = min(start + block, n_genes)
            mean = rng.uniform(0, 12, size=(stop - start, 1))
            sd = rng.uniform(0.3, 3, size=(stop - start, 1))
            values = np.round(np.clip(rng.normal(mean, sd, size=(stop - start, n_samples)), 0, None), 4)
            columns = {"sample": pa.array([f"GENE{g + 1}" for g in range(start, stop)])}
            columns.update({s: pa.array(values[:, j]) for j, s in enumerate(samples)})
            pc.write_csv(pa.table(columns), out, options)
    tmp.replace(path)


CHILD = r"""
import json, resource, sys, time
import numpy as np
path, which = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if which == "gengen":
    from gengen.io.expression import read_expression
    a = read_expression(path, quiet=True)
    values, shape = a.X, a.shape
else:
    import pandas as pd
    df = pd.read_csv(path, sep="\t", index_col=0).T
    values, shape = df.to_numpy(), df.shape
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
peak_gb, cpu = usage.ru_maxrss / 1024**2, usage.ru_utime + usage.ru_stime  # kB on Linux; before the checksum
checksum = float(np.sum(values, dtype=np.float64))  # no float64 copy of the matrix
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_gb": peak_gb, "shape": list(shape), "dtype": str(values.dtype),
                  "checksum": checksum}))
"""


def run(path: Path, which: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, str(path), which], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{which} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_459)
    ap.add_argument("--genes", type=int, default=20_530)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-reference", action="store_true", help="time gengen only")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"HiSeqV2_{args.samples}x{args.genes}_s{args.seed}" / "HiSeqV2.gz"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.samples, args.genes, args.seed)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    print(f"input: {path} ({path.stat().st_size / 1e6:.0f} MB gzipped), {args.genes} genes x {args.samples} samples")
    ours = run(path, "gengen")
    print(f"gengen read_expression : {ours['seconds']:7.1f} s ({ours['cpu']:.1f} s CPU), peak RSS {ours['peak_gb']:.2f} GB, "
          f"{ours['shape'][0]} x {ours['shape'][1]} {ours['dtype']}")
    if args.skip_reference:
        return
    ref = run(path, "reference")
    print(f"pandas read_csv + .T   : {ref['seconds']:7.1f} s ({ref['cpu']:.1f} s CPU), peak RSS {ref['peak_gb']:.2f} GB, "
          f"{ref['shape'][0]} x {ref['shape'][1]} {ref['dtype']}")
    rel = abs(ours["checksum"] - ref["checksum"]) / max(1.0, abs(ref["checksum"]))
    print(f"ratio gengen / reference: time {ours['seconds'] / ref['seconds']:.2f}x (CPU {ours['cpu'] / ref['cpu']:.2f}x), "
          f"peak memory {ours['peak_gb'] / ref['peak_gb']:.2f}x (same values: relative sum difference {rel:.1e})")


if __name__ == "__main__":
    main()
