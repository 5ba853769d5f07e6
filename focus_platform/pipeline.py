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

Every publication of a raw, ``focus_costs`` or ``focus_quarantine`` partition is recorded in
``restatement_log`` by the warehouse's write path (``Warehouse.publish``), with the guard's and the
period status's details the pipeline passes it; a no-op is recorded as ``unchanged``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl

from focus_platform import __version__
from focus_platform.allocation.accounts import (
    bill_accounts,
    catalog_digest,
    fill_account_names,
)
from focus_platform.landing.zone import (
    Delivery,
    ExportSource,
    LocalStore,
    is_currency_code,
)
from focus_platform.periods import PartitionKey
from focus_platform.sources import FORMATS, Lineage, SourceFormatError, detect_format
from focus_platform.sources.common import (
    EFFECTIVE_COST_UNKNOWN,
    UNREADABLE_AMOUNTS,
    is_derived_row,
    sku_mapping_failure,
)
from focus_platform.spec.metadata import METADATA_SUFFIX, focus_metadata, write_metadata
from focus_platform.spec.rules import ConformanceReport, check_conformance
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.catalog import FOCUS_TABLE, QUARANTINE_TABLE
from focus_platform.warehouse.contracts import ContractReport
from focus_platform.warehouse.delta import (
    PARQUET_COMPRESSION,
    RAW_ROW_GROUP_ROWS,
    GateFailed,
    Published,
    Warehouse,
)


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
    unmapped = sku_mapping_failure()
    return focus.select(
        # distinct 64-bit hashes (8 bytes a row, not the strings); a shortfall is confirmed exactly below
        pl.len().alias("rows"), pl.col("x_RowId").hash().n_unique().alias("unique"),
        is_derived_row(pl.col("x_RowId")).sum().alias("derived"),
        priced.sum().alias("priced"), (priced & unmapped).sum().alias("unmapped"),
        _effective_cost_unknown().sum().alias("effective_unknown"),
    )


def _effective_cost_unknown() -> pl.Expr:
    """Rows whose EffectiveCost is 0 only because the export lacks every column carrying it."""
    return (pl.col("x_SourceChanges").list.eval(pl.element().str.starts_with(EFFECTIVE_COST_UNKNOWN))
            .list.any().fill_null(False))


def effective_cost_unknown_summary(focus: pl.LazyFrame) -> dict:
    """The rows whose EffectiveCost is unknown (a provider-data gap): how many, their usage per
    consumed unit and why (the notes naming the missing columns)."""
    rows = focus.filter(_effective_cost_unknown())
    usage = (rows.group_by(pl.col("ConsumedUnit").fill_null("(no unit)"))
             .agg(pl.col("ConsumedQuantity").sum(), pl.len().alias("rows")).sort("ConsumedUnit")
             .collect(engine="streaming"))
    notes = (rows.select(pl.col("x_SourceChanges").list.eval(
        pl.element().filter(pl.element().str.starts_with(EFFECTIVE_COST_UNKNOWN))).explode().unique())
        .collect(engine="streaming"))
    return {"rows": int(usage["rows"].sum() or 0),
            "usage": {r[0]: f"{r[1] or 0:f}" for r in usage.iter_rows()},
            "why": sorted(n for n in notes["x_SourceChanges"].to_list() if n)}


