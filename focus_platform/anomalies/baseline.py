"""The seasonal baseline and robust score of daily usage cost, for every series and day at once (numpy; floats
only here: the amounts compared and stored stay exact Decimal sums in ``detect``).

For a series' day ``t``, from its days before ``t`` only:

1. weekday factor ``F[t]``: the median, over the same weekday of the last ``PROFILE_WEEKS`` weeks, of
   that day's cost divided by the mean of the 7 days centred on it (a full week: every weekday once, so
   the ratio is the weekday's effect whatever the level; a 1–3-day spike moves one ratio of eight);
2. level ``L[t]``: the median of the last ``LEVEL_DAYS`` days' costs divided by their own weekday factor
   (a spike of up to three days does not move it; after four days of a level shift it has moved: the
   shift's first days are the anomaly, the following days are the new normal);
3. expected ``E[t] = L[t] × F[t]``;
4. scale ``σ[t]``: the expected cost × 1.4826 × the median of the last ``SCALE_DAYS`` days' absolute
   relative residuals |cost − expected| / expected (a robust standard deviation: a few anomalous days do
   not move it; relative, so that after a level shift the noise is measured at the new level), at least
   ``RELATIVE_SCALE_FLOOR`` of the expected cost;
5. score ``(cost[t] − E[t]) / σ[t]``, or the two-day score ``(score[t − 1] + score[t]) / √2`` when it is
   larger and both days score at least ``TWO_DAY_LEAST`` the same way (a lasting step a little under the
   threshold on its first day passes on its second).

Unknown days (before a series' first day, known one-offs) are NaN: they feed no factor, level or scale
and are not scored. A day is scored when its series has ``min_history_days`` known days before it and
the factor, level and scale could all be estimated (with complete days: from its 29th day).

Not modelled: day-of-month patterns and trends. The level lags them by about four days and the scale
widens to cover it: on the generated data (noise 5 %, a 10 % day-of-month cycle) σ is about 8 % of the
daily cost, so at the default threshold (7.5) a step must be about 60 % of the daily cost to be raised on
its first day, or about 45 % held over two days (the two-day score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROFILE_WEEKS = 8
LEVEL_DAYS = 7
SCALE_DAYS = 28
MAD_TO_SIGMA = 1.4826  # median absolute deviation → standard deviation of a normal distribution
RELATIVE_SCALE_FLOOR = 0.02
SMALLEST_SCALE = 1e-6  # an expected cost of 0: any cost is far (the cost floor decides)
TWO_DAY_LEAST = 3.0  # |score| of each of two days for their two-day score
LEAST_LEVEL_DAYS = LEVEL_DAYS // 2 + 1  # known of LEVEL_DAYS
LEAST_SCALE_DAYS = 7  # residuals known of SCALE_DAYS
LEAST_FACTOR_WEEKS = 2  # ratios known of PROFILE_WEEKS


@dataclass(frozen=True)
class Scores:
    """Per series × day (rows × columns of the cost matrix)."""
    expected: np.ndarray
    factor: np.ndarray
    level: np.ndarray
    scale: np.ndarray
    score: np.ndarray
    scored: np.ndarray  # bool


def score(costs: np.ndarray, min_history_days: int) -> Scores:
    """``costs``: series × consecutive days, NaN where unknown."""
    known = ~np.isnan(costs)
    history = np.cumsum(known, axis=1) - known  # known days before each day
    weekly_mean = _known_mean(np.stack([_lag(costs, k) for k in range(-3, 4)]), least=6)
    ratio = _divide(costs, weekly_mean)
    factor = _known_median(np.stack([_lag(ratio, 7 * k) for k in range(1, PROFILE_WEEKS + 1)]),
                           least=LEAST_FACTOR_WEEKS)
    deseasonalized = _divide(costs, factor)
    level = _known_median(np.stack([_lag(deseasonalized, k) for k in range(1, LEVEL_DAYS + 1)]),
                          least=LEAST_LEVEL_DAYS)
    expected = level * factor
    relative = np.abs(_divide(costs - expected, expected))
    spread = _known_median(np.stack([_lag(relative, k) for k in range(1, SCALE_DAYS + 1)]),
                           least=LEAST_SCALE_DAYS)
    scale = np.fmax(MAD_TO_SIGMA * spread, RELATIVE_SCALE_FLOOR) * np.abs(expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (costs - expected) / np.fmax(scale, SMALLEST_SCALE)
    scored = known & (history >= min_history_days) & np.isfinite(scores)
    scores = np.where(scored, scores, np.nan)
    return Scores(expected, factor, level, scale, _with_two_day_scores(scores), scored)


def _with_two_day_scores(scores: np.ndarray) -> np.ndarray:
    """Each day's score, or the two-day score (yesterday's + today's) / √2 where that is larger and both days
    lean the same way by at least ``TWO_DAY_LEAST``: a lasting step a little under the threshold on its first
    day passes it on the second; a one-day spike does not make the day after anomalous."""
    yesterday = _lag(scores, 1)
    both = (np.sign(yesterday) == np.sign(scores)) & (np.minimum(np.abs(yesterday), np.abs(scores)) >= TWO_DAY_LEAST)
    two_day = (yesterday + scores) / np.sqrt(2)
    return np.where(both & (np.abs(two_day) > np.abs(scores)), two_day, scores)


def _lag(values: np.ndarray, days: int) -> np.ndarray:
    """``values`` moved ``days`` later along the day axis (earlier for negative ``days``), NaN filled."""
    moved = np.full_like(values, np.nan)
    if abs(days) >= values.shape[1]:  # fewer days than the lag: nothing that far back (or ahead)
        return moved
    if days >= 0:
        moved[:, days:] = values[:, :values.shape[1] - days]
    else:
        moved[:, :days] = values[:, -days:]
    return moved


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _known_mean(stack: np.ndarray, least: int) -> np.ndarray:
    """The mean over the first axis of the known values; NaN where fewer than ``least`` are known."""
    count = np.sum(~np.isnan(stack), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= least, np.nansum(stack, axis=0) / count, np.nan)


def _known_median(stack: np.ndarray, least: int) -> np.ndarray:
    """The median over the first axis of the known values; NaN where fewer than ``least`` are known."""
    count = np.sum(~np.isnan(stack), axis=0)
    ordered = np.sort(stack, axis=0)  # NaN last
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    return np.where(count >= least, (low + high) / 2, np.nan)
