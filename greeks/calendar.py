"""The market calendar: NYSE sessions, early closes, holidays and option expiry closes, for the whole product.

Every part that asks "is the market open", "when does today close", "when does this contract stop trading" or
"which day is the next session" asks this module: the feeds' mute detectors, the strategies' session-relative
time rules, the risk gate's to-the-close stress, settlements, the subscription budget and the simulator. The
sessions come from the maintained ``exchange_calendars`` package (XNYS: holidays, 13:00 half days, DST), read
once into plain integer tables; lookups after that are dictionary reads and integer comparisons.

An equity or index option stops trading at the close of its expiry date: 16:00 America/New_York, 13:00 on
half days. An expiry that falls on a day without a session (Good Friday, a holiday) trades out at the previous
session's close. Time to expiry is calendar time, ``t = (close_ns - now_ns) / YEAR_NS`` with a 365-day year,
to the nanosecond, so it stays right through the last minutes of a 0DTE session.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from collections.abc import Iterable
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

NS_PER_MS: Final = 1_000_000
NS_PER_SECOND: Final = 1_000_000_000
NS_PER_MINUTE: Final = 60 * NS_PER_SECOND
NS_PER_DAY: Final = 86_400 * NS_PER_SECOND
YEAR_NS: Final = 365 * NS_PER_DAY
"""Length of the calendar year used for t (Actual/365 Fixed), in nanoseconds."""
NEW_YORK: Final = ZoneInfo("America/New_York")
CALENDAR_NAME: Final = "XNYS"
REGULAR_CLOSE: Final = dt.time(16, 0)
_YEARS_BACK: Final = 20  # recorded data goes back a decade and more
_YEARS_AHEAD: Final = 4  # LEAPS run about three years out
_EPOCH: Final = dt.date(1970, 1, 1)


class CalendarRangeError(ValueError):
    """A date outside the span of the loaded exchange calendar."""


class Session(NamedTuple):
    """One trading session: its New York date and its open and close as epoch nanoseconds (UTC instants)."""

    day: dt.date
    open_ns: int
    close_ns: int
    early_close: bool
    """True on a half day (the close is before 16:00 New York time)."""

    @property
    def length_ns(self) -> int:
        return self.close_ns - self.open_ns

    def contains(self, ts_ns: int) -> bool:
        """True while the session trades: ``open_ns <= ts_ns < close_ns``."""
        return self.open_ns <= ts_ns < self.close_ns


class MarketCalendar:
    """NYSE sessions between ``first_day`` and ``last_day``; every query outside raises ``CalendarRangeError``."""

    def __init__(self, sessions: Iterable[Session]) -> None:
        self._sessions: dict[dt.date, Session] = {s.day: s for s in sessions}
        if not self._sessions:
            raise ValueError("a market calendar needs at least one session")
        self._days: list[dt.date] = sorted(self._sessions)
        self.first_day = self._days[0]
        self.last_day = self._days[-1]
        self._last: Session | None = None  # the session of the last instant asked about (hot-path cache)
        self._close_at = (0, 0, 0)  # (day start, next day start, close) of the last ``close_ns_at`` (hot path)

    @classmethod
    def xnys(cls, start: dt.date, end: dt.date) -> MarketCalendar:
        """Sessions of the NYSE from ``exchange_calendars`` between two dates (about 0.2 s to build)."""
        import exchange_calendars as xcals

        with warnings.catch_warnings():
            # exchange_calendars trips pandas' own deprecation warnings while building; not ours to fix.
            warnings.simplefilter("ignore")
            cal = xcals.get_calendar(CALENDAR_NAME, start=start.isoformat(), end=end.isoformat())
            days = (cal.sessions_nanos // NS_PER_DAY).tolist()
            opens = cal.opens_nanos.tolist()
            closes = cal.closes_nanos.tolist()
        sessions = []
        for day_n, open_ns, close_ns in zip(days, opens, closes, strict=True):
            day = _EPOCH + dt.timedelta(days=day_n)
            local_close = dt.datetime.fromtimestamp(close_ns / NS_PER_SECOND, NEW_YORK).time()
            sessions.append(Session(day, int(open_ns), int(close_ns), local_close < REGULAR_CLOSE))
        return cls(sessions)

    # ---------------------------------------------------------------------------------------------- days

    def _check(self, day: dt.date) -> None:
        if not self.first_day <= day <= self.last_day:
            raise CalendarRangeError(
                f"{day} outside the loaded {CALENDAR_NAME} calendar ({self.first_day} .. {self.last_day})")

    def session(self, day: dt.date) -> Session | None:
        """The session on New York date ``day``, or None when the market does not open that day."""
        self._check(day)
        return self._sessions.get(day)

    def is_session(self, day: dt.date) -> bool:
        return self.session(day) is not None

    def is_half_day(self, day: dt.date) -> bool:
        """True when ``day`` is a session that closes early (13:00 New York)."""
        s = self.session(day)
        return s is not None and s.early_close

    def next_session(self, day: dt.date) -> Session:
        """The first session strictly after ``day``."""
        d = day + dt.timedelta(days=1)
        while (s := self.session(d)) is None:
            d += dt.timedelta(days=1)
        return s

    def previous_session(self, day: dt.date) -> Session:
        """The last session strictly before ``day``."""
        d = day - dt.timedelta(days=1)
        while (s := self.session(d)) is None:
            d -= dt.timedelta(days=1)
        return s

    def session_on_or_after(self, day: dt.date) -> Session:
        s = self.session(day)
        return s if s is not None else self.next_session(day)

    def session_on_or_before(self, day: dt.date) -> Session:
        s = self.session(day)
        return s if s is not None else self.previous_session(day)

    def sessions_between(self, start: dt.date, end: dt.date) -> list[Session]:
        """Sessions with ``start <= day <= end``, in order."""
        self._check(start)
        self._check(end)
        return [self._sessions[d] for d in self._days if start <= d <= end]

    # ---------------------------------------------------------------------------------------------- instants

    def session_at(self, ts_ns: int) -> Session | None:
        """The session on the New York date of instant ``ts_ns`` (None on a day without one)."""
        last = self._last
        if last is not None and last.open_ns <= ts_ns < last.close_ns:
            return last
        s = self.session(ny_date(ts_ns))
        if s is not None:
            self._last = s
        return s

    def is_open(self, ts_ns: int) -> bool:
        """True while a regular session trades (two integer comparisons when asked about the same session)."""
        last = self._last
        if last is not None and last.open_ns <= ts_ns < last.close_ns:
            return True
        s = self.session_at(ts_ns)
        return s is not None and s.open_ns <= ts_ns < s.close_ns

    def close_ns_at(self, ts_ns: int) -> int:
        """The close of the session on the date of ``ts_ns``, or of the previous session on a day without one."""
        start, end, close = self._close_at  # one read: another thread may replace it meanwhile
        if start <= ts_ns < end:
            return close
        day = ny_date(ts_ns)
        close = self.session_on_or_before(day).close_ns
        self._close_at = (ny_instant_ns(day, dt.time()), ny_instant_ns(day + dt.timedelta(days=1), dt.time()), close)
        return close

    # ---------------------------------------------------------------------------------------------- expiries

    def expiry_session(self, expiry: dt.date) -> Session:
        """The session an option expiring on ``expiry`` trades out in (the previous one on a holiday)."""
        return self.session_on_or_before(expiry)

    def expiry_close_ns(self, expiry: dt.date) -> int:
        """UTC nanoseconds of the close an option expiring on ``expiry`` stops trading at."""
        return self.expiry_session(expiry).close_ns


@functools.cache
def market_calendar() -> MarketCalendar:
    """The product's calendar (built once, about 0.2 s), spanning recorded history and listed LEAPS."""
    today = dt.date.today()
    return MarketCalendar.xnys(dt.date(today.year - _YEARS_BACK, 1, 1), dt.date(today.year + _YEARS_AHEAD, 12, 31))


