"""Azure cost details → FOCUS 1.2 (``to_focus``): the mapping, apart from the raw side of conservation.

Mapping (``to_focus``): actual + amortized
------------------------------------------
Microsoft's method: the FOCUS rows of a billing account and period are all amortized rows plus the
actual rows that have no amortized counterpart (commitment purchases and refunds). Here BilledCost is
always read from the actual dataset and EffectiveCost from the amortized one, so the totals equal the
two files' totals exactly, also when the two files do not cover the same rows:

* an amortized row is paired with the actual row of the same charge (``raw.charge_identity``; the
  n-th duplicate with the n-th duplicate). Its BilledCost is the actual row's cost (0 for
  commitment-covered usage), its EffectiveCost its own cost. The paired actual row is left out
  (counted as a dropped row in ``raw_totals``; ``x_PairedRowId`` names it).
* an unpaired amortized row has BilledCost 0 (unused commitment and covered usage are billed
  through the purchase; anything else is noted as missing from the actual file).
* an unpaired actual row keeps its cost as BilledCost. A commitment purchase's EffectiveCost is 0
  (amortized onto usage); any other unpaired actual row's amortized cost is not in the data: its
  EffectiveCost is 0, recorded as ``EFFECTIVE_COST_UNKNOWN`` (a provider-data gap).

Partial deliveries (``x_CostMode`` on every row, notes in ``x_SourceChanges`` on every affected row):

* ``actual-only`` (no amortized file for the billing account and period): BilledCost = cost;
  EffectiveCost = cost, except commitment purchases/refunds, whose EffectiveCost is 0 (FOCUS) and
  whose amortized share is missing from the data; covered usage keeps its actual cost (0), recorded
  as ``EFFECTIVE_COST_UNKNOWN`` (its amortized cost is only in the amortized file).
* ``amortized-only`` (no actual file): EffectiveCost = cost; BilledCost = cost except covered usage
  and unused commitment (0); the commitment purchases are not in the data, so the billed total is
  short by them (noted on the commitment rows).

An amortized row whose cost is empty never becomes EffectiveCost 0: it is quarantined
(``raw.quarantine_reason``). A row whose BillingCurrency is the source's declared currency (the
file has no currency column) carries ``DECLARED_CURRENCY_NOTE``.

Other decisions (MAPPINGS.md section 2, the ftk mapping):

* BillingAccountId: EA → the enrollment (``BillingAccountId``, all digits); MCA → the billing profile
  (``BillingProfileId``; the MCA billing account goes to ``x_BillingAccountId``); an export with
  neither (legacy PAYG, CSP customer files) → the subscription, noted. ``x_BillingAccountAgreement``.
* ChargeCategory from ChargeType: Usage, UnusedReservation/UnusedSavingsPlan → Usage (status Unused),
  Purchase, Refund → Purchase with ChargeClass Correction, Tax, Credit; anything else (e.g.
  RoundingAdjustment) → Adjustment. Legacy usage details have no ChargeType: Usage.
* PricingQuantity = Quantity, in the block the price is quoted for: Azure's Quantity and prices are
  per ``UnitOfMeasure`` block (``10K``: a quantity of 0.0004 at 0.1 per 10K costs 0.00004), so
  PricingUnit is the lookup's distinct unit with the block size as a whole-number prefix
  (``10000 Units``, ``100 Hours``; FOCUS unit format allows it), and unit prices stay the price-sheet
  prices (exact Decimal, no division). ConsumedQuantity = Quantity x block size in the distinct unit
  (``x_PricingBlockSize`` keeps the block). Units come from ``azure_pricing_units.csv`` (ftk).
* ListUnitPrice = PayGPrice (x exchange rate for MCA), ContractedUnitPrice = UnitPrice (x rate);
  ListCost / ContractedCost = unit price x PricingQuantity. Azure writes PayGPrice 0 on
  commitment-covered usage and purchases: UnitPrice is used then (noted).
* ChargePeriod = Date .. Date + 1 day; BillingPeriod = BillingPeriodStartDate .. EndDate + 1 day
  (Azure's ends are inclusive), or the calendar month of Date when the export leaves them empty.
* SkuId = ProductId (MCA), else PartNumber, else MeterId; SkuPriceId = SkuId_MeterId_PricingModel_Term
  (the price sheet key; one SkuId per SkuPriceId by construction).
* Services from ``azure_services.csv`` (ConsumedService x resource type, then resource type, then
  ConsumedService), regions from ``azure_regions.csv``, resource types from
  ``azure_resource_types.csv`` (all from the FinOps toolkit open data, MIT).
* Tags: EA JSON without braces is wrapped in ``{}``; a value that is not a flat JSON object is left
  null with a note (the raw value stays in the raw table). AdditionalInfo → ``x_AdditionalInfo``;
  its VMCapacityReservationId → CapacityReservationId.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import polars as pl

from focus_platform.sources.azure_cost.raw import (
    ACTUAL,
    ACTUAL_ONLY,
    AMORTIZED,
    AMORTIZED_ONLY,
    COMMITMENT_MODELS,
    DECLARED_CURRENCY,
    KNOWN_COLUMNS,
    PAIRED,
    PROVIDER,
    RAW_X_COLUMNS,
    UNUSED_TYPES,
    Cols,
    billing_account,
    charge_identity,
    charge_type,
    commitment_id,
    lineage_names,
    period_modes,
    placeholder_to_null,
    pricing_model,
    quarantine_reason,
)
from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    KEY_SEPARATOR,
    UNMAPPED_SERVICE_NOTE,
    blank_to_null,
    by_bucket,
    effective_cost_unknown_note,
    exact_product,
    joined_strings,
    lookup_rows,
    mapped,
    masked_format,
    split_list,
    whitespace_to_null,
    with_derived,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    focus_columns,
    focus_schema,
)

CHARGE_CATEGORY = {"Usage": "Usage", "UnusedReservation": "Usage", "UnusedSavingsPlan": "Usage",
                   "Purchase": "Purchase", "Refund": "Purchase", "Tax": "Tax", "Credit": "Credit"}

# FOCUS-output x_ columns of this format (after focus_schema()), with their raw source
AZURE_X_COLUMNS: dict[str, pl.DataType] = {
    "x_CostDataset": pl.String, "x_CostMode": pl.String, "x_PairedRowId": pl.String,
    "x_BillingAccountAgreement": pl.String, "x_BillingAccountId": pl.String, "x_BillingAccountName": pl.String,
    "x_BillingProfileId": pl.String, "x_BillingProfileName": pl.String, "x_InvoiceSectionId": pl.String,
    "x_InvoiceSectionName": pl.String, "x_ResourceGroupName": pl.String, "x_CostCenter": pl.String,
    "x_PricingModel": pl.String, "x_MeterId": pl.String, "x_MeterCategory": pl.String,
    "x_MeterSubCategory": pl.String, "x_MeterName": pl.String, "x_MeterRegion": pl.String,
    "x_UnitOfMeasure": pl.String, "x_PricingBlockSize": MONEY, "x_EffectiveUnitPrice": MONEY,
    "x_CostInUsd": MONEY, "x_ExchangeRatePricingToBilling": MONEY, "x_PublisherType": pl.String,
    "x_ResourceLocation": pl.String, "x_AdditionalInfo": pl.String,
}
_X_SOURCES = {
    "x_BillingAccountId": "BillingAccountId", "x_BillingAccountName": "BillingAccountName",
    "x_BillingProfileId": "BillingProfileId", "x_BillingProfileName": "BillingProfileName",
    "x_InvoiceSectionId": "InvoiceSectionId", "x_InvoiceSectionName": "InvoiceSectionName",
    "x_ResourceGroupName": "ResourceGroup", "x_CostCenter": "CostCenter", "x_PricingModel": "PricingModel",
    "x_MeterId": "MeterId", "x_MeterCategory": "MeterCategory", "x_MeterSubCategory": "MeterSubCategory",
    "x_MeterName": "MeterName", "x_MeterRegion": "MeterRegion", "x_UnitOfMeasure": "UnitOfMeasure",
    "x_EffectiveUnitPrice": "EffectivePrice", "x_CostInUsd": "CostInUsd",
    "x_ExchangeRatePricingToBilling": "ExchangeRatePricingToBilling", "x_PublisherType": "PublisherType",
    "x_ResourceLocation": "ResourceLocation", "x_AdditionalInfo": "AdditionalInfo",
}
# raw columns added by scan_raw (besides the lineage columns)



# ---------------------------------------------------------------------------------------------
# Lookups (FinOps toolkit open data, MIT; see tests/fixtures/azure/README.md)
# ---------------------------------------------------------------------------------------------
@cache
def pricing_units() -> dict[str, tuple[int, str]]:
    """UnitOfMeasure as delivered -> (pricing block size, distinct unit)."""
    return {r["unit_of_measure"]: (int(r["pricing_block_size"]), r["distinct_units"])
            for r in lookup_rows("azure_pricing_units.csv")}


def pricing_unit_name(block: int, distinct: str) -> str:
    return distinct if block == 1 else f"{block} {distinct}"


@cache
def _unit_tables() -> tuple[dict[str, dict], dict[str, dict]]:
    """UnitOfMeasure -> {block, pricing_unit, distinct_unit}: by the exact spelling, and by the
    trimmed lower-case spelling (the first unit of that spelling wins)."""
    exact = {unit: {"block": block, "pricing_unit": pricing_unit_name(block, distinct), "distinct_unit": distinct}
             for unit, (block, distinct) in pricing_units().items()}
    folded: dict[str, dict] = {}
    for unit, row in exact.items():
        folded.setdefault(unit.strip().lower(), row)
    return exact, folded


@cache
def region_table() -> dict[str, tuple[str, str]]:
    return {r["original_value"]: (r["region_id"], r["region_name"]) for r in lookup_rows("azure_regions.csv")}


@cache
def service_rows() -> list[dict[str, str]]:
    return lookup_rows("azure_services.csv")




@cache
def _service_tables() -> tuple[dict[str, dict], dict[str, dict], dict[str, dict], dict[str, dict]]:
    """Service rows by: (consumed service, type) as one key joined by KEY_SEPARATOR; type; consumed
    service (its most common service); service name (names are unique to one category in the table)."""
    rows = service_rows()
    by_pair = {KEY_SEPARATOR.join((r["consumed_service"], r["resource_type"])): r
               for r in rows if r["consumed_service"]}
    by_type: dict[str, dict] = {}
    for r in rows:
        by_type.setdefault(r["resource_type"], r)
    counts: dict[str, dict[str, int]] = {}
    first: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["consumed_service"]:
            counts.setdefault(r["consumed_service"], {}).setdefault(r["service_name"], 0)
            counts[r["consumed_service"]][r["service_name"]] += 1
            first.setdefault((r["consumed_service"], r["service_name"]), r)
    by_cs = {cs: first[(cs, max(sorted(names), key=lambda n: names[n]))] for cs, names in counts.items()}
    by_name = {r["service_name"]: r for r in rows}
    return by_pair, by_type, by_cs, by_name


@cache
def resource_type_names() -> dict[str, str]:
    return {r["resource_type"]: r["display_name"] for r in lookup_rows("azure_resource_types.csv")}


# ---------------------------------------------------------------------------------------------
# Pairing actual and amortized rows
# ---------------------------------------------------------------------------------------------
def _prepare(raw: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """The raw rows with the __ columns that decide accounts, modes and costs."""
    col = Cols(schema)
    acct, acct_name, acct_type, agreement = billing_account(col)
    ct = charge_type(col)
    pm = pricing_model(col("PricingModel"))
    cd_id = commitment_id(col)
    return raw.with_columns(
        acct.alias("__acct"), acct_name.alias("__acct_name"), acct_type.alias("__acct_type"),
        agreement.alias("__agreement"), ct.alias("__ct"), pm.alias("__pm"), cd_id.alias("__cd_id"),
        col("CostInBillingCurrency").alias("__cost"),
    ).with_columns(
        (pl.col("__ct").is_in(["Purchase", "Refund"])
         & (pl.col("__cd_id").is_not_null() | pl.col("__pm").is_in(COMMITMENT_MODELS)).fill_null(False))
        .alias("__commit_purchase"),
        ((pl.col("__ct") == "Usage") & pl.col("__pm").is_in(COMMITMENT_MODELS).fill_null(False)).alias("__covered"),
        pl.col("__ct").is_in(UNUSED_TYPES).alias("__unused"),
    )


_MODE_KEYS = ["__acct", "x_BillingPeriod"]
# a raw row in the pairs: its position among the partition's raw rows (``__pos``, the same in every
# pass over them) and a 64-bit hash of its x_RowId (``__rk``), which a match found by position must
# repeat (integers hold far cheaper than the x_RowId text)
_ROW_KEY = ["__pos", "__rk"]
_PAIR_SCHEMA = {"__pos": pl.UInt32, "__rk": pl.UInt64, "__pair_row": pl.String, "__pair_cost": MONEY}
_DROPPED_SCHEMA = {"__pos": pl.UInt32, "__rk": pl.UInt64}


def _row_key() -> pl.Expr:
    return pl.col("x_RowId").hash(3).alias("__rk")


@dataclass(frozen=True)
class _Pairing:
    """What a raw partition's actual and amortized rows are to each other: the mode of each billing
    account and period (paired, actual-only, amortized-only) and the pairs (``_pairing``)."""

    modes: pl.DataFrame
    pairs: pl.DataFrame  # _PAIR_SCHEMA: amortized rows and the cost and x_RowId of their actual row
    dropped: pl.DataFrame  # _DROPPED_SCHEMA: the actual rows their amortized row stands for
    rows: int  # the raw rows (positions 0 to rows - 1)

    def matched(self) -> list[pl.Expr]:
        """Of a raw row (``__pos``, ``__rk``): ``__paired``, ``__pair_row``, ``__pair_cost`` and
        ``__dropped``, looked up by its position in an index of the raw rows (4 bytes a row: a pair's
        number, or the pairs' count plus a dropped row's number) rather than joined: a join of the
        partition's rows with the matches held several times the matches (5 M real rows: +650 MB,
        against +30 MB at 1 M). A match whose row key differs from the row's is not taken: a position
        that does not name the same row drops no row and pairs none, and the row-count and cost gates
        say so."""
        pairs = self.pairs.height  # as many as the dropped rows: each pair drops its actual row
        if not pairs:
            return [pl.lit(False).alias("__paired"), pl.lit(None, pl.String).alias("__pair_row"),
                    pl.lit(None, MONEY).alias("__pair_cost"), pl.lit(False).alias("__dropped")]
        index = pl.Series("__match", [None] * self.rows, dtype=pl.UInt32).scatter(
            pl.concat([self.pairs["__pos"], self.dropped["__pos"]]),
            pl.int_range(pairs + self.dropped.height, dtype=pl.UInt32, eager=True))
        at = pl.lit(index).gather(pl.col("__pos"))
        pair_at, dropped_at = pl.when(at < pairs).then(at), pl.when(at >= pairs).then(at - pairs)
        pair = pl.when(pl.lit(self.pairs["__rk"]).gather(pair_at) == pl.col("__rk")).then(pair_at)
        return [pair.is_not_null().alias("__paired"),
                pl.lit(self.pairs["__pair_row"]).gather(pair).alias("__pair_row"),
                pl.lit(self.pairs["__pair_cost"]).gather(pair).alias("__pair_cost"),
                (pl.lit(self.dropped["__rk"]).gather(dropped_at) == pl.col("__rk")).fill_null(False)
                .alias("__dropped")]


def _narrow(raw: pl.LazyFrame, col: Cols, schema: pl.Schema, paired_periods: pl.DataFrame) -> pl.LazyFrame:
    """The valid rows of paired periods as the pairing needs them: integers, flags and categories
    (the x_RowId text and the cost only on actual-cost rows, the only ones a pair takes them from)."""
    actual = pl.col("x_CostDataset") == ACTUAL
    key = charge_identity(col)
    return (raw.select(billing_account(col)[0].cast(pl.Categorical).alias("__acct"),
                       pl.col("x_BillingPeriod").cast(pl.Categorical), actual.alias("__actual"),
                       quarantine_reason(schema).is_null().alias("__ok"),
                       key.hash(11).alias("__h1"), key.hash(29).alias("__h2"), "__pos", _row_key(),
                       pl.when(actual).then(pl.col("x_RowId")).alias("__pair_row"),
                       pl.when(actual).then(col("CostInBillingCurrency")).alias("__pair_cost"))
            .filter(pl.col("__ok"))
            .join(paired_periods.lazy(), on=_MODE_KEYS, how="semi", nulls_equal=True)
            .drop("__acct", "x_BillingPeriod", "__ok"))


def _pairs(narrow: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pairs and the dropped actual rows of the charges of one bucket of ``_narrow`` rows."""
    narrow = _numbered_occurrences(narrow, ["__actual", "__h1", "__h2"])
    on = ["__h1", "__h2", "__occ"]
    actual_rows = narrow.filter(pl.col("__actual")).select(
        *on, pl.col("__pos").alias("__pair_pos"), pl.col("__rk").alias("__pair_rk"),
        "__pair_row", "__pair_cost")
    pairs = narrow.filter(~pl.col("__actual")).select(*on, *_ROW_KEY).join(actual_rows, on=on, how="inner")
    return (pairs.select(*_ROW_KEY, "__pair_row", "__pair_cost").cast(_PAIR_SCHEMA),
            pairs.select(pl.col("__pair_pos").alias("__pos"), pl.col("__pair_rk").alias("__rk")).cast(_DROPPED_SCHEMA))


