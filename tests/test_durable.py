"""Nothing lost, nothing half-written (issue 11): output plans, input protection, all-or-none side
files, OSErrors as one line, checksummed weights, stale temporaries, write locks, atomic folder swaps.

The kill / lock / concurrency tests run real subprocesses (SIGKILL, SIGTERM, two writers, a reader
polling a folder while another process saves over it).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, assert_one_line_error, no_longer_than
from gengen import runtime
from gengen.checkpoint import HASH_KEY, load_checkpoint, overwrite_check, read_history, save_checkpoint
from gengen.cli import app
from gengen.errors import GengenError

runner = CliRunner()
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "GENGEN_THREADS": "1", "GENGEN_NO_PROGRESS": "1"}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _spawn(code: str, *args: str) -> subprocess.Popen:
    """A Python subprocess running ``code`` (gengen importable), its stdout a pipe we can wait on."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_for_line(proc: subprocess.Popen, expected: str) -> None:
    line = proc.stdout.readline().strip()
    assert line == expected, (line, proc.stderr.read() if proc.poll() is not None else "")


def _gengen(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from gengen.cli import main; main()", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kw)


# ---------------------------------------------------------------------------------------- the plan
def test_design_never_overwrites_its_motif_main_or_side_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sites.fa").write_text(">s1\nCCGCGTGGCGC\n>s2\nCCACCAGGGGG\n>s3\nCCGCGAGGTGG\n")
    Path("m.tsv").write_text("1 4 1 2 8\n4 3 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n")
    os.symlink("m.tsv", "link.fa")
    os.link("sites.fa", "hard.fa")
    before = {p: Path(p).read_bytes() for p in ("sites.fa", "m.tsv")}
    common = ["dna-design", "-n", "3", "--steps", "2", "-q", "--device", "cpu"]
    cases = [
        (["--motif", "sites.fa", "--motif-format", "sites", "-o", "sites.fa"], "'sites.fa'"),  # the main file
        (["--motif", "m.tsv", "--motif-format", "pfm", "-o", "m.fa"], "'m.tsv'"),  # the side table
        (["--motif", "m.tsv", "--motif-format", "pfm", "-o", "link.fa"], "'m.tsv'"),  # through a symlink
        (["--motif", "sites.fa", "--motif-format", "sites", "-o", "hard.fa"], "'sites.fa'"),  # a hard link
    ]
    for args, needle in cases:
        res = runner.invoke(app, common + args)
        assert_one_line_error(res, "refusing to overwrite the input", needle)
    assert {p: Path(p).read_bytes() for p in before} == before
    assert sorted(os.listdir()) == ["hard.fa", "link.fa", "m.tsv", "sites.fa"]  # no output, no temp


def test_outputs_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.tsv").write_text("1 4 1 2 8\n4 3 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n")
    Path("d.tsv").mkdir()
    Path("afile").write_text("x")
    design = ["dna-design", "--motif", "m.tsv", "--motif-format", "pfm", "-n", "3", "--steps", "2", "-q"]
    assert_one_line_error(runner.invoke(app, [*design, "-o", "d.fa"]), "'d.tsv' is a folder")
    assert_one_line_error(runner.invoke(app, [*design, "-o", "afile/sub/d.fa"]), "'afile' is a file, not a folder")
    # vae-features -o an existing file: the plan fails before the (absent) model is even looked at
    assert_one_line_error(runner.invoke(app, ["vae-features", "-m", "nomodel", "-o", "afile"]), "'afile' is a file")
    # dna-train checks -o before reading any data (the data file does not even exist)
    Path("userdir").mkdir()
    (Path("userdir") / "notes.txt").write_text("mine")
    assert_one_line_error(runner.invoke(app, ["dna-train", "missing.fa", "-o", "userdir", "-q"]), "not a gengen model")
    assert_one_line_error(runner.invoke(app, ["dna-train", "missing.fa", "-o", "afile/gan", "-q"]), "is a file")
    assert sorted(os.listdir()) == ["afile", "d.tsv", "m.tsv", "userdir"]
    assert not list(Path("d.tsv").iterdir())


def test_plan_refuses_inputs_inside_replaced_folders_and_colliding_outputs(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"pipeline": "vae", "format_version": 1}))
    data = model / "data.csv"
    data.write_text("x")
    with pytest.raises(GengenError, match="inside the output folder"):
        runtime.plan_outputs(models={model: overwrite_check("vae")}, inputs=[data])
    with pytest.raises(GengenError, match="would replace a file inside the input folder"):
        runtime.plan_outputs([model / "config.json"], inputs=[model])
    with pytest.raises(GengenError, match="same path"):
        runtime.plan_outputs([tmp_path / "a.tsv", tmp_path / "." / "a.tsv"])
    runtime.plan_outputs([model / "new.tsv"], inputs=[model])  # a new file beside an input is fine


