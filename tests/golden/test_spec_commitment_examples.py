"""Golden tests: the FOCUS 1.2 specification's commitment-discount examples, re-enacted with AWS CUR input.

Source: FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, tag v1.2, ``specification/data/commitment_discount_scenarios``
and ``specification/data/commitment_discount_flexibility`` (CC BY 4.0). The example files are FOCUS
*outputs* of a fictional provider, column subsets, with defects. For each one:

1. the original file is kept byte for byte, and a cleaned copy (``*.cleaned.csv``) fixes its defects;
   ``test_cleaned_copy_is_original_plus_listed_fixes`` proves the cleaned copy is the original plus
   exactly the fixes listed in ``CELL_FIXES`` / ``HEADER_FIXES`` (also listed in the fixtures README);
2. a hand-written AWS CUR (``*.aws-cur.csv``, legacy ``category/Name`` headers) describes the same
   economic situation (a savings plan for the spend-based scenarios, an EC2 reserved instance for the
   usage-based flexibility scenarios);
3. the CUR is converted (``scan_raw`` -> ``to_focus``) and the example's columns that mean something for
   AWS are compared row by row. Where AWS legitimately differs from the generic example, the test says
   so next to the assertion and asserts the AWS value instead (also listed in the fixtures README).

Spend-based examples use ``$1.00/hour`` of commitment; their AWS equivalent is a 1-year Compute Savings
Plan with a 1.00 USD hourly commitment. The usage-based flexibility examples map to EC2 RIs (t3 family,
AWS normalization factors small 1, medium 2, large 4, xlarge 8); "without flexibility" is a zonal RI
(AZ-scoped RIs have no instance size flexibility). AWS bills an RI once a month (one RIFee row for all
hours of the month); the fixtures use a one-hour "month slice" (RIFee for 1 hour) so that the amounts
equal the examples' hourly amounts.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers_aws import Converted, D, assert_gates, assert_row, convert, ts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spec-1.2-examples"
SC = "commitment_discount_scenarios"
FX = "commitment_discount_flexibility"

SP_ARN = "arn:aws:savingsplans::111122223333:savingsplan/3f2a9c1e-0000-4000-8000-000000000001"
RI_ARN = "arn:aws:ec2:us-east-1:111122223333:reserved-instances/a1b2c3d4-0000-4000-8000-000000000001"
# Example placeholder -> the id the AWS fixture uses for the same thing
SP_IDS = {"<my-commitment-discount-id>": SP_ARN, "<my-resource-id>": "i-0a1b2c3d4e5f60001"}
RI_IDS = {
    "<my-commitment-discount-id>": RI_ARN,
    "<my-large-vm-id>": "i-0a1b2c3d4e5f6large",
    "<my-medium-vm-id>": "i-0a1b2c3d4e5f6medium",
    # 2-resources example: two t3.large instances stand for its two VM_MEDIUM resources (see README)
    "<my-medium-vm-id-1>": "i-0a1b2c3d4e5f6large",
    "<my-medium-vm-id-2>": "i-0a1b2c3d4e5f6large2",
}
# The examples write the singular "Hour"; FOCUS unit format (and the AWS mapping, from pricing/unit "Hrs")
# writes "Hours". A spelling difference only: compared as equal.
UNIT_NAMES = {"Hour": "Hours"}

DECIMAL_COLUMNS = {"BilledCost", "EffectiveCost", "ListCost", "ListUnitPrice", "PricingQuantity", "ConsumedQuantity",
                   "CommitmentDiscountQuantity", "x_CommitmentDiscountUnitPrice"}
DATETIME_COLUMNS = {"BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"}


# ---------------------------------------------------------------------------------------------
# Cleaning the examples: mechanical normalisation + the listed cell fixes
# ---------------------------------------------------------------------------------------------
HEADER_FIXES = {"SkuPriceid": "SkuPriceId"}  # FOCUS column ids are case-sensitive


@dataclass(frozen=True)
class Fix:
    row: int  # 1-based data row after blank lines are dropped
    column: str
    old: str
    new: str  # '' = null
    why: str


_HOURLY = "the three rows are the first three hourly charge periods (spec text); hour 10/20/30 and month 02 are typos"


def _hourly_fixes(first_row: int) -> list[Fix]:
    starts = ["2023-01-01T00:00:00Z", "2023-01-01T10:00:00Z", "2023-01-01T20:00:00Z"]
    ends = ["2023-02-01T10:00:00Z", "2023-02-01T20:00:00Z", "2023-02-01T30:00:00Z"]
    fixes = []
    for i in range(3):
        if i:
            fixes.append(Fix(first_row + i, "ChargePeriodStart", starts[i], f"2023-01-01T0{i}:00:00Z", _HOURLY))
        fixes.append(Fix(first_row + i, "ChargePeriodEnd", ends[i], f"2023-01-01T0{i + 1}:00:00Z", _HOURLY))
    return fixes


CELL_FIXES: dict[str, list[Fix]] = {
    f"{SC}/commitment_discount_purchase_scenario_2.csv": _hourly_fixes(1),
    f"{SC}/commitment_discount_purchase_scenario_3.csv": _hourly_fixes(2),
    f"{FX}/one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource.csv": [
        Fix(2, "PricingQuantity", "0.333", "0.25",
            "the commitment covers 25% of the VM_LARGE hour (scenario text; the on-demand row bills the other 0.75)"),
        Fix(2, "ListCost", "3.00", "0.75",
            "ListCost MUST equal ListUnitPrice x PricingQuantity (3.00 x 0.25); 3.00 is the whole hour's list cost"),
    ],
    f"{FX}/one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources.csv": [
        Fix(2, "ResourceId", "<my-medium-vm-id>", "<my-medium-vm-id-1>",
            "two different resources run (scenario text) but both rows carried the same ResourceId"),
        Fix(3, "ResourceId", "<my-medium-vm-id>", "<my-medium-vm-id-2>",
            "two different resources run (scenario text) but both rows carried the same ResourceId"),
    ],
    f"{FX}/zero_percent_utilization_without_commitment_discount_flexibility.csv": [
        Fix(2, "ConsumedQuantity", "1.00", "",
            "ConsumedQuantity MUST be null when CommitmentDiscountStatus is Unused"),
        Fix(2, "ConsumedUnit", "Hour", "", "ConsumedUnit is null exactly when ConsumedQuantity is null"),
    ],
}
EXAMPLES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.csv")
                  if not p.name.endswith((".cleaned.csv", ".aws-cur.csv")))


def normalise(text: str) -> list[list[str]]:
    """Mechanical fixes: UTF-8 BOM, CRLF, blank lines, mis-cased headers, the literal 'null'."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    header = [HEADER_FIXES.get(h, h) for h in rows[0]]
    return [header] + [["" if cell.strip().lower() == "null" else cell for cell in r] for r in rows[1:]]


