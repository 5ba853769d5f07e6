"""Native FOCUS 1.2 deliveries whose owners are known, with the evidence the allocation rules read, and the truth.

``generate_allocation(out, rows=..., months=..., seed=..., start_period=...)`` writes, under ``out``::

    sources.json                                     two native FOCUS export sources (merged with one there)
    focus/aws/<YYYY-MM>/part-<n>.parquet             AWS-style FOCUS rows, billing account in USD
    focus/azure/<YYYY-MM>/part-<n>.parquet           Microsoft-style FOCUS rows, billing account in EUR
    accounts/accounts.csv                            the simple account catalog (provider, id, name, kind, OU path)
    allocation/settings.yaml, allocation/rules/acme.yaml   the rules the truth follows
    allocation/drivers/log-requests/requests.csv     the logging pool's driver: requests per team per day
    allocation/spot_checks/spot_checks.csv           a sample of resources with their true owners (M7)
    kubernetes/<cluster>/…                           OpenCost telemetry of the two clusters (generate.kubernetes)
    expected/rows/*.parquet                          per FOCUS row: its identity, amounts and true owner values
    expected/splits.parquet                          per split row (pool, Kubernetes) × target: the exact shares
    expected/totals.json                             per (period, currency, owner values): allocated billed, effective
    expected/expected_namespace_shares.csv           generate.kubernetes' truth per node, day and namespace

How the owners are decided, then written as evidence
----------------------------------------------------
Each provider has four sub accounts: ``shared-services-prod`` (a virtual tag by SubAccountId owns it:
platform / prod / CC-100), ``ml-prod`` and ``web-dev`` (the catalog puts them under
``Root/Engineering/<team>``: a virtual tag reads the team from the OU path, another the environment
from the account name's suffix) and ``sandbox`` (``Root/Sandbox``; an ``override`` virtual tag makes
its environment ``sandbox`` whatever the tags say). Every resource first gets an account and a way its
team is known: a tag (half of them; key variants ``team``, ``Team``, ``TEAM ``, ``owner-team``,
``owner_team``, ``squad``; value variants ``Platform``, ``platform ``, ``plat`` … mapped by the rules'
value map; some rows carry two keys differing only in case, where the smallest raw key wins, or two
aliases, where the alias listed first wins: the truth is the winner and the loser holds another team),
a resource name pattern (``ml-…``, ``web-…``, ``etl-…``: virtual tags by regex), or its account
(untagged; in the sandbox that means truly unowned: ``unallocated``). Environment and cost center
come from tags where written, else from the account's rules, else ``unallocated``.

Rows: hourly usage of each provider's services (a share of the compute rows covered by a savings
plan: BilledCost 0, EffectiveCost 70 % of the list cost), each month a commitment purchase, tax per
sub account, credits (one on the support pool: a negative pool row), a refund (an ``Adjustment`` on
a resource), and per day the rows of three shared-cost pools: support (proportional to each team's
direct EffectiveCost), network rows tagged ``shared`` (fixed 50/30/20) and logging (by the driver
table; one day a month has zero weight everywhere: ``on_zero: even``). Kubernetes nodes (two
clusters, one node of each covered by a reservation) bill one row per node and day.

The truth (``expected/``) is computed here in plain Python integers of 1e-12 (Decimal(38, 12) units):
largest-remainder splits of each pool and node row as design12 documents them, written
independently of ``focus_platform.allocation``. Row identity: the delivered column
``GeneratedRowKey`` (not a FOCUS column: native FOCUS keeps it as ``x_GeneratedRowKey``).
Deterministic for a given argument set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from focus_platform.generate.kubernetes import generate_kubernetes
from focus_platform.generate.landing import export_source, write_sources

AMOUNT_SCALE = 10**8  # generated amounts: integers of 1e-8
UNITS = 10**12  # Decimal(38, 12) units: the truth's arithmetic
TO_UNITS = UNITS // AMOUNT_SCALE
CHUNK_ROWS = 500_000
DIMENSIONS = ("team", "environment", "cost_center")
UNALLOCATED = "unallocated"
TEAMS = ("platform", "web", "ml", "data-eng")
IDLE_TEAM = "k8s-idle"
ROW_KEY = "GeneratedRowKey"  # delivered column kept by the native source as x_GeneratedRowKey
RULES_FILE = "rules/acme.yaml"
RULES_VERSION = "2026-12.1"
DRIVER = "log-requests"
COVERED_SHARE = 0.8  # of a covered resource's rows: billed by the savings plan
COVERED_EFFECTIVE = (7, 10)  # covered usage's EffectiveCost: 70 % of its list cost

# tag evidence: key variants per dimension (all normalize to an alias of the rules) and value variants
TEAM_KEYS = ("team", "Team", "TEAM ", "owner-team", "owner_team", "squad")
ENV_KEYS = ("env", "Environment", "environment")
COST_CENTER_KEYS = ("cost-center", "CostCenter", "cost_center")
TEAM_VALUES = {"platform": ("platform", "Platform", "platform ", "plat", "PLATFORM"),
               "web": ("web", "Web", "web-frontend"),
               "ml": ("ml", "ML", "machine-learning"),
               "data-eng": ("data-eng", "Data Eng", "data eng", "dataeng")}
ENV_VALUES = {"prod": ("prod", "production", "PRD", "Prod"), "staging": ("staging", "stg", "Staging"),
              "dev": ("dev", "development", "Dev")}
COST_CENTERS = {"CC-100": ("CC-100", "cc-100"), "CC-200": ("CC-200", "cc200 "), "CC-300": ("CC-300", "CC300")}
NAME_PATTERNS = {"ml": "ml-", "web": "web-", "data-eng": "etl-"}  # resource name prefix → team (virtual tags)

# sub account roles and what the rules give an untagged row of each (team, environment, cost center)
SHARED, ML, WEB, SANDBOX = range(4)
ACCOUNT_NAMES = ("shared-services-prod", "ml-prod", "web-dev", "sandbox")
ACCOUNT_PATHS = ("Root/Infrastructure", "Root/Engineering/ml", "Root/Engineering/web", "Root/Sandbox")
ACCOUNT_OWNERS = (("platform", "prod", "CC-100"), ("ml", "prod", UNALLOCATED), ("web", "dev", UNALLOCATED),
                  (UNALLOCATED, "sandbox", UNALLOCATED))
SANDBOX_ENVIRONMENT = "sandbox"

# shared-cost pools: id, method, targets (on team)
SUPPORT, NETWORK, LOGGING = "shared-support", "shared-network", "shared-logging"
POOL_TARGETS = ("data-eng", "ml", "platform", "web")
NETWORK_WEIGHTS = {"platform": 50, "web": 30, "ml": 20}
ZERO_DRIVER_DAY = 9  # 0-based day of each month on which every team's driver value is 0

# Kubernetes namespaces (full-match patterns, first wins) → team; other namespaces keep the node row's team
NAMESPACE_TEAMS = (("payments|checkout", "web"), ("ml-.*", "ml"), ("data-etl", "data-eng"))


@dataclass(frozen=True)
class Service:
    name: str
    code: str | None  # x_ServiceCode (AWS)
    category: str
    subcategory: str
    unit: str
    price: int  # list price per unit, integers of 1e-8
    resource_type: str
    compute: bool = False  # can be covered by the savings plan


@dataclass(frozen=True)
class Provider:
    key: str  # aws | azure (also the catalog's provider)
    source: str
    provider_name: str
    billing_account: str
    billing_account_name: str
    currency: str
    region: tuple[str, str]
    sub_account_type: str
    services: tuple[Service, ...]  # bulk usage
    support: Service
    network: Service
    logging: Service
    node: Service
    cluster: str


def _providers(seed: int) -> tuple[Provider, Provider]:
    aws = Provider(
        "aws", "focus-aws", "AWS", f"{100000000000 + _h(seed, 'aws') % 899999999999:012d}", "Acme AWS", "USD",
        ("us-east-1", "US East (N. Virginia)"), "Linked Account",
        (Service("Amazon Elastic Compute Cloud", "AmazonEC2", "Compute", "Virtual Machines", "Hours", 4_160_000,
                 "Instance", compute=True),
         Service("Amazon Simple Storage Service", "AmazonS3", "Storage", "Object Storage", "GB-Mo", 2_300_000, "Bucket"),
         Service("Amazon Relational Database Service", "AmazonRDS", "Databases", "Relational Databases", "Hours",
                 17_100_000, "DBInstance"),
         Service("Amazon Virtual Private Cloud", "AmazonVPC", "Networking", "Network Infrastructure", "Hours",
                 4_500_000, "NatGateway")),
        Service("AWS Support (Business)", "AWSSupportBusiness", "Management and Governance", "Support", "Dollar",
                100_000_000, "Support"),
        Service("Amazon Virtual Private Cloud", "AmazonVPC", "Networking", "Network Infrastructure", "GB", 2_000_000,
                "TransitGateway"),
        Service("Amazon CloudWatch", "AmazonCloudWatch", "Management and Governance", "Observability", "GB", 50_000_000,
                "LogGroup"),
        Service("Amazon Elastic Compute Cloud", "AmazonEC2", "Compute", "Virtual Machines", "Hours", 19_200_000,
                "Instance", compute=True),
        "eks-prod")
    azure = Provider(
        "azure", "focus-azure", "Microsoft", f"{10000000 + _h(seed, 'azure') % 89999999}", "Acme EA", "EUR",
        ("westeurope", "West Europe"), "Subscription",
        (Service("Virtual Machines", None, "Compute", "Virtual Machines", "Hours", 3_900_000,
                 "Microsoft.Compute/virtualMachines", compute=True),
         Service("Storage Accounts", None, "Storage", "Storage Platforms", "GB/Month", 1_800_000,
                 "Microsoft.Storage/storageAccounts"),
         Service("Azure SQL Database", None, "Databases", "Relational Databases", "Hours", 15_300_000,
                 "Microsoft.Sql/servers/databases"),
         Service("Virtual Network", None, "Networking", "Network Infrastructure", "Hours", 3_600_000,
                 "Microsoft.Network/natGateways")),
        Service("Support", None, "Management and Governance", "Support", "Month", 90_000_000, "Support"),
        Service("Virtual Network", None, "Networking", "Network Infrastructure", "GB", 1_900_000,
                "Microsoft.Network/virtualHubs"),
        Service("Azure Monitor", None, "Management and Governance", "Observability", "GB", 45_000_000,
                "Microsoft.OperationalInsights/workspaces"),
        Service("Virtual Machines", None, "Compute", "Virtual Machines", "Hours", 17_600_000,
                "Microsoft.Compute/virtualMachineScaleSets/virtualMachines", compute=True),
        "aks-prod")
    return aws, azure


# ---------------------------------------------------------------------------------------------
# Counter-based randomness (every value a function of the seed and a position)
# ---------------------------------------------------------------------------------------------
def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_h(*parts))


def _sub_account_id(p: Provider, seed: int, role: int) -> str:
    if p.key == "aws":
        return f"{200000000000 + _h(seed, p.key, role) % 799999999999:012d}"
    digest = hashlib.sha256(f"{seed}|{p.key}|{role}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


# ---------------------------------------------------------------------------------------------
# Resources: the owner first, then the evidence
# ---------------------------------------------------------------------------------------------
@dataclass
class Resources:
    """One provider's resources (one entry per resource, row order = resource index)."""
    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    service: list[int] = field(default_factory=list)
    account: list[int] = field(default_factory=list)
    tags: list[str | None] = field(default_factory=list)
    owner: list[tuple[str, str, str]] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)


