"""Restatements: the re-delivery guard (refused, forced by run tag), the "what changed" metadata,
`focus-platform rollback` from Delta history, and the period status (open / final / restated) with
`focus-platform status`.
"""

from __future__ import annotations

from decimal import Decimal

import dagster as dg
import polars as pl
import pytest

from focus_platform.cli import main
from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import FOCUS_TABLE, publish_focus
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.restatements import (
    FORCE_TAG,
    PERIOD_STATUS,
    RESTATEMENT_LOG,
    read_log,
)

RAW_TABLE = "raw_aws_cur"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture
def dagster_env(landing, warehouse, cur):
    landing.add_source("aws-a")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a"])
    resources = {"landing_zone": LandingZoneResource(root=str(landing.root)),
                 "warehouse": WarehouseResource(root=warehouse.root)}

    def materialize(tags=None, period="2023-11"):
        return dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(period, "aws-a")), instance=instance,
                              resources=resources, raise_on_error=False, run_config=QUIET, tags=tags or {})
    return materialize


def evaluations(result) -> dict[tuple[str, str], object]:
    return {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name): e.event_specific_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def metadata(result, asset: str) -> dict:
    for m in result.get_asset_materialization_events():
        mat = m.event_specific_data.materialization
        if mat.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    return {}


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


# ---------------------------------------------------------------------------------------------
def test_a_redelivery_dropping_half_the_rows_is_refused_until_forced(dagster_env, landing, warehouse, cur, h):
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    one = dagster_env()
    assert one.success
    assert evaluations(one)[("raw_exports", "delivery_accepted")].passed
    meta = metadata(one, FOCUS_TABLE)
    assert "| rows | — | 10 | +10 |" in meta["what_changed"]
    assert meta["period_status"] == "open"
    versions = {t: h.table_version(warehouse, t) for t in (RAW_TABLE, FOCUS_TABLE)}
    published = h.focus_rows(warehouse, "aws-a").sort("x_RowId")

    # 3 of 10 rows: refused with a clear message and a failed blocking check; nothing replaced
    partial = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([2, 3, 4]).gz_bytes()})
    refused = dagster_env()
    assert not refused.success
    check = evaluations(refused)[("raw_exports", "delivery_accepted")]
    assert check.passed is False
    text = failure_text(refused)
    assert "rows would drop from 10 to 3 (-70.0 %)" in text and "allowed 50%" in text and FORCE_TAG in text
    assert "billed total USD would drop" in text  # 0.27 → 0.09
    assert {t: h.table_version(warehouse, t) for t in versions} == versions
    assert h.focus_rows(warehouse, "aws-a").sort("x_RowId").equals(published)
    assert read_log(warehouse).height == 3  # raw, focus and quarantine of the first delivery only

    # the same delivery, accepted deliberately with the run tag
    forced = dagster_env(tags={FORCE_TAG: "true"})
    assert forced.success, failure_text(forced)
    check = evaluations(forced)[("raw_exports", "delivery_accepted")]
    assert check.passed and check.metadata["forced"].value is True
    focus = h.focus_rows(warehouse, "aws-a")
    assert focus.height == 3 and set(focus["x_SourceDelivery"]) == {partial}
    log = read_log(warehouse, table=RAW_TABLE)
    assert log["forced"].to_list() == [False, True] and "rows would drop" in log["note"][1]
    entry = read_log(warehouse, table=FOCUS_TABLE).row(-1, named=True)
    assert (entry["rows_before"], entry["rows_after"], entry["deliveries_before"], entry["deliveries_after"]) == \
        (10, 3, [first], [partial])
    usd = entry["totals"][0]
    assert usd["billed_delta"] == cur.invoice_basis([2, 3, 4])["USD"] - cur.invoice_basis()["USD"]
    assert "| rows | 10 | 3 | -7 |" in metadata(forced, FOCUS_TABLE)["what_changed"]


def test_a_redelivery_dropping_the_billed_total_is_refused(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    cheaper = cur.copy().set(1, h.COST, "0.0001").set(0, h.COST, "0.0001")  # same rows, 0.27 → 0.19 … and
    cheaper = cheaper.set(3, h.COST, "0").set(4, h.COST, "0")  # … 0.12: -55 %
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cheaper.gz_bytes()})
    with pytest.raises(Exception, match=r"billed total USD would drop from 0\.2698855563.* \(-5\d\.\d %\)"):
        h.run_pipeline(warehouse, landing, "aws-a")
    # a stricter configured share refuses smaller drops too; a looser one accepts this
    from focus_platform.landing.zone import discover_deliveries
    from focus_platform.pipeline import ingest_delivery

    src = landing.source("aws-a")
    delivery = discover_deliveries(landing.store(), src)[h.PERIOD]
    ingest_delivery(warehouse, landing.store(), src, delivery, policy=rs.GuardPolicy(max_drop_share=0.6))
    assert h.focus_rows(warehouse, "aws-a", table=RAW_TABLE)["x_SourceDelivery"][0] == delivery.delivery_id


