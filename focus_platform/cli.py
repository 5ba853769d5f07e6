"""focus-platform: demo, convert, validate, generate, rollback, status.

Dagster is imported only by ``demo``; the other commands stay quick to start. A user error (input
that cannot be read, a refused delivery, an invalid ``sources.json`` or setting) is one line on
stderr, ``error: <what and where>``, and exit status 1; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
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
WORKSPACE_YAML = Path(__file__).resolve().parent.parent / "workspace.yaml"  # in a checkout (pip install -e)
DEFINITIONS_MODULE = "focus_platform.definitions"


def quiet_run(debug: bool) -> dict:
    """Run config of the demo's runs: Dagster's console log only with --debug (a failure's reason is
    printed in one line from the run's events instead of its traceback)."""
    return {"loggers": {"console": {"config": {"log_level": "ERROR" if debug else "CRITICAL"}}}}


def one_line(what: BaseException | str) -> str:
    """A message (or an error's) on one line; an error without a message by its type."""
    text = " ".join(str(what).split())
    return text or (type(what).__name__ if isinstance(what, BaseException) else "")


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


def ui_command(home: Path) -> str:
    """The command that opens the demo's instance in the Dagster UI, from any folder."""
    target = f"-w {WORKSPACE_YAML}" if WORKSPACE_YAML.exists() else f"-m {DEFINITIONS_MODULE}"
    retention = os.environ.get("FOCUS_RETENTION")  # the window the demo's partitions were offered in
    return f"DAGSTER_HOME={home} {f'FOCUS_RETENTION={retention} ' if retention else ''}dg dev {target}"


# ---------------------------------------------------------------------------------------------
@dataclass
class PartitionOutcome:
    """What one run of the pipeline job did to one (export source, billing period) partition."""

    source: str
    period: str
    success: bool
    focus_rows: int = 0
    quarantined: int = 0
    totals: dict[str, dict[str, str]] = field(default_factory=dict)  # currency -> BilledCost / EffectiveCost
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (name, passed, severity)
    changes: dict[str, dict] = field(default_factory=dict)  # asset -> its ``change`` metadata, in run order
    reason: str = ""  # why the run failed
    warnings: list[str] = field(default_factory=list)  # published, but not to pass silently (accepted overrides, gaps)

    @property
    def failed_checks(self) -> list[str]:
        return [f"{name} ({severity.lower()})" for name, passed, severity in self.checks if not passed]

    @property
    def status(self) -> str:
        if not self.success:
            return "FAILED"
        severities = {severity for _, passed, severity in self.checks if not passed}
        return "error" if "ERROR" in severities else "warn" if severities or self.warnings else "ok"

    def checks_text(self) -> str:
        passed = sum(1 for _, ok, _ in self.checks if ok)
        failed = self.failed_checks
        return f"{passed}/{len(self.checks)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")


def partition_outcome(source: str, period: str, result) -> PartitionOutcome:
    from focus_platform.warehouse.catalog import FOCUS_TABLE, QUARANTINE_TABLE

    outcome = PartitionOutcome(source, period, result.success)
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        asset = materialization.asset_key.to_user_string()
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        if "change" in metadata:
            outcome.changes[asset] = metadata["change"]
        if asset == FOCUS_TABLE:
            outcome.warnings = list(metadata.get("warnings") or [])
            outcome.focus_rows = metadata.get("dagster/row_count", 0)
            outcome.totals = metadata.get("totals_by_currency", {})
        elif asset == QUARANTINE_TABLE:
            outcome.quarantined = metadata.get("dagster/row_count", 0)
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    outcome.checks = [(e.check_name, e.passed, e.severity.value) for e in evaluations]
    if not result.success:
        outcome.reason = failure_reason(result, evaluations)
    return outcome


def failure_reason(result, evaluations) -> str:
    """Why a run failed, in one line: the refused delivery's reason (the ``delivery_accepted``
    check), else the failed step's message (a ``dg.Failure``'s description, else the innermost error)."""
    from focus_platform.defs.assets.ingest import REFUSED

    for evaluation in evaluations:
        if not evaluation.passed and REFUSED in evaluation.metadata:
            return one_line(evaluation.metadata[REFUSED].value)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            if data.user_failure_data and data.user_failure_data.description:
                return one_line(data.user_failure_data.description)
            error = data.error
            while error.cause is not None:
                error = error.cause
            return one_line(error.message)
    return "the run failed (see its events in the Dagster UI)"


