"""GCP Cloud Billing export to BigQuery (standard and detailed usage cost) → typed raw rows → FOCUS 1.2.

Format ``gcp-billing`` (raw table ``raw_gcp_billing``); whether a file is the standard or the
detailed (resource-level) export is recorded per row in ``x_SourceFormatVersion``
(``standard parquet``, ``detailed jsonl``, ``standard csv (flattened)``, ...): detailed = the file
has ``resource.name`` / ``resource.global_name``.

Three modules, two independent gates: ``raw`` reads files into typed raw rows and says which raw
rows are valid; ``mapping`` turns valid rows into FOCUS rows; ``totals`` computes the raw basis of the
conservation checks (invoice and amortized totals, quarantine) from Google's documented semantics,
importing ``raw`` but never ``mapping``, so a mistake in the mapping shows as a conservation failure.

Duplicated line items: the standard and detailed exports document no per-row identity (no line
item id; ``export_time`` changes with every load), so no row is taken for a copy of another:
duplicates cannot be told apart from two genuine charges of the same SKU, project and hour.
"""

from focus_platform.sources.gcp_billing.mapping import PARTNER_ISSUER, to_focus
from focus_platform.sources.gcp_billing.raw import (
    FORMAT,
    LINE_ITEM_KEY,
    LINE_ITEM_NAME,
    RAW_TABLE,
    detect_format,
    near_miss,
    quarantine_reason,
    scan_raw,
)
from focus_platform.sources.gcp_billing.totals import quarantine, raw_totals

__all__ = ["LINE_ITEM_KEY", "LINE_ITEM_NAME", "FORMAT", "PARTNER_ISSUER", "RAW_TABLE", "detect_format", "near_miss", "quarantine",
           "quarantine_reason", "raw_totals", "scan_raw", "to_focus"]
