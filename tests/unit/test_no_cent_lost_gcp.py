"""GCP billing export: no cent lost, no unclear error.

The raw basis (``gcp_billing.totals``, Google's documented invoice total cost + credits) is
independent of the mapping (a wrong amount in the mapping fails conservation); amounts that cannot
be read (cost or a credit's amount) are quarantined with their raw text; an empty amount is never
a silent 0; the export has no line item identity, so no row is taken for a copy; an export without
a currency column needs a declared currency; unit prices and commitment quantities are exact
decimals. Expected values are computed by hand from the rows below.
"""

import copy
import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import focus_platform.sources.gcp_billing as gcp
from focus_platform.pipeline import check_focus
from focus_platform.sources import SourceFormatError
from focus_platform.sources.common import DECLARED_CURRENCY_NOTE, Lineage
from focus_platform.sources.gcp_billing import mapping, totals
from focus_platform.spec.columns import MONEY
from tests.helpers_imports import imported_names

LINEAGE = Lineage(source="test", source_format=gcp.FORMAT, delivery_id="d", billing_period=None,
                  ingested_at=datetime(2024, 5, 1, tzinfo=UTC))
OVERFLOW = "overflows Decimal(38,12) (more than 26 digits before the decimal point)"
FORTY_DIGITS = "1234567890123456789012345678901234567890"

# Four N1 core-hours: cost 0.126444 (list 0.1328), a sustained use discount of -0.02 netted in.
BASE = {
    "billing_account_id": "012345-6789AB-CDEF01",
    "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
    "sku": {"id": "2E27-4F75-95CD", "description": "N1 Predefined Instance Core running in Americas"},
    "usage_start_time": "2024-03-10 10:00:00 UTC",
    "usage_end_time": "2024-03-10 11:00:00 UTC",
    "project": {"id": "acme-prod", "name": "Acme prod"},
    "location": {"location": "us-central1", "region": "us-central1", "zone": "us-central1-a"},
    "cost": 0.126444,
    "cost_at_list": 0.1328,
    "currency": "USD",
    "usage": {"amount": 14400.0, "unit": "seconds", "amount_in_pricing_units": 4.0, "pricing_unit": "hour"},
    "credits": [{"name": "Sustained usage discount", "amount": -0.02, "full_name": None, "id": "sud",
                 "type": "SUSTAINED_USAGE_DISCOUNT"}],
    "invoice": {"month": "202403"},
    "cost_type": "regular",
}


def D(text: str) -> Decimal:
    return Decimal(text)


def line(**changes) -> dict:
    out = copy.deepcopy(BASE)
    out.update(changes)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


CSV_HEADER = ["billing_account_id", "service.description", "sku.id", "sku.description", "usage_start_time",
              "usage_end_time", "cost", "currency", "usage.amount_in_pricing_units", "usage.pricing_unit", "credits",
              "invoice.month", "cost_type"]


def csv_line(cost: str) -> list[str]:
    return ["012345-6789AB-CDEF01", "Compute Engine", "2E27-4F75-95CD", "N1 core", "2024-03-10 10:00:00+00:00",
            "2024-03-10 11:00:00+00:00", cost, "USD", "4", "hour", "[]", "202403", "regular"]


