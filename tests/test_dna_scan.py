"""The PWM scan in O(L x W): long sequences score exactly as the earlier whole-banded-matrix scan did,
in bounded memory (issue 18, item 4: one 10 kb record took 3.2 GB in dna-score, 40 kb 51 GB)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from gengen.dna.predictor.predictors import BANDED_MAX_LENGTH, PWMPredictor
from gengen.io.motifs import load_motif, pwm_from_counts
from gengen.io.sequences import codes_to_one_hot


def previous_window_scores(predictor: PWMPredictor, x: torch.Tensor) -> torch.Tensor:
    """The scan as it was before the fix, for any length: one GEMM with the whole (4 L, 2 P) banded matrix."""
    length = x.shape[-1]
    w = predictor.weight
    n_pos = length - predictor.width + 1
    m = torch.zeros(4, length, 2, n_pos)
    p = torch.arange(n_pos)
    for j in range(predictor.width):
        m[:, p + j, :, p] = w[:, :, j].T[None].expand(n_pos, 4, 2)
    return (x.reshape(x.shape[0], -1) @ m.reshape(4 * length, 2 * n_pos)).view(x.shape[0], 2, -1)


def previous_exact(predictor: PWMPredictor, codes: np.ndarray, skip: bool = False):
    """The earlier dna-score: best of the flattened (strand, position) scores, N windows masked when skipping."""
    s = previous_window_scores(predictor, codes_to_one_hot(codes))
    if skip:
        w = predictor.width
        n_in = np.concatenate([np.zeros((len(codes), 1)), np.cumsum(codes == 4, axis=1)], axis=1)
        dirty = (n_in[:, w:] - n_in[:, :-w]) > 0
        s = s.masked_fill(torch.as_tensor(dirty)[:, None, :], float("-inf"))
    best, flat = s.flatten(1).max(dim=1)
    return best.double().numpy(), (flat % s.shape[-1]).numpy(), (flat // s.shape[-1]).numpy(), s


def naive_float64(pwm, codes: np.ndarray) -> np.ndarray:
    """(N, 2, P) window scores in float64, base by base (N = the mean of the four log-odds)."""
    lo = np.concatenate([pwm.log_odds, pwm.log_odds.mean(axis=0, keepdims=True)])  # (5, W)
    rc = np.concatenate([pwm.log_odds[::-1, ::-1], pwm.log_odds.mean(axis=0, keepdims=True)[:, ::-1]])
    w = pwm.length
    n_pos = codes.shape[1] - w + 1
    out = np.zeros((len(codes), 2, n_pos))
    for j in range(w):
        c = codes[:, j : j + n_pos]
        out[:, 0] += lo[c, j]
        out[:, 1] += rc[c, j]
    return out


def _motif(width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return pwm_from_counts(rng.integers(0, 40, (4, width)).astype(float), name=f"w{width}")


@pytest.mark.parametrize("length", [BANDED_MAX_LENGTH - 1, BANDED_MAX_LENGTH + 1, 700, 2_003])
@pytest.mark.parametrize("width", [6, 20, 37])
def test_blocked_window_scores_equal_the_previous_whole_matrix_scan(length, width):
    rng = np.random.default_rng(length + width)
    pred = PWMPredictor(_motif(width, seed=width))
    codes = rng.integers(0, 5, (3, length)).astype(np.uint8)  # N (code 4) included: 0.25 per base
    x = codes_to_one_hot(codes)
    new = pred.window_scores(x)
    old = previous_window_scores(pred, x)
    assert new.shape == old.shape == (3, 2, length - width + 1)
    torch.testing.assert_close(new, old, atol=2e-5, rtol=0)
    np.testing.assert_allclose(new.double().numpy(), naive_float64(pred.pwm, codes), atol=2e-4)


def test_blocked_scan_is_differentiable_like_the_previous_one():
    """Design backpropagates through the scan: the gradients of the two agree on a long soft sequence."""
    pred = PWMPredictor(load_motif("MA0139.2"))
    logits = torch.randn(2, 4, 1_500, generator=torch.Generator().manual_seed(0))
    grads = []
    for scan in (pred.window_scores, lambda x: previous_window_scores(pred, x)):
        leaf = logits.clone().requires_grad_(True)
        s = scan(torch.softmax(leaf, dim=1))
        (0.5 * torch.logsumexp(s.flatten(1) / 0.5, dim=1)).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("chunk", [37, 500, 2**20])
def test_chunked_scan_finds_the_previous_exact_best_hit_on_both_strands(chunk, skip):
    pred = PWMPredictor(load_motif("MA0139.2"))
    rng = np.random.default_rng(chunk)
    for length in (15, 60, 900, 3_000):
        codes = rng.integers(0, 4, (6, length)).astype(np.uint8)
        codes[0, 10:14] = 4  # an N run: uniform scores it, skip leaves its windows out
        codes[1, :] = np.where(rng.random(length) < 0.3, 4, codes[1])
        score, start, strand, s = previous_exact(pred, codes, skip=skip)
        hits = pred.scan(codes, "skip" if skip else "uniform", chunk=chunk)
        finite = np.isfinite(score)
        assert np.array_equal(np.isfinite(hits["score"]), finite)
        np.testing.assert_allclose(hits["score"][finite], score[finite], atol=2e-5, rtol=0)
        # where the best window is unique beyond float noise, the same window and strand
        top2 = torch.topk(s.flatten(1), 2, dim=1).values.double().numpy()
        with np.errstate(invalid="ignore"):  # -inf - -inf where every window was skipped
            clear = finite & (top2[:, 0] - top2[:, 1] > 1e-3)
        assert np.array_equal(hits["hit_start"][clear], start[clear])
        assert np.array_equal(hits["hit_strand"][clear], strand[clear])
        assert (hits["hit_start"][~finite] == -1).all()
    assert (hits["hit_strand"] == 1).any() and (hits["hit_strand"] == 0).any()  # both strands seen


def test_scan_finds_a_planted_site_anywhere_in_a_long_sequence_on_either_strand():
    pwm = load_motif("MA0139.2")
    pred = PWMPredictor(pwm)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, (2, 200_000)).astype(np.uint8)
    site = np.array(["ACGT".index(c) for c in pwm.consensus], dtype=np.uint8)
    codes[0, 123_457 : 123_457 + pwm.length] = site
    codes[1, 199_985:] = (3 - site)[::-1]  # reverse complement at the very end: the last window
    seen = []
    hits = pred.scan(codes, chunk=10_000, on_block=seen.append)  # dna-score's progress bar counts these
    assert sum(seen) == 2 * (200_000 - pwm.length + 1) and max(seen) <= 10_000
    np.testing.assert_allclose(hits["score"], pwm.max_score, atol=1e-4)
    assert hits["hit_start"].tolist() == [123_457, 200_000 - pwm.length]
    assert hits["hit_strand"].tolist() == [0, 1]


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    from gengen.dna.predictor.scoring import score_records
    from gengen.io.motifs import pwm_from_counts

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    rng = np.random.default_rng(0)
    pwm = pwm_from_counts(rng.integers(0, 40, (4, 20)).astype(float), name="w20")
    seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, int(sys.argv[1]))])
    score_records([("warm", seq[:1000])], pwm=pwm)  # imports and the first GEMM before the baseline
    before = peak_mb()
    t0 = time.process_time()
    table, _ = score_records([("chr", seq)], pwm=pwm)
    print(json.dumps({"cpu_s": time.process_time() - t0, "extra_mb": peak_mb() - before,
                      "score": float(table["motif_score"][0])}))
""")


