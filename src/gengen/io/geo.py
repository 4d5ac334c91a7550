"""GEO series matrices (``GSExxx_series_matrix.txt.gz`` as downloaded): probes x samples values and
the ``!Sample_*`` annotation lines, read as samples x probes AnnData with the annotations in ``obs``.
"""

from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.io.checks import check_unique_genes, numeric_frame
from gengen.io.files import open_text
from gengen.runtime import log

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd


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
