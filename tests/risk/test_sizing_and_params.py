"""Position sizing, hot/cold config diffs and the order-rate budget."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.params import apply_hot, cold_fields, diff_params, hot_fields
from risk.limits import RiskLimits, StressLimits
from risk.rate import RateBudget
from risk.sizing import fixed_fractional_qty, fractional_kelly_qty, kelly_fraction


def test_fixed_fractional_risks_at_most_the_fraction() -> None:
    assert fixed_fractional_qty(100_000, 0.02, 380.0) == 5  # 2,000 / 380 = 5.26
    assert fixed_fractional_qty(100_000, 0.02, 400.0) == 5
    assert fixed_fractional_qty(100_000, 0.02, 2_500.0) == 0
    assert fixed_fractional_qty(100_000, 0.02, 100.0, max_qty=7) == 7
    assert fixed_fractional_qty(100_000, 0.02, math.inf) == 0
    assert fixed_fractional_qty(-5, 0.02, 100.0) == 0


@given(st.floats(1e3, 1e7), st.floats(0.001, 0.2), st.floats(1.0, 1e5))
def test_fixed_fractional_never_exceeds_budget(equity: float, frac: float, loss: float) -> None:
    q = fixed_fractional_qty(equity, frac, loss)
    assert q * loss <= equity * frac * (1 + 1e-9)
    assert (q + 1) * loss > equity * frac * (1 - 1e-9)


def test_kelly_fraction_matches_the_closed_form() -> None:
    # Win 1 with p = 0.6, lose 1: f* = 0.6 - 0.4 = 0.2.
    assert kelly_fraction(0.6, 1.0, 1.0) == pytest.approx(0.2)
    # Condor-like: win 120 with p = 0.8, lose 380: f* = 0.8 - 0.2 / (120/380).
    assert kelly_fraction(0.8, 120.0, 380.0) == pytest.approx(0.8 - 0.2 * 380 / 120)
    assert kelly_fraction(0.5, 1.0, 1.0) == 0.0  # no edge
    assert kelly_fraction(0.7, 120.0, 380.0) == 0.0  # negative edge is not a short bet
    assert kelly_fraction(1.5, 1.0, 1.0) == 0.0


def test_fractional_kelly_sizes_on_max_loss_and_caps_risk() -> None:
    f = kelly_fraction(0.6, 100.0, 100.0) * 0.25  # 0.05
    assert fractional_kelly_qty(100_000, 0.6, 100.0, 100.0, 0.25) == math.floor(100_000 * f / 100.0 + 1e-9)
    assert fractional_kelly_qty(100_000, 0.9, 100.0, 100.0, 1.0, max_risk_fraction=0.01) == 10
    assert fractional_kelly_qty(100_000, 0.5, 100.0, 100.0) == 0


def test_risk_limits_diff_splits_hot_and_cold() -> None:
    old = RiskLimits()
    new = msgspec.structs.replace(old, max_spread_pct=0.5, max_legs=2, stress=StressLimits(max_loss_usd=1.0))
    hot, cold = diff_params(old, new)
    assert set(hot) == {"max_spread_pct", "stress"} and cold == {"max_legs": 2}
    merged, cold2 = apply_hot(old, new)
    assert merged.max_spread_pct == 0.5 and merged.max_legs == old.max_legs and cold2 == cold
    assert "max_legs" in cold_fields(RiskLimits) and "max_spread_pct" in hot_fields(RiskLimits)


def test_risk_limits_reject_unknown_and_out_of_range_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_sprad_pct"):
        msgspec.convert({"max_sprad_pct": 0.1}, RiskLimits)
    with pytest.raises(msgspec.ValidationError, match=r"stress.spot_shock_pct"):
        msgspec.convert({"stress": {"spot_shock_pct": 2.0}}, RiskLimits)
    with pytest.raises(msgspec.ValidationError, match="max_legs"):
        msgspec.convert({"max_legs": 5}, RiskLimits)


def test_rate_budget_enforces_per_second_and_per_minute_caps() -> None:
    s = 1_000_000_000
    rb = RateBudget()
    for i in range(3):
        assert rb.allows(i, per_minute=5, per_second=3)
        rb.record(i)
    assert not rb.allows(10, per_minute=5, per_second=3)
    assert rb.allows(s + 10, per_minute=5, per_second=3)
    rb.record(s + 10)
    rb.record(s + 11)
    assert not rb.allows(2 * s, per_minute=5, per_second=3)  # 5 within the minute
    assert rb.allows(61 * s, per_minute=5, per_second=3)  # the first three aged out
