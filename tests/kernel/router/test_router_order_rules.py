"""The router against the simulator's harsher order rules (all on, as on Alpaca): a refused replace is redone by
cancel and new without two live orders, no wash trade is ever sent, prices sit on the contract class's tick at
the price itself, and nothing goes out while the market is closed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import numpy as np
import pytest

from domain.orders import (
    AssetClass,
    IntentAction,
    Leg,
    OrderIntent,
    OrderStatus,
    OrderUpdated,
    PositionIntent,
    PricePolicy,
    Side,
)
from engine.sim.config import UnderlyingConfig

from .rig import NS, RouterRig, filled, running_rig

pytestmark = pytest.mark.timeout(120)


def _ends(rig: RouterRig, intent_id: str) -> list[OrderStatus]:
    """Final states the intent's owner hears of (what the router absorbed is not the intent's end)."""
    return [u.status for u in rig.of(OrderUpdated)
            if u.intent_id == intent_id and u.status.is_terminal and u.status is not OrderStatus.REPLACED
            and not u.reason and u not in rig.absorbed]  # a reason marks a notice (order_cancel_rejected...)


def _submitted(rig: RouterRig, intent_id: str) -> dict[str, int]:
    return {c: n for c, n in rig.sim.inspect()["submissions"].items() if c.startswith(f"oe-{intent_id}")}


async def _open_straddle(rig: RouterRig, qty: int = 2) -> OrderIntent:
    opening = rig.straddle(1, qty=qty)
    rig.router.submit(opening)
    await rig.settle()
    await rig.advance(30, steps=6)
    assert filled(rig, opening.intent_id) == 2 * qty
    return opening


def _closing(opening: OrderIntent, policy: PricePolicy) -> OrderIntent:
    legs = tuple(Leg(leg.symbol, Side.SELL, 1, PositionIntent.SELL_TO_CLOSE) for leg in opening.legs)
    return OrderIntent("t-SPY-1-close-1", "test", "t-SPY-1", "SPY", IntentAction.CLOSE, legs, opening.qty, policy)


# ---- a. replace refused -> cancel, confirmed cancel, new order -------------------------------------------
async def test_a_walking_closing_spread_completes_by_cancel_and_new_when_its_replace_is_refused(rig: RouterRig) -> None:
    opening = await _open_straddle(rig)
    close = _closing(opening, PricePolicy(walk_every_s=5, walk_step_fraction=0.25, timeout_s=120))
    rig.router.submit(close)
    await rig.settle()
    await rig.advance(60, steps=12)

    counters = rig.router.counters
    assert counters["replace_fallbacks"] >= 1 and counters["fallback_orders"] >= 1, counters
    assert filled(rig, close.intent_id) == 4  # both legs, two each
    assert rig.max_live[f"oe-{close.intent_id}"] == 1  # at no instant two live orders for the intent
    sent = _submitted(rig, close.intent_id)
    assert len(sent) == 1 + counters["fallback_orders"] and set(sent.values()) == {1}
    assert all(c.startswith(f"oe-{close.intent_id}.r") for c in sorted(sent)[1:])  # the chain's names
    # the cancels the fallback made were not the intent's end: its owner heard only of the fill
    assert [u.status for u in rig.absorbed] == [OrderStatus.CANCELED] * counters["fallback_orders"]
    assert _ends(rig, close.intent_id) == [OrderStatus.FILLED]
    assert not rig.router.working and not rig.orders.positions()
    rig.assert_exact()


async def test_an_order_that_fills_while_its_cancel_is_pending_ends_the_fallback_without_a_new_order(
    latent_rig: RouterRig,
) -> None:
    rig = latent_rig
    opening = await _open_straddle(rig, qty=1)
    close = _closing(opening, PricePolicy(walk_every_s=5, walk_step_fraction=0.25, timeout_s=120))
    rig.router.submit(close)
    await rig.settle()
    rig.sim.move_underlying("SPY", 0.02)  # the straddle gains: the resting sale becomes marketable...
    rig.sim.advance(0.2)  # ...and its fill is decided now, reported 2 s later
    rig.clock.advance(rig.clock.now_ns() + 5 * NS)  # the walk: PATCH refused, cancel -> pending_cancel
    for _ in range(100):
        if rig.router.counters["replace_fallbacks"] and rig.sim.inspect()["orders"][-1]["status"] == "pending_cancel":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    rig.sim.advance(3.0)  # the fill arrives (and the cancel is refused)
    rig.clock.advance(rig.sim.now_ns)
    await rig.settle()
    assert rig.router.counters["replace_fallbacks"] == 1 and rig.router.counters["fallback_orders"] == 0
    assert filled(rig, close.intent_id) == 2
    assert list(_submitted(rig, close.intent_id)) == [f"oe-{close.intent_id}"]
    assert _ends(rig, close.intent_id) == [OrderStatus.FILLED] and not rig.absorbed
    assert not rig.router.working
    rig.assert_exact()


# ---- b. no wash trades --------------------------------------------------------------------------------------
def _stock(intent_id: str, strategy: str, structure: str, side: Side, qty: int) -> OrderIntent:
    return OrderIntent(intent_id, strategy, structure, "SPY", IntentAction.HEDGE,
                       (Leg("SPY", side, 1, None, AssetClass.EQUITY),), qty, PricePolicy(kind="market", timeout_s=60))


def _odd_cent_put(rig: RouterRig) -> str:
    """A put near the money whose mid is half a cent off the grid: a buy at mid rounded down and a sale at mid
    rounded up do not meet (until they walk)."""
    book = rig.market.chain("SPY")
    assert book is not None
    rows = [r for r in range(len(book.symbols)) if not book.is_call[r] and book.bid[r] > 0.5
            and round((book.bid[r] + book.ask[r]) * 100) % 2 == 1]
    assert rows, "no put with an odd-cent spread"
    return str(book.symbols[min(rows, key=lambda r: abs(book.strike[r] - book.spot))])


def _option(rig: RouterRig, intent_id: str, structure: str, side: Side, policy: PricePolicy,
            put: str | None = None) -> OrderIntent:
    put = put or rig.atm()[1]
    pi = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
    return OrderIntent(intent_id, "test", structure, "SPY", IntentAction.OPEN, (Leg(put, side, 1, pi),), 1, policy)


async def test_a_hedge_waits_for_the_working_unwind_on_its_stock_and_nothing_is_refused(rig: RouterRig) -> None:
    rig.sim.delay_fills(3_000)  # the unwind's market order stays working for 3 s
    unwind = _stock("settle-1-unwind-1", "engine", "settle-1", Side.SELL, 10)
    hedge = _stock("gs-1-hedge-1", "gamma_scalper", "gs-1", Side.BUY, 5)
    rig.router.submit(unwind)
    await rig.settle()
    rig.router.submit(hedge)
    await rig.settle()
    assert rig.router.counters["wash_waits"] == 1
    assert _submitted(rig, hedge.intent_id) == {}  # held back while the unwind works
    await rig.advance(4, steps=2)  # the unwind fills: the hedge goes
    await rig.advance(4, steps=2)
    assert filled(rig, unwind.intent_id) == 10 and filled(rig, hedge.intent_id) == 5
    assert _submitted(rig, hedge.intent_id) == {f"oe-{hedge.intent_id}": 1}
    assert not rig.denials() and not rig.refusals
    rig.assert_exact()


async def test_two_structures_working_opposite_sides_of_one_contract_never_cross(rig: RouterRig) -> None:
    policy = PricePolicy(walk_every_s=5, walk_step_fraction=0.5, timeout_s=40)
    put = _odd_cent_put(rig)
    buy = _option(rig, "t-SPY-A-open-1", "t-SPY-A", Side.BUY, policy, put)
    sell = _option(rig, "t-SPY-B-open-1", "t-SPY-B", Side.SELL, policy, put)
    rig.router.submit(buy)
    await rig.settle()
    rig.router.submit(sell)  # a cent above the buy: both work...
    await rig.settle()
    assert len(rig.sim_orders_by_client_id()) == 2
    await rig.advance(100, steps=20)  # ...and each walk stops short of the other
    counters = rig.router.counters
    assert counters["wash_holds"] >= 1, counters
    assert not [r for r in rig.refusals if "wash trade" in r[2]], rig.refusals  # none ever reached the broker
    assert counters["broker_wash_trade"] == 0 and counters["rejected"] == 0 and not rig.denials()
    assert not rig.router.working
    rig.assert_exact()


async def test_an_order_that_would_meet_a_working_one_waits_for_it(rig: RouterRig) -> None:
    put = rig.atm()[1]
    buy = _option(rig, "t-SPY-A-open-1", "t-SPY-A", Side.BUY, PricePolicy(walk_every_s=5, timeout_s=20), put)
    sell = _option(rig, "t-SPY-B-open-1", "t-SPY-B", Side.SELL, PricePolicy(kind="market", timeout_s=60), put)
    rig.router.submit(buy)
    await rig.settle()
    rig.router.submit(sell)  # a market order meets any price: it waits until the buy ends
    await rig.settle()
    assert rig.router.counters["wash_waits"] == 1 and _submitted(rig, sell.intent_id) == {}
    await rig.advance(25, steps=5)  # the buy fills or times out; the sale goes then
    assert _submitted(rig, sell.intent_id) == {f"oe-{sell.intent_id}": 1}
    assert filled(rig, sell.intent_id) == 1
    assert not rig.refusals and not rig.denials()
    rig.assert_exact()


async def test_a_single_leg_order_blocked_past_the_wait_is_denied_and_never_sent(rig: RouterRig) -> None:
    resting = _option(rig, "t-SPY-A-open-1", "t-SPY-A", Side.BUY,
                      PricePolicy(walk_every_s=5, limit_price=0.05, timeout_s=120))
    market_sell = _option(rig, "t-SPY-B-open-1", "t-SPY-B", Side.SELL, PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(resting)
    await rig.settle()
    rig.router.submit(market_sell)
    await rig.settle()
    await rig.advance(31, steps=4)
    (denied,) = [d for d in rig.denials() if d.intent_id == market_sell.intent_id]
    assert denied.reasons == ("wash_trade_conflict",) and "did not end within 30 s" in denied.detail
    assert _submitted(rig, market_sell.intent_id) == {}
    assert rig.router.counters["wash_denied"] == 1


async def test_the_same_structures_working_order_is_cancelled_first(rig: RouterRig) -> None:
    resting = _option(rig, "t-SPY-A-open-1", "t-SPY-A", Side.BUY,
                      PricePolicy(walk_every_s=5, limit_price=0.05, timeout_s=120))
    rig.router.submit(resting)
    await rig.settle()
    newer = _option(rig, "t-SPY-A-adjust-1", "t-SPY-A", Side.SELL, PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(newer)
    await rig.settle()
    await rig.advance(1, steps=2)
    assert rig.router.counters["wash_cancels"] == 1
    assert _ends(rig, resting.intent_id) == [OrderStatus.CANCELED]
    assert filled(rig, newer.intent_id) == 1
    assert not rig.denials() and not rig.refusals
    rig.assert_exact()


async def test_a_wash_trade_refusal_the_router_could_not_foresee_is_a_denial_not_a_retry(rig: RouterRig) -> None:
    _, put = rig.atm()
    rig.sim.exchange.submit({"symbol": put, "qty": 1, "side": "buy", "type": "limit", "limit_price": "0.05",
                             "time_in_force": "day", "client_order_id": "someone-else"})  # not the engine's
    sell = _option(rig, "t-SPY-B-open-1", "t-SPY-B", Side.SELL, PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(sell)
    await rig.settle()
    (denied,) = rig.denials()
    assert denied.reasons == ("wash_trade",) and denied.source == "broker"
    assert "potential wash trade detected" in denied.detail
    assert _submitted(rig, sell.intent_id) == {f"oe-{sell.intent_id}": 1}
    assert rig.router.counters["broker_wash_trade"] == 1 and not rig.router.working


# ---- c. ticks from the contract's class, rounded from the price itself -------------------------------------
@pytest.fixture
async def classes_rig() -> AsyncIterator[RouterRig]:
    unds = (
        UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, daily_expiry_sessions=3, weekly_expiry_weeks=1,
                         monthly_expiry_months=1),
        UnderlyingConfig(symbol="AAA", spot=60.0, atm_vol=0.3, tick_class="penny", weekly_expiry_weeks=1,
                         monthly_expiry_months=1),
        UnderlyingConfig(symbol="BBB", spot=60.0, atm_vol=0.3, tick_class="non_penny", weekly_expiry_weeks=1,
                         monthly_expiry_months=1),
    )
    async for r in running_rig(("SPY", "AAA", "BBB"), underlyings=unds):
        yield r


def _resting_contract(rig: RouterRig, underlying: str, call: bool, side: Side) -> str:
    """A listed contract whose simulator quote leaves a 2.85-3.10 order resting, added to the engine's book."""
    uni = rig.sim.market.universe
    rows = np.flatnonzero(uni.active & (uni.und == uni.und_index[underlying]) & (uni.is_call == call))
    q = rig.sim.market.option_quotes(rows)
    fits = [uni.symbols[r] for r, b, a in zip(rows, q.bid, q.ask, strict=True)
            if (b > 3.3 if side is Side.BUY else 0 < a < 2.8)]
    assert fits, f"no resting contract for {underlying}"
    rig.market.add_contracts(underlying, fits[:1])
    return fits[0]


