"""What allocation is measured by: conservation against FOCUS, and the service levels M1 (coverage),
M4 (unallocated trend), M7 (attribution accuracy) and M14 (tag compliance), plus tag cardinality.

Pure functions over Polars lazy frames of ``cost_allocations`` (and of ``focus_costs`` where the FOCUS
side is needed); each collects only aggregates, never the rows. Targets come from
``focus_platform.service_levels`` (configurable through ``FOCUS_SLO_TARGETS``), never from literals.

**Spend**, the denominator of M1, M4 and M14: the absolute allocated EffectiveCost, ``|x_AllocatedEffectiveCost|``,
of every allocation row, whatever its ChargeCategory. EffectiveCost because it is what an owner is charged
in showback (a commitment's purchase is spread into the usage it covers, so it is not counted twice); every
category because every row needs an owner (a Tax or Credit row nobody owns is an allocation gap too);
absolute, so that an unowned credit counts as unowned money instead of cancelling owned spend, and a share
stays between 0 and 1. A window whose spend is 0 has no share (n/a), never 100 %.

**Owner**: the *primary dimension* is the first dimension the rules declare; a row is owned when its value
there is not the dimension's default (``unallocated``). Coverage is also reported per dimension.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

import polars as pl

from focus_platform import service_levels
from focus_platform.allocation.model import OTHER_VALUE, Dimension, Rules
from focus_platform.allocation.rules import normalize_tag_key

KEYS = ["x_Source", "BillingAccountId", "x_BillingPeriod", "BillingCurrency"]  # conservation grain
WINDOW = ["x_BillingPeriod", "BillingCurrency"]  # a share's grain: money is never summed across currencies
ROW = ["x_Source", "x_RowId"]  # a FOCUS row
SPEND = pl.col("x_AllocatedEffectiveCost").abs()
ZERO = Decimal(0)


def ratio(part: Decimal, whole: Decimal) -> float | None:
    """``part / whole`` from exact Decimals; None when ``whole`` is 0 (n/a, never 100 %)."""
    return None if whole == 0 else float(part / whole)


def primary_dimension(rules: Rules) -> Dimension:
    """The owner dimension the service levels measure: the first the rules declare."""
    return rules.dimensions[0]


def _ratios(df: pl.DataFrame, part: str, whole: str, name: str) -> pl.DataFrame:
    """``df`` with a Float64 column ``name`` = part / whole per row (null where whole is 0)."""
    values = [ratio(p or ZERO, w or ZERO) for p, w in zip(df[part], df[whole], strict=True)]
    return df.with_columns(pl.Series(name, values, pl.Float64))


def _lowest(values: pl.Series) -> float | None:
    values = values.drop_nulls()
    return float(values.min()) if len(values) else None


def _meets(sl_id: str, value: float | None) -> bool | None:
    return None if value is None else service_levels.meets(sl_id, value)


def _text(df: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (Decimals and dates as text)."""
    return [{k: (v if v is None or isinstance(v, (int, float, str, bool)) else str(v)) for k, v in r.items()}
            for r in df.iter_rows(named=True)]


