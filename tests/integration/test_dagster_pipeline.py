"""The Dagster layer in process: materialize partitions of a tiny landing zone, gating checks,
re-deliveries, the delivery sensor and the Definitions object.

Assertions are on the Delta tables (rows, totals per currency, history), and on the asset check
evaluations Dagster recorded, not only on run success.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from focus_platform.defs.assets.ingest import FOCUS_CHECKS, INGEST_ASSETS
from focus_platform.defs.partitions import (
    EXPORT_SOURCE,
    PARTITIONS,
    dagster_key,
)
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import FOCUS_TABLE, QUARANTINE_TABLE
from focus_platform.sources import FORMATS

RAW_TABLE = "raw_aws_cur"  # the Delta table of the AWS format
RAW_ASSET = "raw_exports"  # the asset writing it
PERIOD = "2023-11"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture
def env(landing, warehouse, cur, h):
    """Landing zone with one source (aws-a, one legacy CUR delivery for 2023-11), an ephemeral
    Dagster instance that knows the source as a dynamic partition, and the resources."""
    landing.add_source("aws-a")
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root)),
                 "warehouse": WarehouseResource(root=warehouse.root)}

    def materialize(source: str = "aws-a", period: str = PERIOD):
        return dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(period, source)), instance=instance,
                              resources=resources, raise_on_error=False, run_config=QUIET)

    return SimpleNamespace(landing=landing, warehouse=warehouse, instance=instance, resources=resources,
                           materialize=materialize, first_delivery=first)


def check_evaluations(result) -> dict[str, bool]:
    """The focus_costs check evaluations (raw_exports' delivery_accepted check is asserted elsewhere)."""
    evals = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {e.asset_key for e in evals} <= {dg.AssetKey(k) for k in (FOCUS_TABLE, QUARANTINE_TABLE, RAW_ASSET)}
    evals = [e for e in evals if e.asset_key == dg.AssetKey(FOCUS_TABLE)]
    out = {e.check_name: e.passed for e in evals}
    assert len(out) == len(evals), "a check was evaluated twice"
    return out


def materialized(result) -> dict[str, dict]:
    out = {}
    for m in result.get_asset_materialization_events():
        mat = m.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def failure_text(result) -> str:
    parts = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            data = e.event_specific_data
            if data.user_failure_data is not None:
                parts.append(data.user_failure_data.description or "")
            err = data.error
            while err is not None:
                parts.append(err.message)
                err = err.cause
    return "\n".join(parts)


def partition_files(warehouse, table: str, source: str = "aws-a", period: str = PERIOD) -> list[str]:
    base = Path(warehouse.uri(table)) / f"x_BillingPeriod={period}" / f"x_Source={source}"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []


# ---------------------------------------------------------------------------------------------
def test_materialize_one_partition(env, cur, h):
    result = env.materialize()
    assert result.success
    mats = materialized(result)
    assert set(mats) == {RAW_ASSET, FOCUS_TABLE, QUARANTINE_TABLE}
    assert mats[RAW_ASSET]["delivery_id"] == env.first_delivery
    assert mats[RAW_ASSET]["dagster/row_count"] == 10
    assert mats[FOCUS_TABLE]["dagster/row_count"] == 10
    assert mats[QUARANTINE_TABLE]["dagster/row_count"] == 0

    # the table: rows and totals per currency = the raw invoice basis (independent Decimal sum)
    focus = h.focus_rows(env.warehouse, "aws-a")
    assert focus.height == 10
    assert focus["x_RowId"].n_unique() == 10
    assert set(focus["x_SourceDelivery"]) == {env.first_delivery}
    assert sorted(focus["ChargeCategory"].unique()) == ["Tax", "Usage"]
    assert h.billed_by_currency(focus) == cur.invoice_basis()
    assert h.billed_by_currency(focus, "EffectiveCost") == cur.invoice_basis()
    raw = h.focus_rows(env.warehouse, "aws-a", table=RAW_TABLE)
    raw_basis = {r[0]: r[1] for r in raw.group_by("line_item_currency_code")
                 .agg(pl.col("line_item_unblended_cost").sum()).iter_rows()}
    assert h.billed_by_currency(focus) == raw_basis
    assert mats[FOCUS_TABLE]["totals_by_currency"] == {
        c: {"BilledCost": str(v), "EffectiveCost": str(v)} for c, v in h.billed_by_currency(focus).items()}
    assert h.focus_rows(env.warehouse, "aws-a", table=QUARANTINE_TABLE).height == 0

    # all 9 checks of focus_costs evaluated and passed (contract first; M2 on a new delivery: within the hour)
    checks = check_evaluations(result)
    assert set(checks) == {c.name for c in FOCUS_CHECKS if c.asset == FOCUS_TABLE} and len(checks) == 9
    assert all(checks.values()), checks


def test_rematerialize_with_changed_delivery_replaces_the_partition(env, cur, h):
    first = env.materialize()
    assert first.success
    v1 = materialized(first)[FOCUS_TABLE]["delta_version"]

    rows = [0, 2, 4, 6, 8]
    changed = cur.subset(rows).set(0, "lineItem/UnblendedCost", "0.42").set(3, "lineItem/UnblendedCost", "7")
    second_id = env.landing.legacy_delivery("aws-a", {"cur-1.csv.gz": changed.gz_bytes()})
    second = env.materialize()
    assert second.success
    mats = materialized(second)
    assert mats[RAW_ASSET]["delivery_id"] == second_id
    v2 = mats[FOCUS_TABLE]["delta_version"]
    assert v2 > v1

    focus = h.focus_rows(env.warehouse, "aws-a")
    assert focus.height == len(rows)  # the new delivery's rows, nothing of the old one kept
    assert focus["x_RowId"].n_unique() == focus.height
    assert set(focus["x_SourceDelivery"]) == {second_id}
    assert h.billed_by_currency(focus) == changed.invoice_basis()
    assert all(check_evaluations(second).values())

    history = {e["version"]: e for e in env.warehouse.history(FOCUS_TABLE)}
    assert {v1, v2} <= set(history)
    old = h.focus_rows(env.warehouse, "aws-a", version=v1)
    assert old.height == 10 and set(old["x_SourceDelivery"]) == {env.first_delivery}
    assert h.billed_by_currency(old) == cur.invoice_basis()


def test_nonconformant_conversion_cannot_publish(env, cur, h, monkeypatch):
    assert env.materialize().success
    before_version = h.table_version(env.warehouse, FOCUS_TABLE)
    before = h.focus_rows(env.warehouse, "aws-a").sort("x_RowId")
    before_q_version = h.table_version(env.warehouse, QUARANTINE_TABLE)
    files_before = partition_files(env.warehouse, FOCUS_TABLE)

    # a re-delivery, converted by a broken mapping (ChargeCategory in the wrong case); 5 of 10 rows:
    # within the re-delivery guard's default 50 % allowance, so the conversion itself is what fails
    env.landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2, 3, 4]).gz_bytes()})
    fmt = FORMATS["aws-cur"]
    broken = dataclasses.replace(
        fmt, to_focus=lambda raw: fmt.to_focus(raw).with_columns(pl.lit("usage").alias("ChargeCategory")))
    monkeypatch.setitem(FORMATS, "aws-cur", broken)

    result = env.materialize()
    assert not result.success
    checks = check_evaluations(result)
    # nothing published: the gate's checks are reported, M2 is not measured
    assert set(checks) == {c.name for c in FOCUS_CHECKS if c.asset == FOCUS_TABLE} - {"normalization_latency",
                                                                                        "contract"}
    assert checks["conformance"] is False
    assert "R-Cols-5" in failure_text(result)
    assert FOCUS_TABLE not in materialized(result)

    # focus_costs (and focus_quarantine) unchanged: same version, same rows, no staged files left
    assert h.table_version(env.warehouse, FOCUS_TABLE) == before_version
    assert h.table_version(env.warehouse, QUARANTINE_TABLE) == before_q_version
    after = h.focus_rows(env.warehouse, "aws-a").sort("x_RowId")
    assert after.equals(before)
    assert sorted(after["ChargeCategory"].unique()) == ["Tax", "Usage"]
    assert h.billed_by_currency(after) == cur.invoice_basis()
    assert partition_files(env.warehouse, FOCUS_TABLE) == files_before


