"""Throughput and peak memory of each provider's export → FOCUS paths, against a streaming-copy baseline.

    python benchmarks/bench_providers.py --provider aws azure gcp gcp-jsonl oci --rows 1000000 [--workdir /tmp/focus-bench-providers]

For each provider and size: generate a synthetic delivery with the provider's generator
(focus_platform.generate: aws_cur legacy CUR Parquet, azure EA+MCA CSV, gcp detailed-export Parquet (gcp) or
JSON lines (gcp-jsonl), oci cost-report CSV.gz; one billing month, seed 7; generated once and kept in the workdir), then run
each path in its own process (peak RSS from wait4, load average before and after):

  copy     the delivery's raw files as Polars reads them, streamed to one Parquet file, every column:
           pl.scan_csv(files, infer_schema=False) / pl.scan_parquet(files) / pl.scan_ndjson(files)
           .sink_parquet(dst) (files whose headers differ, e.g. OCI tag columns, are one scan each,
           concatenated diagonally). The same format-level work as the other paths (read and write
           every column) without the mapping and the checks: the practical limit on this machine.
  convert  focus-platform convert over the delivery's data files → one FOCUS Parquet file (every check)
  raw      dagster.materialize of the raw asset (raw_exports) for the partition (period, "bench") of a
           landing zone holding the delivery, with a sources.json for the provider → the raw Delta table:
           the Dagster counterpart of the copy (every column read and written, plus lineage and gates)
  focus    dagster.materialize of the FOCUS asset (focus_costs) for the same partition, in its own process,
           reading that raw table → focus_costs and focus_quarantine Delta (every gate): the Dagster
           counterpart of convert.
           Each asset row's "in run" is the materialization alone, timed inside the process: without the
           ~2 s every Dagster process pays (import ~0.8 s, ephemeral instance ~0.5 s, interpreter exit ~0.45 s).
           The whole Dagster path is the two together; its ratio to convert is 1 + copy/convert at best
           (the raw asset is a copy), so each asset is compared with its own counterpart.

Azure: one billing account family (azure-ea) and period, its actual and amortized files together
(convert needs both; the landing source has "streams": ["actual", "amortized"]); the generator splits
--rows between the EA and MCA families, so the Azure rows read are about half of --rows.
"rows" in the table are the raw rows read (the rows of the copy). rows/s = rows / seconds; × copy is
the ratio to the copy's rate of the same provider and size. A failing path is reported (file, message)
and the others still run. Figures, not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# provider → generator, its keyword arguments, FOCUS-platform source format
PROVIDERS = {
    "aws": ("focus_platform.generate.aws_cur", "generate_aws_cur", {}, "aws-cur"),
    "azure": ("focus_platform.generate.azure", "generate_azure", {}, "azure-cost-details"),
    "gcp": ("focus_platform.generate.gcp", "generate_gcp", {}, "gcp-billing"),
    "gcp-jsonl": ("focus_platform.generate.gcp", "generate_gcp", {"file_format": "jsonl"}, "gcp-billing"),
    "oci": ("focus_platform.generate.oci", "generate_oci", {}, "oci-cost"),
}
AZURE_FAMILY = "azure-ea"
AZURE_STREAMS = ["actual", "amortized"]

GENERATE = """
import importlib, json, sys
from pathlib import Path
module, function, kwargs, provider, rows, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5]), Path(sys.argv[6])
summary = getattr(importlib.import_module(module), function)(out, rows=rows, seed=7, **kwargs)
periods = sorted(summary.rows_per_period)
period = periods[0]
if provider == "azure":
    files, tree = summary.files_of(sys.argv[7], period), out / sys.argv[7]
else:
    assert len(periods) == 1, periods
    files, tree = summary.data_files, summary.report_dir
json.dump({"period": period, "files": [str(f) for f in files], "tree": str(tree),
           "generated_rows": summary.rows, "generate_seconds": summary.seconds}, open(out / "bench.json", "w"))
"""

COPY = """
import json, sys, polars as pl
files, dst = json.loads(sys.argv[1]), sys.argv[2]
def scan(f):
    f0 = (f[0] if isinstance(f, list) else f).lower()
    if f0.endswith(".parquet"):
        return pl.scan_parquet(f)
    if f0.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return pl.scan_ndjson(f, infer_schema_length=None)
    return pl.scan_csv(f, infer_schema=False)
