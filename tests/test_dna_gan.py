"""WGAN-GP: shapes, critic learning on a planted-motif toy set, checkpoint and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dna_fixtures import (
    PLANT,
    random_seqs,
)
from gengen.dna import GANRecipe, gradient_penalty, train_gan
from gengen.dna.gan.core import GANModel
from gengen.dna.gan.model import Critic, Generator
from gengen.dna.gan.train import new_nets as _new_state
from gengen.dna.gan.train import wgan_gp_iteration
from gengen.errors import GengenError
from gengen.io.sequences import strings_to_codes

TINY = {
    "length": 20,
    "latent": 16,
    "channels": 16,
    "blocks": 2,
    "batch_size": 32,
    "log_every": 5,
    "sample_every": 10,
    "checkpoint_every": 10,
}


@pytest.fixture(scope="module")
def planted():
    return strings_to_codes(random_seqs(600, 20, seed=11, plant=PLANT))


def test_shapes_follow_paper_architecture():
    g, d = Generator(length=50), Critic(length=50)
    x = g(torch.randn(3, 100))
    assert x.shape == (3, 4, 50) and torch.allclose(x.sum(1), torch.ones(3, 50))
    assert d(x).shape == (3,)
    assert len(g.blocks) == 5 and g.blocks[0].scale == 0.3 and g.blocks[0].conv1.kernel_size == (5,)


def test_gradient_penalty_is_zero_for_unit_gradient_critic():
    class Lin(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, 0]  # gradient norm exactly 1 everywhere

    real, fake = torch.rand(8, 4, 5), torch.rand(8, 4, 5)
    assert gradient_penalty(Lin(), real, fake).item() == pytest.approx(0.0, abs=1e-6)


def test_same_conv1d_matches_conv1d_to_second_order():
    from gengen.dna.gan.model import same_conv1d

    torch.manual_seed(0)
    x = torch.randn(3, 4, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(same_conv1d(x, w, b), torch.nn.functional.conv1d(x, w, b, padding=2))
    assert torch.autograd.gradcheck(same_conv1d, (x, w, b))
    assert torch.autograd.gradgradcheck(same_conv1d, (x, w, b))


def test_critic_input_gradient_matches_autograd_double_backward():
    """The explicit input gradient (ReLU masks as constants) must give the same penalty and the same
    parameter gradients as autograd's create_graph path it replaces."""
    torch.manual_seed(0)
    critic = Critic(length=12, channels=8, blocks=3)
    for p in critic.parameters():  # non-zero biases so that the masks are non-trivial
        torch.nn.init.normal_(p, std=0.3)
    x = torch.softmax(torch.randn(6, 4, 12), dim=1)

    xa = x.clone().requires_grad_(True)
    (grad_auto,) = torch.autograd.grad(critic(xa).sum(), xa, create_graph=True)
    grad_fast = critic.input_gradient(x)
    torch.testing.assert_close(grad_fast, grad_auto, rtol=1e-5, atol=1e-6)

    params = list(critic.parameters())

    def penalty_grads(g):
        pen = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return torch.autograd.grad(pen, params, allow_unused=True, materialize_grads=True)

    for a, b in zip(penalty_grads(grad_auto), penalty_grads(grad_fast)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in penalty_grads(critic.input_gradient(x)))


def test_critic_loss_decreases_on_planted_motif(planted):
    torch.manual_seed(0)
    recipe = GANRecipe(**TINY)
    state = _new_state(recipe, torch.device("cpu"))
    data = torch.as_tensor(planted)
    first = [wgan_gp_iteration(state, data, recipe)[0].item() for _ in range(3)]
    for _ in range(25):
        wgan_gp_iteration(state, data, recipe)
    last = [wgan_gp_iteration(state, data, recipe)[0].item() for _ in range(3)]
    assert np.mean(last) < np.mean(first) - 0.1  # the critic learns to separate real from generated


def test_train_checkpoint_round_trip_and_resume(planted, tmp_path):
    out = tmp_path / "gan"
    full = train_gan(
        planted,
        GANRecipe(**TINY, iterations=20),
        output=tmp_path / "full",
        device="cpu",
        quiet=True,
        heldout_codes=planted[:100],
    )
    half = train_gan(
        planted,
        GANRecipe(**TINY, iterations=10),
        output=out,
        device="cpu",
        quiet=True,
        heldout_codes=planted[:100],
    )
    assert (
        (out / "samples.fa").is_file()
        and (out / "training.png").is_file()
        and (out / "history.csv").is_file()
    )
    loaded = GANModel.load(out)
    assert np.array_equal(loaded.generate(5, seed=1), half.generate(5, seed=1))
    last = GANModel.load(out, weights="last")
    assert np.array_equal(last.generate(5, seed=1), half.last.generate(5, seed=1))
    resumed = train_gan(
        planted,
        GANRecipe(**TINY, iterations=20),
        output=out,
        resume=True,
        device="cpu",
        quiet=True,
        heldout_codes=planted[:100],
    )
    for a, b in zip(resumed.last.generator.parameters(), full.last.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-5)  # resuming continues exactly where it stopped
    for a, b in zip(resumed.generator.parameters(), full.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-5)  # ... and keeps the same best weights
    assert resumed.metrics["best_iteration"] == full.metrics["best_iteration"]
    assert "js_k3" in resumed.metrics


def test_best_checkpoint_is_kept_and_used_by_default(planted, tmp_path):
    import json

    import pandas as pd

    out = tmp_path / "gan"
    model = train_gan(
        planted,
        GANRecipe(**{**TINY, "sample_every": 5, "checkpoint_every": 5}, iterations=30),
        output=out,
        device="cpu",
        quiet=True,
        heldout_codes=planted[:100],
    )
    hist = pd.read_csv(out / "history.csv").dropna(subset=["js_k3"])
    score = (hist["js_k3"] + hist["js_k4"]) / 2
    want = int(hist["iteration"].iloc[int(score.values.argmin())])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["best"]["iteration"] == want and cfg["iteration"] == 30
    assert cfg["best"]["score"] == pytest.approx(score.min())
    assert model.metrics["best_iteration"] == want and model.iteration == want
    best, last = GANModel.load(out), GANModel.load(out, weights="last")
    assert best.iteration == want and best.metrics["weights"] == "best"
    assert last.iteration == 30 and last.metrics["weights"] == "last"
    # the best generator reproduces the held-out check it was picked by
    from gengen.dna.metrics import js_divergence, kmer_spectrum

    codes = best.generate(1000, seed=GANRecipe().seed + 12345)
    js = [js_divergence(kmer_spectrum(codes, k), kmer_spectrum(planted[:100], k)) for k in (3, 4)]
    assert np.mean(js) == pytest.approx(score.min(), rel=1e-6)
    if want != 30:
        assert any(not torch.equal(a, b) for a, b in zip(best.generator.parameters(), last.generator.parameters()))
    with pytest.raises(GengenError, match="best' or 'last"):
        GANModel.load(out, weights="first")


def test_resume_without_checkpoint_is_clear(planted, tmp_path):
    with pytest.raises(GengenError, match="no checkpoint"):
        train_gan(planted, GANRecipe(**TINY, iterations=2), output=tmp_path / "none", resume=True, quiet=True)


def test_too_few_windows_is_clear():
    with pytest.raises(GengenError, match="at least one batch"):
        train_gan(np.zeros((3, 20), dtype=np.uint8), GANRecipe(**TINY), quiet=True)
