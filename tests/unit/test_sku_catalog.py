"""SKU catalog: prices per SKU price and period, SKU lineages across renames (same SkuId with new
names; a changed SkuId through the rename table), price changes, and M5 unmapped SKUs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.reconciliation.catalog import (
    CATALOG_SCHEMA,
    SkuRenameError,
    build_catalog,
    lineage_map,
    parse_renames,
    price_changes,
    sku_mapping,
)
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE
from focus_platform.spec.columns import MONEY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reconciliation"
SCHEMA = {"x_BillingPeriod": pl.String, "ProviderName": pl.String, "SkuId": pl.String, "SkuPriceId": pl.String,
          "PricingCurrency": pl.String, "PricingUnit": pl.String, "ChargeCategory": pl.String,
          "ListUnitPrice": MONEY, "ContractedUnitPrice": MONEY, "SkuMeter": pl.String, "ServiceName": pl.String,
          "ServiceCategory": pl.String, "x_Source": pl.String, "x_RowId": pl.String, "x_UsageType": pl.String,
          "x_SourceChanges": pl.List(pl.String), "x_ProviderDataGaps": pl.List(pl.String)}
_n = iter(range(10**6))


def usage(period: str, sku: str | None, price: str, *, meter: str = "BoxUsage:m5.large", service: str = "Amazon EC2",
          rate: str = "JRTCKXETXF.6YS6EN2CT7", contracted: str | None = None, category: str = "Usage",
          row_id: str | None = None, changes: list[str] | None = None, service_category: str | None = "Compute",
          gaps: list[str] | None = None) -> dict:
    return {"x_BillingPeriod": period, "ProviderName": "AWS", "SkuId": sku,
            "SkuPriceId": f"{sku}.{rate}" if sku else None, "PricingCurrency": "USD", "PricingUnit": "Hours",
            "ChargeCategory": category, "ListUnitPrice": Decimal(price),
            "ContractedUnitPrice": Decimal(contracted or price), "SkuMeter": meter, "ServiceName": service,
            "ServiceCategory": service_category, "x_Source": "aws", "x_RowId": row_id or f"r{next(_n)}",
            "x_UsageType": meter, "x_SourceChanges": changes or [], "x_ProviderDataGaps": gaps or []}


def focus(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA).lazy()


def renames(text: str) -> pl.DataFrame:
    return parse_renames([("sku_renames/r.csv", text.encode())])


def test_catalog_prices_per_sku_price_and_period():
    cat = build_catalog(focus(
        usage("2024-01", "SKU1", "0.096"), usage("2024-01", "SKU1", "0.096"),
        usage("2024-01", "SKU1", "0.096", contracted="0.060", rate="RI1"),  # an RI rate of the same SKU
        usage("2024-01", None, "1"),  # no SKU: not in the catalog (M5 counts it)
        usage("2024-01", "SKU1", "5", category="Tax"), usage("2024-01", "SKU1", "0.5", row_id="r~unused"),
    ))
    assert cat.schema == CATALOG_SCHEMA
    got = {r["SkuPriceId"]: (r["ListUnitPrice"], r["ContractedUnitPrice"], r["x_Rows"]) for r in cat.iter_rows(named=True)}
    assert got == {"SKU1.JRTCKXETXF.6YS6EN2CT7": (Decimal("0.096"), Decimal("0.096"), 2),  # derived row left out
                   "SKU1.RI1": (Decimal("0.096"), Decimal("0.060"), 1)}
    assert set(cat["x_SkuLineageId"]) == {"SKU1"}


def test_two_prices_of_one_sku_price_in_a_period_are_kept_as_min_and_max():
    cat = build_catalog(focus(usage("2024-01", "S", "0.10"), usage("2024-01", "S", "0.12")))
    r = cat.row(0, named=True)
    assert (r["ListUnitPrice"], r["x_ListUnitPriceMax"]) == (Decimal("0.10"), Decimal("0.12"))


def test_same_sku_id_with_new_names_is_one_lineage():
    rows = focus(usage("2024-01", "SKU1", "0.096", meter="BoxUsage:m5.large", service="Amazon EC2"),
                 usage("2024-02", "SKU1", "0.096", meter="USE1-BoxUsage:m5.large", service="Amazon Elastic Compute Cloud"))
    cat = build_catalog(rows)
    assert cat["x_SkuLineageId"].unique().to_list() == ["SKU1"]
    assert cat["x_SkuNames"].to_list() == [["BoxUsage:m5.large"], ["USE1-BoxUsage:m5.large"]]
    jan, feb = cat.partition_by("x_BillingPeriod", maintain_order=True)
    assert price_changes(feb, jan).height == 0  # renamed, same price: nothing to flag
    dearer = build_catalog(focus(usage("2024-02", "SKU1", "0.100", meter="USE1-BoxUsage:m5.large")))
    (change,) = price_changes(dearer, jan).iter_rows(named=True)
    assert (change["PreviousListUnitPrice"], change["ListUnitPrice"], change["PreviousPeriod"], change["Period"]) == (
        Decimal("0.096"), Decimal("0.100"), "2024-01", "2024-02")


def test_changed_sku_id_maps_to_one_lineage_through_the_rename_table():
    jan = build_catalog(focus(usage("2024-01", "OLDSKU0000000001", "0.096")))
    feb_same = focus(usage("2024-02", "NEWSKU0000000001", "0.096"))
    feb_dearer = focus(usage("2024-02", "NEWSKU0000000001", "0.110"))
    # without the rename table: two SKUs, the price history breaks (a change goes unnoticed)
    assert price_changes(build_catalog(feb_dearer), jan).height == 0
    table = parse_renames([("sku_renames/example.csv", (FIXTURES / "sku_renames_example.csv").read_bytes())])
    both = build_catalog(pl.concat([focus(usage("2024-01", "OLDSKU0000000001", "0.096")), feb_same]), table)
    assert both["x_SkuLineageId"].to_list() == ["NEWSKU0000000001", "NEWSKU0000000001"]
    assert both["x_PriceKey"].n_unique() == 1 and both["SkuId"].to_list() == ["OLDSKU0000000001", "NEWSKU0000000001"]
    assert price_changes(build_catalog(feb_same, table), jan, table).height == 0
    (change,) = price_changes(build_catalog(feb_dearer, table), jan, table).iter_rows(named=True)
    assert (change["PreviousSkuId"], change["SkuId"], change["x_SkuLineageId"]) == (
        "OLDSKU0000000001", "NEWSKU0000000001", "NEWSKU0000000001")
    assert (change["PreviousSkuPriceId"], change["SkuPriceId"]) == (
        "OLDSKU0000000001.JRTCKXETXF.6YS6EN2CT7", "NEWSKU0000000001.JRTCKXETXF.6YS6EN2CT7")


def test_rename_chains_follow_to_the_newest_sku():
    table = renames("provider,old_sku_id,new_sku_id\nAWS,A,B\nAWS,B,C\nGCP,A,Z\n")
    got = {(p, s): lin for p, s, lin in lineage_map(table).iter_rows()}
    assert got == {("AWS", "A"): "C", ("AWS", "B"): "C", ("AWS", "C"): "C", ("GCP", "A"): "Z", ("GCP", "Z"): "Z"}


@pytest.mark.parametrize("text,message", [
    ("provider,old_sku_id,new_sku_id\nAWS,A,B\nAWS,A,C\n", "renamed to both B and C"),
    ("provider,old_sku_id,new_sku_id\nAWS,A,B\nAWS,B,A\n", "loop"),
    ("provider,old\nAWS,A\n", "header lacks old_sku_id, new_sku_id"),
    ("provider,old_sku_id,new_sku_id,effective_period\nAWS,A,B,2024\n", "row 2: effective_period '2024' is not a billing period: expected YYYY-MM"),
    ("provider,old_sku_id,new_sku_id\nAWS,,B\n", "row 2: provider, old_sku_id and new_sku_id are required"),
])
def test_bad_rename_tables_are_clear_errors(text, message):
    with pytest.raises(SkuRenameError, match=message):
        lineage_map(renames(text))


def test_purchase_fee_changes_are_cataloged_but_not_flagged():
    jan = build_catalog(focus(usage("2024-01", "SUPPORT", "100", category="Purchase")))
    feb = build_catalog(focus(usage("2024-02", "SUPPORT", "130", category="Purchase")))
    assert feb["ChargeCategory"].to_list() == ["Purchase"]
    assert price_changes(feb, jan).height == 0
    assert price_changes(feb, jan, categories=("Usage", "Purchase")).height == 1


def test_m5_counts_rows_without_sku_or_with_a_fallback_service_category():
    rows = focus(*[usage("2024-01", "S", "1") for _ in range(996)],
                 usage("2024-01", None, "1", meter="ComputeSP:1yrNoUpfront", service="Savings Plans"),
                 usage("2024-01", "M", "1", service="Marketplace thing", changes=[UNMAPPED_SERVICE_NOTE]),
                 usage("2024-01", "N", "1", service_category=None),
                 usage("2024-01", None, "1", category="Tax"),  # not a Usage/Purchase row
                 # no SKU in the export at all: a recorded provider-data gap, not a mapping failure
                 usage("2024-01", None, "1", meter="SavingsPlanRecurringFee", gaps=["R-SkuId-1"]))
    report = sku_mapping(rows)
    assert (report.priced_rows, report.unmapped_rows, report.without_sku, report.fallback_category) == (1000, 3, 1, 2)
    assert report.rate == pytest.approx(3 / 1000) and not report.ok
    assert {e["reason"] for e in report.examples} == {"no SkuId", "fallback ServiceCategory"}
    assert sku_mapping(focus(*[usage("2024-01", "S", "1") for _ in range(10)])).ok


def test_m5_target_is_the_service_levels_one(monkeypatch):
    rows = focus(*[usage("2024-01", "S", "1") for _ in range(997)],
                 *[usage("2024-01", "N", "1", service_category=None) for _ in range(3)])
    assert not sku_mapping(rows).ok
    monkeypatch.setenv("FOCUS_SLO_TARGETS", "M5=0.005")
    report = sku_mapping(rows)
    assert report.ok and report.target == 0.005
