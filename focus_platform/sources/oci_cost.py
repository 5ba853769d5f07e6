"""OCI (Oracle Cloud Infrastructure) cost reports → typed raw rows → FOCUS 1.2.

What OCI delivers (SCHEMAS.md §5): CSV files (``.csv.gz`` in the Oracle-owned bucket, numbered
increments about every six hours, split at 1 M rows), one row per resource, SKU and hour, with
``category/name`` headers: ``lineItem/*``, ``product/*``, ``usage/*``, ``cost/*`` and one column per
tag key, ``tags/<namespace>.<key>`` (defined tags) or ``tags/<key>`` (free-form), whose set varies
per file.

Reading (``scan_raw``): headers are matched case-insensitively (``lineItem/TenantId`` and
``lineItem/tenantId``; the documented ``lineItem/backReference`` is ``lineItem/backreferenceNo``)
and get snake_case names (``cost/myCost`` → ``cost_my_cost``). Every known column is present in the
raw rows (typed null when the file lacks it), so files with different column sets share one
schema. Quantities, prices and costs become Decimal(38, 12) (plain and ``2.3E-9`` notation;
values with more than 12 decimals are rounded to 12, the house money type), the interval
timestamps UTC (both OCI forms, ``2023-11-13T10:00Z`` and ``2023-11-13T11:00:00Z``), the flags
booleans (``true``/``false``, ``Y``/``N``). Tag columns are folded into one JSON object column
``tags``, keys exactly as delivered after ``tags/`` (backslashes, spaces, quotes are JSON-escaped;
a value that looks like JSON is kept as a string). A file that carries its tags as one JSON
column ``tags`` instead is accepted; a value there that is not a flat JSON object is kept in raw,
and the FOCUS row gets Tags null and an ``x_SourceChanges`` note (the row is not lost). Unknown
columns are kept (snake_case name in raw, ``x_<name>`` in FOCUS). A value that does not parse is
recorded in ``x_ParseErrors``: the raw table keeps the row, the row goes to quarantine with a
reason naming file, row and column.

Billing period: OCI reports are incremental files, not monthly deliveries, and carry no billing
period column. A row's billing period is the UTC calendar month of ``lineItem/intervalUsageStart``
(BillingPeriodStart/End), and ``x_BillingPeriod`` is that month too, unless the row came from a
landing-zone delivery folder of another month: then ``x_BillingPeriod`` is the delivery's period
(the partition it is stored in) and the row says so in ``x_SourceChanges``.

Mapping (``to_focus``), with the reasons:

- BilledCost = EffectiveCost = ContractedCost = ``cost/myCost``. OCI: billedQuantity, myCost and
  unitPrice already include overage (``cost/myCostOverage`` is the overage part only, empty on
  normal rows: focus_converters' BilledCost from it is null on every normal row). Universal Credits
  are not amortized in the report, so the effective cost is the billed cost.
- ContractedUnitPrice = ``cost/unitPrice``, PricingQuantity = ConsumedQuantity =
  ``usage/billedQuantity`` (in the unit of ``cost/billingUnitReadable``, priced per
  ``cost/skuUnitDescription``), PricingUnit = ConsumedUnit = the SKU unit in FOCUS unit format
  (``oci_units.csv``; unknown units as delivered).
- ListUnitPrice/ListCost: the cost report has no list price; the customer's unit price and cost are
  used and every row says so in ``x_SourceChanges``.
- ChargeCategory Usage, ChargeFrequency Usage-Based, PricingCategory Standard: every OCI cost report
  row is metered usage at the subscription's rate (overage rows at the overage rate).
- ChargeClass Correction where ``lineItem/isCorrection`` is true. OCI adds corrections as new rows
  whose ``lineItem/backreferenceNo`` names the corrected ``lineItem/referenceNo``; each correction
  row's amounts count on top of the corrected row (the bill is the sum of all rows). Note that OCI
  also fills ``lineItem/backreferenceNo`` on ordinary rows (a number, not a reference): only
  ``isCorrection`` decides.
- BillingAccountId = tenancy (``lineItem/tenantId``, type Tenancy); SubAccountId/Name = compartment
  (``product/compartmentId``/``compartmentName``, type Compartment). The report names no tenancy,
  so BillingAccountName is null. ``cost/subscriptionId`` is kept as ``x_SubscriptionId``.
- ServiceName = ``product/service`` as delivered (``COMPUTE``, ``OBJECTSTORE``); category and
  subcategory from ``oci_services.csv`` (unknown services: Other, noted). RegionId =
  ``product/region``, RegionName from ``oci_regions.csv``; AvailabilityZone =
  ``product/availabilityDomain``. SkuId = SkuPriceId = ``cost/productSku`` (OCI prices a part
  number per subscription; there is no separate price id), SkuMeter and ChargeDescription =
  ``product/Description``. ResourceId = ``product/resourceId``; ResourceType =
  ``product/resource`` when present, else the type in the OCID (``ocid1.<type>.…``), else the
  service.
- Provider, publisher and invoice issuer: Oracle. The report carries no invoice id (null).
- OCI columns kept: x_ReferenceNumber, x_BackReferenceNumber, x_IsCorrection, x_SubscriptionId,
  x_OverageFlag, x_BilledQuantityOverage, x_UnitPriceOverage, x_CostOverage,
  x_BillingUnitReadable, x_SkuUnitDescription, x_ServiceCode (``product/service``), x_UsageType
  (``product/resource``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources.common import (
    UNMAPPED_SERVICE_NOTE,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    blank_to_null,
    check_csv_structure,
    file_schema,
    joined_strings,
    json_object,
    lineage_columns,
    lookup_rows,
    mapped,
    numbered,
    parse_error,
    scan_file,
    split_list,
    typed_raw_rows,
    typed_timestamp,
    whitespace_to_null,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    TIMESTAMP,
    focus_columns,
    focus_schema,
)

FORMAT = "oci-cost"
PROVIDER = "Oracle"
VERSION = "OCI cost report"

# ---------------------------------------------------------------------------------------------
# Columns: delivered header, raw name, kind (s string, d decimal, t timestamp, b boolean)
# ---------------------------------------------------------------------------------------------
KNOWN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("lineItem/referenceNo", "line_item_reference_no", "s"),
    ("lineItem/tenantId", "line_item_tenant_id", "s"),
    ("lineItem/intervalUsageStart", "line_item_interval_usage_start", "t"),
    ("lineItem/intervalUsageEnd", "line_item_interval_usage_end", "t"),
    ("product/service", "product_service", "s"),
    ("product/resource", "product_resource", "s"),
    ("product/compartmentId", "product_compartment_id", "s"),
    ("product/compartmentName", "product_compartment_name", "s"),
    ("product/region", "product_region", "s"),
    ("product/availabilityDomain", "product_availability_domain", "s"),
    ("product/resourceId", "product_resource_id", "s"),
    ("usage/billedQuantity", "usage_billed_quantity", "d"),
    ("usage/billedQuantityOverage", "usage_billed_quantity_overage", "d"),
    ("cost/subscriptionId", "cost_subscription_id", "s"),
    ("cost/productSku", "cost_product_sku", "s"),
    ("product/Description", "product_description", "s"),
    ("cost/unitPrice", "cost_unit_price", "d"),
    ("cost/unitPriceOverage", "cost_unit_price_overage", "d"),
    ("cost/myCost", "cost_my_cost", "d"),
    ("cost/myCostOverage", "cost_my_cost_overage", "d"),
    ("cost/currencyCode", "cost_currency_code", "s"),
    ("cost/billingUnitReadable", "cost_billing_unit_readable", "s"),
    ("cost/skuUnitDescription", "cost_sku_unit_description", "s"),
    ("cost/overageFlag", "cost_overage_flag", "b"),
    ("lineItem/isCorrection", "line_item_is_correction", "b"),
    ("lineItem/backreferenceNo", "line_item_backreference_no", "s"),
)
ALIASES = {"lineItem/backReference": "line_item_backreference_no"}  # the name in OCI's documentation
HEADER_OF = {name: header for header, name, _ in KNOWN_COLUMNS}
KIND_OF = {name: kind for _, name, kind in KNOWN_COLUMNS}
RAW_DTYPE = {"s": pl.String, "d": MONEY, "t": TIMESTAMP, "b": pl.Boolean}
TAGS = "tags"  # raw column: the tag columns folded into one JSON object
REQUIRED = ("line_item_tenant_id", "line_item_interval_usage_start", "cost_my_cost", "cost_currency_code")
# OCI-only names: a file with two of these (and not all required) is an OCI report missing columns
SIGNATURE = ("line_item_reference_no", "line_item_tenant_id", "line_item_interval_usage_start",
             "line_item_interval_usage_end", "product_compartment_id", "cost_my_cost", "line_item_is_correction")
TRUE_TEXT = ("true", "t", "y", "yes", "1")
FALSE_TEXT = ("false", "f", "n", "no", "0")
TIMESTAMP_FORMS = "2023-11-13T10:00Z or 2023-11-13T10:00:00Z"

# x_SourceChanges notes
LIST_PRICE_NOTE = ("ListUnitPrice/ListCost: OCI cost reports carry no list price; cost/unitPrice and "
                   "cost/myCost (the subscription's price) used")
BAD_TAGS_NOTE = "Tags: the tags column is not a flat JSON object; Tags left null (value kept in raw)"


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


@cache
def _known_by_key() -> dict[str, str]:
    out = {_key(header): name for header, name, _ in KNOWN_COLUMNS}
    out.update({_key(header): name for header, name in ALIASES.items()})
    return out


def _snake(header: str) -> str:
    """`cost/attributedCost` -> `cost_attributed_cost`; any other character becomes '_'."""
    out = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", header)
    out = re.sub(r"[^0-9A-Za-z]+", "_", out).strip("_").lower()
    return out or "unnamed"


@dataclass(frozen=True)
class RawColumn:
    header: str  # as delivered
    name: str  # raw column name
    tag_key: str | None = None  # `tags/<key>`: the key as delivered
    known: bool = False


def classify_header(header: str) -> RawColumn:
    """The raw name of a delivered header, or the tag key it carries."""
    # polars keeps a quoted CSV header's doubled quotes ('"tags/Data ""Tier"""' -> 'tags/Data ""Tier""')
    h = header.lstrip("\ufeff").replace('""', '"')
    if h[:5].lower() == "tags/" and h[5:]:
        return RawColumn(header, TAGS, tag_key=h[5:])
    if h.strip().lower() == "tags":
        return RawColumn(header, TAGS)  # tags delivered as one JSON object column
    known = _known_by_key().get(_key(h))
    if known:
        return RawColumn(header, known, known=True)
    return RawColumn(header, _snake(h))


