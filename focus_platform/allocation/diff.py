"""Shadow mode: what a candidate rules version would move between owners, compared with the active one.

Both sides are ``cost_allocations`` rows of the same FOCUS data; per billing period, currency and owner
(the given dimensions) the allocated amounts of each side, and the move (candidate − active). Only
owners whose amounts differ are listed; per period and currency the moves sum to 0 when both sides
allocate the same FOCUS rows (allocation conserves every row's cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import polars as pl

from focus_platform.spec.columns import MONEY

GROUP = ["x_BillingPeriod", "BillingCurrency"]
AMOUNTS = {"Billed": "x_AllocatedBilledCost", "Effective": "x_AllocatedEffectiveCost"}


def allocation_diff(active: pl.LazyFrame, candidate: pl.LazyFrame, dims: Sequence[str]) -> pl.DataFrame:
    """Columns: x_BillingPeriod, BillingCurrency, the dims, x_ActiveBilled, x_CandidateBilled, x_MovedBilled,
    x_ActiveEffective, x_CandidateEffective, x_MovedEffective, x_ActiveRulesVersion, x_CandidateRulesVersion;
    sorted by period, currency and dims. Both sides must have every dimension in ``dims``."""
    dims = list(dims)
    for side, frame in (("active", active), ("candidate", candidate)):
        missing = [d for d in dims if d not in frame.collect_schema()]
        if missing:
            raise ValueError(f"allocation_diff: the {side} allocation has no dimension column {', '.join(missing)}")
    keys = [*GROUP, *dims]
    totals = _totals(active, keys, "Active").join(_totals(candidate, keys, "Candidate"), on=keys, how="full",
                                                  coalesce=True, nulls_equal=True)
    moved = [(pl.col(f"x_Candidate{kind}") - pl.col(f"x_Active{kind}")).cast(MONEY).alias(f"x_Moved{kind}")
             for kind in AMOUNTS]
    totals = totals.with_columns(pl.col(f"x_{side}{kind}").fill_null(Decimal(0)).cast(MONEY)
                                 for side in ("Active", "Candidate") for kind in AMOUNTS).with_columns(moved)
    differs = pl.any_horizontal(pl.col(f"x_Moved{kind}") != 0 for kind in AMOUNTS)
    versions = _versions(active, "x_ActiveRulesVersion").join(
        _versions(candidate, "x_CandidateRulesVersion"), on="x_BillingPeriod", how="full", coalesce=True)
    return (totals.filter(differs).join(versions, on="x_BillingPeriod", how="left")
            .select(*keys, *[f"x_{c}{kind}" for kind in AMOUNTS for c in ("Active", "Candidate", "Moved")],
                    "x_ActiveRulesVersion", "x_CandidateRulesVersion")
            .sort(keys, nulls_last=True).collect())


def _totals(rows: pl.LazyFrame, keys: list[str], side: str) -> pl.LazyFrame:
    return rows.group_by(keys).agg(pl.col(column).sum().alias(f"x_{side}{kind}") for kind, column in AMOUNTS.items())


def _versions(rows: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The rules version(s) of each period's rows (one, unless the side mixes versions: then joined by ', ')."""
    return rows.group_by("x_BillingPeriod").agg(
        pl.col("x_RulesVersion").unique().sort().str.join(", ").alias(name))
