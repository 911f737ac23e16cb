"""Expiry, exercise and assignment read from the simulator's account activities over REST.

The simulator settles expiring contracts at the close (``OPEXC``/``OPASN``/``OPEXP``); the poller turns
each activity into fills on our portfolio (option flat, shares at the strike) and, under the ``unwind``
policy, one stock order per structure for the net shares. A second poll books nothing again; an unwind that
never executed is sent again (state, not the event, decides), also after a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from domain.orders import AssetClass, IntentAction, OrderFilled, OrderIntent, Side
from engine.alpaca.broker import AlpacaBroker
from engine.alpaca.execution import AlpacaExecution
from engine.kernel.portfolio import Portfolio
from engine.kernel.settlements import POLL_INTERVAL_S, UNHELD_POLLS, SettlementPoller
from engine.sim.config import ExpirationConfig, SimConfig
from engine.sim.server import Simulator
from greeks.occ import format_occ

pytestmark = pytest.mark.timeout(60)

EXPIRY = dt.date(2026, 12, 4)
CLOSE_ONLY = ExpirationConfig(liquidate=False, long_puts_need_shares=False)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # the close alone: these scenarios hold what Alpaca's 15:15 liquidation would close (tests/sim/test_expiration.py)
    s = Simulator(SimConfig(seed=4, speed=0.0, start=dt.datetime(2026, 12, 4, 15, 55), partial_fill_probability=0.0,
                            rate_limit_per_min=0, expiration=CLOSE_ONLY))
    await s.start()
    yield s
    await s.stop()


def _venue(sim: Simulator) -> AlpacaExecution:
    """The Alpaca adapter's execution client on the simulator."""
    urls = sim.urls
    assert urls is not None
    return AlpacaExecution(AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, timeout_s=5.0))


def _booking(portfolio: Portfolio, fills: list[OrderFilled]) -> Callable[[OrderFilled], None]:
    """An ``on_fill`` that keeps each fill and books it in ``portfolio`` at once."""

    def on_fill(fill: OrderFilled) -> None:
        fills.append(fill)
        portfolio.on_fill(fill)

    return on_fill


def _book(portfolio: Portfolio, symbol: str, side: Side, qty: int, structure_id: str) -> None:
    portfolio.on_fill(OrderFilled(f"x-{symbol}-{structure_id}", f"o-{symbol}", f"c-{symbol}", symbol, side, qty,
                                  1.0, 1, 1, AssetClass.OPTION, "condor", structure_id))


async def test_assignment_exercise_and_expiry_become_fills_and_an_unwind(sim: Simulator) -> None:
    ex = sim.exchange
    short_call, long_put, worthless = (format_occ("SPY", EXPIRY, c, k) for c, k in ((True, 590), (False, 610),
                                                                                     (True, 620)))
    portfolio = Portfolio()
    # the 620 calls cover the short 590 calls (a call spread: the account may not sell uncovered)
    for symbol, side, qty in ((worthless, Side.BUY, 2), (short_call, Side.SELL, 2), (long_put, Side.BUY, 1)):
        ex.submit({"symbol": symbol, "qty": qty, "side": side.value, "type": "market", "time_in_force": "day"})
        _book(portfolio, symbol, side, qty, "s1")
    spot = sim.market.spot("SPY")
    assert 590 < spot < 610, spot  # the test's strikes assume SPY near 600 at the fixed seed

    broker = _venue(sim)
    fills: list[OrderFilled] = []
    unwinds: list[OrderIntent] = []

    on_fill = _booking(portfolio, fills)
    poller = SettlementPoller(broker, portfolio, on_fill, unwinds.append, now_ns=lambda: sim.now_ns)
    try:
        assert await poller.poll() == 0  # nothing settles before the close
        sim.advance(6 * 60)
        assert await poller.poll() == 3
        assert await poller.poll() == 0  # a repeated poll books nothing twice
    finally:
        await broker.close()

    ours = {k: v for k, v in portfolio.positions().items() if abs(v) > 1e-9}
    theirs = {k: v for k, v in sim.inspect()["positions"].items() if abs(v) > 1e-9}
    # 2 short 590 calls assigned: -200 shares; 1 long 610 put exercised: -100 shares; the 620 calls expire
    assert ours == theirs == {"SPY": -300.0}
    stock = sorted((f.qty, f.price, f.side) for f in fills if f.asset_class is AssetClass.EQUITY)
    assert stock == [(100.0, 610.0, Side.SELL), (200.0, 590.0, Side.SELL)]
    assert all(f.structure_id == "s1" and f.strategy_id == "condor" for f in fills)
    assert len({f.execution_id for f in fills}) == len(fills) == 5
    # stamped on the engine's event clock (the activities carry only a date), not the wall clock
    assert {f.ts_event_ns for f in fills} == {sim.now_ns}

    # one order per structure for the net shares, not one per activity
    assert [(i.qty, i.legs[0].symbol, i.legs[0].side, i.action, i.price_policy.kind, i.structure_id)
            for i in unwinds] == [(300, "SPY", Side.BUY, IntentAction.CLOSE, "market", "s1")]


