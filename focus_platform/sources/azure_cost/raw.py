"""Azure Cost Management cost details (EA and MCA, actual and amortized): what a raw row is.

Header detection, reading a delivered file into typed raw rows, the raw columns both sides look up
(billing account, commitment, the charge identity an actual and an amortized row share) and
``quarantine_reason`` (what a valid raw row is). The mapping (``mapping.to_focus``) and the raw
side of conservation (``totals``) both import this module and never each other.

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

A file without a currency column is refused, naming the column, unless the source declares its
billing currency (``Lineage.billing_currency``): then ``BillingCurrency`` is that currency on every
row of the file and ``x_DeclaredCurrency`` holds it (``to_focus`` records it per row).

Line-item identity
------------------
Microsoft documents no identifier of a cost-details row (no line-item id among the fields of
"Understand cost details fields", learn.microsoft.com/azure/cost-management-billing/automate/
understand-usage-details-fields), and two rows with equal values are legitimate (e.g. the same meter
on the same day split by a field the export leaves out). So no row is quarantined as a duplicate:
none is invented. Exact duplicates pair one-to-one between the actual and amortized files (the n-th
copy with the n-th copy, see ``charge_identity``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources.common import (
    DECLARED_CURRENCY,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    as_timestamp,
    blank_to_null,
    delivered_file,
    lineage_columns,
    numbered,
    parse_error,
    typed_raw_rows,
)
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY, TIMESTAMP

FORMAT = "azure-cost-details"
# Microsoft documents no per-line-item identity for cost details: no copies are looked for
LINE_ITEM_KEY: tuple[str, ...] = ()
LINE_ITEM_NAME = ""
PROVIDER = "Microsoft"
ACTUAL, AMORTIZED = "actual", "amortized"
# the documented cost modes of a billing account and period: both files, or only one of them
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
# raw columns added by scan_raw (besides the lineage columns)
RAW_X_COLUMNS = ("x_ParseErrors", "x_UnreadableAmounts", "x_CostDataset", DECLARED_CURRENCY)


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
            "subscription": "SubscriptionId" in names}


def _canonical_set(headers: list[str]) -> set[str] | None:
    try:
        return set(canonical_names(headers).values())
    except SourceFormatError:
        return None


def detect_format(headers: list[str]) -> str | None:
    """azure-cost-details when the headers are a cost-details (or legacy usage-details) file (a file
    without a currency column too: ``scan_raw`` refuses it unless the source declares its currency)."""
    names = _canonical_set(headers)
    if names is None:
        return None
    m = _markers(names)
    return FORMAT if m["cost"] and m["date"] and m["meter"] else None


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


def pricing_model(col: pl.Expr) -> pl.Expr:
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
    pm = pricing_model(text("PricingModel"))
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
    lf, schema = delivered_file(path, label, storage_options)
    headers = schema.names()
    try:
        names_of = canonical_names(headers)
    except SourceFormatError as exc:
        raise SourceFormatError(f"{label}: {exc}") from exc
    names = set(names_of.values())
    declared = lineage.billing_currency if "BillingCurrency" not in names else None
    missing = [spelled for name, spelled in REQUIRED.items() if name not in names | {"BillingCurrency"}]
    if "BillingCurrency" not in names and not declared:
        missing.append(REQUIRED["BillingCurrency"] + " (or the source's declared billing currency)")
    if missing:
        kind = "not Azure cost details" if not _markers(names)["meter"] else "required column(s) missing"
        raise SourceFormatError(f"{label}: {kind}: required column(s) missing: {', '.join(missing)}")
    header_of = {v: k for k, v in names_of.items()}
    dtypes = {names_of[h]: schema[h] for h in headers}
    is_csv = not str(path).lower().endswith(".parquet")
    try:
        stats = lf.select(*_content_stats(names, header_of, dtypes)).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
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
    declared_columns = [pl.lit(declared).alias(DECLARED_CURRENCY)] if declared else []
    if declared:
        exprs.append(pl.lit(declared).alias("BillingCurrency"))
    period = pl.lit(lineage.billing_period) if lineage.billing_period else stated_period(Cols(names))
    kind = "parquet" if not is_csv else "csv"
    return typed_raw_rows(numbered(lf, is_csv), exprs, errors, [
        pl.lit(dataset).alias("x_CostDataset"),
        *declared_columns,
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
# Raw columns both sides look up, and what a valid raw row is
# ---------------------------------------------------------------------------------------------
class Cols:
    """Column access on a raw frame whose column set varies by dialect (``schema``: its schema or
    its column names)."""

    def __init__(self, schema: pl.Schema | Collection[str]):
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


def placeholder_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_in(PLACEHOLDERS)).then(None).otherwise(expr)


def billing_account(col: Cols) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """FOCUS billing account (id, name, type, agreement): EA enrollment, MCA billing profile, else
    the subscription (exports scoped to a subscription or a CSP customer carry no billing ids)."""
    ea_id, profile = col("BillingAccountId"), placeholder_to_null(col("BillingProfileId"))
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


def commitment_id(col: Cols) -> pl.Expr:
    """The commitment (reservation or savings plan) a row belongs to: BenefitId, else on commitment
    rows the reservation or its order."""
    ct = col("ChargeType")
    pm = pricing_model(col("PricingModel"))
    commitment_row = pm.is_in(COMMITMENT_MODELS).fill_null(False) | ct.is_in(UNUSED_TYPES).fill_null(False)
    return pl.coalesce(
        placeholder_to_null(col("BenefitId")),
        pl.when(commitment_row).then(pl.coalesce(placeholder_to_null(col("ReservationId")),
                                                 placeholder_to_null(col("ProductOrderId")))))


def stated_period(col: Cols) -> pl.Expr:
    """The billing period ('YYYY-MM') a row states: the month of BillingPeriodStartDate, else of Date
    (a file's ``x_BillingPeriod`` unless its delivery names the period)."""
    return pl.coalesce(col("BillingPeriodStartDate"), col("Date")).dt.strftime("%Y-%m")


def charge_type(col: Cols) -> pl.Expr:
    """ChargeType; legacy usage details have none and list usage only: Usage."""
    return pl.coalesce(col("ChargeType"), pl.lit("Usage")) if col.has("ChargeType") else pl.lit("Usage")


def period_modes(rows: pl.LazyFrame, account: str) -> pl.LazyFrame:
    """Per billing account (the column ``account`` of ``rows``) and period: ``__mode``, paired (both
    files), actual-only or amortized-only (the mapping and the raw totals both read this)."""
    dataset = pl.col("x_CostDataset")
    return (rows.group_by(account, "x_BillingPeriod")
            .agg((dataset == ACTUAL).any().alias("__actual"), (dataset == AMORTIZED).any().alias("__amortized"))
            .select(account, "x_BillingPeriod",
                    pl.when(pl.col("__actual") & pl.col("__amortized")).then(pl.lit(PAIRED))
                    .when(pl.col("__actual")).then(pl.lit(ACTUAL_ONLY)).otherwise(pl.lit(AMORTIZED_ONLY))
                    .alias("__mode")))


def charge_identity(col: Cols) -> pl.Expr:
    """What makes an actual-cost row and an amortized-cost row the same charge (both exports list
    the same usage, at different costs): billing account, period, currency, subscription, day, meter,
    product, resource, charge type, pricing model, commitment, quantity, unit and location. Rows of
    equal identity pair in file order (the n-th of one file with the n-th of the other)."""
    raw_parts = ("x_BillingPeriod", "BillingCurrency", "SubscriptionId", "Date", "MeterId", "ProductName",
                 "ResourceId", "Quantity", "UnitOfMeasure", "ResourceLocation")
    return pl.struct(
        billing_account(col)[0].alias("account"), *[col(name).alias(name) for name in raw_parts],
        charge_type(col).alias("charge_type"), pricing_model(col("PricingModel")).alias("pricing_model"),
        commitment_id(col).alias("commitment"))


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row)."""
    col = Cols(schema)
    currency = col("BillingCurrency")
    parse_errors = col("x_ParseErrors")
    reasons = [
        parse_errors,
        pl.when(col("Date").is_null() & parse_errors.is_null()).then(pl.lit("Date is empty")),
        pl.when(col("CostInBillingCurrency").is_null() & parse_errors.is_null())
        .then(pl.lit("CostInBillingCurrency (cost) is empty")),
        pl.when(currency.is_null()).then(pl.lit("BillingCurrency is empty")),
        pl.when(currency.is_not_null() & ~currency.is_in(_iso_currencies()))
        .then(pl.format("BillingCurrency '{}' is not an ISO 4217 currency code", currency)),
        pl.when(billing_account(col)[0].is_null())
        .then(pl.lit("no billing account: BillingAccountId, BillingProfileId and SubscriptionId are empty")),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def lineage_names() -> list[str]:
    """The lineage columns a FOCUS or quarantine row carries over from its raw row."""
    return [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
