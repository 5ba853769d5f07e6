"""Allocate sensor: allocation inputs landing (rules, driver tables, spot checks, OpenCost telemetry).

``allocation_inputs_sensor`` (running by default) fingerprints every file under
``<landing>/allocation/`` and ``<landing>/kubernetes/`` (its cursor: key → version tag and the periods
the file covers, and the digests of the active and candidate rules) and requests, per billing period
that has published FOCUS rows in the allocate window, one run of what the change affects:

- **active rules** (the settings file, or the active rules file, changed: their digest differs):
  cost_allocations, allocation_diff and focus_costs_v1_3 of every period from the rules'
  ``applies_from`` on (without it, every period: rules are retroactive by default);
- **candidate rules** only: allocation_diff of every period from the candidate's ``applies_from`` on;
- **a driver table** ``allocation/drivers/<name>/…``: the periods of its ``date`` (YYYY-MM-DD) or
  ``period`` (YYYY-MM) column;
- **OpenCost telemetry** ``kubernetes/<cluster>/…``: the periods of its ``Date`` column; the cluster's
  ``nodes.csv``: every period of the cluster's telemetry;
- **a spot-check file** ``allocation/spot_checks/…`` (M7): the period its path names (a ``YYYY-MM``
  folder or file name, e.g. ``spot_checks/2018-10.csv``), else every period (its rows name rows and
  resources, not dates).

A file that goes away re-runs the periods it covered (remembered in the cursor); a file whose periods
cannot be read (a broken CSV) counts for every period, so the runs show its error. A rules file that
cannot be read requests nothing: the sensor skips naming the error and looks again next tick (the
cursor keeps the last readable rules). A re-published focus_costs partition reaches its period by
automation (``automation.follows_upstream``), and the account catalog by the ingest sensor.
"""

from __future__ import annotations

import hashlib
import io
import json

import dagster as dg
import polars as pl

from focus_platform.allocation import inputs, rules
from focus_platform.allocation.kubernetes import NODES_FILE
from focus_platform.defs.assets import allocate
from focus_platform.defs.partitions import allocate_periods
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.periods import PERIOD_COLUMN, is_billing_period
from focus_platform.warehouse.catalog import FOCUS_TABLE

EVERY_PERIOD = "*"  # the periods of a file that does not say which it covers
# the date columns that say which periods a file covers, per input kind
DRIVER_DATE_COLUMNS, TELEMETRY_DATE_COLUMNS = ("date", "period"), ("Date",)
ALL_ASSETS = allocate.ALLOCATE_ASSETS
ALL_CHECKS = [*allocate.ALLOCATION_CHECKS, allocate.DIFF_CONTRACT, *allocate.V1_3_CHECKS]


def periods_in_columns(data: bytes, columns: tuple[str, ...]) -> list[str]:
    """The billing periods of the first of ``columns`` a CSV has (dates or periods as text);
    ``[EVERY_PERIOD]`` when it has none or cannot be read."""
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return [EVERY_PERIOD]
    column = next((c for c in columns if c in frame.columns), None)
    if column is None:
        return [EVERY_PERIOD]
    periods = {v.strip()[:7] for v in frame[column].drop_nulls().to_list()}
    return sorted(p for p in periods if is_billing_period(p)) or [EVERY_PERIOD]


def covered_periods(key: str, data: bytes) -> list[str]:
    """The billing periods an input file covers (module docstring); rules files: none (their own trigger)."""
    if key.startswith(f"{inputs.DRIVERS_PREFIX}/"):
        return periods_in_columns(data, DRIVER_DATE_COLUMNS)
    if key.startswith(f"{inputs.SPOT_CHECKS_PREFIX}/"):
        return inputs.periods_in_path(key.removeprefix(f"{inputs.SPOT_CHECKS_PREFIX}/")) or [EVERY_PERIOD]
    if key.startswith(f"{inputs.KUBERNETES_PREFIX}/") and key.rsplit("/", 1)[-1] != NODES_FILE:
        return periods_in_columns(data, TELEMETRY_DATE_COLUMNS)
    return []


