"""American exercise (Andersen-Lake-Offengelden): prices vs QuantLib's QdFp high-precision engine, American
IV round trips and flags, American Greeks vs QuantLib's finite-difference engine, and the book recipe."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greeks
from greeks.american_iv import EepCache, book_implied_vol_and_greeks

ql = pytest.importorskip("QuantLib")

TODAY = ql.Date(2, 1, 2024)
DAY_COUNT = ql.Actual365Fixed()


def _process(spot: float, r: float, q: float, sigma: float) -> Any:
    ql.Settings.instance().evaluationDate = TODAY
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, q, DAY_COUNT, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, r, DAY_COUNT, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), sigma, DAY_COUNT)),
    )


def _american(strike: float, days: int, is_call: bool) -> Any:
    return ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
        ql.AmericanExercise(TODAY, TODAY + days),
    )


def _ql_high_precision(spot: float, strike: float, days: int, r: float, q: float, sigma: float, is_call: bool) -> Any:
    option = _american(strike, days, is_call)
    option.setPricingEngine(
        ql.QdFpAmericanEngine(_process(spot, r, q, sigma), ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    return option.NPV()


@pytest.fixture(scope="module")
def grid() -> dict[str, np.ndarray]:
    """Puts and calls, q = 0 and q > 0, deep ITM to deep OTM, 1 day to 2 years, with QuantLib prices."""
    rng = np.random.default_rng(2016)
    n = 160
    g = {
        "strike": np.exp(rng.uniform(math.log(60.0), math.log(160.0), n)),
        "days": rng.integers(1, 730, n),
        "r": rng.uniform(0.0, 0.07, n),
        "q": np.where(rng.random(n) < 0.35, 0.0, rng.uniform(0.0, 0.05, n)),
        "sigma": rng.uniform(0.1, 1.0, n),
        "is_call": rng.random(n) < 0.5,
    }
    g["t"] = g["days"] / 365.0
    g["ref"] = np.array(
        [
            _ql_high_precision(
                100.0, g["strike"][i], int(g["days"][i]), g["r"][i], g["q"][i], g["sigma"][i], bool(g["is_call"][i])
            )
            for i in range(n)
        ]
    )
    return g


def _max_errors(g: dict[str, np.ndarray], scheme: greeks.AmericanScheme) -> tuple[float, float]:
    ours = greeks.american_price(100.0, g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"], scheme)
    quotable = g["ref"] >= 0.005  # relative error is meaningless below half a cent
    rel = np.abs(ours[quotable] / g["ref"][quotable] - 1.0)
    absolute = np.abs(ours[~quotable] - g["ref"][~quotable])
    return float(rel.max()), float(absolute.max(initial=0.0))


def test_grid_covers_the_acceptance_cases(grid: dict[str, np.ndarray]) -> None:
    eep = greeks.early_exercise_premium(100.0, grid["strike"], grid["t"], grid["r"], grid["q"], grid["sigma"],
                                        grid["is_call"])  # fmt: skip
    itm = np.where(grid["is_call"], grid["strike"] < 80.0, grid["strike"] > 125.0)
    otm = np.where(grid["is_call"], grid["strike"] > 125.0, grid["strike"] < 80.0)
    assert itm.sum() > 15 and otm.sum() > 15
    assert ((grid["q"] == 0.0) & ~grid["is_call"]).sum() > 10 and ((grid["q"] > 0.0) & grid["is_call"]).sum() > 20
    assert (eep > 0.01).sum() > 30  # the premium matters on a good part of the grid


def test_fast_scheme_is_within_5e_5_of_quantlib_high_precision(grid: dict[str, np.ndarray]) -> None:
    rel, absolute = _max_errors(grid, greeks.FAST)
    assert rel <= 5e-5
    assert absolute <= 1e-7


def test_accurate_scheme_is_within_3e_6_of_quantlib_high_precision(grid: dict[str, np.ndarray]) -> None:
    rel, absolute = _max_errors(grid, greeks.ACCURATE)
    assert rel <= 3e-6
    assert absolute <= 1e-8


def test_call_without_dividends_is_european_and_put_premium_is_positive() -> None:
    k = np.array([80.0, 100.0, 120.0])
    call = greeks.american_price_and_premium(100.0, k, 1.0, 0.05, 0.0, 0.3, True)
    np.testing.assert_array_equal(call.eep, 0.0)
    np.testing.assert_allclose(call.price, greeks.black_scholes_price(100.0, k, 1.0, 0.05, 0.0, 0.3, True), rtol=1e-15)
    put = greeks.american_price_and_premium(100.0, k, 1.0, 0.05, 0.0, 0.3, False)
    assert np.all(put.eep > 0.0) and np.all(np.diff(put.eep) > 0.0)


def test_bad_rows_are_flagged_not_raised() -> None:
    res = greeks.american_price_and_premium(
        [100.0, math.nan, 100.0, 100.0, 100.0], 100.0, [1.0, 1.0, 0.0, 1.0, 1.0], [0.05, 0.05, 0.05, -0.02, 0.05],
        [0.0, 0.0, 0.0, -0.05, 0.0], [0.3, 0.3, 0.3, 0.3, -0.1], False,
    )  # fmt: skip
    assert res.status.tolist() == [greeks.OK, greeks.BAD_INPUT, greeks.EXPIRED, greeks.BAD_INPUT, greeks.BAD_INPUT]
    assert np.isfinite(res.price[0]) and np.all(np.isnan(res.price[1:]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.floats(0.6, 1.6),
    st.floats(0.01, 2.0),
    st.floats(0.0, 0.08),
    st.floats(0.0, 0.06),
    st.floats(0.05, 1.2),
    st.booleans(),
)
def test_american_price_bounds_and_monotonicity(m: float, t: float, r: float, q: float, v: float, c: bool) -> None:
    k = 100.0 * m
    sig = np.array([v, v * 1.1])
    price = greeks.american_price(100.0, k, t, r, q, sig, c)
    euro = greeks.black_scholes_price(100.0, k, t, r, q, sig, c)
    intrinsic = max(100.0 - k, 0.0) if c else max(k - 100.0, 0.0)
    assert np.all(price >= euro - 1e-12 * k) and np.all(price >= intrinsic)
    assert price[1] >= price[0] * (1.0 - 5e-5)  # monotone up to the FAST scheme's error bound


def test_american_implied_vol_round_trips_and_flags() -> None:
    rng = np.random.default_rng(9)
    n = 60
    k = rng.uniform(70.0, 140.0, n)
    t = rng.uniform(0.05, 2.0, n)
    c = rng.random(n) < 0.5
    sig = rng.uniform(0.1, 0.8, n)
    price = greeks.american_price(100.0, k, t, 0.05, 0.02, sig, c)
    solved, status = greeks.american_implied_vol(price, 100.0, k, t, 0.05, 0.02, c, min_time_value=1e-4)
    ok = status == greeks.OK
    # Deep in-the-money puts inside the exercise region are worth exactly intrinsic: no time value to invert.
    time_value = price - np.where(c, np.maximum(100.0 - k, 0.0), np.maximum(k - 100.0, 0.0))
    np.testing.assert_array_equal(~ok, time_value <= 1e-4)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(solved[ok], sig[ok], atol=1e-8)
    flags = greeks.american_implied_vol(
        [5.0, 150.0, 20.0, 20.0000001, -1.0], 100.0, [80.0, 150.0, 120.0, 120.0, 100.0], [1.0, 1.0, 1.0, 1.0, 1.0],
        0.05, 0.0, [True, False, False, False, True], min_time_value=0.005,
    )[1]  # fmt: skip
    assert flags.tolist() == [
        greeks.BELOW_INTRINSIC, greeks.ABOVE_MAX, greeks.NO_TIME_VALUE, greeks.NO_TIME_VALUE, greeks.BAD_INPUT,
    ]  # fmt: skip


def test_american_greeks_match_quantlib_finite_difference_engine() -> None:
    for strike, is_call, q in ((110.0, False, 0.0), (95.0, True, 0.04)):
        option = _american(strike, 365, is_call)
        option.setPricingEngine(ql.FdBlackScholesVanillaEngine(_process(100.0, 0.05, q, 0.25), 800, 1600))
        ours = greeks.american_greeks(100.0, strike, 1.0, 0.05, q, 0.25, is_call, greeks.ACCURATE)
        assert float(ours.delta) == pytest.approx(option.delta(), abs=2e-4)
        assert float(ours.gamma) == pytest.approx(option.gamma(), rel=2e-3)
        assert float(ours.theta) == pytest.approx(option.theta(), rel=2e-3)


def test_book_recipe_uses_cached_premium_and_exact_iv_where_it_exceeds_half_a_tick() -> None:
    k = np.linspace(70.0, 130.0, 25)
    n = k.size * 2
    strike = np.concatenate([k, k])
    is_call = np.concatenate([np.ones(k.size, bool), np.zeros(k.size, bool)])
    sig = 0.2 + 0.2 * np.log(strike / 100.0) ** 2
    t, r, q = 0.5, 0.05, 0.01
    mid = greeks.american_price(100.0, strike, t, r, q, sig, is_call)
    cache = EepCache(n)
    assert cache.stale(100.0, t).all()

    first = book_implied_vol_and_greeks(mid, 100.0, strike, t, r, q, is_call, cache.eep)
    assert cache.refresh(100.0, strike, t, r, q, first.sigma, is_call, cache.stale(100.0, t)) > 0.9 * n
    assert not cache.stale(100.1, t + 1e-5).any() and cache.stale(101.0, t).all()

    second = book_implied_vol_and_greeks(mid, 100.0, strike, t, r, q, is_call, cache.eep)
    exact = cache.eep > 0.005
    assert exact.sum() >= 10
    ok = second.status == greeks.OK
    np.testing.assert_allclose(second.sigma[exact & ok], sig[exact & ok], atol=1e-8)
    # The only exact rows left unsolved sit in the exercise region: worth intrinsic, no time value.
    intrinsic = np.where(is_call, np.maximum(100.0 - strike, 0.0), np.maximum(strike - 100.0, 0.0))
    np.testing.assert_array_equal(exact & ~ok, exact & (mid - intrinsic <= 0.005))
    assert (exact & ok).sum() >= 10
    # Elsewhere the European-equivalent IV is off by at most what half a tick of premium can do.
    rest = ~exact & ok
    vega = greeks.black_scholes_greeks(100.0, strike, t, r, q, sig, is_call).vega
    assert np.all(np.abs(second.sigma[rest] - sig[rest]) <= 0.005 / vega[rest] + 1e-9)
