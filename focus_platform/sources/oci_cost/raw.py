"""OCI cost reports, the raw side: header names, reading one report file into typed raw rows
(``scan_raw``) and what a valid raw row is (``quarantine_reason``). The mapping and the totals both
import this module; nothing here decides how a row maps to FOCUS or what it costs.

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
reason naming file, row and column; an amount that cannot be read (``1,234.56``, ``$12``, ``NaN``,
more than 26 whole digits) is also kept apart with its raw text in ``x_UnreadableAmounts``.
A file without ``cost/currencyCode`` is refused, unless the source declares its billing currency
(``Lineage.billing_currency``): then the currency column is that currency and
``x_DeclaredCurrency`` holds it on the file's rows (the FOCUS rows say so in x_SourceChanges).

Duplicated line items: OCI gives every line a reference number (``lineItem/referenceNo``, the one
corrections name in ``lineItem/backreferenceNo``), for one usage interval. A row with the
reference number and ``lineItem/intervalUsageStart`` of another row of the partition (in the same
file or another, e.g. a report delivered twice) is a copy: every copy but the one with the smallest
``x_RowId`` is quarantined with its amount (``common.copies_of_line_items``, looked for by the pipeline over the whole partition), so it is neither
converted nor counted twice, and conservation still balances. Rows without a reference number are
not compared.

Billing period: OCI reports are incremental files, not monthly deliveries, and carry no billing
period column. A row's billing period is the UTC calendar month of ``lineItem/intervalUsageStart``
(BillingPeriodStart/End), and ``x_BillingPeriod`` is that month too, unless the row came from a
landing-zone delivery folder of another month: then ``x_BillingPeriod`` is the delivery's period
(the partition it is stored in) and the row says so in ``x_SourceChanges``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from focus_platform.sources.common import (
    DECLARE_CURRENCY_HINT,
    DECLARED_CURRENCY,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    blank_to_null,
    copy_reason,
    delivered_file,
    json_object,
    lineage_columns,
    mapped,
    numbered,
    parse_error,
    typed_raw_rows,
    typed_timestamp,
)
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY, TIMESTAMP

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
CURRENCY = "cost_currency_code"
REQUIRED = ("line_item_tenant_id", "line_item_interval_usage_start", "cost_my_cost", CURRENCY)
# What identifies a line item: OCI gives each line its reference number (corrections name it in
# lineItem/backreferenceNo), per usage interval; a second row with both is a copy (a file delivered twice)
LINE_ITEM_KEY = ("line_item_reference_no", "line_item_interval_usage_start")
LINE_ITEM_NAME = "lineItem/referenceNo + lineItem/intervalUsageStart"
# OCI-only names: a file with two of these (and not all required) is an OCI report missing columns
SIGNATURE = ("line_item_reference_no", "line_item_tenant_id", "line_item_interval_usage_start",
             "line_item_interval_usage_end", "product_compartment_id", "cost_my_cost", "line_item_is_correction")
TRUE_TEXT = ("true", "t", "y", "yes", "1")
FALSE_TEXT = ("false", "f", "n", "no", "0")
BOOLEAN_OF = {**dict.fromkeys(TRUE_TEXT, True), **dict.fromkeys(FALSE_TEXT, False)}
TIMESTAMP_FORMS = "2023-11-13T10:00Z or 2023-11-13T10:00:00Z"
DELIVERED_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ")  # as OCI writes the interval columns


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
    """oci-cost when the headers are an OCI cost report (proprietary format), else None. A report
    without cost/currencyCode is one too (``scan_raw`` refuses it unless a currency is declared)."""
    names = _names(headers) | {CURRENCY}
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
# Reading one file
# ---------------------------------------------------------------------------------------------
def _text(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return blank_to_null(source if dtype == pl.String else source.cast(pl.String))


def _timestamp(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Both OCI forms (with and without seconds; 'T' or ' ', 'Z' optional); nothing else. The two
    forms OCI writes are parsed from the text as delivered (a parse per distinct value: Polars
    caches them); only text in neither form is normalized and parsed again."""
    typed = typed_timestamp(source, dtype)
    if typed is not None:
        return typed
    text = _text(source, dtype)
    delivered = pl.coalesce([text.str.to_datetime(form, strict=False, time_zone="UTC", time_unit="us")
                             for form in DELIVERED_TIMESTAMP_FORMATS])
    other = (pl.when(delivered.is_null()).then(text)
             .str.strip_chars().str.replace("T", " ", literal=True).str.strip_suffix("Z"))
    seconds = other.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us")
    minutes = other.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_zone="UTC", time_unit="us")
    return pl.coalesce(delivered, seconds, minutes).cast(TIMESTAMP)


