"""The synthetic GCP billing export generator: layout, nested schema, row mix, exact totals, invoices,
and generated data tied through ``convert_files`` to the generator's expected totals."""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest

from focus_platform.generate.gcp import arrow_schema, generate_gcp
from focus_platform.pipeline import convert_files


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    written: list[int] = []
    summary = generate_gcp(tmp_path_factory.mktemp("jsonl"), rows=6_000, months=2, seed=3, export="standard",
                           file_format="jsonl", rows_per_file=2_500, progress=written.append)
    assert sum(written) == 6_000
    return summary


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    return generate_gcp(tmp_path_factory.mktemp("parquet"), rows=9_000, months=1, seed=4, export="detailed",
                        accounts=4, start_period="2024-03")


def _read(summary) -> pl.DataFrame:
    if summary.file_format == "parquet":
        return pl.concat([pl.read_parquet(f) for f in summary.data_files], how="vertical")
    return pl.concat([pl.read_ndjson(f, infer_schema_length=None) for f in summary.data_files], how="diagonal_relaxed")


def _recomputed(df: pl.DataFrame) -> dict[tuple[str, str, str], dict]:
    """Totals per account, invoice month and currency from the files, with Python Decimals."""
    out: dict[tuple[str, str, str], dict] = {}
    for r in df.select("billing_account_id", "currency", "cost", "cost_type", "credits",
                       pl.col("invoice").struct.field("month"), pl.col("sku").struct.field("description")
                       ).iter_rows(named=True):
        key = (r["billing_account_id"], f"{r['month'][:4]}-{r['month'][4:]}", r["currency"])
        t = out.setdefault(key, {"rows": 0, "cost": Decimal(0), "credits": Decimal(0), "tax": Decimal(0),
                                 "promotions": 0, "fees": Decimal(0), "adjustments": Decimal(0)})
        cost = Decimal(repr(r["cost"]))
        t["rows"] += 1
        t["cost"] += cost
        for c in r["credits"] or []:
            t["credits"] += Decimal(repr(c["amount"]))
            t["promotions"] += c["type"] == "PROMOTION" and c["amount"] != 0
        t["tax"] += cost if r["cost_type"] == "tax" else 0
        t["adjustments"] += cost if r["cost_type"] == "adjustment" else 0
        t["fees"] += cost if (r["description"] or "").startswith("Commitment") else 0
    return out


@pytest.mark.parametrize("name", ["jsonl", "parquet"])
def test_expected_totals_match_the_files(request, name):
    summary = request.getfixturevalue(name)
    got = _recomputed(_read(summary))
    expected = summary.expected_totals["totals"]
    assert len(got) == len(expected)
    for e in expected:
        r = got[(e["billing_account_id"], e["billing_period"], e["currency"])]
        assert r["rows"] == e["rows"]
        assert r["cost"] == Decimal(e["cost"])
        assert r["credits"] == Decimal(e["credits"])
        assert r["cost"] + r["credits"] == Decimal(e["billed_cost"]) == Decimal(e["effective_cost"])
        assert r["tax"] == Decimal(e["tax"])
        assert r["fees"] == Decimal(e["cud_fees"])
        assert r["adjustments"] == Decimal(e["adjustments"])
        assert e["focus_rows"] == e["rows"] + r["promotions"]
    assert sum(e["rows"] for e in expected) == summary.rows


def test_layout_and_invoices(jsonl):
    out = jsonl.out_dir
    assert [f.relative_to(out).as_posix() for f in jsonl.data_files] == [
        "gcp-billing/2024-01/gcp_billing_export_v1-000000000000.jsonl",
        "gcp-billing/2024-01/gcp_billing_export_v1-000000000001.jsonl",
        "gcp-billing/2024-02/gcp_billing_export_v1-000000000000.jsonl",
        "gcp-billing/2024-02/gcp_billing_export_v1-000000000001.jsonl",
    ]
    assert jsonl.expected_totals_path == out / "gcp-billing" / "expected_totals.json"
    first = jsonl.data_files[0].read_text().splitlines()[0]
    assert '"usage_start_time":"2024-' in first and ' UTC"' in first  # BigQuery JSON timestamps
    by_key = {(e["billing_account_id"], e["billing_period"]): e for e in jsonl.expected_totals["totals"]}
    assert len(jsonl.invoice_files) == 6
    for path in jsonl.invoice_files:
        assert path.relative_to(out).parts[0] == "invoices"
        with path.open(newline="") as fh:
            (inv,) = list(csv.DictReader(fh))
        e = by_key[(inv["billing_account_id"], inv["billing_period"])]
        assert path.name == f"{inv['billing_period']}.csv" and path.parent.name == inv["billing_account_id"]
        assert Decimal(inv["total"]) == Decimal(e["billed_cost"])
        assert Decimal(inv["tax"]) == Decimal(e["tax"]) and Decimal(inv["credits"]) == Decimal(e["credits"])
        assert inv["invoice_id"] == e["invoice_id"] and inv["currency"] == e["currency"]
        assert inv["issuer"] and inv["issued_date"] > inv["billing_period"]


