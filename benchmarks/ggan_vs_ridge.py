"""Default GGAN against ridge on every shared reference, with `gengen ggan-eval` on the same folds.

For each reference and fold setting (random k-fold, and grouped k-fold where the samples carry a subject,
batch or class label) this runs, as a user would type it,

    gengen ggan-eval REF --landmarks L [--targets T] --methods ggan,ridge --folds K [--groups COL] --threads 2

with default GGAN options, and prints GGAN's and ridge's held-out MAE (z-scored targets, mean over genes,
mean over folds), their difference and ratio (ridge, measured in the same run, is the reference), and
how many folds GGAN is below ridge in. References (../shared/data, skipped when absent):

- bladderbatch: 57 HG-U133A profiles, probes averaged into the D-GEX maps' 943 landmark and 9,520
  target genes; grouped by ``batch`` (5 processing batches).
- pbmc: the GGAN demo's data, scanpy's pbmc68k_reduced (700 cells, log-normalised ``.raw``): the 100
  most variable genes -> the next 300; grouped by ``bulk_labels`` (cell type).
- nci60, khan_srbct, tcga_acc_mini: the 10 % most variable genes are the landmarks, all others the
  targets; grouped by cancer type, tumour class and pathologic stage.

Usage: python benchmarks/ggan_vs_ridge.py [--only bladderbatch,pbmc] [--threads 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("GENGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _write_list(path: Path, genes) -> Path:
    path.write_text("\n".join(map(str, genes)) + "\n")
    return path


def _by_variance(h5ad: Path, work: Path, name: str, fraction: float = 0.1) -> tuple[list[str], int]:
    """Landmark / target lists: the ``fraction`` most variable genes, then all the others."""
    import anndata as ad

    a = ad.read_h5ad(h5ad)
    X = np.asarray(a.X, dtype=np.float64)
    order = np.argsort(-X.var(axis=0), kind="stable")
    n_l = max(10, int(round(fraction * a.n_vars)))
    names = np.asarray(a.var_names.astype(str))
    lm = _write_list(work / f"{name}_landmarks.txt", names[order[:n_l]])
    tg = _write_list(work / f"{name}_targets.txt", names[order[n_l:]])
    return [str(h5ad), "--landmarks", str(lm), "--targets", str(tg)], a.n_obs


def _pbmc(work: Path) -> tuple[list[str], int]:
    """The demo's reference (gengen.ggan.demo): 100 most variable genes -> the next 300, all 700 cells."""
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    p = sc.datasets.pbmc68k_reduced()
    raw = p.raw
    X = raw.X.toarray() if hasattr(raw.X, "toarray") else np.asarray(raw.X)
    X = X.astype(np.float32)
    order = np.argsort(-X.var(axis=0))
    names = np.asarray(raw.var_names.astype(str))
    obs = pd.DataFrame({"bulk_labels": p.obs["bulk_labels"].astype(str).to_numpy()}, index=p.obs_names.astype(str))
    ad.AnnData(X[:, order[:400]], obs=obs, var=pd.DataFrame(index=names[order[:400]])).write_h5ad(work / "pbmc.h5ad")
    lm = _write_list(work / "pbmc_landmarks.txt", names[order[:100]])
    tg = _write_list(work / "pbmc_targets.txt", names[order[100:400]])
    return [str(work / "pbmc.h5ad"), "--landmarks", str(lm), "--targets", str(tg)], 700


def references(work: Path) -> list[tuple[str, list[str], str, int]]:
    """(name, reference arguments, group column, folds when grouped)."""
    out = []
    bb = SHARED / "expression" / "bladderbatch.h5ad"
    if bb.exists():
        args = [str(bb), "--landmarks", str(SHARED / "ggan" / "dgex_landmarks_943.tsv"),
                "--targets", str(SHARED / "ggan" / "dgex_targets_9520.tsv")]
        out.append(("bladderbatch", args, "batch", 5))
    out.append(("pbmc", None, "bulk_labels", 5))
    for name, col, k in (("nci60", "cancer_type", 5), ("khan_srbct", "tumor_class", 4),
                         ("tcga_acc_mini", "pathologic_stage", 5)):
        if (SHARED / "expression" / f"{name}.h5ad").exists():
            out.append((name, None, col, k))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated reference names")
    ap.add_argument("--settings", default="random,grouped", help="random, grouped or both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the ggan-eval outputs here")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="more ggan-eval options, after --")
    a = ap.parse_args()
    extra = [x for x in a.extra if x != "--"]

    import pandas as pd

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name, args, col, gfolds in references(work):
            if a.only and name not in a.only.split(","):
                continue
            if name == "pbmc":
                args, _ = _pbmc(work)
            elif args is None:
                args, _ = _by_variance(SHARED / "expression" / f"{name}.h5ad", work, name)
            for setting in a.settings.split(","):
                grouped = setting == "grouped"
                out = work / f"{name}_{setting}"
                cli = ["ggan-eval", *args, "--methods", "ggan,ridge", "--folds", str(gfolds if grouped else 5),
                       *(["--groups", col] if grouped else []), "--threads", str(a.threads), "--device", "cpu",
                       "-o", str(out), "-q", *extra]
                print("$ gengen " + " ".join(shlex.quote(c) for c in cli), flush=True)
                t0 = time.perf_counter()
                res = subprocess.run([sys.executable, "-c", "from gengen.cli import main; main()", *cli],
                                     capture_output=True, text=True, env={**os.environ, "GENGEN_NO_PROGRESS": "1"})
                seconds = time.perf_counter() - t0
                if res.returncode != 0:
                    print(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.stdout, flush=True)
                    continue
                f = pd.read_csv(out / "ggan_eval_folds.tsv", sep="\t")
                f = f[f["targets"] == "distinct"].pivot(index="fold", columns="method", values="mae")
                info = pd.read_json(out / "ggan_eval_info.json", typ="series")
                kept = [d["best_epoch"] for d in info["details"]["ggan"]]
                rows.append({
                    "reference": name, "folds": f"grouped by {col}" if grouped else "random",
                    "k": len(f), "profiles": info["n_profiles"],
                    "GGAN": f["ggan"].mean(), "ridge": f["ridge"].mean(),
                    "diff": f["ggan"].mean() - f["ridge"].mean(),
                    "ratio": f["ggan"].mean() / f["ridge"].mean(),
                    "below": f"{int((f['ggan'] < f['ridge'] - 1e-6).sum())}/{len(f)}",
                    "worst fold": (f["ggan"] - f["ridge"]).max(),
                    "trained kept": f"{sum(e > 0 for e in kept)}/{len(kept)}",
                    "seconds": seconds,
                })
                r = rows[-1]
                print(f"  GGAN {r['GGAN']:.4f}  ridge {r['ridge']:.4f}  diff {r['diff']:+.5f}  ratio {r['ratio']:.4f}  "
                      f"below in {r['below']} folds  ({seconds:.0f} s)", flush=True)
    if rows:
        table = pd.DataFrame(rows)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
