"""OCI cost reports → FOCUS 1.2 (``to_focus``): the mapping of valid raw rows. The raw basis of the
conservation checks is computed apart from this module (``totals``), from OCI's documentation.

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

from functools import cache

import polars as pl

from focus_platform.sources.common import (
    COPY_REASON,
    DECLARED_CURRENCY_NOTE,
    UNMAPPED_SERVICE_NOTE,
    joined_strings,
    lookup_rows,
    mapped,
    masked_format,
    split_list,
    whitespace_to_null,
)
from focus_platform.sources.oci_cost.raw import (
    DECLARED_CURRENCY,
    KIND_OF,
    LINEAGE_NAMES,
    PROVIDER,
    TAGS,
    quarantine_reason,
    raw_column,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    TIMESTAMP,
    focus_columns,
    focus_schema,
)

# x_SourceChanges notes
LIST_PRICE_NOTE = ("ListUnitPrice/ListCost: OCI cost reports carry no list price; cost/unitPrice and "
                   "cost/myCost (the subscription's price) used")
BAD_TAGS_NOTE = "Tags: the tags column is not a flat JSON object; Tags left null (value kept in raw)"


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



# A flat JSON object: string keys; string, number, true, false or null values (R-KV-1..3 shapes)
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_JSON_SCALAR = rf'(?:{_JSON_STRING}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)'
_JSON_MEMBER = rf'\s*{_JSON_STRING}\s*:\s*{_JSON_SCALAR}\s*'
FLAT_JSON_OBJECT = rf'^\s*\{{(?:{_JSON_MEMBER}(?:,{_JSON_MEMBER})*|\s*)\}}\s*$'


RAW_SYSTEM_COLUMNS = frozenset({TAGS, "x_ParseErrors", "x_UnreadableAmounts", DECLARED_CURRENCY, COPY_REASON,
                                *LINEAGE_SCHEMA})


def extra_columns(schema: pl.Schema) -> list[str]:
    """Raw columns that are neither known OCI columns nor lineage: unknown extras (kept as x_)."""
    return [n for n in schema.names() if n not in KIND_OF and n not in RAW_SYSTEM_COLUMNS]



def _with_lookups(rows: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """The lookup tables looked up into __ columns (service, region, unit)."""
    services = service_table()
    return rows.with_columns(
        raw_column(schema, "product_service").alias("__service"),
        raw_column(schema, "product_region").alias("__region"),
        pl.coalesce(raw_column(schema, "cost_sku_unit_description"), raw_column(schema, "cost_billing_unit_readable"))
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
        return raw_column(schema, name)

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
    # x_BillingPeriod is the usage month unless the delivery's period differs: compared as month starts
    # (a parse per distinct period), the usage month written out only on the rows that differ
    delivered_in_another_month = bp_start != pl.col("x_BillingPeriod").str.to_datetime(
        "%Y-%m", time_zone="UTC", time_unit=TIMESTAMP.time_unit)
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
        masked_format(unit_renamed, "PricingUnit/ConsumedUnit: OCI unit '{}' in FOCUS unit format", unit_oci),
        pl.when(service_unmapped & service.is_not_null()).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        pl.when(service.is_null()).then(pl.lit("ServiceCategory: product/service empty, fallback Other")),
        pl.when(bad_tags.fill_null(False)).then(pl.lit(BAD_TAGS_NOTE)),
        pl.when(raw_column(schema, DECLARED_CURRENCY).is_not_null()).then(pl.lit(DECLARED_CURRENCY_NOTE)),
        masked_format(delivered_in_another_month, "x_BillingPeriod: usage month {} delivered in the {} delivery; "
                      "kept in the delivery's period", start.dt.strftime("%Y-%m"), pl.col("x_BillingPeriod")),
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
        *[pl.col(n) for n in LINEAGE_NAMES],
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

