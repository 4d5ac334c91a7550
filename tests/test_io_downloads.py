"""Files as users download them (issue 10, item 5) and damaged downloads (issue 11).

Inputs are recognised by content when the name does not say: UCSC Xena's ``HiSeqV2.gz`` (a gzipped TSV,
genes in rows, no .tsv) and ``PANCAN_clinicalMatrix`` (a TSV without extension), GEO's
``GSExxxx_series_matrix.txt.gz`` and LINCS's ``GSE92742_Broad_LINCS_gene_info.txt``, HDF5 as h5ad or GCTX
by layout, Parquet by its magic bytes, the delimiter by sniffing. A truncated or corrupted compressed file
is a one-line error naming the file, whichever reader meets it, never click's bare "aborted".
"""

from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import assert_one_line_error, make_toy_expression
from gengen.cli import app
from gengen.errors import GengenError
from gengen.io.expression import (
    attach_annotations,
    input_format,
    output_format,
    read_expression,
    read_gene_list,
    read_gene_map,
)

runner = CliRunner()
TRAIN = ["--latent", "3", "--epochs", "4", "--batch-size", "20", "--device", "cpu", "--threads", "1", "-q"]
DISEASES = {"a": "breast invasive carcinoma", "b": "skin cutaneous melanoma", "c": "lung adenocarcinoma"}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _cut(path, out, fraction=0.5):
    raw = path.read_bytes()
    out.write_bytes(raw[: int(len(raw) * fraction)])
    return out


@pytest.fixture(scope="module")
def xena(tmp_path_factory):
    """HiSeqV2.gz and PANCAN_clinicalMatrix as Xena serves them, from the 120 x 60 toy cohort."""
    d = tmp_path_factory.mktemp("xena")
    a = make_toy_expression()
    barcodes = [f"TCGA-{i % 90 + 10:02d}-{1000 + i:04d}-01" for i in range(a.n_obs)]
    X = pd.DataFrame(a.X.T, index=a.var_names, columns=barcodes)  # genes in rows, as Xena writes it
    X.index.name = "sample"
    with gzip.open(d / "HiSeqV2.gz", "wt") as fh:
        X.to_csv(fh, sep="\t", float_format="%.4f")
    clinical = pd.DataFrame(
        {"_primary_disease": [DISEASES[g] for g in a.obs["group"]], "gender": ["FEMALE", "MALE"] * 60,
         "age_at_initial_pathologic_diagnosis": [str(40 + i % 30) if i % 7 else "" for i in range(a.n_obs)]},
        index=pd.Index(barcodes, name="sampleID"),
    )
    extra = pd.DataFrame({"_primary_disease": ["glioblastoma"], "gender": ["MALE"],
                          "age_at_initial_pathologic_diagnosis": ["61"]}, index=pd.Index(["TCGA-99-9999-01"], name="sampleID"))
    pd.concat([extra, clinical.iloc[::-1]]).to_csv(d / "PANCAN_clinicalMatrix", sep="\t")
    return d, a, barcodes


def test_xena_downloads_read_as_they_are(xena, capsys):
    d, a, barcodes = xena
    assert input_format(d / "HiSeqV2.gz") == "tsv" and input_format(d / "PANCAN_clinicalMatrix") == "tsv"
    got = read_expression(d / "HiSeqV2.gz")
    assert "row names look like genes" in capsys.readouterr().err
    assert list(got.obs_names) == barcodes and list(got.var_names) == list(a.var_names)
    np.testing.assert_allclose(got.X, a.X, atol=5e-5)  # 4 decimals written
    assert got.X.dtype == np.float32 and got.X.flags["C_CONTIGUOUS"]
    labelled = attach_annotations(got, d / "PANCAN_clinicalMatrix", quiet=True)
    assert list(labelled.obs["_primary_disease"]) == [DISEASES[g] for g in a.obs["group"]]


def test_readme_tybalt_example_through_the_cli(xena, tmp_path):
    d, a, _ = xena
    out = tmp_path / "tcga_vae.h5ad"
    r = run("vae-encode", d / "HiSeqV2.gz", "-o", out, *TRAIN)
    assert r.exit_code == 0, r.output
    import anndata as ad

    emb = ad.read_h5ad(out)
    assert emb.obsm["X_vae"].shape == (120, 3)
    r = run("vae-features", "--model", "HiSeqV2-vae", "-o", tmp_path / "features",  # the model vae-encode stored
            "--data", d / "HiSeqV2.gz", "--labels", d / "PANCAN_clinicalMatrix", "--by", "_primary_disease", "-q")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "features" / "separating__primary_disease.tsv", sep="\t")
    assert set(table["class"]) == set(DISEASES.values())


