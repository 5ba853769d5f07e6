"""The alerts configuration (``<landing>/alerts/endpoints.yaml``): webhook endpoints, routes from severity to
endpoints, and the Dagster UI's base URL for links (no Dagster here).

```yaml
endpoints:
  - name: oncall
    url: ${FOCUS_PAGER_WEBHOOK}   # ${VAR} references are read from the environment (secrets stay out of files)
    format: slack                 # slack | http
    timeout_seconds: 5            # per attempt
    retries: 3                    # attempts after the first
    backoff_seconds: 1            # doubled each retry
routes:                           # severity -> endpoint names
  page: [oncall]
ui_url: http://localhost:3000
```

A file that cannot be used is one ``AlertConfigError`` line naming the file, the entry (``endpoints[1].retries``)
and the problem; YAML is read by ``yamltext.load`` (a key written twice is refused, seconds such as ``0.5`` are
read as Decimal, then float). An environment variable that is missing or empty does not fail the load: its
endpoint is *disabled* with the reason, and a delivery to it is a failed ``Delivery`` carrying that reason.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from focus_platform import yamltext

ALERTS_FILE = "alerts/endpoints.yaml"  # under the landing root
PAGE, TICKET, INFO = "page", "ticket", "info"
SEVERITIES = (PAGE, TICKET, INFO)
SLACK, HTTP = "slack", "http"
FORMATS = (SLACK, HTTP)
DEFAULT_UI_URL = "http://localhost:3000"  # `dagster dev`'s default

CONFIG_FIELDS = ("endpoints", "routes", "ui_url")
ENDPOINT_FIELDS = ("name", "url", "format", "timeout_seconds", "retries", "backoff_seconds")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class AlertConfigError(ValueError):
    """An alerts file that cannot be used: one line naming the file, the entry and the problem."""


@dataclass(frozen=True)
class Endpoint:
    """A webhook to POST alerts to. ``disabled``: why it cannot be used (an environment variable its URL names
    is not set), else None; a disabled endpoint has an empty url. The url is left out of the repr: webhook URLs
    carry their secret."""
    name: str
    url: str = field(repr=False)
    format: str = HTTP
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 1.0
    disabled: str | None = None


@dataclass(frozen=True)
class AlertConfig:
    """Endpoints by name, the endpoint names each severity routes to, and the Dagster UI's base URL. The empty
    config routes nothing."""
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ui_url: str = DEFAULT_UI_URL


def read_alert_config(files: list[tuple[str, bytes]], env: Mapping[str, str] = os.environ) -> AlertConfig:
    """The alerts config from ``(path, content)`` pairs (usually just ``alerts/endpoints.yaml``; none: the empty
    config). Endpoint names are unique across files, routes name known endpoints, ``ui_url`` is set at most
    once."""
    endpoints: dict[str, Endpoint] = {}
    routes: dict[str, tuple[str, ...]] = {}
    route_entries: list[tuple[str, str, str, int]] = []  # (file, severity, endpoint name, index) to check at the end
    ui_url: tuple[str, str] | None = None  # (file, url)
    for path, content in files:
        document = _parse_yaml(path, content)
        if document is None:
            continue
        _check_fields(path, "", document, CONFIG_FIELDS)
        for i, node in enumerate(_list(path, "endpoints", document.get("endpoints", []))):
            endpoint = _endpoint(path, f"endpoints[{i}]", node, env)
            if endpoint.name in endpoints:
                raise AlertConfigError(f"{path}: endpoints[{i}].name: endpoint {endpoint.name!r} is defined twice")
            endpoints[endpoint.name] = endpoint
        for severity, names in _routes(path, document.get("routes", {})).items():
            routes[severity] = tuple(dict.fromkeys((*routes.get(severity, ()), *names)))
            route_entries += [(path, severity, name, i) for i, name in enumerate(names)]
        if "ui_url" in document:
            if ui_url is not None:
                raise AlertConfigError(f"{path}: ui_url: already set in {ui_url[0]}")
            ui_url = (path, _http_url(path, "ui_url", document["ui_url"]))
    for path, severity, name, i in route_entries:
        if name not in endpoints:
            known = ", ".join(endpoints) or "none"
            raise AlertConfigError(f"{path}: routes.{severity}[{i}]: unknown endpoint {name!r}"
                                   f"{yamltext.did_you_mean(name, endpoints)}; endpoints: {known}")
    return AlertConfig(endpoints, routes, ui_url[1].rstrip("/") if ui_url else DEFAULT_UI_URL)


# ---------------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------------
def _endpoint(path: str, where: str, node: object, env: Mapping[str, str]) -> Endpoint:
    _check_fields(path, where, node, ENDPOINT_FIELDS)
    for required in ("name", "url"):
        if required not in node:
            raise AlertConfigError(f"{path}: {where}: missing required field {required!r}")
    name = _text(path, f"{where}.name", node["name"])
    if not ENDPOINT_NAME.match(name):
        raise AlertConfigError(f"{path}: {where}.name: {name!r} is not a plain name (letters, digits, . _ -)")
    format_ = node.get("format", HTTP)
    if format_ not in FORMATS:
        raise AlertConfigError(f"{path}: {where}.format: unknown format {format_!r}"
                               f"{yamltext.did_you_mean(format_, FORMATS)}; formats: {', '.join(FORMATS)}")
    url, disabled = _resolve_url(path, f"{where}.url", node["url"], env)
    return Endpoint(
        name=name, url=url, format=format_,
        timeout_seconds=_number(path, f"{where}.timeout_seconds", node.get("timeout_seconds", 5), positive=True),
        retries=_count(path, f"{where}.retries", node.get("retries", 3)),
        backoff_seconds=_number(path, f"{where}.backoff_seconds", node.get("backoff_seconds", 1), positive=False),
        disabled=disabled)


def _resolve_url(path: str, where: str, value: object, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The URL with its ``${VAR}`` references replaced, and None; or ``("", reason)`` when a variable is missing or
    empty, or the URL it makes is not http(s). A URL written in the file itself must be http(s)."""
    text = _text(path, where, value)
    names = ENV_REFERENCE.findall(text)
    if not names:
        return _http_url(path, where, text), None
    if not text.startswith("${") and urlsplit(text).scheme not in ("http", "https"):
        raise AlertConfigError(f"{path}: {where}: {text!r} is not an http(s) URL")
    missing = [name for name in names if not env.get(name, "").strip()]
    if missing:
        return "", f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set ({path}: {where})"
    resolved = ENV_REFERENCE.sub(lambda m: env[m.group(1)].strip(), text)
    if not _is_http_url(resolved):
        return "", f"the URL made from {', '.join(names)} is not an http(s) URL ({path}: {where})"
    return resolved, None


