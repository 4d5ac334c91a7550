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
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gengen.errors import GengenError
from gengen.runtime import log
from gengen.sweep.pipelines import Pipeline, get_pipeline
from gengen.sweep.space import SearchSpace, build_space, resolve_space

SETTINGS_ATTR = "gengen.settings"
PLANNED_ATTR = "gengen.planned"
SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("median", "halving", "none")
DEFAULT_HEARTBEAT = 30.0  # seconds between heartbeats; a trial is stale after GRACE_FACTOR of them
GRACE_FACTOR = 3
HEARTBEAT_RANGE = (1.0, 3600.0)  # optuna beats in whole seconds; an hour's beat re-queues a lost trial after 3 h
GRID_WITHOUT_TRIALS = 10_000  # a larger grid needs --trials (a seeded subset, or all of it by asking)
QUEUE_AHEAD = 32  # trials queued ahead of the workers; the rest of the plan is queued as they go
DEFAULT_TPE_TRIALS = 20
MAX_ATTEMPTS = 3  # a configuration whose worker is lost this many times is recorded as failed
STUDY_DB = "study.db"
MARKER = "sweep.json"


def worker_name() -> str:
    """``host:pid``, recorded with every trial this process runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's experimental/deprecation warnings and per-trial INFO logs are noise for gengen users."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*Fixed parameter.*")
        yield


# ------------------------------------------------------------------------------------------ storage


def default_storage(directory: str | os.PathLike) -> str:
    """The SQLite file inside the sweep folder."""
    return f"sqlite:///{(Path(directory) / STUDY_DB).resolve()}"


def redact(url: str) -> str:
    """The URL without its password, for reports and files."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported elsewhere
        return url


BACKENDS = ("postgresql", "sqlite", "mysql")  # the databases optuna's RDBStorage is made for
SQLITE_MAGIC = b"SQLite format 3\x00"
URL_HELP = ("use postgresql://user:password@host:5432/dbname (workers on several machines) or "
            "sqlite:///path/to/study.db (one machine)")


