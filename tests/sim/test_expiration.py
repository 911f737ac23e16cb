"""Alpaca's expiration process and early assignment in the simulator, read back through alpaca-py.

Each test runs its own paused simulator (speed 0) in a thread and moves the clock itself; orders go in
through alpaca-py's TradingClient, activities come back through it (parsed into alpaca-py's models) and the
liquidation's trade updates through alpaca-py's TradingStream. Rules under test (docs/simulator.md, "Alpaca's
expiration process"): the liquidation from 15:15 (12:15 on a half day) of expiring positions the account cannot
carry, none when it can, the $0.01 automatic-exercise threshold on both sides, long puts only against
available shares (shares securing a covered call are not available), partial early assignment, and the
dividend-driven assignment the evening before an ex-date with the spot's gap at the ex-date's open.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import requests
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import NonTradeActivity, TradeActivity, TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

from engine.sim.clock import NY, from_ns
from engine.sim.config import AssignmentConfig, Dividend, ExpirationConfig, SimConfig, UnderlyingConfig
from greeks.occ import format_occ
from tests.sim.helpers import SimThread, StreamThread, trading_client, wait_for

pytestmark = pytest.mark.timeout(120)

FRIDAY = dt.date(2026, 12, 4)  # a regular session (16:00 close) and an expiry
HALF_DAY = dt.date(2026, 11, 27)  # 13:00 close
BASE = SimConfig(seed=4, speed=0.0, partial_fill_probability=0.0, rate_limit_per_min=0)
NO_EARLY = AssignmentConfig(probability=0.0, dividend_probability=0.0)
SETTLEMENTS = "OPEXC,OPASN,OPEXP,OPTRD,DIV"


def _sim(start: dt.datetime, **changes: Any) -> SimThread:
    return SimThread(msgspec.structs.replace(BASE, start=start, **changes))


@pytest.fixture
def threads() -> Iterator[list[SimThread]]:
    """Simulators a test starts (closed after it)."""
    started: list[SimThread] = []
    yield started
    for st in started:
        st.close()


def _start(threads: list[SimThread], start: dt.datetime, **changes: Any) -> SimThread:
    st = _sim(start, **changes)
    threads.append(st)
    return st


def _buy(st: SimThread, symbol: str, qty: int, side: OrderSide = OrderSide.BUY) -> None:
    trading_client(st).submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)
    )


def _advance(st: SimThread, seconds: float) -> None:
    st.call(lambda: st.sim.advance(seconds))


def _positions(st: SimThread) -> dict[str, float]:
    return {p.symbol: float(p.qty) for p in trading_client(st).get_all_positions()}


def _activities(st: SimThread, types: str = SETTLEMENTS) -> list[NonTradeActivity]:
    """Non-trade activities through alpaca-py's REST client, parsed into its model, oldest first."""
    rows = trading_client(st).get("/account/activities", {"activity_types": types, "direction": "asc"})
    return [NonTradeActivity(**row) for row in rows]


def _fills(st: SimThread) -> list[TradeActivity]:
    rows = trading_client(st).get("/account/activities", {"activity_types": "FILL", "direction": "asc"})
    return [TradeActivity(**row) for row in rows]


def _kinds(activities: list[NonTradeActivity]) -> list[tuple[str, str | None, float | None]]:
    return [(a.activity_type.value, a.symbol, a.qty) for a in activities]


def _close_and_open(sim: Any) -> tuple[float, float]:
    """SPY's last close and the spot now (at the open that followed it)."""
    und = sim.market.unds[0]
    return und.prev_close, und.spot