def _numbered_occurrences(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``frame`` with ``__occ``: the occurrence of its key so far (0 for the first row of a key, 1 for
    its second, ... in frame order), numbered over the frame sorted by key (a stable sort, then the
    distance to the run's first row: about a third of the time a window over the keys takes)."""
    ordered = frame.sort(keys, maintain_order=True)
    index = pl.int_range(pl.len(), dtype=pl.UInt32)
    run_starts = pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift()) for k in keys)
    return ordered.with_columns((index - pl.when(run_starts).then(index).forward_fill()).alias("__occ"))


def _pairing(raw: pl.LazyFrame, schema: pl.Schema) -> _Pairing:
    """The modes (one small pass) and the pairs, per bucket of charges (``common.by_bucket`` by a hash
    of the charge identity, so a charge's rows meet in one bucket: one narrow pass writes the buckets
    apart). Keys are two independent 64-bit hashes of the charge identity (``raw.charge_identity``);
    the n-th duplicate key of one dataset pairs with the n-th of the other, in file order."""
    col = Cols(schema)
    modes = period_modes(raw.with_columns(billing_account(col)[0].alias("__acct")), "__acct").collect(
        engine="streaming")
    paired_periods = modes.filter(pl.col("__mode") == PAIRED).select(
        *[pl.col(k).cast(pl.Categorical) for k in _MODE_KEYS])
    if paired_periods.is_empty():
        return _Pairing(modes, pl.DataFrame(schema=_PAIR_SCHEMA), pl.DataFrame(schema=_DROPPED_SCHEMA), 0)
    rows = raw.select(pl.len()).collect(engine="streaming").item()
    narrow = _narrow(raw, col, schema, paired_periods)
    pairs, dropped = zip(*[_pairs(bucket) for bucket in by_bucket(narrow, pl.col("__h1"), rows)])
    return _Pairing(modes, pl.concat(pairs), pl.concat(dropped), rows)


