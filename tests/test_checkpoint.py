"""Checkpoints: safetensors + JSON, validated on load, never unpickled."""

from __future__ import annotations

import json

import pytest
import torch

from gengen.checkpoint import load_checkpoint, save_checkpoint
from gengen.errors import GengenError
from gengen.store import resolve_model


def test_round_trip_and_named_models(tmp_path, monkeypatch):
    monkeypatch.setenv("GENGEN_HOME", str(tmp_path / "home"))
    target = tmp_path / "home" / "models" / "mine"
    save_checkpoint(target, "vae", {"w": torch.arange(6.0).reshape(2, 3)}, config={"seed": 3, "genes": ["a", "b"]})
    tensors, cfg, directory = load_checkpoint(resolve_model("mine", "vae"), "vae")
    assert torch.equal(tensors["w"], torch.arange(6.0).reshape(2, 3))
    assert cfg["seed"] == 3 and cfg["format_version"] == 1 and "torch" in cfg["versions"]
    assert directory == target


def test_wrong_pipeline_corrupt_and_missing(tmp_path):
    d = tmp_path / "m"
    save_checkpoint(d, "ggan", {"w": torch.zeros(1)}, config={})
    with pytest.raises(GengenError, match="is a 'ggan' model"):
        load_checkpoint(d, "vae")
    (d / "config.json").write_text("{not json")
    with pytest.raises(GengenError, match="not valid JSON"):
        load_checkpoint(d, "ggan")
    (d / "config.json").write_text(json.dumps({"format_version": 99, "pipeline": "ggan"}))
    with pytest.raises(GengenError, match="format 99"):
        load_checkpoint(d, "ggan")
    with pytest.raises(GengenError, match="not found"):
        resolve_model(tmp_path / "absent")


def test_failed_save_leaves_nothing(tmp_path):
    def boom(_):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "m", "vae", {"w": torch.zeros(1)}, config={}, extra_files=boom)
    assert list(tmp_path.iterdir()) == []


def test_never_replaces_a_folder_of_user_files_or_another_pipeline(tmp_path):
    user = tmp_path / "mydata"
    user.mkdir()
    (user / "notes.txt").write_text("important")
    with pytest.raises(GengenError, match="not a gengen model directory"):
        save_checkpoint(user, "vae", {"w": torch.zeros(1)}, config={})
    assert (user / "notes.txt").read_text() == "important"
    save_checkpoint(tmp_path / "m", "vae", {"w": torch.zeros(1)}, config={})
    with pytest.raises(GengenError, match="holds a 'vae' model"):
        save_checkpoint(tmp_path / "m", "dna-gan", {"w": torch.zeros(1)}, config={})
    save_checkpoint(tmp_path / "m", "vae", {"w": torch.ones(1)}, config={})  # same pipeline: replaced
    assert torch.equal(load_checkpoint(tmp_path / "m", "vae")[0]["w"], torch.ones(1))


def test_pickles_told_from_safetensors_by_structure():
    """A safetensors header of 0x0480 bytes starts b'\\x80\\x04' like a protocol-4 pickle: not a pickle."""
    import pickle

    from gengen.checkpoint import _pickled

    header = b'{"__metadata__":{"pad":"' + b"x" * (0x480 - 27) + b'"}}'
    assert len(header) == 0x480
    safetensors_like = (0x480).to_bytes(8, "little") + header
    assert safetensors_like[:2] == b"\x80\x04" and _pickled(safetensors_like) == ""
    assert _pickled(pickle.dumps({"w": [1.0]}, protocol=4)) == "a Python pickle"
    assert _pickled(b'{"format_version": 1}') == ""
