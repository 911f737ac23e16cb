"""Every rejection answers with Alpaca's status and body shape, and the simulator keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import msgspec
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, OptionLegRequest
from websockets.sync.client import connect

from tests.sim.helpers import FAST, SimThread, near_money_contracts, trading_client


def post_order(st: Any, body: Any, raw: bytes | None = None) -> requests.Response:
    data = raw if raw is not None else None
    return requests.post(
        f"{st.urls.trading_url}/v2/orders",
        json=None if raw is not None else body,
        data=data,
        headers=st.headers,
        timeout=10,
    )


def assert_alpaca_error(resp: requests.Response, status: int, text: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    # Alpaca's codes are 8 digits; validation errors answer 422 with 40010001 as on the real API
    assert isinstance(body["code"], int) and len(str(body["code"])) == 8
    assert text in body["message"]
    return body


def leg(symbol: str, side: str, ratio: int = 1) -> dict[str, Any]:
    return {"symbol": symbol, "ratio_qty": ratio, "side": side}


def mleg(legs: list[dict[str, Any]], limit: float = 1.0) -> dict[str, Any]:
    return {
        "order_class": "mleg",
        "qty": "1",
        "type": "limit",
        "limit_price": str(limit),
        "time_in_force": "day",
        "legs": legs,
    }


def test_five_legs_are_rejected(sim_thread: Any) -> None:
    s = near_money_contracts(sim_thread, count=5)
    resp = post_order(sim_thread, mleg([leg(x, "buy" if i % 2 == 0 else "sell") for i, x in enumerate(s)]))
    assert_alpaca_error(resp, 422, "between 2 and 4 legs")


def test_leg_ratios_not_in_lowest_terms_are_rejected_through_alpaca_py(sim_thread: Any) -> None:
    a, b = near_money_contracts(sim_thread, count=2)
    with pytest.raises(APIError) as err:
        trading_client(sim_thread).submit_order(
            LimitOrderRequest(
                qty=1,
                order_class=OrderClass.MLEG,
                time_in_force=TimeInForce.DAY,
                limit_price=1.0,
                legs=[
                    OptionLegRequest(symbol=a, ratio_qty=4, side=OrderSide.BUY),
                    OptionLegRequest(symbol=b, ratio_qty=2, side=OrderSide.SELL),
                ],
            )
        )
    assert err.value.status_code == 422 and "gcd" in err.value.message and err.value.code == 40010001


def test_unknown_and_malformed_symbols_are_rejected(sim_thread: Any) -> None:
    base = {"qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    assert_alpaca_error(post_order(sim_thread, {**base, "symbol": "SPY990101C00100000"}), 422, "not found")
    assert_alpaca_error(post_order(sim_thread, {**base, "symbol": "NOPE"}), 422, "not found")


def test_insufficient_buying_power_is_403_with_context(sim_thread: Any) -> None:
    symbol = near_money_contracts(sim_thread, count=1)[0]
    body = assert_alpaca_error(
        post_order(
            sim_thread,
            {
                "symbol": symbol,
                "qty": 5000,
                "side": "buy",
                "type": "limit",
                "limit_price": "9.00",
                "time_in_force": "day",
            },
        ),
        403,
        "insufficient buying power",
    )
    assert float(body["cost_basis"]) > float(body["buying_power"])


def test_uncovered_legs_stock_legs_and_duplicate_legs_are_rejected(sim_thread: Any) -> None:
    a, b = near_money_contracts(sim_thread, count=2)
    assert_alpaca_error(post_order(sim_thread, mleg([leg(a, "sell"), leg(b, "sell")])), 422, "uncovered")
    assert_alpaca_error(post_order(sim_thread, mleg([leg(a, "buy"), leg("SPY", "sell")])), 422, "option legs")
    assert_alpaca_error(post_order(sim_thread, mleg([leg(a, "buy"), leg(a, "sell")])), 422, "unique")


def test_naked_short_call_is_refused(sim_thread: Any) -> None:
    symbol = near_money_contracts(sim_thread, count=1, days_out=40)[0]
    resp = post_order(
        sim_thread, {"symbol": symbol, "qty": 1, "side": "sell", "type": "market", "time_in_force": "day"}
    )
    assert_alpaca_error(resp, 403, "uncovered")


def test_sub_penny_prices_and_bad_time_in_force_are_rejected(sim_thread: Any) -> None:
    symbol = near_money_contracts(sim_thread, count=1)[0]
    base = {"symbol": symbol, "qty": 1, "side": "buy", "type": "limit", "time_in_force": "day"}
    assert_alpaca_error(post_order(sim_thread, {**base, "limit_price": "1.234"}), 422, "sub-penny")
    assert_alpaca_error(
        post_order(sim_thread, {**base, "limit_price": "1.2", "time_in_force": "ioc"}), 422, "time_in_force"
    )
    assert_alpaca_error(post_order(sim_thread, {**base, "limit_price": "1.2", "qty": "1.5"}), 422, "whole number")


def test_duplicate_client_order_id_is_rejected(sim_thread: Any) -> None:
    symbol = near_money_contracts(sim_thread, count=1, days_out=30)[0]
    body = {
        "symbol": symbol,
        "qty": 1,
        "side": "buy",
        "type": "limit",
        "limit_price": "0.05",
        "time_in_force": "day",
        "client_order_id": "dup-1",
    }
    assert post_order(sim_thread, body).status_code == 200
    assert_alpaca_error(post_order(sim_thread, body), 422, "client_order_id must be unique")
    assert sim_thread.call(lambda: sim_thread.sim.exchange.submissions["dup-1"]) == 2


def test_malformed_json_wrong_types_and_unknown_routes_get_alpaca_errors(sim_thread: Any) -> None:
    assert_alpaca_error(post_order(sim_thread, None, raw=b'{"symbol": "SPY", '), 400, "failed to decode")
    assert_alpaca_error(post_order(sim_thread, [1, 2]), 422, "JSON object")
    assert_alpaca_error(
        post_order(
            sim_thread, {"symbol": "SPY", "qty": "ten", "side": "buy", "type": "market", "time_in_force": "day"}
        ),
        422,
        "qty",
    )
    assert_alpaca_error(
        post_order(
            sim_thread, {"symbol": "SPY", "qty": {"a": 1}, "side": "buy", "type": "market", "time_in_force": "day"}
        ),
        422,
        "qty",
    )
    assert_alpaca_error(
        post_order(sim_thread, {"symbol": "SPY", "qty": 1, "side": "up", "type": "market", "time_in_force": "day"}),
        422,
        "side",
    )
    resp = requests.get(f"{sim_thread.urls.trading_url}/v2/no/such/route", headers=sim_thread.headers, timeout=10)
    assert_alpaca_error(resp, 404, "not found")
    resp = requests.put(f"{sim_thread.urls.trading_url}/v2/account", headers=sim_thread.headers, timeout=10)
    assert_alpaca_error(resp, 405, "not allowed")
    resp = requests.get(f"{sim_thread.urls.trading_url}/v2/orders?limit=abc", headers=sim_thread.headers, timeout=10)
    assert_alpaca_error(resp, 422, "limit")
    resp = requests.get(f"{sim_thread.urls.trading_url}/v2/account", timeout=10)
    assert_alpaca_error(resp, 401, "not authorized")
    assert trading_client(sim_thread).get_account().status.value == "ACTIVE"  # still serving


def test_rate_limit_answers_429_with_headers(sim_thread: Any) -> None:
    st = SimThread(msgspec.structs.replace(FAST, rate_limit_per_min=3))
    try:
        url = f"{st.urls.trading_url}/v2/clock"
        codes = [requests.get(url, headers=st.headers, timeout=10) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert codes[0].headers["X-RateLimit-Limit"] == "3" and codes[2].headers["X-RateLimit-Remaining"] == "0"
        assert int(codes[3].headers["X-RateLimit-Reset"]) > 0
        assert_alpaca_error(codes[3], 429, "rate limit")
    finally:
        st.close()


# ---- streams ---------------------------------------------------------------------------------------
@contextmanager
def ws_auth(st: Any, url: str, binary: bool = True) -> Iterator[tuple[Any, Any, Any]]:
    """An authenticated raw websocket session: (socket, send(dict), decode(frame))."""
    headers = {"Content-Type": "application/msgpack" if binary else "application/json"}
    with connect(url, additional_headers=headers, legacy=False) as ws:
        decode = msgpack.unpackb if binary else json.loads

        def send(message: dict[str, Any]) -> None:
            ws.send(msgpack.packb(message) if binary else json.dumps(message))

        assert decode(ws.recv(5)) == [{"T": "success", "msg": "connected"}]
        send({"action": "auth", "key": st.urls.key, "secret": st.urls.secret})
        assert decode(ws.recv(5)) == [{"T": "success", "msg": "authenticated"}]
        yield ws, send, decode


def test_option_stream_without_msgpack_gets_412(sim_thread: Any) -> None:
    with connect(
        sim_thread.urls.options_stream_url, additional_headers={"Content-Type": "application/json"}, legacy=False
    ) as ws:
        msg = json.loads(ws.recv(5))
    assert msg == [{"T": "error", "code": 412, "msg": "option messages are only available in MsgPack format"}]


def test_option_stream_rejects_star_quotes_bars_and_too_many_symbols(sim_thread: Any) -> None:
    with ws_auth(sim_thread, sim_thread.urls.options_stream_url) as (ws, send, decode):
        symbols = sim_thread.call(lambda: sim_thread.sim.market.universe.symbols[:250])
        send({"action": "subscribe", "quotes": symbols[:3]})
        assert decode(ws.recv(5))[0] == {"T": "subscription", "trades": [], "quotes": symbols[:3]}

        def reply() -> list[dict[str, Any]]:
            """The next control reply: the subscribed contracts' quotes stream in between."""
            while True:
                messages = [m for m in decode(ws.recv(5)) if m.get("T") not in ("q", "t")]
                if messages:
                    return messages

        send({"action": "subscribe", "quotes": ["*"]})
        assert reply() == [
            {"T": "error", "code": 413, "msg": "star subscription is not allowed for option quotes"}
        ]
        send({"action": "subscribe", "bars": symbols[:1]})
        assert reply()[0]["code"] == 410
        send({"action": "subscribe", "quotes": symbols[3:250]})
        assert reply() == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
        send({"action": "unsubscribe", "quotes": symbols[:1]})
        assert reply()[0]["quotes"] == symbols[1:3]  # the old set was kept
        ws.send(b"\xc1\xc1garbage")
        assert reply() == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        send({"action": "subscribe", "quotes": ["NOT A SYMBOL"]})
        assert reply()[0]["code"] == 400