@pytest.mark.parametrize(("underlying", "side", "bid", "ask", "expected"), [
    ("SPY", Side.BUY, 2.93, 3.05, [2.99, 3.01, 3.02, 3.04, 3.05]),  # all-penny: cents throughout
    ("AAA", Side.BUY, 2.93, 3.05, [2.99, 3.05]),  # penny: never 3.01
    ("BBB", Side.BUY, 2.85, 3.10, [2.95, 3.10]),  # non-penny: nickels below 3, dimes from 3
    ("AAA", Side.SELL, 2.95, 3.07, [3.05, 2.99, 2.98, 2.96, 2.95]),  # down through 3.00: never 3.02
])
async def test_a_single_leg_walk_across_three_dollars_uses_the_tick_of_each_price(
    classes_rig: RouterRig, underlying: str, side: Side, bid: float, ask: float, expected: list[float]
) -> None:
    rig = classes_rig
    assert rig.router.ticks.tick_class(underlying) == {"SPY": "penny_all", "AAA": "penny", "BBB": "non_penny"}[
        underlying]  # SPY by the [orders] table, the others from the listing's ppind
    symbol = _resting_contract(rig, underlying, call=side is Side.BUY, side=side)
    book = rig.market.chain(underlying)
    assert book is not None
    book.load_snapshot(symbol, bid, ask, 10, 10, rig.clock.now_ns(), float("nan"))  # the engine's view only
    pi = PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN
    intent = OrderIntent(f"t-{underlying}-1-open-1", "test", f"t-{underlying}-1", underlying, IntentAction.OPEN,
                         (Leg(symbol, side, 1, pi),), 1, PricePolicy(walk_every_s=5, walk_step_fraction=0.25,
                                                                      timeout_s=60))
    rig.router.submit(intent)
    await rig.settle()
    for k in range(1, 7):  # the engine's clock only: the simulator's quotes stay as they are
        rig.clock.advance(rig.sim.now_ns + k * 5 * NS)
        await rig.settle(quiet_s=0.1)
    prices = [float(o["limit_price"]) for o in rig.sim.inspect()["orders"]
              if o["client_order_id"].startswith(f"oe-{intent.intent_id}")]
    assert prices == expected
    assert not rig.refusals and not rig.denials()


