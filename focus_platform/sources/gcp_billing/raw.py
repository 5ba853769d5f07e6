"""GCP billing export, the raw side: header names, reading one extract file into typed raw rows
(``scan_raw``) and what a valid raw row is (``quarantine_reason``). The mapping and the totals both
import this module; nothing here decides how a row maps to FOCUS or what it costs.

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
``credits`` go to ``x_ParseErrors`` (the row is quarantined: its cost cannot be known); amounts
(``cost``, ``credits.amount``, ...: ``1,234.56``, ``NaN``, a float beyond Decimal(38, 12)) are also
kept apart with their raw text in ``x_UnreadableAmounts``; a credit without an amount quarantines
its row too. Malformed ``labels`` / ``system_labels`` / ``project.labels`` / ``tags`` /
``project.ancestors`` only go to ``x_ParseWarnings`` (the row is converted without them, the
problem in x_SourceChanges).
Required columns: ``billing_account_id``, ``cost``, ``currency``, ``usage_start_time``,
``invoice.month``. A file without ``currency`` is refused, unless the source declares its billing
currency (``Lineage.billing_currency``): then ``currency`` is that currency and ``x_DeclaredCurrency``
holds it on the file's rows (the FOCUS rows say so in x_SourceChanges).

Billing period
--------------
``invoice.month`` (YYYYMM) is the billing period: GCP invoices by Pacific-time month, so
BillingPeriodStart/End are the month's bounds in America/Los_Angeles, as UTC (07:00 or 08:00 UTC).
``x_BillingPeriod`` = ``invoice.month`` as ``YYYY-MM`` (never the UTC month of usage_start_time:
late usage lands on the next invoice). In a landing-zone delivery it is the delivery's period, and
a row whose ``invoice.month`` names another month is quarantined (deliver one folder per invoice
month). A row with an empty ``invoice.month`` takes the delivery's period, or for a single file the
Pacific-time month of its usage_start_time, noted in x_SourceChanges.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from focus_platform.sources import common
from focus_platform.sources.common import (
    DECLARE_CURRENCY_HINT,
    DECLARED_CURRENCY,
    JSON_LINES_SUFFIXES,
    Lineage,
    SourceFormatError,
    amount_error,
    as_decimal,
    blank_to_null,
    delivered_file,
    lineage_columns,
    numbered,
    parse_error,
    typed_raw_rows,
    typed_timestamp,
)
from focus_platform.spec.columns import MONEY, TIMESTAMP

FORMAT = "gcp-billing"
# The billing export documents no per-row identity: no copies are looked for
LINE_ITEM_KEY: tuple[str, ...] = ()
LINE_ITEM_NAME = ""
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

# cost_type values a row may have (their FOCUS ChargeCategory, ChargeFrequency: see mapping)
COST_TYPES = {  # cost_type -> ChargeCategory, ChargeFrequency (a CUD fee overrides: Purchase, Recurring)
    "regular": ("Usage", "Usage-Based"),
    "tax": ("Tax", "One-Time"),
    "adjustment": ("Adjustment", "One-Time"),
    "rounding error": ("Adjustment", "One-Time"),
    "rounding_error": ("Adjustment", "One-Time"),
}
INVOICE_MONTH_PATTERN = r"^\d{4}(0[1-9]|1[0-2])$"


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
        return as_decimal(expr, source)
    if target == pl.Boolean and source == pl.String:
        lowered = expr.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    return expr.cast(target, strict=False)


def _plain_cast(source: pl.DataType, target: pl.DataType) -> bool:
    """Whether a plain cast gives what _cast_field would (no text parsing, no float out of range)."""
    if source == target or source == pl.Null:
        return True
    return target == MONEY and (source.is_integer() or source.is_decimal())


def _fields(dtype: pl.DataType) -> dict[str, pl.DataType]:
    """The fields of a delivered repeated struct column (a list or array of structs)."""
    inner = dtype.inner if isinstance(dtype, (pl.List, pl.Array)) else None
    if not isinstance(inner, pl.Struct):
        raise TypeError(f"not a list of structs: {dtype}")
    return {f.name: f.dtype for f in inner.fields}


def _as_list(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return expr.arr.to_list() if isinstance(dtype, pl.Array) else expr


def _normalize_list(expr: pl.Expr, dtype: pl.DataType, fields: dict[str, pl.DataType]) -> pl.Expr:
    """A delivered repeated struct field as List(Struct(fields)): missing fields become nulls."""
    target = pl.List(pl.Struct(fields))
    if dtype == pl.Null or (isinstance(dtype, pl.List) and dtype.inner == pl.Null):
        return expr.cast(target)
    have = _fields(dtype)
    if list(have) == list(fields) and all(_plain_cast(have[n], t) for n, t in fields.items()):
        return expr.cast(target)  # same fields in the same order: a cast, much cheaper than list.eval
    element = pl.element()
    members = [_cast_field(element.struct.field(name), have.get(name), t).alias(name) if name in have
               else pl.lit(None, t).alias(name) for name, t in fields.items()]
    return _as_list(expr, dtype).list.eval(pl.struct(members)).cast(target)


def _unreadable_list_amounts(expr: pl.Expr, dtype: pl.DataType, fields: dict[str, pl.DataType],
                             label: str) -> list[pl.Expr]:
    """``common.amount_error`` messages of the money fields of a repeated column (e.g. a credit
    amount 'NaN' or 1e30), joined per row; none for fields that are always readable."""
    if dtype == pl.Null or (isinstance(dtype, pl.List) and dtype.inner == pl.Null):
        return []
    have = _fields(dtype)
    out = []
    for name, t in fields.items():
        if t != MONEY or name not in have or _plain_cast(have[name], t):
            continue
        messages = _as_list(expr, dtype).list.eval(
            amount_error(f"{label}.{name}", pl.element().struct.field(name), have[name]))
        joined = messages.list.drop_nulls().list.join("; ")
        out.append(pl.when(joined != "").then(joined))
    return out


def _text_fields(name: str) -> dict[str, pl.DataType]:
    """The fields of a repeated column as parsed from text: money kept as text, typed like every
    other delivered amount (``_normalize_list``)."""
    return {k: pl.String if t == MONEY else t for k, t in REPEATED_COLUMNS[name].items()}


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
                row[key] = repr(v) if isinstance(v, float) else str(v)
            elif t == pl.Boolean:
                row[key] = v if isinstance(v, bool) else str(v).lower() == "true"
            else:
                row[key] = v if isinstance(v, str) else json.dumps(v)
        out.append(row)
    return out


# Repeated-field text the vectorized decoder reads exactly as ``_decode_items`` would: a JSON list
# of objects, or koku's Python repr of one without double quotes or escapes (its single quotes then
# delimit every string, so None / True / False outside them are the only words to translate).
JSON_LIST = r"^\s*\[\s*(\]|\{\s*\")"
PLAIN_REPR_LIST = r"^\s*\[\s*(\]|\{\s*')[^\"\\]*$"
REPR_WORDS = {"None": "null", "True": "true", "False": "false"}
# An even number of quotes, an opening quote, then one of REPR_WORDS before the string closes
REPR_WORD_IN_STRING = r"^(?:[^']*'[^']*')*[^']*'[^']*\b(?:None|True|False)\b"


def _repr_as_json(text: pl.Expr) -> pl.Expr:
    """A PLAIN_REPR_LIST text as JSON (null when a string inside it holds None, True or False)."""
    json = text.str.replace_all("'", '"', literal=True)
    for word, literal in REPR_WORDS.items():
        json = json.str.replace_all(rf"\b{word}\b", literal)
    return pl.when(~text.str.contains(REPR_WORD_IN_STRING)).then(json)


def _decoded_texts(texts: pl.Series, target: pl.DataType) -> pl.Series | None:
    """The texts of one batch decoded at once (null where a text is blank or needs ``_decode_items``),
    or None when one of them is not valid JSON (then every text of the batch goes through Python)."""
    text = pl.col("text")
    as_json = (pl.when(text.str.contains(JSON_LIST)).then(text)
               .when(text.str.contains(PLAIN_REPR_LIST)).then(_repr_as_json(text)))
    try:
        decoded = texts.to_frame("text").select(as_json.str.json_decode(target).alias("v")).to_series()
    except pl.exceptions.PolarsError:  # invalid JSON, a value of another type than the field's
        return None
    # ``_decode_items`` refuses a null item ('[null]'): left to it, with its message
    return decoded.to_frame("v").select(
        pl.when(~pl.col("v").list.eval(pl.element().is_null()).list.any()).then(pl.col("v"))).to_series()


def _parse_repeated_text(name: str, label: str):
    """A map_batches function: text of a repeated field -> struct {value, error} (money as text).
    JSON lists (and plain Python reprs) are decoded for the whole batch at once; only the other
    texts, and every text of a batch holding invalid JSON, are parsed one distinct value at a time."""
    target = pl.List(pl.Struct(_text_fields(name)))

    def one_by_one(texts: list[str | None]) -> tuple[list, list]:
        cache: dict[str, tuple[list | None, str | None]] = {}
        values, errors = [], []
        for text in texts:
            if text is None or not text.strip():
                values.append(None)
                errors.append(None)
                continue
            hit = cache.get(text)
            if hit is None:
                try:
                    hit = (_decode_items(text, name), None)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    shown = text if len(text) <= 200 else text[:200] + "..."
                    hit = (None, f"{label}: '{shown}' is not a JSON list of {name.replace('_', ' ')}")
                cache[text] = hit
            values.append(hit[0])
            errors.append(hit[1])
        return values, errors

    def parse(series: pl.Series) -> pl.Series:
        decoded = _decoded_texts(series, target)
        if decoded is None:
            values, errors = one_by_one(series.to_list())
            return pl.DataFrame({"value": pl.Series(values, dtype=target),
                                 "error": pl.Series(errors, dtype=pl.String)}).to_struct(series.name)
        fast = pl.DataFrame({"value": decoded, "error": pl.Series([None] * len(series), dtype=pl.String)})
        rest = (decoded.is_null() & series.is_not_null() & (series.str.strip_chars() != "")).arg_true()
        if rest.is_empty():
            return fast.to_struct(series.name)
        values, errors = one_by_one(series.gather(rest).to_list())
        slow = pl.DataFrame({"value": pl.Series(values, dtype=target), "error": pl.Series(errors, dtype=pl.String)})
        return fast.with_row_index("i").update(slow.with_columns(rest.alias("i")), on="i", include_nulls=True) \
            .drop("i").to_struct(series.name)

    return parse


def _json_lines(path: str | Path, schema: pl.Schema, storage_options: dict | None) -> pl.LazyFrame:
    """A JSON-lines file as the rows Polars' NDJSON reader gives with ``schema`` (inferred over the
    whole file by ``delivered_file``, so every line decodes), but decoded from its lines with
    ``str.json_decode``: Polars 2.1's reader takes ~100 µs a nested GCP row, the decode ~15 µs.
    Blank lines are no rows, as for the reader. (A line is never split: JSON text holds no raw
    control character, so neither the separator \\x01 nor a quote ends a field.)"""
    lines = pl.scan_csv(str(path), has_header=False, separator="\x01", quote_char=None, schema={"line": pl.String},
                        storage_options=storage_options)
    line = pl.col("line")
    return lines.filter(line.str.contains(r"\S")).select(line.str.json_decode(pl.Struct(schema))).unnest("line")


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One extract file as typed raw rows with canonical flat names and lineage columns."""
    label = label or str(path)
    lower = str(path).lower()
    lf, schema = delivered_file(path, label, storage_options)
    kind = ("parquet" if lower.endswith(".parquet")
            else "jsonl" if lower.endswith(JSON_LINES_SUFFIXES) else "csv")
    if kind == "jsonl":
        lf = _json_lines(path, schema, storage_options)
    if detect_format(schema.names()) is None:
        why = near_miss(schema.names()) or "not a GCP billing export (no billing_account_id, cost, sku/invoice)"
        raise SourceFormatError(f"{label}: {why}")
    fields = _flatten(schema)
    by_name: dict[str, _Field] = {}
    for f in fields:
        if f.name in by_name:
            raise SourceFormatError(f"{label}: columns {by_name[f.name].label!r} and {f.label!r} both mean {f.name}")
        by_name[f.name] = f
    declared = lineage.billing_currency if "currency" not in by_name else None
    missing = [_dotted(n) for n in REQUIRED_COLUMNS if n not in by_name and not (n == "currency" and declared)]
    if missing:
        hint = f" ({DECLARE_CURRENCY_HINT})" if "currency" in missing else ""
        raise SourceFormatError(f"{label}: required column(s) missing: {', '.join(missing)}{hint}")

    rows = numbered(lf, kind == "csv")
    # Repeated fields delivered as text are parsed first (see _parse_repeated_text).
    text_repeated = [n for n in REPEATED_COLUMNS if n in by_name and by_name[n].dtype == pl.String]
    if text_repeated:
        rows = rows.with_columns(
            by_name[n].expr.map_batches(_parse_repeated_text(n, by_name[n].label),
                                        return_dtype=pl.Struct({"value": pl.List(pl.Struct(_text_fields(n))),
                                                                    "error": pl.String}),
                                        is_elementwise=True).alias(f"__parsed_{n}")
            for n in text_repeated)

    exprs: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    warnings: list[pl.Expr] = []
    for name in KNOWN_COLUMNS:
        f = by_name.get(name)
        if f is None:
            value = declared if name == "currency" else None
            exprs.append(pl.lit(value, RAW_TYPES[name]).alias(name))
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
                (errors if name in COST_BEARING else warnings).append(parsed.struct.field("error"))
                source, dtype = parsed.struct.field("value"), pl.List(pl.Struct(_text_fields(name)))
            try:
                typed = _normalize_list(source, dtype, REPEATED_COLUMNS[name])
                amounts.extend(_unreadable_list_amounts(source, dtype, REPEATED_COLUMNS[name], f.label))
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
        pl.lit(declared, pl.String).alias(DECLARED_CURRENCY),
        *lineage_columns(lineage, FORMAT, version, label),
    ], period.cast(pl.String), amounts)



