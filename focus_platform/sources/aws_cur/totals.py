"""AWS CUR, the raw side of conservation: what AWS invoices and its amortized cost, from the raw
columns alone.

Written from AWS's data dictionary, never from the mapping (this module does not import it): the line
item, reservation (https://docs.aws.amazon.com/cur/latest/userguide/reservation-columns.html, CUR 2.0:
table-dictionary-cur2-reservation.html) and savings plan columns. reservation/EffectiveCost is documented
as the amortized upfront cost for the usage plus the recurring fee for the usage; the savings plan rule
(rate x usage amount) follows from the column definitions (the plan's rate for the usage; the plan's
commitment allocated to the usage line):

- invoice basis: ``lineItem/UnblendedCost`` of every line item, except ``SavingsPlanCoveredUsage`` (its
  on-demand cost is paid through the savings plan's fee) and ``SavingsPlanNegation`` (which cancels that
  on-demand cost on the invoice): both count 0;
- amortized basis (AWS's amortized view, the formula of the Cloud Intelligence Dashboards):
  ``DiscountedUsage`` → ``reservation/EffectiveCost``, documented as the RI's upfront cost amortized for
  the usage (``reservation/AmortizedUpfrontCostForUsage``) plus its recurring fee for the usage
  (``reservation/RecurringFeeForUsage``), which give it when it is empty;
  ``SavingsPlanCoveredUsage`` → ``savingsPlan/SavingsPlanEffectiveCost``, the plan's commitment allocated
  to the usage at the plan's rate, i.e. ``savingsPlan/SavingsPlanRate`` x ``lineItem/UsageAmount`` when it
  is empty;
  ``RIFee`` → the unused part of the reservation, ``reservation/UnusedAmortizedUpfrontFeeForBillingPeriod``
  + ``reservation/UnusedRecurringFee``;
  ``SavingsPlanRecurringFee`` → the unused commitment, ``savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod``
  + ``savingsPlan/RecurringCommitmentForBillingPeriod`` - ``savingsPlan/UsedCommitment``;
  ``SavingsPlanUpfrontFee``, ``SavingsPlanNegation`` and RI upfront fees (``Fee`` with a reservation ARN)
  → 0 (their cost is amortized onto the usage);
  every other line item → its unblended cost.
  An amount that no column carries (every column of the rule empty) counts 0: the mapping records such
  rows as ``EffectiveCost unknown``.
"""

from __future__ import annotations

import polars as pl

from focus_platform.sources.aws_cur.raw import (
    CURRENCY_COLUMN,
    DROPPED_LINE_ITEM_TYPES,
    LINEAGE_NAMES,
    RawColumns,
    quarantine_reason,
)
from focus_platform.sources.common import (
    exact_product,
    unreadable_amounts,
)
from focus_platform.spec.columns import MONEY

ZERO = pl.lit(0, MONEY)


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """What a raw row adds to the invoice: its unblended cost; covered usage and its negation count 0."""
    t = pl.col("line_item_line_item_type")
    return (pl.when(t.is_in(["SavingsPlanCoveredUsage", "SavingsPlanNegation"])).then(ZERO)
            .otherwise(pl.col("line_item_unblended_cost")))


def amortized_basis(schema: pl.Schema) -> pl.Expr:
    """AWS's amortized cost of a raw row (see the module docstring)."""
    col = RawColumns(schema)
    t = pl.col("line_item_line_item_type")
    # a sum or product with an empty column is null: the next rule applies
    reservation_cost = pl.coalesce(
        col("reservation_effective_cost"),
        col("reservation_amortized_upfront_cost_for_usage") + col("reservation_recurring_fee_for_usage"), ZERO)
    plan_cost = pl.coalesce(col("savings_plan_savings_plan_effective_cost"),
                            exact_product(col("savings_plan_savings_plan_rate"), col("line_item_usage_amount")),
                            ZERO)
    unused_reservation = (col("reservation_unused_amortized_upfront_fee_for_billing_period").fill_null(ZERO)
                          + col("reservation_unused_recurring_fee").fill_null(ZERO))
    unused_commitment = (col("savings_plan_amortized_upfront_commitment_for_billing_period").fill_null(ZERO)
                         + col("savings_plan_recurring_commitment_for_billing_period").fill_null(ZERO)
                         - col("savings_plan_used_commitment").fill_null(ZERO))
    return (
        pl.when(t == "DiscountedUsage").then(reservation_cost)
        .when(t == "SavingsPlanCoveredUsage").then(plan_cost)
        .when(t == "RIFee").then(unused_reservation)
        .when(t == "SavingsPlanRecurringFee").then(unused_commitment)
        .when(t.is_in(["SavingsPlanUpfrontFee", "SavingsPlanNegation"])).then(ZERO)
        .when((t == "Fee") & col("reservation_reservation_a_r_n").is_not_null()).then(ZERO)
        .otherwise(pl.col("line_item_unblended_cost"))
    )


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, the billed and amortized amount, the amounts
    that could not be read (``x_UnreadableAmounts``) and lineage."""
    schema = raw.collect_schema()
    col = RawColumns(schema)
    return raw.filter(quarantine_reason(schema).is_not_null()).select(
        quarantine_reason(schema).alias("x_QuarantineReason"),
        billed_basis(schema).alias("x_BilledCost"),
        amortized_basis(schema).alias("x_EffectiveCost"),
        unreadable_amounts(schema),
        col("bill_payer_account_id").alias("BillingAccountId"),
        col(CURRENCY_COLUMN).alias("BillingCurrency"),
        col("line_item_line_item_type").alias("x_ChargeType"),
        *[pl.col(n) for n in LINEAGE_NAMES],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Invoice basis and amortized basis per billing account, period and currency (conservation)."""
    schema = raw.collect_schema()
    quarantined = quarantine_reason(schema).is_not_null()
    return (raw.group_by(pl.col("bill_payer_account_id").alias("BillingAccountId"), "x_BillingPeriod",
                         pl.col(CURRENCY_COLUMN).alias("BillingCurrency"))
            .agg(billed_basis(schema).sum().alias("billed"), amortized_basis(schema).sum().alias("amortized"),
                 pl.len().alias("rows"), quarantined.sum().alias("quarantined_rows"),
                 (pl.col("line_item_line_item_type").is_in(DROPPED_LINE_ITEM_TYPES) & ~quarantined)
                 .sum().alias("dropped_rows")))
