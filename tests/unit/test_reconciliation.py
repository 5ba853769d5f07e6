"""Reconciliation of one billing period on hand-made FOCUS rows and invoices: statuses, thresholds
per currency (M3), credit memos, bad input (unknown account, other currency, pending memo) and the
explaining rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

from focus_platform.periods import PeriodError
from focus_platform.reconciliation.invoices import read_invoices
from focus_platform.reconciliation.reconcile import (
    RECONCILIATION_SCHEMA,
    classify,
    drift_percent,
    reconcile_period,
)
from focus_platform.spec.columns import MONEY, TIMESTAMP

P = "2024-02"
HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"
FOCUS_SCHEMA = {"BillingAccountId": pl.String, "BillingCurrency": pl.String, "InvoiceId": pl.String,
                "InvoiceIssuerName": pl.String, "BilledCost": MONEY, "ChargeCategory": pl.String,
                "ChargeClass": pl.String, "ChargePeriodStart": TIMESTAMP, "ChargeDescription": pl.String,
                "x_RowId": pl.String, "x_Source": pl.String}


def row(row_id: str, cost: str, *, account: str = "A", currency: str = "USD", invoice: str | None = "INV-A",
        category: str = "Usage", charge_class: str | None = None, start: str = "2024-02-10", source: str = "s1") -> dict:
    return {"BillingAccountId": account, "BillingCurrency": currency, "InvoiceId": invoice,
            "InvoiceIssuerName": "Issuer", "BilledCost": Decimal(cost), "ChargeCategory": category,
            "ChargeClass": charge_class, "ChargePeriodStart": datetime.fromisoformat(start).replace(tzinfo=UTC),
            "ChargeDescription": f"row {row_id}", "x_RowId": row_id, "x_Source": source}


def focus(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=FOCUS_SCHEMA).lazy()


def invoices(*lines: str) -> pl.DataFrame:
    return read_invoices([("invoices/test.csv", (HEADER + "".join(l + "\n" for l in lines)).encode())])


def by_key(rec) -> dict[str, dict]:
    return {r["InvoiceId"] or f"{r['BillingAccountId']}/{r['BillingCurrency']}": r
            for r in rec.rows.iter_rows(named=True)}


BASE_ROWS = (row("u1", "90.00"), row("t1", "10.00", category="Tax"), row("c1", "-5.00", category="Credit"))
INV_A = f"INV-A,Issuer,A,{P},USD,95.00,10.00,-5.00,2024-03-02,"


def test_matching_invoice_has_zero_difference_and_no_explaining_rows():
    rec = reconcile_period(P, invoices(INV_A), focus(*BASE_ROWS))
    assert rec.rows.schema == RECONCILIATION_SCHEMA
    r = by_key(rec)["INV-A"]
    assert (r["Status"], r["Difference"], r["DriftPercent"]) == ("match", 0, 0)
    assert (r["FocusBilledCost"], r["FocusTax"], r["FocusCredits"], r["FocusRows"]) == (
        Decimal(95), Decimal(10), Decimal(-5), 3)
    assert (r["TaxDifference"], r["CreditsDifference"]) == (0, 0)
    assert r["ExplainingRows"] == [] and r["x_InvoiceSource"] == "file" and r["MinorUnit"] == Decimal("0.01")
    assert rec.drift_errors.height == rec.difference_warnings.height == rec.unmatched.height == 0


@pytest.mark.parametrize("currency,diff,total,status", [
    ("USD", "0", "100", "match"),
    ("USD", "0.01", "100000", "rounding"),          # one minor unit: tolerated
    ("USD", "0.02", "100000", "difference"),        # > 1 cent, drift 0.00002 %: WARN
    ("USD", "100.01", "100000", "drift"),            # drift 0.10001 % > 0.1 %: ERROR
    ("USD", "100", "100000", "difference"),          # exactly 0.1 % is not above it
    ("JPY", "1", "1000", "rounding"),                # JPY has no minor digits
    ("JPY", "2", "100000", "difference"),
    ("KWD", "0.001", "10", "rounding"),              # 3 digits
    ("KWD", "0.002", "10", "difference"),
    ("USD", "0.02", "0", "drift"),                   # a zero total: drift undefined, any difference beyond 1 unit
])
def test_m3_thresholds_per_currency_minor_unit(currency, diff, total, status):
    assert classify(Decimal(diff), Decimal(total), currency) == status


def test_drift_percent_is_exact_decimal():
    assert drift_percent(Decimal(2), Decimal(100)) == Decimal(2)
    assert drift_percent(Decimal(-1), Decimal(-3)) == Decimal("33.333333333333")
    assert drift_percent(Decimal(1), Decimal(0)) is None


def test_rows_without_invoice_id_are_counted_and_named_as_explaining_rows():
    extra = [row(f"x{i}", "1.00", invoice=None) for i in range(2)]  # +2 % on 100
    rec = reconcile_period(P, invoices(f"INV-A,Issuer,A,{P},USD,100.00,,,2024-03-02,"),
                           focus(row("u1", "100.00"), *extra))
    r = by_key(rec)["INV-A"]
    assert (r["Status"], r["Difference"], r["DriftPercent"]) == ("drift", Decimal(2), Decimal(2))
    assert r["FocusNoInvoiceId"] == Decimal(2) and "2 FOCUS row(s) without InvoiceId" in r["Note"]
    named = {(e["Category"], e["x_RowId"]) for e in r["ExplainingRows"]}
    assert named == {("no_invoice_id", "x0"), ("no_invoice_id", "x1")}
    assert all(e["Counted"] and e["x_Source"] == "s1" for e in r["ExplainingRows"])
    assert rec.drift_errors["InvoiceId"].to_list() == ["INV-A"]


def test_explaining_rows_cover_corrections_credits_tax_other_invoice_and_outside_period():
    rows = focus(
        row("u1", "100"), row("corr", "-3", charge_class="Correction", start="2024-01-20"),
        row("cr1", "-1", category="Credit"), row("cr2", "-2", category="Credit"), row("tx", "7", category="Tax"),
        row("other", "50", invoice="INV-OTHER"),
    )
    rec = reconcile_period(P, invoices(f"INV-A,Issuer,A,{P},USD,100.00,5.00,-3.00,2024-03-02,"), rows, top_n=1)
    r = by_key(rec)["INV-A"]
    assert r["FocusBilledCost"] == Decimal(101) and r["Difference"] == Decimal(1)
    assert (r["TaxDifference"], r["CreditsDifference"], r["FocusCorrections"], r["FocusOutsidePeriod"]) == (
        Decimal(2), Decimal(0), Decimal(-3), Decimal(-3))
    cats = [(e["Category"], e["x_RowId"], e["Counted"]) for e in r["ExplainingRows"]]
    assert cats == [("correction", "corr", True), ("credit", "cr2", True), ("tax", "tx", True),
                    ("outside_period", "corr", True), ("other_invoice_id", "other", False)]  # top 1 by |cost|
    other = by_key(rec)["INV-OTHER"]  # rows of another InvoiceId: their own row, not summed into INV-A
    assert (other["Status"], other["x_InvoiceSource"], other["FocusBilledCost"]) == (
        "missing_invoice", "focus:InvoiceId", Decimal(50))


def test_invoice_with_unknown_billing_account_is_reported_not_dropped():
    rec = reconcile_period(P, invoices(INV_A, f"INV-Z,Issuer,ZZZ,{P},USD,10.00,,,2024-03-02,"), focus(*BASE_ROWS))
    z = by_key(rec)["INV-Z"]
    assert (z["Status"], z["FocusBilledCost"], z["FocusRows"], z["Difference"]) == (
        "no_focus_rows", 0, 0, Decimal("-10.00"))
    assert "billing account ZZZ has no FOCUS rows in 2024-02" in z["Note"]
    assert rec.unmatched["InvoiceId"].to_list() == ["INV-Z"] and rec.drift_errors.height == 0


def test_invoice_in_another_currency_than_its_focus_rows_is_reported_and_never_summed():
    rec = reconcile_period(P, invoices(f"INV-A,Issuer,A,{P},EUR,95.00,,,2024-03-02,"), focus(*BASE_ROWS))
    rows = rec.rows.sort("BillingCurrency")
    assert rows.select("BillingCurrency", "Status").rows() == [("EUR", "currency_mismatch"),
                                                               ("USD", "currency_mismatch")]
    eur, usd = rows.iter_rows(named=True)
    assert eur["Difference"] is None and eur["FocusBilledCost"] is None  # nothing compared across currencies
    assert "invoice in EUR" in eur["Note"] and "USD" in eur["Note"]
    assert usd["FocusBilledCost"] == Decimal(95) and usd["InvoiceTotal"] is None
    assert rec.unmatched.height == 2


def test_two_currencies_of_one_account_are_reconciled_apart():
    rec = reconcile_period(P, invoices(INV_A, f"INV-E,Issuer,A,{P},EUR,40.00,,,2024-03-02,"),
                           focus(*BASE_ROWS, row("e1", "40.00", currency="EUR", invoice=None)))
    got = {r["InvoiceId"]: (r["BillingCurrency"], r["FocusBilledCost"], r["Status"]) for r in rec.rows.iter_rows(named=True)}
    assert got == {"INV-A": ("USD", Decimal(95), "match"), "INV-E": ("EUR", Decimal(40), "match")}


def test_credit_memo_of_a_later_period_is_netted_into_the_adjusted_invoice():
    refund = row("refund", "-6.00", category="Credit")  # restated FOCUS: a refund on the invoice
    memo = "CM-1,Issuer,A,2024-04,USD,-6.00,,-6.00,2024-04-10,INV-A"
    before = reconcile_period(P, invoices(INV_A), focus(*BASE_ROWS, refund))
    assert by_key(before)["INV-A"]["Status"] == "drift"
    assert [e["x_RowId"] for e in by_key(before)["INV-A"]["ExplainingRows"] if e["Category"] == "credit"] == [
        "refund", "c1"]
    after = reconcile_period(P, invoices(INV_A, memo), focus(*BASE_ROWS, refund))
    r = by_key(after)["INV-A"]
    assert (r["Status"], r["InvoiceTotal"], r["CreditMemoTotal"], r["InvoiceTotalNet"], r["CreditMemoIds"]) == (
        "match", Decimal(95), Decimal(-6), Decimal(89), ["CM-1"])
    assert r["CreditsDifference"] == 0 and "credit memo(s) netted: CM-1" in r["Note"]
    # the memo's own period does not count it again
    april = reconcile_period("2024-04", invoices(INV_A, memo), focus())
    assert april.rows.height == 0


def test_pending_memo_is_listed_in_its_issue_period_until_its_invoice_arrives():
    memo = "CM-9,Issuer,A,2024-04,USD,-4.00,,,2024-04-10,INV-LATE"
    april = reconcile_period("2024-04", invoices(memo), focus())
    (r,) = april.rows.iter_rows(named=True)
    assert (r["InvoiceId"], r["Status"]) == ("CM-9", "memo_pending") and "not seen yet" in r["Note"]
    assert april.pending_memos.height == 1 and april.unmatched.height == 0
    late = f"INV-LATE,Issuer,A,{P},USD,96.00,,,2024-04-20,"
    feb = reconcile_period(P, invoices(memo, late), focus(row("u", "92.00", invoice="INV-LATE")))
    assert by_key(feb)["INV-LATE"]["Status"] == "match" and by_key(feb)["INV-LATE"]["CreditMemoIds"] == ["CM-9"]
    assert reconcile_period("2024-04", invoices(memo, late), focus()).rows.height == 0


def test_rejected_memo_is_unmatched():
    memo = "CM-E,Issuer,A,2024-04,EUR,-4.00,,,2024-04-10,INV-A"
    april = reconcile_period("2024-04", invoices(INV_A, memo), focus())
    assert april.rows["Status"].to_list() == ["memo_rejected"] and april.unmatched.height == 1


def test_focus_rows_without_invoice_missing_when_closed_open_otherwise():
    no_id = focus(row("g1", "10", account="G", invoice=None))
    assert by_key(reconcile_period(P, None, no_id))["G/USD"]["Status"] == "open"
    closed = reconcile_period(P, None, no_id, closed_through="2024-02")
    r = by_key(closed)["G/USD"]
    assert (r["Status"], r["x_InvoiceSource"], r["FocusBilledCost"], r["InvoiceTotal"]) == (
        "missing_invoice", "focus:derived", Decimal(10), None)
    assert closed.missing_invoices.height == 1
    # an invoice id in the rows means the provider closed the bill
    assert by_key(reconcile_period(P, None, focus(row("a1", "5"))))["INV-A"]["Status"] == "missing_invoice"
    # a document of a later period of the account closes this one too
    later = invoices("INV-G3,Issuer,G,2024-03,USD,1,,,2024-04-02,")
    assert by_key(reconcile_period(P, later, no_id))["G/USD"]["Status"] == "missing_invoice"


def test_closed_through_is_a_billing_period_compared_as_one():
    no_id = focus(row("g1", "10", account="G", invoice=None))
    assert by_key(reconcile_period(P, None, no_id, closed_through="2024-01"))["G/USD"]["Status"] == "open"
    assert by_key(reconcile_period(P, None, no_id, closed_through="2025-01"))["G/USD"]["Status"] == "missing_invoice"
    with pytest.raises(PeriodError, match="closed_through '2024-2' is not a billing period"):
        reconcile_period(P, None, no_id, closed_through="2024-2")
    with pytest.raises(PeriodError, match="period '2024-13' is not a billing period"):
        reconcile_period("2024-13", None, no_id)


def test_charges_outside_the_billing_period_are_counted_and_named():
    december = "2023-12"
    rows = focus(row("in", "5", invoice=None, start="2023-12-31T23:59:59"),
                 row("next", "7", invoice=None, start="2024-01-01T00:00:00"))
    rec = reconcile_period(december, None, rows)
    assert by_key(rec)["A/USD"]["FocusOutsidePeriod"] == Decimal(7)


def test_several_sources_of_one_account_are_summed_and_listed():
    rec = reconcile_period(P, invoices(INV_A), focus(*BASE_ROWS, row("dup", "95", source="s2")))
    r = by_key(rec)["INV-A"]
    assert r["FocusSources"] == ["s1", "s2"] and r["Status"] == "drift"  # a double-fed account shows up
