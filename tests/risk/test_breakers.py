"""Breakers: daily loss, consecutive losses, stale data and the manual kill, on event time."""

from __future__ import annotations

from support.synthetic import ny_ns

from domain.orders import TradingState
from risk.breakers import BreakerCode, Breakers
from risk.limits import BreakerLimits

T0 = ny_ns(2026, 11, 16, 10, 0)
S = 1_000_000_000


def test_daily_loss_trips_reduce_only_and_clears_next_trading_day() -> None:
    b = Breakers(BreakerLimits(max_daily_loss_usd=1_000.0))
    assert b.on_daily_pnl(-999.0, T0) is None and b.state is TradingState.ACTIVE
    change = b.on_daily_pnl(-1_000.0, T0 + S)
    assert change is not None and change.tripped and change.code is BreakerCode.DAILY_LOSS
    assert (change.before, change.after) == (TradingState.ACTIVE, TradingState.REDUCE_ONLY)
    assert b.on_daily_pnl(-1_500.0, T0 + 2 * S) is None  # already tripped: no duplicate alert
    assert b.state is TradingState.REDUCE_ONLY
    assert b.on_daily_pnl(0.0, ny_ns(2026, 11, 16, 15, 59)) is None and b.state is TradingState.REDUCE_ONLY
    cleared = b.on_daily_pnl(0.0, ny_ns(2026, 11, 17, 9, 30))
    assert cleared is not None and not cleared.tripped and b.state is TradingState.ACTIVE


def test_the_trading_day_rolls_at_new_york_midnight_across_a_dst_change() -> None:
    b = Breakers(BreakerLimits(max_daily_loss_usd=100.0))
    b.on_daily_pnl(-100.0, ny_ns(2027, 3, 13, 23, 0))  # the Saturday before the clocks go forward
    assert b.on_daily_pnl(0.0, ny_ns(2027, 3, 14, 0, 0) - 1) is None and b.state is TradingState.REDUCE_ONLY
    cleared = b.on_daily_pnl(0.0, ny_ns(2027, 3, 14, 0, 0))
    assert cleared is not None and not cleared.tripped
    b.on_daily_pnl(-100.0, ny_ns(2027, 3, 14, 1, 0))
    assert b.on_daily_pnl(0.0, ny_ns(2027, 3, 15, 0, 0) - 1) is None and b.state is TradingState.REDUCE_ONLY
    cleared = b.on_daily_pnl(0.0, ny_ns(2027, 3, 15, 0, 0))  # a 23-hour day: its midnight is 23 h after the last
    assert cleared is not None and not cleared.tripped and b.state is TradingState.ACTIVE


def test_daily_loss_action_can_halt() -> None:
    b = Breakers(BreakerLimits(max_daily_loss_usd=100.0, daily_loss_action="halted"))
    b.on_daily_pnl(-100.0, T0)
    assert b.state is TradingState.HALTED


def test_consecutive_losses_trip_after_n_and_a_win_resets_the_streak() -> None:
    b = Breakers(BreakerLimits(max_consecutive_losses=3))
    b.on_structure_closed(-10.0, T0)
    b.on_structure_closed(-10.0, T0 + S)
    b.on_structure_closed(+5.0, T0 + 2 * S)
    b.on_structure_closed(-10.0, T0 + 3 * S)
    b.on_structure_closed(-10.0, T0 + 4 * S)
    assert b.state is TradingState.ACTIVE and b.consecutive_losses == 2
    change = b.on_structure_closed(-10.0, T0 + 5 * S)
    assert change is not None and change.code is BreakerCode.CONSECUTIVE_LOSSES
    assert b.state is TradingState.REDUCE_ONLY
    b.reset(BreakerCode.CONSECUTIVE_LOSSES, T0 + 6 * S)
    assert b.state is TradingState.ACTIVE and b.consecutive_losses == 0


def test_stale_data_halts_until_every_feed_is_fresh_again() -> None:
    b = Breakers(BreakerLimits(stale_data_after_ms=2_000))
    b.on_feed_data("options", T0)
    b.on_feed_data("stocks", T0)
    assert b.check_stale(T0 + 2 * S) is None
    b.on_feed_data("stocks", T0 + 2 * S)
    change = b.check_stale(T0 + 2 * S + 1)
    assert change is not None and change.after is TradingState.HALTED and "options" in change.detail
    assert b.on_feed_data("stocks", T0 + 3 * S) is None  # options still silent
    cleared = b.on_feed_data("options", T0 + 3 * S)
    assert cleared is not None and not cleared.tripped and b.state is TradingState.ACTIVE


def test_feed_declared_stale_trips_at_once() -> None:
    b = Breakers()
    b.on_feed_data("options", T0)
    change = b.on_feed_stale("options", T0 + 1, "mute socket")
    assert change is not None and change.detail == "mute socket" and b.state is TradingState.HALTED


def test_manual_kill_is_the_most_severe_and_survives_other_clears() -> None:
    b = Breakers(BreakerLimits(max_daily_loss_usd=100.0))
    b.on_daily_pnl(-200.0, T0)
    change = b.kill(TradingState.HALTED, T0 + S)
    assert change is not None and (change.before, change.after) == (TradingState.REDUCE_ONLY, TradingState.HALTED)
    b.on_daily_pnl(0.0, ny_ns(2026, 11, 17, 9, 30))  # new day clears the loss trip only
    assert b.state is TradingState.HALTED
    b.resume(ny_ns(2026, 11, 17, 9, 31))
    assert b.state is TradingState.ACTIVE
    b.kill(TradingState.REDUCE_ONLY, ny_ns(2026, 11, 17, 9, 32))
    assert b.state is TradingState.REDUCE_ONLY
    assert b.kill(TradingState.ACTIVE, ny_ns(2026, 11, 17, 9, 33)) is not None and b.state is TradingState.ACTIVE