# ---------------------------------------------------------------------------------------------
# Conservation: allocated = FOCUS, exactly, per (source, billing account, period, currency)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConservationResult:
    """``rows``: one row per key (``KEYS``) with the FOCUS and allocated sums (billed and effective), their
    difference (allocated − FOCUS), FOCUS rows without an allocation row and allocation rows whose FOCUS row
    does not exist (counts and the first few ``x_RowId``)."""
    rows: pl.DataFrame

    @property
    def failing(self) -> pl.DataFrame:
        return self.rows.filter((pl.col("difference_billed") != 0) | (pl.col("difference_effective") != 0)
                                | (pl.col("rows_without_allocation") > 0) | (pl.col("allocations_without_row") > 0))

    @property
    def ok(self) -> bool:
        return self.failing.height == 0

    @property
    def problems(self) -> list[str]:
        """One line per failing key: both sums and the difference, and the rows that do not pair."""
        lines = []
        for r in self.failing.iter_rows(named=True):
            parts = [f"{what}: FOCUS {r[f'focus_{what}']:f} vs allocated {r[f'allocated_{what}']:f} "
                     f"(difference {r[f'difference_{what}']:f})" for what in ("billed", "effective")
                     if r[f"difference_{what}"] != 0]
            if r["rows_without_allocation"]:
                parts.append(f"{r['rows_without_allocation']} FOCUS rows without an allocation row "
                             f"(x_RowId {r['first_rows_without_allocation']} …)")
            if r["allocations_without_row"]:
                parts.append(f"{r['allocations_without_row']} allocation rows whose x_RowId is not in FOCUS "
                             f"(x_RowId {r['first_allocations_without_row']} …)")
            lines.append(f"{'/'.join(str(r[k]) for k in KEYS)}: " + "; ".join(parts))
        return lines


