"""Native FOCUS typed raw rows → canonical FOCUS 1.2 rows (``to_focus``).

Mapping (``to_focus``): the delivered values, with the known deviations fixed and the 1.2 columns a
1.0/1.1 export lacks derived. Every fix-up is a ``x_SourceChanges`` entry of the row (column, value
as delivered → value written, and why); never silent. The known-deviation layer (MAPPINGS.md §5 and
the FinOps toolkit's hub ingestion fixes), each applied where its condition holds on the row's own
values (the condition is the evidence), for any provider unless a provider is named:

- null placeholders (``NULL``, ``null``, ``N/A``, ``None``, quoted ``""``) → null;
- timestamps without ``T``/``Z``, without seconds or with an offset → UTC timestamps;
- enum values in another letter case (``Usage-based``) or 1.0-preview spelling (``On-Demand``) → the
  FOCUS value; BillingCurrency in lower case → upper case;
- resource paths as account ids (Microsoft: ``/providers/Microsoft.Billing/billingAccounts/123`` →
  ``123``, ``/subscriptions/<guid>`` → ``<guid>``, the ids Microsoft's own cost details use);
- commitment purchases carrying EffectiveCost (double count of amortized commitments, toolkit
  #1092) → EffectiveCost 0; their ChargeFrequency ``Usage-Based`` → ``Recurring``;
- EffectiveCost empty → what FOCUS defines for the row: 0 on a commitment purchase (R-EffectiveCost-2),
  the BilledCost on a credit (R-EffectiveCost-3); on any other row 0, recorded as ``EffectiveCost
  unknown`` (nothing in the row carries it: a provider-data gap, never invented);
- a file without BillingCurrency read with the source's declared currency → ``DECLARED_CURRENCY_NOTE``;
- commitment usage labelled PricingCategory ``Standard`` (toolkit #836) → ``Committed``;
- zeros instead of nulls on unused savings plan rows (toolkit #834): zero PricingQuantity and unit
  prices → null; ConsumedQuantity / Unit on unused-commitment and non-usage rows → null;
- Microsoft: PricingQuantity divided by the pricing block size although the unit prices are per
  unit (ListUnitPrice x ConsumedQuantity = ListCost) → ConsumedQuantity, and a ContractedCost
  computed from it → ContractedUnitPrice x PricingQuantity; PublisherName null on reservation rows
  with ``x_PublisherCategory`` 'Cloud Provider' → ProviderName;
- one ServiceCategory per ServiceName (R-ServiceName-1; AWS files EC2's EBS rows under Storage,
  Microsoft leaves some services 'Other'): the provider's service table (``focus_services.csv``:
  Microsoft's own ``Services.csv`` of the FinOps toolkit, MIT; AWS through the AWS CUR converter's
  product-code table) when it lists the ServiceName;
- values the spec forbids on a row: prices, quantities, SKUs and pricing category on Tax rows,
  negative unit prices on credits/adjustments, SubAccountName/Type or ResourceName/Type without
  their id, SkuMeter without SkuId, SkuPriceDetails without SkuPriceId → null; an AvailabilityZone
  that is a number → null; RegionId null beside a RegionName → the RegionName; ContractedCost null
  → ContractedUnitPrice x PricingQuantity, else BilledCost on a row without commitment discount;
- Tags / SkuPriceDetails that are not a flat JSON object (R-KV-1..3): members without braces are
  wrapped, anything else → null, the text as delivered in the note; the row is kept.

Upgrade 1.0/1.1 → 1.2: no FOCUS column was renamed between 1.0 and 1.2 (only 1.0-preview renamed,
and it is refused), so the upgrade adds columns: BillingAccountType / SubAccountType (Microsoft's
1.0 export already delivers both without ``x_``: they are the 1.2 columns; else the provider's single
account type, AWS ``Payer Account`` / ``Linked Account``, Google ``Billing Account`` / ``Project``),
PricingCurrency (= BillingCurrency: FOCUS 1.0 prices are in the billing currency; Microsoft's
``x_PricingCurrency`` when it differs) and the PricingCurrency* prices (= the billing-currency
values when both currencies are one), CommitmentDiscountQuantity / Unit (spend commitments: the
row's EffectiveCost in the currency, BilledCost on purchases; usage commitments: PricingQuantity in
PricingUnit), CapacityReservationId / Status (Microsoft ``x_SkuDetails.VMCapacityReservationId``),
ServiceSubcategory (the provider's service table ``focus_services.csv``, else ``Other (<category>)``),
SkuMeter (Microsoft ``x_SkuMeterName``), InvoiceId (Microsoft ``x_InvoiceId``, else null: not known).
A value the spec requires that neither the export nor a derivation gives stays null and the rule id
goes to ``x_ProviderDataGaps``. Downgrade 1.3 → 1.2: the 1.3-only columns (ServiceProviderName,
HostProviderName, ContractApplied, Allocated*) are kept as ``x_<name>``.

"""

from __future__ import annotations

from functools import cache

import polars as pl

from focus_platform.sources.aws_cur import region_names, service_table
from focus_platform.sources.common import (
    DECLARED_CURRENCY_NOTE,
    KEY_SEPARATOR,
    effective_cost_unknown_note,
    exact_product,
    joined_strings,
    lookup_rows,
    mapped,
    masked_format,
    split_list,
)
from focus_platform.sources.focus_native.raw import (
    DECLARED_CURRENCY,
    ENUM_COLUMNS,
    LINEAGE_NAMES,
    V13_ONLY,
    RawColumns,
    account_id,
    cleaned_text,
    enum_table,
    is_placeholder,
    quarantine_reason,
    spec_columns,
)
from focus_platform.spec.columns import (
    LINEAGE_SCHEMA,
    MONEY,
    focus_column,
    focus_schema,
)
from focus_platform.spec.rules import (
    json_object_problem,
    subcategory_parents,
)

