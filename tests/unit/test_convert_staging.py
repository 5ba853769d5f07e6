"""convert stages the raw rows of text files once as Parquet (pipeline.staged_raw): the same FOCUS rows
and checks as reading the files in every pass, and nothing left beside the output."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from focus_platform import pipeline
from tests.conftest import FIXTURES

TEXT_DELIVERIES = {
    "oci csv": [FIXTURES / "oci" / "focus_converters_reports_cost-csv_0000000030000269.csv"],
    "gcp flattened csv": [FIXTURES / "gcp" / "koku_202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv"],
    "azure actual + amortized": [FIXTURES / "azure" / "ftk_EA_ActualCost_Small.csv",
                                 FIXTURES / "azure" / "ftk_EA_AmortizedCost_Small.csv"],
    "azure with quarantined rows": [FIXTURES / "azure" / "koku_azure_version_2.csv"],
}


def _rows(path) -> pl.DataFrame:
    return pl.read_parquet(path).drop("x_IngestedAt").sort("x_RowId")


@pytest.mark.parametrize("name", sorted(TEXT_DELIVERIES))
def test_staged_conversion_equals_reading_the_files_in_every_pass(name, tmp_path, monkeypatch):
    files = [str(f) for f in TEXT_DELIVERIES[name]]
    (tmp_path / "staged").mkdir()
    staged = pipeline.convert_files(files, str(tmp_path / "staged" / "out.parquet"))
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == sorted(
        ["out.parquet", "out.focus-metadata.json"] + (["out.quarantine.parquet"] if staged.quarantined else [])), \
        "the staged raw rows are removed after the conversion"
    monkeypatch.setattr(pipeline, "staged_raw", lambda raw, paths, stage: raw)
    (tmp_path / "plain").mkdir()
    plain = pipeline.convert_files(files, str(tmp_path / "plain" / "out.parquet"))
    assert_frame_equal(_rows(tmp_path / "staged" / "out.parquet"), _rows(tmp_path / "plain" / "out.parquet"))
    assert (staged.checks.totals, staged.checks.rows, staged.quarantined, staged.checks.problems) == \
        (plain.checks.totals, plain.checks.rows, plain.quarantined, plain.checks.problems)
    if staged.quarantined:
        assert_frame_equal(_rows(tmp_path / "staged" / "out.quarantine.parquet"),
                           _rows(tmp_path / "plain" / "out.quarantine.parquet"))


def test_a_failed_conversion_leaves_no_staged_rows(tmp_path):
    bad = tmp_path / "report.csv"
    source = FIXTURES / "oci" / "focus_converters_reports_cost-csv_0000000030000269.csv"
    bad.write_bytes(source.read_bytes() + b'"unterminated\n')
    out = tmp_path / "out" / "focus.parquet"
    out.parent.mkdir()
    try:
        pipeline.convert_files([str(bad)], str(out))
    except pipeline.SourceFormatError:
        pass
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
