"""The forecast domain through Dagster on generated spend (``generate.spend``: four series, June to mid-October 2026,
one usage spike injected) written as focus_costs + cost_allocations in a real warehouse: spend_forecasts and
forecast_backtests (backtests reused when nothing changed), budget_status with WARN and ERROR budgets, cost_anomalies
naming the spike as a new incident, policy_actions recording would-act in shadow and POSTing to a real HTTP server on
127.0.0.1 in enforce, failed checks and runs of the instance as signals; the automation (following
cost_allocations, not every forecast refresh) and the daily schedule; and the run-failure alert: a failed run is
paged through the notifier with its job, run id, error and link, and a dead endpoint never fails the sensor."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform.allocation import engine, rules
from focus_platform.defs.assets import allocate, forecast
from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.assets.operate import run_failure_alert
from focus_platform.defs.assets.reconcile import RECONCILE_ASSETS
from focus_platform.defs.resources import (
    LandingZoneResource,
    NotifierResource,
    WarehouseResource,
)
from focus_platform.generate.spend import seasonal_spend
from focus_platform.periods import PartitionKey
from focus_platform.spec.columns import focus_schema
from focus_platform.warehouse.catalog import (
    ALLOCATIONS_TABLE,
    BUDGET_STATUS_TABLE,
    COST_ANOMALIES_TABLE,
    FOCUS_TABLE,
    FORECAST_BACKTESTS_TABLE,
    POLICY_ACTIONS_TABLE,
    SPEND_FORECASTS_TABLE,
)
from focus_platform.warehouse.delta import Warehouse

UI = "http://dagster.test:3000"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SOURCE = "generated"
PERIOD = "2026-10"
LAST_DAY = date(2026, 10, 18)  # the last day with spend: the default as_of
SPIKE_DAY = date(2026, 10, 12)
SPIKED = ("owner-00", "service-00000")
GROUP_ASSETS = {SPEND_FORECASTS_TABLE, FORECAST_BACKTESTS_TABLE, BUDGET_STATUS_TABLE, COST_ANOMALIES_TABLE,
                POLICY_ACTIONS_TABLE}


class Webhook:
    """An HTTP endpoint on 127.0.0.1 that records each POSTed JSON body and answers ``status``."""

    def __init__(self, status: int = 200):
        received, self.status = [], status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the standard library's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def endpoints_yaml(url: str, *, retries: int = 0) -> str:
    return (f"endpoints:\n  - name: oncall\n    url: {url}\n    format: http\n    timeout_seconds: 2\n"
            f"    retries: {retries}\n    backoff_seconds: 0.01\nroutes:\n  page: [oncall]\n  ticket: [oncall]\n"
            f"ui_url: {UI}\n")


def notifier_for(tmp_path, text: str | None) -> NotifierResource:
    land = tmp_path / "landing"
    (land / "alerts").mkdir(parents=True, exist_ok=True)
    if text is not None:
        (land / "alerts" / "endpoints.yaml").write_text(text)
    return NotifierResource(landing_zone=LandingZoneResource(root=str(land)))


# ---------------------------------------------------------------------------------------------
# run_failure_alert
# ---------------------------------------------------------------------------------------------
@dg.op
def breaks():
    raise RuntimeError("the disk is full")


@dg.job(name="nightly")
def nightly():
    breaks()


@pytest.fixture(scope="module")
def failed_run():
    instance = dg.DagsterInstance.ephemeral()
    result = nightly.execute_in_process(instance=instance, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return instance, result.dagster_run, failure


def alert_on(failed_run, notifier: NotifierResource) -> None:
    """run_failure_alert evaluated on the failed run with ``notifier``."""
    instance, run, failure = failed_run
    with dg.build_run_status_sensor_context(sensor_name=run_failure_alert.name, dagster_instance=instance,
                                            dagster_run=run, dagster_event=failure,
                                            resources={"notifier": notifier}) as context:
        run_failure_alert(context.for_run_failure())


def test_a_failed_run_is_paged_with_job_run_error_and_link(tmp_path, webhook, failed_run):
    alert_on(failed_run, notifier_for(tmp_path, endpoints_yaml(webhook.url)))
    run = failed_run[1]
    (sent,) = webhook.received
    assert sent["severity"] == "page" and sent["id"] == f"run-failure:{run.run_id}"
    assert sent["title"] == "run of nightly failed"
    assert run.run_id in sent["summary"] and "breaks: RuntimeError: the disk is full" in sent["summary"]
    assert sent["link"] == f"{UI}/runs/{run.run_id}"


def test_a_dead_endpoint_or_no_endpoints_never_fail_the_sensor(tmp_path, failed_run):
    dead = Webhook(status=503)
    try:
        alert_on(failed_run, notifier_for(tmp_path, endpoints_yaml(dead.url, retries=1)))  # logged, not raised
        assert len(dead.received) == 2  # the first attempt and one retry
    finally:
        dead.close()
    alert_on(failed_run, notifier_for(tmp_path / "none", None))  # no endpoints file: nothing routed
    alert_on(failed_run, notifier_for(tmp_path / "bad", "endpoints: [{name: x}]\n"))  # unusable file: logged


# ---------------------------------------------------------------------------------------------
# A warehouse of generated spend
# ---------------------------------------------------------------------------------------------
def with_spike(spend: pl.DataFrame) -> pl.DataFrame:
    """One series' usage on SPIKE_DAY multiplied by 8."""
    hit = ((pl.col("Owner") == SPIKED[0]) & (pl.col("ServiceName") == SPIKED[1]) & (pl.col("Date") == SPIKE_DAY)
           & (pl.col("SpendKind") == "usage"))
    return spend.with_columns([pl.when(hit).then(pl.col(c) * 8).otherwise(pl.col(c)).cast(spend.schema[c]).alias(c)
                               for c in ("BilledCost", "EffectiveCost")])