def test_read_only_folder_is_one_line_before_work(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(GengenError, match="is not writable"):  # (chmod cannot show it: tests may run as root)
        runtime.plan_outputs([tmp_path / "out.tsv"])


def test_side_files_land_together_or_not_at_all(tmp_path):
    out, tsv, png = tmp_path / "d.fa", tmp_path / "d.tsv", tmp_path / "d.png"
    out.write_text("old designs\n")
    with pytest.raises(GengenError, match="none of this command's outputs was written"):
        with runtime.plan_outputs([out, tsv, png]):
            for p in (out, tsv, png):
                if p == png:
                    assert out.read_text() == "old designs\n" and not tsv.exists()  # staged, not yet placed
                    png.mkdir()  # the last rename (when the last file is written, all land) will fail
                    (png / "x").write_text("in the way")
                with runtime.atomic_path(p) as tmp:
                    tmp.write_text(f"new {p.name}")
    assert out.read_text() == "old designs\n"  # put back
    assert not tsv.exists() and sorted(os.listdir(tmp_path)) == ["d.fa", "d.png"]
    with runtime.plan_outputs([out, tsv]):
        for p in (out, tsv):
            with runtime.atomic_path(p) as tmp:
                tmp.write_text(f"new {p.name}")
    assert out.read_text() == "new d.fa" and tsv.read_text() == "new d.tsv"
    assert _hidden(tmp_path) == []


def test_declared_files_land_when_the_last_is_written(tmp_path):
    """A command prints its outputs' names after writing them: by then they exist (or it failed)."""
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    with runtime.plan_outputs([a, b]):
        with runtime.atomic_path(a) as tmp:
            tmp.write_text("a")
        assert not a.exists()  # one of two: staged
        with runtime.atomic_path(b) as tmp:
            tmp.write_text("b")
        assert a.read_text() == "a" and b.read_text() == "b"  # both written: landed, before the block ends
    assert _hidden(tmp_path) == []


def test_oserror_on_an_output_is_one_line_naming_it(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(GengenError, match=r"cannot write '.*out.csv': No space left on device \(free some space"):
        with runtime.atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    other = OSError(errno.EIO, "Input/output error", str(tmp_path / "input.csv"))
    with pytest.raises(OSError) as info, runtime.atomic_path(target):
        raise other  # about another file (an input read while writing): not blamed on the output
    assert info.value is other
    with pytest.raises(GengenError, match="cannot write"), runtime.atomic_dir(tmp_path / "m") as tmp:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp / "model.safetensors"))
    assert sorted(os.listdir(tmp_path)) == []


# ------------------------------------------------------------------------------ checkpoint integrity
def _tiny_checkpoint(path: Path, value: float = 1.0, pipeline: str = "test") -> None:
    import torch

    save_checkpoint(path, pipeline, {"w": torch.full((64, 64), value)}, config={"value": value})


