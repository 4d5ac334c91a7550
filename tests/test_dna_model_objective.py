"""Any model as a design objective (issue 19, section 1) and objective kinds as a registry (issue 21, item 3):
``--objective model=FILE.pt`` (TorchScript) and ``python=FILE.py:FACTORY`` in dna-design (direct, through a
GAN, with constraints and other objectives) and dna-score; the native predictor and its TorchScript export
design the same sequences byte for byte; the model is checked (length, layout, output, finite values,
gradient) before any work; a new kind is one registration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from conftest import assert_one_line_error
from dna_fixtures import JASPAR_TEXT, random_seqs, write_fa
from gengen.cli import app
from gengen.errors import GengenError

runner = CliRunner()
LENGTH = 16


def run(*args):
    return runner.invoke(app, [str(a) for a in args] + ["--device", "cpu"])


def _cnn(seed: int = 0):
    from gengen.dna.predictor.predictors import CNNPredictor

    torch.manual_seed(seed)
    cnn = CNNPredictor(channels=8, width=5, hidden=8).eval()
    cnn.y_mean.fill_(2.0)
    cnn.y_std.fill_(3.0)
    cnn.length = LENGTH
    return cnn


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small CNN predictor folder ``pred`` and its TorchScript export ``pred.pt`` (through the CLI)."""
    tmp = tmp_path_factory.mktemp("export")
    _cnn().save(tmp / "pred")
    r = runner.invoke(app, ["dna-export-predictor", str(tmp / "pred"), "-o", str(tmp / "pred.pt")])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(tmp / "pred.pt")
    return tmp


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory):
    from gengen.dna import GANModel, GANRecipe, Generator

    tmp = tmp_path_factory.mktemp("gan")
    torch.manual_seed(1)
    recipe = GANRecipe(length=LENGTH, latent=4, channels=8, blocks=1)
    return GANModel(Generator(LENGTH, 4, 8, blocks=1).eval(), recipe, {"iteration": 1}).save(tmp / "gan")


def _fasta_bytes(path):
    return path.read_bytes(), path.with_suffix(".tsv").read_bytes()


# ------------------------------------------------------------------------------------------------ same designs
def test_the_export_records_the_length_and_reproduces_the_predictor(exported):
    from gengen.dna.designer.objective_kinds.model import load_torchscript

    module, meta, members = load_torchscript(str(exported / "pred.pt"))
    assert meta == {"length": LENGTH} and any(m.endswith("extra/gengen.json") for m in members)
    x = torch.eye(4)[torch.randint(0, 4, (5, LENGTH))].transpose(1, 2)
    assert torch.equal(module(x), _cnn()(x))


@pytest.mark.parametrize("extra", [[], ["--gan", "GAN"]], ids=["direct", "gan"])
def test_native_predictor_and_its_torchscript_export_design_the_same_bytes(exported, tiny_gan, tmp_path, extra):
    extra = [str(tiny_gan) if a == "GAN" else a for a in extra]
    common = ["-n", 6, "--steps", 12, "--seed", 3, "-q", *extra]
    a = run("dna-design", "--predictor", exported / "pred", "-o", tmp_path / "native.fa", *common)
    b = run("dna-design", "--objective", f"model={exported / 'pred.pt'}", "-o", tmp_path / "ts.fa", *common)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert _fasta_bytes(tmp_path / "native.fa") == _fasta_bytes(tmp_path / "ts.fa")
    seqs = [s for s in (tmp_path / "ts.fa").read_text().splitlines() if not s.startswith(">")]
    assert len(seqs) == 6 and {len(s) for s in seqs} == {LENGTH}  # the archive's length was the default


def test_same_bytes_with_another_objective_and_every_constraint(exported, tmp_path):
    motif = tmp_path / "toy.jaspar"
    motif.write_text(JASPAR_TEXT)
    starts = write_fa(tmp_path / "starts.fa", random_seqs(4, LENGTH, seed=5))
    common = ["--objective", f"motif={motif},target=min,weight=0.5", "--from", starts, "--max-edits", 4, "--fixed", "1-2",
              "--avoid", "GAATTC", "--gc", "0.3-0.7", "-n", 4, "--steps", 8, "-q"]
    a = run("dna-design", "--objective", f"predictor={exported / 'pred'},target=4", "-o", tmp_path / "a.fa", *common)
    b = run("dna-design", "--objective", f"model={exported / 'pred.pt'},target=4", "-o", tmp_path / "b.fa", *common)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert _fasta_bytes(tmp_path / "a.fa") == _fasta_bytes(tmp_path / "b.fa")
    assert "score_pred" in (tmp_path / "b.tsv").read_text().splitlines()[0]


