"""Synthetic OCI cost reports (the proprietary CSV format) as they land, with expected totals and invoices.

``generate_oci(out_dir, rows=...)`` writes, under ``out_dir``::

    <report>/<YYYY-MM>/reports_cost-csv_<16 digits>.csv.gz   (or .csv)  the month's increments
    <report>/expected_totals.json
    invoices/<tenancy OCID>/<YYYY-MM>.csv                        (closed months only)

OCI drops numbered cost report increments into an Oracle-owned bucket about every six hours, one
tenancy per bucket, each file split at 1 M rows. Here each tenancy's month is ``increments`` files
(each covering the next slice of the month's hours, plus the odd late-arriving row of the slice
before), further split at ``rows_per_file``. All of a month's files sit in one ``YYYY-MM`` folder
(one landing-zone delivery per month); the 16-digit sequence number starts with the tenancy's
number, so the files of several tenancies don't collide.

What is in the data
-------------------
* Tenancies (``tenancies``, default 3) with their own currency (USD, EUR, GBP, then JPY, ...),
  home and second region, 3-5 compartments under the root compartment, a subscription OCID.
* Hourly rows for 17 SKUs of 9 services (Compute E4 and free-tier A1 shapes, Block Volume, Object
  Storage, outbound data transfer, load balancer, Autonomous Database, MySQL HeatWave, Monitoring,
  Logging, Functions) on resource pools per tenancy; quantities in the SKU's billing unit
  (storage accrues hourly as GB-months: GB / hours in the month). Part numbers and prices are
  illustrative, not Oracle's price list.
* Prices: the subscription price is the pay-as-you-go price less the tenancy's discount. In some
  tenancy-months the commitment runs out at 70 % of the month: from then on rows are overage
  (``cost/overageFlag`` true, the overage columns filled, pay-as-you-go price). Free-tier (A1) rows
  cost 0 at unit price 0.
* Corrections: about one row in 400 is a correction in a later increment (``lineItem/isCorrection``
  true, ``lineItem/backreferenceNo`` = the corrected row's ``lineItem/referenceNo``) reversing all,
  half or a quarter of the corrected row. Ordinary rows carry a number in backreferenceNo, as
  real reports do.
* Tags: one ``tags/<key>`` column per key (``Oracle-Tags.CreatedBy``/``CreatedOn``, defined tags
  ``Finance.CostCenter``/``Operations.Environment``, free-form ``project``/``team``, and per tenancy
  one key with odd characters: a backslash, a space, double quotes); odd increments leave out the
  ``team`` column, so the column set varies per file, as in real reports.
* Timestamps: ``intervalUsageEnd`` always with seconds (``2024-01-01T01:00:00Z``),
  ``intervalUsageStart`` without (``2024-01-01T00:00Z``) in even increments and with in odd ones.

Money rule (what ``expected_totals.json`` relies on)
----------------------------------------------------
Costs and quantities are integers of 1e-12 written exactly (trailing zeros padded to 18 decimals
as OCI writes them; values below 1e-6 in ``2.76175E-7`` notation), prices have 8 decimals. So
the CSV text parses exactly into Decimal(38, 12) and the totals (exact integer sums) are what a
correct converter must reproduce to the last digit.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from focus_platform.generate.aws_cur import GenerationSummary
from focus_platform.generate.landing import export_source, write_sources

MONEY_SCALE = 10**12  # costs and quantities: integers of 1e-12
PRICE_SCALE = 10**8  # prices: integers of 1e-8
CHUNK_ROWS = 100_000  # rows generated and written at once
OCI_FILE_ROWS = 1_000_000  # OCI splits a report at 1 M rows
HOUR_S = 3600
CORRECTION_EVERY = 400  # about one correction per this many rows
OVERAGE_FROM = 0.70  # share of the month after which an overage tenancy-month is in overage
LATE_SHARE = 0.004  # rows delivered one increment late

# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sku:
    service: str
    part: str
    description: str
    unit: str  # cost/skuUnitDescription
    readable: str  # cost/billingUnitReadable
    usd: float  # pay-as-you-go price per unit, USD
    model: str  # quantity model: count, monthly, lognormal, tiny
    lo: float
    hi: float
    resource: str  # OCID resource type, or 'name:<prefix>' for non-OCID resource ids
    weight: float
    zonal: bool = False
    free: bool = False


SKUS: tuple[Sku, ...] = (
    Sku("COMPUTE", "B93113", "Standard - E4 - OCPU", "OCPU Hours", "1 NONE HOURS OCPUS", 0.025,
        "count", 1, 8, "instance", 10, zonal=True),
    Sku("COMPUTE", "B93114", "Standard - E4 - Memory", "GB Hours", "1 GiB HOURS MEMORY", 0.0015,
        "count", 8, 128, "instance", 10, zonal=True),
    Sku("COMPUTE", "B93297", "Standard - A1 - OCPU", "OCPU Hours", "1 NONE HOURS OCPUS", 0.0,
        "count", 1, 4, "instance", 3, zonal=True, free=True),
    Sku("COMPUTE", "B93298", "Standard - A1 - Memory", "GB Hours", "1 GiB HOURS MEMORY", 0.0,
        "count", 6, 24, "instance", 3, zonal=True, free=True),
    Sku("BLOCK_STORAGE", "B91961", "Block Volume - Storage", "GB Months", "1 GiB MONTHS STORAGE_SIZE", 0.0255,
        "monthly", 50, 2000, "volume", 8, zonal=True),
    Sku("BLOCK_STORAGE", "B91962", "Block Volume - Performance Units", "GB Months",
        "1 GiB MONTHS PERFORMANCE_UNITS", 0.0017, "monthly", 500, 20000, "volume", 6, zonal=True),
    Sku("OBJECTSTORE", "B91628", "Object Storage - Storage", "GB Months", "1 GiB MONTHS STORAGE_SIZE", 0.0255,
        "monthly", 10, 50000, "name:bucket", 6),
    Sku("OBJECTSTORE", "B91627", "Object Storage - Requests", "10,000 Requests", "10000 NONE NONE REQUESTS",
        0.0034, "lognormal", 0.5, 1.4, "name:bucket", 4),
    Sku("NETWORK", "B88327", "Outbound Data Transfer Zone 1", "GB Of Data Transferred",
        "1 GiB HOURS DATA_TRANSFERRED", 0.0085, "lognormal", 0.3, 1.6, "vnic", 5),
    Sku("NETWORK", "B93030", "Flexible Load Balancer - Load Balancer Base", "Load Balancer Hour",
        "1 NONE HOURS INSTANCE", 0.0113, "count", 1, 1, "loadbalancer", 2),
    Sku("DATABASE", "B95702", "Oracle Autonomous Transaction Processing - ECPU", "ECPU Per Hour",
        "1 NONE HOURS ECPUS", 0.336, "count", 2, 8, "autonomousdatabase", 3),
    Sku("DATABASE", "B95754", "Oracle Autonomous Transaction Processing - Exadata Storage", "TB",
        "1 TiB MONTHS STORAGE_SIZE", 118.40, "monthly", 1, 4, "autonomousdatabase", 3),
    Sku("MYSQL", "B92426", "MySQL Database for HeatWave - Standard - Node per hour", "Instance per hour",
        "1 NONE HOURS INSTANCE", 0.0824, "count", 1, 1, "mysqlinstance", 2),
    Sku("TELEMETRY", "B90925", "Monitoring Service - Ingestion", "Million Datapoints",
        "1000000 NONE NONE DATAPOINTS", 0.0025, "tiny", 100, 50000, "name:oci_computeagent", 5),
    Sku("TELEMETRY", "B90926", "Monitoring Service - Retrieval", "Million Datapoints",
        "1000000 NONE NONE DATAPOINTS", 0.0015, "tiny", 10, 5000, "name:oci_vcn", 3),
    Sku("LOGGING", "B92593", "Logging - Storage", "GB Months", "1 GiB MONTHS STORAGE_SIZE", 0.05,
        "monthly", 1, 200, "loggroup", 2),
    Sku("FUNCTIONS", "B90618", "Functions - Invocations", "1,000,000 Function Invocations",
        "1000000 NONE NONE INVOCATIONS", 0.20, "tiny", 10, 20000, "fnfunc", 2),
)
RESOURCES_PER_SKU = 12

# currency, FX from USD, discount on the subscription, home region, second region, invoice issuer
TENANCY_PROFILES = (
    ("acme-prod", "USD", 1.0, 0.20, "us-ashburn-1", "us-phoenix-1", "Oracle America, Inc."),
    ("acme-eu", "EUR", 0.92, 0.15, "eu-frankfurt-1", "eu-amsterdam-1", "Oracle Deutschland B.V. & Co. KG"),
    ("globex", "GBP", 0.79, 0.10, "uk-london-1", "uk-cardiff-1", "Oracle Corporation UK Limited"),
    ("initech-jp", "JPY", 150.0, 0.12, "ap-tokyo-1", "ap-osaka-1", "Oracle Corporation Japan"),
    ("umbrella", "USD", 1.0, 0.05, "us-chicago-1", "us-sanjose-1", "Oracle America, Inc."),
)
REGION_KEY = {"us-ashburn-1": "iad", "us-phoenix-1": "phx", "eu-frankfurt-1": "fra", "eu-amsterdam-1": "ams",
              "uk-london-1": "lhr", "uk-cardiff-1": "cwl", "ap-tokyo-1": "nrt", "ap-osaka-1": "kix",
              "us-chicago-1": "ord", "us-sanjose-1": "sjc"}
COMPARTMENTS = ("prod", "dev", "shared-network", "data-platform", "sandbox")
ODD_TAG_KEYS = ("DevRel\\analytics-hol.release", "Ops.Owner Name", 'Data "Tier"')
TAG_KEYS = ("Oracle-Tags.CreatedBy", "Oracle-Tags.CreatedOn", "Finance.CostCenter", "Operations.Environment",
            "project", "team")
VARYING_TAG_KEY = "team"  # left out of odd increments: the column set varies per file

COLUMNS = (
    "lineItem/referenceNo", "lineItem/tenantId", "lineItem/intervalUsageStart", "lineItem/intervalUsageEnd",
    "product/service", "product/compartmentId", "product/compartmentName", "product/region",
    "product/availabilityDomain", "product/resourceId", "usage/billedQuantity", "usage/billedQuantityOverage",
    "cost/subscriptionId", "cost/productSku", "product/Description", "cost/unitPrice", "cost/unitPriceOverage",
    "cost/myCost", "cost/myCostOverage", "cost/currencyCode", "cost/billingUnitReadable",
    "cost/skuUnitDescription", "cost/overageFlag", "lineItem/isCorrection", "lineItem/backreferenceNo",
)


# ---------------------------------------------------------------------------------------------
# Counter-based randomness: a value depends only on (seed, what, row), never on chunking
# ---------------------------------------------------------------------------------------------
def _h64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _hash(keys: np.ndarray, salt: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _mix(keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF))


def _uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    return (_hash(keys, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _randint(keys: np.ndarray, salt: int, lo: int, hi: int) -> np.ndarray:
    return lo + (_hash(keys, salt) % np.uint64(hi - lo + 1)).astype(np.int64)


def _ocid_tail(*parts: object) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=64).digest()
    return "".join(alphabet[b % 32] for b in h[:52])


# ---------------------------------------------------------------------------------------------
# The plan: tenancies, months, files
# ---------------------------------------------------------------------------------------------
@dataclass
class Tenancy:
    idx: int
    name: str
    ocid: str
    currency: str
    fx: float
    discount: float
    regions: tuple[str, str]
    issuer: str
    subscription: str
    compartments: list[tuple[str, str]]  # (id, name); the first is the root (the tenancy itself)
    odd_tag_key: str


@dataclass
class Month:
    idx: int
    period: str
    start: datetime
    hours: int
    closed: bool


@dataclass
class FilePlan:
    tenancy: Tenancy
    month: Month
    increment: int
    part: int
    seq: str
    base: tuple[int, int]  # base row index range of this file
    corrections: np.ndarray  # base row indexes corrected by this file's correction rows

    @property
    def rows(self) -> int:
        return self.base[1] - self.base[0] + len(self.corrections)


def _months(start_period: str, months: int) -> list[Month]:
    year, month = map(int, start_period.split("-"))
    out = []
    for i in range(months):
        y, m = year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1
        start = datetime(y, m, 1, tzinfo=UTC)
        nxt = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        out.append(Month(i, f"{y:04d}-{m:02d}", start, int((nxt - start).total_seconds()) // HOUR_S,
                         closed=i < months - 1))
    return out


def _tenancies(seed: int, n: int) -> list[Tenancy]:
    out = []
    for i in range(n):
        name, currency, fx, discount, home, second, issuer = TENANCY_PROFILES[i % len(TENANCY_PROFILES)]
        if i >= len(TENANCY_PROFILES):
            name = f"{name}-{i // len(TENANCY_PROFILES) + 1}"
        ocid = f"ocid1.tenancy.oc1..aaaaaaaa{_ocid_tail(seed, 'tenancy', i)}"
        n_comp = 3 + _h64(seed, "compartments", i) % 3
        compartments = [(ocid, name)] + [
            (f"ocid1.compartment.oc1..aaaaaaaa{_ocid_tail(seed, 'compartment', i, c)}", COMPARTMENTS[c])
            for c in range(n_comp - 1)]
        subscription = (f"ocid1.organizationssubscription.oc1.{home}.amaaaaaa"
                        f"{_ocid_tail(seed, 'subscription', i)}")
        out.append(Tenancy(i, name, ocid, currency, fx, discount, (home, second), issuer, subscription,
                           compartments, ODD_TAG_KEYS[i % len(ODD_TAG_KEYS)]))
    return out


def _overage(t: Tenancy, m: Month) -> bool:
    return (t.idx + m.idx) % 3 == 0


def _plan_files(seed: int, tenancies: list[Tenancy], months: list[Month], rows: int, increments: int,
                rows_per_file: int) -> list[FilePlan]:
    cells = [(t, m) for m in months for t in tenancies]
    share, extra = divmod(rows, len(cells))
    files: list[FilePlan] = []
    for n, (t, m) in enumerate(cells):
        total = share + (1 if n < extra else 0)
        k_files = max(1, min(increments, total // 50))
        n_corr = total // CORRECTION_EVERY if k_files > 1 else 0
        base = total - n_corr
        bounds = [base * k // k_files for k in range(k_files + 1)]
        per_file = [n_corr * k // (k_files - 1) - n_corr * (k - 1) // (k_files - 1) if k else 0
                    for k in range(k_files)] if k_files > 1 else [0]
        for k in range(k_files):
            lo, hi = bounds[k], bounds[k + 1]
            corrected = np.empty(0, dtype=np.int64)
            if per_file[k]:  # rows of the previous increment, spread over it
                prev_lo, prev_hi = bounds[k - 1], bounds[k]
                picks = np.arange(per_file[k], dtype=np.int64)
                corrected = prev_lo + (picks * (prev_hi - prev_lo)) // per_file[k]
                corrected = corrected + (_hash(picks, _h64(seed, "corr", t.idx, m.idx, k)) % np.uint64(
                    max(1, (prev_hi - prev_lo) // per_file[k]))).astype(np.int64)
                corrected = np.minimum(corrected, prev_hi - 1)
            # split at rows_per_file (OCI splits at 1 M rows): corrections go with the last part
            n_base = hi - lo
            parts = max(1, -(-(n_base + len(corrected)) // rows_per_file))
            for p in range(parts):
                a, b = lo + n_base * p // parts, lo + n_base * (p + 1) // parts
                files.append(FilePlan(t, m, k, p, f"{t.idx + 1:04d}{m.idx * 10_000 + k * 100 + p + 1:012d}",
                                      (a, b), corrected if p == parts - 1 else np.empty(0, dtype=np.int64)))
    return files


# ---------------------------------------------------------------------------------------------
# Row generation (vectorised, per chunk)
# ---------------------------------------------------------------------------------------------
@dataclass
class _Cell:
    """What every row of a tenancy-month shares: the resource tables, prices, hour strings."""

    tenancy: Tenancy
    month: Month
    base_rows: int
    salt: int
    resource_id: pl.Series  # per (sku, resource)
    compartment: np.ndarray  # compartment index per (sku, resource)
    region: np.ndarray  # 0 home, 1 second, per (sku, resource)
    ad: pl.Series  # availability domain per (sku, resource) (null when not zonal)
    tags: dict[str, pl.Series]  # tag key -> value per (sku, resource) (None when untagged)
    price_commit: np.ndarray  # per sku, 1e-8 units
    price_payg: np.ndarray  # per sku, 1e-8 units
    start_minutes: pl.Series  # per hour of the month: '2024-01-01T00:00Z'
    start_seconds: pl.Series  # per hour of the month: '2024-01-01T00:00:00Z'
    cutoff_hour: int  # first overage hour (hours when not in overage)


def _cell(seed: int, t: Tenancy, m: Month, base_rows: int) -> _Cell:
    salt = _h64(seed, "cell", t.idx, m.idx)
    n = len(SKUS) * RESOURCES_PER_SKU
    keys = np.arange(n, dtype=np.int64)
    sku_of = keys // RESOURCES_PER_SKU
    slot = keys % RESOURCES_PER_SKU
    region = (_uniform(keys, _h64(seed, "region", t.idx)) < 0.2).astype(np.int64)
    compartment = _randint(keys, _h64(seed, "compartment", t.idx), 0, len(t.compartments) - 1)
    ids, ads = [], []
    for k in range(n):
        s = SKUS[int(sku_of[k])]
        reg = t.regions[int(region[k])]
        # resources of one kind are shared by the SKUs billing them (E4 OCPU and memory: one instance)
        kind_slot = f"{s.resource}:{'a1' if s.free else ''}{int(slot[k])}"
        if s.resource.startswith("name:"):
            prefix = s.resource[5:]
            ids.append(f"{t.name}ns/{prefix}-{int(slot[k]):02d}" if prefix == "bucket" else prefix)
        else:
            ids.append(f"ocid1.{s.resource}.oc1.{REGION_KEY.get(reg, reg)}."
                       f"{'an' if s.resource != 'vnic' else 'ab'}{_ocid_tail(seed, t.idx, kind_slot, reg)}")
        ads.append(f"{_ocid_tail(seed, 'ad', t.idx)[:4]}:{reg.upper()}-AD-{int(slot[k]) % 3 + 1}" if s.zonal else None)
    users = ("alice", "bob", "carol", "dmitri", "erin")
    tags: dict[str, list[object]] = {key: [] for key in (*TAG_KEYS, t.odd_tag_key)}
    for k in range(n):
        s = SKUS[int(sku_of[k])]
        h = _h64(seed, "tags", t.idx, s.resource, int(slot[k]))
        tagged = not s.resource.startswith("name:oci_") and h % 10 < 8  # telemetry namespaces: untagged
        defined = tagged and (h >> 8) % 10 < 6
        tags["Oracle-Tags.CreatedBy"].append(
            f"oracleidentitycloudservice/{users[(h >> 16) % 5]}@{t.name}.example" if tagged else None)
        created = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=(h >> 20) % (300 * 86400))
        tags["Oracle-Tags.CreatedOn"].append(created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(h >> 40) % 1000:03d}Z"
                                             if tagged else None)
        tags["Finance.CostCenter"].append(f"CC-{1000 + (h >> 24) % 12}" if defined else None)
        tags["Operations.Environment"].append(("prod", "dev", "test")[(h >> 28) % 3] if defined else None)
        tags["project"].append(("atlas", "hermes", "orion", "zeus")[(h >> 32) % 4] if tagged and (h >> 36) % 2 else None)
        tags["team"].append(("platform", "data", "web")[(h >> 44) % 3] if tagged and (h >> 48) % 3 else None)
        tags[t.odd_tag_key].append(("1.0", "2.1", "3.0-beta")[(h >> 52) % 3] if tagged and (h >> 56) % 4 == 0
                                   else None)
    payg = np.array([round(s.usd * t.fx * PRICE_SCALE) for s in SKUS], dtype=np.int64)
    commit = np.array([round(s.usd * t.fx * (1 - t.discount) * PRICE_SCALE) for s in SKUS], dtype=np.int64)
    hours = pl.datetime_range(m.start, m.start + timedelta(hours=m.hours - 1), "1h", eager=True,
                              time_unit="us", time_zone="UTC")
    return _Cell(
        tenancy=t, month=m, base_rows=base_rows, salt=salt,
        resource_id=pl.Series(ids), compartment=compartment, region=region, ad=pl.Series(ads, dtype=pl.String),
        tags={key: pl.Series(values, dtype=pl.String) for key, values in tags.items()},
        price_commit=commit, price_payg=payg,
        start_minutes=hours.dt.strftime("%Y-%m-%dT%H:%MZ"), start_seconds=hours.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        cutoff_hour=int(m.hours * OVERAGE_FROM) if _overage(t, m) else m.hours,
    )


SKU_WEIGHTS = np.cumsum([s.weight for s in SKUS]) / sum(s.weight for s in SKUS)
SKU_MODEL = np.array([("count", "monthly", "lognormal", "tiny").index(s.model) for s in SKUS])
SKU_LO = np.array([s.lo for s in SKUS])
SKU_HI = np.array([s.hi for s in SKUS])
SKU_FREE = np.array([s.free for s in SKUS])


@dataclass
class _Rows:
    """One chunk of rows as arrays (money and quantities as integers of 1e-12)."""

    index: np.ndarray  # base row index (of the corrected row for corrections)
    correction: np.ndarray  # bool
    hour: np.ndarray
    sku: np.ndarray
    resource: np.ndarray  # (sku, resource) table index
    quantity: np.ndarray
    price: np.ndarray  # 1e-8 units
    cost: np.ndarray
    overage: np.ndarray  # bool


def _base_rows(c: _Cell, index: np.ndarray) -> _Rows:
    salt = c.salt
    hour = (index * c.month.hours) // max(c.base_rows, 1)
    late = _uniform(index, salt ^ 0x1A7E) < LATE_SHARE
    hour = np.where(late, np.maximum(hour - _randint(index, salt ^ 0x1A7F, 6, 30), 0), hour)
    sku = np.searchsorted(SKU_WEIGHTS, _uniform(index, salt ^ 0x5C0), side="right")
    sku = np.minimum(sku, len(SKUS) - 1)
    resource = sku * RESOURCES_PER_SKU + _randint(index, salt ^ 0x7E5, 0, RESOURCES_PER_SKU - 1)
    u = _uniform(index, salt ^ 0x0A7)
    lo, hi, model = SKU_LO[sku], SKU_HI[sku], SKU_MODEL[sku]
    count = np.floor(lo + u * (hi - lo + 1))
    # per resource the size is stable-ish: mix the resource's own draw in
    size_u = _uniform(resource.astype(np.int64), salt ^ 0x512E)
    monthly_gb = np.floor(lo + (0.7 * size_u + 0.3 * u) * (hi - lo))
    z = np.sqrt(-2 * np.log(_uniform(index, salt ^ 0xB0F) + 1e-300)) * np.cos(2 * np.pi * _uniform(index, salt ^ 0xB10))
    lognormal = np.round(np.exp(np.where(model == 2, lo + hi * z, 0.0)), 6)
    tiny = np.floor(lo + u * (hi - lo)) / 1e6
    qty = np.select([model == 0, model == 1, model == 2], [count, monthly_gb / c.month.hours, lognormal], tiny)
    quantity = np.rint(qty * MONEY_SCALE).astype(np.int64)
    overage = (hour >= c.cutoff_hour) & ~SKU_FREE[sku]
    price = np.where(overage, c.price_payg[sku], c.price_commit[sku])
    cost = np.rint(quantity.astype(np.float64) * price.astype(np.float64) / PRICE_SCALE).astype(np.int64)
    return _Rows(index, np.zeros(len(index), dtype=bool), hour, sku, resource, quantity, price, cost, overage)


def _correction_rows(c: _Cell, corrected: np.ndarray) -> _Rows:
    base = _base_rows(c, corrected)
    share = np.array([1.0, 0.5, 0.25])[_randint(corrected, c.salt ^ 0xC0, 0, 2)]
    quantity = -np.rint(base.quantity * share).astype(np.int64)
    cost = np.where(share == 1.0, -base.cost,
                    np.rint(quantity.astype(np.float64) * base.price.astype(np.float64) / PRICE_SCALE).astype(np.int64))
    return _Rows(corrected, np.ones(len(corrected), dtype=bool), base.hour, base.sku, base.resource, quantity,
                 base.price, cost, base.overage)


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------
def _units_text(units: np.ndarray, pad: int = 18) -> pl.Series:
    """Integers of 1e-12 as OCI writes decimals: 18 decimals, or ``2.76175E-7`` below 1e-6."""
    s = pl.Series(units, dtype=pl.Int64)
    frame = pl.DataFrame({"u": s})
    a = pl.col("u").abs()
    sign = pl.when(pl.col("u") < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    plain = pl.concat_str([
        sign, (a // MONEY_SCALE).cast(pl.String), pl.lit("."),
        (a % MONEY_SCALE).cast(pl.String).str.zfill(12), pl.lit("0" * (pad - 12))])
    digits = a.cast(pl.String)
    mantissa_tail = digits.str.slice(1).str.strip_chars_end("0")
    scientific = pl.concat_str([
        sign, digits.str.slice(0, 1),
        pl.when(mantissa_tail != "").then(pl.concat_str([pl.lit("."), mantissa_tail])).otherwise(pl.lit("")),
        pl.lit("E"), (digits.str.len_chars().cast(pl.Int64) - 13).cast(pl.String)])
    text = pl.when(a == 0).then(pl.lit("0")).when(a < 10**6).then(scientific).otherwise(plain)
    return frame.select(text.alias("t"))["t"]


def _price_text(price: np.ndarray) -> pl.Series:
    frame = pl.DataFrame({"p": pl.Series(price, dtype=pl.Int64)})
    p = pl.col("p")
    return frame.select(pl.concat_str([(p // PRICE_SCALE).cast(pl.String), pl.lit("."),
                                       (p % PRICE_SCALE).cast(pl.String).str.zfill(8),
                                       pl.lit("0" * 10)]).alias("t"))["t"]


def _masked(mask: pl.Series, values: pl.Series) -> pl.Series:
    """``values`` where ``mask``, else null (an empty cell)."""
    return pl.DataFrame({"m": mask, "v": values}).select(pl.when(pl.col("m")).then(pl.col("v")).alias("v"))["v"]


def _hex_ids(keys: np.ndarray, salt: int) -> pl.Series:
    pair = np.stack([_hash(keys, salt), _hash(keys, salt ^ 0x5EED)], axis=1).astype(">u8")
    return pl.Series(np.frombuffer(pair.tobytes().hex().encode("ascii"), dtype="S32")).cast(pl.String)


def _frame(c: _Cell, r: _Rows, fp: FilePlan, tag_keys: list[str]) -> pl.DataFrame:
    t, m = c.tenancy, c.month
    n = len(r.index)
    sku_idx = pl.Series(r.sku, dtype=pl.UInt32)
    res_idx = pl.Series(r.resource, dtype=pl.UInt32)
    hour_idx = pl.Series(r.hour, dtype=pl.UInt32)
    end_idx = pl.Series(np.minimum(r.hour + 1, m.hours - 1), dtype=pl.UInt32)
    starts = c.start_seconds if fp.increment % 2 else c.start_minutes
    end = c.start_seconds.gather(end_idx)
    if (r.hour + 1 >= m.hours).any():  # the month's last hour ends at the next month's first
        next_month = (m.start + timedelta(hours=m.hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = pl.DataFrame({"last": r.hour + 1 >= m.hours, "end": end}).select(
            pl.when(pl.col("last")).then(pl.lit(next_month)).otherwise(pl.col("end")).alias("end"))["end"]
    comp = c.compartment[r.resource]
    comp_ids = pl.Series([cid for cid, _ in t.compartments]).gather(pl.Series(comp, dtype=pl.UInt32))
    comp_names = pl.Series([name for _, name in t.compartments]).gather(pl.Series(comp, dtype=pl.UInt32))
    regions = pl.Series(list(t.regions)).gather(pl.Series(c.region[r.resource], dtype=pl.UInt32))
    ref_salt = c.salt ^ (0xC0FFEE if r.correction.any() else 0xBA5E)
    refs = _hex_ids(r.index, ref_salt)
    flag = pl.Series(np.where(r.overage, "true", "false"))
    zero = np.zeros(n, dtype=np.int64)
    overage = pl.Series(r.overage)
    overage_qty = _masked(overage, _units_text(np.where(r.overage, r.quantity, zero)))
    overage_cost = _masked(overage, _units_text(np.where(r.overage, r.cost, zero)))
    overage_price = _masked(overage, _price_text(r.price))
    # OCI fills backreferenceNo on ordinary rows too (a number); on a correction, the corrected row's referenceNo
    backref = (hour_idx.cast(pl.Int64) + (17000 + m.idx * 1000)).cast(pl.String)
    data = {
        "lineItem/referenceNo": refs,
        "lineItem/tenantId": pl.Series([t.ocid] * n),
        "lineItem/intervalUsageStart": starts.gather(hour_idx),
        "lineItem/intervalUsageEnd": end,
        "product/service": pl.Series([s.service for s in SKUS]).gather(sku_idx),
        "product/compartmentId": comp_ids,
        "product/compartmentName": comp_names,
        "product/region": regions,
        "product/availabilityDomain": c.ad.gather(res_idx),
        "product/resourceId": c.resource_id.gather(res_idx),
        "usage/billedQuantity": _units_text(r.quantity),
        "usage/billedQuantityOverage": overage_qty,
        "cost/subscriptionId": pl.Series([t.subscription] * n),
        "cost/productSku": pl.Series([s.part for s in SKUS]).gather(sku_idx),
        "product/Description": pl.Series([s.description for s in SKUS]).gather(sku_idx),
        "cost/unitPrice": _price_text(r.price),
        "cost/unitPriceOverage": overage_price,
        "cost/myCost": _units_text(r.cost),
        "cost/myCostOverage": overage_cost,
        "cost/currencyCode": pl.Series([t.currency] * n),
        "cost/billingUnitReadable": pl.Series([s.readable for s in SKUS]).gather(sku_idx),
        "cost/skuUnitDescription": pl.Series([s.unit for s in SKUS]).gather(sku_idx),
        "cost/overageFlag": flag,
        "lineItem/isCorrection": pl.Series(np.where(r.correction, "true", "false")),
        "lineItem/backreferenceNo": backref if not r.correction.any() else _hex_ids(r.index, c.salt ^ 0xBA5E),
    }
    for key in tag_keys:
        data[f"tags/{key}"] = c.tags[key].gather(res_idx)
    return pl.DataFrame(data)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
@dataclass
class _CellTotals:
    rows: int = 0
    billed: int = 0
    correction_rows: int = 0
    correction_cost: int = 0
    overage_rows: int = 0
    overage_cost: int = 0
    free_rows: int = 0
    files: int = 0

    def add(self, r: _Rows) -> None:
        costs = r.cost.tolist()  # exact Python ints (int64 sums could overflow)
        self.rows += len(costs)
        self.billed += sum(costs)
        if r.correction.any():
            self.correction_rows += int(r.correction.sum())
            self.correction_cost += sum(r.cost[r.correction].tolist())
        self.overage_rows += int(r.overage.sum())
        self.overage_cost += sum(r.cost[r.overage].tolist())
        self.free_rows += int((SKU_FREE[r.sku] & ~r.correction).sum())


def _write_file(path: Path, chunks, file_format: str, pool: ThreadPoolExecutor) -> None:
    """Write CSV text chunk by chunk; gzip runs in a second thread while the next chunk is built."""
    raw = path.open("wb")
    out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) if file_format == "csv.gz" \
        else raw
    pending: Future | None = None
    try:
        for i, frame in enumerate(chunks):
            buf = io.BytesIO()
            frame.write_csv(buf, include_header=i == 0, null_value="")
            if pending is not None:
                pending.result()
            pending = pool.submit(out.write, buf.getvalue())
        if pending is not None:
            pending.result()
    finally:
        if out is not raw:
            out.close()
        raw.close()


def generate_oci(out_dir: str | Path, *, rows: int, months: int = 1, seed: int = 0,
                 start_period: str = "2024-01", tenancies: int = 3, increments: int = 4,
                 file_format: Literal["csv.gz", "csv"] = "csv.gz", report_name: str = "oci-cost",
                 rows_per_file: int = OCI_FILE_ROWS,
                 progress: Callable[[int], None] | None = None) -> GenerationSummary:
    """Write synthetic OCI cost report increments under ``out_dir`` and return what was written.

    ``rows`` is the total over all tenancies and months (split evenly); each tenancy-month is
    ``increments`` files (fewer when it has under 50 rows per file), split at ``rows_per_file``.
    ``progress`` is called after each written chunk with its number of rows. Deterministic for a
    given argument set.
    """
    started = time.perf_counter()
    if file_format not in ("csv.gz", "csv"):
        raise ValueError(f"file_format must be 'csv.gz' or 'csv', not {file_format!r}")
    if months < 1 or tenancies < 1 or increments < 1 or rows_per_file < 1:
        raise ValueError("months, tenancies, increments and rows_per_file must be >= 1")
    if rows < months * tenancies:
        raise ValueError(f"rows={rows} is too small: at least one row per tenancy and month ({months * tenancies})")
    out = Path(out_dir)
    report_dir = out / report_name
    plan_months = _months(start_period, months)
    plan_tenancies = _tenancies(seed, tenancies)
    files = _plan_files(seed, plan_tenancies, plan_months, rows, increments, rows_per_file)
    base_rows: dict[tuple[int, int], int] = {}
    for fp in files:
        key = (fp.tenancy.idx, fp.month.idx)
        base_rows[key] = max(base_rows.get(key, 0), fp.base[1])
    totals = {(t.idx, m.idx): _CellTotals() for m in plan_months for t in plan_tenancies}
    data_files: list[Path] = []
    rows_per_period = {m.period: 0 for m in plan_months}
    cells: dict[tuple[int, int], _Cell] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for fp in files:
            key = (fp.tenancy.idx, fp.month.idx)
            if key not in cells:
                cells.clear()  # one tenancy-month at a time: files are planned in that order
                cells[key] = _cell(seed, fp.tenancy, fp.month, base_rows[key])
            c = cells[key]
            tag_keys = [k for k in (*TAG_KEYS, fp.tenancy.odd_tag_key)
                        if not (k == VARYING_TAG_KEY and fp.increment % 2)]
            suffix = ".csv.gz" if file_format == "csv.gz" else ".csv"
            path = report_dir / fp.month.period / f"reports_cost-csv_{fp.seq}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            cell_totals = totals[key]

            def chunks(fp=fp, c=c, tag_keys=tag_keys, cell_totals=cell_totals):
                a, b = fp.base
                for lo in range(a, b, CHUNK_ROWS):
                    r = _base_rows(c, np.arange(lo, min(b, lo + CHUNK_ROWS), dtype=np.int64))
                    cell_totals.add(r)
                    yield _frame(c, r, fp, tag_keys)
                    if progress:
                        progress(len(r.index))
                if len(fp.corrections):
                    r = _correction_rows(c, fp.corrections)
                    cell_totals.add(r)
                    yield _frame(c, r, fp, tag_keys)
                    if progress:
                        progress(len(r.index))

            _write_file(path, chunks(), file_format, pool)
            cell_totals.files += 1
            rows_per_period[fp.month.period] += fp.rows
            data_files.append(path)
    invoice_files = _write_invoices(out, seed, plan_tenancies, plan_months, totals)
    expected = _expected(seed, plan_tenancies, plan_months, totals, report_name, file_format, increments)
    report_dir.mkdir(parents=True, exist_ok=True)
    expected_path = report_dir / "expected_totals.json"
    expected_path.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    write_sources(out, [export_source(report_name, "oci-cost", report_name)])
    return GenerationSummary(
        out_dir=out, report_dir=report_dir, layout="oci-cost", file_format=file_format, rows=rows,
        rows_per_period=rows_per_period, data_files=data_files, manifest_files=[], invoice_files=invoice_files,
        expected_totals_path=expected_path, expected_totals=expected, seconds=time.perf_counter() - started)


def _decimal_text(units: int) -> str:
    return f"{Decimal(units).scaleb(-12).quantize(Decimal('1E-12')):f}"


def _money_text(units: int) -> str:
    """Exact amount, at least two decimals, no trailing zeros beyond them."""
    text = f"{Decimal(units).scaleb(-12):f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def _invoice_id(seed: int, t: Tenancy, m: Month) -> str | None:
    return str(_h64(seed, "invoice", t.idx, m.idx) % 9_000_000_000 + 1_000_000_000) if m.closed else None


def _expected(seed: int, tenancies: list[Tenancy], months: list[Month], totals: dict, report_name: str,
              file_format: str, increments: int) -> dict:
    records = []
    for m in months:
        for t in tenancies:
            tot = totals[(t.idx, m.idx)]
            records.append({
                "billing_account_id": t.ocid,
                "billing_account_name": t.name,
                "billing_period": m.period,
                "currency": t.currency,
                "invoice_id": _invoice_id(seed, t, m),
                "rows": tot.rows,
                "files": tot.files,
                "billed_cost": _decimal_text(tot.billed),
                "amortized_cost": _decimal_text(tot.billed),
                "correction_rows": tot.correction_rows,
                "correction_cost": _decimal_text(tot.correction_cost),
                "overage_rows": tot.overage_rows,
                "overage_cost": _decimal_text(tot.overage_cost),
                "free_tier_rows": tot.free_rows,
            })
    return {
        "generator": "focus_platform.generate.oci",
        "report_name": report_name,
        "file_format": file_format,
        "increments": increments,
        "seed": seed,
        "money_rule": ("costs and quantities are integers of 1e-12 written exactly (18 decimals, or E notation "
                       "below 1e-6), prices 8 decimals; totals are exact sums (12 decimals)"),
        "billing_period_rule": "UTC month of lineItem/intervalUsageStart",
        "amortized_cost_rule": "cost/myCost (OCI cost reports carry no amortization); corrections are additive rows",
        "totals": records,
    }


def _write_invoices(out: Path, seed: int, tenancies: list[Tenancy], months: list[Month], totals: dict) -> list[Path]:
    """invoices/<tenancy>/<YYYY-MM>.csv for every closed month (cost reports exclude tax: tax 0)."""
    header = ["invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total", "tax",
              "credits", "issued_date", "adjusts_invoice_id"]
    paths = []
    for m in months:
        if not m.closed:
            continue
        issued = (m.start + timedelta(hours=m.hours) + timedelta(days=3)).strftime("%Y-%m-%d")
        for t in tenancies:
            path = out / "invoices" / t.ocid / f"{m.period}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerow([_invoice_id(seed, t, m), t.issuer, t.ocid, m.period, t.currency,
                            _money_text(totals[(t.idx, m.idx)].billed), "0.00", "0.00", issued, ""])
            paths.append(path)
    return paths


__all__ = ["SKUS", "generate_oci"]