def owner_of(role: int, tag_team: str | None, name_team: str | None, tag_env: str | None,
             tag_cost_center: str | None) -> tuple[str, str, str]:
    """The owner the rules give a row of ``role``'s account, per dimension: (1) the mapped tag, (2) the first
    virtual tag (name patterns first, then the account rules; the sandbox's environment overrides tags),
    (3) unallocated."""
    team, env, cost_center = ACCOUNT_OWNERS[role]
    return (tag_team or name_team or team,
            SANDBOX_ENVIRONMENT if role == SANDBOX else tag_env or env,
            tag_cost_center or cost_center)


def _tags_json(pairs: list[tuple[str, str]]) -> str | None:
    return json.dumps(dict(pairs), separators=(",", ":")) if pairs else None


def _build_resources(p: Provider, seed: int, count: int) -> Resources:
    rng = _rng(seed, p.key, "resources")
    out = Resources()
    for i in range(count):
        service = int(rng.integers(len(p.services)))
        role = int(rng.integers(4))
        how = rng.choice(["tag", "name", "account"], p=[0.5, 0.15, 0.35])
        team_true = str(rng.choice(TEAMS))
        pairs: list[tuple[str, str]] = []
        tag_team = name_team = tag_env = tag_cc = None
        name = f"res-{p.key}-{i:05d}"
        if how == "tag":
            tag_team = team_true
            key = str(rng.choice(TEAM_KEYS))
            value = str(rng.choice(TEAM_VALUES[team_true]))
            conflict = rng.random()
            other = str(rng.choice([t for t in TEAMS if t != team_true]))
            if conflict < 0.06:  # two raw keys equal after normalization: the smallest raw key wins
                pairs += [("Team", value), ("team", TEAM_VALUES[other][0])]
            elif conflict < 0.12:  # two aliases: the alias listed first in the rules (team) wins
                pairs += [("squad", TEAM_VALUES[other][0]), ("team", value)]
            else:
                pairs.append((key, value))
        elif how == "name":
            name_team = str(rng.choice(list(NAME_PATTERNS)))
            name = f"{NAME_PATTERNS[name_team]}{p.key}-{i:05d}"
        if how == "tag" and rng.random() < 0.7 or how != "tag" and rng.random() < 0.2:
            tag_env = str(rng.choice(list(ENV_VALUES)))
            pairs.append((str(rng.choice(ENV_KEYS)), str(rng.choice(ENV_VALUES[tag_env]))))
        if how == "tag" and rng.random() < 0.6:
            tag_cc = str(rng.choice(list(COST_CENTERS)))
            pairs.append((str(rng.choice(COST_CENTER_KEYS)), str(rng.choice(COST_CENTERS[tag_cc]))))
        if rng.random() < 0.3:
            pairs.append(("created-by", "terraform"))
        out.ids.append(_resource_id(p, seed, role, service, i))
        out.names.append(name)
        out.service.append(service)
        out.account.append(role)
        out.tags.append(_tags_json(pairs))
        out.owner.append(owner_of(role, tag_team, name_team, tag_env, tag_cc))
        out.covered.append(p.services[service].compute and rng.random() < 0.4)
    return out


