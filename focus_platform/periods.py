"""Billing periods and partition keys, parsed and validated once (no Dagster here).

- ``BillingPeriod``: a calendar month, ``YYYY-MM`` with a month 01 to 12. ``BillingPeriod.parse``
  is the one place a period is validated; everything past it holds a ``BillingPeriod``.
- ``PartitionKey``: the one shape of a partition key from sensor cursor to Delta predicate:
  a billing period, an export source, both or neither (an unpartitioned table). Its text,
  ``str(key)``, is Dagster's partition key string: ``YYYY-MM|source`` for billing period × export
  source (Dagster joins the dimensions ``billing_period`` and ``export_source`` in name order),
  ``YYYY-MM`` for a period alone, ``""`` for an unpartitioned table. ``key.values()`` gives the Delta
  partition values (``x_BillingPeriod``, ``x_Source``) the warehouse filters and writes with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

PERIOD_COLUMN = "x_BillingPeriod"
SOURCE_COLUMN = "x_Source"
KEY_SEPARATOR = "|"
BILLING_PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PeriodError(ValueError):
    """A text that is not a billing period (YYYY-MM, month 01 to 12)."""


@dataclass(frozen=True, order=True)
class BillingPeriod:
    year: int
    month: int

    def __post_init__(self):
        if not (1 <= self.month <= 12 and 1 <= self.year <= 9999):
            raise PeriodError(f"{self.year:04d}-{self.month:02d} is not a billing period: the month must be 01 to 12")

    @classmethod
    def parse(cls, text: object, what: str = "billing period") -> BillingPeriod:
        """``YYYY-MM`` (a ``BillingPeriod`` passes through); anything else raises ``PeriodError``
        naming ``what`` and the value."""
        if isinstance(text, BillingPeriod):
            return text
        match = BILLING_PERIOD_PATTERN.match(text) if isinstance(text, str) else None
        if not match:
            raise PeriodError(f"{what} {text!r} is not a billing period: expected YYYY-MM with a month 01 to 12")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, moment: date | datetime) -> BillingPeriod:
        """The billing period holding a date or a moment (an aware moment is taken in UTC)."""
        if isinstance(moment, datetime) and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def current(cls, now: datetime | None = None) -> BillingPeriod:
        """The open month (UTC)."""
        return cls.of(now or datetime.now(UTC))

    def shift(self, months: int) -> BillingPeriod:
        index = self.year * 12 + self.month - 1 + months
        return BillingPeriod(index // 12, index % 12 + 1)

    def months_since(self, earlier: BillingPeriod) -> int:
        """How many months ``earlier`` lies before this period (0 for the same period)."""
        return (self.year - earlier.year) * 12 + self.month - earlier.month

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: the first moment of the next period."""
        return self.shift(1).start

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def is_billing_period(text: object) -> bool:
    return isinstance(text, str) and bool(BILLING_PERIOD_PATTERN.match(text))


def window(first: BillingPeriod, last: BillingPeriod) -> list[BillingPeriod]:
    """Every period from ``first`` to ``last``, both included."""
    return [first.shift(i) for i in range(last.months_since(first) + 1)]


@dataclass(frozen=True, order=True)
class PartitionKey:
    """A partition of a table: billing period, export source, both, or neither (unpartitioned)."""

    period: BillingPeriod | None = None
    source: str | None = None

    @classmethod
    def of(cls, period: BillingPeriod | str | None = None, source: str | None = None) -> PartitionKey:
        return cls(BillingPeriod.parse(period) if period is not None else None, source)

    @classmethod
    def parse(cls, text: str) -> PartitionKey:
        """The text of ``str(key)``; also the ``source|YYYY-MM`` keys of delivery-sensor cursors
        written before this shape (read once, written back in this shape)."""
        if not text:
            return cls()
        if KEY_SEPARATOR not in text:
            return cls(BillingPeriod.parse(text))
        first, rest = text.split(KEY_SEPARATOR, 1)
        if is_billing_period(first):
            return cls(BillingPeriod.parse(first), rest)
        last_source, _, last = text.rpartition(KEY_SEPARATOR)
        if is_billing_period(last):  # the earlier cursor shape: source|period
            return cls(BillingPeriod.parse(last), last_source)
        raise PeriodError(f"partition key {text!r} holds no billing period (expected YYYY-MM|source or YYYY-MM)")

    def values(self) -> dict[str, str]:
        """The Delta partition values of this key (``x_BillingPeriod``, ``x_Source``: those it has)."""
        out = {}
        if self.period is not None:
            out[PERIOD_COLUMN] = str(self.period)
        if self.source is not None:
            out[SOURCE_COLUMN] = self.source
        return out

    def __str__(self) -> str:
        if self.period is None:
            return "" if self.source is None else self.source
        return str(self.period) if self.source is None else f"{self.period}{KEY_SEPARATOR}{self.source}"

    def describe(self) -> str:
        """For messages: ``billing period 2024-01, export source aws``."""
        parts = ([f"billing period {self.period}"] if self.period else []) + \
            ([f"export source {self.source}"] if self.source is not None else [])
        return ", ".join(parts) or "the whole table"
