"""Input files recognised by what they hold, not by what they are called.

Downloads keep their publishers' names: UCSC Xena's ``HiSeqV2.gz`` is a gzipped TSV without ``.tsv``,
its ``PANCAN_clinicalMatrix`` has no extension at all, GEO's ``*_series_matrix.txt.gz`` is a gzipped
table under ``!`` header lines. So every reader asks this module: compression (gzip, bz2, xz) and the
binary kinds (HDF5, Parquet) come from the first bytes, a text table's delimiter from sniffing its
first lines; the name only breaks ties. Output names are another matter: they need a known extension
(see :func:`gengen.io.formats.output_format`), since there is no content to look at.

Every byte read through :func:`open_bytes` / :func:`open_text` is guarded: a truncated or corrupted
compressed file raises a one-line :class:`~gengen.errors.GengenError` naming the file wherever the
read happens (inside Biopython, pandas or pyarrow too), instead of an ``EOFError`` from deep inside,
which the command line would otherwise turn into a bare "aborted".
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import lzma
import os
import zlib
from pathlib import Path

from gengen.errors import GengenError
from gengen.runtime import open_regular

COMPRESSIONS = ("gzip", "bz2", "xz")
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PAR1", "parquet"),
)
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_DAMAGE = (EOFError, zlib.error, lzma.LZMAError, OSError)  # gzip.BadGzipFile and bz2's errors are OSErrors
WHITESPACE = " "  # the delimiter sniff_delimiter returns for runs of spaces/tabs (pandas: sep=r"\s+")
LEGACY_ENCODING = "cp1252"  # what text that is not UTF-8 is read as: Windows-1252, Latin-1's superset
_LEGACY_SAMPLE = 1 << 20  # bytes looked at to tell UTF-8 from Windows-1252


def _latin1_fallback(exc: UnicodeError):
    """Bytes Windows-1252 leaves undefined (0x81, 0x8D, ...) read as Latin-1."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[exc.start : exc.end].decode("latin-1"), exc.end
    raise exc


