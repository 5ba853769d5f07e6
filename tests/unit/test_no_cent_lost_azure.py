"""Azure cost details: no cent lost, no unclear error.

The raw side of conservation (``totals``) is independent of the mapping (a wrong amount in the
mapping fails the gates; ``totals.py`` never imports ``mapping``); amounts that cannot be read are
quarantined with their raw text; an EffectiveCost whose amortized cost is not in the data is a
recorded gap, never a silent 0; exact duplicates are not taken for copies (Microsoft documents no
line-item identity); a declared billing currency stands in for a missing currency column; prices
and costs are exact Decimal; actual and amortized files of different periods are refused.
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.pipeline import convert_files
from focus_platform.sources import SourceFormatError, azure_cost
from focus_platform.sources.azure_cost import mapping
from focus_platform.sources.common import DECLARED_CURRENCY_NOTE, EFFECTIVE_COST_UNKNOWN
from tests.conftest import FIXTURES
from tests.helpers_imports import imported_names
from tests.unit.test_azure_cost import (
    ACTUAL_ROWS,
    AMORTIZED_ROWS,
    EA_HEADER,
    LINEAGE,
    RI,
    Converted,
    assert_gates,
    row,
    write_csv,
)

D = Decimal
AZURE = FIXTURES / "azure"


def _unknown_effective(r: dict) -> list[str]:
    return [n for n in r["x_SourceChanges"] or [] if n.startswith(EFFECTIVE_COST_UNKNOWN)]


# ---------------------------------------------------------------------------------------------
# Item 6: independent gates
# ---------------------------------------------------------------------------------------------
def test_totals_never_imports_the_mapping():
    imported = imported_names(Path(azure_cost.__file__).parent / "totals.py")
    assert not [name for name in imported if "mapping" in name.split(".")], imported


def _mutated(original, change: pl.Expr):
    """The mapping's prepared rows with one amount changed (a mapping defect)."""
    return lambda raw, schema: original(raw, schema).with_columns(change.alias("__cost"))


@pytest.mark.parametrize(("change", "problems"), [
    (pl.col("UnitPrice"), ["billed", "amortized"]),  # the wrong amount column
    (pl.when(pl.col("x_CostDataset") == "actual").then(pl.col("__cost") + D("0.01")).otherwise(pl.col("__cost")),
     ["billed"]),  # one cent more on actual-cost rows
    (pl.when(pl.col("x_CostDataset") == "amortized").then(pl.col("__cost") * 2).otherwise(pl.col("__cost")),
     ["amortized"]),  # amortized cost doubled
])
def test_a_wrong_amount_in_the_mapping_fails_conservation(tmp_path, monkeypatch, change, problems):
    paths = [write_csv(tmp_path / "m_actual.csv", ACTUAL_ROWS), write_csv(tmp_path / "m_amortized.csv", AMORTIZED_ROWS)]
    assert_gates(Converted(paths))
    monkeypatch.setattr(mapping, "_prepare", _mutated(mapping._prepare, change.cast(pl.Decimal(38, 12))))
    found = [p for p in Converted(paths).checks.problems if "not conserved" in p]
    assert [p.split(" cost not conserved for 8611537 2023-09 USD")[0] for p in found] == problems, found


# ---------------------------------------------------------------------------------------------
# Item 4: amounts that cannot be read
# ---------------------------------------------------------------------------------------------
def test_unreadable_amounts_in_csv_are_quarantined_with_their_text(tmp_path):
    forty_digits = "1234567890123456789012345678901234567890"
    bad = ["1,234.56", "$12", "NaN", forty_digits]
    rows = [row()] + [row(CostInBillingCurrency=v, Quantity=str(i + 2)) for i, v in enumerate(bad)]
    c = Converted([write_csv(tmp_path / "amounts_actual.csv", rows)], accept_unknown_money=True)
    assert c.focus.height == 1
    q = c.quarantine.sort("x_SourceRow")
    assert q["x_SourceRow"].to_list() == [2, 3, 4, 5]
    unreadable = q["x_UnreadableAmounts"].to_list()
    for text, message in zip(bad, unreadable):
        assert f"'{text}'" in message and message.startswith("CostInBillingCurrency: ")
    assert [m.endswith("is not a number") for m in unreadable] == [True, True, True, False]
    assert "overflows Decimal(38,12)" in unreadable[3]
    assert q["x_QuarantineReason"].to_list() == unreadable
    assert_gates(c)
    assert not Converted([tmp_path / "amounts_actual.csv"]).checks.billed_ok  # unknown money fails unless accepted