def _parse_url(url: str):
    """The parsed URL of a database gengen can keep a study in, or a one-line error."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
        u.port  # noqa: B018 - a port that is not a number raises here, not at connection time
    except (ArgumentError, ValueError) as exc:
        detail = f" ({str(exc).splitlines()[0][:80]})" if isinstance(exc, ValueError) and str(exc) else ""
        raise GengenError(f"--storage {redact(url)!r} is not a database URL{detail}; {URL_HELP}.") from None
    backend = u.get_backend_name()
    if backend not in BACKENDS:
        raise GengenError(f"--storage {redact(url)!r}: {backend!r} is not a database a sweep can keep its study in; "
                          f"{URL_HELP}.")
    if backend == "sqlite":
        if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
            raise GengenError(f"--storage {url!r} names no file (an in-memory SQLite database would vanish with this "
                              "process, and no other worker could join it); give one: sqlite:///study.db (relative "
                              "to this folder) or sqlite:////absolute/path/study.db.")
        if u.query:
            raise GengenError(f"--storage {url!r}: an SQLite URL takes the study file's path only, not "
                              f"?{'&'.join(u.query)}; e.g. sqlite:///study.db.")
    return u


def sqlite_file(url: str) -> Path | None:
    """The study file of an SQLite URL; ``None`` for a database server."""
    u = _parse_url(url)
    return Path(u.database) if u.get_backend_name() == "sqlite" else None


def check_sqlite_file(path: Path, what: str = "--storage") -> None:
    """Check first, create last: the study file must be an SQLite database, or not exist yet in a folder
    that can be made. Never a link (gengen does not write through links it did not make), a folder,
    a device or pipe, or a file of other data -- an input named by mistake (``sqlite:///in.csv``) is
    refused before anything is created beside it."""
    import stat

    name = str(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a parent is a file: said below
    except OSError as exc:
        raise GengenError(f"{what}: cannot look at the study file {name!r} ({exc.strerror}).") from None
    if st is None:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise GengenError(f"{what}: cannot create the study file {name!r}: {str(parent)!r} is a file, not a "
                              "folder; choose another path.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise GengenError(f"{what}: cannot create the study file {name!r}: the folder {str(parent)!r} is not "
                              "writable; choose another path.")
        return
    if stat.S_ISLNK(st.st_mode):
        raise GengenError(f"{what}: the study file {name!r} is a symbolic link; name the database file itself.")
    if stat.S_ISDIR(st.st_mode):
        raise GengenError(f"{what}: {name!r} is a folder; name the study's database file, e.g. "
                          f"sqlite:///{(path / STUDY_DB).as_posix()}.")
    if not stat.S_ISREG(st.st_mode):
        raise GengenError(f"{what}: {name!r} is not a regular file (a device or a pipe); name the study's database "
                          "file, e.g. sqlite:///study.db.")
    if st.st_size:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            raise GengenError(f"{what}: {name!r} is not an SQLite database (it holds other data: an input file?); "
                              "name a new file for the study, e.g. sqlite:///study.db.")


def _requeue(study, trial) -> None:
    """Heartbeat-stale trial (already marked failed): queue a copy with the same parameters."""
    import optuna

    attempt = int(trial.user_attrs.get("attempt", 1)) + 1
    keep = {k: v for k, v in trial.user_attrs.items() if k in ("slot", "grid_index")}
    attrs = {**keep, "retry_of": trial.number, "attempt": attempt}
    if attempt > MAX_ATTEMPTS:  # the configuration keeps killing its worker (out of memory?): stop trying
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, params=trial.params, distributions=trial.distributions,
            user_attrs={**attrs, "error": f"its worker was lost {MAX_ATTEMPTS} times (killed, out of memory?); "
                                          "not retried again"}))
        return
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=attrs, system_attrs={"fixed_params": dict(trial.params)}))


def _tune_sqlite(engine) -> None:
    """Make every transaction ``BEGIN IMMEDIATE`` (optuna's read-then-write steps become atomic across
    processes), with WAL journaling (commits without an fsync each: per-epoch reports stay cheap)
    and a 2-minute busy timeout."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # pysqlite must not issue its own BEGIN
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA busy_timeout = 120000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners existed


def open_storage(url: str, heartbeat: float | None = None):
    """An optuna ``RDBStorage`` for ``url`` (heartbeats on when ``heartbeat`` is given).

    Connection problems become one line naming the host and port; nothing is created on failure.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    u = _parse_url(url)
    backend = u.get_backend_name()
    kwargs: dict[str, Any] = {"engine_kwargs": _engine_kwargs(u)}
    if heartbeat is not None:
        kwargs.update(_heartbeat_kwargs(heartbeat))
    try:
        with _quiet_optuna():
            storage = optuna.storages.RDBStorage(_engine_url(u), **kwargs)
    except ImportError:
        raise _driver_error(u) from None
    except (SQLAlchemyError, OSError) as exc:
        raise _connection_error(u, exc) from None
    if backend == "sqlite":
        _tune_sqlite(storage.engine)
    return storage


def _engine_url(u) -> str:
    """A bare ``postgresql://`` gets the driver that is installed."""
    if u.get_backend_name() == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername=f"postgresql+{_postgres_driver()}")
    return u.render_as_string(hide_password=False)


def _engine_kwargs(u) -> dict:
    if u.get_backend_name() == "postgresql":  # fail fast on an unreachable server; survive server restarts
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if u.get_backend_name() == "sqlite":  # its folder is made by run_sweep, after every check
        return {"connect_args": {"timeout": 120}}
    return {}


def _driver_error(u) -> GengenError:
    backend = u.get_backend_name()
    pkg = {"postgresql": "'gengen[postgres]' (psycopg2-binary)", "mysql": "pymysql"}.get(backend, f"a driver for {backend}")
    return GengenError(f"cannot open {u.render_as_string(hide_password=True)}: its database driver is not installed "
                       f"(pip install {pkg}).")


def _connection_error(u, exc: Exception) -> GengenError:
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if u.get_backend_name() == "sqlite":
        return GengenError(f"cannot open the SQLite study file {u.database!r}: {first}.")
    return GengenError(f"cannot reach the database at {_where(u)} ({first}); check --storage and that the server "
                       "runs and accepts connections from this machine.")


