"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0) → typed raw rows → FOCUS 1.2.

Reading (``scan_raw``): every delivered column is kept. Header spellings (`lineItem/UnblendedCost`,
Athena `line_item_unblended_cost`, any case) become the Athena snake_case name; cost and quantity
columns become Decimal(38, 12) (floats are cast on read), timestamps UTC, everything else a string
with '' as null. Tag columns (`resourceTags/user:Team`, `resource_tags_user_team`, CUR 2.0's
`resource_tags` map) are folded into one JSON object column `resource_tags` with the keys as
delivered; cost categories likewise into `cost_category`; CUR 2.0 `product` / `discount` maps
become JSON objects. A value that does not parse is kept in `x_ParseErrors` (the row goes to
quarantine, the raw table keeps it).

Mapping (``to_focus``): the decisions per line item type are the table ``LINE_ITEM_TYPES`` below,
documented in the README. BilledCost is the unblended cost (what the invoice charges), EffectiveCost
the amortized cost (the AWS / CID amortized formula), and the unused part of each RI and savings
plan becomes its own Usage row with CommitmentDiscountStatus Unused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources.common import (
    LIST_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    as_timestamp,
    blank_to_null,
    check_csv_structure,
    derived_row_id,
    file_schema,
    joined_strings,
    json_object,
    lineage_columns,
    lookup_rows,
    map_to_json,
    mapped,
    masked_format,
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
    PROVIDER_X_SCHEMA,
    focus_columns,
    focus_schema,
)
from focus_platform.spec.rules import row_rules

FORMAT_LEGACY = "aws-cur"
FORMAT_CUR2 = "aws-cur2"
PROVIDER = "AWS"
AWS_INC = "Amazon Web Services, Inc."

# ---------------------------------------------------------------------------------------------
# Raw columns the mapping reads, with their type. Everything not listed stays a string.
# ---------------------------------------------------------------------------------------------
DECIMAL_COLUMNS = (
    "line_item_usage_amount", "line_item_normalization_factor", "line_item_normalized_usage_amount",
    "line_item_unblended_rate", "line_item_unblended_cost", "line_item_blended_rate", "line_item_blended_cost",
    "line_item_net_unblended_rate", "line_item_net_unblended_cost",
    "pricing_public_on_demand_rate", "pricing_public_on_demand_cost",
    "reservation_effective_cost", "reservation_amortized_upfront_cost_for_usage",
    "reservation_recurring_fee_for_usage", "reservation_amortized_upfront_fee_for_billing_period",
    "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee",
    "reservation_unused_quantity", "reservation_unused_normalized_unit_quantity", "reservation_upfront_value",
    "reservation_total_reserved_units",
    "savings_plan_savings_plan_rate", "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date", "savings_plan_used_commitment",
    "savings_plan_amortized_upfront_commitment_for_billing_period",
    "savings_plan_recurring_commitment_for_billing_period",
)
TIMESTAMP_COLUMNS = (
    "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_usage_start_date", "line_item_usage_end_date",
)
ACCOUNT_ID_COLUMNS = ("bill_payer_account_id", "line_item_usage_account_id")
REQUIRED_COLUMNS = {  # Athena / CUR 2.0 name: legacy CSV header
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_currency_code": "lineItem/CurrencyCode",
    "bill_payer_account_id": "bill/PayerAccountId",
}


def missing_required(names: set[str]) -> list[str]:
    """The required columns absent from a file, in both spellings."""
    return [f"{legacy} ({name})" for name, legacy in REQUIRED_COLUMNS.items() if name not in names]
