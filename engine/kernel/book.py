"""The option book: one struct of arrays per underlying, repriced by one kernel call per frame.

``OptionBook`` satisfies ``domain.views.ChainView`` (one row per contract); ``Market``
(engine/kernel/market.py) holds one per underlying and satisfies ``MarketView``. The hot path:

1. ``Market.apply(batch)``: a compiled pass writes the frame's quotes/trades into the rows (a quote
   older than the row's is skipped, an identical repeat is counted as a duplicate), sets the row
   flags (crossed, locked, one-sided, no quote), the mid, the time to expiry and the forward, and
   marks the rows whose quotes changed;
2. one ``greeks.implied_vol_and_greeks`` call over exactly those rows (mask), in place;
3. one ``BookUpdated`` per touched underlying is published (the bus conflates them).

An underlying quote (``Market.on_underlying_quote``) reprices the whole chain Greeks-only at the held
IVs (``greeks.greeks_at_vol``), since a spot move changes every option's Greeks but not its quote.
No awaits and no per-message Python objects anywhere on this path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

from domain.views import FLAG_CROSSED, FLAG_LOCKED, FLAG_NO_QUOTE, FLAG_ONE_SIDED, FLAG_STALE, FLAG_UNUSABLE
from engine.kernel.market_data import DataBatch
from greeks import Greeks, IvGreeks, greeks_at_vol
from greeks.black import greeks_row, iv_greeks_at, iv_greeks_kernel
from greeks.calendar import YEAR_NS, expiry_close_ns
from greeks.occ import parse_occ
from greeks.status import FROM_SURFACE, NOT_COMPUTED

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Counters kept by the apply kernel (index into OptionBook.counters).
C_QUOTES, C_TRADES, C_OUT_OF_ORDER, C_DUPLICATES = 0, 1, 2, 3
HALF_TICK = 0.005
"""Minimum time value for an IV (half the option tick): below it the quote carries no vol information."""

@njit(cache=True)
def touched_books(gid: npt.NDArray[np.int32], gid_book: npt.NDArray[np.int32], out: npt.NDArray[np.bool_]) -> int:
    """Set ``out[b]`` for every book ``b`` a frame's symbol ids ``gid`` route to (``gid_book``; -1 and ids out of
    range route nowhere); return how many books were newly set. ``out`` is cleared by the caller."""
    m = 0
    n_gid = gid_book.shape[0]
    n_out = out.shape[0]
    for i in range(gid.shape[0]):
        g = gid[i]
        if 0 <= g < n_gid:
            b = gid_book[g]
            if 0 <= b < n_out and not out[b]:
                out[b] = True
                m += 1
    return m


@njit(cache=True)
def _apply_kernel(
    kind: npt.NDArray[np.int8],
    gid: npt.NDArray[np.int32],
    ts: I64,
    q_bid: F64,
    q_ask: F64,
    q_bid_size: I64,
    q_ask_size: I64,
    t_price: F64,
    t_size: I64,
    gid_book: npt.NDArray[np.int32],
    gid_row: npt.NDArray[np.int32],
    book_no: int,
    bid: F64,
    ask: F64,
    bid_size: I64,
    ask_size: I64,
    quote_ts: I64,
    last_price: F64,
    volume: I64,
    flags: npt.NDArray[np.int8],
    mid: F64,
    dirty: npt.NDArray[np.bool_],
    dirty_rows: npt.NDArray[np.int64],
    counters: I64,
    close_ns: I64,
    t_years: F64,
    spot: F64,
    rate: F64,
    div_yield: F64,
    forward: F64,
    iv_ts: I64,
    year_ns: float,
) -> tuple[int, int]:
    """Write one frame's messages for ``book_no`` into the rows; return (rows to reprice, newest ts)."""
    changed = 0
    newest = 0
    n_gid = gid_book.shape[0]
    for i in range(kind.shape[0]):
        g = gid[i]
        if g < 0 or g >= n_gid or gid_book[g] != book_no:
            continue
        r = gid_row[g]
        k = kind[i]
        if ts[i] > newest:
            newest = ts[i]
        if k == 1:  # KIND_QUOTE
            if ts[i] < quote_ts[r]:
                counters[2] += 1
                continue
            b = q_bid[i]
            a = q_ask[i]
            if (
                ts[i] == quote_ts[r]
                and b == bid[r]
                and a == ask[r]
                and q_bid_size[i] == bid_size[r]
                and q_ask_size[i] == ask_size[r]
            ):
                counters[3] += 1
                continue
            counters[0] += 1
            bid[r] = b
            ask[r] = a
            bid_size[r] = q_bid_size[i]
            ask_size[r] = q_ask_size[i]
            quote_ts[r] = ts[i]
            f = 0
            has_bid = b > 0.0
            has_ask = a > 0.0
            if not has_bid and not has_ask:
                f = 8  # FLAG_NO_QUOTE
            elif not has_bid or not has_ask:
                f = 4  # FLAG_ONE_SIDED
            elif b > a:
                f = 1  # FLAG_CROSSED
            elif b == a:
                f = 2  # FLAG_LOCKED
            m = 0.5 * (b + a) if (has_bid and has_ask) else np.nan
            # A size-only change leaves the mid, hence the IV, as it was: no reprice for it.
            if f != flags[r] or m != mid[r]:
                flags[r] = f
                mid[r] = m
                if not dirty[r]:
                    dirty[r] = True
                    dirty_rows[changed] = r
                    changed += 1
        elif k == 2:  # KIND_TRADE
            counters[1] += 1
            last_price[r] = t_price[i]
            volume[r] += t_size[i]
    if changed:
        for r in range(dirty.shape[0]):
            if dirty[r]:
                t = (close_ns[r] - newest) / year_ns
                t_years[r] = t
                forward[r] = spot[r] * math.exp((rate[r] - div_yield[r]) * t)
                iv_ts[r] = newest
    return changed, newest