def _with_modes(raw: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.Schema, _Pairing]:
    """The raw rows with ``__pos`` (their position: the pairing and the mapping number the same rows
    in the same order), the modes and the __ columns of ``_prepare``; the raw schema; the pairing."""
    schema = raw.collect_schema()
    numbered = raw.with_row_index("__pos")
    pairing = _pairing(numbered, schema)
    with_mode = _prepare(numbered, schema).join(pairing.modes.lazy(), on=_MODE_KEYS, how="left",
                                                nulls_equal=True, maintain_order="left")
    return with_mode, schema, pairing



# ---------------------------------------------------------------------------------------------
# Raw → FOCUS
# ---------------------------------------------------------------------------------------------
SERVICE_FIELDS = ("service_name", "service_category", "service_subcategory")
UNIT_FIELDS = ("block", "pricing_unit", "distinct_unit")
_FIELD_TYPES = {"block": pl.Int64}  # the other fields are text


def _looked_up(key: pl.Expr, table: dict[str, dict], prefix: str, fields: tuple[str, ...]) -> list[pl.Expr]:
    """The fields of the table's row for ``key`` (null without one) as ``<prefix><field>`` columns."""
    return [mapped(key, {k: row[f] for k, row in table.items()}, _FIELD_TYPES.get(f, pl.String)).alias(prefix + f)
            for f in fields]