def _unpaired(rows: pl.LazyFrame, others: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """Per key, the rows of ``rows`` whose (x_Source, x_RowId) is not in ``others``: count and first ids."""
    return (rows.select(*KEYS, "x_RowId").join(others.select(ROW).unique(), on=ROW, how="anti", nulls_equal=True)
            .group_by(KEYS).agg(pl.len().alias(name), pl.col("x_RowId").sort().head(3).str.join(", ")
                                .alias(f"first_{name}")))


def allocation_conservation(focus: pl.LazyFrame, allocations: pl.LazyFrame) -> ConservationResult:
    """Per (x_Source, BillingAccountId, x_BillingPeriod, BillingCurrency): sum(BilledCost) and
    sum(EffectiveCost) of the FOCUS rows against sum(x_AllocatedBilledCost) and sum(x_AllocatedEffectiveCost),
    compared exactly (Decimal(38,12)); and every FOCUS row has an allocation row, every allocation row a
    FOCUS row (on x_Source + x_RowId)."""
    focus_sums = focus.group_by(KEYS).agg(pl.col("BilledCost").sum().alias("focus_billed"),
                                          pl.col("EffectiveCost").sum().alias("focus_effective"))
    allocated = allocations.group_by(KEYS).agg(pl.col("x_AllocatedBilledCost").sum().alias("allocated_billed"),
                                               pl.col("x_AllocatedEffectiveCost").sum().alias("allocated_effective"))
    money = ["focus_billed", "allocated_billed", "focus_effective", "allocated_effective"]
    counts = ["rows_without_allocation", "allocations_without_row"]
    rows = (focus_sums.join(allocated, on=KEYS, how="full", coalesce=True, nulls_equal=True)
            .join(_unpaired(focus, allocations, counts[0]), on=KEYS, how="left", nulls_equal=True)
            .join(_unpaired(allocations, focus, counts[1]), on=KEYS, how="left", nulls_equal=True)
            .with_columns(pl.col(money).fill_null(ZERO), pl.col(counts).fill_null(0).cast(pl.Int64))
            .with_columns((pl.col("allocated_billed") - pl.col("focus_billed")).alias("difference_billed"),
                          (pl.col("allocated_effective") - pl.col("focus_effective")).alias("difference_effective"))
            .select(*KEYS, "focus_billed", "allocated_billed", "difference_billed", "focus_effective",
                    "allocated_effective", "difference_effective", *counts, *(f"first_{c}" for c in counts))
            .sort(KEYS, nulls_last=True))
    return ConservationResult(rows.collect())


# ---------------------------------------------------------------------------------------------
# M1: allocation coverage
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageResult:
    """``windows``: per (x_BillingPeriod, BillingCurrency) and dimension, the spend whose owner is not the
    dimension's default (``owned``), the spend (``total``) and ``coverage`` = owned / total (null: no spend).
    The M1 value is the lowest coverage of the primary dimension over the windows."""
    dimension: str  # the primary dimension
    windows: pl.DataFrame

    @property
    def primary(self) -> pl.DataFrame:
        return self.windows.filter(pl.col("dimension") == self.dimension)

    @property
    def value(self) -> float | None:
        return _lowest(self.primary["coverage"])

    @property
    def meets(self) -> bool | None:
        return _meets("M1", self.value)

    def metadata(self) -> dict[str, object]:
        return {"dimension": self.dimension, "coverage": self.value, "target": service_levels.target("M1"),
                "windows": _text(self.windows)}


def coverage(allocations: pl.LazyFrame, rules: Rules) -> CoverageResult:
    """M1: per billing period and currency, spend with a non-default owner / spend, for each dimension
    (the service level reads the primary dimension). Spend is |x_AllocatedEffectiveCost| (module doc)."""
    dims = rules.dimensions
    sums = (allocations.group_by(WINDOW)
            .agg(SPEND.sum().alias("total"),
                 *(SPEND.filter(pl.col(d.name) != d.default).sum().alias(d.name) for d in dims))
            .collect())
    windows = (sums.unpivot(index=[*WINDOW, "total"], on=[d.name for d in dims], variable_name="dimension",
                            value_name="owned")
               .select(*WINDOW, "dimension", "owned", "total").sort(*WINDOW, "dimension"))
    return CoverageResult(primary_dimension(rules).name, _ratios(windows, "owned", "total", "coverage"))


# ---------------------------------------------------------------------------------------------
# M14: tag compliance
# ---------------------------------------------------------------------------------------------
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_MEMBER = rf'{_JSON_STRING}\s*:\s*(?:{_JSON_STRING}|[^,{{}}\s\]]+)'


def carried_tag_keys(tags: pl.Expr) -> pl.Expr:
    """The raw keys (JSON text, escapes as written) of a Tags JSON object whose value is not null or blank:
    a key with an empty value does not carry the tag."""
    member = pl.element()
    blank = member.str.contains(r':\s*(?:"\s*"|null)$')
    return tags.str.extract_all(_JSON_MEMBER).list.eval(
        member.filter(~blank).str.extract(r'^"((?:[^"\\]|\\.)*)"', 1))


def _raw_key(text: str) -> str:
    try:
        return json.loads(f'"{text}"')
    except json.JSONDecodeError:
        return text


def _keys_by_dimension(raw_keys: Sequence[str], dims: Sequence[Dimension]) -> dict[str, list[str]]:
    """For each dimension, the raw keys (as in the JSON text) that are one of its aliases after normalization."""
    normalized = {k: normalize_tag_key(_raw_key(k)) for k in raw_keys}
    return {d.name: sorted(k for k, n in normalized.items() if n in d.tag_keys) for d in dims}


@dataclass(frozen=True)
class TagComplianceResult:
    """Per (x_BillingPeriod, BillingCurrency): ``windows`` the spend carrying every required tag key (any
    alias, after key normalization, with a non-blank value) and its share, and the resources (distinct
    ResourceId) whose every row carries them; ``by_owner`` the same spend share per primary-dimension
    owner; ``by_key`` per required dimension. The M14 value is the lowest spend share over the windows."""
    required: tuple[str, ...]  # the required dimensions (empty: nothing to measure)
    windows: pl.DataFrame
    by_owner: pl.DataFrame
    by_key: pl.DataFrame

    @property
    def value(self) -> float | None:
        return _lowest(self.windows["spend_share"]) if self.required else None

    @property
    def meets(self) -> bool | None:
        return _meets("M14", self.value)

    def metadata(self) -> dict[str, object]:
        return {"required": list(self.required), "compliance": self.value, "target": service_levels.target("M14"),
                "windows": _text(self.windows), "by_key": _text(self.by_key), "by_owner": _text(self.by_owner)}


def tag_compliance(focus: pl.LazyFrame, allocations: pl.LazyFrame, rules: Rules) -> TagComplianceResult:
    """M14: the FOCUS rows' Tags (``focus``: x_Source, x_RowId, Tags) decide whether a row carries each
    required key; spend and owners are the allocation rows' (joined on x_Source + x_RowId), so a row split
    over several owners counts for each of them with its share. A resource (ResourceId; rows without one
    count in spend only) is compliant when every one of its rows in the window is."""
    required = [d for d in rules.dimensions if d.required]
    owner = primary_dimension(rules).name
    keys = carried_tag_keys(pl.col("Tags"))
    raw_keys = focus.select(keys.explode().drop_nulls().unique()).collect().to_series().to_list()
    by_dim = _keys_by_dimension(raw_keys, required)
    has = {d.name: f"__has:{d.name}" for d in required}
    flags = focus.select(*ROW, *(keys.list.eval(pl.element().is_in(by_dim[d])).list.any().fill_null(False)
                                 .alias(has[d]) for d in has))
    rows = (allocations.select(*WINDOW, owner, "ResourceId", *ROW, SPEND.alias("spend"))
            .join(flags, on=ROW, how="left", nulls_equal=True)
            .with_columns(pl.col(list(has.values())).fill_null(False))
            .with_columns(pl.all_horizontal(pl.lit(True), *(pl.col(c) for c in has.values())).alias("__carrying")))
    carrying_spend = pl.col("spend").filter(pl.col("__carrying")).sum().alias("carrying")
    resources = (rows.filter(pl.col("ResourceId").is_not_null()).group_by(*WINDOW, "ResourceId")
                 .agg(pl.col("__carrying").all())
                 .group_by(WINDOW).agg(pl.col("__carrying").sum().cast(pl.Int64).alias("resources_carrying"),
                                       pl.len().cast(pl.Int64).alias("resources")))
    windows = (rows.group_by(WINDOW)
               .agg(carrying_spend, pl.col("spend").sum().alias("total"),
                    *(pl.col("spend").filter(pl.col(c)).sum().alias(d) for d, c in has.items()))
               .join(resources, on=WINDOW, how="left", nulls_equal=True)
               .with_columns(pl.col("resources_carrying", "resources").fill_null(0))
               .sort(WINDOW).collect())
    by_owner = (rows.group_by(*WINDOW, owner).agg(carrying_spend, pl.col("spend").sum().alias("total"))
                .sort(*WINDOW, owner).collect())
    by_key = (windows.select(*WINDOW, "total", *has)
              .unpivot(index=[*WINDOW, "total"], on=list(has), variable_name="dimension", value_name="carrying")
              .with_columns(pl.col("dimension").replace_strict({d.name: ", ".join(d.tag_keys) for d in required},
                                                               return_dtype=pl.String).alias("tag_keys"))
              .select(*WINDOW, "dimension", "tag_keys", "carrying", "total").sort(*WINDOW, "dimension"))
    windows = _ratios(windows.select(*WINDOW, "carrying", "total", "resources_carrying", "resources"),
                      "carrying", "total", "spend_share")
    windows = windows.with_columns(pl.when(pl.col("resources") > 0)
                                   .then(pl.col("resources_carrying") / pl.col("resources"))
                                   .alias("resource_share"))
    return TagComplianceResult(tuple(has), windows, _ratios(by_owner, "carrying", "total", "spend_share"),
                               _ratios(by_key, "carrying", "total", "spend_share"))


# ---------------------------------------------------------------------------------------------
# M4: unallocated spend trend, week over week
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeekChange:
    """The last complete week of one currency against the week before it."""
    currency: str
    week: date | None  # Monday of the last complete week (None: no complete week)
    previous_week: date | None
    share: float | None
    previous_share: float | None
    change: float | None  # (share − previous share) / previous share; None: not comparable (``reason``)
    alert: bool
    reason: str = ""


@dataclass(frozen=True)
class TrendResult:
    """``weeks``: per currency and ISO week (Monday, UTC), the unallocated spend, the spend, the share and
    whether the week is complete; ``changes``: the M4 comparison per currency."""
    weeks: pl.DataFrame
    changes: list[WeekChange]

    @property
    def alert(self) -> bool:
        return any(c.alert for c in self.changes)

    @property
    def value(self) -> float | None:
        """The largest week-over-week change over the currencies (None: nothing comparable)."""
        changes = [c.change for c in self.changes if c.change is not None]
        return max(changes) if changes else None

    def metadata(self) -> dict[str, object]:
        return {"change": self.value, "target": service_levels.target("M4"), "alert": self.alert,
                "changes": [{**c.__dict__, "week": str(c.week), "previous_week": str(c.previous_week)}
                            for c in self.changes],
                "weeks": _text(self.weeks)}


def _week_change(currency: str, weeks: pl.DataFrame) -> WeekChange:
    """M4 for one currency's complete weeks (sorted): relative change of the unallocated share of the last
    week against the week just before it. A rise from 0 is an alert without a number."""
    if weeks.height == 0:
        return WeekChange(currency, None, None, None, None, None, False, "no complete week")
    last = weeks.row(-1, named=True)
    before = weeks.filter(pl.col("week") == last["week"] - timedelta(days=7))
    if before.height == 0:
        return WeekChange(currency, last["week"], None, last["share"], None, None, False,
                          "no complete week before it")
    prev = before.row(0, named=True)
    change = WeekChange(currency, last["week"], prev["week"], last["share"], prev["share"], None, False)
    if last["share"] is None or prev["share"] is None:
        return replace(change, reason="a week without spend")
    now, then = last["unallocated"] / last["total"], prev["unallocated"] / prev["total"]
    if then == 0:
        rose = now > 0
        return replace(change, change=None if rose else 0.0, alert=rose,
                       reason="unallocated spend appeared (none the week before)" if rose else "")
    value = float((now - then) / then)
    return replace(change, change=value, alert=not service_levels.meets("M4", value))


def unallocated_trend(current: pl.LazyFrame, previous: pl.LazyFrame | None, rules: Rules) -> TrendResult:
    """M4: the unallocated share (spend whose primary-dimension owner is the default / spend) per currency
    and ISO week (Monday 00:00 UTC of ChargePeriodStart), over the current period's allocations and the
    previous period's (so the weeks that cross the month boundary are whole).

    A week is complete when the data covers it: its Monday on or after the first charge day and its Sunday
    on or before the last charge day of the frames given. The change compares the last complete week with
    the week just before it: (share − previous share) / previous share; it passes M4 when below the target
    (``service_levels.meets``: an alert at +20 % or more by default — 10 % → 12.5 % alerts). Unallocated
    spend that appears after a week with none alerts without a number; a week without spend is n/a."""
    dim = primary_dimension(rules)
    frames = [f.select("BillingCurrency", "ChargePeriodStart", dim.name, "x_AllocatedEffectiveCost")
              for f in (previous, current) if f is not None]
    rows = pl.concat(frames, how="vertical")
    day = pl.col("ChargePeriodStart").dt.date()
    first, last = rows.select(day.min().alias("first"), day.max().alias("last")).collect().row(0)
    weeks = (rows.group_by("BillingCurrency", pl.col("ChargePeriodStart").dt.truncate("1w").dt.date().alias("week"))
             .agg(SPEND.filter(pl.col(dim.name) == dim.default).sum().alias("unallocated"),
                  SPEND.sum().alias("total"))
             .sort("BillingCurrency", "week").collect())
    weeks = _ratios(weeks, "unallocated", "total", "share").with_columns(
        ((pl.col("week") >= first) & (pl.col("week") + timedelta(days=6) <= last)).alias("complete"))
    changes = [_week_change(str(c), weeks.filter((pl.col("BillingCurrency") == c) & pl.col("complete")))
               for c in weeks["BillingCurrency"].unique(maintain_order=True)]
    return TrendResult(weeks, changes)


# ---------------------------------------------------------------------------------------------
# M7: attribution accuracy from manual spot checks
# ---------------------------------------------------------------------------------------------
SPOT_CHECK_KEYS = ("x_RowId", "ResourceId")
SPOT_CHECK_SCHEMA = pl.Schema({"x_SpotCheckFile": pl.String, "x_SpotCheckRow": pl.Int64, "key_column": pl.String,
                               "key": pl.String, "dimension": pl.String, "expected": pl.String})
CHECKED_SCHEMA = pl.Schema({**SPOT_CHECK_SCHEMA, "actual": pl.String, "found": pl.Boolean, "matched": pl.Boolean})


class SpotCheckError(ValueError):
    """A spot-check file that cannot be used (the message names file, row and column)."""


def _read_spot_check_file(path: str, data: bytes, dims: Sequence[str]) -> list[tuple]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpotCheckError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text)), start=1) if any(c.strip() for c in r)]
    if not lines:
        raise SpotCheckError(f"{path}: the file is empty (expected a header: x_RowId or ResourceId, then "
                             f"dimension columns)")
    header = [c.strip() for c in lines[0][1]]
    if header[0] not in SPOT_CHECK_KEYS:
        raise SpotCheckError(f"{path} row 1 column 1: {header[0]!r} is not a key column (x_RowId or ResourceId)")
    for n, name in enumerate(header[1:], start=2):
        if name not in dims:
            raise SpotCheckError(f"{path} row 1 column {n}: {name!r} is not a dimension of the rules "
                                 f"({', '.join(dims)})")
        if header.index(name) != n - 1:
            raise SpotCheckError(f"{path} row 1 column {n}: dimension {name!r} appears twice")
    if len(header) < 2:
        raise SpotCheckError(f"{path} row 1: no dimension column after {header[0]}")
    out = []
    for n, fields in lines[1:]:
        if len(fields) != len(header):
            raise SpotCheckError(f"{path} row {n}: {len(fields)} fields, the header has {len(header)}")
        key = fields[0].strip()
        if not key:
            raise SpotCheckError(f"{path} row {n} column {header[0]}: empty key")
        checks = [(path, n, header[0], key, dim, value.strip())
                  for dim, value in zip(header[1:], fields[1:], strict=True) if value.strip()]
        if not checks:
            raise SpotCheckError(f"{path} row {n}: no expected value in any dimension column")
        out += checks
    return out


