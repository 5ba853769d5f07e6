"""The allocate domain through Dagster on the embedded sample month (aws-fc-sample, 2023-11): cost_allocations
sums to focus_costs exactly per source, billing account and currency; a broken rules file fails the run
naming file and YAML path and commits nothing; the conservation gate refuses an allocation that loses a
cent and readers keep the previous version; the shadow diff names exactly the owners that move; the FOCUS
1.3 view keeps the totals; the service-level checks report; a period before the rules' cut-off is left
as published; the inputs sensor requests the periods a change covers."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform.allocation import engine
from focus_platform.defs.assets import allocate
from focus_platform.defs.sensors.allocate import allocation_inputs_sensor
from focus_platform.warehouse.catalog import (
    ALLOCATION_DIFF_TABLE,
    ALLOCATIONS_TABLE,
    FOCUS_TABLE,
    FOCUS_V1_3_TABLE,
)
from tests.conftest import SAMPLE_LANDING
from tests.integration.conftest import SAMPLE_PERIOD, published_sample_month

PERIOD = SAMPLE_PERIOD
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
KEY = ["x_Source", "BillingAccountId", "BillingCurrency"]
S3 = "Amazon Simple Storage Service"


def rules_yaml(s3_team: str, *, applies_from: str | None = None, weights: str = "{platform: 60, data: 40}") -> str:
    """Rules for the sample month: S3 to ``s3_team`` (a virtual tag), KMS a fixed pool."""
    return (f'name: test\nversion: "{s3_team}"\n' + (f"applies_from: {applies_from}\n" if applies_from else "")
            + "dimensions:\n  - name: team\n    tag_keys: [team]\n    required: true\n"
            + f'virtual_tags:\n  - id: s3\n    match: {{ServiceName: {{equals: "{S3}"}}}}\n    set: {{team: {s3_team}}}\n'
            + "  - id: nothing-matches\n    match: {ServiceName: {equals: No Such Service}}\n    set: {team: nobody}\n"
            + "pools:\n  - id: shared-kms\n    match: {ServiceName: {equals: AWS Key Management Service}}\n"
            + f"    dimension: team\n    method: fixed\n    weights: {weights}\n")


def use_rules(land: Path, active: str, candidate: str | None = None, extra: dict[str, str] | None = None) -> None:
    """The landing zone's allocation folder replaced: rules/active.yaml (+ rules/candidate.yaml) and settings."""
    folder = land / "allocation"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "active.yaml").write_text(active)
    settings = "active: rules/active.yaml\n"
    if candidate is not None:
        (folder / "rules" / "candidate.yaml").write_text(candidate)
        settings += "candidate: rules/candidate.yaml\n"
    (folder / "settings.yaml").write_text(settings)
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    return published_sample_month(tmp_path_factory.mktemp("allocation"))


def land_of(month) -> Path:
    return Path(month.resources["landing_zone"].root)


def run(month, *selection: str, config: dict | None = None):
    run_config = {**QUIET, **({"ops": {ALLOCATIONS_TABLE: {"config": config}}} if config else {})}
    return dg.materialize(allocate.ALLOCATE_ASSETS, partition_key=PERIOD, instance=month.instance,
                          resources=month.resources, run_config=run_config, selection=list(selection),
                          raise_on_error=False)


def checks_of(result, asset: str = ALLOCATIONS_TABLE) -> dict[str, dg.AssetCheckEvaluation]:
    """The check evaluations of one asset in a run, by check name."""
    return {e.check_name: e for e in (ev.event_specific_data for ev in result.all_events
                                      if ev.event_type_value == "ASSET_CHECK_EVALUATION")
            if e.asset_key.to_user_string() == asset}


def failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.user_failure_data.description


def sums(df: pl.DataFrame, billed: str, effective: str) -> dict[tuple, tuple[Decimal, Decimal]]:
    out = df.group_by(KEY).agg(pl.col(billed).sum(), pl.col(effective).sum())
    return {tuple(r[:3]): (r[3], r[4]) for r in out.iter_rows()}


def focus_sums(month) -> dict[tuple, tuple[Decimal, Decimal]]:
    return sums(month.warehouse.scan(FOCUS_TABLE).filter(pl.col("x_BillingPeriod") == PERIOD).collect(),
                "BilledCost", "EffectiveCost")


def allocated(month, version: int | None = None) -> pl.DataFrame:
    return month.warehouse.scan(ALLOCATIONS_TABLE, {"x_BillingPeriod": PERIOD}, version=version).collect()


