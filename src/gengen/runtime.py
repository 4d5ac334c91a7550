"""Shared run-time plumbing: device choice, seeding, progress bars, safe outputs (plans, atomic writes,
locks, temporaries), logging.

Everything here is used by all three pipelines; keep pipeline logic out.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gengen.errors import GengenError

try:
    import fcntl
except ImportError:  # not on Windows: writes go unlocked there
    fcntl = None

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


ESTIMATE_AFTER_S = 5.0  # Progress projects the run's length once this much has passed (or at the first update after)
LONG_RUN_S = 60.0  # ... and says so when it projects more than this


class Progress:
    """A rich progress bar on stderr; off when quiet or ``GENGEN_NO_PROGRESS`` is set.

    When stderr is not a terminal (a batch job, ``nohup``, a log file) it prints a plain status line
    at most every ``GENGEN_PROGRESS_INTERVAL`` seconds (default 60) instead, so long runs still show
    that they are alive and how far they are; short runs print nothing.
    ``update(advance=1, **fields)`` shows extra fields (losses) next to the bar.

    **Expected time.** Every command with a progress bar of known total says how long it will take
    when that is more than a minute: at the first update :data:`ESTIMATE_AFTER_S` seconds in, the
    time so far is projected to the total, and when the projection exceeds :data:`LONG_RUN_S` one line
    says so (``train VAE: this will take about 12 min (40/1000 in 29 s) ...``). Only ``quiet``
    silences it (``GENGEN_NO_PROGRESS`` hides bars, not this line). ``time_limit`` (seconds from the
    start) caps the projection and the time left shown, as a run that stops at its limit will;
    ``note`` is added to the line (e.g. that the run may stop earlier); ``clock`` replaces
    ``time.perf_counter`` (tests).
    """

    def __init__(self, total: int | None, description: str, quiet: bool = False, *,
                 time_limit: float | None = None, note: str = "", clock: Callable[[], float] | None = None):
        self._bar = None
        self._task = None
        self._plain = False
        self._quiet = quiet
        self._clock = clock or time.perf_counter
        self._total, self._description, self._done = total, description, 0
        self._time_limit, self._note = time_limit, note
        self.expected_seconds: float | None = None  # the projection, once made
        self._start = self._last = self._clock()
        on = not quiet and not os.environ.get("GENGEN_NO_PROGRESS")
        tty = sys.stderr.isatty()
        enabled = on and tty and not Progress._live  # rich shows one bar at a time: a nested one stays silent
        if on and not tty:
            self._plain = True
            raw = os.environ.get("GENGEN_PROGRESS_INTERVAL", "60")
            try:
                self._interval = float(raw)
            except ValueError:
                raise GengenError(f"GENGEN_PROGRESS_INTERVAL must be a number of seconds, got {raw!r}.") from None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("[cyan]{task.fields[left]}"),  # ours: capped by the time limit
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(description, total=total, info="", left="")

    _live = 0  # rich bars running now

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
            Progress._live += 1
        return self

    def update(self, advance: int = 1, **fields: Any) -> None:
        stop_if_terminated()  # every long loop reports here: a swallowed SIGTERM still stops it
        self._done += advance
        now = self._clock()
        elapsed = now - self._start
        if self.expected_seconds is None and self._total and self._done > 0 and (
                elapsed >= ESTIMATE_AFTER_S or self._done >= self._total):
            self._announce(elapsed)
        if self._plain:
            self._plain_update(now, elapsed, fields)
        if self._bar is None:
            return
        info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        left = self.seconds_left(elapsed)
        self._bar.update(self._task, advance=advance, info=info, left="" if left is None else f"~{_clock(left)} left")

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            Progress._live -= 1

    def seconds_left(self, elapsed: float) -> float | None:
        """Projected seconds left at ``elapsed`` seconds in: the remaining steps at the rate so far,
        no more than the time limit leaves; None before anything is done or without a total."""
        if not self._total or not self._done:
            return None
        left = max(0.0, elapsed * (self._total - self._done) / self._done)
        if self._time_limit is not None:
            left = min(left, max(0.0, self._time_limit - elapsed))
        return left

    def _announce(self, elapsed: float) -> None:
        full = elapsed * self._total / self._done
        expected = full if self._time_limit is None else min(full, self._time_limit)
        self.expected_seconds = expected
        if expected <= LONG_RUN_S or self._quiet:
            return
        how = f"{self._done}/{self._total} in {elapsed:.0f} s"
        if expected < full:
            how += f"; stopped by the time limit, the full {self._total} would take about {_duration(full)}"
        line = f"{self._description}: this will take about {_duration(expected)} ({how})"
        line += f"; {self._note}" if self._note else ""
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def _plain_update(self, now: float, elapsed: float, fields: dict) -> None:
        if now - self._last < self._interval:
            return
        self._last = now
        done = f"{self._done}/{self._total}" if self._total else str(self._done)
        left = self.seconds_left(elapsed)
        eta = "" if left is None else f", ~{_clock(left)} left"
        info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        print(f"{self._description}: {done} ({_clock(elapsed)} elapsed{eta})  {info}".rstrip(), file=sys.stderr)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _duration(seconds: float) -> str:
    """``7 min``, ``1.6 h``: a projection, rounded as one."""
    minutes = seconds / 60
    return f"{max(1, round(minutes))} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------------
# Files gengen did not make. A lab machine's shared folders hold what others put there: a link planted
# at a name gengen writes, a named pipe where a model file belongs, a link in a model folder to a key
# file. So gengen reads regular files only (a pipe or device would block forever or never end), opens
# the files it finds inside folders without following a last link (O_NOFOLLOW), creates its own files
# with O_EXCL (never through a link, never truncating a file it did not make), and parses JSON with
# one-line errors for any damage, nesting included (Python's parser recurses).

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
JSON_MAX_DEPTH = 64  # gengen's own JSON files nest fewer than 10 levels


def file_kind(mode: int) -> str:
    """What a ``stat`` mode is, for messages: 'a regular file', 'a named pipe (FIFO)', 'a folder', ...

    Parameters
    ----------
    mode : ``st_mode`` of an ``os.stat`` / ``os.lstat`` result.

    Returns
    -------
    The kind, with its article.
    """
    import stat

    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def _is_link_refusal(exc: OSError, path, dir_fd) -> bool:
    """Whether an ``O_NOFOLLOW`` open failed because the last component is a symbolic link (ELOOP on
    Linux and macOS, EMLINK on FreeBSD)."""
    if exc.errno not in (errno.ELOOP, errno.EMLINK):
        return False
    try:
        return os.path.islink(path) if dir_fd is None else stat_is_link(os.lstat(path, dir_fd=dir_fd))
    except OSError:
        return False


def stat_is_link(st: os.stat_result) -> bool:
    """Whether an ``lstat`` result is a symbolic link."""
    import stat

    return stat.S_ISLNK(st.st_mode)


def _link_text(path, dir_fd=None) -> str:
    try:
        return f"a symbolic link (to {os.readlink(path, dir_fd=dir_fd)!r})"
    except OSError:
        return "a symbolic link"


def open_regular(path: str | os.PathLike, what: str = "file", *, follow: bool = True, dir_fd: int | None = None,
                 shown: str | os.PathLike | None = None) -> int:
    """Open a file for reading only if it is a regular file; returns the descriptor (the caller closes it).

    A named pipe, device, socket or folder is refused in one line without blocking: the open is
    non-blocking (a pipe with no writer would wait forever) and its ``fstat`` decides. With
    ``follow=False`` a symbolic link is refused too (files found inside folders: model files, store
    entries); a path the user gave may be a link to their data.

    Parameters
    ----------
    path : the file (relative to ``dir_fd`` when given).
    what : how messages name it ("model file", "input file", ...).
    follow : whether a link as the last component is followed.
    dir_fd : a folder descriptor ``path`` is relative to.
    shown : how messages name the file (default: ``path``).

    Returns
    -------
    A blocking read-only descriptor of a regular file. ``FileNotFoundError`` passes through (callers
    say what a missing file means); other failures are GengenErrors.
    """
    flags = os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | (0 if follow else _O_NOFOLLOW)
    name = os.fspath(path)
    label = os.fspath(shown) if shown is not None else name
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if not follow and _is_link_refusal(exc, name, dir_fd):
            link = _link_text(name, dir_fd)
            raise _with_reason(GengenError(f"{what} {label!r} is {link}; gengen does not follow links it finds in "
                                           "folders: put the file itself there."), link) from None
        with contextlib.suppress(OSError):  # a socket cannot be opened at all (ENXIO): say what it is
            _refuse_special(os.stat(name, dir_fd=dir_fd).st_mode, what, label)
        raise _with_reason(GengenError(f"cannot read {what} {label!r}: {exc.strerror or exc}."),
                           f"unreadable ({exc.strerror or exc})") from None
    try:
        _refuse_special(os.fstat(fd).st_mode, what, label)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_special(mode: int, what: str, label: str) -> None:
    import stat

    if not stat.S_ISREG(mode):
        kind = file_kind(mode)
        raise _with_reason(GengenError(f"{what} {label!r} is {kind}, not a regular file; gengen reads only regular "
                                       "files (copy the data into a regular file first)."), kind)


def read_regular(path: str | os.PathLike, what: str = "file", *, follow: bool = True,
                 dir_fd: int | None = None) -> bytes:
    """The bytes of a regular file, opened by :func:`open_regular` (same parameters and errors).

    Returns
    -------
    The whole content.
    """
    with os.fdopen(open_regular(path, what, follow=follow, dir_fd=dir_fd), "rb") as fh:
        return fh.read()


def load_json(raw: bytes | str, source: str | os.PathLike, what: str = "file", fix: str = "") -> Any:
    """Parse JSON text; anything wrong with it (bad syntax or encoding, nesting deeper than
    :data:`JSON_MAX_DEPTH`, which would exhaust the parser's recursion) is one GengenError line.

    Parameters
    ----------
    raw : the text (bytes are decoded as UTF-8).
    source : the file it came from, named in the message.
    what : how the message names the file ("model config", "store index", ...).
    fix : what the user can do, ending the message (default: fix or remove the file).

    Returns
    -------
    The parsed value.
    """
    import json

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        value = json.loads(text)
        reason = "" if _json_depth_ok(value) else f"nested deeper than {JSON_MAX_DEPTH} levels"
    except RecursionError:
        reason = f"nested deeper than {JSON_MAX_DEPTH} levels"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        reason = f"not valid JSON ({str(exc).splitlines()[0][:100]})"
    if reason:
        raise _with_reason(GengenError(f"{what} {os.fspath(source)!r} is {reason}; {fix or 'fix or remove it'}."), reason)
    return value


def _with_reason(error: GengenError, reason: str) -> GengenError:
    """``error`` carrying what the file is (``error.reason``: 'a named pipe (FIFO)', 'not valid JSON (...)'),
    for callers that word their own message around it."""
    error.reason = reason
    return error


def _json_depth_ok(value: Any, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether parsed JSON nests at most ``limit`` levels (checked without recursion: code that walks
    it later, e.g. ``json.dumps``, recurses and would fail on what the parser barely accepted)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return False
                stack.append((child, depth + 1))
    return True


def read_json(path: str | os.PathLike, what: str = "file", *, follow: bool = True, fix: str = "",
              dir_fd: int | None = None) -> Any:
    """:func:`load_json` of a regular file read by :func:`read_regular` (``FileNotFoundError`` passes
    through; every other problem is one GengenError line).

    Parameters
    ----------
    path : the JSON file.
    what : how messages name it.
    follow : whether a link as the last component is followed (see :func:`open_regular`).
    fix : what the user can do, for the message.
    dir_fd : a folder descriptor ``path`` is relative to.

    Returns
    -------
    The parsed value.
    """
    return load_json(read_regular(path, what, follow=follow, dir_fd=dir_fd), path, what, fix)


def copy_regular_tree(source: str | os.PathLike, destination: str | os.PathLike, what: str = "folder") -> None:
    """Copy a folder of regular files (and subfolders) into the new folder ``destination``.

    Unlike ``shutil.copytree``, which copies whatever links point at (a ``notes.txt -> ~/.ssh/id_rsa``
    would land in a shared store, a link to ``/dev/zero`` would fill the disk) and stops with a
    traceback on a named pipe, everything is checked before anything is copied: a link is copied as
    the file it points to only when that is a regular file inside ``source``; a link leaving it, a link
    to a folder and any special file are refused, one line each. Copies get the umask's mode.

    Parameters
    ----------
    source : the folder to copy.
    destination : a path that does not exist yet (made here), or an empty folder this run made (the
        temporary of :func:`atomic_dir`).
    what : how messages name ``source`` ("model folder").
    """
    import stat

    src = os.path.realpath(source)
    plan: list[tuple[str, str | None]] = []  # (relative path, file to read; None for a folder)

    def walk(rel: str) -> None:
        folder = os.path.join(src, rel) if rel else src
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            sub = os.path.join(rel, entry.name) if rel else entry.name
            shown = os.path.join(os.fspath(source), sub)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                plan.append((sub, None))
                walk(sub)
            elif stat.S_ISREG(mode):
                plan.append((sub, entry.path))
            elif stat.S_ISLNK(mode):
                real = os.path.realpath(entry.path)
                try:
                    target_mode = os.stat(real).st_mode
                except OSError:
                    target_mode = None
                if not _inside(real, src):
                    raise GengenError(f"{shown!r} in the {what} is a link to {os.readlink(entry.path)!r}, outside it; "
                                      "gengen copies no file from outside the folder: copy the file in or remove the link.")
                if target_mode is None or not stat.S_ISREG(target_mode):
                    kind = "nothing (a broken link)" if target_mode is None else file_kind(target_mode)
                    raise GengenError(f"{shown!r} in the {what} is a link to {kind}; replace it by a regular file "
                                      "or remove it.")
                plan.append((sub, real))
            else:
                raise GengenError(f"{shown!r} in the {what} is {file_kind(mode)}, not a regular file; remove it from "
                                  "the folder.")

    walk("")
    dest = os.fspath(destination)
    if not (os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)):
        os.mkdir(dest, 0o777)
    for rel, origin in plan:
        out = os.path.join(dest, rel)
        if origin is None:
            os.mkdir(out, 0o777)
            continue
        with os.fdopen(open_regular(origin, what=f"file of the {what}", follow=False), "rb") as fin, \
                os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666), "wb") as fout:
            import shutil

            shutil.copyfileobj(fin, fout, 1 << 20)


# ------------------------------------------------------------------------------------------------
# Outputs: the plan a command checks before any work, atomic writes, temporary names and locks.
#
# Every file or folder gengen writes is built under a hidden temporary name beside its target,
# ``.NAME.gengen-tmp-<pid>-<host>-<random>[.suffix]``, and renamed into place only when complete. A
# run killed with SIGKILL leaves such a temp behind; the next write into the same folder removes the
# ones whose owner is gone (written on this host: its pid is not running; on another host sharing
# the filesystem: untouched for FOREIGN_TEMP_MAX_AGE seconds). While a command may write an output
# it holds an advisory lock (``fcntl.flock``) on ``.NAME.gengen-lock`` beside it, with its pid and
# host inside; a second writer gets a one-line error naming them. Model folders are swapped into
# place with one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``, macOS ``renamex_np``), so a
# reader sees the old or the new model, never none; where the filesystem cannot exchange, the old
# folder is renamed away first (a moment without a model).

TEMP_TAG = "gengen-tmp"
LOCK_SUFFIX = ".gengen-lock"
FOREIGN_TEMP_MAX_AGE = 24 * 3600.0
_TEMP_RE = re.compile(rf"^\.(?P<name>.+)\.{TEMP_TAG}-(?P<pid>\d+)-(?P<host>[0-9a-f]{{6}})-[0-9a-f]{{8}}(\.[^.]*)?$")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_OWN_TEMPS: set[str] = set()
_HELD_LOCKS: dict[str, list] = {}  # lock file -> [fd or None, depth]
_ACTIVE_PLANS: list[OutputPlan] = []
_SCOPES: list[contextlib.ExitStack] = []
if hasattr(os, "register_at_fork"):  # a forked child does not own its parent's locks
    os.register_at_fork(after_in_child=_HELD_LOCKS.clear)


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def temp_path(target: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh hidden name beside ``target`` that records its owner (pid, host), so a later run can
    tell a killed run's leftover from another process's live work.

    Parameters
    ----------
    target : the output the temporary stands for.
    suffix : kept at the end, for writers that choose a format by extension.

    Returns
    -------
    ``.NAME.gengen-tmp-<pid>-<host>-<random><suffix>`` in ``target``'s folder (not created).
    """
    import secrets

    target = Path(target)
    tag = f"{TEMP_TAG}-{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}"
    return target.parent / f".{target.name[:150]}.{tag}{suffix}"


def new_temp(target: str | os.PathLike, directory: bool = False) -> Path:
    """Create an empty temporary file (or folder) beside ``target``, named by :func:`temp_path`.

    It is registered as this process's own, so no cleanup here removes it while in use; a killed
    process's are removed by the next run (:func:`clean_stale_temps`).

    Parameters
    ----------
    target : the output it stands for.
    directory : a folder instead of a file (a file keeps ``target``'s suffix).

    Returns
    -------
    The new path.
    """
    target = Path(target)
    while True:
        tmp = temp_path(target, "" if directory else (target.suffix or ".tmp"))
        try:
            if directory:
                os.mkdir(tmp, 0o777)  # the umask applies, as for any new folder
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _O_NOFOLLOW | _O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(exc, target) from None
        _OWN_TEMPS.add(_key(tmp))
        return tmp


def remove_temp(path: str | os.PathLike) -> None:
    """Delete a temporary made by :func:`new_temp` (file or folder, quietly if already gone)."""
    import shutil

    _OWN_TEMPS.discard(_key(path))
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    try:  # a zombie (killed, not yet reaped) is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def clean_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporaries and unheld lock files that killed gengen runs left in ``directory``.

    A temp is stale when its owner is gone: written on this host by a pid that is no longer running,
    or written on another host (a shared filesystem) and untouched for ``FOREIGN_TEMP_MAX_AGE``
    seconds. Called before every write, so leftovers go on the next run.

    Parameters
    ----------
    directory : the folder to clean (not recursively).

    Returns
    -------
    The paths removed.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    removed = []
    me, host, now = os.getpid(), _host_tag(), time.time()
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.name.endswith(LOCK_SUFFIX):
            if _remove_unheld_lock(path):
                removed.append(path)
            continue
        match = _TEMP_RE.match(entry.name)
        if match is None or _key(path) in _OWN_TEMPS:
            continue
        try:  # a link or special file under a temporary's name is not a gengen leftover: not ours to touch
            if not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
                continue
        except OSError:
            continue
        pid = int(match["pid"])
        if match["host"] == host:
            stale = pid == me or not _pid_alive(pid)  # our own live temps are in _OWN_TEMPS
        else:
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_TEMP_MAX_AGE
            except OSError:
                continue
        if stale:
            remove_temp(path)
            removed.append(path)
    return removed


def _key(path: str | os.PathLike) -> str:
    """One spelling per file (its folder's real path + its name), however the caller named the folder."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _lock_file(target: Path) -> str:
    return _key(target.parent / f".{target.name[:200]}{LOCK_SUFFIX}")


def _open_found_lock(key: str) -> tuple[int | None, str]:
    """Open a lock file that already exists, read-only, never through a link and never blocking on a
    pipe: (descriptor, '') for a regular file, (None, '') when it is gone, (None, what it is) otherwise."""
    try:
        return open_regular(key, "lock file", follow=False), ""
    except FileNotFoundError:
        return None, ""
    except GengenError:
        try:
            st = os.lstat(key)
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            return None, f"unreadable ({exc.strerror})"
        return None, _link_text(key) if stat_is_link(st) else file_kind(st.st_mode)


def _foreign_lock(fd: int) -> str:
    """Why a found, unheld lock file is not one this user's gengen may remove ('' when it may)."""
    st = os.fstat(fd)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"a file of another user (uid {st.st_uid})"
    if st.st_nlink != 1:
        return f"a file with {st.st_nlink} hard links"
    return ""


def _lock_refused(key: str, target: Path, what: str) -> GengenError:
    import shlex

    return GengenError(
        f"cannot lock {str(target)!r}: its lock file {key!r} is {what}, not a lock gengen made; remove it "
        f"(rm {shlex.quote(key)}) and run again."
    )


def _same_entry(fd: int, key: str) -> bool:
    """Whether the name ``key`` still is the file open as ``fd`` (not a link, not a newer file)."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(key))
    except OSError:
        return False


def _remove_unheld_lock(path: Path) -> bool:
    """Remove a lock file that a killed run left: a regular file of this user with one link that no
    process holds. Anything else there is left alone (not ours to touch; taking the lock says so)."""
    key = _key(path)
    if key in _HELD_LOCKS or fcntl is None:
        return False
    fd, _ = _open_found_lock(key)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _foreign_lock(fd) and _same_entry(fd, key):
            os.unlink(key)
            return True
    except OSError:
        pass
    finally:
        os.close(fd)
    return False


def _acquire_lock(target: Path, wait: float = 0.0) -> str:
    """Lock ``target`` for writing (re-entrant within a process); returns the key to release.

    The lock file is created with ``O_EXCL | O_NOFOLLOW``, so it is never a link's target or a file
    this run did not make; only a file created here is written (its holder's pid and host). One that
    is there already is opened read-only: held by a live run, that run is named; left by a killed
    run (a regular file of this user, unheld), it is removed and made anew; anything else (a link, a
    pipe, another user's file, a hard link) is refused in one line. ``wait`` is how many seconds to
    wait for a live holder before giving up (default: none).
    """
    key = _lock_file(target)
    held = _HELD_LOCKS.get(key)
    if held is not None:
        held[1] += 1
        return key
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
            created = True
        except FileExistsError:
            fd, problem = _open_found_lock(key)
            if problem:
                raise _lock_refused(key, target, problem) from None
            if fd is None:  # removed meanwhile: create it
                continue
            created = False
        except OSError as exc:
            raise output_error(exc, target) from None
        if fcntl is None:  # no advisory locks on this platform
            os.close(fd)
            if created:
                os.unlink(key)
            _HELD_LOCKS[key] = [None, 1]
            return key
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            if created or time.monotonic() < deadline:  # (created: another run found it first and removes it)
                time.sleep(0.01 if created else 0.05)
                continue
            who = f"pid {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "") if holder else "pid unknown"
            raise GengenError(
                f"{str(target)!r} is being written by another gengen run ({who}); wait for it to finish, "
                f"or choose another output. (lock file: {key})"
            ) from None
        except OSError:  # a filesystem without locks (some network mounts): go on unlocked
            os.close(fd)
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(key)
            _HELD_LOCKS[key] = [None, 1]
            return key
        if not _same_entry(fd, key):  # the previous holder removed the file as we opened it: lock the new one
            os.close(fd)
            continue
        if not created:  # a killed run's lock file, unheld: remove it (if ours to remove) and make our own
            problem = _foreign_lock(fd)
            if problem:
                os.close(fd)
                raise _lock_refused(key, target, problem)
            try:  # while still holding it: a run that opened it too re-checks and retries
                os.unlink(key)
            except FileNotFoundError:
                pass
            except OSError as exc:  # a read-only folder: the output cannot be written either
                raise output_error(exc, target) from None
            finally:
                os.close(fd)
            continue
        import socket

        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        _HELD_LOCKS[key] = [fd, 1]
        return key


def _release_lock(key: str) -> None:
    held = _HELD_LOCKS.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] > 0:
        return
    del _HELD_LOCKS[key]
    fd = held[0]
    if fd is None:
        return
    try:  # unlink while still holding the lock: a waiter that opened this file re-checks and retries
        if _same_entry(fd, key):
            os.unlink(key)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold the advisory write lock of ``path`` for the block (a second writer gets a GengenError).

    Parameters
    ----------
    path : the output (file or folder); the lock file is ``.NAME.gengen-lock`` beside it.
    wait : seconds to wait for another run that holds it (a short read-modify-write) before failing.
    """
    key = _acquire_lock(Path(path), wait)
    try:
        yield
    finally:
        _release_lock(key)


def output_error(exc: OSError, target: str | os.PathLike, note: str = "") -> GengenError:
    """An OSError met while writing ``target`` as one line that names it and says what to do.

    Parameters
    ----------
    exc : the error.
    target : the output being written.
    note : appended, e.g. what was (not) written.

    Returns
    -------
    The GengenError to raise.
    """
    reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    hint = {
        errno.ENOSPC: "free some space or write elsewhere",
        errno.EDQUOT: "free some space or write elsewhere",
        errno.EROFS: "choose a writable place for the output",
        errno.EACCES: "choose a writable place for the output",
        errno.EPERM: "choose a writable place for the output",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "give a file name, not a folder",
        errno.ENAMETOOLONG: "choose a shorter name",
    }.get(exc.errno, "")
    extra = "; ".join(x for x in (hint, note) if x)
    return GengenError(f"cannot write {str(target)!r}: {reason}" + (f" ({extra})." if extra else "."))


def _about_output(exc: OSError, target: Path, tmp: Path) -> bool:
    """Whether an OSError raised while writing ``tmp`` concerns the output (not an input read meanwhile)."""
    ours = [os.path.abspath(p) for p in (target, tmp)]
    named = [os.path.abspath(os.fsdecode(f)) for f in (exc.filename, exc.filename2) if f is not None]
    if named:
        return any(n == o or n.startswith(o + os.sep) for n in named for o in ours)
    if exc.errno in _WRITE_ERRNOS:
        return True
    return tmp.name in str(exc)  # h5py and others put the name in the message only


def _check_writable(target: Path, kind: str) -> None:
    """Fail before any work when ``target`` cannot be written: a folder where a file goes (or the
    reverse), a path under a regular file, a read-only or inaccessible folder."""
    if kind == "file" and target.is_dir():
        raise GengenError(f"output {str(target)!r} is a folder; give a file name.")
    if kind != "file" and (target.exists() or target.is_symlink()) and not target.is_dir():
        raise GengenError(f"{str(target)!r} exists and is not a folder; choose another -o.")
    anc = target.parent
    while not anc.exists() and anc != anc.parent:
        if anc.is_symlink():
            raise GengenError(f"cannot write {str(target)!r}: {str(anc)!r} is a broken link.")
        anc = anc.parent
    if not anc.is_dir():
        raise GengenError(f"cannot write {str(target)!r}: {str(anc)!r} is a file, not a folder.")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise GengenError(
            f"cannot write {str(target)!r}: the folder {str(anc)!r} is not writable (read-only or no "
            "permission); choose another place."
        )


def _input_paths(inputs) -> list[Path]:
    """Existing paths among ``inputs`` (model names resolved to their folders); None and the rest skipped."""
    found = []
    for item in inputs:
        if item is None or str(item) == "":
            continue
        p = Path(item)
        if not (p.exists() or p.is_symlink()):
            from gengen.checkpoint import resolve_model

            try:
                p = resolve_model(str(item))
            except (GengenError, OSError):
                continue
        found.append(p)
    return found


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_not_input(target: Path, kind: str, inputs: list[Path]) -> None:
    """Refuse an output that is an input, through symlinks and hard links, or that would replace one."""
    real = os.path.realpath(target)
    exists = os.path.lexists(target)
    for inp in inputs:
        other = os.path.realpath(inp)
        same = real == other
        if not same and exists and os.path.exists(inp):
            with contextlib.suppress(OSError):
                same = os.path.samefile(target, inp)
        if same:
            raise GengenError(
                f"refusing to overwrite the input {str(inp)!r}: this command would write {str(target)!r} "
                "over it; choose another output name (-o)."
            )
        if kind == "dir" and _inside(other, real):
            raise GengenError(
                f"the input {str(inp)!r} is inside the output folder {str(target)!r}, which this command "
                "replaces; choose another -o."
            )
        if exists and os.path.isdir(other) and _inside(real, other):
            raise GengenError(
                f"the output {str(target)!r} would replace a file inside the input folder {str(inp)!r}; "
                "choose another -o."
            )


def _active_inputs() -> list[Path]:
    return [i for plan in _ACTIVE_PLANS for i in plan.inputs]


class OutputPlan:
    """Every output one command writes, checked against its inputs and the filesystem before any
    work; made by :func:`plan_outputs`.

    Entered (``with plan:``, or by the CLI for the whole command) it makes missing folders, takes the
    write lock of every output, removes stale temporaries, and *stages* the declared files: each
    :func:`atomic_path` write to one of them lands under its temporary name and all of them are moved
    into place together when the block ends without error (:meth:`commit`), else none. Model folders
    (``models``) are checkpoints: each save lands at once, atomically, under the lock. When the
    last declared file is written, all of them land at once (before the command reports them).
    """

    def __init__(self, files, models: dict, folders, inputs, report=None):
        self.files = [Path(f) for f in files if f is not None]
        self.report = None if report is None else Path(report)
        self.models = {Path(k): v for k, v in models.items() if k is not None}
        self.folders = [Path(f) for f in folders if f is not None]
        self.inputs = _input_paths(inputs)
        self._file_keys = {os.path.realpath(f) for f in self.files}
        self._staged: dict[str, tuple[Path, Path]] = {}
        self._locks: list[str] = []
        self._created: list[Path] = []
        self._depth = 0
        self.check()

    def targets(self) -> list[tuple[Path, str]]:
        """(path, kind) of every output: kind 'file', 'dir' (a model folder) or 'folder' (filled)."""
        return ([(f, "file") for f in self.files] + [(m, "dir") for m in self.models]
                + [(f, "folder") for f in self.folders])

    def check(self) -> None:
        """The checks that need no writing: raise GengenError on the first problem."""
        seen: dict[str, Path] = {}
        for target, kind in self.targets():
            key = os.path.realpath(target)
            if key in seen:
                raise GengenError(
                    f"two outputs of this command are the same path ({str(seen[key])!r} and {str(target)!r}); "
                    "choose other names."
                )
            seen[key] = target
            _check_not_input(target, kind, self.inputs)
            _check_writable(target, kind)
        if self.models:
            from gengen.checkpoint import check_overwrite

            for target, pipeline in self.models.items():
                check_overwrite(target, pipeline)

    def declares(self, target: str | os.PathLike) -> bool:
        """Whether ``target`` is one of the staged files of this plan."""
        return os.path.realpath(target) in self._file_keys

    def __enter__(self) -> OutputPlan:
        self._depth += 1
        if self._depth > 1:
            return self
        try:
            for target, kind in self.targets():
                self._makedirs(target if kind == "folder" else target.parent)
                self._locks.append(_acquire_lock(target))
                clean_stale_temps(target.parent)
        except BaseException:
            self._close(failed=True)
            raise
        _ACTIVE_PLANS.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        failed = exc_type is not None
        try:
            if not failed:
                self.commit()
        except BaseException:
            failed = True
            raise
        finally:
            self._close(failed)

    def _makedirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                continue
            except OSError as exc:
                raise output_error(exc, d) from None
            self._created.append(d)

    def _stage(self, tmp: Path, target: Path) -> None:
        old = self._staged.pop(os.path.realpath(target), None)
        if old is not None:
            remove_temp(old[0])
        self._staged[os.path.realpath(target)] = (tmp, target)
        if set(self._staged) == self._file_keys:
            # every declared file is written: land them now, so a command that prints their names next
            # never names a file that then fails to land (disk full as the last one is moved into place)
            self.commit()

    def commit(self) -> None:
        """Move every staged file into place; if one cannot be, put back what the others replaced."""
        staged, self._staged = list(self._staged.values()), {}
        done: list[tuple[Path, Path | None]] = []
        try:
            for tmp, target in staged:
                done.append((target, _replace_keeping_backup(tmp, target)))
        except OSError as exc:
            for placed, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup is None:
                        os.unlink(placed)
                    else:
                        os.replace(backup, placed)
            for tmp, _ in staged:
                remove_temp(tmp)
            failed = staged[len(done)][1]
            raise output_error(exc, failed, "none of this command's outputs was written") from None
        for tmp, _ in staged:
            _OWN_TEMPS.discard(_key(tmp))
        for _, backup in done:
            if backup is not None:
                remove_temp(backup)
        if self.report is not None and staged:
            _renew_report_manifest(self.report, [target for _, target in staged])

    def _close(self, failed: bool) -> None:
        for tmp, _ in self._staged.values():
            remove_temp(tmp)
        self._staged = {}
        while self._locks:
            _release_lock(self._locks.pop())
        if failed:  # leave no empty folder behind a failed run
            for d in reversed(self._created):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        self._created = []
        if self in _ACTIVE_PLANS:
            _ACTIVE_PLANS.remove(self)


REPORT_MANIFEST = ".gengen-outputs.json"


def _renew_report_manifest(folder: Path, written: list[Path]) -> None:
    """A report folder holds one run's files: remove those the previous run listed in the folder's
    manifest and this run did not write again (a reused ``-o`` would otherwise keep another model's
    figures beside this one's tables), then list this run's.

    Only names gengen itself listed are removed, and only when they are still regular files (never a
    link, a folder or a file the user put there under another name); an unreadable manifest removes
    nothing.
    """
    import json
    import stat

    manifest = folder / REPORT_MANIFEST
    names = sorted({os.path.relpath(os.path.abspath(p), os.path.abspath(folder)) for p in written})
    try:
        previous = read_json(manifest, "output list", follow=False)
    except (FileNotFoundError, GengenError):
        previous = []
    for name in previous if isinstance(previous, list) else []:
        if not isinstance(name, str) or name in names or os.path.isabs(name) or ".." in Path(name).parts:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(folder / name).st_mode):
                os.unlink(folder / name)
    tmp = new_temp(manifest)
    try:
        Path(tmp).write_text(json.dumps(names, indent=1) + "\n")
        os.replace(tmp, manifest)
    except OSError:  # the report itself landed; a stale list only means less is tidied next time
        remove_temp(tmp)
    else:
        _OWN_TEMPS.discard(_key(tmp))


def _replace_keeping_backup(tmp: Path, target: Path) -> Path | None:
    """``os.replace(tmp, target)``, keeping the replaced file under a temporary name (a hard link, so
    ``target`` never disappears) for :meth:`OutputPlan.commit` to put back; None if there was none."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return None
    if os.path.isdir(target) and not os.path.islink(target):  # appeared since the plan's check
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(target))
    backup = new_temp(target, directory=False)
    os.unlink(backup)
    try:
        os.link(target, backup, follow_symlinks=False)
        linked = True
    except OSError:  # no hard links on this filesystem
        os.rename(target, backup)
        linked = False
    try:
        os.replace(tmp, target)
    except OSError:
        if linked:
            remove_temp(backup)
        else:
            os.replace(backup, target)
        raise
    return backup


def plan_outputs(
    outputs=(),
    *,
    inputs=(),
    models: dict | None = None,
    folders=(),
    report: str | os.PathLike | None = None,
) -> OutputPlan:
    """Check everything a command will write before it does any work, and make the writes safe.

    ``outputs`` are files (main and side files), ``models`` maps model folders to their pipeline
    (replaced only if empty or a model of that pipeline), ``folders`` are folders the command fills
    with files it names later; ``inputs`` are every path (or model name) the command reads. Each
    output is refused if it is an input (through symlinks and hard links), if a model folder holds an
    input, if it would replace a file inside an input folder, if it cannot be written (a path under a
    file, a folder where a file goes, a read-only folder), or if two outputs are one path.

    Inside a CLI command the plan is entered at once and closed when the command ends (see
    :func:`command_scope`); in library code use ``with plan_outputs(...):``. None entries are skipped.

    Parameters
    ----------
    outputs : files the command writes; staged, they land together when it succeeds.
    inputs : paths or model names the command reads; never overwritten.
    models : model folder -> pipeline name; each save lands at once (checkpoints).
    folders : folders the command fills with files named later (e.g. the demo's).
    report : a folder of ``outputs`` that holds one run's report (``vae-features -o DIR``): when this
        run's files land, the files an earlier gengen run listed there and this one did not write are
        removed, so a reused folder never mixes two runs' results (``.gengen-outputs.json`` lists them).

    Returns
    -------
    The checked :class:`OutputPlan` (raises GengenError on the first problem).
    """
    plan = OutputPlan(outputs, models or {}, folders, inputs, report)
    if _SCOPES:
        _SCOPES[-1].enter_context(plan)
    return plan


def on_command_exit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` when the current CLI command ends, whether it succeeds or fails (at interpreter
    exit outside a command), e.g. to remove a folder claimed before any work if nothing was saved in it.

    Parameters
    ----------
    callback : called without arguments; exceptions it raises propagate.
    """
    if _SCOPES:
        _SCOPES[-1].callback(callback)
    else:
        import atexit

        atexit.register(callback)


_TERMINATED: list[int] = []  # signals that asked the current command to stop


def stop_if_terminated() -> None:
    """Raise the SystemExit of a SIGTERM again when the first one was swallowed.

    A signal handler's exception lands wherever the interpreter is; inside a ``__del__`` or a weakref
    or garbage-collection callback (torch's autograd runs some) Python only prints "Exception ignored"
    and carries on (measured: 1 of 7 ``dna-train`` runs SIGTERMed 0.1 s into training kept training).
    Long loops call this through :meth:`Progress.update`, so the stop still happens at the next step.
    """
    if _TERMINATED:
        raise SystemExit(128 + _TERMINATED[-1])


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Around one CLI command: plans made inside are entered at once and closed at its end, their
    staged outputs committed only if it succeeds; SIGTERM ends it the same clean way as an error."""
    import signal
    import threading

    stack = contextlib.ExitStack()
    if not _SCOPES:
        _TERMINATED.clear()
    _SCOPES.append(stack)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum, frame):
            _TERMINATED.append(signum)
            raise SystemExit(128 + signum)

        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with stack:
            yield
    finally:
        _SCOPES.remove(stack)
        if not _SCOPES:  # the stop it asked for has happened: later library calls in this process run
            _TERMINATED.clear()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _make_parent(target: Path) -> None:
    """Create ``target``'s folder (and its parents); a refusal is one line naming ``target``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, target) from None


@contextlib.contextmanager
def _output_errors_name(target: Path, tmp: Path) -> Iterator[None]:
    """While the caller writes ``tmp``: an OSError about the output (disk full, read-only, ...) becomes a
    one-line error naming ``target``; any other OSError (an input) passes unchanged."""
    try:
        yield
    except OSError as exc:
        if _about_output(exc, target, tmp):
            raise output_error(exc, target) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, protect: tuple[str | os.PathLike, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` only if the block succeeds.

    A failed run leaves no partial file. ``protect`` lists inputs that must never be overwritten (the
    inputs of the active :func:`plan_outputs` are always protected). A file that an active plan
    declares is staged and lands with the plan's other outputs. The temporary name keeps the suffix
    so writers that dispatch on it (anndata, matplotlib) work. An OSError about the output (disk
    full, read-only, ...) becomes a one-line GengenError naming ``path``.
    """
    target = Path(path)
    _check_not_input(target, "file", _input_paths(protect) + _active_inputs())
    plan = next((p for p in reversed(_ACTIVE_PLANS) if p.declares(target)), None)
    if plan is None:
        _check_writable(target, "file")
        _make_parent(target)
    key = _acquire_lock(target)
    tmp, placed = None, False
    try:
        clean_stale_temps(target.parent)
        tmp = new_temp(target, directory=False)
        with _output_errors_name(target, tmp):
            yield tmp
            give_umask_modes(tmp)
        if plan is not None:
            plan._stage(tmp, target)
        else:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise output_error(exc, target) from None
            _OWN_TEMPS.discard(_key(tmp))
        placed = True
    finally:
        if tmp is not None and not placed:
            remove_temp(tmp)
        _release_lock(key)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it into place when the block succeeds.

    The swap is one atomic exchange where the filesystem allows it (a reader sees the old or the new
    folder, never none); the write lock of ``path`` is held throughout.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise GengenError(f"{str(target)!r} exists and is not a directory; choose another -o.")
    if target.exists() and not overwrite:
        raise GengenError(f"{str(target)!r} already exists; remove it or choose another -o.")
    _check_not_input(target, "dir", _active_inputs())
    _check_writable(target, "dir")
    _make_parent(target)
    key = _acquire_lock(target)
    tmp = None
    try:
        clean_stale_temps(target.parent)
        tmp = new_temp(target, directory=True)
        with _output_errors_name(target, tmp):
            yield tmp
            give_umask_modes(tmp)
        try:
            _swap_dir_into_place(tmp, target)
        except OSError as exc:
            raise output_error(exc, target) from None
    finally:
        if tmp is not None:
            remove_temp(tmp)  # the temporary, or after an exchange the replaced folder
        _release_lock(key)


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux): setting it to
    0 for a moment would give files another thread creates meanwhile mode 0666."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def give_umask_modes(path: str | os.PathLike) -> None:
    """Give a finished output (a file, or a folder and everything in it) the mode a new file gets from
    the umask: 0666 & ~umask for files, 0777 & ~umask for folders.

    Some writers choose their own (the safetensors writer makes ``model.safetensors`` 0600), and another
    user of a shared store or lab folder would list the model and fail to load it. Links are left as
    they are (``chmod`` would follow them).

    Parameters
    ----------
    path : the temporary output, before it is moved into place.
    """
    import stat

    mask = _umask()
    pending = [os.fspath(path)]
    while pending:
        current = pending.pop()
        try:
            mode = os.lstat(current).st_mode
            if stat.S_ISREG(mode):
                os.chmod(current, 0o666 & ~mask)
            elif stat.S_ISDIR(mode):
                os.chmod(current, 0o777 & ~mask)
                with os.scandir(current) as it:
                    pending.extend(entry.path for entry in it)
        except FileNotFoundError:
            continue


def _swap_dir_into_place(tmp: Path, target: Path) -> None:
    """Put the folder ``tmp`` at ``target``; an existing ``target`` ends up at ``tmp`` (to remove)."""
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    if exchange_paths(tmp, target):
        return
    old = new_temp(target, directory=True)
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)
        raise
    os.rename(old, tmp)
    _OWN_TEMPS.discard(_key(old))


_EXCHANGE: list = []  # [callable or None], filled on first use


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``, macOS
    ``renamex_np(RENAME_SWAP)``); False where the system or filesystem cannot, so the caller falls back.

    Parameters
    ----------
    a, b : two existing paths on one filesystem.

    Returns
    -------
    Whether they were swapped.
    """
    if not _EXCHANGE:
        _EXCHANGE.append(_exchange_function())
    fn = _EXCHANGE[0]
    if fn is None:
        return False
    import ctypes

    if fn(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


def _exchange_function():
    import ctypes
    import platform

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux"):
        at_fdcwd, rename_exchange = -100, 2
        fn = getattr(libc, "renameat2", None)  # glibc >= 2.28
        if fn is not None:
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            return lambda a, b: fn(at_fdcwd, a, at_fdcwd, b, rename_exchange)
        number = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "ppc64le": 357, "s390x": 347}.get(platform.machine())
        if number is None:
            return None
        syscall = libc.syscall
        return lambda a, b: syscall(
            ctypes.c_long(number), ctypes.c_int(at_fdcwd), ctypes.c_char_p(a), ctypes.c_int(at_fdcwd),
            ctypes.c_char_p(b), ctypes.c_uint(rename_exchange),
        )
    if sys.platform == "darwin":
        fn = getattr(libc, "renamex_np", None)
        if fn is not None:
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            return lambda a, b: fn(a, b, 2)  # RENAME_SWAP
    return None


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
