"""Azure cost details → FOCUS: hand-written EA / MCA files in, FOCUS rows out.

Every Azure ChargeType x PricingModel of an actual + amortized pair has a hand-computed expected
FOCUS row; the partial deliveries (actual only, amortized only), header dialects, dates, units,
tags and the bad-input cases run through the real ``scan_raw`` / ``to_focus`` / ``raw_totals`` /
``quarantine`` and the gating checks of ``pipeline.check_focus``.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from focus_platform.pipeline import FocusChecks, check_focus, convert_files
from focus_platform.sources import FORMATS, SourceFormatError, azure_cost, detect_format
from focus_platform.sources.common import Lineage

D = Decimal
LINEAGE = Lineage(source="test", source_format=azure_cost.FORMAT, delivery_id="test-delivery",
                  billing_period=None, ingested_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
EA_HEADER = [
    "BillingAccountId", "BillingAccountName", "BillingPeriodStartDate", "BillingPeriodEndDate", "BillingProfileId",
    "BillingProfileName", "SubscriptionId", "SubscriptionName", "Date", "ProductName", "PartNumber", "MeterId",
    "MeterCategory", "MeterSubCategory", "MeterRegion", "MeterName", "Quantity", "EffectivePrice",
    "CostInBillingCurrency", "UnitPrice", "BillingCurrencyCode", "ResourceLocation", "ConsumedService",
    "ResourceId", "ResourceName", "AdditionalInfo", "Tags", "UnitOfMeasure", "ResourceGroup", "ReservationId",
    "ReservationName", "ProductOrderId", "ProductOrderName", "Term", "PublisherType", "PublisherName", "ChargeType",
    "Frequency", "PayGPrice", "PricingModel", "benefitId", "benefitName",
]
SUB = "1caaa5a3-2b66-438e-8ab4-bce37d518c5d"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-1"
RI_ID = "/providers/Microsoft.Capacity/reservationOrders/49ed0e4d/reservations/7f1c2a3b"
SP_ID = "/providers/Microsoft.BillingBenefits/savingsPlanOrders/5a6b/savingsPlans/9c8d"
BASE = {
    "BillingAccountId": "8611537", "BillingAccountName": "Trey Research", "BillingPeriodStartDate": "09/01/2023",
    "BillingPeriodEndDate": "09/30/2023", "BillingProfileId": "8611537", "BillingProfileName": "Trey Research",
    "SubscriptionId": SUB, "SubscriptionName": "Research", "Date": "09/04/2023",
    "ProductName": "Virtual Machines Dv3/DSv3 Series - D2 v3/D2s v3 - US East", "PartNumber": "AAA-44981",
    "MeterId": "ec8c7b49-9790-4261-b46f-293dabb53fd9", "MeterCategory": "Virtual Machines",
    "MeterSubCategory": "Dv3/DSv3 Series", "MeterRegion": "US East", "MeterName": "D2 v3/D2s v3",
    "Quantity": "24", "EffectivePrice": "0.096", "CostInBillingCurrency": "2.304", "UnitPrice": "0.096",
    "BillingCurrencyCode": "USD", "ResourceLocation": "EastUS", "ConsumedService": "Microsoft.Compute",
    "ResourceId": VM, "ResourceName": "vm-1", "AdditionalInfo": '{"ServiceType":"Standard_D2s_v3","UsageType":"ComputeHR"}',
    "Tags": '"env": "prod","team": "data"', "UnitOfMeasure": "1 Hour", "ResourceGroup": "rg-app",
    "PublisherType": "Azure", "PublisherName": "Microsoft", "ChargeType": "Usage", "Frequency": "UsageBased",
    "PayGPrice": "0.096", "PricingModel": "OnDemand",
}
RI = {"benefitId": RI_ID, "benefitName": "VM_RI", "ReservationId": "7f1c2a3b", "ReservationName": "VM_RI",
      "ProductOrderId": "49ed0e4d", "ProductOrderName": "Reserved VM Instance, Standard_D2s_v3, US East, 1 Year",
      "Term": "12"}
SP = {"benefitId": SP_ID, "benefitName": "Compute_SP", "ProductOrderId": "5a6b",
      "ProductOrderName": "Compute Savings Plan, 1 Year", "Term": "12"}
NO_RESOURCE = {"ResourceId": "", "ResourceName": "", "AdditionalInfo": "", "Tags": "", "ResourceGroup": ""}


def row(*parts: dict[str, str], **overrides: str) -> dict[str, str]:
    out = dict(BASE)
    for part in parts:
        out.update(part)
    out.update(overrides)
    return out


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None, *, bom: bool = False) -> Path:
    header = header or EA_HEADER
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(h, "") for h in header])
    return path


class Converted:
    """One partition (several files) through scan_raw → to_focus / raw_totals / quarantine."""

    def __init__(self, paths: list[Path], lineage: Lineage = LINEAGE, accept_unknown_money: bool = False):
        frames = [azure_cost.scan_raw(str(p), lineage, label=str(p)) for p in paths]
        self.raw_lf = pl.concat(frames, how="diagonal_relaxed")
        self.focus = azure_cost.to_focus(self.raw_lf).collect()
        self.totals = azure_cost.raw_totals(self.raw_lf).collect()
        self.quarantine = azure_cost.quarantine(self.raw_lf).collect()
        self.checks: FocusChecks = check_focus(self.focus.lazy(), self.totals, self.quarantine,
                                               accept_unknown_money=accept_unknown_money)

    def one(self, **where: str) -> dict:
        df = self.focus
        for k, v in where.items():
            df = df.filter(pl.col(k) == v)
        assert df.height == 1, (where, df.height)
        return df.row(0, named=True)

    def notes(self, r: dict) -> str:
        return " | ".join(r["x_SourceChanges"] or [])


def assert_gates(c: Converted) -> None:
    assert c.checks.conformance.defects == {}, c.checks.conformance.summary()
    assert c.checks.problems == [], c.checks.problems


def assert_row(actual: dict, expected: dict) -> None:
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != (D(v) if isinstance(v, str)
                                                                               and _is_money(k) else v)}
    assert not wrong, wrong


MONEY_COLUMNS = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
                 "PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity", "PricingCurrencyEffectiveCost",
                 "PricingCurrencyListUnitPrice", "PricingCurrencyContractedUnitPrice", "x_PricingBlockSize"}


def _is_money(k: str) -> bool:
    return k in MONEY_COLUMNS


# ---------------------------------------------------------------------------------------------
# Every ChargeType x PricingModel of a consistent actual + amortized pair (hand-computed)
# ---------------------------------------------------------------------------------------------
ACTUAL_ROWS = [
    row(),                                                                              # 1 on-demand usage
    row(MeterName="D4 v3 Spot", PricingModel="Spot", Quantity="10", EffectivePrice="0.0384",
        CostInBillingCurrency="0.384", UnitPrice="0.0384", PayGPrice="0.0384", MeterId="f123fd0f-0001"),  # 2 spot
    row(RI, PricingModel="Reservation", Quantity="20", EffectivePrice="0", CostInBillingCurrency="0",
        UnitPrice="0.096", PayGPrice="0"),                                              # 3 RI-covered usage
    row(SP, PricingModel="SavingsPlan", Quantity="5", EffectivePrice="0", CostInBillingCurrency="0",
        MeterName="E4 v4", MeterId="e4e4e4e4-0001", UnitPrice="0.096", PayGPrice="0.096"),  # 4 SP-covered usage
    row(RI, NO_RESOURCE, ChargeType="Purchase", Frequency="Recurring", PricingModel="Reservation", Quantity="1",
        EffectivePrice="46", CostInBillingCurrency="46", UnitPrice="46", PayGPrice="0",
        ConsumedService="Microsoft.Capacity", ResourceId=RI_ID, PublisherName="", Date="09/01/2023"),  # 5
    row(SP, NO_RESOURCE, ChargeType="Purchase", Frequency="OneTime", PricingModel="SavingsPlan", Quantity="1",
        UnitOfMeasure="1/Month", EffectivePrice="1000", CostInBillingCurrency="1000", UnitPrice="1000", PayGPrice="0",
        ConsumedService="Microsoft.BillingBenefits", ResourceId=SP_ID, Date="09/01/2023"),  # 6 SP upfront
    row(RI, NO_RESOURCE, ChargeType="Refund", Frequency="OneTime", PricingModel="Reservation", Quantity="-1",
        EffectivePrice="12.5", CostInBillingCurrency="-12.5", UnitPrice="12.5", PayGPrice="0",
        ConsumedService="Microsoft.Capacity", ResourceId=RI_ID, Date="09/10/2023"),  # 7 reservation refund
    row(NO_RESOURCE, ChargeType="Purchase", Frequency="Recurring", PricingModel="", Quantity="1",
        UnitOfMeasure="1/Month", EffectivePrice="149", CostInBillingCurrency="149", UnitPrice="149",
        PayGPrice="149", PublisherType="Marketplace", PublisherName="Contoso Software", MeterCategory="SaaS",
        MeterSubCategory="Contoso Backup", MeterName="Standard plan", MeterId="abcdabcd-0001",
        ProductName="Contoso Backup - Standard plan", PartNumber="MKT-1", ConsumedService="Microsoft.SaaS"),  # 8
    row(NO_RESOURCE, ChargeType="RoundingAdjustment", Frequency="OneTime", PricingModel="", Quantity="0",
        CostInBillingCurrency="0.003", EffectivePrice="", UnitPrice="", PayGPrice="", MeterId="", MeterName="",
        MeterCategory="", MeterSubCategory="", ProductName="Rounding adjustment", PartNumber="", UnitOfMeasure="",
        ConsumedService=""),  # 9 rounding adjustment
    row(NO_RESOURCE, ChargeType="Tax", Frequency="OneTime", PricingModel="", Quantity="", EffectivePrice="",
        CostInBillingCurrency="5", UnitPrice="", PayGPrice="", ProductName="Sales tax"),  # 10 tax
    row(NO_RESOURCE, ChargeType="Credit", Frequency="OneTime", PricingModel="", Quantity="", EffectivePrice="",
        CostInBillingCurrency="-3", UnitPrice="", PayGPrice="", ProductName="Azure credit"),  # 11 credit
]
AMORTIZED_ROWS = [
    ACTUAL_ROWS[0], ACTUAL_ROWS[1],
    row(RI, PricingModel="Reservation", Quantity="20", EffectivePrice="0.0625", CostInBillingCurrency="1.25",
        UnitPrice="0.096", PayGPrice="0"),
    row(SP, PricingModel="SavingsPlan", Quantity="5", EffectivePrice="0.0624", CostInBillingCurrency="0.312",
        MeterName="E4 v4", MeterId="e4e4e4e4-0001", UnitPrice="0.096", PayGPrice="0.096"),
    row(RI, NO_RESOURCE, ChargeType="UnusedReservation", PricingModel="Reservation", Quantity="4",
        EffectivePrice="0.0625", CostInBillingCurrency="0.25", UnitPrice="0.096", PayGPrice="0",
        ConsumedService="Microsoft.Capacity", ResourceId=RI_ID),
    row(SP, NO_RESOURCE, ChargeType="UnusedSavingsPlan", PricingModel="SavingsPlan", Quantity="1",
        EffectivePrice="0.8", CostInBillingCurrency="0.8", UnitPrice="0.8", PayGPrice="0",
        ConsumedService="Microsoft.BillingBenefits", ResourceId=SP_ID, ResourceLocation="global"),
    ACTUAL_ROWS[7], ACTUAL_ROWS[8], ACTUAL_ROWS[9], ACTUAL_ROWS[10],
]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Converted:
    d = tmp_path_factory.mktemp("pair")
    return Converted([write_csv(d / "ea_actual_202309.csv", ACTUAL_ROWS),
                      write_csv(d / "ea_amortized_202309.csv", AMORTIZED_ROWS)])


def test_pair_is_conformant_conserved_and_has_the_microsoft_row_set(pair):
    assert_gates(pair)
    # all 10 amortized rows + the 3 actual rows without an amortized counterpart (purchases, refund)
    assert pair.focus.height == 13
    assert pair.checks.rows.raw == 21 and pair.checks.rows.dropped == 8
    assert sorted(pair.focus["x_CostDataset"].to_list()) == ["actual"] * 3 + ["amortized"] * 10
    assert set(pair.focus["x_CostMode"]) == {"paired"}
    t = pair.totals.row(0, named=True)
    assert t["billed"] == D("2.304") + D("0.384") + 46 + 1000 - D("12.5") + 149 + D("0.003") + 5 - 3
    assert t["amortized"] == D("2.304") + D("0.384") + D("1.25") + D("0.312") + D("0.25") + D("0.8") + 149 \
        + D("0.003") + 5 - 3
    assert pair.focus["BilledCost"].sum() == t["billed"]
    assert pair.focus["EffectiveCost"].sum() == t["amortized"]


def test_on_demand_usage(pair):
    r = pair.one(x_ChargeType="Usage", x_PricingModel="OnDemand")
    assert_row(r, {"ChargeCategory": "Usage", "PricingCategory": "Standard", "ChargeFrequency": "Usage-Based",
                   "BilledCost": "2.304", "EffectiveCost": "2.304", "ListUnitPrice": "0.096", "ListCost": "2.304",
                   "ContractedCost": "2.304", "PricingQuantity": "24", "PricingUnit": "Hours",
                   "ConsumedQuantity": "24", "ConsumedUnit": "Hours", "CommitmentDiscountId": None,
                   "BillingAccountId": "8611537", "BillingAccountType": "Enrollment", "SubAccountId": SUB,
                   "RegionId": "eastus", "RegionName": "East US", "ServiceName": "Virtual Machines",
                   "ServiceCategory": "Compute", "ResourceType": "Virtual machine", "ResourceName": "vm-1",
                   "Tags": '{"env": "prod","team": "data"}', "SkuId": "AAA-44981", "x_UsageType": "ComputeHR"})
    assert r["ChargePeriodStart"] == datetime(2023, 9, 4, tzinfo=timezone.utc)
    assert r["ChargePeriodEnd"] == datetime(2023, 9, 5, tzinfo=timezone.utc)
    assert r["BillingPeriodEnd"] == datetime(2023, 10, 1, tzinfo=timezone.utc)
    assert r["x_PairedRowId"] is not None  # the actual row it replaces


def test_spot_usage_is_dynamic(pair):
    r = pair.one(x_PricingModel="Spot")
    assert_row(r, {"ChargeCategory": "Usage", "PricingCategory": "Dynamic", "BilledCost": "0.384",
                   "EffectiveCost": "0.384"})


def test_reservation_covered_usage_billed_zero_effective_amortized(pair):
    r = pair.one(x_ChargeType="Usage", x_PricingModel="Reservation")
    assert_row(r, {"ChargeCategory": "Usage", "PricingCategory": "Committed", "BilledCost": "0",
                   "EffectiveCost": "1.25", "CommitmentDiscountId": RI_ID, "CommitmentDiscountName": "VM_RI",
                   "CommitmentDiscountStatus": "Used", "CommitmentDiscountType": "Reservation",
                   "CommitmentDiscountCategory": "Usage", "CommitmentDiscountQuantity": "20",
                   "CommitmentDiscountUnit": "Hours", "ListUnitPrice": "0.096", "ContractedUnitPrice": "0.096",
                   "ListCost": "1.92", "x_CostDataset": "amortized"})
    assert "UnitPrice used" in pair.notes(r)  # Azure writes PayGPrice 0 on covered usage


def test_savings_plan_covered_usage(pair):
    r = pair.one(x_ChargeType="Usage", x_PricingModel="SavingsPlan")
    assert_row(r, {"BilledCost": "0", "EffectiveCost": "0.312", "CommitmentDiscountStatus": "Used",
                   "CommitmentDiscountType": "Savings Plan", "CommitmentDiscountCategory": "Spend",
                   "CommitmentDiscountQuantity": "0.312", "CommitmentDiscountUnit": "USD",
                   "PricingCategory": "Committed"})


def test_unused_reservation_and_savings_plan_are_unused_usage(pair):
    ri = pair.one(x_ChargeType="UnusedReservation")
    assert_row(ri, {"ChargeCategory": "Usage", "CommitmentDiscountStatus": "Unused", "BilledCost": "0",
                    "EffectiveCost": "0.25", "ConsumedQuantity": None, "ConsumedUnit": None,
                    "PricingQuantity": "4", "CommitmentDiscountType": "Reservation", "PricingCategory": "Committed",
                    "ServiceName": "Azure Reservations"})
    assert "unused commitment" in pair.notes(ri)
    sp = pair.one(x_ChargeType="UnusedSavingsPlan")
    assert_row(sp, {"ChargeCategory": "Usage", "CommitmentDiscountStatus": "Unused", "BilledCost": "0",
                    "EffectiveCost": "0.8", "CommitmentDiscountType": "Savings Plan", "RegionId": "global",
                    "ServiceName": "Azure Savings Plan for Compute"})


def test_reservation_purchase_effective_zero(pair):
    r = pair.one(x_ChargeType="Purchase", x_PricingModel="Reservation")
    assert_row(r, {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "Recurring",
                   "PricingCategory": "Standard", "BilledCost": "46", "EffectiveCost": "0",
                   "PricingCurrencyEffectiveCost": "0", "CommitmentDiscountId": RI_ID,
                   "CommitmentDiscountStatus": None, "CommitmentDiscountQuantity": "1", "ListUnitPrice": "46",
                   "ListCost": "46", "x_CostDataset": "actual", "x_PairedRowId": None, "PublisherName": "Microsoft"})
    assert "EffectiveCost: 0, commitment purchase" in pair.notes(r)


def test_savings_plan_upfront_purchase(pair):
    r = pair.one(x_ChargeType="Purchase", x_PricingModel="SavingsPlan")
    assert_row(r, {"ChargeFrequency": "One-Time", "BilledCost": "1000", "EffectiveCost": "0",
                   "CommitmentDiscountType": "Savings Plan", "CommitmentDiscountQuantity": "1000",
                   "CommitmentDiscountUnit": "USD", "PricingUnit": "Units/Month"})


def test_refund_is_a_purchase_correction(pair):
    r = pair.one(x_ChargeType="Refund")
    assert_row(r, {"ChargeCategory": "Purchase", "ChargeClass": "Correction", "BilledCost": "-12.5",
                   "EffectiveCost": "0", "CommitmentDiscountQuantity": None, "ChargeFrequency": "One-Time"})


def test_marketplace_purchase_keeps_its_effective_cost(pair):
    r = pair.one(x_PublisherType="Marketplace")
    assert_row(r, {"ChargeCategory": "Purchase", "ChargeFrequency": "Recurring", "BilledCost": "149",
                   "EffectiveCost": "149", "CommitmentDiscountId": None, "PublisherName": "Contoso Software",
                   "PricingCategory": "Standard", "PricingUnit": "Units/Month"})


def test_rounding_adjustment_tax_and_credit(pair):
    adj = pair.one(x_ChargeType="RoundingAdjustment")
    assert_row(adj, {"ChargeCategory": "Adjustment", "BilledCost": "0.003", "EffectiveCost": "0.003",
                     "ListCost": "0.003", "ContractedCost": "0.003", "PricingQuantity": None, "ListUnitPrice": None,
                     "PricingCategory": None})
    assert "Adjustment" in pair.notes(adj)
    tax = pair.one(x_ChargeType="Tax")
    assert_row(tax, {"ChargeCategory": "Tax", "BilledCost": "5", "EffectiveCost": "5", "ListUnitPrice": None,
                     "PricingQuantity": None, "SkuId": None, "PricingCategory": None})
    credit = pair.one(x_ChargeType="Credit")
    assert_row(credit, {"ChargeCategory": "Credit", "BilledCost": "-3", "EffectiveCost": "-3", "ListCost": "-3"})


# ---------------------------------------------------------------------------------------------
# Partial deliveries and contradictions
# ---------------------------------------------------------------------------------------------
def test_actual_only_mode_is_recorded_per_row(tmp_path):
    c = Converted([write_csv(tmp_path / "actual.csv", ACTUAL_ROWS)])
    assert_gates(c)
    assert set(c.focus["x_CostMode"]) == {"actual-only"} and c.focus.height == 11
    purchase = c.one(x_ChargeType="Purchase", x_PricingModel="Reservation")
    assert purchase["EffectiveCost"] == 0 and purchase["BilledCost"] == 46
    assert "without its amortized file" in c.notes(purchase)
    covered = c.one(x_ChargeType="Usage", x_PricingModel="Reservation")
    assert covered["EffectiveCost"] == 0 and "amortized share is not in this data" in c.notes(covered)
    on_demand = c.one(x_PricingModel="OnDemand")
    assert on_demand["EffectiveCost"] == on_demand["BilledCost"] == D("2.304")
    assert not [n for n in on_demand["x_SourceChanges"] if "Cost" in n]
    t = c.totals.row(0, named=True)
    assert t["amortized"] == c.focus["EffectiveCost"].sum() == t["billed"] - 46 - 1000 + D("12.5")


def test_amortized_only_mode_is_recorded_per_row(tmp_path):
    c = Converted([write_csv(tmp_path / "amortized.csv", AMORTIZED_ROWS)])
    assert_gates(c)
    assert set(c.focus["x_CostMode"]) == {"amortized-only"} and c.focus.height == 10
    for charge_type, model in [("Usage", "Reservation"), ("Usage", "SavingsPlan"), ("UnusedReservation", None),
                               ("UnusedSavingsPlan", None)]:
        where = {"x_ChargeType": charge_type} | ({"x_PricingModel": model} if model else {})
        r = c.one(**where)
        assert r["BilledCost"] == 0 and r["EffectiveCost"] > 0
        assert "without its actual file" in c.notes(r)
    t = c.totals.row(0, named=True)
    assert t["billed"] == c.focus["BilledCost"].sum() == D("2.304") + D("0.384") + 149 + D("0.003") + 5 - 3


def test_unlabelled_files_are_told_apart_by_content(tmp_path):
    """No 'actual'/'amortized' in the names: unused rows mean amortized, purchases mean actual."""
    c = Converted([write_csv(tmp_path / "export-a.csv", ACTUAL_ROWS),
                   write_csv(tmp_path / "export-b.csv", AMORTIZED_ROWS)])
    assert_gates(c)
    assert set(c.focus["x_CostMode"]) == {"paired"} and c.focus.height == 13


def test_contradicting_label_or_mixed_file_is_refused(tmp_path):
    with pytest.raises(SourceFormatError, match=r"actual_x\.csv.*says actual cost.*UnusedReservation"):
        azure_cost.scan_raw(str(write_csv(tmp_path / "actual_x.csv", AMORTIZED_ROWS)), LINEAGE)
    with pytest.raises(SourceFormatError, match=r"amortized_x\.csv.*says amortized cost.*Purchase/Refund"):
        azure_cost.scan_raw(str(write_csv(tmp_path / "amortized_x.csv", ACTUAL_ROWS)), LINEAGE)
    with pytest.raises(SourceFormatError, match=r"mixed\.csv: the file mixes"):
        azure_cost.scan_raw(str(write_csv(tmp_path / "mixed.csv", ACTUAL_ROWS + AMORTIZED_ROWS[4:5])), LINEAGE)


def test_pair_with_amortized_rows_missing_from_actual_conserves_both_totals(tmp_path):
    """An amortized on-demand row without its actual row: BilledCost 0 (noted), both totals exact;
    an actual on-demand row without its amortized row: EffectiveCost 0 (noted)."""
    extra = row(Quantity="1", CostInBillingCurrency="0.096", Date="09/05/2023")
    only_actual = row(Quantity="2", CostInBillingCurrency="0.192", Date="09/06/2023")
    c = Converted([write_csv(tmp_path / "a_actual.csv", ACTUAL_ROWS + [only_actual]),
                   write_csv(tmp_path / "a_amortized.csv", AMORTIZED_ROWS + [extra])])
    assert_gates(c)
    on_day = pl.col("ChargePeriodStart").dt.day()
    r = c.focus.filter((pl.col("x_CostDataset") == "amortized") & (on_day == 5)).row(0, named=True)
    assert r["BilledCost"] == 0 and r["EffectiveCost"] == D("0.096")
    assert "no matching row in the actual-cost file" in c.notes(r)
    r = c.focus.filter((pl.col("x_CostDataset") == "actual") & (on_day == 6)).row(0, named=True)
    assert r["BilledCost"] == D("0.192") and r["EffectiveCost"] == 0
    assert "no matching row in the amortized-cost file" in c.notes(r)


def test_duplicate_charges_pair_one_to_one(tmp_path):
    """Two identical usage rows in each file: two FOCUS rows, two dropped actual rows."""
    c = Converted([write_csv(tmp_path / "d_actual.csv", [row(), row()]),
                   write_csv(tmp_path / "d_amortized.csv", [row(), row()])])
    assert_gates(c)
    assert c.focus.height == 2 and c.checks.rows.dropped == 2
    assert c.focus["x_PairedRowId"].n_unique() == 2


def test_label_detection():
    f = azure_cost.dataset_of_label
    assert f("azure-ea/actual/20240101-20240131/run-1/part_0_0001.csv") == "actual"
    assert f("azure-ea/amortized/20240101-20240131/run-1/part_0_0001.csv") == "amortized"
    assert f("x/ftk_EA_AmortizedCost_Small.csv") == "amortized"
    assert f("exports/ActualCost_2024.csv") == "actual"
    assert f("azure-ea/2024-01/costs.csv") is None


# ---------------------------------------------------------------------------------------------
# Agreements, dialects, dates, units, tags
# ---------------------------------------------------------------------------------------------
MCA_HEADER = ["invoiceId", "billingAccountId", "billingAccountName", "billingProfileId", "billingProfileName",
              "billingPeriodStartDate", "billingPeriodEndDate", "date", "meterId", "meterName", "meterCategory",
              "ProductId", "product", "subscriptionId", "subscriptionName", "ResourceId", "resourceLocation",
              "quantity", "unitOfMeasure", "chargeType", "billingCurrency", "pricingCurrency",
              "costInBillingCurrency", "costInPricingCurrency", "exchangeRatePricingToBilling", "effectivePrice",
              "PayGPrice", "unitPrice", "paygCostInBillingCurrency", "consumedService", "tags", "frequency",
              "pricingModel", "publisherType", "publisherName"]
MCA_ROW = {"invoiceId": "G012345678", "billingAccountId": "aaaa-bbbb:cccc_2019-05-31", "billingAccountName": "Fabrikam",
           "billingProfileId": "NF5V-BI6B-BG7-PGB", "billingProfileName": "Fabrikam EU",
           "billingPeriodStartDate": "", "billingPeriodEndDate": "", "date": "08/01/2023",
           "meterId": "469a7d8f-36f1-4a99-a884-6eb97643be2c", "meterName": "All Other Operations",
           "meterCategory": "Storage", "ProductId": "DZH318Z0BNZJ0058", "product": "Blob Storage - Hot LRS - US East",
           "subscriptionId": SUB, "subscriptionName": "Dev",
           "ResourceId": f"/subscriptions/{SUB}/resourceGroups/RG1/providers/Microsoft.Storage/storageAccounts/sa1",
           "resourceLocation": "eastus", "quantity": "0.0004", "unitOfMeasure": "10K", "chargeType": "Usage",
           "billingCurrency": "EUR", "pricingCurrency": "USD", "costInBillingCurrency": "0.0000018",
           "costInPricingCurrency": "0.000002", "exchangeRatePricingToBilling": "0.9", "effectivePrice": "0.005",
           "PayGPrice": "0.005", "unitPrice": "0.005", "paygCostInBillingCurrency": "0.0000018",
           "consumedService": "Microsoft.Storage", "tags": '{"project":"p1"}', "frequency": "UsageBased",
           "pricingModel": "OnDemand", "publisherType": "Microsoft", "publisherName": "Microsoft"}


def test_mca_billing_profile_is_the_billing_account_and_block_units(tmp_path):
    c = Converted([write_csv(tmp_path / "mca.csv", [MCA_ROW], MCA_HEADER)])
    assert_gates(c)
    r = c.focus.row(0, named=True)
    assert_row(r, {"BillingAccountId": "NF5V-BI6B-BG7-PGB", "BillingAccountName": "Fabrikam EU",
                   "BillingAccountType": "Billing Profile", "x_BillingAccountId": "aaaa-bbbb:cccc_2019-05-31",
                   "x_BillingAccountAgreement": "MCA", "InvoiceId": "G012345678", "BillingCurrency": "EUR",
                   "PricingCurrency": "USD", "PricingQuantity": "0.0004", "PricingUnit": "10000 Units",
                   "ConsumedQuantity": "4", "ConsumedUnit": "Units", "x_PricingBlockSize": "10000",
                   "PricingCurrencyListUnitPrice": "0.005", "ListUnitPrice": "0.0045",
                   "PricingCurrencyEffectiveCost": "0.000002", "EffectiveCost": "0.0000018",
                   "SkuId": "DZH318Z0BNZJ0058", "Tags": '{"project":"p1"}', "ServiceName": "Storage Accounts"})
    assert r["BillingPeriodStart"] == datetime(2023, 8, 1, tzinfo=timezone.utc)
    assert r["BillingPeriodEnd"] == datetime(2023, 9, 1, tzinfo=timezone.utc)
    assert "billing period empty in the export" in c.notes(r)
    assert "camelCase" in r["x_SourceFormatVersion"]


def test_header_dialects_map_to_the_same_canonical_names():
    n = azure_cost.canonical_names
    assert n(["\ufeffSubscriptionGuid", "PreTaxCost", "UsageDateTime", "Currency"]) == {
        "\ufeffSubscriptionGuid": "SubscriptionId", "PreTaxCost": "CostInBillingCurrency", "UsageDateTime": "Date",
        "Currency": "BillingCurrency"}
    assert n(["Abonnement-GUID (SubscriptionGuid)", "Maßeinheit (UnitOfMeasure)"]) == {
        "Abonnement-GUID (SubscriptionGuid)": "SubscriptionId", "Maßeinheit (UnitOfMeasure)": "UnitOfMeasure"}
    assert n(["costInBillingCurrency", "billingCurrency", "benefitId"]) == {
        "costInBillingCurrency": "CostInBillingCurrency", "billingCurrency": "BillingCurrency",
        "benefitId": "BenefitId"}
    # the canonical column wins, the older synonym keeps its own name
    assert n(["Cost", "CostInBillingCurrency"]) == {"Cost": "Cost", "CostInBillingCurrency": "CostInBillingCurrency"}
    with pytest.raises(SourceFormatError, match="both mean Date"):
        n(["Date", "date"])


def test_older_ea_names_and_bom_convert_like_current_ones(tmp_path):
    older = ["BillingAccountId", "BillingAccountName", "SubscriptionId", "SubscriptionName", "Date", "Product",
             "MeterId", "MeterCategory", "MeterName", "Quantity", "Cost", "BillingCurrency", "UnitOfMeasure",
             "ResourceLocation", "ConsumedService", "ResourceId", "ChargeType", "PricingModel", "PayGPrice",
             "UnitPrice", "EffectivePrice", "InvoiceSection", "Frequency"]
    r = dict(BASE, Product=BASE["ProductName"], Cost="2.304", BillingCurrency="USD", InvoiceSection="ACM")
    c = Converted([write_csv(tmp_path / "older.csv", [r], older, bom=True),
                   write_csv(tmp_path / "current.csv", [row(SubscriptionId="other-sub")])])
    assert_gates(c)
    assert c.focus.height == 2 and c.focus["BilledCost"].to_list() == [D("2.304")] * 2
    assert c.focus["ChargeDescription"].n_unique() == 1
    raw = c.raw_lf.collect()
    assert "older EA names" in raw["x_SourceFormatVersion"][0]
    assert not any("\ufeff" in name for name in raw.columns)


def test_date_formats(tmp_path):
    rows = [row(Date=d, Quantity=str(i + 1), CostInBillingCurrency="1")
            for i, d in enumerate(["9/2/2023", "09/21/2023", "2023-09-22", "2023-09-23T00:00:00.0000000Z"])]
    c = Converted([write_csv(tmp_path / "dates.csv", rows)])
    assert_gates(c)
    starts = c.focus.sort("PricingQuantity")["ChargePeriodStart"].dt.strftime("%Y-%m-%d").to_list()
    assert starts == ["2023-09-02", "2023-09-21", "2023-09-22", "2023-09-23"]


def test_units_and_block_sizes(tmp_path):
    rows = [row(UnitOfMeasure="100 Hours", Quantity="0.24", PayGPrice="2.5", UnitPrice="2.5",
                CostInBillingCurrency="0.6"),
            row(UnitOfMeasure="3 Widgets", Quantity="2", PayGPrice="1", UnitPrice="1", CostInBillingCurrency="2",
                MeterId="m-5gb"),
            row(UnitOfMeasure="0 Unassigned", Quantity="1", PayGPrice="0", UnitPrice="0", CostInBillingCurrency="0",
                MeterId="m-unassigned")]
    c = Converted([write_csv(tmp_path / "units.csv", rows)])
    assert_gates(c)
    hours = c.one(x_UnitOfMeasure="100 Hours")
    assert_row(hours, {"PricingQuantity": "0.24", "PricingUnit": "100 Hours", "ConsumedQuantity": "24",
                       "ConsumedUnit": "Hours", "ListCost": "0.6"})
    parsed = c.one(x_UnitOfMeasure="3 Widgets")
    assert_row(parsed, {"PricingUnit": "3 Widgets", "ConsumedQuantity": "6", "ConsumedUnit": "Widgets"})
    assert "not in the pricing-units table" in c.notes(parsed)
    placeholder = c.one(x_UnitOfMeasure="0 Unassigned")
    assert placeholder["PricingUnit"] is None and placeholder["PricingQuantity"] == 1
    assert "R-PricingUnit-1" in placeholder["x_ProviderDataGaps"]


def test_regions_and_services_from_the_lookups(tmp_path):
    rows = [row(ResourceLocation=loc, Quantity=str(i + 1), CostInBillingCurrency="1")
            for i, loc in enumerate(["EastUS2", "US East 2", "eastus2", "Atlantis"])]
    c = Converted([write_csv(tmp_path / "regions.csv", rows)])
    assert_gates(c)
    df = c.focus.sort("PricingQuantity")
    assert df["RegionId"].to_list() == ["eastus2"] * 3 + ["atlantis"]
    assert df["RegionName"].to_list() == ["East US 2"] * 3 + ["Atlantis"]
    assert "not in the regions table" in c.notes(df.row(3, named=True))
    assert set(df["ServiceName"]) == {"Virtual Machines"} and set(df["ServiceSubcategory"]) == {"Virtual Machines"}


def test_tags_with_and_without_braces_and_additional_info(tmp_path):
    rows = [row(Tags='"a": "1","b": "2"', Quantity="1", CostInBillingCurrency="1"),
            row(Tags='{"a": "1"}', Quantity="2", CostInBillingCurrency="1"),
            row(Tags="{}", Quantity="3", CostInBillingCurrency="1"),
            row(Tags='"a": "1", broken', Quantity="4", CostInBillingCurrency="1",
                AdditionalInfo='{"VMCapacityReservationId":"f8b42087","UsageType":"ComputeCR"}')]
    c = Converted([write_csv(tmp_path / "tags.csv", rows)])
    assert_gates(c)
    df = c.focus.sort("PricingQuantity")
    assert df["Tags"].to_list() == ['{"a": "1","b": "2"}', '{"a": "1"}', None, None]
    broken = df.row(3, named=True)
    assert "not a JSON object" in c.notes(broken)  # row kept, raw value stays in the raw table
    assert broken["x_AdditionalInfo"] == '{"VMCapacityReservationId":"f8b42087","UsageType":"ComputeCR"}'
    assert broken["CapacityReservationId"] == "f8b42087" and broken["CapacityReservationStatus"] == "Used"
    assert c.raw_lf.collect()["Tags"][3] == '"a": "1", broken'


def test_legacy_payg_usage_details_bill_to_the_subscription(tmp_path):
    header = ["SubscriptionGuid", "ResourceGroup", "ResourceLocation", "UsageDateTime", "MeterCategory", "MeterId",
              "MeterName", "UsageQuantity", "ResourceRate", "PreTaxCost", "ConsumedService", "InstanceId", "Tags",
              "Currency", "UnitOfMeasure"]
    r = {"SubscriptionGuid": SUB, "ResourceGroup": "rg", "ResourceLocation": "US East", "UsageDateTime": "2021-02-02",
         "MeterCategory": "Load Balancer", "MeterId": "27827eb0", "MeterName": "Included LB Rules",
         "UsageQuantity": "3", "ResourceRate": "0.025", "PreTaxCost": "0.075", "ConsumedService": "Microsoft.Network",
         "InstanceId": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb",
         "Tags": '{"project":"p1"}', "Currency": "USD", "UnitOfMeasure": "1 Hour"}
    c = Converted([write_csv(tmp_path / "payg.csv", [r], header)])
    assert_gates(c)
    f = c.focus.row(0, named=True)
    assert_row(f, {"BillingAccountId": SUB, "BillingAccountType": "Subscription", "ChargeCategory": "Usage",
                   "ListUnitPrice": "0.025", "ResourceType": "Load balancer", "ServiceName": "Load Balancer",
                   "RegionId": "eastus"})
    assert "R-SubAccountName-1" in f["x_ProviderDataGaps"]
    assert "legacy" in c.raw_lf.collect()["x_SourceFormatVersion"][0]


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_missing_required_column_names_file_and_column(tmp_path):
    header = [h for h in EA_HEADER if h != "CostInBillingCurrency"]
    path = write_csv(tmp_path / "no-cost.csv", [row()], header)
    with pytest.raises(SourceFormatError, match=r"no-cost\.csv.*CostInBillingCurrency / Cost / PreTaxCost"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))
    with pytest.raises(SourceFormatError, match=r"no-cost\.csv.*CostInBillingCurrency"):
        azure_cost.scan_raw(str(path), LINEAGE)


def test_unknown_extra_columns_are_kept_as_x_columns(tmp_path):
    path = write_csv(tmp_path / "extra.csv", [row(MyTeamField="blue")], EA_HEADER + ["MyTeamField"])
    c = Converted([path])
    assert_gates(c)
    assert c.raw_lf.collect()["MyTeamField"].to_list() == ["blue"]
    assert c.focus["x_MyTeamField"].to_list() == ["blue"]
    assert list(c.focus.columns).index("x_MyTeamField") > list(c.focus.columns).index("x_AdditionalInfo")


def test_mixed_currencies_in_one_file_give_per_currency_totals(tmp_path):
    rows = [row(), row(BillingCurrencyCode="EUR", CostInBillingCurrency="2.1", Quantity="22"),
            row(BillingCurrencyCode="EUR", CostInBillingCurrency="1", Quantity="10")]
    c = Converted([write_csv(tmp_path / "currencies.csv", rows)])
    assert_gates(c)
    totals = {r["BillingCurrency"]: r["billed"] for r in c.totals.iter_rows(named=True)}
    assert totals == {"USD": D("2.304"), "EUR": D("3.1")}
    assert c.checks.totals["EUR"]["BilledCost"] == "3.100000000000"


def test_zero_cost_free_tier_rows_are_kept(tmp_path):
    c = Converted([write_csv(tmp_path / "free.csv", [row(CostInBillingCurrency="0", EffectivePrice="0",
                                                         UnitPrice="0", PayGPrice="0")])])
    assert_gates(c)
    r = c.focus.row(0, named=True)
    assert r["BilledCost"] == r["EffectiveCost"] == r["ListCost"] == 0 and r["PricingQuantity"] == 24


def test_bad_values_go_to_quarantine_with_the_reason(tmp_path):
    rows = [row(), row(CostInBillingCurrency="abc", Quantity="2"), row(Date="31/12/2023", Quantity="3"),
            row(BillingCurrencyCode="MC", Quantity="4"), row(BillingAccountId="", BillingProfileId="",
                                                             SubscriptionId="", Quantity="5")]
    c = Converted([write_csv(tmp_path / "bad.csv", rows)], accept_unknown_money=True)
    assert_gates(c)  # 'abc' is unknown money, accepted deliberately here
    assert not Converted([tmp_path / "bad.csv"]).checks.billed_ok
    assert c.focus.height == 1
    reasons = c.quarantine.sort("x_SourceRow")["x_QuarantineReason"].to_list()
    assert "CostInBillingCurrency: 'abc' is not a number" in reasons[0]
    assert "Date: '31/12/2023' is not a date" in reasons[1]
    assert "BillingCurrency 'MC' is not an ISO 4217 currency code" in reasons[2]
    assert "no billing account" in reasons[3]
    assert c.checks.rows.quarantined == 4 and c.checks.rows.ok


def test_empty_and_ragged_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceFormatError, match="empty.csv"):
        convert_files([str(empty)], str(tmp_path / "o.parquet"))
    ragged = write_csv(tmp_path / "ragged.csv", [row(), row()])
    lines = ragged.read_text().splitlines()
    lines[2] += ",surplus"
    ragged.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceFormatError, match="ragged.csv.*data row 2"):
        azure_cost.scan_raw(str(ragged), LINEAGE)


def test_format_is_registered_and_detected(tmp_path):
    fmt = FORMATS[azure_cost.FORMAT]
    assert fmt.raw_table == "raw_azure_cost_details"
    assert detect_format(str(write_csv(tmp_path / "x.csv", [row()]))) == azure_cost.FORMAT
    near = azure_cost.near_miss(["SubscriptionId", "MeterId", "Date", "Quantity"])
    assert near and "CostInBillingCurrency / Cost / PreTaxCost" in near


def test_output_columns_are_focus_then_lineage_then_azure(pair):
    from focus_platform.spec.columns import focus_schema
    names = list(pair.focus.columns)
    assert names[:len(focus_schema())] == list(focus_schema())
    assert names[len(focus_schema()):] == list(azure_cost.AZURE_X_COLUMNS)
    assert pair.focus.schema["BilledCost"] == pl.Decimal(38, 12)
    assert pair.focus["x_BillingPeriod"].unique().to_list() == ["2023-09"]


# ---------------------------------------------------------------------------------------------
# The demo delivery of the embedded landing zone, through discovery, raw ingest and publish
# ---------------------------------------------------------------------------------------------
def test_demo_delivery_ingests_and_publishes(tmp_path):
    from focus_platform.landing.config import load_sources
    from focus_platform.landing.zone import LocalStore, discover_deliveries
    from focus_platform.pipeline import ingest_delivery, publish_focus
    from focus_platform.warehouse.delta import Warehouse
    from tests.conftest import SAMPLE_LANDING

    store = LocalStore(SAMPLE_LANDING)
    source = next(s for s in load_sources(SAMPLE_LANDING) if s.name == "azure-ea")  # two export streams
    delivery = discover_deliveries(store, source)["2024-01"]
    assert sorted(azure_cost.dataset_of_label(k) for k in delivery.files) == ["actual", "amortized"]
    warehouse = Warehouse(str(tmp_path / "wh"))
    ingested = ingest_delivery(warehouse, store, source, delivery)
    assert ingested.rows == 300
    published = publish_focus(warehouse, source, "2024-01")
    checks = published.checks
    assert checks.problems == [] and published.quarantine_rows == 0
    assert (checks.rows.raw, checks.rows.focus, checks.rows.dropped) == (300, 182, 118)
    assert checks.totals == {"USD": {"BilledCost": "1381.356555930100", "EffectiveCost": "419.436555930100"}}


def test_pairing_in_buckets_of_charges_gives_the_same_rows(tmp_path, monkeypatch):
    """Pairs are formed, and dropped actual rows counted, per bucket of charges (by a hash of the
    charge): buckets of 4 raw rows (seven for these 27 rows, duplicates and unmatched rows included)
    give the same FOCUS rows, notes, totals and row counts as one bucket; the buckets written apart
    for it leave nothing in the temporary folder."""
    import tempfile

    from focus_platform.sources import common

    extra = [row(Quantity="1", CostInBillingCurrency="0.096", Date="09/05/2023"), row(), row()]
    files = [write_csv(tmp_path / "b_actual.csv", ACTUAL_ROWS + [row(), row()]),
             write_csv(tmp_path / "b_amortized.csv", AMORTIZED_ROWS + extra)]
    whole = Converted(files)
    monkeypatch.setattr(common, "BUCKET_ROWS", 4)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    bucketed = Converted(files)
    assert list(temporary.iterdir()) == []
    assert_gates(bucketed)
    key = ["x_RowId"]
    drop = ["x_IngestedAt"]
    assert_frame_equal(bucketed.focus.drop(drop).sort(key), whole.focus.drop(drop).sort(key))
    assert bucketed.checks.rows == whole.checks.rows and bucketed.checks.rows.dropped == 10
    assert_frame_equal(bucketed.totals.sort("BillingAccountId"), whole.totals.sort("BillingAccountId"))


def test_pairs_are_found_by_position_only_where_the_row_key_agrees():
    """The mapping looks a raw row's match up by its position among the raw rows; a match whose
    row key is not the row's (the rows numbered differently from the pairing's pass) is not taken,
    so no row is dropped or repriced by another row's match (the gates then count the difference)."""
    from decimal import Decimal

    from focus_platform.sources.azure_cost.mapping import (
        _DROPPED_SCHEMA,
        _PAIR_SCHEMA,
        _Pairing,
    )

    pairs = pl.DataFrame({"__pos": [1, 5], "__rk": [11, 55], "__pair_row": ["actual-3", "actual-4"],
                          "__pair_cost": [Decimal("1.5"), Decimal("2")]}, schema=_PAIR_SCHEMA)
    dropped = pl.DataFrame({"__pos": [3, 4], "__rk": [33, 44]}, schema=_DROPPED_SCHEMA)
    pairing = _Pairing(pl.DataFrame(), pairs, dropped, rows=6)
    rows = pl.LazyFrame({"__pos": [0, 1, 2, 3, 4, 5], "__rk": [10, 11, 12, 33, 99, 98]},
                        schema={"__pos": pl.UInt32, "__rk": pl.UInt64})
    got = rows.with_columns(pairing.matched()).collect(engine="streaming")
    assert got["__paired"].to_list() == [False, True, False, False, False, False]
    assert got["__pair_row"].to_list() == [None, "actual-3", None, None, None, None]
    assert got["__pair_cost"].to_list() == [None, Decimal("1.5"), None, None, None, None]
    assert got["__dropped"].to_list() == [False, False, False, True, False, False]
    nothing = _Pairing(pl.DataFrame(), pairs.clear(), dropped.clear(), rows=0)
    got = rows.with_columns(nothing.matched()).collect(engine="streaming")
    assert got["__paired"].to_list() == [False] * 6 and got["__dropped"].to_list() == [False] * 6
