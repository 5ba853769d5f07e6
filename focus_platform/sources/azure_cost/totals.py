"""Azure cost details: the raw side of conservation (``raw_totals``, ``quarantine``), written from
Microsoft's documented datasets and never from the mapping (this module imports only ``raw`` and
``common``).

Microsoft documents two datasets of the same charges ("Understand cost details fields",
learn.microsoft.com/azure/cost-management-billing/automate/understand-usage-details-fields, and
"Get Enterprise Agreement and Microsoft Customer Agreement reservation costs and usage",
learn.microsoft.com/azure/cost-management-billing/reservations/understand-reserved-instance-usage-ea):

* **actual cost** is what is invoiced: reservation and savings-plan purchases and refunds are
  Purchase / Refund rows (PricingModel Reservation / SavingsPlan, a BenefitId), and the usage they
  cover costs 0;
* **amortized cost** spreads each purchase over its term onto the usage it covers (PricingModel
  Reservation / SavingsPlan at its share), shows the unused share as UnusedReservation /
  UnusedSavingsPlan rows, and has no commitment purchase rows.

Per billing account, billing period and currency (``CostInBillingCurrency``):

* **billed** (the invoice basis) = the actual-cost file's cost;
* **amortized** = the amortized-cost file's cost.

When a raw set holds only one kind of file, the documented partial modes apply per billing account
and period: *actual-only* — billed = the actual cost, amortized = the actual cost without commitment
purchases and refunds (their amortized share is not delivered); *amortized-only* — amortized = the
amortized cost, billed = the amortized cost without covered usage and unused commitment (billed
through a purchase that is not delivered). A raw set holding both kinds where a billing account and
period has only one of them (e.g. the actual export of October beside the amortized export of
September) would silently fall into those modes and change the billed total: ``raw_totals`` names the
periods and files in its ``problem`` column and the pipeline refuses the set. The periods compared are
the ones the rows state (``raw.stated_period``), so the files of one delivery, whose rows all carry the
delivery's ``x_BillingPeriod``, are told apart too.

``dropped_rows``: in a billing account and period with both files, an actual row is represented by
the amortized row of the same charge (``raw.charge_identity``): per charge, as many actual rows are
dropped as there are valid rows in the smaller of the two files. Microsoft documents no line-item
identity, so no row is a duplicate here (see ``raw``).
"""

from __future__ import annotations

import polars as pl

from focus_platform.sources.azure_cost.raw import (
    ACTUAL,
    ACTUAL_ONLY,
    AMORTIZED,
    AMORTIZED_ONLY,
    COMMITMENT_MODELS,
    PAIRED,
    UNUSED_TYPES,
    Cols,
    billing_account,
    charge_identity,
    charge_type,
    lineage_names,
    period_modes,
    placeholder_to_null,
    pricing_model,
    quarantine_reason,
    stated_period,
)
from focus_platform.sources.common import by_bucket, unreadable_amounts
from focus_platform.spec.columns import MONEY

ACCOUNT, MODE = "__account", "__mode"  # MODE: the column raw.period_modes names
_PERIOD_KEYS = [ACCOUNT, "x_BillingPeriod"]
_TOTALS_KEYS = ["BillingAccountId", "x_BillingPeriod", "BillingCurrency"]
_DATASET_NAMES = {ACTUAL: "actual-cost", AMORTIZED: "amortized-cost"}


def _billed_through_purchase(col: Cols) -> pl.Expr:
    """Covered usage and unused commitment: billed through a purchase (in the actual-cost file)."""
    ct, pm = charge_type(col), pricing_model(col("PricingModel"))
    return (((ct == "Usage") & pm.is_in(COMMITMENT_MODELS)) | ct.is_in(UNUSED_TYPES)).fill_null(False)


def _commitment_purchase(col: Cols) -> pl.Expr:
    """A commitment purchase or refund: amortized onto usage (in the amortized-cost file)."""
    ct, pm = charge_type(col), pricing_model(col("PricingModel"))
    return (ct.is_in(["Purchase", "Refund"])
            & (pm.is_in(COMMITMENT_MODELS) | placeholder_to_null(col("BenefitId")).is_not_null())).fill_null(False)


def billed_basis(col: Cols) -> pl.Expr:
    """A raw row's share of the invoice basis (over rows carrying their period's ``MODE``)."""
    cost, zero = col("CostInBillingCurrency"), pl.lit(0, MONEY)
    return (pl.when(pl.col(MODE) == AMORTIZED_ONLY).then(pl.when(_billed_through_purchase(col)).then(zero)
                                                          .otherwise(cost))
            .when(pl.col("x_CostDataset") == ACTUAL).then(cost).otherwise(zero))


def amortized_basis(col: Cols) -> pl.Expr:
    """A raw row's share of the amortized basis (over rows carrying their period's ``MODE``)."""
    cost, zero = col("CostInBillingCurrency"), pl.lit(0, MONEY)
    return (pl.when(pl.col(MODE) == ACTUAL_ONLY).then(pl.when(_commitment_purchase(col)).then(zero).otherwise(cost))
            .when(pl.col("x_CostDataset") == AMORTIZED).then(cost).otherwise(zero))