def _with_lookups(frame: pl.LazyFrame, col: Cols) -> pl.LazyFrame:
    """The lookup tables looked up into __ columns (service, region, resource type)."""
    by_pair, by_type, by_cs, by_name = _service_tables()
    regions = region_table()
    resource_id = col("ResourceId")
    # namespace/type/name/type/name... -> namespace/type/type (one regex pass: list ops cost 2.5x)
    provider_path = resource_id.str.extract(r"(?i)/providers/(.+)$", 1)
    arm_type = pl.when(provider_path.str.contains("/", literal=True)).then(
        provider_path.str.replace_all(r"(/[^/]*)/[^/]*", "$1").str.to_lowercase().str.strip_chars("/"))
    keyed = frame.with_columns(
        col("ConsumedService").str.to_lowercase().alias("__cs"),
        arm_type.alias("__arm_type"),
        col("ResourceLocation").str.strip_chars().str.to_lowercase().alias("__location"),
    )
    cs, arm_type, location = pl.col("__cs"), pl.col("__arm_type"), pl.col("__location")
    keyed = keyed.with_columns(
        *_looked_up(pl.concat_str([cs, arm_type], separator=KEY_SEPARATOR), by_pair, "__p_", SERVICE_FIELDS),
        *_looked_up(arm_type, by_type, "__t_", SERVICE_FIELDS),
        *_looked_up(cs, by_cs, "__c_", SERVICE_FIELDS),
        mapped(location, {k: v[0] for k, v in regions.items()}).alias("__region_id"),
        mapped(location, {k: v[1] for k, v in regions.items()}).alias("__region_name"),
        mapped(arm_type, resource_type_names()).alias("__type_name"),
    )
    fallback_name = pl.coalesce(pl.col("__p_service_name"), pl.col("__t_service_name"), pl.col("__c_service_name"),
                                placeholder_to_null(col("MeterCategory")), col("ServiceName"),
                                col("ConsumedService"), placeholder_to_null(col("ProductName")), col("PublisherName"))
    return keyed.with_columns(fallback_name.alias("__fallback_name")).with_columns(
        _looked_up(pl.col("__fallback_name"), by_name, "__n_", ("service_category", "service_subcategory")))


_UNIT_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([KkMm]?)\s*(.*?)\s*$"


def _units(uom: pl.Expr) -> dict[str, pl.Expr]:
    """Block size, pricing unit, distinct unit and parsed? of a UnitOfMeasure (per distinct value,
    ``with_derived``): the pricing-units table (exact, then case- and space-folded), else parsed from
    the text ('5 GB' -> 5, GB), null for placeholders ('0 Unassigned')."""
    exact_units, folded_units = _unit_tables()
    exact = dict(zip(UNIT_FIELDS, _looked_up(uom, exact_units, "", UNIT_FIELDS)))
    folded = dict(zip(UNIT_FIELDS, _looked_up(uom.str.strip_chars().str.to_lowercase(), folded_units, "", UNIT_FIELDS)))
    placeholder = uom.str.to_lowercase().str.contains("unassigned").fill_null(False)
    number = uom.str.extract(_UNIT_PATTERN, 1).cast(pl.Float64, strict=False)
    suffix = uom.str.extract(_UNIT_PATTERN, 2).str.to_uppercase()
    rest = uom.str.extract(_UNIT_PATTERN, 3)
    parsed_block = (number * pl.when(suffix == "K").then(1000).when(suffix == "M").then(1_000_000).otherwise(1))
    parsed_block = pl.when((parsed_block >= 1) & (parsed_block == parsed_block.round(0))).then(
        parsed_block.cast(pl.Int64))
    parsed_unit = (pl.when(rest.is_null() | (rest == "")).then(pl.lit("Units"))
                   .when(rest.str.starts_with("/")).then(pl.concat_str([pl.lit("Units"), rest]))
                   .otherwise(rest))
    from_number = number.is_not_null()
    block = pl.coalesce(exact["block"], folded["block"],
                        pl.when(from_number).then(parsed_block).when(uom.is_not_null()).then(pl.lit(1, pl.Int64)))
    distinct = pl.coalesce(exact["distinct_unit"], folded["distinct_unit"],
                           pl.when(from_number).then(parsed_unit).otherwise(uom))
    unit = pl.coalesce(exact["pricing_unit"], folded["pricing_unit"],
                       pl.when(block == 1).then(distinct).otherwise(
                           pl.concat_str([block.cast(pl.String), pl.lit(" "), distinct])))
    parsed = exact["block"].is_null() & folded["block"].is_null() & uom.is_not_null()
    return {"__unit_block": pl.when(placeholder).then(None).otherwise(block),
            "__unit_pricing": pl.when(placeholder | block.is_null()).then(None).otherwise(unit),
            "__unit_distinct": pl.when(placeholder | block.is_null()).then(None).otherwise(distinct),
            "__unit_parsed": parsed & ~placeholder}