headers = {tuple(scan(f).collect_schema().names()) for f in files}
lf = scan(files) if len(headers) == 1 else pl.concat([scan(f) for f in files], how="diagonal_relaxed")
lf.sink_parquet(dst)
"""

INGEST_ASSETS = """
import sys, time
import dagster as dg
from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.periods import PartitionKey
from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
landing, warehouse, period, asset = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions(EXPORT_SOURCE, ["bench"])
start = time.perf_counter()
selection = [a for a in INGEST_ASSETS if a.op.name == asset]
result = dg.materialize(INGEST_ASSETS, selection=selection, partition_key=dagster_key(PartitionKey.of(period, "bench")), instance=instance, raise_on_error=False,
                        resources={"landing_zone": LandingZoneResource(root=landing),
                                   "warehouse": WarehouseResource(root=warehouse)},
                        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
print(f"IN_RUN_SECONDS {time.perf_counter() - start:.2f}")
if not result.success:
    for event in result.all_events:
        if event.is_failure and getattr(event.event_specific_data, "error", None) is not None:
            print(f"step {event.step_key}: " + event.event_specific_data.error.to_string(), file=sys.stderr)
        elif event.is_failure:
            print(f"step {event.step_key}: {event.message}", file=sys.stderr)
    sys.exit(1)
"""

ASSETS = {"raw": "raw_exports", "focus": "focus_costs"}  # path -> the asset it materializes
PATHS = ("copy", "convert", *ASSETS)


def _error(stderr: str) -> str:
    """The innermost 'File "…", line N' of a traceback and the last error line (a short report)."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    where = [m.group(0) for line in lines if (m := re.search(r'File "[^"]+", line \d+, in \S+', line))]
    errors = [line.strip() for line in lines if re.match(r"^\s*([\w.]+(Error|Exception)|error:|step )", line)]
    message = errors[-1] if errors else (lines[-1] if lines else "no output")
    return (where[-1] + ": " if where else "") + message[:600]


def run(cmd: list[str], log: Path) -> dict:
    """Wall seconds, CPU seconds (user + system), peak RSS (MB) and load averages of one child process;
    its output goes to ``log``."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    result = {"seconds": round(elapsed, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
              "rss_mb": round(usage.ru_maxrss / 1024),
              "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "exit": os.waitstatus_to_exitcode(status)}
    if result["exit"] != 0:
        stdout = log.with_suffix(".out").read_text(errors="replace")
        problems = [line for line in stdout.splitlines() if line.startswith("PROBLEM")]
        result["error"] = "; ".join(problems[:5]) if problems else _error(log.with_suffix(".err").read_text(errors="replace"))
    return result


def _link_tree(src: Path, dst: Path) -> None:
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link)


def generate(provider: str, rows: int, workdir: Path) -> dict:
    data = workdir / f"{provider}-{rows}"
    meta = data / "bench.json"
    if not meta.exists():
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        module, function, kwargs, _ = PROVIDERS[provider]
        subprocess.run([sys.executable, "-c", GENERATE, module, function, json.dumps(kwargs), provider, str(rows),
                        str(data), AZURE_FAMILY], check=True, stdout=subprocess.DEVNULL)
    return json.loads(meta.read_text())


def bench(provider: str, rows: int, workdir: Path) -> dict:
    import polars as pl

    spec = generate(provider, rows, workdir)
    fmt = PROVIDERS[provider][3]
    tag = f"{provider}-{rows}"
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    landing = workdir / f"landing-{tag}"
    shutil.rmtree(landing, ignore_errors=True)
    tree = Path(spec["tree"])
    _link_tree(tree, landing / "bench" / tree.name)
    source = {"name": "bench", "format": fmt, "location": f"bench/{tree.name}"}
    if provider == "azure":
        source["streams"] = AZURE_STREAMS
    (landing / "sources.json").write_text(json.dumps({"sources": [source]}))

    copy_out = workdir / f"copy-{tag}.parquet"
    out = {"provider": provider, "format": fmt, "generated_rows": spec["generated_rows"], "period": spec["period"],
           "files": len(spec["files"]), "generate_seconds": round(spec["generate_seconds"], 1)}
    out["copy"] = run([sys.executable, "-c", COPY, json.dumps(spec["files"]), str(copy_out)], logs / f"{tag}-copy")
    out["rows"] = (pl.scan_parquet(copy_out).select(pl.len()).collect().item()
                   if out["copy"]["exit"] == 0 else None)
    out["convert"] = run([sys.executable, "-m", "focus_platform.cli", "convert", *spec["files"],
                          "--out", str(workdir / f"focus-{tag}.parquet")], logs / f"{tag}-convert")
    if out["rows"] is None:  # the copy failed: the rows convert read
        m = re.search(r"rows in: (\d+)", (logs / f"{tag}-convert.out").read_text())
        out["rows"] = int(m.group(1)) if m else None
    warehouse = workdir / f"warehouse-{tag}"
    shutil.rmtree(warehouse, ignore_errors=True)
    for path, asset in ASSETS.items():
        out[path] = run([sys.executable, "-c", INGEST_ASSETS, str(landing), str(warehouse), spec["period"], asset],
                        logs / f"{tag}-{path}")
        m = re.search(r"IN_RUN_SECONDS ([\d.]+)", (logs / f"{tag}-{path}.out").read_text())
        out[path]["in_run_seconds"] = float(m.group(1)) if m else None
    return out


def print_table(results: list[dict]) -> None:
    print(f"{'provider':<9} {'rows':>9} {'path':<8} {'seconds':>8} {'CPU s':>7} {'rows/s':>10} {'x copy':>7} "
          f"{'peak RSS MB':>12}  {'load1 before→after':<19} status")
    for r in results:
        copy = r["copy"]
        copy_rate = r["rows"] / copy["seconds"] if r["rows"] and copy["exit"] == 0 else None
        for path in PATHS:
            p = r[path]
            rate = r["rows"] / p["seconds"] if r["rows"] else None
            ratio = f"{rate / copy_rate:>7.2f}" if rate and copy_rate else f"{'-':>7}"
            status = "ok" if p["exit"] == 0 else f"FAILED (exit {p['exit']}): {p['error']}"
            print(f"{r['provider']:<9} {r['rows'] or '-':>9} {path:<8} {p['seconds']:>8.1f} {p['cpu_seconds']:>7.1f} "
                  f"{f'{rate:,.0f}' if rate else '-':>10} {ratio} {p['rss_mb']:>12,}"
                  f"  {p['load_before'][0]:>5.2f} → {p['load_after'][0]:<9.2f} {status}")
            if p.get("in_run_seconds") and r["rows"] and copy_rate:
                in_run = r["rows"] / p["in_run_seconds"]
                print(f"{'':<9} {'':>9} {'  in run':<8} {p['in_run_seconds']:>8.1f} {'':>7} {f'{in_run:,.0f}':>10} "
                      f"{in_run / copy_rate:>7.2f}   (the materialization alone: without the process's Dagster "
                      f"import, instance and exit, {p['seconds'] - p['in_run_seconds']:.1f} s)")
        print(f"{'':<9} {'':>9} {'':<8} " + "; ".join(_counterparts(r)))


def _counterparts(r: dict) -> list[str]:
    """Each asset's time in run against its counterpart's whole process: raw ↔ copy, focus ↔ convert."""
    out = []
    for asset, counterpart in (("raw", "copy"), ("focus", "convert")):
        a, c = r[asset], r[counterpart]
        if a["exit"] == 0 and c["exit"] == 0 and a.get("in_run_seconds"):
            out.append(f"{asset} asset in run / {counterpart}: {a['in_run_seconds'] / c['seconds']:.2f}x time, "
                       f"{a['rss_mb'] / c['rss_mb']:.2f}x peak RSS")
    return out


def main(argv: list[str] | None = None, default_providers: tuple[str, ...] = tuple(PROVIDERS),
         default_workdir: str = "/tmp/focus-bench-providers") -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", nargs="+", choices=sorted(PROVIDERS), default=list(default_providers))
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--workdir", default=default_workdir)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(p, n, workdir) for p in args.provider for n in args.rows]
    print_table(results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
