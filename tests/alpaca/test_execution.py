"""The Alpaca adapter of the kernel's ports: Alpaca's JSON in, venue types out; HTTP errors as venue errors.

A loopback aiohttp server plays Alpaca; the adapter (``AlpacaExecution`` over ``AlpacaBroker``) is what the
router, the settlement poller, the subscriptions and restart reconciliation call.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp import web

from domain.orders import AssetClass, Leg, OrderStatus, PositionIntent, Side
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.decode import order_event
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.trading.models import TradeUpdate
from engine.alpaca.feeds.trading.protocol import TradeUpdateReceived, TradingProtocol
from engine.kernel.ports import ExecutionClient, ReferenceData
from engine.kernel.venue_types import (
    Contract,
    NotFound,
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    VenueError,
)

PUT, PUT2 = "SPY260130P00600000", "SPY260130P00595000"
NS = 1_000_000_000


def leg_json(oid: str, symbol: str, side: str, intent: str, filled: str, avg: str | None) -> dict[str, Any]:
    return {"id": oid, "client_order_id": f"{oid}-c", "status": "filled", "symbol": symbol, "asset_class": "us_option",
            "qty": "2", "filled_qty": filled, "filled_avg_price": avg, "side": side, "position_intent": intent,
            "order_class": "mleg", "ratio_qty": "1", "updated_at": "2026-01-05T15:00:01.123456789Z", "legs": None}


MLEG = {
    "id": "o-1", "client_order_id": "oe-s1-open-1", "status": "filled", "symbol": "", "asset_class": "",
    "qty": "2", "filled_qty": "2", "filled_avg_price": "-1.25", "order_class": "mleg", "type": "limit",
    "side": "buy", "time_in_force": "day", "limit_price": "-1.2", "replaced_by": None, "replaces": "o-0",
    "created_at": "2026-01-05T15:00:00Z", "submitted_at": "2026-01-05T15:00:00.5Z",
    "updated_at": "2026-01-05T15:00:01.123456789Z",
    "legs": [leg_json("l-1", PUT, "sell", "sell_to_open", "2", "3.5"),
             leg_json("l-2", PUT2, "buy", "buy_to_open", "2", "2.25")],
}
STOCK = {"id": "o-2", "client_order_id": "oe-u-1", "status": "accepted_for_bidding", "symbol": "SPY",
         "asset_class": "us_equity", "qty": "100", "filled_qty": "", "filled_avg_price": None, "order_class": "",
         "side": "sell", "type": "market", "updated_at": "2026-01-05T15:00:02Z"}


class Alpaca:
    """Answers planned per (method, path); a plan's last answer repeats. Unplanned: 404."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.answers: dict[tuple[str, str], list[Any]] = {}
        self.url = ""

    def plan(self, method: str, path: str, *answers: Any) -> None:
        self.answers[(method, path)] = list(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query), await request.read()))
        queue = self.answers.get((request.method, request.path), [])
        status, payload, *headers = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else (
            404, {"code": 40410000, "message": "not found"})
        hdr = headers[0] if headers else None
        if isinstance(payload, bytes):
            return web.Response(status=status, body=payload, headers=hdr)
        if payload is None:
            return web.Response(status=status, headers=hdr)
        return web.json_response(payload, status=status, headers=hdr)


@pytest.fixture
async def alpaca() -> AsyncIterator[Alpaca]:
    srv = Alpaca()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield srv
    await runner.cleanup()


@pytest.fixture
async def venue(alpaca: Alpaca) -> AsyncIterator[AlpacaExecution]:
    adapter = AlpacaExecution(AlpacaBroker(alpaca.url, alpaca.url, "K", "S", retry_delay_s=0.01, get_retries=1))
    yield adapter
    await adapter.close()