def test_a_one_megabase_record_scores_in_bounded_memory_and_time():
    """The whole-matrix scan needed 8 L² floats (32 TB for 1 Mb); the chunked one a few copies of the
    sequence: its peak grows by well under 300 MB and it runs at > 1 Mb per CPU second even on a
    busy machine (benchmarks/pwm_scan.py measures ~30 Mb/s)."""
    res = subprocess.run([sys.executable, "-c", MEMORY_PROBE, "1000000"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["extra_mb"] < 300, out
    assert out["cpu_s"] < 5, out
    assert np.isfinite(out["score"])


def test_avoided_pattern_counts_of_long_sequences_match_the_whole_matrix():
    """The avoided-pattern scanner had the same L² matrix (dna-design --length 100000 --avoid GAATTC): blocked
    beyond BANDED_MAX_LENGTH, with the same counts."""
    from gengen.dna.designer.greedy import PatternScanner

    rng = np.random.default_rng(0)
    length = 1_200
    codes = torch.as_tensor(rng.integers(0, 4, (3, length)).astype(np.uint8))
    codes[0, 100:106] = torch.tensor([2, 0, 0, 3, 3, 1])  # GAATTC
    codes[1, 1_190:1_194] = 0  # AAAA at the very end
    long_scan = PatternScanner(["GAATTC", "AAAA", "SS"], length)
    assert long_scan.blocked
    short_scan = PatternScanner(["GAATTC", "AAAA", "SS"], 400)  # the whole matrix, as before
    x = codes_to_one_hot(codes)
    sums = long_scan.window_sums(x)
    # the first 400 bases' windows: same as the whole-matrix scanner on that stretch, pattern by pattern
    ref = short_scan.window_sums(x[:, :, :400])
    offset_long = offset_short = 0
    for a in long_scan.allowed:
        w = a.shape[1]
        torch.testing.assert_close(sums[:, offset_long : offset_long + 400 - w + 1],
                                   ref[:, offset_short : offset_short + 400 - w + 1])
        offset_long += length - w + 1
        offset_short += 400 - w + 1
    strings = ["".join("ACGT"[c] for c in row.tolist()) for row in codes]
    occ = long_scan.occurrences(x) - (sums[:, offset_long - (length - 1):] > 1.5).sum(dim=1)  # without SS
    expected = [sum(_overlapping(s, p) for p in ("GAATTC", "AAAA", "TTTT")) for s in strings]
    assert occ.tolist() == expected and expected[0] >= 1


def _overlapping(text: str, pattern: str) -> int:
    return sum(text.startswith(pattern, i) for i in range(len(text) - len(pattern) + 1))
