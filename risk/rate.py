"""Order-rate budget: a sliding window of submission times in event time.

The gate asks ``allows(now_ns, ...)`` (a read, no mutation); the engine calls ``record(now_ns)``
when it actually sends an order, so a denied intent never spends budget.
"""

from __future__ import annotations

import bisect

from greeks.calendar import NS_PER_MINUTE, NS_PER_SECOND


class RateBudget:
    """Submission times of the last minute, for per-second and per-minute caps."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: list[int] = []

    def count_since(self, since_ns: int) -> int:
        """Submissions strictly after ``since_ns``."""
        return len(self._times) - bisect.bisect_right(self._times, since_ns)

    def allows(self, now_ns: int, per_minute: int, per_second: int) -> bool:
        """True when one more submission at ``now_ns`` stays within both caps."""
        if self.count_since(now_ns - NS_PER_MINUTE) >= per_minute:
            return False
        return self.count_since(now_ns - NS_PER_SECOND) < per_second

    def record(self, now_ns: int) -> None:
        """Spend one unit of budget at ``now_ns`` (and forget what is older than a minute)."""
        if self._times and now_ns < self._times[-1]:
            bisect.insort(self._times, now_ns)
        else:
            self._times.append(now_ns)
        cut = bisect.bisect_right(self._times, now_ns - NS_PER_MINUTE)
        if cut:
            del self._times[:cut]
