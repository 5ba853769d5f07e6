"""Azure Cost Management cost details (EA and MCA, actual and amortized) → typed raw rows → FOCUS 1.2.

``raw`` reads a delivered file and says what a valid raw row is; ``mapping`` maps raw rows to
FOCUS (``to_focus``); ``totals`` is the raw side of conservation (``raw_totals``, ``quarantine``),
written from Microsoft's documented datasets and never importing ``mapping``. Each module's
docstring holds its decisions.

Duplicated line items: Microsoft documents no identifier of a cost-details row, so no row is taken
for a copy of another (two equal rows can be two genuine charges); exact duplicates pair one-to-one
between the actual and amortized files, and a surplus copy in one file shows as an unpaired row
(an amortized row billed 0, an actual row with its EffectiveCost recorded as unknown).
"""

from focus_platform.sources.azure_cost.mapping import AZURE_X_COLUMNS, to_focus
from focus_platform.sources.azure_cost.raw import (
    FORMAT,
    LINE_ITEM_KEY,
    LINE_ITEM_NAME,
    canonical_names,
    clean_header,
    dataset_of_label,
    detect_format,
    near_miss,
    scan_raw,
)
from focus_platform.sources.azure_cost.totals import quarantine, raw_totals

__all__ = ["LINE_ITEM_KEY", "LINE_ITEM_NAME", 
    "AZURE_X_COLUMNS", "FORMAT", "canonical_names", "clean_header", "dataset_of_label", "detect_format",
    "near_miss", "quarantine", "raw_totals", "scan_raw", "to_focus",
]