def _streams(raw: pl.LazyFrame, col: Cols) -> pl.LazyFrame:
    """Per billing account, period, the period the rows state, currency and dataset (actual /
    amortized): the files that deliver it, and the sums and counts ``raw_totals`` needs (one pass:
    the basis of a row depends on its period's mode, known only after it)."""
    cost, zero = col("CostInBillingCurrency"), pl.lit(0, MONEY)
    keys = [ACCOUNT, "x_BillingPeriod", "__stated", "x_CostDataset", "BillingCurrency"]
    sums = ["__cost", "__billed_direct", "__usage_cost", "rows", "quarantined_rows"]
    # per stream and file first (a handful of groups), then per stream: a list of every row's file
    # name per group, made unique only at the end, grew with the partition (1.5 GB for 2.5 M rows)
    return (raw.group_by(billing_account(col)[0].alias(ACCOUNT), "x_BillingPeriod",
                         stated_period(col).alias("__stated"), "x_CostDataset",
                         col("BillingCurrency").alias("BillingCurrency"), "x_SourceFile")
            .agg(cost.sum().alias("__cost"),
                 pl.when(_billed_through_purchase(col)).then(zero).otherwise(cost).sum().alias("__billed_direct"),
                 pl.when(_commitment_purchase(col)).then(zero).otherwise(cost).sum().alias("__usage_cost"),
                 pl.len().alias("rows"),
                 quarantine_reason(col.schema).is_not_null().sum().alias("quarantined_rows"))
            .group_by(keys)
            .agg(pl.col("x_SourceFile").unique().sort().alias("files"), *[pl.col(c).sum() for c in sums]))


def _with_modes(raw: pl.LazyFrame, col: Cols, modes: pl.LazyFrame) -> pl.LazyFrame:
    return (raw.with_columns(billing_account(col)[0].alias(ACCOUNT))
            .join(modes, on=_PERIOD_KEYS, how="left", nulls_equal=True, maintain_order="left"))


def _named_files(files: list[str]) -> str:
    shown = ", ".join(files[:5])
    return shown + (f" and {len(files) - 5} more" if len(files) > 5 else "")


