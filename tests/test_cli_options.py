"""Options in one place (issue 14): every training and design command's defaults are its recipe's.

Each command that sets a recipe names the table (:class:`gengen.cli._options.RecipeOptions`) that maps
its options to the recipe's fields; this walks every such command's click parameters and checks that
each option's default is its field's default, and that any other option is a declared non-recipe
setting, so a new option that drifts from the library (or is not mapped at all) fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.main import get_command

from gengen.cli import app
from gengen.cli._options import RecipeOptions, beside, output_stem
from gengen.cli.dna import DESIGN_OPTIONS, GAN_OPTIONS, PREDICTOR_OPTIONS
from gengen.cli.ggan import GGAN_OPTIONS
from gengen.cli.vae import VAE_OPTIONS
from gengen.errors import GengenError

RECIPES = {
    "vae-train": VAE_OPTIONS, "vae-encode": VAE_OPTIONS, "vae-compare": VAE_OPTIONS,
    "ggan-train": GGAN_OPTIONS, "ggan-eval": GGAN_OPTIONS,
    "dna-train": GAN_OPTIONS, "dna-train-predictor": PREDICTOR_OPTIONS, "dna-design": DESIGN_OPTIONS,
}
# options that are not recipe settings: data, outputs, how to run, what to do with the result
RUN = {"ctx", "data", "output", "device", "threads", "quiet", "genes_in_rows", "fmt", "layer"}
CHOSEN = {"samples", "where"}  # which samples of the file (cli/_data.py); "stream": whether it is read from disk
NOT_RECIPE = {
    "vae-train": RUN | CHOSEN | {"stream", "resume", "checkpoint_every", "checkpoint_minutes"},
    "vae-encode": RUN | CHOSEN | {"stream", "model", "save_model", "fill_missing", "labels_file", "by", "reconstruct"},
    "vae-compare": RUN | {"by", "labels_file", "repeats"},
    "ggan-train": RUN | CHOSEN | {"stream", "landmarks", "landmarks_from", "targets", "probe_map", "resume",
                                  "checkpoint_every", "checkpoint_minutes"},
    "ggan-eval": RUN | CHOSEN | {"landmarks", "landmarks_from", "targets", "probe_map", "folds", "groups", "labels_file",
                                 "methods", "resume"},
    "dna-train": RUN | {"windows", "ambiguous", "short", "max_windows", "time_limit", "resume"},
    "dna-train-predictor": RUN | {"scores", "baseline", "ambiguous", "resume", "checkpoint_every", "checkpoint_minutes"},
    "dna-design": RUN | {"objective", "motif", "motif_format", "motif_name", "pseudocount", "predictor", "target", "start",
                         "max_edits", "fixed", "avoid", "gc", "gan", "weights", "direct", "n", "length",
                         "straight_through", "seed", "annotate", "jaspar_taxon", "jaspar_collection", "annotate_pvalue"},
}
ABSENT = {"ggan-eval": {"precision"}}  # fixed by the command (every method scored in float32)


def drift(command, options: RecipeOptions, not_recipe: set[str], absent: set[str] = frozenset()) -> list[str]:
    """Each way ``command``'s options disagree with ``options``' recipe (empty when none)."""
    problems = []
    names = set()
    for p in command.params:
        names.add(p.name)
        if p.name in options.fields:
            expected = options.default(p.name)
            if options.fields[p.name] not in options.recipe.__dataclass_fields__:
                problems.append(f"--{p.name}: no field {options.fields[p.name]!r} in {options.recipe.__name__}")
            elif p.default != expected or type(p.default) is not type(expected):
                problems.append(f"--{p.name} defaults to {p.default!r}, {options.recipe.__name__}."
                                f"{options.fields[p.name]} to {expected!r}")
        elif p.name not in not_recipe:
            problems.append(f"--{p.name} is neither mapped to a {options.recipe.__name__} field nor declared a "
                            "non-recipe option")
    problems += [f"--{name} is in the table but not an option" for name in set(options.fields) - names - set(absent)]
    return problems


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_cli_default_is_its_recipe_field(name):
    command = get_command(app).commands[name]
    assert drift(command, RECIPES[name], NOT_RECIPE[name], ABSENT.get(name, set())) == []
    mapped = [p.name for p in command.params if p.name in RECIPES[name].fields]
    assert len(mapped) >= 4, mapped


def test_every_training_or_design_command_is_checked():
    group = get_command(app)
    for name, command in group.commands.items():
        if name in ("sweep", "models", "demo"):
            continue
        params = {p.name for p in command.params}
        if params & {"epochs", "steps", "iterations", "resume"}:
            assert name in RECIPES, f"{name} trains or designs: map its options with a RecipeOptions and list it here"


def test_a_drifting_option_is_caught():
    @dataclasses.dataclass
    class Recipe:
        rate: float = 0.5
        rounds: int = 3

    options = RecipeOptions(Recipe, {"lr": "rate", "rounds": "rounds"})
    toy = typer.Typer(add_completion=False)

    @toy.command()
    def train(lr: Annotated[float, typer.Option("--lr")] = 0.25, rounds: Annotated[int, typer.Option("--rounds")] = 3,
              extra: Annotated[int, typer.Option("--extra")] = 1) -> None:
        pass

    problems = drift(get_command(toy), options, set())
    assert problems == ["--lr defaults to 0.25, Recipe.rate to 0.5",
                        "--extra is neither mapped to a Recipe field nor declared a non-recipe option"]
    with pytest.raises(TypeError):
        RecipeOptions(Recipe, {"lr": "learning_rate"})  # a field the recipe does not have


def test_recipes_are_built_by_keyword_and_checked():
    from gengen.recipes import DesignSettings
    from gengen.vae.train import VAERecipe

    recipe = VAE_OPTIONS.build({"lr": 1e-3, "latent": 5, "beta": None, "data": "ignored"})
    assert recipe == VAERecipe(learning_rate=1e-3, latent_dim=5)
    with pytest.raises(GengenError, match="--regime must be one of"):
        VAE_OPTIONS.build({"regime": "huge"})
    assert DESIGN_OPTIONS.build({"lr": None, "steps": 7}) == DesignSettings(steps=7)  # None: the recipe's 0.1
    gan = GAN_OPTIONS.build({"heldout_fraction": None, "lr": 2e-4}, heldout_fraction=0.2)
    assert gan.heldout_fraction == 0.2 and gan.learning_rate == 2e-4
    with pytest.raises(GengenError, match="learning rate must be positive"):
        GAN_OPTIONS.build({"lr": -1.0})


def test_the_library_defaults_of_design_are_its_settings():
    from gengen.dna.designer.design import design
    from gengen.recipes import DesignSettings

    params = inspect.signature(design).parameters
    for f in dataclasses.fields(DesignSettings):
        assert params[f.name].default == f.default, f.name


def test_output_names_drop_every_data_suffix():
    assert output_stem(Path("d/x.csv.gz")) == "x" and output_stem(Path("x.gctx")) == "x"
    assert beside(Path("d/x.tsv.gz"), ".vae.h5ad") == Path("d/x.vae.h5ad")
    assert beside(Path("q.h5ad"), ".targets.csv") == Path("q.targets.csv")


# commands that only move files or read what is already computed (no model, no data crunching)
NO_COMPUTE = {("models", "list"), ("models", "show"), ("models", "default"), ("models", "remove"), ("models", "add")}


def _leaf_commands(command, prefix=()):
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "commands", None):
            yield from _leaf_commands(sub, (*prefix, name))
        else:
            yield (*prefix, name), sub


def test_every_command_that_computes_takes_threads():
    """Issue 18, item 13: vae-decode, vae-sample, vae-features, vae-import-tybalt and demo refused
    --threads. Every command of the app (walked, so a new one is checked too) takes the shared --threads
    option unless it is declared here as one that computes nothing."""
    from gengen.cli._options import ThreadsOpt

    expected = ThreadsOpt.__metadata__[0]
    commands = dict(_leaf_commands(get_command(app)))
    assert len(commands) >= 25 and NO_COMPUTE <= set(commands)
    missing, different = [], []
    for path, command in commands.items():
        if path in NO_COMPUTE:
            continue
        option = next((p for p in command.params if p.name == "threads"), None)
        if option is None or option.opts != ["--threads"]:
            missing.append(" ".join(path))
        elif option.help != expected.help:
            different.append(" ".join(path))
    assert not missing, f"commands that compute but refuse --threads: {missing}"
    assert not different, f"--threads declared by hand instead of opt.ThreadsOpt: {different}"


@pytest.mark.parametrize("argv", [["vae-sample", "-n", "2"], ["vae-decode", "z.csv"], ["vae-features"],
                                  ["vae-import-tybalt", "d.hdf5", "--genes", "g.txt", "-o", "imp"], ["demo", "--only", "vae"]])
def test_threads_is_applied_before_the_work(argv, tmp_path, monkeypatch):
    """--threads reaches gengen.runtime.set_threads first (the command then fails on the missing model or files)."""
    import gengen.runtime

    seen = []

    def fake(n=None):
        seen.append(n)
        raise GengenError("stop here")

    import gengen.cli.vae

    monkeypatch.setattr(gengen.runtime, "set_threads", fake)
    monkeypatch.setattr(gengen.cli.vae, "set_threads", fake)
    monkeypatch.chdir(tmp_path)
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, [*argv, "--threads", "3"])
    assert r.exit_code == 2 and "stop here" in r.output and seen == [3], r.output
