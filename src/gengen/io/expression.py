"""Expression matrices in and out: h5ad, CSV/TSV, Parquet, GCT, GCTX and GEO series matrices, always
as samples x genes AnnData.

Inputs are recognised by content when the name does not say (:func:`input_format`): UCSC Xena's
``HiSeqV2.gz`` (a gzipped TSV, no ``.tsv``) and GEO's ``*_series_matrix.txt.gz`` read as downloaded;
output names need a known extension (:func:`output_format`). Gene names are the join key between data
and models, so reading validates them (unique, present) and the numbers (numeric, finite) up front,
with messages that say how to fix the file.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.files import (
    COMPRESSIONS,
    WHITESPACE,
    check_input,
    damaged,
    encoding_note,
    head_bytes,
    head_lines,
    is_binary,
    open_bytes,
    open_text,
    sniff_delimiter,
    split_fields,
    stored_kind,
    wide_text,
)
from gengen.runtime import atomic_path, log

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

TABLE_FORMATS = {"csv": ",", "tsv": "\t", "txt": "\t", "tab": "\t"}
SERIES_MATRIX = "series-matrix"  # GEO's GSExxx_series_matrix.txt(.gz): '!' header lines, then probes x samples
ARCHS4 = "archs4"  # an ARCHS4 compendium (HDF5: data/expression genes x samples counts; gengen.io.archs4)
FORMATS = ("h5ad", "csv", "tsv", "txt", "parquet", "gct", "gctx", SERIES_MATRIX, ARCHS4)
GCTX_MATRIX = "/0/DATA/0/matrix"  # cmapPy layout: HDF5 row = one sample (column of the GCT)
GCTX_ROW_META = "/0/META/ROW"  # genes: "id" plus optional annotations (pr_gene_symbol, ...)
GCTX_COL_META = "/0/META/COL"  # samples: "id" plus optional annotations

_GENE_PATTERNS = [
    re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$"),  # Ensembl gene ids
    re.compile(r"^\d+(_[a-z])?(_[a-z])?_at$|^AFFX-"),  # Affymetrix probe ids
    re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)?(orf\d+)?$"),  # HGNC-like symbols
    re.compile(r"^[A-Z][a-z][a-z0-9]*\d*(-[a-z0-9]+)?$"),  # mouse-like symbols (Gata4, Cebpa)
]
_SAMPLE_PATTERNS = [
    re.compile(r"^TCGA-"),
    re.compile(r"^(GSM|SRR|SRX|ERR|DRR|SAMN|GTEX-)\w*"),
    re.compile(r".*[:/].*"),
    re.compile(r"^(sample|cell|s|patient|case)[_\-\.]?\d+", re.IGNORECASE),
    re.compile(r".*\.(CEL|cel)$"),
]


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


_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*[GTPE]\d{6,})\.\d+$")


def gene_key(name) -> str:
    """A gene id without its Ensembl version (``ENSG00000141510.16`` -> ``ENSG00000141510``): releases
    bump versions, so a model and a new data set often differ only there."""
    name = str(name)
    m = _ENSEMBL_VERSION.match(name)
    return m.group(1) if m else name


def match_by_key(wanted, names) -> dict[str, int]:
    """Positions in ``names`` of the ``wanted`` genes matched by :func:`gene_key` (unique keys only)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        k = gene_key(n)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
    return {g: first[gene_key(g)] for g in wanted if counts.get(gene_key(g)) == 1}


