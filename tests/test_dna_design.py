"""Direct and joint design, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from dna_fixtures import (
    TOY_COUNTS,
)
from gengen.dna import GANModel, GANRecipe, Generator, PWMPredictor, design, design_direct, design_joint
from gengen.dna.metrics import (
    fit_markov,
    hamming_diversity,
    hit_mask,
    js_divergence,
    kmer_js_table,
    kmer_spectrum,
    sample_iid,
    sample_markov,
)
from gengen.errors import GengenError
from gengen.io.motifs import load_motif, pwm_from_counts


@pytest.mark.parametrize("straight_through", [True, False])
def test_direct_design_reaches_consensus_on_tiny_motif(straight_through):
    pwm = pwm_from_counts(TOY_COUNTS)
    r = design_direct(
        PWMPredictor(pwm),
        n=64,
        length=20,
        steps=150,
        straight_through=straight_through,
        seed=1,
        device="cpu",
        quiet=True,
        pwm=pwm,
    )
    s = r.summary()
    if straight_through:  # the estimator can stall a few sequences one base short
        assert s["fraction_of_max"] > 0.97
    else:
        assert r.scores.min() == pytest.approx(pwm.max_score, abs=1e-4)
        assert s["fraction_of_max"] == pytest.approx(1.0, abs=1e-6) and s["steps_to_99pct"] <= 150
    assert s["diversity_outside_hit"] > 0.5
    hits = r.table()["hit_sequence"]
    assert np.mean([h in (pwm.consensus, "CTCGC") for h in hits]) > 0.8  # consensus on either strand


def test_direct_design_is_deterministic_and_reports_onehot():
    pwm = load_motif("MA0139.2")
    a = design(PWMPredictor(pwm), n=16, length=30, steps=40, seed=3, device="cpu", quiet=True)
    b = design(PWMPredictor(pwm), n=16, length=30, steps=40, seed=3, device="cpu", quiet=True)
    assert np.array_equal(a.codes, b.codes)
    assert a.history["onehot_mean"].iloc[-1] == pytest.approx(a.scores.mean(), abs=1e-3)
    assert a.scores.mean() > a.initial_scores.mean() + 5


def test_min_and_value_targets():
    pwm = pwm_from_counts(TOY_COUNTS)
    lo = design_direct(PWMPredictor(pwm), n=16, length=12, steps=100, target="min", device="cpu", quiet=True)
    assert lo.scores.mean() < 0
    # a value is hit by the reported (exact, one-hot) score, not by the smooth relaxed one
    mid = design_direct(PWMPredictor(pwm), n=32, length=12, steps=200, target="2.0", device="cpu", quiet=True)
    err = np.abs(mid.scores - 2.0)
    # a 5-bp toy motif has coarse score levels, and a design whose two best windows both sit above the
    # value needs two substitutions at once: most designs land on it, a few stay off
    assert np.median(err) < 0.05 and err.mean() < 0.25 * np.abs(mid.initial_scores - 2.0).mean()
    assert mid.summary()["target_abs_error_mean"] == pytest.approx(np.abs(mid.scores - 2.0).mean())
    assert mid.settings["straight_through"] is True
    for bad in ("big", "nan", "inf", "-inf"):
        with pytest.raises(GengenError, match="--target"):
            design_direct(PWMPredictor(pwm), n=2, length=12, steps=1, target=bad)


def test_polish_toward_only_moves_scores_closer():
    import torch

    from gengen.dna.designer.design import _onehot_score, polish_toward

    pwm = pwm_from_counts(TOY_COUNTS)
    pred = PWMPredictor(pwm)
    codes = torch.as_tensor(np.random.default_rng(3).integers(0, 4, (40, 15)))
    eye = torch.eye(4)
    before = (_onehot_score(pred, eye[codes].transpose(1, 2)) - 1.5).abs()
    out = polish_toward(pred, codes, 1.5, rounds=10)
    after = (_onehot_score(pred, eye[out.long()].transpose(1, 2)) - 1.5).abs()
    assert out.shape == codes.shape and bool((after <= before + 1e-6).all())
    assert float(after.mean()) < 0.5 * float(before.mean())
    assert out.dtype == torch.uint8 and int((out.long() != codes).sum(dim=1).max()) <= 10  # at most one substitution per round


def test_joint_design_hits_a_value():
    pwm = pwm_from_counts(TOY_COUNTS)
    gen = Generator(length=20, latent=8, channels=8, blocks=1)
    gan = GANModel(gen, GANRecipe(length=20, latent=8, channels=8, blocks=1))
    r = design_joint(gan, PWMPredictor(pwm), n=16, steps=50, target=3.0, seed=0, device="cpu", quiet=True)
    assert np.abs(r.scores - 3.0).mean() < 0.3


def test_joint_design_raises_score_over_unconditioned_samples():
    pwm = pwm_from_counts(TOY_COUNTS)
    gen = Generator(length=20, latent=8, channels=8, blocks=1)
    gan = GANModel(gen, GANRecipe(length=20, latent=8, channels=8, blocks=1))
    r = design_joint(gan, PWMPredictor(pwm), n=32, steps=150, seed=0, device="cpu", quiet=True, pwm=pwm)
    assert r.scores.mean() > r.initial_scores.mean() + 1.0
    assert r.hit_start is not None and len(r.records()) == 32


def test_kmer_metrics():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(500, 30)).astype(np.uint8)
    assert kmer_spectrum(a, 2).shape == (16,) and kmer_spectrum(a, 2).sum() == pytest.approx(1)
    assert js_divergence(kmer_spectrum(a, 3), kmer_spectrum(a, 3)) == pytest.approx(0)
    assert js_divergence(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1)
    # a sequence set with strong dinucleotide structure: Markov(1) reproduces it, i.i.d. does not
    seq = np.tile(np.array([0, 1, 2, 3], dtype=np.uint8), (400, 10))[:, :30]
    rng.shuffle(seq, axis=0)
    mk = sample_markov(fit_markov(seq, 1, pseudocount=0.01), 1, 400, length=30, seed=1)
    iid = sample_iid(kmer_spectrum(seq, 1), 400, 30, seed=1)
    assert js_divergence(kmer_spectrum(mk, 2), kmer_spectrum(seq, 2)) < 0.05
    assert js_divergence(kmer_spectrum(iid, 2), kmer_spectrum(seq, 2)) > 0.3
    table = kmer_js_table({"same": a[:250]}, a[250:], a[:250], ks=(1, 2, 3))
    assert list(table.columns) == ["k", "same", "iid", "markov", "real_train"] and len(table) == 3


def test_hamming_diversity_outside_hits():
    a = np.zeros((3, 10), dtype=np.uint8)
    a[1] = 1
    a[2, :5] = 2
    assert hamming_diversity(a) == pytest.approx((1.0 + 0.5 + 1.0) / 3)
    mask = hit_mask(10, np.array([0, 0, 0]), 5)
    assert hamming_diversity(a, exclude=mask) == pytest.approx((1.0 + 0.0 + 1.0) / 3)


def test_incremental_pwm_substitution_scores_match_rescoring_every_candidate():
    import torch

    from gengen.dna.designer.objective_kinds.motif import pwm_substitution_scores
    from gengen.dna.designer.objectives import score_codes

    for pwm, length in ((pwm_from_counts(TOY_COUNTS), 12), (load_motif("MA0139.2"), 40), (load_motif("MA0139.2"), 15)):
        pred = PWMPredictor(pwm)
        codes = torch.as_tensor(np.random.default_rng(length).integers(0, 4, (6, length)))
        fast = pwm_substitution_scores(pred, codes)  # (N, L, 3)
        cand = codes[:, None, None, :].expand(-1, length, 3, -1).clone()
        for p in range(length):
            for k in range(3):
                cand[:, p, k, p] = (codes[:, p] + k + 1) % 4
        slow = score_codes(pred, cand.reshape(-1, length), 1000).view(6, length, 3)
        assert torch.allclose(fast, slow, atol=1e-4)


def test_design_stops_on_a_plateau_by_default_with_the_designs_of_that_many_steps():
    """Issue 18, item 12: without steps, design stops when the mean one-hot objective stops rising, says
    so, and keeps exactly the designs a run of that many steps gives; explicit steps still run them all."""
    pwm = load_motif("MA0035.4")
    free = design(PWMPredictor(pwm), 64, 30, seed=3, device="cpu")
    st = free.settings
    assert st["stopped"] == "plateau" and 50 <= st["steps"] < st["max_steps"] == 500, st
    assert free.history["step"].iloc[-1] == st["steps"]
    assert free.summary()["fraction_of_max"] > 0.99
    assert any(line.startswith(f"stopped on a plateau at step {st['steps']} of at most 500") for line in free.report())
    fixed = design(PWMPredictor(pwm), 64, 30, steps=st["steps"], seed=3, device="cpu")
    assert np.array_equal(fixed.codes, free.codes)
    assert fixed.settings["stopped"] == "steps" and not any("plateau" in line for line in fixed.report())
    full = design(PWMPredictor(pwm), 64, 30, steps=200, seed=3, device="cpu")
    assert full.settings["steps"] == 200 and full.history["step"].iloc[-1] == 200


def test_plateau_rule_edge_cases_value_targets_and_the_cap():
    pwm = load_motif("MA0035.4")
    hit = design(PWMPredictor(pwm), 32, 30, target=5.0, seed=0, device="cpu")  # straight-through, noisy readouts
    assert hit.settings["stopped"] in ("plateau", "max_steps")
    assert hit.summary()["target_abs_error_mean"] < 0.3
    capped = design(PWMPredictor(pwm), 16, 30, max_steps=20, plateau_steps=50, seed=0, device="cpu")
    assert capped.settings["steps"] == 20 and capped.settings["stopped"] == "max_steps"
    assert any("still rising" in line or "--max-steps" in line for line in capped.report())
    with pytest.raises(GengenError, match="max-steps"):
        design(PWMPredictor(pwm), 4, 30, max_steps=0, device="cpu")
    with pytest.raises(GengenError, match="tolerance"):
        design(PWMPredictor(pwm), 4, 30, plateau_tolerance=float("nan"), device="cpu")


def test_the_cap_line_says_rising_only_when_the_score_still_rose():
    """User test, item 1: a run that hit --max-steps said "still rising" even with every design at the
    consensus; now it says rising, levelled off, or too few steps to tell, from the plateau rule's record."""
    pwm = pwm_from_counts(TOY_COUNTS)
    kw = dict(seed=1, device="cpu", record_every=1, plateau_steps=10)
    free = design(PWMPredictor(pwm), 8, 20, max_steps=500, **kw)
    stop, rise = free.settings["steps"], free.settings["last_rise"]
    assert free.settings["stopped"] == "plateau" and stop - rise == 10, free.settings
    levelled = design(PWMPredictor(pwm), 8, 20, max_steps=stop, **kw)  # the window closes on the last step
    assert levelled.settings["stopped"] == "max_steps" and levelled.settings["last_rise"] == rise
    assert "levelled off (no rise over the last 10 steps)" in levelled.stop_line()
    assert "still rising" not in levelled.stop_line()
    short = design(PWMPredictor(pwm), 8, 20, max_steps=stop - 5, **kw)  # 5 flat steps: cannot tell
    assert f"last rose at step {rise}, {stop - 5 - rise} step(s) before the end: too few steps" in short.stop_line()
    assert "still rising" not in short.stop_line()
    rising = design(PWMPredictor(pwm), 8, 20, max_steps=2, **kw)
    assert rising.settings["last_rise"] == 2 and "still rising" in rising.stop_line()
