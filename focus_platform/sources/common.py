"""Pieces every provider format shares: errors, lineage, parsing with recorded errors, JSON."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import polars as pl

from focus_platform import __version__
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY, NOT_BLANK, TIMESTAMP


class SourceFormatError(ValueError):
    """Input that cannot be read at all (the message names file, column and reason)."""


@dataclass(frozen=True)
class Lineage:
    """Where rows come from; becomes the x_ lineage columns of every row."""

    source: str  # configured export source name
    source_format: str  # aws-cur, aws-cur2, ...
    delivery_id: str  # assembly id / export run / content digest
    billing_period: str | None  # 'YYYY-MM' of the delivery; None: taken from each row
    ingested_at: datetime
    # the source's declared billing currency (sources.json billing_currency, convert --billing-currency):
    # used only where an export has no currency column, recorded per row in x_SourceChanges
    billing_currency: str | None = None
    converter_version: str = __version__


def check_csv_structure(path: str, label: str, storage_options: dict | None = None) -> None:
    """Refuse a CSV whose rows do not all have the header's number of fields.

    A row with fewer fields is a file cut at a field boundary (an interrupted upload or copy):
    Polars would read it with null trailing columns and the rest of the file would be silently
    gone, so the whole file is refused, naming it and the row. A row with more fields is
    malformed. Fields are counted per line in one streaming pass that keeps only the first line
    differing from the header (in width or with an odd number of quotes): nothing is held per line.
    The commas outside quotes are the matches of ``"[^"]*"|,`` less the quoted runs (half the
    quotes), counted without building a string (taking the quoted text out first took 1.6x the
    time). Lines before the first with an odd number of quotes are whole rows, so their counts are
    exact; from such a line on (a quoted line break), Python's csv reader counts the fields."""
    lines = pl.scan_csv(path, has_header=False, separator="\x1f", quote_char=None, infer_schema=False,
                        new_columns=["line"], storage_options=storage_options, truncate_ragged_lines=True)
    line = pl.col("line")
    quotes = line.str.count_matches('"', literal=True)
    counted = (lines.with_row_index("number", offset=1).filter(line.str.contains(NOT_BLANK))
               .select("number", quotes.alias("quotes"),
                       (line.str.count_matches('"[^"]*"|,') - quotes // 2).alias("commas")))
    try:
        header = counted.head(1).collect(engine="streaming")
        if header.height == 0:
            return
        header_commas = header["commas"][0]
        first = (header if header["quotes"][0] % 2 else
                 counted.slice(1).filter((pl.col("quotes") % 2 != 0) | (pl.col("commas") != header_commas))
                 .head(1).collect(engine="streaming"))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"{label}: cannot be read: {str(exc).splitlines()[0]}") from exc
    if first.height == 0:
        return
    if first["quotes"][0] % 2:
        bad = _ragged_row_by_csv_reader(path, lines)
    else:
        bad = (int(first["number"][0]) - 1, int(first["commas"][0]) + 1, header_commas + 1)
    if bad is None:
        return
    row, fields, width = bad
    if fields < width:
        raise SourceFormatError(
            f"{label}: truncated file (data row {row} has {fields} fields, the header {width}: a file cut short "
            "or a row missing fields): refused as a whole, nothing converted")
    raise SourceFormatError(f"{label}: malformed CSV (data row {row} has {fields} fields, the header {width})")


def _ragged_row_by_csv_reader(path: str, lines: pl.LazyFrame) -> tuple[int, int, int] | None:
    """(data row, fields, header fields) of the first row whose width differs from the header's,
    read with Python's csv reader (a local file streamed; an object's lines from ``lines``)."""
    if "://" in path:
        rows = (line + "\n" for line in lines.collect()["line"].fill_null(""))
    else:
        rows = (line.decode("utf-8-sig", errors="replace") for line in _lines(path))
    reader = csv.reader(rows)
    try:
        width = len(next(reader))
    except StopIteration:
        return None
    for i, row in enumerate(reader, start=1):
        if row and len(row) != width:
            return i, len(row), width
    return None


def scan_file(path: str | Path, *, storage_options: dict | None = None) -> pl.LazyFrame:
    """The file as delivered (CSV, CSV.gz, Parquet, JSON lines); CSV is read as text, nothing inferred."""
    p = str(path)
    lower = p.lower()
    try:
        if lower.endswith(".parquet"):
            return pl.scan_parquet(p, storage_options=storage_options)
        if lower.endswith(JSON_LINES_SUFFIXES):
            return pl.scan_ndjson(p, storage_options=storage_options, infer_schema_length=None)
        if lower.endswith(CSV_SUFFIXES):
            return pl.scan_csv(p, infer_schema=False, storage_options=storage_options, raise_if_empty=True)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"{p}: cannot be read: {exc}") from exc
    raise SourceFormatError(f"{p}: unknown file type (expected .csv, .csv.gz, .parquet or .jsonl)")


CSV_SUFFIXES = (".csv", ".csv.gz", ".gz")
JSON_LINES_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json")


def is_csv(path: str) -> bool:
    """A CSV or CSV.gz file by its name, as ``scan_file`` reads it (``.jsonl.gz`` is JSON lines)."""
    lower = path.lower()
    return lower.endswith(CSV_SUFFIXES) and not lower.endswith(JSON_LINES_SUFFIXES)


def delivered_file(path: str | Path, label: str,
                   storage_options: dict | None = None) -> tuple[pl.LazyFrame, pl.Schema]:
    """The start of every format's ``scan_raw``: the file as delivered and its schema. Refused as a
    whole: a CSV whose rows do not all have the header's number of fields (a file cut short), and a
    header naming a column twice (which copy holds the money?)."""
    try:
        lf = scan_file(path, storage_options=storage_options)
        schema = file_schema(lf, label)
        repeated = repeated_columns(schema.names())
        if repeated:
            raise SourceFormatError(f"{label}: the header names {', '.join(repeated)} more than once: refused (which "
                                    "copy holds the values cannot be told)")
        if is_csv(str(path)):
            check_csv_structure(str(path), label, storage_options)
    except SourceFormatError as exc:
        raise SourceFormatError(explained(str(exc), str(path))) from exc
    return lf, schema


DUPLICATED_SUFFIX = re.compile(r"^(.*)_duplicated_\d+$")  # how Polars renames a CSV header's repeated name


def repeated_columns(names: list[str]) -> list[str]:
    """The column names a CSV header repeats ('X' and the 'X_duplicated_0' Polars made of its copy)."""
    present = set(names)
    return sorted({m.group(1) for n in names if (m := DUPLICATED_SUFFIX.match(n)) and m.group(1) in present})


def explained(message: str, path: str) -> str:
    """An unreadable file's message with what its bytes say it is (local files: Parquet or ZIP named
    otherwise, UTF-16) or where it stops being UTF-8."""
    if "://" in path or not Path(path).is_file():
        return message
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1" and not path.lower().endswith(".parquet"):
        return message + " (its content is Parquet: name it .parquet)"
    if head.startswith(b"PK\x03\x04"):
        return message + " (it is a ZIP archive, which is not read: unzip it, or export CSV.gz / Parquet)"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return message + " (it is UTF-16 encoded: export it as UTF-8)"
    if "utf-8" in message.lower() or "utf8" in message.lower():
        return message + _first_non_utf8_line(path)
    if path.lower().endswith(JSON_LINES_SUFFIXES):
        return message + _first_non_json_line(path)
    return message


def _lines(path: str):
    """The raw lines of a local file, gzipped or not."""
    import gzip

    with open(path, "rb") as probe:
        zipped = probe.read(2) == b"\x1f\x8b"
    with (gzip.open if zipped else open)(path, "rb") as f:
        yield from f


def _first_non_json_line(path: str) -> str:
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as exc:
            return f" (line {number} is not a JSON object: {exc}; a file cut short?)"
    return ""


def _first_non_utf8_line(path: str) -> str:
    for number, line in enumerate(_lines(path), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (f" (line {number} is not UTF-8 from byte {exc.start}: {line[exc.start:exc.start + 4]!r}; "
                    "export the file as UTF-8)")
    return ""


def file_schema(lf: pl.LazyFrame, label: str) -> pl.Schema:
    try:
        schema = lf.collect_schema()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"{label}: cannot be read: {str(exc).splitlines()[0]}") from exc
    if not schema.names():
        raise SourceFormatError(f"{label}: the file is empty (no header)")
    return schema


class RawColumns:
    """Column access on a raw frame whose column set varies (columns come and go with format versions,
    and a raw table may predate a column): a column the frame lacks reads as null of its raw type,
    ``type_of(name)`` (a format's subclass says which; ``dtype`` overrides it for one call)."""

    def __init__(self, schema: pl.Schema):
        self.schema = schema

    def type_of(self, name: str) -> pl.DataType:
        return pl.String

    def __call__(self, name: str, dtype: pl.DataType | None = None) -> pl.Expr:
        if name in self.schema:
            return pl.col(name)
        return pl.lit(None, dtype or self.type_of(name))

    def has(self, name: str) -> bool:
        return name in self.schema


def lookup_rows(name: str) -> list[dict[str, str]]:
    """The rows of a lookup CSV shipped beside the source modules (services, regions, units, ...)."""
    text = resources.files(__package__).joinpath(name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def _joined_messages(messages: list[pl.Expr]) -> pl.Expr:
    joined = pl.concat_str(messages, separator="; ", ignore_nulls=True) if messages else pl.lit(None, pl.String)
    return pl.when(joined != "").then(joined)


def typed_raw_rows(rows: pl.LazyFrame, columns: list[pl.Expr], errors: list[pl.Expr], after: list[pl.Expr],
                   period: pl.Expr, amounts: list[pl.Expr] = ()) -> pl.LazyFrame:
    """The end of every format's ``scan_raw``: over the ``numbered`` rows of one file, its typed
    ``columns``, ``x_ParseErrors`` (the row's ``errors`` and ``amounts`` errors joined by '; ', null
    when it has none), ``x_UnreadableAmounts`` (the ``amount_error`` messages alone: amounts whose
    value is unknown, with their raw text), the format's columns that follow them (``after``: its
    own and the lineage columns) and ``x_BillingPeriod``."""
    unreadable = _overflows_named(_joined_messages(list(amounts)))
    return rows.select(
        *columns, _joined_messages([*errors, unreadable]).alias("x_ParseErrors"), unreadable.alias(UNREADABLE_AMOUNTS),
        *after,
    ).with_columns(period.alias("x_BillingPeriod"))


UNREADABLE_AMOUNTS = "x_UnreadableAmounts"


def unreadable_amounts(schema: pl.Schema) -> pl.Expr:
    """The ``x_UnreadableAmounts`` column of raw rows (null in raw tables written before it existed):
    every format's quarantine carries it, and the billed conservation check fails on it."""
    return (pl.col(UNREADABLE_AMOUNTS) if UNREADABLE_AMOUNTS in schema else pl.lit(None, pl.String)).alias(
        UNREADABLE_AMOUNTS)


def numbered(lf: pl.LazyFrame, is_csv: bool) -> pl.LazyFrame:
    """The file's rows with ``__row`` (0-based, in file order); blank CSV lines (e.g. at the end
    of a file) are not rows."""
    rows = lf.with_row_index("__row")
    return rows.filter(pl.any_horizontal(pl.exclude("__row").is_not_null())) if is_csv else rows


def lineage_columns(lineage: Lineage, source_format: str, format_version: str | pl.Expr, label: str) -> list[pl.Expr]:
    """The lineage columns of one file's raw rows (over ``numbered`` rows): x_RowId is the file's
    digest and its 1-based row number, stable across re-reads of the same file."""
    row = pl.col("__row") + 1
    file_id = file_digest(lineage.source, label)
    version = format_version if isinstance(format_version, pl.Expr) else pl.lit(format_version)
    return [
        pl.lit(lineage.source).alias("x_Source"),
        pl.lit(source_format).alias("x_SourceFormat"),
        version.alias("x_SourceFormatVersion"),
        pl.lit(label).alias("x_SourceFile"),
        row.cast(pl.Int64).alias("x_SourceRow"),
        pl.lit(lineage.delivery_id).alias("x_SourceDelivery"),
        pl.lit(lineage.ingested_at).cast(LINEAGE_SCHEMA["x_IngestedAt"]).alias("x_IngestedAt"),
        pl.lit(lineage.converter_version).alias("x_ConverterVersion"),
        pl.concat_str([pl.lit(file_id + "-"), row.cast(pl.String).str.zfill(9)]).alias("x_RowId"),
    ]


def file_digest(*parts: str) -> str:
    """Stable short digest (16 hex chars) naming a file within a source; the x_RowId prefix."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def blank_to_null(expr: pl.Expr) -> pl.Expr:
    """'' is null: Athena Parquet and CSV write '' for a missing value (raw tables keep the rest
    as delivered; FOCUS string columns also turn whitespace-only values into null)."""
    return pl.when(expr == "").then(None).otherwise(expr)


def whitespace_to_null(expr: pl.Expr) -> pl.Expr:
    """Whitespace-only strings are null in FOCUS (R-Null-1, R-Null-2)."""
    return pl.when(~expr.str.contains(NOT_BLANK)).then(None).otherwise(expr)


MONEY_LIMIT = 10 ** (MONEY.precision - MONEY.scale)  # the first whole number Decimal(38,12) cannot hold


def as_decimal(name: str | pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An amount column as Decimal(38,12): text parsed exactly, numbers cast; null where the value
    cannot be read (see ``amount_error``). Floats beyond the range are nulled before the cast, which
    would otherwise fail the whole file."""
    col = pl.col(name) if isinstance(name, str) else name
    if dtype == pl.String:
        return blank_to_null(col).str.strip_chars().cast(MONEY, strict=False)
    if dtype.is_float():
        col = pl.when(col.is_finite() & (col.abs() < MONEY_LIMIT)).then(col)
    elif dtype.is_integer() or (isinstance(dtype, pl.Decimal) and dtype.precision - dtype.scale > 26):
        col = pl.when(col.cast(pl.Float64).abs() < MONEY_LIMIT).then(col)
    return col.cast(MONEY, strict=False)


def amount_error(label: str, source: pl.Expr, dtype: pl.DataType, typed: pl.Expr | None = None) -> pl.Expr:
    """Why a delivered amount could not be read, else null: '<column>: '<value>' is not a number'
    (``1,234.56``, ``$12``, ``NaN``, ``inf``, and at first a number with more than 26 whole digits,
    which ``typed_raw_rows`` then names as overflowing Decimal(38,12): one pass over a row's few
    messages instead of a test per amount column and row). ``typed_raw_rows`` keeps these messages
    apart as ``x_UnreadableAmounts`` (money that is unknown must not pass the billed conservation check).
    Numbers are judged from the source alone (no Decimal cast only to find that nothing failed);
    text by its cast (``typed``)."""
    if dtype == pl.String:
        typed = as_decimal(source, dtype) if typed is None else typed
        failed = source.is_not_null() & (source.str.strip_chars() != "") & typed.is_null()
        text = source.str.strip_chars()
    elif dtype.is_float():
        failed = ~(source.is_finite() & (source.abs() < MONEY_LIMIT))
        text = source
    elif dtype.is_integer() or isinstance(dtype, pl.Decimal):
        failed = source.cast(pl.Float64).abs() >= MONEY_LIMIT
        text = source
    else:
        return pl.lit(None, pl.String)
    return masked_format(failed, f"{label}: '{{}}' {NOT_A_NUMBER}", text)


NOT_A_NUMBER = "is not a number"
OVERFLOW = f"overflows Decimal(38,12) (more than {MONEY.precision - MONEY.scale} digits before the decimal point)"
_NUMBER_NOT_READ = r"'([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)' " + NOT_A_NUMBER


def _overflows_named(messages: pl.Expr) -> pl.Expr:
    """``amount_error`` messages with a well-formed number that was not read: it overflows."""
    return messages.str.replace_all(_NUMBER_NOT_READ, f"'${{1}}' {OVERFLOW}")


# A quotient or product beyond this is no price or quantity (and would overflow Decimal(38, 12))
EXACT_LIMIT = 1e25


def _magnitude(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64).abs()


def exact_ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator in Decimal(38, 12) (rounded at the 12th decimal, never through a
    float); null where the denominator is 0 or null or the quotient would not fit. The float
    magnitudes only decide whether the quotient fits; they are never the value."""
    fits = _magnitude(numerator) < _magnitude(denominator) * EXACT_LIMIT
    divisor = pl.when(fits & (denominator != 0)).then(denominator)
    return (numerator.cast(MONEY) / divisor.cast(MONEY)).cast(MONEY)


def exact_product(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """left x right in Decimal(38, 12); null where the product would not fit (as ``exact_ratio``)."""
    fits = _magnitude(left) * _magnitude(right) < EXACT_LIMIT
    return (pl.when(fits).then(left).cast(MONEY) * right.cast(MONEY)).cast(MONEY)


def typed_timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """A Datetime or Date column as a UTC microsecond timestamp (no zone means UTC); None when
    ``dtype`` is not a temporal type (text is parsed by each format's own rules)."""
    if isinstance(dtype, pl.Datetime):
        zoned = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
        return zoned.dt.cast_time_unit("us")
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return None


def as_timestamp(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    typed = typed_timestamp(col, dtype)
    if typed is not None:
        return typed
    text = blank_to_null(col.cast(pl.String)).str.strip_chars()
    # 2023-11-01T00:00:00.000Z, 2023-06-01 01:00:00, 2023-06-01T00:00:00Z, 2023-06-01
    text = text.str.replace("T", " ", literal=True).str.strip_suffix("Z")
    full = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us")
    minutes = text.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_zone="UTC", time_unit="us")
    day = text.str.to_datetime("%Y-%m-%d", strict=False, time_zone="UTC", time_unit="us")
    return pl.coalesce(full, minutes, day).cast(TIMESTAMP)


KEY_SEPARATOR = "\x1f"  # between the parts of a two-column key of a ``mapped`` table


def mapped(key: pl.Expr, mapping: dict[str, object], dtype: pl.DataType = pl.String) -> pl.Expr:
    """``mapping[key]`` per row, null for a null key or one the mapping lacks (exact match).

    The keys become an Enum and the values are gathered by a key's position: this streams in
    constant memory and costs a fraction of a left join, which copies every column of the frame
    (four lookup joins were about a fifth of the AWS mapping's CPU); replace_strict would
    materialize the whole column."""
    if not mapping:
        return pl.lit(None, dtype)
    position = key.cast(pl.String).cast(pl.Enum(list(mapping)), strict=False).to_physical()
    return pl.lit(pl.Series(list(mapping.values()), dtype=dtype)).gather(position)


def with_derived(frame: pl.LazyFrame, key: pl.Expr, derive: Callable[[pl.Expr], dict[str, pl.Expr]]) -> pl.LazyFrame:
    """``frame`` with the columns ``derive(key)`` names: pure functions of one column or a struct of
    several (a unit parsed by regex, a JSON path, a tags JSON object built from tag columns) computed
    once per distinct value of ``key`` in each streamed batch and joined back to the batch's rows. Billing
    columns repeat a few values over millions of rows, so a unit column with six values costs six
    regex calls per batch, not a hundred thousand (a column of distinct values pays one hash join
    more than deriving each row). Nothing is held beyond one batch."""
    key_type = frame.select(key).collect_schema().dtypes()[0]
    derived = pl.struct(**derive(pl.col("__value"))).alias("__derived")
    dtype = pl.DataFrame({"__value": pl.Series([], dtype=key_type)}).select(derived).schema["__derived"]

    def per_batch(values: pl.Series) -> pl.Series:
        rows = values.to_frame("__value")
        table = rows.unique().with_columns(derived)
        return rows.join(table, on="__value", how="left", nulls_equal=True, maintain_order="left")["__derived"]

    held = f"__derived {' '.join(dtype.to_schema())}"  # fields taken out one by one: a pass needing none skips it
    return (frame.with_columns(key.map_batches(per_batch, return_dtype=dtype, is_elementwise=True).alias(held))
            .with_columns(pl.col(held).struct.field(name) for name in dtype.to_schema()).drop(held))


def masked_format(condition: pl.Expr, template: str, *args: pl.Expr) -> pl.Expr:
    """``template`` filled with ``args`` where ``condition`` holds, else null. The arguments are
    masked first, so rows without the condition (nearly all) build no string (a number → text cast
    of every row costs more than the message)."""
    condition = condition.fill_null(False)
    if not args:
        return pl.when(condition).then(pl.lit(template))
    return pl.format(template, *[pl.when(condition).then(pl.when(condition).then(a).cast(pl.String).fill_null("null"))
                                 for a in args])


def parse_error(label: str, raw: pl.Expr, typed: pl.Expr, what: str) -> pl.Expr:
    """A message when a non-empty raw value did not parse, else null."""
    raw_text = raw.cast(pl.String)
    failed = raw_text.is_not_null() & (raw_text.str.strip_chars() != "") & typed.is_null()
    return masked_format(failed, f"{label}: '{{}}' is not {what}", raw_text)


_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 **{chr(i): f"\\u{i:04x}" for i in range(32) if chr(i) not in "\n\r\t"}}


def json_string(expr: pl.Expr) -> pl.Expr:
    """A string expression as a JSON string literal (one replace_many pass for every escape)."""
    escaped = expr.str.replace_many(list(_JSON_ESCAPES), list(_JSON_ESCAPES.values()))
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def json_object(pairs: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """A JSON object of the non-null pairs, or null when every value is null. A member of a null
    value is null and is skipped (concat_str), so there is no branch per member, and the object is
    made null through its opening brace: a fraction of the cost of when/then over the strings."""
    if not pairs:
        return pl.lit(None, pl.String)
    members = [pl.concat_str([pl.lit(json.dumps(k) + ":"), json_string(v)]) for k, v in pairs]
    opening = pl.when(pl.any_horizontal([v.is_not_null() for _, v in pairs])).then(pl.lit("{"))
    return pl.concat_str([opening, pl.concat_str(members, separator=",", ignore_nulls=True), pl.lit("}")])


def map_to_json(name: str, dtype: pl.DataType) -> pl.Expr:
    """A map column (e.g. CUR 2.0 tags; Parquet map = list of key/value structs) as a JSON object string."""
    column = pl.col(name)
    if isinstance(dtype, pl.Map):  # polars reads Parquet maps as Map: go through key/value structs
        column = column.cast(pl.List(pl.Struct({"key": dtype.key, "value": dtype.value})))
    elif not isinstance(dtype, pl.List):
        return blank_to_null(column.cast(pl.String))  # already JSON text (or a scalar)
    entries = column.list.eval(
        pl.concat_str([
            pl.lit('"'), pl.element().struct.field("key").str.replace_all('"', '\\"', literal=True),
            pl.lit('":'),
            pl.element().struct.field("value").cast(pl.String).pipe(
                lambda v: pl.when(v.is_null()).then(pl.lit("null"))
                .otherwise(pl.concat_str([pl.lit('"'), v.str.replace_all('"', '\\"', literal=True), pl.lit('"')]))),
        ])
    ).list.join(",")
    return pl.when(column.list.len() > 0).then(pl.concat_str([pl.lit("{"), entries, pl.lit("}")]))


LIST_SEPARATOR = "\x1f"


def joined_strings(items: list[pl.Expr]) -> pl.Expr:
    """The non-null items joined by LIST_SEPARATOR (null when none): cheap to build and extend."""
    if not items:
        return pl.lit(None, pl.String)
    joined = pl.concat_str([i.cast(pl.String) for i in items], separator=LIST_SEPARATOR, ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def split_list(joined: pl.Expr) -> pl.Expr:
    """A joined_strings value as a list of strings (an order of magnitude faster than concat_list)."""
    return joined.str.split(LIST_SEPARATOR)


# Rows a mapping adds (an unused-commitment row, a credit split off a usage row) carry their parent's
# x_RowId plus this mark and a kind; row conservation counts them apart from the raw rows.
DERIVED_ROW_MARK = "~"


def derived_row_id(parent: pl.Expr, kind: str) -> pl.Expr:
    return parent + pl.lit(DERIVED_ROW_MARK + kind)


def is_derived_row(row_id: pl.Expr) -> pl.Expr:
    return row_id.str.contains(DERIVED_ROW_MARK, literal=True)


# x_SourceChanges note of a row whose service is not in the provider's service table (SLO M5)
UNMAPPED_SERVICE_NOTE = "ServiceCategory: service not in the provider's service table, fallback Other"


def sku_missing() -> pl.Expr:
    """A FOCUS row without SkuId that the provider did deliver one for: a row whose export carries
    no SKU at all is a recorded provider-data gap (R-SkuId-1 in x_ProviderDataGaps, e.g. AWS savings
    plan fees), not a mapping failure."""
    gap = pl.col("x_ProviderDataGaps").list.contains("R-SkuId-1").fill_null(False)
    return pl.col("SkuId").is_null() & ~gap


def service_unmapped() -> pl.Expr:
    """A FOCUS row whose service is not in the provider's service table (ServiceCategory fallback)."""
    return pl.col("ServiceCategory").is_null() | pl.col("x_SourceChanges").list.contains(
        UNMAPPED_SERVICE_NOTE).fill_null(False)


def sku_mapping_scope() -> pl.Expr:
    """SLO M5's rows, defined once: Usage and Purchase rows (the rows a SKU prices)."""
    return pl.col("ChargeCategory").is_in(["Usage", "Purchase"])


def sku_mapping_failure() -> pl.Expr:
    """SLO M5's failure among ``sku_mapping_scope`` rows, defined once: a SKU missing where the
    provider delivers one, or an unmapped service."""
    return sku_missing() | service_unmapped()


COPY_REASON = "__copy_reason"  # the quarantine reason of a line item's copy (``copies_of_line_items``)
# Passes that hold something per key of a partition (Azure's charges, the line-item keys looked for
# copies) work per bucket of keys of about this many raw rows, by a hash of the key: what one bucket
# holds does not grow with the partition.
BUCKET_ROWS = 1_000_000


def by_bucket(narrow: pl.LazyFrame, key_hash: pl.Expr, rows: int) -> Iterator[pl.DataFrame]:
    """The rows of ``narrow`` one bucket at a time: ``rows`` raw rows make one bucket per BUCKET_ROWS
    (at least one), a row's bucket is ``key_hash`` (an unsigned hash of its key) modulo their number,
    and the rows of a bucket keep the order of ``narrow``. One streaming pass writes the buckets apart
    (lz4 Parquet in a temporary folder, removed after the last), so the time is one pass and the
    memory one bucket's however many buckets a partition makes (a pass per bucket made the time grow
    with the square of the rows)."""
    buckets = max(1, -(-rows // BUCKET_ROWS))
    if buckets == 1:
        yield narrow.collect(engine="streaming")
        return
    schema = narrow.collect_schema()
    with tempfile.TemporaryDirectory(prefix="focus-buckets-") as folder:
        narrow.with_columns((key_hash % buckets).alias("__bucket")).sink_parquet(
            pl.PartitionBy(folder, key="__bucket", include_key=False), compression="lz4", statistics=False,
            mkdir=True)
        for number in range(buckets):
            part = Path(folder, f"__bucket={number}")
            yield pl.read_parquet(part).cast(schema) if part.exists() else pl.DataFrame(schema=schema)


NO_COPIES = pl.Schema({"x_RowId": pl.String, COPY_REASON: pl.String})  # what copies_of_line_items returns


def copies_of_line_items(raw: pl.LazyFrame, keys: tuple[str, ...], what: str) -> pl.DataFrame:
    """``x_RowId`` and quarantine reason (``COPY_REASON``) of every copy of a provider line item but
    one; usually none. ``keys``: the raw columns the provider documents as unique per line item
    (e.g. AWS identity/LineItemId + identity/TimeInterval), named ``what`` in the reason.

    The copy kept is the one with the smallest ``x_RowId`` (first file, first row) whatever order the
    partition is read in. Memory stays small: the key columns are read alone (a window over the wide rows would
    hold the partition in memory) and hashed, the hashes counted per bucket (``by_bucket``: counting
    5 M hashes at once held 0.2 GB); only rows whose key hash occurs twice are compared by their keys.
    Rows with a null key part are not line items the provider identifies: not compared."""
    if not all(k in raw.collect_schema() for k in keys):
        return pl.DataFrame(schema=NO_COPIES)
    columns = [pl.col(k) for k in keys]
    key_hash = pl.struct(columns).hash().alias("__key_hash")
    identified = raw.filter(pl.all_horizontal([c.is_not_null() for c in columns]))
    # The hashes alone first (8 bytes a row); the rows are read again only when a hash repeats. A join
    # of the narrow rows with their repeated hashes would hold the narrow rows (x_RowId text) in memory.
    rows = raw.select(pl.len()).collect(engine="streaming").item()
    repeated = pl.concat([_repeated(part["__key_hash"])
                          for part in by_bucket(identified.select(key_hash), pl.col("__key_hash"), rows)])
    if not repeated.height:
        return pl.DataFrame(schema=NO_COPIES)
    first = pl.col("x_RowId").min().over(columns)
    reason = masked_format(pl.col("x_RowId") != first, f"duplicate line item: {what} '{{}}' delivered more than "
                           "once; this copy is quarantined with its amount, the first (x_RowId {}) is kept",
                           pl.concat_str([c.cast(pl.String) for c in columns], separator=" / "), first)
    return (identified.select("x_RowId", *columns, key_hash)
            .filter(pl.col("__key_hash").is_in(repeated["__key_hash"].implode()))
            .collect(engine="streaming").select("x_RowId", reason.alias(COPY_REASON))
            .filter(pl.col(COPY_REASON).is_not_null()))


def _repeated(hashes: pl.Series) -> pl.DataFrame:
    """The hashes that occur more than once, found over the sorted hashes (8 bytes a hash and the sort's
    copy: a group-by of a million hashes held 0.1 GB)."""
    ordered = hashes.sort()
    return ordered.filter(ordered == ordered.shift(1)).unique().to_frame("__key_hash")


def with_line_item_copies(raw: pl.LazyFrame, keys: tuple[str, ...], what: str) -> pl.LazyFrame:
    """The raw rows with ``COPY_REASON``: the reason of every copy of a line item but one
    (``copies_of_line_items``), null on every other row. Found once per raw partition, read by the
    format's ``quarantine_reason`` (``copy_reason``), so its mapping and totals agree."""
    copies = copies_of_line_items(raw, keys, what)
    if not copies.height:
        return raw.with_columns(pl.lit(None, pl.String).alias(COPY_REASON))
    return raw.with_columns(mapped(pl.col("x_RowId"), dict(copies.iter_rows())).alias(COPY_REASON))


def copy_reason(schema: pl.Schema) -> pl.Expr:
    """A raw row's ``COPY_REASON`` (null where the copies were not looked for)."""
    return pl.col(COPY_REASON) if COPY_REASON in schema else pl.lit(None, pl.String)


# The x_SourceChanges note of a row whose EffectiveCost could not be known (the export lacks every
# column that carries it): EffectiveCost is 0 there, a recorded provider-data gap, counted per
# partition (rows and their usage) and reported by the effective-cost check as a WARN.
EFFECTIVE_COST_UNKNOWN = "EffectiveCost unknown"


def effective_cost_unknown_note(condition: pl.Expr, missing: str) -> pl.Expr:
    """The note for rows where ``condition`` holds: ``missing`` names the empty column(s)."""
    return masked_format(condition, f"{EFFECTIVE_COST_UNKNOWN}: {missing} empty and no other column carries "
                         "the amortized cost; EffectiveCost kept 0 (provider-data gap)")


# The raw column holding the source's declared billing currency on rows that got it (the export
# has no currency column), and the x_SourceChanges note of those rows.
DECLARED_CURRENCY = "x_DeclaredCurrency"
# What the refusal of a file without a currency column tells the user to do
DECLARE_CURRENCY_HINT = ("a file without it needs the source's declared billing currency: billing_currency in "
                         "sources.json, or convert --billing-currency")
DECLARED_CURRENCY_NOTE = "BillingCurrency: the export has no currency column; the source's declared billing currency"
