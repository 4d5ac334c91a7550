"""gengen sweep: search spaces, trainer hooks, pruning, bad input, and several worker processes on one
study in SQLite and in a real PostgreSQL server (started here; see tests/pg_server.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, make_toy_expression
from gengen.cli import app
from gengen.errors import GengenError

runner = CliRunner()
FAST_GRID = {"lr": [0.003, 0.002, 0.001], "latent": [2, 3], "epochs": 4, "batch_size": 16}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def toy_h5ad(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweepdata") / "toy.h5ad"
    make_toy_expression().write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 for this module (skipped only without server binaries)."""
    from pg_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine; set PG_BINDIR to run these")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


def _space_file(tmp_path: Path, spec: dict, name: str = "space.toml") -> Path:
    lines = []
    for k, v in spec.items():
        if isinstance(v, list):
            lines.append(f"{k} = [{', '.join(json.dumps(x) for x in v)}]")
        elif isinstance(v, dict):
            lines.append(f"{k} = {{ {', '.join(f'{a} = {json.dumps(b)}' for a, b in v.items())} }}")
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _child(args: list[str], log_path: str) -> None:
    """A forked worker: `gengen sweep ARGS` with its output in ``log_path``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - pytest replaced the parent's
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.update(GENGEN_THREADS="1", GENGEN_NO_PROGRESS="1")
    # Ctrl-C as a terminal delivers it: a test run started in the background by a non-interactive shell
    # inherits SIGINT ignored, and the worker (rightly) ignored the Ctrl-C test's SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["gengen", "sweep", *args]
    from gengen.cli import main

    main()


def _worker(args: list[str], log_path: Path):
    """A worker process on the study. Forked from this (already imported) test process, so it starts in
    milliseconds instead of the seconds a fresh interpreter spends importing torch; it is still a
    separate process with its own database connections, pid and fate (benchmarks/sweep.py starts
    workers as fresh interpreters)."""
    import multiprocessing

    proc = multiprocessing.get_context("fork").Process(target=_child, args=(args, str(log_path)), daemon=True)
    proc.start()
    return proc


def _wait(procs, logs: list[Path], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for p, log in zip(procs, logs):
        p.join(timeout=max(1, deadline - time.monotonic()))
        if p.exitcode is None:
            p.kill()
            raise AssertionError(f"worker timed out:\n{log.read_text()}")
        assert p.exitcode == 0, log.read_text()


def _running_trial(url: str, study: str, proc, log: Path, timeout: float = 90):
    """The first trial ``proc`` is running that has reported two epochs (polling the database only once
    the worker has set the study up: a reader opening a fresh database would create its tables too)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        if "trials planned" in text:
            host = f":{proc.pid}"
            running = [t for t in _trials(url, study) if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2
                       and str(t.user_attrs.get("worker", "")).endswith(host)]
            if running:
                return running[0]
        assert proc.is_alive() and time.monotonic() < deadline, text
        time.sleep(0.1)


def _trials(url: str, study: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)


def _assert_exact(trials, n: int) -> None:
    """Exactly ``n`` complete trials, each a different parameter set."""
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == n, [(t.number, t.state.name, t.params) for t in trials]
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(keys)) == n, keys
    assert not [t for t in trials if t.state.name in ("WAITING", "RUNNING")]


# ------------------------------------------------------------------------------------------ spaces


def test_space_lists_ranges_fixed_and_grid():
    from gengen.sweep import build_space, get_pipeline

    pipe = get_pipeline("vae")
    s = build_space("vae", {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "latent": {"low": 5, "high": 25, "step": 10},
                            "batch_size": [50, 100], "epochs": 30, "kappa": [0.5]}, pipe.params)
    assert s.fixed == {"epochs": 30, "kappa": 0.5}
    assert s.dimensions["latent"].grid() == [5, 15, 25] and s.dimensions["lr"].grid() is None
    assert not s.is_discrete() and s.grid_size() is None
    with pytest.raises(GengenError, match="grid sampling needs discrete values, but lr is a continuous range"):
        s.grid()
    g = build_space("vae", {"latent": {"low": 2, "high": 4}, "gene_rank": ["median-ad", "variance"]}, pipe.params)
    assert g.grid() == [{"latent": a, "gene_rank": b} for a in (2, 3, 4) for b in ("median-ad", "variance")]
    lr = s.dimensions["lr"].distribution(grid_mode=False)
    assert lr.log and lr.low == 1e-4 and lr.high == 1e-2


