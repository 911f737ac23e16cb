"""Fault injection through the control API (HTTP) and the Python API, seen by real clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from engine.sim.config import SimConfig
from engine.sim.market import StockBar
from engine.sim.server import Simulator

CONFIG = SimConfig(
    seed=21,
    speed=1.0,
    tick_ms=10,
    publish_interval_ms=10,
    option_quote_rate=50.0,
    rate_limit_per_min=0,
    partial_fill_probability=0.0,
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(CONFIG)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[aiohttp.ClientSession]:
    assert sim.urls is not None
    headers = {"APCA-API-KEY-ID": sim.urls.key, "APCA-API-SECRET-KEY": sim.urls.secret}
    async with aiohttp.ClientSession(sim.urls.trading_url, headers=headers) as session:
        yield session


async def option_session(sim: Simulator, symbols: list[str]) -> ClientConnection:
    assert sim.urls is not None
    ws = await connect(sim.urls.options_stream_url, additional_headers={"Content-Type": "application/msgpack"})
    assert msgpack.unpackb(await ws.recv())[0]["msg"] == "connected"
    await ws.send(msgpack.packb({"action": "auth", "key": sim.urls.key, "secret": sim.urls.secret}))
    reply = msgpack.unpackb(await ws.recv())[0]
    if reply["T"] == "error":
        await ws.close()
        raise PermissionError(reply["code"])
    await ws.send(msgpack.packb({"action": "subscribe", "quotes": symbols}))
    assert msgpack.unpackb(await ws.recv())[0]["T"] == "subscription"
    return ws


def spy_symbols(sim: Simulator, n: int = 10) -> list[str]:
    return [s for s in sim.market.universe.symbols if s.startswith("SPY")][30 : 30 + n]


async def frames_within(ws: ClientConnection, seconds: float) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(ws.recv(decode=False), left)
            out.append(frame)
        except TimeoutError:
            break
    return out


async def test_drop_cuts_the_socket_and_the_client_can_reconnect(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await option_session(sim, spy_symbols(sim))
    async with http.post("/sim/streams/options/drop") as resp:
        assert (await resp.json()) == {"dropped": 1}
    with pytest.raises(ConnectionClosed):
        for _ in range(1000):
            await asyncio.wait_for(ws.recv(), 2)
    again = await option_session(sim, spy_symbols(sim))
    assert await frames_within(again, 0.3)
    await again.close()


async def test_mute_keeps_the_socket_open_without_data(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await option_session(sim, spy_symbols(sim))
    async with http.post("/sim/streams/options/faults", json={"mute": True}) as resp:
        assert (await resp.json())["mute"] is True
    await frames_within(ws, 0.05)  # frames already in flight
    assert await frames_within(ws, 0.4) == []
    await ws.ping()  # still connected
    sim.faults.streams["options"].mute = False
    assert await frames_within(ws, 0.3)
    await ws.close()


async def test_delayed_frames_arrive_late(sim: Simulator) -> None:
    ws = await option_session(sim, spy_symbols(sim))
    sim.faults.streams["options"].delay_ms = 150
    await frames_within(ws, 0.2)
    start = time.monotonic()
    got = await frames_within(ws, 0.8)
    assert 2 <= len(got) <= 7  # one frame per 150 ms instead of one per 10 ms
    assert time.monotonic() - start >= 0.75
    await ws.close()


async def test_malformed_frames_then_valid_ones(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await option_session(sim, spy_symbols(sim))
    async with http.post("/sim/streams/options/faults", json={"malformed_frames": 2}) as resp:
        assert resp.status == 200
    bad = 0
    good = 0
    for frame in await frames_within(ws, 0.4):
        try:
            msgpack.unpackb(frame)
            good += 1
        except (ValueError, msgpack.UnpackException):
            bad += 1
    assert bad == 2 and good > 3
    await ws.close()


async def test_406_on_the_next_connection_only(sim: Simulator) -> None:
    sim.faults.streams["options"].reject_connections = 1
    with pytest.raises(PermissionError, match="406"):
        await option_session(sim, spy_symbols(sim))
    ws = await option_session(sim, spy_symbols(sim))
    await ws.close()
    assert sim.faults.injected["options_rejected_connections"] == 1


@pytest.mark.parametrize("kind", ["429", "500", "504"])
async def test_next_rest_calls_fail_with_the_chosen_status(
    sim: Simulator, http: aiohttp.ClientSession, kind: str
) -> None:
    async with http.post("/sim/rest/faults", json={"kind": kind, "count": 2, "scope": "trading"}) as resp:
        assert resp.status == 200
    statuses = []
    for _ in range(3):
        async with http.get("/v2/account") as resp:
            statuses.append(resp.status)
            body = await resp.json()
    assert statuses == [int(kind), int(kind), 200] and "id" in body


async def test_timeout_fault_hangs_the_request(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.fail_rest("timeout", count=1, scope="data", hold_s=1.0)
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            "/v2/stocks/quotes/latest", params={"symbols": "SPY"}, timeout=aiohttp.ClientTimeout(total=0.3)
        ):
            pass
    async with http.get("/v2/stocks/quotes/latest", params={"symbols": "SPY"}) as resp:
        assert resp.status == 200


async def test_reject_next_order_with_403_then_422(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post("/sim/orders/reject", json={"status": 403}) as resp:
        assert resp.status == 200
    sim.reject_next_orders(422, message="simulated validation failure")
    body = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day", "client_order_id": "r1"}
    results = []
    for _ in range(3):
        async with http.post("/v2/orders", json=body) as resp:
            results.append((resp.status, await resp.json()))
    assert results[0][0] == 403 and results[0][1]["code"] == 40310000
    assert results[1] == (422, {"code": 42210000, "message": "simulated validation failure"})
    assert results[2][0] == 200
    async with http.get("/sim/inspect/submissions") as resp:
        assert (await resp.json()) == {"r1": 3}


async def trading_session(sim: Simulator) -> ClientConnection:
    assert sim.urls is not None
    ws = await connect(sim.urls.trading_stream_url)
    await ws.send(
        json.dumps({"action": "authenticate", "data": {"key_id": sim.urls.key, "secret_key": sim.urls.secret}})
    )
    assert json.loads(await ws.recv())["data"]["status"] == "authorized"
    await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
    assert json.loads(await ws.recv())["stream"] == "listening"
    return ws


async def updates_within(ws: ClientConnection, seconds: float) -> list[tuple[str, str]]:
    return [(m["data"]["event"], m["data"]["order"]["id"]) for m in map(json.loads, await frames_within(ws, seconds))]


async def test_duplicated_and_reordered_trade_updates(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ws = await trading_session(sim)
    order = {"symbol": "SPY", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    async with http.post("/sim/streams/trading/faults", json={"duplicate_updates": 1}) as resp:
        assert resp.status == 200
    async with http.post("/v2/orders", json=order) as resp:
        oid = (await resp.json())["id"]
    assert [e for e, i in await updates_within(ws, 0.3) if i == oid] == ["pending_new", "pending_new", "new", "fill"]
    sim.faults.streams["trading"].reorder_updates = 1
    async with http.post("/v2/orders", json=order) as resp:
        oid = (await resp.json())["id"]
    assert [e for e, i in await updates_within(ws, 0.3) if i == oid] == ["new", "pending_new", "fill"]
    await ws.close()


async def test_delayed_fill_races_a_cancel_and_a_replace(http: aiohttp.ClientSession, sim: Simulator) -> None:
    ws = await trading_session(sim)
    async with http.post("/sim/fills/delay", json={"ms": 400}) as resp:
        assert resp.status == 200
    order = {"symbol": "SPY", "qty": 3, "side": "buy", "type": "limit", "limit_price": "900", "time_in_force": "day"}
    async with http.post("/v2/orders", json=order) as resp:
        first = (await resp.json())["id"]
    await asyncio.sleep(0.05)  # the fill is decided (marketable) but not yet reported
    async with http.delete(f"/v2/orders/{first}") as resp:
        assert resp.status == 204
    async with http.post("/v2/orders", json=order) as resp:
        second = (await resp.json())["id"]
    await asyncio.sleep(0.05)
    async with http.patch(f"/v2/orders/{second}", json={"limit_price": "901"}) as resp:
        replacement = (await resp.json())["id"]
    seen = await updates_within(ws, 1.5)
    assert [e for e, i in seen if i == first] == [
        "pending_new",
        "new",
        "pending_cancel",
        "fill",
        "order_cancel_rejected",
    ]
    assert [e for e, i in seen if i == second] == [
        "pending_new",
        "new",
        "pending_replace",
        "fill",
        "order_replace_rejected",
    ]
    assert [e for e, i in seen if i == replacement] == ["rejected"]
    await ws.close()


async def test_clock_jump_moves_event_time(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/v2/clock") as resp:
        before = (await resp.json())["timestamp"]
    async with http.post("/sim/clock/advance", json={"seconds": 600}) as resp:
        assert resp.status == 200
    async with http.get("/v2/clock") as resp:
        after = (await resp.json())["timestamp"]
    from datetime import datetime

    gap = (datetime.fromisoformat(after) - datetime.fromisoformat(before)).total_seconds()
    assert 600 <= gap < 605


async def test_control_api_refuses_unknown_fields_and_kinds(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post("/sim/streams/options/faults", json={"mutee": True}) as resp:
        assert resp.status == 422 and "mutee" in (await resp.json())["message"]
    async with http.post("/sim/streams/bogus/drop") as resp:
        assert resp.status == 404
    async with http.post("/sim/rest/faults", json={"kind": "418"}) as resp:
        assert resp.status == 422
    async with http.delete("/sim/faults") as resp:
        assert resp.status == 200


async def test_inspection_matches_rest_views(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        "/v2/orders",
        json={
            "symbol": "QQQ",
            "qty": 4,
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": "i1",
        },
    ) as resp:
        assert resp.status == 200
    async with http.get("/sim/inspect") as resp:
        view = await resp.json()
    async with http.get("/v2/positions") as resp:
        positions = {p["symbol"]: float(p["qty"]) for p in await resp.json()}
    assert view["positions"] == positions == {"QQQ": 4.0}
    assert [f["client_order_id"] for f in view["fills"]] == ["i1"] and view["submissions"] == {"i1": 1}


async def test_a_crashing_market_loop_is_reported() -> None:
    sim = Simulator(SimConfig(speed=100.0))
    await sim.start()
    try:

        def broken(target_ns: int) -> list[StockBar]:
            raise RuntimeError("invariant broken")

        sim.market.advance_to = broken  # type: ignore[method-assign]  # a mock: a fault no real input can cause
        exc = await asyncio.wait_for(sim.wait_failed(), 5)
        assert "invariant broken" in str(exc)
    finally:
        await sim.stop()
