"""FOCUS 1.2 conformance rules, named by the IDs of shared/focus/RULES.md, checked on the data.

Every row-level rule is a Polars expression that is True where a row violates it; all of them
are evaluated together in one streaming pass over every row (``check_conformance``). A violation
on a row whose ``x_ProviderDataGaps`` list names the rule is a *provider-data gap* (the raw export
lacks a value the spec requires and nothing can derive it); every other violation is a *converter
defect*. Dataset-level rules (one category per service name, one SKU per SKU price, JSON objects,
column naming and types) run as small aggregate queries.

Tolerance (R-ListCost-1, R-ContractedCost-1): |UnitPrice x PricingQuantity - Cost| <= 0.0001
+ 1e-6 x |Cost|, evaluated in float64; providers round costs and rates separately.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import polars as pl

from focus_platform.slices import row_slices
from focus_platform.spec.columns import (
    FOCUS_COLUMN_NAMES,
    NOT_BLANK,
    focus_column,
    focus_columns,
)

COST_TOLERANCE_ABS = 0.0001
COST_TOLERANCE_REL = 1e-6
RULE_SLICE_ROWS = 1_000_000
NULL_PLACEHOLDERS = ["", "NULL", "null", "N/A", "Not Applicable", "None"]  # is_in: 3x cheaper than a regex


@cache
def iso_currency_codes() -> frozenset[str]:
    text = resources.files(__package__).joinpath("iso4217.txt").read_text("utf-8")
    return frozenset(w for line in text.splitlines() if not line.startswith("#") for w in line.split())


def c(name: str) -> pl.Expr:
    return pl.col(name)


def null(name: str) -> pl.Expr:
    return pl.col(name).is_null()


def present(name: str) -> pl.Expr:
    return pl.col(name).is_not_null()


def category_is(*values: str) -> pl.Expr:
    return pl.col("ChargeCategory").is_in(values)


def not_correction() -> pl.Expr:
    return pl.col("ChargeClass").is_null() | (pl.col("ChargeClass") != "Correction")


def null_iff(a: str, b: str) -> pl.Expr:
    """Violation where exactly one of the two is null."""
    return null(a) != null(b)


def usage_or_purchase_non_correction() -> pl.Expr:
    return category_is("Usage", "Purchase") & not_correction()


def null_pattern(name: str) -> pl.Expr:
    """NULL for Tax, NOT NULL for Usage/Purchase non-corrections (SkuId, prices, quantity...)."""
    return (category_is("Tax") & present(name)) | (usage_or_purchase_non_correction() & null(name))


def cost_mismatch(price: str, cost: str) -> pl.Expr:
    product = pl.col(price).cast(pl.Float64) * pl.col("PricingQuantity").cast(pl.Float64)
    diff = (product - pl.col(cost).cast(pl.Float64)).abs()
    bound = COST_TOLERANCE_ABS + COST_TOLERANCE_REL * pl.col(cost).cast(pl.Float64).abs()
    return present(price) & present("PricingQuantity") & not_correction() & (diff > bound)


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    violates: Callable[[], pl.Expr]
    columns: tuple[str, ...]


def _not_null_rules() -> list[Rule]:
    ids = {
        "BilledCost": "R-BilledCost-1", "EffectiveCost": "R-EffectiveCost-1", "ListCost": "R-ListCost-1",
        "ContractedCost": "R-ContractedCost-1", "BillingAccountId": "R-BillingAccountId-1",
        "BillingCurrency": "R-BillingCurrency-1", "BillingPeriodStart": "R-BillingPeriod-1",
        "BillingPeriodEnd": "R-BillingPeriod-1", "ChargePeriodStart": "R-ChargePeriod-1",
        "ChargePeriodEnd": "R-ChargePeriod-1", "ChargeCategory": "R-ChargeCategory-1",
        "ChargeFrequency": "R-ChargeFrequency-1", "InvoiceIssuerName": "R-InvoiceIssuer-1",
        "ProviderName": "R-ProviderName-1", "PublisherName": "R-ProviderName-1",
        "ServiceName": "R-ServiceName-1", "ServiceCategory": "R-ServiceCategory-1",
        "ServiceSubcategory": "R-ServiceSubcategory-1", "PricingCurrency": "R-PricingCurrency-1",
        "PricingCurrencyEffectiveCost": "R-PCEffectiveCost-1",
        "BillingAccountType": "R-BillingAccountType-1",
    }
    return [
        Rule(ids.get(col.name, f"R-{col.name}-NotNull"), f"{col.name} is not null",
             lambda n=col.name: null(n), (col.name,))
        for col in focus_columns() if not col.allows_nulls
    ]


def _allowed_value_rules() -> list[Rule]:
    rules = []
    for col in focus_columns():
        if not col.allowed_values:
            continue
        rule_id = "R-Cols-5" if col.name.endswith("Category") else f"R-{col.name}-Values"
        rules.append(Rule(
            rule_id if col.name != "ChargeClass" else "R-ChargeClass-1",
            f"{col.name} is one of {', '.join(col.allowed_values)} (exact case)",
            lambda n=col.name, v=col.allowed_values: present(n) & ~pl.col(n).is_in(v), (col.name,)))
    return rules


def _placeholder_rules() -> list[Rule]:
    strings = [col for col in focus_columns() if col.data_type in ("String", "JSON")]
    return [
        Rule("R-Null-1", f"{col.name} holds no null placeholder ('', 'NULL', 'N/A', ...)",
             lambda n=col.name: pl.col(n).is_in(NULL_PLACEHOLDERS), (col.name,))
        for col in strings
    ] + [
        Rule("R-Null-2", f"{col.name} (not nullable) holds no whitespace-only string",
             lambda n=col.name: ~pl.col(n).str.contains(NOT_BLANK), (col.name,))
        for col in strings if not col.allows_nulls
    ]


@cache
def subcategory_parents() -> dict[str, str]:
    """ServiceSubcategory -> ServiceCategory. The spec lists each category's subcategories in
    order, closing with ``Other (<category>)``, which names the parent of the run before it."""
    parents: dict[str, str] = {}
    pending: list[str] = []
    for sub in focus_column("ServiceSubcategory").allowed_values:
        pending.append(sub)
        if sub.startswith("Other (") and sub.endswith(")"):
            parent = sub[len("Other ("):-1]
            parents.update(dict.fromkeys(pending, parent))
            pending = []
    assert not pending and set(parents.values()) <= set(focus_column("ServiceCategory").allowed_values)
    return parents


def _semantic_rules() -> list[Rule]:
    R = Rule
    return [
        R("R-ChargePeriod-2", "ChargePeriodEnd > ChargePeriodStart",
          lambda: c("ChargePeriodEnd") <= c("ChargePeriodStart"), ("ChargePeriodStart", "ChargePeriodEnd")),
        R("R-BillingPeriod-2", "BillingPeriodEnd > BillingPeriodStart",
          lambda: c("BillingPeriodEnd") <= c("BillingPeriodStart"), ("BillingPeriodStart", "BillingPeriodEnd")),
        R("R-Cur-1", "BillingCurrency is an ISO 4217 national currency code",
          lambda: present("BillingCurrency") & ~c("BillingCurrency").is_in(sorted(iso_currency_codes())),
          ("BillingCurrency",)),
        R("R-ListCost-1b", "ListCost = ListUnitPrice x PricingQuantity (within tolerance)",
          lambda: cost_mismatch("ListUnitPrice", "ListCost"),
          ("ListUnitPrice", "ListCost", "PricingQuantity", "ChargeClass")),
        R("R-ContractedCost-1b", "ContractedCost = ContractedUnitPrice x PricingQuantity (within tolerance)",
          lambda: cost_mismatch("ContractedUnitPrice", "ContractedCost"),
          ("ContractedUnitPrice", "ContractedCost", "PricingQuantity", "ChargeClass")),
        R("R-UnitPrice-1", "ListUnitPrice: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("ListUnitPrice"), ("ListUnitPrice", "ChargeCategory", "ChargeClass")),
        R("R-UnitPrice-1", "ContractedUnitPrice: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("ContractedUnitPrice"), ("ContractedUnitPrice", "ChargeCategory", "ChargeClass")),
        R("R-UnitPrice-2", "unit prices are >= 0",
          lambda: (c("ListUnitPrice") < 0) | (c("ContractedUnitPrice") < 0), ("ListUnitPrice", "ContractedUnitPrice")),
        R("R-PricingQuantity-1", "PricingQuantity: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("PricingQuantity"), ("PricingQuantity", "ChargeCategory", "ChargeClass")),
        R("R-PricingUnit-1", "PricingUnit is null exactly when PricingQuantity is null",
          lambda: null_iff("PricingUnit", "PricingQuantity"), ("PricingUnit", "PricingQuantity")),
        R("R-PricingCategory-1", "PricingCategory: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("PricingCategory"), ("PricingCategory", "ChargeCategory", "ChargeClass")),
        R("R-ChargeFrequency-1", "ChargeFrequency is never Usage-Based on a Purchase",
          lambda: category_is("Purchase") & (c("ChargeFrequency") == "Usage-Based"),
          ("ChargeCategory", "ChargeFrequency")),
        R("R-EffectiveCost-2", "EffectiveCost is 0 on commitment purchases",
          lambda: category_is("Purchase") & present("CommitmentDiscountId") & (c("EffectiveCost") != 0)
          & not_correction(), ("ChargeCategory", "CommitmentDiscountId", "EffectiveCost", "ChargeClass")),
        R("R-SubAccountName-1", "SubAccountName is null exactly when SubAccountId is null",
          lambda: null_iff("SubAccountName", "SubAccountId"), ("SubAccountName", "SubAccountId")),
        R("R-SubAccountType-1", "SubAccountType is null exactly when SubAccountId is null",
          lambda: null_iff("SubAccountType", "SubAccountId"), ("SubAccountType", "SubAccountId")),
        R("R-BillingAccountType-1", "BillingAccountType is null exactly when BillingAccountId is null",
          lambda: null_iff("BillingAccountType", "BillingAccountId"), ("BillingAccountType", "BillingAccountId")),
        R("R-RegionName-1", "RegionName is null exactly when RegionId is null",
          lambda: null_iff("RegionName", "RegionId"), ("RegionName", "RegionId")),
        R("R-ResourceName-1", "ResourceName is null when ResourceId is null",
          lambda: null("ResourceId") & present("ResourceName"), ("ResourceName", "ResourceId")),
        R("R-ResourceType-1", "ResourceType is null exactly when ResourceId is null",
          lambda: null_iff("ResourceType", "ResourceId"), ("ResourceType", "ResourceId")),
        R("R-SkuId-1", "SkuId: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("SkuId"), ("SkuId", "ChargeCategory", "ChargeClass")),
        R("R-SkuPriceId-1", "SkuPriceId: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("SkuPriceId"), ("SkuPriceId", "ChargeCategory", "ChargeClass")),
        R("R-SkuMeter-1", "SkuMeter is null when SkuId is null",
          lambda: null("SkuId") & present("SkuMeter"), ("SkuMeter", "SkuId")),
        R("R-SkuPriceDetails-1", "SkuPriceDetails is null when SkuPriceId is null",
          lambda: null("SkuPriceId") & present("SkuPriceDetails"), ("SkuPriceDetails", "SkuPriceId")),
        R("R-ConsumedQuantity-1", "ConsumedQuantity: null unless Usage, null on Unused, set on other Usage",
          lambda: (~category_is("Usage") & present("ConsumedQuantity"))
          | (category_is("Usage") & (c("CommitmentDiscountStatus") == "Unused").fill_null(False)
             & present("ConsumedQuantity"))
          | (category_is("Usage") & (c("CommitmentDiscountStatus") != "Unused").fill_null(True)
             & not_correction() & null("ConsumedQuantity")),
          ("ConsumedQuantity", "ChargeCategory", "CommitmentDiscountStatus", "ChargeClass")),
        R("R-ConsumedUnit-1", "ConsumedUnit is null exactly when ConsumedQuantity is null",
          lambda: null_iff("ConsumedUnit", "ConsumedQuantity"), ("ConsumedUnit", "ConsumedQuantity")),
        R("R-CDDeps-1", "CommitmentDiscountCategory/Type are null exactly when CommitmentDiscountId is null",
          lambda: null_iff("CommitmentDiscountCategory", "CommitmentDiscountId")
          | null_iff("CommitmentDiscountType", "CommitmentDiscountId"),
          ("CommitmentDiscountCategory", "CommitmentDiscountType", "CommitmentDiscountId")),
        R("R-CDName-1", "CommitmentDiscountName is null when CommitmentDiscountId is null",
          lambda: null("CommitmentDiscountId") & present("CommitmentDiscountName"),
          ("CommitmentDiscountName", "CommitmentDiscountId")),
        R("R-CDStatus-1", "CommitmentDiscountStatus: null without an id, set on Usage rows with an id",
          lambda: (null("CommitmentDiscountId") & present("CommitmentDiscountStatus"))
          | (present("CommitmentDiscountId") & category_is("Usage") & null("CommitmentDiscountStatus")),
          ("CommitmentDiscountStatus", "CommitmentDiscountId", "ChargeCategory")),
        R("R-CDQuantity-1", "CommitmentDiscountQuantity set on Usage/Purchase rows with an id, else null",
          lambda: (present("CommitmentDiscountId") & usage_or_purchase_non_correction()
                   & null("CommitmentDiscountQuantity"))
          | ((null("CommitmentDiscountId") | ~category_is("Usage", "Purchase"))
             & present("CommitmentDiscountQuantity")),
          ("CommitmentDiscountQuantity", "CommitmentDiscountId", "ChargeCategory", "ChargeClass")),
        R("R-CDUnit-1", "CommitmentDiscountUnit is null exactly when CommitmentDiscountQuantity is null",
          lambda: null_iff("CommitmentDiscountUnit", "CommitmentDiscountQuantity"),
          ("CommitmentDiscountUnit", "CommitmentDiscountQuantity")),
        R("R-CRStatus-1", "CapacityReservationStatus: null without an id, set on Usage rows with an id",
          lambda: (null("CapacityReservationId") & present("CapacityReservationStatus"))
          | (present("CapacityReservationId") & category_is("Usage") & null("CapacityReservationStatus")),
          ("CapacityReservationStatus", "CapacityReservationId", "ChargeCategory")),
        R("R-PCUnitPrice-1", "PricingCurrency unit prices: null for Tax, not null for Usage/Purchase",
          lambda: null_pattern("PricingCurrencyListUnitPrice") | null_pattern("PricingCurrencyContractedUnitPrice"),
          ("PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice", "ChargeCategory", "ChargeClass")),
    ]


@cache
def row_rules() -> tuple[Rule, ...]:
    return tuple(_not_null_rules() + _allowed_value_rules() + _placeholder_rules() + _semantic_rules())


@dataclass
class RuleResult:
    rule_id: str
    description: str
    defects: int = 0  # violations the converter is responsible for
    gaps: int = 0  # violations on rows whose provider data lacks the value (x_ProviderDataGaps)
    sample_row_ids: list[str] = field(default_factory=list)


@dataclass
class ConformanceReport:
    rows: int
    results: list[RuleResult]
    not_evaluated: list[str] = field(default_factory=list)  # rules whose columns are missing
    extra: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)  # callers' queries

    @property
    def defects(self) -> dict[str, int]:
        return _merge((r.rule_id, r.defects) for r in self.results if r.defects)

    @property
    def gaps(self) -> dict[str, int]:
        return _merge((r.rule_id, r.gaps) for r in self.results if r.gaps)

    @property
    def ok(self) -> bool:
        return not self.defects

    def summary(self) -> str:
        lines = [f"{self.rows} rows; {sum(self.defects.values())} converter defects, "
                 f"{sum(self.gaps.values())} provider-data gaps"]
        for r in self.results:
            if r.defects or r.gaps:
                lines.append(f"  {r.rule_id:24} defects={r.defects:<8} gaps={r.gaps:<8} {r.description}"
                             + (f" e.g. {', '.join(r.sample_row_ids)}" if r.sample_row_ids and r.defects else ""))
        return "\n".join(lines)


def _merge(pairs) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in pairs:
        out[k] = out.get(k, 0) + v
    return out


def check_conformance(lf: pl.LazyFrame, *, samples: int = 3,
                      extra: dict[str, pl.LazyFrame] | None = None) -> ConformanceReport:
    """Run every FOCUS rule on every row of ``lf`` (a FOCUS 1.2 frame) and classify violations.

    The dataset-level queries and any ``extra`` queries of the caller run together in one
    ``collect_all`` (each its own scan); their frames are in ``report.extra``.
    """
    schema = lf.collect_schema()
    names = set(schema.names())
    has_gaps = "x_ProviderDataGaps" in names
    results = schema_results(schema)
    applicable = [r for r in row_rules() if set(r.columns) <= names]
    not_evaluated = sorted({r.id for r in row_rules() if not set(r.columns) <= names})

    def is_gap(rule_id: str) -> pl.Expr:
        if not has_gaps:
            return pl.lit(False)
        return pl.col("x_ProviderDataGaps").list.contains(rule_id).fill_null(False)

    queries = {**dataset_queries(lf, names), **(extra or {})}
    # No shared subplan: sharing the scan caches it in memory (5 M rows: 1.8 GB instead of 0.6 GB),
    # while each query reads only its own few columns.
    frames = dict(zip(queries, pl.collect_all(list(queries.values()), engine="streaming",
                                              optimizations=pl.QueryOptFlags(comm_subplan_elim=False))))
    violations = {i: rule.violates().fill_null(False) for i, rule in enumerate(applicable)}
    total_rows = lf.select(pl.len()).collect(engine="streaming").item()
    counts = _slice_sums(lf, total_rows, [v.sum().alias(f"v{i}") for i, v in violations.items()])
    # Gaps are counted in a second pass over only the rules that have violations (usually a
    # handful): a list lookup per rule and row costs more than all the rules together.
    violated = [i for i in violations if counts[f"v{i}"]]
    if violated:
        counts |= _slice_sums(lf, total_rows, [(violations[i] & is_gap(applicable[i].id)).sum().alias(f"g{i}") for i in violated])
    id_col = "x_RowId" if "x_RowId" in names else None
    for i, rule in enumerate(applicable):
        total, gaps = counts[f"v{i}"], counts.get(f"g{i}", 0)
        if not total:
            continue
        result = RuleResult(rule.id, rule.description, defects=total - gaps, gaps=gaps)
        if result.defects and samples and id_col:
            bad = lf.filter(rule.violates().fill_null(False) & ~is_gap(rule.id)).select(id_col).head(samples)
            result.sample_row_ids = bad.collect()[id_col].cast(pl.String).to_list()
        results.append(result)
    results.extend(dataset_results(lf, frames))
    return ConformanceReport(rows=total_rows, results=results, not_evaluated=not_evaluated,
                             extra={k: frames[k] for k in (extra or {})})


def _slice_sums(lf: pl.LazyFrame, total_rows: int, aggs: list[pl.Expr]) -> dict[str, int]:
    """Sum-aggregations of ``lf`` over bounded slices (the engine's memory for a wide reduction
    grows with its input); a slice of a Parquet scan reads only its own row groups."""
    if not aggs:
        return {}
    return (pl.concat([part.select(aggs).collect(engine="streaming")
                       for _, part in row_slices(lf, RULE_SLICE_ROWS, total_rows)])
            .sum().row(0, named=True))


def schema_results(schema: pl.Schema) -> list[RuleResult]:
    """Column presence, types and naming (each a dataset-level violation counted once)."""
    out: list[RuleResult] = []
    for col in focus_columns():
        if col.name not in schema:
            if col.feature_level == "Mandatory":
                out.append(RuleResult("R-X-0", f"mandatory column {col.name} is missing", defects=1))
            continue
        actual = schema[col.name]
        if col.data_type == "Decimal" and not (actual.is_decimal() or actual == pl.Float64):
            out.append(RuleResult("R-Num-2", f"{col.name} must be Decimal, is {actual}", defects=1))
        if col.data_type == "DateTime" and not (isinstance(actual, pl.Datetime) and actual.time_zone == "UTC"):
            out.append(RuleResult("R-DT-1", f"{col.name} must be a UTC timestamp, is {actual}", defects=1))
        if col.data_type in ("String", "JSON") and actual != pl.String:
            out.append(RuleResult(f"R-{col.name}-Type", f"{col.name} must be a string, is {actual}", defects=1))
    for name in schema.names():
        if name not in FOCUS_COLUMN_NAMES and not name.startswith("x_"):
            out.append(RuleResult("R-Cols-2", f"custom column {name!r} lacks the x_ prefix", defects=1))
    return out


ONE_TO_ONE = (("ServiceName", "ServiceCategory", "R-ServiceName-1"),
              ("ServiceName", "ServiceSubcategory", "R-ServiceName-1"),
              ("SkuPriceId", "SkuId", "R-SkuPriceId-1"))
JSON_OBJECT_COLUMNS = ("Tags", "SkuPriceDetails")


def dataset_queries(lf: pl.LazyFrame, names: set[str]) -> dict[str, pl.LazyFrame]:
    queries = {}
    for key, value, _ in ONE_TO_ONE:
        if {key, value} <= names:
            queries[f"__one:{key}:{value}"] = (
                lf.filter(present(key)).group_by(key).agg(pl.len().alias("n"), pl.col(value).n_unique().alias("k"))
                .filter(pl.col("k") > 1))
    for col in JSON_OBJECT_COLUMNS:
        if col in names:
            queries[f"__json:{col}"] = lf.select(pl.col(col).drop_nulls().unique())
    if {"ServiceCategory", "ServiceSubcategory"} <= names:
        queries["__subcategories"] = (lf.filter(present("ServiceSubcategory"))
                                      .group_by("ServiceSubcategory", "ServiceCategory").len())
    return queries


def dataset_results(lf: pl.LazyFrame, frames: dict[str, pl.DataFrame]) -> list[RuleResult]:
    out: list[RuleResult] = []
    for key, value, rule_id in ONE_TO_ONE:
        bad = frames.get(f"__one:{key}:{value}")
        if bad is not None and bad.height:
            out.append(RuleResult(rule_id, f"each {key} has exactly one {value}: "
                                  f"{bad.height} {key} values have several", defects=int(bad["n"].sum()),
                                  sample_row_ids=[str(v) for v in bad[key].head(3).to_list()]))
    for col in JSON_OBJECT_COLUMNS:
        values = frames.get(f"__json:{col}")
        if values is not None:
            out.extend(_json_object_results(lf, col, values[col].to_list()))
    pairs = frames.get("__subcategories")
    if pairs is not None:
        parents = subcategory_parents()
        bad = [(sub, cat, n) for sub, cat, n in pairs.iter_rows() if sub in parents and parents[sub] != cat]
        if bad:
            out.append(RuleResult("R-ServiceSubcategory-1", "ServiceSubcategory belongs to the row's ServiceCategory",
                                  defects=sum(n for *_, n in bad),
                                  sample_row_ids=[f"{sub} under {cat}" for sub, cat, _ in bad[:3]]))
    return out


def json_object_problem(text: str) -> str | None:
    """Why ``text`` is not a FOCUS key-value JSON object (R-KV-1..3), or None if it is one."""
    pairs: list[tuple[str, object]] = []
    try:
        value = json.loads(text, object_pairs_hook=lambda p: pairs.extend(p) or dict(p))
    except ValueError as exc:
        return f"R-KV-1: not JSON ({exc.msg})"
    if not isinstance(value, dict):
        return "R-KV-1: not a JSON object"
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        return "R-KV-2: duplicate keys"
    if any(isinstance(v, (dict, list)) for v in value.values()):
        return "R-KV-3: nested value"
    return None


def _json_object_results(lf: pl.LazyFrame, col: str, values: list[str]) -> list[RuleResult]:
    problems: dict[str, list[str]] = {}
    for v in values:
        problem = json_object_problem(v)
        if problem:
            problems.setdefault(problem.split(":")[0], []).append(v)
    out = []
    for rule_id, bad in problems.items():
        n = lf.filter(pl.col(col).is_in(bad)).select(pl.len()).collect().item()
        out.append(RuleResult(rule_id, f"{col} is a JSON object of scalar values with unique keys",
                              defects=n, sample_row_ids=bad[:3]))
    return out
