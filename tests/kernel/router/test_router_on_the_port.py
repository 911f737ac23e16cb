"""The kernel's router and order state machine against an in-memory venue written here: the port
(``engine.kernel.ports.ExecutionClient``) is all they need. No venue's wire types take part."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from support.memory_venue import MemoryVenue

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
from engine.kernel.clock import EventClock
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine
from engine.kernel.ports import ExecutionClient
from engine.kernel.router import Router
from engine.kernel.venue_types import (
    OutcomeUnknown,
    Rejected,
)

NS = 1_000_000_000
T0 = 1_795_446_000 * NS  # a Monday, 2026-11-23 14:40 UTC (the session is open)
CALL = "SPY261231C00610000"
PUT, PUT2 = "SPY261231P00600000", "SPY261231P00590000"


class Rig:
    def __init__(self) -> None:
        self.clock = EventClock(T0)
        self.market = Market(rate=0.04)
        self.market.book("SPY")
        self.market.on_underlying_quote("SPY", 604.99, 605.01, T0)
        self.market.add_contracts("SPY", [CALL, PUT, PUT2], [0, 0, 0])
        book = self.market.books["SPY"]
        for symbol, bid, ask in ((CALL, 1.00, 1.20), (PUT, 3.00, 3.20), (PUT2, 1.50, 1.60)):
            book.load_snapshot(symbol, bid, ask, 10, 10, T0, math.nan)
        self.market.snapshot_loaded("SPY")
        self.venue = MemoryVenue(self.clock)
        self.orders = OrderStateMachine()
        self.events: list[Any] = []
        port: ExecutionClient = self.venue  # typed to the port: no cast, no ignore
        self.router = Router(port, self.orders, self.market, self.clock, self.events.append,
                             market_open=lambda ns: True)

    async def settle(self) -> None:
        """Let the router's tasks run and deliver the venue's events, as the engine's bus does."""
        for _ in range(50):
            await asyncio.sleep(0)
            while self.venue.stream:
                for event in self.orders.on_event(self.venue.stream.pop(0), 0):
                    self.events.append(event)
                    if isinstance(event, OrderUpdated):
                        self.router.on_order_update(event)
        await self.router.drain(1.0)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def intent(intent_id: str, legs: tuple[Leg, ...], qty: int = 2, **policy: Any) -> OrderIntent:
    return OrderIntent(intent_id, "memory", intent_id.split("-")[0], "SPY", IntentAction.OPEN, legs, qty,
                       PricePolicy(**policy))


async def test_a_limit_order_walks_by_replace_and_its_fill_is_booked_to_its_structure() -> None:
    rig = Rig()
    rig.router.submit(intent("s1-open-1", (Leg(CALL, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),),
                             walk_every_s=5.0, walk_step_fraction=0.5, timeout_s=60.0))
    await rig.settle()
    (first,) = rig.venue.requests
    assert (first.client_id, first.qty, first.limit, first.time_in_force) == ("oe-s1-open-1", 2, 1.10, "day")
    rig.clock.advance(T0 + 5 * NS)  # the walk is due: one step toward the ask
    await rig.settle()
    working = rig.router.working["s1-open-1"]
    assert working.client_order_id == "oe-s1-open-1.r1" and working.limit_price is not None
    assert 1.10 < working.limit_price <= 1.20
    rig.venue.fill(working.order_id, working.limit_price)
    await rig.settle()
    (fill,) = rig.of(OrderFilled)
    assert (fill.symbol, fill.side, fill.qty, fill.price, fill.structure_id, fill.intent_id) == (
        CALL, Side.BUY, 2.0, working.limit_price, "s1", "s1-open-1")
    assert rig.orders.positions() == {CALL: 2.0} and not rig.router.working
    assert rig.router.counters["replaces"] == 1


async def test_a_lost_answer_is_looked_up_by_client_id_and_never_sent_twice() -> None:
    rig = Rig()
    rig.venue.fail_next.append(OutcomeUnknown("timed out after sending"))
    spread = (Leg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN), Leg(PUT2, Side.BUY, 1, PositionIntent.BUY_TO_OPEN))
    rig.router.submit(intent("s2-open-1", spread, kind="market"))
    await rig.settle()
    assert len(rig.venue.requests) == 1 and len(rig.venue.orders_by_id) == 1  # adopted, not resent
    assert rig.venue.requests[0].limit is None and rig.venue.requests[0].is_multi_leg
    assert rig.router.counters["adopted_after_unknown"] == 1
    (order_id,) = rig.venue.orders_by_id
    rig.venue.fill(order_id, -1.5)
    await rig.settle()
    fills = {f.symbol: f for f in rig.of(OrderFilled)}
    assert {s: (f.side, f.qty, f.parent_net_price) for s, f in fills.items()} == {
        PUT: (Side.SELL, 2.0, -1.5), PUT2: (Side.BUY, 2.0, -1.5)}
    assert all(f.structure_id == "s2" for f in fills.values())
    assert rig.orders.positions() == {PUT: -2.0, PUT2: 2.0}


async def test_a_refusal_denies_the_intent_with_the_venues_reason() -> None:
    rig = Rig()
    rig.venue.refuse_next.append(Rejected("POST refused", status=403, message="potential wash trade",
                                          reason="wash_trade"))
    rig.router.submit(intent("s3-open-1", (Leg(CALL, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),)))
    await rig.settle()
    (denied,) = rig.of(IntentDenied)
    assert (denied.reasons, denied.detail, denied.source) == (("wash_trade",), "potential wash trade", "broker")
    assert rig.router.counters["broker_wash_trade"] == 1 and not rig.router.working and not rig.venue.orders_by_id


class SlowJournal:
    """An intent journal that makes the intent durable only when the test says so (``synchronous=FULL``'s fsync)."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []

    def record_intent(self, intent: OrderIntent, client_order_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut


async def test_an_order_waits_for_a_journal_that_is_not_durable_at_once() -> None:
    rig = Rig()
    journal = SlowJournal()
    rig.router.journal = journal
    rig.router.submit(intent("s1-open-1", (Leg(CALL, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)))
    for _ in range(5):
        await asyncio.sleep(0)
    assert rig.venue.requests == [] and len(journal.pending) == 1  # nothing sent before the intent is durable
    journal.pending[0].set_result(None)
    await rig.settle()
    assert [r.client_id for r in rig.venue.requests] == ["oe-s1-open-1"]


async def test_an_order_is_handed_to_the_venue_within_submit_when_nothing_waits() -> None:
    rig = Rig()
    handed: list[str] = []
    submit = rig.venue.submit

    def on_submit(request: Any) -> Any:
        handed.append(request.client_id)
        return submit(request)

    rig.venue.submit = on_submit  # type: ignore[method-assign]
    rig.router.submit(intent("s1-open-1", (Leg(CALL, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),)))
    assert handed == ["oe-s1-open-1"] and rig.router.submitted == {"oe-s1-open-1": 1}  # no task hop before it
    await rig.settle()
    assert rig.router.working["s1-open-1"].order_id
