"""Native FOCUS: no cent lost, no unclear error (issue items 4, 5, 6, 8, 10, 15).

FOCUS 1.0 rows built from ``test_focus_native``'s base row; expected values are computed by hand.
Item 8 does not apply: FOCUS 1.0-1.3 define no per-row identity, so copies are not detected (two
identical rows are two charges), which the last test pins down.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import focus_platform.sources.focus_native.mapping as mapping
from focus_platform.pipeline import check_focus
from focus_platform.sources import focus_native as fn
from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    EFFECTIVE_COST_UNKNOWN,
    Lineage,
    SourceFormatError,
)
from focus_platform.sources.focus_native import totals
from focus_platform.spec.columns import MONEY
from tests.helpers_imports import imported_names
from tests.unit.test_focus_native import BASE, NO_USAGE, SP, row, write_csv

D = Decimal
LINEAGE = Lineage("t", "focus", "d", None, datetime(2024, 10, 1, tzinfo=timezone.utc))


def converted(path: Path, lineage: Lineage = LINEAGE) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """raw, FOCUS rows, quarantine, raw totals of one file."""
    raw = fn.scan_raw(path, lineage).collect()
    lazy = raw.lazy()
    return raw, fn.to_focus(lazy).collect(), fn.quarantine(lazy).collect(), fn.raw_totals(lazy).collect()


def problems(focus: pl.DataFrame, quarantine: pl.DataFrame, raw_totals: pl.DataFrame) -> list[str]:
    return check_focus(focus.lazy(), raw_totals, quarantine).problems


# ---------------------------------------------------------------------------------------------
# Item 6: the totals are an independent gate
# ---------------------------------------------------------------------------------------------
def test_totals_never_import_the_mapping():
    imported = imported_names(totals.__file__)
    assert imported and not [name for name in imported if "mapping" in name], imported


@pytest.fixture(scope="module")
def usage_and_commitment(tmp_path_factory) -> Path:
    rows = [row(), row(SP, ChargeCategory="Purchase", ChargeFrequency="Recurring", EffectiveCost="5.00",
                       BilledCost="5.00", **NO_USAGE)]
    return write_csv(tmp_path_factory.mktemp("mutation") / "focus.csv", rows)


def test_mapping_changing_a_billed_cost_fails_billed_conservation(usage_and_commitment, monkeypatch):
    _, focus, q, raw_totals = converted(usage_and_commitment)
    assert problems(focus, q, raw_totals) == []
    to_focus = mapping.to_focus
    # the mapping writes one cent more BilledCost than delivered
    monkeypatch.setattr(mapping, "to_focus", lambda raw: to_focus(raw).with_columns(
        pl.col("BilledCost") + pl.lit(D("0.01"), MONEY)))
    found = problems(mapping.to_focus(fn.scan_raw(usage_and_commitment, LINEAGE)).collect(), q, raw_totals)
    assert any(p.startswith("billed cost not conserved") for p in found), found


def test_mapping_reading_a_wrong_effective_column_fails_amortized_conservation(usage_and_commitment, monkeypatch):
    # the mapping reads ContractedCost as EffectiveCost (and so keeps the purchase's amount)
    effective_cost = mapping._effective_cost
    monkeypatch.setattr(mapping, "_effective_cost", lambda col, purchase, credit: (
        col("ContractedCost"), effective_cost(col, purchase, credit)[1]))
    _, focus, q, raw_totals = converted(usage_and_commitment)
    found = problems(focus, q, raw_totals)
    assert any(p.startswith("amortized cost not conserved") for p in found), found
    assert not any(p.startswith("billed cost not conserved") for p in found), found


# ---------------------------------------------------------------------------------------------
# Item 4: amounts that cannot be read are quarantined with their raw text
# ---------------------------------------------------------------------------------------------
FORTY_DIGITS = "1234567890123456789012345678901234567890"
OVERFLOW = "overflows Decimal(38,12)"


def test_unreadable_billed_amounts_in_csv_are_quarantined_with_their_text(tmp_path):
    texts = ["1,234.56", "$12", "NaN", FORTY_DIGITS]
    path = write_csv(tmp_path / "amounts.csv", [row(), *[row(BilledCost=t) for t in texts]])
    _, focus, q, raw_totals = converted(path)
    assert focus.height == 1
    unreadable = dict(zip(q["x_SourceRow"], q["x_UnreadableAmounts"], strict=True))
    assert sorted(unreadable) == [2, 3, 4, 5]
    for source_row, text in zip([2, 3, 4, 5], texts, strict=True):
        assert f"BilledCost: '{text}'" in unreadable[source_row]
        assert (OVERFLOW in unreadable[source_row]) == (text == FORTY_DIGITS)
        assert ("is not a number" in unreadable[source_row]) == (text != FORTY_DIGITS)
    assert q["x_BilledCost"].null_count() == 4
    assert any(p.startswith("billed cost not conserved") for p in problems(focus, q, raw_totals))


def test_unreadable_float_amounts_in_parquet_are_quarantined_not_a_crash(tmp_path):
    frame = pl.DataFrame([BASE] * 4).with_columns(
        pl.Series("BilledCost", [1.5, float("nan"), float("-inf"), 1e30], dtype=pl.Float64),
        pl.Series("EffectiveCost", [1.5, 1.5, 1.5, 1.5], dtype=pl.Float64))
    path = tmp_path / "floats.parquet"
    frame.write_parquet(path)
    _, focus, q, _ = converted(path)
    assert focus["BilledCost"].to_list() == [D("1.5")]
    unreadable = dict(zip(q["x_SourceRow"], q["x_UnreadableAmounts"], strict=True))
    assert sorted(unreadable) == [2, 3, 4]
    assert "'NaN' is not a number" in unreadable[2] and "'-inf' is not a number" in unreadable[3]
    assert OVERFLOW in unreadable[4] and "BilledCost: '1e+30'" in unreadable[4]


# ---------------------------------------------------------------------------------------------
# Item 5: an empty EffectiveCost does not silently become 0
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_effective(tmp_path_factory):
    rows = [
        row(EffectiveCost=""),  # usage: nothing in FOCUS defines it from other columns
        row(SP, ChargeCategory="Purchase", ChargeFrequency="Recurring", BilledCost="5.00", EffectiveCost="",
            **NO_USAGE),  # commitment purchase: 0 (R-EffectiveCost-2)
        row(ChargeCategory="Credit", ChargeFrequency="One-Time", BilledCost="-2.25", EffectiveCost="",
            PricingCategory="", ListUnitPrice="", ContractedUnitPrice="", PricingQuantity="", PricingUnit="",
            ListCost="-2.25", ContractedCost="-2.25", **NO_USAGE),  # credit: its BilledCost (R-EffectiveCost-3)
    ]
    return converted(write_csv(tmp_path_factory.mktemp("effective") / "focus.csv", rows))


def test_empty_effective_cost_keeps_the_row(empty_effective):
    _, focus, q, raw_totals = empty_effective
    assert q.height == 0 and focus.height == 3
    assert problems(focus, q, raw_totals) == []
    # raw basis, computed apart: 0 (unknown) + 0 (purchase) - 2.25 (credit)
    assert raw_totals["amortized"].sum() == D("-2.25") and raw_totals["billed"].sum() == D("4.25")  # 1.50 + 5.00 - 2.25


def test_empty_effective_cost_of_usage_is_a_recorded_gap(empty_effective):
    usage = empty_effective[1].filter(pl.col("x_SourceRow") == 1).row(0, named=True)
    assert usage["EffectiveCost"] == D(0) and usage["BilledCost"] == D("1.50")
    unknown = [n for n in usage["x_SourceChanges"] if n.startswith(EFFECTIVE_COST_UNKNOWN)]
    assert len(unknown) == 1 and unknown[0].startswith(f"{EFFECTIVE_COST_UNKNOWN}: EffectiveCost empty")


@pytest.mark.parametrize("source_row, effective, note", [
    (2, D(0), "EffectiveCost: null in the export; 0 on a commitment purchase (FOCUS R-EffectiveCost-2)"),
    (3, D("-2.25"), "EffectiveCost: null in the export; the credit's BilledCost (FOCUS R-EffectiveCost-3)")])
def test_empty_effective_cost_derived_where_focus_defines_it(empty_effective, source_row, effective, note):
    r = empty_effective[1].filter(pl.col("x_SourceRow") == source_row).row(0, named=True)
    assert r["EffectiveCost"] == effective and note in r["x_SourceChanges"]
    assert not any(n.startswith(EFFECTIVE_COST_UNKNOWN) for n in r["x_SourceChanges"])


def test_absent_effective_cost_column_is_refused_naming_it(tmp_path):
    path = write_csv(tmp_path / "no_effective.csv", [{k: v for k, v in row().items() if k != "EffectiveCost"}])
    with pytest.raises(SourceFormatError, match=r"required column\(s\) missing: EffectiveCost"):
        fn.scan_raw(path, LINEAGE)


# ---------------------------------------------------------------------------------------------
# Item 10: a declared billing currency
# ---------------------------------------------------------------------------------------------
def _without_currency(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "no_currency.csv", [{k: v for k, v in row().items() if k != "BillingCurrency"}])


def test_file_without_currency_column_is_refused_naming_it(tmp_path):
    with pytest.raises(SourceFormatError, match=r"required column\(s\) missing: BillingCurrency"):
        fn.scan_raw(_without_currency(tmp_path), LINEAGE)


def test_declared_billing_currency_fills_the_currency_and_is_recorded(tmp_path):
    lineage = Lineage("t", "focus", "d", None, datetime(2024, 10, 1, tzinfo=timezone.utc), billing_currency="EUR")
    raw, focus, q, raw_totals = converted(_without_currency(tmp_path), lineage)
    assert raw["BillingCurrency"].to_list() == ["EUR"] and raw["x_DeclaredCurrency"].to_list() == ["EUR"]
    assert focus["BillingCurrency"].to_list() == ["EUR"] and DECLARED_CURRENCY_NOTE in focus["x_SourceChanges"][0]
    assert "x_DeclaredCurrency" not in focus.columns  # recorded in x_SourceChanges, not an extra column
    assert raw_totals["BillingCurrency"].to_list() == ["EUR"] and problems(focus, q, raw_totals) == []


# ---------------------------------------------------------------------------------------------
# Items 8 and 15
# ---------------------------------------------------------------------------------------------
def test_identical_rows_are_two_charges(tmp_path):
    """FOCUS defines no per-row identity: two identical rows cannot be told from two genuine charges."""
    _, focus, q, raw_totals = converted(write_csv(tmp_path / "twice.csv", [row(), row()]))
    assert focus.height == 2 and q.height == 0 and focus["BilledCost"].sum() == D("3.00")
    assert problems(focus, q, raw_totals) == []


def test_contracted_cost_derived_in_decimal(tmp_path):
    """ContractedCost missing: ContractedUnitPrice x PricingQuantity, exact where a float is not."""
    price, quantity = "0.123456789012", "98765432.1"
    _, focus, _, _ = converted(write_csv(tmp_path / "price.csv", [row(ContractedCost="", ContractedUnitPrice=price,
                                                                      PricingQuantity=quantity)]))
    exact = (D(price) * D(quantity)).quantize(D("1e-12"))  # 12193263.111263526900 (no rounding needed)
    assert D(repr(float(price) * float(quantity))) != exact
    assert focus["ContractedCost"].to_list() == [exact]
