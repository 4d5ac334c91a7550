"""CLI commands of the DNA pipeline (Killoran et al. 2017): parse, call :mod:`gengen.dna`, report."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated

import typer

from gengen.checkpoint import overwrite_check
from gengen.cli import _options as opt
from gengen.cli._app import app, input_path, report, say
from gengen.cli._store import (
    TRAINING_OPTIONS,
    TrainingRun,
    model_or_default,
    require_resume_output,
    stored_as_default,
    train_output,
)
from gengen.errors import GengenError
from gengen.io.jaspar import JasparChoice
from gengen.recipes import DesignSettings, GANRecipe, PredictorRecipe
from gengen.registry import OBJECTIVE_KINDS
from gengen.runtime import plan_outputs, set_threads
from gengen.store import input_paths

PANEL = "DNA (Killoran)"
TABLE_SUFFIXES = (".tsv", ".txt", ".tab")


def _opt(*names: str, help: str, **kw):  # noqa: A002
    return typer.Option(*names, help=help, **kw)


LengthOpt = Annotated[int, _opt("--length", "-L", help="Sequence / window length.")]
AmbiguousOpt = Annotated[str, _opt("--ambiguous", help="N/IUPAC bases: skip (drop windows) | uniform | error.")]
MotifOpt = Annotated[str | None, _opt("--motif", help=(
    "Motif file (jaspar, MEME minimal, transfac, HOMER, sites, or a plain table of counts, probabilities, "
    "percentages or log-odds, either orientation) or a JASPAR id like MA0139.2."))]
MotifFormatOpt = Annotated[str | None, _opt("--motif-format", help=(
    "Force the motif file format (default: detect): jaspar, minimal, transfac, homer, sites, pfm (a table, "
    "orientation detected), pfm-four-columns (one row per position), pfm-four-rows (one row per base)."))]
MotifNameOpt = Annotated[str | None, _opt("--motif-name", help="Which motif of a file that holds several (its id or name; default: the first).")]
PseudoOpt = Annotated[float, _opt("--pseudocount", help="Total pseudocount per motif column, spread by the background.")]
PredictorOpt = Annotated[str | None, _opt("--predictor", help="A model from dna-train-predictor (directory or store name).")]
ObjectiveOpt = Annotated[list[str] | None, _opt("--objective", help=(
    f"An objective, repeatable: one of {OBJECTIVE_KINDS.usage()}, then target=max|min|VALUE (default max), "
    "weight=W (default 1) and the kind's own keys (model=: output=INDEX_OR_NAME, layout=NLC for (N, L, 4) models; "
    "python=: the factory's key=value arguments; python= runs your code); e.g. --objective predictor=cebpa,target=max "
    "--objective model=gata4.pt,target=min. Objectives are standardised by their sd over random sequences before "
    "weighting."))]
ScoreObjectiveOpt = Annotated[list[str] | None, _opt("--objective", help=(
    f"Also score with this objective, repeatable ({OBJECTIVE_KINDS.usage()}, with the kind's own keys, e.g. "
    "model=m.pt,output=2): a score_<name> column each."))]
TargetOpt = Annotated[str, _opt("--target", help="max | min | a value to hit (with --motif / --predictor).")]
WeightsOpt = Annotated[str, _opt("--weights", help="GAN generator weights: 'best' (best held-out k-mer check during training) or 'last'.")]
JasparTaxonOpt = Annotated[str, _opt("--jaspar-taxon", help=(
    "JASPAR 2024 taxon matched against: vertebrates (default: CORE vertebrates non-redundant), plants, insects, "
    "nematodes, fungi, urochordates, ... or all."))]
JasparCollectionOpt = Annotated[str, _opt("--jaspar-collection", help="JASPAR 2024 collection: CORE or UNVALIDATED.")]
AnnotatePvalueOpt = Annotated[float, _opt("--annotate-pvalue", help=(
    "FIMO p-value threshold of a JASPAR hit (named in the column, e.g. jaspar_hits_p1e-4)."))]
GanModelOpt = opt.model_option("dna-train model directory or store name (default: the store's default DNA GAN).")

# Which options set which recipe fields (their defaults are the recipes'); --resume maps them back.
GAN_OPTIONS = opt.RecipeOptions(
    GANRecipe, {"length": "length", "heldout_fraction": "heldout_fraction", "iterations": "iterations",
                "channels": "channels", "batch_size": "batch_size", "critic_steps": "critic_steps", "lr": "learning_rate",
                "sample_every": "sample_every", "seed": "seed"},
    unset=("heldout_fraction",), check=GANRecipe.validate)
HELDOUT_FRACTION = 0.1  # dna-train holds genes out (the library's GANRecipe trains on all unless asked)
PREDICTOR_OPTIONS = opt.RecipeOptions(
    PredictorRecipe, {"transform": "transform", "epochs": "epochs", "val_fraction": "val_fraction", "seed": "seed",
                      "members": "members", "flanks": "flanks"})
DESIGN_OPTIONS = opt.RecipeOptions(
    DesignSettings, {"steps": "steps", "max_steps": "max_steps", "lr": "learning_rate", "prior_weight": "prior_weight",
                     "grad_noise": "grad_noise"},
    unset=("lr",))


@dataclass(frozen=True)
class ObjectiveChoice:
    """What a design or a generation run scores toward, as a user names it: ``objective`` specs
    (``dna-design --objective``), or the one-objective ``motif`` / ``predictor`` shorthand, with how motif
    files are read. :meth:`inputs` lists what it reads (to protect those files from being overwritten)
    before :meth:`load` reads them."""

    objective: list[str] | None = None
    motif: str | None = None
    motif_format: str | None = None
    motif_name: str | None = None
    pseudocount: float = 1.0
    predictor: str | None = None

    def inputs(self) -> list:
        """The files and models they read (every ``--objective`` parsed now, before any is read)."""
        from gengen.dna.designer.objectives import objective_inputs

        return [self.motif, self.predictor, *objective_inputs(self.objective)]

    def has_motif(self) -> bool:
        """Whether a motif takes part (``--motif`` or an ``--objective motif=...``): designs then have hits."""
        from gengen.dna.designer.objectives import parse_objective

        return bool(self.motif) or any(parse_objective(s).kind == "motif" for s in self.objective or [])

    def load(self, target: str, device: str, quiet: bool, needed: bool = True, *, length: int | None = None,
             gradient: bool = False):
        """(objectives, the motif annotating predictor-only designs); nothing when not ``needed`` and none
        given. With ``length`` each objective is checked on it now (and with ``gradient``, that design
        can follow its gradient): see :func:`gengen.dna.designer.objectives.load_objectives`."""
        from gengen.dna.designer.objectives import load_objectives

        if not needed and not (self.objective or self.motif or self.predictor):
            return [], None
        return load_objectives(self.objective, motif=self.motif, predictor=self.predictor, target=target,
                               motif_format=self.motif_format, motif_name=self.motif_name, pseudocount=self.pseudocount,
                               device=device, quiet=quiet, length=length, gradient=gradient)


OBJECTIVE_OPTIONS = opt.OptionGroup(
    "goal", {"objective": ObjectiveOpt, "motif": MotifOpt, "motif_format": MotifFormatOpt, "motif_name": MotifNameOpt,
                   "pseudocount": PseudoOpt, "predictor": PredictorOpt},
    {f.name: f.default for f in fields(ObjectiveChoice)}, make=ObjectiveChoice)
# which JASPAR 2024 profiles dna-explain matches and dna-design --annotate scans for, and a hit's p-value
JASPAR_OPTIONS = opt.OptionGroup(
    "jaspar", {"jaspar_taxon": JasparTaxonOpt, "jaspar_collection": JasparCollectionOpt, "annotate_pvalue": AnnotatePvalueOpt},
    {f.name: f.default for f in fields(JasparChoice)}, make=JasparChoice)


def _load_gan(model, device, weights, quiet):
    from gengen.dna.gan.core import GANModel

    gan = GANModel.load(model, device=device, weights=weights)
    say(f"GAN {model}: {gan.metrics.get('weights', weights)} weights, iteration {gan.iteration}", quiet)
    return gan


@app.command("dna-train", rich_help_panel=PANEL)
def dna_train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="FASTA (plain or .gz) of training sequences.")],
    output: Annotated[Path | None, _opt("-o", "--output", help=(
        "Model directory (resumable checkpoint) (default: a new model in the store, named after DATA, that "
        "becomes the default DNA GAN)."))] = None,
    length: LengthOpt = GANRecipe.length,
    windows: Annotated[str, _opt("--windows", help="Cut longer records into 'tiled' or 'random' windows.")] = "tiled",
    ambiguous: AmbiguousOpt = "skip",
    short: Annotated[str, _opt("--short", help="Records shorter than the length: error | skip | pad (with N).")] = "error",
    max_windows: Annotated[int | None, _opt("--max-windows", help="Use at most this many training windows (seeded subset).")] = None,
    heldout_fraction: Annotated[float | None, _opt("--heldout-fraction", help=(
        "Fraction of records (genes) held out: half choose the best checkpoint, half are dna-eval's test set. "
        "(default: 0.1; with --resume the checkpoint's)"))] = None,
    iterations: Annotated[int, _opt("--iterations", help="Generator iterations (paper: ~100k).")] = GANRecipe.iterations,
    channels: Annotated[int, _opt("--channels", help="Residual channels (paper: 100).")] = GANRecipe.channels,
    batch_size: Annotated[int, _opt("--batch-size", help="Batch size (paper: 64).")] = GANRecipe.batch_size,
    critic_steps: Annotated[int, _opt("--critic-steps", help="Critic updates per generator update.")] = GANRecipe.critic_steps,
    lr: Annotated[float, _opt("--lr", help="Adam learning rate.")] = GANRecipe.learning_rate,
    sample_every: Annotated[int, _opt("--sample-every", help="Write samples + k-mer check every N iterations.")] = GANRecipe.sample_every,
    time_limit: Annotated[float | None, _opt("--time-limit", help="Stop cleanly after this many minutes (resume later).")] = None,
    resume: Annotated[bool, _opt("--resume", help="Continue from the checkpoint in OUTPUT.")] = False,
    seed: opt.SeedOpt = GANRecipe.seed,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Train a WGAN-GP (residual CNNs) on DNA windows; writes a resumable checkpoint with samples."""
    from gengen.dna.data import training_windows
    from gengen.dna.gan.core import GANModel
    from gengen.dna.gan.train import resume_heldout_by, resume_heldout_fraction, training_report
    from gengen.io.sequences import read_fasta
    from gengen.training_state import Checkpointing

    set_threads(threads)
    require_resume_output(resume, output)
    if time_limit is not None and time_limit <= 0:
        raise GengenError(f"--time-limit must be a positive number of minutes, got {time_limit:g}.")
    heldout_fraction = resume_heldout_fraction(output, heldout_fraction) if resume else heldout_fraction
    heldout_by = resume_heldout_by(output) if resume else "sequence"  # a resumed run keeps its split
    to_store, output = output is None, train_output(output, data, "dna-gan")  # no -o: a new model in the store
    heldout_fraction = HELDOUT_FRACTION if heldout_fraction is None else heldout_fraction
    recipe = GAN_OPTIONS.build(  # checked: options and -o before reading data, not at the first checkpoint
        ctx.params, heldout_fraction=heldout_fraction, checkpoint_every=sample_every,
        log_every=max(1, min(50, sample_every)), heldout_split=True, heldout_by=heldout_by)
    plan_outputs(models={output: overwrite_check("dna-gan")}, inputs=input_paths([data]))
    seqs = read_fasta(input_path(data), length=length, windows=windows, ambiguous=ambiguous, short=short, seed=seed,
                      quiet=quiet)
    split = training_windows(seqs, heldout_fraction, by=heldout_by, max_windows=max_windows, seed=seed)
    if split.split:
        recipe.notes.append(split.split)  # config.json says how the split was made
        say(split.split, quiet)
    if split.warning:
        say(f"warning: {split.warning}", quiet)
    say(f"{len(split.train)} training windows of {length} nt" + (
        f", {len(split.validation)} validation windows from held-out genes (checkpoint choice; dna-eval tests on the "
        f"other {split.n_test})" if split.validation is not None else ""), quiet)
    model = GANModel.train(split.train, recipe, device, heldout_codes=split.validation, quiet=quiet,
                           checkpoint=Checkpointing(output, resume=resume), time_limit=time_limit * 60 if time_limit else None)
    for line in training_report(model.metrics):
        say(line, quiet)
    if to_store:
        stored_as_default(output, "dna-gan", quiet)
    typer.echo(str(output))


