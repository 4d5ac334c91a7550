"""Resumable training (issue 11): a run killed at any moment and continued with ``--resume`` ends with
the weights of an uninterrupted run, bit for bit, on the CPU at one thread.

The library tests stop a run in-process right after its N-th checkpoint (mid-epoch, at an epoch
boundary, in GGAN's refit) and resume it; the CLI tests SIGKILL real ``gengen vae-train`` /
``ggan-train`` processes at random moments, several times, and compare the final model.safetensors
tensors with an uninterrupted run's (``torch.equal``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import REPO, assert_one_line_error
from gengen import training_state
from gengen.cli import app
from gengen.errors import GengenError
from gengen.training_state import (
    STATE_NAME,
    Checkpointing,
    LoopState,
    TrainingCheckpoint,
    data_fingerprint,
    flatten_optimizer,
    restore_optimizer,
)

runner = CliRunner()
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "GENGEN_NO_PROGRESS": "1"}


def _same_tensors(a: Path, b: Path) -> bool:
    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return sorted(ta) == sorted(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)


class Interrupted(Exception):
    pass


def _stop_after_save(monkeypatch, n: int) -> None:
    """The run stops (as if killed) right after its ``n``-th checkpoint has landed."""
    real = TrainingCheckpoint.save

    def save(self, state, device, **kw):
        real(self, state, device, **kw)
        if self.saves == n:
            raise Interrupted(f"after save {n}: {state.phase} epoch {state.epoch} batch {state.batch}")

    monkeypatch.setattr(TrainingCheckpoint, "save", save)


# ------------------------------------------------------------------------------------- the pieces
@pytest.mark.parametrize("fused", [True, False])
def test_optimizer_state_round_trips_into_fresh_and_live_optimizers(fused):
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=fused) if fused else torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(8, 6)

    def step(o, module):
        o.zero_grad()
        module(x).pow(2).sum().backward()
        o.step()

    for _ in range(3):
        step(opt, net)
    flat, groups = flatten_optimizer("adam", opt)
    groups = json.loads(json.dumps(groups))  # as the checkpoint stores them: JSON, not pickle
    flat = {k: v.clone() for k, v in flat.items()}  # (state_dict hands out the live tensors)
    saved_weights = {k: v.clone() for k, v in net.state_dict().items()}
    step(opt, net)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for live in (False, True):  # into a fresh optimiser (load_state_dict), into one with state (in place)
        twin = torch.nn.Linear(6, 3)
        twin.load_state_dict(saved_weights)
        o2 = torch.optim.Adam(twin.parameters(), lr=1e-2, fused=fused) if fused else torch.optim.Adam(twin.parameters(), lr=1e-2)
        if live:
            step(o2, twin)  # builds state tensors of the right shapes, then overwritten in place
            twin.load_state_dict(saved_weights)
            held = [t for st in o2.state.values() for t in st.values()]
        restore_optimizer("adam", {k: v.clone() for k, v in flat.items()}, groups, opt=o2)
        if live:  # the very same tensors (a captured CUDA graph reads them)
            assert all(a is b for a, b in zip([t for st in o2.state.values() for t in st.values()], held, strict=True))
        step(o2, twin)
        assert all(torch.equal(expected[k], v) for k, v in twin.state_dict().items()), live


def test_loop_state_keeps_the_epoch_start_generator_mid_epoch():
    g = torch.Generator().manual_seed(5)
    state = LoopState({}, {}, {"perm": g})
    state.begin_epoch()
    first = torch.randperm(10, generator=g)
    state.batch = 3
    assert torch.equal(state.generator_states()["perm"], torch.Generator().manual_seed(5).get_state())
    replay = torch.Generator()
    replay.set_state(state.generator_states()["perm"])
    assert torch.equal(torch.randperm(10, generator=replay), first)
    state.end_epoch({"epoch": 1})
    assert state.batch == 0 and state.epoch == 1 and state.history == [{"epoch": 1}]
    assert torch.equal(state.generator_states()["perm"], g.get_state())  # at a boundary: as it is now


def test_fingerprint_sees_values_and_shapes(monkeypatch):
    x = np.arange(60, dtype=np.float32).reshape(12, 5)
    a = data_fingerprint(x, x[:2])
    assert a == data_fingerprint(x.copy(), x[:2].copy()) and not a["sampled"]
    y = x.copy()
    y[7, 3] += 1e-3
    assert data_fingerprint(y, x[:2])["sha256"] != a["sha256"]
    assert data_fingerprint(x[:, :4], x[:2])["shapes"] == [[12, 4], [2, 5]]
    monkeypatch.setattr(training_state, "FINGERPRINT_BYTES", 64)  # big data: strided rows
    assert data_fingerprint(x)["sampled"]


def test_intervals_must_be_positive():
    for every, minutes in ((0, None), (-2, None), (None, 0.0), (None, -1.0), (None, float("nan"))):
        with pytest.raises(GengenError, match="must be a positive"):
            Checkpointing("m", every=every, minutes=minutes).validate()


# ------------------------------------------------------------------------------------- library resume
VAE_TINY = {"latent_dim": 3, "epochs": 6, "batch_size": 16, "seed": 3}


def _vae(adata, folder, resume=False, **kw):
    from gengen.vae import VAEModel, VAERecipe

    plan = Checkpointing(folder, resume=resume, every=kw.pop("every", 1), minutes=kw.pop("minutes", None))
    return VAEModel.train(adata, VAERecipe(**VAE_TINY) if not resume else None, device="cpu", quiet=True,
                          checkpoint=plan)


@pytest.mark.parametrize("stop_after", [2, 9, 14])
def test_vae_resumed_after_any_checkpoint_is_bit_identical(toy_expression, tmp_path, monkeypatch, stop_after):
    """Saves after every batch (minutes ~ 0) and at every epoch's end (108 training samples, batch 16:
    7 batches an epoch): saves 2, 9 and 14 are mid-epoch in epochs 1 and 2, and after its last batch."""
    full = _vae(toy_expression, tmp_path / "full")
    with monkeypatch.context() as m:
        _stop_after_save(m, stop_after)
        with pytest.raises(Interrupted):
            _vae(toy_expression, tmp_path / "cut", minutes=1e-9)
    section = json.loads((tmp_path / "cut" / "config.json").read_text())["training"]
    assert section["complete"] is False and (tmp_path / "cut" / STATE_NAME).is_file()
    resumed = _vae(toy_expression, tmp_path / "cut", resume=True, minutes=1e-9)
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    pd.testing.assert_frame_equal(full.history, resumed.history)
    assert not (tmp_path / "cut" / STATE_NAME).exists()  # a finished run drops the optimiser state
    cfg = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert cfg["training"]["complete"] is True and cfg["cpu_threads"] == 1
    assert cfg["recipe"] == json.loads((tmp_path / "full" / "config.json").read_text())["recipe"]


def test_small_cohort_vae_resumes_bit_identical_with_its_calibrated_beta_and_latent_map(toy_expression, tmp_path,
                                                                                         monkeypatch):
    """40 samples < 60 genes: the small-cohort regime calibrates beta after the resume check (the check
    compared the checkpoint's calibrated beta with None and refused every resume); a mid-training
    checkpoint embeds through the latent map of its weights, as the finished model does."""
    from gengen.vae import VAEModel, VAERecipe

    small = toy_expression[:40].copy()
    plain = VAEModel.train(small, VAERecipe(**VAE_TINY), device="cpu", quiet=True)
    assert plain.recipe.regime == "small" and 0 < plain.recipe.beta_max < 1
    with monkeypatch.context() as m:
        _stop_after_save(m, 4)  # mid-epoch 2 (3 batches an epoch)
        with pytest.raises(Interrupted):
            _vae(small, tmp_path / "cut", minutes=1e-9)
    mid = VAEModel.load(tmp_path / "cut", device="cpu")
    assert mid.latent_map is not None
    z = mid.module.encode_mean(torch.as_tensor(mid.scaler.transform(mid.align(small)))).detach().double().numpy()
    np.testing.assert_allclose(mid.encode(small), z @ mid.latent_map, rtol=1e-5, atol=1e-6)
    resumed = _vae(small, tmp_path / "cut", resume=True, minutes=1e-9)
    assert resumed.recipe.beta_max == plain.recipe.beta_max and resumed.recipe.notes == plain.recipe.notes
    assert all(torch.equal(v, resumed.module.state_dict()[k]) for k, v in plain.module.state_dict().items())
    np.testing.assert_array_equal(resumed.latent_map, plain.latent_map)
    pd.testing.assert_frame_equal(plain.history, resumed.history)


def test_unfinished_vae_checkpoint_is_a_model_that_says_so(toy_expression, tmp_path, monkeypatch, capsys):
    from gengen.vae import VAEModel

    with monkeypatch.context() as m:
        _stop_after_save(m, 3)
        with pytest.raises(Interrupted):
            _vae(toy_expression, tmp_path / "cut")
    capsys.readouterr()
    model = VAEModel.load(tmp_path / "cut", device="cpu")
    note = capsys.readouterr().err
    assert "unfinished training run" in note and "vae-train --resume" in note
    z = model.encode(toy_expression)
    assert z.shape == (120, 3) and np.isfinite(z).all()
    assert model.metrics["epochs_run"] == 3 and len(model.history) == 3


def test_vae_resume_refuses_other_data_and_other_settings(toy_expression, tmp_path, monkeypatch):
    from gengen.vae import VAEModel, VAERecipe

    with monkeypatch.context() as m:
        _stop_after_save(m, 2)
        with pytest.raises(Interrupted):
            _vae(toy_expression, tmp_path / "cut")
    other = toy_expression.copy()
    other.X[5, 5] += 1.0
    with pytest.raises(GengenError, match="training data differ"):
        _vae(other, tmp_path / "cut", resume=True)
    plan = Checkpointing(tmp_path / "cut", resume=True)
    with pytest.raises(GengenError, match=r"epochs 9 \(checkpoint: 6\)"):
        VAEModel.train(toy_expression, VAERecipe(**{**VAE_TINY, "epochs": 9}), device="cpu", quiet=True, checkpoint=plan)
    # the same settings given explicitly (or resolved the same) are fine
    VAEModel.train(toy_expression, VAERecipe(**VAE_TINY), device="cpu", quiet=True, checkpoint=plan)
    with pytest.raises(GengenError, match="no checkpoint"):
        _vae(toy_expression, tmp_path / "nothing", resume=True)


def _ggan(ref, folder, resume=False, minutes=None):
    from gengen.ggan import GGANModel, GGANRecipe

    recipe = GGANRecipe(hidden=16, layers=2, d_hidden=8, epochs=5, batch_size=20, ridge_init=False, refit=True,
                        patience=3, seed=2)
    X = ref[["LM0", "LM1", "LM2", "LM3"]].to_numpy(np.float32)
    Y = ref[["TG0", "TG1", "TG2"]].to_numpy(np.float32)
    return GGANModel.train_arrays(X, Y, landmarks=["LM0", "LM1", "LM2", "LM3"], targets=["TG0", "TG1", "TG2"],
                                  recipe=None if resume else recipe,
                                  device="cpu", quiet=True,
                                  checkpoint=Checkpointing(folder, resume=resume, every=1, minutes=minutes))


@pytest.fixture
def reference():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((70, 4))
    Y = np.tanh(X @ rng.standard_normal((4, 3))) + 0.1 * rng.standard_normal((70, 3))
    return pd.DataFrame(np.c_[X, Y], columns=["LM0", "LM1", "LM2", "LM3", "TG0", "TG1", "TG2"])


@pytest.mark.parametrize("stop_after", [6, 20, 30])
def test_ggan_resumed_in_training_or_refit_is_bit_identical(reference, tmp_path, monkeypatch, stop_after):
    """56 training profiles, batch 20: 3 batches an epoch, a save after each and one at each epoch's
    end; 5 epochs, then the refit on all 70 profiles: save 6 is mid-epoch in training, 20 the one made
    once the epoch is chosen, 30 mid-epoch in the refit."""
    full = _ggan(reference, tmp_path / "full", minutes=1e-9)
    with monkeypatch.context() as m:
        _stop_after_save(m, stop_after)
        with pytest.raises(Interrupted) as info:
            _ggan(reference, tmp_path / "cut", minutes=1e-9)
    resumed = _ggan(reference, tmp_path / "cut", resume=True, minutes=1e-9)
    assert _same_tensors(tmp_path / "full", tmp_path / "cut"), str(info.value)
    assert resumed.metrics["best_epoch"] == full.metrics["best_epoch"] == 5 and full.metrics["refit"]
    pd.testing.assert_frame_equal(full.history, resumed.history)
    assert resumed.recipe.notes == full.recipe.notes


def _labelled_sequences(n: int = 160, length: int = 16, seed: int = 0):
    """Random sequences whose label counts GATA on both strands, plus noise."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    text = ["".join("ACGT"[c] for c in row) for row in codes]
    y = np.array([t.count("GAT") + t.count("ATC") for t in text], dtype=np.float64) + 0.1 * rng.random(n)
    return codes, text, y


def _predictor(codes, y, folder, resume=False, minutes=None):
    from gengen.dna.predictor.training import PredictorRecipe, train_predictor

    recipe = PredictorRecipe(channels=6, width=5, hidden=8, epochs=4, batch_size=32, seed=4)
    return train_predictor(codes, y, None if resume else recipe, device="cpu", quiet=True, baseline=False,
                           checkpoint=Checkpointing(folder, resume=resume, every=1, minutes=minutes))


@pytest.mark.parametrize("stop_after", [2, 5, 9])
def test_predictor_resumed_after_any_checkpoint_is_bit_identical(tmp_path, monkeypatch, stop_after):
    """128 training sequences, batch 32: 4 batches an epoch, a save after each and one at each epoch's
    end (5 an epoch): save 2 is mid-epoch 1, 5 the end of epoch 1 (the first early-stopping best),
    9 the last batch of epoch 2, before its evaluation."""
    codes, _, y = _labelled_sequences()
    full = _predictor(codes, y, tmp_path / "full", minutes=1e-9)
    with monkeypatch.context() as m:
        _stop_after_save(m, stop_after)
        with pytest.raises(Interrupted):
            _predictor(codes, y, tmp_path / "cut", minutes=1e-9)
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["training"]["complete"] is False
    resumed = _predictor(codes, y, tmp_path / "cut", resume=True, minutes=1e-9)
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    pd.testing.assert_frame_equal(full.history, resumed.history)
    assert resumed.metrics["best_epoch"] == full.metrics["best_epoch"]
    assert resumed.metrics["val_pearson"] == full.metrics["val_pearson"]
    assert resumed.recipe.notes == full.recipe.notes and len(full.recipe.notes) == 2  # members, flanks: once each
    assert not (tmp_path / "cut" / STATE_NAME).exists()
    cfg = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert cfg["training"]["complete"] is True and cfg["cpu_threads"] == 1
    again = _predictor(codes, y, tmp_path / "cut", resume=True)  # finished: the saved model, as it is
    assert again.metrics["val_pearson"] == full.metrics["val_pearson"] and len(again.history) == 4


def test_unfinished_predictor_checkpoint_loads_and_refuses_other_data(tmp_path, monkeypatch, capsys):
    from gengen.dna.predictor.predictors import load_predictor

    codes, _, y = _labelled_sequences()
    with monkeypatch.context() as m:
        _stop_after_save(m, 7)
        with pytest.raises(Interrupted):
            _predictor(codes, y, tmp_path / "cut", minutes=1e-9)
    capsys.readouterr()
    model, cfg = load_predictor(tmp_path / "cut")
    assert "dna-train-predictor --resume" in capsys.readouterr().err
    assert cfg["metrics"]["epochs_run"] == 1 and cfg["metrics"]["best_epoch"] == 1 and cfg["length"] == 16
    y2 = y.copy()
    y2[3] += 1.0
    with pytest.raises(GengenError, match="training data differ"):
        _predictor(codes, y2, tmp_path / "cut", resume=True)
    from gengen.dna.predictor.training import PredictorRecipe, train_predictor

    with pytest.raises(GengenError, match=r"epochs 6 \(checkpoint: 4\)"):
        train_predictor(codes, y, PredictorRecipe(channels=6, width=5, hidden=8, epochs=6, batch_size=32, seed=4),
                        device="cpu", quiet=True, checkpoint=Checkpointing(tmp_path / "cut", resume=True))


GAN_TINY = {"length": 12, "channels": 4, "blocks": 1, "batch_size": 8, "critic_steps": 2, "iterations": 6,
            "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "seed": 5}


def _gan(codes, folder, resume=False, **kw):
    from gengen.dna import GANModel, GANRecipe

    recipe = GANRecipe(**{**GAN_TINY, **kw})
    return GANModel.train(codes[:200], recipe, "cpu", heldout_codes=codes[200:], quiet=True,
                          checkpoint=Checkpointing(folder, resume=resume))


def _gan_history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns="seconds")


def test_dna_gan_resumed_after_a_checkpoint_is_bit_identical(tmp_path, monkeypatch, capsys):
    """dna-train's state lives in its model file (critic, optimisers, RNG, best generator): a run stopped
    right after its 2nd checkpoint (iteration 4 of 6) and resumed ends as an uninterrupted one."""
    from gengen.dna import GANModel

    codes = np.random.default_rng(3).integers(0, 4, (260, 12)).astype(np.uint8)
    full = _gan(codes, tmp_path / "full")
    stop_after = 2
    with monkeypatch.context() as m:
        _stop_after_save(m, stop_after)
        with pytest.raises(Interrupted):
            _gan(codes, tmp_path / "cut")
    section = json.loads((tmp_path / "cut" / "config.json").read_text())["training"]
    assert section["complete"] is False and section["epoch"] == 2 * stop_after and section["unit"] == "iteration"
    assert not (tmp_path / "cut" / STATE_NAME).exists()  # the model file holds the state
    capsys.readouterr()
    assert GANModel.load(tmp_path / "cut").iteration <= 2 * stop_after  # a working model meanwhile
    assert f"stopped at iteration {2 * stop_after} of 6" in capsys.readouterr().err
    resumed = _gan(codes, tmp_path / "cut", resume=True)
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    pd.testing.assert_frame_equal(_gan_history(tmp_path / "full"), _gan_history(tmp_path / "cut"), check_exact=False,
                                  rtol=1e-12)  # history.csv is read back and rewritten: the last digit may move
    assert resumed.metrics["best_iteration"] == full.metrics["best_iteration"]
    assert (tmp_path / "full" / "samples.fa").read_bytes() == (tmp_path / "cut" / "samples.fa").read_bytes()
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["training"]["complete"] is True
    again = GANModel.train(codes[:200], None, "cpu", heldout_codes=codes[200:],  # recipe=None: the checkpoint's
                           checkpoint=Checkpointing(tmp_path / "cut", resume=True))
    assert again.recipe.channels == 4 and again.last.iteration == 6
    longer = _gan(codes, tmp_path / "cut", resume=True, iterations=8)  # a finished run trains on when asked
    assert longer.last.iteration == 8
    with pytest.raises(GengenError, match="training data differ"):
        _gan(codes[::-1].copy(), tmp_path / "cut", resume=True, iterations=8)
    with pytest.raises(GengenError, match="the checkpoint has channels 4, but 6 was asked for"):
        _gan(codes, tmp_path / "cut", resume=True, channels=6)


def test_dna_gan_folder_from_before_the_training_section_resumes(tmp_path, monkeypatch):
    """An unfinished dna-train folder written before the training section (the same model file, no
    section) resumes bit-identically too; having recorded no data fingerprint, its data are not checked."""
    codes = np.random.default_rng(3).integers(0, 4, (260, 12)).astype(np.uint8)
    _gan(codes, tmp_path / "full")
    with monkeypatch.context() as m:
        _stop_after_save(m, 1)
        with pytest.raises(Interrupted):
            _gan(codes, tmp_path / "cut")
    cfg_path = tmp_path / "cut" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["training"]
    cfg_path.write_text(json.dumps(cfg))
    _gan(codes, tmp_path / "cut", resume=True)
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")


def test_completed_run_resumes_to_itself(toy_expression, tmp_path, capsys):
    model = _vae(toy_expression, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    again = _vae(toy_expression, tmp_path / "m", resume=True)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert np.array_equal(model.encode(toy_expression), again.encode(toy_expression))


def test_epoch_rule_is_throttled_by_the_save_cost(tmp_path):
    ck = TrainingCheckpoint(Checkpointing(tmp_path / "m"), "vae")
    saved = []
    ck.save = lambda state, device: saved.append(state.epoch)  # type: ignore[method-assign]
    state = LoopState({}, {})
    ck._last_cost = 10.0  # a save that took 10 s: the next epoch-rule save waits 200 s
    for _ in range(25):
        state.end_epoch()
        ck.after_epoch(state, "cpu")
    assert saved == []
    ck._last_cost, ck._last = 0.0, 0.0
    ck._last_epoch = state.epoch
    ck.seconds = 1e9
    for _ in range(10):
        state.end_epoch()
        ck.after_epoch(state, "cpu")
    assert saved == [35]  # every 10 epochs by default
    ck.after_epoch(state, "cpu", last=True)  # the final save follows anyway
    assert saved == [35]


# ------------------------------------------------------------------------------------- real kills
def _write_expression(path: Path, n: int = 200, g: int = 40) -> None:
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, 3))
    X = 6 + f @ rng.standard_normal((3, g)) + 0.3 * rng.standard_normal((n, g))
    pd.DataFrame(X.astype(np.float32), index=[f"s{i}" for i in range(n)], columns=[f"G{j}" for j in range(g)]).to_csv(path)


