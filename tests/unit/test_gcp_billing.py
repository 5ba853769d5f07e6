"""The GCP billing export mapping, case by case, against hand-computed FOCUS 1.2 rows.

Each case is a tiny BigQuery extract written here (nested JSON lines as ``bq extract`` writes them,
or the flattened CSV koku writes); the nested cases are read with ``scan_raw`` and mapped by ONE
``to_focus`` call (module fixture ``batch``; cases told apart by ``x_SourceFile``) because planning
``to_focus`` takes a moment. Every case must pass the gating checks of ``pipeline.check_focus``
(0 converter defects, exact billed and amortized conservation, row conservation, unique x_RowId).

Expected values are computed by hand from the export row, the GCP field meanings
(/work/shared/providers/SCHEMAS.md §4, MAPPINGS.md §3) and the FOCUS rules (RULES.md), never read
back from the converter.
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.pipeline import FocusChecks, check_focus, convert_files
from focus_platform.sources import FORMATS, SourceFormatError, detect_format
from focus_platform.sources import gcp_billing as gcp
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE, Lineage
from focus_platform.spec.columns import focus_schema

LINEAGE = Lineage(source="test", source_format="gcp-billing", delivery_id="test-delivery", billing_period=None,
                  ingested_at=datetime(2024, 5, 1, tzinfo=UTC))
ACCOUNT = "012345-6789AB-CDEF01"
SUB = "7d1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Four N1 core-hours in us-central1-a on 10 March 2024 (the day US daylight saving time starts),
# as the detailed export has it.
BASE = {
    "billing_account_id": ACCOUNT,
    "service": {"id": "6F81-5844-456A", "description": "Compute Engine"},
    "sku": {"id": "2E27-4F75-95CD", "description": "N1 Predefined Instance Core running in Americas"},
    "usage_start_time": "2024-03-10 10:00:00 UTC",
    "usage_end_time": "2024-03-10 11:00:00 UTC",
    "project": {"id": "acme-prod", "number": "123456789012", "name": "Acme prod",
                "labels": [{"key": "env", "value": "prod"}, {"key": "team", "value": "core"}],
                "ancestry_numbers": "/111111111111/123456789012/",
                "ancestors": [{"resource_name": "projects/123456789012", "display_name": "acme-prod"},
                              {"resource_name": "organizations/111111111111", "display_name": "acme.example"}]},
    "labels": [{"key": "team", "value": "payments"}, {"key": "app", "value": "api"}],
    "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "n1-standard-4"}],
    "location": {"location": "us-central1", "country": "US", "region": "us-central1", "zone": "us-central1-a"},
    "tags": [{"key": "environment", "value": "production", "inherited": True, "namespace": "111111111111"}],
    "export_time": "2024-03-10 16:12:30.123 UTC",
    "cost": 0.126444,
    "currency": "USD",
    "currency_conversion_rate": 1.0,
    "usage": {"amount": 14400.0, "unit": "seconds", "amount_in_pricing_units": 4.0, "pricing_unit": "hour"},
    "credits": [],
    "invoice": {"month": "202403", "publisher_type": "GOOGLE"},
    "cost_type": "regular",
    "adjustment_info": {"id": None, "description": None, "mode": None, "type": None},
    "cost_at_list": 0.1328,
    "price": {"effective_price": 0.031611, "tier_start_amount": 0.0, "unit": "hour", "pricing_unit_quantity": 1.0},
    "resource": {"name": "vm-api-1",
                 "global_name": "//compute.googleapis.com/projects/acme-prod/zones/us-central1-a/instances/42"},
    "subscription": {"instance_id": None},
    "transaction_type": "GOOGLE",
    "seller_name": None,
}


def row(**changes) -> dict:
    """BASE with changes; ``a__b=v`` sets a nested field."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__")
            out[outer] = dict(out[outer] or {}, **{inner: value})
        else:
            out[key] = value
    return out


def credit(type_: str, amount: float, name: str = "", full_name: str | None = None, id_: str = "") -> dict:
    return {"name": name or type_.title(), "amount": amount, "full_name": full_name, "id": id_ or type_, "type": type_}


SUD = credit("SUSTAINED_USAGE_DISCOUNT", -0.025289, "Sustained Usage Discount", id_="SustainedUsageDiscount")
CONTRACT = credit("DISCOUNT", -0.006322, "Spending based discounts (contractual)", id_="SpendingBasedDiscount")
PROMO = credit("PROMOTION", -0.05, "FreeTrial:Credit-012345-6789AB-CDEF01", "Free trial credit", "12-b34-c56-d78")