def test_detailed_parquet_is_nested_like_bigquery(parquet):
    schema = pq.read_schema(parquet.data_files[0])
    assert schema.equals(arrow_schema("detailed"))
    for name in ("service", "sku", "project", "location", "usage", "invoice", "adjustment_info", "price", "resource"):
        assert schema.field(name).type.num_fields > 0, name
    assert str(schema.field("credits").type).startswith("list<element: struct<name: string, amount: double")
    df = _read(parquet)
    types = set(df["credits"].explode().struct.field("type").drop_nulls())
    assert types == {"SUSTAINED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT", "FREE_TIER", "PROMOTION", "DISCOUNT"}
    assert set(df["cost_type"]) == {"regular", "tax", "adjustment"}
    modes = set(df["adjustment_info"].struct.field("mode").drop_nulls())
    assert modes == {"COMPLETE_NEGATION_WITH_REMONETIZATION", "MANUAL_ADJUSTMENT"}
    fees = df.filter(pl.col("sku").struct.field("description").str.starts_with("Commitment"))
    assert fees.height > 0 and fees["subscription"].struct.field("instance_id").null_count() == 0
    assert set(df["currency"]) == {"USD", "EUR"} and df["billing_account_id"].n_unique() == 4
    assert set(df["invoice"].struct.field("publisher_type")) == {"GOOGLE", "PARTNER"}
    # money rule: whole micro-units of at most 5,000
    money = pl.concat([df["cost"], df["credits"].explode().struct.field("amount").drop_nulls()])
    assert (money.abs() <= 5000).all()
    assert all(Decimal(repr(x)).as_tuple().exponent >= -6 for x in money.to_list())
    # the invoice month is the Pacific-time month: its first UTC hours of April belong to March,
    # and some late usage of February is on the March invoice too
    start, end = df["usage_start_time"].min(), df["usage_start_time"].max()
    assert start < datetime(2024, 3, 1, 8, tzinfo=UTC) and end >= datetime(2024, 4, 1, tzinfo=UTC)


def test_generated_data_ties_through_convert_files(parquet, tmp_path):
    result = convert_files([str(f) for f in parquet.data_files], str(tmp_path / "focus.parquet"))
    assert result.checks.problems == [] and result.checks.conformance.defects == {}
    assert result.quarantined == 0
    expected = parquet.expected_totals["totals"]
    assert result.rows_in == sum(e["rows"] for e in expected)
    assert result.rows_out == sum(e["focus_rows"] for e in expected)
    got = {(c.billing_account, c.billing_period, c.currency): c for c in result.checks.conservation}
    for e in expected:
        c = got[(e["billing_account_id"], e["billing_period"], e["currency"])]
        assert c.focus_billed == Decimal(e["billed_cost"]) == c.raw_billed
        assert c.focus_effective == Decimal(e["effective_cost"])


def test_deterministic(tmp_path):
    def digest(out):
        s = generate_gcp(out, rows=1_500, seed=9, export="detailed")
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in s.data_files], s.expected_totals
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="cannot hold the month-end rows"):
        generate_gcp(tmp_path, rows=90, accounts=3)
    with pytest.raises(ValueError, match="export must be"):
        generate_gcp(tmp_path, rows=1_000, export="focus")
    with pytest.raises(ValueError, match="file_format must be"):
        generate_gcp(tmp_path, rows=1_000, file_format="csv")
