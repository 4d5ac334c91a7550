"""The model store: named models under ``$GENGEN_HOME/models`` and one default model per pipeline.

A user who trains without ``-o`` gets a model in the store under a readable name, and it becomes the
default of its pipeline, so the next command works without ``--model``::

    gengen ggan-train ref.h5ad --landmarks lm.txt     # saved as 'ref-ggan', now the default GGAN model
    gengen infer-targets landmarks.csv                # uses 'ref-ggan' and says so

Everything here reads ``config.json`` only (and ``stat``s files for their size): the weights are never
opened, so listing a store of hundreds of models is instant. The defaults live in
``$GENGEN_HOME/defaults.json`` (``{"defaults": {"ggan": "ref-ggan", ...}}``), rewritten atomically.

One resolver, :func:`resolve_model`, turns every ``--model`` / ``--predictor`` / ``--gan`` value into a
checkpoint directory the same way: an existing model folder (a path) first, then a name in the store,
then (when the value is left out) the pipeline's default.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gengen.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, read_config
from gengen.errors import GengenError
from gengen.runtime import atomic_path, copy_regular_tree, new_temp, output_lock, read_json, remove_temp
from gengen.runtime.outputs import COMPRESSION_SUFFIXES

__all__ = [
    "ModelInfo", "add_model", "check_defaults", "check_name", "check_pipeline", "clear_default", "default_model",
    "default_name", "defaults_of", "input_paths", "list_models", "model_home", "model_info", "model_names",
    "name_from", "pipeline_label", "read_defaults", "release", "remove_model", "reserve", "resolve_model",
    "set_default", "store_dir", "summarise",
]

#: pipeline -> (label, the command that trains one into the store)
PIPELINES: dict[str, tuple[str, str]] = {
    "vae": ("VAE", "gengen vae-train DATA.h5ad"),
    "ggan": ("GGAN", "gengen ggan-train REFERENCE.h5ad --landmarks LANDMARKS.txt"),
    "dna-gan": ("DNA GAN", "gengen dna-train SEQUENCES.fa"),
    "dna-predictor": ("DNA predictor", "gengen dna-train-predictor PROBES.fa --scores SCORES.csv"),
}
DEFAULTS_NAME = "defaults.json"
INDEX_NAME = ".index.json"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_DATA_SUFFIXES = (*COMPRESSION_SUFFIXES, ".h5ad", ".csv", ".tsv", ".txt", ".parquet", ".gctx", ".gct",
                  ".fa", ".fasta", ".fna", ".fas")


@dataclass(frozen=True)
class ModelInfo:
    """What the store knows about one model, from its ``config.json`` alone."""

    name: str
    path: Path
    pipeline: str
    created: str
    size_bytes: int
    summary: str
    problem: str = ""  # why its config.json cannot be read ('' for a readable model); listed, never loaded

    def config(self) -> dict[str, Any]:
        """The model's whole ``config.json`` (read now: listings keep only the summary)."""
        config = _read_config(self.path)
        if config is None:
            raise GengenError(f"{str(self.path / CONFIG_NAME)!r} is missing or not a gengen config.")
        return config

    @property
    def label(self) -> str:
        """Human name of the pipeline ('GGAN', 'DNA GAN', ...)."""
        return pipeline_label(self.pipeline)


