"""The files that come with an expression matrix: gene lists (a model's genes, landmarks, sample ids),
gene id maps (query ids -> a model's gene names) and sample annotation tables joined onto ``obs``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gengen.errors import GengenError, preview
from gengen.io.files import (
    WHITESPACE,
    check_input,
    head_bytes,
    head_lines,
    is_binary,
    open_bytes,
    open_text,
    sniff_delimiter,
    split_fields,
    stored_kind,
)
from gengen.io.formats import note_encoding, pandas_sep, table_separator
from gengen.io.geo import series_matrix_samples
from gengen.runtime import log

if TYPE_CHECKING:
    import anndata as ad

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
