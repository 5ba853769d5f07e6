"""Invoice reconciliation of one billing period: invoice totals (with memos) vs sum(BilledCost).

One output row per invoice document of the period, or — where FOCUS rows have no invoice
document — per (billing account, currency, InvoiceId or none). Which FOCUS rows count for an
invoice ``X`` of billing account ``A`` in currency ``C``:

* rows whose ``InvoiceId`` is ``X``;
* rows of ``A`` in ``C`` with no ``InvoiceId`` when ``X`` is the only invoice document of ``A`` in
  ``C`` for the period (they are also listed as explaining rows, category ``no_invoice_id``).

Rows with another ``InvoiceId`` form their own row (missing invoice, or open period). Sums are
per currency; no sum ever mixes currencies. ``Difference = FocusBilledCost − InvoiceTotalNet`` where
``InvoiceTotalNet = InvoiceTotal + CreditMemoTotal`` (memos netted into the invoice they adjust);
``DriftPercent = |Difference| / |InvoiceTotalNet| × 100`` (null when the net total is 0).

Status of a row (``STATUSES``):

============================ =====================================================================
match                        the invoice's net total equals sum(BilledCost) exactly
rounding                     0 < |Difference| <= one minor currency unit (ISO 4217)
difference                   |Difference| > one minor unit, drift within M3's target   (M3 WARN)
drift                        drift above M3's target (0.1 % unless FOCUS_SLO_TARGETS says otherwise;
                             or |Difference| > one minor unit on a 0 total)            (M3 ERROR)
no_focus_rows                an invoice with no FOCUS rows (e.g. an unknown billing account)
currency_mismatch            an invoice whose FOCUS rows are in another currency (both sides listed)
missing_invoice              FOCUS rows of a closed period without an invoice document
open                         FOCUS rows of a period not closed yet (no invoice expected yet)
memo_pending                 a credit memo whose invoice has not arrived (held, issued this period)
memo_rejected                a credit memo that cannot be netted (other currency/account, loop)
============================ =====================================================================

A period is *closed* for a billing account when an invoice document of that account exists for the
period or a later one, when its FOCUS rows carry an ``InvoiceId`` (the provider finalized the bill),
or when the period is ``<= closed_through`` (configuration, for providers without invoice ids).

Explaining rows (``ExplainingRows``, for rows with a non-zero difference or tax / credits that
differ from the invoice's fields): the top ``top_n`` FOCUS rows by ``|BilledCost|`` per category —
``correction`` (ChargeClass Correction), ``credit`` (ChargeCategory Credit), ``tax``,
``no_invoice_id`` (counted without carrying the invoice's id), ``outside_period``
(ChargePeriodStart outside the billing period) — all counted in ``FocusBilledCost``, and
``other_invoice_id`` (rows of the same account and currency with an InvoiceId that is no invoice
of this period; not counted). Each names its ``x_RowId`` and ``x_Source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from focus_platform import service_levels
from focus_platform.periods import BillingPeriod
from focus_platform.reconciliation.currency import minor_unit
from focus_platform.reconciliation.invoices import (
    INVOICE_SCHEMA,
    KIND_INVOICE,
    KIND_MEMO,
    SOURCE_FILE,
    SOURCE_FOCUS_DERIVED,
    SOURCE_FOCUS_ID,
    STATUS_APPLIED,
    STATUS_PENDING,
    STATUS_REJECTED,
)
from focus_platform.spec.columns import MONEY, TIMESTAMP

DEFAULT_TOP_N = 10

MATCH, ROUNDING, DIFFERENCE, DRIFT = "match", "rounding", "difference", "drift"
NO_FOCUS_ROWS, CURRENCY_MISMATCH = "no_focus_rows", "currency_mismatch"
MISSING_INVOICE, OPEN = "missing_invoice", "open"
MEMO_PENDING, MEMO_REJECTED = "memo_pending", "memo_rejected"
STATUSES = (MATCH, ROUNDING, DIFFERENCE, DRIFT, NO_FOCUS_ROWS, CURRENCY_MISMATCH, MISSING_INVOICE, OPEN,
            MEMO_PENDING, MEMO_REJECTED)
COUNTED_CATEGORIES = ("correction", "credit", "tax", "no_invoice_id", "outside_period")
EXPLAIN_CATEGORIES = (*COUNTED_CATEGORIES, "other_invoice_id")

FOCUS_COLUMNS = ("BillingAccountId", "BillingCurrency", "InvoiceId", "InvoiceIssuerName", "BilledCost",
                 "ChargeCategory", "ChargeClass", "ChargePeriodStart", "ChargeDescription", "x_RowId", "x_Source")

EXPLAINING_ROW = pl.Struct({
    "Category": pl.String,
    "Counted": pl.Boolean,  # part of FocusBilledCost of this reconciliation row
    "x_RowId": pl.String,
    "x_Source": pl.String,
    "InvoiceId": pl.String,
    "BilledCost": MONEY,
    "ChargeCategory": pl.String,
    "ChargeClass": pl.String,
    "ChargePeriodStart": TIMESTAMP,
    "ChargeDescription": pl.String,
})

RECONCILIATION_SCHEMA = pl.Schema({
    "x_BillingPeriod": pl.String,
    "BillingAccountId": pl.String,
    "BillingCurrency": pl.String,
    "InvoiceId": pl.String,
    "InvoiceIssuerName": pl.String,
    "x_InvoiceSource": pl.String,  # file | focus:InvoiceId | focus:derived
    "x_InvoiceFile": pl.String,
    "InvoiceTotal": MONEY,
    "CreditMemoTotal": MONEY,
    "CreditMemoIds": pl.List(pl.String),
    "InvoiceTotalNet": MONEY,
    "InvoiceTax": MONEY,
    "InvoiceCredits": MONEY,
    "FocusBilledCost": MONEY,
    "FocusRows": pl.Int64,
    "FocusTax": MONEY,
    "FocusCredits": MONEY,
    "FocusCorrections": MONEY,
    "FocusNoInvoiceId": MONEY,
    "FocusOutsidePeriod": MONEY,
    "FocusSources": pl.List(pl.String),
    "Difference": MONEY,
    "TaxDifference": MONEY,
    "CreditsDifference": MONEY,
    "DriftPercent": MONEY,
    "MinorUnit": MONEY,
    "Status": pl.String,
    "Note": pl.String,
    "ExplainingRows": pl.List(EXPLAINING_ROW),
    "x_ReconciledAt": TIMESTAMP,
})

_Q = Decimal("1E-12")
ZERO = Decimal(0)


def drift_percent(difference: Decimal, net_total: Decimal) -> Decimal | None:
    if net_total == 0:
        return None
    return (abs(difference) / abs(net_total) * 100).quantize(_Q, rounding=ROUND_HALF_EVEN)


def classify(difference: Decimal, net_total: Decimal, currency: str) -> str:
    """match / rounding / difference / drift (see the module docstring)."""
    if difference == 0:
        return MATCH
    if abs(difference) <= minor_unit(currency):
        return ROUNDING
    drift = drift_percent(difference, net_total)  # a percent; M3's target is a fraction (service_levels)
    return DRIFT if drift is None or not service_levels.meets("M3", float(drift / 100)) else DIFFERENCE


@dataclass
class Reconciliation:
    period: str
    rows: pl.DataFrame  # RECONCILIATION_SCHEMA

    def with_status(self, *statuses: str) -> pl.DataFrame:
        return self.rows.filter(pl.col("Status").is_in(list(statuses)))

    @property
    def drift_errors(self) -> pl.DataFrame:
        """M3 ERROR: drift > 0.1 %."""
        return self.with_status(DRIFT)

    @property
    def difference_warnings(self) -> pl.DataFrame:
        """M3 WARN: |difference| > one minor currency unit."""
        return self.with_status(DIFFERENCE, DRIFT)

    @property
    def unmatched(self) -> pl.DataFrame:
        """Invoices (and memos) that cannot be matched with FOCUS rows."""
        return self.with_status(NO_FOCUS_ROWS, CURRENCY_MISMATCH, MEMO_REJECTED)

    @property
    def missing_invoices(self) -> pl.DataFrame:
        """FOCUS rows of a closed period without an invoice document."""
        return self.with_status(MISSING_INVOICE)

    @property
    def pending_memos(self) -> pl.DataFrame:
        return self.with_status(MEMO_PENDING)

    def summary(self) -> dict[str, int]:
        counts = self.rows.group_by("Status").len()
        return {s: int(n) for s, n in counts.sort("Status").iter_rows()}


def _empty_invoices() -> pl.DataFrame:
    return pl.DataFrame(schema=INVOICE_SCHEMA)


def _focus_queries(focus: pl.LazyFrame, period: BillingPeriod, doc_ids: list[str], account_map: pl.DataFrame,
                   top_n: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    f = (focus.select(FOCUS_COLUMNS)
         .join(account_map.lazy(), on=["BillingAccountId", "BillingCurrency"], how="left")
         .with_columns(
             pl.when(pl.col("InvoiceId").is_in(doc_ids)).then(pl.col("InvoiceId"))
             .when(pl.col("InvoiceId").is_null()).then(pl.col("__account_invoice"))
             .otherwise(pl.col("InvoiceId")).alias("__key")))
    zero = pl.lit(0, MONEY)
    cost = pl.col("BilledCost")
    flags = {
        "correction": pl.col("ChargeClass") == "Correction",
        "credit": pl.col("ChargeCategory") == "Credit",
        "tax": pl.col("ChargeCategory") == "Tax",
        "no_invoice_id": pl.col("InvoiceId").is_null() & pl.col("__key").is_not_null(),
        "outside_period": (pl.col("ChargePeriodStart") < pl.lit(period.start, TIMESTAMP))
        | (pl.col("ChargePeriodStart") >= pl.lit(period.end, TIMESTAMP)),
    }
    keys = ["BillingAccountId", "BillingCurrency", "__key"]

    def sum_if(flag: pl.Expr) -> pl.Expr:
        return pl.when(flag.fill_null(False)).then(cost).otherwise(zero).sum().cast(MONEY)

    groups = f.group_by(keys).agg(
        cost.sum().cast(MONEY).alias("FocusBilledCost"),
        pl.len().cast(pl.Int64).alias("FocusRows"),
        sum_if(flags["tax"]).alias("FocusTax"),
        sum_if(flags["credit"]).alias("FocusCredits"),
        sum_if(flags["correction"]).alias("FocusCorrections"),
        sum_if(flags["no_invoice_id"]).alias("FocusNoInvoiceId"),
        sum_if(flags["outside_period"]).alias("FocusOutsidePeriod"),
        pl.col("InvoiceIssuerName").drop_nulls().first().alias("InvoiceIssuerName"),
        pl.col("InvoiceId").is_not_null().any().alias("__has_invoice_id"),
        flags["no_invoice_id"].fill_null(False).sum().alias("__no_invoice_id_rows"),
        pl.col("x_Source").unique().sort().alias("FocusSources"),
    )
    detail = ["x_RowId", "x_Source", "InvoiceId", "BilledCost", "ChargeCategory", "ChargeClass", "ChargePeriodStart",
              "ChargeDescription"]
    parts = [f.filter(flag.fill_null(False)).select(*keys, pl.lit(name).alias("Category"), pl.lit(True).alias("Counted"),
                                                     *detail)
             for name, flag in flags.items()]
    other = (f.filter(pl.col("InvoiceId").is_not_null() & ~pl.col("InvoiceId").is_in(doc_ids))
             .select("BillingAccountId", "BillingCurrency", pl.lit(None, pl.String).alias("__key"),
                     pl.lit("other_invoice_id").alias("Category"), pl.lit(False).alias("Counted"), *detail))
    candidates = (pl.concat([*parts, other])
                  .with_columns(cost.abs().alias("__abs"))
                  .sort(["__abs", "x_RowId"], descending=[True, False], nulls_last=True)
                  .group_by([*keys, "Category"], maintain_order=True).head(top_n)
                  .drop("__abs"))
    return groups, candidates


def _explaining(candidates: pl.DataFrame, account: str, currency: str, key: str | None,
                with_other: bool) -> list[dict]:
    mine = candidates.filter((pl.col("BillingAccountId") == account) & (pl.col("BillingCurrency") == currency))
    same_key = pl.col("__key") == key if key is not None else pl.col("__key").is_null()
    rows = mine.filter(pl.col("Counted") & same_key).to_dicts()
    if with_other:  # rows of the account and currency that carry an InvoiceId of no invoice of the period
        rows += mine.filter(~pl.col("Counted")).to_dicts()
    order = {c: i for i, c in enumerate(EXPLAIN_CATEGORIES)}
    rows.sort(key=lambda r: (order[r["Category"]], -abs(r["BilledCost"] or ZERO), r["x_RowId"] or ""))
    fields = [f.name for f in EXPLAINING_ROW.fields]
    return [{k: r[k] for k in fields} for r in rows]


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None and b is None:
        return None
    return (a or ZERO) + (b or ZERO)


def reconcile_period(period: str, invoices: pl.DataFrame | None, focus: pl.LazyFrame, *,
                     closed_through: str | None = None, top_n: int = DEFAULT_TOP_N,
                     now: datetime | None = None) -> Reconciliation:
    """Reconcile billing period ``period`` ('YYYY-MM'): ``invoices`` is the invoices table (all
    periods, ``INVOICE_SCHEMA``; only ``file`` documents are references), ``focus`` the FOCUS rows
    of the period (every export source). ``closed_through`` ('YYYY-MM'): periods up to it are closed.
    Raises ``PeriodError`` naming the argument when ``period`` or ``closed_through`` is no period."""
    billing_period = BillingPeriod.parse(period, "period")
    closed_through_period = BillingPeriod.parse(closed_through, "closed_through") if closed_through else None
    now = now or datetime.now(UTC)
    inv = invoices if invoices is not None else _empty_invoices()
    docs_all = inv.filter(pl.col("x_InvoiceSource") == SOURCE_FILE)
    period_docs = docs_all.filter((pl.col("x_InvoiceKind") == KIND_INVOICE) & (pl.col("BillingPeriod") == period))
    memos = docs_all.filter((pl.col("x_InvoiceKind") == KIND_MEMO) & (pl.col("x_InvoiceStatus") == STATUS_APPLIED)
                            & (pl.col("x_AppliesToPeriod") == period))
    held = docs_all.filter((pl.col("x_InvoiceKind") == KIND_MEMO) & (pl.col("BillingPeriod") == period)
                           & pl.col("x_InvoiceStatus").is_in([STATUS_PENDING, STATUS_REJECTED]))
    other_period_docs = {r["InvoiceId"]: r["BillingPeriod"] for r in
                         docs_all.filter((pl.col("x_InvoiceKind") == KIND_INVOICE) & (pl.col("BillingPeriod") != period))
                         .select("InvoiceId", "BillingPeriod").iter_rows(named=True)}
    doc_ids = period_docs["InvoiceId"].to_list()
    doc_currency = dict(period_docs.select("InvoiceId", "BillingCurrency").iter_rows())
    account_map = (period_docs.group_by("BillingAccountId", "BillingCurrency")
                   .agg(pl.col("InvoiceId").first().alias("__account_invoice"), pl.len().alias("__n"))
                   .filter(pl.col("__n") == 1).drop("__n"))
    groups_q, candidates_q = _focus_queries(focus, billing_period, doc_ids, account_map, top_n)
    # each query its own scan: a shared scan would be cached in memory
    groups_df, candidates = pl.collect_all([groups_q, candidates_q], engine="streaming",
                                           optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    groups = {(g["BillingAccountId"], g["BillingCurrency"], g["__key"]): g for g in groups_df.iter_rows(named=True)}
    invoiced_accounts = {a for (a, _, _), g in groups.items() if g["__has_invoice_id"]}
    later_doc_accounts = set(docs_all.filter((pl.col("x_InvoiceKind") == KIND_INVOICE)
                                             & (pl.col("BillingPeriod") >= period))["BillingAccountId"].to_list())
    focus_accounts = {a for (a, _, _) in groups}

    def closed(account: str) -> bool:
        return (account in invoiced_accounts or account in later_doc_accounts
                or (closed_through_period is not None and billing_period <= closed_through_period))

    out: list[dict] = []
    mismatched_groups: dict[tuple, str] = {}

    def base(account, currency, invoice_id, issuer, source, file) -> dict:
        return {"x_BillingPeriod": period, "BillingAccountId": account, "BillingCurrency": currency,
                "InvoiceId": invoice_id, "InvoiceIssuerName": issuer, "x_InvoiceSource": source,
                "x_InvoiceFile": file, "MinorUnit": minor_unit(currency), "x_ReconciledAt": now,
                "CreditMemoIds": [], "ExplainingRows": [], "FocusSources": []}

    def focus_fields(g: dict) -> dict:
        return {k: g[k] for k in ("FocusBilledCost", "FocusRows", "FocusTax", "FocusCredits", "FocusCorrections",
                                  "FocusNoInvoiceId", "FocusOutsidePeriod", "FocusSources")}

    # 1. invoice documents of the period (memos netted in)
    for d in period_docs.sort("BillingAccountId", "BillingCurrency", "InvoiceId").iter_rows(named=True):
        account, currency, invoice_id = d["BillingAccountId"], d["BillingCurrency"], d["InvoiceId"]
        row = base(account, currency, invoice_id, d["InvoiceIssuerName"], SOURCE_FILE, d["x_SourceFile"])
        mine = memos.filter(pl.col("x_AppliesToInvoiceId") == invoice_id).sort("InvoiceId")
        memo_total = sum(mine["InvoiceTotal"].to_list(), ZERO)
        net = d["InvoiceTotal"] + memo_total
        tax = d["InvoiceTax"]
        credits = d["InvoiceCredits"]
        for m in mine.iter_rows(named=True):
            tax = _add(tax, m["InvoiceTax"]) if tax is not None else None
            credits = _add(credits, m["InvoiceCredits"]) if credits is not None else None
        row.update(InvoiceTotal=d["InvoiceTotal"], CreditMemoTotal=memo_total, CreditMemoIds=mine["InvoiceId"].to_list(),
                   InvoiceTotalNet=net, InvoiceTax=tax, InvoiceCredits=credits)
        g = groups.pop((account, currency, invoice_id), None)
        if g is None:
            others = {k: v for k, v in groups.items()
                      if k[0] == account and k[1] != currency and k[2] in (invoice_id, None)}
            if others:
                found = sorted({k[1] for k in others})
                row.update(Status=CURRENCY_MISMATCH, Difference=None,
                           Note=f"invoice in {currency}; the FOCUS rows of billing account {account} for it are in "
                                f"{', '.join(found)}: not compared (no sum mixes currencies)")
                for k in others:
                    mismatched_groups[k] = f"invoice {invoice_id} of billing account {account} is in {currency}"
            else:
                row.update(Status=NO_FOCUS_ROWS, FocusBilledCost=ZERO, FocusRows=0, Difference=-net,
                           DriftPercent=drift_percent(-net, net),
                           Note=(f"billing account {account} has no FOCUS rows in {period}" if account not in
                                 focus_accounts else
                                 f"no FOCUS rows of billing account {account} in {currency} carry invoice {invoice_id}"))
            out.append(row)
            continue
        diff = g["FocusBilledCost"] - net
        row.update(focus_fields(g), Difference=diff, DriftPercent=drift_percent(diff, net),
                   Status=classify(diff, net, currency),
                   TaxDifference=g["FocusTax"] - tax if tax is not None else None,
                   CreditsDifference=g["FocusCredits"] - credits if credits is not None else None)
        if g["InvoiceIssuerName"] and d["InvoiceIssuerName"] is None:
            row["InvoiceIssuerName"] = g["InvoiceIssuerName"]
        notes = []
        if mine.height:
            notes.append(f"{mine.height} credit memo(s) netted: {', '.join(mine['InvoiceId'].to_list())}")
        if g["__no_invoice_id_rows"]:
            notes.append(f"{g['__no_invoice_id_rows']} FOCUS row(s) without InvoiceId counted for this invoice")
        row["Note"] = "; ".join(notes) or None
        if diff != 0 or row["TaxDifference"] or row["CreditsDifference"]:
            row["ExplainingRows"] = _explaining(candidates, account, currency, invoice_id, with_other=True)
        out.append(row)

    # 2. FOCUS rows without an invoice document of the period
    for (account, currency, key), g in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        source = SOURCE_FOCUS_ID if g["__has_invoice_id"] and key is not None else SOURCE_FOCUS_DERIVED
        row = base(account, currency, key, g["InvoiceIssuerName"], source, None)
        row.update(focus_fields(g))
        notes = []
        if key in doc_currency and doc_currency[key] != currency:
            mismatched_groups.setdefault((account, currency, key), f"invoice {key} is in {doc_currency[key]}")
        if (account, currency, key) in mismatched_groups:
            row["Status"] = CURRENCY_MISMATCH
            notes.append(mismatched_groups[(account, currency, key)] + f", these FOCUS rows in {currency}")
        elif closed(account):
            row["Status"] = MISSING_INVOICE
            notes.append(f"closed period: no invoice document for billing account {account} in {currency}"
                         + (f" (invoice id {key} from the FOCUS rows)" if key else ""))
        else:
            row["Status"] = OPEN
            notes.append("period not closed: no invoice expected yet")
        if key in other_period_docs:
            notes.append(f"invoice {key} is a document of billing period {other_period_docs[key]}")
        row["Note"] = "; ".join(notes)
        row["ExplainingRows"] = _explaining(candidates, account, currency, key, with_other=False) \
            if row["Status"] != OPEN else []
        out.append(row)

    # 3. memos issued this period that are not netted anywhere yet
    for m in held.sort("InvoiceId").iter_rows(named=True):
        row = base(m["BillingAccountId"], m["BillingCurrency"], m["InvoiceId"], m["InvoiceIssuerName"], SOURCE_FILE,
                   m["x_SourceFile"])
        row.update(InvoiceTotal=m["InvoiceTotal"], CreditMemoTotal=None, InvoiceTotalNet=m["InvoiceTotal"],
                   InvoiceTax=m["InvoiceTax"], InvoiceCredits=m["InvoiceCredits"],
                   Status=MEMO_PENDING if m["x_InvoiceStatus"] == STATUS_PENDING else MEMO_REJECTED,
                   Note=m["x_StatusReason"])
        out.append(row)

    return Reconciliation(period, pl.DataFrame(out, schema=RECONCILIATION_SCHEMA))
