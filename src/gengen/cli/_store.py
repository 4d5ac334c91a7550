"""How every command meets the model store, so it behaves one way everywhere.

- :func:`model_or_default`: a ``--model`` / ``--predictor`` / ``--gan`` value as given (a folder or a
  store name, resolved by :func:`gengen.store.resolve_model` when loading), or, left out, the store's
  default model of the pipeline, announced in one line.
- :func:`train_output` then :func:`stored_as_default`: a trainer run without ``-o`` saves into the store
  under a name made from its input file and becomes its pipeline's default (always: the model a
  user has just trained is the one the next command should use; the line printed says which it replaced).
"""

from __future__ import annotations

from pathlib import Path

from gengen.cli._app import say


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
    from gengen.store import read_defaults, release, reserve

    read_defaults()  # a broken defaults.json fails now, not after the training
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


# where a pipeline's default model is used: only commands that need a model fall back on it; dna-design
# keeps "no --predictor / --gan" meaning "design directly toward --motif", so those are named explicitly
_USED_WHEN = {
    "dna-gan": "used by dna-generate and dna-eval when --model is left out (dna-design: --gan {name})",
    "dna-predictor": "use it with --predictor {name} (dna-design, dna-score, --objective predictor={name})",
}
