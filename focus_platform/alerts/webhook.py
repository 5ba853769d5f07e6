"""Sending alerts: routing by severity, one POST per endpoint with retries and backoff, and a notifier that sends
an incident once (standard library HTTP; no Dagster here).

``deliver`` never raises: a dead, slow or refusing endpoint is a ``Delivery`` with ``ok`` False and the error,
so an alert can never block the pipeline. It retries timeouts, connection errors and HTTP 5xx/429 after
``backoff_seconds × 2^k`` (k = 0, 1, …); any other 4xx is final (the payload or the URL is wrong: sending it again
would not help). Redirects are not followed (urllib would turn the POST into a GET and drop the alert). Errors
never contain the URL: webhook URLs carry their secret.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from focus_platform.alerts.config import AlertConfig, Endpoint
from focus_platform.alerts.message import Alert, payload

RETRIED_STATUSES = frozenset({429}) | frozenset(range(500, 600))
ERROR_BODY_CHARACTERS = 200  # of a refusing endpoint's answer kept in the error (Slack says why: "invalid_payload")


@dataclass(frozen=True)
class Delivery:
    """The outcome of sending one alert to one endpoint: ``attempts`` made (0: the endpoint is disabled), the last
    HTTP ``status`` (None when no answer came), the last ``error`` (None when ok), ``seconds`` in all."""
    endpoint: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    seconds: float


def route(config: AlertConfig, alert: Alert) -> list[Endpoint]:
    """The endpoints the alert's severity routes to (none when the config routes it nowhere)."""
    return [config.endpoints[name] for name in config.routes.get(alert.severity, ())]


def deliver(alert: Alert, endpoint: Endpoint, *, sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST the alert in the endpoint's format, retrying as the module says; ``sleep`` waits between attempts."""
    if endpoint.disabled:
        return Delivery(endpoint.name, False, 0, None, f"endpoint disabled: {endpoint.disabled}", 0.0)
    body = json.dumps(payload(alert, endpoint.format)).encode()
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        status, error, retry = _post(endpoint, body)
        if error is None or not retry or attempts > endpoint.retries:
            return Delivery(endpoint.name, error is None, attempts, status, error, time.monotonic() - started)
        sleep(endpoint.backoff_seconds * 2 ** (attempts - 1))


class Notifier:
    """Sends alerts to the endpoints their severity routes to, each incident once: an alert id already delivered
    (ok) to an endpoint by this notifier is not sent to it again, and an id in ``delivered_ids`` (incidents the
    caller's history shows as sent) is not sent at all. A failed endpoint is tried again on the next ``send``."""

    def __init__(self, config: AlertConfig, *, delivered_ids: Iterable[str] = (),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._history = frozenset(delivered_ids)
        self._delivered: set[tuple[str, str]] = set()  # (alert id, endpoint name) delivered ok

    def send(self, alert: Alert) -> list[Delivery]:
        """The deliveries of this alert, one per endpoint it was sent to: none when its id was delivered before or
        its severity routes nowhere."""
        if alert.id in self._history:
            return []
        deliveries = [deliver(alert, endpoint, sleep=self._sleep) for endpoint in route(self.config, alert)
                      if (alert.id, endpoint.name) not in self._delivered]
        self._delivered |= {(alert.id, delivery.endpoint) for delivery in deliveries if delivery.ok}
        return deliveries


def _post(endpoint: Endpoint, body: bytes) -> tuple[int | None, str | None, bool]:
    """One attempt: (HTTP status or None, error or None, whether a retry may help)."""
    request = urllib.request.Request(endpoint.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=endpoint.timeout_seconds) as response:
            response.read()
            return response.status, None, False
    except urllib.error.HTTPError as e:
        answer = " ".join(e.read(ERROR_BODY_CHARACTERS).decode(errors="replace").split())
        error = f"HTTP {e.code} {e.reason}" + (f": {answer}" if answer else "")
        if 300 <= e.code < 400:
            error += " (redirects are not followed: configure the final URL)"
        return e.code, error, e.code in RETRIED_STATUSES
    except TimeoutError:
        return None, f"timed out after {endpoint.timeout_seconds:g} s", True
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            return None, f"timed out after {endpoint.timeout_seconds:g} s", True
        return None, f"connection failed: {e.reason}", True
    except (OSError, http.client.HTTPException) as e:  # e.g. the connection closed before an answer
        return None, f"connection failed: {type(e).__name__}: {e}".rstrip(": "), True


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx becomes an HTTPError


_OPENER = urllib.request.build_opener(_RefuseRedirects)