PROVIDER_KEYS = (("microsoft", r"(?i)microsoft|azure"), ("aws", r"(?i)amazon|\baws\b"),
                 ("google", r"(?i)google|\bgcp\b"), ("oracle", r"(?i)oracle|\boci\b"))
# A provider's single billing / sub account type (Conditional 1.2 columns, required when a provider
# has several types; FOCUS 1.0 exports lack them): the values our raw converters and the providers'
# own 1.2 exports use.
ACCOUNT_TYPES = {"aws": ("Payer Account", "Linked Account"), "google": ("Billing Account", "Project"),
                 "microsoft": (None, "Subscription")}
MS_CAPACITY_RESERVATION_TYPE = "microsoft.compute/capacityreservationgroups/capacityreservations"
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"

def _canon_small(name: str) -> pl.Expr:
    """The FOCUS spelling of a value of a small enum column (null when it is none of them)."""
    value = pl.col(name)
    lower = value.str.strip_chars().str.to_lowercase()
    allowed = list(focus_column(name).allowed_values)
    out = pl.lit(None, pl.String)
    for key, canonical in reversed(list(enum_table(name).items())):
        out = pl.when(lower == key).then(pl.lit(canonical)).otherwise(out)
    return pl.when(value.is_in(allowed)).then(value).otherwise(out)




@cache
def service_lookup() -> dict[str, tuple[str, str]]:
    """provider key + KEY_SEPARATOR + service name or AWS product code → the provider's
    (ServiceCategory, ServiceSubcategory).

    Microsoft: Microsoft's own service table (FinOps toolkit ``Services.csv``, MIT), by ServiceName.
    AWS: the AWS CUR converter's table by product code (``aws_services.csv``), reached from the
    ServiceName AWS writes (product name) or ``x_ServiceCode``."""
    aws = service_table()
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for code, (cat, sub) in aws.items():
        rows[("aws", code)] = (cat, sub)
    for r in lookup_rows("focus_services.csv"):
        if r["provider"] == "aws":
            if r["aws_product_code"] in aws:
                rows[("aws", r["service_name"])] = aws[r["aws_product_code"]]
        else:
            rows[(r["provider"], r["service_name"])] = (r["service_category"], r["service_subcategory"])
    return {KEY_SEPARATOR.join(key): value for key, value in rows.items()}


def _provider_key(col: RawColumns) -> pl.Expr:
    name = col("ProviderName")
    out = pl.lit("other")
    for key, pattern in reversed(PROVIDER_KEYS):
        out = pl.when(name.str.contains(pattern).fill_null(False)).then(pl.lit(key)).otherwise(out)
    if col.has("x_BillingProfileId") or col.has("x_PricingBlockSize"):  # Microsoft's x_ columns
        out = pl.when(name.is_null() & col.text("x_BillingProfileId").is_not_null()).then(pl.lit("microsoft")).otherwise(out)
    return out



def sub_account_id(expr: pl.Expr) -> pl.Expr:
    """SubAccountId without a resource path: '/subscriptions/<guid>' → '<guid>'."""
    return pl.coalesce(expr.str.extract(r"(?i)^/subscriptions/([^/]+)/?$", 1), expr)



