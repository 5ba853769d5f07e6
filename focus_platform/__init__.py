"""focus-platform: raw cloud billing exports to FOCUS 1.2 Delta tables."""

import os

__version__ = "0.1.0"

# Polars reads the files of a multi-file Parquet scan concurrently and prefetches their row groups far
# ahead of the pipeline; over a partition of several part files that holds most of the partition in
# memory (peak RSS of a 5 M-row conversion 2.1-2.6 GB instead of 1.2 GB). One file at a time, one
# row group ahead keeps memory flat in the partition size at no measured cost in speed (the pipeline,
# not the reader, is the bottleneck). Read by Polars at the first scan; an explicit setting wins.
os.environ.setdefault("POLARS_MAX_CONCURRENT_SCANS", "1")
os.environ.setdefault("POLARS_ROW_GROUP_PREFETCH_SIZE", "1")