CUR2_MAP_COLUMNS = ("product", "resource_tags", "cost_category", "discount")
# Legacy CSV header category -> Athena snake_case prefix
CATEGORIES = {
    "identity": "identity", "bill": "bill", "lineitem": "line_item", "product": "product",
    "pricing": "pricing", "reservation": "reservation", "savingsplan": "savings_plan",
    "discount": "discount", "splitlineitem": "split_line_item", "resourcetags": "resource_tags",
    "costcategory": "cost_category", "capacityreservation": "capacity_reservation",
}

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
# SavingsPlanNegation nets out SavingsPlanCoveredUsage's on-demand cost on the invoice. The covered
# row already has BilledCost 0, so the negation row is dropped from FOCUS (kept in raw_aws_cur): a
# documented row contraction.
DROPPED_LINE_ITEM_TYPES = ("SavingsPlanNegation",)
KNOWN_LINE_ITEM_TYPES = tuple(LINE_ITEM_TYPES) + DROPPED_LINE_ITEM_TYPES
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


# ---------------------------------------------------------------------------------------------
# Header names
# ---------------------------------------------------------------------------------------------
def _snake(name: str) -> str:
    """Athena's rule: every capital becomes '_' + lower case (ReservationARN -> reservation_a_r_n)."""
    out = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)
    out = re.sub(r"[^0-9a-z_]+", "_", out.lower())
    return re.sub(r"_+", "_", out).strip("_")


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


@cache
def _known_by_key() -> dict[str, str]:
    names = DECIMAL_COLUMNS + TIMESTAMP_COLUMNS + tuple(REQUIRED_COLUMNS) + (
        "reservation_reservation_a_r_n", "savings_plan_savings_plan_a_r_n", "bill_invoice_id",
        "bill_invoicing_entity", "bill_billing_entity", "bill_bill_type", "bill_payer_account_name",
        "line_item_usage_account_name", "line_item_usage_account_id", "line_item_product_code",
        "line_item_usage_type", "line_item_operation", "line_item_availability_zone", "line_item_resource_id",
        "line_item_line_item_description", "line_item_legal_entity", "line_item_tax_type",
        "line_item_usage_end_date", "product_product_name", "product_region", "product_region_code",
        "product_location", "product_location_type", "product_sku", "product_product_family",
        "product_servicecode", "pricing_rate_code", "pricing_rate_id", "pricing_unit", "pricing_term",
        "pricing_currency", "pricing_purchase_option", "identity_line_item_id", "identity_time_interval",
        "capacity_reservation_capacity_reservation_a_r_n", "capacity_reservation_capacity_reservation_status",
    )
    return {_key(n): n for n in names}


@dataclass(frozen=True)
class RawColumn:
    header: str  # as delivered
    name: str  # Athena snake_case name in raw_aws_cur
    tag_key: str | None = None  # resource tag key as delivered (user:Team / user_team)
    cost_category: str | None = None


def classify_header(header: str) -> RawColumn:
    """Canonical raw name for a delivered header, or the tag / cost category it carries."""
    h = header.strip().lstrip("\ufeff")
    if "/" in h:
        category, _, field = h.partition("/")
        if category.lower() == "resourcetags":
            return RawColumn(header, "resource_tags", tag_key=field)
        if category.lower() == "costcategory":
            return RawColumn(header, "cost_category", cost_category=field)
        prefix = CATEGORIES.get(category.lower(), _snake(category))
        name = f"{prefix}_{_snake(field)}"
    else:
        lowered = h.lower()
        if lowered.startswith("resource_tags_"):
            return RawColumn(header, "resource_tags", tag_key=h[len("resource_tags_"):])
        if lowered.startswith("cost_category_"):
            return RawColumn(header, "cost_category", cost_category=h[len("cost_category_"):])
        name = _snake(h) if any(ch.isupper() for ch in h) else re.sub(r"[^0-9a-z_]+", "_", lowered)
    return RawColumn(header, _known_by_key().get(_key(name), name))


def near_miss(headers: list[str]) -> str | None:
    """Why a file with some CUR columns is not a CUR: the required columns it lacks."""
    missing = missing_required({classify_header(h).name for h in headers})
    if missing and len(missing) < len(REQUIRED_COLUMNS):
        return f"looks like an AWS CUR but required column(s) missing: {', '.join(missing)}"
    return None


