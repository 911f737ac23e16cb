"""Regression tests for bugs the fault matrix found (each failed before its fix)."""

from __future__ import annotations

from risk.breakers import Breakers
from risk.limits import BreakerLimits
from risk.model import TradingState

NS = 1_000_000_000


def state(b: Breakers) -> TradingState:
    return b.state  # a call: mypy must not narrow the property across the steps


def test_stale_stock_feed_clears_once_stock_data_returns() -> None:
    """A muted stock socket tripped the stale-data breaker for good: only options data refreshed it.

    Found by ``stocks_socket_mute``: after unmuting, the engine stayed HALTED and never traded again.
    """
    b = Breakers(BreakerLimits(stale_data_after_ms=2000))
    b.on_feed_data("options", 100 * NS)
    b.on_feed_stale("stocks", 101 * NS)
    assert state(b) is TradingState.HALTED
    b.on_feed_data("options", 102 * NS)
    assert state(b) is TradingState.HALTED  # options data alone says nothing about stocks
    change = b.on_feed_recovered("stocks", 102 * NS)
    assert change is not None and state(b) is TradingState.ACTIVE


def test_stock_data_without_a_stale_declaration_changes_nothing() -> None:
    b = Breakers(BreakerLimits(stale_data_after_ms=2000))
    b.on_feed_data("options", 100 * NS)
    assert b.on_feed_recovered("stocks", 500 * NS) is None
    assert state(b) is TradingState.ACTIVE


def test_a_stale_options_feed_still_needs_fresh_options_data() -> None:
    b = Breakers(BreakerLimits(stale_data_after_ms=2000))
    b.on_feed_data("options", 100 * NS)
    b.on_feed_stale("options", 101 * NS)
    assert b.on_feed_recovered("options", 102 * NS) is None  # options are watched by event time, not declared
    assert state(b) is TradingState.HALTED
    b.on_feed_data("options", 102 * NS)
    assert state(b) is TradingState.ACTIVE


async def test_engine_start_waits_out_a_rate_limit_instead_of_exiting() -> None:
    """Found by the kill -9 loop: restarts share the broker's 200/min budget with the run before them; a 429
    on GET /v2/account at start-up made ``options-engine run`` exit 1 (and a service restart loop worse)."""
    import pytest

    from engine.app import Engine
    from engine.broker import BrokerRejected, RateLimited
    from engine.config import parse_config_text

    engine = Engine(parse_config_text('[engine]\nmode = "sim"\n'))
    calls: list[int] = []

    async def account() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited("GET /v2/account: rate limited", retry_after_s=0.01, limit=None)
        return "account"

    assert await engine._startup_call(account) == "account" and len(calls) == 3

    async def rejected() -> str:
        raise BrokerRejected("GET /v2/account: forbidden", status=403, body={})

    with pytest.raises(BrokerRejected):
        await engine._startup_call(rejected)


async def test_restart_reconciliation_reads_every_page_of_fill_activities() -> None:
    """Found by the kill -9 loop: reconciliation read one page (100) of FILL activities, so after the 100th
    fill of an account the fills made while the engine was down were never imported (journal short 4 fills)."""
    from engine.app import Engine
    from engine.broker import AlpacaBroker
    from engine.config import parse_config_text
    from engine.sim.config import SimConfig
    from engine.sim.server import Simulator

    sim = Simulator(SimConfig(speed=0.0))
    urls = await sim.start()
    broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret)
    try:
        for i in range(250):
            sim.exchange.account.record("FILL", sim.now_ns + i * 1000, symbol="SPY", qty="1", side="buy",
                                        price="600", order_id=f"order-{i}", cum_qty="1", leaves_qty="0")
        engine = Engine(parse_config_text('[engine]\nmode = "sim"\n'))
        engine.broker = broker
        activities = await engine._fill_activities()
        assert [a["order_id"] for a in activities] == [f"order-{i}" for i in range(250)]
    finally:
        await broker.close()
        await sim.stop()


def test_underlying_moves_do_not_clear_a_stale_options_feed() -> None:
    """A muted option socket tripped the gate, and the next stock quote cleared it again: a spot move reprices
    the chain at held IVs and publishes a BookUpdated, which the core took for fresh option data. Found by
    ``options_socket_mute`` under load: the gate flapped HALTED/ACTIVE and was seen HALTED 1.7 s late."""
    from engine.book import Market
    from engine.broker import AlpacaBroker
    from engine.clock import EventClock
    from engine.core import TradingCore
    from engine.events import BookUpdated, FeedStale
    from engine.orders import OrderStateMachine
    from engine.portfolio import Portfolio
    from engine.router import Router
    from risk.gate import RiskGate
    from risk.limits import RiskLimits
    from risk.views import AccountView

    t0 = 1_795_000_000 * NS
    clock = EventClock(t0)
    market = Market()
    market.book("SPY")
    broker = AlpacaBroker("http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s")  # never called
    router = Router(broker, OrderStateMachine(), market, clock, lambda e: None)
    core = TradingCore(clock=clock, market=market, portfolio=Portfolio(), router=router, gate=RiskGate(RiskLimits()),
                       breakers=Breakers(BreakerLimits(stale_data_after_ms=1000)), actors=(),
                       account=AccountView(1e5, 1e5, 1e5, 1e5))

    def book(reason: str, ts: int) -> BookUpdated:
        return BookUpdated("SPY", 1, 0, 0, 600.0, reason, ts, ts)  # type: ignore[arg-type]

    core.on_book(book("quotes", t0))
    clock.advance(t0 + 2 * NS)
    core.on_feed_stale(FeedStale("options", 2.0, t0 + 2 * NS, 0))
    assert state(core.breakers) is TradingState.HALTED
    core.on_book(book("spot", t0 + 2 * NS))  # a stock quote moved spot: no option quote arrived
    assert state(core.breakers) is TradingState.HALTED
    core.on_book(book("quotes", t0 + 3 * NS))  # option data again
    assert state(core.breakers) is TradingState.ACTIVE
