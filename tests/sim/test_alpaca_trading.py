"""alpaca-py 0.44 TradingClient and TradingStream, unchanged (url_override only), against the simulator."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import (
    AssetClass,
    ContractType,
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import (
    GetOptionContractsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
    ReplaceOrderRequest,
)
from alpaca.trading.stream import TradingStream

from tests.sim.helpers import StreamThread, near_money_contracts, quote, trading_client, wait_for


@pytest.fixture(scope="module")
def updates(sim_thread: Any) -> Any:
    """A live alpaca-py TradingStream collecting every trade update (parsed models) by order id."""
    seen: dict[str, list[TradeUpdate]] = defaultdict(list)

    async def on_update(update: TradeUpdate) -> None:
        seen[str(update.order.id)].append(update)

    stream = TradingStream(sim_thread.urls.key, sim_thread.urls.secret, url_override=sim_thread.urls.trading_stream_url)
    stream.subscribe_trade_updates(on_update)
    runner = StreamThread(stream)
    wait_for(lambda: sim_thread.call(lambda: any(s.listening for s in sim_thread.sim.hub.sessions["trading"])))
    yield seen
    runner.stop(nudge=lambda: sim_thread.call(lambda: sim_thread.sim.drop_streams("trading")))


def events(seen: dict[str, list[TradeUpdate]], order_id: Any) -> list[str]:
    return [u.event if isinstance(u.event, str) else u.event.value for u in seen.get(str(order_id), [])]


def test_account_reports_options_fields(sim_thread: Any) -> None:
    account = trading_client(sim_thread).get_account()
    assert account.status.value == "ACTIVE"
    assert float(account.options_buying_power) == pytest.approx(float(account.cash))
    assert account.options_approved_level == 3
    assert account.options_trading_level == 3


def test_single_leg_option_order_fills_and_streams_updates(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    symbol = near_money_contracts(sim_thread, count=1)[0]
    _, ask = quote(sim_thread, symbol)
    order = tc.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=round(ask + 0.5, 2),
            client_order_id="single-1",
        )
    )
    assert isinstance(order, Order) and order.symbol == symbol and order.position_intent == PositionIntent.BUY_TO_OPEN
    filled = wait_for(lambda: (o := tc.get_order_by_id(order.id)).status == OrderStatus.FILLED and o)
    assert float(filled.filled_avg_price) <= ask + 0.5
    assert tc.get_order_by_client_id("single-1").id == order.id
    position = tc.get_open_position(symbol)
    assert position.qty == "2" and position.asset_class == AssetClass.US_OPTION and position.exchange.value == ""
    wait_for(lambda: "fill" in events(updates, order.id))
    assert events(updates, order.id) == ["pending_new", "new", "fill"]
    fill = updates[str(order.id)][-1]
    assert fill.position_qty == 2 and fill.qty == 2 and fill.price == float(filled.filled_avg_price)


def _spread_legs(symbols: list[str]) -> list[OptionLegRequest]:
    return [
        OptionLegRequest(
            symbol=symbols[0], ratio_qty=1, side=OrderSide.BUY, position_intent=PositionIntent.BUY_TO_OPEN
        ),
        OptionLegRequest(
            symbol=symbols[1], ratio_qty=1, side=OrderSide.SELL, position_intent=PositionIntent.SELL_TO_OPEN
        ),
    ]


def test_two_leg_mleg_limit_order_fills_with_leg_executions(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    lower, upper = near_money_contracts(sim_thread, count=2, days_out=10)
    (_, ask_lo), (bid_hi, _) = quote(sim_thread, lower), quote(sim_thread, upper)
    order = tc.submit_order(
        LimitOrderRequest(
            qty=3,
            order_class=OrderClass.MLEG,
            time_in_force=TimeInForce.DAY,
            legs=_spread_legs([lower, upper]),
            limit_price=round(ask_lo - bid_hi + 0.3, 2),
        )
    )
    assert order.order_class == OrderClass.MLEG and order.symbol is None and len(order.legs) == 2
    wait_for(lambda: "fill" in events(updates, order.id))
    fill = updates[str(order.id)][-1]
    legs = {leg.symbol: leg for leg in tc.get_order_by_id(order.id).legs}
    assert {str(legs[lower].qty), str(legs[upper].qty)} == {"3"}
    raw = sim_thread.call(lambda: sim_thread.sim.inspect()["positions"])
    assert raw[lower] == 3 and raw[upper] == -3
    assert fill.order.order_class == OrderClass.MLEG and fill.qty == 3


def test_four_leg_iron_condor_limit_order_is_accepted_and_fills(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    calls = near_money_contracts(sim_thread, kind="call", count=6, days_out=20)
    spot = sim_thread.call(lambda: sim_thread.sim.market.spot("SPY"))
    exp = dt.datetime.strptime(calls[0][3:9], "%y%m%d").date()
    puts = tc.get_option_contracts(
        GetOptionContractsRequest(
            underlying_symbols=["SPY"],
            type=ContractType.PUT,
            expiration_date=exp,
            strike_price_lte=str(round(spot) - 4),
            limit=10000,
        )
    )
    p = [c.symbol for c in puts.option_contracts]
    legs = [
        OptionLegRequest(symbol=p[-4], ratio_qty=1, side=OrderSide.BUY),
        OptionLegRequest(symbol=p[-1], ratio_qty=1, side=OrderSide.SELL),
        OptionLegRequest(symbol=calls[2], ratio_qty=1, side=OrderSide.SELL),
        OptionLegRequest(symbol=calls[5], ratio_qty=1, side=OrderSide.BUY),
    ]
    natural = sum(
        (q[1] if leg.side == OrderSide.BUY else -q[0]) for leg in legs for q in [quote(sim_thread, leg.symbol)]
    )
    order = tc.submit_order(
        LimitOrderRequest(
            qty=1,
            order_class=OrderClass.MLEG,
            time_in_force=TimeInForce.DAY,
            legs=legs,
            limit_price=round(natural + 0.2, 2),
        )
    )
    assert natural < 0  # a short condor collects a credit, so the net limit is negative
    assert len(order.legs) == 4
    wait_for(lambda: "fill" in events(updates, order.id))
    fill = updates[str(order.id)][-1]
    assert fill.order.filled_avg_price is not None and float(fill.order.filled_avg_price) <= round(natural + 0.2, 2)


def test_stock_market_order_fills(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    order = tc.submit_order(
        MarketOrderRequest(symbol="SPY", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
    )
    wait_for(lambda: "fill" in events(updates, order.id))
    position = tc.get_open_position("SPY")
    assert position.qty == "-10" and position.asset_class == AssetClass.US_EQUITY


def test_replace_then_cancel_a_resting_option_order(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    symbol = near_money_contracts(sim_thread, count=1, days_out=30)[0]
    bid, _ = quote(sim_thread, symbol)
    low = round(max(bid / 4, 0.05), 2)
    order = tc.submit_order(
        LimitOrderRequest(symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=low)
    )
    wait_for(lambda: tc.get_order_by_id(order.id).status == OrderStatus.NEW)
    replacement = tc.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=round(low + 0.05, 2)))
    assert replacement.id != order.id and str(replacement.replaces) == str(order.id)
    old = tc.get_order_by_id(order.id)
    assert old.status == OrderStatus.REPLACED and str(old.replaced_by) == str(replacement.id)
    assert tc.cancel_order_by_id(replacement.id) is None
    assert tc.get_order_by_id(replacement.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as err:
        tc.cancel_order_by_id(replacement.id)
    assert err.value.status_code == 422 and "not cancelable" in err.value.message
    wait_for(lambda: "canceled" in events(updates, replacement.id))
    assert events(updates, order.id) == ["pending_new", "new", "replaced"]
    assert events(updates, replacement.id) == ["new", "canceled"]


def test_orders_listing_nests_mleg_legs_and_filters(sim_thread: Any) -> None:
    tc = trading_client(sim_thread)
    nested = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, limit=500))
    mleg = [o for o in nested if o.order_class == OrderClass.MLEG]
    assert mleg and all(o.legs and len(o.legs) in (2, 4) for o in mleg)
    assert all(o.symbol for o in nested if o.order_class != OrderClass.MLEG)
    closed = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=500))
    assert closed and all(o.status != OrderStatus.NEW for o in closed)
    only_spy = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["SPY"], limit=500))
    assert only_spy and len(tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["QQQ"]))) == 0


def test_positions_list_matches_the_simulator(sim_thread: Any) -> None:
    tc = trading_client(sim_thread)
    listed = {p.symbol: float(p.qty) for p in tc.get_all_positions()}
    assert listed == sim_thread.call(lambda: sim_thread.sim.inspect()["positions"])


def test_option_contracts_paginate_without_gaps(sim_thread: Any) -> None:
    tc = trading_client(sim_thread)
    request = GetOptionContractsRequest(underlying_symbols=["QQQ"], limit=37)
    symbols: list[str] = []
    pages = 0
    while True:
        res = tc.get_option_contracts(request)
        symbols += [c.symbol for c in res.option_contracts]
        pages += 1
        if res.next_page_token is None:
            break
        request.page_token = res.next_page_token
    assert pages > 2 and len(symbols) == len(set(symbols))
    everything = tc.get_option_contracts(GetOptionContractsRequest(underlying_symbols=["QQQ"], limit=10000))
    assert [c.symbol for c in everything.option_contracts] == symbols
    today = sim_thread.call(lambda: sim_thread.sim.clock.today())
    assert all(0 <= (c.expiration_date - today).days <= 6 for c in everything.option_contracts)  # default window
    contract = tc.get_option_contract(symbols[0])
    assert contract.root_symbol == "QQQ" and contract.size == "100" and contract.symbol == symbols[0]


def test_close_position_sends_a_closing_order(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    before = float(tc.get_open_position("SPY").qty)
    order = tc.close_position("SPY")
    assert order.side == OrderSide.BUY and float(order.qty) == abs(before)
    wait_for(lambda: "fill" in events(updates, order.id))
    time.sleep(0.05)
    with pytest.raises(APIError) as err:
        tc.get_open_position("SPY")
    assert err.value.status_code == 404


def test_fill_activities_parse_as_alpaca_trade_activities(sim_thread: Any) -> None:
    import requests
    from alpaca.trading.models import TradeActivity

    resp = requests.get(
        f"{sim_thread.urls.trading_url}/v2/account/activities/FILL",
        headers=sim_thread.headers,
        params={"direction": "asc"},
        timeout=10,
    )
    rows = resp.json()
    assert resp.status_code == 200 and len(rows) >= 5
    activities = [TradeActivity(**row) for row in rows]
    assert all(a.activity_type.value == "FILL" and a.qty > 0 for a in activities)
    assert [a.transaction_time for a in activities] == sorted(a.transaction_time for a in activities)


def test_clock_and_calendar_parse(sim_thread: Any) -> None:
    from alpaca.trading.requests import GetCalendarRequest

    tc = trading_client(sim_thread)
    clock = tc.get_clock()
    assert clock.is_open and clock.next_close > clock.timestamp
    today = sim_thread.call(lambda: sim_thread.sim.clock.today())
    days = tc.get_calendar(GetCalendarRequest(start=today, end=today + dt.timedelta(days=14)))
    assert days[0].date == today and all(d.date.weekday() < 5 for d in days) and 8 <= len(days) <= 11


def test_exercise_and_do_not_exercise_endpoints(sim_thread: Any, updates: Any) -> None:
    import requests

    tc = trading_client(sim_thread)
    symbol = near_money_contracts(sim_thread, count=1, days_out=15)[0]
    order = tc.submit_order(MarketOrderRequest(symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    wait_for(lambda: "fill" in events(updates, order.id))
    url = f"{sim_thread.urls.trading_url}/v2/positions/{symbol}/do-not-exercise"
    assert requests.post(url, headers=sim_thread.headers, timeout=10).status_code == 200
    shares_before = float(next((p.qty for p in tc.get_all_positions() if p.symbol == "SPY"), 0))
    assert tc.exercise_options_position(symbol) is None
    assert float(tc.get_open_position("SPY").qty) == shares_before + 100
    with pytest.raises(APIError) as err:
        tc.exercise_options_position(symbol)
    assert err.value.status_code == 403 and err.value.code == 40310000


def test_cancel_all_and_close_all_answer_207(sim_thread: Any, updates: Any) -> None:
    tc = trading_client(sim_thread)
    symbol = near_money_contracts(sim_thread, count=1, days_out=30)[0]
    resting = [
        tc.submit_order(
            LimitOrderRequest(symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=0.05)
        )
        for _ in range(2)
    ]
    canceled = tc.cancel_orders()
    assert {str(c.id) for c in canceled} >= {str(o.id) for o in resting} and all(c.status == 200 for c in canceled)
    closed = tc.close_all_positions(cancel_orders=True)
    assert closed and all(c.status == 200 and isinstance(c.body, Order) for c in closed)
    wait_for(lambda: all("fill" in events(updates, c.body.id) for c in closed))
    assert tc.get_all_positions() == []


def test_orders_query_direction_and_time_window(sim_thread: Any) -> None:
    import requests

    url = f"{sim_thread.urls.trading_url}/v2/orders"
    asc = requests.get(
        url,
        params={"status": "all", "direction": "asc", "limit": "500", "nested": "True"},
        headers=sim_thread.headers,
        timeout=10,
    ).json()
    desc = requests.get(
        url,
        params={"status": "all", "direction": "desc", "limit": "500", "nested": "true"},
        headers=sim_thread.headers,
        timeout=10,
    ).json()
    assert len(asc) > 5 and [o["id"] for o in asc] == [o["id"] for o in reversed(desc)]

    def ns(text: str) -> int:
        return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))

    first = asc[0]["submitted_at"]
    after = requests.get(
        url,
        params={"status": "all", "after": first, "limit": "500", "nested": "true"},
        headers=sim_thread.headers,
        timeout=10,
    ).json()
    expected = {o["id"] for o in asc if ns(o["submitted_at"]) > ns(first)}
    assert expected and {o["id"] for o in after} == expected
    two = requests.get(url, params={"status": "all", "limit": "2"}, headers=sim_thread.headers, timeout=10).json()
    assert len(two) == 2