async def _settle(sim: Simulator, legs: list[tuple[str, Side, int]], structure_id: str = "s1"
                  ) -> tuple[Portfolio, AlpacaExecution]:
    portfolio = Portfolio()
    for symbol, side, qty in legs:
        sim.exchange.submit({"symbol": symbol, "qty": qty, "side": side.value, "type": "market",
                             "time_in_force": "day"})
        _book(portfolio, symbol, side, qty, structure_id)
    assert 590 < sim.market.spot("SPY") < 610
    return portfolio, _venue(sim)


async def test_an_exercise_and_an_assignment_in_one_structure_are_unwound_as_their_net(sim: Simulator) -> None:
    # a put debit spread deep in the money: 3 long 610 puts exercised (-300 shares), 2 short 605 puts assigned
    # (+200): one order buys back 100, where an order per activity would need the buying power of 200 shares
    # more (the simulator refused exactly such gross unwinds in the full fault run)
    long_put, short_put = format_occ("SPY", EXPIRY, False, 610), format_occ("SPY", EXPIRY, False, 605)
    portfolio, broker = await _settle(sim, [(long_put, Side.BUY, 3), (short_put, Side.SELL, 2)])
    unwinds: list[OrderIntent] = []
    poller = SettlementPoller(broker, portfolio, portfolio.on_fill, unwinds.append)
    try:
        sim.advance(6 * 60)
        assert await poller.poll() == 2
    finally:
        await broker.close()
    assert portfolio.positions() == {"SPY": -100.0}
    assert [(i.qty, i.legs[0].side) for i in unwinds] == [(100, Side.BUY)]


async def test_an_unwind_that_never_executed_is_sent_again_with_back_off_until_the_shares_are_gone(
    sim: Simulator,
) -> None:
    short_call, cover = format_occ("SPY", EXPIRY, True, 590), format_occ("SPY", EXPIRY, True, 620)
    portfolio, broker = await _settle(sim, [(cover, Side.BUY, 1), (short_call, Side.SELL, 1)])
    unwinds: list[OrderIntent] = []
    mono = [1000.0]
    busy = [False]
    poller = SettlementPoller(broker, portfolio, portfolio.on_fill, unwinds.append, monotonic=lambda: mono[0],
                              busy=lambda sid: busy[0])
    try:
        sim.advance(6 * 60)
        assert await poller.poll() == 2
        assert [(i.qty, i.legs[0].side) for i in unwinds] == [(100, Side.BUY)]
        # the unwind was refused (gate or broker): nothing executes, the structure still holds -100 shares
        await poller.poll()
        assert len(unwinds) == 1  # too soon
        mono[0] += 10.5
        busy[0] = True  # an order for the structure is working: leave it alone
        await poller.poll()
        assert len(unwinds) == 1
        busy[0] = False
        await poller.poll()
        assert [(i.qty, i.legs[0].side) for i in unwinds] == [(100, Side.BUY)] * 2
        assert unwinds[1].intent_id != unwinds[0].intent_id
        mono[0] += 10.5
        await poller.poll()
        assert len(unwinds) == 2  # backing off: 20 s after the first retry
        mono[0] += 10.0
        await poller.poll()
        assert len(unwinds) == 3
        # the third one fills: the structure is flat and no longer watched
        portfolio.on_fill(OrderFilled("u3", "o-u3", "c-u3", "SPY", Side.BUY, 100, 600.0, 1, 1, AssetClass.EQUITY,
                                      "condor", "s1"))
        mono[0] += 1000.0
        await poller.poll()
        assert len(unwinds) == 3 and poller.unwinding == {}
    finally:
        await broker.close()


