"""Sensors: new export sources and new or changed deliveries; late invoices and credit memos.

- ``delivery_sensor``: configured export sources become dynamic partitions; a new or changed
  delivery (new assemblyId / CUR 2.0 execution / Azure export run, or an object of it rewritten:
  other ETag or size) runs ``raw_exports`` + ``focus_costs`` for exactly its (period, source)
  partition. Cursor: ``{"source|period": "delivery_id|fingerprint"}``. A refused delivery (escaping
  key, manifest naming a missing object, a stream missing) is reported and leaves the cursor of
  its partition as it was, so it is looked at again on every tick until fixed.
- ``invoice_sensor``: a new or changed file under ``<landing root>/invoices/<billing account>/``
  (invoices, credit memos landing after month close) runs the targets in ``INVOICE_TARGETS`` for
  the periods it applies to: an invoice its own billing period, a memo the period of the invoice it
  adjusts (an earlier month; its own period while that invoice is not there yet), for the export
  sources whose published FOCUS partition of that period has the billing account.
  Cursor: ``{"invoices/…": etag}``.

Downstream follows by explicit selection: each RunRequest names the assets of the chain, so one
delivery re-runs raw → FOCUS (+ quarantine) in one run; the reconciliation asset (issue 5) joins
by adding an ``InvoiceTarget`` (monthly partitions: ``per_source=False``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass

import dagster as dg
import polars as pl

from focus_platform.assets import focus_costs, raw_exports
from focus_platform.assets.partitions import EXPORT_SOURCE, partition_key
from focus_platform.landing.zone import DeliveryError, unsafe_key
from focus_platform.pipeline import FOCUS_TABLE
from focus_platform.resources import INVOICE_PREFIX, LandingZoneResource, WarehouseResource

DELIVERY_ASSETS = [raw_exports, focus_costs]


@dg.sensor(minimum_interval_seconds=60, asset_selection=DELIVERY_ASSETS,
           default_status=dg.DefaultSensorStatus.STOPPED)
def delivery_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    """New export sources become partitions; a new or changed delivery runs exactly its partition."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    sources = landing_zone.sources()
    known = set(context.instance.get_dynamic_partitions(EXPORT_SOURCE))
    new_sources = [s.name for s in sources if s.name not in known]
    requests, problems = [], []
    for source in sources:
        try:
            refused: dict = {}
            deliveries = landing_zone.deliveries(source, refused)
            problems.extend(str(e) for e in refused.values())
        except (DeliveryError, OSError) as exc:  # the whole source unreadable this tick: cursor unchanged
            problems.append(f"{source.name}: {exc}")
            continue
        for period, delivery in deliveries.items():
            key = f"{source.name}|{period}"
            value = f"{delivery.delivery_id}|{delivery.fingerprint}"
            if seen.get(key) == delivery.delivery_id:  # a cursor of the earlier format: same delivery
                seen[key] = value
            if seen.get(key) != value:
                requests.append(dg.RunRequest(run_key=f"{key}|{delivery.delivery_id}|{delivery.fingerprint}",
                                              partition_key=partition_key(period, source.name),
                                              tags={"focus/trigger": "delivery",
                                                    "focus/delivery": delivery.delivery_id[:60]}))
                seen[key] = value
    for p in problems:
        context.log.warning(p)
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(EXPORT_SOURCE, new_sources)] if new_sources else [],
        skip_reason=None if requests or new_sources else
        dg.SkipReason("no new or changed deliveries" + (f"; {len(problems)} refused: " + " | ".join(problems)[:500]
                                                         if problems else "")),
    )


# ---------------------------------------------------------------------------------------------
# Invoices and credit memos
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InvoiceTarget:
    """What a late invoice document re-runs: assets and how their partitions are keyed."""

    name: str
    assets: tuple
    per_source: bool = True  # partitions (billing period × export source); False: monthly only


INVOICE_TARGETS: list[InvoiceTarget] = [InvoiceTarget("focus_costs", (focus_costs,))]
INVOICE_FILE = re.compile(r"^(\d{4}-\d{2})")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class InvoiceDoc:
    invoice_id: str
    billing_account: str
    period: str
    adjusts: str | None
    key: str