# ---------------------------------------------------------------------------------------------
# What a valid raw row is (the mapping and the totals both use this)
# ---------------------------------------------------------------------------------------------
class RawColumns(common.RawColumns):
    """An absent column (a raw table may predate it) reads as null of its raw type."""

    def type_of(self, name: str) -> pl.DataType:
        return RAW_TYPES.get(name, pl.String)


def _invoice_period(col: RawColumns) -> pl.Expr:
    m = col("invoice_month")
    return pl.when(m.str.contains(INVOICE_MONTH_PATTERN)).then(
        pl.concat_str([m.str.slice(0, 4), pl.lit("-"), m.str.slice(4, 2)]))


def _quarantine_checks(schema: pl.Schema) -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition, reason) pairs: a raw row meeting any condition cannot be converted."""
    col = RawColumns(schema)
    cost_type = col("cost_type").str.to_lowercase()
    invoice_period = _invoice_period(col)
    parse = pl.col("x_ParseErrors") if "x_ParseErrors" in schema else pl.lit(None, pl.String)
    return [
        (parse.is_not_null(), parse),
        (col("billing_account_id").is_null(), pl.lit("billing_account_id is empty")),
        (col("currency").is_null(), pl.lit("currency is empty")),
        (col("cost").is_null() & parse.is_null(), pl.lit("cost is empty")),
        (col("credits").list.eval(pl.element().struct.field("amount").is_null()).list.any() & parse.is_null(),
         pl.lit("credits: a credit without an amount (the row's invoiced amount is unknown)")),
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


def convertible(schema: pl.Schema) -> pl.Expr:
    """Whether a raw row can be converted (``quarantine_reason`` is null), without building the reason."""
    return ~pl.any_horizontal(cond.fill_null(False) for cond, _ in _quarantine_checks(schema))