def cleaned_rows(rel: str) -> list[list[str]]:
    """The original example, normalised, with its listed cell fixes applied (asserting each old value)."""
    rows = normalise((FIXTURES / rel).read_text(encoding="utf-8"))
    header = rows[0]
    for fix in CELL_FIXES.get(rel, []):
        col = header.index(fix.column)
        assert rows[fix.row][col] == fix.old, f"{rel} row {fix.row} {fix.column}: {rows[fix.row][col]!r}"
        rows[fix.row][col] = fix.new
    return rows


def cleaned_path(rel: str) -> Path:
    return FIXTURES / rel.replace(".csv", ".cleaned.csv")


def write_cleaned(rel: str) -> None:
    """(Re)generate a cleaned copy; kept for maintainers, not called by the tests."""
    with cleaned_path(rel).open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(cleaned_rows(rel))


@pytest.mark.parametrize("rel", EXAMPLES)
def test_cleaned_copy_is_original_plus_listed_fixes(rel):
    with cleaned_path(rel).open(newline="", encoding="utf-8") as fh:
        on_disk = list(csv.reader(fh))
    assert on_disk == cleaned_rows(rel)
    # and the cleaned copy is well formed: FOCUS / x_ column names, no null tokens, ISO 8601 UTC times
    header = on_disk[0]
    assert all(h[0].isupper() or h.startswith("x_") for h in header), header
    for row in on_disk[1:]:
        assert len(row) == len(header)
        for name, value in zip(header, row, strict=True):
            assert value.strip().lower() not in ("null", "none", "n/a"), (rel, name, value)
            if name in DATETIME_COLUMNS:
                assert ts(value).isoformat().replace("+00:00", "Z") == value, (rel, name, value)


