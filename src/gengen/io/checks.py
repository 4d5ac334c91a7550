"""The checks every expression reader shares: gene names (the join key between data and models:
unique, present, matched across Ensembl versions), which axis holds the genes, numeric and finite
values, and whether values look like raw counts.

Reading validates names and numbers up front (:func:`validate_expression`), with messages that say how
to fix the file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.runtime import log

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

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


def use_gene_column(adata: ad.AnnData, column: str, source: str = "data") -> ad.AnnData:
    """Re-key genes by a ``var`` column (e.g. symbols instead of probe ids)."""
    if column not in adata.var.columns:
        raise GengenError(f"{source}: no gene annotation column {column!r}; available: {preview(adata.var.columns)}.")
    adata = adata.copy()
    adata.var_names = adata.var[column].astype(str).values
    return adata


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