def model_home() -> Path:
    """Where named models live: ``$GENGEN_HOME/models`` (default ``~/.local/share/gengen/models``)."""
    home = os.environ.get("GENGEN_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "gengen"
    return base / "models"


def store_dir() -> Path:
    """The folder of named models: ``$GENGEN_HOME/models`` (default ``~/.local/share/gengen/models``)."""
    return model_home()


def defaults_path() -> Path:
    """Where the per-pipeline default models are recorded: ``$GENGEN_HOME/defaults.json``."""
    return store_dir().parent / DEFAULTS_NAME


def pipeline_label(pipeline: str) -> str:
    """'GGAN' for 'ggan', and so on (the pipeline string itself when unknown)."""
    return PIPELINES.get(pipeline, (pipeline, ""))[0]


def check_pipeline(pipeline: str) -> str:
    """A known pipeline name (case-insensitive), or a one-line error listing them."""
    key = str(pipeline).strip().lower()
    if key not in PIPELINES:
        raise GengenError(f"unknown pipeline {pipeline!r}; use one of {', '.join(PIPELINES)}.")
    return key


def check_name(name: str) -> str:
    """A valid store name: letters, digits and ``. _ + -``, starting with a letter or digit, ≤ 100 characters.

    Path separators and other characters are refused so a name can never point outside the store.
    """
    name = str(name)
    if not NAME_PATTERN.fullmatch(name):
        raise GengenError(
            f"{name!r} is not a model name: use letters, digits and . _ + - (starting with a letter or digit, "
            "at most 100 characters, no '/'); see 'gengen models list'."
        )
    return name


def data_stem(source: str | os.PathLike) -> str:
    """A data file's name without its data and compression extensions (``HiSeqV2.gz`` -> ``HiSeqV2``,
    ``x.csv.gz`` -> ``x``, ``plate.gctx`` -> ``plate``): the base of every name made from an input."""
    stem = Path(source).name
    for _ in range(2):  # e.g. .csv.gz
        for suffix in _DATA_SUFFIXES:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
    return stem


def name_from(source: str | os.PathLike, pipeline: str) -> str:
    """A readable store name for a model trained on ``source``: its file stem plus the pipeline,
    e.g. ``bladderbatch-ggan`` for ``bladderbatch.h5ad`` (not yet made unique)."""
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", data_stem(source)).strip("-._+")[:60] or "model"
    return f"{stem}-{check_pipeline(pipeline)}"


def reserve(source: str | os.PathLike, pipeline: str) -> Path:
    """Create an empty, uniquely named folder in the store for a model about to be trained on ``source``.

    The name comes from :func:`name_from`, with ``-2``, ``-3``, ... when taken. Creating the folder
    claims the name, so two trainings started together never pick the same one; :func:`release`
    removes it again if the training fails before writing anything.

    Returns
    -------
    Path
        The new, empty folder (``save_checkpoint`` fills an empty folder in place).
    """
    base = name_from(source, pipeline)
    root = store_dir()
    for i in range(1, 10_000):
        path = root / (base if i == 1 else f"{base}-{i}")
        try:
            root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise GengenError(
                f"cannot create a model folder in the store {str(root)!r} ({exc.strerror}); give -o DIR, or set "
                "GENGEN_HOME to a writable folder."
            ) from None
        return path
    raise GengenError(f"too many models named {base!r}-N in {str(root)!r}; remove some (gengen models remove NAME).")


def release(path: str | os.PathLike) -> None:
    """Remove a folder made by :func:`reserve` if nothing was saved in it (a failed or interrupted run)."""
    with contextlib.suppress(OSError):
        Path(path).rmdir()  # only succeeds on an empty folder


def _read_config(directory: Path) -> dict | None:
    """The folder's config.json when it is a gengen checkpoint config, None when there is none or it is
    another program's JSON (never the weights); a config.json that cannot be read (a named pipe, not
    JSON, nested too deep) is a one-line GengenError saying so."""
    try:
        config = read_config(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise GengenError(f"cannot read {str(directory / CONFIG_NAME)!r}: {exc.strerror or exc}.") from None
    if not isinstance(config, dict) or "format_version" not in config or not isinstance(config.get("pipeline"), str):
        return None
    return config


def _size(directory: Path) -> int:
    """Bytes of the files in the folder, from ``stat`` (no file is opened)."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(directory) as it:
        for entry in it:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list | dict) else None


def summarise(config: dict) -> str:
    """One line about a model from its config: sizes, genes, the headline validation metric."""
    pipeline = config.get("pipeline")
    metrics = config.get("metrics") if isinstance(config.get("metrics"), dict) else {}
    arch = config.get("architecture") if isinstance(config.get("architecture"), dict) else {}
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    parts: list[str] = []
    try:
        if pipeline == "ggan":
            n_l, n_t = _count(config.get("landmarks")), _count(config.get("targets"))
            if n_l is not None and n_t is not None:
                parts.append(f"{n_l} landmarks -> {n_t} targets")
            if isinstance(arch.get("hidden"), list):
                parts.append("hidden " + "x".join(str(h) for h in arch["hidden"]))
            if isinstance(metrics.get("best_val_mae"), int | float):
                parts.append(f"val MAE {metrics['best_val_mae']:.4f}")
        elif pipeline == "vae":
            n_genes = _count(config.get("genes")) or arch.get("n_genes")
            if n_genes is not None:
                parts.append(f"{n_genes} genes -> {arch.get('latent_dim', '?')} features")
            if config.get("decoder_only"):
                parts.append("decoder only")
            if isinstance(metrics.get("val_recon"), int | float):
                parts.append(f"val recon {metrics['val_recon']:.1f}")
            if recipe.get("tybalt_compat"):
                parts.append("tybalt-compat")
        elif pipeline == "dna-gan":
            if "length" in recipe:
                parts.append(f"{recipe['length']} nt")
            if "iteration" in config:
                parts.append(f"iteration {config['iteration']}")
            js = metrics.get("js_k4")
            if isinstance(js, int | float):
                parts.append(f"held-out JS k4 {js:.4f}")
        elif pipeline == "dna-predictor":
            if "length" in config:
                parts.append(f"CNN, {config['length']} nt")
            if isinstance(metrics.get("val_pearson"), int | float):
                parts.append(f"held-out r {metrics['val_pearson']:.4f}")
    except (TypeError, ValueError):  # a hand-edited config: say what we can
        pass
    return ", ".join(parts)


def _info(path: Path, config: dict) -> ModelInfo:
    return ModelInfo(
        name=path.name,
        path=path,
        pipeline=str(config["pipeline"]),
        created=str(config.get("created", "")),
        size_bytes=_size(path),
        summary=summarise(config),
    )


def _stamp(config_path: Path) -> list[int] | None:
    """What identifies one version of a config.json without reading it: inode, size, mtime."""
    try:
        st = config_path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


_INDEX_ROW = {"stamp": list, "pipeline": str, "created": str, "summary": str}


def _read_index(root: Path) -> dict | None:
    """The index's rows ({} when there is none yet); None for a damaged index (any way: not JSON, nested
    too deep, a link, a pipe), a cache to rebuild."""
    try:
        index = read_json(root / INDEX_NAME, "store index", follow=False)
    except FileNotFoundError:
        return {}
    except (OSError, GengenError):
        return None
    if not isinstance(index, dict) or index.get("format_version") != 1 or not isinstance(index.get("models"), dict):
        return None
    return index["models"]


def _index_row(hit: Any, stamp: list[int]) -> dict | None:
    """The cached row when it is complete and for this version of the config (else it is re-read)."""
    if not isinstance(hit, dict) or hit.get("stamp") != stamp:
        return None
    if any(not isinstance(hit.get(key), kind) for key, kind in _INDEX_ROW.items()):
        return None
    return hit


def _write_index(root: Path, models: dict) -> None:
    """Best effort: a read-only store, or a race with another listing, only costs the next listing time."""
    with contextlib.suppress(OSError, GengenError), atomic_path(root / INDEX_NAME) as tmp:
        tmp.write_text(json.dumps({"format_version": 1, "models": models}, separators=(",", ":")))


def list_models(pipeline: str | None = None) -> list[ModelInfo]:
    """Every model in the store (of ``pipeline`` when given), sorted by name.

    Reads each folder's ``config.json`` and ``stat``s its files; the weights are never opened. What a
    config says is kept in ``models/.index.json`` keyed by the config file's inode, size and mtime, so a
    config is parsed once, not at every listing (a D-GEX-size GGAN config is ~0.4 MB of gene names).
    Hidden folders (a save or removal in progress) and folders that are not gengen checkpoints are skipped;
    a model whose config.json cannot be read is listed with pipeline ``?`` and the reason as
    ``problem``, so one damaged model never hides the others.
    """
    wanted = check_pipeline(pipeline) if pipeline is not None else None
    root = store_dir()
    if not root.is_dir():
        return []
    cached, index, found = _read_index(root), {}, []
    damaged, cached = cached is None, cached or {}
    with os.scandir(root) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            path = Path(entry.path)
            stamp = _stamp(path / CONFIG_NAME)
            if stamp is None:
                continue
            row = _index_row(cached.get(entry.name), stamp)
            if row is None:
                try:
                    config = _read_config(path)
                except GengenError as exc:
                    if wanted is None:
                        found.append(ModelInfo(name=entry.name, path=path, pipeline="?", created="",
                                               size_bytes=_size(path), summary=f"unreadable: {exc}", problem=str(exc)))
                    continue
                if config is None:
                    continue
                row = {"stamp": stamp, "pipeline": str(config["pipeline"]), "created": str(config.get("created", "")),
                       "summary": summarise(config)}
            index[entry.name] = row
            if wanted is None or row["pipeline"] == wanted:
                found.append(ModelInfo(name=entry.name, path=path, pipeline=row["pipeline"], created=row["created"],
                                       size_bytes=_size(path), summary=row["summary"]))
    if index != cached or damaged:
        _write_index(root, index)
    return sorted(found, key=lambda m: m.name)


def model_names(pipeline: str | None = None) -> list[str]:
    """Names of the store's readable models (of ``pipeline`` when given)."""
    return [m.name for m in list_models(pipeline) if not m.problem]


def _unknown(name: str, pipeline: str | None, as_path: bool = False) -> GengenError:
    """'no model X' with the close names (difflib) of the same pipeline, or how to see them all."""
    names = model_names(pipeline) or model_names()
    lower = {n.lower(): n for n in names}
    close = ([lower[name.lower()]] if name.lower() in lower else []) + difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))[:3]
    kind = f"{pipeline_label(pipeline)} model" if pipeline else "model"
    where = f"no {kind} {name!r} in the store ({store_dir()})"
    if as_path:
        where = f"no folder {name!r} here and " + where
    if close:
        return GengenError(f"{where}; did you mean {' or '.join(repr(c) for c in close)}? (gengen models list)")
    if names:
        return GengenError(f"{where}; see its models with 'gengen models list'.")
    hint = f"; train one with '{PIPELINES[pipeline][1]}' (without -o it is saved there)" if pipeline in PIPELINES else ""
    return GengenError(f"{where}, which holds no {kind}s{hint}.")


