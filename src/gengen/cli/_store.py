"""How every command meets the model store, so it behaves one way everywhere.

- :func:`model_or_default`: a ``--model`` / ``--predictor`` / ``--gan`` value as given (a folder or a
  store name, resolved by :func:`gengen.store.resolve_model` when loading), or, left out, the store's
  default model of the pipeline, announced in one line.
- :data:`TRAINING_OPTIONS` (``--resume``, ``--checkpoint-every``, ``--checkpoint-minutes``) and
  :meth:`TrainingRun.folder`: a resumable trainer's output folder, checked and claimed before any work.
- :func:`train_output` then :func:`stored_as_default`: a trainer run without ``-o`` saves into the store
  under a name made from its input file and becomes its pipeline's default (always: the model a
  user has just trained is the one the next command should use; the line printed says which it replaced).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gengen.cli import _options as opt
from gengen.cli._app import say
from gengen.errors import GengenError

if TYPE_CHECKING:
    from gengen.training_state import Checkpointing


def model_or_default(spec: str | None, pipeline: str, quiet: bool = False) -> str | Path:
    """What ``--model`` names, or (left out) the store's default model of ``pipeline``, said in one line."""
    if spec is not None:
        return spec
    from gengen.store import default_model

    info = default_model(pipeline)
    say(f"model: {info.name} (the default {info.label} model; --model to use another)", quiet)
    return info.path


def train_output(output: Path | None, data: Path, pipeline: str) -> Path:
    """``-o`` as given, or (left out) a new folder in the store named after ``data``.

    The folder is claimed now, before any work; if the command fails before saving, the empty folder is
    removed when the command ends (and the store never lists an empty folder meanwhile).
    """
    if output is not None:
        return output
    from gengen.runtime import on_command_exit
    from gengen.store import check_defaults, release, reserve

    check_defaults()  # a broken defaults.json (or its lock) fails now, not after the training
    path = reserve(data, pipeline)
    on_command_exit(lambda: release(path))
    return path


def stored_as_default(path: Path, pipeline: str, quiet: bool = False) -> None:
    """After training into the store: make the model its pipeline's default and say so in one line."""
    from gengen.store import pipeline_label, set_default

    before = set_default(pipeline, path.name)
    was = f"; it replaces {before!r} (gengen models default {pipeline} {before} to go back)" if before and before != path.name else ""
    say(
        f"saved in the model store as {path.name!r}; it is now the default {pipeline_label(pipeline)} model, "
        f"{_USED_WHEN.get(pipeline, 'used when --model is left out').format(name=path.name)}{was}",
        quiet,
    )


def require_resume_output(resume: bool, output: Path | None) -> None:
    """``--resume`` continues a named checkpoint: without ``-o`` there is nothing to continue."""
    if resume and output is None:
        raise GengenError("--resume continues a checkpoint: name it with -o (its folder; for a store model the path "
                          "`gengen models show NAME` prints).")


@dataclass(frozen=True)
class TrainingRun:
    """A resumable trainer's ``--resume``, ``--checkpoint-every`` and ``--checkpoint-minutes``."""

    resume: bool = False
    checkpoint_every: int | None = None
    checkpoint_minutes: float | None = None

    def folder(self, output: Path | None, data: Path, pipeline: str, inputs: tuple = ()) -> TrainingFolder:
        """Check the options, claim ``-o`` (or a new store folder) and lock it, before any data are
        read; resuming, read the checkpoint's recipe (a missing or foreign checkpoint fails now)."""
        from gengen import distributed
        from gengen.checkpoint import overwrite_check
        from gengen.runtime import plan_outputs
        from gengen.store import input_paths
        from gengen.training_state import Checkpointing, check_intervals, read_training_section

        check_intervals(self.checkpoint_every, self.checkpoint_minutes)
        require_resume_output(self.resume, output)
        main = distributed.is_main()  # under torchrun rank 0 claims and locks the folder; the others train into it
        if main:
            to_store, path = output is None, train_output(output, data, pipeline)  # no -o: a new model in the store
            plan_outputs(models={path: overwrite_check(pipeline)}, inputs=input_paths([data, *inputs]))  # before training, not after
        shared = distributed.broadcast_object(str(path) if main else None)
        if not main:
            to_store, path = False, Path(shared)
        saved = read_training_section(path, pipeline).get("recipe") if self.resume else None
        plan = Checkpointing(path, self.resume, self.checkpoint_every, self.checkpoint_minutes)
        return TrainingFolder(path, pipeline, to_store, plan, saved)


@dataclass(frozen=True)
class TrainingFolder:
    """Where a trainer writes: ``path``, whether it is a new store model, its checkpoint plan and,
    resuming, the recipe the run was given."""

    path: Path
    pipeline: str
    to_store: bool
    checkpoint: Checkpointing
    saved_recipe: dict | None

    def done(self, quiet: bool = False) -> None:
        """The model is saved: a new store model becomes the default; print the folder (rank 0 under torchrun)."""
        from gengen import distributed

        if not distributed.is_main():
            return
        if self.to_store:
            stored_as_default(self.path, self.pipeline, quiet)
        typer.echo(str(self.path))


TRAINING_OPTIONS = opt.OptionGroup(
    "training", {"resume": opt.ResumeOpt, "checkpoint_every": opt.CheckpointEveryOpt, "checkpoint_minutes": opt.CheckpointMinutesOpt},
    {"resume": False, "checkpoint_every": None, "checkpoint_minutes": None}, make=TrainingRun)


def resumable(recipe_options: opt.RecipeOptions):
    """Decorate a resumable trainer: its ``recipe`` options, then the :data:`TRAINING_OPTIONS`."""
    return lambda command: TRAINING_OPTIONS(recipe_options(command))


# where a pipeline's default model is used: only commands that need a model fall back on it; dna-design
# keeps "no --predictor / --gan" meaning "design directly toward --motif", so those are named explicitly
_USED_WHEN = {
    "dna-gan": "used by dna-generate and dna-eval when --model is left out (dna-design: --gan {name})",
    "dna-predictor": "use it with --predictor {name} (dna-design, dna-score, --objective predictor={name})",
}
