"""Simulated market time: the NYSE session calendar and an event-time clock.

The clock only moves forward when the market steps (or when a test jumps it), so everything the
simulator stamps (quotes, fills, order timestamps) is event time, never wall time. Closed periods
are skipped: after the close is processed the clock continues at the next session's open.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
NS_PER_S = 1_000_000_000
REGULAR_OPEN = dt.time(9, 30)
REGULAR_CLOSE = dt.time(16, 0)


def to_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return int(moment.timestamp()) * NS_PER_S + moment.microsecond * 1000


def from_ns(ns: int) -> dt.datetime:
    """Aware UTC datetime of nanoseconds since the epoch (microsecond precision)."""
    return dt.datetime.fromtimestamp(ns // NS_PER_S, dt.UTC).replace(microsecond=(ns % NS_PER_S) // 1000)


def rfc3339(ns: int) -> str:
    """RFC-3339 text with nanoseconds, as Alpaca writes timestamps (``...T14:30:00.123456789Z``)."""
    seconds, frac = divmod(ns, NS_PER_S)
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


class SessionCalendar:
    """NYSE sessions (exchange_calendars XNYS), with plain weekdays past the calendar's range."""

    def __init__(self) -> None:
        import exchange_calendars as xc

        with warnings.catch_warnings():
            # exchange_calendars trips pandas' own deprecation warnings while building; not ours to fix
            warnings.simplefilter("ignore")
            schedule = xc.get_calendar("XNYS").schedule
        self._bounds: dict[dt.date, tuple[int, int]] = {
            day.date(): (int(o.value), int(c.value))
            for day, o, c in zip(schedule.index, schedule["open"], schedule["close"], strict=True)
        }
        self._first = min(self._bounds)
        self._last = max(self._bounds)

    def bounds(self, day: dt.date) -> tuple[int, int] | None:
        """(open_ns, close_ns) of the session on ``day``, or None when the market is closed."""
        if self._first <= day <= self._last:
            return self._bounds.get(day)
        if day.weekday() >= 5:
            return None
        return (
            to_ns(dt.datetime.combine(day, REGULAR_OPEN, NY)),
            to_ns(dt.datetime.combine(day, REGULAR_CLOSE, NY)),
        )

    def is_session(self, day: dt.date) -> bool:
        """True when ``day`` is a trading day."""
        return self.bounds(day) is not None

    def next_session(self, day: dt.date) -> dt.date:
        """The first trading day strictly after ``day``."""
        d = day + dt.timedelta(days=1)
        while not self.is_session(d):
            d += dt.timedelta(days=1)
        return d

    def session_on_or_after(self, day: dt.date) -> dt.date:
        """``day`` itself when it trades, else the next trading day."""
        return day if self.is_session(day) else self.next_session(day)

    def session_on_or_before(self, day: dt.date) -> dt.date:
        """``day`` itself when it trades, else the previous trading day."""
        d = day
        while not self.is_session(d):
            d -= dt.timedelta(days=1)
        return d


@functools.cache
def session_calendar() -> SessionCalendar:
    """The shared calendar (building it costs about 0.2 s)."""
    return SessionCalendar()


class SimClock:
    """Event-time clock positioned inside a trading session."""

    def __init__(self, start: dt.datetime, calendar: SessionCalendar | None = None) -> None:
        self.calendar = calendar or session_calendar()
        aware = start if start.tzinfo else start.replace(tzinfo=NY)
        day = aware.astimezone(NY).date()
        bounds = self.calendar.bounds(day)
        start_ns = to_ns(aware)
        if bounds is None or start_ns >= bounds[1]:
            day = self.calendar.next_session(day)
            bounds = self.calendar.bounds(day)
            assert bounds is not None
        self.session_date = day
        self.open_ns, self.close_ns = bounds
        self.now_ns = max(start_ns, self.open_ns)

    @property
    def session_progress(self) -> float:
        """Fraction of the current session elapsed (0 at the open, 1 at the close)."""
        return (self.now_ns - self.open_ns) / (self.close_ns - self.open_ns)

    def roll_to_next_session(self) -> None:
        """Move to the next session's open (called after the close has been processed)."""
        self.session_date = self.calendar.next_session(self.session_date)
        bounds = self.calendar.bounds(self.session_date)
        assert bounds is not None
        self.open_ns, self.close_ns = bounds
        self.now_ns = self.open_ns

    def today(self) -> dt.date:
        """The current session's date."""
        return self.session_date
