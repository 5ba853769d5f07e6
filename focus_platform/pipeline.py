"""The pipeline stages without Dagster: ingest a delivery, publish FOCUS, convert files.

Each stage reads and writes through the warehouse and gates what it publishes:

- ``ingest_delivery``: the newest delivery of (source, billing period) → ``raw_<format>`` partition,
  read from the landing zone's store (local, S3, GCS) and gated on the re-delivery guard (not
  empty, no drop of rows or billed total beyond the allowed share unless forced, objects unchanged
  while read).
- ``publish_focus``: raw partition → ``focus_costs`` (gated on conformance, exact cost
  conservation, row conservation and x_RowId uniqueness) and ``focus_quarantine``; sets the
  period status (open / final / restated).
- ``rollback_partition``: a partition back to an earlier Delta version.
- ``convert_files``: export files → one typed FOCUS Parquet file, same rules and checks.

Every replaced partition of a raw table and of ``focus_costs`` is recorded in ``restatement_log``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl

from focus_platform.landing.zone import Delivery, ExportSource, LocalStore
from focus_platform.sources import FORMATS, Lineage, SourceFormatError, detect_format
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE, is_derived_row
from focus_platform.spec.metadata import METADATA_SUFFIX, focus_metadata, write_metadata
from focus_platform.spec.rules import ConformanceReport, check_conformance
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.delta import PARQUET_COMPRESSION, GateFailed, Warehouse

FOCUS_TABLE = "focus_costs"
QUARANTINE_TABLE = "focus_quarantine"


def partition_of(source: str, period: str) -> dict[str, str]:
    return {"x_BillingPeriod": period, "x_Source": source}


# ---------------------------------------------------------------------------------------------
# Conservation: defined once
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConservationRow:
    billing_account: str
    billing_period: str
    currency: str
    raw_billed: Decimal
    focus_billed: Decimal
    quarantined_billed: Decimal
    raw_amortized: Decimal
    focus_effective: Decimal
    quarantined_effective: Decimal

    @property
    def billed_ok(self) -> bool:
        return self.raw_billed == self.focus_billed + self.quarantined_billed

    @property
    def amortized_ok(self) -> bool:
        return self.raw_amortized == self.focus_effective + self.quarantined_effective


@dataclass
class RowCounts:
    raw: int
    focus: int
    quarantined: int
    derived: int  # rows the mapping adds (unused-commitment rows, credits split off usage rows)
    dropped: int  # raw rows deliberately left out (e.g. AWS SavingsPlanNegation, netted into usage)

    @property
    def ok(self) -> bool:
        return self.raw == self.focus - self.derived + self.dropped + self.quarantined


_KEYS = ["BillingAccountId", "x_BillingPeriod", "BillingCurrency"]


def _sums_query(lf: pl.LazyFrame, billed: str, effective: str) -> pl.LazyFrame:
    return lf.group_by(_KEYS).agg(pl.col(billed).sum(), pl.col(effective).sum(), pl.len().alias("n"))


def _sums(df: pl.DataFrame) -> dict[tuple, tuple[Decimal, Decimal, int]]:
    return {tuple(r[:3]): (r[3] or Decimal(0), r[4] or Decimal(0), r[5]) for r in df.iter_rows()}


def conservation(raw_totals: pl.DataFrame, focus_sums: pl.DataFrame, quarantine: pl.DataFrame) -> list[ConservationRow]:
    """Per (billing account, period, currency): raw invoice basis = FOCUS BilledCost + quarantined
    billed amounts, and raw amortized basis = FOCUS EffectiveCost + quarantined amortized amounts,
    compared exactly in Decimal."""
    f = _sums(focus_sums)
    q = _sums(_sums_query(quarantine.lazy(), "x_BilledCost", "x_EffectiveCost").collect())
    rows = []
    raw = {tuple(r[:3]): r[3:] for r in raw_totals.select(*_KEYS, "billed", "amortized").iter_rows()}
    zero = (Decimal(0), Decimal(0), 0)
    for key in sorted(set(raw) | set(f) | set(q), key=lambda k: tuple(str(x) for x in k)):
        rb, ra = raw.get(key, (Decimal(0), Decimal(0)))
        fb, fe, _ = f.get(key, zero)
        qb, qe, _ = q.get(key, zero)
        rows.append(ConservationRow(str(key[0]), str(key[1]), str(key[2]), rb or Decimal(0), fb, qb,
                                    ra or Decimal(0), fe, qe))
    return rows


def totals_by_currency(focus_sums: pl.DataFrame) -> dict[str, dict[str, str]]:
    df = (focus_sums.group_by("BillingCurrency").agg(pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum())
          .sort("BillingCurrency"))
    return {str(r[0]): {"BilledCost": f"{r[1]:f}", "EffectiveCost": f"{r[2]:f}"} for r in df.iter_rows()}


def _quality_query(focus: pl.LazyFrame) -> pl.LazyFrame:
    priced = pl.col("ChargeCategory").is_in(["Usage", "Purchase"])
    unmapped = pl.col("SkuId").is_null() | pl.col("x_SourceChanges").list.contains(UNMAPPED_SERVICE_NOTE).fill_null(False)
    return focus.select(
        # distinct 64-bit hashes (8 bytes a row, not the strings); a shortfall is confirmed exactly below
        pl.len().alias("rows"), pl.col("x_RowId").hash().n_unique().alias("unique"),
        is_derived_row(pl.col("x_RowId")).sum().alias("derived"),
        priced.sum().alias("priced"), (priced & unmapped).sum().alias("unmapped"),
    )


@dataclass
class FocusChecks:
    conformance: ConformanceReport
    conservation: list[ConservationRow]
    rows: RowCounts
    duplicate_row_ids: int
    totals: dict[str, dict[str, str]]
    rates: dict[str, float]

    @property
    def problems(self) -> list[str]:
        out = []
        if not self.conformance.ok:
            out.append("conformance: " + ", ".join(f"{k}={v}" for k, v in self.conformance.defects.items()))
        for c in self.conservation:
            if not c.billed_ok:
                out.append(f"billed cost not conserved for {c.billing_account} {c.billing_period} {c.currency}: "
                           f"raw {c.raw_billed} != FOCUS {c.focus_billed} + quarantine {c.quarantined_billed}")
            if not c.amortized_ok:
                out.append(f"amortized cost not conserved for {c.billing_account} {c.billing_period} {c.currency}: "
                           f"raw {c.raw_amortized} != FOCUS {c.focus_effective} + quarantine {c.quarantined_effective}")
        if not self.rows.ok:
            r = self.rows
            out.append(f"rows not conserved: raw {r.raw} != FOCUS {r.focus} - derived {r.derived} "
                       f"+ dropped {r.dropped} + quarantined {r.quarantined}")
        if self.duplicate_row_ids:
            out.append(f"x_RowId not unique: {self.duplicate_row_ids} duplicates")
        return out


def check_focus(focus: pl.LazyFrame, raw_totals: pl.DataFrame, quarantine: pl.DataFrame) -> FocusChecks:
    """Every gating check of a FOCUS partition (or converted file) against its raw rows: the
    conformance rules, with the sums, counts and rates riding along in the rules' collect_all."""
    conformance = check_conformance(focus, extra={
        "sums": _sums_query(focus, "BilledCost", "EffectiveCost"), "quality": _quality_query(focus)})
    sums, q = conformance.extra["sums"], conformance.extra["quality"].row(0, named=True)
    if q["unique"] < q["rows"]:  # a hash collision or a real duplicate: count exactly
        q["unique"] = focus.select(pl.col("x_RowId").n_unique()).collect(engine="streaming").item()
    rows = RowCounts(
        raw=int(raw_totals["rows"].sum() or 0), focus=q["rows"], quarantined=quarantine.height,
        derived=q["derived"], dropped=int(raw_totals["dropped_rows"].sum() or 0))
    return FocusChecks(
        conformance=conformance,
        conservation=conservation(raw_totals, sums, quarantine),
        rows=rows,
        duplicate_row_ids=q["rows"] - q["unique"],
        totals=totals_by_currency(sums),
        rates={
            "M5_sku_mapping_failure_rate": (q["unmapped"] / q["priced"]) if q["priced"] else 0.0,
            "M8_ingest_error_rate": (rows.quarantined / rows.raw) if rows.raw else 0.0,
        },
    )


