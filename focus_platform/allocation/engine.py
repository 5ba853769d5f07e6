"""Applying allocation rules to the FOCUS rows of one billing period: every row gets owners (no Dagster here).

Order, per dimension: (1) the mapped tag value, (2) virtual tags in file order — the first whose match
holds decides, and it beats a tag only with ``override: true`` —, (3) the dimension's default. Then
(4) Kubernetes: node rows (ResourceId in the telemetry) whose ChargePeriodStart falls in a telemetry
window are split over that window's workloads by weight; a namespace's owner values replace the row's
for the dimensions they set. (5) Pools: the other rows matching a pool (the first in file order) are
split over the pool's targets on its dimension; weights per (x_BillingPeriod, BillingCurrency) window,
per day for a daily driver table. Every split goes through ``split.split_exact``: the shares of a row
sum exactly to its BilledCost and EffectiveCost. Rows that are not split are copied (share 1).

Tag values: a value found in the dimension's value map becomes the mapped owner; any other value is
used normalized (case-folded, trimmed), so ``Web`` and ``web `` are one owner. An empty value is no tag.
Pool targets by default: every owner value of the pool's dimension with a non-zero direct ``measure``
(rows that are not pool rows) in the window, ``unallocated`` included; a proportional target's weight
is its direct measure, negative totals counting 0. Each tag string, each virtual-tag match and each
owner evidence is computed over distinct values or as Polars expressions, never per row in Python.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import polars as pl

from focus_platform.allocation.accounts import HIERARCHY_COLUMNS, with_hierarchy
from focus_platform.allocation.kubernetes import IDLE_NAMESPACE
from focus_platform.allocation.model import (
    ALLOCATION_COLUMNS,
    DRIVER,
    EQUALS,
    EVEN,
    EXISTS,
    FIXED,
    FOCUS_KEPT,
    IN,
    ON_ZERO_EVEN,
    OTHER_VALUE,
    PREFIX,
    PROPORTIONAL,
    REGEX,
    RULE_DEFAULT,
    RULE_TAGS,
    ColumnValue,
    Condition,
    Dimension,
    Match,
    Pool,
    Rules,
)
from focus_platform.allocation.rules import (
    TAG_PREFIX,
    normalize_tag_key,
    normalize_value,
)
from focus_platform.allocation.split import split_exact
from focus_platform.slices import row_slices
from focus_platform.spec.columns import MONEY

AMOUNTS = ["BilledCost", "EffectiveCost"]
SOURCE_ROW = ["x_Source", "x_RowId"]  # one FOCUS row of the period
WINDOW = ["x_BillingPeriod", "BillingCurrency"]  # pool weights are computed per window
ACCOUNT_COLUMNS = ["BillingAccountId", "SubAccountId", "BillingAccountName", "SubAccountName"]  # with_hierarchy's
KUBERNETES_COLUMNS = ["ResourceId", "x_WindowStart", "x_WindowEnd", "x_Cluster", "x_Namespace",
                      "x_AllocatedResourceId", "x_AllocatedResourceName", "weight"]
DIRECT, KUBERNETES, KUBERNETES_IDLE = "direct", "kubernetes", "kubernetes-idle"
ONE = Decimal(1)
SLICE_ROWS = 1_000_000  # FOCUS rows per slice of the direct part (_slices)


class AllocationError(ValueError):
    """Rules that cannot be applied to this data, in one line (a pool's zero weights, a driver table missing …)."""


@dataclass
class AllocationInputs:
    rules: Rules
    accounts: pl.DataFrame | None = None  # accounts.read_catalog frame
    drivers: dict[str, pl.DataFrame] = field(default_factory=dict)  # name → read_driver frame
    kubernetes: pl.DataFrame | None = None  # kubernetes.node_weights frame


@dataclass(frozen=True)
class UncoveredNodeCost:
    """Kubernetes node rows of one cluster and currency that no telemetry window covers: kept whole, own owner."""
    cluster: str
    currency: str
    rows: int
    billed: Decimal
    effective: Decimal
    days: tuple[date, ...]


@dataclass(frozen=True)
class AllocationReport:
    period: str
    rules_version: str
    rows_in: int  # FOCUS rows of the period
    rows_out: int  # allocation rows (≥ rows_in)
    matches: dict[str, int]  # virtual tag or pool id → FOCUS rows its match holds on (decided or not)
    unmatched_rules: tuple[str, ...]  # virtual tags and pools whose match holds on no row
    tag_key_conflicts: dict[str, int]  # normalized key → rows with several raw keys equal after normalization
    even_fallbacks: dict[str, int]  # pool id → source rows split evenly because the window's weights were 0
    null_costs: int  # rows with a null BilledCost or EffectiveCost (FOCUS forbids it), allocated as 0
    uncovered_nodes: tuple[UncoveredNodeCost, ...]
    unmapped_namespaces: tuple[tuple[str, str], ...]  # (cluster, namespace) whose rows set no owner value
    cardinality: dict[str, tuple[int, int]]  # dimension → distinct owner values before and after its cap


@dataclass(frozen=True)
class Allocation:
    """``rows``: every allocation row (``allocation_schema``), to read or collect. ``parts``: the same rows in
    disjoint parts (direct rows, pool shares, Kubernetes shares), to write: sink the frames of ``to_write`` one
    after another (``Warehouse.publish`` takes the list). Each part scans the FOCUS rows; their union sunk at once
    runs the scans side by side and buffers rows (5 M rows in 1 M-row files: 2.2 GB peak, in turn 1.1 GB)."""
    rows: pl.LazyFrame
    report: AllocationReport
    parts: tuple[pl.LazyFrame, ...] = ()  # () : ``rows`` is the one part

    def to_write(self) -> list[pl.LazyFrame]:
        """The frames to sink, in turn."""
        return list(self.parts) or [self.rows]


def allocation_schema(rules: Rules) -> pl.Schema:
    """The columns of ``cost_allocations`` for these rules, in order."""
    return pl.Schema({**FOCUS_KEPT, **{d: pl.String for d in rules.dimension_names}, **ALLOCATION_COLUMNS})


def rules_version(rules: Rules) -> str:
    return f"{rules.version}@{rules.digest}"


# ---------------------------------------------------------------------------------------------
# Driver tables
# ---------------------------------------------------------------------------------------------
def read_driver(files: list[tuple[str, bytes]], name: str) -> pl.DataFrame:
    """A driver table from its CSV files: ``date`` (YYYY-MM-DD, Date) or ``period`` (YYYY-MM), one dimension
    column (the owner value), ``value`` (Decimal(38,12) ≥ 0). Every file has the same columns; an error names
    the file, data row and column."""
    frames, layout = [], None
    for path, data in files:
        frame = _driver_file(path, data, name)
        if layout is not None and frame.columns != layout[1]:
            raise AllocationError(f"driver {name!r}: {path} has columns {', '.join(frame.columns)}, "
                                  f"{layout[0]} has {', '.join(layout[1])}")
        layout = layout or (path, frame.columns)
        frames.append(frame)
    if not frames:
        raise AllocationError(f"driver {name!r}: no CSV file")
    return pl.concat(frames, how="vertical")


def _driver_file(path: str, data: bytes, name: str) -> pl.DataFrame:
    where = f"driver {name!r}: {path}"
    try:
        raw = pl.read_csv(data, infer_schema=False)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise AllocationError(f"{where}: not a readable CSV ({str(error).splitlines()[0]})") from None
    time = [c for c in ("date", "period") if c in raw.columns]
    dimensions = [c for c in raw.columns if c not in ("date", "period", "value")]
    if len(time) != 1 or "value" not in raw.columns or len(dimensions) != 1:
        raise AllocationError(f"{where}: columns must be date or period, one dimension column and value "
                              f"(found {', '.join(raw.columns) or 'none'})")
    time_column, dimension = time[0], dimensions[0]
    if time_column == "date":
        parsed_time = raw["date"].str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    else:
        text = raw["period"].str.strip_chars()
        parsed_time = text.str.to_date("%Y-%m", strict=False).dt.strftime("%Y-%m")
        parsed_time = pl.select(pl.when(parsed_time == text).then(text)).to_series()
    value_text = raw["value"].str.strip_chars()
    value = value_text.cast(MONEY, strict=False)
    owner = raw[dimension].str.strip_chars()
    checks = [
        (time_column, parsed_time.is_null(), "YYYY-MM-DD date" if time_column == "date" else "YYYY-MM period"),
        (dimension, owner.is_null() | (owner == ""), "non-empty owner value"),
        ("value", value.is_null() | (value < 0), "number ≥ 0"),
    ]
    for column, bad, expected in checks:
        if bad.any():
            row = bad.arg_true()[0]
            raise AllocationError(f"{where}: data row {row + 1}, column {column}: {raw[column][row]!r} "
                                  f"is not a {expected}")
    return pl.DataFrame({time_column: parsed_time, dimension: owner, "value": value})


# ---------------------------------------------------------------------------------------------
# Allocation
# ---------------------------------------------------------------------------------------------
def allocate(focus: pl.LazyFrame, inputs: AllocationInputs, period: str) -> Allocation:
    """The allocation rows of ``period`` (lazy, ``allocation_schema``) and the report of what the rules did.

    The rules are applied to the distinct combinations of the columns they read, not to each row; the rows
    get their owners through one join. Scans ``focus`` here, slice by slice (``_slices``: at most SLICE_ROWS
    rows each, so that no query's buffers grow with the period's rows), for the distinct combinations, with
    Kubernetes telemetry for the node rows' distinct (ResourceId, ChargePeriodStart), then for the window
    totals the pools and the report need (aggregated, small, one query per stage and slice), and once per part
    when the parts of ``to_write`` (the direct rows one part per slice, then the pool shares and the Kubernetes
    shares) are sunk one after another. Raises
    ``AllocationError`` for a pool that cannot be split (zero weights with ``on_zero: error``, no target, a
    driver table missing) or Tags that are not a JSON object."""
    rules = inputs.rules
    lf = focus.filter(pl.col("x_BillingPeriod") == period)
    rows, keys = _prepared(lf, inputs)
    slices = [_prepared(piece, inputs)[0] for piece in _slices(focus, period)]
    owners, matches, conflicts = _owners(slices, keys, lf, inputs)
    base = _with_owners(rows, owners, keys)
    windows = _node_windows(lf, inputs.kubernetes)
    stages = [_summary_stages(piece, owners, keys, inputs, windows) for piece in slices]
    summary, counts = _summary([f for s in stages for f in s[0]], [f for s in stages for f in s[1]], owners, rules)
    weights, fallbacks = _pool_weights(summary, rules, inputs, period)
    # the rows: the pool rows and the others are split apart (the owners came with the join); the rows no pool
    # or split touches, most of them, in slices of at most SLICE_ROWS FOCUS rows sunk in turn
    pool_row = pl.col("__pool").is_not_null() & ~_is_node(inputs.kubernetes)
    split_nodes = _stages(base.filter(~pool_row), inputs, windows)[1]
    parts = [_direct_rows(_stages(_with_owners(piece, owners, keys).filter(~pool_row), inputs, windows,
                                  split=False)[0], rules) for piece in slices]
    if rules.pools:
        parts.append(_pool_split(_stages(base.filter(pool_row), inputs, windows)[0], weights, rules))
    if split_nodes is not None:
        parts.append(split_nodes)
    caps = _caps(summary, weights, rules)
    capped = [_capped(d, caps[d.name][2]) for d in rules.dimensions if caps[d.name][2] is not None]
    report = _report(summary, counts, matches, weights, fallbacks, conflicts, caps, rules, period,
                     inputs.kubernetes)
    parts = tuple(p.select(_output(rules)).with_columns(capped) for p in parts)
    return Allocation(rows=pl.union(list(parts), how="vertical"), report=report, parts=parts)


def _slices(focus: pl.LazyFrame, period: str) -> list[pl.LazyFrame]:
    """``focus`` in consecutive slices of at most SLICE_ROWS rows (a Parquet scan reads only a slice's row
    groups), each limited to ``period``: one query over millions of rows holds buffers that grow with them."""
    return [part.filter(pl.col("x_BillingPeriod") == period) for _, part in row_slices(focus, SLICE_ROWS)]


def _is_node(k8s: pl.DataFrame | None) -> pl.Expr:
    """The row is a Kubernetes node's (its ResourceId is in the telemetry; a null ResourceId is not)."""
    if k8s is None or k8s.height == 0:
        return pl.lit(False)
    return pl.col("ResourceId").is_in(k8s["ResourceId"].unique().implode()).fill_null(False)


def _stages(base: pl.LazyFrame, inputs: AllocationInputs, windows: pl.DataFrame | None,
            split: bool = True) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """``base`` rows (owners joined) in two parts: the rows that are not split by Kubernetes (``__pool``, the
    pool they belong to, null for node rows, and ``__day``, their UTC date where a daily driver or the
    uncovered-node report needs it), and the Kubernetes split rows (None without telemetry or ``split``
    false). ``windows``: ``_node_windows``."""
    rules, k8s = inputs.rules, inputs.kubernetes
    by_day = _is_daily_driver_pool(rules, inputs)
    if windows is None:
        rest, split_nodes = base, None
    else:  # one join, no union: parts that each scan the rows would run side by side, buffering rows
        found = base.join(windows.lazy(), on=["ResourceId", "ChargePeriodStart"], how="left", nulls_equal=True)
        covered = pl.col("x_WindowStart").is_not_null()
        split_nodes = _kubernetes_split(found.filter(covered).drop("__uncovered"), k8s, rules) if split else None
        rest = found.filter(~covered).drop("x_WindowStart").with_columns(  # uncovered node rows are no pool's
            __pool=pl.when(pl.col("__uncovered").is_null()).then("__pool"))
        by_day = by_day | pl.col("__uncovered").is_not_null()
    return rest.with_columns(__day=pl.when(by_day).then(pl.col("ChargePeriodStart").dt.date())), split_nodes


# --- tags ------------------------------------------------------------------------------------
def _needed_tag_keys(rules: Rules) -> set[str]:
    return ({key for d in rules.dimensions for key in d.tag_keys}
            | {c.column.removeprefix(TAG_PREFIX) for c in _conditions(rules) if c.column.startswith(TAG_PREFIX)})


def _owners(slices: list[pl.LazyFrame], keys: list[str], lf: pl.LazyFrame,
            inputs: AllocationInputs) -> tuple[pl.DataFrame, dict[str, int], dict[str, int]]:
    """The rules applied once per distinct combination of the columns they read (``keys``, see ``_prepared``):
    per combination the owner and evidence of each dimension (``__ev<i>``), the deciding rule (``__rule``) and
    the pool (``__pool``, ``_pool_index``), to be joined to the rows; the FOCUS rows each virtual tag and pool
    matches (sums of the combinations' rows); and the tag key conflicts in rows. One pass finds the
    combinations; each Tags string is parsed once; the hierarchy is looked up per account."""
    rules = inputs.rules
    combos = (_combinations(slices, keys) if keys
              else lf.select(__rows=pl.len().cast(pl.UInt32)).collect(engine="streaming"))
    conflicts: Counter[str] = Counter()
    if "__tags" in keys:
        tags = _tag_table(combos.group_by("__tags").agg(pl.col("__rows").sum()), lf, rules, conflicts)
        combos = combos.join(tags, on="__tags", how="left")
    hierarchy = sorted(_read_columns(rules) & set(HIERARCHY_COLUMNS))
    if hierarchy:
        accounts = with_hierarchy(combos.lazy().select(ACCOUNT_COLUMNS).unique(), inputs.accounts)
        combos = combos.join(accounts.select(*ACCOUNT_COLUMNS, *hierarchy).collect(), on=ACCOUNT_COLUMNS,
                             how="left", nulls_equal=True)
    classified = _classified(combos.lazy(), rules).with_columns(_pool_index(rules)).collect()
    flags = {vt.id: f"__vt{k}" for k, vt in enumerate(rules.virtual_tags)}
    flags |= {p.id: f"__pm{j}" for j, p in enumerate(rules.pools)}
    totals = classified.select(pl.col("__rows").filter(pl.col(flag)).sum().alias(rule) for rule, flag in flags.items())
    matches = {rule: int(n or 0) for rule, n in totals.row(0, named=True).items()} if flags else {}
    owned = [*keys, *(["__key"] if keys else []), *rules.dimension_names,
             *[f"__ev{i}" for i in range(len(rules.dimensions))], "__rule", "__pool"]
    return classified.select(owned), matches, dict(conflicts)


def _combinations(slices: list[pl.LazyFrame], keys: list[str]) -> pl.DataFrame:
    """The distinct combinations of the ``keys`` columns with ``__key`` and their rows (``__rows``).

    Grouping millions of rows by a dozen text columns holds memory that grows with the rows, so each slice's
    rows are grouped by two independent 64-bit hashes of the keys (``__key`` and a second one) and the first
    row index of each group — numbers only — and the key columns are then read from those first rows alone.
    Two combinations sharing ``__key`` (their second hash differs) are grouped again exactly, by the columns;
    sharing both hashes (odds about n²/2¹²⁹) would merge them: the one case this does not see."""
    found = []
    for rows in slices:
        indexed = rows.with_row_index("__index").with_columns(__key2=_combination_hash(keys, salt=len(keys) + 1))
        groups = (indexed.group_by("__key", "__key2").agg(__rows=pl.len(), __index=pl.col("__index").min())
                  .collect(engine="streaming"))
        firsts = (indexed.filter(pl.col("__index").is_in(groups["__index"].implode())).select("__index", *keys)
                  .collect(engine="streaming"))
        found.append(firsts.join(groups, on="__index").drop("__index"))
    combos = (pl.concat(found).group_by("__key", "__key2", maintain_order=True)
              .agg(pl.col("__rows").sum(), *[pl.col(k).first() for k in keys]))
    if not combos["__key"].is_unique().all():
        exact = [rows.group_by(*keys, "__key").agg(__rows=pl.len()).collect(engine="streaming") for rows in slices]
        return pl.concat(exact).group_by(*keys, "__key", maintain_order=True).agg(pl.col("__rows").sum())
    return combos.select(*keys, "__key", "__rows")


def _with_owners(rows: pl.LazyFrame, owners: pl.DataFrame, keys: list[str]) -> pl.LazyFrame:
    """The rows with their combination's owners, joined on ``__key`` (the hash of the keys: one integer instead
    of every column the rules read, which then need not travel), or on the keys themselves if two
    combinations share a hash; without keys the one combination's owners go to every row."""
    if not keys:
        return rows.join(owners.lazy(), how="cross")
    if owners["__key"].is_unique().all():
        return rows.join(owners.drop(keys).lazy(), on="__key", how="left")
    return rows.join(owners.drop("__key").lazy(), on=keys, how="left", nulls_equal=True)


def _tag_table(distinct: pl.DataFrame, lf: pl.LazyFrame, rules: Rules, conflicts: Counter[str]) -> pl.DataFrame:
    """Per distinct Tags string (``__tags``, with its ``__rows``): the tag columns of ``_lookup``."""
    match_keys = sorted({c.column for c in _conditions(rules) if c.column.startswith(TAG_PREFIX)})
    records = []
    for text, rows in distinct.select("__tags", "__rows").iter_rows():
        chosen, clashing = _chosen_tags(text, lf)
        conflicts.update({key: rows for key in clashing})
        record = {"__tags": text}
        for i, dimension in enumerate(rules.dimensions):
            record[f"__tag{i}"], record[f"__tagev{i}"] = _tag_owner(dimension, chosen)
        for column in match_keys:
            found = chosen.get(column.removeprefix(TAG_PREFIX))
            record[column] = found[1] if found else None
        records.append(record)
    schema = {"__tags": pl.String, **{f"__tag{i}": pl.String for i in range(len(rules.dimensions))},
              **{f"__tagev{i}": pl.String for i in range(len(rules.dimensions))},
              **{c: pl.String for c in match_keys}}
    return pl.DataFrame(records, schema=schema)


def _chosen_tags(text: str, lf: pl.LazyFrame) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Normalized key → (raw key, raw value): among raw keys equal after normalization the smallest wins;
    the normalized keys that had several raw keys on this string."""
    if not text:
        return {}, []
    try:
        tags = json.loads(text)
    except ValueError:
        tags = None
    if not isinstance(tags, dict):
        first = lf.filter(pl.col("Tags") == text).select(SOURCE_ROW).head(1).collect().row(0)
        raise AllocationError(f"Tags of x_Source={first[0]!r} x_RowId={first[1]!r} is not a JSON object: {text[:80]!r}")
    by_key: dict[str, list[tuple[str, str]]] = {}
    for raw_key, raw_value in tags.items():
        if raw_value is not None:
            value = raw_value if isinstance(raw_value, str) else json.dumps(raw_value)
            by_key.setdefault(normalize_tag_key(raw_key), []).append((raw_key, value))
    return {key: min(pairs) for key, pairs in by_key.items()}, [k for k, pairs in by_key.items() if len(pairs) > 1]


def _tag_owner(dimension: Dimension, chosen: dict[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    """The owner value of the first alias present with a non-empty value, and its evidence (JSON text)."""
    for alias in dimension.tag_keys:
        if alias in chosen:
            raw_key, raw_value = chosen[alias]
            value = normalize_value(raw_value)
            if value:
                return dimension.value_map.get(value, value), json.dumps(f"tag:{raw_key}={raw_value}")
    return None, None


# --- conditions and owners -------------------------------------------------------------------
def _conditions(rules: Rules) -> list[Condition]:
    matches = [vt.match for vt in rules.virtual_tags] + [p.match for p in rules.pools]
    return [c for m in matches for c in m.conditions]


def _read_columns(rules: Rules) -> set[str]:
    """Every non-tag column a match or a virtual tag's ``{column: …}`` reads."""
    columns = {c.column for c in _conditions(rules) if not c.column.startswith(TAG_PREFIX)}
    columns |= {v.column for vt in rules.virtual_tags for v in vt.values.values() if isinstance(v, ColumnValue)}
    return columns


def _prepared(lf: pl.LazyFrame, inputs: AllocationInputs) -> tuple[pl.LazyFrame, list[str]]:
    """The columns the allocation needs (costs null → 0, flagged), and the names of those the rules read (the
    keys of ``_owners``): the Tags (``__tags``, null → ""), the account columns the catalog hierarchy is looked
    up by, and every other column a match or a virtual tag's value reads (null where the data lacks it); with
    keys, ``__key`` is their hash."""
    rules = inputs.rules
    read = _read_columns(rules)
    hierarchy = read & set(HIERARCHY_COLUMNS)
    keys = (["__tags"] if _needed_tag_keys(rules) else []) + (ACCOUNT_COLUMNS if hierarchy else [])
    keys += sorted(read - hierarchy - set(keys))
    present = lf.collect_schema().names()
    measures = {p.measure for p in rules.pools if p.method == PROPORTIONAL} - set(AMOUNTS)
    wanted = list(dict.fromkeys([*FOCUS_KEPT, *AMOUNTS, *sorted(measures), *[k for k in keys if k != "__tags"]]))
    lf = lf.select(
        *[pl.col(c) if c in present else pl.lit(None, pl.String).alias(c) for c in wanted],
        *([pl.col("Tags").fill_null("").alias("__tags")] if "__tags" in keys else []),
        __null_cost=pl.any_horizontal(pl.col(a).is_null() for a in AMOUNTS),
        __first=pl.lit(True))  # the first allocation row of its FOCUS row (counts FOCUS rows after a split)
    lf = lf.with_columns(pl.col(a).fill_null(Decimal(0)).cast(MONEY) for a in AMOUNTS)
    return (lf.with_columns(__key=_combination_hash(keys)) if keys else lf), keys


def _combination_hash(keys: list[str], salt: int = 0) -> pl.Expr:
    """A 64-bit hash of the ``keys`` columns: each column's hash, seeded by its position (+ ``salt``: another,
    independent hash), added (UInt64 wraps). A hash of their struct made the scans' memory grow with the rows
    (5 M rows: ~1.8× the 1 M peak)."""
    total = pl.lit(0, pl.UInt64)
    for position, key in enumerate(keys):
        total = total + pl.col(key).hash(seed=salt + position + 1)
    return total


def _condition(condition: Condition) -> pl.Expr:
    column = pl.col(condition.column).cast(pl.String)
    values = condition.values
    if condition.op == EQUALS:
        return column == values[0]
    if condition.op == IN:
        return column.is_in(list(values))
    if condition.op == REGEX:
        return column.str.contains(values[0])
    if condition.op == PREFIX:
        return column.str.starts_with(values[0])
    assert condition.op == EXISTS
    return column.is_not_null()


def _matches(match: Match) -> pl.Expr:
    return pl.all_horizontal(_condition(c) for c in match.conditions).fill_null(False) if match.conditions \
        else pl.lit(True)


def _first_hit(hits: list[tuple[int, pl.Expr]], dtype: pl.DataType = pl.Int32) -> pl.Expr:
    """The number paired with the first expression that holds on the row (null: none)."""
    if not hits:
        return pl.lit(None, dtype)
    return pl.coalesce([pl.when(hit).then(pl.lit(number, dtype)) for number, hit in hits])


def _json(text: str) -> str:
    return json.dumps(text)


def _classified(lf: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Match flags of every virtual tag (``__vt<k>``) and pool (``__pm<j>``), per dimension ``i`` the code of
    the first virtual tag that sets it (``__vtcode<i>``, see ``_VirtualTagChoice``), then the owner, its
    evidence (``__ev<i>``) and, for the first dimension, the deciding rule (``__rule``)."""
    lf = lf.with_columns(
        *[_matches(vt.match).alias(f"__vt{k}") for k, vt in enumerate(rules.virtual_tags)],
        *[_matches(p.match).alias(f"__pm{j}") for j, p in enumerate(rules.pools)])
    choices = {i: _VirtualTagChoice(i, dimension, rules) for i, dimension in enumerate(rules.dimensions)}
    lf = lf.with_columns(choice.code() for choice in choices.values() if choice.setting)
    owners = []
    for i, dimension in enumerate(rules.dimensions):
        owners += _owner(i, dimension, choices[i])
    return lf.with_columns(owners).drop(
        [f"__{c}{i}" for c in ("tag", "tagev", "vtcode") for i in range(len(rules.dimensions))], strict=False)


class _VirtualTagChoice:
    """The first virtual tag that sets dimension ``i`` on a row, as one UInt32 code per row:
    ``(position · 2 + override) · U + value position`` (position among the virtual tags that set the
    dimension, U distinct literal values). Decoding is arithmetic and a cast to an Enum of the distinct
    strings: elementwise, so it streams (a replace or a join per dimension would hold whole columns)."""

    def __init__(self, i: int, dimension: Dimension, rules: Rules):
        self.column = pl.col(f"__vtcode{i}")
        self.dimension = dimension
        self.setting = [(k, vt) for k, vt in enumerate(rules.virtual_tags) if dimension.name in vt.values]
        literal = [vt.values[dimension.name] for _, vt in self.setting]
        self.values = sorted({v for v in literal if not isinstance(v, ColumnValue)}) or [""]  # "": a placeholder

    def code(self) -> pl.Expr:
        hits = []
        for position, (k, vt) in enumerate(self.setting):
            value = vt.values[self.dimension.name]
            hit = pl.col(f"__vt{k}")
            if isinstance(value, ColumnValue):
                hit = hit & pl.col(value.column).is_not_null()
            slot = 0 if isinstance(value, ColumnValue) else self.values.index(value)
            hits.append(((position * 2 + vt.override) * len(self.values) + slot, hit))
        return _first_hit(hits, pl.UInt32).alias(self.column.meta.output_name())

    def position(self) -> pl.Expr:
        return self.column // (2 * len(self.values))

    def value(self) -> pl.Expr:
        value = (self.column % len(self.values)).cat.to(pl.Enum(self.values)).cast(pl.String)
        for position, (_, vt) in enumerate(self.setting):
            if isinstance(vt.values[self.dimension.name], ColumnValue):
                column = pl.col(vt.values[self.dimension.name].column).cast(pl.String)
                value = pl.when(self.position() == position).then(column).otherwise(value)
        return value

    def overrides(self) -> pl.Expr:
        return (self.column // len(self.values) % 2 == 1).fill_null(False)

    def evidence(self) -> pl.Expr:
        return self.position().cat.to(pl.Enum([_json(f"virtual:{vt.id}") for _, vt in self.setting])).cast(pl.String)

    def rule(self) -> pl.Expr:
        return self.position().cat.to(pl.Enum([vt.id for _, vt in self.setting])).cast(pl.String)


def _owner(i: int, dimension: Dimension, choice: _VirtualTagChoice) -> list[pl.Expr]:
    if not choice.setting:
        return _tag_or_default(i, dimension, use_vt=pl.lit(False), vt_value=pl.lit(None, pl.String),
                               vt_evidence=pl.lit(None, pl.String), vt_rule=pl.lit(None, pl.String))
    use_vt = choice.column.is_not_null() & (choice.overrides() | _tag(i, dimension).is_null())
    return _tag_or_default(i, dimension, use_vt=use_vt, vt_value=choice.value(), vt_evidence=choice.evidence(),
                           vt_rule=choice.rule())


def _tag(i: int, dimension: Dimension, evidence: bool = False) -> pl.Expr:
    return pl.col(f"__tag{'ev' if evidence else ''}{i}") if dimension.tag_keys else pl.lit(None, pl.String)


def _tag_or_default(i: int, dimension: Dimension, *, use_vt: pl.Expr, vt_value: pl.Expr, vt_evidence: pl.Expr,
                    vt_rule: pl.Expr) -> list[pl.Expr]:
    """The owner column, its evidence and (first dimension) the deciding rule: the virtual tag where
    ``use_vt``, else the tag, else the default."""
    tag = _tag(i, dimension)
    use_tag = ~use_vt & tag.is_not_null()
    out = [
        pl.when(use_vt).then(vt_value).when(use_tag).then(tag).otherwise(pl.lit(dimension.default))
        .alias(dimension.name),
        pl.when(use_vt).then(vt_evidence).when(use_tag).then(_tag(i, dimension, evidence=True))
        .otherwise(pl.lit(_json(RULE_DEFAULT))).alias(f"__ev{i}"),
    ]
    if i == 0:
        out.append(pl.when(use_vt).then(vt_rule).when(use_tag).then(pl.lit(RULE_TAGS))
                   .otherwise(pl.lit(RULE_DEFAULT)).alias("__rule"))
    return out


def _pool_index(rules: Rules) -> pl.Expr:
    """The first pool whose match holds (null: not a pool row; Kubernetes node rows never are, see ``_stages``)."""
    return _first_hit([(j, pl.col(f"__pm{j}")) for j in range(len(rules.pools))]).alias("__pool")


def _is_daily_driver_pool(rules: Rules, inputs: AllocationInputs) -> pl.Expr:
    daily = [j for j, p in enumerate(rules.pools) if p.method == DRIVER and "date" in _driver(p, inputs).columns]
    return pl.any_horizontal(pl.col("__pool") == j for j in daily).fill_null(False) if daily else pl.lit(False)


def _driver(pool: Pool, inputs: AllocationInputs) -> pl.DataFrame:
    if pool.driver not in inputs.drivers:
        raise AllocationError(f"pool {pool.id!r}: driver table {pool.driver!r} not found "
                              f"(<landing>/allocation/drivers/{pool.driver}/*.csv)")
    table = inputs.drivers[pool.driver]
    if pool.dimension not in table.columns:
        raise AllocationError(f"pool {pool.id!r}: driver table {pool.driver!r} has no column {pool.dimension!r} "
                              f"(columns: {', '.join(table.columns)})")
    return table


# --- Kubernetes ------------------------------------------------------------------------------
def _node_windows(lf: pl.LazyFrame, k8s: pl.DataFrame | None) -> pl.DataFrame | None:
    """Per distinct (ResourceId, ChargePeriodStart) of the node rows: the start of the telemetry window it
    falls in (``x_WindowStart``, null: none) and, without one, the node's cluster (``__uncovered``); None
    without telemetry. Found over the distinct pairs, so the rows take it by an equality join (an as-of join
    over the rows would hold them all in memory)."""
    if k8s is None or k8s.height == 0:
        return None
    pairs = lf.filter(_is_node(k8s)).select("ResourceId", "ChargePeriodStart").unique().collect(engine="streaming")
    windows = k8s.select("ResourceId", "x_WindowStart", "x_WindowEnd", "x_Cluster").unique().sort("x_WindowStart")
    clusters = windows.select("ResourceId", __uncovered="x_Cluster").unique(subset="ResourceId", keep="first")
    found = pairs.sort("ChargePeriodStart").join_asof(
        windows.drop("x_Cluster"), left_on="ChargePeriodStart", right_on="x_WindowStart", by="ResourceId",
        strategy="backward", check_sortedness=False).join(clusters, on="ResourceId", how="left")
    inside = (pl.col("ChargePeriodStart") < pl.col("x_WindowEnd")).fill_null(False)  # no window found: null
    return found.select("ResourceId", "ChargePeriodStart", x_WindowStart=pl.when(inside).then("x_WindowStart"),
                        __uncovered=pl.when(~inside).then("__uncovered"))


def _kubernetes_split(covered: pl.LazyFrame, k8s: pl.DataFrame, rules: Rules) -> pl.LazyFrame:
    """Covered node rows × their window's workloads, amounts split exactly by weight; owner values of the
    namespace where it sets them, evidence ``k8s:<namespace>``."""
    dims = [(i, d.name) for i, d in enumerate(rules.dimensions) if d.name in k8s.columns]
    namespaces = k8s["x_Namespace"].unique().to_list()
    weights = k8s.select(
        *KUBERNETES_COLUMNS[:2], *KUBERNETES_COLUMNS[3:], *[pl.col(d).alias(f"__k8s_{d}") for _, d in dims],
        __nsev=pl.col("x_Namespace").replace_strict({ns: _json(f"k8s:{ns}") for ns in namespaces},
                                                     return_dtype=pl.String),
    ).with_columns(__first=pl.int_range(pl.len()).over("ResourceId", "x_WindowStart") == 0)
    exploded = covered.drop("__first").join(weights.lazy(), on=["ResourceId", "x_WindowStart"], how="inner")
    split = split_exact(exploded, key=SOURCE_ROW, weight="weight", amounts=AMOUNTS,
                        order=["x_AllocatedResourceId", "x_Namespace"], share="x_AllocationShare")
    return split.with_columns(
        *[pl.coalesce(f"__k8s_{d}", d).alias(d) for _, d in dims],
        *[pl.when(pl.col(f"__k8s_{d}").is_not_null()).then("__nsev").otherwise(f"__ev{i}").alias(f"__ev{i}")
          for i, d in dims],
        __pool=pl.lit(None, pl.Int32),
        x_AllocationWeight=pl.col("weight").cast(MONEY),
        x_AllocationRuleId=pl.concat_str(pl.lit("k8s:"), "x_Cluster"),
        x_AllocationMethod=pl.when(pl.col("x_Namespace") == IDLE_NAMESPACE).then(pl.lit(KUBERNETES_IDLE))
        .otherwise(pl.lit(KUBERNETES)),
    )


# --- window totals ---------------------------------------------------------------------------
def _summary_stages(rows: pl.LazyFrame, owners: pl.DataFrame, keys: list[str],
                    inputs: AllocationInputs, windows: pl.DataFrame | None
                    ) -> tuple[list[pl.LazyFrame], list[pl.LazyFrame]]:
    """What ``_summary`` totals: stages of rows, and stages already keyed by combination (``__key``, whose owner
    values join the small totals afterwards). The rows that are not split by Kubernetes are totalled per
    combination — numbers and a few low-cardinality columns in the streamed group-by, not the owner strings a
    join to every row would carry (that grouping grew with the rows) — unless two combinations share a hash."""
    base = _with_owners(rows, owners, keys)
    if not keys or not owners["__key"].is_unique().all():
        return [f for f in _stages(base, inputs, windows) if f is not None], []
    pools = rows.join(owners.select("__key", "__pool").lazy(), on="__key", how="left")
    rest = _stages(pools, inputs, windows, split=False)[0]
    split_nodes = _stages(base.filter(_is_node(inputs.kubernetes)), inputs, windows)[1]
    return [f for f in [split_nodes] if f is not None], [rest]


def _summary(stages: list[pl.LazyFrame], keyed: list[pl.LazyFrame], owners: pl.DataFrame,
             rules: Rules) -> tuple[pl.DataFrame, dict[str, int]]:
    """Per window, pool, day (driver pools and uncovered node rows) and owner values: the amounts, proportional
    measures, rows, FOCUS rows and FOCUS rows with a null cost the pools and the report need; and their totals
    over all FOCUS rows (``__sources``, ``__null_cost``). One query per stage (``_stages``), one after another:
    stages in one query would each scan the rows side by side and buffer rows for the slowest."""
    measures = sorted({p.measure for p in rules.pools if p.method == PROPORTIONAL} | set(AMOUNTS))
    source = pl.col("__first")
    wanted = [*WINDOW, "__pool", "__day", *rules.dimension_names, "__uncovered"]
    values = [*measures, "__rows", "__sources", "__null_cost"]
    totals = [*[pl.col(m).sum() for m in measures], pl.len().alias("__rows"), source.sum().alias("__sources"),
              (pl.col("__null_cost") & source).sum().alias("__null_cost")]
    parts = [lf.group_by(k for k in wanted if k in lf.collect_schema()).agg(totals).collect(engine="streaming")
             for lf in stages]
    parts += [lf.group_by(k for k in ["__key", *wanted] if k in lf.collect_schema()).agg(totals)
              .collect(engine="streaming").join(owners.select("__key", *rules.dimension_names), on="__key",
                                                how="left").drop("__key") for lf in keyed]
    stacked = pl.concat(parts, how="diagonal_relaxed")
    summary = stacked.group_by(k for k in wanted if k in stacked.columns).agg(pl.col(values).sum())
    return summary, {name: int(summary[name].sum()) for name in ("__sources", "__null_cost")}


def _pool_weights(summary: pl.DataFrame, rules: Rules, inputs: AllocationInputs,
                  period: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """Per pool, window and day (driver pools by date): target, weight (Decimal(38,12)) and method. Raises
    ``AllocationError`` for a window whose weights are all 0 (``on_zero: error``) or that has no target."""
    frames, fallbacks = [], {}
    direct = summary.filter(pl.col("__pool").is_null())
    for j, pool in enumerate(rules.pools):
        rows = summary.filter(pl.col("__pool") == j).group_by(*WINDOW, "__day").agg(__sources=pl.col("__sources").sum())
        if rows.height == 0:
            continue
        candidates = _weights_of(pool, j, rows, direct, inputs, period)
        totals = candidates.group_by(*WINDOW, "__day").agg(__total=pl.col("weight").sum(), __targets=pl.len())
        windows = rows.join(totals, on=[*WINDOW, "__day"], how="left", nulls_equal=True)
        no_target = windows.filter(pl.col("__targets").is_null())
        if no_target.height:
            why = "the driver table names no owner in the period" if pool.method == DRIVER else \
                f"no owner of {pool.dimension!r} has a direct {_measure(pool)} in it"
            raise AllocationError(f"pool {pool.id!r}: no target in window {_window_name(no_target.row(0, named=True))} "
                                  f"({why}, and the pool declares no targets)")
        zero = windows.filter(pl.col("__total") == 0)
        if zero.height and pool.on_zero != ON_ZERO_EVEN:
            raise AllocationError(f"pool {pool.id!r} ({pool.method}): the weights of its targets total 0 in window "
                                  f"{_window_name(zero.row(0, named=True))}; declare on_zero: even to split it "
                                  "evenly (recorded), or fix the weights")
        if zero.height:
            fallbacks[pool.id] = int(zero["__sources"].sum())
        zero_keys = zero.select(*WINDOW, "__day", __zero=pl.lit(True))
        candidates = candidates.join(zero_keys, on=[*WINDOW, "__day"], how="left", nulls_equal=True).with_columns(
            weight=pl.when(pl.col("__zero")).then(pl.lit(ONE, MONEY)).otherwise("weight"),
            __method=pl.when(pl.col("__zero")).then(pl.lit(f"{pool.method}-even-fallback"))
            .otherwise(pl.lit(pool.method)))
        frames.append(candidates.filter(pl.col("weight") > 0).select(
            *WINDOW, "__day", pl.lit(j, pl.Int32).alias("__pool"), "__target", "weight", "__method"))
    schema = {**{c: pl.String for c in WINDOW}, "__day": pl.Date, "__pool": pl.Int32, "__target": pl.String,
              "weight": MONEY, "__method": pl.String}
    return (pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)), fallbacks


def _window_name(row: dict) -> str:
    day = f" on {row['__day']}" if row.get("__day") else ""
    return f"{row['x_BillingPeriod']} {row['BillingCurrency']}{day}"


def _weights_of(pool: Pool, j: int, rows: pl.DataFrame, direct: pl.DataFrame, inputs: AllocationInputs,
                period: str) -> pl.DataFrame:
    """The candidate targets and their weights per (window, __day) where the pool has rows."""
    keys = [*WINDOW, "__day"]
    if pool.method == FIXED:
        targets = pl.DataFrame({"__target": list(pool.weights), "weight": list(pool.weights.values())},
                               schema={"__target": pl.String, "weight": MONEY})
        return rows.select(keys).join(targets, how="cross")
    if pool.method == DRIVER:
        return _driver_weights(pool, rows, _driver(pool, inputs), period)
    owners = direct.group_by(*WINDOW, __target=pool.dimension).agg(pl.col(_measure(pool)).sum().alias("__measure"))
    if pool.targets:
        owners = owners.filter(pl.col("__target").is_in(list(pool.targets)))
        declared = pl.DataFrame({"__target": list(pool.targets)})
        owners = rows.select(WINDOW).join(declared, how="cross").join(owners, on=[*WINDOW, "__target"], how="left")
    else:
        owners = owners.filter(pl.col("__measure") != 0)
    weight = pl.lit(ONE, MONEY) if pool.method == EVEN else \
        pl.max_horizontal(pl.col("__measure").fill_null(Decimal(0)), pl.lit(Decimal(0), MONEY)).cast(MONEY)
    return rows.select(keys).join(owners.with_columns(weight=weight).select(*WINDOW, "__target", "weight"),
                                  on=WINDOW, how="inner")


def _measure(pool: Pool) -> str:
    """What weighs a proportional pool's targets, and which owners have direct cost for default targets."""
    return pool.measure if pool.method == PROPORTIONAL else "EffectiveCost"


def _driver_weights(pool: Pool, rows: pl.DataFrame, table: pl.DataFrame, period: str) -> pl.DataFrame:
    """Sum of the driver's values per target per day of the pool's rows (``date`` tables) or for the billing
    period (``period`` tables); targets: the declared ones, else every owner the table names on those days
    or in that period (0 where it has no value)."""
    values = table.rename({pool.dimension: "__target"})
    if "date" in values.columns:
        values = values.rename({"date": "__day"}).filter(pl.col("__day").is_in(rows["__day"].implode()))
    else:
        values = values.filter(pl.col("period") == period).with_columns(__day=pl.lit(None, pl.Date))
    targets = list(pool.targets) or sorted(values["__target"].unique().to_list())
    sums = values.filter(pl.col("__target").is_in(targets)).group_by("__day", "__target") \
        .agg(weight=pl.col("value").sum())
    candidates = rows.select(*WINDOW, "__day").join(pl.DataFrame({"__target": targets}, schema={"__target": pl.String}),
                                                    how="cross")
    return candidates.join(sums, on=["__day", "__target"], how="left", nulls_equal=True) \
        .with_columns(pl.col("weight").fill_null(Decimal(0)).cast(MONEY))


# --- rows ------------------------------------------------------------------------------------
def _direct_rows(lf: pl.LazyFrame, rules: Rules) -> pl.LazyFrame:
    """Rows no pool or node split touches: the amounts copied, share and weight 1."""
    return lf.with_columns(
        x_AllocationShare=pl.lit(ONE, MONEY), x_AllocationWeight=pl.lit(ONE, MONEY),
        x_AllocationRuleId=pl.col("__rule"), x_AllocationMethod=pl.lit(DIRECT),
        x_AllocatedResourceId=pl.lit(None, pl.String), x_AllocatedResourceName=pl.lit(None, pl.String))


def _pool_split(pool_rows: pl.LazyFrame, weights: pl.DataFrame, rules: Rules) -> pl.LazyFrame:
    """Pool rows × their window's targets, amounts split exactly; the pool's dimension takes the target."""
    exploded = pool_rows.join(weights.lazy(), on=[*WINDOW, "__day", "__pool"], how="inner", nulls_equal=True)
    split = split_exact(exploded, key=SOURCE_ROW, weight="weight", amounts=AMOUNTS, order=["__target"],
                        share="x_AllocationShare")
    ids = {j: p.id for j, p in enumerate(rules.pools)}
    dimension_of = {j: p.dimension for j, p in enumerate(rules.pools)}
    columns = []
    for i, dimension in enumerate(rules.dimensions):
        here = [j for j, d in dimension_of.items() if d == dimension.name]
        if here:
            mine = pl.col("__pool").is_in(here)
            columns += [pl.when(mine).then("__target").otherwise(dimension.name).alias(dimension.name),
                        pl.when(mine).then(pl.col("__pool").replace_strict(
                            {j: _json(f"pool:{ids[j]}") for j in here}, default=None, return_dtype=pl.String))
                        .otherwise(f"__ev{i}").alias(f"__ev{i}")]
    return split.with_columns(
        *columns,
        x_AllocationWeight=pl.col("weight"),
        x_AllocationRuleId=pl.col("__pool").replace_strict(ids, return_dtype=pl.String),
        x_AllocationMethod=pl.col("__method"),
        x_AllocatedResourceId=pl.lit(None, pl.String), x_AllocatedResourceName=pl.lit(None, pl.String))


def _output(rules: Rules) -> list[pl.Expr]:
    names = rules.dimension_names
    evidence = [pl.lit("{")]
    for i, name in enumerate(names):
        evidence += [pl.lit(("," if i else "") + _json(name) + ":"), pl.col(f"__ev{i}")]
    evidence.append(pl.lit("}"))
    return [
        *[pl.col(c).cast(t) for c, t in FOCUS_KEPT.items()],
        *[pl.col(d) for d in names],
        pl.col("BilledCost").alias("x_AllocatedBilledCost"),
        pl.col("EffectiveCost").alias("x_AllocatedEffectiveCost"),
        *[pl.col(c).cast(t) for c, t in list(ALLOCATION_COLUMNS.items())[2:8]],
        pl.concat_str(evidence).alias("x_OwnerEvidence"),
        pl.lit(rules_version(rules)).alias("x_RulesVersion"),
    ]


# --- cardinality cap -------------------------------------------------------------------------
def _caps(summary: pl.DataFrame, weights: pl.DataFrame, rules: Rules) -> dict[str, tuple[int, int, list | None]]:
    """Per dimension: distinct owner values before and after the cap, and the values kept (None: no cap
    needed). The ``max_values`` values with the largest magnitude of allocated EffectiveCost in the period
    (pool shares by their weights) are kept, and the default owner always (unowned cost stays visible);
    the rest become ``other``."""
    spend = _allocated_effective(summary, weights, rules)
    caps = {}
    for dimension in rules.dimensions:
        totals = spend[dimension.name]
        before = len(totals)
        ranked = sorted((v for v in totals if v != dimension.default), key=lambda v: (-abs(totals[v]), v))
        if dimension.max_values is None or len(ranked) <= dimension.max_values:
            caps[dimension.name] = (before, before, None)
            continue
        kept = ranked[:dimension.max_values] + [dimension.default]
        after = len([v for v in kept if v in totals]) + 1
        caps[dimension.name] = (before, after, kept)
    return caps


def _allocated_effective(summary: pl.DataFrame, weights: pl.DataFrame,
                         rules: Rules) -> dict[str, dict[str, Decimal]]:
    """Per dimension, owner value → allocated EffectiveCost of the period (pool rows pro rata to the weights:
    for ranking only; the amounts themselves are split exactly)."""
    spend: dict[str, Counter[str]] = {d: Counter() for d in rules.dimension_names}
    pool_dimension = {j: p.dimension for j, p in enumerate(rules.pools)}
    shares: dict[tuple, list[tuple[str, Decimal]]] = {}
    for currency, day, pool, target, weight in weights.select("BillingCurrency", "__day", "__pool", "__target",
                                                              "weight").iter_rows():
        shares.setdefault((currency, day, pool), []).append((target, weight))
    for row in summary.select("BillingCurrency", "__day", "__pool", "EffectiveCost",
                              *rules.dimension_names).iter_rows(named=True):
        amount = row["EffectiveCost"]
        for name in rules.dimension_names:
            if row["__pool"] is not None and pool_dimension[row["__pool"]] == name:
                targets = shares.get((row["BillingCurrency"], row["__day"], row["__pool"]), [])
                total = sum(w for _, w in targets)
                spend[name].update({target: amount * weight / total for target, weight in targets})
            else:
                spend[name].update({row[name]: amount})
    return spend


def _capped(dimension: Dimension, kept: list[str]) -> pl.Expr:
    column = pl.col(dimension.name)
    return pl.when(column.is_in(kept)).then(column).otherwise(pl.lit(OTHER_VALUE)).alias(dimension.name)


# --- report ----------------------------------------------------------------------------------
def _report(summary: pl.DataFrame, counts: dict[str, int], matches: dict[str, int], weights: pl.DataFrame,
            fallbacks: dict[str, int], conflicts: dict[str, int], caps: dict, rules: Rules, period: str,
            k8s: pl.DataFrame | None) -> AllocationReport:
    pool_rows = summary.filter(pl.col("__pool").is_not_null()).group_by(*WINDOW, "__day", "__pool") \
        .agg(pl.col("__sources").sum())
    targets = weights.group_by(*WINDOW, "__day", "__pool").agg(__targets=pl.len())
    exploded = pool_rows.join(targets, on=[*WINDOW, "__day", "__pool"], how="left", nulls_equal=True) \
        .select((pl.col("__sources") * pl.col("__targets").fill_null(0)).sum()).item() or 0
    rows_out = int(summary["__rows"].sum()) - int(pool_rows["__sources"].sum() or 0) + int(exploded)
    return AllocationReport(
        period=period,
        rules_version=rules_version(rules),
        rows_in=counts["__sources"],
        rows_out=rows_out,
        matches=matches,
        unmatched_rules=tuple(rule for rule, n in matches.items() if n == 0),
        tag_key_conflicts=dict(sorted(conflicts.items())),
        even_fallbacks=fallbacks,
        null_costs=counts["__null_cost"],
        uncovered_nodes=_uncovered(summary),
        unmapped_namespaces=_unmapped_namespaces(k8s, rules),
        cardinality={name: cap[:2] for name, cap in caps.items()},
    )


def _uncovered(summary: pl.DataFrame) -> tuple[UncoveredNodeCost, ...]:
    if "__uncovered" not in summary.columns:
        return ()
    found = summary.filter(pl.col("__uncovered").is_not_null()).group_by("__uncovered", "BillingCurrency").agg(
        pl.col("__rows").sum(), pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum(),
        pl.col("__day").unique().sort()).sort("__uncovered", "BillingCurrency")
    return tuple(UncoveredNodeCost(cluster=c, currency=cur, rows=n, billed=b, effective=e, days=tuple(days))
                 for c, cur, n, b, e, days in found.iter_rows())


def _unmapped_namespaces(k8s: pl.DataFrame | None, rules: Rules) -> tuple[tuple[str, str], ...]:
    if k8s is None or k8s.height == 0:
        return ()
    dims = [d for d in rules.dimension_names if d in k8s.columns]
    unowned = pl.all_horizontal(pl.col(d).is_null() for d in dims) if dims else pl.lit(True)
    found = k8s.filter(unowned, pl.col("x_Namespace") != IDLE_NAMESPACE).select("x_Cluster", "x_Namespace")
    return tuple(found.unique().sort("x_Cluster", "x_Namespace").rows())
