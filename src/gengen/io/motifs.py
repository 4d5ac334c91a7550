"""Motifs in, position weight matrices out: Bio.motifs formats and offline JASPAR ids.

A motif is given as a file in any format Bio.motifs reads (``jaspar``, ``minimal`` — the MEME text
that JASPAR serves —, ``transfac``, ``pfm``, ``sites``; detected from the content or forced), or as a
JASPAR matrix id such as ``MA0139.2`` resolved offline from the JASPAR database bundled with
``pyjaspar`` (no network).

Scoring convention (documented because scores depend on it): counts ``c`` per column with ``n``
sequences, background ``b`` (uniform 0.25 unless given) and a total pseudocount ``a`` per column
(default 1.0, spread by the background), give ``p = (c + a*b) / (n + a)`` and log-odds
``log2(p / b)`` in bits. A sequence's score is the best window sum over positions and both strands;
the best achievable score is the sum of the column maxima (the consensus).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gengen.errors import GengenError, preview
from gengen.runtime import log

FORMATS = ("jaspar", "minimal", "meme", "transfac", "pfm", "sites")
FREQUENCY_SITES = 100  # sites assumed behind a frequency matrix (columns summing to 1)
JASPAR_ID = re.compile(r"^[A-Z]{2}\d{4}(\.\d+)?$")
DEFAULT_PSEUDOCOUNT = 1.0


@dataclass
class PWM:
    """A position weight matrix: ``counts`` and ``log_odds`` are ``(4, W)`` arrays (rows A, C, G, T)."""

    name: str
    counts: np.ndarray
    log_odds: np.ndarray
    background: np.ndarray = field(default_factory=lambda: np.full(4, 0.25))
    pseudocount: float = DEFAULT_PSEUDOCOUNT
    source: str = ""

    @property
    def length(self) -> int:
        return int(self.log_odds.shape[1])

    @property
    def max_score(self) -> float:
        """Best achievable score: the sum of column maxima (the consensus sequence's score)."""
        return float(self.log_odds.max(axis=0).sum())

    @property
    def min_score(self) -> float:
        return float(self.log_odds.min(axis=0).sum())

    @property
    def consensus(self) -> str:
        return "".join("ACGT"[i] for i in self.log_odds.argmax(axis=0))

    def probabilities(self) -> np.ndarray:
        """Column frequencies with pseudocounts, ``(4, W)``."""
        n = self.counts.sum(axis=0, keepdims=True)
        a = self.pseudocount
        return (self.counts + a * self.background[:, None]) / (n + a)

    def check_fits(self, length: int) -> None:
        """A motif longer than the sequences cannot be matched: say so instead of scoring nothing."""
        if self.length > length:
            raise GengenError(
                f"motif {self.name!r} is {self.length} bp long but the sequences are {length} bp; "
                f"use --length {self.length} or more."
            )


def pwm_from_counts(
    counts: np.ndarray,
    name: str = "motif",
    background=None,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    source: str = "",
) -> PWM:
    """Build a :class:`PWM` from a ``(4, W)`` count (or frequency) matrix."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] < 1:
        raise GengenError(
            f"motif {name!r}: expected a 4 x width matrix (A, C, G, T rows), got shape {counts.shape}."
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise GengenError(f"motif {name!r}: counts must be finite and non-negative.")
    if (counts.sum(axis=0) <= 0).any():
        raise GengenError(f"motif {name!r}: a column has no counts at all.")
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg <= 0).any():
        raise GengenError("background must be 4 positive numbers (A, C, G, T).")
    bg = bg / bg.sum()
    if pseudocount < 0:
        raise GengenError(f"pseudocount must be non-negative, got {pseudocount}.")
    n = counts.sum(axis=0, keepdims=True)
    p = (counts + pseudocount * bg[:, None]) / (n + pseudocount)
    with np.errstate(divide="ignore"):
        lo = np.log2(p / bg[:, None])
    if not np.isfinite(lo).all():
        raise GengenError(
            f"motif {name!r} has zero counts and pseudocount 0: its log-odds are infinite; use a pseudocount."
        )
    return PWM(name=name, counts=counts, log_odds=lo, background=bg, pseudocount=pseudocount, source=source)


def _bio_counts(motif) -> np.ndarray:
    return np.array([list(motif.counts[b]) for b in "ACGT"], dtype=np.float64)


def detect_format(text: str) -> str:
    """Guess the Bio.motifs format of a motif file from its content."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise GengenError("the motif file is empty.")
    if lines[0].startswith("MEME version"):
        return "minimal"
    if any(ln.startswith(("ID ", "P0", "PO ", "XX", "AC ", "DE ")) for ln in lines[:40]):
        return "transfac"
    if any("[" in ln for ln in lines[:10]):
        return "jaspar"
    body = [ln for ln in lines if not ln.startswith((">", "#"))]
    if body and all(re.fullmatch(r"[ACGTacgt]+", ln) for ln in body):
        return "sites"
    return "pfm"


def _read_numeric(text: str, name: str) -> np.ndarray:
    """A plain count matrix: 4 rows (A, C, G, T) x positions, or positions x 4 (transposed here).

    Rows may start with a base letter; lines starting with ``>`` or ``#`` are headers.
    """
    rows = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith((">", "#")):
            continue
        tokens = ln.replace("[", " ").replace("]", " ").split()
        if tokens and tokens[0].upper() in ("A", "C", "G", "T", "A:", "C:", "G:", "T:"):
            tokens = tokens[1:]
        try:
            rows.append([float(t) for t in tokens])
        except ValueError:
            raise GengenError(
                f"motif {name!r}: line {ln[:40]!r} is not a row of numbers; not a PFM."
            ) from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise GengenError(f"motif {name!r}: rows of a PFM must all have the same number of values.")
    m = np.array(rows)
    if m.shape[0] == 4:
        return m
    if m.shape[1] == 4:
        return m.T
    raise GengenError(
        f"motif {name!r}: a PFM must be 4 rows x positions or positions x 4 columns, got {m.shape}."
    )


def read_motif_file(
    path: str | os.PathLike,
    fmt: str | None = None,
    name: str | None = None,
    background=None,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    quiet: bool = False,
) -> PWM:
    """Read one motif from a file (the first, or the one whose id/name is ``name``); notes on stderr
    (frequencies read, several motifs in the file) unless ``quiet``."""
    from Bio import motifs

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GengenError(f"cannot read motif file {str(path)!r}: {exc}.") from None
    if b"\x00" in raw[:4096]:
        raise GengenError(f"motif file {str(path)!r} is binary, not a motif text file.")
    text = raw.decode("utf-8", errors="replace")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise GengenError(f"unknown motif format {fmt!r}; use one of {', '.join(FORMATS)}.")
    else:
        fmt = detect_format(text)
    label = path.name
    if fmt == "meme" and not text.lstrip().startswith("MEME version"):
        fmt = "minimal"
    if fmt == "meme":
        fmt = "minimal"  # JASPAR's MEME downloads are the minimal format; Biopython's 'meme' is MEME's full output
    if fmt == "pfm":
        counts = _read_numeric(text, label)
        if np.allclose(counts.sum(axis=0), 1.0, atol=0.02):
            # frequencies: as 1 site per column the pseudocount would flatten the motif
            counts = counts * FREQUENCY_SITES
            log(f"note: the columns of {label} sum to 1: read as base frequencies of {FREQUENCY_SITES} sites", quiet)
        return pwm_from_counts(
            counts, name=path.stem, background=background, pseudocount=pseudocount, source=str(path)
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "sites" and not text.lstrip().startswith(">"):
                counts = _sites_counts(text, label)
                return pwm_from_counts(
                    counts, name=path.stem, background=background, pseudocount=pseudocount, source=str(path)
                )
            if fmt == "sites":  # JASPAR .sites: FASTA records, the site in uppercase within lowercase flanks
                found = [motifs.read(io.StringIO(text), "sites")]
            else:
                found = list(motifs.parse(io.StringIO(text), fmt))
    except GengenError:
        raise
    except Exception as exc:  # Biopython raises many types on malformed input
        raise GengenError(f"cannot read {str(path)!r} as a {fmt!r} motif file: {exc}.") from None
    if not found:
        raise GengenError(f"{str(path)!r} holds no motif in {fmt!r} format.")
    motif = found[0]
    if name is None and len(found) > 1:
        names = [getattr(m, "matrix_id", None) or m.name or "?" for m in found]
        log(f"note: {label} holds {len(found)} motifs ({preview(names)}); using the first, {names[0]} "
            "(--motif-name picks another)", quiet)
    if name is not None:
        match = [m for m in found if name in (getattr(m, "matrix_id", None), m.name, getattr(m, "id", None))]
        if not match:
            raise GengenError(f"{str(path)!r} has no motif named {name!r}.")
        motif = match[0]
    try:
        counts = _bio_counts(motif)
    except Exception as exc:
        raise GengenError(f"motif in {str(path)!r} is not a DNA motif (A, C, G, T): {exc}.") from None
    if counts.shape[1] == 0 or not np.isfinite(counts).all():
        raise GengenError(f"{str(path)!r}: the motif has no usable columns.")
    label = getattr(motif, "matrix_id", None) or motif.name or path.stem
    if motif.name and motif.name != label:
        label = f"{label} {motif.name}"
    return pwm_from_counts(
        counts, name=str(label).strip(), background=background, pseudocount=pseudocount, source=str(path)
    )


def _sites_counts(text: str, label: str) -> np.ndarray:
    """Counts from aligned sites, one per line (the plain layout; JASPAR's FASTA-style goes to Biopython)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines or len({len(ln) for ln in lines}) != 1:
        raise GengenError(f"motif {label!r}: a sites file needs aligned sites of equal length, one per line.")
    bad = [ln for ln in lines if not re.fullmatch(r"[ACGTacgt]+", ln)]
    if bad:
        raise GengenError(f"motif {label!r}: site {bad[0][:30]!r} has characters other than A, C, G, T.")
    arr = np.array([["ACGT".index(c) for c in ln.upper()] for ln in lines])
    return np.stack([(arr == b).sum(axis=0) for b in range(4)]).astype(np.float64)


def fetch_jaspar(
    matrix_id: str, background=None, pseudocount: float = DEFAULT_PSEUDOCOUNT, quiet: bool = False
) -> PWM:
    """A JASPAR matrix by id (``MA0139.2``; without version, the latest) from pyjaspar's bundled database."""
    try:
        from pyjaspar import jaspardb
    except ImportError:  # pragma: no cover - a declared dependency
        raise GengenError(
            "JASPAR ids need the 'pyjaspar' package; install it or give a motif file."
        ) from None
    matrix_id = matrix_id.upper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = jaspardb()
        motif = db.fetch_motif_by_id(matrix_id)
    if motif is not None and "." not in matrix_id:
        log(f"note: {matrix_id} is {motif.matrix_id}, the latest version in {getattr(db, 'release', 'JASPAR')}", quiet)
    if motif is None:
        raise GengenError(
            f"JASPAR id {matrix_id!r} is not in the bundled database ({getattr(db, 'release', 'JASPAR')}); "
            "check the id (e.g. MA0139.2 for CTCF) or give a motif file."
        )
    label = f"{motif.matrix_id} {motif.name}"
    return pwm_from_counts(
        _bio_counts(motif),
        name=label,
        background=background,
        pseudocount=pseudocount,
        source=f"{getattr(db, 'release', 'JASPAR')} (pyjaspar)",
    )


def load_motif(
    spec: str | os.PathLike,
    fmt: str | None = None,
    name: str | None = None,
    background=None,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    quiet: bool = False,
) -> PWM:
    """A motif from a file path or a JASPAR id; a path that exists wins over an id-looking string."""
    s = str(spec)
    if Path(s).exists():
        return read_motif_file(s, fmt=fmt, name=name, background=background, pseudocount=pseudocount, quiet=quiet)
    if JASPAR_ID.match(s.upper()):
        return fetch_jaspar(s, background=background, pseudocount=pseudocount, quiet=quiet)
    raise GengenError(f"motif {s!r} is neither an existing file nor a JASPAR matrix id like MA0139.2.")
