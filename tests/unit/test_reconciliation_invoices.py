"""Invoice files: the documented CSV / JSON-lines format, Decimal money, duplicates, credit memos
(netted into the invoice's period, held pending until the invoice arrives) and affected periods."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.landing.zone import LocalStore
from focus_platform.reconciliation.invoices import (
    INVOICE_SCHEMA,
    DuplicateInvoiceError,
    InvoiceError,
    affected_periods,
    invoice_files,
    invoice_files_fingerprint,
    invoices_from_focus,
    parse_invoice_file,
    read_invoices,
)
from focus_platform.spec.columns import MONEY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reconciliation"
HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"


def csv_file(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


INV_JAN = "INV-1,\"Amazon Web Services, Inc.\",012345678901,2024-01,USD,1000.50,80.00,-20.25,2024-02-02,"
INV_FEB = "INV-2,\"Amazon Web Services, Inc.\",012345678901,2024-02,USD,900.00,70.00,,2024-03-02,"
MEMO_JAN = "CM-1,\"Amazon Web Services, Inc.\",012345678901,2024-03,USD,-25.50,,-25.50,2024-03-15,INV-1"


def by_id(df: pl.DataFrame) -> dict[str, dict]:
    return {r["InvoiceId"]: r for r in df.iter_rows(named=True)}


def test_example_fixtures_csv_and_json_lines_read_the_same():
    csv_rows = parse_invoice_file("invoices/example.csv", (FIXTURES / "example_invoices.csv").read_bytes())
    jsonl_rows = parse_invoice_file("invoices/example.jsonl", (FIXTURES / "example_invoices.jsonl").read_bytes())
    assert [r.business() for r in csv_rows] == [r.business() for r in jsonl_rows]
    assert csv_rows[0].billing_account_id == "012345678901"  # leading zero kept
    assert csv_rows[0].total == Decimal("1234.567890123456") and isinstance(csv_rows[0].total, Decimal)


def test_read_invoices_types_money_as_decimal_and_keeps_lineage():
    df = read_invoices([("invoices/a/2024-01.csv", csv_file(INV_JAN))])
    assert df.schema == INVOICE_SCHEMA
    assert df.schema["InvoiceTotal"] == MONEY
    row = df.row(0, named=True)
    assert row["InvoiceTotal"] == Decimal("1000.50") and row["InvoiceCredits"] == Decimal("-20.25")
    assert row["IssuedDate"] == date(2024, 2, 2) and row["AdjustsInvoiceId"] is None
    assert (row["x_InvoiceKind"], row["x_InvoiceStatus"], row["x_AppliesToPeriod"]) == ("invoice", "invoice", "2024-01")
    assert (row["x_InvoiceSource"], row["x_SourceFile"], row["x_SourceRow"]) == ("file", "invoices/a/2024-01.csv", 2)


def test_json_lines_money_is_never_a_float():
    text = b'{"invoice_id": 42, "billing_account_id": "a", "billing_period": "2024-01", "currency": "eur", ' \
           b'"total": 0.1, "tax": "0.02"}\n\n'
    (inv,) = parse_invoice_file("invoices/x.jsonl", text)
    assert inv.invoice_id == "42" and inv.currency == "EUR"
    assert inv.total == Decimal("0.1") and inv.tax == Decimal("0.02")  # parsed as decimal text, not float
    array = b'[{"invoice_id": "A", "billing_account_id": "a", "billing_period": "2024-01", "currency": "USD", ' \
            b'"total": "1"}]'
    assert parse_invoice_file("invoices/x.json", array)[0].invoice_id == "A"


@pytest.mark.parametrize("content,message", [
    (csv_file("INV-9,,acct,2024-01,USD,12.3456789012345,,,,"), "total '12.3456789012345' has more than 12 decimals"),
    (csv_file("INV-9,,acct,2024-01,USD,ten,,,,"), "total 'ten' is not a decimal amount"),
    (csv_file("INV-9,,acct,2024-1,USD,10,,,,"), "row 2: billing_period '2024-1' is not a billing period: expected YYYY-MM"),
    (csv_file("INV-9,,acct,2024-13,USD,10,,,,"), "billing_period '2024-13' is not a billing period: .* month 01 to 12"),
    (csv_file("INV-9,,acct,2024-01,US,10,,,,"), "currency 'US' is not an ISO 4217 code"),
    (csv_file("INV-9,,,2024-01,USD,10,,,,"), "missing required field.*billing_account_id"),
    (csv_file("INV-9,,acct,2024-01,USD,10,,,31/01/2024,"), "issued_date '31/01/2024' is not YYYY-MM-DD"),
    (csv_file("INV-9,,acct,2024-01,USD,10,,,,INV-9"), "adjusts itself"),
    (csv_file("INV-9,,acct,2024-01,USD,10,,,,,extra"), "more fields than the header"),
    (b"invoice_id,total\nX,1\n", "header lacks billing_account_id, billing_period, currency"),
    (b"", "the file is empty"),
])
def test_bad_invoice_rows_name_file_row_and_field(content, message):
    with pytest.raises(InvoiceError, match=message) as exc:
        read_invoices([("invoices/bad.csv", content)])
    assert "invoices/bad.csv" in str(exc.value)


def test_unknown_file_type_is_refused():
    with pytest.raises(InvoiceError, match="unknown invoice file type"):
        parse_invoice_file("invoices/x.pdf", b"%PDF")


def test_identical_duplicates_are_one_invoice_listing_the_copies():
    df = read_invoices([("invoices/a.csv", csv_file(INV_JAN)), ("invoices/copy/a.csv", csv_file(INV_JAN))])
    assert df.height == 1
    assert df["x_SourceFile"].item() == "invoices/a.csv"
    assert df["x_DuplicateFiles"].item().to_list() == ["invoices/copy/a.csv#2"]


def test_duplicate_invoice_id_with_different_totals_is_an_error_naming_both_files():
    changed = INV_JAN.replace("1000.50", "1000.75")
    with pytest.raises(DuplicateInvoiceError) as exc:
        read_invoices([("invoices/a.csv", csv_file(INV_JAN)), ("invoices/b.csv", csv_file(changed))])
    message = str(exc.value)
    assert "invoice INV-1" in message and "invoices/a.csv row 2" in message and "invoices/b.csv row 2" in message
    assert "total: 1000.50 vs 1000.75" in message and "not overwritten" in message


def test_credit_memo_is_netted_into_the_period_of_the_invoice_it_adjusts():
    df = by_id(read_invoices([("invoices/jan.csv", csv_file(INV_JAN)), ("invoices/memo.csv", csv_file(MEMO_JAN))]))
    memo = df["CM-1"]
    assert (memo["x_InvoiceKind"], memo["x_InvoiceStatus"]) == ("credit_memo", "applied")
    assert memo["BillingPeriod"] == "2024-03"  # issued in March ...
    assert (memo["x_AppliesToInvoiceId"], memo["x_AppliesToPeriod"]) == ("INV-1", "2024-01")  # ... for January


def test_credit_memo_for_an_unseen_invoice_is_held_pending_then_applied():
    pending = by_id(read_invoices([("invoices/memo.csv", csv_file(MEMO_JAN))]))["CM-1"]
    assert pending["x_InvoiceStatus"] == "pending"
    assert pending["x_AppliesToPeriod"] is None and "INV-1, not seen yet" in pending["x_StatusReason"]
    later = by_id(read_invoices([("invoices/memo.csv", csv_file(MEMO_JAN)), ("invoices/jan.csv", csv_file(INV_JAN))]))
    assert later["CM-1"]["x_InvoiceStatus"] == "applied" and later["CM-1"]["x_AppliesToPeriod"] == "2024-01"


def test_memo_chains_resolve_to_the_invoice_and_bad_memos_are_rejected_not_netted():
    memo_of_memo = "CM-2,,012345678901,2024-04,USD,1.00,,,,CM-1"
    eur_memo = "CM-3,,012345678901,2024-03,EUR,-5,,,,INV-1"
    other_account = "CM-4,,999999999999,2024-03,USD,-5,,,,INV-1"
    loop_a, loop_b = "L-1,,a,2024-01,USD,1,,,,L-2", "L-2,,a,2024-01,USD,1,,,,L-1"
    df = by_id(read_invoices([("invoices/all.csv", csv_file(INV_JAN, MEMO_JAN, memo_of_memo, eur_memo, other_account,
                                                             loop_a, loop_b))]))
    assert (df["CM-2"]["x_InvoiceStatus"], df["CM-2"]["x_AppliesToInvoiceId"]) == ("applied", "INV-1")
    assert df["CM-3"]["x_InvoiceStatus"] == "rejected" and "in EUR adjusts invoice INV-1 in USD" in df["CM-3"]["x_StatusReason"]
    assert df["CM-4"]["x_InvoiceStatus"] == "rejected" and "billing account" in df["CM-4"]["x_StatusReason"]
    assert df["L-1"]["x_InvoiceStatus"] == "rejected" and "loops" in df["L-1"]["x_StatusReason"]


def test_affected_periods_name_the_period_a_late_memo_adjusts():
    before = read_invoices([("invoices/jan.csv", csv_file(INV_JAN)), ("invoices/feb.csv", csv_file(INV_FEB))])
    after = read_invoices([("invoices/jan.csv", csv_file(INV_JAN)), ("invoices/feb.csv", csv_file(INV_FEB)),
                           ("invoices/memo.csv", csv_file(MEMO_JAN))])
    assert affected_periods(None, before) == ["2024-01", "2024-02"]
    assert affected_periods(before, before) == []
    assert affected_periods(before, after) == ["2024-01"]  # issued in March, reconciled in January
    pending = read_invoices([("invoices/feb.csv", csv_file(INV_FEB)), ("invoices/memo.csv", csv_file(MEMO_JAN))])
    assert affected_periods(before.filter(pl.col("InvoiceId") == "INV-2"), pending) == ["2024-03"]  # held in March
    assert affected_periods(pending, after) == ["2024-01", "2024-03"]  # the invoice arrives: moves to January


def test_invoice_files_are_found_under_the_landing_zone(tmp_path):
    (tmp_path / "invoices" / "acct").mkdir(parents=True)
    (tmp_path / "invoices" / "acct" / "2024-01.csv").write_bytes(csv_file(INV_JAN))
    (tmp_path / "invoices" / "acct" / "notes.txt").write_text("not an invoice")
    (tmp_path / "aws" / "2024-01").mkdir(parents=True)
    (tmp_path / "aws" / "2024-01" / "cur.csv").write_text("x")
    store = LocalStore(tmp_path)
    assert [k for k, _ in invoice_files(store)] == ["invoices/acct/2024-01.csv"]
    before = invoice_files_fingerprint(store)
    (tmp_path / "invoices" / "acct" / "notes2.txt").write_text("still not an invoice")
    assert invoice_files_fingerprint(store) == before
    (tmp_path / "invoices" / "acct" / "2024-03-memo.jsonl").write_text("{}")
    assert invoice_files_fingerprint(store) != before  # a landed memo: the sensor cursor moves


def test_invoice_summaries_derived_from_focus_are_marked():
    focus = pl.DataFrame({
        "BillingAccountId": ["a", "a", "a", "g"], "x_BillingPeriod": ["2024-01"] * 4,
        "BillingCurrency": ["USD", "USD", "USD", "EUR"], "InvoiceId": ["I1", "I1", "I1", None],
        "InvoiceIssuerName": ["AWS", None, "AWS", "Google"], "ChargeCategory": ["Usage", "Tax", "Credit", "Usage"],
        "BilledCost": [Decimal(10), Decimal(1), Decimal(-2), Decimal(5)], "x_Source": ["s1", "s1", "s2", "g"],
    }, schema_overrides={"BilledCost": MONEY}).lazy()
    out = by_id(invoices_from_focus(focus).collect().with_columns(pl.col("InvoiceId").fill_null("-")))
    assert out["I1"]["x_InvoiceSource"] == "focus:InvoiceId" and out["-"]["x_InvoiceSource"] == "focus:derived"
    assert (out["I1"]["InvoiceTotal"], out["I1"]["InvoiceTax"], out["I1"]["InvoiceCredits"]) == (
        Decimal(9), Decimal(1), Decimal(-2))
    assert out["I1"]["x_InvoiceStatus"] == "derived" and out["I1"]["x_SourceFile"] == "focus_costs:s1,s2"
    assert out["-"]["BillingCurrency"] == "EUR" and out["-"]["InvoiceTotal"] == Decimal(5)
