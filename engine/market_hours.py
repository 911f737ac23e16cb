"""Is the US equity-options market open at an instant? (XNYS sessions, half days included.)

Used by the feed clients' mute detectors and the stale-data watch: silence after the close is not a
dead feed. The session of the last instant asked about is cached, so the answer costs two integer
comparisons on the hot path.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from greeks.calendar import _calendar

NEW_YORK = ZoneInfo("America/New_York")


class MarketHours:
    """Open/closed by the XNYS calendar, with the current session's bounds cached."""

    def __init__(self) -> None:
        self._open_ns = 0
        self._close_ns = 0
        self._day: dt.date | None = None

    def is_open(self, ts_ns: int) -> bool:
        if self._open_ns <= ts_ns < self._close_ns:
            return True
        day = dt.datetime.fromtimestamp(ts_ns / 1e9, NEW_YORK).date()
        if day != self._day:
            self._load(day)
        return self._open_ns <= ts_ns < self._close_ns

    def session_close_ns(self, ts_ns: int) -> int:
        """The close of the session on the New York date of ``ts_ns`` (0 when that day has no session)."""
        self.is_open(ts_ns)
        return self._close_ns

    def _load(self, day: dt.date) -> None:
        self._day = day
        cal = _calendar()
        ts = pd.Timestamp(day)
        if cal.is_session(ts):
            self._open_ns = int(cal.session_open(ts).value)
            self._close_ns = int(cal.session_close(ts).value)
        else:
            self._open_ns = self._close_ns = 0
