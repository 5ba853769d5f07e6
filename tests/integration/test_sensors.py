"""The sensors evaluated with ``build_sensor_context`` on real landing zones: new and changed
deliveries (new assembly, object rewritten in place), new sources, late invoices and credit memos,
idle ticks; and discovery of multi-stream sources (Azure actual + amortized exports).
"""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest

from focus_platform.defs.assets.ingest import focus_costs
from focus_platform.defs.assets.reconcile import invoices_asset
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.defs.sensors.reconcile import invoice_sensor
from focus_platform.landing.zone import (
    DeliveryError,
    ExportSource,
    discover,
    discover_deliveries,
)
from focus_platform.periods import PartitionKey

INVOICE_HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date," \
                 "adjusts_invoice_id\n"


def split(requests):
    """(FOCUS partition requests, the one unpartitioned invoices-table request or None)."""
    table = [r for r in requests if r.partition_key is None]
    assert len(table) <= 1 and all(r.asset_selection == [invoices_asset.key] for r in table)
    return [r for r in requests if r.partition_key is not None], (table[0] if table else None)


def tick(sensor, instance, resources, cursor=None):
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return result.run_requests, result.cursor, skip


# ---------------------------------------------------------------------------------------------
# Deliveries
# ---------------------------------------------------------------------------------------------
def test_a_new_delivery_for_one_month_runs_that_month_only(landing, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()}, period="2023-10")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    instance = dg.DagsterInstance.ephemeral()
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root))}
    first, cursor, _ = tick(delivery_sensor, instance, resources)
    assert {r.partition_key for r in first} == {dagster_key(PartitionKey.of("2023-10", "aws-a")), dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))}
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])

    # AWS restates November: a new assembly → exactly the November partition, once
    nov2 = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2, 3, 4, 5]).gz_bytes()})
    requests, cursor2, _ = tick(delivery_sensor, instance, resources, cursor)
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
    assert nov2 in requests[0].run_key and requests[0].tags["focus/trigger"] == "delivery"
    before, after = json.loads(cursor), json.loads(cursor2)
    assert before["2023-10|aws-a"] == after["2023-10|aws-a"] and before["2023-11|aws-a"] != after["2023-11|aws-a"]
    assert tick(delivery_sensor, instance, resources, cursor2)[0] == []

    # a data object rewritten in place under the same manifest (same assemblyId, new ETag) → again
    obj = next((landing.root / "aws-a").rglob(f"{nov2}/cur-1.csv.gz"))
    obj.write_bytes(cur.subset([0, 1, 2, 3, 4, 5, 6]).gz_bytes())
    os.utime(obj, (time.time() + 5, time.time() + 5))
    requests, cursor3, _ = tick(delivery_sensor, instance, resources, cursor2)
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
    assert requests[0].run_key != f"aws-a|{h.PERIOD}|{nov2}" and nov2 in requests[0].run_key

    # a new export source: a dynamic partition and the run of its delivery in the same tick
    landing.add_source("aws-new")
    landing.plain_delivery("aws-new", "2023-09", {"sep.csv": cur.subset([1, 2]).csv_bytes()})
    result = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor3))
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["aws-new"]]
    assert [r.partition_key for r in result.run_requests] == [dagster_key(PartitionKey.of("2023-09", "aws-new"))]


def test_an_earlier_cursor_format_does_not_rerun_everything(landing, cur):
    """Cursors of earlier releases ({"source|period": delivery_id}, before fingerprints and before the one
    partition-key shape) are upgraded silently: keys become "period|source", values gain the fingerprint."""
    landing.add_source("aws-a")
    nov = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    requests, cursor, skip = tick(delivery_sensor, instance, resources, json.dumps({"aws-a|2023-11": nov}))
    assert requests == [] and "no new or changed deliveries" in skip
    assert list(json.loads(cursor)) == ["2023-11|aws-a"] and json.loads(cursor)["2023-11|aws-a"].startswith(nov + "|")


