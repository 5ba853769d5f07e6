"""Azure Cost Management cost details (EA and MCA, actual and amortized) → typed raw rows → FOCUS 1.2.

One format, ``azure-cost-details``, reads every header dialect of the "Cost and usage details"
dataset: current EA PascalCase (``CostInBillingCurrency``), the older EA portal names (``Cost``,
``BillingCurrency``, ``Product``), MCA camelCase (``costInBillingCurrency``, ``billingProfileId``),
the legacy pay-as-you-go "usage details" (``UsageDateTime``, ``PreTaxCost``, ``SubscriptionGuid``),
localized portal headers (``Abonnement-GUID (SubscriptionGuid)``: the name in parentheses counts) and
a UTF-8 BOM. The dialect is recorded per file in ``x_SourceFormatVersion``; the agreement (EA, MCA,
or a subscription-scoped export) is decided per row from the billing ids, because header style does
not tell it (CSP/MCA files come in PascalCase and EA files in camelCase).

Reading (``scan_raw``)
----------------------
Every delivered column is kept under one canonical name (the current EA/MCA name, PascalCase):
synonyms of older dialects are renamed (``Cost``/``PreTaxCost`` → ``CostInBillingCurrency``,
``BillingCurrencyCode``/``Currency`` → ``BillingCurrency``, ``Product`` → ``ProductName``,
``UsageDateTime`` → ``Date``, ``SubscriptionGuid`` → ``SubscriptionId``, ``UsageQuantity`` →
``Quantity``, ``InstanceId``/``InstanceName`` → ``ResourceId``, ``ResourceRate`` →
``EffectivePrice``, ``InvoiceSection`` → ``InvoiceSectionName``, ``ResourceGroupName`` →
``ResourceGroup``). Costs, prices and quantities become Decimal(38, 12), dates UTC timestamps
(``MM/DD/YYYY``, ``M/D/YYYY``, ``M/D/YY``, ISO dates and ISO timestamps), everything else a string
with '' as null. Unknown columns are kept as delivered. A value that does not parse is kept in
``x_ParseErrors`` (the row goes to quarantine; the raw table keeps it).

``x_CostDataset`` says which dataset a file is: ``actual`` (what is invoiced: commitment purchases as
Purchase rows, covered usage at 0) or ``amortized`` (purchases spread onto covered usage, unused
commitment rows, no purchase rows). It comes from the path or file name (a segment containing
``amortized``/``amortised`` or ``actual``), else from the content: a file with UnusedReservation /
UnusedSavingsPlan rows or commitment-covered usage at a non-zero cost is amortized; any other file is
read as actual (a file without commitment rows is the same in both datasets). A labelled file whose
content contradicts its label, or an unlabelled file mixing purchases and unused rows, is refused.

Mapping (``to_focus``): actual + amortized
------------------------------------------
Microsoft's method: the FOCUS rows of a billing account and period are all amortized rows plus the
actual rows that have no amortized counterpart (commitment purchases and refunds). Here BilledCost is
always read from the actual dataset and EffectiveCost from the amortized one, so the totals equal the
two files' totals exactly, also when the two files do not cover the same rows:

* an amortized row is paired with the actual row of the same charge (billing account, period,
  subscription, day, meter, product, resource, charge type, pricing model, commitment, quantity,
  unit, location, currency; the n-th duplicate with the n-th duplicate). Its BilledCost is the
  actual row's cost (0 for commitment-covered usage), its EffectiveCost its own cost. The paired
  actual row is left out (counted as a dropped row in ``raw_totals``; ``x_PairedRowId`` names it).
* an unpaired amortized row has BilledCost 0 (unused commitment and covered usage are billed
  through the purchase; anything else is noted as missing from the actual file).
* an unpaired actual row keeps its cost as BilledCost; its EffectiveCost is 0 (a commitment
  purchase is amortized onto usage; anything else is noted as missing from the amortized file).

Partial deliveries (``x_CostMode`` on every row, notes in ``x_SourceChanges`` on every affected row):

* ``actual-only`` (no amortized file for the billing account and period): BilledCost = cost;
  EffectiveCost = cost, except commitment purchases/refunds, whose EffectiveCost is 0 (FOCUS) and
  whose amortized share is missing from the data; covered usage keeps its actual cost (0). The
  conservation basis ``amortized`` follows the same definition.
* ``amortized-only`` (no actual file): EffectiveCost = cost; BilledCost = cost except covered usage
  and unused commitment (0); the commitment purchases are not in the data, so the billed total is
  short by them (noted on the commitment rows).

Other decisions (MAPPINGS.md section 2, the ftk mapping):

* BillingAccountId: EA → the enrollment (``BillingAccountId``, all digits); MCA → the billing profile
  (``BillingProfileId``; the MCA billing account goes to ``x_BillingAccountId``); an export with
  neither (legacy PAYG, CSP customer files) → the subscription, noted. ``x_BillingAccountAgreement``.
* ChargeCategory from ChargeType: Usage, UnusedReservation/UnusedSavingsPlan → Usage (status Unused),
  Purchase, Refund → Purchase with ChargeClass Correction, Tax, Credit; anything else (e.g.
  RoundingAdjustment) → Adjustment. Legacy usage details have no ChargeType: Usage.
* PricingQuantity = Quantity, in the block the price is quoted for: Azure's Quantity and prices are
  per ``UnitOfMeasure`` block (``10K``: a quantity of 0.0004 at 0.1 per 10K costs 0.00004), so
  PricingUnit is the lookup's distinct unit with the block size as a whole-number prefix
  (``10000 Units``, ``100 Hours``; FOCUS unit format allows it), and unit prices stay the price-sheet
  prices (exact Decimal, no division). ConsumedQuantity = Quantity x block size in the distinct unit
  (``x_PricingBlockSize`` keeps the block). Units come from ``azure_pricing_units.csv`` (ftk).
* ListUnitPrice = PayGPrice (x exchange rate for MCA), ContractedUnitPrice = UnitPrice (x rate);
  ListCost / ContractedCost = unit price x PricingQuantity. Azure writes PayGPrice 0 on
  commitment-covered usage and purchases: UnitPrice is used then (noted).
* ChargePeriod = Date .. Date + 1 day; BillingPeriod = BillingPeriodStartDate .. EndDate + 1 day
  (Azure's ends are inclusive), or the calendar month of Date when the export leaves them empty.
* SkuId = ProductId (MCA), else PartNumber, else MeterId; SkuPriceId = SkuId_MeterId_PricingModel_Term
  (the price sheet key; one SkuId per SkuPriceId by construction).
* Services from ``azure_services.csv`` (ConsumedService x resource type, then resource type, then
  ConsumedService), regions from ``azure_regions.csv``, resource types from
  ``azure_resource_types.csv`` (all from the FinOps toolkit open data, MIT).
* Tags: EA JSON without braces is wrapped in ``{}``; a value that is not a flat JSON object is left
  null with a note (the raw value stays in the raw table). AdditionalInfo → ``x_AdditionalInfo``;
  its VMCapacityReservationId → CapacityReservationId.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources.common import (
    KEY_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    as_timestamp,
    blank_to_null,
    check_csv_structure,
    file_schema,
    joined_strings,
    lineage_columns,
    lookup_rows,
    mapped,
    numbered,
    parse_error,
    scan_file,
    split_list,
    typed_raw_rows,
    whitespace_to_null,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    TIMESTAMP,
    focus_columns,
    focus_schema,
)

FORMAT = "azure-cost-details"
PROVIDER = "Microsoft"
ACTUAL, AMORTIZED = "actual", "amortized"
PAIRED, ACTUAL_ONLY, AMORTIZED_ONLY = "paired", "actual-only", "amortized-only"

# ---------------------------------------------------------------------------------------------
# Canonical raw column names and types
# ---------------------------------------------------------------------------------------------
DECIMAL_COLUMNS = (
    "Quantity", "EffectivePrice", "UnitPrice", "PayGPrice", "CostInBillingCurrency", "CostInPricingCurrency",
    "CostInUsd", "PaygCostInBillingCurrency", "PaygCostInUsd", "ExchangeRatePricingToBilling",
)
DATE_COLUMNS = ("Date", "BillingPeriodStartDate", "BillingPeriodEndDate", "ServicePeriodStartDate",
                "ServicePeriodEndDate")
STRING_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingProfileId", "BillingProfileName", "InvoiceSectionId",
    "InvoiceSectionName", "AccountOwnerId", "AccountName", "SubscriptionId", "SubscriptionName", "ResourceGroup",
    "ResourceLocation", "Location", "ProductName", "ProductId", "PartNumber", "MeterId", "MeterName",
    "MeterCategory", "MeterSubCategory", "MeterRegion", "ServiceFamily", "UnitOfMeasure", "BillingCurrency",
    "PricingCurrency", "ExchangeRateDate", "ConsumedService", "ResourceId", "ResourceName", "ResourceType",
    "Tags", "AdditionalInfo", "ServiceInfo1", "ServiceInfo2", "OfferId", "CostCenter", "ReservationId",
    "ReservationName", "ProductOrderId", "ProductOrderName", "Term", "PublisherType", "PublisherId",
    "PublisherName", "PlanName", "ChargeType", "Frequency", "PricingModel", "AvailabilityZone",
    "IsAzureCreditEligible", "CostAllocationRuleName", "BenefitId", "BenefitName", "InvoiceId",
    "PreviousInvoiceId", "PartnerName", "PartnerTenantId", "ResellerName", "ResellerMpnId", "CustomerTenantId",
    "CustomerName", "ServiceName", "ServiceTier",
)
KNOWN_COLUMNS = DECIMAL_COLUMNS + DATE_COLUMNS + STRING_COLUMNS
# delivered spelling (key: lower case, letters and digits only) -> canonical name, used when the
# file does not also deliver the canonical column itself
SYNONYMS = {
    "cost": "CostInBillingCurrency", "pretaxcost": "CostInBillingCurrency",
    "billingcurrencycode": "BillingCurrency", "currency": "BillingCurrency",
    "product": "ProductName", "usagedatetime": "Date", "subscriptionguid": "SubscriptionId",
    "usagequantity": "Quantity", "instanceid": "ResourceId", "instancename": "ResourceId",
    "resourcerate": "EffectivePrice", "invoicesection": "InvoiceSectionName",
    "resourcegroupname": "ResourceGroup", "meterregionname": "MeterRegion",
}
REQUIRED = {  # canonical: the delivered spellings accepted
    "CostInBillingCurrency": "CostInBillingCurrency / Cost / PreTaxCost",
    "Date": "Date / UsageDateTime",
    "BillingCurrency": "BillingCurrency / BillingCurrencyCode / Currency",
}
COMMITMENT_MODELS = ("reservation", "savingsplan")
UNUSED_TYPES = ("UnusedReservation", "UnusedSavingsPlan")
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDERS = ("Unassigned", "unassigned", ZERO_GUID)
CHARGE_CATEGORY = {"Usage": "Usage", "UnusedReservation": "Usage", "UnusedSavingsPlan": "Usage",
                   "Purchase": "Purchase", "Refund": "Purchase", "Tax": "Tax", "Credit": "Credit"}

# FOCUS-output x_ columns of this format (after focus_schema()), with their raw source
AZURE_X_COLUMNS: dict[str, pl.DataType] = {
    "x_CostDataset": pl.String, "x_CostMode": pl.String, "x_PairedRowId": pl.String,
    "x_BillingAccountAgreement": pl.String, "x_BillingAccountId": pl.String, "x_BillingAccountName": pl.String,
    "x_BillingProfileId": pl.String, "x_BillingProfileName": pl.String, "x_InvoiceSectionId": pl.String,
    "x_InvoiceSectionName": pl.String, "x_ResourceGroupName": pl.String, "x_CostCenter": pl.String,
    "x_PricingModel": pl.String, "x_MeterId": pl.String, "x_MeterCategory": pl.String,
    "x_MeterSubCategory": pl.String, "x_MeterName": pl.String, "x_MeterRegion": pl.String,
    "x_UnitOfMeasure": pl.String, "x_PricingBlockSize": MONEY, "x_EffectiveUnitPrice": MONEY,
    "x_CostInUsd": MONEY, "x_ExchangeRatePricingToBilling": MONEY, "x_PublisherType": pl.String,
    "x_ResourceLocation": pl.String, "x_AdditionalInfo": pl.String,
}
_X_SOURCES = {
    "x_BillingAccountId": "BillingAccountId", "x_BillingAccountName": "BillingAccountName",
    "x_BillingProfileId": "BillingProfileId", "x_BillingProfileName": "BillingProfileName",
    "x_InvoiceSectionId": "InvoiceSectionId", "x_InvoiceSectionName": "InvoiceSectionName",
    "x_ResourceGroupName": "ResourceGroup", "x_CostCenter": "CostCenter", "x_PricingModel": "PricingModel",
    "x_MeterId": "MeterId", "x_MeterCategory": "MeterCategory", "x_MeterSubCategory": "MeterSubCategory",
    "x_MeterName": "MeterName", "x_MeterRegion": "MeterRegion", "x_UnitOfMeasure": "UnitOfMeasure",
    "x_EffectiveUnitPrice": "EffectivePrice", "x_CostInUsd": "CostInUsd",
    "x_ExchangeRatePricingToBilling": "ExchangeRatePricingToBilling", "x_PublisherType": "PublisherType",
    "x_ResourceLocation": "ResourceLocation", "x_AdditionalInfo": "AdditionalInfo",
}
# raw columns added by scan_raw (besides the lineage columns)
RAW_X_COLUMNS = ("x_ParseErrors", "x_UnreadableAmounts", "x_CostDataset")


# ---------------------------------------------------------------------------------------------
# Lookups (FinOps toolkit open data, MIT; see tests/fixtures/azure/README.md)
# ---------------------------------------------------------------------------------------------
@cache
def pricing_units() -> dict[str, tuple[int, str]]:
    """UnitOfMeasure as delivered -> (pricing block size, distinct unit)."""
    return {r["unit_of_measure"]: (int(r["pricing_block_size"]), r["distinct_units"])
            for r in lookup_rows("azure_pricing_units.csv")}


def pricing_unit_name(block: int, distinct: str) -> str:
    return distinct if block == 1 else f"{block} {distinct}"


@cache
def _unit_tables() -> tuple[dict[str, dict], dict[str, dict]]:
    """UnitOfMeasure -> {block, pricing_unit, distinct_unit}: by the exact spelling, and by the
    trimmed lower-case spelling (the first unit of that spelling wins)."""
    exact = {unit: {"block": block, "pricing_unit": pricing_unit_name(block, distinct), "distinct_unit": distinct}
             for unit, (block, distinct) in pricing_units().items()}
    folded: dict[str, dict] = {}
    for unit, row in exact.items():
        folded.setdefault(unit.strip().lower(), row)
    return exact, folded


@cache
def region_table() -> dict[str, tuple[str, str]]:
    return {r["original_value"]: (r["region_id"], r["region_name"]) for r in lookup_rows("azure_regions.csv")}


@cache
def service_rows() -> list[dict[str, str]]:
    return lookup_rows("azure_services.csv")




@cache
def _service_tables() -> tuple[dict[str, dict], dict[str, dict], dict[str, dict], dict[str, dict]]:
    """Service rows by: (consumed service, type) as one key joined by KEY_SEPARATOR; type; consumed
    service (its most common service); service name (names are unique to one category in the table)."""
    rows = service_rows()
    by_pair = {KEY_SEPARATOR.join((r["consumed_service"], r["resource_type"])): r
               for r in rows if r["consumed_service"]}
    by_type: dict[str, dict] = {}
    for r in rows:
        by_type.setdefault(r["resource_type"], r)
    counts: dict[str, dict[str, int]] = {}
    first: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["consumed_service"]:
            counts.setdefault(r["consumed_service"], {}).setdefault(r["service_name"], 0)
            counts[r["consumed_service"]][r["service_name"]] += 1
            first.setdefault((r["consumed_service"], r["service_name"]), r)
    by_cs = {cs: first[(cs, max(sorted(names), key=lambda n: names[n]))] for cs, names in counts.items()}
    by_name = {r["service_name"]: r for r in rows}
    return by_pair, by_type, by_cs, by_name


@cache
def resource_type_names() -> dict[str, str]:
    return {r["resource_type"]: r["display_name"] for r in lookup_rows("azure_resource_types.csv")}


@cache
def _iso_currencies() -> list[str]:
    from focus_platform.spec.rules import iso_currency_codes
    return sorted(iso_currency_codes())


# ---------------------------------------------------------------------------------------------
# Header names
# ---------------------------------------------------------------------------------------------
def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


@cache
def _known_by_key() -> dict[str, str]:
    return {_key(n): n for n in KNOWN_COLUMNS}


def clean_header(header: str) -> str:
    """The header without BOM and surrounding blanks; a localized header ``Deutsch (English)``
    becomes its English name."""
    h = header.replace("\ufeff", "").strip()
    m = re.search(r"\(([^()]+)\)\s*$", h)
    if m and m.start() > 0:
        h = m.group(1).strip()
    return h


def canonical_names(headers: list[str]) -> dict[str, str]:
    """Delivered header -> canonical raw name (known names first, then synonyms of absent ones,
    then the cleaned delivered name)."""
    cleaned = {h: clean_header(h) for h in headers}
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    known = _known_by_key()
    for h, c in cleaned.items():
        name = known.get(_key(c))
        if name is not None:
            if name in taken:
                raise SourceFormatError(f"columns {taken[name]!r} and {h!r} both mean {name}")
            out[h], taken[name] = name, h
    for h, c in cleaned.items():
        if h in out:
            continue
        target = SYNONYMS.get(_key(c))
        if target is not None and target not in taken:
            out[h], taken[target] = target, h
        else:
            name = c if c else h
            if name in taken or name in RAW_X_COLUMNS or name in LINEAGE_SCHEMA:
                raise SourceFormatError(f"columns {taken.get(name, name)!r} and {h!r} both mean {name}")
            out[h], taken[name] = name, h
    return out


def _markers(names: set[str]) -> dict[str, bool]:
    return {"cost": "CostInBillingCurrency" in names, "date": "Date" in names,
            "meter": bool({"MeterId", "MeterCategory", "MeterName"} & names),
            "currency": "BillingCurrency" in names, "subscription": "SubscriptionId" in names}


def _canonical_set(headers: list[str]) -> set[str] | None:
    try:
        return set(canonical_names(headers).values())
    except SourceFormatError:
        return None


def detect_format(headers: list[str]) -> str | None:
    """azure-cost-details when the headers are a cost-details (or legacy usage-details) file."""
    names = _canonical_set(headers)
    if names is None:
        return None
    m = _markers(names)
    return FORMAT if m["cost"] and m["date"] and m["meter"] and m["currency"] else None


def near_miss(headers: list[str]) -> str | None:
    names = _canonical_set(headers)
    if names is None:
        return None
    m = _markers(names)
    if m["meter"] and (m["subscription"] or m["cost"] or m["date"]) and not detect_format(headers):
        missing = [spelled for name, spelled in REQUIRED.items() if name not in names]
        return f"looks like Azure cost details but required column(s) missing: {', '.join(missing)}"
    return None


def dialect(headers: list[str]) -> str:
    cleaned = [clean_header(h) for h in headers]
    keys = {_key(c) for c in cleaned}
    if "usagedatetime" in keys or "pretaxcost" in keys or "subscriptionguid" in keys:
        style = "legacy usage details"
    elif sum(c[:1].islower() for c in cleaned) * 2 > len(cleaned):
        style = "cost details camelCase"
    elif {"cost", "product"} & keys or ("billingcurrency" in keys and "billingcurrencycode" not in keys):
        style = "cost details PascalCase (older EA names)"
    else:
        style = "cost details PascalCase"
    if any(clean_header(h) != h.replace("\ufeff", "").strip() for h in headers):
        style += ", localized headers"
    return style


# ---------------------------------------------------------------------------------------------
# Reading a file into typed raw rows
# ---------------------------------------------------------------------------------------------
def parse_date(name: str, dtype: pl.DataType) -> pl.Expr:
    """A date column as a UTC timestamp: MM/DD/YYYY (also M/D/YYYY), M/D/YY, ISO date or timestamp."""
    if dtype != pl.String:
        return as_timestamp(name, dtype)
    text = blank_to_null(pl.col(name)).str.strip_chars()
    us4 = text.str.contains(r"^\d{1,2}/\d{1,2}/\d{4}$")
    us2 = text.str.contains(r"^\d{1,2}/\d{1,2}/\d{2}$")
    iso = text.str.contains(r"^\d{4}-\d{2}-\d{2}")
    iso_text = text.str.replace("T", " ", literal=True).str.strip_suffix("Z")
    iso_full = pl.coalesce(
        iso_text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us"),
        iso_text.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_zone="UTC", time_unit="us"),
        iso_text.str.to_datetime("%Y-%m-%d", strict=False, time_zone="UTC", time_unit="us"))
    return (pl.when(us4).then(text.str.to_datetime("%m/%d/%Y", strict=False, time_zone="UTC", time_unit="us"))
            .when(us2).then(text.str.to_datetime("%m/%d/%y", strict=False, time_zone="UTC", time_unit="us"))
            .when(iso).then(iso_full)
            .otherwise(None).cast(TIMESTAMP))


def dataset_of_label(label: str) -> str | None:
    """'actual' / 'amortized' from the path (file name first, then folders from the nearest), else None."""
    for part in reversed(re.split(r"[\\/]", label)):
        lowered = part.lower()
        if "amortized" in lowered or "amortised" in lowered:
            return AMORTIZED
        if "actual" in lowered:
            return ACTUAL
    return None


def _pricing_model(col: pl.Expr) -> pl.Expr:
    """PricingModel normalized: ondemand, spot, reservation, savingsplan ('Savings Plan(s)')."""
    key = col.str.to_lowercase().str.replace_all(r"[^a-z]", "")
    return pl.when(key == "savingsplans").then(pl.lit("savingsplan")).otherwise(blank_to_null(key))


def _content_stats(names: set[str], header_of: dict[str, str], dtypes: dict[str, pl.DataType]) -> list[pl.Expr]:
    """Counts that tell an actual file from an amortized one."""
    def text(name: str) -> pl.Expr:
        if name not in names:
            return pl.lit(None, pl.String)
        return blank_to_null(pl.col(header_of[name]).cast(pl.String))
    ct = text("ChargeType")
    pm = _pricing_model(text("PricingModel"))
    commitment = pm.is_in(COMMITMENT_MODELS) | text("BenefitId").is_not_null()
    cost = (as_decimal(header_of["CostInBillingCurrency"], dtypes["CostInBillingCurrency"])
            if "CostInBillingCurrency" in names else pl.lit(None, MONEY))
    return [
        ct.is_in(UNUSED_TYPES).sum().alias("__unused"),
        (ct.is_in(["Purchase", "Refund"]) & commitment).sum().alias("__commit_purchases"),
        ((ct == "Usage") & pm.is_in(COMMITMENT_MODELS) & (cost != 0)).sum().alias("__covered_cost"),
    ]


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One delivered file as typed raw rows with canonical names, x_CostDataset and lineage columns."""
    label = label or str(path)
    lf = scan_file(path, storage_options=storage_options)
    schema = file_schema(lf, label)
    headers = schema.names()
    try:
        names_of = canonical_names(headers)
    except SourceFormatError as exc:
        raise SourceFormatError(f"{label}: {exc}") from exc
    names = set(names_of.values())
    missing = [spelled for name, spelled in REQUIRED.items() if name not in names]
    if missing:
        kind = "not Azure cost details" if not _markers(names)["meter"] else "required column(s) missing"
        raise SourceFormatError(f"{label}: {kind}: required column(s) missing: {', '.join(missing)}")
    header_of = {v: k for k, v in names_of.items()}
    dtypes = {names_of[h]: schema[h] for h in headers}
    is_csv = not str(path).lower().endswith(".parquet")
    stats_exprs = _content_stats(names, header_of, dtypes)
    try:
        if is_csv:  # the structure check (every column) and the content counts in one pass
            stats = lf.select(pl.all().null_count(), *stats_exprs).collect()
        else:
            stats = lf.select(*stats_exprs).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
        if is_csv:
            check_csv_structure(str(path), label, storage_options)
        raise SourceFormatError(f"{label}: cannot be read: {str(exc).splitlines()[0]}") from exc
    dataset = _dataset(label, stats.row(0, named=True))

    exprs: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    for header in headers:
        name, dtype = names_of[header], schema[header]
        source = pl.col(header)
        if name in DECIMAL_COLUMNS:
            typed = as_decimal(header, dtype)
            amounts.append(amount_error(name, source, dtype, typed))
        elif name in DATE_COLUMNS:
            typed = parse_date(header, dtype)
            if dtype == pl.String:
                errors.append(parse_error(name, source, typed, "a date"))
        else:
            typed = blank_to_null(source.cast(pl.String)) if dtype != pl.String else blank_to_null(source)
        exprs.append(typed.alias(name))
    if lineage.billing_period:
        period = pl.lit(lineage.billing_period)
    elif "BillingPeriodStartDate" in names:
        period = pl.coalesce(pl.col("BillingPeriodStartDate"), pl.col("Date")).dt.strftime("%Y-%m")
    else:
        period = pl.col("Date").dt.strftime("%Y-%m")
    kind = "parquet" if not is_csv else "csv"
    return typed_raw_rows(numbered(lf, is_csv), exprs, errors, [
        pl.lit(dataset).alias("x_CostDataset"),
        *lineage_columns(lineage, FORMAT, f"{dialect(headers)}, {dataset} cost, {kind}", label),
    ], period, amounts)


