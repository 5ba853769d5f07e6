"""Sending policy actions through the alerts endpoints: the ``send`` that ``evaluate`` calls (no Dagster here).

An action whose policy names an endpoint is POSTed there (ticket and scale_down always name one); a notify
without an endpoint goes to the endpoints its severity routes to, and those deliveries are reported as one:
ok when every endpoint accepted it. An endpoint the alerts config does not have, or a severity routed
nowhere, is a failed delivery with the reason (recorded by ``evaluate``, never raised).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from focus_platform.alerts import AlertConfig, Delivery, deliver, route
from focus_platform.policies.model import Action


def alert_sender(config: AlertConfig, *, sleep: Callable[[float], None] = time.sleep) -> Callable[[Action], Delivery]:
    """The ``send`` for ``evaluate`` that delivers each action's alert through ``config``'s endpoints."""

    def send(action: Action) -> Delivery:
        alert = action.alert()
        if action.endpoint is not None:
            if action.endpoint not in config.endpoints:
                return _undelivered(action.endpoint, f"no endpoint {action.endpoint!r} in the alerts config")
            return deliver(alert, config.endpoints[action.endpoint], sleep=sleep)
        endpoints = route(config, alert)
        if not endpoints:
            return _undelivered(None, f"severity {alert.severity} is routed to no endpoint")
        return _one([deliver(alert, endpoint, sleep=sleep) for endpoint in endpoints])

    return send


def _undelivered(endpoint: str | None, error: str) -> Delivery:
    return Delivery(endpoint=endpoint, ok=False, attempts=0, status=None, error=error, seconds=0.0)


def _one(deliveries: list[Delivery]) -> Delivery:
    """Deliveries of one alert to several endpoints as one: ok when all are, the failures' errors and last
    failed status (else the last status), attempts and seconds summed."""
    if len(deliveries) == 1:
        return deliveries[0]
    failed = [d for d in deliveries if not d.ok]
    return Delivery(
        endpoint=",".join(d.endpoint for d in deliveries),
        ok=not failed,
        attempts=sum(d.attempts for d in deliveries),
        status=(failed or deliveries)[-1].status,
        error="; ".join(f"{d.endpoint}: {d.error}" for d in failed) or None,
        seconds=sum(d.seconds for d in deliveries),
    )
