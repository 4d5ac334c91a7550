"""torchrun (issue 20): two processes on 127.0.0.1 train the model one process trains, and a rank that
dies stops the job with one line naming it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gengen.cli import app

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
SRC = Path(__file__).resolve().parents[1] / "src"
# dropout 0 and no ridge start: the only randomness is the shared permutation, so the two-process model must
# equal the one-process model up to float summation order (measured: 3e-8)
ARGS = ["--landmarks", "lm.txt", "--no-ridge-init", "--hidden", "32", "--d-hidden", "16", "--batch-size", "40",
        "--dropout", "0", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference(folder: Path) -> None:
    rng = np.random.default_rng(0)
    n, p, q = 400, 20, 30
    X = rng.standard_normal((n, p))
    Y = np.tanh(X @ rng.standard_normal((p, q)) / 4) + 0.1 * rng.standard_normal((n, q))
    cols = [f"L{i}" for i in range(p)] + [f"T{i}" for i in range(q)]
    pd.DataFrame(np.c_[X + 5, Y + 5].astype(np.float32), index=[f"s{i}" for i in range(n)], columns=cols).to_csv(folder / "ref.csv")
    (folder / "lm.txt").write_text("\n".join(cols[:p]) + "\n")


def _torchrun(folder: Path, *argv: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1",
           "GLOO_SOCKET_IFNAME": "lo", "GENGEN_HOME": str(folder / "home"), "GENGEN_DIST_TIMEOUT": "60"}
    cmd = [TORCHRUN, "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
           "-m", "gengen", *argv]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_two_processes_train_the_one_process_model(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    _reference(tmp_path)
    proc = _torchrun(tmp_path, "ggan-train", "ref.csv", "-o", "two", "--epochs", "4", *ARGS)
    out, err = proc.communicate(timeout=240)
    if proc.returncode != 0 and any(s in err for s in ("address already in use", "EADDRINUSE", "rendezvous")):
        # the free port was taken between _free_port() and torchrun's bind (a busy machine): once more
        proc = _torchrun(tmp_path, "ggan-train", "ref.csv", "-o", "two", "--epochs", "4", *ARGS)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert out.strip() == "two"  # rank 0 alone prints the model folder (and writes it)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["ggan-train", "ref.csv", "-o", "one", "--epochs", "4", *ARGS, "-q"])
    assert res.exit_code == 0, res.output
    one, two = load_file(str(tmp_path / "one/model.safetensors")), load_file(str(tmp_path / "two/model.safetensors"))
    assert max(float(np.abs(one[k] - two[k]).max()) for k in one) < 1e-5
    h1, h2 = (pd.read_csv(tmp_path / f / "history.csv") for f in ("one", "two"))
    for column in ("g_loss", "d_loss", "train_mae", "val_mae"):  # losses and the held-out metric
        np.testing.assert_allclose(h2[column], h1[column], rtol=1e-5, err_msg=column)


def test_a_rank_that_dies_stops_the_job_with_one_line(tmp_path):
    _reference(tmp_path)
    proc = _torchrun(tmp_path, "ggan-train", "ref.csv", "-o", "m", "--epochs", "100000", "--patience", "0", *ARGS)
    rank1 = None
    deadline = time.monotonic() + 120
    while rank1 is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if not (tmp_path / "m").exists():
            continue  # not training yet
        for pid in os.listdir("/proc"):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if b"RANK=1" in environ and f"GENGEN_HOME={tmp_path / 'home'}".encode() in environ:
                rank1 = int(pid)
    assert rank1 is not None, "rank 1 never started training"
    time.sleep(2)
    killed = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    _, err = proc.communicate(timeout=90)
    assert time.monotonic() - killed < 60  # stopped, not hanging
    ours = [ln for ln in err.splitlines() if ln.startswith("gengen: error:")]
    assert len(ours) == 1 and "rank 1 of 2 stopped" in ours[0], err
    assert proc.returncode != 0
