"""The option book: one struct of arrays per underlying, repriced by one kernel call per frame.

``OptionBook`` satisfies ``domain.views.ChainView`` (one row per contract) and ``Market`` satisfies
``MarketView``. The hot path (ARCHITECTURE.md section 3):

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

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numba import njit

from domain.views import FLAG_CROSSED, FLAG_LOCKED, FLAG_NO_QUOTE, FLAG_ONE_SIDED, FLAG_STALE
from engine.alpaca.feeds.marketdata import DataBatch
from engine.alpaca.feeds.scan import KIND_QUOTE, KIND_TRADE
from engine.kernel.events import BookUpdated, StockQuote
from engine.kernel.symbols import SymbolIndex
from greeks import Greeks, IvGreeks, greeks_at_vol, implied_vol_and_greeks
from greeks.calendar import YEAR_NS, expiry_close_ns
from greeks.occ import parse_occ
from greeks.status import NOT_COMPUTED

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Counters kept by the apply kernel (index into OptionBook.counters).
C_QUOTES, C_TRADES, C_OUT_OF_ORDER, C_DUPLICATES = 0, 1, 2, 3
HALF_TICK = 0.005
"""Minimum time value for an IV (half the option tick): below it the quote carries no vol information."""

# The book's arrays are already flat, contiguous and of the kernel's dtypes, so the per-frame call goes
# straight to greeks' compiled kernel; the public wrapper's broadcasting and checks cost about as much
# as repricing 100 rows. If greeks' internals change shape, fall back to the public entry point.
_fused_kernel: Any
try:
    from greeks.black import _iv_greeks_kernel as _fused_kernel
except ImportError:  # pragma: no cover - depends on greeks' internals
    _fused_kernel = None


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
        """Bumped when rows are removed (row numbers change): a cache of row numbers is void after it."""
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        def f(fill: float = np.nan) -> F64:
            return np.full(n, fill, dtype=np.float64)

        self.strike, self.t_years, self.bid, self.ask, self.last_price = f(), f(), f(), f(), f()
        self.forward, self.mid, self.spot_arr = f(), f(), f(self.spot)
        self.rate_arr, self.div_arr = f(self.rate), f(self.div_yield)
        self.iv, self.delta, self.gamma, self.vega, self.theta, self.rho = f(), f(), f(), f(), f(), f()
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
        self.reprice_dirty()
        return changed, changed

    def reprice_dirty(self) -> None:
        """One fused IV + Greeks call over the rows marked dirty, in place; then clear the marks."""
        global _fused_kernel
        if _fused_kernel is not None:
            try:
                _fused_kernel(
                    self.mid,
                    self.spot_arr,
                    self.strike,
                    self.t_years,
                    self.rate_arr,
                    self.div_arr,
                    self.is_call,
                    self.dirty,
                    True,
                    HALF_TICK,
                    True,
                    *self._iv_out,
                )
                self.dirty[:] = False
                return
            except TypeError:
                _fused_kernel = None  # signature changed: use the public wrapper from now on
        implied_vol_and_greeks(
            self.mid,
            self.spot_arr,
            self.strike,
            self.t_years,
            self.rate_arr,
            self.div_arr,
            self.is_call,
            out=self._iv_out,
            mask=self.dirty,
            min_time_value=HALF_TICK,
        )
        self.dirty[:] = False

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
        self.reprice_dirty()
        return len(self.symbols)


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

UpdateReason = Literal["quotes", "trades", "spot", "snapshot", "clock"]


class Market:
    """All option books by underlying plus underlying quotes (``domain.views.MarketView``).

    Owns the option ``SymbolIndex`` the options protocol decodes against, and the stock index for
    underlyings; maps each contract id to (book, row).
    """

    def __init__(
        self,
        *,
        publish: Callable[[BookUpdated | StockQuote], None] | None = None,
        now_ns: Callable[[], int] | None = None,
        rate: float = 0.04,
        div_yields: dict[str, float] | None = None,
    ) -> None:
        self.option_index = SymbolIndex()
        self.stock_index = SymbolIndex(64)
        self._publish = publish
        self._now_ns = now_ns
        self.rate = rate
        self.div_yields = div_yields or {}
        self.books: dict[str, OptionBook] = {}
        self._book_list: list[OptionBook] = []
        self._book_no: dict[str, int] = {}
        self.gid_book = np.zeros(0, dtype=np.int32)
        self.gid_row = np.zeros(0, dtype=np.int32)
        self._touched = np.zeros(0, dtype=np.int64)

    # --- MarketView --------------------------------------------------------------------------

    def chain(self, underlying: str) -> OptionBook | None:
        return self.books.get(underlying)

    def spot(self, underlying: str) -> float:
        book = self.books.get(underlying)
        return float("nan") if book is None else book.spot

    def spot_ts_ns(self, underlying: str) -> int:
        book = self.books.get(underlying)
        return 0 if book is None else book.spot_ts_ns

    # --- set-up ------------------------------------------------------------------------------

    def book(self, underlying: str) -> OptionBook:
        """The book of ``underlying``, created on first use (and its stock symbol indexed)."""
        book = self.books.get(underlying)
        if book is None:
            book = OptionBook(underlying, rate=self.rate, div_yield=self.div_yields.get(underlying, 0.0))
            self.books[underlying] = book
            self._book_no[underlying] = len(self._book_list)
            self._book_list.append(book)
            self.stock_index.add(underlying)
        return book

    def add_contracts(
        self, underlying: str, symbols: Iterable[str], open_interest: Sequence[int] | None = None
    ) -> None:
        """Add contracts to the book of ``underlying`` and make them decodable on the option stream."""
        symbols = list(symbols)
        book = self.book(underlying)
        rows = book.add_contracts(symbols, open_interest)
        gids = [self.option_index.add(s) for s in symbols]
        size = len(self.option_index)
        if self.gid_book.shape[0] < size:
            grow = size - self.gid_book.shape[0]
            self.gid_book = np.concatenate([self.gid_book, np.full(grow, -1, dtype=np.int32)])
            self.gid_row = np.concatenate([self.gid_row, np.full(grow, -1, dtype=np.int32)])
        self.gid_book[gids] = self._book_no[underlying]
        self.gid_row[gids] = rows

    def evict_expired(self, today: dt.date, keep: AbstractSet[str] = frozenset()) -> int:
        """Drop contracts that expired before ``today`` (except those in ``keep``: held, or with a working
        order); their stream ids stop mapping to a row and are reused for new contracts. A service running
        for weeks would otherwise carry, and reprice on every spot move, every contract it ever streamed.
        Returns the number dropped."""
        cutoff = np.datetime64(today, "D")
        total = 0
        for book_no, book in enumerate(self._book_list):
            alive = book.expiry >= cutoff
            for sym in keep:
                r = book.row_of(sym)
                if r >= 0:
                    alive[r] = True
            dropped = book.drop_rows(alive)
            if not dropped:
                continue
            total += len(dropped)
            for sym in dropped:
                gid = self.option_index.id_of(sym)
                if gid >= 0:
                    self.gid_book[gid] = -1
                    self.gid_row[gid] = -1
            self.option_index.forget(dropped)  # their ids go to tomorrow's contracts
            for row, sym in enumerate(book.symbols):
                gid = self.option_index.id_of(sym)
                if gid >= 0 and self.gid_book[gid] == book_no:
                    self.gid_row[gid] = row
        return total

    # --- hot path ----------------------------------------------------------------------------

    def apply(self, batch: DataBatch, ts_init_ns: int = 0) -> int:
        """Apply one option-stream frame to every book it touches; publish one BookUpdated per book."""
        if batch.n == 0 or not self._book_list:
            return 0
        if len(self._book_list) == 1:
            touched: Iterable[int] = (0,)
        else:
            valid = batch.gid[(batch.gid >= 0) & (batch.gid < self.gid_book.shape[0])]
            touched = np.unique(self.gid_book[valid]).tolist()
        total = 0
        for book_no in touched:
            if book_no < 0:
                continue
            book = self._book_list[book_no]
            changed, repriced = book.apply(batch, book_no, self.gid_book, self.gid_row)
            total += changed
            if changed:
                self._emit(book, changed, repriced, "quotes", ts_init_ns)
        return total

    def on_underlying_quote(self, symbol: str, bid: float, ask: float, ts_ns: int, ts_init_ns: int = 0) -> int:
        """An underlying quote: move spot to its mid and reprice that chain's Greeks at held IVs."""
        book = self.books.get(symbol)
        if book is None or not (bid > 0 and ask > 0 and ask >= bid) or ts_ns < book.spot_ts_ns:
            return 0
        mid = 0.5 * (bid + ask)
        if mid == book.spot:
            book.spot_ts_ns = ts_ns
            return 0
        repriced = book.set_spot(mid, ts_ns)
        self._emit(book, 0, repriced, "spot", ts_init_ns)
        return repriced

    def apply_stock_batch(self, batch: DataBatch, ts_init_ns: int = 0) -> int:
        """Apply a stock-stream frame: the newest quote per underlying moves its spot (conflated)."""
        seen: set[int] = set()
        repriced = 0
        for i in range(batch.n - 1, -1, -1):
            g = int(batch.gid[i])
            if batch.kind[i] != KIND_QUOTE or g < 0 or g in seen:
                continue
            seen.add(g)
            symbol, bid, ask, ts = (
                self.stock_index.symbol(g),
                float(batch.bid[i]),
                float(batch.ask[i]),
                int(batch.ts_ns[i]),
            )
            if self._publish is not None:
                self._publish(
                    StockQuote(
                        symbol,
                        bid,
                        ask,
                        int(batch.bid_size[i]),
                        int(batch.ask_size[i]),
                        ts,
                        ts_init_ns or (self._now_ns() if self._now_ns else ts),
                    )
                )
            repriced += self.on_underlying_quote(symbol, bid, ask, ts, ts_init_ns)
        return repriced

    def _emit(self, book: OptionBook, changed: int, repriced: int, reason: UpdateReason, ts_init_ns: int) -> None:
        book.seq += 1
        if self._publish is not None:
            self._publish(
                BookUpdated(
                    underlying=book.underlying,
                    seq=book.seq,
                    rows_changed=changed,
                    rows_repriced=repriced,
                    spot=book.spot,
                    reason=reason,
                    ts_event_ns=book.ts_ns,
                    ts_init_ns=ts_init_ns or (self._now_ns() if self._now_ns else book.ts_ns),
                )
            )

    def mark_stale(self, now_ns: int, max_age_ns: int) -> int:
        """Flag rows of every book without a quote for ``max_age_ns`` (run it from a clock timer)."""
        return sum(book.mark_stale(now_ns, max_age_ns) for book in self._book_list)

    def snapshot_loaded(self, underlying: str, ts_init_ns: int = 0) -> None:
        """Reprice a whole book after ``load_snapshot`` calls and announce it."""
        book = self.books[underlying]
        n = book.reprice_all()
        self._emit(book, n, n, "snapshot", ts_init_ns)


__all__ = ["KIND_QUOTE", "KIND_TRADE", "Market", "OptionBook"]
