"""A token bucket that keeps the engine's REST calls under the broker's per-minute limit.

Alpaca allows 200 trading requests per minute per key. The bucket refills continuously at
``per_minute / 60`` tokens per second up to ``burst``; a 429 empties it until the broker's
``X-RateLimit-Reset`` instant, so the next request waits instead of hammering. Wall time, not event
time: the broker counts real seconds even when the simulator runs at 600x.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RequestBudget:
    """Token bucket over a monotonic clock; ``acquire`` waits for a token, ``try_acquire`` never waits."""

    def __init__(
        self,
        per_minute: float = 180.0,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1.0, per_minute / 6.0))
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self._blocked_until = 0.0
        self.waited_s = 0.0
        self.throttled = 0

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        return now

    def try_acquire(self) -> bool:
        """Take a token if one is available now."""
        now = self._refill()
        if now < self._blocked_until or self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def delay_s(self) -> float:
        """Seconds until a token is available (0 when one is available now)."""
        now = self._refill()
        wait = max(0.0, self._blocked_until - now)
        if self._tokens < 1.0:
            wait = max(wait, (1.0 - self._tokens) / self.rate_per_s)
        return wait

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        while not self.try_acquire():
            wait = self.delay_s()
            self.waited_s += wait
            await asyncio.sleep(max(wait, 0.001))

    def on_rate_limited(self, retry_after_s: float) -> None:
        """The broker answered 429: spend every token and pause for ``retry_after_s`` (at least one refill)."""
        now = self._refill()
        self.throttled += 1
        self._tokens = 0.0
        self._blocked_until = max(self._blocked_until, now + max(retry_after_s, 1.0 / self.rate_per_s))