def _legacy_fallback(exc: UnicodeError):
    """A byte that is not UTF-8 inside otherwise UTF-8 text read as Windows-1252 (then Latin-1), not as
    U+FFFD: 'Müller' written by a Latin-1 editor stays 'Müller', not 'M\ufffdller'."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[exc.start : exc.end].decode(LEGACY_ENCODING, errors="gengen-latin1"), exc.end
    raise exc


codecs.register_error("gengen-latin1", _latin1_fallback)
codecs.register_error("gengen-legacy", _legacy_fallback)


def check_input(path: str | os.PathLike, what: str = "input file") -> Path:
    """An existing, non-empty regular file, or a one-line GengenError saying which of these it is not
    (a named pipe or a device is refused: reading one would block or never end)."""
    p = Path(path)
    if not p.exists():
        raise GengenError(f"{what} {str(p)!r} does not exist.")
    if p.is_dir():
        raise GengenError(f"{what} {str(p)!r} is a directory, not a file.")
    with _open_input(p, what) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise GengenError(f"{what} {str(p)!r} is empty.")
    return p


def _open_input(path: str | os.PathLike, what: str):
    """The file as a binary stream if it is a regular file (a link the user made to one is fine)."""
    try:
        return os.fdopen(open_regular(path, what), "rb")
    except FileNotFoundError:
        raise GengenError(f"{what} {str(path)!r} does not exist.") from None


def stored_kind(path: str | os.PathLike, what: str = "input file") -> str:
    """What the first bytes of the file say, as stored: ``gzip``, ``bz2``, ``xz``, ``zip``, ``hdf5``,
    ``parquet``, ``empty`` or ``other`` (text, or binary that is none of these); anything but a regular
    file is a one-line error."""
    with _open_input(path, what) as fh:
        head = fh.read(8)
    if not head:
        return "empty"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "other")


def damaged(path, kind: str, exc: BaseException, *, what: str = "input file") -> GengenError:
    """The one message for a file whose compressed stream breaks off or does not decode."""
    detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return GengenError(
        f"{what} {str(path)!r} is truncated or corrupted: its {kind} stream does not decode to the end ({detail}); "
        "download or copy it again (`gzip -t FILE` checks a .gz)."
    )


class _Guarded(io.RawIOBase):
    """A decompressing stream whose read errors become :func:`damaged` GengenErrors."""

    def __init__(self, raw, path, what: str, kind: str, source=None):
        super().__init__()
        self._raw, self._path, self._what, self._kind, self._source = raw, path, what, kind, source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self._raw.readinto(buffer)
        except _DAMAGE as exc:
            raise damaged(self._path, self._kind, exc, what=self._what) from None

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            if self._source is not None:  # the decompressors leave a file object they were given open
                self._source.close()
        super().close()


def _decompressed(path: str | os.PathLike, what: str) -> io.BufferedReader:
    """The file's bytes, decompressed when its first bytes say gzip, bz2 or xz; not yet re-encoded.
    Regular files only (:func:`_open_input`): a pipe or a device is a one-line error, not a hang."""
    kind = stored_kind(path, what)
    if kind == "zip":
        raise GengenError(f"{what} {str(path)!r} is a zip archive; unzip it and give the file inside.")
    source = _open_input(path, what)
    if kind not in COMPRESSIONS:
        return source
    return io.BufferedReader(_Guarded(_OPENERS[kind](source, "rb"), path, what, kind, source), buffer_size=1 << 20)


def open_bytes(path: str | os.PathLike, what: str = "input file") -> io.BufferedReader:
    """The file's content as a binary stream of UTF-8 text (when it is text), decompressed when its first
    bytes say gzip, bz2 or xz (whatever its name); a zip archive is a clear error, read errors are
    :func:`damaged`. UTF-16/32 (by their byte-order mark) and text that is not UTF-8 (Windows-1252 /
    Latin-1, see :func:`legacy_encoding`) are re-encoded as UTF-8.

    Parameters
    ----------
    path : the file.
    what : how messages name it ("FASTA file", "gene map", ...).

    Returns
    -------
    A readable binary stream (use it as a context manager).
    """
    stream = _decompressed(path, what)
    head = stream.peek(4)[:4]
    if head.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Excel's "CSV UTF-8"): not content
        stream.read(3)
        return stream
    encoding = _wide_encoding(head)
    if encoding is None and legacy_encoding(path, what) is not None:
        encoding = LEGACY_ENCODING
    if encoding is None:
        return stream
    return io.BufferedReader(_Utf8Recoder(stream, encoding, path, what), buffer_size=1 << 20)


_LEGACY_SEEN: dict[tuple, str | None] = {}


def legacy_encoding(path: str | os.PathLike, what: str = "input file") -> str | None:
    """:data:`LEGACY_ENCODING` when the file holds text that is not UTF-8 (judged on its first MiB,
    decompressed), else None (UTF-8, UTF-16/32 with a byte-order mark, or binary).

    Spreadsheets and older tools on Windows save Latin-1 / Windows-1252: read as UTF-8, a gene named
    'Müller' would become 'M\ufffdller' and match nothing. Remembered per file (path, inode, size, mtime).
    """
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _LEGACY_SEEN:
        with _decompressed(path, what) as fh:
            head = fh.read(_LEGACY_SAMPLE)
        verdict = None
        if not (is_binary(head) or _wide_encoding(head[:4]) or head.startswith(b"\xef\xbb\xbf")):
            try:
                codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _LEGACY_SAMPLE)
            except UnicodeDecodeError:
                verdict = LEGACY_ENCODING
        _LEGACY_SEEN[key] = verdict
    return _LEGACY_SEEN[key]


def encoding_note(path: str | os.PathLike, what: str = "input file") -> str | None:
    """The note to print when :func:`legacy_encoding` applies (with a name from the file as it now
    reads), else None."""
    if legacy_encoding(path, what) is None:
        return None
    with _decompressed(path, what) as fh:
        text = fh.read(_LEGACY_SAMPLE).decode(LEGACY_ENCODING, errors="gengen-latin1")
    word = next((w for w in text.replace(",", " ").replace(";", " ").split() if not w.isascii()), "")
    example = f" (e.g. {word.strip(chr(34))[:40]!r})" if word else ""
    return (f"note: {what} {str(path)!r} is not UTF-8 text: read as Windows-1252 / Latin-1{example}; "
            "save it as UTF-8 to silence this note.")


def wide_text(path: str | os.PathLike) -> bool:
    """Whether the file's decompressed content needs re-encoding to be UTF-8 text (UTF-16/32 by their
    byte-order mark, or Windows-1252): a reader that decompresses by itself instead of through
    :func:`open_bytes` would get it undecoded."""
    kind = stored_kind(path)
    try:
        with _open_input(path, "input file") as source:
            with (_OPENERS[kind](source, "rb") if kind in COMPRESSIONS else contextlib.nullcontext(source)) as fh:
                if _wide_encoding(fh.read(4)) is not None:
                    return True
        return legacy_encoding(path) is not None
    except (*_DAMAGE, GengenError):  # the reader that follows names the damage
        return False


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 by their byte-order mark (Excel's "Unicode text" export writes UTF-16 LE with one)."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return None


class _Utf8Recoder(io.RawIOBase):
    """A UTF-16/32 text stream re-encoded as UTF-8 bytes, so every reader sees the usual text."""

    def __init__(self, raw, encoding: str, path, what: str):
        super().__init__()
        errors = "gengen-latin1" if encoding == LEGACY_ENCODING else "strict"
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
        self._pending = b""
        self._path, self._what, self._encoding = path, what, encoding

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                chunk = self._text.read(1 << 16)
            except UnicodeDecodeError as exc:
                raise GengenError(f"{self._what} {str(self._path)!r} starts as {self._encoding.upper()} text but does "
                                  f"not decode as such ({exc.reason}); save it as UTF-8 text.") from None
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._text.close()
        super().close()


def open_text(path: str | os.PathLike, what: str = "input file") -> io.TextIOWrapper:
    """:func:`open_bytes` as text: UTF-8, and a stray byte that is not UTF-8 (past the part
    :func:`legacy_encoding` looks at) read as Windows-1252, so a Latin-1 name keeps its letters."""
    return io.TextIOWrapper(open_bytes(path, what), encoding="utf-8", errors="gengen-legacy")


def read_bytes(path: str | os.PathLike, what: str = "input file") -> bytes:
    """The whole decompressed content (small files: motifs, gene lists)."""
    with open_bytes(path, what) as fh:
        return fh.read()


def head_bytes(path: str | os.PathLike, size: int = 1 << 16, what: str = "input file") -> bytes:
    """Up to ``size`` decompressed bytes from the start, for sniffing."""
    with open_bytes(path, what) as fh:
        return fh.read(size)


def is_binary(head: bytes) -> bool:
    """Text files hold no NUL bytes; everything gengen reads as text is refused early when they do."""
    return b"\x00" in head


def head_lines(path: str | os.PathLike, n: int = 30, *, what: str = "input file", skip: tuple[str, ...] = (),
               max_chars: int = 64 << 20) -> list[str]:
    """The first ``n`` non-empty lines (after lines starting with any of ``skip``), newline-stripped.

    Whole lines however wide (a 10,000-sample header is ~200 kB), up to ``max_chars`` in all.
    """
    out: list[str] = []
    read = 0
    with open_text(path, what) as fh:
        for line in fh:
            read += len(line)
            if line.strip() and not (skip and line.lstrip().startswith(skip)):
                out.append(line.rstrip("\n\r"))
            if len(out) >= n or read > max_chars:
                break
    return out


def split_fields(line: str, delimiter: str) -> list[str]:
    """One line's fields: quotes respected for commas and tabs, runs of blanks for :data:`WHITESPACE`."""
    if delimiter == WHITESPACE:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter), [])


def sniff_delimiter(lines: list[str], preferred: str | None = None) -> str | None:
    """The delimiter that splits ``lines`` (header first) into a table: tab, comma or whitespace.

    A candidate fits when every line after the first has the same number (> 1) of fields and the
    header has that many or one fewer (R's ``write.table`` leaves the row-name column unnamed). The
    ``preferred`` one (from the file name) is tried first, then tab, comma, whitespace; ``None`` when
    none fits (one column, or ragged lines).

    Parameters
    ----------
    lines : the first lines of the file, header first (see :func:`head_lines`).
    preferred : the delimiter the name suggests, if any.

    Returns
    -------
    ``"\t"``, ``","``, :data:`WHITESPACE` or ``None``.
    """
    candidates = [d for d in (preferred, "\t", ",", WHITESPACE) if d is not None]
    body = lines[1:] or lines
    for delimiter in dict.fromkeys(candidates):
        counts = {len(split_fields(ln, delimiter)) for ln in body}
        if len(counts) != 1:
            continue
        width = counts.pop()
        if width > 1 and len(split_fields(lines[0], delimiter)) in (width, width - 1):
            return delimiter
    return None
