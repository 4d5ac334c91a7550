"""Shared runtime plumbing: atomic writes, devices, threads, the CLI error boundary."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from gengen import runtime
from gengen.errors import GengenError


def test_atomic_path_success_failure_and_protection(tmp_path):
    target = tmp_path / "out.csv"
    with runtime.atomic_path(target) as tmp:
        tmp.write_text("ok")
        assert not target.exists()  # nothing visible until the block succeeds
    assert target.read_text() == "ok"
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o044  # readable by others, not mkstemp's 0600
    with pytest.raises(RuntimeError), runtime.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "ok" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with pytest.raises(GengenError, match="refusing to overwrite"), runtime.atomic_path(target, protect=(target,)):
        pass


def test_resolve_device():
    assert runtime.resolve_device("cpu").type == "cpu"
    assert runtime.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(GengenError, match="unknown device"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GengenError, match="no CUDA GPU"):
            runtime.resolve_device("cuda")


def test_resolve_device_refuses_a_gpu_that_is_not_there(monkeypatch):
    """On a one-GPU machine, cuda:3 is one line before any work (not torch's 'invalid device ordinal' later)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert runtime.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(GengenError, match=r"GPU 3, but 1 GPU\(s\) are visible"):
        runtime.resolve_device("cuda:3")
    with pytest.raises(GengenError, match="unknown device"):
        runtime.resolve_device("cudax")


def test_small_model_threads_restores(monkeypatch):
    monkeypatch.setattr(runtime.device, "_USER_CHOSE_THREADS", False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with runtime.small_model_threads(1000, "cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with runtime.small_model_threads(10**9, "cpu"):
            assert torch.get_num_threads() == 2  # large networks keep every core
    finally:
        torch.set_num_threads(before)
    with pytest.raises(GengenError, match="positive"):
        runtime.set_threads(0)
    monkeypatch.setenv("GENGEN_THREADS", "many")
    with pytest.raises(GengenError, match="GENGEN_THREADS"):
        runtime.set_threads(None)


def test_progress_prints_plain_status_lines_when_not_a_terminal(monkeypatch, capsys):
    from gengen.runtime import Progress

    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "0")
    with Progress(10, "train thing") as bar:
        bar.update(3, loss=0.5)
        bar.update(2, loss=0.25)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("train thing: 3/10 (") and "left)" in err[0] and "loss=0.5" in err[0]
    assert err[1].startswith("train thing: 5/10 (") and "loss=0.25" in err[1]


def test_progress_plain_lines_are_rate_limited_and_quiet_silences(monkeypatch, capsys):
    from gengen.runtime import Progress

    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    with Progress(10, "short run") as bar:  # default interval 60 s: a short run prints nothing
        bar.update(5)
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "0")
    with Progress(10, "quiet run", quiet=True) as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_progress_interval_must_be_a_number(monkeypatch):
    from gengen.errors import GengenError
    from gengen.runtime import Progress

    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "soon")
    with pytest.raises(GengenError, match="GENGEN_PROGRESS_INTERVAL"):
        Progress(10, "x")


