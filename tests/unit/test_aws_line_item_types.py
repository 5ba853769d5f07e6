"""The AWS CUR mapping, one line item type at a time, against hand-computed FOCUS 1.2 rows.

Each line item type gets a tiny CUR CSV (legacy ``category/Name`` headers, 1-2 rows) written here;
all of them are read with ``scan_raw`` and mapped by ONE ``to_focus`` call (module fixture ``batch``,
one source file per type, rows told apart by ``x_SourceFile``) because planning ``to_focus`` takes
~0.3 s. Every type's FOCUS rows must also pass ``check_conformance`` with 0 converter defects and
the gating checks of ``pipeline.check_focus`` (billed and amortized cost conservation, row counts).

Expected values are computed by hand from the CUR row and the FOCUS 1.2 rules
(/work/shared/focus/RULES.md) and AWS column meanings (/work/shared/providers/SCHEMAS.md §1,
MAPPINGS.md §1), never read back from the converter.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from focus_platform.sources.aws_cur import (
    DROPPED_LINE_ITEM_TYPES,
    LINE_ITEM_TYPES,
    REQUIRED_COLUMNS,
    UNMAPPED_SERVICE_NOTE,
    classify_header,
)
from tests.helpers_aws import (
    Converted,
    D,
    assert_gates,
    assert_row,
    convert,
    ts,
    write_cur,
)

AWS_INC = "Amazon Web Services, Inc."
PAYER = "012345678901"  # 12 digits with a leading zero: must stay a string
LINKED = "000987654321"
RI_ARN = "arn:aws:ec2:us-east-1:012345678901:reserved-instances/0f1e2d3c-0000-4000-8000-00000000a001"
SP_ARN = "arn:aws:savingsplans::012345678901:savingsplan/5e6f7a8b-0000-4000-8000-00000000b001"
SP_ARN_UPFRONT = "arn:aws:savingsplans::012345678901:savingsplan/5e6f7a8b-0000-4000-8000-00000000b002"
EC2 = "Amazon Elastic Compute Cloud"
SP_NAME = "Savings Plans for AWS Compute usage"
UNMAPPED = UNMAPPED_SERVICE_NOTE
EOD_NOTE = "ChargePeriodEnd: 23:59:59 end moved to the next midnight"  # prefix of the x_SourceChanges note
INVOICING_NOTE = "InvoiceIssuerName: bill/InvoicingEntity absent"  # prefix

# An hour of an on-demand m5.large in us-east-1, as a legacy CUR row.
BASE = {
    "identity/LineItemId": "li-0001",
    "identity/TimeInterval": "2023-01-01T00:00:00Z/2023-01-01T01:00:00Z",
    "bill/InvoiceId": "EUINUS23-000001",
    "bill/InvoicingEntity": AWS_INC,
    "bill/BillingEntity": "AWS",
    "bill/BillType": "Anniversary",
    "bill/PayerAccountId": PAYER,
    "bill/BillingPeriodStartDate": "2023-01-01T00:00:00Z",
    "bill/BillingPeriodEndDate": "2023-02-01T00:00:00Z",
    "lineItem/UsageAccountId": LINKED,
    "lineItem/LineItemType": "Usage",
    "lineItem/UsageStartDate": "2023-01-01T00:00:00Z",
    "lineItem/UsageEndDate": "2023-01-01T01:00:00Z",
    "lineItem/ProductCode": "AmazonEC2",
    "lineItem/UsageType": "BoxUsage:m5.large",
    "lineItem/Operation": "RunInstances",
    "lineItem/AvailabilityZone": "us-east-1a",
    "lineItem/ResourceId": "i-0123456789abcdef0",
    "lineItem/UsageAmount": "1",
    "lineItem/CurrencyCode": "USD",
    "lineItem/UnblendedRate": "0.096",
    "lineItem/UnblendedCost": "0.096",
    "lineItem/LineItemDescription": "$0.096 per On Demand Linux m5.large Instance Hour",
    "lineItem/LegalEntity": AWS_INC,
    "product/ProductName": EC2,
    "product/region": "us-east-1",
    "product/sku": "M5LSKU000001",
    "product/productFamily": "Compute Instance",
    "pricing/RateCode": "M5LSKU000001.JRTCKXETXF.6YS6EN2CT7",
    "pricing/publicOnDemandRate": "0.096",
    "pricing/publicOnDemandCost": "0.096",
    "pricing/term": "OnDemand",
    "pricing/unit": "Hrs",
    "resourceTags/user:CostCenter": "cc-1234",
    "resourceTags/aws:createdBy": "IAMUser:AIDAEXAMPLE:alice",
}
NO_PRODUCT = {"lineItem/UsageType": "", "lineItem/Operation": "", "lineItem/AvailabilityZone": "",
              "lineItem/ResourceId": "", "product/region": "", "product/sku": "", "product/productFamily": "",
              "pricing/RateCode": "", "pricing/publicOnDemandRate": "", "pricing/publicOnDemandCost": "",
              "pricing/term": "", "pricing/unit": "", "resourceTags/user:CostCenter": "",
              "resourceTags/aws:createdBy": ""}
MONTH = {"lineItem/UsageStartDate": "2023-01-01T00:00:00Z", "lineItem/UsageEndDate": "2023-02-01T00:00:00Z"}


def cur_row(base: dict[str, str], *parts: dict[str, str], **overrides: str) -> dict[str, str]:
    """``base`` updated by ``parts`` in order, then by keyword overrides ('__' stands for '/')."""
    out = dict(base)
    for part in parts:
        out.update(part)
    out.update({k.replace("__", "/"): v for k, v in overrides.items()})
    return out


def row(*parts: dict[str, str], **overrides: str) -> dict[str, str]:
    return cur_row(BASE, *parts, **overrides)


# ---------------------------------------------------------------------------------------------
# The CUR rows of each line item type
# ---------------------------------------------------------------------------------------------
SP_FEE = row(NO_PRODUCT, {
    "lineItem/LineItemType": "SavingsPlanRecurringFee", "lineItem/ProductCode": "ComputeSavingsPlans",
    "lineItem/UsageType": "ComputeSP:1yrNoUpfront", "lineItem/ResourceId": SP_ARN, "lineItem/UsageAmount": "1",
    "lineItem/UnblendedRate": "0.10", "lineItem/UnblendedCost": "0.10",
    "lineItem/LineItemDescription": "1 year No Upfront Compute Savings Plan", "product/ProductName": SP_NAME,
    "product/sku": "CSP1YRNUF", "pricing/RateCode": "CSP1YRNUF.USD1", "pricing/unit": "Hrs",
    "savingsPlan/SavingsPlanARN": SP_ARN, "savingsPlan/TotalCommitmentToDate": "0.10",
    "savingsPlan/UsedCommitment": "0.06", "savingsPlan/RecurringCommitmentForBillingPeriod": "0.10",
    "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod": "0"})

CASES: dict[str, list[dict[str, str]]] = {
    "usage": [row()],
    "spot": [row(lineItem__UsageType="SpotUsage:m5.large", lineItem__Operation="RunInstances:SV001",
                 lineItem__UnblendedRate="0.035", lineItem__UnblendedCost="0.035", pricing__term="",
                 pricing__RateCode="M5LSKU000001.SPOT",
                 lineItem__LineItemDescription="$0.035 per Spot Linux m5.large Instance Hour")],
    "discounted_usage": [row(
        lineItem__LineItemType="DiscountedUsage", lineItem__UnblendedRate="0", lineItem__UnblendedCost="0",
        lineItem__LineItemDescription="USD 0.03 hourly fee per Linux/UNIX (Amazon VPC), m5.large instance",
        pricing__term="Reserved", pricing__RateCode="M5LSKU000001.38NPMPTW36.6YS6EN2CT7",
        reservation__ReservationARN=RI_ARN, reservation__EffectiveCost="0.06",
        reservation__AmortizedUpfrontCostForUsage="0.03", reservation__RecurringFeeForUsage="0.03")],
    "sp_covered_usage": [
        row(lineItem__LineItemType="SavingsPlanCoveredUsage", savingsPlan__SavingsPlanARN=SP_ARN,
            savingsPlan__SavingsPlanRate="0.06", savingsPlan__SavingsPlanEffectiveCost="0.06"),
        row({"identity/LineItemId": "li-0002"}, lineItem__LineItemType="SavingsPlanNegation",
            lineItem__UnblendedRate="-0.096", lineItem__UnblendedCost="-0.096",
            pricing__publicOnDemandRate="", pricing__publicOnDemandCost="",
            lineItem__LineItemDescription="SavingsPlanNegation used by AccountId : 000987654321",
            savingsPlan__SavingsPlanARN=SP_ARN, savingsPlan__SavingsPlanRate="0.06"),
    ],
    "sp_recurring_fee": [SP_FEE],
    "sp_upfront_fee": [cur_row(SP_FEE, {
        "lineItem/LineItemType": "SavingsPlanUpfrontFee", "lineItem/UsageType": "ComputeSP:1yrAllUpfront",
        "lineItem/ResourceId": SP_ARN_UPFRONT, "lineItem/UnblendedRate": "876.00",
        "lineItem/UnblendedCost": "876.00", "lineItem/LineItemDescription": "1 year All Upfront Compute Savings Plan",
        "product/sku": "CSP1YRAUF", "pricing/RateCode": "CSP1YRAUF.USD1", "pricing/unit": "",
        "savingsPlan/SavingsPlanARN": SP_ARN_UPFRONT, "savingsPlan/TotalCommitmentToDate": "",
        "savingsPlan/UsedCommitment": "", "savingsPlan/RecurringCommitmentForBillingPeriod": "",
        "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod": ""})],
    # Partial upfront RI for January (744 h): 0.03/h recurring, 100 h unused.
    "ri_fee": [row(NO_PRODUCT, {
        "lineItem/LineItemType": "RIFee", "lineItem/UsageType": "HeavyUsage:m5.large",
        "lineItem/Operation": "RunInstances", "lineItem/UsageAmount": "744", "lineItem/UnblendedRate": "0.03",
        "lineItem/UnblendedCost": "22.32", "lineItem/UsageStartDate": "2023-01-01T00:00:00Z",
        "lineItem/UsageEndDate": "2023-01-31T23:59:59Z",
        "lineItem/LineItemDescription": "USD 0.03 hourly fee per Linux/UNIX (Amazon VPC), m5.large instance",
        "product/region": "us-east-1", "product/sku": "M5LSKU000001",
        "pricing/RateCode": "M5LSKU000001.4NA7Y494T4.6YS6EN2CT7", "pricing/term": "Reserved",
        "reservation/ReservationARN": RI_ARN, "reservation/AmortizedUpfrontFeeForBillingPeriod": "22.32",
        "reservation/UnusedQuantity": "100", "reservation/UnusedRecurringFee": "3.00",
        "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod": "3.00", "reservation/TotalReservedUnits": "744"})],
    "ri_upfront_fee": [row(NO_PRODUCT, {
        "lineItem/LineItemType": "Fee", "lineItem/UsageType": "HeavyUsage:m5.large", "lineItem/UsageAmount": "1",
        "lineItem/UnblendedRate": "263.00", "lineItem/UnblendedCost": "263.00",
        "lineItem/LineItemDescription": "Sign up charge for subscription: 363836886, planId: 1026576",
        "product/region": "us-east-1", "product/sku": "M5LSKU000001", "reservation/ReservationARN": RI_ARN})],
    "support_fee": [row(NO_PRODUCT, MONTH, {
        "lineItem/LineItemType": "Fee", "lineItem/ProductCode": "AWSSupportBusiness",
        "lineItem/UsageType": "Dollar", "lineItem/UsageAmount": "1", "lineItem/UnblendedRate": "",
        "lineItem/UnblendedCost": "100.00", "lineItem/LineItemDescription": "AWS Support (Business)",
        "product/ProductName": "AWS Support (Business)", "product/sku": "SUPBUS0001"})],
    "marketplace_fee": [row(NO_PRODUCT, MONTH, {
        "bill/BillingEntity": "AWS Marketplace", "lineItem/LineItemType": "Fee",
        "lineItem/ProductCode": "8s7d6f5g4h3j2k1l0mexample", "lineItem/UsageType": "SaaS-Monthly",
        "lineItem/UsageAmount": "1", "lineItem/UnblendedRate": "50.00", "lineItem/UnblendedCost": "50.00",
        "lineItem/LineItemDescription": "Acme Observability monthly subscription",
        "lineItem/LegalEntity": "Acme Software LLC", "product/ProductName": "Acme Observability",
        "product/sku": "MKT0001", "pricing/RateCode": "MKT0001.MONTHLY", "pricing/unit": "Units"})],
    "tax": [row(NO_PRODUCT, MONTH, {
        "lineItem/LineItemType": "Tax", "lineItem/UsageAmount": "1", "lineItem/UnblendedRate": "",
        "lineItem/UnblendedCost": "1.23", "lineItem/TaxType": "USSalesTax",
        "lineItem/LineItemDescription": "Tax for product code AmazonEC2"})],
    "credit": [row(NO_PRODUCT, MONTH, {
        "lineItem/LineItemType": "Credit", "lineItem/UsageAmount": "", "lineItem/UnblendedRate": "",
        "lineItem/UnblendedCost": "-10.00", "lineItem/LineItemDescription": "AWS Promotional Credit"})],
    "refund": [
        row(NO_PRODUCT, MONTH, {
            "bill/BillType": "Refund", "lineItem/LineItemType": "Refund", "lineItem/UsageAmount": "",
            "lineItem/UnblendedRate": "", "lineItem/UnblendedCost": "-5.00",
            "lineItem/LineItemDescription": "Refund for January usage"}),
        # February bill refunding January usage: corrects an earlier billing period
        row(NO_PRODUCT, {
            "identity/LineItemId": "li-0002", "bill/BillType": "Refund", "lineItem/LineItemType": "Refund",
            "bill/BillingPeriodStartDate": "2023-02-01T00:00:00Z", "bill/BillingPeriodEndDate": "2023-03-01T00:00:00Z",
            "lineItem/UsageStartDate": "2023-01-15T00:00:00Z", "lineItem/UsageEndDate": "2023-01-16T00:00:00Z",
            "lineItem/UsageAmount": "", "lineItem/UnblendedRate": "", "lineItem/UnblendedCost": "-7.50",
            "lineItem/LineItemDescription": "Refund for 2023-01-15 usage"}),
    ],
    "edp_discount": [row(lineItem__LineItemType="EdpDiscount", lineItem__UsageAmount="0",
                         lineItem__UnblendedRate="", lineItem__UnblendedCost="-0.0096",
                         pricing__publicOnDemandRate="", pricing__publicOnDemandCost="",
                         lineItem__LineItemDescription="Enterprise Discount Program discount")],
    "private_rate_discount": [row(lineItem__LineItemType="PrivateRateDiscount", lineItem__UsageAmount="0",
                                  lineItem__UnblendedRate="", lineItem__UnblendedCost="-0.0050",
                                  pricing__publicOnDemandRate="", pricing__publicOnDemandCost="",
                                  lineItem__LineItemDescription="Private rate discount")],
    "bundled_discount": [row(NO_PRODUCT, {
        "lineItem/LineItemType": "BundledDiscount", "lineItem/ProductCode": "AWSDataTransfer",
        "product/ProductName": "AWS Data Transfer", "lineItem/UsageType": "DataTransfer-Out-Bytes",
        "lineItem/UsageAmount": "0", "lineItem/UnblendedRate": "", "lineItem/UnblendedCost": "-0.90",
        "lineItem/LineItemDescription": "Bundled discount: data transfer included with CloudFront"})],
    "discount": [row(lineItem__LineItemType="Discount", lineItem__UsageAmount="0", lineItem__UnblendedRate="",
                     lineItem__UnblendedCost="-0.0048", pricing__publicOnDemandRate="",
                     pricing__publicOnDemandCost="", lineItem__LineItemDescription="Discount")],
    "distributor_discount": [row(lineItem__LineItemType="DistributorDiscount", lineItem__UsageAmount="0",
                                 lineItem__UnblendedRate="", lineItem__UnblendedCost="-0.0010",
                                 pricing__publicOnDemandRate="", pricing__publicOnDemandCost="",
                                 lineItem__LineItemDescription="Distributor discount")],
}

# One line item per row: AWS identifies a line item by identity/LineItemId + identity/TimeInterval and a
# line item delivered twice is quarantined, so every case row gets its own id (case name + position).
CASES = {name: [cur_row(r, {"identity/LineItemId": f"{name}-{i}"}) for i, r in enumerate(rows, start=1)]
         for name, rows in CASES.items()}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Converted:
    folder = tmp_path_factory.mktemp("line_item_types")
    paths = [write_cur(folder / f"{name}.csv", rows) for name, rows in CASES.items()]
    conv = convert(paths)
    assert conv.quarantine.height == 0, conv.quarantine
    assert conv.raw["x_ParseErrors"].null_count() == conv.raw.height
    return conv


def case(batch: Converted, name: str) -> Converted:
    """The FOCUS rows of one type; they pass conformance (0 defects) and every gating check."""
    conv = batch.for_file(f"{name}.csv")
    assert conv.raw.height == len(CASES[name])
    assert_gates(conv)  # includes check_conformance: 0 converter defects
    return conv


# ---------------------------------------------------------------------------------------------
# Hand-computed expectations
# ---------------------------------------------------------------------------------------------
NO_COMMITMENT = {"CommitmentDiscountId": None, "CommitmentDiscountCategory": None, "CommitmentDiscountType": None,
                 "CommitmentDiscountStatus": None, "CommitmentDiscountQuantity": None,
                 "CommitmentDiscountUnit": None, "CommitmentDiscountName": None}
COMMON = {
    "ProviderName": "AWS", "BillingAccountId": PAYER, "BillingAccountType": "Payer Account",
    "SubAccountId": LINKED, "SubAccountType": "Linked Account", "BillingCurrency": "USD", "PricingCurrency": "USD",
    "BillingPeriodStart": ts("2023-01-01T00:00:00Z"), "BillingPeriodEnd": ts("2023-02-01T00:00:00Z"),
    "InvoiceId": "EUINUS23-000001", "InvoiceIssuerName": AWS_INC, "PublisherName": AWS_INC,
}
HOUR = {"ChargePeriodStart": ts("2023-01-01T00:00:00Z"), "ChargePeriodEnd": ts("2023-01-01T01:00:00Z")}
JANUARY = {"ChargePeriodStart": ts("2023-01-01T00:00:00Z"), "ChargePeriodEnd": ts("2023-02-01T00:00:00Z")}
EC2_PRODUCT = {"ServiceName": EC2, "ServiceCategory": "Compute", "ServiceSubcategory": "Virtual Machines",
               "x_ServiceCode": "AmazonEC2", "RegionId": "us-east-1", "RegionName": "US East (N. Virginia)"}
EC2_RESOURCE = {"ResourceId": "i-0123456789abcdef0", "ResourceType": "Compute Instance",
                "AvailabilityZone": "us-east-1a", "SkuId": "M5LSKU000001", "SkuMeter": "BoxUsage:m5.large"}
NO_RESOURCE = {"ResourceId": None, "ResourceType": None, "AvailabilityZone": None}
NOT_PRICED = {"PricingCategory": None, "ListUnitPrice": None, "ContractedUnitPrice": None,
              "PricingQuantity": None, "PricingUnit": None, "ConsumedQuantity": None, "ConsumedUnit": None,
              "PricingCurrencyListUnitPrice": None, "PricingCurrencyContractedUnitPrice": None}
TAGS = {"CostCenter": "cc-1234", "aws:createdBy": "IAMUser:AIDAEXAMPLE:alice"}


def money(billed: str, effective: str | None = None, listed: str | None = None, contracted: str | None = None):
    """BilledCost/EffectiveCost/ListCost/ContractedCost (+ PricingCurrencyEffectiveCost, same currency)."""
    effective = billed if effective is None else effective
    return {"BilledCost": D(billed), "EffectiveCost": D(effective), "PricingCurrencyEffectiveCost": D(effective),
            "ListCost": D(billed if listed is None else listed),
            "ContractedCost": D(billed if contracted is None else contracted)}


def prices(list_price: str | None, contracted_price: str | None) -> dict:
    lp = None if list_price is None else D(list_price)
    cp = None if contracted_price is None else D(contracted_price)
    return {"ListUnitPrice": lp, "ContractedUnitPrice": cp,
            "PricingCurrencyListUnitPrice": lp, "PricingCurrencyContractedUnitPrice": cp}


def check(actual: dict, context: str, *parts: dict, tags: dict | None = None, changes: list[str] = ()):
    """assert_row on the merged ``parts``; Tags compared as JSON; each of ``changes`` starts one of the
    row's x_SourceChanges notes."""
    expected = {}
    for part in parts:
        expected.update(part)
    assert_row(actual, expected, context)
    assert (json.loads(actual["Tags"]) if actual["Tags"] is not None else None) == tags, f"{context}: Tags"
    got_changes = actual["x_SourceChanges"] or []
    for change in changes:
        assert any(c.startswith(change) for c in got_changes), \
            f"{context}: x_SourceChanges {got_changes} lacks {change!r}"


