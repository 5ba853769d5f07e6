"""Allocation throughput and peak memory against a streaming copy, and the cost-by-owner query.

    python benchmarks/bench_allocation.py --rows 1000000 5000000 [--query-rows 3000000] [--workdir /tmp/focus-bench-allocation]

For each size: generate one month of native FOCUS deliveries with known owners (focus_platform.generate.allocation,
seed 7: two export sources, USD and EUR, pools, Kubernetes nodes and telemetry; generated once and kept in the
workdir) and convert them to one FOCUS Parquet file per source (convert_files, the account catalog applied),
which is the FOCUS partition; the same rows are also re-written as files of at most ``PART_ROWS`` rows,
as other Delta writers (Spark, delta-rs) split a large partition. The rules:
the generator's (9 virtual tags, 3 pools: proportional, fixed,
driver with even fallback; Kubernetes) plus virtual tags of every kind (regex on ResourceName, equals / in /
prefix on accounts, services, regions and resource ids, tag keys that exist, catalog OU paths) up to
``VIRTUAL_TAGS`` in all. Then, for each layout, each in its own process (peak RSS from wait4):

  copy      pl.scan_parquet(partition).sink_parquet(dst): the streaming copy of the same FOCUS partition,
            every column (the practical limit of a scan → sink on this machine)
  allocate  landing inputs read (rules, catalog, driver, telemetry → node weights), then
            engine.allocate(pl.scan_parquet(partition), …) and the frames of its ``to_write()`` sunk one
            after another, as the write path does; "in run" is the read + allocate + sink alone, timed
            inside the process (without imports and exit)

rows/s = FOCUS rows / seconds; × copy = the ratio to the copy's rate in the same layout (target ≥ 0.5);
RSS largest / smallest size per layout (target ≤ 1.3).
The query: a cost_allocations Delta table of ``--query-rows`` rows (the smallest size's allocation rows, repeated
for consecutive months, written partitioned by x_BillingPeriod), then cost by owner across all months
(pl.scan_delta → group by the owner dimensions and currency → sums), median of ``QUERY_RUNS`` runs in one
process (target < 0.3 s). Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

VIRTUAL_TAGS = 200
QUERY_RUNS = 7
SEED = 7
PERIOD = "2024-01"

GENERATE = """
import glob, json, sys
from pathlib import Path
from focus_platform.allocation.accounts import read_catalog
from focus_platform.generate.allocation import generate_allocation
from focus_platform.pipeline import convert_files
rows, landing, partition = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
summary = generate_allocation(landing, rows=rows, months=1, seed=int(sys.argv[4]), start_period=sys.argv[5])
catalog = read_catalog([(str(p), p.read_bytes()) for p in sorted((landing / "accounts").glob("*.csv"))])
partition.mkdir(parents=True, exist_ok=True)
for source, location in summary.sources.items():
    files = sorted(str(p) for p in (landing / location).rglob("*.parquet"))
    result = convert_files(files, str(partition / f"{source}.parquet"), fmt="focus", source=source, accounts=catalog)
    assert not result.checks.problems, result.checks.problems
json.dump({"rows": summary.rows, "generate_seconds": summary.seconds}, open(partition / "bench.json", "w"))
"""

COPY = """
import sys, polars as pl
pl.scan_parquet(sys.argv[1] + "/*.parquet").sink_parquet(sys.argv[2])
"""

ALLOCATE = """
import json, sys, time
from pathlib import Path
import polars as pl
from focus_platform.allocation.engine import allocate
from focus_platform.allocation.inputs import read_inputs
from focus_platform.allocation.rules import load_rules
from focus_platform.landing.zone import LocalStore
landing, partition, rules_path, dst, period = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5]
start = time.perf_counter()
rules = load_rules(rules_path.read_bytes(), str(rules_path))
inputs = read_inputs(LocalStore(landing)).for_period(rules, period)
read = time.perf_counter()
allocation = allocate(pl.scan_parquet(partition + "/*.parquet"), inputs, period)
planned = time.perf_counter()
for i, part in enumerate(allocation.to_write()):
    part.sink_parquet(f"{dst}/part-{i}.parquet", mkdir=True)
done = time.perf_counter()
r = allocation.report
print("IN_RUN " + json.dumps({"seconds": done - start, "inputs": read - start, "allocate": planned - read,
                              "sink": done - planned, "rows_in": r.rows_in, "rows_out": r.rows_out,
                              "unmatched_rules": len(r.unmatched_rules)}))
