"""Which windows train, choose and test a DNA GAN, and the sequences a design starts from.

Whole records (genes) are held out by a hash of their sequence (:func:`gengen.io.sequences.heldout_mask`
with :func:`~gengen.io.sequences.record_keys`): records with identical sequences (up to case and strand,
e.g. the upstream regions of two transcripts sharing a start site) fall on the same side, so no
evaluation window is a training record under another name. Models trained before this split record no
``heldout_by`` and keep their split by record name, so they evaluate and resume as before. ``dna-train`` chooses its best checkpoint on the
*validation* half of the held-out genes; ``dna-eval`` (and the novelty check) reports on the other,
*test*, half, so the reported figure is not flattered by that choice (:func:`evaluation_windows`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError
from gengen.io.sequences import HELDOUT_BY, SequenceSet, duplicate_records, heldout_mask, heldout_split, record_keys

if TYPE_CHECKING:
    from gengen.dna.gan.core import GANModel


@dataclass
class TrainingWindows:
    """What ``dna-train`` trains on (``train``) and chooses its checkpoint on (``validation``, or None),
    and how many held-out windows are left for ``dna-eval``'s test half."""

    train: np.ndarray
    validation: np.ndarray | None
    n_test: int = 0
    warning: str = ""
    split: str = ""


def model_heldout_by(recipe) -> str:
    """How a model's held-out records were chosen: its recipe's ``heldout_by``, or ``"name"`` for a
    model that does not record it (trained before identical records were kept together)."""
    return getattr(recipe, "heldout_by", None) or "name"


def _split_keys(seqs: SequenceSet, by: str) -> np.ndarray | None:
    if by not in HELDOUT_BY:
        raise GengenError(f"held-out split must be by one of {', '.join(HELDOUT_BY)}, got {by!r}.")
    return record_keys(seqs) if by == "sequence" else None


def split_note(seqs: SequenceSet, fraction: float, by: str) -> str:
    """One line saying how records were held out (for the command output and config.json)."""
    if by == "name":
        return (f"held out {fraction:.0%} of records by record name (this model's split predates keeping identical "
                "records together: a held-out record may repeat a training record under another name)")
    records, distinct = duplicate_records(seqs)
    return (f"held out {fraction:.0%} of records by sequence (identical records kept together: "
            f"{records - distinct:,} duplicates of {distinct:,} distinct sequences)")


def training_windows(
    seqs: SequenceSet,
    heldout_fraction: float,
    *,
    by: str = "sequence",
    max_windows: int | None = None,
    seed: int = 0,
) -> TrainingWindows:
    """Split windows for ``dna-train``: held-out records, their validation half for the checkpoint
    choice, and at most ``max_windows`` training windows (a seeded subset).

    Parameters
    ----------
    seqs : the training FASTA's windows (:func:`gengen.io.sequences.read_fasta`).
    heldout_fraction : share of records held out (0: none).
    by : ``"sequence"`` (default: records with identical sequences, up to case and strand, fall on
        the same side) or ``"name"`` (a hash of the record name: models trained before; a resumed one
        must keep its split). Record it as the recipe's ``heldout_by``.
    max_windows, seed : cap on training windows and the seed of that subset.

    Returns
    -------
    :class:`TrainingWindows`; ``split`` says how records were held out ("" with none).
    """
    keys = _split_keys(seqs, by) if heldout_fraction > 0 else None
    held = heldout_mask(seqs.ids, heldout_fraction, keys=keys) if heldout_fraction > 0 else None
    train = seqs.codes[~held] if held is not None else seqs.codes
    val_mask = heldout_split(seqs.ids, heldout_fraction, keys=keys)[0] if held is not None else None
    validation = seqs.codes[val_mask] if val_mask is not None and val_mask.any() else None
    warning = ""
    if held is not None and validation is None:
        warning = (f"the validation half of the {heldout_fraction:.0%} held-out records is empty in this file: no "
                   "k-mer check and no best-checkpoint choice (the last weights will be used); raise "
                   "--heldout-fraction or use more records.")
    if max_windows is not None and len(train) > max_windows:
        sel = np.random.default_rng(seed).choice(len(train), max_windows, replace=False)
        train = train[np.sort(sel)]
    n_test = int(held.sum()) - (len(validation) if validation is not None else 0) if held is not None else 0
    split = split_note(seqs, heldout_fraction, by) if held is not None else ""
    return TrainingWindows(train, validation, n_test, warning, split)


