"""Forecast domain: spend_forecasts (+ forecast_backtests), budget_status, cost_anomalies and policy_actions.

Thin: each asset reads the spend rows (``forecasting.spend``: a period's cost_allocations joined to its
focus_costs, the owner being the active rules' first dimension unless run config names another), the
landing zone's inputs, calls the core packages (``forecasting``, ``anomalies``, ``policies``, ``alerts``)
and publishes through the warehouse's one write path.

- ``spend_forecasts`` and ``forecast_backtests`` (one run, two unpartitioned tables, replaced): every
  allocated period's spend, ``exchange_rates``; the last ``forecast_backtests`` gives each series' model
  choice back to the forecaster, which backtests only the series whose fingerprint changed.
- ``budget_status`` (per billing period): budgets of ``<landing>/budgets/*.yaml|csv`` against the period's
  spend and the daily total forecasts; check ``budget_burn`` (M13).
- ``cost_anomalies`` (per billing period): ``anomalies.detect`` over the period's days, the two previous
  periods' spend giving the baseline its history (its weekday profile spans eight weeks);
  ``<landing>/anomalies/settings.yaml`` for the settings and suppressions; check ``new_anomalies`` names
  each incident not published before.
- ``policy_actions`` (unpartitioned, append-only): signals from the newest periods of budget_status and
  cost_anomalies and from the instance's latest failed asset checks and failed runs, evaluated by the policies of
  ``<landing>/policies/*.yaml``; actions go through the notifier; each evaluation is appended
  (``Warehouse.append``, as the restatement log is written).

``as_of`` (run config, ``YYYY-MM-DD``) defaults to the last day with spend in what the asset reads, not
the clock: data may be old. Triggers: each asset follows its upstream (budget_status follows
cost_allocations, not every forecast refresh: the ``forecasts`` job's daily schedule refreshes the open
month).
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from focus_platform import __version__
from focus_platform.alerts import INFO, PAGE, TICKET, asset_link
from focus_platform.allocation import inputs, rules
from focus_platform.allocation.model import DEFAULT_OWNER
from focus_platform.anomalies import (
    SETTINGS_FILE,
    AnomalyError,
    AnomalySettings,
    detect,
    read_anomaly_settings,
)
from focus_platform.anomalies.detect import RAISED, SUPPRESSED
from focus_platform.defs.assets.allocate import read_partition
from focus_platform.defs.assets.reconcile import (
    BATCHED_BACKFILL,
    focus_of_period,
    read_table,
)
from focus_platform.defs.automation import follows_upstream
from focus_platform.defs.checks import (
    ERROR,
    WARN,
    Check,
    Outcome,
    contract_check,
    contract_result,
    md_table,
    over_periods,
    specs,
    with_own_checks,
)
from focus_platform.defs.partitions import allocate_periods
from focus_platform.defs.publish import NotPublished, publish, refused
from focus_platform.defs.resources import (
    LandingZoneResource,
    NotifierResource,
    WarehouseResource,
)
from focus_platform.forecasting.budgets import (
    BudgetError,
    budget_files,
    budget_status,
    read_budgets,
)
from focus_platform.forecasting.forecast import ForecastSettings, forecast_spend
from focus_platform.forecasting.spend import SPEND_ROWS, spend_rows
from focus_platform.periods import PERIOD_COLUMN, BillingPeriod, PartitionKey
from focus_platform.policies import (
    POLICIES_FOLDER,
    SIGNALS,
    PolicyError,
    action_rates,
    alert_sender,
    evaluate,
    read_policies,
    shadow_lag,
)
from focus_platform.policies.model import ANOMALY, BUDGET, CHECK, RUN_FAILURE
from focus_platform.warehouse.catalog import (
    ALLOCATIONS_TABLE,
    BUDGET_STATUS_TABLE,
    COST_ANOMALIES_TABLE,
    EXCHANGE_RATES_TABLE,
    FORECAST_BACKTESTS_TABLE,
    POLICY_ACTIONS_TABLE,
    SPEND_FORECASTS_TABLE,
)
from focus_platform.warehouse.delta import GateFailed, Warehouse

CODE_VERSION = __version__
GROUP = "forecast"
SIGNAL_PERIODS = 2  # the newest periods of budget_status and cost_anomalies that give policies their signals
HISTORY_PERIODS = 2  # periods before the scored one read for the anomaly baseline (its weekday profile spans 8 weeks)

CONTRACTS = {table: contract_check(table) for table in (SPEND_FORECASTS_TABLE, FORECAST_BACKTESTS_TABLE,
                                                         BUDGET_STATUS_TABLE, COST_ANOMALIES_TABLE,
                                                         POLICY_ACTIONS_TABLE)}


class ForecastConfig(dg.Config):
    as_of: str = ""  # YYYY-MM-DD; empty: the last day with spend in what the asset reads
    owner_dimension: str = ""  # empty: the active rules' first dimension
    reporting_currency: str = ForecastSettings.reporting_currency  # spend_forecasts' *InReportingCurrency columns
    horizon_months: int = ForecastSettings.horizon_months  # 1-3: forecast through the month this far after as_of

    def forecast_settings(self) -> ForecastSettings:
        if not 1 <= self.horizon_months <= 3:
            raise dg.Failure(f"horizon_months={self.horizon_months}: forecasts reach 1 to 3 months ahead")
        currency = self.reporting_currency.strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise dg.Failure(f"reporting_currency={self.reporting_currency!r}: an ISO 4217 code (three letters)")
        return ForecastSettings(horizon_months=self.horizon_months, reporting_currency=currency)


# ---------------------------------------------------------------------------------------------
# Reading spend
# ---------------------------------------------------------------------------------------------
def owner_dimension(config: ForecastConfig, store) -> str:
    """The cost_allocations column read as Owner: run config, else the active rules' first dimension."""
    if config.owner_dimension:
        return config.owner_dimension
    try:
        return inputs.read_rules(store)[0].dimension_names[0]
    except rules.RulesError as exc:
        raise dg.Failure(str(exc)) from exc


