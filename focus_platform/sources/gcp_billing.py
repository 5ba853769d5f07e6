"""GCP Cloud Billing export to BigQuery (standard and detailed usage cost) → typed raw rows → FOCUS 1.2.

Format ``gcp-billing`` (raw table ``raw_gcp_billing``); whether a file is the standard or the
detailed (resource-level) export is recorded per row in ``x_SourceFormatVersion``
(``standard parquet``, ``detailed jsonl``, ``standard csv (flattened)``, ...): detailed = the file
has ``resource.name`` / ``resource.global_name``.

Reading (``scan_raw``)
----------------------
Billing data lives only in BigQuery; files are extracts of the export tables:

* nested JSON lines (``.jsonl`` / ``.ndjson`` / ``.json``) or Parquet, as BigQuery writes them:
  structs ``service``, ``sku``, ``project``, ``location``, ``invoice``, ``usage``, ``price``,
  ``adjustment_info``, ``resource``, ``subscription``, ``consumption_model``, repeated ``credits``,
  ``labels``, ``system_labels``, ``tags``, ``project.labels``, ``project.ancestors``;
* the flattened CSV (as koku writes it): dotted (``service.description``) or underscored
  (``service_description``) names; repeated fields as JSON text or as a Python repr
  (``[{'key': 'a', 'value': None}]``).

Both become one flat raw schema: a struct field ``a.b`` is column ``a_b``. Every known column is
always present (a typed null when the file lacks it), so files of one delivery share a schema.
Money and quantities are Decimal(38, 12) (BigQuery FLOAT / NUMERIC and CSV text alike); the
timestamps are UTC (``2024-01-01 00:00:00 UTC``, ``...+00:00``, ``...Z`` and Parquet timestamps);
``labels``, ``system_labels``, ``project_labels`` are lists of ``{key, value}``, ``tags`` of
``{key, value, inherited, namespace}``, ``credits`` of ``{name, amount, full_name, id, type}``.
Unknown columns are kept (as text; unknown struct fields flattened like the known ones, lists as
JSON text) and reach FOCUS as ``x_<name>``.
Values that do not parse: numbers, timestamps, ``invoice.month`` (not ``YYYYMM``) and
``credits`` go to ``x_ParseErrors`` (the row is quarantined: its cost cannot be known);
malformed ``labels`` / ``system_labels`` / ``project.labels`` / ``tags`` / ``project.ancestors``
only to ``x_ParseWarnings`` (the row is converted without them, the problem in x_SourceChanges).
Required columns: ``billing_account_id``, ``cost``, ``currency``, ``usage_start_time``,
``invoice.month``.

Billing period
--------------
``invoice.month`` (YYYYMM) is the billing period: GCP invoices by Pacific-time month, so
BillingPeriodStart/End are the month's bounds in America/Los_Angeles, as UTC (07:00 or 08:00 UTC).
``x_BillingPeriod`` = ``invoice.month`` as ``YYYY-MM`` (never the UTC month of usage_start_time:
late usage lands on the next invoice). In a landing-zone delivery it is the delivery's period, and
a row whose ``invoice.month`` names another month is quarantined (deliver one folder per invoice
month). A row with an empty ``invoice.month`` takes the delivery's period, or for a single file the
Pacific-time month of its usage_start_time, noted in x_SourceChanges.

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

import ast
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from focus_platform.sources.common import (
    LIST_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    blank_to_null,
    check_csv_structure,
    derived_row_id,
    file_schema,
    joined_strings,
    json_string,
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

FORMAT = "gcp-billing"
PROVIDER = "Google Cloud"
RAW_TABLE = "raw_gcp_billing"
PACIFIC = "America/Los_Angeles"

# ---------------------------------------------------------------------------------------------
# Raw columns (flat canonical names) and their types
# ---------------------------------------------------------------------------------------------
STRING_COLUMNS = (
    "billing_account_id", "service_id", "service_description", "sku_id", "sku_description",
    "project_id", "project_number", "project_name", "project_ancestry_numbers",
    "location_location", "location_country", "location_region", "location_zone",
    "currency", "usage_unit", "usage_pricing_unit", "invoice_month", "invoice_publisher_type", "cost_type",
    "adjustment_info_id", "adjustment_info_description", "adjustment_info_type", "adjustment_info_mode",
    "price_unit", "consumption_model_id", "consumption_model_description", "transaction_type", "seller_name",
    "resource_name", "resource_global_name", "subscription_instance_id",
)
DECIMAL_COLUMNS = (
    "cost", "currency_conversion_rate", "usage_amount", "usage_amount_in_pricing_units",
    "cost_at_list", "cost_at_effective_price_default", "cost_at_list_consumption_model",
    "price_effective_price", "price_list_price", "price_effective_price_default",
    "price_list_price_consumption_model", "price_tier_start_amount", "price_pricing_unit_quantity",
)
TIMESTAMP_COLUMNS = ("usage_start_time", "usage_end_time", "export_time")
KEY_VALUE = {"key": pl.String, "value": pl.String}
REPEATED_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "labels": KEY_VALUE,
    "system_labels": KEY_VALUE,
    "project_labels": KEY_VALUE,
    "tags": {"key": pl.String, "value": pl.String, "inherited": pl.Boolean, "namespace": pl.String},
    "project_ancestors": {"resource_name": pl.String, "display_name": pl.String},
    "credits": {"name": pl.String, "amount": MONEY, "full_name": pl.String, "id": pl.String, "type": pl.String},
}
# Repeated fields whose malformed text quarantines the row (the others are only warned about)
COST_BEARING = ("credits",)
KNOWN_COLUMNS = STRING_COLUMNS + DECIMAL_COLUMNS + TIMESTAMP_COLUMNS + tuple(REPEATED_COLUMNS)
RAW_TYPES: dict[str, pl.DataType] = {
    **dict.fromkeys(STRING_COLUMNS, pl.String), **dict.fromkeys(DECIMAL_COLUMNS, MONEY),
    **dict.fromkeys(TIMESTAMP_COLUMNS, TIMESTAMP),
    **{name: pl.List(pl.Struct(fields)) for name, fields in REPEATED_COLUMNS.items()},
}
DETAILED_MARKERS = ("resource_name", "resource_global_name")
REQUIRED_COLUMNS = {  # canonical name: as Google names it
    "billing_account_id": "billing_account_id",
    "cost": "cost",
    "currency": "currency",
    "usage_start_time": "usage_start_time",
    "invoice_month": "invoice.month",
}
# Names that mark a file as a GCP billing export (beyond the required ones)
SIGNATURE = ("invoice", "invoice_month", "cost_type", "credits", "sku", "sku_id", "service", "service_id",
             "service_description", "usage_start_time", "usage_end_time", "project", "project_id")

# ---------------------------------------------------------------------------------------------
# The mapping decisions
# ---------------------------------------------------------------------------------------------
COST_TYPES = {  # cost_type -> ChargeCategory, ChargeFrequency (a CUD fee overrides: Purchase, Recurring)
    "regular": ("Usage", "Usage-Based"),
    "tax": ("Tax", "One-Time"),
    "adjustment": ("Adjustment", "One-Time"),
    "rounding error": ("Adjustment", "One-Time"),
    "rounding_error": ("Adjustment", "One-Time"),
}
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
INVOICE_MONTH_PATTERN = r"^\d{4}(0[1-9]|1[0-2])$"


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


# ---------------------------------------------------------------------------------------------
# Header names
# ---------------------------------------------------------------------------------------------
def canonical(name: str) -> str:
    """`service.description` / `service_description` / ` Service.Description` -> service_description."""
    text = name.strip().lstrip("\ufeff").lower().replace(".", "_")
    return re.sub(r"_+", "_", re.sub(r"[^0-9a-z_]+", "_", text)).strip("_")


def _names(headers: list[str]) -> set[str]:
    return {canonical(h) for h in headers}


def _dotted(name: str) -> str:
    """A canonical name as Google spells the field (for messages): invoice_month -> invoice.month."""
    return REQUIRED_COLUMNS.get(name, name)


def detect_format(headers: list[str]) -> str | None:
    """gcp-billing when the file has billing_account_id, cost and a GCP field (sku, invoice, ...)."""
    names = _names(headers)
    if {"billing_account_id", "cost"} <= names and names & set(SIGNATURE):
        return FORMAT
    return None


def near_miss(headers: list[str]) -> str | None:
    names = _names(headers)
    gcp_like = names & (set(SIGNATURE) | set(REQUIRED_COLUMNS))
    if len(gcp_like) >= 3 and detect_format(headers) is None:
        missing = [n for n in ("billing_account_id", "cost") if n not in names]
        return f"looks like a GCP billing export but required column(s) missing: {', '.join(missing)}"
    return None


# ---------------------------------------------------------------------------------------------
# Reading: flatten, type, parse repeated fields
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    name: str  # canonical flat name
    label: str  # as delivered: CSV header or dotted path of a nested field
    expr: pl.Expr  # the delivered value
    dtype: pl.DataType


def _flatten(schema: pl.Schema) -> list[_Field]:
    """Top-level columns and, recursively, the fields of struct columns (a.b -> a_b)."""
    out: list[_Field] = []

    def visit(name: str, label: str, expr: pl.Expr, dtype: pl.DataType) -> None:
        if isinstance(dtype, pl.Struct) and name not in REPEATED_COLUMNS:
            for f in dtype.fields:
                visit(f"{name}_{canonical(f.name)}", f"{label}.{f.name}", expr.struct.field(f.name), f.dtype)
            return
        out.append(_Field(name, label, expr, dtype))

    for header, dtype in schema.items():
        visit(canonical(header), header.strip().lstrip("\ufeff"), pl.col(header), dtype)
    return out


def _text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return blank_to_null(expr)
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        return _json_of(expr)
    return blank_to_null(expr.cast(pl.String))


def _json_of(expr: pl.Expr) -> pl.Expr:
    """Any nested value as JSON text."""
    wrapped = pl.struct(expr.alias("v")).struct.json_encode()
    return pl.when(expr.is_not_null()).then(wrapped.str.slice(5, wrapped.str.len_chars() - 6))


def _timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """BigQuery timestamps as UTC: Parquet timestamps, '2024-01-01 00:00:00 UTC', '...+00:00', '...Z'."""
    typed = typed_timestamp(expr, dtype)
    if typed is not None:
        return typed
    text = blank_to_null(expr.cast(pl.String)).str.strip_chars()
    text = (text.str.replace(r"\s*UTC$", "+00:00").str.replace("T", " ", literal=True)
            .str.replace(r"Z$", "+00:00"))
    text = (pl.when(text.str.contains(r"[+-]\d{2}:?\d{2}$")).then(text)
            .when(text.str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(text + " 00:00:00+00:00")
            .otherwise(text + "+00:00"))
    return text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%z", strict=False, time_unit="us").cast(TIMESTAMP)


def _cast_field(expr: pl.Expr, source: pl.DataType | None, target: pl.DataType) -> pl.Expr:
    if source is None or source == pl.Null:
        return pl.lit(None, target)
    if target == pl.String:  # values inside repeated fields are kept as delivered ('' included)
        return expr.cast(pl.String)
    if target == MONEY:
        return (blank_to_null(expr).str.strip_chars().cast(MONEY, strict=False) if source == pl.String
                else expr.cast(MONEY, strict=False))
    if target == pl.Boolean and source == pl.String:
        lowered = expr.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    return expr.cast(target, strict=False)


def _plain_cast(source: pl.DataType, target: pl.DataType) -> bool:
    """Whether a plain cast gives what _cast_field would (no text parsing)."""
    if source == target or source == pl.Null:
        return True
    return target == MONEY and (source.is_numeric() or source.is_decimal())


def _normalize_list(expr: pl.Expr, dtype: pl.DataType, fields: dict[str, pl.DataType]) -> pl.Expr:
    """A delivered repeated struct field as List(Struct(fields)): missing fields become nulls."""
    target = pl.List(pl.Struct(fields))
    if dtype == pl.Null or (isinstance(dtype, pl.List) and dtype.inner == pl.Null):
        return expr.cast(target)
    inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else None
    if not isinstance(inner, pl.Struct):
        raise TypeError(f"not a list of structs: {dtype}")
    have = {f.name: f.dtype for f in inner.fields}
    if list(have) == list(fields) and all(_plain_cast(have[n], t) for n, t in fields.items()):
        return expr.cast(target)  # same fields in the same order: a cast, much cheaper than list.eval
    element = pl.element()
    members = [_cast_field(element.struct.field(name), have.get(name), t).alias(name) if name in have
               else pl.lit(None, t).alias(name) for name, t in fields.items()]
    if isinstance(dtype, pl.Array):
        expr = expr.arr.to_list()
    return expr.list.eval(pl.struct(members)).cast(target)


def _quantize(value) -> Decimal:
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    if not amount.is_finite():
        raise InvalidOperation(str(value))
    return amount.quantize(Decimal("1E-12"))


def _decode_items(text: str, name: str) -> list[dict]:
    """JSON or Python-repr text of a repeated field as a list of dicts with the field's keys."""
    try:
        value = json.loads(text)
    except ValueError:
        value = ast.literal_eval(text)  # koku writes Python reprs: single quotes, None
    if isinstance(value, dict) and name in ("labels", "system_labels", "project_labels"):
        value = [{"key": k, "value": v} for k, v in value.items()]  # a {key: value} object
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError("not a list of objects")
    fields = REPEATED_COLUMNS[name]
    out = []
    for item in value:
        row = {}
        for key, t in fields.items():
            v = item.get(key)
            if v is None:
                row[key] = None
            elif t == MONEY:
                row[key] = _quantize(v)
            elif t == pl.Boolean:
                row[key] = v if isinstance(v, bool) else str(v).lower() == "true"
            else:
                row[key] = v if isinstance(v, str) else json.dumps(v)
        out.append(row)
    return out


