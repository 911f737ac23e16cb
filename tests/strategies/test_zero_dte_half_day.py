"""The 0DTE actor on half days (13:00 close): windows measured from the early close, flat before the broker's
expiry-day liquidation, absolute times moved and reported once, and the day it used to sit out."""

from __future__ import annotations

import datetime as dt

import pytest
import structlog
from sim_book import sim_book
from strategy_harness import BookContext, Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction, OrderFilled, OrderStatus, OrderUpdated, TradingState
from greeks.calendar import NS_PER_MINUTE
from risk.gate import Approved, check_intent
from risk.limits import RiskLimits
from risk.rate import RateBudget
from strategies.zero_dte import ZeroDte, ZeroDteConfig

HALF_DAYS = (dt.date(2026, 11, 27), dt.date(2026, 12, 24))
SEC = 1_000_000_000


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> int:
    return ny_ns(day.year, day.month, day.day, hh, mm, ss)


def make(day: dt.date, start: int, **overrides: object) -> Harness:
    chain = SyntheticChain("SPY", 600.0, start, standard_expiries(day, (0, 3, 7)), strike_ladder(600.0, 1.0, 30))
    return Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",), **overrides)), [chain], start)  # type: ignore[arg-type]


def opens(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.OPEN]


def closes(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.CLOSE]


def shorts_held(h: Harness) -> dict[str, float]:
    return {s: q for s, q in h.portfolio.positions().items() if q < 0}


@pytest.mark.parametrize("day", HALF_DAYS)
def test_entries_only_inside_the_window_measured_from_the_early_close(day: dt.date) -> None:
    h = make(day, at(day, 9, 31))
    h.advance(at(day, 9, 59))
    assert h.submitted == []
    h.advance(at(day, 10, 0))
    assert len(opens(h)) == 1  # entry_start = open+30m
    late = make(day, at(day, 11, 20))
    late.advance(at(day, 11, 29))
    assert len(opens(late)) == 1  # entry_end = close-90m: 11:30 on a half day
    closed = make(day, at(day, 11, 30))
    for hh, mm in ((11, 30), (11, 45), (12, 10), (12, 50)):
        closed.advance(at(day, hh, mm))
    assert closed.submitted == []  # inside a regular day's window, past a half day's


@pytest.mark.parametrize("day", HALF_DAYS)
def test_the_cutoff_timer_fires_before_the_early_close_and_nothing_short_is_held_into_the_liquidation(
        day: dt.date) -> None:
    h = make(day, at(day, 10, 0), take_profit_pct=0.99, stop_loss_multiple=50.0, underlying_stop_pct=0.5,
             pin_distance_pct=0.0001)
    h.advance(at(day, 10, 1))
    (t,) = h.strategy.tracker.active()
    short_put = max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
    h.advance(at(day, 11, 59), spot=short_put + 0.3)
    assert closes(h) == [] and shorts_held(h)
    h.advance(at(day, 12, 1), spot=short_put + 0.3)
    assert (f"cutoff:{day.isoformat()}", at(day, 12)) in h.timer_log  # close-60m, an hour before 13:00
    # The timer tried at 12:00 sharp (refused: that book was a minute old); the next book update retried.
    assert next(i.ts_event_ns for i in h.submitted if i.action is IntentAction.CLOSE) == at(day, 12)
    assert {c.tag for c in closes(h)} == {"cutoff"}
    # The broker starts liquidating at close-45m (12:15): nothing short is left by then.
    h.advance(at(day, 12, 15), spot=short_put + 0.3)
    assert shorts_held(h) == {}
    assert all(h.chain().bid[h.chain().row_of(s)] == 0 for s in h.portfolio.positions())  # only unsellable wings


@pytest.mark.parametrize("day", HALF_DAYS)
def test_a_refused_cutoff_close_is_retried_until_flat_before_the_liquidation(day: dt.date) -> None:
    """A cut-off close refused by the gate is retried on book updates until flat, all before 12:15."""
    h = make(day, at(day, 10, 0), take_profit_pct=0.99, stop_loss_multiple=50.0, underlying_stop_pct=0.5,
             pin_distance_pct=0.0001, close_retry_s=5.0)
    h.advance(at(day, 10, 1))
    h.state = TradingState.HALTED
    h.advance(at(day, 12, 0, 30))
    assert [d.reasons for d in h.denied] == [("halted",), ("halted",)]  # the timer, then the book update
    h.state = TradingState.ACTIVE
    for s in range(31, 90, 5):
        h.advance(at(day, 12) + s * SEC)
    assert shorts_held(h) == {} and {c.tag for c in closes(h)} == {"cutoff"}


def test_absolute_times_past_the_early_close_are_moved_and_reported_once_per_field_and_day() -> None:
    day, regular, next_half = HALF_DAYS[0], dt.date(2026, 11, 30), HALF_DAYS[1]
    absolute = {"entry_start": "10:00", "entry_end": "14:30", "pin_check_from": "15:00", "cutoff": "15:45",
                "expiry_flat_by": "15:50"}
    with structlog.testing.capture_logs() as logs:
        h = make(day, at(day, 9, 31), **absolute)
        for m in range(0, 200, 7):
            h.advance(at(day, 9, 35) + m * NS_PER_MINUTE)
        h.strategy.on_params(ZeroDteConfig(underlyings=("SPY",), **absolute))  # a reload of the same values
        h.advance(at(day, 12, 59))
    moved = [e for e in logs if e["event"] == "strategy_time_adjusted"]
    assert sorted(e["field"] for e in moved) == ["cutoff", "entry_end", "expiry_flat_by", "pin_check_from"]
    assert all(e["day"] == "2026-11-27" and e["log_level"] == "warning" for e in moved)
    stats = h.strategy.stats()
    assert stats["time_notes"] == 4 and "2026-11-27" in str(stats["last_time_note"])
    # 15:45 kept its 15 minutes to the close: the cut-off timer fired at 12:45, before the close.
    assert (f"cutoff:{day.isoformat()}", at(day, 12, 45)) in h.timer_log
    # A regular day moves nothing; the next half day reports again.
    h.advance(at(regular, 10, 0))
    h.advance(at(regular, 15, 55))
    assert h.strategy.stats()["time_notes"] == 4
    h.advance(at(next_half, 10, 0))
    assert h.strategy.stats()["time_notes"] == 8