@dataclass
class EvaluationWindows:
    """Real windows a trained GAN is judged against: ``test`` (held-out genes never trained on, and
    never used to choose the checkpoint when the model recorded the split), ``train`` (the rest), a
    phrase saying which they are, and caveats to show the user."""

    test: np.ndarray
    train: np.ndarray
    which: str
    fraction: float
    caveats: list[str] = field(default_factory=list)
    split: str = ""


def evaluation_windows(seqs: SequenceSet, gan: GANModel, heldout_fraction: float | None = None) -> EvaluationWindows:
    """The test and training windows of ``seqs`` for a model trained on them (``dna-eval``'s logic).

    ``heldout_fraction`` defaults to the model's; another one, or a model trained on every record,
    gives caveats (the test genes may have been seen), and a model that held nothing out needs one.
    Records are held out as the model's were (:func:`model_heldout_by`: by sequence, or by name for
    models trained before); ``split`` says which.
    """
    trained = gan.recipe.heldout_fraction or 0.0
    if heldout_fraction is None and trained == 0:
        raise GengenError(
            "this model was trained on every record (--heldout-fraction 0): no genes were held out to evaluate "
            "on. Pass --heldout-fraction F to evaluate on a share of the records anyway (the GAN has seen them)."
        )
    frac = heldout_fraction if heldout_fraction is not None else trained
    caveats = []
    if trained == 0:
        caveats.append("the GAN was trained on these records too")
    elif abs(frac - trained) > 1e-12:
        caveats.append(f"--heldout-fraction {frac} differs from the model's {trained}: the test genes may include "
                       "training or validation genes")
    by = model_heldout_by(gan.recipe)
    keys = _split_keys(seqs, by)
    train = ~heldout_mask(seqs.ids, frac, keys=keys)
    if gan.recipe.heldout_split:
        held = heldout_split(seqs.ids, frac, keys=keys)[1]  # the test half: never used to choose the checkpoint
        which = f"the test half of the {frac:.0%} held-out records, not used for checkpoint choice"
    else:
        held = ~train
        which = f"the {frac:.0%} held-out records"
        if trained > 0 and gan.metrics.get("weights") == "best":
            caveats.append("this model chose its best checkpoint on these same genes: the GAN row is optimistic")
    if not held.any() or not train.any():
        raise GengenError(
            f"the held-out fraction {frac} leaves no test or no training windows in this file; is this the FASTA "
            "the model was trained on? A file with more records helps."
        )
    return EvaluationWindows(seqs.codes[held], seqs.codes[train], which, frac, caveats, split_note(seqs, frac, by))


def start_sequences(
    path: str | os.PathLike, *, n: int | None = None, length: int | None = None, seed: int = 0
) -> tuple[np.ndarray, list[str], str]:
    """The sequences ``dna-design --from`` edits: every record, or with ``length`` the tiled windows of
    that length cut from them; windows holding N or another ambiguous base are left out. With more
    than ``n``, a seeded random ``n`` of them, in file order.

    Returns
    -------
    ``(codes (M, L), ids, note)``: ``note`` says what was left out or chosen ("" when nothing).
    """
    from gengen.io.sequences import read_fasta

    seqs = read_fasta(path, length=length, windows="tiled", ambiguous="uniform")
    clean = ~(seqs.codes > 3).any(axis=1)
    notes = []
    if not clean.any():
        raise GengenError(f"every --from sequence in {str(path)!r} holds N or another ambiguous base; give A/C/G/T.")
    if not clean.all():
        notes.append(f"{int((~clean).sum())} --from sequence(s) with N or other ambiguous bases left out")
    idx = np.flatnonzero(clean)
    if n is not None and len(idx) > n:
        notes.append(f"{n} of the {len(idx)} --from sequences chosen at random (seed {seed})")
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return seqs.codes[idx], [seqs.ids[i] for i in idx], "; ".join(notes)
