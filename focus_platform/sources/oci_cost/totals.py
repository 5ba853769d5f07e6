"""OCI cost reports, the raw side of conservation: what Oracle bills, from the raw columns alone.

Written from Oracle's documentation of the cost report columns, not from the mapping (this module
never imports it) — "Cost and Usage Reports Overview",
https://docs.oracle.com/en-us/iaas/Content/Billing/Concepts/costusagereportsoverview.htm:

- ``cost/myCost`` is the cost charged for the line of usage, in ``cost/currencyCode``, overage
  included (``cost/myCostOverage`` is only the part of it billed as overage, not an addition);
- a correction (``lineItem/isCorrection``) is a row of its own whose amount adds to the corrected
  row (``lineItem/backReference`` names it): the bill is the sum of every row's ``cost/myCost``;
- Universal Credits are not amortized in the report: the amortized total is the billed total.
"""

from __future__ import annotations

import polars as pl

from focus_platform.sources.common import (
    unreadable_amounts,
)
from focus_platform.sources.oci_cost.raw import (
    LINEAGE_NAMES,
    quarantine_reason,
    raw_column,
)


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """What a raw row adds to the bill: cost/myCost."""
    return raw_column(schema, "cost_my_cost")


def amortized_basis(schema: pl.Schema) -> pl.Expr:
    """A raw row's amortized cost: its billed cost (the report amortizes nothing)."""
    return billed_basis(schema)


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted: the reason (naming file, row and column), the billed and
    amortized amount, the amounts that could not be read (``x_UnreadableAmounts``), lineage."""
    schema = raw.collect_schema()
    reason = quarantine_reason(schema)
    return raw.filter(reason.is_not_null()).select(
        pl.format("{} row {}: {}", pl.col("x_SourceFile"), pl.col("x_SourceRow"), reason).alias("x_QuarantineReason"),
        billed_basis(schema).alias("x_BilledCost"),
        amortized_basis(schema).alias("x_EffectiveCost"),
        raw_column(schema, "line_item_tenant_id").alias("BillingAccountId"),
        raw_column(schema, "cost_currency_code").alias("BillingCurrency"),
        pl.lit(None, pl.String).alias("x_ChargeType"),
        unreadable_amounts(schema),
        *[pl.col(n) for n in LINEAGE_NAMES],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Per tenancy, period and currency: the billed and amortized totals (corrections included: they
    are rows of their own), rows and quarantined rows; the mapping drops no row."""
    schema = raw.collect_schema()
    return (raw.with_columns(quarantine_reason(schema).is_not_null().alias("__quarantined"))
            .group_by(raw_column(schema, "line_item_tenant_id").alias("BillingAccountId"), "x_BillingPeriod",
                      raw_column(schema, "cost_currency_code").alias("BillingCurrency"))
            .agg(billed_basis(schema).sum().alias("billed"), amortized_basis(schema).sum().alias("amortized"),
                 pl.len().alias("rows"), pl.col("__quarantined").sum().alias("quarantined_rows"),
                 pl.lit(0, pl.UInt32).alias("dropped_rows")))
