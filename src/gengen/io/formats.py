"""Which format an expression file is: inputs by content when the name does not say, outputs by name.

Inputs are recognised by content when the name does not say (:func:`input_format`): UCSC Xena's
``HiSeqV2.gz`` (a gzipped TSV, no ``.tsv``) and GEO's ``*_series_matrix.txt.gz`` read as downloaded;
output names need a known extension (:func:`output_format`). The readers of each format live in
:mod:`gengen.io.tables` (CSV/TSV/whitespace text and Parquet), :mod:`gengen.io.gct` (GCT, GCTX),
:mod:`gengen.io.geo` (GEO series matrices), :mod:`gengen.io.h5ad` and :mod:`gengen.io.archs4`.
"""

from __future__ import annotations

import os
from pathlib import Path

from gengen.errors import GengenError, preview
from gengen.io.files import (
    COMPRESSIONS,
    WHITESPACE,
    check_input,
    encoding_note,
    head_bytes,
    head_lines,
    is_binary,
    sniff_delimiter,
    stored_kind,
)
from gengen.io.gct import GCTX_MATRIX
from gengen.runtime import log

TABLE_FORMATS = {"csv": ",", "tsv": "\t", "txt": "\t", "tab": "\t"}
SERIES_MATRIX = "series-matrix"  # GEO's GSExxx_series_matrix.txt(.gz): '!' header lines, then probes x samples
ARCHS4 = "archs4"  # an ARCHS4 compendium (HDF5: data/expression genes x samples counts; gengen.io.archs4)
FORMATS = ("h5ad", "csv", "tsv", "txt", "parquet", "gct", "gctx", SERIES_MATRIX, ARCHS4)


