"""No cent lost through the pipeline stages: truncated CSVs of every format, several formats in one
convert call, amounts that cannot be read, raw sets refused as a whole, unchanged re-deliveries.

Expected totals are computed here from the delivered text with ``csv`` + ``Decimal``, independently
of the package.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.landing.zone import discover_deliveries
from focus_platform.pipeline import (
    DeliveryRefused,
    convert_files,
    ingest_delivery,
    publish_focus,
    raw_side,
)
from focus_platform.sources import SourceFormatError
from focus_platform.warehouse.delta import GateFailed
from focus_platform.warehouse.restatements import read_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CSV_SAMPLES = {  # one CSV per format: (file, its amount column, its currency column)
    "aws-cur": (FIXTURES / "aws" / "cur_legacy_small.csv", "lineItem/UnblendedCost", "lineItem/CurrencyCode"),
    "azure-cost-details": (FIXTURES / "azure" / "ftk_EA_ActualCost_Small.csv", None, None),
    "gcp-billing": (FIXTURES / "gcp" / "koku_202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv",
                    None, None),
    "oci-cost": (FIXTURES / "oci" / "focus_converters_reports_cost-csv_0000000030000269.csv", "cost/myCost",
                 "cost/currencyCode"),
    "focus": (FIXTURES / "focus-native" / "tiny_focus_1_2.csv", "BilledCost", "BillingCurrency"),
}


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        header, *rows = list(csv.reader(f))
    return header, [r for r in rows if r]


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_text(buf.getvalue(), "utf-8")
    return path


def cut_at_field_boundary(source: Path, out: Path, *, gz: bool = False) -> int:
    """The file with its last row cut after a field separator (fewer fields than the header);
    returns the number of that data row."""
    header, rows = read_table(source)
    keep = max(1, len(header) // 2)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows[:-1]])
    last = io.StringIO()
    csv.writer(last, lineterminator="\n").writerow(rows[-1][:keep])
    data = (buf.getvalue() + last.getvalue()).encode()
    out.write_bytes(gzip.compress(data) if gz else data)
    return len(rows)


def billed_by_currency(path: Path, amount: str, currency: str) -> dict[str, Decimal]:
    """Per currency, the sum of the amounts as Decimal(38,12) holds them (each rounded half-even to 12 places, as Polars casts)."""
    header, rows = read_table(path)
    out: dict[str, Decimal] = {}
    for r in rows:
        cur = r[header.index(currency)]
        value = Decimal(r[header.index(amount)] or "0").quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
        out[cur] = out.get(cur, Decimal(0)) + value
    return out


# ---------------------------------------------------------------------------------------------
# A CSV cut at a field boundary: refused, in every format, plain and gzipped
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", sorted(CSV_SAMPLES))
@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_a_csv_cut_at_a_field_boundary_is_refused_naming_file_and_row(tmp_path, fmt, gz):
    source = CSV_SAMPLES[fmt][0]
    cut = tmp_path / ("cut.csv.gz" if gz else "cut.csv")
    row = cut_at_field_boundary(source, cut, gz=gz)
    with pytest.raises(SourceFormatError) as err:
        convert_files([str(cut)], str(tmp_path / "out.parquet"))
    message = str(err.value)
    assert str(cut) in message and "truncated file" in message and f"data row {row} has" in message
    assert not (tmp_path / "out.parquet").exists()


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    header, rows = read_table(CSV_SAMPLES["aws-cur"][0])
    rows[3] = rows[3] + ["surplus"]
    path = write_table(tmp_path / "long.csv", header, rows)
    with pytest.raises(SourceFormatError, match=r"long\.csv: malformed CSV \(data row 4 has"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_a_quoted_line_break_is_not_mistaken_for_a_short_row(tmp_path):
    header, rows = read_table(CSV_SAMPLES["aws-cur"][0])
    rows[0][header.index("lineItem/LineItemDescription")] = "two\nlines, with a comma"
    path = write_table(tmp_path / "multiline.csv", header, rows)
    result = convert_files([str(path)], str(tmp_path / "out.parquet"))
    assert result.rows_in == len(rows) and not result.checks.problems


def test_a_truncated_delivery_does_not_replace_a_good_month(landing, warehouse, cur, h, tmp_path):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    published = h.focus_rows(warehouse, "aws-a")
    cut = tmp_path / "cut.csv.gz"
    row = cut_at_field_boundary(h.SMALL_CUR, cut, gz=True)
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cut.read_bytes()})
    src = landing.source("aws-a")
    delivery = discover_deliveries(landing.store(), src)[h.PERIOD]
    with pytest.raises(SourceFormatError, match=rf"cur-1\.csv\.gz: truncated file \(data row {row} has"):
        ingest_delivery(warehouse, landing.store(), src, delivery)
    assert h.focus_rows(warehouse, "aws-a").equals(published)


# ---------------------------------------------------------------------------------------------
# Several formats in one convert call
# ---------------------------------------------------------------------------------------------
def test_two_formats_in_one_convert_call_are_each_converted_as_what_they_are(tmp_path):
    aws, aws_amount, aws_cur = CSV_SAMPLES["aws-cur"]
    oci, oci_amount, oci_cur = CSV_SAMPLES["oci-cost"]
    out = tmp_path / "mixed.parquet"
    result = convert_files([str(aws), str(oci)], str(out))
    assert result.formats == ["aws-cur", "oci-cost"]
    assert not result.checks.problems, result.checks.problems
    assert result.quarantined == 0
    focus = pl.read_parquet(out)
    by_provider = {(r[0], r[1]): r[2] for r in focus.group_by("ProviderName", "BillingCurrency")
                   .agg(pl.col("BilledCost").sum()).iter_rows()}
    expected_aws = billed_by_currency(aws, aws_amount, aws_cur)
    expected_oci = billed_by_currency(oci, oci_amount, oci_cur)
    assert {c: v for (p, c), v in by_provider.items() if p == "AWS"} == expected_aws
    assert {c: v for (p, c), v in by_provider.items() if p == "Oracle"} == expected_oci
    single = convert_files([str(oci)], str(tmp_path / "oci.parquet"))
    assert result.rows_in == single.rows_in + len(read_table(aws)[1])


# ---------------------------------------------------------------------------------------------
# Amounts that cannot be read
# ---------------------------------------------------------------------------------------------
BAD_AMOUNTS = ["1,234.56", "$12", "NaN", "1" + "0" * 39]


def test_unreadable_amounts_fail_the_billed_check_naming_file_row_and_value(tmp_path):
    header, rows = read_table(CSV_SAMPLES["aws-cur"][0])
    for i, value in enumerate(BAD_AMOUNTS):
        rows[i][header.index("lineItem/UnblendedCost")] = value
    path = write_table(tmp_path / "bad-amounts.csv", header, rows)
    result = convert_files([str(path)], str(tmp_path / "out.parquet"))
    assert result.quarantined == len(BAD_AMOUNTS)
    problems = " ".join(result.checks.problems)
    assert "billed cost not conserved" in problems and "4 quarantined row(s) hold amounts that cannot be read" in problems
    for i, value in enumerate(BAD_AMOUNTS):
        assert f"bad-amounts.csv row {i + 1}: lineItem/UnblendedCost: '{value}'" in problems
    assert "'1,234.56' is not a number" in problems and "'$12' is not a number" in problems
    assert "overflows Decimal(38,12)" in problems
    quarantine = pl.read_parquet(tmp_path / "out.quarantine.parquet")
    assert sorted(quarantine["x_UnreadableAmounts"].to_list()) == sorted(
        q for q in quarantine["x_UnreadableAmounts"].to_list() if any(v in q for v in BAD_AMOUNTS))

    accepted = convert_files([str(path)], str(tmp_path / "accepted.parquet"), accept_unknown_money=True)
    assert not accepted.checks.problems
    assert any("accepted deliberately" in w for w in accepted.checks.warnings)


def test_unreadable_amounts_block_publication_until_accepted_and_the_override_is_recorded(
        landing, warehouse, cur, h):
    landing.add_source("aws-a")
    bad = cur.copy().set(2, h.COST, "1,234.56")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": bad.gz_bytes()})
    src = landing.source("aws-a")
    delivery = discover_deliveries(landing.store(), src)[h.PERIOD]
    ingest_delivery(warehouse, landing.store(), src, delivery)
    with pytest.raises(GateFailed, match=r"cur-1\.csv\.gz row 3: lineItem/UnblendedCost: '1,234\.56' is not a number"):
        publish_focus(warehouse, src, h.PERIOD)
    assert not warehouse.exists(h.FOCUS_TABLE)
    published = publish_focus(warehouse, src, h.PERIOD, accept_unknown_money=True)
    assert published.checks.unknown_amount_rows == 1
    entry = read_log(warehouse, table=h.FOCUS_TABLE).row(-1, named=True)
    assert "accepted deliberately" in entry["note"] and "1,234.56" in entry["note"]
    quarantine = h.focus_rows(warehouse, "aws-a", table=h.QUARANTINE_TABLE)
    assert quarantine["x_UnreadableAmounts"].to_list() == ["lineItem/UnblendedCost: '1,234.56' is not a number"]


def test_a_format_problem_with_the_raw_set_refuses_it(tmp_path):
    class Refusing:
        name = "stub"

        @staticmethod
        def raw_totals(raw):
            return raw.select(pl.lit("a").alias("BillingAccountId"), pl.lit("x").alias("problem")).head(1)

        @staticmethod
        def quarantine(raw):
            return raw.head(0)

    with pytest.raises(SourceFormatError, match="^x$"):
        raw_side(Refusing, pl.LazyFrame({"v": [1]}))


# ---------------------------------------------------------------------------------------------
# Re-materializing an unchanged delivery: a recorded no-op
# ---------------------------------------------------------------------------------------------
def test_an_unchanged_delivery_is_a_recorded_no_op(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    versions = {t: h.table_version(warehouse, t) for t in ("raw_aws_cur", h.FOCUS_TABLE)}
    _, raw, focus = h.run_pipeline(warehouse, landing, "aws-a")
    assert raw.unchanged and focus.unchanged
    assert {t: h.table_version(warehouse, t) for t in versions} == versions
    assert not focus.checks.problems and focus.checks.rows.focus == len(cur.rows)
    log = read_log(warehouse)
    assert log.select("table", "action").rows() == [("raw_aws_cur", "publish"), (h.FOCUS_TABLE, "publish"),
                                                    ("focus_quarantine", "publish"), ("raw_aws_cur", "unchanged"),
                                                    (h.FOCUS_TABLE, "unchanged")]
    assert log["rows_before"][-1] == log["rows_after"][-1] == len(cur.rows)

    # an object rewritten in place is a new delivery: written again
    changed = cur.copy().set(0, h.COST, "0.5")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": changed.gz_bytes()})
    _, raw, focus = h.run_pipeline(warehouse, landing, "aws-a")
    assert not raw.unchanged and not focus.unchanged
    assert h.billed_by_currency(h.focus_rows(warehouse, "aws-a")) == changed.invoice_basis()


def test_a_refused_delivery_leaves_nothing_for_the_no_op_to_match(landing, warehouse, cur, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([1, 2]).gz_bytes()})
    src = landing.source("aws-a")
    delivery = discover_deliveries(landing.store(), src)[h.PERIOD]
    with pytest.raises(DeliveryRefused):
        ingest_delivery(warehouse, landing.store(), src, delivery)
    with pytest.raises(DeliveryRefused):  # still refused, not mistaken for a published delivery
        ingest_delivery(warehouse, landing.store(), src, delivery)


def test_after_a_rollback_the_same_delivery_is_written_again(landing, warehouse, cur, h):
    from focus_platform.pipeline import rollback_partition

    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.subset([0, 1, 2]).gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    rollback_partition(warehouse, "raw_aws_cur", h.PERIOD, "aws-a")
    rollback_partition(warehouse, h.FOCUS_TABLE, h.PERIOD, "aws-a")
    assert h.focus_rows(warehouse, "aws-a").height == 3
    # the newest delivery is no longer what is published: rebuilt, not mistaken for a no-op
    _, raw, focus = h.run_pipeline(warehouse, landing, "aws-a")
    assert not raw.unchanged and not focus.unchanged
    assert h.focus_rows(warehouse, "aws-a").height == len(cur.rows)


# ---------------------------------------------------------------------------------------------
# Found by trying the platform as a new user would (round 2)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["aws-cur", "oci-cost", "focus"])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, fmt):
    path, amount, _ = CSV_SAMPLES[fmt]
    header, rows = read_table(path)
    repeated = write_table(tmp_path / "repeated.csv", [*header, amount], [[*r, "999"] for r in rows])
    with pytest.raises(SourceFormatError, match=rf"repeated\.csv: the header names {re.escape(amount)} more than once"):
        convert_files([str(repeated)], str(tmp_path / "out.parquet"))


def test_a_converted_file_has_no_stale_quarantine_beside_it(tmp_path):
    header, rows = read_table(CSV_SAMPLES["aws-cur"][0])
    bad = [list(r) for r in rows]
    bad[0][header.index("lineItem/UsageStartDate")] = "not a date"
    out = tmp_path / "out.parquet"
    assert convert_files([str(write_table(tmp_path / "bad.csv", header, bad))], str(out)).quarantined == 1
    assert (tmp_path / "out.quarantine.parquet").exists()
    result = convert_files([str(CSV_SAMPLES["aws-cur"][0])], str(out))
    assert result.quarantined == 0 and result.quarantine_out is None
    assert not (tmp_path / "out.quarantine.parquet").exists()


def test_the_output_must_be_named_parquet(tmp_path):
    with pytest.raises(SourceFormatError, match=r"--out .*x\.csv: the output is a Parquet file"):
        convert_files([str(CSV_SAMPLES["aws-cur"][0])], str(tmp_path / "x.csv"))


def test_files_that_are_not_what_their_name_says_are_explained(tmp_path):
    header, rows = read_table(CSV_SAMPLES["oci-cost"][0])
    text = "\n".join(",".join(f'"{v}"' for v in r) for r in [header, *rows]) + "\n"
    cases = {
        "utf16.csv": (text.encode("utf-16"), "UTF-16 encoded"),
        "semicolons.csv": (text.replace('","', '";"').encode(), "separated by semicolons"),
        "parquet.csv": (None, "its content is Parquet"),
        "latin1.csv": (text.replace(rows[2][0], rows[2][0] + " caf\xe9", 1).encode("latin-1"),
                       "line 4 is not UTF-8"),
    }
    pl.read_csv(CSV_SAMPLES["oci-cost"][0], infer_schema=False).write_parquet(tmp_path / "parquet.csv")
    for name, (data, expected) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(SourceFormatError, match=re.escape(expected)):
            convert_files([str(tmp_path / name)], str(tmp_path / "out.parquet"))


@pytest.mark.parametrize("fmt", sorted(CSV_SAMPLES))
def test_no_working_column_reaches_the_output(tmp_path, fmt):
    """Columns the pipeline adds to raw rows while it works (a copy's reason, lookups) are not
    FOCUS columns nor delivered ones: none is published."""
    out = tmp_path / "out.parquet"
    convert_files([str(CSV_SAMPLES[fmt][0])], str(out))
    assert not [c for c in pl.read_parquet_schema(out) if c.startswith("__") or c.startswith("x___")]


def test_a_json_lines_file_cut_in_a_line_names_the_line(tmp_path):
    sample = next((Path(__file__).resolve().parents[2] / "focus_platform" / "sample_data" / "landing" / "gcp-billing")
                  .rglob("*.parquet"))
    whole = tmp_path / "whole.jsonl"
    pl.read_parquet(sample).head(20).write_ndjson(whole)
    text = whole.read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[:len(text) - 150])
    with pytest.raises(SourceFormatError, match=r"cut\.jsonl: cannot be read: .*\(line 20 is not a JSON object"):
        convert_files([str(cut)], str(tmp_path / "out.parquet"))
