"""``gengen demo``: each pipeline on real data that installs with the dependencies.

Each pipeline contributes ``gengen.<pipeline>.demo.run(outdir, seed, quiet) -> list[str]`` (summary
lines); the demo runs those that exist, in order, and lists the files written.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from gengen.errors import GengenError
from gengen.runtime import log

PIPELINES = ("vae", "dna", "ggan")


def run_demo(outdir: str | Path, seed: int = 0, quiet: bool = False, *, only: list[str] | None = None) -> list[str]:
    """Run the demo steps; returns the summary lines."""
    unknown = [name for name in only or () if name not in PIPELINES]
    if unknown:
        raise GengenError(f"unknown pipeline(s) {', '.join(map(repr, unknown))} for --only; use {', '.join(PIPELINES)}.")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for name in only or PIPELINES:
        try:
            step = importlib.import_module(f"gengen.{name}.demo")
        except ModuleNotFoundError:
            continue
        log(f"== demo: {name} ==", quiet)
        lines += step.run(outdir / name, seed=seed, quiet=quiet)
    return lines
