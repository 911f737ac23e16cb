"""Scenario stress of a book of options and shares on one underlying, repriced with ``greeks``.

The grid: spot moved by +-x and +-x/2 (and 0) combined with the volatility surface moved in parallel by -y, 0 and +y
points and its skew steepened and flattened (``StressGrid``), all at the current time; plus, when the book holds
same-day expiries, "to the close" scenarios: spot +-x0 (and 0) with every leg aged to today's close, so same-day
legs are worth their intrinsic value. Each scenario's P&L is against the same model's price today, so quoted spreads
do not show up as losses.

Prices come from ``greeks.black.price_row`` (Black-Scholes-Merton) on each row's forward, so carry is whatever the
book's forward says. One Numba call computes the whole grid for a set of rows, with no Python objects per leg or
scenario. Scenario P&L is additive over positions, so the gate prices the held book once (``HeldStressCache``) and
each intent's own legs per check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from numba import njit

from domain.orders import CONTRACT_MULTIPLIER
from domain.views import ChainView
from greeks.black import greeks_row, price_row
from greeks.calendar import (
    NS_PER_MINUTE,
    REGULAR_CLOSE,
    YEAR_NS,
    CalendarRangeError,
    market_calendar,
    ny_date,
    ny_instant_ns,
)
from risk.limits import StressLimits

F64 = npt.NDArray[np.float64]
MIN_SIGMA = 0.01
CLOSE_MATCH_YEARS = 60.0 / (365.0 * 86_400)
"""A row whose time to expiry is within a minute of the time to today's close expires today."""


@njit(cache=True, nogil=True)
def _leg_price(fwd: float, strike: float, t: float, sigma: float, is_call: bool, r: float) -> float:
    if t <= 1e-12:
        return max(fwd - strike, 0.0) if is_call else max(strike - fwd, 0.0)
    return price_row(fwd * math.exp(-r * t), strike, t, r, 0.0, sigma, is_call)


