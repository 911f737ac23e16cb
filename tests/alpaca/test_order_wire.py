"""Order writes on kept-alive connections, against real loopback servers: an HTTP/1.1 server written here for the
faults only it can cause (a response cut into pieces, a close mid-response, silence), and the simulator.

Every answer must map to the kernel's venue errors exactly as the aiohttp path maps it (the same tests run with
the order wire off), and the request must be on the socket when ``submit`` returns.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from domain.orders import Leg, PositionIntent, Side
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.order_wire import OrderWire
from engine.kernel.venue_types import OrderRequest, OutcomeUnknown, RateLimited, Rejected
from engine.sim.server import Simulator
from tests.kernel.router.rig import sim_config

PUT, PUT2 = "SPY260130P00600000", "SPY260130P00595000"
ORDER = {"id": "o-1", "client_order_id": "oe-s1-open-1", "status": "accepted", "symbol": "", "qty": "1",
         "filled_qty": "0", "order_class": "mleg", "type": "limit", "limit_price": "-1.2", "time_in_force": "day",
         "created_at": "2026-01-05T15:00:00Z", "updated_at": "2026-01-05T15:00:00Z", "legs": None}


def http(status: int, payload: object = None, *, headers: dict[str, str] | None = None, chunked: bool = False,
         close: bool = False) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if close:
        lines.append("Connection: close")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        parts = (body[:half], body[half:])
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Reply:
    """What the server does with one request: write ``pieces`` (``pause_s`` apart), then maybe close."""

    pieces: tuple[bytes, ...]
    close: bool = False
    pause_s: float = 0.01


@dataclass
class RawServer:
    """Reads whole requests and answers each with the next planned reply (the last one repeats)."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[int, str, str, bytes]] = field(default_factory=list)
    """(connection number, method, path, body) per request."""
    connections: int = 0
    url: str = ""

    def plan(self, *replies: Reply | bytes) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply((r,)) for r in replies]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                first, *fields = head.decode().split("\r\n")
                length = next((int(f.split(":")[1]) for f in fields if f.lower().startswith("content-length")), 0)
                body = await reader.readexactly(length)
                method, path, _ = first.split(" ")
                self.requests.append((number, method, path, body))
                reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
                for piece in reply.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(reply.pause_s)
                if reply.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    srv = RawServer()
    listener = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    yield srv
    listener.close()


async def venue_on(url: str, *, connections: int = 1, timeout_s: float = 2.0, key: str = "K",
                   secret: str = "S") -> AlpacaExecution:
    client = AlpacaBroker(url, url, key, secret, order_connections=connections, timeout_s=timeout_s, get_retries=0)
    if client.wire is not None:
        assert await client.wire.wait_ready(2.0)
    return AlpacaExecution(client)


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def condor(cid: str = "oe-s1-open-1") -> OrderRequest:
    return OrderRequest(client_id=cid, qty=1, limit=-1.2, legs=(Leg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
                                                                Leg(PUT2, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)))


async def test_the_request_is_on_the_socket_when_submit_returns_and_the_connection_is_kept(server: RawServer) -> None:
    response = http(200, ORDER)
    server.plan(Reply((response[:20], response[20:75], response[75:])))  # one answer in three reads
    venue = await venue_on(server.url)
    wire = venue.client.wire
    assert wire is not None
    pending = venue.submit(condor())
    assert wire.counters["sent"] == 1  # written before submit returned, before any await
    first = await pending
    second = await venue.submit(condor("oe-s2-open-1"))
    assert (first.id, first.client_id, second.id) == ("o-1", "oe-s1-open-1", "o-1")
    assert [(n, m, p) for n, m, p, _ in server.requests] == [(0, "POST", "/v2/orders"), (0, "POST", "/v2/orders")]
    assert json.loads(server.requests[1][3])["client_order_id"] == "oe-s2-open-1"
    assert server.connections == 1 and wire.counters["connects"] == 1  # one connection carried both
    await venue.close()


