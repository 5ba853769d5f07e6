"""Declarative automation through the daemon's own logic, in-process: the delivery sensor ticks
(``build_sensor_context``), each run it requests is executed, and the automation conditions are
evaluated (``dg.evaluate_automation_conditions``, what the default automation-condition sensor runs)
with their cursor carried from tick to tick. A late re-delivery of M−2 reaches focus_costs and the
reconciliation and SKU catalog of M−2 — and only of M−2 — with nothing switched on by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import polars as pl

from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.assets.reconcile import RECONCILE_ASSETS
from focus_platform.defs.partitions import EXPORT_SOURCE
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.warehouse.catalog import FOCUS_TABLE, RECONCILIATION_TABLE
from focus_platform.warehouse.delta import Warehouse

M2 = "2023-11"  # the conftest CUR's billing period, two months before "now"
NOW = datetime(2024, 1, 15, 6, tzinfo=UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class Daemon:
    """The sensor and automation ticks of a Dagster daemon, and the runs they request executed in-process."""

    def __init__(self, landing_root, warehouse_root):
        self.instance = dg.DagsterInstance.ephemeral()
        self.resources = {"landing_zone": LandingZoneResource(root=str(landing_root)),
                          "warehouse": WarehouseResource(root=str(warehouse_root))}
        self.defs = dg.Definitions(assets=[*INGEST_ASSETS, *RECONCILE_ASSETS], sensors=[delivery_sensor],
                                   resources=self.resources)
        self.sensor_cursor = None
        self.automation_cursor = None

    def sensor_tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.sensor_cursor,
                                          resources=self.resources, definitions=self.defs)
        result = delivery_sensor(context)
        if isinstance(result, dg.SkipReason):
            return []
        self.sensor_cursor = result.cursor
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return list(result.run_requests)

    def automation_tick(self) -> dict[str, set[str]]:
        """What the automation requests: asset → partition keys ("" for an unpartitioned asset)."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance,
                                                   cursor=self.automation_cursor, evaluation_time=NOW)
        self.automation_cursor = result.cursor
        out: dict[str, set[str]] = {}
        for r in result.results:
            if r.true_subset.size:
                keys = r.true_subset.expensively_compute_asset_partitions()
                out[r.key.to_user_string()] = {k.partition_key or "" for k in keys}
        return out

    def run(self, assets, partition_key=None):
        selection = [a for a in [*INGEST_ASSETS, *RECONCILE_ASSETS]
                     if any(k.to_user_string() in assets for k in a.keys)]
        result = dg.materialize(selection, partition_key=partition_key, instance=self.instance,
                                resources=self.resources, run_config=QUIET,
                                selection=[dg.AssetKey(a) for a in assets])
        assert result.success
        return result

    def run_requested(self, requested: dict[str, set[str]]) -> None:
        """Execute what the automation requested: unpartitioned assets first, then each partition."""
        if "invoices" in requested:
            self.run(["invoices"])
        by_partition: dict[str, list[str]] = {}
        for asset, keys in requested.items():
            for key in keys - {""}:
                by_partition.setdefault(key, []).append(asset)
        for key, assets in sorted(by_partition.items()):
            self.run(assets, key)


def test_a_late_redelivery_of_m_minus_2_reaches_focus_and_its_reconciliation_only(landing, cur, tmp_path):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()}, period=M2)
    daemon = Daemon(landing.root, tmp_path / "warehouse")
    assert daemon.automation_tick() == {}  # nothing published: nothing to follow, no backfill of empty months

    # the first delivery: the sensor runs raw_exports + focus_costs for exactly its partition
    [request] = daemon.sensor_tick()
    assert request.partition_key == f"{M2}|aws-a"
    assert daemon.instance.get_dynamic_partitions(EXPORT_SOURCE) == ["aws-a"]
    daemon.run(["raw_exports", FOCUS_TABLE, "focus_quarantine"], request.partition_key)
    first = daemon.automation_tick()
    assert first == {"invoices": {""}, RECONCILIATION_TABLE: {M2}, "sku_catalog": {M2}}  # focus_costs not re-run
    daemon.run_requested(first)
    assert daemon.automation_tick() == {}  # settled: a rebuilt invoices table does not re-run every period

    # M−2 re-delivered late (a restated cost): sensor → that partition only → automation → M−2 only
    restated = cur.copy()
    column = "lineItem/UnblendedCost"
    old = Decimal(restated.values(column)[0])
    restated.set(0, column, str(old + Decimal("12.5")))
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": restated.gz_bytes()}, period=M2)
    [request] = daemon.sensor_tick()
    assert request.partition_key == f"{M2}|aws-a"
    daemon.run(["raw_exports", FOCUS_TABLE, "focus_quarantine"], request.partition_key)
    follow = daemon.automation_tick()
    assert follow == {"invoices": {""}, RECONCILIATION_TABLE: {M2}, "sku_catalog": {M2}}
    daemon.run_requested(follow)
    assert daemon.automation_tick() == {}

    wh = Warehouse(str(tmp_path / "warehouse"))
    focus_total = wh.scan(FOCUS_TABLE).filter(pl.col("x_BillingPeriod") == M2).select(
        pl.col("BilledCost").sum()).collect().item()
    reconciled = wh.scan(RECONCILIATION_TABLE).filter(pl.col("x_BillingPeriod") == M2).select(
        pl.col("FocusBilledCost").sum()).collect().item()
    assert reconciled == focus_total == sum(restated.invoice_basis().values())
