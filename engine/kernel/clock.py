"""The engine's event-time clock: time advances with the timestamps the feeds carry.

Live, feed timestamps are wall time; in the simulator they run at its speed (e.g. 600x); in replay
they are the recorded ones. Timers (exits, 0DTE cut-offs, hedging cadence) are scheduled on this
clock and fire from ``advance``, so the same code behaves identically at any speed. Time never goes
backwards: an older timestamp (a late message) leaves the clock where it is.

While the market is quiet no feed advances the clock; live, ``run_wall_driver`` moves it with the
wall clock so timers still fire (never used in simulation or replay, where only data moves time).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

import structlog

from greeks.calendar import NS_PER_SECOND

log = structlog.get_logger(__name__)



class Timer:
    """Handle of a scheduled callback; ``cancel()`` stops it (periodic timers too)."""

    __slots__ = ("_clock", "callback", "cancelled", "due_ns", "interval_ns", "name")

    def __init__(
        self, clock: EventClock, due_ns: int, callback: Callable[[int], None], interval_ns: int, name: str
    ) -> None:
        self._clock = clock
        self.due_ns = due_ns
        self.callback = callback
        self.interval_ns = interval_ns
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventClock:
    """Monotone event time plus a timer heap; callbacks receive the time they were due."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._firing = False

    def now_ns(self) -> int:
        """Current event time (ns since the epoch); 0 until the first timestamp arrives."""
        return self._now_ns

    def now_s(self) -> float:
        return self._now_ns / NS_PER_SECOND

    @property
    def started(self) -> bool:
        return self._now_ns > 0

    def call_at(self, due_ns: int, callback: Callable[[int], None], *, name: str = "") -> Timer:
        """Run ``callback(due_ns)`` once event time reaches ``due_ns``."""
        timer = Timer(self, due_ns, callback, 0, name)
        heapq.heappush(self._heap, (due_ns, next(self._seq), timer))
        return timer

    def call_later(self, delay_ns: int, callback: Callable[[int], None], *, name: str = "") -> Timer:
        """Run ``callback`` ``delay_ns`` of event time from now."""
        return self.call_at(self._now_ns + delay_ns, callback, name=name)

    def every(
        self, interval_ns: int, callback: Callable[[int], None], *, first_ns: int | None = None, name: str = ""
    ) -> Timer:
        """Run ``callback`` every ``interval_ns`` of event time (first at ``first_ns``, default now+interval).

        After a jump in time (a replay seek, a quiet market) a periodic timer fires once, not once per
        missed interval, and re-aligns to its grid.
        """
        if interval_ns <= 0:
            raise ValueError(f"timer interval must be positive, got {interval_ns}")
        due = self._now_ns + interval_ns if first_ns is None else first_ns
        timer = Timer(self, due, callback, interval_ns, name)
        heapq.heappush(self._heap, (due, next(self._seq), timer))
        return timer

    def advance(self, ts_ns: int) -> int:
        """Move event time to ``ts_ns`` (if later) and fire every timer now due; return timers fired."""
        if ts_ns <= self._now_ns:
            return 0
        self._now_ns = ts_ns
        if not self._heap or self._heap[0][0] > ts_ns or self._firing:
            return 0
        return self._fire_due()

    def _fire_due(self) -> int:
        fired = 0
        self._firing = True
        try:
            while self._heap and self._heap[0][0] <= self._now_ns:
                due, _, timer = heapq.heappop(self._heap)
                if timer.cancelled:
                    continue
                if timer.interval_ns:
                    due += (self._now_ns - due) // timer.interval_ns * timer.interval_ns  # latest grid point
                    timer.due_ns = due + timer.interval_ns
                    heapq.heappush(self._heap, (timer.due_ns, next(self._seq), timer))
                fired += 1
                try:
                    timer.callback(due)
                except Exception:
                    # A timer belongs to some component; its failure must not stop time.
                    log.exception("timer_failed", timer=timer.name or repr(timer.callback))
        finally:
            self._firing = False
        return fired

    def next_due_ns(self) -> int | None:
        """Due time of the earliest live timer (None when none is scheduled)."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def sleep_until(self, due_ns: int) -> None:
        """Wait (without polling) until event time reaches ``due_ns``."""
        if self._now_ns >= due_ns:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_: int) -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_at(due_ns, wake, name="sleep_until")
        try:
            await fut
        finally:
            timer.cancel()

    async def run_wall_driver(self, *, period_s: float = 0.1, wall_ns: Callable[[], int] = time.time_ns) -> None:
        """Live only: keep event time at least at wall time so timers fire when no data flows."""
        while True:
            self.advance(wall_ns())
            await asyncio.sleep(period_s)
