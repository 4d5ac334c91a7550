"""The DNA commands end to end through the Typer app."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_file
from dna_fixtures import (
    JASPAR_TEXT,
    PLANT,
    random_seqs,
    write_fa,
)
from gengen.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def fasta(tmp_path):
    return write_fa(tmp_path / "train.fa", random_seqs(120, 60, seed=3, plant=PLANT), prefix="gene")


def test_help_lists_dna_commands():
    r = run("--help")
    for cmd in ("dna-train", "dna-generate", "dna-design", "dna-train-predictor", "dna-score", "dna-eval"):
        assert cmd in r.output


def test_train_generate_eval_and_joint_design(fasta, tmp_path):
    model = tmp_path / "gan"
    r = run(
        "dna-train",
        fasta,
        "-o",
        model,
        "--length",
        20,
        "--iterations",
        6,
        "--channels",
        8,
        "--batch-size",
        16,
        "--sample-every",
        3,
        "--heldout-fraction",
        0.2,
        "--device",
        "cpu",
        "-q",
    )
    assert r.exit_code == 0, r.output
    assert (model / "config.json").is_file() and (model / "samples.fa").is_file()
    r = run(
        "dna-train",
        fasta,
        "-o",
        model,
        "--length",
        20,
        "--iterations",
        8,
        "--channels",
        8,
        "--batch-size",
        16,
        "--sample-every",
        3,
        "--resume",
        "--device",
        "cpu",
        "-q",
    )
    assert r.exit_code == 0, r.output
    # resuming with another held-out fraction would train on held-out genes: refused
    r = run("dna-train", fasta, "-o", model, "--length", 20, "--iterations", 9, "--channels", 8,
            "--batch-size", 16, "--resume", "--heldout-fraction", 0.1, "--device", "cpu", "-q")
    assert r.exit_code == 2 and "--heldout-fraction 0.2" in r.output and "Traceback" not in r.output
    out = tmp_path / "samples.fa"
    r = run("dna-generate", "--model", model, "-n", 30, "-o", out, "--seed", 1, "-q")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.count(">") == 30 and "gc=" in text
    r = run("dna-eval", fasta, "--model", model, "-n", 40, "-o", tmp_path / "eval.tsv")
    assert r.exit_code == 0, r.output
    assert "test half of the 20% held-out records" in r.output and "warning" not in r.output
    r = run("dna-eval", fasta, "--model", model, "-n", 40, "--heldout-fraction", 0.5)
    assert r.exit_code == 0 and "warning: --heldout-fraction 0.5 differs from the model's 0.2" in r.output
    table = pd.read_csv(tmp_path / "eval.tsv", sep="\t")
    assert list(table["k"]) == [1, 2, 3, 4, 5, 6] and {"gan", "iid", "markov", "real_train"} <= set(
        table.columns
    )
    motif = tmp_path / "toy.jaspar"
    motif.write_text(JASPAR_TEXT)
    r = run(
        "dna-design",
        "--motif",
        motif,
        "--gan",
        model,
        "-n",
        8,
        "--steps",
        20,
        "-o",
        tmp_path / "joint.fa",
        "--device",
        "cpu",
        "-q",
    )
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "joint.tsv", sep="\t").shape[0] == 8


def test_direct_design_with_jaspar_id_writes_fasta_tsv_png(tmp_path):
    out = tmp_path / "ctcf.fa"
    r = run(
        "dna-design", "--motif", "MA0139.2", "-n", 40, "--length", 40, "--steps", 150, "-o", out, "--seed", 2
    )
    assert r.exit_code == 0, r.output
    assert "% of the consensus max" in r.output
    table = pd.read_csv(tmp_path / "ctcf.tsv", sep="\t")
    assert {"score", "hit_start", "hit_strand", "hit_sequence", "gc"} <= set(table.columns)
    assert table["fraction_of_max"].mean() > 0.97
    assert (tmp_path / "ctcf.png").stat().st_size > 10_000
    first = out.read_text().splitlines()[0]
    assert first.startswith(">design_1 score=") and "hit=" in first
    # dna-score reproduces the designed scores
    r = run("dna-score", out, "--motif", "MA0139.2", "-o", tmp_path / "scores.tsv")
    assert r.exit_code == 0, r.output
    scores = pd.read_csv(tmp_path / "scores.tsv", sep="\t")
    assert (scores["motif_score"] - table["score"]).abs().max() < 1e-3


def test_predictor_train_score_and_design(tmp_path):
    seqs = random_seqs(300, 24, seed=4)
    has = [i % 2 == 0 for i in range(300)]
    seqs = [s[:8] + PLANT + s[16:] if h else s for s, h in zip(seqs, has)]
    fa = write_fa(tmp_path / "probes.fa", seqs, prefix="p")
    pd.DataFrame({"id": [f"p{i}" for i in range(300)], "signal": [50.0 if h else 5.0 for h in has]}).to_csv(
        tmp_path / "scores.csv", index=False
    )
    r = run(
        "dna-train-predictor",
        fa,
        "--scores",
        tmp_path / "scores.csv",
        "-o",
        tmp_path / "pred",
        "--epochs",
        3,
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    assert "held-out Spearman rho" in r.output and "Pearson r" in r.output and "6-mer ridge" in r.output
    assert "recipe: 3 networks averaged (--members)" in r.output and "recipe: learned flanks" in r.output  # why
    r = run("dna-score", fa, "--predictor", tmp_path / "pred")
    assert r.exit_code == 0, r.output
    assert "predictor_score" in r.output.splitlines()[0]
    r = run(
        "dna-design",
        "--predictor",
        tmp_path / "pred",
        "-n",
        10,
        "--length",
        24,
        "--steps",
        30,
        "-o",
        tmp_path / "d.fa",
        "-q",
    )
    assert r.exit_code == 0, r.output
    # independent check: a 6-mer ridge fitted on all probes scores the designs
    r = run(
        "dna-score",
        tmp_path / "d.fa",
        "--independent-probes",
        fa,
        "--independent-scores",
        tmp_path / "scores.csv",
        "-o",
        tmp_path / "ind.tsv",
    )
    assert r.exit_code == 0, r.output
    assert "independent 6-mer ridge on all 300 probes" in r.output and "above the best probe" in r.output
    assert "independent_score" in pd.read_csv(tmp_path / "ind.tsv", sep="\t").columns
    r = run("dna-score", tmp_path / "d.fa", "--independent-probes", fa)
    assert r.exit_code == 2 and "go together" in r.output


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"\x00\x9f\x92\x96junk", "binary"), (b">a\nACGU?!\n", "non-nucleotide")],
)
def test_bad_fasta_one_line_exit_2_no_output(tmp_path, content, message):
    bad = tmp_path / "bad.fa"
    bad.write_bytes(content)
    out = tmp_path / "model"
    r = run("dna-train", bad, "-o", out, "-q")
    assert r.exit_code == 2 and message in r.output
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("gengen: error:")
    assert not out.exists()
    r = run("dna-score", bad, "--motif", "MA0139.2", "-o", tmp_path / "s.tsv")
    assert r.exit_code == 2 and not (tmp_path / "s.tsv").exists()


def test_user_errors_are_clear(tmp_path, fasta):
    r = run("dna-design", "--motif", "MA9999.9", "-o", tmp_path / "x.fa")
    assert r.exit_code == 2 and "MA9999.9" in r.output
    r = run("dna-design", "--motif", "MA0139.2", "--length", 10, "-o", tmp_path / "x.fa")
    assert r.exit_code == 2 and "15 bp long" in r.output and not (tmp_path / "x.fa").exists()
    r = run("dna-design", "-o", tmp_path / "x.fa")
    assert r.exit_code == 2 and "--motif" in r.output
    r = run("dna-generate", "--model", tmp_path / "nope")
    assert r.exit_code == 2
    before = fasta.read_bytes()
    r = run("dna-score", fasta, "--motif", "MA0139.2", "-o", fasta)  # a FASTA name for a TSV: refused first
    assert r.exit_code == 2 and "should end in" in r.output and fasta.read_bytes() == before
    r = run("dna-design", "--motif", "MA0139.2", "-n", 2, "--steps", 2, "-o", tmp_path / "d.csv")
    assert r.exit_code == 2 and "should end in .fa" in r.output and not (tmp_path / "d.csv").exists()


def test_real_pbm_probes_score(tmp_path):
    fa = shared_file("dna", "pbm", "Gata4.fa.gz")
    r = run("dna-score", fa, "--motif", "MA0035.4", "-o", tmp_path / "gata.tsv", "-q")
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "gata.tsv", sep="\t")
    assert len(t) > 40000 and (t["length"] == 36).all()
    sig = pd.read_csv(shared_file("dna", "pbm", "Gata4_scores.csv.gz")).set_index("id")["signal"]
    t["signal"] = sig.loc[t["id"]].to_numpy()
    top = t["signal"] >= t["signal"].quantile(0.99)
    assert (
        t.loc[top, "motif_score"].mean() > t.loc[~top, "motif_score"].mean() + 2
    )  # GATA probes carry the motif


def test_dna_score_keeps_going_past_short_records_and_refuses_when_none_fit(tmp_path):
    fa = tmp_path / "mixed.fa"
    fa.write_text(">long\nACGTACGTACGTAGATAAGGCTTATCAA\n>empty\n>tiny\nACGT\n")
    r = run("dna-score", fa, "--motif", "MA0035.4", "-o", tmp_path / "s.tsv")
    assert r.exit_code == 0, r.output
    assert "2 record(s) shorter than the 11-bp motif" in r.output
    t = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(t["id"]) == ["long", "empty", "tiny"]
    assert t["motif_score"].notna().tolist() == [True, False, False]
    short = tmp_path / "short.fa"
    short.write_text(">a\nACGT\n>b\nGATA\n")
    r = run("dna-score", short, "--motif", "MA0035.4", "-o", tmp_path / "s2.tsv")
    assert r.exit_code == 2 and "can be scored" in r.output and not (tmp_path / "s2.tsv").exists()


def test_gan_trains_on_windows_with_n_kept_uniform_and_predictor_input_errors(tmp_path):
    from conftest import assert_one_line_error

    seqs = random_seqs(60, 40, seed=2)
    seqs[3] = seqs[3][:10] + "NNNN" + seqs[3][14:]
    seqs.append("ACGTAC")  # shorter than --length
    fa = write_fa(tmp_path / "n.fa", seqs)
    r = run("dna-train", fa, "-o", tmp_path / "g", "--length", 20, "--ambiguous", "uniform", "--short", "pad",
            "--iterations", 2, "--channels", 4, "--heldout-fraction", 0, "-q")
    assert r.exit_code == 0, r.output
    r = run("dna-train", fa, "-o", tmp_path / "g2", "--length", 20, "--short", "pad", "--iterations", 2)
    assert_one_line_error(r, "--ambiguous uniform")
    probes = write_fa(tmp_path / "p.fa", random_seqs(40, 20, seed=1), prefix="p")
    ok = tmp_path / "ok.csv"
    pd.DataFrame({"id": [f"p{i}" for i in range(40)], "signal": range(40)}).to_csv(ok, index=False)
    r = run("dna-train-predictor", probes, "--scores", ok, "-o", tmp_path / "pe", "--epochs", 0)
    assert_one_line_error(r, "--epochs must be positive")
    dup = tmp_path / "dup.csv"
    dup.write_text("id,signal\n" + "".join(f"p{i},{i}\n" for i in range(40)) + "p3,99\n")
    r = run("dna-train-predictor", probes, "--scores", dup, "-o", tmp_path / "pd")
    assert_one_line_error(r, "more than once", "p3")
    headless = tmp_path / "headless.csv"
    headless.write_text("".join(f"p{i},{i}\n" for i in range(40)))
    r = run("dna-train-predictor", probes, "--scores", headless, "-o", tmp_path / "ph")
    assert_one_line_error(r, "header")
    tsv_named_csv = tmp_path / "tabs.csv"
    tsv_named_csv.write_text("id\tsignal\n" + "".join(f"p{i}\t{i}\n" for i in range(40)))
    r = run("dna-train-predictor", probes, "--scores", tsv_named_csv, "-o", tmp_path / "pt", "--epochs", 1, "-q")
    assert r.exit_code == 0, r.output
    for out in ("pe", "pd", "ph"):
        assert not (tmp_path / out).exists()


def _revcomp(s: str) -> str:
    return s.translate(str.maketrans("ACGT", "TGCA"))[::-1]


BED_NAMES = ["chrom", "chromStart", "chromEnd", "name", "score", "strand"]


def test_design_and_score_write_a_jaspar_motif_and_bed_hits_that_biopython_and_pandas_read(tmp_path):
    """Issue 18, item 15: the designed motif as JASPAR (Bio.motifs reads it, and --motif reads it back)
    and the best hits as BED (0-based half-open, the sequence id as chrom, a strand column)."""
    import numpy as np
    from Bio import motifs

    out = tmp_path / "ctcf.fa"
    r = run("dna-design", "--motif", "MA0139.2", "-n", 30, "--length", 40, "--steps", 120, "-o", out, "--seed", 4)
    assert r.exit_code == 0, r.output
    for name in ("ctcf.fa", "ctcf.tsv", "ctcf.png", "ctcf.motif.jaspar", "ctcf.hits.bed"):
        assert name in r.output and (tmp_path / name).is_file(), name
    table = pd.read_csv(tmp_path / "ctcf.tsv", sep="\t")
    with open(tmp_path / "ctcf.motif.jaspar") as fh:
        motif = motifs.read(fh, "jaspar")
    assert motif.length == 15 and motif.matrix_id == "ctcf" and "MA0139.2" in motif.name
    counts = np.array([motif.counts[b] for b in "ACGT"])
    assert (counts.sum(axis=0) == 30).all()  # every design's best hit, aligned on the motif's strand
    hits = [s if st == "+" else _revcomp(s) for s, st in zip(table["hit_sequence"], table["hit_strand"])]
    expected = np.array([[sum(h[j] == b for h in hits) for j in range(15)] for b in "ACGT"])
    assert np.array_equal(counts, expected)
    from gengen.io.motifs import load_motif

    again = load_motif(str(tmp_path / "ctcf.motif.jaspar"), quiet=True)
    assert np.allclose(again.counts, counts)
    bed = pd.read_csv(tmp_path / "ctcf.hits.bed", sep="\t", header=None, names=BED_NAMES)
    assert list(bed["chrom"]) == list(table["id"]) and (bed["chromEnd"] - bed["chromStart"] == 15).all()
    assert list(bed["chromStart"] + 1) == list(table["hit_start"]) and list(bed["strand"]) == list(table["hit_strand"])
    seq = dict(zip(table["id"], table["sequence"]))
    assert [seq[c][a:b] for c, a, b in zip(bed["chrom"], bed["chromStart"], bed["chromEnd"])] == list(table["hit_sequence"])
    assert bed["score"].between(0, 1000).all() and (bed["name"] == "MA0139.2_CTCF").all()

    # dna-score: the hits of any FASTA beside the table; records without a hit are left out
    fa = write_fa(tmp_path / "recs.fa", ["ACGT", *random_seqs(3, 300, seed=8)], prefix="chr")
    r = run("dna-score", fa, "--motif", "MA0139.2", "-o", tmp_path / "s.tsv")
    assert r.exit_code == 0, r.output
    scores = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    bed = pd.read_csv(tmp_path / "s.hits.bed", sep="\t", header=None, names=BED_NAMES)
    assert list(bed["chrom"]) == ["chr1", "chr2", "chr3"]  # chr0 is shorter than the motif
    assert list(bed["chromStart"] + 1) == list(scores["hit_start"].dropna().astype(int))
    assert list(bed["strand"]) == list(scores["hit_strand"].dropna())
    records = dict(zip([f"chr{i}" for i in range(4)], ["ACGT", *random_seqs(3, 300, seed=8)]))
    pwm = load_motif("MA0139.2", quiet=True)
    for c, a, b, st, best in zip(bed["chrom"], bed["chromStart"], bed["chromEnd"], bed["strand"], scores["motif_score"][1:]):
        window = records[c][a:b] if st == "+" else _revcomp(records[c][a:b])
        assert sum(pwm.log_odds["ACGT".index(x), j] for j, x in enumerate(window)) == pytest.approx(best, abs=1e-3)
    r = run("dna-score", fa, "--motif", "MA0139.2")  # to stdout: no side file to write beside
    assert r.exit_code == 0 and sorted(p.name for p in tmp_path.glob("*.hits.bed")) == ["ctcf.hits.bed", "s.hits.bed"]


def test_side_files_drop_a_compression_suffix_then_exactly_one_extension(tmp_path):
    """User test, item 3: ``-o x.txt.tsv`` wrote ``x.hits.bed`` (two extensions dropped) while ``-o x.jaspar.tsv``
    wrote ``x.jaspar.hits.bed``; one rule now names every side file."""
    from gengen.dna.designer.result import design_outputs
    from gengen.dna.gan.evaluate import eval_outputs
    from gengen.runtime import side_path

    for out, bed in (("t.tsv", "t.hits.bed"), ("t.tsv.gz", "t.hits.bed"), ("t.TSV.XZ", "t.hits.bed"),
                     ("x.txt.tsv", "x.txt.hits.bed"), ("x.jaspar.tsv", "x.jaspar.hits.bed"), ("plain", "plain.hits.bed"),
                     ("d/a.b.c.bz2", "d/a.b.hits.bed")):
        assert side_path(out, ".hits.bed").as_posix() == bed, out
    assert [p.name for p in design_outputs("d.fas.fa.gz", motif=True, hits=True)] == [
        "d.fas.fa.gz", "d.fas.tsv", "d.fas.png", "d.fas.motif.jaspar", "d.fas.hits.bed"]
    assert [p.name for p in eval_outputs("e.tsv.gz")] == ["e.tsv.gz", "e.novelty.tsv"]
    fa = write_fa(tmp_path / "recs.fa", random_seqs(3, 60, seed=8))
    for out in ("x.txt.tsv", "x.jaspar.tsv"):
        r = run("dna-score", fa, "--motif", "MA0139.2", "-o", tmp_path / out)
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.glob("*.hits.bed")) == ["x.jaspar.hits.bed", "x.txt.hits.bed"]
    r = run("dna-score", fa, "--motif", "MA0139.2", "-o", tmp_path / "z.tsv.gz")  # item 4: the gzip header
    data = (tmp_path / "z.tsv.gz").read_bytes()
    assert r.exit_code == 0 and (tmp_path / "z.hits.bed").is_file() and data[3] & 0x08, r.output
    assert data[10:data.index(b"\0", 10)] == b"z.tsv"
