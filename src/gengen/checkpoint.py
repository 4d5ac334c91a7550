"""Safe, self-describing checkpoints: a directory with ``model.safetensors`` + ``config.json``.

No pickle anywhere: weights are safetensors, everything else (architecture, hyper-parameters, gene
lists, scaler parameters, seed, versions, training metrics) is plain JSON a human can read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.errors import GengenError
from gengen.runtime import atomic_dir, package_versions

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def model_home() -> Path:
    """Where named models live: ``$GENGEN_HOME/models`` (default ``~/.local/share/gengen/models``)."""
    home = os.environ.get("GENGEN_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "gengen"
    return base / "models"


def resolve_model(path_or_name: str | os.PathLike | None, pipeline: str | None = None) -> Path:
    """A checkpoint directory given as a path, a name in the model store, or ``None`` for the
    pipeline's default model: see :func:`gengen.store.resolve_model`, the one resolver."""
    from gengen.store import resolve_model as resolve

    return resolve(path_or_name, pipeline)


def save_checkpoint(
    directory: str | os.PathLike,
    pipeline: str,
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write a checkpoint atomically; ``extra_files(tmpdir)`` may add history.csv, plots, samples."""
    from safetensors.torch import save_file

    meta = {
        "format_version": FORMAT_VERSION,
        "pipeline": pipeline,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }
    full = {**meta, **config}
    check_overwrite(Path(directory), pipeline)
    with atomic_dir(directory) as tmp:
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(cpu, str(tmp / WEIGHTS_NAME), metadata={"pipeline": pipeline, "format_version": str(FORMAT_VERSION)})
        (tmp / CONFIG_NAME).write_text(json.dumps(full, indent=1, default=_json_default) + "\n")
        if extra_files is not None:
            extra_files(tmp)
    return Path(directory)


def check_overwrite(directory: Path, pipeline: str) -> None:
    """Replace only an empty folder or a checkpoint of the same pipeline: never a folder of user files."""
    if not directory.is_dir() or not any(directory.iterdir()):
        return
    cfg = directory / CONFIG_NAME
    try:
        found = json.loads(cfg.read_text()).get("pipeline") if cfg.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        found = None
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


def load_checkpoint(path_or_name: str | os.PathLike | None, pipeline: str) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """Read and validate a checkpoint of ``pipeline``; returns (tensors, config, directory)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = resolve_model(path_or_name, pipeline)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise GengenError(f"{str(directory)!r} has no {CONFIG_NAME}; is it a gengen model directory?")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GengenError(f"{str(cfg_path)!r} is not valid JSON ({exc}); the checkpoint is corrupted, retrain it.") from None
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
    if not weights.is_file():
        raise GengenError(f"{str(directory)!r} has no {WEIGHTS_NAME}; the checkpoint is incomplete.")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GengenError(f"cannot read {str(weights)!r}: {exc}; the checkpoint is corrupted.") from None
    return tensors, config, directory


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
