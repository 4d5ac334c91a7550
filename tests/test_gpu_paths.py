"""The switches and CPU-side pieces of the GPU paths (CUDA graphs, bf16 autocast, device-side output
scaling). The captured paths themselves need a GPU: `benchmarks/gpu_suite.py` runs and checks them
there (figures in docs/benchmarks.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from gengen import runtime
from gengen.errors import GengenError


def test_cuda_graphs_wanted_only_on_cuda_and_env_switch(monkeypatch):
    assert runtime.cuda_graphs_wanted(torch.device("cpu")) is False
    monkeypatch.delenv("GENGEN_CUDA_GRAPHS", raising=False)
    assert runtime.cuda_graphs_wanted(torch.device("cuda")) is True
    for off in ("0", "no", "off", "False"):
        monkeypatch.setenv("GENGEN_CUDA_GRAPHS", off)
        assert runtime.cuda_graphs_wanted(torch.device("cuda")) is False
    # an explicit request wins over the environment, but never puts graphs on the CPU
    assert runtime.cuda_graphs_wanted(torch.device("cuda"), True) is True
    assert runtime.cuda_graphs_wanted(torch.device("cpu"), True) is False


def test_resolve_precision_and_autocast():
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert runtime.resolve_precision("BF16", cpu) == "bf16"
    assert runtime.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(GengenError, match="unknown precision"):
        runtime.resolve_precision("fp8", cpu)
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with runtime.autocast("bf16", cpu):
        assert lin(x).dtype == torch.bfloat16
    with runtime.autocast("fp32", cpu):
        assert lin(x).dtype == torch.float32


def test_make_capturable_moves_step_counters():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    opt.state[p]["step"] = torch.tensor(7, dtype=torch.int64)  # as an older checkpoint may hold it
    runtime.make_capturable(opt, "meta")  # a device other than the counter's ("cuda" where there is one)
    assert all(g["capturable"] for g in opt.param_groups)
    step = opt.state[p]["step"]
    assert step.device.type == "meta" and step.dtype == torch.float32


def test_on_device_is_a_no_op_off_cuda():
    with runtime.on_device("cpu"):
        assert torch.ones(1).device.type == "cpu"


def test_fit_vae_asked_for_graphs_on_cpu_trains_eagerly():
    from gengen.vae.model import TybaltVAE
    from gengen.vae.train import VAERecipe, fit_vae

    x = np.random.default_rng(0).random((60, 20)).astype(np.float32)
    torch.manual_seed(0)
    a = TybaltVAE(20, 4)
    torch.manual_seed(0)
    b = TybaltVAE(20, 4)
    r = VAERecipe(latent_dim=4, epochs=3, batch_size=16, seed=0)
    torch.manual_seed(1)
    ha = fit_vae(a, x, None, recipe=r, device=torch.device("cpu"), quiet=True, cuda_graphs=True)
    torch.manual_seed(1)
    hb = fit_vae(b, x, None, recipe=r, device=torch.device("cpu"), quiet=True, cuda_graphs=False)
    assert ha.attrs["cuda_graphs"] is False and hb.attrs["cuda_graphs"] is False
    assert np.allclose(ha["train_loss"], hb["train_loss"])


def test_wgan_iteration_callable_is_eager_on_cpu_and_saved_groups_are_not_capturable(tmp_path):
    from gengen.dna.gan.train import GANRecipe, make_iteration
    from gengen.dna.gan.train import new_nets as _new_state
    from gengen.training_state import flatten_optimizer as _flatten_opt

    recipe = GANRecipe(length=12, channels=4, blocks=1, batch_size=8, critic_steps=2)
    state = _new_state(recipe, torch.device("cpu"))
    data = torch.as_tensor(np.random.default_rng(0).integers(0, 4, (40, 12)).astype(np.uint8))
    step = make_iteration(state, data, recipe, cuda_graphs=True)
    losses = [torch.stack(step()) for _ in range(4)]
    assert all(torch.isfinite(v).all() for v in losses)
    assert not getattr(step, "uses_graph", lambda: False)()
    # a GPU run steps with capturable=True; that must not travel into a checkpoint resumed on the CPU
    for group in state.opt_d.param_groups:
        group["capturable"] = True
    _, groups = _flatten_opt("opt_d", state.opt_d)
    assert groups and not any(g["capturable"] for g in groups)
    json.dumps(groups)  # written to config.json


def _ggan_data(n=400, n_x=10, n_y=14, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_x)).astype(np.float32)
    Y = np.tanh(X @ rng.standard_normal((n_x, n_y)).astype(np.float32) / 3)
    return X, Y.astype(np.float32)


def test_ggan_trains_under_bf16_autocast_and_reports_precision():
    from gengen.ggan.loop import fit_ggan, validation_mae
    from gengen.ggan.train import build_networks
    from gengen.recipes import GGANRecipe

    X, Y = _ggan_data()
    for precision, expected in (("auto", "fp32"), ("bf16", "bf16")):
        torch.manual_seed(0)
        r = GGANRecipe(hidden=32, layers=2, d_hidden=16, epochs=12, batch_size=50, precision=precision)
        gen, disc = build_networks(10, 14, r)
        before = validation_mae(gen, torch.as_tensor(X[300:]), torch.as_tensor(Y[300:]))
        h = fit_ggan(gen, disc, X[:300], y_train=Y[:300], x_val=X[300:], y_val=Y[300:], recipe=r, device=torch.device("cpu"), quiet=True)
        assert h.attrs["precision"] == expected
        assert h.attrs["best_val_mae"] < 0.8 * before  # it learns in either precision
        assert np.isfinite(h["g_loss"]).all()


def test_predict_z_scales_on_the_device_and_bf16_stays_close():
    from gengen.ggan.predict import predict_z
    from gengen.ggan.train import build_networks
    from gengen.recipes import GGANRecipe

    X, _ = _ggan_data(n=50)
    torch.manual_seed(0)
    gen, _ = build_networks(10, 14, GGANRecipe(hidden=32, layers=2, d_hidden=16, loss="mse"))
    scale = np.linspace(0.5, 2.0, 14).astype(np.float32)
    shift = np.arange(14, dtype=np.float32)
    z = predict_z(gen, X, "cpu", batch_size=16, precision="fp32")
    y = predict_z(gen, X, "cpu", batch_size=16, precision="fp32", affine=(scale, shift))
    assert z.shape == (50, 14) and z.dtype == np.float32
    np.testing.assert_allclose(y, z * scale + shift, rtol=1e-6, atol=1e-5)
    zb = predict_z(gen, X, "cpu", batch_size=16, precision="bf16")
    assert np.linalg.norm(zb - z) / np.linalg.norm(z) < 2e-2  # bf16 operands: ~1e-3 .. 1e-2


def test_ggan_train_cli_rejects_an_unknown_precision(tmp_path):
    from typer.testing import CliRunner

    from gengen.cli import app

    X, Y = _ggan_data(n=60)
    import pandas as pd

    df = pd.DataFrame(np.hstack([X, Y]), columns=[f"L{i}" for i in range(10)] + [f"T{j}" for j in range(14)])
    data = tmp_path / "ref.csv"
    df.to_csv(data)
    lm = tmp_path / "lm.txt"
    lm.write_text("\n".join(f"L{i}" for i in range(10)))
    res = CliRunner().invoke(
        app, ["ggan-train", str(data), "--landmarks", str(lm), "-o", str(tmp_path / "m"), "--precision", "fp8"]
    )
    assert_one_line_error(res, "precision")
    assert not (tmp_path / "m").exists()


def test_predictor_refuses_splits_that_leave_too_little_training_data():
    from gengen.dna.predictor.training import PredictorRecipe, train_predictor

    codes = np.random.default_rng(0).integers(0, 4, (40, 12)).astype(np.uint8)
    y = np.random.default_rng(1).random(40) + 1
    with pytest.raises(GengenError, match="for training"):
        train_predictor(codes, y, PredictorRecipe(val_fraction=0.7, epochs=1), device="cpu", quiet=True)


def test_infer_targets_precision_override_and_bad_value(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from gengen.cli import app
    from gengen.ggan import GGANModel
    from gengen.ggan.train import GGANRecipe

    X, Y = _ggan_data(n=120)
    lm, tg = [f"L{i}" for i in range(10)], [f"T{j}" for j in range(14)]
    r = GGANRecipe(hidden=16, layers=1, d_hidden=8, epochs=2, batch_size=40, precision="AUTO")
    model = GGANModel.train_arrays(X + 5, Y + 5, landmarks=lm, targets=tg, recipe=r, device="cpu", quiet=True)
    assert model.recipe.precision == "auto"  # names are case-insensitive
    model.save(tmp_path / "m")
    query = tmp_path / "q.csv"
    pd.DataFrame(X[:7] + 5, columns=lm, index=[f"s{i}" for i in range(7)]).to_csv(query)
    runner = CliRunner()
    res = runner.invoke(app, ["infer-targets", str(query), "--model", str(tmp_path / "m"), "-o",
                              str(tmp_path / "p.csv"), "--precision", "fp32", "-q"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "p.csv", index_col=0)
    np.testing.assert_allclose(pred.to_numpy(), model.predict_array(X[:7] + 5), rtol=1e-5, atol=1e-5)
    res = runner.invoke(app, ["infer-targets", str(query), "--model", str(tmp_path / "m"), "-o",
                              str(tmp_path / "p2.csv"), "--precision", "half"])
    assert_one_line_error(res, "precision")
    assert not (tmp_path / "p2.csv").exists()