@njit(cache=True, nogil=True)
def _stress_kernel(
    fwd_all: F64, strike_all: F64, t_all: F64, sigma_all: F64, is_call_all: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.int64], qty: F64, spot: float, shares: float, r: float,
    spot_moves: F64, vol_moves: F64, skew_moves: F64, close_moves: F64, to_close: float, multiplier: float,
    out: F64,
) -> None:
    n_vol = vol_moves.shape[0]
    n_grid = spot_moves.shape[0] * n_vol
    n_out = out.shape[0]
    for j in range(n_out):
        out[j] = shares * spot * (spot_moves[j // n_vol] if j < n_grid else close_moves[j - n_grid])
    for i in range(rows.shape[0]):
        if qty[i] == 0.0:
            continue
        k = rows[i]
        t = t_all[k]
        sigma = sigma_all[k]
        fwd = fwd_all[k]
        if not (fwd > 0.0) or not math.isfinite(fwd):
            fwd = spot * math.exp(r * t)
        base = _leg_price(fwd, strike_all[k], t, sigma, is_call_all[k], r)
        q = qty[i] * multiplier
        tenths = math.log(strike_all[k] / fwd) / 0.1  # log-moneyness in tenths, for the skew shock
        for j in range(n_out):
            if j < n_grid:
                s = 1.0 + spot_moves[j // n_vol]
                v = max(sigma + vol_moves[j % n_vol] - skew_moves[j % n_vol] * tenths, MIN_SIGMA)
                tt = t
            else:
                s = 1.0 + close_moves[j - n_grid]
                v = sigma
                tt = max(t - to_close, 0.0)
            out[j] += q * (_leg_price(fwd * s, strike_all[k], tt, v, is_call_all[k], r) - base)


class StressGrid:
    """The scenario moves of a ``StressLimits``, as arrays built once (not per check).

    Each vol scenario shifts the whole surface: a parallel move (``vol_moves``, vol points as fractions) plus a
    skew move (``skew_moves``: vol added per tenth of log-moneyness below the forward and taken off above, so a
    positive move steepens a put skew). With a skew shock the vol scenarios are: parallel -y, 0, +y, then skew
    +z and -z at no parallel move.
    """

    __slots__ = ("close_moves", "limits", "n_grid", "n_max", "skew_moves", "spot_moves", "vol_moves")

    def __init__(self, limits: StressLimits) -> None:
        x, y, x0 = limits.spot_shock_pct, limits.vol_shock_vol_pts / 100.0, limits.to_close_spot_shock_pct
        z = limits.skew_shock_vol_pts / 100.0
        self.limits = limits
        self.spot_moves: F64 = np.array([-x, -x / 2, 0.0, x / 2, x])
        par = [-y, 0.0, y] if y > 0 else [0.0]
        skew = [0.0] * len(par)
        if z > 0:
            par, skew = [*par, 0.0, 0.0], [*skew, z, -z]
        self.vol_moves: F64 = np.array(par)
        self.skew_moves: F64 = np.array(skew)
        self.close_moves: F64 = np.array([-x0, 0.0, x0])
        self.n_grid = self.spot_moves.shape[0] * self.vol_moves.shape[0]
        self.n_max = self.n_grid + self.close_moves.shape[0]

    def labels(self, with_close: bool) -> list[str]:
        """Human names of the scenarios, in output order (for denial details)."""
        vols = [f"vol{100 * v:+.1f}pt" + (f"/skew{100 * z:+.1f}pt" if z else "")
                for v, z in zip(self.vol_moves, self.skew_moves, strict=True)]
        out = [f"spot{100 * s:+.1f}%/{v}" for s in self.spot_moves for v in vols]
        if with_close:
            out += [f"to_close/spot{100 * s:+.1f}%" for s in self.close_moves]
        return out


def scenario_pnl(
    grid: StressGrid, fwd: F64, strike: F64, t: F64, sigma: F64, is_call: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.int64], qty: F64, spot: float, shares: float = 0.0, to_close: float = 0.0,
) -> F64:
    """P&L in dollars of a book in every scenario of the grid (``grid.n_max`` values; NaN if unpriceable).

    ``fwd`` .. ``is_call`` are whole book columns (a ``ChainView``'s arrays), ``rows`` the rows held
    and ``qty`` their contracts; ``shares`` of the underlying at ``spot``. ``to_close`` is the year
    fraction to today's close (0 outside the session): the last ``len(close_moves)`` values age every
    leg by it. P&L is additive over positions, so a book's vector is the sum of its parts'.
    A row without a usable forward is priced off ``spot`` carried at the grid's rate.
    """
    out = np.empty(grid.n_max)
    _stress_kernel(fwd, strike, t, sigma, is_call, rows, qty, spot, shares, grid.limits.rate, grid.spot_moves,
                   grid.vol_moves, grid.skew_moves, grid.close_moves, to_close, float(CONTRACT_MULTIPLIER), out)
    return out


@njit(cache=True, nogil=True)
def _combine_worst(before: F64, delta: F64, n: int) -> tuple[float, int, float]:
    worst_after = math.inf
    worst_before = math.inf
    at = 0
    for j in range(n):
        a = before[j] + delta[j]
        if math.isnan(a):
            return math.nan, j, math.nan
        if a < worst_after:
            worst_after = a
            at = j
        if before[j] < worst_before:
            worst_before = before[j]
    return worst_after, at, worst_before


def combine_worst(before: F64, delta: F64, n: int) -> tuple[float, int, float]:
    """(worst post-trade P&L, its scenario index, worst pre-trade P&L) over the first ``n`` scenarios.

    The post-trade book's P&L is ``before + delta`` (scenario P&L is additive); NaN when any is NaN.
    """
    wa, at, wb = _combine_worst(before, delta, n)
    return float(wa), int(at), float(wb)


def has_same_day(t: F64, rows: npt.NDArray[np.int64], to_close: float) -> bool:
    """True when one of ``rows`` expires at today's close (its time to expiry is the time to the close)."""
    if to_close <= 0.0 or rows.shape[0] == 0:
        return False
    return bool((np.abs(t[rows] - to_close) < CLOSE_MATCH_YEARS).any())


def stress_pnl(
    grid: StressGrid, fwd: F64, strike: F64, t: F64, sigma: F64, is_call: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.int64], qty_before: F64, qty_after: F64, spot: float, shares_before: float,
    shares_after: float, to_close: float = 0.0,
) -> tuple[F64, F64]:
    """Scenario P&L of a book before and after a trade; the to-the-close scenarios only when a row expires today."""
    a = scenario_pnl(grid, fwd, strike, t, sigma, is_call, rows, qty_before, spot, shares_before, to_close)
    b = scenario_pnl(grid, fwd, strike, t, sigma, is_call, rows, qty_after, spot, shares_after, to_close)
    n = grid.n_max if has_same_day(t, rows, to_close) else grid.n_grid
    return a[:n], b[:n]


def session_close_ns(ts_ns: int) -> int:
    """Epoch ns of the close of the New York trading date of ``ts_ns`` (13:00 on half days; the previous
    session's close on a day without one; 16:00 that day outside the calendar's span)."""
    try:
        return market_calendar().close_ns_at(ts_ns)
    except CalendarRangeError:
        return ny_instant_ns(ny_date(ts_ns), REGULAR_CLOSE)


def stress_inputs(chain: ChainView, spot: float) -> tuple[float, float]:
    """(spot, years to today's close) the scenarios of ``chain``'s book are priced at: ``spot`` when positive
    (the market's), else the chain's own; the close as of the chain's time (0 once it has passed)."""
    s = spot if spot > 0 else float(chain.spot)
    return s, max((session_close_ns(chain.ts_ns) - chain.ts_ns) / YEAR_NS, 0.0)


class HeldStressCache:
    """Scenario P&L of the held book per underlying, reused while it cannot have changed materially.

    The held book's vector is recomputed when the positions change (the portfolio's ``revision``,
    bumped on every applied fill; without that attribute nothing is cached), when the chain object or
    the scenario grid changes or the chain drops rows (its ``generation``), when spot has moved
    ``SPOT_TOL`` (relative), when any held leg's IV has moved ``IV_TOL`` or become NaN, or when
    ``MAX_AGE_NS`` of event time has passed. Within those
    bounds the scenarios (moves of several percent and vol points) are unchanged for risk purposes,
    and a check right after a new book frame costs only the intent's own legs.
    """

    SPOT_TOL = 0.001
    IV_TOL = 0.0025
    MAX_AGE_NS = NS_PER_MINUTE

    def __init__(self) -> None:
        self._entries: dict[str, _HeldEntry] = {}
        self.hits = 0
        self.misses = 0

    def held_pnl(self, chain: ChainView, held: Mapping[str, float], u: str, spot: float, to_close: float,
                 grid: StressGrid, revision: int | None) -> tuple[npt.NDArray[np.float64], bool]:
        e = self._entries.get(u)
        # usable_iv takes the surface's IVs: the cache watches those (a refit moves them)
        generation = getattr(chain, "generation", 0)  # rows removed from the book: cached row numbers are void
        if (e is not None and revision is not None and e.revision == revision and e.chain_id == id(chain)
                and e.generation == generation and e.grid_id == id(grid)
                and abs(spot - e.spot) <= self.SPOT_TOL * e.spot
                and 0 <= chain.ts_ns - e.ts_ns <= self.MAX_AGE_NS
                and self._ivs_unchanged(chain, e)):
            self.hits += 1
            return e.pnl, e.same_day
        self.misses += 1
        idx, pnl, same_day = held_pnl(chain, held, u, spot, to_close, grid)
        if revision is not None:
            self._entries[u] = _HeldEntry(revision, id(chain), generation, id(grid), spot, chain.ts_ns, idx,
                                          usable_iv_rows(chain, idx), pnl, same_day)
        return pnl, same_day


    def _ivs_unchanged(self, chain: ChainView, e: _HeldEntry) -> bool:
        iv, siv, tol = chain.iv, chain.surface_iv, self.IV_TOL
        for r, v0 in e.ivs:
            v = siv.item(r)
            if not math.isfinite(v):
                v = iv.item(r)
            if not abs(v - v0) <= tol:  # a NaN IV compares False: recompute
                return False
        return True


class _HeldEntry:
    __slots__ = ("chain_id", "generation", "grid_id", "ivs", "pnl", "revision", "same_day", "spot", "ts_ns")

    def __init__(self, revision: int, chain_id: int, generation: int, grid_id: int, spot: float, ts_ns: int,
                 idx: npt.NDArray[np.int64], iv: npt.NDArray[np.float64], pnl: npt.NDArray[np.float64],
                 same_day: bool) -> None:
        self.revision, self.chain_id, self.grid_id, self.spot, self.ts_ns = revision, chain_id, grid_id, spot, ts_ns
        self.generation = generation
        # (row, IV) pairs as Python numbers: the per-check comparison then reads one array item per row.
        self.ivs = list(zip(idx.tolist(), iv.tolist(), strict=True))
        self.pnl, self.same_day = pnl, same_day


def usable_iv(chain: ChainView, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The IVs the stress shifts: each of ``rows`` at its IV on the fitted surface where the chain has one (the
    scenarios then move one smooth surface, not each leg's own noisy IV), else its own IV, else (a one-sided or
    empty quote) the IV of the nearest strike of the same expiry. The chain's own array when nothing needs
    replacing (no copy)."""
    iv = chain.iv
    on_surface = rows[np.isfinite(chain.surface_iv[rows])]
    if on_surface.size:
        iv = iv.copy()
        iv[on_surface] = chain.surface_iv[on_surface]
    if rows.size == 0 or bool(np.isfinite(iv[rows]).all()):
        return iv
    out = iv.copy()
    t, k = chain.t_years, chain.strike
    finite = np.isfinite(iv)
    for r in rows[~np.isfinite(iv[rows])].tolist():
        cand = np.flatnonzero(finite & (np.abs(t - t[r]) < 1e-12))
        if cand.size:
            out[r] = iv[cand[np.argmin(np.abs(k[cand] - k[r]))]]
    return out


def usable_iv_rows(chain: ChainView, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """``usable_iv(chain, rows)[rows]``: the IVs of ``rows`` only, without copying the chain's IV column when each
    row has a surface IV or an IV of its own (the common case)."""
    siv, iv = chain.surface_iv, chain.iv
    out = np.empty(rows.shape[0])
    for j, r in enumerate(rows.tolist()):
        v = siv.item(r)
        if not math.isfinite(v):
            v = iv.item(r)
            if not math.isfinite(v):
                return usable_iv(chain, rows)[rows]
        out[j] = v
    return out


def offer_only_greeks(chain: ChainView, row: int, rate: float) -> tuple[float, float, float, float]:
    """(delta, gamma, vega, theta) of a row quoted with no bid, which has no mid and so no IV of its own: at the IV
    of the nearest strike of its expiry, as the stress prices it (``usable_iv``); NaN when there is none.

    A protective wing bid at zero (late in a session, all through a half day) is bought on its offer; without
    this its NaN Greeks would fail every Greek limit and no same-day structure could be opened at all.
    """
    sigma = usable_iv(chain, np.array([row], dtype=np.int64)).item(row)
    t, fwd = chain.t_years.item(row), chain.forward.item(row)
    if not (math.isfinite(sigma) and t > 0 and fwd > 0):
        return math.nan, math.nan, math.nan, math.nan
    d, g, v, th, _ = greeks_row(fwd * math.exp(-rate * t), chain.strike.item(row), t, rate, 0.0, sigma,
                                chain.is_call.item(row))
    return d, g, v, th


def held_pnl(chain: ChainView, held: Mapping[str, float], u: str, spot: float, to_close: float,
             grid: StressGrid) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], bool]:
    """Rows held on ``u``, their scenario P&L vector (shares included) and whether one expires today."""
    rows: list[int] = []
    qty: list[float] = []
    for sym, q in held.items():
        if sym != u and q != 0:
            r = chain.row_of(sym)
            if r >= 0:
                rows.append(r)
                qty.append(q)
    idx = np.array(rows, dtype=np.int64)
    pnl = scenario_pnl(grid, chain.forward, chain.strike, chain.t_years, usable_iv(chain, idx), chain.is_call, idx,
                       np.array(qty, dtype=np.float64), spot, held.get(u, 0.0), to_close)
    return idx, pnl, has_same_day(chain.t_years, idx, to_close)