async def test_after_a_restart_shares_left_by_a_settlement_are_unwound_under_a_fresh_id(sim: Simulator) -> None:
    short_call, cover = format_occ("SPY", EXPIRY, True, 590), format_occ("SPY", EXPIRY, True, 620)
    portfolio, broker = await _settle(sim, [(cover, Side.BUY, 1), (short_call, Side.SELL, 1)])
    fills: list[OrderFilled] = []
    first: list[OrderIntent] = []

    on_fill = _booking(portfolio, fills)
    try:
        sim.advance(6 * 60)
        assert await SettlementPoller(broker, portfolio, on_fill, first.append).poll() == 2
        # crash: the unwind was journaled but never reached the broker. The restarted engine rebuilds its
        # portfolio from the journal's fills; the activities are seen again but book nothing.
        rebuilt = Portfolio()
        for symbol, side, qty in ((cover, Side.BUY, 1), (short_call, Side.SELL, 1)):
            _book(rebuilt, symbol, side, qty, "s1")
        for fill in fills:
            rebuilt.on_fill(fill)
        again: list[OrderIntent] = []
        mono = [1000.0]
        restarted = SettlementPoller(broker, rebuilt, rebuilt.on_fill, again.append, monotonic=lambda: mono[0])
        restarted.resume(fills, [first[0].intent_id, "s9-unwind-7"])
        # due at once: in a crash loop (the kill -9 loop) an engine that waited out the poll interval first
        # never polled, and the shares stayed, blocking every entry for the rest of the run
        assert restarted.due()
        assert await restarted.poll() == 0  # the activities, seen again, find nothing held ...
        mono[0] += POLL_INTERVAL_S - 0.1
        assert not restarted.due()
        mono[0] += 0.1
        assert restarted.due()
    finally:
        await broker.close()
    assert rebuilt.positions() == {"SPY": -100.0}  # ... booked nothing twice
    assert [(i.qty, i.legs[0].side, i.structure_id) for i in again] == [(100, Side.BUY, "s1")]
    assert again[0].intent_id == "s1-unwind-8"  # numbered after every journaled unwind


async def test_hold_policy_books_the_shares_without_an_order(sim: Simulator) -> None:
    ex = sim.exchange
    short_put, cover = format_occ("SPY", EXPIRY, False, 610), format_occ("SPY", EXPIRY, False, 580)
    portfolio = Portfolio()
    for symbol, side in ((cover, Side.BUY), (short_put, Side.SELL)):
        ex.submit({"symbol": symbol, "qty": 1, "side": side.value, "type": "market", "time_in_force": "day"})
        _book(portfolio, symbol, side, 1, "s2")
    broker = _venue(sim)
    unwinds: list[OrderIntent] = []
    poller = SettlementPoller(broker, portfolio, portfolio.on_fill, unwinds.append, policy="hold")
    try:
        sim.advance(6 * 60)
        assert await poller.poll() == 2  # the 610 put assigned, the 580 put expired
    finally:
        await broker.close()
    assert unwinds == []
    assert {k: v for k, v in portfolio.positions().items() if abs(v) > 1e-9} == {"SPY": 100.0}


async def test_structures_holding_one_contract_on_both_sides_are_each_settled(sim: Simulator) -> None:
    """Found by the full kill -9 loop: the net was booked to the first structure holding the contract, so the
    other kept a leg in an expired contract (a short one reads as unlimited risk and blocked every entry)."""
    itm_put, otm_put = format_occ("SPY", EXPIRY, False, 610), format_occ("SPY", EXPIRY, False, 580)
    portfolio = Portfolio()
    # the broker holds the net: +2 of the 610 puts, +1 of the 580 puts
    for symbol, side, qty in ((itm_put, Side.BUY, 2), (otm_put, Side.BUY, 1)):
        sim.exchange.submit({"symbol": symbol, "qty": qty, "side": side.value, "type": "market",
                             "time_in_force": "day"})
    _book(portfolio, itm_put, Side.BUY, 3, "a")
    _book(portfolio, itm_put, Side.SELL, 1, "b")
    _book(portfolio, otm_put, Side.BUY, 1, "b")
    broker = _venue(sim)
    fills: list[OrderFilled] = []
    unwinds: list[OrderIntent] = []

    on_fill = _booking(portfolio, fills)
    poller = SettlementPoller(broker, portfolio, on_fill, unwinds.append, now_ns=lambda: sim.now_ns)
    try:
        sim.advance(6 * 60)
        assert await poller.poll() == 2
    finally:
        await broker.close()
    by_structure = {s: {k: q for k, q in (portfolio.structure(s).legs.items()) if abs(q) > 1e-9}  # type: ignore[union-attr]
                    for s in ("a", "b")}
    assert by_structure == {"a": {"SPY": -300.0}, "b": {"SPY": 100.0}}  # no option leg left anywhere
    assert {k: v for k, v in portfolio.positions().items() if abs(v) > 1e-9} == {"SPY": -200.0}
    assert {k: v for k, v in sim.inspect()["positions"].items() if abs(v) > 1e-9} == {"SPY": -200.0}
    assert len({f.execution_id for f in fills}) == len(fills)
    assert sorted((i.structure_id, i.legs[0].side, i.qty) for i in unwinds) == [("a", Side.BUY, 300),
                                                                                 ("b", Side.SELL, 100)]


