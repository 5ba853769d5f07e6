"""Assets: raw_exports → focus_costs (+ focus_quarantine), partitioned by billing period × source.

Thin: each asset resolves its partition, calls one pipeline stage, and reports what it published:
row counts, totals, the "what changed" table of the restatement log and the period status.
``raw_exports`` carries the blocking ``delivery_accepted`` check (the re-delivery guard); the run
tag ``focus/force=true`` accepts a refused delivery deliberately.
"""


import dagster as dg

from focus_platform import __version__
from focus_platform.assets.partitions import PARTITIONS, partition_keys
from focus_platform.landing.zone import DeliveryError
from focus_platform.pipeline import (
    FOCUS_TABLE,
    QUARANTINE_TABLE,
    DeliveryRefused,
    FocusChecks,
    ingest_delivery,
    publish_focus,
)
from focus_platform.resources import LandingZoneResource, WarehouseResource
from focus_platform.sources import FORMATS, RAW_TABLES, SourceFormatError
from focus_platform.warehouse.delta import ConcurrentPartitionWrite, GateFailed
from focus_platform.warehouse.restatements import (
    ACCEPT_UNKNOWN_MONEY_TAG,
    FORCE_TAG,
    GuardPolicy,
)

CODE_VERSION = __version__  # bump with any mapping change: the UI then marks partitions stale
GROUP = "focus"


RAW_ASSET = "raw_exports"
DELIVERY_CHECK = "delivery_accepted"
REFUSED = "refused"  # metadata of a failed delivery_accepted check: why the delivery was refused


def _tag_set(context: dg.AssetExecutionContext, tag: str) -> bool:
    return str(context.run.tags.get(tag, "")).strip().lower() in ("true", "1", "yes")


def forced(context: dg.AssetExecutionContext) -> bool:
    return _tag_set(context, FORCE_TAG)


def _refused(message: str, metadata: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=RAW_ASSET, check_name=DELIVERY_CHECK, passed=False,
                               severity=dg.AssetCheckSeverity.ERROR,
                               metadata={REFUSED: dg.MetadataValue.md(message), **(metadata or {})})


@dg.asset(
    partitions_def=PARTITIONS, code_version=CODE_VERSION, group_name=GROUP,
    kinds={"delta", "polars"},
    check_specs=[dg.AssetCheckSpec(
        DELIVERY_CHECK, asset=RAW_ASSET, blocking=True,
        description="the delivery is whole (manifest files present, no zero-byte or vanished object, not empty) and "
                    "does not drop the published rows or billed total by more than the allowed share "
                    f"(run tag {FORCE_TAG}=true accepts it)")],
    description="Provider deliveries as delivered: every column, typed, plus lineage, in the Delta table of "
                f"the export source's format ({', '.join(RAW_TABLES)}), one partition per "
                "(billing period, export source).",
)
def raw_exports(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource,
                warehouse: WarehouseResource):
    period, source_name = partition_keys(context)
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
        yield _refused(str(exc), {"guard": dg.MetadataValue.json(exc.guard.metadata())} if exc.guard else None)
        raise dg.Failure(str(exc)) from exc
    except (SourceFormatError, DeliveryError, ConcurrentPartitionWrite) as exc:
        yield _refused(str(exc))
        raise dg.Failure(str(exc)) from exc
    entry, guard = ingested.restatement, ingested.guard
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": ingested.rows,
        "delivery_id": ingested.delivery_id,
        "files": dg.MetadataValue.json(ingested.files),
        "source_format_versions": ", ".join(ingested.format_versions),
        "delta_version": ingested.version,
        "what_changed": dg.MetadataValue.md(entry.markdown()),
        "change": dg.MetadataValue.json(entry.change()),
        "table_uri": dg.MetadataValue.path(wh.uri(FORMATS[source.format].raw_table)),
    }, check_results=[dg.AssetCheckResult(
        asset_key=RAW_ASSET, check_name=DELIVERY_CHECK, passed=True,
        metadata={"forced": guard.forced, "overridden_problems": dg.MetadataValue.json(guard.problems),
                  "max_drop_share": guard.max_drop_share})])


FOCUS_CHECKS = {
    "conformance": ("FOCUS 1.2 rules: no converter defect (provider-data gaps reported)", True),
    "billed_cost_conserved": ("sum(BilledCost) + quarantined = raw invoice basis, exact Decimal; fails on "
                              f"amounts that cannot be read unless the run tag {ACCEPT_UNKNOWN_MONEY_TAG}=true "
                              "accepts them (recorded)", True),
    "effective_cost_conserved": ("sum(EffectiveCost) + quarantined = provider amortized total, exact Decimal; WARN "
                                 "when EffectiveCost is unknown on rows (kept 0 as a provider-data gap)", True),
    "rows_conserved": ("raw rows = FOCUS rows - derived rows + dropped rows + quarantined", True),
    "row_id_unique": ("x_RowId is unique", True),
    "sku_mapping_failure_rate": ("M5: Usage/Purchase rows without SKU or mapped service < 0.1 % (a SKU the "
                                 "provider does not deliver is a provider-data gap, R-SkuId-1, not a failure)",
                                 False),
    "ingest_error_rate": ("M8: quarantined / raw rows < 0.5 %", False),
}
M5_TARGET, M8_TARGET = 0.001, 0.005


