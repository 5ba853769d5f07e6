"""Allocate domain: cost_allocations, allocation_diff and focus_costs_v1_3, with their checks.

Thin: each asset reads its inputs from the landing zone and the warehouse, calls
``focus_platform.allocation`` and publishes one billing-period partition (every export source of the
period together: pools and proportional weights are computed per period and currency) through the
warehouse's one write path.

- ``cost_allocations``: ``engine.allocate`` with the active rules on the period's focus_costs. Inputs
  (all optional, ``read_inputs``): ``<landing>/allocation/settings.yaml`` (``active:`` and
  ``candidate:`` rules files; without it the only file under ``allocation/rules/`` is active; no
  rules file at all: the built-in default rules, everything ``unallocated``),
  ``allocation/drivers/<name>/*.csv``, ``allocation/spot_checks/**.csv`` (M7; a ``YYYY-MM`` in a
  file's path limits it to that period), the account catalog ``accounts/**`` and OpenCost telemetry
  ``kubernetes/<cluster>/*.csv`` (with the cluster's ``nodes.csv``; files directly under
  ``kubernetes/`` or ``drivers/`` belong to no cluster or driver and are not read). The publication
  is gated by the table's contract and by ``allocation_conserved``: per x_Source × BillingAccountId ×
  period × currency the allocated billed and effective sums equal focus_costs exactly and every FOCUS
  row has an allocation row, or nothing is committed. A period before the active rules' ``applies_from``
  is left as published (a no-op that says so) unless run config ``force: true``.
- ``allocation_diff`` (shadow mode): with a ``candidate:`` in the settings, the period is allocated
  again with the candidate (never published as cost_allocations) and the owners whose amounts would
  move are published; without one, an empty partition ("no candidate rules"). Promotion is a change
  of ``active:`` in the settings file.
- ``focus_costs_v1_3``: focus_costs of the period as FOCUS 1.3, the split-cost columns from the
  Kubernetes rows of cost_allocations; gated by its totals equalling focus_costs.

Triggers: each asset follows its upstream partitions (``automation.follows_upstream``: a re-published
focus_costs partition re-allocates its period); a change of rules, drivers, telemetry or spot checks
re-runs the periods it covers (``sensors/allocate.py``). Backfills batch up to 12 months per run.
"""


import dagster as dg
import polars as pl

from focus_platform import __version__
from focus_platform.allocation import (
    diff,
    engine,
    focus13,
    inputs,
    measures,
    rules,
)
from focus_platform.allocation.inputs import LandingInputs
from focus_platform.allocation.model import Rules
from focus_platform.defs.assets.reconcile import (
    BATCHED_BACKFILL,
    FOCUS_BY_PERIOD,
    focus_of_period,
)
from focus_platform.defs.automation import follows_upstream
from focus_platform.defs.checks import (
    ERROR,
    WARN,
    Check,
    Outcome,
    contract_check,
    md_table,
    over_periods,
    specs,
    with_own_checks,
)
from focus_platform.defs.partitions import allocate_periods
from focus_platform.defs.publish import NotPublished, publish, refused
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.periods import (
    PERIOD_COLUMN,
    BillingPeriod,
    PartitionKey,
)
from focus_platform.warehouse.catalog import (
    ALLOCATION_DIFF_TABLE,
    ALLOCATIONS_TABLE,
    FOCUS_V1_3_TABLE,
)
from focus_platform.warehouse.delta import Warehouse

CODE_VERSION = __version__
GROUP = "allocation"



def read_inputs(store) -> LandingInputs:
    """Every allocation input of the landing zone; a bad file is a ``dg.Failure`` naming it."""
    try:
        return inputs.read_inputs(store)
    except inputs.INPUT_ERRORS as exc:
        raise dg.Failure(str(exc)) from exc


def before_cutoff(ruleset: Rules, period: str) -> bool:
    """Whether a period lies before the rules' ``applies_from`` (its published allocation stays)."""
    return ruleset.applies_from is not None and period < ruleset.applies_from