def _prepared(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows with FOCUS string columns cleaned (placeholders → null), enum values in FOCUS case
    (``__canon_<col>``), the provider key, the version and the quarantine reason (``__reason``)."""
    schema = raw.collect_schema()
    raw = raw.with_columns(quarantine_reason(schema).alias("__reason"))
    string_cols = [n for n in schema.names()
                   if n in spec_columns() and spec_columns()[n].data_type in ("String", "JSON") and n not in V13_ONLY]
    placeholder_notes = [masked_format(is_placeholder(pl.col(n)) & pl.col(n).is_not_null(), f"{n}='{{}}'", pl.col(n))
                         for n in string_cols]
    listed = pl.concat_str(placeholder_notes, separator=", ", ignore_nulls=True) if placeholder_notes else pl.lit(None, pl.String)
    lf = raw.with_columns(
        *[cleaned_text(n).alias(n) for n in string_cols],
        pl.when(listed != "").then(pl.format("null placeholders read as null: {}", listed)).alias("__placeholders"),
        pl.col("x_SourceFormatVersion").str.extract(r"^FOCUS (\S+)", 1).alias("__version"),
    )
    col = RawColumns(lf.collect_schema())
    lf = lf.with_columns(_provider_key(col).alias("__prov"))
    canon = []
    for name in ENUM_COLUMNS:
        table = enum_table(name)
        if not col.has(name):
            canon.append(pl.lit(None, pl.String).alias(f"__canon_{name}"))
        elif len(table) <= 12:  # a few values: a when-chain
            canon.append(_canon_small(name).alias(f"__canon_{name}"))
        else:
            canon.append(mapped(pl.col(name).str.strip_chars().str.to_lowercase(), table).alias(f"__canon_{name}"))
    svc_key = pl.when(pl.col("__prov") == "aws").then(pl.coalesce(col.text("x_ServiceCode"), col("ServiceName"))) \
        .otherwise(col("ServiceName"))
    services = service_lookup()
    prov_svc = pl.concat_str([pl.col("__prov"), pl.col("__svc_key")], separator=KEY_SEPARATOR)
    return lf.with_columns(*canon, svc_key.alias("__svc_key")).with_columns(
        mapped(pl.col("__canon_ServiceSubcategory"), subcategory_parents()).alias("__sub_parent"),
        mapped(prov_svc, {k: v[0] for k, v in services.items()}).alias("__tbl_category"),
        mapped(prov_svc, {k: v[1] for k, v in services.items()}).alias("__tbl_subcategory"),
        mapped(col("RegionId"), region_names()).alias("__aws_region_name"),
    )



# ---------------------------------------------------------------------------------------------
# Raw → FOCUS 1.2
# ---------------------------------------------------------------------------------------------
def _f(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64)


def _close(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """a ≈ b relative to their size (float64, for recognising a deviation, never for a value)."""
    return (_f(a) - _f(b)).abs() <= 1e-12 + 1e-6 * pl.max_horizontal(_f(a).abs(), _f(b).abs())


def _note(condition: pl.Expr, template: str, *args: pl.Expr) -> pl.Expr:
    return masked_format(condition, template, *args)


def _json_checked(expr: pl.Expr) -> pl.Expr:
    """A JSON text column checked as a FOCUS key-value object: struct {value, problem}. A bare
    member list (``"k": "v"`` without braces, Microsoft EA style) is wrapped; anything else that is
    not a flat JSON object becomes null with the problem named."""
    def check(s: pl.Series) -> pl.Series:
        values = s.drop_nulls().unique().to_list()
        fixed, problems = [], []
        for v in values:
            problem = json_object_problem(v)
            if problem and not v.lstrip().startswith("{") and json_object_problem("{" + v + "}") is None:
                fixed.append("{" + v + "}")
                problems.append("no braces: wrapped in {}")
            elif problem:
                fixed.append(None)
                problems.append(problem)
            else:
                fixed.append(v)
                problems.append(None)
        table = pl.DataFrame({"v": values, "value": fixed, "problem": problems},
                             schema={"v": pl.String, "value": pl.String, "problem": pl.String})
        out = s.rename("v").to_frame().join(table, on="v", how="left", maintain_order="left")
        return out.select(pl.struct("value", "problem")).to_series()

    return expr.map_batches(check, return_dtype=pl.Struct({"value": pl.String, "problem": pl.String}),
                            is_elementwise=True)


def _effective_cost(col: RawColumns, commitment_purchase: pl.Expr, credit: pl.Expr) -> tuple[pl.Expr, list[pl.Expr]]:
    """EffectiveCost and its x_SourceChanges notes: as delivered, 0 on a commitment purchase (R-EffectiveCost-2:
    a delivered amount there is the double count of FinOps toolkit #1092). Where the export leaves it empty,
    only what FOCUS defines is derived: 0 on a commitment purchase, the BilledCost on a credit
    (R-EffectiveCost-3); any other row keeps 0, recorded as unknown (a provider-data gap)."""
    zero = pl.lit(0, MONEY)
    delivered = col("EffectiveCost")
    empty = delivered.is_null()
    purchase_fixed = commitment_purchase & (delivered != 0).fill_null(False)
    credit_derived = ~commitment_purchase & credit & empty
    effective = (pl.when(commitment_purchase).then(zero).when(credit_derived).then(col("BilledCost"))
                 .otherwise(delivered.fill_null(zero)))
    notes = [
        _note(purchase_fixed, "EffectiveCost: {} → 0 on a commitment purchase (its cost is amortized onto the usage "
              "it covers: double count, FinOps toolkit #1092)", delivered),
        _note(commitment_purchase & empty, "EffectiveCost: null in the export; 0 on a commitment purchase "
              "(FOCUS R-EffectiveCost-2)"),
        _note(credit_derived, "EffectiveCost: null in the export; the credit's BilledCost (FOCUS R-EffectiveCost-3)"),
        effective_cost_unknown_note(~commitment_purchase & ~credit & empty, "EffectiveCost"),
    ]
    return effective, notes


def to_focus(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Convertible raw rows as FOCUS 1.2 rows (no row added or dropped), deviations fixed and noted."""
    prepared = _prepared(raw).filter(pl.col("__reason").is_null())
    schema = prepared.collect_schema()
    col = RawColumns(schema)
    zero = pl.lit(0, MONEY)
    prov = pl.col("__prov")
    ms = prov == "microsoft"
    version = pl.col("__version")
    legacy = version.is_in(["1.0", "1.1"])
    before = pl.when(version == "1.0").then(pl.lit("not in FOCUS 1.0")).otherwise(pl.lit("not in FOCUS 1.1"))

    def canon(name: str) -> pl.Expr:
        return pl.col(f"__canon_{name}")

    category = canon("ChargeCategory")
    is_usage, is_purchase, is_tax = category == "Usage", category == "Purchase", category == "Tax"
    correction = (canon("ChargeClass") == "Correction").fill_null(False)
    cd_id = col("CommitmentDiscountId")
    cd_category = canon("CommitmentDiscountCategory")
    cd_status = canon("CommitmentDiscountStatus")
    commitment_purchase = is_purchase & cd_id.is_not_null()
    unused = (cd_status == "Unused").fill_null(False)
    notes: list[pl.Expr] = [pl.col("x_ReadNotes"), pl.col("__placeholders")]

    # Enum values in FOCUS case (values that match no FOCUS value were quarantined)
    for name in ENUM_COLUMNS:
        if col.has(name):
            notes.append(_note(col(name).is_not_null() & (col(name) != canon(name)),
                               f"{name}: '{{}}' → '{{}}' (FOCUS value)", col(name), canon(name)))

    # --- accounts -------------------------------------------------------------------------------
    billing_account = account_id(col("BillingAccountId"))
    notes.append(_note(billing_account != col("BillingAccountId"),
                       "BillingAccountId: '{}' → '{}' (resource path: the account id is its last segment)",
                       col("BillingAccountId"), billing_account))
    sa_raw = col("SubAccountId")
    sub_account = sub_account_id(sa_raw)
    notes.append(_note(sub_account != sa_raw, "SubAccountId: '{}' → '{}' (resource path: the subscription id)",
                       sa_raw, sub_account))
    sub_name_raw = col("SubAccountName")
    sub_name = pl.when(sub_account.is_null()).then(None).otherwise(sub_name_raw)
    notes.append(_note(sub_account.is_null() & sub_name_raw.is_not_null(),
                       "SubAccountName: '{}' → null (no SubAccountId)", sub_name_raw))
    bat_raw = col("BillingAccountType")
    bat_default = pl.lit(None, pl.String)
    sat_default = pl.lit(None, pl.String)
    for key, (bat, sat) in ACCOUNT_TYPES.items():
        if bat:
            bat_default = pl.when(prov == key).then(pl.lit(bat)).otherwise(bat_default)
        sat_default = pl.when(prov == key).then(pl.lit(sat)).otherwise(sat_default)
    ms_profile = col("BillingAccountId").str.contains(r"(?i)/billingprofiles/").fill_null(False)
    bat_default = (pl.when(ms & ms_profile).then(pl.lit("Billing Profile")).when(ms).then(pl.lit("Billing Account"))
                   .otherwise(bat_default))
    billing_account_type = pl.coalesce(bat_raw, bat_default)
    notes.append(_note(bat_raw.is_null() & bat_default.is_not_null(),
                       "BillingAccountType: {}: '{}' (the provider's billing account type)",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), bat_default))
    ocid_type = sub_account.str.extract(r"^ocid\d+\.(tenancy|compartment)\.", 1).str.to_titlecase()
    sat_default = pl.when(prov == "oracle").then(ocid_type).otherwise(sat_default)
    sat_raw = col("SubAccountType")
    sub_account_type = pl.when(sub_account.is_null()).then(None).otherwise(pl.coalesce(sat_raw, sat_default))
    notes.append(_note(sub_account.is_not_null() & sat_raw.is_null() & sat_default.is_not_null(),
                       "SubAccountType: {}: '{}' (the provider's sub account type)",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), sat_default))
    notes.append(_note(sub_account.is_null() & sat_raw.is_not_null(), "SubAccountType: '{}' → null (no SubAccountId)",
                       sat_raw))
    currency = col("BillingCurrency").str.strip_chars().str.to_uppercase()
    notes.append(_note(currency != col("BillingCurrency"), "BillingCurrency: '{}' → '{}' (ISO 4217 upper case)",
                       col("BillingCurrency"), currency))
    notes.append(pl.when(col.text(DECLARED_CURRENCY).is_not_null()).then(pl.lit(DECLARED_CURRENCY_NOTE)))

    # --- costs ----------------------------------------------------------------------------------
    effective, effective_notes = _effective_cost(col, commitment_purchase, category == "Credit")
    notes.extend(effective_notes)
    # Microsoft 1.0: PricingQuantity = ConsumedQuantity / pricing block size while the unit prices are
    # per consumed unit (ListCost = ListUnitPrice x ConsumedQuantity), and ContractedCost was computed
    # from the divided quantity. Recognised from the values themselves.
    pq_raw, cq_raw = col("PricingQuantity"), col("ConsumedQuantity")
    list_price, list_cost = col("ListUnitPrice"), col("ListCost")
    contracted_price, contracted_raw = col("ContractedUnitPrice"), col("ContractedCost")
    block_fix = (ms & pq_raw.is_not_null() & cq_raw.is_not_null() & (pq_raw != cq_raw) & (list_cost != 0)
                 & ~_close(_f(list_price) * _f(pq_raw), list_cost) & _close(_f(list_price) * _f(cq_raw), list_cost)).fill_null(False)
    notes.append(_note(block_fix, "PricingQuantity: {} → {} (= ConsumedQuantity: Microsoft divides it by the pricing "
                       "block size although its unit prices are per unit; ListUnitPrice x PricingQuantity ≠ ListCost)",
                       pq_raw, cq_raw))
    contracted_fix = (block_fix & contracted_price.is_not_null() & _close(_f(contracted_price) * _f(pq_raw), contracted_raw)
                      & ~_close(_f(contracted_price) * _f(cq_raw), contracted_raw)).fill_null(False)
    contracted_cost = pl.when(contracted_fix).then(exact_product(contracted_price, cq_raw)).otherwise(contracted_raw)
    notes.append(_note(contracted_fix, "ContractedCost: {} → {} (ContractedUnitPrice x the corrected PricingQuantity)",
                       contracted_raw, exact_product(contracted_price, cq_raw)))
    # Mandatory costs missing in the export: price x quantity, else (no commitment discount on the
    # row, not a correction) the billed cost, which is then the cost at contracted rates.
    contracted_product = exact_product(contracted_price, pl.coalesce(pl.when(block_fix).then(cq_raw), pq_raw))
    contracted_derived = (pl.when(contracted_raw.is_not_null()).then(None)
                          .when(contracted_product.is_not_null()).then(contracted_product)
                          .when(cd_id.is_null() & ~correction).then(col("BilledCost")))
    contracted_cost = pl.coalesce(contracted_cost, contracted_derived)
    notes.append(_note(contracted_derived.is_not_null(), "ContractedCost: null in the export; {} ({})",
                       contracted_derived,
                       pl.when(contracted_product.is_not_null()).then(pl.lit("ContractedUnitPrice x PricingQuantity"))
                       .otherwise(pl.lit("BilledCost: no commitment discount on the row"))))
    list_product = list_price * pl.coalesce(pl.when(block_fix).then(cq_raw), pq_raw)
    list_derived = pl.when(list_cost.is_null()).then(list_product)
    notes.append(_note(list_derived.is_not_null(), "ListCost: null in the export; {} (ListUnitPrice x PricingQuantity)",
                       list_derived))
    list_cost_out = pl.coalesce(list_cost, list_derived)
    # Unused savings plan rows carry zeros for the quantity and prices they do not have (toolkit #834)
    spend_unused = unused & (cd_category == "Spend").fill_null(False) & (effective != 0).fill_null(False)

    def zero_placeholder(name: str, value: pl.Expr) -> pl.Expr:
        hit = spend_unused & (value == 0).fill_null(False)
        notes.append(_note(hit, f"{name}: 0 → null (placeholder on an unused savings plan row, FinOps toolkit #834)"))
        return pl.when(hit).then(None).otherwise(value)

    pricing_quantity = zero_placeholder("PricingQuantity", pl.when(block_fix).then(cq_raw).otherwise(pq_raw))
    list_unit_price = zero_placeholder("ListUnitPrice", list_price)
    contracted_unit_price = zero_placeholder("ContractedUnitPrice", contracted_price)

    # Tax rows carry no prices, quantities, SKUs or pricing category (FOCUS: null for Tax)
    def tax_null(name: str, value: pl.Expr) -> pl.Expr:
        hit = is_tax & value.is_not_null()
        notes.append(_note(hit, f"{name}: '{{}}' → null (FOCUS: null on Tax rows)", value))
        return pl.when(is_tax).then(None).otherwise(value)

    list_unit_price = tax_null("ListUnitPrice", list_unit_price)
    contracted_unit_price = tax_null("ContractedUnitPrice", contracted_unit_price)

    # A negative unit price (R-UnitPrice-2) on a row that needs none (credits, adjustments)
    def negative_null(name: str, value: pl.Expr) -> pl.Expr:
        hit = ~(is_usage | is_purchase) & (value < 0).fill_null(False)
        notes.append(_note(hit, f"{name}: {{}} → null (unit prices are never negative; a {{}} row needs none)",
                           value, category))
        return pl.when(hit).then(None).otherwise(value)

    list_unit_price = negative_null("ListUnitPrice", list_unit_price)
    contracted_unit_price = negative_null("ContractedUnitPrice", contracted_unit_price)
    pricing_quantity = tax_null("PricingQuantity", pricing_quantity)
    pricing_unit_raw = col("PricingUnit")
    pricing_unit = pl.when(pricing_quantity.is_null()).then(None).otherwise(pricing_unit_raw)
    notes.append(_note(pricing_quantity.is_null() & pricing_unit_raw.is_not_null(),
                       "PricingUnit: '{}' → null (no PricingQuantity)", pricing_unit_raw))
    consumed_drop = (~is_usage | unused) & cq_raw.is_not_null()
    consumed_quantity = pl.when(consumed_drop).then(None).otherwise(cq_raw)
    notes.append(_note(consumed_drop, "ConsumedQuantity: {} → null (FOCUS: only on Usage rows that are not unused "
                       "commitment)", cq_raw))
    cu_raw = col("ConsumedUnit")
    consumed_unit = pl.when(consumed_quantity.is_null()).then(None).otherwise(cu_raw)
    notes.append(_note(consumed_quantity.is_null() & cu_raw.is_not_null(), "ConsumedUnit: '{}' → null (no ConsumedQuantity)",
                       cu_raw))

    # --- charge attributes ----------------------------------------------------------------------
    frequency_fix = commitment_purchase & (canon("ChargeFrequency") == "Usage-Based")
    charge_frequency = pl.when(frequency_fix).then(pl.lit("Recurring")).otherwise(canon("ChargeFrequency"))
    notes.append(_note(frequency_fix, "ChargeFrequency: 'Usage-Based' → 'Recurring' on a commitment purchase "
                       "(monthly commitment fee, FinOps toolkit fix)"))
    committed_fix = is_usage & cd_status.is_not_null() & (canon("PricingCategory") == "Standard")
    pricing_category = tax_null("PricingCategory", pl.when(committed_fix).then(pl.lit("Committed"))
                                .otherwise(canon("PricingCategory")))
    notes.append(_note(committed_fix, "PricingCategory: 'Standard' → 'Committed' (usage priced by a commitment "
                       "discount, FinOps toolkit #836)"))
    az_raw = col("AvailabilityZone")
    az_number = az_raw.str.contains(NUMBER).fill_null(False)
    notes.append(_note(az_number, "AvailabilityZone: '{}' → null (a number, not a zone)", az_raw))
    region_raw, region_name_raw = col("RegionId"), col("RegionName")
    region_id = pl.coalesce(region_raw, region_name_raw)
    notes.append(_note(region_raw.is_null() & region_name_raw.is_not_null(),
                       "RegionId: null in the export; RegionName '{}' used", region_name_raw))
    aws_region_name = pl.when((prov == "aws") & region_name_raw.is_null()).then(pl.col("__aws_region_name"))
    region_name = pl.coalesce(region_name_raw, aws_region_name)
    notes.append(_note(aws_region_name.is_not_null(), "RegionName: null in the export; '{}' (AWS region table)",
                       aws_region_name))
    publisher_raw = col("PublisherName")
    publisher_fix = ms & publisher_raw.is_null() & (col.text("x_PublisherCategory") == "Cloud Provider")
    publisher = pl.when(publisher_fix).then(col("ProviderName")).otherwise(publisher_raw)
    notes.append(_note(publisher_fix, "PublisherName: null in the export; ProviderName '{}' (x_PublisherCategory "
                       "'Cloud Provider')", col("ProviderName")))

    # --- service --------------------------------------------------------------------------------
    table_category, table_sub = pl.col("__tbl_category"), pl.col("__tbl_subcategory")
    service_category = pl.coalesce(table_category, canon("ServiceCategory"))
    notes.append(_note(table_category.is_not_null() & (table_category != canon("ServiceCategory")),
                       "ServiceCategory: '{}' → '{}' (one category per ServiceName: the provider's service table)",
                       (canon("ServiceCategory")), table_category))
    sub_delivered = canon("ServiceSubcategory")
    sub_valid = sub_delivered.is_not_null() & (pl.col("__sub_parent") == service_category).fill_null(False)
    sub_from_table = table_sub.is_not_null() & (table_category == service_category).fill_null(False)
    service_subcategory = (pl.when(sub_from_table).then(table_sub).when(sub_valid).then(sub_delivered)
                           .when(service_category.is_not_null()).then(pl.format("Other ({})", service_category)))
    sub_changed = sub_delivered.is_null() | (sub_delivered != service_subcategory)
    why_sub = (pl.when(sub_delivered.is_null() & (version == "1.0")).then(pl.lit("not in FOCUS 1.0;"))
               .when(sub_delivered.is_null() & (version == "1.1")).then(pl.lit("not in FOCUS 1.1;"))
               .when(sub_delivered.is_null()).then(pl.lit("null in the export;"))
               .when(sub_from_table).then(pl.format("'{}' →", sub_delivered))
               .otherwise(pl.format("'{}' is not under '{}' →", sub_delivered, service_category)))
    notes.append(_note(sub_changed & service_subcategory.is_not_null(), "ServiceSubcategory: {} '{}' ({})", why_sub,
                       service_subcategory,
                       pl.when(sub_from_table).then(pl.lit("one subcategory per ServiceName: the provider's service table"))
                       .otherwise(pl.lit("service not in the provider's service table"))))

    # --- pricing currency (1.2) -----------------------------------------------------------------
    pc_raw = col("PricingCurrency")
    pricing_currency = pl.coalesce(pc_raw, pl.when(ms).then(col.text("x_PricingCurrency")), currency)
    notes.append(_note(pc_raw.is_null(), "PricingCurrency: {}; '{}' ({})",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), pricing_currency,
                       pl.when(pricing_currency == currency).then(pl.lit("FOCUS 1.0 prices are in BillingCurrency"))
                       .otherwise(pl.lit("Microsoft x_PricingCurrency"))))
    same_currency = (pricing_currency == currency).fill_null(False)
    pc_effective_raw = col("PricingCurrencyEffectiveCost")
    pc_effective_fixed = commitment_purchase & (pc_effective_raw != 0).fill_null(False)
    notes.append(_note(pc_effective_fixed, "PricingCurrencyEffectiveCost: {} → 0 on a commitment purchase",
                       pc_effective_raw))
    pc_effective = (pl.when(pc_effective_fixed).then(zero)
                    .otherwise(pl.coalesce(pc_effective_raw, pl.when(same_currency).then(effective))))
    pc_list = tax_null("PricingCurrencyListUnitPrice",
                       pl.coalesce(col("PricingCurrencyListUnitPrice"), pl.when(same_currency).then(list_unit_price)))
    pc_contracted = tax_null("PricingCurrencyContractedUnitPrice",
                             pl.coalesce(col("PricingCurrencyContractedUnitPrice"),
                                         pl.when(same_currency).then(contracted_unit_price)))
    pc_derived = same_currency & (pc_effective_raw.is_null() | (col("PricingCurrencyListUnitPrice").is_null() & list_unit_price.is_not_null())
                                  | (col("PricingCurrencyContractedUnitPrice").is_null() & contracted_unit_price.is_not_null()))
    notes.append(_note(pc_derived, "PricingCurrencyEffectiveCost/ListUnitPrice/ContractedUnitPrice: {}; the "
                       "BillingCurrency values (PricingCurrency = BillingCurrency)",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export"))))

    # --- commitment discounts (1.1) ---------------------------------------------------------------
    cdq_raw, cdu_raw = col("CommitmentDiscountQuantity"), col("CommitmentDiscountUnit")
    cd_needs = cd_id.is_not_null() & (is_usage | is_purchase) & cdq_raw.is_null()
    spend_quantity = pl.when(~same_currency).then(None).when(is_purchase).then(col("BilledCost")).otherwise(effective)
    derived_cdq = (pl.when(~cd_needs).then(None).when(cd_category == "Spend").then(spend_quantity)
                   .when(cd_category == "Usage").then(pricing_quantity))
    cd_quantity = pl.coalesce(cdq_raw, derived_cdq)
    derived_cdu = (pl.when(derived_cdq.is_null()).then(None).when(cd_category == "Spend").then(pricing_currency)
                   .otherwise(pricing_unit))
    cd_unit = pl.coalesce(cdu_raw, derived_cdu)
    notes.append(_note(derived_cdq.is_not_null(), "CommitmentDiscountQuantity/Unit: {}; {} {} ({})",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), derived_cdq,
                       derived_cdu,
                       pl.when(cd_category == "Usage").then(pl.lit("usage commitment: PricingQuantity in PricingUnit"))
                       .when(is_purchase).then(pl.lit("spend commitment: the purchase's BilledCost"))
                       .otherwise(pl.lit("spend commitment: the row's EffectiveCost"))))
    cr_raw = col("CapacityReservationId")
    cr_ms = pl.when(ms & cr_raw.is_null()).then(
        col.text("x_SkuDetails").str.json_path_match("$.VMCapacityReservationId"))
    cr_ms = pl.when(is_placeholder(cr_ms)).then(None).otherwise(cr_ms)
    capacity_id = pl.coalesce(cr_raw, cr_ms)
    notes.append(_note(cr_ms.is_not_null(), "CapacityReservationId: {}; '{}' from x_SkuDetails.VMCapacityReservationId",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), cr_ms))
    cr_status_derived = (pl.when(cr_ms.is_null() | ~is_usage).then(None)
                         .when(col.text("x_ResourceType").str.to_lowercase() == MS_CAPACITY_RESERVATION_TYPE)
                         .then(pl.lit("Unused")).otherwise(pl.lit("Used")))
    capacity_status = pl.coalesce(canon("CapacityReservationStatus"), cr_status_derived)
    notes.append(_note(cr_status_derived.is_not_null() & canon("CapacityReservationStatus").is_null(),
                       "CapacityReservationStatus: '{}' (Unused on the capacity reservation's own row, else Used)",
                       cr_status_derived))

    # --- SKU, invoice, JSON -------------------------------------------------------------------
    sku_id = tax_null("SkuId", col("SkuId"))
    sku_price_id = tax_null("SkuPriceId", col("SkuPriceId"))
    meter_raw = col("SkuMeter")
    meter_ms = pl.when(ms & meter_raw.is_null() & sku_id.is_not_null()).then(col.text("x_SkuMeterName"))
    sku_meter = pl.when(sku_id.is_null()).then(None).otherwise(pl.coalesce(meter_raw, meter_ms))
    notes.append(_note(meter_ms.is_not_null(), "SkuMeter: {}; '{}' from x_SkuMeterName",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), meter_ms))
    notes.append(_note(sku_id.is_null() & meter_raw.is_not_null(), "SkuMeter: '{}' → null (no SkuId)", meter_raw))
    invoice_raw = col("InvoiceId")
    invoice_ms = pl.when(ms & invoice_raw.is_null()).then(col.text("x_InvoiceId"))
    invoice_id = pl.coalesce(invoice_raw, invoice_ms)
    notes.append(_note(invoice_ms.is_not_null(), "InvoiceId: {}; '{}' from x_InvoiceId",
                       pl.when(legacy).then(before).otherwise(pl.lit("null in the export")), invoice_ms))
    json_columns = {}
    for name in ("Tags", "SkuPriceDetails"):
        if col.has(name):
            checked = _json_checked(col(name))
            problem = checked.struct.field("problem")
            json_columns[name] = checked.struct.field("value")
            notes.append(_note(problem.is_not_null(), f"{name}: '{{}}' is not a FOCUS key-value JSON object "
                               f"({{}}) → {{}}", col(name), problem, (checked.struct.field("value"))))
        else:
            json_columns[name] = pl.lit(None, pl.String)
    spd_raw = json_columns["SkuPriceDetails"]
    sku_price_details = pl.when(sku_price_id.is_null()).then(None).otherwise(spd_raw)
    notes.append(_note(sku_price_id.is_null() & spd_raw.is_not_null(), "SkuPriceDetails: '{}' → null (no SkuPriceId)",
                       spd_raw))
    resource_id = col("ResourceId")
    resource_type_raw = col("ResourceType")
    resource_type = pl.when(resource_id.is_null()).then(None).otherwise(resource_type_raw)
    notes.append(_note(resource_id.is_null() & resource_type_raw.is_not_null(),
                       "ResourceType: '{}' → null (no ResourceId)", resource_type_raw))
    resource_name_raw = col("ResourceName")
    resource_name = pl.when(resource_id.is_null()).then(None).otherwise(resource_name_raw)
    notes.append(_note(resource_id.is_null() & resource_name_raw.is_not_null(),
                       "ResourceName: '{}' → null (no ResourceId)", resource_name_raw))

    focus = {
        "AvailabilityZone": pl.when(az_number).then(None).otherwise(az_raw),
        "BilledCost": col("BilledCost"),
        "BillingAccountId": billing_account,
        "BillingAccountName": col("BillingAccountName"),
        "BillingAccountType": billing_account_type,
        "BillingCurrency": currency,
        "BillingPeriodEnd": col("BillingPeriodEnd"),
        "BillingPeriodStart": col("BillingPeriodStart"),
        "CapacityReservationId": capacity_id,
        "CapacityReservationStatus": capacity_status,
        "ChargeCategory": category,
        "ChargeClass": canon("ChargeClass"),
        "ChargeDescription": col("ChargeDescription"),
        "ChargeFrequency": charge_frequency,
        "ChargePeriodEnd": col("ChargePeriodEnd"),
        "ChargePeriodStart": col("ChargePeriodStart"),
        "CommitmentDiscountCategory": cd_category,
        "CommitmentDiscountId": cd_id,
        "CommitmentDiscountName": col("CommitmentDiscountName"),
        "CommitmentDiscountQuantity": cd_quantity,
        "CommitmentDiscountStatus": cd_status,
        "CommitmentDiscountType": col("CommitmentDiscountType"),
        "CommitmentDiscountUnit": cd_unit,
        "ConsumedQuantity": consumed_quantity,
        "ConsumedUnit": consumed_unit,
        "ContractedCost": contracted_cost,
        "ContractedUnitPrice": contracted_unit_price,
        "EffectiveCost": effective,
        "InvoiceId": invoice_id,
        "InvoiceIssuerName": col("InvoiceIssuerName"),
        "ListCost": list_cost_out,
        "ListUnitPrice": list_unit_price,
        "PricingCategory": pricing_category,
        "PricingCurrency": pricing_currency,
        "PricingCurrencyContractedUnitPrice": pc_contracted,
        "PricingCurrencyEffectiveCost": pc_effective,
        "PricingCurrencyListUnitPrice": pc_list,
        "PricingQuantity": pricing_quantity,
        "PricingUnit": pricing_unit,
        "ProviderName": col("ProviderName"),
        "PublisherName": publisher,
        "RegionId": region_id,
        "RegionName": region_name,
        "ResourceId": resource_id,
        "ResourceName": resource_name,
        "ResourceType": resource_type,
        "ServiceCategory": service_category,
        "ServiceName": col("ServiceName"),
        "ServiceSubcategory": service_subcategory,
        "SkuId": sku_id,
        "SkuMeter": sku_meter,
        "SkuPriceDetails": sku_price_details,
        "SkuPriceId": sku_price_id,
        "SubAccountId": sub_account,
        "SubAccountName": sub_name,
        "SubAccountType": sub_account_type,
        "Tags": json_columns["Tags"],
        "x_ChargeType": col.text("x_ChargeType"),
        "x_ServiceCode": col.text("x_ServiceCode"),
        "x_UsageType": col.text("x_UsageType"),
        "x_Operation": col.text("x_Operation"),
        "x_CostCategories": col.text("x_CostCategories"),
    }
    extras = _extra_names(schema)
    rows = prepared.select(
        *[expr.alias(name) for name, expr in focus.items()],
        joined_strings(notes).alias("x_SourceChanges"),
        *[pl.col(n) for n in LINEAGE_NAMES],
        *[pl.col(raw_name).alias(out_name) for raw_name, out_name in extras.items()],
        canon("ChargeClass").alias("__class"),
    )
    rows = rows.with_columns(_gaps().alias("x_ProviderDataGaps")).drop("__class")
    return (rows.with_columns(split_list(pl.col("x_SourceChanges")), split_list(pl.col("x_ProviderDataGaps")))
            .select([pl.col(name).cast(dtype) for name, dtype in focus_schema().items()] + list(extras.values())))


