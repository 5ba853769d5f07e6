"""Cost anomaly detection on generated spend: recall, M9, quiet-year alerts, throughput and peak memory.

    python benchmarks/bench_anomalies.py [--series 500] [--days 365] [--injected 200] [--seed 5]
                                         [--workdir /tmp/focus-bench-anomalies]

Generates (focus_platform.generate.anomalies) a year of resource-level spend for ``--series`` series with
``--injected`` anomalies (spikes, level shifts, runaways, test clusters in turn) and their truth, and a quiet
year of as many series; writes each to Parquet in the workdir; then runs ``anomalies.detect`` (default
settings) on each in its own process (a Parquet scan; seconds, and peak RSS of that process alone: its
VmHWM) and compares the anomalies with the truth (``truth_figures``): recall within one day of an injection's
start, false alerts / alerts (M9), alerts per series in the quiet year. rows/s = spend rows read / seconds of
``detect``. Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

START = date(2025, 1, 1)

DETECT = """
import json, sys, time
import polars as pl
from focus_platform.anomalies import detect
rows, out = sys.argv[1], sys.argv[2]
started = time.perf_counter()
result = detect(pl.scan_parquet(rows))
seconds = time.perf_counter() - started
result.anomalies.write_parquet(out)
status = open("/proc/self/status").read()
peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024,
                  **{k: v for k, v in result.metadata.items() if k != "too_short"}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--injected", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/focus-bench-anomalies"))
    args = parser.parse_args()
    from focus_platform.generate.anomalies import anomaly_spend, truth_figures

    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, truth = anomaly_spend(args.series, START, args.days, injected=args.injected, seed=args.seed)
    quiet, _ = anomaly_spend(args.series, START, args.days, injected=0, seed=args.seed + 1)
    print(f"generated {rows.height:,} + {quiet.height:,} spend rows in {time.perf_counter() - started:.1f} s")
    rows.write_parquet(args.workdir / "injected.parquet")
    quiet.write_parquet(args.workdir / "quiet.parquet")

    injected_run = _detect(args.workdir / "injected.parquet", args.workdir / "injected-anomalies.parquet")
    quiet_run = _detect(args.workdir / "quiet.parquet", args.workdir / "quiet-anomalies.parquet")
    figures = truth_figures(pl.read_parquet(args.workdir / "injected-anomalies.parquet"), truth)

    print(f"\n{args.series} series × {args.days} days, {args.injected} injections (seed {args.seed})")
    print(f"  recall within a day of the start: {figures['recall']:.3f} ({figures['found']}/{figures['injections']}); "
          f"by kind: {', '.join(f'{k} {v:.2f}' for k, v in figures['recall_by_kind'].items())}")
    print(f"  alerts (incident × series) {figures['alerts']} in {figures['incidents']} incidents, "
          f"false alerts {figures['false_alerts']}, M9 = {figures['m9']:.3f}")
    print(f"  quiet year: {quiet_run['alerts']} alerts = {quiet_run['alerts'] / args.series:.3f} per series")
    for name, run, height in (("injected", injected_run, rows.height), ("quiet", quiet_run, quiet.height)):
        print(f"  detect {name:8s} {height:>10,} rows  {run['seconds']:6.2f} s  {height / run['seconds']:>10,.0f} rows/s  "
              f"peak RSS {run['peak_rss_mb']:,.0f} MB  ({run['series_scored']} series, {run['days_scored']:,} days "
              f"scored, {run['anomalies']} anomalies, {run['incidents']} incidents, {run['under_floor']} under the floor)")


def _detect(rows: Path, out: Path) -> dict:
    """``detect`` over ``rows`` in a process of its own: its figures and its peak RSS (VmHWM: the process's own
    high-water mark, not the one a forked child inherits from this larger process)."""
    done = subprocess.run([sys.executable, "-c", DETECT, str(rows), str(out)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"detect over {rows} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    main()