# ---------------------------------------------------------------------------------------------
# One test per line item type
# ---------------------------------------------------------------------------------------------
def test_usage_on_demand(batch):
    conv = case(batch, "usage")
    check(conv.one(), "Usage", COMMON, HOUR, EC2_PRODUCT, EC2_RESOURCE, NO_COMMITMENT,
          {"ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
           "PricingCategory": "Standard", "PricingQuantity": D(1), "PricingUnit": "Hours",
           "ConsumedQuantity": D(1), "ConsumedUnit": "Hours", "SkuPriceId": "M5LSKU000001.JRTCKXETXF.6YS6EN2CT7",
           "ChargeDescription": "$0.096 per On Demand Linux m5.large Instance Hour", "x_ChargeType": "Usage",
           "x_UsageType": "BoxUsage:m5.large", "x_Operation": "RunInstances"},
          money("0.096"), prices("0.096", "0.096"), tags=TAGS)


def test_usage_spot_is_dynamic(batch):
    """Spot: the market price is billed (contracted), the on-demand price is the list price."""
    conv = case(batch, "spot")
    check(conv.one(), "Spot Usage", COMMON, HOUR, EC2_PRODUCT, NO_COMMITMENT,
          {"ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "PricingCategory": "Dynamic",
           "PricingQuantity": D(1), "PricingUnit": "Hours", "ConsumedQuantity": D(1), "ConsumedUnit": "Hours",
           "SkuMeter": "SpotUsage:m5.large"},
          money("0.035", listed="0.096"), prices("0.096", "0.035"), tags=TAGS)


