"""The FOCUS 1.3 view ``focus_costs_v1_3``: the FOCUS 1.2 rows as FOCUS 1.3 rows, Kubernetes splits included.

FOCUS 1.2 → 1.3 (``spec/columns-1.2.csv`` against ``spec/columns-1.3.csv``; ``shared/focus/RULES.md``):

- renamed: none. ProviderName is *replaced* by ServiceProviderName, and HostProviderName is new beside
  it; ProviderName and PublisherName stay in 1.3 (Mandatory, deprecated in 1.3, removed in 1.4), so the
  view keeps both as the 1.2 rows hold them.
- new cost and usage columns: ServiceProviderName, HostProviderName (Mandatory, not null), ContractApplied
  (JSON, Conditional: contract commitments), AllocatedMethodId, AllocatedResourceId, AllocatedResourceName,
  AllocatedTags (Conditional: split cost allocation), AllocatedMethodDetails (JSON, Recommended).
- new dataset: ContractCommitment (``ContractCommitment.<Column>`` in the 1.3 csv), a table of its own
  that ContractApplied refers to; not a cost and usage column, so not in this view.
- removed: none. Every 1.2 column keeps its type, feature level, nullability and allowed values.

Columns of the view: the 65 FOCUS 1.3 columns in the csv's order, typed per the csv (Decimal(38,12),
Datetime(us, UTC), String; JSON as String), then the x_ columns of the 1.2 rows in their order.

Provider names, per row (RULES.md R-ServiceProviderName-1, R-HostProviderName-1):

- a native FOCUS 1.3 import keeps its 1.3-only columns as ``x_<name>`` (``sources/focus_native``):
  they are mapped back to their 1.3 names, so a provider's own ServiceProviderName, HostProviderName,
  ContractApplied and Allocated* values (rows the provider split itself) are kept as delivered, and the
  ``x_`` copies are not repeated among the x_ columns;
- otherwise ServiceProviderName is the seller: the 1.2 PublisherName when it names another company than
  ProviderName (a marketplace seller: the marketplace operator is ProviderName in 1.2, the seller is the
  1.3 service provider), else ProviderName. "Same company" is the equal name or the same provider
  family by the native source's ``PROVIDER_KEYS`` (AWS rows publish as 'Amazon Web Services, Inc.');
- HostProviderName is 'Not Applicable' where the charge runs on no infrastructure: Tax rows and
  ServiceSubcategory 'Support'. A marketplace seller's row does not say where the seller hosts it: its
  HostProviderName is the ServiceProviderName (the spec's choice for an undisclosed host). Every other
  row runs on the cloud whose bill it is: ProviderName.

Kubernetes splits (``splits``: ``cost_allocations`` rows): only rows of x_AllocationMethod 'kubernetes'
and 'kubernetes-idle' become FOCUS 1.3 allocated rows, because only they split a charge to *resources*
(workloads, and a node's idle capacity). Pools split a charge to owners (teams, cost centres), which are
not resources: FOCUS's Allocated* columns have no place for them and ``cost_allocations`` holds them.
Each FOCUS row with Kubernetes allocation rows is replaced by one row per allocation row:

- BilledCost / EffectiveCost: x_AllocatedBilledCost / x_AllocatedEffectiveCost (the engine's exact
  shares); ListCost, ContractedCost, ConsumedQuantity, PricingQuantity, CommitmentDiscountQuantity and
  PricingCurrencyEffectiveCost split exactly by x_AllocationWeight with ``split.split_exact`` (each
  sums to the origin row's value to the last 10^-12); unit prices stay (they are per unit, not summed);
- AllocatedMethodId ``focus-platform/<x_AllocationMethod>/<basis>`` (basis of the rules' kubernetes
  section: requests | usage | max);
- AllocatedMethodDetails ``{"Elements":[{"AllocatedRatio":<x_AllocationShare>}], "x_Cluster", "x_Basis",
  "x_CpuWeight", "x_WindowStart", "x_WindowEnd"}``: FOCUS 1.3's object (Elements with AllocatedRatio; no
  UsageUnit, as the ratio blends CPU and memory), our keys x_-prefixed; the window is the origin row's
  charge period. AllocatedRatio is x_AllocationShare, rounded to 12 places: the amounts are exact, the
  ratios sum to 1 within n·10^-12;
- AllocatedResourceId / Name: x_AllocatedResourceId (``<cluster>/<namespace>/<kind>/<controller>``) /
  x_AllocatedResourceName; AllocatedTags ``{"kubernetes/namespace", "kubernetes/workload", <dimension>:
  <owner value> …}``: the Kubernetes facts under a prefix (R-Tags-3: data-generator keys are prefixed),
  the rules' owner dimensions as the user's own keys;
- everything else is the origin row's, x_RowId included (the allocated rows of one charge share it);
  ContractApplied too (its applied amounts are the origin charge's, not split). Engine values replace
  a provider's Allocated* values on a row the engine splits again.

Totals: per (x_Source, BillingAccountId, BillingCurrency) the view's amounts equal the 1.2 rows'
exactly. A FOCUS row whose Kubernetes allocation rows do not sum to its BilledCost / EffectiveCost (a
stale ``cost_allocations``) is refused with ``ViewError`` naming the row, never published.
"""