def _series_matrix(n_samples=6, n_probes=25, seed=0):
    rng = np.random.default_rng(seed)
    gsm = [f"GSM{100 + i}" for i in range(n_samples)]
    probes = [f"{1000 + i}_at" for i in range(n_probes)] + ["AFFX-BioB-5_at"]
    values = np.round(rng.normal(7, 2, (len(probes), n_samples)), 3)

    def line(key, vals):
        return "\t".join([key] + [f'"{v}"' for v in vals]) + "\n"

    text = ('!Series_title\t"Bladder tumours"\n!Series_geo_accession\t"GSE12345"\n!Series_platform_id\t"GPL96"\n\n'
            + line("!Sample_title", [f"tumour {i}" for i in range(n_samples)])
            + line("!Sample_geo_accession", gsm)
            + line("!Sample_source_name_ch1", ["bladder"] * n_samples)
            + line("!Sample_characteristics_ch1", [f"outcome: {'T2+' if i % 2 else 'sTa'}" for i in range(n_samples)])
            + line("!Sample_characteristics_ch1", [f"batch: {i // 3}" for i in range(n_samples)])
            + "!series_matrix_table_begin\n"
            + "\t".join(['"ID_REF"'] + [f'"{g}"' for g in gsm]) + "\n"
            + "".join("\t".join([f'"{p}"'] + [f"{v}" for v in row]) + "\n" for p, row in zip(probes, values))
            + "!series_matrix_table_end\n")
    return text, gsm, probes, values


def test_geo_series_matrix_reads_with_sample_annotations(tmp_path):
    text, gsm, probes, values = _series_matrix()
    path = tmp_path / "GSE12345_series_matrix.txt.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    assert input_format(path) == "series-matrix"
    a = read_expression(path, quiet=True)
    assert list(a.obs_names) == gsm and list(a.var_names) == probes
    np.testing.assert_allclose(a.X, values.T, atol=1e-6)
    assert list(a.obs["outcome"]) == ["sTa", "T2+"] * 3 and list(a.obs["batch"]) == ["0"] * 3 + ["1"] * 3
    assert list(a.obs["title"])[:2] == ["tumour 0", "tumour 1"] and set(a.obs["source_name_ch1"]) == {"bladder"}
    # the same file as --labels: its !Sample_ lines joined by GSM id
    plain = a.copy()
    plain.obs = plain.obs[[]]
    assert list(attach_annotations(plain, path, quiet=True).obs["outcome"]) == ["sTa", "T2+"] * 3
    empty = tmp_path / "GSE2_series_matrix.txt"
    empty.write_text(text.split('"ID_REF"')[0] + "!series_matrix_table_end\n")
    with pytest.raises(GengenError, match="holds no expression values .* supplementary"):
        read_expression(empty)


def test_lincs_gene_info_plain_and_gzipped(tmp_path):
    table = pd.DataFrame({"pr_gene_id": ["5720", "466", "6009"], "pr_gene_symbol": ["PSME1", "ATF1", "RHEB"],
                          "pr_gene_title": ["proteasome activator 1", "activating factor 1", "Ras homolog"],
                          "pr_is_lm": ["1", "1", "1"], "pr_is_bing": ["1", "1", "1"]})
    plain = tmp_path / "GSE92742_Broad_LINCS_gene_info.txt"
    table.to_csv(plain, sep="\t", index=False)
    with gzip.open(tmp_path / "GSE92742_Broad_LINCS_gene_info.txt.gz", "wt") as fh:
        table.to_csv(fh, sep="\t", index=False)
    expected = {"5720": "PSME1", "466": "ATF1", "6009": "RHEB"}
    assert read_gene_map(plain) == expected
    assert read_gene_map(tmp_path / "GSE92742_Broad_LINCS_gene_info.txt.gz") == expected
    no_ext = tmp_path / "landmarks"
    with gzip.open(no_ext, "wt") as fh:  # gzipped, and the name does not say so
        fh.write("pr_gene_symbol pr_gene_id\nPSME1 5720\nATF1 466\n")
    assert read_gene_list(no_ext) == ["PSME1", "ATF1"]