def debug_details(result) -> str:
    return "\n".join(event.event_specific_data.error.to_string() for event in result.all_events
                     if event.event_type_value == "STEP_FAILURE" and event.event_specific_data.error)


def cmd_demo(args: argparse.Namespace) -> int:
    from focus_platform.landing.config import checked_root

    if args.landing_root:
        os.environ["FOCUS_LANDING_ROOT"] = checked_root("--landing-root", args.landing_root)
    if args.warehouse_root:
        os.environ["FOCUS_WAREHOUSE_ROOT"] = checked_root("--warehouse-root", args.warehouse_root)
    if not os.environ.get("FOCUS_LANDING_ROOT") and not os.environ.get("FOCUS_RETENTION"):
        # the embedded sample holds months from 2018: offered and kept whatever today's date
        os.environ["FOCUS_RETENTION"] = "keep"
        print("note: the embedded sample holds billing periods from 2018: FOCUS_RETENTION=keep for this demo",
              file=sys.stderr)
    home = ensure_dagster_home()
    import warnings

    import dagster as dg
    from tqdm import tqdm

    # Dagster's notes on its own APIs (backfill_policy in beta, folder loading in preview) are not the user's
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from focus_platform.definitions import defs
    from focus_platform.defs.partitions import (
        EXPORT_SOURCE,
        dagster_key,
        in_window,
        outside_window,
    )
    from focus_platform.defs.resources import default_resources
    from focus_platform.periods import PartitionKey
    from focus_platform.warehouse.catalog import TABLES
    from focus_platform.warehouse.restatements import (
        ACCEPT_UNKNOWN_MONEY_TAG,
        FORCE_TAG,
    )

    resources = default_resources()  # read now: the landing and warehouse roots of this command
    landing, warehouse = resources["landing_zone"], resources["warehouse"].warehouse()
    job = defs.resolve_job_def("focus_pipeline")  # the definitions' jobs: the UI lists the demo's runs under them
    instance = dg.DagsterInstance.get()
    sources = [s for s in landing.sources() if not args.source or s.name == args.source]
    if not sources:
        raise ValueError(f"export source {args.source} is not configured in {landing.resolved_root()}")
    work, bad_sources, bad_periods = [], [], []
    for source in sources:
        discovery = landing.discover(source)
        if discovery.error:  # e.g. a stray file at its root, a missing location: the other sources still run
            bad_sources.append(source.name)
            _fail(one_line(discovery.error))  # names the source and the object at fault
            continue
        if discovery.note:  # e.g. a location that exists but holds no delivery yet
            print(f"note: {discovery.note}", file=sys.stderr)
        periods = sorted(set(discovery.deliveries) | set(discovery.refused))  # a refused one's run records why
        periods = [p for p in periods if not args.period or p == args.period]
        for period in [p for p in periods if not in_window(p)]:  # no partition holds it (e.g. 2099-01)
            bad_periods.append((source.name, period))
            _fail(one_line(discovery.refused.get(period)
                           or f"export source {source.name}, billing period {outside_window(period)}"))
        work += [(source.name, period) for period in periods if in_window(period)]
    if args.period and not work and not bad_sources and not bad_periods:
        raise ValueError(f"no delivery of billing period {args.period} for "
                         f"{'source ' + args.source if args.source else 'any source'} under {landing.resolved_root()}")
    instance.add_dynamic_partitions(EXPORT_SOURCE, [s.name for s in sources if s.name not in bad_sources])
    tags = {"focus/origin": "demo", **({FORCE_TAG: "true"} if args.force else {}),
            **({ACCEPT_UNKNOWN_MONEY_TAG: "true"} if args.accept_unknown_money else {})}
    outcomes = []
    for source, period in tqdm(work, desc="materializing partitions", unit="partition", file=sys.stderr):
        result = job.execute_in_process(instance=instance, partition_key=dagster_key(PartitionKey.of(period, source)),
                                        tags=tags, raise_on_error=False, run_config=quiet_run(args.debug),
                                        resources=resources)
        outcomes.append(partition_outcome(source, period, result))
        if args.debug and not result.success:
            print(debug_details(result), file=sys.stderr)
    published = sorted({o.period for o in outcomes if o.success})
    downstream = run_downstream(defs, resources, instance, published, tags, args.debug)
    tables = [t for t in TABLES if warehouse.exists(t)]
    print_demo_summary(outcomes, warehouse.root, tables, home)
    print_downstream(downstream)
    print_owners(warehouse, published)
    print_outlook(warehouse, published)
    for outcome in outcomes:
        if not outcome.success:
            _fail(f"{outcome.source} {outcome.period}: {outcome.reason}")
    failed = [d for d in downstream if not d.success]
    for d in failed:
        _fail(f"{d.job} {d.period or ''}: {d.reason}".replace("  ", " "))
    return 1 if bad_sources or bad_periods or failed or any(not o.success for o in outcomes) else 0


