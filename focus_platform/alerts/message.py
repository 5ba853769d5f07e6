"""An alert and what it looks like on the wire: a Slack-compatible incoming-webhook message or a flat JSON object;
links to an asset in the Dagster UI (no Dagster here).

Amounts travel as text (the Decimal as written, or grouped and rounded to cents in the Slack line people read),
never as JSON numbers: a float would not keep a Decimal(38,12) exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from urllib.parse import quote

from focus_platform.alerts.config import FORMATS, HTTP, SEVERITIES, SLACK

PAYLOAD_VERSION = 1  # of the generic (http) payload
SLACK_TEXT_LIMIT = 3000  # characters of a section's text (Slack Block Kit)
SLACK_FIELD_LIMIT = 2000  # characters of one section field


@dataclass(frozen=True)
class Alert:
    """One alert for people. ``id``: the incident key (one incident, one alert: a notifier sends an id once);
    ``severity``: page | ticket | info (what routes it); ``title``: one line; ``check``, ``asset`` (key path
    joined by ``/``), ``partition``, ``owner``: where it comes from; ``amount`` + ``currency``: the money at
    stake (Decimal, never a float); ``summary``: a few lines of detail; ``link``: the asset in the Dagster UI."""
    id: str
    severity: str
    title: str
    check: str | None = None
    asset: str | None = None
    partition: str | None = None
    owner: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    summary: str = ""
    link: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("an alert needs an id (its incident key)")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.id}: unknown severity {self.severity!r}; severities: {', '.join(SEVERITIES)}")
        if self.amount is not None and not isinstance(self.amount, Decimal):
            raise TypeError(f"alert {self.id}: amount must be a Decimal, not {type(self.amount).__name__}")


def asset_link(ui_url: str, asset: str, partition: str | None = None) -> str:
    """The Dagster UI page of an asset: ``{ui_url}/assets/{key path}``, each key part URL-encoded (the UI's
    ``assetDetailsPathForKey``); with a partition, its partitions tab opened at that key
    (``?view=partitions&partition=<key>``)."""
    path = "/".join(quote(part, safe="") for part in asset.split("/"))
    link = f"{ui_url.rstrip('/')}/assets/{path}"
    return f"{link}?view=partitions&partition={quote(partition, safe='')}" if partition else link


def payload(alert: Alert, format: str, *, sent_at: datetime | None = None) -> dict:
    """The JSON body for an endpoint format: ``slack`` (``text`` + ``blocks``) or ``http`` (every Alert field,
    ``version`` and ``sent_at``, ISO 8601 UTC; now unless given)."""
    if format == SLACK:
        return _slack(alert)
    if format == HTTP:
        fields = asdict(alert) | {"amount": None if alert.amount is None else str(alert.amount)}
        return {"version": PAYLOAD_VERSION, **fields, "sent_at": (sent_at or datetime.now(UTC)).isoformat()}
    raise ValueError(f"unknown format {format!r}; formats: {', '.join(FORMATS)}")


def _slack(alert: Alert) -> dict:
    """Slack's incoming-webhook shape: ``text`` is the one line notifications show
    (``[PAGE] budget_burn · team platform · 1,234.56 USD · <link>``); ``blocks`` a section with the title and
    summary, and a section with the fields check, owner, amount, partition and link (those present)."""
    line = [f"[{alert.severity.upper()}] {_escape(alert.check or alert.title)}"]
    if alert.owner:
        line.append(f"team {_escape(alert.owner)}")
    if alert.amount is not None:
        line.append(_money(alert))
    if alert.link:
        line.append(f"<{alert.link}>")
    heading = f"*[{alert.severity.upper()}] {_escape(alert.title)}*"
    text = f"{heading}\n{_escape(alert.summary)}" if alert.summary else heading
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_LIMIT)}}]
    fields = [(name, value) for name, value in (
        ("Check", alert.check and _escape(alert.check)),
        ("Owner", alert.owner and _escape(alert.owner)),
        ("Amount", alert.amount is not None and _money(alert)),
        ("Partition", alert.partition and _escape(alert.partition)),
        ("Link", alert.link and f"<{alert.link}|{_escape(alert.asset or alert.link)}>"),
    ) if value]
    if fields:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{name}*\n{value}", SLACK_FIELD_LIMIT)} for name, value in fields]})
    return {"text": " · ".join(line), "blocks": blocks}


def _money(alert: Alert) -> str:
    """The amount for people: grouped, rounded half-even to cents when it has more decimals, and the currency."""
    amount = alert.amount
    if amount.as_tuple().exponent < -2:
        amount = amount.quantize(Decimal("0.01"), context=Context(prec=60))
    return f"{amount:,} {_escape(alert.currency or '')}".rstrip()


def _escape(text: str) -> str:
    """Slack's control characters in mrkdwn text: &, < and > (links are written by ``_slack`` itself)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