def test_every_example_of_both_folders_is_covered():
    shared = {f"{SC}/{n}" for n in (
        "commitment_discount_purchase_scenario_1.csv", "commitment_discount_purchase_scenario_2.csv",
        "commitment_discount_purchase_scenario_3.csv", "commitment_discount_usage_scenario_1.csv",
        "commitment_discount_usage_scenario_2.csv", "commitment_discount_usage_scenario_3.csv",
        "commitment_discount_usage_scenario_4.csv")} | {f"{FX}/{n}" for n in (
            "one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource.csv",
            "one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources.csv",
            "one_hundred_percent_utilization_without_commitment_discount_flexibility.csv",
            "zero_percent_utilization_without_commitment_discount_flexibility.csv")}
    assert set(EXAMPLES) == shared
    for rel in EXAMPLES:
        assert (FIXTURES / rel.replace(".csv", ".aws-cur.csv")).exists(), rel


# ---------------------------------------------------------------------------------------------
# Loading, converting, pairing
# ---------------------------------------------------------------------------------------------
def example(rel: str) -> list[dict]:
    """The cleaned example as typed rows (Decimal money, UTC datetimes, None for empty)."""
    rows = cleaned_rows(rel)
    out = []
    for raw in rows[1:]:
        row = {}
        for name, value in zip(rows[0], raw, strict=True):
            if value == "":
                row[name] = None
            elif name in DECIMAL_COLUMNS:
                row[name] = Decimal(value)
            elif name in DATETIME_COLUMNS:
                row[name] = ts(value)
            else:
                row[name] = value
        out.append(row)
    return out


@functools.cache
def converted(rel: str) -> Converted:
    """The FOCUS rows (and raw rows, quarantine, raw totals) of one example's AWS fixture, converted
    alone: the fixtures number their line items from li0001 each, so together they would be copies
    of one another's line items (quarantined)."""
    conv = convert(FIXTURES / rel.replace(".csv", ".aws-cur.csv"), labels=[rel])
    assert conv.raw.height > 0 and conv.quarantine.height == 0
    return conv


def translate(name: str, value, ids: dict[str, str]):
    if isinstance(value, str):
        value = ids.get(value, value)
        if name in ("ConsumedUnit", "CommitmentDiscountUnit"):
            value = UNIT_NAMES.get(value, value)
    return value


def _key(row: dict, ids: dict[str, str]) -> tuple:
    usage_with_resource = row["ChargeCategory"] == "Usage" and row.get("CommitmentDiscountStatus") != "Unused"
    return (row["ChargeCategory"], row["ChargeFrequency"], row["PricingCategory"],
            row.get("CommitmentDiscountStatus"), row["ChargePeriodStart"],
            translate("ResourceId", row["ResourceId"], ids) if usage_with_resource else None)


def pair(examples: list[dict], focus: list[dict], ids: dict[str, str]) -> list[tuple[dict, dict]]:
    """Example rows matched one-to-one with FOCUS rows (category, frequency, pricing, status, period, resource)."""
    by_key = {}
    for row in focus:
        key = _key(row, ids)
        assert key not in by_key, f"two FOCUS rows share {key}"
        by_key[key] = row
    assert len(focus) == len(examples), f"{len(focus)} FOCUS rows for {len(examples)} example rows"
    pairs = []
    for ex in examples:
        key = _key(ex, ids)
        assert key in by_key, f"no FOCUS row for example row {key}; FOCUS keys: {sorted(map(str, by_key))}"
        pairs.append((ex, by_key[key]))
    return pairs


