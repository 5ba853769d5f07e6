"""Table contracts: what every staged partition of a catalog table must look like before it commits.

One contract per table of ``warehouse.catalog.TABLES`` (pandera, polars backend); the write path
runs ``check_contract`` on the staged Parquet files before the caller's gate. Each contract has
three kinds of checks, placed where they cost least on a 5 M-row partition (read in parts of at
most ``PART_ROWS`` rows):

- **schema-level, on the staged LazyFrame, no data read**: every declared column present with its
  exact type (money ``Decimal(38,12)``, timestamps ``Datetime(us, UTC)``, lists, structs). Pandera
  validates a LazyFrame at ``ValidationDepth.SCHEMA_ONLY`` (``collect_schema`` only). Columns a
  contract does not declare are allowed where the table is open by design (raw tables keep every
  delivered column; ``focus_costs`` carries each provider's own ``x_`` columns), refused elsewhere.
- **pandera on each staged file**: nullability, allowed values, formats (currency codes,
  ``YYYY-MM``), ranges, keys unique within a part and cross-column rules. Each part (at most
  ``PART_ROWS`` rows of one file) is read alone and only for the columns these checks name, so
  memory is one part's few columns, whatever the partition's size. Partition columns are not in
  the files: their values are the partition key (``periods.PartitionKey``, validated once) and a
  key unique within a partition leaves them out.
- **Polars rules, elsewhere**: FOCUS's data-level rules (nullability per feature level, allowed
  values, cost = unit price × quantity, one category per service, …) stay in
  ``spec.rules.check_conformance``, which tells converter defects from provider-data gaps (a
  null a FOCUS column forbids may be a recorded gap, so it cannot be a contract failure here); the
  conservation checks and ``x_RowId`` uniqueness across the whole partition stay in the pipeline's
  gate. The ``focus_costs`` contract is therefore the schema plus a few cheap per-file checks of
  the warehouse's own columns.

The contracts, per table:

============================== ==================================================================
raw_* (one shared contract)    schema: the lineage columns typed (``x_Source``, ``x_SourceFile``,
                               ``x_SourceRow``, ``x_RowId``, …), other delivered columns allowed;
                               per file: ``x_RowId``, ``x_SourceFile`` and ``x_SourceRow`` (>= 1)
                               not null; rule: ``x_RowId`` ends with its ``x_SourceRow``
                               (``sources.common.lineage_columns``); unique over the partition: the
                               FOCUS gate's ``row_id_unique``
focus_costs                    schema: ``spec.columns.focus_schema()`` exactly typed, provider
                               ``x_`` columns allowed; per file: ``x_RowId`` not null,
                               ``BillingCurrency`` a 3-letter code, ``x_SourceFile`` and
                               ``x_SourceRow`` present; unique over the partition: the gate's
                               ``row_id_unique``. No rule: FOCUS's are in check_conformance
focus_quarantine               schema: reason, amounts (Decimal), account, currency, lineage;
                               per file: ``x_QuarantineReason`` not blank, ``x_RowId`` not null
                               and unique. Values stay as delivered (a currency that is no ISO
                               code is a quarantine reason, so no format check). No cross-column
                               rule: an amount may be null with or without ``x_UnreadableAmounts``
                               (an empty raw cost is not unreadable)
period_status                  schema: ``restatements.write_status``'s row; per file: ``status``
                               open / final / restated, ``focus_version`` >= 0, ``updated_at``;
                               rule: one row per partition
restatement_log                schema: ``restatements.LOG_SCHEMA``; per file: table a catalog
                               table, ``action`` one of ``LOG_ACTIONS``, period ``YYYY-MM``;
                               rule: ``rows_delta = rows_after − rows_before`` (0 before the first)
invoices                       schema: ``INVOICE_SCHEMA``; per file: kind, status and source from
                               their lists, currency and period formats, one row per document;
                               rules: a file document has an ``InvoiceId``; a credit memo, and
                               only a memo, names the invoice it adjusts
exchange_rates                 schema: ``EXCHANGE_RATE_SCHEMA``; per file: every column present,
                               codes 3 letters, ``Rate`` > 0, one rate per (date, base, currency);
                               rule: a currency against itself is 1
invoice_reconciliation         schema: ``RECONCILIATION_SCHEMA``; per file: ``Status`` one of
                               ``STATUSES``, source, currency, ``FocusRows`` >= 0, one row per
                               (account, currency, invoice, source); rules: ``Difference =
                               FocusBilledCost − InvoiceTotalNet`` and ``InvoiceTotalNet =
                               InvoiceTotal + CreditMemoTotal`` where each is known
sku_catalog                    schema: ``CATALOG_SCHEMA``; per file: SKU and lineage ids, category
                               Usage / Purchase, ``x_Rows`` >= 1, one row per price key; rule:
                               each unit price <= its ``…Max``
spend_forecasts                schema: ``forecasting.forecast.SPEND_FORECASTS``; per file: grain,
                               spend kind, periods, currencies and level from their lists, one row
                               per (forecast date, grain, date, series, spend kind); rules:
                               Lower <= Forecast <= Upper, a missing reporting-currency amount has a
                               note, ``x_BillingPeriod`` is the month of ``Date``
forecast_backtests             schema: ``forecasting.forecast.FORECAST_BACKTESTS``; per file: MAPEs
                               >= 0, coverage a fraction, ``Folds`` >= 0, one row per series
budget_status                  schema: ``forecasting.budgets.BUDGET_STATUS``; per file: status and
                               projection method from their lists, one row per (owner, currency);
                               rules: days elapsed <= days in period, only NO_RATE lacks the actual
cost_anomalies                 schema: ``anomalies.COST_ANOMALIES`` (every key column the settings
                               may name; null where not a key); per file: direction, status and
                               currency from their lists; rules: ``Delta = Actual − Expected``,
                               the direction is the sign of Delta, an incident starts on or
                               before its days
policy_actions                 schema: ``POLICY_ACTIONS``; per file (the appended rows):
                               mode, kind, action and outcome from their lists, ``Attempts`` >= 0,
                               one row per (evaluation, policy, signal); rules: ``Day`` is the
                               UTC day of ``x_EvaluatedAt``, an ``acted`` row made an attempt
============================== ==================================================================

Failures name the file, the row (0-based index in that file), the column, the check and the
failing value; at most ``MAX_FAILURES`` are kept, all are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import polars as pl

from focus_platform.allocation import diff, engine, rules
from focus_platform.anomalies.detect import COST_ANOMALIES, DOWN, RAISED, SUPPRESSED, UP
from focus_platform.forecasting.budgets import BUDGET_STATUS, FORECAST, RUN_RATE
from focus_platform.forecasting.forecast import (
    FORECAST_BACKTESTS,
    SERIES_KEYS,
    SPEND_FORECASTS,
)
from focus_platform.periods import PERIOD_COLUMN, SOURCE_COLUMN
from focus_platform.policies.model import (
    ACTED,
    MODES,
    OUTCOMES,
    POLICY_ACTION_KINDS,
    POLICY_ACTIONS,
    SIGNAL_KINDS,
)
from focus_platform.reconciliation.catalog import CATALOG_SCHEMA, PRICED_CATEGORIES
from focus_platform.reconciliation.currency import EXCHANGE_RATE_SCHEMA
from focus_platform.reconciliation.invoices import (
    INVOICE_SCHEMA,
    KIND_INVOICE,
    KIND_MEMO,
    SOURCE_FILE,
    SOURCE_FOCUS_DERIVED,
    SOURCE_FOCUS_ID,
    STATUS_APPLIED,
    STATUS_DERIVED,
    STATUS_INVOICE,
    STATUS_PENDING,
    STATUS_REJECTED,
)
from focus_platform.reconciliation.reconcile import RECONCILIATION_SCHEMA, STATUSES
from focus_platform.slices import row_slices
from focus_platform.sources import RAW_TABLES
from focus_platform.spec.columns import LINEAGE_SCHEMA, MONEY, NOT_BLANK, focus_schema
from focus_platform.warehouse import restatements as rs
from focus_platform.warehouse.catalog import (
    ALLOCATION_DIFF_TABLE,
    ALLOCATIONS_TABLE,
    BUDGET_STATUS_TABLE,
    COST_ANOMALIES_TABLE,
    EXCHANGE_RATES_TABLE,
    FOCUS_TABLE,
    FOCUS_V1_3_TABLE,
    FORECAST_BACKTESTS_TABLE,
    INVOICES_TABLE,
    PERIOD_STATUS,
    POLICY_ACTIONS_TABLE,
    QUARANTINE_TABLE,
    RECONCILIATION_TABLE,
    RESTATEMENT_LOG,
    SKU_CATALOG_TABLE,
    SPEND_FORECASTS_TABLE,
    TABLES,
)

if TYPE_CHECKING:  # pandera (and the pandas it imports, ~1 s) is loaded only when a contract is checked
    import pandera.polars as pa

MAX_FAILURES = 50
PART_ROWS = 1_000_000  # the rows of a file checked at a time
CURRENCY_CODE = r"^[A-Z]{3}$"
BILLING_PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
# restatement_log actions: first publication, replacement, rollback, a recorded no-op, a partition
# dropped by retention
LOG_ACTIONS = ("publish", "replace", "rollback", "unchanged", "drop")
FAILURE_SCHEMA = pl.Schema({"file": pl.String, "index": pl.Int64, "column": pl.String, "check": pl.String,
                            "failure_case": pl.String})
STAGED_FRAME = "(staged frame)"  # the label of the data checked when the caller staged no files


@dataclass(frozen=True)
class Rule:
    """A cross-column rule: ``holds`` is True where a row keeps it (null: the rule does not apply)."""
    name: str
    columns: tuple[str, ...]
    holds: pl.Expr

    def check(self) -> pa.Check:
        import pandera.polars as pa

        return pa.Check(lambda data: data.lazyframe.select(self.holds.fill_null(True)), name=self.name)


@dataclass(frozen=True)
class ValueCheck:
    """A check of a column's non-null values: the name of a built-in pandera check and its arguments
    (made into a ``pa.Check`` only when a contract is checked)."""
    kind: str
    args: tuple = ()

    def check(self) -> pa.Check:
        import pandera.polars as pa

        return getattr(pa.Check, self.kind)(*self.args)


@dataclass(frozen=True)
class Contract:
    table: str
    columns: pl.Schema  # every column a staged partition has, exactly typed (schema-level)
    not_null: tuple[str, ...] = ()  # per file
    values: dict[str, tuple[ValueCheck, ...]] = field(default_factory=dict)  # per file, on the non-null values
    key: tuple[str, ...] = ()  # per file: unique (partition columns left out: constant in a partition)
    rules: tuple[Rule, ...] = ()  # per file
    open_columns: bool = False  # columns beyond ``columns`` allowed
    dimensions: bool = False  # columns beyond ``columns`` are owner dimensions a rules file declares: not-null Strings

    def of_staged(self, names: list[str]) -> Contract:
        """The contract of one staged partition: with ``dimensions``, each column beyond the declared ones
        is a dimension, declared as a not-null ``String`` (any other type fails the schema check)."""
        if not self.dimensions:
            return self
        extra = [n for n in names if n not in self.columns]
        return replace(self, columns=pl.Schema({**self.columns, **dict.fromkeys(extra, pl.String)}),
                       not_null=(*self.not_null, *extra), dimensions=False)

    def schema_level(self) -> pa.DataFrameSchema:
        import pandera.polars as pa

        return pa.DataFrameSchema({n: pa.Column(t, nullable=True) for n, t in self.columns.items()},
                                  strict=not self.open_columns, name=self.table)

    def file_columns(self) -> list[str]:
        """The columns the per-file checks read (partition columns are not in the files)."""
        wanted = {*self.not_null, *self.values, *self.key, *(c for r in self.rules for c in r.columns)}
        partition = TABLES[self.table].partition_by
        return [n for n in self.columns.names() if n in wanted and n not in partition]

    def frame_checks(self) -> dict[str, str]:
        """The columns of each frame-level check of ``per_file`` (pandera's failure cases name none)."""
        return {**{r.name: ", ".join(r.columns) for r in self.rules},
                "multiple_fields_uniqueness": ", ".join(k for k in self.key if k in self.file_columns())}

    def per_file(self) -> pa.DataFrameSchema:
        import pandera.polars as pa

        names = self.file_columns()
        key = [k for k in self.key if k in names]
        columns = {n: pa.Column(self.columns[n], checks=[v.check() for v in self.values.get(n, ())],
                                nullable=n not in self.not_null, unique=key == [n]) for n in names}
        return pa.DataFrameSchema(columns, unique=key if len(key) > 1 else None,
                                  checks=[r.check() for r in self.rules], name=self.table)


@dataclass(frozen=True)
class ContractReport:
    table: str
    failures: pl.DataFrame  # FAILURE_SCHEMA, at most MAX_FAILURES rows
    failure_count: int  # every failing value, also those not kept
    checked_rows: int
    files: int

    @property
    def ok(self) -> bool:
        return self.failure_count == 0

    def message(self) -> str:
        if self.ok:
            return f"{self.table}: contract kept on {self.checked_rows} rows in {self.files} file(s)"
        first = self.failures.row(0, named=True)
        where = f" ({first['file']} row {first['index']})" if first["index"] is not None else ""
        kinds = self.failures.select("column", "check").unique().height
        more = f"; {kinds - 1} other column/check failing too" if kinds > 1 else ""
        return (f"{self.table}: contract broken in {self.failure_count} place(s): column {first['column']}, check "
                f"{first['check']}, e.g. {first['failure_case']!r}{where}{more}")

    def metadata(self) -> dict[str, object]:
        return {"table": self.table, "ok": self.ok, "checked_rows": self.checked_rows, "files": self.files,
                "failure_count": self.failure_count, "message": self.message(),
                "failures": self.failures.head(10).to_dicts()}


# ---------------------------------------------------------------------------------------------
# The contracts
# ---------------------------------------------------------------------------------------------
def one_of(*values: str) -> tuple[ValueCheck, ...]:
    return (ValueCheck("isin", (list(values),)),)


def matches(pattern: str) -> tuple[ValueCheck, ...]:
    return (ValueCheck("str_matches", (pattern,)),)


def at_least(bound: int) -> tuple[ValueCheck, ...]:
    return (ValueCheck("ge", (bound,)),)


def above(bound: int) -> tuple[ValueCheck, ...]:
    return (ValueCheck("gt", (bound,)),)


def between(low: int, high: int) -> tuple[ValueCheck, ...]:
    return (ValueCheck("in_range", (low, high)),)


RAW_LINEAGE = pl.Schema({n: t for n, t in LINEAGE_SCHEMA.items() if n not in ("x_SourceChanges", "x_ProviderDataGaps")})
ROW_ID_ENDS_WITH_ROW = Rule("x_RowId ends with -<x_SourceRow as 9 digits>", ("x_RowId", "x_SourceRow"),
                            pl.col("x_RowId").str.ends_with(
                                pl.concat_str([pl.lit("-"), pl.col("x_SourceRow").cast(pl.String).str.zfill(9)])))


# x_RowId uniqueness of the two big tables is not a per-file key here: the FOCUS gate checks it over the whole
# partition (``row_id_unique``, a stronger check than per staged part), and a per-file pandera key costs about
# 0.2 s per million rows on each table (hashing every x_RowId), most of what a contract adds to an ingest.
def raw_contract(table: str) -> Contract:
    return Contract(table, RAW_LINEAGE, not_null=("x_RowId", "x_SourceFile", "x_SourceRow"),
                    values={"x_SourceRow": at_least(1)}, rules=(ROW_ID_ENDS_WITH_ROW,), open_columns=True)


FOCUS_CONTRACT = Contract(
    FOCUS_TABLE, focus_schema(), not_null=("x_RowId", "x_SourceFile", "x_SourceRow"),
    values={"BillingCurrency": matches(CURRENCY_CODE)}, open_columns=True)

QUARANTINE_CONTRACT = Contract(
    QUARANTINE_TABLE,
    pl.Schema({"x_QuarantineReason": pl.String, "x_BilledCost": MONEY, "x_EffectiveCost": MONEY,
               "x_UnreadableAmounts": pl.String, "BillingAccountId": pl.String, "BillingCurrency": pl.String,
               "x_ChargeType": pl.String, **RAW_LINEAGE}),
    not_null=("x_QuarantineReason", "x_RowId", "x_SourceFile", "x_SourceRow"),
    values={"x_QuarantineReason": matches(NOT_BLANK)},  # BillingCurrency as delivered: a bad code is a reason
    key=("x_RowId",))

STATUS_CONTRACT = Contract(
    PERIOD_STATUS,
    pl.Schema({"status": pl.String, "reason": pl.String, "focus_version": pl.Int64, "deliveries": pl.List(pl.String),
               "updated_at": LINEAGE_SCHEMA["x_IngestedAt"], PERIOD_COLUMN: pl.String, SOURCE_COLUMN: pl.String}),
    not_null=("status", "focus_version", "updated_at"),
    values={"status": one_of(rs.OPEN, rs.FINAL, rs.RESTATED), "focus_version": at_least(0)},
    rules=(Rule("one row per partition", ("status",), pl.len() == 1),))

LOG_CONTRACT = Contract(
    RESTATEMENT_LOG, rs.LOG_SCHEMA,
    not_null=("logged_at", "table", "action", "forced", "version_after", "rows_after", "rows_delta"),
    values={"table": one_of(*TABLES), "action": one_of(*LOG_ACTIONS), PERIOD_COLUMN: matches(BILLING_PERIOD),
            "rows_after": at_least(0), "rows_before": at_least(0)},
    rules=(Rule("rows_delta = rows_after - rows_before", ("rows_delta", "rows_after", "rows_before"),
                pl.col("rows_delta") == pl.col("rows_after") - pl.col("rows_before").fill_null(0)),))

INVOICE_CONTRACT = Contract(
    INVOICES_TABLE, INVOICE_SCHEMA,
    not_null=("BillingAccountId", "BillingPeriod", "BillingCurrency", "InvoiceTotal", "x_InvoiceKind",
              "x_InvoiceStatus", "x_InvoiceSource"),
    values={"BillingPeriod": matches(BILLING_PERIOD), "x_AppliesToPeriod": matches(BILLING_PERIOD),
            "BillingCurrency": matches(CURRENCY_CODE), "x_InvoiceKind": one_of(KIND_INVOICE, KIND_MEMO),
            "x_InvoiceStatus": one_of(STATUS_INVOICE, STATUS_APPLIED, STATUS_PENDING, STATUS_REJECTED,
                                      STATUS_DERIVED),
            "x_InvoiceSource": one_of(SOURCE_FILE, SOURCE_FOCUS_ID, SOURCE_FOCUS_DERIVED)},
    key=("x_InvoiceSource", "BillingAccountId", "BillingPeriod", "BillingCurrency", "InvoiceId"),
    rules=(Rule("a file document has an InvoiceId", ("x_InvoiceSource", "InvoiceId"),
                (pl.col("x_InvoiceSource") != SOURCE_FILE) | pl.col("InvoiceId").is_not_null()),
           Rule("a credit memo, and only a memo, has AdjustsInvoiceId", ("x_InvoiceKind", "AdjustsInvoiceId"),
                (pl.col("x_InvoiceKind") == KIND_MEMO) == pl.col("AdjustsInvoiceId").is_not_null())))

EXCHANGE_RATE_CONTRACT = Contract(
    EXCHANGE_RATES_TABLE, EXCHANGE_RATE_SCHEMA, not_null=tuple(EXCHANGE_RATE_SCHEMA.names()),
    values={"BaseCurrency": matches(CURRENCY_CODE), "Currency": matches(CURRENCY_CODE),
            "Rate": above(0)},
    key=("Date", "BaseCurrency", "Currency"),
    rules=(Rule("a currency against itself is 1", ("BaseCurrency", "Currency", "Rate"),
                (pl.col("BaseCurrency") != pl.col("Currency")) | (pl.col("Rate") == 1)),))

RECONCILIATION_CONTRACT = Contract(
    RECONCILIATION_TABLE, RECONCILIATION_SCHEMA,
    not_null=("BillingAccountId", "BillingCurrency", "x_InvoiceSource", "Status", "x_ReconciledAt"),
    values={"BillingCurrency": matches(CURRENCY_CODE), "Status": one_of(*STATUSES),
            "x_InvoiceSource": one_of(SOURCE_FILE, SOURCE_FOCUS_ID, SOURCE_FOCUS_DERIVED),
            "FocusRows": at_least(0), "MinorUnit": above(0)},
    key=("BillingAccountId", "BillingCurrency", "InvoiceId", "x_InvoiceSource"),
    rules=(Rule("Difference = FocusBilledCost - InvoiceTotalNet", ("Difference", "FocusBilledCost", "InvoiceTotalNet"),
                pl.col("Difference") == pl.col("FocusBilledCost") - pl.col("InvoiceTotalNet")),
           Rule("InvoiceTotalNet = InvoiceTotal + CreditMemoTotal",
                ("InvoiceTotalNet", "InvoiceTotal", "CreditMemoTotal"),
                pl.col("InvoiceTotalNet") == pl.col("InvoiceTotal") + pl.col("CreditMemoTotal"))))

SKU_CATALOG_CONTRACT = Contract(
    SKU_CATALOG_TABLE, CATALOG_SCHEMA,
    not_null=("ProviderName", "x_SkuLineageId", "SkuId", "ChargeCategory", "x_Rows"),
    values={"ChargeCategory": one_of(*PRICED_CATEGORIES), "x_Rows": at_least(1),
            "PricingCurrency": matches(CURRENCY_CODE)},
    key=("ProviderName", "SkuId", "SkuPriceId", "PricingCurrency", "PricingUnit", "ChargeCategory"),
    rules=(Rule("ListUnitPrice <= x_ListUnitPriceMax", ("ListUnitPrice", "x_ListUnitPriceMax"),
                pl.col("ListUnitPrice") <= pl.col("x_ListUnitPriceMax")),
           Rule("ContractedUnitPrice <= x_ContractedUnitPriceMax", ("ContractedUnitPrice", "x_ContractedUnitPriceMax"),
                pl.col("ContractedUnitPrice") <= pl.col("x_ContractedUnitPriceMax"))))




def _without_dimensions(schema: pl.Schema, dimensions: tuple[str, ...]) -> pl.Schema:
    return pl.Schema({n: t for n, t in schema.items() if n not in dimensions})


_NO_RULES = rules.default_rules()  # its one dimension is left out: the fixed columns remain
ALLOCATION_CONTRACT = Contract(
    ALLOCATIONS_TABLE, _without_dimensions(engine.allocation_schema(_NO_RULES), _NO_RULES.dimension_names),
    not_null=("x_Source", "BillingAccountId", "BillingCurrency", "x_RowId", "x_AllocatedBilledCost",
              "x_AllocatedEffectiveCost", "x_AllocationShare", "x_AllocationWeight", "x_AllocationRuleId",
              "x_AllocationMethod", "x_RulesVersion"),
    values={"BillingCurrency": matches(CURRENCY_CODE), "x_AllocationShare": between(0, 1),
            "x_AllocationWeight": at_least(0)},
    dimensions=True)

_EMPTY_ALLOCATION = pl.LazyFrame(schema=engine.allocation_schema(_NO_RULES))
DIFF_SCHEMA = diff.allocation_diff(_EMPTY_ALLOCATION, _EMPTY_ALLOCATION, []).schema
ALLOCATION_DIFF_CONTRACT = Contract(
    ALLOCATION_DIFF_TABLE, DIFF_SCHEMA,
    not_null=("BillingCurrency", "x_ActiveBilled", "x_CandidateBilled", "x_MovedBilled", "x_ActiveEffective",
              "x_CandidateEffective", "x_MovedEffective", "x_ActiveRulesVersion"),
    values={"BillingCurrency": matches(CURRENCY_CODE)},
    rules=(Rule("x_MovedBilled = x_CandidateBilled - x_ActiveBilled",
                ("x_MovedBilled", "x_CandidateBilled", "x_ActiveBilled"),
                pl.col("x_MovedBilled") == pl.col("x_CandidateBilled") - pl.col("x_ActiveBilled")),
           Rule("x_MovedEffective = x_CandidateEffective - x_ActiveEffective",
                ("x_MovedEffective", "x_CandidateEffective", "x_ActiveEffective"),
                pl.col("x_MovedEffective") == pl.col("x_CandidateEffective") - pl.col("x_ActiveEffective"))),
    dimensions=True)

FOCUS_V1_3_CONTRACT = Contract(
    FOCUS_V1_3_TABLE, focus_schema(include_x=False, version="1.3"),
    not_null=("x_RowId", "ServiceProviderName", "HostProviderName"),
    values={"BillingCurrency": matches(CURRENCY_CODE)}, open_columns=True)

SPEND_FORECASTS_CONTRACT = Contract(
    SPEND_FORECASTS_TABLE, pl.Schema(SPEND_FORECASTS),
    not_null=("x_ForecastDate", "Grain", "Date", "x_BillingPeriod", "Owner", "BillingCurrency", "SpendKind",
              "Forecast", "Lower", "Upper", "ReportingCurrency", "x_Model", "x_ModelReason", "x_Level"),
    values={"Grain": one_of("day", "month"), "SpendKind": one_of("usage", "fee", "total"),
            "x_BillingPeriod": matches(BILLING_PERIOD), "BillingCurrency": matches(CURRENCY_CODE),
            "ReportingCurrency": matches(CURRENCY_CODE), "x_Level": between(1, 99)},
    key=("x_ForecastDate", "Grain", "Date", *SERIES_KEYS, "SpendKind"),
    rules=(Rule("Lower <= Forecast <= Upper", ("Lower", "Forecast", "Upper"),
                (pl.col("Lower") <= pl.col("Forecast")) & (pl.col("Forecast") <= pl.col("Upper"))),
           Rule("a forecast without its reporting-currency amount has a note",
                ("ForecastInReportingCurrency", "x_Note"),
                pl.col("ForecastInReportingCurrency").is_not_null() | pl.col("x_Note").is_not_null()),
           Rule("x_BillingPeriod is the month of Date", ("Date", "x_BillingPeriod"),
                pl.col("Date").dt.strftime("%Y-%m") == pl.col("x_BillingPeriod"))))

FORECAST_BACKTESTS_CONTRACT = Contract(
    FORECAST_BACKTESTS_TABLE, pl.Schema(FORECAST_BACKTESTS),
    not_null=("Owner", "BillingCurrency", "x_Model", "Folds", "Chosen", "x_Fingerprint", "x_BacktestedAt"),
    values={"ModelMAPE": at_least(0), "BaselineMAPE": at_least(0), "IntervalCoverage": between(0, 1),
            "Folds": at_least(0), "BillingCurrency": matches(CURRENCY_CODE)},
    key=SERIES_KEYS)

BUDGET_STATUS_CONTRACT = Contract(
    BUDGET_STATUS_TABLE, pl.Schema(BUDGET_STATUS),
    not_null=("Owner", "BudgetCurrency", "Budget", "DaysElapsed", "DaysInPeriod", "Status", "x_Reason", "x_AsOf"),
    values={"BudgetCurrency": matches(CURRENCY_CODE), "Status": one_of("OK", "WARN", "ERROR", "NO_RATE"),
            "x_ProjectionMethod": one_of(FORECAST, RUN_RATE), "DaysElapsed": at_least(0), "DaysInPeriod": at_least(28)},
    key=("Owner", "BudgetCurrency"),
    rules=(Rule("DaysElapsed <= DaysInPeriod", ("DaysElapsed", "DaysInPeriod"),
                pl.col("DaysElapsed") <= pl.col("DaysInPeriod")),
           Rule("only a NO_RATE budget lacks its actual", ("Status", "ActualToDate"),
                (pl.col("Status") == "NO_RATE") | pl.col("ActualToDate").is_not_null())))

COST_ANOMALIES_CONTRACT = Contract(
    COST_ANOMALIES_TABLE, pl.Schema(COST_ANOMALIES),
    not_null=("Date", "Expected", "Actual", "Delta", "Score", "Direction", "IncidentId", "IncidentStart", "Status"),
    values={"Direction": one_of(UP, DOWN), "Status": one_of(RAISED, SUPPRESSED),
            "BillingCurrency": matches(CURRENCY_CODE)},
    rules=(Rule("Delta = Actual - Expected", ("Delta", "Actual", "Expected"),
                pl.col("Delta") == pl.col("Actual") - pl.col("Expected")),
           Rule("Direction is the sign of Delta", ("Direction", "Delta"),
                (pl.col("Direction") == UP) == (pl.col("Delta") > 0)),
           Rule("IncidentStart <= Date", ("IncidentStart", "Date"), pl.col("IncidentStart") <= pl.col("Date"))))

POLICY_ACTIONS_CONTRACT = Contract(
    POLICY_ACTIONS_TABLE, pl.Schema(POLICY_ACTIONS),
    not_null=("x_EvaluatedAt", "PolicyId", "Mode", "SignalId", "Kind", "Action", "Outcome", "Attempts", "Payload",
              "Day"),
    values={"Mode": one_of(*MODES), "Kind": one_of(*SIGNAL_KINDS),
            "Action": one_of(*POLICY_ACTION_KINDS), "Outcome": one_of(*OUTCOMES),
            "Attempts": at_least(0)},
    key=("x_EvaluatedAt", "PolicyId", "SignalId"),
    rules=(Rule("Day is the UTC day of x_EvaluatedAt", ("Day", "x_EvaluatedAt"),
                pl.col("Day") == pl.col("x_EvaluatedAt").dt.date()),
           Rule("an acted row made an attempt", ("Outcome", "Attempts"),
                (pl.col("Outcome") != ACTED) | (pl.col("Attempts") >= 1))))

CONTRACTS: dict[str, Contract] = {c.table: c for c in [
    *(raw_contract(name) for name in RAW_TABLES),
    FOCUS_CONTRACT, QUARANTINE_CONTRACT, STATUS_CONTRACT, LOG_CONTRACT, INVOICE_CONTRACT, EXCHANGE_RATE_CONTRACT,
    RECONCILIATION_CONTRACT, SKU_CATALOG_CONTRACT, ALLOCATION_CONTRACT, ALLOCATION_DIFF_CONTRACT, FOCUS_V1_3_CONTRACT,
    SPEND_FORECASTS_CONTRACT, FORECAST_BACKTESTS_CONTRACT, BUDGET_STATUS_CONTRACT, COST_ANOMALIES_CONTRACT,
    POLICY_ACTIONS_CONTRACT,
]}


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------
def check_contract(table: str, staged: pl.LazyFrame, files: list[str],
                   storage_options: dict[str, str] | None = None) -> ContractReport:
    """The table's contract on a staged partition: its schema on ``staged`` (no data read), then
    the per-file checks on each of ``files`` (only the columns they need, one file at a time; on
    ``staged`` itself when nothing was staged as files). A table without a contract: ok."""
    contract = CONTRACTS.get(table)
    if contract is None:
        return ContractReport(table, pl.DataFrame(schema=FAILURE_SCHEMA), 0, 0, len(files))
    contract = contract.of_staged(staged.collect_schema().names())
    failures = _failures(contract.schema_level(), staged, None, {})
    if failures.height:  # the per-file checks need the columns as declared
        return ContractReport(table, failures.head(MAX_FAILURES), failures.height, 0, len(files))
    per_file, names, about = contract.per_file(), contract.file_columns(), contract.frame_checks()
    kept, count, rows = [], 0, 0
    for label, part, first_row in _parts(staged, files, storage_options):
        checked, found = _check_part(per_file, part.select(names), label, about, first_row)
        rows, count = rows + checked, count + found.height
        kept.append(found.head(MAX_FAILURES - sum(f.height for f in kept)))
    return ContractReport(table, pl.concat([pl.DataFrame(schema=FAILURE_SCHEMA), *kept]), count, rows, len(files))


def _parts(staged: pl.LazyFrame, files: list[str],
           storage_options: dict[str, str] | None) -> Iterator[tuple[str, pl.LazyFrame, int]]:
    """Each file's rows in parts of at most ``PART_ROWS`` (a slice of a Parquet scan reads only its own
    row groups), with the file's row number of the part's first row."""
    if not files:
        yield STAGED_FRAME, staged, 0
    for path in files:
        scan = pl.scan_parquet(path, storage_options=storage_options)
        rows = scan.select(pl.len()).collect().item()  # from the file's footer
        for start, part in row_slices(scan, PART_ROWS, rows):
            yield path, part, start


def _check_part(schema: pa.DataFrameSchema, part: pl.LazyFrame, label: str,
                about: dict[str, str], first_row: int) -> tuple[int, pl.DataFrame]:
    """Rows and failures of one part (row numbers within its file), collected here so that only one part
    is in memory at a time."""
    data = part.collect()
    return data.height, _failures(schema, data, label, about).with_columns(pl.col("index") + first_row)


def _failures(schema: pa.DataFrameSchema, data: pl.LazyFrame | pl.DataFrame, label: str | None,
              about: dict[str, str]) -> pl.DataFrame:
    """Pandera's failure cases as ``FAILURE_SCHEMA`` rows (a LazyFrame: schema-level only). A
    frame-level failure names no column: a missing or unexpected column is its failure case, a
    rule's or the key's columns come from ``about`` (check name → columns)."""
    from pandera.config import ValidationDepth, config_context
    from pandera.errors import SchemaErrors

    depth = ValidationDepth.SCHEMA_ONLY if isinstance(data, pl.LazyFrame) else ValidationDepth.SCHEMA_AND_DATA
    try:
        with config_context(validation_enabled=True, validation_depth=depth):  # never off by PANDERA_* env
            schema.validate(data, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    check, named = pl.col("check").cast(pl.String), pl.col("column").cast(pl.String)
    column = (pl.when(check.is_in(["column_in_dataframe", "column_in_schema"])).then(pl.col("failure_case"))
              .when(named.is_null() | (named == schema.name)).then(check.replace_strict(about, default=None))
              .otherwise(named))
    return cases.select(pl.lit(label, pl.String).alias("file"), pl.col("index").cast(pl.Int64), column.alias("column"),
                        check, pl.col("failure_case").cast(pl.String))