# ---------------------------------------------------------------------------------------------- the regression


@pytest.mark.parametrize("when", [
    dt.datetime(2026, 11, 27, 10, 5),   # the half day: 2 h 55 min to its 13:00 close
    dt.datetime(2026, 11, 27, 11, 0),
    dt.datetime(2026, 11, 30, 13, 30),  # a regular afternoon with as little time left
], ids=["half_day_10_05", "half_day_11_00", "regular_13_30"])
def test_zero_dte_opens_on_the_simulators_short_session_book_and_the_gate_approves(when: dt.datetime) -> None:
    """The half-day bug: in sim runs through 2026-11-27 the 0DTE opened nothing all day.

    With under about three hours to the close (all of a half day) the wings 0.3 % of spot beyond 0.1-0.3 delta
    shorts are bid at zero in the simulator's market. The engine's book gives such a contract no IV and no
    Greeks, so the wing selection (which asked every leg for a delta) found no wing, and the gate refused any
    intent holding one (NaN post-trade Greeks). The book here is the engine's own, filled from the simulator's
    quotes for the contracts the subscription budget streams.
    """
    market = sim_book(when)
    ctx = BookContext(market, next(iter(market.books.values())).ts_ns)
    actor = ZeroDte("zd", ZeroDteConfig())
    actor.on_start(ctx)
    for u in actor.underlyings:
        chain = market.chain(u)
        assert chain is not None
        actor.on_book(chain)
    assert ctx.intents, actor.last_action
    for intent in ctx.intents:
        chain = market.chain(intent.underlying)
        assert chain is not None
        wings = [leg for leg in intent.legs if leg.side.sign > 0]
        assert all(chain.expiry[chain.row_of(leg.symbol)].item() == when.date() for leg in intent.legs)
        verdict = check_intent(intent, ctx.portfolio, market, ctx.account(), RiskLimits(), TradingState.ACTIVE,
                               ctx.now_ns, RateBudget())
        assert isinstance(verdict, Approved), verdict
    offer_only = [leg for i in ctx.intents for leg in i.legs if leg.side.sign > 0
                  and not market.books[i.underlying].bid[market.books[i.underlying].row_of(leg.symbol)] > 0]
    assert offer_only, "expected a wing bid at zero on this book (the case the fix is about)"
    assert wings


def test_a_same_day_cutoff_close_leaves_out_wings_bid_at_zero_and_the_gate_approves_it() -> None:
    """A close that sold a zero-bid wing could never fill (no bid to sell into): the 0DTE would hold its shorts
    into the liquidation window. The close buys back the shorts (and sells what has a bid) instead."""
    when = dt.datetime(2026, 11, 27, 10, 5)
    market = sim_book(when)
    ctx = BookContext(market, next(iter(market.books.values())).ts_ns)
    actor = ZeroDte("zd", ZeroDteConfig())
    actor.on_start(ctx)
    chain = market.chain("QQQ")
    assert chain is not None
    actor.on_book(chain)
    (opening,) = ctx.intents
    for n, leg in enumerate(opening.legs):
        r = chain.row_of(leg.symbol)
        fill = OrderFilled(f"e{n}", "o1", "c1", leg.symbol, leg.side, float(opening.qty * leg.ratio),
                           0.5 * float(chain.bid[r] + chain.ask[r]), ctx.now_ns, ctx.now_ns,
                           strategy_id="zd", structure_id=opening.structure_id, intent_id=opening.intent_id)
        ctx.portfolio.on_fill(fill)
        actor.on_fill(fill)
    actor.on_order_update(OrderUpdated("o1", "c1", OrderStatus.FILLED, float(opening.qty), float(opening.qty),
                                       ctx.now_ns, ctx.now_ns, "zd", opening.structure_id, opening.intent_id))
    ctx.now_ns += 2 * 3600 * SEC  # 12:05: past the 12:00 cut-off (same quotes: the wings still have no bid)
    actor.on_timer(f"cutoff:{when.date().isoformat()}", ctx.now_ns)
    (close,) = ctx.intents[1:]
    unsellable = {leg.symbol for leg in opening.legs
                  if leg.side.sign > 0 and not chain.bid[chain.row_of(leg.symbol)] > 0}
    assert unsellable and {leg.symbol for leg in close.legs} == {leg.symbol for leg in opening.legs} - unsellable
    assert {leg.symbol for leg in opening.legs if leg.side.sign < 0} <= {leg.symbol for leg in close.legs}
    # quotes as of 10:05 are stale by now, so check at their own time
    verdict = check_intent(close, ctx.portfolio, market, ctx.account(), RiskLimits(), TradingState.ACTIVE,
                           chain.ts_ns, RateBudget())
    assert isinstance(verdict, Approved), verdict
