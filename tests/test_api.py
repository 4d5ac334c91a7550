"""The public API's promises: at most three positional parameters, a docstring for every exported name,
numpydoc sections on the entry points, one save/load signature for every model class, and extension
points that work from user code (a new GGAN baseline and a new VAE comparison method appear in
``ggan-eval`` / ``vae-compare`` without touching gengen)."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gengen.cli import app

PACKAGES = ("gengen", "gengen.vae", "gengen.ggan", "gengen.dna", "gengen.io", "gengen.sweep", "gengen.store",
            "gengen.registry", "gengen.training")
MAX_POSITIONAL = 3

# What a Python user calls; each needs numpydoc "Parameters" and "Returns" sections.
ENTRY_POINTS = (
    "gengen.vae:encode", "gengen.vae:compare", "gengen.vae:register_comparison", "gengen.vae:knn_accuracy",
    "gengen.vae:import_tybalt_decoder", "gengen.vae:separating_features",
    "gengen.vae:VAEModel.train", "gengen.vae:VAEModel.load", "gengen.vae:VAEModel.save", "gengen.vae:VAEModel.encode",
    "gengen.vae:VAEModel.decode", "gengen.vae:VAEModel.sample",
    "gengen.ggan:infer", "gengen.ggan:infer_file", "gengen.ggan:evaluate", "gengen.ggan:register_baseline",
    "gengen.ggan:prepare_reference", "gengen.ggan:GGANModel.train", "gengen.ggan:GGANModel.train_arrays",
    "gengen.ggan:GGANModel.load", "gengen.ggan:GGANModel.save", "gengen.ggan:GGANModel.predict",
    "gengen.dna:design", "gengen.dna:train_gan", "gengen.dna:train_predictor", "gengen.dna:report_scores",
    "gengen.dna:load_predictor", "gengen.dna:GANModel.load", "gengen.dna:GANModel.save", "gengen.dna:GANModel.generate",
    "gengen.dna:CNNPredictor.load", "gengen.dna:CNNPredictor.save", "gengen.dna:load_objectives",
    "gengen.dna:register_objective_kind", "gengen.dna:export_torchscript", "gengen.dna:explain", "gengen.dna:jaspar_hits",
    "gengen.dna:match_motifs", "gengen.io:jaspar_database",
    "gengen.io:read_expression", "gengen.io:write_expression", "gengen.io:read_fasta", "gengen.io:write_fasta",
    "gengen.io:load_motif", "gengen.io:read_motif_file", "gengen.sweep:run_sweep",
)
MODEL_CLASSES = ("gengen.vae:VAEModel", "gengen.ggan:GGANModel", "gengen.dna:GANModel", "gengen.dna:CNNPredictor")


def _resolve(spec: str):
    module, _, path = spec.partition(":")
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _exported():
    """(qualified name, object) of every name in every package's ``__all__``."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        assert hasattr(module, "__all__"), f"{package} has no __all__"
        for name in module.__all__:
            yield f"{package}.{name}", getattr(module, name)


def _positional(func) -> list[str]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in sig.parameters.values() if p.kind in kinds and p.name not in ("self", "cls")]


def _public_callables():
    """Every exported function and class, and the public methods each exported class defines."""
    import dataclasses

    seen = set()
    for qual, obj in _exported():
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj):
            # a dataclass's constructor is its fields (records built by name or from config.json)
            if not dataclasses.is_dataclass(obj) and "__init__" in vars(obj):
                yield f"{qual}.__init__", obj.__init__
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if inspect.isfunction(func):
                    yield f"{qual}.{name}", func
        elif inspect.isfunction(obj):
            yield qual, obj


