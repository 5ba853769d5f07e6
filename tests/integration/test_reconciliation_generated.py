"""Reconciliation assets in process on generated AWS data with known invoices (three payers, one
billing in EUR; three months, the last one open): drift 0 everywhere; a 2 % discrepancy fails the
M3 ERROR check for its period only and the explaining rows name the injected rows; a late credit
memo for M−2 re-runs M−2 and turns its check green. Assertions are on the Delta tables and on the
asset check evaluations Dagster recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from focus_platform.defs.assets.ingest import INGEST_ASSETS
from focus_platform.defs.assets.reconcile import (
    EXCHANGE_RATES_TABLE,
    INVOICES_TABLE,
    RECONCILE_ASSETS,
    RECONCILIATION_TABLE,
    SKU_CATALOG_TABLE,
    exchange_rates_asset,
    invoice_reconciliation,
    invoices_asset,
    sku_catalog,
)
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.generate.aws_cur import generate_aws_cur
from focus_platform.landing.zone import ExportSource, LocalStore, discover_deliveries
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import (
    FOCUS_TABLE,
    ingest_delivery,
    publish_focus,
)
from focus_platform.reconciliation.currency import (
    REPORTING_COLUMNS,
    with_reporting_currency,
)
from focus_platform.warehouse.delta import Warehouse

ECB_EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "reconciliation" / "eurofxref-hist-2024-01-excerpt.csv"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
SOURCE = "gen"
PERIODS = ["2024-01", "2024-02", "2024-03"]  # the generator leaves the last month open (no invoice)
HEADER = "invoice_id,issuer,billing_account_id,billing_period,currency,total,tax,credits,issued_date,adjusts_invoice_id\n"


@dataclass
class Env:
    landing: Path
    warehouse: Warehouse
    instance: dg.DagsterInstance
    resources: dict
    m5_rates: dict[str, float]

    def run(self, assets, period: str | None = None, run_config: dict | None = None):
        return dg.materialize(assets, partition_key=period, instance=self.instance, resources=self.resources,
                              raise_on_error=True, run_config={**QUIET, **(run_config or {})})

    def reconcile(self, period: str) -> tuple[dict[str, bool], pl.DataFrame]:
        result = self.run([invoice_reconciliation], period)
        table = self.warehouse.scan(RECONCILIATION_TABLE).filter(pl.col("x_BillingPeriod") == period).collect()
        return checks(result, RECONCILIATION_TABLE), table

    def invoice_totals(self) -> dict[tuple[str, str], dict]:
        invoices = self.warehouse.scan(INVOICES_TABLE).filter(pl.col("x_InvoiceSource") == "file").collect()
        return {(r["BillingAccountId"], r["BillingPeriod"]): r for r in invoices.iter_rows(named=True)}


def checks(result, asset: str) -> dict[str, bool]:
    evals = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    return {e.check_name: e.passed for e in evals if e.asset_key == dg.AssetKey(asset)}


def check_metadata(result, asset: str, name: str) -> dict:
    for e in result.all_events:
        d = e.event_specific_data
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and d.asset_key == dg.AssetKey(asset) and d.check_name == name:
            return {k: v.value for k, v in d.metadata.items()}
    raise AssertionError(f"check {name} of {asset} not evaluated")


def metadata(result, asset: str) -> dict:
    for m in result.get_asset_materialization_events():
        mat = m.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey(asset):
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{asset} not materialized")


@pytest.fixture
def env(tmp_path):
    """Generated deliveries (and their invoices under <landing>/invoices) published to focus_costs."""
    landing = tmp_path / "landing"
    generate_aws_cur(landing, rows=3000, months=3, seed=7, accounts=3, rows_per_file=5000)
    wh, store = Warehouse(str(tmp_path / "warehouse")), LocalStore(landing)
    source = ExportSource(SOURCE, "aws-cur", "focus-demo")
    m5 = {}
    for period, delivery in sorted(discover_deliveries(store, source).items()):
        ingest_delivery(wh, store, source, delivery)
        m5[period] = publish_focus(wh, source, period).checks.rates["M5_sku_mapping_failure_rate"]
    resources = {"landing_zone": LandingZoneResource(root=str(landing)), "warehouse": WarehouseResource(root=wh.root)}
    with dg.DagsterInstance.ephemeral() as instance:
        yield Env(landing, wh, instance, resources, m5)


def inject(env: Env, period: str, rows: list[dict]) -> list[str]:
    """Add FOCUS rows to a published partition (copies of one Usage row of the row's billing account
    with the given values): a defect or a restatement the reconciliation must explain."""
    part = PartitionKey.of(period, SOURCE).values()
    current = env.warehouse.scan(FOCUS_TABLE, part).collect()
    new = []
    for values in rows:
        template = current.filter((pl.col("BillingAccountId") == values["BillingAccountId"])
                                  & (pl.col("ChargeCategory") == "Usage")).head(1)
        new.append(template.with_columns(
            *[pl.lit(v, dtype=current.schema[k]).alias(k) for k, v in values.items()],
            pl.lit(["injected by test"], dtype=current.schema["x_SourceChanges"]).alias("x_SourceChanges")))
    env.warehouse.publish(FOCUS_TABLE, pl.concat([current, *new]).lazy(), PartitionKey.of(period, SOURCE))
    return [r["x_RowId"] for r in rows]


def test_definitions_load_with_the_reconciliation_assets(tmp_path):
    resources = {"landing_zone": LandingZoneResource(root=str(tmp_path)),
                 "warehouse": WarehouseResource(root=str(tmp_path / "warehouse"))}
    defs = dg.Definitions(assets=[*INGEST_ASSETS, *RECONCILE_ASSETS],
                          resources=resources)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(RECONCILIATION_TABLE)).parent_keys} == {
        INVOICES_TABLE, FOCUS_TABLE}
    assert dg.AssetKey(FOCUS_TABLE) in graph.get(dg.AssetKey(SKU_CATALOG_TABLE)).parent_keys
    for child in (RECONCILIATION_TABLE, SKU_CATALOG_TABLE):  # one billing period ← its partitions of every source
        mapping = graph.get_partition_mapping(dg.AssetKey(child), dg.AssetKey(FOCUS_TABLE))
        assert isinstance(mapping, dg.MultiToSingleDimensionPartitionMapping)
    check_names = {k.name for k in graph.asset_check_keys}
    assert {"reconciliation_drift", "reconciliation_difference", "invoices_matched", "closed_periods_invoiced",
            "sku_price_changes", "unmapped_skus", "credit_memos_resolved"} <= check_names


def test_generated_invoices_tie_to_focus_with_zero_drift_every_period(env):
    result = env.run([invoices_asset, exchange_rates_asset])
    assert checks(result, INVOICES_TABLE) == {"credit_memos_resolved": True, "contract": True}
    assert metadata(result, INVOICES_TABLE)["affected_periods"] == ["2024-01", "2024-02"]
    invoices = env.invoice_totals()
    assert len(invoices) == 6 and {r["BillingCurrency"] for r in invoices.values()} == {"USD", "EUR"}
    derived = env.warehouse.scan(INVOICES_TABLE).filter(pl.col("x_InvoiceSource") != "file").collect()
    assert set(derived["x_InvoiceSource"]) == {"focus:InvoiceId", "focus:derived"}  # the open month has no id
    for period in PERIODS:
        result = env.run([invoice_reconciliation, sku_catalog], period)
        table = env.warehouse.scan(RECONCILIATION_TABLE).filter(pl.col("x_BillingPeriod") == period).collect()
        assert checks(result, RECONCILIATION_TABLE) == {
            "reconciliation_drift": True, "reconciliation_difference": True, "invoices_matched": True,
            "closed_periods_invoiced": True, "contract": True}, period
        if period == "2024-03":
            assert set(table["Status"]) == {"open"} and table["InvoiceId"].null_count() == table.height
            continue
        assert table.height == 3 and set(table["Status"]) == {"match"}
        for r in table.iter_rows(named=True):
            assert r["Difference"] == 0 and r["DriftPercent"] == 0 and r["TaxDifference"] == 0
            assert r["CreditsDifference"] == 0 and r["ExplainingRows"] == [] and r["FocusNoInvoiceId"] == 0
            assert r["InvoiceTotalNet"] == invoices[(r["BillingAccountId"], period)]["InvoiceTotal"]
        catalog_checks = checks(result, SKU_CATALOG_TABLE)
        assert catalog_checks["sku_price_changes"] is True  # usage prices of the generator are stable
        rate = check_metadata(result, SKU_CATALOG_TABLE, "unmapped_skus")
        assert rate["rate"] == pytest.approx(env.m5_rates[period])  # same M5 as focus_costs' check (one source)
        assert catalog_checks["unmapped_skus"] is (env.m5_rates[period] < 0.001)
    catalog = env.warehouse.scan(SKU_CATALOG_TABLE).collect()
    assert sorted(catalog["x_BillingPeriod"].unique()) == PERIODS and catalog["SkuId"].null_count() == 0


def test_injected_2_percent_discrepancy_fails_the_error_check_for_that_period_only(env):
    env.run([invoices_asset])
    account, period = next((a, p) for (a, p), r in sorted(env.invoice_totals().items())
                           if p == "2024-02" and r["BillingCurrency"] == "EUR")
    total = env.invoice_totals()[(account, period)]["InvoiceTotal"]
    extra = total * Decimal("0.02")
    part = (extra / 3).quantize(Decimal("1E-10"))
    amounts = [part, part, extra - 2 * part]
    injected = inject(env, period, [
        {"BillingAccountId": account, "x_RowId": f"injected-{i}", "InvoiceId": None, "BilledCost": amount,
         "EffectiveCost": amount} for i, amount in enumerate(amounts)])
    for p in PERIODS:
        got, table = env.reconcile(p)
        if p != period:
            assert got["reconciliation_drift"] and got["reconciliation_difference"], p
            continue
        assert got == {"reconciliation_drift": False, "reconciliation_difference": False, "invoices_matched": True,
                       "closed_periods_invoiced": True, "contract": True}
        bad = table.filter(pl.col("Status") == "drift")
        assert bad["BillingAccountId"].to_list() == [account] and bad["BillingCurrency"].item() == "EUR"
        row = bad.row(0, named=True)
        assert (row["Difference"], row["DriftPercent"]) == (extra, Decimal(2))
        assert row["FocusNoInvoiceId"] == extra
        named = [e["x_RowId"] for e in row["ExplainingRows"] if e["Category"] == "no_invoice_id"]
        assert sorted(named) == injected
        assert set(table.filter(pl.col("BillingAccountId") != account)["Status"]) == {"match"}


def test_late_credit_memo_for_m_minus_2_re_runs_m_minus_2_and_turns_green(env):
    m2 = "2024-01"  # M−2 of the open month 2024-03
    env.run([invoices_asset])
    account = min(a for (a, p) in env.invoice_totals() if p == m2)
    invoice = env.invoice_totals()[(account, m2)]
    refund = -(invoice["InvoiceTotal"] * Decimal("0.025")).quantize(Decimal("0.01"))
    # the provider restates M−2 with a refund on the invoice (FOCUS now differs from the invoice) ...
    inject(env, m2, [{"BillingAccountId": account, "x_RowId": "refund-1", "InvoiceId": invoice["InvoiceId"],
                      "ChargeCategory": "Credit", "ChargeClass": None, "BilledCost": refund, "EffectiveCost": refund}])
    got, table = env.reconcile(m2)
    assert got["reconciliation_drift"] is False
    row = table.filter(pl.col("InvoiceId") == invoice["InvoiceId"]).row(0, named=True)
    assert row["Difference"] == refund and "refund-1" in [e["x_RowId"] for e in row["ExplainingRows"]
                                                          if e["Category"] == "credit"]
    # ... and in month M the credit memo for it lands in the landing zone as a new file
    memo = (f'CM-{invoice["InvoiceId"]},"{invoice["InvoiceIssuerName"]}",{account},2024-03,{invoice["BillingCurrency"]},'
            f'{refund},,{refund},2024-03-20,{invoice["InvoiceId"]}\n')
    (env.landing / "invoices" / account / "2024-03-credit-memo.csv").write_text(HEADER + memo)
    result = env.run([invoices_asset])
    assert metadata(result, INVOICES_TABLE)["affected_periods"] == [m2]  # what the sensor re-runs
    got, table = env.reconcile(m2)
    assert got == {"reconciliation_drift": True, "reconciliation_difference": True, "invoices_matched": True,
                   "closed_periods_invoiced": True, "contract": True}
    row = table.filter(pl.col("InvoiceId") == invoice["InvoiceId"]).row(0, named=True)
    assert (row["Status"], row["CreditMemoIds"], row["CreditMemoTotal"], row["Difference"]) == (
        "match", [f"CM-{invoice['InvoiceId']}"], refund, 0)
    assert row["InvoiceTotalNet"] == invoice["InvoiceTotal"] + refund and row["CreditsDifference"] == 0
    history = env.warehouse.history(RECONCILIATION_TABLE)
    assert [json.loads(h["period"]) for h in history if "period" in h].count(m2) == 2  # the restatement log


def test_exchange_rates_asset_and_reporting_columns_on_generated_data(env):
    (env.landing / "exchange_rates").mkdir()
    (env.landing / "exchange_rates" / "eurofxref-hist.csv").write_bytes(ECB_EXCERPT.read_bytes())
    env.run([exchange_rates_asset])
    rates = env.warehouse.scan(EXCHANGE_RATES_TABLE).collect()
    sources = set(rates["Source"])
    assert "file:exchange_rates/eurofxref-hist.csv" in sources and any(s.startswith("ECB ") for s in sources)
    jan5 = rates.filter((pl.col("Currency") == "USD") & (pl.col("Date") == pl.date(2024, 1, 5)))
    assert jan5["Source"].item() == "file:exchange_rates/eurofxref-hist.csv"
    focus = env.warehouse.scan(FOCUS_TABLE, PartitionKey.of("2024-02", SOURCE).values())
    out = with_reporting_currency(focus, rates, "USD").collect()
    assert out.height == focus.collect().height  # no row lost
    eur = out.filter(pl.col("BillingCurrency") == "EUR")
    assert eur.height and eur["x_ExchangeRate"].null_count() == 0
    assert (eur["x_BilledCostInReportingCurrency"] == (eur["BilledCost"] * eur["x_ExchangeRate"])).all()
    assert set(out.filter(pl.col("BillingCurrency") == "USD")["x_ExchangeRate"]) == {1}
    sums = out.group_by("BillingCurrency").agg(pl.col("BilledCost").sum())  # billing currency untouched
    assert set(sums["BillingCurrency"]) == {"USD", "EUR"} and set(REPORTING_COLUMNS) <= set(out.columns)


def test_late_credit_memo_re_runs_m_minus_2_through_the_sensors(env):
    """The whole chain without a person: memo file lands → invoice_sensor rebuilds `invoices` →
    invoices_changed_sensor requests the reconciliation of M−2 only → its check turns green."""
    from focus_platform.defs.assets.ingest import INGEST_ASSETS as FOCUS_ASSETS
    from focus_platform.defs.assets.reconcile import reconciliation_job
    from focus_platform.defs.partitions import EXPORT_SOURCE
    from focus_platform.defs.sensors.reconcile import (
        invoice_sensor,
        invoices_changed_sensor,
    )

    defs = dg.Definitions(assets=[*FOCUS_ASSETS, *RECONCILE_ASSETS], jobs=[reconciliation_job],
                          sensors=[invoice_sensor, invoices_changed_sensor], resources=env.resources)

    def tick(sensor, cursor=None):
        context = dg.build_sensor_context(instance=env.instance, cursor=cursor, definitions=defs,
                                          resources=env.resources)
        with dg.partition_loading_context(dynamic_partitions_store=env.instance):
            data = sensor.evaluate_tick(context)
        return data.run_requests or [], data.cursor

    env.instance.add_dynamic_partitions(EXPORT_SOURCE, [SOURCE])
    m2 = "2024-01"
    _, invoice_cursor = tick(invoice_sensor)  # the invoices already there
    env.run([invoices_asset])
    _, event_cursor = tick(invoices_changed_sensor)
    account = min(a for (a, p) in env.invoice_totals() if p == m2)
    invoice = env.invoice_totals()[(account, m2)]
    refund = -(invoice["InvoiceTotal"] * Decimal("0.01")).quantize(Decimal("0.01"))
    inject(env, m2, [{"BillingAccountId": account, "x_RowId": "refund-2", "InvoiceId": invoice["InvoiceId"],
                      "ChargeCategory": "Credit", "ChargeClass": None, "BilledCost": refund, "EffectiveCost": refund}])
    assert env.reconcile(m2)[0]["reconciliation_drift"] is False

    memo = (f'CM-{invoice["InvoiceId"]},"{invoice["InvoiceIssuerName"]}",{account},2024-03,{invoice["BillingCurrency"]},'
            f'{refund},,{refund},2024-03-20,{invoice["InvoiceId"]}\n')
    (env.landing / "invoices" / account / "2024-03-credit-memo.csv").write_text(HEADER + memo)
    requests, invoice_cursor = tick(invoice_sensor, invoice_cursor)
    table_runs = [r for r in requests if r.partition_key is None]
    assert [r.asset_selection for r in table_runs] == [[dg.AssetKey(INVOICES_TABLE)]]
    env.run([invoices_asset])  # what the daemon launches for that request

    requests, event_cursor = tick(invoices_changed_sensor, event_cursor)
    assert [r.partition_key for r in requests] == [m2]  # M−2 only
    assert invoices_changed_sensor.job_name == "reconciliation"  # the job its requests launch
    got, table = env.reconcile(requests[0].partition_key)
    assert got["reconciliation_drift"] is True and got["reconciliation_difference"] is True
    row = table.filter(pl.col("InvoiceId") == invoice["InvoiceId"]).row(0, named=True)
    assert (row["Status"], row["Difference"]) == ("match", 0)
    assert tick(invoices_changed_sensor, event_cursor)[0] == []  # nothing new: no request


def test_a_backfill_batches_the_period_tables_and_writes_what_one_run_per_period_writes(env):
    """BackfillPolicy.multi_run(12): one run over a range of periods writes each period's reconciliation and
    SKU catalog exactly as separate runs do (each period compared with the periods before it)."""
    from focus_platform.defs.assets.reconcile import reconciliation_job

    env.run([invoices_asset])

    def tables() -> dict[str, pl.DataFrame]:
        drop = ["x_ReconciledAt", "ExplainingRows"]
        return {t: env.warehouse.scan(t).collect().drop(drop, strict=False).sort(pl.all())
                for t in (RECONCILIATION_TABLE, SKU_CATALOG_TABLE)}

    for period in PERIODS:
        env.run([invoice_reconciliation, sku_catalog], period)
    one_at_a_time = tables()
    versions = {t: env.warehouse.table(t).version() for t in one_at_a_time}
    job = dg.Definitions(assets=RECONCILE_ASSETS, jobs=[reconciliation_job],
                         resources=env.resources).resolve_job_def(reconciliation_job.name)
    result = job.execute_in_process(instance=env.instance, run_config=QUIET, tags={
        "dagster/asset_partition_range_start": PERIODS[0], "dagster/asset_partition_range_end": PERIODS[-1]})
    assert result.success
    materialized = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    assert sorted(materialized) == [RECONCILIATION_TABLE] * 3 + [SKU_CATALOG_TABLE] * 3  # one run, three periods
    assert {t: env.warehouse.table(t).version() - v for t, v in versions.items()} == {t: 3 for t in versions}
    batched = tables()
    for table, frame in one_at_a_time.items():
        assert batched[table].equals(frame), table
    assert sorted(batched[SKU_CATALOG_TABLE]["x_BillingPeriod"].unique()) == PERIODS
