"""Shared run-time plumbing: device choice, seeding, progress bars, atomic writes, logging.

Everything here is used by all three pipelines; keep pipeline logic out.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.errors import GengenError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def log(message: str, quiet: bool = False) -> None:
    """Human-facing status on stderr, so stdout stays free for data."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def resolve_device(device: str | None = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda[:N]`` into a torch device; ``auto`` picks CUDA when present."""
    import torch

    choice = (device or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GengenError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto.")
        return torch.device(choice)
    raise GengenError(f"unknown device {device!r}; use one of auto, cpu, cuda.")


def describe_device(device: torch.device) -> str:
    """'cpu (2 threads)' or 'cuda:0 (NVIDIA H100 ...)' for reports."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


def set_threads(n: int | None = None) -> None:
    """Torch CPU threads: ``n``, else ``$GENGEN_THREADS``, else torch's default.

    Small models on a busy machine run faster on one thread (no OpenMP spin contention).
    """
    if n is None and os.environ.get("GENGEN_THREADS"):
        try:
            n = int(os.environ["GENGEN_THREADS"])
        except ValueError:
            raise GengenError(f"GENGEN_THREADS must be a positive integer, got {os.environ['GENGEN_THREADS']!r}.") from None
    if n is None:
        return
    if n < 1:
        raise GengenError(f"--threads must be positive, got {n}.")
    import torch

    global _USER_CHOSE_THREADS
    _USER_CHOSE_THREADS = True
    torch.set_num_threads(n)


_USER_CHOSE_THREADS = False
SMALL_NET_PARAMS = 2_000_000


@contextlib.contextmanager
def small_model_threads(n_params: int, device, limit: int = SMALL_NET_PARAMS) -> Iterator[None]:
    """One intra-op thread for small networks on CPU, unless the user chose a thread count.

    ``limit`` is the parameter count below which a network counts as small. Splitting small GEMMs
    across threads costs more than it gains (25 us vs 11 ms per 64 x 64 product
    measured on a busy 2-core machine); the previous count is restored afterwards.
    """
    import torch

    dev = getattr(device, "type", str(device))
    if _USER_CHOSE_THREADS or dev != "cpu" or n_params >= limit or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so a run with the same seed gives the same numbers (on CPU)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Progress:
    """A rich progress bar on stderr; off when quiet or ``GENGEN_NO_PROGRESS`` is set.

    When stderr is not a terminal (a batch job, ``nohup``, a log file) it prints a plain status line
    at most every ``GENGEN_PROGRESS_INTERVAL`` seconds (default 60) instead, so long runs still show
    that they are alive and how far they are; short runs print nothing.
    ``update(advance=1, **fields)`` shows extra fields (losses) next to the bar.
    """

    def __init__(self, total: int | None, description: str, quiet: bool = False):
        self._bar = None
        self._task = None
        self._plain = False
        on = not quiet and not os.environ.get("GENGEN_NO_PROGRESS")
        enabled = on and sys.stderr.isatty()
        if on and not enabled:
            self._plain = True
            self._total, self._description, self._done = total, description, 0
            raw = os.environ.get("GENGEN_PROGRESS_INTERVAL", "60")
            try:
                self._interval = float(raw)
            except ValueError:
                raise GengenError(f"GENGEN_PROGRESS_INTERVAL must be a number of seconds, got {raw!r}.") from None
            self._start = self._last = time.perf_counter()
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(description, total=total, info="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def update(self, advance: int = 1, **fields: Any) -> None:
        if self._plain:
            self._plain_update(advance, fields)
        if self._bar is None:
            return
        info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self._bar.update(self._task, advance=advance, info=info)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _plain_update(self, advance: int, fields: dict) -> None:
        self._done += advance
        now = time.perf_counter()
        if now - self._last < self._interval:
            return
        self._last = now
        elapsed = now - self._start
        done = f"{self._done}/{self._total}" if self._total else str(self._done)
        eta = ""
        if self._total and self._done:
            eta = f", ~{_clock(elapsed * (self._total - self._done) / self._done)} left"
        info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        print(f"{self._description}: {done} ({_clock(elapsed)} elapsed{eta})  {info}".rstrip(), file=sys.stderr)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, protect: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A failed run leaves no partial file. ``protect`` lists inputs that must never be overwritten.
    The temporary name keeps the suffix so writers that dispatch on it (anndata, matplotlib) work.
    """
    target = Path(path)
    for p in protect:
        if p is not None and Path(p).exists() and target.exists() and target.resolve() == Path(p).resolve():
            raise GengenError(f"refusing to overwrite the input file {str(p)!r}; choose another output with -o.")
    if target.exists() and target.is_dir():
        raise GengenError(f"output {str(target)!r} is a directory; give a file name.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds."""
    import shutil

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise GengenError(f"{str(target)!r} exists and is not a directory; choose another -o.")
    if target.exists() and not overwrite:
        raise GengenError(f"{str(target)!r} already exists; remove it or choose another -o.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def package_versions() -> dict[str, str]:
    """Versions that shape the numbers a model produces, recorded in every checkpoint and output."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("gengen", "torch", "numpy", "pandas", "anndata", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def on_device(device):
    """Make ``device`` the current CUDA device for the block (a no-op elsewhere): streams, events and
    graph captures belong to the current device, so work on ``cuda:1`` must run with it current."""
    import torch

    device = torch.device(device)
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def cuda_graphs_wanted(device, requested: bool | None = None) -> bool:
    """Whether a training loop on ``device`` should capture its steps as CUDA graphs.

    ``requested`` is the caller's explicit choice; ``None`` means the default: on for CUDA (small
    steps are bound by kernel-launch overhead there, and replaying a captured graph removes it)
    unless ``GENGEN_CUDA_GRAPHS=0``, e.g. to rule it out while debugging. Never on the CPU.
    """
    if getattr(device, "type", str(device)) != "cuda":
        return False
    if requested is not None:
        return bool(requested)
    return os.environ.get("GENGEN_CUDA_GRAPHS", "1").strip().lower() not in ("0", "no", "false", "off")


def make_capturable(optimizer, device) -> None:
    """Let ``optimizer`` (Adam and kin) run inside a CUDA graph: its step counters live on the device."""
    import torch

    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():
        step = state.get("step")
        if torch.is_tensor(step) and step.device != torch.device(device):
            state["step"] = step.to(device=device, dtype=torch.float32)


def capture_cuda_graph(step, warmup: int = 3):
    """Run ``step()`` ``warmup`` times on a side stream (lazy initialisation: optimizer state, cuBLAS
    workspaces), then capture one call of it as a ``torch.cuda.CUDAGraph`` and return the graph.

    The warm-up calls execute for real (callers either count them as training or undo them); the
    capture itself executes nothing, so the caller replays the graph for the step it stands for.
    """
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device) -> str:
    """``auto|fp32|bf16`` -> ``fp32`` or ``bf16`` for ``device``.

    ``bf16`` means bf16 autocast for the matrix products (weights, optimiser and losses stay float32);
    ``auto`` picks it on a CUDA GPU that supports it, where it is the fast path for large dense
    layers, and float32 on the CPU, where bf16 GEMMs are rarely faster and always less exact.
    """
    import torch

    choice = (precision or "auto").lower()
    if choice not in PRECISIONS:
        raise GengenError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    dev = torch.device(device)
    if choice == "auto":
        # native bf16 matrix units from Ampere (compute capability 8.0) on; older cards only emulate it
        return "bf16" if dev.type == "cuda" and torch.cuda.get_device_capability(dev) >= (8, 0) else "fp32"
    return choice


def autocast(precision: str, device):
    """The autocast context for a resolved precision (a no-op for ``fp32``)."""
    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(getattr(device, "type", str(device)), dtype=torch.bfloat16)
