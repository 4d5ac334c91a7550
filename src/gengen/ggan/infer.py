"""Landmark -> target inference, in memory or streamed in chunks for very large query files.

``infer(model, data)`` is the in-memory call. ``infer_file`` streams a samples x genes CSV/TSV,
Parquet, h5ad or GCTX query chunk by chunk (pandas chunks, Parquet row batches, backed h5ad slices,
HDF5 row slices of the GCTX matrix) and appends each chunk's predictions to a temporary output that is
renamed into place only when every chunk succeeded, so 1,000,000 profiles need only a chunk's worth of
memory and a failure leaves no partial file. GCT and genes-in-rows tables are read whole (they are
plate-sized). A gene map (``gene_map=``) translates the query's gene ids (Entrez, Ensembl) to the
model's names first, the same way for every format. ``infer_chunked`` predicts a query opened for
streaming (an ARCHS4 compendium, or the samples chosen by ``--samples`` / ``--where``) block by block.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gengen.errors import GengenError, preview
from gengen.ggan.predict import LandmarkPlan
from gengen.io.chunked import parquet_index_column
from gengen.io.expression import (
    TABLE_FORMATS,
    input_format,
    output_format,
    pandas_sep,
    read_expression,
    read_gene_map,
    table_separator,
)
from gengen.io.files import open_bytes, open_text, split_fields
from gengen.runtime import atomic_path, log

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

    from gengen.ggan.core import GGANModel
    from gengen.io.chunked import ChunkedExpression

STREAMABLE = ("csv", "tsv", "txt", "parquet", "h5ad", "gctx")
FIXED_ORIENTATION = ("h5ad", "gctx")  # samples x genes by construction: never re-read to detect orientation


def infer(model: GGANModel, data, fill_missing: bool = False, *, quiet: bool = True) -> pd.DataFrame:
    """Samples x target genes in the reference's original units (AnnData or DataFrame in).

    Parameters
    ----------
    model : a trained :class:`GGANModel`.
    data : query profiles, an AnnData or a samples x genes DataFrame (original units).
    fill_missing : fill missing landmark genes with training means instead of refusing.
    quiet : no status lines (the default for library calls).

    Returns
    -------
    Predictions, samples x target genes.
    """
    return model.predict(data, fill_missing=fill_missing, quiet=quiet)


def to_anndata(pred: pd.DataFrame, model: GGANModel, obs: pd.DataFrame | None = None) -> ad.AnnData:
    """Predictions as AnnData with the model's provenance in ``uns['gengen']``."""
    import anndata as ad
    import pandas as pd

    out = ad.AnnData(
        X=pred.to_numpy(dtype=np.float32),
        obs=obs.copy() if obs is not None else pd.DataFrame(index=pred.index),
        var=pd.DataFrame(index=pred.columns),
    )
    out.uns["gengen"] = {
        "pipeline": "ggan",
        "model": str(getattr(model, "path", "")),
        "n_landmarks": len(model.landmarks),
        "seed": model.recipe.seed,
    }
    return out


def _header(path: Path, kind: str) -> tuple[list[str], pd.DataFrame | None]:
    """Column (gene) names of a samples x genes file without reading its body."""

    if kind == "parquet":
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(path).schema_arrow
        index = parquet_index_column(schema)
        return [n for n in schema.names if n != index], None
    if kind == "h5ad":
        from gengen.io.h5ad import h5ad_frame

        var = h5ad_frame(path, "var")
        return var.index.astype(str).tolist(), var
    if kind == "gctx":
        from gengen.io.expression import gctx_genes

        return gctx_genes(path)
    with open_text(path) as fh:  # the raw header: pandas would rename duplicate columns (A, A.1)
        row = split_fields(fh.readline().rstrip("\n\r").lstrip("\ufeff"), table_separator(path, kind))
    return [c.strip() for c in row[1:]], None


