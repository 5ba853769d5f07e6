"""Native FOCUS, the raw side of conservation: the delivered BilledCost and EffectiveCost, from the raw
columns alone (this module never imports the mapping).

Conservation for native files (``raw_totals``): per BillingAccountId (normalized like the FOCUS
rows: placeholder → null, resource path → its last segment), x_BillingPeriod and BillingCurrency
(upper case), ``billed`` = the sum of the delivered BilledCost and ``amortized`` = the sum of the
delivered EffectiveCost with one documented deviation fix applied, computed from the raw columns
independently of ``to_focus``: a commitment purchase (ChargeCategory Purchase with a
CommitmentDiscountId) counts 0, because its cost is already amortized onto the usage rows (the
double count of Microsoft's savings plan purchases, FinOps toolkit #1092; R-EffectiveCost-2). An
EffectiveCost the export leaves empty counts what FOCUS defines for the row: 0 on a commitment purchase
(R-EffectiveCost-2), the BilledCost on a credit (R-EffectiveCost-3), else 0 (unknown: the mapping records
it). No raw row is dropped and none is added: FOCUS rows + quarantined rows = raw rows.
"""

from __future__ import annotations

import polars as pl

from focus_platform.sources.common import unreadable_amounts
from focus_platform.sources.focus_native.raw import (
    LINEAGE_NAMES,
    billing_account_key,
    cleaned_text,
    currency_key,
    quarantine_reason,
)
from focus_platform.spec.columns import MONEY

ZERO = pl.lit(0, MONEY)


def _category_is(schema: pl.Schema, value: str) -> pl.Expr:
    """ChargeCategory of the raw row is ``value`` (any case, placeholders are null)."""
    if "ChargeCategory" not in schema:
        return pl.lit(False)
    return (cleaned_text("ChargeCategory").str.strip_chars().str.to_lowercase() == value.lower()).fill_null(False)


def _commitment_purchase(schema: pl.Schema) -> pl.Expr:
    """A commitment purchase, from the raw columns: ChargeCategory Purchase with a CommitmentDiscountId."""
    if "CommitmentDiscountId" not in schema:
        return pl.lit(False)
    return _category_is(schema, "Purchase") & cleaned_text("CommitmentDiscountId").is_not_null().fill_null(False)


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """What a raw row adds to its invoice: the delivered BilledCost."""
    return pl.col("BilledCost")


def amortized_basis(schema: pl.Schema) -> pl.Expr:
    """The delivered EffectiveCost with the documented deviation fix (0 on commitment purchases); where
    it is empty, what FOCUS defines: the BilledCost on a credit, else 0."""
    return (pl.when(_commitment_purchase(schema)).then(ZERO)
            .when(pl.col("EffectiveCost").is_null() & _category_is(schema, "Credit")).then(pl.col("BilledCost"))
            .otherwise(pl.col("EffectiveCost").fill_null(ZERO)))


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, the billed and amortized amounts, the amounts
    that could not be read (``x_UnreadableAmounts``) and lineage."""
    schema = raw.collect_schema()
    reason = quarantine_reason(schema)
    return raw.filter(reason.is_not_null()).select(
        reason.alias("x_QuarantineReason"),
        billed_basis(schema).alias("x_BilledCost"),
        amortized_basis(schema).alias("x_EffectiveCost"),
        unreadable_amounts(schema),
        billing_account_key(schema).alias("BillingAccountId"),
        currency_key(schema).alias("BillingCurrency"),
        (pl.col("ChargeCategory") if "ChargeCategory" in schema else pl.lit(None, pl.String)).alias("x_ChargeType"),
        *[pl.col(n) for n in LINEAGE_NAMES],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Delivered BilledCost and amortized EffectiveCost per billing account, period and currency."""
    schema = raw.collect_schema()
    return (raw.group_by(billing_account_key(schema).alias("BillingAccountId"), "x_BillingPeriod",
                         currency_key(schema).alias("BillingCurrency"))
            .agg(billed_basis(schema).sum().alias("billed"), amortized_basis(schema).sum().alias("amortized"),
                 pl.len().alias("rows"), quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"),
                 pl.lit(0, pl.UInt32).alias("dropped_rows")))