# ---------------------------------------------------------------------------------------------
# cost_allocations
# ---------------------------------------------------------------------------------------------
def test_cost_allocations_sum_to_focus_exactly_and_report_the_service_levels(month):
    use_rules(land_of(month), rules_yaml("storage"))
    result = run(month, ALLOCATIONS_TABLE)
    assert result.success

    rows = allocated(month)
    assert sums(rows, "x_AllocatedBilledCost", "x_AllocatedEffectiveCost") == focus_sums(month)
    focus_ids = month.warehouse.scan(FOCUS_TABLE).filter(pl.col("x_BillingPeriod") == PERIOD).select(
        "x_Source", "x_RowId").unique().collect()
    assert rows.select("x_Source", "x_RowId").unique().sort("x_RowId").equals(focus_ids.sort("x_RowId"))
    assert set(rows["team"]) >= {"storage", "platform", "data"}  # the tag rule and the pool's targets
    assert rows["x_RulesVersion"].str.starts_with("storage@").all()

    checks = checks_of(result)
    assert checks["allocation_conserved"].passed and checks["contract"].passed
    for name, level in (("allocation_coverage", "M1"), ("tag_compliance", "M14"), ("unallocated_trend", "M4"),
                        ("attribution_accuracy", "M7")):
        assert checks[name].metadata["service_level"].value == level, name
    assert "no spot checks" in checks["attribution_accuracy"].metadata["note"].value
    assert checks["tag_compliance"].metadata["by_key"].value  # per required key
    unmatched = checks["rules_all_match"]
    assert not unmatched.passed and unmatched.metadata["rules"].value == ["nothing-matches"]
    metadata = result.asset_materializations_for_node(ALLOCATIONS_TABLE)[0].metadata
    assert metadata["rows_by_method"].value == {"direct": int(rows.filter(
        pl.col("x_AllocationMethod") == "direct").height), "fixed": int(rows.filter(
            pl.col("x_AllocationMethod") == "fixed").height)}
    assert metadata["rules"].value.startswith("test storage@")
    assert "tag_cardinality" in metadata and "k8s_uncovered_cost" in metadata


def test_spot_checks_measure_attribution_accuracy(month):
    s3_row = month.warehouse.scan(FOCUS_TABLE).filter(pl.col("ServiceName") == S3).select("x_RowId").head(1) \
        .collect().item()
    spot = f"x_RowId,team\n{s3_row},storage\n"
    use_rules(land_of(month), rules_yaml("storage"), extra={"spot_checks/2023-11.csv": spot})
    result = run(month, ALLOCATIONS_TABLE)
    assert result.success
    accuracy = checks_of(result)["attribution_accuracy"]
    assert accuracy.passed and accuracy.metadata["accuracy"].value == 1.0


def test_a_broken_rules_file_fails_naming_file_and_path_and_commits_nothing(month):
    use_rules(land_of(month), rules_yaml("storage"))
    assert run(month, ALLOCATIONS_TABLE).success
    version = month.warehouse.table(ALLOCATIONS_TABLE).version()
    use_rules(land_of(month), rules_yaml("storage", weights="{platform: 60, data: 39}"))
    result = run(month, ALLOCATIONS_TABLE)
    assert not result.success
    message = failure_message(result)
    assert "allocation/rules/active.yaml" in message and "pools[0].weights" in message, message
    assert month.warehouse.table(ALLOCATIONS_TABLE).version() == version


def test_the_conservation_gate_refuses_an_allocation_that_loses_a_cent(month, monkeypatch):
    use_rules(land_of(month), rules_yaml("storage"))
    assert run(month, ALLOCATIONS_TABLE).success
    version = month.warehouse.table(ALLOCATIONS_TABLE).version()
    published = allocated(month)
    real = engine.allocate

    def loses_a_cent(focus, inputs, period):
        out = real(focus, inputs, period)
        first = pl.int_range(pl.len()) == 0
        return engine.Allocation(out.rows.with_columns(
            pl.when(first).then(pl.col("x_AllocatedBilledCost") - Decimal("0.01"))
            .otherwise(pl.col("x_AllocatedBilledCost")).alias("x_AllocatedBilledCost")), out.report)

    monkeypatch.setattr(engine, "allocate", loses_a_cent)
    result = run(month, ALLOCATIONS_TABLE)
    assert not result.success
    assert "allocation_conserved failed" in failure_message(result)
    conserved = checks_of(result)["allocation_conserved"]
    assert not conserved.passed and conserved.metadata["failing"].value == 1
    assert "difference -0.010000000000" in conserved.metadata["problems"].value[0]
    assert month.warehouse.table(ALLOCATIONS_TABLE).version() == version  # nothing committed
    assert allocated(month).equals(published)  # readers keep the previous version


