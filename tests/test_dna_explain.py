"""dna-explain (issue 19): attributions with known answers, motifs found in them, JASPAR 2024 matches, and
dna-design --annotate.

Known answers:

- **ISM of a PWM.** For a sequence whose PWM score is set by one hit -- its best window beats every
  other window by more than any single substitution can change the two -- the score change of writing
  base ``b`` at position ``p + j`` of a + strand hit starting at ``p`` is exactly
  ``log_odds[b, j] - log_odds[observed, j]`` (the PWM's log-odds difference), on the - strand
  ``log_odds[comp(b), W-1-j] - log_odds[comp(observed), W-1-j]``, and 0 outside the hit.
- **Gradient x input of a PWM.** The best-window maximum is linear in the hit's bases, so the gradient
  at the hit is the PWM column; tangermeme's corrected gradient (mean over bases removed) is
  ``log_odds[b, j] - mean(log_odds[:, j])``. DeepLIFT's rules do not cover the maximum (its convergence
  check fails): the fallback must be taken and said.
- **What a predictor learned.** A small CNN trained here on sequences with a planted JASPAR motif (ZBTB33,
  MA0527.2: no other JASPAR 2024 profile within 20 orders of magnitude of its self-match) yields that
  motif as the rank-1 JASPAR match.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gengen.cli import app
from gengen.dna.designer.objectives import Objective
from gengen.dna.predictor.predictors import PWMPredictor
from gengen.io.motifs import pwm_from_counts
from gengen.io.sequences import SequenceSet, codes_to_one_hot

COMP = np.array([3, 2, 1, 0])


def toy_pwm():
    counts = np.array([[8, 0, 1, 0, 9, 1, 0, 2],
                       [1, 9, 0, 1, 0, 0, 8, 5],
                       [0, 1, 8, 0, 1, 8, 1, 2],
                       [1, 0, 1, 9, 0, 1, 1, 1]], dtype=float)
    return pwm_from_counts(counts, name="toy")


def _single_hit_sequence(pwm, length: int, strand: int, rng) -> tuple[np.ndarray, int]:
    """A random sequence with the consensus planted at one place, redrawn until that hit decides the score
    whatever single substitution is made (the condition of the known answer)."""
    lo = pwm.log_odds
    width = pwm.length
    consensus = lo.argmax(axis=0)
    site = consensus if strand == 0 else COMP[consensus[::-1]]
    pred = PWMPredictor(pwm)
    for _ in range(200):
        codes = rng.integers(0, 4, length).astype(np.uint8)
        start = int(rng.integers(0, length - width + 1))
        codes[start : start + width] = site
        windows = pred.window_scores(codes_to_one_hot(codes[None]))[0].numpy()  # (2, P)
        best = windows[strand, start]
        others = windows.copy()
        others[strand, start] = -np.inf
        span = np.ptp(lo, axis=0).max()  # the most one substitution can move any window
        if best - others.max() > 2 * span + 1e-6:
            return codes, start
    raise AssertionError("no sequence with a deciding hit")


@pytest.mark.parametrize("strand", [0, 1])
def test_ism_of_a_pwm_is_its_log_odds_difference(strand):
    from gengen.dna.predictor.explain import ExplainedScore, ism

    pwm = toy_pwm()
    rng = np.random.default_rng(strand)
    codes, start = _single_hit_sequence(pwm, 40, strand, rng)
    model = ExplainedScore([Objective(PWMPredictor(pwm), name="toy")])
    scores, delta = ism(model, codes_to_one_hot(codes[None]), device="cpu")
    expected = np.zeros((4, 40))
    lo = pwm.log_odds
    for j in range(pwm.length):
        i = start + j
        if strand == 0:
            expected[:, i] = lo[:, j] - lo[codes[i], j]
        else:
            col = pwm.length - 1 - j
            expected[:, i] = lo[COMP, col] - lo[COMP[codes[i]], col]
    assert scores[0] == pytest.approx(PWMPredictor(pwm).exact_score(codes_to_one_hot(codes[None]))[0].item(), abs=1e-5)
    np.testing.assert_allclose(delta[0], expected, atol=1e-5)
    outside = np.ones(40, dtype=bool)
    outside[start : start + pwm.length] = False
    assert (delta[0][:, outside] == 0).all()


def test_ism_workers_give_the_same_answer():
    """Sequences shared among CPU worker threads (--threads): the same deltas as one worker, in order."""
    from gengen.dna.predictor.explain import ExplainedScore, ism

    codes = np.random.default_rng(3).integers(0, 4, (37, 20)).astype(np.uint8)
    model = ExplainedScore([Objective(_ModuleNet(), name="net")]).eval()
    x = codes_to_one_hot(codes)
    s1, d1 = ism(model, x, device="cpu", workers=1)
    s3, d3 = ism(model, x, device="cpu", workers=3)
    np.testing.assert_allclose(s1, s3, rtol=1e-6)
    np.testing.assert_allclose(d1, d3, atol=1e-5)
    assert torch.get_num_threads() == 1  # the conftest's count, put back
    with torch.no_grad():
        expected = model(x).squeeze(1).numpy()
    np.testing.assert_allclose(s3, expected, rtol=1e-5)


def _every_substitution_by_forward_passes(model, x: torch.Tensor) -> torch.Tensor:
    """``(N, 4, L)`` the output with each base written at each position, one forward pass per substitution
    (the observed base: the sequence's own output)."""
    n, _, length = x.shape
    out = torch.empty(n, 4, length)
    with torch.no_grad():
        base = model(x)
        for i in range(length):
            for b in range(4):
                y = x.clone()
                y[:, :, i] = 0
                y[:, b, i] = 1
                out[:, b, i] = torch.where(x[:, b, i] == 1, base, model(y))
    return out


@pytest.mark.parametrize("arch", [
    {"dilations": (2, 4), "members": 3, "flanks": True},  # today's default
    {},  # the earlier single network: zero padding, one dilated block
    {"width": 10, "dilations": (), "flanks": True},  # an even first convolution, no block
    {"width": 4, "dilations": (1, 3, 8)},  # a receptive field wider than the sequence
])
def test_cnn_substitution_outputs_equal_forward_passes(arch):
    """The CNN's own ISM (only the positions each substitution reaches recomputed) is every substituted
    sequence's forward pass, up to float rounding: for N columns (all four bases are substitutions) and
    fractional columns too, on short and longer sequences, forward and reverse strands."""
    from gengen.dna.predictor.predictors import CNNPredictor

    torch.manual_seed(0)
    model = CNNPredictor(16, **arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    for length in (7, 30):
        x = codes_to_one_hot(np.random.default_rng(length).integers(0, 4, (5, length)).astype(np.uint8))
        x[0, :, 3] = 0  # an N
        x[1, :, 2] = 0.25
        outputs, table = model.substitution_outputs(x)
        expected = _every_substitution_by_forward_passes(model, x)
        scale = float(expected.abs().max())
        assert scale > 1
        np.testing.assert_allclose(table.numpy(), expected.numpy(), atol=2e-6 * scale)
        np.testing.assert_allclose(outputs.numpy(), model(x).detach().numpy(), atol=1e-6 * scale)
        assert table.shape == (5, 4, length)


@pytest.mark.parametrize("with_n", [False, True])
def test_ism_of_a_cnn_takes_its_own_way_and_equals_tangermeme(with_n):
    """dna-explain's ISM through gengen's CNN uses the CNN's own substitutions (said in words), and gives
    tangermeme's forward-pass deltas: 0 at the observed base, all four bases at an N."""
    from gengen.dna.predictor.explain import ExplainedScore, ism, ism_method
    from gengen.dna.predictor.predictors import CNNPredictor

    torch.manual_seed(1)
    cnn = CNNPredictor(16, dilations=(2, 4), members=2, flanks=True).eval()
    with torch.no_grad():
        for p in cnn.parameters():
            p.normal_(std=0.3)
    codes = np.random.default_rng(2).integers(0, 4, (9, 24)).astype(np.uint8)
    if with_n:
        codes[[0, 4], [5, 23]] = 4
    x = codes_to_one_hot(codes, ambiguous="zero")
    model = ExplainedScore([Objective(cnn, name="cnn")], ambiguous=with_n).eval()

    class Plain(torch.nn.Module):  # the same score without its own substitutions: tangermeme's passes
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    assert "own incremental" in ism_method(model)
    assert "tangermeme" in ism_method(Plain(model))
    scores, delta = ism(model, x, device="cpu", workers=2)
    t_scores, t_delta = ism(Plain(model), x, device="cpu", workers=1)
    scale = max(1.0, float(np.abs(t_scores).max()), float(np.abs(t_delta).max()))  # float32 rounding of outputs
    np.testing.assert_allclose(scores, t_scores, atol=2e-6 * scale)
    np.testing.assert_allclose(delta, t_delta, atol=1e-5 * scale)
    observed = x.numpy() == 1
    assert (delta[observed] == 0).all()
    assert (np.abs(delta[~observed]) > 0).mean() > 0.9
    if with_n:
        assert (delta[0, :, 5] != 0).all()


def test_cnn_objective_scores_substitutions_its_own_way():
    """The greedy search's substitution scores of a CNN objective (its own way) equal every substituted
    sequence's output, in the (position, k) order the search reads."""
    from gengen.dna.designer.objective_kinds.predictor import PredictorObjective
    from gengen.dna.designer.objectives import score_substitutions
    from gengen.dna.predictor.predictors import CNNPredictor

    torch.manual_seed(2)
    cnn = CNNPredictor(8, dilations=(2,), members=2, flanks=True).eval()
    objective = Objective(cnn, name="cnn")
    assert isinstance(objective, PredictorObjective)
    assert type(Objective(_ModuleNet(), name="net")) is Objective  # any other model: forward passes
    codes = torch.as_tensor(np.random.default_rng(4).integers(0, 4, (6, 19)).astype(np.uint8))
    own = objective.substitution_scores(codes)
    generic = score_substitutions(cnn, codes)
    assert own.shape == (6, 19, 3)
    np.testing.assert_allclose(own.numpy(), generic.numpy(), atol=1e-5 * float(generic.abs().max()))


def test_gradient_of_a_pwm_falls_back_from_deeplift_and_is_the_pwm_column():
    from gengen.dna.predictor.explain import ExplainedScore, gradient_attributions

    pwm = toy_pwm()
    codes, start = _single_hit_sequence(pwm, 30, 0, np.random.default_rng(5))
    model = ExplainedScore([Objective(PWMPredictor(pwm), name="toy")])
    attr, method, note = gradient_attributions(model, codes_to_one_hot(codes[None]), device="cpu")
    assert method == "saliency" and "DeepLIFT/SHAP does not hold" in note
    lo = pwm.log_odds
    hit = attr[0][:, start : start + pwm.length]
    np.testing.assert_allclose(hit, lo - lo.mean(axis=0, keepdims=True), atol=1e-5)
    outside = np.ones(30, dtype=bool)
    outside[start : start + pwm.length] = False
    assert np.abs(attr[0][:, outside]).max() < 1e-6


class _ModuleNet(torch.nn.Module):
    """Built from nn.Modules only (conv, ReLU, linear): DeepLIFT's rescale rule covers it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(4, 8, 5, padding=2)
        self.relu = torch.nn.ReLU()
        self.flat = torch.nn.Flatten()
        self.lin = torch.nn.Linear(8 * 20, 1)

    def forward(self, x):
        return self.lin(self.flat(self.relu(self.conv(x)))).squeeze(1)


def test_deeplift_runs_where_its_rules_hold():
    from gengen.dna.predictor.explain import ExplainedScore, gradient_attributions

    codes = np.random.default_rng(1).integers(0, 4, (24, 20)).astype(np.uint8)
    x = codes_to_one_hot(codes)
    model = ExplainedScore([Objective(_ModuleNet(), name="net")])
    attr, method, note = gradient_attributions(model, x, device="cpu", seed=3)
    assert method == "deep_lift_shap" and "convergence check passed" in note
    assert attr.shape == (24, 4, 20) and np.isfinite(attr).all() and np.abs(attr).sum() > 0


def _sample_sites(counts: np.ndarray, n: int, rng) -> np.ndarray:
    p = counts / counts.sum(axis=0, keepdims=True)
    return np.stack([[rng.choice(4, p=p[:, j]) for j in range(p.shape[1])] for _ in range(n)]).astype(np.uint8)


def test_a_predictor_trained_on_a_planted_jaspar_motif_learns_that_motif():
    """Killoran Fig. 7a in small: the motif the predictor detected is the planted one, rank 1 in JASPAR 2024."""
    from gengen.dna.predictor.explain import explain
    from gengen.dna.predictor.training import train_predictor
    from gengen.io.jaspar import jaspar_database
    from gengen.recipes import PredictorRecipe

    db = jaspar_database()
    counts = db.counts[db.ids.index("MA0527.2")]  # ZBTB33
    rng = np.random.default_rng(0)
    n, length, width = 1500, 30, counts.shape[1]
    codes = rng.integers(0, 4, (n, length)).astype(np.uint8)
    planted = rng.random(n) < 0.5
    sites = _sample_sites(counts, int(planted.sum()), rng)
    for row, site in zip(np.flatnonzero(planted), sites):
        if rng.random() < 0.5:
            site = COMP[site[::-1]]
        s = int(rng.integers(0, length - width + 1))
        codes[row, s : s + width] = site
    y = 1.0 + 3.0 * planted + rng.normal(0, 0.3, n)
    trained = train_predictor(codes, y, PredictorRecipe(epochs=6, transform="none", seed=0), device="cpu",
                              baseline=False)
    seqs = SequenceSet([f"s{i}" for i in range(n)], codes)
    ex = explain(trained.model, seqs, top=60, motif_method="cluster", device="cpu")
    positive = ex.matches[ex.matches["effect"] == "raises score"]
    assert len(positive) and positive.iloc[0]["best_match_id"] == "MA0527.2", ex.matches.iloc[:, :8]
    assert positive.iloc[0]["match_qvalue"] < 1e-2
    # the explained sequences are the predictor's best: nearly all carry the planted motif
    top = np.array([int(i[1:]) for i in ex.ids])
    assert planted[top].mean() > 0.9


def test_jaspar_2024_default_collection():
    from gengen.errors import GengenError
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    assert db.release == "JASPAR2024" and len(db) == 879
    assert "JASPAR 2024 CORE vertebrates, non-redundant" in db.describe()
    assert "MA0102.5" in db.ids and db.families[db.ids.index("MA0102.5")] == "CEBP-related"
    assert all(np.allclose(p.sum(axis=0), 1) for p in db.probabilities())
    assert len(jaspar_database("plants")) > 100
    with pytest.raises(GengenError, match="not a JASPAR 2024 taxon"):
        jaspar_database("martians")


def test_jaspar_hits_find_a_planted_site_and_name_the_threshold():
    from gengen.dna.predictor.explain import jaspar_hits, pvalue_label
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    counts = db.counts[db.ids.index("MA0102.5")]  # CEBPA
    codes = np.random.default_rng(2).integers(0, 4, (3, 40)).astype(np.uint8)
    codes[0, 12:22] = counts.argmax(axis=0)
    hits, n = jaspar_hits(codes, db, threshold=1e-4)
    assert "CEBPA MA0102.5 13+" in hits[0] and n[0] >= 1
    assert pvalue_label(1e-4) == "1e-4" and pvalue_label(5e-5) == "5e-5" and pvalue_label(0.001) == "1e-3"


def _fasta(path, codes, prefix="seq"):
    from gengen.io.sequences import decode_codes

    path.write_text("".join(f">{prefix}{i}\n{s}\n" for i, s in enumerate(decode_codes(codes))))
    return path


def test_dna_explain_cli_writes_every_output(tmp_path):
    """Few sequences: seqlet clustering runs instead of TF-MoDISco (said, not an error); every file is there."""
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    site = db.counts[db.ids.index("MA0102.5")].argmax(axis=0)
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 4, (12, 36)).astype(np.uint8)
    for row in codes:
        s = int(rng.integers(0, 26))
        row[s : s + 10] = site if rng.random() < 0.5 else COMP[site[::-1]]
    fa = _fasta(tmp_path / "x.fa", codes)
    out = tmp_path / "ex"
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--motif", "MA0102.5", "-o", str(out), "--logos", "3",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "too few for TF-MoDISco" in res.stderr and "seqlet clustering" in res.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {"attributions.npz", "summary.tsv", "seqlets.tsv", "motifs.tsv", "motifs.meme", "motifs.jaspar",
                     "motifs.png", "config.json", "logos", ".gengen-outputs.json"}  # the run's file list
    assert sorted(p.name for p in (out / "logos").iterdir()) == ["top01.png", "top02.png", "top03.png"]
    import pandas as pd

    motifs = pd.read_csv(out / "motifs.tsv", sep="\t")
    for col in ("motif", "n_seqlets", "best_match_id", "best_match_name", "match_qvalue", "match2_id", "match2_name",
                "match2_qvalue", "match3_id"):
        assert col in motifs.columns
    assert motifs.iloc[0]["best_match_name"].upper().startswith("CEBP")
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert len(summary) == 12 and list(summary["rank"]) == list(range(1, 13))
    assert summary["score"].is_monotonic_decreasing
    assert "jaspar_hits_p1e-4" in summary.columns and summary["jaspar_hits_p1e-4"].str.contains("CEBPA").all()
    with np.load(out / "attributions.npz") as z:
        assert z["ism_delta"].shape == z["gradient"].shape == z["one_hot"].shape == (12, 4, 36)
        assert np.allclose(z["ism"], z["ism_delta"] - z["ism_delta"].mean(axis=1, keepdims=True), atol=1e-5)
        assert list(z["ids"]) == list(summary["id"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["gradient"] == "saliency" and cfg["motif_method"] == "seqlet clustering"
    assert cfg["jaspar"]["release"] == "JASPAR2024" and cfg["jaspar"]["profiles"] == 879
    from Bio import motifs as bio_motifs

    with open(out / "motifs.jaspar") as fh:
        assert len(list(bio_motifs.parse(fh, "jaspar"))) == len(motifs)
    assert (out / "motifs.meme").read_text().startswith("MEME version 4")


def test_a_torchscript_model_objective_is_explained_as_its_native_predictor(tmp_path):
    """``--objective model=FILE.pt`` (dna-export-predictor's TorchScript of a CNN predictor) explains the
    same scores and the same ISM as ``--predictor`` on the native model, with gradients too."""
    from gengen.dna.predictor.predictors import CNNPredictor

    torch.manual_seed(0)
    cnn = CNNPredictor(channels=8, width=5, hidden=8).eval()
    cnn.length = 24
    cnn.save(tmp_path / "pred")
    runner = CliRunner()
    res = runner.invoke(app, ["dna-export-predictor", str(tmp_path / "pred"), "-o", str(tmp_path / "pred.pt")])
    assert res.exit_code == 0, res.output
    fa = _fasta(tmp_path / "x.fa", np.random.default_rng(7).integers(0, 4, (20, 24)).astype(np.uint8))
    common = ["--logos", "1", "--motif-method", "cluster", "--device", "cpu", "-q"]
    for name, goal in (("native", ["--predictor", str(tmp_path / "pred")]),
                       ("script", ["--objective", f"model={tmp_path / 'pred.pt'}"])):
        res = runner.invoke(app, ["dna-explain", str(fa), *goal, "-o", str(tmp_path / name), *common])
        assert res.exit_code == 0, res.output
    with np.load(tmp_path / "native" / "attributions.npz") as a, np.load(tmp_path / "script" / "attributions.npz") as b:
        assert list(a["ids"]) == list(b["ids"])
        np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)
        np.testing.assert_allclose(a["ism_delta"], b["ism_delta"], atol=1e-5)
        assert np.abs(b["ism_delta"]).max() > 0 and np.abs(b["gradient"]).max() > 0
        np.testing.assert_allclose(a["gradient"], b["gradient"], atol=1e-4)
    assert json.loads((tmp_path / "script" / "config.json").read_text())["score"].startswith("pred (output)")


def test_a_model_without_gradient_is_explained_by_ism_alone(tmp_path):
    """A TorchScript model through argmax (it counts G's) has no gradient: ISM still explains it exactly
    (writing G adds 1, replacing a G takes 1 away), the gradient step is left out and said."""

    class CountG(torch.nn.Module):
        def forward(self, x):
            return (x.argmax(dim=1) == 2).float().sum(dim=1)

    torch.jit.script(CountG()).save(str(tmp_path / "g.pt"))
    codes = np.random.default_rng(8).integers(0, 4, (6, 16)).astype(np.uint8)
    fa = _fasta(tmp_path / "x.fa", codes)
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--objective", f"model={tmp_path / 'g.pt'}", "-o",
                                   str(tmp_path / "ex"), "--logos", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "gradient: none: the score is not differentiable" in res.stderr
    cfg = json.loads((tmp_path / "ex" / "config.json").read_text())
    assert cfg["gradient"] == "none"
    with np.load(tmp_path / "ex" / "attributions.npz") as z:
        order = [int(i[3:]) for i in z["ids"]]
        np.testing.assert_allclose(z["score"], (codes[order] == 2).sum(axis=1))
        expected = np.repeat(np.where(codes[order][:, None, :] == 2, -1.0, 0.0), 4, axis=1)  # a G replaced: one fewer
        expected[:, 2, :] = np.where(codes[order] == 2, 0.0, 1.0)  # a G written: one more
        np.testing.assert_allclose(z["ism_delta"], expected, atol=1e-6)
        assert not z["gradient"].any()
    assert (tmp_path / "ex" / "logos" / "top01.png").stat().st_size > 0


def test_dna_explain_explains_the_top_sequences_only(tmp_path):
    codes = np.random.default_rng(6).integers(0, 4, (40, 24)).astype(np.uint8)
    fa = _fasta(tmp_path / "x.fa", codes)
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--motif", "MA0102.5", "-o", str(tmp_path / "ex"), "--top",
                                   "5", "--logos", "0", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    summary = pd.read_csv(tmp_path / "ex" / "summary.tsv", sep="\t")
    scores = PWMPredictor(__import__("gengen.io.motifs", fromlist=["x"]).load_motif("MA0102.5", quiet=True)).exact_score(
        codes_to_one_hot(codes)).numpy()
    assert len(summary) == 5
    np.testing.assert_allclose(summary["score"], np.sort(scores)[::-1][:5], rtol=1e-4)
    assert not (tmp_path / "ex" / "logos").exists()


def test_dna_design_annotate_names_the_jaspar_motifs_it_wrote(tmp_path):
    out = tmp_path / "d.fa"
    res = CliRunner().invoke(app, ["dna-design", "--motif", "MA0102.5", "-n", "4", "--length", "24", "--steps", "60",
                                   "-o", str(out), "--annotate", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "d.tsv", sep="\t")
    assert "jaspar_hits_p1e-4" in table.columns and "jaspar_n_hits_p1e-4" in table.columns
    assert table["jaspar_hits_p1e-4"].str.contains("CEBPA MA0102.5").all()
    assert "JASPAR hits (FIMO p < 0.0001, JASPAR 2024 CORE vertebrates" in res.stderr
    res = CliRunner().invoke(app, ["dna-design", "--motif", "MA0102.5", "-n", "2", "--length", "24", "--steps", "5",
                                   "-o", str(tmp_path / "e.fa"), "--device", "cpu", "-q"])
    assert "jaspar_hits_p1e-4" not in pd.read_csv(tmp_path / "e.tsv", sep="\t").columns


@pytest.mark.slow
def test_a_pbm_predictor_detects_gata_on_real_gata4_probes():
    """Real data, in small (docs/dna.md has the full runs): a CNN trained on 8,000 Gata4 PBM probes (the
    top 2,000 by signal and 6,000 others, 3 epochs) explains its 200 best probes with a GATA-family motif."""
    from conftest import shared_file
    from gengen.dna.predictor.explain import explain
    from gengen.dna.predictor.training import read_labels, train_predictor
    from gengen.io.sequences import read_fasta
    from gengen.recipes import PredictorRecipe

    fa = shared_file("dna", "pbm", "Gata4.fa.gz")
    seqs = read_fasta(fa, ambiguous="uniform", quiet=True)
    y = read_labels(shared_file("dna", "pbm", "Gata4_scores.csv.gz"), seqs.ids)
    order = np.argsort(-y)
    rest = np.random.default_rng(0).choice(order[2000:], 6000, replace=False)
    keep = np.sort(np.concatenate([order[:2000], rest]))
    trained = train_predictor(seqs.codes[keep], y[keep], PredictorRecipe(epochs=3), device="cpu", baseline=False)
    subset = SequenceSet([seqs.ids[i] for i in keep], seqs.codes[keep])
    ex = explain(trained.model, subset, top=200, motif_method="cluster", device="cpu")
    positive = ex.matches[ex.matches["effect"] == "raises score"]
    assert len(positive), ex.discovery.note
    best = positive.sort_values("n_seqlets", ascending=False).iloc[0]
    assert "GATA" in str(best["best_match_family"]).upper(), positive.iloc[:, :10]


def test_modisco_finds_the_planted_motif_in_pwm_attributions():
    """From 100 sequences on, TF-MoDISco (modisco-lite) runs, with windows sized to 36-nt sequences whose
    ends are padded: planted GATA sites anywhere give one GATA-family pattern, and the sites within 2 nt of
    an end are found about as often as the others (a padding too narrow for TF-MoDISco's pattern widths
    lost every one of them)."""
    from gengen.dna.predictor.explain import explain
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    counts = db.counts[db.ids.index("MA0035.5")]  # GATA1
    rng = np.random.default_rng(1)
    n, length, width = 150, 36, counts.shape[1]
    codes = rng.integers(0, 4, (n, length)).astype(np.uint8)
    starts = rng.integers(0, length - width + 1, n)
    for row, site, s in zip(codes, _sample_sites(counts, n, rng), starts):
        row[s : s + width] = site if rng.random() < 0.5 else COMP[site[::-1]]
    pwm = pwm_from_counts(counts, name="GATA1")
    ex = explain(Objective(PWMPredictor(pwm), name="GATA1"), SequenceSet([f"s{i}" for i in range(n)], codes),
                 device="cpu")
    assert ex.discovery.method == "modisco-lite", ex.discovery.note
    assert ex.settings["threads"] == torch.get_num_threads() == 1  # the conftest's count (modisco-lite's
    # precompiler starts numba's OpenMP layer, which once reset it to the cores: --threads was lost)
    positive = ex.matches[ex.matches["effect"] == "raises score"]
    assert "GATA" in str(positive.iloc[0]["best_match_family"]).upper(), positive.iloc[:, :10]
    seqlets = ex.discovery.seqlets
    assert (seqlets["start"] >= 0).all() and (seqlets["end"] <= length).all()
    planted = starts[[int(i[1:]) for i in ex.ids]]  # in the explained order (best score first)
    found = np.zeros(n, dtype=bool)
    for e, a, b in zip(seqlets["example"], seqlets["start"], seqlets["end"]):
        found[e] |= bool(a < planted[e] + width and planted[e] < b)
    at_end = (planted <= 2) | (planted >= length - width - 2)
    assert at_end.sum() >= 10 and found[~at_end].mean() > 0.7, found[~at_end].mean()
    assert found[at_end].mean() > 0.7, f"{found[at_end].sum()} of {at_end.sum()} sites at the ends found"


def test_logos_of_long_sequences_show_their_strongest_window():
    """A logo of 1,000 bases is unreadable (and took seconds per panel): the 100-nt window with the most
    |ISM contribution| is drawn, whole sequences up to 100 nt."""
    from gengen.dna.predictor.explain import logo_window

    strength = np.full(1000, 0.01)
    strength[700:712] = 5.0
    a, b = logo_window(strength)
    assert b - a == 100 and a <= 700 and b >= 712
    assert logo_window(np.ones(36)) == (0, 36) and logo_window(np.ones(100)) == (0, 100)


def test_dna_explain_never_writes_into_the_store_model_it_explains(tmp_path, monkeypatch):
    """A store name given as --predictor is resolved to its folder for the output plan: rerunning with -o
    inside that folder is refused before any work instead of replacing the files written there."""
    import torch

    from gengen.dna import CNNPredictor
    from gengen.store import store_dir

    monkeypatch.setenv("GENGEN_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    model = CNNPredictor(channels=4, width=3, hidden=4).eval()
    model.length = 36
    folder = model.save(store_dir() / "pred")
    (folder / "summary.tsv").write_text("the user's own notes\n")
    fa = _fasta(tmp_path / "x.fa", np.random.default_rng(1).integers(0, 4, (6, 36)).astype(np.uint8))
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--predictor", "pred", "-o", str(folder), "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert "inside the input folder" in res.output or "refusing to overwrite" in res.output, res.output
    assert (folder / "summary.tsv").read_text() == "the user's own notes\n"


class _GCCount(torch.nn.Module):
    """A model with no motif: the number of G and C."""

    def forward(self, x):
        return x[:, 1:3].sum(dim=(1, 2))


@pytest.mark.parametrize("n", [40, 120])  # seqlet clustering and TF-MoDISco
def test_a_model_without_a_motif_gets_no_jaspar_match(n):
    """A G+C counter has no motif: the "motifs" found in its attributions are near-uniform (one earlier
    run reported a 44-column one, wider than the 36-nt sequences, matched to CTCF at q=9e-12). They are
    listed with their information, no wider than the sequences, and not matched, saying why."""
    from gengen.dna.predictor.explain import INFORMATIVE_BITS, MIN_INFORMATIVE_COLUMNS, explain

    codes = np.random.default_rng(3).integers(0, 4, (n, 36)).astype(np.uint8)
    ex = explain(_GCCount(), SequenceSet([f"s{i}" for i in range(n)], codes), device="cpu")
    assert all(m.width <= 36 for m in ex.discovery.motifs)
    assert ex.matches["best_match_id"].isna().all(), ex.matches.iloc[:, :12]
    assert (ex.matches["informative_columns"] < MIN_INFORMATIVE_COLUMNS).all()
    for m in ex.discovery.motifs:
        assert (m.information() >= INFORMATIVE_BITS).sum() < MIN_INFORMATIVE_COLUMNS
    lines = "\n".join(ex.report())
    if ex.discovery.motifs:
        assert "not matched to JASPAR: too little information" in lines


def test_motif_information_in_bits():
    """One base per column is 2 bits, two bases half and half 1 bit, near-uniform columns well under 1:
    a motif needs 3 columns of >= 1 bit to be matched, whatever its number of seqlets (one seqlet of a
    single explained design included)."""
    from gengen.dna.predictor.explain import Motif

    one = Motif("m", np.array([[1.0] * 5, [0] * 5, [0] * 5, [0] * 5]), np.zeros((4, 5)), 1)
    halves = Motif("m", np.array([[50.0] * 5, [50] * 5, [0] * 5, [0] * 5]), np.zeros((4, 5)), 100)
    flat = Motif("m", np.array([[30.0] * 40, [25] * 40, [25] * 40, [20] * 40]), np.zeros((4, 40)), 100)
    assert np.allclose(one.information(), 2) and one.informative
    assert np.allclose(halves.information(), 1) and halves.informative
    assert (flat.information() < 0.05).all() and not flat.informative and flat.information().sum() < 2


def test_repeated_sequences_are_counted_once_in_motif_discovery():
    """The same locus given twice is not two pieces of evidence: discovery runs on the distinct sequences
    (the seqlets are reported on the first copy) and gives what the distinct sequences alone give (four
    2-kb promoters, two of them copies, once lost their only GATA motif)."""
    from gengen.dna.predictor.explain import explain
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    counts = db.counts[db.ids.index("MA0035.5")]  # GATA1
    rng = np.random.default_rng(5)
    n, length, width = 30, 36, counts.shape[1]
    codes = rng.integers(0, 4, (n, length)).astype(np.uint8)
    for row, site in zip(codes, _sample_sites(counts, n, rng)):
        s = int(rng.integers(0, length - width + 1))
        row[s : s + width] = site
    objective = Objective(PWMPredictor(pwm_from_counts(counts, name="GATA1")), name="GATA1")
    alone = explain(objective, SequenceSet([f"s{i}" for i in range(n)], codes), device="cpu")
    repeated = np.concatenate([codes, codes[:10], codes[:10]])  # 20 copies
    ex = explain(objective, SequenceSet([f"s{i}" for i in range(n)] + [f"s{i}" for i in range(10)] * 2, repeated),
                 device="cpu")
    assert "20 repeated sequences (the same bases as an earlier one) counted once" in ex.discovery.note
    assert [m.consensus for m in ex.discovery.motifs] == [m.consensus for m in alone.discovery.motifs]
    assert [m.n_seqlets for m in ex.discovery.motifs] == [m.n_seqlets for m in alone.discovery.motifs]
    first = {}
    for k, row in enumerate(ex.codes):
        first.setdefault(row.tobytes(), k)
    assert all(first[ex.codes[e].tobytes()] == e for e in ex.discovery.seqlets["example"])
    table = ex.seqlet_table()
    assert list(table.columns[:3]) == ["motif", "rank", "id"]
    assert all(ex.ids[r - 1] == i for r, i in zip(table["rank"], table["id"]))


def test_jaspar_hits_never_report_a_pvalue_a_profile_cannot_reach():
    """A 6-column profile's best word has p = 4^-6 = 2.4e-4 under FIMO's background: it cannot pass 1e-4
    (memelite reported such hits with p=0); at 1e-3 it is reported, never below that floor."""
    from gengen.dna.predictor.explain import _best_word_pvalue, jaspar_hits
    from gengen.io.jaspar import jaspar_database

    db = jaspar_database()
    probs = db.probabilities()
    short = [k for k, p in enumerate(probs) if p.shape[1] == 6][0]
    site = probs[short].argmax(axis=0)
    codes = np.random.default_rng(2).integers(0, 4, (4, 30)).astype(np.uint8)
    codes[:, 10:16] = site
    hits, _ = jaspar_hits(codes, db, threshold=1e-4)
    assert all(f" {db.ids[short]} " not in h for h in hits)
    assert all("p=0 " not in h + " " and "p=0;" not in h for h in hits)
    loose, _ = jaspar_hits(codes, db, threshold=1e-3)
    floor = _best_word_pvalue(probs[short])
    assert floor == pytest.approx(4.0 ** -6)
    for h in loose:
        mine = [part for part in h.split("; ") if f" {db.ids[short]} " in part]
        assert mine and float(mine[0].split("p=")[1]) >= floor * 0.95  # printed to 2 digits


def test_a_reused_explain_folder_keeps_only_this_runs_files(tmp_path):
    """Running again into the same folder with fewer logos leaves no logo of the earlier run; the user's
    own files stay."""
    fa = _fasta(tmp_path / "x.fa", np.random.default_rng(1).integers(0, 4, (6, 20)).astype(np.uint8))
    out = tmp_path / "ex"
    base = ["dna-explain", str(fa), "--motif", "MA0102.5", "-o", str(out), "--device", "cpu", "-q"]
    assert CliRunner().invoke(app, [*base, "--logos", "3"]).exit_code == 0
    (out / "my_notes.txt").write_text("mine\n")
    res = CliRunner().invoke(app, [*base, "--logos", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "logos").iterdir()) == ["top01.png"]
    assert (out / "my_notes.txt").read_text() == "mine\n"
    listed = json.loads((out / ".gengen-outputs.json").read_text())  # kept per command: another's stay
    assert list(listed) == ["dna-explain"] and "logos/top01.png" in listed["dna-explain"]


def test_modisco_as_asked_on_few_sequences_says_so_and_runs_nothing_else(tmp_path):
    """--motif-method modisco is TF-MoDISco alone: on 20 sequences it is warned about before any work and,
    finding nothing, reports no motifs (it fell back to seqlet clustering unsaid); the ISM outputs stay."""
    codes = np.random.default_rng(1).integers(0, 4, (20, 24)).astype(np.uint8)
    fa = _fasta(tmp_path / "x.fa", codes)
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--motif", "MA0102.5", "--motif-method", "modisco",
                                   "-o", str(tmp_path / "ex"), "--logos", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "--motif-method modisco on 20 sequences, fewer than" in res.stderr
    cfg = json.loads((tmp_path / "ex" / "config.json").read_text())
    assert cfg["motif_method"] == "modisco-lite" and "as asked" in cfg["motif_note"], cfg["motif_note"]
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "ex" / "motifs.tsv", sep="\t")) == 0
    assert len(pd.read_csv(tmp_path / "ex" / "summary.tsv", sep="\t")) == 20


def test_a_link_planted_at_the_explain_folders_file_list_is_not_followed(tmp_path):
    """.gengen-outputs.json is gengen's own name in the folder: a link planted there is neither read
    through nor written through (the file it points at stays as it was)."""
    fa = _fasta(tmp_path / "x.fa", np.random.default_rng(1).integers(0, 4, (6, 20)).astype(np.uint8))
    out = tmp_path / "ex"
    out.mkdir()
    victim = tmp_path / "victim.json"
    victim.write_text('["../x.fa"]\n')
    (out / ".gengen-outputs.json").symlink_to(victim)
    res = CliRunner().invoke(app, ["dna-explain", str(fa), "--motif", "MA0102.5", "-o", str(out), "--device", "cpu",
                                   "-q", "--logos", "1"])
    assert res.exit_code == 0, res.output
    assert victim.read_text() == '["../x.fa"]\n' and fa.exists()
    assert not (out / ".gengen-outputs.json").is_symlink()
