"""The pipeline stages without Dagster: ingest a delivery, publish FOCUS, convert files.

Each stage reads and writes through the warehouse and gates what it publishes:

- ``ingest_delivery``: the newest delivery of (source, billing period) → ``raw_<format>`` partition.
- ``publish_focus``: raw partition → ``focus_costs`` (gated on conformance, exact cost
  conservation, row conservation and x_RowId uniqueness) and ``focus_quarantine``.
- ``convert_files``: export files → one typed FOCUS Parquet file, same rules and checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl

from focus_platform.landing.zone import Delivery, ExportSource, LocalStore
from focus_platform.sources import FORMATS, Lineage, SourceFormatError, detect_format
from focus_platform.sources.common import UNMAPPED_SERVICE_NOTE, is_derived_row
from focus_platform.spec.metadata import METADATA_SUFFIX, write_metadata
from focus_platform.spec.rules import ConformanceReport, check_conformance
from focus_platform.warehouse.delta import GateFailed, Warehouse

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
    return {str(r[0]): {"BilledCost": str(r[1]), "EffectiveCost": str(r[2])} for r in df.iter_rows()}


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
    if "quarantined_rows" not in raw_totals.columns:  # TODO(lead): every format gives it, then drop this
        return raw_totals, quarantine.collect(engine="streaming")
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


def ingest_delivery(warehouse: Warehouse, store: LocalStore, source: ExportSource, delivery: Delivery,
                    *, now: datetime | None = None) -> RawIngest:
    """Replace the raw partition (source, period) with the delivery's rows, every column kept."""
    fmt = FORMATS[source.format]
    lineage = Lineage(source.name, source.format, delivery.delivery_id, delivery.billing_period,
                      now or datetime.now(timezone.utc))
    frames = [fmt.scan_raw(store.uri(key), lineage, label=key) for key in delivery.files]

    def gate(staged: pl.LazyFrame):
        versions = staged.group_by("x_SourceFormatVersion").len().collect()
        if versions["len"].sum() == 0:
            raise GateFailed(f"delivery {delivery.delivery_id} of {source.name} {delivery.billing_period} has no rows "
                             f"({', '.join(delivery.files)}): refused, the published version stays")
        return versions

    try:
        published, versions = warehouse.replace_partition(
            fmt.raw_table, frames, partition_of(source.name, delivery.billing_period), gate=gate,
            commit_metadata={"delivery": delivery.delivery_id, "files": delivery.files})
    except GateFailed as exc:
        raise SourceFormatError(str(exc)) from exc
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"delivery {delivery.delivery_id} of {source.name} {delivery.billing_period} "
                                f"({', '.join(delivery.files)}): {str(exc).splitlines()[0]}") from exc
    return RawIngest(source.name, delivery.billing_period, delivery.delivery_id, delivery.files, published.rows,
                     published.version, sorted(versions["x_SourceFormatVersion"].to_list()))


@dataclass
class FocusPublish:
    source: str
    billing_period: str
    version: int
    checks: FocusChecks
    quarantine_rows: int


def publish_focus(warehouse: Warehouse, source: ExportSource, period: str) -> FocusPublish:
    """Convert the raw partition to FOCUS; publish it only when every gating check passes."""
    fmt = FORMATS[source.format]
    part = partition_of(source.name, period)
    if not warehouse.exists(fmt.raw_table):
        raise SourceFormatError(f"{fmt.raw_table} has no data yet: materialize the raw asset first")
    raw = warehouse.scan(fmt.raw_table, part)
    raw_totals, quarantine = raw_side(fmt, raw)
    if raw_totals.height == 0:
        raise SourceFormatError(f"{fmt.raw_table} has no rows for {source.name} {period}")

    def gate(staged: pl.LazyFrame) -> FocusChecks:
        checks = check_focus(staged, raw_totals, quarantine)
        if checks.problems:
            raise GateFailed(f"focus_costs {source.name} {period} not published: " + "; ".join(checks.problems),
                             checks)
        return checks

    published, checks = warehouse.replace_partition(
        FOCUS_TABLE, fmt.to_focus(raw), part, gate=gate,
        commit_metadata=lambda checks: {"source": source.name, "period": period, "totals": checks.totals,
                                        "rows": checks.rows.focus})
    warehouse.replace_partition(QUARANTINE_TABLE, quarantine.lazy(), part,
                                commit_metadata={"source": source.name, "period": period})
    write_metadata(warehouse.uri(FOCUS_TABLE) + METADATA_SUFFIX, warehouse.scan(FOCUS_TABLE).collect_schema(),
                   warehouse.storage_options)
    return FocusPublish(source.name, period, published.version, checks, quarantine.height)


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
        family.to_focus(raw).sink_parquet(out)
        raw_totals, quarantine = raw_side(family, raw)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceFormatError(f"{', '.join(paths)}: cannot be converted: {str(exc).splitlines()[0]}") from exc
    stem = str(Path(out).with_suffix(""))
    q_out = None
    if quarantine.height:
        q_out = stem + ".quarantine.parquet"
        quarantine.write_parquet(q_out)
    focus = pl.scan_parquet(out)
    checks = check_focus(focus, raw_totals, quarantine)
    write_metadata(stem + METADATA_SUFFIX, focus.collect_schema())
    return ConvertResult(checks.rows.raw, checks.rows.focus, quarantine.height, checks, sorted(set(formats)), out,
                         q_out)