@app.command("dna-generate", rich_help_panel=PANEL)
@OBJECTIVE_OPTIONS
def dna_generate(
    model: GanModelOpt = None,
    n: Annotated[int | None, _opt("-n", help="Number of sequences (with --interpolate: of paths; default: 1000, with --interpolate 10)")] = None,
    output: Annotated[Path, _opt("-o", "--output", help="FASTA to write (with --interpolate also .tsv and .png beside it).")] = Path("samples.fa"),
    interpolate: Annotated[int | None, _opt("--interpolate", help=(
        "Write K-step spherical paths between pairs of latent points instead of independent samples."))] = None,
    train_data: Annotated[Path | None, _opt("--train-data", help=(
        "The FASTA the GAN was trained on: report each sample's Hamming distance to its nearest training window "
        "(both strands) and the share of exact copies, next to held-out real windows."))] = None,
    goal: ObjectiveChoice | None = None,  # the OBJECTIVE_OPTIONS: --objective, --motif, ..., --predictor
    weights: WeightsOpt = "best",
    seed: opt.SeedOpt = 0,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Sample sequences from a trained DNA GAN (argmax of G(z), z ~ N(0, I)), or paths between latent points."""
    from gengen.dna.designer.objectives import design_length, trained_lengths
    from gengen.dna.designer.result import FASTA_SUFFIXES, design_outputs
    from gengen.dna.gan.generate import write_samples
    from gengen.dna.gan.interpolate import check_steps
    from gengen.dna.gan.interpolate import interpolate as paths

    set_threads(threads)
    opt.require_suffix(output, FASTA_SUFFIXES, "FASTA")
    if interpolate is not None and train_data is not None:
        raise GengenError("--train-data checks independent samples; leave it out with --interpolate.")
    check_steps(interpolate)
    model = model_or_default(model, "dna-gan", quiet)
    outs = design_outputs(output) if interpolate is not None else [output]
    plan = plan_outputs(outs, inputs=input_paths([model, train_data, *goal.inputs()]))
    gan = _load_gan(model, device, weights, quiet)
    design_length(trained_lengths(goal.predictor, goal.objective), gan_length=gan.length)  # one-line refusal
    objectives, _ = goal.load("max", device, quiet, needed=False, length=gan.length)
    if interpolate is not None:
        res = paths(gan, 10 if n is None else n, interpolate, objectives=objectives, seed=seed)
        res.write(output)
        lines = [res.summary_line()]
    else:
        lines = write_samples(gan, output, 1000 if n is None else n, seed=seed, objectives=objectives,
                              train_data=input_path(train_data) if train_data else None)
    plan.commit()
    report(lines, outs, quiet)


@app.command("dna-design", rich_help_panel=PANEL)
@OBJECTIVE_OPTIONS
@JASPAR_OPTIONS
def dna_design(
    ctx: typer.Context,
    goal: ObjectiveChoice | None = None,  # the OBJECTIVE_OPTIONS: --objective, --motif, ..., --predictor
    target: TargetOpt = "max",
    start: Annotated[Path | None, _opt("--from", help=(
        "FASTA of sequences to edit: each design edits one (cycled when -n is larger; a seeded subset when smaller). "
        "With --length, tiled windows of that length cut from the records."))] = None,
    max_edits: Annotated[int | None, _opt("--max-edits", help="With --from: at most N bases differ from the start.")] = None,
    fixed: Annotated[str | None, _opt("--fixed", help="With --from: positions kept, 1-based inclusive, e.g. 1-24,40-50.")] = None,
    avoid: Annotated[str | None, _opt("--avoid", help="IUPAC patterns absent on both strands, e.g. GAATTC,GGTCTC,AAAAAA.")] = None,
    gc: Annotated[str | None, _opt("--gc", help="G+C fraction range, e.g. 0.4-0.6.")] = None,
    gan: Annotated[str | None, _opt("--gan", help="Design through this GAN's latent space (joint method; directory or store name).")] = None,
    weights: WeightsOpt = "best",
    direct: Annotated[bool, _opt("--direct", help="Direct design on the sequence (the default without --gan).")] = False,
    n: Annotated[int | None, _opt("-n", help="Number of designs (default: 100, or one per --from sequence).")] = None,
    length: Annotated[int | None, _opt("--length", "-L", help=(
        "Sequence length (default: the GAN's, else the length the --predictor was trained on, else the --from "
        "records', else 50)."))] = None,
    steps: Annotated[int | None, _opt("--steps", help=(
        "Run exactly this many optimisation steps (default: stop when the score stops improving: the mean one-hot "
        f"objective gaining less than {DesignSettings.plateau_tolerance:g} (relative) over {DesignSettings.plateau_steps} "
        "steps, or at --max-steps)."))] = DesignSettings.steps,
    max_steps: Annotated[int, _opt("--max-steps", help="Without --steps: stop here if no plateau came first.")] = DesignSettings.max_steps,
    lr: Annotated[float | None, _opt("--lr", help=f"Adam step size (default: {DesignSettings.learning_rate:g}).")] = None,
    straight_through: Annotated[bool | None, _opt("--straight-through/--softmax", show_default=False, help=(
        "One-hot forward pass (Fast SeqProp) or plain softmax relaxation; default: straight-through with --from or a "
        "value target, else softmax."))] = None,
    prior_weight: Annotated[float, _opt("--prior-weight", help=(
        "Joint design: weight of ||z||^2 (pulls z toward 0: higher scores, less natural designs)."))] = DesignSettings.prior_weight,
    grad_noise: Annotated[float, _opt("--grad-noise", help="Joint design: Gaussian gradient noise on z.")] = DesignSettings.grad_noise,
    output: Annotated[Path, _opt("-o", "--output", help="FASTA to write; .tsv and .png are written beside it.")] = Path("designed.fa"),
    annotate: Annotated[bool, _opt("--annotate", help=(
        "Add to the .tsv which JASPAR 2024 motifs occur in each design (FIMO scan, both strands; default collection "
        "CORE vertebrates non-redundant): columns jaspar_hits_p<threshold> and jaspar_n_hits_p<threshold>."))] = False,
    jaspar: JasparChoice | None = None,  # the JASPAR_OPTIONS: --jaspar-taxon, --jaspar-collection, --annotate-pvalue
    seed: opt.SeedOpt = 0,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Design sequences toward motifs and/or trained predictors, directly or through a GAN, under constraints."""
    from gengen.dna.designer.constraints import constraints_from_options
    from gengen.dna.designer.design import design
    from gengen.dna.designer.objectives import design_length, trained_lengths
    from gengen.dna.designer.result import FASTA_SUFFIXES, design_outputs

    set_threads(threads)
    opt.require_suffix(output, FASTA_SUFFIXES, "FASTA (with .tsv and .png beside it)")
    if gan and direct:
        raise GengenError("--gan and --direct exclude each other: pick joint (GAN) or direct design.")
    if gan and (start or fixed or max_edits is not None):
        raise GengenError("--from, --fixed and --max-edits edit given sequences directly: leave out --gan.")
    if annotate:
        jaspar.check()
    elif not jaspar.is_default():
        raise GengenError("--annotate-pvalue, --jaspar-taxon and --jaspar-collection set how --annotate scans the "
                          "designs: add --annotate, or leave them out.")
    outs = design_outputs(output, motif=True, hits=goal.has_motif())  # every --objective parsed before a file is read
    plan = plan_outputs(outs, inputs=input_paths([gan, start, *goal.inputs()]))
    g = _load_gan(gan, device, weights, quiet) if gan else None
    length, length_note = design_length(trained_lengths(goal.predictor, goal.objective), length, gan_length=g.length if g else None)
    constraints, length, note = constraints_from_options(
        str(input_path(start)) if start else None, n=n, length=length, max_edits=max_edits,
        fixed=fixed, avoid=avoid, gc=gc, seed=seed)
    for line in (length_note, note):
        if line:
            say(f"note: {line}", quiet)
    if constraints.any:
        say(f"constraints: {constraints.describe()}", quiet)
    settings = DESIGN_OPTIONS.build(ctx.params)
    objectives, pwm = goal.load(target, device, quiet, length=length, gradient=settings.steps != 0)
    result = design(objectives, n, length, gan=g, constraints=constraints, steps=settings.steps,
                    max_steps=settings.max_steps, learning_rate=settings.learning_rate, straight_through=straight_through,
                    grad_noise=settings.grad_noise, prior_weight=settings.prior_weight, seed=seed, device=device,
                    quiet=quiet, pwm=pwm)
    if not len(result.codes):
        raise GengenError(result.report()[0] + "; relax the constraints.")
    lines = result.report()
    if annotate:
        lines.append(_annotate_designs(result, jaspar))
    result.write(output)
    plan.commit()  # the three files land together, or none
    report(lines, outs, quiet)


def _annotate_designs(result, jaspar: JasparChoice) -> str:
    """Add the JASPAR hits of every design to its table (``--annotate``); the line that says what was found."""
    from collections import Counter

    from gengen.dna.predictor.explain import jaspar_hits, pvalue_label

    db, threshold = jaspar.database(), jaspar.annotate_pvalue
    hits, counts = jaspar_hits(result.codes, db, threshold=threshold)
    label = pvalue_label(threshold)
    result.annotations = {f"jaspar_hits_p{label}": hits, f"jaspar_n_hits_p{label}": counts}
    names = Counter(name for line in hits for name in {part.split(" ")[0] for part in line.split("; ") if part})
    common = ", ".join(f"{name} ({k})" for name, k in names.most_common(5))
    return (f"JASPAR hits (FIMO p < {threshold:g}, {db.describe()}): {int((counts > 0).sum())} of {len(counts)} designs "
            f"hold one" + (f"; designs per factor: {common}" if common else ""))


@app.command("dna-explain", rich_help_panel=PANEL)
@OBJECTIVE_OPTIONS
@JASPAR_OPTIONS
def dna_explain(
    data: Annotated[Path, typer.Argument(help="FASTA of sequences to explain (designs, probes, training sequences).")],
    goal: ObjectiveChoice | None = None,  # the OBJECTIVE_OPTIONS: --objective, --motif, ..., --predictor
    output: Annotated[Path, _opt("-o", "--output", help=(
        "Folder to write: attributions.npz, summary.tsv, seqlets.tsv, motifs.tsv (+ .meme, .jaspar, .png), "
        "config.json and logos/."))] = Path("explained"),
    top: Annotated[int, _opt("--top", "-n", min=1, help=(
        "Explain the N best-scoring sequences (all when there are fewer): enough seqlets for TF-MoDISco, seconds "
        "of ISM."))] = 1000,
    logos: Annotated[int, _opt("--logos", min=0, help="Attribution logo PNGs drawn, for the best-scoring sequences.")] = 10,
    length: Annotated[int | None, _opt("--length", "-L", min=1, help=(
        "Cut records into tiled windows of this length (default: every record, which must then share one length)."))] = None,
    motif_method: Annotated[str, _opt("--motif-method", help=(
        "auto (TF-MoDISco from 100 sequences on, else or when it finds nothing seqlet clustering) | modisco | cluster."))] = "auto",
    motifs_from: Annotated[str, _opt("--motifs-from", help="Attributions motifs are found in: ism (exact) | gradient.")] = "ism",
    gradient: Annotated[str, _opt("--gradient", help=(
        "auto (DeepLIFT/SHAP where its convergence check holds, else gradient x input) | deeplift | saliency."))] = "auto",
    matches: Annotated[int, _opt("--matches", min=1, help="JASPAR matches listed per discovered motif.")] = 3,
    jaspar: JasparChoice | None = None,  # the JASPAR_OPTIONS: --jaspar-taxon, --jaspar-collection, --annotate-pvalue
    target: TargetOpt = "max",
    ambiguous: AmbiguousOpt = "uniform",
    seed: opt.SeedOpt = 0,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Explain why sequences score: ISM and gradient attributions per base, the motifs behind them and
    their JASPAR 2024 matches (e.g. what a trained predictor learned, or what a design wrote)."""
    from gengen.dna.designer.objectives import check_trained_length, trained_lengths
    from gengen.dna.predictor.explain import explain, explain_outputs
    from gengen.io.sequences import read_fasta

    set_threads(threads)
    if not (goal.objective or goal.motif or goal.predictor):
        raise GengenError("give what to explain: --predictor (a dna-train-predictor model), --motif (file or JASPAR "
                          "id) or --objective (repeatable).")
    if goal.motif and goal.predictor:
        raise GengenError("--motif and --predictor are two objectives: explain one, or give both as --objective "
                          "(their standardised sum is explained).")
    jaspar.check()
    for value, option, allowed in ((motif_method, "--motif-method", ("auto", "modisco", "cluster")),
                                   (motifs_from, "--motifs-from", ("ism", "gradient")),
                                   (gradient, "--gradient", ("auto", "deeplift", "saliency"))):
        if value not in allowed:
            raise GengenError(f"{option} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {value!r}.")
    if output.exists() and not output.is_dir():
        raise GengenError(f"-o {str(output)!r} is a file; dna-explain writes a folder of results: choose a folder name.")
    seqs = read_fasta(input_path(data), length=length, ambiguous=ambiguous, quiet=quiet)
    trained = trained_lengths(goal.predictor, goal.objective)
    check_trained_length(trained, seqs.length, how="records of {asked} nt differ",
                         fix="explain {n}-nt sequences (--length {n} cuts longer records into windows).")
    outs = explain_outputs(output, min(logos, top, len(seqs)))
    # report=: a reused folder keeps only this run's files (no logos/top07.png left from a longer run)
    plan = plan_outputs(outs, inputs=input_paths([data, *goal.inputs()]), report=output)
    objectives, _ = goal.load(target, device, quiet)
    result = explain(objectives, seqs, top=top, motif_method=motif_method, motifs_from=motifs_from, gradient=gradient,
                     taxon=jaspar.jaspar_taxon, collection=jaspar.jaspar_collection, n_matches=matches,
                     annotate_pvalue=jaspar.annotate_pvalue,
                     seed=seed, device=device, quiet=quiet)
    result.write(output, logos=logos)
    plan.commit()
    report(result.report(), outs[:8], quiet)
    if len(outs) > 8:
        typer.echo(str(outs[8].parent))


@app.command("dna-train-predictor", rich_help_panel=PANEL)
@TRAINING_OPTIONS
def dna_train_predictor(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="FASTA of labelled sequences (equal length).")],
    scores: Annotated[Path, _opt("--scores", help="CSV/TSV: sequence id, numeric score (e.g. id,signal).")],
    output: Annotated[Path | None, _opt("-o", "--output", help=(
        "Predictor directory to write (default: a new model in the store, named after DATA, that becomes the "
        "default DNA predictor)."))] = None,
    transform: Annotated[str, _opt("--transform", help="Label transform: log | rank | none.")] = PredictorRecipe.transform,
    epochs: Annotated[int, _opt("--epochs", help="Training epochs.")] = PredictorRecipe.epochs,
    val_fraction: Annotated[float, _opt("--val-fraction", help="Held-out fraction for Spearman rho and Pearson r.")] = PredictorRecipe.val_fraction,
    members: Annotated[int, _opt("--members", help=(
        "Networks trained side by side and averaged (an ensemble: their errors partly cancel; the default ranked "
        "PBM probes better than one network); 1 trains about that many times faster."))] = PredictorRecipe.members,
    flanks: Annotated[bool, _opt("--flanks/--no-flanks", help=(
        "Learn the constant context on both sides of the sequences (a PBM probe's primer, an MPRA insert's "
        "adapters); --no-flanks scores a sequence and its reverse complement alike."))] = PredictorRecipe.flanks,
    baseline: Annotated[bool, _opt("--baseline/--no-baseline", help="Also score a 6-mer ridge baseline.")] = True,
    ambiguous: AmbiguousOpt = "uniform",
    seed: opt.SeedOpt = PredictorRecipe.seed,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
    training: TrainingRun | None = None,  # the TRAINING_OPTIONS: --resume, --checkpoint-every, --checkpoint-minutes
) -> None:
    """Train a small CNN regressor on labelled sequences (usable as --predictor); reports held-out Spearman rho
    and Pearson r next to a 6-mer ridge baseline's on the same split.

    By default 3 networks with learned flanks and dilated convolutions are trained side by side and averaged
    (chosen on the early-stopping split of three PBM factors; the run says why and config.json records it):
    about 5 min of CPU for 40,000 36-nt probes on one thread; --members 1 trains a third as long.

    The model folder is a resumable checkpoint while training runs (every 10 epochs and at least once
    a minute): after an interruption, the same command with --resume continues where it stopped.
    """
    from gengen.dna.predictor.training import read_labels, train_predictor
    from gengen.io.sequences import read_fasta

    set_threads(threads)
    run = training.folder(output, data, "dna-predictor", inputs=(scores,))
    recipe = PREDICTOR_OPTIONS.build(ctx.params)
    if training.resume:
        recipe = PREDICTOR_OPTIONS.resume(ctx, recipe, run.saved_recipe)
    seqs = read_fasta(input_path(data), ambiguous=ambiguous, quiet=quiet)
    y = read_labels(scores, seqs.ids)
    trained = train_predictor(seqs.codes, y, recipe, device=device, quiet=quiet, baseline=baseline,
                              checkpoint=run.checkpoint)
    say(trained.report(), quiet)
    run.done(quiet)


@app.command("dna-export-predictor", rich_help_panel=PANEL)
def dna_export_predictor(
    model: Annotated[str, typer.Argument(help="A dna-train-predictor model (directory or store name).")],
    output: Annotated[Path | None, _opt("-o", "--output", help=(
        "TorchScript file to write (default: MODEL.pt, named after the model, in the current folder)."))] = None,
    threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Export a dna-train-predictor model as TorchScript (torch.jit.save): for --objective model=FILE.pt, and for
    any PyTorch tool (torch.jit.load). The archive records the length the model was trained on."""
    from gengen.dna.designer.objective_kinds.model import export_torchscript
    from gengen.dna.predictor.predictors import CNNPredictor

    set_threads(threads)
    output = output if output is not None else Path(Path(model).name + ".pt")
    opt.require_suffix(output, (".pt", ".pth"), "a TorchScript archive")
    plan = plan_outputs([output], inputs=input_paths([model]))
    predictor = CNNPredictor.load(model, device="cpu")
    export_torchscript(predictor, output, length=predictor.length)
    plan.commit()
    report([f"TorchScript of {model}" + (f" (trained on {predictor.length} nt)" if predictor.length else "")
            + f": use it as --objective model={output}"], [output], quiet)


@app.command("dna-score", rich_help_panel=PANEL)
def dna_score(
    data: Annotated[Path, typer.Argument(help="FASTA to score (designed, generated or natural).")],
    motif: MotifOpt = None,
    motif_format: MotifFormatOpt = None,
    motif_name: MotifNameOpt = None,
    pseudocount: PseudoOpt = 1.0,
    predictor: PredictorOpt = None,
    objective: ScoreObjectiveOpt = None,
    output: Annotated[Path | None, _opt("-o", "--output", help="TSV to write (default: stdout).")] = None,
    independent_probes: Annotated[Path | None, _opt("--independent-probes", help=(
        "Also score with an independent model: 6-mer ridge fitted on ALL these labelled probes."))] = None,
    independent_scores: Annotated[Path | None, _opt("--independent-scores", help="Labels (id,score CSV/TSV) for --independent-probes.")] = None,
    transform: Annotated[str, _opt("--transform", help="Label transform for --independent-scores: log | rank | none.")] = "log",
    predictor_windows: Annotated[bool, _opt("--predictor-windows", help=(
        "Score records of other lengths than the --predictor (or an --objective model that records it) was trained "
        "on by their best window of that length (stride 1; without it such records are refused: the predictor's "
        "score at another length is an extrapolation)."))] = False,
    ambiguous: AmbiguousOpt = "uniform",
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """Score every sequence of a FASTA with a motif (best hit, both strands), a predictor and/or objectives."""
    from gengen.dna.designer.objective_kinds.motif import read_motif
    from gengen.dna.designer.objectives import ObjectiveContext, load_objectives
    from gengen.dna.predictor.scoring import score_file, scores_bed_path, write_hits_bed, write_scores

    set_threads(threads)
    opt.require_suffix(output, TABLE_SUFFIXES, "a TSV table")
    if not motif and not predictor and not objective and not independent_probes:
        raise GengenError("give --motif (file or JASPAR id), --predictor, --objective and/or --independent-probes.")
    if (independent_probes is None) != (independent_scores is None):
        raise GengenError("--independent-probes and --independent-scores go together.")
    if predictor_windows and not predictor and not objective:
        raise GengenError("--predictor-windows scores with a --predictor: give one, or leave the option out.")
    goal = ObjectiveChoice(objective, motif=motif, motif_format=motif_format, motif_name=motif_name,
                           pseudocount=pseudocount, predictor=predictor)
    bed = scores_bed_path(output) if output is not None and motif else None  # the hits, beside the table
    plan = plan_outputs([output, bed], inputs=input_paths([data, independent_probes, independent_scores, *goal.inputs()]))
    how = ObjectiveContext(device=device, quiet=quiet, motif_format=motif_format, motif_name=motif_name,
                           pseudocount=pseudocount)
    pwm = read_motif(motif, how) if motif else None
    objectives = load_objectives(objective, motif_format=motif_format, motif_name=motif_name, pseudocount=pseudocount,
                                 device=device, quiet=quiet)[0] if objective else None
    table, lines = score_file(input_path(data), pwm=pwm, predictor=predictor, transform=transform, ambiguous=ambiguous,
                              independent=(independent_probes, independent_scores) if independent_probes else None,
                              device=device, predictor_windows=predictor_windows, objectives=objectives, quiet=quiet)
    if output is None:
        typer.echo(write_scores(table), nl=False)
        for line in lines:
            say(line, quiet)
        return
    write_scores(table, output)
    if bed is not None:
        write_hits_bed(table, pwm, bed)
    plan.commit()
    report(lines, [output] + ([bed] if bed is not None else []), quiet)


@app.command("dna-eval", rich_help_panel=PANEL)
def dna_eval(
    data: Annotated[Path, typer.Argument(help="The real FASTA the GAN was trained on (held-out genes are used).")],
    model: GanModelOpt = None,
    n: Annotated[int, _opt("-n", help="Sequences per set (GAN samples, baselines, real windows).")] = 10000,
    heldout_fraction: Annotated[float | None, _opt("--heldout-fraction", help="Held-out record fraction (default: the model's).")] = None,
    samples: Annotated[Path | None, _opt("--samples", help="Also evaluate these sequences (e.g. designed FASTA).")] = None,
    novelty: Annotated[bool, _opt("--novelty/--no-novelty", help=(
        "Also each sequence's Hamming distance to its nearest training window (both strands) and the share of "
        "exact copies, for GAN samples and held-out real windows."))] = True,
    output: Annotated[Path | None, _opt("-o", "--output", help="Write the k-mer table as TSV (the novelty table beside it, .novelty.tsv).")] = None,
    ambiguous: AmbiguousOpt = "skip",
    weights: WeightsOpt = "best",
    seed: opt.SeedOpt = 0,
    device: opt.DeviceOpt = "auto", threads: opt.ThreadsOpt = None, quiet: opt.QuietOpt = False,
) -> None:
    """k-mer spectrum JS divergence (k = 1..6) of GAN samples vs held-out real windows, next to i.i.d.
    and Markov baselines and the real-vs-real noise floor; and how far samples are from the training set."""
    from gengen.dna.gan.evaluate import eval_outputs, evaluate_gan
    from gengen.io.sequences import read_fasta

    set_threads(threads)
    opt.require_suffix(output, TABLE_SUFFIXES, "a TSV table")
    model = model_or_default(model, "dna-gan", quiet)
    plan_outputs(eval_outputs(output, novelty), inputs=input_paths([data, model, samples]))
    gan = _load_gan(model, device, weights, True)
    say(f"reading {data} as tiled {gan.length}-nt windows", quiet)
    seqs = read_fasta(input_path(data), length=gan.length, windows="tiled", ambiguous=ambiguous, quiet=quiet)
    extra = {samples.stem: read_fasta(input_path(samples), length=gan.length, ambiguous=ambiguous,
                                          quiet=quiet).codes} if samples else None
    ev = evaluate_gan(gan, seqs, n, heldout_fraction=heldout_fraction, extra=extra, novelty=novelty, seed=seed,
                      quiet=quiet)
    for caveat in ev.caveats:
        say(f"warning: {caveat}.", quiet)
    for line in ev.lines(gan):
        typer.echo(line)
    if output is not None:
        for path in ev.write(output):
            typer.echo(str(path))
