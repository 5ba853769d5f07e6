"""Evaluating policies on signals: one ``POLICY_ACTIONS`` row per policy × matching signal (no Dagster here).

For each policy (file order) and each signal it matches (signals in order of ``At``, then ``SignalId``),
the first of these that holds decides the outcome:

1. the policy already handled the signal (``acted``, ``would-act`` or ``skipped-not-canary`` in the
   history or earlier in this evaluation): ``duplicate`` — one incident, one action;
2. the kill switch is on: ``killed``;
3. the policy made (or would have made) ``max_per_day`` actions this UTC day, history included:
   ``limited``;
4. mode ``shadow``: ``would-act`` (the payload is recorded, nothing is called); mode ``canary`` and an
   owner outside ``canary_owners``: ``skipped-not-canary`` (recorded as shadow would);
5. otherwise ``send(action)``: ``acted`` when the delivery is ok, else ``delivery-failed`` with its
   attempts, HTTP status and error. A failed delivery (or a ``send`` that raises, or no ``send``) is
   recorded and never raised; the signal stays unhandled, so a later evaluation tries again.

Steps 4 and 5 count against ``max_per_day``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl

from focus_platform.alerts import SEVERITIES, Delivery
from focus_platform.policies.model import (
    ACTED,
    CANARY,
    COUNTED,
    DELIVERY_FAILED,
    DUPLICATE,
    ENFORCE,
    HANDLED,
    KILLED,
    LIMITED,
    POLICY_ACTIONS,
    SHADOW,
    SHADOW_DAYS_MAX,
    SHADOW_DAYS_MIN,
    SIGNAL_KINDS,
    SIGNAL_STATUSES,
    SIGNALS,
    SKIPPED_NOT_CANARY,
    WOULD_ACT,
    Action,
    Policy,
    PolicySet,
)

REQUIRED_SIGNAL_FIELDS = ("SignalId", "Kind", "Severity", "Status", "At")
_NOTHING_SENT = Delivery(endpoint=None, ok=False, attempts=0, status=None, error=None, seconds=0.0)  # no call made


def evaluate(policies: PolicySet, signals: pl.DataFrame, *, now: datetime, history: pl.DataFrame | None,
             send: Callable[[Action], Delivery] | None) -> pl.DataFrame:
    """The POLICY_ACTIONS rows of one evaluation at ``now`` (timezone-aware). ``signals``: SIGNALS;
    ``history``: earlier POLICY_ACTIONS rows (None: none); ``send``: delivers an enforced action and
    returns an alerts ``Delivery`` (endpoint, ok, attempts, status, error); None: nothing can be sent."""
    if now.tzinfo is None:
        raise ValueError(f"evaluate: now must be timezone-aware (UTC), not {now.isoformat()}")
    evaluated_at = now.astimezone(UTC)
    ordered = _signal_rows(signals)
    rows = []
    for policy in policies.policies:
        handled, counted = _past(history, policy.id, evaluated_at.date())
        for signal in (s for s in ordered if matches(policy, s)):
            action = _action(policy, signal)
            if signal["SignalId"] in handled:
                outcome, delivery = DUPLICATE, None
            elif policies.kill_switch:
                outcome, delivery = KILLED, None
            elif counted >= policy.max_per_day:
                outcome, delivery = LIMITED, None
            else:
                outcome, delivery = _act(policy, action, send)
                counted += 1
            if outcome in HANDLED:
                handled.add(signal["SignalId"])
            rows.append(_row(evaluated_at, policy, action, outcome, delivery))
    return pl.DataFrame(rows, schema=POLICY_ACTIONS, orient="row")


def matches(policy: Policy, signal: dict) -> bool:
    """Whether a SIGNALS row (as a dict) is one ``policy`` reads: its kind, status, check, size and owner."""
    when = policy.when
    amount = signal["Amount"]
    return (signal["Kind"] == when.signal
            and (when.statuses is None or signal["Status"] in when.statuses)
            and (when.checks is None or signal["CheckName"] in when.checks)
            and (when.min_delta is None or (amount is not None and abs(amount) >= when.min_delta))
            and (policy.owners is None or signal["Owner"] in policy.owners))


def action_rates(actions: pl.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """M6, per policy and UTC day of POLICY_ACTIONS rows: ``acted`` (enforce and canary calls accepted),
    ``would_act`` (shadow, and canary for owners outside the canary) and ``delivery_failed``, apart."""
    counts = (actions.group_by("PolicyId", "Day")
              .agg(acted=(pl.col("Outcome") == ACTED).sum(),
                   would_act=pl.col("Outcome").is_in([WOULD_ACT, SKIPPED_NOT_CANARY]).sum(),
                   delivery_failed=(pl.col("Outcome") == DELIVERY_FAILED).sum())
              .sort("PolicyId", "Day"))
    rates: dict[str, dict[str, dict[str, int]]] = {}
    for row in counts.iter_rows(named=True):
        rates.setdefault(row["PolicyId"], {})[row["Day"].isoformat()] = {
            "acted": row["acted"], "would_act": row["would_act"], "delivery_failed": row["delivery_failed"]}
    return rates


def shadow_lag(policies: PolicySet, today: date) -> dict[str, dict]:
    """M12 per policy: ``days`` in shadow before enforce — from ``shadow_since`` to the enforce ``mode_since``,
    or, not yet enforced (shadow or canary), to ``today`` — and ``within_target``: enforced after 7–30 days,
    or not enforced and at most 30 days so far. Without the dates it needs, ``days`` and ``within_target``
    are None and ``note`` says which is missing."""
    return {policy.id: _lag(policy, today) for policy in policies.policies}


def _lag(policy: Policy, today: date) -> dict:
    enforced = policy.mode == ENFORCE
    lag = {"mode": policy.mode, "enforced": enforced, "days": None, "within_target": None, "note": None,
           "shadow_since": _iso(policy.shadow_since), "enforce_since": _iso(policy.mode_since) if enforced else None}
    if policy.shadow_since is None:
        return lag | {"note": "no shadow_since: how long the policy ran in shadow is unknown"}
    if enforced and policy.mode_since is None:
        return lag | {"note": "no mode_since: when enforce began is unknown"}
    days = ((policy.mode_since if enforced else today) - policy.shadow_since).days
    within = SHADOW_DAYS_MIN <= days <= SHADOW_DAYS_MAX if enforced else days <= SHADOW_DAYS_MAX
    return lag | {"days": days, "within_target": within}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


# ---------------------------------------------------------------------------------------------
# Signals and history
# ---------------------------------------------------------------------------------------------
def _signal_rows(signals: pl.DataFrame) -> list[dict]:
    """SIGNALS rows as dicts in evaluation order (At, SignalId), after checking columns, types and values."""
    for column, dtype in SIGNALS.items():
        if column not in signals.columns:
            raise ValueError(f"signals: missing column {column!r} (SIGNALS: {', '.join(SIGNALS)})")
        if signals.schema[column] != dtype:
            raise ValueError(f"signals: column {column!r} is {signals.schema[column]}, not {dtype}")
    rows = signals.select(*SIGNALS).sort("At", "SignalId").to_dicts()
    for row in rows:
        for column in REQUIRED_SIGNAL_FIELDS:
            if row[column] is None:
                raise ValueError(f"signals: signal {row['SignalId']!r}: {column} is null")
        if row["Kind"] not in SIGNAL_KINDS:
            raise ValueError(f"signals: signal {row['SignalId']!r}: unknown Kind {row['Kind']!r} "
                             f"(allowed: {', '.join(SIGNAL_KINDS)})")
        if row["Status"] not in SIGNAL_STATUSES[row["Kind"]]:
            raise ValueError(f"signals: signal {row['SignalId']!r}: unknown Status {row['Status']!r} for Kind "
                             f"{row['Kind']} (allowed: {', '.join(SIGNAL_STATUSES[row['Kind']])})")
        if row["Severity"] not in SEVERITIES:
            raise ValueError(f"signals: signal {row['SignalId']!r}: unknown Severity {row['Severity']!r} "
                             f"(allowed: {', '.join(SEVERITIES)})")
    return rows


def _past(history: pl.DataFrame | None, policy_id: str, day: date) -> tuple[set[str], int]:
    """The signals ``policy_id`` already handled, and how many of its actions count against today's limit."""
    if history is None:
        return set(), 0
    mine = history.filter(pl.col("PolicyId") == policy_id)
    handled = set(mine.filter(pl.col("Outcome").is_in(HANDLED))["SignalId"].to_list())
    counted = mine.filter(pl.col("Outcome").is_in(COUNTED) & (pl.col("Day") == day)).height
    return handled, counted