def cluster_periods(files: dict[str, list], key: str) -> list[str]:
    """A nodes file covers every period of its cluster's telemetry."""
    cluster = f"{inputs.KUBERNETES_PREFIX}/{inputs.folder_of(key, inputs.KUBERNETES_PREFIX)}/"
    return sorted({p for k, (_, periods) in files.items() if k.startswith(cluster) for p in periods})


def rules_id(ruleset: rules.Rules | None) -> str | None:
    return f"{ruleset.path}@{ruleset.digest}" if ruleset is not None else None


def from_cutoff(periods: list[str], ruleset: rules.Rules) -> list[str]:
    return [p for p in periods if not allocate.before_cutoff(ruleset, p)]


def published_periods(warehouse: WarehouseResource) -> list[str]:
    """Billing periods with a published focus_costs partition, inside the allocate window."""
    dt = warehouse.warehouse().table(FOCUS_TABLE)
    window = set(allocate_periods.get_partition_keys())
    return sorted({p[PERIOD_COLUMN] for p in (dt.partitions() if dt is not None else [])} & window)


def run_request(period: str, assets: list, checks: list, reason: str, digest: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"allocation|{period}|{reason}|{digest}", partition_key=period,
                         asset_selection=[a.key for a in assets], asset_check_keys=[c.key for c in checks],
                         tags={"focus/trigger": f"allocation_inputs:{reason}"})


@dg.sensor(minimum_interval_seconds=300, asset_selection=ALL_ASSETS, default_status=dg.DefaultSensorStatus.RUNNING)
def allocation_inputs_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource,
                             warehouse: WarehouseResource):
    """New, changed or removed allocation inputs: the periods they cover are allocated again."""
    cursor = json.loads(context.cursor) if context.cursor else {"files": {}, "active": None, "candidate": None}
    store = landing_zone.store()
    objects = {o.key: o.etag for prefix in inputs.INPUT_PREFIXES for o in store.list(prefix)
               if inputs.is_input_file(o.key)}
    seen: dict[str, list] = cursor["files"]
    changed = sorted(k for k in objects.keys() | seen.keys() if seen.get(k, [None])[0] != objects.get(k))
    if not changed:
        return dg.SkipReason(f"no new, changed or removed allocation inputs ({len(objects)} known)")
    try:
        active, candidate = inputs.read_rules(store)
    except rules.RulesError as exc:
        return dg.SkipReason(f"rules not readable, nothing requested: {exc}")
    files = {k: v for k, v in seen.items() if k in objects}
    for key in changed:
        if key in objects:
            files[key] = [objects[key], covered_periods(key, store.read_bytes(key))]
    # what a changed file covers now and what it covered before (a removed file: before only)
    affected = {p for key in changed for entry in (files.get(key), seen.get(key)) if entry for p in entry[1]}
    affected |= {p for key in changed if key.rsplit("/", 1)[-1] == NODES_FILE
                 and key.startswith(f"{inputs.KUBERNETES_PREFIX}/") for p in cluster_periods(files, key)}
    periods = published_periods(warehouse)
    inputs_periods = periods if EVERY_PERIOD in affected else sorted(affected & set(periods))
    active_changed = rules_id(active) != cursor["active"]
    candidate_changed = rules_id(candidate) != cursor["candidate"]
    digest = hashlib.sha256("|".join(f"{k}={objects.get(k)}" for k in changed).encode()).hexdigest()[:12]
    full = set(from_cutoff(periods, active)) if active_changed else set(inputs_periods)
    requests = [run_request(p, ALL_ASSETS, ALL_CHECKS, "rules" if active_changed else "inputs", digest)
                for p in sorted(full)]
    if candidate_changed and candidate is not None:
        requests += [run_request(p, [allocate.allocation_diff], [allocate.DIFF_CONTRACT], "candidate", digest)
                     for p in from_cutoff(periods, candidate) if p not in full]
    context.log.info(f"{len(changed)} allocation input(s) new, changed or removed: {', '.join(changed[:10])}"
                     + (" …" if len(changed) > 10 else ""))
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"files": files, "active": rules_id(active), "candidate": rules_id(candidate)},
                          sort_keys=True),
        skip_reason=None if requests else dg.SkipReason(
            f"{len(changed)} allocation input(s) changed, covering no period with published FOCUS rows"))
