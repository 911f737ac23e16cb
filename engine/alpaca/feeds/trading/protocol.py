"""Sans-I/O protocol of the trading stream (``/stream``, ``trade_updates``; docs/alpaca.md §6-7).

No greeting: we authenticate at once, in the current shape ``{"action":"auth","key","secret"}`` or
the legacy one alpaca-py still sends (``{"action":"authenticate","data":{"key_id","secret_key"}}``).
The reply is ``{"stream":"authorization","data":{"status":"authorized"|"unauthorized",...}}``; then
``listen`` to ``trade_updates`` and the server acks with ``{"stream":"listening",...}``. The paper
server sends JSON in *binary* frames, so both frame types are accepted. Bad frames become
``Malformed`` events, never exceptions.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from engine.alpaca.feeds.trading.models import TradeUpdate

AuthShape = Literal["auth", "legacy"]


class TradingState(enum.IntEnum):
    AUTHENTICATING = 0
    AUTHORIZED = 1
    LISTENING = 2
    FAILED = 3


class Authorized(msgspec.Struct, frozen=True):
    """Credentials accepted; the listen request is queued."""


class Unauthorized(msgspec.Struct, frozen=True):
    """Credentials refused (fatal: retrying with the same keys cannot help)."""

    action: str


class Listening(msgspec.Struct, frozen=True):
    streams: tuple[str, ...]


class TradeUpdateReceived(msgspec.Struct, frozen=True):
    update: TradeUpdate


class StreamError(msgspec.Struct, frozen=True):
    """``{"action":"error","data":{"error_message":...}}``, sent before the server closes."""

    message: str


class Malformed(msgspec.Struct, frozen=True):
    reason: str
    size: int


Event = Authorized | Unauthorized | Listening | TradeUpdateReceived | StreamError | Malformed


class _Envelope(msgspec.Struct):
    stream: str | None = None
    action: str | None = None
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


class _Authorization(msgspec.Struct):
    status: str = ""
    action: str = ""


class _Listening(msgspec.Struct):
    streams: list[str] = []


class _Error(msgspec.Struct):
    error_message: str = ""


STREAMS = ("trade_updates",)


class TradingProtocol:
    """Auth, listen and decoding of trade updates; survives reconnects (``connection_made``)."""

    def __init__(self, key: str, secret: str, *, auth_shape: AuthShape = "auth") -> None:
        self._key = key
        self._secret = secret
        self.auth_shape = auth_shape
        self.state = TradingState.AUTHENTICATING
        self._outbox: list[bytes] = []
        self.updates = 0
        self.malformed_frames = 0
        self._envelope = msgspec.json.Decoder(_Envelope)
        self._update = msgspec.json.Decoder(TradeUpdate)
        self._encode = msgspec.json.Encoder().encode

    def connection_made(self) -> None:
        """A new socket is open: queue authentication."""
        if self.state is TradingState.FAILED:
            return
        self.state = TradingState.AUTHENTICATING
        self._outbox.clear()
        if self.auth_shape == "legacy":
            msg: dict[str, object] = {
                "action": "authenticate",
                "data": {"key_id": self._key, "secret_key": self._secret},
            }
        else:
            msg = {"action": "auth", "key": self._key, "secret": self._secret}
        self._outbox.append(self._encode(msg))

    def data_to_send(self) -> list[bytes]:
        out, self._outbox = self._outbox, []
        return out

    def receive(self, frame: bytes | str) -> list[Event]:
        """Decode one frame (text or binary JSON) into events."""
        raw = frame.encode() if isinstance(frame, str) else frame
        try:
            env = self._envelope.decode(raw)
            return self._dispatch(env, raw)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:  # non-UTF-8 str
            self.malformed_frames += 1
            return [Malformed(str(exc), len(raw))]

    def _dispatch(self, env: _Envelope, raw: bytes) -> list[Event]:
        data = env.data
        if env.stream == "trade_updates":
            self.updates += 1
            return [TradeUpdateReceived(self._update.decode(data))]
        if env.stream == "authorization":
            auth = msgspec.json.decode(data, type=_Authorization)
            if auth.status == "authorized":
                self.state = TradingState.AUTHORIZED
                self._outbox.append(self._encode({"action": "listen", "data": {"streams": list(STREAMS)}}))
                return [Authorized()]
            self.state = TradingState.FAILED
            return [Unauthorized(auth.action)]
        if env.stream == "listening":
            ack = msgspec.json.decode(data, type=_Listening)
            if "trade_updates" in ack.streams:
                self.state = TradingState.LISTENING
            return [Listening(tuple(ack.streams))]
        if env.action == "error":
            return [StreamError(msgspec.json.decode(data, type=_Error).error_message)]
        self.malformed_frames += 1
        return [Malformed(f"unexpected message: stream={env.stream!r} action={env.action!r}", len(raw))]
