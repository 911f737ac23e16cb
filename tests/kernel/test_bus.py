"""Bus: routing by type, conflation of market data, lossless ordered fills, isolation of failing subscribers."""

from __future__ import annotations

import asyncio

import pytest

from domain.orders import OrderFilled, Side
from engine.kernel.bus import Bus
from engine.kernel.events import BookUpdated, FeedStale, SubscriberFailed, Topic


def book(underlying: str, seq: int) -> BookUpdated:
    return BookUpdated(underlying, seq, 1, 1, 100.0, "quotes", seq, seq)


def fill(i: int) -> OrderFilled:
    return OrderFilled(f"e{i}", "o1", "c1", "SPY", Side.BUY, 1.0, 1.0, i, i)


async def test_slow_subscriber_sees_newest_book_not_a_backlog() -> None:
    bus = Bus()
    seen: list[int] = []
    gate = asyncio.Event()

    async def slow(ev: BookUpdated) -> None:
        seen.append(ev.seq)
        await gate.wait()

    bus.subscribe("slow", slow, [Topic.BOOK])
    await bus.start()
    bus.publish(book("SPY", 0))
    await asyncio.sleep(0)  # slow is now blocked inside seq 0
    for seq in range(1, 500):
        bus.publish(book("SPY", seq))
    gate.set()
    await bus.drain()
    await bus.stop()
    assert seen == [0, 499]
    assert bus.subscriber("slow").skipped == 498  # type: ignore[union-attr]


async def test_conflation_is_per_underlying() -> None:
    bus = Bus()
    seen: list[tuple[str, int]] = []
    gate = asyncio.Event()

    async def slow(ev: BookUpdated) -> None:
        seen.append((ev.underlying, ev.seq))
        await gate.wait()

    bus.subscribe("s", slow, [Topic.BOOK])
    await bus.start()
    bus.publish(book("SPY", 0))
    await asyncio.sleep(0)
    for seq in range(1, 10):
        bus.publish(book("SPY", seq))
        bus.publish(book("QQQ", seq))
    gate.set()
    await bus.drain()
    await bus.stop()
    assert seen == [("SPY", 0), ("SPY", 9), ("QQQ", 9)]


async def test_fills_are_lossless_and_in_order_even_for_a_slow_subscriber() -> None:
    bus = Bus()
    seen: list[str] = []

    async def slow(ev: OrderFilled) -> None:
        await asyncio.sleep(0)
        seen.append(ev.execution_id)

    bus.subscribe("s", slow, [Topic.FILLS])
    await bus.start()
    for i in range(200):
        bus.publish(fill(i))
    await bus.drain()
    await bus.stop()
    assert seen == [f"e{i}" for i in range(200)]


async def test_failing_subscriber_does_not_stop_others_and_raises_an_alert() -> None:
    bus = Bus(max_consecutive_failures=3)
    good: list[int] = []
    alerts: list[SubscriberFailed] = []

    def bad(ev: BookUpdated) -> None:
        raise RuntimeError("boom")

    bus.subscribe("bad", bad, [Topic.BOOK])
    bus.subscribe("good", lambda ev: good.append(ev.seq), [Topic.BOOK])
    bus.subscribe("ops", alerts.append, [Topic.ALERTS])
    await bus.start()
    for seq in range(5):
        bus.publish(book(f"U{seq}", seq))
        await bus.drain()
    await bus.stop()
    assert good == [0, 1, 2, 3, 4]
    assert [a.consecutive_failures for a in alerts] == [1, 2, 3]
    assert alerts[-1].disabled and "boom" in alerts[-1].error
    assert bus.subscriber("bad") is None  # disabled after 3 failures in a row


async def test_subscriber_recovers_after_a_transient_failure() -> None:
    bus = Bus(max_consecutive_failures=2)
    seen: list[int] = []

    def flaky(ev: BookUpdated) -> None:
        if ev.seq % 2 == 0:
            raise ValueError("even")
        seen.append(ev.seq)

    bus.subscribe("flaky", flaky, [Topic.BOOK])
    await bus.start()
    for seq in range(6):
        bus.publish(book(f"U{seq}", seq))
    await bus.drain()
    await bus.stop()
    assert seen == [1, 3, 5]  # failures never reached 2 in a row, so it was never disabled


async def test_lossless_events_are_delivered_before_conflated_ones() -> None:
    bus = Bus()
    seen: list[str] = []
    bus.subscribe("s", lambda ev: seen.append(type(ev).__name__), [Topic.BOOK, Topic.FILLS, Topic.ALERTS])
    bus.publish(book("SPY", 1))
    bus.publish(fill(1))
    bus.publish(FeedStale("options", 5.0, 1, 1))
    await bus.start()
    await bus.drain()
    await bus.stop()
    assert seen == ["OrderFilled", "FeedStale", "BookUpdated"]


def test_publishing_an_unregistered_type_names_it() -> None:
    bus = Bus()
    with pytest.raises(KeyError, match="str"):
        bus.publish("not an event")
