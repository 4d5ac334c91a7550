"""``gengen models``: list, show, remove and add stored models, and pick each pipeline's default.

Thin over :mod:`gengen.store`; the helpers the pipeline commands use are in :mod:`gengen.cli._store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gengen.cli import _options as opt
from gengen.cli._app import app, command_group, say
from gengen.errors import GengenError

models_app = command_group(
    "models", "The model store ($GENGEN_HOME/models): list, show, remove, add, and each pipeline's default model.",
    no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(models_app, name="models", rich_help_panel="Model store")

PipelineArg = Annotated[str, typer.Argument(help="vae | ggan | dna-gan | dna-predictor.", show_default=False)]


# ---------------------------------------------------------------------------------- gengen models ...
def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _created(stamp: str) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


@models_app.callback(invoke_without_command=True)
def _models(ctx: typer.Context) -> None:
    """The model store ($GENGEN_HOME/models); with no command, the same as 'gengen models list'."""
    if ctx.invoked_subcommand is None:
        models_list(pipeline=None)


@models_app.command("list")
def models_list(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Only models of this pipeline (vae, ggan, dna-gan, dna-predictor).")
    ] = None,
) -> None:
    """Every stored model: name, pipeline (* = its default), created (UTC), size, summary. Reads config.json only."""
    from gengen.store import defaults_of, list_models, store_dir

    models = list_models(pipeline)
    if not models:
        typer.echo(f"# no {pipeline + ' ' if pipeline else ''}models in {store_dir()}; training without -o saves there")
        return
    defaults = defaults_of()
    rows = [("name", "pipeline", "created (UTC)", "size", "summary")]
    for m in models:
        mark = "*" if defaults.get(m.pipeline) == m.name else ""
        rows.append((m.name, m.pipeline + mark, _created(m.created), _size(m.size_bytes), m.summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
    typer.echo(f"# {count} in {store_dir()}; * = the pipeline's default (used when --model is left out)")
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    stale = {p: n for p, n in defaults.items() if (p, n) not in {(m.pipeline, m.name) for m in models}}
    unreadable = {m.name for m in models if m.problem}
    if pipeline is None:
        for p, n in sorted(stale.items()):
            state = "unreadable (see above)" if n in unreadable else "missing"
            typer.echo(f"# the default {p} model {n!r} is {state}: gengen models default {p} NAME")
    if unreadable:
        typer.echo(f"# {len(unreadable)} model{'s' if len(unreadable) != 1 else ''} cannot be read: restore "
                   "{} from a copy, or remove with 'gengen models remove NAME'".format("them" if len(unreadable) > 1 else "it"))


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="A model name (gengen models list).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print config.json as stored.")] = False,
) -> None:
    """One stored model: where it is, what it was trained with, its metrics (from config.json)."""
    import json

    from gengen.store import defaults_of, model_info

    m = model_info(name)
    cfg = m.config()
    if as_json:
        typer.echo(json.dumps(cfg, indent=1))
        return
    recipe = cfg["recipe"] if isinstance(cfg.get("recipe"), dict) else {}
    default = " (default)" if defaults_of().get(m.pipeline) == m.name else ""
    lines = [
        ("name", m.name),
        ("pipeline", m.pipeline + default),
        ("path", str(m.path)),
        ("created", cfg.get("created", "-")),
        ("size", _size(m.size_bytes)),
        ("summary", m.summary or "-"),
        ("seed", str(cfg.get("seed", recipe.get("seed", "-")))),
    ]
    for key in ("recipe", "metrics", "architecture"):
        value = cfg.get(key)
        if isinstance(value, dict) and value:
            flat = [f"{k}={_short(v)}" for k, v in value.items() if k != "notes" and _short(v) is not None]
            lines.append((key, " ".join(flat)))
            notes = value.get("notes")
            lines += [("note", str(n)) for n in (notes if isinstance(notes, list) else [notes] if notes else [])]
    versions = cfg.get("versions")
    if isinstance(versions, dict):
        lines.append(("versions", " ".join(f"{k} {v}" for k, v in versions.items())))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        typer.echo(f"{k.ljust(width)}  {v}")


def _short(v) -> str | None:
    """A config value in one token (None for what does not fit: long lists, nested tables)."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) <= 6 and all(isinstance(x, int | float | str) for x in v):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict | list):
        return None
    return str(v)


@models_app.command("remove")
def models_remove(
    name: Annotated[str, typer.Argument(help="A model name (gengen models list); never a path.", show_default=False)],
    quiet: opt.QuietOpt = False,
) -> None:
    """Delete a stored model (only a gengen model folder in the store); a default it was is unset."""
    from gengen.store import PIPELINES, remove_model

    path, cleared = remove_model(name)
    typer.echo(f"removed {name!r} ({path})")
    for p in cleared:
        say(f"it was the default {PIPELINES[p][0]} model: none now (gengen models default {p} NAME)", quiet)


@models_app.command("default")
def models_default(
    pipeline: PipelineArg,
    name: Annotated[
        str | None, typer.Argument(help="Make this stored model the default (leave out to show the default).")
    ] = None,
) -> None:
    """Show (PIPELINE) or set (PIPELINE NAME) the model commands use when --model is left out."""
    from gengen.store import (
        PIPELINES,
        check_pipeline,
        default_model,
        default_name,
        model_names,
        pipeline_label,
        set_default,
    )

    pipeline = check_pipeline(pipeline)
    if name is None:
        if default_name(pipeline) is None:  # a question, not a command needing a model: no --model talk
            have = model_names(pipeline)
            pick = f", or pick one of the store's: gengen models default {pipeline} {have[0]}" if have else ""
            raise GengenError(f"no default {pipeline_label(pipeline)} model yet: make one with "
                              f"'{PIPELINES[pipeline][1]}' (it becomes the default){pick}.")
        typer.echo(default_model(pipeline).name)
        return
    before = set_default(pipeline, name)
    was = f" (was {before!r})" if before and before != name else ""
    typer.echo(f"default {pipeline_label(pipeline)} model: {name!r}{was}")


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(help="A gengen model folder (config.json + model.safetensors).", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="Store name (default: the folder's name).")] = None,
) -> None:
    """Copy an existing model folder into the store (the default of its pipeline if it has none)."""
    from gengen.store import add_model, defaults_of

    info = add_model(path, name)
    default = " (now the default " + info.label + " model)" if defaults_of().get(info.pipeline) == info.name else ""
    typer.echo(f"added {info.name!r}: {info.pipeline}, {info.summary}{default}")
