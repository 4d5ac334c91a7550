"""Hard constraints on designs, their contradictions, and the independent check every design passes.

- ``start`` (``--from``): each design edits one given sequence;
- ``max_edits`` (``--max-edits``): at most this many bases differ from the start (Hamming);
- ``fixed`` (``--fixed 1-24,40-50``): positions (1-based, inclusive) that keep the start's base;
- ``avoid`` (``--avoid GAATTC,GGTCTC``): IUPAC patterns that may not occur on either strand;
- ``gc`` (``--gc 0.4-0.6``): the fraction of G + C, bounds included.

:meth:`Constraints.check` refuses constraints that contradict each other before any work (a fixed
region holding an avoided pattern, a GC range no sequence of the length meets or that the fixed bases
rule out, avoided patterns no sequence can escape, a budget of 0 edits...). :func:`verify` is the
final word on every design: written with Python strings and regular expressions, it shares no code
with the optimiser (:mod:`gengen.dna.designer.design`, :mod:`gengen.dna.designer.greedy`) that tries to meet them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gengen.errors import GengenError, preview

IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
    "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}
_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M",
               "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "N": "N"}
DP_MAX_STATES = 4**7  # exact avoidability check for patterns up to 8 bases
DP_MAX_WORK = 2**28  # states x length x G+C counts of the exact check with a GC range (~1 s); beyond: bounds


def reverse_complement(pattern: str) -> str:
    """Reverse complement of an IUPAC pattern (``GGTCTC`` -> ``GAGACC``; ``R`` <-> ``Y``)."""
    return "".join(_COMPLEMENT[c] for c in reversed(pattern))


def parse_avoid(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"GAATTC,ggtctc"`` (or a list) -> ``("GAATTC", "GGTCTC")``: IUPAC letters, ``U`` read as ``T``."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    out: list[str] = []
    for raw in items:
        p = raw.strip().upper().replace("U", "T")
        if not p:
            raise GengenError(f"--avoid {text!r}: an empty pattern; separate IUPAC patterns by commas (GAATTC,GGTCTC).")
        bad = sorted({c for c in p if c not in IUPAC})
        if bad:
            raise GengenError(f"--avoid pattern {raw.strip()!r} holds {preview(bad)}, not IUPAC nucleotide codes "
                              "(A C G T and R Y S W K M B D H V N).")
        if p not in out:
            out.append(p)
    return tuple(out)


def parse_ranges(text: str | None, length: int) -> np.ndarray | None:
    """``"1-24,40-50"`` (1-based, inclusive; ``7`` alone is one position) -> ``(length,)`` bool mask."""
    if text is None:
        return None
    mask = np.zeros(length, dtype=bool)
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if not m:
            raise GengenError(f"--fixed {text!r}: {part!r} is not a position or a range like 1-24 (1-based, inclusive).")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if a < 1 or b < a:
            raise GengenError(f"--fixed {text!r}: {part!r} must run from a position >= 1 up to one >= it.")
        if b > length:
            raise GengenError(f"--fixed {text!r}: {part!r} reaches past the sequence end ({length} nt).")
        mask[a - 1 : b] = True
    return mask


def parse_gc(text: str | None) -> tuple[float, float] | None:
    """``"0.4-0.6"`` -> ``(0.4, 0.6)``: the allowed fraction of G + C, bounds included."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*-\s*([0-9]*\.?[0-9]+)\s*", str(text))
    if not m:
        raise GengenError(f"--gc {text!r} must be MIN-MAX fractions of G+C, e.g. 0.4-0.6.")
    lo, hi = float(m.group(1)), float(m.group(2))
    if not (0 <= lo <= hi <= 1):
        raise GengenError(f"--gc {text!r}: need 0 <= MIN <= MAX <= 1 (fractions, e.g. 0.4-0.6).")
    return lo, hi


def gc_count_bounds(gc: tuple[float, float], length: int) -> tuple[int, int]:
    """The G + C counts of a ``length``-nt sequence whose fraction lies in ``gc`` (bounds included)."""
    return math.ceil(gc[0] * length - 1e-9), math.floor(gc[1] * length + 1e-9)