def test_discounted_usage_reserved_instance(batch):
    """RI-covered hour: invoice 0 (fees bill the RI), amortized cost = reservation/EffectiveCost."""
    conv = case(batch, "discounted_usage")
    check(conv.one(), "DiscountedUsage", COMMON, HOUR, EC2_PRODUCT, EC2_RESOURCE,
          {"ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
           "PricingCategory": "Committed", "PricingQuantity": D(1), "PricingUnit": "Hours",
           "ConsumedQuantity": D(1), "ConsumedUnit": "Hours",
           "CommitmentDiscountId": RI_ARN, "CommitmentDiscountCategory": "Usage",
           "CommitmentDiscountType": "Reserved Instance", "CommitmentDiscountStatus": "Used",
           "CommitmentDiscountQuantity": D(1), "CommitmentDiscountUnit": "Hours"},
          # contracted price excludes commitment discounts: without a negotiated rate it is the list price
          money("0", effective="0.06", listed="0.096", contracted="0.096"), prices("0.096", "0.096"), tags=TAGS)


def test_savings_plan_covered_usage_and_negation(batch):
    """Covered usage is billed at 0 (the plan's fee bills it); the negation row that cancels its on-demand
    cost on the invoice is folded in (dropped from FOCUS, kept in raw)."""
    conv = case(batch, "sp_covered_usage")
    assert conv.raw.height == 2 and conv.focus.height == 1
    assert conv.rows(x_ChargeType="SavingsPlanNegation") == []
    check(conv.one(), "SavingsPlanCoveredUsage", COMMON, HOUR, EC2_PRODUCT, EC2_RESOURCE,
          {"ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "PricingCategory": "Committed",
           "PricingQuantity": D(1), "PricingUnit": "Hours", "ConsumedQuantity": D(1), "ConsumedUnit": "Hours",
           "CommitmentDiscountId": SP_ARN, "CommitmentDiscountCategory": "Spend",
           "CommitmentDiscountType": "Savings Plan", "CommitmentDiscountStatus": "Used",
           # spend-based: the commitment consumed is the plan's effective cost, in the billing currency
           "CommitmentDiscountQuantity": D("0.06"), "CommitmentDiscountUnit": "USD"},
          money("0", effective="0.06", listed="0.096", contracted="0.096"), prices("0.096", "0.096"), tags=TAGS)
    # invoice: covered 0.096 + negation -0.096 = 0 = FOCUS BilledCost (checked by assert_gates too)
    assert conv.raw_totals["billed"].sum() == 0


