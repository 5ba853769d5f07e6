"""The one write path (``Warehouse.publish`` / ``drop_partition`` / ``vacuum``) on every partition
shape of the catalog: billing period × export source, billing period alone, none."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.periods import PartitionKey
from focus_platform.reconciliation.currency import EXCHANGE_RATE_SCHEMA
from focus_platform.spec.columns import MONEY
from focus_platform.warehouse import catalog, delta
from focus_platform.warehouse.delta import (
    ConcurrentPartitionWrite,
    GateFailed,
    Warehouse,
)
from focus_platform.warehouse.restatements import read_log
from tests.integration.conftest_objectstore import moto_server, s3  # noqa: F401

COSTS = "test_costs"  # billing period × export source, with money: its log entries carry totals
BY_PERIOD = "test_by_period"
WHOLE = "test_whole"


TEST_TABLES = (COSTS, BY_PERIOD, WHOLE)


@pytest.fixture(params=["local", "s3"])
def wh(request, tmp_path, catalog_test_tables) -> Warehouse:
    if request.param == "s3":
        return Warehouse(f"s3://{request.getfixturevalue('s3').new_bucket('write-path')}/wh")
    return Warehouse(str(tmp_path / "wh"))


@pytest.fixture
def local(tmp_path, catalog_test_tables) -> Warehouse:
    return Warehouse(str(tmp_path / "wh"))


@pytest.fixture
def catalog_test_tables(monkeypatch) -> None:
    """Three test tables (no contract) of the three shapes in the catalog. The restatement log's
    contract allows the catalog's table names only: its entries about a test table are checked as
    if about focus_costs (every other rule of the contract still applies)."""
    for spec in (
        catalog.TableSpec(COSTS, catalog.BY_PERIOD_AND_SOURCE, "test", "costs", totals=("cur", "billed", "effective")),
        catalog.TableSpec(BY_PERIOD, catalog.BY_PERIOD, "test", "one partition per period"),
        catalog.TableSpec(WHOLE, catalog.UNPARTITIONED, "test", "one whole table"),
    ):
        monkeypatch.setitem(catalog.TABLES, spec.name, spec)
    real = delta.check_contract

    def check_contract(table, staged, files, storage_options=None):
        if table == catalog.RESTATEMENT_LOG:
            staged = staged.with_columns(pl.when(pl.col("table").is_in(TEST_TABLES)).then(pl.lit(catalog.FOCUS_TABLE))
                                         .otherwise(pl.col("table")).alias("table"))
        return real(table, staged, files, storage_options)

    monkeypatch.setattr(delta, "check_contract", check_contract)


def costs(billed: list[str], cur: str = "EUR") -> pl.LazyFrame:
    return pl.LazyFrame({"cur": [cur] * len(billed), "billed": [Decimal(b) for b in billed],
                         "effective": [Decimal(b) for b in billed]},
                        schema={"cur": pl.String, "billed": MONEY, "effective": MONEY})


def test_a_key_must_name_exactly_the_tables_partition_columns(local):
    wh = local
    with pytest.raises(ValueError, match="test_by_period is partitioned by x_BillingPeriod"):
        wh.publish(BY_PERIOD, pl.LazyFrame({"i": [1]}), PartitionKey.of("2024-01", "aws"))
    with pytest.raises(ValueError, match="nothing"):
        wh.publish(WHOLE, pl.LazyFrame({"i": [1]}), PartitionKey.of("2024-01"))
    assert not wh.exists(BY_PERIOD) and not wh.exists(WHOLE)


def test_an_unpartitioned_table_is_replaced_whole_in_one_verified_commit(wh):
    first, _ = wh.publish(WHOLE, pl.LazyFrame({"i": [1, 2]}), PartitionKey())
    second, _ = wh.publish(WHOLE, pl.LazyFrame({"i": [3]}), PartitionKey())
    assert (first.version, second.version) == (0, 1)
    assert wh.scan(WHOLE).collect()["i"].to_list() == [3]
    assert sorted(wh.scan(WHOLE, version=0).collect()["i"].to_list()) == [1, 2]
    entry = wh.commit_actions(WHOLE, 1)
    removed = {a["remove"]["path"] for a in entry if "remove" in a}
    assert removed == wh.snapshot(WHOLE, {}, version=0).files  # exactly the files it was derived from
    assert {a["add"]["path"] for a in entry if "add" in a} == wh.snapshot(WHOLE, {}).files


def test_drop_partition_removes_one_partition_and_logs_what_it_removed(wh):
    for period, source, billed in (("2024-01", "a", ["1.10", "2.000000000001"]), ("2024-01", "b", ["5"]),
                                   ("2024-02", "a", ["7"])):
        wh.publish(COSTS, costs(billed), PartitionKey.of(period, source))
    kept = {k: wh.snapshot(COSTS, k.values()).files for k in (PartitionKey.of("2024-01", "b"),
                                                              PartitionKey.of("2024-02", "a"))}
    entry = wh.drop_partition(COSTS, PartitionKey.of("2024-01", "a"), run_id="r1", note="retention 1 month")

    assert wh.scan(COSTS, PartitionKey.of("2024-01", "a").values()).collect().height == 0
    assert {k: wh.snapshot(COSTS, k.values()).files for k in kept} == kept
    log = read_log(wh, table=COSTS)
    drops = log.filter(pl.col("action") == "drop")
    assert drops.height == 1 and entry is not None
    row = drops.row(0, named=True)
    assert (row["x_BillingPeriod"], row["x_Source"], row["rows_before"], row["rows_after"]) == ("2024-01", "a", 2, 0)
    assert row["run_id"] == "r1" and row["note"] == "retention 1 month"
    assert [(t["currency"], t["billed_before"], t["billed_after"]) for t in row["totals"]] == [
        ("EUR", Decimal("3.100000000001"), Decimal(0))]
    assert wh.drop_partition(COSTS, PartitionKey.of("2024-01", "a")) is None  # nothing left: nothing committed
    assert read_log(wh, table=COSTS).filter(pl.col("action") == "drop").height == 1


def test_drop_partition_of_a_period_only_table(wh):
    for period in ("2024-01", "2024-02"):
        wh.publish(BY_PERIOD, pl.LazyFrame({"i": [int(period[-1])]}), PartitionKey.of(period))
    entry = wh.drop_partition(BY_PERIOD, PartitionKey.of("2024-01"))
    assert wh.scan(BY_PERIOD).collect().rows() == [(2, "2024-02")]
    assert (entry.period, entry.source, entry.action, entry.before.rows) == ("2024-01", None, "drop", 1)
    with pytest.raises(ValueError, match="not partitioned"):
        wh.drop_partition(WHOLE, PartitionKey())


def test_vacuum_keeps_files_inside_the_window_and_removes_dropped_ones_after_it(wh):
    for period in ("2024-01", "2024-02"):
        wh.publish(BY_PERIOD, pl.LazyFrame({"i": [int(period[-1])]}), PartitionKey.of(period))
    dropped = wh.snapshot(BY_PERIOD, {"x_BillingPeriod": "2024-01"}).files
    before_drop = wh.drop_partition(BY_PERIOD, PartitionKey.of("2024-01")).before.version

    assert wh.vacuum(BY_PERIOD, retain_hours=24) == []  # inside the window: time travel still works
    assert wh.scan(BY_PERIOD, version=before_drop).collect().height == 2
    restored = wh.restore_partition(BY_PERIOD, PartitionKey.of("2024-01"), before_drop)
    assert wh.scan(BY_PERIOD).collect().height == 2 and restored.rows == 1

    wh.drop_partition(BY_PERIOD, PartitionKey.of("2024-01"))
    removed = wh.vacuum(BY_PERIOD, retain_hours=0)  # past the window: the dropped files go
    assert set(removed) == set(dropped)
    assert wh.scan(BY_PERIOD).collect().rows() == [(2, "2024-02")]


# ---------------------------------------------------------------------------------------------
# Concurrency on a period-only table
# ---------------------------------------------------------------------------------------------
def test_two_writers_of_two_periods_both_land(wh):
    """Writers of two partitions collide on the next log entry; the loser re-commits on the
    winner's version: every commit lands, none overwrites the other period."""
    start, commits = threading.Barrier(2), 8

    def writer(period: str) -> None:
        start.wait()
        for i in range(commits):
            wh.publish(BY_PERIOD, pl.LazyFrame({"i": [i]}), PartitionKey.of(period))

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("2024-01", "2024-02")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wh.scan(BY_PERIOD).collect().rows()) == [(commits - 1, "2024-01"), (commits - 1, "2024-02")]
    history = wh.history(BY_PERIOD)
    assert len(history) == 2 * commits, wh.describe_log(BY_PERIOD)
    assert [e["version"] for e in history if e["operation"] == "CREATE TABLE"] == [0], wh.describe_log(BY_PERIOD)
    assert read_log(wh, table=BY_PERIOD).height == 2 * commits
    print(f"commit retries: {wh.commit_retries}")


