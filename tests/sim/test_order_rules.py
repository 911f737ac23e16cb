"""Alpaca's harsher order rules in the simulator, through alpaca-py's TradingClient: refused with Alpaca's status
and body when on, accepted when switched off (docs/simulator.md, "Alpaca's order rules")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderClass, OrderSide, PositionIntent, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, OptionLegRequest, ReplaceOrderRequest

from engine.sim.config import OrderRulesConfig, SimConfig, UnderlyingConfig
from engine.sim.ticks import CODE, on_grid
from tests.sim.helpers import SimThread, trading_client, wait_for

pytestmark = pytest.mark.timeout(120)

RULES_SIM = SimConfig(
    seed=5,
    speed=0.0,
    rate_limit_per_min=0,
    partial_fill_probability=0.0,
    underlyings=(
        UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, daily_expiry_sessions=2, weekly_expiry_weeks=2,
                         monthly_expiry_months=1),
        UnderlyingConfig(symbol="AAA", spot=60.0, atm_vol=0.4, tick_class="penny", daily_expiries=False,
                         weekly_expiry_weeks=2, monthly_expiry_months=1),
        UnderlyingConfig(symbol="BBB", spot=60.0, atm_vol=0.4, tick_class="non_penny", daily_expiries=False,
                         weekly_expiry_weeks=2, monthly_expiry_months=1),
    ),
)
LIVE = ("pending_new", "accepted", "new", "partially_filled", "filled")
"""What a POST answers for an order it took (the status it was first accepted with)."""
DEFAULT_RULES = {f: getattr(OrderRulesConfig(), f) for f in OrderRulesConfig.__struct_fields__}


@pytest.fixture(scope="module")
def st() -> Iterator[SimThread]:
    s = SimThread(RULES_SIM)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fresh_rules(st: SimThread) -> Iterator[None]:
    """Every test starts and ends with Alpaca's rules as shipped and no working order."""
    st.call(lambda: st.sim.set_order_rules(**DEFAULT_RULES))
    yield
    st.call(lambda: st.sim.exchange.cancel_all())
    st.call(lambda: st.sim.set_order_rules(**DEFAULT_RULES))


def rules(st: SimThread, **changes: Any) -> None:
    st.call(lambda: st.sim.set_order_rules(**changes))


def chain(st: SimThread, underlying: str, call: bool) -> list[tuple[str, float, float, float]]:
    """(symbol, bid, ask, strike) of the first listed expiry's contracts of one right, by strike."""

    def read() -> list[tuple[str, float, float, float]]:
        m = st.sim.market
        uni = m.universe
        rows = np.flatnonzero(uni.active & (uni.und == uni.und_index[underlying]) & (uni.is_call == call))
        first = min(uni.expiry_dates[r] for r in rows)
        rows = np.array([r for r in rows if uni.expiry_dates[r] == first])
        q = m.option_quotes(rows)
        out = [(uni.symbols[r], float(b), float(a), float(uni.strike[r])) for r, b, a in zip(rows, q.bid, q.ask,
                                                                                           strict=True)]
        return sorted(out, key=lambda c: c[3])

    return st.call(read)


def near(st: SimThread, underlying: str, call: bool, mid: float) -> tuple[str, float, float, float]:
    """The contract whose mid is nearest ``mid`` (with a two-sided quote)."""
    return min((c for c in chain(st, underlying, call) if c[1] > 0), key=lambda c: abs((c[1] + c[2]) / 2 - mid))


def refused(fn: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(APIError) as err:
        fn()
    body: dict[str, Any] = json.loads(str(err.value))
    assert err.value.status_code is not None
    return err.value.status_code, body


def limit(symbol: str, side: OrderSide, price: float, qty: int = 1, intent: PositionIntent | None = None) -> Any:
    return LimitOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, limit_price=price,
                             position_intent=intent)


def mleg(legs: list[tuple[str, OrderSide, PositionIntent]], net: float) -> Any:
    return LimitOrderRequest(
        qty=1, order_class=OrderClass.MLEG, time_in_force=TimeInForce.DAY, limit_price=net,
        legs=[OptionLegRequest(symbol=s, ratio_qty=1, side=side, position_intent=pi) for s, side, pi in legs],
    )


