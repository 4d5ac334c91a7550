"""Expression IO: every format in, orientation detection, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gengen.errors import GengenError
from gengen.io.expression import read_expression, read_gct, read_gene_list, write_expression


def _frame(n=6, g=4):
    rng = np.random.default_rng(1)
    return pd.DataFrame(rng.random((n, g)), index=[f"TCGA-{i:02d}" for i in range(n)],
                        columns=["TP53", "XIST", "RPS4Y1", "KRT5"][:g])


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet", "h5ad"])
def test_round_trip_each_format(tmp_path, ext):
    df = _frame()
    import anndata as ad

    path = tmp_path / f"x.{ext}"
    write_expression(ad.AnnData(df.astype("float32")), path)
    a = read_expression(path)
    assert a.shape == (6, 4)
    assert list(a.var_names) == list(df.columns)
    np.testing.assert_allclose(a.X, df.to_numpy(), rtol=1e-6)


def test_genes_in_rows_detected_and_forced(tmp_path):
    df = _frame().T  # genes x samples
    path = tmp_path / "x.csv"
    df.to_csv(path)
    assert read_expression(path, quiet=True).shape == (6, 4)  # detected from the names
    assert read_expression(path, genes_in_rows=False).shape == (4, 6)  # forced
    plain = pd.DataFrame(np.ones((3, 2)), index=["a", "b", "c"], columns=["x", "y"])
    plain.to_csv(tmp_path / "p.csv")
    assert read_expression(tmp_path / "p.csv", genes_in_rows=True).shape == (2, 3)


def test_orientation_from_expected_genes(tmp_path):
    df = pd.DataFrame(np.ones((3, 5)), index=["g1", "g2", "g3"], columns=[f"c{i}" for i in range(5)])
    df.to_csv(tmp_path / "x.csv")
    a = read_expression(tmp_path / "x.csv", expected_genes=["g1", "g2", "g3"], quiet=True)
    assert list(a.var_names) == ["g1", "g2", "g3"]


def test_gct_13(tmp_path):
    text = (
        "#1.3\n2\t3\t1\t1\n"
        "id\tpr_gene_symbol\tS1\tS2\tS3\n"
        "cell\tna\tA375\tA375\tPC3\n"
        "200814_at\tPSME1\t1.5\t2.0\t3.0\n"
        "218597_s_at\tCISD1\t4.0\t5.0\t6.5\n"
    )
    path = tmp_path / "p.gct"
    path.write_text(text)
    a = read_gct(path)
    assert a.shape == (3, 2)
    assert list(a.var["pr_gene_symbol"]) == ["PSME1", "CISD1"]
    assert list(a.obs["cell"]) == ["A375", "A375", "PC3"]
    np.testing.assert_allclose(a.X[:, 1], [4.0, 5.0, 6.5])
    b = read_expression(path, gene_column="pr_gene_symbol")
    assert list(b.var_names) == ["PSME1", "CISD1"]


def test_gct_12(tmp_path):
    path = tmp_path / "p.gct"
    path.write_text("#1.2\n2\t2\nName\tDescription\tA\tB\nG1\td\t1\t2\nG2\td\t3\t4\n")
    a = read_expression(path)
    np.testing.assert_allclose(a.X, [[1, 3], [2, 4]])


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("sample,TP53,XIST\ns1,1.0,nan\ns2,2.0,3.0\n", "missing or infinite"),
        ("sample,TP53,XIST\ns1,1.0,inf\ns2,2.0,3.0\n", "missing or infinite"),
        ("sample,TP53,XIST\ns1,1.0,high\ns2,2.0,3.0\n", "non-numeric"),
        ("sample,TP53,TP53\ns1,1.0,2.0\ns2,2.0,3.0\n", "duplicate gene names"),
        ("sample\n", "no data"),
    ],
)
def test_bad_tables(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(GengenError, match=message):
        read_expression(path, genes_in_rows=False)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_text("junk")
    with pytest.raises(GengenError, match="Excel workbook: save the sheet as CSV"):
        read_expression(tmp_path / "x.xlsx")
    with pytest.raises(GengenError, match="does not exist"):
        read_expression(tmp_path / "nope.csv")


def test_binary_junk_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.h5ad"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(GengenError, match="is binary but not HDF5"):
        read_expression(path)


def test_gene_list_formats(tmp_path):
    (tmp_path / "a.txt").write_text("TP53\nXIST\n\nTP53\n")
    assert read_gene_list(tmp_path / "a.txt") == ["TP53", "XIST"]
    (tmp_path / "b.tsv").write_text("pr_id\tsymbol\n200814_at\tPSME1\n218597_s_at\tCISD1\n")
    assert read_gene_list(tmp_path / "b.tsv") == ["200814_at", "218597_s_at"]


def test_ensembl_versions_are_matched_and_ambiguous_orientation_is_announced(tmp_path, capsys):
    from gengen.io.expression import gene_key, match_by_key, mismatch_hint

    assert gene_key("ENSG00000141510.16") == "ENSG00000141510" and gene_key("TP53") == "TP53"
    assert gene_key("ENSMUSG00000059552.9") == "ENSMUSG00000059552" and gene_key("HLA-A.2") == "HLA-A.2"
    names = ["ENSG00000000003", "ENSG00000000005", "ENSG00000000005.2"]
    assert match_by_key(["ENSG00000000003.14", "ENSG00000000005.6"], names) == {"ENSG00000000003.14": 0}
    assert "case is ignored" in mismatch_hint(["Tp53", "Brca1"], ["TP53", "BRCA1", "EGFR"])
    assert mismatch_hint(["TP53"], ["EGFR"]) == ""
    # genes in rows, versions dropped in the new file: oriented and matched through the model's genes
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3), index=["ENSG1000001", "ENSG1000002", "ENSG1000003", "ENSG1000004"],
                      columns=["MCF7", "A549", "HELA"])
    p = tmp_path / "g.tsv"
    df.to_csv(p, sep="\t")
    a = read_expression(p, expected_genes=[f"ENSG100000{i}.3" for i in range(1, 5)], quiet=True)
    assert a.shape == (3, 4)
    # no model to go by, and names that do not settle it: the assumption is said out loud
    read_expression(p, quiet=False)
    assert "--genes-in-rows" in capsys.readouterr().err


def test_vae_align_ignores_ensembl_versions():
    import anndata as ad

    from gengen.vae.core import VAEModel
    from gengen.vae.model import TybaltVAE
    from gengen.vae.preprocess import MinMaxScaler
    from gengen.vae.train import VAERecipe

    genes = [f"ENSG0000000{i}.{i}" for i in range(4)]
    X = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    model = VAEModel(TybaltVAE(4, 2), genes, MinMaxScaler.fit(X), recipe=VAERecipe(), device="cpu")
    data = ad.AnnData(X[:, ::-1].copy(), var=pd.DataFrame(index=[g.split(".")[0] for g in genes][::-1]))
    np.testing.assert_array_equal(model.align(data, quiet=True), X)
    data.var_names = [g.split(".")[0].lower() for g in genes][::-1]
    with pytest.raises(GengenError, match="none of the model"):
        model.align(data, quiet=True)


def test_output_names_that_can_be_written(tmp_path):
    from gengen.io.expression import output_format

    for name, kind in (("a.csv.gz", "csv"), ("a.tsv.gz", "tsv"), ("A.H5AD", "h5ad"), ("run.v2.csv", "csv"),
                       ("a.pq", "parquet"), ("a.txt", "txt")):
        assert output_format(tmp_path / name) == kind
    for bad in ("a.gct", "a.gctx", "a.xlsx", "a"):
        with pytest.raises(GengenError, match=r"\.h5ad, \.csv, \.tsv or \.parquet"):
            output_format(tmp_path / bad)


# --- silent acceptance (issue 18, item 8): each now refused or said, in one line
def _typed(n=30):
    rng = np.random.default_rng(2)
    return pd.DataFrame(rng.uniform(2, 8, (n, 4)).astype(np.float32), index=[f"s{i}" for i in range(n)],
                        columns=["TP53", "XIST", "RPS4Y1", "KRT5"])


def test_parquet_dates_before_the_genes_are_annotations_not_nanoseconds(tmp_path, capsys):
    """A datetime column used to be read as nanoseconds (~1.6e18), which made the whole matrix look
    like counts (log2(x+1) for everything): now it is kept in obs, said in a note, and X is the genes."""
    df = _typed()
    df.insert(0, "collected", pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(df)), "D"))
    df.insert(1, "smoker", np.arange(len(df)) % 2 == 0)
    df.to_parquet(tmp_path / "x.parquet")
    a = read_expression(tmp_path / "x.parquet")
    assert list(a.var_names) == ["TP53", "XIST", "RPS4Y1", "KRT5"] and float(a.X.max()) < 8.01
    assert list(a.obs.columns) == ["collected", "smoker"] and a.obs["smoker"].iloc[0]
    err = capsys.readouterr().err
    assert "'collected', 'smoker' hold dates, true/false values, not expression values" in err


@pytest.mark.parametrize("column, kind", [
    (pd.Series(pd.date_range("2020-01-01", periods=30)), "dates"),
    (pd.Series(np.arange(30) % 3 == 0), "true/false values"),
    (pd.Series(pd.Categorical(["lo", "hi"] * 15)), "categories"),
    (pd.Series(["x"] * 30), "text"),
])
def test_parquet_non_numeric_column_among_the_genes_is_refused_by_name(tmp_path, column, kind):
    df = _typed()
    df.insert(2, "odd", column.array)
    df.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(GengenError, match=rf"column 'odd' \(#3\) holds {kind}, not expression values"):
        read_expression(tmp_path / "x.parquet", quiet=True)


def test_latin1_gene_names_keep_their_letters(tmp_path, capsys):
    """A table saved as Latin-1 / Windows-1252 used to give genes named 'M\\ufffdller': now it reads
    as such, in either orientation, plain or gzipped, with a one-line note."""
    import gzip

    df = _typed()
    df.columns = ["GÄB1", "Müller", "Ñ6", "KRT5"]
    (tmp_path / "x.csv").write_bytes(df.to_csv().encode("latin-1"))
    (tmp_path / "t.tsv.gz").write_bytes(gzip.compress(df.T.to_csv(sep="\t").encode("cp1252")))
    for name in ("x.csv", "t.tsv.gz"):
        a = read_expression(tmp_path / name, genes_in_rows=name.startswith("t"))
        assert list(a.var_names) == ["GÄB1", "Müller", "Ñ6", "KRT5"], name
        err = capsys.readouterr().err
        assert "is not UTF-8 text: read as Windows-1252 / Latin-1 (e.g. 'GÄB1')" in err, err


def test_a_stray_latin1_name_deep_in_a_utf8_file_is_decoded_too(tmp_path):
    """Past the first MiB (where the encoding is judged), a Latin-1 byte is read as Windows-1252, not U+FFFD."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(60_000)] + ["Müller"]
    body = "".join(f"{g}\t{rng.uniform(1, 9):.4f}\t{rng.uniform(1, 9):.4f}\n" for g in genes[:-1])
    data = ("gene\tsample_1\tsample_2\n" + body).encode() + "Müller\t1.0\t2.0\n".encode("latin-1")
    assert len(data) > (1 << 20)
    (tmp_path / "x.tsv").write_bytes(data)
    a = read_expression(tmp_path / "x.tsv", genes_in_rows=True, quiet=True)
    assert a.var_names[-1] == "Müller" and a.shape == (2, 60_001)