@pytest.mark.parametrize("spec, needle", [
    ({"latnt": [2, 3], "lr": [1e-3]}, "unknown parameter(s) 'latnt'"),
    ({"lr": {"low": 0.01, "high": 0.001}}, "is empty (low is above high)"),
    ({"lr": []}, "is an empty list"),
    ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "must be > 0"),
    ({"kappa": {"low": 0.0, "high": 1.0, "log": True}}, "a log range needs low > 0"),
    ({"latent": [2, 2.5]}, "takes whole numbers"),
    ({"latent": {"low": 2, "high": 10, "step": 1.5}}, "its step must be too"),
    ({"latent": {"low": 2, "high": 4, "step": 5}}, "wider than the range"),
    ({"tybalt_compat": {"low": 0, "high": 1}}, "takes a list of values, not a range"),
    ({"gene_rank": ["median-ad", "bogus"]}, "must be one of median-ad, mean-ad, variance"),
    ({"epochs": 10}, "varies nothing"),
    ({}, "is empty"),
])
def test_space_errors_are_one_line(spec, needle):
    from gengen.sweep import build_space, get_pipeline

    with pytest.raises(GengenError) as err:
        build_space("vae", spec, get_pipeline("vae").params, name="s.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)
    if "unknown" in needle:  # lists the valid names
        assert "valid names: latent, lr, batch_size, epochs, kappa" in str(err.value)


def test_tybalt_builtin_grids_are_the_published_ones():
    from gengen.sweep import get_pipeline, resolve_space

    pipe = get_pipeline("vae")
    grid = resolve_space("vae", "tybalt", pipe.params, builtins=pipe.spaces).grid()
    assert len(grid) == 320
    assert sorted({g["lr"] for g in grid}) == [0.0005, 0.001, 0.0015, 0.002, 0.0025]
    assert sorted({g["batch_size"] for g in grid}) == [50, 100, 128, 200]
    assert sorted({g["epochs"] for g in grid}) == [10, 25, 50, 100]
    assert sorted({g["kappa"] for g in grid}) == [0.01, 0.05, 0.1, 1.0]
    z = resolve_space("vae", "tybalt-z", pipe.params, builtins=pipe.spaces).grid()
    assert len(z) == 540 and sorted({g["latent"] for g in z}) == [5, 25, 50, 75, 100, 125]
    assert len({tuple(sorted(g.items())) for g in z}) == 540


def test_space_file_round_trip(tmp_path):
    from gengen.sweep import get_pipeline, resolve_space

    pipe = get_pipeline("ggan")
    path = _space_file(tmp_path, {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "activation": ["tanh", "relu"],
                                  "linear_skip": [True, False], "epochs": 5})
    s = resolve_space("ggan", path, pipe.params, builtins=pipe.spaces)
    assert s.name == "space.toml" and s.fixed == {"epochs": 5}
    assert s.dimensions["activation"].values == ("tanh", "relu") and s.dimensions["lr"].log


# ------------------------------------------------------------------------------------------ trainer hooks


class Stop(Exception):
    pass


def test_trainers_call_on_epoch_and_let_its_exception_through():
    """Each trainer reports every epoch's validation metric; an exception from the callback (a pruning
    signal) propagates unchanged, and the thread count the trainer changed is restored."""
    import anndata as ad
    import torch

    from gengen.dna.predictor.training import PredictorRecipe, train_predictor
    from gengen.ggan import GGANModel, GGANRecipe
    from gengen.vae import VAEModel, VAERecipe

    toy = make_toy_expression()
    seen: list = []
    VAEModel.train(toy, VAERecipe(epochs=3, seed=0), device="cpu", quiet=True,
                   on_epoch=lambda e, row: seen.append((e, round(row["val_recon"], 6))))
    assert [e for e, _ in seen] == [1, 2, 3] and all(np.isfinite(v) for _, v in seen)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)).astype(np.float32) + 5
    Y = (X @ rng.standard_normal((5, 4))).astype(np.float32)
    g = ad.AnnData(np.c_[X, Y], obs=pd.DataFrame(index=[f"s{i}" for i in range(60)]),
                   var=pd.DataFrame(index=[f"L{i}" for i in range(5)] + [f"T{i}" for i in range(4)]))
    gseen: list = []
    m = GGANModel.train(g, [f"L{i}" for i in range(5)], recipe=GGANRecipe(hidden=8, d_hidden=8, epochs=3),
                        device="cpu", quiet=True, on_epoch=lambda e, row: gseen.append((e, row["val_mae"])))
    assert [e for e, _ in gseen] == [1, 2, 3]
    assert min(v for _, v in gseen) == pytest.approx(m.metrics["best_val_mae"], abs=1e-9)

    codes = rng.integers(0, 4, size=(200, 12)).astype(np.uint8)
    y = (codes == 2).sum(1) + rng.random(200)
    pseen: list = []
    train_predictor(codes, y, PredictorRecipe(channels=4, hidden=4, epochs=2), device="cpu", quiet=True,
                    baseline=False, on_epoch=lambda e, row: pseen.append((e, row["stop_pearson"])))
    assert [e for e, _ in pseen] == [1, 2]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        def stop(epoch, row):
            if epoch == 2:
                raise Stop(epoch)

        with pytest.raises(Stop):
            VAEModel.train(toy, VAERecipe(epochs=5), device="cpu", quiet=True, on_epoch=stop)
        assert torch.get_num_threads() == 2  # small_model_threads restored it on the way out
        with pytest.raises(Stop):
            GGANModel.train(g, [f"L{i}" for i in range(5)], recipe=GGANRecipe(hidden=8, d_hidden=8, epochs=5),
                            device="cpu", quiet=True, on_epoch=stop)
        with pytest.raises(Stop):
            train_predictor(codes, y, PredictorRecipe(channels=4, hidden=4, epochs=4), device="cpu", quiet=True,
                            baseline=False, on_epoch=stop)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ library runs


