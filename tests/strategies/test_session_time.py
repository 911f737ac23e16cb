"""Session times: parsing, config errors with the field's path, resolution on regular days, half days and DST weeks."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from engine.service.config import ConfigError, parse_config_text
from greeks.calendar import NS_PER_MINUTE, ny_instant_ns
from strategies.gamma_scalper import GammaScalperConfig
from strategies.iron_condor import IronCondorConfig
from strategies.session_time import DaySchedule, SessionTime, session_on, validate_times
from strategies.zero_dte import ZeroDteConfig

REGULAR = dt.date(2026, 11, 25)
THANKSGIVING_FRIDAY = dt.date(2026, 11, 27)
CHRISTMAS_EVE = dt.date(2026, 12, 24)


def ny(day: dt.date, hh: int, mm: int = 0) -> int:
    return ny_instant_ns(day, dt.time(hh, mm))


@pytest.mark.parametrize(("text", "anchor", "offset_min", "clock"), [
    ("open", "open", 0, None),
    ("open+30m", "open", 30, None),
    ("close-15m", "close", -15, None),
    ("close-1h30m", "close", -90, None),
    ("close-2h", "close", -120, None),
    ("close", "close", 0, None),
    ("15:45", "clock", 0, dt.time(15, 45)),
    ("9:45", "clock", 0, dt.time(9, 45)),
])
def test_session_times_parse(text: str, anchor: str, offset_min: int, clock: dt.time | None) -> None:
    st = SessionTime.parse(text)
    assert (st.anchor, st.offset_ns, st.clock) == (anchor, offset_min * NS_PER_MINUTE, clock)


@pytest.mark.parametrize(("text", "why"), [
    ("25:00", "not a time of day"), ("15:60", "not a time of day"), ("open+", "no offset"),
    ("close-15", "not a session time"), ("noon", "not a session time"), ("close - 15m", "not a session time"),
])
def test_bad_session_times_say_what_is_wrong_and_what_is_accepted(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as err:
        SessionTime.parse(text)
    assert "open+30m" in str(err.value)


def test_a_bad_value_in_engine_toml_names_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text('[strategies.zero_dte]\ncutoff = "close-15"\n'
                          '[strategies.iron_condor]\nexpiry_flat_by = "17:00"\n'
                          '[strategies.gamma_scalper]\nexpiry_flat_by = "open+"\n')
    issues = {i.path: i.reason for i in err.value.issues}
    assert set(issues) == {"strategies.zero_dte.cutoff", "strategies.iron_condor", "strategies.gamma_scalper"}
    assert "'close-15'" in issues["strategies.zero_dte.cutoff"]
    assert issues["strategies.iron_condor"].startswith("expiry_flat_by = '17:00' falls outside the regular session")
    assert issues["strategies.gamma_scalper"].startswith("expiry_flat_by: 'open+' has a sign but no offset")


@pytest.mark.parametrize("text", ["close+15m", "open-5m", "09:00", "16:30", "open+7h"])
def test_a_time_outside_the_regular_session_is_refused(text: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"expiry_flat_by .* falls outside the regular session"):
        msgspec.convert({"expiry_flat_by": text}, IronCondorConfig)


def test_ordering_rules_hold_on_a_regular_day_and_on_a_half_day() -> None:
    with pytest.raises(msgspec.ValidationError, match="need entry_end <= cutoff on a regular day"):
        msgspec.convert({"entry_end": "15:50", "cutoff": "15:45", "expiry_flat_by": "15:45"}, ZeroDteConfig)
    # Fine on a regular day (12:30 < 14:30), empty on a half day (14:30 keeps its distance: 11:30).
    with pytest.raises(msgspec.ValidationError, match="need entry_start < entry_end on a half day"):
        msgspec.convert({"entry_start": "12:30", "entry_end": "14:30"}, ZeroDteConfig)
    # open+4h is 13:30 on a regular day, clamped to the 13:00 close on a half day: after the 12:00 cut-off.
    with pytest.raises(msgspec.ValidationError, match="need entry_end <= cutoff on a half day"):
        msgspec.convert({"entry_end": "open+4h"}, ZeroDteConfig)
    with pytest.raises(msgspec.ValidationError, match="need cutoff <= expiry_flat_by on a regular day"):
        msgspec.convert({"expiry_flat_by": "close-90m"}, ZeroDteConfig)
    # The old absolute day is still a valid config: every field keeps its order on both days.
    msgspec.convert({"entry_start": "10:00", "entry_end": "14:30", "pin_check_from": "15:00", "cutoff": "15:45",
                     "expiry_flat_by": "15:45"}, ZeroDteConfig)
    validate_times({"a": "close-30m", "b": "close-30m"}, [("a", "<=", "b")])
    with pytest.raises(ValueError, match="need a < b"):
        validate_times({"a": "close-30m", "b": "close-30m"}, [("a", "<", "b")])


def test_the_shipped_defaults_reproduce_the_regular_day_and_measure_a_half_day_from_its_close() -> None:
    cfg = ZeroDteConfig()
    fields = {n: getattr(cfg, n) for n in cfg.TIME_FIELDS}
    regular = DaySchedule.build(REGULAR, session_on(REGULAR), fields, cfg.TIME_RULES)
    assert regular.at == {"expiry_flat_by": ny(REGULAR, 15), "entry_start": ny(REGULAR, 10),
                          "entry_end": ny(REGULAR, 14, 30), "cutoff": ny(REGULAR, 15),
                          "pin_check_from": ny(REGULAR, 14, 30)}
    assert regular.notes == {}
    for day in (THANKSGIVING_FRIDAY, CHRISTMAS_EVE):
        half = DaySchedule.build(day, session_on(day), fields, cfg.TIME_RULES)
        assert half.at == {"expiry_flat_by": ny(day, 12), "entry_start": ny(day, 10), "entry_end": ny(day, 11, 30),
                           "cutoff": ny(day, 12), "pin_check_from": ny(day, 11, 30)}
        assert half.notes == {}
        # Ahead of the broker's expiry-day liquidation (close-45m) on the short day too.
        session = session_on(day)
        assert session is not None and half.at["expiry_flat_by"] < session.close_ns - 45 * NS_PER_MINUTE
    for cls in (GammaScalperConfig, IronCondorConfig):
        assert cls().expiry_flat_by == "close-60m"


@pytest.mark.parametrize(("before", "after"), [
    (dt.date(2026, 3, 6), dt.date(2026, 3, 9)),  # clocks go forward on Sunday 2026-03-08
    (dt.date(2026, 10, 30), dt.date(2026, 11, 2)),  # and back on Sunday 2026-11-01
])
def test_both_dst_switch_weeks_keep_new_york_wall_times(before: dt.date, after: dt.date) -> None:
    values = {"rel": "close-60m", "abs": "15:45", "open": "open+30m"}
    for day in (before, after):
        s = DaySchedule.build(day, session_on(day), values)
        assert s.at == {"rel": ny(day, 15), "abs": ny(day, 15, 45), "open": ny(day, 10)} and not s.notes
    # The same wall time is an hour apart in UTC across the switch (minus the three days between).
    shift = (ny(after, 15) - ny(before, 15)) - 3 * 86_400 * 1_000_000_000
    assert abs(shift) == 60 * NS_PER_MINUTE


def test_an_absolute_time_past_an_early_close_keeps_its_distance_to_the_close_with_a_note() -> None:
    s = session_on(THANKSGIVING_FRIDAY)
    assert s is not None and s.early_close
    at, note = SessionTime.parse("15:45").resolve(s)
    assert at == ny(THANKSGIVING_FRIDAY, 12, 45) and "past the 13:00 early close: 12:45" in note
    at, note = SessionTime.parse("13:00").resolve(s)  # the close itself has gone too
    assert at == ny(THANKSGIVING_FRIDAY, 10) and note
    at, note = SessionTime.parse("10:00").resolve(s)
    assert at == ny(THANKSGIVING_FRIDAY, 10) and note == ""
    # A relative time that leaves a short session is clamped to it.
    at, note = SessionTime.parse("open+6h").resolve(s)
    assert at == s.close_ns and "clamped to 13:00" in note
    at, note = SessionTime.parse("close-4h").resolve(s)
    assert at == s.open_ns and "clamped to 09:30" in note


def test_a_rule_broken_on_an_unusual_session_is_enforced_with_a_note() -> None:
    s = session_on(THANKSGIVING_FRIDAY)
    out = DaySchedule.build(THANKSGIVING_FRIDAY, s, {"a": "open+3h", "b": "close-60m"}, [("a", "<=", "b")])
    assert out.at["a"] == out.at["b"] == ny(THANKSGIVING_FRIDAY, 12) and "moved to 12:00" in out.notes["a"]


def test_days_without_a_session_resolve_to_nothing() -> None:
    for day in (dt.date(2026, 11, 26), dt.date(2026, 11, 28), dt.date(2026, 12, 25)):
        s = DaySchedule.build(day, session_on(day), {"x": "close-60m"})
        assert s.session is None and s.at == {}
