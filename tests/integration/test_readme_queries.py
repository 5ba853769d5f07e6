"""The README's ways of reading the tables work as written, offline: Polars, and DuckDB over the
Delta table registered as an Arrow dataset (DuckDB's delta extension would need a download)."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import polars as pl
from deltalake import DeltaTable


def test_duckdb_reads_focus_costs_offline_through_an_arrow_dataset(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    focus_costs = DeltaTable(warehouse.uri(h.FOCUS_TABLE)).to_pyarrow_dataset()  # noqa: F841 - read by DuckDB
    rows = duckdb.sql("SELECT BillingCurrency, sum(BilledCost) AS billed FROM focus_costs "
                      f"WHERE x_BillingPeriod = '{h.PERIOD}' GROUP BY ALL ORDER BY 1").fetchall()
    assert {c: Decimal(v) for c, v in rows} == cur.invoice_basis()
    by_polars = (pl.scan_delta(warehouse.uri(h.FOCUS_TABLE)).filter(pl.col("x_BillingPeriod") == h.PERIOD)
                 .group_by("BillingCurrency").agg(pl.col("BilledCost").sum()).collect())
    assert dict(by_polars.iter_rows()) == cur.invoice_basis()