def _heartbeat_kwargs(heartbeat: float) -> dict:
    """RDBStorage's heartbeat arguments: beat interval, stale after GRACE_FACTOR beats, re-queue then."""
    import inspect

    import optuna

    beat = max(1, int(math.ceil(heartbeat)))
    # optuna 4.9+ calls the callback heartbeat_stale_trial_callback; before: failed_trial_callback
    names = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    cb = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names else "failed_trial_callback"
    return {"heartbeat_interval": beat, "grace_period": GRACE_FACTOR * beat, cb: _requeue}


def enable_heartbeat(storage, heartbeat: float):
    """Turn heartbeats on for an open RDBStorage (they are plain settings of the storage object: this
    saves a second connection and schema check); a storage without those settings is reopened."""
    kw = _heartbeat_kwargs(heartbeat)
    if all(hasattr(storage, k) for k in kw):
        for k, v in kw.items():
            setattr(storage, k, v)
        if hasattr(storage, "failed_trial_callback"):  # optuna 4.9+ keeps both names in step
            storage.failed_trial_callback = _requeue
        return storage
    return None


def _postgres_driver() -> str:
    """psycopg2 when it is installed (gengen depends on psycopg2-binary), else psycopg 3 (SQLAlchemy
    2.1's own default for a bare ``postgresql://``)."""
    import importlib.util

    return "psycopg2" if importlib.util.find_spec("psycopg2") else "psycopg"


def _where(u) -> str:
    if u.get_backend_name() == "sqlite":
        return str(u.database)
    default_port = {"postgresql": 5432, "mysql": 3306}.get(u.get_backend_name(), "?")
    return f"{u.host or 'localhost'}:{u.port or default_port}"


SETUP_LOCK_KEY = 0x67656E67656E  # "gengen": PostgreSQL advisory lock taken while a worker sets a study up


@contextlib.contextmanager
def _setup_lock(url: str) -> Iterator[None]:
    """Serialise schema creation and study set-up between workers: a file lock beside an SQLite file,
    a PostgreSQL advisory lock on the server (any machine); other databases go unlocked (a creation
    race there is reported as an error and the command can simply be run again)."""
    u = _parse_url(url)
    backend = u.get_backend_name()
    if backend == "postgresql":
        import sqlalchemy
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        try:
            engine = sqlalchemy.create_engine(_engine_url(u), poolclass=NullPool, **_engine_kwargs(u))
            conn = engine.connect()
        except ImportError:
            raise _driver_error(u) from None
        except (SQLAlchemyError, OSError) as exc:
            raise _connection_error(u, exc) from None
        try:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({SETUP_LOCK_KEY})")
            conn.commit()
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({SETUP_LOCK_KEY})")
                conn.commit()
            conn.close()
            engine.dispose()
        return
    if backend != "sqlite":
        yield
        return
    with folder_lock(Path(u.database).parent):
        yield


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on a folder itself (``flock`` of the folder's descriptor): it creates
    no file, so there is nothing to leave behind, nothing a planted link can redirect, and nothing to
    clean up after a refused or killed run. Where the system cannot lock a folder (Windows; a network
    file system that emulates flock) this runs unlocked: a creation race there is reported as an error
    and the command can simply be run again."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ settings


@dataclass
class Settings:
    """What identifies a study: every worker must run the same pipeline, space and data on it."""

    pipeline: str
    space: dict
    sampler: str
    pruner: str
    seed: int
    heartbeat: float
    objective: str
    direction: str
    options: dict
    data: dict | None = None
    space_name: str = "custom"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)  # insertion order kept: the space's order is its grid's order

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))


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


# ------------------------------------------------------------------------------------------ the sweep


@dataclass
class SweepResult:
    """What a worker leaves: the study's trials table, the best trial and where outputs were written."""

    study_name: str
    storage: str
    table: Any  # pandas DataFrame, one row per trial
    best: dict | None
    outputs: dict[str, Path]
    ran: int  # trials this worker finished
    complete: bool  # nothing waiting or running any more
    notes: list[str] = field(default_factory=list)


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
            from gengen.sweep.report import write_outputs

            return write_outputs(st, pipe, the_space, settings, out, url=url, worker=worker, ran=ran,
                                 register=register, quiet=quiet, optuna=optuna,
                                 retrain=lambda t, p: retrain_trial(pipe, loaded, the_space, settings, t, p, device))
    except Exception as exc:
        if not _database_lost(exc) or os.environ.get("GENGEN_DEBUG"):
            raise
        raise _lost_error(url, exc, trial_lost, settings) from None