def allocate(landed: LandingInputs, ruleset: Rules, focus: pl.LazyFrame, period: str) -> engine.Allocation:
    try:
        return engine.allocate(focus, landed.for_period(ruleset, period), period)
    except engine.AllocationError as exc:
        raise dg.Failure(f"{period}, rules {ruleset.path}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Publishing and check outcomes
# ---------------------------------------------------------------------------------------------
def conservation_outcome(result: measures.ConservationResult) -> Outcome:
    return Outcome(result.ok, {
        "keys": result.rows.height, "failing": result.failing.height,
        "problems": result.problems,
        "totals": dg.MetadataValue.md(md_table(result.rows, ["x_Source", "BillingAccountId", "BillingCurrency",
                                                             "focus_billed", "allocated_billed", "focus_effective",
                                                             "allocated_effective"]))})


def service_level_outcome(meets: bool | None, metadata: dict, none: str) -> Outcome:
    """A service level measured on a period: passes unless it misses its target (nothing to measure: ``none``)."""
    return Outcome(meets is not False, metadata if meets is not None else {**metadata, "note": none})


CONTRACTS = {table: contract_check(table) for table in (ALLOCATIONS_TABLE, ALLOCATION_DIFF_TABLE, FOCUS_V1_3_TABLE)}


def read_partition(wh: Warehouse, table: str, period: str) -> pl.LazyFrame | None:
    """A published billing-period partition (None when the table or the partition does not exist)."""
    dt = wh.table(table)
    if dt is None or not any(p.get(PERIOD_COLUMN) == period for p in dt.partitions()):
        return None
    return wh.scan(table, PartitionKey.of(period).values())


# ---------------------------------------------------------------------------------------------
# cost_allocations
# ---------------------------------------------------------------------------------------------
CONSERVED = Check("allocation_conserved", ALLOCATIONS_TABLE,
                  "per x_Source × BillingAccountId × billing period × currency, sum(x_AllocatedBilledCost) = "
                  "sum(BilledCost) and sum(x_AllocatedEffectiveCost) = sum(EffectiveCost) of focus_costs, exactly, "
                  "and every FOCUS row allocated; checked before the commit, so an allocation that makes or loses "
                  "money publishes nothing", ERROR, blocking=True)
COVERAGE = Check("allocation_coverage", ALLOCATIONS_TABLE,
                 "M1: spend whose owner (first dimension) is not the default 'unallocated' at or above target, per "
                 "billing period and currency", WARN, service_level="M1")
TAG_COMPLIANCE = Check("tag_compliance", ALLOCATIONS_TABLE,
                       "M14: spend carrying every required tag key at or above target (per key and per owner in "
                       "metadata)", WARN, service_level="M14")
UNALLOCATED_TREND = Check("unallocated_trend", ALLOCATIONS_TABLE,
                          "M4: the unallocated share of the last complete week rose less than the target against "
                          "the week before (the previous period's partition completes the weeks across the month "
                          "boundary)", WARN, service_level="M4")
ATTRIBUTION = Check("attribution_accuracy", ALLOCATIONS_TABLE,
                    "M7: spot checks (<landing>/allocation/spot_checks/; a YYYY-MM in the path limits a file to that "
                    "period) whose expected owner the allocation gives, at or above target", WARN,
                    service_level="M7")
RULES_MATCH = Check("rules_all_match", ALLOCATIONS_TABLE,
                    "every virtual tag and pool of the active rules matched at least one row of the period", WARN)
ALLOCATION_CONTRACT = CONTRACTS[ALLOCATIONS_TABLE]
ALLOCATION_CHECKS = [CONSERVED, ALLOCATION_CONTRACT, COVERAGE, TAG_COMPLIANCE, UNALLOCATED_TREND, ATTRIBUTION,
                     RULES_MATCH]


class AllocationConfig(dg.Config):
    force: bool = False  # re-allocate periods before the rules' applies_from (otherwise their allocation stays)


def rules_label(ruleset: Rules) -> str:
    return f"{ruleset.name} {ruleset.version}@{ruleset.digest} ({ruleset.path})"


def measured(period: str, allocated: pl.LazyFrame, focus: pl.LazyFrame, previous: pl.LazyFrame | None,
             allocation: engine.Allocation, landed: LandingInputs) -> dict[Check, Outcome]:
    """The WARN checks of one allocated period."""
    ruleset = landed.active
    cover = measures.coverage(allocated, ruleset)
    tags = measures.tag_compliance(focus, allocated, ruleset)
    trend = measures.unallocated_trend(allocated, previous, ruleset)
    unmatched = list(allocation.report.unmatched_rules)
    out = {
        COVERAGE: service_level_outcome(cover.meets, cover.metadata(), "no spend in the period"),
        TAG_COMPLIANCE: service_level_outcome(tags.meets, tags.metadata(), "no required tag key in the rules"
                                              if not tags.required else "no spend in the period"),
        UNALLOCATED_TREND: Outcome(not trend.alert, trend.metadata()),
        RULES_MATCH: Outcome(not unmatched, {"unmatched": len(unmatched), "rules": unmatched,
                                             "rules_file": rules_label(ruleset)}),
    }
    spot_checks = landed.spot_checks_of(period)
    if spot_checks is None:
        out[ATTRIBUTION] = Outcome(True, {"note": f"no spot checks under {inputs.SPOT_CHECKS_PREFIX}/ for {period}"})
    else:
        accuracy = measures.attribution_accuracy(allocated, spot_checks, ruleset)
        out[ATTRIBUTION] = service_level_outcome(accuracy.meets, accuracy.metadata(),
                                                 "no spot-checked row or resource in the period")
    return out


def report_metadata(allocation: engine.Allocation, published: pl.LazyFrame, ruleset: Rules) -> dict:
    """The materialization's metadata of one allocated period: what the engine reports."""
    report = allocation.report
    methods = published.group_by("x_AllocationMethod").len().sort("x_AllocationMethod").collect()
    return {
        "rules": rules_label(ruleset),
        "focus_rows": report.rows_in,
        "rows_by_method": dict(methods.iter_rows()),
        "matches_by_rule": report.matches,
        "unmatched_rules": list(report.unmatched_rules),
        "tag_cardinality": dg.MetadataValue.md(md_table(
            pl.DataFrame([(d.name, *report.cardinality.get(d.name, (0, 0)), d.max_values) for d in ruleset.dimensions],
                         schema=["dimension", "values_before_cap", "values_after_cap", "max_values"], orient="row"),
            ["dimension", "values_before_cap", "values_after_cap", "max_values"])),
        "tag_key_conflicts": report.tag_key_conflicts,
        "even_fallbacks": report.even_fallbacks,
        "null_costs": report.null_costs,
        "k8s_uncovered_cost": [{"cluster": u.cluster, "currency": u.currency, "rows": u.rows, "billed": str(u.billed),
                                "effective": str(u.effective), "days": len(u.days)} for u in report.uncovered_nodes],
        "k8s_unmapped_namespaces": [f"{cluster}/{namespace}" for cluster, namespace in report.unmapped_namespaces],
    }


@dg.asset(
    name=ALLOCATIONS_TABLE, partitions_def=allocate_periods, deps=[FOCUS_BY_PERIOD], group_name=GROUP,
    code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=specs(ALLOCATION_CHECKS),
    automation_condition=follows_upstream(), backfill_policy=BATCHED_BACKFILL,
    description="One row per FOCUS row × owner share, every export source of the billing period: the owner "
                "columns the rules file declares (tags, virtual tags, default 'unallocated'), Kubernetes node "
                "cost split to namespaces from OpenCost telemetry, shared-cost pools split even / proportional / "
                "fixed / by a driver table; x_AllocatedBilledCost and x_AllocatedEffectiveCost exact to 10^-12, "
                "summing to focus_costs per source, billing account, period and currency.",
)
def cost_allocations(context: dg.AssetExecutionContext, config: AllocationConfig, landing_zone: LandingZoneResource,
                     warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    landed = read_inputs(landing_zone.store())
    ruleset = landed.active
    outcomes: dict[Check, dict[str, Outcome]] = {check: {} for check in ALLOCATION_CHECKS}
    versions, metadata, rows_total = {}, {}, 0
    for period in sorted(context.partition_keys):  # oldest first: M4 reads the period before
        if before_cutoff(ruleset, period) and not config.force:
            note = (f"{period} is before applies_from {ruleset.applies_from} of {rules_label(ruleset)}: its "
                    "published allocation stays (run config force: true re-allocates it)")
            context.log.info(note)
            for check in ALLOCATION_CHECKS:
                outcomes[check][period] = Outcome(True, {"note": note})
            continue
        focus = focus_of_period(wh, period)
        allocation = allocate(landed, ruleset, focus, period)
        try:  # the parts stream into the staged files one after another: memory does not grow with the rows
            versions[period], outcomes[ALLOCATION_CONTRACT][period], outcomes[CONSERVED][period] = publish(
                wh, ALLOCATIONS_TABLE, allocation.to_write(), PartitionKey.of(period), context.run_id,
                {"period": period, "rules": f"{ruleset.version}@{ruleset.digest}"}, gate=CONSERVED,
                measure=lambda staged, focus=focus: conservation_outcome(
                    measures.allocation_conservation(focus, staged)))
        except NotPublished as exc:
            yield from refused(exc)
        published = read_partition(wh, ALLOCATIONS_TABLE, period)  # what readers now see
        previous = read_partition(wh, ALLOCATIONS_TABLE, str(BillingPeriod.parse(period).shift(-1)))
        for check, outcome in measured(period, published, focus, previous, allocation, landed).items():
            outcomes[check][period] = outcome
        metadata[period] = report_metadata(allocation, published, ruleset)
        rows_total += allocation.report.rows_out
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows_total,
            **(next(iter(metadata.values())) if len(metadata) == 1 else {}),
            "periods_allocated": sorted(versions),
            "periods_left_as_published": sorted(set(context.partition_keys) - set(versions)),
            **({"delta_version": max(versions.values())} if versions else {}),
            "table_uri": dg.MetadataValue.path(wh.uri(ALLOCATIONS_TABLE)),
        },
        check_results=[over_periods(check, outcomes[check]) for check in ALLOCATION_CHECKS])