def _write_gctx(path, X, genes, samples):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("/0/DATA/0/matrix", data=X)
        f.create_dataset("/0/META/ROW/id", data=np.array(genes, dtype="S"))
        f.create_dataset("/0/META/COL/id", data=np.array(samples, dtype="S"))


def test_binary_kinds_by_content_whatever_the_name(tmp_path):
    a = make_toy_expression()
    a.write_h5ad(tmp_path / "expr")  # h5ad without extension
    _write_gctx(tmp_path / "plate.gctx", a.X, list(a.var_names), list(a.obs_names))
    _write_gctx(tmp_path / "plate", a.X, list(a.var_names), list(a.obs_names))  # GCTX without extension
    a.to_df().to_parquet(tmp_path / "table")  # Parquet without extension
    for name, kind in (("expr", "h5ad"), ("plate.gctx", "gctx"), ("plate", "gctx"), ("table", "parquet")):
        assert input_format(tmp_path / name) == kind
        got = read_expression(tmp_path / name)
        assert list(got.var_names) == list(a.var_names) and list(got.obs_names) == list(a.obs_names)
        np.testing.assert_array_equal(got.X, a.X)
    with gzip.open(tmp_path / "plate.gctx.gz", "wb") as fh:
        fh.write((tmp_path / "plate.gctx").read_bytes())
    with pytest.raises(GengenError, match="gzip-compressed HDF5 file.*decompress it first"):
        read_expression(tmp_path / "plate.gctx.gz")


@pytest.mark.parametrize(
    "name, write",
    [
        ("tsv_named.csv", lambda df, p: df.to_csv(p, sep="\t")),
        ("comma_named.txt", lambda df, p: df.to_csv(p)),
        ("spaces", lambda df, p: df.to_csv(p, sep=" ")),
        ("r_write_table.txt", lambda df, p: df.to_csv(p, sep=" ", index_label=False)),  # header one field short
        ("tabs_no_ext.bz2", lambda df, p: p.write_bytes(bz2.compress(df.to_csv(sep="\t").encode()))),
        ("comma.xz", lambda df, p: p.write_bytes(lzma.compress(df.to_csv().encode()))),
        ("csv_gz_no_suffix", lambda df, p: p.write_bytes(gzip.compress(df.to_csv().encode()))),
    ],
)
def test_delimiter_and_compression_sniffed(tmp_path, name, write):
    a = make_toy_expression()
    df = a.to_df().round(4)
    write(df, tmp_path / name)
    got = read_expression(tmp_path / name, quiet=True)
    assert list(got.obs_names) == list(df.index) and list(got.var_names) == list(df.columns)
    np.testing.assert_allclose(got.X, df.to_numpy(), atol=1e-6)


def test_outputs_still_need_an_extension_and_format_still_forces(tmp_path):
    with pytest.raises(GengenError, match="unknown output extension"):
        output_format(tmp_path / "HiSeqV2")
    assert output_format(tmp_path / "emb.csv.gz") == "csv"
    gct = tmp_path / "plate.txt"
    gct.write_text("#1.2\n2\t3\nName\tDescription\tS1\tS2\tS3\nG1\td\t1\t2\t3\nG2\td\t4\t5\t6\n")
    assert read_expression(gct).shape == (3, 2)  # GCT recognised from its first line, whatever the name
    with pytest.raises(GengenError):
        read_expression(gct, fmt="tsv")  # forced: read as a plain table, whose '#1.2' header has no data rows


def test_annotation_and_table_text_errors(tmp_path, xena):
    d, a, _ = xena
    got = read_expression(d / "HiSeqV2.gz", quiet=True)
    (tmp_path / "clinical.parquet.bin").write_bytes(b"\x00\x01junk" * 100)
    with pytest.raises(GengenError, match="is binary"):
        attach_annotations(got, tmp_path / "clinical.parquet.bin")
    pd.read_csv(d / "PANCAN_clinicalMatrix", sep="\t").to_parquet(tmp_path / "clinical")  # Parquet, no extension
    assert "gender" in attach_annotations(got, tmp_path / "clinical", quiet=True).obs


