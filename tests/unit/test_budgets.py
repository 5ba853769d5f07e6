"""Budgets: YAML and CSV budget files read alike and exactly; every bad budget is one BudgetError line naming
the file and the field; budget_status replayed day by day over a month turns WARN and then ERROR on the days
computed by hand, with the run rate and with forecasts; burn rate, overrun date, NO_RATE."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.forecasting.budgets import (
    BUDGET_STATUS,
    ERROR,
    FORECAST,
    NO_RATE,
    OK,
    RUN_RATE,
    WARN,
    Budget,
    BudgetError,
    budget_files,
    budget_status,
    read_budgets,
)
from focus_platform.forecasting.spend import FEE, SPEND_ROWS, USAGE
from focus_platform.generate.spend import seasonal_spend
from focus_platform.landing.zone import LocalStore
from focus_platform.periods import BillingPeriod
from focus_platform.reconciliation.currency import EXCHANGE_RATE_SCHEMA

FIXTURES = Path(__file__).parents[1] / "fixtures" / "budgets"
DECEMBER = BillingPeriod(2026, 12)
DEC = [date(2026, 12, d) for d in range(1, 32)]


def budget(owner: str = "web", amount: str = "3100", currency: str = "USD", period: BillingPeriod = DECEMBER,
           **thresholds: str) -> Budget:
    return Budget(owner, period, Decimal(amount), currency,
                  **{name: Decimal(value) if name != "measure" else value for name, value in thresholds.items()})


def spend(entries: list[tuple[str, date, str]], currency: str = "USD", billed_factor: int = 1,
          kind: str = USAGE) -> pl.DataFrame:
    """SPEND_ROWS, one row per (owner, day, EffectiveCost) of SpendKind ``kind`` (a fee: a month-start
    purchase); BilledCost = EffectiveCost × billed_factor."""
    return pl.DataFrame(
        [{"Date": day, "x_BillingPeriod": f"{day:%Y-%m}", "Owner": owner, "ProviderName": "AWS",
          "ServiceName": "Amazon EC2", "BillingAccountId": "1", "SubAccountId": "1", "BillingCurrency": currency,
          "ChargeCategory": "Usage" if kind == USAGE else "Purchase",
          "ChargeFrequency": "Usage-Based" if kind == USAGE else "Recurring", "SpendKind": kind,
          "ResourceId": "r", "SkuId": "s", "x_RowId": f"{owner}-{day}-{i}",
          "BilledCost": Decimal(amount) * billed_factor, "EffectiveCost": Decimal(amount)}
         for i, (owner, day, amount) in enumerate(entries)], schema=SPEND_ROWS)


def forecast_rows(entries: list[tuple[str, date, str]], made: date = date(2026, 11, 30), *, kind: str = "total",
                  grain: str = "day", service: str = "Amazon EC2", currency: str = "USD") -> pl.DataFrame:
    """SPEND_FORECASTS-shaped rows (the columns budget_status reads) for (owner, day, Forecast)."""
    return pl.DataFrame(
        [{"x_ForecastDate": made, "Grain": grain, "Date": day, "x_BillingPeriod": f"{day:%Y-%m}", "Owner": owner,
          "ServiceName": service, "ProviderName": "AWS", "BillingCurrency": currency, "SpendKind": kind,
          "Forecast": Decimal(amount)} for owner, day, amount in entries],
        schema={"x_ForecastDate": pl.Date, "Grain": pl.String, "Date": pl.Date, "x_BillingPeriod": pl.String,
                "Owner": pl.String, "ServiceName": pl.String, "ProviderName": pl.String,
                "BillingCurrency": pl.String, "SpendKind": pl.String, "Forecast": pl.Decimal(38, 12)})


def status_on(budgets: list[Budget], rows: pl.DataFrame, as_of: date, **kwargs) -> dict:
    out = budget_status(budgets, rows, as_of, **kwargs)
    assert out.schema == pl.Schema(BUDGET_STATUS)
    assert out.height == 1
    return out.row(0, named=True)


# ---------------------------------------------------------------------------------------------
# Reading budget files
# ---------------------------------------------------------------------------------------------
def test_yaml_and_csv_files_read_the_same_budgets():
    from_yaml = read_budgets([("budgets/budgets.yaml", (FIXTURES / "budgets.yaml").read_bytes())])
    from_csv = read_budgets([("budgets/budgets.csv", (FIXTURES / "budgets.csv").read_bytes())])
    assert from_yaml == from_csv
    assert from_yaml == [
        Budget("platform", DECEMBER, Decimal("12000.00"), "USD"),
        *(Budget("web", BillingPeriod(2026, month), Decimal("2500.50"), "EUR", "BilledCost", Decimal("0.6"),
                 Decimal("1.1")) for month in (10, 11, 12)),
        Budget("data", BillingPeriod(2026, 11), Decimal("0.3"), "USD", warn_at=Decimal(1), error_at=Decimal(1)),
    ]
    assert [(b.file, b.entry) for b in from_yaml[:2]] == [("budgets/budgets.yaml", "budgets[0]"),
                                                          ("budgets/budgets.yaml", "budgets[1]")]
    assert [(b.file, b.entry) for b in from_csv[:2]] == [("budgets/budgets.csv", "row 2"),
                                                         ("budgets/budgets.csv", "row 3")]


def test_amounts_are_read_from_their_text_never_through_a_float():
    text = b"""budgets:
  - {owner: a, period: 2026-12, amount: 0.1, currency: USD}
  - {owner: b, period: 2026-12, amount: 0.2, currency: USD}
  - {owner: c, period: 2026-12, amount: 12345678901234.123456789012, currency: USD, warn_at: 0.3333}
