"""CLI commands of the GGAN pipeline: parse, call :mod:`gengen.ggan`, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.cli import _options as opt
from gengen.cli._app import app, input_path, say
from gengen.cli._data import (
    DATA_OPTIONS,
    GGAN_COPIES,
    SELECTION_OPTIONS,
    DataChoice,
    NormalizeOpt,
    query_normalisation,
    with_normalisation,
)
from gengen.cli._store import TrainingRun, model_or_default, resumable
from gengen.errors import GengenError
from gengen.recipes import GGANRecipe
from gengen.registry import GGAN_METHODS
from gengen.runtime import plan_outputs, set_threads
from gengen.store import input_paths

PANEL = "GGAN (landmark → target)"

LandmarksOpt = Annotated[Path | None, typer.Option("--landmarks", "-l", help="Landmark genes: one per line, a table's first column, or a D-GEX probe map (symbol, Ensembl, probes).")]
LandmarksFromOpt = Annotated[Path | None, typer.Option("--landmarks-from", help="Use the genes of this query file (csv/tsv/parquet/h5ad/gct/gctx) as landmarks.")]
TargetsOpt = Annotated[Path | None, typer.Option("--targets", "-t", help="Target genes (list or probe map) (default: all other genes).")]
ProbeMapOpt = Annotated[bool | None, typer.Option("--probe-map/--no-probe-map", show_default=False, help="Treat --landmarks/--targets as probe maps and average each gene's probes (default: detect).")]
ADAPTS = "\\[default: adapts to the reference size; see docs/ggan.md]"
SkipOpt = Annotated[bool | None, typer.Option("--linear-skip/--no-linear-skip", show_default=False, help=f"A linear landmark → target path beside the MLP (on with the ridge start). {ADAPTS}")]
RidgeInitOpt = Annotated[bool | None, typer.Option("--ridge-init/--no-ridge-init", show_default=False, help="Start from the leave-one-out ridge map (implies --linear-skip) and keep training only if it " f"beats that start on validation; on below 50,000 profiles. {ADAPTS}")]
RefitOpt = Annotated[bool | None, typer.Option("--refit/--no-refit", show_default=False, help=f"After picking the epoch on validation, retrain on all profiles; on below 2,000 profiles. {ADAPTS}")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto (train in float32; infer with bf16 autocast on a CUDA GPU, float32 on the CPU), fp32 or bf16 (for both).")]
NoiseOpt = Annotated[float, typer.Option("--input-noise", help="Std of Gaussian noise on z-scored landmarks.")]
HiddenOpt = Annotated[int | None, typer.Option("--hidden", show_default=False, help=f"Generator width: 512 below 2,000 profiles, D-GEX's 3,000 from 50,000, log-linear between. {ADAPTS}")]
LayersOpt = Annotated[int | None, typer.Option("--layers", show_default=False, help="Generator hidden layers \\[default: 3].")]
DropoutOpt = Annotated[float, typer.Option("--dropout", help="Dropout after each hidden layer (also the GAN noise).")]
ActOpt = Annotated[str, typer.Option("--activation", help="tanh (D-GEX) | relu | leaky_relu.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", show_default=False, help="Most epochs \\[default: ~1,500 optimiser steps].")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Batch size (capped at the training set).")]
LrOpt = Annotated[float | None, typer.Option("--lr", show_default=False, help="Adam learning rate \\[default: 1e-4 from the ridge start, else 5e-4 (D-GEX)].")]
WdOpt = Annotated[float, typer.Option("--weight-decay", help="Adam weight decay on the generator.")]
L1Opt = Annotated[float, typer.Option("--l1", help="λ₁: weight of the L1 loss.")]
ConsOpt = Annotated[float, typer.Option("--consistency", help="λ₂: weight of the two-draw consistency loss.")]
AdvOpt = Annotated[float, typer.Option("--adv-weight", help="Weight of the adversarial loss.")]
DHiddenOpt = Annotated[int | None, typer.Option("--d-hidden", show_default=False, help="Discriminator width \\[default: a quarter of --hidden, at most 512].")]
QuantOpt = Annotated[bool, typer.Option("--quantile/--no-quantile", help="Quantile-normalise profiles (D-GEX).")]
ValOpt = Annotated[float | None, typer.Option("--val-fraction", show_default=False, help="Validation fraction for checkpoint selection \\[default: 0.2 with --refit, else 0.1].")]
TrainOutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Model directory to write (default: a new model in the store, named after DATA, that becomes the default GGAN model).")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", show_default=False, help="Stop after this many epochs without a better validation MAE; 0: never \\[default: 20 below 50,000 profiles, else 0].")]
MarginOpt = Annotated[float | None, typer.Option("--start-margin", show_default=False, help="Standard errors (paired over validation profiles) by which training must beat the ridge start to replace it; 0: any gain \\[default: 3 with --ridge-init].")]


def _check(recipe: GGANRecipe) -> None:
    """Bad values fail before the reference is read."""
    from gengen.ggan.defaults import check_recipe
    from gengen.ggan.model import ACTIVATIONS

    if recipe.activation not in ACTIVATIONS:
        raise GengenError(f"unknown --activation {recipe.activation!r}; use one of {', '.join(ACTIVATIONS)}.")
    check_recipe(recipe)


# The recipe options of ggan-train and ggan-eval (defaults: GGANRecipe's; None adapts to the
# reference); --precision and --seed are the commands' own. --resume maps them back through the table.
_DECLARED = {"hidden": HiddenOpt, "layers": LayersOpt, "dropout": DropoutOpt, "activation": ActOpt, "epochs": EpochsOpt,
             "batch_size": BatchOpt, "lr": LrOpt, "weight_decay": WdOpt, "l1": L1Opt, "consistency": ConsOpt,
             "adv_weight": AdvOpt, "d_hidden": DHiddenOpt, "quantile": QuantOpt, "val_fraction": ValOpt,
             "patience": PatienceOpt, "start_margin": MarginOpt, "linear_skip": SkipOpt, "input_noise": NoiseOpt,
             "ridge_init": RidgeInitOpt, "refit": RefitOpt, "normalize": NormalizeOpt}
_RENAMED = {"lr": "learning_rate", "l1": "l1_weight", "consistency": "consistency_weight"}
GGAN_OPTIONS = opt.RecipeOptions(
    GGANRecipe, {name: _RENAMED.get(name, name) for name in (*_DECLARED, "precision", "seed")}, declared=_DECLARED,
    check=_check,
)


def _needed_genes(landmarks, targets, probe_map):
    """Given the reference's gene names, those the landmark and target lists use (probes of a probe
    map), read into memory; None (all) when the targets are every other gene."""
    if landmarks is None or targets is None:
        return None

    def pick(names: list[str]) -> list[str]:
        from gengen.ggan import prepare_reference
        from gengen.ggan.streamed import names_only

        mapped, lm, tg = prepare_reference(names_only(names), landmarks, targets, probe_map=probe_map, quiet=True)
        if "probes" in mapped.var.columns:
            return sorted({p for probes in mapped.var["probes"] for p in str(probes).split(",")} & set(names))
        return [*lm, *tg]

    return pick


def _reference(data, landmarks, landmarks_from, targets, probe_map, genes_in_rows, fmt, quiet, data_choice=None,
               normalize="auto", stream=None, layer=None):
    """Read the reference (chosen samples, normalised counts, an h5ad layer; in memory, or streamed when
    too large) and resolve landmark/target genes (probe-mapping when asked or detected).

    Returns (reference, landmarks, targets, how it was read)."""
    from gengen.ggan import prepare_reference
    from gengen.io.expression import read_expression

    if (landmarks is None) == (landmarks_from is None):
        raise GengenError("give exactly one of --landmarks LIST or --landmarks-from QUERY.")
    for p in (landmarks, landmarks_from, targets):
        if p is not None:
            input_path(p)
    inp = (data_choice or DataChoice()).open(data, stream=stream, normalize=normalize, fmt=fmt, genes_in_rows=genes_in_rows,
                                             layer=layer, genes=_needed_genes(landmarks, targets, probe_map),
                                             copies=GGAN_COPIES, quiet=quiet)
    adata = inp.data
    if inp.streamed:
        from gengen.ggan.streamed import streamed_reference as prepare_reference  # the same, on names alone
    if landmarks_from is not None:
        query = read_expression(landmarks_from, quiet=True)
        names = set(map(str, adata.var_names))
        options = [query.var_names.astype(str).tolist()]
        options += [query.var[c].astype(str).tolist() for c in ("pr_gene_symbol",) if c in query.var.columns]
        chosen = max(options, key=lambda o: sum(g in names for g in o))
        lm = [g for g in dict.fromkeys(chosen) if g in names]
        if not lm:
            raise GengenError(f"none of the genes of {str(landmarks_from)!r} are in the reference {str(data)!r}.")
        say(f"landmarks: {len(lm)} genes of {landmarks_from} found in the reference", quiet)
        return (*prepare_reference(adata, lm, targets, probe_map=False, quiet=quiet), inp)
    return (*prepare_reference(adata, landmarks, targets, probe_map=probe_map, quiet=quiet), inp)


@app.command("ggan-train", rich_help_panel=PANEL)
@resumable(GGAN_OPTIONS)
@DATA_OPTIONS
def ggan_train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Reference expression (h5ad, csv, tsv, parquet, gct, gctx, ARCHS4 HDF5), samples x genes.")],
    output: TrainOutputOpt = None,
    landmarks: LandmarksOpt = None,
    landmarks_from: LandmarksFromOpt = None,
    targets: TargetsOpt = None,
    probe_map: ProbeMapOpt = None,
    recipe: GGANRecipe | None = None,  # the GGAN_OPTIONS, from --hidden to --normalize
    data_choice: DataChoice | None = None,  # the DATA_OPTIONS: --samples, --where, --stream
    precision: PrecisionOpt = GGANRecipe.precision,
    seed: opt.SeedOpt = GGANRecipe.seed,
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
    training: TrainingRun | None = None,  # the TRAINING_OPTIONS: --resume, --checkpoint-every, --checkpoint-minutes
) -> None:
    """Train a GGAN (landmarks → targets); writes model.safetensors, config.json, history.csv and a plot.

    The model folder is a resumable checkpoint while training runs (every 10 epochs and at least once
    a minute, through the refit too): after an interruption, the same command with --resume continues.
    A reference too large for memory (an ARCHS4 compendium) is streamed from disk; under torchrun the
    training runs data-parallel (docs/ggan.md).
    """
    set_threads(threads)
    from gengen import distributed
    from gengen.ggan import GGANModel

    device = distributed.start(device)  # under torchrun: join the job, this rank's device
    run = training.folder(output, data, "ggan", inputs=(landmarks, landmarks_from, targets))
    if training.resume:
        recipe = GGAN_OPTIONS.resume(ctx, recipe, run.saved_recipe)
    adata, lm, tg, inp = _reference(data, landmarks, landmarks_from, targets, probe_map, genes_in_rows, fmt, quiet,
                                    data_choice, recipe.normalize, layer=layer)
    model = GGANModel.train(adata, lm, tg, recipe=with_normalisation(recipe, inp), device=device, quiet=quiet,
                            checkpoint=run.checkpoint)
    m = model.metrics
    say(
        f"trained {len(model.landmarks)} → {len(model.targets)} genes on {m['device']} ({m['precision']} training) in "
        f"{m['train_seconds']:.1f} s; "
        f"validation MAE {m['best_val_mae']:.4f} (z-scored) at epoch {m['best_epoch']}"
        + (" (the ridge start)" if model.recipe.ridge_init and m["best_epoch"] == 0 else ""),
        quiet,
    )
    run.done(quiet)


@app.command("infer-targets", rich_help_panel=PANEL)
@SELECTION_OPTIONS
def infer_targets(
    query: Annotated[Path, typer.Argument(help="Landmark profiles (csv, tsv, parquet, h5ad, gct, gctx, ARCHS4 HDF5); L1000 GCT/GCTX files are matched by row id, else by pr_gene_symbol (Entrez ids: see --gene-map)." )],
    model: opt.model_option("GGAN model directory or store name (default: the store's default GGAN model).") = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Predictions (.csv/.tsv/.parquet/.h5ad) (default: QUERY.targets.csv).")] = None,
    fill_missing: Annotated[bool, typer.Option("--fill-missing", help="Fill missing landmarks with training means (warns how many).")] = False,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Profiles per streamed chunk.")] = 10_000,
    gene_map: Annotated[Path | None, typer.Option("--gene-map", help="CSV/TSV with a header mapping the query's gene ids to the model's names: pr_gene_id -> pr_gene_symbol (GEO's GSE92742_Broad_LINCS_gene_info.txt as is), else first -> second column.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="auto (bf16 autocast on a CUDA GPU, float32 on the CPU), fp32 or bf16. \\[default: the model's]")] = None,
    data_choice: DataChoice | None = None,  # the SELECTION_OPTIONS: --samples, --where
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Predict target-gene expression (reference units) for every profile of QUERY, streamed in chunks."""
    set_threads(threads)
    from gengen.ggan import GGANModel, infer_file
    from gengen.io.expression import output_format

    input_path(query)
    output = output or opt.beside(query, ".targets.csv")
    output_format(output)  # fail on a bad output name before any work
    model = model_or_default(model, "ggan", quiet)
    plan_outputs([output], inputs=input_paths([query, model, gene_map]))
    if precision is not None:
        from gengen.runtime import resolve_precision

        resolve_precision(precision, "cpu")  # validates the name before any work
    m = GGANModel.load(model, device=device)
    if precision is not None:
        m.recipe.precision = precision.lower()
    from gengen.io.expression import input_format

    if data_choice.selects or m.recipe.normalize == "cpm" or input_format(query, fmt) == "archs4":
        info = _infer_chosen(m, query, output, data_choice, fill_missing, gene_map, genes_in_rows, fmt, layer, quiet)
    else:
        info = infer_file(m, query, output, fill_missing=fill_missing, chunk_size=chunk_size, genes_in_rows=genes_in_rows,
                          fmt=fmt, gene_map=gene_map, layer=layer, quiet=quiet)
    via = f", {info['landmarks_via_map']} through the gene map" if gene_map is not None else ""
    say(
        f"wrote {info['profiles']} x {len(m.targets)} predicted targets "
        f"({info['landmarks_found']}/{len(m.landmarks)} "
        f"landmarks, matched by {info['matched_by']}{via})",
        quiet,
    )
    typer.echo(str(output))