def _parse_repeated_text(name: str, label: str):
    """A map_batches function: text of a repeated field -> struct {value, error}."""
    target = RAW_TYPES[name]

    def parse(series: pl.Series) -> pl.Series:
        cache: dict[str, tuple[list | None, str | None]] = {}
        values, errors = [], []
        for text in series.to_list():
            if text is None or not text.strip():
                values.append(None)
                errors.append(None)
                continue
            hit = cache.get(text)
            if hit is None:
                try:
                    hit = (_decode_items(text, name), None)
                except (ValueError, SyntaxError, TypeError, InvalidOperation, MemoryError, RecursionError):
                    shown = text if len(text) <= 200 else text[:200] + "..."
                    hit = (None, f"{label}: '{shown}' is not a JSON list of {name.replace('_', ' ')}")
                cache[text] = hit
            values.append(hit[0])
            errors.append(hit[1])
        return pl.DataFrame({"value": pl.Series(values, dtype=target),
                             "error": pl.Series(errors, dtype=pl.String)}).to_struct(series.name)

    return parse


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One extract file as typed raw rows with canonical flat names and lineage columns."""
    label = label or str(path)
    lower = str(path).lower()
    lf = scan_file(path, storage_options=storage_options)
    schema = file_schema(lf, label)
    kind = ("parquet" if lower.endswith(".parquet")
            else "jsonl" if lower.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".json")) else "csv")
    if kind == "csv":
        check_csv_structure(str(path), label, storage_options)
    if detect_format(schema.names()) is None:
        why = near_miss(schema.names()) or "not a GCP billing export (no billing_account_id, cost, sku/invoice)"
        raise SourceFormatError(f"{label}: {why}")
    fields = _flatten(schema)
    by_name: dict[str, _Field] = {}
    for f in fields:
        if f.name in by_name:
            raise SourceFormatError(f"{label}: columns {by_name[f.name].label!r} and {f.label!r} both mean {f.name}")
        by_name[f.name] = f
    missing = [_dotted(n) for n in REQUIRED_COLUMNS if n not in by_name]
    if missing:
        raise SourceFormatError(f"{label}: required column(s) missing: {', '.join(missing)}")

    rows = numbered(lf, kind == "csv")
    # Repeated fields delivered as text are parsed first (one Python pass per distinct value).
    text_repeated = [n for n in REPEATED_COLUMNS if n in by_name and by_name[n].dtype == pl.String]
    if text_repeated:
        rows = rows.with_columns(
            by_name[n].expr.map_batches(_parse_repeated_text(n, by_name[n].label),
                                        return_dtype=pl.Struct({"value": RAW_TYPES[n], "error": pl.String}),
                                        is_elementwise=True).alias(f"__parsed_{n}")
            for n in text_repeated)

    exprs: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    warnings: list[pl.Expr] = []
    for name in KNOWN_COLUMNS:
        f = by_name.get(name)
        if f is None:
            exprs.append(pl.lit(None, RAW_TYPES[name]).alias(name))
            continue
        source, dtype = f.expr, f.dtype
        if name in DECIMAL_COLUMNS:
            typed = as_decimal(source, dtype)
            amounts.append(amount_error(f.label, source, dtype, typed))
        elif name in TIMESTAMP_COLUMNS:
            typed = _timestamp(source, dtype)
            if not isinstance(dtype, (pl.Datetime, pl.Date)):
                errors.append(parse_error(f.label, source, typed, "a timestamp"))
        elif name in REPEATED_COLUMNS:
            if name in text_repeated:
                parsed = pl.col(f"__parsed_{name}")
                typed = parsed.struct.field("value")
                (errors if name in COST_BEARING else warnings).append(parsed.struct.field("error"))
            else:
                try:
                    typed = _normalize_list(source, dtype, REPEATED_COLUMNS[name])
                except TypeError as exc:
                    raise SourceFormatError(f"{label}: column {f.label!r} is {dtype}, expected a list of "
                                            f"structs or JSON text") from exc
        else:
            typed = _text(source, dtype)
            if name == "invoice_month":
                typed = typed.str.strip_chars()
                errors.append(pl.when(typed.is_not_null() & ~typed.str.contains(INVOICE_MONTH_PATTERN))
                              .then(pl.format(f"{f.label}: '{{}}' is not a month YYYYMM", typed)))
        exprs.append(typed.alias(name))
    extras = [f for f in fields if f.name not in RAW_TYPES]
    for f in extras:
        exprs.append(_text(f.expr, f.dtype).alias(f.name))

    warns = pl.concat_str(warnings, separator="; ", ignore_nulls=True) if warnings else pl.lit(None, pl.String)
    detailed = any(m in by_name for m in DETAILED_MARKERS)
    version = f"{'detailed' if detailed else 'standard'} {'csv (flattened)' if kind == 'csv' else kind}"
    invoice_period = pl.when(pl.col("invoice_month").str.contains(INVOICE_MONTH_PATTERN)).then(
        pl.concat_str([pl.col("invoice_month").str.slice(0, 4), pl.lit("-"), pl.col("invoice_month").str.slice(4, 2)]))
    pacific_month = pl.col("usage_start_time").dt.convert_time_zone(PACIFIC).dt.strftime("%Y-%m")
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.coalesce(invoice_period, pacific_month))
    return typed_raw_rows(rows, exprs, errors, [
        pl.when(warns != "").then(warns).alias("x_ParseWarnings"),
        *lineage_columns(lineage, FORMAT, version, label),
    ], period.cast(pl.String), amounts)


# ---------------------------------------------------------------------------------------------
# Raw → FOCUS
# ---------------------------------------------------------------------------------------------
class _Cols:
    """Column access on a raw frame (a raw table may predate a column)."""

    def __init__(self, schema: pl.Schema):
        self.schema = schema

    def __call__(self, name: str) -> pl.Expr:
        if name in self.schema:
            return pl.col(name)
        return pl.lit(None, RAW_TYPES.get(name, pl.String))


def _credit_amounts(credits: pl.Expr, keep: pl.Expr | None = None) -> pl.Expr:
    """Sum of credits.amount (of the credits ``keep`` selects; null amounts count 0)."""
    amount = pl.element().struct.field("amount")
    picked = amount if keep is None else amount.filter(keep)
    return credits.list.eval(picked.fill_null(0)).list.sum().fill_null(0).cast(MONEY)


def _is_discount() -> pl.Expr:
    return pl.element().struct.field("type").is_in(DISCOUNT_CREDIT_TYPES).fill_null(False)


def _is_cud() -> pl.Expr:
    return pl.element().struct.field("type").is_in(list(CUD_CREDIT_TYPES)).fill_null(False)


def _invoice_period(col: _Cols) -> pl.Expr:
    m = col("invoice_month")
    return pl.when(m.str.contains(INVOICE_MONTH_PATTERN)).then(
        pl.concat_str([m.str.slice(0, 4), pl.lit("-"), m.str.slice(4, 2)]))


def _quarantine_checks(schema: pl.Schema) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, reason) pairs: a raw row meeting any condition cannot be converted."""
    col = _Cols(schema)
    cost_type = col("cost_type").str.to_lowercase()
    invoice_period = _invoice_period(col)
    parse = pl.col("x_ParseErrors") if "x_ParseErrors" in schema else pl.lit(None, pl.String)
    return [
        (parse.is_not_null(), parse),
        (col("billing_account_id").is_null(), pl.lit("billing_account_id is empty")),
        (col("currency").is_null(), pl.lit("currency is empty")),
        (col("cost").is_null() & parse.is_null(), pl.lit("cost is empty")),
        (col("usage_start_time").is_null() & parse.is_null(), pl.lit("usage_start_time is empty")),
        (cost_type.is_not_null() & ~cost_type.is_in(list(COST_TYPES)),
         pl.format("unknown cost_type '{}'", col("cost_type"))),
        (invoice_period.is_not_null() & (invoice_period != pl.col("x_BillingPeriod")),
         pl.format("invoice.month {} is not the billing period {} of its delivery (deliver each invoice month "
                   "in its own YYYY-MM folder)", col("invoice_month"), pl.col("x_BillingPeriod"))),
    ]


