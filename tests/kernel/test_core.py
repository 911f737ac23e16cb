"""The trading core's life cycle: once stopped, strategies decide nothing more, while fills are still booked.

Found by ``test_engine_run_sim`` in CI: during shutdown the feeds kept driving the gamma scalper, whose
hedge went out after the engine had cancelled its working orders and filled after the trading stream
closed, so the engine held 13 SPY fewer than the broker.
"""

from __future__ import annotations

from typing import Any

from domain.orders import AssetClass, OrderFilled, OrderIntent, Side
from domain.views import AccountView
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.execution import AlpacaExecution
from engine.kernel.clock import EventClock
from engine.kernel.core import TradingCore
from engine.kernel.events import BookUpdated
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine
from engine.kernel.portfolio import Portfolio
from engine.kernel.router import Router
from engine.kernel.settlements import unwind_intent
from risk.breakers import Breakers
from risk.gate import RiskGate
from risk.limits import BreakerLimits, RiskLimits

NS = 1_000_000_000
T0 = 1_795_000_000 * NS


class HedgingActor:
    """Submits a stock order on every book update and every timer, like a delta hedger."""

    strategy_id = "hedger"
    underlyings = ("SPY",)

    def __init__(self) -> None:
        self.ctx: Any = None
        self.books = 0
        self.timers = 0
        self.fills: list[OrderFilled] = []
        self.seq = 0

    def intent(self) -> OrderIntent:
        self.seq += 1
        return unwind_intent("hedger-s1", self.strategy_id, "SPY", 13, self.seq, self.ctx.now_ns)

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx
        ctx.set_timer("rehedge", T0 + 5 * NS)

    def on_book(self, chain: Any) -> None:
        self.books += 1
        self.ctx.submit(self.intent())

    def on_timer(self, name: str, now_ns: int) -> None:
        self.timers += 1
        self.ctx.submit(self.intent())

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)
        self.ctx.submit(self.intent())  # a hedger re-hedges after each fill

    def on_order_update(self, update: Any) -> None:
        pass

    def on_denied(self, denied: Any) -> None:
        pass

    def on_stop(self) -> None:
        pass


def make_core() -> tuple[TradingCore, HedgingActor, EventClock]:
    clock = EventClock(T0)
    market = Market()
    market.book("SPY")
    broker = AlpacaExecution(AlpacaBroker("http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s"))  # never called
    router = Router(broker, OrderStateMachine(), market, clock, lambda e: None)
    actor = HedgingActor()
    core = TradingCore(clock=clock, market=market, portfolio=Portfolio(), router=router, gate=RiskGate(RiskLimits()),
                       breakers=Breakers(BreakerLimits(stale_data_after_ms=1000)), actors=(actor,),  # type: ignore[arg-type]
                       account=AccountView(1e5, 1e5, 1e5, 1e5))
    return core, actor, clock


def book(ts: int) -> BookUpdated:
    return BookUpdated("SPY", 1, 0, 0, 600.0, "quotes", ts, ts)  # type: ignore[arg-type]


def fill(ts: int) -> OrderFilled:
    return OrderFilled("x1", "o1", "cid", "SPY", Side.BUY, 13.0, 600.0, ts, ts, AssetClass.EQUITY, "hedger",
                       "hedger-s1", "hedger-s1-unwind-1")


def test_a_running_core_hands_actor_intents_to_the_gate() -> None:
    core, actor, clock = make_core()
    core.start()
    core.on_book(book(T0))
    clock.advance(T0 + 6 * NS)
    assert (actor.books, actor.timers) == (1, 1)
    assert core.tally["hedger"].intents == 2


def test_a_stopped_core_drives_no_actor_but_still_books_fills() -> None:
    core, actor, clock = make_core()
    core.start()
    core.stop()
    core.on_book(book(T0 + NS))
    clock.advance(T0 + 6 * NS)  # past the actor's timer
    assert (actor.books, actor.timers) == (0, 0)
    core.on_fill(fill(T0 + 7 * NS))  # a fill of an order sent before the stop
    assert core.portfolio.position("SPY") == 13.0
    assert len(actor.fills) == 1  # the actor's books stay right ...
    assert core.tally["hedger"].intents == 0  # ... but the re-hedge it asked for never reached the gate
    assert core.intents_dropped_stopping == 1
    assert not core.router.working


def test_a_stopped_core_still_sends_engine_intents() -> None:
    """Settlement unwinds at shutdown must still go out while the trading stream listens."""
    core, _actor, clock = make_core()
    core.start()
    core.stop()
    core.submit(unwind_intent("", "", "SPY", -100, 1, clock.now_ns()))
    assert core.tally["settlement"].intents == 1
