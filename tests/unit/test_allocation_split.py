"""split_exact: shares sum exactly to the source amount (to 10^-12), by the documented largest remainder.

The expected shares are computed independently with Python integers and Decimal from the rule in
design12.md (floor(A·w_i/W), leftover units to the largest remainders, ties to the smaller order).
"""

from __future__ import annotations

import random
from decimal import Decimal, localcontext

import polars as pl
import pytest

from focus_platform.allocation.split import MAX_TOTAL_WEIGHT, SplitError, split_exact

UNIT = Decimal("1e-12")
MAX_MONEY = Decimal("99999999999999999999999999.999999999999")
MIN_MONEY = Decimal("-99999999999999999999999999.999999999999")  # not -MAX_MONEY: that rounds to 28 digits


@pytest.fixture(autouse=True)
def exact_decimal_context():
    """38-digit amounts: Python's default 28-digit context would round the independent check itself."""
    with localcontext(prec=100):
        yield


def money(units: int) -> Decimal:
    return Decimal(f"{units}e-12")


def frame(sources: dict[str, tuple[Decimal, Decimal, list[tuple[str, int]]]], weight=pl.Int64) -> pl.LazyFrame:
    """source key → (billed, effective, [(target, weight), …]) as one row per source × target."""
    rows = [{"key": key, "target": target, "weight": weight, "billed": billed, "effective": effective}
            for key, (billed, effective, targets) in sources.items() for target, weight in targets]
    return pl.LazyFrame(rows, schema={"key": pl.String, "target": pl.String, "weight": weight,
                                      "billed": pl.Decimal(38, 12), "effective": pl.Decimal(38, 12)})


def split(lf: pl.LazyFrame, **kwargs) -> dict[tuple[str, str], dict]:
    out = split_exact(lf, key="key", weight="weight", amounts=["billed", "effective"], order=["target"],
                      **kwargs).collect()
    return {(row["key"], row["target"]): row for row in out.iter_rows(named=True)}