@contextlib.contextmanager
def _folders_made_for(db_file: Path | None) -> Iterator[None]:
    """Make the study file's folder (and its missing parents) now, at the last moment, and remove the
    ones made here if setting the study up fails: a refused sweep leaves no folder behind."""
    if db_file is None:
        yield
        return
    made = []
    folder = db_file.parent.absolute()
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    for f in reversed(made):
        try:
            f.mkdir()
        except FileExistsError:  # another worker, a moment ago
            made.remove(f)
        except OSError as exc:
            _remove_folders(made)
            raise GengenError(f"cannot create the folder {str(f)!r} for the study file: {exc.strerror}.") from None
    try:
        yield
    except BaseException:
        _remove_folders(made)
        raise


def _remove_folders(made: list[Path]) -> None:
    for f in made:  # deepest first; only if still empty (another worker may be using it)
        with contextlib.suppress(OSError):
            f.rmdir()


@contextlib.contextmanager
def _file_made_for(db_file: Path | None) -> Iterator[list]:
    """Within the set-up lock: when the study file does not exist yet, remove it (and SQLite's -wal,
    -shm and -journal files) if setting the study up fails. The caller adds the storages it opens on
    it to the list, so their connections are closed first."""
    opened: list = []
    new = db_file is not None and not db_file.exists()
    try:
        yield opened
    except BaseException:
        if new:
            for storage in opened:
                with contextlib.suppress(Exception):
                    storage.scoped_session.remove()
                    storage.engine.dispose()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{db_file}{suffix}")
        raise


class _DatabaseLost(Exception):
    """The study's database stopped answering while a trial ran (raised with the database error as cause)."""

    def __init__(self, trial: int, cause: BaseException):
        super().__init__(str(cause))
        self.trial, self.cause = trial, cause


def _database_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the database went away (server stopped, network lost, file gone) rather
    than a bug: SQLAlchemy's operational / interface errors, also as the cause of optuna's
    StorageInternalError."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, _DatabaseLost):
        return True
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (OperationalError, InterfaceError)) or (isinstance(exc, DBAPIError)
                                                                    and exc.connection_invalidated):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _lost_error(url: str, exc: BaseException, trial_lost: list[int], settings: Settings | None) -> GengenError:
    """The one line for a database that went away mid-sweep: what happened, and how to go on."""
    cause = exc.cause if isinstance(exc, _DatabaseLost) else exc
    while getattr(cause, "orig", None) is None and cause.__cause__ is not None:
        cause = cause.__cause__
    detail = (str(getattr(cause, "orig", None) or cause).strip().splitlines() or [type(cause).__name__])[0][:160]
    u = _parse_url(url)
    what = (f"the study file {_where(u)!r} failed" if u.get_backend_name() == "sqlite"
            else f"the database server at {_where(u)} went away")
    beats = f" after {GRACE_FACTOR} missed heartbeats ({GRACE_FACTOR * settings.heartbeat:g} s)" if settings else ""
    during = (f" during trial {trial_lost[0]}; that trial is failed and queued again{beats} when the study runs next"
              if trial_lost else "")
    return GengenError(f"{what} ({detail}){during}. Finished trials are safe in the database: once it is back, run "
                       "the same command again to resume the study.")


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
        info = read_json(marker, f"the sweep folder's {MARKER}")
        info = info if isinstance(info, dict) else {}
        if info.get("study") != name or info.get("storage") != redact(url):
            raise GengenError(
                f"{str(out)!r} holds the sweep {info.get('study')!r} in {info.get('storage')}, not {name!r} in "
                f"{redact(url)}; choose another -o."
            )
    elif out.is_dir() and any(not p.name.startswith(STUDY_DB) for p in out.iterdir()):
        raise GengenError(f"{str(out)!r} exists and is not a gengen sweep folder; choose a new or empty -o.")


def read_json(path: Path, what: str) -> Any:
    """A JSON file gengen wrote (sweep.json, summary.json), parsed by the one safe loader
    (:func:`gengen.runtime.read_json`: regular files only, bounded nesting); every problem is one line.
    The one place the sweep parses JSON files."""
    from gengen.runtime import read_json as read_regular_json

    return read_regular_json(path, what, fix="choose another -o (or remove the file if the folder is yours)")


