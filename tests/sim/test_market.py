"""The simulated market: listed universe, quote shape, session clock and expiry processing at the close."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from alpaca.trading.models import NonTradeActivity, TradeActivity

from engine.sim.clock import NY, from_ns
from engine.sim.config import ExpirationConfig, SimConfig, UnderlyingConfig
from engine.sim.server import Simulator
from engine.sim.universe import Universe
from greeks.calendar import market_calendar
from greeks.occ import format_occ


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimConfig(seed=3, speed=0.0))


def test_universe_lists_0dte_dailies_weeklies_and_a_year_of_monthlies(sim: Simulator) -> None:
    uni = sim.market.universe
    today = sim.clock.today()
    spy = {uni.expiry_dates[i] for i in range(len(uni)) if uni.symbols[i].startswith("SPY")}
    assert today in spy  # 0DTE
    assert len([d for d in spy if (d - today).days <= 14]) >= 10  # dailies
    assert max(spy) - today >= dt.timedelta(days=330)  # monthlies out to about a year
    assert all(d.weekday() < 5 for d in spy)
    front = sorted(
        float(uni.strike[i])
        for i in range(len(uni))
        if uni.expiry_dates[i] == today and uni.symbols[i].startswith("SPY") and uni.is_call[i]
    )
    steps = np.diff(front)
    assert steps.min() == pytest.approx(1.0)  # $1 strikes near the money
    assert front[0] < 600 * 0.97 and front[-1] > 600 * 1.03


def _row(sim: Simulator, days: int, strike: float, call: bool) -> int:
    today = sim.clock.today()
    uni = sim.market.universe
    expiry = min(d for d in set(uni.expiry_dates) if (d - today).days >= days)
    return uni.index[format_occ("SPY", expiry, call, strike)]


def test_quotes_are_ordered_on_ticks_and_widen_away_from_the_money(sim: Simulator) -> None:
    spot = sim.market.spot("SPY")
    atm = round(spot)
    rows = np.array([_row(sim, 30, atm, True), _row(sim, 30, atm + 30, True), _row(sim, 30, atm - 60, False)])
    q = sim.market.option_quotes(rows)
    assert np.all(q.bid < q.ask)
    assert np.allclose(np.round(q.bid * 100), q.bid * 100) and np.allclose(np.round(q.ask * 100), q.ask * 100)
    rel = (q.ask - q.bid) / ((q.ask + q.bid) / 2)
    assert rel[0] < rel[1] and rel[0] < rel[2]  # cheap OTM options are relatively wider
    assert q.sigma[2] > q.sigma[0] > 0.05  # put skew


def test_nickel_ticks_above_three_dollars_for_non_penny_names() -> None:
    und = UnderlyingConfig(symbol="XYZ", spot=100.0, atm_vol=0.3, penny_all_prices=False, daily_expiries=False)
    sim = Simulator(SimConfig(seed=1, speed=0.0, underlyings=(und,)))
    q = sim.market.option_quotes(np.arange(len(sim.market.universe)))
    dear = q.ask >= 3.05
    assert dear.any() and np.allclose(np.round(q.ask[dear] * 20), q.ask[dear] * 20)


def test_event_time_stays_inside_sessions(sim: Simulator) -> None:
    before = sim.clock.today()
    sim.advance(7 * 3600)  # longer than a session: crosses the close into the next session
    now = from_ns(sim.now_ns).astimezone(NY)
    assert sim.clock.today() > before and dt.time(9, 30) <= now.time() < dt.time(16, 0)


def test_expiry_at_the_close_exercises_assigns_and_expires() -> None:
    # the close alone: no liquidation at 15:55, long puts exercised without shares (tests/sim/test_expiration.py
    # covers both rules)
    rules_off = ExpirationConfig(liquidate=False, long_puts_need_shares=False)
    sim = Simulator(
        SimConfig(
            seed=4,
            speed=0.0,
            start=dt.datetime(2026, 12, 4, 15, 55),
            partial_fill_probability=0.0,
            expiration=rules_off,
        )
    )
    ex = sim.exchange
    events: list[tuple[str, str]] = []
    ex.listeners.append(lambda m: events.append((m["data"]["event"], m["data"]["order"]["id"])))
    exp = dt.date(2026, 12, 4)
    c590, p610, p605, c620 = (
        format_occ("SPY", exp, k == "C", s) for k, s in (("C", 590), ("P", 610), ("P", 605), ("C", 620))
    )
    ex.submit({"symbol": c590, "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    ex.submit(
        {
            "order_class": "mleg",
            "qty": 1,
            "type": "market",
            "time_in_force": "day",
            "legs": [{"symbol": p610, "ratio_qty": 1, "side": "buy"}, {"symbol": p605, "ratio_qty": 1, "side": "sell"}],
        }
    )
    ex.submit({"symbol": c620, "qty": 2, "side": "buy", "type": "market", "time_in_force": "day"})
    resting = ex.submit(
        {"symbol": c620, "qty": 1, "side": "buy", "type": "limit", "limit_price": "0.01", "time_in_force": "gtc"}
    )
    assert set(ex.account.positions) == {c590, p610, p605, c620}
    cash_before = ex.account.cash
    sim.advance(6 * 60)
    kinds = [a["activity_type"] for a in ex.account.activities if a["activity_type"] != "FILL"]
    assert sorted(kinds) == ["OPASN", "OPEXC", "OPEXC", "OPEXP", "OPTRD", "OPTRD", "OPTRD"]
    for activity in ex.account.activities:  # the REST shape parses into alpaca-py's models
        fields = {k: v for k, v in activity.items() if k != "_ns"}
        model = TradeActivity if activity["activity_type"] == "FILL" else NonTradeActivity
        assert model(**fields).activity_type.value == activity["activity_type"]
    assert {s: p.qty for s, p in ex.account.positions.items()} == {"SPY": 100}
    assert ex.account.cash - cash_before == pytest.approx(-590 * 100 + 610 * 100 - 605 * 100)
    assert ("expired", resting["id"]) in events  # open orders on an expiring contract expire
    assert sim.clock.today() == dt.date(2026, 12, 7)
    assert not sim.market.universe.active[sim.market.universe.index[c590]]
    assert any(d == dt.date(2026, 12, 7) for d in sim.market.universe.expiry_dates)  # the new 0DTE is listed


def test_do_not_exercise_lets_an_itm_long_expire() -> None:
    sim = Simulator(SimConfig(seed=4, speed=0.0, start=dt.datetime(2026, 12, 4, 15, 58), partial_fill_probability=0.0))
    ex = sim.exchange
    c590 = format_occ("SPY", dt.date(2026, 12, 4), True, 590)
    ex.submit({"symbol": c590, "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    ex.do_not_exercise(c590)
    sim.advance(300)
    assert [a["activity_type"] for a in ex.account.activities] == ["FILL", "OPEXP"]
    assert ex.account.positions == {}


def test_manual_exercise_delivers_shares_now(sim: Simulator) -> None:
    ex = sim.exchange
    row = _row(sim, 20, round(sim.market.spot("SPY")) - 20, True)
    symbol = sim.market.universe.symbols[row]
    ex.submit({"symbol": symbol, "qty": 2, "side": "buy", "type": "market", "time_in_force": "day"})
    shares_before = ex.account.positions.get("SPY")
    ex.exercise(symbol)
    assert symbol not in ex.account.positions
    assert ex.account.positions["SPY"].qty == (shares_before.qty if shares_before else 0) + 200
    assert [a["activity_type"] for a in ex.account.activities[-2:]] == ["OPEXC", "OPTRD"]


def test_buying_power_follows_the_spread_rule() -> None:
    sim = Simulator(SimConfig(seed=3, speed=0.0, partial_fill_probability=0.0))
    ex = sim.exchange
    start = ex.account.buying_power()
    atm = round(sim.market.spot("SPY"))
    short, long_ = (sim.market.universe.symbols[_row(sim, 25, k, False)] for k in (atm, atm - 5))
    order = ex.submit(
        {
            "order_class": "mleg",
            "qty": 2,
            "type": "market",
            "time_in_force": "day",
            "legs": [
                {"symbol": short, "ratio_qty": 1, "side": "sell"},
                {"symbol": long_, "ratio_qty": 1, "side": "buy"},
            ],
        }
    )
    assert order["status"] == "pending_new"
    credit = ex.orders[order["id"]].filled_avg_price
    assert credit is not None and credit < 0
    # a 5-wide put credit spread ties up the width minus nothing: the credit stays as cash
    assert ex.account.buying_power() == pytest.approx(start - 2 * 5 * 100 - credit * 2 * 100, abs=0.01)


def test_stop_orders_wait_for_their_trigger() -> None:
    sim = Simulator(SimConfig(seed=8, speed=0.0, partial_fill_probability=0.0))
    ex = sim.exchange
    spot = sim.market.spot("SPY")
    order = ex.submit(
        {
            "symbol": "SPY",
            "qty": 5,
            "side": "buy",
            "type": "stop",
            "stop_price": f"{spot * 1.01:.2f}",
            "time_in_force": "day",
        }
    )
    sim.advance(1)
    assert ex.orders[order["id"]].status == "new"
    sim.move_underlying("SPY", 0.02)
    sim.advance(0.1)
    assert ex.orders[order["id"]].status == "filled" and ex.account.positions["SPY"].qty == 5


def test_partial_fills_add_up_with_position_quantities() -> None:
    sim = Simulator(SimConfig(seed=8, speed=0.0, partial_fill_probability=1.0))
    ex = sim.exchange
    events: list[dict[str, Any]] = []
    ex.listeners.append(lambda m: events.append(m["data"]))
    order = ex.submit({"symbol": "QQQ", "qty": 40, "side": "buy", "type": "market", "time_in_force": "day"})
    for _ in range(200):
        if ex.orders[order["id"]].status == "filled":
            break
        sim.advance(0.1)
    fills = [e for e in events if e["event"] in ("partial_fill", "fill")]
    assert len(fills) >= 2 and fills[-1]["event"] == "fill"
    assert sum(float(e["qty"]) for e in fills) == 40
    assert [float(e["position_qty"]) for e in fills] == list(np.cumsum([float(e["qty"]) for e in fills]))


def test_short_stock_needs_reg_t_collateral_unless_calls_cover_it() -> None:
    sim = Simulator(SimConfig(seed=3, speed=0.0, partial_fill_probability=0.0))
    ex = sim.exchange
    ex.submit({"symbol": "SPY", "qty": 100, "side": "sell", "type": "market", "time_in_force": "day"})
    spot = sim.market.spot("SPY")
    # proceeds are cash, 150 % of the short value is held: buying power falls by about half the value
    assert ex.account.buying_power() == pytest.approx(100_000 - 0.5 * 100 * spot, rel=0.002)
    call = sim.market.universe.symbols[_row(sim, 30, round(spot) + 10, True)]
    ex.submit({"symbol": call, "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"})
    covered = ex.account.buying_power()
    assert covered > 100_000 - 0.5 * 100 * spot  # the long call caps the short's loss


async def test_the_clock_runs_at_600x() -> None:
    import asyncio
    import time

    async with Simulator(SimConfig(speed=600.0)) as sim:
        await asyncio.sleep(0.2)
        start_ns, start = sim.now_ns, time.monotonic()
        await asyncio.sleep(1.0)
        rate = (sim.now_ns - start_ns) / 1e9 / (time.monotonic() - start)
    assert rate > 0.8 * 600  # simulated seconds per wall second (the last step may lag a little)


def test_a_listing_history_lists_the_chain_the_simulator_would_hold_after_listing_that_long() -> None:
    cfg = SimConfig(seed=3, speed=0.0)
    calendar = market_calendar()
    today = calendar.session_on_or_after(dt.date(2026, 11, 23))
    spots = np.array([u.spot for u in cfg.underlyings])
    seasoned = Universe(cfg.underlyings, calendar, history_days=400)
    seasoned.list_session(today.day, spots, today.open_ns)
    lived = Universe(cfg.underlyings, calendar)  # listing every session for 400 days, at the same spots
    for s in calendar.sessions_between(today.day - dt.timedelta(days=400), today.day):
        lived.list_session(s.day, spots, s.open_ns)
    lived.deactivate_expired(today.open_ns)

    def chain(u: Universe) -> set[str]:
        return {u.symbols[i] for i in np.flatnonzero(u.active)}

    assert chain(seasoned) == chain(lived)
    fresh = Universe(cfg.underlyings, calendar)
    fresh.list_session(today.day, spots, today.open_ns)
    assert set(fresh.expiry_dates) == set(seasoned.expiry_dates)  # the same expiries ...
    month = next(d for d in sorted(set(fresh.expiry_dates)) if (d - today.day).days >= 30)

    def strikes(u: Universe) -> list[float]:
        return sorted(float(u.strike[i]) for i in range(len(u))
                      if u.expiry_dates[i] == month and u.symbols[i].startswith("SPY") and u.is_call[i])

    assert strikes(seasoned)[0] < strikes(fresh)[0] and strikes(seasoned)[-1] > strikes(fresh)[-1]  # ... wider


async def test_a_paused_clock_stands_still_serves_requests_and_runs_on_without_a_jump() -> None:
    import asyncio
    import time

    import aiohttp

    async with Simulator(SimConfig(speed=600.0)) as sim:
        assert sim.urls is not None
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession(headers={"APCA-API-KEY-ID": sim.config.key,
                                                  "APCA-API-SECRET-KEY": sim.config.secret}) as http:
            async with http.post(f"{sim.urls.control_url}/clock/pause", json={"paused": True}) as resp:
                assert resp.status == 200 and (await resp.json())["paused"] is True
            paused_at = sim.now_ns
            await asyncio.sleep(0.5)
            assert sim.now_ns == paused_at
            async with http.get(f"{sim.urls.trading_url}/v2/clock") as resp:  # REST still answers
                assert resp.status == 200
            async with http.post(f"{sim.urls.control_url}/clock/pause", json={"paused": False}) as resp:
                assert resp.status == 200 and (await resp.json())["paused"] is False
            start = time.monotonic()
            await asyncio.sleep(0.3)
            ran_s = (sim.now_ns - paused_at) / 1e9
            wall_s = time.monotonic() - start
    assert 0 < ran_s <= 600.0 * wall_s + 60  # on from where it stood: the paused half second is not caught up
