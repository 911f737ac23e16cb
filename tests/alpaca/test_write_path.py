"""The order write path end to end: ``Router.submit`` -> journal -> kept-alive connection -> a loopback server.

The server written here looks at the journal's intent log when the first byte of a request arrives, and the order
wire's write hook looks at it as the bytes go to the transport: the intent must already be there (in the page
cache, durable against kill -9) before any byte of its order is on the wire.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from domain.orders import IntentAction, Leg, OrderIntent, PositionIntent, PricePolicy, Side
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.execution import AlpacaExecution
from engine.kernel.clock import EventClock
from engine.kernel.market import Market
from engine.kernel.orders import OrderStateMachine
from engine.kernel.router import Router
from engine.service.journal import INTENT_LOG, Journal

NS = 1_000_000_000
T0 = 1_795_446_000 * NS  # a Monday, 2026-11-23 14:40 UTC
PUT, PUT2 = "SPY261231P00600000", "SPY261231P00590000"


def order_json(cid: str) -> dict[str, Any]:
    return {"id": f"id-{cid}", "client_order_id": cid, "status": "new", "symbol": "", "qty": "1", "filled_qty": "0",
            "order_class": "mleg", "type": "limit", "limit_price": "-1.4", "time_in_force": "day",
            "created_at": "2026-11-23T14:40:00Z", "updated_at": "2026-11-23T14:40:00Z", "legs": None}


class Broker(asyncio.Protocol):
    """Answers every order request with the order it names; notes the intent log at each request's first byte."""

    def __init__(self, owner: Server) -> None:
        self.owner = owner
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.buf:
            self.owner.log_at_first_byte.append(self.owner.log.read_bytes() if self.owner.log.exists() else b"")
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode()
        length = next((int(line.split(":")[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length")), 0)
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4 : end + 4 + length], b""
        method, target, _ = head.split("\r\n")[0].split(" ")
        self.owner.requests.append((method, target))
        cid = json.loads(body)["client_order_id"] if body else parse_qs(urlsplit(target).query)["client_order_id"][0]
        payload = json.dumps(order_json(cid)).encode()
        response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
        assert self.transport is not None
        if method == "POST" and self.owner.cut_posts > 0:
            self.owner.cut_posts -= 1
            self.transport.write(response[:30])  # the order is booked; its answer is cut off
            self.transport.close()
            return
        self.transport.write(response)


class Server:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.log_at_first_byte: list[bytes] = []
        self.requests: list[tuple[str, str]] = []
        self.cut_posts = 0
        self.url = ""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    srv = Server(tmp_path / INTENT_LOG)
    listener = await asyncio.get_running_loop().create_server(lambda: Broker(srv), "127.0.0.1", 0)
    srv.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    yield srv
    listener.close()


class Rig:
    def __init__(self, url: str, state: Path) -> None:
        self.market = Market(rate=0.04)
        self.market.book("SPY")
        self.market.on_underlying_quote("SPY", 604.99, 605.01, T0)
        self.market.add_contracts("SPY", [PUT, PUT2], [0, 0])
        for symbol, bid, ask in ((PUT, 3.00, 3.20), (PUT2, 1.50, 1.60)):
            self.market.books["SPY"].load_snapshot(symbol, bid, ask, 10, 10, T0, math.nan)
        self.market.snapshot_loaded("SPY")
        self.client = AlpacaBroker(url, url, "K", "S", order_connections=1, timeout_s=2.0)
        self.journal = Journal.open(state)
        self.journal.start()
        self.events: list[Any] = []
        self.router = Router(AlpacaExecution(self.client), OrderStateMachine(), self.market, EventClock(T0),
                             self.events.append, journal=self.journal, market_open=lambda ns: True)

    async def close(self) -> None:
        await self.router.drain(2.0)
        await self.client.close()
        await self.journal.aclose()


def spread(intent_id: str) -> OrderIntent:
    return OrderIntent(intent_id, "s", intent_id.split("-")[0], "SPY", IntentAction.OPEN,
                       (Leg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
                        Leg(PUT2, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)), 1, PricePolicy(timeout_s=60.0))


async def test_the_intent_is_in_the_journal_before_the_first_byte_of_its_order(server: Server, tmp_path: Path) -> None:
    rig = Rig(server.url, tmp_path)
    wire = rig.client.wire
    assert wire is not None and await wire.wait_ready(2.0)
    at_write: list[bytes] = []
    wire.on_written = lambda *_: at_write.append(server.log.read_bytes())  # this process, as the bytes go out
    rig.router.submit(spread("s1-open-1"))
    assert wire.counters["sent"] == 1  # on the socket before submit returned: no task hop, no loop iteration
    await rig.router.drain(2.0)
    assert server.requests == [("POST", "/v2/orders")]
    for log in (*at_write, *server.log_at_first_byte):  # the client's view at the write, the server's at arrival
        assert b'"oe-s1-open-1"' in log and b'"intent_id":"s1-open-1"' in log
    assert rig.router.working["s1-open-1"].order_id == "id-oe-s1-open-1"
    await rig.close()


async def test_an_order_whose_answer_was_cut_off_is_found_by_its_client_id_not_sent_again(
        server: Server, tmp_path: Path) -> None:
    server.cut_posts = 1
    rig = Rig(server.url, tmp_path)
    wire = rig.client.wire
    assert wire is not None and await wire.wait_ready(2.0)
    rig.router.submit(spread("s2-open-1"))
    await rig.router.drain(2.0)
    assert server.requests == [("POST", "/v2/orders"),
                               ("GET", "/v2/orders:by_client_order_id?client_order_id=oe-s2-open-1")]
    assert rig.router.submitted == {"oe-s2-open-1": 1}
    assert rig.router.counters["adopted_after_unknown"] == 1
    assert rig.router.working["s2-open-1"].order_id == "id-oe-s2-open-1"
    await rig.close()
