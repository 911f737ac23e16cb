"""Strategy times of day relative to the session: ``"open+30m"``, ``"close-15m"``, ``"close-1h30m"`` or ``"15:45"``.

A config field of type ``SessionTimeText`` holds one of

- ``open``, ``open+<offset>``: that long after the day's open;
- ``close``, ``close-<offset>``: that long before the day's close (13:00 New York on a half day);
- ``HH:MM``: an absolute New York wall-clock time;

with ``<offset>`` written ``90m``, ``1h`` or ``1h30m``. The text is checked by pattern when the config
is decoded (the error carries the field's path) and parsed and validated by the config's
``__post_init__`` (``validate_times``): every value must fall inside a regular session (09:30-16:00), and
the config's ordering rules (``entry_start < entry_end`` ...) must hold both on a regular day and on a
half day, so a config that would misbehave on the day after Thanksgiving is refused at load.

At run time a value is resolved against the day's ``greeks.calendar.Session`` to an event-time instant
(``DaySchedule``). Relative values move with the session: ``close-60m`` is 15:00 on a regular day and
12:00 on a half day. An absolute time at or after an early close cannot mean its clock time (the market
has closed): it keeps its regular-day distance to the close, so ``"15:45"`` (15 minutes before 16:00)
resolves to 12:45 on a 13:00 half day. Anything still outside the session is clamped to the open or
the close. Each such adjustment is a ``note`` that the strategy reports once per field and day.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal

import msgspec

from greeks.calendar import (
    NS_PER_MINUTE,
    REGULAR_CLOSE,
    CalendarRangeError,
    Session,
    market_calendar,
    ny_instant_ns,
)

REGULAR_OPEN: Final = dt.time(9, 30)
HALF_DAY_CLOSE: Final = dt.time(13, 0)

SESSION_TIME_PATTERN: Final = r"^(\d{1,2}:\d{2}|(open|close)([+-](\d+h)?(\d+m)?)?)$"
"""Shape of the text (the parser checks the rest: 'open+' without an offset, '25:00', a close+ offset)."""

SessionTimeText = Annotated[str, msgspec.Meta(pattern=SESSION_TIME_PATTERN)]
"""A config field holding a session time ("open+30m", "close-15m", "close-1h30m" or New York "15:45")."""

_TEXT = re.compile(r"^(?:(?P<hh>\d{1,2}):(?P<mm>\d{2})|(?P<anchor>open|close)"
                   r"(?:(?P<sign>[+-])(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?)?)$")
_HELP = "use 'open+30m', 'close-15m', 'close-1h30m' or a New York time 'HH:MM'"

Op = Literal["<", "<="]
_OPS: dict[str, Callable[[int, int], bool]] = {"<": operator.lt, "<=": operator.le}


@dataclass(frozen=True, slots=True)
class SessionTime:
    """A parsed session time: ``anchor`` "open"/"close" with a signed offset, or "clock" with a wall time."""

    text: str
    anchor: Literal["open", "close", "clock"]
    offset_ns: int = 0
    clock: dt.time | None = None

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def parse(text: str) -> SessionTime:
        """Parse ``text``; ``ValueError`` saying what is wrong and what is accepted."""
        m = _TEXT.match(text.strip()) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"{text!r} is not a session time ({_HELP})")
        if m["anchor"] is None:
            hh, mm = int(m["hh"]), int(m["mm"])
            if hh > 23 or mm > 59:
                raise ValueError(f"{text!r} is not a time of day ({_HELP})")
            return SessionTime(text, "clock", clock=dt.time(hh, mm))
        if m["sign"] is not None and m["h"] is None and m["m"] is None:
            raise ValueError(f"{text!r} has a sign but no offset ({_HELP})")
        minutes = int(m["h"] or 0) * 60 + int(m["m"] or 0)
        sign = -1 if m["sign"] == "-" else 1
        anchor: Literal["open", "close"] = "open" if m["anchor"] == "open" else "close"
        return SessionTime(text, anchor, sign * minutes * NS_PER_MINUTE)

    def resolve(self, session: Session) -> tuple[int, str]:
        """(event-time instant on ``session``, a note when it had to be moved or clamped, else "")."""
        note = ""
        if self.anchor == "open":
            at = session.open_ns + self.offset_ns
        elif self.anchor == "close":
            at = session.close_ns + self.offset_ns
        else:
            assert self.clock is not None
            at = ny_instant_ns(session.day, self.clock)
            if session.early_close and at >= session.close_ns:
                # The clock time is gone on a half day: keep its regular-day distance to the close.
                before_close = ny_instant_ns(session.day, REGULAR_CLOSE) - at
                at = session.close_ns - before_close
                note = (f"{self.text} is past the {_hhmm(session.close_ns, session)} early close: "
                        f"{_hhmm(at, session)} ({before_close // NS_PER_MINUTE} min before the close, "
                        f"as on a regular day)")
        if at < session.open_ns or at > session.close_ns:
            bound = session.open_ns if at < session.open_ns else session.close_ns
            note = (f"{self.text} falls outside the {_hhmm(session.open_ns, session)}-"
                    f"{_hhmm(session.close_ns, session)} session: clamped to {_hhmm(bound, session)}")
            at = bound
        return at, note


def _hhmm(ts_ns: int, session: Session) -> str:
    """New York HH:MM of an instant on ``session``'s day (minutes since local midnight, DST-aware)."""
    midnight = ny_instant_ns(session.day, dt.time(0, 0))
    minutes = (ts_ns - midnight) // NS_PER_MINUTE
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def session_on(day: dt.date) -> Session | None:
    """The market session on New York date ``day`` (None on a weekend or holiday).

    Outside the loaded calendar's span (far past or future) a weekday is taken as a regular session.
    """
    try:
        return market_calendar().session(day)
    except CalendarRangeError:
        if day.weekday() >= 5:
            return None
        return sample_session(day, early_close=False)


