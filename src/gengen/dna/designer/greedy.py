"""Single-base substitutions: what the optimiser uses to keep designs inside their constraints.

- :class:`PatternScanner` counts avoided IUPAC patterns (both strands) in one-hot or soft sequences with
  one matrix product, and after every possible substitution incrementally;
- :class:`EditRules` is the optimiser's view of the hard constraints on codes: fixed positions and the
  edit budget (which substitutions are allowed), GC and patterns (how far a sequence is from meeting
  them), and :meth:`EditRules.project` which keeps the ``max_edits`` most wanted edits;
- :func:`substitution_scores` scores every substitution with an objective (PWMs incrementally);
- :func:`polish` (rounds of the best allowed substitution toward a value target) and :func:`repair`
  (rounds of the substitution that most reduces the violations, ties to the best objective).

The constraints' final check is :func:`gengen.dna.designer.constraints.verify`, which shares none of this code.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from gengen.dna.designer.constraints import IUPAC, Constraints, gc_count_bounds, reverse_complement
from gengen.dna.designer.objectives import POSITIONS_PER_CALL, Objective, combined, score_codes
from gengen.dna.predictor.predictors import BANDED_MAX_LENGTH, banded_matrix, window_products


class PatternScanner:
    """Occurrences of IUPAC patterns on both strands of ``length``-nt sequences.

    A window matches when every base is one the pattern accepts there: the window's sum of
    "accepted" indicators equals the pattern width. All windows of all patterns (and their reverse
    complements; a palindrome once) are one ``(4 L, windows)`` matrix product up to
    :data:`~gengen.dna.predictor.predictors.BANDED_MAX_LENGTH` nt, and blocked products beyond (that matrix grows as L²).
    """

    def __init__(self, patterns, length: int, device: torch.device | str = "cpu"):
        self.length = length
        oriented: list[str] = []
        for p in patterns:
            for q in (p, reverse_complement(p)):
                if len(q) <= length and q not in oriented:
                    oriented.append(q)
        self.patterns = oriented
        self.allowed = [
            torch.tensor([[b in IUPAC[c] for c in q] for b in "ACGT"], dtype=torch.float32, device=device)
            for q in oriented
        ]  # each (4, w)
        self.blocked = length > BANDED_MAX_LENGTH
        if oriented:
            self.width = torch.cat([
                torch.full((length - a.shape[1] + 1,), float(a.shape[1]), device=device) for a in self.allowed
            ])
        else:
            self.width = torch.zeros(0, device=device)
        if oriented and not self.blocked:
            self.matrix = torch.cat([banded_matrix(a[None], length, length - a.shape[1] + 1) for a in self.allowed],
                                    dim=1)
        else:
            self.matrix = torch.zeros(4 * (length if not self.blocked else 0), 0, device=device)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def window_sums(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, windows)`` accepted-base counts of one-hot or soft ``x`` ``(N, 4, L)``."""
        if self.blocked:
            if not self.allowed:
                return x.new_zeros(x.shape[0], 0)
            return torch.cat([window_products(x, a[None].to(x.dtype))[:, 0] for a in self.allowed], dim=1)
        return x.reshape(x.shape[0], -1) @ self.matrix.to(x.dtype)

    def occurrences(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` number of pattern occurrences (both strands) in one-hot ``x``."""
        return (self.window_sums(x) > self.width - 0.5).sum(dim=1)

    def penalty(self, sums: torch.Tensor) -> torch.Tensor:
        """``(N,)`` differentiable count of near-matches, ``sum relu(s - (w - 1))``: 1 per occurrence on a
        one-hot sequence, > 0 when a soft window mostly matches."""
        return torch.relu(sums - (self.width - 1)).sum(dim=1)

    def codes_occurrences(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N,)`` occurrences in codes ``(N, L)``."""
        return self.occurrences(torch.eye(4, device=codes.device)[codes.long()].transpose(1, 2))

    def substitution_occurrences(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N, L, 3)`` occurrences after each substitution (substitution ``k`` at ``p`` puts base
        ``(c_p + k + 1) % 4``). One substitution changes a window's count of accepted bases by at most
        one, so only windows one base short of a match (or matching) can change: they are few, and
        only they are looked at."""
        codes = codes.long()
        n, length = codes.shape
        delta = torch.zeros(n * length * 3, device=codes.device)
        shift = (torch.arange(4, device=codes.device)[:, None] + torch.arange(1, 4, device=codes.device)) % 4  # (4, 3)
        total = torch.zeros(n, device=codes.device)
        for allowed in self.allowed:
            w = allowed.shape[1]
            n_pos = length - w + 1
            acc = allowed.T  # (w, 4): whether column j accepts each base
            sums = torch.zeros(n, n_pos, device=codes.device)
            for j in range(w):
                sums += acc[j][codes[:, j : j + n_pos]]
            total += (sums > w - 0.5).sum(dim=1)
            row, q = torch.nonzero(sums > w - 1.5, as_tuple=True)  # near misses and matches
            if len(row) == 0:
                continue
            s = sums[row, q]
            for j in range(w):  # the window starting at q holds p = q + j at its column j
                p = q + j
                gain = (acc[j][shift] - acc[j][:, None])[codes[row, p]]  # (k, 3) change of the window's count
                change = ((s[:, None] + gain) > w - 0.5).float() - (s[:, None] > w - 0.5).float()
                flat = ((row * length + p) * 3)[:, None] + torch.arange(3, device=codes.device)
                delta.index_add_(0, flat.reshape(-1), change.reshape(-1))
        return (total[:, None, None] + delta.view(n, length, 3)).round().long()


class EditRules:
    """The hard constraints as the optimiser sees them, for ``n`` designs of ``length`` on ``device``."""

    def __init__(self, constraints: Constraints | None, n: int, length: int, *, device: torch.device | str):
        c = constraints or Constraints()
        self.constraints = c
        self.start = torch.as_tensor(c.start, device=device).long() if c.start is not None else None
        self.fixed = torch.as_tensor(c.fixed, device=device) if c.fixed is not None else None
        self.max_edits = c.max_edits
        self.scanner = PatternScanner(c.avoid, length, device)
        self.gc = gc_count_bounds(c.gc, length) if c.gc is not None else None

    def for_rows(self, rows: torch.Tensor) -> EditRules:
        """The same rules for the designs ``rows`` only (their start sequences, in that order)."""
        view = copy.copy(self)
        if self.start is not None:
            view.start = self.start[rows]
        return view

    @property
    def soft_terms(self) -> bool:
        """Whether there is anything to penalise during optimisation (patterns or GC)."""
        return bool(self.scanner) or self.gc is not None

    def project(self, codes: torch.Tensor, margin: torch.Tensor | None) -> torch.Tensor:
        """Fixed positions back to the start; beyond ``max_edits`` edits, keep the edits with the largest
        ``margin`` (how much more the optimiser wants the new base than the start's, ``(N, L)``)."""
        if self.start is None:
            return codes
        codes = codes.long()
        if self.fixed is not None:
            codes = torch.where(self.fixed[None, :], self.start, codes)
        if self.max_edits is None:
            return codes
        edited = codes != self.start
        over = torch.nonzero(edited.sum(dim=1) > self.max_edits).squeeze(1)
        if len(over) == 0:
            return codes
        if margin is None:
            margin = torch.zeros(codes.shape, device=codes.device)
        k = min(self.max_edits, codes.shape[1])
        gain = torch.where(edited[over], margin[over], -torch.inf)
        keep = torch.zeros_like(gain, dtype=torch.bool).scatter_(1, gain.topk(k, dim=1).indices, True) & edited[over]
        codes = codes.clone()
        codes[over] = torch.where(keep, codes[over], self.start[over])
        return codes

    def gc_penalty(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bases by which the (soft) G+C count of ``x`` falls outside the range."""
        gc = x[:, 1:3].sum(dim=(1, 2))
        lo, hi = self.gc
        return torch.relu(lo - gc) + torch.relu(gc - hi)

    def violations(self, codes: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``(m,)`` how far codes (of the designs ``rows``, default all) are from meeting the constraints:
        pattern occurrences + bases of GC outside the range + edits over the budget + changed fixed
        positions (0 = all met)."""
        codes = codes.long()
        v = torch.zeros(len(codes), dtype=torch.long, device=codes.device)
        if self.scanner:
            v += self.scanner.codes_occurrences(codes)
        if self.gc is not None:
            gc = ((codes == 1) | (codes == 2)).sum(dim=1)
            v += torch.relu(self.gc[0] - gc) + torch.relu(gc - self.gc[1])
        if self.start is not None:
            start = self.start if rows is None else self.start[rows]
            if self.max_edits is not None:
                v += torch.relu((codes != start).sum(dim=1) - self.max_edits)
            if self.fixed is not None:
                v += ((codes != start) & self.fixed[None, :]).sum(dim=1)
        return v

    def substitution_violations(self, codes: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``(m, L, 3)`` violations after each substitution of ``codes`` (the designs ``rows``); a
        substitution that is not allowed at all (a fixed position, an edit over the budget) gets a
        huge value."""
        codes = codes.long()
        m, length = codes.shape
        new_base = (codes[:, :, None] + torch.arange(1, 4, device=codes.device)) % 4
        v = torch.zeros(m, length, 3, dtype=torch.long, device=codes.device)
        if self.scanner:
            v += self.scanner.substitution_occurrences(codes)
        if self.gc is not None:
            is_gc = lambda c: ((c == 1) | (c == 2)).long()  # noqa: E731
            gc = is_gc(codes).sum(dim=1)[:, None, None] - is_gc(codes)[:, :, None] + is_gc(new_base)
            v += torch.relu(self.gc[0] - gc) + torch.relu(gc - self.gc[1])
        big = torch.full_like(v, 10**9)
        if self.start is not None:
            start = self.start[rows]
            if self.fixed is not None:
                v = torch.where(self.fixed[None, :, None], big, v)
            if self.max_edits is not None:
                edits = (codes != start).sum(dim=1)[:, None, None]
                after = edits - (codes != start).long()[:, :, None] + (new_base != start[:, :, None]).long()
                v = torch.where(after > self.max_edits, big, v)
        return v


def substitution_scores(objective: Objective, codes: torch.Tensor) -> torch.Tensor:
    """``(m, L, 3)`` exact scores of every single-base substitution of ``codes`` ``(m, L)`` (the objective's
    own way: a PWM's incrementally)."""
    return objective.substitution_scores(codes)


def _utilities(objectives, scores: list[torch.Tensor]) -> torch.Tensor:
    return combined(objectives, scores)


def _current(objectives, codes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    batch = max(1, POSITIONS_PER_CALL // max(codes.shape[1], 1))
    scores = [score_codes(o.predictor, codes, batch).float() for o in objectives]
    return _utilities(objectives, scores), scores


def _chunk(length: int, objectives) -> int:
    """Designs per round-chunk: bounded candidates (3 L per design) for predictors, more for PWMs."""
    per = 3 * max(length, 1)
    cheap = all(o.incremental for o in objectives)
    return max(1, (2**20 if cheap else POSITIONS_PER_CALL // max(length, 1)) // per)


def polish(codes: torch.Tensor, objectives: list[Objective], rules: EditRules, *, rounds: int = 30,
           every_design: bool = False) -> torch.Tensor:
    """Rounds of the single allowed substitution that most improves the combined objective.

    By default only for designs with a value target not yet within ``1e-3 * max(1, |value|)``:
    gradient steps get near a value but not onto it (the one-hot readout moves in jumps), and this
    closes the rest. With ``every_design`` every design climbs until no substitution improves it (or
    ``rounds`` run out): the greedy local search that refines edits under a budget. Only substitutions
    that keep every constraint met (or, for a design that does not meet them yet, make it no worse)
    are taken; fixed positions and the edit budget are never crossed. Returns codes ``(N, L)`` uint8.
    """
    codes = codes.clone().long()
    values = [(i, o) for i, o in enumerate(objectives) if o.is_value]
    if (not values and not every_design) or rounds < 1 or len(codes) == 0:
        return codes.to(torch.uint8)
    rows_all = torch.arange(len(codes), device=codes.device)
    util, scores = _current(objectives, codes)

    def active_of(sc: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        if every_design:
            return idx
        out = torch.zeros(len(idx), dtype=torch.bool, device=codes.device)
        for i, o in values:
            out |= (sc[i][idx] - float(o.target)).abs() > 1e-3 * max(1.0, abs(float(o.target)))
        return idx[out]

    def improve(rows: torch.Tensor, c: torch.Tensor) -> torch.Tensor | None:
        cand = [substitution_scores(o, c).float() for o in objectives]
        u = _utilities(objectives, cand)  # (m, L, 3)
        if rules.constraints.any:
            viol_now = rules.violations(c, rows)
            viol = rules.substitution_violations(c, rows)
            u = torch.where(viol <= viol_now[:, None, None], u, torch.full_like(u, -torch.inf))
        best_u, best = u.flatten(1).max(dim=1)
        # more than float32 rounding: the current utility and the candidates' come from two computations
        # (forward passes; an objective's own substitution scores), which may differ in the last bits
        take = best_u > util[rows] + 1e-6 * util[rows].abs().clamp(min=1.0)
        if not take.any():
            return None
        r, b = rows[take], best[take]
        _substitute(codes, r, b)
        util[r] = best_u[take]
        for i in range(len(objectives)):
            scores[i][r] = cand[i].flatten(1)[take, b]
        return active_of(scores, r)

    _in_rounds(codes, active_of(scores, rows_all), _chunk(codes.shape[1], objectives), rounds, improve)
    return codes.to(torch.uint8)


def polish_from_start(objectives: list[Objective], rules: EditRules, rounds: int) -> torch.Tensor:
    """:func:`polish` (every design) from the start sequences, each distinct start climbed once: ``-n``
    larger than the ``--from`` records cycles them, and the greedy search from one start is the same
    for all its copies (a 10-record FASTA designed 50 times ran every climb 5 times)."""
    start = rules.start
    distinct, inverse = torch.unique(start, dim=0, return_inverse=True)
    if len(distinct) == len(start):
        return polish(start, objectives, rules, rounds=rounds, every_design=True)
    order = torch.arange(len(start), device=start.device)
    first = torch.full((len(distinct),), len(start), device=start.device).scatter_reduce(0, inverse, order, "amin")
    climbed = polish(start[first], objectives, rules.for_rows(first), rounds=rounds, every_design=True)
    return climbed[inverse]


def _substitute(codes: torch.Tensor, rows: torch.Tensor, choice: torch.Tensor) -> None:
    """Apply one substitution per row in place: ``choice`` indexes (position, one of the 3 other bases)."""
    p, k = choice // 3, choice % 3
    codes[rows, p] = (codes[rows, p] + k + 1) % 4


def _in_rounds(codes: torch.Tensor, active: torch.Tensor, chunk: int, rounds: int, step) -> None:
    """Up to ``rounds`` rounds of ``step(rows, codes[rows])`` over the active designs, ``chunk`` rows at a
    time; ``step`` edits ``codes`` in place and returns the rows to keep working on (None: none)."""
    for _ in range(rounds):
        if len(active) == 0:
            break
        still = [step(rows, codes[rows]) for rows in torch.split(active, chunk)]
        still = [r for r in still if r is not None]
        active = torch.cat(still) if still else active[:0]


def better_of(a: torch.Tensor, b: torch.Tensor, objectives: list[Objective], *, rules: EditRules) -> tuple[torch.Tensor, int]:
    """Per design, ``b`` where it meets the constraints and scores a higher combined objective than ``a``
    (or ``a`` does not meet them); returns the codes and how many came from ``b``."""
    ua, _ = _current(objectives, a.long())
    ub, _ = _current(objectives, b.long())
    va, vb = rules.violations(a), rules.violations(b)
    take = (vb == 0) & ((va > 0) | (ub > ua + 1e-9))
    return torch.where(take[:, None], b.long(), a.long()).to(torch.uint8), int(take.sum())


def repair(codes: torch.Tensor, objectives: list[Objective], rules: EditRules, *, rounds: int | None = None) -> torch.Tensor:
    """Rounds of the allowed substitution that most reduces each design's violations (ties: the best
    combined objective), until none is left or no substitution helps. Respects fixed positions and the
    edit budget. Designs that still break a constraint are left for :func:`~gengen.dna.designer.constraints.verify`
    to refuse. Returns codes ``(N, L)`` uint8."""
    codes = codes.clone().long()
    viol = rules.violations(codes)
    active = torch.nonzero(viol > 0).squeeze(1)
    if len(active) == 0:
        return codes.to(torch.uint8)
    rounds = int(viol.max()) + 2 if rounds is None else rounds

    def fix(rows: torch.Tensor, c: torch.Tensor) -> torch.Tensor | None:
        v = rules.substitution_violations(c, rows)  # (m, L, 3)
        best_v = v.flatten(1).min(dim=1).values
        improves = best_v < viol[rows]
        if not improves.any():
            return None
        u = _utilities(objectives, [substitution_scores(o, c).float() for o in objectives])
        u = torch.where(v == best_v[:, None, None], u, torch.full_like(u, -torch.inf))
        best = u.flatten(1).argmax(dim=1)
        r = rows[improves]
        _substitute(codes, r, best[improves])
        viol[r] = best_v[improves]
        return r[viol[r] > 0]

    _in_rounds(codes, active, _chunk(codes.shape[1], objectives), rounds, fix)
    return codes.to(torch.uint8)


def edits_of(codes: np.ndarray, start: np.ndarray | None) -> np.ndarray | None:
    """Hamming distance of each design to its start sequence (``None`` without starts)."""
    if start is None:
        return None
    return (np.asarray(codes) != np.asarray(start)).sum(axis=1)
