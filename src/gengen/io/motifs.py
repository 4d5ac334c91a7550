"""Motifs in, position weight matrices out: Bio.motifs formats, HOMER, plain tables and offline JASPAR ids.

A motif is given as a file (plain or gzipped) or as a JASPAR matrix id such as ``MA0139.2``, resolved
offline from the JASPAR database bundled with ``pyjaspar`` (no network). Files are read in the format
detected from their content, or forced with ``fmt`` (``--motif-format``):

- Bio.motifs formats: ``jaspar`` (``A [ ... ]`` rows), ``minimal`` (the MEME text JASPAR serves;
  ``meme`` is an alias), ``transfac``, ``sites`` (aligned sites, one per line, or JASPAR's FASTA);
- ``homer``: ``>consensus<TAB>name<TAB>threshold...`` headers, one row of probabilities per position;
- ``pfm``: any plain table people write by hand or export: positions x 4 or 4 x positions, with or
  without a header row (``A C G T`` in any order, any case, ``U`` for ``T``) or row labels
  (``A:``, ``a |``), a leading position-index column (or index row), ``#`` comments (a commented
  ``# A C G T`` counts as the header), ``>name`` lines (several motifs per file), separated by
  whitespace, tabs, commas or semicolons. ``pfm-four-columns`` / ``pfm-four-rows`` (Biopython's names)
  force positions x 4 / 4 x positions where labels do not say; a table that stays ambiguous (4 x 4
  without labels) is an error asking for one of them.

What the numbers are is read from them, and said (:attr:`PWM.layout`):

- **counts** (non-negative, a position may sum to a different total, as in gapped JASPAR matrices);
- **probabilities** (every value <= 1, each position summing to 1; a table whose values look like
  probabilities but whose positions do not sum to 1 is an error) and **percentages** (each position
  summing to 100): read as the frequencies of ``FREQUENCY_SITES`` = 100 sites, since one site per
  position would let the pseudocount flatten the motif;
- **log-odds** (any negative value): used as the scoring matrix exactly as written (its unit is the
  file's: bits if it holds log2 ratios), with no pseudocount and no background applied.

Scoring convention (documented because scores depend on it): counts ``c`` per column with ``n``
sequences, background ``b`` (uniform 0.25 unless given) and a total pseudocount ``a`` per column
(default 1.0, spread by the background), give ``p = (c + a*b) / (n + a)`` and log-odds
``log2(p / b)`` in bits. A sequence's score is the best window sum over positions and both strands;
the best achievable score is the sum of the column maxima (the consensus).

What "the same motif" means across layouts follows: every counts layout of a matrix gives the same
log-odds (and scores) as the matrix itself; every probability or percentage layout gives the same
log-odds as its counts scaled to 100 sites (a probability table does not say how many sites it came
from, so it cannot reproduce a count matrix's pseudocount exactly); a log-odds table gives exactly
its own numbers, so a PWM's :attr:`PWM.log_odds` written out and read back scores identically.
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
from gengen.io.files import check_input, read_bytes
from gengen.runtime import log

TABLE_FORMATS = ("pfm", "pfm-four-columns", "pfm-four-rows", "homer")  # read here; the rest by Bio.motifs
FORMATS = ("jaspar", "minimal", "meme", "transfac", *TABLE_FORMATS, "sites")
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
    layout: str = ""  # how the file was read: orientation, labels, what the numbers were taken to be

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


def _background(background) -> np.ndarray:
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg <= 0).any():
        raise GengenError("background must be 4 positive numbers (A, C, G, T).")
    return bg / bg.sum()


def pwm_from_counts(
    counts: np.ndarray,
    name: str = "motif",
    background=None,
    *,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    source: str = "",
    layout: str = "",
) -> PWM:
    """Build a :class:`PWM` from a ``(4, W)`` count (or frequency) matrix, rows A, C, G, T.

    Parameters
    ----------
    counts : non-negative ``(4, W)`` counts; each column needs some.
    name : the motif's name, as printed.
    background : base frequencies A, C, G, T (default uniform).
    pseudocount : total pseudocount per column, spread by the background (see the module docstring).
    source, layout : where the matrix came from and how it was read (printed with the motif).

    Returns
    -------
    PWM with ``log_odds = log2(p / b)``, ``p = (c + a*b) / (n + a)``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] < 1:
        raise GengenError(
            f"motif {name!r}: expected a 4 x width matrix (A, C, G, T rows), got shape {counts.shape}."
        )
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise GengenError(f"motif {name!r}: counts must be finite and non-negative.")
    if (counts.sum(axis=0) <= 0).any():
        raise GengenError(f"motif {name!r}: a column has no counts at all.")
    bg = _background(background)
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
    return PWM(name=name, counts=counts, log_odds=lo, background=bg, pseudocount=pseudocount, source=source,
               layout=layout)