def _additional_info(info: pl.Expr) -> dict[str, pl.Expr]:
    """The AdditionalInfo fields FOCUS takes (per distinct value, ``with_derived``)."""
    additional = blank_to_null(info.str.strip_chars())
    return {"__capacity_id": blank_to_null(additional.str.json_path_match("$.VMCapacityReservationId")),
            "__usage_type": blank_to_null(additional.str.json_path_match("$.UsageType"))}


# Flat JSON object of scalar values (FOCUS key-value format)
_JSON_STR = r'"(?:[^"\\]|\\.)*"'
_JSON_VAL = rf'(?:{_JSON_STR}|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)'
_JSON_PAIR = rf'\s*{_JSON_STR}\s*:\s*{_JSON_VAL}\s*'
FLAT_JSON_OBJECT = rf'^\{{(?:{_JSON_PAIR}(?:,{_JSON_PAIR})*|\s*)\}}$'


def _tags(delivered: pl.Expr) -> dict[str, pl.Expr]:
    """FOCUS Tags and their note (per distinct value, ``with_derived``): EA JSON without braces
    wrapped; empty objects null; invalid left null."""
    text = blank_to_null(delivered.str.strip_chars())
    wrapped = pl.when(text.str.starts_with("{")).then(text).otherwise(pl.concat_str([pl.lit("{"), text, pl.lit("}")]))
    valid = wrapped.str.contains(FLAT_JSON_OBJECT)
    empty = wrapped.str.contains(r"^\{\s*\}$")
    why = (pl.when(text.is_not_null() & ~valid)
            .then(pl.lit("Tags: delivered value is not a JSON object of tags; left null (kept in the raw table)"))
            .when(text.is_not_null() & ~text.str.starts_with("{"))
            .then(pl.lit("Tags: EA tags without braces wrapped in {}")))
    return {"__tags": pl.when(valid & ~empty).then(wrapped), "__tags_note": why}


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows (actual and amortized files of a partition) as FOCUS 1.2 rows."""
    with_mode, schema, pairing = _with_modes(raw)
    col = Cols(schema)
    rows = (with_mode.filter(quarantine_reason(schema).is_null())
            .with_columns(_row_key())
            .with_columns(pairing.matched())
            .filter(~pl.col("__dropped")))
    rows = _with_lookups(rows, col)
    for key, derive in ((col("UnitOfMeasure"), _units), (col("AdditionalInfo"), _additional_info), (col("Tags"), _tags)):
        rows = with_derived(rows, key, derive)
    zero = pl.lit(0, MONEY)
    cost, mode, ds = pl.col("__cost"), pl.col("__mode"), pl.col("x_CostDataset")
    ct, pm, cd_id = pl.col("__ct"), pl.col("__pm"), pl.col("__cd_id")
    covered, unused, commit_purchase = pl.col("__covered"), pl.col("__unused"), pl.col("__commit_purchase")
    paired_row = pl.col("__paired")

    # --- costs ---------------------------------------------------------------------------------
    billed = (pl.when(mode == PAIRED).then(pl.when(ds == ACTUAL).then(cost).otherwise(
        pl.when(paired_row).then(pl.col("__pair_cost")).otherwise(zero)))
        .when(mode == AMORTIZED_ONLY).then(pl.when(covered | unused).then(zero).otherwise(cost))
        .otherwise(cost))
    effective = (pl.when(commit_purchase).then(zero)
                 .when((mode == PAIRED) & (ds == ACTUAL)).then(zero).otherwise(cost))
    repriced = (mode == PAIRED) & paired_row & (pl.col("__pair_cost") != cost)
    billed_note = (
        pl.when(repriced).then(masked_format(
            repriced, "BilledCost: {} from the paired actual-cost row {} (this amortized row costs {})",
            pl.col("__pair_cost"), pl.col("__pair_row"), cost))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & unused & (cost != 0))
        .then(pl.lit("BilledCost: 0, unused commitment (billed through its purchase in the actual-cost file)"))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & covered & (cost != 0))
        .then(pl.lit("BilledCost: 0, commitment-covered usage without a paired actual-cost row "
                     "(prepaid by the commitment purchase)"))
        .when((mode == PAIRED) & (ds == AMORTIZED) & ~paired_row & (cost != 0))
        .then(pl.lit("BilledCost: 0, no matching row in the actual-cost file of this billing account and period"))
        .when((mode == AMORTIZED_ONLY) & (covered | unused) & (cost != 0))
        .then(pl.lit("BilledCost: 0, commitment-covered or unused commitment; amortized-cost file without its "
                     "actual file: the commitment purchase billed for it is not in this data"))
    )
    effective_note = pl.coalesce(
        pl.when(commit_purchase & (mode == ACTUAL_ONLY) & (cost != 0))
        .then(pl.lit("EffectiveCost: 0, commitment purchase; actual-cost file without its amortized file: "
                     "the amortized cost of this commitment is not in this data"))
        .when(commit_purchase & (cost != 0))
        .then(pl.lit("EffectiveCost: 0, commitment purchase (amortized onto usage in the amortized-cost file)"))
        .when((mode == ACTUAL_ONLY) & covered & (cost != 0))
        .then(pl.lit("EffectiveCost: actual cost of commitment-covered usage; actual-cost file without its "
                     "amortized file: the amortized share is not in this data")),
        effective_cost_unknown_note(~commit_purchase & (mode == PAIRED) & (ds == ACTUAL),
                                    "CostInBillingCurrency of the amortized-cost row (no matching row in the "
                                    "amortized-cost file of this billing account and period)"),
        effective_cost_unknown_note(covered & (mode == ACTUAL_ONLY) & (cost == 0),
                                    "CostInBillingCurrency of the amortized-cost file (commitment-covered "
                                    "usage; the actual-cost file came without it, so the amortized share is "
                                    "not in this data)"),
    )

    # --- classification ------------------------------------------------------------------------
    charge_category = _charge_category(ct)
    is_usage, is_purchase = charge_category == "Usage", charge_category == "Purchase"
    is_tax = charge_category == "Tax"
    priced = is_usage | is_purchase
    correction = ct == "Refund"
    frequency_key = col("Frequency").str.to_lowercase().str.replace_all(r"[^a-z]", "")
    frequency_raw = (pl.when(frequency_key == "onetime").then(pl.lit("One-Time"))
                     .when(frequency_key == "recurring").then(pl.lit("Recurring"))
                     .when(frequency_key == "usagebased").then(pl.lit("Usage-Based")))
    frequency = (pl.when(is_purchase & (frequency_raw == "Usage-Based")).then(pl.lit("Recurring"))
                 .when(frequency_raw.is_not_null()).then(frequency_raw)
                 .when(is_purchase).then(pl.lit("One-Time"))
                 .when(is_usage).then(pl.lit("Usage-Based")).otherwise(pl.lit("One-Time")))
    pricing_category = (
        pl.when(~priced).then(None)
        .when(is_purchase & pm.is_in(COMMITMENT_MODELS)).then(pl.lit("Standard"))
        .when(unused).then(pl.lit("Committed"))
        .when(pm == "spot").then(pl.lit("Dynamic"))
        .when(pm.is_in(COMMITMENT_MODELS)).then(pl.lit("Committed"))
        .otherwise(pl.lit("Standard")))
    cd_path = cd_id.str.to_lowercase()
    cd_reservation = (cd_path.str.contains("/microsoft.capacity/", literal=True)
                      | (~cd_path.str.contains("/microsoft.billingbenefits/", literal=True)
                         & ((pm == "reservation") | (ct == "UnusedReservation"))))
    cd_savings_plan = cd_path.str.contains("/microsoft.billingbenefits/", literal=True) | (
        ~cd_reservation.fill_null(False) & ((pm == "savingsplan") | (ct == "UnusedSavingsPlan")))
    cd_kind = (pl.when(cd_id.is_null()).then(None).when(cd_reservation.fill_null(False)).then(pl.lit("ri"))
               .when(cd_savings_plan.fill_null(False)).then(pl.lit("sp")).otherwise(pl.lit("ri")))
    cd_kind_guessed = cd_id.is_not_null() & ~cd_reservation.fill_null(False) & ~cd_savings_plan.fill_null(False)

    # --- quantities and units ------------------------------------------------------------------
    block, pricing_unit, distinct_unit, unit_parsed = (
        pl.col(c) for c in ("__unit_block", "__unit_pricing", "__unit_distinct", "__unit_parsed"))
    quantity = col("Quantity")
    pricing_quantity = pl.when(priced).then(quantity)
    consumed_quantity = pl.when(is_usage & ~unused & quantity.is_not_null() & block.is_not_null()).then(
        exact_product(quantity, block))
    currency = col("BillingCurrency")
    pricing_currency = pl.coalesce(col("PricingCurrency"), currency)
    same_currency = pricing_currency == currency
    rate = pl.when(same_currency).then(pl.lit(1, MONEY)).otherwise(col("ExchangeRatePricingToBilling"))

    # --- prices --------------------------------------------------------------------------------
    payg, unit_price, effective_price = col("PayGPrice"), col("UnitPrice"), col("EffectivePrice")
    payg_missing = payg.is_null() | ((payg == 0) & (unit_price > 0).fill_null(False))
    list_pc = pl.when(priced).then(pl.when(~payg_missing).then(payg).otherwise(pl.coalesce(unit_price, effective_price)))
    contracted_pc = pl.when(priced).then(pl.coalesce(unit_price, effective_price))
    list_unit_price = exact_product(list_pc, rate)
    contracted_unit_price = exact_product(contracted_pc, rate)
    list_product = exact_product(list_unit_price, pricing_quantity)
    contracted_product = exact_product(contracted_unit_price, pricing_quantity)
    list_cost = (pl.when(~priced).then(billed)
                 .otherwise(pl.coalesce(list_product, col("PaygCostInBillingCurrency"), effective)))
    contracted_cost = pl.when(~priced).then(billed).otherwise(pl.coalesce(contracted_product, effective))
    pc_effective = (pl.when(effective == 0).then(zero).when(same_currency).then(effective)
                    .otherwise(col("CostInPricingCurrency")))

    # --- commitment quantity -------------------------------------------------------------------
    cd_quantity = (pl.when(cd_id.is_null() | ~priced | correction).then(None)
                   .when(cd_kind == "sp").then(pl.when(is_purchase).then(billed).otherwise(effective))
                   .otherwise(quantity))
    cd_unit = (pl.when(cd_quantity.is_null()).then(None).when(cd_kind == "sp").then(currency)
               .otherwise(pricing_unit))

    # --- service, region, resource -------------------------------------------------------------
    service_name = pl.coalesce(pl.col("__p_service_name"), pl.col("__t_service_name"), pl.col("__c_service_name"),
                               pl.col("__fallback_name"))
    service_category = pl.coalesce(pl.col("__p_service_category"), pl.col("__t_service_category"),
                                   pl.col("__c_service_category"), pl.col("__n_service_category"), pl.lit("Other"))
    service_subcategory = pl.coalesce(pl.col("__p_service_subcategory"), pl.col("__t_service_subcategory"),
                                      pl.col("__c_service_subcategory"), pl.col("__n_service_subcategory"),
                                      pl.lit("Other (Other)"))
    service_unmapped = (pl.col("__p_service_name").is_null() & pl.col("__t_service_name").is_null()
                        & pl.col("__c_service_name").is_null() & pl.col("__n_service_category").is_null())
    location = blank_to_null(col("ResourceLocation").str.strip_chars())
    region_id = pl.when(location.is_not_null()).then(
        pl.coalesce(pl.col("__region_id"), location.str.to_lowercase().str.replace_all(" ", "")))
    region_name = pl.when(location.is_not_null()).then(pl.coalesce(pl.col("__region_name"), location))
    resource_id = col("ResourceId")
    resource_name = pl.when(resource_id.is_not_null()).then(
        pl.coalesce(col("ResourceName"), resource_id.str.extract(r"/([^/]+)$", 1)))
    resource_type = pl.when(resource_id.is_not_null()).then(
        pl.coalesce(pl.col("__type_name"), pl.col("__arm_type"), col("ResourceType"), service_name,
                    col("ConsumedService")))
    meter_id = placeholder_to_null(col("MeterId"))
    sku = pl.when(is_tax).then(None).otherwise(pl.coalesce(placeholder_to_null(col("ProductId")),
                                                           placeholder_to_null(col("PartNumber")), meter_id))
    sku_price = pl.when(sku.is_null()).then(None).otherwise(pl.concat_str(
        [sku, pl.when(meter_id != sku).then(meter_id), col("PricingModel"), col("Term")],
        separator="_", ignore_nulls=True))
    tags, tags_note = pl.col("__tags"), pl.col("__tags_note")
    capacity_id = pl.col("__capacity_id")
    capacity_status = pl.when(capacity_id.is_not_null() & is_usage).then(
        pl.when(resource_id.str.to_lowercase().str.contains("/capacityreservationgroups/", literal=True)
                .fill_null(False)).then(pl.lit("Unused")).otherwise(pl.lit("Used")))
    date = col("Date")
    bp_start_raw, bp_end_raw = col("BillingPeriodStartDate"), col("BillingPeriodEndDate")
    bp_start = pl.coalesce(bp_start_raw, date.dt.truncate("1mo"))
    bp_end = pl.coalesce(bp_end_raw.dt.offset_by("1d"), date.dt.truncate("1mo").dt.offset_by("1mo"))
    invoice_issuer = pl.coalesce(col("PartnerName"), pl.lit(PROVIDER))
    publisher = pl.coalesce(col("PublisherName"), pl.lit(PROVIDER))
    subscription = col("SubscriptionId")

    focus = {
        "AvailabilityZone": col("AvailabilityZone"),
        "BilledCost": billed,
        "BillingAccountId": pl.col("__acct"),
        "BillingAccountName": pl.col("__acct_name"),
        "BillingAccountType": pl.col("__acct_type"),
        "BillingCurrency": currency,
        "BillingPeriodEnd": bp_end,
        "BillingPeriodStart": bp_start,
        "CapacityReservationId": capacity_id,
        "CapacityReservationStatus": capacity_status,
        "ChargeCategory": charge_category,
        "ChargeClass": pl.when(correction).then(pl.lit("Correction")),
        "ChargeDescription": pl.coalesce(placeholder_to_null(col("ProductName")), col("MeterName")),
        "ChargeFrequency": frequency,
        "ChargePeriodEnd": date.dt.offset_by("1d"),
        "ChargePeriodStart": date,
        "CommitmentDiscountCategory": pl.when(cd_kind == "ri").then(pl.lit("Usage"))
        .when(cd_kind == "sp").then(pl.lit("Spend")),
        "CommitmentDiscountId": cd_id,
        "CommitmentDiscountName": pl.when(cd_id.is_not_null()).then(
            pl.coalesce(col("BenefitName"), col("ReservationName"))),
        "CommitmentDiscountQuantity": cd_quantity,
        "CommitmentDiscountStatus": pl.when(cd_id.is_not_null() & is_usage).then(
            pl.when(unused).then(pl.lit("Unused")).otherwise(pl.lit("Used"))),
        "CommitmentDiscountType": pl.when(cd_kind == "ri").then(pl.lit("Reservation"))
        .when(cd_kind == "sp").then(pl.lit("Savings Plan")),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": consumed_quantity,
        "ConsumedUnit": pl.when(consumed_quantity.is_not_null()).then(distinct_unit),
        "ContractedCost": contracted_cost,
        "ContractedUnitPrice": contracted_unit_price,
        "EffectiveCost": effective,
        "InvoiceId": col("InvoiceId"),
        "InvoiceIssuerName": invoice_issuer,
        "ListCost": list_cost,
        "ListUnitPrice": list_unit_price,
        "PricingCategory": pricing_category,
        "PricingCurrency": pricing_currency,
        "PricingCurrencyContractedUnitPrice": contracted_pc,
        "PricingCurrencyEffectiveCost": pc_effective,
        "PricingCurrencyListUnitPrice": list_pc,
        "PricingQuantity": pricing_quantity,
        "PricingUnit": pl.when(pricing_quantity.is_not_null()).then(pricing_unit),
        "ProviderName": pl.lit(PROVIDER),
        "PublisherName": publisher,
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": resource_name,
        "ResourceType": resource_type,
        "ServiceCategory": service_category,
        "ServiceName": service_name,
        "ServiceSubcategory": service_subcategory,
        "SkuId": pl.when(priced).then(sku),
        "SkuMeter": pl.when(priced & sku.is_not_null()).then(col("MeterName")),
        "SkuPriceDetails": pl.lit(None, pl.String),
        "SkuPriceId": pl.when(priced).then(sku_price),
        "SubAccountId": subscription,
        "SubAccountName": pl.when(subscription.is_not_null()).then(col("SubscriptionName")),
        "SubAccountType": pl.when(subscription.is_not_null()).then(pl.lit("Subscription")),
        "Tags": tags,
        "x_ChargeType": col("ChargeType"),
        "x_ServiceCode": col("ConsumedService"),
        "x_UsageType": pl.col("__usage_type"),
        "x_Operation": pl.lit(None, pl.String),
        "x_CostCategories": pl.lit(None, pl.String),
    }
    changes = [
        billed_note,
        effective_note,
        pl.when(col(DECLARED_CURRENCY).is_not_null()).then(pl.lit(DECLARED_CURRENCY_NOTE)),
        tags_note,
        pl.when(pl.col("__agreement") == "Subscription").then(pl.lit(
            "BillingAccountId: the export carries no billing account or billing profile; the subscription "
            "is the billing scope")),
        pl.when(col("ChargeType").is_null()).then(pl.lit(
            "ChargeCategory: no ChargeType (legacy usage details list usage only); Usage")),
        masked_format(charge_category.is_not_null() & ~ct.is_in(list(CHARGE_CATEGORY)),
                      "ChargeCategory: ChargeType '{}' is not a usage, purchase, tax or credit; Adjustment", ct),
        pl.when(is_purchase & (frequency_raw == "Usage-Based")).then(pl.lit(
            "ChargeFrequency: Frequency UsageBased on a purchase; Recurring")),
        masked_format(frequency_raw.is_null(), "ChargeFrequency: Frequency empty; {} by charge category", frequency),
        pl.when(priced & pm.is_null() & ~unused).then(pl.lit("PricingCategory: PricingModel empty; Standard")),
        pl.when(cd_kind_guessed).then(pl.lit(
            "CommitmentDiscountType: benefit id names neither a reservation nor a savings plan; Reservation")),
        pl.when(priced & payg_missing & ~(payg.is_null() & unit_price.is_null())).then(pl.lit(
            "ListUnitPrice: PayGPrice empty or 0 (Azure omits it on commitment rows); UnitPrice used")),
        pl.when(priced & unit_price.is_null() & effective_price.is_not_null()).then(pl.lit(
            "ListUnitPrice/ContractedUnitPrice: no PayGPrice or UnitPrice (legacy usage details); the "
            "effective rate (ResourceRate/EffectivePrice) used")),
        pl.when(bp_start_raw.is_null()).then(pl.lit(
            "BillingPeriodStart/End: billing period empty in the export; calendar month of Date")),
        pl.when(publisher.is_not_null() & col("PublisherName").is_null()).then(pl.lit(
            "PublisherName: empty in the export; Microsoft")),
        masked_format(location.is_not_null() & pl.col("__region_id").is_null(),
                      "RegionId/RegionName: location '{}' not in the regions table; as delivered", location),
        masked_format(unit_parsed, "PricingUnit: UnitOfMeasure '{}' not in the pricing-units table; block size "
                      "and unit read from it", col("UnitOfMeasure")),
        pl.when(service_unmapped & priced).then(pl.lit(UNMAPPED_SERVICE_NOTE)),
        masked_format(service_unmapped & placeholder_to_null(col("MeterCategory")).is_null()
                      & col("ConsumedService").is_null() & service_name.is_not_null(),
                      "ServiceName: no meter category or consumed service; '{}' (product or publisher name) used",
                      service_name),
    ]
    gaps = [
        pl.when(subscription.is_not_null() & col("SubscriptionName").is_null()).then(pl.lit("R-SubAccountName-1")),
        pl.when(priced & sku.is_null()).then(pl.lit("R-SkuId-1")),
        pl.when(priced & sku.is_null()).then(pl.lit("R-SkuPriceId-1")),
        pl.when(priced & (list_unit_price.is_null() | contracted_unit_price.is_null())).then(pl.lit("R-UnitPrice-1")),
        pl.when(priced & (list_pc.is_null() | contracted_pc.is_null())).then(pl.lit("R-PCUnitPrice-1")),
        pl.when(pc_effective.is_null()).then(pl.lit("R-PCEffectiveCost-1")),
        pl.when(priced & quantity.is_null()).then(pl.lit("R-PricingQuantity-1")),
        pl.when(is_usage & ~unused & quantity.is_null()).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(priced & quantity.is_not_null() & pricing_unit.is_null()).then(pl.lit("R-PricingUnit-1")),
        pl.when(is_usage & ~unused & (quantity.is_not_null() & block.is_null())).then(pl.lit("R-ConsumedQuantity-1")),
        pl.when(cd_id.is_not_null() & priced & ~correction & quantity.is_null()).then(pl.lit("R-CDQuantity-1")),
        pl.when(cd_quantity.is_not_null() & cd_unit.is_null()).then(pl.lit("R-CDUnit-1")),
        pl.when(service_name.is_null()).then(pl.lit("R-ServiceName-1")),
    ]
    x_columns = {name: (col(source) if source in schema else pl.lit(None, dtype)).cast(dtype)
                 for name, source in _X_SOURCES.items() for dtype in [AZURE_X_COLUMNS[name]]}
    x_columns.update({
        "x_CostDataset": pl.col("x_CostDataset"),
        "x_CostMode": mode,
        "x_PairedRowId": pl.when(paired_row).then(pl.col("__pair_row")),
        "x_BillingAccountAgreement": pl.col("__agreement"),
        "x_PricingBlockSize": block.cast(MONEY),
    })
    extras = unknown_columns(schema)
    converted = rows.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(changes).alias("x_SourceChanges"),
        joined_strings(gaps).alias("x_ProviderDataGaps"),
        *[pl.col(n) for n in lineage_names()],
        *[x_columns[name].alias(name) for name in AZURE_X_COLUMNS],
        *[pl.col(name).cast(pl.String).alias(_x_name(name)) for name in extras],
    )
    out_schema = focus_schema()
    return (converted
            .with_columns(split_list(pl.col("x_SourceChanges")), split_list(pl.col("x_ProviderDataGaps")))
            .select([whitespace_to_null(pl.col(name)).alias(name) if name in FOCUS_STRING_COLUMNS
                     else pl.col(name).cast(dtype) for name, dtype in out_schema.items()]
                    + [pl.col(name).cast(dtype) for name, dtype in AZURE_X_COLUMNS.items()]
                    + [pl.col(_x_name(name)) for name in extras]))


def _charge_category(ct: pl.Expr) -> pl.Expr:
    expr = pl.when(ct.is_null()).then(pl.lit("Usage"))
    for delivered, category in CHARGE_CATEGORY.items():
        expr = expr.when(ct == delivered).then(pl.lit(category))
    return expr.otherwise(pl.lit("Adjustment"))


FOCUS_STRING_COLUMNS = frozenset(c.name for c in focus_columns() if c.data_type in ("String", "JSON"))


def unknown_columns(schema: pl.Schema) -> list[str]:
    """Raw columns this mapping does not know: kept in FOCUS as x_<name>."""
    known = set(KNOWN_COLUMNS) | set(RAW_X_COLUMNS) | set(LINEAGE_SCHEMA)
    return [n for n in schema.names() if n not in known and not n.startswith("__")]


def _x_name(name: str) -> str:
    return name if name.startswith("x_") else "x_" + re.sub(r"[^0-9A-Za-z_]", "_", name)

