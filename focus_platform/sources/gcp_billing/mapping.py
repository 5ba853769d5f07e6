"""GCP billing export → FOCUS 1.2 (``to_focus``): the mapping of valid raw rows. The raw basis of
the conservation checks is computed apart from this module (``totals``), from GCP's documentation.

Credits (the decision)
----------------------
GCP's ``cost`` is before credits; the invoice total is ``sum(cost) + sum(credits.amount)``. Credits
are split by what they are:

* discounts on the row's own price (FOCUS R-Disc-1: applied on the row they affect) are netted
  into that row's BilledCost / EffectiveCost: ``SUSTAINED_USAGE_DISCOUNT``,
  ``COMMITTED_USAGE_DISCOUNT``, ``COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE``, ``FEE_UTILIZATION_OFFSET``,
  ``DISCOUNT``, ``FREE_TIER``, ``SUBSCRIPTION_BENEFIT``, ``RESELLER_MARGIN``;
* every other credit (``PROMOTION`` — free trial and promotional credits, "a form of payment" —,
  ``CREDIT_TYPE_UNSPECIFIED``, unknown or empty type) with a non-zero amount becomes its own FOCUS
  row with ChargeCategory ``Credit`` (R-Disc-7), x_RowId ``<parent>~credit<n>`` (a derived row),
  carrying the parent's account, project, service, SKU, region, resource and tags.

So per row sum(BilledCost) = cost + sum(credits.amount) exactly, and per invoice month FOCUS
sum(BilledCost) is the invoice total. ListCost = ``cost_at_list`` (else ``cost``) and ContractedCost
= ``cost`` (both before credits); EffectiveCost = BilledCost: GCP has no upfront commitments, CUD fees
are billed hour by hour with the usage they cover, and the export does not say which usage a fee
covers, so no amortization is computed (raw_totals' amortized basis = billed basis).

Charge classes and commitments
------------------------------
``cost_type`` regular → Usage; a regular row on a ``Commitment ...`` SKU (a CUD fee) → Purchase,
Recurring; tax → Tax; adjustment, rounding error → Adjustment; unknown → quarantined. ChargeClass
is Correction for adjustments (cost_type adjustment or ``adjustment_info`` set) of usage before the
invoice month (R-ChargeClass-1: corrections of an already invoiced period; adjustments inside the
month stay null). Usage reduced by a CUD credit is PricingCategory Committed; Spot / Preemptible
SKUs are Dynamic. CommitmentDiscountId is ``subscription.instance_id`` (detailed export, 2024+) on
CUD fees and CUD-credited usage; the standard export has no commitment id (then null). A CUD fee
with an id keeps its cost as EffectiveCost (not amortizable, see above) and names R-EffectiveCost-2
in x_ProviderDataGaps.

Other columns: SubAccountId/Name = ``project.id``/``project.name`` (type Project); RegionId =
``location.region``, else a (multi-)region ``location.location`` other than ``global``; ResourceId /
Name = ``resource.global_name`` / ``resource.name``; ServiceCategory from ``gcp_services.csv``
(focus_converters' mapping, MIT, plus subcategories); units to FOCUS unit names (``gcp_units.csv``);
unit prices are cost / ``usage.amount_in_pricing_units`` (the export has per-tier prices only);
SkuPriceId = ``sku.id`` (with ``/tier-<start>`` above the first price tier); ChargeDescription =
``sku.description`` (tax and adjustment rows without a SKU: from cost_type, adjustment_info and
service); Tags = labels, then project labels (inherited; a resource label of the same key wins),
then resource manager tags (``<namespace>/<key>``), then system labels (Google's own keys);
InvoiceId and BillingAccountName are not in the export (null). Provider values kept as x_ columns
after the FOCUS and lineage columns: x_Cost (before credits), x_Credits (the row's credits, typed
list; a Credit row's own credit), x_InvoiceMonth, x_InvoicePublisherType, x_ProjectNumber,
x_ProjectAncestryNumbers, x_ProjectAncestors, x_Location, x_Country, x_CurrencyConversionRate,
x_ExportTime, x_AdjustmentInfo / x_Price / x_ConsumptionModel (structs), x_TransactionType,
x_SubscriptionInstanceId, then x_<name> for each unknown column.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import polars as pl

from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    LIST_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    derived_row_id,
    exact_product,
    exact_ratio,
    joined_strings,
    json_string,
    lookup_rows,
    mapped,
    masked_format,
    split_list,
    whitespace_to_null,
)
from focus_platform.sources.gcp_billing.raw import (
    COST_TYPES,
    DECLARED_CURRENCY,
    KEY_VALUE,
    PACIFIC,
    PROVIDER,
    RAW_TYPES,
    RawColumns,
    convertible,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    focus_columns,
    focus_schema,
)

# Credits netted into the row they belong to (a discount of the row's price, R-Disc-1)
DISCOUNT_CREDIT_TYPES = (
    "SUSTAINED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE",
    "FEE_UTILIZATION_OFFSET", "DISCOUNT", "FREE_TIER", "SUBSCRIPTION_BENEFIT", "RESELLER_MARGIN",
)
# Committed use discount credits: FOCUS CommitmentDiscountCategory
CUD_CREDIT_TYPES = {
    "COMMITTED_USAGE_DISCOUNT": "Usage",
    "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Spend",
    "FEE_UTILIZATION_OFFSET": "Spend",
}
CUD_TYPE = "Committed Use Discount"
CUD_FEE_SKU = r"(?i)^\s*commitment\b"
SPEND_CUD_FEE_SKU = r"(?i)dollar|spend"
DYNAMIC_SKU = r"(?i)\b(spot|preemptible)\b"
PARTNER_ISSUER = "Google Cloud partner"


@cache
def service_table() -> dict[str, tuple[str, str]]:
    return {r["service_description"]: (r["service_category"], r["service_subcategory"])
            for r in lookup_rows("gcp_services.csv")}


@cache
def region_names() -> dict[str, str]:
    return {r["region_id"]: r["region_name"] for r in lookup_rows("gcp_regions.csv")}


@cache
def unit_names() -> dict[str, str]:
    return {r["gcp_unit"]: r["focus_unit"] for r in lookup_rows("gcp_units.csv")}



def _credit_amounts(credits: pl.Expr, keep: pl.Expr | None = None) -> pl.Expr:
    """Sum of credits.amount (of the credits ``keep`` selects; null amounts count 0)."""
    amount = pl.element().struct.field("amount")
    picked = amount if keep is None else amount.filter(keep)
    return credits.list.eval(picked.fill_null(0)).list.sum().fill_null(0).cast(MONEY)


def _is_discount() -> pl.Expr:
    return pl.element().struct.field("type").is_in(DISCOUNT_CREDIT_TYPES).fill_null(False)


def _is_cud() -> pl.Expr:
    return pl.element().struct.field("type").is_in(list(CUD_CREDIT_TYPES)).fill_null(False)



def _with_lookups(raw: pl.LazyFrame, col: RawColumns) -> pl.LazyFrame:
    """The lookup tables looked up into __ columns (service, region, pricing and usage unit)."""
    services, units = service_table(), unit_names()
    location = col("location_location")
    return raw.with_columns(
        col("service_description").alias("__svc_key"),
        pl.coalesce(col("location_region"), pl.when(location != "global").then(location)).alias("__region_id"),
        col("usage_pricing_unit").alias("__pricing_unit_gcp"),
        col("usage_unit").alias("__usage_unit_gcp"),
    ).with_columns(
        mapped(pl.col("__svc_key"), {k: v[0] for k, v in services.items()}).alias("__svc_category"),
        mapped(pl.col("__svc_key"), {k: v[1] for k, v in services.items()}).alias("__svc_subcategory"),
        mapped(pl.col("__region_id"), region_names()).alias("__region_lookup"),
        mapped(pl.col("__pricing_unit_gcp"), units).alias("__pricing_unit_focus"),
        mapped(pl.col("__usage_unit_gcp"), units).alias("__usage_unit_focus"),
    )


TAG_SOURCES = ("labels", "project_labels", "tags", "system_labels")  # precedence order


def _tag_key(col: RawColumns) -> pl.Expr:
    """The row's label lists as one struct: Tags are computed once per distinct combination."""
    return pl.struct([col(n).fill_null(pl.lit([], RAW_TYPES[n])).alias(n) for n in TAG_SOURCES])