def pwm_from_log_odds(
    log_odds: np.ndarray, name: str = "motif", background=None, *, source: str = "", layout: str = ""
) -> PWM:
    """A :class:`PWM` that scores with ``log_odds`` (``(4, W)``, rows A, C, G, T) exactly as given.

    No pseudocount or background is applied to the scores. ``counts`` (for logos) are the implied
    frequencies ``b * 2**log_odds``, normalised per position, of :data:`FREQUENCY_SITES` sites: exact
    when the table holds log2 ratios to ``background``, a fair picture otherwise.
    """
    lo = np.asarray(log_odds, dtype=np.float64)
    if lo.ndim != 2 or lo.shape[0] != 4 or lo.shape[1] < 1:
        raise GengenError(f"motif {name!r}: expected a 4 x width log-odds matrix, got shape {lo.shape}.")
    if not np.isfinite(lo).all():
        raise GengenError(f"motif {name!r}: log-odds must be finite numbers.")
    bg = _background(background)
    with np.errstate(over="ignore"):
        implied = bg[:, None] * np.exp2(np.clip(lo, -60, 60))
    implied /= implied.sum(axis=0, keepdims=True)
    return PWM(name=name, counts=implied * FREQUENCY_SITES, log_odds=lo, background=bg, pseudocount=0.0,
               source=source, layout=layout)


def _bio_counts(motif) -> np.ndarray:
    return np.array([list(motif.counts[b]) for b in "ACGT"], dtype=np.float64)


_TRANSFAC_MARKERS = ("ID ", "AC ", "XX", "DE ", "BF ", "//")


def detect_format(text: str) -> str:
    """Guess the format of a motif file from its content (one of :data:`FORMATS`)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise GengenError("the motif file is empty.")
    if lines[0].startswith("MEME version"):
        return "minimal"
    head = lines[:40]
    if any(ln.startswith(_TRANSFAC_MARKERS) for ln in head) and any(ln.startswith(("P0", "PO")) for ln in lines):
        return "transfac"
    if any("[" in ln for ln in lines[:10]):
        return "jaspar"
    if lines[0].startswith(">") and _is_homer_header(lines[0]):
        return "homer"
    body = [ln for ln in lines if not ln.startswith((">", "#"))]
    if body and all(re.fullmatch(r"[ACGTacgt]+", ln) for ln in body):
        return "sites"
    return "pfm"


def _is_homer_header(line: str) -> bool:
    """HOMER's ``>consensus<TAB>name<TAB>log-odds threshold[...]`` (a JASPAR .pfm header has no number)."""
    fields = line[1:].split("\t")
    return len(fields) >= 3 and _NUMBER.fullmatch(fields[2].strip()) is not None


# ------------------------------------------------------------------ plain tables

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)
_BASE = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}
_IUPAC = set("ACGTUNRYSWKMBDHV")
_TOKEN_SPLIT = re.compile(r"[\s,;|]+")
SUM_TOLERANCE = 0.03  # relative: probabilities rounded to 2 decimals can sum to 0.98..1.02


@dataclass
class _Row:
    label: str | None  # a base letter (A/C/G/T/U, upper-cased), another word, or None
    values: list[float]
    line: str


@dataclass
class _Block:
    """One motif of a table file: its ``>`` header (if any), header row (a base order), rows."""

    title: str = ""
    header: list[int] | None = None  # column -> base index, from 'A C G T' in any order
    header_word: bool = False  # the header row starts with a word (pos, PO, index) over an index column
    rows: list[_Row] = field(default_factory=list)


def _tokens(line: str) -> list[str]:
    tokens = _TOKEN_SPLIT.split(line.strip().strip(",;|"))
    return [t.strip("\"'[]:") for t in tokens if t.strip("\"'[]:")]


def _header_order(tokens: list[str]) -> tuple[list[int] | None, bool]:
    """Base order of a header row (``A C G T`` in any order, maybe after a word such as ``pos``)."""
    word = bool(tokens) and tokens[0].upper() not in _BASE and not _NUMBER.fullmatch(tokens[0])
    bases = tokens[1:] if word else tokens
    order = [_BASE.get(t.upper(), -1) for t in bases]
    if len(order) == 4 and sorted(order) == [0, 1, 2, 3] and all(len(t) == 1 for t in bases):
        return order, word
    return None, False


