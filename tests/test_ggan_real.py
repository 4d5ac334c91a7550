"""GGAN on real data: bladderbatch (HG-U133A) probe-mapped to D-GEX genes, then an L1000 GCT plate."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import shared_file
from gengen.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_bladderbatch_dgex_map_to_l1000_plate(tmp_path):
    ref = shared_file("expression", "bladderbatch.h5ad")
    lmap = shared_file("ggan", "dgex_landmarks_943.tsv")
    tmap = shared_file("ggan", "dgex_targets_9520.tsv")
    plate = shared_file("ggan", "l1000_level3_plate_978x377.gct")
    few = tmp_path / "targets_300.tsv"  # a slice of the D-GEX target map keeps the test quick
    few.write_text("".join(tmap.read_text().splitlines(keepends=True)[:300]))
    model = tmp_path / "model"
    res = runner.invoke(
        app,
        [
            "ggan-train",
            str(ref),
            "--landmarks",
            str(lmap),
            "--targets",
            str(few),
            "-o",
            str(model),
            "--hidden",
            "128",
            "--epochs",
            "30",
            "--d-hidden",
            "64",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "943 landmark and 300 target genes" in res.output
    res = runner.invoke(
        app, ["infer-targets", str(plate), "--model", str(model), "-o", str(tmp_path / "p.parquet")]
    )
    assert res.exit_code == 0, res.output
    assert "943/943 landmarks" in res.output
    pred = pd.read_parquet(tmp_path / "p.parquet")
    assert pred.shape == (377, 300) and pred.notna().all().all()
