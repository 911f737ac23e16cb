"""A router wired to the real simulator over loopback: REST for orders, the trade_updates stream for fills.

The simulator's clock is paused (speed 0) so the test decides when time moves: ``advance`` moves both the
simulator's market and the engine's event clock, which fires the router's walk and timeout timers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from domain.orders import (
    IntentAction,
    IntentDenied,
    Leg,
    OrderFilled,
    OrderIntent,
    OrderUpdated,
    PositionIntent,
    PricePolicy,
    Side,
)
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.options.client import option_client
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel.clock import EventClock
from engine.kernel.market import Market
from engine.kernel.order_rules import OrdersSection
from engine.kernel.orders import OrderStateMachine
from engine.kernel.router import Router, RouterConfig
from engine.kernel.subscriptions import BudgetConfig, ContractCatalog, SubscriptionBudget, SubscriptionManager
from engine.sim.config import SimConfig, UnderlyingConfig
from engine.sim.errors import AlpacaError
from engine.sim.orders import OPEN_STATUSES
from engine.sim.server import Simulator

NS = 1_000_000_000


def sim_config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = dict(
        seed=11,
        speed=0.0,
        rate_limit_per_min=0,
        partial_fill_probability=0.0,
        option_symbol_cap=60,
        underlyings=(UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, daily_expiry_sessions=3,
                                      weekly_expiry_weeks=1, monthly_expiry_months=1),),
    )
    base.update(overrides)
    return SimConfig(**base)


class RouterRig:
    def __init__(self, sim: Simulator, underlyings: tuple[str, ...] = ("SPY",),
                 rules: OrdersSection = OrdersSection()) -> None:
        urls = sim.urls
        assert urls is not None
        self.sim = sim
        self.underlyings = underlyings
        self.events: list[Any] = []
        self.absorbed: list[OrderUpdated] = []
        """Order updates the router took as its own business (a cancel its replace fallback redoes)."""
        self.clock = EventClock(sim.now_ns)
        self.market = Market(rate=0.04, div_yields={u: 0.013 for u in underlyings})
        self.broker = AlpacaExecution(AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret,
                                                   option_feed="opra", timeout_s=2.0))
        self.orders = OrderStateMachine()
        self.router = Router(self.broker, self.orders, self.market, self.clock, self.on_event,
                             config=RouterConfig(retry_backoff_s=0.05), rules=rules)
        self.live: dict[str, set[str]] = {}
        """Orders live at the simulator per intent (client_order_id without its ``.r<k>``), after every event."""
        self.max_live: dict[str, int] = {}
        sim.exchange.listeners.append(self._watch_live)
        self.refusals: list[tuple[str, int, str]] = []
        """Every order write the simulator refused: (POST|PATCH, status, message)."""
        self._record_refusals()
        self.trading = TradingStreamClient(urls.trading_stream_url, urls.key, urls.secret,
                                           on_update=self.on_update, publish=lambda e: None,
                                           config=FeedConfig(mute_timeout_s=None))
        self._stream = option_client(urls.options_stream_url, urls.key, urls.secret, self.market.option_index,
                                     on_batch=self.market.apply, publish=lambda e: None)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for u in self.underlyings:
            quote = await self.broker.stock_quote(u)
            assert quote is not None
            self.market.book(u)
            self.market.on_underlying_quote(u, quote.bid, quote.ask, self.sim.now_ns)
        manager = SubscriptionManager(self.broker, self.market, self._stream, list(self.underlyings),
                                      budget=SubscriptionBudget(BudgetConfig(cap=60, dte_ranges=((0, 10),))),
                                      catalog=ContractCatalog(self.broker, on_ppind=self.router.ticks.observe))
        today = dt.datetime.fromtimestamp(self.sim.now_ns / 1e9, dt.UTC).date()
        await manager.update(today, {u: self.market.spot(u) for u in self.underlyings})
        self._task = asyncio.create_task(self.trading.run())
        await asyncio.wait_for(self.trading.connected.wait(), 5.0)

    async def stop(self) -> None:
        await self.router.drain(2.0)
        self.trading.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.broker.close()

    # ---- event plumbing, as the engine core does it
    def on_update(self, update: Any) -> None:
        for event in self.orders.on_event(update, 0):
            self.on_event(event)

    def on_event(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, OrderUpdated) and self.router.on_order_update(event):
            self.absorbed.append(event)

    def _record_refusals(self) -> None:
        exchange = self.sim.exchange
        submit, replace = exchange.submit, exchange.replace

        def recorded(method: str, fn: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except AlpacaError as exc:
                    self.refusals.append((method, exc.status, exc.message))
                    raise

            return call

        exchange.submit = recorded("POST", submit)  # type: ignore[method-assign]
        exchange.replace = recorded("PATCH", replace)  # type: ignore[method-assign]

    def _watch_live(self, message: dict[str, Any]) -> None:
        order = message["data"]["order"]
        intent = order["client_order_id"].split(".r")[0]
        live = self.live.setdefault(intent, set())
        (live.add if order["status"] in OPEN_STATUSES else live.discard)(order["id"])
        self.max_live[intent] = max(self.max_live.get(intent, 0), len(live))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    # ---- helpers
    def atm(self, dte_rank: int = 0) -> tuple[str, str]:
        """(call, put) symbols at the strike nearest spot on the ``dte_rank``-th expiry."""
        book = self.market.chain("SPY")
        assert book is not None
        expiries = np.unique(book.expiry)
        rows = np.flatnonzero(book.expiry == expiries[dte_rank])
        k = book.strike[rows][np.argmin(np.abs(book.strike[rows] - book.spot))]
        call = next(book.symbols[r] for r in rows if book.strike[r] == k and book.is_call[r])
        put = next(book.symbols[r] for r in rows if book.strike[r] == k and not book.is_call[r])
        return call, put

    def straddle(self, n: int, qty: int = 1, policy: PricePolicy | None = None) -> OrderIntent:
        call, put = self.atm()
        legs = (Leg(call, Side.BUY, 1, PositionIntent.BUY_TO_OPEN), Leg(put, Side.BUY, 1, PositionIntent.BUY_TO_OPEN))
        return OrderIntent(f"t-SPY-{n}-open-1", "test", f"t-SPY-{n}", "SPY", IntentAction.OPEN, legs, qty,
                           policy or PricePolicy(walk_every_s=5, walk_step_fraction=0.5, timeout_s=60))

    def single(self, n: int, side: Side, qty: int = 1, policy: PricePolicy | None = None) -> OrderIntent:
        call, _ = self.atm()
        pi = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
        return OrderIntent(f"t-SPY-{n}-open-1", "test", f"t-SPY-{n}", "SPY", IntentAction.OPEN,
                           (Leg(call, side, 1, pi),), qty, policy or PricePolicy(walk_every_s=5, timeout_s=60))

    async def advance(self, seconds: float, steps: int = 1) -> None:
        """Move the simulator's market and the engine's clock together, letting I/O settle between steps."""
        for _ in range(steps):
            self.sim.advance(seconds / steps)
            self.clock.advance(self.sim.now_ns)
            await self.settle()

    async def settle(self, quiet_s: float = 0.15, limit_s: float = 10.0) -> None:
        """Wait until no event has arrived for ``quiet_s`` and the router has nothing in flight."""
        deadline = asyncio.get_running_loop().time() + limit_s
        seen = -1
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(quiet_s)
            if len(self.events) == seen and not self.router._tasks:
                return
            seen = len(self.events)

    # ---- invariants
    def sim_orders_by_client_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.sim.inspect()["orders"]:
            cid = order["client_order_id"]
            counts[cid] = counts.get(cid, 0) + 1
        return counts

    def assert_exact(self) -> None:
        """No client_order_id became two orders, and positions from our fills equal the simulator's."""
        counts = self.sim_orders_by_client_id()
        assert all(n == 1 for n in counts.values()), counts
        sim_positions = {s: q for s, q in self.sim.inspect()["positions"].items() if abs(q) > 1e-9}
        assert self.orders.positions() == sim_positions
        fills = self.of(OrderFilled)
        assert len({f.execution_id for f in fills}) == len(fills)

    def denials(self) -> list[IntentDenied]:
        return self.of(IntentDenied)


async def running_rig(books: tuple[str, ...] = ("SPY",), **overrides: Any) -> AsyncIterator[RouterRig]:
    """A simulator with ``overrides`` and a router rig started against it, stopped after use."""
    sim = Simulator(sim_config(**overrides))
    await sim.start()
    rig = RouterRig(sim, books)
    try:
        await rig.start()
        yield rig
    finally:
        await rig.stop()
        await sim.stop()


def filled(rig: RouterRig, intent_id: str) -> float:
    """Quantity booked for ``intent_id`` (all its legs' fills)."""
    return float(sum(f.qty for f in rig.of(OrderFilled) if f.intent_id == intent_id))