def condor_request() -> OrderRequest:
    return OrderRequest(client_id="oe-s1-open-1", qty=2, limit=-1.2,
                        legs=(Leg(PUT, Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
                              Leg(PUT2, Side.BUY, 1, PositionIntent.BUY_TO_OPEN)))


async def test_the_adapter_is_both_ports(venue: AlpacaExecution) -> None:
    execution: ExecutionClient = venue  # mypy checks the adapter against both protocols
    reference: ReferenceData = venue
    assert execution is venue and reference is venue


async def test_an_mleg_request_goes_out_as_alpacas_body_and_the_answer_comes_back_as_a_venue_order(
        alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("POST", "/v2/orders", (200, MLEG))
    order = await venue.submit(condor_request())
    body = json.loads(alpaca.requests[0][3])
    assert body == {"qty": "2", "type": "limit", "time_in_force": "day", "limit_price": "-1.2",
                    "client_order_id": "oe-s1-open-1", "order_class": "mleg",
                    "legs": [{"symbol": PUT, "ratio_qty": "1", "side": "sell", "position_intent": "sell_to_open"},
                             {"symbol": PUT2, "ratio_qty": "1", "side": "buy", "position_intent": "buy_to_open"}]}
    assert (order.id, order.client_id, order.status, order.multi_leg, order.has_legs) == (
        "o-1", "oe-s1-open-1", OrderStatus.FILLED, True, True)
    assert (order.qty, order.filled_qty, order.avg_price, order.limit, order.replaces) == (2.0, 2.0, -1.25, -1.2, "o-0")
    assert order.updated_ns == 1_767_625_201_123_456_789  # all nine digits
    assert [(leg.id, leg.symbol, leg.side, leg.asset_class, leg.filled_qty, leg.avg_price) for leg in order.legs] == [
        ("l-1", PUT, Side.SELL, AssetClass.OPTION, 2.0, 3.5), ("l-2", PUT2, Side.BUY, AssetClass.OPTION, 2.0, 2.25)]


async def test_a_stock_order_and_alpacas_odd_fields(alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("POST", "/v2/orders", (200, STOCK))
    order = await venue.submit(OrderRequest(client_id="oe-u-1", qty=100,
                                            legs=(Leg("SPY", Side.SELL, 1, None, AssetClass.EQUITY),)))
    assert json.loads(alpaca.requests[0][3]) == {"qty": "100", "type": "market", "time_in_force": "day",
                                                 "symbol": "SPY", "side": "sell", "client_order_id": "oe-u-1"}
    assert order.status is OrderStatus.ACCEPTED  # accepted_for_bidding
    assert (order.asset_class, order.side, order.filled_qty, order.avg_price, order.multi_leg) == (
        AssetClass.EQUITY, Side.SELL, 0.0, None, False)  # "" filled_qty is none filled


async def test_replace_cancel_and_reads(alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("PATCH", "/v2/orders/o-1", (200, {**MLEG, "id": "o-3", "client_order_id": "c.r1", "status": "new"}))
    alpaca.plan("DELETE", "/v2/orders/o-3", (204, None))
    alpaca.plan("GET", "/v2/orders", (200, [MLEG, STOCK]))
    alpaca.plan("GET", "/v2/orders:by_client_order_id", (404, {"code": 40410000, "message": "order not found"}))
    new = await venue.replace("o-1", limit=-1.15, client_id="c.r1")
    assert json.loads(alpaca.requests[0][3]) == {"limit_price": "-1.15", "client_order_id": "c.r1"}
    assert (new.id, new.client_id, new.status) == ("o-3", "c.r1", OrderStatus.NEW)
    await venue.cancel("o-3")
    assert [o.id for o in await venue.orders("all")] == ["o-1", "o-2"]
    assert alpaca.requests[-1][2] == {"status": "all", "limit": "500", "nested": "true"}
    assert await venue.order_by_client_id("nobody") is None
    with pytest.raises(NotFound):
        await venue.order("o-9")


def test_a_trade_update_becomes_an_order_event() -> None:
    frame = {"stream": "trade_updates", "data": {
        "event": "fill", "execution_id": "x-parent", "timestamp": "2026-01-05T15:00:01.5Z", "event_id": "e-7",
        "price": "-1.25", "qty": "2", "position_qtys": {PUT: "-2", PUT2: "2", "XYZ": ""}, "order": MLEG,
        "legs": [{"execution_id": "x-1", "symbol": PUT, "qty": "2", "price": "3.5", "order_id": "l-1",
                  "timestamp": "2026-01-05T15:00:01.000000007Z"},
                 {"execution_id": "x-2", "symbol": PUT2, "qty": "2", "price": "2.25", "order_id": "l-2"}]}}
    (received,) = TradingProtocol("k", "s").receive(json.dumps(frame).encode())
    assert isinstance(received, TradeUpdateReceived)
    event = order_event(received.update)
    assert (event.kind, event.event_id, event.execution_id, event.price, event.qty) == ("fill", "e-7", "x-parent",
                                                                                        -1.25, 2.0)
    assert event.ts_ns == 1_767_625_201_500_000_000 and event.order.id == "o-1" and len(event.order.legs) == 2
    assert event.position_qtys == {PUT: -2.0, PUT2: 2.0}  # an empty quantity is no quantity
    assert [(x.execution_id, x.symbol, x.qty, x.price, x.order_id, x.ts_ns) for x in event.legs] == [
        ("x-1", PUT, 2.0, 3.5, "l-1", 1_767_625_201_000_000_007), ("x-2", PUT2, 2.0, 2.25, "l-2", 0)]
    single = order_event(msgspec.convert(
        {"event": "order_cancel_rejected", "order": STOCK, "at": "2026-01-05T15:00:03Z"}, TradeUpdate))
    assert (single.kind, single.event_id, single.ts_ns, single.legs) == (
        "order_cancel_rejected", "", 1_767_625_203 * NS, ())  # no event id, no timestamp: nothing to tell apart by


@pytest.mark.parametrize(("status", "message", "reason", "duplicate"), [
    (422, "client_order_id must be unique", "broker_rejected_422", True),
    (422, "invalid limit_price 3.01. sub-penny increment does not fulfill minimum pricing criteria",
     "broker_rejected_422", False),
    (403, "potential wash trade detected. use complex orders", "wash_trade", False),
    (403, "insufficient qty available for order (requested: 2, available: 0)", "insufficient_qty", False),
    (403, "insufficient buying power", "broker_rejected_403", False),
])
async def test_refusals_are_rejections_with_a_venue_neutral_reason(
        alpaca: Alpaca, venue: AlpacaExecution, status: int, message: str, reason: str, duplicate: bool) -> None:
    code = 40310000 if status == 403 else 42210000
    alpaca.plan("POST", "/v2/orders", (status, {"code": code, "message": message}))
    with pytest.raises(Rejected) as info:
        await venue.submit(condor_request())
    exc = info.value
    assert (exc.status, exc.code, exc.reason, exc.duplicate, exc.message) == (status, code, reason, duplicate, message)
    assert not isinstance(exc, NotFound) and len(alpaca.requests) == 1  # a write is never retried


async def test_429_says_when_to_retry(alpaca: Alpaca, venue: AlpacaExecution) -> None:
    reset = int(time.time()) + 3
    hdr = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    alpaca.plan("POST", "/v2/orders", (429, {"code": 42910000, "message": "rate limit exceeded"}, hdr))
    with pytest.raises(RateLimited) as info:
        await venue.submit(condor_request())
    assert 1.0 < info.value.retry_after <= 3.0 and info.value.status == 429


async def test_server_errors_are_an_unknown_outcome_for_writes_and_unavailable_for_reads(
        alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("POST", "/v2/orders", (503, {"code": 50000000, "message": "busy"}))
    alpaca.plan("DELETE", "/v2/orders/o-1", (500, {"code": 50000000, "message": "oops"}))
    alpaca.plan("GET", "/v2/orders/o-1", (502, {"code": 1, "message": "bad gateway"}))
    alpaca.plan("GET", "/v2/positions", (200, b"<html>not json</html>"))
    with pytest.raises(OutcomeUnknown) as unknown:
        await venue.submit(condor_request())
    assert unknown.value.status == 503
    with pytest.raises(OutcomeUnknown):
        await venue.cancel("o-1")
    with pytest.raises(Unavailable):
        await venue.order("o-1")
    assert [r[0] for r in alpaca.requests].count("GET") == 2  # the read was retried once
    with pytest.raises(VenueError) as odd:
        await venue.positions()
    assert type(odd.value) is VenueError  # an answer Alpaca does not document: neither refused nor unknown


async def test_account_positions_fills_and_settlements(alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("GET", "/v2/account", (200, {"id": "acct-1", "equity": "100000.5", "cash": "90000",
                                             "buying_power": "180000", "options_buying_power": None,
                                             "options_trading_level": 3}))
    alpaca.plan("GET", "/v2/positions", (200, [{"symbol": PUT, "qty": "-2", "side": "short"}]))
    fills = [{"id": f"f-{i}", "activity_type": "FILL", "transaction_time": "2026-01-05T15:00:01Z",
              "symbol": PUT, "side": "sell", "qty": "1", "price": "3.5", "order_id": "l-1"} for i in range(101)]
    settled = [{"id": "a-1", "activity_type": "OPEXP", "date": "2026-01-30", "symbol": PUT2, "qty": "2"},
               {"id": "a-2", "activity_type": "OPASN", "transaction_time": "2026-01-30T21:00:00Z", "symbol": PUT,
                "qty": "-1", "date": "not a date"}]
    alpaca.plan("GET", "/v2/account/activities", (200, fills[:100]), (200, fills[100:]))
    account = await venue.account()
    assert (account.id, account.equity, account.cash, account.buying_power, account.options_buying_power,
            account.options_level) == ("acct-1", 100000.5, 90000.0, 180000.0, None, 3)
    assert [(p.symbol, p.qty) for p in await venue.positions()] == [(PUT, -2.0)]
    executions = await venue.executions()
    assert len(executions) == 101 and alpaca.requests[-1][2]["page_token"] == "f-99"  # every page
    assert (executions[0].side, executions[0].qty, executions[0].price, executions[0].ts_ns) == (
        Side.SELL, 1.0, 3.5, 1_767_625_201 * NS)
    alpaca.plan("GET", "/v2/account/activities", (200, settled))
    expired, assigned = await venue.settlements()
    assert alpaca.requests[-1][2]["activity_types"] == "OPEXP,OPEXC,OPASN"
    assert (expired.kind, expired.qty, expired.date, expired.ts_ns) == ("expired", 2.0, dt.date(2026, 1, 30), 0)
    assert (assigned.kind, assigned.qty, assigned.date) == ("assigned", -1.0, None)


async def test_a_long_listing_is_read_in_pages_of_a_thousand_and_kept_whole(alpaca: Alpaca,
                                                                             venue: AlpacaExecution) -> None:
    """2,500 contracts: three requests of ``limit`` 1,000, converted a page at a time, every contract kept."""
    def contract(i: int) -> dict[str, object]:
        return {"symbol": f"SPY260130P{i:08d}", "underlying_symbol": "SPY", "expiration_date": "2026-01-30",
                "type": "put", "strike_price": str(i), "tradable": True, "ppind": i == 0}

    pages = [list(range(0, 1000)), list(range(1000, 2000)), list(range(2000, 2500))]
    alpaca.plan("GET", "/v2/options/contracts", *[
        (200, {"option_contracts": [contract(i) for i in page], "next_page_token": f"p{n}" if n < 2 else None})
        for n, page in enumerate(pages)])
    listing = await venue.listed_contracts("SPY", dt.date(2026, 1, 5), dt.date(2026, 2, 4))
    asked = [(r[2]["limit"], r[2].get("page_token")) for r in alpaca.requests]
    assert asked == [("1000", None), ("1000", "p0"), ("1000", "p1")]
    assert [c.strike for c in listing.contracts] == [float(i) for i in range(2500)]
    assert (listing.penny, listing.listed) == (True, 2500)


async def test_listings_snapshots_and_quotes(alpaca: Alpaca, venue: AlpacaExecution) -> None:
    alpaca.plan("GET", "/v2/options/contracts", (200, {"option_contracts": [
        {"symbol": PUT, "underlying_symbol": "SPY", "expiration_date": "2026-01-30", "type": "put",
         "strike_price": "600", "open_interest": "12", "tradable": True, "ppind": True},
        {"symbol": PUT2, "underlying_symbol": "SPY", "expiration_date": "2026-01-30", "type": "put",
         "strike_price": "595", "tradable": False}], "next_page_token": None}))
    alpaca.plan("GET", "/v1beta1/options/snapshots", (200, {"snapshots": {
        PUT: {"latestQuote": {"t": "2026-01-05T15:00:00Z", "bp": 3.4, "ap": 3.6, "bs": 5, "as": 7},
              "latestTrade": {"p": 3.5}},
        PUT2: {"latestTrade": {"p": 2.0}}}}))
    alpaca.plan("GET", "/v2/stocks/SPY/quotes/latest", (200, {"symbol": "SPY", "quote": {
        "t": "2026-01-05T15:00:00Z", "bp": 599.9, "ap": 600.1}}))
    listing = await venue.listed_contracts("SPY", dt.date(2026, 1, 5), dt.date(2026, 2, 4))
    assert alpaca.requests[0][2]["expiration_date_lte"] == "2026-02-04"
    assert listing.contracts == [Contract(PUT, "SPY", dt.date(2026, 1, 30), 600.0, False, 12)]  # tradable only
    assert (listing.penny, listing.listed) == (True, 2)
    snaps = await venue.option_snapshots([PUT, PUT2])
    assert list(snaps) == [PUT]  # no quote, no snapshot
    s = snaps[PUT]
    assert (s.bid, s.ask, s.bid_size, s.ask_size, s.ts_ns, s.last) == (3.4, 3.6, 5, 7, 1_767_625_200 * NS, 3.5)
    quote = await venue.stock_quote("SPY")
    assert quote is not None and (quote.bid, quote.ask, quote.ts_ns) == (599.9, 600.1, 1_767_625_200 * NS)
    assert not math.isnan(s.last)
