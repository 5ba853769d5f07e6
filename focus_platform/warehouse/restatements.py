"""Restatements you can audit: what each partition replacement changed, a guard against bad
re-deliveries, and the open / final / restated status of each billing period.

- ``restatement_log`` (Delta, unpartitioned, append-only): one entry per published, replaced,
  rolled back or dropped partition of every logged catalog table (``TableSpec.logged``), written
  by the warehouse's write path (``Warehouse.record``): row counts and cost totals per currency
  before and after (exact Decimal, with deltas; tables with money only), the delivery ids before
  and after, the table versions, the period status before and after (``focus_costs``). Delta history of the data
  tables keeps every replaced version itself; this table says what changed between them.
- ``period_status`` (Delta, partitioned like the data): the current status of each
  (billing period, export source): ``open`` until the period is invoiced, then ``final``;
  ``restated`` once a final period was replaced with different content.
- The guard: a re-delivery that would drop a published partition's row count or billed total
  (per currency) by more than ``max_drop_share``, or that is empty, is refused unless forced.

No Dagster here: the pipeline calls these functions, the assets show what they return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import polars as pl

from focus_platform.periods import PartitionKey
from focus_platform.sources import FORMATS
from focus_platform.spec.columns import MONEY
from focus_platform.warehouse import catalog
from focus_platform.warehouse.catalog import PERIOD_STATUS, RESTATEMENT_LOG

OPEN, FINAL, RESTATED = "open", "final", "restated"
DEFAULT_MAX_DROP_SHARE = 0.5
FORCE_TAG = "focus/force"  # run tag accepting a refused delivery deliberately
# run tag publishing a partition whose quarantine holds amounts that cannot be read (recorded)
ACCEPT_UNKNOWN_MONEY_TAG = "focus/accept-unknown-money"
# How a format's period becomes final: "invoice_id" (InvoiceId on every FOCUS row, e.g. AWS CUR's
# bill/InvoiceId), else "invoice_file" (an invoice for every billing account of the period under
# <landing root>/invoices/<billing account>/<YYYY-MM>*). Provider modules may add their formats.
FINALITY: dict[str, str] = {"aws-cur": "invoice_id", "aws-cur2": "invoice_id"}

_ZERO = Decimal(0)


# ---------------------------------------------------------------------------------------------
# The state of a partition
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionState:
    version: int | None  # table version it was read from (None: staged, not yet committed)
    rows: int
    billed: dict[str, Decimal]  # per currency
    effective: dict[str, Decimal]  # per currency (raw tables: the provider's amortized basis)
    deliveries: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def same_content(self, other: PartitionState | None) -> bool:
        return other is not None and (self.rows, self.billed, self.effective, self.deliveries) == (
            other.rows, other.billed, other.effective, other.deliveries)


def _by_currency(df: pl.DataFrame, column: str) -> dict[str, Decimal]:
    return {str(r[0]): (r[1] if r[1] is not None else _ZERO) for r in df.select("currency", column).iter_rows()
            if r[0] is not None or r[1]}


def state_of(lf: pl.LazyFrame, *, currency: str, billed: str, effective: str, version: int | None,
             delivery: str | None = "x_SourceDelivery") -> PartitionState:
    """Rows, totals per currency and delivery ids of a partition (one streaming pass each over a
    few columns; ``delivery`` None or absent: no delivery ids)."""
    sums = (lf.group_by(pl.col(currency).alias("currency"))
            .agg(pl.col(billed).cast(MONEY).sum().alias("billed"),
                 pl.col(effective).cast(MONEY).sum().alias("effective"), pl.len().alias("rows"))
            .collect(engine="streaming"))
    return PartitionState(version, int(sums["rows"].sum() or 0), _by_currency(sums, "billed"),
                          _by_currency(sums, "effective"), _deliveries(lf, delivery))


def focus_state(lf: pl.LazyFrame, version: int | None = None) -> PartitionState:
    return state_of(lf, currency="BillingCurrency", billed="BilledCost", effective="EffectiveCost", version=version)


def raw_state(raw_totals: pl.DataFrame, deliveries: list[str], version: int | None = None) -> PartitionState:
    """From a format's ``raw_totals`` (per account, period, currency: billed, amortized, rows)."""
    sums = raw_totals.group_by(pl.col("BillingCurrency").alias("currency")).agg(
        pl.col("billed").sum(), pl.col("amortized").sum().alias("effective"), pl.col("rows").sum())
    return PartitionState(version, int(raw_totals["rows"].sum() or 0), _by_currency(sums, "billed"),
                          _by_currency(sums, "effective"), tuple(sorted(d for d in deliveries if d is not None)))


