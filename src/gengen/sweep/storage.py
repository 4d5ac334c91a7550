"""Where a study lives: database URLs, opening optuna's ``RDBStorage`` (SQLite tuned for several
processes, PostgreSQL across machines), heartbeat settings and the re-queueing of a lost worker's
trial, the set-up lock, the study file made last and removed on refusal, and telling a database that
went away from a bug."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gengen.errors import GengenError
from gengen.sweep.settings import GRACE_FACTOR, MAX_ATTEMPTS, STUDY_DB, Settings


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