def test_stream_auth_failures(sim_thread: Any) -> None:
    with connect(
        sim_thread.urls.options_stream_url, additional_headers={"Content-Type": "application/msgpack"}, legacy=False
    ) as ws:
        ws.recv(5)
        ws.send(msgpack.packb({"action": "subscribe", "quotes": ["SPY261123C00600000"]}))
        assert msgpack.unpackb(ws.recv(5))[0]["code"] == 401
        ws.send(msgpack.packb({"action": "auth", "key": "bad", "secret": "worse"}))
        assert msgpack.unpackb(ws.recv(5)) == [{"T": "error", "code": 402, "msg": "auth failed"}]
    with (
        ws_auth(sim_thread, sim_thread.urls.stocks_stream_url, binary=False),
        connect(sim_thread.urls.stocks_stream_url, legacy=False) as second,
    ):
        second.recv(5)
        second.send(json.dumps({"action": "auth", "key": sim_thread.urls.key, "secret": sim_thread.urls.secret}))
        assert json.loads(second.recv(5)) == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]


def test_stock_stream_speaks_json_when_asked(sim_thread: Any) -> None:
    url = sim_thread.urls.stocks_stream_url.replace("/v2/iex", "/v2/test")
    with ws_auth(sim_thread, url, binary=False) as (ws, send, decode):
        send({"action": "subscribe", "quotes": ["FAKEPACA"], "bars": ["FAKEPACA"]})
        ack = decode(ws.recv(5))[0]
        assert ack["T"] == "subscription" and ack["quotes"] == ["FAKEPACA"] and ack["corrections"] == []
        quote = next(m for _ in range(50) for m in decode(ws.recv(5)) if m["T"] == "q")
        assert quote["S"] == "FAKEPACA" and quote["t"].endswith("Z") and isinstance(quote["c"], list)
