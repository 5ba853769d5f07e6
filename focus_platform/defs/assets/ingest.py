"""Ingest domain: raw_exports → focus_costs (+ focus_quarantine), partitioned by billing period × source.

Thin: each asset resolves its partition, calls one pipeline stage, and reports what it published:
row counts, totals, the "what changed" table of the restatement log and the period status.
``raw_exports`` carries the blocking ``delivery_accepted`` check (the re-delivery guard); the run
tag ``focus/force=true`` accepts a refused delivery deliberately.

Triggers: the delivery sensor (``sensors/ingest.py``) requests raw_exports + focus_costs for exactly
the (period, source) partition of a new or changed delivery, one run per partition (each retried and
scaled on its own; a backfill too: no backfill policy, so that each run carries the partition's tags,
``dagster/partition/billing_period`` among them, which the deployments' per-period queue limit reads);
``daily_refresh`` re-reads the open and the
previous month of every source (an unchanged delivery is a no-op); focus_costs also follows any
raw_exports partition updated some other way (a manual run) through its automation condition.
The account catalog sensor (``account_catalog_sensor``) re-runs focus_costs for the partitions whose
accounts' catalog entries changed.

focus_costs reads the account catalog (``<landing root>/accounts/**``, ``allocation.accounts``) on every
run: names an export lacks are filled from it, and its metadata lists the catalog accounts the bill does
not name and the billed accounts the catalog lacks. A catalog file that cannot be read fails the run
with its one-line error (file, line or JSON path, column); the published partition stays.
"""


from datetime import UTC, datetime

import dagster as dg

from focus_platform import __version__
from focus_platform.allocation.accounts import (
    PROVIDER_OF_FORMAT,
    CatalogError,
    bill_accounts,
    catalog_files,
    coverage,
    names_filled,
    read_catalog,
)
from focus_platform.defs.automation import follows_upstream
from focus_platform.defs.checks import (
    WARN,
    Check,
    contract_check,
    contract_result,
    specs,
    with_own_checks,
)
from focus_platform.defs.partitions import (
    PARTITIONS,
    dagster_key,
    key_of,
    open_and_previous,
)
from focus_platform.defs.resources import LandingZoneResource, WarehouseResource
from focus_platform.landing.zone import DeliveryError
from focus_platform.periods import PartitionKey
from focus_platform.pipeline import (
    DeliveryRefused,
    FocusChecks,
    ingest_delivery,
    publish_focus,
)
from focus_platform.service_levels import meets, normalization_latency
from focus_platform.sources import FORMATS, RAW_TABLES, SourceFormatError
from focus_platform.warehouse.catalog import FOCUS_TABLE, QUARANTINE_TABLE
from focus_platform.warehouse.contracts import ContractReport
from focus_platform.warehouse.delta import ConcurrentPartitionWrite, GateFailed
from focus_platform.warehouse.restatements import (
    ACCEPT_UNKNOWN_MONEY_TAG,
    FORCE_TAG,
    GuardPolicy,
)

CODE_VERSION = __version__  # bump with any mapping change: the UI then marks partitions stale
GROUP = "focus"


RAW_ASSET = "raw_exports"
REFUSED = "refused"  # metadata of a failed delivery_accepted check: why the delivery was refused
DELIVERY_ACCEPTED = Check(
    "delivery_accepted", RAW_ASSET,
    "the delivery is whole (manifest files present, no zero-byte or vanished object, not empty) and does not drop "
    f"the published rows or billed total by more than the allowed share (run tag {FORCE_TAG}=true accepts it)",
    blocking=True)


def _tag_set(context: dg.AssetExecutionContext, tag: str) -> bool:
    return str(context.run.tags.get(tag, "")).strip().lower() in ("true", "1", "yes")


def forced(context: dg.AssetExecutionContext) -> bool:
    return _tag_set(context, FORCE_TAG)


RAW_CONTRACT = contract_check(RAW_ASSET)


def _refused(message: str, metadata: dict | None = None) -> dg.AssetCheckResult:
    return DELIVERY_ACCEPTED.result(False, {REFUSED: dg.MetadataValue.md(message), **(metadata or {})})


