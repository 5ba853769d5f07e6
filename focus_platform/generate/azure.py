"""Synthetic Azure Cost Management exports: EA and MCA cost details, actual and amortized.

``generate_azure(out_dir, rows=...)`` writes, under ``out_dir``, what Cost Management exports
("improved exports", CSV) deliver::

    azure-ea/actual/<yyyymmdd-yyyymmdd>/<run id>/part_<k>_<nnnn>.csv  + manifest.json
    azure-ea/amortized/<yyyymmdd-yyyymmdd>/<run id>/part_<k>_<nnnn>.csv + manifest.json
    azure-mca/actual/...   azure-mca/amortized/...                   (same layout)
    expected_totals.json
    invoices/<billing account>/<YYYY-MM>.csv

``k`` numbers the billing accounts of a source: EA enrollments (billing account = enrollment, EA
PascalCase headers, ``MM/DD/YYYY`` dates, tags without braces) and MCA billing profiles (camelCase
headers, pricing currency USD with an exchange rate to the billing currency, tags with braces,
invoice ids). Accounts alternate EA / MCA and cycle through USD, EUR, GBP, JPY, CAD.

Per billing account and month the actual and amortized files hold the same on-demand and Spot
usage (incl. free-tier rows at cost 0), marketplace purchases and (MCA) rounding adjustments, and
the same commitment-covered usage: reservation-covered VM hours and savings-plan-covered usage,
at cost 0 in the actual file and at the amortized cost in the amortized file. Only the actual file
has the commitment purchases (a monthly reservation fee, an upfront savings plan in the first
month, a reservation refund in the second); only the amortized file has the UnusedReservation and
UnusedSavingsPlan rows (one per day each). A reservation's monthly fee equals its covered plus
unused amortized cost exactly; a savings plan's monthly amortized share (hourly commitment x hours)
likewise.

Money is carried as integers of 1e-10 currency units and written as exact decimal text, so
``expected_totals.json`` (billed = actual files, amortized = amortized files, per billing account x
period x currency, computed here and not by the converter) is exact. Bulk rows are generated in
fixed chunks of 65,536 rows (deterministic for a seed, independent of ``rows_per_file``) and
written chunk by chunk (bounded memory).
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Literal

import numpy as np
import polars as pl

from focus_platform.generate.landing import export_source, write_sources

UNITS = 10**10  # money: integers of 1e-10 currency units
QTY_UNITS = 10**6  # quantities: integers of 1e-6
CHUNK = 65_536
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD")
USD_RATE = {"USD": 1.0, "EUR": 0.9215, "GBP": 0.7893, "JPY": 148.35, "CAD": 1.3512}  # pricing USD -> billing

EA_COLUMNS = [
    "InvoiceSectionName", "AccountName", "AccountOwnerId", "SubscriptionId", "SubscriptionName", "ResourceGroup",
    "ResourceLocation", "Date", "ProductName", "MeterCategory", "MeterSubCategory", "MeterId", "MeterName",
    "MeterRegion", "UnitOfMeasure", "Quantity", "EffectivePrice", "CostInBillingCurrency", "CostCenter",
    "ConsumedService", "ResourceId", "Tags", "OfferId", "AdditionalInfo", "ServiceInfo1", "ServiceInfo2",
    "ResourceName", "ReservationId", "ReservationName", "UnitPrice", "ProductOrderId", "ProductOrderName", "Term",
    "PublisherType", "PublisherName", "ChargeType", "Frequency", "PricingModel", "AvailabilityZone",
    "BillingAccountId", "BillingAccountName", "BillingCurrencyCode", "BillingPeriodStartDate",
    "BillingPeriodEndDate", "BillingProfileId", "BillingProfileName", "InvoiceSectionId", "IsAzureCreditEligible",
    "PartNumber", "PayGPrice", "PlanName", "ServiceFamily", "CostAllocationRuleName", "benefitId", "benefitName",
]
MCA_COLUMNS = [
    "invoiceId", "previousInvoiceId", "billingAccountId", "billingAccountName", "billingProfileId",
    "billingProfileName", "invoiceSectionId", "invoiceSectionName", "resellerName", "resellerMpnId", "costCenter",
    "billingPeriodEndDate", "billingPeriodStartDate", "servicePeriodEndDate", "servicePeriodStartDate", "date",
    "serviceFamily", "productOrderId", "productOrderName", "consumedService", "meterId", "meterName",
    "meterCategory", "meterSubCategory", "meterRegion", "ProductId", "product", "subscriptionId",
    "subscriptionName", "publisherType", "publisherId", "publisherName", "resourceGroupName", "ResourceId",
    "resourceLocation", "location", "effectivePrice", "quantity", "unitOfMeasure", "chargeType", "billingCurrency",
    "pricingCurrency", "costInBillingCurrency", "costInPricingCurrency", "costInUsd", "paygCostInBillingCurrency",
    "paygCostInUsd", "exchangeRatePricingToBilling", "exchangeRateDate", "isAzureCreditEligible", "serviceInfo1",
    "serviceInfo2", "additionalInfo", "tags", "PayGPrice", "frequency", "term", "reservationId", "reservationName",
    "pricingModel", "unitPrice", "benefitId", "benefitName",
]
# canonical field -> (EA header, MCA header); None: not in that dialect
FIELDS = {
    "invoice_id": (None, "invoiceId"), "previous_invoice_id": (None, "previousInvoiceId"),
    "billing_account_id": ("BillingAccountId", "billingAccountId"),
    "billing_account_name": ("BillingAccountName", "billingAccountName"),
    "billing_profile_id": ("BillingProfileId", "billingProfileId"),
    "billing_profile_name": ("BillingProfileName", "billingProfileName"),
    "invoice_section_id": ("InvoiceSectionId", "invoiceSectionId"),
    "invoice_section_name": ("InvoiceSectionName", "invoiceSectionName"),
    "reseller_name": (None, "resellerName"), "reseller_mpn_id": (None, "resellerMpnId"),
    "account_name": ("AccountName", None), "account_owner_id": ("AccountOwnerId", None),
    "cost_center": ("CostCenter", "costCenter"),
    "billing_period_start": ("BillingPeriodStartDate", "billingPeriodStartDate"),
    "billing_period_end": ("BillingPeriodEndDate", "billingPeriodEndDate"),
    "service_period_start": (None, "servicePeriodStartDate"), "service_period_end": (None, "servicePeriodEndDate"),
    "date": ("Date", "date"), "service_family": ("ServiceFamily", "serviceFamily"),
    "product_order_id": ("ProductOrderId", "productOrderId"),
    "product_order_name": ("ProductOrderName", "productOrderName"),
    "consumed_service": ("ConsumedService", "consumedService"), "meter_id": ("MeterId", "meterId"),
    "meter_name": ("MeterName", "meterName"), "meter_category": ("MeterCategory", "meterCategory"),
    "meter_subcategory": ("MeterSubCategory", "meterSubCategory"), "meter_region": ("MeterRegion", "meterRegion"),
    "product_id": (None, "ProductId"), "product_name": ("ProductName", "product"),
    "subscription_id": ("SubscriptionId", "subscriptionId"),
    "subscription_name": ("SubscriptionName", "subscriptionName"),
    "publisher_type": ("PublisherType", "publisherType"), "publisher_id": (None, "publisherId"),
    "publisher_name": ("PublisherName", "publisherName"), "resource_group": ("ResourceGroup", "resourceGroupName"),
    "resource_id": ("ResourceId", "ResourceId"), "resource_name": ("ResourceName", None),
    "resource_location": ("ResourceLocation", "resourceLocation"), "location": (None, "location"),
    "effective_price": ("EffectivePrice", "effectivePrice"), "quantity": ("Quantity", "quantity"),
    "unit_of_measure": ("UnitOfMeasure", "unitOfMeasure"), "charge_type": ("ChargeType", "chargeType"),
    "billing_currency": ("BillingCurrencyCode", "billingCurrency"), "pricing_currency": (None, "pricingCurrency"),
    "cost": ("CostInBillingCurrency", "costInBillingCurrency"),
    "cost_pricing": (None, "costInPricingCurrency"), "cost_usd": (None, "costInUsd"),
    "payg_cost": (None, "paygCostInBillingCurrency"), "payg_cost_usd": (None, "paygCostInUsd"),
    "exchange_rate": (None, "exchangeRatePricingToBilling"), "exchange_rate_date": (None, "exchangeRateDate"),
    "credit_eligible": ("IsAzureCreditEligible", "isAzureCreditEligible"),
    "service_info1": ("ServiceInfo1", "serviceInfo1"), "service_info2": ("ServiceInfo2", "serviceInfo2"),
    "additional_info": ("AdditionalInfo", "additionalInfo"), "tags": ("Tags", "tags"),
    "payg_price": ("PayGPrice", "PayGPrice"), "frequency": ("Frequency", "frequency"), "term": ("Term", "term"),
    "reservation_id": ("ReservationId", "reservationId"), "reservation_name": ("ReservationName", "reservationName"),
    "pricing_model": ("PricingModel", "pricingModel"), "unit_price": ("UnitPrice", "unitPrice"),
    "benefit_id": ("benefitId", "benefitId"), "benefit_name": ("benefitName", "benefitName"),
    "offer_id": ("OfferId", None), "plan_name": ("PlanName", None), "availability_zone": ("AvailabilityZone", None),
    "part_number": ("PartNumber", None), "cost_allocation_rule": ("CostAllocationRuleName", None),
}


@dataclass(frozen=True)
class Meter:
    category: str
    subcategory: str
    name: str
    product: str
    consumed_service: str
    arm_type: str  # e.g. Microsoft.Compute/virtualMachines
    unit: str  # UnitOfMeasure
    price: float  # USD per UnitOfMeasure block
    qty_low: float
    qty_high: float
    family: str
    weight: float
    pricing_model: str = "OnDemand"

    @property
    def meter_id(self) -> str:
        return _uuid("meter", self.category, self.subcategory, self.name)

    @property
    def part_number(self) -> str:
        return "AAA-" + str(_h64("part", self.name, self.subcategory) % 90000 + 10000)

    @property
    def product_id(self) -> str:
        return "DZH318Z0" + _code(("product", self.name, self.subcategory), 8)


METERS = (
    Meter("Virtual Machines", "Dv3/DSv3 Series", "D2 v3/D2s v3", "Virtual Machines Dv3/DSv3 Series - D2 v3/D2s v3",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 Hour", 0.096, 1, 24, "Compute", 14),
    Meter("Virtual Machines", "Ev4 Series", "E4 v4", "Virtual Machines Ev4 Series - E4 v4",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 Hour", 0.252, 1, 24, "Compute", 8),
    Meter("Virtual Machines", "BS Series", "B2s", "Virtual Machines BS Series - B2s",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 Hour", 0.0416, 1, 24, "Compute", 8),
    Meter("Virtual Machines", "Dv3/DSv3 Series", "D4 v3/D4s v3 Spot", "Virtual Machines Dv3/DSv3 Series - D4 v3 Spot",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 Hour", 0.0384, 1, 24, "Compute", 3,
          pricing_model="Spot"),
    Meter("Storage", "Premium SSD Managed Disks", "P10 LRS Disk", "Premium SSD Managed Disks - P10 LRS",
          "Microsoft.Compute", "Microsoft.Compute/disks", "1/Month", 19.71, 0.032258, 0.032258, "Storage", 9),
    Meter("Storage", "Tiered Block Blob", "Hot LRS Data Stored", "Tiered Block Blob - Hot LRS - Data Stored",
          "Microsoft.Storage", "Microsoft.Storage/storageAccounts", "1 GB/Month", 0.0184, 0.5, 400, "Storage", 10),
    Meter("Storage", "Tiered Block Blob", "Hot LRS Write Operations", "Tiered Block Blob - Hot LRS - Write Operations",
          "Microsoft.Storage", "Microsoft.Storage/storageAccounts", "10K", 0.055, 0.0004, 40, "Storage", 10),
    Meter("Bandwidth", "Rtn Preference: MGN", "Standard Data Transfer Out", "Rtn Preference: MGN - Data Transfer Out",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 GB", 0.087, 0.01, 80, "Networking", 6),
    Meter("Bandwidth", "Rtn Preference: MGN", "Data Transfer In", "Rtn Preference: MGN - Data Transfer In (free)",
          "Microsoft.Compute", "Microsoft.Compute/virtualMachines", "1 GB", 0.0, 0.01, 80, "Networking", 4),
    Meter("Log Analytics", "Pay-as-you-go", "Pay-as-you-go Data Ingestion", "Log Analytics - Pay-as-you-go Data Ingestion",
          "Microsoft.OperationalInsights", "Microsoft.OperationalInsights/workspaces", "1 GB", 2.3, 0.01, 8,
          "Management and Governance", 5),
    Meter("SQL Database", "General Purpose - Compute Gen5", "vCore", "SQL Database Single General Purpose - Compute Gen5",
          "Microsoft.Sql", "Microsoft.Sql/servers/databases", "1 Hour", 0.2529, 1, 48, "Databases", 6),
    Meter("Key Vault", "Standard", "Operations", "Key Vault - Standard - Operations",
          "Microsoft.KeyVault", "Microsoft.KeyVault/vaults", "10K", 0.03, 0.0001, 5, "Security", 4),
    Meter("Virtual Network", "IP Addresses", "Standard IPv4 Static Public IP", "IP Addresses - Standard IPv4 Static",
          "Microsoft.Network", "Microsoft.Network/publicIPAddresses", "1 Hour", 0.005, 24, 24, "Networking", 4),
    Meter("Load Balancer", "Standard", "Standard Included LB Rules and Outbound Rules", "Load Balancer - Standard",
          "Microsoft.Network", "Microsoft.Network/loadBalancers", "100 Hours", 2.5, 0.24, 0.24, "Networking", 3),
    Meter("Azure App Service", "Premium v3 Plan", "P1 v3 App", "Azure App Service Premium v3 Plan - P1 v3",
          "Microsoft.Web", "Microsoft.Web/serverFarms", "1 Hour", 0.2, 1, 24, "Compute", 4),
    Meter("Functions", "Standard", "Total Executions", "Functions - Total Executions",
          "Microsoft.Web", "Microsoft.Web/sites", "1M", 0.2, 0.001, 3, "Compute", 3),
)
RI_METER = METERS[0]  # reservations cover D2s v3
SP_METERS = (METERS[1], METERS[2])  # the savings plan covers E4 v4 and B2s
REGIONS = (("EastUS", "US East"), ("westeurope", "EU West"), ("uksouth", "UK South"), ("japaneast", "JA East"),
           ("CentralUS", "US Central"))
RI_RATE = 0.0616  # amortized hourly reservation rate (USD) of a D2s v3
SP_DISCOUNT = 0.35


# =============================================================================================
# Randomness and ids
# =============================================================================================
def _h64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _uuid(*parts: object) -> str:
    return str(uuid.UUID(bytes=hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()))


def _code(parts: tuple, length: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") -> str:
    h = _h64(*parts)
    out = []
    for _ in range(length):
        h, r = divmod(h, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_h64(*parts))


# =============================================================================================
# Plan
# =============================================================================================
@dataclass
class Subscription:
    id: str
    name: str
    region: tuple[str, str]
    resource_group: str


@dataclass
class Account:
    idx: int
    agreement: Literal["EA", "MCA"]
    source: str  # azure-ea / azure-mca
    part: int  # k in part_<k>_<n>: index within its source
    id: str  # FOCUS BillingAccountId: EA enrollment / MCA billing profile
    name: str
    currency: str
    rate: float  # pricing currency (USD) -> billing currency; EA: prices are in the billing currency
    mca_account_id: str
    mca_account_name: str
    subscriptions: list[Subscription]


@dataclass
class Month:
    idx: int
    period: str
    start: date
    days: int

    @property
    def end(self) -> date:  # inclusive, as Azure writes it
        return self.start + timedelta(days=self.days - 1)


@dataclass
class Budget:
    bulk: int  # rows in both files
    ri_instances: int
    sp_rows_per_day: int
    extra_unused: int  # 0/1: one day's unused reservation split in two rows (odd budgets)


def _months(start_period: str, months: int) -> list[Month]:
    year, month = map(int, start_period.split("-"))
    out = []
    for i in range(months):
        y, m = divmod(month - 1 + i, 12)
        first = date(year + y, m + 1, 1)
        out.append(Month(i, f"{first:%Y-%m}", first, calendar.monthrange(first.year, first.month)[1]))
    return out


def _accounts(seed: int, n: int) -> list[Account]:
    out = []
    parts = {"azure-ea": 0, "azure-mca": 0}
    for i in range(n):
        agreement = "EA" if i % 2 == 0 else "MCA"
        source = "azure-ea" if agreement == "EA" else "azure-mca"
        currency = CURRENCIES[i % len(CURRENCIES)]
        if agreement == "EA":
            acct_id = str(80000000 + _h64(seed, "enrollment", i) % 9999999)
            name = f"Contoso Enrollment {i + 1}"
            mca_id, mca_name = acct_id, name
        else:
            acct_id = "-".join(_code((seed, "profile", i, p), k) for p, k in ((0, 4), (1, 4), (2, 3), (3, 3)))
            name = f"Fabrikam Billing Profile {i + 1}"
            mca_id = f"{_uuid(seed, 'mca', i)}:{_uuid(seed, 'mca2', i)}_2019-05-31"
            mca_name = "Fabrikam, Inc."
        rng = _rng(seed, "subs", i)
        subs = []
        for s in range(int(rng.integers(3, 6))):
            region = REGIONS[int(rng.integers(0, len(REGIONS)))]
            subs.append(Subscription(_uuid(seed, "sub", i, s), f"{['prod', 'dev', 'data', 'web', 'ml'][s]}-{i + 1}",
                                     region, f"rg-{['app', 'data', 'ops', 'web', 'ml'][s]}-{i + 1}"))
        rate = USD_RATE[currency] if agreement == "MCA" else 1.0
        out.append(Account(i, agreement, source, parts[source], acct_id, name, currency, rate, mca_id, mca_name,
                           subs))
        parts[source] += 1
    return out


SPECIAL_ROWS = 6  # per account-month upper bound of one-off rows (purchases, refund, marketplace, rounding)


def _budget(rows_am: int, days: int, month_idx: int, account: Account) -> Budget:
    """Split one account-month's row budget: covered RI/SP rows (both files), unused rows, specials,
    and bulk rows (both files) filling the rest exactly."""
    fixed = _special_count(account, month_idx) + 2 * days  # specials + unused RI and SP per day
    commitment = max(2 * days, int(rows_am * 0.08))  # covered rows, both files
    ri = max(1, commitment // (4 * days))
    sp = max(1, commitment // (4 * days))
    remaining = rows_am - fixed - 2 * days * (ri + sp)
    if remaining < 2:
        raise ValueError(f"rows too small: an account-month needs at least {fixed + 4 * days + 2} rows")
    return Budget(remaining // 2, ri, sp, remaining % 2)


def _special_count(account: Account, month_idx: int) -> int:
    n = 1 + 2  # reservation fee (actual) + marketplace purchase (both files)
    if month_idx == 0:
        n += 1  # savings plan upfront purchase (actual)
    if month_idx == 1:
        n += 1  # reservation refund (actual)
    if account.agreement == "MCA":
        n += 2  # rounding adjustment (both files)
    return n


# =============================================================================================
# Public API
# =============================================================================================
@dataclass(frozen=True)
class AzureGenerationSummary:
    """What ``generate_azure`` wrote. ``expected_totals`` is the content of expected_totals.json."""

    out_dir: Path
    rows: int
    rows_per_period: dict[str, int]
    data_files: list[Path]
    manifest_files: list[Path]
    invoice_files: list[Path]
    expected_totals_path: Path
    expected_totals: dict
    seconds: float

    @property
    def paths(self) -> list[Path]:
        return [*self.data_files, *self.manifest_files, *self.invoice_files, self.expected_totals_path]

    def files_of(self, source: str, period: str) -> list[Path]:
        """The data files (actual and amortized) of one source and billing period: one delivery."""
        stamp = period.replace("-", "")
        return [p for p in self.data_files if p.parts[len(self.out_dir.parts)] == source
                and p.parent.parent.name.startswith(stamp)]


def generate_azure(out_dir: str | Path, *, rows: int, months: int = 1, seed: int = 0, start_period: str = "2024-01",
                   accounts: int = 4, rows_per_file: int = 500_000,
                   file_format: Literal["csv", "csv.gz"] = "csv",
                   progress: Callable[[int], None] | None = None) -> AzureGenerationSummary:
    """Write synthetic Azure EA and MCA cost-details exports (actual + amortized) under ``out_dir``.

    ``rows`` is the total number of data rows over all files (actual and amortized, all months and
    billing accounts); ``accounts`` alternate EA enrollment / MCA billing profile. Deterministic for a
    given argument set except ``rows_per_file``, which only splits files. Raises ValueError when
    ``rows`` cannot hold an account-month's commitment rows (about 200 rows)."""
    started = time.perf_counter()
    if months < 1 or accounts < 1 or rows_per_file < 1:
        raise ValueError("months, accounts and rows_per_file must be >= 1")
    if file_format not in ("csv", "csv.gz"):
        raise ValueError(f"file_format must be 'csv' or 'csv.gz', not {file_format!r}")
    out = Path(out_dir)
    plan_months = _months(start_period, months)
    plan_accounts = _accounts(seed, accounts)
    cells = [(a, m) for m in plan_months for a in plan_accounts]
    base, extra = divmod(rows, len(cells))
    totals: dict[tuple[int, int], _Total] = {}
    data_files: list[Path] = []
    manifests: list[Path] = []
    rows_per_period: dict[str, int] = {}
    for m in plan_months:
        writers = {(src, ds): _RunWriter(out, src, ds, m, seed, rows_per_file, file_format)
                   for src in sorted({a.source for a in plan_accounts}) for ds in ("actual", "amortized")}
        for a in plan_accounts:
            rows_am = base + (1 if cells.index((a, m)) < extra else 0)
            total = _Total()
            _write_account_month(a, m, rows_am, seed, writers, total, progress)
            totals[(a.idx, m.idx)] = total
            rows_per_period[m.period] = rows_per_period.get(m.period, 0) + total.rows
        for w in writers.values():
            data_files += w.close()
            manifests.append(w.write_manifest())
    invoices = _write_invoices(out, plan_accounts, plan_months, totals, seed)
    expected = {
        "generator": "focus_platform.generate.azure",
        "seed": seed,
        "file_format": file_format,
        "billed_cost_rule": "sum of CostInBillingCurrency of the actual-cost files",
        "amortized_cost_rule": "sum of CostInBillingCurrency of the amortized-cost files",
        "focus_rows_rule": "amortized rows + actual rows without an amortized counterpart (commitment purchases "
                           "and refunds); dropped_rows = actual rows replaced by their amortized counterpart",
        "totals": [totals[(a.idx, m.idx)].record(a, m, seed) for m in plan_months for a in plan_accounts],
    }
    out.mkdir(parents=True, exist_ok=True)
    expected_path = out / "expected_totals.json"
    expected_path.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    write_sources(out, [export_source(name, "azure-cost-details", name, ("actual", "amortized"))
                        for name in sorted({a.source for a in plan_accounts})])
    return AzureGenerationSummary(out, sum(rows_per_period.values()), rows_per_period, data_files, manifests,
                                  invoices, expected_path, expected, time.perf_counter() - started)