def test_an_idle_tick_skips_with_a_reason(landing, cur, warehouse, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    zone = LandingZoneResource(root=str(landing.root))
    _, cursor, _ = tick(delivery_sensor, instance, {"landing_zone": zone})
    requests, cursor2, skip = tick(delivery_sensor, instance, {"landing_zone": zone}, cursor)
    assert requests == [] and cursor2 == cursor and skip == "no new or changed deliveries"

    resources = {"landing_zone": zone, "warehouse": WarehouseResource(root=warehouse.root)}
    requests, _, skip = tick(invoice_sensor, instance, resources)
    assert requests == [] and skip == "no new or changed invoice files (0 known)"


# ---------------------------------------------------------------------------------------------
# Invoices and credit memos
# ---------------------------------------------------------------------------------------------
def _invoice(landing, account: str, name: str, rows: list[str]) -> None:
    folder = landing.root / "invoices" / account
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(INVOICE_HEADER + "".join(r + "\n" for r in rows))


def test_a_late_credit_memo_for_an_earlier_month_runs_that_month(landing, cur, warehouse, h):
    landing.add_source("aws-a")
    landing.add_source("aws-b")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2]).gz_bytes()}, period="2023-10")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    landing.plain_delivery("aws-b", "2023-10", {"b.csv": cur.subset([3, 4]).csv_bytes()})
    for source, period in (("aws-a", "2023-10"), ("aws-a", h.PERIOD), ("aws-b", "2023-10")):
        h.run_pipeline(warehouse, landing, source, period)
    account = h.focus_rows(warehouse, "aws-a")["BillingAccountId"][0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a", "aws-b"])
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root)),
                 "warehouse": WarehouseResource(root=warehouse.root)}
    focus_keys = set(focus_costs.keys)

    # the October invoice lands after month close: October of both sources with that account
    _invoice(landing, account, "2023-10.csv", [f"INV-10,AWS,{account},2023-10,USD,0.14,0.08,0,2023-11-02,"])
    requests, cursor, _ = tick(invoice_sensor, instance, resources)
    requests, table = split(requests)
    assert table is not None  # the invoices table is rebuilt (its new version re-runs the reconciliation)
    assert sorted(r.partition_key for r in requests) == [dagster_key(PartitionKey.of("2023-10", "aws-a")),
                                                         dagster_key(PartitionKey.of("2023-10", "aws-b"))]
    assert all(set(r.asset_selection) == focus_keys and r.tags["focus/trigger"] == "invoice" for r in requests)
    assert tick(invoice_sensor, instance, resources, cursor)[0] == []

    # the November invoice and, weeks later, a credit memo issued in December for October
    _invoice(landing, account, "2023-11.csv", [f"INV-11,AWS,{account},2023-11,USD,0.27,0.08,0,2023-12-02,"])
    requests, cursor, _ = tick(invoice_sensor, instance, resources, cursor)
    assert [r.partition_key for r in split(requests)[0]] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
    _invoice(landing, account, "2023-12-credit-memo.csv",
             [f"CM-1,AWS,{account},2023-12,USD,-0.05,0,-0.05,2024-01-10,INV-10"])
    requests, cursor, _ = tick(invoice_sensor, instance, resources, cursor)
    requests, table = split(requests)
    assert table is not None
    assert sorted(r.partition_key for r in requests) == [dagster_key(PartitionKey.of("2023-10", "aws-a")),
                                                         dagster_key(PartitionKey.of("2023-10", "aws-b"))]
    assert len({r.run_key for r in requests}) == 2
    assert tick(invoice_sensor, instance, resources, cursor)[0] == []

    # an invoice file corrected in place (new etag): its period again
    path = landing.root / "invoices" / account / "2023-11.csv"
    path.write_text(INVOICE_HEADER + f"INV-11,AWS,{account},2023-11,USD,0.28,0.08,0,2023-12-02,\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    requests, cursor, _ = tick(invoice_sensor, instance, resources, cursor)
    assert [r.partition_key for r in split(requests)[0]] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]

    # an unreadable invoice file: reported, not recorded in the cursor (looked at again next tick)
    _invoice(landing, account, "2024-01.csv", ["only,three,fields"])
    requests, cursor2, skip = tick(invoice_sensor, instance, resources, cursor)
    assert requests == [] and "unreadable" in skip and "2024-01.csv" not in cursor2


# ---------------------------------------------------------------------------------------------
# Multi-stream sources: Azure actual + amortized cost exports
# ---------------------------------------------------------------------------------------------
def _azure_run(landing, stream: str, period_folder: str, run_id: str, submitted: str, parts: dict[str, bytes],
               *, manifest: bool = True, byte_counts: dict[str, int] | None = None) -> list[str]:
    base = landing.root / "azure" / stream / period_folder / run_id
    base.mkdir(parents=True, exist_ok=True)
    for name, data in parts.items():
        (base / name).write_bytes(data)
    if manifest:
        blobs = [{"blobName": f"exports/azure/{stream}/{period_folder}/{run_id}/{name}",
                  "byteCount": (byte_counts or {}).get(name, len(data)), "dataRowCount": 1}
                 for name, data in parts.items()]
        (base / "manifest.json").write_text(json.dumps({
            "manifestVersion": "2024-04-01", "byteCount": sum(b["byteCount"] for b in blobs), "blobCount": len(blobs),
            "dataRowCount": len(blobs),
            "exportConfig": {"exportName": stream, "type": "ActualCost" if stream == "actual" else "AmortizedCost",
                             "timeFrame": "MonthToDate", "granularity": "Daily"},
            "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport", "fileFormat": "Csv",
                               "rootFolderPath": "exports"},
            "runInfo": {"executionType": "Scheduled", "submittedTime": submitted, "runId": run_id,
                        "startDate": f"{period_folder[:4]}-{period_folder[4:6]}-01T00:00:00",
                        "endDate": f"{period_folder[9:13]}-{period_folder[13:15]}-{period_folder[15:17]}T00:00:00"},
            "blobs": blobs}))
    return [f"azure/{stream}/{period_folder}/{run_id}/{name}" for name in parts]