def assert_same(pairs: list[tuple[dict, dict]], columns: list[str], ids: dict[str, str], rel: str) -> None:
    for i, (ex, row) in enumerate(pairs, 1):
        want = {c: translate(c, ex[c], ids) for c in columns if c in ex}
        assert_row(row, want, f"{rel} example row {i} ({ex['ChargeCategory']} {ex.get('CommitmentDiscountStatus')})")


SCENARIO_COLUMNS = ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
                    "ChargeFrequency", "PricingCategory", "ResourceId", "BilledCost", "EffectiveCost",
                    "ConsumedQuantity", "ConsumedUnit", "CommitmentDiscountId", "CommitmentDiscountQuantity",
                    "CommitmentDiscountStatus", "CommitmentDiscountUnit"]


def _cd_balance(rows: list[dict], cd_id: str) -> tuple[Decimal, Decimal]:
    """(sum EffectiveCost of Used + Unused rows, sum BilledCost of purchase rows) of one commitment."""
    usage = sum((r["EffectiveCost"] for r in rows if r["CommitmentDiscountId"] == cd_id
                 and r["ChargeCategory"] == "Usage"), Decimal(0))
    bought = sum((r["BilledCost"] for r in rows if r["CommitmentDiscountId"] == cd_id
                  and r["ChargeCategory"] == "Purchase"), Decimal(0))
    return usage, bought


@pytest.mark.parametrize("rel", EXAMPLES)
def test_aws_fixture_converts_conformant_and_conserved(rel):
    conv = converted(rel)
    assert_gates(conv)  # includes check_conformance: 0 converter defects


# ---------------------------------------------------------------------------------------------
# Purchase scenarios (spend-based, $1.00/hour, 1 year) -> AWS Compute Savings Plan
# ---------------------------------------------------------------------------------------------
def test_purchase_scenario_1_all_upfront():
    """All Upfront: one SavingsPlanUpfrontFee of 8760 USD (24 x 365 x 1.00).

    AWS differences (documented in the README):
    - ChargePeriodEnd of the upfront fee: the example spans the whole term (2024-01-01); CUR line
      items lie inside their billing period, the fixture's fee row covers the purchase hour -> not compared.
    - An All Upfront savings plan still gets an hourly SavingsPlanRecurringFee row (cost 0) that carries
      the hour's amortized commitment and its unused part; the example has no such row, so it is an
      extra FOCUS row (Purchase, Recurring, BilledCost 0, EffectiveCost 0).
    """
    rel = f"{SC}/commitment_discount_purchase_scenario_1.csv"
    conv = converted(rel)
    upfront = [r for r in conv.focus.to_dicts() if r["ChargeFrequency"] == "One-Time"]
    pairs = pair(example(rel), upfront, SP_IDS)
    assert_same(pairs, [c for c in SCENARIO_COLUMNS if c != "ChargePeriodEnd"], SP_IDS, rel)

    extra = conv.one(x_ChargeType="SavingsPlanRecurringFee")
    assert_row(extra, {"ChargeCategory": "Purchase", "ChargeFrequency": "Recurring", "PricingCategory": "Standard",
                       "BilledCost": D(0), "EffectiveCost": D(0), "CommitmentDiscountId": SP_ARN,
                       "CommitmentDiscountStatus": None}, rel)
    # CommitmentDiscountQuantity, summed over the purchase rows of a commitment, is the quantity bought
    # (FOCUS 1.2 CommitmentDiscountQuantity). All 8760 USD were bought on the upfront row, so the hourly
    # $0 recurring row may add nothing.
    purchases = [r for r in conv.focus.to_dicts() if r["ChargeCategory"] == "Purchase"]
    bought = sum(r["CommitmentDiscountQuantity"] or 0 for r in purchases)
    assert bought == D("8760.00"), (
        f"purchase rows add up to {bought} USD of commitment, but 8760 USD were bought: the $0 hourly "
        f"recurring row of an All Upfront plan re-counts the amortized upfront commitment")


