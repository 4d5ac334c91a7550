"""Scoring FASTA records of any length with a motif and/or a predictor (``gengen dna-score``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from gengen.dna.predictor.predictors import PWMPredictor, report_scores
from gengen.errors import GengenError

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.designer.objectives import Objective
    from gengen.io.motifs import PWM


def score_records(
    records: list[tuple[str, str]],
    pwm: PWM | None = None,
    model: nn.Module | None = None,
    *,
    ambiguous: str = "uniform",
    predictor_windows: bool = False,
    predictor_name: str = "predictor",
    objectives: list[Objective] | None = None,
    quiet: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Score FASTA records of any lengths with a motif (best window, both strands), a predictor and/or
    objectives (:mod:`gengen.dna.designer.objectives`: a ``score_<name>`` column each).

    Returns a table in record order (id, length, gc, motif_score, fraction_of_max, hit_start 1-based,
    hit_strand, predictor_score, score_<name>...) and notes for the user. Records that cannot be scored get NaN rather
    than stopping the whole file: shorter than the motif (or empty). ``ambiguous``: ``uniform`` scores
    N/IUPAC positions as 0.25 per base; ``skip`` scores only motif windows free of them (NaN when none
    is) and gives no predictor score to records that hold any; ``error`` refuses such records.

    A predictor that records the length it was trained on (``model.length``, a ``dna-train-predictor``
    CNN) scores only records of that length: others are refused in one line
    (:func:`gengen.dna.designer.objectives.check_trained_length`, the check ``dna-design`` makes), unless
    ``predictor_windows``: then each record is scored by its best window of that length (stride 1;
    ``predictor_window_start``, 1-based), and records shorter than it get NaN. An objective whose model
    records its trained length (a TorchScript export of such a CNN) is treated the same way
    (``window_start_<name>``); any other objective is checked on every record length before any record
    is scored (:meth:`~gengen.dna.designer.objectives.Objective.check_length`: a model by a forward pass).
    """
    import pandas as pd

    from gengen.io.sequences import codes_to_one_hot, encode_string, gc_content

    if ambiguous not in ("uniform", "skip", "error"):
        raise GengenError(f"--ambiguous must be uniform, skip or error, got {ambiguous!r}.")
    if not records:
        raise GengenError("no sequences to score.")
    codes_list = []
    for name, seq in records:
        c = encode_string(seq, name)
        if ambiguous == "error" and (c == 4).any():
            raise GengenError(f"record {name!r} has ambiguous bases; use --ambiguous uniform or skip.")
        codes_list.append(c)
    from gengen.dna.designer.objectives import check_trained_length, column_names

    scorers = []  # (score column, window column, model, the length it was trained on or None)
    if model is not None:
        scorers.append(("predictor_score", "predictor_window_start", model, getattr(model, "length", None),
                        predictor_name))
    objectives = list(objectives or [])
    for obj, col in zip(objectives, column_names(objectives)):
        scorers.append((col, "window_start_" + col.removeprefix("score_"), obj.predictor,
                        getattr(obj.predictor, "length", None), obj.name))
    lengths = sorted({len(c) for c in codes_list} - {0})
    for _, _, _, trained, name in scorers:
        if trained and not predictor_windows:
            for length in sorted(set(lengths) - {trained}):
                check_trained_length({name: trained}, length, how="records of {asked} nt differ",
                                     fix="score {n}-nt sequences, or give --predictor-windows to score each record by "
                                     "its best {n}-nt window.")
    for obj in objectives:  # every length it will see, before any record is scored
        trained = getattr(obj.predictor, "length", None)
        for length in ([trained] if trained and predictor_windows else lengths):
            obj.check_length(length)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(codes_list):
        by_len.setdefault(len(c), []).append(i)
    scorer = PWMPredictor(pwm) if pwm is not None else None
    notes: list[str] = []
    parts = []
    on_block, bar = None, contextlib.nullcontext()
    if scorer is not None:  # a genome takes minutes: a bar in Mb (and the expected time, past a minute)
        from gengen.runtime import Progress

        total = sum(max(0, len(c) - scorer.width + 1) for c in codes_list)
        bar = Progress(-(-total // 10**6), "motif scan (Mb)", quiet)
        pending = [0]

        def on_block(done: int) -> None:
            pending[0] += done
            if pending[0] >= 10**6:
                bar.update(pending[0] // 10**6)
                pending[0] %= 10**6
    with bar:
        for length, idx in by_len.items():
            if len(idx) == 1:  # a chromosome: a view, not a copy
                codes = codes_list[idx[0]][None]
            else:
                codes = np.stack([codes_list[i] for i in idx]) if length else np.zeros((len(idx), 0), np.uint8)
            has_n = (codes == 4).any(axis=1)
            cols: dict = {"id": [records[i][0] for i in idx], "length": length,
                          "gc": gc_content(codes) if length else np.full(len(idx), np.nan)}
            if scorer is not None:
                hits = scorer.scan(codes, ambiguous="skip" if ambiguous == "skip" else "uniform", on_block=on_block)
                score, start, strand = hits["score"], hits["hit_start"], hits["hit_strand"]
                cols["motif_score"] = score
                cols["fraction_of_max"] = score / pwm.max_score
                cols["hit_start"] = pd.array(np.where(start >= 0, start + 1, 0), dtype="Int64")
                cols["hit_start"][start < 0] = pd.NA  # no hit: empty in the TSV, not position 0
                cols["hit_strand"] = np.where(start < 0, "", np.where(strand == 0, "+", "-"))
            for col, window_col, scorer_model, trained, _ in scorers:
                pred = np.full(len(idx), np.nan)
                if trained and predictor_windows:
                    pred, at = best_windows(scorer_model, codes, trained, skip=ambiguous == "skip", quiet=quiet)
                    cols[window_col] = pd.array(np.where(at >= 0, at + 1, 0), dtype="Int64")
                    cols[window_col][at < 0] = pd.NA
                elif length:
                    pred = report_scores(scorer_model, codes_to_one_hot(codes))["score"]
                    if ambiguous == "skip":
                        pred[has_n] = np.nan
                cols[col] = pred
            parts.append(pd.DataFrame(cols).set_index(pd.Index(idx)))
    table = pd.concat(parts).sort_index() if parts else pd.DataFrame()
    if scorer is not None:
        short = int((table["length"] < scorer.width).sum())
        if short:
            notes.append(f"{short} record(s) shorter than the {scorer.width}-bp motif have no motif score (NaN)")
        if ambiguous == "skip":
            free = int((table["length"] >= scorer.width).sum()) - int(table["motif_score"].notna().sum())
            if free:
                notes.append(f"{free} record(s) have no motif window free of N/IUPAC bases (NaN; --ambiguous skip)")
    trained = getattr(model, "length", None) if model is not None else None
    by_windows = bool(trained) and predictor_windows
    missing = int(table["predictor_score"].isna().sum()) if model is not None else 0
    if by_windows:
        short = int(((table["length"] > 0) & (table["length"] < trained)).sum())
        notes.append(f"predictor scores are each record's best {trained}-nt window (stride 1; "
                     "predictor_window_start, 1-based)" + (f"; {short} record(s) shorter than {trained} nt have none "
                                                          "(NaN)" if short else ""))
        if ambiguous == "skip" and missing > short:
            notes.append(f"{missing - short} record(s) have no {trained}-nt window free of N/IUPAC bases (NaN; "
                         "--ambiguous skip)")
    elif model is not None and ambiguous == "skip" and missing:
        notes.append(f"{missing} record(s) with N/IUPAC bases or no bases have no predictor score (NaN; --ambiguous "
                     "skip)")
    elif model is not None and int((table["length"] == 0).sum()):
        notes.append(f"{int((table['length'] == 0).sum())} empty record(s) have no predictor score (NaN)")
    for col, _, _, trained, name in scorers[1 if model is not None else 0:]:
        if trained and predictor_windows:
            notes.append(f"{name}: scores are each record's best {trained}-nt window (stride 1; "
                         f"window_start_{col.removeprefix('score_')}, 1-based)")
        elif (missing := int(table[col].isna().sum())):
            notes.append(f"{missing} record(s) have no {name} score (NaN: empty" + (", or N/IUPAC bases with "
                         "--ambiguous skip" if ambiguous == "skip" else "") + ")")
    return table, notes


WINDOWS_PER_BATCH = 4096


def best_windows(model: nn.Module, codes: np.ndarray, width: int, *, skip: bool = False,
                 quiet: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``width``-nt window by ``model`` (stride 1): scores ``(N,)`` (NaN where a row is
    shorter, or with ``skip`` every window holds an N) and 0-based starts (-1 where none), in batches
    of :data:`WINDOWS_PER_BATCH` windows (memory does not grow with the record's length)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from gengen.io.sequences import codes_to_one_hot
    from gengen.runtime import Progress

    n, length = codes.shape
    best = np.full(n, -np.inf)
    where = np.full(n, -1, dtype=np.int64)
    positions = length - width + 1
    if positions < 1:
        return np.full(n, np.nan), where
    views = sliding_window_view(codes, width, axis=1)  # (N, P, width), no copy
    total = n * positions
    with Progress(-(-total // WINDOWS_PER_BATCH), f"predictor on {width}-nt windows", quiet) as bar:
        for c0 in range(0, total, WINDOWS_PER_BATCH):
            row, pos = np.divmod(np.arange(c0, min(total, c0 + WINDOWS_PER_BATCH)), positions)
            batch = views[row, pos]
            score = report_scores(model, codes_to_one_hot(batch))["score"]
            if skip:
                score = np.where((batch == 4).any(axis=1), -np.inf, score)
            starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])  # rows come in runs
            top = np.maximum.reduceat(score, starts)
            run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(row)]))
            first = np.minimum.reduceat(np.where(score == top[run], np.arange(len(row)), len(row)), starts)
            rows = row[starts]
            better = top > best[rows]
            best[rows[better]] = top[better]
            where[rows[better]] = pos[first[better]]
            bar.update()
    return np.where(np.isfinite(best), best, np.nan), where


def score_file(
    path,
    *,
    pwm: PWM | None = None,
    predictor: str | None = None,
    independent: tuple | None = None,
    transform: str = "log",
    ambiguous: str = "uniform",
    device: str = "cpu",
    predictor_windows: bool = False,
    objectives: list[Objective] | None = None,
    quiet: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """``dna-score``: score a FASTA's records with a motif, a predictor (a model directory or store
    name) and/or ``objectives`` (a ``score_<name>`` column each), and optionally with an independent 6-mer ridge fitted on all of ``independent = (probes FASTA,
    labels CSV)`` (transformed by ``transform``). ``predictor_windows``: score records longer than the
    predictor's training length by their best window of that length (see :func:`score_records`).

    Returns
    -------
    The table of :func:`score_records` (plus ``independent_score``) and the lines to report.
    """
    from gengen.dna.predictor.predictors import CNNPredictor
    from gengen.io.sequences import read_fasta_records

    records = read_fasta_records(path, quiet=quiet)
    model = CNNPredictor.load(predictor, device=device) if predictor else None
    table, notes = score_records(records, pwm=pwm, model=model, ambiguous=ambiguous, quiet=quiet,
                                 predictor_windows=predictor_windows, objectives=objectives,
                                 predictor_name=Path(predictor).name if predictor else "predictor")
    if pwm is not None and model is None and not objectives and table["motif_score"].isna().all():
        raise GengenError(f"no record of {str(path)!r} can be scored with the {pwm.length}-bp motif: "
                          + "; ".join(notes) + ".")
    lines = [f"note: {note}" for note in notes]
    if independent is not None:
        from gengen.dna.predictor.baselines import independent_check
        from gengen.dna.predictor.training import read_labels, transform_labels
        from gengen.io.sequences import encode_string, read_fasta

        if len(set(table["length"])) > 1:
            raise GengenError("--independent-probes needs sequences of one length.")
        probes = read_fasta(independent[0], ambiguous="uniform", quiet=quiet)
        y = transform_labels(read_labels(independent[1], probes.ids), transform)
        check = independent_check(probes.codes, y, np.stack([encode_string(q, n) for n, q in records]))
        table["independent_score"] = check["design_pred"]
        lines.append(
            f"independent 6-mer ridge on all {len(check['probe_pred'])} probes (in-sample r "
            f"{check['in_sample_pearson']:.3f}): sequences mean {check['design_mean']:.3f} (min "
            f"{check['design_min']:.3f}); best probe {check['best_probe']:.3f}, top 1% of probes "
            f"{check['top1pct_probe_mean']:.3f}; {100 * check['fraction_above_best_probe']:.1f}% above the best probe")
    if pwm is not None or model is not None:
        col = "motif_score" if pwm is not None else "predictor_score"
        lines.append(f"scored {int(table[col].notna().sum())} of {len(table)} sequences: mean {col} "
                     f"{table[col].mean():.3f}" + (f" ({100 * table['fraction_of_max'].mean():.1f}% of the consensus "
                                                   f"max {pwm.max_score:.3f})" if pwm else ""))
    if objectives:
        from gengen.dna.designer.objectives import column_names

        lines += [f"{o.name}: mean {col} {table[col].mean():.3f} over {int(table[col].notna().sum())} sequences"
                  for o, col in zip(objectives, column_names(objectives))]
    return table, lines


def scores_bed_path(output) -> Path:
    """Where ``dna-score -o TABLE.tsv --motif ...`` writes the hits as BED: ``TABLE.hits.bed`` beside it
    (:func:`~gengen.runtime.side_path`: a compression suffix, then one extension, dropped)."""
    from gengen.dna.designer.result import BED_SUFFIX
    from gengen.runtime import side_path

    return side_path(output, BED_SUFFIX)


def write_hits_bed(table: pd.DataFrame, pwm: PWM, path) -> str:
    """The best motif hit of every scored record of ``dna-score``'s table, as BED (0-based, half-open; the
    record id as chrom; see :mod:`gengen.io.bed`), written atomically. Returns the path."""
    from gengen.io.bed import hits_bed, write_bed

    bed = hits_bed(table["id"], table["hit_start"] - 1, table["hit_strand"], width=pwm.length, name=pwm.name,
                   fraction_of_max=table["fraction_of_max"] if pwm.max_score > 0 else None)
    return write_bed(bed, path)


def write_scores(table: pd.DataFrame, output=None) -> str:
    """``dna-score``'s table as TSV: written atomically to ``output`` (returns its name), or returned as
    text for stdout when ``output`` is None."""
    if output is None:
        return table.to_csv(sep="\t", index=False, float_format="%.5g")
    from gengen.runtime import atomic_path

    with atomic_path(output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.5g")
    return str(output)
