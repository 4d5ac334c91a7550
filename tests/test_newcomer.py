"""What a new user types first, taken literally: factor names as motifs, questions to the empty store.

Each case here was found by running the README and docs/ commands as written in a fresh directory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_motif_given_as_factor_name_lists_jaspar_ids(tmp_path):
    fa = tmp_path / "s.fa"
    fa.write_text(">s\nACGTGCCACCAGGGGGCGCTTAGA\n")
    res = run("dna-score", fa, "--motif", "CTCF")
    assert_one_line_error(res, "'CTCF'", "MA0139.2 (vertebrates, 15 bp)", "--motif MA0139.2")
    # lower case finds the same factor; vertebrate matrices come first
    res = run("dna-score", fa, "--motif", "gata1")
    assert_one_line_error(res, "GATA1 as MA0035", "--motif MA0035")


def test_motif_missing_file_or_unknown_name_has_no_jaspar_hint(tmp_path):
    fa = tmp_path / "s.fa"
    fa.write_text(">s\nACGTGCCACCAGGGGGCGCTTAGA\n")
    res = run("dna-score", fa, "--motif", "NOSUCHFACTOR123")
    assert_one_line_error(res, "neither an existing file nor a JASPAR matrix id")
    assert "has" not in res.output.split("MA0139.2", 1)[1]
    for spec in ("motif.meme", str(tmp_path / "x" / "m.txt"), "ctcf.jaspar"):
        res = run("dna-score", fa, "--motif", spec)
        assert_one_line_error(res, f"motif file {spec!r} does not exist")


def test_models_default_with_none_set_does_not_talk_about_model_option():
    res = run("models", "default", "ggan")
    assert_one_line_error(res, "no default GGAN model yet", "gengen ggan-train REFERENCE.h5ad")
    assert "--model" not in res.output


def test_models_list_counts_one_model_in_the_singular(tmp_path):
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(rng.standard_normal((60, 6)), columns=[f"G{i}" for i in range(6)],
                       index=[f"s{i}" for i in range(60)])
    ref.to_csv(tmp_path / "ref.csv")
    (tmp_path / "lm.txt").write_text("G0\nG1\nG2\n")
    res = run("ggan-train", tmp_path / "ref.csv", "--landmarks", tmp_path / "lm.txt", "--hidden", "8",
              "--epochs", "1", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    listing = run("models", "list")
    assert listing.exit_code == 0 and "# 1 model in " in listing.output, listing.output


def test_dna_train_status_line_counts_every_iteration(tmp_path, monkeypatch):
    """A run that stops between two log intervals (time limit, or the last iteration) still reports
    how far it got: the status line once read 0/2000 after 42 iterations."""
    from dna_fixtures import random_seqs, write_fa

    fasta = write_fa(tmp_path / "train.fa", random_seqs(60, 40, seed=3), prefix="gene")
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    res = run("dna-train", fasta, "-o", tmp_path / "gan", "--length", 20, "--iterations", 7, "--channels", 4,
              "--batch-size", 8, "--sample-every", 5, "--device", "cpu")
    assert res.exit_code == 0, res.output
    status = [ln for ln in res.output.splitlines() if ln.startswith("train WGAN-GP:")]
    assert status and status[-1].startswith("train WGAN-GP: 7/7"), res.output


def test_landmark_symbols_against_probe_reference_say_what_list_to_give(tmp_path):
    rng = np.random.default_rng(0)
    probes = ["1007_s_at", "1053_at", "117_at", "121_at", "1255_g_at", "1294_at"]
    pd.DataFrame(rng.standard_normal((30, 6)), columns=probes, index=[f"s{i}" for i in range(30)]).to_csv(
        tmp_path / "ref.csv")
    (tmp_path / "lm.txt").write_text("DDR1\nRFC2\n")
    res = run("ggan-train", tmp_path / "ref.csv", "--landmarks", tmp_path / "lm.txt", "-o", tmp_path / "m")
    assert_one_line_error(res, "none of the 2 landmark genes", "'1007_s_at'", "probe map", "gene<TAB>Ensembl id")
    assert not (tmp_path / "m").exists()


def test_default_output_names_drop_every_data_extension(tmp_path):
    """vae-encode and infer-targets name their default output after the input without its data and
    compression extensions, as the model store does: x.tsv.bz2 -> x.vae.h5ad, not x.tsv.bz2.vae.h5ad."""
    import bz2

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(8)]
    df = pd.DataFrame(rng.uniform(0, 5, (40, 8)), columns=genes, index=[f"s{i}" for i in range(40)])
    (tmp_path / "expr.tsv.bz2").write_bytes(bz2.compress(df.to_csv(sep="\t").encode()))
    res = run("vae-encode", tmp_path / "expr.tsv.bz2", "--latent", 2, "--epochs", 2, "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "expr.vae.h5ad").is_file() and (tmp_path / "gengen_home" / "models" / "expr-vae").is_dir()

    df.to_csv(tmp_path / "ref.csv")
    (tmp_path / "lm.txt").write_text("G0\nG1\nG2\n")
    res = run("ggan-train", tmp_path / "ref.csv", "--landmarks", tmp_path / "lm.txt", "-o", tmp_path / "m",
              "--hidden", 8, "--epochs", 1, "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    (tmp_path / "q.tsv.xz").write_bytes(__import__("lzma").compress(df[genes[:3]].to_csv(sep="\t").encode()))
    res = run("infer-targets", tmp_path / "q.tsv.xz", "--model", tmp_path / "m", "-q")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "q.targets.csv").is_file()


def test_ggan_eval_fold_lines_are_readable(tmp_path):
    """Each fold's line lists its choices as 'alpha 100' rather than a Python dict with 16 digits."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8))
    df = pd.DataFrame(X, columns=[f"G{i}" for i in range(8)], index=[f"s{i}" for i in range(40)])
    df.to_csv(tmp_path / "ref.csv")
    (tmp_path / "lm.txt").write_text("G0\nG1\nG2\n")
    res = run("ggan-eval", tmp_path / "ref.csv", "--landmarks", tmp_path / "lm.txt", "--methods", "ridge,knn",
              "--folds", 2, "-o", tmp_path / "ev", "--device", "cpu")
    assert res.exit_code == 0, res.output
    folds = [ln for ln in res.output.splitlines() if ln.startswith("fold ")]
    assert len(folds) == 4 and "{" not in res.output, res.output
    assert any("alpha " in ln for ln in folds) and any(" k " in ln for ln in folds), folds