SP_PURCHASE = {"ServiceName": SP_NAME, "ServiceCategory": "Compute", "ServiceSubcategory": "Other (Compute)",
               "x_ServiceCode": "ComputeSavingsPlans", "RegionId": None, "RegionName": None, "AvailabilityZone": None}


def test_savings_plan_recurring_fee_with_unused_commitment(batch):
    """0.10 USD/h no-upfront plan, 0.06 used: the fee is a Purchase (EffectiveCost 0); the 0.04 USD idle
    part becomes its own Usage row with CommitmentDiscountStatus Unused."""
    conv = case(batch, "sp_recurring_fee")
    assert conv.focus.height == 2
    fee = conv.one(CommitmentDiscountStatus=None)
    unused = conv.one(CommitmentDiscountStatus="Unused")
    commitment = {"CommitmentDiscountId": SP_ARN, "CommitmentDiscountCategory": "Spend",
                  "CommitmentDiscountType": "Savings Plan"}
    check(fee, "SavingsPlanRecurringFee", COMMON, HOUR, SP_PURCHASE, commitment,
          {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "Recurring",
           "PricingCategory": "Standard", "PricingQuantity": D(1), "PricingUnit": "Hours",
           "ConsumedQuantity": None, "ConsumedUnit": None, "ResourceId": SP_ARN, "ResourceType": SP_NAME,
           "CommitmentDiscountStatus": None, "CommitmentDiscountQuantity": D("0.10"),
           "CommitmentDiscountUnit": "USD", "SkuId": "CSP1YRNUF", "SkuPriceId": "CSP1YRNUF.USD1"},
          money("0.10", effective="0"), prices("0.10", "0.10"), tags=None)
    check(unused, "SavingsPlanRecurringFee unused", COMMON, HOUR, SP_PURCHASE, commitment,
          {"ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
           "PricingCategory": "Committed", "CommitmentDiscountStatus": "Unused",
           "PricingQuantity": D("0.04"), "PricingUnit": "USD", "ConsumedQuantity": None, "ConsumedUnit": None,
           "CommitmentDiscountQuantity": D("0.04"), "CommitmentDiscountUnit": "USD",
           "ResourceId": SP_ARN, "ResourceType": SP_NAME},
          money("0", effective="0.04", listed="0.04", contracted="0.04"), prices("1", "1"), tags=None,
          changes=["derived: unused commitment of SavingsPlanRecurringFee row 1 (sp_recurring_fee.csv)"])
    assert unused["x_RowId"] == fee["x_RowId"] + "~unused"
    # R-EffectiveCost-4 for the hour: Used (0.06, on covered usage elsewhere) + Unused (0.04) = fee 0.10


