"""OCI cost reports: no cent lost, no unclear error.

The raw basis (``oci_cost.totals``) is independent of the mapping (a wrong amount in the mapping
fails conservation); amounts that cannot be read are quarantined with their raw text; an empty
cost is never a silent 0; a line item delivered twice is counted once (its copy quarantined with
its amount); a report without a currency column needs a declared currency; no money goes through
a float. Expected values are computed by hand from the rows below.
"""

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import focus_platform.sources.oci_cost as oci
from focus_platform.pipeline import check_focus, convert_files
from focus_platform.sources import FORMATS, SourceFormatError
from focus_platform.sources.common import DECLARED_CURRENCY_NOTE, Lineage
from focus_platform.sources.oci_cost import mapping, totals
from tests.helpers_imports import imported_names

LINEAGE = Lineage(source="test", source_format=oci.FORMAT, delivery_id="d", billing_period=None,
                  ingested_at=datetime(2024, 1, 1, tzinfo=UTC))
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy0000000000000000000000000000000000000001"
HEADER = ["lineItem/referenceNo", "lineItem/tenantId", "lineItem/intervalUsageStart", "lineItem/intervalUsageEnd",
          "product/service", "product/region", "product/resourceId", "usage/billedQuantity",
          "usage/billedQuantityOverage", "cost/productSku", "product/Description", "cost/unitPrice",
          "cost/unitPriceOverage", "cost/myCost", "cost/myCostOverage", "cost/currencyCode",
          "cost/skuUnitDescription", "cost/overageFlag", "lineItem/isCorrection"]


def D(text: str) -> Decimal:
    return Decimal(text)


def row(ref: str, cost: str, **changes: str) -> dict[str, str]:
    """One hour of 2 E4 OCPUs costing ``cost`` (unit price cost / 2 where cost is a number)."""
    out = {"lineItem/referenceNo": ref, "lineItem/tenantId": TENANCY, "lineItem/intervalUsageStart": "2023-11-13T10:00Z",
           "lineItem/intervalUsageEnd": "2023-11-13T11:00:00Z", "product/service": "COMPUTE",
           "product/region": "us-ashburn-1", "product/resourceId": "ocid1.instance.oc1.iad.x",
           "usage/billedQuantity": "2", "usage/billedQuantityOverage": "", "cost/productSku": "B93113",
           "product/Description": "Standard - E4 - OCPU", "cost/unitPrice": unit_price(cost), "cost/unitPriceOverage": "",
           "cost/myCost": cost, "cost/myCostOverage": "", "cost/currencyCode": "USD",
           "cost/skuUnitDescription": "OCPU Hours", "cost/overageFlag": "false", "lineItem/isCorrection": "false"}
    out.update(changes)
    return out


def unit_price(cost: str) -> str:
    try:
        amount = Decimal(cost)
    except ArithmeticError:
        return "0.02"
    return str(amount / 2) if amount.is_finite() and amount < 1000 else "0.02"