def state_reader(table: str) -> Callable[[pl.LazyFrame, int | None], PartitionState]:
    """How the restatement log measures a partition of ``table``: a raw table by its format's
    ``raw_totals``; a table whose catalog spec names ``totals`` (currency, billed, effective
    columns) by those; any other table by its rows (and delivery ids where it has them)."""
    for fmt in FORMATS.values():
        if fmt.raw_table == table:
            def raw(lf: pl.LazyFrame, version: int | None, fmt=fmt) -> PartitionState:
                return raw_state(fmt.raw_totals(lf).collect(engine="streaming"), _deliveries(lf), version)
            return raw
    totals = catalog.table(table).totals
    if totals is not None:
        currency, billed, effective = totals

        def with_totals(lf: pl.LazyFrame, version: int | None) -> PartitionState:
            return state_of(lf, currency=currency, billed=billed, effective=effective, version=version,
                            delivery=None)
        return with_totals

    def rows_only(lf: pl.LazyFrame, version: int | None) -> PartitionState:
        return PartitionState(version, lf.select(pl.len()).collect().item(), {}, {}, _deliveries(lf))
    return rows_only


def _deliveries(lf: pl.LazyFrame, column: str | None = "x_SourceDelivery") -> tuple[str, ...]:
    """The delivery ids of a partition (none when it has no such column)."""
    if column is None or column not in lf.collect_schema().names():
        return ()
    found = lf.select(pl.col(column).unique()).collect(engine="streaming")[column].drop_nulls().to_list()
    return tuple(sorted(found))


# ---------------------------------------------------------------------------------------------
# The guard
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GuardPolicy:
    max_drop_share: float = DEFAULT_MAX_DROP_SHARE  # 0 to 1
    force: bool = False

    def __post_init__(self):
        if isinstance(self.max_drop_share, bool) or not isinstance(self.max_drop_share, int | float) \
                or not 0 <= self.max_drop_share <= 1:
            raise ValueError(f"max_drop_share={self.max_drop_share!r}: not a number from 0 to 1; allowed: 0 to 1 "
                             "(the share of a published partition's rows or billed total a re-delivery may drop)")


@dataclass
class GuardResult:
    passed: bool
    forced: bool
    problems: list[str]
    before: PartitionState | None
    after: PartitionState
    max_drop_share: float

    def metadata(self) -> dict[str, object]:
        return {"problems": self.problems, "forced": self.forced, "max_drop_share": self.max_drop_share,
                "rows_before": self.before.rows if self.before else None, "rows_after": self.after.rows}


def _pct(before: Decimal | int, after: Decimal | int) -> str:
    return f"{(Decimal(after) - Decimal(before)) / Decimal(before) * 100:+.1f} %"


def guard(before: PartitionState | None, after: PartitionState, policy: GuardPolicy) -> GuardResult:
    """Whether ``after`` may replace ``before``: not empty, and neither the row count nor any
    currency's billed total (where positive) drops by more than the allowed share."""
    share = Decimal(str(policy.max_drop_share))
    problems = []
    if after.empty:
        problems.append("the delivery has no rows")
    elif before is not None and not before.empty:
        if Decimal(after.rows) < Decimal(before.rows) * (1 - share):
            problems.append(f"rows would drop from {before.rows} to {after.rows} ({_pct(before.rows, after.rows)})")
        for cur, b in sorted(before.billed.items()):
            a = after.billed.get(cur, _ZERO)
            if b > 0 and a < b * (1 - share):
                problems.append(f"billed total {cur} would drop from {b} to {a} ({_pct(b, a)})")
    return GuardResult(not problems or policy.force, bool(problems) and policy.force, problems, before, after,
                       policy.max_drop_share)


# ---------------------------------------------------------------------------------------------
# Period status
# ---------------------------------------------------------------------------------------------
def next_status(previous: str | None, is_final: bool, changed: bool) -> str:
    """open → final (invoiced) → restated (a final period replaced with other content); final and
    restated never go back to open."""
    if previous in (FINAL, RESTATED):
        return RESTATED if (changed or previous == RESTATED) else FINAL
    return FINAL if is_final else OPEN


def read_status(warehouse, period: str, source: str) -> dict | None:
    if not warehouse.exists(PERIOD_STATUS):
        return None
    df = warehouse.scan(PERIOD_STATUS, {"x_BillingPeriod": period, "x_Source": source}).collect()
    return df.row(0, named=True) if df.height else None


def write_status(warehouse, period: str, source: str, status: str, reason: str, focus_version: int,
                 deliveries: tuple[str, ...]) -> None:
    row = pl.LazyFrame({
        "status": [status], "reason": [reason], "focus_version": [focus_version],
        "deliveries": [list(deliveries)], "updated_at": [datetime.now(timezone.utc)],
    }, schema={"status": pl.String, "reason": pl.String, "focus_version": pl.Int64,
               "deliveries": pl.List(pl.String), "updated_at": pl.Datetime("us", "UTC")})
    warehouse.publish(PERIOD_STATUS, row, PartitionKey.of(period, source),
                      commit_metadata={"status": status, "period": period, "source": source})


