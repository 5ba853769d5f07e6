"""Allocation measures on hand-built frames with known answers: exact conservation against FOCUS (and rows
that do not pair), M1 coverage (negative amounts, a zero-spend period), M14 tag compliance (aliases, key
case, empty values, split rows), M4 weekly trend across a month boundary, M7 spot checks (file errors,
split rows, resources, rows of another period) and tag cardinality."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import polars as pl
import pytest

from focus_platform.allocation.measures import (
    SpotCheckError,
    allocation_conservation,
    attribution_accuracy,
    carried_tag_keys,
    coverage,
    read_spot_checks,
    tag_cardinality,
    tag_compliance,
    unallocated_trend,
)
from focus_platform.allocation.model import Dimension, Rules
from focus_platform.spec.columns import MONEY, TIMESTAMP

RULES = Rules(name="t", version="1", digest="0" * 16, path="rules/t.yaml",
              dimensions=(Dimension("team", tag_keys=("team", "owner-team"), required=True, max_values=2),
                          Dimension("environment", tag_keys=("env", "environment"))))
FOCUS_SCHEMA = {"x_Source": pl.String, "BillingAccountId": pl.String, "x_BillingPeriod": pl.String,
                "BillingCurrency": pl.String, "x_RowId": pl.String, "ResourceId": pl.String, "Tags": pl.String,
                "BilledCost": MONEY, "EffectiveCost": MONEY}
ALLOC_SCHEMA = {"x_Source": pl.String, "BillingAccountId": pl.String, "x_BillingPeriod": pl.String,
                "BillingCurrency": pl.String, "x_RowId": pl.String, "ResourceId": pl.String,
                "ChargePeriodStart": TIMESTAMP, "team": pl.String, "environment": pl.String,
                "x_AllocatedBilledCost": MONEY, "x_AllocatedEffectiveCost": MONEY}


def frow(row_id: str, billed: str, effective: str | None = None, *, tags: str | None = None,
         resource: str | None = None, account: str = "A", period: str = "2026-10", currency: str = "USD") -> dict:
    return {"x_Source": "s1", "BillingAccountId": account, "x_BillingPeriod": period, "BillingCurrency": currency,
            "x_RowId": row_id, "ResourceId": resource, "Tags": tags, "BilledCost": Decimal(billed),
            "EffectiveCost": Decimal(effective if effective is not None else billed)}


def arow(row_id: str, team: str, effective: str, billed: str | None = None, *, env: str = "unallocated",
         resource: str | None = None, day: str = "2026-10-05", account: str = "A", period: str = "2026-10",
         currency: str = "USD") -> dict:
    return {"x_Source": "s1", "BillingAccountId": account, "x_BillingPeriod": period, "BillingCurrency": currency,
            "x_RowId": row_id, "ResourceId": resource,
            "ChargePeriodStart": datetime.fromisoformat(day).replace(tzinfo=UTC), "team": team, "environment": env,
            "x_AllocatedBilledCost": Decimal(billed if billed is not None else effective),
            "x_AllocatedEffectiveCost": Decimal(effective)}


def focus(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=FOCUS_SCHEMA).lazy()


def allocations(*rows: dict) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=ALLOC_SCHEMA).lazy()


# ---------------------------------------------------------------------------------------------
# Conservation
# ---------------------------------------------------------------------------------------------
FOCUS_ROWS = (frow("u1", "10.000000000001", "9"), frow("c1", "-3", "-3"), frow("u2", "5", account="B"))
# u1 split in three exact shares (one unit of 1e-12 on the first); the credit split in two
SPLIT = (arow("u1", "web", "3", "3.333333333334"), arow("u1", "ml", "3", "3.333333333334"),
         arow("u1", "platform", "3", "3.333333333333"), arow("c1", "web", "-1.5"), arow("c1", "ml", "-1.5"),
         arow("u2", "web", "5", account="B"))


def test_exact_split_with_negative_amounts_is_conserved():
    result = allocation_conservation(focus(*FOCUS_ROWS), allocations(*SPLIT))
    assert result.ok and result.problems == []
    a = result.rows.row(0, named=True)
    assert (a["BillingAccountId"], a["focus_billed"], a["allocated_billed"], a["difference_billed"]) == (
        "A", Decimal("7.000000000001"), Decimal("7.000000000001"), 0)
    assert a["focus_effective"] == a["allocated_effective"] == Decimal(6)
    assert result.rows.height == 2


def test_one_unit_lost_is_a_problem_naming_the_key_both_sums_and_the_difference():
    lost = (arow("u1", "web", "3", "3.333333333333"), *SPLIT[1:])
    result = allocation_conservation(focus(*FOCUS_ROWS), allocations(*lost))
    assert not result.ok
    problem = "s1/A/2026-10/USD: billed: FOCUS 7.000000000001 vs allocated 7.000000000000 (difference -0.000000000001)"
    assert result.problems == [problem]


def test_unallocated_focus_rows_and_orphan_allocation_rows_are_named():
    rows = (*SPLIT[:5], arow("ghost", "web", "0"))  # u2 (account B) has no allocation; 'ghost' has no FOCUS row
    result = allocation_conservation(focus(*FOCUS_ROWS), allocations(*rows))
    assert not result.ok
    by_account = {r["BillingAccountId"]: r for r in result.rows.iter_rows(named=True)}
    assert (by_account["B"]["rows_without_allocation"], by_account["B"]["first_rows_without_allocation"]) == (1, "u2")
    assert by_account["B"]["allocated_billed"] == 0 and by_account["B"]["difference_billed"] == Decimal(-5)
    assert (by_account["A"]["allocations_without_row"], by_account["A"]["first_allocations_without_row"]) == (
        1, "ghost")
    assert [p.split(":")[0] for p in result.problems] == ["s1/A/2026-10/USD", "s1/B/2026-10/USD"]
    assert "1 allocation rows whose x_RowId is not in FOCUS (x_RowId ghost" in result.problems[0]
    assert "1 FOCUS rows without an allocation row (x_RowId u2" in result.problems[1]


# ---------------------------------------------------------------------------------------------
# M1 coverage
# ---------------------------------------------------------------------------------------------
def test_coverage_counts_absolute_effective_cost_and_a_zero_spend_period_is_not_applicable(monkeypatch):
    monkeypatch.delenv("FOCUS_SLO_TARGETS", raising=False)
    rows = allocations(
        arow("u1", "web", "60", env="prod"), arow("c1", "web", "-10"),  # a credit of an owned row: owned spend
        arow("u2", "unallocated", "20", env="prod"), arow("t1", "unallocated", "10"),  # 100 of spend, 70 owned
        arow("z1", "web", "0", period="2026-09"),  # a period with no spend: n/a, not 100 %
        arow("e1", "unallocated", "4", currency="EUR"), arow("e2", "ml", "-4", currency="EUR"))
    result = coverage(rows, RULES)
    got = {(r["x_BillingPeriod"], r["BillingCurrency"], r["dimension"]): (r["owned"], r["total"], r["coverage"])
           for r in result.windows.iter_rows(named=True)}
    assert got[("2026-10", "USD", "team")] == (Decimal(70), Decimal(100), 0.7)
    assert got[("2026-10", "USD", "environment")] == (Decimal(80), Decimal(100), 0.8)
    assert got[("2026-10", "EUR", "team")] == (Decimal(4), Decimal(8), 0.5)
    assert got[("2026-09", "USD", "team")] == (Decimal(0), Decimal(0), None)
    assert (result.dimension, result.value, result.meets) == ("team", 0.5, False)
    monkeypatch.setenv("FOCUS_SLO_TARGETS", "M1=0.5")
    assert result.meets is True


def test_coverage_without_spend_has_no_value():
    result = coverage(allocations(arow("z1", "web", "0")), RULES)
    assert (result.value, result.meets) == (None, None)


# ---------------------------------------------------------------------------------------------
# M14 tag compliance
# ---------------------------------------------------------------------------------------------
def test_tag_compliance_reads_aliases_after_normalization_and_ignores_empty_values():
    rules = Rules(name="t", version="1", digest="0" * 16, path="r.yaml",
                  dimensions=(Dimension("team", tag_keys=("team", "owner-team"), required=True),
                              Dimension("environment", tag_keys=("env",), required=True)))
    rows = focus(
        frow("r1", "40", tags='{"Owner_Team": "web", "ENV": "prod"}', resource="i-1"),  # aliases, other case
        frow("r2", "-10", tags='{"team":"web","env":"dev"}', resource="i-1"),  # a credit carrying both
        frow("r3", "30", tags='{"team": "", "env": "prod"}', resource="i-2"),  # an empty value carries nothing
        frow("r4", "20", tags='{"env": "prod", "team": null}', resource="i-3"),
        frow("r5", "10", tags=None, resource=None),  # no tags, no resource: spend only
        frow("s1", "6", tags='{"Team ": "shared", "env": "prod"}', resource="i-4"))  # split over two owners
    allocated = allocations(
        arow("r1", "web", "40"), arow("r2", "web", "-10"), arow("r3", "unallocated", "30"),
        arow("r4", "unallocated", "20"), arow("r5", "unallocated", "10"), arow("s1", "web", "2"),
        arow("s1", "ml", "4"))
    result = tag_compliance(rows, allocated.with_columns(
        pl.col("x_RowId").replace_strict({"r1": "i-1", "r2": "i-1", "r3": "i-2", "r4": "i-3", "s1": "i-4"},
                                         default=None).alias("ResourceId")), rules)
    w = result.windows.row(0, named=True)
    assert (w["carrying"], w["total"], w["spend_share"]) == (Decimal(56), Decimal(116), float(Decimal(56) / 116))
    assert (w["resources_carrying"], w["resources"], w["resource_share"]) == (2, 4, 0.5)  # i-1 and i-4
    by_key = {r["dimension"]: (r["carrying"], r["tag_keys"]) for r in result.by_key.iter_rows(named=True)}
    assert by_key == {"team": (Decimal(56), "team, owner-team"), "environment": (Decimal(106), "env")}
    by_owner = {r["team"]: (r["carrying"], r["total"], r["spend_share"]) for r in result.by_owner.iter_rows(named=True)}
    assert by_owner == {"ml": (Decimal(4), Decimal(4), 1.0), "unallocated": (Decimal(0), Decimal(60), 0.0),
                        "web": (Decimal(52), Decimal(52), 1.0)}
    assert result.required == ("team", "environment") and result.meets is False


def test_tag_compliance_without_required_keys_measures_nothing():
    rules = Rules(name="t", version="1", digest="0" * 16, path="r.yaml", dimensions=(Dimension("team"),))
    result = tag_compliance(focus(frow("r1", "1", tags='{"team": "web"}')), allocations(arow("r1", "web", "1")),
                            rules)
    assert (result.required, result.value, result.meets) == ((), None, None)


# ---------------------------------------------------------------------------------------------
# M4 unallocated trend
# ---------------------------------------------------------------------------------------------
def week_rows(day: str, unallocated: str, owned: str, period: str) -> list[dict]:
    return [arow(f"u{day}", "unallocated", unallocated, day=day, period=period),
            arow(f"o{day}", "web", owned, day=day, period=period)]


# September 2026 ends on a Wednesday: the week of Monday 28 September runs into October
SEPTEMBER = [r for d in range(21, 31) for r in week_rows(f"2026-09-{d}", "1", "9", "2026-09")]  # share 10 %


def test_trend_crosses_the_month_boundary_with_the_previous_period():
    october = [r for d in range(1, 12) for r in week_rows(f"2026-10-{d:02d}", "1", "9", "2026-10")]
    # the week of 5 October: 13 % unallocated (+30 % over 10 %), then a partial week (Monday 12 missing: 11 is Sunday)
    october = [r for r in october if r["ChargePeriodStart"].day < 5] + [
        r for d in range(5, 12) for r in week_rows(f"2026-10-{d:02d}", "1.3", "8.7", "2026-10")]
    result = unallocated_trend(allocations(*october), allocations(*SEPTEMBER), RULES)
    weeks = {r["week"]: (r["share"], r["complete"]) for r in result.weeks.iter_rows(named=True)}
    assert weeks == {date(2026, 9, 21): (0.1, True), date(2026, 9, 28): (0.1, True), date(2026, 10, 5): (0.13, True)}
    (change,) = result.changes
    assert (change.week, change.previous_week, change.alert) == (date(2026, 10, 5), date(2026, 9, 28), True)
    assert change.change == pytest.approx(0.3)


def test_trend_without_the_previous_period_has_only_a_partial_boundary_week():
    october = [r for d in range(1, 12) for r in week_rows(f"2026-10-{d:02d}", "1.1", "8.9", "2026-10")]
    result = unallocated_trend(allocations(*october), None, RULES)
    assert [(r["week"], r["complete"]) for r in result.weeks.iter_rows(named=True)] == [
        (date(2026, 9, 28), False), (date(2026, 10, 5), True)]
    (change,) = result.changes
    assert (change.change, change.alert, change.reason) == (None, False, "no complete week before it")


def test_trend_below_the_target_passes_and_a_rise_from_zero_alerts():
    october = [r for d in range(1, 12) for r in week_rows(f"2026-10-{d:02d}", "1.1" if d >= 5 else "1",
                                                            "8.9" if d >= 5 else "9", "2026-10")]
    ok = unallocated_trend(allocations(*october), allocations(*SEPTEMBER), RULES)
    assert ok.changes[0].change == pytest.approx(0.1) and not ok.alert
    clean = [r for d in range(21, 31) for r in week_rows(f"2026-09-{d}", "0", "9", "2026-09")]
    clean_start = [{**r, "x_AllocatedEffectiveCost": Decimal(0)} if r["team"] == "unallocated" and
                   r["ChargePeriodStart"].day < 5 else r for r in october]
    rose = unallocated_trend(allocations(*clean_start), allocations(*clean), RULES)
    assert (rose.changes[0].change, rose.alert) == (None, True)
    assert rose.changes[0].reason.startswith("unallocated spend appeared")


# ---------------------------------------------------------------------------------------------
# M7 attribution accuracy
# ---------------------------------------------------------------------------------------------
def spot(*files: tuple[str, str]) -> pl.DataFrame:
    return read_spot_checks([(path, text.encode()) for path, text in files], RULES)


@pytest.mark.parametrize(("text", "message"), [
    ("Row,team\nu1,web\n", "a.csv row 1 column 1: 'Row' is not a key column (x_RowId or ResourceId)"),
    ("x_RowId,team,owner\nu1,web,x\n", "a.csv row 1 column 3: 'owner' is not a dimension of the rules"),
    ("x_RowId,team\nu1,web\n ,ml\n", "a.csv row 3 column x_RowId: empty key"),
    ("x_RowId,team\nu1,web,prod\n", "a.csv row 2: 3 fields, the header has 2"),
    ("x_RowId,team,team\nu1,web,web\n", "a.csv row 1 column 3: dimension 'team' appears twice"),
    ("x_RowId,team,environment\nu1,,\n", "a.csv row 2: no expected value in any dimension column"),
    ("", "a.csv: the file is empty"),
])
def test_bad_spot_check_files_name_file_row_and_column(text, message):
    with pytest.raises(SpotCheckError) as err:
        spot(("a.csv", text))
    assert str(err.value).startswith(message)


def test_accuracy_over_split_rows_resources_and_rows_of_another_period():
    rows = allocations(
        arow("u1", "web", "3", env="prod", resource="i-1"), arow("u1", "ml", "3", env="prod", resource="i-1"),
        arow("u2", "web", "5", env="prod", resource="i-1"), arow("u3", "unallocated", "5", resource="i-1"),
        arow("u4", "ml", "1", resource="i-2"), arow("u5", "ml", "1", resource="i-2"))
    checks = spot(("a.csv", "x_RowId,team,environment\nu1,ml,prod\nu1 ,platform,\nu2,web,dev\nold,web,\n"),
                  ("b.csv", "ResourceId,team\ni-1,web\ni-2,ml\n"))
    result = attribution_accuracy(rows, checks, RULES)
    # u1 is split over web and ml: ml matches, platform does not; u2's environment is prod; i-1 is partly
    # another owner's (u3 unallocated); 'old' is not in the period
    got = [(r["x_SpotCheckFile"], r["x_SpotCheckRow"], r["dimension"], r["found"], r["matched"], r["actual"])
           for r in result.checks.iter_rows(named=True)]
    assert got == [("a.csv", 2, "environment", True, True, "prod"), ("a.csv", 2, "team", True, True, "ml, web"),
                   ("a.csv", 3, "team", True, False, "ml, web"), ("a.csv", 4, "environment", True, False, "prod"),
                   ("a.csv", 4, "team", True, True, "web"), ("a.csv", 5, "team", False, False, None),
                   ("b.csv", 2, "team", True, False, "ml, unallocated, web"), ("b.csv", 3, "team", True, True, "ml")]
    assert (result.found.height, result.not_found, result.value) == (7, 1, 4 / 7)
    assert result.mismatches.select("key", "dimension", "expected", "actual").rows() == [
        ("u1", "team", "platform", "ml, web"), ("u2", "environment", "dev", "prod"),
        ("i-1", "team", "web", "ml, unallocated, web")]
    assert result.meets is False and result.metadata()["not_in_period"] == 1


def test_accuracy_without_checks_has_no_value():
    result = attribution_accuracy(allocations(arow("u1", "web", "1")), spot(), RULES)
    assert (result.checks.height, result.value, result.meets) == (0, None, None)


# ---------------------------------------------------------------------------------------------
# Tag cardinality
# ---------------------------------------------------------------------------------------------
def test_tag_cardinality_counts_published_values_per_dimension():
    rows = allocations(arow("u1", "web", "1", env="prod"), arow("u2", "other", "1", env="prod"),
                       arow("u3", "web", "1"))
    assert tag_cardinality(rows, RULES).rows() == [("team", 2, 2, True), ("environment", 2, None, False)]


def test_carried_tag_keys_reads_json_members_not_text_inside_values():
    tags = pl.DataFrame({"Tags": ['{"a": "x\\": \\"b\\": y", "c":1, "d" : null, "e":" ", "te\\u0061m":"web"}',
                                  "{}", None]})
    keys = tags.select(carried_tag_keys(pl.col("Tags"))).to_series().to_list()
    assert keys == [["a", "c", "te\\u0061m"], [], None]  # the escaped key is decoded when matched to aliases
    rules = Rules(name="t", version="1", digest="0" * 16, path="r.yaml",
                  dimensions=(Dimension("team", tag_keys=("team",), required=True),))
    result = tag_compliance(focus(frow("r1", "2", tags='{"te\\u0061m": "web"}')), allocations(arow("r1", "web", "2")),
                            rules)
    assert result.value == 1.0
