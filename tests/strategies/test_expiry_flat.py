"""expiry_flat_by: every strategy closes structures holding legs that expire today before the broker's expiry-day
liquidation, unless it opted in with carry_expiring and the account can carry them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest
from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import AssetClass, IntentAction, OrderFilled, Side
from domain.views import AccountView
from strategies.expiry_flat import carry_shortfall
from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.zero_dte import ZeroDte, ZeroDteConfig

MONDAY, TUESDAY = dt.date(2026, 11, 16), dt.date(2026, 11, 17)
HALF_DAY_EVE, HALF_DAY = dt.date(2026, 11, 25), dt.date(2026, 11, 27)
SEC = 1_000_000_000


def at(day: dt.date, hh: int, mm: int = 0) -> int:
    return ny_ns(day.year, day.month, day.day, hh, mm)


def chain(day: dt.date, now: int) -> SyntheticChain:
    return SyntheticChain("SPY", 600.0, now, standard_expiries(day, (0, 1, 2, 7, 30, 37)),
                          strike_ladder(600.0, 1.0, 60))


def condor(day: dt.date, dte: int = 1, **cfg: Any) -> Harness:
    """A condor opened ``dte`` days before its expiry, held into the expiry day (exit_dte 0)."""
    now = at(day, 10)
    config = IronCondorConfig(underlyings=("SPY",), dte_min=dte, dte_max=dte, exit_dte=0, max_qty=1,
                              take_profit_pct=0.99, stop_loss_multiple=50.0, close_on_breach=False, **cfg)
    return Harness(IronCondor("ic", config), [chain(day, now)], now, equity=1_000_000.0)


def straddle(day: dt.date, dte: int = 1, **cfg: Any) -> Harness:
    now = at(day, 10)
    config = GammaScalperConfig(underlyings=("SPY",), dte_min=dte, dte_max=dte, exit_dte=0, qty=1,
                                max_loss_usd=1e6, exit_vol_gain_pts=50.0, hedge_mode="fixed", hedge_band_shares=1e6,
                                **cfg)
    return Harness(GammaScalper("gs", config), [chain(day, now)], now, equity=1_000_000.0)


def closes(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.CLOSE]


def same_day_held(h: Harness, day: dt.date) -> dict[str, float]:
    out = {}
    for sym, q in h.portfolio.positions().items():
        c = h.chain()
        r = c.row_of(sym)
        if r >= 0 and c.expiry[r].item() == day and (q < 0 or c.bid[r] > 0):
            out[sym] = q
    return out


def open_and_hold_into_expiry_day(h: Harness, open_day: dt.date, day: dt.date) -> None:
    h.advance(at(open_day, 10, 1))
    assert [i.action for i in h.approved] == [IntentAction.OPEN], h.denied
    h.advance(at(day, 9, 31))
    h.advance(at(day, 11, 0))
    assert closes(h) == [] and same_day_held(h, day)  # exit_dte 0 leaves the expiry day to expiry_flat_by


@pytest.mark.parametrize("make", [condor, straddle], ids=["iron_condor", "gamma_scalper"])
@pytest.mark.parametrize(("open_day", "day", "flat_by"), [
    (MONDAY, TUESDAY, (15, 0)), (HALF_DAY_EVE, HALF_DAY, (12, 0))], ids=["regular", "half_day"])
def test_legs_expiring_today_are_closed_from_expiry_flat_by_and_retried_until_flat(
        make: Any, open_day: dt.date, day: dt.date, flat_by: tuple[int, int]) -> None:
    h = make(open_day, dte=(day - open_day).days)
    open_and_hold_into_expiry_day(h, open_day, day)
    h.advance(at(day, *flat_by) - 30 * SEC)
    assert closes(h) == []
    h.advance(at(day, *flat_by) + 30 * SEC)
    assert (f"expiry_flat:{day.isoformat()}", at(day, *flat_by)) in h.timer_log
    # The timer tried at once (refused: that book was 60 s old); the next book update retried.
    tries = [i for i in h.submitted if i.action is IntentAction.CLOSE]
    assert tries[0].ts_event_ns == at(day, *flat_by) and {i.tag for i in tries} == {"expiry_flat"}
    assert [c.tag for c in closes(h)] == ["expiry_flat"] and same_day_held(h, day) == {}
    assert h.strategy.exits == {"expiry_flat": 1}
    h.advance(at(day, *flat_by) + 600 * SEC)
    assert len(closes(h)) == 1
    # Nothing new on today's expiry after expiry_flat_by (the scalper may re-enter on a later one).
    c = h.chain()
    assert all(c.expiry[c.row_of(leg.symbol)].item() != day
               for i in h.approved[2:] for leg in i.legs if i.action is IntentAction.OPEN)


@pytest.mark.parametrize("make", [condor, straddle], ids=["iron_condor", "gamma_scalper"])
def test_carry_expiring_keeps_them_only_when_the_account_can_carry_them(make: Any) -> None:
    # Can carry: cash for every strike bought at assignment or exercise, shares for every one delivered.
    rich = make(MONDAY, carry_expiring=True)
    rich.give_shares("SPY", 200.0, 600.0)
    open_and_hold_into_expiry_day(rich, MONDAY, TUESDAY)
    for hh, mm in ((15, 0), (15, 1), (15, 20), (15, 55)):
        rich.advance(at(TUESDAY, hh, mm))
    assert closes(rich) == [] and same_day_held(rich, TUESDAY)
    assert rich.strategy.last_action.startswith("carry SPY")
    # No shares to deliver: the same structure is closed at expiry_flat_by.
    no_shares = make(MONDAY, carry_expiring=True)
    open_and_hold_into_expiry_day(no_shares, MONDAY, TUESDAY)
    no_shares.advance(at(TUESDAY, 15, 1))
    assert [c.tag for c in closes(no_shares)] == ["expiry_flat"] and same_day_held(no_shares, TUESDAY) == {}
    # Shares but not the cash: closed as well.
    poor = make(MONDAY, carry_expiring=True)
    poor.give_shares("SPY", 200.0, 600.0)
    open_and_hold_into_expiry_day(poor, MONDAY, TUESDAY)
    poor.set_account(1_000_000.0, cash=50_000.0)
    poor.advance(at(TUESDAY, 15, 1))
    assert [c.tag for c in closes(poor)] == ["expiry_flat"] and same_day_held(poor, TUESDAY) == {}


def test_the_account_losing_what_carried_them_closes_them_on_the_next_book() -> None:
    h = condor(MONDAY, carry_expiring=True)
    h.give_shares("SPY", 200.0, 600.0)
    open_and_hold_into_expiry_day(h, MONDAY, TUESDAY)
    h.advance(at(TUESDAY, 15, 5))
    assert closes(h) == []
    h.portfolio.on_fill(OrderFilled("sold", "o", "c", "SPY", Side.SELL, 200.0, 600.0, h.now_ns, h.now_ns,
                                    AssetClass.EQUITY, "other", "other-shares"))
    h.advance(at(TUESDAY, 15, 6))
    assert [c.tag for c in closes(h)] == ["expiry_flat"]


def test_no_same_day_structure_is_opened_after_expiry_flat_by() -> None:
    def zero_dte_condor(start: int) -> Harness:
        config = IronCondorConfig(underlyings=("SPY",), dte_min=0, dte_max=0, short_delta_min=0.05,
                                  short_delta_max=0.40, wing_width_pct=0.003, min_credit_ratio=0.01)
        return Harness(IronCondor("ic", config), [chain(MONDAY, start)], start)
    before = zero_dte_condor(at(MONDAY, 14, 55))
    before.advance(at(MONDAY, 14, 56))
    assert [i.action for i in before.approved] == [IntentAction.OPEN]
    after = zero_dte_condor(at(MONDAY, 15, 0))
    for mm in (1, 3, 10):
        after.advance(at(MONDAY, 15, mm))
    assert after.submitted == []


def test_zero_dte_is_flat_by_its_cutoff_even_when_it_could_carry() -> None:
    """The 0DTE's cut-off is never later than expiry_flat_by: carrying cannot keep a 0DTE structure."""
    now = at(MONDAY, 10)
    h = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",), carry_expiring=True, take_profit_pct=0.99,
                                            stop_loss_multiple=50.0, underlying_stop_pct=0.5,
                                            pin_distance_pct=0.0001, max_qty=2)),
                [chain(MONDAY, now)], now, equity=5_000_000.0)
    h.give_shares("SPY", 400.0, 600.0)
    h.advance(at(MONDAY, 10, 1))
    assert [i.action for i in h.approved] == [IntentAction.OPEN] and h.approved[0].qty == 2
    t = h.strategy.tracker.active()[0]
    assert h.strategy.expiry_flat_reason(t, at(MONDAY, 15, 1)) == ""  # the account could carry it
    h.advance(at(MONDAY, 15, 1))
    assert {c.tag for c in closes(h)} == {"cutoff"} and same_day_held(h, MONDAY) == {}


