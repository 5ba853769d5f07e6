"""Reliability: five re-deliveries of one month, writers killed with SIGKILL mid-write, two
processes writing two partitions of one table at once (local and S3), and bad deliveries in an S3
landing zone (escaping key, zero-byte object, manifest naming a missing object, an object that
disappears or changes between list and read).

Every assertion is on the Delta tables (versions, rows, totals, history), the restatement log, the
files/objects left behind and the sensor cursor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource
from focus_platform.defs.sensors.ingest import delivery_sensor
from focus_platform.landing.stores import open_store
from focus_platform.landing.zone import DeliveryError, discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import (
    FOCUS_TABLE,
    QUARANTINE_TABLE,
    DeliveryRefused,
    ingest_delivery,
    publish_focus,
)
from focus_platform.warehouse import catalog
from focus_platform.warehouse.delta import Warehouse
from focus_platform.warehouse.restatements import read_log
from tests.integration.conftest_objectstore import child_env, moto_server, s3  # noqa: F401

RAW_TABLE = "raw_aws_cur"


def orphan_files(warehouse: Warehouse, table: str) -> list[str]:
    """Data files in a local table folder that no table version refers to (uncommitted stages)."""
    root = Path(warehouse.uri(table))
    in_history = set().union(*(
        DeltaTable(warehouse.uri(table), version=v).get_add_actions(flatten=True).column("path").to_pylist()
        for v in range(warehouse.table(table).version() + 1)))
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet")
                  if p.relative_to(root).as_posix() not in in_history)


def totals(df: pl.DataFrame) -> dict[str, Decimal]:
    return {r[0]: r[1] for r in df.group_by("BillingCurrency").agg(pl.col("BilledCost").sum()).iter_rows()}


# ---------------------------------------------------------------------------------------------
# Five deliveries of one month
# ---------------------------------------------------------------------------------------------
def test_the_same_month_delivered_five_times(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    eur = cur.copy().set(5, "lineItem/CurrencyCode", "EUR").set(5, h.COST, "2")
    deliveries = [
        cur,                                                   # all 10 rows
        cur.subset(list(range(9))).set(2, h.COST, "0.05"),    # a row less, one changed
        eur,                                                   # the row back, a second currency
        eur.subset(list(range(1, 10))).set(0, h.COST, "0.5"),  # the first row withdrawn, one changed
        eur.subset(list(range(8))).set(7, h.COST, "0.25"),    # 8 rows
    ]
    ids, versions = [], []
    for table in deliveries:
        ids.append(landing.legacy_delivery("aws-a", {"cur-1.csv.gz": table.gz_bytes()}))
        delivery, raw, pub = h.run_pipeline(warehouse, landing, "aws-a")
        assert delivery.delivery_id == ids[-1]
        versions.append(pub.version)

    # exactly one current version: the fifth delivery's rows, no duplicate
    focus = h.focus_rows(warehouse, "aws-a")
    assert focus.height == 8 and set(focus["x_SourceDelivery"]) == {ids[-1]}
    assert focus["x_RowId"].n_unique() == focus.height
    assert focus.drop("x_IngestedAt").is_duplicated().sum() == 0
    assert totals(focus) == deliveries[-1].invoice_basis()
    raw = h.focus_rows(warehouse, "aws-a", table=RAW_TABLE)
    assert raw.height == 8 and set(raw["x_SourceDelivery"]) == {ids[-1]}

    # five entries per table in the restatement log, each with the exact deltas
    log = read_log(warehouse, table=FOCUS_TABLE, period=h.PERIOD, source="aws-a")
    assert log.height == 5
    assert log["action"].to_list() == ["publish", "replace", "replace", "replace", "replace"]
    assert log["version_after"].to_list() == versions
    assert log["version_before"].to_list() == [None, *versions[:-1]]
    for i, entry in enumerate(log.iter_rows(named=True)):
        prev = deliveries[i - 1] if i else None
        assert entry["rows_after"] == len(deliveries[i].rows)
        assert entry["rows_before"] == (len(prev.rows) if prev else None)
        assert entry["deliveries_after"] == [ids[i]] and entry["deliveries_before"] == ([ids[i - 1]] if i else [])
        after, before = deliveries[i].invoice_basis(), prev.invoice_basis() if prev else {}
        got = {t["currency"]: t for t in entry["totals"]}
        assert set(got) == set(after) | set(before)
        for currency, t in got.items():
            assert t["billed_before"] == before.get(currency, Decimal(0))
            assert t["billed_after"] == after.get(currency, Decimal(0))
            assert t["billed_delta"] == after.get(currency, Decimal(0)) - before.get(currency, Decimal(0))
        # the replaced version is still readable from Delta history, with the logged totals
        old = h.focus_rows(warehouse, "aws-a", version=entry["version_after"])
        assert totals(old) == after and old.height == entry["rows_after"]
    assert read_log(warehouse, table=RAW_TABLE).height == 5
    assert [e["status_after"] for e in log.iter_rows(named=True)] == ["open"] * 5  # no InvoiceId in the rows


# ---------------------------------------------------------------------------------------------
# SIGKILL mid-write
# ---------------------------------------------------------------------------------------------
KILLED_CHILD = r"""
import os, sys, time
import polars as pl
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.pipeline import FOCUS_TABLE, ingest_delivery, publish_focus
from focus_platform.warehouse.delta import Warehouse

