"""Asset checks declared once: one ``Check`` per check gives its spec and builds its result.

A ``Check`` names its asset, says what it checks, whether it blocks downstream materialization,
its severity when it fails, and the service level it measures (``focus_platform.service_levels``:
id and target, configurable). ``spec()`` is what the asset declares; ``result()`` what it yields,
with the same name, asset and severity, and the service level and target added to the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


@dataclass(frozen=True)
class Check:
    name: str
    asset: str
    description: str
    severity: dg.AssetCheckSeverity = ERROR
    blocking: bool = False
    service_level: str | None = None  # M1–M15 (service_levels), or None for an invariant / a data check

    @property
    def target(self) -> float | None:
        if self.service_level is None:
            return None
        from focus_platform.service_levels import target

        return target(self.service_level)

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(dg.AssetKey(self.asset), self.name)

    def spec(self) -> dg.AssetCheckSpec:
        meta = {"severity": self.severity.value}
        if self.service_level:
            meta.update(service_level=self.service_level, target=self.target)
        return dg.AssetCheckSpec(self.name, asset=self.asset, description=self.description, blocking=self.blocking,
                                 metadata=meta)

    def result(self, passed: bool, metadata: dict | None = None, *,
               severity: dg.AssetCheckSeverity | None = None) -> dg.AssetCheckResult:
        """The check's outcome; ``severity`` overrides the declared one for this result (a blocking
        check that only warns on this outcome)."""
        meta = dict(metadata or {})
        if self.service_level:
            meta.setdefault("service_level", self.service_level)
            meta.setdefault("target", self.target)
        return dg.AssetCheckResult(asset_key=self.asset, check_name=self.name, passed=bool(passed),
                                   severity=severity or self.severity, metadata=meta)


@dataclass(frozen=True)
class Outcome:
    """One check's outcome for one billing period of a run (a backfill batches several)."""
    passed: bool
    metadata: dict

    @classmethod
    def of(cls, result: dg.AssetCheckResult) -> Outcome:
        return cls(result.passed, dict(result.metadata))


def figures(metadata: dict) -> dict:
    """The plain figures of a period's check metadata (numbers, flags and text; not its tables)."""
    plain = {k: v.value if isinstance(v, dg.MetadataValue) else v for k, v in metadata.items()}
    return {k: v for k, v in plain.items() if isinstance(v, int | float | str | bool)}


def over_periods(check: Check, outcomes: dict[str, Outcome]) -> dg.AssetCheckResult:
    """One result of a check over the periods of a run (a backfill batches up to 12): passed when every
    period passed; the one period's metadata, or each period's figures."""
    if len(outcomes) == 1:
        (outcome,) = outcomes.values()
        return check.result(outcome.passed, outcome.metadata)
    return check.result(all(o.passed for o in outcomes.values()), {
        "failing_periods": sorted(p for p, o in outcomes.items() if not o.passed),
        "by_period": {p: figures(o.metadata) for p, o in sorted(outcomes.items())}})


def specs(checks) -> list[dg.AssetCheckSpec]:
    return [c.spec() for c in checks]


def with_own_checks(assets, checks) -> dg.AssetSelection:
    """A job's selection: the assets and exactly the checks they declare (not every check that targets
    them: the service-level checks of the operate domain run in their own job)."""
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*(c.key for c in checks))


def contract_check(asset: str) -> Check:
    """The table contract of the table an asset writes (``warehouse.contracts``), checked on the staged
    files before the commit: a failing contract publishes nothing."""
    return Check("contract", asset, "the table's contract (types, nullability, allowed values, keys, cross-column "
                 "rules) holds on the staged data; checked before the commit, so a broken one publishes nothing",
                 blocking=True)


def contract_result(check: Check, report) -> dg.AssetCheckResult:
    """``report``: the ``ContractReport`` of what was (or would have been) published; None when nothing was
    written (an unchanged delivery: the published version was checked when it was published)."""
    if report is None:
        return check.result(True, {"note": "nothing written: the published version was checked when published"})
    meta = report.metadata()
    meta["failures"] = dg.MetadataValue.json(meta["failures"])
    if report.failures.height:
        meta["failing_rows"] = dg.MetadataValue.md(md_table(report.failures, report.failures.columns))
    return check.result(report.ok, meta)


def md_table(df, columns: list[str], limit: int = 20) -> str:
    """Rows of check metadata as a markdown table (the first ``limit``, the rest counted)."""
    if df.height == 0:
        return "none"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in r) + " |"
            for r in df.select(columns).head(limit).iter_rows()]
    more = f"\n\n… and {df.height - limit} more" if df.height > limit else ""
    return head + "\n".join(rows) + more
