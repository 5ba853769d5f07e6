"""Retention by partition: how many billing periods each table keeps, dropping the older ones, and
the compliance check M11 (no Dagster here).

- Policy: months counted back from the open month, the open month included (36 keeps the open month
  and the 35 before it); ``None`` keeps every partition. Defaults are the catalog's
  ``retention_months``; ``FOCUS_RETENTION`` overrides them: ``keep`` (keep everything) or a list
  ``name=value,…`` where name is a partitioned catalog table, ``raw`` (every raw_* table) or
  ``default`` (every partitioned table), and value a number of months or ``keep``. The most specific
  name wins: table, then ``raw``, then ``default``, then the catalog.
- ``run_retention`` drops each expired partition through ``Warehouse.drop_partition`` (one verified
  commit, one restatement-log entry with the totals it removed), then vacuums every table's history
  older than the time-travel window (``FOCUS_TIME_TRAVEL_DAYS``, default 30): until then a dropped
  partition stays readable by time travel and restorable. Partitions inside a table's window are
  never touched: a drop removes only the expired partition's files, a vacuum only files no version
  inside the time-travel window refers to.
- ``compliance`` (M11): a table holds nothing older than its policy, and every partition its
  upstream tables hold inside both windows (``UPSTREAM``: focus_costs for each raw partition,
  period_status for each focus_costs partition) — or the partitions a caller says are required.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from focus_platform.periods import (
    PERIOD_COLUMN,
    SOURCE_COLUMN,
    BillingPeriod,
    PartitionKey,
)
from focus_platform.settings import SettingError
from focus_platform.sources import RAW_TABLES
from focus_platform.warehouse.catalog import (
    FOCUS_TABLE,
    PERIOD_STATUS,
    TABLES,
    TableSpec,
    table,
)
from focus_platform.warehouse.restatements import Restatement

RETENTION_VARIABLE = "FOCUS_RETENTION"
TIME_TRAVEL_VARIABLE = "FOCUS_TIME_TRAVEL_DAYS"
DEFAULT_TIME_TRAVEL_DAYS = 30
KEEP = "keep"
RAW_NAME, DEFAULT_NAME = "raw", "default"
# The oldest billing period offered at all (CURs of 2017 are still met in practice): the start of a
# window that keeps everything.
FIRST_PERIOD = BillingPeriod(2017, 1)
# Which tables must hold a partition for each partition of another (inside both windows).
UPSTREAM: dict[str, tuple[str, ...]] = {FOCUS_TABLE: tuple(RAW_TABLES), PERIOD_STATUS: (FOCUS_TABLE,)}


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------
def _partitioned() -> list[str]:
    return [name for name, spec in TABLES.items() if spec.partitioned]


def _is_whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _months(name: str, text: str, setting: str) -> int | None:
    allowed = "allowed: keep or a whole number of months from 1"
    if text == KEEP:
        return None
    if not _is_whole(text) or int(text) < 1:
        raise SettingError(f"{RETENTION_VARIABLE}={setting!r}: {name}={text!r} is not a policy; {allowed}")
    return int(text)


def _overrides(setting: str) -> dict[str, int | None]:
    """``FOCUS_RETENTION`` as name → months (None: keep); ``keep`` alone keeps every table."""
    if setting.strip() == KEEP:
        return {DEFAULT_NAME: None}
    names = {*_partitioned(), RAW_NAME, DEFAULT_NAME}
    out: dict[str, int | None] = {}
    for item in (part.strip() for part in setting.split(",")):
        name, sep, text = (s.strip() for s in item.partition("="))
        if not sep or name not in names or name in out:
            problem = (f"{item!r} is not name=months" if not sep else f"{name!r} is named twice" if name in out
                       else f"{name!r} is not a partitioned table")
            raise SettingError(f"{RETENTION_VARIABLE}={setting!r}: {problem}; allowed: keep, or name=months|keep,… "
                               f"with name one of {RAW_NAME}, {DEFAULT_NAME}, {', '.join(sorted(_partitioned()))}")
        out[name] = _months(name, text, setting)
    return out


def policies() -> dict[str, int | None]:
    """Every partitioned table's policy in months (None: kept), ``FOCUS_RETENTION`` applied."""
    setting = os.environ.get(RETENTION_VARIABLE, "").strip()
    overrides = _overrides(setting) if setting else {}
    out = {}
    for name in _partitioned():
        spec = TABLES[name]
        for candidate in (name, RAW_NAME if name in RAW_TABLES else None, DEFAULT_NAME):
            if candidate in overrides:
                out[name] = overrides[candidate]
                break
        else:
            out[name] = spec.retention_months
    return out