def _parse_row(tokens: list[str], line: str, label: str) -> _Row:
    first = tokens[0]
    row_label = None
    if not _NUMBER.fullmatch(first):
        row_label = first.upper() if first.upper() in _BASE else first
        tokens = tokens[1:]
    if len(tokens) > 4 and len(tokens[-1]) == 1 and tokens[-1].upper() in _IUPAC:
        tokens = tokens[:-1]  # TRANSFAC-style consensus letter closing a row
    if not tokens or not all(_NUMBER.fullmatch(t) for t in tokens):
        bad = next((t for t in tokens if not _NUMBER.fullmatch(t)), first)
        raise GengenError(
            f"motif {label!r}: line {line.strip()[:50]!r} is not a row of numbers ({bad!r}); a table motif holds "
            "one row per position (or per base) with an optional 'A C G T' header, labels, index and # comments."
        )
    return _Row(row_label, [float(t) for t in tokens], line.strip())


def _table_blocks(text: str, label: str) -> list[_Block]:
    """Split a table file into motifs (at ``>`` lines) and classify each line."""
    blocks = [_Block()]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if line.startswith(">"):
            if blocks[-1].rows or blocks[-1].title or blocks[-1].header:
                blocks.append(_Block())
            blocks[-1].title = line[1:].strip()
            continue
        comment = line.startswith("#")
        line = line.lstrip("#").strip() if comment else line.split("#", 1)[0].strip()
        tokens = _tokens(line)
        if not tokens:
            continue
        order, word = _header_order(tokens)
        if order is not None:
            if blocks[-1].header is not None and not comment:
                raise GengenError(f"motif {label!r}: two header rows ({line[:40]!r}); one 'A C G T' row per motif.")
            if blocks[-1].header is None:
                blocks[-1].header, blocks[-1].header_word = order, word
            continue
        if comment:
            continue
        blocks[-1].rows.append(_parse_row(tokens, line, label))
    blocks = [b for b in blocks if b.rows]
    if not blocks:
        raise GengenError(f"motif {label!r}: no rows of numbers found; not a motif table.")
    return blocks


def _is_index(values: list[float]) -> bool:
    """A position index: consecutive integers from 0 or 1."""
    v = np.asarray(values)
    return len(v) > 1 and v[0] in (0, 1) and np.array_equal(v, v[0] + np.arange(len(v)))


_AMBIGUOUS = ("add a header row 'A C G T' (one row per position) or labels A, C, G, T at the start of the rows, "
              "or pass --motif-format pfm-four-columns (one row per position) or pfm-four-rows (one row per base)")


