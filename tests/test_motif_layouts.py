"""Every plain PWM layout people write reads as the same motif (issue 10, item 3).

A real JASPAR matrix (MA0139.2, CTCF, from pyjaspar's bundled database, offline) is written out in each
layout and read back. "The same motif" depends on what a layout can carry (module docstring of
gengen.io.motifs): counts layouts give exactly JASPAR's log-odds; probability and percentage layouts
give the log-odds of those frequencies as 100 sites (a frequency table does not say how many sites it
came from); a log-odds table is used as written, so JASPAR's log-odds written out score identically.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import assert_one_line_error
from gengen.errors import GengenError
from gengen.io.motifs import FREQUENCY_SITES, fetch_jaspar, load_motif, pwm_from_counts, read_motif_file

JASPAR = fetch_jaspar("MA0139.2", quiet=True)
COUNTS = JASPAR.counts  # (4, 15), column sums 908..913
FREQS = COUNTS / COUNTS.sum(axis=0)
VALUES = {
    "counts": (COUNTS, "{:.0f}"),
    "probabilities": (FREQS, "{:.9f}"),
    "percentages": (100 * FREQS, "{:.7f}"),
    "log-odds": (JASPAR.log_odds, "{:.9f}"),
}
AS_100_SITES = pwm_from_counts(FREQS * FREQUENCY_SITES)
EXPECTED = {"counts": JASPAR, "probabilities": AS_100_SITES, "percentages": AS_100_SITES, "log-odds": JASPAR}
W = COUNTS.shape[1]


def _rows(m: np.ndarray, fmt: str) -> list[list[str]]:
    return [[fmt.format(v) for v in row] for row in m]


def _positions_x4(m, fmt, *, sep="\t", header=None, index=None, order="ACGT"):
    """One row per position; ``order`` the column order (written in ``header``'s case)."""
    cols = ["ACGT".index(b.upper()) for b in order]
    lines = [header] if header is not None else []
    for j, row in enumerate(_rows(m.T[:, cols], fmt)):
        lines.append(sep.join(([str(j + index)] if index is not None else []) + row))
    return "\n".join(lines) + "\n"


def _four_x_positions(m, fmt, *, sep="\t", labels=None, index_row=None, order="ACGT"):
    """One row per base, in ``order``; ``labels`` formats the row label (e.g. '{}:' or '{} |')."""
    lines = [index_row] if index_row is not None else []
    for b in order:
        row = _rows(m["ACGT".index(b.upper())][None], fmt)[0]
        lines.append(sep.join(([labels.format(b)] if labels is not None else []) + row))
    return "\n".join(lines) + "\n"


LAYOUTS = {
    # positions x 4 (the common hand-written layout and its variants)
    "header-tab": lambda m, f: _positions_x4(m, f, header="A\tC\tG\tT"),
    "header-shuffled-lowercase-space": lambda m, f: _positions_x4(m, f, sep=" ", header="t g a c", order="tgac"),
    "no-header-multispace": lambda m, f: _positions_x4(m, f, sep="   "),
    "index-column-header-comma": lambda m, f: _positions_x4(m, f, sep=",", header="pos,A,C,G,T", index=1),
    "index-column-no-header-tab": lambda m, f: _positions_x4(m, f, index=0),
    "pandas-csv": lambda m, f: _positions_x4(m, f, sep=",", header=",A,C,G,T", index=0),
    "comments-and-commented-header": lambda m, f: "# CTCF, written by hand\n# A, C, G, T\n"
    + _positions_x4(m, f, sep=", ") + "# end of matrix\n",
    "transfac-like-P0": lambda m, f: _positions_x4(m, f, sep="  ", header="P0  A  C  G  T", index=1),
    # 4 x positions
    "labelled-rows-tab": lambda m, f: _four_x_positions(m, f, labels="{}"),
    "labelled-shuffled-lowercase-colon": lambda m, f: _four_x_positions(m, f, sep=" ", labels="{}:", order="gatc"),
    "labelled-pipe-index-row": lambda m, f: _four_x_positions(
        m, f, sep=" ", labels="{} |", order="TGCA", index_row="pos " + " ".join(str(j + 1) for j in range(W))),
    "bare-rows-comma": lambda m, f: _four_x_positions(m, f, sep=","),
    "bare-rows-index-row": lambda m, f: _four_x_positions(m, f, index_row="\t".join(str(j) for j in range(W))),
    "jaspar-pfm-download": lambda m, f: ">MA0139.2\tCTCF\n" + _four_x_positions(m, f),
}


def _scores(pwm) -> np.ndarray:
    from gengen.dna.predictor.predictors import PWMPredictor
    from gengen.io.sequences import one_hot

    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(64)] + ["AAAA" + JASPAR.consensus + "T" * 21]
    best, start, strand = PWMPredictor(pwm).exact(one_hot(seqs))
    return np.stack([best.numpy(), start.numpy(), strand.numpy()])


