"""The OCI cost report mapping against hand-computed FOCUS 1.2 rows, and OCI's bad input.

Tiny OCI cost report CSVs are written here (one file per case) and converted by ONE ``to_focus``
call (module fixture ``batch``; rows told apart by ``x_SourceFile``), because planning ``to_focus``
costs a noticeable fraction of a second. The whole batch must pass every gating check of
``pipeline.check_focus``: 0 converter defects, exact billed / amortized conservation per tenancy,
period and currency, row conservation, unique x_RowId.

Expected values come from the OCI column meanings (SCHEMAS.md §5, MAPPINGS.md §4: myCost is the
billed cost incl. overage, corrections are rows with isCorrection) and the FOCUS 1.2 rules
(RULES.md), never from the converter.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.pipeline import check_focus, convert_files
from focus_platform.sources import FORMATS, SourceFormatError, detect_format
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE, Lineage
from focus_platform.sources.oci_cost import (
    BAD_TAGS_NOTE,
    FORMAT,
    LIST_PRICE_NOTE,
    classify_header,
    near_miss,
    quarantine,
    raw_totals,
    scan_raw,
    to_focus,
)
from focus_platform.sources.oci_cost import detect_format as detect_headers
from focus_platform.spec.columns import focus_schema

LINEAGE = Lineage(source="test", source_format=FORMAT, delivery_id="test-delivery", billing_period=None,
                  ingested_at=datetime(2024, 1, 1, tzinfo=UTC))
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy0000000000000000000000000000000000000001"
TENANCY_2 = "ocid1.tenancy.oc1..aaaaaaaatenancy0000000000000000000000000000000000000002"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaacompartment00000000000000000000000000000000001"
SUBSCRIPTION = "ocid1.organizationssubscription.oc1.us-ashburn-1.amaaaaaasubscription000000000000001"
INSTANCE = "ocid1.instance.oc1.iad.anuwcljrinstance000000000000000000000000000000000000001"

# One hour of 2 OCPUs of an E4 instance, as OCI writes it (start without seconds, end with).
BASE = {
    "lineItem/referenceNo": "7108a1f83bdbad70487bf0cf99cbe260",
    "lineItem/tenantId": TENANCY,
    "lineItem/intervalUsageStart": "2023-11-13T10:00Z",
    "lineItem/intervalUsageEnd": "2023-11-13T11:00:00Z",
    "product/service": "COMPUTE",
    "product/compartmentId": COMPARTMENT,
    "product/compartmentName": "prod",
    "product/region": "us-ashburn-1",
    "product/availabilityDomain": "cIkK:US-ASHBURN-AD-1",
    "product/resourceId": INSTANCE,
    "usage/billedQuantity": "2.000000000000000000",
    "usage/billedQuantityOverage": "",
    "cost/subscriptionId": SUBSCRIPTION,
    "cost/productSku": "B93113",
    "product/Description": "Standard - E4 - OCPU",
    "cost/unitPrice": "0.020000000000000000",
    "cost/unitPriceOverage": "",
    "cost/myCost": "0.040000000000000000",
    "cost/myCostOverage": "",
    "cost/currencyCode": "USD",
    "cost/billingUnitReadable": "1 NONE HOURS OCPUS",
    "cost/skuUnitDescription": "OCPU Hours",
    "cost/overageFlag": "false",
    "lineItem/isCorrection": "false",
    "lineItem/backreferenceNo": "17053",
    "tags/Oracle-Tags.CreatedBy": "default/alice@example.com",
    "tags/Finance.CostCenter": "CC-1001",
}
HEADERS = list(BASE)


def row(**changes: str) -> dict[str, str]:
    """BASE with changes; keyword names use '__' for '/' (lineItem__isCorrection)."""
    out = dict(BASE)
    out.update({k.replace("__", "/"): v for k, v in changes.items()})
    return out


def write_report(path: Path, rows: list[dict[str, str]], headers: list[str] | None = None) -> Path:
    """An OCI cost report CSV (a header missing from a row is written as '')."""
    if headers is None:
        headers = []
        for r in rows:
            headers.extend(k for k in r if k not in headers)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(headers)
        for r in rows:
            w.writerow([r.get(h, "") for h in headers])
    return path


def D(text: str) -> Decimal:
    return Decimal(text)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class Batch:
    raw: pl.DataFrame
    focus: pl.DataFrame
    quarantine: pl.DataFrame
    raw_totals: pl.DataFrame

    def focus_of(self, name: str) -> list[dict]:
        return self.focus.filter(pl.col("x_SourceFile") == name).sort("x_SourceRow").to_dicts()

    def quarantine_of(self, name: str) -> list[dict]:
        return self.quarantine.filter(pl.col("x_SourceFile") == name).sort("x_SourceRow").to_dicts()


FREE_TIER = row(**{"lineItem/referenceNo": "free-1", "cost/productSku": "B93297",
                   "product/Description": "Standard - A1 - OCPU", "cost/unitPrice": "0", "cost/myCost": "0",
                   "usage/billedQuantity": "4"})
CASES: dict[str, tuple[list[dict[str, str]], list[str] | None]] = {
    "base.csv": ([
        BASE,
        FREE_TIER,
        # start with seconds, tiny values in E notation with more than 12 decimals (rounded on read)
        row(**{"lineItem/referenceNo": "tiny-1", "lineItem/intervalUsageStart": "2023-11-13T11:00:00Z",
               "lineItem/intervalUsageEnd": "2023-11-13T12:00:00Z", "product/service": "TELEMETRY",
               "product/resourceId": "oci_vcn", "product/availabilityDomain": "", "cost/productSku": "B90926",
               "product/Description": "Monitoring Service - Retrieval", "usage/billedQuantity": "0.000002",
               "cost/unitPrice": "0.001161880000000000", "cost/myCost": "2.323760000E-9",
               "cost/billingUnitReadable": "1000000 NONE NONE DATAPOINTS",
               "cost/skuUnitDescription": "Million Datapoints"}),
    ], None),
    "overage.csv": ([
        # the whole hour is overage: myCost includes it (overage columns repeat the row's values)
        row(**{"lineItem/referenceNo": "over-1", "usage/billedQuantityOverage": "2", "cost/unitPrice": "0.025",
               "cost/unitPriceOverage": "0.025", "cost/myCost": "0.05", "cost/myCostOverage": "0.05",
               "cost/overageFlag": "true"}),
        # half of the hour within the commitment, half overage: a blended unit price
        row(**{"lineItem/referenceNo": "over-2", "usage/billedQuantityOverage": "1", "cost/unitPrice": "0.0225",
               "cost/unitPriceOverage": "0.025", "cost/myCost": "0.046", "cost/myCostOverage": "0.025",
               "cost/overageFlag": "Y"}),
    ], None),
    "correction.csv": ([
        row(**{"lineItem/referenceNo": "orig-1", "lineItem/backreferenceNo": "17060"}),
        row(**{"lineItem/referenceNo": "corr-1", "lineItem/isCorrection": "true",
               "lineItem/backreferenceNo": "orig-1", "usage/billedQuantity": "-1", "cost/myCost": "-0.02"}),
    ], None),
    "tags.csv": ([
        {**BASE, "tags/DevRel\\redbull-analytics-hol-4cb4.release": "1.0", "tags/Ops.Owner Name": "Bob",
         'tags/Data "Tier"': "gold", "tags/Café.Zone": "été", "tags/json-ish": '{"a": [1,',
         "Tags/Finance.CostCenter": "ignored-duplicate", "lineItem/referenceNo": "tag-1"},
        {**{k: v for k, v in BASE.items() if not k.startswith("tags/")}, "lineItem/referenceNo": "tag-2"},
    ], None),
    "json-tags.csv": ([
        {**{k: v for k, v in BASE.items() if not k.startswith("tags/")}, "tags": '{"team": "data", "n": 3}',
         "lineItem/referenceNo": "json-1"},
        {**{k: v for k, v in BASE.items() if not k.startswith("tags/")}, "tags": '{"team": "data"',
         "lineItem/referenceNo": "json-2"},
    ], None),
    "extra.csv": ([
        {**BASE, "cost/attributedCost": "0.01", "lineItem/newThing (beta)": "x", "lineItem/referenceNo": "extra-1"},
    ], None),
    "bad.csv": ([
        row(**{"lineItem/referenceNo": "bad-1", "lineItem/intervalUsageStart": "2023-13-45T10:00Z"}),
        row(**{"lineItem/referenceNo": "bad-2", "lineItem/intervalUsageEnd": "13/11/2023 11:00"}),
        row(**{"lineItem/referenceNo": "bad-3", "cost/myCost": "abc"}),
        row(**{"lineItem/referenceNo": "bad-4", "lineItem/isCorrection": "maybe"}),
        row(**{"lineItem/referenceNo": "bad-5", "cost/myCost": ""}),
        row(**{"lineItem/referenceNo": "bad-6", "lineItem/tenantId": "", "cost/myCost": "1.5"}),
        row(**{"lineItem/referenceNo": "good-7"}),
    ], None),
    "currencies.csv": ([
        row(**{"lineItem/referenceNo": "usd-1"}),
        row(**{"lineItem/referenceNo": "eur-1", "lineItem/tenantId": TENANCY_2, "cost/currencyCode": "EUR",
               "cost/myCost": "0.0368", "cost/unitPrice": "0.0184"}),
        row(**{"lineItem/referenceNo": "eur-2", "cost/currencyCode": "EUR",  # same tenancy as usd-1
               "cost/myCost": "0.0368", "cost/unitPrice": "0.0184"}),
    ], None),
    "month-boundary.csv": ([
        row(**{"lineItem/referenceNo": "oct-1", "lineItem/intervalUsageStart": "2023-10-31T23:00Z",
               "lineItem/intervalUsageEnd": "2023-11-01T00:00:00Z"}),
        row(**{"lineItem/referenceNo": "nov-1", "lineItem/intervalUsageStart": "2023-11-01T00:00Z",
               "lineItem/intervalUsageEnd": "2023-11-01T01:00:00Z"}),
    ], None),
    "unknown.csv": ([
        row(**{"lineItem/referenceNo": "unk-1", "product/service": "QUANTUM_TOASTER", "product/region": "mars-north-1",
               "product/compartmentName": "", "cost/skuUnitDescription": "Toasts Per Hour"}),
    ], None),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    folder = tmp_path_factory.mktemp("oci")
    frames = [scan_raw(write_report(folder / name, rows, headers), LINEAGE, label=name)
              for name, (rows, headers) in CASES.items()]
    raw = pl.concat(frames, how="diagonal_relaxed").collect()
    lazy = raw.lazy()
    return Batch(raw, to_focus(lazy).collect(), quarantine(lazy).collect(), raw_totals(lazy).collect())


def assert_row(actual: dict, expected: dict, context: str) -> None:
    problems = [f"  {k}: expected {v!r}, got {actual.get(k)!r}" for k, v in expected.items()
                if not (actual.get(k) == v and (v is None) == (actual.get(k) is None))]
    assert not problems, f"{context}:\n" + "\n".join(problems)


# --- the whole batch passes the gates --------------------------------------------------------------
def test_batch_passes_every_gate(batch):
    """Every gate, once the quarantined amount that cannot be read ('abc') is deliberately accepted:
    without that, the billed conservation check fails on it."""
    refused = check_focus(batch.focus.lazy(), batch.raw_totals, batch.quarantine)
    assert refused.unknown_amount_rows == 1 and not refused.billed_ok
    checks = check_focus(batch.focus.lazy(), batch.raw_totals, batch.quarantine, accept_unknown_money=True)
    assert checks.conformance.defects == {}, checks.conformance.summary()
    assert checks.problems == [], checks.problems
    assert checks.rows.raw == sum(len(rows) for rows, _ in CASES.values())
    assert checks.rows.quarantined == 6 and checks.rows.derived == 0 and checks.rows.dropped == 0
    assert batch.raw_totals["quarantined_rows"].sum() == 6


def test_output_columns_are_typed_focus_then_x(batch):
    """focus_schema() columns with their types, then the OCI x_ columns, then unknown extras."""
    cols, schema = batch.focus.columns, focus_schema()
    assert list(batch.focus.schema.items())[:len(schema)] == list(schema.items())
    assert cols[len(schema):len(schema) + len(OCI_X)] == OCI_X
    assert cols[len(schema) + len(OCI_X):] == ["x_cost_attributed_cost", "x_line_item_new_thing_beta"]
    assert batch.focus.schema["x_OverageFlag"] == pl.Boolean
    assert batch.focus.schema["x_CostOverage"] == pl.Decimal(38, 12)


OCI_X = ["x_ReferenceNumber", "x_BackReferenceNumber", "x_IsCorrection", "x_SubscriptionId", "x_OverageFlag",
         "x_BilledQuantityOverage", "x_UnitPriceOverage", "x_CostOverage", "x_BillingUnitReadable",
         "x_SkuUnitDescription"]


# --- one row at a time --------------------------------------------------------------------------------
def test_usage_row(batch):
    base = batch.focus_of("base.csv")[0]
    assert_row(base, {
        "BilledCost": D("0.04"), "EffectiveCost": D("0.04"), "ContractedCost": D("0.04"), "ListCost": D("0.04"),
        "ContractedUnitPrice": D("0.02"), "ListUnitPrice": D("0.02"), "PricingCurrencyListUnitPrice": D("0.02"),
        "PricingCurrencyContractedUnitPrice": D("0.02"), "PricingCurrencyEffectiveCost": D("0.04"),
        "PricingQuantity": D("2"), "PricingUnit": "OCPU-Hours", "ConsumedQuantity": D("2"),
        "ConsumedUnit": "OCPU-Hours", "PricingCurrency": "USD", "BillingCurrency": "USD",
        "BillingAccountId": TENANCY, "BillingAccountName": None, "BillingAccountType": "Tenancy",
        "SubAccountId": COMPARTMENT, "SubAccountName": "prod", "SubAccountType": "Compartment",
        "ChargePeriodStart": ts("2023-11-13T10:00:00Z"), "ChargePeriodEnd": ts("2023-11-13T11:00:00Z"),
        "BillingPeriodStart": ts("2023-11-01T00:00:00Z"), "BillingPeriodEnd": ts("2023-12-01T00:00:00Z"),
        "ChargeCategory": "Usage", "ChargeClass": None, "ChargeFrequency": "Usage-Based",
        "PricingCategory": "Standard", "ChargeDescription": "Standard - E4 - OCPU",
        "ServiceName": "COMPUTE", "ServiceCategory": "Compute", "ServiceSubcategory": "Virtual Machines",
        "SkuId": "B93113", "SkuPriceId": "B93113", "SkuMeter": "Standard - E4 - OCPU",
        "RegionId": "us-ashburn-1", "RegionName": "US East (Ashburn)", "AvailabilityZone": "cIkK:US-ASHBURN-AD-1",
        "ResourceId": INSTANCE, "ResourceType": "instance", "ResourceName": None,
        "ProviderName": "Oracle", "PublisherName": "Oracle", "InvoiceIssuerName": "Oracle", "InvoiceId": None,
        "CommitmentDiscountId": None, "CapacityReservationId": None,
        "x_ServiceCode": "COMPUTE", "x_ReferenceNumber": "7108a1f83bdbad70487bf0cf99cbe260",
        "x_BackReferenceNumber": "17053", "x_IsCorrection": False, "x_OverageFlag": False,
        "x_SubscriptionId": SUBSCRIPTION, "x_BilledQuantityOverage": None, "x_CostOverage": None,
        "x_BillingUnitReadable": "1 NONE HOURS OCPUS", "x_SkuUnitDescription": "OCPU Hours",
        "x_BillingPeriod": "2023-11", "x_SourceFormat": "oci-cost", "x_SourceFormatVersion": "OCI cost report csv",
        "x_SourceRow": 1, "x_ProviderDataGaps": None,
    }, "usage row")
    assert json.loads(base["Tags"]) == {"Oracle-Tags.CreatedBy": "default/alice@example.com",
                                        "Finance.CostCenter": "CC-1001"}
    assert base["x_SourceChanges"] == [
        LIST_PRICE_NOTE, "PricingUnit/ConsumedUnit: OCI unit 'OCPU Hours' in FOCUS unit format"]


def test_zero_cost_free_tier_row_is_kept_with_zero_not_null(batch):
    free = batch.focus_of("base.csv")[1]
    assert_row(free, {"BilledCost": D("0"), "EffectiveCost": D("0"), "ListCost": D("0"), "ContractedUnitPrice": D("0"),
                      "PricingQuantity": D("4"), "SkuId": "B93297", "ChargeClass": None}, "free tier")


def test_timestamp_with_seconds_and_e_notation(batch):
    tiny = batch.focus_of("base.csv")[2]
    assert_row(tiny, {
        "ChargePeriodStart": ts("2023-11-13T11:00:00Z"), "ChargePeriodEnd": ts("2023-11-13T12:00:00Z"),
        "BilledCost": D("0.000000002324"),  # 2.323760000E-9 rounded to 12 decimals (the money type)
        "PricingQuantity": D("0.000002"), "PricingUnit": "1000000 Datapoints",
        "ServiceCategory": "Management and Governance", "ServiceSubcategory": "Observability",
        "ResourceId": "oci_vcn", "ResourceType": "TELEMETRY", "AvailabilityZone": None, "Tags": row_tags(BASE),
    }, "tiny row")


def row_tags(r: dict[str, str]) -> str:
    return json.dumps({k[5:]: v for k, v in r.items() if k.startswith("tags/") and v}, separators=(",", ":"))


def test_overage_is_inside_my_cost(batch):
    full, partial = batch.focus_of("overage.csv")
    assert_row(full, {"BilledCost": D("0.05"), "EffectiveCost": D("0.05"), "ContractedUnitPrice": D("0.025"),
                      "x_OverageFlag": True, "x_BilledQuantityOverage": D("2"), "x_UnitPriceOverage": D("0.025"),
                      "x_CostOverage": D("0.05"), "PricingCategory": "Standard", "x_ProviderDataGaps": None},
               "full overage")
    # not 0.046 + 0.025: the overage part is already in myCost
    assert_row(partial, {"BilledCost": D("0.046"), "x_OverageFlag": True, "x_CostOverage": D("0.025"),
                         "ContractedUnitPrice": D("0.0225"),
                         "x_ProviderDataGaps": ["R-ListCost-1b", "R-ContractedCost-1b"]}, "partial overage")
    assert sum(r["BilledCost"] for r in (full, partial)) == D("0.096")


def test_correction_rows_are_charge_class_correction(batch):
    orig, corr = batch.focus_of("correction.csv")
    assert_row(orig, {"ChargeClass": None, "x_IsCorrection": False, "x_BackReferenceNumber": "17060"}, "original")
    assert_row(corr, {"ChargeClass": "Correction", "x_IsCorrection": True, "x_BackReferenceNumber": "orig-1",
                      "x_ReferenceNumber": "corr-1", "BilledCost": D("-0.02"), "PricingQuantity": D("-1"),
                      "ChargeCategory": "Usage"}, "correction")
    assert orig["BilledCost"] + corr["BilledCost"] == D("0.02")  # corrections count on top of the original


def test_tag_columns_fold_into_one_object_keys_as_delivered(batch):
    tagged, untagged = batch.focus_of("tags.csv")
    tags = json.loads(tagged["Tags"])
    assert tags == {
        "Oracle-Tags.CreatedBy": "default/alice@example.com",
        "Finance.CostCenter": "CC-1001",  # tags/ and Tags/ with one key: the first non-empty value
        "DevRel\\redbull-analytics-hol-4cb4.release": "1.0",
        "Ops.Owner Name": "Bob",
        'Data "Tier"': "gold",
        "Café.Zone": "été",
        "json-ish": '{"a": [1,',  # a tag value that looks like broken JSON is just a string
    }
    assert untagged["Tags"] is None
    raw = batch.raw.filter(pl.col("x_SourceFile") == "tags.csv")
    assert "tags" in raw.columns and not [c for c in raw.columns if c.startswith("tags_")]


def test_malformed_json_tags_keep_the_row(batch):
    good, bad = batch.focus_of("json-tags.csv")
    assert json.loads(good["Tags"]) == {"team": "data", "n": 3}
    assert bad["Tags"] is None and BAD_TAGS_NOTE in bad["x_SourceChanges"]
    assert bad["BilledCost"] == D("0.04")
    raw = batch.raw.filter(pl.col("x_SourceFile") == "json-tags.csv").sort("x_SourceRow")
    assert raw["tags"].to_list()[1] == '{"team": "data"'  # kept as delivered in the raw table


def test_unknown_columns_are_kept_as_x(batch):
    (extra,) = batch.focus_of("extra.csv")
    assert extra["x_cost_attributed_cost"] == "0.01"
    assert extra["x_line_item_new_thing_beta"] == "x"
    assert extra["BilledCost"] == D("0.04")
    other = batch.focus_of("base.csv")[0]
    assert other["x_cost_attributed_cost"] is None


def test_bad_values_are_quarantined_naming_file_row_and_column(batch):
    reasons = {r["x_SourceRow"]: r["x_QuarantineReason"] for r in batch.quarantine_of("bad.csv")}
    assert reasons == {
        1: "bad.csv row 1: lineItem/intervalUsageStart: '2023-13-45T10:00Z' is not a timestamp "
           "(expected 2023-11-13T10:00Z or 2023-11-13T10:00:00Z)",
        2: "bad.csv row 2: lineItem/intervalUsageEnd: '13/11/2023 11:00' is not a timestamp "
           "(expected 2023-11-13T10:00Z or 2023-11-13T10:00:00Z)",
        3: "bad.csv row 3: cost/myCost: 'abc' is not a number",
        4: "bad.csv row 4: lineItem/isCorrection: 'maybe' is not true or false",
        5: "bad.csv row 5: cost/myCost is empty",
        6: "bad.csv row 6: lineItem/tenantId is empty",
    }
    assert [r["x_ReferenceNumber"] for r in batch.focus_of("bad.csv")] == ["good-7"]
    q = {r["x_SourceRow"]: r for r in batch.quarantine_of("bad.csv")}
    assert q[2]["x_BilledCost"] == D("0.04") and q[6]["x_BilledCost"] == D("1.5")  # amounts kept for conservation
    # the raw table keeps every row, with its parse errors
    raw = batch.raw.filter(pl.col("x_SourceFile") == "bad.csv")
    assert raw.height == 7 and raw["x_ParseErrors"].null_count() == 3


def test_mixed_currencies_total_per_currency(batch):
    """One file, two currencies (one tenancy in both): totals and conservation per currency."""
    totals = batch.raw_totals.filter(pl.col("BillingAccountId") == TENANCY_2)
    assert totals.select("BillingCurrency", "billed", "rows").rows() == [("EUR", D("0.0368"), 1)]
    eur = batch.raw_totals.filter((pl.col("BillingAccountId") == TENANCY) & (pl.col("BillingCurrency") == "EUR"))
    assert eur.select("x_BillingPeriod", "billed", "rows").rows() == [("2023-11", D("0.0368"), 1)]
    focus = pl.DataFrame(batch.focus_of("currencies.csv"))
    sums = dict(focus.group_by("BillingCurrency").agg(pl.col("BilledCost").sum()).rows())
    assert sums == {"USD": D("0.04"), "EUR": D("0.0736")}
    checks = check_focus(batch.focus.lazy(), batch.raw_totals, batch.quarantine)
    keys = {(c.billing_account, c.currency) for c in checks.conservation if c.billing_period == "2023-11"}
    assert {(TENANCY, "USD"), (TENANCY, "EUR"), (TENANCY_2, "EUR")} <= keys


def test_billing_period_is_the_utc_month_of_the_interval_start(batch):
    oct_row, nov_row = batch.focus_of("month-boundary.csv")
    assert oct_row["x_BillingPeriod"] == "2023-10" and oct_row["BillingPeriodStart"] == ts("2023-10-01T00:00:00Z")
    assert oct_row["BillingPeriodEnd"] == ts("2023-11-01T00:00:00Z")
    assert oct_row["ChargePeriodEnd"] == ts("2023-11-01T00:00:00Z")
    assert nov_row["x_BillingPeriod"] == "2023-11" and nov_row["BillingPeriodStart"] == ts("2023-11-01T00:00:00Z")
    periods = batch.raw_totals.filter(pl.col("BillingAccountId") == TENANCY)["x_BillingPeriod"].to_list()
    assert {"2023-10", "2023-11"} <= set(periods)


def test_unknown_service_region_and_missing_names_are_noted(batch):
    (unk,) = batch.focus_of("unknown.csv")
    assert_row(unk, {"ServiceName": "QUANTUM_TOASTER", "ServiceCategory": "Other", "ServiceSubcategory": "Other (Other)",
                     "RegionId": "mars-north-1", "RegionName": None, "SubAccountName": None,
                     "PricingUnit": "Toasts Per Hour"}, "unknown")
    assert UNMAPPED_SERVICE_NOTE in unk["x_SourceChanges"]
    assert unk["x_ProviderDataGaps"] == ["R-SubAccountName-1", "R-RegionName-1"]


# --- reading and detection --------------------------------------------------------------------
def test_headers_are_classified_case_insensitively():
    assert classify_header("lineItem/TenantId").name == "line_item_tenant_id"
    assert classify_header("product/description").name == "product_description"
    assert classify_header("lineItem/backReference").name == "line_item_backreference_no"
    assert classify_header("tags/Oracle-Tags.CreatedBy").tag_key == "Oracle-Tags.CreatedBy"
    assert classify_header("Tags/a\\b c").tag_key == "a\\b c"
    assert classify_header("cost/attributedCost").name == "cost_attributed_cost"


def test_detection():
    assert detect_headers(HEADERS) == FORMAT
    assert detect_headers([h.lower() for h in HEADERS]) == FORMAT
    aws = ["identity/LineItemId", "lineItem/LineItemType", "lineItem/UnblendedCost", "lineItem/UsageStartDate",
           "lineItem/CurrencyCode", "bill/PayerAccountId"]
    assert detect_headers(aws) is None and near_miss(aws) is None
    usage_report = [h for h in HEADERS if not h.startswith("cost/")] + ["usage/consumedQuantity"]
    assert detect_headers(usage_report) is None
    assert near_miss(usage_report) == ("looks like an OCI usage report (no cost columns) but required column(s) "
                                       "missing: cost/myCost, cost/currencyCode")


def test_registered_format_and_file_detection(tmp_path):
    assert FORMATS[FORMAT].raw_table == "raw_oci_cost"
    path = write_report(tmp_path / "reports_cost-csv_0000000000000001.csv", [BASE])
    assert detect_format(str(path)) == FORMAT


def test_missing_required_column_names_file_and_column(tmp_path):
    path = write_report(tmp_path / "no-cost.csv", [{k: v for k, v in BASE.items() if k != "cost/myCost"}])
    with pytest.raises(SourceFormatError, match=r"no-cost\.csv: looks like an OCI cost report but required "
                                                r"column\(s\) missing: cost/myCost"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))
    with pytest.raises(SourceFormatError, match=r"no-cost\.csv: not an OCI cost report: required column\(s\) "
                                                r"missing: cost/myCost"):
        scan_raw(path, LINEAGE)


def test_ragged_row_is_refused_naming_the_file(tmp_path):
    path = write_report(tmp_path / "ragged.csv", [BASE, BASE])
    lines = path.read_text().splitlines()
    lines[2] += ",surplus"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceFormatError, match=r"ragged\.csv: malformed CSV \(data row 2 has"):
        convert_files([str(path)], str(tmp_path / "out.parquet"))


def test_tags_as_json_column_and_as_columns_is_ambiguous(tmp_path):
    path = write_report(tmp_path / "both.csv", [{**BASE, "tags": '{"a": "b"}'}])
    with pytest.raises(SourceFormatError, match=r"both\.csv: tags delivered both as a JSON column"):
        scan_raw(path, LINEAGE)


def test_delivery_period_wins_and_is_noted(tmp_path):
    """In a landing-zone delivery the folder's period is the partition; a row of another month says so."""
    path = write_report(tmp_path / "late.csv", [BASE])
    lineage = Lineage("test", FORMAT, "d", "2023-12", datetime(2024, 1, 1, tzinfo=UTC))
    (focus,) = to_focus(scan_raw(path, lineage)).collect().to_dicts()
    assert focus["x_BillingPeriod"] == "2023-12"
    assert focus["BillingPeriodStart"] == ts("2023-11-01T00:00:00Z")  # still the usage month
    assert ("x_BillingPeriod: usage month 2023-11 delivered in the 2023-12 delivery; kept in the delivery's period"
            in focus["x_SourceChanges"])