# ---------------------------------------------------------------------------------------------
def test_rollback_restores_a_partition_from_history_and_logs_it(landing, warehouse, cur, h, capsys):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    _, raw1, pub1 = h.run_pipeline(warehouse, landing, "aws-a")
    v1_rows = h.focus_rows(warehouse, "aws-a").sort("x_RowId")
    second = cur.subset(list(range(8))).set(0, h.COST, "0.2")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": second.gz_bytes()})
    _, _, pub2 = h.run_pipeline(warehouse, landing, "aws-a")
    v2_rows = h.focus_rows(warehouse, "aws-a").sort("x_RowId")

    rc = main(["rollback", FOCUS_TABLE, "--period", h.PERIOD, "--source", "aws-a", "--warehouse-root", warehouse.root])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"restored as of version {pub1.version}" in out and "rows: 8 -> 10" in out
    now = h.focus_rows(warehouse, "aws-a").sort("x_RowId")
    assert now.equals(v1_rows)  # the very rows (and files) of version 1
    assert h.table_version(warehouse, FOCUS_TABLE) > pub2.version  # a new version; history intact
    assert h.focus_rows(warehouse, "aws-a", version=pub2.version).sort("x_RowId").equals(v2_rows)
    entry = read_log(warehouse, table=FOCUS_TABLE).row(-1, named=True)
    assert entry["action"] == "rollback" and entry["rows_before"] == 8 and entry["rows_after"] == 10
    assert entry["version_before"] == pub2.version and str(pub1.version) in entry["note"]
    assert entry["totals"][0]["billed_after"] == cur.invoice_basis()["USD"]

    # forward again to version 2 explicitly; the raw table too
    rc = main(["rollback", FOCUS_TABLE, "--period", h.PERIOD, "--source", "aws-a", "--to-version",
               str(pub2.version), "--warehouse-root", warehouse.root])
    assert rc == 0 and h.focus_rows(warehouse, "aws-a").sort("x_RowId").equals(v2_rows)
    rc = main(["rollback", RAW_TABLE, "--period", h.PERIOD, "--source", "aws-a", "--to-version",
               str(raw1.version), "--warehouse-root", warehouse.root])
    assert rc == 0 and h.focus_rows(warehouse, "aws-a", table=RAW_TABLE).height == 10
    assert read_log(warehouse, table=RAW_TABLE)["action"].to_list()[-1] == "rollback"

    capsys.readouterr()
    rc = main(["rollback", FOCUS_TABLE, "--period", h.PERIOD, "--source", "aws-a", "--to-version", "99",
               "--warehouse-root", warehouse.root])
    err = capsys.readouterr().err
    assert rc == 1 and "version 99 does not exist" in err
    rc = main(["rollback", "no_such_table", "--period", h.PERIOD, "--source", "aws-a",
               "--warehouse-root", warehouse.root])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
def test_period_status_open_final_restated(landing, warehouse, cur, h, capsys):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    *_, pub = h.run_pipeline(warehouse, landing, "aws-a")
    assert (pub.status, pub.status_reason) == ("open", "InvoiceId missing on 10 of 10 rows (the month is not "
                                                       "invoiced yet)")
    invoiced = cur.copy()
    for i in range(len(invoiced.rows)):
        invoiced.set(i, "bill/InvoiceId", "EUINGB23-123")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": invoiced.gz_bytes()})  # AWS closes the month
    *_, pub = h.run_pipeline(warehouse, landing, "aws-a")
    assert pub.status == "final" and "InvoiceId present on all 10 rows" in pub.status_reason
    src = landing.source("aws-a")
    assert publish_focus(warehouse, src, h.PERIOD).status == "final"  # the same content again: still final
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": invoiced.copy().set(2, h.COST, "0.03").gz_bytes()})
    *_, pub = h.run_pipeline(warehouse, landing, "aws-a")
    assert pub.status == "restated"
    stored = warehouse.scan(PERIOD_STATUS).collect().row(0, named=True)
    assert (stored["status"], stored["x_Source"], stored["focus_version"]) == ("restated", "aws-a", pub.version)
    log = read_log(warehouse, table=FOCUS_TABLE)
    assert list(zip(log["status_before"], log["status_after"])) == [
        (None, "open"), ("open", "final"), ("final", "final"), ("final", "restated")]

    rc = main(["status", "--warehouse-root", warehouse.root])
    out = capsys.readouterr().out
    assert rc == 0 and "aws-a" in out and "restated" in out and f"{h.PERIOD}" in out
    assert out.splitlines()[1].split()[4] == "4"  # four focus_costs changes logged


def test_period_status_by_invoice_file_for_providers_without_invoice_ids(landing, warehouse, cur, h, monkeypatch):
    monkeypatch.setitem(rs.FINALITY, "aws-cur", "invoice_file")  # the rule of formats without InvoiceId
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    zone = LandingZoneResource(root=str(landing.root))
    src = landing.source("aws-a")
    h.run_pipeline(warehouse, landing, "aws-a")
    account = h.focus_rows(warehouse, "aws-a")["BillingAccountId"][0]
    pub = publish_focus(warehouse, src, h.PERIOD, has_invoice=zone.invoice_lookup())
    assert pub.status == "open" and f"no invoice yet under invoices/ for billing account(s) {account}" in \
        pub.status_reason
    (landing.root / "invoices" / account).mkdir(parents=True)
    (landing.root / "invoices" / account / "2023-11.csv").write_text(
        "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"
        f"INV-1,AWS,{account},2023-11,USD,0.27,0.08,0,2023-12-02,\n")
    pub = publish_focus(warehouse, src, h.PERIOD, has_invoice=zone.invoice_lookup())
    assert pub.status == "final" and "invoiced" in pub.status_reason
    assert rs.read_status(warehouse, h.PERIOD, "aws-a")["status"] == "final"


def test_restatement_log_schema_keeps_money_exact(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    log = warehouse.scan(RESTATEMENT_LOG).collect()
    assert log.schema == rs.LOG_SCHEMA
    totals = log.filter(pl.col("table") == FOCUS_TABLE)["totals"][0]
    assert totals[0]["billed_after"] == cur.invoice_basis()["USD"] and isinstance(totals[0]["billed_after"], Decimal)