def _every_public_callable():
    """Every public-named function and class defined in any gengen module (not only the names in
    ``__all__``), with the public methods each class defines; the CLI's command functions (Typer's
    parameters, never called positionally) are left out."""
    import dataclasses
    import pkgutil

    import gengen

    for info in pkgutil.walk_packages(gengen.__path__, "gengen."):
        if info.name == "gengen.cli" or info.name.startswith("gengen.cli."):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != info.name:
                continue
            if inspect.isclass(obj):
                if not dataclasses.is_dataclass(obj) and "__init__" in vars(obj):
                    yield f"{info.name}.{name}.__init__", obj.__init__
                for attr, member in vars(obj).items():
                    func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    if not attr.startswith("_") and inspect.isfunction(func):
                        yield f"{info.name}.{name}.{attr}", func
            elif inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj


def test_public_callables_take_at_most_three_positional_parameters():
    offenders = {qual: _positional(f) for qual, f in _public_callables() if len(_positional(f)) > MAX_POSITIONAL}
    assert not offenders, f"make the parameters after the third keyword-only (add `*`): {offenders}"


def test_every_public_name_in_every_module_takes_at_most_three_positional_parameters():
    """The rule holds beyond ``__all__``: every public-named function of every sub-module (issue 21
    found 31 with 4-9 positional parameters, e.g. ``fit_ggan`` 9, ``fit_vae`` 7)."""
    found = dict(_every_public_callable())
    assert len(found) > 300  # the walk reaches the sub-modules
    assert {"gengen.ggan.loop.fit_ggan", "gengen.vae.train.fit_vae", "gengen.checkpoint.save_checkpoint",
            "gengen.dna.designer.greedy.EditRules.__init__"} <= set(found)
    offenders = {qual: _positional(f) for qual, f in found.items() if len(_positional(f)) > MAX_POSITIONAL}
    assert not offenders, f"make the parameters after the third keyword-only (add `*`): {offenders}"


def test_the_rule_covers_methods_and_constructors():
    quals = {qual for qual, _ in _public_callables()}
    assert {"gengen.vae.VAEModel.train", "gengen.ggan.GGANModel.__init__", "gengen.dna.GANModel.generate",
            "gengen.io.read_fasta", "gengen.store.resolve_model"} <= quals


def test_every_exported_name_has_a_docstring():
    # constants (strings, tuples, dicts of a registry) document themselves where they are defined; every
    # function, class and registry object must say what it is
    missing = [qual for qual, obj in _exported()
               if (callable(obj) or inspect.ismodule(obj)) and not (inspect.getdoc(obj) or "").strip()]
    assert not missing, f"no docstring: {missing}"


def test_no_name_is_exported_with_two_meanings():
    owners: dict[str, set[int]] = {}
    for qual, obj in _exported():
        owners.setdefault(qual.rsplit(".", 1)[1], set()).add(id(obj))
    assert not {name for name, ids in owners.items() if len(ids) > 1}


@pytest.mark.parametrize("spec", ENTRY_POINTS)
def test_entry_points_have_numpydoc_sections(spec):
    doc = inspect.getdoc(_resolve(spec)) or ""
    for section in ("Parameters", "Returns"):
        assert f"{section}\n{'-' * len(section)}" in doc, f"{spec}: no numpydoc {section!r} section"


def test_entry_points_cover_at_least_25_calls():
    assert len(ENTRY_POINTS) >= 25


