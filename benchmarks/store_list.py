"""`gengen models list` on a store of many large-config models: cold (no index) and warm, against
parsing every config.json in the same run (the reference: what a listing without the index costs).

    PYTHONPATH=src python benchmarks/store_list.py [--models 300]

Each fake model has a D-GEX-size GGAN config (943 landmarks, 9,520 targets, probe lists: ~0.4 MB)
and 64 bytes of garbage as weights, which the store must never open.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def make_store(root: Path, n: int) -> None:
    cfg = {
        "format_version": 1, "pipeline": "ggan", "created": "2025-01-01T00:00:00+00:00",
        "architecture": {"hidden": [512, 512]}, "metrics": {"best_val_mae": 0.5},
        "landmarks": [f"L{j}" for j in range(943)], "targets": [f"GENE{j}@{j}_at" for j in range(9520)],
        "landmark_genes": [f"L{j}" for j in range(943)], "target_genes": [f"GENE{j}" for j in range(9520)],
        "landmark_probes": {f"L{j}": [f"{j}_at", f"{j}_s_at"] for j in range(943)},
    }
    text = json.dumps(cfg, indent=1)
    for i in range(n):
        d = root / f"model-{i:04d}"
        d.mkdir(parents=True)
        (d / "config.json").write_text(text)
        (d / "model.safetensors").write_bytes(os.urandom(64))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["GENGEN_HOME"] = home
        root = Path(home) / "models"
        make_store(root, args.models)
        from gengen.store import list_models

        t = time.perf_counter()
        for d in sorted(root.iterdir()):
            json.loads((d / "config.json").read_text())
        reference = time.perf_counter() - t
        t = time.perf_counter()
        cold = len(list_models())
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = len(list_models())
        warm_s = time.perf_counter() - t
        assert cold == warm == args.models
        size = (root / "model-0000" / "config.json").stat().st_size
        print(f"{args.models} models, config.json {size / 1e6:.2f} MB each")
        print(f"reference (parse every config.json): {reference * 1000:8.0f} ms")
        print(f"list_models, cold (builds the index): {cold_s * 1000:8.0f} ms  ({cold_s / reference:.2f}x the reference)")
        print(f"list_models, warm (index):            {warm_s * 1000:8.0f} ms  ({reference / warm_s:.0f}x faster than the reference)")


if __name__ == "__main__":
    main()