async def test_a_connection_the_server_closes_between_requests_is_replaced(server: RawServer) -> None:
    server.plan(Reply((http(200, ORDER),), close=True))
    venue = await venue_on(server.url)
    wire = venue.client.wire
    assert wire is not None
    await venue.submit(condor())
    await until(lambda: wire.counters["connects"] == 2)  # the pool replaced the connection the server closed
    assert server.connections == 2
    order = await venue.submit(condor("oe-s2-open-1"))
    assert order.id == "o-1" and wire.counters["sent"] == 2 and wire.counters["dropped"] == 0
    await venue.close()


async def test_connection_close_in_the_response_is_honoured(server: RawServer) -> None:
    server.plan(Reply((http(200, ORDER, close=True),)))
    venue = await venue_on(server.url)
    wire = venue.client.wire
    assert wire is not None
    await venue.submit(condor())
    assert await wire.wait_ready(2.0)
    await venue.submit(condor("oe-s2-open-1"))
    assert [n for n, *_ in server.requests] == [0, 1]
    await venue.close()


async def test_a_close_mid_response_is_an_unknown_outcome(server: RawServer) -> None:
    response = http(200, ORDER)
    server.plan(Reply((response[:60],), close=True), Reply((response,)))
    venue = await venue_on(server.url)
    wire = venue.client.wire
    assert wire is not None
    with pytest.raises(OutcomeUnknown):
        await venue.submit(condor())
    assert wire.counters["dropped"] == 1
    assert await wire.wait_ready(2.0)
    assert (await venue.submit(condor())).id == "o-1"  # the next request goes out on a new connection
    assert server.connections == 2
    await venue.close()


async def test_no_answer_in_time_is_an_unknown_outcome_and_the_connection_is_dropped(server: RawServer) -> None:
    server.plan(Reply((b"HTTP/1.1 200 OK\r\n",), pause_s=1.0), Reply((http(200, ORDER),)))
    venue = await venue_on(server.url, timeout_s=0.2)
    wire = venue.client.wire
    assert wire is not None
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        await venue.submit(condor())
    assert time.monotonic() - started < 0.9
    assert await wire.wait_ready(2.0)
    assert (await venue.submit(condor())).id == "o-1"
    assert server.connections == 2  # never another request on the connection whose answer is still due
    await venue.close()


async def test_a_chunked_answer_to_a_replace(server: RawServer) -> None:
    server.plan(http(200, {**ORDER, "id": "o-2", "client_order_id": "c.r1"}, chunked=True))
    venue = await venue_on(server.url)
    order = await venue.replace("o-1", limit=-1.15, client_id="c.r1")
    assert (order.id, order.client_id) == ("o-2", "c.r1")
    assert server.requests[0][1:] == ("PATCH", "/v2/orders/o-1", b'{"limit_price":"-1.15","client_order_id":"c.r1"}')
    await venue.close()


