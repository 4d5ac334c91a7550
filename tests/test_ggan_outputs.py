"""What a GGAN model folder says and holds (issue 18, item 14): the training plot names the saved model
(the ridge start, or the kept epoch), and a reused -o model folder ends up with only the new model's files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gengen.cli import app

runner = CliRunner()
MODEL_FILES = {"config.json", "model.safetensors", "history.csv", "training.png"}


def _reference(d, nonlinear: bool, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8))
    W = rng.standard_normal((8, 10))
    Y = 5 + (np.tanh(2 * X @ W) * 2 if nonlinear else X @ W * 0.5) + 0.05 * rng.standard_normal((n, 10))
    lm = [f"L{i}" for i in range(8)]
    df = pd.DataFrame(np.c_[X + 7, Y], index=[f"s{i}" for i in range(n)], columns=lm + [f"T{j}" for j in range(10)])
    df.to_csv(d / "ref.csv")
    (d / "lm.txt").write_text("\n".join(lm) + "\n")


@pytest.fixture
def figures(monkeypatch):
    """The title and legend labels of every figure saved while the test runs."""
    import gengen.plots

    seen = []
    save = gengen.plots.save_figure

    def record(fig, path, dpi=120):
        labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        title = " ".join(fig._suptitle.get_text().split()) if fig._suptitle else ""  # wrapped lines joined
        seen.append({"path": str(path), "title": title, "labels": labels})
        return save(fig, path, dpi)

    monkeypatch.setattr(gengen.plots, "save_figure", record)
    return seen


def test_training_plot_and_log_say_the_saved_model_is_the_ridge_start(tmp_path, figures):
    _reference(tmp_path, nonlinear=False)  # linear targets: ridge is the model to beat and nothing beats it
    res = runner.invoke(app, ["ggan-train", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"),
                              "-o", str(tmp_path / "m"), "--hidden", "32", "--epochs", "6", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m" / "config.json").read_text())["metrics"]
    assert metrics["best_epoch"] == 0 and metrics["start_val_mae"] == pytest.approx(metrics["best_val_mae"])
    assert "final model: the ridge start, not a trained network" in res.output
    (plot,) = [f for f in figures if f["path"].endswith("training.png")]
    assert "saved model: the ridge start, not a trained network" in plot["title"]
    assert "refitted on all 120 profiles" in plot["title"]
    assert "ridge start, validation: the saved model" in plot["labels"]


def test_training_plot_marks_the_kept_epoch(tmp_path, figures):
    from gengen.ggan import GGANModel

    _reference(tmp_path, nonlinear=True)
    res = runner.invoke(app, ["ggan-train", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"),
                              "-o", str(tmp_path / "m"), "--hidden", "32", "--epochs", "30", "--start-margin", "0",
                              "--lr", "3e-3", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    model = GGANModel.load(tmp_path / "m")
    best = model.metrics["best_epoch"]
    assert best > 0
    (plot,) = [f for f in figures if f["path"].endswith("training.png")]
    assert f"saved model: the network of epoch {best}" in plot["title"]
    assert f"epoch {best}: the saved model" in plot["labels"] and "ridge start, validation" in plot["labels"]
    assert model.saved_model_note() in plot["title"]


def _files(folder):
    return {p.name for p in folder.iterdir()}


def test_a_reused_ggan_model_folder_holds_only_the_new_models_files(tmp_path):
    _reference(tmp_path, nonlinear=False)
    base = ["ggan-train", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "lm.txt"), "-o", str(tmp_path / "m"),
            "--hidden", "16", "--device", "cpu", "-q"]
    assert runner.invoke(app, [*base, "--epochs", "3"]).exit_code == 0
    (tmp_path / "m" / "notes.txt").write_text("a side file of the first model\n")
    (tmp_path / "m" / "samples").mkdir()
    (tmp_path / "m" / "samples" / "x.fa").write_text(">a\nACGT\n")
    res = runner.invoke(app, [*base, "--epochs", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "m") == MODEL_FILES
    assert json.loads((tmp_path / "m" / "config.json").read_text())["seed"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary or lock left beside it"


def test_a_reused_vae_model_folder_holds_only_the_new_models_files(tmp_path, toy_expression):
    toy_expression.write_h5ad(tmp_path / "e.h5ad")
    train = ["--latent", "3", "--epochs", "3", "--batch-size", "20", "--device", "cpu", "-q"]
    assert runner.invoke(app, ["vae-train", str(tmp_path / "e.h5ad"), "-o", str(tmp_path / "v"), *train]).exit_code == 0
    (tmp_path / "v" / "top_genes.tsv").write_text("a side file of the first model\n")
    res = runner.invoke(app, ["vae-encode", str(tmp_path / "e.h5ad"), "-o", str(tmp_path / "z.h5ad"), "--save-model",
                              str(tmp_path / "v"), *train, "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "v") == MODEL_FILES
    assert json.loads((tmp_path / "v" / "config.json").read_text())["seed"] == 5
