"""The allocation rules as data: what a rules file says, after loading and validation (no Dagster here).

``allocation.rules`` reads and validates a YAML rules file into these objects; ``allocation.engine``
applies them to FOCUS rows. Nothing here is code from the user: matches are column conditions
(equals, in, regex, prefix, exists), never expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from focus_platform.spec.columns import MONEY, TIMESTAMP

# cost_allocations: the FOCUS row's columns every allocation row repeats, then the rules' dimensions, then these
FOCUS_KEPT = {
    "x_BillingPeriod": pl.String, "x_Source": pl.String, "BillingAccountId": pl.String, "SubAccountId": pl.String,
    "BillingCurrency": pl.String, "x_RowId": pl.String, "ChargePeriodStart": TIMESTAMP,
    "ChargeCategory": pl.String, "ServiceName": pl.String, "ResourceId": pl.String,
}
ALLOCATION_COLUMNS = {
    "x_AllocatedBilledCost": MONEY, "x_AllocatedEffectiveCost": MONEY, "x_AllocationShare": MONEY,
    "x_AllocationWeight": MONEY, "x_AllocationRuleId": pl.String, "x_AllocationMethod": pl.String,
    "x_AllocatedResourceId": pl.String, "x_AllocatedResourceName": pl.String, "x_OwnerEvidence": pl.String,
    "x_RulesVersion": pl.String,
}
FIXED_COLUMNS = (*FOCUS_KEPT, *ALLOCATION_COLUMNS)  # every column of cost_allocations but the dimensions
RULE_TAGS, RULE_DEFAULT = "tags", "default"  # x_AllocationRuleId of rows no virtual tag, pool or split decided

DEFAULT_OWNER = "unallocated"  # the owner of what no tag, virtual tag or pool claims: visible, never dropped
OTHER_VALUE = "other"  # rare values of a dimension past its cardinality cap are rolled into this one

# match operators
EQUALS, IN, REGEX, PREFIX, EXISTS = "equals", "in", "regex", "prefix", "exists"
OPERATORS = (EQUALS, IN, REGEX, PREFIX, EXISTS)

# pool split methods
EVEN, PROPORTIONAL, FIXED, DRIVER = "even", "proportional", "fixed", "driver"
METHODS = (EVEN, PROPORTIONAL, FIXED, DRIVER)
# the measures a proportional pool can weigh its targets by (their direct, non-pool allocated amounts)
MEASURES = ("EffectiveCost", "BilledCost", "ListCost", "ConsumedQuantity")
# what a driver or proportional pool does when its targets' total weight is zero for a window
ON_ZERO_ERROR, ON_ZERO_EVEN = "error", "even"

# Kubernetes: what the split weighs, and what happens to idle capacity
BASIS_REQUESTS, BASIS_USAGE, BASIS_MAX = "requests", "usage", "max"
IDLE_OWNER, IDLE_SHARE = "owner", "share"


@dataclass(frozen=True)
class Condition:
    """One condition on one column. ``column`` is a FOCUS column, an ``x_`` column, an account-catalog column
    (``x_AccountName``, ``x_AccountPath``, ``x_AccountLevel1`` …) or ``tag:<key>`` (a normalized tag key)."""
    column: str
    op: str  # one of OPERATORS
    values: tuple[str, ...] = ()  # equals/prefix/regex: one value (regex: one pattern); in: several; exists: none


@dataclass(frozen=True)
class Match:
    """Every condition holds (AND). An empty match matches every row."""
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Dimension:
    """One owner column of ``cost_allocations`` (team, product, environment, cost center …)."""
    name: str
    default: str = DEFAULT_OWNER
    tag_keys: tuple[str, ...] = ()  # aliases, normalized (case-folded, trimmed; '_' and ' ' read as '-'), in priority order
    value_map: dict[str, str] = field(default_factory=dict)  # normalized raw value → owner value
    required: bool = False  # a required tag key for M14 (tag compliance)
    max_values: int | None = None  # cardinality cap: rarer values (by spend) become OTHER_VALUE in the owner column


@dataclass(frozen=True)
class VirtualTag:
    """Sets owner values on rows matching ``match``. File order; per dimension the first match wins.
    ``values``: dimension → literal value, or ``{"column": name}`` read as ``ColumnValue``."""
    id: str
    match: Match
    values: dict[str, str | ColumnValue]
    override: bool = False  # also replaces a value that came from a tag (default: tags win)


@dataclass(frozen=True)
class ColumnValue:
    """An owner value read from a column of the row (e.g. ``x_AccountLevel2`` for the OU, ``SubAccountName``)."""
    column: str


@dataclass(frozen=True)
class Pool:
    """A shared-cost pool: rows matching ``match`` are split over ``targets`` (values of ``dimension``).
    A pool's id is the owner value of its rows before the split; it can never be a target of another pool."""
    id: str
    match: Match
    dimension: str
    method: str  # one of METHODS
    targets: tuple[str, ...] = ()  # empty with even/proportional: every owner value with direct cost in the window
    weights: dict[str, Decimal] = field(default_factory=dict)  # fixed: target → percent (sum exactly 100)
    measure: str = "EffectiveCost"  # proportional: one of MEASURES
    driver: str | None = None  # driver: the name of a driver table (<landing>/allocation/drivers/<name>/*.csv)
    on_zero: str = ON_ZERO_ERROR  # ON_ZERO_ERROR or ON_ZERO_EVEN (recorded per split row when used)


@dataclass(frozen=True)
class NamespaceOwner:
    """Kubernetes: namespaces matching ``pattern`` (a full-match regex) belong to these owner values."""
    pattern: str
    values: dict[str, str]


@dataclass(frozen=True)
class Kubernetes:
    """How node cost is split to namespaces and workloads from OpenCost telemetry."""
    basis: str = BASIS_REQUESTS  # requests | usage | max (of request and usage)
    cpu_weight: Decimal = Decimal("0.5")  # share of a node's cost priced to CPU (memory: 1 − cpu_weight)
    idle: str = IDLE_OWNER  # IDLE_OWNER: unrequested capacity goes to ``idle_values``; IDLE_SHARE: spread pro rata
    idle_values: dict[str, str] = field(default_factory=dict)  # dimension → owner value of idle capacity
    namespaces: tuple[NamespaceOwner, ...] = ()  # first full match wins; unmatched: the node row's own owner


@dataclass(frozen=True)
class Rules:
    name: str
    version: str  # as the file declares it (e.g. "2026-11.2")
    digest: str  # sha256 (16 hex) of the file's bytes: the rules-file version hash on every allocation row
    path: str  # where it was read from
    dimensions: tuple[Dimension, ...]
    virtual_tags: tuple[VirtualTag, ...] = ()
    pools: tuple[Pool, ...] = ()
    kubernetes: Kubernetes | None = None
    applies_from: str | None = None  # 'YYYY-MM' cut-off; None: retroactive to every period

    def dimension(self, name: str) -> Dimension:
        return next(d for d in self.dimensions if d.name == name)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)
