"""The model store: train without -o, use without --model, `gengen models ...`, and one resolver for names.

conftest gives every test its own $GENGEN_HOME, so each test starts with an empty store.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, no_longer_than
from gengen.cli import app
from gengen.errors import GengenError

runner = CliRunner()
GGAN_FAST = ["--hidden", "16", "--epochs", "2", "--batch-size", "64", "--d-hidden", "8", "--device", "cpu", "-q"]
VAE_FAST = ["--latent", "3", "--epochs", "2", "--batch-size", "20", "--device", "cpu", "-q"]
MAKE_GGAN = "gengen ggan-train REFERENCE.h5ad --landmarks LANDMARKS.txt"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def store() -> Path:
    return Path(os.environ["GENGEN_HOME"]) / "models"


@pytest.fixture
def ggan_files(tmp_path):
    """A 160-profile reference (8 landmarks, 10 targets), its landmark list and a 20-profile query."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((160, 8))
    Y = 5 + np.tanh(X @ rng.standard_normal((8, 10)) / 2)
    cols = [f"LM{i}" for i in range(8)] + [f"TG{j}" for j in range(10)]
    df = pd.DataFrame(np.c_[X + 7, Y], index=[f"s{i}" for i in range(160)], columns=cols)
    df.to_csv(tmp_path / "ref.csv")
    (tmp_path / "lm.txt").write_text("\n".join(cols[:8]) + "\n")
    df.iloc[:20, :8].to_csv(tmp_path / "landmarks.csv")
    return tmp_path


def _train_ggan(d: Path, *extra):
    return run("ggan-train", d / "ref.csv", "--landmarks", d / "lm.txt", *GGAN_FAST, *extra)


def fake_model(name: str, pipeline: str, weights: bytes = b"\x00" * 64, **config) -> Path:
    """A store folder with a gengen config.json and whatever weights bytes (never read by the store)."""
    d = store() / name
    d.mkdir(parents=True)
    cfg = {"format_version": 1, "pipeline": pipeline, "created": "2025-03-01T10:00:00+00:00", **config}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes(weights)
    return d


# ------------------------------------------------------------------------------------------ the headline flow
def test_train_without_o_then_infer_without_model(ggan_files, monkeypatch):
    d = ggan_files
    monkeypatch.chdir(d)
    r = run("infer-targets", "landmarks.csv")  # nothing trained yet: the command that makes one
    assert_one_line_error(r, "no default GGAN model yet", MAKE_GGAN)
    assert not (d / "landmarks.targets.csv").exists()

    r = run("ggan-train", "ref.csv", "--landmarks", "lm.txt", *GGAN_FAST[:-1])  # not quiet: it says the name
    assert r.exit_code == 0, r.output
    assert str(store() / "ref-ggan") in r.output
    assert "saved in the model store as 'ref-ggan'; it is now the default GGAN model" in r.output
    assert (store() / "ref-ggan" / "model.safetensors").is_file()

    r = run("infer-targets", "landmarks.csv")  # exactly as typed
    assert r.exit_code == 0, r.output
    assert "model: ref-ggan (the default GGAN model" in r.output
    pred = pd.read_csv(d / "landmarks.targets.csv", index_col=0)
    assert pred.shape == (20, 10) and abs(pred.to_numpy().mean() - 5) < 1

    r = run("infer-targets", "landmarks.csv", "-o", "named.csv", "--model", "ref-ggan", "-q")  # a store name
    assert r.exit_code == 0 and r.output.strip() == "named.csv"
    assert np.allclose(pd.read_csv(d / "named.csv", index_col=0), pred)


def test_a_new_training_takes_over_the_default_and_says_which(ggan_files):
    fake_model("ref-ggan", "ggan")  # the name is taken: the new model gets a suffix
    assert run("models", "default", "ggan", "ref-ggan").exit_code == 0
    r = run("ggan-train", ggan_files / "ref.csv", "--landmarks", ggan_files / "lm.txt", *GGAN_FAST[:-1])
    assert r.exit_code == 0, r.output
    assert "saved in the model store as 'ref-ggan-2'; it is now the default GGAN model" in r.output
    assert "it replaces 'ref-ggan' (gengen models default ggan ref-ggan to go back)" in r.output
    assert run("models", "default", "ggan").output.strip() == "ref-ggan-2"