def _block_matrix(block: _Block, label: str, orientation: str | None) -> tuple[np.ndarray, str]:
    """(4, W) matrix in A, C, G, T order and a words description of the layout read."""
    rows = block.rows
    based = [r for r in rows if r.label in _BASE]
    if based:  # 4 x positions, rows labelled by base
        if orientation == "columns":
            raise GengenError(f"motif {label!r}: rows are labelled by base, so it is 4 x positions; "
                              "--motif-format pfm-four-columns contradicts that (use pfm or pfm-four-rows).")
        others = [r for r in rows if r.label not in _BASE]
        if len(others) == 1 and rows[0] is others[0] and _is_index(others[0].values):
            others = []  # a position-number row ('1 2 3 ...' or 'pos 1 2 3 ...') above the labelled rows
        bases = [_BASE[r.label] for r in based]
        if others or sorted(bases) != [0, 1, 2, 3]:
            raise GengenError(
                f"motif {label!r}: labelled rows must be exactly A, C, G and T once each (found "
                f"{', '.join(r.label for r in based)}{' and unlabelled rows' if others else ''})."
            )
        widths = {len(r.values) for r in based}
        if len(widths) != 1:
            raise GengenError(f"motif {label!r}: the A, C, G, T rows have different lengths ({sorted(widths)}).")
        m = np.zeros((4, widths.pop()))
        for r in based:
            m[_BASE[r.label]] = r.values
        order = "".join(r.label for r in based)
        return m, f"4 x positions, rows labelled {' '.join(order)}"
    widths = {len(r.values) for r in rows}
    if len(widths) != 1:
        raise GengenError(f"motif {label!r}: rows of a table motif must all hold the same number of values, found "
                          f"{preview(sorted(widths))}.")
    width = widths.pop()
    m = np.array([r.values for r in rows], dtype=np.float64)
    if block.header is not None:  # positions x 4 under an 'A C G T' header (any order)
        if orientation == "rows":
            raise GengenError(f"motif {label!r}: the 'A C G T' header makes it positions x 4; --motif-format "
                              "pfm-four-rows contradicts that (use pfm or pfm-four-columns).")
        what = "positions x 4"
        if width == 5:
            m, what = m[:, 1:], what + ", position column dropped"
        elif width != 4:
            raise GengenError(f"motif {label!r}: under the 'A C G T' header each row needs 4 values (or a position "
                              f"and 4), found {width}.")
        out = np.zeros((4, m.shape[0]))
        for col, base in enumerate(block.header):
            out[base] = m[:, col]
        header = " ".join("ACGT"[b] for b in block.header)
        return out, f"{what}, header {header}"
    named = any(r.label is not None for r in rows)  # rows named by position (p1, pos1, ...)
    n_rows = m.shape[0]
    if orientation is None and named:
        orientation = "columns"
    if orientation is None:
        if width == 5 and n_rows != 4 and _is_index(m[:, 0]):
            return m[:, 1:].T, "positions x 4, position column dropped"
        if n_rows == 5 and width != 4 and _is_index(m[0]):
            return m[1:], "4 x positions, position row dropped"
        if n_rows == 4 and width == 4:
            raise GengenError(f"motif {label!r}: a 4 x 4 table without labels can be read either way; {_AMBIGUOUS}.")
        if (n_rows == 4) == (width == 4) or (n_rows == 5 and width == 5):
            raise GengenError(f"motif {label!r}: a {n_rows} x {width} table is neither positions x 4 nor 4 x "
                              f"positions; {_AMBIGUOUS}.")
        orientation = "rows" if n_rows == 4 else "columns"
    if orientation == "columns":
        if width == 5 and _is_index(m[:, 0]):
            return m[:, 1:].T, "positions x 4, position column dropped"
        if width != 4:
            raise GengenError(f"motif {label!r}: one row per position needs 4 values (A, C, G, T) per row, found {width}.")
        return m.T, "positions x 4, columns A C G T"
    if n_rows == 5 and _is_index(m[0]):
        return m[1:], "4 x positions, position row dropped"
    if n_rows != 4:
        raise GengenError(f"motif {label!r}: one row per base needs 4 rows (A, C, G, T), found {n_rows}.")
    return m, "4 x positions, rows A C G T"


def _value_kind(m: np.ndarray, label: str) -> tuple[str, np.ndarray, str]:
    """What a table's numbers are: ('counts'|'frequencies'|'log-odds', matrix to build from, words)."""
    if not np.isfinite(m).all():
        raise GengenError(f"motif {label!r}: the table holds non-finite values (nan or inf).")
    if (m < 0).any():
        return "log-odds", m, "log-odds (negative values), used as the scoring matrix as written"
    sums = m.sum(axis=0)
    if (sums <= 0).any():
        raise GengenError(f"motif {label!r}: position {int(np.argmax(sums <= 0)) + 1} has no counts at all.")
    if m.max() <= 1.0 + 1e-9:
        if np.abs(sums - 1).max() > SUM_TOLERANCE:
            worst = int(np.argmax(np.abs(sums - 1)))
            raise GengenError(
                f"motif {label!r}: values between 0 and 1 look like probabilities, but the positions sum to "
                f"{sums.min():.3g}..{sums.max():.3g} (position {worst + 1}: {sums[worst]:.3g}), not 1 each; fix the "
                "table, or give counts."
            )
        return "frequencies", m / sums, f"probabilities, read as {FREQUENCY_SITES} sites"
    if np.abs(sums / 100 - 1).max() <= SUM_TOLERANCE and not np.allclose(m, np.round(m)):
        return "frequencies", m / sums, f"percentages, read as {FREQUENCY_SITES} sites"
    n = f"{sums.min():.0f}" if np.ptp(sums) < 0.5 else f"{sums.min():.0f}..{sums.max():.0f}"
    return "counts", m, f"counts ({n} sites)"