def write_csv(path: Path, costs: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        writer.writerows(csv_line(c) for c in costs)
    return path


def raw_of(*paths: Path, lineage: Lineage = LINEAGE) -> pl.LazyFrame:
    frames = [gcp.scan_raw(p, lineage, label=p.name) for p in paths]
    return pl.concat(frames, how="diagonal_relaxed").collect().lazy()


def checks_of(raw: pl.LazyFrame, to_focus=gcp.to_focus):
    return check_focus(to_focus(raw), totals.raw_totals(raw).collect(), totals.quarantine(raw).collect())


# --- item 6: independent gates -----------------------------------------------------------------------
def test_totals_imports_nothing_named_mapping():
    imported = imported_names(totals.__file__)
    assert imported and not [name for name in imported if "mapping" in name.split(".")]
    assert [name for name in imported if name.startswith("focus_platform.sources.gcp_billing.")] == [
        "focus_platform.sources.gcp_billing.raw.RawColumns", "focus_platform.sources.gcp_billing.raw.quarantine_reason"]


def test_a_mapping_that_drops_the_discount_credits_fails_conservation(tmp_path, monkeypatch):
    """cost 0.126444 + credit -0.02 = 0.106444 is the invoice; a mapping that nets no credit says 0.126444."""
    raw = raw_of(write_jsonl(tmp_path / "x.jsonl", [line()]))
    assert checks_of(raw).problems == []
    monkeypatch.setattr(mapping, "_credit_amounts", lambda credits, keep=None: pl.lit(0, MONEY))
    problems = checks_of(raw).problems
    assert any(p.startswith("billed cost not conserved for") and "raw 0.106444000000 != FOCUS 0.126444000000" in p
               for p in problems), problems
    assert any(p.startswith("amortized cost not conserved for") for p in problems), problems


# --- item 4: amounts that cannot be read -------------------------------------------------------------
def test_unreadable_costs_in_csv_are_quarantined_with_their_text(tmp_path):
    raw = raw_of(write_csv(tmp_path / "bad.csv", ["0.5", "1,234.56", "$12", "NaN", FORTY_DIGITS]))
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert q["x_UnreadableAmounts"].to_list() == [
        "cost: '1,234.56' is not a number", "cost: '$12' is not a number", "cost: 'NaN' is not a number",
        f"cost: '{FORTY_DIGITS}' {OVERFLOW}"]
    assert q["x_QuarantineReason"].to_list() == q["x_UnreadableAmounts"].to_list()
    assert gcp.to_focus(raw).collect()["BilledCost"].to_list() == [D("0.5")]
    checks = checks_of(raw)
    assert checks.unknown_amount_rows == 4 and not checks.billed_ok


def test_unreadable_float_costs_and_credits_in_parquet_are_quarantined_without_a_crash(tmp_path):
    rows = [line(), line(), line(), line(),
            line(credits=[{"name": "a", "amount": float("nan"), "full_name": None, "id": "a", "type": "DISCOUNT"}]),
            line(credits=[{"name": "b", "amount": 1e30, "full_name": None, "id": "b", "type": "PROMOTION"}])]
    frame = pl.DataFrame(rows).with_columns(
        pl.Series("cost", [0.126444, float("nan"), float("inf"), 1e30, 0.126444, 0.126444]))
    path = tmp_path / "floats.parquet"
    frame.write_parquet(path)
    raw = raw_of(path)
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert q["x_UnreadableAmounts"].to_list() == [
        "cost: 'NaN' is not a number", "cost: 'inf' is not a number", f"cost: '1e+30' {OVERFLOW}",
        "credits.amount: 'NaN' is not a number", f"credits.amount: '1e+30' {OVERFLOW}"]
    focus = gcp.to_focus(raw).collect()
    assert focus["BilledCost"].to_list() == [D("0.106444")]
    assert checks_of(raw).unknown_amount_rows == 5


def test_unreadable_credit_amounts_in_csv_text_are_quarantined(tmp_path):
    path = tmp_path / "credits.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for amount in ("-0.02", "NaN", f"-{FORTY_DIGITS}"):
            values = csv_line("0.5")
            values[CSV_HEADER.index("credits")] = (f'[{{"name": "c", "amount": {amount}, "type": "DISCOUNT"}}]'
                                                   if amount != "NaN" else "[{'name': 'c', 'amount': 'NaN'}]")
            writer.writerow(values)
    raw = raw_of(path)
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert q["x_UnreadableAmounts"].to_list() == [
        "credits.amount: 'NaN' is not a number", f"credits.amount: '-{FORTY_DIGITS}' {OVERFLOW}"]
    assert gcp.to_focus(raw).collect()["BilledCost"].to_list() == [D("0.48")]


# --- item 5: an empty amount is never a silent 0 -----------------------------------------------------
def test_a_credit_without_an_amount_quarantines_its_row(tmp_path):
    """The invoice of a row is cost + its credits: a credit with no amount leaves it unknown."""
    empty = line(credits=[{"name": "Committed use discount", "amount": None, "full_name": None, "id": "cud",
                           "type": "COMMITTED_USAGE_DISCOUNT"}])
    raw = raw_of(write_jsonl(tmp_path / "x.jsonl", [line(), empty, line(cost=None)]))
    assert gcp.to_focus(raw).collect().select("BilledCost", "EffectiveCost").rows() == [(D("0.106444"),) * 2]
    q = totals.quarantine(raw).collect().sort("x_SourceRow")
    assert q["x_QuarantineReason"].to_list() == [
        "credits: a credit without an amount (the row's invoiced amount is unknown)", "cost is empty"]


def test_effective_cost_is_cost_plus_discount_credits_and_list_cost_falls_back_to_cost(tmp_path):
    """cost 10, CUD credit -3, sustained use -0.5: BilledCost = EffectiveCost = 6.5; no cost_at_list:
    ListCost = ContractedCost = cost 10 (noted), never 0."""
    row = line(cost=10.0, cost_at_list=None, credits=[
        {"name": "CUD", "amount": -3.0, "full_name": None, "id": "cud", "type": "COMMITTED_USAGE_DISCOUNT"},
        {"name": "SUD", "amount": -0.5, "full_name": None, "id": "sud", "type": "SUSTAINED_USAGE_DISCOUNT"}])
    raw = raw_of(write_jsonl(tmp_path / "x.jsonl", [row]))
    focus = gcp.to_focus(raw).collect()
    assert focus.select("BilledCost", "EffectiveCost", "ListCost", "ContractedCost").rows() == [
        (D("6.5"), D("6.5"), D("10"), D("10"))]
    assert "ListCost: cost_at_list absent; cost used" in focus["x_SourceChanges"][0].to_list()
    assert totals.raw_totals(raw).collect().select("billed", "amortized").rows() == [(D("6.5"), D("6.5"))]


# --- item 8: no documented line item identity --------------------------------------------------------
def test_two_identical_rows_are_two_charges(tmp_path):
    """The export has no line item id: two identical rows cannot be told from two genuine charges
    of the same SKU, project and hour, so both are kept (nothing invented)."""
    raw = raw_of(write_jsonl(tmp_path / "a.jsonl", [line(), line()]), write_jsonl(tmp_path / "b.jsonl", [line()]))
    assert gcp.to_focus(raw).collect()["BilledCost"].to_list() == [D("0.106444")] * 3
    assert totals.quarantine(raw).collect().height == 0
    assert checks_of(raw).problems == []


# --- item 10: a declared billing currency ------------------------------------------------------------
def without_currency(**changes) -> dict:
    out = line(**changes)
    del out["currency"]
    return out


def test_an_export_without_currency_is_refused_naming_the_column(tmp_path):
    path = write_jsonl(tmp_path / "nocur.jsonl", [without_currency()])
    with pytest.raises(SourceFormatError, match=r"nocur.jsonl: required column\(s\) missing: currency "
                                                r"\(.*declared billing currency"):
        gcp.scan_raw(path, LINEAGE, label="nocur.jsonl")


def test_a_declared_currency_fills_the_column_and_is_noted_on_every_row(tmp_path):
    promotion = {"name": "Free trial", "amount": -0.05, "full_name": None, "id": "trial", "type": "PROMOTION"}
    path = write_jsonl(tmp_path / "nocur.jsonl", [without_currency(credits=[promotion])])
    other = write_jsonl(tmp_path / "cur.jsonl", [line()])
    declared = Lineage(source="test", source_format=gcp.FORMAT, delivery_id="d", billing_period=None,
                       ingested_at=datetime(2024, 5, 1, tzinfo=UTC), billing_currency="EUR")
    raw = raw_of(path, other, lineage=declared)
    assert raw.select("x_SourceFile", "currency", "x_DeclaredCurrency").collect().rows() == [
        ("nocur.jsonl", "EUR", "EUR"), ("cur.jsonl", "USD", None)]
    focus = gcp.to_focus(raw).collect()
    noted = focus.select("x_SourceFile", "ChargeCategory", "BillingCurrency", "BilledCost",
                         pl.col("x_SourceChanges").list.contains(DECLARED_CURRENCY_NOTE).alias("noted"))
    assert sorted(noted.rows()) == [("cur.jsonl", "Usage", "USD", D("0.106444"), False),
                                    ("nocur.jsonl", "Credit", "EUR", D("-0.05"), True),
                                    ("nocur.jsonl", "Usage", "EUR", D("0.126444"), True)]
    assert checks_of(raw).problems == []


# --- item 15: exact decimals, never a float ----------------------------------------------------------
def test_unit_prices_are_exact_decimal_quotients(tmp_path):
    """cost 1.1 for 0.000011 hours: 100000 exactly (through a float: 100000.000000000016)."""
    row = line(cost=1.1, cost_at_list=1.1, credits=[],
               usage={"amount": 0.0396, "unit": "seconds", "amount_in_pricing_units": 0.000011, "pricing_unit": "hour"})
    focus = gcp.to_focus(raw_of(write_jsonl(tmp_path / "x.jsonl", [row]))).collect()
    assert focus.select("ListUnitPrice", "ContractedUnitPrice").rows() == [(D("100000"), D("100000"))]


def test_commitment_quantity_is_exact(tmp_path):
    """4 hours at cost 0.126444, CUD credit -0.075866: 4 x 0.075866 / 0.126444 = 2.39998734617696...
    → 2.399987346177 (through a float: 2.399987346176)."""
    row = line(credits=[{"name": "CUD", "amount": -0.075866, "full_name": None, "id": "cud",
                         "type": "COMMITTED_USAGE_DISCOUNT"}], subscription={"instance_id": "sub-1"})
    focus = gcp.to_focus(raw_of(write_jsonl(tmp_path / "x.jsonl", [row]))).collect()
    assert focus.select("CommitmentDiscountId", "CommitmentDiscountQuantity", "BilledCost").rows() == [
        ("sub-1", D("2.399987346177"), D("0.050578"))]