def allocated_periods(wh: Warehouse) -> list[str]:
    dt = wh.table(ALLOCATIONS_TABLE)
    return sorted({p[PERIOD_COLUMN] for p in dt.partitions()}) if dt is not None else []


def spend_of_period(wh: Warehouse, period: str, owner: str) -> pl.LazyFrame | None:
    """A period's SPEND_ROWS (None when cost_allocations has no such partition)."""
    allocations = read_partition(wh, ALLOCATIONS_TABLE, period)
    if allocations is None:
        return None
    try:
        return spend_rows(allocations, focus_of_period(wh, period), owner)
    except ValueError as exc:
        raise dg.Failure(f"{ALLOCATIONS_TABLE} {period}: {exc} (run config owner_dimension names another)") from exc


def spend_of(wh: Warehouse, periods: list[str], owner: str) -> pl.LazyFrame:
    frames = [f for f in (spend_of_period(wh, p, owner) for p in periods) if f is not None]
    return pl.concat(frames) if frames else pl.LazyFrame(schema=SPEND_ROWS)


def required_spend(wh: Warehouse, period: str, owner: str, asset: str) -> pl.LazyFrame:
    rows = spend_of_period(wh, period, owner)
    if rows is None:
        raise dg.Failure(f"{ALLOCATIONS_TABLE} has no partition {period}: materialize it before {asset}")
    return rows


def as_of_date(config: ForecastConfig, rows: pl.LazyFrame, fallback: date) -> date:
    """Run config's as_of, else the last day with spend in ``rows``, else ``fallback``."""
    if config.as_of:
        try:
            return date.fromisoformat(config.as_of)
        except ValueError as exc:
            raise dg.Failure(f"run config as_of {config.as_of!r} is not a date (YYYY-MM-DD)") from exc
    return rows.select(pl.col("Date").max()).collect().item() or fallback


def last_day(period: str) -> date:
    return BillingPeriod.parse(period).end.date() - timedelta(days=1)


def landed_file(store, key: str) -> list[tuple[str, bytes]]:
    """One optional landing-zone file as ``(key, bytes)`` pairs (none when it is not there)."""
    return [(key, store.read_bytes(key))] if store.exists(key) else []


# ---------------------------------------------------------------------------------------------
# spend_forecasts + forecast_backtests
# ---------------------------------------------------------------------------------------------
FORECASTS_CONTRACT, BACKTESTS_CONTRACT = CONTRACTS[SPEND_FORECASTS_TABLE], CONTRACTS[FORECAST_BACKTESTS_TABLE]
FOLLOWS_ALLOCATIONS = follows_upstream()


