"""The asyncio side of a feed: one websocket at a time, reconnected with backoff, bytes to the protocol.

``FeedConnection.run()`` connects, lets the subclass's sans-I/O protocol speak (its outbox is flushed
after every frame), and on any failure publishes ``FeedDisconnected``, waits the backoff delay and
connects again; a protocol replays its handshake and full subscription on each connection. A fatal
reaction (bad keys, feed not in plan) publishes ``FeedFailed`` and ends ``run()``.

The subclass implements ``_on_frame(frame)``; it is synchronous so that decode -> apply -> reprice
-> publish happens without an await in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from engine.alpaca.feeds.backoff import BackoffConfig, Reaction, backoff, classify_exception
from engine.kernel.events import FeedConnected, FeedDisconnected, FeedFailed, FeedName

log = structlog.get_logger(__name__)


class FeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Connection settings of one feed (all times in seconds)."""

    mute_timeout_s: float | None = 15.0
    """No market data for this long while the market is open -> FeedStale + reconnect (None: off)."""
    handshake_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    max_frame_bytes: int = 8 * 1024 * 1024
    compression: bool = False
    """Offer permessage-deflate (less bandwidth, more CPU per frame)."""
    backoff: BackoffConfig = BackoffConfig()


class Reconnect(Exception):
    """Drop this socket and connect again (with ``reaction`` deciding the delay)."""

    def __init__(self, reason: str, reaction: Reaction = Reaction.RETRY) -> None:
        super().__init__(reason)
        self.reaction = reaction


class FatalFeedError(Exception):
    """The feed cannot work with this configuration; ``code`` is the server's code (0 if none)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class FeedConnection:
    """Reconnect loop around a websocket; subclasses own the protocol and handle frames."""

    feed: FeedName

    def __init__(
        self,
        url: str,
        *,
        publish: Callable[[Any], None],
        config: FeedConfig = FeedConfig(),
        headers: dict[str, str] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.url = url
        self.config = config
        self._publish = publish
        self._headers = headers or {}
        self._now_ns = now_ns
        self._rng = rng
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.connects = 0
        self.attempts = 0
        self.failure: FatalFeedError | None = None
        self._backoff: Iterator[float] = self._new_backoff()
        self._background: set[asyncio.Future[Any]] = set()
        self.on_raw_frame: Callable[[bytes | str], None] | None = None
        self.after_frame: Callable[[], bool] | None = None
        """Asked after each frame: True (the frame started an order) yields the loop before the next frame."""
        """Tap called with every received frame before it is decoded (the recorder; None: off)."""

    def _new_backoff(self) -> Iterator[float]:
        if self._rng is None:
            return backoff(self.config.backoff)
        return backoff(self.config.backoff, self._rng)

    # --- life-cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve until ``stop()`` or a fatal error (then ``self.failure`` is set)."""
        while not self._stopping:
            self.attempts += 1
            reaction, reason = Reaction.RETRY, ""
            try:
                async with connect(
                    self.url,
                    additional_headers=self._headers,
                    compression="deflate" if self.config.compression else None,
                    open_timeout=self.config.open_timeout_s,
                    ping_interval=self.config.ping_interval_s,
                    ping_timeout=self.config.ping_timeout_s,
                    max_size=self.config.max_frame_bytes,
                    close_timeout=2,
                ) as ws:
                    self._ws = ws
                    await self._serve(ws)
                reason = "closed"
            except FatalFeedError as exc:
                self._fail(exc)
                return
            except Reconnect as exc:
                reaction, reason = exc.reaction, str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reaction = classify_exception(exc)
                reason = f"{type(exc).__name__}: {exc}"
                if reaction is Reaction.FATAL:
                    self._fail(FatalFeedError(f"{self.feed} feed refused: {reason}"))
                    return
            finally:
                self._ws = None
                self.connected.clear()
            if self._stopping:
                break
            delay = next(self._backoff)
            if reaction is Reaction.RETRY_SLOW:
                delay = max(delay, self.config.backoff.connection_limit_s)
            now = self._now_ns()
            self._publish(FeedDisconnected(self.feed, reason, delay, now, now))
            log.warning("feed_disconnected", feed=self.feed, reason=reason, retry_in_s=round(delay, 3))
            self._on_disconnect(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def stop(self) -> None:
        """Ask ``run()`` to close the socket and return."""
        self._stopping = True
        self._wake.set()
        if self._ws is not None:
            self._spawn(self._ws.close())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a small side task (a close, an out-of-band send), keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _serve(self, ws: ClientConnection) -> None:
        self._on_connect()
        await self._flush(ws)
        while True:
            try:
                # asyncio.timeout, not wait_for: no extra task per frame (recv is safe to cancel).
                async with asyncio.timeout(self._recv_timeout()):
                    frame = await ws.recv()
            except TimeoutError:
                self._on_recv_timeout()
                continue
            except ConnectionClosed as exc:
                raise Reconnect(f"connection closed: {exc}") from exc
            if self.on_raw_frame is not None:
                self.on_raw_frame(frame)
            self._on_frame(frame)
            outbox = self._outbox()
            if outbox:
                for message in outbox:
                    await ws.send(message)
            if self.after_frame is not None and self.after_frame():
                # Let the loop send what this frame started before the next buffered frame: recv() does not
                # yield while frames are queued. Two iterations, because an order's POST needs two (the
                # router's task, then aiohttp's body-writer task on Python < 3.12).
                await asyncio.sleep(0)
                await asyncio.sleep(0)

    async def _flush(self, ws: ClientConnection) -> None:
        for message in self._outbox():
            await ws.send(message)

    def _session_established(self) -> None:
        """Subclasses call this once the handshake completed (backoff resets, FeedConnected goes out)."""
        self.connects += 1
        self._backoff = self._new_backoff()
        self.connected.set()
        now = self._now_ns()
        self._publish(FeedConnected(self.feed, self.url, self.attempts, now, now))
        log.info("feed_connected", feed=self.feed, url=self.url, attempt=self.attempts)

    def _fail(self, exc: FatalFeedError) -> None:
        self.failure = exc
        now = self._now_ns()
        self._publish(FeedFailed(self.feed, exc.code, str(exc), now, now))
        log.error("feed_failed", feed=self.feed, code=exc.code, message=str(exc))

    # --- hooks -------------------------------------------------------------------------------

    def _on_connect(self) -> None:
        raise NotImplementedError

    def _outbox(self) -> list[bytes] | list[str]:
        raise NotImplementedError

    def _on_frame(self, frame: bytes | str) -> None:
        raise NotImplementedError

    def _recv_timeout(self) -> float | None:
        return None

    def _on_recv_timeout(self) -> None:
        """Called when ``_recv_timeout`` elapsed without a frame; raise Reconnect to drop the socket."""

    def _on_disconnect(self, now_ns: int) -> None:
        """Called after a socket is gone (before the backoff wait)."""
