"""Structure tracker: states driven by fills, order updates and denials, exact under duplicate fills."""

from __future__ import annotations

import datetime as dt

import pytest
from support.synthetic import SyntheticChain, ny_ns

from domain.orders import AssetClass, IntentAction, IntentDenied, OrderFilled, OrderStatus, OrderUpdated, PricePolicy
from strategies.structures import iron_condor
from strategies.tracking import StructureStatus, StructureTracker

EXPIRY = dt.date(2026, 12, 18)
T0 = ny_ns(2026, 11, 16, 10, 0)


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    chain = SyntheticChain("SPY", 600.0, T0, [EXPIRY], [570.0 + 10 * i for i in range(7)])

    def row(k: float, c: bool) -> int:
        return chain.row_of(chain.symbol_at(EXPIRY, k, c))

    s = iron_condor(chain, row(570, False), row(580, False), row(620, True), row(630, True))
    return chain, s, StructureTracker("ic")


def fills_for(intent, units: float, prices: list[float], tag: str):  # type: ignore[no-untyped-def]
    return [OrderFilled(f"{tag}{i}", "o", intent.intent_id, leg.symbol, leg.side, units * leg.ratio, p, T0, T0,
                        strategy_id="ic", structure_id=intent.structure_id, intent_id=intent.intent_id)
            for i, (leg, p) in enumerate(zip(intent.legs, prices, strict=True))]


def update(intent, status: OrderStatus, filled: float) -> OrderUpdated:  # type: ignore[no-untyped-def]
    return OrderUpdated("o", intent.intent_id, status, filled, float(intent.qty), T0, T0, "ic", intent.structure_id,
                        intent.intent_id)


def test_open_fill_close_with_duplicates_is_exact(setup) -> None:  # type: ignore[no-untyped-def]
    _, s, tr = setup
    it = tr.open(s, 3, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    assert t.status is StructureStatus.OPENING and it.intent_id.endswith("open-1")
    for f in fills_for(it, 3, [0.5, 1.0, 0.9, 0.4], "a") * 2:  # every fill delivered twice
        tr.on_fill(f)
    assert t.status is StructureStatus.OPEN and t.units == 3
    assert t.entry_net_price == pytest.approx(-1.0)  # credit 1.00 a unit
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "take_profit")
    assert close.action is IntentAction.CLOSE and close.qty == 3 and t.status is StructureStatus.CLOSING
    for f in fills_for(close, 3, [0.2, 0.5, 0.4, 0.2], "b"):
        tr.on_fill(f)
    assert t.status is StructureStatus.CLOSED and tr.closed == 1
    assert tr.realized_usd == pytest.approx((1.0 - 0.5) * 3 * 100)


def test_partial_open_keeps_the_filled_units_and_closes_them(setup) -> None:  # type: ignore[no-untyped-def]
    _, s, tr = setup
    it = tr.open(s, 5, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    for f in fills_for(it, 2, [0.5, 1.0, 0.9, 0.4], "a"):
        tr.on_fill(f)
    tr.on_order_update(update(it, OrderStatus.CANCELED, 2))
    assert t.status is StructureStatus.OPEN and t.units == 2
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "stop")
    assert close.qty == 2


def test_denied_or_unfilled_open_is_cancelled_and_denied_close_reopens(setup) -> None:  # type: ignore[no-untyped-def]
    _, s, tr = setup
    it = tr.open(s, 1, PricePolicy(), T0)
    tr.on_denied(IntentDenied(it.intent_id, "ic", it.structure_id, ("halted",), "", T0, T0))
    assert tr.structures[it.structure_id].status is StructureStatus.CANCELLED and tr.active() == []
    it2 = tr.open(s, 1, PricePolicy(), T0)
    t = tr.structures[it2.structure_id]
    for f in fills_for(it2, 1, [0.5, 1.0, 0.9, 0.4], "c"):
        tr.on_fill(f)
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "dte")
    tr.on_order_update(update(close, OrderStatus.EXPIRED, 0))
    assert t.status is StructureStatus.OPEN and t.close_attempts == 1
    assert not t.close_retry_due(T0 + 1 + 5_000_000_000, 10.0)
    assert t.close_retry_due(T0 + 1 + 10_000_000_000, 10.0)


def test_ended_intents_are_forgotten_and_a_repeated_end_changes_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    """Found by the soak: every intent a tracker built stayed in its index for good (a denied hedge or entry a
    tick adds one). An ended intent is dropped; its repeated terminal update or denial is a no-op."""
    _, s, tr = setup
    it = tr.open(s, 1, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    for f in fills_for(it, 1, [0.5, 1.0, 0.9, 0.4], "a"):
        tr.on_fill(f)
    tr.on_order_update(update(it, OrderStatus.FILLED, 1))
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "dte")
    tr.on_denied(IntentDenied(close.intent_id, "ic", close.structure_id, ("halted",), "", T0, T0))
    assert t.status is StructureStatus.OPEN and tr._by_intent == {}
    (again,) = tr.close(t, PricePolicy(), T0 + 2, "dte")
    assert t.status is StructureStatus.CLOSING
    tr.on_denied(IntentDenied(close.intent_id, "ic", close.structure_id, ("halted",), "", T0, T0))  # repeated
    tr.on_order_update(update(it, OrderStatus.FILLED, 1))  # repeated
    assert t.status is StructureStatus.CLOSING and t.working == {again.intent_id}


