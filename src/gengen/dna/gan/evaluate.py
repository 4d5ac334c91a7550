"""``dna-eval``: how real and how new a trained GAN's samples are, on genes it never saw.

Realism: k-mer spectrum JS divergence (k = 1..6) of GAN samples against held-out test windows, next to
i.i.d. and Markov baselines and the real-vs-real floor (:func:`gengen.dna.metrics.kmer_js_table`).
Novelty: each sample's Hamming distance to its nearest training window (both strands) and the share of
exact copies, next to the same for held-out real windows (:mod:`gengen.dna.gan.novelty`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gengen.dna.data import evaluation_windows

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.gan.core import GANModel
    from gengen.io.sequences import SequenceSet


@dataclass
class GANEvaluation:
    """The k-mer table, the novelty table (or None), and what the test windows were."""

    kmer: pd.DataFrame
    novelty: pd.DataFrame | None
    which: str
    n_test: int
    caveats: list[str] = field(default_factory=list)
    split: str = ""

    def write(self, output) -> list:
        """The k-mer table at ``output`` (TSV) and the novelty table beside it (see :func:`eval_outputs`)."""
        from gengen.runtime import atomic_path

        paths = eval_outputs(output, self.novelty is not None)
        for path, table in zip(paths, (self.kmer, self.novelty)):
            with atomic_path(path) as tmp:
                table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        return paths

    def lines(self, gan: GANModel) -> list[str]:
        """What ``dna-eval`` prints."""
        from gengen.dna.gan.novelty import describe

        out = [f"# {self.split}"] if self.split else []
        out += [f"# k-mer JS divergence (bits) vs {self.n_test} held-out windows ({self.which}); "
               f"{self.kmer.attrs['n']} sequences per set; GAN at iteration {gan.iteration} "
               f"({gan.metrics.get('weights', 'last')} weights)",
               self.kmer.to_string(index=False, float_format=lambda v: f"{v:.5f}")]
        if self.novelty is not None:
            out += describe(self.novelty, gan.length)
        return out


def eval_outputs(output, novelty: bool = True) -> list:
    """The files ``dna-eval -o TABLE.tsv`` writes: the k-mer table and, with novelty, ``TABLE.novelty.tsv``
    (named by :func:`~gengen.runtime.side_path`, as every side file)."""
    if output is None:
        return []
    from pathlib import Path

    from gengen.runtime import side_path

    output = Path(output)
    return [output] + ([side_path(output, ".novelty.tsv")] if novelty else [])


def evaluate_gan(
    gan: GANModel,
    seqs: SequenceSet,
    n: int = 10000,
    *,
    heldout_fraction: float | None = None,
    extra: dict[str, np.ndarray] | None = None,
    novelty: bool = True,
    seed: int = 0,
    device=None,
    quiet: bool = True,
) -> GANEvaluation:
    """Evaluate ``gan`` against the windows of the FASTA it was trained on.

    Parameters
    ----------
    gan : a trained model.
    seqs : the training FASTA's windows at the model's length.
    n : sequences per set (GAN samples, baselines, real windows).
    heldout_fraction : default: the model's (see :func:`gengen.dna.data.evaluation_windows`).
    extra : more sets to evaluate, name -> codes (e.g. designed sequences).
    novelty : also the nearest-training-window distances.
    seed, device : sampling seed; where to compute distances (default: the GAN's device).
    quiet : no stage lines or progress bars (the k-mer table and the distances take minutes on a
        million windows).

    Returns
    -------
    :class:`GANEvaluation`.
    """
    from gengen.dna.gan.novelty import novelty_table
    from gengen.dna.metrics import kmer_js_table
    from gengen.runtime import log

    win = evaluation_windows(seqs, gan, heldout_fraction)
    log(f"generating {n:,} sequences; k-mer spectra (k = 1..6) against {len(win.test):,} held-out windows, with "
        f"i.i.d. and Markov baselines fitted on {len(win.train):,} training windows", quiet)
    sets = {"gan": gan.generate(n, seed=seed), **(extra or {})}
    table = kmer_js_table(sets, win.test, win.train, n=n, seed=seed, quiet=quiet)
    nov = None
    if novelty:
        rng = np.random.default_rng(seed)
        real = win.test if len(win.test) <= n else win.test[np.sort(rng.choice(len(win.test), n, replace=False))]
        log(f"novelty: nearest training window (both strands) of {len(sets) + 1} sets of up to {n:,} sequences", quiet)
        nov, _ = novelty_table({**sets, "heldout_real": real}, win.train, seed=seed,
                               device=device if device is not None else gan.device, quiet=quiet)
    return GANEvaluation(table, nov, win.which, len(win.test), win.caveats, win.split)
