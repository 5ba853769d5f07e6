"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0): reading delivered files into typed raw rows,
and what a valid raw row is (both the mapping and the totals import this module).

Every delivered column is kept. Header spellings (`lineItem/UnblendedCost`, Athena
`line_item_unblended_cost`, any case) become the Athena snake_case name; cost and quantity columns
become Decimal(38, 12) (floats are cast on read), timestamps UTC, everything else a string with ''
as null. Tag columns (`resourceTags/user:Team`, `resource_tags_user_team`, CUR 2.0's `resource_tags`
map) are folded into one JSON object column `resource_tags` with the keys as delivered; cost
categories likewise into `cost_category`; CUR 2.0 `product` / `discount` maps become JSON objects.
A value that does not parse is kept in `x_ParseErrors` (the row goes to quarantine, the raw table
keeps it); an amount that cannot be read also in `x_UnreadableAmounts`, with its raw text.

A file without `lineItem/CurrencyCode` is refused, naming the column, unless the source declares its
billing currency (``Lineage.billing_currency``): the currency column is then filled with it and
`x_DeclaredCurrency` holds it on those rows.

Duplicated line items: AWS identifies a line item by `identity/LineItemId` within its
`identity/TimeInterval` (CUR 2.0 / Athena `identity_line_item_id`, `identity_time_interval`;
https://docs.aws.amazon.com/cur/latest/userguide/identity-columns.html: the id is unique within a
partition and consistent across the files a report is split into). Every copy of a line item but the
first (smallest x_RowId) is quarantined with its amount, so it is billed once and conserved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources import common
from focus_platform.sources.common import (
    DECLARED_CURRENCY,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    as_timestamp,
    blank_to_null,
    copy_reason,
    delivered_file,
    json_object,
    lineage_columns,
    map_to_json,
    masked_format,
    numbered,
    parse_error,
    typed_raw_rows,
    with_derived,
)
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY

FORMAT_LEGACY = "aws-cur"
FORMAT_CUR2 = "aws-cur2"
RAW_TABLE = "raw_aws_cur"

# ---------------------------------------------------------------------------------------------
# Raw columns with their type. Everything not listed stays a string.
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
CURRENCY_COLUMN = "line_item_currency_code"
REQUIRED_COLUMNS = {  # Athena / CUR 2.0 name: legacy CSV header
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    CURRENCY_COLUMN: "lineItem/CurrencyCode",
    "bill_payer_account_id": "bill/PayerAccountId",
}
LINE_ITEM_KEY = ("identity_line_item_id", "identity_time_interval")  # AWS's identity of a line item
LINE_ITEM_NAME = "identity/LineItemId / identity/TimeInterval"
CUR2_MAP_COLUMNS = ("product", "resource_tags", "cost_category", "discount")
# Legacy CSV header category -> Athena snake_case prefix
CATEGORIES = {
    "identity": "identity", "bill": "bill", "lineitem": "line_item", "product": "product",
    "pricing": "pricing", "reservation": "reservation", "savingsplan": "savings_plan",
    "discount": "discount", "splitlineitem": "split_line_item", "resourcetags": "resource_tags",
    "costcategory": "cost_category", "capacityreservation": "capacity_reservation",
}
# The line item types AWS documents (lineItem/LineItemType); any other value is quarantined.
KNOWN_LINE_ITEM_TYPES = (
    "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee", "RIFee", "Fee", "Tax", "Credit", "Refund", "EdpDiscount", "PrivateRateDiscount",
    "BundledDiscount", "Discount", "DistributorDiscount",
)
# SavingsPlanNegation only cancels the covered usage's on-demand cost on the invoice: valid raw rows
# that no FOCUS row represents (counted as dropped rows by the row conservation).
DROPPED_LINE_ITEM_TYPES = ("SavingsPlanNegation",)
LINEAGE_NAMES = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]


def missing_required(names: set[str], declared_currency: str | None = None) -> list[str]:
    """The required columns absent from a file, in both spellings (the currency column is not
    required when the source declares its billing currency)."""
    return [f"{legacy} ({name})" for name, legacy in REQUIRED_COLUMNS.items()
            if name not in names and not (name == CURRENCY_COLUMN and declared_currency)]


