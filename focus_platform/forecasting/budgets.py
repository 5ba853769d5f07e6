"""Budgets as data, and where each stands at a date (no Dagster here).

Budget files
------------
``<landing>/budgets/*.yaml`` (or ``*.yml``)::

    budgets:
      - owner: platform          # a value of the owner dimension
        period: 2026-12          # YYYY-MM, or a range 2026-01..2026-12: one budget per month, each of `amount`
        amount: "12000.00"       # > 0, at most 12 decimals
        currency: USD            # three letters; spend is converted to it through the exchange rates
        measure: EffectiveCost   # or BilledCost; default EffectiveCost
        warn_at: 0.5             # default 0.5
        error_at: 1.2            # default 1.2

and ``<landing>/budgets/*.csv`` with the same fields as columns (a header row, one budget a row).
``owner``, ``period``, ``amount`` and ``currency`` are required; an empty value is an absent field.
``warn_at`` and ``error_at`` are shares of the budget, above 0 and at most 10, ``warn_at`` ≤ ``error_at``.

Every value is read as its text: YAML through ``yamltext.load(..., text=True)``, which resolves no
types (``0.1`` stays the text "0.1", ``yes`` stays "yes"), CSV cells are text anyway; so both formats
pass one validation, and amounts and thresholds become ``Decimal`` from their text, never through a float. Every mistake is one
``BudgetError`` line naming the file, the place (YAML ``budgets[2].amount``, CSV ``row 3, column
amount``) and what is wrong; one (owner, period) budgeted twice names both places, across files too.

Status at a date (``budget_status``)
------------------------------------
``as_of`` is the last complete UTC day of data. **Days elapsed** counts whole UTC days from the
period's first day through ``as_of``, ``as_of`` included (as_of 2026-12-14: 14 of 31), at most the
days in the period. A budget whose period begins after ``as_of`` is left out (nothing spent yet,
nothing to report); an ended period is reported on its whole spend.

- **Actual to date**: the exact Decimal sum of the budget's ``measure`` over the owner's spend rows
  of that billing period (``x_BillingPeriod``) dated on or before ``as_of``, converted to the budget
  currency per day and billing currency (``reconciliation.currency.lookup_rates``: the rate of the
  day, else the nearest earlier one; the same currency needs no rate).
- **Projection at period end** (``x_ProjectionMethod``): ``forecast`` when the owner's daily
  forecasts (``spend_forecasts`` rows of Grain day and SpendKind total, all services and providers,
  from the owner's latest forecast made on or before ``as_of``, converted like the actuals) cover
  every remaining day of the period: actual + their sum; else ``run-rate``: actual + usage to date /
  days elapsed × remaining days (after the period end: the actual itself). Fees (SpendKind fee: a
  month-start commitment purchase, a support fee) count once as charged and are not run forward, so
  a month-start purchase does not project thirty of itself on day one; a recurring fee charged later
  in the month is not foreseen by the run rate (the forecast carries it). Forecasts model one measure (the
  forecast stage's); a budget on the other measure adds them to its own actuals.
- **BurnRate** (M13) = (actual / days elapsed) / (budget / days in period); **ProjectedShare** =
  projection / budget.
- **ProjectedOverrunDate**: the first day the cumulative spend — actual days, then the projected
  ones — exceeds the budget (an actual already over: the day it crossed); null when it does not.
- **Status**: ``ERROR`` when the projection exceeds ``error_at`` × budget (after the period end the
  projection is the actual); ``WARN`` when the actual reaches ``warn_at`` × budget and the
  projection exceeds the budget; else ``OK``. ``NO_RATE`` when a spend or forecast currency has no
  rate to the budget currency on or before a needed day: the reason names both currencies and the
  day, the figures are null, and the other budgets are still computed. ``x_Reason`` says why in
  words with the figures.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Context, Decimal, InvalidOperation, localcontext

import polars as pl

from focus_platform import yamltext
from focus_platform.allocation.inputs import landed_files
from focus_platform.forecasting.spend import USAGE
from focus_platform.periods import BillingPeriod, PeriodError, window
from focus_platform.reconciliation.currency import (
    EXCHANGE_RATE_SCHEMA,
    MissingExchangeRateError,
    lookup_rates,
    minor_unit_digits,
)
from focus_platform.spec.columns import MONEY

BUDGET_FOLDER = "budgets"  # under the landing root: *.yaml, *.yml, *.csv
YAML_SUFFIXES = (".yaml", ".yml")
CSV_SUFFIX = ".csv"
FIELDS = ("owner", "period", "amount", "currency", "measure", "warn_at", "error_at")
REQUIRED = ("owner", "period", "amount", "currency")
MEASURES = ("EffectiveCost", "BilledCost")
DEFAULT_MEASURE = "EffectiveCost"
DEFAULT_WARN_AT = Decimal("0.5")
DEFAULT_ERROR_AT = Decimal("1.2")
THRESHOLD_MAX = Decimal(10)
PERIOD_RANGE = ".."
CURRENCY_CODE = re.compile(r"^[A-Za-z]{3}$")
MONEY_UNIT = Decimal("1e-12")  # Decimal(38,12): 12 decimals, 26 integer digits
AMOUNT_LIMIT = Decimal("1e26")
EXACT = Context(prec=80)  # wide enough that no sum or product of Decimal(38,12) values is rounded

OK, WARN, ERROR, NO_RATE = "OK", "WARN", "ERROR", "NO_RATE"
FORECAST, RUN_RATE = "forecast", "run-rate"

BUDGET_STATUS = {
    "x_BillingPeriod": pl.String,
    "Owner": pl.String,
    "BudgetCurrency": pl.String,
    "Budget": MONEY,
    "ActualToDate": MONEY,
    "ForecastAtPeriodEnd": MONEY,
    "DaysElapsed": pl.Int32,
    "DaysInPeriod": pl.Int32,
    "BurnRate": pl.Float64,
    "ProjectedShare": pl.Float64,
    "ProjectedOverrunDate": pl.Date,
    "Status": pl.String,
    "x_Reason": pl.String,
    "x_AsOf": pl.Date,
    "x_ProjectionMethod": pl.String,
}
# budget_status's working rows: per budget (its index), kind (usage or fee through as_of, forecast after), billing
# currency and day
DAYS_SCHEMA = {"__budget": pl.Int64, "Kind": pl.String, "BillingCurrency": pl.String, "Date": pl.Date,
               "Amount": MONEY}
FORECAST_KIND = "forecast"  # Kind of a forecast day; spend days have their SpendKind (usage, fee)


class BudgetError(ValueError):
    """A budget file that cannot be used: one line naming the file, the entry or field and the problem."""


@dataclass(frozen=True)
class Budget:
    """One owner's budget for one month; ``file`` and ``entry`` (``budgets[2]`` or ``row 3``) say where it
    was written and take no part in comparisons."""
    owner: str
    period: BillingPeriod
    amount: Decimal
    currency: str
    measure: str = DEFAULT_MEASURE
    warn_at: Decimal = DEFAULT_WARN_AT
    error_at: Decimal = DEFAULT_ERROR_AT
    file: str = field(default="", compare=False)
    entry: str = field(default="", compare=False)


# ---------------------------------------------------------------------------------------------
# Reading budget files
# ---------------------------------------------------------------------------------------------
def budget_files(store, folder: str = BUDGET_FOLDER) -> list[tuple[str, bytes]]:
    """``(key, bytes)`` of every budget file (``.yaml``, ``.yml``, ``.csv``) under ``<landing root>/budgets``
    of a landing store: the landing zone's input files there (``landed_files``: hidden files and a README
    are not inputs), other suffixes not read."""
    return [(key, data) for key, data in landed_files(store, folder)
            if key.lower().endswith((*YAML_SUFFIXES, CSV_SUFFIX))]


def read_budgets(files: list[tuple[str, bytes]]) -> list[Budget]:
    """Every budget of the ``(path, content)`` files (YAML or CSV by suffix), one per owner and month."""
    budgets: dict[tuple[str, BillingPeriod], Budget] = {}
    for path, content in sorted(files):
        for entry, values in _entries(path, content):
            for budget in _budgets(entry, values):
                first = budgets.get((budget.owner, budget.period))
                if first is not None:
                    raise entry.error(f"a second budget for owner {budget.owner!r} and period {budget.period} "
                                      f"(the first: {first.file} {first.entry})")
                budgets[budget.owner, budget.period] = budget
    return list(budgets.values())


@dataclass(frozen=True)
class _Entry:
    """Where one budget entry sits: ``budgets[2]`` in a YAML file or ``row 3`` in a CSV file."""
    file: str
    label: str
    is_csv: bool

    def error(self, problem: str, name: str | None = None) -> BudgetError:
        where = self.label if name is None else f"{self.label}, column {name}" if self.is_csv else f"{self.label}.{name}"
        return BudgetError(f"{self.file}: {where}: {problem}")


def _entries(path: str, content: bytes) -> list[tuple[_Entry, dict]]:
    if path.lower().endswith(YAML_SUFFIXES):
        return _yaml_entries(path, content)
    if path.lower().endswith(CSV_SUFFIX):
        return _csv_entries(path, content)
    raise BudgetError(f"{path}: not a budget file: expected a name ending in .yaml, .yml or .csv")


def _yaml_entries(path: str, content: bytes) -> list[tuple[_Entry, dict]]:
    try:
        document = yamltext.load(content, path, text=True)  # text, lists and mappings only
    except yamltext.YamlError as e:
        raise BudgetError(str(e)) from None
    if document in (None, ""):
        return []
    if not isinstance(document, dict):
        raise BudgetError(f"{path}: must be a mapping with a 'budgets' list, not {yamltext.describe(document)}")
    for key in document:
        if key != "budgets":
            raise BudgetError(f"{path}: unknown field {key!r}{yamltext.did_you_mean(key, ('budgets',))}; "
                              "a budget file holds one field, 'budgets'")
    items = document.get("budgets") or []
    if not isinstance(items, list):
        raise BudgetError(f"{path}: budgets: must be a list of budgets, not {yamltext.describe(items)}")
    entries = [(_Entry(path, f"budgets[{i}]", is_csv=False), item) for i, item in enumerate(items)]
    for entry, item in entries:
        if not isinstance(item, dict):
            raise entry.error(f"must be a mapping of {', '.join(FIELDS)}, not {yamltext.describe(item)}")
    return entries


def _csv_entries(path: str, content: bytes) -> list[tuple[_Entry, dict]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BudgetError(f"{path}: not UTF-8 text (byte {e.start})") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    for i, name in enumerate(header):
        if not name:
            raise BudgetError(f"{path}: row 1: column {i + 1} has no name; columns: {', '.join(FIELDS)}")
        if name in header[:i]:
            raise BudgetError(f"{path}: row 1: column {name!r} appears twice")
    entries = []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise BudgetError(f"{path}: row {number}: {len(cells)} fields, the header has {len(header)}")
        entries.append((_Entry(path, f"row {number}", is_csv=True), dict(zip(header, cells, strict=True))))
    return entries


def _budgets(entry: _Entry, values: dict) -> list[Budget]:
    """The entry's budgets (one per month of its period), validated."""
    present: dict[str, str] = {}
    for name, value in values.items():
        if name not in FIELDS:
            raise entry.error(f"unknown field{yamltext.did_you_mean(name, FIELDS)}; allowed: {', '.join(FIELDS)}", name)
        if not isinstance(value, str):
            raise entry.error(f"must be a single value, not {yamltext.describe(value)}", name)
        if value.strip():
            present[name] = value.strip()
    for name in REQUIRED:
        if name not in present:
            raise entry.error("missing (a required field)", name)
    first, last = _period_range(entry, present["period"])
    amount = _amount(entry, present["amount"])
    currency = _currency(entry, present["currency"])
    measure = present.get("measure", DEFAULT_MEASURE)
    if measure not in MEASURES:
        raise entry.error(f"unknown measure {measure!r}{yamltext.did_you_mean(measure, MEASURES)}; "
                          f"measures: {', '.join(MEASURES)}", "measure")
    warn_at = _share(entry, "warn_at", present["warn_at"]) if "warn_at" in present else DEFAULT_WARN_AT
    error_at = _share(entry, "error_at", present["error_at"]) if "error_at" in present else DEFAULT_ERROR_AT
    if warn_at > error_at:
        raise entry.error(f"{warn_at} is above error_at {error_at}: the warning comes before the error", "warn_at")
    return [Budget(present["owner"], period, amount, currency, measure, warn_at, error_at, entry.file, entry.label)
            for period in window(first, last)]


