"""Native FOCUS exports: detection, reading delivered files into typed raw rows, and what a valid
raw row is (both the mapping and the totals import this module).

Detection (``detect_format`` / ``near_miss``): a file is a FOCUS cost-and-usage export when its header
has the FOCUS core columns (BilledCost, EffectiveCost, ChargeCategory, ChargePeriodStart, ...). The
version is read from the columns a version introduced: 1.3 (ServiceProviderName, HostProviderName,
ContractApplied, Allocated*), 1.2 (InvoiceId, PricingCurrency*, SubAccountType), 1.1
(CapacityReservation*, CommitmentDiscountQuantity/Unit, ServiceSubcategory, SkuMeter, SkuPriceDetails),
else 1.0. Refused with a clear error: 1.0-preview / 0.5 files (ChargeSubcategory, UsageQuantity,
Provider, ...), 1.4 files (InvoiceDetailId, no ProviderName), the 1.3 ContractCommitment dataset (not
cost and usage), and a file missing a column its version makes Mandatory (the error names file and
column). The columns of every version ship as ``focus_columns.csv`` (from the FOCUS 1.0/1.2/1.3 spec).

Reading (``scan_raw`` → ``raw_focus``): every delivered column is kept. FOCUS columns get their
canonical name (header case ignored, BOM stripped) and type: Decimal(38, 12) money and quantities,
UTC timestamps, strings as delivered (placeholders like ``NULL`` are kept in the raw table for string
columns; in typed columns they read as null). Timestamps are accepted in the forms exports write:
``2024-09-01T00:00:00Z`` (FOCUS), ``2024-09-01 00:00:00`` (no ``T``/``Z``, read as UTC),
``2024-07-01T00:00Z`` (no seconds), offsets (``+02:00``, converted to UTC) and dates. Every such read
fix is listed per row in ``x_ReadNotes``, which starts the row's ``x_SourceChanges``; a value that does
not parse is a ``x_ParseErrors`` entry (the row is quarantined). Columns that are not FOCUS columns of
any version are kept with their (Delta-safe) name, as text (nested Parquet values as JSON: one raw
table holds every provider's extras); ``x_`` columns delivered by the provider pass through, others
become ``x_<name>`` in FOCUS.

A file without BillingCurrency is refused, naming the column, unless the source declares its billing
currency (``Lineage.billing_currency``): the column is then filled with it and ``x_DeclaredCurrency``
holds it on those rows.

Duplicated line items: FOCUS 1.0 to 1.3 define no per-row identity (no line item id; InvoiceDetailId,
an invoice line, arrives only in 1.4, which is not supported), and the providers' FOCUS exports add
none, so no row is taken for a copy of another: a copy cannot be told apart from two genuine charges.
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
    delivered_file,
    joined_strings,
    lineage_columns,
    lookup_rows,
    map_to_json,
    masked_format,
    numbered,
    typed_raw_rows,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    TIMESTAMP,
    focus_column,
)
from focus_platform.spec.io import (
    ISO_DATETIME,  # the FOCUS form our own FOCUS reader checks
)
from focus_platform.spec.rules import iso_currency_codes

FORMAT = "focus"
# FOCUS 1.0-1.3 define no per-row identity (InvoiceDetailId comes with 1.4): no copies are looked for
LINE_ITEM_KEY: tuple[str, ...] = ()
LINE_ITEM_NAME = ""
RAW_TABLE = "raw_focus"
SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
CURRENCY_COLUMN = "BillingCurrency"


# ---------------------------------------------------------------------------------------------
# The FOCUS columns of every version, and what tells the versions apart
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecColumn:
    name: str
    data_type: str  # String, Decimal, DateTime, JSON
    introduced: str  # 0.5, 1.0-preview, 1.0, 1.1, 1.2, 1.3
    mandatory_in: tuple[str, ...]  # versions whose Cost and Usage dataset makes it Mandatory


@cache
def spec_columns() -> dict[str, SpecColumn]:
    return {r["column_id"]: SpecColumn(r["column_id"], r["type"], r["introduced"], tuple(r["mandatory_in"].split()))
            for r in lookup_rows("focus_columns.csv")}


@cache
def _by_key() -> dict[str, str]:
    return {n.lower(): n for n in spec_columns()}


CORE_COLUMNS = ("BilledCost", "EffectiveCost", "ChargeCategory", "ChargePeriodStart", "BillingPeriodStart",
                "BillingCurrency", "BillingAccountId")
# Columns only FOCUS 1.0-preview / 0.5 have (renamed or removed in 1.0)
PREVIEW_COLUMNS = ("ChargeSubcategory", "UsageQuantity", "UsageUnit", "Provider", "Publisher", "InvoiceIssuer",
                   "Region", "AmortizedCost")
V14_COLUMNS = ("InvoiceDetailId", "CommitmentProgramEligibilityDetails")
CONTRACT_COMMITMENT_COLUMNS = ("ContractCommitmentId", "ContractCommitmentCost", "ContractCommitmentType")
VERSION_MARKERS = {  # columns introduced by the version (present → at least this version)
    "1.3": ("ServiceProviderName", "HostProviderName", "ContractApplied", "AllocatedMethodId",
            "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags"),
    "1.2": ("InvoiceId", "PricingCurrency", "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
            "PricingCurrencyListUnitPrice"),
    "1.1": ("CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
            "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails"),
}
# Microsoft's 1.0 export carries BillingAccountType / SubAccountType (1.2 columns) without x_: they
# do not make a file 1.2, but they are read as the 1.2 columns.


@dataclass(frozen=True)
class Detected:
    version: str | None  # a supported version, or None
    problem: str | None  # why the file cannot be read as a native FOCUS export
    names: dict[str, str]  # delivered header -> raw column name


def _clean_header(header: str) -> str:
    return header.strip().lstrip("\ufeff").strip()


def _safe_name(name: str) -> str:
    """A Delta-safe column name (letters, digits, '_')."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return out or "column"