def test_vae_sweep_prunes_a_hopeless_configuration(tmp_path):
    """Two good learning rates finish; a learning rate of 1e-9 cannot learn and is stopped by the median
    pruner long before its 20th epoch. Its table row says where."""
    import optuna

    from gengen.sweep import ExpressionData, run_sweep

    toy = make_toy_expression()
    res = run_sweep("vae", ExpressionData(toy), tmp_path / "sw", space={"lr": [3e-3, 2e-3, 1e-9], "epochs": 20,
                                                                        "batch_size": 16},
                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2), quiet=True)
    t = res.table.set_index("trial")
    assert list(t["state"]) == ["complete", "complete", "pruned"]
    assert t.loc[2, "lr"] == 1e-9 and 2 <= t.loc[2, "epochs_run"] < 20
    assert t.loc[2, "note"] == f"pruned at epoch {t.loc[2, 'epochs_run']}"
    assert t.loc[0, "epochs_run"] == t.loc[1, "epochs_run"] == 20
    assert res.best["trial"] in (0, 1) and (tmp_path / "sw" / "best" / "config.json").is_file()


def test_ggan_and_predictor_sweeps_keep_the_best_by_their_own_metric(tmp_path):
    import anndata as ad

    from gengen.dna.predictor.predictors import load_predictor
    from gengen.ggan import GGANModel
    from gengen.sweep import LabelledSequences, ReferenceData, run_sweep

    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 6)).astype(np.float32) + 5
    Y = np.tanh(X - 5) @ rng.standard_normal((6, 5)).astype(np.float32)
    g = ad.AnnData(np.c_[X, Y].astype(np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(80)]),
                   var=pd.DataFrame(index=[f"L{i}" for i in range(6)] + [f"T{i}" for i in range(5)]))
    res = run_sweep("ggan", ReferenceData(g, [f"L{i}" for i in range(6)]), tmp_path / "g",
                    space={"hidden": [4, 16], "lr": [1e-3], "epochs": 4, "d_hidden": 8}, pruner="none", quiet=True)
    assert res.table["state"].tolist() == ["complete", "complete"]
    best = res.table.loc[res.table["val_mae"].idxmin()]
    assert res.best["trial"] == best["trial"]
    model = GGANModel.load(tmp_path / "g" / "best")
    assert model.metrics["best_val_mae"] == pytest.approx(best["val_mae"])

    codes = rng.integers(0, 4, size=(300, 12)).astype(np.uint8)
    y = np.exp(0.5 * (codes == 2).sum(1) + 0.1 * rng.random(300))
    res = run_sweep("predictor", LabelledSequences(codes, y), tmp_path / "p",
                    space={"channels": [2, 16], "epochs": 3, "hidden": 8}, pruner="none", quiet=True)
    top = res.table.loc[res.table["stop_pearson"].idxmax()]  # maximised
    assert res.best["trial"] == top["trial"] and "heldout_pearson" in res.table.columns
    _, cfg = load_predictor(tmp_path / "p" / "best")
    assert cfg["architecture"]["channels"] == top["channels"]


# ------------------------------------------------------------------------------------------ the command


def test_cli_sweep_writes_table_figure_best_model_and_registers(tmp_path, toy_h5ad, monkeypatch):
    from gengen.store import model_home
    from gengen.vae import VAEModel

    space = _space_file(tmp_path, {"latent": [2, 4], "epochs": 4, "batch_size": 16})
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(out), "--space", str(space), "--by", "group",
                              "--register", "toybest", "--pruner", "none"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "trials.csv")
    assert list(table.columns[:4]) == ["trial", "state", "val_recon", "latent"]
    assert {"knn_accuracy", "pca_knn_accuracy", "duration_s", "worker", "note"} <= set(table.columns)
    assert table["state"].tolist() == ["complete", "complete"] and table["worker"].str.contains(":").all()
    assert (out / "sweep.png").stat().st_size > 1000
    pca = pd.read_csv(out / "latent_vs_pca.tsv", sep="\t")
    assert pca["latent_size"].tolist() == [2, 4] and pca["pca_knn_accuracy"].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    best = table.loc[table["val_recon"].idxmin()]
    assert summary["best"]["trial"] == best["trial"] and summary["finished"] == summary["planned"] == 2
    m = VAEModel.load(out / "best")
    assert m.latent_dim == best["latent"]
    assert VAEModel.load("toybest").latent_dim == best["latent"]  # by name, from the model store
    assert (model_home() / "toybest" / "model.safetensors").is_file()
    assert "best: trial" in res.output and "latent size vs PCA" in res.output

    # the same command again joins the finished study: nothing more to run, same table
    again = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(out), "--space", str(space), "--by", "group"])
    assert again.exit_code == 0, again.output
    assert len(pd.read_csv(out / "trials.csv")) == 2 and "this worker ran 0" in again.output
    # more trials than planned needs --resume; a grid cannot grow past its size
    more = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(out), "--trials", "3", "--by", "group"])
    assert_one_line_error(more, "plans 2 trials; pass --resume to extend it to 3")
    more = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(out), "--trials", "3", "--resume", "--by", "group"])
    assert_one_line_error(more, "the grid has 2 points")