def _names(headers: list[str]) -> set[str]:
    return {classify_header(h).name for h in headers}


def missing_required(names: set[str]) -> list[str]:
    return [HEADER_OF[n] for n in REQUIRED if n not in names]


def detect_format(headers: list[str]) -> str | None:
    """oci-cost when the headers are an OCI cost report (proprietary format), else None."""
    names = _names(headers)
    return FORMAT if not missing_required(names) else None


def near_miss(headers: list[str]) -> str | None:
    """Why a file with OCI report columns is not a convertible cost report."""
    names = _names(headers)
    missing = missing_required(names)
    if missing and sum(n in names for n in SIGNATURE) >= 2:
        kind = "an OCI usage report (no cost columns)" if "usage_consumed_quantity" in names else "an OCI cost report"
        return f"looks like {kind} but required column(s) missing: {', '.join(missing)}"
    return None


# ---------------------------------------------------------------------------------------------
# Lookups (CSV tables beside this module)
# ---------------------------------------------------------------------------------------------
@cache
def service_table() -> dict[str, tuple[str, str]]:
    return {r["service"]: (r["service_category"], r["service_subcategory"]) for r in lookup_rows("oci_services.csv")}


@cache
def region_names() -> dict[str, str]:
    return {r["region_id"]: r["region_name"] for r in lookup_rows("oci_regions.csv")}