def test_a_close_leaves_out_long_legs_nothing_can_sell_and_sends_nothing_when_only_they_are_left(
        setup) -> None:  # type: ignore[no-untyped-def]
    _, s, tr = setup
    it = tr.open(s, 2, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    for f in fills_for(it, 2, [0.5, 1.0, 0.9, 0.4], "a"):
        tr.on_fill(f)
    wing = s.legs[3].symbol  # the long call, bid at zero
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "cutoff", unsellable={wing, s.legs[1].symbol})  # a short: kept
    assert [leg.symbol for leg in close.legs] == [s.legs[0].symbol, s.legs[1].symbol, s.legs[2].symbol]
    assert close.qty == 2 and t.status is StructureStatus.CLOSING
    for f in fills_for(close, 2, [0.2, 0.5, 0.4], "b"):
        tr.on_fill(f)
    tr.on_order_update(update(close, OrderStatus.FILLED, 2))
    assert t.status is StructureStatus.OPEN and t.filled[wing] == 2 and t.close_attempts == 1
    assert tr.close(t, PricePolicy(), T0 + 2, "cutoff", unsellable={wing}) == []
    assert t.status is StructureStatus.OPEN and t.close_attempts == 1  # nothing sent: nothing changed
    (sell,) = tr.close(t, PricePolicy(), T0 + 3, "cutoff")  # once it has a bid it is sold
    assert [leg.symbol for leg in sell.legs] == [wing] and sell.qty == 2


def test_structures_nothing_more_can_happen_to_are_dropped_at_a_later_days_sweep(setup) -> None:  # type: ignore[no-untyped-def]
    """Weeks of trading: the tracker holds days of structures, not every one the run ever opened or was denied."""
    _, s, tr = setup
    denied = tr.open(s, 1, PricePolicy(), T0)
    tr.on_denied(IntentDenied(denied.intent_id, "ic", denied.structure_id, ("max_loss",), "", T0, T0))
    it = tr.open(s, 1, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    for f in fills_for(it, 1, [0.5, 1.0, 0.9, 0.4], "a"):
        tr.on_fill(f)
    tr.on_order_update(update(it, OrderStatus.FILLED, 1))
    (close,) = tr.close(t, PricePolicy(), T0 + 1, "take_profit")
    for f in fills_for(close, 1, [0.2, 0.5, 0.4, 0.2], "b"):
        tr.on_fill(f)
    held = tr.open(s, 1, PricePolicy(), T0)
    for f in fills_for(held, 1, [0.5, 1.0, 0.9, 0.4], "c"):
        tr.on_fill(f)
    tr.on_order_update(update(held, OrderStatus.FILLED, 1))
    assert t.status is StructureStatus.CLOSED and t.working == {close.intent_id}
    tr.on_order_update(update(close, OrderStatus.FILLED, 1))
    assert len(tr.structures) == 3

    tr.expire(dt.date(2026, 11, 17), T0)  # the next day: the entry that never filled goes
    assert set(tr.structures) == {it.structure_id, held.structure_id} and tr.retired == 1
    tr.expire(EXPIRY + dt.timedelta(days=3), T0)  # expired: the held one closes; both kept for settlements
    assert set(tr.structures) == {it.structure_id, held.structure_id}
    tr.expire(EXPIRY + dt.timedelta(days=8), T0)  # a week past its expiry: gone, its counts kept
    assert tr.structures == {} and tr.retired == 3 and (tr.opened, tr.closed) == (2, 2)
    assert tr.realized_usd == pytest.approx((1.0 - 0.5) * 100 + 1.0 * 100)


def test_a_structure_still_holding_hedge_shares_is_kept(setup) -> None:  # type: ignore[no-untyped-def]
    _, s, tr = setup
    it = tr.open(s, 1, PricePolicy(), T0)
    t = tr.structures[it.structure_id]
    for f in fills_for(it, 1, [0.5, 1.0, 0.9, 0.4], "a"):
        tr.on_fill(f)
    hedge = tr.stock_intent(t, -30, T0)
    tr.on_fill(OrderFilled("h1", "o", hedge.intent_id, "SPY", hedge.legs[0].side, 30, 600.0, T0, T0,
                           AssetClass.EQUITY, "ic", it.structure_id, hedge.intent_id))
    tr.on_order_update(update(hedge, OrderStatus.FILLED, 30))
    tr.on_order_update(update(it, OrderStatus.FILLED, 1))
    tr.expire(EXPIRY + dt.timedelta(days=1), T0)  # the options expired, the hedge is still held
    assert t.status is StructureStatus.CLOSED and not t.working
    tr.expire(EXPIRY + dt.timedelta(days=30), T0)
    assert it.structure_id in tr.structures and t.shares == -30
