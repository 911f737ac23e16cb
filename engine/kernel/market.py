"""All option books by underlying, plus the underlyings' quotes: the kernel's ``domain.views.MarketView``.

A frame of option quotes goes to the books it touches (``Market.apply``), a stock quote reprices its chain
Greeks-only (``on_underlying_quote``); each touched book publishes one ``BookUpdated`` (engine/kernel/book.py
has the per-frame path).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Literal

import numpy as np

from domain.views import VolStats
from engine.kernel.book import OptionBook, touched_books
from engine.kernel.events import BookUpdated, StockQuote
from engine.kernel.market_data import KIND_QUOTE, KIND_TRADE, DataBatch
from engine.kernel.symbols import SymbolIndex

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
        self._touched = np.zeros(0, dtype=np.bool_)
        """Scratch: the books one frame touches (``apply``)."""
        self.gid_row = np.zeros(0, dtype=np.int32)
        self.vol: dict[str, VolStats] = {}
        """Per underlying, the latest ``VolStats`` of its surface (written by the surface refits)."""

    # --- MarketView --------------------------------------------------------------------------

    def chain(self, underlying: str) -> OptionBook | None:
        return self.books.get(underlying)

    def spot(self, underlying: str) -> float:
        book = self.books.get(underlying)
        return float("nan") if book is None else book.spot

    def spot_ts_ns(self, underlying: str) -> int:
        book = self.books.get(underlying)
        return 0 if book is None else book.spot_ts_ns

    def vol_stats(self, underlying: str) -> VolStats | None:
        return self.vol.get(underlying)

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
        books = self._book_list
        if len(books) == 1:
            touched: Iterable[int] = (0,)
        else:
            mask = self._touched
            if mask.shape[0] < len(books):
                self._touched = mask = np.zeros(len(books), dtype=np.bool_)
            mask[:] = False
            touched_books(batch.gid, self.gid_book, mask)
            touched = [b for b in range(len(books)) if mask[b]]
        total = 0
        for book_no in touched:
            book = books[book_no]
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
        for _ in self.snapshot_loaded_steps(underlying, 0, ts_init_ns):
            pass

    def snapshot_loaded_steps(self, underlying: str, rows_per_step: int, ts_init_ns: int = 0) -> Iterator[int]:
        """``snapshot_loaded`` in steps of ``rows_per_step`` repriced rows (0: one step), announced after the last."""
        book = self.books[underlying]
        yield from book.reprice_all_steps(rows_per_step or len(book.symbols) or 1)
        n = len(book.symbols)
        self._emit(book, n, n, "snapshot", ts_init_ns)


__all__ = ["KIND_QUOTE", "KIND_TRADE", "Market", "OptionBook"]
