"""Reading and validating policy files (``<landing>/policies/*.yaml``) into a ``PolicySet`` (no Dagster here).

```yaml
kill_switch: false
policies:
  - id: page-budget-overrun
    when: {signal: budget, status: [ERROR]}
    owners: [platform, web]
    action: notify
    severity: page
    endpoint: oncall
    mode: canary
    canary_owners: [web]
    max_per_day: 10
    mode_since: 2026-11-20
    shadow_since: 2026-11-01
```

Every problem is one ``PolicyError`` line naming the file, the entry (``policies[2].action``) and what is
wrong. Policies of all files form one set (ids unique across files); the kill switch is on when any file
turns it on. Dates stay text until read here (a YAML date that is no date is an error of its field, not
of the parser); ``min_delta`` is read as a Decimal from the YAML text, never through a float.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from focus_platform import yamltext
from focus_platform.alerts import SEVERITIES
from focus_platform.policies.model import (
    ACTIONS_NEEDING_ENDPOINT,
    ANOMALY,
    BUDGET,
    CANARY,
    CHECK,
    DEFAULT_MAX_PER_DAY,
    MODES,
    POLICY_ACTION_KINDS,
    RUN_FAILURE,
    SHADOW,
    SIGNAL_KINDS,
    SIGNAL_STATUSES,
    Policy,
    PolicyError,
    PolicySet,
    Trigger,
)

FILE_FIELDS = ("kill_switch", "policies")
POLICY_FIELDS = ("id", "when", "owners", "action", "severity", "endpoint", "mode", "canary_owners",
                 "max_per_day", "mode_since", "shadow_since")
POLICY_REQUIRED = ("id", "when", "action")
WHEN_FIELDS = {  # per signal kind, the filters `when` may hold besides `signal`
    BUDGET: ("status",),
    ANOMALY: ("status", "min_delta"),
    CHECK: ("status", "check"),
    RUN_FAILURE: ("status",),
}
POLICIES_FOLDER = "policies"  # under the landing root: the policy files, *.yaml
POLICY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_policies(files: list[tuple[str, bytes]], known_owners: set[str] | None = None, *,
                  known_endpoints: set[str] | None = None) -> PolicySet:
    """The policies of ``(path, content)`` pairs, validated; owners checked against ``known_owners`` and endpoint
    names against ``known_endpoints`` (the alerts config's) when given."""
    policies: list[Policy] = []
    defined_at: dict[str, str] = {}  # policy id → where it is defined
    kill_switch = False
    for path, data in files:
        node = _fields(path, "", _parse_yaml(path, data), FILE_FIELDS, ())
        if "kill_switch" in node:
            kill_switch |= _flag(path, "kill_switch", node["kill_switch"])
        entries = _list(path, "policies", node["policies"]) if "policies" in node else []
        for i, entry in enumerate(entries):
            policy = _policy(path, f"policies[{i}]", entry, known_owners, known_endpoints)
            if policy.id in defined_at:
                raise PolicyError(f"{path}: policies[{i}].id: duplicate id {policy.id!r} "
                                  f"(also {defined_at[policy.id]})")
            defined_at[policy.id] = f"{path}: policies[{i}]"
            policies.append(policy)
    return PolicySet(policies=tuple(policies), kill_switch=kill_switch)


def _parse_yaml(path: str, data: bytes) -> object:
    try:
        return yamltext.load(data, path)
    except yamltext.YamlError as e:
        raise PolicyError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# One policy
# ---------------------------------------------------------------------------------------------
def _policy(path: str, at: str, node: object, known_owners: set[str] | None,
            known_endpoints: set[str] | None) -> Policy:
    fields = _fields(path, at, node, POLICY_FIELDS, POLICY_REQUIRED)
    action = _choice(path, f"{at}.action", fields["action"], POLICY_ACTION_KINDS)
    mode = _choice(path, f"{at}.mode", fields.get("mode", SHADOW), MODES)
    owners = _owners(path, f"{at}.owners", fields["owners"], known_owners) if "owners" in fields else None
    canary_owners = _canary_owners(path, at, fields, mode, owners, known_owners)
    endpoint = _endpoint(path, f"{at}.endpoint", fields["endpoint"], known_endpoints) if "endpoint" in fields else None
    if endpoint is None and action in ACTIONS_NEEDING_ENDPOINT:
        raise PolicyError(f"{path}: {at}.endpoint: missing; action {action} is a webhook call to a named endpoint")
    mode_since = _date(path, f"{at}.mode_since", fields["mode_since"]) if "mode_since" in fields else None
    shadow_since = _date(path, f"{at}.shadow_since", fields["shadow_since"]) if "shadow_since" in fields else None
    if shadow_since and mode_since and shadow_since > mode_since:
        raise PolicyError(f"{path}: {at}.shadow_since: {shadow_since} is after mode_since {mode_since}")
    return Policy(
        id=_policy_id(path, f"{at}.id", fields["id"]),
        file=path,
        when=_trigger(path, f"{at}.when", fields["when"]),
        action=action,
        mode=mode,
        max_per_day=_max_per_day(path, f"{at}.max_per_day", fields.get("max_per_day", DEFAULT_MAX_PER_DAY)),
        owners=owners,
        severity=_choice(path, f"{at}.severity", fields["severity"], SEVERITIES) if "severity" in fields else None,
        endpoint=endpoint,
        canary_owners=canary_owners,
        mode_since=mode_since,
        shadow_since=shadow_since or (mode_since if mode == SHADOW else None),
    )


def _policy_id(path: str, at: str, value: object) -> str:
    text = _text(path, at, value)
    if not POLICY_ID.match(text):
        raise PolicyError(f"{path}: {at}: {text!r} is not an id (letters, digits, '.', '_', '-')")
    return text


def _trigger(path: str, at: str, node: object) -> Trigger:
    if not isinstance(node, dict) or "signal" not in node:
        raise PolicyError(f"{path}: {at}: must be a mapping with a signal ({', '.join(SIGNAL_KINDS)})")
    signal = _choice(path, f"{at}.signal", node["signal"], SIGNAL_KINDS)
    for key in node:
        kinds = [kind for kind, filters in WHEN_FIELDS.items() if key in filters]
        if kinds and signal not in kinds:
            raise PolicyError(f"{path}: {at}.{key}: only for signal {', '.join(kinds)} (signal is {signal})")
    fields = _fields(path, at, node, ("signal", *WHEN_FIELDS[signal]), ())
    statuses = None
    if "status" in fields:
        statuses = _texts(path, f"{at}.status", fields["status"])
        for i, status in enumerate(statuses):
            _choice(path, f"{at}.status[{i}]", status, SIGNAL_STATUSES[signal])
    return Trigger(
        signal=signal,
        statuses=statuses,
        checks=_texts(path, f"{at}.check", fields["check"]) if "check" in fields else None,
        min_delta=_decimal(path, f"{at}.min_delta", fields["min_delta"]) if "min_delta" in fields else None,
    )


def _owners(path: str, at: str, value: object, known_owners: set[str] | None) -> tuple[str, ...]:
    owners = _texts(path, at, value)
    for i, owner in enumerate(owners):
        if known_owners is not None and owner not in known_owners:
            raise PolicyError(f"{path}: {at}[{i}]: unknown owner {owner!r}"
                              f"{yamltext.did_you_mean(owner, known_owners)}; "
                              f"no allocation knows it ({len(known_owners)} known owners)")
    return owners


def _endpoint(path: str, at: str, value: object, known_endpoints: set[str] | None) -> str:
    name = _text(path, at, value)
    if known_endpoints is not None and name not in known_endpoints:
        raise PolicyError(f"{path}: {at}: unknown endpoint {name!r}{yamltext.did_you_mean(name, known_endpoints)}; "
                          f"endpoints: {', '.join(sorted(known_endpoints)) or 'none (no alerts config)'}")
    return name


def _canary_owners(path: str, at: str, fields: dict, mode: str, owners: tuple[str, ...] | None,
                   known_owners: set[str] | None) -> tuple[str, ...]:
    if mode != CANARY:
        if "canary_owners" in fields:
            raise PolicyError(f"{path}: {at}.canary_owners: only for mode canary (mode is {mode})")
        return ()
    if "canary_owners" not in fields:
        raise PolicyError(f"{path}: {at}.canary_owners: missing; mode canary acts only for the owners it names")
    canary = _owners(path, f"{at}.canary_owners", fields["canary_owners"], known_owners)
    for i, owner in enumerate(canary):
        if owners is not None and owner not in owners:
            raise PolicyError(f"{path}: {at}.canary_owners[{i}]: {owner!r} is not one of the policy's owners "
                              f"({', '.join(owners)})")
    return canary


def _max_per_day(path: str, at: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{path}: {at}: must be a whole number of at least 1, not {yamltext.describe(value)}")
    return value


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------
def _fields(path: str, at: str, node: object, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if problem := yamltext.fields_problem(node, allowed, required):
        raise PolicyError(f"{path}: {at}: {problem}" if at else f"{path}: {problem}")
    return node  # type: ignore[return-value]


def _choice(path: str, at: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise PolicyError(f"{path}: {at}: unknown value {value!r}{yamltext.did_you_mean(value, allowed)}; "
                          f"allowed: {', '.join(allowed)}")
    return value


def _text(path: str, at: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{path}: {at}: must be non-empty text, not {yamltext.describe(value)}")
    return value


def _list(path: str, at: str, value: object) -> list:
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{path}: {at}: must be a non-empty list, not {yamltext.describe(value)}")
    return value


def _texts(path: str, at: str, value: object) -> tuple[str, ...]:
    texts = tuple(_text(path, f"{at}[{i}]", item) for i, item in enumerate(_list(path, at, value)))
    for i, text in enumerate(texts):
        if text in texts[:i]:
            raise PolicyError(f"{path}: {at}[{i}]: {text!r} is named twice")
    return texts


def _flag(path: str, at: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{path}: {at}: must be true or false, not {yamltext.describe(value)}")
    return value


def _date(path: str, at: str, value: object) -> date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError as e:
            raise PolicyError(f"{path}: {at}: {value!r} is not a date ({e})") from None
    raise PolicyError(f"{path}: {at}: must be a date YYYY-MM-DD, not {yamltext.describe(value)}")


def _decimal(path: str, at: str, value: object) -> Decimal:
    """A non-negative amount, from the YAML text (quoted or not; a YAML float stays text until here)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PolicyError(f"{path}: {at}: must be an amount, not {yamltext.describe(value)}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PolicyError(f"{path}: {at}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise PolicyError(f"{path}: {at}: must be a finite amount of at least 0, not {yamltext.describe(value)}")
    return amount
