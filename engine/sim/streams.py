"""Websocket streams: option and stock market data and ``trade_updates``, with Alpaca's protocol.

One websockets server routes by path: ``/v1beta1/indicative|opra`` (options, msgpack only),
``/v2/iex|sip|delayed_sip|test`` (stocks, JSON or msgpack by Content-Type) and ``/stream``
(trading). Each session has a bounded frame queue drained by its own sender task; the market loop
only enqueues. Faults (mute, delay, malformed frames, drops, 406, duplicated or reordered trade
updates) are applied in the sender, where a real network would apply them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgpack
import numpy as np
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from engine.sim import wire
from greeks.occ import is_occ_symbol

if TYPE_CHECKING:
    from engine.sim.server import Simulator

log = structlog.get_logger("engine.sim.streams")

OPTION_PATHS = {"/v1beta1/indicative", "/v1beta1/opra"}
STOCK_PATHS = {"/v2/iex", "/v2/sip", "/v2/delayed_sip", "/v2/test"}
TRADING_PATHS = {"/stream"}
OPTION_CHANNELS = ("trades", "quotes")
STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
TEST_SYMBOL = "FAKEPACA"
MAX_QUEUED_FRAMES = 2000
MAX_QUEUED_BYTES = 32 << 20
"""A client further behind than this is slow: Alpaca's 407, then disconnect."""
GARBAGE = b"\xc1\xff\x00not-msgpack\xc1"


def path_kind(path: str) -> str | None:
    path = path.split("?", 1)[0].rstrip("/")
    if path in OPTION_PATHS:
        return "options"
    if path in STOCK_PATHS:
        return "stocks"
    if path in TRADING_PATHS:
        return "trading"
    return None


def stock_quote_fields(market: Any, ui: int) -> dict[str, Any]:
    """The price fields of a stock quote (``bx bp bs ax ap as c z``), for the stream and the REST latest quote."""
    bid, ask, bs, asz, bx, ax = market.stock_quote(ui)
    return {"bx": bx, "bp": bid, "bs": bs, "ax": ax, "ap": ask, "as": asz, "c": ["R"], "z": "B"}