@dg.asset(
    partitions_def=PARTITIONS, code_version=CODE_VERSION, group_name=GROUP,
    kinds={"delta", "polars"},
    check_specs=specs([DELIVERY_ACCEPTED, RAW_CONTRACT]),
    description="Provider deliveries as delivered: every column, typed, plus lineage, in the Delta table of "
                f"the export source's format ({', '.join(RAW_TABLES)}), one partition per "
                "(billing period, export source).",
)
def raw_exports(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                warehouse: WarehouseResource):
    key = key_of(context)
    period, source_name = str(key.period), key.source
    source = landing_zone.source(source_name)
    try:
        delivery = landing_zone.discover(source).delivery(period)
    except DeliveryError as exc:
        yield _refused(str(exc))
        raise dg.Failure(str(exc)) from exc
    if delivery is None:
        raise dg.Failure(f"no delivery of export source {source_name} for billing period {period} "
                         f"under {landing_zone.resolved_root()}/{source.location}")
    policy = GuardPolicy(warehouse.max_drop_share, forced(context))
    wh = warehouse.warehouse()
    try:
        ingested = ingest_delivery(wh, landing_zone.store(), source, delivery, policy=policy, run_id=context.run_id)
    except DeliveryRefused as exc:
        if exc.contract is not None:
            yield contract_result(RAW_CONTRACT, exc.contract)
        yield _refused(str(exc), {"guard": dg.MetadataValue.json(exc.guard.metadata())} if exc.guard else None)
        raise dg.Failure(str(exc)) from exc
    except (SourceFormatError, DeliveryError, ConcurrentPartitionWrite) as exc:
        yield _refused(str(exc))
        raise dg.Failure(str(exc)) from exc
    entry, guard = ingested.restatement, ingested.guard
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": ingested.rows,
        "delivery_id": ingested.delivery_id,
        DELIVERED_AT: delivery.delivered_at.isoformat(),
        "files": dg.MetadataValue.json(ingested.files),
        "source_format_versions": ", ".join(ingested.format_versions),
        "delta_version": ingested.version,
        "what_changed": dg.MetadataValue.md(entry.markdown()),
        "change": dg.MetadataValue.json(entry.change()),
        "table_uri": dg.MetadataValue.path(wh.uri(FORMATS[source.format].raw_table)),
    }, check_results=[contract_result(RAW_CONTRACT, ingested.contract), DELIVERY_ACCEPTED.result(True, {
        "forced": guard.forced, "overridden_problems": dg.MetadataValue.json(guard.problems),
        "max_drop_share": guard.max_drop_share})])


CONFORMANCE = Check("conformance", FOCUS_TABLE, "FOCUS 1.2 rules: no converter defect (provider-data gaps reported)",
                    blocking=True, service_level="conformance")
BILLED_CONSERVED = Check(
    "billed_cost_conserved", FOCUS_TABLE,
    "sum(BilledCost) + quarantined = raw invoice basis, exact Decimal; fails on amounts that cannot be read unless "
    f"the run tag {ACCEPT_UNKNOWN_MONEY_TAG}=true accepts them (recorded)", blocking=True, service_level="conservation")
EFFECTIVE_CONSERVED = Check(
    "effective_cost_conserved", FOCUS_TABLE,
    "sum(EffectiveCost) + quarantined = provider amortized total, exact Decimal; WARN when EffectiveCost is unknown "
    "on rows (kept 0 as a provider-data gap)", blocking=True, service_level="conservation")
ROWS_CONSERVED = Check("rows_conserved", FOCUS_TABLE,
                       "raw rows = FOCUS rows - derived rows + dropped rows + quarantined", blocking=True)
ROW_ID_UNIQUE = Check("row_id_unique", FOCUS_TABLE, "x_RowId is unique", blocking=True)
SKU_MAPPING = Check("sku_mapping_failure_rate", FOCUS_TABLE,
                    "M5: Usage/Purchase rows without SKU or mapped service below target (a SKU the provider does not "
                    "deliver is a provider-data gap, R-SkuId-1, not a failure)", WARN, service_level="M5")
INGEST_ERRORS = Check("ingest_error_rate", FOCUS_TABLE, "M8: quarantined / raw rows below target", WARN,
                      service_level="M8")
NORMALIZATION_LATENCY = Check("normalization_latency", FOCUS_TABLE,
                              "M2: a delivery's FOCUS partition published within target of the delivery landing "
                              "(measured when a publication carries a new delivery)", WARN, service_level="M2")
FOCUS_CONTRACT, QUARANTINE_CONTRACT = contract_check(FOCUS_TABLE), contract_check(QUARANTINE_TABLE)
FOCUS_CHECKS = [FOCUS_CONTRACT, CONFORMANCE, BILLED_CONSERVED, EFFECTIVE_CONSERVED, ROWS_CONSERVED, ROW_ID_UNIQUE,
                SKU_MAPPING, INGEST_ERRORS, NORMALIZATION_LATENCY, QUARANTINE_CONTRACT]
