"""The real AWS Well-Architected workshop months (Oct and Nov 2018): converted to FOCUS with
``convert_files``, reconciled against invoice totals computed here from the raw CUR's
``bill/InvoiceId`` groups (plain pyarrow + ``Decimal``, independent of the converter): BilledCost
ties to the raw invoice totals exactly, and to the cent-rounded totals an invoice prints within
one minor unit."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from focus_platform.landing.zone import LocalStore
from focus_platform.pipeline import convert_files
from focus_platform.reconciliation.invoices import invoice_files, read_invoices
from focus_platform.reconciliation.reconcile import reconcile_period

WORKSHOP = Path(str(resources.files("focus_platform") / "sample_data" / "landing" / "aws-workshop" / "WorkshopCUR"))
WORKSHOP_OCT = WORKSHOP / "20181001-20181101" / "wa_labs_Oct2018-WorkshopCUR-00001.snappy.parquet"
WORKSHOP_NOV = WORKSHOP / "20181101-20181201" / "wa_labs_Nov2018-WorkshopCUR-00001.snappy.parquet"

HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"
RAW_COLUMNS = ["bill_invoice_id", "bill_payer_account_id", "line_item_currency_code", "bill_billing_period_start_date",
               "line_item_line_item_type", "line_item_unblended_cost"]


def raw_invoice_totals() -> dict[tuple, dict[str, Decimal]]:
    """(invoice id, payer, currency, period) → total / tax / credits from the raw CUR rows: the
    invoice basis of a legacy CUR without savings plans is lineItem/UnblendedCost of every row,
    each float taken exactly as written (``Decimal(repr(x))``) and summed in Decimal."""
    out: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for path in (WORKSHOP_OCT, WORKSHOP_NOV):
        raw = pl.from_arrow(pq.read_table(path, columns=RAW_COLUMNS)).with_columns(
            pl.col("bill_billing_period_start_date").dt.strftime("%Y-%m"))
        groups = raw.partition_by(["bill_invoice_id", "bill_payer_account_id", "line_item_currency_code",
                                   "bill_billing_period_start_date", "line_item_line_item_type"], as_dict=True)
        for (inv, payer, cur, period, kind), part in groups.items():
            amount = sum(map(Decimal, map(repr, part["line_item_unblended_cost"].to_list())), Decimal(0))
            key = (inv, payer, cur, period)
            out[key]["total"] += amount
            if kind == "Tax":
                out[key]["tax"] += amount
            if kind in ("Credit", "Refund"):
                out[key]["credits"] += amount
    return out


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    out = tmp_path_factory.mktemp("workshop") / "focus.parquet"
    result = convert_files([str(WORKSHOP_OCT), str(WORKSHOP_NOV)], str(out), source="aws-workshop")
    assert result.checks.problems == []
    return pl.scan_parquet(out), raw_invoice_totals()


def write_invoices(root, totals, rounding: Decimal | None = None) -> pl.DataFrame:
    lines = []
    for (inv, payer, cur, period), t in sorted(totals.items()):
        total = t["total"].quantize(rounding, rounding=ROUND_HALF_UP) if rounding else t["total"]
        lines.append(f'{inv},"Amazon Web Services, Inc.",{payer},{period},{cur},{total},{t["tax"]},{t["credits"]},,')
    (root / "invoices").mkdir(parents=True, exist_ok=True)
    (root / "invoices" / "workshop.csv").write_text(HEADER + "\n".join(lines) + "\n")
    return read_invoices(invoice_files(LocalStore(root)))


def test_workshop_billed_cost_ties_to_the_raw_invoice_totals(workshop, tmp_path):
    focus, totals = workshop
    assert [(k[0], k[3]) for k in sorted(totals)] == [("156090591", "2018-10"), ("159263274", "2018-11")]
    invoices = write_invoices(tmp_path, totals)
    for (invoice_id, payer, currency, period), t in sorted(totals.items()):
        rec = reconcile_period(period, invoices, focus.filter(pl.col("x_BillingPeriod") == period))
        (row,) = rec.rows.iter_rows(named=True)  # one invoice a month, every FOCUS row on it
        assert (row["InvoiceId"], row["BillingAccountId"], row["BillingCurrency"]) == (invoice_id, payer, currency)
        assert row["FocusBilledCost"] == t["total"] == row["InvoiceTotalNet"]
        assert (row["Status"], row["Difference"], row["DriftPercent"]) == ("match", 0, 0)
        assert row["FocusNoInvoiceId"] == 0 and row["FocusOutsidePeriod"] == 0  # matched by InvoiceId
        assert row["TaxDifference"] == 0 and row["CreditsDifference"] == 0
        assert rec.drift_errors.height == rec.difference_warnings.height == rec.unmatched.height == 0
    assert {r: v["total"] for r, v in totals.items()} == {
        ("156090591", "836060457634", "USD", "2018-10"): Decimal("4064.4831315379"),
        ("159263274", "836060457634", "USD", "2018-11"): Decimal("3505.3269681268"),
    }


def test_workshop_cent_rounded_invoice_is_within_one_minor_unit(workshop, tmp_path):
    focus, totals = workshop
    invoices = write_invoices(tmp_path, totals, rounding=Decimal("0.01"))
    for (_, _, _, period), t in sorted(totals.items()):
        rec = reconcile_period(period, invoices, focus.filter(pl.col("x_BillingPeriod") == period))
        (row,) = rec.rows.iter_rows(named=True)
        assert row["Status"] == "rounding" and abs(row["Difference"]) < Decimal("0.01")
        assert row["InvoiceTotal"] == t["total"].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert rec.drift_errors.height == rec.difference_warnings.height == 0