def error_message(code: int, msg: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": msg}


class Session:
    """One client connection: its encoding, auth state, subscriptions and outgoing queue."""

    def __init__(self, hub: StreamHub, ws: ServerConnection, kind: str, path: str) -> None:
        self.hub = hub
        self.ws = ws
        self.kind = kind
        self.path = path.split("?", 1)[0].rstrip("/")
        content_type = ws.request.headers.get("Content-Type", "") if ws.request else ""
        self.binary = "msgpack" in content_type.lower()
        self.authenticated = False
        self.listening = False
        self.subs: dict[str, list[str]] = {}
        self.queue: deque[tuple[bytes | str, bool]] = deque()  # (frame, is_control)
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.closed = False
        self.held_update: bytes | None = None
        # option data: rows and their pre-encoded record blocks
        self.quote_rows = np.empty(0, np.intp)
        self.trade_rows = np.empty(0, np.intp)
        self.quote_blocks: list[tuple[np.ndarray, np.ndarray, wire.RecordBlock]] = []
        self.trade_blocks: list[tuple[np.ndarray, np.ndarray, wire.RecordBlock]] = []

    # ---- sending --------------------------------------------------------------------------------
    def encode_control(self, message: dict[str, Any]) -> bytes | str:
        if self.kind == "trading":
            return json.dumps(message, separators=(",", ":")).encode()
        return wire.pack_control(message) if self.binary else wire.control_json(message)

    def send_control(self, message: dict[str, Any]) -> None:
        self.enqueue(self.encode_control(message), control=True)

    def enqueue(self, frame: bytes | str, control: bool = False) -> None:
        if self.closed:
            return
        faults = self.hub.sim.faults.streams[self.kind]
        if not control and faults.mute:
            self.hub.sim.faults.count(f"{self.kind}_muted_frames")
            return
        if len(self.queue) >= MAX_QUEUED_FRAMES or self.queued_bytes >= MAX_QUEUED_BYTES:
            # Alpaca buffers a slow client, then drops it (error 407, maybe never delivered)
            self.queue.clear()
            self.queued_bytes = 0
            goodbye = self.encode_control(error_message(407, "slow client"))
            self.queue.append((goodbye, True))
            self.queued_bytes = len(goodbye)
            self.closed = True
            # the sender may be stuck in a send the client never reads: cut it if still open in a second
            asyncio.get_running_loop().call_later(1.0, self._cut)
        else:
            self.queue.append((frame, control))
            self.queued_bytes += len(frame)
        self.wakeup.set()

    async def sender(self) -> None:
        faults = self.hub.sim.faults
        try:
            while True:
                if not self.queue:
                    self.hub.drained.set()
                    if self.closed:
                        await self._goodbye(None)
                        return
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                frame, control = self.queue.popleft()
                self.queued_bytes -= len(frame)
                f = faults.streams[self.kind]
                if f.delay_ms > 0 and not control:
                    await asyncio.sleep(f.delay_ms / 1000)
                if f.malformed_frames > 0 and not control:
                    f.malformed_frames -= 1
                    faults.count(f"{self.kind}_malformed_frames")
                    frame = GARBAGE if isinstance(frame, bytes) else "[{not json"
                if self.closed:
                    await self._goodbye(frame)
                    return
                await self.ws.send(frame)
        except ConnectionClosed:
            return

    def _cut(self) -> None:
        if self.ws.state is not State.CLOSED:
            log.warning("sim_stream_client_cut", kind=self.kind, path=self.path)
            self.ws.transport.abort()

    async def _goodbye(self, frame: bytes | str | None) -> None:
        """Send the last frame and close, but cut a client that does not read within a second."""
        try:
            async with asyncio.timeout(1.0):
                if frame is not None:
                    await self.ws.send(frame)
                await self.ws.close()
        except TimeoutError:
            self._cut()

    # ---- receiving ------------------------------------------------------------------------------
    def decode(self, raw: bytes | str) -> Any:
        if isinstance(raw, bytes):
            try:
                return msgpack.unpackb(raw)
            except (ValueError, msgpack.UnpackException):
                return json.loads(raw)
        return json.loads(raw)


class StreamHub:
    """Owns the sessions; the market loop publishes through it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.sessions: dict[str, set[Session]] = {"options": set(), "stocks": set(), "trading": set()}
        self.drained = asyncio.Event()
        """Set by senders whenever a queue empties (paces the market at full speed)."""

    # ---- websockets plumbing ------------------------------------------------------------------
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if path_kind(request.path) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown stream path\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        kind = path_kind(ws.request.path)
        assert kind is not None
        session = Session(self, ws, kind, ws.request.path)
        sender = asyncio.create_task(session.sender())
        try:
            if kind == "trading":
                await self._trading(session)
            else:
                await self._data(session)
        except ConnectionClosed:
            pass
        finally:
            self.sessions[kind].discard(session)
            session.closed = True
            session.wakeup.set()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(sender, 2.0)
            if not sender.done():
                sender.cancel()

    def drop(self, kind: str) -> int:
        """Cut every connection of ``kind`` without a close frame (a network drop)."""
        sessions = list(self.sessions[kind])
        for s in sessions:
            s.closed = True
            s.ws.transport.abort()
        return len(sessions)

    # ---- data streams ----------------------------------------------------------------------------
    async def _data(self, s: Session) -> None:
        cfg = self.sim.config
        if s.kind == "options" and not s.binary:
            await s.ws.send(
                wire.control_json(error_message(412, "option messages are only available in MsgPack format"))
            )
            await s.ws.close()
            return
        s.send_control({"T": "success", "msg": "connected"})
        headers: Headers = s.ws.request.headers  # type: ignore[union-attr]
        if "APCA-API-KEY-ID" in headers and not self._auth(
            s, headers.get("APCA-API-KEY-ID"), headers.get("APCA-API-SECRET-KEY")
        ):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.auth_timeout_s
        while not s.closed:
            timeout = None if s.authenticated else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                return self._close_with(s, 404, "auth timeout")
            try:
                raw = await asyncio.wait_for(s.ws.recv(), timeout)
            except TimeoutError:
                return self._close_with(s, 404, "auth timeout")
            try:
                msg = s.decode(raw)
            except (ValueError, UnicodeDecodeError):
                s.send_control(error_message(400, "invalid syntax"))
                continue
            if not isinstance(msg, dict) or not isinstance(msg.get("action"), str):
                s.send_control(error_message(400, "invalid syntax"))
                continue
            action = msg["action"]
            if action == "auth":
                if s.authenticated:
                    s.send_control(error_message(403, "already authenticated"))
                elif not self._auth(s, msg.get("key"), msg.get("secret")):
                    return
            elif action in ("subscribe", "unsubscribe"):
                if not s.authenticated:
                    s.send_control(error_message(401, "not authenticated"))
                else:
                    self._subscribe(s, msg, action == "subscribe")
            else:
                s.send_control(error_message(400, "invalid syntax"))

    def _close_with(self, s: Session, code: int, text: str) -> None:
        s.send_control(error_message(code, text))
        s.closed = True
        s.wakeup.set()

    def _auth(self, s: Session, key: Any, secret: Any) -> bool:
        cfg = self.sim.config
        faults = self.sim.faults.streams[s.kind]
        if key != cfg.key or secret != cfg.secret:
            self._close_with(s, 402, "auth failed")
            return False
        same = sum(1 for o in self.sessions[s.kind] if o.path == s.path and o.authenticated)
        if faults.reject_connections > 0 or same >= cfg.connection_limit:
            if faults.reject_connections > 0:
                faults.reject_connections -= 1
                self.sim.faults.count(f"{s.kind}_rejected_connections")
            self._close_with(s, 406, "connection limit exceeded")
            return False
        s.authenticated = True
        self.sessions[s.kind].add(s)
        s.send_control({"T": "success", "msg": "authenticated"})
        return True

    def _subscribe(self, s: Session, msg: dict[str, Any], add: bool) -> None:
        cfg = self.sim.config
        channels = OPTION_CHANNELS if s.kind == "options" else STOCK_CHANNELS
        cap = cfg.option_symbol_cap if s.kind == "options" else cfg.stock_symbol_cap
        new = {c: list(s.subs.get(c, [])) for c in channels}
        for key, value in msg.items():
            if key == "action":
                continue
            if key not in channels:
                return s.send_control(error_message(410, "invalid subscribe action for this feed"))
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return s.send_control(error_message(400, "invalid syntax"))
            symbols = [v.upper() if v != "*" else v for v in value]
            if s.kind == "options":
                if key == "quotes" and "*" in symbols:
                    return s.send_control(error_message(413, "star subscription is not allowed for option quotes"))
                if any(v != "*" and not is_occ_symbol(v) for v in symbols):
                    return s.send_control(error_message(400, "invalid syntax"))
            current = new[key]
            if add:
                current.extend(v for v in symbols if v not in current)
            else:
                current[:] = [v for v in current if v not in symbols]
        if any(len([v for v in syms if v != "*"]) > cap for syms in new.values()):
            return s.send_control(error_message(405, "symbol limit exceeded"))
        s.subs = new
        if s.kind == "options":
            self._index_options(s)
        ack: dict[str, Any] = {"T": "subscription", **{c: new[c] for c in channels}}
        if s.kind == "stocks":
            ack["corrections"] = list(new["trades"])
            ack["cancelErrors"] = list(new["trades"])
        s.send_control(ack)

    def on_new_listings(self) -> None:
        """Re-index option sessions after a session roll (new contracts, and ``trades: ["*"]``)."""
        for s in self.sessions["options"]:
            if s.subs:
                self._index_options(s)

    def _index_options(self, s: Session) -> None:
        uni = self.sim.market.universe
        s.quote_rows, s.quote_blocks = self._blocks([uni.index[v] for v in s.subs["quotes"] if v in uni.index], "q")
        trades = s.subs["trades"]
        rows = list(range(len(uni))) if "*" in trades else [uni.index[v] for v in trades if v in uni.index]
        s.trade_rows, s.trade_blocks = self._blocks(rows, "t")

    def _blocks(
        self, rows: list[int], kind: str
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, wire.RecordBlock]]]:
        """Sorted rows and, per symbol length, (rows of that length, their positions, record block)."""
        uni = self.sim.market.universe
        arr = np.array(sorted(set(rows)), dtype=np.intp)
        blocks: list[tuple[np.ndarray, np.ndarray, wire.RecordBlock]] = []
        lengths = np.array([len(uni.symbol_bytes[r]) for r in arr.tolist()], dtype=np.intp)
        for length in np.unique(lengths).tolist():
            group = arr[lengths == length]
            block = wire.RecordBlock([uni.symbol_bytes[r] for r in group.tolist()], kind)
            blocks.append((group, np.arange(len(group)), block))
        return arr, blocks

    # ---- trading stream --------------------------------------------------------------------------
    async def _trading(self, s: Session) -> None:
        cfg = self.sim.config
        async for raw in s.ws:
            try:
                msg = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                s.send_control({"stream": "error", "data": {"error_message": "invalid syntax"}})
                continue
            if not isinstance(msg, dict):
                s.send_control({"stream": "error", "data": {"error_message": "invalid syntax"}})
                continue
            action = msg.get("action")
            data: dict[str, Any] = msg["data"] if isinstance(msg.get("data"), dict) else {}
            if action in ("auth", "authenticate"):
                key = msg.get("key", data.get("key_id"))
                secret = msg.get("secret", data.get("secret_key"))
                faults = self.sim.faults.streams["trading"]
                if key != cfg.key or secret != cfg.secret or faults.reject_connections > 0:
                    status = {"status": "unauthorized", "action": "authenticate"}
                    if faults.reject_connections > 0 and key == cfg.key:
                        faults.reject_connections -= 1
                        self.sim.faults.count("trading_rejected_connections")
                        status["error"] = "connection limit exceeded"
                    s.send_control({"stream": "authorization", "data": status})
                    s.closed = True
                    s.wakeup.set()
                    return
                s.authenticated = True
                self.sessions["trading"].add(s)
                s.send_control({"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}})
            elif action == "listen":
                if not s.authenticated:
                    s.send_control({"stream": "authorization", "data": {"status": "unauthorized", "action": "listen"}})
                    continue
                streams = data.get("streams", [])
                if not isinstance(streams, list):
                    s.send_control({"stream": "error", "data": {"error_message": "invalid syntax"}})
                    continue
                s.listening = "trade_updates" in streams
                s.send_control({"stream": "listening", "data": {"streams": ["trade_updates"] if s.listening else []}})
            else:
                s.send_control({"stream": "error", "data": {"error_message": "invalid syntax"}})

    def on_trade_update(self, message: dict[str, Any]) -> None:
        """Exchange listener: fan a trade update out to every listening trading session."""
        sessions = [s for s in self.sessions["trading"] if s.listening]
        if not sessions:
            return
        frame = json.dumps(message, separators=(",", ":")).encode()
        faults = self.sim.faults.streams["trading"]
        duplicate = faults.duplicate_updates > 0
        if duplicate:
            faults.duplicate_updates -= 1
            self.sim.faults.count("trading_duplicated_updates")
        for s in sessions:
            if s.held_update is not None:
                s.enqueue(frame)
                s.enqueue(s.held_update)
                s.held_update = None
            elif faults.reorder_updates > 0:
                s.held_update = frame
            else:
                s.enqueue(frame)
            if duplicate:
                s.enqueue(frame)
        if faults.reorder_updates > 0 and any(s.held_update is not None for s in sessions):
            faults.reorder_updates -= 1
            self.sim.faults.count("trading_reordered_updates")

    # ---- market data fan-out ----------------------------------------------------------------------
    def publish_options(self, dt_s: float, trades: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> int:
        """Send this step's option quotes and trades to every subscriber; return messages sent."""
        sessions = [s for s in self.sessions["options"] if s.authenticated and not s.closed]
        if not sessions:
            return 0
        market = self.sim.market
        now = market.now_ns
        max_msgs = self.sim.config.max_frame_messages
        sent = 0
        t_rows, t_price, t_size, t_exch = trades
        for s in sessions:
            for group, positions, block in s.quote_blocks:
                upd = market.updating(group, dt_s)
                if len(upd) == 0:
                    continue
                which = positions[np.searchsorted(group, upd)]
                q = market.option_quotes(upd)
                ts = wire.timestamp64(np.full(len(upd), now, dtype=np.int64))
                cols = {
                    "t": ts,
                    "bx": q.bid_exchange,
                    "bp": q.bid,
                    "bs": q.bid_size,
                    "ax": q.ask_exchange,
                    "ap": q.ask,
                    "as": q.ask_size,
                }
                sent += self._emit_blocks(s, block, which, cols, max_msgs)
            if len(t_rows) and len(s.trade_rows):
                for group, positions, block in s.trade_blocks:
                    hit = np.isin(t_rows, group)
                    if not hit.any():
                        continue
                    rows = t_rows[hit]
                    which = positions[np.searchsorted(group, rows)]
                    cols = {
                        "t": wire.timestamp64(np.full(len(rows), now, dtype=np.int64)),
                        "p": t_price[hit],
                        "s": t_size[hit],
                        "x": t_exch[hit],
                        "c": np.full(len(rows), b"I", dtype="S1"),
                    }
                    sent += self._emit_blocks(s, block, which, cols, max_msgs)
        return sent

    @staticmethod
    def _emit_blocks(
        s: Session, block: wire.RecordBlock, which: np.ndarray, cols: dict[str, np.ndarray], max_msgs: int
    ) -> int:
        if block.kind == "q":
            cols["c"] = np.full(len(which), b" ", dtype="S1")
        for start in range(0, len(which), max_msgs):
            part = slice(start, start + max_msgs)
            body = block.encode(which[part], {k: v[part] for k, v in cols.items()})
            s.enqueue(wire.array_header(len(which[part])) + body)
        return len(which)

    def publish_stocks(
        self, dt_s: float, trades: list[tuple[int, float, int, int, str]], bars: list[Any], daily: list[dict[str, Any]]
    ) -> None:
        """Send stock quotes, trades and bars to subscribers (JSON or msgpack per session)."""
        sessions = [s for s in self.sessions["stocks"] if s.authenticated and not s.closed]
        if not sessions:
            return
        market = self.sim.market
        now = market.now_ns
        p = 1.0 - np.exp(-self.sim.config.stock_quote_rate * dt_s)
        unds = [u.symbol for u in market.unds]
        quotes = []
        h = (np.arange(len(unds)) * 0.618 + market.tick * 0.381966) % 1.0
        for ui, sym in enumerate(unds):
            if h[ui] < p:
                quotes.append((sym, {"T": "q", "S": sym, **stock_quote_fields(market, ui), "t": now}))
        trade_msgs = [
            (
                unds[ui],
                {"T": "t", "S": unds[ui], "i": tid, "x": ex, "p": price, "s": size, "c": ["@"], "z": "B", "t": now},
            )
            for ui, price, size, tid, ex in trades
        ]
        bar_msgs = [
            (
                b.symbol,
                {
                    "T": "b",
                    "S": b.symbol,
                    "o": b.open,
                    "h": b.high,
                    "l": b.low,
                    "c": b.close,
                    "v": b.volume,
                    "t": b.start_ns,
                    "n": b.trades,
                    "vw": round(b.vwap, 4),
                },
            )
            for b in bars
        ]
        daily_msgs = [(d["S"], d) for d in daily]
        for s in sessions:
            out: list[dict[str, Any]] = []
            test = s.path == "/v2/test"
            for channel, items in (
                ("quotes", quotes),
                ("trades", trade_msgs),
                ("bars", bar_msgs),
                ("dailyBars", daily_msgs),
            ):
                subs = s.subs.get(channel, [])
                if not subs:
                    continue
                for sym, m in items:
                    if test:
                        if sym == unds[0] and (TEST_SYMBOL in subs or "*" in subs):
                            out.append({**m, "S": TEST_SYMBOL})
                    elif sym in subs or "*" in subs:
                        out.append(m)
            if out:
                s.enqueue(wire.encode_messages(out, s.binary))

    async def wait_drained(self, limit: int = 0, max_wait_s: float = 1.0) -> None:
        """Wait until no data session has more than ``limit`` frames queued (or ``max_wait_s`` passes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait_s):
                while self.backlog() > limit:
                    self.drained.clear()
                    await self.drained.wait()

    def backlog(self) -> int:
        """Largest number of frames waiting in any data session (for pacing at full speed)."""
        return max((len(s.queue) for k in ("options", "stocks") for s in self.sessions[k]), default=0)
