"""Shared test fixtures: small synthetic data and the path to ../shared/data (skip when absent)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GENGEN_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENGEN_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """Path of a file under ../shared/data, skipping the test cleanly when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny tensors: one torch thread avoids OpenMP spin contention on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_model_home(tmp_path, monkeypatch):
    """Named models resolve under a per-test $GENGEN_HOME, never the user's."""
    monkeypatch.setenv("GENGEN_HOME", str(tmp_path / "gengen_home"))


@pytest.fixture
def toy_expression():
    """120 samples x 60 genes with a 3-group structure driven by 2 latent factors, as AnnData."""
    return make_toy_expression()


def make_toy_expression():
    """120 samples x 60 genes with a 3-group structure driven by 2 latent factors, as AnnData."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    n, g = 120, 60
    groups = np.repeat(np.array(["a", "b", "c"]), n // 3)
    centers = {"a": (2.0, 0.0), "b": (-2.0, 1.0), "c": (0.0, -2.0)}
    factors = np.array([centers[x] for x in groups]) + 0.3 * rng.standard_normal((n, 2))
    loadings = rng.standard_normal((2, g))
    X = 6 + factors @ loadings + 0.3 * rng.standard_normal((n, g))
    obs = pd.DataFrame({"group": groups}, index=[f"s{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(g)])
    return ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)


def assert_one_line_error(res, *needles):
    """A CliRunner result that failed the way users should see: exit 2, one `gengen: error:` line."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gengen: error:"), res.output
    for n in needles:
        assert n in lines[0], lines[0]


@contextlib.contextmanager
def no_longer_than(seconds: int = 20):
    """Fail (TimeoutError) a block that runs longer than ``seconds``: a named pipe opened the usual way
    waits for a writer forever, and a test of one must fail, not stop the suite."""
    import signal

    def _raise(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a read blocked")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again every second: code under test may catch one
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