def test_purchase_scenario_2_no_upfront():
    """No Upfront: hourly SavingsPlanRecurringFee rows of 1.00 USD, EffectiveCost 0 (amortized to usage).

    The AWS fixture holds only the fee rows (like the example); savingsPlan/UsedCommitment = 1.00 says
    the hour's commitment was used by usage outside this example, so no Unused row appears.
    """
    rel = f"{SC}/commitment_discount_purchase_scenario_2.csv"
    conv = converted(rel)
    pairs = pair(example(rel), conv.focus.to_dicts(), SP_IDS)
    assert_same(pairs, SCENARIO_COLUMNS, SP_IDS, rel)


def test_purchase_scenario_3_partial_upfront():
    """Partial Upfront 50/50: SavingsPlanUpfrontFee 4380 USD + hourly SavingsPlanRecurringFee of 0.50 USD.

    CommitmentDiscountQuantity of each recurring row is the 0.50 USD bought in that hour (the example;
    FOCUS: summed over the purchase rows it is the total bought, 4380 + 8760 x 0.50 = 8760). The other
    0.50 of the hour's commitment was bought upfront and is counted on the upfront row.
    ChargePeriodEnd of the upfront row: not compared (see scenario 1).
    """
    rel = f"{SC}/commitment_discount_purchase_scenario_3.csv"
    conv = converted(rel)
    pairs = pair(example(rel), conv.focus.to_dicts(), SP_IDS)
    upfront = [(ex, row) for ex, row in pairs if ex["ChargeFrequency"] == "One-Time"]
    recurring = [(ex, row) for ex, row in pairs if ex["ChargeFrequency"] == "Recurring"]
    assert len(upfront) == 1 and len(recurring) == 3
    assert_same(upfront, [c for c in SCENARIO_COLUMNS if c != "ChargePeriodEnd"], SP_IDS, rel)
    assert_same(recurring, SCENARIO_COLUMNS, SP_IDS, rel)


# ---------------------------------------------------------------------------------------------
# Usage scenarios (spend-based, $1.00/hour) -> savings plan covered usage / unused commitment
# ---------------------------------------------------------------------------------------------
def _usage_scenario(name: str) -> tuple[str, Converted, list[tuple[dict, dict]]]:
    rel = f"{SC}/{name}.csv"
    conv = converted(rel)
    usage = [r for r in conv.focus.to_dicts() if r["ChargeCategory"] == "Usage"]
    return rel, conv, pair(example(rel), usage, SP_IDS)


def _assert_hour_purchase(conv: Converted, rel: str) -> None:
    """AWS bills the hour's 1.00 USD commitment on a SavingsPlanRecurringFee row; the usage examples show
    only usage rows, so this Purchase row is extra (it is purchase scenario 2's row)."""
    fee = conv.one(ChargeCategory="Purchase")
    assert_row(fee, {"x_ChargeType": "SavingsPlanRecurringFee", "ChargeFrequency": "Recurring",
                     "BilledCost": D("1.00"), "EffectiveCost": D(0), "CommitmentDiscountId": SP_ARN,
                     "CommitmentDiscountQuantity": D("1.00"), "CommitmentDiscountUnit": "USD"}, rel)
    used_and_unused, bought = _cd_balance(conv.focus.to_dicts(), SP_ARN)
    assert used_and_unused == bought == D("1.00")  # R-EffectiveCost-4 for the hour


def test_usage_scenario_1_fully_used():
    rel, conv, pairs = _usage_scenario("commitment_discount_usage_scenario_1")
    assert_same(pairs, SCENARIO_COLUMNS, SP_IDS, rel)
    # the SavingsPlanNegation row (-1.50 on the invoice) is folded into the covered row (BilledCost 0)
    assert conv.rows(x_ChargeType="SavingsPlanNegation") == []
    _assert_hour_purchase(conv, rel)


def test_usage_scenario_2_unused():
    rel, conv, pairs = _usage_scenario("commitment_discount_usage_scenario_2")
    assert_same(pairs, SCENARIO_COLUMNS, SP_IDS, rel)
    unused = pairs[0][1]
    assert unused["x_RowId"].endswith("~unused")
    _assert_hour_purchase(conv, rel)


def test_usage_scenario_3_partially_used():
    rel, conv, pairs = _usage_scenario("commitment_discount_usage_scenario_3")
    assert_same(pairs, SCENARIO_COLUMNS, SP_IDS, rel)
    _assert_hour_purchase(conv, rel)


