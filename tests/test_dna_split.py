"""Held-out records by sequence: identical records (any name, case or strand) fall on one side of every
split, stable under record order; models trained before keep their split by record name."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_file
from dna_fixtures import random_seqs
from gengen.cli import app
from gengen.dna.data import evaluation_windows, training_windows
from gengen.dna.gan.core import GANModel
from gengen.dna.gan.model import Generator
from gengen.dna.gan.novelty import exact_copies
from gengen.dna.gan.train import GANRecipe
from gengen.io.sequences import (
    SequenceSet,
    code_keys,
    duplicate_records,
    grouped_parts,
    heldout_mask,
    heldout_split,
    read_fasta,
    record_keys,
    record_of,
    sequence_key,
)

runner = CliRunner()
COMP = str.maketrans("ACGT", "TGCA")


def revcomp(s: str) -> str:
    return s.translate(COMP)[::-1]


def duplicated_records(n_groups: int = 60, n_unique: int = 60, length: int = 60, seed: int = 0) -> list[tuple[str, str]]:
    """Each of ``n_groups`` sequences three times (as is, lower-cased, reverse-complemented) under
    unrelated names, plus ``n_unique`` single records, shuffled."""
    base = random_seqs(n_groups + n_unique, length, seed=seed)
    recs = []
    for g, s in enumerate(base[:n_groups]):
        recs += [(f"NM_{g}a", s), (f"XR_{g}b", s.lower()), (f"NM_{g}c_rc", revcomp(s))]
    recs += [(f"uniq{u}", s) for u, s in enumerate(base[n_groups:])]
    random.Random(seed).shuffle(recs)
    return recs


def write_records(path, recs):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in recs))
    return path


def group_of(name: str) -> str:
    return name.split("_")[1].rstrip("abc") if name.startswith(("NM_", "XR_")) else name


def test_sequence_key_ignores_case_and_strand_only():
    s = "ACGTTGCAAGGCTN"
    assert sequence_key(s) == sequence_key(s.lower()) == sequence_key("acgtTGCAaggctn")
    assert sequence_key(s) == sequence_key("NAGCCTTGCAACGT")  # the reverse complement
    assert sequence_key(s) != sequence_key("ACGTTGCAAGGCTA") != sequence_key(s[:-1])
    assert sequence_key("ACGR") == sequence_key("YCGT")  # IUPAC codes complement too
    codes = read_fasta_codes(["ACGTTGCA", "TGCAACGT", "ACGTTGCT"])
    k = code_keys(codes)
    assert k[0] == k[1] != k[2] and k.dtype == np.uint64


def read_fasta_codes(seqs):
    from gengen.io.sequences import strings_to_codes

    return strings_to_codes(seqs)


def test_sequence_split_holds_out_the_asked_share():
    # the key is a hash of the chosen strand, not the smaller of two hashes (which would hold out ~2x)
    keys = np.array([sequence_key(s) for s in random_seqs(20000, 30, seed=5)], dtype=np.uint64)
    ids = [f"r{i}" for i in range(len(keys))]
    for frac in (0.1, 0.3):
        share = heldout_mask(ids, frac, keys=keys).mean()
        assert abs(share - frac) < 0.015, share
        val, test = heldout_split(ids, frac, keys=keys)
        assert abs(val.mean() - frac / 2) < 0.01 and abs(test.mean() - frac / 2) < 0.01


def test_identical_records_fall_on_one_side_of_every_split(tmp_path):
    recs = duplicated_records()
    seqs = read_fasta(write_records(tmp_path / "dups.fa", recs), length=20)
    keys = record_keys(seqs)
    held = heldout_mask(seqs.ids, 0.3, keys=keys)
    val, test = heldout_split(seqs.ids, 0.3, keys=keys)
    sides: dict[str, set] = {}
    for w, h, v, t in zip(seqs.ids, held, val, test):
        sides.setdefault(group_of(record_of(w)), set()).add((bool(h), bool(v), bool(t)))
    assert all(len(s) == 1 for s in sides.values())  # every copy (3 names, 3 windows each) on one side
    assert len(sides) == 120 and 0 < held.mean() < 1 and val.any() and test.any()
    # the name split, on the same file, separates copies: the defect this split fixes
    by_name = heldout_mask(seqs.ids, 0.3)
    name_sides: dict[str, set] = {}
    for w, h in zip(seqs.ids, by_name):
        name_sides.setdefault(group_of(record_of(w)), set()).add(bool(h))
    assert any(len(s) == 2 for s in name_sides.values())
    assert duplicate_records(seqs) == (240, 120)
    # training and test windows share no window (either strand): held-out novelty has no exact copies
    split = training_windows(seqs, 0.3)
    assert "by sequence" in split.split and "120 duplicates of 120 distinct sequences" in split.split
    assert not exact_copies(seqs.codes[test], split.train).any()
    assert exact_copies(seqs.codes[heldout_split(seqs.ids, 0.3)[1]], seqs.codes[~by_name]).any()


def test_sequence_split_is_stable_under_record_order(tmp_path):
    recs = duplicated_records(seed=1)
    a = read_fasta(write_records(tmp_path / "a.fa", recs), length=20)
    b = read_fasta(write_records(tmp_path / "b.fa", list(reversed(recs))), length=20)
    held_a = {w for w, h in zip(a.ids, heldout_mask(a.ids, 0.25, keys=record_keys(a))) if h}
    held_b = {w for w, h in zip(b.ids, heldout_mask(b.ids, 0.25, keys=record_keys(b))) if h}
    assert held_a == held_b and held_a
    # a set built by hand (no keys from read_fasta) still groups identical records
    plain = SequenceSet(a.ids, a.codes)
    k = record_keys(plain)
    by_group: dict[str, set] = {}
    for w, key in zip(a.ids, k.tolist()):
        by_group.setdefault(group_of(record_of(w)), set()).add(key)
    assert all(len(s) == 1 for s in by_group.values()) and len(set(k.tolist())) == 120


def tiny_gan(recipe: GANRecipe) -> GANModel:
    return GANModel(Generator(recipe.length, recipe.latent, recipe.channels, blocks=recipe.blocks), recipe)


def test_evaluation_follows_the_models_split(tmp_path):
    seqs = read_fasta(write_records(tmp_path / "dups.fa", duplicated_records()), length=20)
    base = dict(length=20, channels=4, latent=8, blocks=1, heldout_fraction=0.3, heldout_split=True)
    new = evaluation_windows(seqs, tiny_gan(GANRecipe(**base, heldout_by="sequence")))
    old = evaluation_windows(seqs, tiny_gan(GANRecipe(**base)))  # no heldout_by: a model from before
    keys = record_keys(seqs)
    assert np.array_equal(new.test, seqs.codes[heldout_split(seqs.ids, 0.3, keys=keys)[1]])
    assert np.array_equal(old.test, seqs.codes[heldout_split(seqs.ids, 0.3)[1]])
    assert np.array_equal(old.train, seqs.codes[~heldout_mask(seqs.ids, 0.3)])
    assert "by sequence" in new.split and "by record name" in old.split
    assert exact_copies(new.test, new.train).sum() == 0 and exact_copies(old.test, old.train).sum() > 0


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def dup_gan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dupgan")
    fa = write_records(tmp / "dups.fa", duplicated_records(n_groups=40, n_unique=40))
    r = run("dna-train", fa, "-o", tmp / "gan", "--length", 20, "--iterations", 2, "--channels", 4, "--batch-size",
            16, "--sample-every", 1, "--heldout-fraction", 0.3, "--device", "cpu", "--threads", 1)
    assert r.exit_code == 0, r.output
    assert "held out 30% of records by sequence (identical records kept together: 80 duplicates of 80" in r.output
    return fa, tmp / "gan"


def test_cli_records_the_split_and_old_models_keep_the_name_split(dup_gan, tmp_path):
    fa, gan = dup_gan
    cfg = json.loads((gan / "config.json").read_text())
    assert cfg["recipe"]["heldout_by"] == "sequence"
    assert any("by sequence" in note for note in cfg["recipe"]["notes"])
    r = run("dna-eval", fa, "--model", gan, "-n", 30, "--device", "cpu", "-o", tmp_path / "new.tsv")
    assert r.exit_code == 0, r.output
    assert "# held out 30% of records by sequence" in r.output
    new = tmp_path / "new.novelty.tsv"
    assert "heldout_real" in new.read_text()
    row = [line.split("\t") for line in new.read_text().splitlines()]
    head, real = row[0], next(x for x in row if x[0] == "heldout_real")
    assert float(real[head.index("exact_copies")]) == 0  # no held-out window is a training window

    # the same folder as a model trained before the change wrote it: no heldout_by
    old = tmp_path / "old"
    old.mkdir()
    for f in gan.iterdir():
        if f.is_file():
            (old / f.name).write_bytes(f.read_bytes())
    cfg["recipe"].pop("heldout_by")
    cfg.pop("training")  # nor the training section (and its fingerprint of the sequence split's windows)
    (old / "config.json").write_text(json.dumps(cfg))
    r = run("dna-eval", fa, "--model", old, "-n", 30, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "by record name" in r.output
    seqs = read_fasta(fa, length=20)
    loaded = GANModel.load(old)
    assert np.array_equal(evaluation_windows(seqs, loaded).test, seqs.codes[heldout_split(seqs.ids, 0.3)[1]])
    # resuming it keeps the name split (and now says so in config.json)
    r = run("dna-train", fa, "-o", old, "--length", 20, "--iterations", 3, "--channels", 4, "--batch-size", 16,
            "--sample-every", 1, "--resume", "--device", "cpu", "--threads", 1)
    assert r.exit_code == 0, r.output
    assert "by record name" in r.output
    assert json.loads((old / "config.json").read_text())["recipe"]["heldout_by"] == "name"


def test_grouped_parts_keep_identical_sequences_together():
    rng = np.random.default_rng(0)
    order = rng.permutation(200)
    unique = np.arange(200, dtype=np.uint64)
    parts = grouped_parts(order, unique, (20, 30))  # all distinct (PBM probes): exactly the slices
    assert [p.tolist() for p in parts] == [order[:20].tolist(), order[20:50].tolist(), order[50:].tolist()]
    assert [p.tolist() for p in grouped_parts(order, unique, (20, 0))][1] == []
    seqs = random_seqs(80, 12, seed=2)
    dup = seqs + seqs[:40] + [revcomp(s) for s in seqs[:40]]  # 80 copies of 40 probes under new rows
    keys = code_keys(read_fasta_codes(dup))
    order = rng.permutation(len(dup))
    val, stop, train = grouped_parts(order, keys, (16, 16))
    assert sorted(np.concatenate([val, stop, train]).tolist()) == list(range(len(dup)))
    sides = [set(keys[p].tolist()) for p in (val, stop, train)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert 16 <= len(val) <= 18 and 32 <= len(val) + len(stop) <= 34  # a group overshoots a cut by <= its size - 1


def test_predictor_on_copies_of_one_probe_is_a_one_line_error():
    """Copies stay in the held-out part they start in: 60 copies of one probe (labels differing) left
    nothing to train on and ended in a Ridge ValueError traceback."""
    from gengen.dna.predictor.training import PredictorRecipe, train_predictor
    from gengen.errors import GengenError

    codes = read_fasta_codes(random_seqs(1, 20, seed=4) * 60)
    y = np.random.default_rng(0).normal(size=60)
    with pytest.raises(GengenError, match="only 1 distinct sequences .* leaves 0 for training"):
        train_predictor(codes, y, PredictorRecipe(epochs=1), device="cpu")


@pytest.mark.slow
def test_dm3_test_windows_no_longer_copy_training_records():
    # dm3 upstream2000: 26,454 records, 17,285 distinct sequences up to strand (one per transcript)
    seqs = read_fasta(shared_file("dna", "dm3_upstream2000.fa.gz"), length=50)
    keys = record_keys(seqs)
    assert duplicate_records(seqs) == (26454, 17285)
    by_seq = heldout_split(seqs.ids, 0.1, keys=keys)[1], ~heldout_mask(seqs.ids, 0.1, keys=keys)
    by_name = heldout_split(seqs.ids, 0.1)[1], ~heldout_mask(seqs.ids, 0.1)
    assert abs(by_seq[0].mean() - 0.05) < 0.01
    rng = np.random.default_rng(0)
    share = {}
    for name, (test, train) in {"sequence": by_seq, "name": by_name}.items():
        pick = rng.choice(np.flatnonzero(test), 5000, replace=False)
        share[name] = exact_copies(seqs.codes[pick], seqs.codes[train]).mean()
    # measured on all test windows: 1.24 % (windows shared by records that differ elsewhere) vs 53 %
    assert share["sequence"] < 0.03 and share["name"] > 0.45, share
