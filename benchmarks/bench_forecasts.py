"""Spend forecasts over many generated series: wall time, peak memory and the backtest summary.

    python benchmarks/bench_forecasts.py [--series 2000] [--months 18] [--seed 17]

Generates ``--series`` daily usage series of ``--months`` months ending on ``AS_OF``
(focus_platform.generate.spend.seasonal_spend: trend, weekly and day-of-month seasons, noise,
month-start recurring fees), then runs ``forecast_spend`` with the default settings (3 months ahead,
3 backtest folds of 28 days, 80 % intervals) on them, timed on its own (generation and imports
outside); ``cpu_seconds`` is the CPU time it took in this process and its workers (on a shared
machine, cpu_seconds / cores is what the wall time would be with the cores to itself). Peak RSS: ``getrusage`` of this process and of its children (the library's worker
processes), in MB. The summary: median and mean MAPE of the model and of seasonal-naive over the
backtests, the share of series where the model wins, and the calibrated interval coverage (mean and
median of the series' out-of-sample coverage) against the nominal level. Targets: under 5 minutes on
2 cores, the model beats seasonal-naive, coverage within 5 points of 80 %. Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import date, timedelta

import polars as pl

from focus_platform.forecasting.forecast import MODEL, ForecastSettings, forecast_spend
from focus_platform.generate.spend import seasonal_spend

AS_OF = date(2026, 11, 30)
DAYS_PER_MONTH = 30.44


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children (the library's workers)."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (resource.getrusage(resource.RUSAGE_SELF),
                                                             resource.getrusage(resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    days = round(args.months * DAYS_PER_MONTH)
    rows = seasonal_spend(args.series, AS_OF - timedelta(days=days - 1), days, seed=args.seed)
    settings = ForecastSettings()
    cpu_before, started = cpu_seconds(), time.perf_counter()
    result = forecast_spend(rows, AS_OF, settings)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    tested = result.backtests.filter(pl.col("Folds") > 0)
    print(json.dumps({
        "series": args.series, "days": days, "rows": rows.height, "forecast_rows": result.forecasts.height,
        "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(own), "peak_rss_children_mb": round(children),
        "model": result.metadata["model"], "backtested": tested.height, "skipped": result.skipped.height,
        "model_mape_median": round(tested["ModelMAPE"].median(), 4),
        "model_mape_mean": round(tested["ModelMAPE"].mean(), 4),
        "baseline_mape_median": round(tested["BaselineMAPE"].median(), 4),
        "baseline_mape_mean": round(tested["BaselineMAPE"].mean(), 4),
        "model_wins_share": round(tested.filter(pl.col("Chosen") == MODEL).height / max(tested.height, 1), 4),
        "coverage_mean": round(tested["IntervalCoverage"].mean(), 4),
        "coverage_median": round(tested["IntervalCoverage"].median(), 4),
        "coverage_nominal": settings.level / 100,
    }, indent=1))


if __name__ == "__main__":
    main()