def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a raw row cannot be converted (null for a convertible row)."""
    joined = pl.concat_str([pl.when(cond).then(msg) for cond, msg in _quarantine_checks(schema)],
                           separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def _convertible(schema: pl.Schema) -> pl.Expr:
    return ~pl.any_horizontal(cond.fill_null(False) for cond, _ in _quarantine_checks(schema))


def billed_basis(schema: pl.Schema) -> pl.Expr:
    """The invoice basis of a raw row: cost + sum(credits.amount) (GCP's invoice total formula)."""
    col = _Cols(schema)
    return (col("cost").fill_null(0).cast(MONEY) + _credit_amounts(col("credits"))).cast(MONEY)


def _with_lookups(raw: pl.LazyFrame, col: _Cols) -> pl.LazyFrame:
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


def _tag_key(col: _Cols) -> pl.Expr:
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


def _tags(col: _Cols) -> pl.Expr:
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


def _staged(raw: pl.LazyFrame, col: _Cols) -> pl.LazyFrame:
    """Convertible rows with the lookups and every intermediate value computed once, as
    __ columns (an expression used by several FOCUS columns would otherwise be evaluated each time)."""
    convertible = raw.filter(_convertible(raw.collect_schema()))
    bp_starts, bp_ends = _period_bounds()
    rows = _with_lookups(convertible, col).with_columns(
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
    qty = pl.col("__qty").cast(pl.Float64)
    nonzero_qty = pl.when(qty != 0).then(qty)

    def unit_price(total: str, fallback: str) -> pl.Expr:
        derived = (pl.col(total).cast(pl.Float64) / nonzero_qty).cast(MONEY, strict=False)
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
    cost_f = cost.cast(pl.Float64)
    covered_share = pl.min_horizontal(pl.lit(1.0), -pl.col("__cud").cast(pl.Float64) / pl.when(cost_f != 0).then(cost_f))
    return rows.with_columns(
        pl.when(~cd).then(None)
        .when(spend & pl.col("__fee")).then(cost)
        .when(spend).then(-pl.col("__cud"))
        .when(pl.col("__fee")).then(pl.col("__qty"))
        .otherwise((qty * covered_share).cast(MONEY, strict=False)).alias("__cd_qty"))


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows, plus one Credit row per payment-type credit."""
    schema = raw.collect_schema()
    col = _Cols(schema)
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
        pl.when(col("invoice_month").is_null()).then(pl.format(
            "BillingPeriod: invoice.month empty; {} taken from the delivery or, for a single file, the "
            "Pacific-time month of usage_start_time", c("x_BillingPeriod"))),
        pl.when(col("cost_type").is_null()).then(pl.lit("ChargeCategory: cost_type empty; regular assumed")),
        pl.when(col("sku_description").is_null() & c("__description").is_not_null()).then(
            pl.lit("ChargeDescription: sku.description empty; from cost_type, adjustment_info and service")),
        pl.when(partner).then(pl.lit(f"InvoiceIssuerName: invoice.publisher_type PARTNER; the partner is not "
                                     f"named in the export ({PARTNER_ISSUER})")),
        c("x_ParseWarnings").str.replace_all("; ", LIST_SEPARATOR, literal=True) if "x_ParseWarnings" in schema
        else pl.lit(None, pl.String),
    ]
    main_changes = [
        pl.when(c("__netted") != 0).then(pl.format(
            "BilledCost/EffectiveCost: cost {} + discount credits {} (sustained use, committed use, free tier, "
            "contract: netted into the row, R-Disc-1)", col("cost"), c("__netted"))),
        pl.when(priced & col("cost_at_list").is_null()).then(pl.lit("ListCost: cost_at_list absent; cost used")),
        pl.when(c("__lup").is_not_null() | c("__cup").is_not_null()).then(pl.lit(
            "ListUnitPrice/ContractedUnitPrice: ListCost / ContractedCost divided by usage.amount_in_pricing_units")),
        pl.when(c("__sku_price").is_not_null()).then(pl.lit(
            "SkuPriceId: sku.id (and price.tier_start_amount); the export has no price id")),
        pl.when(c("__qty").is_not_null() & (c("__pricing_unit_focus") != c("__pricing_unit_gcp")).fill_null(False))
        .then(pl.format("PricingUnit: '{}' in FOCUS unit format", c("__pricing_unit_gcp"))),
        pl.when(c("__consumed").is_not_null() & (c("__usage_unit_focus") != c("__usage_unit_gcp")).fill_null(False))
        .then(pl.format("ConsumedUnit: '{}' in FOCUS unit format", c("__usage_unit_gcp"))),
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
    note = pl.format("derived: {} credit '{}' of row {} ({}) as its own Credit row (a form of payment, not a "
                     "discount of the row's price)", credit.struct.field("type").fill_null("untyped"),
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


def quarantine(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows that cannot be converted, with the reason, the billed amount and lineage."""
    schema = raw.collect_schema()
    col = _Cols(schema)
    lineage = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
    # the reason is computed once, then filtered on (filtering on the expression and selecting it again
    # makes polars 2.1 panic on some inputs)
    return raw.with_columns(quarantine_reason(schema).alias("x_QuarantineReason")).filter(
        pl.col("x_QuarantineReason").is_not_null()).select(
        "x_QuarantineReason",
        billed_basis(schema).alias("x_BilledCost"),
        billed_basis(schema).alias("x_EffectiveCost"),
        col("billing_account_id").alias("BillingAccountId"),
        col("currency").alias("BillingCurrency"),
        col("cost_type").alias("x_ChargeType"),
        *[pl.col(n) for n in lineage],
    )


def raw_totals(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Per billing account, invoice month and currency: cost + credits (billed; amortized is the same:
    GCP bills commitments hourly with their usage), rows, quarantined rows; nothing is dropped."""
    schema = raw.collect_schema()
    basis = billed_basis(schema)
    return (raw.group_by(pl.col("billing_account_id").alias("BillingAccountId"), "x_BillingPeriod",
                         pl.col("currency").alias("BillingCurrency"))
            .agg(basis.sum().alias("billed"), basis.sum().alias("amortized"), pl.len().alias("rows"),
                 quarantine_reason(schema).is_not_null().sum().alias("quarantined_rows"),
                 pl.lit(0, pl.UInt32).alias("dropped_rows")))


__all__ = ["FORMAT", "RAW_TABLE", "detect_format", "near_miss", "quarantine", "raw_totals", "scan_raw", "to_focus"]