def _raw_names(headers: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    taken: set[str] = set()
    reserved = set(LINEAGE_SCHEMA) | {"x_ParseErrors", "x_UnreadableAmounts", "x_ReadNotes", DECLARED_CURRENCY}
    for h in headers:
        clean = _clean_header(h)
        name = _by_key().get(clean.lower())
        if name is None:
            name = _safe_name(clean)
            if name in reserved:  # a delivered x_SourceChanges (FinOps hubs output) is not ours
                name = "x_Delivered" + name[2:]
        base, i = name, 2
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        names[h] = name
    return names


def detect(headers: list[str], declared_currency: str | None = None) -> Detected:
    """The FOCUS version of a file from its header, or why it is not a readable FOCUS export (a file
    without BillingCurrency is readable only with the source's declared billing currency)."""
    names = _raw_names(headers)
    present = set(names.values())
    core = [c for c in CORE_COLUMNS if c in present]
    if set(CONTRACT_COMMITMENT_COLUMNS) & present and "BilledCost" not in present:
        return Detected(None, "a FOCUS 1.3 ContractCommitment dataset, not a Cost and Usage dataset: "
                              "it has no charges to convert (only Cost and Usage files are)", names)
    if len(core) < 3:
        return Detected(None, None, names)
    if set(V14_COLUMNS) & present or ("ProviderName" not in present and "ServiceProviderName" in present):
        return Detected(None, "FOCUS 1.4 (InvoiceDetailId / no ProviderName) is not supported; "
                              f"supported versions: {', '.join(SUPPORTED_VERSIONS)}", names)
    version = next((v for v, markers in VERSION_MARKERS.items() if set(markers) & present), None)
    if version is None:
        preview = [c for c in PREVIEW_COLUMNS if c in {_clean_header(h) for h in headers}]
        if preview and not {"ContractedCost", "ChargeClass"} <= present:
            return Detected(None, f"FOCUS 1.0-preview or older (columns {', '.join(preview)}) is not supported; "
                                  f"supported versions: {', '.join(SUPPORTED_VERSIONS)}", names)
        version = "1.0"
    mandatory_version = "1.2" if version == "1.1" else version
    missing = [c.name for c in spec_columns().values() if mandatory_version in c.mandatory_in and c.name not in present
               and not (c.name == CURRENCY_COLUMN and declared_currency)]
    if missing:
        why = " (or declare the source's billing currency)" if CURRENCY_COLUMN in missing else ""
        return Detected(None, f"FOCUS {version} export but required column(s) missing: {', '.join(missing)}{why}",
                        names)
    return Detected(version, None, names)


def detect_format(headers: list[str]) -> str | None:
    found = detect(headers)
    return FORMAT if found.version else None


def near_miss(headers: list[str]) -> str | None:
    return detect(headers).problem


# ---------------------------------------------------------------------------------------------
# Reading a file into typed raw rows
# ---------------------------------------------------------------------------------------------
# Values exports write for "no value" (R-Null-1): read as null, listed in x_SourceChanges
NULL_TOKENS = ("", "NULL", "null", "N/A", "Not Applicable", "None")


def is_placeholder(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars().is_in(NULL_TOKENS).fill_null(False)


def _timestamp_text(text: pl.Expr) -> pl.Expr:
    """Timestamp text as exports write it, as a UTC timestamp (null when it does not parse):
    ``2024-09-01T00:00:00Z``, ``2024-09-01 00:00:00``, ``2024-07-01T00:00Z``, ``2024-09-01``,
    fractions of a second, and UTC offsets (``+02:00``, converted to UTC)."""
    plain = text.str.strip_chars().str.replace("T", " ", literal=True)
    offset = plain.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%:z", strict=False, time_unit="us").dt.convert_time_zone("UTC")
    plain = plain.str.strip_suffix("Z")
    length = plain.str.len_bytes()
    padded = (pl.when(length == 10).then(plain + " 00:00:00").when(length == 16).then(plain + ":00").otherwise(plain))
    full = padded.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us")
    return pl.coalesce(full, offset).cast(TIMESTAMP)


def _typed_focus_column(name: str, header: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr | None, pl.Expr | None]:
    """(typed value, parse error, read note) of one delivered FOCUS column."""
    spec = spec_columns()[name]
    source = pl.col(header)
    if spec.data_type == "Decimal":
        if dtype == pl.String:
            placeholder = is_placeholder(source) & source.is_not_null()
            typed = pl.when(placeholder).then(None).otherwise(as_decimal(header, dtype))
            error = amount_error(name, pl.when(~placeholder).then(source), dtype, typed)
            note = masked_format(placeholder & (source != ""), f"{name}='{{}}'", source)
            return typed, error, note
        typed = as_decimal(header, dtype)
        return typed, amount_error(name, source, dtype, typed), None
    if spec.data_type == "DateTime":
        if dtype == pl.String:
            placeholder = is_placeholder(source) & source.is_not_null()
            typed = pl.when(placeholder).then(None).otherwise(_timestamp_text(source))
            failed = source.is_not_null() & ~placeholder & typed.is_null()
            error = masked_format(failed, f"{name}: '{{}}' is not a timestamp", source)
            note = masked_format(placeholder & (source != ""), f"{name}='{{}}'", source)
            return typed, error, note
        return as_timestamp(header, dtype), None, None
    # String / JSON: a Parquet map of tags (list of key/value structs) as a JSON object, other
    # nested values as JSON, scalars as text
    if _is_key_value(dtype):
        return map_to_json(header, dtype), None, None
    return _extra_column(header, dtype), None, None


def _is_key_value(dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.Map):
        return True
    return (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)
            and {f.name for f in dtype.inner.fields} == {"key", "value"})


def _timestamp_form_note(name: str, header: str, dtype: pl.DataType) -> pl.Expr | None:
    if dtype != pl.String:
        return None
    source = pl.col(header)
    odd = source.is_not_null() & ~is_placeholder(source) & ~source.str.contains(ISO_DATETIME)
    return pl.when(odd).then(pl.lit(name))


def _extra_column(header: str, dtype: pl.DataType) -> pl.Expr:
    """A delivered non-FOCUS column as text (nested values as JSON): one raw table holds every
    provider's extras, so a column must not be a number in one delivery and text in the next."""
    source = pl.col(header)
    if dtype == pl.String:
        return source
    if dtype.is_nested():
        return pl.struct(source.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}").alias(header)
    return source.cast(pl.String)


def scan_raw(path: str | Path, lineage: Lineage, *, label: str | None = None,
             storage_options: dict | None = None) -> pl.LazyFrame:
    """One delivered FOCUS file as typed raw rows with canonical names and lineage columns."""
    label = label or str(path)
    lf, schema = delivered_file(path, label, storage_options)
    kind = "parquet" if str(path).lower().endswith(".parquet") else "csv"
    found = detect(schema.names(), lineage.billing_currency)
    if found.version is None:
        raise SourceFormatError(f"{label}: {found.problem or 'not a FOCUS cost and usage export: core column(s) missing: ' + ', '.join(c for c in CORE_COLUMNS if c not in found.names.values())}")
    exprs: list[pl.Expr] = []
    errors: list[pl.Expr] = []
    amounts: list[pl.Expr] = []
    placeholders: list[pl.Expr] = []
    odd_times: list[pl.Expr] = []
    for header, name in found.names.items():
        dtype = schema[header]
        if name in spec_columns():
            typed, error, note = _typed_focus_column(name, header, dtype)
            if error is not None:
                (amounts if spec_columns()[name].data_type == "Decimal" else errors).append(error)
            if note is not None:
                placeholders.append(note)
            if spec_columns()[name].data_type == "DateTime":
                form = _timestamp_form_note(name, header, dtype)
                if form is not None:
                    odd_times.append(form)
                elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
                    odd_times.append(pl.when(pl.col(header).is_not_null()).then(pl.lit(name)))
            exprs.append(typed.alias(name))
        else:
            exprs.append(_extra_column(header, dtype).alias(name))
    notes = []
    if placeholders:
        listed = pl.concat_str(placeholders, separator=", ", ignore_nulls=True)
        notes.append(pl.when(listed != "").then(pl.format("null placeholders read as null: {}", listed)))
    if odd_times:
        listed = pl.concat_str(odd_times, separator=", ", ignore_nulls=True)
        notes.append(pl.when(listed != "").then(pl.format(
            "{}: timestamps not in FOCUS form YYYY-MM-DDTHH:mm:ssZ (no T/Z, no seconds or an offset) read as UTC",
            listed)))
    present = set(found.names.values())
    period_source = [pl.col(c) for c in ("BillingPeriodStart", "ChargePeriodStart") if c in present]
    period = (pl.lit(lineage.billing_period) if lineage.billing_period
              else pl.coalesce(period_source).dt.strftime("%Y-%m"))
    provider_text = pl.col("ProviderName") if "ProviderName" in present else pl.lit(None, pl.String)
    provider_text = pl.when(is_placeholder(provider_text) | provider_text.is_null()).then(pl.lit("unknown")) \
        .otherwise(provider_text)
    declared = []
    if CURRENCY_COLUMN not in present:  # only readable with a declared billing currency
        exprs.append(pl.lit(lineage.billing_currency).alias(CURRENCY_COLUMN))
        declared.append(pl.lit(lineage.billing_currency).alias(DECLARED_CURRENCY))
    return typed_raw_rows(numbered(lf, kind == "csv"), exprs, errors, [
        *declared, joined_strings(notes).alias("x_ReadNotes"),
        *lineage_columns(lineage, FORMAT, pl.format(f"FOCUS {found.version} {kind}, provider {{}}", provider_text), label),
    ], period, amounts)



# ---------------------------------------------------------------------------------------------
# What a valid raw row is, and its conservation keys (billing account, currency)
# ---------------------------------------------------------------------------------------------
ENUM_COLUMNS = ("ChargeCategory", "ChargeClass", "ChargeFrequency", "PricingCategory", "CommitmentDiscountStatus",
                "CommitmentDiscountCategory", "CapacityReservationStatus", "ServiceCategory", "ServiceSubcategory")
# Values exports write for a FOCUS value (besides a different letter case, which is fixed for all)
ENUM_SYNONYMS = {
    "PricingCategory": {"on-demand": "Standard", "ondemand": "Standard", "commitment-based": "Committed",
                        "commitment discount": "Committed"},
    "ChargeFrequency": {"usage based": "Usage-Based", "usagebased": "Usage-Based", "one time": "One-Time",
                        "onetime": "One-Time"},
}
V13_ONLY = tuple(n for n, c in spec_columns().items() if c.introduced == "1.3")

class RawColumns(common.RawColumns):
    """The column set varies by FOCUS version and provider: an absent column reads as null of its FOCUS type."""

    def type_of(self, name: str) -> pl.DataType:
        spec = spec_columns().get(name)
        return {"Decimal": MONEY, "DateTime": TIMESTAMP}.get(spec.data_type if spec else "", pl.String)

    def text(self, name: str) -> pl.Expr:
        """An x_ / extra column as text (null when absent)."""
        if name not in self.schema:
            return pl.lit(None, pl.String)
        expr = pl.col(name).cast(pl.String)
        return pl.when(is_placeholder(expr)).then(None).otherwise(expr)


@cache
def enum_table(column: str) -> dict[str, str]:
    """The trimmed lower-case spellings of an enum column's values (and synonyms) → the FOCUS value."""
    allowed = focus_column(column).allowed_values
    pairs = {v.lower(): v for v in allowed}
    pairs.update(ENUM_SYNONYMS.get(column, {}))
    return pairs



def account_id(expr: pl.Expr) -> pl.Expr:
    """BillingAccountId without a resource path: '/providers/Microsoft.Billing/billingAccounts/123' → '123'
    (an MCA billing profile path → the profile id, the billing account of Microsoft's MCA invoices)."""
    found = expr.str.extract(r"(?i)^/providers/microsoft\.billing/billingaccounts/(?:[^/]+/billingprofiles/)?([^/]+)/?$", 1)
    return pl.coalesce(found, expr)



def cleaned_text(name: str) -> pl.Expr:
    col = pl.col(name)
    return pl.when(is_placeholder(col)).then(None).otherwise(col)


def billing_account_key(schema: pl.Schema) -> pl.Expr:
    """The BillingAccountId of a raw row as FOCUS writes it (conservation key)."""
    if "BillingAccountId" not in schema:
        return pl.lit(None, pl.String)
    return account_id(cleaned_text("BillingAccountId"))


def currency_key(schema: pl.Schema) -> pl.Expr:
    """The BillingCurrency of a raw row as FOCUS writes it (upper case; conservation key)."""
    return cleaned_text("BillingCurrency").str.strip_chars().str.to_uppercase()



def quarantine_reason(schema: pl.Schema) -> pl.Expr:
    """Why a prepared row cannot be converted (null for a convertible row)."""
    col = RawColumns(schema)
    reasons = [pl.col("x_ParseErrors")]
    # an empty EffectiveCost is not a reason: the mapping takes what FOCUS defines for the row, else
    # records it as unknown
    for name in ("BilledCost", "BillingAccountId", "ChargeCategory", "BillingCurrency",
                 "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"):
        value = cleaned_text(name) if spec_columns()[name].data_type == "String" else col(name)
        reasons.append(pl.when(value.is_null() & pl.col("x_ParseErrors").is_null()).then(pl.lit(f"{name} is empty")))
    for name in ENUM_COLUMNS:
        if name not in schema:
            continue
        value = cleaned_text(name)
        allowed = "; ".join(focus_column(name).allowed_values)
        if name == "ServiceSubcategory":
            allowed = "a FOCUS service subcategory"
        known = value.str.strip_chars().str.to_lowercase().is_in(list(enum_table(name)))
        reasons.append(masked_format(value.is_not_null() & ~known, f"{name} '{{}}' is not one of: {allowed}", value))
    currency = currency_key(schema)
    reasons.append(masked_format(currency.is_not_null() & ~currency.is_in(sorted(iso_currency_codes())),
                                  "BillingCurrency '{}' is not an ISO 4217 currency code", col("BillingCurrency")))
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


LINEAGE_NAMES = [n for n in LINEAGE_SCHEMA if n not in ("x_SourceChanges", "x_ProviderDataGaps")]