def test_unreadable_float_amounts_in_parquet_are_quarantined(tmp_path):
    costs = [2.304, math.nan, math.inf, -math.inf, 1e30]
    frame = pl.DataFrame([{**row(Quantity=str(i + 1)), "CostInBillingCurrency": None} for i in range(len(costs))],
                         schema={h: pl.String for h in EA_HEADER})
    path = tmp_path / "floats_actual.parquet"
    frame.with_columns(pl.Series("CostInBillingCurrency", costs, pl.Float64)).write_parquet(path)
    c = Converted([path], accept_unknown_money=True)
    assert_gates(c)
    assert c.focus["BilledCost"].to_list() == [D("2.304")]
    unreadable = c.quarantine.sort("x_SourceRow")["x_UnreadableAmounts"].to_list()
    assert [m.split(": ", 1)[1] for m in unreadable[:3]] == ["'NaN' is not a number", "'inf' is not a number",
                                                             "'-inf' is not a number"]
    assert "'1e+30' overflows Decimal(38,12)" in unreadable[3]


# ---------------------------------------------------------------------------------------------
# Item 5: an EffectiveCost is never silently 0
# ---------------------------------------------------------------------------------------------
def test_unpaired_actual_row_has_an_unknown_effective_cost(tmp_path):
    """Paired files; an actual on-demand row (2 x 0.096) has no amortized twin: BilledCost 0.192,
    EffectiveCost 0 recorded as unknown; the amortized basis is the amortized file's cost alone."""
    only_actual = row(Quantity="2", CostInBillingCurrency="0.192", Date="09/06/2023")
    c = Converted([write_csv(tmp_path / "u_actual.csv", ACTUAL_ROWS + [only_actual]),
                   write_csv(tmp_path / "u_amortized.csv", AMORTIZED_ROWS)])
    assert_gates(c)
    r = c.focus.filter(pl.col("ChargePeriodStart").dt.day() == 6).row(0, named=True)
    assert (r["BilledCost"], r["EffectiveCost"]) == (D("0.192"), 0)
    assert _unknown_effective(r) and "CostInBillingCurrency of the amortized-cost row" in _unknown_effective(r)[0]
    assert c.checks.effective_unknown["rows"] == 1
    t = c.totals.row(0, named=True)
    # amortized file: on-demand 2.304, spot 0.384, RI usage 1.25, SP usage 0.312, unused RI 0.25, unused SP 0.8,
    # marketplace 149, rounding 0.003, tax 5, credit -3; actual file: the same on-demand, spot, marketplace,
    # rounding, tax and credit, covered usage 0, purchases 46 + 1000, refund -12.5, and the unpaired 0.192
    assert t["amortized"] == c.focus["EffectiveCost"].sum() == D("156.303")
    assert t["billed"] == c.focus["BilledCost"].sum() == D("1187.383")


def test_actual_only_covered_usage_has_an_unknown_effective_cost(tmp_path):
    c = Converted([write_csv(tmp_path / "actual.csv", ACTUAL_ROWS)])
    assert_gates(c)
    covered = c.focus.filter((pl.col("x_ChargeType") == "Usage")
                             & pl.col("x_PricingModel").is_in(["Reservation", "SavingsPlan"]))
    assert covered.height == 2 and covered["EffectiveCost"].to_list() == [0, 0]
    assert all(_unknown_effective(r) for r in covered.iter_rows(named=True))
    others = c.focus.filter(~pl.col("x_PricingModel").is_in(["Reservation", "SavingsPlan"])
                            | (pl.col("x_ChargeType") != "Usage"))
    assert not [r for r in others.iter_rows(named=True) if _unknown_effective(r)]  # purchases: 0 by FOCUS
    assert c.checks.effective_unknown["rows"] == 2


def test_amortized_rows_with_an_empty_cost_are_quarantined_not_zero(tmp_path):
    """An amortized row (on-demand, and a reservation-covered one) whose cost is empty: quarantined
    with the reason; the rest conserved exactly."""
    empty = [row(Quantity="7", CostInBillingCurrency=""),
             row(RI, PricingModel="Reservation", Quantity="9", EffectivePrice="", CostInBillingCurrency="",
                 UnitPrice="0.096", PayGPrice="0")]
    c = Converted([write_csv(tmp_path / "e_actual.csv", ACTUAL_ROWS),
                   write_csv(tmp_path / "e_amortized.csv", AMORTIZED_ROWS + empty)])
    assert_gates(c)
    q = c.quarantine
    assert q.height == 2 and set(q["x_QuarantineReason"]) == {"CostInBillingCurrency (cost) is empty"}
    assert q["x_EffectiveCost"].to_list() == [None, None]
    assert c.focus.filter(pl.col("PricingQuantity").is_in([7, 9])).height == 0


