"""Regression tests for bugs the fault matrix found (each failed before its fix)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from domain.orders import TradingState
from risk.breakers import Breakers
from risk.limits import BreakerLimits

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

    from engine.kernel.venue_types import RateLimited, Rejected
    from engine.service.restart import startup_call

    calls: list[int] = []

    async def account() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited("account: rate limited", retry_after=0.01)
        return "account"

    assert await startup_call(account) == "account" and len(calls) == 3

    async def rejected() -> str:
        raise Rejected("account: forbidden", status=403)

    with pytest.raises(Rejected):
        await startup_call(rejected)


async def test_restart_reconciliation_reads_every_page_of_fill_activities() -> None:
    """Found by the kill -9 loop: reconciliation read one page (100) of FILL activities, so after the 100th
    fill of an account the fills made while the engine was down were never imported (journal short 4 fills)."""
    from engine.alpaca.broker import AlpacaBroker
    from engine.alpaca.execution import AlpacaExecution
    from engine.sim.config import SimConfig
    from engine.sim.server import Simulator

    sim = Simulator(SimConfig(speed=0.0))
    urls = await sim.start()
    broker = AlpacaExecution(AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret))
    try:
        for i in range(250):
            sim.exchange.account.record("FILL", sim.now_ns + i * 1000, symbol="SPY", qty="1", side="buy",
                                        price="600", order_id=f"order-{i}", cum_qty="1", leaves_qty="0")
        activities = await broker.executions()  # what the engine's restart reconciliation reads
        assert [a.order_id for a in activities] == [f"order-{i}" for i in range(250)]
    finally:
        await broker.close()
        await sim.stop()


def test_underlying_moves_do_not_clear_a_stale_options_feed() -> None:
    """A muted option socket tripped the gate, and the next stock quote cleared it again: a spot move reprices
    the chain at held IVs and publishes a BookUpdated, which the core took for fresh option data. Found by
    ``options_socket_mute`` under load: the gate flapped HALTED/ACTIVE and was seen HALTED 1.7 s late."""
    from domain.views import AccountView
    from engine.alpaca.broker import AlpacaBroker
    from engine.alpaca.execution import AlpacaExecution
    from engine.kernel.clock import EventClock
    from engine.kernel.core import TradingCore
    from engine.kernel.events import BookUpdated, FeedStale
    from engine.kernel.market import Market
    from engine.kernel.orders import OrderStateMachine
    from engine.kernel.portfolio import Portfolio
    from engine.kernel.router import Router
    from risk.gate import RiskGate
    from risk.limits import RiskLimits

    t0 = 1_795_000_000 * NS
    clock = EventClock(t0)
    market = Market()
    market.book("SPY")
    broker = AlpacaExecution(AlpacaBroker("http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s"))  # never called
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


async def test_an_order_adopted_at_restart_that_filled_since_the_snapshot_is_booked(tmp_path: Path) -> None:
    """Found by the kill -9 loop: restart reconciliation adopted an order the open-orders snapshot showed
    working, then read it once more; when it had filled in between, that read counted the fills in the order
    state machine but the events were dropped, and no later read books a fill already counted (the journal
    and the engine's positions missed a filled 0DTE condor for good)."""
    import os

    from domain.orders import AssetClass, IntentAction, Leg, OrderIntent, OrderStatus, OrderUpdated, PricePolicy, Side
    from engine.alpaca.broker import AlpacaBroker
    from engine.alpaca.feeds.trading.models import Order
    from engine.service.app import Engine
    from engine.service.config import parse_config_text
    from engine.service.journal import Journal
    from engine.sim.config import SimConfig
    from engine.sim.server import Simulator

    sim = Simulator(SimConfig(speed=0.0, partial_fill_probability=0.0, rate_limit_per_min=0))
    urls = await sim.start()
    stream_base = urls.options_stream_url.rsplit("/v1beta1/", 1)[0]
    cfg = parse_config_text(f"""
[engine]
mode = "paper"
state_dir = "{tmp_path / 'state'}"
metrics_port = 0
[alpaca]
paper_url = "{urls.trading_url}"
data_url = "{urls.data_url}"
stream_url = "{stream_base}"
trading_stream_url = "{urls.trading_stream_url}"
[strategies.gamma_scalper]
enabled = false
[strategies.iron_condor]
enabled = false
[strategies.zero_dte]
enabled = false
""")
    # what the previous run left: an order working at the broker, journaled as "new"
    cid = "oe-s1-open-1"
    placed = sim.exchange.submit({"symbol": "SPY", "qty": "10", "side": "buy", "type": "limit",
                                  "limit_price": "1.00", "time_in_force": "day", "client_order_id": cid})
    journal = Journal.open(tmp_path / "state")
    journal.start()
    intent = OrderIntent("s1-open-1", "manual", "s1", "SPY", IntentAction.OPEN,
                         (Leg("SPY", Side.BUY, 1, None, AssetClass.EQUITY),), 10, PricePolicy(kind="limit"))
    await journal.record_intent(intent, cid)
    journal.record_order(OrderUpdated(placed["id"], cid, OrderStatus.NEW, 0.0, 10.0, 1, 1, "manual", "s1",
                                      "s1-open-1"))
    await journal.aclose()

    engine = Engine(cfg)
    keys = {"APCA_API_KEY_ID": urls.key, "APCA_API_SECRET_KEY": urls.secret}
    old_env = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        # the fill lands between the open-orders snapshot and the adoption's own read of the order
        real_get_order = AlpacaBroker.get_order

        async def get_order_after_a_fill(self: AlpacaBroker, order_id: str, *, nested: bool = True) -> Order:
            order = sim.exchange.orders[order_id]
            if order.status == "new":
                order.limit_price = 10_000.0
                sim.exchange._try_fill(order)
            return await real_get_order(self, order_id, nested=nested)

        AlpacaBroker.get_order = get_order_after_a_fill  # type: ignore[method-assign]
        try:
            await engine.start()
        finally:
            AlpacaBroker.get_order = real_get_order  # type: ignore[method-assign]
        await asyncio.sleep(0.2)  # the bus delivers the adoption's events
        assert sim.inspect()["positions"].get("SPY") == 10.0
        assert engine.portfolio.position("SPY") == 10.0
        await engine.shutdown()
        fills = Journal.open(tmp_path / "state").read_state().fills
        assert [(f.fill.symbol, f.fill.signed_qty, f.fill.structure_id) for f in fills] == [("SPY", 10.0, "s1")]
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        await sim.stop()