@dataclass
class FocusChecks:
    conformance: ConformanceReport
    conservation: list[ConservationRow]
    rows: RowCounts
    duplicate_row_ids: int
    totals: dict[str, dict[str, str]]
    rates: dict[str, float]
    unknown_amounts: list[str] = field(default_factory=list)  # quarantined rows whose amounts cannot be read
    unknown_amount_rows: int = 0
    accept_unknown_money: bool = False  # published anyway, deliberately (recorded)
    effective_unknown: dict = field(default_factory=lambda: {"rows": 0, "usage": {}, "why": []})

    @property
    def money_unknown(self) -> bool:
        """Quarantined rows hold amounts that cannot be read, and nobody accepted that."""
        return self.unknown_amount_rows > 0 and not self.accept_unknown_money

    @property
    def billed_ok(self) -> bool:
        return all(c.billed_ok for c in self.conservation) and not self.money_unknown

    def unknown_money_message(self) -> str:
        shown = "; ".join(self.unknown_amounts)
        more = self.unknown_amount_rows - len(self.unknown_amounts)
        return (f"{self.unknown_amount_rows} quarantined row(s) hold amounts that cannot be read, so the billed "
                f"total is unknown: {shown}{f' (and {more} more)' if more > 0 else ''}")

    @property
    def warnings(self) -> list[str]:
        """What is published but must not pass silently."""
        out = []
        if self.unknown_amount_rows and self.accept_unknown_money:
            out.append("accepted deliberately (unknown money override): " + self.unknown_money_message())
        e = self.effective_unknown
        if e["rows"]:
            out.append(f"EffectiveCost unknown on {e['rows']} row(s), kept 0 as a provider-data gap: "
                       + "; ".join(e["why"]))
        return out

    @property
    def problems(self) -> list[str]:
        out = []
        if self.money_unknown:
            out.append("billed cost not conserved: " + self.unknown_money_message() + ". Fix the data and "
                       "re-deliver, or accept it deliberately (convert --accept-unknown-money, demo "
                       "--accept-unknown-money, run tag focus/accept-unknown-money=true); it is recorded")
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


UNKNOWN_EXAMPLES = 10


def unknown_amounts(quarantine: pl.DataFrame) -> tuple[int, list[str]]:
    """Quarantined rows whose amounts cannot be read: how many, and the first few as
    '<file> row <n>: <column>: '<value>' is not a number'."""
    if UNREADABLE_AMOUNTS not in quarantine.columns:
        return 0, []
    rows = quarantine.filter(pl.col(UNREADABLE_AMOUNTS).is_not_null())
    shown = rows.sort("x_SourceFile", "x_SourceRow").head(UNKNOWN_EXAMPLES)
    return rows.height, [f"{r['x_SourceFile']} row {r['x_SourceRow']}: {r[UNREADABLE_AMOUNTS]}"
                         for r in shown.iter_rows(named=True)]


def check_focus(focus: pl.LazyFrame, raw_totals: pl.DataFrame, quarantine: pl.DataFrame, *,
                accept_unknown_money: bool = False) -> FocusChecks:
    """Every gating check of a FOCUS partition (or converted file) against its raw rows: the
    conformance rules, with the sums, counts and rates riding along in the rules' collect_all.
    Amounts that cannot be read fail the billed conservation check unless ``accept_unknown_money``."""
    conformance = check_conformance(focus, extra={
        "sums": _sums_query(focus, "BilledCost", "EffectiveCost"), "quality": _quality_query(focus)})
    sums, q = conformance.extra["sums"], conformance.extra["quality"].row(0, named=True)
    if q["unique"] < q["rows"]:  # a hash collision or a real duplicate: count exactly
        q["unique"] = focus.select(pl.col("x_RowId").n_unique()).collect(engine="streaming").item()
    rows = RowCounts(
        raw=int(raw_totals["rows"].sum() or 0), focus=q["rows"], quarantined=quarantine.height,
        derived=q["derived"], dropped=int(raw_totals["dropped_rows"].sum() or 0))
    unknown_rows, unknown_shown = unknown_amounts(quarantine)
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
        unknown_amounts=unknown_shown, unknown_amount_rows=unknown_rows, accept_unknown_money=accept_unknown_money,
        effective_unknown=effective_cost_unknown_summary(focus) if q["effective_unknown"] else
        {"rows": 0, "usage": {}, "why": []},
    )


def raw_problems(raw_totals: pl.DataFrame) -> list[str]:
    """What a format's ``raw_totals`` says makes the raw rows unusable as a whole (its optional
    ``problem`` column, e.g. Azure actual and amortized files of different periods)."""
    if "problem" not in raw_totals.columns:
        return []
    return sorted(set(raw_totals["problem"].drop_nulls().to_list()))