class FakeClock:
    """A clock the test moves by hand (Progress(clock=...))."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _expected_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "this will take about" in ln]


@pytest.mark.parametrize("no_progress", [False, True])
def test_progress_says_once_how_long_a_long_run_will_take(monkeypatch, capsys, no_progress):
    """Issue 18, item 12: every command with a progress bar of known total says, a few seconds in, how long
    it will take when that is more than a minute (GENGEN_NO_PROGRESS hides bars, not this line)."""
    from gengen.runtime import ESTIMATE_AFTER_S, Progress

    if no_progress:
        monkeypatch.setenv("GENGEN_NO_PROGRESS", "1")
    else:
        monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    clock = FakeClock()
    with Progress(500, "direct design", clock=clock, note="it may stop earlier") as bar:
        clock.now += 1.0
        bar.update(5)  # 1 s in: too early to project
        assert bar.expected_seconds is None
        clock.now += ESTIMATE_AFTER_S
        bar.update(5)  # 10 of 500 in 6 s: 300 s
        for _ in range(20):
            clock.now += 0.6
            bar.update(5)
    lines = _expected_lines(capsys.readouterr().err)
    assert lines == ["direct design: this will take about 5 min (10/500 in 6 s); it may stop earlier"]
    assert bar.expected_seconds == pytest.approx(300.0)


def test_progress_says_nothing_for_short_or_quiet_runs(monkeypatch, capsys):
    from gengen.runtime import Progress

    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    clock = FakeClock()
    with Progress(100, "short", clock=clock) as bar:  # 100 steps of 0.5 s: 50 s, under a minute
        for _ in range(100):
            clock.now += 0.5
            bar.update()
    assert bar.expected_seconds == pytest.approx(50.0)
    with Progress(100, "long but quiet", quiet=True, clock=clock) as bar:
        for _ in range(20):
            clock.now += 10
            bar.update()
    with Progress(None, "no total", clock=clock) as bar:  # nothing to project from
        clock.now += 100
        bar.update()
    assert _expected_lines(capsys.readouterr().err) == []


def test_progress_time_left_and_expected_time_respect_the_time_limit(monkeypatch, capsys):
    """dna-train --time-limit 5 on a run whose iterations would take hours: the projection and the time
    left are the limit's, not the iterations' (the bar said '~9h left' while the run stopped at 5 min)."""
    from gengen.runtime import Progress

    monkeypatch.delenv("GENGEN_NO_PROGRESS", raising=False)
    monkeypatch.setenv("GENGEN_PROGRESS_INTERVAL", "0")
    clock = FakeClock()
    with Progress(100_000, "train WGAN-GP", clock=clock, time_limit=300.0) as bar:
        clock.now += 10
        bar.update(10)  # 1 s per iteration: 100,000 s for all, 300 s by the limit
        clock.now += 230
        bar.update(230)
        assert bar.seconds_left(240.0) == pytest.approx(60.0)
    err = capsys.readouterr().err.splitlines()
    assert _expected_lines("\n".join(err)) == [
        "train WGAN-GP: this will take about 5 min (10/100000 in 10 s; stopped by the time limit, the full 100000 "
        "would take about 27.8 h)"]
    status = [ln for ln in err if ln.startswith("train WGAN-GP: 240/100000")]
    assert len(status) == 1 and "~1m00s left" in status[0], err


def test_dna_train_gives_its_time_limit_to_the_progress_bar(monkeypatch):
    import numpy as np

    from gengen.dna import train_gan
    from gengen.dna.gan import train as dna_train
    from gengen.recipes import GANRecipe

    seen = {}

    class Recorder(dna_train.Progress):
        def __init__(self, total, description, quiet=False, **kw):
            seen.update(kw, total=total)
            super().__init__(total, description, quiet, **kw)

    monkeypatch.setattr(dna_train, "Progress", Recorder)
    codes = np.random.default_rng(0).integers(0, 4, (64, 12)).astype(np.uint8)
    recipe = GANRecipe(length=12, channels=4, iterations=3, batch_size=8, critic_steps=1, sample_every=3)
    train_gan(codes, recipe, device="cpu", quiet=True, time_limit=120.0)
    assert seen["time_limit"] == 120.0 and seen["total"] == 3


def test_set_threads_limits_numpy_blas_too(monkeypatch):
    """--threads 1 must also hold numpy's BLAS to one thread: two sweep workers with --threads 1 ran
    four BLAS threads on two cores and took 3x as long per trial."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    np.linalg.svd(np.ones((4, 4)))  # BLAS loaded
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy is not linked to a BLAS threadpoolctl knows")
    monkeypatch.setattr(runtime.device, "_USER_CHOSE_THREADS", False)
    before_torch = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):  # restores numpy's count on exit
        try:
            runtime.set_threads(1)
            assert all(p["num_threads"] == 1 for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
            assert torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(before_torch)


def test_set_threads_limits_blas_libraries_loaded_later():
    """scipy's own OpenBLAS (sklearn's ridge, randomized SVD) and sklearn's OpenMP load after
    --threads is applied: they kept the machine's count (2 threads on 2 cores with --threads 1)."""
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("sklearn")
    import json
    import subprocess
    import sys

    from conftest import REPO

    script = ("from gengen.runtime import set_threads; set_threads(1)\n"
              "import numpy as np; from sklearn.linear_model import Ridge\n"
              "Ridge().fit(np.random.rand(50, 20), np.random.rand(50))\n"
              "import json; from threadpoolctl import threadpool_info\n"
              "print(json.dumps([[p['filepath'], p['num_threads']] for p in threadpool_info()]))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "GENGEN_THREADS"}
    env["PYTHONPATH"] = str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pools = json.loads(out.stdout)
    assert len(pools) >= 2 and all(n == 1 for _, n in pools), pools


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_swallowed_stop_signal_stops_the_next_progress_update(signame):
    """SIGTERM's SystemExit (or Ctrl-C's KeyboardInterrupt) can land in a callback that Python ignores;
    the loop's next progress update raises it again (dna-train kept training after such a SIGTERM, 1 run
    in 7)."""
    import signal as sig

    from gengen.runtime import Progress, command_scope

    signum = getattr(sig, signame)
    stop = KeyboardInterrupt if signum == sig.SIGINT else SystemExit
    # Python's own Ctrl-C handler, as in a terminal (a test run started in the background by a shell
    # inherits SIGINT ignored, and a command leaves an ignored or a host's handler alone)
    outer = sig.signal(sig.SIGINT, sig.default_int_handler)
    before = sig.getsignal(sig.SIGINT)
    with pytest.raises(stop) as stopped:
        with command_scope():
            handler = sig.getsignal(signum)
            try:
                handler(signum, None)  # as if delivered inside a __del__: raised, then swallowed
            except stop:
                pass
            with Progress(10, "train", quiet=True) as bar:
                bar.update(1)
    if stop is SystemExit:
        assert stopped.value.code == 128 + sig.SIGTERM
    assert sig.getsignal(sig.SIGINT) is before  # the handler in place before the command is back
    sig.signal(sig.SIGINT, outer)
    with Progress(10, "train", quiet=True) as bar:  # a library call after the command (no scope) runs
        bar.update(1)
    with command_scope():  # the next command starts clean
        with Progress(10, "train", quiet=True) as bar:
            bar.update(1)


@pytest.mark.parametrize("how", ["option", "env"])
def test_threads_beyond_the_cores_are_bounded_and_said(how):
    """Issue 18: ``--threads 100000`` asked torch and the BLAS libraries for 100,000 threads (the first
    matrix product then crashed: SIGSEGV). It is bounded by the cores this process may use, with a note."""
    import subprocess
    import sys

    from conftest import REPO

    script = ("import os, torch; from gengen.runtime import set_threads, usable_cores\n"
              f"set_threads({'100000' if how == 'option' else 'None'})\n"
              "a = torch.randn(300, 300); (a @ a).sum()\n"
              "print(torch.get_num_threads(), usable_cores(), os.environ['OMP_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "GENGEN_THREADS"}
    env["PYTHONPATH"] = str(REPO / "src")
    if how == "env":
        env["GENGEN_THREADS"] = "100000"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    threads, cores, omp = out.stdout.split()
    assert threads == cores == omp and int(cores) == len(os.sched_getaffinity(0))
    source = "--threads" if how == "option" else "GENGEN_THREADS"
    assert f"note: {source} 100000 is more than the {cores} CPU core" in out.stderr and f"using {cores}" in out.stderr


def test_json_loader_turns_every_damage_into_one_line():
    """Issue 18: JSON nested 100,000 deep raised RecursionError (not a ValueError) from every reader."""
    from gengen.runtime import JSON_MAX_DEPTH, load_json

    assert load_json("[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH, "f.json") == eval("[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH)
    for raw, reason in (("[" * 100_000 + "]" * 100_000, "nested deeper"), ("{" + '"a":{' * 500 + "}" * 501, "nested deeper"),
                        ("[" * (JSON_MAX_DEPTH + 1) + "]" * (JSON_MAX_DEPTH + 1), "nested deeper"),
                        (b"\x80\x04junk", "not UTF-8"), ("{broken", "not valid JSON"), ("", "not valid JSON")):
        with pytest.raises(GengenError) as err:
            load_json(raw, "dir/f.json", "model config", fix="retrain it")
        message = str(err.value)
        assert message.startswith("model config 'dir/f.json' is ") and reason in message and message.endswith("retrain it.")


def test_only_regular_files_are_read_and_links_only_where_allowed(tmp_path):
    """Issue 18: a named pipe as model.safetensors, config.json or an input blocked forever; /dev/zero
    never ends. Every reader opens without blocking and reads regular files only; a link the user made
    to their data reads, a link found where gengen looks inside a folder (``follow=False``) does not."""
    import socket

    from conftest import no_longer_than
    from gengen.io.files import check_input, head_lines, open_bytes, stored_kind
    from gengen.runtime import read_json, read_regular

    (tmp_path / "data.csv").write_text("id,a\nx,1\n")
    os.symlink("data.csv", tmp_path / "mine.csv")
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    assert read_regular(tmp_path / "mine.csv") == b"id,a\nx,1\n"
    assert head_lines(tmp_path / "mine.csv") == ["id,a", "x,1"]
    with pytest.raises(GengenError, match="is a symbolic link .to 'data.csv'.; gengen does not follow"):
        read_regular(tmp_path / "mine.csv", "model file", follow=False)
    for path, kind in ((tmp_path / "pipe", r"a named pipe \(FIFO\)"), ("/dev/zero", "a character device"),
                       (tmp_path / "sock", "a socket"), (tmp_path, "a folder")):
        for reader in (read_regular, lambda p: read_json(p, "config"), stored_kind, open_bytes, head_lines):
            with no_longer_than(20), pytest.raises(GengenError, match=f"is {kind}"):
                reader(path)
        if kind != "a folder":
            with pytest.raises(GengenError, match=f"is {kind}, not a regular file"):
                check_input(path)
    sock.close()


def _gzip_name(path) -> bytes | None:
    """The file name a gzip header stores (FNAME, after the 10-byte header), None without one."""
    from pathlib import Path

    data = Path(path).read_bytes()
    assert data[:2] == b"\x1f\x8b", "not gzip"
    return data[10:data.index(b"\0", 10)] if data[3] & 0x08 else None


def test_gzip_outputs_store_the_final_name_not_the_temporary(tmp_path):
    """User test, item 4: ``-o s.tsv.gz`` stored the temporary's name in the gzip header, so ``gunzip -N``
    restored a hidden ``.s.tsv.gz.gengen-tmp-...``; the header now names ``s.tsv``, the content unchanged."""
    import gzip

    import pandas as pd

    from gengen.io.sequences import write_fasta

    table = pd.DataFrame({"a": range(1000), "b": ["x"] * 1000})
    with runtime.atomic_path(tmp_path / "s.tsv.gz") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    assert _gzip_name(tmp_path / "s.tsv.gz") == b"s.tsv"
    assert pd.read_csv(tmp_path / "s.tsv.gz", sep="\t").equals(table)
    with runtime.atomic_path(tmp_path / "é€.txt.gz") as tmp, gzip.open(tmp, "wt") as fh:  # not Latin-1: no name
        fh.write("hello\n")
    assert _gzip_name(tmp_path / "é€.txt.gz") is None and gzip.open(tmp_path / "é€.txt.gz", "rt").read() == "hello\n"
    write_fasta(tmp_path / "d.fa.gz", ["a", "b"], ["ACGT", "GG"])  # a .gz FASTA is gzip too, named d.fa
    assert _gzip_name(tmp_path / "d.fa.gz") == b"d.fa"
    assert gzip.open(tmp_path / "d.fa.gz", "rt").read() == ">a\nACGT\n>b\nGG\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.fa.gz", "s.tsv.gz", "é€.txt.gz"]  # no temporary left


def test_a_report_folder_is_tidied_per_command(tmp_path):
    """Two commands' reports in one -o folder keep each other's files; a command run again removes only
    the files its own earlier run listed (and never a file the user made)."""
    import json

    from gengen.runtime import atomic_path, command_scope, plan_outputs

    folder = tmp_path / "results"
    folder.mkdir()

    def run_as(command: str, names: list[str]) -> None:
        with command_scope(lambda: command):  # as the CLI names the command it runs
            with plan_outputs([folder / n for n in names], report=folder) as plan:
                for n in names:
                    with atomic_path(folder / n) as tmp:
                        Path(tmp).write_text(f"{command}\n")
                plan.commit()

    run_as("vae-features", ["embedding.tsv", "umap.png"])
    (folder / "mine.txt").write_text("mine\n")
    run_as("dna-explain", ["summary.tsv", "logo1.png", "logo2.png"])
    assert sorted(p.name for p in folder.iterdir()) == [".gengen-outputs.json", "embedding.tsv", "logo1.png",
                                                        "logo2.png", "mine.txt", "summary.tsv", "umap.png"]
    run_as("dna-explain", ["summary.tsv", "logo1.png"])
    assert not (folder / "logo2.png").exists() and (folder / "umap.png").read_text() == "vae-features\n"
    assert json.loads((folder / ".gengen-outputs.json").read_text()) == {
        "dna-explain": ["logo1.png", "summary.tsv"], "vae-features": ["embedding.tsv", "umap.png"]}
