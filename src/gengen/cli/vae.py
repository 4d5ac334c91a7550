"""CLI commands of the Tybalt VAE pipeline: parse, call :mod:`gengen.vae`, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.checkpoint import overwrite_check
from gengen.cli import _options as opt
from gengen.cli._app import app, input_path, say
from gengen.cli._data import DATA_OPTIONS, VAE_COPIES, DataChoice, NormalizeOpt, query_normalisation, with_normalisation
from gengen.cli._store import TrainingRun, model_or_default, resumable
from gengen.errors import GengenError
from gengen.recipes import VAERecipe
from gengen.runtime import plan_outputs, set_threads
from gengen.store import input_paths

PANEL = "VAE (Tybalt)"

LatentOpt = Annotated[int | None, typer.Option("--latent", "-k", help="Latent size k (default: 100, capped for small data).")]
GenesOpt = Annotated[int | None, typer.Option("--genes", help="Number of most variable genes (default: 5000 or all).")]
GeneRankOpt = Annotated[str, typer.Option("--gene-rank", help="median-ad (paper) | mean-ad (original code) | variance.")]
HiddenOpt = Annotated[int | None, typer.Option("--hidden", help="Hidden layer width (two-layer variant, e.g. 300).")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Epochs (default: 50, more for small data).")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size (default: 50, capped for small data).")]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.")]
KappaOpt = Annotated[float, typer.Option("--kappa", help="KL warm-up: beta grows by kappa per epoch up to 1.")]
BetaOpt = Annotated[float | None, typer.Option(
    "--beta", help="Final KL weight (default: 1, the VAE's ELBO; small cohorts: calibrated to the data's noise).")]
ValOpt = Annotated[float | None, typer.Option(
    "--val-fraction", help="Seeded validation fraction (default: 0.1; small cohorts: 0, every sample trains).")]
RegimeOpt = Annotated[str, typer.Option(
    "--regime", help="auto (Tybalt's recipe when samples >= genes, else the small-cohort one) | tybalt | small.")]
CompatOpt = Annotated[bool, typer.Option("--tybalt-compat", help="Reproduce the published code: ReLU on log-variance, KL weight 0.")]
LogOpt = Annotated[str, typer.Option(
    "--log", help="log2(x+1) before scaling: auto (when the data look like raw counts) | yes | no.")]
ModelOpt = opt.model_option("Model directory or store name (default: the store's default VAE model).")


def _check(recipe: VAERecipe) -> None:
    """Choices the library would refuse later, refused before any data are read."""
    from gengen.vae.preprocess import GENE_RANKS, LOG_CHOICES
    from gengen.vae.train import REGIMES

    if recipe.regime not in REGIMES:
        raise GengenError(f"--regime must be one of {', '.join(REGIMES)}, got {recipe.regime!r}.")
    if recipe.tybalt_compat and recipe.regime == "small":
        raise GengenError("--tybalt-compat reproduces the published Tybalt code; it cannot use --regime small.")
    if recipe.log_transform not in LOG_CHOICES:
        raise GengenError(f"--log must be one of {', '.join(LOG_CHOICES)}, got {recipe.log_transform!r}.")
    if recipe.gene_rank not in GENE_RANKS:
        raise GengenError(f"unknown --gene-rank {recipe.gene_rank!r}; use one of {', '.join(GENE_RANKS)}.")


# The recipe options of vae-train, vae-encode and vae-compare (defaults: VAERecipe's); --resume maps
# them back to VAERecipe fields through the same table.
VAE_OPTIONS = opt.RecipeOptions(
    VAERecipe,
    {"latent": "latent_dim", "genes": "n_genes", "gene_rank": "gene_rank", "hidden": "hidden", "epochs": "epochs",
     "batch_size": "batch_size", "lr": "learning_rate", "kappa": "kappa", "beta": "beta_max",
     "val_fraction": "val_fraction", "tybalt_compat": "tybalt_compat", "log_transform": "log_transform",
     "seed": "seed", "regime": "regime", "normalize": "normalize"},
    declared={"latent": LatentOpt, "genes": GenesOpt, "gene_rank": GeneRankOpt, "hidden": HiddenOpt, "epochs": EpochsOpt,
              "batch_size": BatchOpt, "lr": LrOpt, "kappa": KappaOpt, "beta": BetaOpt, "val_fraction": ValOpt,
              "tybalt_compat": CompatOpt, "log_transform": LogOpt, "seed": opt.SeedOpt, "regime": RegimeOpt,
              "normalize": NormalizeOpt},
    check=_check,
)


def _read(path: Path, genes_in_rows, fmt, quiet, expected_genes=None, layer=None):
    from gengen.io.expression import read_expression

    return read_expression(input_path(path), genes_in_rows=genes_in_rows, fmt=fmt, expected_genes=expected_genes,
                           layer=layer, quiet=quiet)


@app.command("vae-train", rich_help_panel=PANEL)
@resumable(VAE_OPTIONS)
@DATA_OPTIONS
def vae_train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Expression matrix (h5ad, csv, tsv, parquet, gct, gctx, ARCHS4 HDF5), samples x genes.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help=(
        "Model directory to write (default: a new model in the store, named after DATA, that becomes the "
        "default VAE model)."))] = None,
    recipe: VAERecipe | None = None,  # the VAE_OPTIONS, from --latent to --normalize
    data_choice: DataChoice | None = None,  # the DATA_OPTIONS: --samples, --where, --stream
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
    training: TrainingRun | None = None,  # the TRAINING_OPTIONS: --resume, --checkpoint-every, --checkpoint-minutes
) -> None:
    """Train a Tybalt VAE; writes model.safetensors, config.json, history.csv and training.png.

    The model folder is a resumable checkpoint while training runs (every 10 epochs and at least once
    a minute): after an interruption, the same command with --resume continues where it stopped.
    A matrix too large for memory (an ARCHS4 compendium) is streamed from disk; under torchrun the
    training runs data-parallel (docs/vae.md).
    """
    from gengen import distributed
    from gengen.vae import VAEModel

    set_threads(threads)
    device = distributed.start(device)  # under torchrun: join the job, this rank's device
    run = training.folder(output, data, "vae")
    if training.resume:
        recipe = VAE_OPTIONS.resume(ctx, recipe, run.saved_recipe)
    inp = data_choice.open(data, normalize=recipe.normalize, fmt=fmt, genes_in_rows=genes_in_rows, layer=layer,
                           copies=VAE_COPIES, quiet=quiet)
    model = VAEModel.train(inp.data, with_normalisation(recipe, inp), device=device, quiet=quiet, checkpoint=run.checkpoint)
    m = model.metrics
    say(f"trained on {m['device']} in {m['train_seconds']:.1f} s: train recon {m['train_recon']:.1f}, "
        f"KL {m['train_kl']:.2f}" + (f"; validation recon {m['val_recon']:.1f}" if "val_recon" in m else ""), quiet)
    run.done(quiet)


@app.command("vae-encode", rich_help_panel=PANEL)
@VAE_OPTIONS
@DATA_OPTIONS
def vae_encode(
    data: Annotated[Path, typer.Argument(help="Expression matrix (h5ad, csv, tsv, parquet, gct, gctx, ARCHS4 HDF5).")],
    model: opt.model_option("Trained model (folder or store name); without it, train one on DATA first.") = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .h5ad (obsm['X_vae']) or .csv/.tsv/.parquet table (default: DATA.vae.h5ad).")] = None,
    save_model: Annotated[Path | None, typer.Option("--save-model", help=(
        "Where to save a model trained here (default: a new model in the store, named after DATA, that becomes "
        "the default VAE model)."))] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Sample annotation table (CSV/TSV, sample ids first) joined into the h5ad's obs, to colour plots by.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="obs column (of DATA or --labels): report how well the embedding separates its classes (kNN accuracy).")] = None,
    reconstruct: Annotated[bool, typer.Option("--reconstruct", help="Add layers['vae_reconstructed']: every sample decoded from its embedding, in the input's units (h5ad output).")] = False,
    fill_missing: Annotated[bool, typer.Option("--fill-missing", help="Fill genes the data lack with training mid-range values.")] = False,
    recipe: VAERecipe | None = None,  # the VAE_OPTIONS, from --latent to --normalize
    data_choice: DataChoice | None = None,  # the DATA_OPTIONS: --samples, --where, --stream
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Embed samples with a VAE (z_mean); trains one with the Tybalt recipe when no --model is given.

    A model trained here goes into the model store and becomes the default VAE model (as every trainer
    run without -o does; --save-model DIR keeps it elsewhere). The h5ad output holds the input with
    obsm['X_vae'], var['vae_used'], varm['vae_loadings'] and uns['gengen'] (model path, input file, seed).
    A matrix too large for memory is read (and, without --model, trained on) block by block; its
    output then holds the embedding and the sample metadata, not the expression values.
    """
    from gengen.cli._store import stored_as_default, train_output
    from gengen.io.expression import detect_format, output_format, write_expression
    from gengen.vae import VAEModel, encode

    set_threads(threads)
    output = output or opt.beside(data, ".vae.h5ad")
    table = output_format(output) != "h5ad"  # fail on a bad output name before any work
    if table and reconstruct:
        raise GengenError(f"--reconstruct adds a layer to an h5ad output; {str(output)!r} is a table of the embedding: "
                          "name the output .h5ad.")
    if table and labels_file is not None and by is None:
        raise GengenError(f"--labels joins annotations into an h5ad output's obs; {str(output)!r} is a table of the "
                          "embedding only: name the output .h5ad (or add --by COLUMN to report on it).")
    if model is not None and save_model is not None:
        raise GengenError("--save-model saves a model trained here; with --model nothing is trained: leave one out.")
    to_store = model is None and save_model is None
    if to_store:  # a new store folder named after DATA, claimed now (released if the command fails)
        input_path(data)
        save_model = train_output(None, data, "vae")
    # one plan: the model and the embedding land together, or neither does
    plan_outputs([output], models={save_model: overwrite_check("vae")} if model is None else {}, inputs=input_paths([data, model, labels_file]))
    loaded = VAEModel.load(model, device=device) if model else None
    if loaded is not None and recipe.log_transform != "auto":
        say(f"note: --log {recipe.log_transform} ignored: the model applies its own input scale "
            f"({'log2(x+1)' if loaded.scaler.log2p1 else 'values as given'}).", quiet)
    normalize = query_normalisation(loaded.recipe) if loaded is not None else recipe.normalize
    inp = data_choice.open(data, normalize=normalize, fmt=fmt, genes_in_rows=genes_in_rows, layer=layer,
                           copies=VAE_COPIES, expected_genes=loaded.genes if loaded else None, quiet=quiet)
    if inp.streamed and reconstruct:
        raise GengenError(f"--reconstruct adds a layer as large as the input, and {str(data)!r} is streamed (too large "
                          "to hold in memory): leave --reconstruct out, or choose fewer samples (--samples, --where).")
    if inp.streamed:  # the sample metadata alone, for --labels / --by; the embedding is added below
        import anndata as ad

        meta = inp.data.obs()
        meta.index = meta.index.astype(str)
        adata = ad.AnnData(obs=meta)
    else:
        adata = inp.data
    adata = _with_labels(adata, labels_file, quiet)
    labels = None
    if by is not None:
        from gengen.vae.features import labels_from

        labels = labels_from(adata, by)  # a missing or unusable column fails before any training
    try:
        if inp.streamed:  # block by block; without --model, trained block by block first
            from gengen.vae.encode import provenance
            from gengen.vae.streamed import encode_streamed

            used = loaded or VAEModel.train(inp.data, with_normalisation(recipe, inp), device=device, quiet=quiet)
            if loaded is None:
                used.path = used.save(save_model)
            out = _with_labels(encode_streamed(used, inp.data, fill_missing, quiet=quiet), labels_file, True)
            out.uns["gengen"] = provenance(used, trained=loaded is None, input_file=data)
        else:
            out, used = encode(adata, loaded, recipe=with_normalisation(recipe, inp) if loaded is None else recipe,
                               save_model=save_model, fill_missing=fill_missing, reconstruct=reconstruct,
                               input_file=data, device=device, quiet=quiet)
        if layer is not None:
            out.uns["gengen"]["layer"] = layer
        separation = _knn_line(out.obsm["X_vae"], labels, by, used.recipe.seed) if labels is not None else None
        write_expression(out, output, protect=(data,), obsm_key=None if detect_format(output) == "h5ad" else "X_vae")
    except BaseException:
        if to_store:  # the model saved into the store lands with the embedding or not at all
            _unstore(save_model)
        raise
    say(f"encoded {out.n_obs} samples into {used.latent_dim} features on {used.device}; seed {used.recipe.seed}", quiet)
    if separation is not None:
        say(separation, quiet)
    if to_store:
        stored_as_default(save_model, "vae", quiet)
    typer.echo(str(output))
    if model is None:
        typer.echo(str(save_model))