def test_savings_plan_upfront_fee(batch):
    conv = case(batch, "sp_upfront_fee")
    check(conv.one(), "SavingsPlanUpfrontFee", COMMON, HOUR, SP_PURCHASE,
          {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "One-Time",
           "PricingCategory": "Standard", "PricingQuantity": D(1), "PricingUnit": None,
           "ConsumedQuantity": None, "ConsumedUnit": None, "ResourceId": SP_ARN_UPFRONT,
           "CommitmentDiscountId": SP_ARN_UPFRONT, "CommitmentDiscountCategory": "Spend",
           "CommitmentDiscountType": "Savings Plan", "CommitmentDiscountStatus": None,
           "CommitmentDiscountQuantity": D("876.00"), "CommitmentDiscountUnit": "USD"},
          money("876.00", effective="0"), prices("876.00", "876.00"), tags=None)
    assert "R-PricingUnit-1" in conv.one()["x_ProviderDataGaps"]  # pricing/unit empty on the row


def test_ri_fee_with_unused_upfront_and_recurring(batch):
    """Partial upfront RI, January: 744 h x 0.03 = 22.32 recurring fee (Purchase, EffectiveCost 0). 100 h
    idle: unused amortized upfront 3.00 + unused recurring 3.00 = 6.00 on an Unused Usage row."""
    conv = case(batch, "ri_fee")
    assert conv.focus.height == 2
    fee = conv.one(CommitmentDiscountStatus=None)
    unused = conv.one(CommitmentDiscountStatus="Unused")
    commitment = {"CommitmentDiscountId": RI_ARN, "CommitmentDiscountCategory": "Usage",
                  "CommitmentDiscountType": "Reserved Instance"}
    notes = [EOD_NOTE, "PricingUnit: empty on RIFee"]
    check(fee, "RIFee", COMMON, JANUARY, EC2_PRODUCT, NO_RESOURCE, commitment,
          {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "Recurring",
           "PricingCategory": "Standard", "PricingQuantity": D(744), "PricingUnit": "Hours",
           "ConsumedQuantity": None, "ConsumedUnit": None, "CommitmentDiscountStatus": None,
           "CommitmentDiscountQuantity": D(744), "CommitmentDiscountUnit": "Hours", "SkuId": "M5LSKU000001",
           "SkuPriceId": "M5LSKU000001.4NA7Y494T4.6YS6EN2CT7"},
          money("22.32", effective="0"), prices("0.03", "0.03"), tags=None, changes=notes)
    check(unused, "RIFee unused", COMMON, JANUARY, EC2_PRODUCT, commitment,
          {"ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "PricingCategory": "Committed",
           "CommitmentDiscountStatus": "Unused", "PricingQuantity": D(100), "PricingUnit": "Hours",
           "ConsumedQuantity": None, "ConsumedUnit": None, "CommitmentDiscountQuantity": D(100),
           "CommitmentDiscountUnit": "Hours", "ResourceId": RI_ARN, "ResourceType": EC2},
          money("0", effective="6.00", listed="6.00", contracted="6.00"), prices("0.06", "0.06"), tags=None,
          changes=[*notes, "derived: unused commitment of RIFee row 1 (ri_fee.csv)"])
    assert unused["x_RowId"] == fee["x_RowId"] + "~unused"


def test_fee_with_reservation_arn_is_ri_upfront_purchase(batch):
    conv = case(batch, "ri_upfront_fee")
    check(conv.one(), "Fee (RI upfront)", COMMON, HOUR, EC2_PRODUCT, NO_RESOURCE,
          {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "One-Time",
           "PricingCategory": "Standard", "PricingQuantity": D(1), "PricingUnit": None,
           "ConsumedQuantity": None, "ConsumedUnit": None,
           "CommitmentDiscountId": RI_ARN, "CommitmentDiscountCategory": "Usage",
           "CommitmentDiscountType": "Reserved Instance", "CommitmentDiscountStatus": None,
           # the Fee row carries the number of RIs bought (1) but no unit / term hours: a provider gap
           "CommitmentDiscountQuantity": D(1), "CommitmentDiscountUnit": None, "SkuPriceId": None},
          # prepaid: billed now, amortized onto the RI's DiscountedUsage / RIFee unused rows
          money("263.00", effective="0"), prices("263.00", "263.00"), tags=None)
    gaps = conv.one()["x_ProviderDataGaps"]
    assert {"R-PricingUnit-1", "R-CDUnit-1", "R-SkuPriceId-1"} <= set(gaps)