def _extra_names(schema: pl.Schema) -> dict[str, str]:
    """Delivered columns that are not FOCUS 1.2 columns → their x_ name in FOCUS (kept as delivered)."""
    taken = set(focus_schema().names())
    out: dict[str, str] = {}
    internal = {"x_ParseErrors", "x_UnreadableAmounts", "x_ReadNotes", DECLARED_CURRENCY}
    for name in schema.names():
        if name.startswith("__") or name in internal or name in taken or name in LINEAGE_SCHEMA:
            continue
        if name in spec_columns() and name not in V13_ONLY:
            continue  # a FOCUS 1.2 column, mapped above
        target = name if name.lower().startswith("x_") else f"x_{name}"
        base, i = target, 2
        while target in taken:
            target, i = f"{base}_{i}", i + 1
        taken.add(target)
        out[name] = target
    return out


def _gaps() -> pl.Expr:
    """Rule ids a FOCUS row cannot satisfy because the export lacks the value (evaluated on the
    mapped row: the mapping above never nulls a value the spec requires, so a null here is the
    provider's; each entry names the one rule the missing value breaks)."""
    c = pl.col
    usage = c("ChargeCategory") == "Usage"
    corr = (c("__class") == "Correction").fill_null(False)
    priced = c("ChargeCategory").is_in(["Usage", "Purchase"]) & ~corr
    missing = lambda n: c(n).is_null()
    unused = (c("CommitmentDiscountStatus") == "Unused").fill_null(False)
    tolerance = lambda price, cost: (
        (_f(c(price)) * _f(c("PricingQuantity")) - _f(c(cost))).abs() > 1e-4 + 1e-6 * _f(c(cost)).abs())
    gaps = [
        (missing("ListCost"), "R-ListCost-1"),
        (missing("ContractedCost"), "R-ContractedCost-1"),
        (missing("InvoiceIssuerName"), "R-InvoiceIssuer-1"),
        (missing("ProviderName") | missing("PublisherName"), "R-ProviderName-1"),
        (missing("ServiceName"), "R-ServiceName-1"),
        (missing("ServiceCategory"), "R-ServiceCategory-1"),
        (missing("ServiceSubcategory"), "R-ServiceSubcategory-1"),
        (missing("ChargeFrequency") | ((c("ChargeCategory") == "Purchase") & (c("ChargeFrequency") == "Usage-Based")),
         "R-ChargeFrequency-1"),
        (missing("BillingAccountType"), "R-BillingAccountType-1"),
        (c("SubAccountId").is_not_null() & missing("SubAccountType"), "R-SubAccountType-1"),
        (c("SubAccountId").is_not_null() & missing("SubAccountName"), "R-SubAccountName-1"),
        (c("RegionId").is_not_null() & missing("RegionName"), "R-RegionName-1"),
        (c("ResourceId").is_not_null() & missing("ResourceType"), "R-ResourceType-1"),
        (priced & (missing("ListUnitPrice") | missing("ContractedUnitPrice")), "R-UnitPrice-1"),
        (priced & (missing("PricingCurrencyListUnitPrice") | missing("PricingCurrencyContractedUnitPrice")),
         "R-PCUnitPrice-1"),
        (missing("PricingCurrencyEffectiveCost"), "R-PCEffectiveCost-1"),
        (priced & missing("PricingQuantity"), "R-PricingQuantity-1"),
        (c("PricingQuantity").is_not_null() & missing("PricingUnit"), "R-PricingUnit-1"),
        (priced & missing("PricingCategory"), "R-PricingCategory-1"),
        (priced & missing("SkuId"), "R-SkuId-1"),
        (priced & missing("SkuPriceId"), "R-SkuPriceId-1"),
        (usage & ~unused & ~corr & missing("ConsumedQuantity"), "R-ConsumedQuantity-1"),
        (c("ConsumedQuantity").is_not_null() & missing("ConsumedUnit"), "R-ConsumedUnit-1"),
        (c("CommitmentDiscountId").is_not_null() & (missing("CommitmentDiscountCategory")
                                                    | missing("CommitmentDiscountType")), "R-CDDeps-1"),
        (c("CommitmentDiscountId").is_not_null() & usage & missing("CommitmentDiscountStatus"), "R-CDStatus-1"),
        (c("CommitmentDiscountId").is_not_null() & priced & missing("CommitmentDiscountQuantity"), "R-CDQuantity-1"),
        (c("CommitmentDiscountQuantity").is_not_null() & missing("CommitmentDiscountUnit"), "R-CDUnit-1"),
        (c("CapacityReservationId").is_not_null() & usage & missing("CapacityReservationStatus"), "R-CRStatus-1"),
        (c("ChargePeriodEnd") <= c("ChargePeriodStart"), "R-ChargePeriod-2"),
        (c("ListUnitPrice").is_not_null() & c("PricingQuantity").is_not_null() & ~corr
         & tolerance("ListUnitPrice", "ListCost"), "R-ListCost-1b"),
        (c("ContractedUnitPrice").is_not_null() & c("PricingQuantity").is_not_null() & ~corr
         & tolerance("ContractedUnitPrice", "ContractedCost"), "R-ContractedCost-1b"),
        ((c("ListUnitPrice") < 0) | (c("ContractedUnitPrice") < 0), "R-UnitPrice-2"),
    ]
    return joined_strings([pl.when(cond.fill_null(False)).then(pl.lit(rule)) for cond, rule in gaps])