def _knn_line(embedding, labels, by: str, seed: int) -> str:
    """How well the embedding separates the classes of ``by`` (vae-compare's kNN accuracy), as a status line."""
    from gengen.vae import knn_accuracy

    try:
        mean, sd = knn_accuracy(embedding, labels, seed=seed)
    except GengenError as exc:
        return f"note: {by}: no kNN accuracy ({exc})"
    return (f"{by}: kNN accuracy from the embedding {mean:.3f} ± {sd:.3f} (5-nearest neighbours, stratified 5-fold "
            f"x 5; colour by obs[{by!r}])")


def _unstore(path: Path) -> None:
    """Remove the store model this command saved at ``path`` (its run failed: nothing of it stays). It
    never became a default, so only the folder goes: renamed to a temporary in one step (a listing
    never sees half a model), then deleted."""
    import contextlib
    import os

    from gengen.runtime import new_temp, remove_temp

    if not (path / "config.json").exists():
        return
    with contextlib.suppress(GengenError, OSError):
        trash = new_temp(path, directory=True)
        os.replace(path, trash / path.name)
        remove_temp(trash)


def _with_labels(adata, labels_file: Path | None, quiet: bool):
    if labels_file is None:
        return adata
    from gengen.io.expression import attach_annotations

    return attach_annotations(adata, input_path(labels_file), quiet)