def _infer_chosen(m, query, output, data_choice, fill_missing, gene_map, genes_in_rows, fmt, layer, quiet) -> dict:
    """infer-targets on chosen samples, an ARCHS4 query or counts for a model trained on normalised counts:
    read the way the model's training data were, streamed by blocks when large."""
    from gengen.ggan.infer import infer, infer_chunked, to_anndata
    from gengen.io.expression import output_format, write_expression, write_table

    if gene_map is not None:
        raise GengenError("--gene-map goes with plain query files; for --samples/--where or an ARCHS4 query, name the "
                          "genes as the model does.")
    inp = data_choice.open(query, normalize=query_normalisation(m.recipe), fmt=fmt, genes_in_rows=genes_in_rows,
                           layer=layer, copies=GGAN_COPIES, quiet=quiet)
    if inp.streamed:
        return infer_chunked(m, inp.data, output, fill_missing=fill_missing, quiet=quiet)
    pred = infer(m, inp.data, fill_missing, quiet=quiet)
    if output_format(output) == "h5ad":
        write_expression(to_anndata(pred, m, obs=inp.data.obs), output, protect=(query,))
    else:
        pred.index.name = "sample"
        write_table(pred, output, protect=(query,))
    plan = m.plan(inp.data.var_names, inp.data.var)
    return {"profiles": len(pred), "matched_by": plan.how, "landmarks_found": int((~plan.missing).sum())}


