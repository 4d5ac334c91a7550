"""The worker loop: take a queued trial, train it with a heartbeat, tell the study, keep the best model."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from gengen.errors import GengenError
from gengen.runtime import log, stop_if_terminated
from gengen.sweep.pipelines import Pipeline
from gengen.sweep.plan import _remaining, _top_up
from gengen.sweep.settings import GRACE_FACTOR, PLANNED_ATTR, Settings
from gengen.sweep.space import SearchSpace
from gengen.sweep.storage import _database_lost, _DatabaseLost, _quiet_optuna, _requeue, _setup_lock


class _Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds on a daemon thread."""

    def __init__(self, storage, trial_id: int, interval: float):
        self._storage, self._id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._storage.record_heartbeat(self._id)  # at once: a trial is never RUNNING without one for long
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{trial_id}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # a database hiccup: try again next beat
                self._storage.record_heartbeat(self._id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _pop(st):
    """Take the first waiting trial (atomic in the database), or ``None`` when the queue is empty."""
    import optuna
    from optuna.trial import TrialState

    storage = st._storage
    for t in st.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(st, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def finished_count(trials) -> int:
    """Trials that count towards the plan: complete, pruned, or failed by their own error (a trial
    failed because its worker was lost is queued again and counts once, as its retry)."""
    from optuna.trial import TrialState

    return sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and "error" in t.user_attrs))


def _best_value(st, direction: str) -> float | None:
    from optuna.trial import TrialState

    vals = [t.value for t in st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if not vals:
        return None
    return min(vals) if direction == "minimize" else max(vals)


def _better(a: float, b: float | None, direction: str, strict: bool = False) -> bool:
    if b is None:
        return True
    if strict:
        return a < b if direction == "minimize" else a > b
    return a <= b if direction == "minimize" else a >= b


def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / "trials" / f"trial_{number:04d}"


def _suggest(trial, space: SearchSpace, grid_mode: bool) -> dict[str, Any]:
    import optuna

    values = {}
    for name, dim in space.dimensions.items():
        dist = dim.distribution(grid_mode)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, list(dist.choices))
        elif isinstance(dist, optuna.distributions.IntDistribution):
            values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return values


def _work(st, pipe: Pipeline, data, space: SearchSpace, settings: Settings, out: Path, device: str,
          quiet: bool, worker: str, url: str, trial_lost: list[int]) -> int:
    """Take queued trials until none is waiting or running; returns how many this worker finished
    (``trial_lost`` receives the number of a trial the database went away during)."""
    import optuna

    grid_mode = settings.sampler == "grid"
    poll = min(5.0, settings.heartbeat)
    keeper = _BestKeeper(st, out, settings.direction)
    ran = 0
    said_waiting = False
    planned = int(st.user_attrs.get(PLANNED_ATTR, 0))
    try:
        while True:
            stop_if_terminated()  # a Ctrl-C or SIGTERM swallowed where it landed: no new trial after it
            with _quiet_optuna():
                optuna.storages.fail_stale_trials(st)
                trial = _pop(st)
                if trial is None and _remaining(st, settings):  # queue the next part of the plan
                    with _setup_lock(url):
                        _top_up(st, space, settings)
                    trial = _pop(st)
            if trial is None:
                keeper.flush()  # nothing more for this worker to start: write its best model now
                running = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if not running:
                    break
                if not said_waiting:
                    log(f"no trial left to start; waiting for {len(running)} running on other workers "
                        f"(re-queued if a worker stops for {GRACE_FACTOR * settings.heartbeat:g} s)", quiet)
                    said_waiting = True
                time.sleep(poll)
                continue
            said_waiting = False
            outcome = _run_trial(st, trial, pipe, data, space, settings, device, worker, grid_mode, keeper,
                                 trial_lost)
            ran += outcome is not None
            keeper.forget_beaten()
            if outcome is not None:
                _progress(st, trial.number, outcome, pipe, settings, planned, quiet)
    except BaseException:  # Ctrl-C, a lost database: the best model trained here is not lost
        keeper.flush(unreachable_ok=True)
        raise
    keeper.flush()
    keeper.forget_beaten()
    return ran