def shaped(frame: pl.DataFrame, schema) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                         for c, t in schema.items()])


def publish_spend(wh: Warehouse, spend: pl.DataFrame) -> None:
    """SPEND_ROWS written back as the focus_costs and cost_allocations rows they are read from (one allocation row
    per FOCUS row, the owner on the default rules' dimension), through the write path."""
    start = pl.col("Date").cast(pl.Datetime("us", "UTC"))
    rows = spend.with_columns(ChargePeriodStart=start, x_Source=pl.lit(SOURCE))
    focus = shaped(rows.with_columns(ChargePeriodEnd=start + pl.duration(days=1), x_SourceFile=pl.lit("generated"),
                                     x_SourceRow=pl.int_range(1, pl.len() + 1)), focus_schema())
    allocations = shaped(rows.with_columns(
        owner=pl.col("Owner"), x_AllocatedBilledCost=pl.col("BilledCost"),
        x_AllocatedEffectiveCost=pl.col("EffectiveCost"), x_AllocationShare=pl.lit(1), x_AllocationWeight=pl.lit(1),
        x_AllocationRuleId=pl.lit("tag"), x_AllocationMethod=pl.lit("direct"), x_RulesVersion=pl.lit("generated")),
        engine.allocation_schema(rules.default_rules()))
    for (period,), part in focus.partition_by("x_BillingPeriod", as_dict=True).items():
        wh.publish(FOCUS_TABLE, part.lazy(), PartitionKey.of(period, SOURCE))
    for (period,), part in allocations.partition_by("x_BillingPeriod", as_dict=True).items():
        wh.publish(ALLOCATIONS_TABLE, part.lazy(), PartitionKey.of(period))