def test_flipped_weight_bytes_are_refused_old_checkpoints_still_load(tmp_path):
    d = tmp_path / "m"
    _tiny_checkpoint(d)
    cfg = json.loads((d / "config.json").read_text())
    assert len(cfg[HASH_KEY]) == 64
    weights = d / "model.safetensors"
    good = weights.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40  # inside the tensor data: the file still parses
    weights.write_bytes(bytes(bad))
    with pytest.raises(GengenError, match="model file is corrupted: .*model.safetensors"):
        load_checkpoint(d, "test")
    del cfg[HASH_KEY]  # a checkpoint written before the hash existed loads unchecked
    (d / "config.json").write_text(json.dumps(cfg))
    weights.write_bytes(good)
    tensors, _, _ = load_checkpoint(d, "test")
    assert float(tensors["w"][0, 0]) == 1.0


def _gan_checkpoint(folder: Path, codes=None, resume: bool = False):
    """A one-iteration dna-train checkpoint in ``folder`` (or that run resumed); returns its training windows."""
    from gengen.dna import GANRecipe, train_gan

    codes = np.random.default_rng(0).integers(0, 4, (16, 12)).astype(np.uint8) if codes is None else codes
    train_gan(codes, GANRecipe(length=12, channels=4, blocks=1, batch_size=8, iterations=1), folder, resume=resume,
              device="cpu")
    return codes


def test_unknown_recipe_or_architecture_key_is_a_clean_error(tmp_path):
    from gengen.dna.gan.core import GANModel
    from gengen.dna.predictor.predictors import CNNPredictor, load_predictor

    codes = _gan_checkpoint(tmp_path / "gan")
    cfg_path = tmp_path / "gan" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["recipe"]["from_the_future"] = 1
    cfg_path.write_text(json.dumps(cfg))
    for load in (lambda: GANModel.load(tmp_path / "gan"), lambda: _gan_checkpoint(tmp_path / "gan", codes, resume=True)):
        with pytest.raises(GengenError, match="unknown recipe setting.*'from_the_future'.*another gengen version"):
            load()
    net = CNNPredictor(4, 5, 4)
    save_checkpoint(tmp_path / "pred", "dna-predictor", net.state_dict(),
                    config={"kind": "cnn", "architecture": {**net.config(), "depth": 3}, "length": 20})
    with pytest.raises(GengenError, match="unknown architecture setting.*'depth'"):
        load_predictor(tmp_path / "pred")


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe junk \x81", b"a,b\n1,2\n"])
def test_a_broken_history_does_not_stop_a_model(tmp_path, capsys, content):
    from gengen.dna.gan.core import GANModel
    from gengen.dna.gan.train import training_snapshot

    _gan_checkpoint(tmp_path / "gan")
    (tmp_path / "gan" / "history.csv").write_bytes(content)
    assert GANModel.load(tmp_path / "gan").length == 12  # inference needs no history
    state = training_snapshot(tmp_path / "gan", "dna-gan")  # what --resume restores
    assert state.meta["history"] == []  # a resumed run starts a new history
    assert read_history(tmp_path / "gan", ("iteration",)) is None
    assert "note: ignoring the damaged" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_constant_matrix_and_duplicate_sample_names(tmp_path):
    genes = [f"G{j}" for j in range(8)]
    zeros = tmp_path / "zeros.csv"
    zeros.write_text("sample," + ",".join(genes) + "\n" + "".join(f"s{i}" + ",0" * 8 + "\n" for i in range(30)))
    res = runner.invoke(app, ["vae-train", str(zeros), "-o", str(tmp_path / "m"), "-q", "--epochs", "1"])
    assert_one_line_error(res, "every gene is constant")
    assert sorted(os.listdir(tmp_path)) == ["zeros.csv"]

    from gengen.io.expression import read_expression

    rng = np.random.default_rng(0)
    dup = tmp_path / "dup.csv"
    rows = [f"{name}," + ",".join(f"{v:.3f}" for v in rng.random(8)) for name in ("a", "b", "a", "c", "a")]
    dup.write_text("sample," + ",".join(genes) + "\n" + "\n".join(rows) + "\n")
    res = runner.invoke(app, ["vae-train", str(dup), "-o", str(tmp_path / "m2"), "--epochs", "1", "--device", "cpu"])
    assert "2 duplicate sample name(s) 'a' renamed to be unique" in res.output
    assert list(read_expression(dup, quiet=True).obs_names) == ["a", "b", "a-1", "c", "a-2"]