def _format_from_name(path: str | os.PathLike) -> str | None:
    """The format the file name's extension says (``.gz``/``.bz2``/``.xz`` ignored), or None."""
    suffixes = [s.lower().lstrip(".") for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in ("gz", "bz2", "xz", "zip"):
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext == "pq":
        ext = "parquet"
    return ext if ext in FORMATS else None


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """File format from ``fmt`` or the name's extension (``.gz`` ignored): what output names go by.

    Existing inputs go through :func:`input_format`, which also looks at the content.
    """
    if fmt:
        f = fmt.lower().lstrip(".")
        if f not in FORMATS:
            raise GengenError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        return f
    kind = _format_from_name(path)
    if kind is None:
        ext = Path(path).suffix
        raise GengenError(
            f"cannot tell the format of {str(path)!r} from its extension {ext or '(none)'}; "
            f"use one of .h5ad, .csv, .tsv, .txt, .parquet, .gct, .gctx (inputs may also pass --format)."
        )
    return kind


_FOREIGN = {  # formats people try that gengen does not read, and what to do instead
    "xlsx": "an Excel workbook: save the sheet as CSV or TSV",
    "xls": "an Excel workbook: save the sheet as CSV or TSV",
    "rds": "an R object: write it out with write.csv (or zellkonverter for a SingleCellExperiment)",
    "rda": "an R workspace: write the matrix out with write.csv",
    "rdata": "an R workspace: write the matrix out with write.csv",
    "loom": "a loom file: convert it with scanpy.read_loom(...).write_h5ad(...)",
    "mtx": "a Matrix Market file: read it with scanpy.read_10x_mtx and write h5ad",
}


def input_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format of an existing input file: ``fmt`` when given, else what its content says.

    HDF5 is h5ad or GCTX by its internal layout, Parquet by its magic bytes; text (plain or gzip/bz2/xz,
    recognised by their first bytes, whatever the name) is GCT by its ``#1.2``/``#1.3`` line, a GEO
    series matrix by its ``!`` lines, else a table (``csv``, ``tsv`` or ``txt`` by the name, or by the
    sniffed delimiter: see :func:`table_separator`). So ``HiSeqV2.gz`` and ``PANCAN_clinicalMatrix``
    read as downloaded.

    Parameters
    ----------
    path : an existing input file.
    fmt : a format to force (one of :data:`FORMATS`), as ``--format``.

    Returns
    -------
    One of :data:`FORMATS`.
    """
    if fmt:
        return detect_format(path, fmt)
    p = check_input(path)
    by_name = _format_from_name(p)
    foreign = _FOREIGN.get(Path(p.name.lower().removesuffix(".gz")).suffix.lstrip("."))
    if foreign:
        raise GengenError(f"{str(p)!r} is {foreign}; gengen reads h5ad, CSV/TSV, Parquet, GCT, GCTX or a GEO series matrix.")
    stored = stored_kind(p)
    if stored == "hdf5":
        return _hdf5_layout(p, by_name)
    if stored == "parquet":
        return "parquet"
    head = head_bytes(p, what="input file")
    if stored in COMPRESSIONS:
        inner = "HDF5" if head.startswith(b"\x89HDF") else "Parquet" if head.startswith(b"PAR1") else None
        if inner:
            raise GengenError(
                f"{str(p)!r} is a {stored}-compressed {inner} file, which cannot be read compressed: decompress it "
                f"first (e.g. gunzip; GEO ships .gctx.gz)."
            )
    if is_binary(head):
        raise GengenError(
            f"{str(p)!r} is binary but not HDF5 (h5ad/GCTX), Parquet or compressed text; "
            "give h5ad, CSV/TSV (plain or gzipped), Parquet, GCT, GCTX or a GEO series matrix."
        )
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if first.startswith(("#1.2", "#1.3")):
        return "gct"
    if first.startswith("!") or "!series_matrix_table_begin" in text:
        return SERIES_MATRIX
    if by_name in ("h5ad", "gctx", "parquet"):
        binary = "Parquet" if by_name == "parquet" else "HDF5"
        raise GengenError(f"{str(p)!r} is named .{by_name} but holds text, not an {binary} file; rename it after "
                          "what it holds (.csv, .tsv, .gct) or pass --format.")
    if by_name is not None:
        return by_name
    sep = sniff_delimiter(head_lines(p))
    return {",": "csv", WHITESPACE: "txt"}.get(sep, "tsv")


def _hdf5_layout(path: Path, by_name: str | None) -> str:
    """h5ad or gctx from the groups inside (AnnData: X/obs/var; cmapPy: /0/DATA/0/matrix)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if GCTX_MATRIX in h5:
                return "gctx"
            if h5.attrs.get("encoding-type") == "anndata" or ("obs" in h5 and "var" in h5):
                return "h5ad"
            from gengen.io.archs4 import is_archs4

            if is_archs4(h5):
                return ARCHS4  # its reader names any field that is missing
            groups = list(h5.keys())
    except OSError as exc:
        if by_name in ("h5ad", "gctx"):
            return by_name  # the reader names the damage
        raise GengenError(f"{str(path)!r} is an HDF5 file that cannot be opened ({str(exc).splitlines()[0][:160]}): it is "
                          "truncated or corrupted (a download cut short?); download or copy it again.") from None
    if by_name in ("h5ad", "gctx"):
        return by_name  # its reader says what is missing
    raise GengenError(
        f"{str(path)!r} is an HDF5 file but neither AnnData (h5ad: obs, var, X), GCTX (cmapPy: {GCTX_MATRIX}) nor "
        "ARCHS4 (data/expression, meta/genes, meta/samples); "
        f"top-level groups: {preview(groups) or 'none'}."
    )


def table_separator(path: str | os.PathLike, kind: str | None = None) -> str:
    """The delimiter of a text table: sniffed from its first lines (tab, comma or whitespace, see
    :func:`gengen.io.files.sniff_delimiter`), the name's (``kind``) breaking ties, so a TSV saved as
    .csv still reads (``kind`` defaults to the name's). :data:`~gengen.io.files.WHITESPACE` stands
    for runs of blanks."""
    preferred = TABLE_FORMATS.get(kind or _format_from_name(path) or "")
    return sniff_delimiter(head_lines(path), preferred) or preferred or "\t"


def pandas_sep(sep: str) -> str:
    """A :func:`table_separator` result as pandas' ``sep``."""
    return r"\s+" if sep == WHITESPACE else sep


def output_format(path: str | os.PathLike) -> str:
    """The format an output path will be written in; names gengen cannot write are a clear error
    (checked before any work, so a long run does not end on a bad ``-o``)."""
    try:
        kind = detect_format(path)
    except GengenError:
        raise GengenError(
            f"cannot write {str(path)!r}: unknown output extension; name it .h5ad, .csv, .tsv or .parquet."
        ) from None
    if kind in ("gct", "gctx", ARCHS4):
        raise GengenError(f"writing {kind.upper()} is not supported; name the output .h5ad, .csv, .tsv or .parquet.")
    return kind


_NOTED_ENCODINGS: set[str] = set()


def note_encoding(path: str | os.PathLike, quiet: bool = False, what: str = "input file") -> None:
    """Say once per file that it is read as Windows-1252 / Latin-1 (it is not UTF-8)."""
    key = os.path.realpath(path)
    if key in _NOTED_ENCODINGS or stored_kind(path) in ("hdf5", "parquet"):
        return
    note = encoding_note(path, what)
    if note:
        _NOTED_ENCODINGS.add(key)
        log(note, quiet)


def check_layer(layer: str | None, kind: str, source: str) -> None:
    """``--layer`` picks a layer of an h5ad; on any other format it is a mistake, said before any reading."""
    if layer is not None and kind != "h5ad":
        raise GengenError(f"--layer {layer!r} picks a layer of an h5ad input; {source!r} is {kind}, which has none: "
                          "leave --layer out.")
