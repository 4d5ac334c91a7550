"""L1000 GCTX (HDF5, cmapPy layout) in, streamed inference, and --gene-map from Entrez ids to symbols."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error
from gengen.cli import app
from gengen.errors import GengenError
from gengen.io.expression import iter_gctx, read_expression, read_gctx, read_gene_map

runner = CliRunner()
N_L, N_T = 6, 5
LANDMARKS = [f"LM{i}" for i in range(N_L)]
ENTREZ = [str(5720 + 7 * i) for i in range(N_L)]  # Entrez-like ids of the landmarks, as GEO's GCTX holds them


def write_gctx(path, X_genes_by_samples, gene_ids, sample_ids, row_meta=None, col_meta=None, as_bytes=True,
               transpose=False):
    """A GCTX as cmapPy's write_gctx lays it out: /0/DATA/0/matrix is samples x genes (HDF5 row = sample)."""

    def ids(values):
        if as_bytes:
            return np.array([str(v).encode() for v in values], dtype="S")
        return np.array([str(v) for v in values], dtype=h5py.string_dtype())

    M = np.asarray(X_genes_by_samples, dtype=np.float32)
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("0/DATA/0/matrix", data=M if transpose else M.T, chunks=True)
        f.create_dataset("0/META/ROW/id", data=ids(gene_ids))
        f.create_dataset("0/META/COL/id", data=ids(sample_ids))
        for group, meta in (("ROW", row_meta or {}), ("COL", col_meta or {})):
            for name, values in meta.items():
                values = np.asarray(values)
                f.create_dataset(f"0/META/{group}/{name}", data=ids(values) if values.dtype.kind in "US" else values)
    return path


