"""``gengen demo`` step for the DNA pipeline: CTCF (JASPAR MA0139.2, offline) direct design.

Designs a few hundred 50-nt sequences toward the CTCF PWM, writes FASTA + TSV + the logo figure,
and summarises the one-hot scores against the consensus maximum. Runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from gengen.runtime import log


def run(outdir: Path, seed: int = 0, quiet: bool = False) -> list[str]:
    """Run the DNA demo into ``outdir``; returns summary lines."""
    from gengen.dna.designer.design import design
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.motifs import load_motif

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    pwm = load_motif("MA0139.2", quiet=quiet)
    log(f"designing 300 sequences toward {pwm.name} ({pwm.length} bp, consensus {pwm.consensus})", quiet)
    result = design(PWMPredictor(pwm), 300, 50, steps=200, seed=seed, device="cpu", quiet=quiet)
    result.write(outdir / "ctcf_designed.fa", title=f"direct design toward {pwm.name}")
    s = result.summary()
    return [
        f"dna: {s['n']} designed 50-nt sequences toward {pwm.name}: one-hot PWM score {s['score_mean']:.2f} "
        f"= {100 * s['fraction_of_max']:.2f}% of the consensus max {s['max_possible']:.2f} "
        f"(random start {s['initial_score_mean']:.2f}); 99% reached at step {s['steps_to_99pct']}",
        f"dna: diversity {s['diversity_outside_hit']:.3f} mismatches/base outside the motif hit; "
        f"{s['seconds']:.1f} s on {s['device']}; figure {outdir / 'ctcf_designed.png'}",
    ]