def _ny(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(NY).replace(tzinfo=None)


# ---- liquidation -------------------------------------------------------------------------------


def test_an_uncarryable_itm_expiring_position_is_liquidated_at_1515_by_a_broker_order(
    threads: list[SimThread],
) -> None:
    st = _start(threads, dt.datetime(2026, 12, 4, 15, 0), assignment=NO_EARLY)
    updates: list[TradeUpdate] = []

    async def on_update(update: TradeUpdate) -> None:
        updates.append(update)

    stream = TradingStream(st.urls.key, st.urls.secret, url_override=st.urls.trading_stream_url)
    stream.subscribe_trade_updates(on_update)
    runner = StreamThread(stream)
    try:
        wait_for(lambda: st.call(lambda: any(s.listening for s in st.sim.hub.sessions["trading"])))
        call = format_occ("SPY", FRIDAY, True, 590)
        # 3 calls $10 in the money: exercising them takes $177,000 of a $100,000 account
        trading_client(st).submit_order(
            MarketOrderRequest(
                symbol=call, qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="engine-1"
            )
        )
        resting = trading_client(st).submit_order(  # the client's own closing order, far from the market
            LimitOrderRequest(symbol=call, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, limit_price=50)
        )
        _advance(st, 14 * 60 + 59)  # 15:14:59
        assert _positions(st) == {call: 3.0}
        _advance(st, 30 * 60)  # one jump past 15:15: the clock stops there to check
        assert _positions(st) == {}
        # cancelled first: filled after the liquidation, it would have sold a contract the account no longer held
        assert trading_client(st).get_order_by_id(resting.id).status == OrderStatus.CANCELED
        liquidation = st.call(lambda: st.sim.expiry())["liquidation_orders"][call]
        order = trading_client(st).get_order_by_id(liquidation)
        assert order.client_order_id != "engine-1" and order.side == OrderSide.SELL and float(order.filled_qty) == 3
        # the inspection view tells the broker's own orders from the client's
        assert st.call(lambda: st.sim.inspect())["broker_orders"] == [order.client_order_id]
        assert order.position_intent is not None and order.position_intent.value == "sell_to_close"
        assert _ny(order.filled_at) == dt.datetime(2026, 12, 4, 15, 15)
        # reported like any order: on trade_updates and as a FILL activity
        wait_for(lambda: [u for u in updates if str(u.order.id) == liquidation and u.event == "fill"])
        events = [u.event for u in updates if str(u.order.id) == liquidation]
        assert events == ["pending_new", "new", "fill"]
        fill = next(u for u in updates if str(u.order.id) == liquidation and u.event == "fill")
        assert fill.qty == 3 and fill.position_qty == 0
        assert [(f.order_id, f.side, f.qty) for f in _fills(st) if str(f.order_id) == liquidation] == [
            (order.id, OrderSide.SELL, 3.0)
        ]
        _advance(st, 3600)  # through the close: nothing left to exercise
        assert _activities(st) == []
    finally:
        runner.stop(nudge=lambda: st.call(lambda: st.sim.drop_streams("trading")))


def test_on_a_half_day_the_liquidation_runs_45_minutes_before_the_1300_close(threads: list[SimThread]) -> None:
    st = _start(threads, dt.datetime(2026, 11, 27, 11, 30), assignment=NO_EARLY)
    call = format_occ("SPY", HALF_DAY, True, 590)
    _buy(st, call, 3)
    _advance(st, 44 * 60 + 59)  # 12:14:59
    assert _positions(st) == {call: 3.0}
    _advance(st, 10 * 60)
    assert _positions(st) == {}
    order = trading_client(st).get_order_by_id(st.call(lambda: st.sim.expiry())["liquidation_orders"][call])
    assert _ny(order.filled_at) == dt.datetime(2026, 11, 27, 12, 15)


def test_a_position_the_account_can_carry_is_not_liquidated_and_is_exercised_at_the_close(
    threads: list[SimThread],
) -> None:
    st = _start(threads, dt.datetime(2026, 12, 4, 15, 0), assignment=NO_EARLY)
    call = format_occ("SPY", FRIDAY, True, 590)
    _buy(st, call, 1)  # $59,000 to exercise: the account has it
    _advance(st, 59 * 60)
    assert _positions(st) == {call: 1.0}
    assert st.call(lambda: st.sim.expiry())["liquidation_orders"] == {}
    _advance(st, 120)
    acts = _activities(st)
    assert _kinds(acts) == [("OPEXC", call, -1.0), ("OPTRD", "SPY", 100.0)]
    assert acts[0].net_amount == 0 and acts[0].description == "Option Exercise" and acts[0].date == FRIDAY
    assert acts[1].price == 590 and acts[1].net_amount == -59_000
    assert _positions(st) == {"SPY": 100.0}


def test_liquidation_switched_off_leaves_the_position_to_the_close(threads: list[SimThread]) -> None:
    st = _start(threads, dt.datetime(2026, 12, 4, 15, 0), assignment=NO_EARLY,
                expiration=ExpirationConfig(liquidate=False))
    call = format_occ("SPY", FRIDAY, True, 590)
    _buy(st, call, 3)
    _advance(st, 59 * 60)
    assert _positions(st) == {call: 3.0}


# ---- the $0.01 threshold -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "threshold", "exercised"),
    [(600.01, 0.01, True), (600.00, 0.01, False), (599.99, 0.01, True), (600.01, 0.02, False)],
    ids=["calls-1c", "at-the-money", "puts-1c", "1c-under-a-2c-threshold"],
)
def test_automatic_exercise_and_assignment_take_a_cent_in_the_money_on_the_close(
    threads: list[SimThread], close: float, threshold: float, exercised: bool
) -> None:
    # SPY for the long side, QQQ (at 520 + the same cents) for the short side; quiet underlyings (1 % vol, the
    # process's floor, no jumps): the last 100 ms step moves them by a tenth of a cent, not a cent
    quiet = {"atm_vol": 0.01, "vol_of_vol": 0.0, "jumps_per_day": 0.0}
    calls = close >= 600
    spy = UnderlyingConfig(symbol="SPY", spot=600.0, **quiet)  # type: ignore[arg-type]
    # a dollar in the money at the entry, so the short leg has a bid to sell into
    qqq = UnderlyingConfig(symbol="QQQ", spot=521.0 if calls else 519.0, **quiet)  # type: ignore[arg-type]
    rules = ExpirationConfig(liquidate=False, long_puts_need_shares=False, exercise_threshold_usd=threshold)
    st = _start(threads, dt.datetime(2026, 12, 4, 15, 58), underlyings=(spy, qqq), assignment=NO_EARLY,
                expiration=rules)
    long_leg = format_occ("SPY", FRIDAY, calls, 600)
    short_leg, cover = format_occ("QQQ", FRIDAY, calls, 520), format_occ("QQQ", FRIDAY, calls, 525 if calls else 515)
    _buy(st, long_leg, 1)
    _buy(st, cover, 1)
    _buy(st, short_leg, 1, OrderSide.SELL)

    def close_at(sim: Any) -> float:
        sim.advance(119.9)  # to the last step before the close, then pin the price it closes from
        for u, level in zip(sim.market.unds, (close, close - 80), strict=True):
            u.spot = level
        sim.advance(0.1)  # one 100 ms step: cents do not move on it
        return float(sim.exchange.account.activities[-1]["_ns"])

    st.call(lambda: close_at(st.sim))
    kinds = {sym: k for k, sym, _ in _kinds(_activities(st)) if sym in (long_leg, short_leg)}
    expected = {long_leg: "OPEXC", short_leg: "OPASN"} if exercised else {long_leg: "OPEXP", short_leg: "OPEXP"}
    assert kinds == expected


