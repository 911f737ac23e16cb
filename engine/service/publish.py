"""Redis publisher: fills, alerts, orders and Greeks out, behind a bounded queue.

The loop only appends to a bounded in-memory queue (``publish_*`` never awaits); one task drains it in
pipelined batches: ``PUBLISH <prefix>:{fills,alerts,orders,greeks}`` plus
``XADD <prefix>:stream:{fills,alerts}
MAXLEN ~ N``. A Redis stall or outage therefore never blocks trading.

During an outage the task reconnects with capped exponential backoff and jitter. Alerts are kept in a ring
buffer (oldest dropped and counted); orders and Greeks are dropped (counted; Greeks are latest-wins and
orders are journaled). Fills are never buffered here: they are in the journal with a sequence number, and
after every (re)connect the publisher re-sends every fill above its cursor (the last fill known to be on the
stream), so ``<prefix>:stream:fills`` ends up with every fill at least once; consumers deduplicate by
``execution_id``. Message schemas: docs/redis.md (``"v": 1``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from domain.orders import OrderFilled, OrderUpdated
from domain.views import PortfolioGreeks
from engine.kernel.alerts import Alert
from engine.service.background import BackgroundTask
from engine.service.journal import JournalFill
from engine.service.logging import Redactor
from engine.service.metrics import Metrics

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
FILL_CURSOR_KEY = "redis_fill_cursor"
_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_enc = msgspec.json.Encoder()


class FillSource(Protocol):
    """What the publisher needs from the journal to re-send fills after an outage."""

    def fills_after(self, seq: int, limit: int = ...) -> Awaitable[list[JournalFill]]: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def read_meta(self, key: str) -> str | None: ...


def iso_ts(ts_ns: int) -> str:
    """ISO-8601 UTC with microseconds and a ``Z``."""
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff(initial_s: float = 0.05, cap_s: float = 5.0, factor: float = 2.0) -> Iterator[float]:
    """Delays before each reconnect attempt: exponential, capped, with full jitter on the upper half."""
    delay = initial_s
    while True:
        yield delay / 2 + random.random() * delay / 2
        delay = min(cap_s, delay * factor)


# ---------------------------------------------------------------------------------------------------
# Message builders (pure; the schemas in docs/redis.md)


def _greeks(g: PortfolioGreeks | None) -> dict[str, float] | None:
    return None if g is None else msgspec.structs.asdict(g)


def fill_message(
    seq: int, fill: OrderFilled, before: PortfolioGreeks | None, after: PortfolioGreeks | None
) -> dict[str, Any]:
    """The ``fill`` message; identical whenever rebuilt from the journal (ts is the fill's event time)."""
    return {
        "v": SCHEMA_VERSION,
        "type": "fill",
        "ts": iso_ts(fill.ts_event_ns),
        "seq": seq,
        "execution_id": fill.execution_id,
        "order_id": fill.order_id,
        "client_order_id": fill.client_order_id,
        "parent_order_id": fill.parent_order_id,
        "symbol": fill.symbol,
        "asset_class": str(fill.asset_class),
        "side": str(fill.side),
        "qty": fill.qty,
        "price": fill.price,
        "parent_net_price": fill.parent_net_price,
        "position_qty_after": fill.position_qty_after,
        "strategy_id": fill.strategy_id,
        "structure_id": fill.structure_id,
        "intent_id": fill.intent_id,
        "greeks_before": _greeks(before),
        "greeks_after": _greeks(after),
    }


def alert_message(seq: int, alert: Alert) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "alert",
        "ts": iso_ts(alert.ts_ns),
        "seq": seq,
        "alert_id": alert.alert_id,
        "code": alert.code,
        "severity": alert.severity,
        "message": alert.message,
        "details": alert.details,
    }


def order_message(seq: int, u: OrderUpdated) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "order",
        "ts": iso_ts(u.ts_event_ns),
        "seq": seq,
        "event_id": f"{u.order_id}:{u.status}:{u.filled_qty:g}",
        "order_id": u.order_id,
        "client_order_id": u.client_order_id,
        "status": str(u.status),
        "qty": u.qty,
        "filled_qty": u.filled_qty,
        "filled_avg_price": u.filled_avg_price,
        "limit_price": u.limit_price,
        "replaced_by": u.replaced_by,
        "reason": u.reason,
        "strategy_id": u.strategy_id,
        "structure_id": u.structure_id,
        "intent_id": u.intent_id,
    }