def _chunks(
    path: Path, kind: str, chunk_size: int, names: list[str], layer: str | None = None
) -> Iterator[tuple[list[str], np.ndarray]]:
    """(sample names, values of all columns) per chunk, values float32; non-numeric is an error.
    ``layer``: an h5ad's layer to read instead of ``X``."""
    import pandas as pd

    if kind == "gctx":
        from gengen.io.expression import iter_gctx

        yield from iter_gctx(path, chunk_size)
        return
    if kind == "h5ad":
        from gengen.io.h5ad import H5adRows, h5ad_frame

        samples = h5ad_frame(path, "obs").index.astype(str)
        with H5adRows(path, layer) as matrix:
            for s in range(0, matrix.n_rows, chunk_size):
                yield samples[s : s + chunk_size].tolist(), matrix[s : s + chunk_size]
        return
    if kind == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: with pyarrow's default pre-buffering, iter_batches kept every read batch
        # alive (RSS grew ~50 MB per 10,000 x 943 chunk: 6.3 GB for 1M profiles); without it RSS is flat.
        pf = pq.ParquetFile(path, pre_buffer=False)
        index = parquet_index_column(pf.schema_arrow)
        offset = 0
        for batch in pf.iter_batches(batch_size=chunk_size):
            df = batch.to_pandas()
            if index is None and isinstance(df.index, pd.RangeIndex):  # unnamed rows: number them globally
                df.index = pd.RangeIndex(offset, offset + len(df))
            offset += len(df)
            if index is not None and index in df.columns:  # else pandas metadata already made it the index
                df = df.set_index(index)
            df.columns = df.columns.map(str)
            yield _numeric(df[names], path)
        return
    with open_bytes(path) as fh:
        for df in pd.read_csv(fh, sep=pandas_sep(table_separator(path, kind)), index_col=0, chunksize=chunk_size):
            yield _numeric(df, path)


def _numeric(df: pd.DataFrame, path: Path) -> tuple[list[str], np.ndarray]:
    from gengen.io.expression import numeric_frame

    df = numeric_frame(df, str(path))
    return df.index.astype(str).tolist(), df.to_numpy(dtype=np.float32)


class _Writer:
    """Appends prediction chunks to CSV/TSV/Parquet, or collects them for h5ad."""

    def __init__(self, tmp: Path, kind: str, targets: list[str]):
        self.tmp, self.kind, self.targets = tmp, kind, targets
        self.first = True
        self.pq = None
        self.parts: list = []

    def write(self, names: list[str], Y: np.ndarray) -> None:
        import pandas as pd

        if self.kind == "h5ad":
            self.parts.append((names, Y))
            return
        df = pd.DataFrame(Y, index=pd.Index(names, name="sample"), columns=self.targets)
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=True)
            if self.pq is None:
                self.pq = pq.ParquetWriter(self.tmp, table.schema)
            self.pq.write_table(table)
        else:
            df.to_csv(
                self.tmp,
                sep=TABLE_FORMATS[self.kind],
                mode="w" if self.first else "a",
                header=self.first,
                float_format="%.6g",
            )
        self.first = False

    def close(self, model: GGANModel, obs: pd.DataFrame | None = None) -> None:
        """``obs``: the query's sample annotations, kept in an h5ad output (rows matched by name)."""
        import pandas as pd

        if self.pq is not None:
            self.pq.close()
        if self.kind == "h5ad":
            names = [n for part in self.parts for n in part[0]]
            Y = np.concatenate([p[1] for p in self.parts]) if self.parts else np.zeros((0, len(self.targets)))
            keep = None
            if obs is not None and obs.shape[1] and obs.index.is_unique and set(names) <= set(obs.index.astype(str)):
                keep = obs.set_axis(obs.index.astype(str)).loc[names]
            from gengen.io.h5ad import write_h5ad

            write_h5ad(to_anndata(pd.DataFrame(Y, index=names, columns=self.targets), model, obs=keep), self.tmp)
        elif self.first:  # no rows at all
            raise GengenError("the query holds no samples.")


@dataclass
class _Match:
    """The query's landmarks: the plan over its columns, its gene names after the map, map statistics."""

    plan: LandmarkPlan
    names: list[str]
    map_hits: int = 0  # query genes found in the gene map
    via_map: int = 0  # landmarks found through the gene map


def _match(model: GGANModel, names: list[str], var, mapping: dict[str, str] | None, source: str) -> _Match:
    """Plan the landmarks over the query's genes, translated through the gene map first when given.

    One path for every input format. Two query genes that the map sends to the same landmark are an
    error (which one should the model see?); other collisions are harmless and ignored.
    """
    if mapping is None:
        return _Match(model.plan(names, var), list(names))
    hit = [n in mapping for n in names]
    mapped = [mapping.get(n, n) for n in names]
    wanted = set(model.landmarks) | set(model.landmark_genes)
    by_name: dict[str, list[str]] = {}
    for orig, new in zip(names, mapped, strict=True):
        if new in wanted:
            by_name.setdefault(new, []).append(orig)
    dup = {k: v for k, v in by_name.items() if len(v) > 1}
    if dup:
        shown = [f"{'/'.join(v[:3])} -> {k}" for k, v in list(dup.items())[:3]]
        raise GengenError(
            f"{source}: after the gene map, {len(dup)} model gene(s) come from several query genes ({'; '.join(shown)}); "
            "keep one query id per model gene in the map, or aggregate those columns first."
        )
    plan = model.plan(mapped, var)
    via = sum(any(hit[j] for j in cols) for cols in plan.columns) if plan.how == "name" else 0
    return _Match(plan, mapped, sum(hit), via)