landing, warehouse, source, period, point, marker = sys.argv[1:7]

def pause():
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(300)

if point == "raw-mid-stage":  # after the first of the delivery's files is staged
    sink = pl.LazyFrame.sink_parquet
    def staged_then_pause(self, *a, **k):
        out = sink(self, *a, **k)
        pause()
        return out
    pl.LazyFrame.sink_parquet = staged_then_pause
else:  # staged and gated, before the commit of raw_aws_cur / focus_costs
    table = "raw_aws_cur" if point == "raw-before-commit" else FOCUS_TABLE
    commit = Warehouse._commit
    def pause_then_commit(self, t, *a, **k):
        if t == table:
            pause()
        return commit(self, t, *a, **k)
    Warehouse._commit = pause_then_commit

src = ExportSource(source, "aws-cur", source)
store, wh = LocalStore(landing), Warehouse(warehouse)
delivery = discover_deliveries(store, src)[period]
ingest_delivery(wh, store, src, delivery)
publish_focus(wh, src, period)
print("not killed")
"""


def _kill_mid_write(landing, warehouse, point: str, tmp: Path) -> int:
    marker = tmp / f"{point}.started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(landing.root), warehouse.root, "aws-a", "2023-11",
                             point, str(marker)], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not marker.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"child ended before {point}: {proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return proc.returncode


def test_a_writer_killed_mid_write_leaves_the_prior_version(landing, warehouse, cur, h, tmp_path):
    landing.add_source("aws-a")
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    prior = h.focus_rows(warehouse, "aws-a").sort("x_RowId")
    v_raw, v_focus, v_q = (h.table_version(warehouse, t) for t in (RAW_TABLE, FOCUS_TABLE, QUARANTINE_TABLE))
    second_table = cur.subset(list(range(9))).set(1, h.COST, "3.75")
    extra = cur.subset([9]).set(0, "identity/LineItemId", "extra-row")
    second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": second_table.gz_bytes(),
                                               "cur-2.csv.gz": extra.gz_bytes()})

    kills = {}
    for point in ("raw-mid-stage", "raw-before-commit", "focus-before-commit"):
        kills[point] = _kill_mid_write(landing, warehouse, point, tmp_path)
        assert kills[point] == -signal.SIGKILL
        # focus_costs (what readers use) stays at its prior version and content
        assert h.table_version(warehouse, FOCUS_TABLE) == v_focus
        assert h.table_version(warehouse, QUARANTINE_TABLE) == v_q
        assert h.focus_rows(warehouse, "aws-a").sort("x_RowId").equals(prior)
        if point != "focus-before-commit":
            assert h.table_version(warehouse, RAW_TABLE) == v_raw
            assert set(h.focus_rows(warehouse, "aws-a", table=RAW_TABLE)["x_SourceDelivery"]) == {first}
    # the last kill came after raw_aws_cur had committed the new delivery (one stage at a time)
    assert h.table_version(warehouse, RAW_TABLE) == v_raw + 1
    stale = orphan_files(warehouse, RAW_TABLE) + orphan_files(warehouse, FOCUS_TABLE)
    # the killed writers' staged parts: raw 1 (mid-stage) + 2 (before commit), focus 1 (before commit)
    assert len(stale) == 4 and all("/stage-" in f for f in stale), stale
    assert read_log(warehouse, table=FOCUS_TABLE).height == 1

    # the rerun converges to the new delivery
    h.run_pipeline(warehouse, landing, "aws-a")
    focus = h.focus_rows(warehouse, "aws-a")
    expected = {"USD": second_table.invoice_basis()["USD"] + extra.invoice_basis()["USD"]}
    assert focus.height == 10 and focus["x_RowId"].n_unique() == 10 and set(focus["x_SourceDelivery"]) == {second}
    assert totals(focus) == expected
    assert read_log(warehouse, table=FOCUS_TABLE)["rows_after"].to_list() == [10, 10]

    # orphans of the killed writers are removed; every version stays readable
    removed = warehouse.remove_orphans(RAW_TABLE, older_than_hours=0) + \
        warehouse.remove_orphans(FOCUS_TABLE, older_than_hours=0)
    assert sorted(removed) == sorted(stale)
    assert orphan_files(warehouse, RAW_TABLE) == [] and orphan_files(warehouse, FOCUS_TABLE) == []
    assert h.focus_rows(warehouse, "aws-a", version=v_focus).sort("x_RowId").equals(prior)
    assert totals(h.focus_rows(warehouse, "aws-a")) == expected
    print(f"kills: {kills}; orphaned files: {len(stale)}, removed: {len(removed)}")


# ---------------------------------------------------------------------------------------------
# Two processes, two partitions of one table
# ---------------------------------------------------------------------------------------------
CONCURRENT_CHILD = r"""
import json, sys, time
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import ingest_delivery, publish_focus
from focus_platform.warehouse import catalog
from focus_platform.warehouse.delta import Warehouse