def _read_table(text: str, label: str, fmt: str, name: str | None, quiet: bool):
    """The chosen motif of a table file: (name, kind, (4, W) matrix, layout words)."""
    orientation = {"pfm-four-columns": "columns", "homer": "columns", "pfm-four-rows": "rows"}.get(fmt)
    blocks = _table_blocks(text, label)
    titles = [b.title or f"#{i + 1}" for i, b in enumerate(blocks)]
    chosen = 0
    if name is not None:
        match = [i for i, b in enumerate(blocks) if name == b.title or name in b.title.replace("\t", " ").split()
                 or (fmt == "homer" and name in b.title.split("\t"))]
        if not match:
            raise GengenError(f"motif file {label!r} has no motif named {name!r} (it holds {preview(titles)}).")
        chosen = match[0]
    elif len(blocks) > 1:
        log(f"note: {label} holds {len(blocks)} motifs ({preview(titles)}); using the first (--motif-name picks "
            "another)", quiet)
    block = blocks[chosen]
    m, layout = _block_matrix(block, label, orientation)
    kind, values, what = _value_kind(m, label)
    title = block.title
    if fmt == "homer" and "\t" in title:
        title = title.split("\t")[1].strip()
    return " ".join(title.split()), kind, values, f"{fmt} table: {layout}; {what}"


def read_motif_file(
    path: str | os.PathLike,
    fmt: str | None = None,
    name: str | None = None,
    *,
    background=None,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    quiet: bool = False,
) -> PWM:
    """Read one motif from a file, plain or compressed.

    Parameters
    ----------
    path : the motif file.
    fmt : one of :data:`FORMATS`; ``None`` detects it from the content (:func:`detect_format`).
    name : the motif to use when the file holds several (id, name or HOMER name); default the first.
    background, pseudocount : as :func:`pwm_from_counts` (ignored for log-odds tables: used as written).
    quiet : no notes on stderr (several motifs in the file, negative values read as log-odds).

    Returns
    -------
    PWM whose :attr:`PWM.layout` says how the file was read.
    """
    from Bio import motifs

    path = check_input(path, "motif file")
    raw = read_bytes(path, "motif file")
    if b"\x00" in raw[:4096]:
        raise GengenError(f"motif file {str(path)!r} is binary, not a motif text file.")
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise GengenError(f"unknown motif format {fmt!r}; use one of {', '.join(FORMATS)}.")
    else:
        fmt = detect_format(text)
    label = path.name
    if fmt == "meme":
        fmt = "minimal"  # JASPAR's MEME downloads are the minimal format; Biopython's 'meme' is MEME's full output
    if fmt in TABLE_FORMATS:
        title, kind, values, layout = _read_table(text, label, fmt, name, quiet)
        motif_name = title or path.stem
        if kind == "log-odds":
            log(f"note: {label} holds negative values: read as log-odds scores and used as written "
                "(no pseudocount or background applied)", quiet)
            return pwm_from_log_odds(values, name=motif_name, background=background, source=str(path), layout=layout)
        if kind == "frequencies":
            values = values * FREQUENCY_SITES  # as 1 site per column the pseudocount would flatten the motif
        return pwm_from_counts(values, name=motif_name, background=background, pseudocount=pseudocount,
                               source=str(path), layout=layout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "sites" and not text.lstrip().startswith(">"):
                counts = _sites_counts(text, label)
                return pwm_from_counts(counts, name=path.stem, background=background, pseudocount=pseudocount,
                                       source=str(path), layout=f"sites: {counts.sum(axis=0).max():.0f} aligned sites")
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
    n = counts.sum(axis=0)
    sites = f"{n.min():.0f}" if np.ptp(n) < 0.5 else f"{n.min():.0f}..{n.max():.0f}"
    return pwm_from_counts(counts, name=str(label).strip(), background=background, pseudocount=pseudocount,
                           source=str(path), layout=f"{fmt} format, counts of {sites} sites")


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
    matrix_id: str, background=None, *, pseudocount: float = DEFAULT_PSEUDOCOUNT, quiet: bool = False
) -> PWM:
    """A JASPAR matrix by id (``MA0139.2``; without version, the latest) from pyjaspar's bundled database."""
    try:
        from pyjaspar import jaspardb
    except ImportError:  # pragma: no cover - a declared dependency
        raise GengenError(
            "JASPAR ids need the 'pyjaspar' package; install it or give a motif file."
        ) from None
    from gengen.io.jaspar import release_name

    matrix_id = matrix_id.upper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = jaspardb()
        motif = db.fetch_motif_by_id(matrix_id)
    if motif is not None and "." not in matrix_id:
        log(f"note: {matrix_id} is {motif.matrix_id}, the latest version in {release_name(getattr(db, 'release', 'JASPAR'))}", quiet)
    if motif is None:
        raise GengenError(
            f"JASPAR id {matrix_id!r} is not in the bundled database ({release_name(getattr(db, 'release', 'JASPAR'))}); "
            "check the id (e.g. MA0139.2 for CTCF) or give a motif file."
        )
    label = f"{motif.matrix_id} {motif.name}"
    counts = _bio_counts(motif)
    n = counts.sum(axis=0)
    sites = f"{n.min():.0f}" if np.ptp(n) < 0.5 else f"{n.min():.0f}..{n.max():.0f}"
    return pwm_from_counts(
        counts,
        name=label,
        background=background,
        pseudocount=pseudocount,
        source=f"{release_name(getattr(db, 'release', 'JASPAR'))} (pyjaspar)",
        layout=f"JASPAR counts of {sites} sites",
    )