def write_gct13(path, X_genes_by_samples, gene_ids, sample_ids, row_meta, col_meta):
    """The same data as a GCT 1.3 text file (genes in rows, metadata columns/rows)."""
    rm, cm = list(row_meta), list(col_meta)
    lines = ["#1.3", f"{len(gene_ids)}\t{len(sample_ids)}\t{len(rm)}\t{len(cm)}",
             "\t".join(["id", *rm, *sample_ids])]
    for c in cm:
        lines.append("\t".join([c, *(["na"] * len(rm)), *map(str, col_meta[c])]))
    for i, g in enumerate(gene_ids):
        lines.append("\t".join([g, *(str(row_meta[r][i]) for r in rm), *(repr(float(v)) for v in X_genes_by_samples[i])]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _plate(n_genes=4, n_samples=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_genes, n_samples)).astype(np.float32) + 8
    genes = [str(100 + i) for i in range(n_genes)]
    samples = [f"CPC006_A549_6H:BRD-{i:03d}:10" for i in range(n_samples)]
    row_meta = {"pr_gene_symbol": [f"SYM{i}" for i in range(n_genes)]}
    col_meta = {"cell_id": ["A549" if i % 2 else "MCF7" for i in range(n_samples)],
                "pert_dose": np.linspace(0.1, 10, n_samples)}
    return X, genes, samples, row_meta, col_meta


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes-ids", "str-ids"])
def test_read_gctx_matches_gct(tmp_path, as_bytes):
    X, genes, samples, row_meta, col_meta = _plate()
    gctx = write_gctx(tmp_path / "p.gctx", X, genes, samples, row_meta, col_meta, as_bytes=as_bytes)
    gct = write_gct13(tmp_path / "p.gct", X, genes, samples, row_meta, col_meta)
    a, b = read_expression(gctx), read_expression(gct)
    assert a.shape == b.shape == (7, 4)  # samples x genes
    assert list(a.var_names) == list(b.var_names) == genes and list(a.obs_names) == list(b.obs_names) == samples
    np.testing.assert_allclose(a.X, X.T)
    np.testing.assert_allclose(a.X, b.X, rtol=1e-6)
    assert list(a.var["pr_gene_symbol"]) == list(b.var["pr_gene_symbol"])
    assert list(a.obs["cell_id"]) == list(b.obs["cell_id"])
    np.testing.assert_allclose(a.obs["pert_dose"].to_numpy(), b.obs["pert_dose"].astype(float))  # numbers stay numbers
    c = read_expression(gctx, gene_column="pr_gene_symbol")
    assert list(c.var_names) == row_meta["pr_gene_symbol"]
    # --format gctx for a file whose extension does not say
    (tmp_path / "p.h5").write_bytes(gctx.read_bytes())
    np.testing.assert_array_equal(read_expression(tmp_path / "p.h5", fmt="gctx").X, a.X)
    a.write_h5ad(tmp_path / "p.h5ad")  # decoded metadata is writable as is


def test_iter_gctx_chunks(tmp_path):
    X, genes, samples, row_meta, col_meta = _plate(n_genes=5, n_samples=10)
    path = write_gctx(tmp_path / "p.gctx", X, genes, samples, row_meta, col_meta)
    chunks = list(iter_gctx(path, chunk_size=3))
    assert [len(n) for n, _ in chunks] == [3, 3, 3, 1]
    assert all(b.dtype == np.float32 and b.shape[1] == 5 for _, b in chunks)
    assert [s for n, _ in chunks for s in n] == samples
    np.testing.assert_array_equal(np.concatenate([b for _, b in chunks]), read_gctx(path).X)
    # only some genes, read in row blocks smaller than a chunk (2 rows x 5 genes x 4 bytes = 40 bytes)
    cols = [4, 1]
    narrow = list(iter_gctx(path, chunk_size=3, columns=cols, read_bytes=40))
    assert [len(n) for n, _ in narrow] == [3, 3, 3, 1] and all(b.shape[1] == 2 for _, b in narrow)
    np.testing.assert_array_equal(np.concatenate([b for _, b in narrow]), read_gctx(path).X[:, cols])


def _gctx_error(path, *needles):
    with pytest.raises(GengenError) as exc:
        read_expression(path)
    for n in needles:
        assert n in str(exc.value), str(exc.value)


def test_gctx_errors(tmp_path):
    (tmp_path / "text.gctx").write_text("#1.3\n1\t1\t0\t0\nid\tS\nG\t1\n")
    assert read_expression(tmp_path / "text.gctx").shape == (1, 1)  # a text GCT misnamed .gctx: the content decides
    (tmp_path / "table.gctx").write_text("id\tG\nS\t1\n")
    _gctx_error(tmp_path / "table.gctx", "holds text, not an HDF5 file")
    with h5py.File(tmp_path / "other.gctx", "w") as f:
        f.create_dataset("X", data=np.zeros((2, 2)))
    _gctx_error(tmp_path / "other.gctx", "not a GCTX", "/0/DATA/0/matrix")
    X, genes, samples, _, _ = _plate()
    write_gctx(tmp_path / "short.gctx", X, genes[:3], samples)
    _gctx_error(tmp_path / "short.gctx", "7 x 4", "3 gene ids")
    write_gctx(tmp_path / "t.gctx", X, genes, samples, transpose=True)
    _gctx_error(tmp_path / "t.gctx", "genes x samples")


# ---------------------------------------------------------------- inference


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny GGAN (6 landmarks -> 5 targets) saved to disk, and a 23-profile query as CSV."""
    import anndata as ad

    from gengen.ggan import GGANModel, GGANRecipe

    d = tmp_path_factory.mktemp("gctx")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, N_L)).astype(np.float32)
    Y = 6 + np.tanh(X @ rng.standard_normal((N_L, N_T)) / 2)
    ref = ad.AnnData(
        np.c_[X + 8, Y].astype(np.float32),
        obs=pd.DataFrame(index=[f"s{i}" for i in range(120)]),
        var=pd.DataFrame(index=LANDMARKS + [f"TG{j}" for j in range(N_T)]),
    )
    recipe = GGANRecipe(hidden=16, epochs=3, batch_size=64, d_hidden=8, seed=0)
    GGANModel.train(ref, LANDMARKS, recipe=recipe, device="cpu", quiet=True).save(d / "model")
    q = pd.DataFrame(rng.standard_normal((23, N_L)) + 8, index=[f"q{i}" for i in range(23)], columns=LANDMARKS)
    q.index.name = "sample"
    q.to_csv(d / "query.csv")
    pd.DataFrame({"pr_gene_id": ENTREZ + ["999"], "pr_gene_symbol": LANDMARKS + ["OTHER"],
                  "pr_gene_title": ["t"] * (N_L + 1), "pr_is_lm": ["1"] * N_L + ["0"]}).to_csv(
        d / "GSE92742_Broad_LINCS_gene_info.txt", sep="\t", index=False)
    return d


def _model(work):
    from gengen.ggan import GGANModel

    return GGANModel.load(work / "model", device="cpu")


def _query(work) -> pd.DataFrame:
    return pd.read_csv(work / "query.csv", index_col=0)


def _reference_prediction(work) -> pd.DataFrame:
    from gengen.ggan import infer_file

    out = work / "expected.csv"
    if not out.exists():
        infer_file(_model(work), work / "query.csv", out, quiet=True)
    return pd.read_csv(out, index_col=0)


def test_infer_gctx_streams_like_csv(work, tmp_path):
    from gengen.ggan import infer_file

    q = _query(work)
    extra = pd.DataFrame(np.ones((len(q), 2)), index=q.index, columns=["NOTALANDMARK", "OTHER"])
    full = pd.concat([extra, q.iloc[:, ::-1]], axis=1)  # other order, extra genes
    path = write_gctx(tmp_path / "q.gctx", full.T.to_numpy(), full.columns, full.index)
    info = infer_file(_model(work), path, tmp_path / "p.parquet", chunk_size=7, quiet=True)
    assert info["chunks"] == 4 and info["profiles"] == 23 and info["matched_by"] == "name"
    expected = _reference_prediction(work)
    got = pd.read_parquet(tmp_path / "p.parquet")
    assert list(got.index) == list(expected.index) and list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4, atol=1e-4)


def test_infer_gctx_by_symbol_column(work, tmp_path):
    from gengen.ggan import infer_file

    q = _query(work)
    path = write_gctx(tmp_path / "q.gctx", q.T.to_numpy(), ENTREZ, q.index, {"pr_gene_symbol": LANDMARKS})
    info = infer_file(_model(work), path, tmp_path / "p.csv", chunk_size=10, quiet=True)
    assert info["matched_by"] == "var column 'pr_gene_symbol'" and info["landmarks_found"] == N_L
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv", index_col=0), _reference_prediction(work), atol=1e-4)


def _cli(*args):
    return runner.invoke(app, ["infer-targets", *map(str, args)])


def test_cli_gene_map_entrez_gctx(work, tmp_path):
    q = _query(work)
    path = write_gctx(tmp_path / "GSE92742_level3.gctx", q.T.to_numpy(), ENTREZ, q.index)
    res = _cli(path, "--model", work / "model", "--gene-map", work / "GSE92742_Broad_LINCS_gene_info.txt",
               "-o", tmp_path / "pred.parquet", "--chunk-size", "5")
    assert res.exit_code == 0, res.output
    assert f"{N_L}/{N_L} landmarks" in res.output and f"{N_L} through the gene map" in res.output
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "pred.parquet"), _reference_prediction(work), atol=1e-4)


@pytest.mark.parametrize("kind", ["csv", "parquet", "gct", "csv-genes-in-rows"])
def test_gene_map_every_format(work, tmp_path, kind):
    """The same map works for every input format (plain two-column CSV: first -> second column)."""
    from gengen.ggan import infer_file

    q = _query(work)
    q.columns = ENTREZ
    pd.DataFrame({"entrez": ENTREZ, "symbol": LANDMARKS, "note": "x"}).to_csv(tmp_path / "map.csv", index=False)
    if kind == "csv":
        q.to_csv(src := tmp_path / "q.csv")
    elif kind == "parquet":
        q.to_parquet(src := tmp_path / "q.parquet")
    elif kind == "gct":
        src = write_gct13(tmp_path / "q.gct", q.T.to_numpy(), ENTREZ, list(q.index), {"desc": ["d"] * N_L}, {})
    else:
        q.T.to_csv(src := tmp_path / "q_rows.csv")
    info = infer_file(_model(work), src, tmp_path / "p.csv", gene_map=tmp_path / "map.csv", quiet=True)
    assert info["landmarks_via_map"] == N_L
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv", index_col=0), _reference_prediction(work), atol=1e-4)


def test_read_gene_map_geo_columns(tmp_path):
    (tmp_path / "gi.txt").write_text("pr_gene_title\tpr_gene_id\tpr_gene_symbol\nx\t5720\tPSME1\ny\t466\tATF1\n")
    assert read_gene_map(tmp_path / "gi.txt") == {"5720": "PSME1", "466": "ATF1"}


def test_read_gene_map_gz_and_clash(tmp_path):
    import gzip

    with gzip.open(tmp_path / "m.tsv.gz", "wt") as fh:
        fh.write("ensembl\tsymbol\nENSG01\tA\nENSG02\tB\nENSG02\tB\n")
    assert read_gene_map(tmp_path / "m.tsv.gz") == {"ENSG01": "A", "ENSG02": "B"}  # repeated pairs are fine
    (tmp_path / "c.csv").write_text("id,symbol\n1,A\n1,B\n")
    with pytest.raises(GengenError, match="several names"):
        read_gene_map(tmp_path / "c.csv")


@pytest.mark.parametrize(
    "case",
    ["not-hdf5", "no-layout", "shape", "map-missing", "map-empty", "map-one-column", "map-no-match", "map-duplicate"],
)
def test_cli_errors_one_line_no_output(work, tmp_path, case):
    q = _query(work)
    query = write_gctx(tmp_path / "q.gctx", q.T.to_numpy(), ENTREZ, q.index)
    gene_map = work / "GSE92742_Broad_LINCS_gene_info.txt"
    needles = {
        "not-hdf5": ["holds text, not an HDF5 file"],
        "no-layout": ["not a GCTX", "/0/DATA/0/matrix"],
        "shape": ["sample ids", "gene ids"],
        "map-missing": ["does not exist"],
        "map-empty": ["empty"],
        "map-one-column": ["one column"],
        "map-no-match": ["matches none", "'5720'", "'A1'"],
        "map-duplicate": ["several query genes", "LM0"],
    }[case]
    if case == "not-hdf5":
        query.write_text("not hdf5\n")
    elif case == "no-layout":
        query.unlink()
        with h5py.File(query, "w") as f:
            f.create_dataset("0/DATA/matrix", data=np.zeros((2, 2)))
    elif case == "shape":
        write_gctx(query, q.T.to_numpy(), ENTREZ, list(q.index)[:-1])
    elif case == "map-missing":
        gene_map = tmp_path / "nope.txt"
    elif case == "map-empty":
        (gene_map := tmp_path / "empty.txt").write_text("")
    elif case == "map-one-column":
        (gene_map := tmp_path / "one.txt").write_text("entrez\n5720\n5727\n")
    elif case == "map-no-match":
        (gene_map := tmp_path / "other.csv").write_text("id,symbol\nA1,LM0\nA2,LM1\n")
    else:
        (gene_map := tmp_path / "dup.csv").write_text(f"id,symbol\n{ENTREZ[0]},LM0\n{ENTREZ[1]},LM0\n")
    out = tmp_path / "pred.csv"
    res = _cli(query, "--model", work / "model", "--gene-map", gene_map, "-o", out)
    assert_one_line_error(res, *needles)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".pred")]