def greeks_message(
    seq: int, ts_ns: int, total: PortfolioGreeks, by_underlying: Mapping[str, PortfolioGreeks]
) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "greeks",
        "ts": iso_ts(ts_ns),
        "seq": seq,
        "total": _greeks(total),
        "by_underlying": {u: _greeks(g) for u, g in by_underlying.items()},
    }


# ---------------------------------------------------------------------------------------------------


class Publisher:
    """The publisher task and its queue. Construct, ``start()``, call ``publish_*``, ``await stop()``."""

    def __init__(
        self,
        url: str,
        prefix: str = "options-engine",
        *,
        stream_maxlen: int = 100_000,
        queue_bound: int = 10_000,
        alert_buffer: int = 1_000,
        journal: FillSource | None = None,
        redactor: Redactor | None = None,
        batch_max: int = 256,
        client_factory: Callable[[], aioredis.Redis] | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.stream_maxlen = stream_maxlen
        self.queue_bound = queue_bound
        self._journal = journal
        self._redactor = redactor or Redactor()
        self._batch_max = batch_max
        self._client_factory = client_factory or self._default_client
        self.channel = {k: f"{prefix}:{k}" for k in ("fills", "alerts", "orders", "greeks")}
        self.stream = {k: f"{prefix}:stream:{k}" for k in ("fills", "alerts")}
        # queue items: (kind, payload-builder args); built and encoded in the task, not on the hot path
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._alert_buffer: collections.deque[Alert] = collections.deque(maxlen=alert_buffer)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._connected = asyncio.Event()
        self._client: aioredis.Redis | None = None
        self._loop = BackgroundTask("redis-publisher", self._run)
        self._closing = False
        self._seq = 0
        self._fill_cursor = 0
        self._fills_pending_replay = True  # a (re)connect re-sends every fill above the cursor
        self._fills_journaled = False  # a fill was journaled: send it once its commit is done
        # counters (read by engine/service/metrics.py and /status)
        self.published = 0
        self.reconnects = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.alerts_dropped = 0
        self.fills_replayed = 0
        if journal is not None:
            self._fill_cursor = int(journal.read_meta(FILL_CURSOR_KEY) or 0)

    def _default_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
        )

    # -- producer side (sync, never blocks) --------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _put(self, kind: str, item: Any) -> None:
        if len(self._queue) >= self.queue_bound:
            old_kind, old = self._queue.popleft()
            self._drop(old_kind, old)
        self._queue.append((kind, item))
        self._wake.set()

    def _drop(self, kind: str, item: Any) -> None:
        if kind == "alert":
            self._buffer_alert(item)
        elif kind == "fill":
            self._fills_pending_replay = True  # the journal has it; a replay will send it
        else:
            self.dropped[kind] += 1

    def _buffer_alert(self, alert: Alert) -> None:
        if len(self._alert_buffer) == self._alert_buffer.maxlen:
            self.alerts_dropped += 1
        self._alert_buffer.append(alert)

    def publish_fill(
        self,
        seq: int,
        fill: OrderFilled,
        before: PortfolioGreeks | None = None,
        after: PortfolioGreeks | None = None,
    ) -> None:
        """A fill was journaled (``seq`` from ``Journal.record_fill``). With a journal the fill goes on the stream
        from its committed row, never ahead of the commit: a kill -9 between a send and the commit would leave
        Redis with a fill the restart journals under another id. Without one it is queued as it is."""
        if self._journal is not None:
            self._fills_journaled = True
            self._wake.set()
            return
        self._put("fill", (seq, fill, before, after))

    def publish_alert(self, alert: Alert) -> None:
        self._put("alert", alert)

    def publish_order(self, update: OrderUpdated) -> None:
        self._put("order", update)

    def publish_greeks(self, ts_ns: int, total: PortfolioGreeks, by_underlying: Mapping[str, PortfolioGreeks]) -> None:
        self._put("greeks", (ts_ns, total, dict(by_underlying)))

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        return self._loop.start()

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once connected (READY=1 waits for this when Redis is enabled)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Drain the queue (bounded by ``timeout_s``), then close the connection."""
        self._closing = True
        self._stopping.set()
        self._wake.set()
        if not await self._loop.join(timeout_s):
            log.warning("redis_publisher_drain_timeout", queued=len(self._queue))
        await self._loop.stop()
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            with contextlib.suppress(Exception):  # closing a dead connection may raise anything
                await client.aclose()

    # -- the task -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delays = backoff()
        while True:
            if self._client is None:
                # Stopping while disconnected: one more attempt, so a Redis that came back during the back-off
                # still gets the fills journaled meanwhile; if it is still away they stay journaled / counted.
                if not await self._connect():
                    if self._closing:
                        return
                    self._shed_while_down()
                    await self._sleep_or_stop(next(delays))
                    continue
                delays = backoff()
            try:
                if self._alert_buffer:
                    await self._send_buffered_alerts()
                if self._fills_pending_replay or self._fills_journaled:
                    await self._send_journaled_fills()
                if self._queue:
                    await self._send_batch()
                    continue
            except _REDIS_ERRORS as exc:
                log.warning("redis_connection_lost", error=str(exc))
                self.reconnects += 1
                self._fills_pending_replay = True
                await self._close_client()
                continue
            except sqlite3.Error as exc:  # the journal's commit failed: its fills are not durable, so not sent
                log.error("redis_fills_read_failed", error=str(exc))
                self._fills_pending_replay = True
                await self._sleep_or_stop(1.0)
                if self._closing:
                    return
                continue
            if self._fills_journaled:  # journaled while the last ones were being sent
                continue
            if self._closing:
                return
            self._wake.clear()
            if not self._queue:
                await self._wake.wait()

    async def _sleep_or_stop(self, delay_s: float) -> None:
        """Back off before the next connect attempt; only ``stop()`` cuts it short (publishes do not)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)

    async def _connect(self) -> bool:
        client = self._client_factory()
        try:
            await client.ping()
        except _REDIS_ERRORS as exc:
            await client.aclose()
            log.debug("redis_connect_failed", error=str(exc))
            return False
        self._client = client
        self._connected.set()
        log.info("redis_connected", url=self._redactor.redact_str(self.url))
        self._fills_pending_replay = True
        try:
            await self._rewind_to_stream()
        except _REDIS_ERRORS:
            await self._close_client()
            return False
        return True

    async def _rewind_to_stream(self) -> bool:
        """Move the cursor back if the fills stream lost entries (Redis restarted without persistence); whether
        it moved."""
        assert self._client is not None
        last = await self._client.xrevrange(self.stream["fills"], count=1)
        stream_seq = int((last[0][1] or {}).get(b"seq", 0)) if last else 0
        if stream_seq < self._fill_cursor:
            log.warning("redis_fills_stream_behind", stream_seq=stream_seq, journal_cursor=self._fill_cursor)
            self._fill_cursor = stream_seq
            return True
        return False

    def _shed_while_down(self) -> None:
        """While disconnected keep the queue short: alerts to their ring buffer, fills to the journal."""
        while self._queue:
            kind, item = self._queue.popleft()
            self._drop(kind, item)

    def _encode(self, message: dict[str, Any]) -> bytes:
        text = _enc.encode(message).decode()
        return self._redactor.redact_str(text).encode()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send_buffered_alerts(self) -> None:
        assert self._client is not None
        alerts = list(self._alert_buffer)
        pipe = self._client.pipeline(transaction=False)
        for a in alerts:
            self._add_alert(pipe, a)
        await pipe.execute()
        for _ in alerts:
            self._alert_buffer.popleft()
        self.published += len(alerts)

    def _add_alert(self, pipe: Any, alert: Alert) -> None:
        data = self._encode(alert_message(self._next_seq(), alert))
        pipe.publish(self.channel["alerts"], data)
        pipe.xadd(
            self.stream["alerts"],
            {"id": alert.alert_id, "type": "alert", "data": data},
            maxlen=self.stream_maxlen,
            approximate=True,
        )

    def _add_fill(
        self,
        pipe: Any,
        seq: int,
        fill: OrderFilled,
        before: PortfolioGreeks | None,
        after: PortfolioGreeks | None,
    ) -> None:
        data = self._encode(fill_message(seq, fill, before, after))
        pipe.publish(self.channel["fills"], data)
        pipe.xadd(
            self.stream["fills"],
            {"id": fill.execution_id, "type": "fill", "seq": seq, "data": data},
            maxlen=self.stream_maxlen,
            approximate=True,
        )

    async def _send_journaled_fills(self) -> None:
        """Put every committed fill above the cursor on the stream: new ones, and after an outage the lost ones."""
        replay, self._fills_journaled = self._fills_pending_replay, False
        if self._journal is None:
            self._fills_pending_replay = False
            return
        assert self._client is not None
        # A Redis that restarted while nothing was being sent raises no error (the client reconnects on its own),
        # so check the stream before new fills go on it, and put what it lost back in order first (the fault
        # matrix under load: 109 fills missing).
        if not replay and self._fill_cursor and await self._rewind_to_stream():
            replay = self._fills_pending_replay = True
        while True:
            fills = await self._journal.fills_after(self._fill_cursor, 1000)
            if not fills:
                break
            pipe = self._client.pipeline(transaction=False)
            for f in fills:
                self._add_fill(pipe, f.seq, f.fill, f.greeks_before, f.greeks_after)
            await pipe.execute()
            self.fills_replayed += len(fills) if replay else 0
            self.published += len(fills)
            self._advance_cursor(fills[-1].seq)
        self._fills_pending_replay = False

    def _advance_cursor(self, seq: int) -> None:
        if seq > self._fill_cursor:
            self._fill_cursor = seq
            if self._journal is not None:
                self._journal.set_meta(FILL_CURSOR_KEY, str(seq))

    async def _send_batch(self) -> None:
        assert self._client is not None
        batch = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
        pipe = self._client.pipeline(transaction=False)
        max_fill = 0
        for kind, item in batch:
            if kind == "fill":  # only without a journal (publish_fill)
                seq, fill, before, after = item
                self._add_fill(pipe, seq, fill, before, after)
                max_fill = seq
            elif kind == "alert":
                self._add_alert(pipe, item)
            elif kind == "order":
                pipe.publish(self.channel["orders"], self._encode(order_message(self._next_seq(), item)))
            else:
                ts_ns, total, by_u = item
                pipe.publish(self.channel["greeks"], self._encode(greeks_message(self._next_seq(), ts_ns, total, by_u)))
        try:
            await pipe.execute()
        except _REDIS_ERRORS:
            for kind, item in batch:  # alerts go back to their buffer; fills come back via replay
                if kind == "alert":
                    self._buffer_alert(item)
                elif kind != "fill":
                    self.dropped[kind] += 1
            raise
        self.published += len(batch)
        if max_fill:
            self._advance_cursor(max_fill)

    def register_metrics(self, metrics: Metrics) -> None:
        """Expose queue depth, connection state and loss counters on ``/metrics`` (read at scrape time).

        The drop counts start at 0 for both droppable types, so ``increase()`` sees the first drop."""
        ns = "options_engine_redis"
        metrics.gauge(f"{ns}_queue_depth", "Messages waiting for Redis.", lambda: len(self._queue))
        metrics.gauge(f"{ns}_connected", "1 while connected to Redis.", lambda: float(self.connected))
        metrics.gauge(f"{ns}_published_total", "Messages sent to Redis.", lambda: self.published)
        metrics.gauge(f"{ns}_reconnects_total", "Connections lost.", lambda: self.reconnects)
        metrics.gauge(f"{ns}_alerts_buffered", "Alerts held during an outage.", lambda: len(self._alert_buffer))
        metrics.gauge(
            f"{ns}_alerts_dropped_total", "Alerts dropped from a full outage buffer.", lambda: self.alerts_dropped
        )
        metrics.labelled_gauge(
            f"{ns}_dropped_total",
            "Orders/Greeks messages dropped.",
            "type",
            lambda: {"order": 0.0, "greeks": 0.0} | {k: float(v) for k, v in self.dropped.items()},
        )

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "queue_depth": len(self._queue),
            "published": self.published,
            "reconnects": self.reconnects,
            "dropped": dict(self.dropped),
            "alerts_buffered": len(self._alert_buffer),
            "alerts_dropped": self.alerts_dropped,
            "fills_replayed": self.fills_replayed,
            "fill_cursor": self._fill_cursor,
            "ts": iso_ts(time.time_ns()),
        }