# ---------------------------------------------------------------------------------------------
# Item 8: no documented line-item identity, so no duplicate is invented
# ---------------------------------------------------------------------------------------------
def test_exact_duplicates_are_kept_and_pair_one_to_one(tmp_path):
    """The same row twice in one actual file and once more in a second actual file, once in the
    amortized file: no row is quarantined as a copy (Azure has no line-item id); one actual row pairs
    with the amortized row, the two others stay with their billed cost and an unknown EffectiveCost
    (recorded, so a re-delivered copy does not pass silently)."""
    c = Converted([write_csv(tmp_path / "d_actual_1.csv", [row(), row()]),
                   write_csv(tmp_path / "d_actual_2.csv", [row()]),
                   write_csv(tmp_path / "d_amortized.csv", [row()])])
    assert_gates(c)
    assert c.quarantine.height == 0 and c.focus.height == 3
    assert c.focus["BilledCost"].sum() == 3 * D("2.304") and c.focus["EffectiveCost"].sum() == D("2.304")
    t = c.totals.row(0, named=True)
    assert (t["billed"], t["amortized"], t["rows"], t["dropped_rows"]) == (3 * D("2.304"), D("2.304"), 4, 1)
    assert c.checks.effective_unknown["rows"] == 2


# ---------------------------------------------------------------------------------------------
# Item 10: a declared billing currency
# ---------------------------------------------------------------------------------------------
NO_CURRENCY_HEADER = [h for h in EA_HEADER if h != "BillingCurrencyCode"]


