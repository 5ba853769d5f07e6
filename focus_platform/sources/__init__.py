"""Provider export formats: each reads delivered files into typed raw rows and maps them to FOCUS.

``FORMATS`` is the registry the pipeline and the CLI use; a new provider is one module here plus
its entries below. What a module gives (see ``SourceFormat``):

- ``detect(headers)`` → the format name when a file's column names are this format's, else None;
  ``near_miss(headers)`` → a message when they almost are (e.g. a required column missing).
- ``scan_raw(path, lineage, label=, storage_options=)`` → one file as typed raw rows: the columns
  as delivered (canonical names), ``x_ParseErrors`` and the lineage columns incl. ``x_RowId``.
- ``to_focus(raw)`` → FOCUS 1.2 rows (+ x_ columns) of a whole raw partition (all its files).
- ``quarantine(raw)`` → raw rows that cannot be converted: ``x_QuarantineReason``,
  ``x_BilledCost``, ``x_EffectiveCost``, ``BillingAccountId``, ``BillingCurrency``, lineage.
- ``raw_totals(raw)`` → per ``BillingAccountId``, ``x_BillingPeriod``, ``BillingCurrency``: the
  provider's own ``billed`` (invoice) and ``amortized`` totals, ``rows``, ``quarantined_rows``
  (the rows ``quarantine`` gives; its pass is skipped when there are none) and ``dropped_rows``
  (raw rows the mapping deliberately leaves out, e.g. AWS SavingsPlanNegation), the basis of the
  conservation checks. Rows a mapping adds carry a derived ``x_RowId`` (``common.derived_row_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from focus_platform.sources import (
    aws_cur,
    azure_cost,
    focus_native,
    gcp_billing,
    oci_cost,
)
from focus_platform.sources.common import (
    Lineage,
    SourceFormatError,
    explained,
    file_schema,
    scan_file,
    with_line_item_copies,
)


@dataclass(frozen=True)
class SourceFormat:
    name: str
    description: str
    raw_table: str
    detect: Callable[[list[str]], str | None]
    near_miss: Callable[[list[str]], str | None]
    scan_raw: Callable[..., pl.LazyFrame]
    to_focus: Callable[[pl.LazyFrame], pl.LazyFrame]
    quarantine: Callable[[pl.LazyFrame], pl.LazyFrame]
    raw_totals: Callable[[pl.LazyFrame], pl.LazyFrame]
    line_item_key: tuple[str, ...]  # raw columns the provider documents as unique per line item (or none)
    line_item_name: str  # how the provider names them (in a copy's quarantine reason)

    def with_line_item_copies(self, raw: pl.LazyFrame) -> pl.LazyFrame:
        """The raw rows of a whole partition (or convert call) with every copy of a line item but
        one marked (``common.COPY_REASON``): found once, quarantined alike by the mapping and the totals."""
        return with_line_item_copies(raw, self.line_item_key, self.line_item_name) if self.line_item_key else raw


def _module_format(module, name: str, description: str, raw_table: str) -> SourceFormat:
    return SourceFormat(name, description, raw_table, module.detect_format, module.near_miss, module.scan_raw,
                        module.to_focus, module.quarantine, module.raw_totals,
                        module.LINE_ITEM_KEY, module.LINE_ITEM_NAME)


FORMATS: dict[str, SourceFormat] = {f.name: f for f in [  # a new provider format: one line here
    _module_format(aws_cur, aws_cur.FORMAT_LEGACY, "AWS Cost and Usage Report (legacy CUR)", "raw_aws_cur"),
    _module_format(aws_cur, aws_cur.FORMAT_CUR2, "AWS Data Exports CUR 2.0", "raw_aws_cur"),
    _module_format(azure_cost, azure_cost.FORMAT, "Azure Cost Management cost details (EA/MCA, actual and "
                   "amortized; older EA, PAYG and localized headers)", "raw_azure_cost_details"),
    _module_format(gcp_billing, gcp_billing.FORMAT, "GCP Cloud Billing export (BigQuery standard / detailed)",
                   "raw_gcp_billing"),
    _module_format(oci_cost, oci_cost.FORMAT, "OCI cost report (proprietary CSV)", "raw_oci_cost"),
    _module_format(focus_native, focus_native.FORMAT, "Native FOCUS export (FOCUS 1.0, 1.1, 1.2, 1.3; any provider; "
                   "CSV or Parquet)", "raw_focus"),
]}
RAW_TABLES = sorted({f.raw_table for f in FORMATS.values()})


def detect_format(path: str, storage_options: dict | None = None) -> str:
    """The format of one export file, from its header; a clear error naming the known formats."""
    try:
        headers = file_schema(scan_file(path, storage_options=storage_options), path).names()
    except SourceFormatError as exc:
        raise SourceFormatError(explained(str(exc), path)) from exc
    for fmt in FORMATS.values():
        found = fmt.detect(headers)
        if found:
            return found
    for fmt in FORMATS.values():
        why = fmt.near_miss(headers)
        if why:
            raise SourceFormatError(f"{path}: {why}")
    raise SourceFormatError(explained(
        f"{path}: can't detect format{_separator_hint(headers)}, expected one of: "
        + ", ".join(f"{f.name} ({f.description})" for f in FORMATS.values()), path))


def _separator_hint(headers: list[str]) -> str:
    """A header read as one column that holds another separator: the file is not comma-separated."""
    if len(headers) != 1:
        return ""
    found = [name for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")) if sep in headers[0]]
    return f" (its header is one column separated by {found[0]}: export it comma-separated)" if found else ""


__all__ = ["FORMATS", "RAW_TABLES", "Lineage", "SourceFormat", "SourceFormatError", "detect_format"]