MAPPING_CASES = [
    pytest.param(http(429, {"code": 42910000, "message": "rate limit exceeded"},
                      headers={"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "@"}),
                 id="429"),
    pytest.param(http(500, {"code": 50000000, "message": "oops"}), id="500"),
    pytest.param(http(422, {"code": 42210000, "message": "client_order_id must be unique"}), id="422-duplicate"),
    pytest.param(http(403, {"code": 40310000, "message": "potential wash trade detected"}, chunked=True),
                 id="403-wash"),
    pytest.param(http(422, {"code": 42210000, "message": "order is not cancelable"}, close=True), id="422-close"),
]


async def _outcome(url: str, connections: int) -> list[tuple[str, object]]:
    venue = await venue_on(url, connections=connections)
    outcome: list[tuple[str, object]] = []
    for call in (lambda: venue.submit(condor()), lambda: venue.cancel("o-1"),
                 lambda: venue.replace("o-1", limit=1.0, client_id="c.r1")):
        try:
            await call()
            outcome.append(("ok", None))
        except RateLimited as exc:
            outcome.append((type(exc).__name__, (exc.status, 1.0 < exc.retry_after <= 3.0)))
        except Rejected as exc:
            outcome.append((type(exc).__name__, (exc.status, exc.code, exc.reason, exc.duplicate, exc.message)))
        except OutcomeUnknown as exc:
            outcome.append((type(exc).__name__, exc.status))
    if connections:
        assert venue.client.wire is not None and venue.client.wire.counters["sent"] >= 1
    await venue.close()
    return outcome


@pytest.mark.parametrize("response", MAPPING_CASES)
async def test_http_errors_map_as_on_the_aiohttp_path(server: RawServer, response: bytes) -> None:
    response = response.replace(b"X-RateLimit-Reset: @", f"X-RateLimit-Reset: {int(time.time()) + 3}".encode())
    server.plan(response)
    wire = await _outcome(server.url, connections=1)
    session = await _outcome(server.url, connections=0)
    assert wire == session
    kinds = {kind for kind, _ in wire}
    assert kinds == {{b"429": "RateLimited", b"500": "OutcomeUnknown"}.get(response[9:12], "Rejected")}
    assert [m for _, m, _, _ in server.requests] == ["POST", "DELETE", "PATCH"] * 2


async def test_orders_against_the_simulator_go_out_on_one_kept_connection() -> None:
    sim = Simulator(sim_config())
    urls = await sim.start()
    venue = await venue_on(urls.trading_url, key=urls.key, secret=urls.secret)
    wire = venue.client.wire
    assert wire is not None
    try:
        today = dt.datetime.fromtimestamp(sim.now_ns / 1e9, dt.UTC).date()
        listing = await venue.listed_contracts("SPY", today, today + dt.timedelta(days=10))
        calls = sorted(c.symbol for c in listing.contracts if c.symbol[-9] == "C")[:2]
        legs = (Leg(calls[0], Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
                Leg(calls[1], Side.SELL, 1, PositionIntent.SELL_TO_OPEN))
        placed = [await venue.submit(OrderRequest(client_id=f"oe-w{n}-open-1", qty=1, limit=0.05, legs=legs))
                  for n in range(3)]
        moved = await venue.replace(placed[0].id, limit=0.06, client_id="oe-w0-open-1.r1")
        await venue.cancel(moved.id)
        sim.fail_rest("500_after", scope="orders")
        with pytest.raises(OutcomeUnknown):
            await venue.submit(OrderRequest(client_id="oe-w9-open-1", qty=1, limit=0.05, legs=legs))
        found = await venue.order_by_client_id("oe-w9-open-1")
        assert found is not None  # the 500 came after the order reached the book: it is there, by its client id
        assert [o.client_id for o in placed] == [f"oe-w{n}-open-1" for n in range(3)]
        assert wire.counters["sent"] == 6 and wire.counters["connects"] == 1  # all on the one kept connection
    finally:
        await venue.close()
        await sim.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_https_goes_through_tls_with_the_certificate_checked(server: RawServer,
                                                                   certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=served)
    port = listener.sockets[0].getsockname()[1]
    server.plan(http(200, ORDER))
    trusted = ssl.create_default_context(cafile=str(cert))
    wire = OrderWire(f"https://localhost:{port}", {"APCA-API-KEY-ID": "K"}, connections=1, ssl_context=trusted)
    stranger = OrderWire(f"https://localhost:{port}", {}, connections=1)  # the system's roots: not this certificate
    try:
        assert await wire.wait_ready(5.0)
        sent = wire.send("POST", "/v2/orders", b"{}")
        assert sent is not None
        response = await sent
        assert (response.status, json.loads(response.body)["id"]) == (200, "o-1")
        assert server.requests == [(0, "POST", "/v2/orders", b"{}")]
        assert not await stranger.wait_ready(0.5) and stranger.counters["connect_failures"] >= 1
    finally:
        await wire.close()
        await stranger.close()
        listener.close()
