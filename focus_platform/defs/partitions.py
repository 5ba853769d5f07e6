"""Partitions: monthly billing period (YYYY-MM, the open month included) × export source.

The keys are ``periods.PartitionKey``'s text (``YYYY-MM|source``, ``YYYY-MM``): ``key_of`` turns a run's
partition into a ``PartitionKey`` and ``dagster_key`` back, so a key has one shape from sensor cursor to
Delta predicate.

The billing-period window Dagster offers runs from the first period the retention policy keeps
(``warehouse.retention.offered_window`` over the tables written by the assets of that partitions
definition; 2017-01, ``FIRST_PERIOD``, when they are kept forever) to the current month (UTC). A
period outside it (a folder named ``2099-01``, or a month past retention) has no partition: ``in_window``
says whether a period has one and ``outside_window`` the sentence that refuses it.
"""

import dagster as dg

from focus_platform.periods import BillingPeriod, PartitionKey, is_billing_period

BILLING_PERIOD = "billing_period"
EXPORT_SOURCE = "export_source"
FIRST_PERIOD = "2017-01"

billing_periods = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD, fmt="%Y-%m", end_offset=1)
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
    return (f"{period} is outside the billing-period window {FIRST_PERIOD} to {last_period()} (the current month): "
            "no partition holds it, so it is not loaded; check the folder's name")


def open_and_previous(now=None) -> list[BillingPeriod]:
    """The months providers still re-deliver: the previous one (restated until final) and the open one."""
    current = BillingPeriod.current(now)
    return [current.shift(-1), current]