async def test_opposite_legs_the_broker_nets_to_nothing_are_closed_against_each_other_at_intrinsic(
    sim: Simulator,
) -> None:
    itm_call = format_occ("SPY", EXPIRY, True, 590)
    portfolio = Portfolio()
    _book(portfolio, itm_call, Side.BUY, 2, "a")
    _book(portfolio, itm_call, Side.SELL, 2, "b")  # the account holds none: the broker will settle nothing
    broker = _venue(sim)
    fills: list[OrderFilled] = []

    on_fill = _booking(portfolio, fills)
    poller = SettlementPoller(broker, portfolio, on_fill, lambda intent: None, now_ns=lambda: sim.now_ns,
                              spot=sim.market.spot)
    try:
        assert await poller.poll() == 0 and fills == []  # before the expiry's close: nothing to do
        sim.advance(6 * 60)
        await poller.poll()
        await poller.poll()  # again: nothing booked twice
    finally:
        await broker.close()
    spot = sim.market.spot("SPY")
    assert sorted((f.structure_id, f.side, f.qty) for f in fills) == [("a", Side.SELL, 2), ("b", Side.BUY, 2)]
    assert all(abs(f.price - (spot - 590)) < 1e-3 for f in fills)  # intrinsic value, the same for both sides
    assert portfolio.open_structures() == 0 and portfolio.positions() == {}
    assert sim.inspect()["positions"] == {} or not any(abs(v) > 1e-9 for v in sim.inspect()["positions"].values())


def _settled_shares(portfolio: Portfolio, structure_id: str, shares: int) -> OrderFilled:
    """Shares an exercise or assignment left a structure with (its options are gone)."""
    fill = OrderFilled(f"act-{structure_id}", f"activity-{structure_id}", "", "SPY",
                       Side.BUY if shares > 0 else Side.SELL, abs(shares), 600.0, 1, 1, AssetClass.EQUITY,
                       "zero_dte", structure_id)
    portfolio.on_fill(fill)
    return fill


def test_opposite_settled_shares_are_moved_between_structures_and_only_the_net_is_unwound() -> None:
    """The kill -9 loop: +500 and -500 SPY in two 0DTE structures (and +200 in a third) were unwound gross;
    the account held +200, so the gate (REDUCE_ONLY) and the broker (buying power) refused the orders that
    would have opened exposure, and every entry stayed blocked by the short shares' unlimited risk."""
    portfolio = Portfolio()
    settled = [_settled_shares(portfolio, sid, q) for sid, q in (("a", 500), ("b", -500), ("c", 200))]
    assert portfolio.position("SPY") == 200.0
    booked: list[OrderFilled] = []
    unwinds: list[OrderIntent] = []

    def on_fill(fill: OrderFilled) -> None:
        booked.append(fill)
        portfolio.on_fill(fill)

    broker = AlpacaExecution(AlpacaBroker("http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s"))  # never called
    poller = SettlementPoller(broker, portfolio, on_fill, unwinds.append, spot=lambda symbol: 601.5)
    poller.resume(settled, [])
    poller.retry_unwinds()

    assert sorted((f.structure_id, f.side, f.qty, f.price) for f in booked) == [
        ("a", Side.SELL, 500.0, 601.5), ("b", Side.BUY, 500.0, 601.5)]
    assert len({f.order_id for f in booked}) == 1 and booked[0].order_id.startswith("transfer-SPY-")
    assert portfolio.position("SPY") == 200.0  # the account's position is untouched
    # the one order left sells what the account holds
    assert [(i.structure_id, i.legs[0].side, i.qty) for i in unwinds] == [("c", Side.SELL, 200)]
    poller.retry_unwinds()
    assert set(poller.unwinding) == {"c"}  # a and b hold nothing any more


def test_a_transfer_a_crash_journaled_only_half_of_is_completed_at_restart() -> None:
    portfolio = Portfolio()
    settled = [_settled_shares(portfolio, sid, q) for sid, q in (("a", 300), ("b", -100))]
    journal: list[OrderFilled] = []
    broker = AlpacaExecution(AlpacaBroker("http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s"))  # never called
    poller = SettlementPoller(broker, portfolio, journal.append, lambda i: None, spot=lambda symbol: 600.0)
    poller.resume(settled, [])
    half = poller.offset_settled_shares()
    assert len(half) == 2
    # SIGKILL after the first fill was journaled: the restarted engine has the settlement fills and that one
    restarted = SettlementPoller(broker, Portfolio(), journal.append, lambda i: None)
    completion = restarted.resume([*settled, journal[0]], [])
    assert [(f.execution_id, f.structure_id, f.side, f.qty, f.price) for f in completion] == [
        (journal[1].execution_id, journal[1].structure_id, journal[1].side, 100.0, 600.0)]
    assert completion == [journal[1]]
    assert restarted.resume([*settled, *journal], []) == []  # both journaled: nothing to complete
    assert restarted.transfers == 1  # the next transfer gets a fresh id


# ---- quantities: partial and early assignments (issue: the whole leg was written off) ---------------------------

WEEK_OUT = dt.date(2026, 12, 11)


