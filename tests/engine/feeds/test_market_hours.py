"""Market hours for the mute detector: NYSE sessions, holidays and half days, in event time."""

from __future__ import annotations

import datetime as dt

from engine.clock import EventClock
from engine.feeds.session import MarketHours

S = 1_000_000_000


def test_market_hours_follow_the_nyse_calendar_in_event_time() -> None:
    hours = MarketHours()
    et = dt.timezone(dt.timedelta(hours=-5))  # late November: EST
    at = lambda y, m, d, hh, mm: int(dt.datetime(y, m, d, hh, mm, tzinfo=et).timestamp()) * S  # noqa: E731
    assert hours.is_open(at(2026, 11, 23, 10, 0))  # Monday session
    assert not hours.is_open(at(2026, 11, 23, 16, 30))  # after the close
    assert not hours.is_open(at(2026, 11, 26, 11, 0))  # Thanksgiving
    assert not hours.is_open(at(2026, 11, 27, 13, 30))  # half day after Thanksgiving closes at 13:00
    clock = EventClock(at(2026, 11, 23, 10, 0))
    assert hours.open_now(clock.now_ns)()
