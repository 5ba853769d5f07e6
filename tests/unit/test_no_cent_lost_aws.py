"""AWS CUR: no cent lost, no unclear error (issue items 4, 5, 6, 8, 10, 15).

Tiny CUR files built from the rows of ``test_aws_line_item_types`` (one line item each); expected
values are computed by hand from the CUR columns, never read back from the converter.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest

import focus_platform.sources.aws_cur.mapping as mapping
from focus_platform.pipeline import check_focus
from focus_platform.sources import aws_cur
from focus_platform.sources.aws_cur import totals
from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    EFFECTIVE_COST_UNKNOWN,
    Lineage,
    SourceFormatError,
)
from focus_platform.spec.columns import MONEY
from tests.helpers_aws import Converted, D, assert_gates, convert, write_cur
from tests.helpers_imports import imported_names
from tests.unit.test_aws_line_item_types import CASES, cur_row

USAGE = CASES["usage"][0]  # on-demand usage, unblended 0.096
DISCOUNTED = CASES["discounted_usage"][0]  # RI-covered usage, effective 0.06 = 0.03 upfront + 0.03 recurring
COVERED = CASES["sp_covered_usage"][0]  # savings-plan-covered usage, effective 0.06 = rate 0.06 x 1 h
RI_FEE = CASES["ri_fee"][0]  # unused 3.00 upfront + 3.00 recurring over 100 h


def problems(conv: Converted) -> list[str]:
    return check_focus(conv.focus.lazy(), conv.raw_totals, conv.quarantine).problems


def notes(row: dict) -> list[str]:
    return row["x_SourceChanges"] or []


# ---------------------------------------------------------------------------------------------
# Item 6: the totals are an independent gate
# ---------------------------------------------------------------------------------------------
def test_totals_never_import_the_mapping():
    imported = imported_names(totals.__file__)
    assert imported and not [name for name in imported if "mapping" in name], imported


def test_raw_validity_and_mapping_know_the_same_line_item_types():
    """raw lists the types AWS documents (any other is quarantined); the mapping maps each one or drops it."""
    assert set(mapping.LINE_ITEM_TYPES) | set(aws_cur.DROPPED_LINE_ITEM_TYPES) == set(aws_cur.KNOWN_LINE_ITEM_TYPES)


@pytest.fixture(scope="module")
def amortized_cur(tmp_path_factory) -> Path:
    """Usage, RI-covered usage, savings-plan-covered usage and an RIFee with an unused part."""
    return write_cur(tmp_path_factory.mktemp("mutation") / "cur.csv", [USAGE, DISCOUNTED, COVERED, RI_FEE])


def test_mapping_reading_a_wrong_billed_column_fails_billed_conservation(amortized_cur, monkeypatch):
    assert problems(convert(amortized_cur)) == []
    # the mapping bills the blended cost (empty here) instead of the unblended cost
    monkeypatch.setattr(mapping, "_billed_cost", lambda col: col("line_item_blended_cost"))
    found = problems(convert(amortized_cur))
    assert any(p.startswith("billed cost not conserved") for p in found), found


def test_mapping_changing_an_effective_cost_fails_amortized_conservation(amortized_cur, monkeypatch):
    effective_cost = mapping._effective_cost

    def one_cent_more(col):
        effective, notes = effective_cost(col)
        return effective + pl.lit(Decimal("0.01"), MONEY), notes

    monkeypatch.setattr(mapping, "_effective_cost", one_cent_more)
    found = problems(convert(amortized_cur))
    assert any(p.startswith("amortized cost not conserved") for p in found), found
    assert not any(p.startswith("billed cost not conserved") for p in found), found


# ---------------------------------------------------------------------------------------------
# Item 4: amounts that cannot be read are quarantined with their raw text
# ---------------------------------------------------------------------------------------------
FORTY_DIGITS = "1234567890123456789012345678901234567890"
OVERFLOW = "overflows Decimal(38,12)"


def test_unreadable_billed_amounts_in_csv_are_quarantined_with_their_text(tmp_path):
    texts = {"comma": "1,234.56", "dollar": "$12", "nan": "NaN", "forty": FORTY_DIGITS}
    rows = [cur_row(USAGE, {"identity/LineItemId": name, "lineItem/UnblendedCost": text})
            for name, text in texts.items()]
    conv = convert(write_cur(tmp_path / "amounts.csv", [USAGE, *rows]))
    assert conv.focus.height == 1
    q = {r["x_SourceRow"]: r for r in conv.quarantine.to_dicts()}
    assert sorted(q) == [2, 3, 4, 5]
    for row, text in zip([2, 3, 4, 5], texts.values(), strict=True):
        unreadable = q[row]["x_UnreadableAmounts"]
        assert f"lineItem/UnblendedCost: '{text}'" in unreadable
        assert (OVERFLOW in unreadable) == (text == FORTY_DIGITS)
        assert ("is not a number" in unreadable) == (text != FORTY_DIGITS)
        assert unreadable in q[row]["x_QuarantineReason"] and q[row]["x_BilledCost"] is None
    assert any(p.startswith("billed cost not conserved") for p in problems(conv))


def test_unreadable_float_amounts_in_parquet_are_quarantined_not_a_crash(tmp_path):
    frame = pl.DataFrame([USAGE] * 4).with_columns(
        pl.Series("identity/LineItemId", ["fine", "nan", "inf", "huge"]),
        pl.Series("lineItem/UnblendedCost", [0.096, float("nan"), float("inf"), 1e30], dtype=pl.Float64))
    path = tmp_path / "floats.parquet"
    frame.write_parquet(path)
    conv = convert(path)
    assert conv.focus.height == 1 and conv.focus["BilledCost"].to_list() == [D("0.096")]
    unreadable = dict(zip(conv.quarantine["x_SourceRow"], conv.quarantine["x_UnreadableAmounts"], strict=True))
    assert sorted(unreadable) == [2, 3, 4]
    assert "'NaN' is not a number" in unreadable[2] and "'inf' is not a number" in unreadable[3]
    assert OVERFLOW in unreadable[4] and "lineItem/UnblendedCost: '1e+30'" in unreadable[4]


# ---------------------------------------------------------------------------------------------
# Item 5: an amortization column left empty does not silently become EffectiveCost 0
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_amortization(tmp_path_factory) -> Converted:
    rows = [
        # reservation/EffectiveCost deselected: 0.021 amortized upfront + 0.034 recurring fee = 0.055
        cur_row(DISCOUNTED, {"identity/LineItemId": "ri-parts", "reservation/EffectiveCost": "",
                             "reservation/AmortizedUpfrontCostForUsage": "0.021",
                             "reservation/RecurringFeeForUsage": "0.034"}),
        # nothing carries it
        cur_row(DISCOUNTED, {"identity/LineItemId": "ri-none", "reservation/EffectiveCost": "",
                             "reservation/AmortizedUpfrontCostForUsage": "", "reservation/RecurringFeeForUsage": ""}),
        # savingsPlan/SavingsPlanEffectiveCost deselected: rate 0.0123 x 3.5 h = 0.04305
        cur_row(COVERED, {"identity/LineItemId": "sp-rate", "savingsPlan/SavingsPlanEffectiveCost": "",
                          "savingsPlan/SavingsPlanRate": "0.0123", "lineItem/UsageAmount": "3.5"}),
        cur_row(COVERED, {"identity/LineItemId": "sp-none", "savingsPlan/SavingsPlanEffectiveCost": "",
                          "savingsPlan/SavingsPlanRate": ""}),
        # an RIFee whose unused-reservation columns are all empty: its unused part is unknown
        cur_row(RI_FEE, {"identity/LineItemId": "ri-fee-none", "reservation/UnusedRecurringFee": "",
                         "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": ""}),
    ]
    conv = convert(write_cur(tmp_path_factory.mktemp("amortization") / "cur.csv", rows))
    assert conv.quarantine.height == 0
    return conv


def _by_row(conv: Converted) -> dict[int, dict]:
    return {r["x_SourceRow"]: r for r in conv.focus.filter(pl.col("CommitmentDiscountStatus").is_null()
                                                          | (pl.col("CommitmentDiscountStatus") != "Unused")).to_dicts()}


def test_reservation_effective_cost_from_its_documented_parts(empty_amortization):
    row = _by_row(empty_amortization)[1]
    assert row["EffectiveCost"] == D("0.055") and row["BilledCost"] == D(0)
    assert ("EffectiveCost: reservation/EffectiveCost empty; reservation/AmortizedUpfrontCostForUsage + "
            "reservation/RecurringFeeForUsage") in notes(row)


def test_savings_plan_effective_cost_from_rate_times_usage(empty_amortization):
    row = _by_row(empty_amortization)[3]
    assert row["EffectiveCost"] == D("0.04305") and row["CommitmentDiscountQuantity"] == D("0.04305")
    assert ("EffectiveCost: savingsPlan/SavingsPlanEffectiveCost empty; savingsPlan/SavingsPlanRate x "
            "lineItem/UsageAmount") in notes(row)


@pytest.mark.parametrize("source_row, missing", [
    (2, "reservation/EffectiveCost"), (4, "savingsPlan/SavingsPlanEffectiveCost"),
    (5, "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod and reservation/UnusedRecurringFee")])
def test_effective_cost_nothing_carries_is_a_recorded_gap(empty_amortization, source_row, missing):
    row = _by_row(empty_amortization)[source_row]
    assert row["EffectiveCost"] == D(0)
    unknown = [n for n in notes(row) if n.startswith(EFFECTIVE_COST_UNKNOWN)]
    assert len(unknown) == 1 and missing in unknown[0], notes(row)


def test_derived_effective_costs_are_conserved(empty_amortization):
    checks = assert_gates(empty_amortization)
    # totals written apart: 0.055 + 0 + 0.04305 + 0 + 0 (the RIFee's unused part is unknown)
    assert empty_amortization.raw_totals["amortized"].sum() == D("0.09805")
    assert sum(c.focus_effective for c in checks.conservation) == D("0.09805")
    unknown = empty_amortization.focus.filter(
        pl.col("x_SourceChanges").list.eval(pl.element().str.starts_with(EFFECTIVE_COST_UNKNOWN)).list.any())
    assert sorted(unknown["x_SourceRow"]) == [2, 4, 5]


# ---------------------------------------------------------------------------------------------
# Item 8: a line item delivered twice is billed once
# ---------------------------------------------------------------------------------------------
KEY_NOTE = "duplicate line item: identity/LineItemId / identity/TimeInterval 'li-dup / 2023-01-01T00:00:00Z/"


def _assert_one_copy_quarantined(conv: Converted) -> None:
    assert conv.focus.height == 1 and conv.focus["BilledCost"].to_list() == [D("0.096")]
    assert conv.quarantine.height == 1
    copy = conv.quarantine.row(0, named=True)
    assert copy["x_QuarantineReason"].startswith(KEY_NOTE) and copy["x_BilledCost"] == D("0.096")
    assert conv.focus["x_RowId"][0] in copy["x_QuarantineReason"]  # names the copy kept
    assert conv.raw_totals["billed"].sum() == D("0.192")  # the raw basis counts both: conserved by quarantine
    assert_gates(conv)


def test_duplicated_line_item_in_one_file(tmp_path):
    dup = cur_row(USAGE, {"identity/LineItemId": "li-dup"})
    conv = convert(write_cur(tmp_path / "cur.csv", [dup, dup]))
    _assert_one_copy_quarantined(conv)
    assert conv.quarantine["x_SourceRow"].to_list() == [2]  # the first delivered is kept


def test_duplicated_line_item_across_files(tmp_path):
    dup = cur_row(USAGE, {"identity/LineItemId": "li-dup"})
    conv = convert([write_cur(tmp_path / "a.csv", [dup]), write_cur(tmp_path / "b.csv", [dup])])
    _assert_one_copy_quarantined(conv)


def test_copies_are_found_when_the_key_hashes_are_counted_in_buckets(tmp_path, monkeypatch):
    """The line-item key hashes are counted per bucket (``common.by_bucket``, a temporary folder when a
    partition makes more than one): buckets of 2 rows for 7 rows find the same copies as one bucket."""
    from focus_platform.sources import common

    dup = cur_row(USAGE, {"identity/LineItemId": "li-dup"})
    others = [cur_row(USAGE, {"identity/LineItemId": f"li-{i}"}) for i in range(5)]
    path = write_cur(tmp_path / "cur.csv", [others[0], dup, *others[1:3], dup, *others[3:]])
    whole = convert(path)
    monkeypatch.setattr(common, "BUCKET_ROWS", 2)
    bucketed = convert(path)
    for conv in (whole, bucketed):
        assert conv.focus.height == 6 and conv.quarantine["x_SourceRow"].to_list() == [5]
        assert conv.quarantine["x_QuarantineReason"][0].startswith(KEY_NOTE)
        assert_gates(conv)


def test_same_line_item_id_in_another_time_interval_is_not_a_copy(tmp_path):
    first = cur_row(USAGE, {"identity/LineItemId": "li-dup"})
    later = cur_row(first, {"identity/TimeInterval": "2023-01-01T01:00:00Z/2023-01-01T02:00:00Z",
                            "lineItem/UsageStartDate": "2023-01-01T01:00:00Z",
                            "lineItem/UsageEndDate": "2023-01-01T02:00:00Z"})
    conv = convert(write_cur(tmp_path / "cur.csv", [first, later]))
    assert conv.focus.height == 2 and conv.quarantine.height == 0


# ---------------------------------------------------------------------------------------------
# Item 10: a declared billing currency
# ---------------------------------------------------------------------------------------------
def test_file_without_currency_column_is_refused_naming_it(tmp_path):
    headers = [h for h in USAGE if h != "lineItem/CurrencyCode"]
    path = write_cur(tmp_path / "no_currency.csv", [USAGE], headers)
    with pytest.raises(SourceFormatError, match=r"required column\(s\) missing: lineItem/CurrencyCode"):
        aws_cur.scan_raw(path, Lineage("t", "aws-cur", "d", None, datetime.now(timezone.utc)))


def test_declared_billing_currency_fills_the_currency_and_is_recorded(tmp_path):
    headers = [h for h in USAGE if h != "lineItem/CurrencyCode"]
    path = write_cur(tmp_path / "no_currency.csv", [USAGE], headers)
    lineage = Lineage("t", "aws-cur", "d", None, datetime.now(timezone.utc), billing_currency="EUR")
    raw = aws_cur.scan_raw(path, lineage).collect()
    assert raw["line_item_currency_code"].to_list() == ["EUR"] and raw["x_DeclaredCurrency"].to_list() == ["EUR"]
    focus = aws_cur.to_focus(raw.lazy()).collect()
    assert focus["BillingCurrency"].to_list() == ["EUR"] and DECLARED_CURRENCY_NOTE in focus["x_SourceChanges"][0]
    conv = Converted(raw, focus, aws_cur.quarantine(raw.lazy()).collect(), aws_cur.raw_totals(raw.lazy()).collect())
    assert conv.raw_totals["BillingCurrency"].to_list() == ["EUR"]
    assert_gates(conv)


def test_currency_column_present_is_not_overridden_by_the_declaration(tmp_path):
    path = write_cur(tmp_path / "with_currency.csv", [USAGE])
    lineage = Lineage("t", "aws-cur", "d", None, datetime.now(timezone.utc), billing_currency="EUR")
    raw = aws_cur.scan_raw(path, lineage).collect()
    assert raw["line_item_currency_code"].to_list() == ["USD"] and "x_DeclaredCurrency" not in raw.columns


# ---------------------------------------------------------------------------------------------
# Item 15: no money through a float
# ---------------------------------------------------------------------------------------------
def test_unused_commitment_unit_price_is_an_exact_decimal_quotient(tmp_path):
    unused_fee = "123456789012.345678901234"
    fee = cur_row(RI_FEE, {"reservation/UnusedRecurringFee": unused_fee,
                           "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": "0",
                           "reservation/UnusedQuantity": "7"})
    conv = convert(write_cur(tmp_path / "cur.csv", [fee]))
    unused = conv.one(CommitmentDiscountStatus="Unused")
    exact = (Decimal(unused_fee) / 7).quantize(Decimal("1e-12"), ROUND_HALF_UP)  # 17636684144.620811271605
    through_float = Decimal(float(unused_fee) / 7.0).quantize(Decimal("1e-12"), ROUND_HALF_UP)
    assert exact != through_float
    assert unused["EffectiveCost"] == D(unused_fee) and unused["PricingQuantity"] == D(7)
    assert unused["ListUnitPrice"] == exact and unused["ContractedUnitPrice"] == exact
    assert_gates(conv)


def test_a_product_or_quotient_beyond_decimal_38_12_is_no_crash(tmp_path):
    """rate x usage of 1e28 and an unused fee over 1e-12 hours would overflow Decimal(38,12): Polars
    fails the whole conversion on that; the rate x usage derivation is then unknown (a recorded
    gap, in the mapping and the totals alike) and the unit price null."""
    rows = [cur_row(COVERED, {"identity/LineItemId": "sp-huge", "savingsPlan/SavingsPlanEffectiveCost": "",
                              "savingsPlan/SavingsPlanRate": "100000000000000", "lineItem/UsageAmount": "100000000000000"}),
            cur_row(RI_FEE, {"identity/LineItemId": "ri-tiny", "reservation/UnusedRecurringFee": "10000000000000",
                             "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": "0",
                             "reservation/UnusedQuantity": "0.000000000001"})]
    conv = convert(write_cur(tmp_path / "cur.csv", rows))
    covered = _by_row(conv)[1]
    assert covered["EffectiveCost"] == D(0)
    assert [n for n in notes(covered) if n.startswith(EFFECTIVE_COST_UNKNOWN)]
    unused = conv.one(CommitmentDiscountStatus="Unused")
    assert unused["EffectiveCost"] == D("10000000000000") and unused["ListUnitPrice"] is None
    assert conv.raw_totals["amortized"].sum() == D("10000000000000")
    checks = check_focus(conv.focus.lazy(), conv.raw_totals, conv.quarantine)
    assert all(c.amortized_ok and c.billed_ok for c in checks.conservation)
