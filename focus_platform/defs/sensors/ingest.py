"""Ingest sensors: new export sources and new or changed deliveries.

``delivery_sensor`` (running by default): configured export sources become dynamic partitions; a new
or changed delivery (new assemblyId / CUR 2.0 execution / Azure export run, or an object of it
rewritten: other ETag or size) runs ``raw_exports`` + ``focus_costs`` for exactly its (period, source)
partition, one run per partition; what follows (reconciliation, SKU catalog, invoices) is declarative
automation. Cursor: ``{"YYYY-MM|source": "delivery_id|fingerprint"}`` keyed by ``PartitionKey``'s text (a
cursor written by the previous release, keyed ``source|YYYY-MM``, is read and written back in this
shape). A refused period (ambiguous copies, escaping key, manifest naming a missing object, a stream
missing) or a refused source (a stray file, a listing that fails) is reported in the log and the skip
reason and leaves its cursor entries as they were, so it is looked at again on every tick until fixed;
the other periods and sources run as usual (``LandingZoneResource.discover_all``). A period outside
the billing-period window (``partitions.in_window``: a folder ``2099-01``, a month past retention) has
no partition: it is refused the same way, never requested.

``account_catalog_sensor`` (running by default): a new, changed or removed file under
``<landing root>/accounts/`` re-runs ``focus_costs`` for exactly the (period, source) partitions in the
billing-period window whose BillingAccountId or SubAccountId has a catalog entry that was added, removed,
renamed or moved (only those two columns of focus_costs are read). Cursor: ``{"files": <digest of the
files listed>, "accounts": {<lower-cased account id>: <digest of its entries>}}``; a catalog that cannot
be read is logged and skipped with its cursor kept, so it is read again on every tick until fixed.
"""

from __future__ import annotations

import json

import dagster as dg
import polars as pl

from focus_platform.allocation.accounts import (
    CatalogError,
    catalog_files,
    catalog_files_fingerprint,
    changed_accounts,
    entry_digests,
    read_catalog,
)
from focus_platform.defs.assets.ingest import (
    FOCUS_CHECKS,
    focus_costs,
    focus_pipeline_job,
)
from focus_platform.defs.partitions import (
    EXPORT_SOURCE,
    FIRST_PERIOD,
    dagster_key,
    in_window,
    last_period,
    outside_window,
)
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.landing.zone import DeliveryError
from focus_platform.periods import PartitionKey
from focus_platform.warehouse.catalog import FOCUS_TABLE


def read_cursor(text: str | None) -> dict[str, str]:
    """The delivery cursor, keys in ``PartitionKey``'s text (earlier ``source|period`` keys converted)."""
    seen = json.loads(text) if text else {}
    return {str(PartitionKey.parse(k)): v for k, v in seen.items()}


@dg.sensor(minimum_interval_seconds=60, job=focus_pipeline_job,
           default_status=dg.DefaultSensorStatus.RUNNING)
def delivery_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    """New export sources become partitions; a new or changed delivery runs exactly its partition."""
    seen = read_cursor(context.cursor)
    discoveries = landing_zone.discover_all()
    known = set(context.instance.get_dynamic_partitions(EXPORT_SOURCE))
    new_sources = [d.source.name for d in discoveries if d.source.name not in known]
    requests, problems = [], []
    for found in discoveries:  # a refused period or source keeps its cursor entries as they were
        problems.extend(found.problems)
        if found.note:
            context.log.info(found.note)
        for period, delivery in found.deliveries.items():
            if not in_window(period):  # no partition holds it: refused like any other period
                problems.append(f"export source {found.source.name}, billing period {outside_window(period)}")
                continue
            partition = PartitionKey.of(period, found.source.name)
            key = str(partition)
            value = f"{delivery.delivery_id}|{delivery.fingerprint}"
            if seen.get(key) == delivery.delivery_id:  # a cursor of the earlier format: same delivery
                seen[key] = value
            if seen.get(key) != value:
                requests.append(dg.RunRequest(run_key=f"{key}|{delivery.delivery_id}|{delivery.fingerprint}",
                                              partition_key=dagster_key(partition),
                                              tags={"focus/trigger": "delivery",
                                                    "focus/delivery": delivery.delivery_id[:60]}))
                seen[key] = value
    for p in problems:
        context.log.warning(p)
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(EXPORT_SOURCE, new_sources)] if new_sources else [],
        skip_reason=None if requests or new_sources else
        dg.SkipReason("no new or changed deliveries" + (f"; {len(problems)} refused: " + _summary(problems)
                                                         if problems else "")),
    )


def _summary(problems: list[str], each: int = 400, total: int = 4000) -> str:
    """The refusals in a skip reason: every one named (each cut to ``each`` characters; the log has them whole)."""
    return " | ".join(p if len(p) <= each else p[:each - 1] + "…" for p in problems)[:total]




def partitions_with_accounts(warehouse: WarehouseResource, accounts: set[str]) -> list[PartitionKey]:
    """The focus_costs partitions of the billing-period window whose BillingAccountId or SubAccountId is
    one of ``accounts`` (lower-cased ids; only those two columns and the partition columns are read)."""
    wh = warehouse.warehouse()
    if not accounts or not wh.exists(FOCUS_TABLE):
        return []
    ids = sorted(accounts)
    found = (wh.scan(FOCUS_TABLE)
             .filter(pl.col("x_BillingPeriod").is_between(pl.lit(FIRST_PERIOD), pl.lit(last_period())))
             .filter(pl.col("BillingAccountId").str.to_lowercase().is_in(ids)
                     | pl.col("SubAccountId").str.to_lowercase().is_in(ids))
             .select("x_BillingPeriod", "x_Source").unique().sort("x_BillingPeriod", "x_Source").collect())
    return [PartitionKey.of(period, source) for period, source in found.iter_rows()]


@dg.sensor(minimum_interval_seconds=300, asset_selection=[focus_costs], default_status=dg.DefaultSensorStatus.RUNNING)
def account_catalog_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource,
                           warehouse: WarehouseResource):
    """A changed account catalog re-publishes exactly the FOCUS partitions whose accounts' entries changed."""
    seen = json.loads(context.cursor) if context.cursor else {"files": None, "accounts": {}}
    store = landing_zone.store()
    files = catalog_files_fingerprint(store)
    if files == seen["files"]:
        return dg.SkipReason("account catalog unchanged")
    try:
        catalog = read_catalog(catalog_files(store))
    except (CatalogError, DeliveryError) as exc:  # kept for the next tick: the cursor stays
        context.log.warning(f"account catalog not read: {exc}")
        return dg.SkipReason(f"account catalog not read: {exc}")
    entries = entry_digests(catalog)
    changed = changed_accounts(seen["accounts"], entries)
    partitions = partitions_with_accounts(warehouse, changed)
    requests = [dg.RunRequest(run_key=f"accounts|{key}|{files}", asset_selection=list(focus_costs.keys),
                              asset_check_keys=[c.key for c in FOCUS_CHECKS], partition_key=dagster_key(key),
                              tags={"focus/trigger": "account_catalog"}) for key in partitions]
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps({"files": files, "accounts": entries}, sort_keys=True),
        skip_reason=None if requests else dg.SkipReason(
            f"account catalog changed ({len(changed)} account(s) added, removed, renamed or moved); no published "
            "FOCUS partition in the window has them"))