catalog.TABLES["contention"] = catalog.TableSpec("contention", catalog.BY_PERIOD_AND_SOURCE, "test",
                                                 "commits of two writers colliding", logged=False)
landing, warehouse, period, rounds, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
src = ExportSource("aws-a", "aws-cur", "aws-a")
store, wh = LocalStore(landing), Warehouse(warehouse)
delivery = discover_deliveries(store, src)[period]
import polars as pl
while time.time() < start:
    time.sleep(0.005)
for i in range(10):  # first a tight loop of commits to one table: the writers collide
    wh.publish("contention", pl.LazyFrame({"i": [i]}), PartitionKey.of(period, "aws-a"))
tight_retries = wh.commit_retries
import dataclasses
for r in range(rounds):  # then the pipeline, both writers on the same tables; a new delivery id each
    # round, since re-ingesting an unchanged delivery is a no-op that writes nothing
    ingest_delivery(wh, store, src, dataclasses.replace(delivery, delivery_id=f"{delivery.delivery_id}-{r}"))
    publish_focus(wh, src, period)
pipeline_retries = wh.commit_retries - tight_retries
print(json.dumps({"period": period, "tight_loop_retries": tight_retries, "pipeline_retries": pipeline_retries}))
"""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_processes_write_two_partitions_of_one_table(where, landing, cur, h, tmp_path, request):
    if where == "s3":
        server = request.getfixturevalue("s3")
        root = f"s3://{server.new_bucket('concurrent')}/warehouse"
    else:
        root = str(tmp_path / "warehouse")
    landing.add_source("aws-a")
    oct_rows, nov_rows = [0, 1, 2, 3], [4, 5, 6, 7, 8, 9]
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset(oct_rows).gz_bytes()}, period="2023-10")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset(nov_rows).gz_bytes()})
    rounds, start = 2, time.time() + 6
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_CHILD, str(landing.root), root, period, str(rounds),
                               str(start)], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for period in ("2023-10", "2023-11")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-3000:] for o in outs]
    reports = [json.loads(o[0].decode().strip().splitlines()[-1]) for o in outs]

    wh = Warehouse(root)
    for period, rows in (("2023-10", oct_rows), ("2023-11", nov_rows)):
        part = {"x_BillingPeriod": period, "x_Source": "aws-a"}
        focus = h.focus_rows(wh, "aws-a", period)
        # a lost partition shows the Delta log of every commit that touched it
        assert focus.height == len(rows) and focus["x_RowId"].n_unique() == len(rows), \
            f"{FOCUS_TABLE} {period}: {focus.height} rows, expected {len(rows)}\n{wh.describe_log(FOCUS_TABLE, part)}"
        assert totals(focus) == cur.subset(rows).invoice_basis()
        raw = h.focus_rows(wh, "aws-a", period, table=RAW_TABLE)
        assert raw.height == len(rows), f"{RAW_TABLE} {period}: {raw.height} rows\n{wh.describe_log(RAW_TABLE, part)}"
        assert read_log(wh, table=FOCUS_TABLE, period=period).height == rounds
        assert read_log(wh, table=RAW_TABLE, period=period).height == rounds
    for table, commits in ((RAW_TABLE, rounds), (FOCUS_TABLE, rounds), (QUARANTINE_TABLE, rounds),
                           ("period_status", rounds), ("contention", 10)):
        # every commit of both writers is a version of its own: none lost, none overwritten; the
        # table was created once (a writer losing the race to create it overwrites its partition)
        history = wh.history(table)
        assert len(history) == 2 * commits, f"{table}\n{wh.describe_log(table)}"
        assert [e["version"] for e in history if e["operation"] == "CREATE TABLE"] == [0], wh.describe_log(table)
    contention = wh.scan("contention").collect()
    assert sorted(contention.rows()) == [(9, "2023-10", "aws-a"), (9, "2023-11", "aws-a")]
    print(f"{where}: commit retries {reports}")


def test_a_stale_commit_on_s3_cannot_overwrite_the_log(s3, monkeypatch):
    """The object store is what makes commits safe: a writer committing from an old snapshot tries
    to create a log entry that exists; S3's conditional put (If-None-Match) refuses it, so the
    winner's entry is never overwritten (the loser fails or is rebased, never wins silently)."""
    from deltalake.exceptions import CommitFailedError

    wh = Warehouse(f"s3://{s3.new_bucket('log')}/wh")
    monkeypatch.setitem(catalog.TABLES, "t", catalog.TableSpec("t", catalog.BY_PERIOD_AND_SOURCE, "test", "t",
                                                               logged=False))
    key_a, key_b = PartitionKey.of("2023-10", "a"), PartitionKey.of("2023-10", "b")
    a, b = key_a.values(), key_b.values()
    wh.publish("t", pl.LazyFrame({"i": [1]}), key_a)
    wh.publish("t", pl.LazyFrame({"i": [1]}), key_b)
    stale = wh.table("t")  # a writer that read version 1
    winner = wh.publish("t", pl.LazyFrame({"i": [2]}), key_b)[0]  # version 2, by another writer
    assert winner.version == 2
    try:
        stale.create_write_transaction([], mode="overwrite", schema=stale.schema(), partition_by=list(a),
                                       partition_filters=[(k, "=", v) for k, v in a.items()])
        outcome = "rebased"
    except CommitFailedError as exc:
        outcome = f"refused: {str(exc).splitlines()[0]}"
    history = {e["version"]: e for e in wh.history("t")}
    assert "focus_commit" in history[2]  # version 2 is still the winner's commit
    assert wh.scan("t", b).collect()["i"].to_list() == [2]
    print(f"stale commit on S3: {outcome}")