def check_results(checks: FocusChecks) -> list[dg.AssetCheckResult]:
    conservation = checks.conservation
    rows = checks.rows
    effective_ok = all(c.amortized_ok for c in conservation)
    unknown_effective = checks.effective_unknown
    table = "| account | period | currency | raw billed | FOCUS billed | quarantined | raw amortized | FOCUS effective |\n" \
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(
                f"| {c.billing_account} | {c.billing_period} | {c.currency} | {c.raw_billed} | {c.focus_billed} | "
                f"{c.quarantined_billed} | {c.raw_amortized} | {c.focus_effective} |" for c in conservation)
    results = {
        "conformance": (checks.conformance.ok, {
            "defects": dg.MetadataValue.json(checks.conformance.defects),
            "provider_data_gaps": dg.MetadataValue.json(checks.conformance.gaps)}),
        "billed_cost_conserved": (checks.billed_ok, {
            "totals": dg.MetadataValue.md(table), "unknown_amount_rows": checks.unknown_amount_rows,
            "unknown_amounts": dg.MetadataValue.json(checks.unknown_amounts),
            "accepted_unknown_money": checks.accept_unknown_money and checks.unknown_amount_rows > 0}),
        "effective_cost_conserved": (effective_ok and not unknown_effective["rows"], {
            "totals": dg.MetadataValue.md(table), "effective_cost_unknown_rows": unknown_effective["rows"],
            "effective_cost_unknown_usage": dg.MetadataValue.json(unknown_effective["usage"]),
            "effective_cost_unknown_why": dg.MetadataValue.json(unknown_effective["why"])}),
        "rows_conserved": (rows.ok, {"raw": rows.raw, "focus": rows.focus, "quarantined": rows.quarantined,
                                     "derived": rows.derived, "dropped": rows.dropped}),
        "row_id_unique": (checks.duplicate_row_ids == 0, {"duplicates": checks.duplicate_row_ids}),
        "sku_mapping_failure_rate": (checks.rates["M5_sku_mapping_failure_rate"] < M5_TARGET,
                                     {"rate": checks.rates["M5_sku_mapping_failure_rate"], "target": M5_TARGET}),
        "ingest_error_rate": (checks.rates["M8_ingest_error_rate"] < M8_TARGET,
                              {"rate": checks.rates["M8_ingest_error_rate"], "target": M8_TARGET}),
    }
    warn_only = {name for name, (_, blocking) in FOCUS_CHECKS.items() if not blocking}
    if effective_ok:  # conserved, but rows whose EffectiveCost is unknown: a WARN that does not block
        warn_only.add("effective_cost_conserved")
    return [
        dg.AssetCheckResult(
            asset_key=FOCUS_TABLE, check_name=name, passed=bool(passed), metadata=meta,
            severity=dg.AssetCheckSeverity.WARN if name in warn_only else dg.AssetCheckSeverity.ERROR)
        for name, (passed, meta) in results.items()
    ]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(FOCUS_TABLE, deps=[raw_exports], group_name=GROUP, code_version=CODE_VERSION,
                     kinds={"delta", "polars"}, skippable=True,
                     description="Canonical FOCUS 1.2 cost and usage rows (all 57 columns + x_ lineage)."),
        dg.AssetSpec(QUARANTINE_TABLE, deps=[raw_exports], group_name=GROUP, code_version=CODE_VERSION,
                     kinds={"delta"}, skippable=True,
                     description="Raw rows that cannot be converted, with reason, file, row and billed amount."),
    ],
    check_specs=[dg.AssetCheckSpec(name, asset=FOCUS_TABLE, description=desc, blocking=blocking)
                 for name, (desc, blocking) in FOCUS_CHECKS.items()],
    partitions_def=PARTITIONS,
)
def focus_costs(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource, warehouse: WarehouseResource):
    period, source_name = partition_keys(context)
    source = landing_zone.source(source_name)
    wh = warehouse.warehouse()
    try:
        published = publish_focus(wh, source, period, has_invoice=landing_zone.invoice_lookup(),
                                  run_id=context.run_id,
                                  accept_unknown_money=_tag_set(context, ACCEPT_UNKNOWN_MONEY_TAG))
    except GateFailed as exc:
        if isinstance(exc.details, FocusChecks):
            yield from check_results(exc.details)
        raise dg.Failure(str(exc), metadata={"problems": dg.MetadataValue.json(
            exc.details.problems if isinstance(exc.details, FocusChecks) else [str(exc)])}) from exc
    except (SourceFormatError, ConcurrentPartitionWrite) as exc:
        raise dg.Failure(str(exc)) from exc
    checks = published.checks
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
    }, check_results=check_results(checks))
    yield dg.MaterializeResult(asset_key=QUARANTINE_TABLE, metadata={
        "dagster/row_count": published.quarantine_rows,
        "table_uri": dg.MetadataValue.path(wh.uri(QUARANTINE_TABLE)),
    })


ASSETS = [raw_exports, focus_costs]
