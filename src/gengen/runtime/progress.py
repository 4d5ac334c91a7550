"""What a long run says while it runs: one-line log messages and the progress bar with its time estimate."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gengen.errors import GengenError


def log(message: str, quiet: bool = False) -> None:
    """Human-facing status on stderr, so stdout stays free for data."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


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


_TERMINATED: list[int] = []  # signals that asked the current command to stop


def stop_if_terminated() -> None:
    """Raise the SystemExit of a SIGTERM (or the KeyboardInterrupt of a Ctrl-C) again when the first one
    was swallowed.

    A signal handler's exception lands wherever the interpreter is; inside a ``__del__`` or a weakref
    or garbage-collection callback (torch's autograd runs some) Python only prints "Exception ignored"
    and carries on (measured: 1 of 7 ``dna-train`` runs SIGTERMed 0.1 s into training kept training).
    Long loops call this through :meth:`Progress.update`, so the stop still happens at the next step.
    """
    if _TERMINATED:
        import signal

        if _TERMINATED[-1] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + _TERMINATED[-1])
