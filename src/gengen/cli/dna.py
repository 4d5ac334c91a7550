"""CLI commands of the DNA pipeline (Killoran et al. 2017): parse, call :mod:`gengen.dna`, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.cli._app import DeviceOpt, QuietOpt, SeedOpt, ThreadsOpt, app, input_path, say
from gengen.cli._store import model_or_default, stored_as_default, train_output
from gengen.errors import GengenError
from gengen.runtime import plan_outputs, set_threads

PANEL = "DNA (Killoran)"

LengthOpt = Annotated[int, typer.Option("--length", "-L", help="Sequence / window length.")]
WindowsOpt = Annotated[
    str, typer.Option("--windows", help="Cut longer records into 'tiled' or 'random' windows.")
]
AmbiguousOpt = Annotated[
    str, typer.Option("--ambiguous", help="N/IUPAC bases: skip (drop windows) | uniform | error.")
]
ShortOpt = Annotated[
    str, typer.Option("--short", help="Records shorter than the length: error | skip | pad (with N).")
]
MotifOpt = Annotated[
    str | None,
    typer.Option(
        "--motif",
        help="Motif file (jaspar, MEME minimal, transfac, HOMER, sites, or a plain table of counts, probabilities, "
        "percentages or log-odds, either orientation) or a JASPAR id like MA0139.2.",
    ),
]
MotifFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--motif-format",
        help="Force the motif file format (default: detect): jaspar, minimal, transfac, homer, sites, pfm (a table, "
        "orientation detected), pfm-four-columns (one row per position), pfm-four-rows (one row per base).",
    ),
]
MotifNameOpt = Annotated[
    str | None,
    typer.Option("--motif-name", help="Which motif of a file that holds several (its id or name; default: the first)."),
]
PseudoOpt = Annotated[
    float, typer.Option("--pseudocount", help="Total pseudocount per motif column, spread by the background.")
]
PredictorOpt = Annotated[
    str | None, typer.Option("--predictor", help="A model from dna-train-predictor (directory or store name).")
]
GanModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="dna-train model directory or store name (default: the store's default DNA GAN)."),
]


FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
TABLE_SUFFIXES = (".tsv", ".txt", ".tab")


def _require_suffix(path: Path | None, allowed: tuple[str, ...], what: str) -> None:
    """Refuse an output name whose extension promises another format, before any work."""
    if path is None:
        return
    suffix = "".join(Path(path).suffixes[-2:]) if Path(path).suffix == ".gz" else Path(path).suffix
    if suffix.lower().removesuffix(".gz") not in allowed:
        raise GengenError(f"output {str(path)!r} should end in {' / '.join(allowed)}: this command writes {what}.")


def _motif(spec, fmt, pseudocount, name=None, quiet=False):
    """The --motif PWM (or None), announced so the user sees which matrix was used."""
    from gengen.io.motifs import load_motif

    if not spec:
        return None
    pwm = load_motif(spec, fmt=fmt, name=name, pseudocount=pseudocount, quiet=quiet)
    say(f"motif {pwm.name}: {pwm.length} bp, consensus {pwm.consensus}, best possible score {pwm.max_score:.3f}"
        + (f" (read as {pwm.layout})" if pwm.layout else ""), quiet)
    return pwm


def _predictor(motif_spec, motif_format, pseudocount, predictor_path, device, name=None, quiet=False):
    """(predictor module, pwm or None, label) from --motif / --predictor."""
    from gengen.dna.predictors import PWMPredictor, load_predictor

    pwm = _motif(motif_spec, motif_format, pseudocount, name, quiet)
    if predictor_path:
        model, cfg = load_predictor(predictor_path, device=device)
        return model, pwm, f"predictor {predictor_path}"
    if pwm is None:
        raise GengenError("give --motif (file or JASPAR id) or --predictor (a dna-train-predictor model).")
    return PWMPredictor(pwm), pwm, f"motif {pwm.name}"


def _sidecar(output: Path, suffix: str) -> Path:
    name = output.name
    for ext in (".gz", ".fasta", ".fa", ".fna"):
        name = name.removesuffix(ext)
    return output.with_name(name + suffix)


WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        help="GAN generator weights: 'best' (best held-out k-mer check during training) or 'last'.",
    ),
]


@app.command("dna-train", rich_help_panel=PANEL)
def dna_train(
    data: Annotated[Path, typer.Argument(help="FASTA (plain or .gz) of training sequences.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help=(
        "Model directory (resumable checkpoint) (default: a new model in the store, named after DATA, that "
        "becomes the default DNA GAN)."))] = None,
    length: LengthOpt = 50,
    windows: WindowsOpt = "tiled",
    ambiguous: AmbiguousOpt = "skip",
    short: ShortOpt = "error",
    max_windows: Annotated[
        int | None,
        typer.Option("--max-windows", help="Use at most this many training windows (seeded subset)."),
    ] = None,
    heldout_fraction: Annotated[
        float | None,
        typer.Option(
            "--heldout-fraction",
            help="Fraction of records (genes) held out: half choose the best checkpoint, half are dna-eval's "
            "test set. [default: 0.1; with --resume the checkpoint's]",
        ),
    ] = None,
    iterations: Annotated[
        int, typer.Option("--iterations", help="Generator iterations (paper: ~100k).")
    ] = 2000,
    channels: Annotated[int, typer.Option("--channels", help="Residual channels (paper: 100).")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size (paper: 64).")] = 64,
    critic_steps: Annotated[
        int, typer.Option("--critic-steps", help="Critic updates per generator update.")
    ] = 5,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-4,
    sample_every: Annotated[
        int, typer.Option("--sample-every", help="Write samples + k-mer check every N iterations.")
    ] = 250,
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", help="Stop cleanly after this many minutes (resume later)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in OUTPUT.")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a WGAN-GP (residual CNNs) on DNA windows; writes a resumable checkpoint with samples."""
    from gengen.dna.train import GANRecipe, train_gan
    from gengen.io.sequences import heldout_mask, heldout_split, read_fasta

    set_threads(threads)
    if resume and output is None:
        raise GengenError("--resume continues a checkpoint: name it with -o (a folder, or the store's models/NAME).")
    heldout_fraction = _resume_heldout_fraction(output, heldout_fraction) if resume else heldout_fraction
    to_store, output = output is None, train_output(output, data, "dna-gan")  # no -o: a new model in the store
    if heldout_fraction is None:
        heldout_fraction = 0.1
    recipe = GANRecipe(
        length=length,
        channels=channels,
        batch_size=batch_size,
        critic_steps=critic_steps,
        learning_rate=lr,
        iterations=iterations,
        sample_every=sample_every,
        checkpoint_every=sample_every,
        log_every=max(1, min(50, sample_every)),
        seed=seed,
        heldout_fraction=heldout_fraction,
        heldout_split=True,
    )
    recipe.validate()  # options and -o before reading data, not at the first checkpoint
    plan_outputs(models={output: "dna-gan"}, inputs=[data])
    seqs = read_fasta(
        input_path(data), length=length, windows=windows, ambiguous=ambiguous, short=short, seed=seed
    )
    held = heldout_mask(seqs.ids, heldout_fraction) if heldout_fraction > 0 else None
    train_codes = seqs.codes[~held] if held is not None else seqs.codes
    # the best checkpoint is chosen on the validation half of the held-out genes; dna-eval reports on
    # the other half
    val = heldout_split(seqs.ids, heldout_fraction)[0] if held is not None else None
    held_codes = seqs.codes[val] if val is not None and val.any() else None
    if held is not None and held_codes is None:
        say(
            f"warning: the validation half of the {heldout_fraction:.0%} held-out records is empty in this file: "
            "no k-mer check and no best-checkpoint choice (the last weights will be used); "
            "raise --heldout-fraction or use more records.",
            quiet,
        )
    if max_windows is not None and len(train_codes) > max_windows:
        import numpy as np

        sel = np.random.default_rng(seed).choice(len(train_codes), max_windows, replace=False)
        train_codes = train_codes[np.sort(sel)]
    say(
        f"{len(train_codes)} training windows of {length} nt"
        + (
            f", {len(held_codes)} validation windows from held-out genes (checkpoint choice; "
            f"dna-eval tests on the other {int(held.sum()) - len(held_codes)})"
            if held_codes is not None
            else ""
        ),
        quiet,
    )
    model = train_gan(
        train_codes,
        recipe,
        output=output,
        heldout_codes=held_codes,
        resume=resume,
        device=device,
        quiet=quiet,
        time_limit=time_limit * 60 if time_limit else None,
    )
    m = model.metrics
    js = "  ".join(f"{k}={v:.4f}" for k, v in m.items() if k.startswith("js_k"))
    say(
        f"{m.get('iteration')} iterations on {m.get('device')} ({m['seconds_per_iteration']:.3f} s each)"
        + (f"; held-out k-mer JS: {js}" if js else ""),
        quiet,
    )
    if "best_iteration" in m:
        say(
            f"best held-out check (mean JS k=3,4 {m['best_score']:.4f}) at iteration {m['best_iteration']}: "
            "used by dna-generate/dna-eval/dna-design unless --weights last",
            quiet,
        )
    if to_store:
        stored_as_default(output, "dna-gan", quiet)
    typer.echo(str(output))