@dataclass
class DownstreamOutcome:
    job: str
    period: str | None
    success: bool
    reason: str
    checks: list[str] = field(default_factory=list)  # failed checks, "name (WARN)" / "name (ERROR)"


def run_downstream(defs, resources: dict, instance, periods: list[str], tags: dict,
                   debug: bool) -> list[DownstreamOutcome]:
    """The rest of the graph after the ingested partitions, as the daemon would run it: invoices and
    exchange rates, then each published period's reconciliation and SKU catalog, then its allocation (cost
    allocations, the shadow diff, the FOCUS 1.3 view), then its forecasts job (spend forecasts, budget status,
    cost anomalies, the policies on their signals)."""
    runs = [("invoices_and_rates", None)] + [(job, p) for job in ("reconciliation", "allocation", "forecasts")
                                             for p in periods]
    out = []
    for name, period in runs:
        job = defs.resolve_job_def(name)
        result = job.execute_in_process(instance=instance, partition_key=period, tags=tags, raise_on_error=False,
                                        run_config=quiet_run(debug), resources=resources)
        failed = [f"{e.check_name} ({e.severity.value})" for e in result.get_asset_check_evaluations() if not e.passed]
        out.append(DownstreamOutcome(name, period, result.success, failure_reason(result, []) if not result.success
                                     else "", failed))
        if debug and not result.success:
            print(debug_details(result), file=sys.stderr)
    return out


def print_downstream(outcomes: list[DownstreamOutcome]) -> None:
    width = max([len("job"), *(len(o.job) for o in outcomes)]) + 2
    print(f"\n{'job':<{width}}{'period':<9}{'status':<8}checks")
    for o in outcomes:
        status = "FAILED" if not o.success else "error" if any("(ERROR)" in c for c in o.checks) \
            else "warn" if o.checks else "ok"
        print(f"{o.job:<{width}}{o.period or '-':<9}{status:<8}{', '.join(o.checks) or 'all passed'}")


