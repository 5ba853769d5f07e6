"""Native FOCUS exports (FOCUS 1.0, 1.1, 1.2 and 1.3, any provider, CSV or Parquet) → canonical FOCUS 1.2.

Three modules, two independent gates: ``raw`` detects the version, reads files into typed raw rows and
says which raw rows are valid; ``mapping`` turns valid rows into FOCUS 1.2 rows (deviations fixed and
noted, 1.0/1.1 upgraded, 1.3 downgraded); ``totals`` computes the raw basis of the conservation checks
(delivered BilledCost / EffectiveCost, quarantine) from the raw columns, importing ``raw`` but never
``mapping``, so a mistake in the mapping shows as a conservation failure. FOCUS defines no per-row
identity, so duplicated rows are not detected (see ``raw``).
"""

from focus_platform.sources.focus_native.mapping import to_focus
from focus_platform.sources.focus_native.raw import (
    FORMAT,
    LINE_ITEM_KEY,
    LINE_ITEM_NAME,
    RAW_TABLE,
    SUPPORTED_VERSIONS,
    detect,
    detect_format,
    near_miss,
    quarantine_reason,
    scan_raw,
    spec_columns,
)
from focus_platform.sources.focus_native.totals import quarantine, raw_totals

__all__ = ["LINE_ITEM_KEY", "LINE_ITEM_NAME", "FORMAT", "RAW_TABLE", "SUPPORTED_VERSIONS", "detect", "detect_format", "near_miss", "quarantine",
           "quarantine_reason", "raw_totals", "scan_raw", "spec_columns", "to_focus"]
