"""REST client against a real loopback aiohttp server: typed errors, rate-limit headers, pagination, auth."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from engine.alpaca.broker import (
    AlpacaBroker,
    BrokerRejected,
    BrokerUnavailable,
    LegRequest,
    NotFound,
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
)

ORDER = {
    "id": "o-1",
    "client_order_id": "c-1",
    "status": "accepted",
    "symbol": "SPY260130P00600000",
    "qty": "1",
    "filled_qty": "0",
    "side": "buy",
    "type": "limit",
    "limit_price": "1.05",
    "time_in_force": "day",
    "created_at": "2026-01-05T15:00:00Z",
    "updated_at": "2026-01-05T15:00:00Z",
    "submitted_at": "2026-01-05T15:00:00Z",
    "extended_hours": False,
    "order_class": "simple",
    "legs": None,
}


class Server:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str], bytes]] = []
        self.responses: dict[tuple[str, str], list[Any]] = {}
        self.url = ""

    def plan(self, method: str, path: str, *responses: Any) -> None:
        self.responses[(method, path)] = list(responses)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path, dict(request.query), dict(request.headers), body))
        queue = self.responses.get((request.method, request.path), [])
        resp = (
            queue.pop(0)
            if len(queue) > 1
            else (queue[0] if queue else (404, {"code": 40410000, "message": "not found"}))
        )
        if resp == "hang":
            await asyncio.sleep(0.6)
            return web.Response(status=200)
        status, payload, *headers = resp
        if payload is None:
            return web.Response(status=status, headers=headers[0] if headers else None)
        return web.json_response(payload, status=status, headers=headers[0] if headers else None)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


def broker(srv: Server, **kw: Any) -> AlpacaBroker:
    return AlpacaBroker(srv.url, srv.url, "KEY-ID", "SECRET-VALUE", retry_delay_s=0.01, **kw)


async def test_submit_sends_keys_as_headers_and_mleg_body_and_parses_order(server: Server) -> None:
    server.plan("POST", "/v2/orders", (200, ORDER))
    req = OrderRequest(
        qty="2",
        type="limit",
        time_in_force="day",
        order_class="mleg",
        limit_price="-1.25",
        client_order_id="c-1",
        legs=(
            LegRequest("SPY260130P00600000", "1", "sell", "sell_to_open"),
            LegRequest("SPY260130P00595000", "1", "buy", "buy_to_open"),
        ),
    )
    async with broker(server) as b:
        order = await b.submit_order(req)
        assert "SECRET" not in repr(b)
    assert order.id == "o-1" and order.limit_price == "1.05"
    _, _, _, headers, body = server.requests[0]
    assert headers["APCA-API-KEY-ID"] == "KEY-ID" and headers["APCA-API-SECRET-KEY"] == "SECRET-VALUE"
    sent = json.loads(body)
    assert sent == {
        "qty": "2",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "-1.25",
        "client_order_id": "c-1",
        "order_class": "mleg",
        "legs": [
            {"symbol": "SPY260130P00600000", "ratio_qty": "1", "side": "sell", "position_intent": "sell_to_open"},
            {"symbol": "SPY260130P00595000", "ratio_qty": "1", "side": "buy", "position_intent": "buy_to_open"},
        ],
    }


@pytest.mark.parametrize("status", [403, 422])
async def test_broker_refusal_is_a_rejection_with_code_and_body(server: Server, status: int) -> None:
    server.plan(
        "POST",
        "/v2/orders",
        (status, {"code": 40310000, "message": "insufficient buying power", "buying_power": "10.00"}),
    )
    async with broker(server) as b:
        with pytest.raises(BrokerRejected) as info:
            await b.submit_order(OrderRequest(qty="1", type="market", time_in_force="day", symbol="X", side="buy"))
    assert info.value.status == status and info.value.code == 40310000
    assert info.value.body["buying_power"] == "10.00"
    assert len(server.requests) == 1  # a write is never retried


async def test_server_error_on_a_write_is_an_unknown_outcome_not_a_rejection(server: Server) -> None:
    server.plan("POST", "/v2/orders", (503, {"code": 50000000, "message": "busy"}))
    async with broker(server) as b:
        with pytest.raises(OutcomeUnknown):
            await b.submit_order(OrderRequest(qty="1", type="market", time_in_force="day", symbol="X", side="buy"))
    assert len(server.requests) == 1


async def test_timeout_on_a_write_is_an_unknown_outcome(server: Server) -> None:
    server.plan("POST", "/v2/orders", "hang")
    async with broker(server, timeout_s=0.2) as b:
        with pytest.raises(OutcomeUnknown):
            await b.submit_order(OrderRequest(qty="1", type="market", time_in_force="day", symbol="X", side="buy"))


async def test_reads_are_retried_on_server_errors(server: Server) -> None:
    server.plan("GET", "/v2/orders/o-1", (500, {"code": 1, "message": "oops"}), (200, ORDER))
    async with broker(server) as b:
        order = await b.get_order("o-1")
    assert order.id == "o-1" and len(server.requests) == 2
    assert server.requests[0][2] == {"nested": "true"}


async def test_reads_that_keep_failing_are_unavailable(server: Server) -> None:
    server.plan("GET", "/v2/account", (502, {"code": 1, "message": "bad gateway"}))
    async with broker(server, get_retries=1) as b:
        with pytest.raises(BrokerUnavailable):
            await b.account()
    assert len(server.requests) == 2


async def test_rate_limit_headers_are_parsed_and_429_says_when_to_retry(server: Server) -> None:
    reset = int(time.time()) + 3
    hdr = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    server.plan("GET", "/v2/positions", (429, {"code": 42910000, "message": "rate limit exceeded"}, hdr))
    async with broker(server) as b:
        with pytest.raises(RateLimited) as info:
            await b.positions()
        assert b.rate_limit is not None and b.rate_limit.limit == 200 and b.rate_limit.remaining == 0
    assert 1.0 < info.value.retry_after_s <= 3.0
    assert len(server.requests) == 1


async def test_unknown_client_order_id_is_none_and_cancel_accepts_204(server: Server) -> None:
    server.plan("DELETE", "/v2/orders/o-1", (204, None))
    async with broker(server) as b:
        assert await b.get_order_by_client_id("nope") is None
        await b.cancel_order("o-1")
        with pytest.raises(NotFound):
            await b.get_order("missing")


async def test_contracts_and_chain_follow_every_page(server: Server) -> None:
    def contract(i: int) -> dict[str, Any]:
        return {
            "id": str(i),
            "symbol": f"SPY260130C00{600 + i:03d}000",
            "root_symbol": "SPY",
            "underlying_symbol": "SPY",
            "strike_price": str(600 + i),
            "expiration_date": "2026-01-30",
            "type": "call",
            "size": "100",
            "open_interest": "10",
        }

    server.plan(
        "GET",
        "/v2/options/contracts",
        (200, {"option_contracts": [contract(0), contract(1)], "next_page_token": "p2"}),
        (200, {"option_contracts": [contract(2)], "next_page_token": None}),
    )
    snap = {
        "latestQuote": {"t": "2026-01-05T15:00:00Z", "bp": 1.0, "ap": 1.1, "bs": 1, "as": 2},
        "greeks": {"delta": 0.5},
        "impliedVolatility": 0.2,
    }
    server.plan(
        "GET",
        "/v1beta1/options/snapshots/SPY",
        (200, {"snapshots": {"A": snap}, "next_page_token": "x"}),
        (200, {"snapshots": {"B": snap}, "next_page_token": None}),
    )
    async with broker(server) as b:
        contracts = await b.option_contracts(["SPY"], expiration_gte="2026-01-01", strike_gte=590.5)
        chain = await b.option_chain("SPY")
    assert [c.symbol for c in contracts][-1] == "SPY260130C00602000" and len(contracts) == 3
    assert server.requests[1][2]["page_token"] == "p2" and server.requests[0][2]["strike_price_gte"] == "590.5"
    assert set(chain) == {"A", "B"} and chain["A"].latestQuote is not None and chain["A"].latestQuote.as_ == 2


async def test_the_catalog_listing_decodes_every_page_into_the_fields_it_keeps(server: Server) -> None:
    record = {"id": "904837e3-3b76-47ec-b432-046db621571b", "symbol": "SPY260130P00590000",
              "name": "SPY Jan 30 2026 590 Put", "status": "active", "tradable": True,
              "expiration_date": "2026-01-30", "root_symbol": "SPY",
              "underlying_symbol": "SPY", "underlying_asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
              "type": "put", "style": "american", "strike_price": "590", "multiplier": "100", "size": "100",
              "open_interest": "237", "open_interest_date": "2026-01-05", "close_price": "3.1",
              "close_price_date": "2026-01-05", "deliverables": [{"type": "equity", "symbol": "SPY"}]}
    server.plan("GET", "/v2/options/contracts",
                (200, {"option_contracts": [record], "next_page_token": "p2"}),
                (200, {"option_contracts": [{**record, "symbol": "SPY260130P00595000", "strike_price": "595",
                                             "tradable": False}], "next_page_token": None}))
    async with broker(server) as b:
        listed = await b.listed_contracts(["SPY"], expiration_gte="2026-01-01", expiration_lte="2026-02-01")
    assert [(c.symbol, c.underlying_symbol, c.expiration_date, c.type, c.strike_price, c.open_interest, c.tradable)
            for c in listed] == [("SPY260130P00590000", "SPY", dt.date(2026, 1, 30), "put", "590", "237", True),
                                 ("SPY260130P00595000", "SPY", dt.date(2026, 1, 30), "put", "595", "237", False)]
    first, second = (r[2] for r in server.requests)
    assert first["status"] == "active" and first["expiration_date_lte"] == "2026-02-01" and first["limit"] == "10000"
    assert second["page_token"] == "p2"
