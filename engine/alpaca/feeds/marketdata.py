"""Sans-I/O protocol of Alpaca's market-data websockets (options and stocks share it).

Bytes in, events and bytes-to-send out; no sockets, no clock, no asyncio (docs/alpaca.md §2-5):

    connect -> [{"T":"success","msg":"connected"}] -> we send {"action":"auth","key","secret"}
            -> [{"T":"success","msg":"authenticated"}] -> we send the full subscription
            -> [{"T":"subscription",...}] acks, then batched data frames.

Data frames go through the compiled scanner (``scan.py``) into reusable column arrays; the
``DataBatch`` handed out is a view valid until the next ``receive``. Frames the scanner declines
(control messages, JSON text frames, odd encodings) are decoded with msgspec; undecodable bytes
become a ``Malformed`` event and a counter, never an exception at the caller.

The protocol object outlives connections: ``connection_made()`` resets the handshake and the full
desired subscription is re-sent after every authentication (a reconnect resubscribes everything).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable

import msgspec
import numpy as np

from engine.alpaca.feeds.scan import SCAN_CAPACITY, SCAN_OK, scan_frame
from engine.alpaca.feeds.trading.models import rfc3339_to_ns
from engine.kernel.market_data import KIND_OTHER, KIND_QUOTE, KIND_TRADE, BatchColumns, DataBatch
from engine.kernel.symbols import SymbolIndex


class DataState(enum.IntEnum):
    AWAITING_GREETING = 0
    AUTHENTICATING = 1
    AUTHENTICATED = 2
    FAILED = 3


# --- events ------------------------------------------------------------------------------------


class Greeted(msgspec.Struct, frozen=True):
    """The server said ``connected``; the auth message is queued."""


class Authenticated(msgspec.Struct, frozen=True):
    """Authentication succeeded; the full subscription is queued."""


class ServerError(msgspec.Struct, frozen=True):
    """``[{"T":"error","code":N,"msg":...}]`` (see ``backoff.classify_server_error`` for reactions)."""

    code: int
    message: str


class SubscriptionAck(msgspec.Struct, frozen=True):
    """The server's complete current subscription set."""

    quotes: tuple[str, ...]
    trades: tuple[str, ...]


class Malformed(msgspec.Struct, frozen=True):
    """A frame that could not be decoded (it is dropped; nothing else is lost)."""

    reason: str
    size: int


Event = Greeted | Authenticated | ServerError | SubscriptionAck | Malformed | DataBatch


# --- msgspec structs for the slow path ---------------------------------------------------------


class _Tag(msgspec.Struct):
    T: str


class _Control(msgspec.Struct):
    T: str
    msg: str = ""
    code: int = 0
    quotes: list[str] = []
    trades: list[str] = []