def test_vae_status_line_has_no_nan_without_validation(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.uniform(0, 5, (30, 40)), columns=[f"G{i}" for i in range(40)],
                      index=[f"s{i}" for i in range(30)])
    df.to_csv(tmp_path / "x.csv")
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    res = run("vae-train", tmp_path / "x.csv", "-o", tmp_path / "m", "--latent", 2, "--epochs", 3, "--device", "cpu")
    assert res.exit_code == 0, res.output
    status = [ln for ln in res.output.splitlines() if ln.startswith("training VAE:") and "elapsed" in ln]
    assert status and all("nan" not in ln and "val=" not in ln for ln in status), res.output
    # with a validation split the validation loss is shown
    res = run("vae-train", tmp_path / "x.csv", "-o", tmp_path / "m2", "--latent", 2, "--epochs", 3,
              "--val-fraction", 0.2, "--device", "cpu")
    status = [ln for ln in res.output.splitlines() if ln.startswith("training VAE:") and "elapsed" in ln]
    assert res.exit_code == 0 and status and "val=" in status[-1], res.output


def test_command_help_paragraphs_are_unwrapped():
    """Typer keeps a docstring's source line breaks after its first paragraph; at 80 columns that cut
    sentences in two. Every command's help is whole paragraphs, wrapped by the terminal."""
    import typer.main

    def walk(group):
        for sub in getattr(group, "commands", {}).values():
            yield sub
            yield from walk(sub)

    commands = list(walk(typer.main.get_command(app)))
    assert len(commands) > 20
    for cmd in commands:
        for paragraph in (cmd.help or "").split("\n\n"):
            assert "\n" not in paragraph, (cmd.name, paragraph)
    res = runner.invoke(app, ["vae-train", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    text = " ".join(ln.strip() for ln in res.output.splitlines())
    assert "at least once a minute" in text, res.output


def test_predictor_trained_into_store_says_how_to_use_it(tmp_path):
    """No command falls back on a default DNA predictor (dna-design without --predictor designs toward
    --motif), so the line after training names the option instead of 'used when --model is left out'."""
    from dna_fixtures import random_seqs, write_fa

    seqs = random_seqs(200, 20, seed=1)
    fa = write_fa(tmp_path / "probes.fa", seqs, prefix="p")
    pd.DataFrame({"id": [f"p{i}" for i in range(len(seqs))],
                  "signal": np.random.default_rng(0).uniform(1, 100, len(seqs))}).to_csv(tmp_path / "s.csv", index=False)
    res = run("dna-train-predictor", fa, "--scores", tmp_path / "s.csv", "--epochs", 1, "--no-baseline",
              "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "use it with --predictor probes-dna-predictor" in res.output, res.output
    assert "used when --model is left out" not in res.output
