"""The table catalog: every Delta table of the warehouse, declared once (no Dagster here).

Each ``TableSpec`` gives a table's name, its partition columns (billing period × export source,
billing period, or none), the domain that writes it, its default retention in months (None: kept),
its contract (``warehouse.contracts``) and the checks that gate a publication. The warehouse's one
write path (``Warehouse.publish`` / ``drop_partition``) takes the spec; the retention job and its
compliance check (M11) walk the catalog; the Dagster layer reads names and shapes from here.

Retention defaults (months counted back from the open month, the open month included) are the
catalog's; ``FOCUS_RETENTION`` overrides them (``warehouse.retention``).
"""

from __future__ import annotations

from dataclasses import dataclass

from focus_platform.periods import PERIOD_COLUMN, SOURCE_COLUMN
from focus_platform.sources import RAW_TABLES

BY_PERIOD_AND_SOURCE = (PERIOD_COLUMN, SOURCE_COLUMN)
BY_PERIOD = (PERIOD_COLUMN,)
UNPARTITIONED: tuple[str, ...] = ()

INGEST, RECONCILE, ALLOCATE, FORECAST, OPERATE = "ingest", "reconcile", "allocate", "forecast", "operate"

FOCUS_TABLE = "focus_costs"
QUARANTINE_TABLE = "focus_quarantine"
PERIOD_STATUS = "period_status"
RESTATEMENT_LOG = "restatement_log"
INVOICES_TABLE = "invoices"
EXCHANGE_RATES_TABLE = "exchange_rates"
RECONCILIATION_TABLE = "invoice_reconciliation"
SKU_CATALOG_TABLE = "sku_catalog"
ALLOCATIONS_TABLE = "cost_allocations"
ALLOCATION_DIFF_TABLE = "allocation_diff"
FOCUS_V1_3_TABLE = "focus_costs_v1_3"
SPEND_FORECASTS_TABLE = "spend_forecasts"
FORECAST_BACKTESTS_TABLE = "forecast_backtests"
BUDGET_STATUS_TABLE = "budget_status"
COST_ANOMALIES_TABLE = "cost_anomalies"
POLICY_ACTIONS_TABLE = "policy_actions"

RAW_RETENTION, FOCUS_RETENTION, RECONCILIATION_RETENTION = 24, 36, 84


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_by: tuple[str, ...]
    domain: str
    description: str
    retention_months: int | None = None  # default policy; None: every partition kept
    gates: tuple[str, ...] = ()  # the checks that must pass before a publication commits
    logged: bool = True  # each replaced or dropped partition gets a restatement-log entry
    # (currency, billed, effective) columns whose per-currency sums the restatement log records
    # before and after each change; None: rows only (raw tables: their format's raw_totals)
    totals: tuple[str, str, str] | None = None

    @property
    def partitioned(self) -> bool:
        return bool(self.partition_by)


def _raw(name: str) -> TableSpec:
    return TableSpec(name, BY_PERIOD_AND_SOURCE, INGEST,
                     "provider deliveries as delivered: every column, typed, plus lineage",
                     RAW_RETENTION, gates=("delivery_accepted", "contract"))