async def _poll_once(sim: Simulator, portfolio: Portfolio, *, deferred: bool = False
                     ) -> tuple[list[OrderFilled], list[OrderIntent]]:
    """One poll; with ``deferred`` the fills reach the portfolio only after it (the bus delivers them later)."""
    broker = _venue(sim)
    fills: list[OrderFilled] = []
    unwinds: list[OrderIntent] = []

    def on_fill(fill: OrderFilled) -> None:
        fills.append(fill)
        if not deferred:
            portfolio.on_fill(fill)

    try:
        await SettlementPoller(broker, portfolio, on_fill, unwinds.append, now_ns=lambda: sim.now_ns).poll()
    finally:
        await broker.close()
    if deferred:
        for fill in fills:
            portfolio.on_fill(fill)
    return fills, unwinds


def _legs(portfolio: Portfolio, structure_id: str) -> dict[str, float]:
    snap = portfolio.structure(structure_id)
    assert snap is not None
    return {k: q for k, q in snap.legs.items() if abs(q) > 1e-9}


async def test_a_partial_assignment_leaves_the_rest_in_its_structure_and_the_gate_counts_it(sim: Simulator) -> None:
    short_put, cover = format_occ("SPY", WEEK_OUT, False, 620), format_occ("SPY", WEEK_OUT, False, 560)
    portfolio, broker = await _settle(sim, [(cover, Side.BUY, 5), (short_put, Side.SELL, 5)])
    await broker.close()
    sim.assign(short_put, 2)  # an early assignment of 2 of the 5 (OCC's partial assignment)

    fills, unwinds = await _poll_once(sim, portfolio)

    assert sorted((f.symbol, f.side, f.qty, f.price) for f in fills) == [
        ("SPY", Side.BUY, 200.0, 620.0), (short_put, Side.BUY, 2.0, 0.0)]
    # the rest is still the structure's, as the broker still holds it, and the gate's inputs show it
    assert _legs(portfolio, "s1") == {short_put: -3.0, cover: 5.0, "SPY": 200.0}
    assert portfolio.positions_of("SPY") == {short_put: -3.0, cover: 5.0, "SPY": 200.0} == {
        k: v for k, v in sim.inspect()["positions"].items() if abs(v) > 1e-9}
    assert portfolio.open_structures() == 1
    assert portfolio.risk_capital_usd("SPY") > 0
    # the shares go back at once (the unwind policy), though the structure still holds options
    assert [(i.structure_id, i.legs[0].side, i.qty) for i in unwinds] == [("s1", Side.SELL, 200)]


async def test_a_partial_assignment_is_taken_from_the_unexplained_rest_then_the_oldest_structure(
    sim: Simulator,
) -> None:
    short_put, cover = format_occ("SPY", WEEK_OUT, False, 620), format_occ("SPY", WEEK_OUT, False, 560)
    for symbol, side, qty in ((cover, Side.BUY, 5), (short_put, Side.SELL, 5)):
        sim.exchange.submit({"symbol": symbol, "qty": qty, "side": side.value, "type": "market",
                             "time_in_force": "day"})
    portfolio = Portfolio()
    _book(portfolio, cover, Side.BUY, 5, "old")
    for sid, qty, opened in (("new", 2, 20), ("old", 2, 10)):
        portfolio.on_fill(OrderFilled(f"x-{sid}", "o", "c", short_put, Side.SELL, qty, 1.0, opened, opened,
                                      AssetClass.OPTION, "condor", sid))
    # a short put no structure explains (left over by hand): the first to go
    portfolio.on_fill(OrderFilled("x-orphan", "o", "c", short_put, Side.SELL, 1, 1.0, 30, 30))
    sim.assign(short_put, 2)

    fills, _ = await _poll_once(sim, portfolio)

    assert sorted((f.structure_id, f.symbol, f.qty) for f in fills) == [
        ("", "SPY", 100.0), ("", short_put, 1.0), ("old", "SPY", 100.0), ("old", short_put, 1.0)]
    assert _legs(portfolio, "old") == {cover: 5.0, short_put: -1.0, "SPY": 100.0}
    assert _legs(portfolio, "new") == {short_put: -2.0}  # the younger structure is untouched
    assert portfolio.position(short_put) == -3.0 == sim.inspect()["positions"][short_put]


