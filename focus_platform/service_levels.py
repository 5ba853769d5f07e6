"""Service levels M1–M15 and the two invariants, declared once as data.

Each ``ServiceLevel`` says what is measured (numerator / denominator), its default target with the
comparison a measured value must pass, the unit, the severity of a miss and where it is measured
(an asset check, asset metadata, a benchmark, or a stage still to come: "(planned)").

Targets are configuration: ``FOCUS_SLO_TARGETS="M3=0.002,M5=0.001"`` overrides the defaults (the
comparison stays). ``target(id)`` is the effective target, ``meets(id, value)`` whether a measured
value passes it. The invariants (cost conservation, conformance) are exact and not configurable.

``python -m focus_platform.service_levels`` prints the markdown table of the README's section
"Service levels" (defaults; a test keeps the two equal).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

TARGETS_ENV = "FOCUS_SLO_TARGETS"
COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq}
FRACTION, SECONDS, DAYS, RATIO, COUNT, AMOUNT = "fraction", "seconds", "days", "ratio", "count", "currency amount"


class ServiceLevelError(ValueError):
    """An unknown service level, a service level without a numeric target, or a bad
    ``FOCUS_SLO_TARGETS`` entry (the message is one line naming the variable and the entry)."""


@dataclass(frozen=True)
class ServiceLevel:
    id: str
    name: str
    numerator: str
    denominator: str | None  # None: the measure is not a ratio (a duration, a count)
    comparison: str | None  # how a measured value passes the target; None: no single numeric target
    default_target: float | None
    unit: str
    severity: str
    measured_at: str
    note: str = ""  # what the number alone does not say (a second threshold, a range)
    configurable: bool = True  # the invariants are not

    @property
    def definition(self) -> str:
        return f"{self.numerator} / {self.denominator}" if self.denominator else self.numerator

    def target_text(self, value: float | None) -> str:
        if value is None:
            return self.note
        if self.unit in (FRACTION, RATIO):
            shown = f"{value:g} ({value * 100:g} %)"
        else:
            shown = f"{value:g}" + {SECONDS: " s", DAYS: " days"}.get(self.unit, "")
        return f"{self.comparison} {shown}" + (f"; {self.note}" if self.note else "")


SERVICE_LEVELS: tuple[ServiceLevel, ...] = (
    ServiceLevel("M1", "allocation coverage",
                 'spend (\\|allocated EffectiveCost\\|) whose owner on the first dimension is not the default '
                 '"unallocated", per billing period and currency', "spend", ">=", 0.95, FRACTION, "WARN",
                 "asset check cost_allocations: allocation_coverage (every dimension in metadata)"),
    ServiceLevel("M2", "normalization latency",
                 "seconds from a delivery landing (its newest object's modification time) to its FOCUS partition's "
                 "commit", None, "<", 3600.0, SECONDS, "freshness",
                 "asset check focus_costs: normalization_latency (WARN; sensor and daily_refresh publications)"),
    ServiceLevel("M3", "reconciliation drift",
                 "\\|invoice total − sum(BilledCost)\\|, per invoice (or billing account × period × currency)",
                 "invoice total", "<=", 0.001, FRACTION, "ERROR",
                 "asset checks invoice_reconciliation: reconciliation_drift, reconciliation_difference",
                 note="WARN above one minor currency unit"),
    ServiceLevel("M4", "unallocated spend trend",
                 "change of the unallocated share from the week before to the last complete week (ISO weeks, UTC)",
                 "the week before's unallocated share", "<", 0.20, RATIO, "WARN",
                 "asset check cost_allocations: unallocated_trend (reads the previous period's partition)"),
    ServiceLevel("M5", "SKU mapping failure rate",
                 "Usage/Purchase rows whose SKU the provider delivers is missing or whose ServiceCategory is a "
                 "fallback (`sources.common.sku_mapping_failure`)", "Usage/Purchase rows", "<", 0.001, FRACTION,
                 "WARN", "asset checks focus_costs: sku_mapping_failure_rate; sku_catalog: unmapped_skus"),
    ServiceLevel("M6", "policy action rate", "automated actions per policy per day (shadow and enforce apart)",
                 None, None, None, COUNT, "metadata",
                 "asset metadata policy_actions: M6_action_rates (per policy per UTC day, shadow and enforce apart)",
                 note="per policy"),
    ServiceLevel("M7", "attribution accuracy",
                 "spot checks (a row or resource → its expected owner) the allocation agrees with",
                 "spot checks of rows or resources in the period", ">", 0.98, FRACTION, "WARN",
                 "asset check cost_allocations: attribution_accuracy (`<landing>/allocation/spot_checks/`)"),
    ServiceLevel("M8", "ingest error rate", "raw rows quarantined", "raw rows read, per delivery", "<", 0.005,
                 FRACTION, "ERROR", "asset check focus_costs: ingest_error_rate (reported as WARN today)"),
    ServiceLevel("M9", "anomaly false-positive rate", "alerts on days with no injected or confirmed anomaly",
                 "alerts", "<", 0.05, FRACTION, "benchmark",
                 "anomaly truth test (`tests/unit/test_anomaly_truth.py`, injected anomalies of `generate.anomalies`) "
                 "and `benchmarks/bench_anomalies.py`"),
    ServiceLevel("M10", "cost query latency", "median seconds of the standard dashboard queries over the marts",
                 None, "<", 2.0, SECONDS, "benchmark", "marts benchmark (planned)", note="goal < 1 s"),
    ServiceLevel("M11", "retention compliance",
                 "partitions present as the retention policy requires and none older than it", "partitions checked",
                 "=", 1.0, FRACTION, "ERROR", "asset checks retention_<table> on each partitioned table's asset (`warehouse/retention.py`)"),
    ServiceLevel("M12", "shadow-to-enforce lag", "days a policy ran in shadow before enforce", None, None, None, DAYS,
                 "metadata", "asset metadata policy_actions: M12_shadow_lag_days (per policy, from its shadow_since to mode_since)",
                 note="7–30 days"),
    ServiceLevel("M13", "budget burn rate", "spend forecast at period end", "budget", "<=", 1.2, RATIO, "ERROR",
                 "asset check budget_status: budget_burn (per budget; ERROR, WARN at warn_at with a projected overrun)",
                 note="WARN at 50 % of the period with a projected overrun"),
    ServiceLevel("M14", "tag compliance", "spend (and resources) carrying every required tag key, per owner",
                 "total spend (resources)", ">=", 0.98, FRACTION, "WARN",
                 "asset check cost_allocations: tag_compliance (per key and per owner in metadata)"),
    ServiceLevel("M15", "end-to-end success", "successful runs of the daily chain", "runs", ">=", 0.99, FRACTION,
                 "metadata + alert", "asset check end_to_end_success (WARN) + run_failure_alert sensor"),
    ServiceLevel("conservation", "cost conservation (invariant)",
                 "\\|raw basis − (sum(BilledCost) + quarantined)\\| per source, billing account, period and currency, "
                 "exact Decimal (amortized: EffectiveCost likewise)", None, "=", 0.0, AMOUNT, "ERROR",
                 "asset checks focus_costs: billed_cost_conserved, effective_cost_conserved; cost_allocations: "
                 "allocation_conserved (allocated = FOCUS)", note="unreadable money fails it", configurable=False),
    ServiceLevel("conformance", "FOCUS conformance (invariant)",
                 "converter defects by the FOCUS 1.2 rules (provider-data gaps are counted, not defects)", None,
                 "=", 0.0, COUNT, "ERROR", "asset check focus_costs: conformance", configurable=False),
)
BY_ID: dict[str, ServiceLevel] = {s.id: s for s in SERVICE_LEVELS}


def service_level(sl_id: str) -> ServiceLevel:
    try:
        return BY_ID[sl_id]
    except KeyError:
        raise ServiceLevelError(f"unknown service level {sl_id!r} (known: {', '.join(BY_ID)})") from None


def parse_targets(text: str) -> dict[str, float]:
    """``"M3=0.002,M5=0.001"`` → {id: target}; a bad entry raises one line naming the variable,
    the entry and what is allowed."""
    configurable = [s.id for s in SERVICE_LEVELS if s.configurable and s.default_target is not None]
    allowed = f"allowed: ID=NUMBER, comma-separated, ID one of {', '.join(configurable)}"
    out: dict[str, float] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        sl_id, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or sl_id not in configurable:
            raise ServiceLevelError(f"{TARGETS_ENV}: bad entry {entry!r} ({allowed})")
        if sl_id in out:
            raise ServiceLevelError(f"{TARGETS_ENV}: {sl_id} is given twice ({entry!r})")
        out[sl_id] = _target_value(service_level(sl_id), value, entry)
    return out


def _target_value(sl: ServiceLevel, text: str, entry: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if sl.unit == FRACTION:
        ok, what = 0.0 <= value <= 1.0, "a fraction from 0 to 1 (0.001 = 0.1 %)"
    else:
        ok, what = value >= 0.0, f"a number of {sl.unit} ≥ 0"
    if not ok:  # nan fails both
        raise ServiceLevelError(f"{TARGETS_ENV}: bad entry {entry!r} ({sl.id} takes {what})")
    return value


def targets(env: Mapping[str, str] | None = None) -> dict[str, float | None]:
    """Effective target of every service level: the defaults, overridden by ``FOCUS_SLO_TARGETS``."""
    overrides = parse_targets((os.environ if env is None else env).get(TARGETS_ENV, ""))
    return {s.id: overrides.get(s.id, s.default_target) for s in SERVICE_LEVELS}


def target(sl_id: str, env: Mapping[str, str] | None = None) -> float | None:
    """The effective target of ``sl_id`` (None: no single numeric target, e.g. M6 "per policy")."""
    service_level(sl_id)
    return targets(env)[sl_id]


def meets(sl_id: str, value: float, env: Mapping[str, str] | None = None) -> bool:
    """Whether a measured ``value`` passes the effective target of ``sl_id``."""
    sl, goal = service_level(sl_id), target(sl_id, env)
    if goal is None or sl.comparison is None:
        raise ServiceLevelError(f"{sl_id} ({sl.name}) has no numeric target: {sl.note}")
    return bool(COMPARISONS[sl.comparison](value, goal))


# ---------------------------------------------------------------------------------------------
# Measured service levels
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    service_level: str
    value: float | None  # None: nothing to measure (``reason`` says why)
    meets: bool | None
    reason: str = ""


def normalization_latency(landed: datetime, published: datetime,
                          env: Mapping[str, str] | None = None) -> Measurement:
    """M2: seconds from ``landed`` (the delivery's newest object modification time) to ``published``
    (the commit time of its FOCUS partition). Both must carry a time zone; a commit before the
    delivery landed is not this delivery's publication (an error)."""
    for what, moment in (("landed", landed), ("published", published)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"M2: {what} time {moment.isoformat()} has no time zone")
    seconds = (published - landed).total_seconds()
    if seconds < 0:
        raise ValueError(f"M2: FOCUS partition published at {published.isoformat()}, before its delivery "
                         f"landed at {landed.isoformat()}")
    return Measurement("M2", seconds, meets("M2", seconds, env))


def end_to_end_success(outcomes: Sequence[bool], env: Mapping[str, str] | None = None) -> Measurement:
    """M15: successful runs / runs over ``outcomes`` (True = the run succeeded), e.g. the daily
    chain's recent runs; no runs → no value, with the reason."""
    if not outcomes:
        return Measurement("M15", None, None, "no runs to measure")
    rate = sum(1 for ok in outcomes if ok) / len(outcomes)
    return Measurement("M15", rate, meets("M15", rate, env))


# ---------------------------------------------------------------------------------------------
# The README's table
# ---------------------------------------------------------------------------------------------
def markdown_table() -> str:
    """The service levels with their default targets as a markdown table (the README's)."""
    lines = ["| id | name | definition (numerator / denominator) | default target | severity | measured at |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s.id} | {s.name} | {s.definition} | {s.target_text(s.default_target)} | {s.severity} | "
              f"{s.measured_at} |" for s in SERVICE_LEVELS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
