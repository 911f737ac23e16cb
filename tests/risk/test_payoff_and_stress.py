"""Payoff extremes against a brute-force grid, and the stress grid against direct greeks pricing."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.synthetic import SyntheticChain, ny_ns

from greeks import black_scholes_price
from risk.limits import StressLimits
from risk.payoff import PayoffLeg, payoff_usd, summarize, uncovered_short_contracts
from risk.stress import StressGrid, scenario_pnl, stress_pnl

legs_strategy = st.lists(
    st.tuples(st.integers(-3, 3).filter(bool), st.sampled_from([80.0, 90.0, 95.0, 100.0, 105.0, 120.0]),
              st.booleans()),
    min_size=1, max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(legs_strategy, st.floats(-10, 10), st.integers(-200, 200))
def test_summary_matches_a_fine_grid(raw: list[tuple[int, float, bool]], premium: float, shares: int) -> None:
    legs = [PayoffLeg(float(q), k, c) for q, k, c in raw]
    if shares:
        legs.append(PayoffLeg(float(shares), 0.0, False, 0.0, True))
    s = summarize(legs, premium)
    grid = np.arange(0.0, 400.25, 0.25)  # includes every strike, where the extremes are
    values = np.array([payoff_usd(legs, premium, x) for x in grid])
    tail = payoff_usd(legs, premium, 1e6)
    if math.isinf(s.max_loss_usd):
        assert tail < values.min() - 1.0
    else:
        assert s.max_loss_usd == pytest.approx(max(-values.min(), 0.0), abs=1e-6)
    if math.isinf(s.max_profit_usd):
        assert tail > values.max() + 1.0
    else:
        assert s.max_profit_usd == pytest.approx(values.max(), abs=1e-6)
    for b in s.breakevens:
        assert abs(payoff_usd(legs, premium, b)) < 1e-6


def test_coverage_counts_naked_shorts_by_right_and_expiry() -> None:
    short_call = PayoffLeg(-2.0, 100.0, True, 10.0)
    assert uncovered_short_contracts([short_call]) == 2.0
    assert uncovered_short_contracts([short_call, PayoffLeg(1.0, 110.0, True, 10.0)]) == 1.0
    assert uncovered_short_contracts([short_call], shares=200.0) == 0.0
    # A long that expires before the short does not cover it; one after does (calendar).
    assert uncovered_short_contracts([short_call, PayoffLeg(2.0, 100.0, True, 5.0)]) == 2.0
    assert uncovered_short_contracts([short_call, PayoffLeg(2.0, 100.0, True, 20.0)]) == 0.0
    # Puts are not covered by calls or shares.
    assert uncovered_short_contracts([PayoffLeg(-1.0, 90.0, False), PayoffLeg(1.0, 80.0, True)], 100.0) == 1.0


def test_stress_grid_matches_direct_pricing() -> None:
    lim = StressLimits(spot_shock_pct=0.05, vol_shock_vol_pts=5.0, rate=0.03)
    grid = StressGrid(lim)
    t = np.array([0.1, 0.1, 0.3])
    strike = np.array([100.0, 95.0, 110.0])
    sigma = np.array([0.2, 0.25, 0.18])
    is_call = np.array([True, False, True])
    fwd = 100.0 * np.exp(0.01 * t)
    qty = np.array([2.0, -1.0, 3.0])
    rows = np.arange(3, dtype=np.int64)
    _, pnl = stress_pnl(grid, fwd, strike, t, sigma, is_call, rows, np.zeros(3), qty, 100.0, 0.0, -50.0)
    assert pnl.shape == (25,)  # 5 spot moves x (3 parallel + 2 skew) surface moves
    j = 0
    for ds in (-0.05, -0.025, 0.0, 0.025, 0.05):
        for dv, dz in ((-0.05, 0.0), (0.0, 0.0), (0.05, 0.0), (0.0, 0.02), (0.0, -0.02)):
            s0 = fwd * np.exp(-lim.rate * t)
            base = black_scholes_price(s0, strike, t, lim.rate, 0.0, sigma, is_call)
            # the skew move: +dz per 10 % of log-moneyness below the forward, -dz per 10 % above
            shocked_vol = np.maximum(sigma + dv - dz * np.log(strike / fwd) / 0.1, 0.01)
            shocked = black_scholes_price(s0 * (1 + ds), strike, t, lim.rate, 0.0, shocked_vol, is_call)
            expected = float(np.sum(qty * (shocked - base) * 100)) - 50.0 * 100.0 * ds
            assert pnl[j] == pytest.approx(expected, rel=1e-10, abs=1e-8)
            j += 1


def test_a_steeper_skew_hurts_a_short_otm_put_and_helps_a_short_otm_call() -> None:
    grid = StressGrid(StressLimits(spot_shock_pct=0.05, vol_shock_vol_pts=5.0, skew_shock_vol_pts=2.0))
    labels = grid.labels(False)
    steeper, flatter = labels.index("spot+0.0%/vol+0.0pt/skew+2.0pt"), labels.index("spot+0.0%/vol+0.0pt/skew-2.0pt")
    fwd, t, sigma = np.array([100.0]), np.array([0.1]), np.array([0.2])
    rows, short = np.array([0], dtype=np.int64), np.array([-1.0])
    put = scenario_pnl(grid, fwd, np.array([90.0]), t, sigma, np.array([False]), rows, short, 100.0)
    call = scenario_pnl(grid, fwd, np.array([110.0]), t, sigma, np.array([True]), rows, short, 100.0)
    assert put[steeper] < 0 < put[flatter]
    assert call[steeper] > 0 > call[flatter]


def test_the_stress_shifts_the_surface_not_the_legs_own_ivs() -> None:
    from risk.stress import usable_iv

    chain = SyntheticChain("SPY", 500.0, ny_ns(2026, 11, 16, 11, 0), [dt.date(2026, 12, 18)], [490.0, 500.0])
    rows = np.array([0, 1], dtype=np.int64)
    assert usable_iv(chain, rows) is chain.iv  # no surface: the legs' own IVs, no copy
    chain.surface_iv[:] = 0.31
    chain.surface_iv[1] = np.nan
    got = usable_iv(chain, rows)
    assert got[0] == 0.31 and got[1] == chain.iv[1]


def test_stress_adds_to_the_close_scenarios_only_for_same_day_legs() -> None:
    grid = StressGrid(StressLimits(to_close_spot_shock_pct=0.01))
    to_close = 3.0 / (24 * 365)
    args = (np.array([100.0]), np.array([100.0]), np.array([to_close]), np.array([0.2]), np.array([False]),
            np.array([0], dtype=np.int64), np.array([0.0]), np.array([-1.0]), 100.0, 0.0, 0.0)
    _, pnl = stress_pnl(grid, *args, to_close=to_close)
    assert pnl.shape == (grid.n_max,)
    base = float(black_scholes_price(100.0 * np.exp(-0.04 * to_close), 100.0, to_close, 0.04, 0.0, 0.2, False))
    # Short one ATM put: at the close with spot -1% it is worth its intrinsic value, 1.00.
    assert pnl[grid.n_grid] == pytest.approx(-(1.0 - base) * 100.0, rel=1e-9)
    _, pnl_far = stress_pnl(grid, *args[:2], np.array([0.2]), *args[3:], to_close=to_close)
    assert pnl_far.shape == (grid.n_grid,)


def test_stress_reports_nan_for_a_leg_without_iv() -> None:
    grid = StressGrid(StressLimits())
    _, pnl = stress_pnl(grid, np.array([100.0]), np.array([100.0]), np.array([0.1]), np.array([np.nan]),
                        np.array([True]), np.array([0], dtype=np.int64), np.array([0.0]), np.array([1.0]), 100.0,
                        0.0, 0.0)
    assert np.isnan(pnl).all()
