"""AWS CUR on real-shaped data: the October 2018 workshop CUR tiled to 1 M and 4 M rows, convert against a copy.

    python benchmarks/bench_real_aws.py --rows 1000000 4000000 [--workdir /tmp/focus-bench-real-aws]
        [--without rifee tags]

The real legacy CUR Parquet (119,307 rows: Usage, DiscountedUsage and 9 RIFee rows, 124 columns of which
9 are resource_tags_*) is repeated until it holds --rows rows, the last tile cut short. Each tile gets its
own identity/LineItemId, resource ids and account ids (payer and usage account: the tile number replaces
its first three digits), so no tile is a copy of another line item. The tiled file is a temporary file in
the workdir (never committed). ``--without rifee`` leaves out the RIFee rows, ``--without tags`` the
resource_tags_* columns (where the time goes). Then, each in its own process (peak RSS from wait4):

  copy     pl.scan_parquet(tiled).sink_parquet(dst): a streaming Polars copy, every column
  convert  focus-platform convert tiled --out focus.parquet (every check)

rows/s = rows / seconds; × copy is convert's rate over the copy's. Compare ratios within one run (the
machine may be shared: the load average before and after each run is printed). Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_providers import COPY, run

SAMPLE = (Path(__file__).resolve().parent.parent / "focus_platform" / "sample_data" / "landing" / "aws-workshop"
          / "WorkshopCUR" / "20181001-20181101" / "wa_labs_Oct2018-WorkshopCUR-00001.snappy.parquet")


# Run in a process of its own: a child's peak RSS (wait4) counts the parent's memory at fork time (Linux
# keeps the pre-exec high-water mark), so the parent never holds data.
TILE = """
import sys, polars as pl
sample, rows, without, path = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
source = pl.scan_parquet(sample)
if "rifee" in without:
    source = source.filter(pl.col("line_item_line_item_type") != "RIFee")
if "tags" in without:
    source = source.select(pl.exclude("^resource_tags_.*$"))
def tile(number):
    suffix = f"-t{number}"
    return source.with_columns(
        pl.col("identity_line_item_id") + pl.lit(suffix),
        pl.when(pl.col("line_item_resource_id") != "").then(pl.col("line_item_resource_id") + pl.lit(suffix))
        .otherwise(pl.col("line_item_resource_id")),
        *[pl.when(pl.col(c).str.len_chars() == 12).then(pl.lit(f"{number:03d}") + pl.col(c).str.slice(3))
          .otherwise(pl.col(c)).alias(c) for c in ("bill_payer_account_id", "line_item_usage_account_id")],
    )
per_tile = source.select(pl.len()).collect().item()
pl.concat([tile(n) for n in range(1, -(-rows // per_tile) + 1)]).head(rows).sink_parquet(path)
print(pl.scan_parquet(path).select(pl.len()).collect().item())
"""


def tiled_file(sample: Path, rows: int, without: set[str], workdir: Path) -> tuple[Path, int]:
    """The sample tiled to ``rows`` rows (``without`` some of its rows or columns) and its row count."""
    path = workdir / ("-".join(["tiled", str(rows), *sorted(without)]) + ".parquet")
    count = path.with_suffix(".rows")
    if not count.exists():
        tiled = subprocess.run([sys.executable, "-c", TILE, str(sample), str(rows), ",".join(sorted(without)),
                                str(path)], check=True, capture_output=True, text=True)
        count.write_text(tiled.stdout.strip())
    return path, int(count.read_text())


def bench(sample: Path, rows: int, without: set[str], workdir: Path) -> dict:
    path, tiled_rows = tiled_file(sample, rows, without, workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    tag = path.stem
    out = {"rows": tiled_rows, "file": str(path), "without": sorted(without)}
    out["copy"] = run([sys.executable, "-c", COPY, json.dumps([str(path)]), str(workdir / f"copy-{tag}.parquet")],
                      logs / f"{tag}-copy")
    out["convert"] = run([sys.executable, "-m", "focus_platform.cli", "convert", str(path),
                          "--out", str(workdir / f"focus-{tag}.parquet")], logs / f"{tag}-convert")
    return out


def print_table(results: list[dict]) -> None:
    """Copy and convert per size (and ``without``, when a result has it): seconds, CPU seconds, rows/s, × copy,
    peak RSS, load."""
    print(f"{'rows':>9} {'without':<10} {'path':<8} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} {'x copy':>7} {'peak RSS MB':>12}"
          f"  {'load1 before→after':<19} status")
    for r in results:
        copy_rate = r["rows"] / r["copy"]["seconds"]
        for name in ("copy", "convert"):
            p = r[name]
            rate = r["rows"] / p["seconds"]
            status = "ok" if p["exit"] == 0 else f"FAILED (exit {p['exit']}): {p['error']}"
            print(f"{r['rows']:>9} {','.join(r.get('without', ())) or '-':<10} {name:<8} {p['seconds']:>8.1f} "
                  f"{p['cpu_seconds']:>7.1f} {rate:>10,.0f} "
                  f"{rate / copy_rate:>7.2f} {p['rss_mb']:>12,}  {p['load_before'][0]:>5.2f} → "
                  f"{p['load_after'][0]:<9.2f} {status}")


def sizes_main(description: str, bench, default_workdir: str, default_rows: list[int]) -> None:
    """The command line of a real-sample benchmark: ``bench(rows, workdir)`` per --rows, the table, the JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, nargs="+", default=default_rows)
    parser.add_argument("--workdir", default=default_workdir)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(n, workdir) for n in args.rows]
    print_table(results)
    print(json.dumps(results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--workdir", default="/tmp/focus-bench-real-aws")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--without", nargs="*", choices=("rifee", "tags"), default=[])
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(args.sample, n, set(args.without), workdir) for n in args.rows]
    print_table(results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
