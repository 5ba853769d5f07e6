"""Retention by partition: 40 months of one source in six tables, a policy of 36 months, a fixed
"today" (December 2026, so 2024-01 is the oldest period kept and 2023-09 to 2023-12 expire).

The data is small and generated here, written through the warehouse's one write path; the tables'
contracts are not what is tested (they are replaced by an accepting stub), retention is."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from focus_platform.landing.config import SettingError
from focus_platform.periods import BillingPeriod, PartitionKey, window
from focus_platform.spec.columns import MONEY
from focus_platform.warehouse import contracts, delta
from focus_platform.warehouse import retention as ret
from focus_platform.warehouse.catalog import (
    FOCUS_TABLE,
    PERIOD_STATUS,
    QUARANTINE_TABLE,
    RECONCILIATION_TABLE,
    RESTATEMENT_LOG,
    SKU_CATALOG_TABLE,
    table,
)
from focus_platform.warehouse.catalog import TABLES as CATALOG
from focus_platform.warehouse.delta import Warehouse
from focus_platform.warehouse.restatements import read_log

TODAY = date(2026, 12, 7)
OPEN_MONTH = BillingPeriod.of(TODAY)
PERIODS = window(OPEN_MONTH.shift(-39), OPEN_MONTH)  # 40 months: 2023-09 to 2026-12
KEPT_FROM = BillingPeriod(2024, 1)
EXPIRED = [p for p in PERIODS if p < KEPT_FROM]
SOURCE = "aws-main"
RAW_TABLE = "raw_aws_cur"
TABLES = [RAW_TABLE, FOCUS_TABLE, QUARANTINE_TABLE, PERIOD_STATUS, RECONCILIATION_TABLE, SKU_CATALOG_TABLE]
ROWS = 3


def _key(name: str, period: BillingPeriod) -> PartitionKey:
    return PartitionKey(period, SOURCE if len(table(name).partition_by) == 2 else None)


def _amount(period: BillingPeriod, i: int) -> Decimal:
    return Decimal(f"{period.year}{period.month:02d}.{i}00000000001")


def _frame(name: str, period: BillingPeriod) -> pl.LazyFrame:
    """A few rows of a table for one month (columns close to the real tables', amounts exact)."""
    amounts = [_amount(period, i) for i in range(ROWS)]
    delivery = [f"{SOURCE}/{period}/d1"] * ROWS
    frames = {
        RAW_TABLE: {"bill_payer_account_id": ["123412340534"] * ROWS, "line_item_currency_code": ["USD"] * ROWS,
                    "line_item_line_item_type": ["Usage"] * ROWS, "line_item_usage_start_date": [period.start] * ROWS,
                    "line_item_unblended_cost": amounts, "x_ParseErrors": [None] * ROWS,
                    "x_SourceDelivery": delivery},
        FOCUS_TABLE: {"BillingAccountId": ["123412340534"] * ROWS, "BillingCurrency": ["USD"] * ROWS,
                      "BilledCost": amounts, "EffectiveCost": amounts, "x_SourceDelivery": delivery},
        QUARANTINE_TABLE: {"x_QuarantineReason": ["unknown charge type"] * ROWS, "x_BilledCost": amounts,
                           "x_EffectiveCost": amounts, "BillingCurrency": ["USD"] * ROWS,
                           "x_SourceDelivery": delivery},
        PERIOD_STATUS: {"status": ["final"], "reason": ["invoiced"], "focus_version": [1]},
        RECONCILIATION_TABLE: {"InvoiceId": [f"INV-{period}"], "BillingCurrency": ["USD"],
                               "invoice_total": [sum(amounts)], "focus_billed": [sum(amounts)]},
        SKU_CATALOG_TABLE: {"SkuId": [f"sku-{i}" for i in range(ROWS)], "ListUnitPrice": amounts},
    }
    money = {"line_item_unblended_cost", "BilledCost", "EffectiveCost", "x_BilledCost", "x_EffectiveCost",
             "invoice_total", "focus_billed", "ListUnitPrice"}
    data = frames[name]
    return pl.LazyFrame(data, schema_overrides={c: MONEY if c in money else pl.String for c in data
                                                if c in money or c == "x_ParseErrors"})


def _accept(table_name, staged, files, storage_options):
    """The contract stub: every staged file accepted (the contracts have their own tests)."""
    return type("Accepted", (), {"ok": True, "checked_rows": 0, "metadata": lambda self: {},
                                 "message": lambda self: ""})()


def _without_contracts(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(contracts, "check_contract", _accept)
    mp.setattr(delta, "check_contract", _accept, raising=False)  # when the write path imports the name


@pytest.fixture(autouse=True)
def policy_36(monkeypatch):
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "default=36")
    monkeypatch.delenv(ret.TIME_TRAVEL_VARIABLE, raising=False)
    _without_contracts(monkeypatch)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The 40 months of every table, written once (read only: a test that writes takes a copy)."""
    root = tmp_path_factory.mktemp("retention") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        _without_contracts(mp)
        wh = Warehouse(str(root))
        for name in TABLES:
            for period in PERIODS:
                wh.publish(name, _frame(name, period), _key(name, period))
    return root


@pytest.fixture(scope="module")
def retained(built, tmp_path_factory) -> tuple[Path, ret.RetentionReport]:
    """A copy of ``built`` after one retention run with policy 36 (read only)."""
    root = tmp_path_factory.mktemp("retained") / "warehouse"
    shutil.copytree(built, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ret.RETENTION_VARIABLE, "default=36")
        mp.delenv(ret.TIME_TRAVEL_VARIABLE, raising=False)
        _without_contracts(mp)
        return root, ret.run_retention(Warehouse(str(root)), today=TODAY, run_id="retention-1")


def _copy(root: Path, tmp_path: Path) -> Warehouse:
    shutil.copytree(root, tmp_path / "warehouse")
    return Warehouse(str(tmp_path / "warehouse"))


def _contents(wh: Warehouse, name: str, version: int | None = None) -> dict[PartitionKey, tuple[frozenset, pl.DataFrame]]:
    """Per partition of a table version (default: the current one): its files and its rows, sorted."""
    dt = DeltaTable(wh.uri(name), version=version)
    adds = pl.DataFrame(pa.table(dt.get_add_actions(flatten=True)))
    columns = list(table(name).partition_by)
    files = {key: frozenset(group["path"]) for key, group in adds.partition_by(
        [f"partition.{c}" for c in columns], as_dict=True).items()}
    rows = wh.scan(name, version=version).collect()
    rows = rows.sort(rows.columns).partition_by(columns, as_dict=True)
    return {_key(name, BillingPeriod.parse(key[0])): (files[key], rows[key]) for key in files}


def _version_before(report: ret.RetentionReport, name: str) -> int:
    return min(d.restatement.before.version for d in report.dropped if d.table == name)


def _data_files(wh: Warehouse, name: str) -> set[str]:
    base = Path(wh.uri(name))
    return {str(p.relative_to(base)) for p in base.rglob("*.parquet")}


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------
def test_policies_come_from_the_catalog_and_the_variable(monkeypatch):
    monkeypatch.delenv(ret.RETENTION_VARIABLE)
    assert ret.policy(RAW_TABLE) == 24 and ret.policy(FOCUS_TABLE) == 36 and ret.policy(SKU_CATALOG_TABLE) == 84
    assert ret.policy("invoices") is None  # unpartitioned: kept whole
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "focus_costs=12, raw=6, default=keep")
    assert (ret.policy(FOCUS_TABLE), ret.policy(RAW_TABLE), ret.policy(PERIOD_STATUS)) == (12, 6, None)
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "keep")
    assert all(months is None for months in ret.policies().values())
    assert ret.offered_window([FOCUS_TABLE], TODAY) == ret.FIRST_PERIOD


def test_a_policy_counts_back_from_the_open_month():
    assert ret.window_start(FOCUS_TABLE, TODAY) == KEPT_FROM  # 2026-12 and the 35 months before it
    assert ret.window_start(FOCUS_TABLE, date(2027, 1, 1)) == BillingPeriod(2024, 2)


def test_the_offered_window_is_the_longest_kept_tables(monkeypatch):
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "raw=24,default=36,sku_catalog=84")
    assert ret.offered_window([RAW_TABLE, FOCUS_TABLE], TODAY) == KEPT_FROM
    assert ret.offered_window([RAW_TABLE, SKU_CATALOG_TABLE], TODAY) == BillingPeriod(2020, 1)
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "default=1000")
    assert ret.offered_window([FOCUS_TABLE], TODAY) == ret.FIRST_PERIOD  # never before it


@pytest.mark.parametrize("setting, says", [
    ("focus_costs=0", "focus_costs='0' is not a policy"),
    ("focus_costs=3x", "focus_costs='3x' is not a policy"),
    ("focus_costs=\u00b2", "focus_costs='\u00b2' is not a policy"),
    ("invoices=12", "'invoices' is not a partitioned table"),
    ("raw=12,raw=6", "'raw' is named twice"),
    ("36", "'36' is not name=months"),
])
def test_a_bad_policy_is_a_one_line_error_naming_the_variable(monkeypatch, setting, says):
    monkeypatch.setenv(ret.RETENTION_VARIABLE, setting)
    with pytest.raises(SettingError) as error:
        ret.policy(FOCUS_TABLE)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"FOCUS_RETENTION={setting!r}") and says in message
    assert "allowed:" in message


def test_a_bad_time_travel_window_names_the_variable(monkeypatch):
    monkeypatch.setenv(ret.TIME_TRAVEL_VARIABLE, "a month")
    with pytest.raises(SettingError, match="FOCUS_TIME_TRAVEL_DAYS='a month'.*allowed"):
        ret.configured_time_travel_days()


# ---------------------------------------------------------------------------------------------
# The retention run
# ---------------------------------------------------------------------------------------------
def test_policy_36_drops_exactly_the_four_oldest_months_and_nothing_inside_the_window(built, retained):
    root, report = retained
    original, wh = Warehouse(str(built)), Warehouse(str(root))
    assert {(d.table, d.key) for d in report.dropped} == {(name, _key(name, p)) for name in TABLES for p in EXPIRED}
    assert report.vacuumed == {name: 0 for name in report.vacuumed}  # every dropped file inside time travel
    assert set(report.skipped) == set(CATALOG) - set(TABLES)  # unpartitioned, or no table
    for name in TABLES:
        assert ret.expired_partitions(original, name, TODAY) == [_key(name, p) for p in EXPIRED]
        assert ret.expired_partitions(wh, name, TODAY) == []
        before, after = _contents(original, name), _contents(wh, name)
        kept = {key: content for key, content in before.items() if key.period >= KEPT_FROM}
        assert set(after) == set(kept), name
        for key, (files, rows) in kept.items():  # the same files, the same rows
            assert after[key][0] == files and after[key][1].equals(rows), (name, key)
        # time travel: the version before the drops still reads every dropped month
        old = _contents(wh, name, _version_before(report, name))
        assert {key: rows for key, (_, rows) in old.items()}.keys() == before.keys()
        for period in EXPIRED:
            key = _key(name, period)
            assert old[key][1].equals(before[key][1]) and old[key][0] <= _data_files(wh, name), (name, period)


def test_each_drop_is_logged_once_with_the_totals_it_removed(retained):
    root, report = retained
    log = read_log(Warehouse(str(root))).filter(pl.col("action") == "drop")
    logged = [name for name in TABLES if table(name).logged]
    assert sorted(log["table"].unique().to_list()) == sorted(logged)
    for name in logged:
        entries = log.filter(pl.col("table") == name).sort("x_BillingPeriod")
        assert entries["x_BillingPeriod"].to_list() == [str(p) for p in EXPIRED], name
        assert entries["run_id"].unique().to_list() == ["retention-1"]
        assert entries["rows_before"].to_list() == [_frame(name, p).collect().height for p in EXPIRED], name
        assert entries["rows_after"].to_list() == [0] * len(EXPIRED)
    for name in (RAW_TABLE, FOCUS_TABLE):  # the tables with money: the totals removed, to the last digit
        entries = log.filter(pl.col("table") == name).sort("x_BillingPeriod")
        for period, totals in zip(EXPIRED, entries["totals"].to_list(), strict=True):
            expected = sum(_amount(period, i) for i in range(ROWS))
            assert [(t["currency"], t["billed_before"], t["billed_after"]) for t in totals] == \
                [("USD", expected, Decimal(0))], (name, period)
    assert [d.metadata()["billed"] for d in report.dropped if d.table == FOCUS_TABLE][0] == \
        {"USD": f"{sum(_amount(EXPIRED[0], i) for i in range(ROWS)):f}"}


def test_dropped_files_are_vacuumed_only_past_the_time_travel_window(retained, tmp_path):
    root, first = retained
    wh = _copy(root, tmp_path)
    dropped = {name: {f for key, (files, _) in _contents(wh, name, _version_before(first, name)).items()
                      if key.period < KEPT_FROM for f in files} for name in TABLES}
    kept = {name: _contents(wh, name) for name in TABLES}

    again = ret.run_retention(wh, today=TODAY, time_travel_days=0)  # the window has passed

    assert again.dropped == []
    for name in TABLES:
        assert again.vacuumed[name] == len(dropped[name]) and not dropped[name] & _data_files(wh, name), name
        after = _contents(wh, name)
        assert after.keys() == kept[name].keys(), name
        assert all(after[k][0] == files and after[k][1].equals(rows) for k, (files, rows) in kept[name].items())
    assert again.vacuumed[RESTATEMENT_LOG] == 0
    with pytest.raises(FileNotFoundError, match="vacuumed"):
        wh.restore_partition(FOCUS_TABLE, _key(FOCUS_TABLE, EXPIRED[0]), _version_before(first, FOCUS_TABLE))


def test_the_time_travel_window_comes_from_the_variable(retained, tmp_path, monkeypatch):
    wh = _copy(retained[0], tmp_path)
    monkeypatch.setenv(ret.TIME_TRAVEL_VARIABLE, "0")
    report = ret.run_retention(wh, today=TODAY)
    assert report.time_travel_days == 0 and report.vacuumed[FOCUS_TABLE] == len(EXPIRED)


def test_inside_the_time_travel_window_a_dropped_month_can_be_restored(retained, tmp_path):
    root, report = retained
    wh = _copy(root, tmp_path)
    key = _key(FOCUS_TABLE, EXPIRED[0])
    wh.restore_partition(FOCUS_TABLE, key, _version_before(report, FOCUS_TABLE))
    assert wh.scan(FOCUS_TABLE, wh.partition(FOCUS_TABLE, key)).collect().height == ROWS


# ---------------------------------------------------------------------------------------------
# Compliance (M11)
# ---------------------------------------------------------------------------------------------
def test_compliance_is_red_before_retention_and_green_after(built, retained):
    for name in TABLES:
        before = ret.compliance(Warehouse(str(built)), name, TODAY)
        assert not before.ok and before.too_old == [_key(name, p) for p in EXPIRED] and before.missing == [], name
        assert before.rate == pytest.approx(36 / 40) and before.metadata()["too_old_count"] == 4
        after = ret.compliance(Warehouse(str(retained[0])), name, TODAY)
        assert after.ok and after.rate == 1.0 and after.checked == 36, name


def test_compliance_is_red_when_a_required_partition_is_missing(retained, tmp_path):
    wh = _copy(retained[0], tmp_path)
    gone = _key(FOCUS_TABLE, BillingPeriod(2025, 6))
    wh.drop_partition(FOCUS_TABLE, gone, note="lost by accident")

    focus = ret.compliance(wh, FOCUS_TABLE, TODAY)  # the raw partition of 2025-06 is still there
    assert not focus.ok and focus.missing == [gone] and focus.too_old == []
    assert focus.rate == pytest.approx(35 / 36) and focus.metadata()["missing"] == [str(gone)]
    assert ret.compliance(wh, PERIOD_STATUS, TODAY).ok  # its status is still there; only a missing one counts

    required = [PartitionKey(BillingPeriod(2026, 12)), PartitionKey(BillingPeriod(2027, 1))]
    sku = ret.compliance(wh, SKU_CATALOG_TABLE, TODAY, required=required)
    assert sku.missing == [PartitionKey(BillingPeriod(2027, 1))] and sku.checked == 37


def test_a_partition_is_required_only_inside_both_windows(retained, tmp_path, monkeypatch):
    wh = _copy(retained[0], tmp_path)
    gone = _key(FOCUS_TABLE, BillingPeriod(2025, 6))
    wh.drop_partition(FOCUS_TABLE, gone)
    monkeypatch.setenv(ret.RETENTION_VARIABLE, "focus_costs=12,default=36")  # FOCUS keeps 2026-01 on

    focus = ret.compliance(wh, FOCUS_TABLE, TODAY)  # raw still holds 2025-06, but FOCUS need not

    assert focus.missing == [] and [k.period for k in focus.too_old] == \
        [p for p in window(KEPT_FROM, BillingPeriod(2025, 12)) if p != gone.period]
