"""The embedded landing zone's invoice documents (``sample_data/landing/invoices``) reconcile with
the embedded deliveries: every source ingested and published with the core pipeline, then each
billing period reconciled. Every invoice document matches sum(BilledCost) exactly (drift 0), the
workshop invoices carry the CUR's own invoice ids, and the Azure EA credit note issued in March 2024
is netted into the January invoice it corrects (an over-invoice of USD 40.00 brought back)."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from focus_platform.landing.config import load_sources
from focus_platform.landing.zone import LocalStore, discover_deliveries
from focus_platform.pipeline import ingest_delivery, publish_focus
from focus_platform.reconciliation.invoices import (
    KIND_MEMO,
    STATUS_APPLIED,
    invoice_files,
    read_invoices,
)
from focus_platform.reconciliation.reconcile import MATCH, reconcile_period
from focus_platform.warehouse.catalog import FOCUS_TABLE
from focus_platform.warehouse.delta import Warehouse
from tests.conftest import SAMPLE_LANDING

PERIODS = ["2018-08", "2018-10", "2018-11", "2023-11", "2024-01", "2024-09"]
MEMO, ADJUSTED = "SAMPLE-AZ-CN-202403-01", "SAMPLE-AZ-202401-01"
OVER_INVOICED = Decimal("40.00")
WORKSHOP_INVOICES = {"2018-10": "156090591", "2018-11": "159263274"}  # bill/InvoiceId of the CUR months


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """focus_costs of every embedded source, and the embedded invoice documents."""
    warehouse = Warehouse(str(tmp_path_factory.mktemp("warehouse")))
    store = LocalStore(SAMPLE_LANDING)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOCUS_RETENTION", "keep")  # the sample holds 2018 months
        for source in load_sources(str(SAMPLE_LANDING)):
            for period, delivery in sorted(discover_deliveries(store, source).items()):
                ingest_delivery(warehouse, store, source, delivery)
                assert publish_focus(warehouse, source, period).checks.problems == []
    return warehouse.scan(FOCUS_TABLE), read_invoices(invoice_files(store))


def focus_sums(focus: pl.LazyFrame) -> dict[tuple[str, str, str], Decimal]:
    """sum(BilledCost) per (billing account, billing period, currency)."""
    sums = (focus.group_by("BillingAccountId", "x_BillingPeriod", "BillingCurrency")
            .agg(pl.col("BilledCost").sum()).collect())
    return {tuple(r[:3]): r[3] for r in sums.iter_rows()}


def test_one_invoice_per_account_period_and_currency_with_the_focus_total(sample):
    focus, invoices = sample
    documents = invoices.filter(pl.col("x_InvoiceKind") != KIND_MEMO)
    totals = {(r["BillingAccountId"], r["BillingPeriod"], r["BillingCurrency"]): r["InvoiceTotal"]
              for r in documents.iter_rows(named=True)}
    assert documents.height == len(totals)  # no two documents for one account, period and currency
    expected = focus_sums(focus)
    assert sorted({p for _, p, _ in expected}) == PERIODS
    assert set(totals) == set(expected)
    over = {k: totals[k] - expected[k] for k in expected if totals[k] != expected[k]}
    assert over == {("85155500", "2024-01", "USD"): OVER_INVOICED}  # brought back by the credit note
    issuers = set(documents["InvoiceIssuerName"].drop_nulls().to_list())
    assert {"Amazon Web Services, Inc.", "Microsoft", "Google Cloud", "Oracle"} <= issuers


def test_the_late_credit_note_is_netted_into_the_january_invoice(sample):
    focus, invoices = sample
    (memo,) = invoices.filter(pl.col("x_InvoiceKind") == KIND_MEMO).iter_rows(named=True)
    assert (memo["InvoiceId"], memo["BillingPeriod"], memo["InvoiceTotal"]) == (MEMO, "2024-03", -OVER_INVOICED)
    assert (memo["x_InvoiceStatus"], memo["x_AppliesToInvoiceId"], memo["x_AppliesToPeriod"]) == (
        STATUS_APPLIED, ADJUSTED, "2024-01")
    march = reconcile_period("2024-03", invoices, focus.filter(pl.col("x_BillingPeriod") == "2024-03"))
    assert march.rows.height == 0  # the note is netted into January: nothing held in March


@pytest.mark.parametrize("period", PERIODS)
def test_every_invoice_document_matches_its_period(sample, period):
    focus, invoices = sample
    of_period = focus.filter(pl.col("x_BillingPeriod") == period)
    result = reconcile_period(period, invoices, of_period)
    rows = result.rows
    assert rows.height == invoices.filter((pl.col("BillingPeriod") == period)
                                          & (pl.col("x_InvoiceKind") != KIND_MEMO)).height
    assert rows.filter(pl.col("Status") != MATCH).select("InvoiceId", "Status", "Note").to_dicts() == []
    assert (result.drift_errors.height, result.unmatched.height, result.missing_invoices.height,
            result.pending_memos.height) == (0, 0, 0, 0)
    assert set(rows["x_InvoiceSource"]) == {"file"}
    expected = focus_sums(of_period)
    for r in rows.iter_rows(named=True):
        focus_total = expected[(r["BillingAccountId"], period, r["BillingCurrency"])]
        assert r["FocusBilledCost"] == r["InvoiceTotalNet"] == focus_total, r["InvoiceId"]
        assert (r["Difference"], r["DriftPercent"], r["TaxDifference"], r["CreditsDifference"]) == (0, 0, 0, 0)
        assert r["FocusRows"] > 0 and r["ExplainingRows"] == []
    if period in WORKSHOP_INVOICES:
        assert rows["InvoiceId"].to_list() == [WORKSHOP_INVOICES[period]]
    if period == "2024-01":
        (azure,) = rows.filter(pl.col("InvoiceId") == ADJUSTED).iter_rows(named=True)
        assert (azure["InvoiceTotal"] - azure["FocusBilledCost"], azure["CreditMemoTotal"], azure["CreditMemoIds"]) \
            == (OVER_INVOICED, -OVER_INVOICED, [MEMO])