# ---- 1. closing quantities held: replace of a closing spread (Alpaca-API #282) ------------------------------
def test_replace_of_a_closing_spread_is_refused_because_its_legs_are_held(st: SimThread) -> None:
    tc = trading_client(st)
    calls = chain(st, "SPY", call=True)
    spot = st.call(lambda: st.sim.market.spot("SPY"))
    k = min(range(len(calls) - 2), key=lambda i: abs(calls[i][3] - spot))
    (lo, lo_bid, lo_ask, _), (hi, hi_bid, hi_ask, _) = calls[k], calls[k + 2]
    opened = tc.submit_order(mleg([(lo, OrderSide.BUY, PositionIntent.BUY_TO_OPEN),
                                   (hi, OrderSide.SELL, PositionIntent.SELL_TO_OPEN)], round(lo_ask - hi_bid, 2)))
    wait_for(lambda: tc.get_order_by_id(opened.id).status.value == "filled")
    closing = [(lo, OrderSide.SELL, PositionIntent.SELL_TO_CLOSE), (hi, OrderSide.BUY, PositionIntent.BUY_TO_CLOSE)]
    passive = round(-(lo_bid - hi_ask) - 0.40, 2)  # asks 0.40 more credit than the natural: rests
    close = tc.submit_order(mleg(closing, passive))
    assert close.status.value in LIVE

    status, body = refused(lambda: tc.replace_order_by_id(close.id, ReplaceOrderRequest(limit_price=passive + 0.05)))
    assert status == 403 and body["code"] == 40310000
    assert body["message"] == "insufficient qty available for order (requested: 1, available: 0)"
    assert body["held_for_orders"] == "1" and body["related_orders"] == [str(close.id)]
    # a second closing order for the same legs is refused the same way while the first holds them
    status, body = refused(lambda: tc.submit_order(mleg(closing, passive)))
    assert (status, body["message"]) == (403, "insufficient qty available for order (requested: 1, available: 0)")

    rules(st, closing_qty_held=False)
    new = tc.replace_order_by_id(close.id, ReplaceOrderRequest(limit_price=passive + 0.05))
    assert str(new.replaces) == str(close.id)
    assert tc.get_order_by_id(close.id).status.value == "replaced"


# ---- 2. ticks by price and class -----------------------------------------------------------------------
@pytest.mark.parametrize(("underlying", "accepted", "refused_prices"), [
    ("SPY", [0.99, 3.01, 5.03], []),
    ("AAA", [2.99, 3.00, 3.05], [3.01, 3.04]),
    ("BBB", [2.95, 3.00, 3.10], [2.97, 3.05, 2.99]),
])
def test_option_prices_sit_on_their_class_tick_at_the_price_itself(
    st: SimThread, underlying: str, accepted: list[float], refused_prices: list[float]
) -> None:
    tc = trading_client(st)
    rules(st, limit_price_away_fraction=0.0)  # prices here are about ticks, not the market
    symbol = near(st, underlying, call=True, mid=6.0)[0]
    for price in refused_prices:
        status, body = refused(lambda p=price: tc.submit_order(limit(symbol, OrderSide.BUY, p)))
        assert status == 422 and body["code"] == 42210000
        assert body["message"] == (f"invalid limit_price {price:g}. sub-penny increment does not fulfill minimum "
                                   "pricing criteria")
    for price in accepted:
        assert tc.submit_order(limit(symbol, OrderSide.BUY, price)).status.value in LIVE


def test_sub_tick_prices_pass_with_tick_classes_off_but_sub_penny_never(st: SimThread) -> None:
    tc = trading_client(st)
    rules(st, tick_classes=False, limit_price_away_fraction=0.0)
    for underlying, price in (("AAA", 3.01), ("BBB", 2.97), ("BBB", 3.05)):
        symbol = near(st, underlying, call=True, mid=6.0)[0]
        assert tc.submit_order(limit(symbol, OrderSide.BUY, price)).status.value in LIVE
    symbol = near(st, "AAA", call=True, mid=6.0)[0]
    status, body = refused(lambda: tc.submit_order(limit(symbol, OrderSide.BUY, 1.234)))
    assert status == 422 and "sub-penny" in body["message"]


