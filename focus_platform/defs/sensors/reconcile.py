"""Reconcile sensors: invoice files landing (external data) and the periods a new invoices version changed.

- ``invoice_sensor`` (running by default): a new or changed file under
  ``<landing root>/invoices/<billing account>/`` (invoices, credit memos landing after month close)
  rebuilds the ``invoices`` table and re-runs ``focus_costs`` for the periods it applies to (period
  status): an invoice its own billing period, a memo the period of the invoice it adjusts (an earlier
  month; its own period while that invoice is not there yet), for the export sources whose published
  FOCUS partition of that period has the billing account. Cursor: ``{"invoices/…": etag}``.
- ``invoices_changed_sensor`` (running by default): a new version of the unpartitioned ``invoices``
  table re-runs the reconciliation of exactly the periods it changed (its ``affected_periods``
  metadata). Declarative automation cannot say which periods one rebuild of an unpartitioned table
  touched, so ``invoice_reconciliation``'s automation ignores ``invoices`` and this sensor names them.

A re-published FOCUS partition reaches its period's reconciliation and SKU catalog by automation
(``automation.follows_upstream``), not by a sensor.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import polars as pl

from focus_platform.defs.assets import reconcile
from focus_platform.defs.assets.ingest import FOCUS_CHECKS, focus_costs
from focus_platform.defs.partitions import dagster_key
from focus_platform.defs.resources import (
    INVOICE_PREFIX,
    LandingZoneResource,
    WarehouseResource,
)
from focus_platform.landing.zone import DeliveryError, unsafe_key
from focus_platform.periods import PartitionKey
from focus_platform.reconciliation import invoices
from focus_platform.warehouse.catalog import FOCUS_TABLE


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


@dg.sensor(minimum_interval_seconds=300, asset_selection=[focus_costs, reconcile.invoices_asset],
           default_status=dg.DefaultSensorStatus.RUNNING)
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
                              asset_check_keys=[c.key for c in FOCUS_CHECKS],
                              partition_key=dagster_key(PartitionKey.of(period, source)), tags=tags)
                for period, source in partitions]
    if done:
        requests.append(dg.RunRequest(run_key=f"invoice|invoices|{digest}",
                                      asset_selection=[reconcile.invoices_asset.key],
                                      asset_check_keys=[c.key for c in reconcile.INVOICES_CHECKS],
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


@dg.asset_sensor(asset_key=reconcile.invoices_asset.key, job=reconcile.reconciliation_job,
                 default_status=dg.DefaultSensorStatus.RUNNING)
def invoices_changed_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """A new version of the invoices table re-runs the reconciliation of the periods it changed
    (a late credit memo for M−2: M−2)."""
    materialization = asset_event.asset_materialization
    periods = materialization.metadata.get("affected_periods") if materialization else None
    for period in (periods.value if periods else []):
        yield _reconcile(period, f"invoices|{asset_event.run_id}|{period}", "invoices")
