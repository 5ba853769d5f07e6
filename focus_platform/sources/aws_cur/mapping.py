"""AWS CUR typed raw rows → FOCUS 1.2 rows (``to_focus``).

The decisions per line item type are the table ``LINE_ITEM_TYPES`` below, documented in the README.
BilledCost is the unblended cost (what the invoice charges), EffectiveCost the amortized cost (the AWS /
CID amortized formula), and the unused part of each RI and savings plan becomes its own Usage row with
CommitmentDiscountStatus Unused. Money stays Decimal(38, 12) throughout (unit prices of the unused rows
are exact Decimal quotients, rounded to 12 decimals).

EffectiveCost when an amortization column is empty (a CUR 2.0 export with those columns deselected):
a DiscountedUsage row takes ``reservation/AmortizedUpfrontCostForUsage`` + ``reservation/RecurringFeeForUsage``
(AWS documents reservation/EffectiveCost as their sum), a SavingsPlanCoveredUsage row
``savingsPlan/SavingsPlanRate`` x ``lineItem/UsageAmount``, recorded per row in x_SourceChanges. Where no
column carries the amount (also an RIFee or SavingsPlanRecurringFee whose unused-commitment columns are all
empty), EffectiveCost keeps 0 and the row records ``EffectiveCost unknown`` (a provider-data gap).
A row whose currency is the source's declared billing currency (the file has no currency column) records
``DECLARED_CURRENCY_NOTE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import polars as pl

from focus_platform.sources.aws_cur.raw import (
    CURRENCY_COLUMN,
    DECLARED_CURRENCY,
    DROPPED_LINE_ITEM_TYPES,
    LINEAGE_NAMES,
    RawColumns,
    quarantine_reason,
)
from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    LIST_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    derived_row_id,
    effective_cost_unknown_note,
    exact_product,
    exact_ratio,
    joined_strings,
    lookup_rows,
    mapped,
    masked_format,
    split_list,
    whitespace_to_null,
    with_derived,
)
from focus_platform.spec.columns import (
    MONEY,
    focus_columns,
    focus_schema,
)
from focus_platform.spec.rules import row_rules

PROVIDER = "AWS"
AWS_INC = "Amazon Web Services, Inc."


# ---------------------------------------------------------------------------------------------
# The mapping decisions, one row per line item type.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineItemMapping:
    charge_category: str
    charge_frequency: str
    pricing_category: str | None
    commitment: str | None = None  # "ri" or "sp": the row carries that commitment's id
    commitment_status: str | None = None


LINE_ITEM_TYPES: dict[str, LineItemMapping] = {
    "Usage": LineItemMapping("Usage", "Usage-Based", "Standard"),  # Spot usage: Dynamic
    "DiscountedUsage": LineItemMapping("Usage", "Usage-Based", "Committed", "ri", "Used"),
    "SavingsPlanCoveredUsage": LineItemMapping("Usage", "Usage-Based", "Committed", "sp", "Used"),
    "RIFee": LineItemMapping("Purchase", "Recurring", "Standard", "ri"),
    "SavingsPlanRecurringFee": LineItemMapping("Purchase", "Recurring", "Standard", "sp"),
    "SavingsPlanUpfrontFee": LineItemMapping("Purchase", "One-Time", "Standard", "sp"),
    "Fee": LineItemMapping("Purchase", "One-Time", "Standard", "ri"),  # RI upfront fee carries the RI ARN
    "Tax": LineItemMapping("Tax", "One-Time", None),
    "Credit": LineItemMapping("Credit", "One-Time", None),
    "Refund": LineItemMapping("Credit", "One-Time", None),
    "EdpDiscount": LineItemMapping("Credit", "Usage-Based", None),
    "PrivateRateDiscount": LineItemMapping("Credit", "Usage-Based", None),
    "BundledDiscount": LineItemMapping("Credit", "Usage-Based", None),
    "Discount": LineItemMapping("Credit", "Usage-Based", None),
    "DistributorDiscount": LineItemMapping("Credit", "Usage-Based", None),
}
# SavingsPlanNegation (raw.DROPPED_LINE_ITEM_TYPES) nets out SavingsPlanCoveredUsage's on-demand cost on
# the invoice. The covered row already has BilledCost 0, so the negation row is dropped from FOCUS (kept
# in raw_aws_cur): a documented row contraction.

COMMITMENT_TYPE = {"ri": ("Usage", "Reserved Instance"), "sp": ("Spend", "Savings Plan")}


@cache
def service_table() -> dict[str, tuple[str, str]]:
    return {r["product_code"]: (r["service_category"], r["service_subcategory"])
            for r in lookup_rows("aws_services.csv")}


@cache
def unit_names() -> dict[str, str]:
    """AWS pricing units → FOCUS unit format (Hrs → Hours, GB-Mo → GB-Months); others as delivered."""
    return {r["aws_unit"]: r["focus_unit"] for r in lookup_rows("aws_units.csv")}


@cache
def region_names() -> dict[str, str]:
    return {r["region_code"]: r["region_name"] for r in lookup_rows("aws_regions.csv")}


def _line_item_lookup(field: str) -> pl.Expr:
    return pl.col(f"__li_{field}")


def _with_lookups(raw: pl.LazyFrame, col: RawColumns) -> pl.LazyFrame:
    """The mapping tables looked up into __ columns (line item type, service, region, unit)."""
    t = pl.col("line_item_line_item_type")
    pricing_unit_raw = col("pricing_unit")
    product_code = pl.col("__product_code")
    services = service_table()
    return raw.with_columns(
        t.alias("__type"),
        col("line_item_product_code").alias("__product_code"),
        pl.coalesce(col.product("region_code", "product_region_code"),
                    col.product("region", "product_region")).alias("__region_id"),
        pl.when(pricing_unit_raw.is_null() & (t == "RIFee")).then(pl.lit("Hrs"))
        .otherwise(pricing_unit_raw).alias("__unit_aws"),
    ).with_columns(
        *[mapped(pl.col("__type"), {k: getattr(m, field) for k, m in LINE_ITEM_TYPES.items()}).alias(f"__li_{field}")
          for field in ("charge_category", "charge_frequency", "pricing_category", "commitment", "commitment_status")],
        mapped(product_code, {k: v[0] for k, v in services.items()}).alias("__svc_category"),
        mapped(product_code, {k: v[1] for k, v in services.items()}).alias("__svc_subcategory"),
        mapped(pl.col("__region_id"), region_names()).alias("__region_lookup"),
        mapped(pl.col("__unit_aws"), unit_names()).alias("__unit_focus"),
    )


def _end_of_day_fix(end: pl.Expr) -> pl.Expr:
    """AWS writes some exclusive ends as 23:59:59 of the last day: move them to the next midnight."""
    return (end.dt.hour() == 23) & (end.dt.minute() == 59) & (end.dt.second() == 59)


def _tags(resource_tags: pl.Expr) -> dict[str, pl.Expr]:
    """Resource tags → FOCUS Tags (per distinct value, ``with_derived``): user keys without the
    `user:`/`user_` prefix, AWS keys keep `aws:`."""
    # literal patterns at a key's start (after '{' or ','; inside a JSON string a quote is escaped)
    return {"__tags": resource_tags.str.replace_many(
        ['{"user:', ',"user:', '{"user_', ',"user_', '{"aws_', ',"aws_'],
        ['{"', ',"', '{"', ',"', '{"aws:', ',"aws:'])}


ZERO = pl.lit(0, MONEY)


def _billed_cost(col: RawColumns) -> pl.Expr:
    """BilledCost: the unblended cost; 0 on savings-plan-covered usage (paid through the plan's fee)."""
    t = pl.col("line_item_line_item_type")
    return pl.when(t == "SavingsPlanCoveredUsage").then(ZERO).otherwise(col("line_item_unblended_cost"))


def _unused_reservation(col: RawColumns) -> pl.Expr:
    """The unused part of an RI in the period (on its RIFee row): unused amortized upfront + unused recurring fee."""
    return (col("reservation_unused_amortized_upfront_fee_for_billing_period").fill_null(ZERO)
            + col("reservation_unused_recurring_fee").fill_null(ZERO))


def _unused_commitment(col: RawColumns) -> pl.Expr:
    """The unused part of a savings plan (on its recurring fee row): amortized upfront + recurring
    commitment - used commitment."""
    return (col("savings_plan_amortized_upfront_commitment_for_billing_period").fill_null(ZERO)
            + col("savings_plan_recurring_commitment_for_billing_period").fill_null(ZERO)
            - col("savings_plan_used_commitment").fill_null(ZERO))


RI_PARTS = "reservation/AmortizedUpfrontCostForUsage + reservation/RecurringFeeForUsage"
SP_PARTS = "savingsPlan/SavingsPlanRate x lineItem/UsageAmount"


def _effective_cost(col: RawColumns) -> tuple[pl.Expr, list[pl.Expr]]:
    """EffectiveCost of a row and its x_SourceChanges notes: covered usage at its commitment's effective
    cost (from the columns AWS documents as carrying it when the effective cost column is empty),
    commitment fees 0 (their unused part becomes its own row), everything else its unblended cost."""
    t = pl.col("line_item_line_item_type")
    discounted, covered = t == "DiscountedUsage", t == "SavingsPlanCoveredUsage"
    ri_effective = col("reservation_effective_cost")
    ri_parts = col("reservation_amortized_upfront_cost_for_usage") + col("reservation_recurring_fee_for_usage")
    sp_effective = col("savings_plan_savings_plan_effective_cost")
    sp_parts = exact_product(col("savings_plan_savings_plan_rate"), col("line_item_usage_amount"))
    effective = (
        pl.when(discounted).then(pl.coalesce(ri_effective, ri_parts, ZERO))
        .when(covered).then(pl.coalesce(sp_effective, sp_parts, ZERO))
        .when(t.is_in(["RIFee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee"])).then(ZERO)
        .when((t == "Fee") & col("reservation_reservation_a_r_n").is_not_null()).then(ZERO)
        .otherwise(col("line_item_unblended_cost"))
    )
    unused_columns = {  # fee type: its unused-commitment columns (raw name: as AWS names it)
        "RIFee": {"reservation_unused_amortized_upfront_fee_for_billing_period":
                  "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
                  "reservation_unused_recurring_fee": "reservation/UnusedRecurringFee"},
        "SavingsPlanRecurringFee": {
            "savings_plan_amortized_upfront_commitment_for_billing_period":
                "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod",
            "savings_plan_recurring_commitment_for_billing_period": "savingsPlan/RecurringCommitmentForBillingPeriod",
            "savings_plan_used_commitment": "savingsPlan/UsedCommitment"},
    }
    notes = [
        pl.when(discounted & ri_effective.is_null() & ri_parts.is_not_null()).then(
            pl.lit(f"EffectiveCost: reservation/EffectiveCost empty; {RI_PARTS}")),
        pl.when(covered & sp_effective.is_null() & sp_parts.is_not_null()).then(
            pl.lit(f"EffectiveCost: savingsPlan/SavingsPlanEffectiveCost empty; {SP_PARTS}")),
        effective_cost_unknown_note(discounted & ri_effective.is_null() & ri_parts.is_null(),
                                    f"reservation/EffectiveCost and {RI_PARTS}"),
        effective_cost_unknown_note(covered & sp_effective.is_null() & sp_parts.is_null(),
                                    f"savingsPlan/SavingsPlanEffectiveCost and {SP_PARTS}"),
        *[effective_cost_unknown_note((t == fee) & pl.all_horizontal([col(c).is_null() for c in columns]),
                                      " and ".join(columns.values()) + " (the unused commitment)")
          for fee, columns in unused_columns.items()],
    ]
    return effective, notes


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows (plus one Unused row per under-used commitment)."""
    schema = raw.collect_schema()
    col = RawColumns(schema)
    zero = ZERO
    t = pl.col("line_item_line_item_type")
    valid = raw.filter(quarantine_reason(schema).is_null() & ~t.is_in(DROPPED_LINE_ITEM_TYPES))
    converted = _with_lookups(valid, col)
    if col.has("resource_tags"):
        converted = with_derived(converted, pl.col("resource_tags"), _tags)
    charge_category = _line_item_lookup("charge_category")
    is_usage, is_purchase = charge_category == "Usage", charge_category == "Purchase"
    is_tax = charge_category == "Tax"
    is_credit = charge_category == "Credit"
    commitment = _line_item_lookup("commitment")
    ri_arn, sp_arn = col("reservation_reservation_a_r_n"), col("savings_plan_savings_plan_a_r_n")
    cd_id = pl.when(commitment == "ri").then(ri_arn).when(commitment == "sp").then(sp_arn)
    cd_kind = pl.when(cd_id.is_null()).then(None).otherwise(commitment)
    unblended, unblended_rate = col("line_item_unblended_cost"), col("line_item_unblended_rate")
    usage_amount = col("line_item_usage_amount")
    public_rate, public_cost = col("pricing_public_on_demand_rate"), col("pricing_public_on_demand_cost")
    product_code = col("line_item_product_code")
    usage_type = col("line_item_usage_type")
    pricing_unit_raw = col("pricing_unit")
    is_ri_fee = t == "RIFee"
    pricing_unit_aws = pl.col("__unit_aws")
    pricing_unit = pl.coalesce(pl.col("__unit_focus"), pricing_unit_aws)
    # the note of a renamed unit, looked up per unit rather than formatted per row (most rows have one)
    unit_note = mapped(pricing_unit_aws, {aws: f"PricingUnit/ConsumedUnit: AWS unit '{aws}' in FOCUS unit format"
                                          for aws, focus in unit_names().items() if focus != aws})

    service_name_raw = col.product("product_name", "product_product_name")
    service_name = pl.coalesce(service_name_raw, product_code)
    category = pl.col("__svc_category").fill_null("Other")
    subcategory = pl.col("__svc_subcategory").fill_null("Other (Other)")
    service_unmapped = pl.col("__svc_category").is_null()
    region_id = pl.col("__region_id")
    region_lookup = pl.col("__region_lookup")
    location_name = pl.when(col.product("location_type", "product_location_type") == "AWS Region").then(
        col.product("location", "product_location"))
    region_name = pl.when(region_id.is_not_null()).then(pl.coalesce(region_lookup, location_name))
    resource_id = col("line_item_resource_id")
    product_family = col.product("product_family", "product_product_family")
    invoicing_entity = col("bill_invoicing_entity")
    legal_entity = col("line_item_legal_entity")
    marketplace = col("bill_billing_entity") == "AWS Marketplace"

    usage_start = col("line_item_usage_start_date", pl.Datetime("us", "UTC"))
    usage_end = col("line_item_usage_end_date", pl.Datetime("us", "UTC"))
    end_fixed = _end_of_day_fix(usage_end).fill_null(False)
    charge_end = pl.when(end_fixed).then(usage_end.dt.truncate("1s") + pl.duration(seconds=1)).otherwise(usage_end)
    bp_start = pl.coalesce(col("bill_billing_period_start_date", pl.Datetime("us", "UTC")),
                           usage_start.dt.truncate("1mo"))
    bp_end = pl.coalesce(col("bill_billing_period_end_date", pl.Datetime("us", "UTC")),
                         usage_start.dt.truncate("1mo").dt.offset_by("1mo"))

    billed = _billed_cost(col)
    effective, effective_notes = _effective_cost(col)
    # Purchases (fees) have no public on-demand price: their list and contracted price is the fee.
    list_unit_price = (pl.when(is_tax | is_credit).then(None).when(is_purchase).then(unblended_rate)
                       .otherwise(public_rate))
    list_cost = (pl.when(is_tax | is_credit).then(billed).when(is_purchase).then(unblended)
                 .otherwise(pl.coalesce(public_cost, unblended)))
    contracted_unit_price = (pl.when(is_tax | is_credit).then(None)
                             .when(t == "DiscountedUsage").then(public_rate).otherwise(unblended_rate))
    contracted_cost = (pl.when(is_tax | is_credit).then(billed)
                       .when(t == "DiscountedUsage").then(pl.coalesce(public_cost, unblended))
                       .otherwise(unblended))
    pricing_quantity = pl.when(is_usage | is_purchase).then(usage_amount)
    spot = usage_type.str.contains("SpotUsage").fill_null(False) | (col("pricing_term") == "Spot").fill_null(False)
    pricing_category = pl.when((t == "Usage") & spot).then(pl.lit("Dynamic")).otherwise(
        _line_item_lookup("pricing_category"))
    correction = (usage_start < bp_start).fill_null(False)
    currency = col(CURRENCY_COLUMN)
    pricing_currency = pl.coalesce(col("pricing_currency"), currency)
    same_currency = pricing_currency == currency
    # Commitment quantities: savings plans in money (the recurring commitment on the fee row, the
    # upfront fee on its own row); RIs in normalized hours where the export has them (size
    # flexibility: one RI covers several instance sizes), else in hours.
    normalized = col("line_item_normalized_usage_amount")
    ri_normalized = normalized.is_not_null() & (normalized != 0)
    cd_quantity = (
        pl.when(cd_id.is_null() | ~(is_usage | is_purchase)).then(None)
        .when(t == "SavingsPlanCoveredUsage").then(effective)
        .when(t == "SavingsPlanRecurringFee").then(col("savings_plan_recurring_commitment_for_billing_period"))
        .when(t == "SavingsPlanUpfrontFee").then(unblended)
        .when(ri_normalized).then(normalized)
        .otherwise(usage_amount)
    )
    cd_unit = (pl.when(cd_quantity.is_null()).then(None).when(cd_kind == "sp").then(currency)
               .when(ri_normalized).then(pl.lit("Normalized Hours")).otherwise(pricing_unit))
    sku = pl.when(is_tax).then(None).otherwise(col.product("sku", "product_sku"))
    # SkuPriceId names one price of one SKU. pricing/RateCode starts with the SKU; the older
    # pricing/RateId does not, and one RI's RateId covers several SKUs (size flexibility), so it is
    # qualified by the SKU: "<sku>.<rate id>".
    rate = pl.coalesce(col("pricing_rate_code"), col("pricing_rate_id"))
    sku_price = (pl.when(is_tax | rate.is_null()).then(None)
                 .when(sku.is_null() | rate.str.starts_with(pl.concat_str([sku, pl.lit(".")]))).then(rate)
                 .otherwise(pl.concat_str([sku, pl.lit("."), rate])))
    capacity_id = col("capacity_reservation_capacity_reservation_a_r_n")

    focus = {
        "AvailabilityZone": col("line_item_availability_zone"),
        "BilledCost": billed,
        "BillingAccountId": col("bill_payer_account_id"),
        "BillingAccountName": col("bill_payer_account_name"),
        "BillingAccountType": pl.lit("Payer Account"),
        "BillingCurrency": currency,
        "BillingPeriodEnd": bp_end,
        "BillingPeriodStart": bp_start,
        "CapacityReservationId": capacity_id,
        "CapacityReservationStatus": pl.when(capacity_id.is_not_null() & is_usage).then(
            col("capacity_reservation_capacity_reservation_status")),
        "ChargeCategory": charge_category,
        "ChargeClass": pl.when(correction).then(pl.lit("Correction")),
        "ChargeDescription": col("line_item_line_item_description"),
        # Fees: an RI upfront fee or a bill of type Purchase is one-time; support and subscriptions recur
        "ChargeFrequency": pl.when((t == "Fee") & ri_arn.is_null() & (col("bill_bill_type") != "Purchase").fill_null(True))
        .then(pl.lit("Recurring")).otherwise(_line_item_lookup("charge_frequency")),
        "ChargePeriodEnd": charge_end,
        "ChargePeriodStart": usage_start,
        "CommitmentDiscountCategory": pl.when(cd_kind == "ri").then(pl.lit(COMMITMENT_TYPE["ri"][0]))
        .when(cd_kind == "sp").then(pl.lit(COMMITMENT_TYPE["sp"][0])),
        "CommitmentDiscountId": cd_id,
        "CommitmentDiscountName": pl.lit(None, pl.String),
        "CommitmentDiscountQuantity": cd_quantity,
        "CommitmentDiscountStatus": pl.when(cd_id.is_not_null() & is_usage).then(_line_item_lookup("commitment_status")),
        "CommitmentDiscountType": pl.when(cd_kind == "ri").then(pl.lit(COMMITMENT_TYPE["ri"][1]))
        .when(cd_kind == "sp").then(pl.lit(COMMITMENT_TYPE["sp"][1])),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": pl.when(is_usage).then(usage_amount),
        "ConsumedUnit": pl.when(is_usage & usage_amount.is_not_null()).then(pricing_unit),
        "ContractedCost": contracted_cost,
        "ContractedUnitPrice": contracted_unit_price,
        "EffectiveCost": effective,
        "InvoiceId": col("bill_invoice_id"),
        "InvoiceIssuerName": pl.coalesce(invoicing_entity,
                                          pl.when(marketplace).then(pl.lit(AWS_INC)).otherwise(legal_entity),
                                          pl.lit(AWS_INC)),
        "ListCost": list_cost,
        "ListUnitPrice": list_unit_price,
        "PricingCategory": pricing_category,
        "PricingCurrency": pricing_currency,
        "PricingCurrencyContractedUnitPrice": pl.when(same_currency).then(contracted_unit_price),
        "PricingCurrencyEffectiveCost": pl.when(same_currency).then(effective),
        "PricingCurrencyListUnitPrice": pl.when(same_currency).then(list_unit_price),
        "PricingQuantity": pricing_quantity,
        "PricingUnit": pl.when(pricing_quantity.is_not_null()).then(pricing_unit),
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": pl.coalesce(legal_entity, pl.lit(AWS_INC)),
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": pl.lit(None, pl.String),
        "ResourceType": pl.when(resource_id.is_not_null()).then(pl.coalesce(product_family, service_name)),
        "ServiceCategory": category,
        "ServiceName": service_name,
        "ServiceSubcategory": subcategory,
        "SkuId": sku,
        "SkuMeter": pl.when(sku.is_not_null()).then(usage_type),
        "SkuPriceDetails": pl.lit(None, pl.String),
        "SkuPriceId": sku_price,
        "SubAccountId": col("line_item_usage_account_id"),
        "SubAccountName": col("line_item_usage_account_name"),
        "SubAccountType": pl.when(col("line_item_usage_account_id").is_not_null()).then(pl.lit("Linked Account")),
        "Tags": pl.col("__tags") if col.has("resource_tags") else pl.lit(None, pl.String),
        "x_ChargeType": t,
        "x_ServiceCode": product_code,
        "x_UsageType": usage_type,
        "x_Operation": col("line_item_operation"),
        "x_CostCategories": col("cost_category") if col.has("cost_category") else pl.lit(None, pl.String),
    }
    changes = [
        pl.when(end_fixed).then(pl.lit("ChargePeriodEnd: 23:59:59 end moved to the next midnight (exclusive end)")),
        pl.when(invoicing_entity.is_null()).then(pl.lit(
            "InvoiceIssuerName: bill/InvoicingEntity absent (CURs before 2021); derived from "
            "lineItem/LegalEntity, or Amazon Web Services, Inc. for AWS Marketplace")),
        pl.when(legal_entity.is_null()).then(pl.lit("PublisherName: lineItem/LegalEntity empty; Amazon Web Services, Inc.")),
        pl.when(service_name_raw.is_null()).then(pl.lit("ServiceName: product/ProductName empty; lineItem/ProductCode used")),
        pl.when(pricing_unit_raw.is_null() & is_ri_fee).then(pl.lit("PricingUnit: empty on RIFee; Hours (RI fees are hourly)")),
        pl.when(is_usage & (t != "DiscountedUsage") & public_cost.is_null()).then(
            pl.lit("ListCost: pricing/publicOnDemandCost empty; unblended cost used")),
        pl.when(service_unmapped & (is_usage | is_purchase)).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        unit_note,
        *effective_notes,
        pl.when(col(DECLARED_CURRENCY).is_not_null()).then(pl.lit(DECLARED_CURRENCY_NOTE)),
    ]
    gaps = [
        pl.when(col("line_item_usage_account_name").is_null()).then(pl.lit("R-SubAccountName-1")),
        pl.when(pricing_unit.is_null()).then(pl.lit("R-PricingUnit-1")),
        pl.when(pricing_unit.is_null()).then(pl.lit("R-ConsumedUnit-1")),
        pl.when(pricing_unit.is_null()).then(pl.lit("R-CDUnit-1")),
        pl.when(list_unit_price.is_null()).then(pl.lit("R-UnitPrice-1")),
        pl.when(list_unit_price.is_null() | contracted_unit_price.is_null() | ~same_currency)
        .then(pl.lit("R-PCUnitPrice-1")),
        pl.when(service_name.is_null()).then(pl.lit("R-ServiceName-1")),
        pl.when(~same_currency).then(pl.lit("R-PCEffectiveCost-1")),
        pl.when(contracted_unit_price.is_null()).then(pl.lit("R-UnitPrice-1")),
        pl.when(sku.is_null()).then(pl.lit("R-SkuId-1")),
        pl.when(sku_price.is_null()).then(pl.lit("R-SkuPriceId-1")),
        pl.when(usage_amount.is_null()).then(pl.lit("R-PricingQuantity-1")),
        pl.when(usage_amount.is_null()).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(region_id.is_not_null() & region_name.is_null()).then(pl.lit("R-RegionName-1")),
        pl.when(usage_end <= usage_start).then(pl.lit("R-ChargePeriod-2")),
        pl.when(usage_end.is_null()).then(pl.lit("R-ChargePeriod-1")),
    ]
    # Rules whose failure on these rows is the provider's (AWS rounds each cost on its own, so public
    # cost and rate x amount differ on some rows; fees lack a public price): marked only on the rows
    # that do fail them (after the Unused rows are made, on each row's own values).
    gap_if_violated = {
        "R-ListCost-1b": (~is_usage & (public_cost.is_null() | unblended_rate.is_null()))
        | (public_cost.is_not_null() & public_rate.is_not_null()),
        "R-ContractedCost-1b": ~is_usage | unblended_rate.is_not_null(),
        "R-CDQuantity-1": cd_quantity.is_null(),
    }
    unused_cost = (pl.when(is_ri_fee).then(_unused_reservation(col)).when(t == "SavingsPlanRecurringFee")
                   .then(_unused_commitment(col)).otherwise(zero))
    unused_quantity = (pl.when(is_ri_fee).then(col("reservation_unused_quantity"))
                       .when(t == "SavingsPlanRecurringFee").then(_unused_commitment(col)))
    unused_cd_quantity = (pl.when(is_ri_fee & ri_normalized)
                          .then(col("reservation_unused_normalized_unit_quantity"))
                          .otherwise(unused_quantity))
    # A fee row with an unused part is read twice (exploded while the frame is its narrowest: the raw
    # columns the mapping reads); the copy becomes the Unused row.
    expanded = converted.with_columns(
        pl.when((unused_cost != 0) & cd_id.is_not_null()).then(pl.lit([False, True])).otherwise(pl.lit([False]))
        .alias("__unused")
    ).explode("__unused")
    rows = expanded.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(changes).alias("x_SourceChanges"),
        joined_strings(gaps).alias("x_ProviderDataGaps"),
        *[pl.col(n) for n in LINEAGE_NAMES],
        *[flag.fill_null(False).alias(f"__gap {rule}") for rule, flag in gap_if_violated.items()],
        unused_cost.alias("__unused_cost"),
        unused_quantity.alias("__unused_quantity"),
        unused_cd_quantity.alias("__unused_cd_quantity"),
        pl.col("__unused"),
    )
    violates = {r.id: r.violates for r in row_rules() if r.id in gap_if_violated}
    gaps_found = joined_strings([pl.col("x_ProviderDataGaps"), *[
        pl.when(pl.col(f"__gap {rule}") & violates[rule]().fill_null(False)).then(pl.lit(rule)) for rule in gap_if_violated]])
    return (_as_unused_rows(rows)
            .with_columns(split_list(pl.col("x_SourceChanges")), split_list(gaps_found).alias("x_ProviderDataGaps"))
            .select([whitespace_to_null(pl.col(name)).alias(name) if name in DELIVERED_TEXT_COLUMNS
                     else pl.col(name).cast(dtype)
                     for name, dtype in focus_schema().items()]))


# String columns the mapping writes from its own literals and tables: never whitespace-only, so not
# tested for it per row (a regular expression per row and column).
OWN_TEXT_COLUMNS = frozenset({
    "BillingAccountType", "ChargeCategory", "ChargeClass", "ChargeFrequency", "CommitmentDiscountCategory",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType", "PricingCategory",
    "ProviderName", "ResourceName", "ServiceCategory", "ServiceSubcategory", "SkuPriceDetails", "SubAccountType",
})
# String columns carrying delivered text: whitespace-only values become null (R-Null-1, R-Null-2)
DELIVERED_TEXT_COLUMNS = frozenset(c.name for c in focus_columns()
                                   if c.data_type in ("String", "JSON") and c.name not in OWN_TEXT_COLUMNS)

UNUSED_QUANTITY_GAPS = ["R-UnitPrice-1", "R-PCUnitPrice-1", "R-PricingQuantity-1", "R-CDQuantity-1"]


def _as_unused_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows flagged ``__unused`` become the idle part of their RI / savings plan: a Usage row with
    CommitmentDiscountStatus Unused, BilledCost 0 and the unused amount as EffectiveCost."""
    unused = pl.col("__unused")
    cost, qty = pl.col("__unused_cost"), pl.col("__unused_quantity")
    # an exact Decimal quotient rounded to 12 decimals (a zero quantity is no divisor: null price)
    unit_price = exact_ratio(cost, qty)
    spend = pl.col("CommitmentDiscountCategory") == "Spend"
    pricing_unit = pl.when(spend).then(pl.col("BillingCurrency")).otherwise(pl.lit("Hours"))
    cd_unit = pl.when(spend).then(pl.col("BillingCurrency")).otherwise(
        pl.coalesce(pl.col("CommitmentDiscountUnit"), pl.lit("Hours")))
    note = masked_format(unused, "derived: unused commitment of {} row {} ({})", pl.col("x_ChargeType"),
                         pl.col("x_SourceRow"), pl.col("x_SourceFile"))
    overrides = {
        "ChargeCategory": pl.lit("Usage"),
        "ChargeFrequency": pl.lit("Usage-Based"),
        "PricingCategory": pl.lit("Committed"),
        "CommitmentDiscountStatus": pl.lit("Unused"),
        "BilledCost": ZERO,
        "EffectiveCost": cost,
        "ListCost": cost,
        "ContractedCost": cost,
        "ListUnitPrice": unit_price,
        "ContractedUnitPrice": unit_price,
        "PricingCurrencyListUnitPrice": unit_price,
        "PricingCurrencyContractedUnitPrice": unit_price,
        "PricingCurrencyEffectiveCost": cost,
        "PricingQuantity": qty,
        "PricingUnit": pricing_unit,
        "CommitmentDiscountQuantity": pl.col("__unused_cd_quantity"),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": pl.lit(None, MONEY),
        "ConsumedUnit": pl.lit(None, pl.String),
        "ResourceId": pl.col("CommitmentDiscountId"),
        "ResourceType": pl.col("ServiceName"),
        "x_RowId": derived_row_id(pl.col("x_RowId"), "unused"),
        "x_SourceChanges": joined_strings([pl.col("x_SourceChanges"), note]),
        "x_ProviderDataGaps": joined_strings([
            pl.col("x_ProviderDataGaps"),
            pl.when(qty.is_null() | (qty == 0)).then(pl.lit(LIST_SEPARATOR.join(UNUSED_QUANTITY_GAPS)))]),
    }
    return rows.with_columns(
        [pl.when(unused).then(value).otherwise(pl.col(name)).alias(name) for name, value in overrides.items()]
    ).drop("__unused", "__unused_cost", "__unused_quantity", "__unused_cd_quantity")
