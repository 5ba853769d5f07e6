"""Helpers for the AWS CUR mapping tests: tiny hand-written CUR files in, FOCUS rows out.

(``tests/conftest.py`` belongs to the shared test setup; these helpers are imported explicitly:
``from tests.helpers_aws import ...``.)

- ``write_cur``: rows (dicts keyed by the delivered header) -> a CUR CSV file. A header missing
  from a row is written as '' (what AWS writes for an empty cell).
- ``convert``: one or more CUR files -> ``scan_raw`` -> ``to_focus`` (and ``quarantine`` /
  ``raw_totals``), collected. Several files are converted in ONE ``to_focus`` call (their raw rows
  concatenated, as ``pipeline.convert_files`` does): planning ``to_focus`` costs ~0.3 s, so one
  call per tiny file would make the suite slow.
- ``assert_conformant`` / ``assert_gates``: 0 converter defects (provider-data gaps allowed), and
  every gating check of ``pipeline.check_focus`` (cost and row conservation, unique x_RowId).
- ``assert_row``: compare one FOCUS row with a hand-computed expectation, all mismatches at once.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl

from focus_platform.pipeline import FocusChecks, check_focus
from focus_platform.sources import FORMATS
from focus_platform.sources.aws_cur import quarantine, raw_totals, scan_raw, to_focus
from focus_platform.sources.common import Lineage
from focus_platform.spec.rules import ConformanceReport, check_conformance

UTC = timezone.utc
LINEAGE = Lineage(source="test", source_format="aws-cur", delivery_id="test-delivery", billing_period=None,
                  ingested_at=datetime(2024, 1, 1, tzinfo=UTC))


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def ts(text: str) -> datetime:
    """'2023-01-01T00:00:00Z' -> aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def write_cur(path: Path, rows: list[dict[str, str]], headers: list[str] | None = None) -> Path:
    """A CUR CSV with ``headers`` (default: every key of every row, first-seen order)."""
    if headers is None:
        headers = []
        for row in rows:
            headers.extend(k for k in row if k not in headers)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(headers)
        for row in rows:
            writer.writerow([row.get(h, "") for h in headers])
    return path


@dataclass
class Converted:
    raw: pl.DataFrame
    focus: pl.DataFrame
    quarantine: pl.DataFrame
    raw_totals: pl.DataFrame

    def for_file(self, label: str) -> Converted:
        """The rows of one source file (label = x_SourceFile)."""
        raw = self.raw.filter(pl.col("x_SourceFile") == label)
        return Converted(raw, self.focus.filter(pl.col("x_SourceFile") == label),
                         quarantine(raw.lazy()).collect(), raw_totals(raw.lazy()).collect())

    def rows(self, **where) -> list[dict]:
        """FOCUS rows whose columns equal the given values (None matches null)."""
        df = self.focus
        for name, value in where.items():
            df = df.filter(pl.col(name).is_null() if value is None else pl.col(name) == value)
        return df.to_dicts()

    def one(self, **where) -> dict:
        found = self.rows(**where)
        assert len(found) == 1, f"expected exactly one FOCUS row with {where}, found {len(found)}"
        return found[0]


def convert(paths: Path | list[Path], *, labels: list[str] | None = None) -> Converted:
    """CUR file(s) -> typed raw rows -> FOCUS rows (one to_focus call for all files)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    labels = labels or [p.name for p in paths]
    frames = [scan_raw(p, LINEAGE, label=label) for p, label in zip(paths, labels, strict=True)]
    raw = pl.concat(frames, how="diagonal_relaxed").collect()
    lazy = FORMATS["aws-cur"].with_line_item_copies(raw.lazy())  # as the pipeline does, over all the files
    return Converted(raw, to_focus(lazy).collect(), quarantine(lazy).collect(), raw_totals(lazy).collect())


def assert_conformant(focus: pl.DataFrame) -> ConformanceReport:
    """check_conformance finds 0 converter defects (provider-data gaps are allowed)."""
    report = check_conformance(focus.lazy())
    assert report.defects == {}, report.summary()
    return report


def assert_gates(conv: Converted) -> FocusChecks:
    """Every gating check of pipeline.check_focus passes: check_conformance with 0 converter defects,
    billed and amortized cost conservation, row conservation, unique x_RowId."""
    checks = check_focus(conv.focus.lazy(), conv.raw_totals, conv.quarantine)
    assert checks.conformance.defects == {}, checks.conformance.summary()  # check_conformance's report
    assert checks.problems == [], "\n".join(checks.problems) + "\n" + checks.conformance.summary()
    return checks


def assert_row(actual: dict, expected: dict, context: str = "") -> None:
    """Every expected column equals the actual value (Decimal compared by value, None exactly)."""
    problems = []
    for name, want in expected.items():
        assert name in actual, f"{context}: no column {name}"
        got = actual[name]
        if want is None or got is None:
            ok = want is None and got is None
        elif isinstance(want, Decimal):
            ok = isinstance(got, Decimal) and got == want
        else:
            ok = got == want
        if not ok:
            problems.append(f"  {name}: expected {want!r}, got {got!r}")
    assert not problems, f"{context}: {len(problems)} column(s) differ\n" + "\n".join(problems)
