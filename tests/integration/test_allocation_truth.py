"""Allocation against the truth: generated native FOCUS deliveries whose owners are known
(``generate.allocation``: tags with key and value variants and case conflicts, name patterns, accounts and
OUs, unowned rows, purchases, tax, credits, refunds, covered usage, three shared-cost pools, two Kubernetes
clusters) go through the pipeline into ``focus_costs``, then the engine allocates each period with the rules,
catalog, driver and telemetry of the landing zone. Every row's owner is the truth, every split share and
every (period, currency, owner) total equals the truth to the last decimal (the generator computes it in
Python integers, independently of the engine), totals are conserved per (x_Source, BillingAccountId,
period, currency), and every FOCUS row is allocated."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

from focus_platform.allocation.engine import allocate
from focus_platform.allocation.inputs import read_inputs
from focus_platform.allocation.measures import attribution_accuracy
from focus_platform.generate.allocation import (
    DIMENSIONS,
    ROW_KEY,
    generate_allocation,
)
from focus_platform.landing.config import load_sources
from focus_platform.landing.zone import LocalStore, discover_deliveries
from focus_platform.pipeline import FOCUS_TABLE, ingest_delivery, publish_focus
from focus_platform.warehouse.delta import Warehouse

PERIODS = ["2024-01", "2024-02", "2024-03"]
TRUTH_KEY = f"x_{ROW_KEY}"  # the delivered GeneratedRowKey as native FOCUS keeps it
AMOUNTS = ["x_AllocatedBilledCost", "x_AllocatedEffectiveCost"]


@pytest.fixture(scope="module")
def allocated(tmp_path_factory):
    landing = tmp_path_factory.mktemp("landing")
    warehouse = Warehouse(str(tmp_path_factory.mktemp("warehouse")))
    summary = generate_allocation(landing, rows=3000, months=len(PERIODS), seed=12, start_period=PERIODS[0])
    store = LocalStore(landing)
    landed = read_inputs(store)
    for source in load_sources(str(landing)):
        deliveries = discover_deliveries(store, source)
        assert sorted(deliveries) == PERIODS
        for period, delivery in sorted(deliveries.items()):
            ingest_delivery(warehouse, store, source, delivery)
            assert publish_focus(warehouse, source, period, accounts=landed.catalog).checks.problems == []
    focus = warehouse.scan(FOCUS_TABLE)
    allocations, reports = [], {}
    for period in PERIODS:
        allocation = allocate(focus, landed.for_period(landed.active, period), period)
        allocations.append(allocation.rows.collect())
        reports[period] = allocation.report
    return summary, focus.collect(), pl.concat(allocations), reports


def keyed(allocations: pl.DataFrame, focus: pl.DataFrame) -> pl.DataFrame:
    """Allocation rows with the generated row key of their FOCUS row."""
    return allocations.join(focus.select("x_Source", "x_RowId", TRUTH_KEY), on=["x_Source", "x_RowId"], how="left")


def test_every_focus_row_is_allocated_and_totals_are_conserved(allocated):
    _, focus, allocations, reports = allocated
    assert focus.height == sum(r.rows_in for r in reports.values())
    assert allocations.height == sum(r.rows_out for r in reports.values())
    missing = focus.join(allocations, on=["x_Source", "x_RowId"], how="anti")
    assert missing.height == 0, missing.select("x_Source", "x_RowId", "ChargeCategory").head()
    assert allocations.select(pl.col(list(DIMENSIONS)).null_count().sum()).row(0) == (0, 0, 0)
    keys = ["x_Source", "BillingAccountId", "x_BillingPeriod", "BillingCurrency"]
    billed = focus.group_by(keys).agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum())
    split = allocations.group_by(keys).agg(pl.col(AMOUNTS).sum())
    both = billed.join(split, on=keys, how="full", coalesce=True)
    assert both.height == 2 * len(PERIODS)  # two sources (one billing account, one currency each) × periods
    differ = both.filter((pl.col("BilledCost") != pl.col("x_AllocatedBilledCost"))
                         | (pl.col("EffectiveCost") != pl.col("x_AllocatedEffectiveCost")))
    assert differ.height == 0, differ
    categories = set(focus["ChargeCategory"])
    assert {"Usage", "Purchase", "Tax", "Credit", "Adjustment"} <= categories  # negatives and fees included


def test_every_unsplit_row_has_its_true_owner(allocated):
    summary, focus, allocations, _ = allocated
    truth = pl.read_parquet(summary.expected_dir / "rows" / "*.parquet")
    direct = truth.filter(pl.col("kind") == "direct")
    got = keyed(allocations, focus).join(direct, left_on=TRUTH_KEY, right_on=ROW_KEY, how="inner", suffix="_true")
    assert got.height == direct.height  # one allocation row each
    wrong = got.filter(pl.any_horizontal([pl.col(d) != pl.col(f"{d}_true") for d in DIMENSIONS]))
    assert wrong.height == 0, wrong.select(TRUTH_KEY, "ResourceId", *DIMENSIONS, *[f"{d}_true" for d in DIMENSIONS],
                                           "x_OwnerEvidence").head(10)
    assert (got["x_AllocatedBilledCost"] == got["BilledCost"]).all()
    assert (got["x_AllocatedEffectiveCost"] == got["EffectiveCost"]).all()
    # the evidence the generator wrote is all exercised: unowned rows, every team, the sandbox override
    assert {"unallocated", "platform", "web", "ml", "data-eng"} <= set(direct["team"])
    assert {"prod", "dev", "staging", "sandbox"} <= set(direct["environment"])
    assert {"CC-100", "CC-200", "CC-300", "unallocated"} <= set(direct["cost_center"])


def test_every_pool_and_kubernetes_share_is_the_truth_to_the_last_decimal(allocated):
    summary, focus, allocations, _ = allocated
    expected = pl.read_parquet(summary.expected_dir / "splits.parquet")
    keys = [ROW_KEY, *DIMENSIONS, "target"]
    want = expected.group_by(keys).agg(pl.col(AMOUNTS).sum())
    got = (keyed(allocations, focus).filter(pl.col(TRUTH_KEY).is_in(expected[ROW_KEY].implode()))
           .with_columns(target=pl.when(pl.col("x_AllocationMethod").str.starts_with("kubernetes"))
                         .then(pl.col("x_AllocatedResourceId")).otherwise(pl.col("team")))
           .rename({TRUTH_KEY: ROW_KEY}).group_by(keys).agg(pl.col(AMOUNTS).sum()))
    both = want.join(got, on=keys, how="full", coalesce=True, suffix="_got")
    differ = both.filter(pl.any_horizontal([pl.col(a).ne_missing(pl.col(f"{a}_got")) for a in AMOUNTS]))
    assert differ.height == 0, differ.sort(ROW_KEY).head(10)
    methods = set(expected["x_AllocationMethod"])
    assert {"proportional", "fixed", "driver", "driver-even-fallback", "kubernetes"} <= methods
    assert (expected["x_AllocatedBilledCost"] < 0).any()  # the support credit: a negative pool row


def test_totals_per_period_currency_and_owner_are_the_truth(allocated):
    summary, _, allocations, _ = allocated
    expected = {(t["x_BillingPeriod"], t["BillingCurrency"], *(t[d] for d in DIMENSIONS)):
                (Decimal(t["x_AllocatedBilledCost"]), Decimal(t["x_AllocatedEffectiveCost"]))
                for t in json.loads((summary.expected_dir / "totals.json").read_text())}
    got = {k[:-2]: k[-2:] for k in allocations.group_by("x_BillingPeriod", "BillingCurrency", *DIMENSIONS)
           .agg(pl.col(AMOUNTS).sum()).rows()}
    assert got == expected
    assert {k[0] for k in got} == set(PERIODS) and {k[1] for k in got} == {"USD", "EUR"}


def test_a_reserved_node_splits_its_effective_cost_not_its_list_price(allocated):
    _, focus, allocations, _ = allocated
    reserved = focus.filter(pl.col("CommitmentDiscountType") == "Reservation")
    assert reserved.height > 0 and (reserved["BilledCost"] == 0).all()
    shares = allocations.join(reserved.select("x_Source", "x_RowId", "EffectiveCost", "ListCost"),
                              on=["x_Source", "x_RowId"]).group_by("x_Source", "x_RowId").agg(
        pl.col("x_AllocatedEffectiveCost").sum(), pl.col("EffectiveCost").first(), pl.col("ListCost").first(),
        pl.len().alias("namespaces"))
    assert (shares["x_AllocatedEffectiveCost"] == shares["EffectiveCost"]).all()
    assert (shares["x_AllocatedEffectiveCost"] < shares["ListCost"]).all()
    assert (shares["namespaces"] > 1).all()


def test_the_generated_spot_checks_are_all_met(allocated):
    summary, _, allocations, _ = allocated
    landed = read_inputs(LocalStore(summary.out_dir))
    assert landed.spot_checks is not None
    accuracy = attribution_accuracy(allocations.lazy(), landed.spot_checks, landed.active)
    assert accuracy.found.height > 0 and accuracy.mismatches.height == 0, accuracy.mismatches
    assert accuracy.value == 1.0


# ---------------------------------------------------------------------------------------------
# The same truth through Dagster: ingest assets per (period, source), then cost_allocations per period
# ---------------------------------------------------------------------------------------------
DAGSTER_PERIODS = PERIODS[:2]
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    import dagster as dg

    from focus_platform.defs.assets import allocate as allocate_assets
    from focus_platform.defs.assets.ingest import INGEST_ASSETS
    from focus_platform.defs.partitions import EXPORT_SOURCE, dagster_key
    from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
    from focus_platform.periods import PartitionKey

    landing = tmp_path_factory.mktemp("dagster-landing")
    warehouse = tmp_path_factory.mktemp("dagster-warehouse")
    summary = generate_allocation(landing, rows=1500, months=len(DAGSTER_PERIODS), seed=21,
                                  start_period=DAGSTER_PERIODS[0])
    resources = {"landing_zone": LandingZoneResource(root=str(landing)),
                 "warehouse": WarehouseResource(root=str(warehouse))}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(EXPORT_SOURCE, list(summary.sources))
        for period in DAGSTER_PERIODS:
            for source in summary.sources:
                ingested = dg.materialize(INGEST_ASSETS, partition_key=dagster_key(PartitionKey.of(period, source)),
                                          instance=instance, resources=resources, run_config=QUIET)
                assert ingested.success
            allocated = dg.materialize(allocate_assets.ALLOCATE_ASSETS, partition_key=period, instance=instance,
                                       resources=resources, run_config=QUIET, selection=["cost_allocations"],
                                       raise_on_error=False)
            failures = [e.message for e in allocated.all_events if e.is_failure]
            assert allocated.success, failures
    return summary, Warehouse(str(warehouse))


def test_cost_allocations_through_dagster_are_the_truth(materialized):
    from focus_platform.warehouse.catalog import ALLOCATIONS_TABLE

    summary, warehouse = materialized
    expected = {(t["x_BillingPeriod"], t["BillingCurrency"], *(t[d] for d in DIMENSIONS)):
                (Decimal(t["x_AllocatedBilledCost"]), Decimal(t["x_AllocatedEffectiveCost"]))
                for t in json.loads((summary.expected_dir / "totals.json").read_text())}
    table = warehouse.scan(ALLOCATIONS_TABLE).collect()
    got = {k[:-2]: k[-2:] for k in table.group_by("x_BillingPeriod", "BillingCurrency", *DIMENSIONS)
           .agg(pl.col(AMOUNTS).sum()).rows()}
    assert got == expected
    focus = warehouse.scan(FOCUS_TABLE).collect()
    truth = pl.read_parquet(summary.expected_dir / "rows" / "*.parquet").filter(pl.col("kind") == "direct")
    owners = keyed(table, focus).join(truth, left_on=TRUTH_KEY, right_on=ROW_KEY, suffix="_true")
    assert owners.height == truth.height
    assert owners.filter(pl.any_horizontal([pl.col(d) != pl.col(f"{d}_true") for d in DIMENSIONS])).height == 0