def _stream_problems(streams: pl.DataFrame) -> pl.DataFrame:
    """Per billing account and period whose rows state a period that only one dataset delivers
    while the set also holds the other: the message naming the periods and files of each (none when
    the set holds one kind of file). The stated period (``raw.stated_period``) also tells the files
    of one delivery apart, whose ``x_BillingPeriod`` is the delivery's."""
    schema = {ACCOUNT: pl.String, "x_BillingPeriod": pl.String, "problem": pl.String}
    if streams["x_CostDataset"].n_unique() < 2:
        return pl.DataFrame(schema=schema)
    files_of: dict[tuple, dict[str, list[str]]] = {}  # (account, stated period) -> dataset -> files
    periods_of: dict[tuple, set[str]] = {}  # (account, stated period) -> x_BillingPeriod
    for account, period, stated, dataset, files in (streams.filter(pl.col("__stated").is_not_null())
                                                    .select(ACCOUNT, "x_BillingPeriod", "__stated", "x_CostDataset",
                                                            "files").iter_rows()):
        files_of.setdefault((account, stated), {}).setdefault(dataset, []).extend(files)
        periods_of.setdefault((account, stated), set()).add(period)
    rows = []
    for (account, stated), datasets in sorted(files_of.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(datasets) == 2:
            continue
        (dataset, files), = datasets.items()
        other = AMORTIZED if dataset == ACTUAL else ACTUAL
        elsewhere = ([(p, f) for (a, p), ds in files_of.items() if a == account for f in ds.get(other, [])]
                     or [(p, f) for (_, p), ds in files_of.items() for f in ds.get(other, [])])
        message = (
            f"Azure cost details: billing account {account}, period {stated}: only {_DATASET_NAMES[dataset]} rows "
            f"({_named_files(sorted(set(files)))}), while this set's {_DATASET_NAMES[other]} rows are for "
            f"period(s) {', '.join(sorted({p for p, _ in elsewhere}))} "
            f"({_named_files(sorted({f for _, f in elsewhere}))}): actual-cost and amortized-cost exports of "
            "different periods (or one missing for this account) would fall into the actual-only / "
            "amortized-only modes and change BilledCost; deliver both exports of the same period")
        rows += [(account, period, message) for period in sorted(periods_of[(account, stated)])]
    return (pl.DataFrame(rows, schema=schema, orient="row")
            .group_by(ACCOUNT, "x_BillingPeriod", maintain_order=True).agg(pl.col("problem").str.join("; ")))


def _dropped_rows(raw: pl.LazyFrame, col: Cols, paired: pl.DataFrame) -> pl.DataFrame:
    """Per billing account, period and currency: the actual rows represented by their amortized
    twin (valid rows of paired periods; per charge, the smaller of its actual and amortized counts)."""
    out_schema = {"BillingAccountId": pl.String, "x_BillingPeriod": pl.String, "BillingCurrency": pl.String,
                  "dropped_rows": pl.UInt32}
    if paired.is_empty():
        return pl.DataFrame(schema=out_schema)
    identity = charge_identity(col)
    dataset = pl.col("x_CostDataset")
    rows = raw.select(pl.len()).collect(engine="streaming").item()
    charges = (raw.with_columns(billing_account(col)[0].alias(ACCOUNT))
               .join(paired.lazy(), on=_PERIOD_KEYS, how="semi", nulls_equal=True)
               .filter(quarantine_reason(col.schema).is_null())
               .select(pl.col(ACCOUNT).cast(pl.Categorical).alias("BillingAccountId"),
                       pl.col("x_BillingPeriod").cast(pl.Categorical),
                       col("BillingCurrency").cast(pl.Categorical).alias("BillingCurrency"),
                       identity.hash(7).alias("__h1"), identity.hash(13).alias("__h2"), dataset))
    # one group per charge of a bucket, held as two hashes, three categories and two counts
    per_bucket = [bucket.group_by(*_TOTALS_KEYS, "__h1", "__h2")
                  .agg((dataset == ACTUAL).sum().alias("__actual"), (dataset == AMORTIZED).sum().alias("__amortized"))
                  .group_by(_TOTALS_KEYS)
                  .agg(pl.min_horizontal("__actual", "__amortized").sum().alias("dropped_rows")).cast(out_schema)
                  for bucket in by_bucket(charges, pl.col("__h1"), rows)]
    return pl.concat(per_bucket).group_by(_TOTALS_KEYS).agg(pl.col("dropped_rows").sum()).cast(out_schema)


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Per billing account, period and currency: ``billed``, ``amortized`` (see the module doc),
    ``rows``, ``quarantined_rows``, ``dropped_rows`` and ``problem`` (null, or why the raw set is
    refused: actual and amortized files of different periods)."""
    schema = raw.collect_schema()
    col = Cols(schema)
    streams = _streams(raw, col).collect(engine="streaming")
    modes = period_modes(streams.lazy(), ACCOUNT).collect()
    dropped = _dropped_rows(raw, col, modes.filter(pl.col(MODE) == PAIRED).select(_PERIOD_KEYS))
    problems = _stream_problems(streams).rename({ACCOUNT: "BillingAccountId"})
    mode, dataset = pl.col(MODE), pl.col("x_CostDataset")
    billed = (pl.when(mode == AMORTIZED_ONLY).then(pl.col("__billed_direct"))
              .when(dataset == ACTUAL).then(pl.col("__cost")).otherwise(pl.lit(0, MONEY)))
    amortized = (pl.when(mode == ACTUAL_ONLY).then(pl.col("__usage_cost"))
                 .when(dataset == AMORTIZED).then(pl.col("__cost")).otherwise(pl.lit(0, MONEY)))
    return (streams.lazy().join(modes.lazy(), on=_PERIOD_KEYS, how="left", nulls_equal=True)
            .group_by(pl.col(ACCOUNT).alias("BillingAccountId"), "x_BillingPeriod", "BillingCurrency")
            .agg(billed.sum().alias("billed"), amortized.sum().alias("amortized"),
                 pl.col("rows").sum(), pl.col("quarantined_rows").sum())
            .join(dropped.lazy(), on=_TOTALS_KEYS, how="left", nulls_equal=True)
            .with_columns(pl.col("dropped_rows").fill_null(0))
            .join(problems.lazy(), on=["BillingAccountId", "x_BillingPeriod"], how="left", nulls_equal=True))


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted: the reason, both cost bases, the unreadable amounts and lineage."""
    schema = raw.collect_schema()
    col = Cols(schema)
    # the reason is computed once, then filtered on (as the other formats do: filtering on the
    # expression and selecting it again can make polars 2.1 panic)
    datasets = raw.select(billing_account(col)[0].alias(ACCOUNT), "x_BillingPeriod", "x_CostDataset")
    with_reason = (_with_modes(raw, col, period_modes(datasets, ACCOUNT))
                   .with_columns(quarantine_reason(schema).alias("x_QuarantineReason")))
    return with_reason.filter(pl.col("x_QuarantineReason").is_not_null()).select(
        "x_QuarantineReason",
        billed_basis(col).alias("x_BilledCost"),
        amortized_basis(col).alias("x_EffectiveCost"),
        pl.col(ACCOUNT).alias("BillingAccountId"),
        col("BillingCurrency").alias("BillingCurrency"),
        col("ChargeType").alias("x_ChargeType"),
        unreadable_amounts(schema),
        *[pl.col(n) for n in lineage_names()],
    )