# ---------------------------------------------------------------------------------------------
# allocation_diff (shadow mode)
# ---------------------------------------------------------------------------------------------
DIFF_CONTRACT = CONTRACTS[ALLOCATION_DIFF_TABLE]
MOVED_COLUMNS = ["x_ActiveBilled", "x_CandidateBilled", "x_MovedBilled", "x_ActiveEffective", "x_CandidateEffective",
                 "x_MovedEffective"]


@dg.asset(
    name=ALLOCATION_DIFF_TABLE, partitions_def=allocate_periods, deps=[ALLOCATIONS_TABLE, FOCUS_BY_PERIOD],
    group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=[DIFF_CONTRACT.spec()],
    automation_condition=follows_upstream(), backfill_policy=BATCHED_BACKFILL,
    description="Shadow mode: the billing period allocated with the candidate rules of "
                "<landing>/allocation/settings.yaml (never published as cost_allocations) against the published "
                "allocation: per owner, active and candidate billed / effective amounts and what would move. Empty "
                "without a candidate; promotion is setting active: to the candidate's file.",
)
def allocation_diff(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                    warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    landed = read_inputs(landing_zone.store())
    candidate = landed.candidate
    dims = [d for d in landed.active.dimension_names if candidate is None or d in candidate.dimension_names]
    versions, contracts, moved = {}, {}, []
    for period in sorted(context.partition_keys):
        if candidate is None:
            nothing = pl.LazyFrame(schema=engine.allocation_schema(landed.active))
            table = diff.allocation_diff(nothing, nothing, dims)
        else:
            active = read_partition(wh, ALLOCATIONS_TABLE, period)
            if active is None:
                raise dg.Failure(f"{ALLOCATIONS_TABLE} has no partition {period}: materialize it before its diff")
            shadow = allocate(landed, candidate, focus_of_period(wh, period), period)
            table = diff.allocation_diff(active, shadow.rows, dims)
        try:
            versions[period], contracts[period], _ = publish(wh, ALLOCATION_DIFF_TABLE, table.lazy(),
                                                             PartitionKey.of(period),
                                                             context.run_id, {"period": period})
        except NotPublished as exc:
            yield from refused(exc)
        moved.append(table)
    owners = pl.concat(moved, how="vertical")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": owners.height,
            "active": rules_label(landed.active),
            "candidate": rules_label(candidate) if candidate else "no candidate rules",
            "owners_that_move": dg.MetadataValue.md(
                md_table(owners, ["x_BillingPeriod", "BillingCurrency", *dims, *MOVED_COLUMNS], limit=40)
                if candidate else "no candidate rules"),
            "delta_version": max(versions.values()),
            "table_uri": dg.MetadataValue.path(wh.uri(ALLOCATION_DIFF_TABLE)),
        },
        check_results=[over_periods(DIFF_CONTRACT, contracts)])