def test_cli_resume_extends_a_tpe_study(tmp_path, toy_h5ad):
    space = _space_file(tmp_path, {"lr": {"low": 1e-3, "high": 5e-3, "log": True}, "epochs": 2, "batch_size": 16})
    out = tmp_path / "tpe"
    base = ["sweep", "vae", str(toy_h5ad), "-o", str(out), "--space", str(space), "-q"]
    assert runner.invoke(app, base + ["--trials", "2"]).exit_code == 0
    missing = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(tmp_path / "none"), "--resume"])
    assert_one_line_error(missing, "--resume: there is no study 'vae'")
    res = runner.invoke(app, base + ["--trials", "3", "--resume"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 3 and (table["state"] == "complete").all() and table["lr"].between(1e-3, 5e-3).all()
    assert json.loads((out / "summary.json").read_text())["sampler"] == "tpe"


def test_cli_bad_input_fails_in_one_line_before_training(tmp_path, toy_h5ad):
    import socket

    out = tmp_path / "o"
    args = ["sweep", "vae", str(toy_h5ad), "-o", str(out)]
    bad = _space_file(tmp_path, {"lr": [1e-3, 2e-3], "latnt": [2, 3]}, "bad.toml")
    assert_one_line_error(runner.invoke(app, args + ["--space", str(bad)]), "unknown parameter(s) 'latnt'",
                          "valid names: latent, lr")
    empty = _space_file(tmp_path, {"lr": {"low": 0.01, "high": 0.001}}, "empty.toml")
    assert_one_line_error(runner.invoke(app, args + ["--space", str(empty)]), "is empty (low is above high)")
    assert_one_line_error(runner.invoke(app, args + ["--trials", "0"]), "--trials must be at least 1, got 0")
    assert_one_line_error(runner.invoke(app, args + ["--space", "nope"]), "unknown search space 'nope'")
    assert_one_line_error(runner.invoke(app, args + ["--sampler", "grid", "--space", "default"]),
                          "grid sampling needs discrete values")
    assert_one_line_error(runner.invoke(app, args + ["--storage", "sqlite:///x.db"]), "--storage needs --study NAME")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pg_out = tmp_path / "pg"
    res = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(pg_out), "--storage",
                              f"postgresql://me:secret@127.0.0.1:{port}/db", "--study", "x"])
    assert_one_line_error(res, f"cannot reach the database at 127.0.0.1:{port}")
    assert "secret" not in res.output and not pg_out.exists()  # nothing created
    (tmp_path / "user_files").mkdir()
    (tmp_path / "user_files" / "notes.txt").write_text("mine")
    assert_one_line_error(runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(tmp_path / "user_files")]),
                          "is not a gengen sweep folder")
    assert not out.exists()


def test_cli_study_of_another_pipeline_or_space_is_refused(tmp_path, toy_h5ad):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    space = _space_file(tmp_path, {"latent": [2, 3], "epochs": 2, "batch_size": 16})
    common = ["--storage", url, "--study", "s1", "-q"]
    ok = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(tmp_path / "a"), "--space", str(space), *common])
    assert ok.exit_code == 0, ok.output
    (tmp_path / "lm.txt").write_text("G0\nG1\n")
    res = runner.invoke(app, ["sweep", "ggan", str(toy_h5ad), "-o", str(tmp_path / "b"), "--landmarks",
                              str(tmp_path / "lm.txt"), *common])
    assert_one_line_error(res, "the study 's1'", "is a vae sweep, not ggan")
    other = _space_file(tmp_path, {"latent": [2, 5], "epochs": 2, "batch_size": 16}, "other.toml")
    res = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(tmp_path / "c"), "--space", str(other), *common])
    assert_one_line_error(res, "was created with another search space (latent in [2, 3]")
    res = runner.invoke(app, ["sweep", "vae", str(toy_h5ad), "-o", str(tmp_path / "c"), "--by", "group", *common])
    assert_one_line_error(res, "was created with other options (by: study None, here 'group')")
    shifted = make_toy_expression()
    shifted.X = shifted.X + 1.0  # same samples and genes, other values
    shifted.write_h5ad(tmp_path / "shifted.h5ad")
    res = runner.invoke(app, ["sweep", "vae", str(tmp_path / "shifted.h5ad"), "-o", str(tmp_path / "c"), *common])
    assert_one_line_error(res, "was created with other data (values: study")
    assert len(_trials(url, "s1")) == 2  # nothing trained by the refused commands