@pytest.fixture(scope="module")
def zone(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    wh = Warehouse(str(root / "warehouse"))
    publish_spend(wh, with_spike(seasonal_spend(4, date(2026, 6, 1), 140, owners=2, seed=3)))
    land = root / "landing"
    land.mkdir()
    landing = LandingZoneResource(root=str(land))
    return type("Zone", (), {"wh": wh, "land": land, "instance": dg.DagsterInstance.ephemeral(), "resources": {
        "landing_zone": landing, "warehouse": WarehouseResource(root=wh.root),
        "notifier": NotifierResource(landing_zone=landing)}})


def write(zone, key: str, text: str | None) -> None:
    path = Path(zone.land) / key
    if text is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def run(zone, *selection: str, partition: str | None = PERIOD):
    return dg.materialize(forecast.FORECAST_ASSETS, partition_key=partition, instance=zone.instance,
                          resources=zone.resources, run_config=QUIET, selection=list(selection), raise_on_error=False)


def checks_of(result, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in (ev.event_specific_data for ev in result.all_events
                                      if ev.event_type_value == "ASSET_CHECK_EVALUATION")
            if e.asset_key.to_user_string() == asset}


def metadata_of(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def table(zone, name: str) -> pl.DataFrame:
    return zone.wh.scan(name).collect()


# ---------------------------------------------------------------------------------------------
# spend_forecasts + forecast_backtests
# ---------------------------------------------------------------------------------------------
def test_spend_forecasts_and_backtests_then_backtests_reused(zone):
    result = run(zone, SPEND_FORECASTS_TABLE, FORECAST_BACKTESTS_TABLE, partition=None)
    assert result.success
    forecasts, backtests = table(zone, SPEND_FORECASTS_TABLE), table(zone, FORECAST_BACKTESTS_TABLE)
    assert set(forecasts["x_ForecastDate"]) == {LAST_DAY}  # the last day with spend, not the clock
    assert set(forecasts["Grain"]) == {"day", "month"} and set(forecasts["SpendKind"]) == {"usage", "fee", "total"}
    assert forecasts.filter(pl.col("Grain") == "day")["Date"].min() == date(2026, 10, 19)
    assert forecasts["Forecast"].dtype == pl.Decimal(38, 12)
    assert backtests.height == 4 and set(backtests["Owner"]) == {"owner-00", "owner-01"}
    first = metadata_of(result, SPEND_FORECASTS_TABLE)
    assert first["as_of"] == str(LAST_DAY) and first["owner_dimension"] == "owner" and first["fingerprint"]
    assert all(c.passed for c in checks_of(result, SPEND_FORECASTS_TABLE).values())

    again = run(zone, SPEND_FORECASTS_TABLE, FORECAST_BACKTESTS_TABLE, partition=None)
    assert again.success
    assert table(zone, FORECAST_BACKTESTS_TABLE).equals(backtests)  # nothing changed: the choices reused
    reused = metadata_of(again, SPEND_FORECASTS_TABLE)
    assert (first["backtested"], reused["backtested"], reused["reused"]) == (4, 0, 4)
    assert reused["fingerprint"] == first["fingerprint"]


# ---------------------------------------------------------------------------------------------
# budget_status
# ---------------------------------------------------------------------------------------------
def budgets_yaml(**amounts: str) -> str:
    return "budgets:\n" + "".join(f'  - {{owner: {owner}, period: {PERIOD}, amount: "{amount}", currency: USD}}\n'
                                   for owner, amount in amounts.items())


def test_budget_status_errors_and_warns_by_the_worst_budget(zone):
    assert run(zone, SPEND_FORECASTS_TABLE, FORECAST_BACKTESTS_TABLE, partition=None).success
    write(zone, "budgets/teams.yaml", budgets_yaml(**{"owner-00": "100", "owner-01": "1000000"}))
    result = run(zone, BUDGET_STATUS_TABLE)
    assert result.success
    status = table(zone, BUDGET_STATUS_TABLE).sort("Owner")
    assert status["Status"].to_list() == ["ERROR", "OK"] and set(status["x_AsOf"]) == {LAST_DAY}
    burn = checks_of(result, BUDGET_STATUS_TABLE)["budget_burn"]
    assert not burn.passed and burn.severity == dg.AssetCheckSeverity.ERROR
    assert burn.metadata["page_within_24h"].value == 1  # owner-00 crossed its budget long before as_of
    assert "owner-00" in burn.metadata["budgets_over"].value

    projected = status.filter(pl.col("Owner") == "owner-01")["ForecastAtPeriodEnd"].item()
    warn_at = (projected / Decimal("1.1")).quantize(Decimal("0.01"))  # projected 110 %: over, under 120 %
    write(zone, "budgets/teams.yaml", budgets_yaml(**{"owner-01": str(warn_at)}))
    result = run(zone, BUDGET_STATUS_TABLE)
    assert table(zone, BUDGET_STATUS_TABLE)["Status"].to_list() == ["WARN"]
    burn = checks_of(result, BUDGET_STATUS_TABLE)["budget_burn"]
    assert not burn.passed and burn.severity == dg.AssetCheckSeverity.WARN
    assert burn.metadata["service_level"].value == "M13"


# ---------------------------------------------------------------------------------------------
# cost_anomalies
# ---------------------------------------------------------------------------------------------
def test_cost_anomalies_name_the_spike_as_a_new_incident_once(zone):
    write(zone, "alerts/endpoints.yaml", f"ui_url: {UI}\n")
    result = run(zone, COST_ANOMALIES_TABLE)
    assert result.success
    anomalies = table(zone, COST_ANOMALIES_TABLE)
    spike = anomalies.filter((pl.col("Owner") == SPIKED[0]) & (pl.col("ServiceName") == SPIKED[1]))
    assert spike.filter(pl.col("Date") == SPIKE_DAY)["Direction"].to_list() == ["up"]
    new = checks_of(result, COST_ANOMALIES_TABLE)["new_anomalies"]
    assert not new.passed and new.severity == dg.AssetCheckSeverity.WARN
    named = new.metadata["new"].value
    assert SPIKED[0] in named and spike["IncidentId"][0] in named
    assert f"{UI}/assets/{COST_ANOMALIES_TABLE}?view=partitions&partition={PERIOD}" in named

    again = checks_of(run(zone, COST_ANOMALIES_TABLE), COST_ANOMALIES_TABLE)["new_anomalies"]
    assert again.passed  # the same incident (same id) is not new any more
    write(zone, "alerts/endpoints.yaml", None)


# ---------------------------------------------------------------------------------------------
# policy_actions
# ---------------------------------------------------------------------------------------------
def policy(mode: str, signal: str = "anomaly") -> str:
    return ("policies:\n  - id: ticket-anomaly\n    when: {signal: " + signal + "}\n    action: ticket\n"
            f"    severity: ticket\n    endpoint: oncall\n    mode: {mode}\n")


def test_policy_actions_shadow_records_and_enforce_posts(zone, webhook):
    assert run(zone, COST_ANOMALIES_TABLE).success
    write(zone, "alerts/endpoints.yaml", endpoints_yaml(webhook.url))
    write(zone, "policies/anomalies.yaml", policy("shadow"))
    assert run(zone, POLICY_ACTIONS_TABLE, partition=None).success
    shadow = table(zone, POLICY_ACTIONS_TABLE)
    assert set(shadow["Outcome"]) == {"would-act"} and not webhook.received
    incident = table(zone, COST_ANOMALIES_TABLE).filter(
        (pl.col("Owner") == SPIKED[0]) & (pl.col("Date") == SPIKE_DAY))["IncidentId"].item()
    assert incident in set(shadow["SignalId"])

    write(zone, "policies/anomalies.yaml", policy("enforce").replace("ticket-anomaly", "ticket-anomaly-live"))
    result = run(zone, POLICY_ACTIONS_TABLE, partition=None)
    assert result.success
    live = table(zone, POLICY_ACTIONS_TABLE).filter(pl.col("PolicyId") == "ticket-anomaly-live")
    assert set(live["Outcome"]) == {"acted"} and set(live["HttpStatus"]) == {200}
    sent = next(b for b in webhook.received if b["id"] == f"ticket-anomaly-live/{incident}")
    assert sent["owner"] == SPIKED[0] and Decimal(sent["amount"]) > 0 and sent["severity"] == "ticket"
    assert sent["link"] == f"{UI}/assets/{COST_ANOMALIES_TABLE}?view=partitions&partition={PERIOD}"
    assert table(zone, POLICY_ACTIONS_TABLE).height == shadow.height + live.height  # appended, not replaced
    assert "ticket-anomaly-live" in metadata_of(result, POLICY_ACTIONS_TABLE)["M6_action_rates"]

    assert run(zone, POLICY_ACTIONS_TABLE, partition=None).success  # one incident, one action
    latest = table(zone, POLICY_ACTIONS_TABLE).filter(pl.col("x_EvaluatedAt") == pl.col("x_EvaluatedAt").max())
    assert set(latest.filter(pl.col("PolicyId") == "ticket-anomaly-live")["Outcome"]) == {"duplicate"}
    assert len(webhook.received) == live.height
    write(zone, "policies/anomalies.yaml", None)
    write(zone, "alerts/endpoints.yaml", None)


def test_failed_checks_and_runs_of_the_instance_are_signals(zone):
    coverage = dg.AssetCheckKey(dg.AssetKey(ALLOCATIONS_TABLE), "allocation_coverage")
    zone.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=coverage.asset_key, check_name=coverage.name, passed=False, severity=dg.AssetCheckSeverity.WARN))
    failed = nightly.execute_in_process(instance=zone.instance, raise_on_error=False).dagster_run
    write(zone, "policies/checks.yaml", policy("shadow", "check").replace("ticket-anomaly", "ticket-checks")
          + "  - {id: page-runs, when: {signal: run_failure}, action: notify, severity: page, mode: shadow}\n")
    assert run(zone, POLICY_ACTIONS_TABLE, partition=None).success
    rows = table(zone, POLICY_ACTIONS_TABLE)
    checks = rows.filter(pl.col("PolicyId") == "ticket-checks")
    assert checks["Outcome"].to_list() == ["would-act"]
    assert checks["SignalId"].item().startswith(f"check:{ALLOCATIONS_TABLE}:allocation_coverage:")
    runs = rows.filter(pl.col("PolicyId") == "page-runs")
    assert runs.select("SignalId", "Outcome").rows() == [(f"run_failure:{failed.run_id}", "would-act")]
    write(zone, "policies/checks.yaml", None)