CASES: dict[str, list[dict]] = {
    "usage": [BASE],
    "discounts": [row(credits=[SUD, CONTRACT])],
    "promotion": [row(credits=[PROMO, SUD])],
    "cud": [
        # fully CUD-covered core hours, and the hourly fee of the commitment
        row(credits=[credit("COMMITTED_USAGE_DISCOUNT", -0.126444, "Committed Usage Discount: CPU",
                            id_="CommittedUsageDiscountCPU:")], subscription={"instance_id": SUB}),
        row(sku={"id": "76DA-BD5B-1A4B", "description": "Commitment v1: Cpu in Americas for 1 Year"},
            usage={"amount": 86400.0, "unit": "seconds", "amount_in_pricing_units": 24.0, "pricing_unit": "hour"},
            cost=0.47796, cost_at_list=0.47796, labels=[], system_labels=[], subscription={"instance_id": SUB},
            resource={"name": "commitment-cpu-1y",
                      "global_name": "//compute.googleapis.com/projects/acme-prod/regions/us-central1/commitments/c1"}),
        # a legacy spend-based (dollar base) commitment: its fee and half-covered Cloud SQL usage
        row(service={"id": "9662-B51E-5089", "description": "Cloud SQL"},
            sku={"id": "C0FF-EE00-0001", "description": "Commitment - dollar based v1: Cloud SQL for 1 year"},
            usage={"amount": 3600.0, "unit": "seconds", "amount_in_pricing_units": 1.0, "pricing_unit": "hour"},
            cost=0.5, cost_at_list=0.5, labels=[], system_labels=[], tags=[], resource=None,
            subscription={"instance_id": "spend-cud-1"}),
        row(service={"id": "9662-B51E-5089", "description": "Cloud SQL"},
            sku={"id": "B4B8-0C5B-7C31", "description": "Cloud SQL for PostgreSQL: Zonal - vCPU in Americas"},
            usage={"amount": 7200.0, "unit": "seconds", "amount_in_pricing_units": 2.0, "pricing_unit": "hour"},
            cost=0.0826, cost_at_list=0.0826, labels=[], system_labels=[], tags=[], resource=None,
            credits=[credit("COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE", -0.0413, "Committed use discount - dollar base")],
            subscription={"instance_id": "spend-cud-1"}),
    ],
    "tax": [row(cost_type="tax", sku=None, usage=None, cost=1.5, cost_at_list=None, price=None, labels=[],
                system_labels=[], tags=[], resource=None, location=None,
                usage_start_time="2024-03-01 08:00:00 UTC", usage_end_time="2024-04-01 07:00:00 UTC")],
    "adjustments": [
        # a February usage correction on the March invoice: negation, and the corrected re-monetization
        row(cost_type="adjustment", cost=-0.126444, cost_at_list=-0.1328,
            usage={"amount": -14400.0, "unit": "seconds", "amount_in_pricing_units": -4.0, "pricing_unit": "hour"},
            usage_start_time="2024-02-20 10:00:00 UTC", usage_end_time="2024-02-20 11:00:00 UTC",
            adjustment_info={"id": "adj-1", "description": "Usage correction", "mode": "COMPLETE_NEGATION_WITH_REMONETIZATION",
                             "type": "USAGE_CORRECTION"}),
        row(cost_type="adjustment", cost=0.0948,
            usage={"amount": 10800.0, "unit": "seconds", "amount_in_pricing_units": 3.0, "pricing_unit": "hour"},
            usage_start_time="2024-02-20 10:00:00 UTC", usage_end_time="2024-02-20 11:00:00 UTC",
            adjustment_info={"id": "adj-1", "description": "Usage correction", "mode": "COMPLETE_NEGATION_WITH_REMONETIZATION",
                             "type": "USAGE_CORRECTION"}),
        # a goodwill credit for March: an adjustment inside the invoiced month is no correction
        row(cost_type="adjustment", cost=-20.0, usage=None, sku=None, cost_at_list=None, price=None, resource=None,
            adjustment_info={"id": "gw-1", "description": None, "mode": "MANUAL_ADJUSTMENT", "type": "GOODWILL"}),
        row(cost_type="rounding error", cost=0.000001, usage=None, sku=None, cost_at_list=None, price=None,
            resource=None, labels=[], system_labels=[], tags=[]),
    ],
    "spot": [row(sku={"id": "1E8A-0D6F-2F43",
                      "description": "Spot Preemptible N1 Predefined Instance Core running in Americas"},
                 cost=0.02662, cost_at_list=0.02662)],
    "partner": [row(invoice={"month": "202403", "publisher_type": "PARTNER"})],
    "edge-credits": [
        row(credits=None),
        row(credits=[credit("PROMOTION", 0.0)]),  # a zero promotion: no Credit row
        row(credits=[{"name": "Mystery credit", "amount": -0.01, "full_name": None, "id": None, "type": None}]),
    ],
    "free-tier": [
        row(cost=0.0, cost_at_list=0.0, credits=[]),
        row(service={"id": "152E-C115-5142", "description": "Cloud Run"},
            sku={"id": "A8B6-EB4D-3B2B", "description": "CPU Allocation Time"},
            usage={"amount": 500.0, "unit": "seconds", "amount_in_pricing_units": 500.0, "pricing_unit": "seconds"},
            cost=0.012, cost_at_list=0.012, credits=[credit("FREE_TIER", -0.012, "Free Tier")], resource=None,
            location={"location": "us-central1", "country": "US", "region": "us-central1", "zone": None}),
    ],
    "no-invoice-month": [row(invoice={"month": None, "publisher_type": "GOOGLE"},
                             usage_start_time="2024-04-01 03:00:00 UTC", usage_end_time="2024-04-01 04:00:00 UTC")],
    "quarantine": [row(cost_type="credit"), row(billing_account_id=None), BASE],
    "currencies": [BASE, row(currency="EUR", currency_conversion_rate=0.92, cost=0.116328)],
    "extras": [dict(BASE, my_extra="kept", custom={"a": 1, "b": "x"})],
    "unmapped-service": [row(service={"id": "0000-0000-0000", "description": "Brand New Service"})],
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@dataclass
class Converted:
    raw: pl.DataFrame
    focus: pl.DataFrame
    quarantine: pl.DataFrame
    raw_totals: pl.DataFrame

    def case(self, name: str) -> Converted:
        raw = self.raw.filter(pl.col("x_SourceFile") == name)
        return Converted(raw, self.focus.filter(pl.col("x_SourceFile") == name),
                         gcp.quarantine(raw.lazy()).collect(), gcp.raw_totals(raw.lazy()).collect())

    def rows(self, **where) -> list[dict]:
        df = self.focus
        for name, value in where.items():
            df = df.filter(pl.col(name).is_null() if value is None else pl.col(name) == value)
        return df.sort("x_RowId").to_dicts()

    def one(self, **where) -> dict:
        found = self.rows(**where)
        assert len(found) == 1, f"expected one FOCUS row with {where}, found {len(found)}"
        return found[0]


def convert(paths: list[Path], labels: list[str]) -> Converted:
    frames = [gcp.scan_raw(p, LINEAGE, label=label) for p, label in zip(paths, labels, strict=True)]
    raw = pl.concat(frames, how="diagonal_relaxed").collect()
    lazy = raw.lazy()
    return Converted(raw, gcp.to_focus(lazy).collect(), gcp.quarantine(lazy).collect(),
                     gcp.raw_totals(lazy).collect())


def gates(conv: Converted, accept_unknown_money: bool = False) -> FocusChecks:
    checks = check_focus(conv.focus.lazy(), conv.raw_totals, conv.quarantine, accept_unknown_money=accept_unknown_money)
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == [], "\n".join(checks.problems)
    return checks


def assert_row(actual: dict, expected: dict) -> None:
    problems = [f"{k}: expected {v!r}, got {actual[k]!r}" for k, v in expected.items() if actual[k] != v]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Converted:
    folder = tmp_path_factory.mktemp("gcp-cases")
    paths = [write_jsonl(folder / f"{name}.jsonl", rows) for name, rows in CASES.items()]
    return convert(paths, list(CASES))


# ---------------------------------------------------------------------------------------------
# Every case passes the gates
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_case_passes_the_gates(batch, name):
    gates(batch.case(name))


def test_whole_batch_passes_the_gates_and_keeps_the_focus_column_order(batch):
    checks = gates(batch)
    assert checks.rows.derived == 2  # the promotion and the untyped credit (none for the zero promotion)
    assert batch.focus.columns[:len(focus_schema())] == focus_schema().names()
    assert batch.focus.schema["BilledCost"] == pl.Decimal(38, 12)
    assert batch.focus.schema["ChargePeriodStart"] == pl.Datetime("us", "UTC")
    assert all(c.startswith("x_") for c in batch.focus.columns[57:])


# ---------------------------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------------------------
def test_usage_row(batch):
    r = batch.case("usage").one()
    assert_row(r, {
        "BilledCost": D("0.126444"), "EffectiveCost": D("0.126444"), "ContractedCost": D("0.126444"),
        "ListCost": D("0.1328"), "ContractedUnitPrice": D("0.031611"), "ListUnitPrice": D("0.0332"),
        "PricingCurrencyContractedUnitPrice": D("0.031611"), "PricingCurrencyListUnitPrice": D("0.0332"),
        "PricingCurrencyEffectiveCost": D("0.126444"), "PricingCurrency": "USD",
        "PricingQuantity": D(4), "PricingUnit": "Hours", "ConsumedQuantity": D(14400), "ConsumedUnit": "Seconds",
        "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based", "PricingCategory": "Standard",
        "ChargeDescription": "N1 Predefined Instance Core running in Americas",
        "ChargePeriodStart": ts("2024-03-10 10:00:00"), "ChargePeriodEnd": ts("2024-03-10 11:00:00"),
        # March 2024 in Pacific time: PST at the start, PDT (daylight saving from 10 March) at the end
        "BillingPeriodStart": ts("2024-03-01 08:00:00"), "BillingPeriodEnd": ts("2024-04-01 07:00:00"),
        "BillingAccountId": ACCOUNT, "BillingAccountType": "Billing Account", "BillingAccountName": None,
        "BillingCurrency": "USD", "SubAccountId": "acme-prod", "SubAccountName": "Acme prod", "SubAccountType": "Project",
        "ProviderName": "Google Cloud", "PublisherName": "Google Cloud", "InvoiceIssuerName": "Google Cloud",
        "InvoiceId": None, "RegionId": "us-central1", "RegionName": "Iowa", "AvailabilityZone": "us-central1-a",
        "ServiceName": "Compute Engine", "ServiceCategory": "Compute", "ServiceSubcategory": "Virtual Machines",
        "SkuId": "2E27-4F75-95CD", "SkuPriceId": "2E27-4F75-95CD", "SkuMeter": "N1 Predefined Instance Core running in Americas",
        "ResourceId": "//compute.googleapis.com/projects/acme-prod/zones/us-central1-a/instances/42",
        "ResourceName": "vm-api-1", "ResourceType": "compute.googleapis.com/instances",
        "CommitmentDiscountId": None, "x_ChargeType": "regular", "x_ServiceCode": "6F81-5844-456A",
        "x_InvoiceMonth": "202403", "x_Cost": D("0.126444"), "x_ProjectNumber": "123456789012",
        "x_Location": "us-central1", "x_BillingPeriod": "2024-03", "x_SourceFormat": "gcp-billing",
        "x_SourceFormatVersion": "detailed jsonl", "x_SourceRow": 1,
    })
    # labels > project labels (team=core loses to the resource's team) > tags > system labels
    assert json.loads(r["Tags"]) == {"team": "payments", "app": "api", "env": "prod",
                                     "111111111111/environment": "production",
                                     "compute.googleapis.com/machine_spec": "n1-standard-4"}
    changes = r["x_SourceChanges"]
    assert "PricingUnit: 'hour' in FOCUS unit format" in changes
    assert "ConsumedUnit: 'seconds' in FOCUS unit format" in changes
    assert any(c.startswith("ListUnitPrice/ContractedUnitPrice:") for c in changes)
    assert r["x_ProviderDataGaps"] is None


# ---------------------------------------------------------------------------------------------
# Credits: discounts netted, payments as Credit rows
# ---------------------------------------------------------------------------------------------
def test_discount_credits_are_netted_into_the_row(batch):
    conv = batch.case("discounts")
    r = conv.one()
    net = D("0.126444") - D("0.025289") - D("0.006322")
    assert_row(r, {"BilledCost": net, "EffectiveCost": net, "PricingCurrencyEffectiveCost": net,
                   "ContractedCost": D("0.126444"), "ListCost": D("0.1328"), "ChargeCategory": "Usage",
                   "PricingCategory": "Standard"})
    assert any(c.startswith("BilledCost/EffectiveCost: cost 0.126444") for c in r["x_SourceChanges"])
    assert [c["type"] for c in r["x_Credits"]] == ["SUSTAINED_USAGE_DISCOUNT", "DISCOUNT"]
    assert conv.raw_totals["billed"].item() == net


def test_promotion_becomes_a_credit_row(batch):
    conv = batch.case("promotion")
    usage, promo = conv.one(ChargeCategory="Usage"), conv.one(ChargeCategory="Credit")
    assert usage["BilledCost"] == D("0.126444") - D("0.025289")  # the SUD is netted, the promotion is not
    assert_row(promo, {
        "BilledCost": D("-0.05"), "EffectiveCost": D("-0.05"), "ListCost": D("-0.05"), "ContractedCost": D("-0.05"),
        "PricingCurrencyEffectiveCost": D("-0.05"), "ChargeDescription": "Free trial credit",
        "ChargeFrequency": "Usage-Based", "PricingCategory": None, "PricingQuantity": None, "PricingUnit": None,
        "ListUnitPrice": None, "ContractedUnitPrice": None, "ConsumedQuantity": None, "SkuPriceId": None,
        "SkuId": usage["SkuId"], "SubAccountId": "acme-prod", "ResourceId": usage["ResourceId"], "Tags": usage["Tags"],
        "ServiceName": "Compute Engine", "x_RowId": usage["x_RowId"] + "~credit1", "x_SourceRow": 1, "x_Cost": None,
    })
    assert [c["type"] for c in promo["x_Credits"]] == ["PROMOTION"]
    assert promo["x_SourceChanges"][0].startswith("derived: PROMOTION credit 'FreeTrial:Credit-012345-6789AB-CDEF01'")
    # invoice total = cost + all credits = sum of BilledCost
    total = D("0.126444") - D("0.05") - D("0.025289")
    assert conv.focus["BilledCost"].sum() == total == conv.raw_totals["billed"].item()


def test_empty_null_zero_and_untyped_credits(batch):
    conv = batch.case("edge-credits")
    assert conv.raw["credits"].to_list()[0] is None  # credits null
    usage = conv.rows(ChargeCategory="Usage")
    assert [r["BilledCost"] for r in usage] == [D("0.126444")] * 3
    credit_row = conv.one(ChargeCategory="Credit")  # the untyped credit; none for the zero promotion
    assert credit_row["BilledCost"] == D("-0.01")
    assert credit_row["ChargeDescription"] == "Mystery credit"
    assert credit_row["x_SourceChanges"][0].startswith("derived: untyped credit 'Mystery credit'")
    assert conv.focus["BilledCost"].sum() == D("0.126444") * 3 - D("0.01")


def test_zero_cost_and_free_tier_rows_are_kept(batch):
    conv = batch.case("free-tier")
    assert conv.focus.height == 2
    zero = conv.one(ServiceName="Compute Engine")
    assert zero["BilledCost"] == 0 and zero["ContractedUnitPrice"] == 0 and zero["PricingQuantity"] == 4
    run = conv.one(ServiceName="Cloud Run")
    assert_row(run, {"BilledCost": D(0), "ContractedCost": D("0.012"), "ContractedUnitPrice": D("0.000024"),
                     "PricingUnit": "Seconds", "RegionName": "Iowa", "AvailabilityZone": None,
                     "ServiceCategory": "Compute", "ServiceSubcategory": "Serverless Compute"})


# ---------------------------------------------------------------------------------------------
# Commitments
# ---------------------------------------------------------------------------------------------
def test_cud_covered_usage_and_fee(batch):
    conv = batch.case("cud")
    covered = conv.one(ChargeCategory="Usage", ServiceName="Compute Engine")
    assert_row(covered, {
        "BilledCost": D(0), "EffectiveCost": D(0), "ContractedCost": D("0.126444"), "PricingCategory": "Committed",
        "CommitmentDiscountId": SUB, "CommitmentDiscountCategory": "Usage",
        "CommitmentDiscountType": "Committed Use Discount", "CommitmentDiscountStatus": "Used",
        "CommitmentDiscountQuantity": D(4), "CommitmentDiscountUnit": "Hours",
    })
    fee = conv.one(ChargeCategory="Purchase", ServiceName="Compute Engine")
    assert_row(fee, {
        "BilledCost": D("0.47796"), "EffectiveCost": D("0.47796"), "ChargeFrequency": "Recurring",
        "PricingCategory": "Standard", "CommitmentDiscountId": SUB, "CommitmentDiscountCategory": "Usage",
        "CommitmentDiscountStatus": None, "CommitmentDiscountQuantity": D(24), "CommitmentDiscountUnit": "Hours",
        "ContractedUnitPrice": D("0.019915"), "ResourceType": "compute.googleapis.com/commitments",
        "ConsumedQuantity": None,
    })
    # not amortizable (the export does not link a fee to the usage it covers): a provider-data gap
    assert fee["x_ProviderDataGaps"] == ["R-EffectiveCost-2"]


def test_spend_based_cud(batch):
    conv = batch.case("cud")
    fee = conv.one(ChargeCategory="Purchase", ServiceName="Cloud SQL")
    assert_row(fee, {"CommitmentDiscountId": "spend-cud-1", "CommitmentDiscountCategory": "Spend",
                     "CommitmentDiscountQuantity": D("0.5"), "CommitmentDiscountUnit": "USD"})
    used = conv.one(ChargeCategory="Usage", ServiceName="Cloud SQL")
    assert_row(used, {"BilledCost": D("0.0413"), "PricingCategory": "Committed", "CommitmentDiscountStatus": "Used",
                      "CommitmentDiscountCategory": "Spend", "CommitmentDiscountQuantity": D("0.0413"),
                      "CommitmentDiscountUnit": "USD", "ServiceCategory": "Databases"})


def test_standard_export_cud_usage_has_no_commitment_id(tmp_path):
    """The standard export has no subscription: CUD-covered usage is Committed without an id."""
    rows = [{k: v for k, v in r.items() if k not in ("subscription", "resource", "price", "tags")}
            for r in CASES["cud"][:2]]
    path = write_jsonl(tmp_path / "standard.jsonl", rows)
    conv = convert([path], ["standard"])
    gates(conv)
    covered = conv.one(ChargeCategory="Usage")
    assert covered["PricingCategory"] == "Committed" and covered["CommitmentDiscountId"] is None
    assert covered["x_SourceFormatVersion"] == "standard jsonl"
    fee = conv.one(ChargeCategory="Purchase")
    assert fee["CommitmentDiscountId"] is None and fee["x_ProviderDataGaps"] is None


# ---------------------------------------------------------------------------------------------
# Tax, adjustments, corrections
# ---------------------------------------------------------------------------------------------
def test_tax_row(batch):
    r = batch.case("tax").one()
    assert_row(r, {
        "ChargeCategory": "Tax", "ChargeFrequency": "One-Time", "BilledCost": D("1.5"), "ListCost": D("1.5"),
        "ContractedCost": D("1.5"), "EffectiveCost": D("1.5"), "SkuId": None, "SkuPriceId": None,
        "ListUnitPrice": None, "ContractedUnitPrice": None, "PricingQuantity": None, "PricingUnit": None,
        "PricingCategory": None, "ConsumedQuantity": None, "RegionId": None, "ChargeDescription": "Tax on Compute Engine",
        "SubAccountId": "acme-prod",
    })


def test_usage_correction_of_an_earlier_month_is_a_correction(batch):
    conv = batch.case("adjustments")
    negation, remonetized = conv.rows(ChargeClass="Correction")
    assert_row(negation, {"ChargeCategory": "Adjustment", "BilledCost": D("-0.126444"), "ListCost": D("-0.126444"),
                          "ChargePeriodStart": ts("2024-02-20 10:00:00"), "x_BillingPeriod": "2024-03",
                          "PricingQuantity": None, "ChargeDescription": "N1 Predefined Instance Core running in Americas"})
    assert negation["x_AdjustmentInfo"] == {"id": "adj-1", "description": "Usage correction",
                                            "type": "USAGE_CORRECTION", "mode": "COMPLETE_NEGATION_WITH_REMONETIZATION"}
    assert remonetized["BilledCost"] == D("0.0948")


def test_in_month_goodwill_and_rounding_error_are_adjustments(batch):
    conv = batch.case("adjustments")
    goodwill = conv.one(BilledCost=D(-20))
    assert_row(goodwill, {"ChargeCategory": "Adjustment", "ChargeClass": None, "ChargeFrequency": "One-Time",
                          "ChargeDescription": "Adjustment (GOODWILL) of Compute Engine", "SkuId": None})
    rounding = conv.one(x_ChargeType="rounding error")
    assert rounding["ChargeCategory"] == "Adjustment" and rounding["BilledCost"] == D("0.000001")
    assert conv.focus["BilledCost"].sum() == D("-0.126444") + D("0.0948") - 20 + D("0.000001")


def test_spot_is_dynamic_and_partner_invoices(batch):
    assert batch.case("spot").one()["PricingCategory"] == "Dynamic"
    r = batch.case("partner").one()
    assert r["InvoiceIssuerName"] == gcp.PARTNER_ISSUER
    assert any("invoice.publisher_type PARTNER" in c for c in r["x_SourceChanges"])


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
def test_missing_invoice_month_takes_the_pacific_month(batch):
    r = batch.case("no-invoice-month").one()
    # 2024-04-01 03:00 UTC is 31 March 20:00 in Los Angeles: the March invoice
    assert r["x_BillingPeriod"] == "2024-03" and r["BillingPeriodStart"] == ts("2024-03-01 08:00:00")
    assert any(c.startswith("BillingPeriod: invoice.month empty; 2024-03") for c in r["x_SourceChanges"])


def test_invoice_month_of_another_delivery_period_is_quarantined(tmp_path):
    path = write_jsonl(tmp_path / "feb.jsonl", [BASE, row(invoice={"month": "202402", "publisher_type": "GOOGLE"})])
    lineage = Lineage("test", "gcp-billing", "d", "2024-03", datetime(2024, 5, 1, tzinfo=UTC))
    raw = gcp.scan_raw(path, lineage).collect().lazy()
    q = gcp.quarantine(raw).collect()
    assert q.height == 1
    assert q["x_QuarantineReason"].item().startswith("invoice.month 202402 is not the billing period 2024-03")
    assert q["x_BilledCost"].item() == D("0.126444")
    assert gcp.to_focus(raw).collect().height == 1


def test_unconvertible_rows_are_quarantined_with_their_cost(batch):
    conv = batch.case("quarantine")
    assert conv.focus.height == 1
    reasons = sorted(conv.quarantine["x_QuarantineReason"].to_list())
    assert reasons == ["billing_account_id is empty", "unknown cost_type 'credit'"]
    assert conv.quarantine["x_BilledCost"].to_list() == [D("0.126444")] * 2


def test_mixed_currencies_are_totalled_per_currency(batch):
    conv = batch.case("currencies")
    totals = {r["BillingCurrency"]: r["billed"] for r in conv.raw_totals.iter_rows(named=True)}
    assert totals == {"USD": D("0.126444"), "EUR": D("0.116328")}
    eur = conv.one(BillingCurrency="EUR")
    assert eur["PricingCurrency"] == "EUR" and eur["x_CurrencyConversionRate"] == D("0.92")


def test_unknown_columns_are_kept_as_x_columns(batch):
    r = batch.case("extras").one()
    assert r["x_my_extra"] == "kept"
    assert r["x_custom_a"] == "1" and r["x_custom_b"] == "x"  # nested unknown struct fields, flattened


def test_unmapped_service_falls_back_to_other_with_a_note(batch):
    r = batch.case("unmapped-service").one()
    assert r["ServiceCategory"] == "Other" and r["ServiceSubcategory"] == "Other (Other)"
    assert UNMAPPED_SERVICE_NOTE in r["x_SourceChanges"]


# ---------------------------------------------------------------------------------------------
# The flattened CSV form
# ---------------------------------------------------------------------------------------------
CSV_HEADER = ["billing_account_id", "service.id", "service.description", "sku.id", "sku.description",
              "usage_start_time", "usage_end_time", "project.id", "project.name", "project.labels", "labels",
              "system_labels", "location.location", "location.region", "location.zone", "cost", "currency",
              "usage.amount", "usage.unit", "usage.amount_in_pricing_units", "usage.pricing_unit", "credits",
              "invoice.month", "cost_type"]


def csv_row(**changes) -> dict[str, str]:
    out = {
        "billing_account_id": ACCOUNT, "service.id": "6F81-5844-456A", "service.description": "Compute Engine",
        "sku.id": "2E27-4F75-95CD", "sku.description": "N1 Predefined Instance Core running in Americas",
        "usage_start_time": "2024-03-10 10:00:00+00:00", "usage_end_time": "2024-03-10 11:00:00+00:00",
        "project.id": "acme-prod", "project.name": "Acme prod", "project.labels": "[{'key': 'env', 'value': 'prod'}]",
        "labels": '[{"key": "team", "value": "payments"}]', "system_labels": "[]",
        "location.location": "us-central1", "location.region": "us-central1", "location.zone": "",
        "cost": "0.126444", "currency": "USD", "usage.amount": "14400.0", "usage.unit": "seconds",
        "usage.amount_in_pricing_units": "4.0", "usage.pricing_unit": "hour",
        "credits": "[{'name': 'Sustained Usage Discount', 'amount': -0.025289, 'full_name': None, "
                   "'id': 'SustainedUsageDiscount', 'type': 'SUSTAINED_USAGE_DISCOUNT'}, "
                   "{'name': 'FreeTrial:Credit', 'amount': -5e-06, 'full_name': None, 'id': 'x', 'type': 'PROMOTION'}]",
        "invoice.month": "202403", "cost_type": "regular",
    }
    out.update(changes)
    return out


JSON_CREDITS = ('[{"name": "Sustained Usage Discount", "amount": -0.025289, "full_name": null, '
                '"id": "SustainedUsageDiscount", "type": "SUSTAINED_USAGE_DISCOUNT"}, '
                '{"name": "FreeTrial:Credit", "amount": -5e-06, "full_name": null, "id": "x", "type": "PROMOTION"}]')


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = CSV_HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows([[r.get(h, "") for h in header] for r in rows])
    return path


@pytest.fixture(scope="module")
def csv_batch(tmp_path_factory) -> Converted:
    folder = tmp_path_factory.mktemp("gcp-csv")
    underscored = [h.replace(".", "_") for h in CSV_HEADER]
    files = {
        "dotted": write_csv(folder / "dotted.csv", [csv_row(), csv_row(credits="[]"), csv_row(credits="")]),
        "underscored": write_csv(folder / "underscored.csv",
                                 [{h.replace(".", "_"): v for h, v in csv_row().items()}], underscored),
        "malformed-labels": write_csv(folder / "malformed-labels.csv", [csv_row(labels="[{'key': 'team', 'value'")]),
        "malformed-credits": write_csv(folder / "malformed-credits.csv", [csv_row(credits="[{not json"), csv_row()]),
        "malformed-json-credits": write_csv(folder / "malformed-json-credits.csv", [
            csv_row(credits=JSON_CREDITS), csv_row(credits='[{"name": "Promo", "amount": '), csv_row(credits="[null]"),
            csv_row()]),
        "repr-words": write_csv(folder / "repr-words.csv", [csv_row(credits=(
            "[{'name': 'None left: True', 'amount': -1e-06, 'full_name': None, 'id': 'p', 'type': 'PROMOTION'}]")),
            csv_row()]),
        "bad-values": write_csv(folder / "bad-values.csv",
                                [csv_row(cost="12,5"), csv_row(usage_start_time="yesterday"),
                                 csv_row(**{"invoice.month": "2024-03"})]),
    }
    return convert(list(files.values()), list(files))


def test_csv_python_repr_and_json_forms(csv_batch):
    conv = csv_batch.case("dotted")
    gates(conv)
    first = conv.rows(ChargeCategory="Usage")[0]
    assert first["BilledCost"] == D("0.126444") - D("0.025289")
    assert conv.one(ChargeCategory="Credit")["BilledCost"] == D("-0.000005")
    assert json.loads(first["Tags"]) == {"team": "payments", "env": "prod"}
    assert first["x_SourceFormatVersion"] == "standard csv (flattened)"
    assert [r["BilledCost"] for r in conv.rows(ChargeCategory="Usage")][1:] == [D("0.126444")] * 2  # [] and empty


def test_csv_dotted_and_underscored_names_read_the_same(csv_batch):
    dotted, underscored = csv_batch.case("dotted"), csv_batch.case("underscored")
    gates(underscored)
    a = dotted.rows(ChargeCategory="Usage")[0]
    b = underscored.rows(ChargeCategory="Usage")[0]
    same = ["BilledCost", "ListCost", "PricingQuantity", "Tags", "SubAccountId", "RegionId", "ServiceName", "SkuId"]
    assert {k: a[k] for k in same} == {k: b[k] for k in same}


def test_csv_malformed_labels_keep_the_row(csv_batch):
    conv = csv_batch.case("malformed-labels")
    gates(conv)
    r = conv.one(ChargeCategory="Usage")
    assert json.loads(r["Tags"]) == {"env": "prod"}  # the project labels still parse
    assert any(c.startswith("labels: '[{'key': 'team', 'value'' is not a JSON list of labels")
               for c in r["x_SourceChanges"])
    assert conv.raw["x_ParseErrors"].null_count() == 1 and conv.raw["x_ParseWarnings"].null_count() == 0


def test_csv_malformed_credits_quarantine_the_row(csv_batch):
    conv = csv_batch.case("malformed-credits")
    gates(conv)
    assert conv.quarantine.height == 1
    assert conv.quarantine["x_QuarantineReason"].item() == "credits: '[{not json' is not a JSON list of credits"
    assert conv.quarantine["x_BilledCost"].item() == D("0.126444")  # its credits are unknown


def test_csv_malformed_json_credits_quarantine_their_rows_only(csv_batch):
    """A batch holding text that looks like JSON but is not is parsed one value at a time: the
    malformed rows are quarantined naming the column and text, every other row converts."""
    conv = csv_batch.case("malformed-json-credits")
    gates(conv)
    reasons = dict(zip(conv.quarantine["x_SourceRow"], conv.quarantine["x_QuarantineReason"]))
    assert reasons == {2: "credits: '[{\"name\": \"Promo\", \"amount\": ' is not a JSON list of credits",
                       3: "credits: '[null]' is not a JSON list of credits"}
    usage = conv.rows(ChargeCategory="Usage")
    assert [r["x_SourceRow"] for r in usage] == [1, 4]
    assert [r["BilledCost"] for r in usage] == [D("0.126444") - D("0.025289")] * 2
    assert [r["BilledCost"] for r in conv.rows(ChargeCategory="Credit")] == [D("-0.000005")] * 2


def test_csv_python_repr_words_inside_strings_are_kept(csv_batch):
    """A repr whose string holds None / True / False is parsed by Python, its neighbours at once."""
    conv = csv_batch.case("repr-words")
    gates(conv)
    credits = {(r["x_SourceRow"], r["ChargeDescription"]): r["BilledCost"] for r in conv.rows(ChargeCategory="Credit")}
    assert credits == {(1, "None left: True"): D("-0.000001"), (2, "FreeTrial:Credit"): D("-0.000005")}


def test_csv_values_that_do_not_parse_are_quarantined(csv_batch):
    conv = csv_batch.case("bad-values")
    assert not check_focus(conv.focus.lazy(), conv.raw_totals, conv.quarantine).billed_ok  # '12,5' is unknown money
    gates(conv, accept_unknown_money=True)
    assert conv.focus.height == 0
    assert sorted(conv.quarantine["x_QuarantineReason"].to_list()) == [
        "cost: '12,5' is not a number", "invoice.month: '2024-03' is not a month YYYYMM",
        "usage_start_time: 'yesterday' is not a timestamp"]


def test_missing_required_column_names_file_and_column(tmp_path):
    header = [h for h in CSV_HEADER if h != "invoice.month"]
    path = write_csv(tmp_path / "no-invoice.csv", [csv_row()], header)
    with pytest.raises(SourceFormatError, match=r"no-invoice.csv: required column\(s\) missing: invoice.month"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))
    nested = write_jsonl(tmp_path / "no-currency.jsonl", [{k: v for k, v in BASE.items() if k != "currency"}])
    with pytest.raises(SourceFormatError, match=r"no-currency.jsonl: required column\(s\) missing: currency"):
        convert_files([str(nested)], str(tmp_path / "out.parquet"))