def test_refused_delivery_fails_the_run_and_keeps_the_partitions(env, cur, h):
    assert env.materialize().success
    versions = {t: h.table_version(env.warehouse, t) for t in (RAW_TABLE, FOCUS_TABLE, QUARANTINE_TABLE)}
    rows = h.focus_rows(env.warehouse, "aws-a").sort("x_RowId")

    env.landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0]).gz_bytes()}, missing=("cur-2.csv.gz",))
    result = env.materialize()
    assert not result.success
    text = failure_text(result)
    assert "cur-2.csv.gz" in text and "not in the landing zone" in text
    assert materialized(result) == {}
    assert {t: h.table_version(env.warehouse, t) for t in versions} == versions
    assert h.focus_rows(env.warehouse, "aws-a").sort("x_RowId").equals(rows)


def test_refused_delivery_of_one_period_does_not_block_the_other_periods(env, cur, h):
    """A broken November manifest refuses November, not the source: October still materializes
    and the sensor still requests October's run."""
    env.landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2]).gz_bytes()}, period="2023-10")
    env.landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()}, missing=("cur-2.csv.gz",))
    october = env.materialize(period="2023-10")
    assert october.success, failure_text(october)
    focus = h.focus_rows(env.warehouse, "aws-a", "2023-10")
    assert focus.height == 3 and h.billed_by_currency(focus) == cur.invoice_basis([0, 1, 2])

    tick = delivery_sensor(dg.build_sensor_context(instance=env.instance,
                                                   resources={"landing_zone": env.resources["landing_zone"]}))
    assert [r.partition_key for r in tick.run_requests] == [dagster_key(PartitionKey.of("2023-10", "aws-a"))]