def test_fee_without_reservation_arn_is_plain_purchase(batch):
    """Support fee: a purchase that is not a commitment, so EffectiveCost = BilledCost; billed
    monthly (bill/BillType Anniversary), so Recurring."""
    conv = case(batch, "support_fee")
    check(conv.one(), "Fee (support)", COMMON, JANUARY, NO_RESOURCE, NO_COMMITMENT,
          {"ChargeCategory": "Purchase", "ChargeClass": None, "ChargeFrequency": "Recurring",
           "PricingCategory": "Standard", "PricingQuantity": D(1), "PricingUnit": None,
           "ConsumedQuantity": None, "ConsumedUnit": None, "ServiceName": "AWS Support (Business)",
           "ServiceCategory": "Management and Governance", "ServiceSubcategory": "Support",
           "RegionId": None, "RegionName": None, "SkuId": "SUPBUS0001", "SkuPriceId": None},
          money("100.00"), prices(None, None), tags=None)
    assert {"R-UnitPrice-1", "R-PricingUnit-1"} <= set(conv.one()["x_ProviderDataGaps"])


def test_marketplace_fee_invoiced_by_aws_published_by_seller(batch):
    """AWS Marketplace: AWS invoices (bill/InvoicingEntity) and collects, the seller publishes."""
    conv = case(batch, "marketplace_fee")
    check(conv.one(), "Marketplace Fee", COMMON, JANUARY, NO_RESOURCE, NO_COMMITMENT,
          {"ChargeCategory": "Purchase", "ChargeFrequency": "Recurring", "PricingCategory": "Standard",
           "InvoiceIssuerName": AWS_INC, "PublisherName": "Acme Software LLC", "ProviderName": "AWS",
           "ServiceName": "Acme Observability", "ServiceCategory": "Other", "ServiceSubcategory": "Other (Other)",
           "PricingQuantity": D(1), "PricingUnit": "Units", "SkuId": "MKT0001", "SkuPriceId": "MKT0001.MONTHLY"},
          # R-BilledCost-2: AWS, not a third party, collects the payment -> billed
          money("50.00"), prices("50.00", "50.00"), tags=None, changes=[UNMAPPED])


def test_tax(batch):
    conv = case(batch, "tax")
    check(conv.one(), "Tax", COMMON, JANUARY, NO_RESOURCE, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Tax", "ChargeClass": None, "ChargeFrequency": "One-Time",
           "ServiceName": EC2, "ServiceCategory": "Compute", "SkuId": None, "SkuPriceId": None, "SkuMeter": None,
           "RegionId": None, "RegionName": None},
          money("1.23"), tags=None)


def test_credit(batch):
    conv = case(batch, "credit")
    check(conv.one(), "Credit", COMMON, JANUARY, NO_RESOURCE, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Credit", "ChargeClass": None, "ChargeFrequency": "One-Time"},
          money("-10.00"), tags=None)


def test_refund_and_refund_of_an_earlier_period_is_a_correction(batch):
    conv = case(batch, "refund")
    same_period = conv.one(ChargeClass=None)
    correction = conv.one(ChargeClass="Correction")
    check(same_period, "Refund (same period)", COMMON, JANUARY, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Credit", "ChargeFrequency": "One-Time", "x_ChargeType": "Refund"},
          money("-5.00"), tags=None)
    check(correction, "Refund (earlier period)", COMMON, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Credit", "ChargeClass": "Correction", "ChargeFrequency": "One-Time",
           "BillingPeriodStart": ts("2023-02-01T00:00:00Z"), "BillingPeriodEnd": ts("2023-03-01T00:00:00Z"),
           "ChargePeriodStart": ts("2023-01-15T00:00:00Z"), "ChargePeriodEnd": ts("2023-01-16T00:00:00Z")},
          money("-7.50"), tags=None)


@pytest.mark.parametrize(("name", "line_item_type", "amount"), [
    ("edp_discount", "EdpDiscount", "-0.0096"),
    ("private_rate_discount", "PrivateRateDiscount", "-0.0050"),
    ("discount", "Discount", "-0.0048"),
    ("distributor_discount", "DistributorDiscount", "-0.0010"),
])
def test_negotiated_discounts_are_usage_based_credits(batch, name, line_item_type, amount):
    """Separate discount rows (manual discount compatibility): Credit, Usage-Based, in both cost bases
    (BilledCost and EffectiveCost use the gross unblended cost, so the discount counts in both)."""
    conv = case(batch, name)
    check(conv.one(), line_item_type, COMMON, HOUR, EC2_PRODUCT, EC2_RESOURCE, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Credit", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
           "SkuPriceId": "M5LSKU000001.JRTCKXETXF.6YS6EN2CT7", "x_ChargeType": line_item_type},
          money(amount), tags=TAGS)


def test_bundled_discount(batch):
    conv = case(batch, "bundled_discount")
    check(conv.one(), "BundledDiscount", COMMON, HOUR, NO_RESOURCE, NO_COMMITMENT, NOT_PRICED,
          {"ChargeCategory": "Credit", "ChargeFrequency": "Usage-Based", "ServiceName": "AWS Data Transfer",
           "ServiceCategory": "Networking", "ServiceSubcategory": "Network Connectivity",
           "x_ChargeType": "BundledDiscount"},
          money("-0.90"), tags=None)


def test_every_line_item_type_is_covered(batch):
    covered = set(batch.raw["line_item_line_item_type"].unique().to_list())
    assert covered == set(LINE_ITEM_TYPES) | set(DROPPED_LINE_ITEM_TYPES)


def test_whole_batch_is_conformant_and_conserved(batch):
    assert_gates(batch)  # includes check_conformance: 0 converter defects