def forecast_metadata(result, as_of: date, owner: str) -> dict:
    figures = {k: v for k, v in result.metadata.items() if isinstance(v, int | float | str | bool)}
    return {**figures, "as_of": str(as_of), "owner_dimension": owner, "fingerprint": result.fingerprint,
            "skipped_series": dg.MetadataValue.md(md_table(result.skipped, result.skipped.columns)),
            **{k: dg.MetadataValue.json(v) for k, v in result.metadata.items() if isinstance(v, dict | list)}}


@dg.multi_asset(
    name="spend_forecasts",
    specs=[
        dg.AssetSpec(SPEND_FORECASTS_TABLE, deps=[ALLOCATIONS_TABLE, EXCHANGE_RATES_TABLE], group_name=GROUP,
                     code_version=CODE_VERSION, kinds={"delta", "polars"}, automation_condition=FOLLOWS_ALLOCATIONS,
                     description="Daily and monthly spend forecasts per owner × service × provider × currency "
                                 "(usage and fees apart, and their total) through the month `horizon_months` after "
                                 "as_of, with the prediction interval, in the reporting currency too; the model "
                                 "where it beat seasonal-naive in the backtest, else seasonal-naive, and why."),
        dg.AssetSpec(FORECAST_BACKTESTS_TABLE, deps=[ALLOCATIONS_TABLE], group_name=GROUP, code_version=CODE_VERSION,
                     kinds={"delta", "polars"}, automation_condition=FOLLOWS_ALLOCATIONS,
                     description="The rolling-origin backtest of each series: model and seasonal-naive MAPE, "
                                 "interval coverage, folds, the choice and the fingerprint of its input (reused "
                                 "while the series and the model are unchanged)."),
    ],
    check_specs=specs([FORECASTS_CONTRACT, BACKTESTS_CONTRACT]),
)
def spend_forecasts(context: dg.AssetExecutionContext, config: ForecastConfig, landing_zone: LandingZoneResource,
                    warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    owner = owner_dimension(config, landing_zone.store())
    rows = spend_of(wh, allocated_periods(wh), owner)
    as_of = as_of_date(config, rows, datetime.now(UTC).date())
    result = forecast_spend(rows, as_of, config.forecast_settings(), rates=read_table(wh, EXCHANGE_RATES_TABLE),
                            choices=read_table(wh, FORECAST_BACKTESTS_TABLE))
    metadata = forecast_metadata(result, as_of, owner)
    for table, frame, contract in ((SPEND_FORECASTS_TABLE, result.forecasts, FORECASTS_CONTRACT),
                                   (FORECAST_BACKTESTS_TABLE, result.backtests, BACKTESTS_CONTRACT)):
        try:
            version, outcome, _ = publish(wh, table, frame.lazy(), PartitionKey(), context.run_id,
                                          {"as_of": str(as_of), "fingerprint": result.fingerprint})
        except NotPublished as exc:
            yield from refused(exc)
        yield dg.MaterializeResult(asset_key=table, metadata={
            "dagster/row_count": frame.height, **metadata, "delta_version": version,
            "table_uri": dg.MetadataValue.path(wh.uri(table))}, check_results=[over_periods(contract, {"": outcome})])


# ---------------------------------------------------------------------------------------------
# budget_status
# ---------------------------------------------------------------------------------------------
BUDGET_CONTRACT = CONTRACTS[BUDGET_STATUS_TABLE]
BUDGET_BURN = Check("budget_burn", BUDGET_STATUS_TABLE,
                    "M13: every budget's projected spend at period end within its error_at share (ERROR), and no "
                    "budget past warn_at of its amount with a projected overrun (WARN); budgets without an exchange "
                    "rate WARN", ERROR, service_level="M13")
BUDGET_CHECKS = [BUDGET_CONTRACT, BUDGET_BURN]
BUDGET_COLUMNS = ["Owner", "BudgetCurrency", "Budget", "ActualToDate", "ForecastAtPeriodEnd", "BurnRate",
                  "ProjectedShare", "ProjectedOverrunDate", "Status", "x_Reason"]


def page_now() -> pl.Expr:
    """Budgets whose projected overrun falls within a day of as_of: someone is paged."""
    return pl.col("ProjectedOverrunDate").is_not_null() & (
        pl.col("ProjectedOverrunDate") <= pl.col("x_AsOf") + pl.duration(days=1))


def burn_outcome(status: pl.DataFrame, note: str | None) -> tuple[Outcome, bool]:
    """The period's budget_burn outcome and whether it is an ERROR (else a WARN when it fails)."""
    counts = dict(status.group_by("Status").len().iter_rows())
    flagged = status.filter(pl.col("Status") != "OK")
    metadata = {"budgets": status.height, "by_status": dg.MetadataValue.json(counts),
                "page_within_24h": status.filter(page_now()).height,
                "budgets_over": dg.MetadataValue.md(md_table(flagged, BUDGET_COLUMNS)),
                **({"note": note} if note else {})}
    return Outcome(flagged.height == 0, metadata), counts.get("ERROR", 0) > 0


@dg.asset(
    name=BUDGET_STATUS_TABLE, partitions_def=allocate_periods, deps=[ALLOCATIONS_TABLE, SPEND_FORECASTS_TABLE],
    group_name=GROUP, code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=specs(BUDGET_CHECKS),
    automation_condition=follows_upstream(ignore=SPEND_FORECASTS_TABLE), backfill_policy=BATCHED_BACKFILL,
    description="Per budget of <landing>/budgets/ (owner × billing period): actual spend to as_of, the projection "
                "at period end (actual + the owner's daily total forecasts for the days left, or the run rate), "
                "burn rate (M13), projected share and overrun date, status OK / WARN / ERROR / NO_RATE and why.",
)
def budget_status_asset(context: dg.AssetExecutionContext, config: ForecastConfig, landing_zone: LandingZoneResource,
                        warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    store = landing_zone.store()
    files = budget_files(store)
    try:
        budgets = read_budgets(files)
    except BudgetError as exc:
        raise dg.Failure(str(exc)) from exc
    note = None if files else "no budget files under budgets/: no budget rows"
    owner = owner_dimension(config, store)
    forecasts = read_table(wh, SPEND_FORECASTS_TABLE)
    if forecasts is not None:
        forecasts = forecasts.filter((pl.col("Grain") == "day") & (pl.col("SpendKind") == "total"))
    rates = read_table(wh, EXCHANGE_RATES_TABLE)
    outcomes = {check: {} for check in BUDGET_CHECKS}
    errors, versions, rows_total = False, {}, 0
    for period in sorted(context.partition_keys):
        rows = required_spend(wh, period, owner, BUDGET_STATUS_TABLE)
        as_of = min(as_of_date(config, rows, BillingPeriod.parse(period).start.date()), last_day(period))
        status = budget_status([b for b in budgets if str(b.period) == period], rows, as_of, forecasts=forecasts,
                               rates=rates)
        try:
            versions[period], outcomes[BUDGET_CONTRACT][period], _ = publish(
                wh, BUDGET_STATUS_TABLE, status.lazy(), PartitionKey.of(period), context.run_id,
                {"period": period, "as_of": str(as_of)})
        except NotPublished as exc:
            yield from refused(exc)
        outcomes[BUDGET_BURN][period], error = burn_outcome(status, note)
        errors |= error
        rows_total += status.height
    burn = over_periods(BUDGET_BURN, outcomes[BUDGET_BURN])
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": rows_total, "budget_files": [path for path, _ in files],
                  "owner_dimension": owner, "delta_version": max(versions.values()),
                  "table_uri": dg.MetadataValue.path(wh.uri(BUDGET_STATUS_TABLE))},
        check_results=[over_periods(BUDGET_CONTRACT, outcomes[BUDGET_CONTRACT]),
                       BUDGET_BURN.result(burn.passed, dict(burn.metadata), severity=ERROR if errors else WARN)])


