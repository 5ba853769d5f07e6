"""Alerts that reach people: Slack-compatible and generic JSON webhooks, routed by severity, sent once per
incident, retried with backoff, never raising (no Dagster here).

``read_alert_config`` reads ``<landing>/alerts/endpoints.yaml``; ``Notifier(config).send(alert)`` routes an
``Alert`` to its endpoints and returns one ``Delivery`` per endpoint; ``asset_link`` makes the Dagster UI link an
alert carries.
"""

from focus_platform.alerts.config import (
    ALERTS_FILE,
    FORMATS,
    HTTP,
    INFO,
    PAGE,
    SEVERITIES,
    SLACK,
    TICKET,
    AlertConfig,
    AlertConfigError,
    Endpoint,
    read_alert_config,
)
from focus_platform.alerts.message import Alert, asset_link, payload
from focus_platform.alerts.webhook import Delivery, Notifier, deliver, route

__all__ = ["ALERTS_FILE", "FORMATS", "HTTP", "INFO", "PAGE", "SEVERITIES", "SLACK", "TICKET", "Alert", "AlertConfig",
           "AlertConfigError", "Delivery", "Endpoint", "Notifier", "asset_link", "deliver", "payload",
           "read_alert_config", "route"]
