"""Spend rows: what forecasts, budgets and anomaly detection read (no Dagster here).

One row per allocation row (a FOCUS row × owner share) with its UTC date, its owner on one dimension
of the rules (``Owner``), where it comes from (provider, service, accounts, resource, SKU), whether it
is usage or a fee (``SpendKind``) and its allocated amounts. Built from a period's ``cost_allocations``
joined to its ``focus_costs`` by ``x_RowId`` (the columns allocation does not keep: ProviderName,
ChargeFrequency, SkuId).

``SpendKind``: ``usage`` for Usage-Based usage rows; ``fee`` for everything else (Purchase rows,
One-Time and Recurring charges such as a month-start commitment purchase or a support fee, Tax,
Credit, Adjustment). Forecasts model usage and carry fees apart; anomaly detection scores usage and
leaves fees out of its baseline.
"""

from __future__ import annotations

import polars as pl

from focus_platform.spec.columns import MONEY

USAGE, FEE = "usage", "fee"

SPEND_ROWS = {
    "Date": pl.Date,  # the UTC date of ChargePeriodStart
    "x_BillingPeriod": pl.String,
    "Owner": pl.String,  # the value of the owner dimension (the rules' first dimension unless named)
    "ProviderName": pl.String,
    "ServiceName": pl.String,
    "BillingAccountId": pl.String,
    "SubAccountId": pl.String,
    "BillingCurrency": pl.String,
    "ChargeCategory": pl.String,
    "ChargeFrequency": pl.String,
    "SpendKind": pl.String,  # USAGE | FEE
    "ResourceId": pl.String,  # the allocated resource (a Kubernetes namespace's workload) or the FOCUS row's
    "SkuId": pl.String,
    "x_RowId": pl.String,  # the FOCUS row's
    "BilledCost": MONEY,  # x_AllocatedBilledCost
    "EffectiveCost": MONEY,  # x_AllocatedEffectiveCost
}
FOCUS_JOINED = ("x_RowId", "ProviderName", "ChargeFrequency", "SkuId")


def spend_kind(category: pl.Expr, frequency: pl.Expr) -> pl.Expr:
    return (pl.when((category == "Usage") & (frequency.fill_null("Usage-Based") == "Usage-Based"))
            .then(pl.lit(USAGE)).otherwise(pl.lit(FEE)))


def spend_rows(allocations: pl.LazyFrame, focus: pl.LazyFrame, owner: str) -> pl.LazyFrame:
    """A period's cost_allocations rows as SPEND_ROWS, ``owner`` naming the dimension column read as Owner."""
    columns = allocations.collect_schema().names()
    if owner not in columns:
        raise ValueError(f"cost_allocations has no owner dimension {owner!r} (columns: {', '.join(columns)})")
    extra = focus.select(*FOCUS_JOINED).unique("x_RowId")
    rows = allocations.join(extra, on="x_RowId", how="left")
    return rows.select(
        pl.col("ChargePeriodStart").dt.date().alias("Date"),
        "x_BillingPeriod",
        pl.col(owner).cast(pl.String).alias("Owner"),
        pl.col("ProviderName").cast(pl.String),
        "ServiceName", "BillingAccountId", "SubAccountId", "BillingCurrency", "ChargeCategory",
        pl.col("ChargeFrequency").cast(pl.String),
        spend_kind(pl.col("ChargeCategory"), pl.col("ChargeFrequency")).alias("SpendKind"),
        pl.coalesce("x_AllocatedResourceId", "ResourceId").alias("ResourceId"),
        pl.col("SkuId").cast(pl.String),
        "x_RowId",
        pl.col("x_AllocatedBilledCost").alias("BilledCost"),
        pl.col("x_AllocatedEffectiveCost").alias("EffectiveCost"),
    ).cast(SPEND_ROWS)  # type: ignore[arg-type]


def daily(rows: pl.LazyFrame, keys: list[str], measure: str = "EffectiveCost") -> pl.LazyFrame:
    """Exact daily sums of ``measure`` per ``keys`` (a Decimal ``Cost`` column), sorted by keys and Date."""
    return (rows.group_by([*keys, "Date"]).agg(pl.col(measure).sum().alias("Cost"))
            .sort([*keys, "Date"]))
