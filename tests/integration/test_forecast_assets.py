"""The forecast domain through Dagster, and the run-failure alert: a failed run is paged through the notifier (a
real HTTP server on 127.0.0.1) with its job, run id, error and link, and a dead endpoint never fails the sensor."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from focus_platform.defs.assets.operate import run_failure_alert
from focus_platform.defs.resources import LandingZoneResource, NotifierResource

UI = "http://dagster.test:3000"


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