def test_the_daily_schedule_refreshes_the_open_month_once_it_is_allocated(zone):
    def evaluate(moment: datetime):
        with dg.build_schedule_context(resources={"warehouse": zone.resources["warehouse"]},
                                       scheduled_execution_time=moment) as context:
            return forecast.daily_forecasts(context)

    request = evaluate(datetime(2026, 10, 19, 7, tzinfo=UTC))
    assert (request.partition_key, request.run_key) == (PERIOD, "daily_forecasts|2026-10-19")
    assert "has no partition 2026-11" in evaluate(datetime(2026, 11, 1, 7, tzinfo=UTC)).skip_message


def test_automation_follows_the_allocations_not_every_forecast_refresh(zone):
    defs = dg.Definitions(assets=[*INGEST_ASSETS, *RECONCILE_ASSETS, *allocate.ALLOCATE_ASSETS,
                                  *forecast.FORECAST_ASSETS], resources=zone.resources)
    instance, cursor = dg.DagsterInstance.ephemeral(), None

    def after(*updated: tuple[str, str | None]) -> dict[str, list[str]]:
        """What the automation requests in the forecast group once ``updated`` (asset, partition) are materialized."""
        nonlocal cursor
        for asset, partition in updated:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=partition))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor,
                                                   evaluation_time=datetime(2026, 10, 20, 6, tzinfo=UTC))
        cursor = result.cursor
        return {r.key.to_user_string(): sorted(k.partition_key or "" for k in
                                                r.true_subset.expensively_compute_asset_partitions())
                for r in result.results if r.true_subset.size and r.key.to_user_string() in GROUP_ASSETS}

    assert after() == {}
    assert after((ALLOCATIONS_TABLE, PERIOD)) == {SPEND_FORECASTS_TABLE: [""], FORECAST_BACKTESTS_TABLE: [""],
                                                  BUDGET_STATUS_TABLE: [PERIOD], COST_ANOMALIES_TABLE: [PERIOD]}
    assert after((SPEND_FORECASTS_TABLE, None), (FORECAST_BACKTESTS_TABLE, None)) == {}  # not every budget period
    assert after((BUDGET_STATUS_TABLE, PERIOD)) == {POLICY_ACTIONS_TABLE: [""]}
    assert after(("exchange_rates", None)) == {SPEND_FORECASTS_TABLE: [""]}