def _write_marker(out: Path, name: str, url: str, pipeline: str) -> None:
    from gengen.runtime import atomic_path

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


def _extend_plan(st, space: SearchSpace, settings: Settings, add: int) -> None:
    """Plan ``add`` more trials and queue the first of them (under the set-up lock). Only
    :data:`QUEUE_AHEAD` trials wait in the queue at a time: workers queue more as they take them
    (:func:`_top_up`), so a plan of 10^9 trials or a grid of 10^10 points costs nothing up front."""
    st.set_user_attr(PLANNED_ATTR, int(st.user_attrs.get(PLANNED_ATTR, 0)) + add)
    _top_up(st, space, settings)


def _top_up(st, space: SearchSpace, settings: Settings) -> int:
    """Queue planned trials until :data:`QUEUE_AHEAD` are waiting (call under the set-up lock, so two
    workers never queue the same one); returns how many were queued. Grid sampling queues grid points
    of the plan (:func:`_grid_plan`) never queued before, TPE / random sampling empty slots the sampler
    fills when a worker takes one."""
    from optuna.trial import TrialState

    planned = int(st.user_attrs.get(PLANNED_ATTR, 0))
    have = st.get_trials(deepcopy=False)
    room = QUEUE_AHEAD - sum(t.state == TrialState.WAITING for t in have)
    key = "grid_index" if settings.sampler == "grid" else "slot"
    used = {t.user_attrs[key] for t in have if key in t.user_attrs}  # a re-queued copy keeps its original's
    room = min(room, planned - len(used))
    if room <= 0:
        return 0
    if settings.sampler == "grid":
        fresh = (i for i in _grid_plan(space.grid_size(), planned, settings.seed) if i not in used)
        for i in itertools.islice(fresh, room):
            st.enqueue_trial(space.point(i), user_attrs={"grid_index": i})
    else:
        for i in range(len(used), len(used) + room):
            st.enqueue_trial({}, user_attrs={"slot": i})
    return room


def _remaining(st, settings: Settings) -> bool:
    """Whether some planned trial has not been queued yet."""
    key = "grid_index" if settings.sampler == "grid" else "slot"
    used = {t.user_attrs[key] for t in st.get_trials(deepcopy=False) if key in t.user_attrs}
    return len(used) < int(st.user_attrs.get(PLANNED_ATTR, 0))


PERMUTE_IN_MEMORY = 1_000_000  # grids up to this size draw their subset with numpy (as studies always have)


def _grid_plan(size: int, planned: int, seed: int) -> Iterator[int]:
    """The grid indices a plan of ``planned`` trials runs, in order: the whole grid in order when the
    plan covers it; otherwise a seeded random subset, in grid order, the same every time (so an
    extended plan contains the earlier one). Grids over :data:`PERMUTE_IN_MEMORY` points take the
    subset from a seeded permutation computed one index at a time (:func:`_permuted`), in its order:
    nothing the size of the grid or of the plan is ever built."""
    if planned >= size:
        yield from range(size)
    elif size <= PERMUTE_IN_MEMORY:
        yield from sorted(int(i) for i in np.random.default_rng(seed).permutation(size)[:planned])
    else:
        for i in range(planned):
            yield _permuted(i, size, seed)


def _permuted(i: int, n: int, seed: int) -> int:
    """The ``i``-th element of a seeded pseudo-random permutation of ``range(n)`` in O(1) memory: a
    four-round Feistel network on the smallest even number of bits covering ``n``, walking the cycle
    until it lands below ``n`` (a bijection on range(n); about two steps on average)."""
    import hashlib

    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    x = i
    while True:
        left, right = x >> half, x & mask
        for r in range(4):
            h = hashlib.blake2b(f"{seed}:{r}:{right}".encode(), digest_size=64).digest()
            left, right = right, left ^ (int.from_bytes(h, "big") & mask)
        x = (left << half) | right
        if x < n:
            return x


# ------------------------------------------------------------------------------------------ the worker loop


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


def retrain_trial(pipe: Pipeline, data, space: SearchSpace, settings: Settings, trial, path: Path,
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