# ------------------------------------------------------------------ damaged downloads (issue 11)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, xena):
    """Each gzip reader's input, whole and cut in half (and one with flipped bytes)."""
    d = tmp_path_factory.mktemp("damaged")
    xd, a, barcodes = xena
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(4000)]
    with gzip.open(d / "x.fa.gz", "wt") as fh:
        fh.write("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    big = pd.DataFrame(rng.normal(6, 2, (400, 300)).round(4), index=[f"s{i}" for i in range(400)],
                       columns=[f"G{j}" for j in range(300)])
    with gzip.open(d / "x.csv.gz", "wt") as fh:
        big.to_csv(fh)
    with gzip.open(d / "genes.txt.gz", "wt") as fh:
        fh.write("".join(f"GENE{i}\n" for i in range(60000)))
    with gzip.open(d / "map.tsv.gz", "wt") as fh:
        fh.write("id\tsymbol\n" + "".join(f"{i}\tGENE{i}\n" for i in range(60000)))
    with gzip.open(d / "clinical.tsv.gz", "wt") as fh:
        fh.write("sampleID\tx\n" + "".join(f"{b}\t{i}\n" for i, b in enumerate(barcodes * 500)))
    with gzip.open(d / "scores.csv.gz", "wt") as fh:
        fh.write("id,signal\n" + "".join(f"s{i},{rng.normal():.6f}\n" for i in range(60000)))
    for name in ("x.fa.gz", "x.csv.gz", "genes.txt.gz", "map.tsv.gz", "clinical.tsv.gz", "scores.csv.gz"):
        _cut(d / name, d / f"t_{name}")
    _cut(xd / "HiSeqV2.gz", d / "HiSeqV2.gz")
    flipped = bytearray((d / "x.csv.gz").read_bytes())
    flipped[len(flipped) // 2 : len(flipped) // 2 + 64] = bytes(64)
    (d / "flipped.csv.gz").write_bytes(bytes(flipped))
    return d, got_expression(xd)


def got_expression(xd):
    return read_expression(xd / "HiSeqV2.gz", quiet=True)


@pytest.mark.parametrize(
    "reader, name",
    [
        ("fasta", "t_x.fa.gz"),
        ("expression", "t_x.csv.gz"),
        ("expression", "HiSeqV2.gz"),
        ("expression", "flipped.csv.gz"),
        ("gene list", "t_genes.txt.gz"),
        ("gene map", "t_map.tsv.gz"),
        ("annotations", "t_clinical.tsv.gz"),
        ("scores", "t_scores.csv.gz"),
    ],
)
def test_every_gzip_reader_names_a_truncated_file(damaged, reader, name):
    from gengen.dna.predictor.training import read_labels
    from gengen.io.sequences import read_fasta_records

    d, expression = damaged
    path = d / name
    call = {
        "fasta": lambda: read_fasta_records(path),
        "expression": lambda: read_expression(path, quiet=True),
        "gene list": lambda: read_gene_list(path),
        "gene map": lambda: read_gene_map(path),
        "annotations": lambda: attach_annotations(expression, path, quiet=True),
        "scores": lambda: read_labels(path, ["s0"]),
    }[reader]
    with pytest.raises(GengenError, match=f"'{path}' is truncated or corrupted"):
        call()


def test_cli_truncated_gzip_is_one_line_exit_2_not_aborted(damaged, tmp_path):
    d, _ = damaged
    r = run("dna-score", d / "t_x.fa.gz", "--motif", "MA0139.2", "-o", tmp_path / "s.tsv", "-q")
    assert_one_line_error(r, "t_x.fa.gz", "truncated or corrupted")
    r = run("vae-encode", d / "t_x.csv.gz", "-o", tmp_path / "e.h5ad", *TRAIN)
    assert_one_line_error(r, "t_x.csv.gz", "truncated or corrupted")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "gengen_home") == []
    assert not any((tmp_path / "gengen_home" / "models").iterdir())  # the store folder claimed for its model is released


@pytest.mark.parametrize(
    "error",
    [EOFError("Compressed file ended before the end-of-stream marker was reached"),
     gzip.BadGzipFile("CRC check failed"), __import__("zlib").error("invalid stored block lengths")],
)
def test_a_decompression_error_escaping_a_reader_is_still_one_line(monkeypatch, tmp_path, error):
    """Click maps EOFError to Abort ('gengen: aborted', exit 1); the app boundary must not let it, nor
    let gzip's and zlib's own errors end in a traceback."""
    import gengen.io.sequences

    def broken(path, **_):
        raise error

    monkeypatch.setattr(gengen.io.sequences, "read_fasta_records", broken)
    (tmp_path / "x.fa").write_text(">a\nACGT\n")
    r = run("dna-score", tmp_path / "x.fa", "--motif", "MA0139.2", "-q")
    assert_one_line_error(r, "truncated or corrupted")
    assert "aborted" not in r.output
