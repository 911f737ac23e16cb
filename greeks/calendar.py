"""Year fractions to option expiry with intraday precision, from the NYSE calendar (exchange_calendars XNYS).

An equity or index option stops trading at the close of its expiry date: 16:00 America/New_York, 13:00 on
half days. Time to expiry is calendar time, ``t = (close_ns - now_ns) / YEAR_NS`` with a 365-day year, to the
nanosecond, so it stays right through the last minutes of a 0DTE session. Look the close instant up once per
expiry (``expiry_close_ns``) and compute ``year_fraction`` per tick; that part is plain integer arithmetic.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

NS_PER_SECOND: Final = 1_000_000_000
YEAR_NS: Final = 365 * 86_400 * NS_PER_SECOND
"""Length of the calendar year used for t (Actual/365 Fixed), in nanoseconds."""
CALENDAR_NAME: Final = "XNYS"
_CALENDAR_YEARS_BACK: Final = 20
_CALENDAR_YEARS_AHEAD: Final = 4  # LEAPS run about three years out


class CalendarRangeError(ValueError):
    """A date outside the span of the loaded exchange calendar."""


@functools.cache
def _calendar() -> Any:
    """The XNYS calendar, built once (about half a second) over a span that covers listed LEAPS."""
    import exchange_calendars as xcals

    today = dt.date.today()
    start = dt.date(today.year - _CALENDAR_YEARS_BACK, 1, 1)
    end = dt.date(today.year + _CALENDAR_YEARS_AHEAD, 12, 31)
    with warnings.catch_warnings():
        # exchange_calendars reads tz-aware Series.values, which pandas >= 3.1 deprecates; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return xcals.get_calendar(CALENDAR_NAME, start=start.isoformat(), end=end.isoformat())


@functools.lru_cache(maxsize=4096)
def expiry_close_ns(expiry: dt.date) -> int:
    """UTC nanoseconds of the close on ``expiry`` (16:00 ET, 13:00 ET on half days).

    An expiry that falls on a day without a session (a holiday) moves to the previous session's close, as
    listed options do (e.g. a Good Friday expiry trades out on Thursday).
    """
    import pandas as pd

    cal = _calendar()
    day = pd.Timestamp(expiry)
    if not cal.first_session <= day <= cal.last_session:
        raise CalendarRangeError(
            f"expiry {expiry} outside the loaded {CALENDAR_NAME} calendar "
            f"({cal.first_session.date()} .. {cal.last_session.date()})"
        )
    session = cal.date_to_session(day, direction="previous")
    return int(cal.session_close(session).value)


def expiry_close_ns_many(expiries: Iterable[dt.date]) -> npt.NDArray[np.int64]:
    """``expiry_close_ns`` for each date, as an int64 array (cached per distinct date)."""
    return np.array([expiry_close_ns(d) for d in expiries], dtype=np.int64)


def year_fraction(now_ns: npt.ArrayLike, close_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Years (365-day) from ``now_ns`` to ``close_ns``, element-wise; negative once the close has passed.

    Integer subtraction first, so nanosecond instants near 2**62 lose no precision before the division.
    """
    diff = np.asarray(close_ns, dtype=np.int64) - np.asarray(now_ns, dtype=np.int64)
    return np.asarray(diff / YEAR_NS, dtype=np.float64)


def is_half_day(day: dt.date) -> bool:
    """True when ``day`` is an XNYS session that closes early (13:00 ET)."""
    import pandas as pd

    cal = _calendar()
    ts = pd.Timestamp(day)
    if not cal.is_session(ts):
        return False
    close = cal.session_close(ts).tz_convert("America/New_York")
    return bool(close.hour < 16)
