"""Jobs: the conversion chain for one (billing period, export source) partition; the
reconciliation of one billing period; the unpartitioned invoice and exchange-rate tables."""

import dagster as dg

from focus_platform.assets import ASSETS
from focus_platform.assets.partitions import billing_periods
from focus_platform.assets.reconciliation import (
    exchange_rates_asset,
    invoice_reconciliation,
    invoices_asset,
    sku_catalog,
)

focus_pipeline_job = dg.define_asset_job("focus_pipeline", selection=ASSETS,
                                         description="raw export → FOCUS 1.2 for one billing period × source")
reconciliation_job = dg.define_asset_job(
    "reconciliation", selection=[invoice_reconciliation, sku_catalog], partitions_def=billing_periods,
    description="invoices vs FOCUS BilledCost and the SKU catalog for one billing period (all sources)")
invoices_job = dg.define_asset_job("invoices_and_rates", selection=[invoices_asset, exchange_rates_asset],
                                   description="invoice documents (memos resolved) and exchange rates")
JOBS = [focus_pipeline_job, reconciliation_job, invoices_job]
