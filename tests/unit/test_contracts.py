"""Table contracts (warehouse.contracts): every catalog table's contract keeps real frames and
names table, file, row, column, check and value when broken: a wrong type, a null where none is
allowed, a value outside the allowed ones, a duplicate key, a cross-column rule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.anomalies import detect
from focus_platform.forecasting.budgets import Budget, budget_status
from focus_platform.forecasting.forecast import FORECAST_BACKTESTS, SPEND_FORECASTS
from focus_platform.generate.spend import seasonal_spend
from focus_platform.periods import BillingPeriod
from focus_platform.policies import SIGNALS, Policy, PolicySet, Trigger, evaluate
from focus_platform.reconciliation.catalog import build_catalog
from focus_platform.reconciliation.currency import parse_rates
from focus_platform.reconciliation.invoices import invoices_from_focus, read_invoices
from focus_platform.reconciliation.reconcile import reconcile_period
from focus_platform.sources import FORMATS, Lineage
from focus_platform.spec.columns import MONEY
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.catalog import TABLES
from focus_platform.warehouse.contracts import (
    CONTRACTS,
    MAX_FAILURES,
    STAGED_FRAME,
    check_contract,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "focus-native"
PERIOD, SOURCE = "2024-09", "fn"
LINEAGE = Lineage(SOURCE, "focus", "delivery-1", PERIOD, datetime(2024, 10, 1, tzinfo=UTC))


# ---------------------------------------------------------------------------------------------
# Real frames of every table
# ---------------------------------------------------------------------------------------------
def raw_rows(name: str = "tiny_focus_1_2.csv") -> pl.LazyFrame:
    return FORMATS["focus"].scan_raw(str(FIXTURES / name), LINEAGE, label=name)


def focus_rows() -> pl.DataFrame:
    return FORMATS["focus"].to_focus(raw_rows()).collect()


def quarantine_rows() -> pl.DataFrame:
    return FORMATS["focus"].quarantine(raw_rows("tiny_focus_1_2_bad.csv")).collect()


def status_rows() -> pl.DataFrame:
    return pl.DataFrame({"status": ["final"], "reason": ["InvoiceId present on all 6 rows"], "focus_version": [3],
                         "deliveries": [["delivery-1"]], "updated_at": [datetime(2024, 10, 2, tzinfo=UTC)],
                         "x_BillingPeriod": [PERIOD], "x_Source": [SOURCE]},
                        schema={"status": pl.String, "reason": pl.String, "focus_version": pl.Int64,
                                "deliveries": pl.List(pl.String), "updated_at": pl.Datetime("us", "UTC"),
                                "x_BillingPeriod": pl.String, "x_Source": pl.String})


def log_rows() -> pl.DataFrame:
    before = rs.PartitionState(2, 10, {"USD": Decimal("5.5")}, {"USD": Decimal("5")}, ("d0",))
    after = rs.PartitionState(None, 12, {"USD": Decimal("6.25")}, {"USD": Decimal("6")}, ("d1",))
    entries = [rs.Restatement("focus_costs", PERIOD, SOURCE, "replace", before, after, 3, status_before="open",
                              status_after="final", run_id="run-1"),
               rs.Restatement("raw_focus", PERIOD, SOURCE, "publish", None, after, 0)]
    return pl.DataFrame([e.row() for e in entries], schema=rs.LOG_SCHEMA)


INVOICE_HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"


def invoice_rows() -> pl.DataFrame:
    text = (INVOICE_HEADER + f"INV-1,Issuer,A,{PERIOD},USD,95.00,10.00,-5.00,2024-10-02,\n"
            f"CM-1,Issuer,A,{PERIOD},USD,-2.00,,,2024-10-20,INV-1\n")
    files = read_invoices([("invoices/A/2024-09.csv", text.encode())])
    return pl.concat([files, invoices_from_focus(focus_rows().lazy()).collect()])


def rate_rows() -> pl.DataFrame:
    return parse_rates("date,currency,rate\n2024-09-02,USD,1.1046\n2024-09-02,JPY,158.22\n2024-09-03,USD,1.1040\n",
                       "file:rates.csv")


RECON_FOCUS = {"BillingAccountId": pl.String, "BillingCurrency": pl.String, "InvoiceId": pl.String,
               "InvoiceIssuerName": pl.String, "BilledCost": MONEY, "ChargeCategory": pl.String,
               "ChargeClass": pl.String, "ChargePeriodStart": pl.Datetime("us", "UTC"),
               "ChargeDescription": pl.String, "x_RowId": pl.String, "x_Source": pl.String}


def reconciliation_rows() -> pl.DataFrame:
    def row(row_id, cost, account="A", invoice="INV-1", category="Usage"):
        return {"BillingAccountId": account, "BillingCurrency": "USD", "InvoiceId": invoice,
                "InvoiceIssuerName": "Issuer", "BilledCost": Decimal(cost), "ChargeCategory": category,
                "ChargeClass": None, "ChargePeriodStart": datetime(2024, 9, 10, tzinfo=UTC),
                "ChargeDescription": row_id, "x_RowId": row_id, "x_Source": SOURCE}
    focus = pl.DataFrame([row("u1", "90.00"), row("t1", "10.00", category="Tax"), row("c1", "-5.00", category="Credit"),
                          row("b1", "7.00", account="B", invoice=None)], schema=RECON_FOCUS).lazy()
    invoices = invoice_rows().filter(pl.col("x_InvoiceSource") == "file")
    return reconcile_period(PERIOD, invoices, focus).rows


def sku_rows() -> pl.DataFrame:
    def usage(sku, price, rate="R1", category="Usage"):
        return {"x_BillingPeriod": PERIOD, "ProviderName": "AWS", "SkuId": sku, "SkuPriceId": f"{sku}.{rate}",
                "PricingCurrency": "USD", "PricingUnit": "Hours", "ChargeCategory": category,
                "ListUnitPrice": Decimal(price), "ContractedUnitPrice": Decimal(price), "SkuMeter": "BoxUsage",
                "ServiceName": "Amazon EC2", "ServiceCategory": "Compute", "x_Source": SOURCE, "x_RowId": sku + price}
    schema = {"x_BillingPeriod": pl.String, "ProviderName": pl.String, "SkuId": pl.String, "SkuPriceId": pl.String,
              "PricingCurrency": pl.String, "PricingUnit": pl.String, "ChargeCategory": pl.String,
              "ListUnitPrice": MONEY, "ContractedUnitPrice": MONEY, "SkuMeter": pl.String, "ServiceName": pl.String,
              "ServiceCategory": pl.String, "x_Source": pl.String, "x_RowId": pl.String}
    return build_catalog(pl.DataFrame([usage("S1", "0.096"), usage("S1", "0.10"), usage("S2", "1.5"),
                                       usage("S2", "12", rate="F", category="Purchase")], schema=schema).lazy())


def spend(days: int = 70) -> pl.DataFrame:
    """One generated series from 2026-06-01, its usage on 2026-08-05 eight times as high."""
    rows = seasonal_spend(1, date(2026, 6, 1), days, owners=1)
    hit = (pl.col("Date") == date(2026, 8, 5)) & (pl.col("SpendKind") == "usage")
    return rows.with_columns([pl.when(hit).then(pl.col(c) * 8).otherwise(pl.col(c)).cast(MONEY).alias(c)
                              for c in ("BilledCost", "EffectiveCost")])


def forecast_rows() -> pl.DataFrame:
    """Two forecast rows as forecasting.forecast writes them (a model fit is too slow for this file; the
    forecast assets' test publishes real ones through this contract)."""
    row = {"x_ForecastDate": date(2026, 8, 9), "Grain": "day", "Date": date(2026, 8, 10), "x_BillingPeriod": "2026-08",
           "Owner": "owner-00", "ServiceName": "service-00000", "ProviderName": "AWS", "BillingCurrency": "USD",
           "SpendKind": "usage", "Forecast": Decimal("10"), "Lower": Decimal("8"), "Upper": Decimal("12"),
           "ReportingCurrency": "USD", "ForecastInReportingCurrency": Decimal("10"),
           "LowerInReportingCurrency": Decimal("8"), "UpperInReportingCurrency": Decimal("12"), "x_Model": "AutoETS",
           "x_ModelReason": "beats seasonal-naive", "x_Level": 80, "x_Note": None}
    return pl.DataFrame([row, row | {"SpendKind": "total"}], schema=SPEND_FORECASTS)


def backtest_rows() -> pl.DataFrame:
    return pl.DataFrame([{"Owner": "owner-00", "ServiceName": "service-00000", "ProviderName": "AWS",
                          "BillingCurrency": "USD", "x_Model": "AutoETS", "ModelMAPE": 0.08, "BaselineMAPE": 0.12,
                          "IntervalCoverage": 0.8, "Folds": 3, "Chosen": "AutoETS", "x_Fingerprint": "f1",
                          "x_BacktestedAt": date(2026, 8, 9)}], schema=FORECAST_BACKTESTS)


def budget_rows() -> pl.DataFrame:
    budgets = [Budget("owner-00", BillingPeriod.parse("2026-08"), Decimal(amount), "USD") for amount in ("100",)]
    return budget_status(budgets, spend(), date(2026, 8, 9))


def anomaly_rows() -> pl.DataFrame:
    return detect(spend()).anomalies


def action_rows() -> pl.DataFrame:
    policies = PolicySet((Policy("notify-budgets", "policies.yaml", Trigger("budget"), "notify", "shadow", 10),))
    signal = {"SignalId": "budget:owner-00:2026-08", "Kind": "budget", "Severity": "ticket", "Owner": "owner-00",
              "Status": "ERROR", "At": datetime(2026, 8, 9, tzinfo=UTC)}
    return evaluate(policies, pl.DataFrame([signal], schema=SIGNALS), now=datetime(2026, 8, 9, 6, tzinfo=UTC),
                    history=None, send=None)


VALID = {"raw_focus": lambda: raw_rows().collect(), "focus_costs": focus_rows, "focus_quarantine": quarantine_rows,
         "period_status": status_rows, "restatement_log": log_rows, "invoices": invoice_rows,
         "exchange_rates": rate_rows, "invoice_reconciliation": reconciliation_rows, "sku_catalog": sku_rows,
         "spend_forecasts": forecast_rows, "forecast_backtests": backtest_rows, "budget_status": budget_rows,
         "cost_anomalies": anomaly_rows, "policy_actions": action_rows}


def stage(tmp_path: Path, table: str, df: pl.DataFrame, parts: int = 1) -> tuple[pl.LazyFrame, list[str]]:
    """As the write path stages a partition: Parquet parts without the partition columns, and the
    scan of them with the partition values as literals."""
    partition = {c: df[c][0] if df.height else PERIOD for c in TABLES[table].partition_by}
    data = df.drop(list(partition))
    size = max(1, -(-data.height // parts))
    files = []
    for i in range(parts):
        path = tmp_path / f"{table}-part{i}.parquet"
        data.slice(i * size, size).write_parquet(path)
        files.append(str(path))
    literals = [pl.lit(v, pl.String).alias(k) for k, v in partition.items()]
    return pl.scan_parquet(files).with_columns(literals), files


def check(tmp_path: Path, table: str, df: pl.DataFrame, parts: int = 1):
    staged, files = stage(tmp_path, table, df, parts)
    return check_contract(table, staged, files, None)


# ---------------------------------------------------------------------------------------------
# Every contract keeps its table's real frames
# ---------------------------------------------------------------------------------------------
def test_every_catalog_table_has_a_contract():
    assert set(CONTRACTS) == set(TABLES)


@pytest.mark.parametrize("table", sorted(VALID))
def test_contract_keeps_a_real_frame(tmp_path, table):
    df = VALID[table]()
    assert df.height > 0
    report = check(tmp_path, table, df)
    assert report.ok, report.message()
    assert report.checked_rows == df.height and report.failures.height == 0
    assert report.message() == f"{table}: contract kept on {df.height} rows in 1 file(s)"
    json.dumps(report.metadata())


def test_every_raw_table_shares_the_lineage_contract(tmp_path):
    df = raw_rows().collect()
    for table in (t for t in TABLES if t.startswith("raw_")):
        assert check(tmp_path, table, df).ok


def test_contract_checks_each_staged_part(tmp_path):
    df = focus_rows()
    report = check(tmp_path, "focus_costs", df, parts=3)
    assert report.ok and report.files == 3 and report.checked_rows == df.height


def test_table_without_a_contract_is_ok():
    report = check_contract("not_a_table", pl.LazyFrame({"a": [1]}), [], None)
    assert report.ok and report.checked_rows == 0


def test_without_staged_files_the_staged_frame_itself_is_checked():
    df = status_rows()
    report = check_contract("period_status", df.lazy(), [], None)
    assert report.ok and report.checked_rows == 1
    broken = check_contract("period_status", df.with_columns(pl.lit("closed").alias("status")).lazy(), [], None)
    assert broken.failures.row(0, named=True)["file"] == STAGED_FRAME


# ---------------------------------------------------------------------------------------------
# Broken frames: each names table, column, check and the failing value
# ---------------------------------------------------------------------------------------------
def set_value(column: str, value, row: int = 0):
    def change(df: pl.DataFrame) -> pl.DataFrame:
        new = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, df.schema[column])).otherwise(pl.col(column))
        return df.with_columns(new.alias(column))
    return change


def cast(column: str, dtype: pl.DataType):
    return lambda df: df.with_columns(pl.col(column).cast(dtype))


def duplicate_row(row: int = 0):
    return lambda df: pl.concat([df, df.slice(row, 1)])


def drop(column: str):
    return lambda df: df.drop(column)


BROKEN = [
    # table, what, change, column, check, failing value
    ("raw_focus", "wrong dtype", cast("x_SourceRow", pl.Int32), "x_SourceRow", "dtype('Int64')", "Int32"),
    ("raw_focus", "missing lineage", drop("x_RowId"), "x_RowId", "column_in_dataframe", "x_RowId"),
    ("raw_focus", "null", set_value("x_RowId", None), "x_RowId", "not_nullable", None),
    ("raw_focus", "not allowed", set_value("x_SourceRow", 0), "x_SourceRow", "greater_than_or_equal_to(1)", "0"),
    # raw and FOCUS x_RowId uniqueness: the FOCUS gate's row_id_unique over the whole partition, not a contract
    ("raw_focus", "rule", set_value("x_SourceRow", 5), "x_RowId, x_SourceRow",
     "x_RowId ends with -<x_SourceRow as 9 digits>", '"x_SourceRow":5'),
    ("focus_costs", "wrong dtype", cast("BilledCost", pl.Float64), "BilledCost", "dtype('Decimal(precision=38, scale=12)')",
     "Float64"),
    ("focus_costs", "money scale", cast("EffectiveCost", pl.Decimal(38, 10)), "EffectiveCost",
     "dtype('Decimal(precision=38, scale=12)')", "Decimal(precision=38, scale=10)"),
    ("focus_costs", "timezone", cast("ChargePeriodStart", pl.Datetime("us")), "ChargePeriodStart",
     "dtype('Datetime(time_unit='us', time_zone='UTC')')", "Datetime(time_unit='us', time_zone=None)"),
    ("focus_costs", "null", set_value("x_RowId", None), "x_RowId", "not_nullable", None),
    ("focus_costs", "not allowed", set_value("BillingCurrency", "usd"), "BillingCurrency", "str_matches", "usd"),
    ("focus_quarantine", "wrong dtype", cast("x_BilledCost", pl.String), "x_BilledCost", "dtype", "String"),
    ("focus_quarantine", "null", set_value("x_QuarantineReason", None), "x_QuarantineReason", "not_nullable", None),
    ("focus_quarantine", "not allowed", set_value("x_QuarantineReason", "  "), "x_QuarantineReason", "str_matches", "  "),
    ("focus_quarantine", "unexpected column", lambda df: df.with_columns(pl.lit(1).alias("extra")), "extra",
     "column_in_schema", "extra"),
    ("focus_quarantine", "duplicate key", duplicate_row(), "x_RowId", "field_uniqueness", None),
    ("period_status", "wrong dtype", cast("focus_version", pl.Int32), "focus_version", "dtype('Int64')", "Int32"),
    ("period_status", "null", set_value("updated_at", None), "updated_at", "not_nullable", None),
    ("period_status", "not allowed", set_value("status", "closed"), "status", "isin", "closed"),
    ("period_status", "two rows", duplicate_row(), "status", "one row per partition", None),
    ("restatement_log", "wrong dtype", cast("rows_after", pl.Int32), "rows_after", "dtype('Int64')", "Int32"),
    ("restatement_log", "null", set_value("action", None), "action", "not_nullable", None),
    ("restatement_log", "not allowed", set_value("action", "overwrite"), "action", "isin", "overwrite"),
    ("restatement_log", "period", set_value("x_BillingPeriod", "2024-13"), "x_BillingPeriod", "str_matches", "2024-13"),
    ("restatement_log", "rule", set_value("rows_delta", 7), "rows_delta, rows_after, rows_before",
     "rows_delta = rows_after - rows_before", '"rows_delta":7'),
    ("invoices", "wrong dtype", cast("InvoiceTotal", pl.Float64), "InvoiceTotal", "dtype", "Float64"),
    ("invoices", "null", set_value("BillingAccountId", None), "BillingAccountId", "not_nullable", None),
    ("invoices", "not allowed", set_value("x_InvoiceStatus", "paid"), "x_InvoiceStatus", "isin", "paid"),
    ("invoices", "duplicate key", duplicate_row(), "x_InvoiceSource, BillingAccountId, BillingPeriod, "
     "BillingCurrency, InvoiceId", "multiple_fields_uniqueness", None),
    ("invoices", "rule", lambda df: df.with_columns(pl.lit(None, pl.String).alias("AdjustsInvoiceId")), "x_InvoiceKind, AdjustsInvoiceId",
     "a credit memo, and only a memo, has AdjustsInvoiceId", '"x_InvoiceKind":"credit_memo"'),
    ("invoices", "rule", set_value("InvoiceId", None), "x_InvoiceSource, InvoiceId", "a file document has an InvoiceId",
     '"x_InvoiceSource":"file"'),
    ("exchange_rates", "wrong dtype", cast("Date", pl.Datetime("us")), "Date", "dtype('Date')", "Datetime"),
    ("exchange_rates", "null", set_value("Rate", None), "Rate", "not_nullable", None),
    ("exchange_rates", "not allowed", set_value("Rate", Decimal(0)), "Rate", "greater_than(0)", "0"),
    ("exchange_rates", "duplicate key", duplicate_row(), "Date, BaseCurrency, Currency", "multiple_fields_uniqueness",
     None),
    ("exchange_rates", "rule", set_value("Currency", "EUR"), "BaseCurrency, Currency, Rate",
     "a currency against itself is 1", '"Currency":"EUR"'),
    ("invoice_reconciliation", "wrong dtype", cast("FocusRows", pl.UInt32), "FocusRows", "dtype('Int64')", "UInt32"),
    ("invoice_reconciliation", "null", set_value("Status", None), "Status", "not_nullable", None),
    ("invoice_reconciliation", "not allowed", set_value("Status", "ok"), "Status", "isin", "ok"),
    ("invoice_reconciliation", "duplicate key", duplicate_row(), "BillingAccountId, BillingCurrency, InvoiceId, "
     "x_InvoiceSource", "multiple_fields_uniqueness", None),
    ("invoice_reconciliation", "rule", set_value("Difference", Decimal("0.01")),
     "Difference, FocusBilledCost, InvoiceTotalNet", "Difference = FocusBilledCost - InvoiceTotalNet",
     '"Difference":"0.010000000000"'),
    ("invoice_reconciliation", "rule", set_value("InvoiceTotalNet", Decimal("95")),
     "InvoiceTotalNet, InvoiceTotal, CreditMemoTotal", "InvoiceTotalNet = InvoiceTotal + CreditMemoTotal",
     '"InvoiceTotalNet":"95.000000000000"'),
    ("sku_catalog", "wrong dtype", cast("ListUnitPrice", pl.Decimal(20, 6)), "ListUnitPrice", "dtype", "Decimal"),
    ("sku_catalog", "null", set_value("SkuId", None), "SkuId", "not_nullable", None),
    ("sku_catalog", "not allowed", set_value("ChargeCategory", "Tax"), "ChargeCategory", "isin", "Tax"),
    ("sku_catalog", "duplicate key", duplicate_row(), "ProviderName, SkuId, SkuPriceId, PricingCurrency, PricingUnit, "
     "ChargeCategory", "multiple_fields_uniqueness", None),
    ("sku_catalog", "rule", set_value("x_ListUnitPriceMax", Decimal("0.01")), "ListUnitPrice, x_ListUnitPriceMax",
     "ListUnitPrice <= x_ListUnitPriceMax", '"x_ListUnitPriceMax":"0.010000000000"'),
    ("spend_forecasts", "not allowed", set_value("Grain", "week"), "Grain", "isin", "week"),
    ("spend_forecasts", "duplicate key", duplicate_row(), "x_ForecastDate, Grain, Date, Owner, ServiceName, "
     "ProviderName, BillingCurrency, SpendKind", "multiple_fields_uniqueness", None),
    ("spend_forecasts", "rule", set_value("Lower", Decimal("11")), "Lower, Forecast, Upper",
     "Lower <= Forecast <= Upper", '"Lower":"11.000000000000"'),
    ("spend_forecasts", "rule", set_value("ForecastInReportingCurrency", None), "ForecastInReportingCurrency, x_Note",
     "a forecast without its reporting-currency amount has a note", '"ForecastInReportingCurrency":null'),
    ("forecast_backtests", "not allowed", set_value("IntervalCoverage", 1.5), "IntervalCoverage", "in_range", "1.5"),
    ("budget_status", "not allowed", set_value("Status", "FINE"), "Status", "isin", "FINE"),
    ("budget_status", "rule", set_value("ActualToDate", None), "Status, ActualToDate",
     "only a NO_RATE budget lacks its actual", '"ActualToDate":null'),
    ("cost_anomalies", "rule", set_value("Delta", Decimal("1")), "Delta, Actual, Expected",
     "Delta = Actual - Expected", '"Delta":"1.000000000000"'),
    ("cost_anomalies", "rule", set_value("Direction", "down"), "Direction, Delta", "Direction is the sign of Delta",
     '"Direction":"down"'),
    ("policy_actions", "not allowed", set_value("Outcome", "done"), "Outcome", "isin", "done"),
    ("policy_actions", "rule", set_value("Outcome", "acted"), "Outcome, Attempts", "an acted row made an attempt",
     '"Outcome":"acted"'),
]


@pytest.mark.parametrize("table,what,change,column,check_name,value", BROKEN,
                         ids=[f"{b[0]}-{b[1]}" for b in BROKEN])
def test_contract_names_what_breaks_it(tmp_path, table, what, change, column, check_name, value):
    report = check(tmp_path, table, change(VALID[table]()))
    assert not report.ok and report.failure_count >= 1
    hits = report.failures.filter((pl.col("column") == column) & pl.col("check").str.contains(check_name, literal=True))
    assert hits.height, report.failures
    first = hits.row(0, named=True)
    if value is not None:
        assert value in first["failure_case"]
    if first["index"] is not None:  # a data check: the file and the row in it
        assert first["file"].endswith(f"{table}-part0.parquet")
    message = report.message()
    assert "\n" not in message and message.startswith(f"{table}: contract broken")
    assert "column " in message and "check " in message and "e.g." in message
    meta = report.metadata()
    assert meta["ok"] is False and meta["failure_count"] == report.failure_count
    json.dumps(meta)


def test_message_names_the_first_failure_with_its_file_and_row(tmp_path):
    report = check(tmp_path, "period_status", status_rows().with_columns(pl.lit("closed").alias("status")))
    assert report.message() == (f"period_status: contract broken in 1 place(s): column status, check "
                                f"isin(['open', 'final', 'restated']), e.g. 'closed' "
                                f"({tmp_path}/period_status-part0.parquet row 0)")


def test_a_file_is_checked_in_parts_and_a_failure_names_its_row_in_the_file(tmp_path, monkeypatch):
    """A file larger than ``PART_ROWS`` is read a part at a time; the row number stays the file's."""
    from focus_platform.warehouse import contracts

    df = focus_rows()
    assert df.height >= 4
    last = df.height - 1
    monkeypatch.setattr(contracts, "PART_ROWS", 2)
    assert check(tmp_path, "focus_costs", df).checked_rows == df.height
    report = check(tmp_path, "focus_costs", set_value("BillingCurrency", "usd", row=last)(df))
    first = report.failures.row(0, named=True)
    assert (report.failure_count, first["column"], first["index"]) == (1, "BillingCurrency", last)


def test_a_wrong_schema_is_found_without_reading_data(tmp_path):
    """Schema failures stop before the per-file checks: nothing is read (checked_rows 0)."""
    report = check(tmp_path, "focus_costs", focus_rows().with_columns(pl.col("BilledCost").cast(pl.Float64)))
    assert not report.ok and report.checked_rows == 0
    assert report.failures.row(0, named=True)["index"] is None


def test_failures_are_capped_and_all_counted(tmp_path):
    df = log_rows()
    many = pl.concat([df] * 40).with_columns(pl.lit("overwrite").alias("action"))
    report = check(tmp_path, "restatement_log", many, parts=2)
    assert report.failure_count == 80 and report.failures.height == MAX_FAILURES
    assert report.failures["file"].n_unique() == 2


def test_every_money_column_of_a_contract_is_decimal_38_12():
    for table, contract in CONTRACTS.items():
        money = [n for n, t in contract.columns.items() if t.is_decimal()]
        assert all(contract.columns[n] == MONEY for n in money), table
    assert CONTRACTS["exchange_rates"].columns["Rate"] == MONEY


def test_contracts_run_even_where_pandera_validation_is_switched_off():
    from pandera.config import ValidationDepth, config_context

    broken = status_rows().with_columns(pl.lit("closed").alias("status")).lazy()
    with config_context(validation_enabled=False, validation_depth=ValidationDepth.SCHEMA_ONLY):
        assert not check_contract("period_status", broken, [], None).ok


def test_quarantine_keeps_a_currency_that_is_no_iso_code_as_delivered(tmp_path):
    """A row quarantined for its currency carries that currency: the contract must not refuse it."""
    df = quarantine_rows().with_columns(pl.lit("US Dollar").alias("BillingCurrency"),
                                        pl.lit("BillingCurrency 'US Dollar' is not an ISO 4217 currency code")
                                        .alias("x_QuarantineReason"))
    assert check(tmp_path, "focus_quarantine", df).ok
