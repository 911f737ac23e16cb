"""The market calendar: NYSE sessions, half days, holidays, DST weeks and holiday-shifted expiries."""

from __future__ import annotations

import datetime as dt

import pytest

from greeks.calendar import (
    NEW_YORK,
    CalendarRangeError,
    expiry_close_ns,
    market_calendar,
    ny_date,
    ny_datetime,
    ny_instant_ns,
)

S = 1_000_000_000


def at(y: int, m: int, d: int, hh: int, mm: int) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=NEW_YORK).timestamp()) * S


def test_regular_session_runs_0930_to_1600_new_york() -> None:
    cal = market_calendar()
    s = cal.session(dt.date(2026, 11, 23))
    assert s is not None and not s.early_close
    assert (s.open_ns, s.close_ns) == (at(2026, 11, 23, 9, 30), at(2026, 11, 23, 16, 0))
    assert cal.is_open(at(2026, 11, 23, 10, 0))
    assert not cal.is_open(at(2026, 11, 23, 9, 29))
    assert not cal.is_open(at(2026, 11, 23, 16, 0))  # the close itself is closed
    assert not cal.is_open(at(2026, 11, 23, 16, 30))


@pytest.mark.parametrize("day", [dt.date(2026, 11, 27), dt.date(2026, 12, 24), dt.date(2027, 11, 26)])
def test_half_days_close_at_1300(day: dt.date) -> None:
    cal = market_calendar()
    s = cal.session(day)
    assert s is not None and s.early_close and cal.is_half_day(day)
    assert s.close_ns == at(day.year, day.month, day.day, 13, 0)
    assert cal.is_open(at(day.year, day.month, day.day, 12, 59))
    assert not cal.is_open(at(day.year, day.month, day.day, 13, 30))
    assert expiry_close_ns(day) == s.close_ns


@pytest.mark.parametrize("day", [dt.date(2026, 11, 26), dt.date(2026, 12, 25), dt.date(2027, 3, 26),
                                 dt.date(2026, 11, 28)])
def test_holidays_and_weekends_have_no_session(day: dt.date) -> None:
    cal = market_calendar()
    assert cal.session(day) is None
    assert not cal.is_open(at(day.year, day.month, day.day, 11, 0))


def test_good_friday_expiry_trades_out_at_thursdays_close() -> None:
    cal = market_calendar()
    assert cal.expiry_session(dt.date(2027, 3, 26)).day == dt.date(2027, 3, 25)
    assert expiry_close_ns(dt.date(2027, 3, 26)) == at(2027, 3, 25, 16, 0)
    assert cal.next_session(dt.date(2027, 3, 25)).day == dt.date(2027, 3, 29)
    assert cal.previous_session(dt.date(2027, 3, 29)).day == dt.date(2027, 3, 25)


def test_dst_switch_weeks_keep_the_new_york_wall_clock() -> None:
    """The open is 09:30 New York on both sides of each switch, so the UTC hour moves."""
    cal = market_calendar()
    for before, after in ((dt.date(2027, 3, 12), dt.date(2027, 3, 15)), (dt.date(2026, 10, 30), dt.date(2026, 11, 2))):
        a, b = cal.session(before), cal.session(after)
        assert a is not None and b is not None
        assert ny_datetime(a.open_ns).time() == ny_datetime(b.open_ns).time() == dt.time(9, 30)
        assert ny_datetime(a.close_ns).time() == ny_datetime(b.close_ns).time() == dt.time(16, 0)
        utc_hours = {dt.datetime.fromtimestamp(x.open_ns / S, dt.UTC).hour for x in (a, b)}
        assert utc_hours == {13, 14}
        assert a.length_ns == b.length_ns == int(6.5 * 3600) * S


def test_session_at_and_close_at_an_instant() -> None:
    cal = market_calendar()
    assert cal.session_at(at(2026, 11, 26, 12, 0)) is None  # Thanksgiving
    # on a day without a session, the close asked about is the previous session's
    assert cal.close_ns_at(at(2026, 11, 26, 12, 0)) == at(2026, 11, 25, 16, 0)
    assert cal.close_ns_at(at(2026, 11, 27, 9, 0)) == at(2026, 11, 27, 13, 0)
    sessions = cal.sessions_between(dt.date(2026, 11, 23), dt.date(2026, 11, 30))
    assert [s.day.day for s in sessions] == [23, 24, 25, 27, 30]
    # asked in a row (the answer is kept for the day): New York midnight is where the day changes
    assert cal.close_ns_at(at(2026, 11, 27, 0, 0) - 1) == at(2026, 11, 25, 16, 0)
    assert cal.close_ns_at(at(2026, 11, 27, 0, 0)) == at(2026, 11, 27, 13, 0)
    assert cal.close_ns_at(at(2026, 11, 27, 23, 59)) == at(2026, 11, 27, 13, 0)
    assert cal.close_ns_at(at(2026, 11, 28, 0, 0)) == at(2026, 11, 27, 13, 0)  # Saturday: Friday's close
    assert cal.close_ns_at(at(2026, 11, 30, 0, 0)) == at(2026, 11, 30, 16, 0)
    assert cal.close_ns_at(at(2026, 11, 26, 12, 0)) == at(2026, 11, 25, 16, 0)  # back in time


def test_ny_helpers_round_trip_across_dst() -> None:
    for day in (dt.date(2027, 3, 14), dt.date(2026, 11, 1), dt.date(2026, 7, 1)):
        ns = ny_instant_ns(day, dt.time(15, 15))
        assert ny_date(ns) == day and ny_datetime(ns).time() == dt.time(15, 15)


def test_dates_outside_the_loaded_span_are_refused() -> None:
    cal = market_calendar()
    with pytest.raises(CalendarRangeError, match="outside the loaded XNYS calendar"):
        cal.session(dt.date(1990, 1, 2))
