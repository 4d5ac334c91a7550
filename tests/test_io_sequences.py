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


def test_empty_records_are_named_in_the_length_errors_not_dropped_unsaid(tmp_path):
    """User test, item 9: "different lengths (3..4)" left out an empty record, and with equal lengths one was
    dropped without a word; an empty record is now a record of length 0, named wherever it stops a read."""
    import pytest

    from gengen.errors import GengenError

    (tmp_path / "mixed.fa").write_text(">a\nACGT\n>b\n>c\nACG\n")
    with pytest.raises(GengenError, match=r"different lengths \(0\.\.4\); 1 record\(s\) are empty, a header without "
                                          r"sequence lines \('b'\); give a window length \(--length\) and remove"):
        read_fasta(tmp_path / "mixed.fa")
    (tmp_path / "equal.fa").write_text(">a\nACGT\n>b\n>c\nACGT\n")
    with pytest.raises(GengenError, match=r"1 record\(s\) are empty.*\('b'\); the others are 4 nt: remove the empty"):
        read_fasta(tmp_path / "equal.fa")
    with pytest.raises(GengenError, match=r"shorter than --length 4 \('b'\), 1 of them empty"):
        read_fasta(tmp_path / "equal.fa", length=4)
    assert read_fasta(tmp_path / "equal.fa", length=4, short="skip").ids == ["a", "c"]
    (tmp_path / "short.fa").write_text(">a\nACGTACGT\n>b\n>c\nACG\n")  # padding: a short record yes, an empty one no
    padded = read_fasta(tmp_path / "short.fa", length=8, short="pad", ambiguous="uniform")
    assert padded.ids == ["a", "c"] and (padded.codes[1, 3:] == 4).all()
    r = CliRunner().invoke(app, ["dna-explain", str(tmp_path / "mixed.fa"), "--motif", "MA0035.4",
                                 "-o", str(tmp_path / "ex"), "-q"])
    assert r.exit_code == 2 and "'b'" in r.output and not (tmp_path / "ex").exists(), r.output


def test_repeated_ids_are_kept_and_said_once(tmp_path, capsys):
    """User test, item 10: five records all named 'same' were read without a word; the ids stay as they are
    (rows keep the file's order) and one note says how many repeat, with the first."""
    (tmp_path / "d.fa").write_text("".join(f">{n}\nACGTACGTACGTAGATAAGG\n" for n in ("x", "same", "y", "same", "same", "x")))
    assert [r[0] for r in read_fasta_records(tmp_path / "d.fa")] == ["x", "same", "y", "same", "same", "x"]
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "5 records share 2 id(s) (e.g. 'x', 2 times); they are kept as they are" in err
    (tmp_path / "u.fa").write_text(">a\nACGT\n>b\nACGT\n")
    read_fasta_records(tmp_path / "u.fa")
    read_fasta_records(tmp_path / "d.fa", quiet=True)
    assert capsys.readouterr().err == ""
    r = CliRunner().invoke(app, ["dna-score", str(tmp_path / "d.fa"), "--motif", "MA0035.4", "-o", str(tmp_path / "s.tsv")])
    assert r.exit_code == 0 and "6 records share" not in r.output and "5 records share 2 id(s)" in r.output, r.output
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t")["id"].tolist() == ["x", "same", "y", "same", "same", "x"]
