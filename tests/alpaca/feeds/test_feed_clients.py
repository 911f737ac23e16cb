"""Feed clients against scripted loopback websocket servers: handshake, resubscribe, drop, mute, 406, 402."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from fake_alpaca import FakeDataServer, FakeTradingServer

from engine.alpaca.feeds.backoff import BackoffConfig
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.datastream import MarketDataClient
from engine.alpaca.feeds.options.client import option_client
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel.book import C_DUPLICATES, C_QUOTES
from engine.kernel.bus import Bus
from engine.kernel.clock import EventClock
from engine.kernel.events import (
    BookUpdated,
    FeedConnected,
    FeedDisconnected,
    FeedError,
    FeedFailed,
    FeedStale,
    GapDetected,
    SubscriberFailed,
    Topic,
)
from engine.kernel.market import Market
from engine.kernel.market_data import DataBatch
from engine.kernel.venue_types import OrderEvent
from tests.service.helpers import until

FAST = FeedConfig(
    mute_timeout_s=0.3,
    handshake_timeout_s=2.0,
    backoff=BackoffConfig(initial_s=0.02, max_s=0.05, connection_limit_s=0.4),
)
QUIET_OK = FeedConfig(
    mute_timeout_s=None,
    handshake_timeout_s=2.0,
    backoff=BackoffConfig(initial_s=0.02, max_s=0.05, connection_limit_s=0.4),
)
SYMS = [f"SPY261218C00{600 + i:03d}000" for i in range(4)]


def frames(n: int) -> list[bytes]:
    """n frames of 2 quotes, strictly increasing timestamps; frame i has bid i."""
    return [
        msgpack.packb(
            [
                {
                    "T": "q",
                    "S": SYMS[j],
                    "t": msgpack.Timestamp(1_800_000_000 + i, j),
                    "bp": float(i),
                    "bs": 1,
                    "ap": i + 0.5,
                    "as": 1,
                    "bx": "C",
                    "ax": "C",
                    "c": "A",
                }
                for j in range(2)
            ]
        )
        for i in range(n)
    ]


class Harness:
    def __init__(self, server: FakeDataServer, config: FeedConfig = FAST) -> None:
        self.market = Market()
        self.market.add_contracts("SPY", SYMS)
        self.index = self.market.option_index
        self.events: list[Any] = []
        self.seen_ts: list[int] = []
        self.client: MarketDataClient = option_client(
            server.url,
            "KEY",
            "SECRET",
            self.index,
            on_batch=self.on_batch,
            publish=self.events.append,
            config=config,
        )
        self.client.set_subscription(SYMS[:2])

    def on_batch(self, batch: DataBatch, arrival_ns: int = 0) -> None:
        self.seen_ts.extend(int(t) for t in batch.ts_ns)
        self.market.apply(batch)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[Harness]:
    task = asyncio.create_task(h.client.run())
    try:
        yield h
    finally:
        h.client.stop()
        await asyncio.wait_for(task, 5)


async def test_client_authenticates_subscribes_and_streams(data_server: FakeDataServer) -> None:
    data_server.script.frames = frames(5)
    h = Harness(data_server, QUIET_OK)
    async with running(h):
        await until(lambda: len(h.seen_ts) == 10)
    assert data_server.received[0][0] == {"action": "auth", "key": "KEY", "secret": "SECRET"}
    assert data_server.received[0][1] == {"action": "subscribe", "quotes": SYMS[:2]}
    assert data_server.headers[0]["content-type"] == "application/msgpack"
    assert len(h.of(FeedConnected)) == 1


async def test_reconnect_after_drop_resubscribes_everything_and_reports_the_gap(
    data_server: FakeDataServer,
) -> None:
    data_server.script.frames = frames(6)
    data_server.script.drop_after = {0: 3}
    data_server.script.resend_from = {1: 2}  # the server replays one frame we already have
    h = Harness(data_server, QUIET_OK)
    async with running(h):
        await until(lambda: h.client.connects == 1)
        h.client.set_subscription(SYMS[:3])  # changed while connected: sent as a diff
        await until(lambda: h.client.connects == 2 and len(h.seen_ts) >= 14)
    assert data_server.received[1][1] == {"action": "subscribe", "quotes": SYMS[:3]}  # full set again
    assert len(h.of(FeedDisconnected)) == 1
    (gap,) = h.of(GapDetected)
    assert (gap.from_ns, gap.to_ns) == (1_800_000_002_000_000_001, 1_800_000_003_000_000_001)
    book = h.market.chain("SPY")
    assert book is not None
    assert book.counters[C_QUOTES] == 12 and book.counters[C_DUPLICATES] == 2  # the replay is not re-applied
    assert book.bid[0] == 5.0


async def test_subscription_change_while_connected_is_sent_as_a_diff(data_server: FakeDataServer) -> None:
    h = Harness(data_server, QUIET_OK)
    async with running(h):
        await until(lambda: h.client.connects == 1 and len(data_server.received[0]) == 2)
        h.client.set_subscription(SYMS[1:3])
        await until(lambda: len(data_server.received[0]) == 4)
    assert data_server.received[0][2:] == [
        {"action": "unsubscribe", "quotes": [SYMS[0]]},
        {"action": "subscribe", "quotes": [SYMS[2]]},
    ]


async def test_mute_socket_raises_feed_stale_and_reconnects(data_server: FakeDataServer) -> None:
    data_server.script.frames = frames(4)
    data_server.script.mute_after = {0: 2}
    h = Harness(data_server)
    async with running(h):
        await until(lambda: h.client.connects == 2 and len(h.seen_ts) >= 12)
    (stale,) = h.of(FeedStale)
    assert stale.silent_s >= 0.3
    assert "no market data" in h.of(FeedDisconnected)[0].reason


async def test_quiet_closed_market_is_not_stale(data_server: FakeDataServer) -> None:
    data_server.script.frames = frames(2)
    data_server.script.mute_after = {0: 2}
    h = Harness(data_server)
    h.client._market_open = lambda: False
    async with running(h):
        await asyncio.sleep(0.8)
    assert h.of(FeedStale) == [] and h.client.connects == 1


async def test_connection_limit_waits_the_long_backoff_then_connects(data_server: FakeDataServer) -> None:
    data_server.script.frames = frames(2)
    data_server.script.auth_error = {0: (406, "connection limit exceeded")}
    h = Harness(data_server, QUIET_OK)
    loop = asyncio.get_running_loop()
    async with running(h):
        start = loop.time()
        await until(lambda: h.client.connects == 1)
        waited = loop.time() - start
    assert h.of(FeedDisconnected)[0].retry_in_s == pytest.approx(0.4)
    assert waited >= 0.4
    assert data_server.connections == 2


@pytest.mark.parametrize(("code", "text"), [(402, "auth failed"), (409, "insufficient subscription")])
async def test_bad_keys_or_plan_are_fatal_with_a_clear_message(
    data_server: FakeDataServer, code: int, text: str
) -> None:
    data_server.script.auth_error = {0: (code, text)}
    h = Harness(data_server)
    await asyncio.wait_for(h.client.run(), 5)  # returns by itself
    (failed,) = h.of(FeedFailed)
    assert failed.code == code and text in failed.message
    assert data_server.connections == 1
    assert h.client.failure is not None


async def test_trading_stream_listens_delivers_updates_and_reports_gap_after_reconnect(
    trading_server: FakeTradingServer,
) -> None:
    upd = {
        "event": "new",
        "timestamp": "2026-01-05T15:00:00Z",
        "order": {
            "id": "o1",
            "client_order_id": "c1",
            "status": "new",
            "symbol": "SPY",
            "side": "buy",
            "qty": "1",
            "filled_qty": "0",
            "created_at": "2026-01-05T15:00:00Z",
            "updated_at": "2026-01-05T15:00:00Z",
            "submitted_at": "2026-01-05T15:00:00Z",
        },
    }
    trading_server.script.updates = [upd, upd]
    trading_server.script.drop_after = {0: 1}
    got: list[OrderEvent] = []
    events: list[Any] = []
    client = TradingStreamClient(
        trading_server.url,
        "KEY",
        "SECRET",
        on_update=got.append,
        publish=events.append,
        auth_shape="legacy",
        config=FAST,
    )
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: client.connects == 2 and len(got) == 3)
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
    assert trading_server.received[0][0] == {
        "action": "authenticate",
        "data": {"key_id": "KEY", "secret_key": "SECRET"},
    }
    assert trading_server.received[0][1] == {"action": "listen", "data": {"streams": ["trade_updates"]}}
    assert [g.order.id for g in got] == ["o1"] * 3 and all(isinstance(g, OrderEvent) for g in got)  # translated
    assert len([e for e in events if isinstance(e, GapDetected) and e.feed == "trading"]) == 1


async def test_trading_stream_unauthorized_is_fatal(trading_server: FakeTradingServer) -> None:
    trading_server.script.unauthorized = True
    events: list[Any] = []
    client = TradingStreamClient(
        trading_server.url, "KEY", "BAD", on_update=lambda u: None, publish=events.append, config=FAST
    )
    await asyncio.wait_for(client.run(), 5)
    assert [type(e) for e in events] == [FeedFailed]


async def test_a_throwing_subscriber_stops_neither_the_feed_nor_other_subscribers(
    data_server: FakeDataServer,
) -> None:
    data_server.script.frames = frames(30)
    bus = Bus(max_consecutive_failures=3)
    good: list[int] = []
    alerts: list[SubscriberFailed] = []

    def broken(ev: BookUpdated) -> None:
        raise RuntimeError("strategy bug")

    bus.subscribe("broken", broken, [Topic.BOOK])
    bus.subscribe("good", lambda ev: good.append(ev.seq), [Topic.BOOK])
    bus.subscribe("ops", alerts.append, [Topic.ALERTS])
    await bus.start()
    h = Harness(data_server, QUIET_OK)
    h.market = Market(publish=bus.publish)
    h.market.add_contracts("SPY", SYMS)
    h.client.protocol.index = h.market.option_index
    async with running(h):
        await until(lambda: len(h.seen_ts) == 60)
        await bus.drain()
    await bus.stop()
    book = h.market.chain("SPY")
    assert book is not None and book.seq == 30 and book.bid[0] == 29.0  # every frame applied
    assert good and good[-1] == 30  # the healthy subscriber saw the newest book
    assert alerts and all("strategy bug" in a.error for a in alerts)  # isolated, reported


async def test_feed_timestamps_drive_the_event_clock_and_its_timers(data_server: FakeDataServer) -> None:
    data_server.script.frames = frames(10)
    clock = EventClock()
    fired: list[int] = []
    clock.call_at(1_800_000_005 * 10**9, fired.append)
    h = Harness(data_server, QUIET_OK)
    h.client._on_data_time = clock.advance
    async with running(h):
        await until(lambda: len(h.seen_ts) == 20)
    assert clock.now_ns() == 1_800_000_009 * 10**9 + 1
    assert fired == [1_800_000_005 * 10**9]


async def test_trade_update_the_engine_cannot_apply_asks_for_reconciliation_and_the_stream_goes_on(
    trading_server: FakeTradingServer,
) -> None:
    def upd(oid: str) -> dict[str, object]:
        return {
            "event": "new",
            "timestamp": "2026-01-05T15:00:00Z",
            "order": {
                "id": oid,
                "client_order_id": oid,
                "status": "new",
                "symbol": "SPY",
                "side": "buy",
                "qty": "1",
                "filled_qty": "0",
                "created_at": "2026-01-05T15:00:00Z",
                "updated_at": "2026-01-05T15:00:00Z",
                "submitted_at": "2026-01-05T15:00:00Z",
            },
        }

    trading_server.script.updates = [upd("bad"), upd("good")]
    got: list[str] = []
    events: list[Any] = []

    def on_update(u: OrderEvent) -> None:
        if u.order.id == "bad":
            raise KeyError("engine bug")
        got.append(u.order.id)

    client = TradingStreamClient(trading_server.url, "K", "S", on_update=on_update, publish=events.append, config=FAST)
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: got == ["good"])
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
    assert client.connects == 1
    assert [type(e) for e in events if not isinstance(e, FeedConnected)] == [FeedError, GapDetected]