def print_outlook(warehouse, periods: list[str], top: int = 5) -> None:
    """What the forecasts job found: budgets per period and owner (actual, projection, status), the cost
    anomaly incidents, the spend forecast for the months ahead, and what the policies did (or would do)."""
    import polars as pl

    from focus_platform.warehouse.catalog import (
        BUDGET_STATUS_TABLE,
        COST_ANOMALIES_TABLE,
        POLICY_ACTIONS_TABLE,
        SPEND_FORECASTS_TABLE,
    )

    def table(name: str) -> pl.DataFrame | None:
        return warehouse.scan(name).collect() if warehouse.exists(name) else None

    def money(value) -> str:
        return "-" if value is None else f"{value:,.2f}"

    budgets = table(BUDGET_STATUS_TABLE)
    if budgets is not None and budgets.height:
        print("\nbudgets (budget_status: actual to date and projected at period end, in the budget's currency)")
        for row in budgets.filter(pl.col("x_BillingPeriod").is_in(periods)).sort(
                "x_BillingPeriod", "Owner").iter_rows(named=True):
            print(f"  {row['x_BillingPeriod']} {row['Owner']:<12} {row['Status']:<8} actual "
                  f"{money(row['ActualToDate'])} / budget {money(row['Budget'])} {row['BudgetCurrency']}, projected "
                  f"{money(row['ForecastAtPeriodEnd'])} ({row['x_ProjectionMethod']})")
    anomalies = table(COST_ANOMALIES_TABLE)
    if anomalies is not None:
        incidents = (anomalies.filter(pl.col("x_BillingPeriod").is_in(periods))
                     .group_by("IncidentId", "Status", "Owner", "ServiceName", "BillingCurrency")
                     .agg(pl.col("IncidentStart").min(), pl.len().alias("days"), pl.col("Delta").sum())
                     .sort("IncidentStart"))
        print(f"\ncost anomalies (cost_anomalies): {incidents.filter(pl.col('Status') == 'raised').height} incident(s) "
              f"raised, {incidents.filter(pl.col('Status') != 'raised').height} suppressed")
        for row in incidents.sort(pl.col("Delta").abs(), descending=True).head(top).iter_rows(named=True):
            print(f"  {row['IncidentStart']} {row['Status']:<10} {row['Owner']} / {row['ServiceName']}: "
                  f"{row['Delta']:+,.2f} {row['BillingCurrency']} over {row['days']} day(s)")
    forecasts = table(SPEND_FORECASTS_TABLE)
    if forecasts is not None:
        months = (forecasts.filter((pl.col("Grain") == "month") & (pl.col("SpendKind") == "total"))
                  .group_by("Date", "BillingCurrency").agg(pl.col("Forecast").sum(), pl.col("Lower").sum(),
                                                           pl.col("Upper").sum()).sort("Date", "BillingCurrency"))
        series = forecasts.select("Owner", "ServiceName", "ProviderName", "BillingCurrency").unique().height
        print(f"\nspend forecasts (spend_forecasts): {series} series forecast" + ("; by month: " + "; ".join(
            f"{d:%Y-%m} {f:,.2f} {c}" for d, c, f, _, _ in months.iter_rows()) if months.height else ""))
    actions = table(POLICY_ACTIONS_TABLE)
    if actions is not None:
        counts = actions.group_by("PolicyId", "Outcome").len().sort("PolicyId", "Outcome")
        print("\npolicies (policy_actions): " + ("; ".join(f"{p} {o} {n}" for p, o, n in counts.iter_rows())
                                                 or "no signal matched a policy"))


def print_owners(warehouse, periods: list[str], top: int = 5) -> None:
    """Per allocated period and currency: the first owner dimension's biggest owners by EffectiveCost, the
    unallocated share, and what the candidate rules would move (allocation_diff)."""
    import polars as pl

    from focus_platform.allocation.model import FIXED_COLUMNS
    from focus_platform.warehouse.catalog import (
        ALLOCATION_DIFF_TABLE,
        ALLOCATIONS_TABLE,
    )

    if not warehouse.exists(ALLOCATIONS_TABLE):
        return
    allocations = warehouse.scan(ALLOCATIONS_TABLE).filter(pl.col("x_BillingPeriod").is_in(periods))
    dimension = next(c for c in allocations.collect_schema().names() if c not in FIXED_COLUMNS)
    by_owner = (allocations.group_by("x_BillingPeriod", "BillingCurrency", dimension)
                .agg(pl.col("x_AllocatedEffectiveCost").sum().alias("cost")).collect())
    print(f"\ncost by {dimension} (cost_allocations, EffectiveCost; top {top} per period and currency)")
    for (period, currency), rows in sorted(by_owner.group_by("x_BillingPeriod", "BillingCurrency"),
                                           key=lambda g: g[0]):
        total = sum(rows["cost"], Decimal(0))
        owners = rows.sort("cost", descending=True).head(top)
        print(f"  {period} {currency} {total:,.2f}: " + ", ".join(
            f"{o} {c:,.2f}" for o, c in owners.select(dimension, "cost").iter_rows()))
    if warehouse.exists(ALLOCATION_DIFF_TABLE):
        moves = (warehouse.scan(ALLOCATION_DIFF_TABLE).filter(pl.col("x_BillingPeriod").is_in(periods))
                 .select("x_BillingPeriod", "BillingCurrency", dimension, "x_MovedEffective",
                         "x_CandidateRulesVersion").collect())
        if moves.height:
            print(f"  shadow mode: the candidate rules ({moves['x_CandidateRulesVersion'][0]}) would move "
                  + "; ".join(f"{p} {o} {m:+,.2f} {c}" for p, c, o, m, _ in moves.sort(
                      "x_BillingPeriod", dimension).iter_rows()) + " (allocation_diff)")