def sample_session(day: dt.date, early_close: bool) -> Session:
    """A regular (09:30-16:00) or half-day (09:30-13:00) session on ``day``, for validation and tests."""
    close = HALF_DAY_CLOSE if early_close else REGULAR_CLOSE
    return Session(day, ny_instant_ns(day, REGULAR_OPEN), ny_instant_ns(day, close), early_close)


# Validation days: a regular Wednesday and the half day after Thanksgiving (both EST; clock times are local).
REGULAR_SAMPLE: Final = sample_session(dt.date(2026, 11, 25), early_close=False)
HALF_DAY_SAMPLE: Final = sample_session(dt.date(2026, 11, 27), early_close=True)


# ---------------------------------------------------------------------------------------------- config checks


def validate_times(values: Mapping[str, str], rules: Iterable[tuple[str, Op, str]]) -> None:
    """Raise ``ValueError`` naming the field when a value does not parse, falls outside a regular session,
    or breaks an ordering rule on a regular day or on a half day (after the half day's adjustments)."""
    parsed: dict[str, SessionTime] = {}
    for name, text in values.items():
        try:
            parsed[name] = SessionTime.parse(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if parsed[name].resolve(REGULAR_SAMPLE)[1]:
            raise ValueError(f"{name} = {text!r} falls outside the regular session (09:30-16:00 New York)")
    for session, label in ((REGULAR_SAMPLE, "a regular day"), (HALF_DAY_SAMPLE, "a half day (13:00 close)")):
        at = {name: st.resolve(session)[0] for name, st in parsed.items()}
        for a, op, b in rules:
            if a in at and b in at and not _OPS[op](at[a], at[b]):
                raise ValueError(
                    f"need {a} {op} {b} on {label}: {a} = {values[a]!r} is {_hhmm(at[a], session)}, "
                    f"{b} = {values[b]!r} is {_hhmm(at[b], session)}")


# ---------------------------------------------------------------------------------------------- per day


@dataclass(slots=True)
class DaySchedule:
    """One New York date's resolved times: ``at[field]`` in event-time ns (empty without a session)."""

    day: dt.date
    session: Session | None
    start_ns: int
    """Local midnight of ``day``; with ``end_ns`` it answers "still the same day?" by two comparisons."""
    end_ns: int
    at: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """Field -> why its instant differs from its plain reading today (moved, clamped, reordered)."""

    def contains(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns

    @classmethod
    def build(cls, day: dt.date, session: Session | None, values: Mapping[str, str],
              rules: Iterable[tuple[str, Op, str]] = ()) -> DaySchedule:
        """Resolve ``values`` on ``session``; a rule broken on this session (a session unlike the validated
        samples) is enforced by moving its left field to its right one, with a note."""
        start = ny_instant_ns(day, dt.time(0, 0))
        out = cls(day, session, start, ny_instant_ns(day + dt.timedelta(days=1), dt.time(0, 0)))
        if session is None:
            return out
        for name, text in values.items():
            out.at[name], note = SessionTime.parse(text).resolve(session)
            if note:
                out.notes[name] = note
        for a, op, b in rules:
            if a in out.at and b in out.at and not _OPS[op](out.at[a], out.at[b]):
                out.at[a] = out.at[b]
                out.notes[a] = f"{values[a]} is not {op} {b} ({values[b]}) today: moved to {_hhmm(out.at[b], session)}"
        return out