def test_option_and_size_mistakes_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("m.tsv").write_text("1 4 1 2 8\n4 3 1 2 1\n1 1 9 2 1\n2 2 1 8 1\n")
    Path("t.fa").write_text("".join(f">r{i}\n" + "ACGT" * 30 + "\n" for i in range(10)))
    design = ["dna-design", "--motif", "m.tsv", "--motif-format", "pfm", "-n", "3", "--steps", "2", "-q", "-o", "x.fa"]
    assert_one_line_error(runner.invoke(app, [*design, "--lr", "-1"]), "--lr", "positive")
    assert_one_line_error(runner.invoke(app, [*design, "--length", "100000000000"]), "GiB of memory")
    assert_one_line_error(runner.invoke(app, ["dna-train", "t.fa", "-o", "g", "--sample-every", "0", "-q"]),
                          "--sample-every")
    assert sorted(os.listdir()) == ["m.tsv", "t.fa"]


# ------------------------------------------------------------------------------ temps, kills, locks
def test_stale_temps_of_dead_owners_go_live_and_foreign_fresh_ones_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = runtime.temps._host_tag()
        other = "ffffff" if host != "ffffff" else "eeeeee"
        made = {
            "dead_file": f".out.csv.gengen-tmp-{dead.pid}-{host}-0123abcd.csv",
            "dead_dir": f".model.gengen-tmp-{dead.pid}-{host}-0123abce",
            "live_file": f".out.csv.gengen-tmp-{live.pid}-{host}-0123abcf.csv",
            "foreign_fresh": f".out.csv.gengen-tmp-{dead.pid}-{other}-0123abd0.csv",
            "foreign_old": f".out.csv.gengen-tmp-{dead.pid}-{other}-0123abd1.csv",
            "user_file": ".out.csv.0123abcd.csv",  # looks like an old-style temp: never touched
            "unheld_lock": ".out.csv.gengen-lock",
        }
        for key, name in made.items():
            if key == "dead_dir":
                (tmp_path / name).mkdir()
                (tmp_path / name / "config.json").write_text("{}")
            else:
                (tmp_path / name).write_text("x")
        old = time.time() - 2 * runtime.FOREIGN_TEMP_MAX_AGE
        os.utime(tmp_path / made["foreign_old"], (old, old))
        removed = {p.name for p in runtime.clean_stale_temps(tmp_path)}
        assert removed == {made[k] for k in ("dead_file", "dead_dir", "foreign_old", "unheld_lock")}
        assert set(os.listdir(tmp_path)) == {made[k] for k in ("live_file", "foreign_fresh", "user_file")}
    finally:
        live.kill()
        live.wait()


