"""Policies as data: validation (one line naming file and entry), evaluation in shadow / canary / enforce, the
daily limit, the kill switch, dedupe across evaluations, failed deliveries, and the M6 / M12 figures."""

from __future__ import annotations

import json
import random
import threading
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from focus_platform.alerts import AlertConfig, Delivery, read_alert_config
from focus_platform.policies import (
    POLICY_ACTIONS,
    SIGNALS,
    Action,
    PolicyError,
    action_rates,
    alert_sender,
    evaluate,
    read_policies,
    shadow_lag,
)
from tests.helpers_imports import imported_names

FIXTURES = Path(__file__).parents[1] / "fixtures" / "policies"
PACKAGE = Path(__file__).parents[2] / "focus_platform" / "policies"
OWNERS = {"platform", "web", "data"}
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
FILE = "policies/team.yaml"


def policies(text: str, known_owners: set[str] | None = OWNERS, path: str = FILE):
    return read_policies([(path, text.encode())], known_owners)


def one_policy(**fields: str) -> str:
    """A policy file with one policy: a valid enforce notify on budget errors, with ``fields`` (YAML flow values)
    replacing or adding fields; a value None leaves the field out."""
    base = {"id": "budget-page", "when": "{signal: budget, status: [ERROR]}", "action": "notify",
            "severity": "page", "endpoint": "oncall", "mode": "enforce", "max_per_day": "10"}
    lines = [f"    {key}: {value}" for key, value in (base | fields).items() if value is not None]
    return "policies:\n  - " + "\n".join(lines).lstrip() + "\n"


def signal(signal_id: str, *, kind: str = "budget", status: str = "ERROR", owner: str | None = "platform",
           amount: str | None = "1500", check: str | None = None, severity: str = "page",
           at: datetime = NOW - timedelta(hours=1)) -> dict:
    return {"SignalId": signal_id, "Kind": kind, "Severity": severity, "Owner": owner, "Asset": "budget_status",
            "CheckName": check, "Partition": "2026-12", "Amount": None if amount is None else Decimal(amount),
            "Currency": "USD", "Status": status, "Summary": f"{signal_id}: projected over budget",
            "Link": "http://localhost:3000/assets/budget_status", "At": at}


def signals(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SIGNALS)


class FakeSend:
    """A ``send`` that records the actions it receives and answers with the given deliveries, in turn (ok
    deliveries once they run out)."""

    def __init__(self, *answers: Delivery) -> None:
        self.actions: list[Action] = []
        self.answers = list(answers)

    def __call__(self, action: Action) -> Delivery:
        self.actions.append(action)
        if self.answers:
            return self.answers.pop(0)
        return Delivery(endpoint=action.endpoint or "routed", ok=True, attempts=1, status=200, error=None, seconds=0.01)


def outcomes(actions: pl.DataFrame) -> list[tuple[str, str, str]]:
    return list(actions.select("PolicyId", "SignalId", "Outcome").iter_rows())


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def test_the_fixture_file_reads_with_its_owners():
    data = (FIXTURES / "policies.yaml").read_bytes()
    read = read_policies([("policies/policies.yaml", data)], OWNERS)
    assert [p.id for p in read.policies] == ["page-budget-overrun", "ticket-big-anomaly", "ticket-mapping-failures",
                                             "notify-run-failure"]
    assert read.kill_switch is False
    anomaly = read.policies[1]
    assert anomaly.when.min_delta == Decimal(100) and anomaly.canary_owners == ("web",)
    assert read.policies[0].owners == ("platform", "web") and read.policies[0].severity == "page"
    assert read.policies[3].endpoint is None and read.policies[3].max_per_day == 10  # the default limit


def test_defaults_a_shadow_policy_and_its_shadow_start():
    read = policies(one_policy(mode=None, mode_since="2026-11-20", endpoint=None, severity=None, max_per_day=None))
    policy = read.policies[0]
    assert (policy.mode, policy.shadow_since, policy.endpoint, policy.severity) == ("shadow", date(2026, 11, 20),
                                                                                      None, None)