@cache
def unit_names() -> dict[str, str]:
    return {r["oci_unit"]: r["focus_unit"] for r in lookup_rows("oci_units.csv")}


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------
def _text(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return blank_to_null(source if dtype == pl.String else source.cast(pl.String))


def _timestamp(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Both OCI forms (with and without seconds; 'T' or ' ', 'Z' optional); nothing else."""
    typed = typed_timestamp(source, dtype)
    if typed is not None:
        return typed
    text = _text(source, dtype).str.strip_chars().str.replace("T", " ", literal=True).str.strip_suffix("Z")
    seconds = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us")
    minutes = text.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_zone="UTC", time_unit="us")
    return pl.coalesce(seconds, minutes).cast(TIMESTAMP)


def _boolean(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return source
    text = _text(source, dtype).str.strip_chars().str.to_lowercase()
    return pl.when(text.is_in(TRUE_TEXT)).then(True).when(text.is_in(FALSE_TEXT)).then(False).otherwise(None)


# A flat JSON object: string keys; string, number, true, false or null values (R-KV-1..3 shapes)
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_SCALAR = rf'(?:{_JSON_STRING}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)'
_JSON_MEMBER = rf'\s*{_JSON_STRING}\s*:\s*{_JSON_SCALAR}\s*'
FLAT_JSON_OBJECT = rf'^\s*\{{(?:{_JSON_MEMBER}(?:,{_JSON_MEMBER})*|\s*)\}}\s*$'


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One delivered file as typed raw rows with canonical names and lineage columns."""
    label = label or str(path)
    lf = scan_file(path, storage_options=storage_options)
    schema = file_schema(lf, label)
    if not str(path).lower().endswith(".parquet"):
        check_csv_structure(str(path), label, storage_options)
    columns = [classify_header(h) for h in schema.names()]
    names = {c.name for c in columns}
    missing = missing_required(names)
    if missing:
        raise SourceFormatError(f"{label}: not an OCI cost report: required column(s) missing: {', '.join(missing)}")
    tag_columns = [c for c in columns if c.tag_key is not None]
    json_tags = [c for c in columns if c.name == TAGS and c.tag_key is None]
    if len(json_tags) > 1 or (json_tags and tag_columns):
        raise SourceFormatError(f"{label}: tags delivered both as a JSON column {json_tags[0].header!r} and as "
                                f"tags/<key> columns (or twice); cannot tell which is right")
    seen: dict[str, str] = {}
    typed: dict[str, pl.Expr] = {}
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    extras: list[pl.Expr] = []
    tag_pairs: dict[str, list[pl.Expr]] = {}
    for col in columns:
        dtype = schema[col.header]
        source = pl.col(col.header)
        if col.tag_key is not None:  # a key delivered twice (e.g. tags/x and Tags/x): first non-empty wins
            tag_pairs.setdefault(col.tag_key, []).append(_text(source, dtype))
            continue
        if col.name in seen:
            raise SourceFormatError(f"{label}: columns {seen[col.name]!r} and {col.header!r} both mean {col.name}")
        seen[col.name] = col.header
        if col.name == TAGS:
            text = _text(source, dtype).str.strip_chars()
            typed[TAGS] = pl.when(text != "").then(text)
            continue
        kind = KIND_OF.get(col.name, "s")
        if kind == "d":
            value = as_decimal(col.header, dtype)
            amounts.append(amount_error(col.header, source, dtype, value))
        elif kind == "t":
            value = _timestamp(source, dtype)
            if not isinstance(dtype, pl.Datetime):
                errors.append(parse_error(col.header, source, value, f"a timestamp (expected {TIMESTAMP_FORMS})"))
        elif kind == "b":
            value = _boolean(source, dtype)
            if dtype != pl.Boolean:
                errors.append(parse_error(col.header, source, value, "true or false"))
        else:
            value = _text(source, dtype)
        if col.known:
            typed[col.name] = value
        else:
            extras.append(value.alias(col.name))
    if tag_pairs:
        typed[TAGS] = json_object([(k, pl.coalesce(v) if len(v) > 1 else v[0]) for k, v in tag_pairs.items()])
    # every known column, in the documented order (typed nulls for the ones this file lacks)
    exprs = [typed.get(name, pl.lit(None, RAW_DTYPE[kind])).cast(RAW_DTYPE[kind]).alias(name)
             for _, name, kind in KNOWN_COLUMNS]
    exprs.append(typed.get(TAGS, pl.lit(None, pl.String)).alias(TAGS))
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.col("line_item_interval_usage_start").dt.strftime("%Y-%m"))
    kind = "parquet" if str(path).lower().endswith(".parquet") else "csv"
    return typed_raw_rows(numbered(lf, kind == "csv"), [*exprs, *extras], errors,
                          lineage_columns(lineage, FORMAT, f"{VERSION} {kind}", label), period, amounts)


# ---------------------------------------------------------------------------------------------
# Raw → FOCUS
# ---------------------------------------------------------------------------------------------
def _col(schema: pl.Schema, name: str) -> pl.Expr:
    """A known raw column, or its typed null when the raw frame lacks it."""
    if name in schema:
        return pl.col(name)
    return pl.lit(None, RAW_DTYPE[KIND_OF[name]] if name in KIND_OF else pl.String)


RAW_SYSTEM_COLUMNS = frozenset({TAGS, "x_ParseErrors", "x_UnreadableAmounts", *LINEAGE_SCHEMA})


def extra_columns(schema: pl.Schema) -> list[str]:
    """Raw columns that are neither known OCI columns nor lineage: unknown extras (kept as x_)."""
    return [n for n in schema.names() if n not in KIND_OF and n not in RAW_SYSTEM_COLUMNS]


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row)."""
    def empty(name: str) -> pl.Expr:
        return pl.when(_col(schema, name).is_null()).then(pl.lit(f"{HEADER_OF[name]} is empty"))

    parse_errors = pl.col("x_ParseErrors") if "x_ParseErrors" in schema else pl.lit(None, pl.String)
    reasons = [
        parse_errors,
        empty("line_item_tenant_id"),
        pl.when(_col(schema, "line_item_interval_usage_start").is_null() & parse_errors.is_null())
        .then(pl.lit("lineItem/intervalUsageStart is empty")),
        pl.when(_col(schema, "cost_my_cost").is_null() & parse_errors.is_null())
        .then(pl.lit("cost/myCost is empty")),
        empty("cost_currency_code"),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def _with_lookups(rows: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """The lookup tables looked up into __ columns (service, region, unit)."""
    services = service_table()
    return rows.with_columns(
        _col(schema, "product_service").alias("__service"),
        _col(schema, "product_region").alias("__region"),
        pl.coalesce(_col(schema, "cost_sku_unit_description"), _col(schema, "cost_billing_unit_readable"))
        .alias("__unit_oci"),
    ).with_columns(
        mapped(pl.col("__service"), {k: v[0] for k, v in services.items()}).alias("__svc_category"),
        mapped(pl.col("__service"), {k: v[1] for k, v in services.items()}).alias("__svc_subcategory"),
        mapped(pl.col("__region"), region_names()).alias("__region_name"),
        mapped(pl.col("__unit_oci"), unit_names()).alias("__unit_focus"),
    )


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows (one FOCUS row per raw row)."""
    schema = raw.collect_schema()

    def col(name: str) -> pl.Expr:
        return _col(schema, name)

    rows = _with_lookups(raw.filter(quarantine_reason(schema).is_null()), schema)
    cost = col("cost_my_cost")
    unit_price = col("cost_unit_price")
    quantity = col("usage_billed_quantity")
    currency = col("cost_currency_code")
    start = col("line_item_interval_usage_start")
    end = col("line_item_interval_usage_end")
    correction = col("line_item_is_correction").fill_null(False)
    service = col("product_service")
    sku = col("cost_product_sku")
    description = col("product_description")
    region_id = col("product_region")
    region_name = pl.when(region_id.is_not_null()).then(pl.col("__region_name"))
    resource_id = col("product_resource_id")
    compartment_id = col("product_compartment_id")
    unit_oci = pl.col("__unit_oci")
    unit = pl.coalesce(pl.col("__unit_focus"), unit_oci)
    unit_renamed = pl.col("__unit_focus").is_not_null() & (pl.col("__unit_focus") != unit_oci)
    pricing_unit = pl.when(quantity.is_not_null()).then(unit)
    service_unmapped = pl.col("__svc_category").is_null()
    ocid_type = resource_id.str.extract(r"^ocid1\.([A-Za-z0-9_-]+)\.", 1)
    resource_type = pl.when(resource_id.is_not_null()).then(pl.coalesce(col("product_resource"), ocid_type, service))
    bp_start = start.dt.truncate("1mo")
    usage_period = start.dt.strftime("%Y-%m")
    overage_qty = col("usage_billed_quantity_overage")
    partial_overage = (overage_qty.is_not_null() & (overage_qty != 0) & (overage_qty != quantity)).fill_null(False)
    tags = col(TAGS)
    bad_tags = tags.is_not_null() & ~tags.str.contains(FLAT_JSON_OBJECT)
    oracle = pl.lit(PROVIDER)

    focus = {
        "AvailabilityZone": col("product_availability_domain"),
        "BilledCost": cost,
        "BillingAccountId": col("line_item_tenant_id"),
        "BillingAccountName": pl.lit(None, pl.String),
        "BillingAccountType": pl.lit("Tenancy"),
        "BillingCurrency": currency,
        "BillingPeriodEnd": bp_start.dt.offset_by("1mo"),
        "BillingPeriodStart": bp_start,
        "CapacityReservationId": pl.lit(None, pl.String),
        "CapacityReservationStatus": pl.lit(None, pl.String),
        "ChargeCategory": pl.lit("Usage"),
        "ChargeClass": pl.when(correction).then(pl.lit("Correction")),
        "ChargeDescription": description,
        "ChargeFrequency": pl.lit("Usage-Based"),
        "ChargePeriodEnd": end,
        "ChargePeriodStart": start,
        "CommitmentDiscountCategory": pl.lit(None, pl.String),
        "CommitmentDiscountId": pl.lit(None, pl.String),
        "CommitmentDiscountName": pl.lit(None, pl.String),
        "CommitmentDiscountQuantity": pl.lit(None, MONEY),
        "CommitmentDiscountStatus": pl.lit(None, pl.String),
        "CommitmentDiscountType": pl.lit(None, pl.String),
        "CommitmentDiscountUnit": pl.lit(None, pl.String),
        "ConsumedQuantity": quantity,
        "ConsumedUnit": pricing_unit,
        "ContractedCost": cost,
        "ContractedUnitPrice": unit_price,
        "EffectiveCost": cost,
        "InvoiceId": pl.lit(None, pl.String),
        "InvoiceIssuerName": oracle,
        "ListCost": cost,
        "ListUnitPrice": unit_price,
        "PricingCategory": pl.lit("Standard"),
        "PricingCurrency": currency,
        "PricingCurrencyContractedUnitPrice": unit_price,
        "PricingCurrencyEffectiveCost": cost,
        "PricingCurrencyListUnitPrice": unit_price,
        "PricingQuantity": quantity,
        "PricingUnit": pricing_unit,
        "ProviderName": oracle,
        "PublisherName": oracle,
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": pl.lit(None, pl.String),
        "ResourceType": resource_type,
        "ServiceCategory": pl.col("__svc_category").fill_null("Other"),
        "ServiceName": service,
        "ServiceSubcategory": pl.col("__svc_subcategory").fill_null("Other (Other)"),
        "SkuId": sku,
        "SkuMeter": pl.when(sku.is_not_null()).then(description),
        "SkuPriceDetails": pl.lit(None, pl.String),
        "SkuPriceId": sku,
        "SubAccountId": compartment_id,
        "SubAccountName": col("product_compartment_name"),
        "SubAccountType": pl.when(compartment_id.is_not_null()).then(pl.lit("Compartment")),
        "Tags": pl.when(~bad_tags).then(tags),
        "x_ChargeType": pl.lit(None, pl.String),
        "x_ServiceCode": service,
        "x_UsageType": col("product_resource"),
        "x_Operation": pl.lit(None, pl.String),
        "x_CostCategories": pl.lit(None, pl.String),
    }
    changes = [
        pl.lit(LIST_PRICE_NOTE),
        pl.when(unit_renamed.fill_null(False)).then(
            pl.format("PricingUnit/ConsumedUnit: OCI unit '{}' in FOCUS unit format", unit_oci)),
        pl.when(service_unmapped & service.is_not_null()).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        pl.when(service.is_null()).then(pl.lit("ServiceCategory: product/service empty, fallback Other")),
        pl.when(bad_tags.fill_null(False)).then(pl.lit(BAD_TAGS_NOTE)),
        pl.when(usage_period != pl.col("x_BillingPeriod")).then(pl.format(
            "x_BillingPeriod: usage month {} delivered in the {} delivery; kept in the delivery's period",
            usage_period, pl.col("x_BillingPeriod"))),
    ]
    gaps = [
        pl.when(compartment_id.is_not_null() & col("product_compartment_name").is_null())
        .then(pl.lit("R-SubAccountName-1")),
        pl.when(region_id.is_not_null() & region_name.is_null()).then(pl.lit("R-RegionName-1")),
        pl.when(service.is_null()).then(pl.lit("R-ServiceName-1")),
        pl.when(sku.is_null()).then(pl.lit("R-SkuId-1\x1fR-SkuPriceId-1")),
        pl.when(unit_price.is_null()).then(pl.lit("R-UnitPrice-1\x1fR-PCUnitPrice-1")),
        pl.when(quantity.is_null()).then(pl.lit("R-PricingQuantity-1\x1fR-ConsumedQuantity-1")),
        pl.when(quantity.is_not_null() & unit.is_null()).then(pl.lit("R-PricingUnit-1\x1fR-ConsumedUnit-1")),
        pl.when(end.is_null()).then(pl.lit("R-ChargePeriod-1")),
        pl.when(end <= start).then(pl.lit("R-ChargePeriod-2")),
        # a row partly within the commitment and partly overage has a blended unit price
        pl.when(partial_overage).then(pl.lit("R-ListCost-1b\x1fR-ContractedCost-1b")),
    ]
    extras = extra_columns(schema)
    oci = {
        "x_ReferenceNumber": col("line_item_reference_no"),
        "x_BackReferenceNumber": col("line_item_backreference_no"),
        "x_IsCorrection": col("line_item_is_correction"),
        "x_SubscriptionId": col("cost_subscription_id"),
        "x_OverageFlag": col("cost_overage_flag"),
        "x_BilledQuantityOverage": overage_qty,
        "x_UnitPriceOverage": col("cost_unit_price_overage"),
        "x_CostOverage": col("cost_my_cost_overage"),
        "x_BillingUnitReadable": col("cost_billing_unit_readable"),
        "x_SkuUnitDescription": col("cost_sku_unit_description"),
        **{f"x_{name}": pl.col(name).cast(pl.String) for name in extras},
    }
    converted = rows.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(changes).alias("x_SourceChanges"),
        joined_strings(gaps).alias("x_ProviderDataGaps"),
        *[pl.col(n) for n in _lineage_names()],
        *[expr.alias(name) for name, expr in oci.items()],
    )
    return (converted
            .with_columns(split_list(pl.col("x_SourceChanges")), split_list(pl.col("x_ProviderDataGaps")))
            .select([whitespace_to_null(pl.col(name)).alias(name) if name in FOCUS_STRING_COLUMNS
                     else pl.col(name).cast(dtype)
                     for name, dtype in focus_schema().items()]
                    + [pl.col(name).cast(OCI_X_SCHEMA.get(name, pl.String)) for name in oci]))