# ---- long puts and available shares -------------------------------------------------------------


def test_itm_long_puts_are_exercised_only_against_available_shares(threads: list[SimThread]) -> None:
    close_only = ExpirationConfig(liquidate=False)
    put = format_occ("SPY", FRIDAY, False, 610)
    # no shares: not exercised, they expire
    bare = _start(threads, dt.datetime(2026, 12, 4, 15, 30), assignment=NO_EARLY, expiration=close_only)
    _buy(bare, put, 2)
    # 300 shares, 100 of them securing a covered call: 2 puts exercised, the third expires
    covered = _start(threads, dt.datetime(2026, 12, 4, 15, 30), assignment=NO_EARLY, expiration=close_only,
                     initial_cash=400_000.0)
    later_call = format_occ("SPY", dt.date(2026, 12, 11), True, 610)
    _buy(covered, "SPY", 300)
    _buy(covered, later_call, 1, OrderSide.SELL)
    _buy(covered, put, 3)
    for st in (bare, covered):
        _advance(st, 31 * 60)
    assert _kinds(_activities(bare)) == [("OPEXP", put, -2.0)]
    assert _positions(bare) == {}
    assert _kinds(_activities(covered)) == [("OPEXC", put, -2.0), ("OPTRD", "SPY", -200.0), ("OPEXP", put, -1.0)]
    assert _positions(covered) == {"SPY": 100.0, later_call: -1.0}


def test_itm_long_puts_without_shares_are_closed_from_the_liquidation_time(threads: list[SimThread]) -> None:
    st = _start(threads, dt.datetime(2026, 12, 4, 15, 0), assignment=NO_EARLY)
    put = format_occ("SPY", FRIDAY, False, 610)
    _buy(st, "SPY", 100)
    _buy(st, put, 3)  # 100 shares cover one put: two are sold
    _advance(st, 16 * 60)
    assert _positions(st) == {"SPY": 100.0, put: 1.0}
    liquidation = st.call(lambda: st.sim.expiry())["liquidation_orders"][put]
    order = trading_client(st).get_order_by_id(liquidation)
    assert order.side == OrderSide.SELL and float(order.qty) == 2
    _advance(st, 3600)
    assert _kinds(_activities(st)) == [("OPEXC", put, -1.0), ("OPTRD", "SPY", -100.0)]


# ---- early assignment ---------------------------------------------------------------------------