def test_a_period_before_applies_from_is_left_as_published_unless_forced(month):
    use_rules(land_of(month), rules_yaml("storage"))
    assert run(month, ALLOCATIONS_TABLE).success
    version = month.warehouse.table(ALLOCATIONS_TABLE).version()
    use_rules(land_of(month), rules_yaml("archive", applies_from="2024-01"))
    result = run(month, ALLOCATIONS_TABLE)
    assert result.success
    assert month.warehouse.table(ALLOCATIONS_TABLE).version() == version
    assert "before applies_from 2024-01" in checks_of(result)["allocation_conserved"].metadata["note"].value
    assert run(month, ALLOCATIONS_TABLE, config={"force": True}).success
    assert set(allocated(month).filter(pl.col("ServiceName") == S3)["team"]) == {"archive"}


# ---------------------------------------------------------------------------------------------
# allocation_diff and focus_costs_v1_3
# ---------------------------------------------------------------------------------------------
def test_the_shadow_diff_names_exactly_the_owners_that_move(month):
    use_rules(land_of(month), rules_yaml("storage"), candidate=rules_yaml("data"))
    result = run(month, ALLOCATIONS_TABLE, ALLOCATION_DIFF_TABLE)
    assert result.success
    rows = allocated(month)
    s3 = rows.filter(pl.col("ServiceName") == S3)
    diff = month.warehouse.scan(ALLOCATION_DIFF_TABLE, {"x_BillingPeriod": PERIOD}).collect()
    moved = {r["team"]: r["x_MovedBilled"] for r in diff.iter_rows(named=True)}
    assert moved == {"storage": -s3["x_AllocatedBilledCost"].sum(), "data": s3["x_AllocatedBilledCost"].sum()}
    assert set(rows["team"]) >= {"storage"}  # the candidate is never published as cost_allocations
    table = result.asset_materializations_for_node(ALLOCATION_DIFF_TABLE)[0].metadata["owners_that_move"].value
    assert "| storage |" in table and "| data |" in table


def test_without_a_candidate_the_diff_partition_is_empty(month):
    use_rules(land_of(month), rules_yaml("storage"))
    result = run(month, ALLOCATIONS_TABLE, ALLOCATION_DIFF_TABLE)
    assert result.success
    assert month.warehouse.scan(ALLOCATION_DIFF_TABLE, {"x_BillingPeriod": PERIOD}).collect().height == 0
    metadata = result.asset_materializations_for_node(ALLOCATION_DIFF_TABLE)[0].metadata
    assert metadata["candidate"].value == "no candidate rules"


def test_the_focus_1_3_view_keeps_the_totals(month):
    use_rules(land_of(month), rules_yaml("storage"))
    result = run(month, ALLOCATIONS_TABLE, FOCUS_V1_3_TABLE)
    assert result.success
    view = month.warehouse.scan(FOCUS_V1_3_TABLE, {"x_BillingPeriod": PERIOD}).collect()
    assert sums(view, "BilledCost", "EffectiveCost") == focus_sums(month)
    checks = checks_of(result, FOCUS_V1_3_TABLE)
    assert checks["totals_equal_focus"].passed and checks["focus_1_3_columns"].passed
    assert checks["contract"].passed


# ---------------------------------------------------------------------------------------------
# The inputs sensor
# ---------------------------------------------------------------------------------------------
def tick(month, cursor=None):
    context = dg.build_sensor_context(instance=month.instance, resources=month.resources, cursor=cursor)
    result = allocation_inputs_sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    return result.run_requests, result.cursor, result.skip_reason.skip_message if result.skip_reason else None


def requested(requests) -> set[tuple[str, tuple[str, ...]]]:
    return {(r.partition_key, tuple(sorted(k.to_user_string() for k in r.asset_selection))) for r in requests}


ALL = tuple(sorted([ALLOCATIONS_TABLE, ALLOCATION_DIFF_TABLE, FOCUS_V1_3_TABLE]))