def _section(cfg: Path) -> dict:
    try:
        return json.loads(cfg.read_text()).get("training") or {}
    except (OSError, ValueError):
        return {}


def _kill_and_resume(cmd: list[str], out: Path, kills: int, seed: int, phase: str = "train") -> list[str]:
    """Run ``gengen *cmd``; each time a new checkpoint of ``phase`` lands, SIGKILL the process after a
    random delay (0-0.4 s: mid-step, mid-save or mid-epoch), ``kills`` times, resuming after each; let
    the last run finish. Returns where each kill found the checkpoint."""
    rng = random.Random(seed)
    where: list[str] = []
    cfg = out / "config.json"
    while True:
        args = [sys.executable, "-c", "from gengen.cli import main; main()", *cmd] + (["--resume"] if where else [])
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        before = cfg.stat().st_mtime_ns if cfg.exists() else 0
        deadline = time.monotonic() + 120

        def waiting(before: int = before) -> bool:
            if not cfg.exists() or cfg.stat().st_mtime_ns == before:
                return True
            return _section(cfg).get("phase") != phase

        while proc.poll() is None and waiting() and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None and len(where) < kills:
            time.sleep(rng.uniform(0, 0.4))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                s = json.loads(cfg.read_text())["training"]
                where.append("complete" if s["complete"] else f"{s['phase']} epoch {s['epoch']} batch {s['batch']}")
                continue
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return where