def raw_side(fmt, raw: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The raw totals and the quarantined rows of a raw partition. The quarantine pass runs only
    when the totals count quarantined rows (most deliveries have none)."""
    raw_totals = fmt.raw_totals(raw).collect(engine="streaming")
    quarantine = fmt.quarantine(raw)
    expected = int(raw_totals["quarantined_rows"].sum() or 0)
    if not expected:
        return raw_totals, quarantine.clear().collect()
    quarantine = quarantine.collect(engine="streaming")
    if quarantine.height != expected:
        raise SourceFormatError(f"{fmt.name}: raw totals count {expected} quarantined rows, the quarantine "
                                f"{quarantine.height}")
    return raw_totals, quarantine


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------
@dataclass
class RawIngest:
    source: str
    billing_period: str
    delivery_id: str
    files: list[str]
    rows: int
    version: int
    format_versions: list[str] = field(default_factory=list)
    restatement: rs.Restatement | None = None
    guard: rs.GuardResult | None = None


class DeliveryRefused(SourceFormatError):
    """A delivery refused as a whole (empty, partial, changed while read, or failing the guard):
    nothing committed, the published version stays."""

    def __init__(self, message: str, guard: rs.GuardResult | None = None):
        super().__init__(message)
        self.guard = guard


def _check_objects(store, delivery: Delivery, label: str) -> None:
    """Every object of the delivery is still as listed (not gone, not rewritten while read)."""
    for key in delivery.files:
        listed = delivery.objects.get(key)
        if listed is None:
            continue
        now = store.stat(key)
        if now is None:
            raise DeliveryRefused(f"{label}: object {key} disappeared after it was listed (deleted or being "
                                  "replaced): refused, nothing committed; the next delivery or a rerun picks it up")
        if (now.size, now.etag) != (listed.size, listed.etag):
            raise DeliveryRefused(f"{label}: object {key} changed while it was read ({listed.size} → {now.size} bytes, "
                                  f"etag {listed.etag} → {now.etag}): refused, nothing committed; rerun to read "
                                  "the new version")


def ingest_delivery(warehouse: Warehouse, store: LocalStore, source: ExportSource, delivery: Delivery,
                    *, now: datetime | None = None, policy: rs.GuardPolicy | None = None,
                    run_id: str | None = None, log: bool = True) -> RawIngest:
    """Replace the raw partition (source, period) with the delivery's rows, every column kept.

    Refused (``DeliveryRefused``, nothing committed) when a file is a zero-byte object, the
    delivery has no rows, an object disappears or changes while it is read, or the guard finds
    that it would drop the published row count or billed total by more than
    ``policy.max_drop_share`` (unless ``policy.force``)."""
    fmt = FORMATS[source.format]
    policy = policy or rs.GuardPolicy()
    part = partition_of(source.name, delivery.billing_period)
    label = f"delivery {delivery.delivery_id} of {source.name} {delivery.billing_period}"
    for key in delivery.files:
        listed = delivery.objects.get(key)
        if listed is not None and listed.size == 0:
            raise DeliveryRefused(f"{label}: {key} is a zero-byte object (an empty or unfinished upload): "
                                  "refused, the published version stays")
    lineage = Lineage(source.name, source.format, delivery.delivery_id, delivery.billing_period,
                      now or datetime.now(timezone.utc))
    options = getattr(store, "storage_options", None)
    base = warehouse.snapshot(fmt.raw_table, part)
    before = None
    if base.files:
        published = warehouse.scan(fmt.raw_table, part, version=base.version)
        before = rs.raw_state(fmt.raw_totals(published).collect(engine="streaming"),
                              published.select(pl.col("x_SourceDelivery").unique()).collect()["x_SourceDelivery"]
                              .to_list(), base.version)

    def gate(staged: pl.LazyFrame):
        versions = staged.group_by("x_SourceFormatVersion").len().collect()
        after = rs.raw_state(fmt.raw_totals(staged).collect(engine="streaming"), [delivery.delivery_id])
        result = rs.guard(before, after, policy)
        if after.empty:
            raise GateFailed(f"{label} has no rows ({', '.join(delivery.files)}): refused, the published version "
                             "stays", result)
        if not result.passed:
            raise GateFailed(
                f"{label} refused: {'; '.join(result.problems)} — more than the allowed "
                f"{policy.max_drop_share:.0%} (a partial or broken re-delivery?). The published version "
                f"{before.version} stays. To accept it deliberately: focus-platform demo --force (CLI) or the run tag "
                f"{rs.FORCE_TAG}=true", result)
        _check_objects(store, delivery, label)
        return versions, after, result

    try:
        frames = [fmt.scan_raw(store.uri(key), lineage, label=key, storage_options=options) for key in delivery.files]
        # Raw partitions are read whole (conversion, totals, an x_RowId join): no Parquet statistics,
        # whose min/max over ~100 string columns cost about 15 % of the raw write.
        published, (versions, after, result) = warehouse.replace_partition(
            fmt.raw_table, frames, part, gate=gate, base=base, statistics=False,
            commit_metadata={"delivery": delivery.delivery_id, "files": delivery.files, "forced": policy.force,
                             "source": source.name, "period": delivery.billing_period})
    except GateFailed as exc:
        raise DeliveryRefused(str(exc), exc.details if isinstance(exc.details, rs.GuardResult) else None) from exc
    except DeliveryRefused:
        raise
    except (OSError, pl.exceptions.PolarsError, SourceFormatError) as exc:
        gone = [k for k in delivery.files if k in delivery.objects and store.stat(k) is None]
        if gone:
            raise DeliveryRefused(f"{label}: object {gone[0]} disappeared after it was listed (deleted or being "
                                  "replaced): refused, nothing committed") from exc
        if isinstance(exc, SourceFormatError):
            raise
        raise SourceFormatError(f"{label} ({', '.join(delivery.files)}): {str(exc).splitlines()[0]}") from exc
    after = rs.PartitionState(published.version, after.rows, after.billed, after.effective, after.deliveries)
    entry = rs.Restatement(fmt.raw_table, delivery.billing_period, source.name, "replace" if before else "publish",
                           before, after, published.version, forced=result.forced, run_id=run_id,
                           note="; ".join(result.problems) if result.forced else None)
    if log:
        rs.append_log(warehouse, [entry])
    return RawIngest(source.name, delivery.billing_period, delivery.delivery_id, delivery.files, published.rows,
                     published.version, sorted(versions["x_SourceFormatVersion"].to_list()), entry, result)


@dataclass
class FocusPublish:
    source: str
    billing_period: str
    version: int
    checks: FocusChecks
    quarantine_rows: int
    restatement: rs.Restatement | None = None
    status: str = rs.OPEN
    status_reason: str = ""


def _finality(fmt_name: str, stats: dict, period: str, has_invoice: Callable[[str, str], bool] | None) -> tuple[bool, str]:
    rows, missing = stats["rows"], stats["no_invoice_id"]
    accounts = sorted(a for a in stats["accounts"] if a)
    if rs.FINALITY.get(fmt_name, "invoice_file") == "invoice_id":
        if rows and not missing:
            return True, f"InvoiceId present on all {rows} rows"
        return False, f"InvoiceId missing on {missing} of {rows} rows (the month is not invoiced yet)"
    if not accounts:
        return False, "no billing account in the rows"
    if has_invoice is None:
        return False, "invoices not looked up"
    without = [a for a in accounts if not has_invoice(a, period)]
    if without:
        return False, f"no invoice yet under invoices/ for billing account(s) {', '.join(without)} {period}"
    return True, f"invoiced: invoices/<account>/{period} present for {', '.join(accounts)}"


def publish_focus(warehouse: Warehouse, source: ExportSource, period: str, *,
                  has_invoice: Callable[[str, str], bool] | None = None, run_id: str | None = None,
                  log: bool = True) -> FocusPublish:
    """Convert the raw partition to FOCUS; publish it only when every gating check passes; record
    what changed (``restatement_log``) and the period status (``period_status``)."""
    fmt = FORMATS[source.format]
    part = partition_of(source.name, period)
    if not warehouse.exists(fmt.raw_table):
        raise SourceFormatError(f"{fmt.raw_table} has no data yet: materialize the raw asset first")
    raw = warehouse.scan(fmt.raw_table, part)
    raw_totals, quarantine = raw_side(fmt, raw)
    if raw_totals.height == 0:
        raise SourceFormatError(f"{fmt.raw_table} has no rows for {source.name} {period}")
    base = warehouse.snapshot(FOCUS_TABLE, part)
    before = rs.focus_state(warehouse.scan(FOCUS_TABLE, part, version=base.version), base.version) \
        if base.files else None
    previous = rs.read_status(warehouse, period, source.name)
    status_before = previous["status"] if previous else None

    def gate(staged: pl.LazyFrame):
        checks = check_focus(staged, raw_totals, quarantine)
        if checks.problems:
            raise GateFailed(f"focus_costs {source.name} {period} not published: " + "; ".join(checks.problems),
                             checks)
        stats = staged.select(
            pl.len().alias("rows"), pl.col("InvoiceId").null_count().alias("no_invoice_id"),
            pl.col("BillingAccountId").unique().implode().alias("accounts"),
            pl.col("x_SourceDelivery").unique().implode().alias("deliveries"),
        ).collect().row(0, named=True)
        after = rs.PartitionState(
            None, checks.rows.focus, {c: Decimal(t["BilledCost"]) for c, t in checks.totals.items()},
            {c: Decimal(t["EffectiveCost"]) for c, t in checks.totals.items()},
            tuple(sorted(d for d in stats["deliveries"] if d is not None)))
        final, reason = _finality(source.format, stats, period, has_invoice)
        status = rs.next_status(status_before, final, not after.same_content(before))
        return checks, after, status, reason

    published, (checks, after, status, reason) = warehouse.replace_partition(
        FOCUS_TABLE, fmt.to_focus(raw), part, gate=gate, base=base,
        commit_metadata=lambda g: {"source": source.name, "period": period, "totals": g[0].totals,
                                   "rows": g[0].rows.focus, "deliveries": list(g[1].deliveries), "status": g[2]})
    warehouse.replace_partition(QUARANTINE_TABLE, quarantine.lazy(), part,
                                commit_metadata={"source": source.name, "period": period})
    _write_focus_metadata(warehouse)
    after = rs.PartitionState(published.version, after.rows, after.billed, after.effective, after.deliveries)
    rs.write_status(warehouse, period, source.name, status, reason, published.version, after.deliveries)
    entry = rs.Restatement(FOCUS_TABLE, period, source.name, "replace" if before else "publish", before, after,
                           published.version, status_before=status_before, status_after=status, run_id=run_id)
    if log:
        rs.append_log(warehouse, [entry])
    return FocusPublish(source.name, period, published.version, checks, quarantine.height, entry, status, reason)


def _write_focus_metadata(warehouse: Warehouse) -> None:
    schema = warehouse.scan(FOCUS_TABLE).collect_schema()
    if "://" in warehouse.root:
        warehouse.write_text(FOCUS_TABLE + METADATA_SUFFIX, json.dumps(focus_metadata(schema), indent=2))
    else:
        write_metadata(warehouse.uri(FOCUS_TABLE) + METADATA_SUFFIX, schema)


def _state_reader(table: str) -> Callable[[pl.LazyFrame, int | None], rs.PartitionState]:
    if table == FOCUS_TABLE:
        return rs.focus_state
    for fmt in FORMATS.values():
        if fmt.raw_table == table:
            def raw(lf: pl.LazyFrame, version: int | None, fmt=fmt) -> rs.PartitionState:
                deliveries = lf.select(pl.col("x_SourceDelivery").unique()).collect()["x_SourceDelivery"].to_list()
                return rs.raw_state(fmt.raw_totals(lf).collect(engine="streaming"), deliveries, version)
            return raw

    def rows_only(lf: pl.LazyFrame, version: int | None) -> rs.PartitionState:
        names = lf.collect_schema().names()
        deliveries = lf.select(pl.col("x_SourceDelivery").unique()).collect()["x_SourceDelivery"].to_list() \
            if "x_SourceDelivery" in names else []
        return rs.PartitionState(version, lf.select(pl.len()).collect().item(), {}, {},
                                 tuple(sorted(d for d in deliveries if d is not None)))
    return rows_only


def previous_version(warehouse: Warehouse, table: str, partition: dict[str, str]) -> int:
    """The latest table version in which the partition differed from now (what a rollback restores)."""
    current = warehouse.snapshot(table, partition)
    if current.version is None:
        raise ValueError(f"table {table} does not exist under {warehouse.root}")
    for v in range(current.version - 1, -1, -1):
        if warehouse.snapshot(table, partition, version=v).files != current.files:
            return v
    raise ValueError(f"{table} {partition}: no earlier version of this partition to roll back to")


def rollback_partition(warehouse: Warehouse, table: str, period: str, source: str, to_version: int | None = None,
                       *, run_id: str | None = None) -> rs.Restatement:
    """Restore a partition to its content at ``to_version`` (default: the version before its latest
    change) in one new commit, and record it in ``restatement_log`` (and ``period_status`` for
    ``focus_costs``: a final period rolled back to other content is restated)."""
    part = partition_of(source, period)
    base = warehouse.snapshot(table, part)
    if base.version is None:
        raise ValueError(f"table {table} does not exist under {warehouse.root}")
    target = previous_version(warehouse, table, part) if to_version is None else to_version
    if not 0 <= target <= base.version:
        raise ValueError(f"{table}: version {target} does not exist (versions 0..{base.version})")
    read = _state_reader(table)
    before = read(warehouse.scan(table, part, version=base.version), base.version) if base.files else None
    restored = read(warehouse.scan(table, part, version=target), target)
    published = warehouse.restore_partition(table, part, target, base=base, commit_metadata={
        "rollback_to": target, "source": source, "period": period})
    after = rs.PartitionState(published.version, restored.rows, restored.billed, restored.effective,
                              restored.deliveries)
    status_before = status_after = None
    if table == FOCUS_TABLE:
        previous = rs.read_status(warehouse, period, source)
        status_before = previous["status"] if previous else None
        status_after = rs.next_status(status_before, status_before in (rs.FINAL, rs.RESTATED),
                                      not after.same_content(before))
        rs.write_status(warehouse, period, source, status_after, f"rolled back to version {target}",
                        published.version, after.deliveries)
    entry = rs.Restatement(table, period, source, "rollback", before, after, published.version,
                           status_before=status_before, status_after=status_after, run_id=run_id,
                           note=f"restored the partition as of version {target}")
    rs.append_log(warehouse, [entry])
    return entry


@dataclass
class ConvertResult:
    rows_in: int
    rows_out: int
    quarantined: int
    checks: FocusChecks
    formats: list[str]
    out: str
    quarantine_out: str | None


def convert_files(paths: list[str], out: str, *, fmt: str = "auto", source: str = "cli") -> ConvertResult:
    """Export files → one FOCUS 1.2 Parquet file (and ``<out>.quarantine.parquet`` when needed)."""
    now = datetime.now(timezone.utc)
    frames, formats = [], []
    for path in paths:
        if not Path(path).exists():
            raise SourceFormatError(f"{path}: no such file")
        found = detect_format(path)
        if fmt != "auto" and FORMATS[found].raw_table != FORMATS[fmt].raw_table:
            raise SourceFormatError(f"{path}: is {found}, not {fmt}")
        formats.append(found)
        lineage = Lineage(source, found, f"file:{Path(path).name}", None, now)
        frames.append(FORMATS[found].scan_raw(path, lineage, label=str(path)))
    raw = pl.concat(frames, how="diagonal_relaxed")
    family = FORMATS[formats[0]]
    try:
        # Three streaming passes, not one collect_all: sharing the scan would cache it in memory.
        family.to_focus(raw).sink_parquet(out, compression=PARQUET_COMPRESSION)
        raw_totals, quarantine = raw_side(family, raw)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"{', '.join(paths)}: cannot be converted: {str(exc).splitlines()[0]}") from exc
    stem = str(Path(out).with_suffix(""))
    q_out = None
    if quarantine.height:
        q_out = stem + ".quarantine.parquet"
        quarantine.write_parquet(q_out, compression=PARQUET_COMPRESSION)
    focus = pl.scan_parquet(out)
    checks = check_focus(focus, raw_totals, quarantine)
    write_metadata(stem + METADATA_SUFFIX, focus.collect_schema())
    return ConvertResult(checks.rows.raw, checks.rows.focus, quarantine.height, checks, sorted(set(formats)), out,
                         q_out)
