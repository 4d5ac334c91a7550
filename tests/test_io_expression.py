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