def _resume_heldout_fraction(output: Path, asked: float | None) -> float | None:
    """The checkpoint's held-out fraction: resuming with another would train on genes it held out."""
    import json

    cfg_path = Path(output) / "config.json"
    try:
        saved = json.loads(cfg_path.read_text())["recipe"]["heldout_fraction"]
    except (OSError, ValueError, KeyError, TypeError):
        return asked  # train_gan reports a missing or broken checkpoint
    if asked is not None and abs(asked - saved) > 1e-12:
        raise GengenError(
            f"--resume: the checkpoint was trained with --heldout-fraction {saved}, not {asked}; resuming with "
            "another fraction would train on genes held out before. Leave the option out to keep the checkpoint's."
        )
    return saved


@app.command("dna-generate", rich_help_panel=PANEL)
def dna_generate(
    model: GanModelOpt = None,
    n: Annotated[int, typer.Option("-n", help="Number of sequences.")] = 1000,
    output: Annotated[Path, typer.Option("-o", "--output", help="FASTA to write.")] = Path("samples.fa"),
    weights: WeightsOpt = "best",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Sample sequences from a trained DNA GAN (argmax of G(z), z ~ N(0, I))."""
    from gengen.dna.core import GANModel
    from gengen.io.sequences import decode_codes, gc_content, write_fasta

    set_threads(threads)
    _require_suffix(output, FASTA_SUFFIXES, "FASTA")
    model = model_or_default(model, "dna-gan", quiet)
    plan_outputs([output], inputs=[model])
    gan = GANModel.load(model, device=device, weights=weights)
    codes = gan.generate(n, seed=seed)
    gc = gc_content(codes)
    write_fasta(output, [f"gan_{i + 1}" for i in range(n)], decode_codes(codes), [f"gc={g:.3f}" for g in gc])
    say(
        f"generated {n} sequences of {gan.length} nt (seed {seed}, {gan.metrics['weights']} weights, "
        f"iteration {gan.iteration}); mean GC {gc.mean():.3f}",
        quiet,
    )
    typer.echo(str(output))


@app.command("dna-design", rich_help_panel=PANEL)
def dna_design(
    motif: MotifOpt = None,
    motif_format: MotifFormatOpt = None,
    motif_name: MotifNameOpt = None,
    pseudocount: PseudoOpt = 1.0,
    predictor: PredictorOpt = None,
    gan: Annotated[
        str | None,
        typer.Option("--gan", help="Design through this GAN's latent space (joint method; directory or store name)."),
    ] = None,
    weights: WeightsOpt = "best",
    direct: Annotated[
        bool, typer.Option("--direct", help="Direct design on the sequence (the default without --gan).")
    ] = False,
    target: Annotated[str, typer.Option("--target", help="max | min | a value to hit.")] = "max",
    n: Annotated[int, typer.Option("-n", help="Number of sequences.")] = 100,
    length: LengthOpt = 50,
    steps: Annotated[int, typer.Option("--steps", help="Optimisation steps.")] = 500,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam step size (default: 0.1).")] = None,
    straight_through: Annotated[
        bool | None,
        typer.Option(
            "--straight-through/--softmax",
            help="Straight-through one-hot forward pass (Fast SeqProp) or plain softmax relaxation (default).",
            show_default=False,
        ),
    ] = None,
    prior_weight: Annotated[
        float, typer.Option(
            "--prior-weight",
            help="Joint design: weight of ||z||^2 (pulls z toward 0: higher scores, less natural designs).",
        )
    ] = 0.0,
    grad_noise: Annotated[
        float, typer.Option("--grad-noise", help="Joint design: Gaussian gradient noise on z.")
    ] = 1e-5,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="FASTA to write; .tsv and .png are written beside it.")
    ] = Path("designed.fa"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Design sequences toward a motif (PWM) or a trained predictor: directly, or through a GAN."""
    from gengen.dna.design import design_direct, design_joint, plot_design
    from gengen.io.sequences import write_fasta
    from gengen.runtime import atomic_path

    set_threads(threads)
    _require_suffix(output, FASTA_SUFFIXES, "FASTA (with .tsv and .png beside it)")
    if gan and direct:
        raise GengenError("--gan and --direct exclude each other: pick joint (GAN) or direct design.")
    tsv, png = _sidecar(output, ".tsv"), _sidecar(output, ".png")
    plan = plan_outputs([output, tsv, png], inputs=[motif, predictor, gan])
    model, pwm, label = _predictor(motif, motif_format, pseudocount, predictor, device, motif_name, quiet)
    from gengen.dna.design import parse_target

    target_value = parse_target(target)
    if pwm is not None and not predictor and not isinstance(target_value, str) and target_value > pwm.max_score:
        say(f"note: --target {target_value:g} is above the motif's best possible score {pwm.max_score:.3f}; "
            "the designs can only approach the consensus", quiet)
    kw = {
        "n": n,
        "steps": steps,
        "learning_rate": 0.1 if lr is None else lr,
        "target": target,
        "seed": seed,
        "device": device,
        "quiet": quiet,
        "pwm": pwm if predictor else None,
    }
    if gan:
        from gengen.dna.core import GANModel

        g = GANModel.load(gan, device=device, weights=weights)
        say(f"GAN {gan}: {g.metrics.get('weights', weights)} weights, iteration {g.iteration}", quiet)
        if length not in (50, g.length):
            say(f"note: the GAN makes {g.length}-nt sequences; --length {length} ignored", quiet)
        result = design_joint(
            g,
            model,
            grad_noise=grad_noise,
            prior_weight=prior_weight,
            straight_through=bool(straight_through),
            **kw,
        )
    else:
        result = design_direct(model, length=length, straight_through=bool(straight_through), **kw)
    write_fasta(output, result.ids, result.strings(), result.descriptions())
    with atomic_path(tsv) as tmp:
        result.table().to_csv(tmp, sep="\t", index=False, float_format="%.5g")
    plot_design(result, png, pwm=pwm, title=f"{result.method} design toward {label}")
    plan.commit()  # the three files land together, or none
    s = result.summary()
    line = (
        f"{s['n']} sequences ({result.method}, {steps} steps): one-hot score mean {s['score_mean']:.3f} "
        f"(min {s['score_min']:.3f}, max {s['score_max']:.3f}; start {s['initial_score_mean']:.3f})"
    )
    if "max_possible" in s:
        line += f"; {100 * s['fraction_of_max']:.2f}% of the consensus max {s['max_possible']:.3f}"
        if s.get("steps_to_99pct") is not None:
            line += f", 99% reached at step {s['steps_to_99pct']}"
    if "target_abs_error_mean" in s:
        line += (f"; target {float(s['target']):g}: mean |score - target| {s['target_abs_error_mean']:.3f} "
                 "(closest one-hot sequence per design, then single-base polishing)")
    say(line, quiet)
    div = f"diversity {s['diversity']:.3f}/base"
    if s.get("diversity_outside_hit") is not None and s["diversity_outside_hit"] == s["diversity_outside_hit"]:
        div += f", {s['diversity_outside_hit']:.3f} outside the motif hit"
    say(div + f"; {s['seconds']:.1f} s on {s['device']}", quiet)
    for p in (output, tsv, png):
        typer.echo(str(p))


@app.command("dna-train-predictor", rich_help_panel=PANEL)
def dna_train_predictor(
    data: Annotated[Path, typer.Argument(help="FASTA of labelled sequences (equal length).")],
    scores: Annotated[
        Path, typer.Option("--scores", help="CSV/TSV: sequence id, numeric score (e.g. id,signal).")
    ],
    output: Annotated[Path | None, typer.Option("-o", "--output", help=(
        "Predictor directory to write (default: a new model in the store, named after DATA, that becomes the "
        "default DNA predictor)."))] = None,
    transform: Annotated[
        str, typer.Option("--transform", help="Label transform: log | rank | none.")
    ] = "log",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 8,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Held-out fraction for Pearson r.")
    ] = 0.1,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Also score a 6-mer ridge baseline.")
    ] = True,
    ambiguous: AmbiguousOpt = "uniform",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a small CNN regressor on labelled sequences (usable as --predictor); reports held-out Pearson r."""
    from gengen.dna.predictor_training import PredictorRecipe, read_labels, train_predictor
    from gengen.io.sequences import read_fasta

    set_threads(threads)
    to_store, output = output is None, train_output(output, data, "dna-predictor")  # no -o: into the store
    plan_outputs(models={output: "dna-predictor"}, inputs=[data, scores])
    seqs = read_fasta(input_path(data), ambiguous=ambiguous)
    y = read_labels(scores, seqs.ids)
    recipe = PredictorRecipe(epochs=epochs, val_fraction=val_fraction, transform=transform, seed=seed)
    trained = train_predictor(seqs.codes, y, recipe, device=device, quiet=quiet, baseline=baseline)
    trained.save(output)
    m = trained.metrics
    line = f"held-out Pearson r {m['val_pearson']:.4f} ({m['n_val']} sequences, {transform} labels"
    line += f"; weights of epoch {m['best_epoch']}, chosen on {m['n_stop']} other sequences)" if m.get("n_stop") else ")"
    if "val_pearson_6mer_ridge" in m:
        line += f"; 6-mer ridge baseline r {m['val_pearson_6mer_ridge']:.4f}"
    say(line + f"; {m['train_seconds']:.1f} s on {m['device']}", quiet)
    if to_store:
        stored_as_default(output, "dna-predictor", quiet)
    typer.echo(str(output))


@app.command("dna-score", rich_help_panel=PANEL)
def dna_score(
    data: Annotated[Path, typer.Argument(help="FASTA to score (designed, generated or natural).")],
    motif: MotifOpt = None,
    motif_format: MotifFormatOpt = None,
    motif_name: MotifNameOpt = None,
    pseudocount: PseudoOpt = 1.0,
    predictor: PredictorOpt = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="TSV to write (default: stdout).")
    ] = None,
    independent_probes: Annotated[
        Path | None,
        typer.Option(
            "--independent-probes",
            help="Also score with an independent model: 6-mer ridge fitted on ALL these labelled probes.",
        ),
    ] = None,
    independent_scores: Annotated[
        Path | None,
        typer.Option("--independent-scores", help="Labels (id,score CSV/TSV) for --independent-probes."),
    ] = None,
    transform: Annotated[
        str, typer.Option("--transform", help="Label transform for --independent-scores: log | rank | none.")
    ] = "log",
    ambiguous: AmbiguousOpt = "uniform",
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score every sequence of a FASTA with a motif (best hit, both strands) and/or a predictor."""
    from gengen.dna.predictors import load_predictor
    from gengen.dna.scoring import score_records
    from gengen.io.sequences import read_fasta_records
    from gengen.runtime import atomic_path

    set_threads(threads)
    _require_suffix(output, TABLE_SUFFIXES, "a TSV table")
    if not motif and not predictor and not independent_probes:
        raise GengenError("give --motif (file or JASPAR id), --predictor and/or --independent-probes.")
    if (independent_probes is None) != (independent_scores is None):
        raise GengenError("--independent-probes and --independent-scores go together.")
    plan_outputs([output], inputs=[data, motif, predictor, independent_probes, independent_scores])
    pwm = _motif(motif, motif_format, pseudocount, motif_name, quiet)
    records = read_fasta_records(input_path(data))
    import numpy as np

    model = load_predictor(predictor, device=device)[0] if predictor else None
    table, notes = score_records(records, pwm=pwm, model=model, ambiguous=ambiguous)
    if pwm is not None and model is None and table["motif_score"].isna().all():
        raise GengenError(
            f"no record of {str(data)!r} can be scored with the {pwm.length}-bp motif: " + "; ".join(notes) + "."
        )
    for note in notes:
        say(f"note: {note}", quiet)
    lengths = set(table["length"])
    check = None
    if independent_probes is not None:
        from gengen.dna.baselines import independent_check
        from gengen.dna.predictor_training import read_labels, transform_labels
        from gengen.io.sequences import encode_string, read_fasta

        if len(lengths) > 1:
            raise GengenError("--independent-probes needs sequences of one length.")
        probes = read_fasta(input_path(independent_probes), ambiguous="uniform")
        y = transform_labels(read_labels(independent_scores, probes.ids), transform)
        check = independent_check(probes.codes, y, np.stack([encode_string(q, n) for n, q in records]))
        table["independent_score"] = check["design_pred"]
    if output is None:
        typer.echo(table.to_csv(sep="\t", index=False, float_format="%.5g"), nl=False)
    else:
        with atomic_path(output, protect=(data,)) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.5g")
        typer.echo(str(output))
    if check is not None:
        say(
            f"independent 6-mer ridge on all {len(check['probe_pred'])} probes (in-sample r "
            f"{check['in_sample_pearson']:.3f}): sequences mean {check['design_mean']:.3f} "
            f"(min {check['design_min']:.3f}); best probe {check['best_probe']:.3f}, top 1% of probes "
            f"{check['top1pct_probe_mean']:.3f}; {100 * check['fraction_above_best_probe']:.1f}% above the best probe",
            quiet,
        )
        if pwm is None and model is None:
            return
    col = "motif_score" if pwm is not None else "predictor_score"
    say(
        f"scored {int(table[col].notna().sum())} of {len(table)} sequences: mean {col} {table[col].mean():.3f}"
        + (
            f" ({100 * table['fraction_of_max'].mean():.1f}% of the consensus max {pwm.max_score:.3f})"
            if pwm
            else ""
        ),
        quiet,
    )


