"""Reading files that are not ours: regular files only, links refused where asked, JSON bounded in depth,
folders copied regular file by regular file."""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any

from gengen.errors import GengenError

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


def load_json(raw: bytes | str, source: str | os.PathLike, what: str = "file", *, fix: str = "") -> Any:
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
    return load_json(read_regular(path, what, follow=follow, dir_fd=dir_fd), path, what, fix=fix)


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
        temporary of :func:`~gengen.runtime.outputs.atomic_dir`).
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

def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)