def test_a_writer_whose_period_changed_since_its_base_commits_nothing(local):
    wh = local
    key = PartitionKey.of("2024-01")
    wh.publish(BY_PERIOD, pl.LazyFrame({"i": [1]}), key)
    wh.publish(BY_PERIOD, pl.LazyFrame({"i": [1]}), PartitionKey.of("2024-02"))
    base = wh.snapshot(BY_PERIOD, key.values())  # writer A reads the period
    other = Warehouse(wh.root)  # writer B replaces it
    other.publish(BY_PERIOD, pl.LazyFrame({"i": [2]}), key)
    version = wh.table(BY_PERIOD).version()
    with pytest.raises(ConcurrentPartitionWrite, match="replaced by another writer"):
        wh.publish(BY_PERIOD, pl.LazyFrame({"i": [3]}), key, base=base)
    assert wh.table(BY_PERIOD).version() == version
    assert sorted(wh.scan(BY_PERIOD).collect().rows()) == [(1, "2024-02"), (2, "2024-01")]
    # another period's writer with a base of its own is not affected
    other_base = wh.snapshot(BY_PERIOD, {"x_BillingPeriod": "2024-02"})
    wh.publish(BY_PERIOD, pl.LazyFrame({"i": [4]}), PartitionKey.of("2024-02"), base=other_base)
    assert sorted(wh.scan(BY_PERIOD).collect().rows()) == [(2, "2024-01"), (4, "2024-02")]
    assert unreferenced_files(wh, BY_PERIOD) == set()  # the refused writer's staged files are gone