def test_with_o_the_store_is_untouched(ggan_files):
    r = _train_ggan(ggan_files, "-o", ggan_files / "mine")
    assert r.exit_code == 0, r.output
    assert (ggan_files / "mine" / "config.json").is_file()
    assert not store().exists() or not any(store().iterdir())
    r = run("infer-targets", ggan_files / "landmarks.csv")
    assert_one_line_error(r, MAKE_GGAN)


def test_failed_training_leaves_no_name_taken(ggan_files):
    from gengen.store import list_models, release, reserve

    r = run("ggan-train", ggan_files / "ref.csv", "--landmarks", ggan_files / "absent.txt", *GGAN_FAST)
    assert_one_line_error(r, "absent.txt")
    assert list_models() == []  # the claimed folder is empty: never listed, removed at exit
    before = sorted(store().iterdir())
    (store().parent / "defaults.json").write_text("{broken")  # found before training, not after
    r = run("ggan-train", ggan_files / "ref.csv", "--landmarks", ggan_files / "lm.txt", *GGAN_FAST)
    assert_one_line_error(r, "defaults file", "delete it")
    assert sorted(store().iterdir()) == before  # no folder claimed
    first, second = reserve(ggan_files / "ref.csv", "ggan"), reserve(ggan_files / "ref.csv", "ggan")
    assert first != second and first.name.startswith("ref-ggan") and second.name.startswith("ref-ggan")
    release(second)
    assert not second.exists()


# ------------------------------------------------------------------------------------------ listing is cheap
def test_list_reads_config_only_and_is_fast_on_300_models(monkeypatch):
    for i in range(300):
        w = fake_model(f"m{i:03d}", "ggan", weights=os.urandom(256), landmarks=["a"] * 8, targets=["b"] * 10,
                       architecture={"hidden": [16, 16]}, metrics={"best_val_mae": 0.5})
        (w / "model.safetensors").chmod(0)  # garbage, and unreadable for anyone but root
    from gengen import runtime

    opened = []
    real_open = runtime.files.open_regular  # every file gengen reads is opened here (regular files only)

    def spy(path, *a, **k):
        opened.append(Path(path).name)
        return real_open(path, *a, **k)

    monkeypatch.setattr(runtime.files, "open_regular", spy)
    t = time.process_time()  # this process's CPU time: what the listing costs, not what other jobs on the machine cost
    r = run("models", "list")
    seconds = time.process_time() - t
    assert r.exit_code == 0, r.output
    assert seconds < 1.0, seconds
    assert "model.safetensors" not in opened and opened.count("config.json") == 300
    lines = r.output.splitlines()
    assert lines[0].startswith("# 300 models") and len(lines) == 302
    assert "m042" in r.output and "8 landmarks -> 10 targets, hidden 16x16, val MAE 0.5000" in r.output
    opened.clear()
    t = time.process_time()
    r = run("models", "list", "--pipeline", "ggan")  # second listing: the index, no config parsed again
    assert r.exit_code == 0 and time.process_time() - t < 1.0
    assert "config.json" not in opened and r.output.count("\nm") == 300


def test_index_follows_a_replaced_config():
    from gengen.store import list_models

    fake_model("a", "vae", genes=["g"] * 5, architecture={"latent_dim": 2})
    assert list_models()[0].summary == "5 genes -> 2 features"
    (store() / "a" / "config.json").write_text(json.dumps(
        {"format_version": 1, "pipeline": "vae", "genes": ["g"] * 7, "architecture": {"latent_dim": 3}}))
    assert list_models()[0].summary == "7 genes -> 3 features"
    (store() / ".tmp-save").mkdir()  # a save in progress, and a folder of someone's files: not models
    (store() / "notes").mkdir()
    (store() / "notes" / "x.txt").write_text("x")
    assert [m.name for m in list_models()] == ["a"]