class _Data(msgspec.Struct):
    T: str
    S: str = ""
    t: msgspec.msgpack.Ext | str | None = None
    bp: float = float("nan")
    ap: float = float("nan")
    bs: int = 0
    as_: int = msgspec.field(name="as", default=0)
    p: float = float("nan")
    s: int = 0


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts_ns(value: msgspec.msgpack.Ext | str | None) -> int:
    """Nanoseconds of a msgpack Timestamp ext (-1) or an RFC-3339 string (JSON frames)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return rfc3339_to_ns(value)
    if value.code != -1:
        raise ValueError(f"timestamp has ext type {value.code}, expected -1")
    data = bytes(value.data)
    if len(data) == 4:
        return int.from_bytes(data, "big") * 1_000_000_000
    if len(data) == 8:
        word = int.from_bytes(data, "big")
        return (word & 0x3_FFFF_FFFF) * 1_000_000_000 + (word >> 34)
    if len(data) == 12:
        nanos = int.from_bytes(data[:4], "big")
        seconds = int.from_bytes(data[4:], "big", signed=True)
        return seconds * 1_000_000_000 + nanos
    raise ValueError(f"timestamp ext of {len(data)} bytes")


class MarketDataProtocol:
    """Handshake, subscription bookkeeping and frame decoding for one market-data stream."""

    def __init__(
        self,
        key: str,
        secret: str,
        index: SymbolIndex,
        *,
        max_quotes: int | None = None,
        capacity: int = 1024,
    ) -> None:
        self._key = key
        self._secret = secret
        self.index = index
        self.max_quotes = max_quotes
        self.state = DataState.AWAITING_GREETING
        self._cols = BatchColumns(capacity)
        self._outbox: list[bytes] = []
        self.quotes: set[str] = set()
        """Desired quote subscription (re-sent in full after each authentication)."""
        self.trades: set[str] = set()
        self.acked_quotes: tuple[str, ...] = ()
        self.acked_trades: tuple[str, ...] = ()
        self.subscription_messages: dict[str, int] = {}
        """Subscribe/unsubscribe messages queued so far, by action."""
        self.frames = 0
        self.messages = 0
        self.malformed_frames = 0
        self.unknown_symbols = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self._control_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
        self._tag = msgspec.msgpack.Decoder(_Tag)
        self._control = msgspec.msgpack.Decoder(_Control)
        self._data = msgspec.msgpack.Decoder(_Data)

    # --- outgoing ----------------------------------------------------------------------------

    def connection_made(self) -> None:
        """A new socket is open: restart the handshake (wait for the greeting)."""
        if self.state is not DataState.FAILED:
            self.state = DataState.AWAITING_GREETING
        self._outbox.clear()

    def data_to_send(self) -> list[bytes]:
        """Frames to write to the socket, in order (the outbox is emptied)."""
        out, self._outbox = self._outbox, []
        return out

    def set_subscription(self, quotes: Iterable[str], trades: Iterable[str] = ()) -> tuple[int, int]:
        """Make ``quotes``/``trades`` the desired sets; queue one subscribe and one unsubscribe diff.

        Returns (added, removed) counts. ValueError if the quote set exceeds ``max_quotes`` (the
        server would refuse it with 405 and keep the old set).
        """
        new_quotes, new_trades = set(quotes), set(trades)
        if self.max_quotes is not None and len(new_quotes) > self.max_quotes:
            raise ValueError(f"{len(new_quotes)} quote subscriptions exceed the cap of {self.max_quotes}")
        add_q, del_q = new_quotes - self.quotes, self.quotes - new_quotes
        add_t, del_t = new_trades - self.trades, self.trades - new_trades
        self.quotes, self.trades = new_quotes, new_trades
        if self.state is DataState.AUTHENTICATED:
            # Unsubscribe first so the server never holds old + new above the cap.
            if del_q or del_t:
                self._outbox.append(self._subscription_message("unsubscribe", del_q, del_t))
            if add_q or add_t:
                self._outbox.append(self._subscription_message("subscribe", add_q, add_t))
        return len(add_q) + len(add_t), len(del_q) + len(del_t)

    def _subscription_message(self, action: str, quotes: Iterable[str], trades: Iterable[str]) -> bytes:
        self.subscription_messages[action] = self.subscription_messages.get(action, 0) + 1
        body: dict[str, object] = {"action": action}
        if quotes:
            body["quotes"] = sorted(quotes)
        if trades:
            body["trades"] = sorted(trades)
        return self._encode(body)

    # --- incoming ----------------------------------------------------------------------------

    def receive(self, frame: bytes | str) -> list[Event]:
        """Decode one frame; return its events (a DataBatch for data frames)."""
        self.frames += 1
        if isinstance(frame, str):
            return self._slow(frame.encode(), json=True)
        cols = self._cols
        buf = np.frombuffer(frame, dtype=np.uint8)
        n, status = scan_frame(buf, self.index.keys, self.index.key_len, self.index.values, *cols.as_args())
        if status == SCAN_CAPACITY:
            self._cols = cols = BatchColumns(max(n, 2 * cols.capacity))
            n, status = scan_frame(buf, self.index.keys, self.index.key_len, self.index.values, *cols.as_args())
        if status != SCAN_OK:
            return self._slow(frame, json=False)
        self.messages += n
        return [DataBatch(cols, n, int(cols.newest[0]))]

    def _slow(self, frame: bytes, *, json: bool) -> list[Event]:
        """Decode a frame with msgspec: control messages become events, data goes to the columns."""
        try:
            if json:
                items = msgspec.json.decode(frame, type=list[msgspec.Raw])
                tag = [msgspec.json.decode(r, type=_Tag).T for r in items]
            else:
                items = self._control_decoder.decode(frame)
                tag = [self._tag.decode(r).T for r in items]
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            # msgspec's msgpack decoder raises UnicodeDecodeError (not DecodeError) for a str that is not UTF-8
            self.malformed_frames += 1
            return [Malformed(f"undecodable frame: {exc}", len(frame))]
        events: list[Event] = []
        data: list[_Data] = []
        try:
            for raw, t in zip(items, tag, strict=True):
                if len(t) == 1:
                    data.append(msgspec.json.decode(raw, type=_Data) if json else self._data.decode(raw))
                else:
                    ctl = msgspec.json.decode(raw, type=_Control) if json else self._control.decode(raw)
                    events.extend(self._on_control(ctl))
            batch = self._columns_from(data) if data else None
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, OverflowError) as exc:
            # OverflowError: a timestamp beyond int64 nanoseconds (found by atheris)
            self.malformed_frames += 1
            return [*events, Malformed(f"bad message: {exc}", len(frame))]
        if batch is not None:
            events.append(batch)
        return events

    def _columns_from(self, data: list[_Data]) -> DataBatch:
        cols = self._cols
        if len(data) > cols.capacity:
            self._cols = cols = BatchColumns(max(len(data), 2 * cols.capacity))
        for i, m in enumerate(data):
            cols.kind[i] = KIND_QUOTE if m.T == "q" else (KIND_TRADE if m.T == "t" else KIND_OTHER)
            cols.gid[i] = self.index.id_of(m.S)
            cols.ts[i] = _ts_ns(m.t)
            cols.bid[i], cols.ask[i], cols.bid_size[i], cols.ask_size[i] = m.bp, m.ap, m.bs, m.as_
            cols.price[i], cols.size[i] = m.p, m.s
        self.messages += len(data)
        return DataBatch(cols, len(data), int(cols.ts[: len(data)].max()))

    def _on_control(self, ctl: _Control) -> list[Event]:
        if ctl.T == "success":
            if ctl.msg == "connected":
                self.state = DataState.AUTHENTICATING
                self._outbox.append(self._encode({"action": "auth", "key": self._key, "secret": self._secret}))
                return [Greeted()]
            if ctl.msg == "authenticated":
                self.state = DataState.AUTHENTICATED
                if self.quotes or self.trades:
                    self._outbox.append(self._subscription_message("subscribe", self.quotes, self.trades))
                return [Authenticated()]
            return []
        if ctl.T == "error":
            return [ServerError(ctl.code, ctl.msg)]
        if ctl.T == "subscription":
            self.acked_quotes, self.acked_trades = tuple(ctl.quotes), tuple(ctl.trades)
            return [SubscriptionAck(self.acked_quotes, self.acked_trades)]
        return []

    def fail(self) -> None:
        """Mark the stream failed for good (a fatal server error); nothing more is sent."""
        self.state = DataState.FAILED
        self._outbox.clear()
