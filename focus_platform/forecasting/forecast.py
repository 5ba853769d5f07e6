"""Spend forecasts per series, with rolling-origin backtests against seasonal-naive (no Dagster here).

Series and model
----------------
A series is the daily usage (``SpendKind`` usage, ``EffectiveCost``) of one ``SERIES_KEYS``
combination from its first day with a row through ``as_of``; days without rows are 0. Series with
fewer than ``min_history_days`` days, and series that ended (no usage in the ``ended_after_days`` days up
to ``as_of``: a decommissioned service is not forecast as a flat zero for months), are not forecast
(``skipped``, with the reason). The rest are
forecast from ``as_of`` + 1 through the last day of the month ``horizon_months`` after ``as_of``'s.

The model is statsforecast's MSTL (a decomposition into a weekly season of ``season_length`` days, a
day-of-month season of ``MONTH_SEASON`` days when the series' training data at its first backtest
origin spans at least ``MONTHLY_MIN_DAYS`` — ``x_Model`` ``MSTL(7,30)``, else ``MSTL(7)`` — and a
trend forecast by a damped additive-trend ETS, AutoETS "AAN" damped: fixed rather than selected,
which halves the fit time for the same accuracy on the generated series; the decomposition's
smoothers are evaluated every few points, ``STL_JUMPS``, which halves its time again). The
baseline is seasonal-naive (the value ``season_length`` days earlier). All series are fit by one
StatsForecast call per origin and model shape, in parallel over the cores.

Backtest and choice
-------------------
Rolling origin: origins ``as_of`` − k × ``backtest_horizon_days`` (k = 1 … ``backtest_folds``), each
forecasting ``backtest_horizon_days`` days; a series takes part in as many folds as leave it at
least ``min_history_days`` days of training (``Folds``). Per series and method:

- MAPE: the mean of |forecast − actual| / |actual| over the backtest days whose actual is not 0
  (days of zero spend have no percentage error; a series of zeros only has no MAPE).
- Interval scale: the native 80 % interval of each method is too narrow on these series (MSTL's
  covers about two thirds of the backtest days, the seasonal parts being taken as known), so it is
  calibrated: for each backtest day, the ratio of the error to the interval's half width on that
  side; the ``level`` quantile of the ratios is ``IntervalScale``, and the published interval is
  forecast ∓ scale × native half width (every horizon, also past the backtest horizon).
- ``IntervalCoverage``: the share of backtest days inside the calibrated interval, the scale of
  each fold taken from the other folds only (an out-of-sample figure; null with fewer than 2 folds).

The model is used when its MAPE is below the baseline's; else seasonal-naive, and ``x_ModelReason``
says which and why. A series too short for one fold is forecast by the model on its native interval,
without backtest (the reason says so). ``IntervalCoverage`` and ``IntervalScale`` are those of the
chosen method. Forecasts of a series with no negative day are clipped at 0.

Reuse: each series has a fingerprint (a digest of its keys, its exact daily values, the model and
library version and the settings the backtest depends on). A row of ``choices`` (a previous
``FORECAST_BACKTESTS``) whose keys and fingerprint match is reused as it is — choice, figures and
scale — and that series is not backtested again.

Fees, totals, months, currencies
--------------------------------
Fees (SpendKind fee) are not modelled. For a day of month, the "last month" is the latest month in
which that day is on or before ``as_of``. A fee is recurring when it is ``ChargeFrequency``
Recurring, or a Purchase charged on the same day of month in the last month and the month before.
The recurring fees charged in the last month repeat, on their day of each forecast month (the
month's last day when shorter), that month's amount; a recurring fee not charged in the last month
has stopped. Other fees are one-offs and are not projected: the series' fee rows say so in
``x_Note`` (a series whose recent fees are all one-offs gets one fee row of 0 on ``as_of`` + 1 to
carry the note). ``total`` rows are usage + fee per series and day (or month). Fee rows have no
uncertainty (Lower = Forecast = Upper).

Month rows (Grain month, ``Date`` the month's first day) sum the forecast days of that month (for
``as_of``'s month: the days after ``as_of`` only). Their interval is the sum ∓ the square root of the
sum of the squared daily half widths (days taken as independent; the plain sum of the bounds would
be far too wide).

Forecast values come from a float model: they are stored as Decimal(38, 12) rounded to 6 decimals
(month and total rows are exact Decimal sums of the stored daily values). The reporting-currency
columns use, per billing currency, the latest rate on or before ``as_of`` (rates of future days do
not exist yet); without one, they are null and ``x_Note`` names the currency.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from importlib.metadata import version

import polars as pl

from focus_platform.forecasting.spend import FEE, USAGE, daily
from focus_platform.reconciliation.currency import (
    MissingExchangeRateError,
    lookup_rates,
)
from focus_platform.spec.columns import MONEY


@dataclass(frozen=True)
class ForecastSettings:
    horizon_months: int = 3  # 1–3: forecast through the end of the month `horizon_months` after as_of's
    level: int = 80  # prediction interval, percent
    season_length: int = 7  # weekly seasonality on daily data
    min_history_days: int = 56  # shorter series: skipped with the reason
    ended_after_days: int = 28  # no usage in this many days up to as_of: the series ended, skipped with the reason
    backtest_folds: int = 3  # rolling origin
    backtest_horizon_days: int = 28
    reporting_currency: str = "USD"


SERIES_KEYS = ("Owner", "ServiceName", "ProviderName", "BillingCurrency")
MONTH_SEASON = 30  # the day-of-month season, in days
MONTHLY_MIN_DAYS = 3 * MONTH_SEASON  # training days the day-of-month season needs
BASELINE = "seasonal-naive"
FEE_MODEL = "last-month-repeat"
MODEL, BASELINE_CHOICE = "model", "baseline"  # FORECAST_BACKTESTS.Chosen
DAY, MONTH = "day", "month"  # Grain
TOTAL = "total"  # SpendKind of usage + fee
PARALLEL_MIN_SERIES = 64  # smaller panels are fit in this process: starting workers costs more than it saves
FORECAST_DIGITS = 6
# STL's smoothers evaluated every few points and interpolated between (as R's stl does by default): half the
# decomposition time, the same backtest MAPE on the generated series
STL_JUMPS = {"seasonal_jump": 3, "trend_jump": 5, "low_pass_jump": 3}

SPEND_FORECASTS = {
    "x_ForecastDate": pl.Date,
    "Grain": pl.String,
    "Date": pl.Date,
    "x_BillingPeriod": pl.String,
    "Owner": pl.String,
    "ServiceName": pl.String,
    "ProviderName": pl.String,
    "BillingCurrency": pl.String,
    "SpendKind": pl.String,
    "Forecast": MONEY,
    "Lower": MONEY,
    "Upper": MONEY,
    "ReportingCurrency": pl.String,
    "ForecastInReportingCurrency": MONEY,
    "LowerInReportingCurrency": MONEY,
    "UpperInReportingCurrency": MONEY,
    "x_Model": pl.String,
    "x_ModelReason": pl.String,
    "x_Level": pl.Int32,
    "x_Note": pl.String,
}
FORECAST_BACKTESTS = {
    "Owner": pl.String,
    "ServiceName": pl.String,
    "ProviderName": pl.String,
    "BillingCurrency": pl.String,
    "x_Model": pl.String,  # the model backtested (MSTL(7,30) or MSTL(7)), whichever was chosen
    "ModelMAPE": pl.Float64,
    "BaselineMAPE": pl.Float64,
    "IntervalCoverage": pl.Float64,  # of the chosen method's calibrated interval, out of sample
    "IntervalScale": pl.Float64,  # the chosen method's native interval half widths are multiplied by it
    "Folds": pl.Int32,
    "Chosen": pl.String,  # MODEL | BASELINE_CHOICE
    "x_Fingerprint": pl.String,
    "x_BacktestedAt": pl.Date,  # the as_of of the backtest
}
SKIPPED = {**{key: pl.String for key in SERIES_KEYS}, "reason": pl.String}
KEYS = list(SERIES_KEYS)


@dataclass
class ForecastResult:
    forecasts: pl.DataFrame  # SPEND_FORECASTS
    backtests: pl.DataFrame  # FORECAST_BACKTESTS, one row per forecast series
    skipped: pl.DataFrame  # SKIPPED
    fingerprint: str  # digest of the series fingerprints and all settings
    metadata: dict


def model_version() -> str:
    return f"statsforecast {version('statsforecast')} MSTL(STL jumps 3/5/3)+AutoETS(AAdN) vs SeasonalNaive"


def forecast_spend(rows: pl.LazyFrame | pl.DataFrame, as_of: date, settings: ForecastSettings = ForecastSettings(),
                   *, rates: pl.DataFrame | None = None, choices: pl.DataFrame | None = None) -> ForecastResult:
    """Daily and monthly forecasts of every series of ``rows`` (SPEND_ROWS) after ``as_of``; see the module."""
    started = time.perf_counter()
    rows = rows.lazy().filter(pl.col("Date") <= as_of)
    end = horizon_end(as_of, settings.horizon_months)
    history = usage_history(rows, as_of)
    days = history.group_by("unique_id", *KEYS).agg(pl.len().alias("Days"), pl.col("y").min().alias("Min"),
                                                     pl.col("Date").filter(pl.col("y") != 0).max().alias("Last"))
    short = pl.col("Days") < settings.min_history_days
    ended = pl.col("Last").is_null() | (pl.col("Last") < pl.lit(as_of) - timedelta(days=settings.ended_after_days))
    skipped = days.filter(short | ended).select(*KEYS, pl.when(short).then(pl.format(
        "{} days of usage history, fewer than min_history_days {}", "Days", pl.lit(settings.min_history_days)))
        .otherwise(pl.format("ended: no usage since {} (more than ended_after_days {} before as_of {})",
                             pl.col("Last").cast(pl.String).fill_null("its first day"),
                             pl.lit(settings.ended_after_days), pl.lit(str(as_of)))).alias("reason"))
    days = days.filter(~(short | ended)).drop("Last").with_columns(
        pl.min_horizontal(pl.lit(settings.backtest_folds, pl.Int32),
                          ((pl.col("Days") - settings.min_history_days) // settings.backtest_horizon_days)
                          .cast(pl.Int32)).alias("Folds"))
    days = days.with_columns((pl.col("Days") - pl.col("Folds") * settings.backtest_horizon_days
                              >= MONTHLY_MIN_DAYS).alias("Monthly"))
    history = history.join(days.select("unique_id", "Monthly", "Folds"), on="unique_id")
    days = days.join(series_fingerprints(history, settings), on="unique_id")
    reused = reused_choices(days, choices)
    tested = backtest(history.filter(~pl.col("unique_id").is_in(reused["unique_id"].implode())),
                      days, as_of, settings)
    backtests = pl.concat([reused, tested]).sort("unique_id")
    usage = usage_forecasts(history, backtests, days, as_of, (end - as_of).days, settings, reused)
    fees = fee_forecasts(rows, as_of, end)
    forecasts = in_reporting_currency(with_months(with_totals(usage, fees)), as_of, settings, rates)
    forecasts = forecasts.with_columns(pl.lit(as_of).alias("x_ForecastDate"),
                                       pl.col("Date").dt.strftime("%Y-%m").alias("x_BillingPeriod"),
                                       pl.lit(settings.level, pl.Int32).alias("x_Level"))
    forecasts = forecasts.select(SPEND_FORECASTS.keys()).cast(SPEND_FORECASTS).sort(  # type: ignore[arg-type]
        "Owner", "ServiceName", "ProviderName", "BillingCurrency", "SpendKind", "Grain", "Date", nulls_last=True)
    table = backtests.select(FORECAST_BACKTESTS.keys()).cast(FORECAST_BACKTESTS)  # type: ignore[arg-type]
    digest = hashlib.sha256("\n".join([repr(asdict(settings)), as_of.isoformat(), model_version(),
                                       *sorted(table["x_Fingerprint"])]).encode()).hexdigest()
    return ForecastResult(forecasts, table, skipped.sort(KEYS, nulls_last=True).cast(SKIPPED), digest,
                          summarize(table, skipped, reused, time.perf_counter() - started))


def horizon_end(as_of: date, months: int) -> date:
    """The last day of the month ``months`` after ``as_of``'s."""
    first = date(as_of.year + (as_of.month + months) // 12, (as_of.month + months) % 12 + 1, 1)
    return first - timedelta(days=1)


def usage_history(rows: pl.LazyFrame, as_of: date) -> pl.DataFrame:
    """Per series (``unique_id``, SERIES_KEYS) and day from its first usage day through ``as_of``: ``Cost``
    (exact, 0 on days without rows) and ``y`` (its float, what the model reads)."""
    sums = daily(rows.filter(pl.col("SpendKind") == USAGE), KEYS).collect()
    series = (sums.group_by(KEYS).agg(pl.col("Date").min().alias("First")).sort(KEYS, nulls_last=True)
              .with_row_index("unique_id").with_columns(pl.col("unique_id").cast(pl.Int64)))
    grid = series.select("unique_id", *KEYS, pl.date_ranges("First", pl.lit(as_of)).alias("Date")).explode("Date")
    return (grid.join(sums, on=[*KEYS, "Date"], how="left", nulls_equal=True)
            .with_columns(pl.col("Cost").fill_null(0))
            .with_columns(pl.col("Cost").cast(pl.Float64).alias("y")))


def series_fingerprints(history: pl.DataFrame, settings: ForecastSettings) -> pl.DataFrame:
    """``unique_id`` → ``x_Fingerprint``: digest of keys, first day, exact values, model and backtest settings."""
    context = "|".join([model_version(), str(settings.level), str(settings.season_length),
                        str(settings.min_history_days), str(settings.backtest_folds),
                        str(settings.backtest_horizon_days)])
    texts = history.group_by("unique_id").agg(
        pl.concat_str([pl.col(key).fill_null("\x00") for key in KEYS], separator="\x1f").first().alias("keys"),
        pl.col("Date").min().cast(pl.String).alias("first"),
        pl.col("Cost").cast(pl.String).str.join(",").alias("values"))
    digests = [hashlib.sha256("\n".join([context, keys, first, values]).encode()).hexdigest()[:32]
               for keys, first, values in texts.select("keys", "first", "values").iter_rows()]
    return texts.select("unique_id", pl.Series("x_Fingerprint", digests, pl.String))


def reused_choices(days: pl.DataFrame, choices: pl.DataFrame | None) -> pl.DataFrame:
    """The ``choices`` rows whose series keys and fingerprint match a series of ``days`` (with its ``unique_id``)."""
    if choices is None or choices.is_empty():
        return pl.DataFrame(schema={"unique_id": pl.Int64, **FORECAST_BACKTESTS})
    return (days.select("unique_id", *KEYS, "x_Fingerprint")
            .join(choices.cast(FORECAST_BACKTESTS), on=[*KEYS, "x_Fingerprint"],  # type: ignore[arg-type]
                  nulls_equal=True)
            .select("unique_id", *FORECAST_BACKTESTS.keys()))


def model_name(monthly: pl.Expr, settings: ForecastSettings) -> pl.Expr:
    return pl.when(monthly).then(pl.lit(f"MSTL({settings.season_length},{MONTH_SEASON})")).otherwise(
        pl.lit(f"MSTL({settings.season_length})"))


def predict(history: pl.DataFrame, horizon: int, settings: ForecastSettings) -> pl.DataFrame:
    """Model and seasonal-naive forecasts of every series of ``history`` for ``horizon`` days after its last:
    ``unique_id``, ``Date``, ``Method`` (MODEL | BASELINE_CHOICE), ``f``, ``lo``, ``hi`` (native interval)."""
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, SeasonalNaive

    parts = []
    for (monthly,), panel in history.partition_by("Monthly", as_dict=True).items():
        seasons = [settings.season_length, MONTH_SEASON] if monthly else [settings.season_length]
        models = [MSTL(season_length=seasons, trend_forecaster=AutoETS(model="AAN", damped=True),
                       stl_kwargs=STL_JUMPS, alias=MODEL),
                  SeasonalNaive(season_length=settings.season_length, alias=BASELINE_CHOICE)]
        series = panel["unique_id"].n_unique()
        engine = StatsForecast(models=models, freq="1d", n_jobs=-1 if series >= PARALLEL_MIN_SERIES else 1)
        out = engine.forecast(df=panel.select("unique_id", pl.col("Date").alias("ds"), "y"), h=horizon,
                              level=[settings.level])
        level = settings.level
        parts.extend(out.select("unique_id", pl.col("ds").alias("Date"), pl.lit(method).alias("Method"),
                                pl.col(method).alias("f"), pl.col(f"{method}-lo-{level}").alias("lo"),
                                pl.col(f"{method}-hi-{level}").alias("hi"))
                     for method in (MODEL, BASELINE_CHOICE))
    schema = {"unique_id": pl.Int64, "Date": pl.Date, "Method": pl.String, "f": pl.Float64, "lo": pl.Float64,
              "hi": pl.Float64}
    return pl.concat(parts).cast(schema) if parts else pl.DataFrame(schema=schema)  # type: ignore[arg-type]


def backtest(history: pl.DataFrame, days: pl.DataFrame, as_of: date, settings: ForecastSettings) -> pl.DataFrame:
    """FORECAST_BACKTESTS rows (with ``unique_id``) of the series of ``history``: rolling-origin folds."""
    span = settings.backtest_horizon_days
    folds = []
    for k in range(1, settings.backtest_folds + 1):
        origin = as_of - timedelta(days=k * span)
        panel = history.filter((pl.col("Folds") >= k) & (pl.col("Date") <= origin))
        if panel.height:
            folds.append(predict(panel, span, settings).with_columns(pl.lit(k, pl.Int32).alias("Fold")))
    series = days.filter(pl.col("unique_id").is_in(history["unique_id"].unique().implode()))
    scores = score_folds(pl.concat(folds).join(history.select("unique_id", "Date", "y"), on=["unique_id", "Date"])
                         if folds else None, settings)
    return (series.join(scores, on="unique_id", how="left")
            .with_columns(
                model_name(pl.col("Monthly"), settings).alias("x_Model"),
                pl.when(pl.col("ModelMAPE") < pl.col("BaselineMAPE")).then(pl.lit(MODEL))
                .when(pl.col("Folds") == 0).then(pl.lit(MODEL)).otherwise(pl.lit(BASELINE_CHOICE)).alias("Chosen"),
                pl.lit(as_of).alias("x_BacktestedAt"))
            .with_columns(
                pl.when(pl.col("Chosen") == MODEL).then("ModelCoverage").otherwise("BaselineCoverage")
                .alias("IntervalCoverage"),
                pl.when(pl.col("Chosen") == MODEL).then("ModelScale").otherwise("BaselineScale")
                .fill_null(1.0).alias("IntervalScale"))
            .select("unique_id", *FORECAST_BACKTESTS.keys()))


def score_folds(points: pl.DataFrame | None, settings: ForecastSettings) -> pl.DataFrame:
    """Per series: ModelMAPE, BaselineMAPE, ModelScale, BaselineScale, ModelCoverage, BaselineCoverage."""
    names = ["ModelMAPE", "BaselineMAPE", "ModelScale", "BaselineScale", "ModelCoverage", "BaselineCoverage"]
    if points is None:
        return pl.DataFrame(schema={"unique_id": pl.Int64, **dict.fromkeys(names, pl.Float64)})
    error = (pl.col("y") - pl.col("f")).abs()
    half = pl.when(pl.col("y") >= pl.col("f")).then(pl.col("hi") - pl.col("f")).otherwise(pl.col("f") - pl.col("lo"))
    points = points.with_columns(
        pl.when(pl.col("y") != 0).then(error / pl.col("y").abs()).alias("ape"),
        (error / pl.max_horizontal(half, pl.lit(1e-9))).alias("ratio"))
    quantile = settings.level / 100
    per_method = points.group_by("unique_id", "Method").agg(
        pl.col("ape").mean().alias("MAPE"), pl.col("ratio").quantile(quantile).alias("Scale"),
        pl.col("Fold").n_unique().alias("folds"))
    held_out = []
    for fold in points["Fold"].unique().sort():
        others = (points.filter(pl.col("Fold") != fold).group_by("unique_id", "Method")
                  .agg(pl.col("ratio").quantile(quantile).alias("others")))
        held_out.append(points.filter(pl.col("Fold") == fold).join(others, on=["unique_id", "Method"])
                        .select("unique_id", "Method", (pl.col("ratio") <= pl.col("others")).alias("covered")))
    coverage = pl.concat(held_out).group_by("unique_id", "Method").agg(
        pl.col("covered").mean().alias("Coverage"))
    per_method = per_method.join(coverage, on=["unique_id", "Method"], how="left").with_columns(
        pl.when(pl.col("folds") >= 2).then("Coverage").alias("Coverage"))
    wide = per_method.pivot("Method", index="unique_id", values=["MAPE", "Scale", "Coverage"])
    return wide.select("unique_id", *(pl.col(f"{what}_{method}").alias(f"{label}{what}")
                                      for what in ("MAPE", "Scale", "Coverage")
                                      for method, label in ((MODEL, "Model"), (BASELINE_CHOICE, "Baseline")))
                       ).select("unique_id", *names)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def reason(row: dict, reused: bool, min_days: int) -> str:
    """x_ModelReason of a series' backtest row."""
    mapes = f"MAPE {percent(row['ModelMAPE'])} vs {percent(row['BaselineMAPE'])}"
    if row["Folds"] == 0:
        text = f"no backtest: fewer than {min_days} days of history (min_history_days + one fold): model"
    elif row["Chosen"] == MODEL:
        text = f"beats seasonal-naive: {mapes} over {row['Folds']} folds"
    else:
        text = f"seasonal-naive: model lost the backtest ({mapes} over {row['Folds']} folds)"
    return text + (f"; backtest of {row['x_BacktestedAt']} reused (same fingerprint)" if reused else "")


def money(value: pl.Expr) -> pl.Expr:
    """A float forecast as Decimal(38, 12) rounded to FORECAST_DIGITS decimals."""
    return value.round(FORECAST_DIGITS).cast(pl.Decimal(38, FORECAST_DIGITS)).cast(MONEY)


def usage_forecasts(history: pl.DataFrame, backtests: pl.DataFrame, days: pl.DataFrame, as_of: date,
                    horizon: int, settings: ForecastSettings, reused: pl.DataFrame) -> pl.DataFrame:
    """Daily usage forecasts of the chosen method with its calibrated interval (SPEND_FORECASTS columns)."""
    reused_ids = set(reused["unique_id"])
    chosen = backtests.with_columns(
        pl.Series("x_ModelReason", [reason(row, row["unique_id"] in reused_ids, settings.min_history_days
                                           + settings.backtest_horizon_days)
                                    for row in backtests.iter_rows(named=True)], pl.String),
        pl.when(pl.col("Chosen") == MODEL).then("x_Model").otherwise(pl.lit(BASELINE)).alias("Label"))
    forecasts = predict(history, horizon, settings).join(
        chosen.select("unique_id", pl.col("Chosen").alias("Method"), "IntervalScale", "Label", "x_ModelReason"),
        on=["unique_id", "Method"]).join(days.select("unique_id", *KEYS, "Min"), on="unique_id")
    floor = pl.when(pl.col("Min") >= 0).then(0.0).otherwise(None)
    scale = pl.col("IntervalScale")
    return forecasts.select(
        *KEYS, "Date", pl.lit(USAGE).alias("SpendKind"),
        money(pl.max_horizontal("f", floor)).alias("Forecast"),
        money(pl.max_horizontal(pl.col("f") - scale * (pl.col("f") - pl.col("lo")), floor)).alias("Lower"),
        money(pl.max_horizontal(pl.col("f") + scale * (pl.col("hi") - pl.col("f")), floor)).alias("Upper"),
        pl.col("Label").alias("x_Model"), "x_ModelReason", pl.lit(None, pl.String).alias("x_Note"))


def month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def fee_forecasts(rows: pl.LazyFrame, as_of: date, end: date) -> pl.DataFrame:
    """Recurring fees repeated on their day of month through ``end`` (SPEND_FORECASTS columns, Lower = Upper =
    Forecast); series whose recent fees include one-offs get a row note saying they are not projected."""
    fees = (rows.filter((pl.col("SpendKind") == FEE) & (pl.col("Date") >= month_start(as_of, 2)))
            .select(*KEYS, "Date", "ChargeCategory", "ChargeFrequency", "EffectiveCost").collect()
            .with_columns(pl.col("Date").dt.day().alias("Day"), pl.col("Date").dt.month_start().alias("Month")))
    latest = pl.when(pl.col("Day") <= as_of.day).then(pl.lit(month_start(as_of))).otherwise(
        pl.lit(month_start(as_of, 1)))
    fees = fees.with_columns(latest.alias("Latest"), latest.dt.offset_by("-1mo").alias("Before"))
    purchase = (pl.col("ChargeCategory") == "Purchase") & (pl.col("ChargeFrequency") != "Recurring")
    charged_in = lambda month: (purchase & (pl.col("Month") == pl.col(month))).any().over(*KEYS, "Day")  # noqa: E731
    fees = fees.with_columns(((pl.col("ChargeFrequency") == "Recurring")
                              | (purchase & charged_in("Latest") & charged_in("Before"))).alias("Recurring"))
    amounts = (fees.filter("Recurring", pl.col("Month") == pl.col("Latest")).group_by(*KEYS, "Day")
               .agg(pl.col("EffectiveCost").sum().alias("Forecast")))
    months = pl.DataFrame({"Month": pl.date_range(month_start(as_of), month_start(end), "1mo", eager=True)})
    projected = (amounts.join(months, how="cross")
                 .with_columns(pl.min_horizontal(pl.col("Month").dt.offset_by(pl.format("{}d", pl.col("Day") - 1)),
                                                 pl.col("Month").dt.month_end()).alias("Date"))
                 .filter((pl.col("Date") > as_of) & (pl.col("Date") <= end))
                 .group_by(*KEYS, "Date").agg(pl.col("Forecast").sum()))
    one_offs = (fees.filter(~pl.col("Recurring") & (pl.col("Date") >= month_start(as_of, 1)))
                .group_by(KEYS).agg(pl.len().alias("rows"), pl.col("Date").max().alias("last"))
                .select(*KEYS, pl.format("one-off fees not projected ({} rows since {}, the last on {})", "rows",
                                         pl.lit(month_start(as_of, 1).isoformat()), "last").alias("x_Note")))
    noted = one_offs.join(projected.select(KEYS).unique(), on=KEYS, how="anti", nulls_equal=True).with_columns(
        pl.lit(as_of + timedelta(days=1)).alias("Date"), pl.lit(0, MONEY).alias("Forecast"))
    rows_out = pl.concat([projected.join(one_offs, on=KEYS, how="left", nulls_equal=True), noted],
                         how="diagonal_relaxed")
    return rows_out.select(
        *KEYS, "Date", pl.lit(FEE).alias("SpendKind"), pl.col("Forecast").cast(MONEY),
        pl.col("Forecast").cast(MONEY).alias("Lower"), pl.col("Forecast").cast(MONEY).alias("Upper"),
        pl.lit(FEE_MODEL).alias("x_Model"),
        pl.lit("recurring fees repeat last month's amount on their day of month").alias("x_ModelReason"), "x_Note")


def with_totals(usage: pl.DataFrame, fees: pl.DataFrame) -> pl.DataFrame:
    """Daily usage and fee rows plus their ``total`` per series and day."""
    both = pl.concat([usage, fees])
    totals = both.group_by(*KEYS, "Date").agg(
        *(pl.col(column).sum().cast(MONEY) for column in ("Forecast", "Lower", "Upper")),
        pl.col("x_Model").sort_by(pl.col("SpendKind") != USAGE).first(),
        pl.col("x_ModelReason").sort_by(pl.col("SpendKind") != USAGE).first(),
        pl.col("x_Note").drop_nulls().first())
    return pl.concat([both, totals.with_columns(pl.lit(TOTAL).alias("SpendKind")).select(both.columns)])


def with_months(daily_rows: pl.DataFrame) -> pl.DataFrame:
    """Day rows (Grain day) and their month sums (Grain month) per series and SpendKind; a month's interval is
    its sum ∓ the root of the summed squared daily half widths."""
    below = (pl.col("Forecast") - pl.col("Lower")).cast(pl.Float64)
    above = (pl.col("Upper") - pl.col("Forecast")).cast(pl.Float64)
    months = (daily_rows.with_columns(pl.col("Date").dt.month_start().alias("Month"))
              .group_by(*KEYS, "SpendKind", "Month")
              .agg(pl.col("Forecast").sum().cast(MONEY), (below ** 2).sum().sqrt().alias("below"),
                   (above ** 2).sum().sqrt().alias("above"),
                   pl.col("x_Model").first(), pl.col("x_ModelReason").first(), pl.col("x_Note").drop_nulls().first())
              .with_columns((pl.col("Forecast") - money(pl.col("below"))).cast(MONEY).alias("Lower"),
                            (pl.col("Forecast") + money(pl.col("above"))).cast(MONEY).alias("Upper"),
                            pl.col("Month").alias("Date"), pl.lit(MONTH).alias("Grain")))
    day_rows = daily_rows.with_columns(pl.lit(DAY).alias("Grain"))
    return pl.concat([day_rows, months.select(day_rows.columns)])


def reporting_rates(currencies: list[str], as_of: date, settings: ForecastSettings,
                    rates: pl.DataFrame | None) -> pl.DataFrame:
    """Per billing currency: ``Rate`` (units of the reporting currency per unit, the latest on or before
    ``as_of``) or a null rate and ``RateNote`` naming the currency."""
    reporting = settings.reporting_currency.upper()
    found = []
    for currency in currencies:
        if currency == reporting:
            found.append((currency, Decimal(1), None))
            continue
        try:
            if rates is None:
                raise MissingExchangeRateError(currency, as_of, reporting, "no exchange rates given")
            key = pl.DataFrame({"BillingCurrency": [currency], "__rate_date": [as_of]})
            found.append((currency, lookup_rates(key, rates, reporting)["x_ExchangeRate"][0], None))
        except MissingExchangeRateError as missing:
            found.append((currency, None, f"{missing}: reporting-currency columns left empty"))
    return pl.DataFrame(found, schema={"BillingCurrency": pl.String, "Rate": MONEY, "RateNote": pl.String},
                        orient="row")


def in_reporting_currency(forecasts: pl.DataFrame, as_of: date, settings: ForecastSettings,
                            rates: pl.DataFrame | None) -> pl.DataFrame:
    currencies = forecasts["BillingCurrency"].drop_nulls().unique().sort().to_list()
    table = reporting_rates(currencies, as_of, settings, rates)
    rate = pl.col("Rate")
    return (forecasts.join(table, on="BillingCurrency", how="left")
            .with_columns(pl.lit(settings.reporting_currency.upper()).alias("ReportingCurrency"),
                          *((pl.col(column) * rate).cast(MONEY).alias(f"{column}InReportingCurrency")
                            for column in ("Forecast", "Lower", "Upper")),
                          pl.concat_str(["x_Note", "RateNote"], separator="; ", ignore_nulls=True)
                          .replace("", None).alias("x_Note")))


def summarize(backtests: pl.DataFrame, skipped: pl.DataFrame, reused: pl.DataFrame, seconds: float) -> dict:
    """Plain figures of a run (what the asset shows as metadata)."""
    tested = backtests.filter(pl.col("Folds") > 0)

    def median(column: str) -> float | None:
        value = tested[column].median()
        return None if value is None else round(float(value), 4)

    return {
        "series": backtests.height + skipped.height,
        "forecast": backtests.height,
        "skipped": skipped.height,
        "backtested": backtests.height - reused.height,
        "reused": reused.height,
        "model_wins": tested.filter(pl.col("Chosen") == MODEL).height,
        "baseline_wins": tested.filter(pl.col("Chosen") == BASELINE_CHOICE).height,
        "model_mape_median": median("ModelMAPE"),
        "baseline_mape_median": median("BaselineMAPE"),
        "interval_coverage_median": median("IntervalCoverage"),
        "model": model_version(),
        "seconds": round(seconds, 2),
    }