def test_sigkill_mid_write_leaves_temps_that_the_next_write_removes(tmp_path):
    proc = _spawn("""
        import sys, time, pathlib
        from gengen.runtime import atomic_dir, atomic_path
        out = pathlib.Path(sys.argv[1])
        with atomic_dir(out / "model") as d:
            (d / "config.json").write_text("{}")
            with atomic_path(out / "table.csv") as t:
                t.write_text("partial")
                print("writing", flush=True)
                time.sleep(60)
    """, str(tmp_path))
    _wait_for_line(proc, "writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _hidden(tmp_path)
    assert f".model.gengen-tmp-{proc.pid}-" in " ".join(left) and f".table.csv.gengen-tmp-{proc.pid}-" in " ".join(left)
    assert ".model.gengen-lock" in left and not (tmp_path / "model").exists() and not (tmp_path / "table.csv").exists()
    with runtime.atomic_path(tmp_path / "other.tsv") as tmp:  # any later write into the folder cleans up
        tmp.write_text("ok")
    assert sorted(os.listdir(tmp_path)) == ["other.tsv"]


def test_second_writer_gets_one_line_naming_the_holder(tmp_path, toy_expression):
    out = tmp_path / "model"
    holder = _spawn("""
        import sys, time
        from gengen.runtime import output_lock
        with output_lock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(60)
    """, str(out))
    try:
        _wait_for_line(holder, "locked")
        with pytest.raises(GengenError, match=rf"being written by another gengen run \(pid {holder.pid} on "):
            with runtime.output_lock(out):
                pass
        data = tmp_path / "toy.h5ad"
        toy_expression.write_h5ad(data)
        for cmd in (["vae-train", str(data)], ["dna-train", str(data)], ["ggan-train", str(data), "-l", str(data)]):
            res = runner.invoke(app, [*cmd, "-o", str(out), "-q"])
            assert_one_line_error(res, "being written by another gengen run", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    with runtime.output_lock(out):  # the kernel dropped the dead holder's lock
        assert (tmp_path / ".model.gengen-lock").read_text().split()[0] == str(os.getpid())
    assert sorted(os.listdir(tmp_path)) == ["toy.h5ad"]  # and releasing removed the lock file


WRITER = """
    import sys, torch
    from gengen.checkpoint import save_checkpoint
    from gengen.errors import GengenError
    folder, tag, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    print("ready", flush=True)
    locked = 0
    for i in range(n):
        value = tag * 1000 + i
        try:
            save_checkpoint(folder, "test", {"w": torch.full((128, 128), value)}, config={"value": value})
        except GengenError as exc:
            assert "being written by another gengen run" in str(exc), exc
            locked += 1
    print(locked, flush=True)
"""


def test_readers_see_old_or_new_model_while_two_processes_save_it(tmp_path):
    folder = tmp_path / "m"
    _tiny_checkpoint(folder, 0.0)
    writers = [_spawn(WRITER, str(folder), str(tag), "50") for tag in (1, 2)]
    for w in writers:
        _wait_for_line(w, "ready")
    reads = missing = 0
    while any(w.poll() is None for w in writers):
        ok = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
        missing += not ok
        tensors, cfg, _ = load_checkpoint(folder, "test")  # never raises
        assert float(tensors["w"][0, 0]) == cfg["value"]  # config and weights of one save
        reads += 1
        time.sleep(0.002)  # leave the writers some CPU on a small machine
    # read through the same buffered pipes as _wait_for_line (communicate() reads the raw pipes and
    # would lose a final line already buffered there)
    outs = [(w.stdout.read(), w.stderr.read()) for w in writers]
    for w in writers:
        w.wait()
    assert [w.returncode for w in writers] == [0, 0], outs  # no OSError, no FileNotFoundError
    locked = sum(int(o[0].split()[-1]) for o in outs)
    assert locked < 100 and reads > 10 and missing == 0, (reads, missing, locked)
    assert _hidden(tmp_path) == []  # no temp, no lock file left


def test_folder_swap_falls_back_without_atomic_exchange(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if runtime.exchange_paths(a, b):  # Linux renameat2 / macOS renamex_np
        assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    monkeypatch.setattr(runtime.outputs, "exchange_paths", lambda x, y: False)
    _tiny_checkpoint(tmp_path / "m", 1.0)
    _tiny_checkpoint(tmp_path / "m", 2.0)
    assert load_checkpoint(tmp_path / "m", "test")[1]["value"] == 2.0
    assert _hidden(tmp_path) == []


def test_concurrent_dna_train_second_run_fails_fast_and_sigterm_cleans_up(tmp_path):
    fasta = tmp_path / "t.fa"
    rng = np.random.default_rng(0)
    fasta.write_text("".join(f">r{i}\n" + "".join(rng.choice(list("ACGT"), 200)) + "\n" for i in range(20)))
    out = tmp_path / "gan"
    args = ["dna-train", str(fasta), "-o", str(out), "--iterations", "100000", "--channels", "4",
            "--sample-every", "5", "--device", "cpu", "-q"]
    first = _gengen(*args)  # a real CLI process holds the lock from before training
    try:
        deadline = time.time() + 120
        while not (tmp_path / ".gan.gengen-lock").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        res = runner.invoke(app, args)  # the second writer: refused before reading any data
        assert_one_line_error(res, f"being written by another gengen run (pid {first.pid} on")
        first.send_signal(signal.SIGTERM)  # a clean stop: the lock and any temporary go
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM
    assert _hidden(tmp_path) == [] and (not out.exists() or _hidden(out) == [])


# ------------------------------------------- files gengen did not make (issue 18): links, pipes, modes
def _planted(kind: str, lock: Path, victim: Path) -> None:
    """Something other than gengen's own lock file at ``lock``: a link to ``victim``, a hard link to it,
    a named pipe, a dangling link, another user's stale lock file."""
    if kind == "symlink":
        os.symlink(victim.name, lock)
    elif kind == "hardlink":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dangling":
        os.symlink("nowhere", lock)
    elif kind == "other-user":
        lock.write_text("4242 otherhost\n")
        os.chown(lock, 12345, 12345)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "dangling", "other-user"])
def test_a_lock_file_that_gengen_did_not_make_is_refused_and_left_alone(tmp_path, kind):
    """Issue 18: ``ln -s v.txt .e.csv.gengen-lock`` made the next write put "PID host" into v.txt. A lock
    file is created with O_EXCL|O_NOFOLLOW; what is there already is opened read-only, and unless it is
    an unheld regular file of this user with one link, the write is refused in one line, touching nothing."""
    if kind == "other-user" and os.geteuid() != 0:
        pytest.skip("making a file of another user needs root")
    victim = tmp_path / "v.txt"
    victim.write_bytes(b"keep\n")
    lock = tmp_path / ".e.csv.gengen-lock"
    _planted(kind, lock, victim)
    before = {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mode) for p in tmp_path.iterdir()}
    with no_longer_than(20):  # the named pipe must not block
        with pytest.raises(GengenError) as err, runtime.atomic_path(tmp_path / "e.csv") as tmp:
            tmp.write_text("out")
        runtime.clean_stale_temps(tmp_path)  # not a leftover of gengen's: never removed either
    message = str(err.value)
    assert "lock file" in message and "rm " in message and "\n" not in message, message
    assert victim.read_bytes() == b"keep\n"  # byte-identical
    assert {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mode) for p in tmp_path.iterdir()} == before


