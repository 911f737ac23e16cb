"""The trading-stream client: ``trade_updates`` kept alive, each update handed to ``on_update`` as the kernel's
``OrderEvent`` (translated by ``engine.alpaca.decode``).

Trade updates are few, so there is no mute detector; liveness comes from websocket pings. After a
reconnect, updates sent while we were away are lost on this channel: the client publishes
``GapDetected(feed="trading")`` so the router reconciles open orders over REST (the order state
machine turns whatever the poll reveals into exact fills). Refused credentials are fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from engine.alpaca.decode import order_event
from engine.alpaca.feeds.connection import FatalFeedError, FeedConfig, FeedConnection, Reconnect
from engine.alpaca.feeds.trading.protocol import (
    Authorized,
    AuthShape,
    Listening,
    Malformed,
    StreamError,
    TradeUpdateReceived,
    TradingProtocol,
    Unauthorized,
)
from engine.kernel.events import FeedError, FeedName, GapDetected
from engine.kernel.venue_types import OrderEvent

log = structlog.get_logger(__name__)

PAPER_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_URL = "wss://api.alpaca.markets/stream"


class TradingStreamClient(FeedConnection):
    """One ``trade_updates`` websocket kept alive."""

    feed: FeedName = "trading"

    def __init__(
        self,
        url: str,
        key: str,
        secret: str,
        *,
        on_update: Callable[[OrderEvent], None],
        publish: Callable[[Any], None],
        auth_shape: AuthShape = "auth",
        config: FeedConfig = FeedConfig(mute_timeout_s=None),
        now_ns: Callable[[], int] = time.time_ns,
        rng: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(url, publish=publish, config=config, now_ns=now_ns, rng=rng)
        self.protocol = TradingProtocol(key, secret, auth_shape=auth_shape)
        self._on_update = on_update
        self._connected_mono = 0.0
        self._disconnected_ns = 0
        self.updates = 0

    def _on_connect(self) -> None:
        self.protocol.connection_made()
        self._connected_mono = time.monotonic()

    def _outbox(self) -> list[str]:
        # alpaca-py sends its JSON control messages as text frames; do the same.
        return [m.decode() for m in self.protocol.data_to_send()]

    def _recv_timeout(self) -> float | None:
        if self.connected.is_set():
            return None
        return max(0.001, self._connected_mono + self.config.handshake_timeout_s - time.monotonic())

    def _on_recv_timeout(self) -> None:
        raise Reconnect("handshake timeout")

    def _on_disconnect(self, now_ns: int) -> None:
        if self.connects:
            self._disconnected_ns = now_ns

    def _on_frame(self, frame: bytes | str) -> None:
        for ev in self.protocol.receive(frame):
            if isinstance(ev, TradeUpdateReceived):
                self.updates += 1
                try:
                    self._on_update(order_event(ev.update))
                except Exception as exc:
                    # One update the engine could not apply must not cost the stream; reconcile instead.
                    log.exception("trade_update_not_applied", order_id=ev.update.order.id, update_event=ev.update.event)
                    now = self._now_ns()
                    self._publish(FeedError("trading", 0, f"trade update not applied: {exc}", now, now))
                    self._publish(GapDetected("trading", ev.update.ts_ns, now, "trade update not applied", now, now))
            elif isinstance(ev, Listening):
                if "trade_updates" in ev.streams and not self.connected.is_set():
                    self._session_established()
                    if self._disconnected_ns:
                        now = self._now_ns()
                        self._publish(
                            GapDetected(
                                "trading",
                                self._disconnected_ns,
                                now,
                                "trade_updates reconnected: reconcile open orders",
                                now,
                                now,
                            )
                        )
                        self._disconnected_ns = 0
            elif isinstance(ev, Authorized):
                pass
            elif isinstance(ev, Unauthorized):
                raise FatalFeedError(f"trading stream refused the credentials ({ev.action})", 401)
            elif isinstance(ev, StreamError):
                raise Reconnect(f"server error: {ev.message}")
            elif isinstance(ev, Malformed):
                now = self._now_ns()
                self._publish(FeedError("trading", 0, ev.reason, now, now))