def _dataset(label: str, stats: dict) -> str:
    """The file's dataset from its label, checked against its content; else from the content."""
    labelled = dataset_of_label(label)
    unused, purchases, covered = stats["__unused"], stats["__commit_purchases"], stats["__covered_cost"]
    if labelled == ACTUAL and unused:
        raise SourceFormatError(
            f"{label}: the path says actual cost, but the file has {unused} UnusedReservation/UnusedSavingsPlan "
            "rows, which only the amortized-cost dataset has")
    if labelled == AMORTIZED and purchases:
        raise SourceFormatError(
            f"{label}: the path says amortized cost, but the file has {purchases} commitment Purchase/Refund "
            "rows, which only the actual-cost dataset has")
    if labelled:
        return labelled
    if (unused or covered) and purchases:
        raise SourceFormatError(
            f"{label}: the file mixes actual-cost commitment purchases ({purchases} rows) with amortized-cost "
            f"rows ({unused} unused, {covered} covered usage at a cost): deliver the actual and amortized "
            "exports as separate files (with 'actual' / 'amortized' in their path)")
    return AMORTIZED if unused or covered else ACTUAL


# ---------------------------------------------------------------------------------------------
# Raw → FOCUS: the prepared columns every stage shares
# ---------------------------------------------------------------------------------------------
class _Cols:
    """Column access on a raw frame whose column set varies by dialect."""

    def __init__(self, schema: pl.Schema):
        self.schema = schema

    def __call__(self, name: str) -> pl.Expr:
        if name in self.schema:
            return pl.col(name)
        if name in DECIMAL_COLUMNS:
            return pl.lit(None, MONEY)
        if name in DATE_COLUMNS:
            return pl.lit(None, TIMESTAMP)
        return pl.lit(None, pl.String)

    def has(self, name: str) -> bool:
        return name in self.schema


