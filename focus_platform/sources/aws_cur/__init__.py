"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0) → typed raw rows → FOCUS 1.2.

Three modules, two independent gates: ``raw`` reads delivered files into typed raw rows and says which
raw rows are valid (incl. duplicated line items, by ``identity/LineItemId`` + ``identity/TimeInterval``);
``mapping`` turns valid rows into FOCUS rows; ``totals`` computes the raw basis of the conservation
checks (invoice and amortized totals, quarantine) from AWS's documented column semantics, importing
``raw`` but never ``mapping``, so a mistake in the mapping shows as a conservation failure.
"""

from focus_platform.sources.aws_cur.mapping import (
    LINE_ITEM_TYPES,
    region_names,
    service_table,
    to_focus,
)
from focus_platform.sources.aws_cur.raw import (
    DROPPED_LINE_ITEM_TYPES,
    FORMAT_CUR2,
    FORMAT_LEGACY,
    KNOWN_LINE_ITEM_TYPES,
    LINE_ITEM_KEY,
    LINE_ITEM_NAME,
    RAW_TABLE,
    REQUIRED_COLUMNS,
    classify_header,
    detect_format,
    near_miss,
    quarantine_reason,
    scan_raw,
)
from focus_platform.sources.aws_cur.totals import quarantine, raw_totals
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE

__all__ = ["LINE_ITEM_KEY", "LINE_ITEM_NAME", 
    "DROPPED_LINE_ITEM_TYPES", "FORMAT_CUR2", "FORMAT_LEGACY", "KNOWN_LINE_ITEM_TYPES", "LINE_ITEM_TYPES", "RAW_TABLE",
    "REQUIRED_COLUMNS", "UNMAPPED_SERVICE_NOTE", "classify_header", "detect_format", "near_miss", "quarantine",
    "quarantine_reason", "raw_totals", "region_names", "scan_raw", "service_table", "to_focus",
]
