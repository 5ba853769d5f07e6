"""OCI (Oracle Cloud Infrastructure) cost reports → typed raw rows → FOCUS 1.2.

Three modules, two independent gates: ``raw`` reads report files into typed raw rows and says which
raw rows are valid; ``mapping`` turns valid rows into FOCUS rows; ``totals`` computes the raw basis
of the conservation checks (billed and amortized totals, quarantine) from Oracle's documented
semantics, importing ``raw`` but never ``mapping``, so a mistake in the mapping shows as a
conservation failure.
"""

from focus_platform.sources.oci_cost.mapping import (
    BAD_TAGS_NOTE,
    LIST_PRICE_NOTE,
    to_focus,
)
from focus_platform.sources.oci_cost.raw import (
    FORMAT,
    LINE_ITEM_KEY,
    LINE_ITEM_NAME,
    classify_header,
    detect_format,
    near_miss,
    quarantine_reason,
    scan_raw,
)
from focus_platform.sources.oci_cost.totals import quarantine, raw_totals

__all__ = ["LINE_ITEM_KEY", "LINE_ITEM_NAME", "BAD_TAGS_NOTE", "FORMAT", "LIST_PRICE_NOTE", "classify_header", "detect_format", "near_miss",
           "quarantine", "quarantine_reason", "raw_totals", "scan_raw", "to_focus"]
