"""The reconcile tables go through the warehouse's gate: a frame that breaks the table's contract
(a null in a column the contract requires) fails the run naming table, column and check, commits
nothing, and leaves the previously published version readable with the same rows."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from focus_platform.defs.assets.reconcile import RECONCILE_ASSETS
from focus_platform.reconciliation import catalog, currency, invoices, reconcile
from focus_platform.warehouse.catalog import (
    EXCHANGE_RATES_TABLE,
    INVOICES_TABLE,
    RECONCILIATION_TABLE,
    SKU_CATALOG_TABLE,
)
from tests.integration.conftest import SAMPLE_PERIOD, published_sample_month

PERIOD = SAMPLE_PERIOD
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def null_first(df: pl.DataFrame, column: str) -> pl.DataFrame:
    return df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col(column)).alias(column))


# table → (module, function whose frame the asset publishes, how to break what it returns, column nulled)
BREAKS = {
    INVOICES_TABLE: (invoices, "read_invoices", lambda out: null_first(out, "BillingCurrency"), "BillingCurrency"),
    EXCHANGE_RATES_TABLE: (currency, "load_rates", lambda out: null_first(out, "Rate"), "Rate"),
    RECONCILIATION_TABLE: (reconcile, "reconcile_period",
                           lambda out: reconcile.Reconciliation(out.period, null_first(out.rows, "Status")), "Status"),
    SKU_CATALOG_TABLE: (catalog, "build_catalog", lambda out: null_first(out, "SkuId"), "SkuId"),
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    month = published_sample_month(tmp_path_factory.mktemp("gate"))
    return month.instance, month.resources, month.warehouse


@pytest.mark.parametrize("table", list(BREAKS))
def test_a_broken_contract_stops_publication_and_keeps_the_prior_version(published, table, monkeypatch):
    instance, res, wh = published
    module, function, breaks, column = BREAKS[table]
    original = getattr(module, function)
    monkeypatch.setattr(module, function, lambda *a, **k: breaks(original(*a, **k)))
    version, rows = wh.table(table).version(), wh.scan(table).collect()

    result = dg.materialize(RECONCILE_ASSETS, partition_key=PERIOD if table in (RECONCILIATION_TABLE,
                                                                                 SKU_CATALOG_TABLE) else None,
                            instance=instance, resources=res, run_config=QUIET, selection=[table],
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.user_failure_data.description
    assert f"{table}: contract broken" in message and f"column {column}, check not_nullable" in message, message
    assert wh.table(table).version() == version  # nothing committed
    assert wh.scan(table).collect().equals(rows)  # the prior version is what readers see
