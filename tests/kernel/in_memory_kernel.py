"""A whole ``TradingKernel`` run against in-memory ports: quotes as ``DataBatch`` columns in, a strategy, the
gate and the router, an in-memory venue, its order events back, the fill booked. Importable on its own (the
test also runs it in a fresh interpreter to show that no venue adapter is loaded)."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, ClassVar

from support.memory_venue import MemoryVenue

from domain.orders import IntentAction, Leg, OrderFilled, OrderIntent, PositionIntent, PricePolicy, Side
from domain.views import AccountView, ChainView
from engine.kernel.clock import EventClock
from engine.kernel.events import BookUpdated
from engine.kernel.kernel import KernelSettings, TradingKernel
from engine.kernel.market_data import KIND_QUOTE, BatchColumns, DataBatch
from engine.kernel.ports import ExecutionClient
from engine.kernel.symbols import SymbolIndex
from strategies.base import Strategy, StrategyConfig

NS = 1_000_000_000
T0 = 1_795_446_000 * NS  # Monday 2026-11-23 14:40 UTC, the session is open
CALL = "SPY261231C00610000"


class BuyOnceConfig(StrategyConfig, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class BuyOnce(Strategy[BuyOnceConfig]):
    """Buys one CALL (limit: the ask) on the first book update that quotes it."""

    KIND: ClassVar[str] = ""  # not a registered strategy: given to the kernel in code

    def __init__(self) -> None:
        super().__init__("buy_once", BuyOnceConfig())
        self.fills: list[OrderFilled] = []
        self.sent = False

    def on_book(self, chain: ChainView) -> None:
        row = chain.row_of(CALL)
        if self.sent or row < 0 or not chain.ask[row] > 0:
            return
        self.sent = True
        leg = Leg(CALL, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)
        self.ctx.submit(OrderIntent("bo1-open-1", self.strategy_id, "bo1", "SPY", IntentAction.OPEN, (leg,), 1,
                                    PricePolicy("limit", limit_price=float(chain.ask[row]))))

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)


def quotes(index: SymbolIndex, rows: list[tuple[str, float, float]], ts_ns: int) -> DataBatch:
    """One feed frame of quotes as the adapter would hand it over."""
    cols = BatchColumns(len(rows))
    for i, (symbol, bid, ask) in enumerate(rows):
        cols.kind[i], cols.gid[i], cols.ts[i] = KIND_QUOTE, index.id_of(symbol), ts_ns
        cols.bid[i], cols.ask[i], cols.bid_size[i], cols.ask_size[i] = bid, ask, 10, 10
    return DataBatch(cols, len(rows), ts_ns)


class Run:
    """The kernel with a deterministic event queue (as replay drives it) and the in-memory venue."""

    def __init__(self) -> None:
        self.clock = EventClock(T0)
        self.events: collections.deque[Any] = collections.deque()
        self.venue = MemoryVenue(self.clock)
        port: ExecutionClient = self.venue
        self.actor = BuyOnce()
        self.kernel = TradingKernel(KernelSettings(), port, publish=self.events.append,
                                    account=AccountView(100_000.0, 100_000.0, 100_000.0, 100_000.0, 3),
                                    clock=self.clock, quote_clock=self.clock.now_ns, settlements=False,
                                    extra_actors=[self.actor])
        self.kernel.router.market_open = lambda ns: True
        self.book_updates = 0

    async def settle(self) -> None:
        for _ in range(100):
            while self.events:
                event = self.events.popleft()
                self.book_updates += isinstance(event, BookUpdated)
                self.kernel.dispatch(event)
            await asyncio.sleep(0)
            while self.venue.stream:
                self.kernel.on_order_event(self.venue.stream.pop(0), T0)
            if not self.events and not self.venue.stream and not self.kernel.router._tasks:
                return


async def scenario() -> Run:
    """Spot and a call quote arrive; the actor buys at the ask; the venue fills the order at 5.15."""
    run = Run()
    kernel = run.kernel
    kernel.market.book("SPY")
    kernel.market.add_contracts("SPY", [CALL], [500])
    kernel.start()
    kernel.on_stock_batch(quotes(kernel.market.stock_index, [("SPY", 604.99, 605.01)], T0), T0)
    kernel.on_option_batch(quotes(kernel.market.option_index, [(CALL, 5.00, 5.20)], T0 + NS), T0 + NS)
    await run.settle()
    (order_id,) = run.venue.orders_by_id
    run.venue.fill(order_id, 5.15)
    await run.settle()
    return run


if __name__ == "__main__":  # the fresh-interpreter run: which engine packages did a whole kernel run load?
    import sys

    done = asyncio.run(scenario())
    assert done.actor.fills, "no fill reached the actor"
    print(sorted({m.split(".")[1] for m in sys.modules if m.startswith("engine.") and m.count(".") >= 1}))