def test_near_miss_names_the_missing_columns(tmp_path):
    path = write_csv(tmp_path / "no-account.csv", [csv_row()], [h for h in CSV_HEADER if h != "billing_account_id"])
    with pytest.raises(SourceFormatError, match="looks like a GCP billing export but required column.*billing_account_id"):
        detect_format(str(path))


def test_parquet_extract_reads_like_jsonl(tmp_path):
    rows = CASES["promotion"] + CASES["cud"]
    jsonl = write_jsonl(tmp_path / "x.jsonl", rows)
    parquet = tmp_path / "x.parquet"
    pl.read_ndjson(jsonl).with_columns(
        pl.col(c).str.strip_suffix(" UTC").str.to_datetime(time_zone="UTC")
        for c in ("usage_start_time", "usage_end_time", "export_time")).write_parquet(parquet)
    assert detect_format(str(parquet)) == "gcp-billing" and FORMATS["gcp-billing"].raw_table == "raw_gcp_billing"
    a, b = convert([jsonl], ["x"]), convert([parquet], ["x"])
    gates(b)
    cols = [c for c in a.focus.columns if c not in ("x_SourceFormatVersion", "x_RowId")]
    assert a.focus.sort("x_SourceRow", "ChargeCategory").select(cols).equals(
        b.focus.sort("x_SourceRow", "ChargeCategory").select(cols))
    assert b.focus["x_SourceFormatVersion"][0] == "detailed parquet"


