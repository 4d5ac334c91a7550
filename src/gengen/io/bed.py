"""Motif hits as BED, the interval format genome browsers, bedtools and pandas read.

BED is 0-based and half-open: a hit whose first base is position 1 of a sequence (as gengen prints
positions everywhere else) starts at 0 and ends at its width. The sequence id is the chromosome name,
so the file lines up with the FASTA the hits were found in (``samtools faidx``, IGV with that FASTA
loaded as the genome). The score column holds BED's 0-1000 integer: the hit's share of the motif's
best possible score (the consensus) times 1000, clipped at 0; the exact log-odds score is in the TSV
beside it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

BED_COLUMNS = ("chrom", "chromStart", "chromEnd", "name", "score", "strand")


def hits_bed(ids, starts, strands, *, width: int, name: str, fraction_of_max=None) -> pd.DataFrame:
    """A BED6 table of best hits, one row per sequence that has one.

    Parameters
    ----------
    ids : sequence ids (the chrom column).
    starts : 0-based hit starts; negative (or NaN) where a sequence has no hit (left out).
    strands : 0 / 1 or "+" / "-" per sequence.
    width : the motif's width.
    name : the name column (the motif's name; BED names hold no whitespace, so it is replaced).
    fraction_of_max : the hit's score over the motif's best possible score, per sequence (the score column).

    Returns
    -------
    DataFrame with the columns of :data:`BED_COLUMNS`, in input order.
    """
    import pandas as pd

    starts = pd.array(starts, dtype="Int64")
    keep = np.asarray((~starts.isna()) & (starts.fillna(-1) >= 0), dtype=bool)
    ids = np.asarray(list(ids), dtype=object)[keep]
    start = np.asarray(starts[keep], dtype=np.int64)
    strand = np.asarray(list(strands), dtype=object)[keep]
    strand = np.where((strand == 1) | (strand == "-"), "-", "+")
    if fraction_of_max is None:
        score = np.zeros(len(start), dtype=np.int64)
    else:
        frac = np.nan_to_num(np.asarray(fraction_of_max, dtype=np.float64)[keep], nan=0.0)
        score = np.clip(np.round(1000 * frac), 0, 1000).astype(np.int64)
    label = "_".join(str(name).split()) or "hit"
    return pd.DataFrame({"chrom": ids, "chromStart": start, "chromEnd": start + int(width), "name": label,
                         "score": score, "strand": strand}, columns=list(BED_COLUMNS))


def write_bed(table: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write a BED table atomically: tab-separated, no header (as BED is). Returns the path."""
    from gengen.runtime import atomic_path

    with atomic_path(path) as tmp:
        table.loc[:, list(BED_COLUMNS)].to_csv(tmp, sep="\t", header=False, index=False)
    return str(path)