FOCUS_STRING_COLUMNS = frozenset(c.name for c in focus_columns() if c.data_type in ("String", "JSON"))
OCI_X_SCHEMA: dict[str, pl.DataType] = {
    "x_ReferenceNumber": pl.String, "x_BackReferenceNumber": pl.String, "x_IsCorrection": pl.Boolean,
    "x_SubscriptionId": pl.String, "x_OverageFlag": pl.Boolean, "x_BilledQuantityOverage": MONEY,
    "x_UnitPriceOverage": MONEY, "x_CostOverage": MONEY, "x_BillingUnitReadable": pl.String,
    "x_SkuUnitDescription": pl.String,
}


def _lineage_names() -> list[str]:
    return [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted: the reason (naming file, row and column), amounts, lineage."""
    schema = raw.collect_schema()
    reason = quarantine_reason(schema)
    return raw.filter(reason.is_not_null()).select(
        pl.format("{} row {}: {}", pl.col("x_SourceFile"), pl.col("x_SourceRow"), reason).alias("x_QuarantineReason"),
        _col(schema, "cost_my_cost").alias("x_BilledCost"),
        _col(schema, "cost_my_cost").alias("x_EffectiveCost"),
        _col(schema, "line_item_tenant_id").alias("BillingAccountId"),
        _col(schema, "cost_currency_code").alias("BillingCurrency"),
        pl.lit(None, pl.String).alias("x_ChargeType"),
        *[pl.col(n) for n in _lineage_names()],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """OCI's own totals per tenancy, period and currency: billed = amortized = sum of cost/myCost
    (corrections included: they are additional rows); no row is dropped by the mapping."""
    schema = raw.collect_schema()
    cost = _col(schema, "cost_my_cost")
    return (raw.group_by(_col(schema, "line_item_tenant_id").alias("BillingAccountId"), "x_BillingPeriod",
                         _col(schema, "cost_currency_code").alias("BillingCurrency"))
            .agg(cost.sum().alias("billed"), cost.sum().alias("amortized"), pl.len().alias("rows"),
                 quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"),
                 pl.lit(0, pl.UInt32).alias("dropped_rows")))


__all__ = [
    "FORMAT", "classify_header", "detect_format", "near_miss", "quarantine", "raw_totals", "scan_raw", "to_focus",
]