# ---------------------------------------------------------------------------------------------
# focus_costs_v1_3
# ---------------------------------------------------------------------------------------------
V1_3_CONTRACT = CONTRACTS[FOCUS_V1_3_TABLE]
TOTALS_EQUAL = Check("totals_equal_focus", FOCUS_V1_3_TABLE,
                     "per x_Source × BillingAccountId × currency, sum(BilledCost) and sum(EffectiveCost) equal "
                     "focus_costs of the period exactly; checked before the commit", ERROR, blocking=True)
V1_3_COLUMNS = Check("focus_1_3_columns", FOCUS_V1_3_TABLE,
                     "the FOCUS 1.3 column rules hold (nullability, allowed values, JSON objects, the Allocated* "
                     "columns together on the rows the Kubernetes split divided); a provider-data gap of focus_costs "
                     "(a null the export leaves) shows here too, hence WARN", WARN)
V1_3_CHECKS = [TOTALS_EQUAL, V1_3_CONTRACT, V1_3_COLUMNS]


def as_allocated(view: pl.LazyFrame) -> pl.LazyFrame:
    """The view's amounts under the allocation's names, so that one conservation measure compares both with
    focus_costs (every FOCUS row present, the sums per source, account and currency equal)."""
    return view.select(*measures.KEYS, "x_RowId", x_AllocatedBilledCost=pl.col("BilledCost"),
                       x_AllocatedEffectiveCost=pl.col("EffectiveCost"))