"""
    a, b, c = read_budgets([("b.yaml", text)])
    assert a.amount + b.amount == Decimal("0.3")
    assert c.amount == Decimal("12345678901234.123456789012")
    assert c.warn_at == Decimal("0.3333")


def test_empty_files_hold_no_budgets():
    assert read_budgets([("a.yaml", b""), ("b.yaml", b"budgets:\n"), ("c.csv", b"")]) == []


def yaml_error(entry: str, path: str = "b.yaml") -> str:
    return one_line_error([(path, f"budgets:\n  - {entry}\n".encode())])


def one_line_error(files: list[tuple[str, bytes]]) -> str:
    with pytest.raises(BudgetError) as caught:
        read_budgets(files)
    message = str(caught.value)
    assert "\n" not in message
    return message


VALID = "owner: web, period: 2026-12, amount: 100, currency: USD"


@pytest.mark.parametrize(("entry", "expected"), [
    ("{owner: web, period: 2026-12, amunt: 100, currency: USD}",
     "b.yaml: budgets[0].amunt: unknown field (did you mean 'amount'?)"),
    ("{owner: web, period: 2026-12, currency: USD}", "b.yaml: budgets[0].amount: missing (a required field)"),
    ("{owner: web, period: 2026-12, amount: , currency: USD}", "b.yaml: budgets[0].amount: missing"),
    ("{owner: web, period: 2026-12, amount: 12k, currency: USD}", "b.yaml: budgets[0].amount: '12k' is not a number"),
    ("{owner: web, period: 2026-12, amount: -5, currency: USD}",
     "b.yaml: budgets[0].amount: -5 must be greater than 0"),
    ("{owner: web, period: 2026-12, amount: 0, currency: USD}", "budgets[0].amount: 0 must be greater than 0"),
    ("{owner: web, period: 2026-12, amount: NaN, currency: USD}", "budgets[0].amount: 'NaN' is not a finite number"),
    ("{owner: web, period: 2026-12, amount: .nan, currency: USD}", "budgets[0].amount: '.nan' is not a number"),
    ("{owner: web, period: 2026-12, amount: 1.0000000000001, currency: USD}",
     "budgets[0].amount: 1.0000000000001 has more than 12 decimals"),
    ("{owner: web, period: 2026-12, amount: 1e30, currency: USD}", "budgets[0].amount: 1e30 is too large"),
    ("{owner: web, period: 2026-13, amount: 1, currency: USD}",
     "b.yaml: budgets[0].period: period '2026-13' is not a billing period"),
    ("{owner: web, period: 2026-12-01, amount: 1, currency: USD}",
     "budgets[0].period: period '2026-12-01' is not a billing period"),
    ("{owner: web, period: 2026-12..2026-01, amount: 1, currency: USD}",
     "b.yaml: budgets[0].period: range '2026-12..2026-01' is reversed"),
    ("{owner: web, period: 2026-01..26-12, amount: 1, currency: USD}",
     "budgets[0].period: period '26-12' is not a billing period"),
    ("{owner: web, period: 2026-12, amount: 1, currency: US}",
     "b.yaml: budgets[0].currency: 'US' is not a currency code: expected three letters"),
    ("{owner: web, period: 2026-12, amount: 1, currency: US1}", "budgets[0].currency: 'US1' is not a currency code"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, measure: ListCost}",
     "budgets[0].measure: unknown measure 'ListCost'"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, measure: effectivecost}",
     "budgets[0].measure: unknown measure 'effectivecost' (did you mean 'EffectiveCost'?)"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, warn_at: 0}", "budgets[0].warn_at: 0 is out of range"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, error_at: 11}",
     "budgets[0].error_at: 11 is out of range"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, warn_at: half}",
     "budgets[0].warn_at: 'half' is not a number"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, warn_at: 1.3, error_at: 1.2}",
     "b.yaml: budgets[0].warn_at: 1.3 is above error_at 1.2"),
    ("{owner: web, period: 2026-12, amount: 1, currency: USD, warn_at: 1.3}",
     "budgets[0].warn_at: 1.3 is above error_at 1.2"),
    ("{owner: [web, api], period: 2026-12, amount: 1, currency: USD}",
     "budgets[0].owner: must be a single value, not a list"),
    ("web", "b.yaml: budgets[0]: must be a mapping of owner, period, amount"),
    ("{owner: web, owner: api, period: 2026-12, amount: 1, currency: USD}",
     "b.yaml: line 2, column 18: not valid YAML: key 'owner' appears twice in one mapping"),
])
def test_a_bad_yaml_budget_is_one_line_naming_the_file_and_the_field(entry, expected):
    assert expected in yaml_error(entry)


@pytest.mark.parametrize(("text", "expected"), [
    (b"budget:\n  - {" + VALID.encode() + b"}\n", "b.yaml: unknown field 'budget' (did you mean 'budgets'?)"),
    (b"budgets: {owner: web}\n", "b.yaml: budgets: must be a list of budgets, not a mapping"),
    (b"- {" + VALID.encode() + b"}\n", "b.yaml: must be a mapping with a 'budgets' list, not a list"),
    (b"budgets: [\n", "b.yaml: line 2, column 1: not valid YAML"),
    (b"budgets: [{owner: caf\xe9}]\n", "b.yaml: line 1, column 22: not valid YAML: byte 0xe9 is not UTF-8"),
])
def test_a_bad_yaml_file_is_one_line_naming_the_file(text, expected):
    assert expected in one_line_error([("b.yaml", text)])


@pytest.mark.parametrize(("text", "expected"), [
    ("owner,period,amunt,currency\nweb,2026-12,1,USD\n",
     "b.csv: row 2, column amunt: unknown field (did you mean 'amount'?)"),
    ("owner,period,currency\nweb,2026-12,USD\n", "b.csv: row 2, column amount: missing (a required field)"),
    ("owner,period,amount,currency\nweb,2026-12,1,USD\nweb,2026-11,abc,USD\n",
     "b.csv: row 3, column amount: 'abc' is not a number"),
    ("owner,period,amount,currency\nweb,2026-12,-1,USD\n", "b.csv: row 2, column amount: -1 must be greater than 0"),
    ("owner,period,amount,currency\nweb,12/2026,1,USD\n",
     "b.csv: row 2, column period: period '12/2026' is not a billing period"),
    ("owner,period,amount,currency\nweb,2026-12,1,dollars\n", "b.csv: row 2, column currency: 'dollars' is not"),
    ("owner,period,amount,currency,warn_at,error_at\nweb,2026-12,1,USD,0.9,0.8\n",
     "b.csv: row 2, column warn_at: 0.9 is above error_at 0.8"),
    ("owner,period,amount,currency\nweb,2026-12,1\n", "b.csv: row 2: 3 fields, the header has 4"),
    ("owner,period,amount,amount,currency\nweb,2026-12,1,2,USD\n", "b.csv: row 1: column 'amount' appears twice"),
    ("owner,period,amount,currency,\nweb,2026-12,1,USD,\n", "b.csv: row 1: column 5 has no name"),
])
def test_a_bad_csv_budget_is_one_line_naming_the_file_row_and_column(text, expected):
    assert expected in one_line_error([("b.csv", text.encode())])


def test_budget_files_are_the_yaml_and_csv_files_of_the_landing_budgets_folder(tmp_path):
    folder = tmp_path / "budgets"
    folder.mkdir()
    for name in ("a.yaml", "b.CSV", "c.yml", "README.md"):
        (folder / name).write_bytes(name.encode())
    (tmp_path / "other.yaml").write_bytes(b"")
    assert sorted(budget_files(LocalStore(tmp_path))) == [
        ("budgets/a.yaml", b"a.yaml"), ("budgets/b.CSV", b"b.CSV"), ("budgets/c.yml", b"c.yml")]
    assert budget_files(LocalStore(tmp_path / "empty")) == []  # no budgets folder: no budgets


def test_a_file_that_is_neither_yaml_nor_csv_is_refused():
    assert one_line_error([("budgets/notes.txt", b"x")]) == (
        "budgets/notes.txt: not a budget file: expected a name ending in .yaml, .yml or .csv")


def test_two_budgets_for_one_owner_and_period_in_one_file_name_both_places():
    text = f"budgets:\n  - {{{VALID}}}\n  - {{owner: api, period: 2026-12, amount: 1, currency: USD}}\n" \
           f"  - {{owner: web, period: 2026-11..2027-01, amount: 7, currency: USD}}\n"
    assert one_line_error([("b.yaml", text.encode())]) == (
        "b.yaml: budgets[2]: a second budget for owner 'web' and period 2026-12 (the first: b.yaml budgets[0])")


def test_two_budgets_for_one_owner_and_period_across_files_name_both_places():
    files = [("budgets/b.csv", b"owner,period,amount,currency\napi,2026-12,5,USD\nweb,2026-12,5,EUR\n"),
             ("budgets/a.yaml", f"budgets:\n  - {{{VALID}}}\n".encode())]
    assert one_line_error(files) == ("budgets/b.csv: row 3: a second budget for owner 'web' and period 2026-12 "
                                     "(the first: budgets/a.yaml budgets[0])")


# ---------------------------------------------------------------------------------------------
# A month replayed day by day
# ---------------------------------------------------------------------------------------------
# Budget 3100 USD for December (31 days), warn at 50 % (1550), error above 120 % (3720).
# Run-rate series: 100 a day on days 1-10, then 150 a day: actual(d) = 150 d - 500 from day 10 on, and the
# run-rate projection 31 × actual(d) / d = 4650 - 15500 / d.
#   days 1-10: projection 3100, not over the budget: OK;
#   WARN needs actual >= 1550: 150 d >= 2050, d >= 14 (day 13: 1450); projection(14) = 3542.86 > 3100: WARN;
#   ERROR needs projection > 3720: 15500 / d < 930, d > 16.67: day 17 (3738.24; day 16: 3681.25).
RUN_RATE_SERIES = [("web", day, "100" if day.day <= 10 else "150") for day in DEC]


def replay(rows: pl.DataFrame, **kwargs) -> list[dict]:
    return [status_on([budget()], rows, day, **kwargs) for day in DEC]


def test_a_month_replayed_day_by_day_with_the_run_rate_turns_warn_on_day_14_and_error_on_day_17():
    days = replay(spend(RUN_RATE_SERIES))
    assert [d["Status"] for d in days] == [OK] * 13 + [WARN] * 3 + [ERROR] * 15
    assert {d["x_ProjectionMethod"] for d in days} == {RUN_RATE}
    assert [d["DaysElapsed"] for d in days] == list(range(1, 32))
    assert {d["DaysInPeriod"] for d in days} == {31}
    assert days[13]["ActualToDate"] == Decimal(1600)
    assert days[13]["ForecastAtPeriodEnd"] == Decimal("3542.857142857143")  # 1600 × 31 / 14, 12 decimals
    assert days[16]["ForecastAtPeriodEnd"] == Decimal("3738.235294117647")  # 2050 × 31 / 17
    assert days[9]["ForecastAtPeriodEnd"] == Decimal(3100) and days[9]["Status"] == OK
    assert days[30]["ActualToDate"] == days[30]["ForecastAtPeriodEnd"] == Decimal(4150)
    assert days[13]["x_Reason"].startswith("actual to date 1,600.00 USD (51.6 %) after 14 of 31 days: at or above "
                                           "the warning threshold 50.0 %, and projected 3,542.86 USD at period end "
                                           "(run-rate), 114.3 % of the 3,100.00 USD budget")
    assert days[16]["x_Reason"].startswith("projected 3,738.24 USD at period end (run-rate), 120.6 % of the "
                                           "3,100.00 USD budget: above the error threshold 120.0 %")
    assert days[30]["x_Reason"].startswith("spent 4,150.00 USD in the period, 133.9 % of the 3,100.00 USD budget")


def test_the_run_rate_counts_a_month_start_fee_once():
    # 2000 purchased on 1 December, then 100 a day of usage: 5100 by the end, exactly the budget
    rows = pl.concat([spend([("web", DEC[0], "2000")], kind=FEE), spend([("web", day, "100") for day in DEC])])
    days = [status_on([budget(amount="5100")], rows, day) for day in DEC]
    assert {d["ForecastAtPeriodEnd"] for d in days} == {Decimal(5100)}  # not 2100 × 31 = 65100 on day one
    assert {d["Status"] for d in days} == {OK}
    assert days[0]["ActualToDate"] == Decimal(2100)
    assert days[0]["BurnRate"] == pytest.approx(2100 / (5100 / 31))  # the burn rate counts what was spent


def test_burn_rate_and_projected_share_on_day_14():
    day = replay(spend(RUN_RATE_SERIES))[13]
    assert day["BurnRate"] == pytest.approx((1600 / 14) / (3100 / 31))  # 1.142857
    assert day["ProjectedShare"] == pytest.approx(3542.857142857143 / 3100)


def test_projected_overrun_date_by_run_rate_and_the_day_an_actual_overrun_happened():
    days = replay(spend(RUN_RATE_SERIES))
    assert days[9]["ProjectedOverrunDate"] is None  # projection exactly the budget: no overrun
    # day 14: 1600 × (14 + k) / 14 > 3100 first for k = 14 (3200; k = 13: 3085.71)
    assert days[13]["ProjectedOverrunDate"] == date(2026, 12, 28)
    # the actual itself passes 3100 on day 25 (3250; day 24 is exactly 3100, not over)
    assert [d["ProjectedOverrunDate"] for d in days[24:]] == [date(2026, 12, 25)] * 7


# Forecasts made on 30 November: 100 a day for `web` over all of December (60 for EC2 + 40 for S3, summed).
# Spend: 100 a day on days 1-10, then 200 a day: actual(d) = 200 d - 1000; projection = actual(d) + 100 (31 - d)
# = 100 d + 2100.
#   WARN needs actual >= 1550: 200 d >= 2550, d >= 13 (day 12: 1400); projection(13) = 3400 > 3100: WARN;
#   ERROR needs projection > 3720: d > 16.2: day 17 (3800; day 16: 3700).
# (The run rate would page on day 13 already: 31 × 1600 / 13 = 3815.38.)
FORECAST_SERIES = [("web", day, "100" if day.day <= 10 else "200") for day in DEC]
FORECASTS = pl.concat([
    forecast_rows([("web", day, "60") for day in DEC]),
    forecast_rows([("web", day, "40") for day in DEC], service="Amazon S3"),
    forecast_rows([("web", day, "55") for day in DEC], kind="usage"),  # parts of the total: not added again
    forecast_rows([("web", day, "45") for day in DEC], kind="fee"),
    forecast_rows([("web", DEC[0], "3100")], grain="month"),  # the monthly grain: not read
    forecast_rows([("api", day, "999") for day in DEC]),  # another owner
])


def test_a_month_replayed_day_by_day_with_forecasts_turns_warn_on_day_13_and_error_on_day_17():
    days = replay(spend(FORECAST_SERIES), forecasts=FORECASTS)
    assert [d["Status"] for d in days] == [OK] * 12 + [WARN] * 4 + [ERROR] * 15
    # the last day has no remaining day to forecast: the projection is the actual
    assert [d["x_ProjectionMethod"] for d in days] == [FORECAST] * 30 + [RUN_RATE]
    assert [d["ForecastAtPeriodEnd"] for d in days[10:30]] == [Decimal(100 * d + 2100) for d in range(11, 31)]
    assert days[12]["x_Reason"].startswith("actual to date 1,600.00 USD (51.6 %) after 13 of 31 days: at or above "
                                           "the warning threshold 50.0 %, and projected 3,400.00 USD at period end "
                                           "(forecast)")
    # day 13: 1600 + 100 k > 3100 first for k = 16
    assert days[12]["ProjectedOverrunDate"] == date(2026, 12, 29)
    assert days[16]["ProjectedOverrunDate"] == date(2026, 12, 25)  # 2400 + 100 k > 3100 first for k = 8


def test_the_latest_forecast_made_on_or_before_as_of_is_read():
    forecasts = pl.concat([forecast_rows([("web", day, "100") for day in DEC]),
                           forecast_rows([("web", day, "50") for day in DEC], made=date(2026, 12, 10))])
    rows = spend([("web", day, "100") for day in DEC])
    assert status_on([budget()], rows, date(2026, 12, 5), forecasts=forecasts)["ForecastAtPeriodEnd"] == 500 + 26 * 100
    assert status_on([budget()], rows, date(2026, 12, 15), forecasts=forecasts)["ForecastAtPeriodEnd"] == 1500 + 16 * 50


def test_forecasts_that_do_not_cover_every_remaining_day_give_way_to_the_run_rate():
    partial = forecast_rows([("web", day, "1000") for day in DEC[:20]])
    day = status_on([budget()], spend([("web", day, "100") for day in DEC]), date(2026, 12, 14), forecasts=partial)
    assert (day["x_ProjectionMethod"], day["ForecastAtPeriodEnd"]) == (RUN_RATE, Decimal(3100))


# ---------------------------------------------------------------------------------------------
# Exactness, measures, what is counted
# ---------------------------------------------------------------------------------------------
def test_actuals_are_exact_decimal_sums():
    november = BillingPeriod(2026, 11)
    exact = budget("data", "0.3", period=november, warn_at="1", error_at="1")
    rows = spend([("data", date(2026, 11, 1), "0.1"), ("data", date(2026, 11, 2), "0.2")])
    day = status_on([exact], rows, date(2026, 11, 30))
    assert (day["ActualToDate"], day["Status"]) == (Decimal("0.3"), OK)  # 0.1 + 0.2 in floats: 0.30000000000000004
    one_more = pl.concat([rows, spend([("data", date(2026, 11, 3), "0.000000000001")])])
    day = status_on([exact], one_more, date(2027, 1, 15))  # long after the period: its whole spend
    assert (day["ActualToDate"], day["Status"], day["DaysElapsed"]) == (Decimal("0.300000000001"), ERROR, 30)
    assert day["ProjectedOverrunDate"] == date(2026, 11, 3)


def test_the_budget_measure_is_summed_and_other_periods_and_later_days_are_not():
    rows = pl.concat([spend([("web", day, "100") for day in DEC], billed_factor=2),
                      spend([("web", date(2026, 11, 30), "5000")])])
    as_of = date(2026, 12, 14)
    assert status_on([budget()], rows, as_of)["ActualToDate"] == Decimal(1400)
    assert status_on([budget(measure="BilledCost")], rows, as_of)["ActualToDate"] == Decimal(2800)


def test_actual_to_date_is_the_exact_sum_of_generated_spend_rows():
    rows = seasonal_spend(6, date(2026, 10, 1), 92, owners=3, seed=7)  # usage and month-start fees, 3 owners
    november, as_of = BillingPeriod(2026, 11), date(2026, 11, 20)
    budgets = [budget(owner, "1000000", period=november) for owner in ("owner-00", "owner-01")]
    out = budget_status(budgets, rows.lazy(), as_of)
    expected = (rows.filter((pl.col("x_BillingPeriod") == "2026-11") & (pl.col("Date") <= as_of))
                .group_by("Owner").agg(pl.col("EffectiveCost").sum()).sort("Owner").head(2))
    assert out.select("Owner", "ActualToDate").rows() == expected.rows()
    assert out["DaysElapsed"].to_list() == [20, 20] and out["DaysInPeriod"].to_list() == [30, 30]


def test_budgets_whose_period_has_not_begun_are_left_out_and_owners_without_spend_are_ok():
    out = budget_status([budget(), budget(period=BillingPeriod(2027, 1)), budget("idle")],
                        spend([("web", day, "100") for day in DEC]), date(2026, 12, 14))
    assert out.select("x_BillingPeriod", "Owner", "Status", "ActualToDate").rows() == [
        ("2026-12", "idle", OK, Decimal(0)), ("2026-12", "web", OK, Decimal(1400))]
    assert budget_status([], spend([]), date(2026, 12, 14)).schema == pl.Schema(BUDGET_STATUS)


# ---------------------------------------------------------------------------------------------
# Currencies
# ---------------------------------------------------------------------------------------------
def rates(entries: list[tuple[date, str, str]]) -> pl.DataFrame:
    """EXCHANGE_RATE_SCHEMA rows of base EUR: (date, currency, units per EUR)."""
    return pl.DataFrame([(day, "EUR", currency, Decimal(rate), "test") for day, currency, rate in entries],
                        schema=EXCHANGE_RATE_SCHEMA, orient="row")


def test_a_budget_in_a_currency_without_a_rate_is_no_rate_and_the_others_are_computed():
    rows = pl.concat([spend([("web", day, "100") for day in DEC]), spend([("eu", day, "100") for day in DEC])])
    out = budget_status([budget(), budget("eu", currency="EUR")], rows, date(2026, 12, 14))
    eu, web = out.rows(named=True)
    assert (eu["Owner"], eu["Status"]) == ("eu", NO_RATE)
    assert eu["x_Reason"] == ("USD cannot be converted to the budget currency EUR: no exchange rate "
                              "USD->EUR on or before 2026-12-01")
    assert (eu["ActualToDate"], eu["ForecastAtPeriodEnd"], eu["BurnRate"], eu["x_ProjectionMethod"]) == (
        None, None, None, None)
    assert (eu["Budget"], eu["DaysElapsed"]) == (Decimal(3100), 14)
    assert (web["Status"], web["ActualToDate"]) == (OK, Decimal(1400))
    late = rates([(date(2026, 12, 10), "USD", "1.25")])  # rates begin after the first spend day
    assert budget_status([budget("eu", currency="EUR")], rows, date(2026, 12, 14),
                         rates=late)["x_Reason"][0].endswith("USD->EUR on or before 2026-12-01")


def test_only_the_budgets_with_a_day_before_the_first_rate_are_no_rate():
    table = rates([(date(2026, 12, 10), "USD", "1.25")])
    rows = pl.concat([spend([("early", day, "100") for day in DEC]),
                      spend([("late", day, "100") for day in DEC[11:]]),
                      spend([("euro", day, "100") for day in DEC], currency="EUR"),
                      spend([("early", date(2026, 11, 5), "100")])])
    budgets = [budget(owner, currency="EUR") for owner in ("early", "late", "euro")]
    budgets.append(budget("early", currency="EUR", period=BillingPeriod(2026, 11)))
    out = budget_status(budgets, rows, date(2026, 12, 20), rates=table)
    assert out.select("x_BillingPeriod", "Owner", "Status", "ActualToDate").rows() == [
        ("2026-11", "early", NO_RATE, None), ("2026-12", "early", NO_RATE, None),
        ("2026-12", "euro", OK, Decimal(2000)), ("2026-12", "late", OK, 9 * 80)]
    assert out["x_Reason"][0].endswith("USD->EUR on or before 2026-11-05")
    assert out["x_Reason"][1].endswith("USD->EUR on or before 2026-12-01")


def test_spend_and_forecasts_are_converted_to_the_budget_currency_at_the_day_rate_or_the_nearest_earlier():
    table = rates([(date(2026, 11, 30), "USD", "1.25"), (date(2026, 12, 8), "USD", "1.6")])
    rows = pl.concat([spend([("eu", day, "100") for day in DEC[:14]]),
                      spend([("eu", day, "7") for day in DEC[:14]], currency="EUR")])
    forecasts = forecast_rows([("eu", day, "16") for day in DEC])
    day = status_on([budget("eu", "2000", "EUR")], rows, date(2026, 12, 14), rates=table, forecasts=forecasts)
    # 7 days at 0.8 EUR per USD (30 Nov's rate), 7 at 0.625 (8 Dec's), plus 14 × 7 EUR
    assert day["ActualToDate"] == 7 * 80 + 7 * Decimal("62.5") + 14 * 7
    assert day["ForecastAtPeriodEnd"] == day["ActualToDate"] + 17 * 10  # 16 USD at 0.625
    assert day["x_ProjectionMethod"] == FORECAST
