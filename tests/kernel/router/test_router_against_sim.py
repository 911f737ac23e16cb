"""The router against the real simulator's faults: never a duplicate order, never a lost fill.

Each test injects one fault through the simulator's fault API, works an intent through the router over
loopback REST and the trade_updates stream, and then checks the two invariants: every client_order_id
is at most one order at the broker, and the positions our fills add up to equal the simulator's.
"""

from __future__ import annotations

import asyncio

import pytest

from domain.orders import (
    IntentAction,
    IntentDenied,
    Leg,
    OrderFilled,
    OrderIntent,
    OrderStatus,
    OrderUpdated,
    PositionIntent,
    PricePolicy,
    Side,
)

from .rig import RouterRig, filled

pytestmark = pytest.mark.timeout(120)


async def test_a_straddle_walks_from_mid_to_a_fill(rig: RouterRig) -> None:
    intent = rig.straddle(1, qty=2)
    rig.router.submit(intent)
    await rig.settle()
    await rig.advance(30, steps=6)
    assert rig.router.counters["replaces"] >= 1  # started at mid, not at the ask
    assert filled(rig, intent.intent_id) == 4  # two contracts on each leg
    assert not rig.router.working
    rig.assert_exact()


async def test_429_burst_is_waited_out_and_the_order_placed_once(rig: RouterRig) -> None:
    rig.sim.fail_rest("429", count=3, scope="trading")
    intent = rig.single(2, Side.BUY, policy=PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(intent)
    await rig.settle(limit_s=20)
    assert rig.router.budget.throttled >= 1
    assert rig.sim_orders_by_client_id() == {f"oe-{intent.intent_id}": 1}
    assert filled(rig, intent.intent_id) == 1
    rig.assert_exact()


async def test_a_limit_order_is_denied_not_sent_stale_while_a_429_pauses_every_request(rig: RouterRig) -> None:
    """After a 429 nothing may go out until the broker's window resets (up to a minute): a limit price made
    now would be stale by then, so the intent is denied ``rate_limited`` and never reaches the broker."""
    rig.router.budget.on_rate_limited(30.0)
    intent = rig.single(3, Side.BUY)
    rig.router.submit(intent)
    await rig.settle()
    denied = [e for e in rig.of(IntentDenied) if e.intent_id == intent.intent_id]
    assert [d.reasons for d in denied] == [("rate_limited",)], denied
    assert rig.router.counters["rate_limited"] == 1 and not rig.router.working
    assert rig.sim_orders_by_client_id() == {}


@pytest.mark.parametrize("kind", ["500", "504"])
async def test_5xx_before_the_broker_acts_leads_to_one_order(rig: RouterRig, kind: str) -> None:
    rig.sim.fail_rest(kind, count=1, scope="trading")
    intent = rig.single(3, Side.BUY, policy=PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(intent)
    await rig.settle()
    assert rig.sim_orders_by_client_id() == {f"oe-{intent.intent_id}": 1}
    assert filled(rig, intent.intent_id) == 1
    rig.assert_exact()


async def test_timeout_after_the_order_reached_the_broker_is_adopted_not_resent(rig: RouterRig) -> None:
    rig.sim.fail_rest("timeout_after", count=1, scope="trading", hold_s=3.0)
    intent = rig.single(4, Side.BUY, policy=PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(intent)
    await rig.settle(limit_s=20)
    assert rig.sim_orders_by_client_id() == {f"oe-{intent.intent_id}": 1}
    assert rig.router.counters["adopted_after_unknown"] == 1
    assert filled(rig, intent.intent_id) == 1
    rig.assert_exact()


@pytest.mark.parametrize("status", [403, 422])
async def test_broker_rejection_becomes_a_denial_with_the_brokers_message(rig: RouterRig, status: int) -> None:
    rig.sim.reject_next_orders(status, message=f"rejected for the test ({status})")
    intent = rig.straddle(5)
    rig.router.submit(intent)
    await rig.settle()
    (denied,) = rig.denials()
    assert denied.source == "broker" and denied.reasons == (f"broker_rejected_{status}",)
    assert f"rejected for the test ({status})" in denied.detail
    assert not rig.router.working and not rig.sim_orders_by_client_id()


async def test_partial_fills_are_all_counted(partial_rig: RouterRig) -> None:
    rig = partial_rig
    intent = rig.single(6, Side.BUY, qty=5, policy=PricePolicy(walk_every_s=2, walk_step_fraction=1.0,
                                                                    timeout_s=120))
    rig.router.submit(intent)
    await rig.settle()
    await rig.advance(60, steps=20)
    fills = [f for f in rig.of(OrderFilled) if f.intent_id == intent.intent_id]
    assert len(fills) >= 2  # partials
    assert sum(f.qty for f in fills) == 5
    rig.assert_exact()


async def test_a_fill_racing_a_replace_is_counted_once(latent_rig: RouterRig) -> None:
    rig = latent_rig
    # Marketable at once, but the fill is reported 2 s later: the walk's PATCH meets an order already filled.
    intent = rig.single(7, Side.BUY, policy=PricePolicy(walk_every_s=0.5, walk_step_fraction=1.0, timeout_s=60))
    call = intent.legs[0].symbol
    book = rig.market.chain("SPY")
    assert book is not None
    rig.router.submit(intent)
    await rig.settle()
    rig.sim.move_underlying("SPY", -0.01)  # the call cheapens: the resting mid order becomes marketable
    await rig.advance(1.0, steps=2)
    await rig.advance(3.0, steps=3)
    assert filled(rig, intent.intent_id) == 1
    updates = [u for u in rig.of(OrderUpdated) if u.intent_id == intent.intent_id]
    assert any(u.status is OrderStatus.FILLED for u in updates)
    assert not rig.router.working
    rig.assert_exact()
    assert call in rig.orders.positions()


async def test_a_cancel_racing_a_fill_leaves_positions_exact(latent_rig: RouterRig) -> None:
    rig = latent_rig
    intent = rig.single(8, Side.BUY, policy=PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(intent)
    await rig.settle(quiet_s=0.05)
    rig.router.cancel(intent.intent_id)  # the fill is already decided, reported 2 s later
    await rig.advance(3.0, steps=3)
    rig.assert_exact()
    assert not rig.router.working


async def test_timeout_cancels_an_order_that_never_fills(rig: RouterRig) -> None:
    # Bid a cent for an at-the-money call: it rests until the router's timeout cancels it.
    intent = rig.single(9, Side.BUY, policy=PricePolicy(walk_every_s=5, limit_price=0.01, timeout_s=20))
    rig.router.submit(intent)
    await rig.settle()
    await rig.advance(30, steps=6)
    assert rig.router.counters["timeouts"] == 1
    assert any(u.status is OrderStatus.CANCELED for u in rig.of(OrderUpdated))
    assert not rig.router.working
    rig.assert_exact()


async def test_reconcile_after_reconnect_books_a_fill_the_stream_missed(rig: RouterRig) -> None:
    rig.trading.stop()  # the stream is gone while the order fills
    intent = rig.single(10, Side.BUY, policy=PricePolicy(kind="market", timeout_s=60))
    rig.router.submit(intent)
    await rig.settle()
    await rig.router.reconcile_open_orders()
    await rig.settle()
    assert filled(rig, intent.intent_id) == 1
    rig.assert_exact()


async def test_a_timeout_during_an_in_flight_replace_still_cancels_the_order(rig: RouterRig) -> None:
    """The timeout only marks a busy order for cancel; the walk step that was busy must send the cancel when it
    ends, whatever way it ended (here a PATCH that hangs and answers 504). Otherwise the order rests until the
    close: on a 0DTE cut-off that is a same-day short held into expiry."""
    intent = rig.single(10, Side.BUY, policy=PricePolicy(walk_every_s=1, walk_step_fraction=0.05, timeout_s=1.5))
    rig.router.submit(intent)
    await rig.settle()
    assert rig.router.working
    rig.sim.fail_rest("timeout", count=1, scope="orders", hold_s=1.0)
    rig.sim.advance(1)
    rig.clock.advance(rig.sim.now_ns)  # the walk is due: its PATCH hangs
    await asyncio.sleep(0.2)
    assert rig.router.working[intent.intent_id].busy
    rig.sim.advance(1)
    rig.clock.advance(rig.sim.now_ns)  # the timeout falls due while the PATCH is in flight
    await rig.settle(limit_s=15)
    assert rig.router.counters["timeouts"] == 1
    assert not rig.router.working
    assert [o["status"] for o in rig.sim.inspect()["orders"]] == ["canceled"]
    rig.assert_exact()


async def test_a_single_leg_sell_walking_toward_a_zero_bid_never_asks_less_than_a_tick(rig: RouterRig) -> None:
    """A contract offered at a cent with no bid: the walk toward natural (0) must stop at the smallest price the
    broker takes, never send 0 or a negative limit (refused: the close would never work)."""
    book = rig.market.chain("SPY")
    assert book is not None
    row = next(r for r in range(len(book.symbols)) if book.bid[r] == 0 and 0 < book.ask[r] <= 0.02)
    symbol = book.symbols[row]
    buy = OrderIntent("t-SPY-11-open-1", "test", "t-SPY-11", "SPY", IntentAction.OPEN,
                      (Leg(symbol, Side.BUY, 1, PositionIntent.BUY_TO_OPEN),), 1, PricePolicy(kind="market"))
    rig.router.submit(buy)
    await rig.settle()
    assert filled(rig, buy.intent_id) == 1
    sell = OrderIntent("t-SPY-11-close-1", "test", "t-SPY-11", "SPY", IntentAction.CLOSE,
                       (Leg(symbol, Side.SELL, 1, PositionIntent.SELL_TO_CLOSE),), 1,
                       PricePolicy(walk_every_s=1, walk_step_fraction=0.5, timeout_s=6))
    rig.router.submit(sell)
    await rig.settle()
    await rig.advance(8, steps=8)
    assert rig.refusals == []
    sent = [float(o["limit_price"]) for o in rig.sim.inspect()["orders"] if o["client_order_id"].startswith(
        f"oe-{sell.intent_id}")]
    assert sent and min(sent) == 0.01
    assert not [d for d in rig.denials() if d.intent_id == sell.intent_id]
