"""Safe outputs: the plan of everything a command writes, checked before any work against its inputs and
the filesystem; atomic files and folders (temp + rename, staged to land together), the umask's modes, and
the CLI command scope. Temporaries and locks are :mod:`gengen.runtime.temps`."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gengen.errors import GengenError
from gengen.runtime.files import (
    _inside,
    read_json,
)
from gengen.runtime.progress import _TERMINATED
from gengen.runtime.temps import (
    _OWN_TEMPS,
    _WRITE_ERRNOS,
    _acquire_lock,
    _key,
    _release_lock,
    clean_stale_temps,
    new_temp,
    output_error,
    remove_temp,
)

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


def side_path(path: str | os.PathLike, ending: str) -> Path:
    """The side file of output ``path`` ending in ``ending``: its name less a compression suffix, then
    exactly one extension (``t.tsv.gz``, ``t.tsv`` -> ``t.hits.bed``; ``t.jaspar.tsv`` -> ``t.jaspar.hits.bed``),
    one rule for every command so a side file's name can be predicted from the output's."""
    path = Path(path)
    name = path.name
    for suffix in COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(Path(name).stem + ending)


_ACTIVE_PLANS: list[OutputPlan] = []
_SCOPES: list[contextlib.ExitStack] = []
_COMMAND_NAMES: list[Callable[[], str | None]] = []  # per open command scope: the name of its command


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
    """The existing paths among ``inputs`` (links included); None, empty and absent ones skipped. Model
    names are the caller's to resolve first (:func:`gengen.store.input_paths`): this module knows files."""
    return [Path(item) for item in inputs
            if item is not None and str(item) != "" and (Path(item).exists() or Path(item).is_symlink())]


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

    def __init__(self, files, models: dict, folders, *, inputs, report=None):
        self.files = [Path(f) for f in files if f is not None]
        self.report = None if report is None else Path(report)
        self.command = _running_command()  # now, inside the command: its outputs may land after it returns
        self.models = {Path(k): v for k, v in models.items() if k is not None}
        for folder, may_replace in self.models.items():
            if not callable(may_replace):  # a library caller of the old form {folder: "vae"}
                raise TypeError(f"plan_outputs(models=...) maps {str(folder)!r} to {may_replace!r}: give the check that "
                                "it may be replaced, gengen.checkpoint.overwrite_check(pipeline)")
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
        for target, may_replace in self.models.items():
            may_replace(target)

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
            _renew_report_manifest(self.report, [target for _, target in staged], self.command)

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


def _renew_report_manifest(folder: Path, written: list[Path], command: str) -> None:
    """A report folder holds one run's files per command: remove those the previous run of the same
    command listed in the folder's manifest and this run did not write again (a reused ``-o`` would
    otherwise keep another model's figures beside this one's tables), then list this run's.

    Only names gengen itself listed are removed, only for the command now running (``vae-features`` and
    ``dna-explain`` into one folder keep each other's results), and only when they are still regular
    files (never a link, a folder or a file the user put there under another name); an unreadable
    manifest removes nothing.
    """
    import json
    import stat

    manifest = folder / REPORT_MANIFEST
    names = sorted({os.path.relpath(os.path.abspath(p), os.path.abspath(folder)) for p in written})
    try:
        runs = read_json(manifest, "output list", follow=False)
    except (FileNotFoundError, GengenError):
        runs = {}
    if isinstance(runs, list):  # the first manifests, a bare list, were only ever written by vae-features
        runs = {"vae-features": runs}
    if not isinstance(runs, dict):
        runs = {}
    previous = runs.get(command)
    for name in previous if isinstance(previous, list) else []:
        if not isinstance(name, str) or name in names or os.path.isabs(name) or ".." in Path(name).parts:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(folder / name).st_mode):
                os.unlink(folder / name)
    runs[command] = names
    tmp = new_temp(manifest)
    try:
        Path(tmp).write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, manifest)
    except OSError:  # the report itself landed; a stale list only means less is tidied next time
        remove_temp(tmp)
    else:
        _OWN_TEMPS.discard(_key(tmp))


