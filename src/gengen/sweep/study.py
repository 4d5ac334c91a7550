"""Optuna studies in a relational database, shared by any number of worker processes.

How a study stays exact with many workers (on one machine or many):

- The worker that creates a study records its settings (pipeline, space, sampler, data fingerprint)
  and its plan (a number of trials), and *enqueues planned trials* as waiting trials, a window of
  ``QUEUE_AHEAD`` at a time (workers queue the next ones under the set-up lock as the queue runs
  low, so a plan of 10^9 trials or a grid of 10^10 points costs nothing up front): the chosen grid
  points under grid sampling, empty slots that the sampler fills under TPE or random sampling.
  Workers only ever take waiting trials, never create new ones, and taking one is a single guarded
  state change in the database (``WAITING -> RUNNING``), so each trial runs on exactly one worker: a
  study finishes exactly its planned number of trials, with no grid point twice.
- A running trial writes a heartbeat every ``heartbeat`` seconds. A trial whose heartbeat is older
  than three intervals (its worker was killed, lost power or its network) is marked failed by
  whichever worker notices first, and a copy with the same parameters is queued again. A worker
  whose trial was taken from it that way discards its own late result, so no configuration is ever
  counted twice.
- A database that goes away mid-trial (server stopped, network lost) ends the worker with one line;
  its trial stays RUNNING with a heartbeat that no longer moves, so the next worker to look (the same
  command run again) re-queues it as above.
- Check first, create last: the storage URL, the study file, the space, the plan and (for a new
  study file) the data are all checked before the file or its folder exists, and a refusal during
  set-up removes what it made.
- SQLite (the default, one file in the output folder) is made safe for several processes with
  ``BEGIN IMMEDIATE`` transactions (a read-then-write is atomic), WAL journaling and a generous busy
  timeout. Across machines use PostgreSQL (``--storage postgresql://...``).

Optuna's own ``optimize`` loop would create a fresh trial whenever the queue is empty, overshooting
the plan when several workers race for the last one; the small loop here takes queued trials only.

This module sets a study up and runs a worker on it; its parts live in modules below it, each
importing only those beneath it (no circle): :mod:`~gengen.sweep.settings` (``Settings``, the shared
numbers) <- :mod:`~gengen.sweep.storage` (URLs, the database, heartbeats, locks) and
:mod:`~gengen.sweep.plan` (queueing the plan) <- :mod:`~gengen.sweep.trial` (the worker loop) <-
:mod:`~gengen.sweep.report` (the outputs) <- ``study``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from gengen.errors import GengenError
from gengen.runtime import atomic_path, log, read_json
from gengen.sweep.pipelines import Pipeline, get_pipeline
from gengen.sweep.plan import _extend_plan
from gengen.sweep.report import SweepResult, write_outputs
from gengen.sweep.settings import (
    DEFAULT_HEARTBEAT,
    DEFAULT_TPE_TRIALS,
    GRACE_FACTOR,
    GRID_WITHOUT_TRIALS,
    HEARTBEAT_RANGE,
    MARKER,
    PLANNED_ATTR,
    PRUNERS,
    SAMPLERS,
    SETTINGS_ATTR,
    STUDY_DB,
    Settings,
)
from gengen.sweep.space import SearchSpace, build_space, resolve_space
from gengen.sweep.storage import (
    _database_lost,
    _file_made_for,
    _folders_made_for,
    _lost_error,
    _parse_url,
    _quiet_optuna,
    _setup_lock,
    check_sqlite_file,
    default_storage,
    enable_heartbeat,
    open_storage,
    redact,
    sqlite_file,
)
from gengen.sweep.trial import _work, retrain_trial


def worker_name() -> str:
    """``host:pid``, recorded with every trial this process runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _space_from_json(pipe: Pipeline, d: dict, name: str) -> SearchSpace:
    return build_space(pipe.name, {**d["dimensions"], **d["fixed"]}, pipe.params, name=name)


