"""SKU / rate-card catalog from converted FOCUS rows: prices per SKU price and billing period,
SKU lineages across renames, price changes, and SKU mapping failures (SLO M5).

Catalog rows (``CATALOG_SCHEMA``): per (billing period, ProviderName, SkuId, SkuPriceId,
PricingCurrency, PricingUnit) of Usage / Purchase rows with a SkuId (derived rows such as unused
commitment are left out: their prices are computed, not the provider's): the list and contracted
unit price (min and max within the period — one price is the norm, two mean the provider billed one
SkuPriceId at several prices), the names the SKU was billed under, rows and export sources.

What a SKU rename is (``x_SkuLineageId``)
-----------------------------------------
* The identity of a SKU is (ProviderName, SkuId). The **same SkuId under new names** (SkuMeter,
  ServiceName, the provider's usage type or description) is the same SKU: one lineage, whose
  names per period are kept in ``x_SkuNames``.
* A **changed SkuId** is the same lineage only when a rename table says so: CSV files under
  ``<landing root>/sku_renames/`` with ``provider,old_sku_id,new_sku_id[,effective_period]``.
  Chains (a → b → c) are followed; the lineage id is the newest SkuId. An old id renamed to two
  different ids, or a loop, is an error. Renames are never guessed from names: two SKUs with
  similar names may well be different products.

A price is followed across periods by ``x_PriceKey``: the SkuPriceId with its leading SkuId (AWS
rate codes start with the SKU) replaced by the lineage id, so a renamed SKU's prices continue the
old SKU's history. A **price change** is a Usage price key whose (min, max) list or contracted
unit price differs from its latest earlier period (Purchase rows are cataloged too, but their unit
"price" is a fee amount — support is a share of spend — so its month-to-month change is no signal).

M5 (SKU mapping failure rate, defined once in ``sources.common``: ``sku_mapping_failure`` over
``sku_mapping_scope``): Usage / Purchase rows without a SkuId the provider delivers (a recorded R-SkuId-1 gap is
not a failure), or whose ServiceCategory is a fallback (the converter notes ``UNMAPPED_SERVICE_NOTE`` in
``x_SourceChanges``, or it is null), over all Usage / Purchase rows; its target is ``service_levels``' M5.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import polars as pl

from focus_platform import service_levels
from focus_platform.periods import BillingPeriod, PeriodError
from focus_platform.sources.common import (
    is_derived_row,
    service_unmapped,
    sku_mapping_failure,
    sku_mapping_scope,
    sku_missing,
)
from focus_platform.spec.columns import MONEY

SKU_RENAME_DIR = "sku_renames"
PRICED_CATEGORIES = ("Usage", "Purchase")
PRICE_COLUMNS = ("ListUnitPrice", "x_ListUnitPriceMax", "ContractedUnitPrice", "x_ContractedUnitPriceMax")
PRICE_KEY = ["ProviderName", "ChargeCategory", "x_SkuLineageId", "x_PriceKey", "PricingCurrency", "PricingUnit"]
TRACKED_CATEGORIES = ("Usage",)  # price changes of usage rates; fees (Purchase) are amounts that vary by design

RENAME_SCHEMA = pl.Schema({"ProviderName": pl.String, "OldSkuId": pl.String, "NewSkuId": pl.String,
                           "EffectivePeriod": pl.String, "x_SourceFile": pl.String})

CATALOG_SCHEMA = pl.Schema({
    "x_BillingPeriod": pl.String,
    "ProviderName": pl.String,
    "x_SkuLineageId": pl.String,
    "SkuId": pl.String,
    "SkuPriceId": pl.String,
    "x_PriceKey": pl.String,
    "PricingCurrency": pl.String,
    "PricingUnit": pl.String,
    "ChargeCategory": pl.String,
    "ListUnitPrice": MONEY,
    "x_ListUnitPriceMax": MONEY,
    "ContractedUnitPrice": MONEY,
    "x_ContractedUnitPriceMax": MONEY,
    "SkuMeter": pl.String,
    "x_SkuNames": pl.List(pl.String),
    "ServiceName": pl.String,
    "ServiceCategory": pl.String,
    "x_Rows": pl.Int64,
    "x_Sources": pl.List(pl.String),
})

PRICE_CHANGE_SCHEMA = pl.Schema({
    "ProviderName": pl.String, "ChargeCategory": pl.String, "x_SkuLineageId": pl.String, "x_PriceKey": pl.String,
    "PricingCurrency": pl.String, "PricingUnit": pl.String,
    "PreviousPeriod": pl.String, "Period": pl.String, "PreviousSkuId": pl.String, "SkuId": pl.String,
    "PreviousSkuPriceId": pl.String, "SkuPriceId": pl.String,
    **{f"Previous{c}": MONEY for c in PRICE_COLUMNS}, **{c: MONEY for c in PRICE_COLUMNS},
})



class SkuRenameError(ValueError):
    """A rename table that cannot be used (the message names file, row and SKU)."""


# ---------------------------------------------------------------------------------------------
# Renames and lineages
# ---------------------------------------------------------------------------------------------
def parse_renames(files: list[tuple[str, bytes]]) -> pl.DataFrame:
    """Rename files ``(label, content)`` → ``RENAME_SCHEMA`` rows (validated, see the module docstring)."""
    rows = []
    for label, content in sorted(files):
        reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
        header = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in ("provider", "old_sku_id", "new_sku_id") if c not in header]
        if missing:
            raise SkuRenameError(f"{label}: header lacks {', '.join(missing)} "
                                 "(expected provider,old_sku_id,new_sku_id[,effective_period])")
        for n, raw in enumerate(reader, start=2):
            r = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not any(r.values()):
                continue
            if not (r["provider"] and r["old_sku_id"] and r["new_sku_id"]):
                raise SkuRenameError(f"{label} row {n}: provider, old_sku_id and new_sku_id are required")
            period = r.get("effective_period") or None
            if period:
                try:
                    BillingPeriod.parse(period, f"{label} row {n}: effective_period")
                except PeriodError as exc:
                    raise SkuRenameError(str(exc)) from None
            if r["old_sku_id"] == r["new_sku_id"]:
                continue
            rows.append((r["provider"], r["old_sku_id"], r["new_sku_id"], period, label))
    return pl.DataFrame(rows, schema=RENAME_SCHEMA, orient="row").unique(
        ["ProviderName", "OldSkuId", "NewSkuId"], keep="first", maintain_order=True)


def rename_files(store, prefix: str = SKU_RENAME_DIR) -> list[tuple[str, bytes]]:
    return [(o.key, store.read_bytes(o.key)) for o in store.list(prefix) if o.key.lower().endswith(".csv")]


def lineage_map(renames: pl.DataFrame | None) -> pl.DataFrame:
    """(ProviderName, SkuId) → x_SkuLineageId (the newest SkuId of its rename chain), for every SkuId
    the rename table names. Raises ``SkuRenameError`` on a fork (one old id, two new ids) or a loop."""
    if renames is None or renames.height == 0:
        return pl.DataFrame(schema={"ProviderName": pl.String, "SkuId": pl.String, "x_SkuLineageId": pl.String})
    nxt: dict[tuple[str, str], str] = {}
    for provider, old, new, _, label in renames.iter_rows():
        seen = nxt.get((provider, old))
        if seen is not None and seen != new:
            raise SkuRenameError(f"{label}: SKU {old} of {provider} is renamed to both {seen} and {new}")
        nxt[(provider, old)] = new
    out = []
    ids = {(p, s) for (p, o), n in nxt.items() for s in (o, n)}
    for provider, sku in sorted(ids):
        chain, cur = [sku], sku
        while (provider, cur) in nxt:
            cur = nxt[(provider, cur)]
            if cur in chain:
                raise SkuRenameError(f"SKU renames of {provider} loop: {' -> '.join([*chain, cur])}")
            chain.append(cur)
        out.append((provider, sku, cur))
    return pl.DataFrame(out, schema={"ProviderName": pl.String, "SkuId": pl.String, "x_SkuLineageId": pl.String},
                        orient="row")


def with_lineage(lf: pl.LazyFrame, renames: pl.DataFrame | None) -> pl.LazyFrame:
    """Adds ``x_SkuLineageId`` (and ``x_PriceKey`` when the frame has ``SkuPriceId``)."""
    mapped = lineage_map(renames)
    out = (lf.join(mapped.lazy(), on=["ProviderName", "SkuId"], how="left")
           .with_columns(pl.coalesce(pl.col("x_SkuLineageId"), pl.col("SkuId")).alias("x_SkuLineageId")))
    if "SkuPriceId" in lf.collect_schema().names():
        sku_prefix = pl.col("SkuPriceId").str.starts_with(pl.col("SkuId"))
        out = out.with_columns(
            pl.when(pl.col("SkuPriceId").is_null()).then(pl.col("x_SkuLineageId"))
            .when(sku_prefix.fill_null(False))
            .then(pl.col("x_SkuLineageId") + pl.col("SkuPriceId").str.slice(pl.col("SkuId").str.len_chars()))
            .otherwise(pl.col("SkuPriceId")).alias("x_PriceKey"))
    return out


# ---------------------------------------------------------------------------------------------
# Catalog and price changes
# ---------------------------------------------------------------------------------------------
def build_catalog(focus: pl.LazyFrame, renames: pl.DataFrame | None = None) -> pl.DataFrame:
    """FOCUS rows (one or more billing periods) → catalog rows (``CATALOG_SCHEMA``)."""
    priced = (focus.filter(pl.col("ChargeCategory").is_in(PRICED_CATEGORIES) & pl.col("SkuId").is_not_null()
                           & ~is_derived_row(pl.col("x_RowId")))
              .select("x_BillingPeriod", "ProviderName", "SkuId", "SkuPriceId", "PricingCurrency", "PricingUnit",
                      "ChargeCategory", "ListUnitPrice", "ContractedUnitPrice", "SkuMeter", "ServiceName", "ServiceCategory",
                      "x_Source"))
    keys = ["x_BillingPeriod", "ProviderName", "SkuId", "SkuPriceId", "PricingCurrency", "PricingUnit", "ChargeCategory"]
    grouped = priced.group_by(keys).agg(
        pl.col("ListUnitPrice").min().alias("ListUnitPrice"),
        pl.col("ListUnitPrice").max().alias("x_ListUnitPriceMax"),
        pl.col("ContractedUnitPrice").min().alias("ContractedUnitPrice"),
        pl.col("ContractedUnitPrice").max().alias("x_ContractedUnitPriceMax"),
        pl.col("SkuMeter").drop_nulls().mode().sort().first().alias("SkuMeter"),
        pl.col("SkuMeter").drop_nulls().unique().sort().alias("x_SkuNames"),
        pl.col("ServiceName").drop_nulls().mode().sort().first().alias("ServiceName"),
        pl.col("ServiceCategory").drop_nulls().mode().sort().first().alias("ServiceCategory"),
        pl.len().cast(pl.Int64).alias("x_Rows"),
        pl.col("x_Source").unique().sort().alias("x_Sources"),
    )
    return (with_lineage(grouped, renames)
            .select([pl.col(c).cast(t) for c, t in CATALOG_SCHEMA.items()])
            .sort(["x_BillingPeriod", "ProviderName", "x_SkuLineageId", "x_PriceKey", "PricingCurrency",
                   "PricingUnit", "ChargeCategory"], nulls_last=True)
            .collect(engine="streaming"))


def relineage(catalog: pl.DataFrame, renames: pl.DataFrame | None) -> pl.DataFrame:
    """Recompute ``x_SkuLineageId`` / ``x_PriceKey`` of stored catalog rows with the current renames."""
    return (with_lineage(catalog.drop("x_SkuLineageId", "x_PriceKey").lazy(), renames)
            .select(CATALOG_SCHEMA.names()).collect())


def price_changes(current: pl.DataFrame, history: pl.DataFrame, renames: pl.DataFrame | None = None, *,
                  categories: tuple[str, ...] = TRACKED_CATEGORIES) -> pl.DataFrame:
    """Rows of ``current`` (of ``categories``: usage rates by default) whose prices differ from the
    latest earlier period of the same price key in ``history`` (catalog rows of any periods;
    lineages recomputed with ``renames``)."""
    current = current.filter(pl.col("ChargeCategory").is_in(list(categories)))
    if current.height == 0 or history.height == 0:
        return pl.DataFrame(schema=PRICE_CHANGE_SCHEMA)
    cur = relineage(current, renames)
    first = cur["x_BillingPeriod"].min()
    hist = relineage(history, renames).filter(pl.col("x_BillingPeriod") < first)
    if hist.height == 0:
        return pl.DataFrame(schema=PRICE_CHANGE_SCHEMA)
    latest = (hist.sort("x_BillingPeriod").group_by(PRICE_KEY, maintain_order=True).last()
              .select(*PRICE_KEY, pl.col("x_BillingPeriod").alias("PreviousPeriod"),
                      pl.col("SkuId").alias("PreviousSkuId"), pl.col("SkuPriceId").alias("PreviousSkuPriceId"),
                      *[pl.col(c).alias(f"Previous{c}") for c in PRICE_COLUMNS]))
    joined = cur.join(latest, on=PRICE_KEY, how="inner", nulls_equal=True)
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"Previous{c}")) for c in PRICE_COLUMNS])
    return (joined.filter(changed).rename({"x_BillingPeriod": "Period"})
            .select(PRICE_CHANGE_SCHEMA.names()).sort("ProviderName", "x_SkuLineageId", "x_PriceKey"))


# ---------------------------------------------------------------------------------------------
# M5: SKU mapping failures
# ---------------------------------------------------------------------------------------------
@dataclass
class SkuMappingReport:
    priced_rows: int
    unmapped_rows: int
    without_sku: int
    fallback_category: int
    examples: list[dict] = field(default_factory=list)  # the most frequent unmapped (service, usage type)

    @property
    def rate(self) -> float:
        return self.unmapped_rows / self.priced_rows if self.priced_rows else 0.0

    @property
    def target(self) -> float:
        return service_levels.target("M5")

    @property
    def ok(self) -> bool:
        return service_levels.meets("M5", self.rate)


def sku_mapping(focus: pl.LazyFrame, *, examples: int = 10) -> SkuMappingReport:
    """M5 over FOCUS rows: Usage / Purchase rows without SkuId or with a fallback ServiceCategory."""
    no_sku, fallback, failed = sku_missing(), service_unmapped(), sku_mapping_failure()
    names = focus.collect_schema().names()
    usage_type = pl.col("x_UsageType") if "x_UsageType" in names else pl.lit(None, pl.String)
    f = focus.filter(sku_mapping_scope())
    counts = f.select(pl.len().alias("priced"), failed.sum().alias("unmapped"),
                      no_sku.sum().alias("no_sku"), fallback.sum().alias("fallback"))
    top = (f.filter(failed)
           .group_by(pl.col("ServiceName"), usage_type.alias("x_UsageType"),
                     pl.when(no_sku).then(pl.lit("no SkuId")).otherwise(pl.lit("fallback ServiceCategory"))
                     .alias("reason"))
           .agg(pl.len().alias("rows"), pl.col("x_RowId").first().alias("example_x_RowId"))
           .sort(["rows", "ServiceName"], descending=[True, False], nulls_last=True).head(examples))
    # each query its own scan: a shared scan would be cached in memory
    c, t = pl.collect_all([counts, top], engine="streaming",
                          optimizations=pl.QueryOptFlags(comm_subplan_elim=False))
    row = c.row(0, named=True)
    return SkuMappingReport(int(row["priced"]), int(row["unmapped"] or 0), int(row["no_sku"] or 0),
                            int(row["fallback"] or 0), t.to_dicts())