# -------------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=4096)
def expiry_close_ns(expiry: dt.date) -> int:
    """UTC nanoseconds of the close on ``expiry`` (16:00 ET, 13:00 ET on half days; the previous session's
    close when ``expiry`` has none, as listed options do: a Good Friday expiry trades out on Thursday)."""
    return market_calendar().expiry_close_ns(expiry)


def expiry_close_ns_many(expiries: Iterable[dt.date]) -> npt.NDArray[np.int64]:
    """``expiry_close_ns`` for each date, as an int64 array (cached per distinct date)."""
    return np.array([expiry_close_ns(d) for d in expiries], dtype=np.int64)


def is_half_day(day: dt.date) -> bool:
    """True when ``day`` is an XNYS session that closes early (13:00 ET)."""
    return market_calendar().is_half_day(day)


def year_fraction(now_ns: npt.ArrayLike, close_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Years (365-day) from ``now_ns`` to ``close_ns``, element-wise; negative once the close has passed.

    Integer subtraction first, so nanosecond instants near 2**62 lose no precision before the division.
    """
    diff = np.asarray(close_ns, dtype=np.int64) - np.asarray(now_ns, dtype=np.int64)
    return np.asarray(diff / YEAR_NS, dtype=np.float64)


def ny_datetime(ts_ns: int) -> dt.datetime:
    """The New York wall-clock time of an epoch-nanosecond instant (microsecond precision)."""
    seconds, ns = divmod(ts_ns, NS_PER_SECOND)
    return dt.datetime.fromtimestamp(seconds, NEW_YORK).replace(microsecond=ns // 1000)


def ny_date(ts_ns: int) -> dt.date:
    """The New York calendar date of an epoch-nanosecond instant."""
    return dt.datetime.fromtimestamp(ts_ns // NS_PER_SECOND, NEW_YORK).date()


def ny_instant_ns(day: dt.date, at: dt.time) -> int:
    """Epoch nanoseconds of New York wall-clock ``at`` on ``day`` (DST-aware)."""
    moment = dt.datetime.combine(day, at, NEW_YORK)
    return int(moment.timestamp()) * NS_PER_SECOND + moment.microsecond * 1000