def _resource_id(p: Provider, seed: int, role: int, service: int, i: int) -> str:
    if p.key == "aws":
        return f"arn:aws:{p.services[service].code.lower()[6:] or 'svc'}:{p.region[0]}:" \
               f"{_sub_account_id(p, seed, role)}:{p.services[service].resource_type.lower()}/r-{i:06d}"
    return (f"/subscriptions/{_sub_account_id(p, seed, role)}/resourceGroups/rg-{ACCOUNT_NAMES[role]}/providers/"
            f"{p.services[service].resource_type}/r{i:06d}")


# ---------------------------------------------------------------------------------------------
# Months and rows
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Month:
    idx: int
    period: str
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _months(start_period: str, months: int) -> list[Month]:
    year, month = map(int, start_period.split("-"))
    out = []
    for i in range(months):
        y, m = divmod(month - 1 + i, 12)
        start = datetime(year + y, m + 1, 1, tzinfo=UTC)
        ny, nm = divmod(m + 1, 12)
        out.append(Month(i, start.strftime("%Y-%m"), start, datetime(year + y + ny, nm + 1, 1, tzinfo=UTC)))
    return out


FOCUS_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId", "CapacityReservationStatus",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "ConsumedQuantity",
    "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName",
    "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId",
    "SubAccountId", "SubAccountName", "SubAccountType", "Tags", "x_ServiceCode", ROW_KEY)
MONEY_COLUMNS = ("BilledCost", "CommitmentDiscountQuantity", "ConsumedQuantity", "ContractedCost",
                 "ContractedUnitPrice", "EffectiveCost", "ListCost", "ListUnitPrice",
                 "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice",
                 "PricingQuantity")
TIME_COLUMNS = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
MONEY = pl.Decimal(38, 12)
TIMESTAMP = pl.Datetime("us", "UTC")
TRUTH_COLUMNS = ("kind", *DIMENSIONS)  # kind: direct | <pool id> | k8s:<cluster>


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _money(units: np.ndarray | list) -> pl.Expr:
    """Integers of 1e-8 (null where masked) as exact Decimal(38, 12)."""
    series = pl.Series(units, dtype=pl.Int64)
    return series.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("1e-8"), MONEY)