def make_pruner(name, warmup_epochs: int = 10):
    """``median`` (stop a trial whose metric is worse than the median of earlier trials at the same
    epoch, once 5 trials have finished and from epoch ``warmup_epochs`` on: early epochs of a VAE with
    KL warm-up rank configurations poorly), ``halving`` (asynchronous successive halving) or
    ``none``; an optuna pruner object is used as is."""
    import optuna

    if not isinstance(name, str):
        return name
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_epochs)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise GengenError(f"unknown --pruner {name!r}; use one of {', '.join(PRUNERS)}.")


def _make_sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # grid: every parameter is fixed when its trial is queued


def run_sweep(
    pipeline: str | Pipeline,
    data: Any,
    output: str | os.PathLike,
    *,
    space: str | os.PathLike | dict | None = None,
    trials: int | None = None,
    sampler: str | None = None,
    pruner: Any = None,
    storage: str | None = None,
    study: str | None = None,
    resume: bool = False,
    seed: int | None = None,
    heartbeat: float | None = None,
    register: str | None = None,
    device: str = "auto",
    quiet: bool = True,
) -> SweepResult:
    """Run (or join) a hyper-parameter study and work on it until no trial is left.

    Parameters
    ----------
    pipeline
        ``"vae"``, ``"ggan"`` or ``"predictor"`` (or an adapter from :mod:`gengen.sweep.pipelines`).
    data
        The pipeline's data object (e.g. :class:`~gengen.sweep.pipelines.ExpressionData`), or a
        function returning it: it is called only after the storage and any existing study have been
        checked, so mistakes there fail before the data are read.
    output
        Sweep folder: ``study.db`` (default storage), ``trials.csv``, ``sweep.png``, ``best/`` (the
        best trial's model, an ordinary model folder), ``summary.json``.
    space
        A built-in space name (see the pipeline's ``spaces``), a TOML file, or a mapping; default:
        the study's own when joining, else ``"default"``.
    trials
        Trials the whole study finishes, over all workers (default: the full grid under grid
        sampling, 20 otherwise). Joining a study with another number needs ``resume=True`` (to extend).
    sampler, pruner
        ``grid`` | ``tpe`` | ``random`` (default: grid for a fully discrete space, else tpe);
        ``median`` | ``halving`` | ``none`` (default median) or an optuna pruner object.
    storage, study
        A database URL (PostgreSQL across machines) and the study name to create or join; default
        an SQLite file in ``output`` and the pipeline's name.
    resume
        Continue a study that must already exist (and allow raising its number of trials).
    seed
        Seed of every trial's training and of the sampler (default 0, or the study's).
    heartbeat
        Seconds between a running trial's heartbeats (default 30); a trial silent for three
        intervals is failed and queued again. Fixed when the study is created.
    register
        Also copy the best model into the model store under this name.
    device, quiet
        Training device; no progress lines when ``quiet``.

    Returns
    -------
    SweepResult
    """
    import optuna

    pipe = pipeline if isinstance(pipeline, Pipeline) else get_pipeline(pipeline)
    _check_options(trials, sampler, pruner, heartbeat, storage, study, register, pipe)
    out = Path(output)
    url = storage or default_storage(out)
    name = study or pipe.name
    _check_output(out, name, url)
    db_file = sqlite_file(url)
    if db_file is not None:
        check_sqlite_file(db_file, "--storage" if storage else f"the sweep folder's {STUDY_DB}")
    chosen = resolve_space(pipe.name, space, pipe.params, builtins=pipe.spaces) if space is not None else None
    if chosen is not None and sampler == "grid":
        chosen.check_grid()  # continuous ranges cannot be a grid: say so before touching any storage
    fresh = db_file is not None and not db_file.exists()
    if fresh and resume:
        raise GengenError(f"--resume: there is no study {name!r} in {str(db_file)!r}; leave out --resume to start it.")
    loaded = None
    if fresh:  # a new study file: check everything and read the data before it exists, so a mistake leaves none
        _settle(pipe, None, chosen, trials, sampler, pruner, seed, heartbeat, name, resume)
        if chosen is not None:
            pipe.check_recipe(list(chosen.dimensions) + list(chosen.fixed))
        loaded = data() if callable(data) else data
    trial_lost: list[int] = []  # the trial a lost database connection interrupted, if any
    settings = None
    try:
        with _quiet_optuna():
            if not fresh:
                with _setup_lock(url):  # unreachable database: one line, before anything is read or created
                    base = open_storage(url)
                    existing = _load_settings(base, name, pipe, url, resume)
                    _, the_space, _ = _settle(pipe, existing, chosen, trials, sampler, pruner, seed, heartbeat, name,
                                              resume)
                    pipe.check_recipe(list(the_space.dimensions) + list(the_space.fixed))
                loaded = data() if callable(data) else data  # outside the lock: other workers need not wait
            options, fingerprint = loaded.options(), loaded.fingerprint()
            with _folders_made_for(db_file if fresh else None):  # create last; a refusal removes what it made
                with _setup_lock(url):  # again: another worker may have created the study meanwhile
                    with _file_made_for(db_file if fresh else None) as opened:
                        if fresh:
                            base = open_storage(url)
                            opened.append(base)
                        existing = _load_settings(base, name, pipe, url, resume)
                        settings, the_space, add = _settle(pipe, existing, chosen, trials, sampler, pruner, seed,
                                                           heartbeat, name, resume)
                        if existing is not None:
                            _same(settings.options, options, "options", name)
                            _same(settings.data, fingerprint, "data", name)
                        else:
                            settings.options, settings.data = options, fingerprint
                        storage_obj = enable_heartbeat(base, settings.heartbeat) or open_storage(url, settings.heartbeat)
                        sampler_seed = settings.seed if existing is None else _worker_seed(settings.seed)
                        st = _create_or_load(storage_obj, name, settings, sampler_seed, pruner, existing,
                                             pipe.warmup_epochs)
                        if st is None:
                            raise GengenError(f"the study {name!r} was created by another worker at the same moment; "
                                              "run the command again to join it.")
                        if add:
                            _extend_plan(st, the_space, settings, add)
            _write_marker(out, name, url, pipe.name)
            worker = worker_name()
            planned = int(st.user_attrs.get(PLANNED_ATTR, 0))
            log(f"sweep {pipe.name}: study {name!r} in {redact(url)}; {planned} trials planned "
                f"({settings.sampler} sampling, {settings.pruner} pruning); space: {the_space.describe()}; "
                f"worker {worker}", quiet)
            ran = _work(st, pipe, loaded, the_space, settings, out, device, quiet, worker, url, trial_lost)
            return write_outputs(st, pipe, the_space, settings=settings, out=out, url=url, worker=worker, ran=ran,
                                 register=register, quiet=quiet, optuna=optuna,
                                 retrain=lambda t, p: retrain_trial(pipe, loaded, the_space, settings=settings, trial=t, path=p, device=device))
    except Exception as exc:
        if not _database_lost(exc) or os.environ.get("GENGEN_DEBUG"):
            raise
        raise _lost_error(url, exc, trial_lost, settings) from None