def test_alert_severity_routes_unowned_spikes_and_imminent_overruns_to_the_pager():
    """page: an upward anomaly of the unallocated owner, a budget projected over within a day; ticket: other
    anomalies and failed checks (mapping failures, drift)."""
    from focus_platform.anomalies import COST_ANOMALIES

    def anomaly(incident: str, owner: str, delta: str) -> dict:
        return {"Date": date(2026, 10, 5), "x_BillingPeriod": "2026-10", "Owner": owner, "ServiceName": "EC2",
                "BillingAccountId": "1", "BillingCurrency": "USD", "Expected": Decimal(1), "Actual": Decimal(1),
                "Delta": Decimal(delta), "Score": 9.0, "Direction": "up" if Decimal(delta) > 0 else "down",
                "IncidentId": incident, "IncidentStart": date(2026, 10, 5), "Status": "raised", "x_Reason": "",
                "TopContributors": "[]"}

    rows = [anomaly("a", "unallocated", "500"), anomaly("b", "unallocated", "-500"), anomaly("c", "web", "900")]
    frame = pl.DataFrame(rows, schema=COST_ANOMALIES, strict=False)
    keys = ("Owner", "ServiceName", "BillingAccountId", "BillingCurrency")
    signals = forecast.anomaly_signals(frame, keys, "http://ui")
    assert dict(signals.select("SignalId", "Severity").iter_rows()) == {"a": "page", "b": "ticket", "c": "ticket"}
    assert set(forecast.CHECK_SEVERITY.values()) == {"ticket"}