# ------------------------------------------------------------------------------------------ defaults
def test_default_set_show_and_remove():
    fake_model("v1", "vae", genes=["g"] * 5, architecture={"latent_dim": 2})
    fake_model("v2", "vae", genes=["g"] * 5, architecture={"latent_dim": 2})
    fake_model("g1", "ggan")
    assert_one_line_error(run("models", "default", "vae"), "no default VAE model yet", "gengen vae-train",
                          "gengen models default vae v1")
    r = run("models", "default", "vae", "v1")
    assert r.exit_code == 0 and "default VAE model: 'v1'" in r.output
    assert run("models", "default", "vae").output.strip() == "v1"
    r = run("models", "default", "vae", "v2")
    assert "(was 'v1')" in r.output
    saved = json.loads((store().parent / "defaults.json").read_text())
    assert saved["defaults"] == {"vae": "v2"}
    r = run("models", "list")
    rows = {ln.split()[0]: ln.split()[1] for ln in r.output.splitlines()[2:]}
    assert rows == {"g1": "ggan", "v1": "vae", "v2": "vae*"}
    r = run("models", "show", "v2")
    assert r.exit_code == 0 and "vae (default)" in r.output and "5 genes -> 2 features" in r.output
    assert json.loads(run("models", "show", "v2", "--json").output)["pipeline"] == "vae"
    r = run("models", "remove", "v2")
    assert r.exit_code == 0 and "removed 'v2'" in r.output and "none now" in r.output
    assert not (store() / "v2").exists()
    assert_one_line_error(run("models", "default", "vae"), "no default VAE model yet")
    assert run("models", "default", "vae", "v1").exit_code == 0


def test_deleted_default_and_wrong_pipeline(ggan_files):
    fake_model("vae-one", "vae")
    fake_model("gone", "ggan")
    assert run("models", "default", "ggan", "gone").exit_code == 0
    shutil.rmtree(store() / "gone")  # deleted by hand, behind the store's back
    r = run("infer-targets", ggan_files / "landmarks.csv")
    assert_one_line_error(r, "default GGAN model 'gone' is no longer in the store", "gengen models default ggan NAME")
    assert_one_line_error(run("models", "default", "ggan"), "no longer in the store")
    assert "# the default ggan model 'gone' is missing" in run("models", "list").output

    r = run("models", "default", "ggan", "vae-one")  # a model of another pipeline: refused when set ...
    assert_one_line_error(r, "'vae-one' is a 'vae' model, not a 'ggan' model")
    (store().parent / "defaults.json").write_text(json.dumps({"format_version": 1, "defaults": {"ggan": "vae-one"}}))
    r = run("infer-targets", ggan_files / "landmarks.csv")  # ... and when read (hand-edited file)
    assert_one_line_error(r, "default GGAN model 'vae-one' is a 'vae' model", "gengen models default ggan NAME")
    (store().parent / "defaults.json").write_text("{broken")
    assert_one_line_error(run("infer-targets", ggan_files / "landmarks.csv"), "defaults.json", "defaults file", "delete it")
    assert not (ggan_files / "landmarks.targets.csv").exists()


def test_bad_names_and_pipelines():
    fake_model("bladderbatch-ggan", "ggan")
    fake_model("bladderbatch-vae", "vae")
    from gengen.store import check_name

    for bad in ("../x", "a/b", "a b", ".hidden", "x" * 101, "_under", "a\\b", "é"):
        with pytest.raises(GengenError, match="is not a model name"):
            check_name(bad)
    assert check_name("GSE92742_L1000.v2+ridge-ggan") == "GSE92742_L1000.v2+ridge-ggan"
    assert_one_line_error(run("models", "remove", "../bladderbatch-ggan"), "is not a model name")
    assert_one_line_error(run("models", "default", "ggan", "a/b"), "is not a model name")
    assert_one_line_error(run("models", "show", ".hidden"), "is not a model name")
    assert_one_line_error(run("models", "remove", "nope"), "no model 'nope' in the store")
    assert_one_line_error(run("models", "default", "gan", "bladderbatch-ggan"), "unknown pipeline 'gan'",
                          "vae, ggan, dna-gan, dna-predictor")
    assert_one_line_error(run("models", "list", "--pipeline", "dna"), "unknown pipeline 'dna'")
    assert_one_line_error(run("models", "default", "ggan", "bladdrbatch-ggan"), "did you mean 'bladderbatch-ggan'")
    user = store() / "my-notes"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    assert_one_line_error(run("models", "remove", "my-notes"), "not a gengen model", "refusing")
    assert (user / "keep.txt").read_text() == "mine"