def test_model_classes_share_save_and_load():
    def shape(func):
        sig = inspect.signature(func)
        return [(p.name, p.default) for p in sig.parameters.values()
                if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    loads = {spec: shape(_resolve(spec).load) for spec in MODEL_CLASSES}
    saves = {spec: shape(_resolve(spec).save) for spec in MODEL_CLASSES}
    assert all(v == [("path_or_name", inspect.Parameter.empty), ("device", "auto")] for v in loads.values()), loads
    assert all(v == [("self", inspect.Parameter.empty), ("path", inspect.Parameter.empty)] for v in saves.values()), saves
    for spec in MODEL_CLASSES:  # and they load through the one validate-and-load path
        from gengen.saved_model import SavedModel

        assert issubclass(_resolve(spec), SavedModel), spec


def test_library_calls_are_quiet_by_default():
    # (readers keep quiet=False: they print no progress, only how they read a file -- orientation, which
    # motif of several, a JASPAR id's version -- which a library user needs as much as the CLI's)
    for spec in ("gengen.vae:encode", "gengen.vae:compare", "gengen.vae:VAEModel.train", "gengen.ggan:infer",
                 "gengen.ggan:evaluate", "gengen.ggan:GGANModel.train", "gengen.dna:design", "gengen.dna:train_gan",
                 "gengen.dna:train_predictor", "gengen.sweep:run_sweep"):
        assert inspect.signature(_resolve(spec)).parameters["quiet"].default is True, spec


def test_io_reexports_its_readers_lazily():
    import subprocess
    import sys

    import gengen.io
    from gengen.io.expression import read_expression

    assert gengen.io.read_expression is read_expression
    assert {"read_expression", "read_fasta", "load_motif", "write_fasta"} <= set(gengen.io.__all__)
    code = "import sys, gengen.io; print('pandas' in sys.modules or 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------------------ save/load
def test_dna_models_round_trip_through_save_and_load(tmp_path):
    import torch

    from gengen.dna import CNNPredictor, GANModel, GANRecipe, Generator

    torch.manual_seed(0)
    recipe = GANRecipe(length=12, latent=4, channels=8, blocks=1)
    gan = GANModel(Generator(12, 4, 8, blocks=1).eval(), recipe, {"iteration": 7})
    assert gan.save(tmp_path / "gan") == tmp_path / "gan"
    back = GANModel.load(tmp_path / "gan", device="cpu")
    assert isinstance(back, GANModel) and back.iteration == 7 and back.path == tmp_path / "gan"
    np.testing.assert_array_equal(back.generate(5, seed=3), gan.generate(5, seed=3))

    cnn = CNNPredictor(channels=4, width=3, hidden=4).eval()
    cnn.length = 12
    x = torch.eye(4)[torch.randint(0, 4, (6, 12))].transpose(1, 2)
    assert cnn.save(tmp_path / "cnn") == tmp_path / "cnn"
    loaded = CNNPredictor.load(tmp_path / "cnn", device="cpu")
    assert isinstance(loaded, CNNPredictor) and loaded.length == 12 and not loaded.training
    torch.testing.assert_close(loaded.exact_score(x), cnn.exact_score(x))
    from gengen.errors import GengenError

    with pytest.raises(GengenError, match="'dna-predictor' model, but this command needs a 'dna-gan'"):
        GANModel.load(tmp_path / "cnn")


def test_predictors_report_through_methods():
    import torch

    from gengen.dna import PWMPredictor, report_scores
    from gengen.dna.predictor.predictors import exact_score
    from gengen.io.motifs import pwm_from_counts

    pwm = pwm_from_counts(np.array([[9, 0, 0, 1], [0, 9, 0, 1], [0, 0, 9, 1]], float).T, name="ACG")
    x = torch.eye(4)[torch.tensor([[0, 1, 2, 3, 3, 3], [3, 3, 3, 0, 1, 2]])].transpose(1, 2)
    scanner = PWMPredictor(pwm)
    assert torch.equal(exact_score(scanner, x), scanner.exact(x)[0])  # the exact max, not the smooth one
    assert (exact_score(scanner, x) <= scanner(x)).all()  # the smooth maximum is an upper bound
    report = report_scores(scanner, x)
    assert list(report["hit_start"]) == [0, 3] and list(report["hit_strand"]) == [0, 0]

    class Foreign(torch.nn.Module):  # any (N, 4, L) -> (N,) model, with no gengen methods
        def forward(self, x):
            return x[:, 0].sum(dim=1)

    assert set(report_scores(Foreign(), x)) == {"score"}
    np.testing.assert_array_equal(report_scores(Foreign(), x)["score"], [1.0, 1.0])


def test_ggan_discriminator_scores_real_then_fake_in_one_call():
    import torch

    from gengen.ggan.model import Discriminator

    torch.manual_seed(0)
    d = Discriminator(3, 4, (8, 4))
    x, y, fake = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    both = d.real_and_fake(x, y, fake)
    torch.testing.assert_close(both, torch.cat([d(x, y), d(x, fake)]))


# ------------------------------------------------------------------------------------------------ extensions
runner = CliRunner()


def _half_mean(Xtr, Ytr, Xte, *, seed=0, info=None, **_):
    """Half the training mean: a baseline registered from outside gengen."""
    if info is not None:
        info["registered_from"] = "test_api"
    return np.broadcast_to(0.5 * Ytr.mean(axis=0), (Xte.shape[0], Ytr.shape[1])).astype(np.float32)


@pytest.fixture
def half_mean_baseline():
    from gengen.ggan import register_baseline
    from gengen.registry import GGAN_METHODS

    register_baseline("half-mean", _half_mean, label="half mean (test)")
    yield
    GGAN_METHODS.unregister("half-mean")


def test_registered_ggan_baseline_appears_in_ggan_eval(tmp_path, half_mean_baseline):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    Y = 3 + X @ rng.standard_normal((4, 5)) + 0.1 * rng.standard_normal((60, 5))
    cols = [f"LM{i}" for i in range(4)] + [f"TG{j}" for j in range(5)]
    pd.DataFrame(np.c_[X + 6, Y], index=[f"s{i}" for i in range(60)], columns=cols).to_csv(tmp_path / "ref.csv")
    (tmp_path / "landmarks.txt").write_text("\n".join(cols[:4]) + "\n")
    out = tmp_path / "eval"
    res = runner.invoke(app, ["ggan-eval", str(tmp_path / "ref.csv"), "--landmarks", str(tmp_path / "landmarks.txt"),
                              "--folds", "3", "--methods", "ridge,half-mean,mean", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "half mean (test)" in res.stdout
    summary = pd.read_csv(out / "ggan_eval_summary.tsv", sep="\t").set_index("method")
    # z-scored targets: half the training mean is closer to the truth than nothing, never better than ridge
    assert summary.loc["ridge", "mae_mean"] < summary.loc["half-mean", "mae_mean"]
    assert '"registered_from": "test_api"' in (out / "ggan_eval_info.json").read_text()


def test_unknown_ggan_method_lists_the_registered_ones(tmp_path, half_mean_baseline):
    from gengen.errors import GengenError
    from gengen.ggan import evaluate

    with pytest.raises(GengenError, match=r"unknown method\(s\) nope; choose from .*half-mean"):
        evaluate(np.zeros((9, 2)), np.zeros((9, 2)), ["a", "b"], methods=("nope",))


@pytest.fixture
def svd_comparison():
    from gengen.registry import VAE_COMPARISONS
    from gengen.vae import register_comparison

    def fit_svd(x_fit, k, *, seed=0, quiet=True):
        from sklearn.decomposition import TruncatedSVD

        return TruncatedSVD(n_components=min(k, x_fit.shape[1] - 1), random_state=seed).fit(x_fit)

    register_comparison("svd", fit_svd, label="truncated SVD")
    yield
    VAE_COMPARISONS.unregister("svd")


def test_registered_vae_comparison_appears_in_vae_compare(tmp_path, svd_comparison):
    from conftest import make_toy_expression

    make_toy_expression().write_h5ad(tmp_path / "expr.h5ad")
    res = runner.invoke(app, ["vae-compare", str(tmp_path / "expr.h5ad"), "--by", "group", "--latent", "3",
                              "--epochs", "8", "--batch-size", "20", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()[2:]}
    assert list(rows) == ["vae", "pca", "pca-all", "nmf", "svd", "input"], res.stdout
    k, bce, accuracy = int(rows["svd"][1]), float(rows["svd"][2]), float(rows["svd"][3])
    assert k == 3 and 0 < bce < 1e4 and 0 <= accuracy <= 1  # held-out BCE through inverse_transform, kNN on it