CONTRACT_OF = {FOCUS_TABLE: FOCUS_CONTRACT, QUARANTINE_TABLE: QUARANTINE_CONTRACT}
DELIVERED_AT = "delivered_at"  # raw_exports metadata: when the delivery landed (its newest object / export run)


def delivered_at(context: dg.AssetExecutionContext, key: PartitionKey) -> datetime | None:
    """When the delivery in the partition's latest raw_exports materialization landed."""
    records = context.instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(RAW_ASSET), asset_partitions=[str(key)]), limit=1).records
    materialization = records[0].asset_materialization if records else None
    value = materialization.metadata.get(DELIVERED_AT) if materialization else None
    return datetime.fromisoformat(value.value) if value is not None else None


MEASURED_TRIGGERS = ("delivery", "daily_refresh")  # the automated path M2 promises; a manual backfill is not


def latency_result(restatement, landed: datetime | None, trigger: str | None) -> dg.AssetCheckResult:
    """M2 of a publication: from its delivery landing to now, when a sensor or the daily refresh publishes a
    delivery not published before (a backfill of an old delivery launched by hand measures nothing)."""
    before = restatement.before.deliveries if restatement.before else ()
    if trigger not in MEASURED_TRIGGERS:
        return NORMALIZATION_LATENCY.result(True, {"note": f"not measured: a run launched by {trigger or 'hand'}"})
    if landed is None or set(restatement.after.deliveries) <= set(before):
        return NORMALIZATION_LATENCY.result(True, {"note": "no new delivery in this publication"})
    measured = normalization_latency(landed, datetime.now(UTC))
    return NORMALIZATION_LATENCY.result(bool(measured.meets), {"seconds": round(measured.value, 1),
                                                              "delivered_at": landed.isoformat()})