# ---------------------------------------------------------------------------------------------
def test_delivery_sensor_registers_sources_and_requests_one_run_per_delivery(landing, cur):
    landing.add_source("aws-a")
    landing.add_source("aws-b", location="exports/b")
    a_nov = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    landing.plain_delivery("aws-a", "2023-10", {"october.csv": cur.subset([0, 1]).csv_bytes()})
    landing.plain_delivery("aws-b", "2023-11", {"b.csv": cur.subset([2, 3]).csv_bytes()})
    landing.add_source("aws-c")  # its only delivery is refused: no run, the others go on
    landing.legacy_delivery("aws-c", {"cur-1.csv.gz": cur.gz_bytes()}, missing=("cur-2.csv.gz",))
    instance = dg.DagsterInstance.ephemeral()
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root))}

    tick1 = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(tick1, dg.SensorResult)
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in tick1.dynamic_partitions_requests] == [
        (EXPORT_SOURCE, ["aws-a", "aws-b", "aws-c"])]
    expected = {dagster_key(PartitionKey.of("2023-10", "aws-a")), dagster_key(PartitionKey.of("2023-11", "aws-a")),
                dagster_key(PartitionKey.of("2023-11", "aws-b"))}
    requested = [r.partition_key for r in tick1.run_requests]
    assert len(requested) == 3 and set(requested) == expected
    assert len({r.run_key for r in tick1.run_requests}) == 3
    assert any(a_nov in r.run_key for r in tick1.run_requests)

    # the daemon applies the dynamic partition requests; the requested keys are then valid partitions
    instance.add_dynamic_partitions(EXPORT_SOURCE, list(tick1.dynamic_partitions_requests[0].partition_keys))
    valid = set(PARTITIONS.get_partition_keys(dynamic_partitions_store=instance))
    assert expected <= valid

    # next tick, nothing changed: skip
    tick2 = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=tick1.cursor))
    if isinstance(tick2, dg.SensorResult):
        assert not tick2.run_requests and not tick2.dynamic_partitions_requests
        skip = tick2.skip_reason
    else:
        skip = tick2
    assert isinstance(skip, dg.SkipReason), tick2
    assert "1 refused" in (skip.skip_message or "")

    # a re-delivery of one period: exactly that partition runs again
    a_nov2 = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([5]).gz_bytes()})
    tick3 = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=tick2.cursor
                                                    if isinstance(tick2, dg.SensorResult) else tick1.cursor))
    assert [r.partition_key for r in tick3.run_requests] == [dagster_key(PartitionKey.of("2023-11", "aws-a"))]
    assert a_nov2 in tick3.run_requests[0].run_key
