"""Throughput and peak memory of the AWS CUR → FOCUS paths, against a streaming-copy baseline.

    python benchmarks/bench_aws_cur.py --rows 1000000 5000000 [--workdir /tmp/focus-bench]

For each size: generate a legacy CUR delivery (Parquet, `focus-platform generate`), then run, each
in its own process (peak RSS from wait4):
  copy     pl.scan_parquet(src).sink_parquet(dst), every column: the practical limit on this machine
  convert  focus-platform convert  → one FOCUS Parquet file (with every check)
  assets   dagster.materialize(raw_exports, focus_costs) for the partition → raw + FOCUS Delta tables
Reports rows/s and the ratio to the copy of the same run. Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

COPY = """
import glob, sys, polars as pl
files = sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True))
pl.scan_parquet(files).sink_parquet(sys.argv[2])
"""

ASSETS = """
import json, os, sys
import dagster as dg
from focus_platform.assets import ASSETS
from focus_platform.assets.partitions import EXPORT_SOURCE, partition_key
from focus_platform.resources import LandingZoneResource, WarehouseResource
landing, warehouse, period = sys.argv[1], sys.argv[2], sys.argv[3]
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions(EXPORT_SOURCE, ["bench"])
result = dg.materialize(ASSETS, partition_key=partition_key(period, "bench"), instance=instance,
                        resources={"landing_zone": LandingZoneResource(root=landing),
                                   "warehouse": WarehouseResource(root=warehouse)},
                        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
assert result.success
"""


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024


def bench(rows: int, workdir: Path) -> dict:
    data = workdir / f"cur-{rows}"
    landing = workdir / f"landing-{rows}"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "focus_platform.cli", "generate", "aws-cur", "--rows", str(rows),
                        "--seed", "7", "--out", str(data)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sorted(str(p) for p in data.rglob("*.parquet"))
    period = json.loads(next(data.rglob("expected_totals.json")).read_text())["totals"][0]["billing_period"]
    if landing.exists():
        shutil.rmtree(landing)
    (landing / "bench").mkdir(parents=True)
    shutil.copytree(data / "focus-demo", landing / "bench" / "focus-demo")
    (landing / "sources.json").write_text(json.dumps({"sources": [{"name": "bench", "format": "aws-cur",
                                                                    "location": "bench"}]}))
    out = {"rows": rows}
    out["copy"] = run([sys.executable, "-c", COPY, str(data), str(workdir / "copy.parquet")])
    out["convert"] = run([sys.executable, "-m", "focus_platform.cli", "convert", *files,
                          "--out", str(workdir / "focus.parquet")])
    warehouse = workdir / f"warehouse-{rows}"
    shutil.rmtree(warehouse, ignore_errors=True)
    out["assets"] = run([sys.executable, "-c", ASSETS, str(landing), str(warehouse), period])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--workdir", default="/tmp/focus-bench")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(n, workdir) for n in args.rows]
    print(f"{'rows':>10} {'path':<8} {'seconds':>8} {'rows/s':>10} {'x copy':>7} {'peak RSS MB':>12}")
    for r in results:
        copy_rate = r["rows"] / r["copy"][0]
        for path in ("copy", "convert", "assets"):
            seconds, rss = r[path]
            rate = r["rows"] / seconds
            print(f"{r['rows']:>10} {path:<8} {seconds:>8.1f} {rate:>10,.0f} {rate / copy_rate:>7.2f} {rss:>12,.0f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