async def test_two_activities_of_one_contract_in_a_batch_are_each_booked_once() -> None:
    """Long puts at expiry with shares for one: OPEXC 1 and OPEXP 2 arrive together; the second is split with
    the first's fills published but not yet in the portfolio (the bus delivers them later)."""
    s = Simulator(SimConfig(seed=4, speed=0.0, start=dt.datetime(2026, 12, 4, 15, 55), partial_fill_probability=0.0,
                            rate_limit_per_min=0, expiration=ExpirationConfig(liquidate=False)))
    await s.start()
    try:
        put = format_occ("SPY", EXPIRY, False, 610)
        for symbol, qty in (("SPY", 100), (put, 3)):
            s.exchange.submit({"symbol": symbol, "qty": qty, "side": "buy", "type": "market", "time_in_force": "day"})
        portfolio = Portfolio()
        for sid, qty, opened in (("a", 1, 1), ("b", 2, 2)):
            portfolio.on_fill(OrderFilled(f"x-{sid}", "o", "c", put, Side.BUY, qty, 1.0, opened, opened,
                                          AssetClass.OPTION, "condor", sid))
        portfolio.on_fill(OrderFilled("x-spy", "o", "c", "SPY", Side.BUY, 100, 600.0, 1, 1, AssetClass.EQUITY,
                                      "gamma", "g1"))
        s.advance(6 * 60)
        fills, _ = await _poll_once(s, portfolio, deferred=True)
    finally:
        await s.stop()
    # the exercise takes the oldest structure's put; the expiry, seen after it, the other two
    assert sorted((f.structure_id, f.symbol, f.side, f.qty) for f in fills) == [
        ("a", "SPY", Side.SELL, 100.0), ("a", put, Side.SELL, 1.0), ("b", put, Side.SELL, 2.0)]
    assert len({f.execution_id for f in fills}) == 3
    assert _legs(portfolio, "a") == {"SPY": -100.0}
    assert portfolio.structure("b") is not None and _legs(portfolio, "b") == {}
    assert portfolio.positions() == {}


# ---- broker-originated orders: Alpaca's expiry-day liquidation ------------------------------------------------

ENGINE_TOML = """
[engine]
mode = "paper"
state_dir = "{state}"
metrics_port = 0
unknown_order_policy = "cancel"

[alpaca]
options_feed = "indicative"
paper_url = "{trading}"
data_url = "{data}"
stream_url = "{stream}"
trading_stream_url = "{trading_stream}"

[strategies.gamma_scalper]
enabled = false

[strategies.iron_condor]
enabled = false

[strategies.zero_dte]
entries_enabled = false
"""
LIQUIDATED = format_occ("SPY", EXPIRY, True, 590)