def detect_format(headers: list[str]) -> str | None:
    """aws-cur2, aws-cur, or None when the headers are not a CUR."""
    names = {classify_header(h).name for h in headers}
    if "line_item_line_item_type" not in names or "line_item_unblended_cost" not in names:
        return None
    lowered = {h.lower() for h in headers}
    if "product" in lowered or "bill_payer_account_name" in lowered or "line_item_usage_account_name" in lowered:
        return FORMAT_CUR2
    return FORMAT_LEGACY


# ---------------------------------------------------------------------------------------------
# Reading a file into typed raw rows
# ---------------------------------------------------------------------------------------------
def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One delivered file as typed raw rows with canonical names and lineage columns."""
    label = label or str(path)
    lf = scan_file(path, storage_options=storage_options)
    schema = file_schema(lf, label)
    if not str(path).lower().endswith(".parquet"):
        check_csv_structure(str(path), label, storage_options)
    columns = [classify_header(h) for h in schema.names()]
    fmt = detect_format(schema.names())
    missing = missing_required({c.name for c in columns})
    if fmt is None:
        raise SourceFormatError(f"{label}: not an AWS CUR: required column(s) missing: {', '.join(missing)}")
    if missing:
        raise SourceFormatError(f"{label}: required column(s) missing: {', '.join(missing)}")
    seen: dict[str, str] = {}
    exprs: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    tags: list[tuple[str, pl.Expr]] = []
    cost_categories: list[tuple[str, pl.Expr]] = []
    for col in columns:
        dtype = schema[col.header]
        source = pl.col(col.header)
        text = blank_to_null(source.cast(pl.String)) if dtype != pl.String else blank_to_null(source)
        if col.tag_key is not None:
            tags.append((col.tag_key, text))
            continue
        if col.cost_category is not None:
            cost_categories.append((col.cost_category, text))
            continue
        if col.name in seen:
            raise SourceFormatError(f"{label}: columns {seen[col.name]!r} and {col.header!r} both mean {col.name}")
        seen[col.name] = col.header
        if col.name in DECIMAL_COLUMNS:
            typed = as_decimal(col.header, dtype)
            amounts.append(amount_error(col.header, source, dtype, typed))
        elif col.name in TIMESTAMP_COLUMNS:
            typed = as_timestamp(col.header, dtype)
            if dtype == pl.String:
                errors.append(parse_error(f"{col.header}", source, typed, "a timestamp"))
        elif col.name in CUR2_MAP_COLUMNS:
            typed = map_to_json(col.header, dtype)
        elif col.name in ACCOUNT_ID_COLUMNS and dtype.is_integer():
            typed = source.cast(pl.String).str.zfill(12)  # 12-digit ids lose leading zeros as integers
        else:
            typed = text
        exprs.append(typed.alias(col.name))
    if tags:
        exprs.append(json_object(tags).alias("resource_tags"))
    if cost_categories:
        exprs.append(json_object(cost_categories).alias("cost_category"))
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.col("bill_billing_period_start_date").dt.strftime("%Y-%m")
              if "bill_billing_period_start_date" in seen
              else pl.col("line_item_usage_start_date").dt.strftime("%Y-%m"))
    version = {FORMAT_LEGACY: "CUR 1 (legacy)", FORMAT_CUR2: "CUR 2.0"}[fmt]
    kind = "parquet" if str(path).lower().endswith(".parquet") else "csv"
    return typed_raw_rows(numbered(lf, kind == "csv"), exprs, errors,
                          lineage_columns(lineage, fmt, f"{version} {kind}", label), period, amounts)


# ---------------------------------------------------------------------------------------------
# Raw → FOCUS
# ---------------------------------------------------------------------------------------------
class _Cols:
    """Column access on a raw frame whose column set varies (CUR columns come and go)."""

    def __init__(self, schema: pl.Schema):
        self.schema = schema

    def __call__(self, name: str, dtype: pl.DataType = pl.String) -> pl.Expr:
        if name in self.schema:
            return pl.col(name)
        return pl.lit(None, MONEY if name in DECIMAL_COLUMNS else dtype)

    def has(self, name: str) -> bool:
        return name in self.schema

    def product(self, key: str, legacy: str) -> pl.Expr:
        """A product attribute: the legacy/Athena top-level column, else the CUR 2.0 product map."""
        if legacy in self.schema:
            return pl.col(legacy)
        if "product" in self.schema:
            return blank_to_null(pl.col("product").str.json_path_match(f"$.{key}"))
        return pl.lit(None, pl.String)


def _line_item_lookup(field: str) -> pl.Expr:
    return pl.col(f"__li_{field}")


def _with_lookups(raw: pl.LazyFrame, col: _Cols) -> pl.LazyFrame:
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


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row)."""
    col = _Cols(schema)
    reasons = [
        pl.col("x_ParseErrors"),
        pl.when(col("line_item_line_item_type").is_null()).then(pl.lit("lineItem/LineItemType is empty")),
        masked_format(col("line_item_line_item_type").is_not_null()
                      & ~col("line_item_line_item_type").is_in(KNOWN_LINE_ITEM_TYPES),
                      "unknown lineItem/LineItemType '{}'", col("line_item_line_item_type")),
        pl.when(col("line_item_usage_start_date", pl.Datetime("us", "UTC")).is_null()
                & pl.col("x_ParseErrors").is_null()).then(pl.lit("lineItem/UsageStartDate is empty")),
        pl.when(col("line_item_currency_code").is_null()).then(pl.lit("lineItem/CurrencyCode is empty")),
        pl.when(col("bill_payer_account_id").is_null()).then(pl.lit("bill/PayerAccountId is empty")),
        pl.when((col("line_item_line_item_type") == "RIFee") & (_ri_unused(col) != 0)
                & col("reservation_reservation_a_r_n").is_null())
        .then(pl.lit("RIFee with unused reservation but empty reservation/ReservationARN")),
        pl.when((col("line_item_line_item_type") == "SavingsPlanRecurringFee") & (_sp_unused(col) != 0)
                & col("savings_plan_savings_plan_a_r_n").is_null())
        .then(pl.lit("SavingsPlanRecurringFee with unused commitment but empty savingsPlan/SavingsPlanARN")),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """The invoice basis of a raw row: unblended cost; covered usage and its negation count 0."""
    t = pl.col("line_item_line_item_type")
    return (pl.when(t.is_in(["SavingsPlanCoveredUsage", "SavingsPlanNegation"])).then(pl.lit(0, MONEY))
            .otherwise(pl.col("line_item_unblended_cost")))


def amortized_basis(schema: pl.Schema) -> pl.Expr:
    """AWS's amortized cost of a raw row (the CID formula)."""
    col = _Cols(schema)
    t = pl.col("line_item_line_item_type")
    zero = pl.lit(0, MONEY)
    ri_arn = col("reservation_reservation_a_r_n")
    return (
        pl.when(t == "SavingsPlanCoveredUsage").then(col("savings_plan_savings_plan_effective_cost").fill_null(zero))
        .when(t == "SavingsPlanRecurringFee").then(_sp_unused(col))
        .when(t.is_in(["SavingsPlanNegation", "SavingsPlanUpfrontFee"])).then(zero)
        .when(t == "DiscountedUsage").then(col("reservation_effective_cost").fill_null(zero))
        .when(t == "RIFee").then(_ri_unused(col))
        .when((t == "Fee") & ri_arn.is_not_null()).then(zero)
        .otherwise(pl.col("line_item_unblended_cost"))
    )


def _ri_unused(col: _Cols) -> pl.Expr:
    zero = pl.lit(0, MONEY)
    return (col("reservation_unused_amortized_upfront_fee_for_billing_period").fill_null(zero)
            + col("reservation_unused_recurring_fee").fill_null(zero))


def _sp_unused(col: _Cols) -> pl.Expr:
    zero = pl.lit(0, MONEY)
    return (col("savings_plan_amortized_upfront_commitment_for_billing_period").fill_null(zero)
            + col("savings_plan_recurring_commitment_for_billing_period").fill_null(zero)
            - col("savings_plan_used_commitment").fill_null(zero))


def _end_of_day_fix(end: pl.Expr) -> pl.Expr:
    """AWS writes some exclusive ends as 23:59:59 of the last day: move them to the next midnight."""
    return (end.dt.hour() == 23) & (end.dt.minute() == 59) & (end.dt.second() == 59)


def _tags(col: _Cols) -> pl.Expr:
    """Resource tags → FOCUS Tags: user keys without the `user:`/`user_` prefix, AWS keys keep `aws:`."""
    if not col.has("resource_tags"):
        return pl.lit(None, pl.String)
    # literal patterns at a key's start (after '{' or ','; inside a JSON string a quote is escaped)
    return pl.col("resource_tags").str.replace_many(
        ['{"user:', ',"user:', '{"user_', ',"user_', '{"aws_', ',"aws_'],
        ['{"', ',"', '{"', ',"', '{"aws:', ',"aws:'])


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows (plus one Unused row per under-used commitment)."""
    schema = raw.collect_schema()
    col = _Cols(schema)
    zero = pl.lit(0, MONEY)
    t = pl.col("line_item_line_item_type")
    converted = _with_lookups(raw.filter(quarantine_reason(schema).is_null() & ~t.is_in(DROPPED_LINE_ITEM_TYPES)), col)
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

    billed = pl.when(t == "SavingsPlanCoveredUsage").then(zero).otherwise(unblended)
    effective = (
        pl.when(t == "DiscountedUsage").then(col("reservation_effective_cost").fill_null(zero))
        .when(t == "SavingsPlanCoveredUsage").then(col("savings_plan_savings_plan_effective_cost").fill_null(zero))
        .when(t.is_in(["RIFee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee"])).then(zero)
        .when((t == "Fee") & ri_arn.is_not_null()).then(zero)
        .otherwise(unblended)
    )
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
    currency = col("line_item_currency_code")
    pricing_currency = pl.coalesce(col("pricing_currency"), currency)
    same_currency = pricing_currency == currency
    # Commitment quantities: savings plans in money (the recurring commitment on the fee row, the
    # upfront fee on its own row); RIs in normalized hours where the export has them (size
    # flexibility: one RI covers several instance sizes), else in hours.
    normalized = col("line_item_normalized_usage_amount")
    ri_normalized = normalized.is_not_null() & (normalized != 0)
    cd_quantity = (
        pl.when(cd_id.is_null() | ~(is_usage | is_purchase)).then(None)
        .when(t == "SavingsPlanCoveredUsage").then(col("savings_plan_savings_plan_effective_cost"))
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
        "Tags": _tags(col),
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
    unused_cost = (pl.when(is_ri_fee).then(_ri_unused(col)).when(t == "SavingsPlanRecurringFee")
                   .then(_sp_unused(col)).otherwise(zero))
    unused_quantity = (pl.when(is_ri_fee).then(col("reservation_unused_quantity"))
                       .when(t == "SavingsPlanRecurringFee").then(_sp_unused(col)))
    unused_cd_quantity = (pl.when(is_ri_fee & ri_normalized)
                          .then(col("reservation_unused_normalized_unit_quantity"))
                          .otherwise(unused_quantity))
    rows = converted.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(changes).alias("x_SourceChanges"),
        joined_strings(gaps).alias("x_ProviderDataGaps"),
        *[pl.col(n) for n in _lineage_names()],
        *[flag.fill_null(False).alias(f"__gap {rule}") for rule, flag in gap_if_violated.items()],
        unused_cost.alias("__unused_cost"),
        unused_quantity.alias("__unused_quantity"),
        unused_cd_quantity.alias("__unused_cd_quantity"),
    )
    # One pass: a fee row with an unused part is emitted twice; the copy becomes the Unused row.
    expanded = rows.with_columns(
        pl.when((pl.col("__unused_cost") != 0) & pl.col("CommitmentDiscountId").is_not_null())
        .then(pl.lit([False, True])).otherwise(pl.lit([False])).alias("__unused")
    ).explode("__unused")
    violates = {r.id: r.violates for r in row_rules() if r.id in gap_if_violated}
    gaps_found = joined_strings([pl.col("x_ProviderDataGaps"), *[
        pl.when(pl.col(f"__gap {rule}") & violates[rule]().fill_null(False)).then(pl.lit(rule)) for rule in gap_if_violated]])
    return (_as_unused_rows(expanded)
            .with_columns(split_list(pl.col("x_SourceChanges")), split_list(gaps_found).alias("x_ProviderDataGaps"))
            .select([whitespace_to_null(pl.col(name)).alias(name) if name in FOCUS_STRING_COLUMNS
                     else pl.col(name).cast(dtype)
                     for name, dtype in focus_schema().items()]))


FOCUS_STRING_COLUMNS = frozenset(c.name for c in focus_columns() if c.data_type in ("String", "JSON"))


def _lineage_names() -> list[str]:
    return [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]


UNUSED_QUANTITY_GAPS = ["R-UnitPrice-1", "R-PCUnitPrice-1", "R-PricingQuantity-1", "R-CDQuantity-1"]


def _as_unused_rows(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows flagged ``__unused`` become the idle part of their RI / savings plan: a Usage row with
    CommitmentDiscountStatus Unused, BilledCost 0 and the unused amount as EffectiveCost."""
    unused = pl.col("__unused")
    zero = pl.lit(0, MONEY)
    cost, qty = pl.col("__unused_cost"), pl.col("__unused_quantity")
    nonzero_qty = pl.when(qty != 0).then(qty.cast(pl.Float64))
    unit_price = (cost.cast(pl.Float64) / nonzero_qty).cast(MONEY, strict=False)
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
        "BilledCost": zero,
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


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, the billed amount and lineage."""
    schema = raw.collect_schema()
    col = _Cols(schema)
    return raw.filter(quarantine_reason(schema).is_not_null()).select(
        quarantine_reason(schema).alias("x_QuarantineReason"),
        billed_basis(schema).alias("x_BilledCost"),
        amortized_basis(schema).alias("x_EffectiveCost"),
        col("bill_payer_account_id").alias("BillingAccountId"),
        col("line_item_currency_code").alias("BillingCurrency"),
        col("line_item_line_item_type").alias("x_ChargeType"),
        *[pl.col(n) for n in _lineage_names()],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Invoice basis and amortized basis per billing account, period and currency (conservation)."""
    schema = raw.collect_schema()
    return (raw.group_by(pl.col("bill_payer_account_id").alias("BillingAccountId"), "x_BillingPeriod",
                         pl.col("line_item_currency_code").alias("BillingCurrency"))
            .agg(billed_basis(schema).sum().alias("billed"), amortized_basis(schema).sum().alias("amortized"),
                 pl.len().alias("rows"),
                 quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"),
                 (pl.col("line_item_line_item_type").is_in(DROPPED_LINE_ITEM_TYPES)
                  & quarantine_reason(schema).is_null()).sum().alias("dropped_rows")))


__all__ = [
    "FORMAT_CUR2", "FORMAT_LEGACY", "LINE_ITEM_TYPES", "PROVIDER_X_SCHEMA", "classify_header", "detect_format",
    "quarantine", "raw_totals", "scan_raw", "to_focus",
]
