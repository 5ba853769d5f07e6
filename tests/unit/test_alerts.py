"""Alerts: the endpoints file (one-line errors, ${ENV} URLs), the payloads a real HTTP server on 127.0.0.1
receives (Slack shape, generic shape), routing by severity, one POST per incident, and deliveries that retry
timeouts, refused connections, 5xx and 429 with backoff, stop at other 4xx, and never raise."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import focus_platform.alerts
from focus_platform.alerts import (
    Alert,
    AlertConfig,
    AlertConfigError,
    Endpoint,
    Notifier,
    asset_link,
    deliver,
    payload,
    read_alert_config,
    route,
)
from tests.helpers_imports import imported_names

FIXTURE = Path(__file__).parents[1] / "fixtures" / "alerts" / "endpoints.yaml"
TIMEOUT = 0.2  # seconds per attempt in these tests


# ---------------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------------------------
class Hook:
    """A webhook receiver: answers each path from a script of answers (a status; "hang": no answer before the
    client's timeout; "drop": the connection closed without an answer; the last answer repeats; default 200) and records every request's path, headers and body."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.scripts: dict[str, list] = {}
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer(self, path: str, *answers) -> None:
        self.scripts[path] = list(answers)

    def bodies(self, path: str) -> list[dict]:
        return [request["body"] for request in self.requests if request["path"] == path]

    def _next_answer(self, path: str):
        script = self.scripts.get(path, [200])
        return script.pop(0) if len(script) > 1 else script[0]

    def _handler(self):
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                answer = hook._next_answer(self.path)
                if answer == "hang":
                    hook.stop.wait(5)
                    return
                if answer == "drop":
                    self.close_connection = True
                    return
                self.send_response(answer)
                if answer == 302:
                    self.send_header("Location", hook.url("/elsewhere"))
                text = b"ok" if answer < 300 else b"invalid_payload" if answer == 400 else b"no"
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def hook():
    receiver = Hook()
    receiver.thread.start()
    yield receiver
    receiver.stop.set()
    receiver.server.shutdown()
    receiver.server.server_close()


def endpoint(url: str, *, format: str = "http", retries: int = 2, backoff: float = 1.0) -> Endpoint:
    return Endpoint(name="hook", url=url, format=format, timeout_seconds=TIMEOUT, retries=retries,
                    backoff_seconds=backoff)


def alert(id: str = "budget:platform:2026-12", severity: str = "page", **fields) -> Alert:
    return Alert(**({
        "id": id, "severity": severity, "title": "platform projected 1,234.56 USD over its 2026-12 budget",
        "check": "budget_burn", "asset": "budget_status", "partition": "2026-12", "owner": "platform",
        "amount": Decimal("1234.560000000000"), "currency": "USD",
        "summary": "actual 9,000.00 of 12,000.00 USD on day 20; projected 13,234.56 USD",
        "link": asset_link("http://localhost:3000", "budget_status", "2026-12")} | fields))


def config_text(hook: Hook, *, ticket_retries: int = 0) -> bytes:
    return f"""
endpoints:
  - {{name: oncall, url: "{hook.url('/oncall')}", format: slack, timeout_seconds: {TIMEOUT}, retries: 0}}
  - {{name: tickets, url: "{hook.url('/tickets')}", format: http, timeout_seconds: {TIMEOUT},
      retries: {ticket_retries}, backoff_seconds: 0.01}}
routes:
  page: [oncall]
  ticket: [tickets]
ui_url: http://dagster.example.com:3000
""".encode()


# ---------------------------------------------------------------------------------------------
# Payloads received
# ---------------------------------------------------------------------------------------------
def test_slack_payload_received(hook):
    delivery = deliver(alert(), endpoint(hook.url("/slack"), format="slack"))
    assert (delivery.ok, delivery.attempts, delivery.status, delivery.error) == (True, 1, 200, None)
    [request] = hook.requests
    assert request["path"] == "/slack"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["body"]
    assert body["text"] == ("[PAGE] budget_burn · team platform · 1,234.56 USD · "
                            "<http://localhost:3000/assets/budget_status?view=partitions&partition=2026-12>")
    heading, details = body["blocks"]
    assert heading == {"type": "section", "text": {"type": "mrkdwn", "text": (
        "*[PAGE] platform projected 1,234.56 USD over its 2026-12 budget*\n"
        "actual 9,000.00 of 12,000.00 USD on day 20; projected 13,234.56 USD")}}
    assert details["type"] == "section"
    assert [field["type"] for field in details["fields"]] == ["mrkdwn"] * 5
    assert [field["text"] for field in details["fields"]] == [
        "*Check*\nbudget_burn", "*Owner*\nplatform", "*Amount*\n1,234.56 USD", "*Partition*\n2026-12",
        "*Link*\n<http://localhost:3000/assets/budget_status?view=partitions&partition=2026-12|budget_status>"]


def test_generic_payload_received(hook):
    assert deliver(alert(), endpoint(hook.url("/generic"))).ok
    [body] = hook.bodies("/generic")
    sent_at = datetime.fromisoformat(body.pop("sent_at"))
    assert sent_at.utcoffset().total_seconds() == 0
    assert body == {
        "version": 1, "id": "budget:platform:2026-12", "severity": "page",
        "title": "platform projected 1,234.56 USD over its 2026-12 budget", "check": "budget_burn",
        "asset": "budget_status", "partition": "2026-12", "owner": "platform",
        "amount": "1234.560000000000", "currency": "USD",
        "summary": "actual 9,000.00 of 12,000.00 USD on day 20; projected 13,234.56 USD",
        "link": "http://localhost:3000/assets/budget_status?view=partitions&partition=2026-12"}


def test_an_alert_without_money_or_owner_leaves_those_out():
    run_failure = alert(id="run:abc", check=None, owner=None, amount=None, currency=None, partition=None,
                        summary="", title="run abc of focus_job failed", link=None)
    body = payload(run_failure, "slack")
    assert body == {"text": "[PAGE] run abc of focus_job failed",
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                            "text": "*[PAGE] run abc of focus_job failed*"}}]}
    assert payload(run_failure, "http")["amount"] is None