def test_mleg_net_prices_stay_in_cents_whatever_the_legs_class(st: SimThread) -> None:
    tc = trading_client(st)
    calls = chain(st, "BBB", call=True)
    a, b = calls[len(calls) // 2], calls[len(calls) // 2 + 1]
    net = round((a[1] + a[2]) / 2 - (b[1] + b[2]) / 2 - 0.13, 2)  # a passive debit, not on the legs' grid
    order = tc.submit_order(mleg([(a[0], OrderSide.BUY, PositionIntent.BUY_TO_OPEN),
                                  (b[0], OrderSide.SELL, PositionIntent.SELL_TO_OPEN)], net))
    assert order.status.value in LIVE


def test_sub_tick_replace_is_refused_too(st: SimThread) -> None:
    tc = trading_client(st)
    symbol, bid, _, _ = near(st, "BBB", call=True, mid=4.0)
    order = tc.submit_order(limit(symbol, OrderSide.BUY, 3.00 if bid > 3.0 else 1.00))
    status, body = refused(lambda: tc.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=3.05)))
    assert status == 422 and body["message"].startswith("invalid limit_price 3.05. sub-penny increment")


def test_the_contract_listing_carries_the_penny_program_indicator(st: SimThread) -> None:
    def listing(**params: str) -> list[dict[str, Any]]:
        resp = requests.get(f"{st.urls.trading_url}/v2/options/contracts", headers=st.headers, timeout=10,
                            params={"underlying_symbols": "SPY,AAA,BBB", "limit": "10000",
                                    "expiration_date_lte": "2027-12-31", **params})
        assert resp.status_code == 200, resp.text
        contracts: list[dict[str, Any]] = resp.json()["option_contracts"]
        return contracts

    ppind = {c["underlying_symbol"]: c["ppind"] for c in listing()}
    assert ppind == {"SPY": True, "AAA": True, "BBB": False}
    assert {c["underlying_symbol"] for c in listing(ppind="false")} == {"BBB"}
    assert {c["underlying_symbol"] for c in listing(ppind="true")} == {"SPY", "AAA"}


# ---- 4. wash trades --------------------------------------------------------------------------------------
WASH = (403, {"code": 40310000, "message": "potential wash trade detected. use complex orders"})


def test_a_stock_order_that_could_trade_against_the_accounts_own_order_is_refused(st: SimThread) -> None:
    tc = trading_client(st)
    bid = st.call(lambda: st.sim.market.stock_quote(1)[0])
    tc.submit_order(limit("AAA", OrderSide.BUY, round(bid - 1.0, 2), qty=10))  # rests below the market
    assert refused(lambda: tc.submit_order(MarketOrderRequest(symbol="AAA", qty=5, side=OrderSide.SELL,
                                                              time_in_force=TimeInForce.DAY))) == WASH
    assert refused(lambda: tc.submit_order(limit("AAA", OrderSide.SELL, round(bid - 1.0, 2), qty=5))) == WASH
    # a sell above the resting buy cannot meet it: accepted
    assert tc.submit_order(limit("AAA", OrderSide.SELL, round(bid + 2.0, 2), qty=5)).status.value in LIVE
    rules(st, wash_trades=False)
    sold = tc.submit_order(MarketOrderRequest(symbol="AAA", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY))
    assert sold.status.value in LIVE


def test_an_option_order_crossing_the_accounts_own_opposite_order_is_refused(st: SimThread) -> None:
    tc = trading_client(st)
    symbol, bid, ask, _ = near(st, "AAA", call=False, mid=2.0)
    bought = tc.submit_order(limit(symbol, OrderSide.BUY, ask))
    wait_for(lambda: tc.get_order_by_id(bought.id).status.value == "filled")
    high = round(ask + 0.30, 2)
    tc.submit_order(limit(symbol, OrderSide.SELL, high, intent=PositionIntent.SELL_TO_CLOSE))  # rests above the ask
    assert refused(lambda: tc.submit_order(limit(symbol, OrderSide.BUY, high))) == WASH
    assert tc.submit_order(limit(symbol, OrderSide.BUY, round(bid - 0.10, 2))).status.value in LIVE