def test_a_partial_assignment_takes_k_of_n_contracts_now_or_at_the_next_open(threads: list[SimThread]) -> None:
    st = _start(threads, dt.datetime(2026, 12, 4, 14, 0), assignment=NO_EARLY)
    put, cover = (format_occ("SPY", dt.date(2026, 12, 11), False, k) for k in (620, 560))  # $20 in the money
    _buy(st, cover, 5)
    _buy(st, put, 5, OrderSide.SELL)
    url = f"{st.urls.control_url}/options/assign"
    answer = requests.post(url, json={"symbol": put, "contracts": 2}, headers=st.headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert _positions(st) == {put: -3.0, cover: 5.0, "SPY": 200.0}
    assert _kinds(_activities(st)) == [("OPASN", put, 2.0), ("OPTRD", "SPY", 200.0)]
    # OCC's timing: decided tonight, booked (and visible) at the next session's open
    answer = requests.post(url, json={"symbol": put, "contracts": 1, "at": "next_open"}, headers=st.headers, timeout=10)
    assert answer.json()["pending_assignments"] == [{"symbol": put, "contracts": 1, "reason": "requested"}]
    _advance(st, 2 * 3600 - 1)
    assert _positions(st)[put] == -3.0
    _advance(st, 2)
    assert _positions(st) == {put: -2.0, cover: 5.0, "SPY": 300.0}
    last = _activities(st)[-2]
    assert (last.activity_type.value, last.qty, last.date) == ("OPASN", 1.0, dt.date(2026, 12, 7))
    assert from_ns(st.call(lambda: st.sim.exchange.account.activities[-1]["_ns"])).astimezone(NY).time() == dt.time(
        9, 30
    )
    bad = requests.post(url, json={"symbol": put, "contracts": 3}, headers=st.headers, timeout=10)
    assert bad.status_code == 422 and "between 1 and 2" in bad.json()["message"]


def test_early_assignment_is_seeded_and_books_a_part_of_the_position(threads: list[SimThread]) -> None:
    deep = AssignmentConfig(probability=0.5, max_time_value_usd=5.0, dividend_probability=0.0)
    put, cover = (format_occ("SPY", dt.date(2026, 12, 11), False, k) for k in (640, 610))  # $40 in the money
    runs = []
    for _ in range(2):
        st = _start(threads, dt.datetime(2026, 12, 4, 15, 50), assignment=deep)
        _buy(st, cover, 20)
        _buy(st, put, 20, OrderSide.SELL)
        _advance(st, 11 * 60)  # through the close into Monday's open
        runs.append(_kinds(_activities(st)))
    assert runs[0] == runs[1]  # same seed, same positions: the same assignment
    (kind, symbol, qty), (trade, stock, shares) = runs[0]
    assert (kind, symbol, trade, stock) == ("OPASN", put, "OPTRD", "SPY")
    assert qty is not None and 0 < qty < 20 and shares == 100 * qty


def test_short_itm_calls_worth_less_than_the_dividend_are_assigned_the_evening_before_the_ex_date(
    threads: list[SimThread],
) -> None:
    ex_date = dt.date(2026, 12, 18)
    spy = UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, dividends=(Dividend(ex_date, 1.95),))
    plain = UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16)
    expiry = dt.date(2026, 12, 24)
    deep, at_the_money = format_occ("SPY", expiry, True, 570), format_occ("SPY", expiry, True, 600)
    covers = format_occ("SPY", expiry, True, 575), format_occ("SPY", expiry, True, 605)
    sims = {}
    for name, und in (("dividend", spy), ("none", plain)):
        st = _start(threads, dt.datetime(2026, 12, 17, 15, 50), underlyings=(und,),
                    assignment=AssignmentConfig(probability=0.0))
        for cover in covers:
            _buy(st, cover, 10)
        _buy(st, deep, 10, OrderSide.SELL)  # $30 in the money: a few cents of time value
        _buy(st, at_the_money, 10, OrderSide.SELL)  # several dollars of time value: nobody exercises
        _advance(st, 10 * 60)  # to the close: processed, and the clock rolls to the ex-date's open
        sims[name] = (st, *st.call(functools.partial(_close_and_open, st.sim)))
    st, close, open_ = sims["dividend"]
    acts = _activities(st)
    assigned = [a for a in acts if a.activity_type.value == "OPASN"]
    assert [a.symbol for a in assigned] == [deep] and assigned[0].date == ex_date
    k = assigned[0].qty
    assert k is not None and 1 <= k <= 10
    shares = -100 * k  # the assigned calls' shares, short over the ex-date
    assert _positions(st) == {"SPY": shares, deep: -10 + k, at_the_money: -10.0, covers[0]: 10.0, covers[1]: 10.0}
    div = [a for a in acts if a.activity_type.value == "DIV"]
    assert [(d.qty, d.per_share_amount, d.net_amount) for d in div] == [(shares, 1.95, round(shares * 1.95, 2))]
    # the spot gaps down by the dividend at the ex-date's open (same seed, same overnight move otherwise)
    _, close_none, open_none = sims["none"]
    assert close == close_none
    assert open_ == pytest.approx(open_none - 1.95, abs=1e-9)
    assert _kinds(_activities(sims["none"][0])) == []