from __future__ import annotations

import json

import polars as pl

from focus_platform.allocation.model import Kubernetes
from focus_platform.allocation.split import split_exact
from focus_platform.sources.common import json_object, json_string
from focus_platform.sources.focus_native.mapping import PROVIDER_KEYS
from focus_platform.spec.columns import (
    DECIMAL_COLUMNS,
    FOCUS_COLUMN_NAMES,
    focus_columns,
    focus_schema,
)
from focus_platform.spec.rules import json_object_problem

VERSION = "1.3"
KUBERNETES_METHODS = ("kubernetes", "kubernetes-idle")
ORIGIN_KEY = ["x_Source", "x_BillingPeriod", "x_RowId"]  # one FOCUS row (x_RowId is unique per partition)
NOT_APPLICABLE = "Not Applicable"
ALLOCATED_DESCRIPTIONS = ("AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags")
NEW_IN_1_3 = tuple(c.name for c in focus_columns(VERSION) if c.name not in FOCUS_COLUMN_NAMES)
SPLIT_AMOUNTS = tuple(n for n in DECIMAL_COLUMNS
                      if n not in ("BilledCost", "EffectiveCost") and not n.endswith("UnitPrice"))
# cost_allocations: the owner dimensions sit between these two columns (design12.md)
_BEFORE_DIMENSIONS, _AFTER_DIMENSIONS = "ResourceId", "x_AllocatedBilledCost"
_TIMESTAMP_TEXT = "%Y-%m-%dT%H:%M:%SZ"


class ViewError(ValueError):
    """The view cannot be built exactly (the message names the FOCUS row and what does not add up)."""


def focus_v1_3(focus: pl.LazyFrame, splits: pl.LazyFrame | None = None,
               kubernetes: Kubernetes | None = None) -> pl.LazyFrame:
    """FOCUS 1.2 rows (``focus_costs``) as FOCUS 1.3 rows; with ``splits`` (``cost_allocations`` rows of the
    same partitions) each Kubernetes-split charge as one row per workload. ``kubernetes``: the rules'
    kubernetes section that made the splits (its basis and cpu_weight name the method); required with
    ``splits`` (rules without one have no Kubernetes rows: pass ``splits=None``)."""
    x_names = [n for n in focus.collect_schema().names() if n.startswith("x_") and n.removeprefix("x_") not in NEW_IN_1_3]
    rows = _with_v1_3_columns(focus)
    if splits is not None:
        if kubernetes is None:
            raise ValueError("focus_v1_3: splits need the rules' kubernetes section (basis, cpu_weight name the "
                             "allocation method); pass splits=None when the rules have none")
        rows = _split_by_kubernetes(rows, splits, kubernetes)
    view = focus_schema(include_x=False, version=VERSION)
    return rows.select(*[pl.col(name).cast(dtype) for name, dtype in view.items()], *x_names)


def _with_v1_3_columns(focus: pl.LazyFrame) -> pl.LazyFrame:
    """The 1.3-only columns on every row: a native 1.3 import's kept ``x_<name>`` values, the provider
    names derived from the 1.2 ones where the import has none, null elsewhere."""
    present = set(focus.collect_schema().names())
    kept = {name: pl.col(f"x_{name}").cast(pl.String) if f"x_{name}" in present else pl.lit(None, pl.String)
            for name in NEW_IN_1_3}
    service, host = _provider_names()
    kept["ServiceProviderName"] = pl.coalesce(kept["ServiceProviderName"], service)
    kept["HostProviderName"] = pl.coalesce(kept["HostProviderName"], host)
    return focus.with_columns(**kept)


def _provider_names() -> tuple[pl.Expr, pl.Expr]:
    """ServiceProviderName and HostProviderName of a FOCUS 1.2 row (the rule in the module docstring)."""
    provider, publisher = pl.col("ProviderName"), pl.col("PublisherName")
    same_company = publisher == provider
    for _, pattern in PROVIDER_KEYS:
        same_company = same_company | (provider.str.contains(pattern) & publisher.str.contains(pattern))
    seller = publisher.is_not_null() & provider.is_not_null() & ~same_company
    service = pl.when(seller).then(publisher).otherwise(pl.coalesce(provider, publisher))
    no_infrastructure = ((pl.col("ChargeCategory") == "Tax") | (pl.col("ServiceSubcategory") == "Support")).fill_null(False)
    host = pl.when(no_infrastructure).then(pl.lit(NOT_APPLICABLE)).when(seller).then(service).otherwise(provider)
    return service, host