def test_close_names_are_suggested_per_pipeline(ggan_files):
    fake_model("bladder-ggan", "ggan")
    fake_model("bladder-vae", "vae")
    r = run("infer-targets", ggan_files / "landmarks.csv", "--model", "bladder-gan")
    assert_one_line_error(r, "no folder 'bladder-gan' here and no GGAN model 'bladder-gan'", "did you mean 'bladder-ggan'")
    assert "bladder-vae" not in r.output  # only models the command can use
    r = run("vae-sample", "--model", "Bladder-VAE")
    assert_one_line_error(r, "did you mean 'bladder-vae'")
    r = run("infer-targets", ggan_files / "landmarks.csv", "--model", "zzz")
    assert_one_line_error(r, "no GGAN model 'zzz'", "gengen models list")
    r = run("infer-targets", ggan_files / "landmarks.csv", "--model", ggan_files / "no" / "such")
    assert_one_line_error(r, "not found")


def test_add_copies_a_model_folder(ggan_files):
    assert _train_ggan(ggan_files, "-o", ggan_files / "trained here").exit_code == 0
    r = run("models", "add", ggan_files / "trained here")
    assert r.exit_code == 0 and "added 'trained-here'" in r.output and "now the default GGAN model" in r.output
    assert (ggan_files / "trained here" / "config.json").is_file()  # copied, not moved
    r = run("models", "add", ggan_files / "trained here", "--name", "second")
    assert r.exit_code == 0 and "default" not in r.output  # ggan already has one
    assert_one_line_error(run("models", "add", ggan_files / "trained here", "--name", "second"), "already has")
    assert_one_line_error(run("models", "add", ggan_files), "is not a gengen model folder")
    r = run("infer-targets", ggan_files / "landmarks.csv", "-q")
    assert r.exit_code == 0, r.output


def test_add_copies_regular_files_and_links_inside_only(tmp_path):
    """Issue 18: ``models add`` copied what links point at (a ``notes.txt -> ~/.ssh/id_rsa`` landed in a
    shared store). A link to a regular file inside the folder is copied as that file; a subfolder is
    copied; the copy holds regular files only (refusals: tests/test_bad_inputs.py, ``models-add-*``)."""
    import torch

    from gengen.checkpoint import save_checkpoint

    src = tmp_path / "m"
    save_checkpoint(src, "vae", {"w": torch.ones(3)}, config={"genes": ["a"]})
    (src / "extra").mkdir()
    (src / "extra" / "notes.txt").write_text("mine\n")
    os.symlink("model.safetensors", src / "weights-again")
    r = run("models", "add", src, "--name", "m1")
    assert r.exit_code == 0, r.output
    copied = store() / "m1"
    kinds = {str(p.relative_to(copied)): ("link" if p.is_symlink() else "dir" if p.is_dir() else "file")
             for p in copied.rglob("*")}
    assert kinds == {"config.json": "file", "model.safetensors": "file", "extra": "dir", "extra/notes.txt": "file",
                     "weights-again": "file"}
    assert (copied / "weights-again").read_bytes() == (src / "model.safetensors").read_bytes()
    assert (copied / "extra" / "notes.txt").read_text() == "mine\n"