def load_motif(
    spec: str | os.PathLike,
    fmt: str | None = None,
    name: str | None = None,
    *,
    background=None,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    quiet: bool = False,
) -> PWM:
    """A motif from a file path or a JASPAR id; a path that exists wins over an id-looking string.

    See :func:`read_motif_file` for the parameters and the layouts files may have.

    Parameters
    ----------
    spec : a JASPAR id (e.g. ``MA0139.2``) or a motif file.
    fmt : the file's format (default: detect).
    name : which motif of a file with several.
    background : base frequencies for the log-odds (default uniform).
    pseudocount : added to counts before the log-odds.
    quiet : no notes on how the motif was read (which of several, a JASPAR id's version).

    Returns
    -------
    The :class:`PWM`.
    """
    s = str(spec)
    if Path(s).exists():
        return read_motif_file(s, fmt=fmt, name=name, background=background, pseudocount=pseudocount, quiet=quiet)
    if JASPAR_ID.match(s.upper()):
        return fetch_jaspar(s, background=background, pseudocount=pseudocount, quiet=quiet)
    if os.sep in s or "/" in s or re.search(r"\.[A-Za-z][A-Za-z0-9]{0,7}$", s):  # looks like a file name
        raise GengenError(f"motif file {s!r} does not exist (and it is not a JASPAR matrix id like MA0139.2).")
    raise GengenError(f"motif {s!r} is neither an existing file nor a JASPAR matrix id like MA0139.2{_jaspar_by_name(s)}.")


def _jaspar_by_name(name: str) -> str:
    """A hint for a factor name typed where a motif goes (``--motif CTCF``): JASPAR's matrices of that
    name, so the user can pick one (several species and versions often share a name, so none is guessed)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9:_-]{0,40}", name):
        return ""  # a path or a file name: the "no such file" message is the useful one
    from gengen.io.jaspar import release_name

    try:
        from pyjaspar import jaspardb

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            db = jaspardb()
            found = db.fetch_motifs_by_name(name) or []
    except Exception:  # noqa: BLE001 - only a hint; the error above stands without it
        return ""
    if not found:
        return ""
    found = sorted(found, key=lambda m: (m.tax_group != "vertebrates", m.matrix_id))[:6]
    listed = ", ".join(f"{m.matrix_id} ({m.tax_group}, {m.length} bp)" for m in found)
    return (f"; {release_name(getattr(db, 'release', 'JASPAR'))} has {found[0].name} as {listed}: "
            f"give one of these ids, e.g. --motif {found[0].matrix_id}")


def write_motif(counts: np.ndarray, path: str | os.PathLike, *, matrix_id: str = "gengen", name: str = "motif") -> str:
    """Write a ``(4, W)`` count matrix (rows A, C, G, T) as a JASPAR file, with Biopython's own writer.

    ``Bio.motifs.read(handle, "jaspar")``, JASPAR's tools, the MEME suite's ``jaspar2meme`` and
    ``--motif`` here read it back. Ids and names lose their whitespace (JASPAR headers are
    ``>ID NAME``). Written atomically; returns the path.
    """
    from Bio.motifs import jaspar

    from gengen.runtime import atomic_path

    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 4 or counts.shape[1] == 0:
        raise GengenError(f"a motif needs a (4, width) count matrix, got shape {counts.shape}.")
    motif = jaspar.Motif("_".join(str(matrix_id).split()) or "gengen", "_".join(str(name).split()) or "motif",
                         counts={b: list(counts[i]) for i, b in enumerate("ACGT")})
    with atomic_path(path) as tmp:
        Path(tmp).write_text(format(motif, "jaspar"))
    return str(path)