def test_slack_text_is_escaped_and_amounts_rounded_for_people_only():
    body = payload(alert(owner="r&d <eu>", amount=Decimal("-1234567.125000000000"), currency="EUR"), "slack")
    assert body["text"].startswith("[PAGE] budget_burn · team r&amp;d &lt;eu&gt; · -1,234,567.12 EUR · <http")
    assert payload(alert(amount=Decimal("-1234567.125000000000")), "http")["amount"] == "-1234567.125000000000"
    assert payload(alert(amount=Decimal(7), currency="JPY"), "slack")["text"].split(" · ")[2] == "7 JPY"


def test_amounts_are_decimals_and_severities_known():
    with pytest.raises(TypeError, match="amount must be a Decimal, not float"):
        alert(amount=1234.56)
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        alert(severity="urgent")
    with pytest.raises(ValueError, match="unknown format 'teams'"):
        payload(alert(), "teams")


def test_asset_link_is_the_dagster_ui_asset_page():
    assert asset_link("http://localhost:3000/", "focus_costs") == "http://localhost:3000/assets/focus_costs"
    assert asset_link("https://dagster.example.com/ui", "finops/cost anomalies", "2026-12|aws") == (
        "https://dagster.example.com/ui/assets/finops/cost%20anomalies?view=partitions&partition=2026-12%7Caws")


# ---------------------------------------------------------------------------------------------
# Routing and dedupe
# ---------------------------------------------------------------------------------------------
def test_routing_by_severity(hook):
    config = read_alert_config([("alerts/endpoints.yaml", config_text(hook))])
    notifier = Notifier(config)
    [page] = notifier.send(alert(id="page-1", severity="page"))
    assert (page.endpoint, page.ok) == ("oncall", True)
    assert [r["path"] for r in hook.requests] == ["/oncall"]
    assert "blocks" in hook.bodies("/oncall")[0]

    [ticket] = notifier.send(alert(id="ticket-1", severity="ticket", check="sku_mapping_failure_rate"))
    assert (ticket.endpoint, ticket.ok) == ("tickets", True)
    assert [r["path"] for r in hook.requests] == ["/oncall", "/tickets"]
    assert hook.bodies("/tickets")[0]["check"] == "sku_mapping_failure_rate"

    assert notifier.send(alert(id="info-1", severity="info")) == []
    assert len(hook.requests) == 2


