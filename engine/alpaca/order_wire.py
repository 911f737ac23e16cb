"""Kept-alive HTTP/1.1 connections for order writes: the request is on the socket when ``send`` returns.

``OrderWire`` holds a few connections to the trading host, opened ahead of use (``warm``) and opened again
in the background when one closes, with backoff while the host cannot be reached. ``send`` writes the whole
request (``engine.alpaca.http1``) into an idle connection's transport at once, on the caller's stack, and
returns a future for the response; with no idle connection it returns None and the caller uses its other
client. One request is in flight per connection (no pipelining).

A request whose response does not arrive whole (the connection closed or reset, no answer within
``timeout_s``, bytes that are not HTTP) fails its future with :class:`WireDropped`: it may have reached the
server. Such a connection is closed, never reused. A connection idle for ``max_idle_s`` is closed and
replaced, so a request never goes out on one the server is about to drop for idleness.

TLS (``https://``) runs on asyncio's SSL transport, whose ``write`` encrypts and hands the bytes to the
socket before it returns. The key fields are sent in every request and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Iterator

import structlog

from engine.alpaca.feeds.backoff import BackoffConfig, backoff
from engine.alpaca.http1 import Malformed, RequestHead, Response, ResponseParser, origin

log = structlog.get_logger(__name__)

RECONNECT = BackoffConfig(initial_s=0.05, max_s=5.0)
"""Delays between attempts to open a connection the host refused or did not answer."""

OnWritten = Callable[[str, str, bytes, int], None]
"""Called right after a request went to the transport with (method, path, body, wall ns just before the write)."""


class WireDropped(Exception):
    """No complete response to a request that was written: it may have reached the server."""


class _Connection(asyncio.Protocol):
    """One connection: at most one request in flight; its response parsed as it arrives."""

    def __init__(self, wire: OrderWire) -> None:
        self.wire = wire
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.expiry: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop, timeout_s: float) -> asyncio.Future[Response]:
        """Write ``data`` now; the future gets the response."""
        assert self.transport is not None and self.waiter is None
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        waiter = self.waiter = loop.create_future()
        self.parser = ResponseParser()
        self.transport.write(data)
        self.deadline = loop.call_later(timeout_s, self._timed_out, timeout_s)
        return waiter

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            self._fail(Malformed(f"{len(data)} bytes while no request was in flight"))
            return
        event = self.parser.feed(data)
        if event is not None:
            self._end(event)

    def eof_received(self) -> bool:
        return False  # close: a response whose end is the close is complete in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.expiry is not None:
            self.expiry.cancel()
        if self.parser is not None:
            self._end(self.parser.eof() if exc is None else Malformed(f"connection lost: {exc!r}"))
        self.wire._lost(self)

    def expire(self) -> None:
        """Idle for ``max_idle_s``: close before the server does (never while a request is in flight)."""
        self.expiry = None
        if self.waiter is None and self.transport is not None:
            self.transport.close()

    def _timed_out(self, timeout_s: float) -> None:
        self.deadline = None
        self._fail(Malformed(f"no response within {timeout_s:g} s"))

    def _fail(self, event: Malformed) -> None:
        self._end(event)
        if self.transport is not None:
            self.transport.abort()

    def _end(self, event: Response | Malformed) -> None:
        waiter = self.waiter
        self.waiter = self.parser = None
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if isinstance(event, Malformed):
            if self.transport is not None:
                self.transport.abort()
            if waiter is not None and not waiter.done():
                self.wire.counters["dropped"] += 1
                log.warning("order_wire_dropped", reason=event.reason)
                waiter.set_exception(WireDropped(event.reason))
            return
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
        if event.keep_alive and not self.closed:
            self.wire._idle_again(self)
        elif self.transport is not None:
            self.transport.close()


class OrderWire:
    """A small pool of kept-alive connections to one origin; ``send`` writes on an idle one or returns None."""

    def __init__(
        self,
        url: str,
        fields: dict[str, str],
        *,
        connections: int = 4,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_idle_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = origin(url)
        self.head = RequestHead(url, fields)
        self.size = connections
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle_s = max_idle_s
        self._ssl = ssl_context if ssl_context is not None or not self.origin.tls else _client_context()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.on_written: OnWritten | None = None
        self.counters = {"sent": 0, "busy": 0, "dropped": 0, "connects": 0, "connect_failures": 0}

    def __repr__(self) -> str:
        return f"OrderWire({self.origin.host}:{self.origin.port}, open={len(self._open)}, idle={len(self._idle)})"

    @property
    def idle(self) -> int:
        """Connections ready for a request now."""
        return len(self._idle)

    def warm(self) -> None:
        """Open the connections (in the background) if they are not open or opening; call from the loop."""
        if self._closed:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        for _ in range(self.size - len(self._open) - self._connecting):
            self._connecting += 1  # counted from now: a second call before the task runs must not open another
            task = self._loop.create_task(self._connect(), name="order-wire-connect")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def send(self, method: str, path: str, body: bytes = b"") -> asyncio.Future[Response] | None:
        """Write the request on an idle connection and return the response's future; None when none is idle."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            assert self._loop is not None
            data = self.head.build(method, path, body)
            hook, now = self.on_written, time.time_ns()  # the moment the bytes go to the transport
            waiter = conn.send(data, self._loop, self.timeout_s)
            if hook is not None:
                hook(method, path, body, now)
            self.counters["sent"] += 1
            return waiter
        self.counters["busy"] += 1
        self.warm()
        return None

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until a connection is idle (tests, start-up); False after ``timeout_s``."""
        self.warm()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not self._idle:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def close(self) -> None:
        """Close every connection; a request in flight fails with ``WireDropped``."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.abort()
        self._idle.clear()
        await asyncio.sleep(0)  # connection_lost runs on the next iteration

    # -- the pool --------------------------------------------------------------------------------

    def _idle_again(self, conn: _Connection) -> None:
        assert self._loop is not None
        self._idle.append(conn)
        conn.expiry = self._loop.call_later(self.max_idle_s, conn.expire)

    def _lost(self, conn: _Connection) -> None:
        self._open.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        if not self._closed:
            self.warm()

    async def _connect(self) -> None:
        assert self._loop is not None
        loop = self._loop
        where = self.origin
        delays: Iterator[float] = backoff(RECONNECT)
        try:
            while not self._closed:
                try:
                    _, conn = await asyncio.wait_for(
                        loop.create_connection(lambda: _Connection(self), where.host, where.port, ssl=self._ssl,
                                               server_hostname=where.host if self._ssl else None),
                        self.connect_timeout_s)
                except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                    self.counters["connect_failures"] += 1
                    log.warning("order_wire_connect_failed", host=where.host, port=where.port,
                                error=type(exc).__name__)
                    await asyncio.sleep(next(delays))
                    continue
                if conn.closed:
                    continue
                if self._closed:
                    assert conn.transport is not None
                    conn.transport.abort()
                    return
                self.counters["connects"] += 1
                self._open.add(conn)
                self._idle_again(conn)
                return
        finally:
            self._connecting -= 1


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