def model_info(name: str) -> ModelInfo:
    """The store's model called ``name`` (see :func:`list_models` for what is read)."""
    path = store_dir() / check_name(name)
    if not path.is_dir():
        raise _unknown(name, None)
    config = _read_config(path)
    if config is None:
        raise GengenError(f"{str(path)!r} is in the store but is not a gengen model (no valid {CONFIG_NAME}).")
    return _info(path, config)


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file()


def input_paths(inputs) -> list[Path]:
    """The paths a command reads, for :func:`gengen.runtime.plan_outputs`'s ``inputs``: model names
    resolved to their store folders (so an output never replaces a model being read); None, empty and
    values that are neither a path nor a model skipped.

    Parameters
    ----------
    inputs : iterable of paths, model names or None.

    Returns
    -------
    The paths, in order.
    """
    found = []
    for item in inputs:
        if item is None or str(item) == "":
            continue
        path = Path(item)
        if not (path.exists() or path.is_symlink()):
            try:
                path = resolve_model(str(item))
            except (GengenError, OSError):
                continue
        found.append(path)
    return found


def resolve_model(spec: str | os.PathLike | None, pipeline: str | None = None) -> Path:
    """The checkpoint folder that a ``--model`` value means; the one resolver every command uses.

    Parameters
    ----------
    spec
        A model folder (path), a ``config.json`` inside one, a store name, or ``None`` for the
        pipeline's default model (:func:`default_model`).
    pipeline
        The pipeline the caller needs ('vae', 'ggan', 'dna-gan', 'dna-predictor'): picks the default
        and narrows the close-name suggestions. The pipeline itself is checked when loading.

    Returns
    -------
    Path
        The folder. A local folder that holds a ``config.json`` wins over a store model of the same name.
    """
    if spec is None:
        if pipeline is None:
            raise GengenError("no model given: name one with --model.")
        return default_model(pipeline).path
    p = Path(spec)
    if _is_model_dir(p):
        return p
    if p.name == CONFIG_NAME and p.is_file():
        return p.parent
    text = str(spec)
    if NAME_PATTERN.fullmatch(text) and (store_dir() / text).is_dir():
        return store_dir() / text
    if p.is_dir():
        return p  # an existing folder that is not a model: loading says what is missing
    if NAME_PATTERN.fullmatch(text):
        raise _unknown(text, pipeline, as_path=True)
    raise GengenError(
        f"model {text!r} not found: give a checkpoint directory (with {CONFIG_NAME} and {WEIGHTS_NAME}) "
        f"or the name of a model in the store ({store_dir()}; gengen models list)."
    )