# ------------------------------------------------------------------------------------------ several workers


def _two_workers(tmp_path, toy_h5ad, extra: list[str], space: dict, n: int) -> list[Path]:
    spec = _space_file(tmp_path, space)
    args = ["vae", str(toy_h5ad), "-o", str(tmp_path / "sw"), "--space", str(spec), "--pruner", "none", *extra]
    logs = [tmp_path / f"w{i}.log" for i in range(2)]
    procs = [_worker(args, logs[i]) for i in range(2)]
    _wait(procs, logs)
    return logs


def test_two_workers_share_an_sqlite_study_exactly(tmp_path, toy_h5ad):
    logs = _two_workers(tmp_path, toy_h5ad, [], {**FAST_GRID, "epochs": 10}, 6)
    url = f"sqlite:///{tmp_path / 'sw' / 'study.db'}"
    trials = _trials(url, "vae")
    _assert_exact(trials, 6)
    assert len(trials) == 6
    ran = [int(log.read_text().split("this worker ran ")[1].split()[0]) for log in logs]
    assert sum(ran) == 6, ran


def test_two_workers_share_a_postgres_study_exactly(tmp_path, toy_h5ad, postgres):
    url = postgres.url()
    logs = _two_workers(tmp_path, toy_h5ad, ["--storage", url, "--study", "pg-two"], {**FAST_GRID, "epochs": 10}, 6)
    trials = _trials(url, "pg-two")
    _assert_exact(trials, 6)
    assert len(trials) == 6
    ran = [int(log.read_text().split("this worker ran ")[1].split()[0]) for log in logs]
    assert sum(ran) == 6, ran


def test_killed_worker_trial_is_failed_requeued_and_finished_once(tmp_path, toy_h5ad, postgres):
    """kill -9 one worker in the middle of a trial: its heartbeat stops, another worker marks that trial
    failed after three missed beats and runs the queued copy; the study still completes its 2 trials."""
    url = postgres.url()
    spec = _space_file(tmp_path, {"lr": [0.003, 0.002], "epochs": 120, "batch_size": 16})
    args = ["vae", str(toy_h5ad), "-o", str(tmp_path / "sw"), "--space", str(spec), "--pruner", "none",
            "--storage", url, "--study", "kill", "--heartbeat", "1"]
    victim = _worker(args, tmp_path / "victim.log")
    running = [_running_trial(url, "kill", victim, tmp_path / "victim.log")]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    killed = running[0].number
    survivor = _worker(args, tmp_path / "survivor.log")
    _wait([survivor], [tmp_path / "survivor.log"], timeout=150)
    trials = _trials(url, "kill")
    _assert_exact(trials, 2)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [killed] and "error" not in failed[0].user_attrs
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == failed[0].params
    table = pd.read_csv(tmp_path / "sw" / "trials.csv").set_index("trial")
    assert f"re-queued as trial {retry[0].number}" in table.loc[killed, "note"]
    assert table.loc[killed, "state"] == "fail"
    assert (tmp_path / "sw" / "best" / "config.json").is_file()  # written, or retrained if the victim held it


def test_grid_subset_is_seeded_and_extends_without_repeats(tmp_path):
    """A plan smaller than the grid takes a seeded subset (run in grid order); --resume with more trials
    adds grid points never run before, whatever order the joining worker wrote its space in."""
    from gengen.sweep import ExpressionData, run_sweep

    toy = make_toy_expression()
    space = {"latent": [2, 3, 4], "lr": [3e-3, 1e-3], "epochs": [2, 3], "batch_size": 16}  # 12 points
    first = run_sweep("vae", ExpressionData(toy), tmp_path / "g", space=space, trials=2, pruner="none", quiet=True)
    cols = ["latent", "lr", "epochs"]
    picked = first.table[cols].apply(tuple, axis=1).tolist()
    grid = [(a, b, c) for a in (2, 3, 4) for b in (3e-3, 1e-3) for c in (2, 3)]
    assert len(set(picked)) == 2 and picked == sorted(picked, key=grid.index)
    assert (first.table["epochs_run"] == first.table["epochs"]).all()  # a parameter named epochs is no clash
    reordered = {"lr": [3e-3, 1e-3], "epochs": [2, 3], "latent": [2, 3, 4], "batch_size": 16}
    more = run_sweep("vae", ExpressionData(toy), tmp_path / "g", space=reordered, trials=5, resume=True,
                     pruner="none", quiet=True)
    allp = more.table[cols].apply(tuple, axis=1).tolist()
    assert len(allp) == 5 and len(set(allp)) == 5 and allp[:2] == picked


