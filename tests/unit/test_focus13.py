"""The FOCUS 1.3 view (``allocation.focus13``): columns, provider names, native 1.3 values, Kubernetes splits.

The 1.2 rows come from the project's own converters on committed fixtures (an AWS CUR, a native FOCUS
1.3 export). Expected values are worked out here from the FOCUS 1.3 columns file and the rules in the
module's docstring; exact shares by an independent largest-remainder computation with Fractions.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from math import floor

import polars as pl
import pytest

from focus_platform.allocation.focus13 import ViewError, check_v1_3, focus_v1_3
from focus_platform.allocation.model import Kubernetes
from focus_platform.sources import FORMATS, detect_format
from focus_platform.sources.common import Lineage
from focus_platform.spec.columns import (
    FOCUS_COLUMN_NAMES,
    MONEY,
    TIMESTAMP,
    focus_columns,
    focus_schema,
)

D = Decimal
AWS_CUR = "tests/fixtures/aws/cur_legacy_small.csv"
NATIVE_1_3 = "tests/fixtures/focus-native/focus_1_3_cost_and_usage_azure.csv.gz"
K8S = Kubernetes(basis="requests", cpu_weight=D("0.6"))
TOTALS_KEY = ["x_Source", "BillingAccountId", "BillingCurrency"]
AMOUNTS = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity", "PricingQuantity"]


def converted(path: str, source: str) -> pl.DataFrame:
    """The FOCUS 1.2 rows the project's converter makes of a fixture file."""
    fmt = FORMATS[detect_format(path)]
    lineage = Lineage(source, fmt.name, "test", None, datetime(2026, 1, 1, tzinfo=UTC))
    return fmt.to_focus(fmt.scan_raw(path, lineage, label=path)).collect()


@pytest.fixture(scope="module")
def aws() -> pl.DataFrame:
    return converted(AWS_CUR, "aws")


@pytest.fixture(scope="module")
def native() -> pl.DataFrame:
    return converted(NATIVE_1_3, "azure-focus")


def csv_cost_and_usage_ids(version: str) -> list[str]:
    text = resources.files("focus_platform.spec").joinpath(f"columns-{version}.csv").read_text("utf-8")
    return [r["column_id"] for r in csv.DictReader(text.splitlines()) if "." not in r["column_id"]]