# ---------------------------------------------------------------------------------------------- defaults
@contextlib.contextmanager
def _defaults_lock() -> Iterator[None]:
    """Serialise read-modify-write of defaults.json between processes: its write lock (never through a
    link planted at the lock's name), waited for a while since another run holds it only briefly."""
    path = defaults_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GengenError(f"cannot write {str(path)!r}: {exc.strerror}; set GENGEN_HOME to a writable folder.") from None
    with output_lock(path, wait=30.0):
        yield


def read_defaults() -> dict[str, str]:
    """pipeline -> model name, as recorded (not checked against the store; see :func:`default_model`)."""
    path = defaults_path()
    fix = "delete it and set the defaults again (gengen models default PIPELINE NAME)"
    try:
        data = read_json(path, "defaults file", fix=fix)
        defaults = data["defaults"]
        if not isinstance(defaults, dict):
            raise TypeError
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, KeyError, TypeError):
        raise GengenError(f"{str(path)!r} is not a gengen defaults file; {fix}.") from None
    return {str(k): str(v) for k, v in defaults.items()}


def check_defaults() -> dict[str, str]:
    """The recorded defaults, read under their lock: a damaged defaults.json or a lock file gengen may
    not take (a link planted at its name) fails now, before a training or a copy, not after it.

    Returns
    -------
    pipeline -> model name, as :func:`read_defaults`.
    """
    with _defaults_lock():
        return read_defaults()