def test_best_model_lost_with_its_worker_is_retrained_identically(tmp_path, monkeypatch):
    """Quick trials keep their model in memory until the worker stops; if that worker dies first, the
    outputs step trains the best configuration again (same seed, same numbers on the CPU)."""
    from gengen.sweep import ExpressionData, run_sweep
    from gengen.sweep import trial as sweep_trial
    from gengen.vae import VAEModel

    monkeypatch.setattr(sweep_trial._BestKeeper, "flush", lambda self: None)  # as if killed before writing
    toy = make_toy_expression()
    res = run_sweep("vae", ExpressionData(toy), tmp_path / "r", space={"latent": [2, 3], "epochs": 3, "batch_size": 16},
                    pruner="none", quiet=True)
    model = VAEModel.load(tmp_path / "r" / "best")
    best = res.table.loc[res.table["val_recon"].idxmin()]
    assert model.latent_dim == best["latent"]
    assert float(model.history["val_recon"].iloc[-1]) == pytest.approx(best["val_recon"], rel=1e-6)


def test_cli_ggan_and_predictor_sweeps_read_their_usual_inputs(tmp_path):
    import anndata as ad

    from dna_fixtures import PLANT, random_seqs, write_fa

    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 4)).astype(np.float32) + 5
    Y = np.tanh(X - 5) @ rng.standard_normal((4, 3)).astype(np.float32)
    names = [f"L{i}" for i in range(4)] + [f"T{i}" for i in range(3)]
    ad.AnnData(np.c_[X, Y].astype(np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(60)]),
               var=pd.DataFrame(index=names)).write_h5ad(tmp_path / "ref.h5ad")
    (tmp_path / "lm.txt").write_text("\n".join(names[:4]) + "\n")
    space = _space_file(tmp_path, {"hidden": [4, 8], "epochs": 3, "d_hidden": 4}, "g.toml")
    res = runner.invoke(app, ["sweep", "ggan", str(tmp_path / "ref.h5ad"), "--landmarks", str(tmp_path / "lm.txt"),
                              "-o", str(tmp_path / "g"), "--space", str(space), "-q"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "g" / "trials.csv")
    assert t["state"].tolist() == ["complete", "complete"] and t["val_mae"].gt(0).all()
    assert json.loads((tmp_path / "g" / "summary.json").read_text())["objective"] == "val_mae"

    seqs = random_seqs(300, 20, seed=3)
    has = rng.random(300) < 0.5
    seqs = [s[:5] + PLANT + s[5 + len(PLANT):] if h else s for s, h in zip(seqs, has)]
    write_fa(tmp_path / "p.fa", seqs)
    pd.DataFrame({"id": [f"s{i}" for i in range(300)], "signal": np.exp(2.0 * has + 0.3 * rng.random(300))}).to_csv(
        tmp_path / "scores.csv", index=False)
    space = _space_file(tmp_path, {"channels": [4, 16], "epochs": 5, "hidden": 16}, "p.toml")
    res = runner.invoke(app, ["sweep", "predictor", str(tmp_path / "p.fa"), "--scores", str(tmp_path / "scores.csv"),
                              "-o", str(tmp_path / "p"), "--space", str(space), "-q"])
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp_path / "p" / "trials.csv")
    assert len(t) == 2 and t["stop_pearson"].max() > 0.4 and (tmp_path / "p" / "best" / "config.json").is_file()
    bad = runner.invoke(app, ["sweep", "predictor", str(tmp_path / "p.fa"), "--scores", str(tmp_path / "scores.csv"),
                              "-o", str(tmp_path / "p2"), "--transform", "sqrt"])
    assert_one_line_error(bad, "--transform must be one of log, rank, none")


def test_ctrl_c_requeues_the_running_trial_at_once(tmp_path, toy_h5ad):
    spec = _space_file(tmp_path, {"lr": [0.003, 0.002], "epochs": 400, "batch_size": 16})
    out = tmp_path / "sw"
    worker = _worker(["vae", str(toy_h5ad), "-o", str(out), "--space", str(spec), "--pruner", "none"],
                     tmp_path / "w.log")
    url = f"sqlite:///{out / 'study.db'}"
    running = [_running_trial(url, "vae", worker, tmp_path / "w.log")]
    os.kill(worker.pid, signal.SIGINT)
    worker.join(30)
    assert worker.exitcode == 130, (tmp_path / "w.log").read_text()
    assert "gengen: interrupted" in (tmp_path / "w.log").read_text()
    trials = _trials(url, "vae")
    stopped = [t for t in trials if t.number == running[0].number][0]
    assert stopped.state.name == "FAIL" and stopped.user_attrs.get("interrupted")
    copy = [t for t in trials if t.user_attrs.get("retry_of") == stopped.number]
    assert len(copy) == 1 and copy[0].state.name == "WAITING" and copy[0].params == stopped.params


