"""Synthetic GCP Cloud Billing exports: BigQuery extracts of the standard or detailed usage cost table.

``generate_gcp(out_dir, rows=...)`` writes, under ``out_dir``::

    <export>/<YYYY-MM>/<table>-<nnnnnnnnnnnn>.parquet | .jsonl   one folder per invoice month
    <export>/expected_totals.json
    invoices/<billing account>/<YYYY-MM>.csv

``<table>`` is ``gcp_billing_export_resource_v1`` (detailed) or ``gcp_billing_export_v1``
(standard); files are what ``bq extract`` of one invoice month writes (nested Parquet or
newline-delimited JSON with ``2024-01-01 00:00:00 UTC`` timestamps), ``rows_per_file`` rows each.

What is in it
-------------
Several billing accounts (USD and EUR; one a reseller sub-account with invoice.publisher_type
PARTNER), each with three projects (labels, ancestry, ancestors), usage of Compute Engine (N1 cores
and RAM, Spot cores, persistent disk, egress), Cloud Storage, BigQuery, Cloud SQL, Kubernetes
Engine, Cloud Run, Cloud Logging, Networking and Pub/Sub in several regions and multi-regions,
hourly windows across the Pacific-time invoice month (so the first UTC hours of a month belong to
the previous invoice) plus some late usage of the previous month. Credits: sustained use
discounts, committed use discounts (resource-based, with the hourly ``Commitment v1`` fee rows of
the commitments), free tier, promotional (free-trial) credits and a contract discount. Project tax
rows (``cost_type`` tax), usage corrections of the previous month (``adjustment_info`` negation and
re-monetization) and a goodwill adjustment. Detailed exports add ``resource``, ``tags``, ``price``
and ``subscription.instance_id`` (on CUD fees and the usage the CUD covers).

Money rule (what ``expected_totals.json`` relies on)
----------------------------------------------------
Every money value (cost, credit amount, cost_at_list) is a whole number of micro-units (6 decimals)
of at most 5,000 units, written as the float64 ``micros / 1e6``: in that range polars' Float64 ->
Decimal(38, 12) cast gives exactly the 6-decimal value, so totals are exact sums of integers. Tax
is computed per project and service for each block of at most ``BLOCK_ROWS`` usage rows (one tax
row per project, service and block keeps every tax amount in range). The invoice total of an
account and month is ``sum(cost) + sum(credits.amount)``; FOCUS rows = raw rows + one Credit row
per promotional credit (the converter splits those off, see sources/gcp_billing/).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from focus_platform.generate.aws_cur import GenerationSummary
from focus_platform.generate.landing import export_source, write_sources

PACIFIC = ZoneInfo("America/Los_Angeles")
BLOCK_ROWS = 100_000  # usage rows generated at once (one Parquet row group)
MAX_MICROS = 5_000_000_000  # 5,000 currency units: the float64 exactness bound of the money rule
HOUR_US = 3_600_000_000
GIB = 2.0 ** 30
TIB = 2.0 ** 40

# =============================================================================================
# Catalog
# =============================================================================================
# location index: (location, country, region, zone)
LOCATIONS = (
    ("us-central1", "US", "us-central1", "us-central1-a"),
    ("us-central1", "US", "us-central1", "us-central1-b"),
    ("us-central1", "US", "us-central1", None),
    ("us-east1", "US", "us-east1", "us-east1-b"),
    ("us-east1", "US", "us-east1", None),
    ("europe-west1", "BE", "europe-west1", "europe-west1-b"),
    ("europe-west1", "BE", "europe-west1", None),
    ("europe-west4", "NL", "europe-west4", "europe-west4-a"),
    ("asia-northeast1", "JP", "asia-northeast1", "asia-northeast1-a"),
    ("us", "US", None, None),
    ("eu", None, None, None),
    ("global", None, None, None),
)
ZONAL = [i for i, loc in enumerate(LOCATIONS) if loc[3]]
REGIONAL = [i for i, loc in enumerate(LOCATIONS) if loc[2] and not loc[3]]
MULTI = [9, 10]
GLOBAL = [11]
CUD_LOCATIONS = {0, 1}  # us-central1 zones: where the commitments are
CUD_COVERAGE = 0.45  # share of eligible usage rows there that a CUD credit covers
REGION_FACTOR = {"us-central1": 1.0, "us-east1": 1.0, "europe-west1": 1.1, "europe-west4": 1.1,
                 "asia-northeast1": 1.15, "us": 1.0, "eu": 1.05, "global": 1.0}


@dataclass(frozen=True)
class Sku:
    service: int  # index into SERVICES
    id: str
    description: str
    usage_unit: str
    pricing_unit: str
    model: str  # amount model (see _amounts)
    usd: float  # price per pricing unit
    locations: tuple[int, ...]
    weight: float
    resource: tuple[str, str, str] | None = None  # host, collection, name prefix
    credits: str = ""  # s = sustained use, c = committed use (cpu), r = committed use (ram), f = free tier
    system_labels: tuple[tuple[str, str], ...] = ()


SERVICES = (  # id, description
    ("6F81-5844-456A", "Compute Engine"),
    ("95FF-2EF5-5EA1", "Cloud Storage"),
    ("24E6-581D-38E5", "BigQuery"),
    ("9662-B51E-5089", "Cloud SQL"),
    ("CCD8-9BF1-090E", "Kubernetes Engine"),
    ("152E-C115-5142", "Cloud Run"),
    ("5490-F7B7-8DF6", "Cloud Logging"),
    ("E505-1604-58F8", "Networking"),
    ("A1E8-BE35-7EBC", "Cloud Pub/Sub"),
)
GCE_INSTANCE = ("compute.googleapis.com", "instances", "vm-")
SKUS = (
    Sku(0, "2E27-4F75-95CD", "N1 Predefined Instance Core running in Americas", "seconds", "hour", "cores",
        0.031611, (0, 1, 3), 14.0, GCE_INSTANCE, "sc",
        (("compute.googleapis.com/machine_spec", "n1-standard-4"), ("compute.googleapis.com/cores", "4"))),
    Sku(0, "6C71-F2B3-8BE3", "N1 Predefined Instance Ram running in Americas", "byte-seconds", "gibibyte hour",
        "ram", 0.004237, (0, 1, 3), 14.0, GCE_INSTANCE, "sr",
        (("compute.googleapis.com/machine_spec", "n1-standard-4"), ("compute.googleapis.com/memory", "15360"))),
    Sku(0, "9431-86A1-4E1B", "N1 Predefined Instance Core running in EMEA", "seconds", "hour", "cores",
        0.034773, (5, 7), 5.0, GCE_INSTANCE, "s"),
    Sku(0, "1E8A-0D6F-2F43", "Spot Preemptible N1 Predefined Instance Core running in Americas", "seconds",
        "hour", "cores", 0.006655, (0, 3), 3.0, GCE_INSTANCE),
    Sku(0, "D973-5D65-BAB2", "Storage PD Capacity", "byte-seconds", "gibibyte month", "disk", 0.04,
        (0, 1, 3, 5, 7, 8), 8.0, ("compute.googleapis.com", "disks", "disk-")),
    Sku(0, "9DE9-9092-B3BC", "Network Internet Egress from Americas to Americas", "bytes", "gibibyte", "egress",
        0.12, (0, 1, 3), 4.0, GCE_INSTANCE),
    Sku(1, "E5F0-6A5D-7BAD", "Standard Storage US Multi-region", "byte-seconds", "gibibyte month", "disk",
        0.026, (9,), 6.0, ("storage.googleapis.com", "buckets", "bucket-")),
    Sku(1, "1F89-3B26-0B5E", "Class A Operations", "requests", "requests", "requests", 0.000005, (9, 10),
        3.0, ("storage.googleapis.com", "buckets", "bucket-")),
    Sku(2, "F17B-412E-CB64", "Analysis", "bytes", "tebibyte", "scan", 6.25, (9, 10), 5.0,
        ("bigquery.googleapis.com", "datasets", "dataset_"), "f"),
    Sku(2, "1DF5-1F98-1DD1", "Active Storage", "byte-seconds", "gibibyte month", "disk", 0.02, (9, 10), 3.0,
        ("bigquery.googleapis.com", "datasets", "dataset_")),
    Sku(3, "B4B8-0C5B-7C31", "Cloud SQL for PostgreSQL: Zonal - vCPU in Americas", "seconds", "hour", "cores",
        0.0413, (0, 3), 5.0, ("cloudsql.googleapis.com", "instances", "pg-")),
    Sku(4, "B561-BFBD-1264", "Cluster Management Fee", "seconds", "hour", "mgmt", 0.1, (2, 4, 6), 3.0,
        ("container.googleapis.com", "clusters", "gke-")),
    Sku(5, "A8B6-EB4D-3B2B", "CPU Allocation Time", "seconds", "seconds", "seconds", 0.000024, (2, 4, 6), 4.0,
        ("run.googleapis.com", "services", "svc-"), "f"),
    Sku(6, "143F-A1B0-E0BE", "Log Volume", "bytes", "gibibyte", "log", 0.5, (11,), 4.0, None, "f"),
    Sku(7, "AA7A-4F0B-19D4", "Cloud NAT Gateway Uptime", "seconds", "hour", "mgmt", 0.0014, (2, 4, 6), 2.0,
        ("compute.googleapis.com", "routers", "nat-")),
    Sku(8, "8C3C-A5C3-4A0C", "Message Delivery Basic", "bytes", "tebibyte", "scan", 40.0, (11,), 2.0,
        ("pubsub.googleapis.com", "topics", "topic-")),
)
COMMITMENT_SKUS = {  # CUD kind -> (sku id, description, usage unit, pricing unit, USD per pricing unit per hour)
    "cpu": ("76DA-BD5B-1A4B", "Commitment v1: Cpu in Americas for 1 Year", "seconds", "hour", 0.019915),
    "ram": ("3A3B-5F2D-D1C9", "Commitment v1: Ram in Americas for 1 Year", "byte-seconds", "gibibyte hour",
            0.002669),
}
SERVICE_FIRST_SKU = [next(i for i, s in enumerate(SKUS) if s.service == k) for k in range(len(SERVICES))]

CREDIT_KINDS = ("sud", "cud", "free", "promo", "discount")
CREDIT_TYPE = {"sud": "SUSTAINED_USAGE_DISCOUNT", "cud": "COMMITTED_USAGE_DISCOUNT", "free": "FREE_TIER",
               "promo": "PROMOTION", "discount": "DISCOUNT"}
LABEL_SETS = (
    (), (("env", "prod"), ("team", "payments")), (("env", "prod"), ("team", "search"), ("app", "api")),
    (("env", "staging"), ("team", "payments")), (("env", "dev"),), (("team", "data"), ("app", "etl")),
    (("env", "prod"), ("team", "data"), ("cost-center", "cc-4410")),
)


@dataclass(frozen=True)
class Project:
    id: str
    number: str
    name: str
    labels: tuple[tuple[str, str], ...]
    ancestry_numbers: str
    ancestors: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Account:
    idx: int
    id: str
    name: str
    currency: str
    rate: float  # currency_conversion_rate (account currency per USD)
    publisher_type: str  # GOOGLE / PARTNER
    issuer: str
    tax_rate: float
    promo: bool
    discount: float  # contract discount credit share of cost
    cud: bool
    list_markup: float  # cost_at_list = cost x (1 + markup)
    projects: tuple[Project, ...]
    commitments: tuple[tuple[str, str], ...]  # kind (cpu / ram), subscription id


ACCOUNT_TEMPLATES = (
    # name, currency, rate, publisher, issuer, tax, promo, discount, cud, markup
    ("Acme Corp", "USD", 1.0, "GOOGLE", "Google LLC", 0.0625, True, 0.0, True, 0.0),
    ("Acme Europe", "EUR", 0.92, "GOOGLE", "Google Cloud EMEA Limited", 0.21, False, 0.04, True, 0.06),
    ("Acme Labs (reseller)", "USD", 1.0, "PARTNER", "Example Cloud Reseller Inc.", 0.0, False, 0.0, False, 0.0),
)


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def _account_id(seed: int, idx: int) -> str:
    text = f"{_h(seed, 'account', idx):018X}"[-18:]
    return f"{text[:6]}-{text[6:12]}-{text[12:]}"


def _build_accounts(seed: int, n: int) -> list[Account]:
    out = []
    for i in range(n):
        name, currency, rate, publisher, issuer, tax, promo, discount, cud, markup = ACCOUNT_TEMPLATES[
            i % len(ACCOUNT_TEMPLATES)]
        if i >= len(ACCOUNT_TEMPLATES):
            name = f"{name} {i // len(ACCOUNT_TEMPLATES) + 1}"
        org = str(100000000000 + _h(seed, "org", i) % 800000000000)
        folder = str(100000000000 + _h(seed, "folder", i) % 800000000000)
        slug = name.lower().split()[0]
        projects = []
        for p, (suffix, labels) in enumerate((("prod", (("env", "prod"), ("cost-center", "cc-1000"))),
                                              ("data", (("env", "prod"), ("cost-center", "cc-2000"))),
                                              ("dev", (("env", "dev"),)))):
            number = str(100000000000 + _h(seed, "project", i, p) % 800000000000)
            pid = f"{slug}-{suffix}-{_h(seed, 'pid', i, p) % 900000 + 100000}"
            projects.append(Project(pid, number, f"{name} {suffix}", labels, f"/{org}/{folder}/{number}/",
                                    ((f"projects/{number}", pid), (f"folders/{folder}", "engineering"),
                                     (f"organizations/{org}", f"{slug}.example.com"))))
        commitments = ()
        if cud:
            commitments = tuple((kind, str(uuid.UUID(int=_h(seed, "cud", i, kind) << 64 | _h(seed, kind, i),
                                                     version=4)))
                                for kind in ("cpu", "ram"))
        out.append(Account(i, _account_id(seed, i), name, currency, rate, publisher, issuer, tax, promo, discount,
                           cud, markup, tuple(projects), commitments))
    return out


# =============================================================================================
# Plan: months, row budgets
# =============================================================================================
@dataclass
class Month:
    idx: int
    period: str  # YYYY-MM
    invoice_month: str  # YYYYMM
    start_us: int  # Pacific month start, UTC micros
    end_us: int

    @property
    def hours(self) -> int:
        return (self.end_us - self.start_us) // HOUR_US


def _months(start_period: str, n: int) -> list[Month]:
    year, month = int(start_period[:4]), int(start_period[5:7])
    out = []
    for i in range(n):
        y, m = year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        start = datetime(y, m, 1, tzinfo=PACIFIC).astimezone(UTC)
        end = datetime(ny, nm, 1, tzinfo=PACIFIC).astimezone(UTC)
        out.append(Month(i, f"{y:04d}-{m:02d}", f"{y:04d}{m:02d}", _us(start), _us(end)))
    return out


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


@dataclass
class Budget:
    """Rows of one account in one month."""

    total: int
    fee_windows: int  # fee rows per commitment (hourly / daily / one per month)
    adjustments: int  # usage corrections (each a negation and a re-monetization)
    blocks: list[int]  # usage rows per block
    tax_rows_per_block: int


def _budget(account: Account, month: Month, total: int) -> Budget:
    commitments = len(account.commitments)
    combos = len(account.projects) * len(SERVICES) if account.tax_rate else 0
    if commitments and total >= 40 * commitments * month.hours:
        fee_windows = month.hours
    elif commitments and total >= 40 * commitments * 31:
        fee_windows = math.ceil(month.hours / 24)
    else:
        fee_windows = 1
    adjustments = 3 if total >= 400 else 1
    rest = total - commitments * fee_windows - (2 * adjustments + 1)
    n_blocks = max(1, math.ceil(rest / (BLOCK_ROWS + combos)))
    usage = rest - n_blocks * combos
    if usage < n_blocks * max(combos, 1):
        raise ValueError(f"rows={total} for {account.id} {month.period} cannot hold the month-end rows "
                         f"(fees, tax, adjustments): give more rows")
    blocks = [usage // n_blocks + (1 if i < usage % n_blocks else 0) for i in range(n_blocks)]
    return Budget(total, fee_windows, adjustments, blocks, combos)


# =============================================================================================
# Arrow schema (BigQuery export, as extracted)
# =============================================================================================
KV = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))
CREDIT = pa.struct([("name", pa.string()), ("amount", pa.float64()), ("full_name", pa.string()),
                    ("id", pa.string()), ("type", pa.string())])
TAG = pa.struct([("key", pa.string()), ("value", pa.string()), ("inherited", pa.bool_()), ("namespace", pa.string())])
TS = pa.timestamp("us", tz="UTC")
PROJECT = pa.struct([("id", pa.string()), ("number", pa.string()), ("name", pa.string()), ("labels", KV),
                     ("ancestry_numbers", pa.string()),
                     ("ancestors", pa.list_(pa.struct([("resource_name", pa.string()), ("display_name", pa.string())])))])
LOCATION = pa.struct([("location", pa.string()), ("country", pa.string()), ("region", pa.string()),
                      ("zone", pa.string())])
USAGE = pa.struct([("amount", pa.float64()), ("unit", pa.string()), ("amount_in_pricing_units", pa.float64()),
                   ("pricing_unit", pa.string())])
ID_DESC = pa.struct([("id", pa.string()), ("description", pa.string())])
ADJUSTMENT = pa.struct([("id", pa.string()), ("description", pa.string()), ("mode", pa.string()),
                        ("type", pa.string())])
PRICE = pa.struct([("effective_price", pa.float64()), ("tier_start_amount", pa.float64()), ("unit", pa.string()),
                   ("pricing_unit_quantity", pa.float64())])


def arrow_schema(export: str) -> pa.Schema:
    detailed = export == "detailed"
    fields = [
        ("billing_account_id", pa.string()), ("service", ID_DESC), ("sku", ID_DESC),
        ("usage_start_time", TS), ("usage_end_time", TS), ("project", PROJECT), ("labels", KV),
        ("system_labels", KV), ("location", LOCATION),
    ]
    if detailed:
        fields.append(("tags", pa.list_(TAG)))
    fields += [
        ("export_time", TS), ("cost", pa.float64()), ("currency", pa.string()),
        ("currency_conversion_rate", pa.float64()), ("usage", USAGE), ("credits", pa.list_(CREDIT)),
        ("invoice", pa.struct([("month", pa.string()), ("publisher_type", pa.string())])),
        ("cost_type", pa.string()), ("adjustment_info", ADJUSTMENT), ("cost_at_list", pa.float64()),
    ]
    if detailed:
        fields += [("price", PRICE), ("resource", pa.struct([("name", pa.string()), ("global_name", pa.string())])),
                   ("subscription", pa.struct([("instance_id", pa.string())]))]
    fields += [("transaction_type", pa.string()), ("seller_name", pa.string())]
    return pa.schema(fields)


# =============================================================================================
# Rows as columns
# =============================================================================================
@dataclass
class Rows:
    """Column arrays of n rows of one account and month (money in integer micros)."""

    n: int
    service: np.ndarray  # service index, -1 = none
    sku_id: list | np.ndarray
    sku_description: list | np.ndarray
    start_us: np.ndarray
    end_us: np.ndarray
    project: np.ndarray  # project index, -1 = none
    location: np.ndarray  # location index, -1 = none
    cost: np.ndarray  # micros
    cost_type: str | np.ndarray = "regular"
    usage_amount: np.ndarray | None = None
    usage_unit: list | np.ndarray | None = None
    pricing_amount: np.ndarray | None = None
    pricing_unit: list | np.ndarray | None = None
    list_cost: np.ndarray | None = None  # micros; None = null
    price: np.ndarray | None = None
    label_set: np.ndarray | None = None
    system_labels: list | None = None  # per row tuple of pairs
    resource_name: pa.Array | None = None
    resource_global: pa.Array | None = None
    subscription: list | np.ndarray | None = None
    credits: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> micros (0 = no credit)
    credit_meta: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)  # kind -> (name, full, id)
    adjustment: tuple[list, list, list, list] | None = None
    tags: np.ndarray | None = None  # bool: row has the resource manager tag


def _str_array(values, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.string())
    if isinstance(values, str):
        return pa.array([values] * n, pa.string())
    return pa.array(values, pa.string())


def _kv_list(items: list[tuple[tuple[str, str], ...]]) -> pa.Array:
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    keys, values = [], []
    for i, pairs in enumerate(items):
        offsets[i + 1] = offsets[i] + len(pairs)
        keys.extend(k for k, _ in pairs)
        values.extend(v for _, v in pairs)
    struct = pa.StructArray.from_arrays([pa.array(keys, pa.string()), pa.array(values, pa.string())],
                                        fields=list(KV.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=KV)


def _take(catalog: pa.Array, index: np.ndarray) -> pa.Array:
    """catalog[index] with -1 as null."""
    idx = pa.array(index, mask=index < 0, type=pa.int32())
    return catalog.take(idx)


class Tables:
    """Arrow catalogs of one account (projects, locations, label sets) and the table builder."""

    def __init__(self, account: Account, month: Month, export: str):
        self.account, self.month, self.export = account, month, export
        self.schema = arrow_schema(export)
        p = account.projects
        self.projects = pa.StructArray.from_arrays(
            [pa.array([x.id for x in p]), pa.array([x.number for x in p]), pa.array([x.name for x in p]),
             _kv_list([x.labels for x in p]), pa.array([x.ancestry_numbers for x in p]),
             pa.ListArray.from_arrays(
                 pa.array(np.arange(0, 3 * len(p) + 1, 3, dtype=np.int32)),
                 pa.StructArray.from_arrays(
                     [pa.array([a for x in p for a, _ in x.ancestors]), pa.array([d for x in p for _, d in x.ancestors])],
                     names=["resource_name", "display_name"]))],
            fields=list(PROJECT))
        self.locations = pa.StructArray.from_arrays(
            [pa.array([loc[i] for loc in LOCATIONS], pa.string()) for i in range(4)], fields=list(LOCATION))
        self.services = pa.StructArray.from_arrays(
            [pa.array([s[0] for s in SERVICES]), pa.array([s[1] for s in SERVICES])], fields=list(ID_DESC))
        self.label_sets = _kv_list(list(LABEL_SETS))
        org = account.projects[0].ancestry_numbers.strip("/").split("/")[0]
        tag = pa.StructArray.from_arrays([pa.array(["environment"]), pa.array(["production"]), pa.array([True]),
                                          pa.array([org])], fields=list(TAG))
        self.tag_lists = pa.ListArray.from_arrays(pa.array([0, 0, 1], pa.int32()), tag, type=pa.list_(TAG))

    def table(self, r: Rows) -> pa.Table:
        a, n = self.account, r.n
        none = pa.nulls(n, pa.string())
        sku = pa.StructArray.from_arrays([_str_array(r.sku_id, n), _str_array(r.sku_description, n)],
                                         fields=list(ID_DESC),
                                         mask=pa.array(np.array([v is None for v in r.sku_id]) if not isinstance(
                                             r.sku_id, np.ndarray) else np.zeros(n, bool)))
        usage = (pa.StructArray.from_arrays(
            [pa.array(r.usage_amount, pa.float64()), _str_array(r.usage_unit, n),
             pa.array(r.pricing_amount, pa.float64()), _str_array(r.pricing_unit, n)], fields=list(USAGE))
            if r.usage_amount is not None else pa.nulls(n, USAGE))
        labels = (_take(self.label_sets, r.label_set) if r.label_set is not None
                  else pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), self.label_sets.values, type=KV))
        system = _kv_list(r.system_labels) if r.system_labels is not None else _kv_list([()] * n)
        columns = {
            "billing_account_id": pa.array([a.id] * n, pa.string()),
            "service": _take(self.services, r.service),
            "sku": sku,
            "usage_start_time": pa.array(r.start_us, pa.int64()).cast(TS),
            "usage_end_time": pa.array(r.end_us, pa.int64()).cast(TS),
            "project": _take(self.projects, r.project),
            "labels": labels,
            "system_labels": system,
            "location": _take(self.locations, r.location),
            "export_time": pa.array(r.end_us + (HOUR_US * (1 + (r.start_us // HOUR_US) % 20)), pa.int64()).cast(TS),
            "cost": pa.array(r.cost / 1e6, pa.float64()),
            "currency": pa.array([a.currency] * n, pa.string()),
            "currency_conversion_rate": pa.array(np.full(n, a.rate), pa.float64()),
            "usage": usage,
            "credits": self._credits(r),
            "invoice": pa.StructArray.from_arrays([pa.array([self.month.invoice_month] * n, pa.string()),
                                                   pa.array([a.publisher_type] * n, pa.string())],
                                                  names=["month", "publisher_type"]),
            "cost_type": _str_array(r.cost_type, n),
            "adjustment_info": (pa.StructArray.from_arrays([pa.array(v, pa.string()) for v in r.adjustment],
                                                           fields=list(ADJUSTMENT))
                                if r.adjustment else pa.nulls(n, ADJUSTMENT)),
            "cost_at_list": pa.array(r.list_cost / 1e6 if r.list_cost is not None else np.full(n, np.nan),
                                     pa.float64(), from_pandas=True),
            "transaction_type": pa.array(["GOOGLE"] * n, pa.string()),
            "seller_name": none,
        }
        if self.export == "detailed":
            columns["tags"] = (_take(self.tag_lists, np.where(r.tags, 1, 0)) if r.tags is not None
                               else _take(self.tag_lists, np.zeros(n, np.int64)))
            columns["price"] = (pa.StructArray.from_arrays(
                [pa.array(r.price, pa.float64()), pa.array(np.zeros(n), pa.float64()), _str_array(r.pricing_unit, n),
                 pa.array(np.ones(n), pa.float64())], fields=list(PRICE)) if r.price is not None else pa.nulls(n, PRICE))
            columns["resource"] = (pa.StructArray.from_arrays([r.resource_name, r.resource_global],
                                                              names=["name", "global_name"],
                                                              mask=pc.is_null(r.resource_global))
                                   if r.resource_global is not None
                                   else pa.nulls(n, self.schema.field("resource").type))
            columns["subscription"] = (pa.StructArray.from_arrays(
                [_str_array(r.subscription, n)], names=["instance_id"]) if r.subscription is not None
                else pa.nulls(n, self.schema.field("subscription").type))
        return pa.table([columns[f.name] for f in self.schema], schema=self.schema)

    def _credits(self, r: Rows) -> pa.Array:
        n = r.n
        if not r.credits:
            return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], CREDIT),
                                            type=pa.list_(CREDIT))
        kinds = list(r.credits)
        amounts = np.stack([r.credits[k] for k in kinds], axis=1)  # n x K
        present = amounts != 0
        rows, slot = np.nonzero(present)  # row-major: a row's credits in kind order
        counts = present.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        meta = [np.stack([r.credit_meta[k][j] for k in kinds], axis=1)[rows, slot] for j in range(3)]
        types = np.array([CREDIT_TYPE[k] for k in kinds], dtype=object)[slot]
        values = pa.StructArray.from_arrays(
            [pa.array(meta[0], pa.string()), pa.array(amounts[rows, slot] / 1e6, pa.float64()),
             pa.array(meta[1], pa.string()), pa.array(meta[2], pa.string()), pa.array(types, pa.string())],
            fields=list(CREDIT))
        return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(CREDIT))


# =============================================================================================
# Usage rows
# =============================================================================================
SKU_WEIGHTS = np.array([s.weight for s in SKUS]) / sum(s.weight for s in SKUS)
CORES = np.array([1, 2, 4, 8, 16])


def _amounts(model: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """usage.amount and usage.amount_in_pricing_units of n rows of one amount model."""
    if model == "cores":
        cores = rng.choice(CORES, n).astype(float)
        return cores * 3600, cores
    if model == "ram":
        gib = rng.choice(CORES, n) * 3.75
        return gib * GIB * 3600, gib
    if model == "disk":
        gib = np.round(rng.lognormal(math.log(100), 1.0, n), 3)
        return gib * GIB * 3600, gib / 730
    if model == "egress":
        gib = rng.lognormal(math.log(0.5), 1.5, n)
        return np.round(gib * GIB), np.round(gib * GIB) / GIB
    if model == "requests":
        count = np.floor(rng.lognormal(math.log(5000), 1.2, n)) + 1
        return count, count
    if model == "scan":
        tib = rng.lognormal(math.log(0.005), 1.4, n)
        return np.round(tib * TIB), np.round(tib * TIB) / TIB
    if model == "seconds":
        sec = np.floor(rng.lognormal(math.log(2000), 1.0, n)) + 1
        return sec, sec
    if model == "log":
        gib = rng.lognormal(math.log(0.2), 1.2, n)
        return np.round(gib * GIB), np.round(gib * GIB) / GIB
    if model == "mgmt":
        return np.full(n, 3600.0), np.ones(n)
    raise ValueError(model)


class UsageMaker:
    """Bulk usage rows of one account and month, block by block."""

    def __init__(self, seed: int, account: Account, month: Month, export: str):
        self.seed, self.account, self.month, self.export = seed, account, month, export
        self.sku_desc = np.array([s.description for s in SKUS], dtype=object)
        self.sku_id = np.array([s.id for s in SKUS], dtype=object)
        self.sku_service = np.array([s.service for s in SKUS])
        self.sku_usage_unit = np.array([s.usage_unit for s in SKUS], dtype=object)
        self.sku_pricing_unit = np.array([s.pricing_unit for s in SKUS], dtype=object)
        self.loc_table = np.full((len(SKUS), 8), -1)
        self.loc_count = np.array([len(s.locations) for s in SKUS])
        for i, s in enumerate(SKUS):
            self.loc_table[i, :len(s.locations)] = s.locations
        factor = np.array([REGION_FACTOR[loc[0]] for loc in LOCATIONS])
        self.price = np.array([[s.usd * account.rate * f for f in factor] for s in SKUS])  # sku x location
        self.system = [s.system_labels for s in SKUS]

    def block(self, b: int, n: int, combos: int) -> Rows:
        a, m = self.account, self.month
        rng = np.random.default_rng([self.seed, m.idx, a.idx, b])
        sku = rng.choice(len(SKUS), n, p=SKU_WEIGHTS)
        project = rng.integers(0, len(a.projects), n)
        if combos:  # every (project, service) once per block: each gets its tax row
            k = np.arange(combos)
            project[:combos] = k // len(SERVICES)
            sku[:combos] = np.array(SERVICE_FIRST_SKU)[k % len(SERVICES)]
        location = self.loc_table[sku, rng.integers(0, 1 << 30, n) % self.loc_count[sku]]
        hour = rng.integers(0, m.hours, n)
        start = m.start_us + hour * HOUR_US
        late = rng.random(n) < 0.005  # late usage of the previous month on this invoice
        start = np.where(late, m.start_us - (1 + rng.integers(0, 48, n)) * HOUR_US, start)
        end = start + HOUR_US
        usage_amount = np.empty(n)
        pricing = np.empty(n)
        for i, s in enumerate(SKUS):
            sel = np.flatnonzero(sku == i)
            if sel.size:
                usage_amount[sel], pricing[sel] = _amounts(s.model, rng, sel.size)
        price = self.price[sku, location]
        cost = np.clip(np.rint(pricing * price * 1e6), 1, MAX_MICROS // 2).astype(np.int64)
        list_cost = np.clip(np.rint(cost * (1 + a.list_markup)), 0, MAX_MICROS).astype(np.int64)
        credits, meta = self._credits(rng, sku, location, cost, n)
        rows = Rows(n=n, service=self.sku_service[sku], sku_id=self.sku_id[sku], sku_description=self.sku_desc[sku],
                    start_us=start, end_us=end, project=project, location=location, cost=cost,
                    usage_amount=usage_amount, usage_unit=self.sku_usage_unit[sku], pricing_amount=pricing,
                    pricing_unit=self.sku_pricing_unit[sku], list_cost=list_cost, price=price,
                    label_set=rng.integers(0, len(LABEL_SETS), n),
                    system_labels=[self.system[i] for i in sku.tolist()], credits=credits, credit_meta=meta)
        if self.export == "detailed":
            self._resources(rows, rng, sku, project, location)
        return rows

    def _credits(self, rng, sku, location, cost, n):
        a = self.account
        flags = np.array([s.credits for s in SKUS], dtype=object)[sku]
        has = {c: np.array([c in f for f in flags.tolist()]) for c in "scrf"}
        u = rng.random((n, 4))
        zero = np.zeros(n, np.int64)
        cud_region = np.isin(location, list(CUD_LOCATIONS))
        covered = a.cud & (has["c"] | has["r"]) & cud_region & (u[:, 0] < CUD_COVERAGE)
        cud = np.where(covered, -np.where(u[:, 1] < 0.8, cost, np.rint(cost * 0.6).astype(np.int64)), zero)
        sud = np.where(has["s"] & ~covered & (u[:, 1] < 0.5), -np.rint(cost * 0.2).astype(np.int64), zero)
        free = np.where(has["f"] & (u[:, 2] < 0.3), -cost, zero)
        net = cost + cud + sud + free
        promo = (np.where((u[:, 3] < 0.2) & (net > 1), -np.rint(net * 0.5).astype(np.int64), zero)
                 if a.promo else zero)
        discount = (np.where(net > 0, -np.rint(cost * a.discount).astype(np.int64), zero)
                    if a.discount else zero)
        cud_name = np.where(has["r"], "Committed Usage Discount: RAM", "Committed Usage Discount: CPU")
        cud_id = np.where(has["r"], "CommittedUsageDiscountRAM:", "CommittedUsageDiscountCPU:")
        nones = np.full(n, None, dtype=object)
        sku_ids = np.array([s.id for s in SKUS], dtype=object)[sku]
        promo_id = f"{_h(a.id, 'promo') % 10**8:08d}"
        credits = {"sud": sud, "cud": cud, "free": free, "promo": promo, "discount": discount}
        meta = {
            "sud": (np.full(n, "Sustained Usage Discount", dtype=object), nones, np.full(n, "SustainedUsageDiscount",
                                                                                          dtype=object)),
            "cud": (cud_name.astype(object), nones, cud_id.astype(object)),
            "free": (np.full(n, "Free Tier", dtype=object), nones, ("FreeTier:" + sku_ids).astype(object)),
            "promo": (np.full(n, f"FreeTrial:Credit-{a.id}", dtype=object), np.full(n, "Free trial credit", dtype=object),
                      np.full(n, promo_id, dtype=object)),
            "discount": (np.full(n, "Spending based discounts (contractual)", dtype=object), nones,
                         np.full(n, "SpendingBasedDiscount", dtype=object)),
        }
        return credits, meta

    def _resources(self, rows: Rows, rng, sku, project, location) -> None:
        a = self.account
        spec = [s.resource for s in SKUS]
        has = np.array([r is not None for r in spec])[sku]
        number = rng.integers(1, 40, rows.n)
        prefix = np.array([r[2] if r else "" for r in spec], dtype=object)[sku]
        name = pa.array((prefix + number.astype(str).astype(object)).tolist(), pa.string())
        host = np.array([f"//{r[0]}/projects/" if r else "" for r in spec], dtype=object)[sku]
        scope = np.array([("zones/" + (loc[3] or "")) if loc[3] else
                          ("regions/" + loc[2]) if loc[2] else ("locations/" + loc[0]) for loc in LOCATIONS],
                         dtype=object)[location]
        coll = np.array([r[1] if r else "" for r in spec], dtype=object)[sku]
        pid = np.array([p.id for p in a.projects], dtype=object)[project]
        global_name = host + pid + "/" + scope + "/" + coll + "/" + (prefix + number.astype(str).astype(object))
        rows.resource_name = pa.array(np.where(has, name.to_numpy(zero_copy_only=False), None).tolist(), pa.string())
        rows.resource_global = pa.array(np.where(has, global_name, None).tolist(), pa.string())
        rows.tags = has & (project == 0)
        if a.commitments:
            cud_amount = rows.credits["cud"]
            kind = np.array(["ram" if "r" in s.credits else "cpu" for s in SKUS], dtype=object)[sku]
            subs = dict(a.commitments)
            rows.subscription = np.where(cud_amount != 0, np.vectorize(subs.get, otypes=[object])(kind), None)


# =============================================================================================
# Month-end rows: CUD fees, tax, adjustments
# =============================================================================================
def _commitment_quantity(kind: str, usage_rows: int, hours: int) -> float:
    """Cores / GiB committed: about the usage the CUD credits cover (so the fee and the covered usage
    are of the same size; small row budgets get the minimum of one core / 4 GiB)."""
    sku = 0 if kind == "cpu" else 1
    per_row = float(CORES.mean()) * (1.0 if kind == "cpu" else 3.75)  # mean cores / GiB of a usage row
    in_cud_region = sum(loc in CUD_LOCATIONS for loc in SKUS[sku].locations) / len(SKUS[sku].locations)
    covered = usage_rows * SKU_WEIGHTS[sku] * in_cud_region * CUD_COVERAGE * per_row  # unit-hours a month
    return float(max(1 if kind == "cpu" else 4, round(covered / hours)))


def _fee_rows(account: Account, month: Month, windows: int, export: str, usage_rows: int) -> Rows | None:
    """The commitments' fee rows: one per commitment and window (hourly, daily or monthly)."""
    if not account.commitments:
        return None
    bounds = np.linspace(month.start_us, month.end_us, windows + 1).astype(np.int64)
    bounds = (bounds // HOUR_US) * HOUR_US
    bounds[-1] = month.end_us
    starts, ends = bounds[:-1], bounds[1:]
    hours = (ends - starts) / HOUR_US
    parts = []
    for kind, sub in account.commitments:
        qty = _commitment_quantity(kind, usage_rows, month.hours)
        sku_id, desc, unit, pricing_unit, usd = COMMITMENT_SKUS[kind]
        pricing = qty * hours
        usage = pricing * 3600 * (GIB if kind == "ram" else 1)
        cost = np.rint(pricing * usd * account.rate * 1e6).astype(np.int64)
        parts.append((kind, sub, sku_id, desc, unit, pricing_unit, usage, pricing, cost, usd * account.rate))
    n = windows * len(parts)
    cat = lambda i: np.concatenate([np.asarray(p[i]) if np.ndim(p[i]) else np.full(windows, p[i], dtype=object)
                                    for p in parts])
    rows = Rows(n=n, service=np.zeros(n, np.int64), sku_id=cat(2), sku_description=cat(3),
                start_us=np.tile(starts, len(parts)), end_us=np.tile(ends, len(parts)),
                project=np.zeros(n, np.int64), location=np.full(n, 2), cost=cat(8).astype(np.int64),
                usage_amount=cat(6).astype(float), usage_unit=cat(4), pricing_amount=cat(7).astype(float),
                pricing_unit=cat(5), list_cost=cat(8).astype(np.int64), price=cat(9).astype(float))
    if export == "detailed":
        pid = account.projects[0].id
        names = np.concatenate([np.full(windows, f"commitment-{kind}-1y", dtype=object) for kind, *_ in parts])
        rows.resource_name = pa.array(names.tolist(), pa.string())
        rows.resource_global = pa.array([f"//compute.googleapis.com/projects/{pid}/regions/us-central1/commitments/{x}"
                                         for x in names.tolist()], pa.string())
        rows.subscription = cat(1)
    return rows


def _tax_rows(account: Account, month: Month, base: np.ndarray, block: int) -> Rows:
    """One tax row per project and service for one block of usage (base: net micros per combo)."""
    combos = base.size
    k = np.arange(combos)
    cost = np.rint(base * account.tax_rate).astype(np.int64)
    return Rows(n=combos, service=k % len(SERVICES), sku_id=[None] * combos, sku_description=[None] * combos,
                start_us=np.full(combos, month.start_us), end_us=np.full(combos, month.end_us),
                project=k // len(SERVICES), location=np.full(combos, -1), cost=cost, cost_type="tax")


def _adjustment_rows(seed: int, account: Account, month: Month, k: int, usage_rows: int) -> Rows:
    """k usage corrections of the previous month (negation + re-monetization) and one goodwill credit
    (1 to 20 units, growing with the usage)."""
    rng = np.random.default_rng([seed, month.idx, account.idx, 999])
    sku = np.repeat(rng.choice([0, 4, 6], k), 2)
    project = np.repeat(rng.integers(0, len(account.projects), k), 2)
    hour = np.repeat(rng.integers(1, 24 * 20, k), 2)
    start = month.start_us - hour * HOUR_US
    usage, pricing = np.empty(2 * k), np.empty(2 * k)
    for i in range(2 * k):
        u, p = _amounts(SKUS[sku[i]].model, np.random.default_rng([seed, month.idx, account.idx, 998, i // 2]), 1)
        usage[i], pricing[i] = u[0], p[0]
    sign = np.tile([-1.0, 0.9], k)
    location = np.array([SKUS[s].locations[0] for s in sku])
    price = np.array([SKUS[s].usd * account.rate * REGION_FACTOR[LOCATIONS[loc][0]] for s, loc in zip(sku, location)])
    original = np.clip(np.rint(pricing * price * 1e6), 1, MAX_MICROS // 2).astype(np.int64)
    cost = np.where(sign < 0, -original, np.rint(original * 0.9).astype(np.int64))
    ids = np.repeat([f"adj-{_h(seed, account.id, month.period, j) % 10**10:010d}" for j in range(k)], 2).tolist()
    desc = [f"Usage correction: {SKUS[s].description}" for s in sku]
    # goodwill: a manual credit of this month
    goodwill = -round(max(1.0, min(20.0, usage_rows / 1000)) * account.rate * 1e6)
    g_start = month.start_us + int(rng.integers(0, month.hours - 24)) // 24 * 24 * HOUR_US
    n = 2 * k + 1
    rows = Rows(
        n=n, service=np.append(np.array([SKUS[s].service for s in sku]), 0),
        sku_id=[SKUS[s].id for s in sku] + [SKUS[0].id], sku_description=[SKUS[s].description for s in sku] + [SKUS[0].description],
        start_us=np.append(start, g_start), end_us=np.append(start + HOUR_US, g_start + 24 * HOUR_US),
        project=np.append(project, 0), location=np.append(location, 2), cost=np.append(cost, goodwill),
        cost_type="adjustment",
        usage_amount=np.append(usage * sign, 0.0), usage_unit=[SKUS[s].usage_unit for s in sku] + [None],
        pricing_amount=np.append(pricing * sign, 0.0), pricing_unit=[SKUS[s].pricing_unit for s in sku] + [None],
        adjustment=(ids + [f"goodwill-{_h(seed, account.id, month.period) % 10**10:010d}"],
                    desc + ["Goodwill credit for service disruption"],
                    ["COMPLETE_NEGATION_WITH_REMONETIZATION"] * (2 * k) + ["MANUAL_ADJUSTMENT"],
                    ["USAGE_CORRECTION"] * (2 * k) + ["GOODWILL"]))
    return rows


# =============================================================================================
# Totals, writing
# =============================================================================================
@dataclass
class Totals:
    rows: int = 0
    focus_rows: int = 0
    cost: int = 0
    credits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CREDIT_KINDS, 0))
    tax: int = 0
    cud_fees: int = 0
    adjustments: int = 0

    def add(self, rows: Rows, kind: str) -> None:
        self.rows += rows.n
        self.focus_rows += rows.n + (int(np.count_nonzero(rows.credits["promo"])) if "promo" in rows.credits else 0)
        total = int(rows.cost.sum())
        self.cost += total
        for k, v in rows.credits.items():
            self.credits[k] += int(v.sum())
        if kind == "tax":
            self.tax += total
        elif kind == "fee":
            self.cud_fees += total
        elif kind == "adjustment":
            self.adjustments += total

    @property
    def billed(self) -> int:
        return self.cost + sum(self.credits.values())


def _money(micros: int) -> str:
    return f"{Decimal(micros).scaleb(-6).quantize(Decimal('1E-12')):f}"


def _invoice_money(micros: int) -> str:
    text = f"{Decimal(micros).scaleb(-6):f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


class _Writer:
    """Files of one invoice month: a new file every rows_per_file rows."""

    def __init__(self, folder: Path, table: str, file_format: str, schema: pa.Schema, rows_per_file: int):
        self.folder, self.table, self.format, self.schema = folder, table, file_format, schema
        self.rows_per_file = rows_per_file
        self.files: list[Path] = []
        self._in_file = 0
        self._pq: pq.ParquetWriter | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if not self.files or self._in_file >= self.rows_per_file:
                self._open()
            take = min(table.num_rows - start, self.rows_per_file - self._in_file)
            part = table.slice(start, take)
            if self.format == "parquet":
                self._pq.write_table(part)
            else:
                df = pl.from_arrow(part).with_columns(
                    pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S UTC")
                    for c in ("usage_start_time", "usage_end_time", "export_time"))
                with self.files[-1].open("ab") as fh:
                    df.write_ndjson(fh)
            self._in_file += take
            start += take

    def _open(self) -> None:
        self.close()
        ext = "parquet" if self.format == "parquet" else "jsonl"
        path = self.folder / f"{self.table}-{len(self.files):012d}.{ext}"
        self.files.append(path)
        self._in_file = 0
        if self.format == "parquet":
            self._pq = pq.ParquetWriter(path, self.schema, compression="zstd")
        else:
            path.write_bytes(b"")

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None


def generate_gcp(out_dir: str | Path, *, rows: int, months: int = 1, seed: int = 0,
                 export: Literal["detailed", "standard"] = "detailed",
                 file_format: Literal["parquet", "jsonl"] = "parquet",
                 start_period: str = "2024-01", accounts: int = 3, export_name: str = "gcp-billing",
                 rows_per_file: int = 500_000, progress: Callable[[int], None] | None = None) -> GenerationSummary:
    """Write synthetic GCP billing export extracts under ``out_dir`` and return what was written.

    ``rows`` is the total of raw rows over all months and billing accounts (split evenly, the
    first take the remainder); ``accounts`` billing accounts (USD, EUR, a USD reseller sub-account,
    repeating); ``progress`` is called after each written block with its number of rows.
    Deterministic for a given argument set. Raises ValueError when ``rows`` cannot hold the
    month-end rows (roughly 100 per account and month).
    """
    started = time.perf_counter()
    if export not in ("detailed", "standard"):
        raise ValueError(f"export must be 'detailed' or 'standard', not {export!r}")
    if file_format not in ("parquet", "jsonl"):
        raise ValueError(f"file_format must be 'parquet' or 'jsonl', not {file_format!r}")
    if months < 1 or accounts < 1 or rows_per_file < 1 or rows < 1:
        raise ValueError("rows, months, accounts and rows_per_file must be >= 1")
    out = Path(out_dir)
    report_dir = out / export_name
    table_name = "gcp_billing_export_resource_v1" if export == "detailed" else "gcp_billing_export_v1"
    account_list = _build_accounts(seed, accounts)
    month_list = _months(start_period, months)
    cells = months * accounts
    budgets = {(m.idx, a.idx): _budget(a, m, rows // cells + (1 if m.idx * accounts + a.idx < rows % cells else 0))
               for m in month_list for a in account_list}
    totals: dict[tuple[int, int], Totals] = {}
    data_files: list[Path] = []
    for m in month_list:
        writer = _Writer(report_dir / m.period, table_name, file_format, arrow_schema(export), rows_per_file)
        for a in account_list:
            budget, tot = budgets[(m.idx, a.idx)], Totals()
            tables = Tables(a, m, export)
            maker = UsageMaker(seed, a, m, export)
            combos = budget.tax_rows_per_block
            taxes = []
            for b, n in enumerate(budget.blocks):
                usage = maker.block(b, n, combos)
                writer.write(tables.table(usage))
                tot.add(usage, "usage")
                if combos:
                    net = usage.cost + sum(usage.credits.values())
                    combo = usage.project * len(SERVICES) + usage.service
                    base = np.bincount(combo, weights=net.astype(np.float64), minlength=combos)
                    taxes.append(_tax_rows(a, m, np.rint(base).astype(np.int64), b))
                if progress:
                    progress(n)
            month_end = []
            fees = _fee_rows(a, m, budget.fee_windows, export, sum(budget.blocks))
            if fees is not None:
                month_end.append((fees, "fee"))
            month_end += [(t, "tax") for t in taxes]
            month_end.append((_adjustment_rows(seed, a, m, budget.adjustments, sum(budget.blocks)), "adjustment"))
            for r, kind in month_end:
                writer.write(tables.table(r))
                tot.add(r, kind)
                if progress:
                    progress(r.n)
            assert tot.rows == budget.total, (tot.rows, budget.total)
            totals[(m.idx, a.idx)] = tot
        writer.close()
        data_files += writer.files
    invoice_files = _write_invoices(out, account_list, month_list, totals, seed)
    expected = {
        "generator": "focus_platform.generate.gcp",
        "export": export,
        "file_format": file_format,
        "seed": seed,
        "money_rule": ("money values are whole micro-units (6 decimals) of at most 5,000 written as float64; "
                       "polars' Float64 -> Decimal(38,12) cast gives them exactly; totals are exact sums"),
        "billed_cost_rule": "sum(cost) + sum(credits.amount) per billing account, invoice month and currency",
        "amortized_cost_rule": "equal to billed: CUD fees are billed hourly with the usage they cover",
        "focus_rows_rule": "raw rows + one Credit row per PROMOTION credit (non-zero amount)",
        "totals": [_record(a, m, totals[(m.idx, a.idx)], seed) for m in month_list for a in account_list],
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    expected_path = report_dir / "expected_totals.json"
    expected_path.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    write_sources(out, [export_source(export_name, "gcp-billing", export_name)])
    return GenerationSummary(
        out_dir=out, report_dir=report_dir, layout=export, file_format=file_format, rows=rows,
        rows_per_period={m.period: sum(totals[(m.idx, a.idx)].rows for a in account_list) for m in month_list},
        data_files=data_files, manifest_files=[], invoice_files=invoice_files, expected_totals_path=expected_path,
        expected_totals=expected, seconds=time.perf_counter() - started)


def _invoice_id(seed: int, account: Account, month: Month) -> str:
    return str(_h(seed, "invoice", account.id, month.period) % 9_000_000_000 + 1_000_000_000)


def _record(a: Account, m: Month, t: Totals, seed: int) -> dict:
    return {
        "billing_account_id": a.id,
        "billing_account_name": a.name,
        "billing_period": m.period,
        "invoice_month": m.invoice_month,
        "currency": a.currency,
        "invoice_id": _invoice_id(seed, a, m),
        "rows": t.rows,
        "focus_rows": t.focus_rows,
        "cost": _money(t.cost),
        "credits": _money(sum(t.credits.values())),
        "credits_by_type": {CREDIT_TYPE[k]: _money(v) for k, v in t.credits.items() if v},
        "billed_cost": _money(t.billed),
        "effective_cost": _money(t.billed),
        "amortized_cost": _money(t.billed),
        "tax": _money(t.tax),
        "cud_fees": _money(t.cud_fees),
        "adjustments": _money(t.adjustments),
    }


def _write_invoices(out: Path, accounts: list[Account], months: list[Month], totals: dict, seed: int) -> list[Path]:
    """invoices/<billing account>/<YYYY-MM>.csv: one invoice per account and invoice month."""
    header = ["invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total", "tax", "credits",
              "issued_date", "adjusts_invoice_id"]
    paths = []
    for m in months:
        issued = (datetime.fromtimestamp(m.end_us / 1e6, UTC).astimezone(PACIFIC) + timedelta(days=1)).date()
        for a in accounts:
            t = totals[(m.idx, a.idx)]
            path = out / "invoices" / a.id / f"{m.period}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerow([_invoice_id(seed, a, m), a.issuer, a.id, m.period, a.currency, _invoice_money(t.billed),
                            _invoice_money(t.tax), _invoice_money(sum(t.credits.values())), issued.isoformat(), ""])
            paths.append(path)
    return paths


__all__ = ["BLOCK_ROWS", "arrow_schema", "generate_gcp"]
