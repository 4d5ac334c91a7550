"""What writing h5ad through gengen's guarded file costs against anndata's own ``write_h5ad``, same run.

gengen writes every h5ad through :func:`gengen.io.h5ad.write_h5ad`: h5py's ``fileobj`` driver on a
Python file object that records a refused write instead of failing HDF5 (a full disk is then one line,
not an HDF5 crash at exit). This times it against ``AnnData.write_h5ad`` (the reference) on a
TCGA-sized embedding output (X float32 plus obsm, obs, var), alternating the two, and prints the
median of each and the ratio. Both files are read back and compared.

    python benchmarks/h5ad_write.py                          # 10,459 x 20,530 (0.86 GB of X)
    python benchmarks/h5ad_write.py --samples 2000 --genes 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_459)
    ap.add_argument("--genes", type=int, default=20_530)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import anndata as ad
    import pandas as pd

    from gengen.io.h5ad import write_h5ad

    rng = np.random.default_rng(0)
    a = ad.AnnData(rng.standard_normal((args.samples, args.genes), dtype=np.float32),
                   obs=pd.DataFrame({"group": rng.choice(["a", "b", "c"], args.samples)},
                                    index=[f"TCGA-{i:06d}" for i in range(args.samples)]),
                   var=pd.DataFrame(index=[f"G{j}" for j in range(args.genes)]))
    a.obsm["X_vae"] = rng.standard_normal((args.samples, 100), dtype=np.float32)
    a.uns["gengen"] = {"seed": 0, "model_path": "/m"}
    times: dict[str, list[float]] = {"anndata write_h5ad (reference)": [], "gengen write_h5ad": []}
    with tempfile.TemporaryDirectory(dir=".") as d:
        for i in range(args.repeats):
            for name in (list(times) if i % 2 == 0 else list(times)[::-1]):  # alternate who goes first
                path = Path(d) / ("ref.h5ad" if name.startswith("anndata") else "ours.h5ad")
                start = time.perf_counter()
                if name.startswith("anndata"):
                    a.write_h5ad(path)
                else:
                    write_h5ad(a, path)
                times[name].append(time.perf_counter() - start)
        ours, ref = ad.read_h5ad(Path(d) / "ours.h5ad"), ad.read_h5ad(Path(d) / "ref.h5ad")
        assert np.array_equal(ours.X, ref.X) and np.array_equal(ours.obsm["X_vae"], ref.obsm["X_vae"])
        size = (Path(d) / "ours.h5ad").stat().st_size
    print(f"{args.samples} x {args.genes} float32 + obsm (k=100): {size / 1e9:.2f} GB, median of {args.repeats}")
    base = statistics.median(times["anndata write_h5ad (reference)"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:32s} {med:7.2f} s  ({med / base:.2f}x the reference)")


if __name__ == "__main__":
    main()
