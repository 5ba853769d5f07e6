"""Partitions: monthly billing period (YYYY-MM, the open month included) × export source.

The keys are ``periods.PartitionKey``'s text (``YYYY-MM|source``, ``YYYY-MM``): ``key_of`` turns a run's
partition into a ``PartitionKey`` and ``dagster_key`` back, so a key has one shape from sensor cursor to
Delta predicate.

The billing-period windows Dagster offers run from the first period the retention policy keeps to the
current month (UTC): per domain, the start of the longest-kept table its assets write
(``warehouse.retention.offered_window``; 2017-01 when they keep everything, e.g. ``FOCUS_RETENTION=keep``).
With the catalog's defaults the ingest domain offers 36 months (focus_costs), the reconcile and
allocate domains 84 (invoice_reconciliation, cost_allocations): a month past retention is not offered for
backfill. A period outside the ingest window (a folder named ``2099-01``, a month past retention) has no partition: ``in_window`` says
whether a period has one and ``outside_window`` the sentence that refuses it. A window's end follows the
clock; its start is computed when the definitions load, so a long-running code location offers one month
too many until it is reloaded or redeployed (the retention job and M11 use the clock, not this start).
"""

import dagster as dg

from focus_platform.periods import BillingPeriod, PartitionKey, is_billing_period
from focus_platform.sources import RAW_TABLES
from focus_platform.warehouse import retention
from focus_platform.warehouse.catalog import (
    ALLOCATION_DIFF_TABLE,
    ALLOCATIONS_TABLE,
    FOCUS_TABLE,
    FOCUS_V1_3_TABLE,
    PERIOD_STATUS,
    QUARANTINE_TABLE,
    RECONCILIATION_TABLE,
    SKU_CATALOG_TABLE,
)

BILLING_PERIOD = "billing_period"
EXPORT_SOURCE = "export_source"
INGEST_TABLES = (*RAW_TABLES, FOCUS_TABLE, QUARANTINE_TABLE, PERIOD_STATUS)
RECONCILE_TABLES = (RECONCILIATION_TABLE, SKU_CATALOG_TABLE)
ALLOCATE_TABLES = (ALLOCATIONS_TABLE, ALLOCATION_DIFF_TABLE, FOCUS_V1_3_TABLE)
FIRST_PERIOD = str(retention.offered_window(INGEST_TABLES))  # the ingest window's first period


def _monthly(first: str) -> dg.MonthlyPartitionsDefinition:
    return dg.MonthlyPartitionsDefinition(start_date=first, fmt="%Y-%m", end_offset=1)


billing_periods = _monthly(FIRST_PERIOD)
reconcile_periods = _monthly(str(retention.offered_window(RECONCILE_TABLES)))
allocate_periods = _monthly(str(retention.offered_window(ALLOCATE_TABLES)))
export_sources = dg.DynamicPartitionsDefinition(name=EXPORT_SOURCE)
PARTITIONS = dg.MultiPartitionsDefinition({BILLING_PERIOD: billing_periods, EXPORT_SOURCE: export_sources})


def dagster_key(key: PartitionKey) -> str | dg.MultiPartitionKey:
    """The Dagster partition key of a ``PartitionKey`` (its text is the same)."""
    if key.source is None:
        return str(key.period)
    return dg.MultiPartitionKey({BILLING_PERIOD: str(key.period), EXPORT_SOURCE: key.source})


def key_of(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> PartitionKey:
    """The run's partition as a ``PartitionKey``."""
    return PartitionKey.parse(str(context.partition_key))


def last_period() -> str:
    """The newest billing period with a partition: the current month (UTC)."""
    return billing_periods.get_last_partition_key()


def in_window(period: str) -> bool:
    """Whether a billing period (YYYY-MM) has a partition: from FIRST_PERIOD to the current month."""
    return is_billing_period(period) and FIRST_PERIOD <= period <= last_period()


def outside_window(period: str) -> str:
    """The refusal of a billing period without a partition, naming the window."""
    return (f"{period} is outside the billing-period window {FIRST_PERIOD} to {last_period()} (the current month; "
            f"retention {retention.RETENTION_VARIABLE}): no partition holds it, so it is not loaded; check the "
            "folder's name or the retention policy")


def open_and_previous(now=None) -> list[BillingPeriod]:
    """The months providers still re-deliver: the previous one (restated until final) and the open one."""
    current = BillingPeriod.current(now)
    return [current.shift(-1), current]