# ---------------------------------------------------------------------------------------------
# cost_anomalies
# ---------------------------------------------------------------------------------------------
ANOMALY_CONTRACT = CONTRACTS[COST_ANOMALIES_TABLE]
NEW_ANOMALIES = Check("new_anomalies", COST_ANOMALIES_TABLE,
                      "no raised anomaly incident that was not in the period's published partition before this "
                      "run; each new one named with its owner, amount and link", WARN)
ANOMALY_CHECKS = [ANOMALY_CONTRACT, NEW_ANOMALIES]


def read_settings(store) -> tuple[AnomalySettings, list]:
    try:
        return read_anomaly_settings(landed_file(store, SETTINGS_FILE))
    except AnomalyError as exc:
        raise dg.Failure(str(exc)) from exc


def incidents(anomalies: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """One row per raised incident: its series, first day, days and summed Delta."""
    raised = anomalies.filter(pl.col("Status") == RAISED)
    return (raised.group_by("IncidentId", *keys, maintain_order=True)
            .agg(pl.col("IncidentStart").min(), pl.col("Date").max().alias("LastDay"), pl.len().alias("Days"),
                 pl.col("Delta").sum()))


def new_incidents_outcome(anomalies: pl.DataFrame, before: pl.LazyFrame | None, keys: tuple[str, ...],
                          link: str) -> Outcome:
    known = set() if before is None else set(before.select("IncidentId").collect()["IncidentId"])
    found = incidents(anomalies, keys)
    new = found.filter(~pl.col("IncidentId").is_in(list(known))).with_columns(pl.lit(link).alias("Link"))
    columns = ["IncidentId", *keys, "IncidentStart", "LastDay", "Days", "Delta", "Link"]
    return Outcome(new.height == 0, {"incidents": found.height, "new_incidents": new.height,
                                     "suppressed": anomalies.filter(pl.col("Status") == SUPPRESSED).height,
                                     "new": dg.MetadataValue.md(md_table(new, columns))})


@dg.asset(
    name=COST_ANOMALIES_TABLE, partitions_def=allocate_periods, deps=[ALLOCATIONS_TABLE], group_name=GROUP,
    code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=specs(ANOMALY_CHECKS),
    automation_condition=follows_upstream(), backfill_policy=BATCHED_BACKFILL,
    description="Days of the billing period whose usage spend of a series (owner × service × billing account × "
                "currency) departs from its seasonal baseline (weekday effects; the two previous periods give the "
                "history; fees and known one-offs left out), grouped into incidents with their top contributing "
                "resources; raised, or suppressed by <landing>/anomalies/settings.yaml with the reason.",
)
def cost_anomalies(context: dg.AssetExecutionContext, config: ForecastConfig, landing_zone: LandingZoneResource,
                   notifier: NotifierResource, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    store = landing_zone.store()
    settings, suppressions = read_settings(store)
    owner = owner_dimension(config, store)
    ui_url = notifier.alert_config().ui_url
    outcomes = {check: {} for check in ANOMALY_CHECKS}
    versions, metadata, rows_total = {}, {}, 0
    for period in sorted(context.partition_keys):
        current = required_spend(wh, period, owner, COST_ANOMALIES_TABLE)
        history = [str(BillingPeriod.parse(period).shift(-n)) for n in range(HISTORY_PERIODS, 0, -1)]
        rows = pl.concat([spend_of(wh, history, owner), current])
        first = BillingPeriod.parse(period).start.date()
        as_of = min(as_of_date(config, current, first), last_day(period))
        result = detect(rows, settings, suppressions=suppressions, as_of=as_of, days=(first, as_of))
        anomalies = result.anomalies.filter(pl.col(PERIOD_COLUMN) == period)
        before = read_partition(wh, COST_ANOMALIES_TABLE, period)
        new = new_incidents_outcome(anomalies, before, settings.keys, asset_link(ui_url, COST_ANOMALIES_TABLE, period))
        try:
            versions[period], outcomes[ANOMALY_CONTRACT][period], _ = publish(
                wh, COST_ANOMALIES_TABLE, anomalies.lazy(), PartitionKey.of(period), context.run_id,
                {"period": period, "as_of": str(as_of)})
        except NotPublished as exc:
            yield from refused(exc)
        outcomes[NEW_ANOMALIES][period] = new
        metadata[period] = result.metadata
        rows_total += anomalies.height
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": rows_total, "owner_dimension": owner,
                  "detection": dg.MetadataValue.json(metadata), "delta_version": max(versions.values()),
                  "table_uri": dg.MetadataValue.path(wh.uri(COST_ANOMALIES_TABLE))},
        check_results=[over_periods(check, outcomes[check]) for check in ANOMALY_CHECKS])