def check_results(checks: FocusChecks) -> list[dg.AssetCheckResult]:
    conservation = checks.conservation
    rows = checks.rows
    effective_ok = all(c.amortized_ok for c in conservation)
    unknown_effective = checks.effective_unknown
    table = "| account | period | currency | raw billed | FOCUS billed | quarantined | raw amortized | FOCUS effective |\n" \
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(
                f"| {c.billing_account} | {c.billing_period} | {c.currency} | {c.raw_billed} | {c.focus_billed} | "
                f"{c.quarantined_billed} | {c.raw_amortized} | {c.focus_effective} |" for c in conservation)
    m5, m8 = checks.rates["M5_sku_mapping_failure_rate"], checks.rates["M8_ingest_error_rate"]
    return [
        CONFORMANCE.result(checks.conformance.ok, {
            "defects": dg.MetadataValue.json(checks.conformance.defects),
            "provider_data_gaps": dg.MetadataValue.json(checks.conformance.gaps)}),
        BILLED_CONSERVED.result(checks.billed_ok, {
            "totals": dg.MetadataValue.md(table), "unknown_amount_rows": checks.unknown_amount_rows,
            "unknown_amounts": dg.MetadataValue.json(checks.unknown_amounts),
            "accepted_unknown_money": checks.accept_unknown_money and checks.unknown_amount_rows > 0}),
        # conserved, but rows whose EffectiveCost is unknown: a WARN that does not block
        EFFECTIVE_CONSERVED.result(effective_ok and not unknown_effective["rows"], {
            "totals": dg.MetadataValue.md(table), "effective_cost_unknown_rows": unknown_effective["rows"],
            "effective_cost_unknown_usage": dg.MetadataValue.json(unknown_effective["usage"]),
            "effective_cost_unknown_why": dg.MetadataValue.json(unknown_effective["why"])},
            severity=WARN if effective_ok else None),
        ROWS_CONSERVED.result(rows.ok, {"raw": rows.raw, "focus": rows.focus, "quarantined": rows.quarantined,
                                        "derived": rows.derived, "dropped": rows.dropped}),
        ROW_ID_UNIQUE.result(checks.duplicate_row_ids == 0, {"duplicates": checks.duplicate_row_ids}),
        SKU_MAPPING.result(meets("M5", m5), {"rate": m5}),
        INGEST_ERRORS.result(meets("M8", m8), {"rate": m8}),
    ]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FOCUS_TABLE, deps=[raw_exports], group_name=GROUP, code_version=CODE_VERSION,
                     kinds={"delta", "polars"}, skippable=True, automation_condition=follows_upstream(),
                     description="Canonical FOCUS 1.2 cost and usage rows (all 57 columns + x_ lineage)."),
        dg.AssetSpec(QUARANTINE_TABLE, deps=[raw_exports], group_name=GROUP, code_version=CODE_VERSION,
                     kinds={"delta"}, skippable=True, automation_condition=follows_upstream(),
                     description="Raw rows that cannot be converted, with reason, file, row and billed amount."),
    ],
    check_specs=specs(FOCUS_CHECKS),
    partitions_def=PARTITIONS,
)
def focus_costs(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource, warehouse: WarehouseResource):
    key = key_of(context)
    period, source_name = str(key.period), key.source
    source = landing_zone.source(source_name)
    wh = warehouse.warehouse()
    try:
        catalog = read_catalog(catalog_files(landing_zone.store()))
    except (CatalogError, DeliveryError) as exc:
        raise dg.Failure(f"account catalog: {exc}: focus_costs {key} not published, the published version "
                         "stays") from exc
    try:
        published = publish_focus(wh, source, period, has_invoice=landing_zone.invoice_lookup(),
                                  run_id=context.run_id,
                                  accept_unknown_money=_tag_set(context, ACCEPT_UNKNOWN_MONEY_TAG), accounts=catalog)
    except GateFailed as exc:
        if isinstance(exc.details, FocusChecks):
            yield from check_results(exc.details)
        if isinstance(exc.details, ContractReport):
            yield contract_result(CONTRACT_OF[exc.details.table], exc.details)
        raise dg.Failure(str(exc), metadata={"problems": dg.MetadataValue.json(
            exc.details.problems if isinstance(exc.details, FocusChecks) else [str(exc)])}) from exc
    except (SourceFormatError, ConcurrentPartitionWrite) as exc:
        raise dg.Failure(str(exc)) from exc
    checks = published.checks
    rows = wh.scan(FOCUS_TABLE, key.values(), version=published.version)
    covered = coverage(catalog, bill_accounts(rows), provider=PROVIDER_OF_FORMAT.get(source.format))
    yield dg.MaterializeResult(asset_key=FOCUS_TABLE, metadata={
        "dagster/row_count": checks.rows.focus,
        "totals_by_currency": dg.MetadataValue.json(checks.totals),
        "provider_data_gaps": dg.MetadataValue.json(checks.conformance.gaps),
        "delta_version": published.version,
        "period_status": published.status,
        "period_status_reason": published.status_reason,
        "what_changed": dg.MetadataValue.md(published.restatement.markdown()),
        "change": dg.MetadataValue.json(published.restatement.change()),
        "warnings": dg.MetadataValue.json(checks.warnings),
        "table_uri": dg.MetadataValue.path(wh.uri(FOCUS_TABLE)),
        "account_catalog_accounts": catalog.height,
        "account_names_filled_rows": names_filled(rows) if catalog.height else 0,
        **{k: dg.MetadataValue.json(v) if isinstance(v, list) else v for k, v in covered.metadata().items()},
    }, check_results=[*check_results(checks), contract_result(FOCUS_CONTRACT, published.contracts.get(FOCUS_TABLE)),
                      latency_result(published.restatement, delivered_at(context, key),
                                     context.run.tags.get("focus/trigger"))])
    yield dg.MaterializeResult(asset_key=QUARANTINE_TABLE, metadata={
        "dagster/row_count": published.quarantine_rows,
        "table_uri": dg.MetadataValue.path(wh.uri(QUARANTINE_TABLE)),
    }, check_results=[contract_result(QUARANTINE_CONTRACT, published.contracts.get(QUARANTINE_TABLE))])


INGEST_ASSETS = [raw_exports, focus_costs]
focus_pipeline_job = dg.define_asset_job(
    "focus_pipeline", selection=with_own_checks(INGEST_ASSETS, [DELIVERY_ACCEPTED, RAW_CONTRACT, *FOCUS_CHECKS]),
    partitions_def=PARTITIONS,
    description="raw export → FOCUS 1.2 for one billing period × source")


@dg.schedule(job=focus_pipeline_job, cron_schedule="0 5 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_refresh(context: dg.ScheduleEvaluationContext, landing_zone: LandingZoneResource):
    """The open month and the previous one, every configured source that has a delivery for them, once a day
    (providers re-deliver the open month several times a day and restate the previous one until it is final;
    an unchanged delivery is a no-op)."""
    periods = {str(p) for p in open_and_previous(context.scheduled_execution_time)}
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    requests = []
    for found in landing_zone.discover_all():
        for period in sorted(periods & set(found.deliveries)):
            key = PartitionKey.of(period, found.source.name)
            requests.append(dg.RunRequest(run_key=f"daily|{day}|{key}", partition_key=dagster_key(key),
                                          tags={"focus/trigger": "daily_refresh"}))
    return requests or dg.SkipReason(f"no delivery for {', '.join(sorted(periods))} in any configured source")
