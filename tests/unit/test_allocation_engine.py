"""allocation.engine on small FOCUS frames: owners by tags, virtual tags and defaults, pools of every method,
Kubernetes node splits, the report, driver tables; every test also checks exact conservation per
(x_Source, BillingAccountId, x_BillingPeriod, BillingCurrency) and that every FOCUS row has ≥ 1 row.

Expected owners and amounts are worked out by hand from the rules and design12.md, never read back."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import polars as pl
import pytest

from focus_platform.allocation.diff import allocation_diff
from focus_platform.allocation.engine import (
    AllocationError,
    AllocationInputs,
    allocate,
    allocation_schema,
    read_driver,
)
from focus_platform.allocation.model import (
    DRIVER,
    EVEN,
    FIXED,
    ON_ZERO_EVEN,
    PROPORTIONAL,
    ColumnValue,
    Condition,
    Dimension,
    Match,
    Pool,
    Rules,
    VirtualTag,
)

PERIOD = "2026-01"
MONEY = pl.Decimal(38, 12)
KEY = ["x_Source", "BillingAccountId", "x_BillingPeriod", "BillingCurrency"]
D = Decimal
TEAM = Dimension("team", tag_keys=("team", "owner-team"), value_map={"platform": "platform", "data eng": "data-eng"})
ENV = Dimension("environment", tag_keys=("env", "environment"), value_map={"production": "prod", "prd": "prod"})


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=timezone.utc)


def focus(*rows: dict) -> pl.LazyFrame:
    """FOCUS rows with defaults for what a test does not care about; x_RowId r0, r1, … in order."""
    defaults = {"x_BillingPeriod": PERIOD, "x_Source": "aws", "BillingAccountId": "111", "SubAccountId": "222",
                "SubAccountName": None, "BillingAccountName": None,
                "BillingCurrency": "USD", "ChargePeriodStart": at(1), "ChargeCategory": "Usage",
                "ServiceName": "Amazon EC2", "ServiceCategory": "Compute", "ResourceId": None, "Tags": None,
                "BilledCost": "1", "EffectiveCost": None, "ListCost": None}
    full = []
    for i, row in enumerate(rows):
        merged = {**defaults, "x_RowId": f"r{i}", **row}
        if merged["EffectiveCost"] is None and "EffectiveCost" not in row:
            merged["EffectiveCost"] = merged["BilledCost"]
        merged["Tags"] = json.dumps(merged["Tags"]) if isinstance(merged["Tags"], dict) else merged["Tags"]
        full.append(merged)
    schema = {c: pl.String for c in full[0]} | {"ChargePeriodStart": pl.Datetime("us", "UTC")}
    return pl.LazyFrame(full, schema=schema).with_columns(
        pl.col("BilledCost", "EffectiveCost", "ListCost").cast(MONEY))


def rules(*dimensions: Dimension, virtual_tags=(), pools=()) -> Rules:
    return Rules(name="test", version="1", digest="0123456789abcdef", path="rules/test.yaml",
                 dimensions=dimensions or (TEAM,), virtual_tags=tuple(virtual_tags), pools=tuple(pools))


def match(**conditions: tuple[str, ...] | str) -> Match:
    """match(ServiceName=("regex", "^AWS Support")) → one condition per column."""
    out = []
    for column, (op, *values) in conditions.items():
        out.append(Condition(column.replace("__", ":"), op, tuple(values)))
    return Match(tuple(out))


def run(lf: pl.LazyFrame, inputs: AllocationInputs | Rules):
    inputs = inputs if isinstance(inputs, AllocationInputs) else AllocationInputs(inputs)
    allocation = allocate(lf, inputs, PERIOD)
    rows = allocation.rows.collect()
    assert rows.schema == allocation_schema(inputs.rules)
    assert_conserved(lf, rows)
    assert allocation.report.rows_out == rows.height
    assert allocation.report.rows_in == lf.collect().height
    return rows.sort("x_RowId", *inputs.rules.dimension_names), allocation.report


def assert_conserved(lf: pl.LazyFrame, rows: pl.DataFrame) -> None:
    source = lf.collect()
    want = source.group_by(KEY).agg(pl.col("BilledCost").fill_null(0).sum(), pl.col("EffectiveCost").fill_null(0).sum())
    got = rows.group_by(KEY).agg(BilledCost=pl.col("x_AllocatedBilledCost").sum(),
                                 EffectiveCost=pl.col("x_AllocatedEffectiveCost").sum())
    assert want.sort(KEY).rows() == got.sort(KEY).rows()
    assert set(rows["x_RowId"]) == set(source["x_RowId"])  # every FOCUS row has at least one allocation row
    per_row = rows.group_by("x_RowId").agg(pl.col("x_AllocatedBilledCost").sum())
    assert dict(per_row.rows()) == {r: D(b or 0) for r, b in source.select("x_RowId", "BilledCost").rows()}


def owners(rows: pl.DataFrame, column: str = "team") -> dict[str, str]:
    return dict(rows.select("x_RowId", column).rows())


def evidence(rows: pl.DataFrame) -> dict[str, dict]:
    return {r: json.loads(e) for r, e in rows.select("x_RowId", "x_OwnerEvidence").rows()}


# ---------------------------------------------------------------------------------------------
# tags, virtual tags, defaults
# ---------------------------------------------------------------------------------------------
def test_tags_value_maps_aliases_and_the_default():
    lf = focus({"Tags": {"Team": "Platform", "env": "PRD"}},
               {"Tags": {"owner-team": " Data Eng "}},       # second alias, mapped after trim + casefold
               {"Tags": {"team": "Web", "owner-team": "ml"}},  # first alias wins over the second
               {"Tags": {"squad": "ml", "team": ""}},          # unknown key, empty value: no tag
               {"Tags": None}, {"Tags": "{}"})
    rows, report = run(lf, rules(TEAM, ENV))
    assert owners(rows) == {"r0": "platform", "r1": "data-eng", "r2": "web", "r3": "unallocated",
                            "r4": "unallocated", "r5": "unallocated"}
    assert owners(rows, "environment")["r0"] == "prod"
    assert evidence(rows)["r0"] == {"team": "tag:Team=Platform", "environment": "tag:env=PRD"}
    assert evidence(rows)["r1"]["team"] == "tag:owner-team= Data Eng "
    assert evidence(rows)["r4"] == {"team": "default", "environment": "default"}
    assert dict(rows.select("x_RowId", "x_AllocationRuleId").rows()) == {
        "r0": "tags", "r1": "tags", "r2": "tags", "r3": "default", "r4": "default", "r5": "default"}
    assert set(rows["x_AllocationMethod"]) == {"direct"}
    assert set(rows["x_AllocationShare"]) == set(rows["x_AllocationWeight"]) == {D(1)}
    assert set(rows["x_RulesVersion"]) == {"1@0123456789abcdef"}
    assert report.tag_key_conflicts == {}


def test_tag_keys_that_differ_only_in_case_smallest_raw_key_wins_and_counted():
    lf = focus({"Tags": {"team": "ml", "Team": "web", "TEAM": "data eng"}},
               {"Tags": {"team": "ml", "Team": "web", "TEAM": "data eng"}},
               {"Tags": {"Env": "prd", "env": "dev", "team_name": "x"}},
               {"Tags": {"Owner_Team": "ml"}})  # '_' reads as '-': owner-team
    rows, report = run(lf, rules(TEAM, ENV))
    assert owners(rows)["r0"] == "data-eng"  # 'TEAM' < 'Team' < 'team'
    assert evidence(rows)["r0"]["team"] == "tag:TEAM=data eng"
    assert owners(rows, "environment")["r2"] == "prod"  # 'Env' < 'env'
    assert owners(rows)["r3"] == "ml"
    assert report.tag_key_conflicts == {"team": 2, "env": 1}


def test_unmapped_tag_values_are_normalized_so_case_variants_are_one_owner():
    rows, _ = run(focus({"Tags": {"team": "Web"}}, {"Tags": {"team": " web"}}), rules())
    assert set(owners(rows).values()) == {"web"}


def test_virtual_tags_first_match_wins_tags_win_unless_override():
    vts = [
        VirtualTag("by-account", match(SubAccountId=("equals", "999")), {"team": "network"}),
        VirtualTag("by-service", match(ServiceName=("prefix", "Amazon")), {"team": "compute", "environment": "prod"}),
        VirtualTag("forced", match(ResourceId=("regex", "^i-forced")), {"team": "security"}, override=True),
    ]
    lf = focus({"SubAccountId": "999", "ServiceName": "Amazon S3"},           # first VT wins for team
               {"ServiceName": "Amazon S3", "Tags": {"team": "web"}},         # tag beats by-service
               {"ResourceId": "i-forced-1", "ServiceName": "X", "Tags": {"team": "web"}},  # override beats tag
               {"ServiceName": "Other"})
    rows, report = run(lf, rules(TEAM, ENV, virtual_tags=vts))
    assert owners(rows) == {"r0": "network", "r1": "web", "r2": "security", "r3": "unallocated"}
    assert owners(rows, "environment") == {"r0": "prod", "r1": "prod", "r2": "unallocated", "r3": "unallocated"}
    assert evidence(rows)["r0"] == {"team": "virtual:by-account", "environment": "virtual:by-service"}
    assert evidence(rows)["r2"]["team"] == "virtual:forced"
    assert dict(rows.select("x_RowId", "x_AllocationRuleId").rows()) == {
        "r0": "by-account", "r1": "tags", "r2": "forced", "r3": "default"}
    assert report.matches == {"by-account": 1, "by-service": 2, "forced": 1}
    assert report.unmatched_rules == ()


def test_a_first_matching_virtual_tag_without_override_yields_to_a_tag_even_if_a_later_one_overrides():
    vts = [VirtualTag("soft", match(ServiceName=("equals", "X")), {"team": "soft"}),
           VirtualTag("hard", match(ServiceName=("equals", "X")), {"team": "hard"}, override=True)]
    rows, _ = run(focus({"ServiceName": "X", "Tags": {"team": "web"}}, {"ServiceName": "X"}), rules(virtual_tags=vts))
    assert owners(rows) == {"r0": "web", "r1": "soft"}


def test_virtual_tag_value_from_a_column_and_from_the_account_catalog():
    catalog = pl.DataFrame({
        "x_Provider": ["aws"], "AccountId": ["222"], "AccountName": ["payments-prod"], "AccountKind": ["sub"],
        "x_AccountPath": ["Root/Engineering/Payments"], "x_AccountLevel1": ["Root"],
        "x_AccountLevel2": ["Engineering"], "x_AccountLevel3": ["Payments"], "x_AccountLevel4": [None],
        "x_AccountLevel5": [None], "x_AccountLevel6": [None], "x_CatalogFile": ["accounts/simple.csv"]},
        schema_overrides={f"x_AccountLevel{i}": pl.String for i in range(4, 7)})
    vts = [VirtualTag("ou", match(x_AccountPath=("prefix", "Root/Engineering")),
                      {"team": ColumnValue("x_AccountLevel3")}),
           VirtualTag("service", match(ServiceCategory=("exists",)), {"team": ColumnValue("ServiceCategory")})]
    lf = focus({"SubAccountId": "222"}, {"SubAccountId": "333"})
    rows, report = run(lf, AllocationInputs(rules(virtual_tags=vts), accounts=catalog))
    assert owners(rows) == {"r0": "Payments", "r1": "Compute"}
    assert report.matches == {"ou": 1, "service": 2}


def test_tag_conditions_in_matches_and_rules_that_match_nothing_are_reported():
    vts = [VirtualTag("shared-tag", match(tag__shared=("exists",)), {"team": "shared"}),
           VirtualTag("never", match(ServiceName=("in", "Nope", "Nothing")), {"team": "x"})]
    pools = [Pool("no-rows", match(ServiceName=("equals", "None")), "team", EVEN)]
    lf = focus({"Tags": {"Shared": "yes"}}, {"Tags": {"team": "web"}})
    rows, report = run(lf, rules(virtual_tags=vts, pools=pools))
    assert owners(rows) == {"r0": "shared", "r1": "web"}
    assert report.unmatched_rules == ("never", "no-rows")
    assert report.matches == {"shared-tag": 1, "never": 0, "no-rows": 0}


def test_tags_that_are_not_a_json_object_are_refused_naming_the_row():
    with pytest.raises(AllocationError, match="x_RowId='r1'.*not a JSON object"):
        allocate(focus({"Tags": {"team": "a"}}, {"Tags": "team=web"}), AllocationInputs(rules()), PERIOD)


def test_null_costs_are_allocated_as_zero_and_counted():
    lf = focus({"BilledCost": None, "EffectiveCost": "2"}, {"BilledCost": "3"})
    _, report = run(lf, rules())
    assert report.null_costs == 1


# ---------------------------------------------------------------------------------------------
# pools
# ---------------------------------------------------------------------------------------------
SUPPORT = match(ServiceName=("equals", "AWS Support"))


def team_rows(*costs: tuple[str, str], **extra) -> list[dict]:
    return [{"Tags": {"team": team}, "BilledCost": cost, **extra} for team, cost in costs]


def split_of(rows: pl.DataFrame, row_id: str, column: str = "x_AllocatedBilledCost") -> dict[str, Decimal]:
    return dict(rows.filter(pl.col("x_RowId") == row_id).select("team", column).rows())


def test_even_pool_over_declared_targets_sums_exactly():
    lf = focus(*team_rows(("web", "10")), {"ServiceName": "AWS Support", "BilledCost": "100", "EffectiveCost": "-1"})
    pool = Pool("support", SUPPORT, "team", EVEN, targets=("web", "ml", "platform"))
    rows, report = run(lf, rules(pools=[pool]))
    assert split_of(rows, "r1") == {"ml": D("33.333333333334"), "platform": D("33.333333333333"),
                                    "web": D("33.333333333333")}  # leftover unit: 'ml' first in order
    assert split_of(rows, "r1", "x_AllocatedEffectiveCost") == {
        "ml": D("-0.333333333333"), "platform": D("-0.333333333333"), "web": D("-0.333333333334")}
    pool_rows = rows.filter(pl.col("x_RowId") == "r1")
    assert set(pool_rows["x_AllocationRuleId"]) == {"support"} and set(pool_rows["x_AllocationMethod"]) == {"even"}
    assert set(pool_rows["x_AllocationShare"]) == {D("0.333333333333")}
    assert evidence(pool_rows)["r1"]["team"] == "pool:support"
    assert report.matches["support"] == 1


def test_proportional_pool_default_targets_are_owners_with_direct_cost():
    lf = focus(*team_rows(("web", "30"), ("ml", "10"), ("data eng", "0")), {"BilledCost": "-5"},
               {"ServiceName": "AWS Support", "BilledCost": "8", "Tags": {"team": "web"}})
    pool = Pool("support", SUPPORT, "team", PROPORTIONAL)
    rows, report = run(lf, rules(pools=[pool]))
    # direct EffectiveCost: web 30, ml 10, unallocated −5 (counts 0), data-eng 0 (no direct cost): 3/4 and 1/4
    assert split_of(rows, "r4") == {"web": D(6), "ml": D(2)}
    assert dict(rows.filter(pl.col("x_RowId") == "r4").select("team", "x_AllocationWeight").rows()) == {
        "web": D(30), "ml": D(10)}
    assert report.rows_out == 6


def test_proportional_pool_by_another_measure_and_per_currency_window():
    lf = focus({"Tags": {"team": "web"}, "BilledCost": "1", "ListCost": "3"},
               {"Tags": {"team": "ml"}, "BilledCost": "1", "ListCost": "1"},
               {"Tags": {"team": "ml"}, "BilledCost": "1", "ListCost": "1", "BillingCurrency": "EUR"},
               {"ServiceName": "AWS Support", "BilledCost": "4"},
               {"ServiceName": "AWS Support", "BilledCost": "4", "BillingCurrency": "EUR"})
    pool = Pool("support", SUPPORT, "team", PROPORTIONAL, measure="ListCost", targets=("web", "ml"))
    rows, _ = run(lf, rules(pools=[pool]))
    assert split_of(rows, "r3") == {"web": D(3), "ml": D(1)}
    assert split_of(rows, "r4") == {"ml": D(4)}  # EUR window: web has no direct cost there (weight 0, no row)


def test_fixed_pool_percentages():
    pool = Pool("network", match(ServiceCategory=("equals", "Networking")), "team", FIXED,
                weights={"platform": D(50), "web": D("33.3"), "ml": D("16.7")})
    lf = focus({"ServiceCategory": "Networking", "BilledCost": "0.000000000010", "ChargeCategory": "Tax"})
    rows, _ = run(lf, rules(pools=[pool]))
    assert split_of(rows, "r0") == {"platform": D("5e-12"), "web": D("3e-12"), "ml": D("2e-12")}
    assert set(rows["x_AllocationMethod"]) == {"fixed"}
    assert dict(rows.select("team", "x_AllocationWeight").rows()) == {"platform": 50, "web": D("33.3"), "ml": D("16.7")}


def driver_table(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"date": pl.Date, "team": pl.String, "value": MONEY}, orient="row")


LOGS = match(ServiceName=("equals", "CloudWatch"))


def test_driver_pool_weights_per_day():
    drivers = {"log-requests": driver_table((date(2026, 1, 1), "web", 3), (date(2026, 1, 1), "ml", 1),
                                            (date(2026, 1, 2), "ml", 5), (date(2026, 1, 2), "ml", 5))}
    pool = Pool("logging", LOGS, "team", DRIVER, driver="log-requests")
    lf = focus({"ServiceName": "CloudWatch", "BilledCost": "8", "ChargePeriodStart": at(1, 23)},
               {"ServiceName": "CloudWatch", "BilledCost": "8", "ChargePeriodStart": at(2)})
    rows, _ = run(lf, AllocationInputs(rules(pools=[pool]), drivers=drivers))
    assert split_of(rows, "r0") == {"web": D(6), "ml": D(2)}
    assert split_of(rows, "r1") == {"ml": D(8)}  # web: no value that day (weight 0, no row)
    assert dict(rows.filter(pl.col("x_RowId") == "r1").select("team", "x_AllocationWeight").rows()) == {"ml": 10}


def test_driver_pool_row_charged_before_its_billing_period_uses_its_own_day():
    drivers = {"d": driver_table((date(2025, 12, 31), "ml", 1), (date(2026, 1, 1), "web", 1))}
    pool = Pool("logging", LOGS, "team", DRIVER, driver="d")
    late = datetime(2025, 12, 31, 22, tzinfo=timezone.utc)
    rows, _ = run(focus({"ServiceName": "CloudWatch", "BilledCost": "3", "ChargePeriodStart": late}),
                  AllocationInputs(rules(pools=[pool]), drivers=drivers))
    assert split_of(rows, "r0") == {"ml": D(3)}


def test_driver_pool_with_a_period_table():
    drivers = {"d": pl.DataFrame({"period": ["2026-01", "2026-01", "2025-12"], "team": ["web", "ml", "web"],
                                  "value": [D(1), D(1), D(100)]}, schema_overrides={"value": MONEY})}
    pool = Pool("logging", LOGS, "team", DRIVER, driver="d")
    rows, _ = run(focus({"ServiceName": "CloudWatch", "BilledCost": "3"}), AllocationInputs(rules(pools=[pool]),
                                                                                           drivers=drivers))
    assert split_of(rows, "r0") == {"ml": D("1.5"), "web": D("1.5")}


def test_zero_driver_weight_is_an_error_naming_pool_and_window():
    drivers = {"d": driver_table((date(2026, 1, 1), "web", 0), (date(2026, 1, 1), "ml", 0))}
    pool = Pool("logging", LOGS, "team", DRIVER, driver="d")
    with pytest.raises(AllocationError, match=r"pool 'logging' \(driver\).*total 0 in window 2026-01 USD on 2026-01-01"):
        allocate(focus({"ServiceName": "CloudWatch"}), AllocationInputs(rules(pools=[pool]), drivers=drivers), PERIOD)


def test_zero_weight_even_fallback_is_recorded_per_row_and_counted():
    drivers = {"d": driver_table((date(2026, 1, 1), "web", 0), (date(2026, 1, 1), "ml", 0),
                                 (date(2026, 1, 2), "web", 1))}
    pool = Pool("logging", LOGS, "team", DRIVER, driver="d", on_zero=ON_ZERO_EVEN)
    lf = focus({"ServiceName": "CloudWatch", "BilledCost": "1"}, {"ServiceName": "CloudWatch", "BilledCost": "1"},
               {"ServiceName": "CloudWatch", "BilledCost": "1", "ChargePeriodStart": at(2)},
               {"ServiceName": "CloudWatch", "BilledCost": "1", "ChargePeriodStart": at(3)})  # no values at all
    rows, report = run(lf, AllocationInputs(rules(pools=[pool]), drivers=drivers))
    assert split_of(rows, "r0") == {"ml": D("0.5"), "web": D("0.5")}
    assert split_of(rows, "r2") == {"web": D(1)}
    assert set(rows.filter(pl.col("x_RowId") == "r0")["x_AllocationMethod"]) == {"driver-even-fallback"}
    assert set(rows.filter(pl.col("x_RowId") == "r2")["x_AllocationMethod"]) == {"driver"}
    assert report.even_fallbacks == {"logging": 3}


def test_proportional_zero_weights_error_and_fallback():
    lf = focus(*team_rows(("web", "0")), {"ServiceName": "AWS Support", "BilledCost": "2"})
    pool = Pool("support", SUPPORT, "team", PROPORTIONAL, targets=("web", "ml"))
    with pytest.raises(AllocationError, match="pool 'support' \\(proportional\\).*total 0"):
        allocate(lf, AllocationInputs(rules(pools=[pool])), PERIOD)
    fallback = Pool("support", SUPPORT, "team", PROPORTIONAL, targets=("web", "ml"), on_zero=ON_ZERO_EVEN)
    rows, report = run(lf, rules(pools=[fallback]))
    assert split_of(rows, "r1") == {"ml": D(1), "web": D(1)}
    assert set(rows.filter(pl.col("x_RowId") == "r1")["x_AllocationMethod"]) == {"proportional-even-fallback"}
    assert report.even_fallbacks == {"support": 1}


def test_a_pool_without_any_target_is_an_error():
    pool = Pool("support", SUPPORT, "team", EVEN)
    with pytest.raises(AllocationError, match="pool 'support': no target in window 2026-01 USD"):
        allocate(focus({"ServiceName": "AWS Support"}), AllocationInputs(rules(pools=[pool])), PERIOD)


def test_a_missing_driver_table_is_an_error():
    pool = Pool("logging", LOGS, "team", DRIVER, driver="absent")
    with pytest.raises(AllocationError, match="driver table 'absent' not found"):
        allocate(focus({}), AllocationInputs(rules(pools=[pool])), PERIOD)


def test_first_pool_wins_and_other_dimensions_keep_the_row_values():
    pools = [Pool("first", match(ServiceName=("prefix", "AWS")), "team", EVEN, targets=("a", "b")),
             Pool("second", SUPPORT, "team", EVEN, targets=("c",))]
    lf = focus({"ServiceName": "AWS Support", "BilledCost": "2", "Tags": {"env": "prd", "team": "web"}})
    rows, report = run(lf, rules(TEAM, ENV, pools=pools))
    assert split_of(rows, "r0") == {"a": D(1), "b": D(1)}
    assert set(rows["environment"]) == {"prod"}
    assert report.matches == {"first": 1, "second": 1}


def test_negative_credit_tax_and_purchase_rows_are_allocated_exactly():
    pool = Pool("support", SUPPORT, "team", EVEN, targets=("a", "b", "c"))
    lf = focus({"ChargeCategory": "Purchase", "BilledCost": "1000", "EffectiveCost": "0", "Tags": {"team": "web"}},
               {"ChargeCategory": "Credit", "BilledCost": "-12.345678901234", "ServiceName": "AWS Support"},
               {"ChargeCategory": "Tax", "BilledCost": "0.07", "ServiceName": "AWS Support"},
               {"ChargeCategory": "Adjustment", "BilledCost": "-0.000000000001", "ServiceName": "AWS Support"},
               {"ChargeCategory": "Usage", "BilledCost": "5", "BillingAccountId": "other", "x_Source": "azure"})
    rows, _ = run(lf, rules(pools=[pool]))
    # −12345678901234 units / 3: floors −4115226300412 each, two units left over, equal remainders → a, b
    assert split_of(rows, "r1") == {"a": D("-4.115226300411"), "b": D("-4.115226300411"), "c": D("-4.115226300412")}
    assert split_of(rows, "r3") == {"a": D(0), "b": D(0), "c": D("-1e-12")}
    assert owners(rows)["r0"] == "web"


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------
def node_weights(*rows: tuple) -> pl.DataFrame:
    """(ResourceId, day, namespace, workload, weight, team or None)."""
    return pl.DataFrame([{
        "ResourceId": rid, "x_WindowStart": at(day), "x_WindowEnd": at(day) + timedelta(days=1), "x_Cluster": "prod",
        "x_Node": "node-1", "x_Namespace": ns, "x_AllocatedResourceId": f"prod/{ns}/deployment/{workload}",
        "x_AllocatedResourceName": workload, "weight": D(weight), "team": team}
        for rid, day, ns, workload, weight, team in rows],
        schema_overrides={"weight": MONEY, "x_WindowStart": pl.Datetime("us", "UTC"),
                          "x_WindowEnd": pl.Datetime("us", "UTC"), "team": pl.String})


def test_kubernetes_node_rows_split_by_window_weights():
    k8s = node_weights(("i-1", 1, "payments", "api", "0.5", "web"), ("i-1", 1, "ml-train", "job", "0.25", None),
                       ("i-1", 1, "__idle__", "__idle__", "0.25", "k8s-idle"),
                       ("i-1", 2, "payments", "api", "1", "web"))
    pools = [Pool("all-ec2", match(ServiceName=("equals", "Amazon EC2")), "team", EVEN, targets=("x",))]
    lf = focus({"ResourceId": "i-1", "ChargePeriodStart": at(1, 5), "BilledCost": "10", "EffectiveCost": "4",
                "Tags": {"team": "platform", "env": "prd"}},
               {"ResourceId": "i-1", "ChargePeriodStart": at(2, 23), "BilledCost": "1"},
               {"ResourceId": "i-1", "ChargePeriodStart": at(3), "BilledCost": "7", "Tags": {"team": "ml"}},  # uncovered
               {"ResourceId": "i-other", "BilledCost": "1"},
               {"ResourceId": None, "BilledCost": "2", "ServiceName": "S3"})  # no resource: an ordinary row
    rows, report = run(lf, AllocationInputs(rules(TEAM, ENV, pools=pools), kubernetes=k8s))
    r0 = rows.filter(pl.col("x_RowId") == "r0").sort("x_AllocatedResourceId")
    assert r0.select("team", "environment", "x_AllocatedBilledCost", "x_AllocatedEffectiveCost",
                     "x_AllocationMethod", "x_AllocatedResourceName").rows() == [
        ("k8s-idle", "prod", D("2.5"), D(1), "kubernetes-idle", "__idle__"),
        ("platform", "prod", D("2.5"), D(1), "kubernetes", "job"),  # no owner mapping: the node row's own
        ("web", "prod", D(5), D(2), "kubernetes", "api")]
    assert set(r0["x_AllocationRuleId"]) == {"k8s:prod"}
    assert evidence(r0.filter(pl.col("team") == "web"))["r0"] == {"team": "k8s:payments", "environment": "tag:env=prd"}
    assert evidence(r0.filter(pl.col("team") == "platform"))["r0"]["team"] == "tag:team=platform"
    assert owners(rows)["r1"] == "web"
    # node rows are never pool rows, covered or not; other rows are
    assert owners(rows)["r2"] == "ml" and set(rows.filter(pl.col("x_RowId") == "r2")["x_AllocationMethod"]) == {"direct"}
    assert owners(rows)["r3"] == "x"
    [uncovered] = report.uncovered_nodes
    assert (uncovered.cluster, uncovered.currency, uncovered.rows, uncovered.billed, uncovered.days) == (
        "prod", "USD", 1, D(7), (date(2026, 1, 3),))
    assert report.unmapped_namespaces == (("prod", "ml-train"),)
    assert owners(rows)["r4"] == "unallocated"
    assert report.rows_in == 5 and report.matches["all-ec2"] == 4


# ---------------------------------------------------------------------------------------------
# cardinality cap, report, schema
# ---------------------------------------------------------------------------------------------
def test_cardinality_cap_rolls_rare_values_into_other_keeping_the_default():
    capped = Dimension("team", tag_keys=("team",), max_values=2)
    lf = focus(*team_rows(("big", "100"), ("mid", "-50"), ("small", "1"), ("tiny", "0.5")), {"BilledCost": "0.1"})
    rows, report = run(lf, rules(capped))
    assert owners(rows) == {"r0": "big", "r1": "mid", "r2": "other", "r3": "other", "r4": "unallocated"}
    assert evidence(rows)["r2"]["team"] == "tag:team=small"  # the raw tag stays in the evidence
    assert report.cardinality == {"team": (5, 4)}  # big, mid, unallocated, other


def test_allocation_schema_columns_in_order():
    schema = allocation_schema(rules(TEAM, ENV))
    assert schema.names()[:10] == ["x_BillingPeriod", "x_Source", "BillingAccountId", "SubAccountId",
                                   "BillingCurrency", "x_RowId", "ChargePeriodStart", "ChargeCategory",
                                   "ServiceName", "ResourceId"]
    assert schema.names()[10:12] == ["team", "environment"]
    assert [n for n in schema.names() if n.endswith(("BilledCost", "EffectiveCost"))] == [
        "x_AllocatedBilledCost", "x_AllocatedEffectiveCost"]


def test_other_periods_are_left_out():
    lf = focus({"BilledCost": "1"}, {"BilledCost": "2", "x_BillingPeriod": "2025-12"})
    allocation = allocate(lf, AllocationInputs(rules()), PERIOD)
    assert allocation.rows.collect()["x_RowId"].to_list() == ["r0"] and allocation.report.rows_in == 1


# ---------------------------------------------------------------------------------------------
# driver tables
# ---------------------------------------------------------------------------------------------
def test_read_driver_dates_periods_and_files_together():
    table = read_driver([("drivers/logs/a.csv", b"date,team,value\n2026-01-01,web,3\n2026-01-01,ml,0.5\n"),
                         ("drivers/logs/b.csv", b"date,team,value\n2026-01-02, web ,1e3\n")], "logs")
    assert table.schema == pl.Schema({"date": pl.Date, "team": pl.String, "value": MONEY})
    assert table.rows() == [(date(2026, 1, 1), "web", D(3)), (date(2026, 1, 1), "ml", D("0.5")),
                            (date(2026, 1, 2), "web", D(1000))]
    monthly = read_driver([("p.csv", b"period,team,value\n2026-01,web,2\n")], "m")
    assert monthly.rows() == [("2026-01", "web", D(2))]


@pytest.mark.parametrize(("content", "message"), [
    (b"date,team,value\n2026-01-01,web,1\n2026-13-01,ml,1\n", "a.csv: data row 2, column date: '2026-13-01'"),
    (b"period,team,value\n2026-1,web,1\n", "data row 1, column period: '2026-1' is not a YYYY-MM period"),
    (b"date,team,value\n2026-01-01,,1\n", "data row 1, column team"),
    (b"date,team,value\n2026-01-01,web,-1\n", "data row 1, column value: '-1' is not a number ≥ 0"),
    (b"date,team,value\n2026-01-01,web,1,5\n", "not a readable CSV"),
    (b"date,team,squad,value\n", "columns must be date or period, one dimension column and value"),
    (b"day,team,value\n", "columns must be"),
])
def test_read_driver_errors_name_file_row_and_column(content, message):
    with pytest.raises(AllocationError, match="driver 'logs': a.csv" if b"squad" not in content else "a.csv") as error:
        read_driver([("a.csv", content)], "logs")
    assert message in str(error.value)


def test_read_driver_files_must_agree_on_columns():
    with pytest.raises(AllocationError, match="b.csv has columns date, env, value, a.csv has date, team, value"):
        read_driver([("a.csv", b"date,team,value\n"), ("b.csv", b"date,env,value\n")], "logs")


# ---------------------------------------------------------------------------------------------
# shadow diff
# ---------------------------------------------------------------------------------------------
def test_shadow_diff_names_exactly_the_owners_a_changed_virtual_tag_moves():
    lf = focus({"Tags": {"team": "web"}, "BilledCost": "30"},
               {"ServiceName": "Amazon S3", "BilledCost": "20", "EffectiveCost": "18"},
               {"ServiceName": "AWS Support", "BilledCost": "10"},
               {"Tags": {"team": "ml"}, "BilledCost": "5", "BillingCurrency": "EUR"})
    pool = Pool("support", SUPPORT, "team", PROPORTIONAL)
    storage = VirtualTag("s3", match(ServiceName=("equals", "Amazon S3")), {"team": "storage"})
    active = allocate(lf, AllocationInputs(rules(virtual_tags=[storage], pools=[pool])), PERIOD).rows
    changed = Rules(name="test", version="2", digest="fedcba9876543210", path="rules/next.yaml", dimensions=(TEAM,),
                    virtual_tags=(VirtualTag("s3", storage.match, {"team": "web"}),), pools=(pool,))
    candidate = allocate(lf, AllocationInputs(changed), PERIOD).rows
    diff = allocation_diff(active, candidate, ["team"])
    # active: web 30 + support 10·30/48, storage 20 + 10·18/48 (EffectiveCost weighs); candidate: web gets all 60
    assert diff.columns == ["x_BillingPeriod", "BillingCurrency", "team", "x_ActiveBilled", "x_CandidateBilled",
                            "x_MovedBilled", "x_ActiveEffective", "x_CandidateEffective", "x_MovedEffective",
                            "x_ActiveRulesVersion", "x_CandidateRulesVersion"]
    assert diff.rows() == [
        (PERIOD, "USD", "storage", D("23.75"), D(0), D("-23.75"), D("21.75"), D(0), D("-21.75"),
         "1@0123456789abcdef", "2@fedcba9876543210"),
        (PERIOD, "USD", "web", D("36.25"), D(60), D("23.75"), D("36.25"), D(58), D("21.75"),
         "1@0123456789abcdef", "2@fedcba9876543210")]
    assert diff.group_by("x_BillingPeriod", "BillingCurrency").agg(pl.col("x_MovedBilled", "x_MovedEffective").sum()) \
        .rows() == [(PERIOD, "USD", D(0), D(0))]


def test_shadow_diff_of_identical_allocations_is_empty_and_needs_the_dimensions():
    lf = focus({"Tags": {"team": "web"}})
    rows = allocate(lf, AllocationInputs(rules()), PERIOD).rows
    assert allocation_diff(rows, rows, ["team"]).height == 0
    with pytest.raises(ValueError, match="candidate allocation has no dimension column environment"):
        allocation_diff(rows.with_columns(environment=pl.lit("x")), rows, ["team", "environment"])


# ---------------------------------------------------------------------------------------------
# slices: the rows are read in slices of SLICE_ROWS; any slice size gives the same allocation
# ---------------------------------------------------------------------------------------------
def test_slices_of_any_size_give_the_same_rows_and_report(monkeypatch):
    from focus_platform.allocation import engine

    k8s = node_weights(("i-1", 1, "payments", "api", "0.5", "web"), ("i-1", 1, "__idle__", "__idle__", "0.5", None))
    pools = [Pool("support", match(ServiceName=("equals", "Support")), "team", PROPORTIONAL),
             Pool("net", match(ServiceName=("equals", "Network")), "team", FIXED,
                  weights={"platform": D(70), "ml": D(30)})]
    lf = focus(*[{"BilledCost": str(i + 1), "Tags": {"team": ["platform", "ml", "data eng"][i % 3]},
                  "x_BillingPeriod": "2025-12" if i == 4 else PERIOD,  # another period between the slices
                  "ServiceName": ["Amazon EC2", "Support", "Network", "S3"][i % 4],
                  "ResourceId": "i-1" if i == 7 else f"r-{i % 5}", "ChargePeriodStart": at(1, i % 24)}
                 for i in range(23)])
    inputs = AllocationInputs(rules(TEAM, ENV, pools=pools), kubernetes=k8s)
    allocation = allocate(lf, inputs, PERIOD)
    whole, whole_report = allocation.rows.collect(), allocation.report
    assert_conserved(lf.filter(pl.col("x_BillingPeriod") == PERIOD), whole)
    for size in (1, 2, 5, 22):
        monkeypatch.setattr(engine, "SLICE_ROWS", size)
        allocation = allocate(lf, inputs, PERIOD)
        assert len(allocation.to_write()) >= -(-23 // size)  # one direct part per slice
        sliced = pl.concat([p.collect() for p in allocation.to_write()])
        assert sliced.sort(sliced.columns).equals(whole.sort(whole.columns))
        assert allocation.report == whole_report