def test_min_delta_is_read_as_decimal_from_the_yaml_text():
    text = one_policy(when="{signal: anomaly, min_delta: 100.10}")
    assert policies(text).policies[0].when.min_delta == Decimal("100.10")


@pytest.mark.parametrize("text, known, message", [
    (one_policy(acton="notify"), OWNERS,
     "policies[0]: unknown field 'acton' (did you mean 'action'?)"),
    (one_policy(id=None), OWNERS, "policies[0]: missing required field 'id'"),
    (one_policy(when=None), OWNERS, "policies[0]: missing required field 'when'"),
    (one_policy(action=None), OWNERS, "policies[0]: missing required field 'action'"),
    (one_policy(when="{signal: budgett}"), OWNERS,
     "policies[0].when.signal: unknown value 'budgett' (did you mean 'budget'?)"),
    (one_policy(when="{status: [ERROR]}"), OWNERS, "policies[0].when: must be a mapping with a signal"),
    (one_policy(when="{signal: budget, min_delta: 5}"), OWNERS,
     "policies[0].when.min_delta: only for signal anomaly (signal is budget)"),
    (one_policy(when="{signal: budget, limit: 5}"), OWNERS,
     "policies[0].when: unknown field 'limit'; allowed: signal, status"),
    (one_policy(when="{signal: budget, status: [EROR]}"), OWNERS,
     "policies[0].when.status[0]: unknown value 'EROR' (did you mean 'ERROR'?)"),
    (one_policy(when="{signal: anomaly, min_delta: '-5'}"), OWNERS,
     "policies[0].when.min_delta: must be a finite amount of at least 0, not the text '-5'"),
    (one_policy(when="{signal: anomaly, min_delta: -1.5}"), OWNERS,
     "policies[0].when.min_delta: must be a finite amount of at least 0, not a number (-1.5)"),
    (one_policy(when="{signal: anomaly, min_delta: lots}"), OWNERS, "policies[0].when.min_delta: 'lots' is not an amount"),
    (one_policy(action="page"), OWNERS, "policies[0].action: unknown value 'page'; allowed: notify, ticket, scale_down"),
    (one_policy(action="scale-down"), OWNERS,
     "policies[0].action: unknown value 'scale-down' (did you mean 'scale_down'?)"),
    (one_policy(mode="enforced"), OWNERS, "policies[0].mode: unknown value 'enforced' (did you mean 'enforce'?)"),
    (one_policy(severity="urgent"), OWNERS, "policies[0].severity: unknown value 'urgent'"),
    (one_policy(mode="canary"), OWNERS, "policies[0].canary_owners: missing; mode canary acts only for the owners"),
    (one_policy(canary_owners="[web]"), OWNERS, "policies[0].canary_owners: only for mode canary (mode is enforce)"),
    (one_policy(mode="canary", owners="[web]", canary_owners="[data]"), OWNERS,
     "policies[0].canary_owners[0]: 'data' is not one of the policy's owners (web)"),
    (one_policy(owners="[platform, platfrom]"), OWNERS,
     "policies[0].owners[1]: unknown owner 'platfrom' (did you mean 'platform'?); no allocation knows it"),
    (one_policy(mode="canary", canary_owners="[mobile]"), OWNERS, "policies[0].canary_owners[0]: unknown owner 'mobile'"),
    (one_policy(owners="[web, web]"), OWNERS, "policies[0].owners[1]: 'web' is named twice"),
    (one_policy(action="ticket", endpoint=None), OWNERS,
     "policies[0].endpoint: missing; action ticket is a webhook call to a named endpoint"),
    (one_policy(action="scale_down", endpoint=None), OWNERS, "policies[0].endpoint: missing; action scale_down"),
    (one_policy(mode_since="2026-13-01"), OWNERS, "policies[0].mode_since: '2026-13-01' is not a date"),
    (one_policy(shadow_since="last week"), OWNERS,
     "policies[0].shadow_since: must be a date YYYY-MM-DD, not the text 'last week'"),
    (one_policy(shadow_since="2026-12"), OWNERS,
     "policies[0].shadow_since: must be a date YYYY-MM-DD, not the text '2026-12'"),
    (one_policy(shadow_since="2026-11-21", mode_since="2026-11-20"), OWNERS,
     "policies[0].shadow_since: 2026-11-21 is after mode_since 2026-11-20"),
    (one_policy(max_per_day="0"), OWNERS,
     "policies[0].max_per_day: must be a whole number of at least 1, not a number (0)"),
    (one_policy(max_per_day="2.5"), OWNERS,
     "policies[0].max_per_day: must be a whole number of at least 1, not a number (2.5)"),
    (one_policy(max_per_day="[1]"), OWNERS, "policies[0].max_per_day: must be a whole number of at least 1, not a list"),
    (one_policy(id="'page me'"), OWNERS, "policies[0].id: 'page me' is not an id"),
    (one_policy() + "  - id: budget-page\n    when: {signal: anomaly}\n    action: notify\n", OWNERS,
     "policies[1].id: duplicate id 'budget-page' (also policies/team.yaml: policies[0])"),
    ("kill_switch: 'yes'\n", OWNERS, "kill_switch: must be true or false, not the text 'yes'"),
    ("kill_switch: true\nkill_switch: false\n", OWNERS,
     "line 2, column 1: not valid YAML: key 'kill_switch' appears twice in one mapping (lines 1 and 2)"),
    ("policies: [\n", OWNERS, "not valid YAML"),
    ("", OWNERS, "must be a mapping of kill_switch, policies, not empty (null)"),
    ("policy: []\n", OWNERS, "unknown field 'policy' (did you mean 'policies'?)"),
    ("policies: []\n", OWNERS, "policies: must be a non-empty list, not a list"),
])
def test_a_bad_policy_file_is_one_line_naming_file_and_entry(text, known, message):
    with pytest.raises(PolicyError) as raised:
        policies(text, known)
    error = str(raised.value)
    assert error.startswith(f"{FILE}: ") and message in error and "\n" not in error, error


