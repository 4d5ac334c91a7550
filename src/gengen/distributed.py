"""Data-parallel training under torchrun, with PyTorch's own engine (torch.distributed + DDP).

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m gengen vae-train|ggan-train ...``
starts N processes per machine; torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous store in their environment. gengen then:

- joins the process group (:func:`start`): NCCL when the rank trains on a CUDA GPU (``cuda:LOCAL_RANK``),
  gloo on the CPU, with a timeout on every collective (``GENGEN_DIST_TIMEOUT`` seconds, default 600);
- wraps the networks in ``DistributedDataParallel`` (:func:`wrap`), gives each rank its share of every
  batch (:class:`gengen.batches.Shard`: in memory, a slice of each global batch; streamed, its own
  share of the file's chunks), and sums the epoch's losses over ranks (:func:`all_reduce_sum`);
- lets rank 0 alone claim the output, write checkpoints and the final model, and print; ``--resume``
  restores every rank from rank 0's checkpoint (the ``-o`` folder must be on a filesystem every
  machine sees);
- stops the whole job when a rank dies (:func:`main`): the survivors, woken by a failed collective or
  by torchrun's SIGTERM, look up which rank's process is gone and the lowest of them prints one line
  naming it, instead of waiting forever.

Outside torchrun none of this runs: ``gengen`` behaves as it always has.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass

from gengen.batches import Shard
from gengen.errors import GengenError
from gengen.runtime.temps import pid_alive

COMMANDS = ("vae-train", "ggan-train")  # the commands that run data-parallel
DEFAULT_TIMEOUT = 600.0
_PREFIX = "gengen"


@dataclass
class Context:
    """This process's rank, the world size, its device and the job's key-value store."""

    rank: int
    world: int
    local_rank: int
    device: str
    backend: str
    store: object = None

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CURRENT: Context | None = None


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def current() -> Context | None:
    """The process group this process joined (None outside torchrun, or with one process)."""
    return _CURRENT


def shard() -> Shard | None:
    """This rank's share of the data (None when training alone)."""
    return _CURRENT.shard if _CURRENT is not None else None


def is_main() -> bool:
    """Whether this process writes outputs and prints (always, outside torchrun)."""
    return _CURRENT is None or _CURRENT.rank == 0


def timeout_seconds() -> float:
    raw = os.environ.get("GENGEN_DIST_TIMEOUT", str(DEFAULT_TIMEOUT))
    try:
        value = float(raw)
    except ValueError:
        raise GengenError(f"GENGEN_DIST_TIMEOUT must be a number of seconds, got {raw!r}.") from None
    if value <= 0:
        raise GengenError(f"GENGEN_DIST_TIMEOUT must be positive, got {raw!r}.")
    return value