def _tags_json() -> pl.Expr:
    """Tags of a ``__tag_key`` struct: labels > project labels > resource manager tags
    (``<namespace>/<key>``) > system labels, the first of a key wins, as a JSON object."""
    kv = pl.List(pl.Struct(KEY_VALUE))
    key, value = pl.element().struct.field("key"), pl.element().struct.field("value")
    lists = pl.col("__tag_key").struct
    tag_entries = lists.field("tags").list.eval(pl.struct(
        pl.when(pl.element().struct.field("namespace").is_not_null())
        .then(pl.concat_str([pl.element().struct.field("namespace"), pl.lit("/"), key]))
        .otherwise(key).alias("key"), value.alias("value"))).cast(kv)
    merged = pl.concat_list([lists.field("labels"), lists.field("project_labels"), tag_entries,
                             lists.field("system_labels")]).list.eval(pl.element().filter(key.is_not_null()))
    members = merged.list.eval(
        pl.concat_str([json_string(key), pl.lit(":"),
                       pl.when(value.is_null()).then(pl.lit("null")).otherwise(json_string(value))])
        .filter(key.is_first_distinct()))
    return pl.when(members.list.len() > 0).then(pl.concat_str([pl.lit("{"), members.list.join(","), pl.lit("}")]))


def _tags_of_batch(keys: pl.Series) -> pl.Series:
    """Tags of a batch of rows: per-list expressions are slow, so they run on the batch's distinct
    label combinations only (few: labels repeat per resource), joined back exactly on the combination."""
    rows = keys.to_frame("__tag_key")
    distinct = rows.unique().with_columns(_tags_json().alias("__tags"))
    return rows.join(distinct, on="__tag_key", how="left", maintain_order="left")["__tags"]