# ---------------------------------------------------------------------------------------------
# Headers, nulls, account ids, times, derived values, missing columns
# ---------------------------------------------------------------------------------------------
# The Athena (Parquet-integration) spelling of every legacy header used by HEADER_ROWS, written by hand.
ATHENA = {
    "identity/LineItemId": "identity_line_item_id", "identity/TimeInterval": "identity_time_interval",
    "bill/InvoiceId": "bill_invoice_id", "bill/InvoicingEntity": "bill_invoicing_entity",
    "bill/BillingEntity": "bill_billing_entity", "bill/BillType": "bill_bill_type",
    "bill/PayerAccountId": "bill_payer_account_id",
    "bill/BillingPeriodStartDate": "bill_billing_period_start_date",
    "bill/BillingPeriodEndDate": "bill_billing_period_end_date",
    "lineItem/UsageAccountId": "line_item_usage_account_id", "lineItem/LineItemType": "line_item_line_item_type",
    "lineItem/UsageStartDate": "line_item_usage_start_date", "lineItem/UsageEndDate": "line_item_usage_end_date",
    "lineItem/ProductCode": "line_item_product_code", "lineItem/UsageType": "line_item_usage_type",
    "lineItem/Operation": "line_item_operation", "lineItem/AvailabilityZone": "line_item_availability_zone",
    "lineItem/ResourceId": "line_item_resource_id", "lineItem/UsageAmount": "line_item_usage_amount",
    "lineItem/CurrencyCode": "line_item_currency_code", "lineItem/UnblendedRate": "line_item_unblended_rate",
    "lineItem/UnblendedCost": "line_item_unblended_cost",
    "lineItem/LineItemDescription": "line_item_line_item_description",
    "lineItem/LegalEntity": "line_item_legal_entity", "product/ProductName": "product_product_name",
    "product/region": "product_region", "product/sku": "product_sku", "product/productFamily": "product_product_family",
    "pricing/RateCode": "pricing_rate_code", "pricing/publicOnDemandRate": "pricing_public_on_demand_rate",
    "pricing/publicOnDemandCost": "pricing_public_on_demand_cost", "pricing/term": "pricing_term",
    "pricing/unit": "pricing_unit", "reservation/ReservationARN": "reservation_reservation_a_r_n",
    "reservation/EffectiveCost": "reservation_effective_cost",
    "reservation/AmortizedUpfrontCostForUsage": "reservation_amortized_upfront_cost_for_usage",
    "reservation/RecurringFeeForUsage": "reservation_recurring_fee_for_usage",
    "savingsPlan/SavingsPlanARN": "savings_plan_savings_plan_a_r_n",
    "savingsPlan/TotalCommitmentToDate": "savings_plan_total_commitment_to_date",
    "savingsPlan/UsedCommitment": "savings_plan_used_commitment",
    "savingsPlan/RecurringCommitmentForBillingPeriod": "savings_plan_recurring_commitment_for_billing_period",
    "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod":
        "savings_plan_amortized_upfront_commitment_for_billing_period",
    "resourceTags/user:CostCenter": "resource_tags_user_cost_center",
    "resourceTags/aws:createdBy": "resource_tags_aws_created_by",
}
# Upper/lower/mixed case as different generators write them (case must not matter).
MIXED = {
    "lineItem/LineItemType": "LINEITEM/LINEITEMTYPE", "lineItem/UnblendedCost": "lineitem/unblendedcost",
    "bill/PayerAccountId": "Bill/PayerAccountID", "lineItem/UsageStartDate": "LineItem/usageStartDate",
    "lineItem/CurrencyCode": "lineItem/currencycode", "reservation/ReservationARN": "reservation/reservationArn",
    "savingsPlan/SavingsPlanARN": "savingsplan/SavingsPlanArn", "product/ProductName": "product/PRODUCTNAME",
    "pricing/publicOnDemandCost": "Pricing/PublicOnDemandCost", "resourceTags/user:CostCenter":
        "ResourceTags/user:CostCenter", "savingsPlan/UsedCommitment": "SAVINGSPLAN/USEDCOMMITMENT",
    "lineItem/UsageAmount": "lineItem/usageamount", "reservation/EffectiveCost": "Reservation/EFFECTIVECOST",
}
HEADER_ROWS = [CASES["usage"][0], CASES["discounted_usage"][0], SP_FEE]
IGNORED = ["x_SourceFile", "x_RowId", "x_SourceChanges"]


def test_athena_snake_case_and_mixed_case_headers_map_identically(tmp_path):
    headers = list(dict.fromkeys(h for r in HEADER_ROWS for h in r))
    assert set(headers) <= set(ATHENA)
    def rows(file: str) -> list[dict[str, str]]:  # the same rows, other line items (one file each)
        return [cur_row(r, {"identity/LineItemId": f"{file}-{r['identity/LineItemId']}"}) for r in HEADER_ROWS]

    legacy = write_cur(tmp_path / "legacy.csv", rows("legacy"), headers)
    athena = write_cur(tmp_path / "athena.csv", [{ATHENA[k]: v for k, v in r.items()} for r in rows("athena")],
                       [ATHENA[h] for h in headers])
    mixed = write_cur(tmp_path / "mixed.csv", [{MIXED.get(k, k): v for k, v in r.items()} for r in rows("mixed")],
                      [MIXED.get(h, h) for h in headers])
    conv = convert([legacy, athena, mixed])
    assert conv.quarantine.height == 0
    assert_gates(conv)  # includes check_conformance: 0 converter defects
    frames = {name: conv.focus.filter(pl.col("x_SourceFile") == name).sort("x_SourceRow", "x_RowId")
              for name in ("legacy.csv", "athena.csv", "mixed.csv")}
    assert frames["legacy.csv"].height == 4  # 3 rows + the savings plan's Unused row
    assert frames["legacy.csv"].drop(IGNORED).equals(frames["mixed.csv"].drop(IGNORED))
    # Athena lower-cases tag keys (resource_tags_user_cost_center): everything but Tags is identical
    assert frames["legacy.csv"].drop(*IGNORED, "Tags").equals(frames["athena.csv"].drop(*IGNORED, "Tags"))
    tags = [json.loads(t) if t else None for t in frames["athena.csv"]["Tags"]]
    assert tags[0] == {"cost_center": "cc-1234", "aws:created_by": "IAMUser:AIDAEXAMPLE:alice"}


@pytest.fixture(scope="module")
def edges(tmp_path_factory) -> Converted:
    """Small edge-case files, converted in one to_focus call."""
    folder = tmp_path_factory.mktemp("edges")
    blank = row({"identity/LineItemId": "li-blank", "lineItem/ResourceId": "", "lineItem/AvailabilityZone": "   ",
                 "bill/InvoiceId": "", "lineItem/LegalEntity": "", "pricing/publicOnDemandCost": "",
                 "lineItem/UsageAccountId": "", "resourceTags/user:CostCenter": "",
                 "resourceTags/aws:createdBy": ""})
    ids = row({"identity/LineItemId": "li-ids", "bill/PayerAccountId": "000123456789",
               "lineItem/UsageAccountId": "001234567890"})
    # Parquet with integer account ids (a generator that typed them): zero-padded back to 12 digits
    pq_path = folder / "int_ids.parquet"
    pl.DataFrame([cur_row(ids, {"identity/LineItemId": "li-ids-parquet"})]).with_columns(pl.col("bill/PayerAccountId", "lineItem/UsageAccountId").cast(pl.Int64)) \
        .write_parquet(pq_path)
    tax = CASES["tax"][0]
    eod = [cur_row(tax, {"identity/LineItemId": "a", "lineItem/UsageEndDate": "2023-01-31T23:59:59Z"}),
           cur_row(tax, {"identity/LineItemId": "b", "lineItem/UsageEndDate": "2023-01-31 23:59:59.000"}),
           cur_row(tax, {"identity/LineItemId": "c"})]  # already exclusive: unchanged
    norate = row({"identity/LineItemId": "li-norate", "lineItem/UnblendedRate": ""})
    paths = [write_cur(folder / "blanks.csv", [blank]), write_cur(folder / "ids.csv", [ids]), pq_path,
             write_cur(folder / "eod.csv", eod), write_cur(folder / "norate.csv", [norate])]
    conv = convert(paths)
    assert conv.quarantine.height == 0
    assert conv.raw["x_ParseErrors"].null_count() == conv.raw.height
    return conv


