"""Policies as data: what a policy file says after validation, the signals policies read and the actions
they record (no Dagster here).

A policy turns signals (a budget status, an anomaly, a failed check, a failed run) into an action
(notify, a ticket, a scale-down request), in one of three modes: ``shadow`` records what it would do,
``canary`` acts for a named subset of owners and records the rest, ``enforce`` acts. Every evaluation
of every matching signal is one ``POLICY_ACTIONS`` row, whatever the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import polars as pl

from focus_platform.alerts import Alert
from focus_platform.spec.columns import MONEY, TIMESTAMP

# signal kinds, and the Status values each kind's signals carry (what `when.status` may name)
BUDGET, ANOMALY, CHECK, RUN_FAILURE = "budget", "anomaly", "check", "run_failure"
SIGNAL_STATUSES = {
    BUDGET: ("OK", "WARN", "ERROR", "NO_RATE"),  # budget_status.Status
    ANOMALY: ("raised", "suppressed"),  # cost_anomalies.Status
    CHECK: ("WARN", "ERROR"),  # the severity of the failed check
    RUN_FAILURE: ("failed",),
}
SIGNAL_KINDS = tuple(SIGNAL_STATUSES)

# actions; ticket and scale_down are webhook calls to a named endpoint
NOTIFY, TICKET, SCALE_DOWN = "notify", "ticket", "scale_down"
POLICY_ACTION_KINDS = (NOTIFY, TICKET, SCALE_DOWN)
ACTIONS_NEEDING_ENDPOINT = (TICKET, SCALE_DOWN)

SHADOW, CANARY, ENFORCE = "shadow", "canary", "enforce"
MODES = (SHADOW, CANARY, ENFORCE)

DEFAULT_MAX_PER_DAY = 10  # the safety limit of a policy that names none

# outcomes of one policy × signal evaluation
WOULD_ACT = "would-act"  # shadow: the payload is recorded, nothing is called
ACTED = "acted"  # enforce, or canary for a canary owner: the endpoint accepted the call
DELIVERY_FAILED = "delivery-failed"  # the call failed or could not be made (attempts, status and error recorded)
LIMITED = "limited"  # past the policy's max_per_day: no action
KILLED = "killed"  # the kill switch is on: no action
DUPLICATE = "duplicate"  # the signal was already acted on (or would have been) by this policy
SKIPPED_NOT_CANARY = "skipped-not-canary"  # canary, an owner outside canary_owners: recorded as shadow would
OUTCOMES = (WOULD_ACT, ACTED, DELIVERY_FAILED, LIMITED, KILLED, DUPLICATE, SKIPPED_NOT_CANARY)
HANDLED = (ACTED, WOULD_ACT, SKIPPED_NOT_CANARY)  # a later evaluation of the same signal is a duplicate
COUNTED = (*HANDLED, DELIVERY_FAILED)  # what counts against max_per_day: every action made or that would be

# M12: a policy runs in shadow this many days before enforce (service level M12's "7–30 days")
SHADOW_DAYS_MIN, SHADOW_DAYS_MAX = 7, 30

SIGNALS = {
    "SignalId": pl.String,  # the incident key: one incident, one action per policy
    "Kind": pl.String,  # SIGNAL_KINDS
    "Severity": pl.String,  # alerts.SEVERITIES (page | ticket | info): the alert's, unless the policy names one
    "Owner": pl.String,
    "Asset": pl.String,
    "CheckName": pl.String,
    "Partition": pl.String,
    "Amount": MONEY,  # the money at stake (an anomaly's Delta: min_delta compares its size); nullable
    "Currency": pl.String,
    "Status": pl.String,  # SIGNAL_STATUSES[Kind]
    "Summary": pl.String,
    "Link": pl.String,  # URL of the asset in the UI
    "At": TIMESTAMP,
}

POLICY_ACTIONS = {
    "x_EvaluatedAt": TIMESTAMP,
    "PolicyId": pl.String,
    "Mode": pl.String,
    "SignalId": pl.String,
    "Kind": pl.String,
    "Owner": pl.String,
    "Action": pl.String,
    "Outcome": pl.String,  # OUTCOMES
    "Endpoint": pl.String,  # the policy's endpoint, or the one a delivery went to; null: routed by severity, not sent
    "Attempts": pl.Int32,  # HTTP attempts (0 when nothing was sent)
    "HttpStatus": pl.Int32,
    "Error": pl.String,
    "Payload": pl.String,  # JSON of the Action
    "Day": pl.Date,  # the UTC day of the evaluation (max_per_day counts per this day)
}


class PolicyError(ValueError):
    """A policy file that cannot be used: one line naming the file, the entry (``policies[2].action``) and what
    is wrong."""


@dataclass(frozen=True)
class Trigger:
    """A policy's ``when``: the signals it reads. A filter left out matches every signal of the kind."""
    signal: str  # SIGNAL_KINDS
    statuses: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None  # check signals: CheckName among these
    min_delta: Decimal | None = None  # anomaly signals: |Amount| at least this


@dataclass(frozen=True)
class Policy:
    id: str
    file: str  # the policy file it was read from
    when: Trigger
    action: str  # POLICY_ACTION_KINDS
    mode: str  # MODES
    max_per_day: int
    owners: tuple[str, ...] | None = None  # None: every owner
    severity: str | None = None  # None: the signal's Severity
    endpoint: str | None = None  # None: routed by severity (notify only)
    canary_owners: tuple[str, ...] = ()  # mode canary only
    mode_since: date | None = None
    shadow_since: date | None = None  # mode shadow without it: mode_since


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[Policy, ...] = ()
    kill_switch: bool = False  # on: every policy evaluates, none acts (outcome "killed")


@dataclass(frozen=True)
class Action:
    """What ``send`` receives: one action of one policy on one signal, with what an alert needs."""
    policy_id: str
    action: str
    mode: str
    severity: str
    endpoint: str | None
    signal_id: str
    kind: str
    owner: str | None
    asset: str | None
    check_name: str | None
    partition: str | None
    amount: Decimal | None
    currency: str | None
    status: str | None
    summary: str | None
    link: str | None
    at: datetime

    def alert(self) -> Alert:
        """The alert this action sends. Its id, the incident key, is per policy and signal: two policies on one
        signal are two alerts, one policy on one signal is one."""
        return Alert(
            id=f"{self.policy_id}/{self.signal_id}", severity=self.severity,
            title=f"{self.policy_id} ({self.action}): {self.kind} {self.status or ''}".rstrip(),
            check=self.check_name, asset=self.asset, partition=self.partition, owner=self.owner,
            amount=self.amount, currency=self.currency, summary=self.summary or "", link=self.link,
        )
