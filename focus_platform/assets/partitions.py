"""Partitions: monthly billing period (YYYY-MM, the open month included) × export source.

The billing-period window is one definition, ``billing_periods``: from ``FIRST_PERIOD`` to the current
month (UTC). 2017-01 holds the oldest Cost and Usage Reports still met in practice (CURs of 2017) while
keeping the months Dagster offers per source near a hundred, not decades of empty partitions. A period
outside the window (a folder named ``2099-01`` or ``2016-12``) has no partition: ``in_window`` says
whether a period has one and ``outside_window`` the sentence that refuses it (the CLI and the delivery
sensor refuse such a period and go on with the others).
"""

import dagster as dg

from focus_platform.periods import is_billing_period

BILLING_PERIOD = "billing_period"
EXPORT_SOURCE = "export_source"
FIRST_PERIOD = "2017-01"

billing_periods = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD, fmt="%Y-%m", end_offset=1)
export_sources = dg.DynamicPartitionsDefinition(name=EXPORT_SOURCE)
PARTITIONS = dg.MultiPartitionsDefinition({BILLING_PERIOD: billing_periods, EXPORT_SOURCE: export_sources})


def partition_key(period: str, source: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({BILLING_PERIOD: period, EXPORT_SOURCE: source})


def partition_keys(context: dg.AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys[BILLING_PERIOD], keys[EXPORT_SOURCE]


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
