"""Sensors: new export sources and new or changed deliveries; late invoices and credit memos.

- ``delivery_sensor``: configured export sources become dynamic partitions; a new or changed
  delivery (new assemblyId / CUR 2.0 execution / Azure export run, or an object of it rewritten:
  other ETag or size) runs ``raw_exports`` + ``focus_costs`` for exactly its (period, source)
  partition. Cursor: ``{"source|period": "delivery_id|fingerprint"}``. A refused period (ambiguous
  copies, escaping key, manifest naming a missing object, a stream missing) or a refused source (a
  stray file, a listing that fails) is reported in the log and the skip reason and leaves its
  cursor entries as they were, so it is looked at again on every tick until fixed; the other
  periods and sources run as usual (``LandingZoneResource.discover_all``). A period outside the
  billing-period window (``partitions.in_window``: a folder ``2099-01``) has no partition: it is
  refused the same way, never requested.
- ``invoice_sensor``: a new or changed file under ``<landing root>/invoices/<billing account>/``
  (invoices, credit memos landing after month close) rebuilds the ``invoices`` table and re-runs
  ``focus_costs`` for the periods it applies to (period status): an invoice its own billing period,
  a memo the period of the invoice it adjusts (an earlier month; its own period while that invoice
  is not there yet), for the export sources whose published FOCUS partition of that period has the
  billing account. Cursor: ``{"invoices/…": etag}``.
- ``invoices_changed_sensor`` / ``focus_published_sensor``: a new ``invoices`` version re-runs the
  reconciliation (``reconciliation_job``) of the periods it changed (its ``affected_periods``); a
  re-published FOCUS partition re-runs its period's reconciliation and SKU catalog.

Downstream follows by explicit selection and these asset sensors: one delivery re-runs raw → FOCUS
(+ quarantine) in one run, then its period's reconciliation, without a person clicking.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import polars as pl

from focus_platform.assets import focus_costs, raw_exports
from focus_platform.assets.partitions import (
    BILLING_PERIOD,
    EXPORT_SOURCE,
    in_window,
    outside_window,
    partition_key,
)
from focus_platform.assets.reconciliation import invoices_asset
from focus_platform.jobs import reconciliation_job
from focus_platform.landing.zone import DeliveryError, unsafe_key
from focus_platform.pipeline import FOCUS_TABLE
from focus_platform.reconciliation import invoices
from focus_platform.resources import (
    INVOICE_PREFIX,
    LandingZoneResource,
    WarehouseResource,
)

DELIVERY_ASSETS = [raw_exports, focus_costs]


@dg.sensor(minimum_interval_seconds=60, asset_selection=DELIVERY_ASSETS,
           default_status=dg.DefaultSensorStatus.STOPPED)
def delivery_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    """New export sources become partitions; a new or changed delivery runs exactly its partition."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
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
            key = f"{found.source.name}|{period}"
            value = f"{delivery.delivery_id}|{delivery.fingerprint}"
            if seen.get(key) == delivery.delivery_id:  # a cursor of the earlier format: same delivery
                seen[key] = value
            if seen.get(key) != value:
                requests.append(dg.RunRequest(run_key=f"{key}|{delivery.delivery_id}|{delivery.fingerprint}",
                                              partition_key=partition_key(period, found.source.name),
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


# ---------------------------------------------------------------------------------------------
# Invoices and credit memos
# ---------------------------------------------------------------------------------------------
def _sources_with_accounts(warehouse, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """Export sources whose published FOCUS partition of the period has the billing account."""
    wh = warehouse.warehouse()
    if not pairs or not wh.exists(FOCUS_TABLE):
        return {}
    periods = sorted({p for _, p in pairs})
    found = (wh.scan(FOCUS_TABLE).filter(pl.col("x_BillingPeriod").is_in(periods))
             .select("BillingAccountId", "x_BillingPeriod", "x_Source").unique().collect())
    out: dict[tuple[str, str], list[str]] = {}
    for account, period, source in found.iter_rows():
        if (account, period) in pairs:
            out.setdefault((account, period), []).append(source)
    return {k: sorted(v) for k, v in out.items()}


@dg.sensor(minimum_interval_seconds=300, asset_selection=[focus_costs, invoices_asset],
           default_status=dg.DefaultSensorStatus.STOPPED)
def invoice_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource,
                   warehouse: WarehouseResource):
    """Late invoices and credit memos: the ``invoices`` table is rebuilt (``reconciliation_sensor``
    then re-runs the periods it names) and the FOCUS partitions of the periods they apply to are
    re-published (their period status turns final)."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    store = landing_zone.store()
    objects = [o for o in store.list(INVOICE_PREFIX) if not o.key.rsplit("/", 1)[-1].startswith(".")]
    problems = [f"{o.key}: {unsafe_key(o.key)}" for o in objects if unsafe_key(o.key)]
    objects = [o for o in objects if not unsafe_key(o.key)]
    changed = [o for o in objects if seen.get(o.key) != o.etag]
    if not changed:
        return dg.SkipReason(f"no new or changed invoice files ({len(objects)} known)"
                             + (f"; {len(problems)} refused" if problems else ""))
    docs: dict[str, list[invoices.Invoice]] = {}
    for o in objects:
        try:
            docs[o.key] = invoices.parse_invoice_file(o.key, store.read_bytes(o.key))
        except (invoices.InvoiceError, DeliveryError) as exc:  # unreadable now: looked at again next tick
            if o in changed:
                problems.append(f"{o.key}: {exc}")
    done = [o for o in changed if o.key in docs]
    pairs, pending = invoices.periods_applied_to([d for o in done for d in docs[o.key]],
                                                 [d for ds in docs.values() for d in ds])
    sources = _sources_with_accounts(warehouse, pairs)
    partitions = sorted({(period, s) for (account, period), ss in sources.items() for s in ss})
    for account, period in sorted(pairs - set(sources)):
        context.log.info(f"invoice for billing account {account} {period}: no published FOCUS partition has this "
                         "account yet (its delivery will run it)")
    digest = hashlib.sha256("|".join(f"{o.key}={o.etag}" for o in done).encode()).hexdigest()[:12]
    tags = {"focus/trigger": "invoice"}
    requests = [dg.RunRequest(run_key=f"invoice|{period}|{source}|{digest}", asset_selection=list(focus_costs.keys),
                              partition_key=partition_key(period, source), tags=tags)
                for period, source in partitions]
    if done:
        requests.append(dg.RunRequest(run_key=f"invoice|invoices|{digest}", asset_selection=[invoices_asset.key],
                                      tags=tags))
    for p in problems + pending:
        context.log.warning(p)
    for o in done:
        seen[o.key] = o.etag
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        skip_reason=None if requests else dg.SkipReason(
            f"{len(changed)} new or changed invoice file(s), none readable"
            + (f"; {len(problems)} unreadable" if problems else "")))


def _reconcile(period: str, run_key: str, trigger: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, partition_key=period, tags={"focus/trigger": trigger})


@dg.asset_sensor(asset_key=invoices_asset.key, job=reconciliation_job, default_status=dg.DefaultSensorStatus.STOPPED)
def invoices_changed_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """A new version of the invoices table re-runs the reconciliation of the periods it changed
    (a late credit memo for M−2: M−2)."""
    materialization = asset_event.asset_materialization
    periods = materialization.metadata.get("affected_periods") if materialization else None
    for period in (periods.value if periods else []):
        yield _reconcile(period, f"invoices|{asset_event.run_id}|{period}", "invoices")


@dg.asset_sensor(asset_key=dg.AssetKey(FOCUS_TABLE), job=reconciliation_job, default_status=dg.DefaultSensorStatus.STOPPED)
def focus_published_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """A re-published FOCUS partition re-runs its billing period's reconciliation and SKU catalog."""
    key = asset_event.dagster_event.partition if asset_event.dagster_event else None
    if key:
        period = dg.MultiPartitionKey.from_str(key).keys_by_dimension[BILLING_PERIOD] \
            if "|" in key else key
        yield _reconcile(period, f"focus|{asset_event.run_id}|{key}", "focus_costs")


SENSORS = [delivery_sensor, invoice_sensor, invoices_changed_sensor, focus_published_sensor]
