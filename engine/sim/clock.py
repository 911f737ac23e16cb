"""Simulated market time: an event-time clock over the product's market calendar (``greeks.calendar``).

The clock only moves forward when the market steps (or when a test jumps it), so everything the
simulator stamps (quotes, fills, order timestamps) is event time, never wall time. Closed periods
are skipped: after the close is processed the clock continues at the next session's open.
"""

from __future__ import annotations

import datetime as dt

from greeks.calendar import NEW_YORK, NS_PER_SECOND, MarketCalendar, market_calendar

NY = NEW_YORK


def to_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return int(moment.timestamp()) * NS_PER_SECOND + moment.microsecond * 1000


def from_ns(ns: int) -> dt.datetime:
    """Aware UTC datetime of nanoseconds since the epoch (microsecond precision)."""
    return dt.datetime.fromtimestamp(ns // NS_PER_SECOND, dt.UTC).replace(microsecond=(ns % NS_PER_SECOND) // 1000)


def rfc3339(ns: int) -> str:
    """RFC-3339 text with nanoseconds, as Alpaca writes timestamps (``...T14:30:00.123456789Z``)."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


class SimClock:
    """Event-time clock positioned inside a trading session."""

    def __init__(self, start: dt.datetime, calendar: MarketCalendar | None = None) -> None:
        self.calendar = calendar or market_calendar()
        aware = start if start.tzinfo else start.replace(tzinfo=NY)
        day = aware.astimezone(NY).date()
        session = self.calendar.session(day)
        start_ns = to_ns(aware)
        if session is None or start_ns >= session.close_ns:
            session = self.calendar.next_session(day)
        self.session_date = session.day
        self.open_ns, self.close_ns = session.open_ns, session.close_ns
        self.early_close = session.early_close
        self.now_ns = max(start_ns, self.open_ns)

    @property
    def session_progress(self) -> float:
        """Fraction of the current session elapsed (0 at the open, 1 at the close)."""
        return (self.now_ns - self.open_ns) / (self.close_ns - self.open_ns)

    def roll_to_next_session(self) -> None:
        """Move to the next session's open (called after the close has been processed)."""
        session = self.calendar.next_session(self.session_date)
        self.session_date = session.day
        self.open_ns, self.close_ns = session.open_ns, session.close_ns
        self.early_close = session.early_close
        self.now_ns = self.open_ns

    def today(self) -> dt.date:
        """The current session's date."""
        return self.session_date
