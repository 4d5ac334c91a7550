"""``gengen sweep PIPELINE DATA ...``: hyper-parameter studies over a pipeline's own trainer.

One sub-command per pipeline, each taking that pipeline's usual data options plus the shared sweep
options; everything is checked before any data are read or any trial trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.cli import _options as opt
from gengen.cli._app import app, command_group, input_path
from gengen.errors import GengenError
from gengen.runtime import set_threads

PANEL = "Sweeps (Optuna)"

sweep_app = command_group(
    "sweep", typer_class=typer.Typer, help="Hyper-parameter and latent-size studies (Optuna): 'gengen sweep vae|ggan|predictor DATA --trials N -o DIR'. "
    "The same command on several machines (with --storage postgresql://... --study NAME) shares one study.",
)
app.add_typer(sweep_app, name="sweep", rich_help_panel=PANEL)

OutOpt = Annotated[Path, typer.Option("-o", "--output", help="Sweep folder: trials.csv, sweep.png, best/ (the best "
                                      "trial's model), summary.json, and study.db unless --storage.")]
TrialsOpt = Annotated[int | None, typer.Option("--trials", "-n", help="Trials the whole study finishes, over all workers (default: the full grid; 20 for tpe/random; a joined study's own).", show_default=False)]
SpaceOpt = Annotated[str | None, typer.Option("--space", help="Search space: a TOML file (per parameter a list, {low, high, log|step} or a value) or a built-in (vae: default, tybalt, tybalt-z, latent; ggan: default, dgex; predictor: default).", show_default=False)]
SamplerOpt = Annotated[str | None, typer.Option("--sampler", help="grid | tpe | random (default: grid when every parameter is discrete, else tpe).", show_default=False)]
PrunerOpt = Annotated[str | None, typer.Option("--pruner", help="Stop poor trials early on the per-epoch validation metric: median (worse than the median of earlier trials at the same epoch, from epoch 10; 2 for the predictor) | halving | none (default: median).", show_default=False)]
StorageOpt = Annotated[str | None, typer.Option("--storage", help="Database URL shared by all workers, e.g. postgresql://user:pass@host:5432/db (default: an SQLite file in the sweep folder).", show_default=False)]
StudyOpt = Annotated[str | None, typer.Option("--study", help="Study name to create or join; needed with --storage (default: the pipeline's name).", show_default=False)]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue a study that must exist (and allow a larger --trials).")]
HeartbeatOpt = Annotated[float | None, typer.Option("--heartbeat", help="Seconds between a running trial's heartbeats; a trial silent for 3 of them (worker killed) is failed and queued again (default: 30; a joined study's own).", show_default=False)]
RegisterOpt = Annotated[str | None, typer.Option("--register", help="Also copy the best model into the model store as NAME (the default model of its pipeline when it has none yet).", show_default=False)]
SweepSeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of every trial and of the sampler (default: 0; a joined study's own).", show_default=False)]
ValOpt = Annotated[float, typer.Option("--val-fraction", help="Held-out fraction the objective is measured on.")]


def _val_fraction(v: float) -> float:
    if not 0 < v < 1:
        raise GengenError(f"--val-fraction must be between 0 and 1 (a sweep scores every trial on held-out data), got {v}.")
    return v


# the study options every sweep command takes (run_sweep's keywords)
SWEEP_OPTIONS = opt.OptionGroup(
    "sweep", {"trials": TrialsOpt, "space": SpaceOpt, "sampler": SamplerOpt, "pruner": PrunerOpt, "storage": StorageOpt,
              "study": StudyOpt, "resume": ResumeOpt, "heartbeat": HeartbeatOpt, "register": RegisterOpt},
    {"trials": None, "space": None, "sampler": None, "pruner": None, "storage": None, "study": None, "resume": False,
     "heartbeat": None, "register": None})


def sweep_command(name: str):
    """A ``gengen sweep NAME`` command with the :data:`SWEEP_OPTIONS`."""
    return lambda command: sweep_app.command(name)(SWEEP_OPTIONS(command))


def _run(pipeline: str, loader, output, sweep: dict, seed, device, threads, quiet) -> None:
    from gengen.sweep import run_sweep

    set_threads(threads)
    result = run_sweep(pipeline, loader, output, **sweep, seed=seed, device=device, quiet=quiet)
    typer.echo(str(result.outputs.get("best", output)))


@sweep_command("vae")
def sweep_vae(
    data: Annotated[Path, typer.Argument(help="Expression matrix (h5ad, csv, tsv, parquet, gct, gctx), samples x genes.")],
    output: OutOpt,
    sweep: dict | None = None,  # the SWEEP_OPTIONS, from --trials to --register
    by: Annotated[str | None, typer.Option("--by", help="Label (obs column) for kNN accuracy of each trial, and of "
                                           "PCA at the same latent size.")] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Sample annotation table (CSV/TSV, sample ids "
                                                     "first) to take --by from.")] = None,
    log_transform: Annotated[str, typer.Option("--log", help="log2(x+1) before scaling: auto | yes | no.")] = "auto",
    val_fraction: ValOpt = 0.1,
    seed: SweepSeedOpt = None, genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None,
    layer: opt.LayerOpt = None, device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Sweep the Tybalt VAE; objective: held-out reconstruction (val_recon, lower is better) every epoch."""
    from gengen.vae.preprocess import LOG_CHOICES

    if log_transform not in LOG_CHOICES:
        raise GengenError(f"--log must be one of {', '.join(LOG_CHOICES)}, got {log_transform!r}.")
    _val_fraction(val_fraction)
    input_path(data)
    if labels_file is not None:
        input_path(labels_file)
    if labels_file is not None and by is None:
        raise GengenError("--labels gives the table to take --by from: add --by COLUMN.")

    def load():
        from gengen.cli.vae import _read, _with_labels
        from gengen.sweep import ExpressionData
        from gengen.vae.features import labels_from

        adata = _with_labels(_read(data, genes_in_rows, fmt, quiet, layer=layer), labels_file, quiet)
        labels = labels_from(adata, by) if by else None
        return ExpressionData(adata, labels=labels, by=by, val_fraction=val_fraction, log_transform=log_transform)

    _run("vae", load, output, sweep, seed, device, threads, quiet)


