"""Every GCP sample converts with 0 converter defects, exact conservation and conserved rows; the
invoice total (sum(cost) + sum(credits.amount)) equals FOCUS sum(BilledCost) per invoice month; the
official focus-validator has no failure outside the allow-list.

Samples: the koku flattened CSV (real-looking standard export, Python-repr credits), the embedded
demo delivery (detailed Parquet, generator output) and generator output written here (standard
JSON lines, detailed Parquet over two months).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.conformance import official_validator as ov
from focus_platform.generate.gcp import generate_gcp
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.pipeline import (
    FOCUS_TABLE,
    convert_files,
    ingest_delivery,
    publish_focus,
)
from focus_platform.warehouse.delta import Warehouse
from tests.conftest import FIXTURES, SAMPLE_LANDING

KOKU = FIXTURES / "gcp" / "koku_202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv"
DEMO = SAMPLE_LANDING / "gcp-billing"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gcp-generated")
    return {
        "standard-jsonl": generate_gcp(out / "std", rows=2_400, months=1, seed=5, export="standard",
                                       file_format="jsonl", rows_per_file=1_000),
        "detailed-parquet-2-months": generate_gcp(out / "det", rows=4_000, months=2, seed=6, export="detailed",
                                                  start_period="2024-11"),
    }


@pytest.fixture(scope="module")
def samples(generated) -> dict[str, list[Path]]:
    return {
        "koku-standard-csv": [KOKU],
        "demo-detailed-parquet": sorted(DEMO.rglob("*.parquet")),
        **{name: list(summary.data_files) for name, summary in generated.items()},
    }


@pytest.fixture(scope="module")
def converted(samples, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gcp-converted")
    return {name: convert_files([str(p) for p in paths], str(out / f"{name}.parquet"))
            for name, paths in samples.items()}


SAMPLE_NAMES = ["koku-standard-csv", "demo-detailed-parquet", "standard-jsonl", "detailed-parquet-2-months"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_converts_without_defects(converted, name):
    result = converted[name]
    checks = result.checks
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == []
    for row in checks.conservation:
        assert row.billed_ok and row.amortized_ok, row
    assert checks.rows.ok and checks.duplicate_row_ids == 0
    assert result.quarantined == 0 and result.rows_out > result.rows_in > 0
    assert result.formats == ["gcp-billing"]
    schema = pl.read_parquet_schema(result.out)
    assert schema["BilledCost"] == pl.Decimal(38, 12) and schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")


def test_koku_free_trial_totals(converted):
    """25 usage rows; 8 carry a free-trial PROMOTION credit equal to -cost: invoice total 0."""
    df = pl.read_parquet(converted["koku-standard-csv"].out)
    usage, credits = df.filter(pl.col("ChargeCategory") == "Usage"), df.filter(pl.col("ChargeCategory") == "Credit")
    assert usage.height == 25 and credits.height == 8
    assert usage["BilledCost"].sum() == Decimal("0.000032")
    assert credits["BilledCost"].sum() == Decimal("-0.000032")
    assert df["BilledCost"].sum() == 0 == df["EffectiveCost"].sum()
    assert set(df["x_BillingPeriod"]) == {"2020-11"}
    assert df["BillingPeriodStart"].unique().to_list() == [datetime(2020, 11, 1, 7, tzinfo=UTC)]  # PDT
    assert df["BillingPeriodEnd"].unique().to_list() == [datetime(2020, 12, 1, 8, tzinfo=UTC)]  # PST
    assert set(df["ServiceCategory"]) == {"Security", "Databases", "Management and Governance"}


def _invoice_totals_from_files(paths: list[Path]) -> dict[tuple[str, str, str], Decimal]:
    """GCP's invoice query (sum(cost) + sum of credits.amount per invoice.month), computed from the
    delivered files with Python Decimals, independently of the converter."""
    totals: dict[tuple[str, str, str], Decimal] = {}
    for path in paths:
        df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path, infer_schema_length=None)
        for r in df.select("billing_account_id", "currency", "cost", "credits",
                           pl.col("invoice").struct.field("month")).iter_rows(named=True):
            key = (r["billing_account_id"], f"{r['month'][:4]}-{r['month'][4:]}", r["currency"])
            amount = Decimal(repr(r["cost"])) + sum((Decimal(repr(c["amount"])) for c in r["credits"] or []),
                                                    Decimal(0))
            totals[key] = totals.get(key, Decimal(0)) + amount
    return totals


@pytest.mark.parametrize("name", ["standard-jsonl", "detailed-parquet-2-months"])
def test_invoice_total_equals_focus_billed_cost_per_invoice_month(generated, converted, name):
    summary = generated[name]
    expected = _invoice_totals_from_files(summary.data_files)
    focus = (pl.read_parquet(converted[name].out)
             .group_by("BillingAccountId", "x_BillingPeriod", "BillingCurrency").agg(pl.col("BilledCost").sum()))
    got = {tuple(r[:3]): r[3] for r in focus.iter_rows()}
    assert got == expected
    assert {k[1] for k in got} == set(summary.rows_per_period)
    # and both equal the invoices the generator issued
    invoices = {}
    for path in summary.invoice_files:
        with path.open(newline="") as fh:
            for inv in csv.DictReader(fh):
                invoices[(inv["billing_account_id"], inv["billing_period"], inv["currency"])] = Decimal(inv["total"])
    assert invoices == expected
    assert len({c for _, _, c in expected}) == 2  # USD and EUR accounts


def test_demo_delivery_publishes_through_the_delta_tables(tmp_path):
    """The embedded demo delivery through the landing zone: discover -> raw_gcp_billing -> focus_costs."""
    warehouse = Warehouse(str(tmp_path / "warehouse"))
    store = LocalStore(SAMPLE_LANDING)
    source = ExportSource("gcp-billing", "gcp-billing", "gcp-billing")
    deliveries = discover_deliveries(store, source)
    assert list(deliveries) == ["2024-01"]
    ingested = ingest_delivery(warehouse, store, source, deliveries["2024-01"])
    assert ingested.rows == 360 and ingested.format_versions == ["detailed parquet"]
    published = publish_focus(warehouse, source, "2024-01")
    assert published.checks.problems == [] and published.quarantine_rows == 0
    raw = warehouse.scan("raw_gcp_billing").collect()
    assert raw.schema["credits"] == pl.List(pl.Struct({"name": pl.String, "amount": pl.Decimal(38, 12),
                                                       "full_name": pl.String, "id": pl.String, "type": pl.String}))
    focus = warehouse.scan(FOCUS_TABLE).collect()
    invoice = raw.select(pl.col("cost").sum() + pl.col("credits").list.eval(pl.element().struct.field("amount"))
                         .list.sum().sum()).item()
    assert focus["BilledCost"].sum() == invoice
    assert focus.height == published.checks.rows.focus == 360 + published.checks.rows.derived


# ---------------------------------------------------------------------------------------------
# The official validator
# ---------------------------------------------------------------------------------------------
@pytest.mark.validator
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_official_validator_passes_outside_allowlist(validator, converted, name, tmp_path):
    report = ov.run_official_validator(Path(converted[name].out), output_dir=tmp_path / "validator")
    print(report.summary_table())
    assert report.unexpected_failures == {}, report.summary_table()
    assert report.errored_rules == {}, report.summary_table()
    assert len(report.passed_leaf_rules) > 100