def test_vae_train_killed_repeatedly_ends_bit_identical(tmp_path):
    data = tmp_path / "d.csv"
    _write_expression(data)
    opts = ["--latent", "4", "--epochs", "45", "--batch-size", "4", "--seed", "1", "--threads", "1", "--device", "cpu", "-q"]
    ref = runner.invoke(app, ["vae-train", str(data), "-o", str(tmp_path / "full"), *opts])
    assert ref.exit_code == 0, ref.output
    where = _kill_and_resume(["vae-train", str(data), "-o", str(tmp_path / "cut"), *opts, "--checkpoint-every", "1",
                              "--checkpoint-minutes", "0.0005"], tmp_path / "cut", kills=3, seed=11)
    print("vae-train kills after checkpoints at:", where)
    assert len(where) == 3 and "complete" not in where
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    assert (tmp_path / "full" / "history.csv").read_bytes() == (tmp_path / "cut" / "history.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "d.csv", "full"]  # no temporaries, no locks left


def test_ggan_train_killed_in_its_refit_ends_bit_identical(tmp_path):
    ref = tmp_path / "ref.csv"
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 5))
    Y = 5 + np.tanh(X @ rng.standard_normal((5, 6))) + 0.05 * rng.standard_normal((100, 6))
    pd.DataFrame(np.c_[X + 7, Y].astype(np.float32), index=[f"r{i}" for i in range(100)],
                 columns=[f"LM{i}" for i in range(5)] + [f"TG{i}" for i in range(6)]).to_csv(ref)
    (tmp_path / "lm.txt").write_text("\n".join(f"LM{i}" for i in range(5)) + "\n")
    opts = ["--landmarks", str(tmp_path / "lm.txt"), "--hidden", "32", "--epochs", "25", "--batch-size", "16",
            "--no-ridge-init", "--refit", "--patience", "4", "--threads", "1", "--device", "cpu", "-q"]
    full = runner.invoke(app, ["ggan-train", str(ref), "-o", str(tmp_path / "full"), *opts])
    assert full.exit_code == 0, full.output
    where = _kill_and_resume(["ggan-train", str(ref), "-o", str(tmp_path / "cut"), *opts, "--checkpoint-every", "1"],
                             tmp_path / "cut", kills=1, seed=5, phase="refit")
    print("ggan-train kill after the checkpoint at:", where)
    assert len(where) == 1 and where[0].startswith("refit")  # phase one's result and the refit both resumed
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")


