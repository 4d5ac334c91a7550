"""h5ad in and out (issue 18, items 5): a disk that fills while an h5ad is written is one line with
nothing left behind (before: h5py's RuntimeError as a traceback, and a SIGSEGV at exit from HDF5's
own clean-up); an h5ad without X says which layers it has, and ``--layer`` reads one."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app
from gengen.errors import GengenError

SRC = Path(__file__).resolve().parents[1] / "src"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"GENGEN_THREADS": "1"})


def _expr(n=600, g=400, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = (6 + rng.standard_normal((n, 2)) @ rng.standard_normal((2, g)) + 0.3 * rng.standard_normal((n, g))).astype(np.float32)
    a = ad.AnnData(X, obs=pd.DataFrame({"group": np.repeat(["a", "b"], n // 2)}, index=[f"s{i}" for i in range(n)]),
                   var=pd.DataFrame(index=[f"G{j}" for j in range(g)]))
    return a


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny VAE and GGAN trained on 600 x 400 data (h5ad outputs of ~1 MB)."""
    d = tmp_path_factory.mktemp("h5ad_models")
    a = _expr()
    a.write_h5ad(d / "expr.h5ad")
    a.to_df().to_csv(d / "expr.csv")
    (d / "lm.txt").write_text("\n".join(a.var_names[:20]) + "\n")
    r = run("vae-train", d / "expr.h5ad", "-o", d / "vae", "--latent", 2, "--epochs", 1, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    r = run("ggan-train", d / "expr.csv", "--landmarks", d / "lm.txt", "-o", d / "ggan", "--hidden", 8, "--layers", 1,
            "--epochs", 1, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    return d


def _limited(args, cwd: Path, limit: int) -> subprocess.CompletedProcess:
    """``gengen ARGS`` in a fresh process whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE:
    writes beyond fail with EFBIG, as writes on a full disk fail with ENOSPC; Python ignores SIGXFSZ)."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from gengen.cli import main; sys.argv = ['gengen', *sys.argv[1:]]; main()")
    env = {**os.environ, "PYTHONPATH": str(SRC), "GENGEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not hasattr(__import__("resource"), "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_h5ad_write_that_runs_out_of_room_is_one_line(models, tmp_path):
    """The file system refuses the h5ad part-way (in the matrix; for the ~0.91 MB of predictions, after
    it, in HDF5's metadata at close): one line naming the output, exit 2, no temporary left."""
    for args, limit in ((["vae-sample", "--model", models / "vae", "-n", 600, "-o", "s.h5ad"], 200_000),
                        (["infer-targets", models / "expr.csv", "--model", models / "ggan", "-o", "t.h5ad"], 920_000)):
        res = _limited([*args, "-q"], tmp_path, limit)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2, (args, res.returncode, res.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("gengen: error: cannot write"), res.stderr[-2000:]
        assert "File too large" in lines[0] or "No space left" in lines[0], lines[0]
        assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


def test_a_disk_too_small_for_the_arrays_is_refused_before_writing(models, tmp_path, monkeypatch):
    """Free space below the arrays' bytes: refused before HDF5 writes anything, saying how much is needed."""
    real = os.statvfs

    class Small:
        def __init__(self, st):
            self.f_frsize, self.f_bavail = st.f_frsize, 10

    monkeypatch.setattr(os, "statvfs", lambda p: Small(real(p)))
    res = run("vae-sample", "--model", models / "vae", "-n", 600, "-o", tmp_path / "s.h5ad", "-q")
    assert_one_line_error(res, "No space left on device: it needs at least", "free some space")
    assert os.listdir(tmp_path) == []


def test_writes_refused_mid_file_keep_hdf5_healthy(tmp_path, monkeypatch):
    """ENOSPC from the second write on: write_h5ad raises it naming the file; the process goes on using
    HDF5 normally (the next file writes and reads back), which is what crashed before."""
    from gengen.io import h5ad as h5ad_io

    real, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    a = _expr(200, 300)
    monkeypatch.setattr(h5ad_io.os, "pwrite", pwrite)
    with pytest.raises(OSError) as info:
        h5ad_io.write_h5ad(a.copy(), tmp_path / "full.h5ad")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "full.h5ad")
    monkeypatch.setattr(h5ad_io.os, "pwrite", real)
    h5ad_io.write_h5ad(a.copy(), tmp_path / "ok.h5ad")
    back = ad.read_h5ad(tmp_path / "ok.h5ad")
    np.testing.assert_array_equal(back.X, a.X)
    assert list(back.obs["group"]) == list(a.obs["group"])


def test_written_h5ad_matches_anndatas_own(tmp_path):
    """The guarded writer writes what anndata's write_h5ad writes: every element reads back the same."""
    from gengen.io.h5ad import write_h5ad

    a = _expr(50, 30)
    a.obsm["X_vae"] = np.arange(100, dtype=np.float32).reshape(50, 2)
    a.varm["load"] = np.ones((30, 2), np.float32)
    a.layers["counts"] = a.X * 2
    a.uns["gengen"] = {"seed": 0, "model_path": "/m", "nested": {"x": 1.5}}
    write_h5ad(a.copy(), tmp_path / "ours.h5ad")
    a.copy().write_h5ad(tmp_path / "theirs.h5ad")
    ours, theirs = ad.read_h5ad(tmp_path / "ours.h5ad"), ad.read_h5ad(tmp_path / "theirs.h5ad")
    np.testing.assert_array_equal(ours.X, theirs.X)
    for key in ("obsm", "varm", "layers"):
        for name, value in getattr(theirs, key).items():
            np.testing.assert_array_equal(getattr(ours, key)[name], value)
    pd.testing.assert_frame_equal(ours.obs, theirs.obs)
    pd.testing.assert_frame_equal(ours.var, theirs.var)
    assert ours.uns["gengen"]["nested"]["x"] == 1.5 and ours.uns["gengen"]["model_path"] == "/m"


@pytest.fixture
def no_x(tmp_path) -> Path:
    """An h5ad with layers 'counts' and 'lognorm' and no X (as scanpy users keep raw and processed data)."""
    a = _expr(60, 40)
    a.layers["lognorm"] = a.X.copy()
    a.layers["counts"] = np.round(2 ** a.X).astype(np.float32)
    a.X = None
    a.write_h5ad(tmp_path / "nox.h5ad")
    return tmp_path / "nox.h5ad"


def test_h5ad_without_x_names_its_layers_and_reads_one(no_x):
    from gengen.io.expression import read_expression

    with pytest.raises(GengenError, match=r"no X matrix; its layers are 'counts', 'lognorm': pick one with --layer"):
        read_expression(no_x, quiet=True)
    with pytest.raises(GengenError, match=r"no layer 'logn'; its layers are"):
        read_expression(no_x, layer="logn", quiet=True)
    got = read_expression(no_x, layer="lognorm", quiet=True)
    np.testing.assert_array_equal(got.X, ad.read_h5ad(no_x).layers["lognorm"])


def test_layer_through_every_reader_of_the_cli(no_x, tmp_path):
    """vae-train, vae-encode and infer-targets (streamed, from disk) take --layer; without it, one line."""
    assert_one_line_error(run("vae-train", no_x, "-o", tmp_path / "m", "--epochs", 1, "-q"),
                          "no X matrix; its layers are 'counts', 'lognorm'")
    r = run("vae-train", no_x, "--layer", "lognorm", "-o", tmp_path / "m", "--latent", 2, "--epochs", 1, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    r = run("vae-encode", no_x, "--layer", "lognorm", "--model", tmp_path / "m", "-o", tmp_path / "e.h5ad", "-q")
    assert r.exit_code == 0, r.output
    out = ad.read_h5ad(tmp_path / "e.h5ad")
    assert out.obsm["X_vae"].shape == (60, 2) and out.uns["gengen"]["layer"] == "lognorm"
    (tmp_path / "lm.txt").write_text("G0\nG1\nG2\n")
    ref = _expr(60, 40)
    ref.write_h5ad(tmp_path / "ref.h5ad")
    r = run("ggan-train", tmp_path / "ref.h5ad", "--landmarks", tmp_path / "lm.txt", "-o", tmp_path / "g", "--hidden", 8,
            "--layers", 1, "--epochs", 1, "--device", "cpu", "-q")
    assert r.exit_code == 0, r.output
    assert_one_line_error(run("infer-targets", no_x, "--model", tmp_path / "g", "-o", tmp_path / "p.csv"),
                          "no X matrix; its layers are", "--layer NAME")
    for layer in ("lognorm", "counts"):
        r = run("infer-targets", no_x, "--model", tmp_path / "g", "--layer", layer, "-o", tmp_path / f"p_{layer}.csv", "-q")
        assert r.exit_code == 0, r.output
    a, b = (pd.read_csv(tmp_path / f"p_{x}.csv", index_col=0) for x in ("lognorm", "counts"))
    assert a.shape == b.shape == (60, 37) and not np.allclose(a.to_numpy(), b.to_numpy())
    assert_one_line_error(run("vae-train", tmp_path / "lm.txt", "--layer", "x", "-o", tmp_path / "n"),
                          "--layer 'x' picks a layer of an h5ad input")


def test_no_h5ad_is_written_around_the_guarded_writer():
    """Every h5ad gengen writes goes through gengen.io.h5ad.write_h5ad (AnnData.write_h5ad crashes at exit
    after a failed write): no other module calls ``.write_h5ad(``."""
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "h5ad.py" and re.search(r"\w\)?\.write_h5ad\((?!\.\.\.)", p.read_text())]
    assert offenders == [], offenders
