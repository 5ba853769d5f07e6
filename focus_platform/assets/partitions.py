"""Partitions: monthly billing period (YYYY-MM, the open month included) × export source."""


import dagster as dg

BILLING_PERIOD = "billing_period"
EXPORT_SOURCE = "export_source"

billing_periods = dg.MonthlyPartitionsDefinition(start_date="2018-01", fmt="%Y-%m", end_offset=1)
export_sources = dg.DynamicPartitionsDefinition(name=EXPORT_SOURCE)
PARTITIONS = dg.MultiPartitionsDefinition({BILLING_PERIOD: billing_periods, EXPORT_SOURCE: export_sources})


def partition_key(period: str, source: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({BILLING_PERIOD: period, EXPORT_SOURCE: source})


def partition_keys(context: dg.AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys[BILLING_PERIOD], keys[EXPORT_SOURCE]