def print_demo_summary(outcomes: list[PartitionOutcome], warehouse_root: str, tables: list[str], home: Path) -> None:
    print(f"\n{'source':<16}{'period':<9}{'status':<8}{'FOCUS rows':>11}{'quarantined':>12}  "
          f"{'BilledCost':>22}  {'EffectiveCost':>22}  checks")
    for o in outcomes:
        rows = sorted(o.totals.items()) or [("", {})]
        for i, (currency, t) in enumerate(rows):
            first = i == 0
            print(f"{o.source if first else '':<16}{o.period if first else '':<9}{o.status if first else '':<8}"
                  f"{o.focus_rows if first else '':>11}{o.quarantined if first else '':>12}  "
                  f"{t.get('BilledCost', '-') + ' ' + currency:>22}  {t.get('EffectiveCost', '-') + ' ' + currency:>22}"
                  f"  {o.checks_text() if first else ''}")
        changed = {asset: change_lines(change) for asset, change in o.changes.items()}
        if len(changed) > 1 and len({tuple(lines) for lines in changed.values()}) == 1:  # the same change
            changed = {" and ".join(changed): next(iter(changed.values()))}
        for assets, lines in changed.items():
            for i, line in enumerate(lines):
                print(f"{'':<33}{assets + ': ' if i == 0 else ''}{line}")
        for warning in o.warnings:
            print(f"{'':<33}warning: {warning}")
    print(f"\nDelta tables under {warehouse_root}: {', '.join(tables) or 'none yet'}")
    print(f"Dagster instance: {home}")
    print("Open the UI (the demo's runs are under the jobs focus_pipeline, invoices_and_rates, reconciliation, "
          "allocation and forecasts): "
          + ui_command(home))


def change_lines(change: dict) -> list[str]:
    """A replaced partition's change: rows, then billed total per currency, before -> after with the
    relative change; ["unchanged (no new version)"] for a re-materialization that changed nothing;
    [] for a first publication."""
    if change.get("action") == "unchanged":
        return ["unchanged (no new version)"]
    if change.get("action") != "replace":
        return []
    rows_before, rows_after = change.get("rows_before"), change.get("rows_after")
    lines = [f"replaced: rows {rows_before} -> {rows_after}{share_change(rows_before, rows_after)}"]
    before, after = change.get("billed_before") or {}, change.get("billed_after") or {}
    for currency in sorted(set(before) | set(after)):
        b, a = before.get(currency, "0"), after.get(currency, "0")
        lines.append(f"  {currency} billed {b} (unchanged)" if Decimal(b) == Decimal(a)
                     else f"  {currency} billed {b} -> {a}{share_change(b, a)}")
    return lines


def share_change(before: int | str | None, after: int | str) -> str:
    """`` (-23.1 %)``: the relative change, or nothing when there was nothing before."""
    if before is None or Decimal(before) == 0:
        return ""
    return f" ({(Decimal(after) - Decimal(before)) / abs(Decimal(before)) * 100:+.1f} %)"


# ---------------------------------------------------------------------------------------------
def cmd_convert(args: argparse.Namespace) -> int:
    from focus_platform.allocation.accounts import read_catalog
    from focus_platform.pipeline import convert_files

    if args.focus_version != "1.2":
        return _fail(f"FOCUS version {args.focus_version} is not supported (supported: 1.2)")
    started = time.perf_counter()
    accounts = read_catalog([(p, Path(p).read_bytes()) for p in args.accounts]) if args.accounts else None
    result = convert_files(args.paths, args.out, fmt=args.format, billing_currency=args.billing_currency,
                           accept_unknown_money=args.accept_unknown_money, accounts=accounts)
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


