"""The Redis publisher against a real redis-server: delivery, durability across an outage, bounds."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from domain.views import PortfolioGreeks
from engine.kernel.alerts import Alert
from engine.service.journal import Journal
from engine.service.logging import Redactor
from engine.service.metrics import LoopLagMonitor, Metrics
from engine.service.publish import Publisher
from tests.conftest import RedisProcess
from tests.service.helpers import make_fill, make_update

UNIT_S = 0.05


async def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(UNIT_S)
    raise AssertionError("condition not met in time")


async def _stream_ids(client: aioredis.Redis, key: str) -> list[str]:
    return [fields[b"id"].decode() for _, fields in await client.xrange(key)]


async def test_subscriber_receives_fills_and_alerts_and_stream_holds_every_fill(redis_url: str, tmp_path: Path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    journal = Journal.open(tmp_path)
    journal.start()
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"{prefix}:fills", f"{prefix}:alerts", f"{prefix}:orders", f"{prefix}:greeks")
    pub = Publisher(redis_url, prefix, journal=journal)
    pub.start()
    try:
        assert await pub.wait_connected(5)
        before = PortfolioGreeks(delta_shares=10.0)
        after = PortfolioGreeks(delta_shares=110.0, gamma_shares_per_usd=3.0)
        for i in range(20):
            fill = make_fill(i)
            seq = journal.record_fill(fill, before, after)
            assert seq is not None
            pub.publish_fill(seq, fill, before, after)
        pub.publish_alert(Alert("breaker_tripped", "critical", "daily loss"))
        pub.publish_order(make_update("oe-1", "ord-1", "filled", filled=1.0))  # type: ignore[arg-type]
        pub.publish_greeks(time.time_ns(), after, {"SPY": after})

        got: dict[str, list[dict]] = {"fill": [], "alert": [], "order": [], "greeks": []}
        deadline = time.monotonic() + 5
        while sum(map(len, got.values())) < 23 and time.monotonic() < deadline:
            msg = await pubsub.get_message(timeout=0.2)
            if msg is not None:
                body = json.loads(msg["data"])
                got[body["type"]].append(body)
        assert [m["execution_id"] for m in got["fill"]] == [f"exec-{i}" for i in range(20)]
        first = got["fill"][0]
        assert first["v"] == 1 and first["ts"].endswith("Z") and first["seq"] == 1
        assert first["greeks_before"]["delta_shares"] == 10.0 and first["greeks_after"]["delta_shares"] == 110.0
        assert got["alert"][0]["code"] == "breaker_tripped" and got["alert"][0]["alert_id"]
        assert got["order"][0]["status"] == "filled" and got["order"][0]["event_id"] == "ord-1:filled:1"
        assert got["greeks"][0]["by_underlying"]["SPY"]["gamma_shares_per_usd"] == 3.0
        assert await _stream_ids(client, f"{prefix}:stream:fills") == [f"exec-{i}" for i in range(20)]
        assert len(await _stream_ids(client, f"{prefix}:stream:alerts")) == 1
    finally:
        await pub.stop()
        await journal.aclose()
        await pubsub.aclose()
        await client.delete(f"{prefix}:stream:fills", f"{prefix}:stream:alerts")
        await client.aclose()


async def test_a_stop_right_after_redis_returns_still_puts_every_journaled_fill_on_the_stream(
    redis_process: RedisProcess, tmp_path: Path
):
    """Found by the service test under load: the engine stopped while the publisher waited out its reconnect
    back-off after an outage, and the publisher gave up without trying again, so the fills journaled during the
    outage never reached the (restarted, empty) stream."""
    prefix = "stop-after-outage"
    journal = Journal.open(tmp_path)
    journal.start()
    pub = Publisher(redis_process.url, prefix, journal=journal)
    pub.start()
    try:
        assert await pub.wait_connected(5)
        await asyncio.to_thread(redis_process.stop)
        for i in range(5):
            fill = make_fill(i)
            seq = journal.record_fill(fill)
            assert seq is not None
            pub.publish_fill(seq, fill)
        await _wait_for(lambda: _async(not pub.connected))
        await asyncio.sleep(0.3)  # inside the back-off: the next connect attempt is a while away
        await asyncio.to_thread(redis_process.start)
    finally:
        await pub.stop()
        await journal.aclose()
    client = aioredis.Redis.from_url(redis_process.url)
    try:
        assert set(await _stream_ids(client, f"{prefix}:stream:fills")) == {f"exec-{i}" for i in range(5)}
    finally:
        await client.aclose()


async def test_a_redis_restart_between_two_sends_is_noticed_and_the_stream_refilled(
    redis_process: RedisProcess, tmp_path: Path
):
    """Redis went away and came back (empty) while the publisher had nothing to send: no send failed, the
    client reconnected on its own at the next one, and the fills sent before the outage were never put back
    (the fault matrix under load)."""
    prefix = "silent-restart"
    journal = Journal.open(tmp_path)
    journal.start()
    pub = Publisher(redis_process.url, prefix, journal=journal)
    pub.start()
    client = aioredis.Redis.from_url(redis_process.url)
    try:
        assert await pub.wait_connected(5)
        for i in range(3):
            fill = make_fill(i)
            seq = journal.record_fill(fill)
            assert seq is not None
            pub.publish_fill(seq, fill)

        async def on_stream(n: int) -> bool:
            return len(await _stream_ids(client, f"{prefix}:stream:fills")) == n

        await _wait_for(lambda: on_stream(3))
        await asyncio.to_thread(redis_process.stop)
        await asyncio.to_thread(redis_process.start)
        fill = make_fill(3)
        seq = journal.record_fill(fill)
        assert seq is not None
        pub.publish_fill(seq, fill)
        await _wait_for(lambda: on_stream(4))
        assert await _stream_ids(client, f"{prefix}:stream:fills") == [f"exec-{i}" for i in range(4)]  # in order
    finally:
        await client.aclose()
        await pub.stop()
        await journal.aclose()


async def _async(value: bool) -> bool:
    return value


async def test_redis_restart_mid_stream_loses_no_fill_and_buffers_alerts_within_bound(
    redis_process: RedisProcess, tmp_path: Path
):
    prefix = "restart"
    journal = Journal.open(tmp_path)
    journal.start()
    pub = Publisher(redis_process.url, prefix, journal=journal, alert_buffer=5)
    pub.start()
    n_fills = 0

    def fill_now() -> None:
        nonlocal n_fills
        fill = make_fill(n_fills)
        seq = journal.record_fill(fill)
        assert seq is not None
        pub.publish_fill(seq, fill)
        n_fills += 1

    try:
        assert await pub.wait_connected(5)
        for _ in range(10):
            fill_now()
            await asyncio.sleep(0.005)
        # the server goes away mid-run (and its data with it: --save "" means a restart starts empty,
        # the worst case: every fill must come back from the journal)
        await asyncio.to_thread(redis_process.stop)
        for i in range(20):
            fill_now()
            pub.publish_alert(Alert("outage_test", "warning", f"alert {i}"))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.3)
        assert not pub.connected
        assert pub.alerts_dropped == 15  # 20 alerts into a buffer of 5: oldest 15 dropped and counted
        await asyncio.to_thread(redis_process.start)
        for _ in range(10):
            fill_now()
            await asyncio.sleep(0.005)
        client = aioredis.Redis.from_url(redis_process.url)
        try:
            want = {f"exec-{i}" for i in range(n_fills)}

            async def all_fills_on_stream() -> bool:
                return set(await _stream_ids(client, f"{prefix}:stream:fills")) >= want

            await _wait_for(all_fills_on_stream)
            ids = await _stream_ids(client, f"{prefix}:stream:fills")
            assert set(ids) == want  # every fill, deduplicated by execution id
            alerts = [json.loads(f[b"data"]) for _, f in await client.xrange(f"{prefix}:stream:alerts")]
            assert [a["message"] for a in alerts] == [f"alert {i}" for i in range(15, 20)]
        finally:
            await client.aclose()
        assert pub.reconnects >= 1 or pub.fills_replayed > 0
    finally:
        await pub.stop()
        await journal.aclose()


async def test_publisher_resends_fills_journaled_while_it_was_not_running(redis_url: str, tmp_path: Path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    journal = Journal.open(tmp_path)
    journal.start()
    for i in range(7):  # e.g. the previous run crashed before publishing these
        journal.record_fill(make_fill(i))
    await journal.flush()
    pub = Publisher(redis_url, prefix, journal=journal)
    pub.start()
    client = aioredis.Redis.from_url(redis_url)
    try:

        async def seven() -> bool:
            return len(await _stream_ids(client, f"{prefix}:stream:fills")) == 7

        await _wait_for(seven)
        await pub.stop()
        # a second publisher on the same journal starts from the persisted cursor: no duplicates
        await journal.flush()
        pub2 = Publisher(redis_url, prefix, journal=journal)
        pub2.start()
        fill = make_fill(7)
        seq = journal.record_fill(fill)
        assert seq == 8
        pub2.publish_fill(seq, fill)

        async def eight() -> bool:
            return len(await _stream_ids(client, f"{prefix}:stream:fills")) == 8

        await _wait_for(eight)
        await pub2.stop()
        assert await _stream_ids(client, f"{prefix}:stream:fills") == [f"exec-{i}" for i in range(8)]
    finally:
        await pub.stop()
        await journal.aclose()
        await client.delete(f"{prefix}:stream:fills")
        await client.aclose()


async def test_queue_stays_bounded_when_redis_is_unreachable():
    pub = Publisher("redis://127.0.0.1:1/0", "down", queue_bound=16, alert_buffer=4)
    pub.start()
    try:
        for i in range(200):
            pub.publish_order(make_update("oe-1", f"o-{i}", "new"))  # type: ignore[arg-type]
            pub.publish_alert(Alert("a", "info", str(i)))
        assert pub.queue_depth <= 16
        await asyncio.sleep(0.1)
        assert pub.dropped["order"] > 0
        assert pub.alerts_dropped >= 196 - 16
        assert not pub.connected
        metrics = Metrics()
        pub.register_metrics(metrics)
        text = metrics.render()
        assert f"options_engine_redis_queue_depth {pub.queue_depth}" in text
        assert "options_engine_redis_connected 0" in text
        assert f'options_engine_redis_dropped_total{{type="order"}} {pub.dropped["order"]}' in text
    finally:
        await pub.stop(timeout_s=1)


async def test_secret_values_never_reach_redis_messages(redis_url: str, monkeypatch):
    secret = "s3cr3t-Value-That-Must-Not-Leak-0123456789"
    key_id = "PK" "ABCDEFGH0123456789"  # Alpaca key ids: PK/AK + 18
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    pub = Publisher(redis_url, prefix, redactor=Redactor([secret]))
    pub.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await pub.wait_connected(5)
        pub.publish_alert(
            Alert(
                "feed_failed",
                "error",
                f"auth failed for key {key_id} secret {secret}",
                {"detail": f"Authorization: {secret}"},
            )
        )

        async def on_stream() -> bool:
            return await client.xlen(f"{prefix}:stream:alerts") == 1

        await _wait_for(on_stream)
        raw = (await client.xrange(f"{prefix}:stream:alerts"))[0][1][b"data"].decode()
        assert secret not in raw and key_id not in raw
        assert "***" in json.loads(raw)["message"]
    finally:
        await pub.stop()
        await client.delete(f"{prefix}:stream:alerts")
        await client.aclose()


async def test_a_stalled_redis_never_blocks_the_loop_and_loses_no_fill(redis_process: RedisProcess, tmp_path: Path):
    journal = Journal.open(tmp_path)
    journal.start()
    pub = Publisher(redis_process.url, "stall", journal=journal)
    pub.start()
    metrics = Metrics()
    lag = LoopLagMonitor(metrics, interval_s=0.01)
    lag.start()
    try:
        assert await pub.wait_connected(5)
        assert redis_process.proc is not None
        redis_process.proc.send_signal(signal.SIGSTOP)  # the server hangs: accepts nothing, answers nothing
        worst_publish_s = 0.0
        for i in range(30):
            fill = make_fill(i)
            seq = journal.record_fill(fill)
            assert seq is not None
            t0 = time.perf_counter()
            pub.publish_fill(seq, fill)
            pub.publish_alert(Alert("stall_test", "info", str(i)))
            worst_publish_s = max(worst_publish_s, time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        assert worst_publish_s < 0.01
        assert metrics.loop_lag_hist.count > 50
        assert max(lag.last_lag_s, metrics.loop_lag_seconds.value) < 0.1
        slow = sum(metrics.loop_lag_hist.counts[metrics.loop_lag_hist.bounds.index(0.1) + 1 :])
        assert slow == 0  # not one loop-lag sample above 100 ms while Redis hung
        redis_process.proc.send_signal(signal.SIGCONT)
        client = aioredis.Redis.from_url(redis_process.url)
        try:

            async def all_there() -> bool:
                return set(await _stream_ids(client, "stall:stream:fills")) == {f"exec-{i}" for i in range(30)}

            await _wait_for(all_there, 15)
        finally:
            await client.aclose()
    finally:
        if redis_process.proc is not None:
            redis_process.proc.send_signal(signal.SIGCONT)
        await lag.stop()
        await pub.stop()
        await journal.aclose()


async def test_a_fill_reaches_the_stream_only_once_the_journal_committed_it(redis_url: str, tmp_path: Path):
    """The fault matrix's kill -9 loop once left a fill on the Redis stream that the journal never committed
    (sent from the queue ahead of the commit); the restart then journaled it under its activity id."""
    prefix = f"commit-{uuid.uuid4().hex[:8]}"
    journal = Journal.open(tmp_path)
    journal.start()
    writer_held = threading.Event()
    release = threading.Event()

    def hold(_conn: object) -> None:
        writer_held.set()
        release.wait(10)

    client = aioredis.Redis.from_url(redis_url)
    pub = Publisher(redis_url, prefix, journal=journal)
    pub.start()
    try:
        assert await pub.wait_connected(5)
        pub.publish_alert(Alert("breaker_tripped", "critical", "daily loss"))  # sent after the connect's replay
        await _wait_for(lambda: _async(bool(pub.published)))
        held = journal.call(hold)  # the writer thread is busy: what is queued after this is not committed
        await asyncio.to_thread(writer_held.wait, 5)
        fill = make_fill(0)
        seq = journal.record_fill(fill)
        assert seq is not None
        pub.publish_fill(seq, fill)
        await asyncio.sleep(0.5)
        assert await _stream_ids(client, f"{prefix}:stream:fills") == []
        release.set()
        await held
        await _wait_for(lambda: _async_ids(client, f"{prefix}:stream:fills", ["exec-0"]))
        assert pub.published == 2
    finally:
        release.set()
        await pub.stop()
        await journal.aclose()
        await client.delete(f"{prefix}:stream:fills", f"{prefix}:stream:alerts")
        await client.aclose()


async def _async_ids(client: aioredis.Redis, key: str, want: list[str]) -> bool:
    return await _stream_ids(client, key) == want