REFERENCE_SCORES = {kind: _scores(pwm) for kind, pwm in (("counts", JASPAR), ("frequencies", AS_100_SITES))}


@pytest.mark.parametrize("kind", list(VALUES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_reads_as_the_same_motif(tmp_path, capsys, layout, kind):
    values, fmt = VALUES[kind]
    path = tmp_path / "pwm.txt"
    path.write_text(LAYOUTS[layout](values, fmt))
    pwm = read_motif_file(path)
    expected = EXPECTED[kind]
    np.testing.assert_allclose(pwm.log_odds, expected.log_odds, rtol=0, atol=1e-6)
    assert pwm.consensus == JASPAR.consensus and pwm.length == W
    scores = _scores(pwm)
    ref = REFERENCE_SCORES["frequencies" if expected is AS_100_SITES else "counts"]
    np.testing.assert_allclose(scores[0], ref[0], atol=1e-4)  # best window score
    np.testing.assert_array_equal(scores[1:], ref[1:])  # at the same position and strand
    said = {"counts": "counts (908..913 sites)", "probabilities": "probabilities, read as 100 sites",
            "percentages": "percentages, read as 100 sites", "log-odds": "log-odds (negative values)"}[kind]
    assert said in pwm.layout, pwm.layout
    assert ("positions x 4" if layout in list(LAYOUTS)[:8] else "4 x positions") in pwm.layout
    err = capsys.readouterr().err
    assert ("read as log-odds scores and used as written" in err) == (kind == "log-odds")


def test_log_odds_ignore_pseudocount_and_counts_follow_it(tmp_path):
    (tmp_path / "lo.txt").write_text(LAYOUTS["header-tab"](*VALUES["log-odds"]))
    (tmp_path / "c.txt").write_text(LAYOUTS["header-tab"](*VALUES["counts"]))
    lo = read_motif_file(tmp_path / "lo.txt", pseudocount=5.0, quiet=True)
    np.testing.assert_allclose(lo.log_odds, JASPAR.log_odds, atol=1e-6)  # used as written
    np.testing.assert_allclose(lo.probabilities(), JASPAR.probabilities(), atol=1e-6)  # logos: implied frequencies
    c = read_motif_file(tmp_path / "c.txt", pseudocount=5.0)
    np.testing.assert_allclose(c.log_odds, fetch_jaspar("MA0139.2", pseudocount=5.0).log_odds, atol=1e-12)


def test_homer_file_with_two_motifs(tmp_path, capsys):
    def block(name, m):
        return f">{JASPAR.consensus}\t{name}\t8.52\t-1.2e3\t0\tT:17.0(44.74%)\n" + _positions_x4(m, "{:.6f}")

    other = FREQS[:, ::-1]
    path = tmp_path / "known.motifs"
    path.write_text(block("CTCF(Zf)/CD4+-CTCF-ChIP-Seq/Homer", FREQS) + block("REVERSED/Homer", other))
    first = read_motif_file(path)
    assert "holds 2 motifs" in capsys.readouterr().err
    assert first.name == "CTCF(Zf)/CD4+-CTCF-ChIP-Seq/Homer" and "homer table" in first.layout
    np.testing.assert_allclose(first.log_odds, AS_100_SITES.log_odds, atol=1e-3)  # 6 decimals written
    second = read_motif_file(path, name="REVERSED/Homer")
    np.testing.assert_allclose(second.log_odds, AS_100_SITES.log_odds[:, ::-1], atol=1e-3)
    with pytest.raises(GengenError, match="no motif named 'nope'"):
        read_motif_file(path, name="nope")


def test_a_four_by_four_table_is_ambiguous_unless_forced(tmp_path):
    m = COUNTS[:, :4]
    path = tmp_path / "four.txt"
    path.write_text(_positions_x4(m, "{:.0f}"))  # 4 positions x 4 bases, no labels
    with pytest.raises(GengenError, match="can be read either way.*--motif-format pfm-four-columns"):
        read_motif_file(path)
    as_rows = read_motif_file(path, fmt="pfm-four-columns")
    np.testing.assert_allclose(as_rows.counts, m)
    as_columns = read_motif_file(path, fmt="pfm-four-rows")
    np.testing.assert_allclose(as_columns.counts, m.T)
    labelled = tmp_path / "labelled.txt"
    labelled.write_text(_positions_x4(m, "{:.0f}", header="A C G T"))
    np.testing.assert_allclose(read_motif_file(labelled).counts, m)  # a header settles it
    with pytest.raises(GengenError, match="contradicts"):
        read_motif_file(labelled, fmt="pfm-four-rows")


@pytest.mark.parametrize(
    "text, message",
    [
        ("A C G T\n0.2 0.3 0.1 0.1\n0.5 0.5 0.3 0.2\n0.25 0.25 0.25 0.25\n", "look like probabilities"),
        ("A C G T\n0.5 0.2 0.1 0.1\n0.5 0.2 0.1 0.1\n0.5 0.2 0.1 0.1\n", "sum to 0.9..0.9"),
        ("A C G T\n1 2 3\n4 5 6\n", "each row needs 4 values"),
        ("A C G T\n1 2 3\n4 5 6 7\n", "same number of values"),
        ("A 1 2 3\nC 1 2 3\nG 1 2 3\nG 1 2 3\n", "exactly A, C, G and T once each"),
        ("A C G T\n1 2 x 4\n", "not a row of numbers"),
        ("1 2 3\n4 5 6\n7 8 9\n", "neither positions x 4 nor 4 x positions"),
        ("# nothing but a comment\n", "no rows of numbers"),
        ("A C G T\n0 0 0 0\n1 2 3 4\n", "position 1 has no counts"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(GengenError, match=message):
        read_motif_file(path)


def test_gzipped_motif_and_truncated_gzip(tmp_path):
    text = LAYOUTS["header-tab"](*VALUES["counts"])
    with gzip.open(tmp_path / "pwm.txt.gz", "wt") as fh:
        fh.write(text * 40)  # 40 motifs' worth of rows: one long table, so the cut lands inside the stream
    good = tmp_path / "one.txt.gz"
    with gzip.open(good, "wt") as fh:
        fh.write(text)
    np.testing.assert_allclose(load_motif(good).log_odds, JASPAR.log_odds, atol=1e-12)
    raw = (tmp_path / "pwm.txt.gz").read_bytes()
    (tmp_path / "cut.txt.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(GengenError, match="cut.txt.gz' is truncated or corrupted"):
        load_motif(tmp_path / "cut.txt.gz")


def test_cli_design_with_the_common_hand_written_pwm(tmp_path):
    from typer.testing import CliRunner

    from gengen.cli import app

    pwm = tmp_path / "pwm.txt"  # header row A C G T, then one row of probabilities per position
    pwm.write_text("A\tC\tG\tT\n" + "\n".join("\t".join(f"{v:.3f}" for v in row) for row in FREQS.T) + "\n")
    out = tmp_path / "designs.fa"
    res = CliRunner().invoke(app, ["dna-design", "--motif", str(pwm), "-n", "4", "--length", "30", "--steps", "30",
                                   "-o", str(out), "--seed", "0", "--threads", "1"])
    assert res.exit_code == 0, res.output
    said = next(ln for ln in res.output.splitlines() if ln.startswith("motif pwm:"))
    assert f"15 bp, consensus {JASPAR.consensus}" in said
    assert "read as pfm table: positions x 4, header A C G T; probabilities, read as 100 sites" in said
    assert out.read_text().count(">design_") == 4
    four = tmp_path / "four.txt"
    four.write_text(_positions_x4(COUNTS[:, :4], "{:.0f}"))
    res = CliRunner().invoke(app, ["dna-score", str(out), "--motif", str(four), "-o", str(tmp_path / "s.tsv")])
    assert_one_line_error(res, "--motif-format")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_unicode_exports_read_like_utf8(tmp_path, encoding):
    """Excel's "Unicode text" export is UTF-16 with a byte-order mark: motifs, FASTA and matrices read
    the same as their UTF-8 copies (a BOM-less UTF-16 file stays a one-line "binary" error)."""
    from gengen.io.expression import read_expression
    from gengen.io.sequences import read_fasta_records

    bom = {"utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    text = LAYOUTS["header-tab"](*VALUES["counts"])
    (tmp_path / "pwm.txt").write_bytes(bom + text.encode(encoding))
    np.testing.assert_allclose(load_motif(tmp_path / "pwm.txt").log_odds, JASPAR.log_odds, atol=1e-12)
    (tmp_path / "s.fa").write_bytes(bom + ">a\nACGT\n>b\nGGCC\n".encode(encoding))
    assert read_fasta_records(tmp_path / "s.fa") == [("a", "ACGT"), ("b", "GGCC")]
    (tmp_path / "x.csv").write_bytes(bom + "sample,g1,g2\ns1,1.5,2\ns2,3,4.25\n".encode(encoding))
    a = read_expression(tmp_path / "x.csv")
    assert a.obs_names.tolist() == ["s1", "s2"] and a.var_names.tolist() == ["g1", "g2"]
    np.testing.assert_allclose(a.X, [[1.5, 2], [3, 4.25]])
    # gzipped too: pyarrow inflates gzip itself, so the matrix reader must see the wide text first
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress((tmp_path / "x.csv").read_bytes()))
    np.testing.assert_array_equal(read_expression(tmp_path / "x.csv.gz").X, a.X)
    (tmp_path / "nobom.csv").write_bytes("sample,g1\ns1,1\n".encode("utf-16-le"))
    with pytest.raises(GengenError, match="binary"):
        read_expression(tmp_path / "nobom.csv")
