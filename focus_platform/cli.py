"""focus-platform: demo, convert, validate, generate, rollback, status.

Dagster is imported only by ``demo``; the other commands stay quick to start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DATA_DIR = Path(".data")
DAGSTER_YAML = """\
# Local Dagster instance of focus-platform (created by `focus-platform demo`).
# At most two runs at a time, so a backfill cannot exhaust a small machine's memory.
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
concurrency:
  default_op_concurrency_limit: 2
telemetry:
  enabled: false
"""


QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or (DATA_DIR / "dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


# ---------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    if getattr(args, "landing_root", None):
        os.environ["FOCUS_LANDING_ROOT"] = args.landing_root
    if getattr(args, "warehouse_root", None):
        os.environ["FOCUS_WAREHOUSE_ROOT"] = args.warehouse_root
    home = ensure_dagster_home()
    import dagster as dg
    from tqdm import tqdm

    from focus_platform.assets import ASSETS
    from focus_platform.assets.partitions import EXPORT_SOURCE, partition_key
    from focus_platform.pipeline import FOCUS_TABLE, QUARANTINE_TABLE
    from focus_platform.resources import default_resources
    from focus_platform.warehouse.restatements import FORCE_TAG

    resources = default_resources()
    landing, warehouse = resources["landing_zone"], resources["warehouse"]
    instance = dg.DagsterInstance.get()
    sources = [s for s in landing.sources() if not getattr(args, "source", None) or s.name == args.source]
    instance.add_dynamic_partitions(EXPORT_SOURCE, [s.name for s in sources])
    work = [(s.name, period) for s in sources for period in landing.deliveries(s)
            if not getattr(args, "period", None) or period == args.period]
    tags = {"focus/origin": "demo", **({FORCE_TAG: "true"} if getattr(args, "force", False) else {})}
    failures, results = [], []
    for source, period in tqdm(work, desc="materializing partitions", unit="partition", file=sys.stderr):
        result = dg.materialize(ASSETS, partition_key=partition_key(period, source), instance=instance,
                                resources=resources, raise_on_error=False, tags=tags,
                                run_config=QUIET_RUN)
        results.append((source, period, result))
        if not result.success:
            failures.append((source, period, result))
    _print_demo_summary(results, warehouse.warehouse(), home, FOCUS_TABLE, QUARANTINE_TABLE)
    for source, period, result in failures:
        for event in result.all_events:
            if event.is_failure:
                print(f"FAILED {source} {period}: {event.message}", file=sys.stderr)
    return 1 if failures else 0


def _print_demo_summary(results, warehouse, home, focus_table, quarantine_table) -> None:
    from focus_platform.sources import RAW_TABLES

    print(f"\n{'source':<16}{'period':<9}{'status':<8}{'FOCUS rows':>11}{'quarantined':>12}  "
          f"{'BilledCost':>22}  {'EffectiveCost':>22}  checks")
    for source, period, result in results:
        meta = {}
        quarantined = 0
        for m in result.get_asset_materialization_events():
            mat = m.event_specific_data.materialization
            if mat.asset_key.to_user_string() == focus_table:
                meta = {k: v.value for k, v in mat.metadata.items()}
            elif mat.asset_key.to_user_string() == quarantine_table:
                quarantined = mat.metadata["dagster/row_count"].value
        evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        passed = sum(1 for e in evaluations if e.passed)
        totals = meta.get("totals_by_currency", {})
        for i, (currency, t) in enumerate(totals.items() or [("", {})]):
            print(f"{source if i == 0 else '':<16}{period if i == 0 else '':<9}"
                  f"{('ok' if result.success else 'FAILED') if i == 0 else '':<8}"
                  f"{meta.get('dagster/row_count', 0) if i == 0 else '':>11}{quarantined if i == 0 else '':>12}  "
                  f"{t.get('BilledCost', '-') + ' ' + currency:>22}  {t.get('EffectiveCost', '-') + ' ' + currency:>22}"
                  f"  {f'{passed}/{len(evaluations)} passed' if i == 0 else ''}")
        if not totals:
            print(f"{source:<16}{period:<9}{'FAILED':<8}")
    print(f"\nDelta tables under {warehouse.root}: {', '.join(RAW_TABLES)}, {focus_table}, {quarantine_table}")
    print(f"Dagster instance: {home}  (open the UI with: DAGSTER_HOME={home} dg dev)")


# ---------------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from focus_platform.pipeline import convert_files
    from focus_platform.sources import SourceFormatError

    if args.focus_version != "1.2":
        return _fail(f"FOCUS version {args.focus_version} is not supported (supported: 1.2)")
    started = time.perf_counter()
    try:
        result = convert_files(args.paths, args.out, fmt=args.format)
    except SourceFormatError as exc:
        return _fail(str(exc))
    elapsed = time.perf_counter() - started
    checks = result.checks
    print(f"formats: {', '.join(result.formats)}")
    print(f"rows in: {result.rows_in}  rows out: {result.rows_out} "
          f"(+{checks.rows.derived} derived rows, -{checks.rows.dropped} dropped)  "
          f"quarantined: {result.quarantined}")
    for currency, t in checks.totals.items():
        print(f"  {currency}: BilledCost {t['BilledCost']}  EffectiveCost {t['EffectiveCost']}")
    print(f"conformance: {checks.conformance.summary()}")
    for problem in checks.problems:
        print(f"PROBLEM: {problem}")
    print(f"wrote {result.out}" + (f" and {result.quarantine_out}" if result.quarantine_out else "")
          + f" in {elapsed:.1f}s ({result.rows_in / max(elapsed, 1e-9):,.0f} rows/s)")
    return 1 if checks.problems else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from focus_platform.spec.io import validate_focus_file

    if not Path(args.file).exists():
        return _fail(f"{args.file}: no such file")
    try:
        report = validate_focus_file(args.file)
    except Exception as exc:  # noqa: BLE001 - unreadable input gets a clear message, not a traceback
        return _fail(f"{args.file}: cannot be read: {str(exc).splitlines()[0]}")
    print(f"{args.file}: {report.rows} rows")
    print("converter defects / violations:" if report.defects else "no violations")
    for r in report.results:
        if r.defects:
            print(f"  {r.rule_id:24} {r.defects:>8}  {r.description}")
    if report.gaps:
        print("provider-data gaps (reported, not violations of the converter):")
        for rule, n in sorted(report.gaps.items()):
            print(f"  {rule:24} {n:>8}")
    if report.not_evaluated:
        print(f"not evaluated (columns missing): {', '.join(report.not_evaluated)}")
    return 1 if report.defects else 0


GENERATORS = {  # provider: (module, function, file formats (the first is the default))
    "aws-cur": ("focus_platform.generate.aws_cur", "generate_aws_cur", ["parquet", "csv.gz"]),
    "azure": ("focus_platform.generate.azure", "generate_azure", ["csv", "csv.gz"]),
    "gcp": ("focus_platform.generate.gcp", "generate_gcp", ["parquet", "jsonl"]),
    "oci": ("focus_platform.generate.oci", "generate_oci", ["csv.gz", "csv"]),
}


def cmd_generate(args: argparse.Namespace) -> int:
    import importlib

    from tqdm import tqdm

    module, function, file_formats = GENERATORS[args.provider]
    file_format = args.file_format or file_formats[0]
    if file_format not in file_formats:
        return _fail(f"{args.provider} writes {', '.join(file_formats)}, not {file_format}")
    options = {"layout": args.layout} if args.provider == "aws-cur" else {}
    generate = getattr(importlib.import_module(module), function)
    bar = tqdm(total=args.rows, desc="generating rows", unit="row", unit_scale=True, file=sys.stderr)
    summary = generate(args.out, rows=args.rows, months=args.months, seed=args.seed, start_period=args.start_period,
                       file_format=file_format, progress=bar.update, **options)
    bar.close()
    print(f"wrote {summary.rows:,} rows in {len(summary.data_files)} files under {args.out} "
          f"(expected totals: {summary.expected_totals_path}; invoices: {len(summary.invoice_files)} files)")
    return 0


def _warehouse(args: argparse.Namespace):
    from focus_platform.warehouse.delta import Warehouse

    return Warehouse(args.warehouse_root or None)


def cmd_rollback(args: argparse.Namespace) -> int:
    from focus_platform.pipeline import rollback_partition

    warehouse = _warehouse(args)
    try:
        entry = rollback_partition(warehouse, args.table, args.period, args.source, args.to_version)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        return _fail(str(exc))
    b = entry.before
    print(f"{args.table} {args.source} {args.period}: restored as of version "
          f"{entry.note.rsplit(' ', 1)[-1]} in new version {entry.version_after} "
          f"(was version {b.version if b else '-'}); recorded in restatement_log")
    print(f"rows: {b.rows if b else 0} -> {entry.after.rows}")
    for t in entry.totals():
        print(f"  {t['currency']}: billed {t['billed_before']} -> {t['billed_after']} ({t['billed_delta']:+})")
    if entry.status_after:
        print(f"period status: {entry.status_before or '-'} -> {entry.status_after}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import polars as pl

    from focus_platform.pipeline import FOCUS_TABLE
    from focus_platform.warehouse.restatements import PERIOD_STATUS, read_log

    warehouse = _warehouse(args)
    if not warehouse.exists(PERIOD_STATUS):
        return _fail(f"no period status yet under {warehouse.root}: materialize focus_costs first")
    status = warehouse.scan(PERIOD_STATUS).collect()
    for col, value in (("x_Source", args.source), ("x_BillingPeriod", args.period)):
        if value:
            status = status.filter(pl.col(col) == value)
    log = read_log(warehouse, table=FOCUS_TABLE)
    counts = {(r[0], r[1]): r[2] for r in log.group_by("x_Source", "x_BillingPeriod")
              .agg(pl.len()).iter_rows()} if log.height else {}
    print(f"{'source':<18}{'period':<9}{'status':<10}{'version':>8}{'changes':>8}  reason")
    for r in status.sort("x_Source", "x_BillingPeriod").iter_rows(named=True):
        print(f"{r['x_Source']:<18}{r['x_BillingPeriod']:<9}{r['status']:<10}{r['focus_version']:>8}"
              f"{counts.get((r['x_Source'], r['x_BillingPeriod']), 0):>8}  {r['reason']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from focus_platform.sources import FORMATS

    p = argparse.ArgumentParser(prog="focus-platform", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="materialize the embedded sample landing zone on a local Dagster instance")
    d.add_argument("--landing-root", help="landing zone: a folder, s3://bucket/prefix or gs://bucket/prefix "
                                          "(default: FOCUS_LANDING_ROOT or the embedded sample)")
    d.add_argument("--warehouse-root", help="Delta tables: a folder, s3:// or gs:// (default: FOCUS_WAREHOUSE_ROOT)")
    d.add_argument("--source", help="only this export source")
    d.add_argument("--period", help="only this billing period (YYYY-MM)")
    d.add_argument("--force", action="store_true",
                   help="accept deliveries the re-delivery guard refuses (run tag focus/force=true)")
    c = sub.add_parser("convert", help="convert export files to a typed FOCUS Parquet file")
    c.add_argument("paths", nargs="+")
    c.add_argument("--out", required=True)
    c.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    c.add_argument("--focus-version", default="1.2")
    v = sub.add_parser("validate", help="check a FOCUS file (Parquet or CSV) against our FOCUS 1.2 rules")
    v.add_argument("file")
    g = sub.add_parser("generate", help="write a realistic synthetic delivery with expected totals and invoices")
    g.add_argument("provider", choices=list(GENERATORS))
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--months", type=int, default=1)
    g.add_argument("--start-period", default="2024-01", help="first billing period, YYYY-MM")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--layout", choices=["legacy", "cur2"], default="legacy", help="aws-cur only")
    g.add_argument("--file-format", choices=sorted({f for _, _, fs in GENERATORS.values() for f in fs}),
                   help="default: the provider's usual one (first of: " + "; ".join(
                       f"{p} {'/'.join(fs)}" for p, (_, _, fs) in GENERATORS.items()) + ")")
    g.add_argument("--out", required=True)
    r = sub.add_parser("rollback", help="restore a partition of a Delta table from its history (recorded in "
                                        "restatement_log)")
    r.add_argument("table", help="e.g. focus_costs, raw_aws_cur")
    r.add_argument("--period", required=True)
    r.add_argument("--source", required=True)
    r.add_argument("--to-version", type=int, help="default: the version before the partition's latest change")
    r.add_argument("--warehouse-root", help="default: FOCUS_WAREHOUSE_ROOT or ./.data/warehouse")
    st = sub.add_parser("status", help="period status (open / final / restated) per partition")
    st.add_argument("--period")
    st.add_argument("--source")
    st.add_argument("--warehouse-root", help="default: FOCUS_WAREHOUSE_ROOT or ./.data/warehouse")
    return p


COMMANDS = {"demo": cmd_demo, "convert": cmd_convert, "validate": cmd_validate, "generate": cmd_generate,
            "rollback": cmd_rollback, "status": cmd_status}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