# ---------------------------------------------------------------------------------------------
# Bad deliveries in an S3 landing zone
# ---------------------------------------------------------------------------------------------
BAD_CASES = ["escaping-key", "zero-byte-object", "manifest-names-a-missing-object", "object-disappears",
             "object-rewritten-while-read"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_delivery_is_refused_cleanly(case, s3, landing, warehouse, cur, h):
    bucket = s3.new_bucket("landing")
    client = s3.client()
    landing.add_source("aws-a", location="cur")
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    s3.upload_tree(landing.root, bucket, "zone")
    zone = LandingZoneResource(root=f"s3://{bucket}/zone")
    store, src = zone.store(), zone.source("aws-a")

    def run():  # what raw_exports + focus_costs do
        delivery = discover_deliveries(store, src)[h.PERIOD]
        ingest_delivery(warehouse, store, src, delivery)
        return publish_focus(warehouse, src, h.PERIOD)

    run()
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    resources = {"landing_zone": zone}
    cursor = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources)).cursor
    state = {t: (h.table_version(warehouse, t), h.focus_rows(warehouse, "aws-a", table=t).sort("x_RowId"))
             for t in (RAW_TABLE, FOCUS_TABLE, QUARANTINE_TABLE)}
    log_entries = read_log(warehouse).height

    def sensor(cur_cursor):
        result = delivery_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cur_cursor))
        return [r.partition_key for r in result.run_requests], result.cursor, \
            result.skip_reason.skip_message if result.skip_reason else ""

    pf = f"zone/cur/cur/{h.period_folder(h.PERIOD)}"
    if case == "escaping-key":
        client.put_object(Bucket=bucket, Key=f"zone/cur/{h.PERIOD}/../../../outside/escape.csv", Body=cur.csv_bytes())
        requests, cursor2, skip = sensor(cursor)
        assert requests == [] and cursor2 == cursor and "escapes its prefix" in skip
        with pytest.raises(DeliveryError, match=r"escapes its prefix.*refused"):
            run()
    elif case == "manifest-names-a-missing-object":
        second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2, 3, 4, 5]).gz_bytes()},
                                         missing=("cur-2.csv.gz",))
        s3.upload_tree(landing.root, bucket, "zone")
        requests, cursor2, skip = sensor(cursor)
        assert requests == [] and cursor2 == cursor and "cur-2.csv.gz" in skip and second in skip
        with pytest.raises(DeliveryError, match=r"cur-2.csv.gz.*not in the landing zone.*refused"):
            run()
    elif case == "zero-byte-object":
        second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset(list(range(7))).gz_bytes(),
                                                   "cur-2.csv.gz": b""})
        s3.upload_tree(landing.root, bucket, "zone")
        requests, cursor2, _ = sensor(cursor)
        assert requests == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]  # the run is requested once, and fails:
        with pytest.raises(DeliveryRefused, match=r"cur-2.csv.gz is a zero-byte object.*refused"):
            run()
        assert sensor(cursor2)[0] == []  # no retry loop on the same objects
        client.put_object(Bucket=bucket, Key=f"{pf}/{second}/cur-2.csv.gz", Body=cur.subset([7, 8]).gz_bytes())
        requests, _, _ = sensor(cursor2)  # the upload completes: a new etag, a new run
        assert requests == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
    elif case in ("object-disappears", "object-rewritten-while-read"):
        second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset(list(range(7))).gz_bytes(),
                                                   "cur-2.csv.gz": cur.subset([7, 8]).gz_bytes()})
        s3.upload_tree(landing.root, bucket, "zone")
        requests, cursor2, _ = sensor(cursor)
        assert requests == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
        delivery = discover_deliveries(store, src)[h.PERIOD]  # listed …
        key = f"{pf}/{second}/cur-2.csv.gz"
        if case == "object-disappears":
            client.delete_object(Bucket=bucket, Key=key)  # … then gone before it is read
            with pytest.raises(DeliveryRefused, match=r"cur-2.csv.gz disappeared after it was listed"):
                ingest_delivery(warehouse, store, src, delivery)
            requests, cursor3, skip = sensor(cursor2)  # now the manifest names a missing object
            assert requests == [] and cursor3 == cursor2 and "cur-2.csv.gz" in skip
        else:
            client.put_object(Bucket=bucket, Key=key, Body=cur.subset([8]).gz_bytes())  # … rewritten
            with pytest.raises(DeliveryRefused, match=r"cur-2.csv.gz changed while it was read"):
                ingest_delivery(warehouse, store, src, delivery)
            assert sensor(cursor2)[0] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]  # the new version runs

    # nothing of the bad delivery was committed, nothing staged is left
    for table, (version, rows) in state.items():
        assert h.table_version(warehouse, table) == version, table
        assert h.focus_rows(warehouse, "aws-a", table=table).sort("x_RowId").equals(rows), table
    assert set(state[FOCUS_TABLE][1]["x_SourceDelivery"]) == {first}
    assert orphan_files(warehouse, RAW_TABLE) == [] and orphan_files(warehouse, FOCUS_TABLE) == []
    assert read_log(warehouse).height == log_entries
    assert isinstance(open_store(f"s3://{bucket}/zone").list("cur"), list)