def _running_command() -> str:
    """The CLI command running (``dna-explain``: what its :func:`command_scope` was told), or ``library``
    outside one."""
    name = _COMMAND_NAMES[-1]() if _COMMAND_NAMES else None
    return str(name) if name else "library"


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

    ``outputs`` are files (main and side files), ``models`` maps model folders to the check that they
    may be replaced (:func:`gengen.checkpoint.overwrite_check`: only if empty or a model of that
    pipeline), ``folders`` are folders the command fills with files it names later; ``inputs`` are
    every path the command reads (model names resolved by :func:`gengen.store.input_paths`). Each
    output is refused if it is an input (through symlinks and hard links), if a model folder holds an
    input, if it would replace a file inside an input folder, if it cannot be written (a path under a
    file, a folder where a file goes, a read-only folder), or if two outputs are one path.

    Inside a CLI command the plan is entered at once and closed when the command ends (see
    :func:`command_scope`); in library code use ``with plan_outputs(...):``. None entries are skipped.

    Parameters
    ----------
    outputs : files the command writes; staged, they land together when it succeeds.
    inputs : paths the command reads (model names resolved by the caller: :func:`gengen.store.input_paths`);
        never overwritten.
    models : model folder -> the check that it may be replaced (raises GengenError if not; e.g.
        :func:`gengen.checkpoint.overwrite_check`); each save lands at once (checkpoints).
    folders : folders the command fills with files named later (e.g. the demo's).
    report : a folder of ``outputs`` that holds one run's report (``vae-features -o DIR``): when this
        run's files land, the files an earlier gengen run listed there and this one did not write are
        removed, so a reused folder never mixes two runs' results (``.gengen-outputs.json`` lists them).

    Returns
    -------
    The checked :class:`OutputPlan` (raises GengenError on the first problem).
    """
    plan = OutputPlan(outputs, models or {}, folders, inputs=inputs, report=report)
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


@contextlib.contextmanager
def command_scope(name: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Around one CLI command: plans made inside are entered at once and closed at its end, their
    staged outputs committed only if it succeeds; SIGTERM ends it the same clean way as an error, and
    SIGTERM and Ctrl-C are recorded so that one swallowed where it landed still stops the next step.
    ``name`` gives the command's name once it is known (a report folder's file list is kept per
    command, see :func:`plan_outputs`)."""
    import signal
    import threading

    stack = contextlib.ExitStack()
    if not _SCOPES:
        _TERMINATED.clear()
    _SCOPES.append(stack)
    _COMMAND_NAMES.append(name or (lambda: None))
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def _stop(signum, frame):
            _TERMINATED.append(signum)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)

        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _stop)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Python's own: Ctrl-C is recorded
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _stop)  # too (a host's handler is left alone)
    try:
        with stack:
            yield
    finally:
        _SCOPES.remove(stack)
        _COMMAND_NAMES.pop()
        if not _SCOPES:  # the stop it asked for has happened: later library calls in this process run
            _TERMINATED.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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


_GZIP_FHCRC, _GZIP_FEXTRA, _GZIP_FNAME = 0x02, 0x04, 0x08
_GZIP_NAME_MAX = 1 << 16


def _name_gzip_header(tmp: Path, target: Path) -> None:
    """Give a gzip temporary's header the final file's name. Writers (pandas, ``gzip.open``) store the
    name they were handed, the temporary's, and ``gunzip -N`` would restore that hidden name; the header
    gets what gzip itself stores for ``target`` (its name less ``.gz``; none when not Latin-1). The rest
    of the file is copied unchanged, never recompressed."""
    import shutil

    name = target.name[:-3] if target.name.endswith(".gz") else target.name
    try:
        wanted = name.encode("latin-1")
    except UnicodeEncodeError:
        wanted = b""
    with open(tmp, "rb") as fh:
        head = fh.read(10)
        if len(head) < 10 or head[:3] != b"\x1f\x8b\x08" or not head[3] & _GZIP_FNAME or head[3] & _GZIP_FHCRC:
            return  # not gzip, no name stored, or a header checksum this would have to redo
        extra = b""
        if head[3] & _GZIP_FEXTRA:
            size = fh.read(2)
            extra = size + fh.read(int.from_bytes(size, "little"))
        stored = bytearray()
        while (byte := fh.read(1)) != b"\0":
            if not byte or len(stored) > _GZIP_NAME_MAX:
                return  # a truncated or odd header: left as written
            stored += byte
        if bytes(stored) == wanted:
            return
        flags = head[3] | _GZIP_FNAME if wanted else head[3] & ~_GZIP_FNAME
        fixed = new_temp(target)
        try:
            with open(fixed, "wb") as out:
                out.write(head[:3] + bytes([flags]) + head[4:] + extra + (wanted + b"\0" if wanted else b""))
                shutil.copyfileobj(fh, out, 1 << 20)
            os.replace(fixed, tmp)
        finally:
            remove_temp(fixed)  # gone after the replace: only unregisters it


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
            if target.name.lower().endswith(".gz"):
                _name_gzip_header(tmp, target)
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
