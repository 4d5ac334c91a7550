"""``dna-generate``: samples of a trained GAN written as FASTA, each described by its GC, its objective
scores and (with the training FASTA) its distance to the nearest training window.

Latent paths between samples are :mod:`gengen.dna.gan.interpolate`; drawing the sequences themselves is
:meth:`gengen.dna.gan.core.GANModel.generate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gengen.dna.gan.core import GANModel


def write_samples(
    gan: GANModel,
    path,
    n: int = 1000,
    *,
    seed: int = 0,
    objectives=None,
    train_data=None,
) -> list[str]:
    """``dna-generate``: write ``n`` samples as FASTA (GC, objective scores and, with the training FASTA
    ``train_data``, the distance to the nearest training window in each description).

    Returns
    -------
    The lines to report: GC, and with ``train_data`` the novelty of the samples next to held-out real
    windows (:mod:`gengen.dna.gan.novelty`).
    """
    from gengen.io.sequences import decode_codes, gc_content, write_fasta

    lines: list[str] = []
    nov = None
    if train_data is not None:  # read (and refuse) the training file before sampling
        from gengen.dna.data import evaluation_windows
        from gengen.io.sequences import read_fasta

        seqs = read_fasta(train_data, length=gan.length, windows="tiled")
        if gan.recipe.heldout_fraction:
            win = evaluation_windows(seqs, gan)
            train, test = win.train, win.test
            lines += [win.split] + [f"warning: {c}." for c in win.caveats]
        else:
            train, test = seqs.codes, None
            lines.append("note: the model held no genes out (--heldout-fraction 0): no held-out real windows to "
                         "compare with")
    codes = gan.generate(n, seed=seed)
    desc = [f"gc={g:.3f}" for g in gc_content(codes)]
    if objectives:
        from gengen.dna.designer.design import borrowed
        from gengen.dna.designer.objectives import column_names, exact_scores
        from gengen.io.sequences import codes_to_one_hot

        with borrowed([o.predictor for o in objectives], gan.device):
            scores = exact_scores(objectives, codes_to_one_hot(codes, device=gan.device))
        cols = [c.removeprefix("score_") for c in column_names(objectives)]
        desc = [d + "".join(f" {c}={v:.4f}" for c, v in zip(cols, row)) for d, row in zip(desc, scores)]
    if train_data is not None:
        from gengen.dna.gan.novelty import describe, novelty_table

        sets = {"gan": codes}
        if test is not None:
            rng = np.random.default_rng(seed)
            sets["heldout_real"] = test if len(test) <= n else test[np.sort(rng.choice(len(test), n, replace=False))]
        nov, dist = novelty_table(sets, train, seed=seed, device=gan.device)
        desc = [d + f" nearest_train={int(k)}" for d, k in zip(desc, dist["gan"])]
        lines += describe(nov, gan.length)
    write_fasta(path, [f"gan_{i + 1}" for i in range(n)], decode_codes(codes), descriptions=desc)
    lines.insert(0, f"generated {n} sequences of {gan.length} nt (seed {seed}, {gan.metrics.get('weights', 'last')} "
                    f"weights, iteration {gan.iteration}); mean GC {gc_content(codes).mean():.3f}")
    return lines