def _write_defaults(defaults: dict[str, str]) -> None:
    with atomic_path(defaults_path()) as tmp:
        tmp.write_text(json.dumps({"format_version": 1, "defaults": dict(sorted(defaults.items()))}, indent=1) + "\n")


def set_default(pipeline: str, name: str) -> str | None:
    """Make the store's model ``name`` the default of ``pipeline``; returns the previous default's name.

    Refuses a name that is not in the store or is a model of another pipeline.
    """
    pipeline = check_pipeline(pipeline)
    check_name(name)
    if not (store_dir() / name).is_dir():
        raise _unknown(name, pipeline)
    info = model_info(name)
    if info.pipeline != pipeline:
        raise GengenError(
            f"{name!r} is a {info.pipeline!r} model, not a {pipeline!r} model; pick one of "
            f"'gengen models list --pipeline {pipeline}'."
        )
    with _defaults_lock():
        defaults = read_defaults()
        before = defaults.get(pipeline)
        defaults[pipeline] = name
        _write_defaults(defaults)
    return before


def clear_default(pipeline: str) -> str | None:
    """Forget the default of ``pipeline``; returns the name it had (None when there was none)."""
    pipeline = check_pipeline(pipeline)
    with _defaults_lock():
        defaults = read_defaults()
        before = defaults.pop(pipeline, None)
        if before is not None:
            _write_defaults(defaults)
    return before


def default_name(pipeline: str) -> str | None:
    """The recorded default model name of ``pipeline`` (None when none was set)."""
    return read_defaults().get(check_pipeline(pipeline))


def default_model(pipeline: str) -> ModelInfo:
    """The default model of ``pipeline``, checked: it must still exist and be of that pipeline.

    Raises a one-line :class:`GengenError` that says how to fix each case: none set yet (the command
    that trains one), deleted from the store, or replaced by a model of another pipeline.
    """
    pipeline = check_pipeline(pipeline)
    label, train = PIPELINES[pipeline]
    name = default_name(pipeline)
    if name is None:
        others = model_names(pipeline)
        pick = f", or pick one of the store's: gengen models default {pipeline} {others[0]}" if others else ""
        raise GengenError(
            f"no {label} model given (--model) and no default {label} model yet: make one with "
            f"'{train}' (it becomes the default){pick}."
        )
    fix = f"pick another with 'gengen models default {pipeline} NAME' (see 'gengen models list')"
    if not NAME_PATTERN.fullmatch(name) or not (store_dir() / name).is_dir():
        raise GengenError(f"the default {label} model {name!r} is no longer in the store ({store_dir()}); {fix}.")
    config = _read_config(store_dir() / name)
    if config is None:
        raise GengenError(f"the default {label} model {name!r} is not a gengen model any more ({CONFIG_NAME}); {fix}.")
    if config["pipeline"] != pipeline:
        raise GengenError(
            f"the default {label} model {name!r} is a {config['pipeline']!r} model, not a {pipeline!r} model; {fix}."
        )
    return _info(store_dir() / name, config)