# ---------------------------------------------------------------------------------------------
# policy_actions
# ---------------------------------------------------------------------------------------------
ACTIONS_CONTRACT = CONTRACTS[POLICY_ACTIONS_TABLE]
# a failed check is a ticket (mapping failures, drift under its ERROR threshold, coverage): a check that
# must stop data blocks its asset, and the failed run pages (run_failure)
CHECK_SEVERITY = {ERROR: TICKET, WARN: TICKET}
SIGNAL_DAYS, CHECK_EVENTS = 7, 10_000  # failed checks and runs are signals while this recent


def newest_periods(wh: Warehouse, table: str) -> pl.DataFrame | None:
    """The rows of a period table's newest SIGNAL_PERIODS partitions (None: no table)."""
    dt = wh.table(table)
    if dt is None:
        return None
    periods = sorted({p[PERIOD_COLUMN] for p in dt.partitions()})[-SIGNAL_PERIODS:]
    return pl.concat([read_partition(wh, table, p) for p in periods]).collect() if periods else None


def budget_signals(status: pl.DataFrame | None, ui_url: str) -> pl.DataFrame:
    """WARN, ERROR and NO_RATE budgets; page when the projected overrun is within a day of as_of."""
    if status is None:
        return pl.DataFrame(schema=SIGNALS)
    flagged = status.filter(pl.col("Status") != "OK")
    severity = (pl.when(page_now()).then(pl.lit(PAGE))
                .when(pl.col("Status") == "ERROR").then(pl.lit(TICKET)).otherwise(pl.lit(INFO)))
    return flagged.select(
        pl.concat_str([pl.lit(BUDGET), "Owner", PERIOD_COLUMN, "BudgetCurrency", "Status"], separator=":")
        .alias("SignalId"),
        pl.lit(BUDGET).alias("Kind"), severity.alias("Severity"), "Owner",
        pl.lit(BUDGET_STATUS_TABLE).alias("Asset"), pl.lit(BUDGET_BURN.name).alias("CheckName"),
        pl.col(PERIOD_COLUMN).alias("Partition"),
        (pl.col("ForecastAtPeriodEnd") - pl.col("Budget")).alias("Amount"), pl.col("BudgetCurrency").alias("Currency"),
        "Status", pl.col("x_Reason").alias("Summary"),
        pl.col(PERIOD_COLUMN).map_elements(lambda p: asset_link(ui_url, BUDGET_STATUS_TABLE, p), pl.String)
        .alias("Link"),
        pl.col("x_AsOf").cast(pl.Datetime("us", "UTC")).alias("At"),
    ).cast(SIGNALS)