def test_a_killed_runs_lock_file_is_replaced_not_rewritten(tmp_path):
    """A stale lock file (this user's, unheld) is removed and a new one made: gengen never writes into a
    file this run did not create, even its own kind."""
    lock = tmp_path / ".e.csv.gengen-lock"
    lock.write_text("4242 deadhost\n")
    with open(lock, "rb") as old:  # the old file, still readable after it is unlinked
        with runtime.atomic_path(tmp_path / "e.csv") as tmp:
            tmp.write_text("out")
            assert lock.read_text().split()[0] == str(os.getpid())  # the new lock names this run
        assert old.read() == b"4242 deadhost\n"
    assert sorted(os.listdir(tmp_path)) == ["e.csv"]


def test_models_list_never_writes_through_a_link_at_the_index_lock(tmp_path):
    """Issue 18: a read-only ``gengen models list`` in a shared store rewrote the target of a link planted
    at the store index's lock. Now the index is not rewritten (it is a cache) and the listing works."""
    from gengen.store import store_dir

    _tiny_checkpoint(store_dir() / "t1")
    cfg = json.loads((store_dir() / "t1" / "config.json").read_text())
    (store_dir() / "t1" / "config.json").write_text(json.dumps({**cfg, "pipeline": "vae"}))
    victim = tmp_path / "v.txt"
    victim.write_bytes(b"keep\n")
    os.symlink(victim, store_dir() / "..index.json.gengen-lock")
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0 and "t1" in res.output, res.output
    assert victim.read_bytes() == b"keep\n"
    assert os.path.islink(store_dir() / "..index.json.gengen-lock")