def defaults_of() -> dict[str, str]:
    """pipeline -> default name, for display (never raises on a stale entry)."""
    try:
        return read_defaults()
    except GengenError:
        return {}


# ---------------------------------------------------------------------------------------------- add / remove
def remove_model(name: str) -> tuple[Path, list[str]]:
    """Delete the store's model ``name``; returns (its former path, the pipelines it was the default of).

    Only a gengen model folder (with a gengen ``config.json``) in the store is removed, never a path
    outside it. The folder is first renamed to a hidden name in one step, so no command ever sees half
    of it, then deleted. A pipeline whose default it was is left without a default.
    """
    check_name(name)
    path = store_dir() / name
    if not path.is_dir():
        raise _unknown(name, None)
    try:
        config = _read_config(path)
    except GengenError:  # a damaged config.json: a model that cannot be used any more, listed as such
        config = {}
    if config is None and any(path.iterdir()):  # an empty folder is a training that never saved: fine
        raise GengenError(
            f"{str(path)!r} is not a gengen model (no valid {CONFIG_NAME}); refusing to remove it: "
            "delete it by hand if it is yours."
        )
    trash = new_temp(path, directory=True)  # a killed removal leaves a temporary the next write removes
    os.replace(path, trash / name)
    remove_temp(trash)
    cleared = []
    with _defaults_lock():
        defaults = defaults_of()
        for pipeline, default in list(defaults.items()):
            if default == name:
                cleared.append(pipeline)
                del defaults[pipeline]
        if cleared:
            _write_defaults(defaults)
    return path, cleared


def add_model(source: str | os.PathLike, name: str | None = None) -> ModelInfo:
    """Copy an existing model folder into the store under ``name`` (default: the folder's name).

    The copy is made under a hidden name and renamed into place, so a failed copy leaves nothing.
    Only regular files are copied, with the umask's mode: a link leaving the folder (``notes.txt ->
    ~/.ssh/id_rsa`` must not land in a shared store) or a special file (a pipe, ``/dev/zero``) is refused
    before anything is copied. It becomes its pipeline's default only when that pipeline has none yet.
    """
    src = Path(source)
    config = _read_config(src) if src.is_dir() else None
    if config is None or not (src / WEIGHTS_NAME).is_file():
        raise GengenError(f"{str(source)!r} is not a gengen model folder (with {CONFIG_NAME} and {WEIGHTS_NAME}).")
    if config["pipeline"] not in PIPELINES:
        raise GengenError(f"{str(source)!r} is a {config['pipeline']!r} model, which this gengen does not know.")
    load_checkpoint(src, config["pipeline"])  # a damaged model is refused here, not when first used
    if name is None:
        name = re.sub(r"[^A-Za-z0-9._+-]+", "-", src.resolve().name).strip("-._+")[:100] or "model"
    check_name(name)
    root = store_dir()
    target = root / name
    if target.exists():
        raise GengenError(f"the store already has a model {name!r}; choose another with --name.")
    if src.resolve().parent == root.resolve():
        raise GengenError(f"{str(source)!r} is already in the store.")
    root.mkdir(parents=True, exist_ok=True)
    check_defaults()
    tmp = new_temp(target, directory=True)
    try:
        copy_regular_tree(src, tmp / name, "model folder")
        try:
            os.rename(tmp / name, target)  # fails rather than replace a model added meanwhile
        except OSError:
            raise GengenError(f"the store already has a model {name!r}; choose another with --name.") from None
    finally:
        remove_temp(tmp)
    info = _info(target, config)
    with _defaults_lock():
        defaults = defaults_of()
        if info.pipeline not in defaults:
            defaults[info.pipeline] = name
            _write_defaults(defaults)
    return info
