"""The synthetic AWS CUR generator: layouts, manifests, line item mix, exact totals, invoices."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from focus_platform.generate import GenerationSummary, generate_aws_cur

D = pl.Decimal(38, 12)
ALL_TYPES = {
    "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee",
    "SavingsPlanUpfrontFee", "RIFee", "Fee", "Tax", "Credit", "Refund", "EdpDiscount", "PrivateRateDiscount",
    "BundledDiscount",
}
CREDIT_TYPES = ["Credit", "Refund", "EdpDiscount", "PrivateRateDiscount", "BundledDiscount"]
MONEY = [
    "line_item_unblended_cost", "savings_plan_savings_plan_effective_cost",
    "savings_plan_amortized_upfront_commitment_for_billing_period",
    "savings_plan_recurring_commitment_for_billing_period", "savings_plan_used_commitment",
    "reservation_effective_cost", "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
]


# --- helpers: an independent implementation of the totals -------------------------------------
def _snake(header: str) -> str:
    """CSV `category/Name` header -> Athena name (each capital becomes _x)."""
    out = "".join("_" + c.lower() if c.isupper() else c for c in header).replace("/", "_").replace(":", "_")
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def _amortized() -> pl.Expr:
    t = pl.col("line_item_line_item_type")

    def c(name: str) -> pl.Expr:
        return pl.col(name).cast(D)

    zero = pl.lit(0).cast(D)
    return (
        pl.when(t == "SavingsPlanCoveredUsage").then(c("savings_plan_savings_plan_effective_cost"))
        .when(t == "SavingsPlanRecurringFee").then(
            c("savings_plan_amortized_upfront_commitment_for_billing_period")
            + c("savings_plan_recurring_commitment_for_billing_period") - c("savings_plan_used_commitment"))
        .when(t.is_in(["SavingsPlanNegation", "SavingsPlanUpfrontFee"])).then(zero)
        .when(t == "DiscountedUsage").then(c("reservation_effective_cost"))
        .when(t == "RIFee").then(c("reservation_unused_amortized_upfront_fee_for_billing_period")
                                 + c("reservation_unused_recurring_fee"))
        .when((t == "Fee") & (pl.col("reservation_reservation_a_r_n").fill_null("") != "")).then(zero)
        .otherwise(c("line_item_unblended_cost"))
    )


def _read_parquet(summary: GenerationSummary) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in summary.data_files], how="vertical")


def _read_csv(summary: GenerationSummary) -> pl.DataFrame:
    frames = [pl.read_csv(f, infer_schema=False) for f in summary.data_files]
    df = pl.concat(frames, how="vertical")
    return df.rename({c: _snake(c) for c in df.columns}).with_columns(pl.col(MONEY).fill_null("0"))


def _recomputed(df: pl.DataFrame) -> dict[tuple[str, str, str], dict]:
    period = pl.col("bill_billing_period_start_date").cast(pl.String).str.slice(0, 7)
    t = pl.col("line_item_line_item_type")
    cost = pl.col("line_item_unblended_cost").cast(D)
    grouped = (
        df.with_columns(period=period, amortized=_amortized())
        .group_by("bill_payer_account_id", "period", "line_item_currency_code")
        .agg(rows=pl.len(), billed=cost.sum(), amortized=pl.col("amortized").sum(),
             tax=cost.filter(t == "Tax").sum(), credits=cost.filter(t.is_in(CREDIT_TYPES)).sum(),
             unused=((t.is_in(["RIFee", "SavingsPlanRecurringFee"])) & (pl.col("amortized") != 0)).sum())
    )
    return {(r["bill_payer_account_id"], r["period"], r["line_item_currency_code"]): r
            for r in grouped.iter_rows(named=True)}


def _assert_totals_match(summary: GenerationSummary, df: pl.DataFrame) -> None:
    got = _recomputed(df)
    expected = summary.expected_totals["totals"]
    assert len(got) == len(expected)
    for e in expected:
        r = got[(e["billing_account_id"], e["billing_period"], e["currency"])]
        assert r["rows"] == e["rows"]
        assert r["billed"] == Decimal(e["billed_cost"])
        assert r["amortized"] == Decimal(e["amortized_cost"])
        assert r["tax"] == Decimal(e["tax"])
        assert r["credits"] == Decimal(e["credits"])
        assert r["unused"] == e["unused_commitment_rows"] > 0


# --- runs, shared by the tests ------------------------------------------------------------------
@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    written: list[int] = []
    summary = generate_aws_cur(tmp_path_factory.mktemp("legacy"), rows=20_000, seed=7, progress=written.append)
    assert sum(written) == 20_000
    return summary


@pytest.fixture(scope="module")
def two_months(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_aws_cur(tmp_path_factory.mktemp("two"), rows=12_000, months=2, seed=11, rows_per_file=4_000,
                            start_period="2024-02", report_name="acme-cur")


@pytest.fixture(scope="module")
def cur2(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate_aws_cur(tmp_path_factory.mktemp("cur2"), rows=9_000, months=2, seed=5, layout="cur2",
                            accounts=4)


# --- tests ----------------------------------------------------------------------------------------
def test_same_seed_same_output_other_seed_differs(tmp_path: Path) -> None:
    runs = [generate_aws_cur(tmp_path / name, rows=4_000, seed=seed, rows_per_file=1_500)
            for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    a, b, c = runs
    assert a.expected_totals == b.expected_totals
    assert [f.relative_to(a.out_dir) for f in a.paths] == [f.relative_to(b.out_dir) for f in b.paths]
    for fa, fb in zip(a.paths, b.paths, strict=True):
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    assert a.expected_totals != c.expected_totals
    assert not _read_parquet(a).equals(_read_parquet(c))


def test_legacy_layout_and_manifests(two_months: GenerationSummary) -> None:
    s = two_months
    assert s.rows_per_period == {"2024-02": 6_000, "2024-03": 6_000}
    for period, folder in (("2024-02", "20240201-20240301"), ("2024-03", "20240301-20240401")):
        top = s.report_dir / folder / "acme-cur-Manifest.json"
        manifest = json.loads(top.read_text())
        assembly = s.report_dir / folder / manifest["assemblyId"]
        assert json.loads((assembly / "acme-cur-Manifest.json").read_text()) == manifest
        assert manifest["reportName"] == "acme-cur"
        assert manifest["billingPeriod"] == {"start": f"{folder[:8]}T000000.000Z", "end": f"{folder[9:]}T000000.000Z"}
        assert manifest["compression"] == "Parquet"
        keys = manifest["reportKeys"]
        assert len(keys) == 2  # 6,000 rows in files of 4,000
        for key in keys:
            assert key.startswith(f"acme-cur/{folder}/{manifest['assemblyId']}/acme-cur-")
            assert key.endswith(".snappy.parquet")
            assert (s.out_dir / key).is_file()
        columns = {(c["category"], c["name"]) for c in manifest["columns"]}
        assert {("lineItem", "UnblendedCost"), ("reservation", "ReservationARN"), ("resourceTags", "user:team"),
                ("savingsPlan", "SavingsPlanARN"), ("bill", "InvoicingEntity")} <= columns
        assert all(set(c) == {"category", "name", "type"} for c in manifest["columns"])
    df = _read_parquet(s)
    assert {"line_item_unblended_cost", "reservation_reservation_a_r_n", "savings_plan_savings_plan_a_r_n",
            "resource_tags_user_team", "resource_tags_user_cost_center", "resource_tags_aws_created_by",
            "product_region", "pricing_public_on_demand_cost"} <= set(df.columns)
    assert df.schema["line_item_unblended_rate"] == pl.String  # a string in Athena Parquet, like AWS
    assert df.schema["line_item_usage_start_date"] == pl.Datetime("ms", "UTC")
    assert df["bill_payer_account_id"].str.len_chars().unique().to_list() == [12]
    assert df["line_item_usage_account_id"].str.starts_with("0").any()  # leading zeros survive
    # the last month is still open: no invoice id, no invoice file
    invoice_ids = df.group_by(pl.col("bill_billing_period_start_date").dt.month()).agg(
        pl.col("bill_invoice_id").unique())
    by_month = {r[0]: set(r[1]) for r in invoice_ids.iter_rows()}
    assert "" not in by_month[2] and by_month[3] == {""}
    assert {p.name for p in s.invoice_files} == {"2024-02.csv"}
    _assert_totals_match(s, df)


def test_every_line_item_type_in_a_20k_run(legacy: GenerationSummary) -> None:
    df = _read_parquet(legacy)
    assert len(df) == 20_000
    counts = dict(df["line_item_line_item_type"].value_counts().iter_rows())
    assert set(counts) == ALL_TYPES
    assert 0.80 < counts["Usage"] / len(df) < 0.90
    assert counts["SavingsPlanCoveredUsage"] == counts["SavingsPlanNegation"]
    assert counts["RIFee"] == 3 * 4  # one per RI and month, 4 RIs per payer
    usage = df.filter(pl.col("line_item_line_item_type") == "Usage")
    assert usage["line_item_usage_type"].str.contains("SpotUsage:").any()
    assert set(usage["line_item_product_code"]) >= {"AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda",
                                                    "AWSDataTransfer", "AmazonCloudWatch"}
    assert set(usage["pricing_unit"]) >= {"Hrs", "GB-Mo", "Requests", "GB"}
    marketplace = df.filter(pl.col("bill_billing_entity") == "AWS Marketplace")
    assert len(marketplace) == 3 and (marketplace["line_item_legal_entity"] != "Amazon Web Services, Inc.").all()
    assert (df.filter(pl.col("line_item_line_item_type") == "DiscountedUsage")["line_item_unblended_cost"] == 0).all()
    # each negation cancels a covered row's on-demand cost
    sp = df.filter(pl.col("line_item_line_item_type").is_in(["SavingsPlanCoveredUsage", "SavingsPlanNegation"]))
    assert sp["line_item_unblended_cost"].cast(D).sum() == 0
    assert df["identity_line_item_id"].n_unique() == len(df)


def test_tag_columns_are_real_shaped(legacy: GenerationSummary) -> None:
    """Nine resource tag columns, as the October 2018 workshop CUR has, dense and sparse ones: the
    benchmark data pays the tag cost real exports pay."""
    df = _read_parquet(legacy)
    tags = [c for c in df.columns if c.startswith("resource_tags_")]
    assert len(tags) == 9
    share = {c: (df[c].fill_null("") != "").mean() for c in tags}  # Athena Parquet writes "" for no tag
    assert all(s > 0 for s in share.values()), share
    assert min(share.values()) < 0.05 < 0.25 < max(share.values())


def test_expected_totals_equal_polars_recomputation(legacy: GenerationSummary) -> None:
    df = _read_parquet(legacy)
    _assert_totals_match(legacy, df)
    on_disk = json.loads(legacy.expected_totals_path.read_text())
    assert on_disk == legacy.expected_totals
    # the money rule: the decimal text of every float equals polars' Decimal(38,12) cast
    for col in MONEY:
        values = df[col]
        assert values.cast(D).to_list() == [Decimal(repr(v)).quantize(Decimal("1E-12")) for v in values.to_list()]


def test_csv_gz_variant_has_category_name_headers(tmp_path: Path) -> None:
    s = generate_aws_cur(tmp_path, rows=6_000, seed=9, file_format="csv.gz", rows_per_file=2_500)
    assert [f.name for f in s.data_files] == [f"focus-demo-{n}.csv.gz" for n in (1, 2, 3)]
    header = pl.read_csv(s.data_files[0], n_rows=1, infer_schema=False).columns
    assert {"identity/LineItemId", "lineItem/UnblendedCost", "lineItem/LineItemType", "bill/PayerAccountId",
            "resourceTags/user:team", "resourceTags/user:CostCenter", "reservation/ReservationARN",
            "savingsPlan/SavingsPlanEffectiveCost", "costCategory/BusinessUnit"} <= set(header)
    manifest = json.loads(next(p for p in s.manifest_files).read_text())
    assert manifest["compression"] == "GZIP" and manifest["contentType"] == "text/csv"
    df = _read_csv(s)
    assert len(df) == 6_000
    _assert_totals_match(s, df)  # decimal text parsed exactly gives the same totals


def test_cur2_has_real_map_columns(cur2: GenerationSummary) -> None:
    s = cur2
    for period in ("2024-01", "2024-02"):
        data = s.report_dir / "data" / f"BILLING_PERIOD={period}" / "focus-demo-1.snappy.parquet"
        assert data.is_file()
        manifest = json.loads((s.report_dir / "metadata" / f"BILLING_PERIOD={period}"
                               / "focus-demo-Manifest.json").read_text())
        assert manifest["dataFiles"] == [f"s3://focus-landing/focus-demo/data/BILLING_PERIOD={period}/"
                                         "focus-demo-1.snappy.parquet"]
        assert {"executionId", "exportArn", "columns", "dataFiles", "billingPeriod"} <= set(manifest)
        assert len(manifest["columns"]) == 125
    schema = pq.read_schema(s.data_files[0])
    assert len(schema) == 125
    assert schema.field("product").type == pa.map_(pa.string(), pa.string())
    assert schema.field("resource_tags").type == pa.map_(pa.string(), pa.string())
    assert schema.field("cost_category").type == pa.map_(pa.string(), pa.string())
    assert schema.field("discount").type == pa.map_(pa.string(), pa.float64())
    assert "product_region" not in schema.names
    assert {"product_region_code", "bill_payer_account_name", "line_item_usage_account_name"} <= set(schema.names)
    df = _read_parquet(s)
    products = df["product"].to_list()
    assert all("product_name" in p for p in products)
    assert any({"region", "sku"} <= set(p) for p in products)
    tag_keys = {k for tags in df["resource_tags"].to_list() for k in tags}
    assert {"user_team", "user_cost_center", "aws_created_by"} <= tag_keys
    edp = df.filter(pl.col("line_item_line_item_type") == "EdpDiscount")
    assert all(set(d) == {"edp_discount"} for d in edp["discount"].to_list())
    assert (df["line_item_net_unblended_cost"] == df["line_item_unblended_cost"]).all()
    _assert_totals_match(s, df)


def test_invoices_equal_billed_totals(legacy: GenerationSummary) -> None:
    totals = {(t["billing_account_id"], t["billing_period"]): t for t in legacy.expected_totals["totals"]}
    assert len(legacy.invoice_files) == len(totals) == 3
    df = _read_parquet(legacy)
    for path in legacy.invoice_files:
        with path.open(newline="") as fh:
            (invoice,) = list(csv.DictReader(fh))
        assert path.parent.name == invoice["billing_account_id"] and path.stem == invoice["billing_period"]
        expected = totals[(invoice["billing_account_id"], invoice["billing_period"])]
        assert Decimal(invoice["total"]) == Decimal(expected["billed_cost"])
        assert Decimal(invoice["tax"]) == Decimal(expected["tax"])
        assert Decimal(invoice["credits"]) == Decimal(expected["credits"])
        rows = df.filter(pl.col("bill_payer_account_id") == invoice["billing_account_id"])
        assert rows["bill_invoice_id"].unique().to_list() == [invoice["invoice_id"]]
        assert rows["bill_invoicing_entity"].unique().to_list() == [invoice["issuer"]]
        assert rows["line_item_unblended_cost"].cast(D).sum() == Decimal(invoice["total"])


def test_too_few_rows_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        generate_aws_cur(tmp_path, rows=100)