def test_empty_header_cell_is_refused_with_its_position(tmp_path):
    """An empty header cell used to become a gene named ''."""
    (tmp_path / "x.csv").write_text("sample,TP53,,KRT5\ns1,1,2,3\ns2,4,5,6\n")
    with pytest.raises(GengenError, match=r"field #3 of the header is empty"):
        read_expression(tmp_path / "x.csv", quiet=True)
    (tmp_path / "r.csv").write_text("TP53,,KRT5\ns1,1,2,3\ns2,4,5,6\n")  # R's write.table: no row-name field
    with pytest.raises(GengenError, match=r"field #2 of the header is empty"):
        read_expression(tmp_path / "r.csv", quiet=True)
    (tmp_path / "t.tsv").write_text("gene\tTCGA-01\tTCGA-02\nTP53\t1\t2\n\t3\t4\nKRT5\t5\t6\n")  # genes in rows
    with pytest.raises(GengenError, match=r"data row #2 has an empty gene name"):
        read_expression(tmp_path / "t.tsv", genes_in_rows=True, quiet=True)
    import anndata as ad

    ad.AnnData(np.ones((3, 2), np.float32), var=pd.DataFrame(index=["TP53", ""])).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(GengenError, match=r"gene #2 has an empty gene name"):
        read_expression(tmp_path / "x.h5ad", quiet=True)


def test_gengen_io_has_no_import_circle():
    """Modules of gengen.io import each other one way only, function-level (lazy) imports included: a reader
    of one format never reaches back up to read_expression / open_expression."""
    import ast
    from pathlib import Path

    import gengen.io

    folder = Path(gengen.io.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gengen.io"):
                parts = node.module.split(".")
                if len(parts) > 2:
                    deps.add(parts[2])
                else:  # from gengen.io import x
                    deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith("gengen.io."))
        graph[name] = deps - {name}

    def reaches(start, goal, seen):
        return any(d == goal or (d not in seen and not seen.add(d) and reaches(d, goal, seen)) for d in graph[start])

    circles = sorted(name for name in modules if reaches(name, name, set()))
    assert not circles, f"import circle among gengen.io modules: {circles}"
