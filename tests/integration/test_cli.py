"""``focus-platform convert`` / ``validate`` end to end: typed Parquet out, exit codes, messages,
and no Dagster import on the file commands."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from focus_platform.cli import main
from focus_platform.spec.columns import FOCUS_COLUMN_NAMES, focus_columns

EXPECTED_ARROW = {"Decimal": pa.decimal128(38, 12), "DateTime": pa.timestamp("us", tz="UTC"),
                  "String": pa.string(), "JSON": pa.string()}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def converted(tmp_path, cur, capsys):
    src = tmp_path / "cur-small.csv"
    src.write_bytes(cur.csv_bytes())
    out = tmp_path / "focus.parquet"
    rc, stdout, err = run_cli(capsys, "convert", str(src), "--out", str(out))
    return rc, stdout, err, out


def test_convert_writes_the_57_focus_columns_typed(converted, cur):
    rc, stdout, err, out = converted
    assert rc == 0, (stdout, err)
    assert "rows in: 10  rows out: 10" in stdout
    assert "quarantined: 0" in stdout
    basis = cur.invoice_basis()["USD"].quantize(Decimal("1e-12"))
    assert f"USD: BilledCost {basis}  EffectiveCost {basis}" in stdout
    assert f"wrote {out}" in stdout
    assert "PROBLEM" not in stdout

    # Parquet schema as written (not as Polars reads it back)
    schema = pq.read_schema(out)
    focus_names = [n for n in schema.names if not n.startswith("x_")]
    assert focus_names == list(FOCUS_COLUMN_NAMES) and len(focus_names) == 57
    for col in focus_columns():
        actual = schema.field(col.name).type
        if actual in (pa.large_string(), pa.string_view()):
            actual = pa.string()
        assert actual == EXPECTED_ARROW[col.data_type], (col.name, actual)
    assert all(n.startswith("x_") for n in schema.names[57:])

    df = pl.read_parquet(out)
    assert df.height == 10
    assert df["BilledCost"].dtype == pl.Decimal(38, 12)
    assert df["ChargePeriodStart"].dtype == pl.Datetime("us", "UTC")
    assert df["BilledCost"].sum() == cur.invoice_basis()["USD"]
    assert df["EffectiveCost"].sum() == cur.invoice_basis()["USD"]
    # values survive exactly: per-row cost and start time as delivered
    by_row = df.sort("x_SourceRow")
    assert by_row["BilledCost"].to_list() == [Decimal(v) for v in cur.values("lineItem/UnblendedCost")]
    assert [t.strftime("%Y-%m-%dT%H:%M:%S.000Z") for t in by_row["ChargePeriodStart"]] == \
        cur.values("lineItem/UsageStartDate")
    assert by_row["ChargeCategory"].to_list() == cur.values("lineItem/LineItemType")  # Tax / Usage
    assert set(df["BillingCurrency"]) == {"USD"}
    assert df["x_RowId"].n_unique() == 10


def test_validate_the_converted_file(converted, capsys):
    rc, stdout, err, out = converted
    assert rc == 0
    rc, stdout, err = run_cli(capsys, "validate", str(out))
    assert rc == 0, (stdout, err)
    assert f"{out}: 10 rows" in stdout
    assert "no violations" in stdout


def _focus_csv(parquet, path, *, bad: bool) -> None:
    """The converted rows as a FOCUS CSV (FOCUS columns only, ISO 8601 UTC), optionally with two
    wrong values: ChargeCategory 'usage' (on a Usage row) and BillingCurrency 'usd'."""
    df = pl.read_parquet(parquet).select(FOCUS_COLUMN_NAMES)
    # the sample has no account names (a provider-data gap the CSV cannot carry: no
    # x_ProviderDataGaps list column), so give the rows one to make the control file conformant
    df = df.with_columns(pl.concat_str([pl.lit("account "), pl.col("SubAccountId")]).alias("SubAccountName"))
    if bad:
        df = df.with_columns(
            pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("usage")).otherwise(pl.col("ChargeCategory"))
            .alias("ChargeCategory"),
            pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("usd")).otherwise(pl.col("BillingCurrency"))
            .alias("BillingCurrency"))
    df.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%SZ")


def test_validate_a_bad_focus_csv_names_the_rules(converted, tmp_path, capsys):
    out = converted[3]
    good_csv, bad_csv = tmp_path / "good-focus.csv", tmp_path / "bad-focus.csv"
    _focus_csv(out, good_csv, bad=False)
    _focus_csv(out, bad_csv, bad=True)
    rc, stdout, err = run_cli(capsys, "validate", str(good_csv))  # control: the CSV form itself is fine
    assert rc == 0, (stdout, err)

    rc, stdout, err = run_cli(capsys, "validate", str(bad_csv))
    assert rc == 1, (stdout, err)
    assert "Traceback" not in stdout + err
    assert "converter defects / violations:" in stdout
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith("  R-")}
    assert "R-Cols-5" in lines and "ChargeCategory" in lines["R-Cols-5"]
    assert "R-Cur-1" in lines and "BillingCurrency" in lines["R-Cur-1"]
    assert lines["R-Cols-5"].split()[1] == "1" and lines["R-Cur-1"].split()[1] == "1"  # one row each


def test_validate_an_inline_focus_csv_with_lowercase_values(tmp_path, capsys):
    """A hand-written FOCUS CSV (few columns): wrong-case values are named by rule id."""
    path = tmp_path / "inline.csv"
    path.write_text(textwrap.dedent("""\
        BilledCost,EffectiveCost,ListCost,ContractedCost,BillingCurrency,ChargeCategory,ChargeFrequency
        1.50,1.50,1.50,1.50,usd,usage,Usage-Based
        2.00,2.00,2.00,2.00,USD,Usage,Usage-Based
        """))
    rc, stdout, err = run_cli(capsys, "validate", str(path))
    assert rc == 1, (stdout, err)
    assert "R-Cols-5" in stdout and "R-Cur-1" in stdout


def test_convert_files_with_the_same_name_from_two_folders(tmp_path, cur, capsys):
    """AWS names every assembly's files <report>-1.csv.gz: two months given together must keep
    distinct row ids (and say which file each row came from)."""
    (tmp_path / "20231001-20231101").mkdir()
    (tmp_path / "20231101-20231201").mkdir()
    a = tmp_path / "20231001-20231101" / "cur-1.csv"
    b = tmp_path / "20231101-20231201" / "cur-1.csv"
    a.write_bytes(cur.subset([0, 1, 2, 3, 4]).csv_bytes())
    b.write_bytes(cur.subset([5, 6, 7, 8, 9]).csv_bytes())
    out = tmp_path / "out.parquet"
    rc, stdout, err = run_cli(capsys, "convert", str(a), str(b), "--out", str(out))
    assert "x_RowId not unique" not in stdout, stdout
    assert rc == 0, (stdout, err)
    df = pl.read_parquet(out)
    assert df.height == 10 and df["x_RowId"].n_unique() == 10
    assert df["x_SourceFile"].n_unique() == 2
    assert df["BilledCost"].sum() == cur.invoice_basis()["USD"]


def test_convert_missing_path_is_exit_1_with_a_message(tmp_path, capsys):
    missing = tmp_path / "nope" / "cur.csv"
    out = tmp_path / "out.parquet"
    rc, stdout, err = run_cli(capsys, "convert", str(missing), "--out", str(out))
    assert rc == 1
    assert err.startswith("error: ") and str(missing) in err and "no such file" in err
    assert "Traceback" not in stdout + err
    assert not out.exists()
    rc, stdout, err = run_cli(capsys, "validate", str(missing))
    assert rc == 1 and str(missing) in err and "no such file" in err


def test_convert_unsupported_focus_version_is_exit_1(tmp_path, capsys):
    rc, stdout, err = run_cli(capsys, "convert", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o.parquet"),
                              "--focus-version", "1.0")
    assert rc == 1 and "FOCUS version 1.0 is not supported" in err


def test_cli_process_exit_codes_and_no_dagster_import(tmp_path, cur):
    """In a fresh interpreter: importing the CLI and running convert/validate never imports
    Dagster; a missing input is exit status 1 with a message, not a traceback."""
    src = tmp_path / "cur-small.csv"
    src.write_bytes(cur.csv_bytes())
    out = tmp_path / "focus.parquet"
    script = textwrap.dedent(f"""\
        import sys
        import focus_platform.cli as cli
        loaded = lambda: sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster."))
        assert loaded() == [], loaded()[:5]
        assert cli.main(["convert", {str(src)!r}, "--out", {str(out)!r}]) == 0
        assert cli.main(["validate", {str(out)!r}]) == 0
        assert loaded() == [], loaded()[:5]
        print("NO-DAGSTER-OK")
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "NO-DAGSTER-OK" in proc.stdout

    missing = tmp_path / "missing.csv"
    proc = subprocess.run([sys.executable, "-m", "focus_platform.cli", "convert", str(missing), "--out",
                           str(tmp_path / "o.parquet")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"error: {missing}: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
