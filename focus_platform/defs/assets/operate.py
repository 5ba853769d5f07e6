"""Operate domain: retention, retention compliance (M11), end-to-end success (M15).

- ``retention`` (job, daily at 03:00 UTC): drops every partition older than its table's policy
  (``warehouse.retention``: catalog defaults, ``FOCUS_RETENTION``) through the warehouse's one write
  path (one verified commit and one restatement-log entry with its totals per drop), then vacuums
  each table's history older than the time-travel window (``FOCUS_TIME_TRAVEL_DAYS``, default 30):
  until then a dropped or replaced version stays readable and restorable (``rollback``).
- ``retention_<table>`` checks (M11, ERROR), one per partitioned table on the asset that writes it:
  nothing older than the policy, nothing required missing. ``end_to_end_success`` (M15, WARN) on
  focus_costs: successful runs / finished runs of the last ``RECENT_DAYS`` days. The
  ``service_levels`` job runs these checks (daily at 03:30 UTC, after retention). A failed run of any job
  is paged by ``run_failure_alert``: a page-severity alert (job, run id, partition, error, the run's page in
  the UI) through the notifier (``<landing>/alerts/endpoints.yaml``); an endpoint that cannot be reached is
  logged, and the sensor itself never fails for it.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from focus_platform.alerts import PAGE, Alert
from focus_platform.defs.assets.ingest import RAW_ASSET
from focus_platform.defs.checks import ERROR, WARN, Check
from focus_platform.defs.resources import NotifierResource, WarehouseResource
from focus_platform.service_levels import end_to_end_success
from focus_platform.sources import RAW_TABLES
from focus_platform.warehouse import retention
from focus_platform.warehouse.catalog import FOCUS_TABLE, PERIOD_STATUS, TABLES

RECENT_DAYS = 7


def asset_of(table: str) -> str:
    """The asset whose runs write a table (raw_* tables: raw_exports; period_status: focus_costs)."""
    if table in RAW_TABLES:
        return RAW_ASSET
    return FOCUS_TABLE if table == PERIOD_STATUS else table


def retention_check(table: str) -> Check:
    return Check(f"retention_{table}", asset_of(table),
                 f"M11: {table} holds no partition older than its retention policy and every partition its "
                 "upstream tables hold inside the window", ERROR, service_level="M11")


RETENTION_CHECKS = {name: retention_check(name) for name, spec in TABLES.items() if spec.partitioned}
END_TO_END = Check("end_to_end_success", FOCUS_TABLE,
                   f"M15: successful runs / finished runs of the last {RECENT_DAYS} days at or above target", WARN,
                   service_level="M15")


def compliance_result(check: Check, wh, table: str) -> dg.AssetCheckResult:
    if not wh.exists(table):
        return check.result(True, {"note": f"no {table} table yet"})
    result = retention.compliance(wh, table)
    return check.result(result.ok, result.metadata())


def _retention_asset_check(table: str) -> dg.AssetChecksDefinition:
    check = RETENTION_CHECKS[table]

    @dg.asset_check(asset=check.asset, name=check.name, description=check.description,
                    metadata=check.spec().metadata)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return compliance_result(check, warehouse.warehouse(), table)

    return _check


def recent_outcomes(instance: dg.DagsterInstance, days: int = RECENT_DAYS) -> list[bool]:
    """Finished runs of the last ``days`` days: True for success, False for failure (canceled and
    running ones are not counted)."""
    since = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    records = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
        created_after=datetime.fromtimestamp(since, UTC)))
    return [r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records]


@dg.asset_check(asset=END_TO_END.asset, name=END_TO_END.name, description=END_TO_END.description,
                metadata=END_TO_END.spec().metadata)
def end_to_end_success_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    outcomes = recent_outcomes(context.instance)
    measured = end_to_end_success(outcomes)
    if measured.value is None:
        return END_TO_END.result(True, {"note": measured.reason or "no runs to measure"})
    return END_TO_END.result(bool(measured.meets), {"rate": measured.value, "runs": len(outcomes),
                                                    "failed": outcomes.count(False), "days": RECENT_DAYS})


@dg.op(description="drop expired partitions of every table (restatement-log entry each), vacuum history older "
                   "than the time-travel window")
def apply_retention(context: dg.OpExecutionContext, warehouse: WarehouseResource) -> dg.Output:
    report = retention.run_retention(warehouse.warehouse(), run_id=context.run_id)
    for dropped in report.dropped:
        context.log.info(f"dropped {dropped.table} {dropped.key}: {dropped.metadata()}")
    return dg.Output(None, metadata={"dropped": len(report.dropped),
                                     "report": dg.MetadataValue.json(report.metadata())})


@dg.job(name="retention", description="partition-based retention per the table catalog (FOCUS_RETENTION), then "
                                      "vacuum past the time-travel window (FOCUS_TIME_TRAVEL_DAYS)")
def retention_job():
    apply_retention()


retention_schedule = dg.ScheduleDefinition(name="daily_retention", job=retention_job, cron_schedule="0 3 * * *",
                                           execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
RETENTION_ASSET_CHECKS = [_retention_asset_check(name) for name in RETENTION_CHECKS]
# the service-level checks run in their own job, not in every run of the assets they sit on
service_levels_job = dg.define_asset_job(
    "service_levels", selection=dg.AssetSelection.checks(*RETENTION_ASSET_CHECKS, end_to_end_success_check),
    description="M11 retention compliance of every partitioned table and M15 end-to-end success")
service_levels_schedule = dg.ScheduleDefinition(
    name="daily_service_levels", job=service_levels_job, cron_schedule="30 3 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING)


def run_failure(run: dg.DagsterRun, error: str, ui_url: str) -> Alert:
    """The page alert of a failed run: one incident per run."""
    partition = run.tags.get("dagster/partition")
    return Alert(id=f"run-failure:{run.run_id}", severity=PAGE, title=f"run of {run.job_name} failed",
                 partition=partition, summary=f"run {run.run_id} of {run.job_name} failed (partition {partition}, "
                 f"trigger {run.tags.get('focus/trigger', 'manual')}): {error}",
                 link=f"{ui_url}/runs/{run.run_id}")


def step_errors(context: dg.RunFailureSensorContext) -> str:
    """Each failed step's root error (its innermost cause), or the run's failure message when no step failed."""
    lines = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        lines.append(f"{event.step_key}: {error.message.strip()}")
    return "; ".join(lines) or (context.failure_event.message if context.failure_event else "")


@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False)
def run_failure_alert(context: dg.RunFailureSensorContext, notifier: NotifierResource):
    """M15's alert on failure: every failed run is logged and paged (the notifier's page route); a delivery
    that fails, or an alerts file that cannot be read, is logged and never fails the sensor."""
    error = step_errors(context)
    context.log.error(f"run {context.dagster_run.run_id} of {context.dagster_run.job_name} failed: {error}")
    try:
        sender = notifier.notifier()
    except dg.Failure as exc:
        context.log.error(f"run failure not paged: {exc.description}")
        return
    for delivery in sender.send(run_failure(context.dagster_run, error, sender.config.ui_url)):
        if not delivery.ok:
            context.log.error(f"run failure not paged to {delivery.endpoint} after {delivery.attempts} attempt(s): "
                              f"{delivery.error}")


operate = dg.Definitions(
    jobs=[retention_job, service_levels_job], schedules=[retention_schedule, service_levels_schedule],
    asset_checks=[*RETENTION_ASSET_CHECKS, end_to_end_success_check], sensors=[run_failure_alert])