# ---------------------------------------------------------------------------------------------
# One action
# ---------------------------------------------------------------------------------------------
def _action(policy: Policy, signal: dict) -> Action:
    return Action(
        policy_id=policy.id, action=policy.action, mode=policy.mode,
        severity=policy.severity or signal["Severity"], endpoint=policy.endpoint,
        signal_id=signal["SignalId"], kind=signal["Kind"], owner=signal["Owner"], asset=signal["Asset"],
        check_name=signal["CheckName"], partition=signal["Partition"], amount=signal["Amount"],
        currency=signal["Currency"], status=signal["Status"], summary=signal["Summary"], link=signal["Link"],
        at=signal["At"],
    )


def _act(policy: Policy, action: Action, send: Callable[[Action], Delivery] | None) -> tuple[str, Delivery | None]:
    if policy.mode == SHADOW:
        return WOULD_ACT, None
    if policy.mode == CANARY and action.owner not in policy.canary_owners:
        return SKIPPED_NOT_CANARY, None
    delivery = _send(send, action)
    return (ACTED if delivery.ok else DELIVERY_FAILED), delivery


def _send(send: Callable[[Action], Delivery] | None, action: Action) -> Delivery:
    """The delivery of one action; never raises (no ``send``, or one that raises, is a failed delivery)."""
    if send is None:
        return _not_sent(action, "not sent: no notifier configured")
    try:
        return send(action)
    except Exception as e:  # noqa: BLE001 - a broken sender must not stop the other policies: recorded, failed
        return _not_sent(action, f"send raised {type(e).__name__}: {e}")


def _not_sent(action: Action, error: str) -> Delivery:
    return Delivery(endpoint=action.endpoint, ok=False, attempts=0, status=None, error=error, seconds=0.0)


def _row(evaluated_at: datetime, policy: Policy, action: Action, outcome: str, delivery: Delivery | None) -> tuple:
    sent = delivery or _NOTHING_SENT
    return (evaluated_at, policy.id, policy.mode, action.signal_id, action.kind, action.owner, action.action,
            outcome, sent.endpoint or policy.endpoint, sent.attempts, sent.status, sent.error, _payload(action),
            evaluated_at.date())


def _payload(action: Action) -> str:
    return json.dumps(vars(action), default=_json_value)  # its fields are flat: no deep copy (asdict) needed


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
