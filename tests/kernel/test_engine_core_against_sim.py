"""The engine core against the real simulator over loopback: feeds, budget, book, orders.

One simulator per test (seeded); our clients run on the same event loop. Covered: priming and
streaming within the subscription cap, the book equal to a direct greeks/ computation on its own
inputs, reconnects after a drop, a mute socket and a 406, and exact positions from trade updates
that arrive duplicated and out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.alpaca.broker import AlpacaBroker, BrokerRejected, LegRequest, OrderRequest, OutcomeUnknown, RateLimited
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.backoff import BackoffConfig
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.datastream import MarketDataClient
from engine.alpaca.feeds.options.client import option_client
from engine.alpaca.feeds.stocks.client import stock_client
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel.book import C_QUOTES
from engine.kernel.events import FeedConnected, FeedDisconnected, FeedError, FeedStale, GapDetected
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine
from engine.kernel.subscriptions import BudgetConfig, SubscriptionBudget, SubscriptionManager
from engine.sim.config import SimConfig, UnderlyingConfig
from engine.sim.server import Simulator
from greeks import greeks_at_vol, implied_vol
from greeks.status import OK

CAP = 40
SIM = SimConfig(
    seed=5,
    speed=5.0,
    publish_interval_ms=20,
    option_quote_rate=5.0,
    option_trade_rate=0.2,
    stock_quote_rate=20.0,
    rate_limit_per_min=0,
    partial_fill_probability=0.3,
    option_symbol_cap=CAP,
    underlyings=(
        UnderlyingConfig(
            symbol="SPY",
            spot=600.0,
            atm_vol=0.16,
            daily_expiry_sessions=5,
            weekly_expiry_weeks=2,
            monthly_expiry_months=1,
        ),
    ),
)
FEED = FeedConfig(
    mute_timeout_s=0.6,
    handshake_timeout_s=3.0,
    backoff=BackoffConfig(initial_s=0.05, max_s=0.1, connection_limit_s=0.3),
)


class Engine:
    """The parts under test, wired the way the app wires them (minus strategies and router)."""

    def __init__(self, sim: Simulator) -> None:
        urls = sim.urls
        assert urls is not None
        self.sim = sim
        self.events: list[Any] = []
        self.market = Market(
            publish=self.events.append, rate=SIM.risk_free_rate, div_yields={"SPY": SIM.underlyings[0].dividend_yield}
        )
        self.broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, option_feed="opra")
        self.venue = AlpacaExecution(self.broker)
        self.options: MarketDataClient = option_client(
            urls.options_stream_url,
            urls.key,
            urls.secret,
            self.market.option_index,
            on_batch=self.market.apply,
            publish=self.events.append,
            max_quotes=CAP,
            config=FEED,
        )
        self.stocks: MarketDataClient = stock_client(
            urls.stocks_stream_url,
            urls.key,
            urls.secret,
            self.market.stock_index,
            on_batch=self.market.apply_stock_batch,
            publish=self.events.append,
            config=FEED,
        )
        self.stocks.set_subscription(["SPY"])
        self.manager = SubscriptionManager(
            self.venue,
            self.market,
            self.options,
            ["SPY"],
            budget=SubscriptionBudget(BudgetConfig(cap=CAP, dte_ranges=((0, 10),))),
        )
        self.orders = OrderStateMachine()
        self.trading = TradingStreamClient(
            urls.trading_stream_url,
            urls.key,
            urls.secret,
            publish=self.events.append,
            on_update=self.on_update,
            config=FEED,
        )

    def on_update(self, update: Any) -> None:
        self.events.extend(self.orders.on_event(update, 0))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def prime(self) -> None:
        quote = await self.broker.stock_latest_quote("SPY")
        assert quote is not None
        self.market.on_underlying_quote("SPY", quote.bp, quote.ap, self.sim.now_ns)
        today = dt.date.fromisoformat(self.sim.inspect()["session"])
        await self.manager.update(today, {"SPY": self.market.spot("SPY")})


@contextlib.asynccontextmanager
async def engine(config: SimConfig = SIM) -> AsyncIterator[Engine]:
    sim = Simulator(config)
    await sim.start()
    eng = Engine(sim)
    tasks: list[asyncio.Task[None]] = []
    try:
        await eng.prime()
        tasks = [asyncio.create_task(c.run()) for c in (eng.options, eng.stocks, eng.trading)]
        yield eng
    finally:
        for c in (eng.options, eng.stocks, eng.trading):
            c.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        await eng.broker.close()
        await sim.stop()


async def until(cond: Any, limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def quotes_applied(eng: Engine) -> int:
    book = eng.market.chain("SPY")
    return 0 if book is None else int(book.counters[C_QUOTES])


async def test_streams_within_cap_and_book_matches_direct_greeks() -> None:
    async with engine() as eng:
        await until(lambda: quotes_applied(eng) > 200)
        book = eng.market.chain("SPY")
        assert book is not None
        assert len(eng.manager.current) == CAP and len(eng.options.protocol.acked_quotes) == CAP
        assert eng.sim.state()["connections"]["options"] == 1
        assert not [e for e in eng.of(FeedError) if e.code == 405]  # the cap was never exceeded
        ok = book.status == OK
        assert ok.sum() > CAP // 2
        # Greeks always equal a direct computation at the row's held IV and inputs.
        g = greeks_at_vol(book.spot_arr, book.strike, book.t_years, book.rate_arr, book.div_arr, book.iv, book.is_call)
        np.testing.assert_allclose(book.delta[ok], g.delta[ok], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(book.vega[ok], g.vega[ok], rtol=1e-10, atol=1e-12)
        # Hold spot still (stop the stock feed); rows quoted since carry the IV of their own mid.
        eng.stocks.stop()
        await until(lambda: not eng.stocks.connected.is_set())
        seen = quotes_applied(eng)
        await until(lambda: quotes_applied(eng) > seen + 100)
        fresh = ok & (book.iv_ts_ns > book.spot_ts_ns)
        sigma, _ = implied_vol(
            book.mid,
            book.spot_arr,
            book.strike,
            book.t_years,
            book.rate_arr,
            book.div_arr,
            book.is_call,
            min_time_value=0.005,
        )
        assert fresh.sum() > 0
        np.testing.assert_allclose(book.iv[fresh], sigma[fresh], rtol=1e-9)
        # The simulator prices at ~16% ATM vol; the book's IVs must be in that world.
        assert 0.05 < float(np.nanmedian(book.iv[ok])) < 0.6


async def test_reconnects_after_drop_mute_and_connection_limit() -> None:
    async with engine() as eng:
        await until(lambda: eng.options.connects == 1 and quotes_applied(eng) > 20)
        # 1. an abrupt drop
        eng.sim.drop_streams("options")
        await until(lambda: eng.options.connects == 2)
        seen = quotes_applied(eng)
        await until(lambda: quotes_applied(eng) > seen + 20)
        assert len([g for g in eng.of(GapDetected) if g.feed == "options"]) >= 1
        # 2. a mute socket: connected, silent
        eng.sim.faults.streams["options"].mute = True
        await until(lambda: len([e for e in eng.of(FeedStale) if e.feed == "options"]) >= 1)
        eng.sim.faults.streams["options"].mute = False
        await until(lambda: eng.options.connects == 3)
        await until(lambda: quotes_applied(eng) > seen + 40)
        # 3. connection limit on the next authentication
        eng.sim.faults.streams["options"].reject_connections = 1
        connects = eng.options.connects
        eng.sim.drop_streams("options")
        await until(lambda: eng.options.connects == connects + 1)
        assert 406 in eng.options.errors
        slow = [d for d in eng.of(FeedDisconnected) if d.feed == "options" and d.retry_in_s >= 0.3]
        assert slow, "a 406 must wait the long connection-limit backoff"
        after = quotes_applied(eng)
        await until(lambda: quotes_applied(eng) > after + 20)
        assert len([c for c in eng.of(FeedConnected) if c.feed == "options"]) >= 4
        assert eng.sim.state()["connections"]["options"] == 1
        # 4. malformed frames: reported and counted, the session goes on
        eng.sim.faults.streams["options"].malformed_frames = 2
        before = quotes_applied(eng)
        await until(lambda: eng.options.protocol.malformed_frames >= 2 and quotes_applied(eng) > before + 20)
        assert len([e for e in eng.of(FeedError) if e.feed == "options" and e.code == 0]) >= 2
        assert eng.sim.state()["connections"]["options"] == 1


async def test_duplicate_and_reordered_trade_updates_leave_positions_exact() -> None:
    async with engine() as eng:
        await until(lambda: eng.trading.connects == 1 and quotes_applied(eng) > 40)
        eng.sim.faults.streams["trading"].duplicate_updates = 6
        eng.sim.faults.streams["trading"].reorder_updates = 6
        book = eng.market.chain("SPY")
        assert book is not None
        calls = sorted((s for s in eng.manager.current if s[-9] == "C"), key=lambda s: book.strike[book.row_of(s)])
        await eng.broker.submit_order(
            OrderRequest(
                qty="3", type="market", time_in_force="day", symbol=calls[0], side="buy", client_order_id="single-1"
            )
        )
        await eng.broker.submit_order(
            OrderRequest(
                qty="2",
                type="market",
                time_in_force="day",
                order_class="mleg",
                client_order_id="spread-1",
                legs=(
                    LegRequest(calls[1], "1", "buy", "buy_to_open"),
                    LegRequest(calls[2], "1", "sell", "sell_to_open"),
                ),
            )
        )

        def sim_positions() -> dict[str, float]:
            return {s: float(q) for s, q in eng.sim.inspect()["positions"].items() if q}

        await until(lambda: sim_positions() == {calls[0]: 3.0, calls[1]: 2.0, calls[2]: -2.0}, 15)
        await asyncio.sleep(0.3)
        # The reorder fault holds the last update back until another one follows: reconcile over REST,
        # as the router does, then let a new order flush the held (already reconciled) update.
        for order in await eng.venue.orders("all"):
            eng.events.extend(eng.orders.on_order(order, 0))
        assert eng.orders.positions() == sim_positions()
        await eng.broker.submit_order(
            OrderRequest(
                qty="1", type="market", time_in_force="day", symbol=calls[3], side="buy", client_order_id="single-2"
            )
        )
        await until(lambda: calls[3] in sim_positions())
        await asyncio.sleep(0.3)
        for order in await eng.venue.orders("all"):
            eng.events.extend(eng.orders.on_order(order, 0))
        assert eng.orders.positions() == sim_positions()
        assert eng.orders.duplicates_ignored > 0 and eng.sim.faults.injected
        parents = [eng.orders.by_client_order_id(c) for c in ("single-1", "spread-1", "single-2")]
        assert all(p is not None and p.status.value == "filled" for p in parents)


async def test_spot_move_reprices_the_chain_and_recentres_the_subscription_as_one_diff() -> None:
    async with engine() as eng:
        book = eng.market.chain("SPY")
        assert book is not None
        await until(lambda: book.seq > 5 and book.spot_ts_ns > 0 and quotes_applied(eng) > 10)
        before_spot, before_set = book.spot, set(eng.manager.current)
        today = dt.date.fromisoformat(eng.sim.inspect()["session"])
        assert await eng.manager.update(today, {"SPY": book.spot}) == (0, 0)  # no move, no churn
        eng.sim.move_underlying("SPY", 0.02)
        await until(lambda: abs(book.spot - before_spot * 1.02) < before_spot * 0.005, 10)
        held = next(iter(before_set))  # pretend we hold one contract of the old window
        sent = dict(eng.options.protocol.subscription_messages)
        added, removed = await eng.manager.update(today, {"SPY": book.spot}, pinned=[held])
        assert added > 0 and added == removed and held in eng.manager.current
        assert len(eng.manager.current) <= CAP
        await until(lambda: set(eng.options.protocol.acked_quotes) == eng.manager.current)
        after = eng.options.protocol.subscription_messages
        # the whole change went out as one unsubscribe + one subscribe
        assert (after["unsubscribe"] - sent.get("unsubscribe", 0), after["subscribe"] - sent["subscribe"]) == (1, 1)
        new_rows = [book.row_of(s) for s in eng.manager.current - before_set]
        assert all(r >= 0 for r in new_rows)  # new contracts were added to the book (primed from snapshots)


async def test_broker_against_the_simulator_pages_contracts_and_types_its_errors() -> None:
    sim = Simulator(msgspec.structs.replace(SIM, rate_limit_per_min=0))
    urls = await sim.start()
    try:
        async with AlpacaBroker(
            urls.trading_url, urls.data_url, urls.key, urls.secret, option_feed="opra", retry_delay_s=0.01
        ) as broker:
            one_page = await broker.option_contracts(["SPY"], expiration_lte="2030-01-01", limit=10_000)
            paged = await broker.option_contracts(["SPY"], expiration_lte="2030-01-01", limit=37)
            assert [c.symbol for c in paged] == [c.symbol for c in one_page] and len(paged) > 37
            chain = await broker.option_chain("SPY", limit=50)
            assert len(chain) == len(one_page)
            symbol = one_page[0].symbol
            sim.reject_next_orders(403, message="insufficient buying power")
            with pytest.raises(BrokerRejected) as rejected:
                await broker.submit_order(
                    OrderRequest(
                        qty="1", type="market", time_in_force="day", symbol=symbol, side="buy", client_order_id="r-1"
                    )
                )
            assert rejected.value.status == 403
            sim.fail_rest("500", scope="trading")
            with pytest.raises(OutcomeUnknown):
                await broker.submit_order(
                    OrderRequest(
                        qty="1", type="market", time_in_force="day", symbol=symbol, side="buy", client_order_id="u-1"
                    )
                )
            # An unknown outcome is resolved by looking the order up by its client_order_id.
            found = await broker.get_order_by_client_id("u-1")
            assert found is None or found.client_order_id == "u-1"
            sim.fail_rest("429", scope="trading")
            with pytest.raises(RateLimited):
                await broker.account()
            account = await broker.account()  # the next call goes through
            assert account.id
    finally:
        await sim.stop()