def test_working_mleg_legs_count_against_a_single_leg_order_but_an_mleg_order_is_never_refused(
    st: SimThread,
) -> None:
    tc = trading_client(st)
    puts = chain(st, "AAA", call=False)
    mid = len(puts) // 2
    a, b = puts[mid + 1], puts[mid]  # bear put spread: buy the higher strike, sell the lower
    tc.submit_order(mleg([(a[0], OrderSide.BUY, PositionIntent.BUY_TO_OPEN),
                          (b[0], OrderSide.SELL, PositionIntent.SELL_TO_OPEN)], 0.01))  # rests
    far = round(a[2] + 0.50, 2)  # a sell far above the market: only the leg's missing price makes it a wash
    assert refused(lambda: tc.submit_order(limit(a[0], OrderSide.SELL, far, intent=PositionIntent.SELL_TO_OPEN))
                   ) == WASH
    # the complex order is the way out: an mleg order crossing a working single-leg order is accepted
    c, d = puts[mid - 1], puts[mid - 2]
    tc.submit_order(limit(c[0], OrderSide.BUY, max(round(c[1] - 0.05, 2), 0.05)))  # rests
    order = tc.submit_order(mleg([(c[0], OrderSide.SELL, PositionIntent.SELL_TO_OPEN),
                                  (d[0], OrderSide.BUY, PositionIntent.BUY_TO_OPEN)], -0.01))
    assert order.status.value in LIVE
    rules(st, wash_trade_mleg_legs=False)
    accepted = tc.submit_order(limit(a[0], OrderSide.SELL, far, intent=PositionIntent.SELL_TO_OPEN))
    assert accepted.status.value in LIVE


# ---- 5. limit price away ----------------------------------------------------------------------------------
def test_a_limit_far_through_the_market_is_refused(st: SimThread) -> None:
    tc = trading_client(st)
    symbol, _, ask, _ = near(st, "SPY", call=True, mid=2.0)
    status, body = refused(lambda: tc.submit_order(limit(symbol, OrderSide.BUY, round(ask * 2 + 1.5, 2))))
    assert status == 403 and body["code"] == 40310000 and "too far away from the market" in body["message"]
    assert tc.submit_order(limit(symbol, OrderSide.BUY, round(ask + 0.50, 2))).status.value in LIVE
    rules(st, limit_price_away_fraction=0.0)
    assert tc.submit_order(limit(symbol, OrderSide.BUY, round(ask * 2 + 1.5, 2))).status.value in LIVE


# ---- 6. closing only past the position/equity ratio -------------------------------------------------------
def test_opening_orders_are_refused_while_a_position_exceeds_the_equity_ratio(st: SimThread) -> None:
    tc = trading_client(st)
    bought = tc.submit_order(MarketOrderRequest(symbol="BBB", qty=20, side=OrderSide.BUY,
                                                time_in_force=TimeInForce.DAY))
    wait_for(lambda: tc.get_order_by_id(bought.id).status.value == "filled")
    rules(st, closing_only_ratio=0.001)  # 0.1 % of equity: any position trips it
    status, body = refused(lambda: tc.submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                                                      time_in_force=TimeInForce.DAY)))
    assert status == 403 and body["code"] == 40310000
    assert body["message"].startswith("account is restricted to closing transactions")
    closing = tc.submit_order(MarketOrderRequest(symbol="BBB", qty=20, side=OrderSide.SELL,
                                                 time_in_force=TimeInForce.DAY))
    wait_for(lambda: tc.get_order_by_id(closing.id).status.value == "filled")  # closing is allowed
    rules(st, closing_only_ratio=0.0)
    assert tc.submit_order(MarketOrderRequest(symbol="SPY", qty=1, side=OrderSide.BUY,
                                              time_in_force=TimeInForce.DAY)).status.value in LIVE