@app.command("ggan-eval", rich_help_panel=PANEL)
@GGAN_OPTIONS
@SELECTION_OPTIONS
def ggan_eval(
    data: Annotated[Path, typer.Argument(help="Reference expression (h5ad, csv, tsv, parquet, gct, gctx), samples x genes.")],
    landmarks: LandmarksOpt = None,
    landmarks_from: LandmarksFromOpt = None,
    targets: TargetsOpt = None,
    probe_map: ProbeMapOpt = None,
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds (same splits for every method).")] = 5,
    groups: Annotated[str | None, typer.Option("--groups", help="Column of the reference's sample annotations (subject, donor, batch): grouped folds, no group both trained and tested on.")] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Sample annotation table (CSV/TSV, sample ids first) to take --groups from.")] = None,
    methods: Annotated[str | None, typer.Option("--methods", show_default=False, help=f"Comma-separated subset of {','.join(GGAN_METHODS)} \\[default: {','.join(GGAN_METHODS.names(default_only=True))}, less a baseline that would cost more than GGAN itself on a reference this size; the output says which and why].")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for ggan_eval_summary.tsv, per-gene TSV, the figure, and fold_results/ (each fold's results as it finishes).")] = Path("ggan_eval"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted ggan-eval in -o: finished folds are read back from its fold_results/, the rest computed (give the same data and options).")] = False,
    recipe: GGANRecipe | None = None,  # the GGAN_OPTIONS, from --hidden to --normalize
    data_choice: DataChoice | None = None,  # the SELECTION_OPTIONS: --samples, --where
    seed: opt.SeedOpt = GGANRecipe.seed,
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """k-fold comparison of GGAN, D-GEX, linear, ridge, lasso, KNN-GE and the mean predictor (MAE/CCC/r).

    Each method's result on each fold is written to -o's fold_results/ as soon as it is finished: after an
    interruption the same command with --resume computes only what is missing.
    """
    set_threads(threads)
    from gengen.ggan import evaluate
    from gengen.ggan.evaluate import eval_outputs
    from gengen.ggan.reference import reference_arrays

    chosen = None
    if methods is not None:  # checked before the reference is read
        chosen = GGAN_METHODS.check(tuple(m.strip() for m in methods.split(",") if m.strip()))
    fold_results = output / "fold_results"
    if resume and not fold_results.is_dir():
        raise GengenError(f"nothing to resume: {str(output)!r} has no fold_results/ of an interrupted ggan-eval; "
                          "run without --resume.")
    plan_outputs(list(eval_outputs(output).values()), folders=[fold_results],
                 inputs=input_paths([data, landmarks, landmarks_from, targets, labels_file]))
    if labels_file is not None:
        input_path(labels_file)
        if groups is None:
            raise GengenError("--labels gives annotations for --groups COLUMN; add --groups.")
    recipe = opt.replace(recipe, precision="fp32")  # every method scored from float32 predictions, as the baselines are
    adata, lm, tg, inp = _reference(data, landmarks, landmarks_from, targets, probe_map, genes_in_rows, fmt, quiet,
                                    data_choice, recipe.normalize, stream="never", layer=layer)  # its baselines need it in memory
    recipe = with_normalisation(recipe, inp)
    group_labels = None
    if groups is not None:
        from gengen.ggan import group_labels_from
        from gengen.io.expression import attach_annotations

        if labels_file is not None:
            adata = attach_annotations(adata, labels_file, quiet)
        group_labels = group_labels_from(adata.obs, groups)
        from gengen.ggan import kfold_indices

        kfold_indices(adata.n_obs, folds, seed, groups=group_labels)  # too few groups: fail before training
    ref = reference_arrays(adata, lm, tg)
    same = ref.same_gene_targets()
    by = f", grouped by {groups!r} ({len(set(group_labels))} groups)" if groups is not None else ""
    say(f"{folds}-fold comparison on {adata.n_obs} profiles{by}: {len(ref.landmarks)} landmarks -> {len(ref.targets)} "
        f"targets ({len(same)} same-gene targets reported separately)", quiet)
    ev = evaluate(ref.X, ref.Y, ref.targets, same_gene=same, folds=folds, recipe=recipe, methods=chosen, seed=seed,
                  device=device, quiet=quiet, groups=group_labels, save_folds=fold_results, resume=resume)
    written = ev.write(output, protect=(data,))
    typer.echo(f"# {folds}-fold CV{by}, {adata.n_obs} profiles, {len(ref.landmarks)} landmarks -> {len(ref.targets)} "
               f"targets, seed {seed}; metrics on z-scored targets, mean over genes ± sd over folds")
    typer.echo(ev.table())
    for m, why in ev.info["skipped"].items():
        typer.echo(f"# skipped {GGAN_METHODS.label(m)}: {why}")
    for kind in ("summary", "per_gene", "figure"):
        typer.echo(str(written[kind]))