def _placeholder_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(PLACEHOLDERS)).then(None).otherwise(expr)


def _account(col: _Cols) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """FOCUS billing account (id, name, type, agreement): EA enrollment, MCA billing profile, else
    the subscription (exports scoped to a subscription or a CSP customer carry no billing ids)."""
    ea_id, profile = col("BillingAccountId"), _placeholder_to_null(col("BillingProfileId"))
    subscription = col("SubscriptionId")
    is_ea = ea_id.str.contains(r"^\d+$").fill_null(False)
    is_mca = ~is_ea & profile.is_not_null()
    agreement = (pl.when(is_ea).then(pl.lit("EA")).when(is_mca).then(pl.lit("MCA"))
                 .when(ea_id.is_not_null()).then(pl.lit("MCA"))
                 .when(subscription.is_not_null()).then(pl.lit("Subscription")))
    acct = (pl.when(is_ea).then(ea_id).when(is_mca).then(profile)
            .when(ea_id.is_not_null()).then(ea_id).otherwise(subscription))
    name = (pl.when(is_ea).then(col("BillingAccountName")).when(is_mca).then(col("BillingProfileName"))
            .when(ea_id.is_not_null()).then(col("BillingAccountName")).otherwise(col("SubscriptionName")))
    kind = (pl.when(is_ea).then(pl.lit("Enrollment")).when(is_mca).then(pl.lit("Billing Profile"))
            .when(ea_id.is_not_null()).then(pl.lit("Billing Account"))
            .when(subscription.is_not_null()).then(pl.lit("Subscription")))
    return acct, name, kind, agreement


