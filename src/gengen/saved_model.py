"""The model objects' save/load: every gengen model is a :class:`SavedModel`; :func:`load_model` is the one
validate-and-load path, taking a checkpoint folder or a store name (the store resolves names; the
checkpoint module reads and writes folders and knows no names)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from gengen.checkpoint import config_section, load_checkpoint, read_history, require_keys, save_checkpoint
from gengen.errors import GengenError
from gengen.store import resolve_model

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass
class LoadedCheckpoint:
    """A validated checkpoint: its tensors, config.json and folder (see :func:`load_model`)."""

    tensors: dict[str, torch.Tensor]
    config: dict
    directory: Path

    def section(self, factory: Callable, key: str, *, what: str | None = None) -> Any:
        """``factory(**config[key])`` with one-line errors (:func:`config_section`)."""
        return config_section(factory, self.config[key], self.directory, what=what or key)

    def prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors whose key starts with ``prefix``, with the prefix removed (a module's state dict)."""
        return {k.removeprefix(prefix): v for k, v in self.tensors.items() if k.startswith(prefix)}

    def history(self, columns: tuple[str, ...] = ()) -> pd.DataFrame | None:
        """The folder's history.csv (:func:`read_history`)."""
        return read_history(self.directory, columns)

    def training_section(self) -> dict | None:
        """config.json's ``training`` section (resumable runs), or None."""
        section = self.config.get("training")
        return section if isinstance(section, dict) else None


class SavedModel:
    """``save(path)`` / ``Class.load(path_or_name, device="auto")`` for every gengen model object.

    A subclass sets ``pipeline`` (config.json's ``"pipeline"``) and ``required_keys`` (config.json
    fields it cannot load without), and implements ``_save_parts() -> (tensors, config,
    extra_files)`` and ``_from_checkpoint(checkpoint, device, **options) -> model``. Loading goes
    through :func:`load_model`, the one validate-and-load path; ``save`` returns the checkpoint
    folder (a :class:`~pathlib.Path`) for every model.
    """

    pipeline: str = ""
    required_keys: tuple[str, ...] = ()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as a checkpoint folder (model.safetensors + config.json, atomically).

        Parameters
        ----------
        path : the folder to write; an existing folder is replaced only when it holds a model of the
            same pipeline.

        Returns
        -------
        The checkpoint folder.
        """
        tensors, config, extra_files = self._save_parts()
        return save_checkpoint(path, self.pipeline, tensors, config=config, extra_files=extra_files)

    @classmethod
    def load(cls, path_or_name: str | os.PathLike, device: str = "auto") -> Self:
        """Load a checkpoint folder, or a model of the store by name (:func:`load_model`).

        Parameters
        ----------
        path_or_name : a checkpoint folder, or the name of a model in the store (``gengen models``).
        device : ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

        Returns
        -------
        The model, in evaluation mode on ``device``.
        """
        return load_model(cls, path_or_name, device)

    def _save_parts(self) -> tuple[dict, dict, Callable[[Path], None] | None]:
        raise NotImplementedError

    @classmethod
    def _from_checkpoint(cls, checkpoint: LoadedCheckpoint, device: str, **options: Any) -> Any:
        raise NotImplementedError


def load_model(cls: type, path_or_name: str | os.PathLike | None, device: str = "auto", **options: Any) -> Any:
    """The one validate-and-load path of gengen's model objects.

    :func:`gengen.store.resolve_model` turns a store name into its folder; :func:`load_checkpoint` checks the pipeline and format version, verifies
    the weights' SHA-256, reads safetensors (never pickle) and refuses NaN weights; then the config
    fields ``cls.required_keys`` must be there, and ``cls._from_checkpoint`` builds the model. A
    ``KeyError``, ``TypeError``, ``ValueError`` or ``RuntimeError`` while building it (unknown or
    missing tensor keys, sizes that do not match) is one line saying the checkpoint is inconsistent.

    Parameters
    ----------
    cls : a :class:`SavedModel` subclass.
    path_or_name : a checkpoint folder or a store name.
    device : where the model goes.
    **options : passed to ``cls._from_checkpoint`` (e.g. the DNA GAN's ``weights``).

    Returns
    -------
    The model, with ``path`` set to its folder.
    """
    tensors, config, directory = load_checkpoint(resolve_model(path_or_name, cls.pipeline), cls.pipeline)
    require_keys(config, list(cls.required_keys), directory)
    checkpoint = LoadedCheckpoint(tensors, config, directory)
    try:
        model = cls._from_checkpoint(checkpoint, device, **options)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise GengenError(f"checkpoint {str(directory)!r} is inconsistent ({reason}); "
                          "it is corrupted or from another gengen version.") from None
    model.path = directory
    return model