def _dimension_names(allocation_schema: pl.Schema) -> list[str]:
    """The owner dimensions of a ``cost_allocations`` schema (the rules' dimensions, in their order)."""
    names = allocation_schema.names()
    return names[names.index(_BEFORE_DIMENSIONS) + 1:names.index(_AFTER_DIMENSIONS)]


def _split_by_kubernetes(rows: pl.LazyFrame, splits: pl.LazyFrame, kubernetes: Kubernetes) -> pl.LazyFrame:
    dimensions = _dimension_names(splits.collect_schema())
    resource_id = pl.col("x_AllocatedResourceId")
    shares = splits.filter(pl.col("x_AllocationMethod").is_in(KUBERNETES_METHODS)).select(
        *ORIGIN_KEY,
        pl.col("x_AllocatedBilledCost").alias("__billed"),
        pl.col("x_AllocatedEffectiveCost").alias("__effective"),
        pl.col("x_AllocationWeight").alias("__weight"),
        pl.col("x_AllocationShare").alias("__share"),
        pl.col("x_AllocationMethod").alias("__method"),
        resource_id.alias("__resource_id"),
        pl.col("x_AllocatedResourceName").alias("__resource_name"),
        resource_id.str.extract(r"^([^/]*)/", 1).alias("__cluster"),
        json_object([("kubernetes/namespace", resource_id.str.extract(r"^[^/]*/([^/]*)", 1)),
                     ("kubernetes/workload", pl.col("x_AllocatedResourceName")),
                     *[(d, pl.col(d)) for d in dimensions]]).alias("__tags"),
    )
    whole = rows.join(shares.select(ORIGIN_KEY).unique(), on=ORIGIN_KEY, how="anti")
    split = _checked_sums(rows.join(shares, on=ORIGIN_KEY, how="inner"))
    split = split_exact(split, key=ORIGIN_KEY, weight="__weight", amounts=list(SPLIT_AMOUNTS),
                        order=["__resource_id", "__resource_name"])
    split = split.with_columns(
        BilledCost=pl.col("__billed"),
        EffectiveCost=pl.col("__effective"),
        AllocatedMethodId=pl.format("focus-platform/{}/{}", pl.col("__method"), pl.lit(kubernetes.basis)),
        AllocatedMethodDetails=_method_details(kubernetes),
        AllocatedResourceId=pl.col("__resource_id"),
        AllocatedResourceName=pl.col("__resource_name"),
        AllocatedTags=pl.col("__tags"),
    )
    return pl.concat([whole, split.select(whole.collect_schema().names())])


def _method_details(kubernetes: Kubernetes) -> pl.Expr:
    """FOCUS 1.3's AllocatedMethodDetails object; numbers written as their exact decimal text."""
    def member(key: str, json_value: pl.Expr) -> list[pl.Expr]:
        return [pl.lit(f",{json.dumps(key)}:"), json_value]

    return pl.concat_str([
        pl.lit('{"Elements":[{"AllocatedRatio":'), pl.col("__share").cast(pl.String), pl.lit("}]"),
        *member("x_Cluster", pl.coalesce(json_string(pl.col("__cluster")), pl.lit("null"))),
        *member("x_Basis", pl.lit(json.dumps(kubernetes.basis))),
        *member("x_CpuWeight", pl.lit(str(kubernetes.cpu_weight))),
        *member("x_WindowStart", json_string(pl.col("ChargePeriodStart").dt.strftime(_TIMESTAMP_TEXT))),
        *member("x_WindowEnd", json_string(pl.col("ChargePeriodEnd").dt.strftime(_TIMESTAMP_TEXT))),
        pl.lit("}"),
    ])


def _checked_sums(joined: pl.LazyFrame) -> pl.LazyFrame:
    """The joined rows, after refusing a FOCUS row whose allocation rows do not sum to its amounts."""
    sums = pl.struct(*ORIGIN_KEY, "BilledCost", "EffectiveCost", "__billed",
                     __billed_total=pl.col("__billed").sum().over(ORIGIN_KEY),
                     __effective_total=pl.col("__effective").sum().over(ORIGIN_KEY))
    checked = sums.map_batches(_refuse_mismatch, return_dtype=joined.collect_schema()["__billed"], is_elementwise=True)
    return joined.with_columns(__billed=checked)