# generators of what goes beside a bill: owners with their truth, and Kubernetes telemetry for a bill's instances
COMPANION_GENERATORS = ("allocation", "kubernetes")


def cmd_generate(args: argparse.Namespace) -> int:
    import importlib

    from tqdm import tqdm

    if args.provider == "allocation":
        return generate_allocation(args)
    if args.provider == "kubernetes":
        return generate_kubernetes(args)
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
    print(f"run the pipeline on it: focus-platform demo --landing-root {Path(args.out).resolve()}")
    return 0


def generate_allocation(args: argparse.Namespace) -> int:
    from focus_platform.generate.allocation import generate_allocation

    summary = generate_allocation(args.out, rows=args.rows, months=args.months, seed=args.seed,
                                  start_period=args.start_period)
    print(f"wrote {summary.rows:,} FOCUS rows of {len(summary.sources)} export sources with known owners under "
          f"{args.out}: rules {summary.rules_path}, Kubernetes clusters {', '.join(sorted(summary.clusters))}; "
          f"the truth under {summary.expected_dir}")
    print(f"run the pipeline on it: focus-platform demo --landing-root {Path(args.out).resolve()}")
    return 0


def generate_kubernetes(args: argparse.Namespace) -> int:
    import polars as pl

    from focus_platform.generate.kubernetes import generate_kubernetes

    if not args.focus:
        return _fail("generate kubernetes needs --focus: a FOCUS Parquet file (convert's output) or a focus_costs "
                     "Delta table whose compute instances become the clusters' nodes")
    focus = pl.scan_delta(args.focus) if (Path(args.focus) / "_delta_log").is_dir() else pl.scan_parquet(args.focus)
    clusters = tuple(c.strip() for c in args.clusters.split(",") if c.strip())
    summary = generate_kubernetes(focus, args.out, seed=args.seed, clusters=clusters,
                                  nodes_per_cluster=args.nodes_per_cluster)
    how = "from the instances' cluster tags" if summary.tagged else "nodes chosen by seed among the instances"
    print(f"wrote OpenCost telemetry for {len(summary.clusters)} clusters ({how}; "
          + ", ".join(f"{c}: {n} nodes" for c, n in sorted(summary.clusters.items()))
          + f") over {summary.days} days, {summary.telemetry_rows:,} rows under {summary.out_dir}; "
          f"the true namespace shares: {summary.expected_path}")
    return 0


def _warehouse(args: argparse.Namespace):
    from focus_platform.warehouse.delta import Warehouse

    return Warehouse(args.warehouse_root or None)


def cmd_rollback(args: argparse.Namespace) -> int:
    from focus_platform.pipeline import rollback_partition

    entry = rollback_partition(_warehouse(args), args.table, args.period, args.source, args.to_version)
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

    from focus_platform.warehouse.catalog import FOCUS_TABLE
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


def billing_period(text: str) -> str:
    """A billing period argument: YYYY-MM with a month 01 to 12."""
    from focus_platform.periods import BillingPeriod, PeriodError

    try:
        return str(BillingPeriod.parse(text))
    except PeriodError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a billing period YYYY-MM (month 01 to 12)") from None