def test_the_sensor_requests_the_periods_each_change_covers(month):
    land = land_of(month)
    driver = "date,team,value\n2023-11-02,platform,3\n2023-11-03,data,1\n"
    use_rules(land, rules_yaml("storage"), extra={"drivers/calls/2023-11.csv": driver,
                                                  "drivers/calls/2018-10.csv": "date,team,value\n2018-10-01,data,1\n"})
    requests, cursor, _ = tick(month)
    assert requested(requests) == {(PERIOD, ALL)}  # new active rules: every period with FOCUS rows
    assert tick(month, cursor)[0] == []  # nothing changed

    (land / "allocation/drivers/calls/2023-11.csv").write_text(driver + "2023-11-04,data,2\n")
    requests, cursor, _ = tick(month, cursor)
    assert requested(requests) == {(PERIOD, ALL)}
    assert all(r.tags["focus/trigger"] == "allocation_inputs:inputs" for r in requests)

    (land / "allocation/drivers/calls/2018-10.csv").write_text("date,team,value\n2018-10-01,data,2\n")
    requests, cursor, skip = tick(month, cursor)  # a period without FOCUS rows: nothing to re-run
    assert requests == [] and "no period with published FOCUS rows" in skip

    (land / "allocation/rules/candidate.yaml").write_text(rules_yaml("data"))
    (land / "allocation/settings.yaml").write_text("active: rules/active.yaml\ncandidate: rules/candidate.yaml\n")
    requests, cursor, _ = tick(month, cursor)  # only the candidate changed: the diff alone
    assert requested(requests) == {(PERIOD, (ALLOCATION_DIFF_TABLE,))}

    (land / "allocation/rules/active.yaml").write_text(rules_yaml("archive", applies_from="2024-01"))
    requests, cursor, skip = tick(month, cursor)  # new active rules from 2024-01: 2023-11 stays
    assert requests == []

    (land / "allocation/rules/active.yaml").write_text("name: [broken\n")
    requests, _, skip = tick(month, cursor)
    assert requests == [] and "allocation/rules/active.yaml" in skip


def test_a_removed_input_file_reruns_the_periods_it_covered(month):
    land = land_of(month)
    use_rules(land, rules_yaml("storage"), extra={"spot_checks/2023-11/rows.csv": "x_RowId,team\nr,storage\n"})
    _, cursor, _ = tick(month)
    (land / "allocation/spot_checks/2023-11/rows.csv").unlink()
    requests, _, _ = tick(month, cursor)
    assert requested(requests) == {(PERIOD, ALL)}


def test_telemetry_covers_the_periods_of_its_dates_and_a_nodes_file_those_of_its_cluster(month):
    land = land_of(month)
    use_rules(land, rules_yaml("storage"))
    _, cursor, _ = tick(month)
    try:
        cluster = land / "kubernetes" / "c1"
        cluster.mkdir(parents=True)
        (cluster / "nodes.csv").write_text("node,provider_id,cpu_cores,memory_bytes\nn1,aws:///z/i-0abc,2,4Gi\n")
        (cluster / "opencost-2023-11-05.csv").write_text("Date,Namespace\n2023-11-05,web\n")
        requests, cursor, _ = tick(month, cursor)
        assert requested(requests) == {(PERIOD, ALL)}
        (cluster / "nodes.csv").write_text("node,provider_id,cpu_cores,memory_bytes\nn1,aws:///z/i-0abc,4,8Gi\n")
        requests, cursor, _ = tick(month, cursor)
        assert requested(requests) == {(PERIOD, ALL)}
        (cluster / "opencost-2023-11-05.csv").write_text("Date,Namespace\n2023-12-01,web\n")
        requests, _, _ = tick(month, cursor)  # what the file covered before (2023-11) and now (2023-12: no FOCUS rows)
        assert requested(requests) == {(PERIOD, ALL)}
    finally:  # the other tests read this landing zone
        shutil.rmtree(land / "kubernetes")


def test_the_embedded_sample_inputs_are_read():
    """The sample landing zone's rules, driver, spot checks and telemetry load as the assets read them."""
    from focus_platform.landing.zone import LocalStore

    inputs = allocate.read_inputs(LocalStore(SAMPLE_LANDING))
    assert inputs.active.path == "allocation/rules/v1.yaml" and inputs.candidate.path == "allocation/rules/v2.yaml"
    assert set(inputs.drivers) == {"log-requests"} and inputs.spot_checks.height > 0
    assert set(inputs.nodes["ResourceId"]) == {"i-0869de38a16b03bbb", "i-0474184642c5de81d", "i-0f6a57f12c94805ff"}


def test_the_contract_takes_the_rules_dimensions_as_strings_without_nulls(month):
    """Dimension columns are the rules file's: any other column of cost_allocations is a String never null."""
    from focus_platform.warehouse.contracts import check_contract

    use_rules(land_of(month), rules_yaml("storage"))
    assert run(month, ALLOCATIONS_TABLE).success
    rows = allocated(month).with_columns(pl.lit(PERIOD).alias("x_BillingPeriod"))
    assert check_contract(ALLOCATIONS_TABLE, rows.lazy(), [], None).ok
    null_team = rows.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("team"))
                                  .alias("team"))
    report = check_contract(ALLOCATIONS_TABLE, null_team.lazy(), [], None)
    assert not report.ok and "column team, check not_nullable" in report.message(), report.message()
    assert not check_contract(ALLOCATIONS_TABLE, rows.with_columns(pl.lit(1).alias("team")).lazy(), [], None).ok
    share = rows.with_columns((pl.col("x_AllocationShare") * 2).alias("x_AllocationShare"))
    assert "x_AllocationShare" in check_contract(ALLOCATIONS_TABLE, share.lazy(), [], None).message()