def _refuse_mismatch(batch: pl.Series) -> pl.Series:
    """The allocated BilledCost column, or ``ViewError`` naming the first FOCUS row the shares do not add up to."""
    frame = batch.struct.unnest()
    bad = frame.filter((pl.col("__billed_total") != pl.col("BilledCost"))
                       | (pl.col("__effective_total") != pl.col("EffectiveCost")))
    if bad.height:
        row = bad.row(0, named=True)
        raise ViewError(
            f"FOCUS row x_RowId={row['x_RowId']!r} (source {row['x_Source']!r}, period {row['x_BillingPeriod']!r}): "
            f"its Kubernetes allocation rows sum to BilledCost {row['__billed_total']} / EffectiveCost "
            f"{row['__effective_total']}, the row has {row['BilledCost']} / {row['EffectiveCost']}: cost_allocations "
            "does not belong to these FOCUS rows (stale?); re-run the allocation of the period")
    return frame["__billed"]


def check_v1_3(view: pl.LazyFrame) -> list[str]:
    """FOCUS 1.3 checks of the view, one message per failure (none: it passes). Our conformance rules
    (``spec/rules.py``) are FOCUS 1.2's and hold for the 1.2 rows; this adds what 1.3 changes: every 1.3
    column present and typed, not null where the 1.3 csv says so, allowed values, R-Alloc-1 (Allocated*
    describe a split only with an AllocatedMethodId, which needs its AllocatedResourceId), R-KV-1..3 on
    AllocatedTags and R-KV-4 (a JSON object; AllocatedMethodDetails: Elements with a numeric
    AllocatedRatio) on AllocatedMethodDetails and ContractApplied."""
    schema = view.collect_schema()
    columns = [c for c in focus_columns(VERSION) if c.name in schema]
    problems = [f"{c.name}: missing (FOCUS 1.3 {c.feature_level} column)"
                for c in focus_columns(VERSION) if c.name not in schema]
    problems += [f"{c.name}: is {schema[c.name]}, FOCUS 1.3 {c.data_type} is {c.dtype}"
                 for c in columns if schema[c.name] != c.dtype]
    counted: dict[str, pl.Expr] = {}
    for c in columns:
        if not c.allows_nulls:
            counted[f"{c.name}: {{}} rows null (not nullable in FOCUS 1.3)"] = pl.col(c.name).is_null()
        if c.allowed_values:
            counted[f"{c.name}: {{}} rows not one of {'; '.join(c.allowed_values)}"] = \
                pl.col(c.name).is_not_null() & ~pl.col(c.name).is_in(c.allowed_values)
    if {"AllocatedMethodId", "AllocatedResourceId", *ALLOCATED_DESCRIPTIONS} <= schema.keys():
        method = pl.col("AllocatedMethodId")
        counted["R-Alloc-1: {} rows describe an allocation without AllocatedMethodId"] = \
            method.is_null() & pl.any_horizontal(pl.col(ALLOCATED_DESCRIPTIONS).is_not_null())
        counted["R-Alloc-2: {} rows have an AllocatedMethodId without AllocatedResourceId"] = \
            method.is_not_null() & pl.col("AllocatedResourceId").is_null()
    if counted:
        found = view.select(*[e.sum().alias(m) for m, e in counted.items()]).collect(engine="streaming").row(0, named=True)
        problems += [message.format(n) for message, n in found.items() if n]
    for name, problem_of in (("AllocatedTags", json_object_problem), ("AllocatedMethodDetails", _method_details_problem),
                             ("ContractApplied", _json_object_kind_problem)):
        if name in schema:
            values = view.select(pl.col(name).drop_nulls().unique()).collect(engine="streaming")[name]
            bad = {v: p for v in values if (p := problem_of(v))}
            if bad:
                text, problem = next(iter(bad.items()))
                problems.append(f"{name}: {len(bad)} distinct values are not FOCUS 1.3 JSON objects, e.g. {text!r}: {problem}")
    return problems


def _json_object_kind_problem(text: str) -> str | None:
    """R-KV-4: a JSON object (nesting allowed), or why not."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"R-KV-1: not JSON ({exc.msg})"
    return None if isinstance(value, dict) else "R-KV-1: not a JSON object"


def _method_details_problem(text: str) -> str | None:
    """FOCUS 1.3's AllocatedMethodDetails object: {"Elements": [{"AllocatedRatio": <number>, ...}, ...], ...}."""
    if problem := _json_object_kind_problem(text):
        return problem
    elements = json.loads(text).get("Elements")
    if not isinstance(elements, list) or not elements or not all(isinstance(e, dict) for e in elements):
        return "R-KV-4: Elements is not a non-empty array of objects"
    if not all(isinstance(e.get("AllocatedRatio"), (int, float)) and not isinstance(e.get("AllocatedRatio"), bool)
               for e in elements):
        return "R-KV-4: an element without a numeric AllocatedRatio"
    return None