# ---------------------------------------------------------------------------------------------
# The restatement log
# ---------------------------------------------------------------------------------------------
LOG_SCHEMA = pl.Schema({
    "logged_at": pl.Datetime("us", "UTC"),
    "table": pl.String,
    "x_BillingPeriod": pl.String,
    "x_Source": pl.String,
    "action": pl.String,  # publish (first version) | replace | rollback
    "forced": pl.Boolean,
    "version_before": pl.Int64,
    "version_after": pl.Int64,
    "rows_before": pl.Int64,
    "rows_after": pl.Int64,
    "rows_delta": pl.Int64,
    "deliveries_before": pl.List(pl.String),
    "deliveries_after": pl.List(pl.String),
    "totals": pl.List(pl.Struct({
        "currency": pl.String,
        "billed_before": MONEY, "billed_after": MONEY, "billed_delta": MONEY,
        "effective_before": MONEY, "effective_after": MONEY, "effective_delta": MONEY,
    })),
    "status_before": pl.String,
    "status_after": pl.String,
    "run_id": pl.String,
    "note": pl.String,
})


@dataclass
class Restatement:
    table: str
    period: str | None  # None: the table is not partitioned by billing period
    source: str | None  # None: the table is not partitioned by export source
    action: str
    before: PartitionState | None
    after: PartitionState
    version_after: int
    forced: bool = False
    status_before: str | None = None
    status_after: str | None = None
    run_id: str | None = None
    note: str | None = None
    logged_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def totals(self) -> list[dict]:
        b = self.before or PartitionState(None, 0, {}, {}, ())
        out = []
        for cur in sorted(set(b.billed) | set(self.after.billed) | set(b.effective) | set(self.after.effective)):
            bb, ba = b.billed.get(cur, _ZERO), self.after.billed.get(cur, _ZERO)
            eb, ea = b.effective.get(cur, _ZERO), self.after.effective.get(cur, _ZERO)
            out.append({"currency": cur, "billed_before": bb, "billed_after": ba, "billed_delta": ba - bb,
                        "effective_before": eb, "effective_after": ea, "effective_delta": ea - eb})
        return out

    def row(self) -> dict:
        b = self.before
        return {
            "logged_at": self.logged_at, "table": self.table, "x_BillingPeriod": self.period, "x_Source": self.source,
            "action": self.action, "forced": self.forced,
            "version_before": b.version if b else None, "version_after": self.version_after,
            "rows_before": b.rows if b else None, "rows_after": self.after.rows,
            "rows_delta": self.after.rows - (b.rows if b else 0),
            "deliveries_before": list(b.deliveries) if b else [], "deliveries_after": list(self.after.deliveries),
            "totals": self.totals(), "status_before": self.status_before, "status_after": self.status_after,
            "run_id": self.run_id, "note": self.note,
        }

    def change(self) -> dict:
        """What changed, as plain JSON (the CLI's summary; ``action`` "unchanged" for a no-op)."""
        b = self.before
        return {"action": self.action, "rows_before": b.rows if b else None, "rows_after": self.after.rows,
                "billed_before": {c: f"{v:f}" for c, v in b.billed.items()} if b else {},
                "billed_after": {c: f"{v:f}" for c, v in self.after.billed.items()},
                "version_before": b.version if b else None, "version_after": self.version_after,
                "forced": self.forced, "note": self.note}

    def markdown(self) -> str:
        """The "what changed" table of the materialization."""
        b = self.before
        lines = ["| | before | after | change |", "|---|---|---|---|",
                 f"| table version | {b.version if b else '—'} | {self.version_after} | {self.action}"
                 f"{' (forced)' if self.forced else ''} |",
                 f"| rows | {b.rows if b else '—'} | {self.after.rows} | {self.after.rows - (b.rows if b else 0):+d} |"]
        for t in self.totals():
            lines.append(f"| billed {t['currency']} | {t['billed_before']} | {t['billed_after']} | "
                         f"{t['billed_delta']:+} |")
            lines.append(f"| effective {t['currency']} | {t['effective_before']} | {t['effective_after']} | "
                         f"{t['effective_delta']:+} |")
        lines.append(f"| deliveries | {', '.join(b.deliveries) if b else '—'} | {', '.join(self.after.deliveries)} | |")
        if self.status_after:
            lines.append(f"| period status | {self.status_before or '—'} | {self.status_after} | |")
        return "\n".join(lines)


def read_log(warehouse, *, table: str | None = None, period: str | None = None,
             source: str | None = None) -> pl.DataFrame:
    if not warehouse.exists(RESTATEMENT_LOG):
        return pl.DataFrame(schema=LOG_SCHEMA)
    lf = warehouse.scan(RESTATEMENT_LOG)
    for col, value in (("table", table), ("x_BillingPeriod", period), ("x_Source", source)):
        if value is not None:
            lf = lf.filter(pl.col(col) == value)
    return lf.sort("logged_at", "version_after").collect()