def _write_profiles(adata, output: Path, protect=()) -> None:
    from gengen.io.expression import write_expression

    write_expression(adata, output, protect=protect)


@app.command("vae-decode", rich_help_panel=PANEL)
def vae_decode(
    latent: Annotated[Path, typer.Argument(help="Latent table (samples x k: csv/tsv/parquet) or h5ad with obsm['X_vae'].")],
    model: ModelOpt = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Decoded expression (.h5ad/.csv/.tsv/.parquet).")] = Path("decoded.h5ad"),
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Decode latent vectors back to expression in the training data's original units."""
    from gengen.vae import VAEModel, decode_to_anndata
    from gengen.vae.encode import read_latent

    set_threads(threads)
    model = model_or_default(model, "vae", quiet)
    plan_outputs([output], inputs=input_paths([latent, model]))
    m = VAEModel.load(model, device=device)
    z, names = read_latent(input_path(latent), m)
    _write_profiles(decode_to_anndata(m, z, names), output, protect=(latent,))
    say(f"decoded {len(z)} latent vectors into {len(m.genes)} genes", quiet)
    typer.echo(str(output))


@app.command("vae-sample", rich_help_panel=PANEL)
def vae_sample(
    model: ModelOpt = None,
    n: Annotated[int, typer.Option("-n", help="Number of profiles to draw.")] = 100,
    output: Annotated[Path, typer.Option("-o", "--output", help="Sampled expression (.h5ad/.csv/.tsv/.parquet).")] = Path("samples.h5ad"),
    seed: opt.SeedOpt = 0, device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Draw profiles from the prior z ~ N(0, I), decoded to original units."""
    from gengen.vae import VAEModel, decode_to_anndata

    set_threads(threads)
    model = model_or_default(model, "vae", quiet)
    plan_outputs([output], inputs=input_paths([model]))
    m = VAEModel.load(model, device=device)
    if n < 1:
        raise GengenError(f"-n must be positive, got {n}.")
    if m.recipe.tybalt_compat:
        say("warning: a --tybalt-compat model was trained without the KL term; prior samples may be unrealistic.", quiet)
    sampled = decode_to_anndata(m, m.sample_latent(n, seed))
    sampled.uns["gengen"].update(sampling_seed=int(seed), drawn_from="prior N(0, I)")  # "seed": the model's
    _write_profiles(sampled, output)
    say(f"sampled {n} profiles (seed {seed})", quiet)
    typer.echo(str(output))


@app.command("vae-features", rich_help_panel=PANEL)
def vae_features(
    model: ModelOpt = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder for TSVs and figures.")] = Path("vae_features"),
    top: Annotated[int, typer.Option("--top", help="Genes per direction per feature.")] = 20,
    data: Annotated[Path | None, typer.Option("--data", help="Expression data to embed for --by.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="obs column: find the feature that best separates each class.")] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Sample annotation table (CSV/TSV, sample ids first) to take --by from.")] = None,
    fill_missing: Annotated[bool, typer.Option("--fill-missing", help="Fill genes the data lack.")] = False,
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Top positive/negative decoder-weight genes per latent feature; with --data/--by, the feature
    that best separates each class (AUROC, direction)."""
    from gengen.io.expression import write_table
    from gengen.vae import VAEModel, separating_features, top_genes
    from gengen.vae.features import labels_from, plot_separating_features

    set_threads(threads)
    if (data is None) != (by is None):
        raise GengenError("--data and --by go together: give both to find class-separating features.")
    files = [output / "top_genes.tsv"] + ([output / f"separating_{by}.tsv", output / f"separating_{by}.png"] if by else [])
    model = model_or_default(model, "vae", quiet)
    plan_outputs(files, inputs=input_paths([model, data, labels_file]), report=output)
    m = VAEModel.load(model, device=device)
    separation = None
    if data is not None:  # everything that can fail on user input happens before anything is written
        adata = _with_labels(_read(data, genes_in_rows, fmt, quiet, expected_genes=m.genes, layer=layer), labels_file, quiet)
        labels = labels_from(adata, by)
        z = m.encode(adata, fill_missing=fill_missing, quiet=quiet)
        separation = separating_features(z, labels)
    write_table(top_genes(m.decoder_weights(), top), output / "top_genes.tsv", index=False)
    say(f"wrote top {top} genes per direction for {m.latent_dim} features", quiet)
    typer.echo(str(output / "top_genes.tsv"))
    if separation is not None:
        write_table(separation, output / f"separating_{by}.tsv", index=False)
        plot_separating_features(z, labels, separation, path=output / f"separating_{by}.png", label_name=by)
        for _, r in separation.iterrows():
            say(f"  {r['class']}: {r['feature']} AUROC {r['auroc']:.3f} ({r['direction']})", quiet)
        typer.echo(str(output / f"separating_{by}.tsv"))
        typer.echo(str(output / f"separating_{by}.png"))


@app.command("vae-compare", rich_help_panel=PANEL)
@VAE_OPTIONS
def vae_compare(
    data: Annotated[Path, typer.Argument(help="Expression matrix with labels in obs (h5ad) for --by.")],
    by: Annotated[str | None, typer.Option("--by", help="obs column for kNN label accuracy.")] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels", help="Sample annotation table (CSV/TSV, sample ids first) to take --by from.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the table (.tsv/.csv/.parquet).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Redo the comparison with seeds SEED..SEED+N-1 and report means and spread.")] = 1,
    recipe: VAERecipe | None = None,  # the VAE_OPTIONS, from --latent to --regime
    genes_in_rows: opt.GenesInRowsOpt = None, fmt: opt.FormatOpt = None, layer: opt.LayerOpt = None,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """VAE vs PCA vs NMF at the same k: held-out reconstruction (BCE x genes) and kNN label accuracy."""
    from gengen.io.expression import write_table
    from gengen.vae import compare
    from gengen.vae.features import labels_from

    set_threads(threads)
    seed = recipe.seed
    if output is not None:
        from gengen.io.expression import output_format

        if output_format(output) == "h5ad":
            raise GengenError("vae-compare writes a table: name the output .tsv, .csv or .parquet.")
    plan_outputs([output], inputs=input_paths([data, labels_file]))
    from gengen.io.streaming import open_expression

    inp = open_expression(input_path(data), normalize=recipe.normalize, stream="never", fmt=fmt,
                          genes_in_rows=genes_in_rows, layer=layer, copies=VAE_COPIES, quiet=quiet)
    recipe = with_normalisation(recipe, inp)
    adata = _with_labels(inp.data, labels_file, quiet)
    labels = labels_from(adata, by) if by else None
    table, _ = compare(adata, labels, recipe, repeats=repeats, device=device, quiet=quiet)
    typer.echo(f"# {table.attrs['regime']} recipe; held-out reconstruction: {table.attrs['n_train']} training / "
               f"{table.attrs['n_heldout']} held-out samples; pca-all: PCA of the whole matrix; "
               f"seed {seed}" + (f"..{seed + repeats - 1} (mean; *_sd = spread over repeats)" if repeats > 1 else "")
               + (f"; kNN label: {by}" if by else ""))
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if output is not None:
        write_table(table, output, protect=(data,), index=False)


@app.command("vae-import-tybalt", rich_help_panel=PANEL)
def vae_import_tybalt(
    decoder: Annotated[Path, typer.Argument(help="Published Tybalt decoder (Keras HDF5).")],
    genes: Annotated[Path, typer.Option("--genes", help="Its gene list, one per line, in column order.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model directory to write (decoder only).")],
    threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Convert the published Tybalt decoder into a gengen model (for vae-features, vae-decode)."""
    from gengen.vae import import_tybalt_decoder

    set_threads(threads)
    plan_outputs(models={output: overwrite_check("vae")}, inputs=input_paths([decoder, genes]))
    m = import_tybalt_decoder(input_path(decoder), input_path(genes))
    m.save(output)
    say(f"imported a {m.latent_dim} x {len(m.genes)} decoder", quiet)
    typer.echo(str(output))
