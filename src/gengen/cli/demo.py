"""``gengen demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.cli import _options as opt
from gengen.cli._app import app


@app.command(rich_help_panel="Getting started")
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the demo's outputs.")] = Path("gengen-demo"),
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only these pipelines (vae, dna, ggan).")] = None,
    seed: opt.SeedOpt = 0,
    threads: opt.ThreadsOpt = None,
    quiet: opt.QuietOpt = False,
) -> None:
    """Run every pipeline on small real data that ships with the dependencies; list what it wrote."""
    from gengen.demo import run_demo
    from gengen.runtime import plan_outputs, set_threads

    set_threads(threads)
    plan_outputs(folders=[output])
    lines = run_demo(output, seed=seed, quiet=quiet, only=only)
    for line in lines:
        typer.echo(line)
    typer.echo(f"\nfiles written under {output}/:")
    for p in sorted(output.rglob("*")):
        if p.is_file():
            typer.echo(f"  {p}")