def anomaly_signals(anomalies: pl.DataFrame | None, keys: tuple[str, ...], ui_url: str) -> pl.DataFrame:
    """One signal per raised incident, its amount the summed Delta."""
    if anomalies is None:
        return pl.DataFrame(schema=SIGNALS)
    found = incidents(anomalies, keys).join(
        anomalies.select("IncidentId", PERIOD_COLUMN).unique("IncidentId"), on="IncidentId")
    currency = pl.col("BillingCurrency") if "BillingCurrency" in keys else pl.lit(None, pl.String)
    owner = pl.col("Owner") if "Owner" in keys else pl.lit(None, pl.String)
    return found.select(
        pl.col("IncidentId").alias("SignalId"), pl.lit(ANOMALY).alias("Kind"),
        pl.when((owner == DEFAULT_OWNER) & (pl.col("Delta") > 0)).then(pl.lit(PAGE)).otherwise(pl.lit(TICKET))
        .alias("Severity"),  # a spike of spend nobody owns pages; other anomalies are tickets
        owner.alias("Owner"), pl.lit(COST_ANOMALIES_TABLE).alias("Asset"),
        pl.lit(NEW_ANOMALIES.name).alias("CheckName"),
        pl.col(PERIOD_COLUMN).alias("Partition"), pl.col("Delta").alias("Amount"), currency.alias("Currency"),
        pl.lit(RAISED).alias("Status"),
        pl.format("{} days from {}: {}", "Days", "IncidentStart",
                  pl.concat_str(list(keys), separator=" / ", ignore_nulls=True)).alias("Summary"),
        pl.col(PERIOD_COLUMN).map_elements(lambda p: asset_link(ui_url, COST_ANOMALIES_TABLE, p), pl.String)
        .alias("Link"),
        pl.col("IncidentStart").cast(pl.Datetime("us", "UTC")).alias("At"),
    ).cast(SIGNALS)