def write_report(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([[r.get(h, "") for h in header] for r in rows])
    return path


def raw_of(*paths: Path, lineage: Lineage = LINEAGE) -> pl.LazyFrame:
    frames = [oci.scan_raw(p, lineage, label=p.name) for p in paths]
    return FORMATS["oci-cost"].with_line_item_copies(pl.concat(frames, how="diagonal_relaxed")).collect().lazy()


def checks_of(raw: pl.LazyFrame, to_focus=oci.to_focus):
    return check_focus(to_focus(raw), totals.raw_totals(raw).collect(), totals.quarantine(raw).collect())


# --- item 6: independent gates -----------------------------------------------------------------------
def test_totals_imports_nothing_named_mapping():
    imported = imported_names(totals.__file__)
    assert imported and not [name for name in imported if "mapping" in name.split(".")]
    assert {name.rsplit(".", 1)[0] for name in imported if name.startswith("focus_platform.sources.oci_cost.")} == {
        "focus_platform.sources.oci_cost.raw"}


def test_a_mapping_that_reads_the_wrong_amount_fails_conservation(tmp_path, monkeypatch):
    raw = raw_of(write_report(tmp_path / "r.csv", [row("a", "0.04"), row("b", "0.10")]))
    assert checks_of(raw).problems == []
    original = mapping.to_focus
    # the mutated mapping takes cost/unitPrice for cost/myCost
    monkeypatch.setattr(mapping, "to_focus", lambda lf: original(lf.with_columns(pl.col("cost_unit_price")
                                                                                 .alias("cost_my_cost"))))
    problems = checks_of(raw, mapping.to_focus).problems
    assert any(p.startswith("billed cost not conserved for") and "raw 0.140000000000 != FOCUS 0.070000000000"
               in p for p in problems), problems
    assert any(p.startswith("amortized cost not conserved for") for p in problems), problems


# --- item 4: amounts that cannot be read -------------------------------------------------------------
FORTY_DIGITS = "1234567890123456789012345678901234567890"


def test_unreadable_amounts_in_csv_are_quarantined_with_their_text(tmp_path):
    path = write_report(tmp_path / "bad.csv", [row("ok", "0.04"), row("thousands", "1,234.56"), row("dollar", "$12"),
                                              row("nan", "NaN"), row("huge", FORTY_DIGITS)])
    raw = raw_of(path)
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert "x_UnreadableAmounts" in q.columns
    assert q["x_UnreadableAmounts"].to_list() == [
        "cost/myCost: '1,234.56' is not a number", "cost/myCost: '$12' is not a number",
        "cost/myCost: 'NaN' is not a number",
        f"cost/myCost: '{FORTY_DIGITS}' overflows Decimal(38,12) (more than 26 digits before the decimal point)"]
    assert q["x_QuarantineReason"].to_list() == [f"bad.csv row {n}: {m}" for n, m in
                                                 zip([2, 3, 4, 5], q["x_UnreadableAmounts"], strict=True)]
    assert oci.to_focus(raw).collect()["BilledCost"].to_list() == [D("0.04")]
    checks = checks_of(raw)
    assert checks.unknown_amount_rows == 4 and not checks.billed_ok


def test_unreadable_float_amounts_in_parquet_are_quarantined_without_a_crash(tmp_path):
    frame = pl.DataFrame([row(ref, "0") for ref in ("ok", "nan", "inf", "huge")]).with_columns(
        pl.Series("cost/myCost", [0.04, float("nan"), float("inf"), 1e30], dtype=pl.Float64))
    path = tmp_path / "floats.parquet"
    frame.write_parquet(path)
    raw = raw_of(path)
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert q["x_UnreadableAmounts"].to_list() == [
        "cost/myCost: 'NaN' is not a number", "cost/myCost: 'inf' is not a number",
        "cost/myCost: '1e+30' overflows Decimal(38,12) (more than 26 digits before the decimal point)"]
    assert oci.to_focus(raw).collect()["BilledCost"].to_list() == [D("0.04")]
    assert checks_of(raw).unknown_amount_rows == 3


# --- item 5: an empty cost is never a silent EffectiveCost 0 -----------------------------------------
def test_empty_cost_is_quarantined_not_zero_even_with_price_and_quantity(tmp_path):
    """cost/myCost is OCI's only amount (unitPrice x billedQuantity is not what is billed: it
    omits rounding and overage): when it is empty, the row is quarantined, never EffectiveCost 0."""
    raw = raw_of(write_report(tmp_path / "r.csv", [row("a", "0.04"), row("empty", "")]))
    focus = oci.to_focus(raw).collect()
    assert focus.select("BilledCost", "EffectiveCost").rows() == [(D("0.04"), D("0.04"))]
    q = totals.quarantine(raw).collect()
    assert q["x_QuarantineReason"].to_list() == ["r.csv row 2: cost/myCost is empty"]
    assert q["x_EffectiveCost"].to_list() == [None]


def test_overage_is_inside_my_cost_not_added(tmp_path):
    """2 OCPU hours, 0.5 of them overage at 0.03: myCost 0.055 = 1.5 x 0.02 + 0.5 x 0.05 includes it;
    EffectiveCost is 0.055, not 0.055 + myCostOverage 0.025."""
    overage = row("o", "0.055", **{"usage/billedQuantityOverage": "0.5", "cost/unitPriceOverage": "0.05",
                                   "cost/myCostOverage": "0.025", "cost/overageFlag": "true"})
    raw = raw_of(write_report(tmp_path / "r.csv", [overage]))
    focus = oci.to_focus(raw).collect()
    assert focus.select("BilledCost", "EffectiveCost", "x_CostOverage").rows() == [
        (D("0.055"), D("0.055"), D("0.025"))]
    assert totals.raw_totals(raw).collect().select("billed", "amortized").rows() == [(D("0.055"), D("0.055"))]
    assert checks_of(raw).problems == []


# --- item 8: a line item delivered twice -------------------------------------------------------------
def test_the_same_line_item_twice_in_one_file_is_counted_once(tmp_path):
    raw = raw_of(write_report(tmp_path / "r.csv", [row("a", "0.04"), row("b", "0.10"), row("a", "0.04")]))
    focus = oci.to_focus(raw).collect()
    assert sorted(focus["x_ReferenceNumber"].to_list()) == ["a", "b"]
    assert focus["BilledCost"].sum() == D("0.14")
    q = totals.quarantine(raw).collect()
    assert q.height == 1 and q["x_SourceRow"].to_list() == [3] and q["x_BilledCost"].to_list() == [D("0.04")]
    assert q["x_QuarantineReason"][0].startswith(
        "r.csv row 3: duplicate line item: lineItem/referenceNo + lineItem/intervalUsageStart "
        "'a / 2023-11-13 10:00:00")
    checks = checks_of(raw)
    assert checks.problems == [] and checks.conservation[0].raw_billed == D("0.18")


def test_the_same_line_item_in_two_files_is_counted_once(tmp_path):
    first = write_report(tmp_path / "r1.csv", [row("a", "0.04"), row("b", "0.10")])
    second = write_report(tmp_path / "r2.csv", [row("a", "0.04"), row("c", "0.01")])
    raw = raw_of(first, second)
    focus = oci.to_focus(raw).collect()
    assert sorted(focus["x_ReferenceNumber"].to_list()) == ["a", "b", "c"]
    assert focus["BilledCost"].sum() == D("0.15")
    q = totals.quarantine(raw).collect()
    assert q.height == 1 and q["x_BilledCost"].to_list() == [D("0.04")]
    assert "duplicate line item: lineItem/referenceNo + lineItem/intervalUsageStart 'a / " in q["x_QuarantineReason"][0]
    kept = focus.filter(pl.col("x_ReferenceNumber") == "a")["x_RowId"][0]
    assert f"the first (x_RowId {kept}) is kept" in q["x_QuarantineReason"][0]
    assert totals.raw_totals(raw).collect()["quarantined_rows"].sum() == 1
    assert checks_of(raw).problems == []


def test_the_same_reference_in_another_hour_is_another_line_item(tmp_path):
    later = row("a", "0.04", **{"lineItem/intervalUsageStart": "2023-11-13T11:00Z",
                                "lineItem/intervalUsageEnd": "2023-11-13T12:00:00Z"})
    raw = raw_of(write_report(tmp_path / "r.csv", [row("a", "0.04"), later]))
    assert oci.to_focus(raw).collect().height == 2
    assert totals.quarantine(raw).collect().height == 0


# --- item 10: a declared billing currency ------------------------------------------------------------
NO_CURRENCY = [h for h in HEADER if h != "cost/currencyCode"]


def test_a_report_without_currency_is_refused_naming_the_column(tmp_path):
    path = write_report(tmp_path / "nocur.csv", [row("a", "0.04")], NO_CURRENCY)
    with pytest.raises(SourceFormatError, match=r"nocur.csv: .*required column\(s\) missing: cost/currencyCode "
                                                r"\(.*declared billing currency"):
        oci.scan_raw(path, LINEAGE, label="nocur.csv")
    with pytest.raises(SourceFormatError, match="cost/currencyCode"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_a_declared_currency_fills_the_column_and_is_noted(tmp_path):
    path = write_report(tmp_path / "nocur.csv", [row("a", "0.04")], NO_CURRENCY)
    with_currency = write_report(tmp_path / "cur.csv", [row("b", "0.10")])
    declared = Lineage(source="test", source_format=oci.FORMAT, delivery_id="d", billing_period=None,
                       ingested_at=datetime(2024, 1, 1, tzinfo=UTC), billing_currency="USD")
    raw = raw_of(path, with_currency, lineage=declared)
    assert raw.select("line_item_reference_no", "cost_currency_code", "x_DeclaredCurrency").collect().rows() == [
        ("a", "USD", "USD"), ("b", "USD", None)]
    focus = oci.to_focus(raw).collect().sort("x_ReferenceNumber")
    assert focus["BillingCurrency"].to_list() == ["USD", "USD"]
    assert [DECLARED_CURRENCY_NOTE in changes for changes in focus["x_SourceChanges"].to_list()] == [True, False]
    assert checks_of(raw).problems == []


def test_convert_with_a_declared_currency(tmp_path):
    path = write_report(tmp_path / "nocur.csv", [row("a", "0.04")], NO_CURRENCY)
    result = convert_files([str(path)], str(tmp_path / "out.parquet"), billing_currency="EUR")
    focus = pl.read_parquet(result.out)
    assert focus.select("BillingCurrency", "BilledCost").rows() == [("EUR", D("0.04"))]
    assert DECLARED_CURRENCY_NOTE in focus["x_SourceChanges"][0].to_list()