def test_carry_counts_every_same_day_leg_in_the_portfolio_whoever_holds_it() -> None:
    h = condor(MONDAY)
    day = MONDAY
    c = h.chain()

    def book(sym: str, qty: float, strategy: str) -> None:
        side = Side.BUY if qty > 0 else Side.SELL
        h.portfolio.on_fill(OrderFilled(f"x-{sym}-{strategy}", "o", "c", sym, side, abs(qty), 1.0, h.now_ns,
                                        h.now_ns, AssetClass.OPTION, strategy, f"{strategy}-1"))

    book(c.symbol_at(day, 590.0, False), -2, "a")  # short puts: 2 x 590 x 100 = 118,000 cash
    account = AccountView(1e6, 150_000.0, 300_000.0, 1e6)
    assert carry_shortfall(h.portfolio, account, day) == ""
    book(c.symbol_at(day, 595.0, False), -1, "b")  # another strategy's: 59,500 more
    assert "cash" in carry_shortfall(h.portfolio, account, day)
    assert carry_shortfall(h.portfolio, AccountView(1e6, 500_000.0, 150_000.0, 1e6), day)  # buying power short
    rich = AccountView(1e6, 500_000.0, 1e6, 1e6)
    assert carry_shortfall(h.portfolio, rich, day) == ""
    book(c.symbol_at(day, 610.0, True), -1, "a")  # a short call needs 100 shares
    assert "shares" in carry_shortfall(h.portfolio, rich, day)
    h.give_shares("SPY", 100.0, 600.0)
    assert carry_shortfall(h.portfolio, rich, day) == ""
    book(c.symbol_at(day, 580.0, False), 1, "a")  # a long put would deliver 100 more
    assert "shares" in carry_shortfall(h.portfolio, rich, day)
    # Legs expiring another day do not count.
    book(c.symbol_at(TUESDAY, 650.0, True), -5, "a")
    h.give_shares("SPY", 100.0, 600.0)
    assert carry_shortfall(h.portfolio, rich, day) == ""


def test_expiry_flat_by_is_hot_and_resets_the_days_timer() -> None:
    h = condor(MONDAY)
    open_and_hold_into_expiry_day(h, MONDAY, TUESDAY)
    h.strategy.on_params(msgspec.structs.replace(h.strategy.config, expiry_flat_by="close-2h"))
    h.advance(at(TUESDAY, 14, 1))
    assert (f"expiry_flat:{TUESDAY.isoformat()}", at(TUESDAY, 14)) in h.timer_log
    assert [c.tag for c in closes(h)] == ["expiry_flat"]