def test_detect_format_on_headers():
    assert gcp.detect_format(["billing_account_id", "service", "sku", "cost", "invoice", "credits"]) == "gcp-billing"
    assert gcp.detect_format(CSV_HEADER) == "gcp-billing"
    assert gcp.detect_format(["BillingAccountId", "CostInBillingCurrency", "ServiceName"]) is None
    assert gcp.detect_format(["lineItem/LineItemType", "lineItem/UnblendedCost"]) is None


def test_json_lines_decode_to_the_rows_of_polars_ndjson_reader(tmp_path):
    """JSON lines are decoded line by line with the whole file's schema (faster than the reader):
    blank and whitespace lines are no rows, CRLF ends a line, and a cost that is text on one line
    (the column is then text) is quarantined on its row only."""
    lines = [json.dumps(BASE), "", json.dumps(row(cost="12,5")), "   ", json.dumps(row(labels=[]))]
    path = tmp_path / "x.jsonl"
    path.write_bytes(("\r\n".join(lines) + "\n").encode())
    expected = pl.read_ndjson(path, infer_schema_length=None)
    conv = convert([path], ["x"])
    assert conv.raw["x_SourceRow"].to_list() == [1, 2, 3]
    assert conv.raw["cost"].cast(pl.String).to_list()[::2] == ["0.126444000000", "0.126444000000"]
    assert conv.raw["labels"].list.len().to_list() == expected["labels"].list.len().to_list()
    assert conv.quarantine["x_SourceRow"].to_list() == [2]
    assert "cost: '12,5' is not a number" in conv.quarantine["x_QuarantineReason"][0]
    gates(conv, accept_unknown_money=True)


def test_gzipped_json_lines_are_json_lines_not_a_csv(tmp_path):
    """``.jsonl.gz`` is read as JSON lines (not checked as a CSV whose rows lack fields)."""
    import gzip

    text = "\n".join(json.dumps(r) for r in (BASE, row(cost="1.5"))) + "\n"
    (tmp_path / "x.jsonl").write_text(text)
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    plain = convert_files([str(tmp_path / "x.jsonl")], str(tmp_path / "plain.parquet"))
    gzipped = convert_files([str(tmp_path / "x.jsonl.gz")], str(tmp_path / "gzipped.parquet"))
    assert gzipped.rows_in == plain.rows_in == 2 and gzipped.checks.totals == plain.checks.totals
    assert not gzipped.checks.problems