@dataclass
class Constraints:
    """Hard constraints of a design run (see the module docstring); every field may be left out.

    ``start`` holds one start sequence per design, ``(n, L)`` uint8 codes, with ``start_ids`` naming
    them; ``fixed`` is a ``(L,)`` bool mask.
    """

    start: np.ndarray | None = None
    start_ids: list[str] | None = None
    fixed: np.ndarray | None = None
    max_edits: int | None = None
    avoid: tuple[str, ...] = ()
    gc: tuple[float, float] | None = None

    @property
    def any(self) -> bool:
        return self.start is not None or bool(self.avoid) or self.gc is not None

    def describe(self) -> str:
        parts = []
        if self.start is not None:
            parts.append(f"editing {len(set(map(bytes, self.start)))} start sequence(s)")
        if self.max_edits is not None:
            parts.append(f"at most {self.max_edits} edits")
        if self.fixed is not None:
            parts.append(f"{int(self.fixed.sum())} fixed positions")
        if self.avoid:
            parts.append("avoiding " + ",".join(self.avoid) + " (both strands)")
        if self.gc is not None:
            parts.append(f"GC {self.gc[0]:g}-{self.gc[1]:g}")
        return "; ".join(parts)

    def check(self, length: int) -> None:
        """Raise a one-line :class:`GengenError` if the constraints contradict each other or the length.

        Run before any work. Per-sequence problems that only the budget causes (a start sequence
        needing more edits than allowed to reach the GC range) are left to the run: such designs are
        dropped and counted.
        """
        if self.max_edits is not None:
            if self.start is None:
                raise GengenError("--max-edits counts edits of given sequences: add --from FASTA.")
            if self.max_edits < 1:
                raise GengenError(f"--max-edits {self.max_edits} allows no edit at all; give 1 or more.")
        if self.fixed is not None:
            if self.start is None:
                raise GengenError("--fixed keeps bases of given sequences: add --from FASTA.")
            if len(self.fixed) != length:
                raise GengenError(f"--fixed covers {len(self.fixed)} positions but the sequences are {length} nt.")
            if self.fixed.all():
                raise GengenError(f"--fixed covers all {length} positions: nothing is left to design.")
        if self.start is not None and self.start.shape[1] != length:
            raise GengenError(f"the --from sequences are {self.start.shape[1]} nt but the design length is {length}.")
        if self.start is not None and (self.start > 3).any():
            raise GengenError("--from sequences must hold only A, C, G, T here (N or IUPAC codes cannot be edited "
                              "around); drop or fix those records.")
        gc_bounds = None
        if self.gc is not None:
            gc_bounds = gc_count_bounds(self.gc, length)
            if gc_bounds[0] > gc_bounds[1]:
                raise GengenError(
                    f"--gc {self.gc[0]:g}-{self.gc[1]:g}: no {length}-nt sequence has a G+C fraction in that range "
                    f"(G+C counts go in steps of 1/{length}); widen it."
                )
        patterns = [p for p in self.avoid if len(p) <= length]
        if patterns:
            ok = avoidable(patterns, length, gc_bounds)
            if ok is False:
                what = " with GC in range" if gc_bounds else ""
                raise GengenError(
                    f"no {length}-nt sequence avoids all of --avoid {','.join(self.avoid)} on both strands{what}; "
                    "drop some patterns" + (" or widen --gc." if gc_bounds else ".")
                )
        if self.start is not None and self.fixed is not None:
            self._check_fixed(length, patterns, gc_bounds)

    def _check_fixed(self, length: int, patterns: list[str], gc_bounds) -> None:
        strings = codes_to_strings(self.start)
        ids = self.start_ids or [f"#{i + 1}" for i in range(len(strings))]
        fixed = self.fixed
        runs = _true_runs(fixed)
        for pattern in patterns:
            w = len(pattern)
            regexes = {_regex(pattern), _regex(reverse_complement(pattern))}
            for a, b in runs:  # a fixed run [a, b) holds a whole occurrence
                if b - a < w:
                    continue
                for i, s in enumerate(strings):
                    hit = next((m.start() for r in regexes for m in [r.search(s, a)] if m and m.start() + w <= b), None)
                    if hit is not None:
                        raise GengenError(
                            f"--fixed keeps positions {a + 1}-{b} of {ids[i]!r}, which hold the avoided pattern "
                            f"{pattern} at {hit + 1}-{hit + w}; unfix them or drop the pattern."
                        )
        if gc_bounds is not None:
            free = int((~fixed).sum())
            fixed_gc = np.isin(self.start[:, fixed], (1, 2)).sum(axis=1)
            bad = np.flatnonzero((fixed_gc > gc_bounds[1]) | (fixed_gc + free < gc_bounds[0]))
            if len(bad):
                i = int(bad[0])
                raise GengenError(
                    f"the fixed bases of {ids[i]!r} hold {int(fixed_gc[i])} G/C, so with {free} free positions its "
                    f"G+C fraction cannot reach --gc {self.gc[0]:g}-{self.gc[1]:g} ({len(bad)} start sequence(s) "
                    "like this); widen --gc or fix fewer positions."
                )


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[a, b)`` runs of True in a 1-D bool mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def codes_to_strings(codes: np.ndarray) -> list[str]:
    table = np.frombuffer(b"ACGTN", dtype=np.uint8)
    return [row.tobytes().decode("ascii") for row in table[np.asarray(codes, dtype=np.uint8)]]


