"""GCP billing export, the raw side of conservation: what Google invoices, from the raw columns alone.

Written from Google's documentation, not from the mapping (this module never imports it):

- the export schema (https://cloud.google.com/billing/docs/how-to/export-data-bigquery-tables/standard-usage):
  ``cost`` is the row's cost before credits, ``credits`` the repeated credits applied to it, each with
  its ``amount`` (negative), ``invoice.month`` the invoice the row is billed on;
- the documented invoice total (https://cloud.google.com/billing/docs/how-to/bq-examples, "total costs
  on an invoice"): ``SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) c), 0))`` per
  ``invoice.month``, i.e. per row ``cost`` + the sum of its credits (none: 0).

Amortized basis: GCP has no upfront commitments; committed use fees are billed hour by hour with
the usage they cover, so the amortized total of a month is its invoice total (the same rows).
"""

from __future__ import annotations

import polars as pl

from focus_platform.sources.common import unreadable_amounts
from focus_platform.sources.gcp_billing.raw import RawColumns, quarantine_reason
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """What a raw row adds to its invoice: cost + the sum of its credits' amounts (none: 0)."""
    col = RawColumns(schema)
    credits = col("credits").list.eval(pl.element().struct.field("amount")).list.sum().fill_null(0)
    return (col("cost").fill_null(0) + credits).cast(MONEY)


def amortized_basis(schema: pl.Schema) -> pl.Expr:
    """A raw row's amortized cost: its billed cost (commitments are billed hourly with their usage)."""
    return billed_basis(schema)


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, the billed and amortized amount, the amounts
    that could not be read (``x_UnreadableAmounts``) and lineage."""
    schema = raw.collect_schema()
    col = RawColumns(schema)
    lineage = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
    # the reason is computed once, then filtered on (filtering on the expression and selecting it again
    # makes polars 2.1 panic on some inputs)
    return raw.with_columns(quarantine_reason(schema).alias("x_QuarantineReason")).filter(
        pl.col("x_QuarantineReason").is_not_null()).select(
        "x_QuarantineReason",
        billed_basis(schema).alias("x_BilledCost"),
        amortized_basis(schema).alias("x_EffectiveCost"),
        col("billing_account_id").alias("BillingAccountId"),
        col("currency").alias("BillingCurrency"),
        col("cost_type").alias("x_ChargeType"),
        unreadable_amounts(schema),
        *[pl.col(n) for n in lineage],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Per billing account, invoice month and currency: the invoice total (billed), the amortized
    total (the same), rows and quarantined rows; the mapping drops no row."""
    schema = raw.collect_schema()
    col = RawColumns(schema)
    return (raw.group_by(col("billing_account_id").alias("BillingAccountId"), "x_BillingPeriod",
                         col("currency").alias("BillingCurrency"))
            .agg(billed_basis(schema).sum().alias("billed"), amortized_basis(schema).sum().alias("amortized"),
                 pl.len().alias("rows"), quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"),
                 pl.lit(0, pl.UInt32).alias("dropped_rows")))
