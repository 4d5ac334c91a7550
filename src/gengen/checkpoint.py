"""Safe, self-describing checkpoints: a directory with ``model.safetensors`` + ``config.json``.

No pickle anywhere: weights are safetensors, everything else (architecture, hyper-parameters, gene
lists, scaler parameters, seed, versions, training metrics) is plain JSON a human can read.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.errors import GengenError, preview
from gengen.runtime import atomic_dir, load_json, log, open_regular, package_versions, read_json

if TYPE_CHECKING:
    import pandas as pd
    import torch

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HISTORY_NAME = "history.csv"
TRAINING_SECTION = "training"  # config.json's section of a resumable training run (gengen.training_state)
# SHA-256 of model.safetensors, written at save and checked at load: flipped bytes inside the weights
# would otherwise load silently and give wild numbers. Checkpoints from before it load unchecked.
HASH_KEY = "weights_sha256"




def save_checkpoint(
    directory: str | os.PathLike,
    pipeline: str,
    tensors: dict[str, torch.Tensor],
    *,
    config: dict[str, Any],
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint atomically; ``extra_files(tmpdir)`` may add history.csv, plots, samples.

    config.json records ``cpu_threads``: CPU results are identical per seed only at the same torch
    thread count, so the count belongs with the model. A trainer that ran at another count than the
    current one (``small_model_threads``) passes it in ``config``.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    meta = {
        "format_version": FORMAT_VERSION,
        "pipeline": pipeline,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "cpu_threads": torch.get_num_threads(),
    }
    full = {**meta, **config}
    check_overwrite(Path(directory), pipeline)
    with atomic_dir(directory) as tmp:
        check_overwrite(Path(directory), pipeline)  # again, now under the write lock
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        try:
            save_file(cpu, str(tmp / WEIGHTS_NAME), metadata={"pipeline": pipeline, "format_version": str(FORMAT_VERSION)})
        except SafetensorError as exc:  # the Rust writer's I/O errors (disk full, ...) are not OSErrors
            reason = str(exc).removeprefix("Error while serializing: ")
            raise GengenError(f"cannot write {str(directory)!r}: {reason}.") from None
        full[HASH_KEY] = _sha256((tmp / WEIGHTS_NAME).read_bytes())
        (tmp / CONFIG_NAME).write_text(json.dumps(full, indent=1, default=_json_default) + "\n")
        if extra_files is not None:
            extra_files(tmp)
    return Path(directory)


def read_config(directory: str | os.PathLike) -> Any:
    """The parsed ``config.json`` of a model folder, read as a regular file (a named pipe there would
    block forever), with one-line errors for damage of any kind, deep nesting included.

    Parameters
    ----------
    directory : the model folder.

    Returns
    -------
    The parsed JSON (not checked to be a gengen config). ``FileNotFoundError`` when there is none.
    """
    return read_json(Path(directory) / CONFIG_NAME, "model config",
                     fix="the checkpoint is damaged: restore it from a copy or retrain it")


def check_overwrite(directory: Path, pipeline: str) -> None:
    """Replace only an empty folder or a checkpoint of the same pipeline: never a folder of user files."""
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    try:
        config = read_config(directory)
        found = config.get("pipeline") if isinstance(config, dict) else None
    except OSError:
        found = None
    except GengenError as exc:  # there, but damaged: say how
        raise GengenError(
            f"{str(directory)!r} exists and its {CONFIG_NAME} is {getattr(exc, 'reason', 'unreadable')}; refusing to "
            "replace it (choose a new -o, or remove it)."
        ) from None
    if found is None:
        raise GengenError(
            f"{str(directory)!r} exists and is not a gengen model directory; refusing to replace it "
            "(choose a new -o, or remove it)."
        )
    if found != pipeline:
        raise GengenError(
            f"{str(directory)!r} holds a {found!r} model; refusing to replace it with a {pipeline!r} model "
            "(choose another -o)."
        )


def overwrite_check(pipeline: str) -> Callable[[Path], None]:
    """The check a model folder of ``pipeline`` gets in an output plan (:func:`gengen.runtime.plan_outputs`'s
    ``models``): :func:`check_overwrite` for that pipeline.

    Parameters
    ----------
    pipeline : config.json's ``"pipeline"`` of the model the folder will hold.

    Returns
    -------
    A callable taking the folder, raising GengenError when it holds something else.
    """
    return functools.partial(check_overwrite, pipeline=pipeline)


def load_checkpoint(directory: str | os.PathLike, pipeline: str, *,
                    note_unfinished: bool = True) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """Read and validate the checkpoint folder ``directory`` of ``pipeline``; returns (tensors, config,
    directory). A model of the store is loaded by name through :func:`gengen.saved_model.load_model`
    (or :func:`gengen.store.resolve_model` first): this module knows folders, not names.

    config.json and the weights are read from one version of the folder even while another process
    saves over it, and the weights are checked against the SHA-256 recorded at save. A checkpoint of
    an unfinished training run loads too, with a note on stderr (unless ``note_unfinished=False``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    directory = Path(directory)
    if not directory.is_dir():
        what = "is not a folder" if directory.exists() else "does not exist"
        raise GengenError(f"model folder {str(directory)!r} {what}; give a gengen model folder (or a store name).")
    cfg_path = directory / CONFIG_NAME
    raw_config, raw_weights = _read_model_files(directory)
    if raw_config is None:
        raise GengenError(f"{str(directory)!r} has no {CONFIG_NAME}; is it a gengen model directory?")
    for raw, path in ((raw_config, cfg_path), (raw_weights, directory / WEIGHTS_NAME)):
        kind = _pickled(raw)
        if kind:
            raise GengenError(f"{str(path)!r} is {kind}, not {'JSON' if path == cfg_path else 'safetensors'}; {_NO_PICKLE}")
    config = load_json(raw_config, cfg_path, "model config", fix="the checkpoint is corrupted, retrain it")
    if not isinstance(config, dict) or "format_version" not in config:
        raise GengenError(f"{str(cfg_path)!r} has no format_version; it was not written by gengen.")
    if config["format_version"] != FORMAT_VERSION:
        raise GengenError(
            f"checkpoint format {config['format_version']!r} is not supported by this gengen "
            f"(expects {FORMAT_VERSION}); retrain the model or install a matching gengen."
        )
    found = config.get("pipeline")
    if found != pipeline:
        raise GengenError(
            f"{str(directory)!r} is a {found!r} model, but this command needs a {pipeline!r} model."
        )
    weights = directory / WEIGHTS_NAME
    if raw_weights is None:
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise GengenError(f"{str(directory)!r} has no {WEIGHTS_NAME} but {', '.join(pickles)}: pickled weights; "
                              f"{_NO_PICKLE}")
        raise GengenError(f"{str(directory)!r} has no {WEIGHTS_NAME}; the checkpoint is incomplete.")
    expected = config.get(HASH_KEY)
    if expected is not None and _sha256(raw_weights) != expected:
        raise GengenError(
            f"model file is corrupted: {str(weights)!r} does not match the SHA-256 recorded in its "
            f"{CONFIG_NAME} when it was saved; restore it from a copy or retrain the model."
        )
    try:
        tensors = load_bytes(raw_weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise GengenError(f"cannot read {str(weights)!r}: {exc}; the checkpoint is corrupted.") from None
    _check_finite(tensors, weights)
    if note_unfinished:
        note = unfinished_note(config, directory)
        if note:
            log(note)
    return tensors, config, directory


def _check_finite(tensors: dict[str, torch.Tensor], weights: Path) -> None:
    """NaN or inf weights (a run that diverged, a file damaged before it was hashed) would make every
    output NaN without a word: refuse them when loading."""
    import torch

    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise GengenError(
            f"{str(weights)!r} holds NaN or infinite weights ({preview(bad, 3)}): the training that wrote it "
            "diverged or the file is corrupted; retrain the model."
        )


_NO_PICKLE = ("gengen never loads pickles (unpickling can run any code); retrain the model with gengen, or convert its "
              "weights with the safetensors package.")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _pickled(raw: bytes | None) -> str:
    """What a pickle-based file in place of a checkpoint file is ('' when it is not one)."""
    if not raw:
        return ""
    header = int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, then the JSON header
    if len(raw) > 8 and 8 + header <= len(raw) and raw[8:9] == b"{":
        return ""  # (a header 0x0480 long starts b"\x80\x04", like a pickle: the structure decides)
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if raw[:4] == b"PK\x03\x04" and b"data.pkl" in raw[:4096]:
        return "a pickled PyTorch file (torch.save)"
    return ""


def _read_model_files(directory: Path, attempts: int = 20) -> tuple[bytes | None, bytes | None]:
    """(config.json, model.safetensors) bytes from one version of ``directory``; None for a missing file.

    Both are opened through one handle on the folder, so a save that swaps a new folder in between
    cannot pair one model's config with another's weights; if the folder was swapped out and its
    files removed while reading, read the new one.
    """
    if os.open not in os.supports_dir_fd:  # no *at() calls here: read by path
        return tuple(_read_or_none(lambda n: os.fdopen(open_regular(directory / n, "model file"), "rb"), n)
                     for n in (CONFIG_NAME, WEIGHTS_NAME))
    for attempt in range(attempts):
        try:
            dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:  # between the two renames of a save without atomic exchange
            time.sleep(0.01 * (attempt + 1))
            continue
        except OSError as exc:
            raise GengenError(f"cannot read the model folder {str(directory)!r}: {exc.strerror}.") from None
        try:
            files = tuple(
                _read_or_none(lambda n: os.fdopen(open_regular(n, "model file", dir_fd=dfd, shown=directory / n),  # noqa: B023
                                                  "rb"), n)
                for n in (CONFIG_NAME, WEIGHTS_NAME)
            )
            if None not in files or _same_folder(dfd, directory):
                return files
        finally:
            os.close(dfd)
    raise GengenError(f"the model folder {str(directory)!r} kept changing while being read; try again.")


def _read_or_none(opener, name: str) -> bytes | None:
    try:
        with opener(name) as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GengenError(f"cannot read {name!r} of the model: {exc.strerror}.") from None


def _same_folder(dfd: int, directory: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(dfd), os.stat(directory))
    except OSError:
        return False


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def read_history(directory: str | os.PathLike, columns: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """The model folder's history.csv, or None when it is absent, empty, unreadable or lacks
    ``columns`` (then with a note on stderr): it only documents training, so a damaged one must not
    stop the model from being used for inference; its training curves are lost.

    Parameters
    ----------
    directory : the model folder.
    columns : columns the caller needs (e.g. ``("epoch",)`` to plot it).

    Returns
    -------
    The history table, or None.
    """
    import pandas as pd

    path = Path(directory) / HISTORY_NAME
    try:
        with os.fdopen(open_regular(path, "training history"), "rb") as fh:
            history = pd.read_csv(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, GengenError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    else:
        missing = [c for c in columns if c not in history.columns]
        if not missing:
            return history
        reason = f"no {', '.join(missing)} column"
    log(f"note: ignoring the damaged {str(path)!r} ({reason}); the model still works, but its training "
        "history is lost (a resumed run starts a new one).")
    return None


def config_section(factory: Callable, fields: Any, directory: Path, *, what: str) -> Any:
    """``factory(**fields)`` from a section of config.json, with a one-line error for a setting it
    does not know (a checkpoint from another gengen version, or a hand-edited one) or a bad value.

    Parameters
    ----------
    factory : the class (a recipe dataclass, a network) the section describes.
    fields : the section as read from config.json.
    directory : the model folder, named in the error.
    what : the section's name in the error ("recipe", "architecture").

    Returns
    -------
    ``factory(**fields)``.
    """
    import inspect

    cfg = str(Path(directory) / CONFIG_NAME)
    if not isinstance(fields, dict):
        raise GengenError(f"{cfg!r}: the {what} is not a JSON object; the checkpoint is corrupted.")
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in fields if k not in params]
        if unknown:
            raise GengenError(
                f"{cfg!r}: unknown {what} setting(s) {preview(unknown)}; the checkpoint is from another "
                "gengen version or corrupted (use the gengen that wrote it, or retrain)."
            )
    try:
        return factory(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise GengenError(
            f"{cfg!r}: bad {what} ({str(exc).splitlines()[0][:160]}); the checkpoint is corrupted or from "
            "another gengen version."
        ) from None


def require_keys(config: dict, keys: list[str], directory: Path) -> None:
    """Fail clearly when a config.json lacks fields a pipeline needs (hand-edited or truncated)."""
    missing = [k for k in keys if k not in config]
    if missing:
        raise GengenError(f"{str(directory / CONFIG_NAME)!r} lacks {', '.join(missing)}; the checkpoint is corrupted.")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def unfinished_note(config: dict, directory: Path) -> str | None:
    """One line for a model saved by an unfinished training run (None for a finished one)."""
    section = config.get(TRAINING_SECTION)
    if not isinstance(section, dict) or section.get("complete") is not False:
        return None
    unit = section.get("unit", "epoch")  # dna-train counts iterations, and runs them all
    where = f"{unit} {section.get('epoch')}" + (
        f" of {'at most ' if unit == 'epoch' else ''}{section['epochs']}" if section.get("epochs") else "")
    if section.get("phase") not in (None, "train"):
        where = f"{section['phase']} {where}"
    how = section.get("resume_with") or "--resume"
    return (f"note: {str(directory)!r} is a checkpoint of an unfinished training run (stopped at {where}); "
            f"it works, but `gengen {how}` finishes it.")
