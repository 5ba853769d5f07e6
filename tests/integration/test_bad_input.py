"""Bad input through the real code paths: ``convert_files`` / ``focus-platform convert`` for files,
discover → ``ingest_delivery`` → ``publish_focus`` for landing-zone deliveries.

Every error is an exception (SourceFormatError / DeliveryError) or exit code 1 with a message that
names the file (and the row / column where there is one); never a bare traceback, never a silent
skip. Good rows are never lost and the previously published partition survives a refused delivery.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.cli import main
from focus_platform.landing.zone import DeliveryError, discover_deliveries
from focus_platform.pipeline import (
    FOCUS_TABLE,
    QUARANTINE_TABLE,
    convert_files,
    ingest_delivery,
    publish_focus,
)
from focus_platform.sources import SourceFormatError, aws_cur
from focus_platform.sources.common import Lineage
from focus_platform.spec.columns import FOCUS_COLUMN_NAMES

RAW_TABLE = "raw_aws_cur"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_cli_error(capsys, argv: list[str], *needles: str) -> str:
    """Exit code 1, an ``error:`` line naming every needle, no traceback."""
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 1, (out, err)
    assert "Traceback" not in out + err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def convert_cli(capsys, path: Path, out: Path, *options: str) -> tuple[int, str, str]:
    return run_cli(capsys, "convert", str(path), "--out", str(out), *options)


def ingest_single_file(landing, warehouse, name: str, data: bytes, source: str = "aws-a", **publish):
    """A manifest-less delivery of one file for 2023-11, ingested and published."""
    landing.add_source(source)
    landing.plain_delivery(source, "2023-11", {name: data})
    src = landing.source(source)
    delivery = discover_deliveries(landing.store(), src)["2023-11"]
    ingest_delivery(warehouse, landing.store(), src, delivery)
    return publish_focus(warehouse, src, "2023-11", **publish)


# ---------------------------------------------------------------------------------------------
# Unreadable files
# ---------------------------------------------------------------------------------------------
def test_empty_file_is_a_clear_error_naming_the_file(tmp_path, capsys, landing, warehouse):
    path = tmp_path / "empty-cur.csv"
    path.write_bytes(b"")
    out = tmp_path / "out.parquet"
    with pytest.raises(SourceFormatError, match="empty-cur.csv"):
        convert_files([str(path)], str(out))
    assert_cli_error(capsys, ["convert", str(path), "--out", str(out)], path.name)
    assert not out.exists()
    # the same file delivered to the landing zone
    with pytest.raises(SourceFormatError, match="aws-a/2023-11/empty-cur.csv"):
        ingest_single_file(landing, warehouse, "empty-cur.csv", b"")
    assert not warehouse.exists(FOCUS_TABLE)


def test_truncated_gzip_is_a_clear_error_naming_the_file(tmp_path, capsys, cur, landing, warehouse):
    gz = cur.gz_bytes()
    truncated = gz[: len(gz) * 2 // 3]
    path = tmp_path / "cur-1.csv.gz"
    path.write_bytes(truncated)
    with pytest.raises(EOFError):  # sanity: the file really is broken
        gzip.decompress(truncated)
    out = tmp_path / "out.parquet"
    with pytest.raises(SourceFormatError, match="cur-1.csv.gz"):
        convert_files([str(path)], str(out))
    assert_cli_error(capsys, ["convert", str(path), "--out", str(out)], path.name)
    with pytest.raises(SourceFormatError, match="aws-a/2023-11/cur-1.csv.gz"):
        ingest_single_file(landing, warehouse, "cur-1.csv.gz", truncated)
    assert not warehouse.exists(FOCUS_TABLE)


def test_ragged_line_is_a_clear_error_naming_the_file(tmp_path, capsys, cur, landing, warehouse):
    """A data line with more fields than the header must not be converted silently."""
    lines = cur.csv_bytes().decode().splitlines()
    lines[3] += ",surplus,fields"
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "ragged-cur.csv"
    path.write_bytes(data)
    out = tmp_path / "out.parquet"
    # delivery path: refused, naming the file
    with pytest.raises(SourceFormatError, match="aws-a/2023-11/ragged-cur.csv"):
        ingest_single_file(landing, warehouse, "ragged-cur.csv", data)
    assert not warehouse.exists(FOCUS_TABLE)
    # file path: convert_files / the CLI must refuse it too (no projection-pushdown silent skip)
    with pytest.raises(SourceFormatError, match="ragged-cur.csv"):
        convert_files([str(path)], str(out))
    assert_cli_error(capsys, ["convert", str(path), "--out", str(out)], path.name, "data row 3")
    assert not out.exists()


def test_trailing_blank_lines_are_not_rows(tmp_path, capsys, cur):
    """Files saved by editors often end in an empty line: it is not a data row (and must not be
    counted, quarantined or raise the ingest error rate)."""
    path = tmp_path / "blank-tail.csv"
    path.write_bytes(cur.csv_bytes() + b"\n\n")
    out = tmp_path / "out.parquet"
    rc, stdout, err = convert_cli(capsys, path, out)
    assert rc == 0, (stdout, err)
    assert "rows in: 10  rows out: 10" in stdout and "quarantined: 0" in stdout, stdout
    assert not (tmp_path / "out.quarantine.parquet").exists()
    assert pl.read_parquet(out)["BilledCost"].sum() == cur.invoice_basis()["USD"]


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------
def test_utf8_bom_converts_and_first_column_is_recognised(tmp_path, capsys, cur):
    # as delivered: identity/LineItemId first
    path = tmp_path / "bom-cur.csv"
    path.write_bytes(cur.csv_bytes(bom=True))
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    raw = aws_cur.scan_raw(str(path), Lineage("t", "aws-cur", "d", None, datetime.now(timezone.utc)))
    names = raw.collect_schema().names()
    assert names[0] == "identity_line_item_id"
    assert not any("\ufeff" in n for n in names)
    assert raw.select("identity_line_item_id").collect().to_series().to_list() == cur.values("identity/LineItemId")

    # a required column first: without BOM handling the file would be refused as "missing"
    first = cur.move_first("bill/PayerAccountId")
    path2 = tmp_path / "bom-payer-first.csv"
    path2.write_bytes(first.csv_bytes(bom=True))
    out = tmp_path / "out.parquet"
    rc, stdout, err = convert_cli(capsys, path2, out)
    assert rc == 0, (stdout, err)
    assert "rows in: 10  rows out: 10" in stdout
    df = pl.read_parquet(out)
    assert df.height == 10
    assert df["BillingAccountId"].to_list() == first.values("bill/PayerAccountId")
    assert df["BilledCost"].sum() == cur.invoice_basis()["USD"]


def test_header_only_gives_zero_rows_and_a_clear_message(tmp_path, capsys, cur, landing, warehouse):
    header_only = cur.subset([])
    path = tmp_path / "header-only.csv"
    path.write_bytes(header_only.csv_bytes())
    out = tmp_path / "out.parquet"
    rc, stdout, err = convert_cli(capsys, path, out)
    assert rc == 0, (stdout, err)
    assert "Traceback" not in stdout + err
    assert "rows in: 0  rows out: 0" in stdout
    df = pl.read_parquet(out)
    assert df.height == 0
    assert [c for c in df.columns if c in FOCUS_COLUMN_NAMES] == list(FOCUS_COLUMN_NAMES)
    # as a delivery: refused at ingest (naming source and period), nothing published anywhere
    with pytest.raises(SourceFormatError, match=r"aws-a 2023-11 has no rows.*refused"):
        ingest_single_file(landing, warehouse, "header-only.csv", header_only.csv_bytes())
    assert not warehouse.exists("raw_aws_cur")
    assert not warehouse.exists(FOCUS_TABLE)


def test_unknown_format_names_the_expected_formats(tmp_path, capsys):
    path = tmp_path / "inventory.csv"
    path.write_text("hostname,owner,monthly_eur\nweb-1,team-a,12.50\nweb-2,team-b,7.25\n")
    out = tmp_path / "out.parquet"
    with pytest.raises(SourceFormatError, match=r"can't detect format, expected one of: .*aws-cur.*aws-cur2"):
        convert_files([str(path)], str(out))
    assert_cli_error(capsys, ["convert", str(path), "--out", str(out)], path.name,
                     "can't detect format, expected one of", "aws-cur", "aws-cur2")
    assert not out.exists()


REQUIRED = {  # delivered header -> canonical raw name
    "lineItem/LineItemType": "line_item_line_item_type",
    "lineItem/UnblendedCost": "line_item_unblended_cost",
    "lineItem/UsageStartDate": "line_item_usage_start_date",
    "lineItem/CurrencyCode": "line_item_currency_code",
    "bill/PayerAccountId": "bill_payer_account_id",
}


@pytest.mark.parametrize("header", list(REQUIRED))
def test_missing_required_column_is_named(tmp_path, capsys, cur, landing, warehouse, header):
    data = cur.drop_column(header).csv_bytes()
    # as a delivery of a configured aws-cur source
    with pytest.raises(SourceFormatError) as exc:
        ingest_single_file(landing, warehouse, "no-column.csv", data)
    assert "aws-a/2023-11/no-column.csv" in str(exc.value)
    assert header in str(exc.value) or REQUIRED[header] in str(exc.value), str(exc.value)
    # as a file given to convert (format detected from the header): a CUR with 93 of its 94
    # columns must be told which column is missing, not only "can't detect format"
    path = tmp_path / "no-column.csv"
    path.write_bytes(data)
    out = tmp_path / "out.parquet"
    rc, stdout, err = convert_cli(capsys, path, out)
    assert rc == 1, (stdout, err)
    assert "Traceback" not in stdout + err
    assert path.name in err
    assert header in err or REQUIRED[header] in err, err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Values that do not parse: quarantine, good rows kept, conservation
# ---------------------------------------------------------------------------------------------
def test_non_numeric_cost_row_is_quarantined_and_the_rest_converted(tmp_path, capsys, cur):
    bad = cur.copy().set(3, "lineItem/UnblendedCost", "12,5O")
    path = tmp_path / "bad-cost.csv"
    path.write_bytes(bad.csv_bytes())
    out = tmp_path / "out.parquet"
    # the row's money is unknown: the billed check fails, naming file, row, column and value …
    rc, stdout, err = convert_cli(capsys, path, out)
    assert rc == 1, (stdout, err)
    assert "PROBLEM: billed cost not conserved" in stdout
    assert "bad-cost.csv row 4: lineItem/UnblendedCost: '12,5O' is not a number" in stdout
    # … until it is accepted deliberately
    rc, stdout, err = convert_cli(capsys, path, out, "--accept-unknown-money")
    assert rc == 0, (stdout, err)
    assert "rows in: 10  rows out: 9" in stdout and "quarantined: 1" in stdout

    q = pl.read_parquet(tmp_path / "out.quarantine.parquet")
    assert q.height == 1
    reason = q["x_QuarantineReason"][0]
    assert "lineItem/UnblendedCost" in reason and "'12,5O'" in reason
    assert q["x_SourceRow"][0] == 4  # 1-based data row
    assert Path(q["x_SourceFile"][0]).name == "bad-cost.csv"
    assert q["BillingAccountId"][0] == cur.rows[3][cur.col("bill/PayerAccountId")]

    df = pl.read_parquet(out)
    good = [i for i in range(10) if i != 3]
    assert df.height == 9
    assert sorted(df["x_SourceRow"].to_list()) == [i + 1 for i in good]
    assert df["BilledCost"].sum() == cur.invoice_basis(good)["USD"]
    assert df["EffectiveCost"].sum() == cur.invoice_basis(good)["USD"]
    assert pl.concat([df["x_RowId"], q["x_RowId"]]).n_unique() == 10  # every delivered row accounted for


def test_non_numeric_cost_in_a_delivery_goes_to_focus_quarantine(cur, landing, warehouse, h):
    bad = cur.copy().set(3, "lineItem/UnblendedCost", "abc")
    published = ingest_single_file(landing, warehouse, "bad-cost.csv", bad.csv_bytes(), accept_unknown_money=True)
    assert published.checks.problems == [] and published.checks.unknown_amount_rows == 1
    focus = h.focus_rows(warehouse, "aws-a")
    q = h.focus_rows(warehouse, "aws-a", table=QUARANTINE_TABLE)
    assert focus.height == 9 and q.height == 1
    assert "lineItem/UnblendedCost: 'abc'" in q["x_QuarantineReason"][0]
    good = [i for i in range(10) if i != 3]
    assert h.billed_by_currency(focus) == cur.invoice_basis(good)
    raw = h.focus_rows(warehouse, "aws-a", table=RAW_TABLE)
    assert raw.height == 10  # the raw table keeps the row as delivered
    assert raw.filter(pl.col("x_ParseErrors").is_not_null()).height == 1


def test_unparseable_date_row_is_quarantined_with_reason(tmp_path, capsys, cur):
    bad = cur.copy().set(5, "lineItem/UsageStartDate", "2023-13-45 25:61")
    path = tmp_path / "bad-date.csv"
    path.write_bytes(bad.csv_bytes())
    out = tmp_path / "out.parquet"
    rc, stdout, err = convert_cli(capsys, path, out)
    assert rc == 0, (stdout, err)
    q = pl.read_parquet(tmp_path / "out.quarantine.parquet")
    assert q.height == 1
    reason = q["x_QuarantineReason"][0]
    assert "lineItem/UsageStartDate" in reason and "'2023-13-45 25:61'" in reason
    assert q["x_SourceRow"][0] == 6
    # the cost of the quarantined row is known: FOCUS + quarantine = everything delivered
    df = pl.read_parquet(out)
    assert df.height == 9
    assert df["BilledCost"].sum() + q["x_BilledCost"].sum() == cur.invoice_basis()["USD"]
    assert q["x_BilledCost"][0] == Decimal(cur.rows[5][cur.col("lineItem/UnblendedCost")])
    assert "PROBLEM" not in stdout


# ---------------------------------------------------------------------------------------------
# Deliveries with manifests
# ---------------------------------------------------------------------------------------------
def _snapshot(warehouse, h, source="aws-a"):
    return {t: (h.table_version(warehouse, t), h.focus_rows(warehouse, source, table=t).sort("x_RowId"))
            for t in (RAW_TABLE, FOCUS_TABLE, QUARANTINE_TABLE)}


def test_manifest_naming_a_missing_file_refuses_the_delivery(cur, landing, warehouse, h):
    landing.add_source("aws-a")
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    before = _snapshot(warehouse, h)
    assert before[FOCUS_TABLE][1].height == 10
    assert set(before[FOCUS_TABLE][1]["x_SourceDelivery"]) == {first}

    # a new assembly: one file present (changed rows), the second one named by the manifest is not
    changed = cur.subset([0, 1, 2]).set(2, "lineItem/UnblendedCost", "5.0")
    second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": changed.gz_bytes()}, missing=("cur-2.csv.gz",))
    with pytest.raises(DeliveryError) as err:
        discover_deliveries(landing.store(), landing.source("aws-a"))
    message = str(err.value)
    assert "cur-2.csv.gz" in message and second in message and "refused" in message
    with pytest.raises(DeliveryError):
        h.run_pipeline(warehouse, landing, "aws-a")

    after = _snapshot(warehouse, h)
    for table in before:
        assert after[table][0] == before[table][0], table  # same Delta version
        assert after[table][1].equals(before[table][1]), table  # same rows
    assert h.billed_by_currency(after[FOCUS_TABLE][1]) == cur.invoice_basis()


def _files(warehouse) -> list[str]:
    root = Path(warehouse.root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "_delta_log" not in p.parts)


def _broken_files(cur) -> dict[str, dict[str, bytes]]:
    gz = cur.gz_bytes()
    ragged = cur.csv_bytes().decode().splitlines()
    ragged[2] += ",x"
    return {
        "truncated-gzip": {"cur-1.csv.gz": gz[: len(gz) // 2]},
        "empty-second-file": {"cur-1.csv.gz": cur.subset([0, 1]).gz_bytes(), "cur-2.csv.gz": b""},
        "ragged-second-file": {"cur-1.csv.gz": cur.subset([0, 1]).gz_bytes(),
                               "cur-2.csv": ("\n".join(ragged) + "\n").encode()},
        "not-a-cur": {"cur-1.csv.gz": gzip.compress(b"a,b\n1,2\n")},
    }


@pytest.mark.parametrize("case", ["truncated-gzip", "empty-second-file", "ragged-second-file", "not-a-cur"])
def test_redelivery_with_an_unreadable_file_keeps_the_published_partition(cur, landing, warehouse, h, case):
    """Every file of a delivery is read or none is: the previous raw/FOCUS partition stays."""
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    h.run_pipeline(warehouse, landing, "aws-a")
    before = _snapshot(warehouse, h)
    files_before = _files(warehouse)
    files = _broken_files(cur)[case]
    landing.legacy_delivery("aws-a", files)
    broken = [n for n in files if n != "cur-1.csv.gz"] or ["cur-1.csv.gz"]
    with pytest.raises(SourceFormatError) as exc:
        h.run_pipeline(warehouse, landing, "aws-a")
    assert broken[0] in str(exc.value), str(exc.value)
    after = _snapshot(warehouse, h)
    for table in before:
        assert after[table][0] == before[table][0], table
        assert after[table][1].equals(before[table][1]), table
    # nothing staged is left behind in the table folders
    assert _files(warehouse) == files_before


def test_second_delivery_for_a_period_wins_and_the_first_stays_in_history(cur, landing, warehouse, h):
    landing.add_source("aws-a")
    first = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})
    _, raw1, pub1 = h.run_pipeline(warehouse, landing, "aws-a")
    v1 = pub1.version

    # AWS re-delivers the month: new assembly id, top-level manifest updated, rows changed
    rows2 = [0, 2, 3, 4, 5, 6, 7]
    updated = cur.subset(rows2).set(1, "lineItem/UnblendedCost", "0.5").set(2, "lineItem/UnblendedCost", "1.25")
    second = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": updated.gz_bytes(),
                                               "cur-2.csv.gz": cur.subset([8, 9]).gz_bytes()})
    delivery, raw2, pub2 = h.run_pipeline(warehouse, landing, "aws-a")
    assert delivery.delivery_id == second
    assert pub2.version > v1

    focus = h.focus_rows(warehouse, "aws-a")
    assert focus.height == len(rows2) + 2
    assert focus["x_RowId"].n_unique() == focus.height  # no duplicate rows
    assert set(focus["x_SourceDelivery"]) == {second}
    expected = {"USD": updated.invoice_basis()["USD"] + cur.subset([8, 9]).invoice_basis()["USD"]}
    assert h.billed_by_currency(focus) == expected
    assert h.billed_by_currency(focus) != cur.invoice_basis()
    raw = h.focus_rows(warehouse, "aws-a", table=RAW_TABLE)
    assert raw.height == len(rows2) + 2 and set(raw["x_SourceDelivery"]) == {second}

    # the first delivery is still readable from Delta history
    old = h.focus_rows(warehouse, "aws-a", version=v1)
    assert old.height == 10 and set(old["x_SourceDelivery"]) == {first}
    assert h.billed_by_currency(old) == cur.invoice_basis()
    old_raw = h.focus_rows(warehouse, "aws-a", table=RAW_TABLE, version=raw1.version)
    assert old_raw.height == 10 and set(old_raw["x_SourceDelivery"]) == {first}
    versions = {e["version"] for e in warehouse.history(FOCUS_TABLE)}
    assert {v1, pub2.version} <= versions


def test_quarantine_of_a_replaced_delivery_does_not_linger(cur, landing, warehouse, h):
    landing.add_source("aws-a")
    landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.copy().set(0, "lineItem/UsageStartDate", "n/a").gz_bytes()})
    _, _, first = h.run_pipeline(warehouse, landing, "aws-a")
    assert first.quarantine_rows == 1
    assert h.focus_rows(warehouse, "aws-a", table=QUARANTINE_TABLE).height == 1
    fixed = landing.legacy_delivery("aws-a", {"cur-1.csv.gz": cur.gz_bytes()})  # AWS corrects the month
    _, _, second = h.run_pipeline(warehouse, landing, "aws-a")
    assert second.quarantine_rows == 0
    assert h.focus_rows(warehouse, "aws-a", table=QUARANTINE_TABLE).height == 0
    focus = h.focus_rows(warehouse, "aws-a")
    assert focus.height == 10 and set(focus["x_SourceDelivery"]) == {fixed}
    assert h.billed_by_currency(focus) == cur.invoice_basis()
