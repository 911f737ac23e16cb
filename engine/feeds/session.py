"""Is the US equity/options market open at an instant (for the mute-socket detector)?

A silent option feed is only suspicious while the market trades. ``MarketHours`` answers for event time,
so it is right live, in the simulator and in replay: a day is a session when the NYSE calendar closes on
it (``greeks.calendar.expiry_close_ns``: holidays and 13:00 half days included), and the session runs
from 09:30 New York time to that close.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from greeks.calendar import expiry_close_ns

NEW_YORK = ZoneInfo("America/New_York")
OPEN_TIME = dt.time(9, 30)


class MarketHours:
    """``is_open(ts_ns)`` for the regular session; ``open_now(now_ns)`` gives a ``market_open`` callback."""

    def __init__(self) -> None:
        self._sessions: dict[dt.date, tuple[int, int] | None] = {}

    def session(self, day: dt.date) -> tuple[int, int] | None:
        """(open_ns, close_ns) of the session on ``day`` (New York date), or None on a non-trading day."""
        if day not in self._sessions:
            close_ns = expiry_close_ns(day)
            close_day = dt.datetime.fromtimestamp(close_ns / 1e9, tz=NEW_YORK).date()
            if close_day != day:
                self._sessions[day] = None  # the calendar rolled back to an earlier session
            else:
                opening = dt.datetime.combine(day, OPEN_TIME, tzinfo=NEW_YORK)
                self._sessions[day] = (int(opening.timestamp()) * 1_000_000_000, close_ns)
        return self._sessions[day]

    def is_open(self, ts_ns: int) -> bool:
        day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=NEW_YORK).date()
        hours = self.session(day)
        return hours is not None and hours[0] <= ts_ns < hours[1]

    def open_now(self, now_ns: Callable[[], int]) -> Callable[[], bool]:
        """A zero-argument callback for ``MarketDataClient(market_open=...)`` reading ``now_ns()``."""
        return lambda: self.is_open(now_ns())