def expected_shares(amount: Decimal, targets: list[tuple[str, int]]) -> dict[str, Decimal]:
    """The rule, in Python integers: floors, then one unit each to the largest remainders."""
    units = int(amount.scaleb(12))
    total = sum(w for _, w in targets)
    floors = {t: units * w // total for t, w in targets}
    remainders = {t: units * w - floors[t] * total for t, w in targets}
    leftover = units - sum(floors.values())
    assert 0 <= leftover < len(targets)
    winners = sorted(remainders, key=lambda t: (-remainders[t], t))[:leftover]
    return {t: (floors[t] + (t in winners)) * UNIT for t, _ in targets}


def assert_exact(lf: pl.LazyFrame, sources: dict) -> None:
    got = split(lf)
    for key, (billed, effective, targets) in sources.items():
        for column, amount in (("billed", billed), ("effective", effective)):
            want = expected_shares(amount, targets)
            shares = {t: got[(key, t)][column] for t, _ in targets}
            assert shares == want, (key, column)
            assert sum(shares.values()) == amount, (key, column)


@pytest.mark.parametrize("amount", [Decimal("100"), Decimal("-100"), Decimal("0"), Decimal("1e-12"),
                                    Decimal("-1e-12"), Decimal("0.000000000002"), MAX_MONEY, MIN_MONEY,
                                    Decimal("12345678901234567890123456.789012345678")])
def test_three_way_even_split_sums_exactly(amount):
    sources = {"r": (amount, -amount, [("a", 1), ("b", 1), ("c", 1)])}
    assert_exact(frame(sources), sources)


def test_one_unit_goes_to_the_first_target_in_order_on_a_tie():
    got = split(frame({"r": (Decimal("1e-12"), Decimal("-1e-12"), [("b", 1), ("a", 1), ("c", 1)])}))
    assert {t: got[("r", t)]["billed"] for t in "abc"} == {"a": UNIT, "b": 0, "c": 0}
    # -1 unit: floors are -1, -1, -1 (sum -3), two units back to the two smallest targets
    assert {t: got[("r", t)]["effective"] for t in "abc"} == {"a": 0, "b": 0, "c": -UNIT}


def test_largest_remainder_wins_before_order():
    # 10 units by 1:2 → 3.33 and 6.67: the larger remainder (target z) takes the leftover unit
    got = split(frame({"r": (Decimal("10e-12"), Decimal("0"), [("a", 1), ("z", 2)])}))
    assert (got[("r", "a")]["billed"], got[("r", "z")]["billed"]) == (3 * UNIT, 7 * UNIT)


def test_zero_weights_get_nothing():
    sources = {"r": (Decimal("7.77"), Decimal("-0.01"), [("a", 0), ("b", 3), ("c", 0), ("d", 1)])}
    got = split(frame(sources))
    assert got[("r", "a")]["billed"] == got[("r", "c")]["billed"] == 0
    assert_exact(frame(sources), sources)


def test_many_targets_and_many_source_rows():
    rng = random.Random(7)
    sources = {f"r{i}": (money(rng.randint(-10**15, 10**15)), money(rng.randint(0, 10**6)),
                         [(f"t{j:04}", rng.randint(0, 9)) for j in range(rng.choice([1, 2, 500]))])
               for i in range(20)}
    sources = {k: (b, e, t if sum(w for _, w in t) else t + [("zz", 1)]) for k, (b, e, t) in sources.items()}
    assert_exact(frame(sources), sources)


def test_random_decimals_against_python_decimal():
    """Property-style: random amounts (any sign, 1e-12 to 1e26) and weights; shares sum to the amount,
    each share is within one unit of A·w/W computed in Decimal, and equals the independent rule."""
    rng = random.Random(12)
    sources = {}
    for i in range(300):
        digits = rng.randint(0, 38)
        amount = money(rng.randint(-(10**digits - 1), 10**digits - 1))
        targets = [(f"t{j}", rng.choice([0, 1, rng.randint(1, 10**rng.randint(1, 9))]))
                   for j in range(rng.randint(1, 12))]
        if not sum(w for _, w in targets):
            targets[0] = ("t0", 1)
        sources[f"r{i}"] = (amount, -amount, targets)
    assert_exact(frame(sources), sources)
    got = split(frame(sources))
    for key, (amount, _, targets) in sources.items():
        total = sum(w for _, w in targets)
        for target, weight in targets:
            ideal = amount * weight / total  # Decimal, 100 significant digits
            assert abs(got[(key, target)]["billed"] - ideal) < UNIT


def test_decimal_weights_and_the_rounded_share():
    lf = frame({"r": (Decimal("1"), Decimal("1"), [("a", 0), ("b", 0), ("c", 0)])}).with_columns(
        weight=pl.Series([Decimal("0.5"), Decimal("0.25"), Decimal("0.000000000001")], dtype=pl.Decimal(38, 12)))
    got = split(lf, share="share")
    total = Decimal("0.750000000001")
    for target, weight in (("a", Decimal("0.5")), ("b", Decimal("0.25")), ("c", Decimal("1e-12"))):
        assert got[("r", target)]["share"] == (weight / total).quantize(UNIT)  # half-even, Decimal's default rounding
    assert sum(row["billed"] for row in got.values()) == 1


def test_weights_totalling_more_than_1e18_are_truncated_to_a_common_power_of_ten():
    # total 3·10^20: weights read as w // 10^3, proportions exact to 18 digits, amounts still exact
    sources = {"r": (MAX_MONEY, Decimal("-5"), [("a", 10**20), ("b", 2 * 10**20), ("c", 999)])}
    lf = frame(sources, weight=pl.Int128)
    got = split(lf)
    assert got[("r", "c")]["billed"] == 0  # 999 // 1000 = 0
    assert sum(row["billed"] for row in got.values()) == MAX_MONEY
    assert sum(row["effective"] for row in got.values()) == Decimal("-5")
    assert MAX_TOTAL_WEIGHT == 10**18


def test_zero_total_weight_is_refused_naming_the_source_row():
    lf = frame({"ok": (Decimal("1"), Decimal("1"), [("a", 1)]),
                "empty": (Decimal("1"), Decimal("1"), [("a", 0), ("b", 0)])})
    with pytest.raises(SplitError, match="key='empty': weights that total 0"):
        split(lf)


def test_a_negative_weight_is_refused():
    with pytest.raises(SplitError, match="negative weight"):
        split(frame({"r": (Decimal("1"), Decimal("1"), [("a", 2), ("b", -1)])}))


def test_a_float_weight_is_refused():
    lf = frame({"r": (Decimal("1"), Decimal("1"), [("a", 1)])}).with_columns(pl.col("weight").cast(pl.Float64))
    with pytest.raises(TypeError, match="weight"):
        split(lf)