"""

PART_ROWS = 1_000_000
PARTS = """
import sys, polars as pl
parts = pl.PartitionBy(sys.argv[2], max_rows_per_file=int(sys.argv[3]))
pl.scan_parquet(sys.argv[1] + "/*.parquet").sink_parquet(parts, mkdir=True)
"""

QUERY = """
import json, statistics, sys, time
import polars as pl
uri, dims, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
def cost_by_owner():
    return (pl.scan_delta(uri).group_by(*dims, "BillingCurrency")
            .agg(pl.col("x_AllocatedBilledCost").sum(), pl.col("x_AllocatedEffectiveCost").sum()).collect())
times = []
for _ in range(runs):
    start = time.perf_counter()
    owners = cost_by_owner()
    times.append(time.perf_counter() - start)
print("QUERY " + json.dumps({"median": statistics.median(times), "first": times[0], "times": times,
                             "owners": owners.height}))
"""


def run(cmd: list[str], log: Path) -> dict:
    """Wall seconds and peak RSS (MB) of one child process, its output in ``log``.out/.err."""
    start = time.perf_counter()
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    result = {"seconds": round(time.perf_counter() - start, 2), "rss_mb": round(usage.ru_maxrss / 1024),
              "exit": os.waitstatus_to_exitcode(status)}
    if result["exit"] != 0:
        result["error"] = log.with_suffix(".err").read_text(errors="replace").strip().splitlines()[-1:]
    for line in log.with_suffix(".out").read_text().splitlines():
        tag, _, payload = line.partition(" ")
        if tag in ("IN_RUN", "QUERY"):
            result[tag.lower()] = json.loads(payload)
    return result


def generate(rows: int, workdir: Path) -> tuple[Path, dict[str, Path], dict]:
    """The landing zone, the FOCUS partition per layout (one file per source; Delta parts), the generator's
    figures."""
    landing, partition, parts = workdir / f"landing-{rows}", workdir / f"focus-{rows}", workdir / f"parts-{rows}"
    if not (partition / "bench.json").exists():
        subprocess.run([sys.executable, "-c", GENERATE, str(rows), str(landing), str(partition), str(SEED), PERIOD],
                       check=True)
    if not parts.exists():
        subprocess.run([sys.executable, "-c", PARTS, str(partition), str(parts), str(PART_ROWS)], check=True)
    layouts = {"per source": partition, "parts": parts}
    return landing, layouts, json.loads((partition / "bench.json").read_text())


def virtual_tag(i: int) -> dict:
    """The ``i``-th extra virtual tag: one of the kinds users write, each matching a slice of the rows."""
    teams = ("platform", "web", "ml", "data-eng")
    kinds = (
        {"ResourceName": {"regex": f"^res-(aws|azure)-{i % 50:02d}"}},
        {"ResourceId": {"prefix": "arn:aws:s3"}, "ResourceName": {"regex": f"{i % 10}$"}},
        {"ServiceName": {"in": ["Amazon Simple Storage Service", "Storage Accounts"]},
         "SubAccountName": {"equals": ("sandbox", "web-dev", "ml-prod")[i % 3]}},
        {"tag:created-by": {"equals": "terraform"}, "RegionId": {"equals": ("us-east-1", "westeurope")[i % 2]}},
        {"x_AccountPath": {"prefix": "Root/Sandbox"}, "ResourceName": {"regex": f"-0{i % 10}"}},
        {"ServiceCategory": {"in": ["Databases", "Networking"]}, "ChargeDescription": {"regex": f"(?i)usage{'' if i % 2 else '$'}"}},
        {"SkuId": {"in": ["SKU-BUCKET", "SKU-DBINSTANCE"]}, "PricingCategory": {"equals": "Standard"}},
        {f"tag:project-{i}": {"exists": True}},
    )
    return {"id": f"bench-{i:03d}", "match": kinds[i % len(kinds)], "set": {"team": teams[i % len(teams)]}}


def rules_file(landing: Path, workdir: Path) -> tuple[Path, int, int, list[str]]:
    """The generator's rules with virtual tags added up to VIRTUAL_TAGS (theirs first: the truth stays)."""
    doc = yaml.safe_load((landing / "allocation" / "rules" / "acme.yaml").read_text())
    own = len(doc["virtual_tags"])
    doc["virtual_tags"] += [virtual_tag(i) for i in range(VIRTUAL_TAGS - own)]
    path = workdir / "rules-bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, len(doc["virtual_tags"]), len(doc["pools"]), [d["name"] for d in doc["dimensions"]]