def test_a_damaged_model_is_listed_as_unreadable_and_the_others_still_are():
    """Issue 18: one config.json nested 100,000 deep broke ``models list`` (RecursionError), and a named
    pipe as config.json blocked it forever. Each such model is listed as unreadable, with why, and the
    rest of the store is listed as usual; showing it is one line; it can be removed."""
    fake_model("good", "vae", genes=["g"] * 5, architecture={"latent_dim": 2})
    for name, make in (("deep", lambda p: p.write_text("[" * 100_000 + "]" * 100_000)),
                       ("junk", lambda p: p.write_bytes(b"\x80\x04not json")), ("pipe", os.mkfifo)):
        d = fake_model(name, "vae")
        (d / "config.json").unlink()
        make(d / "config.json")
    with no_longer_than(20):
        r = run("models", "list")
        shown = run("models", "show", "deep")
        shown_pipe = run("models", "show", "pipe")
        gone = run("models", "remove", "pipe")
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line for line in r.output.splitlines() if not line.startswith("#")}
    assert "5 genes -> 2 features" in rows["good"]
    assert "unreadable" in rows["deep"] and "nested deeper" in rows["deep"]
    assert "unreadable" in rows["junk"] and "not UTF-8" in rows["junk"]
    assert "unreadable" in rows["pipe"] and "named pipe" in rows["pipe"]
    assert_one_line_error(shown, "nested deeper")
    assert_one_line_error(shown_pipe, "named pipe")
    assert gone.exit_code == 0 and not (store() / "pipe").exists()
    assert run("models", "list", "--pipeline", "vae").output.count("\ngood") == 1


@pytest.mark.parametrize("damage", ["missing keys", "wrong types", "nested deep", "a list"])
def test_a_damaged_index_is_rebuilt(damage):
    """Issue 18: an index entry missing keys was a KeyError traceback. The index is a cache: an entry it
    cannot use is read again from config.json, and a damaged index is written anew."""
    from gengen.store import INDEX_NAME, list_models

    fake_model("a", "vae", genes=["g"] * 5, architecture={"latent_dim": 2})
    fake_model("b", "ggan", landmarks=["x"] * 3, targets=["y"] * 2)
    assert len(list_models()) == 2
    index_path = store() / INDEX_NAME
    index = json.loads(index_path.read_text())
    if damage == "missing keys":
        for row in index["models"].values():
            del row["summary"], row["created"]
        index_path.write_text(json.dumps(index))
    elif damage == "wrong types":
        index["models"]["a"]["pipeline"] = ["vae"]
        index["models"]["b"]["summary"] = {"x": 1}
        index_path.write_text(json.dumps(index))
    elif damage == "nested deep":
        index_path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        index_path.write_text(json.dumps([1, 2, 3]))
    r = run("models", "list")
    assert r.exit_code == 0, r.output
    assert "5 genes -> 2 features" in r.output and "3 landmarks -> 2 targets" in r.output
    rebuilt = json.loads(index_path.read_text())["models"]
    assert set(rebuilt) == {"a", "b"} and all(set(row) == {"stamp", "pipeline", "created", "summary"} for row in rebuilt.values())


# ------------------------------------------------------------------------------------------ one resolver
def test_library_resolver(tmp_path):
    import torch

    from gengen.checkpoint import load_checkpoint, save_checkpoint
    from gengen.store import default_model, resolve_model, set_default
    from gengen.store import resolve_model as store_resolve

    save_checkpoint(store() / "lib", "ggan", {"w": torch.ones(2)}, config={})
    with pytest.raises(GengenError, match="no default GGAN model yet"):
        resolve_model(None, "ggan")
    set_default("ggan", "lib")
    assert resolve_model(None, "ggan") == store() / "lib" == store_resolve("lib")
    assert default_model("ggan").name == "lib"
    assert torch.equal(load_checkpoint(resolve_model(None, "ggan"), "ggan")[0]["w"], torch.ones(2))  # library: None = the default
    local = tmp_path / "lib"  # a local model folder of the same name wins over the store's
    save_checkpoint(local, "ggan", {"w": torch.zeros(2)}, config={})
    assert store_resolve(local) == local and store_resolve(local / "config.json") == local
    (tmp_path / "plain").mkdir()
    assert store_resolve(tmp_path / "plain") == tmp_path / "plain"  # not a model: loading says what is missing