def mismatch_hint(wanted, names) -> str:
    """Why none of ``wanted`` matched ``names``, when the reason is visible: case only."""
    lower = {str(n).lower() for n in names}
    matched = [str(g) for g in wanted if str(g).lower() in lower]
    hits = len(matched)
    if hits >= max(1, len(wanted) // 10):
        return (f" {hits} of them match when case is ignored (e.g. {preview(matched, 2)}): another species' "
                "naming, or symbols changed in case? Rename the genes to the model's spelling.")
    return ""


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


def _gene_likeness(names) -> float:
    """Fraction of names that look like gene/probe ids minus the fraction that look like sample ids."""
    names = [str(n) for n in list(names)[:500]]
    if not names:
        return 0.0
    gene = sum(any(p.match(n) for p in _GENE_PATTERNS) for n in names)
    sample = sum(any(p.match(n) for p in _SAMPLE_PATTERNS) for n in names)
    return (gene - sample) / len(names)


def genes_are_rows(row_names, col_names, *, genes_in_rows: bool | None = None, expected_genes=None,
                   source: str = "data", quiet: bool = False) -> bool:
    """Whether a table holds genes in its rows: as forced, else where ``expected_genes`` (a model's)
    are found, else where the names look like genes (and say what was decided)."""
    if genes_in_rows is not None:
        return bool(genes_in_rows)
    if expected_genes is not None:
        expected = {gene_key(g) for g in expected_genes}
        in_cols = sum(gene_key(c) in expected for c in col_names)
        in_rows = sum(gene_key(i) in expected for i in row_names)
        if in_rows > in_cols:
            log(f"{source}: gene names found in rows; reading it as genes x samples "
                "(--genes-in-columns to override).", quiet)
            return True
        return False
    row_score, col_score = _gene_likeness(row_names), _gene_likeness(col_names)
    if row_score - col_score > 0.5:
        log(f"{source}: row names look like genes and column names like samples; reading it as genes x samples "
            "(--genes-in-columns to override).", quiet)
        return True
    if col_score - row_score <= 0.5:  # the names do not settle it: say what was assumed
        log(f"note: {source}: the names do not show which axis holds the genes; reading rows as samples "
            f"({len(row_names)} samples x {len(col_names)} genes). If genes are in rows, pass --genes-in-rows.", quiet)
    return False


def _orient(df: pd.DataFrame, genes_in_rows: bool | None, expected_genes, source: str, quiet: bool) -> pd.DataFrame:
    """Return samples x genes, transposing when :func:`genes_are_rows` says so."""
    rows = genes_are_rows(df.index, df.columns, genes_in_rows=genes_in_rows, expected_genes=expected_genes,
                          source=source, quiet=quiet)
    return df.T if rows else df


def numeric_frame(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Coerce numeric-looking columns; a column with real non-numbers is a clear GengenError."""
    import pandas as pd

    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        converted = df[bad].apply(pd.to_numeric, errors="coerce")
        really_bad = [c for c in bad if converted[c].isna().sum() > df[c].isna().sum()]
        if really_bad:
            raise GengenError(
                f"{source}: column(s) {preview(really_bad)} hold non-numeric values; gengen expects a samples x "
                "genes table of numbers with sample names in the first column (move annotations to another file)."
            )
        df = df.copy()
        df[bad] = converted
    return df


def _not_expression(col: pd.Series) -> str | None:
    """What a column holds when it is not expression values ("dates", "true/false values", "text", ...);
    None for numbers (also numbers stored as text, which :func:`numeric_frame` converts)."""
    import datetime

    import pandas as pd

    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "true/false values"
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "dates"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "durations"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categories"
    if pd.api.types.is_numeric_dtype(dtype):
        return None
    values = col.dropna()
    if len(values) and all(isinstance(v, bool | np.bool_) for v in values):
        return "true/false values"
    if len(values) and all(isinstance(v, datetime.date | datetime.time) for v in values):
        return "dates"
    converted = pd.to_numeric(values, errors="coerce") if len(values) else values
    return "text" if converted.isna().any() else None


def split_annotations(df: pd.DataFrame, source: str, quiet: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(expression columns, annotation columns or None) of a typed table (Parquet).

    Dates, true/false values, categories and text are not expression values: read as numbers they
    would become nanoseconds or 0/1 and silently change the matrix (a date column alone makes the
    values look like counts, so log2(x+1) is applied to everything). Such columns before the first
    numeric one are annotations, kept (in ``obs``, or ``var`` for a genes x samples table) and named in
    a note; one among the gene columns is an error naming it.
    """
    flagged = [(i, str(c), kind) for i, c in enumerate(df.columns) if (kind := _not_expression(df.iloc[:, i]))]
    if not flagged:
        return df, None
    lead = next((i for i in range(df.shape[1]) if i not in {f[0] for f in flagged}), df.shape[1])
    inside = [f for f in flagged if f[0] >= lead]
    if inside or lead == df.shape[1]:
        i, name, kind = (inside or flagged)[0]
        more = f" ({len(flagged) - 1} more such column(s))" if len(flagged) > 1 else ""
        raise GengenError(
            f"{source}: column {name!r} (#{i + 1}) holds {kind}, not expression values{more}; gengen reads a table of "
            "numbers (samples x genes): drop that column, or put annotations before the gene columns (kept as "
            "annotations) or in a --labels file."
        )
    names = [f[1] for f in flagged]
    kinds = sorted({f[2] for f in flagged})
    log(f"note: {source}: column(s) {preview(names)} hold {', '.join(kinds)}, not expression values: kept as "
        "annotations (obs; --by can name them), not read as genes.", quiet)
    return df.iloc[:, lead:], df.iloc[:, :lead]


def _annotations_for(index, annotations: pd.DataFrame | None) -> pd.DataFrame:
    """``annotations`` when they describe ``index`` (the samples or, transposed, the genes), else an empty frame."""
    import pandas as pd

    names = pd.Index(index).astype(str)
    if annotations is not None and pd.Index(annotations.index).astype(str).equals(names):
        return annotations.set_axis(names)
    return pd.DataFrame(index=names)


def check_gene_names(names, source: str = "data", what: str = "gene") -> None:
    """Gene names are the join key: an empty one (a blank header cell) or a repeated one is refused,
    with the position of the first empty name (``what``: how the message names a position, e.g. "column")."""
    import pandas as pd

    names = pd.Index(names).astype(str)
    empty = [i for i, n in enumerate(names) if not n.strip()]
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise GengenError(
            f"{source}: {what} #{empty[0] + 1} has an empty gene name{more}; name every gene (an empty header cell "
            "would become a gene named '')."
        )
    check_unique_genes(names, source)


def read_gct(path: str | os.PathLike) -> ad.AnnData:
    """Read a GCT 1.2 / 1.3 file (genes in rows) into samples x genes AnnData; row metadata -> ``var``."""
    import pandas as pd

    with open_text(path) as fh:
        version = fh.readline().strip()
        if version not in ("#1.2", "#1.3"):
            raise GengenError(f"{str(path)!r} does not start with #1.2 or #1.3; it is not a GCT file.")
        dims = fh.readline().split()
        try:
            n_rows, n_cols = int(dims[0]), int(dims[1])
            n_row_meta = int(dims[2]) if version == "#1.3" else 1
            n_col_meta = int(dims[3]) if version == "#1.3" else 0
        except (IndexError, ValueError):
            raise GengenError(f"{str(path)!r}: malformed GCT dimension line {' '.join(dims)!r}.") from None
        table = pd.read_csv(fh, sep="\t", header=0, dtype=str, na_filter=False)
    if table.shape[1] != 1 + n_row_meta + n_cols:
        raise GengenError(
            f"{str(path)!r}: GCT header has {table.shape[1]} columns, expected {1 + n_row_meta + n_cols} "
            f"(id + {n_row_meta} metadata + {n_cols} samples)."
        )
    col_meta = table.iloc[:n_col_meta]
    body = table.iloc[n_col_meta:]
    if len(body) != n_rows:
        raise GengenError(f"{str(path)!r}: GCT declares {n_rows} rows but holds {len(body)}.")
    gene_ids = body.iloc[:, 0].astype(str).values
    row_meta = body.iloc[:, 1 : 1 + n_row_meta].copy()
    row_meta.index = gene_ids
    raw = body.iloc[:, 1 + n_row_meta :]
    values = raw.apply(pd.to_numeric, errors="coerce")
    raw_bad = values.isna().to_numpy() & ~raw.isin(["", "NaN", "nan", "NA"]).to_numpy()
    if raw_bad.any():
        r, c = np.argwhere(raw_bad)[0]
        raise GengenError(f"{str(path)!r}: non-numeric value in gene {gene_ids[r]!r}, sample {values.columns[c]!r}.")
    cm = None
    if n_col_meta:
        cm = col_meta.set_index(col_meta.columns[0]).iloc[:, n_row_meta:].T
    if version == "#1.2" and "Description" in row_meta.columns:
        row_meta = row_meta.rename(columns={"Description": "description"})
    return annotated_matrix(values.to_numpy(dtype=np.float32).T, gene_ids, values.columns, row_meta, cm)


def annotated_matrix(X, gene_ids, sample_ids, row_meta: pd.DataFrame | None = None,
                     col_meta: pd.DataFrame | None = None) -> ad.AnnData:
    """Samples x genes AnnData from a GCT-style matrix: row (gene) metadata -> ``var``, column (sample)
    metadata -> ``obs``, both keyed by the ids as strings.

    GCT and GCTX share this one path so a plate reads the same whichever of the two it came in.
    """
    import anndata as ad
    import pandas as pd

    def frame(meta: pd.DataFrame | None, ids) -> pd.DataFrame:
        index = pd.Index([str(i) for i in ids])
        if meta is None:
            return pd.DataFrame(index=index)
        meta = meta.reset_index(drop=True)
        meta.index = index
        meta.columns = [str(c) for c in meta.columns]
        return meta

    return ad.AnnData(
        X=np.asarray(X, dtype=np.float32), obs=frame(col_meta, sample_ids), var=frame(row_meta, gene_ids)
    )


@dataclass
class GctxFile:
    """An open, validated GCTX (cmapPy layout): the matrix dataset (samples x genes) and its id lists."""

    h5: object  # h5py.File
    matrix: object  # h5py.Dataset, shape (n_samples, n_genes)
    gene_ids: list[str]
    sample_ids_ds: object  # h5py.Dataset, decoded lazily: GEO files hold up to 1.3M sample ids
    source: str

    @property
    def n_samples(self) -> int:
        return int(self.matrix.shape[0])

    def sample_ids(self, start: int = 0, stop: int | None = None) -> list[str]:
        return [str(v) for v in _h5_values(self.sample_ids_ds[start:stop])]

    def row_meta(self) -> pd.DataFrame:
        return _h5_meta(self.h5[GCTX_ROW_META], len(self.gene_ids), "gene", self.source)

    def col_meta(self) -> pd.DataFrame:
        return _h5_meta(self.h5[GCTX_COL_META], self.n_samples, "sample", self.source)


@contextlib.contextmanager
def open_gctx(path: str | os.PathLike) -> Iterator[GctxFile]:
    """Open a GCTX and check its cmapPy layout, with a clear GengenError for anything else."""
    import h5py

    source = str(path)
    if not h5py.is_hdf5(source):
        hint = (" GEO ships .gctx.gz: gunzip it first (HDF5 cannot be read compressed)." if source.endswith(".gz")
                else " If it is a text GCT, name it .gct or pass --format gct.")
        raise GengenError(f"{source!r} is not an HDF5 file, so not a GCTX.{hint}")
    try:
        h5 = h5py.File(source, "r")
    except OSError as exc:
        raise GengenError(f"cannot open {source!r} as HDF5: {str(exc).splitlines()[0][:200]}") from None
    try:
        missing = [n for n in (GCTX_MATRIX, f"{GCTX_ROW_META}/id", f"{GCTX_COL_META}/id")
                   if not isinstance(h5.get(n), h5py.Dataset)]
        if missing:
            raise GengenError(
                f"{source!r} is HDF5 but not a GCTX in the cmapPy layout: no {', '.join(missing)} "
                f"(top-level groups: {preview(list(h5.keys())) or 'none'}); write it with cmapPy's write_gctx, "
                "or use h5ad for AnnData files."
            )
        matrix, rid, cid = h5[GCTX_MATRIX], h5[f"{GCTX_ROW_META}/id"], h5[f"{GCTX_COL_META}/id"]
        if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
            raise GengenError(f"{source!r}: {GCTX_MATRIX} must be a 2-D numeric matrix, found {matrix.shape} "
                              f"of {matrix.dtype}.")
        n_genes, n_samples = rid.shape[0] if rid.ndim == 1 else -1, cid.shape[0] if cid.ndim == 1 else -1
        if matrix.shape != (n_samples, n_genes):
            transposed = matrix.shape == (n_genes, n_samples)
            raise GengenError(
                f"{source!r}: the matrix is {matrix.shape[0]} x {matrix.shape[1]} but the file lists "
                f"{n_samples} sample ids ({GCTX_COL_META}/id) and {n_genes} gene ids ({GCTX_ROW_META}/id); "
                f"a GCTX stores samples x genes ({n_samples} x {n_genes})"
                + ("; this one is written genes x samples: rewrite it with cmapPy's write_gctx." if transposed
                   else "; the file is truncated or its id lists do not belong to it.")
            )
        gene_ids = [str(v) for v in _h5_values(rid[()])]
        yield GctxFile(h5=h5, matrix=matrix, gene_ids=gene_ids, sample_ids_ds=cid, source=source)
    finally:
        h5.close()


def _h5_values(values) -> np.ndarray:
    """An HDF5 column as numbers or str: fixed-length bytes and variable-length strings both decoded."""
    values = np.asarray(values)
    if values.dtype.kind in "SO":
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values],
                        dtype=object)
    if values.dtype.kind == "U":
        return values.astype(object)
    return values


