"""The whole definition set as one reviewed text: asset keys with their groups, partitions, upstream
assets, automation and backfill policy; every check with severity, blocking and service level; jobs,
schedules and sensors with their default status. A change to the graph shows up as a diff of
``snapshots/definitions.json``; regenerate it with ``FOCUS_UPDATE_SNAPSHOT=1 pytest <this file>``
and review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _partitions(pd) -> str | None:
    if pd is None:
        return None
    if isinstance(pd, dg.MultiPartitionsDefinition):
        return " × ".join(f"{d.name}:{_partitions(d.partitions_def)}" for d in pd.partitions_defs)
    if isinstance(pd, dg.DynamicPartitionsDefinition):
        return f"dynamic({pd.name})"
    if isinstance(pd, dg.TimeWindowPartitionsDefinition):
        return f"{pd.cron_schedule} from {pd.start:%Y-%m} fmt {pd.fmt} end_offset {pd.end_offset}"
    return type(pd).__name__


def definitions_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        policy = node.backfill_policy
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
            "automation": condition.get_label() or type(condition).__name__ if condition else None,
            "backfill": f"{policy.policy_type.value}({policy.max_partitions_per_run})" if policy else None,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(check_key)
        meta = spec.metadata or {}
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {
            "severity": str(meta.get("severity")), "blocking": spec.blocking,
            "service_level": meta.get("service_level")}
    jobs = {}
    for job in sorted(defs.jobs or [], key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        jobs[job.name] = {"partitions": _partitions(resolved.partitions_def),
                          "assets": sorted(k.to_user_string() for k in resolved.asset_layer.executable_asset_keys),
                          "checks": len(resolved.asset_layer.asset_graph.asset_check_keys)
                          if resolved.asset_layer.executable_asset_keys else None}
    schedules = {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                          "default_status": s.default_status.value}
                 for s in sorted(defs.schedules or [], key=lambda s: s.name)}
    sensors = {s.name: {"type": type(s).__name__, "default_status": s.default_status.value,
                        "minimum_interval_seconds": s.minimum_interval_seconds}
               for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors,
            "resources": sorted(defs.resources or {})}


def test_the_definitions_are_the_reviewed_snapshot():
    from focus_platform.definitions import defs

    dg.Definitions.validate_loadable(defs)
    current = json.dumps(definitions_snapshot(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get("FOCUS_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: run FOCUS_UPDATE_SNAPSHOT=1 pytest {__file__}"
    assert current == SNAPSHOT.read_text(), (
        "the definitions changed: review the difference, then FOCUS_UPDATE_SNAPSHOT=1 pytest " + __file__)


def test_every_check_declares_severity_and_the_blocking_ones_gate_their_asset():
    from focus_platform.definitions import defs

    snapshot = definitions_snapshot(defs)
    assert all(c["severity"] in ("ERROR", "WARN") for c in snapshot["checks"].values())
    blocking = {k for k, c in snapshot["checks"].items() if c["blocking"]}
    contracts = {f"{asset}:contract" for asset in ("raw_exports", "focus_costs", "focus_quarantine", "invoices",
                                                   "exchange_rates", "invoice_reconciliation", "sku_catalog",
                                                   "cost_allocations", "allocation_diff", "focus_costs_v1_3",
                                                   "spend_forecasts", "forecast_backtests", "budget_status",
                                                   "cost_anomalies", "policy_actions")}
    assert blocking == {"raw_exports:delivery_accepted", "focus_costs:conformance", "focus_costs:billed_cost_conserved",
                        "focus_costs:effective_cost_conserved", "focus_costs:rows_conserved",
                        "focus_costs:row_id_unique", "cost_allocations:allocation_conserved",
                        "focus_costs_v1_3:totals_equal_focus", *contracts}
