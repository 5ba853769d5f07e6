"""A lazy frame in bounded row slices: one streaming query over millions of rows holds buffers that
grow with them (a wide reduction, a pandera check of collected rows), while a slice of a Parquet scan
reads only its own row groups. The rule counters, the allocation engine and the table contracts
read their inputs this way."""

from __future__ import annotations

import polars as pl


def row_slices(lf: pl.LazyFrame, size: int, rows: int | None = None) -> list[tuple[int, pl.LazyFrame]]:
    """``lf`` in consecutive slices of at most ``size`` rows, each with the number of its first row
    (one empty slice for an empty frame). ``rows``: the frame's row count when known (counted
    otherwise)."""
    if rows is None:
        rows = lf.select(pl.len()).collect(engine="streaming").item()
    return [(start, lf.slice(start, size)) for start in range(0, max(rows, 1), size)]