def _routes(path: str, node: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(node, dict):
        raise AlertConfigError(f"{path}: routes: must be a mapping of severity to endpoint names, "
                               f"not {yamltext.describe(node)}")
    routes = {}
    for severity, names in node.items():
        if severity not in SEVERITIES:
            raise AlertConfigError(f"{path}: routes: unknown severity {severity!r}"
                                   f"{yamltext.did_you_mean(severity, SEVERITIES)}; "
                                   f"severities: {', '.join(SEVERITIES)}")
        items = _list(path, f"routes.{severity}", names if names is not None else [])
        routes[severity] = tuple(_text(path, f"routes.{severity}[{i}]", name) for i, name in enumerate(items))
    return routes


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------
def _parse_yaml(path: str, content: bytes) -> object:
    try:
        return yamltext.load(content, path)
    except yamltext.YamlError as e:
        raise AlertConfigError(str(e)) from None


def _check_fields(path: str, where: str, node: object, allowed: tuple[str, ...]) -> None:
    if problem := yamltext.fields_problem(node, allowed):
        raise AlertConfigError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


def _list(path: str, where: str, value: object) -> list:
    if not isinstance(value, list):
        raise AlertConfigError(f"{path}: {where}: must be a list, not {yamltext.describe(value)}")
    return value


def _text(path: str, where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertConfigError(f"{path}: {where}: must be non-empty text, not {yamltext.describe(value)}")
    return value.strip()


def _http_url(path: str, where: str, value: object) -> str:
    url = _text(path, where, value)
    if not _is_http_url(url):
        raise AlertConfigError(f"{path}: {where}: {url!r} is not an http(s) URL")
    return url


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _number(path: str, where: str, value: object, *, positive: bool) -> float:
    """Seconds, from a YAML int or Decimal (``.inf`` stays text: not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise AlertConfigError(f"{path}: {where}: must be a number of seconds, not {yamltext.describe(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise AlertConfigError(f"{path}: {where}: must be {'> 0' if positive else '>= 0'} and finite, not {value}")
    return seconds


def _count(path: str, where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AlertConfigError(f"{path}: {where}: must be a whole number, not {yamltext.describe(value)}")
    if value < 0:
        raise AlertConfigError(f"{path}: {where}: must be >= 0, not {value}")
    return value