@dataclass
class Block:
    """Rows under construction: column → values (numpy or list), all of one length."""
    n: int
    cols: dict[str, object] = field(default_factory=dict)

    def frame(self) -> pl.DataFrame:
        exprs = []
        for name in (*FOCUS_COLUMNS, *TRUTH_COLUMNS):
            value = self.cols.get(name)
            if isinstance(value, np.ndarray) and value.dtype.kind in "OU":  # text or masked (None) values
                value = value.tolist()
            if name in MONEY_COLUMNS:
                expr = (pl.lit(None, MONEY) if value is None else _money(value)).alias(name)
            elif name in TIME_COLUMNS:
                expr = pl.Series(name, value, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
                expr = pl.lit(expr)
            elif value is None:
                expr = pl.lit(None, pl.String)
            elif isinstance(value, str):
                expr = pl.lit(value)
            else:
                expr = pl.lit(pl.Series(name, value, dtype=pl.String))
            exprs.append(expr.alias(name))
        return pl.select(exprs) if self.n else pl.DataFrame(schema=self._schema())

    @staticmethod
    def _schema() -> dict:
        return {n: MONEY if n in MONEY_COLUMNS else TIMESTAMP if n in TIME_COLUMNS else pl.String
                for n in (*FOCUS_COLUMNS, *TRUTH_COLUMNS)}


def _common(b: Block, p: Provider, m: Month, seed: int) -> None:
    b.cols.update({
        "BillingAccountId": p.billing_account, "BillingAccountName": p.billing_account_name,
        "BillingAccountType": "Billing Account", "BillingCurrency": p.currency, "PricingCurrency": p.currency,
        "BillingPeriodStart": np.full(b.n, _us(m.start)), "BillingPeriodEnd": np.full(b.n, _us(m.end)),
        "InvoiceId": f"INV-{p.key.upper()}-{m.period}-{_h(seed, p.key, m.period) % 10**6:06d}",
        "InvoiceIssuerName": p.provider_name, "ProviderName": p.provider_name, "PublisherName": p.provider_name,
        "SubAccountType": p.sub_account_type,
    })


def _accounts(b: Block, p: Provider, seed: int, roles: np.ndarray) -> None:
    ids = np.array([_sub_account_id(p, seed, r) for r in range(4)])
    b.cols["SubAccountId"] = ids[roles]
    b.cols["SubAccountName"] = np.array(ACCOUNT_NAMES)[roles]


def _per_service(table: tuple[Service, ...], index: np.ndarray, value) -> np.ndarray:
    """``value(service)`` of each row's service (``index`` into ``table``)."""
    return np.array([value(s) for s in table], dtype=object)[index]


def _service(b: Block, p: Provider, table: tuple[Service, ...], index: np.ndarray) -> None:
    b.cols.update({
        "ServiceName": _per_service(table, index, lambda s: s.name),
        "ServiceCategory": _per_service(table, index, lambda s: s.category),
        "ServiceSubcategory": _per_service(table, index, lambda s: s.subcategory),
        "x_ServiceCode": _per_service(table, index, lambda s: s.code) if p.key == "aws" else None,
        "ResourceType": _per_service(table, index, lambda s: s.resource_type),
    })


def _priced(b: Block, p: Provider, table: tuple[Service, ...], index: np.ndarray, qty: np.ndarray,
            price: np.ndarray, billed: np.ndarray, effective: np.ndarray, covered: np.ndarray, commitment: str) -> None:
    """Usage-like priced columns: list = contracted = price × qty; covered rows are savings-plan usage."""
    cost = price * qty
    sku = lambda s: f"SKU-{s.resource_type.split('/')[-1].upper()}"  # noqa: E731
    b.cols.update({
        "BilledCost": billed, "EffectiveCost": effective, "PricingCurrencyEffectiveCost": effective,
        "ListCost": cost, "ContractedCost": cost, "ListUnitPrice": price, "ContractedUnitPrice": price,
        "PricingCurrencyListUnitPrice": price, "PricingCurrencyContractedUnitPrice": price,
        "PricingQuantity": qty * AMOUNT_SCALE, "ConsumedQuantity": qty * AMOUNT_SCALE,
        "PricingUnit": _per_service(table, index, lambda s: s.unit),
        "ConsumedUnit": _per_service(table, index, lambda s: s.unit),
        "PricingCategory": np.where(covered, "Committed", "Standard"),
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based",
        "RegionId": p.region[0], "RegionName": p.region[1],
        "SkuId": _per_service(table, index, sku),
        "SkuPriceId": _per_service(table, index, lambda s: f"{sku(s)}-{s.unit.upper()}"),
        "SkuMeter": _per_service(table, index, lambda s: s.unit),
        "ChargeDescription": _per_service(table, index, lambda s: f"{s.name} usage"),
        "CommitmentDiscountId": np.where(covered, commitment, None),
        "CommitmentDiscountCategory": np.where(covered, "Spend", None),
        "CommitmentDiscountName": np.where(covered, "compute savings plan", None),
        "CommitmentDiscountType": np.where(covered, "Savings Plan", None),
        "CommitmentDiscountStatus": np.where(covered, "Used", None),
        "CommitmentDiscountQuantity": np.where(covered, effective, None),
        "CommitmentDiscountUnit": np.where(covered, p.currency, None),
    })


def _commitment_id(p: Provider, seed: int) -> str:
    if p.key == "aws":
        return f"arn:aws:savingsplans::{p.billing_account}:savingsplan/sp-{_h(seed, 'sp') % 10**12:012d}"
    return f"/providers/Microsoft.BillingBenefits/savingsPlanOrders/{_h(seed, 'spo') % 10**8:08d}"


def _bulk(p: Provider, m: Month, seed: int, res: Resources, lo: int, hi: int) -> Block:
    """Hourly usage rows ``lo``..``hi`` of the provider's month (each a function of its position)."""
    n = hi - lo
    rng = _rng(seed, p.key, m.period, "bulk", lo)
    r = rng.integers(len(res.ids), size=n)
    service_of = np.array(res.service)[r]
    start = _us(m.start) + rng.integers(m.days * 24, size=n) * 3_600_000_000
    qty = rng.integers(1, 40, size=n)
    price = np.array([s.price for s in p.services])[service_of]
    cost = price * qty
    covered = np.array(res.covered)[r] & (rng.random(n) < COVERED_SHARE)
    effective = np.where(covered, cost * COVERED_EFFECTIVE[0] // COVERED_EFFECTIVE[1], cost)
    b = Block(n)
    _common(b, p, m, seed)
    _accounts(b, p, seed, np.array(res.account)[r])
    _service(b, p, p.services, service_of)
    _priced(b, p, p.services, service_of, qty, price, np.where(covered, 0, cost), effective, covered,
            _commitment_id(p, seed))
    numbers = pl.Series(np.arange(lo, hi)).cast(pl.String).str.zfill(9)
    b.cols.update({
        "ChargePeriodStart": start, "ChargePeriodEnd": start + 3_600_000_000,
        "ResourceId": np.array(res.ids)[r], "ResourceName": np.array(res.names)[r],
        "Tags": np.array(res.tags, dtype=object)[r],
        ROW_KEY: (f"{p.key}-{m.period}-u" + numbers).to_numpy(), "kind": "direct",
        **{d: np.array([o[k] for o in res.owner], dtype=object)[r] for k, d in enumerate(DIMENSIONS)},
    })
    return b


@dataclass
class SpecialRow:
    """One row written by hand: a pool row, a node-day, a purchase, tax, credit or refund."""
    key: str
    kind: str  # direct | <pool id> | k8s:<cluster>
    category: str
    service: Service | None
    role: int
    start: datetime
    end: datetime
    billed: int  # integers of 1e-8
    effective: int
    qty: int | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    tags: str | None = None
    owner: tuple[str, str, str] = (UNALLOCATED, UNALLOCATED, UNALLOCATED)
    description: str = ""
    commitment: str | None = None  # covered by (usage: a reservation) or bought (purchase: a savings plan)
    frequency: str = "Usage-Based"
    price: int | None = None  # list unit price (default: the billed amount over the quantity)


def _special_block(p: Provider, m: Month, seed: int, rows: list[SpecialRow]) -> Block:
    b = Block(len(rows))
    _common(b, p, m, seed)
    _accounts(b, p, seed, np.array([r.role for r in rows], dtype=np.int64))
    usage = [r.category == "Usage" for r in rows]
    purchase = [r.category == "Purchase" for r in rows]
    tax = [r.category == "Tax" for r in rows]
    services = [r.service or TAX_SERVICE for r in rows]
    table = tuple(dict.fromkeys(services))
    index = np.array([table.index(s) for s in services], dtype=np.int64)
    _service(b, p, table, index)
    covered = np.array([u and r.commitment is not None for u, r in zip(usage, rows)])
    qty = np.array([r.qty or 1 for r in rows], dtype=np.int64)
    price = np.array([r.billed // (r.qty or 1) if r.price is None else r.price for r in rows], dtype=np.int64)
    _priced(b, p, table, index, qty, price, np.array([r.billed for r in rows]),
            np.array([r.effective for r in rows]), covered, "")
    amounts = np.array([r.billed for r in rows], dtype=np.int64)
    list_cost = np.where(usage, price * qty, amounts)
    priced = np.array(usage) | np.array(purchase)
    mask = lambda values, where: [v if w else None for v, w in zip(values, where)]  # noqa: E731
    b.cols.update({
        "ChargeCategory": [r.category for r in rows], "ChargeFrequency": [r.frequency for r in rows],
        "ChargeDescription": [r.description for r in rows],
        "ChargePeriodStart": [_us(r.start) for r in rows], "ChargePeriodEnd": [_us(r.end) for r in rows],
        "ListCost": list_cost, "ContractedCost": list_cost,
        "ListUnitPrice": mask(price, priced), "ContractedUnitPrice": mask(price, priced),
        "PricingCurrencyListUnitPrice": mask(price, priced), "PricingCurrencyContractedUnitPrice": mask(price, priced),
        "PricingQuantity": mask(qty * AMOUNT_SCALE, priced), "PricingUnit": mask([s.unit for s in services], priced),
        "ConsumedQuantity": mask(qty * AMOUNT_SCALE, usage), "ConsumedUnit": mask([s.unit for s in services], usage),
        "PricingCategory": [("Committed" if c else "Standard") if pr else None for c, pr in zip(covered, priced)],
        "SkuId": mask(b.cols["SkuId"], priced), "SkuPriceId": mask(b.cols["SkuPriceId"], priced),
        "SkuMeter": mask(b.cols["SkuMeter"], priced),
        "RegionId": mask([p.region[0]] * len(rows), [not t for t in tax]),
        "RegionName": mask([p.region[1]] * len(rows), [not t for t in tax]),
        "CommitmentDiscountId": [r.commitment for r in rows],
        "CommitmentDiscountCategory": [("Usage" if c else "Spend") if r.commitment else None
                                       for r, c in zip(rows, covered)],
        "CommitmentDiscountName": [("reserved node" if c else "compute savings plan") if r.commitment else None
                                   for r, c in zip(rows, covered)],
        "CommitmentDiscountType": [("Reservation" if c else "Savings Plan") if r.commitment else None
                                   for r, c in zip(rows, covered)],
        "CommitmentDiscountStatus": ["Used" if c else None for c in covered],
        "CommitmentDiscountQuantity": [r.qty * AMOUNT_SCALE if c else r.billed if r.commitment else None
                                       for r, c in zip(rows, covered)],
        "CommitmentDiscountUnit": [("Hours" if c else p.currency) if r.commitment else None
                                   for r, c in zip(rows, covered)],
        "ResourceId": [r.resource_id for r in rows], "ResourceName": [r.resource_name for r in rows],
        "ResourceType": [s.resource_type if r.resource_id else None for s, r in zip(services, rows)],
        "Tags": [r.tags for r in rows], ROW_KEY: [r.key for r in rows], "kind": [r.kind for r in rows],
        **{d: [r.owner[k] for r in rows] for k, d in enumerate(DIMENSIONS)},
    })
    return b


TAX_SERVICE = Service("Tax", None, "Other", "Other (Other)", "", 0, "")


def _days(m: Month) -> list[datetime]:
    return [m.start + timedelta(days=d) for d in range(m.days)]


def _pool_rows(p: Provider, m: Month, seed: int) -> list[SpecialRow]:
    """Per day: one support row, one network row tagged ``shared``, two logging rows (shared services, web-dev);
    and a support credit (a negative pool row) each month."""
    rng = _rng(seed, p.key, m.period, "pools")
    sub = _sub_account_id(p, seed, SHARED)
    rows = []
    for d, day in enumerate(_days(m)):
        nxt = day + timedelta(days=1)
        for role, service, pool, tags, what in (
                (SHARED, p.support, SUPPORT, None, "support"),
                (SHARED, p.network, NETWORK, _tags_json([("shared", "true")]), "transit"),
                (SHARED, p.logging, LOGGING, None, "logs-shared"),
                (WEB, p.logging, LOGGING, _tags_json([("created-by", "terraform")]), "logs-web")):
            qty = int(rng.integers(5, 60))
            cost = service.price * qty // 24 + int(rng.integers(0, 10**6))  # odd amounts: remainders to split
            rows.append(SpecialRow(
                f"{p.key}-{m.period}-p{d:02d}-{what}", pool, "Usage", service, role, day, nxt, cost, cost, qty=1,
                resource_id=f"{sub}/{what}" if role == SHARED else f"{_sub_account_id(p, seed, role)}/{what}",
                resource_name=what, tags=tags, owner=(pool, *owner_of(role, None, None, None, None)[1:]),
                description=f"{service.name} {what}"))
    credit = -int(rng.integers(10**8, 5 * 10**9))
    rows.append(SpecialRow(f"{p.key}-{m.period}-support-credit", SUPPORT, "Credit", p.support, SHARED, m.start, m.end,
                           credit, credit, owner=(SUPPORT, *ACCOUNT_OWNERS[SHARED][1:]),
                           description="Support credit", frequency="One-Time"))
    return rows


def _other_rows(p: Provider, m: Month, seed: int, res: Resources) -> list[SpecialRow]:
    """The month's commitment purchase, tax per sub account, a credit on two accounts and a refund on a resource."""
    rng = _rng(seed, p.key, m.period, "other")
    shared = ACCOUNT_OWNERS[SHARED]
    fee = int(rng.integers(10**10, 5 * 10**10))
    rows = [SpecialRow(f"{p.key}-{m.period}-purchase", "direct", "Purchase", p.services[0], SHARED, m.start, m.end,
                       fee, 0, commitment=_commitment_id(p, seed), resource_id=_commitment_id(p, seed),
                       resource_name="compute savings plan", owner=shared, description="Savings plan fee",
                       frequency="Recurring")]
    for role in range(4):
        tax = int(rng.integers(10**8, 10**10))
        rows.append(SpecialRow(f"{p.key}-{m.period}-tax{role}", "direct", "Tax", None, role, m.start, m.end, tax, tax,
                               owner=owner_of(role, None, None, None, None), description="Sales tax",
                               frequency="Recurring"))
    for role in (ML, SANDBOX):
        credit = -int(rng.integers(10**8, 10**10))
        rows.append(SpecialRow(f"{p.key}-{m.period}-credit{role}", "direct", "Credit", p.services[1], role, m.start,
                               m.end, credit, credit, owner=owner_of(role, None, None, None, None),
                               description="Promotional credit", frequency="One-Time"))
    i = int(rng.integers(len(res.ids)))
    refund = -int(rng.integers(10**7, 10**9))
    rows.append(SpecialRow(f"{p.key}-{m.period}-refund", "direct", "Adjustment", p.services[res.service[i]],
                           res.account[i], m.start, m.end, refund, refund, resource_id=res.ids[i],
                           resource_name=res.names[i], tags=res.tags[i], owner=res.owner[i],
                           description="Refund of an overcharge", frequency="One-Time"))
    return rows


# ---------------------------------------------------------------------------------------------
# Kubernetes: node instances billed per day; their telemetry is generate.kubernetes'
# ---------------------------------------------------------------------------------------------
CPU_WEIGHT = Fraction(1, 2)  # the rules' cpu_weight (requests basis, idle owned by IDLE_TEAM)


@dataclass(frozen=True)
class NodeInstance:
    """A compute instance a cluster runs on, as the bill names it (AWS ``i-…``, an Azure VM or scale set)."""
    resource_id: str
    name: str
    reserved: bool  # covered by a reservation: BilledCost 0, EffectiveCost the reservation's rate


def _node_instances(p: Provider, seed: int) -> list[NodeInstance]:
    if p.key == "aws":
        return [NodeInstance(f"i-{_h(seed, p.cluster, i) % 16**17:017x}", f"{p.cluster}-worker-{i}", i == 1)
                for i in range(3)]
    base = (f"/subscriptions/{_sub_account_id(p, seed, SHARED)}/resourceGroups/mc_rg-aks_{p.cluster}_westeurope/"
            f"providers/Microsoft.Compute")
    return [NodeInstance(f"{base}/virtualMachineScaleSets/aks-nodepool1-{_h(seed, 1) % 10**8:08d}-vmss",
                         "aks-nodepool1", True),
            NodeInstance(f"{base}/virtualMachineScaleSets/aks-nodepool2-{_h(seed, 2) % 10**8:08d}-vmss",
                         "aks-nodepool2", False),
            NodeInstance(f"{base}/virtualMachines/aks-system-0", "aks-system-0", False)]


def _node_rows(p: Provider, m: Month, seed: int, instances: list[NodeInstance]) -> list[SpecialRow]:
    """One row per instance and day, tagged with its cluster (which is how generate.kubernetes finds it)."""
    rng = _rng(seed, p.key, m.period, "nodes")
    rows = []
    for d, day in enumerate(_days(m)):
        for i, node in enumerate(instances):
            price = p.node.price + int(rng.integers(0, 10**4))
            cost = price * 24
            rows.append(SpecialRow(
                f"{p.key}-{m.period}-n{d:02d}-{i}", f"k8s:{p.cluster}", "Usage", p.node, SHARED, day,
                day + timedelta(days=1), 0 if node.reserved else cost, cost * 6 // 10 if node.reserved else cost,
                qty=24, price=price, resource_id=node.resource_id, resource_name=node.name,
                tags=_tags_json([("kubernetes-cluster", p.cluster)]), owner=ACCOUNT_OWNERS[SHARED],
                description=f"{p.node.name} {node.name}",
                commitment=f"{p.key}-reservation-{p.cluster}-{node.name}" if node.reserved else None))
    return rows


def _decimal_text(text: str) -> Fraction:
    return Fraction(Decimal(text))


def workload_weights(kubernetes_dir: Path) -> dict[tuple[str, date], list[tuple[str, str | None, int]]]:
    """From the OpenCost exports and nodes files as written, per (node ResourceId, day): each workload's
    (x_AllocatedResourceId, team or None, weight in integers of 1e-12) and the node's idle capacity — the
    documented requests basis: ``cpu_weight × cpu / max(capacity, Σ cpu) + (1 − cpu_weight) × memory /
    max(capacity, Σ memory)``, floored to 12 places, idle the rest (read here with ``csv``, not by
    ``allocation.kubernetes``)."""
    requests: dict[tuple[str, str, date], dict[tuple[str, str, str], list[Fraction]]] = defaultdict(dict)
    capacity: dict[tuple[str, str], tuple[str, Fraction, Fraction]] = {}
    for folder in sorted(d for d in kubernetes_dir.iterdir() if d.is_dir()):
        cluster = folder.name
        with (folder / "nodes.csv").open(newline="", encoding="utf-8") as handle:
            for r in csv.DictReader(handle):
                resource = r["provider_id"].split("/")[-1] if r["provider_id"].startswith("aws://") \
                    else r["provider_id"].removeprefix("azure://")
                capacity[(cluster, r["node"])] = (resource, _decimal_text(r["cpu_cores"]),
                                                  _decimal_text(r["memory_bytes"]))
        for export in sorted(folder.glob("opencost-*.csv")):
            with export.open(newline="", encoding="utf-8") as handle:
                for r in csv.DictReader(handle):
                    if not r["Label_kubernetes_io_hostname"]:
                        continue  # volumes no pod mounts: no node
                    workload = (r["Namespace"], r["ControllerKind"] or "pod", r["ControllerName"] or r["Pod"])
                    entry = requests[(cluster, r["Label_kubernetes_io_hostname"], date.fromisoformat(r["Date"]))]
                    cpu, ram = entry.setdefault(workload, [Fraction(0), Fraction(0)])
                    entry[workload] = [cpu + _decimal_text(r["CPUCoreRequestAverage"]),
                                       ram + _decimal_text(r["RAMBytesRequestAverage"])]
    out: dict[tuple[str, date], list[tuple[str, str | None, int]]] = defaultdict(list)
    for (cluster, node, day), workloads in sorted(requests.items()):
        resource, cores, memory = capacity[(cluster, node)]
        cpu_whole = max(cores, sum(v[0] for v in workloads.values()))
        ram_whole = max(memory, sum(v[1] for v in workloads.values()))
        used = 0
        for (namespace, kind, controller), (cpu, ram) in sorted(workloads.items()):
            weight = math.floor((CPU_WEIGHT * cpu / cpu_whole + (1 - CPU_WEIGHT) * ram / ram_whole) * UNITS)
            if weight > 0:
                used += weight
                out[(resource, day)].append((f"{cluster}/{namespace}/{kind}/{controller}",
                                             _namespace_team(namespace), weight))
        if used < UNITS:
            out[(resource, day)].append((f"{cluster}/__idle__", IDLE_TEAM, UNITS - used))
    return out


def _namespace_team(namespace: str) -> str | None:
    """The rules' namespace mapping (first full match), None: the node row keeps its own team."""
    return next((team for pattern, team in NAMESPACE_TEAMS if re.fullmatch(pattern, namespace)), None)


# ---------------------------------------------------------------------------------------------
# The truth: exact splits in plain Python integers
# ---------------------------------------------------------------------------------------------
def largest_remainder(amount: int, weights: list[tuple[str, int]]) -> list[int]:
    """``amount`` (integers of 1e-12, any sign) split by non-negative integer weights: each share floored, the
    leftover units to the largest remainders (ties: the smaller key first). The shares sum to ``amount``."""
    total = sum(w for _, w in weights)
    floors = [amount * w // total for _, w in weights]
    remainders = [amount * w - f * total for f, (_, w) in zip(floors, weights)]
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], weights[i][0]))[:amount - sum(floors)]:
        floors[i] += 1
    return floors


@dataclass
class Truth:
    """Allocated totals per (period, currency, team, environment, cost center), in integers of 1e-12, and the
    expected shares of every split row."""
    totals: dict[tuple[str, str, str, str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    splits: list[dict] = field(default_factory=list)

    def add(self, period: str, currency: str, owner: tuple[str, str, str], billed: int, effective: int) -> None:
        entry = self.totals[(period, currency, *owner)]
        entry[0] += billed
        entry[1] += effective

    def direct_effective(self, period: str, currency: str, team: str) -> int:
        return sum(v[1] for k, v in self.totals.items() if k[:3] == (period, currency, team))

    def split(self, row: SpecialRow, period: str, currency: str, rule: str, targets: list[tuple[str, str | None, int]],
              method: str) -> None:
        """Split ``row`` over (target key, team or None = the row's own, weight) and record every share (a target
        of weight 0 gets nothing: no share)."""
        targets = [t for t in targets if t[2] > 0]
        weights = [(key, w) for key, _, w in targets]
        billed = largest_remainder(row.billed * TO_UNITS, weights)
        effective = largest_remainder(row.effective * TO_UNITS, weights)
        for (key, team, _), b, e in zip(targets, billed, effective):
            owner = (team or row.owner[0], *row.owner[1:])
            self.add(period, currency, owner, b, e)
            self.splits.append({ROW_KEY: row.key, "x_AllocationRuleId": rule, "x_AllocationMethod": method,
                                "target": key, **dict(zip(DIMENSIONS, owner)),
                                "x_AllocatedBilledCost": _decimal(b), "x_AllocatedEffectiveCost": _decimal(e)})

    def as_json(self) -> list[dict]:
        return [{"x_BillingPeriod": k[0], "BillingCurrency": k[1], **dict(zip(DIMENSIONS, k[2:])),
                 "x_AllocatedBilledCost": str(_decimal(v[0])), "x_AllocatedEffectiveCost": str(_decimal(v[1]))}
                for k, v in sorted(self.totals.items())]


def _decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-12).quantize(Decimal("1e-12"))


def _driver_values(seed: int, day: date) -> dict[str, int]:
    """Log requests per team on ``day`` (every team 0 on the month's zero day; a team may be absent)."""
    if day.day - 1 == ZERO_DRIVER_DAY:
        return dict.fromkeys(POOL_TARGETS, 0)
    return {t: _h(seed, DRIVER, day, t) % 5000 for t in POOL_TARGETS if _h(seed, "absent", day, t) % 7}


def _pools_truth(truth: Truth, p: Provider, m: Month, seed: int, rows: list[SpecialRow]) -> None:
    """Network (fixed) and logging (driver, even on a zero day) first; support last, proportional to each team's
    direct EffectiveCost in the window (every non-pool row, Kubernetes shares included)."""
    proportional = [(t, truth.direct_effective(m.period, p.currency, t)) for t in POOL_TARGETS]
    for row in rows:
        if row.kind == NETWORK:
            weights = [(t, t, w) for t, w in sorted(NETWORK_WEIGHTS.items())]
            truth.split(row, m.period, p.currency, NETWORK, weights, "fixed")
        elif row.kind == LOGGING:
            values = _driver_values(seed, row.start.date())
            even = sum(values.values()) == 0
            weights = [(t, t, 1 if even else values.get(t, 0)) for t in POOL_TARGETS]
            truth.split(row, m.period, p.currency, LOGGING, weights, "driver-even-fallback" if even else "driver")
        elif row.kind == SUPPORT:
            truth.split(row, m.period, p.currency, SUPPORT, [(t, t, w) for t, w in proportional], "proportional")


# ---------------------------------------------------------------------------------------------
# The rules, the catalog, the driver and the spot checks the truth follows
# ---------------------------------------------------------------------------------------------
def _value_map(variants: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Every written variant, normalized as the rules normalize values (casefold, trim), → its owner value."""
    return {v.casefold().strip(): owner for owner, values in variants.items() for v in (owner, *values)}


def rules_document(providers: tuple[Provider, ...], seed: int) -> dict:
    """The rules file (as YAML data) whose outcome the truth is."""
    by_account = lambda role: [_sub_account_id(p, seed, role) for p in providers]  # noqa: E731
    team, env, cost_center = ACCOUNT_OWNERS[SHARED]
    return {
        "name": "acme", "version": RULES_VERSION,
        "dimensions": [
            {"name": "team", "tag_keys": ["team", "owner-team", "squad"], "required": True,
             "values": _value_map({**TEAM_VALUES, IDLE_TEAM: ()})},
            {"name": "environment", "tag_keys": ["env", "environment"],
             "values": _value_map({**ENV_VALUES, SANDBOX_ENVIRONMENT: ()})},
            {"name": "cost_center", "tag_keys": ["cost-center", "costcenter"], "values": _value_map(COST_CENTERS)},
        ],
        "virtual_tags": [
            *[{"id": f"name-{t}", "match": {"ResourceName": {"regex": f"^{prefix}"}}, "set": {"team": t}}
              for t, prefix in NAME_PATTERNS.items()],
            {"id": "shared-services-account", "match": {"SubAccountId": {"in": by_account(SHARED)}},
             "set": {"team": team, "environment": env, "cost_center": cost_center}},
            {"id": "engineering-ou", "match": {"x_AccountPath": {"prefix": "Root/Engineering/"}},
             "set": {"team": {"column": "x_AccountLevel3"}}},
            {"id": "prod-accounts", "match": {"SubAccountName": {"regex": "-prod$"}}, "set": {"environment": "prod"}},
            {"id": "dev-accounts", "match": {"SubAccountName": {"regex": "-dev$"}}, "set": {"environment": "dev"}},
            {"id": "sandbox-environment", "match": {"SubAccountId": {"in": by_account(SANDBOX)}},
             "set": {"environment": SANDBOX_ENVIRONMENT}, "override": True},
        ],
        "pools": [
            {"id": SUPPORT, "match": {"ServiceName": {"regex": "^(AWS Support|Support)"}}, "dimension": "team",
             "method": "proportional", "measure": "EffectiveCost", "targets": list(POOL_TARGETS)},
            {"id": NETWORK, "match": {"ServiceName": {"in": sorted({p.network.name for p in providers})},
                                      "tag:shared": {"exists": True}},
             "dimension": "team", "method": "fixed", "weights": dict(NETWORK_WEIGHTS)},
            {"id": LOGGING, "match": {"ServiceName": {"in": sorted({p.logging.name for p in providers})}},
             "dimension": "team", "method": "driver", "driver": DRIVER, "on_zero": "even",
             "targets": list(POOL_TARGETS)},
        ],
        "kubernetes": {
            "basis": "requests", "cpu_weight": float(CPU_WEIGHT), "idle": "owner", "idle_values": {"team": IDLE_TEAM},
            "namespaces": [{"pattern": pattern, "set": {"team": team}} for pattern, team in NAMESPACE_TEAMS],
        },
    }


def _catalog_csv(providers: tuple[Provider, ...], seed: int) -> str:
    lines = ["provider,account_id,account_name,kind,path"]
    for p in providers:
        lines.append(f"{p.key},{p.billing_account},{p.billing_account_name},billing,Root")
        lines += [f"{p.key},{_sub_account_id(p, seed, role)},{ACCOUNT_NAMES[role]},sub,{ACCOUNT_PATHS[role]}"
                  for role in range(4)]
    return "\n".join(lines) + "\n"


def _driver_csv(months: list[Month], seed: int) -> str:
    lines = ["date,team,value"]
    for m in months:
        for day in _days(m):
            lines += [f"{day.date().isoformat()},{t},{v}" for t, v in _driver_values(seed, day.date()).items()]
    return "\n".join(lines) + "\n"


def _spot_checks_csv(providers: tuple[Provider, ...], resources: list[Resources], seed: int) -> str:
    """A sample of resources (never pool or node rows) with their true owner values."""
    lines = ["ResourceId," + ",".join(DIMENSIONS)]
    for p, res in zip(providers, resources):
        picks = _rng(seed, p.key, "spot").choice(len(res.ids), size=min(15, len(res.ids)), replace=False)
        lines += [f"{res.ids[i]}," + ",".join(res.owner[i]) for i in sorted(picks)]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AllocationSummary:
    """What ``generate_allocation`` wrote."""
    out_dir: Path
    sources: dict[str, str]  # export source → its location under out_dir
    rows: int  # FOCUS rows written, all sources and months
    rows_per_period: dict[str, int]
    data_files: list[Path]
    rules_path: Path
    expected_dir: Path  # rows.parquet, splits.parquet, totals.json
    clusters: dict[str, str]  # cluster → export source
    seconds: float


def generate_allocation(out: str | Path, *, rows: int, months: int = 1, seed: int = 0,
                        start_period: str = "2024-01") -> AllocationSummary:
    """Write native FOCUS deliveries of two export sources with known owners, the rules, catalog, driver,
    telemetry and spot checks they need, and the truth under ``expected/``. ``rows`` is the number of hourly
    usage rows over all sources and months (each month adds its pool, node, purchase, tax, credit and refund
    rows). Deterministic for a given argument set."""
    started = time.perf_counter()
    if months < 1 or rows < 2 * months:
        raise ValueError(f"months must be >= 1 and rows >= 2 per source and month (rows={rows}, months={months})")
    out = Path(out)
    providers = _providers(seed)
    plan = _months(start_period, months)
    resources = [_build_resources(p, seed, max(40, min(5000, rows // (2 * months * 20)))) for p in providers]
    truth = Truth()
    data_files: list[Path] = []
    rows_per_period = dict.fromkeys((m.period for m in plan), 0)
    expected = out / "expected"
    split_rows: dict[tuple[int, int], tuple[list[SpecialRow], list[SpecialRow]]] = {}  # (provider, month) → nodes, pools
    node_frames = []
    for k, (p, res) in enumerate(zip(providers, resources)):
        instances = _node_instances(p, seed)
        for m in plan:
            n = _part(_part(rows, len(providers), k), months, m.idx)
            split_rows[(k, m.idx)] = nodes, pools = _node_rows(p, m, seed, instances), _pool_rows(p, m, seed)
            blocks = [_bulk(p, m, seed, res, lo, min(n, lo + CHUNK_ROWS)) for lo in range(0, n, CHUNK_ROWS)]
            blocks.append(_special_block(p, m, seed, [*_other_rows(p, m, seed, res), *pools, *nodes]))
            for i, block in enumerate(blocks):
                frame = block.frame()
                path = out / "focus" / p.key / m.period / f"part-{i:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                frame.select(FOCUS_COLUMNS).write_parquet(path)
                data_files.append(path)
                _write_truth_part(frame, p, m, expected / "rows" / f"{p.key}-{m.period}-{i:05d}.parquet")
                _add_direct(truth, frame, m, p)
                rows_per_period[m.period] += frame.height
            node_frames.append(frame.filter(pl.col("kind").str.starts_with("k8s:")))  # the last block: special rows
    telemetry = generate_kubernetes(pl.concat(node_frames), out, seed=seed)
    telemetry.expected_path.replace(expected / telemetry.expected_path.name)  # truth stays out of the landing zone
    weights = workload_weights(out / "kubernetes")
    for (k, month_idx), (nodes, pools) in split_rows.items():
        p, m = providers[k], plan[month_idx]
        for row in nodes:
            truth.split(row, m.period, p.currency, f"k8s:{p.cluster}", weights[(row.resource_id, row.start.date())],
                        "kubernetes")
        _pools_truth(truth, p, m, seed, pools)
    pl.DataFrame(truth.splits).write_parquet(expected / "splits.parquet")
    _write_text(expected / "totals.json", json.dumps(truth.as_json(), indent=1) + "\n")
    rules_path = _write_text(out / "allocation" / RULES_FILE,
                             yaml.safe_dump(rules_document(providers, seed), sort_keys=False, allow_unicode=True))
    _write_text(out / "allocation" / "settings.yaml", f"active: {RULES_FILE}\n")
    _write_text(out / "allocation" / "drivers" / DRIVER / "requests.csv", _driver_csv(plan, seed))
    _write_text(out / "allocation" / "spot_checks" / "spot_checks.csv", _spot_checks_csv(providers, resources, seed))
    _write_text(out / "accounts" / "accounts.csv", _catalog_csv(providers, seed))
    write_sources(out, [export_source(p.source, "focus", f"focus/{p.key}") for p in providers])
    return AllocationSummary(
        out_dir=out, sources={p.source: f"focus/{p.key}" for p in providers}, rows=sum(rows_per_period.values()),
        rows_per_period=rows_per_period, data_files=data_files, rules_path=rules_path, expected_dir=expected,
        clusters={p.cluster: p.source for p in providers}, seconds=time.perf_counter() - started)


def _part(total: int, parts: int, i: int) -> int:
    """The ``i``-th of ``parts`` near-equal parts of ``total`` (the first ones take the remainder)."""
    return total // parts + (1 if i < total % parts else 0)


def _write_truth_part(frame: pl.DataFrame, p: Provider, m: Month, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.select(ROW_KEY, pl.lit(p.source).alias("x_Source"), pl.lit(m.period).alias("x_BillingPeriod"),
                 "BillingCurrency", "BillingAccountId", "ChargeCategory", "ResourceId", "BilledCost", "EffectiveCost",
                 *TRUTH_COLUMNS).write_parquet(path)
    return path


def _add_direct(truth: Truth, frame: pl.DataFrame, m: Month, p: Provider) -> None:
    """The unsplit rows' amounts to their owners (exact Decimal sums, then integers of 1e-12)."""
    sums = (frame.filter(pl.col("kind") == "direct").group_by(DIMENSIONS)
            .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()))
    for row in sums.iter_rows(named=True):
        truth.add(m.period, p.currency, tuple(row[d] for d in DIMENSIONS),
                  int(row["BilledCost"].scaleb(12)), int(row["EffectiveCost"].scaleb(12)))
