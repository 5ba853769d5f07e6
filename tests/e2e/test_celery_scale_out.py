"""Scale-out on plain VMs, end to end: the instance of deploy/vm (PostgreSQL storage, queued run coordinator,
CeleryRunLauncher, run monitoring, run retries), Redis, two Celery worker processes and the Dagster daemon,
all on 127.0.0.1; the landing zone and the warehouse in moto's S3 server.

1. A backfill of 12 partitions (3 sources × 4 months, laid out by the generators) submitted with
   ``dagster job backfill``: the daemon dequeues the runs within the queue limits and the launcher sends each
   to Redis, where a worker runs it. Every partition lands once (rows and billed totals equal the generators'
   expected totals, one restatement-log entry and one Delta commit each, no duplicate ``x_RowId``), both
   workers ran some, and the queue limits held (sampled from the run storage while it ran).
2. ``kill -9`` of the worker running a 13th partition (one run, launched with ``dagster job launch``): run
   monitoring detects it (its maximum run time: a dead worker's Celery task stays STARTED, see
   deploy/vm/README.md), the run retry sends it to the other worker and the partition lands once.

The wall time of the backfill and the recovery time are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.e2e.conftest import ROOT
from tests.integration.conftest_objectstore import child_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BIN = Path(sys.executable).parent
WORKSPACE = str(ROOT / "workspace.yaml")
DEPLOY_VM = ROOT / "deploy" / "vm"
JOB = "focus_pipeline"
GENERATED = {"aws-cur": "focus-demo", "gcp": "gcp-billing", "oci": "oci-cost"}  # generator → its source name
BACKFILLED_PERIODS = ("2024-01", "2024-02", "2024-03", "2024-04")
KILLED_PARTITION = "2024-05|focus-demo"
WORKERS = ("worker1", "worker2")
MAX_CONCURRENT_RUNS = len(WORKERS)
PERIOD_TAG = "dagster/partition/billing_period"
TASK_ID_TAG = "dagster-celery/task_id"
TRIGGER_TAG = "focus/trigger"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
RUNNING = {"STARTING", "STARTED"}


def generate_landing(folder: Path) -> pl.DataFrame:
    """Five months of three sources; their delivered rows and billed totals per (source, period, account, currency)."""
    for generator in GENERATED:
        subprocess.run([str(BIN / "focus-platform"), "generate", generator, "--rows", "3000", "--months", "5",
                        "--start-period", "2024-01", "--seed", "14", "--out", str(folder)],
                       check=True, capture_output=True)
    frames = []
    for source in GENERATED.values():
        totals = json.loads((folder / source / "expected_totals.json").read_text())["totals"]
        frames.append(pl.DataFrame({
            "x_Source": [source] * len(totals),
            "x_BillingPeriod": [t["billing_period"] for t in totals],
            "BillingAccountId": [t["billing_account_id"] for t in totals],
            "BillingCurrency": [t["currency"] for t in totals],
            "billed": [Decimal(t["billed_cost"]) for t in totals],
            "rows": [t["rows"] for t in totals],  # rows as delivered
        }, schema_overrides={"billed": pl.Decimal(38, 12), "rows": pl.UInt32}))
    return pl.concat(frames)


def instance_config() -> str:
    """deploy/vm/dagster.yaml with the test's short polling intervals."""
    config = yaml.safe_load((DEPLOY_VM / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    return yaml.safe_dump(config)


def stop_sensors(instance) -> None:
    """The test launches its own runs: the discovery sensors and automation would launch more."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([WORKSPACE])) as context:
        location = context.create_request_context().get_code_location("focus_platform")
        for repository in location.get_repositories().values():
            for sensor in repository.get_sensors():
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)


def dagster_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([str(BIN / "dagster"), "job", *args, "-j", JOB, "-w", WORKSPACE], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


class RunWatch:
    """Samples the run storage: the most runs STARTING or STARTED at once, overall and per billing period."""

    def __init__(self, instance):
        self.instance = instance
        self.most_running = 0
        self.most_running_per_period = 0

    def records(self, tags: dict[str, str]):
        from dagster import RunsFilter

        return self.instance.get_run_records(RunsFilter(tags=tags))

    def sample(self, tags: dict[str, str]):
        records = self.records(tags)
        running = [r.dagster_run for r in records if r.dagster_run.status.value in RUNNING]
        self.most_running = max(self.most_running, len(running))
        per_period = Counter(run.tags.get(PERIOD_TAG) for run in running)
        self.most_running_per_period = max([self.most_running_per_period, *per_period.values()])
        return records

    def wait(self, tags: dict[str, str], done, timeout: float, what: str):
        deadline = time.time() + timeout
        while time.time() < deadline:
            records = self.sample(tags)
            if done(records):
                return records
            time.sleep(0.3)
        statuses = {r.dagster_run.run_id: r.dagster_run.status.value for r in self.records(tags)}
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {statuses}")


def why_failed(instance, runs) -> list[str]:
    """Each failed run's partition and the messages of its step and run failures."""
    from dagster import DagsterEventType

    kinds = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    return [f"{run.tags.get('dagster/partition')}: " + " | ".join(
        str(e.dagster_event.event_specific_data.error.message if getattr(e.dagster_event.event_specific_data,
                                                                          "error", None) else e.message)
        for e in instance.all_logs(run.run_id, of_type=kinds)) for run in runs if run.status.value != "SUCCESS"]


def all_finished(count: int):
    return lambda records: len(records) == count and all(r.dagster_run.status.value in FINISHED for r in records)


def most_overlapping(records, key=lambda run: "all") -> int:
    """The most runs whose [start, end] intervals overlap, within one key."""
    edges = sorted((t, step, key(r.dagster_run)) for r in records
                   for t, step in ((r.start_time, 1), (r.end_time, -1)))
    open_runs, most = Counter(), 0
    for _, step, k in edges:
        open_runs[k] += step
        most = max(most, open_runs[k])
    return most


def worker_of(task_id: str, processes) -> str | None:
    """The worker whose log says it received the Celery task."""
    return next((w for w in WORKERS if f"execute_job[{task_id}] received" in processes.log(w).read_text()), None)


def wait_for_log(path: Path, text: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.3)
    raise AssertionError(f"{path.name} never said {text!r}:\n{path.read_text()[-3000:]}")


def raw_rows(warehouse) -> pl.DataFrame:
    """Rows per (source, period) in the raw tables."""
    from focus_platform.sources import RAW_TABLES

    return pl.concat([warehouse.scan(table).group_by("x_Source", "x_BillingPeriod").agg(pl.len().alias("rows"))
                      .collect() for table in RAW_TABLES if warehouse.exists(table)])


def test_backfill_and_a_killed_worker_land_every_partition_once(services, s3, processes, tmp_path, monkeypatch):
    from dagster import DagsterEventType, DagsterInstance

    from focus_platform.warehouse.catalog import FOCUS_TABLE, QUARANTINE_TABLE
    from focus_platform.warehouse.delta import Warehouse
    from focus_platform.warehouse.restatements import read_log

    expected = generate_landing(tmp_path / "landing")
    bucket = s3.new_bucket()
    s3.upload_tree(tmp_path / "landing", bucket, "landing")
    home = services.folder / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_config())
    settings = {**s3.env, "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": services.postgres_url,
                "DAGSTER_CELERY_BROKER_URL": services.redis_url, "DAGSTER_MAX_CONCURRENT_RUNS": str(MAX_CONCURRENT_RUNS),
                "FOCUS_LANDING_ROOT": f"s3://{bucket}/landing", "FOCUS_WAREHOUSE_ROOT": f"s3://{bucket}/warehouse",
                "FOCUS_RETENTION": "keep"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    env = child_env(settings)
    env["PYTHONPATH"] = str(DEPLOY_VM) + os.pathsep + env["PYTHONPATH"]  # the workers' dagster_celery_config

    instance = DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("export_source", list(GENERATED.values()))
    stop_sensors(instance)
    for worker in WORKERS:
        processes.start(worker, [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "-n", f"{worker}@%h",
                                 "-Q", "dagster", "--pool", "solo", "-l", "INFO"], env)
    processes.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", WORKSPACE], env)
    for worker in WORKERS:
        wait_for_log(processes.log(worker), " ready.", 120)

    # 1. the backfill
    partitions = [f"{period}|{source}" for period in BACKFILLED_PERIODS for source in GENERATED.values()]
    dagster_cli(env, "backfill", "--partitions", ",".join(partitions), "--noprompt",
                "--tags", json.dumps({TRIGGER_TAG: "e2e-backfill"}))
    watch = RunWatch(instance)
    records = watch.wait({TRIGGER_TAG: "e2e-backfill"}, all_finished(len(partitions)), 600, "the backfill")
    runs = [r.dagster_run for r in records]
    assert {run.status.value for run in runs} == {"SUCCESS"}, why_failed(instance, runs)
    assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(partitions)
    backfill_wall = max(r.end_time for r in records) - min(r.create_timestamp.timestamp() for r in records)
    longest_run = max(r.end_time - r.start_time for r in records)
    ran_on = Counter(worker_of(run.tags[TASK_ID_TAG], processes) for run in runs)
    assert set(ran_on) == set(WORKERS), f"runs per worker: {ran_on}"
    assert watch.most_running <= MAX_CONCURRENT_RUNS and watch.most_running_per_period <= 1, vars(watch)
    assert most_overlapping(records) <= MAX_CONCURRENT_RUNS
    assert most_overlapping(records, lambda run: run.tags[PERIOD_TAG]) == 1

    # 2. kill -9 the worker running a 13th partition, once its step runs. One run launched as the delivery
    # sensor launches them, not a backfill: the retry daemon skips the runs of a finished backfill, and
    # `dagster job backfill` records its backfill as finished once the runs are queued (deploy/vm/README.md).
    max_runtime = round(max(20.0, 2 * longest_run))
    period, source = KILLED_PARTITION.split("|")
    dagster_cli(env, "launch", "--tags", json.dumps({
        TRIGGER_TAG: "e2e-kill", "dagster/partition": KILLED_PARTITION, PERIOD_TAG: period,
        "dagster/partition/export_source": source, "dagster/max_runtime": str(max_runtime)}))
    [killed] = watch.wait({TRIGGER_TAG: "e2e-kill"}, lambda rs: len(rs) == 1 and rs[0].dagster_run.status.value
                          == "STARTED", 120, "the run to start")
    run_id = killed.dagster_run.run_id
    deadline = time.time() + 60
    while not instance.all_logs(run_id, of_type=DagsterEventType.STEP_START) and time.time() < deadline:
        time.sleep(0.2)
    victim = worker_of(instance.get_run_by_id(run_id).tags[TASK_ID_TAG], processes)
    assert victim is not None
    killed_at = time.time()
    processes.kill(victim)
    [retry] = watch.wait({"dagster/parent_run_id": run_id}, all_finished(1), max_runtime + 300, "the retry")
    failed = instance.get_run_record_by_id(run_id)
    assert failed.dagster_run.status.value == "FAILURE" and retry.dagster_run.status.value == "SUCCESS"
    assert worker_of(retry.dagster_run.tags[TASK_ID_TAG], processes) == next(w for w in WORKERS if w != victim)
    detected, retried = failed.end_time - killed_at, retry.create_timestamp.timestamp() - killed_at
    recovered = retry.end_time - killed_at

    # every partition landed once, as delivered
    all_partitions = {*partitions, KILLED_PARTITION}
    warehouse = Warehouse(f"s3://{bucket}/warehouse")
    expected = expected.filter(pl.concat_str("x_BillingPeriod", pl.lit("|"), "x_Source").is_in(all_partitions))
    partition = ["x_Source", "x_BillingPeriod"]
    delivered = expected.group_by(partition).agg(pl.col("rows").sum())
    assert raw_rows(warehouse).sort(partition).equals(delivered.sort(partition))
    keys = [*partition, "BillingAccountId", "BillingCurrency"]
    focus = warehouse.scan(FOCUS_TABLE).select(*keys, "BilledCost", "x_RowId").collect()
    billed = focus.group_by(keys).agg(pl.col("BilledCost").sum().alias("billed")).sort(keys)
    assert warehouse.scan(QUARANTINE_TABLE).select(pl.len()).collect().item() == 0  # all billed in focus_costs
    assert billed.equals(expected.select(*keys, "billed").sort(keys)), (billed, expected)
    assert focus["x_RowId"].n_unique() == focus.height
    log = read_log(warehouse, table=FOCUS_TABLE)
    assert sorted(f"{p}|{s}" for p, s in log.select("x_BillingPeriod", "x_Source").iter_rows()) == sorted(all_partitions)
    commits = [c.get("operation") for c in warehouse.history(FOCUS_TABLE)]
    assert log["version_after"].n_unique() == len(commits) == len(all_partitions), commits  # one commit each

    print(f"\nbackfill: {len(partitions)} partitions on {len(WORKERS)} workers in {backfill_wall:.1f} s "
          f"(runs per worker {dict(ran_on)}, longest run {longest_run:.1f} s, most runs at once "
          f"{watch.most_running}); kill -9 of {victim}: run failed by run monitoring after {detected:.1f} s "
          f"(max runtime {max_runtime} s), retry created after {retried:.1f} s, landed after {recovered:.1f} s")