def test_usage_scenario_4_overage():
    """100% used plus on-demand overage.

    AWS difference: AWS splits the instance hour into the part the savings plan covers (0.8 h,
    SavingsPlanCoveredUsage) and the on-demand rest (0.2 h, Usage), so ConsumedQuantity is 0.8 and 0.2;
    the example repeats the whole hour (1.00) on both rows, which would count 2 hours for a 1-hour
    resource. Everything else is compared as in the example.
    """
    rel, conv, pairs = _usage_scenario("commitment_discount_usage_scenario_4")
    assert_same(pairs, [c for c in SCENARIO_COLUMNS if c != "ConsumedQuantity"], SP_IDS, rel)
    consumed = {row["CommitmentDiscountStatus"]: row["ConsumedQuantity"] for _, row in pairs}
    assert consumed == {"Used": D("0.8"), None: D("0.2")}
    assert sum(consumed.values()) == D(1)
    _assert_hour_purchase(conv, rel)


# ---------------------------------------------------------------------------------------------
# Flexibility scenarios (usage-based) -> EC2 reserved instances, no upfront, one-hour month slice
# ---------------------------------------------------------------------------------------------
# Compared on every row: the time columns, ChargeCategory, ChargeFrequency, PricingCategory, BilledCost,
# EffectiveCost, PricingQuantity, CommitmentDiscountId, CommitmentDiscountCategory, CommitmentDiscountStatus.
# Not compared, with the AWS reason (README "Differences"):
# - SkuId / SkuPriceId / x_CommitmentDiscountUnitPrice: the fictional provider's catalogue (AWS SKUs are
#   opaque codes; SkuId and SkuPriceId are asserted non-null instead).
# - ListUnitPrice / ListCost of Purchase rows: the example prices the RI purchase at an on-demand list
#   price; the AWS mapping lists a fee at the fee itself (RIFee rows carry no on-demand price).
# - ListUnitPrice / ListCost of Unused rows: the example uses the on-demand price of the idle hour; the
#   RIFee row carries no on-demand price, so the Unused row is listed at the RI's own rate.
# - ResourceId of Purchase rows: RIFee rows have no lineItem/ResourceId (null in FOCUS).
# - CommitmentDiscountUnit: the examples write "Hour" / "Normalized Hour"; the AWS mapping writes "Hours"
#   (pricing/unit "Hrs" in FOCUS unit format); the unit must be the same on every row of the commitment
#   (asserted).
# - CommitmentDiscountQuantity: the examples count in their own catalogue's normalization factors
#   (VM_LARGE = 3 in the catalogue but 4 in the text), which AWS does not share; what is compared is
#   each Used/Unused row's share of the hour's purchased quantity (the same in any unit).
FLEX_COLUMNS = ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
                "ChargeFrequency", "PricingCategory", "BilledCost", "EffectiveCost", "PricingQuantity",
                "CommitmentDiscountId", "CommitmentDiscountCategory", "CommitmentDiscountStatus"]
FLEX_USAGE_COLUMNS = ["ResourceId", "ListUnitPrice", "ListCost", "ConsumedQuantity", "ConsumedUnit"]


def _cd_shares(rows: list[dict], cd_id: str, ids: dict[str, str]) -> dict[tuple, Decimal]:
    """CommitmentDiscountQuantity of each Usage row of a commitment / the purchased quantity."""
    bought = sum((r["CommitmentDiscountQuantity"] for r in rows
                  if r["CommitmentDiscountId"] == cd_id and r["ChargeCategory"] == "Purchase"), Decimal(0))
    assert bought > 0
    return {(r["CommitmentDiscountStatus"], translate("ResourceId", r["ResourceId"], ids)
             if r["CommitmentDiscountStatus"] == "Used" else None): r["CommitmentDiscountQuantity"] / bought
            for r in rows if r["CommitmentDiscountId"] == cd_id and r["ChargeCategory"] == "Usage"}


