"""The synthetic OCI cost report generator: layout, increments, corrections, overage, tags, exact
totals (recomputed here from the CSV text with Python's Decimal, independently of polars and of
the converter), invoices, and the tie through ``convert_files`` to the expected totals."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.generate import GenerationSummary
from focus_platform.generate.oci import generate_oci
from focus_platform.pipeline import convert_files

START_MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$")
START_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TWELVE = Decimal("1E-12")


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = gzip.decompress(path.read_bytes()).decode() if path.name.endswith(".gz") else path.read_text()
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def two_months(tmp_path_factory) -> GenerationSummary:
    written: list[int] = []
    summary = generate_oci(tmp_path_factory.mktemp("oci"), rows=9_000, months=2, seed=7, start_period="2024-02",
                           progress=written.append)
    assert sum(written) == 9_000
    return summary


@pytest.fixture(scope="module")
def rows_by_file(two_months) -> dict[Path, tuple[list[str], list[dict[str, str]]]]:
    return {p: read_rows(p) for p in two_months.data_files}


def test_layout_one_period_folder_per_month(two_months):
    s = two_months
    assert s.rows_per_period == {"2024-02": 4_500, "2024-03": 4_500}
    assert s.report_dir == s.out_dir / "oci-cost"
    folders = {p.parent.name for p in s.data_files}
    assert folders == {"2024-02", "2024-03"}
    assert all(re.fullmatch(r"reports_cost-csv_\d{16}\.csv\.gz", p.name) for p in s.data_files)
    assert len(s.data_files) == 2 * 3 * 4  # months x tenancies x increments
    assert len({p.name for p in s.data_files}) == len(s.data_files)
    assert s.expected_totals_path == s.report_dir / "expected_totals.json"
    assert json.loads(s.expected_totals_path.read_text()) == s.expected_totals


def test_rows_look_like_oci_increments(two_months, rows_by_file):
    all_rows = [r for _, rows in rows_by_file.values() for r in rows]
    assert len(all_rows) == 9_000
    assert len({r["lineItem/referenceNo"] for r in all_rows}) == 9_000
    # corrections point at a row delivered in an earlier increment of the same tenancy
    by_ref = {r["lineItem/referenceNo"]: r for r in all_rows}
    corrections = [r for r in all_rows if r["lineItem/isCorrection"] == "true"]
    assert len(corrections) == sum(e["correction_rows"] for e in two_months.expected_totals["totals"]) > 0
    for c in corrections:
        original = by_ref[c["lineItem/backreferenceNo"]]
        assert original["lineItem/isCorrection"] == "false"
        assert (original["lineItem/tenantId"], original["product/resourceId"], original["cost/productSku"]) == \
            (c["lineItem/tenantId"], c["product/resourceId"], c["cost/productSku"])
        assert Decimal(c["cost/myCost"]) <= 0 and -Decimal(c["cost/myCost"]) <= Decimal(original["cost/myCost"])
        assert -Decimal(c["usage/billedQuantity"]) <= Decimal(original["usage/billedQuantity"])
    assert sum(Decimal(c["cost/myCost"]) for c in corrections) < 0
    ordinary = [r for r in all_rows if r["lineItem/isCorrection"] == "false"]
    assert all(r["lineItem/backreferenceNo"].isdigit() for r in ordinary)  # OCI's number, not a reference
    # overage: flag, overage columns = the row's own values; otherwise empty
    overage = [r for r in all_rows if r["cost/overageFlag"] == "true"]
    assert overage and all(r["cost/myCostOverage"] == r["cost/myCost"] for r in overage)
    assert all(r["cost/myCostOverage"] == "" for r in all_rows if r["cost/overageFlag"] == "false")
    # free tier: zero cost at unit price zero
    free = [r for r in ordinary if r["cost/productSku"] in ("B93297", "B93298")]
    assert free and all(Decimal(r["cost/myCost"]) == 0 == Decimal(r["cost/unitPrice"]) for r in free)
    # both timestamp forms, E notation, several currencies and tenancies
    assert any(START_MINUTES.match(r["lineItem/intervalUsageStart"]) for r in all_rows)
    assert any(START_SECONDS.match(r["lineItem/intervalUsageStart"]) for r in all_rows)
    assert all(START_SECONDS.match(r["lineItem/intervalUsageEnd"]) for r in all_rows)
    assert any("E-" in r["cost/myCost"] for r in all_rows)
    assert {r["cost/currencyCode"] for r in all_rows} == {"USD", "EUR", "GBP"}
    assert len({r["lineItem/tenantId"] for r in all_rows}) == 3
    # every row's interval lies in its folder's month
    for path, (_, rows) in rows_by_file.items():
        assert {r["lineItem/intervalUsageStart"][:7] for r in rows} == {path.parent.name}


def test_tag_columns_vary_per_file_and_include_odd_keys(rows_by_file):
    headers = {tuple(h for h in header if h.startswith("tags/")) for header, _ in rows_by_file.values()}
    assert len(headers) > 3  # per tenancy, and the team column only in even increments
    all_tags = {h for hs in headers for h in hs}
    assert {"tags/DevRel\\analytics-hol.release", "tags/Ops.Owner Name", 'tags/Data "Tier"',
            "tags/Oracle-Tags.CreatedBy", "tags/Finance.CostCenter", "tags/team"} <= all_tags


def test_expected_totals_equal_decimal_recomputation(two_months, rows_by_file):
    got: dict[tuple[str, str, str], dict] = defaultdict(lambda: defaultdict(Decimal))
    for _, rows in rows_by_file.values():
        for r in rows:
            g = got[(r["lineItem/tenantId"], r["lineItem/intervalUsageStart"][:7], r["cost/currencyCode"])]
            cost = Decimal(r["cost/myCost"])
            assert cost == cost.quantize(TWELVE)  # the money rule: at most 12 decimals
            g["rows"] += 1
            g["billed"] += cost
            g["correction_rows"] += r["lineItem/isCorrection"] == "true"
            g["overage_cost"] += cost if r["cost/overageFlag"] == "true" else 0
        g["files"] += 1
    expected = two_months.expected_totals["totals"]
    assert len(expected) == len(got) == 6
    for e in expected:
        g = got[(e["billing_account_id"], e["billing_period"], e["currency"])]
        assert g["rows"] == e["rows"] and g["files"] == e["files"] == 4
        assert g["billed"] == Decimal(e["billed_cost"]) == Decimal(e["amortized_cost"])
        assert g["correction_rows"] == e["correction_rows"]
        assert g["overage_cost"] == Decimal(e["overage_cost"])
    assert any(e["overage_rows"] for e in expected) and not all(e["overage_rows"] for e in expected)


def test_invoices_for_closed_months_equal_billed_totals(two_months):
    totals = {(e["billing_account_id"], e["billing_period"]): e for e in two_months.expected_totals["totals"]}
    assert {p.stem for p in two_months.invoice_files} == {"2024-02"}  # March is still open
    assert len(two_months.invoice_files) == 3
    for path in two_months.invoice_files:
        with path.open(newline="") as fh:
            (invoice,) = list(csv.DictReader(fh))
        assert list(invoice) == ["invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total",
                                 "tax", "credits", "issued_date", "adjusts_invoice_id"]
        e = totals[(invoice["billing_account_id"], invoice["billing_period"])]
        assert path.parent.name == invoice["billing_account_id"] and path.stem == invoice["billing_period"]
        assert Decimal(invoice["total"]) == Decimal(e["billed_cost"]) and invoice["currency"] == e["currency"]
        assert invoice["invoice_id"] == e["invoice_id"] and invoice["issuer"].startswith("Oracle")
        assert invoice["issued_date"] == "2024-03-04"
    assert all(e["invoice_id"] is None for e in totals.values() if e["billing_period"] == "2024-03")


def test_generated_files_convert_to_the_expected_totals(two_months, tmp_path):
    result = convert_files([str(p) for p in two_months.data_files], str(tmp_path / "focus.parquet"))
    checks = result.checks
    assert checks.problems == [] and checks.conformance.defects == {}, checks.conformance.summary()
    assert result.rows_in == result.rows_out == 9_000 and result.quarantined == 0
    got = {(c.billing_account, c.billing_period, c.currency): (c.focus_billed, c.focus_effective)
           for c in checks.conservation}
    for e in two_months.expected_totals["totals"]:
        key = (e["billing_account_id"], e["billing_period"], e["currency"])
        assert got[key] == (Decimal(e["billed_cost"]), Decimal(e["amortized_cost"])), key
    df = pl.read_parquet(result.out)
    assert df.filter(pl.col("ChargeClass") == "Correction").height == sum(
        e["correction_rows"] for e in two_months.expected_totals["totals"])
    assert checks.rates["M5_sku_mapping_failure_rate"] == 0.0


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    runs = [generate_oci(tmp_path / name, rows=1_200, seed=seed, tenancies=2, increments=3)
            for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    a, b, c = runs
    assert [p.relative_to(a.out_dir) for p in a.paths] == [p.relative_to(b.out_dir) for p in b.paths]
    for pa, pb in zip(a.paths, b.paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert a.expected_totals != c.expected_totals


def test_split_at_rows_per_file_and_plain_csv(tmp_path):
    s = generate_oci(tmp_path, rows=2_000, tenancies=1, increments=2, rows_per_file=400, file_format="csv",
                     start_period="2023-12")
    assert all(p.suffix == ".csv" for p in s.data_files)
    sizes = [len(read_rows(p)[1]) for p in s.data_files]
    assert sum(sizes) == 2_000 and max(sizes) <= 405 and len(sizes) == 6
    last_hour = [r for p in s.data_files for r in read_rows(p)[1]
                 if r["lineItem/intervalUsageStart"].startswith("2023-12-31T23:00")]
    assert last_hour and all(r["lineItem/intervalUsageEnd"] == "2024-01-01T00:00:00Z" for r in last_hour)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        generate_oci(tmp_path, rows=2, months=2, tenancies=2)
    with pytest.raises(ValueError, match="file_format"):
        generate_oci(tmp_path, rows=100, file_format="parquet")


def test_generated_delivery_through_the_landing_zone(tmp_path):
    """Discover → raw_oci_cost → focus_costs: one delivery per month folder, totals as expected."""
    from focus_platform.landing.zone import (
        ExportSource,
        LocalStore,
        discover_deliveries,
    )
    from focus_platform.pipeline import FOCUS_TABLE, ingest_delivery, publish_focus
    from focus_platform.warehouse.delta import Warehouse

    landing = tmp_path / "landing"
    s = generate_oci(landing, rows=3_000, months=2, tenancies=2, increments=3, seed=3)
    store, warehouse = LocalStore(landing), Warehouse(str(tmp_path / "warehouse"))
    source = ExportSource("oci-gen", "oci-cost", "oci-cost")
    deliveries = discover_deliveries(store, source)
    assert sorted(deliveries) == ["2024-01", "2024-02"]
    assert sorted(f for d in deliveries.values() for f in d.files) == sorted(
        str(p.relative_to(landing)) for p in s.data_files)
    for period, delivery in deliveries.items():
        ingest_delivery(warehouse, store, source, delivery)
        published = publish_focus(warehouse, source, period)
        assert published.checks.problems == [] and published.quarantine_rows == 0
    focus = warehouse.scan(FOCUS_TABLE).collect()
    got = {(r[0], r[1], r[2]): (r[3], r[4]) for r in focus.group_by(
        "BillingAccountId", "x_BillingPeriod", "BillingCurrency").agg(
        pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).iter_rows()}
    for e in s.expected_totals["totals"]:
        key = (e["billing_account_id"], e["billing_period"], e["currency"])
        assert got[key] == (Decimal(e["billed_cost"]), Decimal(e["amortized_cost"])), key
    assert focus.height == 3_000
    assert not focus["x_SourceChanges"].list.join(" ").str.contains("delivered in the").any()
