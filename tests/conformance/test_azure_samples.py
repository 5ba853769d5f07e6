"""Every Azure sample (EA, MCA, legacy PAYG, header dialects, the EA actual + amortized pair) converts
with 0 converter defects, exact conservation and conserved rows; the official validator passes
outside the allow-list; the EA pair is the acceptance case of the actual + amortized join."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.conformance import official_validator as ov
from focus_platform.pipeline import convert_files
from tests.conftest import FIXTURES

AZ = FIXTURES / "azure"
ACTUAL = AZ / "ftk_EA_ActualCost_Small.csv"
AMORTIZED = AZ / "ftk_EA_AmortizedCost_Small.csv"
HEADERS = [AZ / f"opencost_headerset_{n}.csv" for n in ("Enterprise", "EnterpriseCamel", "German", "PayAsYouGo", "YA")]
SAMPLES: dict[str, list[Path]] = {
    "ea-actual-amortized-pair": [ACTUAL, AMORTIZED],
    "ea-actual-only": [ACTUAL],
    "ea-amortized-only": [AMORTIZED],
    "ea-focus-converters": [AZ / "focus_converters_sample-anonymous-ea-export-dataset.csv"],
    "ea-koku-v2-usd": [AZ / "derived_koku_azure_version_2_usd.csv"],
    "mca-koku-camel": [AZ / "koku_camel_azure_version_2.csv"],
    "legacy-payg-koku": [AZ / "koku_azure_camelCased.csv"],
    "header-variants": HEADERS,
    **{f"headers-{p.stem.rsplit('_', 1)[-1]}": [p] for p in HEADERS},
}
# samples whose every row is unconvertible: all quarantined, with the reason
QUARANTINED = {
    "ea-koku-v2": ([AZ / "koku_azure_version_2.csv"], "BillingCurrency 'MC' is not an ISO 4217 currency code"),
    "headers-BOM": ([AZ / "opencost_headerset_BOM.csv"], "CostInBillingCurrency (cost) is empty"),
}
VALIDATED = ["ea-actual-amortized-pair", "ea-actual-only", "ea-amortized-only", "ea-focus-converters",
             "ea-koku-v2-usd", "mca-koku-camel", "legacy-payg-koku", "header-variants"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("azure")
    return {name: convert_files([str(p) for p in paths], str(out / f"{name}.parquet"))
            for name, paths in {**SAMPLES, **{k: v[0] for k, v in QUARANTINED.items()}}.items()}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_converts_without_defects(converted, name):
    result = converted[name]
    checks = result.checks
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == []
    for row in checks.conservation:
        assert row.billed_ok and row.amortized_ok, row
    assert checks.rows.ok and checks.duplicate_row_ids == 0
    assert result.rows_out > 0 and result.quarantined == 0


@pytest.mark.parametrize("name", sorted(QUARANTINED))
def test_unconvertible_samples_are_quarantined_with_the_reason(converted, name):
    result = converted[name]
    assert result.rows_out == 0 and result.quarantined == result.rows_in > 0
    assert result.checks.problems == []
    reasons = pl.read_parquet(result.quarantine_out)["x_QuarantineReason"].to_list()
    assert all(QUARANTINED[name][1] in r for r in reasons), reasons


def test_bom_header_first_column_is_recognised(converted):
    q = pl.read_parquet(converted["headers-BOM"].quarantine_out)
    assert q["x_QuarantineReason"][0] == ("CostInBillingCurrency (cost) is empty; BillingCurrency is empty; "
                                          "no billing account: BillingAccountId, BillingProfileId and "
                                          "SubscriptionId are empty")
    assert q["x_SourceFormatVersion"][0].startswith("legacy usage details")


def _file_total(path: Path) -> Decimal:
    """The file's cost total as the converter stores it: each value at 12 decimals."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return sum((Decimal(r["Cost"]).quantize(Decimal("1E-12"), ROUND_HALF_EVEN) for r in csv.DictReader(fh)),
                   Decimal(0))


def test_pair_totals_are_the_actual_and_the_amortized_file_totals(converted):
    df = pl.read_parquet(converted["ea-actual-amortized-pair"].out)
    assert df["BilledCost"].sum() == _file_total(ACTUAL) == Decimal("8.545007786742")
    assert df["EffectiveCost"].sum() == _file_total(AMORTIZED) == Decimal("16.296932136637")
    rows = converted["ea-actual-amortized-pair"].checks.rows
    # 28 amortized rows + the reservation purchase; the 10 actual usage rows are replaced
    assert (rows.raw, rows.focus, rows.dropped, rows.quarantined) == (39, 29, 10, 0)