@dg.asset(
    name=FOCUS_V1_3_TABLE, partitions_def=allocate_periods, deps=[FOCUS_BY_PERIOD, ALLOCATIONS_TABLE],
    group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=specs(V1_3_CHECKS),
    automation_condition=follows_upstream(), backfill_policy=BATCHED_BACKFILL,
    description="focus_costs of the billing period (every source) as FOCUS 1.3: every column of the 1.3 "
                "specification (null where it does not apply), ServiceProviderName / HostProviderName, and the "
                "split-cost columns (AllocatedMethodId, AllocatedResourceId, AllocatedTags, …) on the rows the "
                "Kubernetes split of cost_allocations divided. The 1.2 table keeps its columns.",
)
def focus_costs_v1_3(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                     warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    try:
        kubernetes_rules = inputs.read_rules(landing_zone.store())[0].kubernetes  # what named the split method
    except rules.RulesError as exc:
        raise dg.Failure(str(exc)) from exc
    outcomes: dict[Check, dict[str, Outcome]] = {check: {} for check in V1_3_CHECKS}
    versions, rows_total = {}, 0
    for period in sorted(context.partition_keys):
        focus = focus_of_period(wh, period)
        splits = read_partition(wh, ALLOCATIONS_TABLE, period) if kubernetes_rules is not None else None
        try:
            view = focus13.focus_v1_3(focus, splits, kubernetes_rules)
            versions[period], outcomes[V1_3_CONTRACT][period], outcomes[TOTALS_EQUAL][period] = publish(
                wh, FOCUS_V1_3_TABLE, view, PartitionKey.of(period), context.run_id, {"period": period}, gate=TOTALS_EQUAL,
                measure=lambda staged, focus=focus: conservation_outcome(
                    measures.allocation_conservation(focus, as_allocated(staged))))
        except focus13.ViewError as exc:
            raise dg.Failure(f"{FOCUS_V1_3_TABLE} {period}: {exc}") from exc
        except NotPublished as exc:
            yield from refused(exc)
        published = read_partition(wh, FOCUS_V1_3_TABLE, period)
        problems = focus13.check_v1_3(published)
        rows = published.select(pl.len()).collect().item()
        outcomes[V1_3_COLUMNS][period] = Outcome(not problems, {"problems": problems, "rows": rows})
        rows_total += rows
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": rows_total, "delta_version": max(versions.values()),
                  "table_uri": dg.MetadataValue.path(wh.uri(FOCUS_V1_3_TABLE))},
        check_results=[over_periods(check, outcomes[check]) for check in V1_3_CHECKS])


ALLOCATE_ASSETS = [cost_allocations, allocation_diff, focus_costs_v1_3]
allocation_job = dg.define_asset_job(
    "allocation",
    selection=with_own_checks(ALLOCATE_ASSETS, [*ALLOCATION_CHECKS, DIFF_CONTRACT, *V1_3_CHECKS]),
    partitions_def=allocate_periods,
    description="cost allocation of one billing period (all sources), its shadow diff and the FOCUS 1.3 view")
