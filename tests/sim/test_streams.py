"""Stream protocol details over real sockets: auth timeout, stock bars, daily bars, headers auth, trading auth."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import msgpack
from websockets.asyncio.client import connect

from engine.sim.config import SimConfig
from engine.sim.server import Simulator


async def drain(ws: Any, seconds: float = 0.05) -> list[Any]:
    out: list[Any] = []
    while True:
        try:
            out.extend(msgpack.unpackb(await asyncio.wait_for(ws.recv(decode=False), seconds)))
        except TimeoutError:
            return out


async def test_no_auth_in_time_gets_404_and_close() -> None:
    async with Simulator(SimConfig(speed=0.0, auth_timeout_s=0.3)) as sim:
        assert sim.urls is not None
        async with connect(
            sim.urls.options_stream_url, additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            assert msgpack.unpackb(await ws.recv())[0]["msg"] == "connected"
            assert msgpack.unpackb(await asyncio.wait_for(ws.recv(), 2)) == [
                {"T": "error", "code": 404, "msg": "auth timeout"}
            ]
            await asyncio.wait_for(ws.wait_closed(), 2)


async def test_header_auth_minute_bars_and_daily_bars() -> None:
    cfg = SimConfig(speed=0.0, start=dt.datetime(2026, 12, 4, 15, 55), stock_trade_rate=5.0)
    async with Simulator(cfg) as sim:
        assert sim.urls is not None
        headers = {
            "Content-Type": "application/msgpack",
            "APCA-API-KEY-ID": sim.urls.key,
            "APCA-API-SECRET-KEY": sim.urls.secret,
        }
        async with connect(sim.urls.stocks_stream_url, additional_headers=headers) as ws:
            assert [m["msg"] for m in await drain(ws, 0.5)] == ["connected", "authenticated"]
            await ws.send(
                msgpack.packb({"action": "subscribe", "bars": ["SPY"], "dailyBars": ["SPY"], "trades": ["SPY"]})
            )
            ack = (await drain(ws))[0]
            assert ack["T"] == "subscription" and ack["bars"] == ["SPY"] and ack["cancelErrors"] == ["SPY"]
            for _ in range(40):
                sim.advance(5)
            bars = [m for m in await drain(ws) if m["T"] == "b"]
            assert len(bars) >= 2
            bar = bars[0]
            assert bar["S"] == "SPY" and bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
            assert isinstance(bar["t"], msgpack.Timestamp) and bar["t"].seconds % 60 == 0 and bar["v"] > 0
            sim.advance(120)  # through the close
            daily = [m for m in await drain(ws) if m["T"] == "d"]
            assert len(daily) == 1 and daily[0]["v"] > 0 and daily[0]["h"] >= daily[0]["l"]


async def test_trading_stream_accepts_the_documented_auth_shape_and_refuses_bad_keys() -> None:
    async with Simulator(SimConfig(speed=0.0)) as sim:
        assert sim.urls is not None
        async with connect(sim.urls.trading_stream_url) as ws:
            await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            assert json.loads(await ws.recv())["data"] == {"status": "unauthorized", "action": "listen"}
            await ws.send(json.dumps({"action": "auth", "key": sim.urls.key, "secret": sim.urls.secret}))
            reply = await ws.recv()
            assert isinstance(reply, bytes)  # binary frames of JSON, like Alpaca paper
            assert json.loads(reply) == {
                "stream": "authorization",
                "data": {"status": "authorized", "action": "authenticate"},
            }
        async with connect(sim.urls.trading_stream_url) as ws:
            await ws.send(json.dumps({"action": "authenticate", "data": {"key_id": "x", "secret_key": "y"}}))
            assert json.loads(await ws.recv())["data"]["status"] == "unauthorized"
            await asyncio.wait_for(ws.wait_closed(), 2)


def _client_frame(payload: bytes) -> bytes:
    """A masked binary websocket frame (RFC 6455 5.2), as a client must send it."""
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_client_that_stops_reading_gets_407_and_is_dropped(monkeypatch: Any) -> None:
    import base64
    import socket
    from urllib.parse import urlsplit

    from engine.sim import streams

    monkeypatch.setattr(streams, "MAX_QUEUED_FRAMES", 20)  # reach the limit in well under a second
    cfg = SimConfig(tick_ms=10, publish_interval_ms=10, option_quote_rate=1e6, option_symbol_cap=1000)
    async with Simulator(cfg) as sim:
        assert sim.urls is not None
        url = urlsplit(sim.urls.options_stream_url)
        # a raw client with a tiny receive buffer that never reads after subscribing
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (url.hostname, url.port))
        key = base64.b64encode(b"0123456789abcdef").decode()
        request = (
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nContent-Type: application/msgpack\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        await asyncio.sleep(0.2)
        await loop.sock_sendall(
            sock, _client_frame(msgpack.packb({"action": "auth", "key": sim.urls.key, "secret": sim.urls.secret}))
        )
        await asyncio.sleep(0.2)
        symbols = sim.market.universe.symbols[:1000]
        await loop.sock_sendall(sock, _client_frame(msgpack.packb({"action": "subscribe", "quotes": symbols})))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if not sim.hub.sessions["options"]:
                    break
            assert not sim.hub.sessions["options"]  # buffered, then cut (the 407 cannot reach a full socket)
        finally:
            sock.close()