# =============================================================================================
# Totals
# =============================================================================================
@dataclass
class _Total:
    billed: int = 0
    amortized: int = 0
    actual_rows: int = 0
    amortized_rows: int = 0
    actual_only_rows: int = 0  # purchases and refunds: FOCUS rows that come from the actual file
    by_charge_type: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.actual_rows + self.amortized_rows

    def add(self, dataset: str, charge_types: list[str] | np.ndarray, costs: np.ndarray) -> None:
        n = len(costs)
        if dataset == "actual":
            self.billed += int(costs.sum())
            self.actual_rows += n
        else:
            self.amortized += int(costs.sum())
            self.amortized_rows += n
        for ct in set(charge_types):
            key = f"{dataset}:{ct}"
            self.by_charge_type[key] = self.by_charge_type.get(key, 0) + int(
                np.count_nonzero(np.asarray(charge_types) == ct))

    def record(self, a: Account, m: Month, seed: int) -> dict:
        return {
            "billing_account_id": a.id, "billing_account_name": a.name, "agreement": a.agreement,
            "source": a.source, "billing_period": m.period, "currency": a.currency,
            "invoice_id": _invoice_id(a, m, seed), "rows": self.rows, "actual_rows": self.actual_rows,
            "amortized_rows": self.amortized_rows,
            "focus_rows": self.amortized_rows + self.actual_only_rows,
            "dropped_rows": self.actual_rows - self.actual_only_rows,
            "billed_cost": _decimal_text(self.billed), "amortized_cost": _decimal_text(self.amortized),
            "rows_by_dataset_and_charge_type": dict(sorted(self.by_charge_type.items())),
        }