def totals(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by(TOTALS_KEY).agg(pl.col("BilledCost", "EffectiveCost").sum()).sort(TOTALS_KEY)


# ---------------------------------------------------------------------------------------------
# Spec columns: 1.3 available, 1.2 unchanged
# ---------------------------------------------------------------------------------------------
def test_the_1_2_columns_are_unchanged_and_1_3_adds_eight():
    assert [c.name for c in focus_columns()] == csv_cost_and_usage_ids("1.2") == list(FOCUS_COLUMN_NAMES)
    assert len(focus_columns()) == 57 and len(focus_schema()) == 57 + 17
    v13 = {c.name: c for c in focus_columns("1.3")}
    assert list(v13) == csv_cost_and_usage_ids("1.3")
    assert sorted(set(v13) - set(FOCUS_COLUMN_NAMES)) == [
        "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
        "ContractApplied", "HostProviderName", "ServiceProviderName"]
    assert set(FOCUS_COLUMN_NAMES) <= set(v13)  # nothing removed in 1.3
    assert not any(name.startswith("ContractCommitment") for name in v13)  # the other dataset is not read
    assert (v13["ServiceProviderName"].allows_nulls, v13["AllocatedTags"].data_type) == (False, "JSON")
    with pytest.raises(ValueError, match="1.4"):
        focus_columns("1.4")


# ---------------------------------------------------------------------------------------------
# A converted FOCUS 1.2 frame
# ---------------------------------------------------------------------------------------------
def test_columns_are_the_1_3_csv_then_the_x_columns_typed(aws):
    view = focus_v1_3(aws.lazy()).collect()
    x_columns = [n for n in aws.columns if n.startswith("x_")]
    assert view.columns == csv_cost_and_usage_ids("1.3") + x_columns
    for col in focus_columns("1.3"):
        assert view.schema[col.name] == {"Decimal": MONEY, "DateTime": TIMESTAMP}.get(col.data_type, pl.String), col.name
    assert view.select(x_columns).equals(aws.select(x_columns))
    assert check_v1_3(view.lazy()) == []


def test_provider_names_of_a_1_2_frame(aws):
    """AWS publishes as its legal entity ('Amazon Web Services Canada, Inc.'): the same company as the
    provider 'AWS', so ServiceProviderName is AWS; tax runs on no infrastructure."""
    view = focus_v1_3(aws.lazy()).collect()
    assert set(view["PublisherName"]) == {"Amazon Web Services Canada, Inc."}
    assert set(view["ServiceProviderName"]) == {"AWS"}
    host = dict(view.select("ChargeCategory", "HostProviderName").unique().iter_rows())
    assert host == {"Usage": "AWS", "Tax": "Not Applicable"}
    assert view.select(pl.col("AllocatedMethodId", "AllocatedTags", "ContractApplied").is_null().all()).row(0) == (True,) * 3


def test_a_marketplace_seller_is_the_service_provider_and_host_when_undisclosed(aws):
    frame = aws.head(3).with_columns(
        PublisherName=pl.Series(["Acme Analytics LLC", "Amazon Web Services, Inc.", "Acme Analytics LLC"]),
        ServiceSubcategory=pl.Series(["Business Intelligence", "Support", "Support"]),
        ChargeCategory=pl.lit("Usage"))
    view = focus_v1_3(frame.lazy()).collect()
    assert view.select("ServiceProviderName", "HostProviderName").rows() == [
        ("Acme Analytics LLC", "Acme Analytics LLC"), ("AWS", "Not Applicable"), ("Acme Analytics LLC", "Not Applicable")]


# ---------------------------------------------------------------------------------------------
# A native FOCUS 1.3 import: its kept x_ columns back under their 1.3 names
# ---------------------------------------------------------------------------------------------
def test_native_1_3_values_are_mapped_back(native):
    kept = ["ServiceProviderName", "HostProviderName", "ContractApplied", "AllocatedMethodId",
            "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags"]
    assert all(f"x_{n}" in native.columns for n in kept)
    frame = native.with_columns(x_ServiceProviderName=pl.when(pl.col("x_RowId") == native["x_RowId"][0])
                                .then(pl.lit("Contoso Reseller")).otherwise(pl.col("x_ServiceProviderName")))
    view = focus_v1_3(frame.lazy()).collect()
    assert not [n for n in view.columns if n.removeprefix("x_") in kept and n.startswith("x_")]
    joined = view.join(frame.select("x_RowId", *[f"x_{n}" for n in kept]), on="x_RowId")
    for name in kept:
        assert joined[name].equals(joined[f"x_{name}"], check_names=False), name
    assert joined.filter(pl.col("AllocatedMethodId").is_not_null()).height == 123
    assert view["ServiceProviderName"][0] == "Contoso Reseller"
    assert check_v1_3(view.lazy()) == []


# ---------------------------------------------------------------------------------------------
# Kubernetes: one node row split into three workloads (+ idle)
# ---------------------------------------------------------------------------------------------
NODE = "i-0123456789abcdef0"
WORKLOADS = [  # x_AllocatedResourceId, name, namespace owner (team), weight, method
    ("prod-eks/payments/Deployment/api", "api", "web", D("0.45"), "kubernetes"),
    ("prod-eks/ml-train/Job/trainer", "trainer", "ml", D("0.35"), "kubernetes"),
    ("prod-eks/__idle__/Node/" + NODE, "__idle__", "k8s-idle", D("0.2"), "kubernetes-idle"),
]
NODE_AMOUNTS = {"BilledCost": D("10.000000000001"), "EffectiveCost": D("7.000000000002"), "ListCost": D("12.5"),
                "ContractedCost": D("10.000000000001"), "ConsumedQuantity": D("24"), "PricingQuantity": D("24")}


def exact_shares(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Largest remainder in units of 10^-12 (ties: first listed), with Fractions."""
    units = int(amount * 10**12)
    total = sum(Fraction(w) for w in weights)
    exact = [units * Fraction(w) / total for w in weights]
    floors = [floor(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:units - sum(floors)]:
        floors[i] += 1
    return [D(f) / 10**12 for f in floors]


def node_frame(aws: pl.DataFrame) -> pl.DataFrame:
    """The CUR's first usage row made a node row with odd amounts; the other rows as converted."""
    node_id = aws.filter(pl.col("ChargeCategory") == "Usage")["x_RowId"][0]
    is_node = pl.col("x_RowId") == node_id
    return aws.with_columns(
        ResourceId=pl.when(is_node).then(pl.lit(NODE)).otherwise(pl.col("ResourceId")),
        **{name: pl.when(is_node).then(pl.lit(value, MONEY)).otherwise(pl.col(name)) for name, value in NODE_AMOUNTS.items()})


def allocations(focus: pl.DataFrame, node_id: str, *, billed: list[Decimal] | None = None) -> pl.DataFrame:
    """cost_allocations rows (design12.md's columns): the node row split over WORKLOADS, every other row
    direct, and one pool-split row (which the view leaves alone)."""
    node = focus.filter(pl.col("x_RowId") == node_id).row(0, named=True)
    weights = [w for *_, w, _ in WORKLOADS]
    billed = billed or exact_shares(node["BilledCost"], weights)
    effective = exact_shares(node["EffectiveCost"], weights)
    base = {k: node[k] for k in ("x_BillingPeriod", "x_Source", "BillingAccountId", "SubAccountId", "BillingCurrency",
                                 "x_RowId", "ChargePeriodStart", "ChargeCategory", "ServiceName", "ResourceId")}
    rows = [{**base, "team": team, "environment": "prod", "x_AllocatedBilledCost": b, "x_AllocatedEffectiveCost": e,
             "x_AllocationShare": w, "x_AllocationWeight": w, "x_AllocationRuleId": "k8s:prod-eks",
             "x_AllocationMethod": method, "x_AllocatedResourceId": rid, "x_AllocatedResourceName": name}
            for (rid, name, team, w, method), b, e in zip(WORKLOADS, billed, effective, strict=True)]
    for other in focus.filter(pl.col("x_RowId") != node_id).iter_rows(named=True):
        method = "fixed" if other["ChargeCategory"] == "Tax" else "direct"
        rows.append({**{k: other[k] for k in base}, "team": "platform", "environment": "prod",
                     "x_AllocatedBilledCost": other["BilledCost"], "x_AllocatedEffectiveCost": other["EffectiveCost"],
                     "x_AllocationShare": D(1), "x_AllocationWeight": D(1), "x_AllocationRuleId": "tags",
                     "x_AllocationMethod": method, "x_AllocatedResourceId": None, "x_AllocatedResourceName": None})
    schema = {"x_BillingPeriod": pl.String, "x_Source": pl.String, "BillingAccountId": pl.String,
              "SubAccountId": pl.String, "BillingCurrency": pl.String, "x_RowId": pl.String, "ChargePeriodStart": TIMESTAMP,
              "ChargeCategory": pl.String, "ServiceName": pl.String, "ResourceId": pl.String, "team": pl.String,
              "environment": pl.String, "x_AllocatedBilledCost": MONEY, "x_AllocatedEffectiveCost": MONEY,
              "x_AllocationShare": MONEY, "x_AllocationWeight": MONEY, "x_AllocationRuleId": pl.String,
              "x_AllocationMethod": pl.String, "x_AllocatedResourceId": pl.String, "x_AllocatedResourceName": pl.String,
              "x_OwnerEvidence": pl.String, "x_RulesVersion": pl.String}
    return pl.DataFrame(rows, schema=schema)


def test_a_node_row_split_into_workloads_is_exact_and_conserved(aws):
    focus = node_frame(aws)
    node = focus.filter(pl.col("ResourceId") == NODE).row(0, named=True)
    view = focus_v1_3(focus.lazy(), allocations(focus, node["x_RowId"]).lazy(), K8S).collect()

    assert view.height == focus.height + len(WORKLOADS) - 1
    split = view.filter(pl.col("x_RowId") == node["x_RowId"]).sort("AllocatedResourceId", descending=True)
    weights = [w for *_, w, _ in WORKLOADS]
    assert split["AllocatedResourceId"].to_list() == [rid for rid, *_ in WORKLOADS]
    for name in AMOUNTS:
        assert split[name].to_list() == exact_shares(node[name], weights), name
        assert split[name].sum() == node[name], name
    assert split["BilledCost"].to_list() == [D("4.500000000001"), D("3.500000000000"), D("2.000000000000")]
    assert set(split["ListUnitPrice"]) == {node["ListUnitPrice"]}  # a price per unit is not split
    assert split["AllocatedMethodId"].to_list() == ["focus-platform/kubernetes/requests"] * 2 + [
        "focus-platform/kubernetes-idle/requests"]
    assert split["AllocatedResourceName"].to_list() == ["api", "trainer", "__idle__"]
    assert json.loads(split["AllocatedTags"][0]) == {"kubernetes/namespace": "payments", "kubernetes/workload": "api",
                                                    "team": "web", "environment": "prod"}
    details = json.loads(split["AllocatedMethodDetails"][1], parse_float=Decimal)
    assert details == {"Elements": [{"AllocatedRatio": D("0.350000000000")}], "x_Cluster": "prod-eks",
                       "x_Basis": "requests", "x_CpuWeight": D("0.6"),
                       "x_WindowStart": node["ChargePeriodStart"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "x_WindowEnd": node["ChargePeriodEnd"].strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert set(split["ResourceId"]) == {NODE} and set(split["ServiceProviderName"]) == {"AWS"}

    unsplit = view.filter(pl.col("x_RowId") != node["x_RowId"]).sort("x_RowId")
    assert unsplit["AllocatedMethodId"].null_count() == unsplit.height  # pools split to owners, not resources
    assert unsplit.select(AMOUNTS).equals(focus.filter(pl.col("x_RowId") != node["x_RowId"]).sort("x_RowId").select(AMOUNTS))
    assert totals(view).equals(totals(focus))
    assert check_v1_3(view.lazy()) == []


def test_allocations_that_do_not_add_up_to_the_row_are_refused(aws):
    focus = node_frame(aws)
    node_id = focus.filter(pl.col("ResourceId") == NODE)["x_RowId"][0]
    stale = allocations(focus, node_id, billed=[D("4.5"), D("3.5"), D("1.999999999999")])
    with pytest.raises(ViewError, match=rf"x_RowId='{node_id}'.*sum to BilledCost 9\.999999999999 .*the row has 10\.000000000001"):
        focus_v1_3(focus.lazy(), stale.lazy(), K8S).collect()


def test_splits_need_the_rules_kubernetes_section(aws):
    with pytest.raises(ValueError, match="kubernetes section"):
        focus_v1_3(aws.lazy(), allocations(aws, aws["x_RowId"][0]).lazy(), None)


# ---------------------------------------------------------------------------------------------
# check_v1_3
# ---------------------------------------------------------------------------------------------
def test_check_names_each_1_3_problem(aws):
    view = focus_v1_3(aws.lazy()).collect().with_columns(
        ServiceProviderName=pl.lit(None, pl.String),
        CapacityReservationStatus=pl.lit("used"),
        AllocatedResourceId=pl.lit("pod-1"),
        AllocatedTags=pl.lit('{"a": {"nested": 1}}'),
        AllocatedMethodDetails=pl.lit('{"Elements": [{"UsageUnit": "CPU"}]}'),
    ).drop("ContractApplied")
    n = view.height
    assert sorted(check_v1_3(view.lazy())) == sorted([
        "ContractApplied: missing (FOCUS 1.3 Conditional column)",
        f"ServiceProviderName: {n} rows null (not nullable in FOCUS 1.3)",
        f"CapacityReservationStatus: {n} rows not one of Used; Unused",
        f"R-Alloc-1: {n} rows describe an allocation without AllocatedMethodId",
        "AllocatedTags: 1 distinct values are not FOCUS 1.3 JSON objects, e.g. '{\"a\": {\"nested\": 1}}': "
        "R-KV-3: nested value",
        "AllocatedMethodDetails: 1 distinct values are not FOCUS 1.3 JSON objects, e.g. "
        "'{\"Elements\": [{\"UsageUnit\": \"CPU\"}]}': R-KV-4: an element without a numeric AllocatedRatio",
    ])