def test_endpoints_are_checked_against_the_alerts_config_when_given():
    with pytest.raises(PolicyError, match=r"^policies/team.yaml: policies\[0\].endpoint: unknown endpoint 'oncal' "
                                          r"\(did you mean 'oncall'\?\); endpoints: oncall, tickets$"):
        read_policies([(FILE, one_policy(endpoint="oncal").encode())], known_endpoints={"oncall", "tickets"})


def test_owners_are_checked_only_against_known_owners_when_given():
    assert policies(one_policy(owners="[mobile]"), known_owners=None).policies[0].owners == ("mobile",)


def test_ids_are_unique_across_files_and_the_kill_switch_of_any_file_counts():
    first, second = ("policies/a.yaml", one_policy().encode()), ("policies/b.yaml", one_policy().encode())
    with pytest.raises(PolicyError, match=r"^policies/b.yaml: policies\[0\].id: duplicate id 'budget-page' "
                                          r"\(also policies/a.yaml: policies\[0\]\)$"):
        read_policies([first, second])
    read = read_policies([first, ("policies/stop.yaml", b"kill_switch: true\n")])
    assert read.kill_switch is True and len(read.policies) == 1


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def test_shadow_records_the_action_and_enforce_calls_send_once_for_the_same_breach():
    breach = signals(signal("budget:platform:2026-12"))
    send = FakeSend()
    shadow = evaluate(policies(one_policy(mode="shadow")), breach, now=NOW, history=None, send=send)
    assert outcomes(shadow) == [("budget-page", "budget:platform:2026-12", "would-act")]
    assert send.actions == []
    payload = json.loads(shadow["Payload"][0])
    assert payload["action"] == "notify" and payload["amount"] == "1500.000000000000" and payload["owner"] == "platform"
    assert shadow.schema == pl.Schema(POLICY_ACTIONS)

    enforce = evaluate(policies(one_policy()), breach, now=NOW, history=None, send=send)
    assert outcomes(enforce) == [("budget-page", "budget:platform:2026-12", "acted")]
    [action] = send.actions
    assert (action.policy_id, action.action, action.severity, action.endpoint, action.owner, action.amount) == (
        "budget-page", "notify", "page", "oncall", "platform", Decimal(1500))
    assert enforce.row(0, named=True) | {"Payload": None} == {
        "x_EvaluatedAt": NOW, "PolicyId": "budget-page", "Mode": "enforce", "SignalId": "budget:platform:2026-12",
        "Kind": "budget", "Owner": "platform", "Action": "notify", "Outcome": "acted", "Endpoint": "oncall",
        "Attempts": 1, "HttpStatus": 200, "Error": None, "Payload": None, "Day": date(2026, 12, 7)}


