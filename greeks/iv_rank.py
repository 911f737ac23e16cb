"""IV rank and IV percentile of today's implied volatility against a daily look-back history.

rank = 100 (current - min) / (max - min), min and max taken over the history and the current value together (so
the rank stays in 0-100: a new high is 100, a new low 0); percentile = 100 x (share of history days strictly
below current). Non-finite history values are ignored. With fewer than ``min_days`` usable days both are NaN
and ``ready`` is False ("insufficient history"). When max == min (a flat history and the current value on it)
there is no range to rank in and the rank is 0 (not elevated); the percentile is then 0 too. A non-finite
current value gives NaN for both, with ``ready`` still telling whether the history alone would do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


class IvRank(NamedTuple):
    """IV rank and percentile (0-100), the usable history days ``n``, and whether ``n`` reached the minimum."""

    rank: float
    percentile: float
    n: int
    ready: bool


def iv_rank(history: Sequence[float], current: float, min_days: int) -> IvRank:
    """Rank and percentile of ``current`` within ``history`` (NaN, ready False below ``min_days`` days)."""
    values = [v for v in history if math.isfinite(v)]
    n = len(values)
    ready = n >= max(min_days, 1)
    if not ready or not math.isfinite(current):
        return IvRank(math.nan, math.nan, n, ready)
    lo, hi = min(min(values), current), max(max(values), current)
    rank = 100.0 * (current - lo) / (hi - lo) if hi > lo else 0.0
    below = sum(1 for v in values if v < current)
    return IvRank(rank, 100.0 * below / n, n, ready)