def test_traced_and_scripted_models_design_like_the_eager_one():
    from gengen.dna.designer.design import design
    from gengen.dna.designer.objective_kinds.model import ModelObjective, TorchModel
    from gengen.dna.designer.objectives import Objective

    cnn = _cnn(seed=4)
    x = torch.eye(4)[torch.randint(0, 4, (2, LENGTH))].transpose(1, 2)
    ref = design(Objective(cnn, "max", name="m"), 5, LENGTH, steps=10, seed=2, device="cpu").codes
    for module in (torch.jit.script(cnn), torch.jit.trace(cnn, x)):
        obj = ModelObjective(TorchModel(module, name="m"), "max", name="m")
        np.testing.assert_array_equal(design(obj, 5, LENGTH, steps=10, seed=2, device="cpu").codes, ref)


def test_dna_score_scores_with_the_export_as_with_the_predictor(exported, tmp_path):
    fa = write_fa(tmp_path / "s.fa", random_seqs(5, LENGTH, seed=6))
    r = run("dna-score", fa, "--predictor", exported / "pred", "--objective", f"model={exported / 'pred.pt'}",
            "-o", tmp_path / "t.tsv", "-q")
    assert r.exit_code == 0, r.output
    import pandas as pd

    t = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    np.testing.assert_array_equal(t["predictor_score"], t["score_pred"])
    longer = write_fa(tmp_path / "l.fa", random_seqs(3, LENGTH + 4, seed=7))
    assert_one_line_error(run("dna-score", longer, "--objective", f"model={exported / 'pred.pt'}", "-q"),
                          f"records of {LENGTH + 4} nt differ from the {LENGTH} nt")
    w = run("dna-score", longer, "--objective", f"model={exported / 'pred.pt'}", "--predictor-windows", "-q")
    assert w.exit_code == 0 and "window_start_pred" in w.stdout.splitlines()[0], w.output


# ------------------------------------------------------------------------------------------------ the user's code
FACTORY = '''
import torch
from torch import nn

class TwoHeads(nn.Module):
    output_names = ["up", "down"]

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv1d(4, channels, 5, padding=2)
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=2))

def make(channels=4, seed=0):
    torch.manual_seed(seed)
    return TwoHeads(channels)
'''