def test_one_incident_one_post(hook):
    notifier = Notifier(read_alert_config([("alerts/endpoints.yaml", config_text(hook))]))
    assert [d.ok for d in notifier.send(alert(id="incident-7"))] == [True]
    assert notifier.send(alert(id="incident-7", summary="the same incident, a day later")) == []
    assert len(hook.bodies("/oncall")) == 1

    already_sent = Notifier(notifier.config, delivered_ids={"incident-8"})
    assert already_sent.send(alert(id="incident-8")) == []
    assert len(hook.requests) == 1


def test_a_failed_delivery_is_tried_again_on_the_next_send(hook):
    hook.answer("/tickets", 503, 200)
    notifier = Notifier(read_alert_config([("alerts/endpoints.yaml", config_text(hook))]))
    [failed] = notifier.send(alert(id="ticket-9", severity="ticket"))
    assert (failed.ok, failed.attempts, failed.status) == (False, 1, 503)
    [sent] = notifier.send(alert(id="ticket-9", severity="ticket"))
    assert (sent.ok, sent.status) == (True, 200)
    assert notifier.send(alert(id="ticket-9", severity="ticket")) == []
    assert len(hook.bodies("/tickets")) == 2


# ---------------------------------------------------------------------------------------------
# Retries, backoff, failures (sleep injected: no test waits for a backoff)
# ---------------------------------------------------------------------------------------------
def test_500_twice_then_200_is_delivered_on_the_third_attempt(hook):
    hook.answer("/flaky", 500, 500, 200)
    waits = []
    delivery = deliver(alert(), endpoint(hook.url("/flaky"), retries=3, backoff=0.5), sleep=waits.append)
    assert (delivery.ok, delivery.attempts, delivery.status, delivery.error) == (True, 3, 200, None)
    assert waits == [0.5, 1.0]
    assert len(hook.bodies("/flaky")) == 3
    assert hook.bodies("/flaky")[0] == hook.bodies("/flaky")[2]


def test_always_500_gives_up_after_the_retries(hook):
    hook.answer("/down", 500)
    waits = []
    delivery = deliver(alert(), endpoint(hook.url("/down"), retries=3, backoff=1), sleep=waits.append)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 4, 500)
    assert delivery.error == "HTTP 500 Internal Server Error: no"
    assert waits == [1, 2, 4]
    assert len(hook.requests) == 4


def test_429_is_retried(hook):
    hook.answer("/busy", 429, 200)
    delivery = deliver(alert(), endpoint(hook.url("/busy")), sleep=lambda seconds: None)
    assert (delivery.ok, delivery.attempts) == (True, 2)


def test_a_hanging_endpoint_times_out_each_attempt_within_bounded_time(hook):
    hook.answer("/slow", "hang")
    waits = []
    started = time.monotonic()
    delivery = deliver(alert(), endpoint(hook.url("/slow"), retries=2), sleep=waits.append)
    elapsed = time.monotonic() - started
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 3, None)
    assert delivery.error == f"timed out after {TIMEOUT:g} s"
    assert waits == [1.0, 2.0]
    assert len(hook.bodies("/slow")) == 3
    assert 3 * TIMEOUT <= elapsed < 3 * TIMEOUT + 1.5
    assert delivery.seconds == pytest.approx(elapsed, abs=0.1)


def test_a_closed_port_is_a_failed_delivery_not_an_exception():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits = []
    delivery = deliver(alert(), endpoint(f"http://127.0.0.1:{port}/hook", retries=1), sleep=waits.append)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 2, None)
    assert delivery.error.startswith("connection failed:") and "refused" in delivery.error.lower()
    assert waits == [1.0]


def test_a_connection_closed_without_an_answer_is_retried(hook):
    hook.answer("/drops", "drop", "drop", 200)
    first = deliver(alert(), endpoint(hook.url("/drops"), retries=0))
    assert (first.ok, first.attempts, first.status) == (False, 1, None)
    assert first.error.startswith("connection failed: RemoteDisconnected")
    second = deliver(alert(), endpoint(hook.url("/drops"), retries=1), sleep=lambda seconds: None)
    assert (second.ok, second.attempts, second.status) == (True, 2, 200)


