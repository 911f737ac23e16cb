"""An in-memory option book priced from a parametric smile: a concrete ``ChainView`` and ``MarketView``.

Used where a real feed is not wanted: gate and strategy tests, the gate benchmark, and offline
what-if runs of the gate. Quotes come from ``greeks`` Black-Scholes prices on a smile
``iv(K) = atm + skew * k + curvature * k^2`` (``k = ln(K/F)``, with a term slope on ``atm``), with
a bid-ask spread proportional to the price (at least a tick). ``reprice`` moves spot and/or time
and refreshes every row (sticky-strike vols), exactly like a book after an underlying tick.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import numpy.typing as npt

from domain.views import VolStats
from greeks import black_scholes_greeks, black_scholes_price
from greeks.calendar import YEAR_NS, expiry_close_ns_many
from greeks.occ import format_occ

C = TypeVar("C")
"""A chain type with ``underlying``, ``spot`` and ``spot_ts_ns``."""


NEW_YORK = ZoneInfo("America/New_York")
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Smile(msgspec.Struct, frozen=True):
    """Implied-vol surface parameters (fractions; ``term_slope`` per year of maturity)."""

    atm: float = 0.16
    skew: float = -0.35
    curvature: float = 0.8
    term_slope: float = 0.02
    floor: float = 0.05


def ny_ns(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """Epoch nanoseconds of a New York wall-clock time."""
    local = dt.datetime(year, month, day, hour, minute, second, tzinfo=NEW_YORK)
    return int(local.timestamp()) * 1_000_000_000


class SyntheticChain:
    """A ``ChainView`` over arrays filled from a smile (one row per contract)."""

    def __init__(self, underlying: str, spot: float, now_ns: int, expiries: Sequence[dt.date],
                 strikes: Sequence[float], smile: Smile | None = None, rate: float = 0.04,
                 dividend_yield: float = 0.012, spread_pct: float = 0.04, min_half_spread: float = 0.01,
                 open_interest: int = 1_000, volume: int = 100, root: str | None = None) -> None:
        self.underlying = underlying
        self.smile = smile or Smile()
        self.rate, self.dividend_yield = rate, dividend_yield
        self.spread_pct, self.min_half_spread = spread_pct, min_half_spread
        rows = [(e, k, c) for e in sorted(expiries) for k in sorted(strikes) for c in (True, False)]
        n = len(rows)
        self.symbols: Sequence[str] = [format_occ(root or underlying, e, c, k) for e, k, c in rows]
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.strike: F64 = np.array([k for _, k, _ in rows], dtype=np.float64)
        self.expiry: npt.NDArray[np.datetime64] = np.array([e for e, _, _ in rows], dtype="datetime64[D]")
        self.is_call: npt.NDArray[np.bool_] = np.array([c for _, _, c in rows], dtype=np.bool_)
        self._close_ns: I64 = expiry_close_ns_many(e for e, _, _ in rows)  # 13:00 on half days
        self.t_years: F64 = np.zeros(n)
        self.bid: F64 = np.zeros(n)
        self.ask: F64 = np.zeros(n)
        self.bid_size: I64 = np.full(n, 10, dtype=np.int64)
        self.ask_size: I64 = np.full(n, 10, dtype=np.int64)
        self.quote_ts_ns: I64 = np.zeros(n, dtype=np.int64)
        self.last_price: F64 = np.full(n, np.nan)
        self.open_interest: I64 = np.full(n, open_interest, dtype=np.int64)
        self.volume: I64 = np.full(n, volume, dtype=np.int64)
        self.forward: F64 = np.zeros(n)
        self.iv: F64 = np.zeros(n)
        self.surface_iv: F64 = np.full(n, np.nan)
        self.surface_fwd: F64 = np.full(n, np.nan)
        """No surface by default; a test sets it to put the chain on a fitted surface."""
        self.delta: F64 = np.zeros(n)
        self.gamma: F64 = np.zeros(n)
        self.vega: F64 = np.zeros(n)
        self.theta: F64 = np.zeros(n)
        self.rho: F64 = np.zeros(n)
        self.status: npt.NDArray[np.int8] = np.zeros(n, dtype=np.int8)
        self.flags: npt.NDArray[np.int8] = np.zeros(n, dtype=np.int8)
        self.spot = spot
        self.spot_ts_ns = now_ns
        self.ts_ns = now_ns
        self.vol_shift = 0.0
        self.reprice(spot, now_ns)

    def row_of(self, symbol: str) -> int:
        return self._index.get(symbol, -1)

    def __len__(self) -> int:
        return len(self.symbols)

    def symbol_at(self, expiry: dt.date, strike: float, is_call: bool) -> str:
        """The symbol of a listed contract (KeyError if the chain does not list it)."""
        sym = format_occ(self.symbols[0][: -15], expiry, is_call, strike)
        if sym not in self._index:
            raise KeyError(sym)
        return sym

    def reprice(self, spot: float | None = None, now_ns: int | None = None, vol_shift: float | None = None,
                rows: npt.NDArray[np.bool_] | None = None) -> None:
        """Move spot, time and/or the whole smile (``vol_shift`` in vol fractions); refresh quotes and Greeks.

        With ``rows``, only those rows get new quotes and a new quote time (the others keep theirs,
        as a book does when only some contracts tick); the Greeks are always recomputed.
        """
        if spot is not None:
            self.spot = spot
        if now_ns is not None:
            self.spot_ts_ns = now_ns
            self.ts_ns = now_ns
        if vol_shift is not None:
            self.vol_shift = vol_shift
        t = np.maximum((self._close_ns - self.ts_ns) / YEAR_NS, 0.0)
        fwd = self.spot * np.exp((self.rate - self.dividend_yield) * t)
        k = np.log(self.strike / fwd)
        sm = self.smile
        iv = np.maximum(sm.atm + sm.term_slope * t + sm.skew * k + sm.curvature * k * k + self.vol_shift, sm.floor)
        live = t > 0
        price = np.where(live, black_scholes_price(self.spot, self.strike, np.where(live, t, 1.0), self.rate,
                                                   self.dividend_yield, iv, self.is_call), np.nan)
        intrinsic = np.where(self.is_call, np.maximum(self.spot - self.strike, 0.0),
                             np.maximum(self.strike - self.spot, 0.0))
        price = np.where(live, price, intrinsic)
        half = np.maximum(price * self.spread_pct / 2.0, self.min_half_spread)
        bid = np.maximum(np.round((price - half) * 100.0) / 100.0, 0.0)
        ask = np.maximum(np.round((price + half) * 100.0) / 100.0, 0.01)
        g = black_scholes_greeks(self.spot, self.strike, np.where(live, t, 1.0), self.rate, self.dividend_yield,
                                 iv, self.is_call)
        sel = np.ones(len(self), dtype=np.bool_) if rows is None else rows
        self.bid[sel] = bid[sel]
        self.ask[sel] = ask[sel]
        self.quote_ts_ns[sel] = self.ts_ns
        self.t_years[:] = t
        self.forward[:] = fwd
        self.iv[:] = np.where(live, iv, np.nan)
        for name, arr in (("delta", g.delta), ("gamma", g.gamma), ("vega", g.vega), ("theta", g.theta),
                          ("rho", g.rho)):
            getattr(self, name)[:] = np.where(live, arr, 0.0)


class ChainsMarket(Generic[C]):
    """A ``MarketView`` over chains held by underlying (each with ``spot`` and ``spot_ts_ns``)."""

    def __init__(self, *chains: C) -> None:
        self.chains = {c.underlying: c for c in chains}
        self.vol: dict[str, VolStats] = {}
        """What ``vol_stats`` answers per underlying (a test sets it)."""

    def chain(self, underlying: str) -> C | None:
        return self.chains.get(underlying)

    def spot(self, underlying: str) -> float:
        c = self.chains.get(underlying)
        return c.spot if c is not None else math.nan

    def spot_ts_ns(self, underlying: str) -> int:
        c = self.chains.get(underlying)
        return c.spot_ts_ns if c is not None else 0

    def vol_stats(self, underlying: str) -> VolStats | None:
        return self.vol.get(underlying)


class SyntheticMarket(ChainsMarket["SyntheticChain"]):
    """A ``MarketView`` over ``SyntheticChain``s."""


def standard_expiries(today: dt.date, days: Sequence[int] = (0, 1, 2, 7, 14, 21, 30, 37, 44, 60, 90)) -> list[dt.date]:
    """Expiry dates ``today + d`` moved forward off weekends (a stand-in for a listed calendar)."""
    out: set[dt.date] = set()
    for d in days:
        e = today + dt.timedelta(days=d)
        while e.weekday() >= 5:
            e += dt.timedelta(days=1)
        out.add(e)
    return sorted(out)


def strike_ladder(spot: float, step: float, n_each_side: int) -> list[float]:
    """Strikes on a ``step`` grid centred on the one nearest ``spot``."""
    centre = round(spot / step) * step
    return [centre + i * step for i in range(-n_each_side, n_each_side + 1)]


class ArrayChain:
    """A ``ChainView`` over arrays supplied by the caller (e.g. another quote source), Greeks from ``greeks``.

    ``iv`` per row is taken as given; the Greeks are computed at it with Black-Scholes on ``spot``,
    ``rate`` and ``dividend_yield``. Rows past expiry keep NaN IV and zero Greeks.
    """

    def __init__(self, underlying: str, spot: float, now_ns: int, symbols: Sequence[str],
                 strike: npt.ArrayLike, expiry: npt.ArrayLike, is_call: npt.ArrayLike, bid: npt.ArrayLike,
                 ask: npt.ArrayLike, iv: npt.ArrayLike, t_years: npt.ArrayLike, rate: float = 0.04,
                 dividend_yield: float = 0.0, open_interest: int = 1_000, volume: int = 100) -> None:
        n = len(symbols)
        self.underlying = underlying
        self.spot = spot
        self.spot_ts_ns = now_ns
        self.ts_ns = now_ns
        self.symbols: Sequence[str] = list(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.strike: F64 = np.asarray(strike, dtype=np.float64)
        self.expiry: npt.NDArray[np.datetime64] = np.asarray(expiry, dtype="datetime64[D]")
        self.is_call: npt.NDArray[np.bool_] = np.asarray(is_call, dtype=np.bool_)
        self.bid: F64 = np.asarray(bid, dtype=np.float64).copy()
        self.ask: F64 = np.asarray(ask, dtype=np.float64).copy()
        self.t_years: F64 = np.asarray(t_years, dtype=np.float64)
        live = self.t_years > 0
        self.iv: F64 = np.where(live, np.asarray(iv, dtype=np.float64), np.nan)
        self.surface_iv: F64 = np.full(self.iv.shape[0], np.nan)
        self.surface_fwd: F64 = np.full(self.iv.shape[0], np.nan)
        self.forward: F64 = spot * np.exp((rate - dividend_yield) * self.t_years)
        g = black_scholes_greeks(spot, self.strike, np.where(live, self.t_years, 1.0), rate, dividend_yield,
                                 np.where(live, self.iv, 0.2), self.is_call)
        self.delta: F64 = np.where(live, g.delta, 0.0)
        self.gamma: F64 = np.where(live, g.gamma, 0.0)
        self.vega: F64 = np.where(live, g.vega, 0.0)
        self.theta: F64 = np.where(live, g.theta, 0.0)
        self.rho: F64 = np.where(live, g.rho, 0.0)
        self.bid_size: I64 = np.full(n, 10, dtype=np.int64)
        self.ask_size: I64 = np.full(n, 10, dtype=np.int64)
        self.quote_ts_ns: I64 = np.full(n, now_ns, dtype=np.int64)
        self.last_price: F64 = np.full(n, np.nan)
        self.open_interest: I64 = np.full(n, open_interest, dtype=np.int64)
        self.volume: I64 = np.full(n, volume, dtype=np.int64)
        self.status: npt.NDArray[np.int8] = np.zeros(n, dtype=np.int8)
        self.flags: npt.NDArray[np.int8] = np.zeros(n, dtype=np.int8)

    def row_of(self, symbol: str) -> int:
        return self._index.get(symbol, -1)

    def __len__(self) -> int:
        return len(self.symbols)


class ArrayMarket(ChainsMarket["ArrayChain"]):
    """A ``MarketView`` over ``ArrayChain``s."""