async def _seeded_engine_and_sim(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Simulator, Any]:
    """A simulator at 15:10 on an expiry day holding 4 calls $10 in the money (exercising them needs $236,000 of
    a $100,000 account) and an engine config against it, whose journal books them to two structures: ``old``
    (2, opened first) and ``new`` (2)."""
    from engine.service.config import parse_config_text
    from engine.service.journal import Journal

    sim = Simulator(SimConfig(seed=4, speed=0.0, start=dt.datetime(2026, 12, 4, 15, 10), partial_fill_probability=0.0,
                              rate_limit_per_min=0))
    urls = await sim.start()
    order = sim.exchange.submit({"symbol": LIQUIDATED, "qty": 4, "side": "buy", "type": "market",
                                 "time_in_force": "day", "client_order_id": "oe-seed"})
    journal = Journal.open(tmp_path / "state")
    journal.start()
    for sid, ts in (("old", 1), ("new", 2)):
        journal.record_fill(OrderFilled(f"seed-{sid}", order["id"], "oe-seed", LIQUIDATED, Side.BUY, 2, 9.0, ts, ts,
                                        AssetClass.OPTION, "zero_dte", sid))
    await journal.aclose()
    monkeypatch.setenv("APCA_API_KEY_ID", urls.key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", urls.secret)
    cfg = parse_config_text(ENGINE_TOML.format(
        state=tmp_path / "state", trading=urls.trading_url, data=urls.data_url,
        stream=urls.options_stream_url.rsplit("/v1beta1/", 1)[0], trading_stream=urls.trading_stream_url))
    return sim, cfg


async def _started(cfg: Any) -> Any:
    from engine.service.app import Engine

    engine = Engine(cfg)
    try:
        await engine.start()
    except BaseException:
        await engine.shutdown()
        raise
    return engine


def _journal(tmp_path: Any) -> list[OrderFilled]:
    from engine.service.journal import Journal

    return [jf.fill for jf in Journal.open(tmp_path / "state").read_state().fills]


async def _until(predicate: Any, timeout_s: float = 15.0) -> None:
    import asyncio

    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_a_broker_liquidation_off_the_stream_is_booked_once_to_the_structures_it_closed(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, cfg = await _seeded_engine_and_sim(tmp_path, monkeypatch)
    try:
        engine = await _started(cfg)
        try:
            assert _legs(engine.portfolio, "old") == {LIQUIDATED: 2.0}
            sim.advance(6 * 60)  # 15:16: Alpaca's liquidation of what the account cannot exercise
            liquidation = sim.expiry()["liquidation_orders"][LIQUIDATED]
            await _until(lambda: engine.portfolio.position(LIQUIDATED) == 0)
            assert engine.portfolio.open_structures() == 0  # both legs closed, each in its own structure
        finally:
            await engine.shutdown()
        booked = [f for f in _journal(tmp_path) if f.order_id == liquidation]
        assert sorted((f.structure_id, f.strategy_id, f.side, f.qty) for f in booked) == [
            ("new", "zero_dte", Side.SELL, 2.0), ("old", "zero_dte", Side.SELL, 2.0)]
        assert len({f.execution_id for f in booked}) == 2

        # restart: the broker's activities and orders are read again; nothing is booked twice, nothing is amiss
        again = await _started(cfg)
        try:
            assert again.portfolio.positions() == {}
            codes = {a.code for a in again.alerts}
            assert not codes & {"position_mismatch", "unknown_fill_at_broker", "broker_order_fills_imported",
                                "structure_incomplete", "unattributed_position"}, codes
        finally:
            await again.shutdown()
        assert [f for f in _journal(tmp_path) if f.order_id == liquidation] == booked
    finally:
        await sim.stop()


async def test_a_broker_liquidation_while_the_engine_was_down_is_booked_at_restart(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, cfg = await _seeded_engine_and_sim(tmp_path, monkeypatch)
    try:
        sim.advance(6 * 60)  # the liquidation happens with no engine running
        liquidation = sim.expiry()["liquidation_orders"][LIQUIDATED]
        engine = await _started(cfg)
        try:
            assert engine.portfolio.positions() == {} and engine.portfolio.open_structures() == 0
            codes = [a.code for a in engine.alerts]
            assert "broker_order_fills_imported" in codes
            assert not {"position_mismatch", "unknown_fill_at_broker", "structure_incomplete"} & set(codes), codes
        finally:
            await engine.shutdown()
        booked = [f for f in _journal(tmp_path) if f.order_id == liquidation]
        assert sorted((f.structure_id, f.qty) for f in booked) == [("new", 2.0), ("old", 2.0)]
        again = await _started(cfg)  # and once more: imported once
        await again.shutdown()
        assert [f for f in _journal(tmp_path) if f.order_id == liquidation] == booked
    finally:
        await sim.stop()


def test_a_strategy_sees_its_leg_closed_by_the_broker_and_keeps_managing_the_rest() -> None:
    """What reaches a strategy's tracker: a liquidation's part closes its short leg (the structure stays open
    with its long leg, and the next close sends only that); an assignment's shares are kept apart from the
    strategy's own, so its close never sells what the engine's unwind sells."""
    from domain.orders import PricePolicy
    from engine.kernel.attribution import Holder, attribute_broker_fill
    from strategies.structures import Structure, StructureKind, StructureLeg
    from strategies.tracking import StructureStatus, StructureTracker

    short_put, long_put = format_occ("SPY", EXPIRY, False, 600), format_occ("SPY", EXPIRY, False, 595)
    spread = Structure(StructureKind.VERTICAL, "SPY", (StructureLeg(long_put, 595, False, EXPIRY, 1),
                                                       StructureLeg(short_put, 600, False, EXPIRY, -1)))
    tracker = StructureTracker("zero_dte")
    opening = tracker.open(spread, 2, PricePolicy(kind="market"), 1)
    sid = opening.structure_id
    for symbol, side in ((long_put, Side.BUY), (short_put, Side.SELL)):
        tracker.on_fill(OrderFilled(f"open-{symbol}", "o1", "c1", symbol, side, 2, 1.0, 2, 2, AssetClass.OPTION,
                                    "zero_dte", sid, opening.intent_id))
    liquidation = OrderFilled("liq-1", "o-liq", "broker-chosen", short_put, Side.BUY, 2, 3.0, 3, 3)
    (part,) = attribute_broker_fill(liquidation, [Holder(sid, "zero_dte", -2.0, 2)])
    t = tracker.on_fill(part)
    assert t is not None and t.filled == {long_put: 2.0, short_put: 0.0} and t.status is StructureStatus.OPEN
    closing = tracker.close(t, PricePolicy(kind="market"), 4, "cutoff")
    assert [(i.legs[0].symbol, i.legs[0].side, i.qty) for i in closing] == [(long_put, Side.SELL, 2)]

    # a partial assignment (1 of 2 short puts, and its shares): the rest stays open and managed; the shares are
    # not the strategy's to close (the engine's unwind sells them)
    other = tracker.open(spread, 2, PricePolicy(kind="market"), 5)
    for symbol, side in ((long_put, Side.BUY), (short_put, Side.SELL)):
        tracker.on_fill(OrderFilled(f"o2-{symbol}", "o2", "c2", symbol, side, 2, 1.0, 6, 6, AssetClass.OPTION,
                                    "zero_dte", other.structure_id, other.intent_id))
    for symbol, side, qty, price, kind in ((short_put, Side.BUY, 1, 0.0, AssetClass.OPTION),
                                           ("SPY", Side.BUY, 100, 600.0, AssetClass.EQUITY)):
        tracker.on_fill(OrderFilled(f"act:{symbol}", "activity-a", "", symbol, side, qty, price, 7, 7, kind,
                                    "zero_dte", other.structure_id))
    u = tracker.structures[other.structure_id]
    assert u.status is StructureStatus.OPEN and u.filled == {long_put: 2.0, short_put: -1.0}
    assert (u.shares, u.settled_shares) == (0.0, 100.0)
    closing = tracker.close(u, PricePolicy(kind="market"), 8, "x")
    assert [(i.qty, [leg.asset_class for leg in i.legs]) for i in closing] == [
        (1, [AssetClass.OPTION, AssetClass.OPTION])]  # one unit of the spread left, no stock order


async def test_a_broker_liquidation_between_the_restart_reads_and_the_stream_is_booked(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The liquidation fills after restart reconciliation read orders and activities and before the trading stream
    subscribed (trade_updates does not replay): the re-read of broker orders once the stream listens books it,
    once (the kill -9 loop left the engine short contracts the broker had bought back)."""
    from engine.service.app import Engine

    sim, cfg = await _seeded_engine_and_sim(tmp_path, monkeypatch)
    prime = Engine._prime_market

    async def liquidate_then_prime(self: Any) -> None:
        sim.advance(6 * 60)  # 15:16, between the restart's reads and the stream's subscription
        await prime(self)

    monkeypatch.setattr(Engine, "_prime_market", liquidate_then_prime)
    try:
        engine = await _started(cfg)
        try:
            liquidation = sim.expiry()["liquidation_orders"][LIQUIDATED]
            await _until(lambda: engine.portfolio.position(LIQUIDATED) == 0)
            assert engine.portfolio.open_structures() == 0
            assert not {"position_mismatch", "unknown_fill_at_broker"} & {a.code for a in engine.alerts}
        finally:
            await engine.shutdown()
        booked = [f for f in _journal(tmp_path) if f.order_id == liquidation]
        assert sorted((f.structure_id, f.qty) for f in booked) == [("new", 2.0), ("old", 2.0)]
        monkeypatch.setattr(Engine, "_prime_market", prime)
        again = await _started(cfg)  # the restart imports nothing more
        await again.shutdown()
        assert [f for f in _journal(tmp_path) if f.order_id == liquidation] == booked
    finally:
        await sim.stop()


async def test_an_expiry_read_before_the_fill_that_opened_the_position_is_booked_at_a_later_poll(
        sim: Simulator) -> None:
    """The kill -9 loop: after a restart the first poll read an expiry while the fill that opened the position
    (an adopted order read again once the stream listened) was still on its way to the portfolio; the
    activity was marked done, and the engine kept 5 puts the broker had settled."""
    put = format_occ("SPY", EXPIRY, False, 570)  # far out of the money: expires worthless
    sim.exchange.submit({"symbol": put, "qty": 5, "side": "buy", "type": "market", "time_in_force": "day"})
    sim.advance(6 * 60)
    portfolio = Portfolio()
    broker = _venue(sim)
    fills: list[OrderFilled] = []
    clock = [0.0]
    poller = SettlementPoller(broker, portfolio, _booking(portfolio, fills), lambda intent: None,
                              now_ns=lambda: sim.now_ns, monotonic=lambda: clock[0])
    try:
        assert await poller.poll() == 0 and fills == []  # the portfolio does not hold the put yet
        _book(portfolio, put, Side.BUY, 5, "s1")  # the opening fill arrives
        clock[0] += POLL_INTERVAL_S
        assert poller.due()
        assert await poller.poll() == 1
    finally:
        await broker.close()
    assert [(f.symbol, f.side, f.qty, f.structure_id) for f in fills] == [(put, Side.SELL, 5.0, "s1")]
    assert portfolio.positions() == {} == {k: v for k, v in sim.inspect()["positions"].items() if abs(v) > 1e-9}


async def test_an_activity_for_a_contract_never_held_is_given_up_after_a_few_polls(sim: Simulator) -> None:
    put = format_occ("SPY", EXPIRY, False, 570)
    sim.exchange.submit({"symbol": put, "qty": 2, "side": "buy", "type": "market", "time_in_force": "day"})
    sim.advance(6 * 60)
    portfolio = Portfolio()
    broker = _venue(sim)
    poller = SettlementPoller(broker, portfolio, portfolio.on_fill, lambda intent: None, now_ns=lambda: sim.now_ns)
    try:
        handled = [await poller.poll() for _ in range(UNHELD_POLLS)]
    finally:
        await broker.close()
    assert handled == [0] * (UNHELD_POLLS - 1) + [1]
    assert poller.unheld == {} and len(poller.seen) == 1
