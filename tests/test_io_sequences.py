"""FASTA headers (issue 18, item 8): a bare '>' used to give records with id '' (five of them, all
alike, in a scores table); now each is named by its position and a note says so. Latin-1 text in a
header reads as such instead of being refused as "not text"."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from gengen.cli import app
from gengen.io.sequences import read_fasta, read_fasta_records


def test_bare_headers_are_named_by_position_and_said(tmp_path, capsys):
    (tmp_path / "x.fa").write_text(">\nACGTACGTAC\n>\nACGTACGTAA\n>unnamed_2\nACGTACGTTT\n>  \nACGTACGGGG\n")
    records = read_fasta_records(tmp_path / "x.fa")
    assert [r[0] for r in records] == ["unnamed_1", "unnamed_2_2", "unnamed_2", "unnamed_4"]
    err = capsys.readouterr().err
    assert "3 record(s) have no name after '>' (record #1, #2, #4); named by their position" in err
    assert read_fasta(tmp_path / "x.fa", quiet=True).ids == ["unnamed_1", "unnamed_2_2", "unnamed_2", "unnamed_4"]
    assert capsys.readouterr().err == ""


def test_scores_of_unnamed_records_are_told_apart(tmp_path):
    (tmp_path / "m.sites").write_text("GCGAG\nGCGAG\nACGAG\n")
    (tmp_path / "x.fa").write_text("".join(f">\n{s}\n" for s in ("ACGCGAGTTT", "TTTTTTTTTT", "GCGAGGCGAG")))
    r = CliRunner().invoke(app, ["dna-score", str(tmp_path / "x.fa"), "--motif", str(tmp_path / "m.sites"),
                                 "--motif-format", "sites", "-o", str(tmp_path / "s.tsv"), "-q"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert table.iloc[:, 0].tolist() == ["unnamed_1", "unnamed_2", "unnamed_3"]


def test_latin1_header_is_read(tmp_path):
    (tmp_path / "x.fa").write_bytes(">Müller promoter\nACGTACGT\n".encode("latin-1"))
    assert read_fasta_records(tmp_path / "x.fa") == [("Müller", "ACGTACGT")]