SAVE_AT_ONCE_SECONDS = 30.0


class _BestKeeper:
    """This worker's best model. A model that beats the study's best is written at once when it took
    ``SAVE_AT_ONCE_SECONDS`` or more to train (the write is then a few per cent of it, and a crash
    cannot lose it); a quicker one is kept in memory and written when the worker runs out of trials,
    so a sweep of short trials writes one model per worker instead of one per improvement. A model
    lost with a killed worker is retrained from its parameters when the outputs are written."""

    def __init__(self, st, out: Path, direction: str):
        self.st, self.out, self.direction = st, out, direction
        self.saved: dict[int, float] = {}  # written by this worker: trial number -> objective
        self.pending: tuple[int, float, Any] | None = None

    def offer(self, number: int, value: float, model, seconds: float) -> None:
        if seconds >= SAVE_AT_ONCE_SECONDS:
            _save_model(model, trial_dir(self.out, number))
            self.saved[number] = value
        else:
            self.pending = (number, value, model)

    def withdraw(self, number: int) -> None:
        """The trial was taken away (stale) before it could be told: its model does not count."""
        if self.pending is not None and self.pending[0] == number:
            self.pending = None
        if self.saved.pop(number, None) is not None:
            shutil.rmtree(trial_dir(self.out, number), ignore_errors=True)

    def flush(self, unreachable_ok: bool = False) -> None:
        """Write the pending model if it is (still) the study's best. ``unreachable_ok``: on the way out
        of a failed run, a database that cannot be asked does not stop the model from being written,
        and a model that cannot be written does not hide the error that ended the run."""
        if self.pending is None:
            return
        number, value, model = self.pending
        self.pending = None
        try:
            best = _best_value(self.st, self.direction)
        except Exception:
            if not unreachable_ok:
                raise
            best = None  # keep it: the outputs step of the next run decides
        if _better(value, best, self.direction):
            try:
                _save_model(model, trial_dir(self.out, number))
            except Exception:
                if not unreachable_ok:
                    raise
                return
            self.saved[number] = value

    def forget_beaten(self) -> None:
        """Delete this worker's saved models that a better complete trial has beaten (never another's)."""
        best = _best_value(self.st, self.direction)
        for number, value in list(self.saved.items()):
            if best is not None and _better(best, value, self.direction, strict=True):
                shutil.rmtree(trial_dir(self.out, number), ignore_errors=True)
                del self.saved[number]
        if self.pending is not None and best is not None and _better(best, self.pending[1], self.direction, strict=True):
            self.pending = None