def raw_side(fmt, raw: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The raw totals and the quarantined rows of a raw partition. The quarantine pass runs only
    when the totals count quarantined rows (most deliveries have none). Refused (SourceFormatError)
    when the totals name a problem of the rows as a whole."""
    raw_totals = fmt.raw_totals(raw).collect(engine="streaming")
    problems = raw_problems(raw_totals)
    if problems:
        raise SourceFormatError("; ".join(problems))
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
    unchanged: bool = False  # the same delivery was already published: nothing written (recorded)
    contract: ContractReport | None = None  # the raw table's contract on what was published


class DeliveryRefused(SourceFormatError):
    """A delivery refused as a whole (empty, partial, changed while read, failing the guard or the raw
    table's contract): nothing committed, the published version stays."""

    def __init__(self, message: str, guard: rs.GuardResult | None = None, contract: ContractReport | None = None):
        super().__init__(message)
        self.guard = guard
        self.contract = contract


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


def fingerprint(*parts: object) -> str:
    """A digest of what a partition was built from; equal digests mean re-building it changes nothing."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def delivery_fingerprint(source: ExportSource, delivery: Delivery) -> str:
    """The delivery as listed (``Delivery.fingerprint``: its id, every object's size and version tag,
    as the delivery sensor sees it), the source's settings and the converter version."""
    return fingerprint(source.format, source.billing_currency, delivery.fingerprint, __version__)


def ingest_delivery(warehouse: Warehouse, store: LocalStore, source: ExportSource, delivery: Delivery,
                    *, now: datetime | None = None, policy: rs.GuardPolicy | None = None,
                    run_id: str | None = None) -> RawIngest:
    """Replace the raw partition (source, period) with the delivery's rows, every column kept.

    Refused (``DeliveryRefused``, nothing committed) when a file is a zero-byte object, the
    delivery has no rows, an object disappears or changes while it is read, or the guard finds
    that it would drop the published row count or billed total by more than
    ``policy.max_drop_share`` (unless ``policy.force``).

    A delivery already published as it is now (same id, objects, settings and converter version:
    ``delivery_fingerprint``) is a recorded no-op: no new table version, a restatement-log entry
    with action ``unchanged``."""
    fmt = FORMATS[source.format]
    policy = policy or rs.GuardPolicy()
    part = PartitionKey.of(delivery.billing_period, source.name).values()
    label = f"delivery {delivery.delivery_id} of {source.name} {delivery.billing_period}"
    for key in delivery.files:
        listed = delivery.objects.get(key)
        if listed is not None and listed.size == 0:
            raise DeliveryRefused(f"{label}: {key} is a zero-byte object (an empty or unfinished upload): "
                                  "refused, the published version stays")
    lineage = Lineage(source.name, source.format, delivery.delivery_id, delivery.billing_period,
                      now or datetime.now(timezone.utc), source.billing_currency)
    options = getattr(store, "storage_options", None)
    base = warehouse.snapshot(fmt.raw_table, part)
    digest = delivery_fingerprint(source, delivery)
    before = None
    if base.files:
        published = warehouse.scan(fmt.raw_table, part, version=base.version)
        before = rs.raw_state(fmt.raw_totals(published).collect(engine="streaming"),
                              published.select(pl.col("x_SourceDelivery").unique()).collect()["x_SourceDelivery"]
                              .to_list(), base.version)
        if warehouse.published_fingerprint(fmt.raw_table, part, base) == digest:
            _check_objects(store, delivery, label)
            result = rs.guard(before, before, policy)
            entry = rs.Restatement(fmt.raw_table, delivery.billing_period, source.name, "unchanged", before, before,
                                   base.version, run_id=run_id,
                                   note=f"delivery {delivery.delivery_id} already published as it is: nothing written")
            warehouse.record([entry])
            versions = published.select(pl.col("x_SourceFormatVersion").unique().sort()).collect()
            return RawIngest(source.name, delivery.billing_period, delivery.delivery_id, delivery.files, before.rows,
                             base.version, versions["x_SourceFormatVersion"].to_list(), entry, result, unchanged=True)

    def gate(staged: pl.LazyFrame):
        versions = staged.group_by("x_SourceFormatVersion").len().collect()
        staged_totals = fmt.raw_totals(staged).collect(engine="streaming")
        problems = raw_problems(staged_totals)
        if problems:
            raise GateFailed(f"{label} refused: " + "; ".join(problems) + ": nothing committed, the published "
                             "version stays")
        after = rs.raw_state(staged_totals, [delivery.delivery_id])
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

    def restatement(published: Published, gated) -> rs.Restatement:
        _, after, result = gated
        return rs.Restatement(fmt.raw_table, delivery.billing_period, source.name, "replace" if before else "publish",
                              before, replace(after, version=published.version), published.version,
                              forced=result.forced, run_id=run_id,
                              note="; ".join(result.problems) if result.forced else None)

    try:
        frames = [fmt.scan_raw(store.uri(key), lineage, label=key, storage_options=options) for key in delivery.files]
        # Raw partitions are read whole (conversion, totals, an x_RowId join): no Parquet statistics,
        # whose min/max over ~100 string columns cost about 15 % of the raw write.
        published, (versions, after, result) = warehouse.publish(
            fmt.raw_table, frames, PartitionKey.of(delivery.billing_period, source.name), gate=gate, base=base,
            statistics=False, row_group_rows=RAW_ROW_GROUP_ROWS, fingerprint=digest, restatement=restatement,
            commit_metadata={"delivery": delivery.delivery_id, "files": delivery.files, "forced": policy.force,
                             "source": source.name, "period": delivery.billing_period, "fingerprint": digest})
    except GateFailed as exc:
        raise DeliveryRefused(str(exc), exc.details if isinstance(exc.details, rs.GuardResult) else None,
                              exc.details if isinstance(exc.details, ContractReport) else None) from exc
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
    return RawIngest(source.name, delivery.billing_period, delivery.delivery_id, delivery.files, published.rows,
                     published.version, sorted(versions["x_SourceFormatVersion"].to_list()), published.restatement,
                     result, contract=published.contract)


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
    unchanged: bool = False  # built from the same raw partition by the same converter: nothing written
    contracts: dict[str, ContractReport] = field(default_factory=dict)  # focus_costs, focus_quarantine


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


def _partition_stats(focus: pl.LazyFrame) -> dict:
    return focus.select(
            pl.len().alias("rows"), pl.col("InvoiceId").null_count().alias("no_invoice_id"),
            pl.col("BillingAccountId").unique().implode().alias("accounts"),
            pl.col("x_SourceDelivery").unique().implode().alias("deliveries"),
        ).collect().row(0, named=True)


def publish_focus(warehouse: Warehouse, source: ExportSource, period: str, *,
                  has_invoice: Callable[[str, str], bool] | None = None, run_id: str | None = None,
                  accept_unknown_money: bool = False, accounts: pl.DataFrame | None = None) -> FocusPublish:
    """Convert the raw partition to FOCUS; publish it only when every gating check passes; record
    what changed (``restatement_log``) and the period status (``period_status``).

    ``accept_unknown_money``: publish although quarantined rows hold amounts that cannot be read
    (recorded in the restatement log). ``accounts``: the account catalog (``allocation.accounts``);
    account names the export lacks are filled from it before the gates. A partition already built
    from the same raw partition by the same converter with the same settings and the same catalog
    entries for its accounts is a recorded no-op: its checks run again on the published rows, its
    period status is brought up to date, no new table version is written."""
    fmt = FORMATS[source.format]
    part = PartitionKey.of(period, source.name).values()
    if not warehouse.exists(fmt.raw_table):
        raise SourceFormatError(f"{fmt.raw_table} has no data yet: materialize the raw asset first")
    raw = fmt.with_line_item_copies(warehouse.scan(fmt.raw_table, part))
    raw_totals, quarantine = raw_side(fmt, raw)
    if raw_totals.height == 0:
        raise SourceFormatError(f"{fmt.raw_table} has no rows for {source.name} {period}")
    base = warehouse.snapshot(FOCUS_TABLE, part)
    before = rs.focus_state(warehouse.scan(FOCUS_TABLE, part, version=base.version), base.version) \
        if base.files else None
    previous = rs.read_status(warehouse, period, source.name)
    status_before = previous["status"] if previous else None
    raw_files = sorted(warehouse.snapshot(fmt.raw_table, part).files)

    def built_from(rows: Callable[[], pl.LazyFrame]) -> str:
        """What the partition is built from; the catalog entries of the accounts in ``rows``, if any."""
        names = catalog_digest(accounts, bill_accounts(rows())) if accounts is not None and accounts.height else ""
        return fingerprint(raw_files, __version__, accept_unknown_money, *([names] if names else []))

    if base.files:
        digest = built_from(lambda: warehouse.scan(FOCUS_TABLE, part, version=base.version))
        if warehouse.published_fingerprint(FOCUS_TABLE, part, base) == digest:
            return _unchanged_focus(warehouse, source, period, base, before, raw_totals, quarantine, status_before,
                                    has_invoice, run_id, accept_unknown_money)

    def gate(staged: pl.LazyFrame):
        checks = check_focus(staged, raw_totals, quarantine, accept_unknown_money=accept_unknown_money)
        if checks.problems:
            raise GateFailed(f"focus_costs {source.name} {period} not published: " + "; ".join(checks.problems),
                             checks)
        stats = _partition_stats(staged)
        after = rs.PartitionState(
            None, checks.rows.focus, {c: Decimal(t["BilledCost"]) for c, t in checks.totals.items()},
            {c: Decimal(t["EffectiveCost"]) for c, t in checks.totals.items()},
            tuple(sorted(d for d in stats["deliveries"] if d is not None)))
        final, reason = _finality(source.format, stats, period, has_invoice)
        status = rs.next_status(status_before, final, not after.same_content(before))
        return checks, after, status, reason, built_from(lambda: staged)  # the accounts of the staged rows

    def restatement(published: Published, gated) -> rs.Restatement:
        checks, after, status, _, _ = gated
        return rs.Restatement(FOCUS_TABLE, period, source.name, "replace" if before else "publish", before,
                              replace(after, version=published.version), published.version,
                              status_before=status_before, status_after=status, run_id=run_id,
                              note="; ".join(checks.warnings) or None)

    published, (checks, after, status, reason, _) = warehouse.publish(
        FOCUS_TABLE, fill_account_names(fmt.to_focus(raw), accounts), PartitionKey.of(period, source.name), gate=gate,
        base=base, fingerprint=lambda g: g[4],
        restatement=restatement,
        commit_metadata=lambda g: {"source": source.name, "period": period, "totals": g[0].totals,
                                   "rows": g[0].rows.focus, "deliveries": list(g[1].deliveries), "status": g[2],
                                   "fingerprint": g[4], "warnings": g[0].warnings})
    quarantined, _ = warehouse.publish(QUARANTINE_TABLE, quarantine.lazy(), PartitionKey.of(period, source.name),
                                       run_id=run_id, commit_metadata={"source": source.name, "period": period})
    _write_focus_metadata(warehouse)
    rs.write_status(warehouse, period, source.name, status, reason, published.version, after.deliveries)
    return FocusPublish(source.name, period, published.version, checks, quarantine.height, published.restatement,
                        status, reason, contracts={FOCUS_TABLE: published.contract,
                                                   QUARANTINE_TABLE: quarantined.contract})


def _unchanged_focus(warehouse: Warehouse, source: ExportSource, period: str, base, before: rs.PartitionState,
                     raw_totals: pl.DataFrame, quarantine: pl.DataFrame, status_before: str | None,
                     has_invoice, run_id: str | None, accept_unknown_money: bool) -> FocusPublish:
    """The no-op of ``publish_focus``: the published rows checked again, the period status brought
    up to date (an invoice may have arrived), an ``unchanged`` entry in the restatement log."""
    published = warehouse.scan(FOCUS_TABLE, PartitionKey.of(period, source.name).values(), version=base.version)
    checks = check_focus(published, raw_totals, quarantine, accept_unknown_money=accept_unknown_money)
    final, reason = _finality(source.format, _partition_stats(published), period, has_invoice)
    status = rs.next_status(status_before, final, False)
    if status != status_before:
        rs.write_status(warehouse, period, source.name, status, reason, base.version, before.deliveries)
    entry = rs.Restatement(FOCUS_TABLE, period, source.name, "unchanged", before, before, base.version,
                           status_before=status_before, status_after=status, run_id=run_id,
                           note="built from the same raw partition by the same converter: nothing written")
    warehouse.record([entry])
    return FocusPublish(source.name, period, base.version, checks, quarantine.height, entry, status, reason,
                        unchanged=True)


def _write_focus_metadata(warehouse: Warehouse) -> None:
    schema = warehouse.scan(FOCUS_TABLE).collect_schema()
    if "://" in warehouse.root:
        warehouse.write_text(FOCUS_TABLE + METADATA_SUFFIX, json.dumps(focus_metadata(schema), indent=2))
    else:
        write_metadata(warehouse.uri(FOCUS_TABLE) + METADATA_SUFFIX, schema)


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
    part = PartitionKey.of(period, source).values()
    base = warehouse.snapshot(table, part)
    if base.version is None:
        raise ValueError(f"table {table} does not exist under {warehouse.root}")
    target = previous_version(warehouse, table, part) if to_version is None else to_version
    if not 0 <= target <= base.version:
        raise ValueError(f"{table}: version {target} does not exist (versions 0..{base.version})")
    read = rs.state_reader(table)
    before = read(warehouse.scan(table, part, version=base.version), base.version) if base.files else None
    restored = read(warehouse.scan(table, part, version=target), target)
    status_before = status_after = None
    if table == FOCUS_TABLE:
        previous = rs.read_status(warehouse, period, source)
        status_before = previous["status"] if previous else None
        status_after = rs.next_status(status_before, status_before in (rs.FINAL, rs.RESTATED),
                                      not restored.same_content(before))

    def restatement(published: Published) -> rs.Restatement:
        return rs.Restatement(table, period, source, "rollback", before, replace(restored, version=published.version),
                              published.version, status_before=status_before, status_after=status_after,
                              run_id=run_id, note=f"restored the partition as of version {target}")

    published = warehouse.restore_partition(table, PartitionKey.of(period, source), target, base=base,
                                            restatement=restatement, commit_metadata={
                                                "rollback_to": target, "source": source, "period": period})
    if table == FOCUS_TABLE:
        rs.write_status(warehouse, period, source, status_after, f"rolled back to version {target}",
                        published.version, restored.deliveries)
    return published.restatement


STAGE_COMPRESSION = "lz4"  # the staged raw rows live for one conversion: fast to write and read


@dataclass
class ConvertResult:
    rows_in: int
    rows_out: int
    quarantined: int
    checks: FocusChecks
    formats: list[str]
    out: str
    quarantine_out: str | None


def convert_files(paths: list[str], out: str, *, fmt: str = "auto", source: str = "cli",
                  billing_currency: str | None = None, accept_unknown_money: bool = False,
                  accounts: pl.DataFrame | None = None) -> ConvertResult:
    """Export files → one FOCUS 1.2 Parquet file (and ``<out>.quarantine.parquet`` when needed).

    Each file is read and mapped by its own format (an AWS CUR and an OCI report in one call are
    each converted as what they are); the checks run over the whole output against every format's
    raw totals. ``billing_currency``: the currency of exports without a currency column (recorded
    per row). ``accept_unknown_money``: write the output although amounts could not be read.
    ``accounts``: the account catalog; account names the exports lack are filled from it (noted per row)."""
    if billing_currency is not None and not is_currency_code(billing_currency):
        raise SourceFormatError(f"--billing-currency {billing_currency!r} is not an ISO 4217 currency code")
    if not out.lower().endswith(".parquet"):
        raise SourceFormatError(f"--out {out}: the output is a Parquet file: name it .parquet")
    now = datetime.now(timezone.utc)
    families: dict[str, list[tuple[str, pl.LazyFrame]]] = {}  # raw table -> its files and their raw rows
    formats = []
    for path in paths:
        if not Path(path).exists():
            raise SourceFormatError(f"{path}: no such file")
        found = detect_format(path)
        if fmt != "auto" and FORMATS[found].raw_table != FORMATS[fmt].raw_table:
            raise SourceFormatError(f"{path}: is {found}, not {fmt}")
        formats.append(found)
        lineage = Lineage(source, found, f"file:{Path(path).name}", None, now, billing_currency)
        raw = FORMATS[found].scan_raw(path, lineage, label=str(path))
        families.setdefault(FORMATS[found].raw_table, []).append((str(path), raw))
    mappers = {FORMATS[f].raw_table: FORMATS[f] for f in reversed(formats)}  # raw table -> its format module
    stem = str(Path(out).with_suffix(""))
    with tempfile.TemporaryDirectory(dir=Path(out).resolve().parent, prefix=f".{Path(stem).name}.raw-") as stage:
        try:
            raws = {table: mappers[table].with_line_item_copies(staged_raw(
                        pl.concat([raw for _, raw in files], how="diagonal_relaxed"), [p for p, _ in files],
                        f"{stage}/{i}"))
                    for i, (table, files) in enumerate(families.items())}
            # Separate streaming passes, not one collect_all: sharing the scan would cache it in memory.
            focus = pl.concat([mappers[t].to_focus(raw) for t, raw in raws.items()], how="diagonal_relaxed")
            fill_account_names(focus, accounts).sink_parquet(out, compression=PARQUET_COMPRESSION)
            sides = [raw_side(mappers[t], raw) for t, raw in raws.items()]
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise SourceFormatError(f"{', '.join(paths)}: cannot be converted: {str(exc).splitlines()[0]}") from exc
    raw_totals = _summed_totals([totals for totals, _ in sides])
    quarantine = pl.concat([q for _, q in sides], how="diagonal_relaxed")
    q_out = stem + ".quarantine.parquet"
    if quarantine.height:
        quarantine.write_parquet(q_out, compression=PARQUET_COMPRESSION)
    else:  # a quarantine file left by an earlier conversion to the same output would not belong to it
        Path(q_out).unlink(missing_ok=True)
        q_out = None
    focus = pl.scan_parquet(out)
    checks = check_focus(focus, raw_totals, quarantine, accept_unknown_money=accept_unknown_money)
    write_metadata(stem + METADATA_SUFFIX, focus.collect_schema())
    return ConvertResult(checks.rows.raw, checks.rows.focus, quarantine.height, checks, sorted(set(formats)), out,
                         q_out)


def staged_raw(raw: pl.LazyFrame, paths: list[str], stage: str) -> pl.LazyFrame:
    """The raw rows of text files (CSV, JSON lines) staged once as Parquet under ``stage``, as the raw
    asset stages them in Delta: every later pass (line-item copies, FOCUS, raw totals, quarantine)
    reads the typed columns it needs instead of parsing every file again. Parquet files are read as
    they are (a pass reads only its columns)."""
    if all(p.lower().endswith(".parquet") for p in paths):
        return raw
    raw.sink_parquet(f"{stage}.parquet", compression=STAGE_COMPRESSION, statistics=False,
                     row_group_size=RAW_ROW_GROUP_ROWS)
    return pl.scan_parquet(f"{stage}.parquet")


def _summed_totals(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Several formats' raw totals as one frame, one row per (billing account, period, currency)."""
    totals = pl.concat(frames, how="diagonal_relaxed")
    counts = [c for c in ("rows", "quarantined_rows", "dropped_rows") if c in totals.columns]
    return totals.group_by(_KEYS).agg(pl.col("billed").sum(), pl.col("amortized").sum(),
                                      *[pl.col(c).fill_null(0).sum() for c in counts])