TABLES: dict[str, TableSpec] = {t.name: t for t in [
    *(_raw(name) for name in RAW_TABLES),
    TableSpec(FOCUS_TABLE, BY_PERIOD_AND_SOURCE, INGEST, "canonical FOCUS 1.2 cost and usage rows + x_ lineage",
              FOCUS_RETENTION, gates=("contract", "conformance", "billed_cost_conserved", "effective_cost_conserved",
                                      "rows_conserved", "row_id_unique"),
              totals=("BillingCurrency", "BilledCost", "EffectiveCost")),
    TableSpec(QUARANTINE_TABLE, BY_PERIOD_AND_SOURCE, INGEST, "raw rows that cannot be converted, with reason",
              FOCUS_RETENTION, gates=("contract",)),
    TableSpec(PERIOD_STATUS, BY_PERIOD_AND_SOURCE, INGEST, "open / final / restated per billing period and source",
              FOCUS_RETENTION, gates=("contract",), logged=False),
    TableSpec(RESTATEMENT_LOG, UNPARTITIONED, OPERATE, "one entry per replaced or dropped partition (append-only)",
              None, gates=("contract",), logged=False),
    TableSpec(INVOICES_TABLE, UNPARTITIONED, RECONCILE, "invoice documents and credit memos, plus summaries "
              "derived from focus_costs", None, gates=("contract",)),
    TableSpec(EXCHANGE_RATES_TABLE, UNPARTITIONED, RECONCILE, "exchange rates by date (Decimal)", None,
              gates=("contract",)),
    TableSpec(RECONCILIATION_TABLE, BY_PERIOD, RECONCILE, "invoices vs sum(BilledCost) per invoice",
              RECONCILIATION_RETENTION, gates=("contract",)),
    TableSpec(SKU_CATALOG_TABLE, BY_PERIOD, RECONCILE, "SKU / rate card of a billing period",
              RECONCILIATION_RETENTION, gates=("contract",)),
    TableSpec(ALLOCATIONS_TABLE, BY_PERIOD, ALLOCATE, "one row per FOCUS row × owner share (every source of the "
              "period): owner columns as the rules file declares them, exact allocated amounts, rule and rules "
              "version", RECONCILIATION_RETENTION, gates=("contract", "allocation_conserved"),
              totals=("BillingCurrency", "x_AllocatedBilledCost", "x_AllocatedEffectiveCost")),
    # a shadow view recomputed from the active and candidate rules on every run: Delta history keeps its
    # versions, the restatement log is for published money
    TableSpec(ALLOCATION_DIFF_TABLE, BY_PERIOD, ALLOCATE, "shadow mode: per owner, what a candidate rules version "
              "would move against the active one", RECONCILIATION_RETENTION, gates=("contract",), logged=False),
    TableSpec(FOCUS_V1_3_TABLE, BY_PERIOD, ALLOCATE, "focus_costs as FOCUS 1.3 (every source of the period), "
              "split-cost columns from cost_allocations", FOCUS_RETENTION,
              gates=("contract", "totals_equal_focus"), totals=("BillingCurrency", "BilledCost", "EffectiveCost")),
    # predictions, replaced whole on every run (Delta history keeps the earlier ones)
    TableSpec(SPEND_FORECASTS_TABLE, UNPARTITIONED, FORECAST, "daily and monthly spend forecasts per owner × service "
              "× provider × currency with their prediction interval, model and why it was chosen",
              gates=("contract",)),
    TableSpec(FORECAST_BACKTESTS_TABLE, UNPARTITIONED, FORECAST, "the last rolling-origin backtest per series: model "
              "and seasonal-naive MAPE, interval coverage, the choice and the input fingerprint", gates=("contract",)),
    TableSpec(BUDGET_STATUS_TABLE, BY_PERIOD, FORECAST, "per budget (owner × period): actual to date, projection at "
              "period end, burn rate (M13), projected overrun date and status", RECONCILIATION_RETENTION,
              gates=("contract",)),
    TableSpec(COST_ANOMALIES_TABLE, BY_PERIOD, FORECAST, "anomalous days of a series against its seasonal baseline, "
              "grouped into incidents, with top contributing resources; raised or suppressed",
              RECONCILIATION_RETENTION, gates=("contract",)),
    # append-only: each policy evaluation adds its rows (Warehouse.append, as the restatement log)
    TableSpec(POLICY_ACTIONS_TABLE, UNPARTITIONED, FORECAST, "one row per policy × signal of each evaluation: mode, "
              "action, outcome and delivery (append-only)", None, gates=("contract",), logged=False),
]}


def table(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"table {name!r} is not in the catalog; known: {', '.join(sorted(TABLES))}") from None