def unreferenced_files(wh: Warehouse, table: str) -> set[str]:
    """Parquet files under the table that no version of it refers to."""
    on_disk = {p.relative_to(wh.uri(table)).as_posix() for p in Path(wh.uri(table)).rglob("*.parquet")}
    referenced = set().union(*(wh.snapshot(table, {}, version=v).files for v in range(wh.table(table).version() + 1)))
    return on_disk - referenced


# ---------------------------------------------------------------------------------------------
# The contract gate
# ---------------------------------------------------------------------------------------------
def rates(rate: str) -> pl.LazyFrame:
    return pl.LazyFrame({"Date": [date(2024, 1, 2)], "BaseCurrency": ["EUR"], "Currency": ["USD"],
                         "Rate": [Decimal(rate)], "Source": ["test"]}, schema=EXCHANGE_RATE_SCHEMA)


def test_a_broken_contract_stops_publication_and_the_prior_version_stays(local):
    wh = local
    published, _ = wh.publish(catalog.EXCHANGE_RATES_TABLE, rates("1.0950"), PartitionKey())
    prior = wh.scan(catalog.EXCHANGE_RATES_TABLE).collect()
    gate_ran = []
    with pytest.raises(GateFailed, match=r"exchange_rates: contract broken.*Rate") as refused:
        wh.publish(catalog.EXCHANGE_RATES_TABLE, rates("-1"), PartitionKey(), gate=gate_ran.append)
    assert not refused.value.details.ok and refused.value.details.failures["column"].to_list() == ["Rate"]
    assert gate_ran == []  # the contract runs before the caller's gate
    assert wh.table(catalog.EXCHANGE_RATES_TABLE).version() == published.version
    assert wh.scan(catalog.EXCHANGE_RATES_TABLE).collect().equals(prior)
    assert unreferenced_files(wh, catalog.EXCHANGE_RATES_TABLE) == set()  # the refused staging removed
    log = read_log(wh, table=catalog.EXCHANGE_RATES_TABLE)
    assert log["action"].to_list() == ["publish"]  # nothing logged for the refused one


# ---------------------------------------------------------------------------------------------
# One write path
# ---------------------------------------------------------------------------------------------
PACKAGE = Path(__file__).resolve().parents[2] / "focus_platform"
WRITES = ("write_deltalake", ".vacuum(", ".delete(")


def test_only_the_warehouse_writes_delta_tables():
    """Every Delta write, vacuum and delete goes through focus_platform/warehouse/ (the one write
    path: contract, gate, verified commit, restatement log)."""
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if PACKAGE / "warehouse" not in path.parents
             for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if any(w in line for w in WRITES)]
    assert not found, "Delta writes outside focus_platform/warehouse/ (use Warehouse.publish / drop_partition / " \
                      "vacuum):\n" + "\n".join(found)