# ---- 3. the closed market: a half day's afternoon --------------------------------------------------------
def test_orders_are_refused_in_a_half_days_closed_afternoon_until_the_next_session() -> None:
    cfg = SimConfig(seed=3, speed=0.0, rate_limit_per_min=0, partial_fill_probability=0.0,
                    start=RULES_SIM.start.replace(day=27, hour=12, minute=30),  # 2026-11-27: closes at 13:00
                    underlyings=RULES_SIM.underlyings[:1])
    s = SimThread(cfg)
    try:
        tc = trading_client(s)
        symbol = near(s, "SPY", call=True, mid=2.0)[0]
        resting = tc.submit_order(limit(symbol, OrderSide.BUY, 0.05))
        hold = requests.post(f"{s.urls.control_url}/clock/hold", json={"at_close": True}, headers=s.headers, timeout=5)
        assert hold.status_code == 200 and hold.json()["held_at_close"] is True
        s.call(lambda: s.sim.advance(3 * 3600))  # into the closed afternoon: the clock holds at 13:00
        assert tc.get_clock().is_open is False
        assert s.call(lambda: s.sim.clock.today()).isoformat() == "2026-11-27"
        status, body = refused(lambda: tc.submit_order(limit(symbol, OrderSide.BUY, 0.06)))
        assert status == 403 and body["code"] == 40310000 and body["message"].startswith("market is closed")
        status, body = refused(lambda: tc.replace_order_by_id(resting.id, ReplaceOrderRequest(limit_price=0.06)))
        assert status == 403 and body["message"].startswith("market is closed")

        off = requests.post(f"{s.urls.control_url}/rules", json={"closed_market": False}, headers=s.headers,
                            timeout=5)
        assert off.status_code == 200 and off.json()["closed_market"] is False
        assert tc.submit_order(limit(symbol, OrderSide.BUY, 0.06)).status.value in LIVE
        rules(s, closed_market=True)

        s.call(lambda: s.sim.hold_at_close(False))  # the close is processed, the next session opens
        assert s.call(lambda: s.sim.clock.today()).isoformat() == "2026-11-30"
        assert tc.get_clock().is_open is True
        assert tc.get_order_by_id(resting.id).status.value == "expired"
        fresh = near(s, "SPY", call=True, mid=2.0)[0]
        assert tc.submit_order(limit(fresh, OrderSide.BUY, 0.05)).status.value in LIVE
    finally:
        s.close()


def test_the_rules_endpoint_refuses_unknown_rules(st: SimThread) -> None:
    resp = requests.post(f"{st.urls.control_url}/rules", json={"wash_trade": False}, headers=st.headers, timeout=5)
    assert resp.status_code == 422 and "wash_trade" in resp.json()["message"]
    assert requests.get(f"{st.urls.control_url}/rules", headers=st.headers, timeout=5).json() == DEFAULT_RULES


def test_an_mleg_order_closing_a_long_straddle_needs_no_cover(st: SimThread) -> None:
    """Closing legs are covered by the position they close (only opening shorts need a long in the order)."""
    tc = trading_client(st)
    call, _, call_ask, k = near(st, "SPY", call=True, mid=3.0)
    put = next(c for c in chain(st, "SPY", call=False) if c[3] == k)
    opened = tc.submit_order(mleg([(call, OrderSide.BUY, PositionIntent.BUY_TO_OPEN),
                                   (put[0], OrderSide.BUY, PositionIntent.BUY_TO_OPEN)], round(call_ask + put[2], 2)))
    wait_for(lambda: tc.get_order_by_id(opened.id).status.value == "filled")
    closing = tc.submit_order(mleg([(call, OrderSide.SELL, PositionIntent.SELL_TO_CLOSE),
                                    (put[0], OrderSide.SELL, PositionIntent.SELL_TO_CLOSE)], -50.0))  # rests
    assert closing.status.value in LIVE
    status, body = refused(lambda: tc.submit_order(mleg([(call, OrderSide.SELL, PositionIntent.SELL_TO_OPEN),
                                                         (put[0], OrderSide.SELL, PositionIntent.SELL_TO_OPEN)],
                                                        -50.0)))
    assert status == 422 and "uncovered short call leg" in body["message"]


def test_every_quote_sits_on_its_class_tick_at_its_own_price(st: SimThread) -> None:
    for underlying, code in (("SPY", CODE["penny_all"]), ("AAA", CODE["penny"]), ("BBB", CODE["non_penny"])):
        for right in (True, False):
            for symbol, bid, ask, _ in chain(st, underlying, right):
                assert on_grid(code, bid) and on_grid(code, ask), (symbol, bid, ask)
                assert ask > bid