def _decimal_text(units: int) -> str:
    return str(Decimal(units).scaleb(-10).quantize(Decimal("1E-12")))


def _invoice_id(a: Account, m: Month, seed: int) -> str:
    prefix = "E" if a.agreement == "EA" else "G"
    return prefix + str(_h64(seed, "invoice", a.idx, m.period) % 900_000_000 + 100_000_000)


# =============================================================================================
# Rows
# =============================================================================================
def _money(units: np.ndarray) -> pl.Series:
    """Integers of 1e-10 as exact decimal text."""
    s = pl.Series(units.astype(np.int64))
    a = s.abs()
    text = pl.concat_str([pl.when(s < 0).then(pl.lit("-")).otherwise(pl.lit("")),
                          (a // UNITS).cast(pl.String), pl.lit("."),
                          (a % UNITS).cast(pl.String).str.zfill(10)])
    return pl.select(text.str.strip_chars_end("0").str.strip_chars_end(".")).to_series()


def _qty(units: np.ndarray) -> pl.Series:
    s = pl.Series(units.astype(np.int64))
    text = pl.concat_str([(s // QTY_UNITS).cast(pl.String), pl.lit("."), (s % QTY_UNITS).cast(pl.String).str.zfill(6)])
    return pl.select(text.str.strip_chars_end("0").str.strip_chars_end(".")).to_series()


def _price(values: np.ndarray | float, n: int) -> pl.Series:
    arr = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,))
    return _money(np.rint(arr * UNITS).astype(np.int64))


def _cost_units(qty_units: np.ndarray, price: np.ndarray | float, rate: float) -> np.ndarray:
    return np.rint(qty_units / QTY_UNITS * np.asarray(price) * rate * UNITS).astype(np.int64)


def _set_cost(rows: _Rows, a: Account, units: np.ndarray) -> _Rows:
    """CostInBillingCurrency, and for MCA the pricing-currency (USD) cost."""
    rows.set(cost=_money(units))
    if a.agreement == "MCA":
        usd = np.rint(units / a.rate).astype(np.int64)
        rows.set(cost_pricing=_money(usd), cost_usd=_money(usd))
    return rows


def _usd_date(d: date) -> str:
    return d.strftime("%m/%d/%Y")


class _Rows:
    """Column values of a batch of rows, keyed by canonical field name (scalars broadcast)."""

    def __init__(self, n: int):
        self.n = n
        self.cols: dict[str, object] = {}

    def set(self, **values: object) -> _Rows:
        self.cols.update(values)
        return self

    def frame(self, account: Account) -> pl.DataFrame:
        dialect = 0 if account.agreement == "EA" else 1
        headers = EA_COLUMNS if dialect == 0 else MCA_COLUMNS
        by_header = {FIELDS[f][dialect]: v for f, v in self.cols.items() if FIELDS[f][dialect] is not None}
        data = {}
        for h in headers:
            v = by_header.get(h)
            if v is None:
                data[h] = pl.repeat("", self.n, dtype=pl.String, eager=True)
            elif isinstance(v, pl.Series):
                data[h] = v.cast(pl.String).fill_null("")
            elif isinstance(v, np.ndarray):
                data[h] = pl.Series(v).cast(pl.String).fill_null("")
            else:
                data[h] = pl.repeat(str(v), self.n, dtype=pl.String, eager=True)
        return pl.DataFrame(data)


def _common(rows: _Rows, a: Account, m: Month, seed: int) -> None:
    rows.set(billing_account_id=a.id if a.agreement == "EA" else a.mca_account_id,
             billing_account_name=a.name if a.agreement == "EA" else a.mca_account_name,
             billing_profile_id=a.id, billing_profile_name=a.name,
             invoice_section_id=_code((seed, "section", a.idx), 4) + "-" + _code((seed, "section2", a.idx), 3),
             invoice_section_name="Engineering", billing_currency=a.currency,
             billing_period_start=_usd_date(m.start), billing_period_end=_usd_date(m.end),
             credit_eligible="True", cost_center="CC-" + str(1000 + a.idx))
    if a.agreement == "MCA":
        rows.set(invoice_id=_invoice_id(a, m, seed), pricing_currency="USD", exchange_rate=f"{a.rate:.4f}",
                 exchange_rate_date=_usd_date(m.start), service_period_start=_usd_date(m.start),
                 service_period_end=_usd_date(m.end))
    else:
        rows.set(offer_id="MS-AZR-0017P", account_name="Platform Team", account_owner_id="platform@contoso.com")


def _subscription_columns(rows: _Rows, a: Account, sub_idx: np.ndarray) -> None:
    subs = a.subscriptions
    rows.set(subscription_id=pl.Series([s.id for s in subs])[sub_idx],
             subscription_name=pl.Series([s.name for s in subs])[sub_idx],
             resource_group=pl.Series([s.resource_group for s in subs])[sub_idx],
             resource_location=pl.Series([s.region[0] for s in subs])[sub_idx],
             location=pl.Series([s.region[1] for s in subs])[sub_idx],
             meter_region=pl.Series([s.region[1] for s in subs])[sub_idx])


def _resource_ids(a: Account, sub_idx: np.ndarray, meter_types: pl.Series, names: pl.Series) -> pl.Series:
    subs = pl.Series([s.id for s in a.subscriptions])[sub_idx]
    groups = pl.Series([s.resource_group for s in a.subscriptions])[sub_idx]
    return pl.select(pl.concat_str([pl.lit("/subscriptions/"), subs, pl.lit("/resourceGroups/"), groups,
                                    pl.lit("/providers/"), meter_types, pl.lit("/"), names])).to_series()


def _tags(a: Account, values: pl.Series, present: np.ndarray) -> pl.Series:
    body = pl.select(pl.concat_str([pl.lit('"env": "'), values, pl.lit('","team": "platform"')])).to_series()
    if a.agreement == "MCA":
        body = pl.select(pl.concat_str([pl.lit("{"), body, pl.lit("}")])).to_series()
    return pl.select(pl.when(pl.Series(present)).then(body).otherwise(pl.lit(""))).to_series()


def _meter_columns(rows: _Rows, meters: list[Meter], idx: np.ndarray) -> None:
    def col(getter) -> pl.Series:
        return pl.Series([getter(mt) for mt in meters])[idx]
    rows.set(meter_category=col(lambda x: x.category), meter_subcategory=col(lambda x: x.subcategory),
             meter_name=col(lambda x: x.name), product_name=col(lambda x: x.product),
             consumed_service=col(lambda x: x.consumed_service), unit_of_measure=col(lambda x: x.unit),
             service_family=col(lambda x: x.family), meter_id=col(lambda x: x.meter_id),
             part_number=col(lambda x: x.part_number), product_id=col(lambda x: x.product_id),
             publisher_type="Azure", publisher_name="Microsoft", plan_name="",
             frequency="UsageBased", charge_type="Usage")


def _bulk_chunk(a: Account, m: Month, seed: int, chunk: int, n: int) -> tuple[pl.DataFrame, np.ndarray]:
    """n on-demand / Spot usage rows (identical in the actual and amortized files)."""
    rng = _rng(seed, "bulk", a.idx, m.idx, chunk)
    weights = np.array([mt.weight for mt in METERS])
    midx = rng.choice(len(METERS), size=n, p=weights / weights.sum())
    low = np.array([mt.qty_low for mt in METERS])[midx]
    high = np.array([mt.qty_high for mt in METERS])[midx]
    qty = np.rint((low + (high - low) * rng.random(n)) * QTY_UNITS).astype(np.int64)
    price = np.array([mt.price for mt in METERS])[midx]
    cost = _cost_units(qty, price, a.rate)
    day = (np.arange(n) + chunk * CHUNK) % m.days
    sub = rng.integers(0, len(a.subscriptions), n)
    res = rng.integers(0, 40, n)
    rows = _Rows(n)
    _common(rows, a, m, seed)
    _subscription_columns(rows, a, sub)
    _meter_columns(rows, list(METERS), midx)
    arm = pl.Series([mt.arm_type for mt in METERS])[midx]
    short = pl.Series([mt.arm_type.split("/")[-1].lower()[:6] for mt in METERS])[midx]
    names = pl.select(pl.concat_str([short, pl.lit("-"), pl.Series(res).cast(pl.String)])).to_series()
    dates = pl.Series([_usd_date(m.start + timedelta(days=int(d))) for d in range(m.days)])[day]
    model = pl.Series([mt.pricing_model for mt in METERS])[midx]
    env = pl.Series(["prod", "dev", "test"])[res % 3]
    rows.set(date=dates, quantity=_qty(qty), cost=_money(cost), effective_price=_price(price * a.rate, n),
             unit_price=_price(price, n), payg_price=_price(price, n), pricing_model=model,
             resource_id=_resource_ids(a, sub, arm, names), resource_name=names,
             tags=_tags(a, env, res % 5 != 0),
             product_order_name="Azure plan" if a.agreement == "MCA" else "")
    if a.agreement == "MCA":
        usd = _cost_units(qty, price, 1.0)
        rows.set(cost_pricing=_money(usd), cost_usd=_money(usd), payg_cost=_money(cost), payg_cost_usd=_money(usd),
                 effective_price=_price(price, n))
    return rows.frame(a), cost


def _commitment_rows(a: Account, m: Month, seed: int, b: Budget) -> dict[str, list[tuple[pl.DataFrame, list, np.ndarray]]]:
    """Covered usage (both files, actual at 0), unused rows (amortized), purchases (actual)."""
    rng = _rng(seed, "commit", a.idx, m.idx)
    out: dict[str, list] = {"actual": [], "amortized": [], "both_actual": [], "both_amortized": []}
    order = _uuid(seed, "ri-order", a.idx)
    ri_id = f"/providers/Microsoft.Capacity/reservationOrders/{order}/reservations/{_uuid(seed, 'ri', a.idx)}"
    ri_name = f"VM_RI_D2s_v3_{a.idx + 1}"
    sp_order = _uuid(seed, "sp-order", a.idx)
    sp_id = (f"/providers/Microsoft.BillingBenefits/savingsPlanOrders/{sp_order}/savingsPlans/"
             f"{_uuid(seed, 'sp', a.idx)}")
    sp_name = f"Compute_SavingsPlan_{a.idx + 1}"
    sub0 = a.subscriptions[0]
    days = np.arange(m.days)
    dates_all = [_usd_date(m.start + timedelta(days=int(d))) for d in range(m.days)]

    # --- reservation-covered usage: ri_instances VMs x days, 12..23 hours each ------------------
    n = b.ri_instances * m.days
    day = np.repeat(days, b.ri_instances)
    inst = np.tile(np.arange(b.ri_instances), m.days)
    hours = rng.integers(12, 24, n).astype(np.int64) * QTY_UNITS
    ri_rate_billing = RI_RATE * a.rate
    covered_cost = _cost_units(hours, RI_RATE, a.rate)
    rows = _covered(a, m, seed, RI_METER, day, inst, hours, dates_all, sub0, "Reservation", ri_id, ri_name,
                    order, "Reserved VM Instance, Standard_D2s_v3, US East, 1 Year", "12")
    rows.set(effective_price=_price(ri_rate_billing if a.agreement == "EA" else RI_RATE, n))
    out["both_amortized"].append((_set_cost(rows, a, covered_cost).frame(a), ["Usage"] * n, covered_cost))
    zero = np.zeros(n, dtype=np.int64)
    out["both_actual"].append((_set_cost(rows, a, zero).set(effective_price=_price(0.0, n)).frame(a),
                               ["Usage"] * n, zero))
    # unused reservation: capacity - used hours, per day
    used = np.bincount(day, weights=hours, minlength=m.days).astype(np.int64)
    unused_hours = b.ri_instances * 24 * QTY_UNITS - used
    split = b.extra_unused
    u_days = np.concatenate([days, days[:split]])
    u_hours = unused_hours.copy()
    if split:
        first = u_hours[0] // 2
        u_hours = np.concatenate([u_hours, [u_hours[0] - first]])
        u_hours[0] = first
    unused_cost = _cost_units(u_hours, RI_RATE, a.rate)
    un = _Rows(len(u_days))
    _common(un, a, m, seed)
    un.set(date=pl.Series(dates_all)[u_days], charge_type="UnusedReservation", pricing_model="Reservation",
           frequency="UsageBased", quantity=_qty(u_hours), cost=_money(unused_cost), unit_of_measure="1 Hour",
           effective_price=_price(ri_rate_billing if a.agreement == "EA" else RI_RATE, len(u_days)),
           unit_price=_price(RI_METER.price, len(u_days)), payg_price=_price(0.0, len(u_days)),
           meter_category=RI_METER.category, meter_subcategory=RI_METER.subcategory, meter_name=RI_METER.name,
           meter_id=RI_METER.meter_id, product_name=RI_METER.product, part_number=RI_METER.part_number,
           product_id=RI_METER.product_id, consumed_service="Microsoft.Capacity", resource_id=ri_id,
           resource_location=sub0.region[0], location=sub0.region[1], meter_region=sub0.region[1],
           subscription_id=sub0.id, subscription_name=sub0.name, benefit_id=ri_id, benefit_name=ri_name,
           reservation_id=_uuid(seed, "ri", a.idx), reservation_name=ri_name, product_order_id=order,
           product_order_name="Reserved VM Instance, Standard_D2s_v3, US East, 1 Year", term="12",
           publisher_type="Azure", publisher_name="Microsoft", service_family="Compute")
    out["amortized"].append((_set_cost(un, a, unused_cost).frame(a), ["UnusedReservation"] * len(u_days),
                             unused_cost))
    # the month's reservation fee (actual): exactly covered + unused amortized cost
    fee = int(covered_cost.sum() + unused_cost.sum())
    out["actual"].append(_purchase(a, m, seed, sub0, m.start, fee, "Reservation", "Recurring", ri_id, ri_name,
                                   order, "Reserved VM Instance, Standard_D2s_v3, US East, 1 Year", "12",
                                   "Microsoft.Capacity"))

    # --- savings-plan-covered usage: sp_rows_per_day rows a day, under a fixed hourly commitment -----
    commit_hour_usd = round(max(0.05, b.sp_rows_per_day * 0.12), 4)  # USD per hour
    daily_units = int(round(commit_hour_usd * 24 * a.rate * UNITS))
    n = b.sp_rows_per_day * m.days
    day = np.repeat(days, b.sp_rows_per_day)
    inst = np.tile(np.arange(b.sp_rows_per_day), m.days)
    share = rng.uniform(0.6, 0.95, m.days)  # of the daily commitment used
    weights = rng.uniform(0.5, 1.5, n)
    per_day_w = np.bincount(day, weights=weights, minlength=m.days)
    sp_cost = np.floor(weights / per_day_w[day] * share[day] * daily_units).astype(np.int64)
    which = rng.integers(0, len(SP_METERS), n)
    od_price = np.array([mt.price for mt in SP_METERS])[which]
    eff_price = od_price * (1 - SP_DISCOUNT)
    qty = np.maximum(1, np.rint(sp_cost / UNITS / (eff_price * a.rate) * QTY_UNITS)).astype(np.int64)
    rows = _covered(a, m, seed, None, day, inst, qty, dates_all, sub0, "SavingsPlan", sp_id, sp_name, sp_order,
                    "Compute Savings Plan, 1 Year", "12", meters=[SP_METERS[i] for i in which])
    rows.set(effective_price=_price(eff_price * (a.rate if a.agreement == "EA" else 1.0), n),
             unit_price=_price(od_price, n), payg_price=_price(od_price, n))
    out["both_amortized"].append((_set_cost(rows, a, sp_cost).frame(a), ["Usage"] * n, sp_cost))
    zero = np.zeros(n, dtype=np.int64)
    out["both_actual"].append((_set_cost(rows, a, zero).set(effective_price=_price(0.0, n)).frame(a),
                               ["Usage"] * n, zero))
    used = np.bincount(day, weights=sp_cost, minlength=m.days).astype(np.int64)
    sp_unused = daily_units - used
    un = _Rows(m.days)
    _common(un, a, m, seed)
    un.set(date=pl.Series(dates_all), charge_type="UnusedSavingsPlan", pricing_model="SavingsPlan",
           frequency="UsageBased", quantity=_qty(np.rint(sp_unused / daily_units * 24 * QTY_UNITS).astype(np.int64)),
           cost=_money(sp_unused), unit_of_measure="1 Hour",
           effective_price=_price(commit_hour_usd * (a.rate if a.agreement == "EA" else 1.0), m.days),
           unit_price=_price(commit_hour_usd, m.days), payg_price=_price(0.0, m.days),
           meter_category="Savings Plan", meter_subcategory="Compute", meter_name="Compute Savings Plan",
           meter_id=_uuid("sp-meter"), product_name="Compute Savings Plan, 1 Year", part_number="AAS-00001",
           product_id="DZH318Z0SPLAN001", consumed_service="Microsoft.BillingBenefits", resource_id=sp_id,
           resource_location="global", location="Global", meter_region="", subscription_id=sub0.id,
           subscription_name=sub0.name, benefit_id=sp_id, benefit_name=sp_name, product_order_id=sp_order,
           product_order_name="Compute Savings Plan, 1 Year", term="12", publisher_type="Azure",
           publisher_name="Microsoft", service_family="Compute")
    out["amortized"].append((_set_cost(un, a, sp_unused).frame(a), ["UnusedSavingsPlan"] * m.days, sp_unused))
    if m.idx == 0:  # upfront savings plan purchase: the whole year's commitment
        upfront = int(round(commit_hour_usd * 24 * 365 * a.rate * UNITS))
        out["actual"].append(_purchase(a, m, seed, sub0, m.start, upfront, "SavingsPlan", "OneTime", sp_id, sp_name,
                                       sp_order, "Compute Savings Plan, 1 Year", "12", "Microsoft.BillingBenefits"))
    if m.idx == 1:  # a reservation exchange refunds part of an older reservation
        refund = -int(round(rng.uniform(20, 200) * a.rate * UNITS))
        out["actual"].append(_purchase(a, m, seed, sub0, m.start + timedelta(days=9), refund, "Reservation",
                                       "OneTime", ri_id, ri_name, order,
                                       "Reserved VM Instance, Standard_D2s_v3, US East, 1 Year", "12",
                                       "Microsoft.Capacity", charge_type="Refund"))
    return out


def _covered(a: Account, m: Month, seed: int, meter: Meter | None, day: np.ndarray, inst: np.ndarray,
             qty: np.ndarray, dates_all: list[str], sub: Subscription, model: str, benefit_id: str, benefit_name: str,
             order: str, order_name: str, term: str, meters: list[Meter] | None = None) -> _Rows:
    n = len(day)
    rows = _Rows(n)
    _common(rows, a, m, seed)
    meters = meters or [meter] * n
    kinds = sorted(set(meters), key=lambda x: x.name)
    idx = np.array([kinds.index(x) for x in meters])
    _meter_columns(rows, kinds, idx)
    prefix = "ri" if model == "Reservation" else "sp"
    names = pl.select(pl.concat_str([pl.lit(f"vm-{prefix}-"), pl.Series(inst).cast(pl.String)])).to_series()
    sub_idx = np.zeros(n, dtype=np.int64)
    _subscription_columns(rows, a, sub_idx)
    rows.set(date=pl.Series(dates_all)[day], quantity=_qty(qty), pricing_model=model,
             resource_id=_resource_ids(a, sub_idx, pl.Series(["Microsoft.Compute/virtualMachines"] * n), names),
             resource_name=names, benefit_id=benefit_id, benefit_name=benefit_name, product_order_id=order,
             product_order_name=order_name, term=term,
             unit_price=_price(np.array([x.price for x in meters]), n),
             payg_price=_price(0.0 if a.agreement == "EA" else np.array([x.price for x in meters]), n),
             additional_info=pl.select(pl.concat_str([pl.lit('{"ServiceType":"Standard_'),
                                                      pl.Series([x.name.split("/")[-1].replace(" ", "_")
                                                                 for x in meters]),
                                                      pl.lit('","UsageType":"ComputeHR"}')])).to_series())
    if model == "Reservation":
        rows.set(reservation_id=benefit_id.rsplit("/", 1)[-1], reservation_name=benefit_name)
    return rows


def _purchase(a: Account, m: Month, seed: int, sub: Subscription, day: date, fee: int, model: str, frequency: str,
              benefit_id: str, benefit_name: str, order: str, order_name: str, term: str, service: str,
              charge_type: str = "Purchase") -> tuple[pl.DataFrame, list, np.ndarray]:
    rows = _Rows(1)
    _common(rows, a, m, seed)
    price = Decimal(fee).scaleb(-10)
    rows.set(date=_usd_date(day), charge_type=charge_type, pricing_model=model, frequency=frequency,
             quantity="1", unit_of_measure="1 Hour" if model == "Reservation" else "1/Month",
             cost=_money(np.array([fee])), effective_price=f"{price:f}", unit_price=f"{abs(price):f}",
             payg_price="0", meter_category="Virtual Machines" if model == "Reservation" else "Savings Plan",
             meter_subcategory=RI_METER.subcategory if model == "Reservation" else "Compute",
             meter_name=RI_METER.name if model == "Reservation" else "Compute Savings Plan",
             meter_id=RI_METER.meter_id if model == "Reservation" else _uuid("sp-meter"),
             product_name=order_name, part_number=RI_METER.part_number if model == "Reservation" else "AAS-00001",
             product_id=RI_METER.product_id if model == "Reservation" else "DZH318Z0SPLAN001",
             consumed_service=service, resource_id=benefit_id, resource_location=sub.region[0],
             location=sub.region[1], meter_region=sub.region[1], subscription_id=sub.id, subscription_name=sub.name,
             benefit_id=benefit_id, benefit_name=benefit_name, product_order_id=order, product_order_name=order_name,
             term=term, publisher_type="Azure", publisher_name="Microsoft", service_family="Compute",
             reservation_id=benefit_id.rsplit("/", 1)[-1] if model == "Reservation" else "",
             reservation_name=benefit_name if model == "Reservation" else "")
    _set_cost(rows, a, np.array([fee], dtype=np.int64))
    return rows.frame(a), [charge_type], np.array([fee], dtype=np.int64)


def _other_rows(a: Account, m: Month, seed: int) -> list[tuple[pl.DataFrame, list, np.ndarray]]:
    """Rows in both files: a marketplace SaaS purchase, (MCA) a rounding adjustment."""
    rng = _rng(seed, "other", a.idx, m.idx)
    sub = a.subscriptions[-1]
    out = []
    fee = int(round(149.0 * a.rate * UNITS))
    rows = _Rows(1)
    _common(rows, a, m, seed)
    rows.set(date=_usd_date(m.start), charge_type="Purchase", pricing_model="", frequency="Recurring", quantity="1",
             unit_of_measure="1/Month", cost=_money(np.array([fee])), effective_price=f"{Decimal(fee).scaleb(-10):f}",
             unit_price="149", payg_price="149", meter_category="SaaS", meter_subcategory="Contoso Backup",
             meter_name="Standard plan", meter_id=_uuid("market-meter"), product_name="Contoso Backup - Standard plan",
             part_number="MKT-00042", product_id="DZH318Z0MKT00042", consumed_service="Microsoft.SaaS",
             resource_id=f"/subscriptions/{sub.id}/resourceGroups/{sub.resource_group}/providers/Microsoft.SaaS/"
                         "resources/contoso-backup",
             resource_name="contoso-backup", resource_location="global", location="Global",
             subscription_id=sub.id, subscription_name=sub.name, publisher_type="Marketplace",
             publisher_id="contoso", publisher_name="Contoso Software", plan_name="Standard plan",
             service_family="Other", resource_group=sub.resource_group)
    _set_cost(rows, a, np.array([fee], dtype=np.int64))
    out.append((rows.frame(a), ["Purchase"], np.array([fee], dtype=np.int64)))
    if a.agreement == "MCA":
        amount = int(round(rng.uniform(-0.004, 0.004) * UNITS))
        rows = _Rows(1)
        _common(rows, a, m, seed)
        rows.set(date=_usd_date(m.end), charge_type="RoundingAdjustment", frequency="OneTime", quantity="0",
                 cost=_money(np.array([amount])), publisher_type="Azure", publisher_name="Microsoft",
                 subscription_id="", product_name="Rounding adjustment")
        _set_cost(rows, a, np.array([amount], dtype=np.int64))
        out.append((rows.frame(a), ["RoundingAdjustment"], np.array([amount], dtype=np.int64)))
    return out


def _write_account_month(a: Account, m: Month, rows_am: int, seed: int, writers: dict, total: _Total,
                         progress: Callable[[int], None] | None) -> None:
    b = _budget(rows_am, m.days, m.idx, a)
    actual, amortized = writers[(a.source, "actual")], writers[(a.source, "amortized")]
    commitment = _commitment_rows(a, m, seed, b)

    def emit(writer: _RunWriter, dataset: str, item: tuple[pl.DataFrame, list, np.ndarray]) -> None:
        frame, charge_types, costs = item
        writer.write(a, frame)
        total.add(dataset, charge_types, costs)
        if progress:
            progress(frame.height)

    for item in commitment["actual"]:
        emit(actual, "actual", item)
        total.actual_only_rows += item[0].height
    for item_a, item_m in zip(commitment["both_actual"], commitment["both_amortized"], strict=True):
        emit(actual, "actual", item_a)
        emit(amortized, "amortized", item_m)
    for item in _other_rows(a, m, seed):
        emit(actual, "actual", item)
        emit(amortized, "amortized", item)
    for chunk, start in enumerate(range(0, b.bulk, CHUNK)):
        n = min(CHUNK, b.bulk - start)
        frame, cost = _bulk_chunk(a, m, seed, chunk, n)
        item = (frame, ["Usage"] * 0, cost)
        emit(actual, "actual", item)
        emit(amortized, "amortized", item)
        total.by_charge_type["actual:Usage"] = total.by_charge_type.get("actual:Usage", 0) + n
        total.by_charge_type["amortized:Usage"] = total.by_charge_type.get("amortized:Usage", 0) + n
    for item in commitment["amortized"]:
        emit(amortized, "amortized", item)


# =============================================================================================
# Writers
# =============================================================================================
class _RunWriter:
    """One export run: <source>/<dataset>/<yyyymmdd-yyyymmdd>/<run id>/part_<k>_<nnnn>.csv[.gz]."""

    def __init__(self, out: Path, source: str, dataset: str, m: Month, seed: int, rows_per_file: int,
                 file_format: str):
        stamp = f"{m.start:%Y%m%d}-{m.end:%Y%m%d}"
        self.run_id = _uuid(seed, "run", source, dataset, m.period)
        self.folder = out / source / dataset / stamp / self.run_id
        self.source, self.dataset, self.month = source, dataset, m
        self.rows_per_file, self.file_format = rows_per_file, file_format
        self.files: list[Path] = []
        self.rows: dict[Path, int] = {}
        self._open: dict[int, tuple[IO[bytes], Path, int, int]] = {}  # part -> (handle, path, rows, file no)

    def write(self, a: Account, frame: pl.DataFrame) -> None:
        offset = 0
        while offset < frame.height:
            handle, path, n, number = self._current(a.part)
            take = min(self.rows_per_file - n, frame.height - offset)
            frame.slice(offset, take).write_csv(handle, include_header=n == 0)
            offset += take
            self._open[a.part] = (handle, path, n + take, number)
            self.rows[path] = n + take

    def _current(self, part: int) -> tuple[IO[bytes], Path, int, int]:
        state = self._open.get(part)
        if state is not None and state[2] < self.rows_per_file:
            return state
        number = 1
        if state is not None:
            state[0].close()
            number = state[3] + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        suffix = ".csv.gz" if self.file_format == "csv.gz" else ".csv"
        path = self.folder / f"part_{part}_{number:04d}{suffix}"
        handle = gzip.open(path, "wb", compresslevel=1) if self.file_format == "csv.gz" else path.open("wb")
        self.files.append(path)
        self._open[part] = (handle, path, 0, number)
        return self._open[part]

    def close(self) -> list[Path]:
        for handle, *_ in self._open.values():
            handle.close()
        self._open.clear()
        return list(self.files)

    def write_manifest(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        m = self.month
        manifest = {
            "manifestVersion": "2024-04-01",
            "dataFormat": "Csv",
            "blobCount": len(self.files),
            "dataRowCount": sum(self.rows.values()),
            "exportConfig": {"exportName": f"{self.source}-{self.dataset}", "type":
                             "ActualCost" if self.dataset == "actual" else "AmortizedCost",
                             "dataVersion": "2023-12-01-preview", "timeFrame": "BillingMonthToDate"},
            "runInfo": {"runId": self.run_id, "executionType": "Scheduled",
                        "startDate": f"{m.start:%Y-%m-%d}T00:00:00", "endDate": f"{m.end:%Y-%m-%d}T00:00:00"},
            "blobs": [{"blobName": p.name, "dataRowCount": self.rows.get(p, 0), "byteCount": p.stat().st_size}
                      for p in self.files],
        }
        path = self.folder / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return path


def _write_invoices(out: Path, accounts: list[Account], months: list[Month], totals: dict, seed: int) -> list[Path]:
    """invoices/<billing account>/<YYYY-MM>.csv: one invoice per EA enrollment / MCA billing profile and month."""
    header = ["invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total", "tax", "credits",
              "issued_date", "adjusts_invoice_id"]
    paths = []
    for m in months:
        for a in accounts:
            t = totals[(a.idx, m.idx)]
            path = out / "invoices" / a.id / f"{m.period}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            issued = m.start + timedelta(days=m.days + 8)
            path.write_text(",".join(header) + "\n" + ",".join([
                _invoice_id(a, m, seed), "Microsoft", a.id, m.period, a.currency, _money_text(t.billed), "0.00",
                "0.00", issued.isoformat(), ""]) + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def _money_text(units: int) -> str:
    text = f"{Decimal(units).scaleb(-10):f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


__all__ = ["AzureGenerationSummary", "generate_azure"]