def _h5_meta(group, n: int, what: str, source: str) -> pd.DataFrame:
    """Every 1-D dataset of a META group but ``id``, as columns (numbers stay numbers)."""
    import h5py
    import pandas as pd

    columns = {}
    for name, ds in group.items():
        if name == "id" or not isinstance(ds, h5py.Dataset):
            continue
        if ds.ndim != 1 or ds.shape[0] != n:
            raise GengenError(f"{source!r}: metadata {group.name}/{name} has shape {ds.shape}, expected one value "
                              f"per {what} ({n}); the file is malformed.")
        columns[name] = _h5_values(ds[()])
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def read_gctx(path: str | os.PathLike) -> ad.AnnData:
    """Read a GCTX (HDF5, cmapPy layout) whole into samples x genes AnnData, metadata as ``read_gct``.

    For files too large to hold, stream them with :func:`iter_gctx`.
    """
    with open_gctx(path) as g:
        X = np.asarray(g.matrix[()], dtype=np.float32)
        return annotated_matrix(X, g.gene_ids, g.sample_ids(), g.row_meta(), g.col_meta())


def gctx_genes(path: str | os.PathLike) -> tuple[list[str], pd.DataFrame]:
    """Gene ids and gene metadata (``var``) of a GCTX without reading its matrix."""
    import pandas as pd

    with open_gctx(path) as g:
        meta = g.row_meta()
        meta.index = pd.Index(g.gene_ids)
        return g.gene_ids, meta


