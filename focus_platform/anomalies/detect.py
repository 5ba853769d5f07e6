"""Cost anomalies: daily usage cost per series scored against a seasonal baseline, grouped into incidents,
with their top contributing resources and SKUs (no Dagster here).

``detect(rows, settings, suppressions=..., as_of=..., days=...)`` reads SPEND_ROWS:

- a series is one tuple of ``settings.keys``; its daily cost is the exact Decimal sum of its usage rows'
  EffectiveCost (``forecasting.spend.daily``; fees — month-start purchases, support, tax, credits — are
  never scored nor part of a baseline). A day without usage rows after a series' first day costs 0;
  known one-offs (``settings.one_offs``) are left out of the baseline and not scored;
- ``baseline.score`` gives each day an expected cost (level × weekday factor) and a robust score; a day is
  an anomaly when ``|score| ≥ settings.threshold`` and ``|actual − expected| ≥ settings.cost_floor``
  (anomalies under the floor are only counted);
- anomalies inside a suppression window of their series are kept with Status "suppressed" and the reason;
- incidents: anomalies of one series at most ``group_gap_days`` quiet days apart are one incident (a day is
  quiet when it is not scored or its |score| is under ``ELEVATED_SHARE`` of the threshold: a day still
  elevated keeps the incident open without being an anomaly itself — a runaway whose score dips for a
  few days, or the days after a level shift while the weekday factors catch up, stay one incident), and when
  ``Owner`` is a key, the incidents of one owner starting on the same day (other services or accounts: one
  cause, such as a deployment) are one incident; an incident of another service that starts while one is
  under way stays apart. ``IncidentStart`` is its first day and ``IncidentId`` a digest of the keys of its
  series (the first in key order) and that day: a rerun over the same rows gives the same id. An incident
  is an alert when one of its rows is "raised";
- top contributors: per anomaly, the resources and SKUs of the series whose cost that day moved most
  (in the anomaly's direction) from their own baseline, the median of their cost on the same weekday of the
  previous four weeks (weeks before the rows' first day are left out), with the day's x_RowIds (at most
  ``ROW_IDS_PER_CONTRIBUTOR``; none when the resource had no row that day).

Every day up to ``as_of`` (default: the rows' last day) is scored, so that an incident's start and id do not
depend on ``days``; the table holds the anomalies of ``days`` (first, last inclusive; default: all).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import polars as pl

from focus_platform.anomalies.baseline import (
    LEVEL_DAYS,
    PROFILE_WEEKS,
    SCALE_DAYS,
    Scores,
    score,
)
from focus_platform.anomalies.settings import KEY_COLUMNS, AnomalySettings, Suppression
from focus_platform.forecasting.spend import USAGE, daily
from focus_platform.spec.columns import MONEY

RAISED, SUPPRESSED = "raised", "suppressed"
UP, DOWN = "up", "down"
ROW_IDS_PER_CONTRIBUTOR = 20
CONTRIBUTOR_WEEKS = 4
ELEVATED_SHARE = 0.3  # a day scoring at least this share of the threshold keeps an incident open
EXPECTED_DECIMALS = 6  # a float model's expected cost is stored rounded to 1e-6
TOO_SHORT_LISTED = 100  # series too short named in metadata (all are counted)
METHOD = (f"expected = level (median of the last {LEVEL_DAYS} days without weekday effect) × weekday factor "
          f"(median over {PROFILE_WEEKS} weeks); score = (actual − expected) / (expected × 1.4826 × median "
          f"|relative residual| of {SCALE_DAYS} days), or the two-day score when larger")
COST_ANOMALIES = {
    "Date": pl.Date,
    "x_BillingPeriod": pl.String,
    **{column: pl.String for column in KEY_COLUMNS},  # the settings' keys; null in the columns that are not
    "Expected": MONEY,
    "Actual": MONEY,
    "Delta": MONEY,
    "Score": pl.Float64,
    "Direction": pl.String,  # UP | DOWN
    "IncidentId": pl.String,
    "IncidentStart": pl.Date,
    "Status": pl.String,  # RAISED | SUPPRESSED
    "x_Reason": pl.String,
    "TopContributors": pl.String,  # JSON: [{ResourceId, SkuId, Delta, x_RowIds: [...]}]
}
REQUIRED_COLUMNS = ("Date", "SpendKind", "EffectiveCost", "ResourceId", "SkuId", "x_RowId")


@dataclass
class AnomalyResult:
    anomalies: pl.DataFrame  # COST_ANOMALIES
    metadata: dict


def detect(rows: pl.LazyFrame | pl.DataFrame, settings: AnomalySettings = AnomalySettings(), *,
           suppressions: tuple[Suppression, ...] | list[Suppression] = (), as_of: date | None = None,
           days: tuple[date, date] | None = None) -> AnomalyResult:
    started = time.perf_counter()
    keys = list(settings.keys)
    usage = _usage(rows.lazy(), keys, as_of)
    sums = daily(usage, keys).collect()
    if sums.is_empty():
        return AnomalyResult(pl.DataFrame(schema=COST_ANOMALIES), _metadata(settings, started, {}))
    series = sums.select(keys).unique(maintain_order=True).with_row_index("Series")
    sums = sums.join(series, on=keys, nulls_equal=True)
    first, last = sums["Date"].min(), sums["Date"].max()
    window = days or (first, last)
    costs, one_off_days = _costs(sums, series, first, last, settings)
    scores = score(costs, settings.min_history_days)
    candidates = _candidates(scores, sums, first, settings.threshold)
    in_window = pl.col("Date").is_between(*window)
    under_floor = candidates.filter(in_window & (pl.col("Delta").abs() < settings.cost_floor)).height
    anomalies = _with_status(candidates.filter(pl.col("Delta").abs() >= settings.cost_floor), series, suppressions)
    anomalies = _with_incidents(anomalies, series, keys, settings.group_gap_days).filter(in_window)
    contributors = _top_contributors(usage, anomalies.join(series, on="Series"), keys, first,
                                     settings.top_contributors)
    table = _table(anomalies, series, contributors, keys)
    scored_days = _window_days(scores.scored, first, window)
    counts = {
        "series": series.height,
        "series_scored": int(scored_days.any(axis=1).sum()),
        "days_scored": int(scored_days.sum()),
        "one_off_days_excluded": one_off_days,
        "under_floor": under_floor,
        "anomalies": table.height,
        "raised": int((table["Status"] == RAISED).sum()),
        "suppressed": int((table["Status"] == SUPPRESSED).sum()),
        "incidents": table["IncidentId"].n_unique(),
        "alerts": table.filter(pl.col("Status") == RAISED)["IncidentId"].n_unique(),
        **_too_short(series, costs, scored_days, first, window, keys, settings.min_history_days),
    }
    return AnomalyResult(table, _metadata(settings, started, counts))


def _usage(rows: pl.LazyFrame, keys: list[str], as_of: date | None) -> pl.LazyFrame:
    names = rows.collect_schema().names()
    missing = [c for c in (*keys, *REQUIRED_COLUMNS) if c not in names]
    if missing:
        raise ValueError(f"spend rows have no column {', '.join(missing)} (anomaly detection reads SPEND_ROWS)")
    usage = rows.filter(pl.col("SpendKind") == USAGE)
    return usage if as_of is None else usage.filter(pl.col("Date") <= as_of)


def _costs(sums: pl.DataFrame, series: pl.DataFrame, first: date, last: date,
           settings: AnomalySettings) -> tuple[np.ndarray, int]:
    """Series × day floats (NaN before a series' first day and on known one-offs) and the one-off days left out."""
    day = (sums["Date"] - first).dt.total_days().to_numpy()
    row = sums["Series"].to_numpy()
    costs = np.full((series.height, (last - first).days + 1), np.nan)
    starts = np.full(series.height, costs.shape[1])
    np.minimum.at(starts, row, day)
    costs[np.arange(costs.shape[1])[None, :] >= starts[:, None]] = 0.0
    costs[row, day] = sums["Cost"].cast(pl.Float64).to_numpy()  # floats for scoring only
    excluded = 0
    for one_off in settings.one_offs:
        column = (one_off.day - first).days
        if 0 <= column < costs.shape[1]:
            hit = _matching(series, one_off.match)
            excluded += int((~np.isnan(costs[hit, column])).sum())
            costs[hit, column] = np.nan
    return costs, excluded


def _matching(series: pl.DataFrame, match: tuple[tuple[str, str], ...]) -> list[int]:
    """The Series numbers of the series a suppression's or one-off's ``match`` names."""
    return [number for number, *_ in series.filter(
        pl.all_horizontal(True, *[pl.col(column) == value for column, value in match])).iter_rows()]


def _candidates(scores: Scores, sums: pl.DataFrame, first: date, threshold: float) -> pl.DataFrame:
    """Series days at or past the threshold: Series, Date, Score, the baseline's parts and the exact amounts."""
    strength = np.abs(np.nan_to_num(scores.score))
    quiet_days = np.cumsum(strength < threshold * ELEVATED_SHARE, axis=1)
    row, day = np.nonzero(scores.scored & (strength >= threshold))
    frame = pl.DataFrame({
        "Series": pl.Series(row, dtype=pl.UInt32),
        "Date": pl.Series([first + timedelta(days=int(d)) for d in day], dtype=pl.Date),
        "Score": scores.score[row, day],
        "ExpectedUnits": np.rint(scores.expected[row, day] * 10**EXPECTED_DECIMALS).astype(np.int64),
        "Factor": scores.factor[row, day],
        "Level": scores.level[row, day],
        "Scale": scores.scale[row, day],
        "QuietDays": quiet_days[row, day],  # days of the series so far not elevated
    })
    expected = pl.col("ExpectedUnits").cast(pl.Decimal(38, 0)).cast(MONEY) / 10**EXPECTED_DECIMALS
    return (frame.join(sums.select("Series", "Date", "Cost"), on=["Series", "Date"], how="left")
            .with_columns(pl.col("Cost").fill_null(Decimal(0)).cast(MONEY).alias("Actual"),
                          expected.cast(MONEY).alias("Expected"))
            .with_columns((pl.col("Actual") - pl.col("Expected")).cast(MONEY).alias("Delta"))
            .drop("Cost", "ExpectedUnits"))


def _with_status(anomalies: pl.DataFrame, series: pl.DataFrame, suppressions) -> pl.DataFrame:
    """Status and x_Reason: the first suppression window covering an anomaly suppresses it."""
    baseline = pl.format("expected {} = level {} × weekday factor {}; robust scale {}",
                         pl.col("Expected").cast(pl.Float64).round(2), pl.col("Level").round(2),
                         pl.col("Factor").round(3), pl.col("Scale").round(2))
    reason = pl.lit(None, pl.String)
    for suppression in reversed(list(suppressions)):
        covered = pl.col("Series").is_in(_matching(series, suppression.match)) & pl.col("Date").is_between(suppression.start, suppression.end)
        reason = pl.when(covered).then(pl.lit(suppression.reason)).otherwise(reason)
    return anomalies.with_columns(reason.alias("Suppressed")).with_columns(
        pl.when(pl.col("Suppressed").is_null()).then(pl.lit(RAISED)).otherwise(pl.lit(SUPPRESSED)).alias("Status"),
        pl.when(pl.col("Suppressed").is_null()).then(baseline)
        .otherwise(pl.format("suppressed: {}; {}", "Suppressed", baseline)).alias("x_Reason"),
    ).drop("Suppressed")


def _with_incidents(anomalies: pl.DataFrame, series: pl.DataFrame, keys: list[str], gap_days: int) -> pl.DataFrame:
    """IncidentStart and IncidentId of every anomaly (see the module's docstring)."""
    run = ((pl.col("Series") != pl.col("Series").shift()) | (pl.col("QuietDays").diff() > gap_days)).fill_null(True)
    grouped = (anomalies.sort("Series", "Date").with_columns(run.cum_sum().alias("Run"))
               .with_columns(pl.col("Date").min().over("Run").alias("IncidentStart"))
               .join(series.select("Series", *(["Owner"] if "Owner" in keys else [])), on="Series"))
    together = ["Owner" if "Owner" in keys else "Series", "IncidentStart"]
    grouped = grouped.with_columns(pl.col("Series").min().over(together).alias("First"))
    ids = {(first, start): _incident_id(dict(zip(keys, series.row(first)[1:], strict=True)), start)
           for first, start in grouped.select("First", "IncidentStart").unique().iter_rows()}
    incident = pl.Series("IncidentId", [ids[pair] for pair in grouped.select("First", "IncidentStart").iter_rows()],
                         dtype=pl.String)
    return grouped.with_columns(incident).drop("Run", "First", *(["Owner"] if "Owner" in keys else []))


def _incident_id(values: dict, start: date) -> str:
    text = json.dumps({**values, "IncidentStart": start.isoformat()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _top_contributors(usage: pl.LazyFrame, anomalies: pl.DataFrame, keys: list[str], first: date,
                      limit: int) -> pl.DataFrame:
    """Series, Date and the TopContributors JSON of every anomaly."""
    if anomalies.is_empty():
        return pl.DataFrame(schema={"Series": pl.UInt32, "Date": pl.Date, "TopContributors": pl.String})
    lags = (anomalies.select("Series", "Date", *keys)
            .join(pl.DataFrame({"Weeks": list(range(CONTRIBUTOR_WEEKS + 1))}), how="cross")
            .with_columns((pl.col("Date") - pl.duration(days=7) * pl.col("Weeks")).alias("Day"))
            .filter(pl.col("Day") >= first))
    moved = (usage.join(lags.lazy(), left_on=[*keys, "Date"], right_on=[*keys, "Day"], nulls_equal=True,
                        suffix="Anomaly")
             .group_by("Series", "DateAnomaly", "ResourceId", "SkuId", "Weeks")
             .agg(pl.col("EffectiveCost").sum().alias("Cost"),
                  pl.col("x_RowId").sort().head(ROW_IDS_PER_CONTRIBUTOR).alias("RowIds"))
             .collect())
    weeks = lags.group_by("Series", "Date").agg(pl.col("Weeks").filter(pl.col("Weeks") > 0).alias("Previous"))
    direction = {(r["Series"], r["Date"]): r["Delta"] >= 0 for r in anomalies.iter_rows(named=True)}
    previous = {(r["Series"], r["Date"]): r["Previous"] for r in weeks.iter_rows(named=True)}
    found: dict[tuple, dict[tuple, dict]] = {}
    for r in moved.iter_rows(named=True):
        contributor = found.setdefault((r["Series"], r["DateAnomaly"]), {}).setdefault(
            (r["ResourceId"], r["SkuId"]), {"weeks": {}, "RowIds": []})
        contributor["weeks"][r["Weeks"]] = r["Cost"]
        if r["Weeks"] == 0:
            contributor["RowIds"] = r["RowIds"]
    records = []
    for anomaly, contributors in found.items():
        listed = [{"ResourceId": resource, "SkuId": sku,
                   "Delta": _moved(parts["weeks"], previous[anomaly]), "x_RowIds": parts["RowIds"]}
                  for (resource, sku), parts in contributors.items()]
        up = direction[anomaly]
        listed.sort(key=lambda c: (-c["Delta"] if up else c["Delta"], str(c["ResourceId"]), str(c["SkuId"])))
        text = json.dumps([{**c, "Delta": _decimal_text(c["Delta"])} for c in listed[:limit]])
        records.append({"Series": anomaly[0], "Date": anomaly[1], "TopContributors": text})
    return pl.DataFrame(records, schema={"Series": pl.UInt32, "Date": pl.Date, "TopContributors": pl.String})


def _moved(costs: dict[int, Decimal], previous_weeks: list[int]) -> Decimal:
    """The day's cost minus the median of the previous weeks' (a week without rows costs 0)."""
    before = sorted(costs.get(week, Decimal(0)) for week in previous_weeks)
    if not before:
        return costs.get(0, Decimal(0))
    middle = len(before) // 2
    median = before[middle] if len(before) % 2 else (before[middle - 1] + before[middle]) / 2
    return costs.get(0, Decimal(0)) - median


def _decimal_text(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("1e-12")).normalize(), "f")


def _table(anomalies: pl.DataFrame, series: pl.DataFrame, contributors: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if anomalies.is_empty():
        return pl.DataFrame(schema=COST_ANOMALIES)
    return (anomalies.join(series, on="Series").join(contributors, on=["Series", "Date"], how="left")
            .with_columns(pl.col("Date").dt.strftime("%Y-%m").alias("x_BillingPeriod"),
                          pl.when(pl.col("Delta") > 0).then(pl.lit(UP)).otherwise(pl.lit(DOWN)).alias("Direction"),
                          pl.col("TopContributors").fill_null("[]"),
                          *[pl.lit(None, pl.String).alias(c) for c in KEY_COLUMNS if c not in keys])
            .select(list(COST_ANOMALIES)).cast(COST_ANOMALIES)  # type: ignore[arg-type]
            .sort("Date", *keys, nulls_last=True))


def _window_days(scored: np.ndarray, first: date, window: tuple[date, date]) -> np.ndarray:
    start = max((window[0] - first).days, 0)
    end = max((window[1] - first).days + 1, 0)
    return scored[:, start:end]


def _too_short(series: pl.DataFrame, costs: np.ndarray, scored_days: np.ndarray, first: date,
               window: tuple[date, date], keys: list[str], min_history_days: int) -> dict:
    """Series with usage in the window none of whose days there could be scored, with the reason."""
    end = min((window[1] - first).days + 1, costs.shape[1])
    known = (~np.isnan(costs[:, :end])).sum(axis=1)
    start = max((window[0] - first).days, 0)
    has_usage = (~np.isnan(costs[:, start:end])).any(axis=1)
    short = np.nonzero(has_usage & ~scored_days.any(axis=1))[0]
    listed = [{**dict(zip(keys, series.row(int(i))[1:], strict=True)),
               "reason": f"{int(known[i])} days of usage history by {window[1]}: too few to score "
                         f"(a day needs {min_history_days} days before it and a weekday baseline)"}
              for i in short[:TOO_SHORT_LISTED]]
    return {"series_too_short": len(short), "too_short": listed}


def _metadata(settings: AnomalySettings, started: float, counts: dict) -> dict:
    empty = {"series": 0, "series_scored": 0, "days_scored": 0, "one_off_days_excluded": 0, "under_floor": 0,
             "anomalies": 0, "raised": 0, "suppressed": 0, "incidents": 0, "alerts": 0, "series_too_short": 0,
             "too_short": []}
    return {**empty, **counts, "threshold": settings.threshold, "cost_floor": str(settings.cost_floor),
            "method": METHOD, "seconds": round(time.perf_counter() - started, 3)}
