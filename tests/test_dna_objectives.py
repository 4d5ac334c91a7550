"""Several objectives on a common scale, each objective kind and target, weights, the model left as
found, novelty against a brute-force reference, and latent interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dna_fixtures import TOY_COUNTS
from gengen.dna import GANModel, GANRecipe, Generator
from gengen.dna.designer.design import design
from gengen.dna.designer.objectives import Objective, calibrate, column_names, parse_objective, random_codes
from gengen.dna.gan.interpolate import interpolate, latent_paths, slerp
from gengen.dna.gan.novelty import exact_copies, nearest_distances, novelty_table, reverse_complement_codes
from gengen.dna.predictor.predictors import CNNPredictor, PWMPredictor
from gengen.errors import GengenError
from gengen.io.motifs import load_motif, pwm_from_counts


def toy(rev: bool = False) -> PWMPredictor:
    return PWMPredictor(pwm_from_counts(TOY_COUNTS[::-1] if rev else TOY_COUNTS, name="rev" if rev else "toy"))


def test_parse_objective_specs_and_their_errors():
    s = parse_objective("predictor=cebpa_pred, target=min, weight=0.5")
    assert (s.kind, s.source, s.target, s.weight) == ("predictor", "cebpa_pred", "min", 0.5)
    s = parse_objective("motif=MA0139.2,target=12.5")
    assert (s.kind, s.target, s.weight) == ("motif", 12.5, 1.0)
    assert parse_objective("MOTIF=x.jaspar").target == "max"
    bad = {
        "": "empty", "predictor": "not key=value", "color=red": "unknown key 'color'",
        "motif=a,predictor=b": "exactly one of", "target=max": "exactly one of",
        "motif=a,motif=b": "given twice", "motif=a,,weight=1": "empty item", "motif=a,weight=": "has no value",
        "motif=a,weight=-1": "positive", "motif=a,weight=0": "positive", "motif=a,weight=nan": "positive",
        "motif=a,weight=heavy": "must be a number", "motif=a,target=big": "target must be max, min",
        "motif=a,target=inf": "target must be",
    }
    for spec, msg in bad.items():
        with pytest.raises(GengenError, match=msg) as exc:
            parse_objective(spec)
        assert "\n" not in str(exc.value)


def test_calibration_is_mean_and_sd_over_random_sequences():
    obj = Objective(toy(), name="toy")
    ref = calibrate([obj], 20, n=500, seed=3)
    codes = random_codes(500, 20, seed=3)
    eye = np.eye(4)
    x = torch.as_tensor(eye[codes].transpose(0, 2, 1), dtype=torch.float32)
    exact = toy().exact(x)[0].numpy()
    assert np.allclose(ref[:, 0], exact, atol=1e-5)
    assert obj.center == pytest.approx(exact.mean(), abs=1e-4) and obj.scale == pytest.approx(exact.std(ddof=1), abs=1e-4)
    const = Objective(PWMPredictor(pwm_from_counts(np.ones((4, 3)))), name="flat")  # all log-odds 0
    calibrate([const], 20, n=50)
    assert const.scale == 1.0  # no spread: raw units


def test_two_objectives_push_one_up_and_the_other_down_and_weights_trade_them():
    up, down = toy(), toy(rev=True)

    def run(w):
        objs = [Objective(up, "max", name="toy"), Objective(down, "min", w, name="rev")]
        return design(objs, 48, 24, steps=120, seed=0, device="cpu", quiet=True)

    light, heavy = run(0.2), run(5.0)  # the two toy motifs overlap: pushing one down costs the other
    assert light.objective_scores.shape == (48, 2)
    assert light.objective_scores[:, 0].mean() > light.initial_objective_scores[:, 0].mean() + 2
    for r in (light, heavy):
        assert r.objective_scores[:, 1].mean() < r.initial_objective_scores[:, 1].mean() - 1
    assert heavy.objective_scores[:, 1].mean() < light.objective_scores[:, 1].mean() - 0.5
    assert heavy.objective_scores[:, 0].mean() < light.objective_scores[:, 0].mean()
    t = heavy.table()
    assert {"score_toy", "score_rev", "combined"} <= set(t.columns) and "score" not in t.columns
    assert np.allclose(t["score_toy"], heavy.objective_scores[:, 0])
    # combined = sum of weighted standardised utilities, as stated
    o, s = heavy.objectives, heavy.objective_scores
    expect = (s[:, 0] - o[0].center) / o[0].scale - 5.0 * (s[:, 1] - o[1].center) / o[1].scale
    assert np.allclose(heavy.combined, expect, atol=1e-4)
    assert heavy.reference_scores.shape == (2048, 2)


def test_value_target_within_several_objectives_and_a_predictor_objective():
    torch.manual_seed(0)
    cnn = CNNPredictor(channels=8, width=5, hidden=8)
    objs = [Objective(toy(), 3.0, name="toy"), Objective(cnn, "max", 0.5, name="cnn")]
    r = design(objs, 24, 20, steps=80, seed=1, device="cpu", quiet=True)
    err = np.abs(r.objective_scores[:, 0] - 3.0)
    assert np.median(err) < 0.35 and err.mean() < 0.5 * np.abs(r.initial_objective_scores[:, 0] - 3.0).mean()
    assert r.objective_scores[:, 1].mean() > r.initial_objective_scores[:, 1].mean()
    with torch.no_grad():  # the reported predictor score is the model's output on the one-hot design
        x = torch.as_tensor(np.eye(4)[r.codes].transpose(0, 2, 1), dtype=torch.float32)
        assert np.allclose(cnn(x).numpy(), r.objective_scores[:, 1], atol=1e-4)
    assert r.settings["straight_through"] is True and column_names(objs) == ["score_toy", "score_cnn"]


def test_min_target_single_predictor_and_same_names_get_unique_columns():
    r = design(toy(), 16, 15, target="min", steps=60, device="cpu", quiet=True)
    assert r.scores.mean() < r.initial_scores.mean() - 3
    assert column_names([Objective(toy(), name="a b"), Objective(toy(), name="a b")]) == ["score_a_b", "score_a_b_2"]


def _model_state(m: torch.nn.Module):
    return ([(type(s).__name__, s.training) for s in m.modules()], [p.requires_grad for p in m.parameters()],
            {t.device for t in list(m.parameters()) + list(m.buffers())},
            [p.detach().clone() for p in m.parameters()], [p.grad for p in m.parameters()])


def test_design_leaves_the_users_models_as_it_found_them():
    torch.manual_seed(0)
    cnn = CNNPredictor(channels=8, width=5, hidden=8).train()
    cnn.members[0].head[0].requires_grad_(False)  # a partly frozen model stays partly frozen
    gen = Generator(length=20, latent=8, channels=8, blocks=1).train()
    gan = GANModel(gen, GANRecipe(length=20, latent=8, channels=8, blocks=1))
    before_cnn, before_gen = _model_state(cnn), _model_state(gen)
    design([Objective(cnn, "max", name="cnn"), Objective(toy(), 2.0, name="toy")], 6, None, gan=gan, steps=5,
           device="cpu", quiet=True)
    design(cnn, 4, 20, steps=5, device="cpu", quiet=True)
    for before, m in ((before_cnn, cnn), (before_gen, gen)):
        after = _model_state(m)
        assert after[:3] == before[:3]
        assert all(torch.equal(a, b) for a, b in zip(after[3], before[3]))
        assert all(g is None for g in after[4])


def test_joint_design_with_avoid_and_gc():
    gen = Generator(length=24, latent=8, channels=8, blocks=1)
    gan = GANModel(gen, GANRecipe(length=24, latent=8, channels=8, blocks=1))
    from gengen.dna.designer.constraints import Constraints, verify

    c = Constraints(avoid=("AAA", "GGG"), gc=(0.3, 0.6))
    r = design(toy(), 12, None, gan=gan, constraints=c, steps=30, device="cpu", quiet=True)
    assert r.method == "joint" and len(r.codes) + r.dropped == 12 and len(r.codes) > 0
    assert verify(r.strings(), c) == [""] * len(r.codes)
    with pytest.raises(GengenError, match="leave out --gan"):
        design(toy(), 2, None, gan=gan, constraints=Constraints(start=np.zeros((1, 24), np.uint8)), steps=1)


# --------------------------------------------------------------------------------------------------
# Novelty


def brute_nearest(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    rc = reverse_complement_codes(reference)
    out = []
    for q in queries:
        best = q.shape[0]
        for r in list(reference) + list(rc):
            best = min(best, sum(1 for a, b in zip(q, r) if a != b or a == 4))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("length", [7, 30])
def test_nearest_distances_match_brute_force(length):
    rng = np.random.default_rng(length)
    ref = rng.integers(0, 4, (150, length)).astype(np.uint8)
    q = rng.integers(0, 4, (40, length)).astype(np.uint8)
    q[0] = ref[5]
    q[1] = reverse_complement_codes(ref[9:10])[0]
    q[2] = ref[7]
    q[2, 3] = (q[2, 3] + 1) % 4
    q[3, 2] = 4  # an N mismatches everything
    ref[11, 1] = 4
    d = nearest_distances(q, ref, block=64)
    assert d.tolist() == brute_nearest(q, ref).tolist()
    assert d[0] == 0 and d[1] == 0 and d[2] <= 1
    one = nearest_distances(q, ref, both_strands=False)
    assert one[1] > 0 or (q[1] == ref).all(axis=1).any()  # the reverse-complement copy is found only on both strands
    copies = exact_copies(q, ref)
    assert copies.tolist() == (brute_nearest(q, ref) == 0).tolist()


def test_novelty_table_compares_sets_on_the_same_reference():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 4, (500, 12)).astype(np.uint8)
    copies = train[:20]
    fresh = rng.integers(0, 4, (20, 12)).astype(np.uint8)
    table, dist = novelty_table({"copies": copies, "fresh": fresh}, train, max_reference=100, seed=1)
    t = table.set_index("set")
    assert t.loc["copies", "exact_copies"] == 1.0 and t.loc["fresh", "exact_copies"] <= 0.1
    assert table.attrs["reference"] == 100 and table.attrs["train"] == 500
    assert t.loc["fresh", "mean"] > t.loc["copies", "mean"]
    assert len(dist["fresh"]) == 20


# --------------------------------------------------------------------------------------------------
# Interpolation


def test_slerp_keeps_norms_and_ends():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(5, 100, generator=g), torch.randn(5, 100, generator=g)
    path = latent_paths(z0, z1, 9)
    assert torch.allclose(path[:, 0], z0, atol=1e-5) and torch.allclose(path[:, -1], z1, atol=1e-5)
    norms = path.norm(dim=2)
    lin = latent_paths(z0, z1, 9, method="linear").norm(dim=2)
    # the great circle stays near the endpoints' norms; the straight line sags through the middle
    assert (norms[:, 4] / norms[:, [0, -1]].mean(dim=1)).min() > 0.95
    assert (lin[:, 4] / lin[:, [0, -1]].mean(dim=1)).mean() < 0.8
    same = slerp(z0, z0.clone(), torch.linspace(0, 1, 3))  # parallel: no arc, still well defined
    assert torch.isfinite(same).all() and torch.allclose(same[:, 1], z0, atol=1e-4)
    with pytest.raises(GengenError, match="at least 2"):
        latent_paths(z0, z1, 1)


def test_interpolate_writes_paths_with_scores(tmp_path):
    torch.manual_seed(0)
    gen = Generator(length=20, latent=8, channels=8, blocks=1)
    gan = GANModel(gen.eval(), GANRecipe(length=20, latent=8, channels=8, blocks=1))
    res = interpolate(gan, 3, 5, objectives=[Objective(toy(), name="toy")], seed=2)
    t = res.table
    assert len(t) == 15 and list(t["step"][:5]) == [0, 1, 2, 3, 4] and t["t"].iloc[4] == 1.0
    ends = gan.sample_latent(6, 2)
    first = gan.generate_soft(ends[:3]).argmax(dim=1).numpy()
    assert (res.codes.reshape(3, 5, 20)[:, 0] == first).all()
    assert (t.loc[t["step"] == 0, "distance_from_start"] == 0).all()
    eye = np.eye(4)
    x = torch.as_tensor(eye[res.codes].transpose(0, 2, 1), dtype=torch.float32)
    assert np.allclose(t["score_toy"], toy().exact(x)[0].numpy(), atol=1e-4)
    paths = res.write(tmp_path / "paths.fa")
    assert [p.name for p in paths] == ["paths.fa", "paths.tsv", "paths.png"]
    assert (tmp_path / "paths.fa").read_text().count(">") == 15 and "score_toy=" in (tmp_path / "paths.fa").read_text()


def test_real_motif_objectives_report_hits_of_the_first_motif():
    ctcf, gata = load_motif("MA0139.2"), load_motif("MA0035.4")
    objs = [Objective(PWMPredictor(ctcf), name=ctcf.name), Objective(PWMPredictor(gata), "min", name=gata.name)]
    r = design(objs, 20, 40, steps=100, seed=0, device="cpu", quiet=True)
    t = r.table()
    assert r.objective_scores[:, 0].mean() > 0.75 * ctcf.max_score  # parts of CTCF sites look GATA-like
    assert r.objective_scores[:, 1].mean() < r.initial_objective_scores[:, 1].mean() - 3
    assert {"hit_start", "hit_strand", "hit_sequence"} <= set(t.columns) and (t["hit_sequence"].str.len() == 15).all()


def test_dominance_on_a_known_trade_off():
    from gengen.dna.metrics import dominance

    ref = np.array([[1.0, 1.0], [2.0, 3.0], [0.0, 0.5]])  # (up, down) scores of reference sequences
    designs = np.array([[3.0, 0.2], [2.5, 1.0], [1.0, 1.0], [-1.0, 5.0]])
    d = dominance(designs, ref, [True, False])
    # design 0 beats every reference on both; design 1 dominates refs 0 and 1 only; design 2 ties ref 0
    # and is dominated by none; design 3 is dominated by all
    assert d["dominate_all"] == pytest.approx(0.25)
    assert d["not_dominated"] == pytest.approx(0.75)
    assert d["mean_dominated"] == pytest.approx((3 + 2 + 0 + 0) / 12)
    assert d["corner"].tolist() == [2.0, 0.5]