@sweep_command("ggan")
def sweep_ggan(
    data: Annotated[Path, typer.Argument(help="Reference expression (h5ad, csv, tsv, parquet, gct, gctx), samples x genes.")],
    output: OutOpt,
    sweep: dict | None = None,  # the SWEEP_OPTIONS, from --trials to --register
    landmarks: Annotated[Path | None, typer.Option("--landmarks", "-l", help="Landmark genes: a list, a table's first "
                                                   "column, or a D-GEX probe map.")] = None,
    landmarks_from: Annotated[Path | None, typer.Option("--landmarks-from", help="Use the genes of this query file "
                                                        "as landmarks.")] = None,
    targets: Annotated[Path | None, typer.Option("--targets", "-t", help="Target genes (default: all other genes).")] = None,
    probe_map: Annotated[bool | None, typer.Option("--probe-map/--no-probe-map", show_default=False,
                                                   help="Treat --landmarks/--targets as probe maps (default: detect).")] = None,
    quantile: Annotated[bool, typer.Option("--quantile/--no-quantile", help="Quantile-normalise profiles (D-GEX).")] = False,
    val_fraction: ValOpt = 0.1,
    seed: SweepSeedOpt = None, genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None,
    layer: opt.LayerOpt = None, device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Sweep GGAN (landmarks -> targets); objective: validation MAE on z-scored targets (lower is better)."""
    _val_fraction(val_fraction)
    input_path(data)
    if (landmarks is None) == (landmarks_from is None):
        raise GengenError("give exactly one of --landmarks LIST or --landmarks-from QUERY.")

    def load():
        from gengen.cli.ggan import _reference
        from gengen.sweep import ReferenceData

        adata, lm, tg, _ = _reference(data, landmarks, landmarks_from, targets, probe_map, genes_in_rows, fmt, quiet,
                                      stream="never", layer=layer)  # every trial trains on it in memory
        return ReferenceData(adata, lm, tg, val_fraction=val_fraction, quantile=quantile)

    _run("ggan", load, output, sweep, seed, device, threads, quiet)


@sweep_command("predictor")
def sweep_predictor(
    data: Annotated[Path, typer.Argument(help="FASTA of labelled sequences (equal length).")],
    output: OutOpt,
    scores: Annotated[Path, typer.Option("--scores", help="CSV/TSV: sequence id, numeric score (e.g. id,signal).")],
    sweep: dict | None = None,  # the SWEEP_OPTIONS, from --trials to --register
    transform: Annotated[str, typer.Option("--transform", help="Label transform: log | rank | none.")] = "log",
    ambiguous: Annotated[str, typer.Option("--ambiguous", help="N/IUPAC bases: uniform | skip | error.")] = "uniform",
    val_fraction: ValOpt = 0.1,
    seed: SweepSeedOpt = None, device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Sweep dna-train-predictor's CNN; objective: Pearson r on the early-stopping split (higher is better)."""
    from gengen.dna.predictor.training import TRANSFORMS

    if transform not in TRANSFORMS:
        raise GengenError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}.")
    _val_fraction(val_fraction)
    input_path(data)
    input_path(scores)

    def load():
        from gengen.dna.predictor.training import read_labels
        from gengen.io.sequences import read_fasta
        from gengen.sweep import LabelledSequences

        seqs = read_fasta(data, ambiguous=ambiguous, quiet=quiet)
        return LabelledSequences(seqs.codes, read_labels(scores, seqs.ids), transform=transform,
                                 val_fraction=val_fraction)

    _run("predictor", load, output, sweep, seed, device, threads, quiet)
