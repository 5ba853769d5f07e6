"""Provider export formats: each reads delivered files into typed raw rows and maps them to FOCUS.

``FORMATS`` is the registry the pipeline and the CLI use; a new provider is one module here plus
its entry below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from focus_platform.sources import aws_cur
from focus_platform.sources.common import Lineage, SourceFormatError


@dataclass(frozen=True)
class SourceFormat:
    name: str
    description: str
    raw_table: str
    detect: Callable[[list[str]], str | None]
    scan_raw: Callable[..., pl.LazyFrame]
    to_focus: Callable[[pl.LazyFrame], pl.LazyFrame]
    quarantine: Callable[[pl.LazyFrame], pl.LazyFrame]
    raw_totals: Callable[[pl.LazyFrame], pl.LazyFrame]


_AWS = dict(raw_table="raw_aws_cur", detect=aws_cur.detect_format, scan_raw=aws_cur.scan_raw,
            to_focus=aws_cur.to_focus, quarantine=aws_cur.quarantine, raw_totals=aws_cur.raw_totals)
FORMATS: dict[str, SourceFormat] = {
    aws_cur.FORMAT_LEGACY: SourceFormat(aws_cur.FORMAT_LEGACY, "AWS Cost and Usage Report (legacy CUR)", **_AWS),
    aws_cur.FORMAT_CUR2: SourceFormat(aws_cur.FORMAT_CUR2, "AWS Data Exports CUR 2.0", **_AWS),
}


def detect_format(path: str, storage_options: dict | None = None) -> str:
    """The format of one export file, from its header; a clear error naming the known formats."""
    headers = aws_cur.file_schema(aws_cur.scan_file(path, storage_options=storage_options), path).names()
    for fmt in FORMATS.values():
        found = fmt.detect(headers)
        if found:
            return found
    missing = aws_cur.missing_required({aws_cur.classify_header(h).name for h in headers})
    if len(missing) < len(aws_cur.REQUIRED_COLUMNS):  # some CUR columns present: say which are missing
        raise SourceFormatError(f"{path}: looks like an AWS CUR but required column(s) missing: "
                                f"{', '.join(missing)}")
    raise SourceFormatError(
        f"{path}: can't detect format, expected one of: "
        + ", ".join(f"{f.name} ({f.description})" for f in FORMATS.values()))


__all__ = ["FORMATS", "Lineage", "SourceFormat", "SourceFormatError", "detect_format"]