def test_gzip_file_and_blank_trailing_lines(tmp_path):
    import gzip

    plain = write_report(tmp_path / "r.csv", [BASE, row(**{"lineItem/referenceNo": "second"})])
    gz = tmp_path / "reports_cost-csv_0000000000000002.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes() + b"\n\n"))
    result = convert_files([str(gz)], str(tmp_path / "out.parquet"))
    assert result.rows_in == 2 and result.checks.problems == []
    df = pl.read_parquet(result.out)
    assert df["x_SourceFormatVersion"].unique().to_list() == ["OCI cost report csv"]
    assert df["BilledCost"].sum() == D("0.08")


def test_timestamp_and_flag_texts_beyond_the_two_oci_forms(tmp_path):
    """OCI's two interval forms are read as delivered; other spellings (blanks around, ' ' for 'T', no
    'Z', fractions of a second; flags in any case with blanks) are read too, and text that is no
    timestamp or flag is a parse error naming row and column."""
    forms = [  # (interval text, flag text, the timestamp read or None, the flag read or None)
        ("2023-11-13T10:00Z", "false", "2023-11-13T10:00:00Z", False),
        ("2023-11-13T10:00:00Z", "true", "2023-11-13T10:00:00Z", True),
        (" 2023-11-13T10:00Z ", " Y ", "2023-11-13T10:00:00Z", True),
        ("2023-11-13 10:00:00", "TRUE", "2023-11-13T10:00:00Z", True),
        ("2023-11-13T10:00", "No", "2023-11-13T10:00:00Z", False),
        ("2023-11-13T10:00:00.25Z", "0", "2023-11-13T10:00:00.25Z", False),
        ("2023-11-13", "maybe", None, None),
        ("2023-11-13T25:00Z", "", None, None),
    ]
    path = write_report(tmp_path / "forms.csv", [
        row(**{"lineItem/referenceNo": f"r{i}", "lineItem/intervalUsageStart": text, "cost/overageFlag": flag})
        for i, (text, flag, _, _) in enumerate(forms)])
    raw = scan_raw(path, LINEAGE).sort("x_SourceRow").collect()
    assert raw["line_item_interval_usage_start"].to_list() == [
        None if read is None else datetime.fromisoformat(read) for _, _, read, _ in forms]
    assert raw["cost_overage_flag"].to_list() == [read for _, _, _, read in forms]
    errors = raw["x_ParseErrors"].to_list()
    assert errors[:6] == [None] * 6
    assert "lineItem/intervalUsageStart: '2023-11-13' is not a timestamp" in errors[6]
    assert "cost/overageFlag: 'maybe' is not true or false" in errors[6]
    assert errors[7].startswith("lineItem/intervalUsageStart: '2023-11-13T25:00Z' is not a timestamp")
