"""Anomaly detection settings, suppression windows and known one-offs, read from the landing zone (no Dagster here).

``<landing>/anomalies/settings.yaml`` (every section optional)::

    settings:
      keys: [Owner, ServiceName, BillingAccountId, BillingCurrency]   # one series per distinct key tuple
      min_history_days: 28       # fewer days of usage before a day: the day is not scored (28 at least: the baseline's need)
      threshold: 7.5             # robust score (residual / robust scale) at or past which a day is anomalous
      cost_floor: "10"           # |actual − expected| below this (in the series' currency): nothing raised
      group_gap_days: 2          # anomalous days of a series this close apart: one incident
      top_contributors: 5        # resources/SKUs listed per anomaly
    suppressions:                # known jobs: their anomalies are recorded as "suppressed", never alerts
      - match: {Owner: data-eng, ServiceName: Amazon EMR}
        from: 2026-12-01
        until: 2026-12-07        # inclusive
        reason: quarterly reprocessing
    known_one_offs:              # days left out of the baseline and not scored
      - date: 2026-11-15
        match: {Owner: web}
        reason: load test before launch

``match`` names key columns (of ``settings.keys``) and the text each must equal; a series matches when
every named column does. Every problem is one ``AnomalyError`` line naming the file, the entry
(``suppressions[1].until``) and what is wrong. Decimals are read from the YAML text, never through a float;
dates too (an impossible day such as ``2026-13-01`` is an error of its entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal

from focus_platform import yamltext

SETTINGS_FILE = "anomalies/settings.yaml"  # under the landing root
KEY_COLUMNS = ("Owner", "ProviderName", "ServiceName", "BillingAccountId", "SubAccountId", "BillingCurrency")
FILE_SECTIONS = ("settings", "suppressions", "known_one_offs")
SUPPRESSION_FIELDS = ("match", "from", "until", "reason")
ONE_OFF_FIELDS = ("date", "match", "reason")
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class AnomalyError(ValueError):
    """An anomaly settings file that cannot be used: one line naming the file, the entry and the problem."""


@dataclass(frozen=True)
class OneOff:
    """A known one-off: the matching series' usage on ``day`` is left out of the baseline and not scored."""
    day: date
    match: tuple[tuple[str, str], ...]
    reason: str


@dataclass(frozen=True)
class Suppression:
    """A suppression window: anomalies of the matching series from ``start`` to ``end`` (inclusive) are
    recorded with Status "suppressed" and ``reason``, and are never alerts."""
    match: tuple[tuple[str, str], ...]
    start: date
    end: date
    reason: str


@dataclass(frozen=True)
class AnomalySettings:
    keys: tuple[str, ...] = ("Owner", "ServiceName", "BillingAccountId", "BillingCurrency")
    min_history_days: int = 28  # also the least: factors, level and scale of anomalies.baseline need 28 days
    threshold: float = 7.5  # robust score (anomalies.baseline), chosen on generated data (tests/unit/test_anomaly_truth.py)
    cost_floor: Decimal = Decimal("10")
    group_gap_days: int = 2
    top_contributors: int = 5
    one_offs: tuple[OneOff, ...] = field(default=())


SETTING_FIELDS = tuple(f.name for f in fields(AnomalySettings) if f.name != "one_offs")


def read_anomaly_settings(files: list[tuple[str, bytes]]) -> tuple[AnomalySettings, list[Suppression]]:
    """The settings, known one-offs and suppression windows of the ``(path, content)`` files; no files: the
    defaults. At most one file may hold a ``settings`` section; suppressions and one-offs add up."""
    settings, settings_file, one_offs, suppressions = AnomalySettings(), None, [], []
    parsed = [(path, _file_sections(path, data)) for path, data in files]
    for path, sections in parsed:
        if "settings" in sections:
            if settings_file is not None:
                raise AnomalyError(f"{path}: settings: a second settings section (the first is in {settings_file})")
            settings, settings_file = _settings(f"{path}: settings", sections["settings"]), path
    for path, sections in parsed:
        for i, node in enumerate(_entries(f"{path}: suppressions", sections.get("suppressions", []))):
            suppressions.append(_suppression(f"{path}: suppressions[{i}]", node, settings.keys))
        for i, node in enumerate(_entries(f"{path}: known_one_offs", sections.get("known_one_offs", []))):
            one_offs.append(_one_off(f"{path}: known_one_offs[{i}]", node, settings.keys))
    return AnomalySettings(**{name: getattr(settings, name) for name in SETTING_FIELDS},
                           one_offs=tuple(one_offs)), suppressions


def _file_sections(path: str, data: bytes) -> dict:
    try:
        node = yamltext.load(data, path)
    except yamltext.YamlError as e:
        raise AnomalyError(str(e)) from None
    if node is None:
        return {}
    return _fields(path, node, FILE_SECTIONS)