def _save_model(model, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    model.save(path)


def _run_trial(st, trial, pipe, data, space, settings, device, worker, grid_mode, keeper: _BestKeeper,
               trial_lost: list[int]):
    """Train one trial and tell the study; returns a short outcome dict, or None if the trial was
    taken away (its heartbeat went stale) and re-queued meanwhile. A database that goes away raises
    :class:`_DatabaseLost`."""
    import optuna
    from optuna.trial import TrialState

    hb = _Heartbeat(st._storage, trial._trial_id, settings.heartbeat)
    start = time.perf_counter()
    last_epoch = [0]
    state, value, note, metrics = TrialState.FAIL, None, "", {}

    def on_epoch(epoch: int, row: dict) -> None:
        v = row.get(pipe.objective)
        if v is None:
            return
        last_epoch[0] = epoch
        trial.report(float(v), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    try:
        with _quiet_optuna():
            trial.set_user_attr("worker", worker)
            trial.set_user_attr("sweep_dir", str(keeper.out.resolve()))  # its model, if the best: trials/ in there
            values = _suggest(trial, space, grid_mode)
        result = pipe.train(data, {**space.fixed, **values}, seed=settings.seed, device=device, on_epoch=on_epoch)
        value, metrics = float(result.value), dict(result.metrics)
        if not math.isfinite(value):
            raise GengenError(f"the objective {pipe.objective} is not finite ({value})")
        if _better(value, _best_value(st, settings.direction), settings.direction, strict=True):  # ties: the first
            keeper.offer(trial.number, value, result.model, time.perf_counter() - start)
        state = TrialState.COMPLETE
    except optuna.TrialPruned as exc:
        state, note = TrialState.PRUNED, str(exc)
    except optuna.exceptions.UpdateFinishedTrialError:
        hb.stop()
        return None
    except KeyboardInterrupt:
        hb.stop()
        with contextlib.suppress(Exception), _quiet_optuna():
            trial.set_user_attr("interrupted", True)
            frozen = st.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            if frozen.state == TrialState.FAIL:
                _requeue(st, frozen)
        raise
    except Exception as exc:  # noqa: BLE001 - a failing configuration must not stop the sweep
        if _database_lost(exc):
            _give_back(trial, hb, trial_lost)
            raise _DatabaseLost(trial.number, exc) from exc
        if os.environ.get("GENGEN_DEBUG"):
            hb.stop()
            raise
        note = str(exc) if isinstance(exc, GengenError) else f"{type(exc).__name__}: {exc}"
    finally:
        seconds = time.perf_counter() - start
    hb.stop()
    try:
        with _quiet_optuna():
            trial.set_user_attr("seconds", round(seconds, 3))
            trial.set_user_attr("epochs", last_epoch[0])
            for k, v in metrics.items():
                trial.set_user_attr(k, v)
            if state == TrialState.FAIL:
                trial.set_user_attr("error", note[:500])
            frozen = st.tell(trial, value if state == TrialState.COMPLETE else None,
                             state=None if state == TrialState.COMPLETE else state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        frozen = None
    except Exception as exc:
        if not _database_lost(exc):
            raise
        _give_back(trial, hb, trial_lost)
        raise _DatabaseLost(trial.number, exc) from exc
    if frozen is None or frozen.state != state:  # taken away as stale while it ran: the retry counts
        keeper.withdraw(trial.number)
        return None
    return {"state": state.name.lower(), "value": value if state == TrialState.COMPLETE else frozen.value,
            "values": dict(frozen.params), "seconds": seconds, "epochs": last_epoch[0], "note": note,
            "worker": worker}


def _give_back(trial, hb: _Heartbeat, trial_lost: list[int]) -> None:
    """The database went away during ``trial``: stop its heartbeat and let it go. The trial stays
    RUNNING in the database with a heartbeat that no longer moves, so the next worker to look (this
    command run again, or any other worker) fails it and queues a copy -- the same path as a killed
    worker's trial. (Failing it and queueing its copy from here, on a connection that just broke,
    could do one without the other: a trial lost, or run twice.)"""
    hb.stop()
    trial_lost.append(trial.number)


def retrain_trial(pipe: Pipeline, data, space: SearchSpace, *, settings: Settings, trial, path: Path,
                  device: str = "auto") -> None:
    """Train a finished trial's configuration again (same seed: the same model on the CPU) into ``path``."""
    result = pipe.train(data, {**space.fixed, **trial.params}, seed=settings.seed, device=device,
                        on_epoch=lambda epoch, row: None)
    _save_model(result.model, path)


def _progress(st, number: int, o: dict, pipe: Pipeline, settings: Settings, planned: int, quiet: bool) -> None:
    """One line per finished trial, with the best so far."""
    from optuna.trial import TrialState

    if quiet:
        return
    trials = st.get_trials(deepcopy=False)
    done = finished_count(trials)
    params = " ".join(f"{k}={_short(v)}" for k, v in o["values"].items())
    if o["state"] == "complete":
        what = f"{pipe.objective} {o['value']:.5g}"
    elif o["state"] == "pruned":
        what = f"pruned at epoch {o['epochs']} ({pipe.objective} {o['value']:.5g})" if o["value"] is not None else "pruned"
    else:
        what = f"failed: {o['note']}"
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = ""
    if complete:
        pick = min if settings.direction == "minimize" else max
        b = pick(complete, key=lambda t: t.value)
        best = f"; best {b.value:.5g} (trial {b.number})"
    log(f"trial {number} [{done}/{planned}] {what}  {params}  ({o['seconds']:.1f} s){best}")


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