def test_400_is_not_retried_and_says_why(hook):
    hook.answer("/strict", 400)
    waits = []
    delivery = deliver(alert(), endpoint(hook.url("/strict"), retries=3), sleep=waits.append)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 400)
    assert delivery.error == "HTTP 400 Bad Request: invalid_payload"
    assert waits == []


def test_a_redirect_is_not_followed(hook):
    hook.answer("/moved", 302)
    delivery = deliver(alert(), endpoint(hook.url("/moved"), retries=3), sleep=lambda seconds: None)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 302)
    assert "redirects are not followed" in delivery.error
    assert [r["path"] for r in hook.requests] == ["/moved"]


def test_a_disabled_endpoint_is_a_recorded_failure_without_a_request(hook):
    config = read_alert_config([("alerts/endpoints.yaml", FIXTURE.read_bytes())], env={})
    [delivery] = Notifier(config).send(alert())
    assert (delivery.endpoint, delivery.ok, delivery.attempts, delivery.status) == ("oncall", False, 0, None)
    assert delivery.error == ("endpoint disabled: FOCUS_PAGER_WEBHOOK is not set "
                              "(alerts/endpoints.yaml: endpoints[0].url)")
    assert hook.requests == []


# ---------------------------------------------------------------------------------------------
# The endpoints file
# ---------------------------------------------------------------------------------------------
def test_the_design_example_loads_with_the_url_from_the_environment():
    secret = "https://hooks.slack.example/services/T000/B000/SECRET"
    config = read_alert_config([("alerts/endpoints.yaml", FIXTURE.read_bytes())],
                               env={"FOCUS_PAGER_WEBHOOK": secret})
    assert config.endpoints["oncall"] == Endpoint("oncall", secret, "slack", 5.0, 3, 1.0)
    assert config.endpoints["tickets"] == Endpoint("tickets", "https://tickets.example.com/hooks/focus", "http",
                                                   2.5, 1, 0.5)
    assert dict(config.routes) == {"page": ("oncall",), "ticket": ("tickets",), "info": ()}
    assert config.ui_url == "http://localhost:3000"
    assert [e.name for e in route(config, alert(severity="ticket"))] == ["tickets"]
    assert "SECRET" not in repr(config)


def test_a_url_built_from_variables_and_one_left_empty():
    text = b"endpoints:\n  - {name: a, url: 'https://hooks.example.com/${TEAM}/${TOKEN}'}\n"
    config = read_alert_config([("e.yaml", text)], env={"TEAM": "finops", "TOKEN": "t0k"})
    assert config.endpoints["a"].url == "https://hooks.example.com/finops/t0k"
    assert config.endpoints["a"].disabled is None
    disabled = read_alert_config([("e.yaml", text)], env={"TEAM": "finops", "TOKEN": " "}).endpoints["a"]
    assert (disabled.url, disabled.disabled) == ("", "TOKEN is not set (e.yaml: endpoints[0].url)")
    not_http = read_alert_config([("e.yaml", b"endpoints:\n  - {name: a, url: '${HOOK}'}\n")],
                                 env={"HOOK": "file:///etc/passwd"}).endpoints["a"]
    assert not_http.disabled == "the URL made from HOOK is not an http(s) URL (e.yaml: endpoints[0].url)"


def test_no_config_routes_nothing():
    for config in (read_alert_config([]), read_alert_config([("alerts/endpoints.yaml", b"# nothing yet\n")])):
        assert config == AlertConfig()
        assert route(config, alert()) == []
        assert Notifier(config).send(alert()) == []


ENDPOINT = "endpoints:\n  - {name: hook, url: 'https://hooks.example.com/x'%s}\n"