def test_dna_train_predictor_killed_repeatedly_ends_bit_identical(tmp_path):
    _, text, y = _labelled_sequences(n=600, length=20, seed=2)
    data, scores = tmp_path / "p.fa", tmp_path / "p.csv"
    data.write_text("".join(f">q{i}\n{t}\n" for i, t in enumerate(text)))
    pd.DataFrame({"id": [f"q{i}" for i in range(len(y))], "signal": y}).to_csv(scores, index=False)
    opts = ["--scores", str(scores), "--epochs", "6", "--no-baseline", "--seed", "3", "--threads", "1", "--device", "cpu",
            "-q"]
    ref = runner.invoke(app, ["dna-train-predictor", str(data), "-o", str(tmp_path / "full"), *opts])
    assert ref.exit_code == 0, ref.output
    t = time.perf_counter()
    where = _kill_and_resume(["dna-train-predictor", str(data), "-o", str(tmp_path / "cut"), *opts,
                              "--checkpoint-every", "1", "--checkpoint-minutes", "0.0005"], tmp_path / "cut", kills=3, seed=7)
    print(f"dna-train-predictor kills after checkpoints at: {where}; {time.perf_counter() - t:.1f} s with the resumes")
    assert len(where) == 3 and "complete" not in where
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    assert (tmp_path / "full" / "history.csv").read_bytes() == (tmp_path / "cut" / "history.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "full", "p.csv", "p.fa"]


def test_dna_train_killed_repeatedly_ends_bit_identical(tmp_path):
    rng = np.random.default_rng(4)
    data = tmp_path / "t.fa"
    data.write_text("".join(f">r{i}\n" + "".join(rng.choice(list("ACGT"), 120)) + "\n" for i in range(40)))
    opts = ["--length", "12", "--iterations", "24", "--channels", "4", "--batch-size", "8", "--critic-steps", "2",
            "--sample-every", "4", "--seed", "2", "--threads", "1", "--device", "cpu", "-q"]
    ref = runner.invoke(app, ["dna-train", str(data), "-o", str(tmp_path / "full"), *opts])
    assert ref.exit_code == 0, ref.output
    t = time.perf_counter()
    where = _kill_and_resume(["dna-train", str(data), "-o", str(tmp_path / "cut"), *opts], tmp_path / "cut", kills=2,
                             seed=3)
    print(f"dna-train kills after checkpoints at: {where}; {time.perf_counter() - t:.1f} s with the resumes")
    assert len(where) == 2 and "complete" not in where
    assert _same_tensors(tmp_path / "full", tmp_path / "cut")
    assert (tmp_path / "full" / "samples.fa").read_bytes() == (tmp_path / "cut" / "samples.fa").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "full", "t.fa"]


# ------------------------------------------------------------------------------------- the CLI
def test_cli_resume_takes_the_runs_options_and_refuses_others(tmp_path, monkeypatch):
    data = tmp_path / "d.csv"
    _write_expression(data, n=60, g=12)
    base = ["vae-train", str(data), "-o", str(tmp_path / "m"), "--device", "cpu", "-q"]
    with monkeypatch.context() as m:
        _stop_after_save(m, 2)
        res = runner.invoke(app, [*base, "--latent", "2", "--epochs", "5", "--batch-size", "9", "--checkpoint-every", "1"])
        assert isinstance(res.exception, Interrupted)
    assert_one_line_error(runner.invoke(app, [*base, "--resume", "--epochs", "7"]), "epochs 7 (checkpoint: 5)")
    res = runner.invoke(app, [*base, "--resume"])  # options left out: the run's
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["recipe"]["epochs"] == 5 and cfg["recipe"]["latent_dim"] == 2 and cfg["training"]["complete"]
    assert_one_line_error(runner.invoke(app, ["vae-train", str(data), "--resume", "-q"]), "name it with -o")
    assert_one_line_error(runner.invoke(app, [*base, "--checkpoint-every", "0"]), "--checkpoint-every must be a positive")
