"""Resource-level daily spend with injected cost anomalies of known start dates, and the truth (no Dagster).

``anomaly_spend(series, start, days, injected=...)`` starts from ``generate.spend.seasonal_spend`` (one
usage row per series and day with trend, weekday and day-of-month seasonality and noise, plus month-start
fee rows) and splits each series' daily usage over ``RESOURCES`` resources × ``SKUS`` SKUs (fixed shares
per series with a little daily jitter; the parts sum exactly to the series' amount, in units of 1e-6), each
part a row with its own x_RowId. Then ``injected`` distinct series get one anomaly each, the kinds taken in
turn, starting on a random day at least ``FIRST_INJECTION_DAY`` days in (the baseline's history):

- ``spike``: one resource costs ``m`` × the series' level more for 1–3 days (m 0.8–2.5);
- ``level-shift``: every resource of the series costs ``1 + s`` times as much from the start on
  (s 0.6–1.0 up, or 0.5–0.7 down), persistent;
- ``runaway``: one resource's cost grows by ``g`` × the level every day (g 0.4–0.8) for ``RUNAWAY_DAYS``
  days, then stays at that height;
- ``test-cluster``: ``CLUSTER_NODES`` new resources (``test-cluster-…``, SKU ``cluster-node``) appear and
  run flat at ``f`` × the level together (f 0.5–1.2), persistent.

The level is the series' mean daily usage over the 28 days before the start; every injected step is at
least ``MIN_INJECTED`` (five times the default cost floor: smaller moves are not raised by design).
The truth has one row per injection: the series keys, ``Kind``, ``Start``, ``Days`` (null: persistent),
``ResourceId`` (the resource injected; null for a level shift) and ``Magnitude`` (the step relative to
the level). ``quiet_year`` is the same spend without injections. Deterministic for a given argument set.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from focus_platform.forecasting.spend import SPEND_ROWS, USAGE
from focus_platform.generate.spend import AMOUNT_SCALE, seasonal_spend

KINDS = ("spike", "level-shift", "runaway", "test-cluster")
RESOURCES, SKUS = 3, 2
USAGE_PARTS = RESOURCES * SKUS
CLUSTER_NODES = 3
RUNAWAY_DAYS = 20
FIRST_INJECTION_DAY = 70
LAST_INJECTION_MARGIN = 14  # days after the latest start
LEVEL_DAYS = 28
MIN_INJECTED = 50.0
SHARE_JITTER = 0.1
TRUTH_SCHEMA = {
    "Owner": pl.String, "ServiceName": pl.String, "BillingAccountId": pl.String, "BillingCurrency": pl.String,
    "Kind": pl.String, "Start": pl.Date, "Days": pl.Int32, "ResourceId": pl.String, "Magnitude": pl.Float64,
}
SERIES_COLUMNS = ("Owner", "ServiceName", "BillingAccountId", "BillingCurrency")


def anomaly_spend(series: int, start: date, days: int, *, injected: int, seed: int = 0, currency: str = "USD",
                  owners: int = 20, fees: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """SPEND_ROWS (usage split over resources and SKUs, fee rows as seasonal_spend gives them) and the truth."""
    if injected > series:
        raise ValueError(f"{injected} injections need as many series (one each), not {series}")
    if injected and days < FIRST_INJECTION_DAY + LAST_INJECTION_MARGIN:
        raise ValueError(f"injections need at least {FIRST_INJECTION_DAY + LAST_INJECTION_MARGIN} days, not {days}")
    spend = seasonal_spend(series, start, days, seed=seed, currency=currency, owners=owners, fees=fees)
    base = spend.filter(pl.col("SpendKind") == USAGE).sort("ServiceName", "Date")
    units = (base["EffectiveCost"] * AMOUNT_SCALE).cast(pl.Int64).to_numpy().reshape(series, days)
    rng = np.random.default_rng([seed, 13])
    parts = _split(rng, units)
    injections = _inject(rng, parts, units / AMOUNT_SCALE, injected)
    keys = base.select(SERIES_COLUMNS)
    truth = pl.DataFrame([
        {**keys.row(s * days, named=True), "Kind": kind, "Start": start + timedelta(days=day), "Days": length,
         "ResourceId": None if part is None else _resource_name(s, part), "Magnitude": magnitude}
        for s, kind, day, length, part, magnitude in injections], schema=TRUTH_SCHEMA)
    rows = pl.concat([_rows(base, parts), spend.filter(pl.col("SpendKind") != USAGE)])
    return rows.sort("Owner", "ServiceName", "Date", "x_RowId"), truth


def quiet_year(series: int, start: date, *, seed: int = 0, currency: str = "USD", owners: int = 20) -> pl.DataFrame:
    """A year of the same resource-level spend with no anomaly injected (what false alerts are measured on)."""
    return anomaly_spend(series, start, 365, injected=0, seed=seed, currency=currency, owners=owners)[0]


def _split(rng: np.random.Generator, units: np.ndarray) -> np.ndarray:
    """Series × day × part amounts in units of 1e-6: RESOURCES × SKUS parts summing exactly to each day's
    amount (the last part takes the rounding), then CLUSTER_NODES empty parts (a test cluster's if injected)."""
    series, days = units.shape
    shares = rng.dirichlet(np.full(USAGE_PARTS, 2.0), size=series)[:, None, :]
    jittered = shares * (1 + SHARE_JITTER * rng.standard_normal((series, days, USAGE_PARTS))).clip(0.5)
    jittered /= jittered.sum(axis=2, keepdims=True)
    parts = np.zeros((series, days, USAGE_PARTS + CLUSTER_NODES), dtype=np.int64)
    parts[:, :, :USAGE_PARTS] = np.floor(units[:, :, None] * jittered)
    parts[:, :, USAGE_PARTS - 1] += units - parts[:, :, :USAGE_PARTS].sum(axis=2)
    return parts


def _inject(rng: np.random.Generator, parts: np.ndarray, totals: np.ndarray, injected: int) -> list[tuple]:
    """Adds the injections to ``parts`` in place; their truth: (series, kind, day, days or None, part, magnitude)."""
    series, days, _ = parts.shape
    chosen = rng.choice(series, size=injected, replace=False)
    truth = []
    for n, s in enumerate(sorted(chosen)):
        kind = KINDS[n % len(KINDS)]
        day = int(rng.integers(FIRST_INJECTION_DAY, days - LAST_INJECTION_MARGIN))
        level = float(totals[s, day - LEVEL_DAYS:day].mean())
        part = int(rng.integers(USAGE_PARTS))
        if kind == "spike":
            length = int(rng.integers(1, 4))
            step = max(rng.uniform(0.8, 2.5) * level, MIN_INJECTED)
            parts[s, day:day + length, part] += _units(step)
            truth.append((s, kind, day, length, part, step / level))
        elif kind == "level-shift":
            shift = rng.uniform(0.6, 1.0) if rng.random() < 0.6 else -rng.uniform(0.5, 0.7)
            if abs(shift) * level < MIN_INJECTED:
                shift = max(shift, MIN_INJECTED / level)
            parts[s, day:, :USAGE_PARTS] = np.rint(parts[s, day:, :USAGE_PARTS] * (1 + shift)).astype(np.int64)
            truth.append((s, kind, day, None, None, shift))
        elif kind == "runaway":
            step = max(rng.uniform(0.4, 0.8) * level, MIN_INJECTED / 2)
            parts[s, day:, part] += _units(np.minimum(np.arange(1, days - day + 1), RUNAWAY_DAYS) * step)
            truth.append((s, kind, day, None, part, step / level))
        else:
            each = max(rng.uniform(0.5, 1.2) * level, MIN_INJECTED) / CLUSTER_NODES
            parts[s, day:, USAGE_PARTS:] = _units(each * (1 + 0.01 * rng.standard_normal((days - day, CLUSTER_NODES))))
            truth.append((s, kind, day, None, USAGE_PARTS, each * CLUSTER_NODES / level))
    return truth


def _units(amount: np.ndarray | float) -> np.ndarray:
    return np.rint(np.asarray(amount) * AMOUNT_SCALE).astype(np.int64)


def _rows(base: pl.DataFrame, parts: np.ndarray) -> pl.DataFrame:
    """One usage row per series, day and non-empty part (usage parts always), from the series' row of the day."""
    cells, per_cell = parts.shape[0] * parts.shape[1], parts.shape[2]
    frame = pl.DataFrame({
        "Cell": np.repeat(np.arange(cells, dtype=np.int64), per_cell),
        "Part": np.tile(np.arange(per_cell, dtype=np.int64), cells),
        "Units": parts.reshape(-1),
    }).filter((pl.col("Part") < USAGE_PARTS) | (pl.col("Units") != 0))
    number = pl.col("ServiceName").str.strip_prefix("service-")
    cluster = pl.col("Part") >= USAGE_PARTS
    cost = pl.col("Units").cast(pl.Decimal(38, 0)).cast(SPEND_ROWS["EffectiveCost"]) / AMOUNT_SCALE
    return frame.join(base.with_row_index("Cell").with_columns(pl.col("Cell").cast(pl.Int64)), on="Cell").with_columns(
        pl.when(cluster).then(pl.format("test-cluster-{}-{}", number, pl.col("Part") - USAGE_PARTS))
        .otherwise(pl.format("resource-{}-{}", number, pl.col("Part") // SKUS)).alias("ResourceId"),
        pl.when(cluster).then(pl.lit("cluster-node")).otherwise(pl.format("sku-{}", pl.col("Part") % SKUS))
        .alias("SkuId"),
        pl.format("usage-{}-{}-{}", number, pl.col("Date").dt.strftime("%Y%m%d"), "Part").alias("x_RowId"),
        cost.alias("BilledCost"),
        cost.alias("EffectiveCost"),
    ).select(list(SPEND_ROWS)).cast(SPEND_ROWS)  # type: ignore[arg-type]


def _resource_name(series: int, part: int) -> str:
    number = f"{series:05d}"
    if part >= USAGE_PARTS:
        return f"test-cluster-{number}-{part - USAGE_PARTS}"
    return f"resource-{number}-{part // SKUS}"


def truth_figures(anomalies: pl.DataFrame, truth: pl.DataFrame) -> dict:
    """Recall, false alerts and M9 of a cost_anomalies table against the truth of ``anomaly_spend``.

    An injection is found when its series has a raised anomaly within one day of its start. An alert is counted
    per incident and series (an incident joining several services of one owner counts once for each, so that
    grouping never hides a false alert behind a true one); it is false when its first raised day lies more than
    one day from every injection's start in that series. M9 = false alerts / alerts.
    """
    raised = anomalies.filter(pl.col("Status") == "raised")
    near = pl.col("Date").sub(pl.col("Start")).dt.total_days().abs() <= 1
    found = (truth.join(raised.select(*SERIES_COLUMNS, "Date"), on=SERIES_COLUMNS, how="left")
             .group_by(*SERIES_COLUMNS, "Start", "Kind").agg(near.fill_null(False).any().alias("Found")))
    alerts = (raised.group_by("IncidentId", *SERIES_COLUMNS).agg(pl.col("Date").min())
              .join(truth.select(*SERIES_COLUMNS, "Start"), on=SERIES_COLUMNS, how="left")
              .group_by("IncidentId", *SERIES_COLUMNS).agg(near.fill_null(False).any().alias("True")))
    false_alerts = alerts.filter(~pl.col("True")).height
    by_kind = found.group_by("Kind").agg(pl.col("Found").mean()).sort("Kind")
    return {
        "injections": truth.height,
        "found": int(found["Found"].sum()),
        "recall": found["Found"].mean() if truth.height else None,
        "recall_by_kind": dict(by_kind.iter_rows()),
        "incidents": raised["IncidentId"].n_unique(),
        "alerts": alerts.height,
        "false_alerts": false_alerts,
        "m9": false_alerts / alerts.height if alerts.height else 0.0,
    }