def _boolean(source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """true/false, Y/N, ... in any case and with surrounding blanks; looked up as delivered first
    (only text not found so is trimmed and lowercased)."""
    if dtype == pl.Boolean:
        return source
    text = _text(source, dtype)
    delivered = mapped(text, BOOLEAN_OF, pl.Boolean)
    other = pl.when(delivered.is_null()).then(text).str.strip_chars().str.to_lowercase()
    return pl.coalesce(delivered, mapped(other, BOOLEAN_OF, pl.Boolean))


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One delivered file as typed raw rows with canonical names and lineage columns."""
    label = label or str(path)
    lf, schema = delivered_file(path, label, storage_options)
    columns = [classify_header(h) for h in schema.names()]
    names = {c.name for c in columns}
    declared = lineage.billing_currency if CURRENCY not in names else None
    missing = missing_required(names | ({CURRENCY} if declared else set()))
    if missing:
        hint = f" ({DECLARE_CURRENCY_HINT})" if HEADER_OF[CURRENCY] in missing else ""
        raise SourceFormatError(f"{label}: not an OCI cost report: required column(s) missing: "
                                f"{', '.join(missing)}{hint}")
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
    if declared:
        typed[CURRENCY] = pl.lit(declared)
    exprs = [typed.get(name, pl.lit(None, RAW_DTYPE[kind])).cast(RAW_DTYPE[kind]).alias(name)
             for _, name, kind in KNOWN_COLUMNS]
    exprs.append(typed.get(TAGS, pl.lit(None, pl.String)).alias(TAGS))
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.col("line_item_interval_usage_start").dt.strftime("%Y-%m"))
    kind = "parquet" if str(path).lower().endswith(".parquet") else "csv"
    return typed_raw_rows(numbered(lf, kind == "csv"), [*exprs, *extras], errors,
                          [pl.lit(declared, pl.String).alias(DECLARED_CURRENCY),
                           *lineage_columns(lineage, FORMAT, f"{VERSION} {kind}", label)], period, amounts)


# ---------------------------------------------------------------------------------------------
# What a valid raw row is (the mapping and the totals both use this)
# ---------------------------------------------------------------------------------------------
def raw_column(schema: pl.Schema, name: str) -> pl.Expr:
    """A known raw column, or its typed null when the raw frame lacks it."""
    if name in schema:
        return pl.col(name)
    return pl.lit(None, RAW_DTYPE[KIND_OF[name]] if name in KIND_OF else pl.String)



def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row)."""
    def empty(name: str) -> pl.Expr:
        return pl.when(raw_column(schema, name).is_null()).then(pl.lit(f"{HEADER_OF[name]} is empty"))

    parse_errors = pl.col("x_ParseErrors") if "x_ParseErrors" in schema else pl.lit(None, pl.String)
    reasons = [
        copy_reason(schema),
        parse_errors,
        empty("line_item_tenant_id"),
        pl.when(raw_column(schema, "line_item_interval_usage_start").is_null() & parse_errors.is_null())
        .then(pl.lit("lineItem/intervalUsageStart is empty")),
        pl.when(raw_column(schema, "cost_my_cost").is_null() & parse_errors.is_null())
        .then(pl.lit("cost/myCost is empty")),
        empty("cost_currency_code"),
    ]
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


# The lineage columns every FOCUS and quarantine row carries from its raw row
LINEAGE_NAMES = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