def start(device: str = "auto") -> str:
    """Join the torchrun job (once) and return the device this rank trains on; outside torchrun,
    ``device`` unchanged. With one process (``--nproc-per-node 1``) nothing is joined."""
    global _CURRENT
    if not launched() or int(os.environ["WORLD_SIZE"]) < 2:
        return device
    if _CURRENT is not None:
        return _CURRENT.device
    import torch
    import torch.distributed as dist

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GengenError("--device cuda: no CUDA GPU is visible to this rank.")
    if cuda:
        if local >= torch.cuda.device_count():
            raise GengenError(f"rank {rank}: local rank {local} but only {torch.cuda.device_count()} GPU(s) on "
                              f"{socket.gethostname()}; use --nproc-per-node {torch.cuda.device_count()} or fewer.")
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    timeout = datetime.timedelta(seconds=timeout_seconds())
    try:
        dist.init_process_group(backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise GengenError(f"rank {rank}: cannot join the torchrun job ({str(exc).splitlines()[0][:160]}); check "
                          "--rdzv-endpoint / MASTER_ADDR and that every machine reaches it.") from None
    store = None
    with contextlib.suppress(Exception):
        from torch.distributed.distributed_c10d import _get_default_store

        store = _get_default_store()
        store.set(f"{_PREFIX}/pid/{rank}", f"{socket.gethostname()} {os.getpid()}")
    _CURRENT = Context(rank, world, local, f"cuda:{local}" if cuda else "cpu", backend, store)
    return _CURRENT.device


def stop(clean: bool = True) -> None:
    """Leave the process group at the end of a command (after a failure, just forget it: a broken
    group can block on the way out, and the process ends anyway)."""
    global _CURRENT
    if _CURRENT is None:
        return
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        if clean and _CURRENT.store is not None:
            _CURRENT.store.set(f"{_PREFIX}/done/{_CURRENT.rank}", "1")
        if clean:
            dist.destroy_process_group()
    _CURRENT = None


# ---------------------------------------------------------------------------------------- in the loops
def wrap(module, method: str | None = None):
    """``module`` in DistributedDataParallel when training data-parallel, else itself. ``method``: wrap
    that method of the module instead of its ``forward`` (DDP synchronises gradients of what runs
    through its own forward)."""
    if _CURRENT is None:
        return module
    from torch.nn.parallel import DistributedDataParallel

    target = module if method is None else _Method(module, method)
    ids = [_CURRENT.local_rank] if _CURRENT.backend == "nccl" else None
    return DistributedDataParallel(target, device_ids=ids)


def _Method(module, name: str):
    """An ``nn.Module`` whose forward is ``module.<name>`` (its parameters are ``module``'s)."""
    import torch

    class Method(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            return getattr(self.inner, name)(*args)

    return Method()


def all_reduce_sum(tensor):
    """Sum ``tensor`` over ranks in place (a no-op alone); returns it."""
    if _CURRENT is not None:
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


def all_reduce_array(array, op: str = "sum"):
    """A numpy array reduced over ranks (``sum``, ``min`` or ``max``, in float64); itself when alone."""
    if _CURRENT is None:
        return array
    import numpy as np
    import torch
    import torch.distributed as dist

    ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
    t = torch.as_tensor(np.asarray(array, np.float64), device=_CURRENT.device).clone()
    dist.all_reduce(t, ops[op])
    return t.cpu().numpy().astype(np.asarray(array).dtype, copy=False)


def all_gather_array(array) -> list:
    """Every rank's copy of a same-shaped numpy array (float64), in rank order; ``[array]`` alone."""
    if _CURRENT is None:
        return [array]
    import numpy as np
    import torch
    import torch.distributed as dist

    t = torch.as_tensor(np.asarray(array, np.float64), device=_CURRENT.device).contiguous()
    parts = [torch.empty_like(t) for _ in range(_CURRENT.world)]
    dist.all_gather(parts, t)
    return [p.cpu().numpy() for p in parts]


def broadcast_value(value: float) -> float:
    """Rank 0's ``value`` on every rank (decisions such as early stopping must agree everywhere)."""
    if _CURRENT is None:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64, device=_CURRENT.device)
    dist.broadcast(t, 0)
    return float(t.item())


def broadcast_object(obj):
    """Rank 0's picklable ``obj`` on every rank (e.g. the output folder rank 0 claimed)."""
    if _CURRENT is None:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def reseed(seed: int, *where: int) -> None:
    """Give ranks other than 0 their own noise stream (dropout, reparameterisation): seeded from
    ``seed``, the rank and ``where`` (e.g. the position a resumed run restarts at). Rank 0 keeps the
    stream a single process would have."""
    if _CURRENT is None or _CURRENT.rank == 0:
        return
    import torch

    mix = seed
    for v in (_CURRENT.rank, *where):
        mix = (mix * 1_000_003 + int(v) + 1) % (2**63)
    torch.manual_seed(mix)


# ---------------------------------------------------------------------------------------- failures
def dead_ranks(ctx: Context) -> tuple[list[int], list[int]]:
    """(ranks whose process is gone, ranks on other machines that cannot be checked from here)."""
    dead, unknown = [], []
    host = socket.gethostname()
    for r in range(ctx.world):
        if r == ctx.rank or ctx.store is None:
            continue
        try:
            if ctx.store.check([f"{_PREFIX}/done/{r}"]):
                continue
            where, pid = ctx.store.get(f"{_PREFIX}/pid/{r}").decode().rsplit(" ", 1)
        except Exception:  # the store is gone too (the agent stopped): nothing to look up
            unknown.append(r)
            continue
        if where != host:
            unknown.append(r)
        elif not pid_alive(int(pid)):
            dead.append(r)
    return dead, unknown


def failure_line(ctx: Context, cause: str) -> tuple[bool, str]:
    """(whether this rank prints, the one line) for a job stopped by ``cause`` (a failed collective or
    torchrun's SIGTERM): the lowest surviving rank names the ranks whose process is gone (looked for
    during up to 3 seconds: a collective can fail before the dead process is gone)."""
    import time

    deadline = time.monotonic() + 3.0
    dead, unknown = dead_ranks(ctx)
    while not dead and time.monotonic() < deadline:
        time.sleep(0.2)
        dead, unknown = dead_ranks(ctx)
    if dead:
        who = ", ".join(str(r) for r in dead)
        line = (f"rank {who} of {ctx.world} stopped (its process is gone: killed, or out of memory) while the job ran; "
                f"the job stops ({cause}). Fix the cause and continue with --resume.")
    elif unknown:
        line = (f"a rank on another machine stopped or stopped answering (ranks {', '.join(map(str, unknown))} cannot be "
                f"checked from {socket.gethostname()}); the job stops ({cause}). Continue with --resume.")
    else:
        line = f"the torchrun job stopped ({cause}); continue with --resume once the cause is fixed."
    survivors = [r for r in range(ctx.world) if r not in dead]
    return ctx.rank == min(survivors, default=ctx.rank), line


class _ErrorLines:
    """stderr of a rank: ``gengen: error:`` lines are posted to the job's store; on ranks other than 0
    they are held, and printed (prefixed with the rank) only if rank 0 did not report the same error,
    so a mistake every rank makes reads as one line, not N."""

    def __init__(self, stream, rank: int):
        self.stream, self.rank, self.held = stream, rank, []

    def write(self, text: str) -> int:
        if text.startswith("gengen: error:") and _CURRENT is not None:
            message = text.strip()
            with contextlib.suppress(Exception):
                _CURRENT.store.set(f"{_PREFIX}/error/{self.rank}", message)
            if self.rank != 0:
                self.held.append(message)
                return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def release(self) -> None:
        for message in self.held:
            same = False
            with contextlib.suppress(Exception):
                _CURRENT.store.wait([f"{_PREFIX}/error/0"], datetime.timedelta(seconds=3))
                same = _CURRENT.store.get(f"{_PREFIX}/error/0").decode() == message
            if not same:
                self.stream.write(message.replace("gengen: error:", f"gengen: error: [rank {self.rank}]", 1) + "\n")
        self.held = []

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(app) -> None:
    """The command line under torchrun: only the data-parallel trainers run; ranks other than 0 run
    quietly; a rank that dies (or a collective that times out) ends the job with one line."""
    argv = sys.argv[1:]
    rank = int(os.environ.get("RANK", "0"))
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        if rank == 0:
            print(f"gengen: error: under torchrun gengen runs {' and '.join(COMMANDS)} (data-parallel); run "
                  f"{command or 'other commands'} without torchrun.", file=sys.stderr)
        sys.exit(2)
    if rank != 0:
        argv = [*argv, "--quiet"]
        os.environ["GENGEN_NO_PROGRESS"] = "1"
    errors = _ErrorLines(sys.stderr, rank)
    sys.stderr = errors
    code: int | str | None = 0

    def terminated(signum, frame):  # torchrun stops the other ranks with SIGTERM when one fails
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        app(args=argv, prog_name="gengen")
    except SystemExit as exc:
        code = exc.code
        if _CURRENT is not None and code not in (0, 2, None):  # torchrun's SIGTERM (143) or an abort
            code = _report(f"stopped by signal {int(code) - 128}" if isinstance(code, int) and code > 128 else "aborted")
    except (RuntimeError, OSError) as exc:  # a collective failed: a peer died or timed out
        if _CURRENT is None:
            raise
        cause = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        code = _report(cause.split(". ")[0][:120])
    finally:
        errors.release()
        sys.stderr = errors.stream
        stop(clean=code == 0)
    sys.exit(code)


def _report(cause: str) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the one line: the job is ending anyway
    speak, line = failure_line(_CURRENT, cause)
    if speak:
        print(f"gengen: error: {line}", file=sys.__stderr__, flush=True)
    return 2
