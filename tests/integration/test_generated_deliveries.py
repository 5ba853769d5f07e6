"""Generated deliveries (legacy CUR and CUR 2.0 layouts) through discovery, raw and FOCUS Delta:
totals equal the generator's expected totals exactly, per billing account, period and currency."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

from focus_platform.generate.aws_cur import generate_aws_cur
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import (
    FOCUS_TABLE,
    ingest_delivery,
    publish_focus,
)
from focus_platform.warehouse.delta import Warehouse


@pytest.mark.parametrize("layout,file_format", [("legacy", "parquet"), ("legacy", "csv.gz"), ("cur2", "parquet")])
def test_generated_delivery_conserves_expected_totals(tmp_path, layout, file_format):
    landing = tmp_path / "landing"
    summary = generate_aws_cur(landing / "gen", rows=6000, months=2, seed=11, layout=layout,
                               file_format=file_format, rows_per_file=2000)
    store, warehouse = LocalStore(landing), Warehouse(str(tmp_path / "warehouse"))
    source = ExportSource("gen", "aws-cur2" if layout == "cur2" else "aws-cur", "gen/focus-demo")  # invoices apart
    deliveries = discover_deliveries(store, source)
    assert sorted(deliveries) == sorted(summary.rows_per_period)
    generated = {str(p.relative_to(landing)) for p in summary.data_files}
    assert sorted(f for d in deliveries.values() for f in d.files) == sorted(generated)
    for period, delivery in deliveries.items():
        ingest_delivery(warehouse, store, source, delivery)
        published = publish_focus(warehouse, source, period)
        assert published.checks.problems == []
        assert published.checks.conformance.defects == {}
    focus = warehouse.scan(FOCUS_TABLE).collect()
    got = {(r["BillingAccountId"], r["x_BillingPeriod"], r["BillingCurrency"]): (r["BilledCost"], r["EffectiveCost"])
           for r in focus.group_by("BillingAccountId", "x_BillingPeriod", "BillingCurrency")
           .agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum()).iter_rows(named=True)}
    expected = json.loads(summary.expected_totals_path.read_text())["totals"]
    assert len(got) == len(expected)
    for e in expected:
        key = (e["billing_account_id"], e["billing_period"], e["currency"])
        assert got[key] == (Decimal(e["billed_cost"]), Decimal(e["amortized_cost"])), key
    unused = focus.filter(pl.col("CommitmentDiscountStatus") == "Unused").height
    assert unused == sum(e["unused_commitment_rows"] for e in expected)
    assert warehouse.scan(FOCUS_TABLE, PartitionKey.of(sorted(deliveries)[0], "gen").values()).collect().height > 0