def iter_gctx(
    path: str | os.PathLike, chunk_size: int = 10_000, columns: Sequence[int] | None = None,
    *,
    read_bytes: int = 64 << 20,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """(sample ids, float32 block samples x genes) per ``chunk_size`` samples: HDF5 row slices, so a
    1M-sample GCTX never loads whole.

    With ``columns`` (gene indices) only those genes are kept, read in row blocks of at most
    ``read_bytes``: a GEO Level 3 file has 12,328 genes per sample, and a model needs ~1,000 of them, so
    memory stays ~ chunk_size x len(columns) x 4 bytes instead of ~0.5 GB per 10,000 samples.
    """
    if chunk_size < 1:
        raise GengenError(f"chunk size must be positive, got {chunk_size}.")
    with open_gctx(path) as g:
        if columns is None:
            for s in range(0, g.n_samples, chunk_size):
                e = min(s + chunk_size, g.n_samples)
                yield g.sample_ids(s, e), np.asarray(g.matrix[s:e], dtype=np.float32)
            return
        cols = np.asarray(columns, dtype=np.int64)
        rows_per_read = max(1, read_bytes // max(1, len(g.gene_ids) * 4))
        for s in range(0, g.n_samples, chunk_size):
            e = min(s + chunk_size, g.n_samples)
            block = np.empty((e - s, len(cols)), dtype=np.float32)
            for r in range(s, e, rows_per_read):
                stop = min(r + rows_per_read, e)
                block[r - s : stop - s] = np.asarray(g.matrix[r:stop], dtype=np.float32)[:, cols]
            yield g.sample_ids(s, e), block


def _raw_header(path, sep: str) -> list[str]:
    """The header row as written (names stripped, a byte-order mark dropped), before pandas would
    de-duplicate column names."""
    with open_text(path) as fh:
        line = fh.readline().rstrip("\n\r").lstrip("\ufeff")
    return [f.strip() for f in split_fields(line, sep)]


def _arrow_matrix(path: Path, sep: str, width: int, source: str):
    """A delimited table read by pyarrow: first column as strings, the ``width - 1`` others as float32.

    pyarrow parses in parallel and straight to float32, where pandas would build float64 columns
    (twice the memory) on one thread. gzip is inflated by pyarrow too (its zlib, in its own thread:
    9 s of CPU instead of Python's 13 s for the 1.5 GB TCGA-size benchmark file), and a truncated or
    corrupted stream is named as such, as :func:`gengen.io.files.open_bytes` does for other readers.
    Returns the table, or ``(column number, value)`` of the first value that is not a number.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"c{i}" for i in range(width)]
    types = {name: pa.float32() for name in names[1:]}
    types[names[0]] = pa.binary()  # names decoded by the caller: a stray Latin-1 byte is not an error
    with open_text(path) as fh:
        row_bytes = len(fh.readline()) + 1  # the header: as wide as a row, near enough
    # ~256 rows per block, 1-32 MB: few chunks per column without big text blocks in flight (measured on
    # the 10,459 x 20,530 benchmark: 8 MB blocks peak at 2.97 GB, 32 MB at 2.42 GB, 174 MB at 3.86 GB)
    block = int(min(32 << 20, max(1 << 20, 256 * row_bytes)))
    compression = stored_kind(path)
    if compression == "gzip" and wide_text(path):  # UTF-16/32 or Windows-1252 inside: open_bytes re-encodes it
        compression = "text"
    stream = (pa.input_stream(str(path), compression="gzip", buffer_size=1 << 20) if compression == "gzip"
              else open_bytes(path))
    with stream as fh:
        try:
            return pcsv.read_csv(
                fh,
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=block),
                parse_options=pcsv.ParseOptions(delimiter=sep),
                convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
        except pa.ArrowInvalid as exc:
            message = str(exc).splitlines()[0]
            column = re.search(r"column #(\d+)", message)
            value = re.search(r"invalid value '([^']*)'", message)
            if column and value:
                return int(column.group(1)), value.group(1)
            raise GengenError(f"cannot read {source!r} as a table: {message[:200]}") from None
        except OSError as exc:
            if compression == "gzip":
                raise damaged(path, "gzip", exc) from None
            raise


def _read_text_matrix(
    path: Path, sep: str, source: str, rows_are_genes: Callable[[list[str], list[str]], bool]
) -> tuple[list[str], list[str], np.ndarray]:
    """(sample names, gene names, float32 samples x genes) of a delimited text table whose first column
    holds row names.

    ``rows_are_genes(row_names, column_names)`` picks the orientation as soon as the names are known;
    the values are then laid out once, directly as samples x genes (a TCGA-size download is 0.86 GB
    as float32), instead of being read, transposed and converted in three copies.
    """
    import pandas as pd

    header = _raw_header(path, sep)
    lines = head_lines(path, 3)
    if len(lines) < 2:
        raise GengenError(f"{source}: no data rows under the header; is this an expression table?")
    width = len(split_fields(lines[1], sep))
    if width < 2:
        raise GengenError(f"{source}: only one column found; is the separator right (tab, comma or spaces)?")
    if width == len(header) + 1:
        columns = header  # R's write.table: the row-name column has no header field
        first_field = 1
    elif width == len(header):
        columns = header[1:]
        first_field = 2
    else:
        raise GengenError(f"{source}: the header has {len(header)} fields but the first data row {width}; "
                          "every row needs a name and one value per column.")
    if sep != WHITESPACE:
        table = _arrow_matrix(path, sep, width, source)
        if isinstance(table, tuple):  # a value that is not a number
            col, value = table
            where = columns[col - 1] if 0 < col <= len(columns) else f"#{col + 1}"
            raise GengenError(
                f"{source}: column {where!r} holds a non-numeric value ({value[:40]!r}); gengen expects a table of "
                "numbers with the names in the first column (move annotations to another file)."
            )
        rows = [r.decode("utf-8", errors="gengen-legacy") for r in table.column(0).to_pylist()]
        transposed = bool(rows) and rows_are_genes(rows, columns)
        X = np.empty((len(columns), len(rows)) if transposed else (len(rows), len(columns)), dtype=np.float32)
        for j in range(len(columns)):
            start = 0
            for chunk in table.column(j + 1).chunks:
                values = chunk.to_numpy(zero_copy_only=False)
                if transposed:
                    X[j, start : start + len(values)] = values
                else:
                    X[start : start + len(values), j] = values
                start += len(values)
        del table
    else:
        with open_bytes(path) as fh:
            df = pd.read_csv(fh, sep=pandas_sep(sep), index_col=0, header=0 if width == len(header) else None,
                             skiprows=0 if width == len(header) else 1)
        df.columns = columns
        df = numeric_frame(df, source)
        rows = [str(r) for r in df.index]
        transposed = bool(rows) and rows_are_genes(rows, columns)
        X = df.to_numpy(dtype=np.float32)
        del df
        if transposed:
            X = np.ascontiguousarray(X.T)
    if not rows:
        raise GengenError(f"{source}: no data rows under the header; is this an expression table?")
    if transposed:
        check_gene_names(rows, source, "data row")
    else:
        empty = [j for j, c in enumerate(columns) if not c]
        if empty:
            raise GengenError(
                f"{source}: field #{empty[0] + first_field} of the header is empty, so that column's gene has no name"
                + (f" ({len(empty) - 1} more such field(s))" if len(empty) > 1 else "")
                + "; name every gene column (it would otherwise become a gene named '')."
            )
    return (columns, rows, X) if transposed else (rows, columns, X)


def read_series_matrix(path: str | os.PathLike, quiet: bool = False) -> ad.AnnData:
    """A GEO series matrix (``GSExxx_series_matrix.txt.gz`` as downloaded) as samples x probes AnnData.

    The table between ``!series_matrix_table_begin`` and ``_end`` (probe ids ``ID_REF`` in rows, GSM ids
    in columns) becomes ``X``; the ``!Sample_*`` lines become ``obs`` columns (``title``,
    ``source_name_ch1``, ...; ``characteristics_ch1`` lines written ``key: value`` become a column per
    key), so ``--by`` can name them. Genes are the platform's probe ids (as D-GEX's models use).

    Parameters
    ----------
    path : the series matrix, plain or compressed.
    quiet : no status line on stderr.

    Returns
    -------
    AnnData, samples x probes, float32 ``X``, sample annotations in ``obs``.
    """
    import anndata as ad
    import pandas as pd

    source = str(path)
    with open_text(path) as fh:
        samples = _series_matrix_samples(fh, source)
        try:
            df = pd.read_csv(fh, sep="\t", index_col=0, comment="!", na_values=["null", "NULL"], low_memory=False)
        except pd.errors.EmptyDataError:
            df = pd.DataFrame()
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise GengenError(f"{source}: the series matrix holds no expression values (GEO keeps RNA-seq counts in "
                          "supplementary files: download that matrix instead).")
    df.index = df.index.map(str)
    check_unique_genes(df.index, source)
    df = numeric_frame(df.T, source)
    obs = pd.DataFrame(index=df.index.map(str))
    for key, values in samples.items():
        if len(values) == len(obs):
            obs[key] = values
    log(f"{source}: GEO series matrix, {df.shape[0]} samples x {df.shape[1]} probes; sample annotations "
        f"{preview(list(obs.columns), 4) or 'none'} in obs.", quiet)
    return ad.AnnData(X=df.to_numpy(dtype=np.float32), obs=obs, var=pd.DataFrame(index=df.columns.map(str)))


def _series_matrix_samples(fh, source: str) -> dict[str, list[str]]:
    """The ``!Sample_*`` lines of a series matrix, read up to ``!series_matrix_table_begin``."""
    samples: dict[str, list[str]] = {}
    for line in fh:
        if line.startswith("!series_matrix_table_begin"):
            return samples
        if line.startswith("!Sample_"):
            fields = next(csv.reader([line.rstrip("\n\r")], delimiter="\t"), [])
            if len(fields) > 1:
                _add_sample_field(samples, fields[0][len("!Sample_"):], fields[1:])
    raise GengenError(f"{source}: no '!series_matrix_table_begin' line; not a complete GEO series matrix.")


def series_matrix_samples(path: str | os.PathLike) -> pd.DataFrame:
    """The sample annotations of a GEO series matrix (``!Sample_*`` lines), indexed by GSM id."""
    import pandas as pd

    with open_text(path, "annotation file") as fh:
        samples = _series_matrix_samples(fh, str(path))
    ids = samples.pop("geo_accession", None)
    if not ids:
        raise GengenError(f"{str(path)!r}: no '!Sample_geo_accession' line, so no sample ids to join on.")
    return pd.DataFrame({k: v for k, v in samples.items() if len(v) == len(ids)}, index=pd.Index(ids))


def _add_sample_field(samples: dict[str, list[str]], key: str, values: list[str]) -> None:
    """One ``!Sample_<key>`` line: ``characteristics`` as ``key: value`` pairs split into their own
    columns (when every sample uses the same key), repeated keys numbered."""
    pairs = [v.split(":", 1) for v in values]
    if key.startswith("characteristics") and all(len(p) == 2 for p in pairs) and len({p[0].strip() for p in pairs}) == 1:
        key, values = pairs[0][0].strip(), [p[1].strip() for p in pairs]
    name, n = key, 2
    while name in samples:
        name, n = f"{key}_{n}", n + 1
    samples[name] = values


def check_layer(layer: str | None, kind: str, source: str) -> None:
    """``--layer`` picks a layer of an h5ad; on any other format it is a mistake, said before any reading."""
    if layer is not None and kind != "h5ad":
        raise GengenError(f"--layer {layer!r} picks a layer of an h5ad input; {source!r} is {kind}, which has none: "
                          "leave --layer out.")


def read_expression(
    path: str | os.PathLike,
    *,
    genes_in_rows: bool | None = None,
    fmt: str | None = None,
    expected_genes=None,
    gene_column: str | None = None,
    allow_missing_values: bool = False,
    layer: str | None = None,
    quiet: bool = False,
) -> ad.AnnData:
    """Read an expression matrix as samples x genes AnnData with float32 ``X``.

    Parameters
    ----------
    path : h5ad, CSV/TSV/whitespace table (first column = names), Parquet, GCT, GCTX (HDF5, cmapPy
        layout) or GEO series matrix; plain or gzip/bz2/xz. The format is recognised from the content
        when the name does not say (:func:`input_format`), the delimiter by sniffing.
    genes_in_rows : force the orientation of tables (GCT/GCTX/series matrices fix their own);
        ``None`` detects it, using
        ``expected_genes`` (e.g. a model's gene list) when given, else the look of the names.
    fmt : force the format (one of :data:`FORMATS`).
    gene_column : a ``var`` column to use as gene names (e.g. ``pr_gene_symbol`` of an L1000 GCT).
    allow_missing_values : keep NaN instead of raising (callers that impute).
    layer : an h5ad input's layer to read instead of ``X`` (``--layer``); an h5ad without ``X`` needs one.
    quiet : no notes on stderr (how the file was read).

    Returns
    -------
    AnnData, samples x genes, ``X`` float32 (annotations of GCT/GCTX/series matrices in ``obs``/``var``;
    leading non-numeric columns of a Parquet table in ``obs``).
    """
    import anndata as ad
    import pandas as pd

    path = check_input(path)
    source = str(path)
    kind = input_format(path, fmt)
    check_layer(layer, kind, source)
    note_encoding(path, quiet)
    try:
        if kind == "h5ad":
            from gengen.io.h5ad import pick_matrix

            adata = pick_matrix(ad.read_h5ad(path), layer, source)
            if genes_in_rows:
                adata = adata.T
        elif kind == "gct":
            adata = read_gct(path)
        elif kind == "gctx":
            adata = read_gctx(path)
        elif kind == ARCHS4:  # counts as log2(CPM + 1), as every command reads them (gengen.io.streaming)
            from gengen.io.streaming import open_expression

            adata = open_expression(path, fmt=fmt, stream="off", quiet=quiet).data
        elif kind == SERIES_MATRIX:
            adata = read_series_matrix(path, quiet=quiet)
        elif kind == "parquet":
            df = pd.read_parquet(path)
            if isinstance(df.index, pd.RangeIndex) and df.shape[1] and _not_expression(df.iloc[:, 0]) == "text":
                df = df.set_index(df.columns[0])
            if df.shape[0] == 0 or df.shape[1] == 0:
                raise GengenError(f"{source}: no data rows or columns found.")
            df.index = df.index.map(str)
            df.columns = df.columns.map(str)
            df, annotations = split_annotations(df, source, quiet)
            df = _orient(df, genes_in_rows, expected_genes, source, quiet)
            check_gene_names(df.columns, source, "column")
            df = numeric_frame(df, source)
            adata = ad.AnnData(
                X=df.to_numpy(dtype=np.float32),
                obs=_annotations_for(df.index, annotations),
                var=_annotations_for(df.columns, annotations),
            )
        else:
            samples, genes, X = _read_text_matrix(
                path, table_separator(path, kind), source,
                lambda rows, cols: genes_are_rows(rows, cols, genes_in_rows=genes_in_rows,
                                                  expected_genes=expected_genes, source=source, quiet=quiet),
            )
            check_unique_genes(genes, source)
            adata = ad.AnnData(X=X, obs=pd.DataFrame(index=pd.Index(samples)), var=pd.DataFrame(index=pd.Index(genes)))
    except GengenError:
        raise
    except pd.errors.EmptyDataError:
        raise GengenError(f"input file {source!r} holds no table.") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError, KeyError) as exc:
        raise GengenError(f"cannot read {source!r} as {kind}: {str(exc).splitlines()[0][:200]}") from None
    if gene_column is not None:
        adata = use_gene_column(adata, gene_column, source)
    return validate_expression(adata, source, allow_missing_values=allow_missing_values, quiet=quiet)


def use_gene_column(adata: ad.AnnData, column: str, source: str = "data") -> ad.AnnData:
    """Re-key genes by a ``var`` column (e.g. symbols instead of probe ids)."""
    if column not in adata.var.columns:
        raise GengenError(f"{source}: no gene annotation column {column!r}; available: {preview(adata.var.columns)}.")
    adata = adata.copy()
    adata.var_names = adata.var[column].astype(str).values
    return adata


def check_unique_genes(names, source: str = "data") -> None:
    """Gene names are the join key: duplicates would make every later lookup ambiguous."""
    import pandas as pd

    names = pd.Index(names)
    if names.has_duplicates:
        dup = names[names.duplicated()].unique()
        raise GengenError(
            f"{source}: duplicate gene names {preview(dup)}; make them unique or aggregate them "
            "(e.g. average probes per gene) before running gengen."
        )


def validate_expression(adata: ad.AnnData, source: str = "data", allow_missing_values: bool = False,
                        *, quiet: bool = False) -> ad.AnnData:
    """Dense float32 X, unique gene names, finite values; raise a clear GengenError otherwise.

    Duplicate sample names are made unique (``s``, ``s-1``, ...), with a note saying so.
    """
    import scipy.sparse as sp

    if adata.n_obs == 0 or adata.n_vars == 0:
        raise GengenError(f"{source}: the matrix is empty ({adata.n_obs} samples x {adata.n_vars} genes).")
    check_gene_names(adata.var_names, source)
    X = adata.X
    if sp.issparse(X):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float32)
    if not allow_missing_values or np.isinf(X).any():
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            what = "NaN" if np.isnan(X[r, c]) else "infinite"
            raise GengenError(
                f"{source}: {int(bad.sum())} missing or infinite value(s), first a {what} in sample "
                f"{adata.obs_names[r]!r}, gene {adata.var_names[c]!r}; impute or drop them first."
            )
    adata.X = X
    if adata.obs_names.has_duplicates:
        dup = adata.obs_names[adata.obs_names.duplicated()].unique()
        log(f"note: {source}: {int(adata.obs_names.duplicated().sum())} duplicate sample name(s) {preview(dup)} "
            "renamed to be unique (a second 'x' becomes 'x-1').", quiet)
        adata.obs_names_make_unique()
    return adata


def write_table(df: pd.DataFrame, path: str | os.PathLike, protect=(), *, index: bool = True) -> Path:
    """Write a DataFrame as CSV/TSV/Parquet by extension, atomically."""
    kind = detect_format(path)
    with atomic_path(path, protect=protect) as tmp:
        if kind == "parquet":
            df.to_parquet(tmp, index=index)
        elif kind in TABLE_FORMATS:
            df.to_csv(tmp, sep=TABLE_FORMATS[kind], index=index)
        else:
            raise GengenError(f"cannot write a table as .{kind}; use .csv, .tsv or .parquet.")
    return Path(path)


def write_expression(adata: ad.AnnData, path: str | os.PathLike, protect=(), *, obsm_key: str | None = None) -> Path:
    """Write AnnData as h5ad, or a table (``X``, or ``obsm[obsm_key]`` when given) as CSV/TSV/Parquet.

    Parameters
    ----------
    adata : the data to write.
    path : the output; its extension picks the format (h5ad, csv, tsv, parquet).
    protect : input paths the output must not replace.
    obsm_key : write ``adata.obsm[obsm_key]`` (e.g. ``"X_vae"``) instead of ``adata.X`` to a table.

    Returns
    -------
    The written path.
    """
    import pandas as pd

    kind = output_format(path)
    if kind == "h5ad":
        from gengen.io.h5ad import write_h5ad

        with atomic_path(path, protect=protect) as tmp:
            write_h5ad(adata, tmp)
        return Path(path)
    if obsm_key is not None:
        mat = np.asarray(adata.obsm[obsm_key])
        df = pd.DataFrame(mat, index=adata.obs_names, columns=[f"{obsm_key.removeprefix('X_')}_{i + 1}" for i in range(mat.shape[1])])
    else:
        df = adata.to_df()
    df.index.name = "sample"
    return write_table(df, path, protect=protect)


GENE_LIST_HEADERS = ("gene", "genes", "symbol", "gene_symbol", "gene_id", "gene_name", "id", "name", "pr_id",
                     "probe", "probe_id", "id_ref", "pr_gene_symbol", "pr_gene_id", "hgnc_symbol", "ensembl_gene_id",
                     "entrez", "entrez_id")


def read_gene_list(path: str | os.PathLike, *, unique: bool = True) -> list[str]:
    """Gene names from a file (plain or compressed): one per line, or the first column of a
    tab/comma/space-separated table (header skipped when its first field names a column).

    ``unique=False`` keeps repeated names in place (a list that must line up with a model's outputs)."""
    p = check_input(path, "gene list")
    if is_binary(head_bytes(p, what="gene list")):
        raise GengenError(f"gene list {str(p)!r} is a binary file; give one gene name per line or a CSV/TSV table.")
    with open_text(p, "gene list") as fh:
        lines = [ln.rstrip("\n\r") for ln in fh if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise GengenError(f"gene list {str(p)!r} is empty.")
    sep = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else WHITESPACE)
    first = [(split_fields(ln, sep) or [""])[0].strip().strip('"') for ln in lines]
    if first and first[0].lower() in GENE_LIST_HEADERS:
        first = first[1:]
    if not unique:
        return first
    seen: dict[str, None] = {}
    for g in first:
        seen.setdefault(g, None)
    return list(seen)


GENE_MAP_COLUMNS = ("pr_gene_id", "pr_gene_symbol")  # GEO's GSE92742/GSE70138 *_gene_info.txt


def read_gene_map(path: str | os.PathLike) -> dict[str, str]:
    """Query gene id -> model gene name, for queries keyed by other ids than the model (Entrez, Ensembl).

    A CSV/TSV with a header: ``pr_gene_id`` -> ``pr_gene_symbol`` when both are there (GEO's L1000
    ``*_gene_info.txt`` as downloaded), else first column -> second column.
    """
    import pandas as pd

    p = Path(path)
    what = f"gene map {str(p)!r}"
    check_input(p, "gene map")
    if is_binary(head_bytes(p, what="gene map")):
        raise GengenError(f"{what} is a binary file; give a CSV/TSV with a header: query gene id, model gene name.")
    lines = head_lines(p, what="gene map")
    if not lines:
        raise GengenError(f"{what} is empty; give a CSV/TSV with a header: query gene id, model gene name.")
    header = lines[0]
    sep = sniff_delimiter(lines) or ("\t" if "\t" in header else ("," if "," in header else None))
    if sep is None:
        raise GengenError(
            f"{what} has one column ({header.strip()[:40]!r}); it needs a header and two columns: the query's gene "
            "id, then the model's gene name (e.g. GEO's GSE92742_Broad_LINCS_gene_info.txt: pr_gene_id, pr_gene_symbol)."
        )
    try:
        with open_bytes(p, "gene map") as fh:
            table = pd.read_csv(fh, sep=pandas_sep(sep), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise GengenError(f"cannot read {what}: {str(exc).splitlines()[0][:160]}") from None
    cols = [str(c).strip() for c in table.columns]
    table.columns = cols
    if all(c in cols for c in GENE_MAP_COLUMNS):
        key, value = GENE_MAP_COLUMNS
    elif len(cols) >= 2:
        key, value = cols[0], cols[1]
    else:
        raise GengenError(f"{what} has one column; add the model's gene names as a second column.")
    pairs = table[[key, value]].apply(lambda c: c.str.strip())
    pairs = pairs[(pairs[key] != "") & (pairs[value] != "") & (pairs[value] != "-666")].drop_duplicates()
    if pairs.empty:
        raise GengenError(f"{what} holds no id -> name rows under its header ({key!r} -> {value!r}).")
    clash = pairs[key][pairs[key].duplicated()].unique()
    if len(clash):
        raise GengenError(
            f"{what} maps {len(clash)} id(s) to several names, e.g. {clash[0]!r} -> "
            f"{preview(pairs.loc[pairs[key] == clash[0], value], 3)}; keep one name per id."
        )
    return dict(zip(pairs[key], pairs[value], strict=True))


def attach_annotations(adata: ad.AnnData, path: str | os.PathLike, quiet: bool = False) -> ad.AnnData:
    """Join a sample annotation table onto ``obs``: sample ids in the first column, any delimiter
    (sniffed), plain or compressed, or Parquet; a GEO series matrix gives its ``!Sample_*`` lines.

    For inputs without ``obs`` (CSV, Xena TSV): e.g. Xena's ``PANCAN_clinicalMatrix`` (a TSV without
    extension) with its ``_primary_disease`` column.
    """
    import pandas as pd

    p = check_input(path, "annotation file")
    try:
        if stored_kind(p) == "parquet":
            table = pd.read_parquet(p)
            if isinstance(table.index, pd.RangeIndex) and table.shape[1] > 1:
                table = table.set_index(table.columns[0])
        else:
            head = head_bytes(p, what="annotation file")
            if is_binary(head):
                raise GengenError(f"annotation file {str(p)!r} is binary; give a CSV/TSV (sample ids in the first "
                                  "column) or Parquet.")
            note_encoding(p, quiet, "annotation file")
            if head.lstrip().startswith(b"!"):
                table = series_matrix_samples(p)
            else:
                sep = table_separator(p)
                with open_bytes(p, "annotation file") as fh:
                    table = pd.read_csv(fh, sep=pandas_sep(sep), index_col=0, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise GengenError(f"cannot read annotations {str(p)!r}: {str(exc).splitlines()[0][:160]}") from None
    table.index = table.index.map(str)
    repeated = table[table.index.duplicated(keep=False)]
    if len(repeated):
        clash = [i for i, rows in repeated.groupby(level=0, sort=False) if len(rows.drop_duplicates()) > 1]
        if clash:
            raise GengenError(
                f"{len(clash)} sample id(s) appear more than once in {str(p)!r} with different annotations: "
                f"{preview(clash)}; keep one row per sample."
            )
    table = table[~table.index.duplicated()]
    shared = adata.obs_names.intersection(table.index)
    if len(shared) == 0:
        raise GengenError(
            f"no sample of the data is in {str(p)!r} (data samples start {preview(adata.obs_names, 3)}, "
            f"annotation ids start {preview(table.index, 3)}); the first column must hold sample ids."
        )
    if len(shared) < adata.n_obs:
        log(f"annotations found for {len(shared)} of {adata.n_obs} samples; the rest count as missing.", quiet)
    out = adata.copy()
    for col in table.columns:
        out.obs[col] = table[col].reindex(out.obs_names).to_numpy()
    return out


LINEAR_MAX = 100.0  # log2-scale expression (RNA-seq, microarray) stays far below this; counts/TPM exceed it


def strided_sample(X: np.ndarray, max_entries: int = 2_000_000) -> np.ndarray:
    """At most ``max_entries`` evenly strided values of ``X``: enough to judge a matrix's scale cheaply."""
    flat = np.asarray(X).reshape(-1)
    return flat[:: int(np.ceil(flat.size / max_entries))] if flat.size > max_entries else flat


def looks_like_counts(X: np.ndarray) -> tuple[bool, str]:
    """Whether ``X`` looks linear-scale (raw counts, TPM, FPKM: non-negative, reaching above 100), and why.

    The models here expect log-scale expression: min-max scaling or z-scoring linear values lets a few
    huge values squash every other sample. Checked on a strided subset so that very large matrices stay
    cheap.
    """
    flat = strided_sample(X)
    if flat.size == 0:
        return False, "empty"
    lo, hi = float(flat.min()), float(flat.max())
    integer = bool(np.all(flat == np.round(flat)))
    if lo >= 0 and hi > LINEAR_MAX:
        kind = "integers" if integer else "values, e.g. TPM/FPKM"
        return True, f"non-negative {kind} up to {hi:,.0f}"
    return False, f"values from {lo:.4g} to {hi:.4g}" + ("" if integer else ", not integers")