# ---- d. no order outside the session ----------------------------------------------------------------------
@pytest.fixture
async def half_day_rig() -> AsyncIterator[RouterRig]:
    async for r in running_rig(start=dt.datetime(2026, 11, 27, 12, 30)):  # closes at 13:00
        yield r


async def test_nothing_is_sent_in_a_half_days_closed_afternoon(half_day_rig: RouterRig) -> None:
    rig = half_day_rig
    rig.sim.hold_at_close()
    rig.sim.advance(3600)  # the simulator holds at 13:00, closed
    for at in (rig.sim.now_ns, rig.sim.now_ns + 30 * 60 * NS):  # at the close, and half an hour into the afternoon
        rig.clock.advance(at)
        intent = rig.single(1 if at == rig.sim.now_ns else 2, Side.BUY)
        rig.router.submit(intent)
        await rig.settle()
        assert [d.reasons for d in rig.denials() if d.intent_id == intent.intent_id] == [("market_closed",)]
        assert _submitted(rig, intent.intent_id) == {}
    assert rig.router.counters["market_closed"] == 2


async def test_a_closed_market_answer_from_the_broker_is_a_market_closed_denial(half_day_rig: RouterRig) -> None:
    rig = half_day_rig
    rig.sim.hold_at_close()
    rig.sim.advance(3600)
    rig.clock.advance(rig.sim.now_ns - 2 * NS)  # the engine's clock lags the broker's close
    intent = rig.single(1, Side.BUY)
    rig.router.submit(intent)
    await rig.settle()
    (denied,) = rig.denials()
    assert denied.reasons == ("market_closed",) and "market is closed" in denied.detail
    assert not [o for o in rig.sim.inspect()["orders"] if o["status"] in ("new", "pending_new")]

