"""FASTA / one-hot / motif IO of the DNA pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_file
from dna_fixtures import (
    JASPAR_TEXT,
    MEME_TEXT,
    PFM_T_TEXT,
    PFM_TEXT,
    SITES_TEXT,
    TOY_COUNTS,
    TRANSFAC_TEXT,
    random_seqs,
    write_fa,
)
from gengen.errors import GengenError
from gengen.io.motifs import detect_format, load_motif, pwm_from_counts, read_motif_file
from gengen.io.sequences import (
    codes_to_one_hot,
    decode_codes,
    heldout_mask,
    heldout_split,
    one_hot,
    one_hot_to_codes,
    read_fasta,
    write_fasta,
)


def test_one_hot_round_trip_and_layout():
    seqs = random_seqs(20, 37, seed=1)
    x = one_hot(seqs)
    assert x.shape == (20, 4, 37) and x.dtype == torch.float32
    assert torch.all(x.sum(dim=1) == 1)
    assert x[0, "ACGT".index(seqs[0][0]), 0] == 1  # channels first, A C G T
    assert decode_codes(one_hot_to_codes(x)) == seqs


def test_ambiguous_uniform_one_hot():
    x = one_hot(["ACNT"])
    assert torch.allclose(x[0, :, 2], torch.full((4,), 0.25))


def test_read_fasta_lowercase_gz_and_tiled_windows(tmp_path):
    seqs = random_seqs(3, 120, seed=2)
    p = write_fa(tmp_path / "a.fa.gz", [s.lower() for s in seqs], gz=True)
    s = read_fasta(p, length=50, windows="tiled")
    assert s.codes.shape == (6, 50)
    assert s.strings()[0] == seqs[0][:50] and s.strings()[1] == seqs[0][50:100]
    assert s.ids[1] == "s0:51-100"
    r = read_fasta(p, length=50, windows="random", seed=3)
    assert r.codes.shape[1] == 50 and all(
        w in seqs[int(i.split(":")[0][1:])] for i, w in zip(r.ids, r.strings())
    )


def test_ambiguous_skip_and_error(tmp_path):
    p = write_fa(tmp_path / "n.fa", ["ACGTNACGTA", "ACGTACGTAC"])
    assert len(read_fasta(p, ambiguous="skip")) == 1
    assert len(read_fasta(p, ambiguous="uniform")) == 2
    with pytest.raises(GengenError, match="ambiguous"):
        read_fasta(p, ambiguous="error")


def test_short_records_policy(tmp_path):
    p = write_fa(tmp_path / "s.fa", ["ACGTACGTAC", "ACG"])
    with pytest.raises(GengenError, match="shorter"):
        read_fasta(p, length=8)
    assert len(read_fasta(p, length=8, short="skip")) == 1
    padded = read_fasta(p, length=8, short="pad", ambiguous="uniform")
    assert padded.strings()[1] == "ACGNNNNN"
    with pytest.raises(GengenError, match="--ambiguous uniform"):  # padding with N that skip would drop
        read_fasta(p, length=8, short="pad")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\xff\xfe", "binary"),
        (b"hello world\n", "does not look like FASTA"),
        (b">s1\nACGTXQ\n", "non-nucleotide"),
        (b">s1\nACGT1234\n", "non-nucleotide"),
    ],
)
def test_bad_fasta_is_one_clear_error(tmp_path, content, message):
    p = tmp_path / "bad.fa"
    p.write_bytes(content)
    with pytest.raises(GengenError, match=message):
        read_fasta(p)


def test_write_fasta_protects_input(tmp_path):
    p = write_fa(tmp_path / "in.fa", ["ACGT"])
    with pytest.raises(GengenError, match="overwrite"):
        write_fasta(p, ["x"], ["AAAA"], protect=(p,))
    assert p.read_text() == ">s0\nACGT\n"


def test_heldout_mask_splits_by_record():
    ids = [f"gene{i}:{j * 50 + 1}-{j * 50 + 50}" for i in range(200) for j in range(3)]
    m = heldout_mask(ids, 0.2)
    assert 0.1 < m.mean() < 0.3
    assert (m.reshape(200, 3) == m.reshape(200, 3)[:, :1]).all()  # whole records only
    val, test = heldout_split(ids, 0.2)
    assert not (val & test).any() and ((val | test) == m).all()
    assert val.any() and test.any()
    assert (test.reshape(200, 3) == test.reshape(200, 3)[:, :1]).all()


# ---- motifs


@pytest.mark.parametrize(
    "text, fmt",
    [
        (JASPAR_TEXT, "jaspar"),
        (MEME_TEXT, "minimal"),
        (TRANSFAC_TEXT, "transfac"),
        (PFM_TEXT, "pfm"),
        (PFM_T_TEXT, "pfm"),
    ],
)
def test_motif_formats_detected_and_read(tmp_path, text, fmt):
    p = tmp_path / "m.txt"
    p.write_text(text)
    assert detect_format(text) == fmt
    pwm = read_motif_file(p)
    probs = TOY_COUNTS / TOY_COUNTS.sum(axis=0)
    assert pwm.length == 5 and pwm.consensus == "GCGAG"
    n = pwm.counts.sum(axis=0)
    assert np.allclose(pwm.counts / n, probs, atol=1e-6)
    assert np.allclose(read_motif_file(p, fmt=fmt).log_odds, pwm.log_odds)


def test_sites_format(tmp_path):
    p = tmp_path / "sites.txt"
    p.write_text(SITES_TEXT)
    pwm = read_motif_file(p)
    assert pwm.length == 5 and pwm.counts.sum(axis=0).tolist() == [8] * 5
    assert pwm.consensus == "GCGAG"


def test_log_odds_convention():
    pwm = pwm_from_counts(TOY_COUNTS, pseudocount=1.0)
    p = (TOY_COUNTS + 0.25) / (40 + 1.0)
    assert np.allclose(pwm.log_odds, np.log2(p / 0.25))
    assert pwm.max_score == pytest.approx(pwm.log_odds.max(axis=0).sum())


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("A [ 1 2 3\nC [ x y ]\n", "jaspar"),
        ("1 2 3\n4 5\n", "pfm"),
        ("MEME version 4\n\nMOTIF x\nletter-probability matrix: w= 2\n0.5 0.5\n", None),
        ("ACGT\nACG\n", "sites"),
    ],
)
def test_malformed_motif_file(tmp_path, text, fmt):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(GengenError):
        read_motif_file(p, fmt=fmt)


def test_jaspar_id_offline_and_unknown():
    pwm = load_motif("MA0139.2")
    assert pwm.length == 15 and "CTCF" in pwm.name
    with pytest.raises(GengenError, match="not in the bundled database"):
        load_motif("MA9999.9")
    with pytest.raises(GengenError, match="does not exist"):
        load_motif("no_such_file.txt")


def test_motif_longer_than_sequence():
    pwm = load_motif("MA0139.2")
    with pytest.raises(GengenError, match="15 bp long"):
        pwm.check_fits(10)


def test_codes_to_one_hot_accepts_torch():
    c = torch.tensor([[0, 1, 2, 3]], dtype=torch.uint8)
    assert codes_to_one_hot(c)[0].argmax(0).tolist() == [0, 1, 2, 3]


def test_real_dm3_promoters_read():
    p = shared_file("dna", "dm3_upstream2000.fa.gz")
    s = read_fasta(p, length=50, max_windows=2000, seed=0)
    assert s.codes.shape == (2000, 50) and s.codes.max() <= 3  # soft-masked bases read, N windows skipped
    gc = ((s.codes == 1) | (s.codes == 2)).mean()
    assert 0.3 < gc < 0.5  # Drosophila promoters are AT-rich


def test_jaspar_sites_fasta_layout(tmp_path):
    p = tmp_path / "MA9000.1.sites"
    p.write_text("".join(f">MA9000.1 TOY {i}\nacgt{s}ttga\n" for i, s in enumerate(SITES_TEXT.split())))
    pwm = read_motif_file(p, fmt="sites")
    assert pwm.length == 5 and pwm.consensus == "GCGAG"


def test_jaspar_ids_any_case_and_without_version_say_what_they_resolve_to(capsys):
    assert load_motif("ma0139.2").name == load_motif("MA0139.2").name
    latest = load_motif("MA0139")
    assert "CTCF" in latest.name
    assert "the latest version" in capsys.readouterr().err


def test_frequency_pfm_is_not_flattened_and_multi_motif_files_name_the_choice(tmp_path, capsys):
    counts = tmp_path / "counts.pfm"
    counts.write_text(PFM_TEXT)
    freqs = tmp_path / "freqs.pfm"
    f = TOY_COUNTS / TOY_COUNTS.sum(axis=0)
    freqs.write_text("\n".join(" ".join(f"{v:.4f}" for v in row) for row in f) + "\n")
    as_counts, as_freqs = load_motif(counts), load_motif(freqs)
    assert "probabilities, read as 100 sites" in as_freqs.layout and "counts (40 sites)" in as_counts.layout
    # 100 assumed sites instead of 1: close to the 40-site count matrix, not flattened by the pseudocount
    assert abs(as_freqs.max_score - as_counts.max_score) < 0.1 * as_counts.max_score
    two = tmp_path / "two.meme"
    second = MEME_TEXT.split("MOTIF", 1)[1].replace("MA9000.1 TOY", "MA9001.1 OTHER").replace("0.750000", "0.950000")
    second = second.replace("0.125000  0.125000  0.625000", "0.025000  0.025000  0.825000", 1)
    two.write_text(MEME_TEXT + "\nMOTIF" + second)
    first = load_motif(two)
    err = capsys.readouterr().err
    assert "holds 2 motifs" in err and "--motif-name" in err
    other = load_motif(two, name="MA9001.1")
    assert "MA9000.1" in first.name and "MA9001.1" in other.name
    assert not np.allclose(first.log_odds, other.log_odds)


def test_jaspar_releases_are_named_one_way():
    """--motif ids resolve from pyjaspar's newest release and matching uses JASPAR 2024 (a fixed release):
    two releases, each named as "JASPAR <year>" in every message."""
    from gengen.io.jaspar import jaspar_database, release_name
    from gengen.io.motifs import fetch_jaspar

    assert release_name("JASPAR2024") == "JASPAR 2024" and release_name("custom") == "custom"
    assert jaspar_database().describe().startswith("JASPAR 2024 CORE vertebrates")
    with pytest.raises(GengenError, match=r"bundled database \(JASPAR \d{4}\)"):
        fetch_jaspar("MA9999.1")
