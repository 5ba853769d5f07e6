"""Every AWS sample converts with 0 converter defects and exact conservation."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from focus_platform.pipeline import convert_files
from focus_platform.sources import SourceFormatError
from tests.conftest import AWS_SAMPLES, FIXTURES, WORKSHOP_OCT


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    out_dir = tmp_path_factory.mktemp("converted")
    return {name: convert_files([str(path)], str(out_dir / f"{name}.parquet")) for name, path in AWS_SAMPLES.items()}


@pytest.mark.parametrize("name", sorted(AWS_SAMPLES))
def test_sample_converts_without_defects(converted, name):
    result = converted[name]
    checks = result.checks
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == []
    for row in checks.conservation:
        assert row.billed_ok and row.amortized_ok, row
    assert checks.rows.ok
    assert checks.duplicate_row_ids == 0
    assert result.rows_out > 0


@pytest.mark.parametrize("name", sorted(AWS_SAMPLES))
def test_output_is_typed_focus(converted, name):
    schema = pl.read_parquet_schema(converted[name].out)
    assert schema["BilledCost"] == pl.Decimal(38, 12)
    assert schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")
    assert list(schema)[:57] == sorted(list(schema)[:57], key=lambda c: list(schema).index(c))
    assert not [c for c in schema if not c.startswith("x_") and c[0].islower()]


def test_workshop_october_totals(converted):
    """The acceptance totals of the October 2018 workshop CUR (float source, cast to Decimal)."""
    df = pl.read_parquet(converted["workshop-oct-2018-parquet"].out)
    billed, effective = df["BilledCost"].sum(), df["EffectiveCost"].sum()
    assert abs(billed - Decimal("4064.4831315379")) <= Decimal("0.000001")
    assert abs(effective - Decimal("4195.9571093179")) <= Decimal("0.000001")
    # DiscountedUsage is amortized, RIFee unused parts became 3 Unused rows
    unused = df.filter(pl.col("CommitmentDiscountStatus") == "Unused")
    assert unused.height == 3 and unused["BilledCost"].sum() == 0
    assert unused["EffectiveCost"].sum() == Decimal("48.995560790000")  # unused upfront + unused recurring of 3 RIs


def test_workshop_provider_data_gaps_are_counted(converted):
    gaps = converted["workshop-oct-2018-parquet"].checks.conformance.gaps
    assert gaps["R-SubAccountName-1"] == 119310  # legacy CUR has no account names
    assert gaps["R-PricingUnit-1"] == 22394  # pricing/unit empty in the export


def test_malformed_cur2_csv_is_refused_with_the_file_named(tmp_path):
    path = FIXTURES / "aws-samples/cur_anon_sample_cur2.csv"
    with pytest.raises(SourceFormatError, match="cur_anon_sample_cur2.csv.*data row 1 has 126 fields"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_raw_parquet_unused_row_source_is_traceable(converted):
    df = pl.read_parquet(converted["workshop-oct-2018-parquet"].out)
    unused = df.filter(pl.col("CommitmentDiscountStatus") == "Unused")
    assert unused["x_RowId"].str.ends_with("~unused").all()
    assert unused["x_SourceChanges"].list.join(" ").str.contains("derived: unused commitment of RIFee").all()
    assert WORKSHOP_OCT.name in unused["x_SourceFile"][0]
