"""The engine's own option book (``engine.kernel.book.Market``) filled from the simulator's quote model at one instant.

The contracts are the ones the engine would stream: the subscription budget's plan (200 quotes over SPY and
QQQ, the DTE ranges of the three default strategies) over the simulator's listed universe. The quotes are
the simulator's at that instant, loaded as REST snapshots and repriced by the book, so IVs and Greeks are
exactly what an actor sees in a sim run: a contract bid at zero has no mid, hence no IV and no Greeks.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from engine.kernel.market import Market
from engine.kernel.subscriptions import BudgetConfig, Contract, SubscriptionBudget
from engine.sim.clock import SimClock
from engine.sim.config import SimConfig
from engine.sim.market import Market as SimMarket

DTE_RANGES = ((0, 0), (14, 60), (30, 45))


def sim_book(at: dt.datetime, cap: int = 200) -> Market:
    """The book an engine streaming the default strategies' contracts holds at New York time ``at``."""
    cfg = SimConfig()
    clock = SimClock(at)
    sim = SimMarket(cfg, clock)
    uni = sim.universe
    now = clock.now_ns
    today = clock.session_date
    universe: dict[str, list[Contract]] = {}
    row_of: dict[str, int] = {}
    spots: dict[str, float] = {}
    for ui, und in enumerate(cfg.underlyings):
        rows = np.flatnonzero((uni.und == ui) & uni.active)
        universe[und.symbol] = [Contract(uni.symbols[r], und.symbol, uni.expiry_dates[r], float(uni.strike[r]),
                                         bool(uni.is_call[r]), 0) for r in rows.tolist()]
        row_of.update({uni.symbols[r]: r for r in rows.tolist()})
        spots[und.symbol] = sim.spot(und.symbol)
    plan = SubscriptionBudget(BudgetConfig(cap=cap, dte_ranges=DTE_RANGES)).plan(universe, spots, today)
    market = Market(rate=cfg.risk_free_rate, div_yields={u.symbol: u.dividend_yield for u in cfg.underlyings})
    for und in cfg.underlyings:
        u = und.symbol
        symbols = sorted(c.symbol for c in universe[u] if c.symbol in plan)
        market.add_contracts(u, symbols)
        market.on_underlying_quote(u, spots[u] - 0.005, spots[u] + 0.005, now)
        q = sim.option_quotes(np.array([row_of[s] for s in symbols], dtype=np.int64))
        book = market.book(u)
        for i, s in enumerate(symbols):
            book.load_snapshot(s, float(q.bid[i]), float(q.ask[i]), int(q.bid_size[i]), int(q.ask_size[i]), now)
        market.snapshot_loaded(u)
    return market
