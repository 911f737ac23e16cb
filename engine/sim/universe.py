"""The listed option universe: expiries and strikes like the real SPY/QQQ chains.

Contracts are kept as append-only arrays (struct of arrays) so the market prices and quotes them
in batches; a contract's row index never changes. Listing runs at every session open: new daily,
weekly and monthly expiries appear as time passes; expired rows stay (inactive) for the record.

An expiry's strikes are drawn when it is first listed, around the spot of that day and as wide as its time to
expiry then: a monthly listed a year out has a wide, coarse grid, a daily listed a few sessions out a narrow
one. ``history_days`` > 0 lists the first session's chain as it would stand had listing run for that many
days before it (each expiry with the grid of its own first listing day, at today's spot): the steady state of
a real chain, and of this simulator after months. With 0 every expiry is listed fresh at the start, with the
narrower grid of its time to expiry then, so the chain widens over the first weeks.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field

import numpy as np

from engine.sim.config import UnderlyingConfig
from greeks.calendar import MarketCalendar
from greeks.occ import format_occ

_ID_NAMESPACE = uuid.UUID("5b0b0d1e-8f7c-4e55-9a57-6c2d7a1f0e11")


def contract_id(symbol: str) -> str:
    """Stable UUID of a contract or asset (same symbol, same id, across runs)."""
    return str(uuid.uuid5(_ID_NAMESPACE, symbol))


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of a month (standard monthly expiry)."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(und: UnderlyingConfig, today: dt.date, calendar: MarketCalendar) -> list[dt.date]:
    """Expiry dates listed on ``today``: dailies, Friday weeklies and third-Friday monthlies."""
    out: set[dt.date] = set()
    if und.daily_expiries:
        d = calendar.session_on_or_after(today).day
        for _ in range(und.daily_expiry_sessions):
            out.add(d)
            d = calendar.next_session(d).day
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    for _ in range(und.weekly_expiry_weeks):
        out.add(calendar.session_on_or_before(friday).day)
        friday += dt.timedelta(days=7)
    year, month = today.year, today.month
    for _ in range(und.monthly_expiry_months + 1):
        out.add(calendar.session_on_or_before(third_friday(year, month)).day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(e for e in out if e >= today)


def strike_grid(spot: float, atm_vol: float, years: float) -> np.ndarray:
    """Strikes for one expiry: fine steps near the money, coarse steps further out."""
    fine = 1.0 if spot >= 50 else 0.5
    if years > 0.25:
        fine *= 5
    coarse = fine * 5
    sd = atm_vol * math.sqrt(max(years, 1 / 365))
    core = min(max(0.03, 2.5 * sd), 0.35)
    outer = min(max(0.06, 4.5 * sd), 0.6)
    lo_core, hi_core = spot * (1 - core), spot * (1 + core)
    lo, hi = spot * (1 - outer), spot * (1 + outer)
    near = np.arange(math.ceil(lo_core / fine) * fine, hi_core + 1e-9, fine)
    far_lo = np.arange(math.ceil(lo / coarse) * coarse, lo_core, coarse)
    far_hi = np.arange(math.ceil(hi_core / coarse) * coarse, hi + 1e-9, coarse)
    strikes = np.unique(np.round(np.concatenate([far_lo, near, far_hi]), 3))
    return strikes[strikes > 0]


@dataclass
class _Listing:
    """New rows of one listing, as array parts to append."""

    und: list[np.ndarray] = field(default_factory=list)
    strike: list[np.ndarray] = field(default_factory=list)
    is_call: list[np.ndarray] = field(default_factory=list)
    expiry_ns: list[np.ndarray] = field(default_factory=list)
    expiry_day: list[np.ndarray] = field(default_factory=list)


class Universe:
    """All contracts ever listed, as parallel arrays, plus lookup by symbol."""

    def __init__(self, underlyings: tuple[UnderlyingConfig, ...], calendar: MarketCalendar,
                 history_days: int = 0) -> None:
        self.underlyings = underlyings
        self.calendar = calendar
        self.history_days = history_days
        """At the first listing, list as if listing had run this many days before (module docstring)."""
        self.und_index = {u.symbol: i for i, u in enumerate(underlyings)}
        self.symbols: list[str] = []
        self.symbol_bytes: list[bytes] = []
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.expiry_dates: list[dt.date] = []
        self._und = np.empty(0, np.int32)
        self._strike = np.empty(0, np.float64)
        self._is_call = np.empty(0, np.bool_)
        self._expiry_ns = np.empty(0, np.int64)
        self._expiry_day = np.empty(0, "datetime64[D]")
        self._active = np.empty(0, np.bool_)
        self._listed: set[tuple[int, dt.date]] = set()

    # Arrays are exposed read-only; ``list_session`` is the only writer.
    @property
    def und(self) -> np.ndarray:
        return self._und

    @property
    def strike(self) -> np.ndarray:
        return self._strike

    @property
    def is_call(self) -> np.ndarray:
        return self._is_call

    @property
    def expiry_ns(self) -> np.ndarray:
        """Expiry instant (the close of the expiry session) in ns."""
        return self._expiry_ns

    @property
    def expiry_day(self) -> np.ndarray:
        """``expiry_dates`` as ``datetime64[D]`` (a listing filters on it without converting every row)."""
        return self._expiry_day

    @property
    def active(self) -> np.ndarray:
        return self._active

    def __len__(self) -> int:
        return len(self.symbols)

    def list_session(self, today: dt.date, spots: np.ndarray, now_ns: int) -> int:
        """List every expiry due on ``today`` that is not listed yet; return the number of new contracts."""
        listing = _Listing()
        if not self._listed and self.history_days > 0:
            first = today - dt.timedelta(days=self.history_days)
            for past in self.calendar.sessions_between(first, today - dt.timedelta(days=1)):
                self._list_day(listing, past.day, spots, past.open_ns, not_before=today)
        self._list_day(listing, today, spots, now_ns, not_before=today)
        if not listing.und:
            return 0
        added = sum(len(a) for a in listing.und)
        self._und = np.concatenate([self._und, *listing.und])
        self._strike = np.concatenate([self._strike, *listing.strike])
        self._is_call = np.concatenate([self._is_call, *listing.is_call])
        self._expiry_ns = np.concatenate([self._expiry_ns, *listing.expiry_ns])
        self._expiry_day = np.concatenate([self._expiry_day, *listing.expiry_day])
        self._active = np.concatenate([self._active, np.ones(added, np.bool_)])
        return added

    def _list_day(self, listing: _Listing, day: dt.date, spots: np.ndarray, now_ns: int, not_before: dt.date) -> None:
        """Into ``listing``, the expiries (on or after ``not_before``) first due on ``day``, with their strikes
        as of ``now_ns``."""
        for ui, und in enumerate(self.underlyings):
            for expiry in listed_expiries(und, day, self.calendar):
                if expiry < not_before or (ui, expiry) in self._listed:
                    continue
                self._listed.add((ui, expiry))
                close_ns = self.calendar.expiry_close_ns(expiry)
                years = max(close_ns - now_ns, 0) / (365.0 * 86400e9)
                strikes = strike_grid(float(spots[ui]), und.atm_vol, years)
                n = len(strikes)
                for is_call in (True, False):
                    listing.und.append(np.full(n, ui, np.int32))
                    listing.strike.append(strikes)
                    listing.is_call.append(np.full(n, is_call))
                    listing.expiry_ns.append(np.full(n, close_ns, np.int64))
                    listing.expiry_day.append(np.full(n, np.datetime64(expiry, "D")))
                    for k in strikes:
                        sym = format_occ(und.symbol, expiry, is_call, float(k))
                        self.index[sym] = len(self.symbols)
                        self.symbols.append(sym)
                        self.symbol_bytes.append(sym.encode())
                        self.ids.append(contract_id(sym))
                        self.expiry_dates.append(expiry)

    def deactivate_expired(self, now_ns: int) -> np.ndarray:
        """Mark contracts whose expiry has passed inactive; return their row indices."""
        gone = np.flatnonzero(self._active & (self._expiry_ns <= now_ns))
        self._active[gone] = False
        return gone
