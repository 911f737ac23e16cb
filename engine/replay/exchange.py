"""The simulator's matching engine, in process, filling against recorded quotes.

``engine.sim.exchange.Exchange`` keeps its whole order life-cycle, account and fill rules (marketable
limit at the quote, mleg against the net natural of its legs, trade updates in Alpaca's order); only
its market is swapped for ``RecordedMarket``: the last recorded bid/ask of every contract and
underlying, indexed by the same symbol ids the engine's book uses, and an event-time clock the replay
driver moves. Partial fills and fill latency are off (a replay must be deterministic and has no
randomness to draw from); ``ReplayBroker`` gives the router the broker interface it uses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from engine.kernel.market_data import KIND_QUOTE, DataBatch
from engine.sim.config import SimConfig
from engine.sim.exchange import Exchange
from engine.sim.universe import contract_id
from greeks.calendar import REGULAR_CLOSE, CalendarRangeError, expiry_close_ns, market_calendar, ny_date, ny_instant_ns
from greeks.occ import parse_occ


@dataclass(slots=True)
class _Und:
    symbol: str


class RecordedUniverse:
    """The contracts of the recording in the shape the exchange reads (``engine.sim.universe.Universe``)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.underlyings: list[_Und] = []
        self.und_index: dict[str, int] = {}
        self.und = np.zeros(0, dtype=np.int32)
        self.strike = np.zeros(0)
        self.is_call = np.zeros(0, dtype=bool)
        self.expiry_dates: list[dt.date] = []
        self.active = np.zeros(0, dtype=bool)
        self._expiry_ns = np.zeros(0, dtype=np.int64)

    def add_underlying(self, symbol: str) -> int:
        if symbol not in self.und_index:
            self.und_index[symbol] = len(self.underlyings)
            self.underlyings.append(_Und(symbol))
        return self.und_index[symbol]

    def add(self, rows: list[int], symbols: list[str], underlying: str) -> None:
        """Contracts at ``rows`` (the engine's option symbol ids) belonging to ``underlying``."""
        ui = self.add_underlying(underlying)
        size = max(rows) + 1 if rows else 0
        if size > self.und.shape[0]:
            grow = size - self.und.shape[0]
            self.und = np.concatenate([self.und, np.zeros(grow, dtype=np.int32)])
            self.strike = np.concatenate([self.strike, np.zeros(grow)])
            self.is_call = np.concatenate([self.is_call, np.zeros(grow, dtype=bool)])
            self.active = np.concatenate([self.active, np.zeros(grow, dtype=bool)])
            self._expiry_ns = np.concatenate([self._expiry_ns, np.zeros(grow, dtype=np.int64)])
            self.ids.extend([""] * grow)
            self.expiry_dates.extend([dt.date(1970, 1, 1)] * grow)
        for row, sym in zip(rows, symbols, strict=True):
            occ = parse_occ(sym)
            self.index[sym] = row
            self.ids[row] = contract_id(sym)
            self.und[row] = ui
            self.strike[row] = occ.strike
            self.is_call[row] = occ.is_call
            self.expiry_dates[row] = occ.expiry
            self.active[row] = True
            self._expiry_ns[row] = expiry_close_ns(occ.expiry)

    def deactivate_expired(self, now_ns: int) -> np.ndarray:
        gone = np.flatnonzero(self.active & (self._expiry_ns <= now_ns))
        self.active[gone] = False
        return gone


class _Quotes:
    __slots__ = ("ask", "bid")

    def __init__(self, bid: np.ndarray, ask: np.ndarray) -> None:
        self.bid, self.ask = bid, ask