def recent_check_keys(instance: dg.DagsterInstance, since: datetime) -> set[dg.AssetCheckKey]:
    """The checks evaluated on the instance since ``since`` (any code location; the newest CHECK_EVENTS)."""
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_timestamp=since.timestamp()),
        limit=CHECK_EVENTS, ascending=False)
    evaluations = (r.event_log_entry.asset_check_evaluation for r in records)
    return {dg.AssetCheckKey(e.asset_key, e.check_name) for e in evaluations if e is not None}


def failed_checks(instance: dg.DagsterInstance, now: datetime, ui_url: str) -> pl.DataFrame:
    """The checks evaluated in the last SIGNAL_DAYS whose latest evaluation failed, one signal per failed
    evaluation (budget_burn and new_anomalies left out: their tables give those signals)."""
    keys = recent_check_keys(instance, now - timedelta(days=SIGNAL_DAYS)) - {BUDGET_BURN.key, NEW_ANOMALIES.key}
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(keys))
    rows = []
    for key, record in sorted(records.items(), key=lambda kv: (kv[0].asset_key.to_user_string(), kv[0].name)):
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is None or evaluation.passed:
            continue
        asset = key.asset_key.to_user_string()
        partition = record.partition
        rows.append({"SignalId": f"{CHECK}:{asset}:{key.name}:{record.id}", "Kind": CHECK,
                     "Severity": CHECK_SEVERITY[evaluation.severity], "Owner": None, "Asset": asset,
                     "CheckName": key.name, "Partition": partition, "Amount": None, "Currency": None,
                     "Status": evaluation.severity.value,
                     "Summary": f"{asset}: {key.name} failed ({evaluation.severity.value})"
                                + (f" in run {record.run_id}" if record.run_id else ""),
                     "Link": asset_link(ui_url, asset, partition),
                     "At": datetime.fromtimestamp(record.create_timestamp, UTC)})
    return pl.DataFrame(rows, schema=SIGNALS)


