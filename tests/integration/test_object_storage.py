"""The landing zone and the warehouse on object storage: moto's S3 server (boto3, Polars and
deltalake against it) and gcp-storage-emulator (google-cloud-storage).

Assertions are on what the stores return, on the Delta tables written to the bucket, and on the
bucket's objects (no stage left behind), not only on success.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform import cli
from focus_platform.allocation.measures import allocation_conservation
from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.landing.stores import GCSStore, S3Store, open_store
from focus_platform.landing.zone import (
    DeliveryError,
    ExportSource,
    ObjectMissing,
    discover_deliveries,
)
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import FOCUS_TABLE, ingest_delivery, publish_focus
from focus_platform.sources import SourceFormatError
from focus_platform.warehouse.catalog import ALLOCATIONS_TABLE
from focus_platform.warehouse.delta import Warehouse
from focus_platform.warehouse.restatements import RESTATEMENT_LOG, read_log
from tests.integration.conftest_objectstore import gcs, gcs_server, moto_server, s3  # noqa: F401

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SAMPLE_LANDING = Path(str(resources.files("focus_platform") / "sample_data" / "landing"))


def _failure(result) -> str:
    out = []
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            err = e.event_specific_data.error
            while err is not None:
                out.append(err.message)
                err = err.cause
    return "\n".join(out)


def _count_calls(client, operation: str) -> list[int]:
    calls = [0]
    client.meta.events.register(f"before-call.s3.{operation}", lambda **_: calls.__setitem__(0, calls[0] + 1))
    return calls


# ---------------------------------------------------------------------------------------------
# S3 landing zone
# ---------------------------------------------------------------------------------------------
def test_s3_store_lists_pages_reads_and_refuses_escaping_keys(s3):
    bucket = s3.new_bucket("landing")
    client = s3.client()
    bodies = {f"zone/src/2023-11/part-{i}.csv": f"a,b\n{i},{i * 2}\n".encode() for i in range(5)}
    for key, body in bodies.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    client.put_object(Bucket=bucket, Key="zone/other/x.csv", Body=b"a\n1\n")
    client.put_object(Bucket=bucket, Key="outside/secret.csv", Body=b"no\n")

    store = open_store(f"s3://{bucket}/zone", page_size=2)
    assert isinstance(store, S3Store)
    lists = _count_calls(store._client, "ListObjectsV2")
    listed = store.list("src")
    assert lists[0] == 3  # 5 objects, 2 a page
    assert [o.key for o in listed] == [k[len("zone/"):] for k in sorted(bodies)]
    for o in listed:
        head = client.head_object(Bucket=bucket, Key=f"zone/{o.key}")
        assert o.etag == head["ETag"].strip('"') and o.size == head["ContentLength"]
        assert store.read_bytes(o.key) == bodies[f"zone/{o.key}"]
        assert store.open(o.key).read() == bodies[f"zone/{o.key}"]
        assert store.stat(o.key) == o
    assert store.exists("src/2023-11/part-0.csv") and not store.exists("src/2023-11/nope.csv")
    assert store.stat("src/nope.csv") is None
    with pytest.raises(ObjectMissing, match="nope.csv"):
        store.read_bytes("src/nope.csv")
    # Polars reads the object itself with the store's storage options
    df = pl.read_csv(store.uri("src/2023-11/part-3.csv"), storage_options=store.storage_options)
    assert df.rows() == [(3, 6)]
    # keys that would leave the root are refused before any request
    for bad in ("../outside/secret.csv", "src/../../outside/secret.csv", "/etc/passwd"):
        with pytest.raises(DeliveryError, match="escapes"):
            store.read_bytes(bad)
    assert "testing" not in repr(store) and "testing" not in repr(Warehouse(f"s3://{bucket}/wh"))


def test_s3_landing_and_warehouse_through_dagster(s3, cur, h, landing):
    """A legacy CUR delivery in an S3 landing zone, Delta tables in another S3 bucket: materialized
    by Dagster, read back from S3; a refused re-delivery leaves no staged object in the bucket."""
    landing_bucket, wh_bucket = s3.new_bucket("landing"), s3.new_bucket("warehouse")
    client = s3.client()
    client.put_object(Bucket=landing_bucket, Key="exports/sources.json", Body=json.dumps(
        {"sources": [{"name": "aws-s3", "format": "aws-cur", "location": "cur/aws-s3"}]}).encode())
    local, zone = landing.root, landing
    zone.add_source("aws-s3", location="cur/aws-s3")
    first = zone.legacy_delivery("aws-s3", {"cur-1.csv.gz": cur.gz_bytes()})
    s3.upload_tree(local / "cur", landing_bucket, "exports/cur")

    resources_ = {"landing_zone": LandingZoneResource(root=f"s3://{landing_bucket}/exports", page_size=3),
                  "warehouse": WarehouseResource(root=f"s3://{wh_bucket}/tables")}
    instance = dg.DagsterInstance.ephemeral()
    tick = delivery_sensor(dg.build_sensor_context(instance=instance,
                                                   resources={"landing_zone": resources_["landing_zone"]}))
    assert [r.partition_key for r in tick.run_requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-s3"))]
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-s3"])
    result = dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(h.PERIOD, "aws-s3")), instance=instance,
                            resources=resources_, raise_on_error=False, run_config=QUIET)
    assert result.success, _failure(result)

    wh = resources_["warehouse"].warehouse()
    focus = h.focus_rows(wh, "aws-s3")
    assert focus.height == 10 and set(focus["x_SourceDelivery"]) == {first}
    assert h.billed_by_currency(focus) == cur.invoice_basis()
    assert set(focus["x_SourceFile"]) == {f"cur/aws-s3/cur/{h.period_folder(h.PERIOD)}/{first}/cur-1.csv.gz"}
    tables = {k.split("/")[1] for k in s3.keys(wh_bucket, "tables/")}
    assert {"raw_aws_cur", FOCUS_TABLE, "focus_quarantine", RESTATEMENT_LOG, "period_status"} <= tables
    assert "focus_costs.focus-metadata.json" in tables
    assert len(read_log(wh, table=FOCUS_TABLE)) == 1
    before_keys = s3.keys(wh_bucket)
    version = h.table_version(wh, FOCUS_TABLE)

    # a re-delivery whose file is not a CUR: refused while reading; nothing staged stays in S3
    zone.legacy_delivery("aws-s3", {"cur-1.csv.gz": cur.drop_column("lineItem/UnblendedCost").gz_bytes()})
    s3.upload_tree(local / "cur", landing_bucket, "exports/cur")
    failed = dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(h.PERIOD, "aws-s3")), instance=instance,
                            resources=resources_, raise_on_error=False, run_config=QUIET)
    assert not failed.success
    assert s3.keys(wh_bucket) == before_keys
    assert h.table_version(wh, FOCUS_TABLE) == version

    # a gate failure after staging (the guard: 1 row of 10) removes the staged objects from S3 too
    zone.legacy_delivery("aws-s3", {"cur-1.csv.gz": cur.subset([0]).gz_bytes()})
    s3.upload_tree(local / "cur", landing_bucket, "exports/cur")
    store = resources_["landing_zone"].store()
    src = resources_["landing_zone"].source("aws-s3")
    with pytest.raises(SourceFormatError, match="rows would drop from 10 to 1"):
        ingest_delivery(wh, store, src, discover_deliveries(store, src)[h.PERIOD])
    assert s3.keys(wh_bucket) == before_keys


# ---------------------------------------------------------------------------------------------
# The whole demo on S3
# ---------------------------------------------------------------------------------------------
def _totals(wh: Warehouse) -> dict[tuple, tuple]:
    df = (wh.scan(FOCUS_TABLE).group_by("x_Source", "x_BillingPeriod", "BillingCurrency")
          .agg(pl.len(), pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum(), pl.col("x_RowId").n_unique())
          .collect())
    return {tuple(r[:3]): tuple(r[3:]) for r in df.iter_rows()}


@pytest.mark.slow
def test_demo_pipeline_on_s3_matches_the_local_run(s3, tmp_path, monkeypatch, capsys):
    """`focus-platform demo` with the sample landing zone uploaded to one bucket and the warehouse
    in another: every partition published, totals identical (exact Decimal) to the local run."""
    landing_bucket, wh_bucket = s3.new_bucket("landing"), s3.new_bucket("warehouse")
    uploaded = s3.upload_tree(SAMPLE_LANDING, landing_bucket, "sample")
    assert "sample/sources.json" in uploaded
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-s3"))
    landing_root, warehouse_root = f"s3://{landing_bucket}/sample", f"s3://{wh_bucket}/warehouse"
    monkeypatch.setenv("FOCUS_LANDING_ROOT", landing_root)  # (the CLI sets them; monkeypatch restores them)
    monkeypatch.setenv("FOCUS_WAREHOUSE_ROOT", warehouse_root)
    rc = cli.main(["demo", "--landing-root", landing_root, "--warehouse-root", warehouse_root])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    assert "FAILED" not in out.out

    # the local run: the same pipeline stages on the embedded sample into a local warehouse
    local = Warehouse(str(tmp_path / "local-warehouse"))
    store = open_store(str(SAMPLE_LANDING))
    zone = LandingZoneResource(root=str(SAMPLE_LANDING))
    for source in zone.sources():
        for period, delivery in discover_deliveries(store, source).items():
            ingest_delivery(local, store, source, delivery)
            publish_focus(local, source, period, has_invoice=zone.invoice_lookup())

    remote = Warehouse(f"s3://{wh_bucket}/warehouse")
    on_s3, on_disk = _totals(remote), _totals(local)
    assert on_s3 == on_disk
    assert len(on_s3) >= 4 and all(v[0] == v[3] for v in on_s3.values())  # no duplicate x_RowId
    assert all(isinstance(v[1], Decimal) for v in on_s3.values())
    assert read_log(remote, table=FOCUS_TABLE).height == len({k[:2] for k in on_s3})
    statuses = remote.scan("period_status").collect().sort("x_Source", "x_BillingPeriod")
    assert statuses.select("x_Source", "x_BillingPeriod", "status").rows() == \
        local.scan("period_status").collect().sort("x_Source", "x_BillingPeriod") \
        .select("x_Source", "x_BillingPeriod", "status").rows()
    # allocation on S3 too: every period allocated, every FOCUS row owned, totals equal per key, exactly
    conserved = allocation_conservation(remote.scan(FOCUS_TABLE), remote.scan(ALLOCATIONS_TABLE))
    assert conserved.ok, conserved.problems
    assert set(remote.scan(ALLOCATIONS_TABLE).select("x_BillingPeriod").unique().collect().to_series()) == \
        {k[1] for k in on_s3}


# ---------------------------------------------------------------------------------------------
# GCS: the landing zone on gcp-storage-emulator
# ---------------------------------------------------------------------------------------------
def test_gcs_landing_zone_on_the_emulator(gcs, cur, h, landing):
    bucket = gcs.new_bucket("landing")
    gbucket = gcs.client().bucket(bucket)
    gbucket.blob("zone/sources.json").upload_from_string(json.dumps(
        {"sources": [{"name": "aws-g", "format": "aws-cur", "location": "cur"}]}))
    local = landing
    local.add_source("aws-g", location="cur")
    assembly = local.legacy_delivery("aws-g", {"cur-1.csv.gz": cur.gz_bytes(),
                                               "cur-2.csv.gz": cur.subset([1]).gz_bytes()})
    local.plain_delivery("aws-g", "2023-10", {f"oct-{i}.csv": cur.subset([i]).csv_bytes() for i in range(3)})
    for p in sorted((landing.root / "cur").rglob("*")):
        if p.is_file():
            gbucket.blob(f"zone/{p.relative_to(landing.root).as_posix()}").upload_from_filename(str(p))
    # (a blob name with '..' segments drops the emulator's connection: escaping keys are tested on S3)

    store = open_store(f"gs://{bucket}/zone", page_size=2)
    assert isinstance(store, GCSStore)
    listed = store.list("cur")
    assert len(listed) == 7  # November: 2 files + 2 manifests; October: 3 files
    blobs = {b.name: b for b in gcs.client().list_blobs(bucket, prefix="zone/cur/")}
    for o in listed:
        b = blobs[f"zone/{o.key}"]
        assert o.size == b.size and o.etag.startswith(b.etag)
    oct0 = "cur/2023-10/oct-0.csv"
    assert store.read_bytes(oct0) == cur.subset([0]).csv_bytes() and store.exists(oct0)
    assert store.stat("cur/missing.csv") is None
    with pytest.raises(ObjectMissing):
        store.read_bytes("cur/missing.csv")
    with pytest.raises(DeliveryError, match="escapes"):
        store.read_bytes("cur/../zone/sources.json")

    zone = LandingZoneResource(root=f"gs://{bucket}/zone", page_size=2)
    source = zone.source("aws-g")
    assert source == ExportSource("aws-g", "aws-cur", "cur")
    found = zone.discover(source)
    deliveries = found.deliveries
    assert sorted(deliveries) == ["2023-10", h.PERIOD]
    assert deliveries[h.PERIOD].delivery_id == assembly and len(deliveries[h.PERIOD].files) == 2
    assert len(deliveries["2023-10"].files) == 3
    assert found.refused == {} and found.error is None
    tick = delivery_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                                   resources={"landing_zone": zone}))
    assert sorted(r.partition_key for r in tick.run_requests) == sorted(
        [dagster_key(PartitionKey.of("2023-10", "aws-g")), dagster_key(PartitionKey.of(h.PERIOD, "aws-g"))])


def test_deltalake_on_the_gcs_emulator(gcs):
    """Evidence for the report: deltalake (object_store's GCS client) speaks the GCS XML API, which
    gcp-storage-emulator does not implement; if it ever does, this test shows the round trip."""
    from deltalake import DeltaTable, write_deltalake

    bucket = gcs.new_bucket("warehouse")
    wh = Warehouse(f"gs://{bucket}/wh")
    try:
        write_deltalake(wh.uri("t"), pl.DataFrame({"a": [1]}).to_arrow(), storage_options=wh.storage_options)
    except Exception as exc:  # noqa: BLE001
        message = str(exc)
        assert "501" in message or "Not Implemented" in message, message
        plain = " ".join(re.sub(r"\x1b\[[0-9;]*m|↳", " ", message).split())
        pytest.xfail(f"deltalake cannot write Delta to gcp-storage-emulator: {plain[:400]}")
    assert DeltaTable(wh.uri("t"), storage_options=wh.storage_options).to_pyarrow_table().num_rows == 1