def _flex(name: str, *, usage_columns: list[str] = FLEX_USAGE_COLUMNS) -> tuple[str, Converted, list]:
    rel = f"{FX}/{name}.csv"
    conv = converted(rel)
    examples = example(rel)
    focus = conv.focus.to_dicts()
    pairs = pair(examples, focus, RI_IDS)
    assert_same(pairs, FLEX_COLUMNS, RI_IDS, rel)
    used_or_on_demand = [(ex, row) for ex, row in pairs
                         if ex["ChargeCategory"] == "Usage" and ex["CommitmentDiscountStatus"] != "Unused"]
    assert_same(used_or_on_demand, usage_columns, RI_IDS, rel)
    for _, row in pairs:
        assert row["SkuId"] is not None and row["SkuPriceId"] is not None
        if row["ChargeCategory"] == "Purchase":
            assert row["ResourceId"] is None  # AWS difference: RIFee rows carry no resource id
    # one unit per commitment (R-CDUnit-1), and every hour's purchase equals its Used + Unused amounts
    units = {r["CommitmentDiscountUnit"] for r in focus if r["CommitmentDiscountId"] == RI_ARN}
    assert len(units) == 1 and None not in units, units
    used_and_unused, bought = _cd_balance(focus, RI_ARN)
    assert used_and_unused == bought
    # each Used / Unused row's share of the hour's purchased commitment quantity, as in the example
    got = _cd_shares(focus, RI_ARN, RI_IDS)
    want = _cd_shares(examples, "<my-commitment-discount-id>", RI_IDS)
    assert got == want, (f"CommitmentDiscountQuantity shares of the purchased quantity: {got}, example {want} "
                         f"(Used/Unused quantities must be in the commitment's units)")
    return rel, conv, pairs


def test_flexibility_100_percent_without_flexibility():
    """Zonal t3.large RI ($1.50/h, no upfront) fully used by one t3.large ($3.00/h on demand)."""
    _flex("one_hundred_percent_utilization_without_commitment_discount_flexibility")


def test_flexibility_0_percent_without_flexibility():
    """Zonal t3.large RI idle; a t3.medium runs on demand ($2.00/h). The RI hour becomes an Unused row.

    AWS difference: the example's Unused row names the large VM as ResourceId although no large VM
    runs; the AWS Unused row names the RI (its ARN), like the spend-based usage scenario 2.
    """
    rel, conv, pairs = _flex("zero_percent_utilization_without_commitment_discount_flexibility")
    unused = conv.one(CommitmentDiscountStatus="Unused")
    assert_row(unused, {"ResourceId": RI_ARN, "BilledCost": D(0), "EffectiveCost": D("1.50"),
                        "ConsumedQuantity": None, "ConsumedUnit": None,
                        # AWS difference: listed at the RI's rate (RIFee has no on-demand price)
                        "ListUnitPrice": D("1.50"), "ListCost": D("1.50")}, rel)


def test_flexibility_100_percent_with_flexibility_1_resource():
    """A t3.small RI (NF 1, $0.50/h) covers a quarter of a t3.large hour (NF 4); the rest is on demand.

    AWS difference: AWS splits the t3.large hour into the covered 0.25 h (DiscountedUsage) and the
    on-demand 0.75 h (Usage); ConsumedQuantity is 0.25 and 0.75, where the example repeats 1.00 on both.
    The commitment is fully used: the Used row consumes the whole purchased quantity (share 1).
    """
    rel, conv, pairs = _flex("one_hundred_percent_utilization_with_commitment_discount_flexibility_with_1_resource",
                             usage_columns=[c for c in FLEX_USAGE_COLUMNS if c != "ConsumedQuantity"])
    consumed = {row["CommitmentDiscountStatus"]: row["ConsumedQuantity"] for ex, row in pairs
                if ex["ChargeCategory"] == "Usage"}
    assert consumed == {"Used": D("0.25"), None: D("0.75")}


def test_flexibility_100_percent_with_flexibility_2_resources():
    """A t3.xlarge RI (NF 8, $2.00/h) covers two t3.large instances (NF 4 each) for the hour: each Used
    row carries half of the commitment (EffectiveCost 1.00, share 0.5)."""
    _flex("one_hundred_percent_utilization_with_commitment_discount_flexibility_with_2_resources")