@pytest.mark.parametrize(("text", "message"), [
    ("endpoint: []\n",
     "e.yaml: unknown field 'endpoint' (did you mean 'endpoints'?); allowed: endpoints, routes, ui_url"),
    (ENDPOINT % ", method: PUT", ("e.yaml: endpoints[0]: unknown field 'method'; allowed: name, url, format, "
                                  "timeout_seconds, retries, backoff_seconds")),
    (ENDPOINT % ", format: teams", "e.yaml: endpoints[0].format: unknown format 'teams'; formats: slack, http"),
    (ENDPOINT % ", format: slak",
     "e.yaml: endpoints[0].format: unknown format 'slak' (did you mean 'slack'?); formats: slack, http"),
    (ENDPOINT % "" + "routes: {page: [pager]}\n",
     "e.yaml: routes.page[0]: unknown endpoint 'pager'; endpoints: hook"),
    (ENDPOINT % "" + "routes: {page: [hoook]}\n",
     "e.yaml: routes.page[0]: unknown endpoint 'hoook' (did you mean 'hook'?); endpoints: hook"),
    (ENDPOINT % "" + "routes: {urgent: [hook]}\n",
     "e.yaml: routes: unknown severity 'urgent'; severities: page, ticket, info"),
    (ENDPOINT % "" + "routes: {tickets: [hook]}\n",
     "e.yaml: routes: unknown severity 'tickets' (did you mean 'ticket'?); severities: page, ticket, info"),
    (ENDPOINT % "" + "routes: [hook]\n", "e.yaml: routes: must be a mapping of severity to endpoint names, not a list"),
    ("endpoints:\n  - {name: hook, url: 'ftp://hooks.example.com/x'}\n",
     "e.yaml: endpoints[0].url: 'ftp://hooks.example.com/x' is not an http(s) URL"),
    ("endpoints:\n  - {name: hook, url: 'hooks.example.com/${TOKEN}'}\n",
     "e.yaml: endpoints[0].url: 'hooks.example.com/${TOKEN}' is not an http(s) URL"),
    ("endpoints:\n  - {name: hook}\n", "e.yaml: endpoints[0]: missing required field 'url'"),
    (ENDPOINT % ", retries: -1", "e.yaml: endpoints[0].retries: must be >= 0, not -1"),
    (ENDPOINT % ", retries: 2.5", "e.yaml: endpoints[0].retries: must be a whole number, not a number (2.5)"),
    (ENDPOINT % ", timeout_seconds: -5", "e.yaml: endpoints[0].timeout_seconds: must be > 0 and finite, not -5"),
    (ENDPOINT % ", timeout_seconds: 0", "e.yaml: endpoints[0].timeout_seconds: must be > 0 and finite, not 0"),
    (ENDPOINT % ", timeout_seconds: .inf",
     "e.yaml: endpoints[0].timeout_seconds: must be a number of seconds, not the text '.inf'"),
    (ENDPOINT % ", timeout_seconds: 1.0e+400",
     "e.yaml: endpoints[0].timeout_seconds: must be > 0 and finite, not 1.0E+400"),
    (ENDPOINT % ", backoff_seconds: '1'",
     "e.yaml: endpoints[0].backoff_seconds: must be a number of seconds, not the text '1'"),
    (ENDPOINT % "" + "  - {name: hook, url: 'https://b.example.com'}\n",
     "e.yaml: endpoints[1].name: endpoint 'hook' is defined twice"),
    ("ui_url: localhost:3000\n", "e.yaml: ui_url: 'localhost:3000' is not an http(s) URL"),
    ("endpoints: {name: hook}\n", "e.yaml: endpoints: must be a list, not a mapping"),
    ("endpoints: [\n", "e.yaml: line 2, column 1: not valid YAML: while parsing a flow node, expected the node "
                       "content, but found '<stream end>'"),
    (ENDPOINT % "" + "routes: {page: [hook]}\nroutes: {info: []}\n",
     "e.yaml: line 4, column 1: not valid YAML: key 'routes' appears twice in one mapping (lines 3 and 4)"),
])
def test_a_bad_endpoints_file_is_one_line_naming_file_and_entry(text, message):
    with pytest.raises(AlertConfigError) as error:
        read_alert_config([("e.yaml", text.encode())], env={})
    assert str(error.value) == message
    assert "\n" not in str(error.value)


def test_ui_url_is_set_once_across_files():
    with pytest.raises(AlertConfigError, match=r"^b.yaml: ui_url: already set in a.yaml$"):
        read_alert_config([("a.yaml", b"ui_url: http://a:3000\n"), ("b.yaml", b"ui_url: http://b:3000\n")])


def test_alerts_use_the_standard_library_and_the_core_only():
    """No Dagster in the core and no HTTP client dependency (urllib.request and json); YAML through
    focus_platform.yamltext."""
    package = Path(focus_platform.alerts.__file__).parent
    roots = {name.split(".")[0] for module in package.glob("*.py") for name in imported_names(module)}
    assert roots - set(sys.stdlib_module_names) == {"focus_platform"}