def _one(df: pl.DataFrame, **where) -> dict:
    for k, v in where.items():
        df = df.filter(pl.col(k) == v)
    assert df.height == 1, where
    return df.row(0, named=True)


def test_pair_expected_rows(converted):
    """Hand-computed from the two files (ftk EA_ActualCost_Small / EA_AmortizedCost_Small)."""
    df = pl.read_parquet(converted["ea-actual-amortized-pair"].out)
    d = Decimal
    purchase = _one(df, x_ChargeType="Purchase")  # actual row 1: monthly reservation fee
    assert (purchase["ChargeCategory"], purchase["ChargeFrequency"], purchase["PricingCategory"]) == (
        "Purchase", "Recurring", "Standard")
    assert (purchase["BilledCost"], purchase["EffectiveCost"]) == (d("3.25"), 0)
    assert purchase["CommitmentDiscountId"] == (
        "/providers/Microsoft.Capacity/reservationOrders/49ed0e4d-8e0c-4f1f-af2c-67c865056615/reservations/")
    assert (purchase["CommitmentDiscountType"], purchase["CommitmentDiscountStatus"]) == ("Reservation", None)
    assert (purchase["x_CostDataset"], purchase["x_PairedRowId"]) == ("actual", None)

    ri = _one(df, x_ChargeType="Usage", x_PricingModel="Reservation")  # amortized row 1
    assert (ri["BilledCost"], ri["EffectiveCost"]) == (0, d("0.493152"))
    assert (ri["CommitmentDiscountName"], ri["CommitmentDiscountStatus"], ri["PricingCategory"]) == (
        "ProdDS1VMReservation", "Used", "Committed")
    assert (ri["PricingQuantity"], ri["PricingUnit"], ri["ListUnitPrice"]) == (8, "Hours", d("0.146"))

    sp = _one(df, x_PricingModel="SavingsPlan")  # amortized row 2
    assert (sp["BilledCost"], sp["EffectiveCost"]) == (0, d("0.006000000468"))
    assert (sp["CommitmentDiscountType"], sp["CommitmentDiscountCategory"]) == ("Savings Plan", "Spend")

    vm = _one(df, x_MeterId="ec8c7b49-9790-4261-b46f-293dabb53fd9")  # in both files: paired
    assert (vm["BilledCost"], vm["EffectiveCost"], vm["x_CostMode"]) == (d("2.64"), d("2.64"), "paired")
    assert vm["x_PairedRowId"] is not None and vm["CapacityReservationId"] == "f8b42087-c198-4ad8-8515-fce989cc5fff"
    assert vm["CapacityReservationStatus"] == "Unused"  # the row of the capacity reservation itself

    logs = _one(df, x_MeterId="05bac6df-17ab-48ba-bf46-450c59ad0780", ChargePeriodStart=pl.datetime(
        2023, 9, 4, time_zone="UTC"))  # only in the amortized file
    assert (logs["BilledCost"], logs["EffectiveCost"]) == (0, d("2.480634995895"))
    assert "no matching row in the actual-cost file" in " ".join(logs["x_SourceChanges"])

    on_demand = df.filter(pl.col("x_PricingModel") == "OnDemand")
    paired = on_demand.filter(pl.col("x_PairedRowId").is_not_null())
    assert paired.height == 10 and (paired["BilledCost"] == paired["EffectiveCost"]).all()
    assert (on_demand.filter(pl.col("x_PairedRowId").is_null())["BilledCost"] == 0).all()


def test_single_files_of_the_pair_record_their_mode(converted):
    actual = pl.read_parquet(converted["ea-actual-only"].out)
    assert set(actual["x_CostMode"]) == {"actual-only"}
    assert _one(actual, x_ChargeType="Purchase")["EffectiveCost"] == 0
    amortized = pl.read_parquet(converted["ea-amortized-only"].out)
    assert set(amortized["x_CostMode"]) == {"amortized-only"}
    assert amortized["BilledCost"].sum() == _file_total(AMORTIZED) - Decimal("0.493152") - Decimal("0.006000000468")


def test_output_is_typed_focus(converted):
    schema = pl.read_parquet_schema(converted["mca-koku-camel"].out)
    assert schema["BilledCost"] == pl.Decimal(38, 12) and schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")
    assert not [c for c in schema if not c.startswith("x_") and c[0].islower()]


@pytest.mark.validator
@pytest.mark.parametrize("name", VALIDATED)
def test_official_validator_passes_outside_allowlist(validator, converted, name, tmp_path):
    report = ov.run_official_validator(converted[name].out, output_dir=tmp_path / "validator")
    print(report.summary_table())
    assert report.unexpected_failures == {}, report.summary_table()
    assert report.errored_rules == {}, report.summary_table()
    assert len(report.passed_leaf_rules) > 100