def test_an_action_gives_the_alert_people_receive():
    send = FakeSend()
    evaluate(policies(one_policy()), signals(signal("b1")), now=NOW, history=None, send=send)
    alert = send.actions[0].alert()
    assert (alert.id, alert.severity, alert.owner, alert.amount, alert.currency, alert.link) == (
        "budget-page/b1", "page", "platform", Decimal(1500), "USD", "http://localhost:3000/assets/budget_status")
    assert alert.title == "budget-page (notify): budget ERROR"


def test_a_policy_reads_only_the_signals_it_names():
    text = one_policy(when="{signal: anomaly, status: [raised], min_delta: '100'}", owners="[platform, web]")
    read = policies(text)
    candidates = signals(
        signal("big", kind="anomaly", status="raised", amount="250"),
        signal("drop", kind="anomaly", status="raised", amount="-150"),  # a fall counts by its size
        signal("small", kind="anomaly", status="raised", amount="99.99"),
        signal("no-amount", kind="anomaly", status="raised", amount=None),
        signal("suppressed", kind="anomaly", status="suppressed", amount="500"),
        signal("other-owner", kind="anomaly", status="raised", amount="500", owner="data"),
        signal("budget", kind="budget", amount="500"),
    )
    assert [s for _, s, _ in outcomes(evaluate(read, candidates, now=NOW, history=None, send=FakeSend()))] == [
        "big", "drop"]
    checks = policies(one_policy(when="{signal: check, check: [sku_mapping_failure_rate]}", severity=None))
    failed = signals(signal("c1", kind="check", status="WARN", check="sku_mapping_failure_rate", severity="ticket"),
                     signal("c2", kind="check", status="ERROR", check="drift", severity="ticket"))
    send = FakeSend()
    assert outcomes(evaluate(checks, failed, now=NOW, history=None, send=send)) == [("budget-page", "c1", "acted")]
    assert send.actions[0].severity == "ticket"  # no severity in the policy: the signal's


def test_canary_acts_only_for_its_owners_and_records_the_rest():
    read = policies(one_policy(mode="canary", canary_owners="[web]"))
    send = FakeSend()
    actions = evaluate(read, signals(signal("p", owner="platform"), signal("w", owner="web"), signal("d", owner="data")),
                       now=NOW, history=None, send=send)
    assert outcomes(actions) == [("budget-page", "d", "skipped-not-canary"), ("budget-page", "p", "skipped-not-canary"),
                                 ("budget-page", "w", "acted")]
    assert [a.owner for a in send.actions] == ["web"]
    assert actions["Mode"].unique().to_list() == ["canary"]


def test_the_daily_limit_stops_a_runaway_policy_and_the_next_day_it_acts_again():
    read = policies(one_policy(max_per_day="10"))
    runaway = signals(*(signal(f"s{i:02d}", at=NOW - timedelta(minutes=60 - i)) for i in range(50)))
    send = FakeSend()
    today = evaluate(read, runaway, now=NOW, history=None, send=send)
    assert today["Outcome"].value_counts(sort=True).rows() == [("limited", 40), ("acted", 10)]
    assert [a.signal_id for a in send.actions] == [f"s{i:02d}" for i in range(10)]  # the first ten by At

    later_today = evaluate(read, signals(signal("new")), now=NOW + timedelta(hours=2), history=today, send=send)
    assert outcomes(later_today) == [("budget-page", "new", "limited")]  # today's history counts

    history = pl.concat([today, later_today])
    tomorrow = evaluate(read, runaway, now=NOW + timedelta(days=1), history=history, send=send)
    counts = dict(tomorrow["Outcome"].value_counts().rows())
    assert counts == {"duplicate": 10, "acted": 10, "limited": 30}
    assert len(send.actions) == 20