def _commitment_id(col: _Cols) -> pl.Expr:
    ct = col("ChargeType")
    pm = _pricing_model(col("PricingModel"))
    commitment_row = pm.is_in(COMMITMENT_MODELS).fill_null(False) | ct.is_in(UNUSED_TYPES).fill_null(False)
    return pl.coalesce(
        _placeholder_to_null(col("BenefitId")),
        pl.when(commitment_row).then(pl.coalesce(_placeholder_to_null(col("ReservationId")),
                                                 _placeholder_to_null(col("ProductOrderId")))))


def _prepare(raw: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """The raw rows with the __ columns that decide accounts, modes and costs."""
    col = _Cols(schema)
    acct, acct_name, acct_type, agreement = _account(col)
    ct = pl.coalesce(col("ChargeType"), pl.lit("Usage")) if col.has("ChargeType") else pl.lit("Usage")
    pm = _pricing_model(col("PricingModel"))
    cd_id = _commitment_id(col)
    return raw.with_columns(
        acct.alias("__acct"), acct_name.alias("__acct_name"), acct_type.alias("__acct_type"),
        agreement.alias("__agreement"), ct.alias("__ct"), pm.alias("__pm"), cd_id.alias("__cd_id"),
        col("CostInBillingCurrency").alias("__cost"),
    ).with_columns(
        (pl.col("__ct").is_in(["Purchase", "Refund"]) & pl.col("__cd_id").is_not_null()).alias("__commit_purchase"),
        ((pl.col("__ct") == "Usage") & pl.col("__pm").is_in(COMMITMENT_MODELS).fill_null(False)).alias("__covered"),
        pl.col("__ct").is_in(UNUSED_TYPES).alias("__unused"),
    )


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a prepared raw row cannot be converted (null for a convertible row)."""
    col = _Cols(schema)
    currency = col("BillingCurrency")
    reasons = [
        pl.col("x_ParseErrors") if "x_ParseErrors" in schema else pl.lit(None, pl.String),
        pl.when(col("Date").is_null() & pl.col("x_ParseErrors").is_null()).then(pl.lit("Date is empty")),
        pl.when(col("CostInBillingCurrency").is_null() & pl.col("x_ParseErrors").is_null())
        .then(pl.lit("CostInBillingCurrency (cost) is empty")),
        pl.when(currency.is_null()).then(pl.lit("BillingCurrency is empty")),
        pl.when(currency.is_not_null() & ~currency.is_in(_iso_currencies()))
        .then(pl.format("BillingCurrency '{}' is not an ISO 4217 currency code", currency)),
        pl.when(pl.col("__acct").is_null())
        .then(pl.lit("no billing account: BillingAccountId, BillingProfileId and SubscriptionId are empty")),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


_MODE_KEYS = ["__acct", "x_BillingPeriod"]
_MATCH_KEY = ("__acct", "x_BillingPeriod", "BillingCurrency", "SubscriptionId", "Date", "MeterId", "ProductName",
              "ResourceId", "__ct", "__pm", "__cd_id", "Quantity", "UnitOfMeasure", "ResourceLocation")
_MATCH_SCHEMA = {"x_RowId": pl.String, "__role": pl.String, "__pair_row": pl.String, "__pair_cost": MONEY,
                 "__acct": pl.String, "x_BillingPeriod": pl.String, "__currency": pl.String}


@dataclass(frozen=True)
class _Pairing:
    """What a raw partition's actual and amortized rows are to each other: the mode of each billing
    account and period (paired, actual-only, amortized-only) and the pairs (one narrow pass)."""

    modes: pl.DataFrame
    matches: pl.DataFrame  # x_RowId, __role ('pair': amortized row, 'dropped': its actual row), __pair_*


def _pairing(raw: pl.LazyFrame, schema: pl.Schema) -> _Pairing:
    """Computed once per raw frame (to_focus, raw_totals and quarantine of one partition share it).

    The n-th duplicate key of one dataset pairs with the n-th of the other, in file order. Keys
    are two independent 64-bit hashes of the charge identity (``_MATCH_KEY``)."""
    cached = getattr(raw, "_azure_pairing", None)
    if cached is not None:
        return cached
    col = _Cols(schema)
    prepared = _prepare(raw, schema)
    key = pl.struct([col(k).alias(k) if not k.startswith("__") else pl.col(k) for k in _MATCH_KEY])
    narrow = (prepared.select("x_RowId", "x_CostDataset", "__cost", "__acct", "x_BillingPeriod",
                              col("BillingCurrency").alias("__currency"),
                              quarantine_reason(schema).is_null().alias("__ok"),
                              key.hash(11).alias("__h1"), key.hash(29).alias("__h2"))
              .collect(engine="streaming"))
    modes = (narrow.group_by(_MODE_KEYS)
             .agg((pl.col("x_CostDataset") == ACTUAL).any().alias("__has_actual"),
                  (pl.col("x_CostDataset") == AMORTIZED).any().alias("__has_amortized"))
             .select(*_MODE_KEYS, pl.when(pl.col("__has_actual") & pl.col("__has_amortized")).then(pl.lit(PAIRED))
                     .when(pl.col("__has_actual")).then(pl.lit(ACTUAL_ONLY)).otherwise(pl.lit(AMORTIZED_ONLY))
                     .alias("__mode")))
    paired = (narrow.filter(pl.col("__ok"))
              .join(modes.filter(pl.col("__mode") == PAIRED).select(_MODE_KEYS), on=_MODE_KEYS, how="semi",
                    nulls_equal=True)
              .with_columns(pl.int_range(pl.len()).over("x_CostDataset", "__h1", "__h2").alias("__occ")))
    del narrow
    on = ["__h1", "__h2", "__occ"]
    actual = paired.filter(pl.col("x_CostDataset") == ACTUAL).select(
        *on, pl.col("x_RowId").alias("__pair_row"), pl.col("__cost").alias("__pair_cost"),
        "__acct", "x_BillingPeriod", "__currency")
    amortized = paired.filter(pl.col("x_CostDataset") == AMORTIZED).select(*on, "x_RowId")
    pairs = amortized.join(actual, on=on, how="inner")
    matches = pl.concat([
        pairs.select("x_RowId", pl.lit("pair").alias("__role"), "__pair_row", "__pair_cost",
                     "__acct", "x_BillingPeriod", "__currency"),
        pairs.select(pl.col("__pair_row").alias("x_RowId"), pl.lit("dropped").alias("__role"),
                     pl.col("x_RowId").alias("__pair_row"), pl.col("__pair_cost"),
                     "__acct", "x_BillingPeriod", "__currency"),
    ]).cast(_MATCH_SCHEMA)
    result = _Pairing(modes, matches)
    try:
        raw._azure_pairing = result  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - a frame that takes no attributes: recomputed next time
        pass
    return result


def _with_modes(raw: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.Schema, _Pairing]:
    schema = raw.collect_schema()
    pairing = _pairing(raw, schema)
    with_mode = _prepare(raw, schema).join(pairing.modes.lazy(), on=_MODE_KEYS, how="left", nulls_equal=True,
                                           maintain_order="left")
    return with_mode, schema, pairing


def billed_basis() -> pl.Expr:
    """The invoice basis of a prepared raw row: the actual dataset's cost; in an amortized-only
    delivery the amortized cost except covered usage and unused commitment (billed by the purchase)."""
    zero = pl.lit(0, MONEY)
    return (pl.when(pl.col("__mode") == AMORTIZED_ONLY)
            .then(pl.when(pl.col("__covered") | pl.col("__unused")).then(zero).otherwise(pl.col("__cost")))
            .when(pl.col("x_CostDataset") == ACTUAL).then(pl.col("__cost")).otherwise(zero))


def amortized_basis() -> pl.Expr:
    """The amortized basis: the amortized dataset's cost (actual cost in an actual-only delivery);
    commitment purchases and refunds count 0 (their cost is spread onto usage)."""
    zero = pl.lit(0, MONEY)
    return (pl.when(pl.col("__commit_purchase")).then(zero)
            .when(pl.col("__mode") == ACTUAL_ONLY).then(pl.col("__cost"))
            .when(pl.col("x_CostDataset") == AMORTIZED).then(pl.col("__cost")).otherwise(zero))


# ---------------------------------------------------------------------------------------------
# Raw → FOCUS
# ---------------------------------------------------------------------------------------------
SERVICE_FIELDS = ("service_name", "service_category", "service_subcategory")
UNIT_FIELDS = ("block", "pricing_unit", "distinct_unit")
_FIELD_TYPES = {"block": pl.Int64}  # the other fields are text


def _looked_up(key: pl.Expr, table: dict[str, dict], prefix: str, fields: tuple[str, ...]) -> list[pl.Expr]:
    """The fields of the table's row for ``key`` (null without one) as ``<prefix><field>`` columns."""
    return [mapped(key, {k: row[f] for k, row in table.items()}, _FIELD_TYPES.get(f, pl.String)).alias(prefix + f)
            for f in fields]


def _with_lookups(frame: pl.LazyFrame, col: _Cols) -> pl.LazyFrame:
    """The lookup tables looked up into __ columns (service, region, resource type, unit)."""
    by_pair, by_type, by_cs, by_name = _service_tables()
    regions = region_table()
    exact_units, folded_units = _unit_tables()
    resource_id = col("ResourceId")
    provider_path = resource_id.str.extract(r"(?i)/providers/(.+)$", 1)
    segments = provider_path.str.split("/")
    arm_type = pl.when(segments.list.len() >= 2).then(
        pl.concat_str([segments.list.first(), segments.list.slice(1).list.gather_every(2).list.join("/")],
                      separator="/")).str.to_lowercase().str.strip_chars("/")
    keyed = frame.with_columns(
        col("ConsumedService").str.to_lowercase().alias("__cs"),
        arm_type.alias("__arm_type"),
        col("ResourceLocation").str.strip_chars().str.to_lowercase().alias("__location"),
        col("UnitOfMeasure").alias("__uom"),
    )
    cs, arm_type, location, uom = pl.col("__cs"), pl.col("__arm_type"), pl.col("__location"), pl.col("__uom")
    keyed = keyed.with_columns(
        *_looked_up(pl.concat_str([cs, arm_type], separator=KEY_SEPARATOR), by_pair, "__p_", SERVICE_FIELDS),
        *_looked_up(arm_type, by_type, "__t_", SERVICE_FIELDS),
        *_looked_up(cs, by_cs, "__c_", SERVICE_FIELDS),
        mapped(location, {k: v[0] for k, v in regions.items()}).alias("__region_id"),
        mapped(location, {k: v[1] for k, v in regions.items()}).alias("__region_name"),
        mapped(arm_type, resource_type_names()).alias("__type_name"),
        *_looked_up(uom, exact_units, "__", UNIT_FIELDS),
        *_looked_up(uom.str.strip_chars().str.to_lowercase(), folded_units, "__f_", UNIT_FIELDS),
    )
    fallback_name = pl.coalesce(pl.col("__p_service_name"), pl.col("__t_service_name"), pl.col("__c_service_name"),
                                _placeholder_to_null(col("MeterCategory")), col("ServiceName"),
                                col("ConsumedService"), _placeholder_to_null(col("ProductName")), col("PublisherName"))
    return keyed.with_columns(fallback_name.alias("__fallback_name")).with_columns(
        _looked_up(pl.col("__fallback_name"), by_name, "__n_", ("service_category", "service_subcategory")))


_UNIT_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([KkMm]?)\s*(.*?)\s*$"


def _units() -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(block size, pricing unit, distinct unit, parsed?) of a row's UnitOfMeasure: the lookup, else
    parsed from the text ('5 GB' -> 5, GB), null for placeholders ('0 Unassigned')."""
    uom = pl.col("__uom")
    placeholder = uom.str.to_lowercase().str.contains("unassigned").fill_null(False)
    number = uom.str.extract(_UNIT_PATTERN, 1).cast(pl.Float64, strict=False)
    suffix = uom.str.extract(_UNIT_PATTERN, 2).str.to_uppercase()
    rest = uom.str.extract(_UNIT_PATTERN, 3)
    parsed_block = (number * pl.when(suffix == "K").then(1000).when(suffix == "M").then(1_000_000).otherwise(1))
    parsed_block = pl.when((parsed_block >= 1) & (parsed_block == parsed_block.round(0))).then(
        parsed_block.cast(pl.Int64))
    parsed_unit = (pl.when(rest.is_null() | (rest == "")).then(pl.lit("Units"))
                   .when(rest.str.starts_with("/")).then(pl.concat_str([pl.lit("Units"), rest]))
                   .otherwise(rest))
    from_number = number.is_not_null()
    block = pl.coalesce(pl.col("__block"), pl.col("__f_block"),
                        pl.when(from_number).then(parsed_block).when(uom.is_not_null()).then(pl.lit(1, pl.Int64)))
    distinct = pl.coalesce(pl.col("__distinct_unit"), pl.col("__f_distinct_unit"),
                           pl.when(from_number).then(parsed_unit).otherwise(uom))
    unit = pl.coalesce(pl.col("__pricing_unit"), pl.col("__f_pricing_unit"),
                       pl.when(block == 1).then(distinct).otherwise(
                           pl.concat_str([block.cast(pl.String), pl.lit(" "), distinct])))
    parsed = pl.col("__block").is_null() & pl.col("__f_block").is_null() & uom.is_not_null()
    return (pl.when(placeholder).then(None).otherwise(block),
            pl.when(placeholder | block.is_null()).then(None).otherwise(unit),
            pl.when(placeholder | block.is_null()).then(None).otherwise(distinct),
            parsed & ~placeholder)


# Flat JSON object of scalar values (FOCUS key-value format)
_JSON_STR = r'"(?:[^"\\]|\\.)*"'
_JSON_VAL = rf'(?:{_JSON_STR}|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)'
_JSON_PAIR = rf'\s*{_JSON_STR}\s*:\s*{_JSON_VAL}\s*'
FLAT_JSON_OBJECT = rf'^\{{(?:{_JSON_PAIR}(?:,{_JSON_PAIR})*|\s*)\}}$'


def _tags(col: _Cols) -> tuple[pl.Expr, pl.Expr]:
    """(FOCUS Tags, note): EA JSON without braces wrapped; empty objects null; invalid left null."""
    text = blank_to_null(col("Tags").str.strip_chars())
    wrapped = pl.when(text.str.starts_with("{")).then(text).otherwise(pl.concat_str([pl.lit("{"), text, pl.lit("}")]))
    valid = wrapped.str.contains(FLAT_JSON_OBJECT)
    empty = wrapped.str.contains(r"^\{\s*\}$")
    tags = pl.when(valid & ~empty).then(wrapped)
    note = (pl.when(text.is_not_null() & ~valid)
            .then(pl.lit("Tags: delivered value is not a JSON object of tags; left null (kept in the raw table)"))
            .when(text.is_not_null() & ~text.str.starts_with("{"))
            .then(pl.lit("Tags: EA tags without braces wrapped in {}")))
    return tags, note


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows (actual and amortized files of a partition) as FOCUS 1.2 rows."""
    with_mode, schema, pairing = _with_modes(raw)
    col = _Cols(schema)
    matches = pairing.matches.select("x_RowId", "__role", "__pair_row", "__pair_cost")
    rows = (with_mode.filter(quarantine_reason(schema).is_null())
            .join(matches.lazy(), on="x_RowId", how="left", maintain_order="left")
            .filter(pl.col("__role").is_null() | (pl.col("__role") != "dropped")))
    rows = _with_lookups(rows, col)
    zero = pl.lit(0, MONEY)
    cost, mode, ds = pl.col("__cost"), pl.col("__mode"), pl.col("x_CostDataset")
    ct, pm, cd_id = pl.col("__ct"), pl.col("__pm"), pl.col("__cd_id")
    covered, unused, commit_purchase = pl.col("__covered"), pl.col("__unused"), pl.col("__commit_purchase")
    paired_row = (pl.col("__role") == "pair").fill_null(False)

    # --- costs ---------------------------------------------------------------------------------
    billed = (pl.when(mode == PAIRED).then(pl.when(ds == ACTUAL).then(cost).otherwise(
        pl.when(paired_row).then(pl.col("__pair_cost")).otherwise(zero)))
        .when(mode == AMORTIZED_ONLY).then(pl.when(covered | unused).then(zero).otherwise(cost))
        .otherwise(cost))
    effective = (pl.when(commit_purchase).then(zero)
                 .when((mode == PAIRED) & (ds == ACTUAL)).then(zero).otherwise(cost))
    billed_note = (
        pl.when((mode == PAIRED) & paired_row & (pl.col("__pair_cost") != cost))
        .then(pl.format("BilledCost: {} from the paired actual-cost row {} (this amortized row costs {})",
                        pl.col("__pair_cost"), pl.col("__pair_row"), cost))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & unused & (cost != 0))
        .then(pl.lit("BilledCost: 0, unused commitment (billed through its purchase in the actual-cost file)"))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & covered & (cost != 0))
        .then(pl.lit("BilledCost: 0, commitment-covered usage without a paired actual-cost row "
                     "(prepaid by the commitment purchase)"))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & (cost != 0))
        .then(pl.lit("BilledCost: 0, no matching row in the actual-cost file of this billing account and period"))
        .when((mode == AMORTIZED_ONLY) & (covered | unused) & (cost != 0))
        .then(pl.lit("BilledCost: 0, commitment-covered or unused commitment; amortized-cost file without its "
                     "actual file: the commitment purchase billed for it is not in this data"))
    )
    effective_note = (
        pl.when(commit_purchase & (mode == ACTUAL_ONLY) & (cost != 0))
        .then(pl.lit("EffectiveCost: 0, commitment purchase; actual-cost file without its amortized file: "
                     "the amortized cost of this commitment is not in this data"))
        .when(commit_purchase & (cost != 0))
        .then(pl.lit("EffectiveCost: 0, commitment purchase (amortized onto usage in the amortized-cost file)"))
        .when((mode == PAIRED) & (ds == ACTUAL) & (cost != 0))
        .then(pl.lit("EffectiveCost: 0, no matching row in the amortized-cost file of this billing account "
                     "and period"))
        .when((mode == ACTUAL_ONLY) & covered)
        .then(pl.lit("EffectiveCost: actual cost of commitment-covered usage; actual-cost file without its "
                     "amortized file: the amortized share is not in this data"))
    )

    # --- classification ------------------------------------------------------------------------
    charge_category = _charge_category(ct)
    is_usage, is_purchase = charge_category == "Usage", charge_category == "Purchase"
    is_tax = charge_category == "Tax"
    priced = is_usage | is_purchase
    correction = ct == "Refund"
    frequency_key = col("Frequency").str.to_lowercase().str.replace_all(r"[^a-z]", "")
    frequency_raw = (pl.when(frequency_key == "onetime").then(pl.lit("One-Time"))
                     .when(frequency_key == "recurring").then(pl.lit("Recurring"))
                     .when(frequency_key == "usagebased").then(pl.lit("Usage-Based")))
    frequency = (pl.when(is_purchase & (frequency_raw == "Usage-Based")).then(pl.lit("Recurring"))
                 .when(frequency_raw.is_not_null()).then(frequency_raw)
                 .when(is_purchase).then(pl.lit("One-Time"))
                 .when(is_usage).then(pl.lit("Usage-Based")).otherwise(pl.lit("One-Time")))
    pricing_category = (
        pl.when(~priced).then(None)
        .when(is_purchase & pm.is_in(COMMITMENT_MODELS)).then(pl.lit("Standard"))
        .when(unused).then(pl.lit("Committed"))
        .when(pm == "spot").then(pl.lit("Dynamic"))
        .when(pm.is_in(COMMITMENT_MODELS)).then(pl.lit("Committed"))
        .otherwise(pl.lit("Standard")))
    cd_path = cd_id.str.to_lowercase()
    cd_reservation = (cd_path.str.contains("/microsoft.capacity/", literal=True)
                      | (~cd_path.str.contains("/microsoft.billingbenefits/", literal=True)
                         & ((pm == "reservation") | (ct == "UnusedReservation"))))
    cd_savings_plan = cd_path.str.contains("/microsoft.billingbenefits/", literal=True) | (
        ~cd_reservation.fill_null(False) & ((pm == "savingsplan") | (ct == "UnusedSavingsPlan")))
    cd_kind = (pl.when(cd_id.is_null()).then(None).when(cd_reservation.fill_null(False)).then(pl.lit("ri"))
               .when(cd_savings_plan.fill_null(False)).then(pl.lit("sp")).otherwise(pl.lit("ri")))
    cd_kind_guessed = cd_id.is_not_null() & ~cd_reservation.fill_null(False) & ~cd_savings_plan.fill_null(False)

    # --- quantities and units ------------------------------------------------------------------
    block, pricing_unit, distinct_unit, unit_parsed = _units()
    quantity = col("Quantity")
    pricing_quantity = pl.when(priced).then(quantity)
    consumed_quantity = pl.when(is_usage & ~unused & quantity.is_not_null() & block.is_not_null()).then(
        (quantity * block.cast(MONEY)).cast(MONEY))
    currency = col("BillingCurrency")
    pricing_currency = pl.coalesce(col("PricingCurrency"), currency)
    same_currency = pricing_currency == currency
    rate = pl.when(same_currency).then(pl.lit(1, MONEY)).otherwise(col("ExchangeRatePricingToBilling"))

    # --- prices --------------------------------------------------------------------------------
    payg, unit_price, effective_price = col("PayGPrice"), col("UnitPrice"), col("EffectivePrice")
    payg_missing = payg.is_null() | ((payg == 0) & (unit_price > 0).fill_null(False))
    list_pc = pl.when(priced).then(pl.when(~payg_missing).then(payg).otherwise(pl.coalesce(unit_price, effective_price)))
    contracted_pc = pl.when(priced).then(pl.coalesce(unit_price, effective_price))
    list_unit_price = (list_pc * rate).cast(MONEY)
    contracted_unit_price = (contracted_pc * rate).cast(MONEY)
    list_product = (list_unit_price * pricing_quantity).cast(MONEY)
    contracted_product = (contracted_unit_price * pricing_quantity).cast(MONEY)
    list_cost = (pl.when(~priced).then(billed)
                 .otherwise(pl.coalesce(list_product, col("PaygCostInBillingCurrency"), effective)))
    contracted_cost = pl.when(~priced).then(billed).otherwise(pl.coalesce(contracted_product, effective))
    pc_effective = (pl.when(effective == 0).then(zero).when(same_currency).then(effective)
                    .otherwise(col("CostInPricingCurrency")))

    # --- commitment quantity -------------------------------------------------------------------
    cd_quantity = (pl.when(cd_id.is_null() | ~priced | correction).then(None)
                   .when(cd_kind == "sp").then(pl.when(is_purchase).then(billed).otherwise(effective))
                   .otherwise(quantity))
    cd_unit = (pl.when(cd_quantity.is_null()).then(None).when(cd_kind == "sp").then(currency)
               .otherwise(pricing_unit))

    # --- service, region, resource -------------------------------------------------------------
    service_name = pl.coalesce(pl.col("__p_service_name"), pl.col("__t_service_name"), pl.col("__c_service_name"),
                               pl.col("__fallback_name"))
    service_category = pl.coalesce(pl.col("__p_service_category"), pl.col("__t_service_category"),
                                   pl.col("__c_service_category"), pl.col("__n_service_category"), pl.lit("Other"))
    service_subcategory = pl.coalesce(pl.col("__p_service_subcategory"), pl.col("__t_service_subcategory"),
                                      pl.col("__c_service_subcategory"), pl.col("__n_service_subcategory"),
                                      pl.lit("Other (Other)"))
    service_unmapped = (pl.col("__p_service_name").is_null() & pl.col("__t_service_name").is_null()
                        & pl.col("__c_service_name").is_null() & pl.col("__n_service_category").is_null())
    location = blank_to_null(col("ResourceLocation").str.strip_chars())
    region_id = pl.when(location.is_not_null()).then(
        pl.coalesce(pl.col("__region_id"), location.str.to_lowercase().str.replace_all(" ", "")))
    region_name = pl.when(location.is_not_null()).then(pl.coalesce(pl.col("__region_name"), location))
    resource_id = col("ResourceId")
    resource_name = pl.when(resource_id.is_not_null()).then(
        pl.coalesce(col("ResourceName"), resource_id.str.extract(r"/([^/]+)$", 1)))
    resource_type = pl.when(resource_id.is_not_null()).then(
        pl.coalesce(pl.col("__type_name"), pl.col("__arm_type"), col("ResourceType"), service_name,
                    col("ConsumedService")))
    meter_id = _placeholder_to_null(col("MeterId"))
    sku = pl.when(is_tax).then(None).otherwise(pl.coalesce(_placeholder_to_null(col("ProductId")),
                                                           _placeholder_to_null(col("PartNumber")), meter_id))
    sku_price = pl.when(sku.is_null()).then(None).otherwise(pl.concat_str(
        [sku, pl.when(meter_id != sku).then(meter_id), col("PricingModel"), col("Term")],
        separator="_", ignore_nulls=True))
    tags, tags_note = _tags(col)
    additional = blank_to_null(col("AdditionalInfo").str.strip_chars())
    capacity_id = blank_to_null(additional.str.json_path_match("$.VMCapacityReservationId"))
    capacity_status = pl.when(capacity_id.is_not_null() & is_usage).then(
        pl.when(resource_id.str.to_lowercase().str.contains("/capacityreservationgroups/", literal=True)
                .fill_null(False)).then(pl.lit("Unused")).otherwise(pl.lit("Used")))
    date = col("Date")
    bp_start_raw, bp_end_raw = col("BillingPeriodStartDate"), col("BillingPeriodEndDate")
    bp_start = pl.coalesce(bp_start_raw, date.dt.truncate("1mo"))
    bp_end = pl.coalesce(bp_end_raw.dt.offset_by("1d"), date.dt.truncate("1mo").dt.offset_by("1mo"))
    invoice_issuer = pl.coalesce(col("PartnerName"), pl.lit(PROVIDER))
    publisher = pl.coalesce(col("PublisherName"), pl.lit(PROVIDER))
    subscription = col("SubscriptionId")

    focus = {
        "AvailabilityZone": col("AvailabilityZone"),
        "BilledCost": billed,
        "BillingAccountId": pl.col("__acct"),
        "BillingAccountName": pl.col("__acct_name"),
        "BillingAccountType": pl.col("__acct_type"),
        "BillingCurrency": currency,
        "BillingPeriodEnd": bp_end,
        "BillingPeriodStart": bp_start,
        "CapacityReservationId": capacity_id,
        "CapacityReservationStatus": capacity_status,
        "ChargeCategory": charge_category,
        "ChargeClass": pl.when(correction).then(pl.lit("Correction")),
        "ChargeDescription": pl.coalesce(_placeholder_to_null(col("ProductName")), col("MeterName")),
        "ChargeFrequency": frequency,
        "ChargePeriodEnd": date.dt.offset_by("1d"),
        "ChargePeriodStart": date,
        "CommitmentDiscountCategory": pl.when(cd_kind == "ri").then(pl.lit("Usage"))
        .when(cd_kind == "sp").then(pl.lit("Spend")),
        "CommitmentDiscountId": cd_id,
        "CommitmentDiscountName": pl.when(cd_id.is_not_null()).then(
            pl.coalesce(col("BenefitName"), col("ReservationName"))),
        "CommitmentDiscountQuantity": cd_quantity,
        "CommitmentDiscountStatus": pl.when(cd_id.is_not_null() & is_usage).then(
            pl.when(unused).then(pl.lit("Unused")).otherwise(pl.lit("Used"))),
        "CommitmentDiscountType": pl.when(cd_kind == "ri").then(pl.lit("Reservation"))
        .when(cd_kind == "sp").then(pl.lit("Savings Plan")),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": consumed_quantity,
        "ConsumedUnit": pl.when(consumed_quantity.is_not_null()).then(distinct_unit),
        "ContractedCost": contracted_cost,
        "ContractedUnitPrice": contracted_unit_price,
        "EffectiveCost": effective,
        "InvoiceId": col("InvoiceId"),
        "InvoiceIssuerName": invoice_issuer,
        "ListCost": list_cost,
        "ListUnitPrice": list_unit_price,
        "PricingCategory": pricing_category,
        "PricingCurrency": pricing_currency,
        "PricingCurrencyContractedUnitPrice": contracted_pc,
        "PricingCurrencyEffectiveCost": pc_effective,
        "PricingCurrencyListUnitPrice": list_pc,
        "PricingQuantity": pricing_quantity,
        "PricingUnit": pl.when(pricing_quantity.is_not_null()).then(pricing_unit),
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": publisher,
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": resource_name,
        "ResourceType": resource_type,
        "ServiceCategory": service_category,
        "ServiceName": service_name,
        "ServiceSubcategory": service_subcategory,
        "SkuId": pl.when(priced).then(sku),
        "SkuMeter": pl.when(priced & sku.is_not_null()).then(col("MeterName")),
        "SkuPriceDetails": pl.lit(None, pl.String),
        "SkuPriceId": pl.when(priced).then(sku_price),
        "SubAccountId": subscription,
        "SubAccountName": pl.when(subscription.is_not_null()).then(col("SubscriptionName")),
        "SubAccountType": pl.when(subscription.is_not_null()).then(pl.lit("Subscription")),
        "Tags": tags,
        "x_ChargeType": col("ChargeType"),
        "x_ServiceCode": col("ConsumedService"),
        "x_UsageType": blank_to_null(additional.str.json_path_match("$.UsageType")),
        "x_Operation": pl.lit(None, pl.String),
        "x_CostCategories": pl.lit(None, pl.String),
    }
    changes = [
        billed_note,
        effective_note,
        tags_note,
        pl.when(pl.col("__agreement") == "Subscription").then(pl.lit(
            "BillingAccountId: the export carries no billing account or billing profile; the subscription "
            "is the billing scope")),
        pl.when(col("ChargeType").is_null()).then(pl.lit(
            "ChargeCategory: no ChargeType (legacy usage details list usage only); Usage")),
        pl.when(charge_category.is_not_null() & ~ct.is_in(list(CHARGE_CATEGORY))).then(
            pl.format("ChargeCategory: ChargeType '{}' is not a usage, purchase, tax or credit; Adjustment", ct)),
        pl.when(is_purchase & (frequency_raw == "Usage-Based")).then(pl.lit(
            "ChargeFrequency: Frequency UsageBased on a purchase; Recurring")),
        pl.when(frequency_raw.is_null()).then(pl.format("ChargeFrequency: Frequency empty; {} by charge category",
                                                        frequency)),
        pl.when(priced & pm.is_null() & ~unused).then(pl.lit("PricingCategory: PricingModel empty; Standard")),
        pl.when(cd_kind_guessed).then(pl.lit(
            "CommitmentDiscountType: benefit id names neither a reservation nor a savings plan; Reservation")),
        pl.when(priced & payg_missing & ~(payg.is_null() & unit_price.is_null())).then(pl.lit(
            "ListUnitPrice: PayGPrice empty or 0 (Azure omits it on commitment rows); UnitPrice used")),
        pl.when(priced & unit_price.is_null() & effective_price.is_not_null()).then(pl.lit(
            "ListUnitPrice/ContractedUnitPrice: no PayGPrice or UnitPrice (legacy usage details); the "
            "effective rate (ResourceRate/EffectivePrice) used")),
        pl.when(bp_start_raw.is_null()).then(pl.lit(
            "BillingPeriodStart/End: billing period empty in the export; calendar month of Date")),
        pl.when(publisher.is_not_null() & col("PublisherName").is_null()).then(pl.lit(
            "PublisherName: empty in the export; Microsoft")),
        pl.when(location.is_not_null() & pl.col("__region_id").is_null()).then(pl.format(
            "RegionId/RegionName: location '{}' not in the regions table; as delivered", location)),
        pl.when(unit_parsed).then(pl.format(
            "PricingUnit: UnitOfMeasure '{}' not in the pricing-units table; block size and unit read from it",
            pl.col("__uom"))),
        pl.when(service_unmapped & priced).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        pl.when(service_unmapped & _placeholder_to_null(col("MeterCategory")).is_null()
                & col("ConsumedService").is_null() & service_name.is_not_null()).then(pl.format(
            "ServiceName: no meter category or consumed service; '{}' (product or publisher name) used",
            service_name)),
    ]
    gaps = [
        pl.when(subscription.is_not_null() & col("SubscriptionName").is_null()).then(pl.lit("R-SubAccountName-1")),
        pl.when(priced & sku.is_null()).then(pl.lit("R-SkuId-1")),
        pl.when(priced & sku.is_null()).then(pl.lit("R-SkuPriceId-1")),
        pl.when(priced & (list_unit_price.is_null() | contracted_unit_price.is_null())).then(pl.lit("R-UnitPrice-1")),
        pl.when(priced & (list_pc.is_null() | contracted_pc.is_null())).then(pl.lit("R-PCUnitPrice-1")),
        pl.when(pc_effective.is_null()).then(pl.lit("R-PCEffectiveCost-1")),
        pl.when(priced & quantity.is_null()).then(pl.lit("R-PricingQuantity-1")),
        pl.when(is_usage & ~unused & quantity.is_null()).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(priced & quantity.is_not_null() & pricing_unit.is_null()).then(pl.lit("R-PricingUnit-1")),
        pl.when(is_usage & ~unused & (quantity.is_not_null() & block.is_null())).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(cd_id.is_not_null() & priced & ~correction & quantity.is_null()).then(pl.lit("R-CDQuantity-1")),
        pl.when(cd_quantity.is_not_null() & cd_unit.is_null()).then(pl.lit("R-CDUnit-1")),
        pl.when(service_name.is_null()).then(pl.lit("R-ServiceName-1")),
    ]
    x_columns = {name: (col(source) if source in schema else pl.lit(None, dtype)).cast(dtype)
                 for name, source in _X_SOURCES.items() for dtype in [AZURE_X_COLUMNS[name]]}
    x_columns.update({
        "x_CostDataset": pl.col("x_CostDataset"),
        "x_CostMode": mode,
        "x_PairedRowId": pl.when(paired_row).then(pl.col("__pair_row")),
        "x_BillingAccountAgreement": pl.col("__agreement"),
        "x_PricingBlockSize": block.cast(MONEY),
    })
    extras = unknown_columns(schema)
    converted = rows.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(changes).alias("x_SourceChanges"),
        joined_strings(gaps).alias("x_ProviderDataGaps"),
        *[pl.col(n) for n in _lineage_names()],
        *[x_columns[name].alias(name) for name in AZURE_X_COLUMNS],
        *[pl.col(name).cast(pl.String).alias(_x_name(name)) for name in extras],
    )
    out_schema = focus_schema()
    return (converted
            .with_columns(split_list(pl.col("x_SourceChanges")), split_list(pl.col("x_ProviderDataGaps")))
            .select([whitespace_to_null(pl.col(name)).alias(name) if name in FOCUS_STRING_COLUMNS
                     else pl.col(name).cast(dtype) for name, dtype in out_schema.items()]
                    + [pl.col(name).cast(dtype) for name, dtype in AZURE_X_COLUMNS.items()]
                    + [pl.col(_x_name(name)) for name in extras]))


