"""Readers and writers, one module per kind of thing: expression tables (:mod:`gengen.io.expression`,
one module per format below it: :mod:`~gengen.io.tables`, :mod:`~gengen.io.gct`, :mod:`~gengen.io.geo`,
:mod:`~gengen.io.h5ad`, with :mod:`~gengen.io.formats` recognising them and :mod:`~gengen.io.checks`
checking what they read; ARCHS4 compendia :mod:`gengen.io.archs4`, block reads :mod:`gengen.io.chunked`,
in memory or streamed :mod:`gengen.io.streaming`), sequences (:mod:`gengen.io.sequences`), motifs (:mod:`gengen.io.motifs`), JASPAR
2024 collections (:mod:`gengen.io.jaspar`), motif hits as BED (:mod:`gengen.io.bed`), and the one way inputs are opened (:mod:`gengen.io.files`).

The readers and writers users call are re-exported here, imported on first use (so ``import gengen.io``
stays light):

>>> from gengen.io import read_expression, read_fasta, load_motif
>>> adata = read_expression("expression.tsv")               # AnnData, samples x genes
>>> seqs = read_fasta("probes.fa", length=36)               # SequenceSet: ids, (N, L) codes
>>> pwm = load_motif("MA0139.2")                            # PWM, offline JASPAR
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # expression tables: the readers by format, their shared checks, and the files that come with them
    "read_expression": "expression", "write_expression": "expression", "write_table": "tables",
    "read_gct": "gct", "read_gctx": "gct", "iter_gctx": "gct", "read_series_matrix": "geo",
    "read_gene_list": "annotations", "read_gene_map": "annotations", "attach_annotations": "annotations",
    "validate_expression": "checks",
    # matrices larger than memory: ARCHS4, chunked readers, the in-memory-or-streamed choice
    "open_expression": "streaming", "open_archs4": "archs4", "write_archs4": "archs4", "open_chunked": "chunked",
    "ChunkedExpression": "chunked",
    # sequences
    "SequenceSet": "sequences", "read_fasta": "sequences", "read_fasta_records": "sequences",
    "write_fasta": "sequences", "one_hot": "sequences", "codes_to_one_hot": "sequences",
    "one_hot_to_codes": "sequences", "decode_codes": "sequences",
    # motifs
    "PWM": "motifs", "load_motif": "motifs", "read_motif_file": "motifs", "fetch_jaspar": "motifs",
    "pwm_from_counts": "motifs", "pwm_from_log_odds": "motifs", "write_motif": "motifs",
    # JASPAR 2024 collections (motif matching and annotation)
    "jaspar_database": "jaspar", "MotifDatabase": "jaspar", "JasparChoice": "jaspar",
    # intervals
    "hits_bed": "bed", "write_bed": "bed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"gengen.io.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