def test_a_file_without_currency_is_refused_naming_the_column(tmp_path):
    path = write_csv(tmp_path / "nocur_actual.csv", [row()], NO_CURRENCY_HEADER)
    with pytest.raises(SourceFormatError, match=r"nocur_actual\.csv.*BillingCurrency / BillingCurrencyCode / "
                                                r"Currency \(or the source's declared billing currency\)"):
        azure_cost.scan_raw(str(path), LINEAGE)
    with pytest.raises(SourceFormatError, match=r"nocur_actual\.csv.*BillingCurrency / BillingCurrencyCode"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_a_declared_currency_fills_the_missing_column_and_is_recorded(tmp_path):
    declared = replace(LINEAGE, billing_currency="EUR")
    no_currency = write_csv(tmp_path / "nocur_actual.csv", [row()], NO_CURRENCY_HEADER)
    with_currency = write_csv(tmp_path / "cur_actual.csv", [row(Quantity="5", CostInBillingCurrency="0.48")])
    c = Converted([no_currency, with_currency], lineage=declared)
    assert_gates(c)
    raw = c.raw_lf.collect().sort("x_SourceFile")
    assert raw.select("BillingCurrency", "x_DeclaredCurrency").rows() == [("USD", None), ("EUR", "EUR")]
    by_file = {r["x_SourceFile"].rsplit("/", 1)[1]: r for r in c.focus.iter_rows(named=True)}
    assert by_file["nocur_actual.csv"]["BillingCurrency"] == "EUR"
    assert DECLARED_CURRENCY_NOTE in by_file["nocur_actual.csv"]["x_SourceChanges"]
    assert by_file["cur_actual.csv"]["BillingCurrency"] == "USD"
    assert DECLARED_CURRENCY_NOTE not in (by_file["cur_actual.csv"]["x_SourceChanges"] or [])
    assert "x_DeclaredCurrency" not in c.focus.columns
    totals = {r["BillingCurrency"]: r["billed"] for r in c.totals.iter_rows(named=True)}
    assert totals == {"EUR": D("2.304"), "USD": D("0.48")}
    result = convert_files([str(no_currency)], str(tmp_path / "out.parquet"), billing_currency="EUR")
    assert result.checks.problems == [] and result.checks.totals["EUR"]["BilledCost"] == "2.304000000000"


# ---------------------------------------------------------------------------------------------
# Item 15: prices and costs exact in Decimal
# ---------------------------------------------------------------------------------------------
def test_prices_and_costs_are_exact_where_a_float_would_differ(tmp_path):
    unit_price, quantity = "1234567.123456789012", "3"
    payg, rate = "98765432.123456", "1.000001"
    mca = row(UnitPrice=unit_price, PayGPrice=unit_price, EffectivePrice=unit_price, Quantity=quantity,
              CostInBillingCurrency="3703701.370370367036")
    header = EA_HEADER + ["PricingCurrency", "ExchangeRatePricingToBilling"]
    fx = row(PayGPrice=payg, UnitPrice=payg, EffectivePrice=payg, Quantity="1", CostInBillingCurrency="98765530.89",
             PricingCurrency="EUR", ExchangeRatePricingToBilling=rate, Date="09/05/2023")
    c = Converted([write_csv(tmp_path / "exact_actual.csv", [mca, fx], header)])
    assert_gates(c)
    first, second = c.focus.sort("ChargePeriodStart").iter_rows(named=True)
    exact_cost = D(unit_price) * D(quantity)
    assert first["ContractedCost"] == first["ListCost"] == exact_cost == D("3703701.370370367036")
    assert D(float(unit_price) * float(quantity)).quantize(D("1e-12")) != exact_cost  # what a float would give
    exact_price = D(payg) * D(rate)
    assert second["ListUnitPrice"] == second["ContractedUnitPrice"] == exact_price == D("98765530.888888123456")
    assert D(float(payg) * float(rate)).quantize(D("1e-12")) != exact_price


# ---------------------------------------------------------------------------------------------
# Item 9: actual and amortized files of different periods
# ---------------------------------------------------------------------------------------------
def _moved_a_month(source: Path, target: Path) -> Path:
    """The ftk file with its dates in October 2023 instead of September."""
    frame = pl.read_csv(source, infer_schema=False)
    moved = frame.with_columns(pl.col("Date", "BillingPeriodStartDate").str.replace(r"^09/", "10/"),
                               pl.col("BillingPeriodEndDate").str.replace("09/30/2023", "10/31/2023"))
    moved.write_csv(target)
    return target


def test_actual_and_amortized_files_of_different_periods_are_refused(tmp_path):
    actual = _moved_a_month(AZURE / "ftk_EA_ActualCost_Small.csv", tmp_path / "ftk_EA_ActualCost_October.csv")
    amortized = AZURE / "ftk_EA_AmortizedCost_Small.csv"
    c = Converted([actual, amortized])
    problems = c.totals.select("x_BillingPeriod", "problem").unique().sort("x_BillingPeriod").rows()
    assert [period for period, _ in problems] == ["2023-09", "2023-10"]
    september, october = (message for _, message in problems)
    prefix = "Azure cost details: billing account 8611537, period"
    assert september.startswith(f"{prefix} 2023-09: only amortized-cost rows ({amortized})")
    assert f"actual-cost rows are for period(s) 2023-10 ({actual})" in september
    assert october.startswith(f"{prefix} 2023-10: only actual-cost rows ({actual})")
    assert f"amortized-cost rows are for period(s) 2023-09 ({amortized})" in october
    with pytest.raises(SourceFormatError, match=r"period 2023-09: only amortized-cost rows.*period 2023-10: only "
                                                r"actual-cost rows"):
        convert_files([str(actual), str(amortized)], str(tmp_path / "out.parquet"))


def test_files_of_one_delivery_stating_different_periods_are_refused(tmp_path):
    """In a delivery every row's x_BillingPeriod is the delivery's: the periods the rows state tell
    the actual file of October from the amortized file of September."""
    actual = _moved_a_month(AZURE / "ftk_EA_ActualCost_Small.csv", tmp_path / "ftk_EA_ActualCost_October.csv")
    delivery = replace(LINEAGE, billing_period="2023-09")
    c = Converted([actual, AZURE / "ftk_EA_AmortizedCost_Small.csv"], lineage=delivery)
    assert c.totals.height == 1
    problem = c.totals["problem"][0]
    assert "period 2023-09: only amortized-cost rows" in problem and "period 2023-10: only actual-cost rows" in problem


def test_a_set_of_one_kind_of_file_keeps_the_documented_modes(tmp_path):
    actual_oct = _moved_a_month(AZURE / "ftk_EA_ActualCost_Small.csv", tmp_path / "ftk_EA_ActualCost_October.csv")
    c = Converted([AZURE / "ftk_EA_ActualCost_Small.csv", actual_oct])
    assert_gates(c)
    assert c.totals["problem"].null_count() == c.totals.height == 2
    assert set(c.focus["x_CostMode"]) == {"actual-only"}
    paired = Converted([AZURE / "ftk_EA_ActualCost_Small.csv", AZURE / "ftk_EA_AmortizedCost_Small.csv"])
    assert_gates(paired)
    assert paired.totals["problem"].to_list() == [None]


def test_a_price_times_quantity_beyond_decimal_38_12_names_the_row_instead_of_failing_the_file(tmp_path):
    """Quantity and PayGPrice of 1e14 each: their product does not fit Decimal(38,12). Polars fails
    the whole conversion on it; now that row's list cost is unknown and the rule names the row."""
    import csv

    rows = list(csv.reader((FIXTURES / "azure" / "ftk_EA_AmortizedCost_Small.csv").open(newline="",
                                                                                         encoding="utf-8-sig")))
    header = rows[0]
    rows[1][header.index("Quantity")] = rows[1][header.index("PayGPrice")] = "100000000000000"
    path = tmp_path / "huge.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    result = convert_files([str(path)], str(tmp_path / "out.parquet"))
    assert result.checks.conformance.defects == {"R-ListCost-1b": 1}
    assert all(c.billed_ok and c.amortized_ok for c in result.checks.conservation)
