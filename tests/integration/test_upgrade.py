"""Upgrading from the previous release: its warehouse and its Dagster state keep working, no migration
command needed. The fixture (tests/fixtures/previous-release, with its README) was written by the release
before the table catalog: tables written by raw ``write_deltalake`` calls, a restatement log appended
by it, a delivery-sensor cursor keyed ``source|YYYY-MM``."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.assets.reconcile import RECONCILE_ASSETS
from focus_platform.defs.partitions import EXPORT_SOURCE
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.warehouse import retention
from focus_platform.warehouse.catalog import (
    FOCUS_TABLE,
    INVOICES_TABLE,
    RECONCILIATION_TABLE,
    RESTATEMENT_LOG,
    SKU_CATALOG_TABLE,
    TABLES,
)
from focus_platform.warehouse.delta import Warehouse

FIXTURE = Path(__file__).parents[1] / "fixtures" / "previous-release"
SAMPLE = Path(str(resources.files("focus_platform") / "sample_data" / "landing"))
FIXED_MTIME = 1701388800  # as in the fixture's make_previous_release.py
PERIOD = "2023-11"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture
def previous(tmp_path):
    """A copy of the previous release's warehouse and the same landing zone it was built from."""
    shutil.copytree(FIXTURE / "warehouse", tmp_path / "warehouse")
    land = tmp_path / "landing"
    shutil.copytree(SAMPLE / "aws-fc-sample", land / "aws-fc-sample")
    shutil.copytree(SAMPLE / "oci-cost", land / "oci-cost")
    (land / "sources.json").write_text(json.dumps({"sources": [
        {"name": "aws-fc-sample", "format": "aws-cur", "location": "aws-fc-sample"},
        {"name": "oci-fc-sample", "format": "oci-cost", "location": "oci-cost"}]}))
    for p in land.rglob("*"):
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    state = json.loads((FIXTURE / "dagster_state.json").read_text())
    return tmp_path, land, state


def totals(wh: Warehouse) -> dict:
    return {r[0]: r[1] for r in wh.scan(FOCUS_TABLE).group_by("x_Source").agg(pl.col("BilledCost").sum())
            .collect().iter_rows()}


def test_the_previous_release_state_keeps_working(previous):
    tmp, land, state = previous
    wh = Warehouse(str(tmp / "warehouse"))
    before = totals(wh)
    versions = {name: wh.table(name).version() for name in TABLES if wh.exists(name)}
    assert set(versions) >= {FOCUS_TABLE, INVOICES_TABLE, RECONCILIATION_TABLE, SKU_CATALOG_TABLE, RESTATEMENT_LOG}
    for name in versions:  # every old table reads with the new code
        assert wh.scan(name).collect().height >= 0

    # Dagster state: the dynamic partitions and the old cursor; an unchanged delivery is not re-run
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, state["dynamic_partitions"][EXPORT_SOURCE])
    res = {"landing_zone": LandingZoneResource(root=str(land)), "warehouse": WarehouseResource(root=str(tmp / "warehouse"))}
    result = delivery_sensor(dg.build_sensor_context(instance=instance, resources=res,
                                                     cursor=json.dumps(state["delivery_sensor_cursor"])))
    assert result.run_requests == [] and not result.dynamic_partitions_requests
    assert sorted(json.loads(result.cursor)) == [f"{PERIOD}|aws-fc-sample", f"{PERIOD}|oci-fc-sample"]
    assert set(json.loads(result.cursor).values()) == set(state["delivery_sensor_cursor"].values())

    # the new write path on the old tables: ingest (forced re-run of the same delivery), reconcile
    for source in ("aws-fc-sample", "oci-fc-sample"):
        run = dg.materialize(INGEST_ASSETS, partition_key=f"{PERIOD}|{source}", instance=instance, resources=res,
                             run_config=QUIET, tags={"focus/force": "true"})
        assert run.success
    assert totals(wh) == before  # nothing lost, nothing doubled
    run = dg.materialize(RECONCILE_ASSETS, partition_key=PERIOD, instance=instance, resources=res, run_config=QUIET,
                         selection=[RECONCILIATION_TABLE, SKU_CATALOG_TABLE])
    assert run.success
    run = dg.materialize(RECONCILE_ASSETS, instance=instance, resources=res, run_config=QUIET,
                         selection=[INVOICES_TABLE])
    assert run.success
    for name in (RECONCILIATION_TABLE, SKU_CATALOG_TABLE, INVOICES_TABLE):
        assert wh.table(name).version() > versions[name]
        old = wh.scan(name, version=versions[name]).collect()  # the previous release's version: time travel
        assert old.height == wh.scan(name).collect().height
    log = wh.scan(RESTATEMENT_LOG).collect()  # the old log, appended to by the new write path
    assert log.height > wh.scan(RESTATEMENT_LOG, version=versions[RESTATEMENT_LOG]).collect().height
    assert {RECONCILIATION_TABLE, SKU_CATALOG_TABLE, INVOICES_TABLE} <= set(log["table"])
    for name in TABLES:  # retention compliance reads the old tables (everything kept here)
        if TABLES[name].partitioned and wh.exists(name):
            assert retention.compliance(wh, name).ok, name