class RawColumns(common.RawColumns):
    """CUR columns come and go: an absent money column reads as a null Decimal, any other as a null
    String (or the type a caller names)."""

    def type_of(self, name: str) -> pl.DataType:
        return MONEY if name in DECIMAL_COLUMNS else pl.String

    def product(self, key: str, legacy: str) -> pl.Expr:
        """A product attribute: the legacy/Athena top-level column, else the CUR 2.0 product map."""
        if legacy in self.schema:
            return pl.col(legacy)
        if "product" in self.schema:
            return blank_to_null(pl.col("product").str.json_path_match(f"$.{key}"))
        return pl.lit(None, pl.String)


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
    names = DECIMAL_COLUMNS + TIMESTAMP_COLUMNS + tuple(REQUIRED_COLUMNS) + LINE_ITEM_KEY + (
        "reservation_reservation_a_r_n", "savings_plan_savings_plan_a_r_n", "bill_invoice_id",
        "bill_invoicing_entity", "bill_billing_entity", "bill_bill_type", "bill_payer_account_name",
        "line_item_usage_account_name", "line_item_usage_account_id", "line_item_product_code",
        "line_item_usage_type", "line_item_operation", "line_item_availability_zone", "line_item_resource_id",
        "line_item_line_item_description", "line_item_legal_entity", "line_item_tax_type",
        "line_item_usage_end_date", "product_product_name", "product_region", "product_region_code",
        "product_location", "product_location_type", "product_sku", "product_product_family",
        "product_servicecode", "pricing_rate_code", "pricing_rate_id", "pricing_unit", "pricing_term",
        "pricing_currency", "pricing_purchase_option",
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
    lf, schema = delivered_file(path, label, storage_options)
    columns = [classify_header(h) for h in schema.names()]
    fmt = detect_format(schema.names())
    names = {c.name for c in columns}
    missing = missing_required(names, lineage.billing_currency)
    if fmt is None:
        raise SourceFormatError(f"{label}: not an AWS CUR: required column(s) missing: "
                                f"{', '.join(missing_required(names))}")
    if missing:
        why = (" (or declare the source's billing currency)"
               if any(m.startswith(REQUIRED_COLUMNS[CURRENCY_COLUMN]) for m in missing) else "")
        raise SourceFormatError(f"{label}: required column(s) missing: {', '.join(missing)}{why}")
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
    kind = "parquet" if str(path).lower().endswith(".parquet") else "csv"
    rows = numbered(lf, kind == "csv")
    if tags:  # one JSON object per distinct combination of tag values in a batch
        fields = {f"t{i}": text for i, (_, text) in enumerate(tags)}
        rows = with_derived(rows, pl.struct(**fields), lambda values: {"__tags_json": json_object(
            [(key, values.struct.field(f"t{i}")) for i, (key, _) in enumerate(tags)])})
        exprs.append(pl.col("__tags_json").alias("resource_tags"))
    if cost_categories:
        exprs.append(json_object(cost_categories).alias("cost_category"))
    declared = []
    if CURRENCY_COLUMN not in seen:  # only reachable with a declared billing currency
        exprs.append(pl.lit(lineage.billing_currency).alias(CURRENCY_COLUMN))
        declared.append(pl.lit(lineage.billing_currency).alias(DECLARED_CURRENCY))
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.col("bill_billing_period_start_date").dt.strftime("%Y-%m")
              if "bill_billing_period_start_date" in seen
              else pl.col("line_item_usage_start_date").dt.strftime("%Y-%m"))
    version = {FORMAT_LEGACY: "CUR 1 (legacy)", FORMAT_CUR2: "CUR 2.0"}[fmt]
    return typed_raw_rows(rows, exprs, errors,
                          [*declared, *lineage_columns(lineage, fmt, f"{version} {kind}", label)], period, amounts)


# ---------------------------------------------------------------------------------------------
# What a valid raw row is
# ---------------------------------------------------------------------------------------------
def _has_unused_reservation(col: RawColumns) -> pl.Expr:
    """An RIFee whose unused-reservation columns carry an amount (it needs its reservation ARN)."""
    return ((col("reservation_unused_amortized_upfront_fee_for_billing_period").fill_null(0) != 0)
            | (col("reservation_unused_recurring_fee").fill_null(0) != 0))


def _has_unused_commitment(col: RawColumns) -> pl.Expr:
    """A savings plan fee whose commitment (upfront + recurring) differs from its used commitment."""
    zero = pl.lit(0, MONEY)
    commitment = (col("savings_plan_amortized_upfront_commitment_for_billing_period").fill_null(zero)
                  + col("savings_plan_recurring_commitment_for_billing_period").fill_null(zero))
    return commitment != col("savings_plan_used_commitment").fill_null(zero)


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row), a duplicated line item included
    (``copy_reason``: the pipeline looks for copies by ``LINE_ITEM_KEY`` over the whole partition)."""
    col = RawColumns(schema)
    t = col("line_item_line_item_type")
    reasons = [
        copy_reason(schema),
        pl.col("x_ParseErrors"),
        pl.when(t.is_null()).then(pl.lit("lineItem/LineItemType is empty")),
        masked_format(t.is_not_null() & ~t.is_in(KNOWN_LINE_ITEM_TYPES), "unknown lineItem/LineItemType '{}'", t),
        pl.when(col("line_item_usage_start_date", pl.Datetime("us", "UTC")).is_null()
                & pl.col("x_ParseErrors").is_null()).then(pl.lit("lineItem/UsageStartDate is empty")),
        pl.when(col(CURRENCY_COLUMN).is_null()).then(pl.lit("lineItem/CurrencyCode is empty")),
        pl.when(col("bill_payer_account_id").is_null()).then(pl.lit("bill/PayerAccountId is empty")),
        pl.when((t == "RIFee") & _has_unused_reservation(col) & col("reservation_reservation_a_r_n").is_null())
        .then(pl.lit("RIFee with unused reservation but empty reservation/ReservationARN")),
        pl.when((t == "SavingsPlanRecurringFee") & _has_unused_commitment(col)
                & col("savings_plan_savings_plan_a_r_n").is_null())
        .then(pl.lit("SavingsPlanRecurringFee with unused commitment but empty savingsPlan/SavingsPlanARN")),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)