def _check_match(
    model: GGANModel, m: _Match, query_names: list[str], mapping: dict[str, str] | None, gene_map, source: str,
    fill_missing: bool, quiet: bool,
) -> None:
    """The map must touch the query at all; then the model's usual missing-landmark checks."""
    if mapping is not None and m.map_hits == 0:
        raise GengenError(
            f"the gene map {str(gene_map)!r} matches none of the {len(query_names)} genes of {source} (query genes "
            f"start {preview(query_names, 3)}; map ids start {preview(list(mapping), 3)}); its first column "
            "(or pr_gene_id) must hold the ids the query uses."
        )
    model.check_plan(m.plan, m.names, fill_missing, quiet=quiet)


def infer_file(
    model: GGANModel,
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    fill_missing: bool = False,
    chunk_size: int = 10_000,
    genes_in_rows: bool | None = None,
    fmt: str | None = None,
    gene_map: str | os.PathLike | None = None,
    layer: str | None = None,
    quiet: bool = True,
) -> dict:
    """Predict targets for every profile of a query file and write them to ``output``.

    Streams when the query is a samples x genes CSV/TSV/Parquet/h5ad/GCTX; otherwise (GCT, genes in
    rows) reads it whole. ``gene_map``: a CSV/TSV translating the query's gene ids to the model's names
    (see :func:`gengen.io.expression.read_gene_map`). Returns a summary: profiles, chunks, how landmarks
    were matched (and how many through the map), output path.

    Parameters
    ----------
    model : a trained :class:`GGANModel`.
    path : the query file.
    output : the predictions file (csv, tsv, parquet or h5ad).
    fill_missing : fill missing landmark genes with training means instead of refusing.
    chunk_size : profiles per streamed chunk.
    genes_in_rows : force the query's orientation (default: detect).
    fmt : force the query's format (default: from its content).
    gene_map : a table translating the query's gene ids to the model's.
    layer : an h5ad query's layer to read instead of ``X`` (an h5ad without ``X`` needs one).
    quiet : no status lines (the default for library calls).

    Returns
    -------
    A summary dict (profiles, chunks, how landmarks were matched, output path).
    """
    path, output = Path(path), Path(output)
    if not path.exists():
        raise GengenError(f"input file {str(path)!r} does not exist.")
    kind = input_format(path, fmt)
    out_kind = output_format(output)
    if layer is not None and kind != "h5ad":
        raise GengenError(f"--layer {layer!r} picks a layer of an h5ad input; {str(path)!r} is {kind}, which has none: "
                          "leave --layer out.")
    if chunk_size < 1:
        raise GengenError(f"chunk size must be positive, got {chunk_size}.")
    mapping = read_gene_map(gene_map) if gene_map is not None else None
    stream = kind in STREAMABLE and (genes_in_rows is not True or kind == "gctx")
    match = None
    if stream:
        try:
            names, var = _header(path, kind)
        except (OSError, ValueError, KeyError) as exc:
            raise GengenError(
                f"cannot read {str(path)!r} as {kind}: {str(exc).splitlines()[0][:200]}"
            ) from None
        if len(set(names)) != len(names):
            seen: set = set()
            dup = [n for n in names if n in seen or seen.add(n)]
            raise GengenError(
                f"{path}: duplicate gene names {preview(dup)}; make them unique or aggregate them."
            )
        match = _match(model, names, var, mapping, str(path))
        if match.plan.missing.all() and kind not in FIXED_ORIENTATION:
            stream = False  # maybe genes x samples: let read_expression detect the orientation
    n = n_chunks = 0
    query_obs = None
    if stream and kind == "h5ad":
        from gengen.io.h5ad import H5adRows, h5ad_frame

        with H5adRows(path, layer):  # no X and no --layer: say which layers there are, before any work
            pass
        if out_kind == "h5ad":
            query_obs = h5ad_frame(path, "obs")
    with atomic_path(output, protect=(path,)) as tmp:
        writer = _Writer(tmp, out_kind, model.targets)
        if stream:
            _check_match(model, match, names, mapping, gene_map, str(path), fill_missing, quiet)
            plan = match.plan
            used = sorted({i for c in plan.columns for i in c})
            take = used  # where the used genes sit in each chunk
            if kind == "gctx":  # read only the landmark genes, not all 12,328 of a GEO file
                from gengen.io.expression import iter_gctx

                local = {j: k for k, j in enumerate(used)}
                plan = LandmarkPlan([[local[j] for j in c] for c in plan.columns], plan.how)
                take = list(range(len(used)))
                chunks = iter_gctx(path, chunk_size, columns=used)
            else:
                chunks = _chunks(path, kind, chunk_size, names, layer)
            for sample_names, X in chunks:
                block = X[:, take]
                if not np.isfinite(block).all():
                    r, c = np.argwhere(~np.isfinite(block))[0]
                    raise GengenError(
                        f"{path}: missing or infinite value in sample {sample_names[r]!r}, gene "
                        f"{names[used[c]]!r}; impute or drop it first."
                    )
                writer.write(sample_names, model.predict_array(plan.apply(X, model.landmark_fill)))
                n += len(sample_names)
                n_chunks += 1
            if n == 0:
                raise GengenError(f"{path}: no profiles under the header; nothing to predict.")
        else:
            expected = list(model.landmarks)
            if mapping is not None:  # orientation detection looks for the query's ids of the landmarks
                wanted = set(model.landmarks)
                expected += [k for k, v in mapping.items() if v in wanted]
            adata = read_expression(path, genes_in_rows=genes_in_rows, fmt=fmt, expected_genes=expected, layer=layer,
                                    quiet=quiet)
            names = adata.var_names.astype(str).tolist()
            match = _match(model, names, adata.var, mapping, str(path))
            _check_match(model, match, names, mapping, gene_map, str(path), fill_missing, quiet)
            plan = match.plan
            X = plan.apply(np.asarray(adata.X), model.landmark_fill)
            for s in range(0, adata.n_obs, chunk_size):
                writer.write(
                    adata.obs_names[s : s + chunk_size].tolist(), model.predict_array(X[s : s + chunk_size])
                )
                n_chunks += 1
            n = adata.n_obs
            query_obs = adata.obs
        writer.close(model, query_obs)
    via = f", {match.via_map} through the gene map" if mapping is not None else ""
    log(
        f"predicted {len(model.targets)} targets for {n} profiles ({n_chunks} chunk(s), landmarks "
        f"by {plan.how}{via})",
        quiet,
    )
    return {
        "profiles": n,
        "chunks": n_chunks,
        "matched_by": plan.how,
        "landmarks_found": int((~plan.missing).sum()),
        "landmarks_via_map": match.via_map if mapping is not None else None,
        "output": str(output),
    }