def _modes(*folders: Path) -> dict[Path, int]:
    """Every path in ``folders`` (themselves included) -> its permission bits."""
    return {p: stat.S_IMODE(os.lstat(p).st_mode) for f in folders for p in [f, *f.rglob("*")]}


def test_every_output_gets_the_mode_of_the_umask(tmp_path, monkeypatch):
    """Issue 18: model.safetensors was written 0600 while the rest of the folder was 0644, so another user
    of a shared store listed the model and could not load it. Every file gets 0666 & ~umask and every
    folder 0777 & ~umask (umask 002 here: 0664, neither 0600 nor 0644), whichever library wrote it."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    pd.DataFrame(6 + rng.standard_normal((30, 8)), index=[f"s{i}" for i in range(30)],
                 columns=[f"G{j}" for j in range(8)]).to_csv("expr.csv")
    previous = os.umask(0o002)
    try:
        fast = ["--latent", "2", "--epochs", "2", "--batch-size", "10", "--device", "cpu", "-q"]
        for args in (["vae-train", "expr.csv", "-o", "out/model", *fast],
                     ["vae-encode", "expr.csv", "--model", "out/model", "-o", "out/e.h5ad", "-q"],
                     ["vae-encode", "expr.csv", "--model", "out/model", "-o", "out/e.parquet", "-q"],
                     ["vae-encode", "expr.csv", "--model", "out/model", "-o", "out/e.csv", "-q"],
                     ["models", "add", "out/model", "--name", "m1"]):
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (args, res.output)
    finally:
        os.umask(previous)
    from gengen.store import store_dir

    written = _modes(tmp_path / "out", store_dir() / "m1")
    names = {p.name for p in written}
    assert {"model.safetensors", "config.json", "training.png", "e.h5ad", "e.parquet", "e.csv"} <= names
    wrong = {str(p): oct(mode) for p, mode in written.items() if mode != (0o775 if p.is_dir() else 0o664)}
    assert not wrong, wrong


def test_a_named_pipe_for_history_is_skipped_in_seconds(tmp_path, capsys):
    """history.csv only documents training: a named pipe there (never opened: it would block) is noted
    and the model still loads."""
    _tiny_checkpoint(tmp_path / "m")
    os.mkfifo(tmp_path / "m" / "history.csv")
    with no_longer_than(20):
        assert read_history(tmp_path / "m") is None
    assert "named pipe" in capsys.readouterr().err


def test_a_short_read_modify_write_waits_for_the_lock(tmp_path):
    """defaults.json's lock now goes through the same lock files (no link followed): its writers wait for
    a holder (``wait=``) instead of failing at once, as the flock on ``.defaults.lock`` did."""
    holder = _spawn("""
        import sys, time
        from gengen.runtime import output_lock
        with output_lock(sys.argv[1]):
            print("locked", flush=True)
            time.sleep(1.5)
    """, str(tmp_path / "defaults.json"))
    try:
        _wait_for_line(holder, "locked")
        with pytest.raises(GengenError, match="being written by another gengen run"):
            with runtime.output_lock(tmp_path / "defaults.json"):
                pass
        t = time.perf_counter()
        with runtime.output_lock(tmp_path / "defaults.json", wait=30):
            waited = time.perf_counter() - t
    finally:
        holder.wait(timeout=30)
    assert 0.2 < waited < 30 and os.listdir(tmp_path) == []
