"""0DTE actor: entry window, daily cap, cut-off timer, stops and pin risk, in New York event time."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction
from strategies.tracking import StructureStatus
from strategies.zero_dte import ZeroDte, ZeroDteConfig

DAY = dt.date(2026, 11, 16)
MIN_NS = 60 * 1_000_000_000


def at(hh: int, mm: int, day: int = 16) -> int:
    return ny_ns(2026, 11, day, hh, mm)


def make(start: int, underlyings: tuple[str, ...] = ("SPY",), **overrides: object) -> Harness:
    chains = [SyntheticChain(u, s, start, standard_expiries(DAY, (0, 1, 7)), strike_ladder(s, 1.0, 30))
              for u, s in (("SPY", 600.0), ("QQQ", 500.0)) if u in underlyings]
    cfg = ZeroDteConfig(underlyings=underlyings, **overrides)  # type: ignore[arg-type]
    return Harness(ZeroDte("zd", cfg), chains, start)


def opens(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.OPEN]


def closes(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.CLOSE]


def no_shorts_but_worthless_wings(h: Harness) -> bool:
    """Every short leg is closed; what is left are long wings bid at zero (no order can sell them)."""
    held = h.portfolio.positions()
    for sym, q in held.items():
        chain = h.chain(sym[:3])
        if not (q > 0 and chain.bid[chain.row_of(sym)] == 0):
            return False
    return True


def test_zero_dte_waits_for_the_entry_window_then_sells_a_same_day_condor() -> None:
    h = make(at(9, 31))
    h.advance(at(9, 59))
    assert h.submitted == []
    h.advance(at(10, 0))
    (intent,) = opens(h)
    chain = h.chain()
    rows = [chain.row_of(leg.symbol) for leg in intent.legs]
    assert len(rows) == 4 and all(chain.expiry[r].item() == DAY for r in rows)
    assert intent.price_policy.limit_price is not None and intent.price_policy.limit_price < 0
    assert all(0.10 <= abs(chain.delta[r]) <= 0.30 for r in rows[1:3])


def test_zero_dte_enters_at_most_n_structures_a_day() -> None:
    h = make(at(10, 0), max_entries_per_day=2, entry_interval_s=60.0, take_profit_pct=0.01)
    for minute in range(1, 60, 2):
        h.advance(at(10, minute))
    assert len(opens(h)) == 2 and h.strategy.entries_today == 2
    # The next trading day starts a fresh count.
    h.advance(at(10, 5, day=17))
    assert h.strategy.entries_today in (0, 1)


def test_zero_dte_takes_no_entries_after_the_window_or_the_cutoff() -> None:
    h = make(at(14, 30))
    h.advance(at(14, 31))
    h.advance(at(15, 10))
    assert h.submitted == []
    # The window's end is exclusive: an entry at 14:29, none at 14:30 on the same book.
    h2 = make(at(14, 20))
    h2.advance(at(14, 30))
    assert h2.submitted == []
    h3 = make(at(14, 20))
    h3.advance(at(14, 29))
    assert len(opens(h3)) == 1


def test_zero_dte_cutoff_timer_flattens_everything_and_blocks_entries() -> None:
    h = make(at(10, 0), underlyings=("SPY", "QQQ"), entry_interval_s=60.0, max_entries_per_day=4,
             take_profit_pct=0.99, stop_loss_multiple=10.0, underlying_stop_pct=0.5, pin_distance_pct=0.0001)
    h.advance(at(10, 1))
    h.advance(at(10, 5))
    assert {i.underlying for i in opens(h)} == {"SPY", "QQQ"}
    h.advance(at(12, 0))
    assert closes(h) == []
    # Keep a short leg near the money so nothing takes profit, with books fresh at 14:59:30 (the default cut-off,
    # close-60m, is 15:00; the pin check is off here).
    near = {t.structure.underlying: max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
            + 0.3 for t in h.strategy.tracker.active()}
    h.advance(at(14, 59) + 30 * 1_000_000_000, spot=near)
    assert closes(h) == []
    h.advance(at(15, 2), spot=near)  # the 15:00 timer fires before this book update
    assert ("cutoff:2026-11-16", at(15, 0)) in h.timer_log
    assert sorted(c.tag for c in closes(h)) == ["cutoff", "cutoff"]
    # The timer tried at 15:00 sharp (the 30 s old book was refused as stale); the book update retried.
    assert {i.underlying for i in h.submitted if i.action is IntentAction.CLOSE and i.ts_event_ns == at(15, 0)} == {
        "SPY", "QQQ"}
    assert no_shorts_but_worthless_wings(h)
    n = len(h.submitted)
    h.advance(at(15, 5))
    assert len(h.submitted) == n


def test_zero_dte_keeps_closing_after_cutoff_until_flat() -> None:
    h = make(at(10, 0), take_profit_pct=0.99, underlying_stop_pct=0.5, pin_distance_pct=0.0001)
    h.advance(at(10, 1))
    h.fill = False
    h.advance(at(15, 1))
    t = h.strategy.tracker.active()[0]
    assert t.status is StructureStatus.CLOSING
    h.expire_working()
    assert t.status is StructureStatus.OPEN
    h.fill = True
    h.advance(at(15, 7))
    assert [c.tag for c in closes(h)] == ["cutoff", "cutoff"] and no_shorts_but_worthless_wings(h)
    n = len(h.submitted)
    h.advance(at(15, 20))
    assert len(h.submitted) == n  # the wings left have no bid to sell into: nothing more is sent


def test_zero_dte_stops_on_an_underlying_move() -> None:
    h = make(at(10, 0), underlying_stop_pct=0.004, stop_loss_multiple=10.0)
    h.advance(at(10, 1))
    h.advance(at(10, 30), spot=601.0)
    assert closes(h) == []
    h.advance(at(10, 31), spot=597.5)
    assert [c.tag for c in closes(h)] == ["underlying_stop"]


def test_zero_dte_stops_on_spread_value() -> None:
    h = make(at(10, 0), underlying_stop_pct=0.5, stop_loss_multiple=1.0)
    h.advance(at(10, 1))
    h.advance(at(10, 2), vol_shift=0.15)
    assert [c.tag for c in closes(h)] == ["stop"]


def test_zero_dte_closes_a_short_strike_pinned_late_in_the_day() -> None:
    h = make(at(10, 0), underlying_stop_pct=0.5, stop_loss_multiple=50.0, take_profit_pct=0.99,
             pin_distance_pct=0.002)
    h.advance(at(10, 1))
    t = h.strategy.tracker.active()[0]
    short_call = min(leg.strike for leg in t.structure.legs if leg.is_call and leg.ratio < 0)
    h.advance(at(14, 20), spot=short_call - 0.3)
    assert closes(h) == []  # near the strike, but before pin_check_from (close-90m: 14:30)
    h.advance(at(14, 31), spot=short_call - 0.3)
    assert [c.tag for c in closes(h)] == ["pin_risk"]


@pytest.mark.parametrize("structure", ["iron_fly", "put_spread", "call_spread"])
def test_zero_dte_builds_each_configured_structure(structure: str) -> None:
    h = make(at(10, 0), structure=structure, min_credit_ratio=0.05)
    h.advance(at(10, 1))
    (intent,) = opens(h)
    t = h.strategy.tracker.active()[0]
    if structure == "iron_fly":
        shorts = {leg.strike for leg in t.structure.legs if leg.ratio < 0}
        assert len(intent.legs) == 4 and len(shorts) == 1
    else:
        assert len(intent.legs) == 2
        assert all(leg.is_call is (structure == "call_spread") for leg in t.structure.legs)


def test_zero_dte_config_rejects_a_window_past_the_cutoff() -> None:
    with pytest.raises(msgspec.ValidationError, match="entry_end <= cutoff"):
        msgspec.convert({"entry_end": "15:50", "cutoff": "15:45"}, ZeroDteConfig)
    with pytest.raises(msgspec.ValidationError, match="cutoff"):
        msgspec.convert({"cutoff": "25:00"}, ZeroDteConfig)


def test_zero_dte_denied_open_does_not_use_up_an_entry() -> None:
    from domain.orders import TradingState

    h = make(at(10, 0), entry_interval_s=60.0, max_entries_per_day=1)
    h.state = TradingState.REDUCE_ONLY
    h.advance(at(10, 1))
    assert [d.reasons for d in h.denied] == [("reduce_only",)] and h.strategy.entries_today == 0
    h.state = TradingState.ACTIVE
    h.advance(at(10, 3))
    assert len(opens(h)) == 1 and h.strategy.entries_today == 1


def test_zero_dte_backs_off_between_refused_closes() -> None:
    from domain.orders import TradingState

    h = make(at(10, 0), take_profit_pct=0.99, underlying_stop_pct=0.5, close_retry_s=10.0)
    h.advance(at(10, 1))
    h.state = TradingState.HALTED
    start = at(15, 1)
    for sec in range(0, 80, 2):
        h.advance(start + sec * 1_000_000_000)
    tries = [i.ts_event_ns - start for i in h.submitted if i.action is IntentAction.CLOSE]
    # The cut-off timer tries at 15:00 (-60 s); then the waits are 10, 20, 40 s: doubling after each refusal.
    assert [t // 1_000_000_000 for t in tries] == [-60, 0, 20, 60]


def test_zero_dte_retires_a_structure_left_open_past_its_expiry() -> None:
    from domain.orders import TradingState

    h = make(at(10, 0), take_profit_pct=0.99, underlying_stop_pct=0.5)
    h.advance(at(10, 1))
    t = h.strategy.tracker.active()[0]
    h.state = TradingState.HALTED  # every close refused: it stays open through the close
    h.advance(at(15, 50))
    assert t.status is StructureStatus.OPEN
    h.advance(at(9, 45, day=17))
    assert t.status is StructureStatus.CLOSED and t.close_reason == "cutoff"
    assert h.strategy.tracker.active() == []