def build_parser() -> argparse.ArgumentParser:
    from focus_platform.sources import FORMATS

    p = argparse.ArgumentParser(prog="focus-platform", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (else: one line)")
    debug = argparse.ArgumentParser(add_help=False)  # --debug after the command name too
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[debug])

    d = command("demo", "run the focus_pipeline job on every partition of the landing zone (default: the embedded "
                        "sample) on a local Dagster instance")
    d.add_argument("--landing-root", help="landing zone: a folder, s3://bucket/prefix or gs://bucket/prefix "
                                          "(default: FOCUS_LANDING_ROOT or the embedded sample)")
    d.add_argument("--warehouse-root", help="Delta tables: a folder, s3:// or gs:// (default: FOCUS_WAREHOUSE_ROOT)")
    d.add_argument("--source", help="only this export source")
    d.add_argument("--period", type=billing_period, help="only this billing period (YYYY-MM)")
    d.add_argument("--force", action="store_true",
                   help="accept deliveries the re-delivery guard refuses (run tag focus/force=true)")
    d.add_argument("--accept-unknown-money", action="store_true",
                   help="publish partitions with amounts that cannot be read, kept apart in x_UnreadableAmounts "
                        "(run tag focus/accept-unknown-money=true)")
    c = command("convert", "convert export files to a typed FOCUS Parquet file")
    c.add_argument("paths", nargs="+")
    c.add_argument("--out", required=True)
    c.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    c.add_argument("--focus-version", default="1.2")
    c.add_argument("--billing-currency", metavar="CUR",
                   help="ISO 4217 currency of exports that carry none (recorded on every row)")
    c.add_argument("--accept-unknown-money", action="store_true",
                   help="write the output although some amounts cannot be read (kept in x_UnreadableAmounts)")
    c.add_argument("--accounts", nargs="+", metavar="FILE", default=[],
                   help="account catalog files (AWS Organizations, Azure, GCP, OCI exports or "
                        "provider,account_id,account_name,kind,path CSV): names the exports lack are filled "
                        "(noted per row)")
    v = command("validate", "check a FOCUS file (Parquet or CSV) against our FOCUS 1.2 rules")
    v.add_argument("file")
    g = command("generate", "write a realistic synthetic delivery with expected totals, invoices and the "
                            "sources.json that 'demo --landing-root OUT' reads; 'allocation': native FOCUS "
                            "deliveries with known owners and their rules; 'kubernetes': OpenCost telemetry for "
                            "the instances of a FOCUS file")
    g.add_argument("provider", choices=[*GENERATORS, *COMPANION_GENERATORS])
    g.add_argument("--rows", type=int, default=100_000)
    g.add_argument("--months", type=int, default=1)
    g.add_argument("--start-period", type=billing_period, default="2024-01", help="first billing period, YYYY-MM")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--layout", choices=["legacy", "cur2"], default="legacy", help="aws-cur only")
    g.add_argument("--file-format", choices=sorted({f for _, _, fs in GENERATORS.values() for f in fs}),
                   help="default: the provider's usual one (first of: " + "; ".join(
                       f"{p} {'/'.join(fs)}" for p, (_, _, fs) in GENERATORS.items()) + ")")
    g.add_argument("--out", required=True)
    g.add_argument("--focus", help="kubernetes only: FOCUS Parquet file or focus_costs Delta table to take nodes from")
    g.add_argument("--clusters", default="k8s-prod,k8s-dev", help="kubernetes only: cluster names, comma-separated")
    g.add_argument("--nodes-per-cluster", type=int, default=3, help="kubernetes only")
    r = command("rollback", "restore a partition of a Delta table from its history (recorded in restatement_log)")
    r.add_argument("table", help="e.g. focus_costs, raw_aws_cur")
    r.add_argument("--period", type=billing_period, required=True)
    r.add_argument("--source", required=True)
    r.add_argument("--to-version", type=int, help="default: the version before the partition's latest change")
    r.add_argument("--warehouse-root", help="default: FOCUS_WAREHOUSE_ROOT or ./.data/warehouse")
    st = command("status", "period status (open / final / restated) per partition")
    st.add_argument("--period", type=billing_period)
    st.add_argument("--source")
    st.add_argument("--warehouse-root", help="default: FOCUS_WAREHOUSE_ROOT or ./.data/warehouse")
    return p


COMMANDS = {"demo": cmd_demo, "convert": cmd_convert, "validate": cmd_validate, "generate": cmd_generate,
            "rollback": cmd_rollback, "status": cmd_status}


def user_errors() -> tuple[type[BaseException], ...]:
    """What a command may fail with because of its input or settings (one line, exit 1); anything
    else is a bug and keeps its traceback."""
    from focus_platform.warehouse.delta import (
        CommitVerificationFailed,
        ConcurrentPartitionWrite,
        GateFailed,
    )

    return ValueError, OSError, GateFailed, ConcurrentPartitionWrite, CommitVerificationFailed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Exception as exc:
        if not isinstance(exc, user_errors()) or args.debug:
            raise
        return _fail(one_line(exc))


if __name__ == "__main__":
    sys.exit(main())