def read_spot_checks(files: Sequence[tuple[str, bytes]], rules: Rules) -> pl.DataFrame:
    """Spot-check CSV files (``<landing>/allocation/spot_checks/*.csv``, as (path, bytes)) → one row per
    check (``SPOT_CHECK_SCHEMA``): a key (first column, ``x_RowId`` or ``ResourceId``) and the expected owner
    value of a dimension (one column per checked dimension, named as in the rules; an empty cell checks
    nothing). Values are compared as written (trimmed). Rows are numbered from the header (row 1)."""
    rows = [r for path, data in files for r in _read_spot_check_file(path, data, rules.dimension_names)]
    return pl.DataFrame(rows, schema=SPOT_CHECK_SCHEMA, orient="row")


@dataclass(frozen=True)
class AccuracyResult:
    """``checks``: each spot check with ``actual`` (the key's owner values on the dimension, sorted, comma
    separated), ``found`` (the key has allocation rows in the period) and ``matched``."""
    checks: pl.DataFrame

    @property
    def found(self) -> pl.DataFrame:
        return self.checks.filter(pl.col("found"))

    @property
    def not_found(self) -> int:
        return self.checks.height - self.found.height

    @property
    def mismatches(self) -> pl.DataFrame:
        return self.found.filter(~pl.col("matched")).select(
            "key_column", "key", "dimension", "expected", "actual", "x_SpotCheckFile", "x_SpotCheckRow")

    @property
    def value(self) -> float | None:
        found = self.found
        return found["matched"].sum() / found.height if found.height else None

    @property
    def meets(self) -> bool | None:
        return _meets("M7", self.value)

    def metadata(self, limit: int = 20) -> dict[str, object]:
        return {"accuracy": self.value, "target": service_levels.target("M7"), "checked": self.found.height,
                "matched": int(self.found["matched"].sum()), "not_in_period": self.not_found,
                "mismatches": _text(self.mismatches.head(limit))}


