"""Schedules and sensors as the Dagster UI sees them: the webserver's GraphQL API over the code location
(``focus_platform.definitions:defs`` loaded in a code server, as ``dg dev`` does) on a fresh instance.
Every schedule and sensor is listed and running by default — nothing to switch on by hand."""

from __future__ import annotations

import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_graphql.test.utils import execute_dagster_graphql

QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name cronSchedule executionTimezone pipelineName scheduleState { status } }
  sensors { name sensorType sensorState { status } } } } } }"""


def test_the_ui_lists_every_schedule_and_sensor_running_by_default():
    target = ModuleTarget(module_name="focus_platform.definitions", attribute="defs", working_directory=None,
                          location_name="focus_platform")
    with dg.instance_for_test() as instance, WorkspaceProcessContext(instance, target) as workspace:
        result = execute_dagster_graphql(workspace.create_request_context(), QUERY)
    assert result.errors is None, result.errors
    [repository] = result.data["repositoriesOrError"]["nodes"]
    schedules = {s["name"]: (s["cronSchedule"], s["executionTimezone"], s["pipelineName"], s["scheduleState"]["status"])
                 for s in repository["schedules"]}
    assert schedules == {
        "daily_refresh": ("0 5 * * *", "UTC", "focus_pipeline", "RUNNING"),
        "daily_rates": ("0 4 * * *", "UTC", "invoices_and_rates", "RUNNING"),
        "month_close": ("0 6 5 * *", "UTC", "reconciliation", "RUNNING"),
        "daily_retention": ("0 3 * * *", "UTC", "retention", "RUNNING"),
        "daily_service_levels": ("30 3 * * *", "UTC", "service_levels", "RUNNING"),
        "daily_forecasts": ("0 7 * * *", "UTC", "forecasts", "RUNNING"),
    }
    sensors = {s["name"]: (s["sensorType"], s["sensorState"]["status"]) for s in repository["sensors"]}
    assert sensors == {"automation": ("AUTO_MATERIALIZE", "RUNNING"), "delivery_sensor": ("STANDARD", "RUNNING"),
                       "invoice_sensor": ("STANDARD", "RUNNING"), "invoices_changed_sensor": ("ASSET", "RUNNING"),
                       "run_failure_alert": ("RUN_STATUS", "RUNNING"),
                       "account_catalog_sensor": ("STANDARD", "RUNNING"),
                       "allocation_inputs_sensor": ("STANDARD", "RUNNING")}
