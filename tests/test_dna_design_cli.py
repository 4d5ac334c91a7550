"""dna-design with several objectives and constraints, dna-generate --interpolate / --train-data and
dna-eval's novelty, through the Typer app; bad inputs are one-line errors before any work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from dna_fixtures import JASPAR_TEXT, PLANT, random_seqs, write_fa
from gengen.cli import app
from gengen.dna.designer.constraints import Constraints, parse_ranges, verify

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gan")
    fa = write_fa(tmp / "train.fa", random_seqs(120, 60, seed=3, plant=PLANT), prefix="gene")
    r = run("dna-train", fa, "-o", tmp / "gan", "--length", 20, "--iterations", 4, "--channels", 8, "--batch-size",
            16, "--sample-every", 2, "--heldout-fraction", 0.3, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    return fa, tmp / "gan"


def test_two_objectives_with_every_constraint(tmp_path):
    motif = tmp_path / "toy.jaspar"
    motif.write_text(JASPAR_TEXT)
    starts = write_fa(tmp_path / "starts.fa", random_seqs(4, 30, seed=9), prefix="probe")
    out = tmp_path / "d.fa"
    r = run("dna-design", "--objective", f"motif={motif},target=max", "--objective", "motif=MA0035.4,target=min,weight=0.5",
            "--from", starts, "-n", 10, "--max-edits", 4, "--fixed", "1-5,26-30", "--avoid", "GAATTC,AAAA", "--gc",
            "0.3-0.7", "--steps", 40, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "edits per design: mean" in r.output and "per edit" in r.output
    t = pd.read_csv(tmp_path / "d.tsv", sep="\t")
    assert {"score_MA9000.1_TOY", "score_MA0035.4_GATA1", "combined", "start_id", "edits", "gc"} <= set(t.columns)
    dropped = int(r.output.split(" design(s) could not")[0].split()[-1]) if "could not" in r.output else 0
    assert len(t) + dropped == 10 and (t["edits"] <= 4).all()
    start_map = {f"probe{i}": s for i, s in enumerate(random_seqs(4, 30, seed=9))}
    numbers = [int(i.split("_")[1]) - 1 for i in t["id"]]
    assert list(t["start_id"]) == [f"probe{k % 4}" for k in numbers]  # -n 10 cycles the 4 starts
    starts_codes = np.array([[("ACGT".index(ch)) for ch in start_map[i]] for i in t["start_id"]], dtype=np.uint8)
    c = Constraints(start=starts_codes, fixed=parse_ranges("1-5,26-30", 30), max_edits=4, avoid=("GAATTC", "AAAA"),
                    gc=(0.3, 0.7))
    assert verify(list(t["sequence"]), c) == [""] * len(t)
    assert (tmp_path / "d.png").stat().st_size > 10_000
    first = out.read_text().splitlines()[0]
    assert first.startswith(">design_") and "combined=" in first and "edits=" in first


def test_from_cycles_and_windows_and_shorthand_objective(tmp_path):
    starts = write_fa(tmp_path / "long.fa", random_seqs(3, 95, seed=1), prefix="chr")
    r = run("dna-design", "--motif", "MA0035.4", "--from", starts, "--length", 30, "-n", 5, "--max-edits", 2,
            "--steps", 20, "-o", tmp_path / "w.fa", "-q")
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "w.tsv", sep="\t")
    assert len(t) == 5 and (t["sequence"].str.len() == 30).all() and t["start_id"].str.contains(":").all()
    assert "score" in t.columns and "start_score" in t.columns and (t["score"] >= t["start_score"] - 1e-6).all()


@pytest.mark.parametrize("args, needles", [
    (["--objective", "predictor"], ["not key=value"]),
    (["--objective", "motif=MA0139.2,colour=red"], ["unknown key 'colour'"]),
    (["--objective", "motif=MA0139.2,weight=-2"], ["weight must be a positive number"]),
    (["--objective", "motif=MA0139.2,target=high"], ["target must be max, min"]),
    (["--objective", "motif=MA0139.2", "--motif", "MA0035.4"], ["--objective replaces"]),
    (["--motif", "MA0139.2", "--max-edits", "3"], ["--max-edits", "--from"]),
    (["--motif", "MA0139.2", "--fixed", "1-4"], ["--fixed", "--from"]),
    (["--motif", "MA0139.2", "--gc", "0.8-0.2"], ["--gc"]),
    (["--motif", "MA0139.2", "--gc", "0.41-0.42", "--length", "20"], ["no 20-nt sequence has a G+C fraction"]),
    (["--motif", "MA0139.2", "--avoid", "GAXTC"], ["IUPAC"]),
    (["--motif", "MA0139.2", "--avoid", "A,C,G,T"], ["no 50-nt sequence avoids"]),
])
def test_bad_design_options_are_one_line_errors_before_any_work(tmp_path, args, needles):
    out = tmp_path / "x.fa"
    assert_one_line_error(run("dna-design", *args, "-o", out), *needles)
    assert not out.exists() and not (tmp_path / "x.tsv").exists()


def test_bad_from_constraints(tmp_path, gan_dir):
    starts = write_fa(tmp_path / "s.fa", ["AAGAATTCAAAAAAAAAAAA", "ACGTACGTACGTACGTACGT"])
    mixed = write_fa(tmp_path / "m.fa", ["ACGTACGTAC", "ACGTACGTACGT"])
    cases = [
        (["--from", starts, "--max-edits", 0], ["allows no edit"]),
        (["--from", starts, "--fixed", "3-8", "--avoid", "GAATTC"], ["hold the avoided pattern GAATTC"]),
        (["--from", starts, "--fixed", "18-25"], ["past the sequence end (20 nt)"]),
        (["--from", starts, "--fixed", "1-20"], ["nothing is left"]),
        (["--from", mixed], ["different lengths"]),
        (["--from", starts, "--length", 30], ["shorter than --length 30"]),
        (["--from", starts, "--gan", gan_dir[1]], ["leave out --gan"]),
        (["--from", tmp_path / "missing.fa"], ["does not exist"]),
    ]
    for args, needles in cases:
        out = tmp_path / "y.fa"
        assert_one_line_error(run("dna-design", "--motif", "MA0035.4", *args, "-o", out), *needles)
        assert not out.exists()


def test_generate_interpolation_and_novelty(tmp_path, gan_dir):
    fa, gan = gan_dir
    out = tmp_path / "paths.fa"
    r = run("dna-generate", "--model", gan, "--interpolate", 4, "-n", 3, "--motif", "MA0035.4", "-o", out, "--seed", 1)
    assert r.exit_code == 0, r.output
    assert "3 latent paths of 4 steps (slerp)" in r.output
    t = pd.read_csv(tmp_path / "paths.tsv", sep="\t")
    assert len(t) == 12 and "score_MA0035.4_GATA1" in t.columns and (tmp_path / "paths.png").is_file()
    r = run("dna-generate", "--model", gan, "-n", 50, "--train-data", fa, "-o", tmp_path / "s.fa")
    assert r.exit_code == 0, r.output
    assert "nearest training window" in r.output and "heldout_real:" in r.output and "gan: 50 sequences" in r.output
    assert "nearest_train=" in (tmp_path / "s.fa").read_text()
    r = run("dna-eval", fa, "--model", gan, "-n", 40, "-o", tmp_path / "e.tsv")
    assert r.exit_code == 0, r.output
    nov = pd.read_csv(tmp_path / "e.novelty.tsv", sep="\t")
    assert list(nov["set"]) == ["gan", "heldout_real"] and nov["mean"].between(0, 20).all()
    r = run("dna-design", "--objective", "motif=MA0035.4", "--objective", "motif=MA0139.2,target=min,weight=0.5",
            "--gan", gan, "--avoid", "TTTT", "-n", 6, "--steps", 5, "-o", tmp_path / "j.fa", "-q")
    assert r.exit_code == 0, r.output
    j = pd.read_csv(tmp_path / "j.tsv", sep="\t")
    assert {"score_MA0035.4_GATA1", "score_MA0139.2_CTCF", "combined"} <= set(j.columns)
    assert not j["sequence"].str.contains("TTTT|AAAA").any() and (j["sequence"].str.len() == 20).all()
    assert_one_line_error(run("dna-generate", "--model", gan, "--interpolate", 1, "-o", tmp_path / "p1.fa"),
                          "at least 2 steps")
    assert not (tmp_path / "p1.fa").exists()
    assert_one_line_error(run("dna-generate", "--model", gan, "--interpolate", 3, "--train-data", fa,
                              "-o", tmp_path / "p2.fa"), "--train-data")


def _tiny_predictor(folder, length: int, seed: int = 0):
    from gengen.dna.predictor.training import PredictorRecipe, train_predictor
    from gengen.io.sequences import strings_to_codes

    seqs = random_seqs(60, length, seed=seed)
    y = np.array([s.count("GA") for s in seqs], dtype=np.float64) + np.linspace(0, 0.1, 60)
    recipe = PredictorRecipe(channels=4, width=3, hidden=4, epochs=1, seed=seed)
    train_predictor(strings_to_codes(seqs), y, recipe, device="cpu", quiet=True, baseline=False).save(folder)
    return folder


def test_design_takes_the_predictors_trained_length(tmp_path):
    pred = _tiny_predictor(tmp_path / "pred14", 14)
    out = tmp_path / "d.fa"
    r = run("dna-design", "--predictor", pred, "-n", 3, "--steps", 3, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "design length 14 nt, the length predictor 'pred14' was trained on" in r.output
    seqs = [line for line in out.read_text().splitlines() if not line.startswith(">")]
    assert len(seqs) == 3 and {len(s) for s in seqs} == {14}
    ok = run("dna-design", "--objective", f"predictor={pred}", "--length", 14, "-n", 2, "--steps", 2,
             "-o", tmp_path / "e.fa", "--device", "cpu", "-q")
    assert ok.exit_code == 0, ok.output
    assert [len(s) for s in (tmp_path / "e.fa").read_text().splitlines() if not s.startswith(">")] == [14, 14]


def test_design_refuses_another_length_than_the_predictors(tmp_path, gan_dir):
    pred = _tiny_predictor(tmp_path / "pred14", 14)
    other = _tiny_predictor(tmp_path / "pred16", 16, seed=1)
    out = tmp_path / "d.fa"
    assert_one_line_error(run("dna-design", "--predictor", pred, "--length", 20, "-n", 2, "-o", out, "-q"),
                          "--length 20 differs from the 14 nt the predictor 'pred14' was trained on")
    assert_one_line_error(run("dna-design", "--predictor", pred, "--gan", gan_dir[1], "-n", 2, "-o", out, "-q"),
                          "the GAN's length 20 differs from the 14 nt")
    assert_one_line_error(run("dna-design", "--objective", f"predictor={pred}", "--objective", f"predictor={other}",
                              "-n", 2, "-o", out, "-q"), "pred14: 14 nt, pred16: 16 nt")
    assert not out.exists()


def test_design_without_steps_stops_on_a_plateau_and_says_so(tmp_path):
    """Issue 18, item 12: a design stops when its score stops improving unless --steps forces a count."""
    r = run("dna-design", "--motif", "MA0035.4", "-n", 16, "--length", 30, "-o", tmp_path / "d.fa", "--device", "cpu")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("stopped on a plateau at step"))
    ran = int(line.split("at step ")[1].split()[0])
    assert 50 <= ran < 500 and f"16 sequences (direct, {ran} steps)" in r.output
    r = run("dna-design", "--motif", "MA0035.4", "-n", 16, "--length", 30, "--steps", ran, "-o", tmp_path / "e.fa",
            "--device", "cpu")
    assert r.exit_code == 0 and "plateau" not in r.output, r.output
    assert (tmp_path / "d.fa").read_text() == (tmp_path / "e.fa").read_text()  # the designs of --steps N
    r = run("dna-design", "--motif", "MA0035.4", "-n", 4, "--length", 30, "--max-steps", 10, "-o", tmp_path / "f.fa",
            "--device", "cpu")
    assert r.exit_code == 0 and "(direct, 10 steps)" in r.output and "--max-steps" in r.output, r.output


def test_dna_eval_says_what_it_does_before_the_long_parts(gan_dir):
    """Issue 18, item 14: dna-eval printed nothing for a minute; now each stage is announced (and the long
    ones have progress bars) before the table."""
    fa, gan = gan_dir
    r = run("dna-eval", fa, "--model", gan, "-n", 30)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    stage = [next(i for i, ln in enumerate(lines) if ln.startswith(prefix))
             for prefix in ("reading ", "generating 30 sequences; k-mer spectra (k = 1..6)", "novelty: nearest training")]
    table = next(i for i, ln in enumerate(lines) if ln.startswith("# k-mer JS divergence"))
    assert stage == sorted(stage) and stage[-1] < table
    quiet = run("dna-eval", fa, "--model", gan, "-n", 30, "-q")
    assert not any(ln.startswith(("reading ", "generating ", "novelty: ")) for ln in quiet.output.splitlines())


def test_logo_positions_are_one_based_like_hit_positions():
    """Issue 18, item 14: the logos' x axis started at 0 while hit starts are 1-based."""
    from gengen.dna.designer.figures import _logo_frame

    frame = _logo_frame(np.full((4, 6), 0.25))
    assert list(frame.index) == [1, 2, 3, 4, 5, 6]
