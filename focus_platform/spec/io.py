"""Reading FOCUS files (CSV or Parquet) into the canonical types, and writing typed Parquet."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from focus_platform.spec.columns import focus_columns
from focus_platform.spec.rules import ConformanceReport, RuleResult, check_conformance

ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def _typed(name: str, dtype: pl.DataType) -> pl.Expr:
    raw = pl.col(name)
    if dtype.is_decimal():
        return raw.str.strip_chars().cast(dtype, strict=False)
    if isinstance(dtype, pl.Datetime):
        return raw.str.strip_suffix("Z").str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f", strict=False, time_zone="UTC", time_unit="us")
    return raw


def scan_focus_file(path: str | Path) -> tuple[pl.LazyFrame, list[RuleResult]]:
    """A FOCUS file as a typed LazyFrame plus the format violations found while typing it.

    CSV is read as text (nothing inferred), then Decimal and DateTime columns are parsed; a value
    that does not parse is a violation of R-Num-1 / R-DT-2 and becomes null in the frame.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pl.scan_parquet(path), []
    text = pl.scan_csv(path, infer_schema=False)
    names = text.collect_schema().names()
    specs = {c.name: c for c in focus_columns()}
    problems: list[RuleResult] = []
    checks = []
    for name in names:
        col = specs.get(name)
        if col is None or col.data_type not in ("Decimal", "DateTime"):
            continue
        raw = pl.col(name)
        filled = raw.is_not_null() & ~raw.str.strip_chars().is_in(["", "NULL", "null"])
        if col.data_type == "Decimal":
            bad = filled & _typed(name, col.dtype).is_null()
            checks.append(bad.sum().alias(f"R-Num-1|{name}"))
        else:
            bad = filled & ~raw.str.contains(ISO_DATETIME)
            checks.append(bad.sum().alias(f"R-DT-2|{name}"))
    if checks:
        counts = text.select(checks).collect().row(0, named=True)
        for key, n in counts.items():
            if n:
                rule_id, name = key.split("|")
                problems.append(RuleResult(rule_id, f"{name}: {n} values not in the FOCUS format", defects=n))
    exprs = []
    for name in names:
        raw = pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name))  # CSV empty = null
        col = specs.get(name)
        if col is not None and col.data_type in ("Decimal", "DateTime"):
            exprs.append(_typed(name, col.dtype).alias(name))
        else:
            exprs.append(raw.alias(name))
    return text.select(exprs), problems


def validate_focus_file(path: str | Path) -> ConformanceReport:
    lf, problems = scan_focus_file(path)
    report = check_conformance(lf)
    report.results = problems + report.results
    return report