def test_vae_names_and_defaults_through_the_store(tmp_path):
    from conftest import make_toy_expression

    make_toy_expression().write_h5ad(tmp_path / "expr.h5ad")
    assert_one_line_error(run("vae-sample", "-n", 3, "-o", tmp_path / "s.csv"), "no default VAE model yet",
                          "gengen vae-train DATA.h5ad")
    r = run("vae-train", tmp_path / "expr.h5ad", *VAE_FAST[:-1])
    assert r.exit_code == 0, r.output
    assert "as 'expr-vae'; it is now the default VAE model" in r.output
    r = run("vae-sample", "-n", 3, "-o", tmp_path / "s.csv")
    assert r.exit_code == 0 and "model: expr-vae (the default VAE model" in r.output
    assert pd.read_csv(tmp_path / "s.csv", index_col=0).shape == (3, 60)
    r = run("vae-encode", tmp_path / "expr.h5ad", "--model", "expr-vae", "-o", tmp_path / "z.csv", "-q")
    assert r.exit_code == 0, r.output  # a store name, same resolver
    assert pd.read_csv(tmp_path / "z.csv", index_col=0).shape == (120, 3)
    assert not (tmp_path / "z.model").exists()
    r = run("vae-encode", tmp_path / "expr.h5ad", "--model", "expr-vea", "-o", tmp_path / "z2.csv")
    assert_one_line_error(r, "did you mean 'expr-vae'")
    r = run("vae-features", "-o", tmp_path / "feat", "--top", 2, "-q")
    assert r.exit_code == 0 and (tmp_path / "feat" / "top_genes.tsv").is_file()
    r = run("infer-targets", tmp_path / "s.csv", "--model", "expr-vae")
    assert_one_line_error(r, "is a 'vae' model, but this command needs a 'ggan' model")


def test_dna_names_and_defaults_through_the_store(tmp_path):
    from dna_fixtures import PLANT, random_seqs, write_fa

    fa = write_fa(tmp_path / "promoters.fa", random_seqs(60, 30, seed=3, plant=PLANT), prefix="gene")
    assert_one_line_error(run("dna-generate", "-n", 5, "-o", tmp_path / "g.fa"), "no default DNA GAN model yet",
                          "gengen dna-train SEQUENCES.fa")
    assert_one_line_error(run("dna-train", fa, "--resume"), "--resume continues a checkpoint")
    r = run("dna-train", fa, "--length", 20, "--iterations", 2, "--channels", 4, "--batch-size", 8,
            "--sample-every", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "as 'promoters-dna-gan'; it is now the default DNA GAN model" in r.output
    r = run("dna-generate", "-n", 5, "-o", tmp_path / "g.fa")
    assert r.exit_code == 0 and "model: promoters-dna-gan" in r.output
    assert (tmp_path / "g.fa").read_text().count(">") == 5

    probes = write_fa(tmp_path / "probes.fa", random_seqs(80, 20, seed=4), prefix="p")
    pd.DataFrame({"id": [f"p{i}" for i in range(80)], "signal": np.linspace(1, 50, 80)}).to_csv(
        tmp_path / "scores.csv", index=False)
    r = run("dna-train-predictor", probes, "--scores", tmp_path / "scores.csv", "--epochs", 1, "--no-baseline",
            "--device", "cpu")
    assert r.exit_code == 0 and "as 'probes-dna-predictor'" in r.output
    r = run("dna-design", "--predictor", "probes-dna-predictor", "--gan", "promoters-dna-gan", "-n", 2,
            "--steps", 2, "-o", tmp_path / "d.fa", "-q")
    assert r.exit_code == 0, r.output  # both names resolved in the store
    assert (tmp_path / "d.fa").read_text().count(">") == 2
    r = run("dna-score", probes, "--predictor", "probes-dna-predicter")
    assert_one_line_error(r, "did you mean 'probes-dna-predictor'")
    r = run("dna-design", "--predictor", "promoters-dna-gan", "-n", 2, "-o", tmp_path / "x.fa")
    assert_one_line_error(r, "is a 'dna-gan' model, but this command needs a 'dna-predictor' model")
    rows = {ln.split()[0]: ln.split()[1] for ln in run("models", "list").output.splitlines()[2:]}
    assert rows == {"promoters-dna-gan": "dna-gan*", "probes-dna-predictor": "dna-predictor*"}