def test_empty_strings_are_null(edges):
    """'' (and whitespace-only) cells are null in FOCUS, never placeholders (R-Null-1)."""
    conv = edges.for_file("blanks.csv")
    b = conv.one()
    assert_row(b, {"ResourceId": None, "ResourceType": None, "AvailabilityZone": None, "InvoiceId": None,
                   "SubAccountId": None, "SubAccountType": None, "Tags": None,
                   "PublisherName": AWS_INC, "ListCost": D("0.096"), "BilledCost": D("0.096")}, "blank cells")
    assert "PublisherName: lineItem/LegalEntity empty; Amazon Web Services, Inc." in b["x_SourceChanges"]
    assert "ListCost: pricing/publicOnDemandCost empty; unblended cost used" in b["x_SourceChanges"]
    assert_gates(conv)


@pytest.mark.parametrize("label", ["ids.csv", "int_ids.parquet"])
def test_twelve_digit_account_ids_keep_leading_zeros(edges, label):
    conv = edges.for_file(label)
    assert_row(conv.one(), {"BillingAccountId": "000123456789", "SubAccountId": "001234567890"}, label)
    assert_gates(conv)


def test_end_of_day_charge_period_end_moves_to_next_midnight(edges):
    conv = edges.for_file("eod.csv")
    for r in conv.focus.sort("x_SourceRow").to_dicts():
        assert r["ChargePeriodEnd"] == ts("2023-02-01T00:00:00Z"), r["x_SourceRow"]
        noted = any(c.startswith(EOD_NOTE) for c in r["x_SourceChanges"] or [])
        assert noted == (r["x_SourceRow"] != 3), r["x_SourceRow"]
    assert_gates(conv)


def test_empty_unblended_rate_is_a_provider_gap_not_a_defect(edges):
    """A Usage row without lineItem/UnblendedRate: ContractedUnitPrice (and its PricingCurrency twin) cannot
    be derived; the row must record the gaps this causes (R-UnitPrice-1, R-PCUnitPrice-1) so that the
    conformance gate does not count them as converter defects."""
    conv = edges.for_file("norate.csv")
    r = conv.one()
    assert_row(r, {"ContractedUnitPrice": None, "PricingCurrencyContractedUnitPrice": None,
                   "ListUnitPrice": D("0.096"), "ContractedCost": D("0.096")}, "no unblended rate")
    assert {"R-UnitPrice-1", "R-PCUnitPrice-1"} <= set(r["x_ProviderDataGaps"])
    assert_gates(conv)


def test_missing_invoicing_entity_is_derived_and_recorded(tmp_path):
    """CURs before 2021 have no bill/InvoicingEntity: the seller of record (lineItem/LegalEntity) issues the
    invoice, except for AWS Marketplace, which AWS invoices."""
    emea = row({"lineItem/LegalEntity": "Amazon Web Services EMEA SARL"})
    market = CASES["marketplace_fee"][0]
    headers = [h for h in dict.fromkeys([*emea, *market]) if h != "bill/InvoicingEntity"]
    conv = convert(write_cur(tmp_path / "no_invoicing_entity.csv", [emea, market], headers))
    assert_gates(conv)  # includes check_conformance: 0 converter defects
    got = {r["x_ChargeType"]: r for r in conv.focus.to_dicts()}
    assert_row(got["Usage"], {"InvoiceIssuerName": "Amazon Web Services EMEA SARL",
                              "PublisherName": "Amazon Web Services EMEA SARL"}, "EMEA usage")
    assert_row(got["Fee"], {"InvoiceIssuerName": AWS_INC, "PublisherName": "Acme Software LLC"}, "marketplace")
    assert all(any(c.startswith(INVOICING_NOTE) for c in r["x_SourceChanges"]) for r in got.values())


# A multi-type CUR: every optional column group (or one column) can be missing without a crash.
ALL_TYPES = [r for name in ("usage", "discounted_usage", "sp_covered_usage", "sp_recurring_fee", "ri_fee",
                            "ri_upfront_fee", "support_fee", "tax", "credit", "refund") for r in CASES[name]]
ALL_HEADERS = list(dict.fromkeys(h for r in ALL_TYPES for h in r))
REQUIRED_HEADERS = {"lineItem/LineItemType", "lineItem/UnblendedCost", "lineItem/UsageStartDate",
                    "lineItem/CurrencyCode", "bill/PayerAccountId"}
OPTIONAL_HEADERS = [h for h in ALL_HEADERS if h not in REQUIRED_HEADERS]


def _prefixed(*prefixes: str) -> list[str]:
    return [h for h in OPTIONAL_HEADERS if h.startswith(prefixes)]


DROPS = {
    "identity, bill, resourceTags": _prefixed("identity/", "bill/", "resourceTags/"),
    "optional lineItem": _prefixed("lineItem/"),
    "product, pricing": _prefixed("product/", "pricing/"),
    "reservation, savingsPlan": _prefixed("reservation/", "savingsPlan/"),
    "every optional column": OPTIONAL_HEADERS,
    "reservation/ReservationARN": ["reservation/ReservationARN"],
    "savingsPlan/SavingsPlanARN": ["savingsPlan/SavingsPlanARN"],
}


def test_required_headers_match_the_reader():
    assert {classify_header(h).name for h in REQUIRED_HEADERS} == set(REQUIRED_COLUMNS)


@pytest.mark.parametrize("dropped", list(DROPS), ids=list(DROPS))
def test_missing_optional_columns_never_crash(tmp_path, dropped):
    """No crash, 0 converter defects, costs and rows conserved. Without the commitment's ARN a fee row's
    unused commitment cannot become an Unused row (it needs a CommitmentDiscountId): such a row may be
    quarantined, but its amortized cost may not vanish (conservation)."""
    headers = [h for h in ALL_HEADERS if h not in DROPS[dropped]]
    conv = convert(write_cur(tmp_path / "cur.csv", ALL_TYPES, headers))
    if dropped.endswith("ARN"):
        assert set(conv.quarantine["x_ChargeType"].to_list()) <= {"RIFee", "SavingsPlanRecurringFee"}
    else:
        assert conv.quarantine.height == 0, conv.quarantine
    assert conv.focus.height + conv.quarantine.height >= len(ALL_TYPES) - 1  # the negation row is folded away
    assert_gates(conv)  # includes check_conformance: 0 converter defects