def bench(rows: int, workdir: Path) -> dict:
    landing, layouts, meta = generate(rows, workdir)
    rules, n_tags, n_pools, _ = rules_file(landing, workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    focus_rows = pl.scan_parquet(layouts["per source"] / "*.parquet").select(pl.len()).collect().item()
    out = {"rows": focus_rows, "virtual_tags": n_tags, "pools": n_pools,
           "generate_seconds": round(meta["generate_seconds"], 1), "layouts": {}}
    for layout, partition in layouts.items():
        name = f"{rows}-{partition.name.split('-')[0]}"
        out["layouts"][layout] = {
            "copy": run([sys.executable, "-c", COPY, str(partition), str(workdir / f"copy-{name}.parquet")],
                        logs / f"copy-{name}"),
            "allocate": run([sys.executable, "-c", ALLOCATE, str(landing), str(partition), str(rules),
                             str(allocations_dir(workdir, name)), PERIOD], logs / f"allocate-{name}")}
    return out


def allocations_dir(workdir: Path, name: str) -> Path:
    return workdir / f"allocations-{name}"


def query(source_rows: int, query_rows: int, workdir: Path) -> dict:
    """cost_allocations of ``query_rows`` rows over consecutive months (the allocation rows of the smallest size,
    repeated), then the cost-by-owner query."""
    _, _, _, dims = rules_file(workdir / f"landing-{source_rows}", workdir)
    uri = workdir / f"cost_allocations-{query_rows}"
    if not uri.exists():
        month = pl.read_parquet(allocations_dir(workdir, f"{source_rows}-focus") / "*.parquet")
        copies = -(-query_rows // month.height)
        periods = [f"{2024 + (i // 12)}-{i % 12 + 1:02d}" for i in range(copies)]
        table = pl.concat([month.with_columns(x_BillingPeriod=pl.lit(p)) for p in periods]).head(query_rows)
        table.write_delta(str(uri), delta_write_options={"partition_by": ["x_BillingPeriod"]})
    result = run([sys.executable, "-c", QUERY, str(uri), json.dumps(dims), str(QUERY_RUNS)],
                 workdir / "logs" / f"query-{query_rows}")
    result["rows"] = query_rows
    return result


def print_table(results: list[dict], answer: dict | None) -> None:
    print(f"{'rows':>9} {'layout':<10} {'path':<9} {'seconds':>8} {'rows/s':>11} {'x copy':>7} {'peak RSS MB':>12}  "
          "status")
    for r, (layout, paths) in ((r, item) for r in results for item in r["layouts"].items()):
        copy_rate = r["rows"] / paths["copy"]["seconds"]
        for path in ("copy", "allocate"):
            p = paths[path]
            rate = r["rows"] / p["seconds"]
            status = "ok" if p["exit"] == 0 else f"FAILED: {p.get('error')}"
            print(f"{r['rows']:>9} {layout:<10} {path:<9} {p['seconds']:>8.1f} {rate:>11,.0f} {rate / copy_rate:>7.2f} "
                  f"{p['rss_mb']:>12,}  {status}")
            if p.get("in_run"):
                i = p["in_run"]
                in_rate = r["rows"] / i["seconds"]
                print(f"{'':>9} {'':<10} {'  in run':<9} {i['seconds']:>8.1f} {in_rate:>11,.0f} "
                      f"{in_rate / copy_rate:>7.2f}"
                      f"{'':>14}inputs {i['inputs']:.1f} s, plan {i['allocate']:.1f} s, sink {i['sink']:.1f} s; "
                      f"{i['rows_out']:,} allocation rows; {r['virtual_tags']} virtual tags "
                      f"({i['unmatched_rules']} rules unmatched), {r['pools']} pools")
    for layout in results[0]["layouts"]:
        ok = [r for r in results if r["layouts"][layout]["allocate"]["exit"] == 0]
        if len(ok) > 1:
            small, large = (ok[k]["layouts"][layout]["allocate"]["rss_mb"] for k in (0, -1))
            print(f"allocate peak RSS {layout}, {ok[-1]['rows']:,} / {ok[0]['rows']:,}: {large / small:.2f} "
                  "(target ≤ 1.3)")
    if answer and answer.get("query"):
        q = answer["query"]
        print(f"cost by owner across all months, {answer['rows']:,} rows: median {q['median']:.3f} s of "
              f"{len(q['times'])} runs (first {q['first']:.3f} s), {q['owners']} owner rows (target < 0.3 s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--query-rows", type=int, default=3_000_000)
    parser.add_argument("--workdir", default="/tmp/focus-bench-allocation")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(n, workdir) for n in sorted(args.rows)]
    allocated = results[0]["layouts"]["per source"]["allocate"]["exit"] == 0
    answer = query(min(args.rows), args.query_rows, workdir) if allocated else None
    print_table(results, answer)
    print(json.dumps({"sizes": results, "query": answer}))


if __name__ == "__main__":
    main()
