"""Expiry, exercise and assignment read from the simulator's account activities over REST.

The simulator settles expiring contracts at the close (``OPEXC``/``OPASN``/``OPEXP``); the poller turns
each activity into fills on our portfolio (option flat, shares at the strike) and, under the ``unwind``
policy, a stock order that gives the shares back. A second poll books nothing again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from engine.broker import AlpacaBroker
from engine.portfolio import Portfolio
from engine.settlements import SettlementPoller
from engine.sim.config import SimConfig
from engine.sim.server import Simulator
from greeks.occ import format_occ
from risk.model import AssetClass, IntentAction, OrderFilled, OrderIntent, Side

pytestmark = pytest.mark.timeout(60)

EXPIRY = dt.date(2026, 12, 4)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(SimConfig(seed=4, speed=0.0, start=dt.datetime(2026, 12, 4, 15, 55), partial_fill_probability=0.0,
                            rate_limit_per_min=0))
    await s.start()
    yield s
    await s.stop()


def _book(portfolio: Portfolio, symbol: str, side: Side, qty: int, structure_id: str) -> None:
    portfolio.on_fill(OrderFilled(f"x-{symbol}", f"o-{symbol}", f"c-{symbol}", symbol, side, qty, 1.0, 1, 1,
                                  AssetClass.OPTION, "condor", structure_id))


async def test_assignment_exercise_and_expiry_become_fills_and_an_unwind(sim: Simulator) -> None:
    ex = sim.exchange
    short_call, long_put, worthless = (format_occ("SPY", EXPIRY, c, k) for c, k in ((True, 590), (False, 610),
                                                                                     (True, 620)))
    portfolio = Portfolio()
    # the 620 calls cover the short 590 calls (a call spread: the account may not sell uncovered)
    for symbol, side, qty in ((worthless, Side.BUY, 2), (short_call, Side.SELL, 2), (long_put, Side.BUY, 1)):
        ex.submit({"symbol": symbol, "qty": qty, "side": side.value, "type": "market", "time_in_force": "day"})
        _book(portfolio, symbol, side, qty, "s1")
    spot = sim.market.spot("SPY")
    assert 590 < spot < 610, spot  # the test's strikes assume SPY near 600 at the fixed seed

    urls = sim.urls
    assert urls is not None
    broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, timeout_s=5.0)
    fills: list[OrderFilled] = []
    unwinds: list[OrderIntent] = []

    def on_fill(fill: OrderFilled) -> None:
        fills.append(fill)
        portfolio.on_fill(fill)

    poller = SettlementPoller(broker, portfolio, on_fill, unwinds.append, now_ns=lambda: sim.now_ns)
    try:
        assert await poller.poll() == 0  # nothing settles before the close
        sim.advance(6 * 60)
        assert await poller.poll() == 3
        assert await poller.poll() == 0  # a repeated poll books nothing twice
    finally:
        await broker.close()

    ours = {k: v for k, v in portfolio.positions().items() if abs(v) > 1e-9}
    theirs = {k: v for k, v in sim.inspect()["positions"].items() if abs(v) > 1e-9}
    # 2 short 590 calls assigned: -200 shares; 1 long 610 put exercised: -100 shares; the 620 calls expire
    assert ours == theirs == {"SPY": -300.0}
    stock = sorted((f.qty, f.price, f.side) for f in fills if f.asset_class is AssetClass.EQUITY)
    assert stock == [(100.0, 610.0, Side.SELL), (200.0, 590.0, Side.SELL)]
    assert all(f.structure_id == "s1" and f.strategy_id == "condor" for f in fills)
    assert len({f.execution_id for f in fills}) == len(fills) == 5

    assert sorted((i.qty, i.legs[0].symbol, i.legs[0].side, i.action, i.price_policy.kind) for i in unwinds) == [
        (100, "SPY", Side.BUY, IntentAction.CLOSE, "market"), (200, "SPY", Side.BUY, IntentAction.CLOSE, "market")
    ]
    assert len({i.intent_id for i in unwinds}) == 2


async def test_hold_policy_books_the_shares_without_an_order(sim: Simulator) -> None:
    ex = sim.exchange
    short_put, cover = format_occ("SPY", EXPIRY, False, 610), format_occ("SPY", EXPIRY, False, 580)
    portfolio = Portfolio()
    for symbol, side in ((cover, Side.BUY), (short_put, Side.SELL)):
        ex.submit({"symbol": symbol, "qty": 1, "side": side.value, "type": "market", "time_in_force": "day"})
        _book(portfolio, symbol, side, 1, "s2")
    urls = sim.urls
    assert urls is not None
    broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, timeout_s=5.0)
    unwinds: list[OrderIntent] = []
    poller = SettlementPoller(broker, portfolio, portfolio.on_fill, unwinds.append, policy="hold")
    try:
        sim.advance(6 * 60)
        assert await poller.poll() == 2  # the 610 put assigned, the 580 put expired
    finally:
        await broker.close()
    assert unwinds == []
    assert {k: v for k, v in portfolio.positions().items() if abs(v) > 1e-9} == {"SPY": 100.0}