def parse_invoice_docs(key: str, content: bytes) -> list[InvoiceDoc]:
    """Invoice documents of one file (CSV with a header, or JSON lines): the fields the sensor needs."""
    text = content.decode("utf-8-sig")
    if key.lower().endswith((".jsonl", ".ndjson", ".json")):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    out = []
    for n, r in enumerate(rows, start=1):
        invoice_id, account, period = (str(r.get(k) or "").strip() for k in ("invoice_id", "billing_account_id",
                                                                               "billing_period"))
        if not (invoice_id and account and _PERIOD.match(period)):
            raise ValueError(f"{key} row {n}: invoice_id, billing_account_id and billing_period (YYYY-MM) are required")
        out.append(InvoiceDoc(invoice_id, account, period, str(r.get("adjusts_invoice_id") or "").strip() or None, key))
    return out


def affected_periods(changed: list[InvoiceDoc],
                     all_docs: dict[str, InvoiceDoc]) -> tuple[set[tuple[str, str]], list[str]]:
    """(billing account, period) pairs the changed documents apply to: an invoice its own period; a
    memo the period of the invoice it adjusts (following memo → memo chains), or its own period
    while that invoice has not arrived."""
    out: set[tuple[str, str]] = set()
    pending = []
    for doc in changed:
        target, seen, applies = doc, {doc.invoice_id}, doc
        while target.adjusts:
            nxt = all_docs.get(target.adjusts)
            if nxt is None or nxt.invoice_id in seen:
                pending.append(f"{doc.key}: memo {doc.invoice_id} adjusts invoice {target.adjusts}, "
                               + ("not seen yet" if nxt is None else "a loop of memos"))
                applies = doc
                break
            seen.add(nxt.invoice_id)
            target = applies = nxt
        out.add((applies.billing_account, applies.period))
    return out, pending


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


@dg.sensor(minimum_interval_seconds=300, asset_selection=[a for t in INVOICE_TARGETS for a in t.assets],
           default_status=dg.DefaultSensorStatus.STOPPED)
def invoice_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource,
                   warehouse: WarehouseResource):
    """Late invoices and credit memos re-run the partitions of the periods they apply to."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    store = landing_zone.store()
    objects = [o for o in store.list(INVOICE_PREFIX) if not o.key.rsplit("/", 1)[-1].startswith(".")]
    problems = [f"{o.key}: {unsafe_key(o.key)}" for o in objects if unsafe_key(o.key)]
    objects = [o for o in objects if not unsafe_key(o.key)]
    changed = [o for o in objects if seen.get(o.key) != o.etag]
    if not changed:
        return dg.SkipReason(f"no new or changed invoice files ({len(objects)} known)"
                             + (f"; {len(problems)} refused" if problems else ""))
    docs: dict[str, list[InvoiceDoc]] = {}
    for o in objects:
        try:
            docs[o.key] = parse_invoice_docs(o.key, store.read_bytes(o.key))
        except (ValueError, UnicodeDecodeError, DeliveryError) as exc:  # unreadable now: looked at again next tick
            if o in changed:
                problems.append(f"{o.key}: {exc}")
    by_id = {d.invoice_id: d for ds in docs.values() for d in ds}
    done = [o for o in changed if o.key in docs]
    pairs, pending = affected_periods([d for o in done for d in docs[o.key]], by_id)
    sources = _sources_with_accounts(warehouse, pairs)
    partitions = sorted({(period, s) for (account, period), ss in sources.items() for s in ss})
    for account, period in sorted(pairs - set(sources)):
        context.log.info(f"invoice for billing account {account} {period}: no published FOCUS partition has this "
                         "account yet (its delivery will run it)")
    digest = hashlib.sha256("|".join(f"{o.key}={o.etag}" for o in done).encode()).hexdigest()[:12]
    requests = []
    for target in INVOICE_TARGETS:
        keys = [k for a in target.assets for k in
                (a.keys if isinstance(a, dg.AssetsDefinition) else [dg.AssetKey.from_coercible(a)])]
        if target.per_source:
            for period, source in partitions:
                requests.append(dg.RunRequest(
                    run_key=f"invoice|{target.name}|{period}|{source}|{digest}", asset_selection=keys,
                    partition_key=partition_key(period, source), tags={"focus/trigger": "invoice"}))
        else:
            for period in sorted({p for p, _ in partitions} | {p for _, p in pairs}):
                requests.append(dg.RunRequest(run_key=f"invoice|{target.name}|{period}|{digest}", asset_selection=keys,
                                              partition_key=period, tags={"focus/trigger": "invoice"}))
    for p in problems + pending:
        context.log.warning(p)
    for o in done:
        seen[o.key] = o.etag
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(seen, sort_keys=True),
        skip_reason=None if requests else dg.SkipReason(
            f"{len(done)} new or changed invoice file(s), no published partition to re-run"
            + (f"; {len(problems)} unreadable" if problems else "")))


SENSORS = [delivery_sensor, invoice_sensor]
