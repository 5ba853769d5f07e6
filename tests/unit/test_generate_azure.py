"""The synthetic Azure generator: export layout, manifests, charge-type mix, exact totals, invoices,
and generated deliveries tied through ``convert_files`` to the generator's expected totals."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.generate.azure import AzureGenerationSummary, generate_azure
from focus_platform.pipeline import convert_files

D = pl.Decimal(38, 12)


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> AzureGenerationSummary:
    return generate_azure(tmp_path_factory.mktemp("azure-gen"), rows=3_000, months=2, accounts=3, seed=5,
                          rows_per_file=400)


def _read(paths: list[Path]) -> pl.DataFrame:
    """The delivered text, one row per data row, with a unified cost / account / charge type."""
    frames = []
    for p in paths:
        df = pl.read_csv(p, infer_schema=False)
        mca = "billingProfileId" in df.columns
        frames.append(df.select(
            pl.col("billingProfileId" if mca else "BillingAccountId").alias("account"),
            pl.col("costInBillingCurrency" if mca else "CostInBillingCurrency").cast(D).alias("cost"),
            pl.col("chargeType" if mca else "ChargeType").alias("charge_type"),
            pl.col("billingCurrency" if mca else "BillingCurrencyCode").alias("currency"),
            pl.col("date" if mca else "Date").str.slice(6, 4).alias("year"),
            pl.col("date" if mca else "Date").str.slice(0, 2).alias("month"),
            pl.lit("amortized" if "amortized" in p.parts else "actual").alias("dataset")))
    return pl.concat(frames)


def test_export_layout_and_manifests(gen):
    rel = {p.relative_to(gen.out_dir).as_posix() for p in gen.data_files}
    assert any(r.startswith("azure-ea/actual/20240101-20240131/") and r.endswith("/part_0_0001.csv") for r in rel)
    assert any(r.startswith("azure-mca/amortized/20240201-20240229/") for r in rel)
    assert len([r for r in rel if r.startswith("azure-ea/actual/20240101")]) > 1  # split by rows_per_file
    for manifest in gen.manifest_files:
        m = json.loads(manifest.read_text())
        rows = sum(sum(1 for _ in csv.reader((manifest.parent / b["blobName"]).open())) - 1 for b in m["blobs"])
        assert m["dataRowCount"] == rows == sum(b["dataRowCount"] for b in m["blobs"])
        assert m["exportConfig"]["type"] in ("ActualCost", "AmortizedCost")
    assert gen.rows == 3_000 == sum(t["rows"] for t in gen.expected_totals["totals"])


def test_same_seed_same_output_other_seed_differs(tmp_path):
    a = generate_azure(tmp_path / "a", rows=600, accounts=2, seed=1)
    b = generate_azure(tmp_path / "b", rows=600, accounts=2, seed=1, rows_per_file=50)
    c = generate_azure(tmp_path / "c", rows=600, accounts=2, seed=2)
    assert a.expected_totals == b.expected_totals  # rows_per_file only splits files
    assert _read(a.data_files).sort(pl.all()).equals(_read(b.data_files).sort(pl.all()))
    assert a.expected_totals["totals"] != c.expected_totals["totals"]


def test_charge_types_by_dataset(gen):
    df = _read(gen.data_files)
    actual = set(df.filter(pl.col("dataset") == "actual")["charge_type"])
    amortized = set(df.filter(pl.col("dataset") == "amortized")["charge_type"])
    assert actual == {"Usage", "Purchase", "Refund", "RoundingAdjustment"}
    assert amortized == {"Usage", "Purchase", "UnusedReservation", "UnusedSavingsPlan", "RoundingAdjustment"}
    assert df["currency"].n_unique() == 3  # USD, EUR, GBP
    free = df.filter((pl.col("charge_type") == "Usage") & (pl.col("cost") == 0) & (pl.col("dataset") == "amortized"))
    assert free.height > 0  # free-tier rows


def test_expected_totals_equal_an_independent_recomputation(gen):
    df = _read(gen.data_files)
    sums = (df.group_by("account", "year", "month", "currency", "dataset").agg(pl.col("cost").sum(), pl.len())
            .with_columns(pl.concat_str(["year", "month"], separator="-").alias("period")))
    for t in gen.expected_totals["totals"]:
        mine = sums.filter((pl.col("account") == t["billing_account_id"]) & (pl.col("period") == t["billing_period"]))
        by = {r["dataset"]: r for r in mine.iter_rows(named=True)}
        assert str(by["actual"]["cost"]) == t["billed_cost"]
        assert str(by["amortized"]["cost"]) == t["amortized_cost"]
        assert by["actual"]["len"] + by["amortized"]["len"] == t["rows"]
        assert by["actual"]["currency"] == t["currency"]


def test_invoices_equal_billed_totals(gen):
    totals = {(t["billing_account_id"], t["billing_period"]): t for t in gen.expected_totals["totals"]}
    assert len(gen.invoice_files) == len(totals)
    for path in gen.invoice_files:
        with path.open() as fh:
            (inv,) = list(csv.DictReader(fh))
        t = totals[(inv["billing_account_id"], inv["billing_period"])]
        assert Decimal(inv["total"]) == Decimal(t["billed_cost"]) and inv["currency"] == t["currency"]
        assert inv["invoice_id"] == t["invoice_id"] and path.parent.name == inv["billing_account_id"]


def test_generated_deliveries_tie_to_expected_totals_through_convert_files(gen, tmp_path):
    expected = {(t["billing_account_id"], t["billing_period"]): t for t in gen.expected_totals["totals"]}
    seen = set()
    for source in ("azure-ea", "azure-mca"):
        for period in gen.rows_per_period:
            files = gen.files_of(source, period)
            assert {("amortized" in f.parts) for f in files} == {True, False}
            result = convert_files([str(f) for f in files], str(tmp_path / f"{source}-{period}.parquet"))
            checks = result.checks
            assert checks.problems == [] and checks.conformance.defects == {}, checks.conformance.summary()
            for row in checks.conservation:
                t = expected[(row.billing_account, row.billing_period)]
                assert str(row.focus_billed) == t["billed_cost"] and str(row.focus_effective) == t["amortized_cost"]
                assert row.currency == t["currency"]
                seen.add((row.billing_account, row.billing_period))
            ts = [t for (acct, p), t in expected.items() if p == period and t["source"] == source]
            assert checks.rows.focus == sum(t["focus_rows"] for t in ts)
            assert checks.rows.dropped == sum(t["dropped_rows"] for t in ts)
    assert seen == set(expected)


def test_csv_gz_variant_converts(tmp_path):
    s = generate_azure(tmp_path / "gz", rows=500, accounts=1, file_format="csv.gz")
    assert all(p.name.endswith(".csv.gz") for p in s.data_files)
    result = convert_files([str(p) for p in s.data_files], str(tmp_path / "gz.parquet"))
    (t,) = s.expected_totals["totals"]
    assert result.checks.problems == []
    assert str(result.checks.conservation[0].focus_billed) == t["billed_cost"]


def test_too_few_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="rows too small"):
        generate_azure(tmp_path / "small", rows=100, accounts=1)