def test_a_shadow_policy_is_limited_too():
    read = policies(one_policy(mode="shadow", max_per_day="2"))
    actions = evaluate(read, signals(*(signal(f"s{i}") for i in range(3))), now=NOW, history=None, send=None)
    assert actions["Outcome"].to_list() == ["would-act", "would-act", "limited"]


def test_the_kill_switch_records_every_would_be_action_and_calls_nothing():
    text = "kill_switch: true\n" + one_policy()
    send = FakeSend()
    actions = evaluate(policies(text), signals(signal("a"), signal("b")), now=NOW, history=None, send=send)
    assert actions["Outcome"].to_list() == ["killed", "killed"] and send.actions == []
    assert actions["Attempts"].to_list() == [0, 0]
    # lifted: the same signals act (they were never handled)
    lifted = evaluate(policies(one_policy()), signals(signal("a"), signal("b")), now=NOW, history=actions, send=send)
    assert lifted["Outcome"].to_list() == ["acted", "acted"]


def test_one_incident_one_action_across_evaluations():
    read = policies(one_policy())
    send = FakeSend()
    first = evaluate(read, signals(signal("incident-1")), now=NOW, history=None, send=send)
    second = evaluate(read, signals(signal("incident-1"), signal("incident-2")), now=NOW + timedelta(hours=1),
                      history=first, send=send)
    assert outcomes(second) == [("budget-page", "incident-1", "duplicate"), ("budget-page", "incident-2", "acted")]
    assert [a.signal_id for a in send.actions] == ["incident-1", "incident-2"]
    # the same signal twice in one evaluation: one action
    twice = evaluate(read, signals(signal("x"), signal("x", at=NOW)), now=NOW, history=None, send=FakeSend())
    assert twice["Outcome"].to_list() == ["acted", "duplicate"]
    # another policy on the same signal acts on its own
    shadow_too = one_policy() + "  - id: budget-shadow\n    when: {signal: budget}\n    action: notify\n"
    both = evaluate(policies(shadow_too), signals(signal("incident-1")), now=NOW, history=first, send=FakeSend())
    assert outcomes(both) == [("budget-page", "incident-1", "duplicate"), ("budget-shadow", "incident-1", "would-act")]


def test_a_failed_delivery_is_recorded_and_evaluation_continues():
    read = policies(one_policy())
    dead = Delivery(endpoint="oncall", ok=False, attempts=4, status=500, error="HTTP 500 Internal Server Error",
                    seconds=7.0)
    send = FakeSend(dead)
    actions = evaluate(read, signals(signal("a", at=NOW - timedelta(hours=2)), signal("b")), now=NOW, history=None,
                       send=send)
    assert actions.select("SignalId", "Outcome", "Attempts", "HttpStatus", "Error").rows() == [
        ("a", "delivery-failed", 4, 500, "HTTP 500 Internal Server Error"), ("b", "acted", 1, 200, None)]
    # a failed delivery is not handled: the next evaluation tries again
    retry = evaluate(read, signals(signal("a")), now=NOW + timedelta(minutes=10), history=actions, send=send)
    assert outcomes(retry) == [("budget-page", "a", "acted")]


def test_a_send_that_raises_or_no_send_is_a_failed_delivery_not_an_exception():
    def broken(action: Action) -> Delivery:
        raise ConnectionResetError("peer went away")

    read = policies(one_policy())
    raised = evaluate(read, signals(signal("a")), now=NOW, history=None, send=broken)
    assert raised.select("Outcome", "Attempts", "Endpoint", "Error").row(0) == (
        "delivery-failed", 0, "oncall", "send raised ConnectionResetError: peer went away")
    unsent = evaluate(read, signals(signal("a")), now=NOW, history=None, send=None)
    assert unsent.select("Outcome", "Error").row(0) == ("delivery-failed", "not sent: no notifier configured")


