"""Where and how computation runs: device choice, CPU threads, seeding, precision, CUDA graphs, the
memory check before a big allocation, and the package versions a checkpoint records."""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gengen.errors import GengenError
from gengen.runtime.progress import log

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")

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
        try:
            chosen = torch.device(choice)
        except RuntimeError:
            raise GengenError(f"unknown device {device!r}; use cuda or cuda:N.") from None
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise GengenError(f"--device {device} asks for GPU {chosen.index}, but {count} GPU(s) are visible (cuda:0 "
                              f"to cuda:{count - 1}).")
        return chosen
    raise GengenError(f"unknown device {device!r}; use one of auto, cpu, cuda.")


def describe_device(device: torch.device) -> str:
    """'cpu (2 threads)' or 'cuda:0 (NVIDIA H100 ...)' for reports."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


def set_threads(n: int | None = None) -> None:
    """CPU threads of torch and of the BLAS/OpenMP libraries under numpy, scipy and scikit-learn: ``n``,
    else ``$GENGEN_THREADS``, else the libraries' defaults.

    Small models on a busy machine run faster on one thread (no OpenMP spin contention).
    """
    source = "--threads"
    if n is None and os.environ.get("GENGEN_THREADS"):
        source = "GENGEN_THREADS"
        try:
            n = int(os.environ["GENGEN_THREADS"])
        except ValueError:
            raise GengenError(f"GENGEN_THREADS must be a positive integer, got {os.environ['GENGEN_THREADS']!r}.") from None
    if n is None:
        return
    if n < 1:
        raise GengenError(f"{source} must be positive, got {n}.")
    cores = usable_cores()
    if n > cores:  # more threads than cores only adds contention (and 100000 would exhaust the process table)
        log(f"note: {source} {n} is more than the {cores} CPU core{'s' if cores != 1 else ''} this process may use; "
            f"using {cores}.")
        n = cores
    import torch

    global _USER_CHOSE_THREADS
    _USER_CHOSE_THREADS = True
    torch.set_num_threads(n)
    _limit_blas_threads(n)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the system has one, e.g. under
    ``taskset`` or a batch scheduler's cgroup), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _limit_blas_threads(n: int) -> None:
    """numpy's BLAS (OpenBLAS/MKL) gets the same count as torch: the small-cohort VAE's PCA steps, ridge
    fits and k-mer counts run there, and two workers with ``--threads 1`` each would otherwise run four
    BLAS threads on two cores (measured: a 2-worker sweep 3x slower per trial). Libraries loaded later
    (scipy's own OpenBLAS under sklearn's ridge and randomized SVD, sklearn's OpenMP) read the count
    from the environment when they load."""
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = str(n)
    try:
        import numpy  # noqa: F401  (loads the BLAS library so that the limit reaches it)
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it numpy keeps its default
        return
    threadpool_limits(limits=n, user_api="blas")


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


def check_memory(nbytes: float, what: str, device=None) -> None:
    """Refuse a job that cannot fit before allocating it; ``nbytes`` is an estimate of its peak.

    Compared with the memory available now (``MemAvailable`` on Linux, free GPU memory on CUDA), so
    an impossible size (``--length 100000000000``) is a one-line error instead of a crash or a swap
    storm minutes later.

    Parameters
    ----------
    nbytes : estimated peak memory of the job.
    what : the job, for the message ("designing 100 sequences of 50 nt").
    device : where it runs (None or a CPU device: RAM).
    """
    available, where = _available_memory(device)
    if available is not None and nbytes > available:
        raise GengenError(
            f"{what} needs about {_gib(nbytes)} of memory, more than the {_gib(available)} available "
            f"{where}; use a smaller size."
        )


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**28 else f"{n / 2**20:.3g} MiB"


def _available_memory(device) -> tuple[float | None, str]:
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return float(torch.cuda.mem_get_info(torch.device(device))[0]), f"on {device}"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024, "in RAM"
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "in RAM"
    except (ValueError, OSError, AttributeError):
        return None, ""


def package_versions() -> dict[str, str]:
    """Versions that shape the numbers a model produces, recorded in every checkpoint and output."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:  # looked up once: ~10 ms, paid by every checkpoint before
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
