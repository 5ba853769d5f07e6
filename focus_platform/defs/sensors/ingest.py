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
"""

from __future__ import annotations

import json

import dagster as dg

from focus_platform.defs.assets.ingest import focus_pipeline_job
from focus_platform.defs.partitions import (
    EXPORT_SOURCE,
    dagster_key,
    in_window,
    outside_window,
)
from focus_platform.defs.resources import LandingZoneResource
from focus_platform.periods import PartitionKey


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