def _regex(pattern: str) -> re.Pattern:
    return re.compile("".join(f"[{IUPAC[c]}]" for c in pattern))


# --------------------------------------------------------------------------------------------------
# Can any sequence avoid the patterns at all?


def _pattern_allowed(pattern: str) -> np.ndarray:
    """``(w, 4)`` bool: which bases each position of an IUPAC pattern accepts."""
    return np.array([[b in IUPAC[c] for b in "ACGT"] for c in pattern], dtype=bool)


def _matches_suffix(kmers: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Whether each row of ``kmers`` ``(M, k)`` ends with the pattern ``allowed`` ``(w, 4)``."""
    w = len(allowed)
    tail = kmers[:, kmers.shape[1] - w :]
    return allowed[np.arange(w)[None, :], tail].all(axis=1)


def _all_kmers(k: int) -> np.ndarray:
    idx = np.arange(4**k)
    return np.stack([(idx // 4 ** (k - 1 - j)) % 4 for j in range(k)], axis=1).astype(np.int64)


def avoidable(patterns: Sequence[str], length: int, gc_bounds: tuple[int, int] | None = None) -> bool | None:
    """Whether some ``length``-nt sequence avoids every pattern on both strands (with its G+C count in
    ``gc_bounds`` when given), decided exactly by dynamic programming over the last ``k`` bases.

    Returns ``None`` (unknown) when the longest pattern is over 8 bases (too many states to check).
    """
    allowed = []
    for p in patterns:
        for q in {p, reverse_complement(p)}:
            if len(q) <= length:
                allowed.append(_pattern_allowed(q))
    lo, hi = gc_bounds if gc_bounds is not None else (0, length)
    if not allowed:
        return lo <= hi
    w_max = max(len(a) for a in allowed)
    if length <= 8:  # enumerate every sequence
        seqs = _all_kmers(length)
        ok = np.ones(len(seqs), dtype=bool)
        for a in allowed:
            for end in range(len(a), length + 1):
                ok &= ~_matches_suffix(seqs[:, :end], a)
        gc = np.isin(seqs, (1, 2)).sum(axis=1)
        return bool((ok & (gc >= lo) & (gc <= hi)).any())
    k = max(1, w_max - 1)
    if 4**k > DP_MAX_STATES:
        return None
    # states: the last k bases; reach[s, g]: some prefix ending in s with g G/C bases avoids every pattern
    kmers = _all_kmers(k)
    start_ok = np.ones(4**k, dtype=bool)
    for a in allowed:
        for end in range(len(a), k + 1):
            start_ok &= ~_matches_suffix(kmers[:, :end], a)
    ext = _all_kmers(k + 1)  # (k+1)-mers: state * 4 + next base
    blocked = np.zeros(len(ext), dtype=bool)
    for a in allowed:
        blocked |= _matches_suffix(ext, a)
    blocked = blocked.reshape(4**k, 4)
    start_gc = np.isin(kmers, (1, 2)).sum(axis=1)
    rest = 4 ** (k - 1)
    if gc_bounds is None or 4**k * (length + 1) * length > DP_MAX_WORK:  # long: without the G+C dimension
        return _avoidable_long(start_ok, start_gc, blocked, k, length, None if gc_bounds is None else (lo, hi))
    reach = np.zeros((4**k, length + 1), dtype=bool)
    reach[np.flatnonzero(start_ok), start_gc[start_ok]] = True
    for _ in range(k, length):
        new = np.zeros_like(reach).reshape(rest, 4, length + 1)
        for b in range(4):
            src = reach & ~blocked[:, b][:, None]
            if b in (1, 2):
                src = np.concatenate([np.zeros((len(src), 1), dtype=bool), src[:, :-1]], axis=1)
            new[:, b, :] |= src.reshape(4, rest, length + 1).any(axis=0)  # drop the oldest base
        reach = new.reshape(4**k, length + 1)
        if not reach.any():
            return False
    return bool(reach[:, lo : hi + 1].any())


def _avoidable_long(start_ok: np.ndarray, start_gc: np.ndarray, blocked: np.ndarray, k: int, length: int,
                    gc_bounds: tuple[int, int] | None) -> bool | None:
    """:func:`avoidable` in O(length x states): which last-k-base states some pattern-free prefix ends in
    (exact; stops once that set repeats, as it then stays), and with ``gc_bounds`` the fewest and most
    G+C bases such a prefix can hold per state. Those bounds decide "no" exactly (no state's range
    meets the bounds); a range that meets them may still have gaps, so that case is unknown (None)
    rather than a refusal: the designs are checked independently afterwards anyway."""
    n_states, rest = 4**k, 4 ** (k - 1)
    is_gc = np.isin(np.arange(4), (1, 2)).astype(np.int64)[None, :]
    big = np.iinfo(np.int64).max // 4
    allowed = ~blocked  # (states, next base)
    reach = start_ok.copy()
    gmin = np.where(reach, start_gc, big)
    gmax = np.where(reach, start_gc, -1)
    for _ in range(k, length):
        src = reach[:, None] & allowed  # (states, 4): extend a reached state by a base
        new = src.reshape(4, rest, 4).any(axis=0).reshape(n_states)  # the new state drops the oldest base
        if not new.any():
            return False
        if gc_bounds is None:
            if np.array_equal(new, reach):
                return True  # a fixed point: every longer prefix reaches these states too
        else:
            gmin = (np.where(src, gmin[:, None], big).reshape(4, rest, 4).min(axis=0) + is_gc).reshape(n_states)
            gmax = (np.where(src, gmax[:, None], -1).reshape(4, rest, 4).max(axis=0) + is_gc).reshape(n_states)
        reach = new
    if gc_bounds is None:
        return bool(reach.any())
    lo, hi = gc_bounds
    meets = reach & (gmin <= hi) & (gmax >= lo)
    return None if meets.any() else False


# --------------------------------------------------------------------------------------------------
# The independent check


def verify(sequences: Sequence[str], constraints: Constraints) -> list[str]:
    """Check every design against every hard constraint; returns ``""`` for a design that meets them
    all, else what it breaks (one string per design).

    Deliberately naive and independent of the optimiser: Python strings, regular expressions for the
    IUPAC patterns and their reverse complements, and character-by-character comparison.
    """
    c = constraints
    starts = codes_to_strings(c.start) if c.start is not None else None
    fixed = np.flatnonzero(c.fixed).tolist() if c.fixed is not None else []
    regexes = [(p, [_regex(p), _regex(reverse_complement(p))]) for p in c.avoid]
    out = []
    for i, seq in enumerate(sequences):
        problems = []
        if any(ch not in "ACGT" for ch in seq):
            problems.append("holds a base other than A, C, G, T")
        if starts is not None:
            start = starts[i]
            if len(seq) != len(start):
                problems.append(f"length {len(seq)} differs from its start's {len(start)}")
            else:
                edits = sum(1 for a, b in zip(seq, start) if a != b)
                if c.max_edits is not None and edits > c.max_edits:
                    problems.append(f"{edits} edits > {c.max_edits}")
                moved = [p + 1 for p in fixed if seq[p] != start[p]]
                if moved:
                    problems.append(f"fixed position(s) {', '.join(map(str, moved[:3]))}{'...' if len(moved) > 3 else ''} changed")
        for pattern, pair in regexes:
            if any(r.search(seq) for r in pair):
                problems.append(f"holds {pattern}")
        if c.gc is not None and seq:
            frac = (seq.count("G") + seq.count("C")) / len(seq)
            if not (c.gc[0] - 1e-9 <= frac <= c.gc[1] + 1e-9):
                problems.append(f"GC {frac:.3f} outside {c.gc[0]:g}-{c.gc[1]:g}")
        out.append("; ".join(problems))
    return out


def constraints_from_options(
    start: str | None = None,
    *,
    n: int | None = None,
    length: int | None = None,
    max_edits: int | None = None,
    fixed: str | None = None,
    avoid: str | None = None,
    gc: str | None = None,
    seed: int = 0,
) -> tuple[Constraints, int, str]:
    """``dna-design``'s constraint options as :class:`Constraints`, checked for contradictions.

    Parameters
    ----------
    start : FASTA of sequences to edit (``--from``); ``length`` then cuts windows of that length.
    n : designs wanted (more start sequences than that: a seeded random ``n`` of them).
    length : design length (default: the start sequences', else 50).
    max_edits, fixed, avoid, gc : the option strings (see :func:`parse_ranges`, :func:`parse_avoid`,
        :func:`parse_gc`).
    seed : for choosing start sequences.

    Returns
    -------
    (constraints, length, a note on the start sequences or "").
    """
    from gengen.dna.data import start_sequences

    avoid_t, gc_t = parse_avoid(avoid), parse_gc(gc)
    if (fixed is not None or max_edits is not None) and start is None:
        raise GengenError(f"{'--fixed' if fixed is not None else '--max-edits'} applies to given sequences: add --from FASTA.")
    if max_edits is not None and max_edits < 1:
        raise GengenError(f"--max-edits {max_edits} allows no edit at all; give 1 or more.")
    codes, ids, note = (None, None, "")
    if start is not None:
        codes, ids, note = start_sequences(start, n=n, length=length, seed=seed)
        length = codes.shape[1]
    length = 50 if length is None else length
    c = Constraints(codes, ids, parse_ranges(fixed, length), max_edits, avoid_t, gc_t)
    c.check(length)
    return c, length, note