def test_two_export_streams_make_one_delivery(landing):
    landing.add_source("placeholder")  # writes sources.json; replaced below
    (landing.root / "sources.json").write_text(json.dumps({"sources": [
        {"name": "azure-ea", "format": "aws-cur", "location": "azure", "streams": ["actual", "amortized"]}]}))
    zone = LandingZoneResource(root=str(landing.root))
    source = zone.source("azure-ea")
    assert source.streams == ("actual", "amortized")

    # October: two actual runs (the newer wins by submittedTime), one amortized run without manifest
    _azure_run(landing, "actual", "20231001-20231031", "run-a1", "2023-10-15T06:00:00.1234567Z",
               {"part_0_0001.csv": b"x\n1\n"})
    a2 = _azure_run(landing, "actual", "20231001-20231031", "run-a2", "2023-11-02T06:00:00.1234567Z",
                    {"part_0_0001.csv": b"x\n2\n", "part_1_0001.csv": b"x\n3\n"})
    m1 = _azure_run(landing, "amortized", "20231001-20231031", "run-m1", "", {"part_0_0001.csv": b"y\n1\n"},
                    manifest=False)
    # November: only the actual-cost export so far
    _azure_run(landing, "actual", "20231101-20231130", "run-a3", "2023-11-20T06:00:00Z", {"part_0_0001.csv": b"x\n4\n"})

    found = discover(zone.store(), source)
    deliveries, refused = found.deliveries, found.refused
    assert list(deliveries) == ["2023-10"]
    oct_ = deliveries["2023-10"]
    assert oct_.delivery_id.startswith("actual:run-a2+amortized:sha256-")
    assert sorted(oct_.files) == sorted(a2 + m1)
    assert {oct_.stream_of[f] for f in a2} == {"actual"} and {oct_.stream_of[f] for f in m1} == {"amortized"}
    assert oct_.delivered_at == max(zone.store().stat(m1[0]).modified, oct_.delivered_at)
    message = str(refused["2023-11"])
    assert "2023-11" in message and "amortized" in message and "not the amortized export" in message
    with pytest.raises(DeliveryError, match="not the amortized export"):
        discover_deliveries(zone.store(), source)

    instance = dg.DagsterInstance.ephemeral()
    requests, cursor, _ = tick(delivery_sensor, instance, {"landing_zone": zone})
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of("2023-10", "azure-ea"))]
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["azure-ea"])
    # the amortized export of November lands: November runs; October does not again
    _azure_run(landing, "amortized", "20231101-20231130", "run-m2", "2023-11-20T07:00:00Z",
               {"part_0_0001.csv": b"y\n2\n"})
    requests, cursor, _ = tick(delivery_sensor, instance, {"landing_zone": zone}, cursor)
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of("2023-11", "azure-ea"))]
    assert "actual:run-a3+amortized:run-m2" in requests[0].run_key

    # an export run whose blob is shorter than its manifest says: partial, refused for that period
    _azure_run(landing, "amortized", "20231101-20231130", "run-m3", "2023-11-21T07:00:00Z",
               {"part_0_0001.csv": b"y\n3\n"}, byte_counts={"part_0_0001.csv": 999})
    refused = discover(zone.store(), source).refused
    assert "partial" in str(refused["2023-11"]) and "999" in str(refused["2023-11"])
    requests, cursor2, skip = tick(delivery_sensor, instance, {"landing_zone": zone}, cursor)
    assert requests == [] and cursor2 == cursor and "1 refused" in skip


def test_streams_are_configured_per_source(landing):
    (landing.root).mkdir(parents=True, exist_ok=True)
    (landing.root / "sources.json").write_text(json.dumps({"sources": [
        {"name": "s", "format": "aws-cur", "location": "x", "streams": "actual"}]}))
    with pytest.raises(ValueError, match="streams must be a list"):
        LandingZoneResource(root=str(landing.root)).sources()
    with pytest.raises(ValueError, match="unique"):
        ExportSource("s", "aws-cur", "x", ("a", "a"))