def _settings(where: str, node: object) -> AnomalySettings:
    values = _fields(where, node, SETTING_FIELDS)
    defaults = AnomalySettings()
    keys = _keys(f"{where}.keys", values["keys"]) if "keys" in values else defaults.keys
    return AnomalySettings(
        keys=keys,
        min_history_days=_whole(f"{where}.min_history_days", values.get("min_history_days", defaults.min_history_days),
                                defaults.min_history_days),
        threshold=float(_positive(f"{where}.threshold", values.get("threshold", Decimal(str(defaults.threshold))))),
        cost_floor=_non_negative(f"{where}.cost_floor", values.get("cost_floor", defaults.cost_floor)),
        group_gap_days=_whole(f"{where}.group_gap_days", values.get("group_gap_days", defaults.group_gap_days), 0),
        top_contributors=_whole(f"{where}.top_contributors",
                                values.get("top_contributors", defaults.top_contributors), 1),
    )


def _suppression(where: str, node: object, keys: tuple[str, ...]) -> Suppression:
    values = _fields(where, node, SUPPRESSION_FIELDS, SUPPRESSION_FIELDS)
    start, end = _date(f"{where}.from", values["from"]), _date(f"{where}.until", values["until"])
    if end < start:
        raise AnomalyError(f"{where}.until: {end} is before from ({start})")
    return Suppression(_match(f"{where}.match", values["match"], keys), start, end,
                       _text(f"{where}.reason", values["reason"]))


def _one_off(where: str, node: object, keys: tuple[str, ...]) -> OneOff:
    values = _fields(where, node, ONE_OFF_FIELDS, ONE_OFF_FIELDS)
    return OneOff(_date(f"{where}.date", values["date"]), _match(f"{where}.match", values["match"], keys),
                  _text(f"{where}.reason", values["reason"]))


def _fields(where: str, node: object, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if problem := yamltext.fields_problem(node, allowed, required):
        raise AnomalyError(f"{where}: {problem}")
    return node  # type: ignore[return-value]


def _entries(where: str, node: object) -> list:
    if not isinstance(node, list):
        raise AnomalyError(f"{where}: must be a list, not {yamltext.describe(node)}")
    return node


def _keys(where: str, node: object) -> tuple[str, ...]:
    if not isinstance(node, list) or not node:
        raise AnomalyError(f"{where}: must be a non-empty list of columns ({', '.join(KEY_COLUMNS)})")
    for i, column in enumerate(node):
        if column not in KEY_COLUMNS:
            raise AnomalyError(f"{where}[{i}]: unknown key column {column!r}; allowed: {', '.join(KEY_COLUMNS)}")
        if column in node[:i]:
            raise AnomalyError(f"{where}[{i}]: {column!r} is named twice")
    if "BillingCurrency" not in node:
        raise AnomalyError(f"{where}: must include BillingCurrency (amounts of two currencies are never summed)")
    return tuple(node)


def _match(where: str, node: object, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, dict) or not node:
        raise AnomalyError(f"{where}: must be a non-empty mapping of key column → value, "
                           f"not {yamltext.describe(node)}")
    for column, value in node.items():
        if column not in keys:
            raise AnomalyError(f"{where}: {column!r} is not a key column; allowed: {', '.join(keys)}")
        _text(f"{where}.{column}", value)
    return tuple(sorted(node.items()))


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AnomalyError(f"{where}: must be non-empty text, not {yamltext.describe(value)}")
    return value


def _date(where: str, value: object) -> date:
    """A calendar date YYYY-MM-DD, from its text (YAML gives dates as text); an impossible day says why."""
    if not isinstance(value, str) or not DATE_TEXT.fullmatch(value):
        raise AnomalyError(f"{where}: must be a date YYYY-MM-DD, not {yamltext.describe(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise AnomalyError(f"{where}: {value!r} is not a calendar date ({e})") from None


def _whole(where: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise AnomalyError(f"{where}: must be a whole number ≥ {least}, not {yamltext.describe(value)}")
    return value


def _positive(where: str, value: object) -> Decimal:
    number = _number(where, value)
    if number <= 0:
        raise AnomalyError(f"{where}: must be greater than 0, not {number}")
    return number


def _non_negative(where: str, value: object) -> Decimal:
    number = _number(where, value)
    if number < 0:
        raise AnomalyError(f"{where}: must not be negative, not {number}")
    return number


def _number(where: str, value: object) -> Decimal:
    """A number from YAML (Decimal or int) or from quoted text, never through a float."""
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            raise AnomalyError(f"{where}: must be a number, not {yamltext.describe(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or not Decimal(value).is_finite():
        raise AnomalyError(f"{where}: must be a finite number, not {yamltext.describe(value)}")
    return Decimal(value)