def failed_runs(instance: dg.DagsterInstance, now: datetime, ui_url: str) -> pl.DataFrame:
    """The runs that failed in the last SIGNAL_DAYS, one page signal each (run_failure_alert pages them directly
    too: a policy on run failures records what it would add)."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                     created_after=now - timedelta(days=SIGNAL_DAYS)))
    rows = [{"SignalId": f"{RUN_FAILURE}:{r.dagster_run.run_id}", "Kind": RUN_FAILURE, "Severity": PAGE,
             "Owner": None, "Asset": None, "CheckName": None, "Partition": r.dagster_run.tags.get("dagster/partition"),
             "Amount": None, "Currency": None, "Status": "failed",
             "Summary": f"run {r.dagster_run.run_id} of {r.dagster_run.job_name} failed",
             "Link": f"{ui_url}/runs/{r.dagster_run.run_id}",
             "At": datetime.fromtimestamp(r.end_time, UTC) if r.end_time else r.create_timestamp}
            for r in records]
    return pl.DataFrame(rows, schema=SIGNALS)


def known_owners(wh: Warehouse, owner: str) -> set[str] | None:
    if not wh.exists(ALLOCATIONS_TABLE):
        return None
    scan = wh.scan(ALLOCATIONS_TABLE)
    if owner not in scan.collect_schema().names():
        return None
    return set(scan.select(pl.col(owner).unique()).collect()[owner])


def appended(wh: Warehouse, actions: pl.DataFrame) -> Outcome:
    """The evaluation appended to policy_actions (its contract first; no rows: no new version); refused:
    ``NotPublished``."""
    if actions.is_empty():
        return Outcome(True, {"note": "no policy matched a signal: nothing appended"})
    try:
        wh.append(POLICY_ACTIONS_TABLE, actions)
    except GateFailed as exc:
        raise NotPublished(dg.Failure(f"{POLICY_ACTIONS_TABLE}: {exc}"),
                           contract_result(ACTIONS_CONTRACT, exc.details)) from exc
    return Outcome(True, {"note": f"{actions.height} row(s) appended, contract kept"})


@dg.asset(
    name=POLICY_ACTIONS_TABLE, deps=[BUDGET_STATUS_TABLE, COST_ANOMALIES_TABLE], group_name=GROUP,
    code_version=CODE_VERSION, kinds={"delta", "polars"}, check_specs=[ACTIONS_CONTRACT.spec()],
    automation_condition=follows_upstream(),
    description="Every evaluation of the policies of <landing>/policies/ on the signals of the newest periods of "
                "budget_status and cost_anomalies and on the latest failed asset checks and runs: one row per "
                "policy × signal with its mode, action, outcome (would-act in shadow, acted, delivery-failed, "
                "limited, killed, duplicate) and delivery; appended, never replaced.",
)
def policy_actions(context: dg.AssetExecutionContext, config: ForecastConfig, landing_zone: LandingZoneResource,
                   notifier: NotifierResource, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    store = landing_zone.store()
    owner = owner_dimension(config, store)
    alerts = notifier.alert_config()
    try:  # endpoint names checked against the alerts config when it names any
        policies = read_policies([(k, b) for k, b in inputs.landed_files(store, POLICIES_FOLDER)
                                  if k.endswith((".yaml", ".yml"))], known_owners(wh, owner),
                                 known_endpoints=set(alerts.endpoints) or None)
    except PolicyError as exc:
        raise dg.Failure(str(exc)) from exc
    ui_url = alerts.ui_url
    settings, _ = read_settings(store)
    now = datetime.now(UTC)
    signals = pl.concat([
        budget_signals(newest_periods(wh, BUDGET_STATUS_TABLE), ui_url),
        anomaly_signals(newest_periods(wh, COST_ANOMALIES_TABLE), settings.keys, ui_url),
        failed_checks(context.instance, now, ui_url),
        failed_runs(context.instance, now, ui_url),
    ])
    history = read_table(wh, POLICY_ACTIONS_TABLE)
    actions = evaluate(policies, signals, now=now, history=history, send=alert_sender(alerts))
    try:
        outcome = appended(wh, actions)
    except NotPublished as exc:
        yield from refused(exc)
    every = actions if history is None else pl.concat([history, actions])
    outcomes = dict(actions.group_by("Outcome").len().sort("Outcome").iter_rows())
    yield dg.MaterializeResult(
        metadata={"dagster/row_count": actions.height, "signals": signals.height,
                  "signals_by_kind": dg.MetadataValue.json(dict(signals.group_by("Kind").len().sort("Kind")
                                                                .iter_rows())),
                  "outcomes": dg.MetadataValue.json(outcomes), "policies": len(policies.policies),
                  "kill_switch": policies.kill_switch,
                  "M6_action_rates": dg.MetadataValue.json(action_rates(every)),
                  "M12_shadow_lag_days": dg.MetadataValue.json(shadow_lag(policies, now.date())),
                  "actions": dg.MetadataValue.md(md_table(actions, ["PolicyId", "Mode", "SignalId", "Owner", "Action",
                                                                    "Outcome", "Endpoint", "HttpStatus", "Error"])),
                  "table_uri": dg.MetadataValue.path(wh.uri(POLICY_ACTIONS_TABLE))},
        check_results=[ACTIONS_CONTRACT.result(outcome.passed, outcome.metadata)])


# ---------------------------------------------------------------------------------------------
# Job and schedule
# ---------------------------------------------------------------------------------------------
FORECAST_ASSETS = [spend_forecasts, budget_status_asset, cost_anomalies, policy_actions]
forecasts_job = dg.define_asset_job(
    "forecasts",
    selection=with_own_checks(FORECAST_ASSETS, [FORECASTS_CONTRACT, BACKTESTS_CONTRACT, *BUDGET_CHECKS,
                                                *ANOMALY_CHECKS, ACTIONS_CONTRACT]),
    partitions_def=allocate_periods,
    description="spend forecasts and backtests, then one billing period's budget status and cost anomalies, then "
                "the policies on their signals")


@dg.schedule(job=forecasts_job, cron_schedule="0 7 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_forecasts(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    """Every day after the ingest and the exchange rates: the open month's forecasts, budgets, anomalies and
    policies, when cost_allocations holds the open month."""
    period = str(BillingPeriod.current(context.scheduled_execution_time))
    if period not in allocated_periods(warehouse.warehouse()):
        return dg.SkipReason(f"{ALLOCATIONS_TABLE} has no partition {period} (the open month) yet")
    return dg.RunRequest(run_key=f"daily_forecasts|{context.scheduled_execution_time:%Y-%m-%d}",
                         partition_key=period, tags={"focus/trigger": "daily_forecasts"})
