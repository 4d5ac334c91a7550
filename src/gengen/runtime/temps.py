"""Temporary files and write locks: hidden pid-tagged temporaries (stale ones of dead runs removed) and
the advisory ``.NAME.gengen-lock`` files, created without following links, never truncated unless ours."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from gengen.errors import GengenError
from gengen.runtime.files import (
    _O_CLOEXEC,
    _O_NOFOLLOW,
    _link_text,
    file_kind,
    open_regular,
    stat_is_link,
)

try:
    import fcntl
except ImportError:  # not on Windows: writes go unlocked there
    fcntl = None

TEMP_TAG = "gengen-tmp"
LOCK_SUFFIX = ".gengen-lock"
FOREIGN_TEMP_MAX_AGE = 24 * 3600.0
_TEMP_RE = re.compile(rf"^\.(?P<name>.+)\.{TEMP_TAG}-(?P<pid>\d+)-(?P<host>[0-9a-f]{{6}})-[0-9a-f]{{8}}(\.[^.]*)?$")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_OWN_TEMPS: set[str] = set()
_HELD_LOCKS: dict[str, list] = {}  # lock file -> [fd or None, depth]
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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this machine still runs: not gone and not a zombie waiting to be reaped
    (right after a SIGKILL it is one); another user's process counts as alive, a pid <= 0 too."""
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
            stale = pid == me or not pid_alive(pid)  # our own live temps are in _OWN_TEMPS
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
