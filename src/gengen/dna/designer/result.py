"""``DesignResult``: designed sequences with their scores, edits, history and provenance; written as
FASTA + TSV + PNG by :meth:`DesignResult.write` (the CLI and the demo both use it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from gengen.dna.designer.objectives import Objective
    from gengen.io.motifs import PWM

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
MOTIF_SUFFIX = ".motif.jaspar"
BED_SUFFIX = ".hits.bed"


def design_outputs(path: str | os.PathLike, *, motif: bool = False, hits: bool = False) -> tuple[Path, ...]:
    """The files a design writes: the FASTA ``path`` and its ``.tsv`` and ``.png`` beside it; with
    ``motif`` also ``<stem>.motif.jaspar`` (the designed motif), with ``hits`` ``<stem>.hits.bed`` (the
    best motif hits; a design that knows a motif writes it). :meth:`DesignResult.write` writes them all.
    Side names follow :func:`~gengen.runtime.side_path`, as ``dna-score``'s."""
    from gengen.runtime import side_path

    path = Path(path)
    endings = (".tsv", ".png") + ((MOTIF_SUFFIX,) if motif else ()) + ((BED_SUFFIX,) if hits else ())
    return (path, *(side_path(path, e) for e in endings))


@dataclass
class DesignResult:
    """Designed sequences with their one-hot scores, optimisation history and provenance.

    ``scores`` / ``initial_scores`` are the first objective's; ``objective_scores`` ``(N, K)`` holds
    every objective's exact one-hot score and ``combined`` the standardised weighted sum a design
    maximises. With start sequences (``--from``), ``start_codes``/``start_ids`` and ``edits`` say what
    each design changed. ``index`` numbers the designs kept (0-based): designs that could not be made
    to meet every constraint are ``dropped``.
    """

    codes: np.ndarray
    scores: np.ndarray
    history: pd.DataFrame
    method: str
    target: str | float
    initial_scores: np.ndarray
    hit_start: np.ndarray | None = None
    hit_strand: np.ndarray | None = None
    motif_width: int | None = None
    max_score: float | None = None
    settings: dict = field(default_factory=dict)
    objectives: list[Objective] = field(default_factory=list)
    objective_scores: np.ndarray | None = None
    initial_objective_scores: np.ndarray | None = None
    combined: np.ndarray | None = None
    index: np.ndarray | None = None
    start_codes: np.ndarray | None = None
    start_ids: list[str] | None = None
    edits: np.ndarray | None = None
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    reference_scores: np.ndarray | None = None
    reference_label: str = "random sequences"
    pwm: PWM | None = None
    annotations: dict = field(default_factory=dict)  # extra table columns (dna-design --annotate: JASPAR hits)

    @property
    def ids(self) -> list[str]:
        idx = self.index if self.index is not None else np.arange(len(self.codes))
        return [f"design_{i + 1}" for i in idx]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def strings(self) -> list[str]:
        from gengen.io.sequences import decode_codes

        return decode_codes(self.codes)

    def descriptions(self) -> list[str]:
        from gengen.dna.designer.objectives import column_names

        cols = column_names(self.objectives) if self.multi else []
        out = []
        for i, s in enumerate(self.scores):
            if self.multi:
                d = f"combined={self.combined[i]:.4f} " + " ".join(
                    f"{c.removeprefix('score_')}={v:.4f}" for c, v in zip(cols, self.objective_scores[i])
                )
            else:
                d = f"score={s:.4f}"
            if self.hit_start is not None:
                d += f" hit={int(self.hit_start[i]) + 1}{'+-'[int(self.hit_strand[i])]}"
            if self.edits is not None:
                d += f" edits={int(self.edits[i])} from={self.start_ids[i]}"
            out.append(d + f" method={self.method}")
        return out

    def table(self) -> pd.DataFrame:
        """Per-sequence table: id, sequence, one score column per objective (``score`` when there is one,
        else ``score_<name>`` each and ``combined``), best hit (1-based start, strand, bases), start id
        and edits (``--from``), GC, then any :attr:`annotations` (``dna-design --annotate``: JASPAR hits)."""
        import pandas as pd

        from gengen.dna.designer.objectives import column_names
        from gengen.io.sequences import gc_content

        seqs = self.strings()
        df = pd.DataFrame({"id": self.ids, "sequence": seqs})
        if self.multi:
            for col, values in zip(column_names(self.objectives), self.objective_scores.T):
                df[col] = values
            df["combined"] = self.combined
        else:
            df["score"] = self.scores
        if self.max_score:
            df["fraction_of_max"] = self.scores / self.max_score
        if self.hit_start is not None:
            w = self.motif_width
            df["hit_start"] = self.hit_start + 1
            df["hit_strand"] = np.where(self.hit_strand == 0, "+", "-")
            df["hit_sequence"] = [s[p : p + w] for s, p in zip(seqs, self.hit_start)]
        if self.edits is not None:
            from gengen.io.sequences import decode_codes

            df["start_id"] = self.start_ids
            df["start_sequence"] = decode_codes(self.start_codes)
            df["edits"] = self.edits
            if self.multi:
                for col, values in zip(column_names(self.objectives), self.initial_objective_scores.T):
                    df[f"start_{col}"] = values
            else:
                df["start_score"] = self.initial_scores
        df["gc"] = gc_content(self.codes)
        for column, values in self.annotations.items():
            df[column] = list(values)
        return df

    def motif_counts(self) -> np.ndarray:
        """The designed motif as a ``(4, W)`` count matrix: the designs' best hits aligned (reverse-
        complemented on the - strand, as in the figure's logo) when a motif is known, else every
        position of the designs."""
        if self.hit_start is not None:
            from gengen.dna.designer.figures import aligned_hit_frequencies

            return aligned_hit_frequencies(self.codes, self.hit_start, self.hit_strand, width=self.motif_width)
        return np.stack([(self.codes == b).sum(axis=0) for b in range(4)]).astype(np.float64)

    def hits_bed(self):
        """The designs' best motif hits as a BED6 table (0-based, half-open; the design id as chrom), or
        None without a motif; see :mod:`gengen.io.bed`."""
        if self.hit_start is None or self.pwm is None:
            return None
        from gengen.dna.predictor.predictors import PWMPredictor
        from gengen.io.bed import hits_bed

        frac = None
        if self.pwm.max_score > 0:
            frac = PWMPredictor(self.pwm).scan(self.codes)["score"] / self.pwm.max_score
        return hits_bed(self.ids, self.hit_start, self.hit_strand, width=self.motif_width, name=self.pwm.name,
                        fraction_of_max=frac)

    def records(self):
        """Biopython SeqRecords with the score (and hit) in each description."""
        from gengen.io.sequences import to_records

        return to_records(self.ids, self.strings(), self.descriptions())

    def summary(self) -> dict:
        """Mean/min/max one-hot score, fraction of the maximum, steps to reach 99 %, diversity; per
        objective means with several; edits and score gained per edit with start sequences."""
        from gengen.dna.designer.objectives import column_names
        from gengen.dna.metrics import hamming_diversity, hit_mask

        s = {
            "n": int(len(self.codes)),
            "length": int(self.codes.shape[1]),
            "method": self.method,
            "target": self.target,
            "score_mean": float(self.scores.mean()) if len(self.scores) else float("nan"),
            "score_min": float(self.scores.min()) if len(self.scores) else float("nan"),
            "score_max": float(self.scores.max()) if len(self.scores) else float("nan"),
            "initial_score_mean": float(self.initial_scores.mean()) if len(self.scores) else float("nan"),
            "dropped": int(self.dropped),
        }
        if self.max_score and len(self.scores):
            s["max_possible"] = self.max_score
            s["fraction_of_max"] = s["score_mean"] / self.max_score
            h = self.history
            reached = h.loc[h["onehot_mean"] >= 0.99 * self.max_score, "step"]
            s["steps_to_99pct"] = int(reached.iloc[0]) if len(reached) else None
        if not isinstance(self.target, str) and len(self.scores):
            s["target_abs_error_mean"] = float(np.abs(self.scores - float(self.target)).mean())
        if self.multi and len(self.scores):
            for col, o, v, v0 in zip(column_names(self.objectives), self.objectives, self.objective_scores.T,
                                     self.initial_objective_scores.T):
                s[f"{col}_mean"], s[f"{col}_initial_mean"] = float(v.mean()), float(v0.mean())
                if not o.is_value:
                    continue
                s[f"{col}_target_abs_error_mean"] = float(np.abs(v - float(o.target)).mean())
            s["combined_mean"] = float(self.combined.mean())
        if self.edits is not None and len(self.edits):
            s["edits_mean"] = float(self.edits.mean())
            s["edits_max"] = int(self.edits.max())
            gain = (self.combined if self.multi else self.scores) - (
                self._initial_combined() if self.multi else self.initial_scores)
            s["gain_mean"] = float(gain.mean())
            s["gain_per_edit"] = float(gain.mean() / self.edits.mean()) if self.edits.mean() > 0 else float("nan")
        s["diversity"] = hamming_diversity(self.codes)
        if self.hit_start is not None and len(self.codes):
            mask = hit_mask(self.codes.shape[1], self.hit_start, self.motif_width)
            s["diversity_outside_hit"] = hamming_diversity(self.codes, exclude=mask)
        s.update(self.settings)
        return s

    def _initial_combined(self) -> np.ndarray:
        import torch

        from gengen.dna.designer.objectives import combined

        cols = [torch.as_tensor(c) for c in self.initial_objective_scores.T]
        return combined(self.objectives, cols).numpy()

    def report(self) -> list[str]:
        """The lines ``dna-design`` prints: scores against the start or random sequences, the consensus
        maximum or the target, edits, diversity, dropped designs, time."""
        from gengen.dna.designer.objectives import column_names

        s = self.summary()
        if not len(self.codes):
            return [f"no design met every constraint ({self.dropped} dropped: {self._reasons()})"]
        start = "start" if self.edits is not None else ("samples" if self.method == "joint" else "random start")
        line = f"{s['n']} sequences ({self.method}, {s.get('steps')} steps): "
        if self.multi:
            parts = []
            for col, o in zip(column_names(self.objectives), self.objectives):
                target = o.target if isinstance(o.target, str) else f"target {o.target:g}"
                part = f"{o.name} ({target}, weight {o.weight:g}) {s[col + '_mean']:.3f} ({start} {s[col + '_initial_mean']:.3f})"
                if o.is_value:
                    part += f", mean |error| {s[col + '_target_abs_error_mean']:.3f}"
                parts.append(part)
            line += "; ".join(parts)
        else:
            line += (f"one-hot score mean {s['score_mean']:.3f} (min {s['score_min']:.3f}, max {s['score_max']:.3f}; "
                     f"{start} {s['initial_score_mean']:.3f})")
            if "max_possible" in s:
                line += f"; {100 * s['fraction_of_max']:.2f}% of the consensus max {s['max_possible']:.3f}"
                if s.get("steps_to_99pct") is not None:
                    line += f", 99% reached at step {s['steps_to_99pct']}"
            if "target_abs_error_mean" in s:
                line += (f"; target {float(s['target']):g}: mean |score - target| {s['target_abs_error_mean']:.3f} "
                         "(closest one-hot sequence per design, then single-base polishing)")
        lines = [line]
        stop = self.stop_line()
        if stop:
            lines.append(stop)
        if self.edits is not None:
            what = "combined objective (sd units)" if self.multi else "score"
            budget = self.settings.get("max_edits")
            lines.append(
                f"edits per design: mean {s['edits_mean']:.2f}, max {s['edits_max']}"
                + (f" of --max-edits {budget}" if budget else "")
                + f"; {what} gained {s['gain_mean']:.3f} on average, {s['gain_per_edit']:.3f} per edit"
                + (f" ({s['greedy_kept']} design(s) from the greedy search from the start, which beat the "
                   "gradient's)" if s.get("greedy_kept") else "")
            )
        div = f"diversity {s['diversity']:.3f}/base"
        if s.get("diversity_outside_hit") is not None and s["diversity_outside_hit"] == s["diversity_outside_hit"]:
            div += f", {s['diversity_outside_hit']:.3f} outside the motif hit"
        lines.append(div + f"; {s['seconds']:.1f} s on {s['device']}")
        if self.dropped:
            lines.append(f"{self.dropped} design(s) could not be made to meet every constraint and were dropped "
                         f"({self._reasons()})")
        return lines

    def stop_line(self) -> str:
        """Why the optimisation stopped when no step count was given ("" when one was)."""
        st = self.settings
        if st.get("stopped") == "plateau":
            tol = st["plateau_tolerance"]
            return (f"stopped on a plateau at step {st['steps']} of at most {st['max_steps']}: the mean one-hot "
                    f"objective rose by less than {tol:g} x max(1, |its value|) (standardised units) over the last "
                    f"{st['plateau_steps']} steps; the designs are those of --steps {st['steps']} (--steps N runs "
                    "exactly N steps)")
        if st.get("stopped") == "max_steps":
            # Said from the plateau rule's own record, so a flat score is never reported as rising.
            cap, window, rise = st["max_steps"], st["plateau_steps"], st.get("last_rise")
            head = f"ran the most steps without --steps ({cap})"
            if rise is None or rise >= cap:
                return f"{head} and the score was still rising; --max-steps or --steps N runs longer"
            if cap - rise >= window:
                return f"{head}; the score had levelled off (no rise over the last {cap - rise} steps)"
            return (f"{head}; the score last rose at step {rise}, {cap - rise} step(s) before the end: too few steps "
                    f"to tell whether it had levelled off (the plateau test waits {window}); --max-steps or "
                    "--steps N runs longer")
        return ""

    def _reasons(self) -> str:
        """The first broken constraint of each dropped design, counted: 'GC out of range: 3, ...'."""
        from collections import Counter

        def kind(reason: str) -> str:
            first = reason.split(";")[0].strip()
            if first.startswith("holds a base"):
                return "a base other than ACGT"
            if first.startswith("holds "):
                return "holds " + first.split()[1]
            if first.startswith("GC "):
                return "GC out of range"
            if "edits >" in first:
                return "over the edit budget"
            return "a fixed position changed" if first.startswith("fixed") else first

        counts = Counter(kind(r) for r in self.drop_reasons)
        return ", ".join(f"{k}: {v}" for k, v in counts.most_common(4)) or "none"

    def write(self, path: str | os.PathLike, title: str | None = None) -> tuple[Path, ...]:
        """Write ``path`` (FASTA, the score in each description), the ``.tsv`` table, the ``.png``
        figure, the designed motif (``.motif.jaspar``) and, when a motif is known, its best hits
        (``.hits.bed``) beside it (see :func:`design_outputs`), each atomically. Returns the paths."""
        from gengen.dna.designer.figures import plot_design
        from gengen.io.bed import write_bed
        from gengen.io.motifs import write_motif
        from gengen.io.sequences import write_fasta
        from gengen.runtime import atomic_path

        bed = self.hits_bed()
        paths = design_outputs(path, motif=True, hits=bed is not None)
        fasta, tsv, png, motif = paths[:4]
        write_fasta(fasta, self.ids, self.strings(), descriptions=self.descriptions())
        with atomic_path(tsv) as tmp:
            self.table().to_csv(tmp, sep="\t", index=False, float_format="%.5g")
        if title is None:
            title = f"{self.method} design toward " + ", ".join(o.name for o in self.objectives)
        plot_design(self, png, pwm=self.pwm, title=title)
        toward = "+".join(o.name for o in self.objectives) or "design"
        write_motif(self.motif_counts(), motif, matrix_id=Path(fasta).name.split(".")[0] or "designed",
                    name=f"designed_toward_{toward}")
        if bed is not None:
            write_bed(bed, paths[4])
        return paths