def test_evaluation_order_is_by_time_then_signal_id_whatever_the_input_order():
    read = policies(one_policy(mode="shadow") + "  - id: another\n    when: {signal: budget}\n    action: notify\n")
    rows = [signal(f"s{i}", at=NOW - timedelta(minutes=i % 3)) for i in range(9)]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    first = evaluate(read, signals(*rows), now=NOW, history=None, send=None)
    again = evaluate(read, signals(*shuffled), now=NOW, history=None, send=None)
    assert first.equals(again)
    assert first["SignalId"].to_list()[:3] == ["s2", "s5", "s8"]


def test_bad_signals_and_a_naive_time_are_refused():
    read = policies(one_policy())
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(read, signals(signal("a")), now=NOW.replace(tzinfo=None), history=None, send=None)
    with pytest.raises(ValueError, match=r"signals: column 'Amount' is Float64, not Decimal"):
        evaluate(read, signals(signal("a")).with_columns(pl.col("Amount").cast(pl.Float64)), now=NOW, history=None,
                 send=None)
    with pytest.raises(ValueError, match=r"signal 'a': unknown Kind 'budgets'"):
        evaluate(read, signals(signal("a", kind="budgets")), now=NOW, history=None, send=None)
    with pytest.raises(ValueError, match=r"signal 'a': unknown Status 'failed' for Kind check \(allowed: WARN, ERROR\)"):
        evaluate(read, signals(signal("a", kind="check", status="failed")), now=NOW, history=None, send=None)
    with pytest.raises(ValueError, match=r"signal 'a': Status is null"):
        evaluate(read, signals(signal("a", status=None)), now=NOW, history=None, send=None)
    with pytest.raises(ValueError, match=r"signals: missing column 'Link'"):
        evaluate(read, signals(signal("a")).drop("Link"), now=NOW, history=None, send=None)


# ---------------------------------------------------------------------------------------------
# M6 and M12
# ---------------------------------------------------------------------------------------------
def test_m6_counts_acted_and_would_act_apart_per_policy_and_day():
    text = (one_policy(max_per_day="3") + "  - id: shadow-all\n    when: {signal: budget}\n    action: notify\n"
            "    mode: shadow\n    max_per_day: 5\n")
    read = policies(text)
    day_one = evaluate(read, signals(*(signal(f"s{i}") for i in range(4))), now=NOW, history=None,
                       send=FakeSend(Delivery("oncall", False, 4, 503, "HTTP 503", 1.0)))
    day_two = evaluate(read, signals(signal("t0")), now=NOW + timedelta(days=1), history=day_one, send=FakeSend())
    assert action_rates(pl.concat([day_one, day_two])) == {
        "budget-page": {"2026-12-07": {"acted": 2, "would_act": 0, "delivery_failed": 1},
                        "2026-12-08": {"acted": 1, "would_act": 0, "delivery_failed": 0}},
        "shadow-all": {"2026-12-07": {"acted": 0, "would_act": 4, "delivery_failed": 0},
                       "2026-12-08": {"acted": 0, "would_act": 1, "delivery_failed": 0}},
    }
    assert action_rates(pl.DataFrame(schema=POLICY_ACTIONS)) == {}


def test_m12_days_in_shadow_before_enforce():
    read = read_policies([("policies/policies.yaml", (FIXTURES / "policies.yaml").read_bytes())], OWNERS)
    lag = shadow_lag(read, date(2026, 12, 7))
    assert {policy: (v["mode"], v["days"], v["within_target"]) for policy, v in lag.items()} == {
        "page-budget-overrun": ("shadow", 36, False),  # still in shadow after more than 30 days
        "ticket-big-anomaly": ("canary", 32, False),  # canary is not enforce yet: days so far
        "ticket-mapping-failures": ("enforce", 14, True),
        "notify-run-failure": ("enforce", 2, False),  # enforced too soon
    }
    assert lag["ticket-mapping-failures"] == {
        "mode": "enforce", "enforced": True, "days": 14, "within_target": True, "note": None,
        "shadow_since": "2026-11-01", "enforce_since": "2026-11-15"}
    early = shadow_lag(policies(one_policy(mode="shadow", shadow_since="2026-12-01")), date(2026, 12, 7))
    assert early["budget-page"]["days"] == 6 and early["budget-page"]["within_target"] is True
    unknown = shadow_lag(policies(one_policy()), date(2026, 12, 7))["budget-page"]
    assert unknown["days"] is None and unknown["within_target"] is None and "no shadow_since" in unknown["note"]