def test_python_factory_with_arguments_and_named_outputs(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    r = run("dna-design", "--objective", "python=my_models.py:make,channels=6,seed=2,output=down,target=min",
            "--length", 20, "-n", 3, "--steps", 5, "-o", tmp_path / "d.fa")
    assert r.exit_code == 0, r.output
    assert "running your code: make(channels=6, seed=2) from my_models.py" in r.output
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_models", tmp_path / "my_models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.make(channels=6, seed=2)
    assert net.conv.out_channels == 6
    from gengen.dna.designer.objectives import load_objectives

    (obj,), _ = load_objectives(["python=my_models.py:make,channels=6,seed=2,output=down"], length=20)
    x = torch.eye(4)[torch.randint(0, 4, (4, 20))].transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(obj.exact(x), net(x)[:, 1])
    assert obj.name == "my_models.make:down"


# ------------------------------------------------------------------------------------------------ checks
class _Conv(nn.Module):
    def __init__(self, k: int = 1, channels_last: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head, self.channels_last = nn.Conv1d(4, 6, 3, padding=1), nn.Linear(6, k), channels_last

    def forward(self, x):
        if self.channels_last:
            x = x.transpose(1, 2)
        return self.head(torch.relu(self.conv(x)).mean(dim=2)).squeeze(-1)


class _Fixed(nn.Module):  # flatten + linear: only one length runs
    def __init__(self, length: int = 30):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = nn.Conv1d(4, 4, 5), nn.Linear(4 * ((length - 4) // 2), 1)

    def forward(self, x):
        return self.head(torch.flatten(torch.max_pool1d(self.conv(x), 2), 1)).squeeze(1)


def _wrapped(module, **kw):
    from gengen.dna.designer.objective_kinds.model import TorchModel

    return TorchModel(module, name="m", **kw)


def test_layout_output_and_gradient_checks_say_what_to_do():
    with pytest.raises(GengenError, match=r"takes \(N, 20, 4\) input.*add layout=NLC"):
        _wrapped(torch.jit.script(_Conv(channels_last=True))).check(20)
    _wrapped(torch.jit.script(_Conv(channels_last=True)), layout="NLC").check(20, gradient=True)
    with pytest.raises(GengenError, match=r"gives 3 outputs per sequence \(a, b, c\); pick one with output=INDEX \(0-2\)"):
        _wrapped(_Conv(3), output_names=["a", "b", "c"]).check(20)
    picked = _wrapped(_Conv(3), output="c", output_names=["a", "b", "c"])
    picked.check(20)
    assert picked.column == 2
    with pytest.raises(GengenError, match="out of range"):
        _wrapped(_Conv(3), output="3").check(20)
    with pytest.raises(GengenError, match="carries no output names"):
        _wrapped(_Conv(3), output="b").check(20)

    class Step(nn.Module):
        def forward(self, x):
            return (x.argmax(dim=1) == 2).float().sum(dim=1)

    with pytest.raises(GengenError, match=r"not differentiable.*--from START.fa --max-edits K --steps 0"):
        _wrapped(Step()).check(20, gradient=True)
    _wrapped(Step()).check(20)  # scoring needs no gradient

    class Nan(nn.Module):
        def forward(self, x):
            return x.sum(dim=(1, 2)) * float("nan")

    with pytest.raises(GengenError, match="NaN or infinite"):
        _wrapped(Nan()).check(20)

    class Pair(nn.Module):
        def forward(self, x):
            return x.sum(dim=1), x.sum(dim=2)

    with pytest.raises(GengenError, match="returns a tuple of 2 values"):
        _wrapped(Pair()).check(20)

    class Profile(nn.Module):
        def forward(self, x):
            return x[:, 0] * 2.0

    with pytest.raises(GengenError, match="one per position"):
        _wrapped(Profile()).check(20)


def test_a_fixed_length_model_says_which_length_it_takes(tmp_path):
    from gengen.dna.designer.objective_kinds.model import ModelObjective, TorchModel, _traced_length

    fixed = _Fixed(30).eval()
    with pytest.raises(GengenError, match=r"does not take 50-nt sequences.*runs on 30 nt \(found by trying lengths\)"):
        _wrapped(torch.jit.script(fixed)).check(50)
    torch.jit.trace(fixed, torch.eye(4)[torch.randint(0, 4, (2, 30))].transpose(1, 2)).save(str(tmp_path / "t.pt"))
    assert _traced_length(str(tmp_path / "t.pt"), "NCL") == 30
    obj = ModelObjective(TorchModel(torch.jit.load(str(tmp_path / "t.pt")), name="t",
                                    traced_length=lambda: _traced_length(str(tmp_path / "t.pt"), "NCL")), name="t")
    with pytest.raises(GengenError, match=r"runs on 30 nt \(the length it was traced at\)"):
        obj.check_length(12)

    class Deep(nn.Module):  # shrinks by 20 positions: needs at least 21
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 2, 21)

        def forward(self, x):
            return self.conv(x).mean(dim=(1, 2))

    with pytest.raises(GengenError, match=r"runs on sequences of 21 nt or more"):
        _wrapped(Deep()).check(8)


def test_a_model_that_fails_on_some_sequences_is_refused_before_design():
    from gengen.dna.designer.design import design
    from gengen.dna.designer.objective_kinds.model import ModelObjective

    class Sometimes(nn.Module):
        def forward(self, x):  # infinite where the first four bases are T (the probe's few sequences pass)
            s = x.sum(dim=(1, 2))
            return s + torch.where(x[:, 3, :4].sum(dim=1) > 3.5, torch.full_like(s, float("inf")), torch.zeros_like(s))

    obj = ModelObjective(_wrapped(Sometimes()), name="sometimes")
    with pytest.raises(GengenError, match=r"'sometimes' gives NaN or infinite scores for \d+ of 2048 random"):
        design(obj, 2, 12, steps=1, device="cpu")


def test_greedy_search_designs_with_a_model_without_gradient(tmp_path):
    class Step(nn.Module):  # counts G: no gradient
        def forward(self, x):
            return (x.argmax(dim=1) == 2).float().sum(dim=1)

    torch.jit.script(Step()).save(str(tmp_path / "step.pt"))
    starts = write_fa(tmp_path / "s.fa", random_seqs(3, 20, seed=2))
    out = tmp_path / "g.fa"
    assert_one_line_error(run("dna-design", "--objective", f"model={tmp_path / 'step.pt'}", "--length", 20, "-n", 2,
                              "-o", out, "-q"), "--from START.fa --max-edits K --steps 0")
    r = run("dna-design", "--objective", f"model={tmp_path / 'step.pt'}", "--from", starts, "--max-edits", 3,
            "--steps", 0, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    start = [s for s in starts.read_text().splitlines() if not s.startswith(">")]
    got = [s for s in out.read_text().splitlines() if not s.startswith(">")]
    for a, b in zip(start, got):  # three more G's each, every other base kept
        assert b.count("G") == a.count("G") + 3 and sum(x != y for x, y in zip(a, b)) == 3


# ------------------------------------------------------------------------------------------------ the registry
def test_a_registered_kind_works_everywhere_objectives_are_named(tmp_path):
    """A new kind is one registration: parse/build from user code, then --objective NAME=... works."""
    from gengen.dna.designer.objectives import Objective, parse_objective, register_objective_kind
    from gengen.registry import OBJECTIVE_KINDS

    class GC(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return self.scale * x[:, 1:3].sum(dim=(1, 2))

    def parse(spec):
        spec.refuse_options(("scale",))
        return spec

    def build(spec, context):
        return Objective(GC(float(spec.options.get("scale", 1))), spec.target, spec.weight, name=f"gc_{spec.source}")

    register_objective_kind("gc", parse, build, label="NAME", help="G+C count")
    try:
        assert "gc=NAME" in OBJECTIVE_KINDS.usage()
        assert parse_objective("gc=x,scale=2,target=min").options == {"scale": "2"}
        with pytest.raises(GengenError, match="unknown key 'speed' for gc=; the keys are gc, scale, target, weight"):
            parse_objective("gc=x,speed=2")
        r = run("dna-design", "--objective", "gc=rich,scale=2", "--length", 12, "-n", 3, "--steps", 30,
                "-o", tmp_path / "d.fa", "-q")
        assert r.exit_code == 0, r.output
        seqs = [s for s in (tmp_path / "d.fa").read_text().splitlines() if not s.startswith(">")]
        assert all(sum(c in "GC" for c in s) >= 10 for s in seqs), seqs
    finally:
        OBJECTIVE_KINDS.unregister("gc")


def test_specs_of_the_new_kinds_parse_without_reading_anything():
    from gengen.dna.designer.objectives import objective_inputs, parse_objective

    s = parse_objective("model=m.pt,output=counts,layout=nlc,weight=2")
    assert (s.kind, s.source, s.options, s.weight) == ("model", "m.pt", {"output": "counts", "layout": "NLC"}, 2.0)
    p = parse_objective("python=lib/mine.py:make,channels=64,name=x")
    assert p.options == {"channels": "64", "name": "x", "layout": "NCL"} and p.inputs == ("lib/mine.py",)
    assert objective_inputs(["python=pkg.mod:make", "model=m.pt", "motif=MA0139.2"]) == ["m.pt", "MA0139.2"]
    for spec, msg in {"model=m.pt,layout=NHWC": "layout must be NCL", "model=m.pt,color=red": "unknown key 'color'",
                      "python=mine.py": "MODULE_OR_FILE.py:FACTORY", "model=a.pt,python=b.py:f": "exactly one of",
                      "output=3": "exactly one of"}.items():
        with pytest.raises(GengenError, match=msg):
            parse_objective(spec)


def test_metadata_length_sets_the_design_length_and_is_read_without_loading(tmp_path):
    from gengen.dna.designer.objectives import trained_lengths

    m = torch.jit.script(_Conv())
    m.save(str(tmp_path / "m.pt"), _extra_files={"gengen.json": json.dumps({"length": 24, "output_names": ["s"]})})
    assert trained_lengths(specs=[f"model={tmp_path / 'm.pt'}"]) == {"m": 24}
    r = run("dna-design", "--objective", f"model={tmp_path / 'm.pt'}", "-n", 2, "--steps", 2, "-o", tmp_path / "d.fa")
    assert r.exit_code == 0 and "design length 24 nt" in r.output, r.output


class _Named(_Conv):  # output names as a scripted attribute (its type inferred from the list)
    def __init__(self, k: int, names: list[str]):
        super().__init__(k)
        self.output_names = names


@pytest.mark.parametrize("k, names, how", [(1, ["a", "b"], "json"), (3, ["a", "b"], "attribute")])
def test_output_names_of_another_count_than_the_outputs_are_refused(tmp_path, k, names, how):
    """User test, item 2: names for two outputs on an (N,) model were accepted ("outputs a, b"); the count is
    checked when the model is first tried, in one line naming both counts."""
    module = torch.jit.script(_Conv(k) if how == "json" else _Named(k, names))
    extra = {"gengen.json": json.dumps({"output_names": names})} if how == "json" else {}
    module.save(str(tmp_path / "m.pt"), _extra_files=extra)
    for args in (["dna-design", "--length", 20, "-n", 2, "--steps", 2, "-o", tmp_path / "d.fa"],
                 ["dna-score", write_fa(tmp_path / "s.fa", random_seqs(3, 20)), "-o", tmp_path / "s.tsv"]):
        r = run(*args, "--objective", f"model={tmp_path / 'm.pt'}", "-q")
        assert_one_line_error(r, f"records 2 output name(s) (a, b) but gives {k} output(s) per sequence")
    assert not (tmp_path / "d.fa").exists() and not (tmp_path / "s.tsv").exists()


def test_a_model_error_gets_the_lengths_and_layout_hint_only_when_it_is_about_shapes(tmp_path, monkeypatch):
    """User test, item 6: a model built for CUDA and a factory's bad argument both ended "check the lengths and
    layout"; a device error now says what to do about the device, another error is just named."""

    class OnGpu(nn.Module):  # what a model traced on a GPU, or calling .cuda(), does on a CPU-only PyTorch
        def forward(self, x):
            raise RuntimeError("PyTorch is not linked with support for cuda devices")

    with pytest.raises(GengenError, match=r"built for CUDA.*--device cuda.*export it again on the CPU") as info:
        _wrapped(OnGpu()).check(20)
    assert "lengths and layout" not in str(info.value)

    (tmp_path / "facs.py").write_text(
        "from torch import nn\n"
        "class GC(nn.Module):\n"
        "    def __init__(self, scale=1.0):\n"
        "        super().__init__(); self.scale = scale\n"
        "    def forward(self, x): return self.scale * x[:, 1:3].sum(dim=(1, 2))\n"
        "def good(scale=1.0): return GC(scale)\n")
    monkeypatch.chdir(tmp_path)
    r = run("dna-design", "--objective", "python=facs.py:good,scale=abc", "--length", 20, "-n", 2, "--steps", 2,
            "-o", tmp_path / "d.fa", "-q")
    assert_one_line_error(r, "model 'facs.good' fails on one-hot input of shape (3, 4, 20): TypeError:",
                          "(the model's own error)")
    assert "lengths and layout" not in r.output

    class Picky(nn.Module):  # a shape error with no layout or length that runs: the hint stays
        def forward(self, x):
            raise ValueError(f"unexpected input shape {tuple(x.shape)}")

    with pytest.raises(GengenError, match=r"ValueError: unexpected input shape .*check the lengths and layout"):
        _wrapped(Picky()).check(20)


def test_a_sigterm_in_the_users_code_stops_the_command_as_a_sigterm():
    """A SIGTERM landing while the user's module imports or their factory runs is the command's stop
    (exit 143), not their sys.exit(): it is not turned into a one-line error about their code."""
    import signal

    from gengen.dna.designer.objective_kinds.python import _your_code
    from gengen.dna.designer.objectives import ObjectiveSpec
    from gengen.errors import GengenError
    from gengen.runtime import command_scope

    spec = ObjectiveSpec(kind="python", source="facs.py:make", text="python=facs.py:make")
    with pytest.raises(SystemExit) as stopped:
        with command_scope():
            with _your_code(spec, "make()"):
                signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # as delivered while make() ran
    assert stopped.value.code == 128 + signal.SIGTERM
    with pytest.raises(GengenError, match="raised SystemExit: exit code 3"):  # the user's own sys.exit(3)
        with command_scope(), _your_code(spec, "make()"):
            raise SystemExit(3)