@app.command("dna-eval", rich_help_panel=PANEL)
def dna_eval(
    data: Annotated[
        Path, typer.Argument(help="The real FASTA the GAN was trained on (held-out genes are used).")
    ],
    model: GanModelOpt = None,
    n: Annotated[
        int, typer.Option("-n", help="Sequences per set (GAN samples, baselines, real windows).")
    ] = 10000,
    heldout_fraction: Annotated[
        float | None,
        typer.Option("--heldout-fraction", help="Held-out record fraction (default: the model's)."),
    ] = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="Also evaluate these sequences (e.g. designed FASTA).")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the table as TSV.")] = None,
    ambiguous: AmbiguousOpt = "skip",
    weights: WeightsOpt = "best",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """k-mer spectrum JS divergence (k = 1..6) of GAN samples vs held-out real windows, next to i.i.d.
    and Markov baselines and the real-vs-real noise floor."""
    from gengen.dna.core import GANModel
    from gengen.dna.metrics import kmer_js_table
    from gengen.io.sequences import heldout_mask, heldout_split, read_fasta
    from gengen.runtime import atomic_path

    set_threads(threads)
    _require_suffix(output, TABLE_SUFFIXES, "a TSV table")
    model = model_or_default(model, "dna-gan", quiet)
    plan_outputs([output], inputs=[data, model, samples])
    gan = GANModel.load(model, device=device, weights=weights)
    trained_frac = gan.recipe.heldout_fraction or 0.0
    if heldout_fraction is None and trained_frac == 0:
        raise GengenError(
            "this model was trained on every record (--heldout-fraction 0): no genes were held out to evaluate "
            "on. Pass --heldout-fraction F to evaluate on a share of the records anyway (the GAN has seen them)."
        )
    frac = heldout_fraction if heldout_fraction is not None else trained_frac
    caveats = []
    if trained_frac == 0:
        caveats.append("the GAN was trained on these records too")
    elif abs(frac - trained_frac) > 1e-12:
        caveats.append(
            f"--heldout-fraction {frac} differs from the model's {trained_frac}: the test genes may include "
            "training or validation genes"
        )
    seqs = read_fasta(input_path(data), length=gan.length, windows="tiled", ambiguous=ambiguous)
    train = ~heldout_mask(seqs.ids, frac)
    if gan.recipe.heldout_split:
        held = heldout_split(seqs.ids, frac)[1]  # the test half: never used to choose the checkpoint
        which = f"the test half of the {frac:.0%} held-out records, not used for checkpoint choice"
    else:
        held = ~train
        which = f"the {frac:.0%} held-out records"
        if trained_frac > 0 and gan.metrics.get("weights") == "best":
            caveats.append("this model chose its best checkpoint on these same genes: the GAN row is optimistic")
    if not held.any() or not train.any():
        raise GengenError(
            f"the held-out fraction {frac} leaves no test or no training windows in {str(data)!r}; "
            "is this the FASTA the model was trained on? A file with more records helps."
        )
    for caveat in caveats:
        say(f"warning: {caveat}.", quiet)
    sets = {"gan": gan.generate(n, seed=seed)}
    if samples is not None:
        extra = read_fasta(input_path(samples), length=gan.length, ambiguous=ambiguous)
        sets[samples.stem] = extra.codes
    table = kmer_js_table(sets, seqs.codes[held], seqs.codes[train], n=n, seed=seed)
    typer.echo(
        f"# k-mer JS divergence (bits) vs {int(held.sum())} held-out windows ({which}); "
        f"{table.attrs['n']} sequences per set; GAN at iteration {gan.iteration} ({gan.metrics['weights']} weights)"
    )
    typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    if output is not None:
        with atomic_path(output, protect=(data,)) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        typer.echo(str(output))