def _check_options(trials, sampler, pruner, heartbeat, storage, study, register, pipe) -> None:
    if trials is not None and trials < 1:
        raise GengenError(f"--trials must be at least 1, got {trials}.")
    if sampler is not None and sampler not in SAMPLERS:
        raise GengenError(f"unknown --sampler {sampler!r}; use one of {', '.join(SAMPLERS)}.")
    if isinstance(pruner, str) and pruner not in PRUNERS:
        raise GengenError(f"unknown --pruner {pruner!r}; use one of {', '.join(PRUNERS)}.")
    if heartbeat is not None and not HEARTBEAT_RANGE[0] <= heartbeat <= HEARTBEAT_RANGE[1]:  # nan too
        raise GengenError(f"--heartbeat must be between {HEARTBEAT_RANGE[0]:g} and {HEARTBEAT_RANGE[1]:g} seconds (a "
                          f"stopped worker's trial is re-queued after {GRACE_FACTOR} missed beats: at most "
                          f"{GRACE_FACTOR * HEARTBEAT_RANGE[1] / 3600:g} h), got {heartbeat:g}.")
    if storage is not None and not study:
        raise GengenError("--storage needs --study NAME, the study every worker joins.")
    if study is not None and not str(study).strip():
        raise GengenError("--study must not be empty.")
    if storage is not None:
        _parse_url(storage)
    if register is not None:
        from gengen.checkpoint import check_overwrite
        from gengen.store import check_name, store_dir

        check_overwrite(store_dir() / check_name(register), pipe.checkpoint)