def test_the_policies_core_never_imports_dagster():
    for module in PACKAGE.glob("*.py"):
        assert not [name for name in imported_names(module) if name.split(".")[0] == "dagster"], module


# ---------------------------------------------------------------------------------------------
# Sending through the alerts endpoints (one real webhook on 127.0.0.1; the alerts tests cover HTTP in depth)
# ---------------------------------------------------------------------------------------------
@contextmanager
def webhook():
    """A local webhook recording the JSON bodies it receives (answering 200)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def alert_config(url: str, *, routes: str = "page: [oncall]") -> AlertConfig:
    text = (f"endpoints:\n  - name: oncall\n    url: {url}\n    format: http\n    retries: 0\n"
            f"  - name: pager\n    url: ${{FOCUS_TEST_UNSET_WEBHOOK}}\nroutes: {{{routes}}}\n")
    return read_alert_config([("alerts/endpoints.yaml", text.encode())], env={})


def test_shadow_records_and_enforce_posts_the_same_breach_to_a_real_webhook():
    breach = signals(signal("budget:platform:2026-12"))
    with webhook() as (url, received):
        send = alert_sender(alert_config(url))
        shadow = evaluate(policies(one_policy(mode="shadow")), breach, now=NOW, history=None, send=send)
        assert shadow["Outcome"].to_list() == ["would-act"] and received == []
        enforce = evaluate(policies(one_policy()), breach, now=NOW, history=None, send=send)
    assert enforce.select("Outcome", "Endpoint", "Attempts", "HttpStatus").row(0) == ("acted", "oncall", 1, 200)
    [body] = received
    assert (body["id"], body["severity"], body["owner"], body["amount"], body["currency"]) == (
        "budget-page/budget:platform:2026-12", "page", "platform", "1500.000000000000", "USD")


def test_the_sender_routes_a_notify_without_endpoint_and_reports_what_it_cannot_deliver():
    with webhook() as (url, received):
        routed = alert_sender(alert_config(url, routes="page: [oncall, pager], ticket: [oncall], info: []"))
        read = policies(one_policy(endpoint=None, severity=None) + "  - id: ticket\n    when: {signal: budget}\n"
                        "    action: ticket\n    endpoint: tickets\n    mode: enforce\n")
        actions = evaluate(read, signals(signal("a"), signal("b", severity="ticket"), signal("c", severity="info")),
                           now=NOW, history=None, send=routed)
    rows = actions.select("PolicyId", "SignalId", "Outcome", "Endpoint", "Attempts", "Error").rows()
    assert [row[:5] for row in rows] == [
        ("budget-page", "a", "delivery-failed", "oncall,pager", 1),  # one of the two endpoints failed
        ("budget-page", "b", "acted", "oncall", 1),
        ("budget-page", "c", "delivery-failed", None, 0),
        ("ticket", "a", "delivery-failed", "tickets", 0),
        ("ticket", "b", "delivery-failed", "tickets", 0),
        ("ticket", "c", "delivery-failed", "tickets", 0),
    ]
    errors = [row[5] for row in rows]
    assert errors[0].startswith("pager: endpoint disabled: ") and "FOCUS_TEST_UNSET_WEBHOOK" in errors[0]
    assert errors[1:] == [None, "severity info is routed to no endpoint",
                          *["no endpoint 'tickets' in the alerts config"] * 3]
    assert [body["id"] for body in received] == ["budget-page/a", "budget-page/b"]