def attribution_accuracy(allocations: pl.LazyFrame, spot_checks: pl.DataFrame, rules: Rules) -> AccuracyResult:
    """M7: matching checks / checks found in the period. A check (key, dimension, expected) matches when
    every FOCUS row of the key (one row for x_RowId; every row of the resource for ResourceId) has the
    expected value among its owners on the dimension: a row split over several owners (a pool, Kubernetes)
    matches when the expected owner is one of them, while a resource that is another owner's on any of its
    rows does not. Checks whose key has no allocation row in the period are counted apart (``not_found``),
    not as mismatches."""
    dims = [d for d in rules.dimension_names if d in set(spot_checks["dimension"])]
    results = [_checked(allocations, spot_checks.filter(pl.col("key_column") == key_column), key_column, dims)
               for key_column in SPOT_CHECK_KEYS]
    return AccuracyResult(pl.concat(results, how="vertical").sort("x_SpotCheckFile", "x_SpotCheckRow", "dimension"))


def _checked(allocations: pl.LazyFrame, checks: pl.DataFrame, key_column: str, dims: list[str]) -> pl.DataFrame:
    """The checks keyed by ``key_column`` with ``actual``, ``found`` and ``matched`` (``CHECKED_SCHEMA``)."""
    if checks.height == 0:
        return CHECKED_SCHEMA.to_frame()
    index = list(dict.fromkeys([key_column, *ROW]))  # x_RowId once when it is the key
    owners = (allocations.filter(pl.col(key_column).is_in(checks["key"].unique().to_list()))
              .unpivot(index=index, on=dims, variable_name="dimension", value_name="owner")
              .group_by(*index, "dimension").agg(pl.col("owner").unique().alias("owners"))
              .rename({key_column: "key"}))
    per_row = (checks.lazy().join(owners, on=["key", "dimension"], how="left")
               .with_columns(pl.col("owners").list.contains(pl.col("expected")).fill_null(False).alias("matched")))
    return (per_row.group_by(SPOT_CHECK_SCHEMA.names(), maintain_order=True)
            .agg(pl.col("owners").explode().drop_nulls().unique().sort().str.join(", ").alias("actual"),
                 pl.col("owners").is_not_null().any().alias("found"), pl.col("matched").all())
            .with_columns(pl.when(pl.col("found")).then(pl.col("actual")).alias("actual"),
                          pl.col("matched") & pl.col("found"))
            .collect().match_to_schema(CHECKED_SCHEMA))


# ---------------------------------------------------------------------------------------------
# Tag cardinality
# ---------------------------------------------------------------------------------------------
def tag_cardinality(allocations: pl.LazyFrame, rules: Rules) -> pl.DataFrame:
    """Per dimension: the distinct owner values published (after the cap; the values before it are the
    engine's report), the declared cap (``max_values``, null: none) and whether rare values were rolled
    into ``other``."""
    dims = rules.dimensions
    counts = allocations.select(*(pl.col(d.name).n_unique().alias(d.name) for d in dims),
                                *((pl.col(d.name) == OTHER_VALUE).any().alias(f"{d.name}:other") for d in dims)
                                ).collect().row(0, named=True)
    return pl.DataFrame({"dimension": [d.name for d in dims],
                         "values": [counts[d.name] for d in dims],
                         "max_values": [d.max_values for d in dims],
                         "other": [bool(counts[f"{d.name}:other"]) for d in dims]},
                        schema={"dimension": pl.String, "values": pl.Int64, "max_values": pl.Int64,
                                "other": pl.Boolean})