def _check_output(out: Path, name: str, url: str) -> None:
    """The sweep folder: new, empty, or this very sweep's (never a folder of other files)."""
    if out.exists() and not out.is_dir():
        raise GengenError(f"-o {str(out)!r} exists and is not a folder; choose another -o.")
    marker = out / MARKER
    if marker.exists():
        info = read_json(marker, f"the sweep folder's {MARKER}",
                         fix="choose another -o (or remove the file if the folder is yours)")
        info = info if isinstance(info, dict) else {}
        if info.get("study") != name or info.get("storage") != redact(url):
            raise GengenError(
                f"{str(out)!r} holds the sweep {info.get('study')!r} in {info.get('storage')}, not {name!r} in "
                f"{redact(url)}; choose another -o."
            )
    elif out.is_dir() and any(not p.name.startswith(STUDY_DB) for p in out.iterdir()):
        raise GengenError(f"{str(out)!r} exists and is not a gengen sweep folder; choose a new or empty -o.")


def _write_marker(out: Path, name: str, url: str, pipeline: str) -> None:
    marker = out / MARKER
    if marker.is_file():
        return
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps({"study": name, "storage": redact(url), "pipeline": pipeline}, indent=1) + "\n")


def _load_settings(storage, name: str, pipe: Pipeline, url: str, resume: bool):
    """``(settings, planned)`` of an existing study (waiting briefly for a creator still setting it up),
    or ``None``; one-line errors for a study of another pipeline or one gengen did not make."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        if resume:
            raise GengenError(f"--resume: there is no study {name!r} in {redact(url)}; leave out --resume to start it.") from None
        return None
    start = time.monotonic()
    while True:  # a creator records its settings at once and its plan after queueing every trial
        attrs = storage.get_study_user_attrs(study_id)
        waited = time.monotonic() - start
        if SETTINGS_ATTR not in attrs and waited > 5:
            raise GengenError(f"the study {name!r} in {redact(url)} was not made by 'gengen sweep' (it has no gengen "
                              "settings); choose another --study.")
        if SETTINGS_ATTR in attrs and (PLANNED_ATTR in attrs or resume or waited > 60):
            break
        time.sleep(0.5)
    settings = Settings.from_json(attrs[SETTINGS_ATTR])
    if settings.pipeline != pipe.name:
        raise GengenError(f"the study {name!r} in {redact(url)} is a {settings.pipeline} sweep, not {pipe.name}; "
                          "choose another --study (or -o).")
    if PLANNED_ATTR not in attrs and not resume:
        raise GengenError(f"the study {name!r} was left half set up (its creator stopped early); run again with "
                          "--resume to finish setting it up.")
    return settings, attrs.get(PLANNED_ATTR)


def _same(theirs, ours, what: str, name: str) -> None:
    if theirs == ours:
        return
    if isinstance(theirs, dict) and isinstance(ours, dict):
        diff = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        detail = "; ".join(f"{k}: study {theirs.get(k)!r}, here {ours.get(k)!r}" for k in diff[:4])
    else:
        detail = f"study {theirs!r}, here {ours!r}"
    raise GengenError(f"the study {name!r} was created with other {what} ({detail}); use the same, or another --study.")


def _settle(pipe, existing, chosen, trials, sampler, pruner, seed, heartbeat, name, resume):
    """Settings for a new study, or the existing study's checked against what was asked; plus how many
    trials to add to the queue (a new study's plan, or an extension)."""
    pruner_name = pruner if isinstance(pruner, str) or pruner is None else type(pruner).__name__
    if existing is not None:
        s, planned = existing
        space = _space_from_json(pipe, s.space, s.space_name)
        if chosen is not None and chosen.fingerprint() != space.fingerprint():
            raise GengenError(f"the study {name!r} was created with another search space ({space.describe()}); "
                              "use the same --space, or another --study.")
        for opt, theirs, ours in (("--sampler", s.sampler, sampler), ("--pruner", s.pruner, pruner_name),
                                  ("--seed", s.seed, seed), ("--heartbeat", s.heartbeat, heartbeat)):
            if ours is not None and ours != theirs:
                raise GengenError(f"the study {name!r} was created with {opt} {theirs}, not {ours}; leave the option "
                                  "out to join it, or use another --study.")
        add = 0
        planned = int(planned) if planned is not None else 0
        if trials is not None and trials != planned:
            if not resume:
                raise GengenError(f"the study {name!r} plans {planned} trials; pass --resume to extend it to {trials}, "
                                  "or leave --trials out to join it.")
            if trials < planned:
                raise GengenError(f"--resume: the study {name!r} already plans {planned} trials; --trials can only "
                                  "raise that.")
            add = trials - planned
        if add and s.sampler == "grid" and planned + add > space.grid_size():
            raise GengenError(f"the grid has {space.grid_size():,} points; the study {name!r} cannot plan "
                              f"{planned + add:,}.")
        if planned == 0 and resume and trials is None:  # finishing a half set-up study
            add = space.grid_size() if s.sampler == "grid" else DEFAULT_TPE_TRIALS
        return s, space, add
    space = chosen or resolve_space(pipe.name, None, pipe.params, builtins=pipe.spaces)
    how = sampler or ("grid" if space.is_discrete() else "tpe")
    if how == "grid":
        space.check_grid()  # errors for continuous ranges
        size = space.grid_size()  # counted from the axes: the grid itself is never built
        if trials is None and size > GRID_WITHOUT_TRIALS:
            raise GengenError(f"the grid has {size:,} points; give --trials N to run a seeded random subset of N "
                              f"of them (--trials {size} runs them all), or --sampler tpe / random.")
        n = trials or size
        if n > size:
            raise GengenError(f"--trials {n:,} is more than the {size:,} points of the grid; give at most {size:,} "
                              "(or --sampler tpe / random to sample more).")
    else:
        n = trials or DEFAULT_TPE_TRIALS
    settings = Settings(pipeline=pipe.name, space=space.to_json(), sampler=how, pruner=pruner_name or "median",
                        seed=0 if seed is None else int(seed), heartbeat=float(heartbeat or DEFAULT_HEARTBEAT),
                        objective=pipe.objective, direction=pipe.direction, options={}, space_name=space.name)
    return settings, space, n


def _worker_seed(seed: int) -> int:
    """Sampler seed of a joining worker: distinct per process, so workers do not propose the same points."""
    import zlib

    return int(zlib.crc32(f"{seed}:{worker_name()}:{time.time_ns()}".encode()))


def _create_or_load(storage, name: str, settings: Settings, sampler_seed: int, pruner, existing, warmup_epochs: int):
    import optuna

    kwargs = dict(study_name=name, storage=storage, sampler=_make_sampler(settings.sampler, sampler_seed),
                  pruner=make_pruner(pruner if pruner is not None and not isinstance(pruner, str) else settings.pruner,
                                     warmup_epochs))
    if existing is None:
        try:
            st = optuna.create_study(direction=settings.direction, **kwargs)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago: join it
            return None
        st.set_user_attr(SETTINGS_ATTR, settings.to_json())
        return st
    return optuna.load_study(**kwargs)