def _charge_category(ct: pl.Expr) -> pl.Expr:
    expr = pl.when(ct.is_null()).then(pl.lit("Usage"))
    for charge_type, category in CHARGE_CATEGORY.items():
        expr = expr.when(ct == charge_type).then(pl.lit(category))
    return expr.otherwise(pl.lit("Adjustment"))


FOCUS_STRING_COLUMNS = frozenset(c.name for c in focus_columns() if c.data_type in ("String", "JSON"))


def _lineage_names() -> list[str]:
    return [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]


def unknown_columns(schema: pl.Schema) -> list[str]:
    """Raw columns this mapping does not know: kept in FOCUS as x_<name>."""
    known = set(KNOWN_COLUMNS) | set(RAW_X_COLUMNS) | set(LINEAGE_SCHEMA)
    return [n for n in schema.names() if n not in known and not n.startswith("__")]


def _x_name(name: str) -> str:
    return name if name.startswith("x_") else "x_" + re.sub(r"[^0-9A-Za-z_]", "_", name)


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, both cost bases and lineage."""
    with_mode, schema, _ = _with_modes(raw)
    reason = quarantine_reason(schema)
    col = _Cols(schema)
    return with_mode.filter(reason.is_not_null()).select(
        reason.alias("x_QuarantineReason"),
        billed_basis().alias("x_BilledCost"),
        amortized_basis().alias("x_EffectiveCost"),
        pl.col("__acct").alias("BillingAccountId"),
        col("BillingCurrency").alias("BillingCurrency"),
        col("ChargeType").alias("x_ChargeType"),
        *[pl.col(n) for n in _lineage_names()],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Per billing account, period and currency: billed = the actual files' cost, amortized = the
    amortized files' cost (partial deliveries: see the module doc), rows, and dropped_rows = the
    actual rows replaced by their paired amortized rows."""
    with_mode, schema, pairing = _with_modes(raw)
    col = _Cols(schema)
    dropped = (pairing.matches.filter(pl.col("__role") == "dropped")
               .group_by(pl.col("__acct").alias("BillingAccountId"), "x_BillingPeriod",
                         pl.col("__currency").alias("BillingCurrency"))
               .agg(pl.len().cast(pl.UInt32).alias("dropped_rows")))
    keys = ["BillingAccountId", "x_BillingPeriod", "BillingCurrency"]
    return (with_mode
            .group_by(pl.col("__acct").alias("BillingAccountId"), "x_BillingPeriod",
                      col("BillingCurrency").alias("BillingCurrency"))
            .agg(billed_basis().sum().alias("billed"), amortized_basis().sum().alias("amortized"),
                 pl.len().alias("rows"), quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"))
            .join(dropped.lazy(), on=keys, how="left", nulls_equal=True)
            .with_columns(pl.col("dropped_rows").fill_null(0)))


__all__ = [
    "FORMAT", "canonical_names", "clean_header", "dataset_of_label", "detect_format", "near_miss", "quarantine",
    "raw_totals", "scan_raw", "to_focus",
]
