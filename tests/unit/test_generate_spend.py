"""generate.spend: seasonal SPEND_ROWS — schema, determinism, month-start recurring fees."""

from datetime import date

import polars as pl

from focus_platform.forecasting.spend import FEE, SPEND_ROWS, USAGE
from focus_platform.generate.spend import seasonal_spend


def test_schema_and_one_usage_row_per_series_and_day():
    rows = seasonal_spend(5, date(2026, 1, 15), 40, seed=3, currency="EUR", owners=2)
    assert dict(rows.schema) == SPEND_ROWS
    usage = rows.filter(pl.col("SpendKind") == USAGE)
    assert usage.height == 5 * 40
    assert usage.select("Owner", "ServiceName", "ProviderName").unique().height == 5
    assert set(rows["Owner"]) == {"owner-00", "owner-01"}
    assert set(rows["BillingCurrency"]) == {"EUR"}
    assert rows["x_RowId"].n_unique() == rows.height
    assert rows.select((pl.col("BilledCost") >= 0).all()).item()


def test_deterministic_for_a_seed():
    first = seasonal_spend(4, date(2026, 1, 1), 30, seed=7)
    assert first.equals(seasonal_spend(4, date(2026, 1, 1), 30, seed=7))
    assert not first.equals(seasonal_spend(4, date(2026, 1, 1), 30, seed=8))


def test_recurring_fees_on_day_one_of_each_month():
    rows = seasonal_spend(3, date(2026, 1, 15), 60, seed=1)
    fees = rows.filter(pl.col("SpendKind") == FEE)
    assert fees["Date"].unique().sort().to_list() == [date(2026, 2, 1), date(2026, 3, 1)]
    assert set(fees["ChargeCategory"]) == {"Purchase"} and set(fees["ChargeFrequency"]) == {"Recurring"}
    assert fees.group_by("ServiceName").agg(pl.col("BilledCost").n_unique().alias("n"))["n"].to_list() == [1] * 3
    assert seasonal_spend(3, date(2026, 1, 15), 60, seed=1, fees=False).filter(
        pl.col("SpendKind") == FEE).height == 0
