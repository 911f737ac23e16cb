"""The asyncio client of a market-data stream (options or stocks): protocol + reconnects + mute detector.

Each data frame is decoded by the protocol and handed synchronously, with its arrival time, to ``on_batch``
(the kernel's apply and reprice), so nothing awaits between decode and reprice. The mute-socket detector: if
no market data arrives for ``mute_timeout_s`` while ``market_open`` says the market trades, the feed publishes
``FeedStale`` and reconnects (a connected-but-silent socket is a dead feed). After a reconnect, the first data
frame reports the hole as ``GapDetected`` (from the last data before the drop to the first after it); the
book's per-row timestamps make sure no quote is applied twice across the gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Required, TypedDict

import structlog

from engine.alpaca.feeds.backoff import Reaction, classify_server_error
from engine.alpaca.feeds.connection import FatalFeedError, FeedConfig, FeedConnection, Reconnect
from engine.alpaca.feeds.marketdata import (
    Authenticated,
    Greeted,
    Malformed,
    MarketDataProtocol,
    ServerError,
    SubscriptionAck,
)
from engine.kernel.events import FeedError, FeedName, FeedStale, GapDetected, SubscriptionChanged
from engine.kernel.market_data import DataBatch, OnBatch

log = structlog.get_logger(__name__)


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`MarketDataClient` the per-stream factories pass through."""

    on_batch: Required[OnBatch]
    publish: Required[Callable[[Any], None]]
    config: FeedConfig
    market_open: Callable[[], bool]
    on_data_time: Callable[[int], None] | None
    now_ns: Callable[[], int]


class MarketDataClient(FeedConnection):
    """One market-data websocket kept alive; frames go to ``on_batch``."""

    def __init__(
        self,
        feed: FeedName,
        url: str,
        protocol: MarketDataProtocol,
        *,
        on_batch: OnBatch,
        publish: Callable[[Any], None],
        config: FeedConfig = FeedConfig(),
        market_open: Callable[[], bool] = lambda: True,
        on_data_time: Callable[[int], None] | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        rng: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            url, publish=publish, config=config, headers={"Content-Type": "application/msgpack"}, now_ns=now_ns, rng=rng
        )
        self.feed = feed
        self.protocol = protocol
        self._on_batch = on_batch
        self._on_data_time = on_data_time
        self._market_open = market_open
        self._last_data_mono = 0.0
        self.frame_arrival_ns = 0
        self._connected_mono = 0.0
        self.last_data_ts_ns = 0
        self._gap_from_ns = 0
        self.stale_events = 0
        self.gaps = 0
        self.errors: dict[int, int] = {}

    # --- subscription ------------------------------------------------------------------------

    @property
    def last_data_mono(self) -> float:
        """Monotonic time the last data frame arrived (0 before the first)."""
        return self._last_data_mono

    def set_subscription(self, quotes: Iterable[str], trades: Iterable[str] = ()) -> tuple[int, int]:
        """Change the desired sets; the diff is sent at once when connected (else at the next auth)."""
        added_removed = self.protocol.set_subscription(quotes, trades)
        ws = self._ws
        if ws is not None:
            pending = self.protocol.data_to_send()
            if pending:
                self._spawn(self._send_all(ws, pending))
        return added_removed

    async def _send_all(self, ws: Any, frames: list[bytes]) -> None:
        for f in frames:
            await ws.send(f)

    # --- hooks -------------------------------------------------------------------------------

    @staticmethod
    def _mono() -> float:
        return time.monotonic()

    def _on_connect(self) -> None:
        self.protocol.connection_made()
        self._connected_mono = self._last_data_mono = self._mono()

    def _outbox(self) -> list[bytes]:
        return self.protocol.data_to_send()

    def _recv_timeout(self) -> float | None:
        if not self.connected.is_set():
            return max(0.001, self._connected_mono + self.config.handshake_timeout_s - self._mono())
        mute = self.config.mute_timeout_s
        if mute is None or not (self.protocol.quotes or self.protocol.trades):
            return None  # nothing subscribed: silence is expected
        return max(0.001, self._last_data_mono + mute - self._mono())

    def _on_recv_timeout(self) -> None:
        if not self.connected.is_set():
            raise Reconnect("handshake timeout")
        if not self._market_open():
            self._last_data_mono = self._mono()  # quiet is normal while closed; check again later
            return
        silent = self._mono() - self._last_data_mono
        self.stale_events += 1
        now = self._now_ns()
        self._publish(FeedStale(self.feed, silent, now, now))
        log.warning("feed_stale", feed=self.feed, silent_s=round(silent, 3))
        raise Reconnect(f"no market data for {silent:.1f}s")

    def _on_disconnect(self, now_ns: int) -> None:
        if self.last_data_ts_ns:
            self._gap_from_ns = self.last_data_ts_ns

    def _on_frame(self, frame: bytes | str) -> None:
        self.frame_arrival_ns = time.time_ns()  # tick-to-order latency starts here, before decoding
        for ev in self.protocol.receive(frame):
            if isinstance(ev, DataBatch):
                self._on_data(ev)
            elif isinstance(ev, Authenticated):
                self._session_established()
            elif isinstance(ev, ServerError):
                self._on_server_error(ev)
            elif isinstance(ev, SubscriptionAck):
                now = self._now_ns()
                self._publish(SubscriptionChanged(self.feed, len(ev.quotes), len(ev.trades), now, now))
            elif isinstance(ev, Malformed):
                now = self._now_ns()
                self._publish(FeedError(self.feed, 0, ev.reason, now, now))
            elif isinstance(ev, Greeted):
                pass

    def _on_data(self, batch: DataBatch) -> None:
        self._last_data_mono = self._mono()
        self._on_batch(batch, self.frame_arrival_ns)  # decode -> apply -> reprice -> publish, no await in between
        newest = batch.last_ts_ns
        # A server that replays what we already hold is not closing the gap yet: wait for newer data.
        if self._gap_from_ns and newest > self._gap_from_ns:
            self.gaps += 1
            now = self._now_ns()
            self._publish(
                GapDetected(
                    self.feed, self._gap_from_ns, newest, "reconnected; messages in between were not received", now, now
                )
            )
            self._gap_from_ns = 0
        if newest > self.last_data_ts_ns:
            self.last_data_ts_ns = newest
            if self._on_data_time is not None:
                self._on_data_time(newest)

    def _on_server_error(self, ev: ServerError) -> None:
        self.errors[ev.code] = self.errors.get(ev.code, 0) + 1
        reaction, meaning = classify_server_error(ev.code)
        now = self._now_ns()
        self._publish(FeedError(self.feed, ev.code, f"{ev.message} ({meaning})", now, now))
        if reaction is Reaction.FATAL:
            self.protocol.fail()
            raise FatalFeedError(f"{self.feed} feed: server error {ev.code} {ev.message!r}: {meaning}", ev.code)
        if reaction in (Reaction.RETRY, Reaction.RETRY_SLOW):
            raise Reconnect(f"server error {ev.code} {ev.message}", reaction)
        log.warning("feed_server_error", feed=self.feed, code=ev.code, message=ev.message)
