"""Small scripted Alpaca market-data and trading websocket servers for the feed-client tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import msgpack
from websockets.asyncio.server import ServerConnection


@dataclass
class DataScript:
    """What the fake data server does on each connection (index = connection number, from 0)."""

    frames: list[bytes] = field(default_factory=list)
    drop_after: dict[int, int] = field(default_factory=dict)
    """connection -> close the socket after sending this many data frames."""
    mute_after: dict[int, int] = field(default_factory=dict)
    """connection -> go silent (socket open) after this many data frames."""
    auth_error: dict[int, tuple[int, str]] = field(default_factory=dict)
    """connection -> answer auth with this error and close."""
    resend_from: dict[int, int] = field(default_factory=dict)
    """connection -> start streaming at this frame index (to replay overlap after a reconnect)."""


class FakeDataServer:
    def __init__(self, script: DataScript) -> None:
        self.script = script
        self.connections = 0
        self.received: list[list[dict[str, object]]] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        n = self.connections
        self.connections += 1
        msgs: list[dict[str, object]] = []
        self.received.append(msgs)
        assert ws.request is not None
        self.headers.append(dict(ws.request.headers))
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        msgs.append(msgpack.unpackb(await ws.recv()))
        if n in self.script.auth_error:
            code, text = self.script.auth_error[n]
            await ws.send(msgpack.packb([{"T": "error", "code": code, "msg": text}]))
            await ws.close()
            return
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        quotes: set[str] = set()

        async def reader() -> None:
            async for raw in ws:
                m = msgpack.unpackb(raw)
                msgs.append(m)
                q = set(m.get("quotes", []))
                if m["action"] == "subscribe":
                    quotes.update(q)
                else:
                    quotes.difference_update(q)
                await ws.send(msgpack.packb([{"T": "subscription", "trades": [], "quotes": sorted(quotes)}]))
                subscribed.set()

        subscribed = asyncio.Event()
        read_task = asyncio.create_task(reader())
        try:
            await subscribed.wait()
            for sent, frame in enumerate(self.script.frames[self.script.resend_from.get(n, 0) :]):
                if self.script.drop_after.get(n) == sent:
                    await ws.close()
                    return
                if self.script.mute_after.get(n) == sent:
                    await ws.wait_closed()
                    return
                await ws.send(frame)
            await ws.wait_closed()
        finally:
            read_task.cancel()


@dataclass
class TradingScript:
    updates: list[dict[str, object]] = field(default_factory=list)
    drop_after: dict[int, int] = field(default_factory=dict)
    unauthorized: bool = False


class FakeTradingServer:
    def __init__(self) -> None:
        self.script = TradingScript()
        self.connections = 0
        self.received: list[list[object]] = []
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        n = self.connections
        self.connections += 1
        msgs: list[object] = []
        self.received.append(msgs)
        auth = json.loads(await ws.recv())
        msgs.append(auth)
        status = "unauthorized" if self.script.unauthorized else "authorized"
        await ws.send(
            json.dumps({"stream": "authorization", "data": {"status": status, "action": "authenticate"}}).encode()
        )
        if self.script.unauthorized:
            await ws.close()
            return
        listen = json.loads(await ws.recv())
        msgs.append(listen)
        await ws.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}).encode())
        for i, upd in enumerate(self.script.updates):
            if self.script.drop_after.get(n) == i:
                await ws.close()
                return
            await ws.send(json.dumps({"stream": "trade_updates", "data": upd}).encode())  # binary JSON
        await ws.wait_closed()
