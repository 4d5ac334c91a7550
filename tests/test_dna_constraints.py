"""Hard design constraints: parsing, contradictions found before any work, and random constraint sets
whose every written design is checked by the independent verifier and again by a naive check here."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from dna_fixtures import TOY_COUNTS
from gengen.dna.designer.constraints import (
    Constraints,
    avoidable,
    parse_avoid,
    parse_gc,
    parse_ranges,
    reverse_complement,
    verify,
)
from gengen.dna.designer.design import design
from gengen.dna.designer.greedy import EditRules, PatternScanner
from gengen.dna.designer.objectives import Objective
from gengen.dna.predictor.predictors import PWMPredictor
from gengen.errors import GengenError
from gengen.io.motifs import pwm_from_counts

IUPAC_SETS = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
              "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
POOL = ["GAATTC", "GGTCTC", "AAAAAA", "CCGG", "TTT", "GCGC", "RYRY", "NGG", "TATA", "CACGTG", "ACGT", "GG"]


def naive_occurs(pattern: str, seq: str) -> bool:
    """Written without regular expressions: every window of both strands, letter by letter."""
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    rc = "".join(comp[c] for c in reversed(seq))
    w = len(pattern)
    for s in (seq, rc):
        for i in range(len(s) - w + 1):
            if all(s[i + j] in IUPAC_SETS[pattern[j]] for j in range(w)):
                return True
    return False


def naive_ok(seq: str, start: str | None, c: Constraints) -> bool:
    if start is not None:
        diff = [i for i in range(len(seq)) if seq[i] != start[i]]
        if c.max_edits is not None and len(diff) > c.max_edits:
            return False
        if c.fixed is not None and any(c.fixed[i] for i in diff):
            return False
    if any(naive_occurs(p, seq) for p in c.avoid):
        return False
    if c.gc is not None:
        frac = sum(ch in "GC" for ch in seq) / len(seq)
        if not c.gc[0] - 1e-9 <= frac <= c.gc[1] + 1e-9:
            return False
    return True


def test_parsers_and_one_line_errors():
    assert parse_avoid("gaattc, GGTCTC,GAATTC,uuu") == ("GAATTC", "GGTCTC", "TTT")
    assert reverse_complement("GGTCTC") == "GAGACC" and reverse_complement("RYN") == "NRY"
    m = parse_ranges("1-3, 5,8-9", 10)
    assert m.tolist() == [True, True, True, False, True, False, False, True, True, False]
    assert parse_gc("0.4-0.6") == (0.4, 0.6) and parse_gc(".2 - 1") == (0.2, 1.0)
    for bad, msg in [("GAXTC", "IUPAC"), ("GAATTC,,AAA", "empty")]:
        with pytest.raises(GengenError, match=msg):
            parse_avoid(bad)
    for bad, msg in [("0-3", ">= 1"), ("5-100", "past the sequence end"), ("a-b", "not a position"), ("4-2", ">= it")]:
        with pytest.raises(GengenError, match=msg):
            parse_ranges(bad, 20)
    for bad in ("0.7-0.2", "40-60", "half", "0.4"):
        with pytest.raises(GengenError, match="--gc"):
            parse_gc(bad)


def test_contradictions_are_refused_before_any_work():
    start = np.array([[0, 0, 1, 2, 3, 3, 0, 1, 2, 2, 0, 1]], dtype=np.uint8)  # AACGTTACGGAC
    cases = [
        (Constraints(start=start, max_edits=0), "allows no edit"),
        (Constraints(max_edits=2), "add --from"),
        (Constraints(fixed=np.ones(12, bool)), "add --from"),
        (Constraints(start=start, fixed=np.ones(12, bool)), "nothing is left"),
        (Constraints(gc=(0.42, 0.49)), "no 12-nt sequence has a G+C fraction"),  # 5/12 < 0.42 < 0.49 < 6/12
        (Constraints(avoid=("A", "C", "G", "T")), "no 12-nt sequence avoids"),
        (Constraints(avoid=("N",)), "no 12-nt sequence avoids"),
        (Constraints(start=start, fixed=parse_ranges("1-6", 12), avoid=("CGT",)), "hold the avoided pattern CGT"),
        (Constraints(start=start, fixed=parse_ranges("1-6", 12), avoid=("ACG",)), "hold the avoided pattern ACG"),  # - strand
        (Constraints(start=start, fixed=parse_ranges("1-10", 12), gc=(0.9, 1.0)), "cannot reach --gc"),
        (Constraints(avoid=("SS",), gc=(0.9, 1.0)), "with GC in range"),
    ]
    for c, msg in cases:
        with pytest.raises(GengenError, match=re.escape(msg)):
            c.check(12)
    # on both strands these forbid every dinucleotide but AT, TA, CG and GC: ATATAT... survives, so no refusal
    Constraints(avoid=("AA", "CC", "GG", "TT", "AC", "CA", "GT", "TG", "AG", "GA")).check(12)


@pytest.mark.parametrize("length", [5, 9])
def test_avoidable_matches_brute_force(length):
    rng = np.random.default_rng(length)
    seqs = np.array(list(itertools.product(range(4), repeat=length)), dtype=np.int64)  # every sequence
    rc = 3 - seqs[:, ::-1]
    gc_count = np.isin(seqs, (1, 2)).sum(axis=1)
    for _ in range(12):
        pats = list(rng.choice(POOL + ["W", "S", "AT", "CG", "SW", "RR", "YY"], size=rng.integers(1, 5), replace=False))
        gc = tuple(sorted(rng.integers(0, length + 1, size=2)))
        hit = np.zeros(len(seqs), dtype=bool)
        for p in pats:
            w = len(p)
            if w > length:
                continue
            words = ["".join(x) for x in itertools.product("ACGT", repeat=w)]  # every w-mer, base-4 order
            table = np.array([all(x[j] in IUPAC_SETS[p[j]] for j in range(w)) for x in words])
            for s in (seqs, rc):
                win = np.lib.stride_tricks.sliding_window_view(s, w, axis=1) @ (4 ** np.arange(w - 1, -1, -1))
                hit |= table[win].any(axis=1)
        expect = bool((~hit & (gc_count >= gc[0]) & (gc_count <= gc[1])).any())
        assert avoidable(pats, length, gc) is expect, (pats, gc)


def test_pattern_scanner_counts_and_substitutions_match_rescoring():
    rng = np.random.default_rng(0)
    scanner = PatternScanner(("GAATTC", "RYR", "AAAA"), 20)
    codes = torch.as_tensor(rng.integers(0, 4, (30, 20)))
    seqs = ["".join("ACGT"[b] for b in row) for row in codes.tolist()]

    def count(seq):
        pats = [q for p in ("GAATTC", "RYR", "AAAA") for q in dict.fromkeys((p, reverse_complement(p)))]
        return sum(all(seq[i + j] in IUPAC_SETS[q[j]] for j in range(len(q)))
                   for q in pats for i in range(len(seq) - len(q) + 1))

    assert scanner.codes_occurrences(codes).tolist() == [count(s) for s in seqs]
    sub = scanner.substitution_occurrences(codes)
    for i, p, k in [(0, 0, 0), (3, 7, 2), (5, 19, 1), (11, 10, 0)]:
        s = list(seqs[i])
        s[p] = "ACGT"[(codes[i, p].item() + k + 1) % 4]
        assert sub[i, p, k].item() == count("".join(s))


def test_edit_budget_projection_keeps_the_most_wanted_edits():
    start = torch.zeros(2, 8, dtype=torch.long)
    rules = EditRules(Constraints(start=start.numpy().astype(np.uint8), max_edits=2,
                                  fixed=parse_ranges("8", 8)), 2, 8, device="cpu")
    codes = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 3], [0, 2, 0, 0, 0, 0, 0, 0]])
    margin = torch.tensor([[0.5, 3.0, 2.0, 0, 0, 0, 0, 9.0], [0, 1.0, 0, 0, 0, 0, 0, 0]])
    out = rules.project(codes, margin)
    assert out.tolist() == [[0, 1, 1, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 0, 0]]


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    length = int(rng.integers(12, 36))
    n_start = int(rng.integers(1, 5))
    start = rng.integers(0, 4, (n_start, length)).astype(np.uint8) if rng.random() < 0.7 else None
    fixed = None
    if start is not None and rng.random() < 0.6:
        a = int(rng.integers(1, length - 2))
        fixed = parse_ranges(f"{a}-{min(length - 1, a + int(rng.integers(0, length // 3)))}", length)
    max_edits = int(rng.integers(1, length // 2)) if start is not None and rng.random() < 0.7 else None
    avoid = tuple(rng.choice(POOL, size=int(rng.integers(0, 4)), replace=False))
    gc = None
    if rng.random() < 0.6:
        lo = float(rng.choice([0.0, 0.2, 0.3, 0.4, 0.5]))
        gc = (lo, min(1.0, lo + float(rng.choice([0.1, 0.2, 0.4]))))
    c = Constraints(start=start, start_ids=[f"s{i}" for i in range(n_start)] if start is not None else None,
                    fixed=fixed, max_edits=max_edits, avoid=avoid, gc=gc)
    return rng, length, c


@pytest.mark.parametrize("seed", range(24))
def test_random_constraint_sets_every_design_meets_every_constraint(seed):
    rng, length, c = _random_case(seed)
    pwm = pwm_from_counts(TOY_COUNTS)
    objectives = [Objective(PWMPredictor(pwm), "max", name="toy")]
    if rng.random() < 0.5:
        objectives.append(Objective(PWMPredictor(pwm_from_counts(TOY_COUNTS[::-1])), rng.choice(["min", "1.5"]),
                                    float(rng.choice([0.5, 1, 2])), name="rev"))
    n = int(rng.integers(1, 10))
    try:
        c.check(length)
    except GengenError as exc:
        assert "\n" not in str(exc)
        return
    r = design(objectives, n, length, constraints=c, steps=int(rng.integers(0, 25)), seed=seed, device="cpu",
               quiet=True)
    assert len(r.codes) + r.dropped == n and r.codes.shape[1] == length
    assert verify(r.strings(), _kept(c, r)) == [""] * len(r.codes)
    starts = r.start_codes
    for i, seq in enumerate(r.strings()):
        start = "".join("ACGT"[b] for b in starts[i]) if starts is not None else None
        assert naive_ok(seq, start, c), (seq, start, c.describe())
    if c.start is not None:
        assert (r.edits == (r.codes != r.start_codes).sum(axis=1)).all()
        assert r.table()["edits"].tolist() == r.edits.tolist()


def _kept(c: Constraints, r) -> Constraints:
    """The constraints of the designs kept (their own start sequences)."""
    return Constraints(start=r.start_codes, fixed=c.fixed, max_edits=c.max_edits, avoid=c.avoid, gc=c.gc)


def test_verifier_catches_each_kind_of_violation():
    start = np.zeros((5, 10), dtype=np.uint8)
    c = Constraints(start=start, fixed=parse_ranges("1-2", 10), max_edits=2, avoid=("GAATTC",), gc=(0.0, 0.5))
    seqs = ["AAAAAAAAAA", "CAAAAAAAAA", "AAACCCAAAA", "GAATTCAAAA"[:10], "AACCAAAAAA"]
    out = verify(seqs, c)
    assert out[0] == "" and out[4] == ""
    assert "fixed position(s) 1 changed" in out[1]
    assert "3 edits > 2" in out[2]
    assert "holds GAATTC" in out[3]
    c2 = Constraints(gc=(0.6, 1.0), avoid=("TTT",))
    assert verify(["AAACCCGGGG", "GGGGGGGGGG", "ACACACACAC"], c2) == ["holds TTT", "", "GC 0.500 outside 0.6-1"]


def test_editing_cycles_start_sequences_and_reports_edits_and_gain():
    pwm = pwm_from_counts(TOY_COUNTS)
    rng = np.random.default_rng(5)
    start = rng.integers(0, 4, (3, 20)).astype(np.uint8)
    c = Constraints(start=start, start_ids=["a", "b", "c"], max_edits=2, fixed=parse_ranges("1-5", 20))
    r = design(PWMPredictor(pwm), 7, None, constraints=c, steps=60, seed=1, device="cpu", quiet=True)
    assert r.start_ids == ["a", "b", "c", "a", "b", "c", "a"] and (r.start_codes[3] == start[0]).all()
    assert r.edits.max() <= 2 and (r.codes[:, :5] == r.start_codes[:, :5]).all()
    assert (r.scores >= r.initial_scores - 1e-6).all()  # the best readout is kept: never worse than the start
    assert r.scores.mean() > r.initial_scores.mean() + 1
    s = r.summary()
    assert s["gain_per_edit"] == pytest.approx((r.scores - r.initial_scores).mean() / r.edits.mean())
    assert any("per edit" in line for line in r.report())


def test_unrepairable_designs_are_dropped_and_counted():
    # every start holds GAATTC away from the fixed bases but only 1 edit is allowed and GC needs 3 more G/C
    start = np.tile(np.array([[0] * 6 + [2, 0, 0, 3, 3, 1] + [0] * 8], dtype=np.uint8), (4, 1))
    c = Constraints(start=start, max_edits=1, gc=(0.4, 1.0))
    r = design(PWMPredictor(pwm_from_counts(TOY_COUNTS)), 4, None, constraints=c, steps=5, device="cpu", quiet=True)
    assert len(r.codes) == 0 and r.dropped == 4
    assert "could not be made" in " ".join(r.report()) or "no design met every constraint" in r.report()[0]


def test_one_edit_budget_finds_the_best_single_substitution():
    """With --max-edits 1 the optimum is known exactly: the best of all 3 L single substitutions."""
    pwm = pwm_from_counts(TOY_COUNTS)
    pred = PWMPredictor(pwm)
    start = np.random.default_rng(11).integers(0, 4, (12, 16)).astype(np.uint8)
    r = design(pred, None, None, constraints=Constraints(start=start, max_edits=1), steps=30, seed=0, device="cpu",
               quiet=True)
    eye = np.eye(4, dtype=np.float32)
    for i, s in enumerate(start):
        cands = [s.copy()]
        for p in range(16):
            for b in range(4):
                if b != s[p]:
                    c = s.copy()
                    c[p] = b
                    cands.append(c)
        x = torch.as_tensor(eye[np.array(cands)].transpose(0, 2, 1))
        assert r.scores[i] == pytest.approx(float(pred.exact(x)[0].max()), abs=1e-5)
    assert r.edits.max() <= 1


def test_avoidability_of_long_designs_is_decided_in_linear_time(monkeypatch):
    """dna-design --length 100000 --avoid GAATTC hung in the exact check (a DP over length x G+C counts,
    O(L²)): long sequences drop the G+C dimension (exact without --gc; with it, G+C bounds per state that
    refuse exactly and otherwise leave it to the designs' own check). Checked against the exact DP."""
    import time

    from gengen.dna.designer import constraints as cons

    rng = np.random.default_rng(7)
    cases = []
    for _ in range(30):
        pats = list(rng.choice(["GAATTC", "AAAA", "CCG", "W", "S", "AT", "CG", "SW", "RR", "YY", "SSS", "WWW"],
                               size=rng.integers(1, 5), replace=False))
        length = int(rng.integers(9, 30))
        gc = tuple(int(v) for v in sorted(rng.integers(0, length + 1, size=2)))
        cases.append((pats, length, gc, avoidable(pats, length, gc), avoidable(pats, length, None)))
    monkeypatch.setattr(cons, "DP_MAX_WORK", 0)  # every case through the long path
    for pats, length, gc, exact_gc, exact in cases:
        assert avoidable(pats, length, None) is exact, (pats, length)
        got = avoidable(pats, length, gc)
        assert got is (False if exact_gc is False else None) or got is exact_gc, (pats, length, gc, got, exact_gc)
    assert any(c[3] is False for c in cases) and any(c[3] is True for c in cases)
    monkeypatch.undo()
    t0 = time.process_time()
    assert avoidable(["GAATTC", "GGTCTC", "AAAAAA"], 100_000, None) is True
    assert avoidable(["GAATTC"], 30_000, (9_000, 18_000)) is None  # in range: left to the check of the designs
    assert avoidable(["S"], 20_000, (1, 20_000)) is False  # no G or C at all, yet at least one asked for
    assert time.process_time() - t0 < 30
    Constraints(avoid=("GAATTC",), gc=(0.3, 0.6)).check(20_000)  # no refusal


def test_greedy_from_repeated_starts_climbs_each_start_once_with_the_same_result():
    """-n larger than the --from records cycles them; the greedy search from one start is climbed once
    and shared by its copies, giving what climbing every copy gives (with the constraints of each row)."""
    from gengen.dna.designer.greedy import polish, polish_from_start

    rng = np.random.default_rng(3)
    starts = rng.integers(0, 4, (3, 30))
    cycled = starts[[0, 1, 2, 0, 1, 2, 0]]
    c = Constraints(start=cycled, max_edits=4, avoid=["GAATTC"], gc=(0.3, 0.7))
    objectives = [Objective(PWMPredictor(pwm_from_counts(TOY_COUNTS)), "max", name="toy")]
    rules = EditRules(c, len(cycled), 30, device="cpu")
    calls = []
    original = objectives[0].substitution_scores
    objectives[0].substitution_scores = lambda codes: calls.append(len(codes)) or original(codes)
    shared = polish_from_start(objectives, rules, 4)
    assert max(calls) <= 3  # the three distinct starts, not the seven copies
    every = polish(rules.start, objectives, rules, rounds=4, every_design=True)
    assert torch.equal(shared, every)
    assert ((shared.long() != rules.start).sum(dim=1) <= 4).all()
    assert torch.equal(shared[0], shared[3]) and torch.equal(shared[0], shared[6])
    assert (shared.long() != rules.start).any()
