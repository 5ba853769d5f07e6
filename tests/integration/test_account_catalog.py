"""The account catalog through the pipeline, the CLI, the focus_costs asset and the catalog sensor: names
filled where the export lacks them (noted), totals unchanged, an unchanged catalog a no-op, a changed
entry re-publishing exactly the partitions it touches, a broken catalog failing with its one line."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from focus_platform.allocation.accounts import read_catalog
from focus_platform.cli import main
from focus_platform.defs.assets.ingest import INGEST_ASSETS, focus_costs
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.defs.sensors.ingest import account_catalog_sensor
from focus_platform.landing.zone import discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import ingest_delivery, publish_focus

HEADER = "provider,account_id,account_name,kind,path\n"
OTHER_ACCOUNT = "210987654321"  # the second source's payer and usage account
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def catalog(*rows: str) -> pl.DataFrame:
    return read_catalog([("accounts/catalog.csv", (HEADER + "".join(r + "\n" for r in rows)).encode())])


@pytest.fixture
def two_sources(landing, warehouse, cur, h):
    """aws-a (account 123412340534) and aws-b (account 210987654321), each a published-ready raw partition."""
    other = cur.copy()
    for row in range(len(other.rows)):
        other.set(row, "bill/PayerAccountId", OTHER_ACCOUNT).set(row, "lineItem/UsageAccountId", OTHER_ACCOUNT)
    for name, table in (("aws-a", cur), ("aws-b", other)):
        landing.add_source(name)
        landing.legacy_delivery(name, {"cur-1.csv.gz": table.gz_bytes()})
        src = landing.source(name)
        ingest_delivery(warehouse, landing.store(), src, discover_deliveries(landing.store(), src)[h.PERIOD])
    return SimpleNamespace(landing=landing, warehouse=warehouse, h=h,
                           publish=lambda name, accounts: publish_focus(warehouse, landing.source(name), h.PERIOD,
                                                                        accounts=accounts))


def test_names_filled_noted_and_totals_unchanged(two_sources):
    t, h = two_sources, two_sources.h
    plain = t.publish("aws-b", None)
    assert not plain.unchanged
    without = h.focus_rows(t.warehouse, "aws-b")
    assert without["SubAccountName"].null_count() == without.height  # the legacy CUR carries no names
    named = t.publish("aws-a", catalog(f"aws,{h.PAYER},Example Payer,any,Root/Shared"))
    rows = h.focus_rows(t.warehouse, "aws-a")
    assert set(rows["BillingAccountName"]) == {"Example Payer"} == set(rows["SubAccountName"])
    note = "SubAccountName: from the account catalog (accounts/catalog.csv)"
    assert rows["x_SourceChanges"].list.contains(note).all()
    assert named.checks.conformance.ok and named.checks.billed_ok
    unnamed = publish_focus(t.warehouse, t.landing.source("aws-a"), h.PERIOD)  # the catalog gone: re-published
    assert not unnamed.unchanged
    assert h.billed_by_currency(rows) == h.billed_by_currency(h.focus_rows(t.warehouse, "aws-a")) == \
        h.billed_by_currency(without.with_columns(pl.col("BilledCost")))
    assert h.focus_rows(t.warehouse, "aws-a")["SubAccountName"].null_count() == rows.height


def test_unchanged_catalog_is_a_no_op_and_a_changed_entry_republishes_only_its_partition(two_sources):
    t, h = two_sources, two_sources.h
    first = catalog(f"aws,{h.PAYER},Example Payer,any,", f"aws,{OTHER_ACCOUNT},Other Payer,any,")
    assert not t.publish("aws-a", first).unchanged and not t.publish("aws-b", first).unchanged
    assert t.publish("aws-a", first).unchanged and t.publish("aws-b", first).unchanged
    renamed = catalog(f"aws,{h.PAYER},Example Payer,any,", f"aws,{OTHER_ACCOUNT},Other Payer Renamed,any,",
                      "gcp,some-project,Unrelated,sub,")
    a, b = t.publish("aws-a", renamed), t.publish("aws-b", renamed)
    assert a.unchanged and not b.unchanged
    assert set(h.focus_rows(t.warehouse, "aws-b")["SubAccountName"]) == {"Other Payer Renamed"}
    moved = catalog(f"aws,{h.PAYER},Example Payer,any,Root/Moved", f"aws,{OTHER_ACCOUNT},Other Payer Renamed,any,")
    assert not t.publish("aws-a", moved).unchanged and t.publish("aws-b", moved).unchanged


def test_convert_fills_names_from_accounts_files(tmp_path, cur, h, capsys):
    export = tmp_path / "cur.csv"
    export.write_bytes(cur.csv_bytes())
    accounts = tmp_path / "org.json"
    accounts.write_text('{"Accounts": [{"Id": "%s", "Name": "Example Payer", "Status": "ACTIVE"}]}' % h.PAYER)
    out = tmp_path / "focus.parquet"
    assert main(["convert", str(export), "--accounts", str(accounts), "--out", str(out)]) == 0
    rows = pl.read_parquet(out)
    assert set(rows["SubAccountName"]) == {"Example Payer"}
    assert rows["x_SourceChanges"].list.contains(f"SubAccountName: from the account catalog ({accounts})").all()
    accounts.write_text('{"Accounts": [{"Id": "%s"}]}' % h.PAYER)
    assert main(["convert", str(export), "--accounts", str(accounts), "--out", str(out)]) == 1
    assert f"{accounts} $.Accounts[0]: Name: missing" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Dagster: the focus_costs asset and the catalog sensor
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def dagster_env(two_sources):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(EXPORT_SOURCE, ["aws-a", "aws-b"])
    resources = {"landing_zone": LandingZoneResource(root=str(two_sources.landing.root)),
                 "warehouse": WarehouseResource(root=two_sources.warehouse.root)}
    (two_sources.landing.root / "accounts").mkdir()

    def materialize(source: str):
        return dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(two_sources.h.PERIOD, source)),
                              instance=instance, resources=resources, raise_on_error=False, run_config=QUIET)

    def write(name: str, text: str):
        (two_sources.landing.root / "accounts" / name).write_text(text)

    def tick(cursor):
        result = account_catalog_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))
        if isinstance(result, dg.SkipReason):
            return [], cursor, result.skip_message
        return result.run_requests, result.cursor, result.skip_reason.skip_message if result.skip_reason else None

    return SimpleNamespace(**vars(two_sources), instance=instance, resources=resources, materialize=materialize,
                           write=write, tick=tick)


def focus_metadata(result) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey("focus_costs"):
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError("focus_costs not materialized")


def failure_text(result) -> str:
    return " ".join(e.event_specific_data.user_failure_data.description or "" for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.user_failure_data)


def test_asset_fills_names_reports_coverage_and_a_broken_catalog_fails_the_run(dagster_env):
    env, h = dagster_env, dagster_env.h
    env.write("org.csv", HEADER + f"aws,{h.PAYER},Example Payer,any,Root\naws,999999999999,Not Billed,any,\n")
    result = env.materialize("aws-a")
    assert result.success
    meta = focus_metadata(result)
    rows = h.focus_rows(env.warehouse, "aws-a")
    assert meta["account_names_filled_rows"] == rows.height and meta["account_catalog_accounts"] == 2
    assert meta["catalog_accounts_not_in_bill"] == 1
    assert meta["catalog_accounts_not_in_bill_first"] == ["999999999999"]
    assert meta["bill_accounts_missing_from_catalog"] == 0
    version = h.table_version(env.warehouse, h.FOCUS_TABLE)

    env.write("broken.json", '{"Accounts": [{"Id": "1", "Name": "A"}, {"Id": "2"}]}')
    result = env.materialize("aws-a")
    assert not result.success
    assert "accounts/broken.json $.Accounts[1]: Name: missing" in failure_text(result)
    assert h.table_version(env.warehouse, h.FOCUS_TABLE) == version  # the published partition stays
    assert set(h.focus_rows(env.warehouse, "aws-a")["SubAccountName"]) == {"Example Payer"}


def test_sensor_requests_exactly_the_partitions_whose_entries_changed(dagster_env):
    env, h = dagster_env, dagster_env.h
    assert env.materialize("aws-a").success and env.materialize("aws-b").success
    env.write("org.csv", HEADER + f"aws,{h.PAYER},Example Payer,any,\n")
    requests, cursor, _ = env.tick(None)
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]
    assert all(r.asset_selection == list(focus_costs.keys) for r in requests)
    assert env.tick(cursor)[0] == [] and env.tick(cursor)[2] == "account catalog unchanged"

    env.write("org.csv", HEADER + f"aws,{h.PAYER},Example Payer,any,\naws,{OTHER_ACCOUNT},Other,any,\n"
                                  "gcp,some-project,Not Billed,sub,\n")
    requests, cursor, _ = env.tick(cursor)
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-b"))]

    env.write("org.csv", HEADER + f"aws,{h.PAYER},Example Payer,any,Root/Moved\naws,{OTHER_ACCOUNT},Other,any,\n")
    requests, cursor, skip = env.tick(cursor)  # moved aws-a's account; removed an account no bill has
    assert [r.partition_key for r in requests] == [dagster_key(PartitionKey.of(h.PERIOD, "aws-a"))]

    env.write("broken.csv", HEADER + "aws,1,A,team,\n")
    requests, kept, skip = env.tick(cursor)
    assert requests == [] and kept == cursor and "accounts/broken.csv line 2: kind" in skip
    (env.landing.root / "accounts" / "broken.csv").unlink()
    (env.landing.root / "accounts" / "org.csv").unlink()
    requests, cursor, _ = env.tick(cursor)  # the catalog removed: both partitions lose their names
    assert sorted(r.partition_key for r in requests) == sorted(
        dagster_key(PartitionKey.of(h.PERIOD, s)) for s in ("aws-a", "aws-b"))