@njit(cache=True, nogil=True)
def surface_greeks_at(i: int, surface_iv: F64, surface_fwd: F64, spot_move: float, strike: F64, t: F64, r: F64,
                      is_call: npt.NDArray[np.bool_], iv: F64, status: npt.NDArray[np.int8], delta: F64, gamma: F64,
                      vega: F64, theta: F64, rho: F64) -> bool:
    """Row ``i``'s IV and Greeks at its surface IV on the surface's forward moved with spot (status FROM_SURFACE);
    False (row untouched) where the surface has no value."""
    s = surface_iv[i]
    f = surface_fwd[i] * spot_move
    if not (s > 0.0) or not (t[i] > 0.0) or not (f > 0.0):
        return False
    d, g, v, th, rh = greeks_row(f * math.exp(-r[i] * t[i]), strike[i], t[i], r[i], 0.0, s, is_call[i])
    if not math.isfinite(d):
        return False
    iv[i], delta[i], gamma[i], vega[i], theta[i], rho[i] = s, d, g, v, th, rh
    status[i] = FROM_SURFACE
    return True


@njit(cache=True, nogil=True)
def _reprice_rows(rows: npt.NDArray[np.int64], mid: F64, spot: F64, strike: F64, t: F64, r: F64, q: F64,
                  is_call: npt.NDArray[np.bool_], use_surface: bool, flags: npt.NDArray[np.int8], surface_iv: F64,
                  surface_fwd: F64, spot_move: float, iv: F64, status: npt.NDArray[np.int8], delta: F64,
                  gamma: F64, vega: F64, theta: F64, rho: F64) -> None:
    """IV and Greeks of ``rows`` from their mids; with ``use_surface``, a row without a usable quote or IV then
    takes the surface's (``surface_greeks_at``). One compiled call per frame, visiting only its rows."""
    for j in range(rows.shape[0]):
        i = rows[j]
        iv_greeks_at(i, mid, spot, strike, t, r, q, is_call, HALF_TICK, True, iv, status, delta, gamma, vega, theta,
                     rho)
        if use_surface and (status[i] != 0 or (flags[i] & FLAG_UNUSABLE) != 0):
            surface_greeks_at(i, surface_iv, surface_fwd, spot_move, strike, t, r, is_call, iv, status, delta, gamma,
                              vega, theta, rho)