def infer_chunked(model: GGANModel, data: ChunkedExpression, output: str | os.PathLike, *, fill_missing: bool = False,
                  quiet: bool = True) -> dict:
    """Predict targets for every chosen sample of a streamed query, appended block by block to a
    temporary output renamed into place at the end (as :func:`gengen.ggan.infer_file`)."""
    from gengen.runtime import Progress

    output = Path(output)
    out_kind = output_format(output)
    plan = model.plan(data.names, data.var)
    model.check_plan(plan, data.names, fill_missing, quiet=quiet)
    used = sorted({i for c in plan.columns for i in c})
    view = data.select([data.names[i] for i in used])
    local = {j: k for k, j in enumerate(used)}
    plan = LandmarkPlan([[local[j] for j in c] for c in plan.columns], plan.how)
    n = 0
    ids = data.obs_names
    with atomic_path(output, protect=(data.source,)) as tmp:
        writer = _Writer(tmp, out_kind, model.targets)
        with Progress(data.n_obs, "predicting targets", quiet) as bar:
            for pos, block in view.blocks():
                writer.write(ids[pos].tolist(), model.predict_array(plan.apply(block, model.landmark_fill)))
                n += len(pos)
                bar.update(len(pos))
        writer.close(model, data.obs() if out_kind == "h5ad" else None)
    log(f"predicted {len(model.targets)} targets for {n:,} profiles (streamed by blocks, landmarks by {plan.how})", quiet)
    return {"profiles": n, "chunks": None, "matched_by": plan.how, "landmarks_found": int((~plan.missing).sum()),
            "landmarks_via_map": None, "output": str(output)}
