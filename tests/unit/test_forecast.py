"""forecasting.forecast: spend forecasts, backtests against seasonal-naive, fees apart, reuse, currencies."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from focus_platform.forecasting.forecast import (
    BASELINE,
    BASELINE_CHOICE,
    FORECAST_BACKTESTS,
    MODEL,
    SPEND_FORECASTS,
    ForecastSettings,
    forecast_spend,
)
from focus_platform.forecasting.spend import FEE, SPEND_ROWS, USAGE
from focus_platform.generate.spend import seasonal_spend
from focus_platform.reconciliation.currency import EXCHANGE_RATE_SCHEMA

AS_OF = date(2026, 11, 12)
QUICK = ForecastSettings(horizon_months=2, backtest_folds=2, backtest_horizon_days=14)


def history(series: int, days: int, *, seed: int = 0, **options) -> pl.DataFrame:
    """Seasonal spend rows of ``days`` days ending on AS_OF."""
    return seasonal_spend(series, AS_OF - timedelta(days=days - 1), days, seed=seed, **options)


def renamed(rows: pl.DataFrame, service: str, **columns) -> pl.DataFrame:
    return rows.with_columns(pl.lit(service).alias("ServiceName"),
                             *(pl.lit(value).alias(name) for name, value in columns.items()))


def usage_rows(service: str, values: np.ndarray, currency: str = "USD") -> pl.DataFrame:
    """One usage row per day ending on AS_OF with the given amounts (rounded to 1e-6)."""
    dates = [AS_OF - timedelta(days=len(values) - 1 - i) for i in range(len(values))]
    return pl.DataFrame({
        "Date": dates, "x_BillingPeriod": [d.strftime("%Y-%m") for d in dates], "Owner": "team",
        "ProviderName": "AWS", "ServiceName": service, "BillingAccountId": "a", "SubAccountId": "s",
        "BillingCurrency": currency, "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based",
        "SpendKind": USAGE, "ResourceId": "r", "SkuId": "k", "x_RowId": [f"{service}-{d}" for d in dates],
        "BilledCost": [Decimal(f"{v:.6f}") for v in values], "EffectiveCost": [Decimal(f"{v:.6f}") for v in values],
    }).cast(SPEND_ROWS)  # type: ignore[arg-type]


def fee_row(service: str, day: date, amount: str, frequency: str) -> pl.DataFrame:
    return usage_rows(service, np.array([0.0])).with_columns(
        pl.lit(day).alias("Date"), pl.lit(day.strftime("%Y-%m")).alias("x_BillingPeriod"),
        pl.lit("Purchase").alias("ChargeCategory"), pl.lit(frequency).alias("ChargeFrequency"),
        pl.lit(FEE).alias("SpendKind"), pl.lit(f"{service}-fee-{day}").alias("x_RowId"),
        pl.lit(Decimal(amount)).cast(SPEND_ROWS["BilledCost"]).alias("BilledCost"),
        pl.lit(Decimal(amount)).cast(SPEND_ROWS["EffectiveCost"]).alias("EffectiveCost"))


@pytest.fixture(scope="module")
def mixed():
    """Three seasonal series with recurring month-start fees, one too short, one long enough only to forecast,
    one with a one-off purchase and a purchase repeated on day 15."""
    rows = pl.concat([
        history(3, 120, seed=1),
        renamed(history(1, 20, seed=2, fees=False), "short"),
        renamed(history(1, 60, seed=3, fees=False), "young"),
        usage_rows("buyer", np.full(90, 50.0)),
        fee_row("buyer", AS_OF - timedelta(days=3), "999", "One-Time"),
        fee_row("buyer", date(2026, 9, 15), "70", "One-Time"),
        fee_row("buyer", date(2026, 10, 15), "80", "One-Time"),
    ])
    return rows, forecast_spend(rows, AS_OF, QUICK)


def test_schemas_and_intervals_contain_the_forecast(mixed):
    _, result = mixed
    assert dict(result.forecasts.schema) == SPEND_FORECASTS
    assert dict(result.backtests.schema) == FORECAST_BACKTESTS
    forecasts = result.forecasts
    assert forecasts.filter((pl.col("Lower") > pl.col("Forecast")) | (pl.col("Forecast") > pl.col("Upper"))).is_empty()
    assert forecasts["Date"].min() == date(2026, 11, 1) and forecasts.filter(pl.col("Grain") == "day")[
        "Date"].min() == AS_OF + timedelta(days=1)
    assert forecasts["Date"].max() == date(2027, 1, 31)
    assert set(forecasts["x_ForecastDate"]) == {AS_OF} and set(forecasts["x_Level"]) == {80}


def test_month_rows_sum_the_days_and_totals_add_usage_and_fees(mixed):
    _, result = mixed
    f = result.forecasts
    keys = ["ServiceName", "SpendKind", "x_BillingPeriod"]
    days = f.filter(pl.col("Grain") == "day").group_by(keys).agg(pl.col("Forecast").sum().alias("days"))
    months = f.filter(pl.col("Grain") == "month").join(days, on=keys)
    assert months.height == f.filter(pl.col("Grain") == "month").height
    assert (months["Forecast"] == months["days"]).all()
    parts = (f.filter(pl.col("SpendKind") != "total").group_by("ServiceName", "Grain", "Date")
             .agg(pl.col("Forecast").sum().alias("parts")))
    totals = f.filter(pl.col("SpendKind") == "total").join(parts, on=["ServiceName", "Grain", "Date"])
    assert totals.height == f.filter(pl.col("SpendKind") == "total").height
    assert (totals["Forecast"] == totals["parts"]).all()


def test_too_short_is_skipped_and_young_is_forecast_without_backtest(mixed):
    _, result = mixed
    assert result.skipped["ServiceName"].to_list() == ["short"]
    assert result.skipped["reason"][0] == "20 days of usage history, fewer than min_history_days 56"
    young = result.backtests.filter(pl.col("ServiceName") == "young").row(0, named=True)
    assert young["Folds"] == 0 and young["Chosen"] == MODEL and young["ModelMAPE"] is None
    reasons = result.forecasts.filter(pl.col("ServiceName") == "young")["x_ModelReason"].unique().to_list()
    assert reasons == ["no backtest: fewer than 70 days of history (min_history_days + one fold): model"]
    assert result.metadata["skipped"] == 1 and result.metadata["forecast"] == 5


def test_recurring_fees_repeat_and_one_offs_are_not_projected(mixed):
    rows, result = mixed
    fees = result.forecasts.filter(pl.col("SpendKind") == FEE, pl.col("Grain") == "day")
    generated = fees.filter(pl.col("ServiceName") == "service-00000")
    assert generated["Date"].to_list() == [date(2026, 12, 1), date(2027, 1, 1)]
    november_fee = rows.filter(pl.col("ServiceName") == "service-00000", pl.col("SpendKind") == FEE,
                               pl.col("Date") == date(2026, 11, 1))["EffectiveCost"].item()
    assert set(generated["Forecast"]) == {november_fee}
    buyer = fees.filter(pl.col("ServiceName") == "buyer")
    assert buyer.select("Date", "Forecast").rows() == [(date(2026, 11, 15), Decimal(80)),
                                                       (date(2026, 12, 15), Decimal(80)),
                                                       (date(2027, 1, 15), Decimal(80))]
    assert set(buyer["x_Note"]) == {"one-off fees not projected (1 rows since 2026-10-01, the last on 2026-11-09)"}


def test_reuse_by_fingerprint_skips_the_backtest(mixed):
    rows, first = mixed
    again = forecast_spend(rows, AS_OF, QUICK, choices=first.backtests)
    assert again.metadata["backtested"] == 0 and again.metadata["reused"] == 5
    assert again.backtests.equals(first.backtests) and again.fingerprint == first.fingerprint
    same = [c for c in SPEND_FORECASTS if c != "x_ModelReason"]
    assert again.forecasts.select(same).equals(first.forecasts.select(same))
    reused = again.forecasts.filter(pl.col("ServiceName") == "service-00000", pl.col("SpendKind") == USAGE)
    assert reused["x_ModelReason"][0].endswith("backtest of 2026-11-12 reused (same fingerprint)")
    changed = rows.with_columns(pl.when((pl.col("ServiceName") == "service-00001") & (pl.col("Date") == AS_OF))
                                .then(pl.col("EffectiveCost") + 1).otherwise("EffectiveCost").alias("EffectiveCost"))
    third = forecast_spend(changed, AS_OF, QUICK, choices=first.backtests)
    assert third.metadata["backtested"] == 1 and third.metadata["reused"] == 4


def test_model_or_baseline_by_backtest():
    rng = np.random.default_rng(5)
    weekly = np.tile([100, 120, 130, 125, 110, 60, 50], 20)[:130] * (1 + 0.03 * rng.standard_normal(130))
    walks = [usage_rows(f"walk-{i}", 500 + np.cumsum(rng.normal(0, 20, 130))) for i in range(6)]
    result = forecast_spend(pl.concat([usage_rows("weekly", weekly), *walks]), AS_OF, QUICK)
    tested = result.backtests
    periodic = tested.filter(pl.col("ServiceName") == "weekly").row(0, named=True)
    assert periodic["ModelMAPE"] < 0.06 and periodic["BaselineMAPE"] < 0.06
    for row in tested.iter_rows(named=True):
        assert row["Chosen"] == (MODEL if row["ModelMAPE"] < row["BaselineMAPE"] else BASELINE_CHOICE)
    lost = tested.filter(pl.col("Chosen") == BASELINE_CHOICE)["ServiceName"]
    assert lost.len() >= 1  # on random walks, seasonal-naive (last week again) wins some backtests
    usage = result.forecasts.filter(pl.col("ServiceName").is_in(lost.implode()), pl.col("SpendKind") == USAGE)
    assert set(usage["x_Model"]) == {BASELINE}
    assert all(r.startswith("seasonal-naive: model lost the backtest (MAPE ") for r in usage["x_ModelReason"])


def test_reporting_currency_and_a_currency_without_rate():
    rows = pl.concat([usage_rows("eur", np.full(60, 10.0), "EUR"), usage_rows("gbp", np.full(60, 10.0), "GBP")])
    rates = pl.DataFrame({"Date": [AS_OF - timedelta(days=3), AS_OF + timedelta(days=1)], "BaseCurrency": "EUR",
                          "Currency": "USD", "Rate": [Decimal("1.1"), Decimal("9")], "Source": "test"},
                         schema=EXCHANGE_RATE_SCHEMA)
    result = forecast_spend(rows, AS_OF, QUICK, rates=rates)
    eur = result.forecasts.filter(pl.col("BillingCurrency") == "EUR")
    assert (eur["ForecastInReportingCurrency"] == eur["Forecast"] * Decimal("1.1")).all()
    assert (eur["UpperInReportingCurrency"] == eur["Upper"] * Decimal("1.1")).all()
    assert set(eur["ReportingCurrency"]) == {"USD"} and eur["x_Note"].null_count() == eur.height
    gbp = result.forecasts.filter(pl.col("BillingCurrency") == "GBP")
    assert gbp["ForecastInReportingCurrency"].null_count() == gbp.height
    assert set(gbp["x_Note"]) == {"no exchange rate GBP->USD on or before 2026-11-12 (no rate at all for GBP "
                                  "against USD): reporting-currency columns left empty"}


def test_model_beats_seasonal_naive_with_calibrated_intervals():
    """20 generated series of 18 months (trend, weekly and day-of-month seasons, noise), default settings."""
    result = forecast_spend(history(20, 548, seed=13, fees=False), AS_OF)
    tested = result.backtests
    assert tested["Folds"].to_list() == [3] * 20
    assert tested["ModelMAPE"].median() < tested["BaselineMAPE"].median()
    assert abs(tested["IntervalCoverage"].mean() - 0.80) <= 0.05


def test_a_series_that_ended_is_skipped_not_forecast_as_zeros():
    """A service decommissioned 40 days before as_of has 100 days of history but no recent usage."""
    gone = usage_rows("gone", np.full(100, 20.0)).with_columns(pl.col("Date") - timedelta(days=40))
    gone = gone.with_columns(pl.col("Date").dt.strftime("%Y-%m").alias("x_BillingPeriod"))
    result = forecast_spend(gone, AS_OF, QUICK)
    assert result.forecasts.filter(pl.col("SpendKind") == USAGE).is_empty()
    [reason] = result.skipped["reason"].to_list()
    assert reason == (f"ended: no usage since {AS_OF - timedelta(days=40)} (more than ended_after_days 28 before "
                      f"as_of {AS_OF})")