def _tags(col: RawColumns) -> pl.Expr:
    return _tag_key(col).map_batches(_tags_of_batch, return_dtype=pl.String, is_elementwise=True)


@cache
def _period_bounds() -> tuple[dict[str, datetime], dict[str, datetime]]:
    """BillingPeriodStart and BillingPeriodEnd (UTC) of every month 2000-2099 by ``YYYY-MM``: the
    Pacific-time month (a lookup on x_BillingPeriod, instead of time-zone arithmetic on every row)."""
    pacific, utc = ZoneInfo(PACIFIC), ZoneInfo("UTC")
    starts, ends = {}, {}
    for year in range(2000, 2100):
        for month in range(1, 13):
            nxt = (year + 1, 1) if month == 12 else (year, month + 1)
            period = f"{year:04d}-{month:02d}"
            starts[period] = datetime(year, month, 1, tzinfo=pacific).astimezone(utc)
            ends[period] = datetime(*nxt, 1, tzinfo=pacific).astimezone(utc)
    return starts, ends


def _staged(raw: pl.LazyFrame, col: RawColumns) -> pl.LazyFrame:
    """Convertible rows with the lookups and every intermediate value computed once, as
    __ columns (an expression used by several FOCUS columns would otherwise be evaluated each time)."""
    valid = raw.filter(convertible(raw.collect_schema()))
    bp_starts, bp_ends = _period_bounds()
    rows = _with_lookups(valid, col).with_columns(
        _tags(col).alias("__tags"),
        mapped(pl.col("x_BillingPeriod"), bp_starts, pl.Datetime("us", "UTC")).alias("__bp_start"),
        mapped(pl.col("x_BillingPeriod"), bp_ends, pl.Datetime("us", "UTC")).alias("__bp_end"),
    )
    credits, cost = col("credits"), col("cost")
    sku_description = col("sku_description")
    resource_parts = col("resource_global_name").str.split("/")
    rows = rows.with_columns(
        col("cost_type").str.to_lowercase().fill_null("regular").alias("__ct"),
        _credit_amounts(credits, _is_discount()).alias("__netted"),
        _credit_amounts(credits, _is_cud()).alias("__cud"),
        credits.list.eval(pl.element().struct.field("type").filter(_is_cud())).list.first().alias("__first_cud"),
        credits.list.eval(pl.element().filter(~_is_discount() & (pl.element().struct.field("amount") != 0)
                                              .fill_null(False))).alias("__pay"),
        sku_description.str.contains(CUD_FEE_SKU).fill_null(False).alias("__commitment_sku"),
        pl.when(col("resource_global_name").str.starts_with("//") & (resource_parts.list.len() >= 5)).then(
            pl.concat_str([resource_parts.list.get(2, null_on_oob=True), pl.lit("/"),
                           resource_parts.list.get(-2, null_on_oob=True)])).alias("__rt"),
    )
    fee = (pl.col("__ct") == "regular") & pl.col("__commitment_sku")
    rows = rows.with_columns(
        pl.when(fee).then(pl.lit("Purchase"))
        .otherwise(mapped(pl.col("__ct"), {k: v[0] for k, v in COST_TYPES.items()})).alias("__cat"),
        pl.when(fee).then(pl.lit("Recurring"))
        .otherwise(mapped(pl.col("__ct"), {k: v[1] for k, v in COST_TYPES.items()})).alias("__freq"),
        fee.alias("__fee"),
        (cost + pl.col("__netted")).cast(MONEY).alias("__billed"),
        pl.col("__first_cud").is_not_null().alias("__has_cud"),
        ((pl.col("__ct") == "adjustment")
         | pl.any_horizontal(col(c).is_not_null() for c in ("adjustment_info_id", "adjustment_info_type",
                                                            "adjustment_info_mode"))).alias("__adjusted"),
    )
    priced = pl.col("__cat").is_in(["Usage", "Purchase"])
    rows = rows.with_columns(
        priced.alias("__priced"),
        (pl.col("__cat") == "Usage").alias("__usage"),
        pl.when(priced).then(col("usage_amount_in_pricing_units")).alias("__qty"),
        pl.when(pl.col("__cat") == "Usage").then(col("usage_amount")).alias("__consumed"),
        pl.coalesce(pl.col("__pricing_unit_focus"), pl.col("__pricing_unit_gcp")).alias("__punit"),
        pl.coalesce(pl.col("__usage_unit_focus"), pl.col("__usage_unit_gcp")).alias("__cunit"),
        pl.when(priced).then(pl.coalesce(col("cost_at_list"), cost)).otherwise(pl.col("__billed")).alias("__list"),
        pl.when(priced).then(cost).otherwise(pl.col("__billed")).alias("__contracted"),
        (pl.col("__adjusted") & (col("usage_start_time") < pl.col("__bp_start"))).fill_null(False).alias("__corr"),
        pl.when(priced & (pl.col("__fee") | pl.col("__has_cud"))).then(col("subscription_instance_id")).alias("__cd_id"),
    )
    def unit_price(total: str, fallback: str) -> pl.Expr:
        derived = exact_ratio(pl.col(total), pl.col("__qty"))
        price = pl.when(pl.col("__priced")).then(pl.coalesce(derived, pl.when(pl.col(total) == 0).then(col(fallback))))
        return pl.when(price >= 0).then(price)

    cd = pl.col("__cd_id").is_not_null()
    category = pl.when(cd).then(pl.when(pl.col("__fee")).then(
        pl.when(sku_description.str.contains(SPEND_CUD_FEE_SKU).fill_null(False)).then(pl.lit("Spend"))
        .otherwise(pl.lit("Usage"))).otherwise(mapped(pl.col("__first_cud"), CUD_CREDIT_TYPES)))
    service = col("service_description")
    rows = rows.with_columns(
        pl.when(pl.col("__cat") == "Tax").then(pl.concat_str([pl.lit("Tax"), pl.lit(" on ") + service],
                                                             ignore_nulls=True))
        .when(pl.col("__cat") == "Adjustment").then(pl.coalesce(
            col("adjustment_info_description"),
            pl.concat_str([pl.lit("Adjustment"), pl.lit(" (") + col("adjustment_info_type") + pl.lit(")"),
                           pl.lit(" of ") + service], ignore_nulls=True)))
        .otherwise(service).alias("__description"),
        unit_price("__list", "price_list_price").alias("__lup"),
        unit_price("__contracted", "price_effective_price").alias("__cup"),
        category.alias("__cd_category"),
        pl.when(pl.col("__priced") & col("sku_id").is_not_null() & (pl.col("__cat") != "Tax")).then(
            pl.when(col("price_tier_start_amount").is_not_null() & (col("price_tier_start_amount") != 0))
            .then(pl.concat_str([col("sku_id"), pl.lit("/tier-"),
                                 col("price_tier_start_amount").cast(pl.Float64).cast(pl.String)]))
            .otherwise(col("sku_id"))).alias("__sku_price"),
    )
    spend = pl.col("__cd_category") == "Spend"
    # CUD-covered usage: the quantity times the CUD credit's share of the cost, at most the quantity
    covered, qty = -pl.col("__cud"), pl.col("__qty")
    whole = ((cost > 0) & (covered >= cost)) | ((cost < 0) & (covered <= cost))
    covered_qty = pl.when(whole).then(qty).otherwise(exact_ratio(exact_product(qty, covered), cost))
    return rows.with_columns(
        pl.when(~cd).then(None)
        .when(spend & pl.col("__fee")).then(cost)
        .when(spend).then(-pl.col("__cud"))
        .when(pl.col("__fee")).then(pl.col("__qty"))
        .otherwise(covered_qty).alias("__cd_qty"))


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows, plus one Credit row per payment-type credit."""
    schema = raw.collect_schema()
    col = RawColumns(schema)
    rows = _staged(raw, col)
    c = pl.col
    priced, is_usage, is_purchase = c("__priced"), c("__usage"), c("__cat") == "Purchase"
    cd = c("__cd_id").is_not_null()
    cd_unit = pl.when(c("__cd_qty").is_not_null()).then(
        pl.when(c("__cd_category") == "Spend").then(col("currency")).otherwise(c("__punit")))
    sku_id = pl.when(c("__cat") == "Tax").then(None).otherwise(col("sku_id"))
    resource_id, service_name, project_id = col("resource_global_name"), col("service_description"), col("project_id")
    region_id = c("__region_id")
    region_name = pl.when(region_id.is_not_null()).then(c("__region_lookup"))
    resource_type = pl.when(resource_id.is_not_null()).then(pl.coalesce(c("__rt"), service_name))
    partner = col("invoice_publisher_type") == "PARTNER"
    third_party = col("transaction_type").is_not_null() & (col("transaction_type") != "GOOGLE")
    dynamic = col("sku_description").str.contains(DYNAMIC_SKU).fill_null(False)
    focus = {
        "AvailabilityZone": col("location_zone"),
        "BilledCost": c("__billed"),
        "BillingAccountId": col("billing_account_id"),
        "BillingAccountName": pl.lit(None, pl.String),
        "BillingAccountType": pl.lit("Billing Account"),
        "BillingCurrency": col("currency"),
        "BillingPeriodEnd": c("__bp_end"),
        "BillingPeriodStart": c("__bp_start"),
        "CapacityReservationId": pl.lit(None, pl.String),
        "CapacityReservationStatus": pl.lit(None, pl.String),
        "ChargeCategory": c("__cat"),
        "ChargeClass": pl.when(c("__corr")).then(pl.lit("Correction")),
        "ChargeDescription": pl.coalesce(col("sku_description"), c("__description")),
        "ChargeFrequency": c("__freq"),
        "ChargePeriodEnd": col("usage_end_time"),
        "ChargePeriodStart": col("usage_start_time"),
        "CommitmentDiscountCategory": c("__cd_category"),
        "CommitmentDiscountId": c("__cd_id"),
        "CommitmentDiscountName": pl.lit(None, pl.String),
        "CommitmentDiscountQuantity": c("__cd_qty"),
        "CommitmentDiscountStatus": pl.when(cd & is_usage).then(pl.lit("Used")),
        "CommitmentDiscountType": pl.when(cd).then(pl.lit(CUD_TYPE)),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": c("__consumed"),
        "ConsumedUnit": pl.when(c("__consumed").is_not_null()).then(c("__cunit")),
        "ContractedCost": c("__contracted"),
        "ContractedUnitPrice": c("__cup"),
        "EffectiveCost": c("__billed"),
        "InvoiceId": pl.lit(None, pl.String),
        "InvoiceIssuerName": pl.when(partner).then(pl.lit(PARTNER_ISSUER)).otherwise(pl.lit(PROVIDER)),
        "ListCost": c("__list"),
        "ListUnitPrice": c("__lup"),
        "PricingCategory": (pl.when(is_purchase).then(pl.lit("Standard"))
                            .when(is_usage & c("__has_cud")).then(pl.lit("Committed"))
                            .when(is_usage & dynamic).then(pl.lit("Dynamic"))
                            .when(is_usage).then(pl.lit("Standard"))),
        "PricingCurrency": col("currency"),
        "PricingCurrencyContractedUnitPrice": c("__cup"),
        "PricingCurrencyEffectiveCost": c("__billed"),
        "PricingCurrencyListUnitPrice": c("__lup"),
        "PricingQuantity": c("__qty"),
        "PricingUnit": pl.when(c("__qty").is_not_null()).then(c("__punit")),
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": pl.when(third_party & col("seller_name").is_not_null()).then(col("seller_name"))
        .otherwise(pl.lit(PROVIDER)),
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": pl.when(resource_id.is_not_null() & (col("resource_name") != resource_id)).then(
            col("resource_name")),
        "ResourceType": resource_type,
        "ServiceCategory": c("__svc_category").fill_null("Other"),
        "ServiceName": service_name,
        "ServiceSubcategory": c("__svc_subcategory").fill_null("Other (Other)"),
        "SkuId": sku_id,
        "SkuMeter": pl.when(sku_id.is_not_null()).then(col("sku_description")),
        "SkuPriceDetails": pl.lit(None, pl.String),
        "SkuPriceId": c("__sku_price"),
        "SubAccountId": project_id,
        "SubAccountName": col("project_name"),
        "SubAccountType": pl.when(project_id.is_not_null()).then(pl.lit("Project")),
        "Tags": c("__tags"),
        "x_ChargeType": col("cost_type"),
        "x_ServiceCode": col("service_id"),
        "x_UsageType": pl.lit(None, pl.String),
        "x_Operation": pl.lit(None, pl.String),
        "x_CostCategories": pl.lit(None, pl.String),
    }
    # x_SourceChanges / x_ProviderDataGaps: the "shared" entries hold on the derived credit rows too
    shared_changes = [
        masked_format(col("invoice_month").is_null(),
                      "BillingPeriod: invoice.month empty; {} taken from the delivery or, for a single file, the "
                      "Pacific-time month of usage_start_time", c("x_BillingPeriod")),
        pl.when(col("cost_type").is_null()).then(pl.lit("ChargeCategory: cost_type empty; regular assumed")),
        pl.when(col("sku_description").is_null() & c("__description").is_not_null()).then(
            pl.lit("ChargeDescription: sku.description empty; from cost_type, adjustment_info and service")),
        pl.when(partner).then(pl.lit(f"InvoiceIssuerName: invoice.publisher_type PARTNER; the partner is not "
                                     f"named in the export ({PARTNER_ISSUER})")),
        c("x_ParseWarnings").str.replace_all("; ", LIST_SEPARATOR, literal=True) if "x_ParseWarnings" in schema
        else pl.lit(None, pl.String),
        pl.when(col(DECLARED_CURRENCY).is_not_null()).then(pl.lit(DECLARED_CURRENCY_NOTE)),
    ]
    main_changes = [
        masked_format(c("__netted") != 0,
                      "BilledCost/EffectiveCost: cost {} + discount credits {} (sustained use, committed use, free "
                      "tier, contract: netted into the row, R-Disc-1)", col("cost"), c("__netted")),
        pl.when(priced & col("cost_at_list").is_null()).then(pl.lit("ListCost: cost_at_list absent; cost used")),
        pl.when(c("__lup").is_not_null() | c("__cup").is_not_null()).then(pl.lit(
            "ListUnitPrice/ContractedUnitPrice: ListCost / ContractedCost divided by usage.amount_in_pricing_units")),
        pl.when(c("__sku_price").is_not_null()).then(pl.lit(
            "SkuPriceId: sku.id (and price.tier_start_amount); the export has no price id")),
        masked_format(c("__qty").is_not_null() & (c("__pricing_unit_focus") != c("__pricing_unit_gcp")),
                      "PricingUnit: '{}' in FOCUS unit format", c("__pricing_unit_gcp")),
        masked_format(c("__consumed").is_not_null() & (c("__usage_unit_focus") != c("__usage_unit_gcp")),
                      "ConsumedUnit: '{}' in FOCUS unit format", c("__usage_unit_gcp")),
        pl.when(c("__svc_category").is_null() & priced).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        pl.when(resource_id.is_not_null() & c("__rt").is_null()).then(
            pl.lit("ResourceType: resource.global_name has no collection; ServiceName used")),
        pl.when(cd & is_usage & (c("__cd_category") != "Spend")).then(pl.lit(
            "CommitmentDiscountQuantity: usage.amount_in_pricing_units x the CUD-covered share of cost")),
    ]
    end, start = col("usage_end_time"), col("usage_start_time")
    shared_gaps = [
        pl.when(end.is_null()).then(pl.lit("R-ChargePeriod-1")),
        pl.when(end <= start).then(pl.lit("R-ChargePeriod-2")),
        pl.when(service_name.is_null()).then(pl.lit("R-ServiceName-1")),
        pl.when(region_id.is_not_null() & region_name.is_null()).then(pl.lit("R-RegionName-1")),
        pl.when(project_id.is_not_null() & col("project_name").is_null()).then(pl.lit("R-SubAccountName-1")),
        pl.when(resource_id.is_not_null() & resource_type.is_null()).then(pl.lit("R-ResourceType-1")),
    ]
    prices_missing = priced & (c("__lup").is_null() | c("__cup").is_null())
    main_gaps = [
        pl.when(priced & sku_id.is_null()).then(pl.lit("R-SkuId-1")),
        pl.when(priced & c("__sku_price").is_null()).then(pl.lit("R-SkuPriceId-1")),
        pl.when(priced & c("__qty").is_null()).then(pl.lit("R-PricingQuantity-1")),
        pl.when(c("__qty").is_not_null() & c("__punit").is_null()).then(pl.lit("R-PricingUnit-1")),
        pl.when(is_usage & c("__consumed").is_null()).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(c("__consumed").is_not_null() & c("__cunit").is_null()).then(pl.lit("R-ConsumedUnit-1")),
        pl.when(prices_missing).then(pl.lit("R-UnitPrice-1")),
        pl.when(prices_missing).then(pl.lit("R-PCUnitPrice-1")),
        pl.when(cd & priced & c("__cd_qty").is_null()).then(pl.lit("R-CDQuantity-1")),
        pl.when(c("__cd_qty").is_not_null() & cd_unit.is_null()).then(pl.lit("R-CDUnit-1")),
        # GCP CUD fees are billed hourly with the usage they cover and the export does not link a fee to
        # that usage: the fee cannot be amortized, so it stays the fee row's EffectiveCost
        pl.when(is_purchase & cd & (c("__billed") != 0)).then(pl.lit("R-EffectiveCost-2")),
    ]
    lineage = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
    extras = [n for n in schema.names() if n not in RAW_TYPES and not n.startswith(("x_", "__"))]
    own_x = {
        "x_Cost": col("cost"),
        "x_Credits": col("credits"),
        "x_InvoiceMonth": col("invoice_month"),
        "x_InvoicePublisherType": col("invoice_publisher_type"),
        "x_ProjectNumber": col("project_number"),
        "x_ProjectAncestryNumbers": col("project_ancestry_numbers"),
        "x_ProjectAncestors": col("project_ancestors"),
        "x_Location": col("location_location"),
        "x_Country": col("location_country"),
        "x_CurrencyConversionRate": col("currency_conversion_rate"),
        "x_ExportTime": col("export_time"),
        "x_AdjustmentInfo": pl.struct([col(f"adjustment_info_{k}").alias(k)
                                       for k in ("id", "description", "type", "mode")]),
        "x_Price": pl.struct([col(f"price_{k}").alias(k) for k in (
            "effective_price", "effective_price_default", "list_price", "list_price_consumption_model",
            "tier_start_amount", "unit", "pricing_unit_quantity")]
            + [col(k).alias(k) for k in ("cost_at_effective_price_default", "cost_at_list_consumption_model")]),
        "x_ConsumptionModel": pl.struct([col("consumption_model_id").alias("id"),
                                         col("consumption_model_description").alias("description")]),
        "x_TransactionType": col("transaction_type"),
        "x_SubscriptionInstanceId": col("subscription_instance_id"),
        **{f"x_{n}": pl.col(n) for n in extras},
    }
    rows = rows.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(shared_changes).alias("__changes_shared"),
        joined_strings(main_changes).alias("__changes_main"),
        joined_strings(shared_gaps).alias("__gaps_shared"),
        joined_strings(main_gaps).alias("__gaps_main"),
        *[pl.col(n) for n in lineage],
        *[expr.alias(name) for name, expr in own_x.items()],
        c("__pay"),
    )
    # One pass: a row with n payment credits is emitted n + 1 times; copies 1..n become Credit rows.
    expanded = rows.with_columns(pl.int_ranges(0, c("__pay").list.len().fill_null(0) + 1).alias("__k")).explode("__k")
    return (_as_credit_rows(expanded)
            .with_columns(split_list(c("x_SourceChanges")), split_list(c("x_ProviderDataGaps")))
            .select([whitespace_to_null(c(name)).alias(name) if name in FOCUS_STRING_COLUMNS
                     else c(name).cast(dtype) for name, dtype in focus_schema().items()]
                    + [c(n) for n in own_x]))


FOCUS_STRING_COLUMNS = frozenset(c.name for c in focus_columns() if c.data_type in ("String", "JSON"))
CREDIT_ROW_NULLS = (
    "ListUnitPrice", "ContractedUnitPrice", "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice",
    "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit", "PricingCategory",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit", "SkuPriceId", "SkuPriceDetails",
    "x_Cost",
)


def _as_credit_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Copies k >= 1 become the row's k-th payment credit: ChargeCategory Credit, cost = the credit."""
    k = pl.col("__k")
    is_credit = k > 0
    credit = pl.col("__pay").list.get(k - 1, null_on_oob=True)
    amount = credit.struct.field("amount").cast(MONEY)
    schema = rows.collect_schema()
    note = masked_format(is_credit, "derived: {} credit '{}' of row {} ({}) as its own Credit row (a form of "
                         "payment, not a discount of the row's price)", credit.struct.field("type").fill_null("untyped"),
                         pl.coalesce(credit.struct.field("name"), credit.struct.field("id")).fill_null(""),
                         pl.col("x_SourceRow"), pl.col("x_SourceFile"))
    overrides = {
        "ChargeCategory": pl.lit("Credit"),
        "BilledCost": amount,
        "EffectiveCost": amount,
        "ListCost": amount,
        "ContractedCost": amount,
        "PricingCurrencyEffectiveCost": amount,
        "ChargeDescription": pl.coalesce(credit.struct.field("full_name"), credit.struct.field("name"),
                                         credit.struct.field("id")),
        "x_Credits": pl.col("__pay").list.slice(k - 1, 1),
        "x_RowId": derived_row_id(pl.col("x_RowId"), "credit") + k.cast(pl.String),
        **{name: pl.lit(None, schema[name]) for name in CREDIT_ROW_NULLS},
    }
    return rows.with_columns(
        [pl.when(is_credit).then(value).otherwise(pl.col(name)).alias(name) for name, value in overrides.items()]
        + [pl.when(is_credit).then(joined_strings([pl.col("__changes_shared"), note]))
           .otherwise(joined_strings([pl.col("__changes_shared"), pl.col("__changes_main")])).alias("x_SourceChanges"),
           pl.when(is_credit).then(pl.col("__gaps_shared"))
           .otherwise(joined_strings([pl.col("__gaps_shared"), pl.col("__gaps_main")])).alias("x_ProviderDataGaps")]
    ).drop("__k", "__pay", "__changes_shared", "__changes_main", "__gaps_shared", "__gaps_main")