def policy(name: str) -> int | None:
    """Months a table keeps (None: every partition; an unpartitioned table is always kept whole)."""
    return policies()[name] if table(name).partitioned else None


def _open_month(today: date | datetime | None) -> BillingPeriod:
    return BillingPeriod.of(today) if today is not None else BillingPeriod.current()


def window_start(name: str, today: date | datetime | None = None) -> BillingPeriod | None:
    """The oldest billing period a table keeps (None: it keeps every period)."""
    months = policy(name)
    return _open_month(today).shift(1 - months) if months is not None else None


def offered_window(names: Iterable[str], today: date | datetime | None = None) -> BillingPeriod:
    """The first billing period to offer for these tables: the start of the longest-kept one's window,
    ``FIRST_PERIOD`` when one keeps everything (never before it)."""
    starts = [window_start(name, today) for name in names]
    if not starts or None in starts:
        return FIRST_PERIOD
    return max(FIRST_PERIOD, min(starts))


def configured_time_travel_days() -> int:
    """``FOCUS_TIME_TRAVEL_DAYS`` (default 30): how long a replaced or dropped version stays readable."""
    text = os.environ.get(TIME_TRAVEL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIME_TRAVEL_DAYS
    if not _is_whole(text):
        raise SettingError(f"{TIME_TRAVEL_VARIABLE}={text!r}: not a number of days; allowed: a whole number from 0")
    return int(text)


# ---------------------------------------------------------------------------------------------
# Partitions
# ---------------------------------------------------------------------------------------------
def partitions(wh, name: str) -> list[PartitionKey]:
    """The partitions a table holds in its current version (none when the table does not exist)."""
    dt = wh.table(name)
    if dt is None or not table(name).partitioned:
        return []
    keys = {PartitionKey.of(values.get(PERIOD_COLUMN), values.get(SOURCE_COLUMN)) for values in dt.partitions()}
    return sorted(keys)


def _expired(keys: Iterable[PartitionKey], start: BillingPeriod | None) -> list[PartitionKey]:
    return [k for k in keys if start is not None and k.period is not None and k.period < start]


def expired_partitions(wh, name: str, today: date | datetime | None = None) -> list[PartitionKey]:
    """The table's partitions older than its policy, oldest first."""
    return _expired(partitions(wh, name), window_start(name, today))


# ---------------------------------------------------------------------------------------------
# The retention run
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dropped:
    table: str
    key: PartitionKey
    restatement: Restatement  # what the drop removed (rows, totals per currency, the version before it)

    def metadata(self) -> dict[str, object]:
        change = self.restatement.change()
        return {"table": self.table, "partition": str(self.key), "rows": change.get("rows_before"),
                "billed": change.get("billed_before", {})}


@dataclass
class RetentionReport:
    open_month: BillingPeriod
    time_travel_days: int
    dropped: list[Dropped] = field(default_factory=list)
    vacuumed: dict[str, int] = field(default_factory=dict)  # table → files removed
    skipped: dict[str, str] = field(default_factory=dict)  # table → why no partition was dropped

    def metadata(self) -> dict[str, object]:
        return {"open_month": str(self.open_month), "time_travel_days": self.time_travel_days,
                "dropped": [d.metadata() for d in self.dropped], "dropped_count": len(self.dropped),
                "vacuumed_files": self.vacuumed, "skipped": self.skipped}


def run_retention(wh, *, today: date | datetime | None = None, time_travel_days: int | None = None,
                  run_id: str | None = None) -> RetentionReport:
    """Drop every expired partition of every partitioned table with a policy, then vacuum each
    table's history older than ``time_travel_days`` (None: ``FOCUS_TIME_TRAVEL_DAYS``, default 30)."""
    days = configured_time_travel_days() if time_travel_days is None else time_travel_days
    if days < 0:
        raise ValueError(f"time_travel_days={days}: allowed: a whole number from 0")
    report = RetentionReport(_open_month(today), days)
    for name, spec in TABLES.items():
        if not spec.partitioned:
            report.skipped[name] = "not partitioned: kept whole"
        elif policy(name) is None:
            report.skipped[name] = "kept: no retention policy"
        elif not wh.exists(name):
            report.skipped[name] = "no table yet"
        else:
            for key in expired_partitions(wh, name, today):
                note = f"retention: older than the {policy(name)} months up to {report.open_month}"
                entry = wh.drop_partition(name, key, run_id=run_id, note=note)
                if entry is not None:  # None: another run dropped it meanwhile
                    report.dropped.append(Dropped(name, key, entry))
    for name in TABLES:
        if wh.exists(name):
            report.vacuumed[name] = len(wh.vacuum(name, retain_hours=days * 24))
    return report


# ---------------------------------------------------------------------------------------------
# Compliance (M11)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComplianceResult:
    table: str
    policy: int | None
    window_start: BillingPeriod | None
    checked: int  # partitions held plus required ones missing
    too_old: list[PartitionKey]
    missing: list[PartitionKey]

    @property
    def ok(self) -> bool:
        return not self.too_old and not self.missing

    @property
    def rate(self) -> float:
        """Share of the partitions checked that are as the policy requires (1.0 when none)."""
        return 1.0 - (len(self.too_old) + len(self.missing)) / self.checked if self.checked else 1.0

    def metadata(self, limit: int = 20) -> dict[str, object]:
        return {"table": self.table, "policy_months": self.policy,
                "window_start": str(self.window_start) if self.window_start else None,
                "partitions_checked": self.checked, "rate": self.rate,
                "too_old": [str(k) for k in self.too_old[:limit]], "too_old_count": len(self.too_old),
                "missing": [str(k) for k in self.missing[:limit]], "missing_count": len(self.missing)}


def _project(key: PartitionKey, spec: TableSpec) -> PartitionKey:
    """An upstream table's partition as a partition of ``spec`` (its columns only)."""
    return PartitionKey(key.period if PERIOD_COLUMN in spec.partition_by else None,
                        key.source if SOURCE_COLUMN in spec.partition_by else None)


def required_partitions(wh, name: str, today: date | datetime | None = None) -> set[PartitionKey]:
    """The partitions of ``name``'s upstream tables (``UPSTREAM``) inside both windows."""
    spec, start = table(name), window_start(name, today)
    out = set()
    for upstream in UPSTREAM.get(name, ()):
        upstream_start = window_start(upstream, today)
        for key in partitions(wh, upstream):
            if key.period is None or all(s is None or key.period >= s for s in (start, upstream_start)):
                out.add(_project(key, spec))
    return out


def compliance(wh, name: str, today: date | datetime | None = None,
               required: Iterable[PartitionKey] | None = None) -> ComplianceResult:
    """M11 for one table: nothing older than its policy, nothing required missing. ``required``:
    the partitions that must be present (None: from ``UPSTREAM``, ``required_partitions``)."""
    held = set(partitions(wh, name))
    needed = set(required) if required is not None else required_partitions(wh, name, today)
    start = window_start(name, today)
    missing = sorted(needed - held)
    return ComplianceResult(name, policy(name), start, len(held) + len(missing), _expired(sorted(held), start),
                            missing)
