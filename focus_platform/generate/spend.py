"""Seasonal daily spend rows (SPEND_ROWS) for forecast and anomaly tests and benchmarks (no Dagster).

``seasonal_spend(series, start, days, ...)`` gives one usage row per series and day, the series
``i`` being owned by ``owner-<i mod owners>`` with its own service (``service-<i>``) and a provider
taken in turn from four. A series' daily EffectiveCost (= BilledCost) is::

    level × (1 + trend × t / 365) × (1 + weekly × w[weekday]) × (1 + monthly × cos(2π (day − 1) / month days)) × (1 + noise × ε)

``level`` a per-series daily amount (log-uniform, 20–2,000), ``w`` a per-series weekday profile
(mean 0, largest magnitude 1: every series has its own busy and quiet days), the day-of-month term
highest at a month's start, ``ε`` standard normal noise; amounts never go below zero and are
rounded to 1e-6. With ``fees``, each series also gets a recurring month-start fee (ChargeCategory
Purchase, ChargeFrequency Recurring, SpendKind fee) of ten times its level on day 1 of every month
in the range. Deterministic for a given argument set.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import numpy as np
import polars as pl

from focus_platform.forecasting.spend import FEE, SPEND_ROWS, USAGE

PROVIDERS = ("AWS", "Microsoft", "Google Cloud", "Oracle")
AMOUNT_SCALE = 10**6  # generated amounts: integers of 1e-6
FEE_LEVELS = 10  # a month-start fee: this many days of the series' level


def seasonal_spend(series: int, start: date, days: int, *, seed: int = 0, currency: str = "USD",
                   owners: int = 20, trend: float = 0.3, weekly: float = 0.25, monthly: float = 0.1,
                   noise: float = 0.05, fees: bool = True) -> pl.DataFrame:
    """SPEND_ROWS: one usage row per series × day from ``start`` for ``days`` days, plus the
    month-start recurring fee rows of each series when ``fees``. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    dates = [start + timedelta(days=d) for d in range(days)]
    levels = np.exp(rng.uniform(np.log(20), np.log(2000), series))
    amounts = levels[:, None] * _shape(rng, series, dates, trend, weekly, monthly, noise)
    usage = _rows(series, owners, dates, amounts, currency, USAGE)
    if not fees:
        return usage
    month_starts = [d for d in dates if d.day == 1]
    fee_amounts = np.repeat(levels[:, None] * FEE_LEVELS, len(month_starts), axis=1)
    return pl.concat([usage, _rows(series, owners, month_starts, fee_amounts, currency, FEE)]).sort(
        "Owner", "ServiceName", "Date", "SpendKind")


def _shape(rng: np.random.Generator, series: int, dates: list[date], trend: float, weekly: float,
           monthly: float, noise: float) -> np.ndarray:
    """Per series × day: the multiplicative trend, weekday, day-of-month and noise factors."""
    elapsed = np.arange(len(dates)) / 365
    profile = rng.normal(size=(series, 7))
    profile -= profile.mean(axis=1, keepdims=True)
    profile /= np.abs(profile).max(axis=1, keepdims=True)
    weekday = np.array([d.weekday() for d in dates])
    month_phase = np.array([(d.day - 1) / calendar.monthrange(d.year, d.month)[1] for d in dates])
    factors = ((1 + trend * elapsed)[None, :] * (1 + weekly * profile[:, weekday])
               * (1 + monthly * np.cos(2 * np.pi * month_phase))[None, :]
               * (1 + noise * rng.standard_normal((series, len(dates)))))
    return np.clip(factors, 0, None)


def _rows(series: int, owners: int, dates: list[date], amounts: np.ndarray, currency: str,
          kind: str) -> pl.DataFrame:
    """SPEND_ROWS of ``amounts`` (series × dates), one row per series and date."""
    index = np.repeat(np.arange(series), len(dates))
    frame = pl.DataFrame({
        "Series": index,
        "Date": pl.Series(dates * series, dtype=pl.Date),
        "Units": np.rint(amounts.ravel() * AMOUNT_SCALE).astype(np.int64),
    })
    fee = kind == FEE
    cost = pl.col("Units").cast(pl.Decimal(38, 0)).cast(SPEND_ROWS["BilledCost"]) / AMOUNT_SCALE
    number = pl.col("Series").cast(pl.String).str.zfill(5)
    owner = (pl.col("Series") % owners).cast(pl.String)
    return frame.with_columns(number.alias("Number")).select(
        "Date",
        pl.col("Date").dt.strftime("%Y-%m").alias("x_BillingPeriod"),
        pl.format("owner-{}", owner.str.zfill(2)).alias("Owner"),
        (pl.col("Series") % len(PROVIDERS)).replace_strict(dict(enumerate(PROVIDERS)), return_dtype=pl.String)
        .alias("ProviderName"),
        pl.format("service-{}", "Number").alias("ServiceName"),
        pl.lit("billing-account-1").alias("BillingAccountId"),
        pl.format("sub-account-{}", owner).alias("SubAccountId"),
        pl.lit(currency).alias("BillingCurrency"),
        pl.lit("Purchase" if fee else "Usage").alias("ChargeCategory"),
        pl.lit("Recurring" if fee else "Usage-Based").alias("ChargeFrequency"),
        pl.lit(kind).alias("SpendKind"),
        pl.format("resource-{}", "Number").alias("ResourceId"),
        pl.lit("support-fee" if fee else "usage-sku").alias("SkuId"),
        pl.format("{}-{}-{}", pl.lit(kind), "Number", pl.col("Date").dt.strftime("%Y%m%d")).alias("x_RowId"),
        cost.alias("BilledCost"),
        cost.alias("EffectiveCost"),
    ).cast(SPEND_ROWS)  # type: ignore[arg-type]