@njit(cache=True, nogil=True)
def _surface_fallback(rows: npt.NDArray[np.int64], flags: npt.NDArray[np.int8], surface_iv: F64, surface_fwd: F64,
                      spot_move: float, strike: F64, t: F64, r: F64, is_call: npt.NDArray[np.bool_], iv: F64,
                      status: npt.NDArray[np.int8], delta: F64, gamma: F64, vega: F64, theta: F64, rho: F64) -> None:
    """Repriced ``rows`` whose quote is one-sided, crossed, empty or stale, or whose IV did not solve: IV and
    Greeks at the surface IV instead (status FROM_SURFACE), where the surface has one."""
    for j in range(rows.shape[0]):
        i = rows[j]
        if status[i] == 0 and (flags[i] & FLAG_UNUSABLE) == 0:
            continue
        surface_greeks_at(i, surface_iv, surface_fwd, spot_move, strike, t, r, is_call, iv, status, delta, gamma,
                          vega, theta, rho)


class OptionBook:
    """One underlying's chain as arrays (``domain.views.ChainView``); rows are appended, never moved.

    Quotes update the arrays in place. Adding contracts (a subscription change) reallocates them, so
    readers take the attributes anew on each ``BookUpdated`` rather than keeping array references.
    """

    def __init__(self, underlying: str, *, rate: float = 0.04, div_yield: float = 0.0) -> None:
        self.underlying = underlying
        self.rate = rate
        self.div_yield = div_yield
        self.spot = float("nan")
        self.spot_ts_ns = 0
        self.ts_ns = 0
        self.seq = 0
        self.symbols: list[str] = []
        self._rows: dict[str, int] = {}
        self.counters = np.zeros(4, dtype=np.int64)
        self.generation = 0
        self.has_surface = False
        self.surface_spot = math.nan
        """Spot at the last surface refit (``surface_fwd`` moves with spot / surface_spot)."""
        """Some row has a surface IV: repriced rows without a usable quote then take it (``_surface_fallback``)."""
        """Bumped when rows are removed (row numbers change): a cache of row numbers is void after it."""
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        def f(fill: float = np.nan) -> F64:
            return np.full(n, fill, dtype=np.float64)

        self.strike, self.t_years, self.bid, self.ask, self.last_price = f(), f(), f(), f(), f()
        self.forward, self.mid, self.spot_arr = f(), f(), f(self.spot)
        self.rate_arr, self.div_arr = f(self.rate), f(self.div_yield)
        self.iv, self.delta, self.gamma, self.vega, self.theta, self.rho = f(), f(), f(), f(), f(), f()
        self.surface_iv = f()
        """Each row's IV on the fitted volatility surface (NaN where there is none); written by each refit
        (engine/kernel/vol_surface.py), held between refits."""
        self.surface_fwd = f()
        """The forward of each row's expiry the surface was fitted against (put-call parity at the refit, at
        spot ``surface_spot``); surface values and Greeks scale it with spot."""
        self.expiry = np.zeros(n, dtype="datetime64[D]")
        self.close_ns = np.zeros(n, dtype=np.int64)
        self.is_call = np.zeros(n, dtype=np.bool_)
        self.bid_size = np.zeros(n, dtype=np.int64)
        self.ask_size = np.zeros(n, dtype=np.int64)
        self.quote_ts_ns = np.zeros(n, dtype=np.int64)
        self.iv_ts_ns = np.zeros(n, dtype=np.int64)
        """Event time of each row's last IV solve (Greeks may be newer: see ``spot_ts_ns``)."""
        self.open_interest = np.zeros(n, dtype=np.int64)
        self.volume = np.zeros(n, dtype=np.int64)
        self.status = np.full(n, NOT_COMPUTED, dtype=np.int8)
        self.flags = np.full(n, FLAG_NO_QUOTE, dtype=np.int8)
        self.dirty = np.zeros(n, dtype=np.bool_)
        self._dirty_rows = np.zeros(n, dtype=np.int64)
        self._rebind_outputs()

    def _rebind_outputs(self) -> None:
        self._iv_out = IvGreeks(self.iv, self.status, self.delta, self.gamma, self.vega, self.theta, self.rho)
        self._greeks_out = Greeks(self.delta, self.gamma, self.vega, self.theta, self.rho)

    # --- ChainView ---------------------------------------------------------------------------

    def row_of(self, symbol: str) -> int:
        return self._rows.get(symbol, -1)

    def __len__(self) -> int:
        return len(self.symbols)

    # --- contracts ---------------------------------------------------------------------------

    def add_contracts(self, symbols: Iterable[str], open_interest: Sequence[int] | None = None) -> list[int]:
        """Append rows for new contracts (OCC symbols); return the row of each symbol given."""
        symbols = list(symbols)
        new = [s for s in dict.fromkeys(symbols) if s not in self._rows]
        if new:
            parsed = [parse_occ(s) for s in new]
            old_n, n = len(self.symbols), len(self.symbols) + len(new)
            arrays = {name: getattr(self, name) for name in _ROW_ARRAYS}
            self._alloc(n)
            for name, old in arrays.items():
                getattr(self, name)[:old_n] = old
            self.strike[old_n:] = [p.strike for p in parsed]
            self.expiry[old_n:] = [np.datetime64(p.expiry, "D") for p in parsed]
            self.close_ns[old_n:] = [expiry_close_ns(p.expiry) for p in parsed]
            self.is_call[old_n:] = [p.is_call for p in parsed]
            for s in new:
                self._rows[s] = len(self.symbols)
                self.symbols.append(s)
        rows = [self._rows[s] for s in symbols]
        if open_interest is not None:
            self.open_interest[rows] = open_interest
        return rows

    def drop_rows(self, keep: npt.NDArray[np.bool_]) -> list[str]:
        """Remove the rows ``keep`` is False for (contracts past expiry); the symbols removed, in row order.

        Rows after a removed one move up; ``generation`` changes so that nothing keeps using old row numbers.
        """
        if keep.shape[0] != len(self.symbols):
            raise ValueError(f"keep has {keep.shape[0]} entries for {len(self.symbols)} rows")
        if keep.all():
            return []
        dropped = [s for s, k in zip(self.symbols, keep.tolist(), strict=True) if not k]
        for name in _ROW_ARRAYS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[keep]))
        self._rebind_outputs()
        self.symbols = [s for s, k in zip(self.symbols, keep.tolist(), strict=True) if k]
        self._rows = {sym: i for i, sym in enumerate(self.symbols)}
        self.generation += 1
        return dropped

    # --- updates -----------------------------------------------------------------------------

    def apply(
        self, batch: DataBatch, book_no: int, gid_book: npt.NDArray[np.int32], gid_row: npt.NDArray[np.int32]
    ) -> tuple[int, int]:
        """Apply a frame's messages for this book and reprice the changed rows; (rows changed, repriced)."""
        changed, newest = _apply_kernel(
            batch.kind,
            batch.gid,
            batch.ts_ns,
            batch.bid,
            batch.ask,
            batch.bid_size,
            batch.ask_size,
            batch.price,
            batch.size,
            gid_book,
            gid_row,
            book_no,
            self.bid,
            self.ask,
            self.bid_size,
            self.ask_size,
            self.quote_ts_ns,
            self.last_price,
            self.volume,
            self.flags,
            self.mid,
            self.dirty,
            self._dirty_rows,
            self.counters,
            self.close_ns,
            self.t_years,
            self.spot_arr,
            self.rate_arr,
            self.div_arr,
            self.forward,
            self.iv_ts_ns,
            float(YEAR_NS),
        )
        if newest > self.ts_ns:
            self.ts_ns = newest
        if not changed:
            return 0, 0
        _reprice_rows(self._dirty_rows[:changed], self.mid, self.spot_arr, self.strike, self.t_years, self.rate_arr,
                      self.div_arr, self.is_call, self.has_surface, self.flags, self.surface_iv, self.surface_fwd,
                      self.surface_spot_move(), *self._iv_out)
        self.dirty[:] = False
        return changed, changed

    def reprice_dirty(self) -> None:
        """One fused IV + Greeks call over the rows marked dirty, in place; then clear the marks (a frame's own
        rows go through ``_reprice_rows`` instead, which visits only them)."""
        # The arrays are flat, contiguous and of the kernel's dtypes: straight to the compiled kernel (the public
        # wrapper's broadcasting and checks cost about as much as repricing 100 rows).
        iv_greeks_kernel(self.mid, self.spot_arr, self.strike, self.t_years, self.rate_arr, self.div_arr, self.is_call,
                         self.dirty, True, HALF_TICK, True, *self._iv_out)
        if self.has_surface:
            self.take_surface(np.flatnonzero(self.dirty))
        self.dirty[:] = False

    def take_surface(self, rows: npt.NDArray[np.int64]) -> None:
        """Those of ``rows`` without a usable quote or IV take IV and Greeks at their surface IV (status
        FROM_SURFACE), where the surface has one."""
        if self.has_surface:
            _surface_fallback(rows, self.flags, self.surface_iv,
                              self.surface_fwd, self.surface_spot_move(), self.strike, self.t_years, self.rate_arr,
                              self.is_call, *self._iv_out)

    def surface_spot_move(self) -> float:
        """Spot now over spot at the last refit: the factor the surface's forwards have moved by."""
        m = self.spot / self.surface_spot
        return m if m > 0.0 else 1.0

    def set_spot(self, spot: float, ts_ns: int) -> int:
        """Move the underlying: Greeks-only pass at held IVs over the whole chain; return rows repriced.

        Time to expiry and forwards are refreshed for every row at ``ts_ns``. On the first spot (or
        after a spot gap) rows with quotes but no IV get a full IV pass instead.
        """
        first = math.isnan(self.spot)
        self.spot = spot
        self.spot_ts_ns = ts_ns
        if ts_ns > self.ts_ns:
            self.ts_ns = ts_ns
        n = len(self.symbols)
        if n == 0:
            return 0
        self.spot_arr.fill(spot)
        np.divide(self.close_ns - self.ts_ns, YEAR_NS, out=self.t_years)
        np.multiply(spot, np.exp((self.rate_arr - self.div_arr) * self.t_years), out=self.forward)
        if first:
            np.logical_not(np.isnan(self.mid), out=self.dirty)
            self.iv_ts_ns[self.dirty] = ts_ns
            self.reprice_dirty()
        else:
            greeks_at_vol(
                self.spot_arr,
                self.strike,
                self.t_years,
                self.rate_arr,
                self.div_arr,
                self.iv,
                self.is_call,
                out=self._greeks_out,
            )
        return n

    def mark_stale(self, now_ns: int, max_age_ns: int) -> int:
        """Flag rows whose last quote is older than ``max_age_ns`` (cleared by their next quote)."""
        stale = (now_ns - self.quote_ts_ns) > max_age_ns
        self.flags[stale] |= FLAG_STALE
        return int(stale.sum())

    def load_snapshot(
        self,
        symbol: str,
        bid: float,
        ask: float,
        bid_size: int,
        ask_size: int,
        quote_ts_ns: int,
        last_price: float = float("nan"),
    ) -> bool:
        """Seed one row from a REST snapshot (before streaming); call ``reprice_all`` afterwards."""
        row = self._rows.get(symbol, -1)
        if row < 0 or quote_ts_ns < self.quote_ts_ns[row]:
            return False
        self.bid[row], self.ask[row] = bid, ask
        self.bid_size[row], self.ask_size[row] = bid_size, ask_size
        self.quote_ts_ns[row] = quote_ts_ns
        if not math.isnan(last_price):
            self.last_price[row] = last_price
        self.ts_ns = max(self.ts_ns, quote_ts_ns)
        return True

    def reprice_all(self, now_ns: int | None = None) -> int:
        """Recompute flags, mids, times, forwards and IV + Greeks of every row (after a snapshot load)."""
        for _ in self.reprice_all_steps(len(self.symbols) or 1, now_ns):
            pass
        return len(self.symbols)

    def reprice_all_steps(self, rows_per_step: int, now_ns: int | None = None) -> Iterator[int]:
        """``reprice_all`` with the IV solve in steps of ``rows_per_step`` rows, yielding each step's row count:
        a caller on the event loop yields to it in between (thousands of American IVs are tens of milliseconds).
        Rows added or removed between steps void the spans: the rest is then repriced at once."""
        if now_ns is not None:
            self.ts_ns = max(self.ts_ns, now_ns)
        has_bid, has_ask = self.bid > 0, self.ask > 0
        two_sided = has_bid & has_ask
        self.flags[:] = np.where(
            ~has_bid & ~has_ask,
            FLAG_NO_QUOTE,
            np.where(
                ~two_sided,
                FLAG_ONE_SIDED,
                np.where(self.bid > self.ask, FLAG_CROSSED, np.where(self.bid == self.ask, FLAG_LOCKED, 0)),
            ),
        ).astype(np.int8)
        self.mid[:] = np.where(two_sided, 0.5 * (self.bid + self.ask), np.nan)
        np.divide(self.close_ns - self.ts_ns, YEAR_NS, out=self.t_years)
        np.multiply(self.spot_arr, np.exp((self.rate_arr - self.div_arr) * self.t_years), out=self.forward)
        self.dirty[:] = True
        self.iv_ts_ns[:] = self.ts_ns
        layout = (self.generation, len(self.symbols), id(self.mid))
        n = len(self.symbols)
        for a in range(0, n, max(rows_per_step, 1)):
            if (self.generation, len(self.symbols), id(self.mid)) != layout:
                self.reprice_dirty()
                return
            b = min(n, a + rows_per_step)
            self._reprice_span(a, b)
            yield b - a

    def _reprice_span(self, a: int, b: int) -> None:
        """``reprice_dirty`` over rows ``a:b`` only."""
        o = self._iv_out
        iv_greeks_kernel(self.mid[a:b], self.spot_arr[a:b], self.strike[a:b], self.t_years[a:b], self.rate_arr[a:b],
                         self.div_arr[a:b], self.is_call[a:b], self.dirty[a:b], True, HALF_TICK, True,
                         *IvGreeks(o.sigma[a:b], o.status[a:b], o.delta[a:b], o.gamma[a:b], o.vega[a:b], o.theta[a:b],
                                   o.rho[a:b]))
        if self.has_surface:
            self.take_surface(a + np.flatnonzero(self.dirty[a:b]))
        self.dirty[a:b] = False


_ROW_ARRAYS = (
    "strike",
    "t_years",
    "bid",
    "ask",
    "last_price",
    "forward",
    "mid",
    "spot_arr",
    "rate_arr",
    "div_arr",
    "iv",
    "surface_iv",
    "surface_fwd",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "expiry",
    "close_ns",
    "is_call",
    "bid_size",
    "ask_size",
    "quote_ts_ns",
    "iv_ts_ns",
    "open_interest",
    "volume",
    "status",
    "flags",
    "dirty",
)
