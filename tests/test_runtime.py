"""Shared runtime plumbing: atomic writes, devices, threads, the CLI error boundary."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from gengen import runtime
from gengen.errors import GengenError


def test_atomic_path_success_failure_and_protection(tmp_path):
    target = tmp_path / "out.csv"
    with runtime.atomic_path(target) as tmp:
        tmp.write_text("ok")
        assert not target.exists()  # nothing visible until the block succeeds
    assert target.read_text() == "ok"
    assert stat.S_IMODE(os.stat(target).st_mode) & 0o044  # readable by others, not mkstemp's 0600
    with pytest.raises(RuntimeError), runtime.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "ok" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with pytest.raises(GengenError, match="refusing to overwrite"), runtime.atomic_path(target, protect=(target,)):
        pass


def test_resolve_device():
    assert runtime.resolve_device("cpu").type == "cpu"
    assert runtime.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(GengenError, match="unknown device"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GengenError, match="no CUDA GPU"):
            runtime.resolve_device("cuda")


def test_small_model_threads_restores(monkeypatch):
    monkeypatch.setattr(runtime, "_USER_CHOSE_THREADS", False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with runtime.small_model_threads(1000, "cpu"):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with runtime.small_model_threads(10**9, "cpu"):
            assert torch.get_num_threads() == 2  # large networks keep every core
    finally:
        torch.set_num_threads(before)
    with pytest.raises(GengenError, match="positive"):
        runtime.set_threads(0)
    monkeypatch.setenv("GENGEN_THREADS", "many")
    with pytest.raises(GengenError, match="GENGEN_THREADS"):
        runtime.set_threads(None)
