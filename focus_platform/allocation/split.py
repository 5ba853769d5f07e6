"""Exact splits of money: shares that sum to the source amount to the last 10^-12, in integers.

An amount in Decimal(38,12) is an integer count of units of 10^-12 (its physical Int128). For one
source row with amount A and non-negative weights w_i (W = Σ w_i > 0) each target gets
floor(A·w_i / W) units (floor division, also for negative A); the leftover L = A − Σ floor_i
(0 ≤ L < n) goes one unit each to the L targets with the largest remainders A·w_i − floor_i·W, ties
to the smaller ``order`` first. Nothing is made or lost, and no Decimal is ever divided.

A·w_i does not fit Int128 for large amounts, so it is never formed: with A = q·W + r (0 ≤ r < W),
floor(A·w_i / W) = q·w_i + floor(r·w_i / W), and r·w_i < W² fits while W ≤ 10^18. A key whose
weights total more than 10^18 has them truncated to a common power of ten first (w_i // 10^k, the
smallest k that brings the total to ≤ 10^18): its proportions are then exact to 18 significant
digits of the total, and the amounts still sum exactly.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from focus_platform.spec.columns import MONEY

UNITS_PER_MONEY = 10**12  # Decimal(38,12): one unit is 10^-12
MAX_TOTAL_WEIGHT = 10**18  # largest weight total split without truncation (W² must fit Int128)
_INT128_MAX = 2**127 - 1


class SplitError(ValueError):
    """A split that cannot be made: a negative weight, or weights that total 0 for a source row."""


def money_units(expr: pl.Expr) -> pl.Expr:
    """A Decimal(38,12) amount as its exact integer count of 10^-12 units (Int128)."""
    return expr.cast(MONEY).to_physical()


def units_to_money(units: pl.Expr) -> pl.Expr:
    """Integer units of 10^-12 back to Decimal(38,12), exactly (a Decimal is never divided)."""
    return units.cast(pl.Decimal(38, 0)) * pl.lit(Decimal("1e-12"), MONEY)


def split_exact(rows: pl.LazyFrame, *, key: str | list[str], weight: str, amounts: list[str],
                order: list[str], share: str | None = None) -> pl.LazyFrame:
    """Replace each amount column by its exact share of the source row.

    ``rows``: one row per (source row ``key`` × target) with a non-negative ``weight`` (an integer
    column, or a Decimal read as its unscaled integer: one scale for the column, so a common one) and
    the source row's amounts (Decimal(38,12), repeated on each target row). ``order``: the tie-break
    columns (ascending) among equal remainders. ``share``: if given, a Decimal(38,12) column of that
    name with w_i / W rounded half-even to 12 places (informational; the amounts are exact).
    A source row whose weights total 0, or a negative weight, raises ``SplitError`` naming the key:
    the caller decides fallbacks before splitting.
    """
    keys = [key] if isinstance(key, str) else list(key)
    weight_units = _weight_units(rows.collect_schema(), weight)
    raw_total = pl.col("__w").sum().over(keys)
    lf = rows.with_columns(__w=weight_units).with_columns(
        __w=pl.struct(*keys, w=pl.col("__w"), total=raw_total).map_batches(
            lambda batch: _checked_weights(batch, keys), return_dtype=pl.Int128, is_elementwise=True)
        // _truncation(raw_total))
    lf = lf.with_columns(__W=pl.col("__w").sum().over(keys))
    lf = lf.with_columns([_exact_share(amount, keys, order).alias(amount) for amount in amounts])
    if share is not None:
        lf = lf.with_columns(_rounded_share().alias(share))
    return lf.drop("__w", "__W")


def _weight_units(schema: pl.Schema, weight: str) -> pl.Expr:
    dtype = schema[weight]
    if isinstance(dtype, pl.Decimal):
        return pl.col(weight).to_physical().cast(pl.Int128)
    if dtype.is_integer():
        return pl.col(weight).cast(pl.Int128)
    raise TypeError(f"split weight column {weight!r} is {dtype}: an integer or Decimal column is required")


def _checked_weights(batch: pl.Series, keys: list[str]) -> pl.Series:
    """The weights, after refusing a negative weight or a zero total (naming the first such key)."""
    frame = batch.struct.unnest()
    for bad, why in ((frame["w"] < 0, "a negative weight"), (frame["total"] == 0, "weights that total 0")):
        if bad.any():
            first = frame.filter(bad).row(0, named=True)
            named = ", ".join(f"{k}={first[k]!r}" for k in keys)
            raise SplitError(f"cannot split the source row {named}: {why}")
    return frame["w"]


def _truncation(total: pl.Expr) -> pl.Expr:
    """10^k, the smallest power of ten with total // 10^k ≤ MAX_TOTAL_WEIGHT (1 for most keys)."""
    divisor = pl.lit(1, pl.Int128)
    k = 1
    while MAX_TOTAL_WEIGHT * 10 ** (k - 1) < _INT128_MAX:
        divisor = pl.when(total > MAX_TOTAL_WEIGHT * 10 ** (k - 1)).then(pl.lit(10**k, pl.Int128)).otherwise(divisor)
        k += 1
    return divisor


def _exact_share(amount: str, keys: list[str], order: list[str]) -> pl.Expr:
    units = money_units(pl.col(amount))
    w, total = pl.col("__w"), pl.col("__W")
    quotient, rest = units // total, units % total  # floor semantics: 0 ≤ rest < total
    floor_share = quotient * w + (rest * w) // total
    remainder = ((rest * w) % total).cast(pl.Int64)  # < total ≤ 10^18
    leftover = units - floor_share.sum().over(keys)  # 0 ≤ leftover < number of targets
    rank = pl.struct((-remainder).alias("__r"), *order).rank("ordinal").over(keys)
    return units_to_money(floor_share + (rank.cast(pl.Int128) <= leftover).cast(pl.Int128))


def _rounded_share() -> pl.Expr:
    scaled = pl.col("__w") * UNITS_PER_MONEY  # ≤ 10^30
    total = pl.col("__W")
    quotient, rest = scaled // total, scaled % total
    round_up = (2 * rest > total) | ((2 * rest == total) & (quotient % 2 == 1))
    return units_to_money(quotient + round_up.cast(pl.Int128))