def _period_range(entry: _Entry, text: str) -> tuple[BillingPeriod, BillingPeriod]:
    first_text, _, last_text = text.partition(PERIOD_RANGE)
    try:
        first = BillingPeriod.parse(first_text.strip(), "period")
        last = BillingPeriod.parse(last_text.strip(), "period") if last_text else first
    except PeriodError as e:
        raise entry.error(f"{e} (or a range YYYY-MM..YYYY-MM)", "period") from None
    if last < first:
        raise entry.error(f"range {text!r} is reversed: it ends before it starts", "period")
    return first, last


def _number(entry: _Entry, name: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise entry.error(f"{text!r} is not a number", name) from None
    if not value.is_finite():
        raise entry.error(f"{text!r} is not a finite number", name)
    return value


def _amount(entry: _Entry, text: str) -> Decimal:
    amount = _number(entry, "amount", text)
    if amount <= 0:
        raise entry.error(f"{text} must be greater than 0", "amount")
    if amount >= AMOUNT_LIMIT:
        raise entry.error(f"{text} is too large for Decimal(38,12) (at most 26 digits before the point)", "amount")
    with localcontext(EXACT):
        if amount.quantize(MONEY_UNIT) != amount:
            raise entry.error(f"{text} has more than 12 decimals", "amount")
    return amount


def _currency(entry: _Entry, text: str) -> str:
    if not CURRENCY_CODE.match(text):
        raise entry.error(f"{text!r} is not a currency code: expected three letters (USD, EUR, JPY)", "currency")
    return text.upper()


def _share(entry: _Entry, name: str, text: str) -> Decimal:
    share = _number(entry, name, text)
    if not 0 < share <= THRESHOLD_MAX:
        raise entry.error(f"{text} is out of range: a share of the budget above 0 and at most {THRESHOLD_MAX} "
                          "(0.5 is 50 %)", name)
    return share


# ---------------------------------------------------------------------------------------------
# Status at a date
# ---------------------------------------------------------------------------------------------
def budget_status(budgets: list[Budget], rows: pl.LazyFrame | pl.DataFrame, as_of: date, *,
                  forecasts: pl.DataFrame | None = None, rates: pl.DataFrame | None = None) -> pl.DataFrame:
    """``BUDGET_STATUS`` rows at ``as_of`` (the last complete UTC day of data) of every budget whose period
    has begun, from SPEND_ROWS ``rows``, SPEND_FORECASTS ``forecasts`` and EXCHANGE_RATE_SCHEMA ``rates``
    (None: only spend in the budget's currency converts). See the module docstring."""
    begun = sorted((b for b in budgets if b.period.start.date() <= as_of), key=lambda b: (b.period, b.owner))
    if not begun:
        return pl.DataFrame(schema=BUDGET_STATUS)
    budget_keys = pl.DataFrame(
        [(i, b.owner, str(b.period), b.measure, b.period.start.date(), b.period.end.date() - timedelta(days=1))
         for i, b in enumerate(begun)],
        schema={"__budget": pl.Int64, "Owner": pl.String, "x_BillingPeriod": pl.String, "__measure": pl.String,
                "__first": pl.Date, "__last": pl.Date}, orient="row")
    days = pl.concat([_actual_days(rows, budget_keys, as_of), _forecast_days(forecasts, budget_keys, as_of)])
    # only the legs these conversions use: cross rates over the whole ECB history take half a second a lookup
    currencies = sorted({b.currency for b in begun} | set(days["BillingCurrency"]))
    rates = (rates if rates is not None else pl.DataFrame(schema=EXCHANGE_RATE_SCHEMA)).filter(
        pl.col("Currency").is_in(currencies))
    converted: dict[int, pl.DataFrame | MissingExchangeRateError] = {}
    for currency in sorted({b.currency for b in begun}):
        indexes = [i for i, b in enumerate(begun) if b.currency == currency]
        converted.update(_in_currency(days.filter(pl.col("__budget").is_in(indexes)), indexes, currency, rates))
    return pl.DataFrame([_status(budget, converted[i], as_of) for i, budget in enumerate(begun)], schema=BUDGET_STATUS)


def _actual_days(rows: pl.LazyFrame | pl.DataFrame, budget_keys: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per budget, billing currency and day through as_of: the exact sum of the budget's measure over its
    owner's spend rows of its period, per SpendKind (``Kind``)."""
    measure = pl.coalesce(*(pl.when(pl.col("__measure") == name).then(pl.col(name)) for name in MEASURES))
    return (rows.lazy()
            .filter(pl.col("Owner").is_in(budget_keys["Owner"].unique().to_list())
                    & pl.col("x_BillingPeriod").is_in(budget_keys["x_BillingPeriod"].unique().to_list())
                    & (pl.col("Date") <= as_of))
            .group_by("Owner", "x_BillingPeriod", "SpendKind", "BillingCurrency", "Date")
            .agg(*(pl.col(name).sum() for name in MEASURES))
            .join(budget_keys.lazy(), on=["Owner", "x_BillingPeriod"])
            .select("__budget", pl.col("SpendKind").alias("Kind"), "BillingCurrency", "Date", measure.alias("Amount"))
            .cast(DAYS_SCHEMA).collect())  # type: ignore[arg-type]


def _forecast_days(forecasts: pl.DataFrame | None, budget_keys: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per budget, billing currency and day after as_of in its period: the sum of its owner's daily total
    forecasts (all services and providers) of the owner's latest forecast made on or before as_of (``Kind``
    forecast)."""
    if forecasts is None:
        return pl.DataFrame(schema=DAYS_SCHEMA)
    made = pl.col("x_ForecastDate")
    return (forecasts.lazy()
            .filter((pl.col("Grain") == "day") & (pl.col("SpendKind") == "total") & (made <= as_of)
                    & (pl.col("Date") > as_of) & pl.col("Owner").is_in(budget_keys["Owner"].unique().to_list()))
            .filter(made == made.max().over("Owner"))
            .join(budget_keys.lazy(), on="Owner")
            .filter(pl.col("Date").is_between(pl.col("__first"), pl.col("__last")))
            .group_by("__budget", "BillingCurrency", "Date").agg(pl.col("Forecast").sum().alias("Amount"))
            .select("__budget", pl.lit(FORECAST_KIND).alias("Kind"), "BillingCurrency", "Date", "Amount")
            .cast(DAYS_SCHEMA).collect())  # type: ignore[arg-type]


def _in_currency(days: pl.DataFrame, indexes: list[int], currency: str,
                 rates: pl.DataFrame) -> dict[int, pl.DataFrame | MissingExchangeRateError]:
    """Per budget index: its ``days`` summed per ``Kind`` and ``Date`` in ``currency`` (each billing
    currency's daily amount at the rate of its day, else the nearest earlier), sorted by day; or the
    ``MissingExchangeRateError`` of its first day without a rate. One rate lookup for all the budgets; when
    it fails, the budgets with the day it names are set apart and the lookup runs again for the others."""
    missing: dict[int, MissingExchangeRateError] = {}
    while True:
        pending = days.filter(~pl.col("__budget").is_in(list(missing)))
        try:
            looked_up = lookup_rates(pending.select("BillingCurrency", pl.col("Date").alias("__rate_date")), rates,
                                     currency)
            break
        except MissingExchangeRateError as e:
            hit = pending.filter((pl.col("BillingCurrency") == e.currency) & (pl.col("Date") == e.date))
            if hit.is_empty():  # not a day of these budgets: the lookup is wrong, not a rate missing
                raise
            missing.update(dict.fromkeys(hit["__budget"].unique().to_list(), e))
    converted = (pending.join(looked_up, left_on=["BillingCurrency", "Date"], right_on=["BillingCurrency", "__rate_date"])
                 .group_by("__budget", "Kind", "Date")
                 .agg((pl.col("Amount") * pl.col("x_ExchangeRate")).cast(MONEY).sum())
                 .sort("Date").partition_by("__budget", as_dict=True, include_key=False))
    empty = pl.DataFrame(schema={"Kind": pl.String, "Date": pl.Date, "Amount": MONEY})
    return {i: missing[i] if i in missing else converted.get((i,), empty) for i in indexes}


def _status(budget: Budget, days: pl.DataFrame | MissingExchangeRateError, as_of: date) -> dict:
    """One BUDGET_STATUS row from the budget's days (``Kind``, ``Date``, ``Amount`` in its currency: usage and
    fee days through as_of, forecast days after) or the exchange rate it lacks."""
    first_day = budget.period.start.date()
    last_day = budget.period.end.date() - timedelta(days=1)
    elapsed = (min(as_of, last_day) - first_day).days + 1
    row = {"x_BillingPeriod": str(budget.period), "Owner": budget.owner, "BudgetCurrency": budget.currency,
           "Budget": budget.amount, "DaysElapsed": elapsed, "DaysInPeriod": last_day.day, "x_AsOf": as_of}
    if isinstance(days, MissingExchangeRateError):
        return {**row, "Status": NO_RATE,
                "x_Reason": f"{days.currency} cannot be converted to the budget currency {days.reporting}: no exchange "
                            f"rate {days.currency}->{days.reporting} on or before {days.date.isoformat()}"}
    spent = days.filter(pl.col("Kind") != FORECAST_KIND)
    actual_days = spent.group_by("Date").agg(pl.col("Amount").sum()).sort("Date").rows()
    forecast_days = days.filter(pl.col("Kind") == FORECAST_KIND).select("Date", "Amount").rows()
    with localcontext(EXACT):
        actual = sum((amount for _, amount in actual_days), Decimal(0))
        usage = sum(spent.filter(pl.col("Kind") == USAGE)["Amount"], Decimal(0))
        remaining = [as_of + timedelta(days=k) for k in range(1, (last_day - min(as_of, last_day)).days + 1)]
        if remaining and len(forecast_days) == len(remaining):
            method, projected = FORECAST, _cumulative(forecast_days, actual)
        else:
            method = RUN_RATE
            projected = [(day, (actual + usage * k / elapsed).quantize(MONEY_UNIT))
                         for k, day in enumerate(remaining, start=1)]
        projection = projected[-1][1] if projected else actual
        crossed = (day for day, total in _cumulative(actual_days, Decimal(0)) + projected if total > budget.amount)
        status = (ERROR if projection > budget.error_at * budget.amount
                  else WARN if actual >= budget.warn_at * budget.amount and projection > budget.amount else OK)
        return {**row, "ActualToDate": actual, "ForecastAtPeriodEnd": projection,
                "BurnRate": float(actual * last_day.day / (elapsed * budget.amount)),
                "ProjectedShare": float(projection / budget.amount), "ProjectedOverrunDate": next(crossed, None),
                "Status": status, "x_ProjectionMethod": method,
                "x_Reason": _reason(budget, status, actual, projection, method, elapsed, last_day.day,
                                    ended=as_of >= last_day)}


def _cumulative(days: list[tuple[date, Decimal]], start: Decimal) -> list[tuple[date, Decimal]]:
    """``(day, start + the amounts through that day)`` for each day."""
    totals, total = [], start
    for day, amount in days:
        total += amount
        totals.append((day, total))
    return totals


def _reason(budget: Budget, status: str, actual: Decimal, projection: Decimal, method: str, elapsed: int,
            days_in: int, *, ended: bool) -> str:
    """The status in words with its figures."""
    def money(value: Decimal) -> str:
        return f"{value:,.{minor_unit_digits(budget.currency)}f} {budget.currency}"

    def percent(share: Decimal) -> str:
        return f"{share * 100:.1f} %"

    outlook = (f"spent {money(actual)} in the period" if ended
               else f"projected {money(projection)} at period end ({method})")
    outlook += f", {percent(projection / budget.amount)} of the {money(budget.amount)} budget"
    to_date = f"actual to date {money(actual)} ({percent(actual / budget.amount)}) after {elapsed} of {days_in} days"
    if status == ERROR:
        return f"{outlook}: above the error threshold {percent(budget.error_at)}; {to_date}"
    if status == WARN:
        return f"{to_date}: at or above the warning threshold {percent(budget.warn_at)}, and {outlook}: over budget"
    return (f"{outlook}; {to_date}; warns at {percent(budget.warn_at)} spent with a projected overrun, "
            f"errors above {percent(budget.error_at)} projected")
