"""Every OCI sample converts with 0 converter defects and exact conservation, through
``convert_files`` and through the landing zone (discover → raw_oci_cost → focus_costs); the official
focus-validator has no failing leaf rule outside the allow-list (tests marked ``validator``)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.conformance import official_validator as ov
from focus_platform.generate.oci import generate_oci
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.pipeline import (
    FOCUS_TABLE,
    convert_files,
    ingest_delivery,
    publish_focus,
)
from focus_platform.warehouse.delta import Warehouse
from tests.conftest import FIXTURES, SAMPLE_LANDING

FC_SAMPLE_NAME = "focus_converters_reports_cost-csv_0000000030000269.csv"
FC_SAMPLE = FIXTURES / "oci" / FC_SAMPLE_NAME
DEMO = SAMPLE_LANDING / "oci-cost"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaadsyhydp66mjpsohqocfcgzaabtrit47ex2igzu2j6lhuadrrglca"
# The sample's own total: the exact sum of its cost/myCost text is 2.523589325400648027; each value
# read into Decimal(38, 12) (some have 18 decimals) sums to this, on both sides of the conservation check.
FC_SAMPLE_BILLED = Decimal("2.523589325430")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> list[Path]:
    """A small generated month: 2 tenancies (USD, EUR), overage, corrections, free tier, 2 increments."""
    summary = generate_oci(tmp_path_factory.mktemp("gen"), rows=3_000, tenancies=2, increments=2, seed=5)
    return summary.data_files


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("oci-converted")
    return convert_files([str(FC_SAMPLE)], str(out / "fc.parquet"))


def test_fc_sample_converts_without_defects_and_conserves_cost(converted):
    checks = converted.checks
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.conformance.gaps == {}
    assert checks.problems == []
    assert (converted.rows_in, converted.rows_out, converted.quarantined) == (506, 506, 0)
    (row,) = checks.conservation
    assert (row.billing_account, row.billing_period, row.currency) == (TENANCY, "2023-11", "USD")
    assert row.raw_billed == row.focus_billed == FC_SAMPLE_BILLED and row.quarantined_billed == 0
    assert row.raw_amortized == row.focus_effective == FC_SAMPLE_BILLED
    assert checks.rates["M5_sku_mapping_failure_rate"] == 0.0


def test_fc_sample_focus_values(converted):
    df = pl.read_parquet(converted.out)
    assert df["BilledCost"].null_count() == 0  # focus_converters wrote null BilledCost on all 506 rows
    assert set(df["ServiceCategory"]) == {"Compute", "Storage", "Databases", "Networking",
                                          "Management and Governance", "Analytics"}
    assert df["ChargeClass"].null_count() == 506  # backreferenceNo is filled, but no row is a correction
    assert df["SubAccountName"].unique().sort().to_list() == ["platformpm2022", "redbullhol"]
    assert df["RegionName"].unique().to_list() == ["US West (San Jose)"]
    keys = {k for t in df["Tags"].drop_nulls() for k in json.loads(t)}
    assert "DevRel\\redbull-analytics-hol-4cb4.release" in keys and "Oracle-Tags.CreatedBy" in keys
    assert df.filter(pl.col("Tags").is_null()).height == 234  # rows without any tag value
    starts = df["ChargePeriodStart"].unique().sort()
    assert starts.dt.hour().to_list() == [5, 6, 7, 8, 9, 10, 11]
    assert ((df["ChargePeriodEnd"] - df["ChargePeriodStart"]).dt.total_hours() == 1).all()


def test_generated_sample_converts_without_defects(generated, tmp_path):
    result = convert_files([str(p) for p in generated], str(tmp_path / "gen.parquet"))
    assert result.checks.problems == [] and result.checks.conformance.defects == {}
    df = pl.read_parquet(result.out)
    assert df.filter(pl.col("ChargeClass") == "Correction").height > 0
    assert df.filter(pl.col("x_OverageFlag")).height > 0
    assert set(df["BillingCurrency"]) == {"USD", "EUR"}


def test_demo_delivery_is_the_fixture_and_lands_through_the_pipeline(tmp_path):
    (demo,) = list((DEMO / "2023-11").iterdir())
    assert demo.name == FC_SAMPLE_NAME and demo.read_bytes() == FC_SAMPLE.read_bytes()
    store, warehouse = LocalStore(SAMPLE_LANDING), Warehouse(str(tmp_path / "warehouse"))
    source = ExportSource("oci-fc-sample", "oci-cost", "oci-cost")
    deliveries = discover_deliveries(store, source)
    assert list(deliveries) == ["2023-11"]
    ingested = ingest_delivery(warehouse, store, source, deliveries["2023-11"])
    assert ingested.rows == 506 and ingested.format_versions == ["OCI cost report csv"]
    published = publish_focus(warehouse, source, "2023-11")
    assert published.checks.problems == [] and published.quarantine_rows == 0
    raw = warehouse.scan("raw_oci_cost").collect()
    assert raw.height == 506 and raw.schema["cost_my_cost"] == pl.Decimal(38, 12)
    focus = warehouse.scan(FOCUS_TABLE).collect()
    assert focus["BilledCost"].sum() == FC_SAMPLE_BILLED
    assert focus["x_BillingPeriod"].unique().to_list() == ["2023-11"]


# --- the official validator ------------------------------------------------------------------
@pytest.mark.validator
@pytest.mark.parametrize("name", ["focus-converters-oci-csv", "generated-oci-csv-gz"])
def test_official_validator_passes_outside_allowlist(validator, name, generated, tmp_path):
    paths = [str(FC_SAMPLE)] if name == "focus-converters-oci-csv" else [str(p) for p in generated]
    out = tmp_path / f"{name}.parquet"
    convert_files(paths, str(out))
    report = ov.run_official_validator(out, output_dir=tmp_path / "validator")
    print(report.summary_table())
    assert report.unexpected_failures == {}, report.summary_table()
    assert report.errored_rules == {}, report.summary_table()
    assert len(report.passed_leaf_rules) > 100