def test_a_configuration_that_keeps_killing_its_worker_is_given_up(tmp_path):
    import optuna

    from gengen.sweep.settings import MAX_ATTEMPTS
    from gengen.sweep.storage import _requeue
    from gengen.sweep.trial import finished_count

    st = optuna.create_study()
    dist = {"lr": optuna.distributions.CategoricalDistribution([0.1, 0.2])}
    lost = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"lr": 0.1}, distributions=dist,
                                     user_attrs={"attempt": 1})
    st.add_trial(lost)
    _requeue(st, st.get_trials()[0])
    again = st.get_trials()[1]
    assert again.state.name == "WAITING" and again.params == {"lr": 0.1} and again.user_attrs["attempt"] == 2
    last = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"lr": 0.1}, distributions=dist,
                                     user_attrs={"attempt": MAX_ATTEMPTS})
    st.add_trial(last)
    _requeue(st, st.get_trials()[2])
    final = st.get_trials()[3]
    assert final.state.name == "FAIL" and "not retried again" in final.user_attrs["error"]
    assert finished_count(st.get_trials()) == 1  # the given-up configuration counts once, as failed


# ------------------------------------------------------------------------------------------ large plans, lost databases


class _Deadline(Exception):
    pass


def _alarm(seconds: int):
    """Fail (instead of hanging) when a set-up that must be instant is not."""
    def ring(signum, frame):
        raise _Deadline(f"still setting up after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    return previous


def _disarm(previous) -> None:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_plan_of_a_billion_trials_is_queued_as_the_workers_go(tmp_path):
    """--trials 10^9 used to queue 10^9 trials before the first one trained: only a window is queued;
    the plan is a number in the study, and Ctrl-C still re-queues the running trial."""
    from gengen.sweep import ExpressionData, run_sweep
    from gengen.sweep.pipelines import VAEPipeline
    from gengen.sweep.settings import PLANNED_ATTR

    class StopsAtTheThird(VAEPipeline):
        calls = 0

        def train(self, data, values, **kw):
            StopsAtTheThird.calls += 1
            if StopsAtTheThird.calls == 3:
                raise KeyboardInterrupt
            return super().train(data, values, **kw)

    space = {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "epochs": 1, "batch_size": 16}
    previous = _alarm(60)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(StopsAtTheThird(), ExpressionData(make_toy_expression()), tmp_path / "big", space=space,
                      trials=10**9, quiet=True)
    finally:
        _disarm(previous)
    import optuna

    st = optuna.load_study(study_name="vae", storage=f"sqlite:///{tmp_path / 'big' / 'study.db'}")
    trials = st.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    assert st.user_attrs[PLANNED_ATTR] == 10**9
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1  # the interrupted one, re-queued
    assert len(trials) <= 64 + 1, len(trials)  # a window (QUEUE_AHEAD = 32) and the re-queued copy
    assert sorted(t.user_attrs["slot"] for t in trials if "retry_of" not in t.user_attrs) == list(range(len(trials) - 1))


def test_a_grid_of_1e10_points_is_counted_never_built(tmp_path):
    """The grid's size comes from its axes; without --trials it is refused at once, with --trials N a
    seeded subset of N distinct points runs, taken one index at a time."""
    from gengen.sweep import ExpressionData, build_space, get_pipeline, run_sweep

    space = {"lr": {"low": 0.001, "high": 0.1, "step": 0.001}, "kappa": {"low": 0.0, "high": 0.99, "step": 0.01},
             "beta": {"low": 0.01, "high": 1.0, "step": 0.01}, "latent": {"low": 2, "high": 101},
             "batch_size": {"low": 16, "high": 115}, "epochs": 1}
    toy = make_toy_expression()
    previous = _alarm(60)
    try:
        with pytest.raises(GengenError, match="the grid has 10,000,000,000 points; give --trials"):
            run_sweep("vae", ExpressionData(toy), tmp_path / "refused", space=space, quiet=True)
        assert not (tmp_path / "refused").exists()
        res = run_sweep("vae", ExpressionData(toy), tmp_path / "g", space=space, trials=3, quiet=True)
    finally:
        _disarm(previous)
    s = build_space("vae", space, get_pipeline("vae").params)
    assert s.grid_size() == 10**10
    assert s.point(0) == {"lr": 0.001, "kappa": 0.0, "beta": 0.01, "latent": 2, "batch_size": 16}
    assert s.point(10**10 - 1) == {"lr": 0.1, "kappa": 0.99, "beta": 1.0, "latent": 101, "batch_size": 115}
    assert s.point(101) == {"lr": 0.001, "kappa": 0.0, "beta": 0.01, "latent": 3, "batch_size": 17}
    assert (res.table["state"] == "complete").all() and len(res.table) == 3
    points = res.table[list(s.dimensions)].apply(tuple, axis=1)
    assert points.nunique() == 3


def test_grid_subsets_of_huge_grids_are_drawn_one_index_at_a_time():
    """The seeded permutation behind subsets of grids over a million points: a bijection of range(n),
    spread over the whole grid, the same for the same seed."""
    from gengen.sweep.plan import _grid_plan, _permuted

    for n in (1, 2, 7, 1000, 1025):
        assert sorted(_permuted(i, n, 5) for i in range(n)) == list(range(n))
    drawn = [_permuted(i, 10**10, 0) for i in range(2000)]
    assert len(set(drawn)) == 2000 and max(drawn) < 10**10 and max(drawn) > 10**9 and min(drawn) < 10**9
    assert list(_grid_plan(10**10, 5, 0)) == drawn[:5] != list(_grid_plan(10**10, 5, 1))
    assert list(_grid_plan(12, 20, 0)) == list(range(12))  # a plan covering the grid runs it in order
    small = list(_grid_plan(12, 5, 0))
    assert small == sorted(small) and len(set(small)) == 5  # small grids: a sorted subset (as before)


def test_latent_table_keeps_a_pruned_size_and_says_why(tmp_path, capsys):
    """sweep --space latent dropped a size whose only trial was pruned from latent_vs_pca.tsv: every
    size is a row, the pruned one with empty numbers and a status, and the log says so."""
    import optuna

    from gengen.sweep import ExpressionData, run_sweep

    class PrunesSizeFour(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.params.get("latent") == 4 and (trial.last_step or 0) >= 2

    toy = make_toy_expression()
    data = ExpressionData(toy, labels=toy.obs["group"].to_numpy(), by="group")
    res = run_sweep("vae", data, tmp_path / "lat", space={"latent": [2, 3, 4], "epochs": 5, "batch_size": 16},
                    pruner=PrunesSizeFour(), quiet=False)
    table = pd.read_csv(tmp_path / "lat" / "latent_vs_pca.tsv", sep="\t")
    assert table["latent_size"].tolist() == [2, 3, 4]
    assert table["status"].tolist() == ["complete", "complete", "pruned at epoch 2"]
    four = table.set_index("latent_size").loc[4]
    assert four["trials"] == 1 and np.isnan(four["vae_knn_accuracy"]) and np.isnan(four["pca_knn_accuracy"])
    assert table.loc[:1, "vae_knn_accuracy"].between(0, 1).all()
    err = capsys.readouterr().err
    assert "note: latent size 4 has no complete trial (pruned at epoch 2)" in err
    assert any("latent size 4" in n for n in res.notes)


def test_postgres_stopped_mid_sweep_is_one_line_and_the_next_run_redoes_the_trial(tmp_path, toy_h5ad, postgres):
    """The server stops (pg_ctl stop -m immediate) while a trial trains: the worker ends with one
    line saying the server went away and how to resume, no traceback; the same command once the
    server is back fails the interrupted trial, runs its copy and finishes the study exactly."""
    url = postgres.url()
    spec = _space_file(tmp_path, {"lr": [0.003, 0.002], "epochs": 150, "batch_size": 16})
    args = ["vae", str(toy_h5ad), "-o", str(tmp_path / "sw"), "--space", str(spec), "--pruner", "none",
            "--storage", url, "--study", "gone", "--heartbeat", "1"]
    first = _worker(args, tmp_path / "first.log")
    running = _running_trial(url, "gone", first, tmp_path / "first.log")
    halted = True
    postgres.halt()
    try:
        first.join(60)
        text = (tmp_path / "first.log").read_text()
        assert first.exitcode == 2, text
        assert "Traceback" not in text
        last = text.strip().splitlines()[-1]
        assert last.startswith("gengen: error: the database server at 127.0.0.1:"), text
        assert "went away" in last and f"during trial {running.number}" in last
        assert "run the same command again to resume" in last
        postgres.restart()
        halted = False
    finally:
        if halted:
            postgres.restart()
    second = _worker(args, tmp_path / "second.log")
    _wait([second], [tmp_path / "second.log"], timeout=150)
    trials = _trials(url, "gone")
    _assert_exact(trials, 2)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [running.number]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == running.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == running.params


def test_a_sweep_refused_while_setting_up_its_study_leaves_nothing(tmp_path, monkeypatch):
    """Check first, create last -- and a refusal at the very last step (here: the study cannot be
    created) removes the study file and every folder this run made; nothing like <db>.lock remains."""
    from gengen.sweep import ExpressionData, run_sweep
    from gengen.sweep import study as sweep_study

    def refuse(*args, **kwargs):
        raise GengenError("refused at the last step")

    monkeypatch.setattr(sweep_study, "_create_or_load", refuse)
    toy = make_toy_expression()
    for kw in ({}, {"storage": f"sqlite:///{tmp_path / 'db' / 'deep' / 's.db'}", "study": "s"}):
        with pytest.raises(GengenError, match="refused at the last step"):
            run_sweep("vae", ExpressionData(toy), tmp_path / "new" / "sw", space={"latent": [2, 3], "epochs": 1},
                      quiet=True, **kw)
        assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))