class _Clock:
    """The exchange's view of the session: event time, today's date and close."""

    def __init__(self) -> None:
        self.now_ns = 0
        self.close_ns = 0
        self._day: dt.date | None = None

    def move(self, ts_ns: int) -> None:
        if ts_ns <= self.now_ns:
            return
        self.now_ns = ts_ns
        day = ny_date(ts_ns)
        if day != self._day:
            self._day = day
            try:
                self.close_ns = market_calendar().close_ns_at(ts_ns)
            except CalendarRangeError:  # a day outside the calendar: orders live until 16:00 ET
                self.close_ns = ny_instant_ns(day, REGULAR_CLOSE)

    def today(self) -> dt.date:
        assert self._day is not None
        return self._day


class RecordedMarket:
    """Last recorded quotes by engine symbol id, duck-typed as the simulator's ``Market`` for ``Exchange``."""

    def __init__(self) -> None:
        self.universe = RecordedUniverse()
        self.clock = _Clock()
        self.opt_bid = np.zeros(0)
        self.opt_ask = np.zeros(0)
        self.stock: dict[str, tuple[float, float]] = {}
        self.tick_class = np.zeros(0, dtype=np.intp)
        """Tick class code per underlying (``engine.sim.ticks``): the recording does not say, so "penny"."""

    @property
    def now_ns(self) -> int:
        return self.clock.now_ns

    def add_contracts(self, gids: list[int], symbols: list[str], underlying: str) -> None:
        self.universe.add(gids, symbols, underlying)
        n = self.universe.und.shape[0]
        if n > self.opt_bid.shape[0]:
            grow = n - self.opt_bid.shape[0]
            self.opt_bid = np.concatenate([self.opt_bid, np.zeros(grow)])
            self.opt_ask = np.concatenate([self.opt_ask, np.zeros(grow)])
        self._sync_penny()

    def add_underlying(self, symbol: str) -> None:
        self.universe.add_underlying(symbol)
        self._sync_penny()

    def _sync_penny(self) -> None:
        if self.tick_class.shape[0] < len(self.universe.underlyings):
            self.tick_class = np.zeros(len(self.universe.underlyings), dtype=np.intp)

    def on_option_batch(self, batch: DataBatch) -> None:
        """Take the quotes of a decoded option frame (rows of unknown symbols are ignored)."""
        m = (batch.kind == KIND_QUOTE) & (batch.gid >= 0) & (batch.gid < self.opt_bid.shape[0])
        if not m.all():
            gid, bid, ask = batch.gid[m], batch.bid[m], batch.ask[m]
        else:
            gid, bid, ask = batch.gid, batch.bid, batch.ask
        self.opt_bid[gid] = bid  # later messages of one symbol win, as on the stream
        self.opt_ask[gid] = ask

    def on_stock_quote(self, symbol: str, bid: float, ask: float) -> None:
        self.stock[symbol] = (bid, ask)

    # --- what Exchange reads ---------------------------------------------------------------------

    def option_quotes(self, rows: np.ndarray) -> _Quotes:
        bid, ask = self.opt_bid[rows], self.opt_ask[rows]
        return _Quotes(np.where(np.isfinite(bid), bid, 0.0), np.where(np.isfinite(ask), ask, 0.0))

    def stock_quote(self, ui: int) -> tuple[float, float, int, int, str, str]:
        bid, ask = self.stock.get(self.universe.underlyings[ui].symbol, (0.0, 0.0))
        return bid, ask, 1, 1, "V", "V"

    def spot(self, symbol: str) -> float:
        bid, ask = self.stock.get(symbol, (0.0, 0.0))
        return 0.5 * (bid + ask) if bid > 0 and ask > 0 else float(max(bid, ask))


def replay_exchange(market: RecordedMarket, *, initial_cash: float = 100_000.0, options_level: int = 3,
                    seed: int = 1) -> Exchange:
    """The simulator's Exchange on recorded quotes: no partial fills, no fill latency."""
    cfg = SimConfig(seed=seed, initial_cash=initial_cash, options_approved_level=options_level,
                    partial_fill_probability=0.0, fill_latency_ms=0)
    return Exchange(cfg, market)  # type: ignore[arg-type]  # RecordedMarket is duck-typed as sim.Market
