"""European price, IV and Greeks: against vollib, QuantLib, an mpmath oracle and finite differences."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import greeks
from greeks import reference
from greeks.status import ABOVE_MAX, BAD_INPUT, BELOW_INTRINSIC, EXPIRED, NO_TIME_VALUE, NOT_COMPUTED, OK

ql = pytest.importorskip("QuantLib")


def _grid(n: int, seed: int) -> dict[str, np.ndarray]:
    """Acceptance grid: spot 100, strikes 50..150, t 1h..2y, sigma 0.05..1.5, r 0.04, q 0..0.03."""
    rng = np.random.default_rng(seed)
    return {
        "spot": np.full(n, 100.0),
        "strike": rng.uniform(50.0, 150.0, n),
        "t": np.exp(rng.uniform(math.log(1.0 / (365.0 * 24.0)), math.log(2.0), n)),
        "r": np.full(n, 0.04),
        "q": rng.uniform(0.0, 0.03, n),
        "sigma": rng.uniform(0.05, 1.5, n),
        "is_call": rng.random(n) < 0.5,
    }


def _well_posed(price: np.ndarray, vega: np.ndarray) -> np.ndarray:
    """Rows whose volatility a float64 price pins down to better than 1e-10 (rounding of price / vega)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok: np.ndarray = (price > 1e-250) & (np.finfo(float).eps * price / vega < 1e-10)
    return ok


def test_implied_vol_matches_vollib_on_100k_seeded_grid() -> None:
    from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv

    g = _grid(100_000, seed=20240601)
    price = greeks.black_scholes_price(g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"])
    sigma, status = greeks.implied_vol(price, g["spot"], g["strike"], g["t"], g["r"], g["q"], g["is_call"])
    true_vega = greeks.black_scholes_greeks(
        g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"]
    ).vega
    disc = np.exp(-g["r"] * g["t"])
    fwd = g["spot"] * np.exp((g["r"] - g["q"]) * g["t"])
    intrinsic = disc * np.maximum(np.where(g["is_call"], fwd - g["strike"], g["strike"] - fwd), 0.0)
    quotable = price - intrinsic >= 0.005
    well_posed = _well_posed(price, true_vega)

    # Every well-posed row is solved; every solved row is a solution (never silently wrong).
    assert np.all(status[well_posed] == OK)
    ok = status == OK
    assert np.max(np.abs(sigma[ok] - g["sigma"][ok])) <= 1e-8
    assert np.all(np.isnan(sigma[~ok]))
    assert quotable.sum() > 45_000 and ok.sum() > 70_000  # the grid is mostly not degenerate

    theirs = np.full(price.shape, np.nan)
    for i in np.flatnonzero(well_posed):
        flag = "c" if g["is_call"][i] else "p"
        try:
            theirs[i] = vollib_iv(price[i], 100.0, g["strike"][i], g["t"][i], 0.04, g["q"][i], flag)
        except Exception:  # vollib raises on rows it cannot invert; those stay NaN and are excluded below
            continue
    compared = well_posed & np.isfinite(theirs)
    assert compared.sum() > 0.98 * well_posed.sum()
    diff = np.abs(sigma - theirs)
    assert np.max(diff[compared & quotable]) <= 1e-10
    assert np.max(diff[compared]) <= 1e-8


def test_implied_vol_matches_50_digit_oracle_where_time_value_is_quotable() -> None:
    g = _grid(40, seed=7)
    price = greeks.black_scholes_price(g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"])
    sigma, status = greeks.implied_vol(price, g["spot"], g["strike"], g["t"], g["r"], g["q"], g["is_call"], 0.005)
    for i in np.flatnonzero(status == OK):
        expected = reference.implied_vol(
            price[i], 100.0, g["strike"][i], g["t"][i], 0.04, g["q"][i], bool(g["is_call"][i])
        )
        assert sigma[i] == pytest.approx(expected, abs=1e-10)


def _quantlib_greeks(spot: float, strike: float, days: int, r: float, q: float, sigma: float, is_call: bool) -> Any:
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
        ql.EuropeanExercise(today + days),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return option.NPV(), option.delta(), option.gamma(), option.vega(), option.theta(), option.rho()


def test_greeks_match_quantlib_analytic_european_engine() -> None:
    rng = np.random.default_rng(11)
    n = 150
    strike = rng.uniform(70.0, 140.0, n)
    days = rng.integers(1, 730, n)
    q = rng.uniform(0.0, 0.03, n)
    sigma = rng.uniform(0.08, 1.0, n)
    is_call = rng.random(n) < 0.5
    t = days / 365.0
    ours = greeks.black_scholes_greeks(100.0, strike, t, 0.04, q, sigma, is_call)
    price = greeks.black_scholes_price(100.0, strike, t, 0.04, q, sigma, is_call)
    for i in range(n):
        npv, delta, gamma, vega, theta, rho = _quantlib_greeks(
            100.0, strike[i], int(days[i]), 0.04, q[i], sigma[i], bool(is_call[i])
        )
        # Relative 1e-9, with an absolute floor far below anything quotable for values that are nearly zero.
        assert price[i] == pytest.approx(npv, rel=1e-9, abs=1e-12)
        assert ours.delta[i] == pytest.approx(delta, rel=1e-9, abs=1e-13)
        assert ours.gamma[i] == pytest.approx(gamma, rel=1e-9, abs=1e-15)
        assert ours.vega[i] == pytest.approx(vega, rel=1e-9, abs=1e-11)
        assert ours.theta[i] == pytest.approx(theta, rel=1e-9, abs=1e-11)
        assert ours.rho[i] == pytest.approx(rho, rel=1e-9, abs=1e-11)


def test_greeks_match_50_digit_oracle() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        k, t, q, v = (
            rng.uniform(60, 150),
            rng.uniform(0.002, 2.0),
            rng.uniform(0, 0.03),
            rng.uniform(0.05, 1.5),
        )
        c = bool(rng.random() < 0.5)
        ref = reference.bsm(100.0, k, t, 0.04, q, v, c)
        ours = greeks.black_scholes_greeks(100.0, k, t, 0.04, q, v, c)
        price = float(greeks.black_scholes_price(100.0, k, t, 0.04, q, v, c))
        assert price == pytest.approx(ref.price, rel=1e-12, abs=1e-14)
        for name in ("delta", "gamma", "vega", "theta", "rho"):
            assert float(getattr(ours, name)) == pytest.approx(getattr(ref, name), rel=1e-11, abs=1e-14), name


def test_greeks_match_central_finite_differences_of_our_price() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    s = np.full(n, 100.0)
    k = rng.uniform(70.0, 140.0, n)
    t = rng.uniform(0.05, 2.0, n)
    r = np.full(n, 0.04)
    q = rng.uniform(0.0, 0.03, n)
    v = rng.uniform(0.1, 1.0, n)
    c = rng.random(n) < 0.5
    ours = greeks.black_scholes_greeks(s, k, t, r, q, v, c)

    def price(**kw: np.ndarray) -> np.ndarray:
        args = {"spot": s, "strike": k, "t": t, "r": r, "q": q, "sigma": v, "is_call": c} | kw
        return greeks.black_scholes_price(**args)

    h = 1e-3
    base = price()
    fd_delta = (price(spot=s + h) - price(spot=s - h)) / (2 * h)
    fd_gamma = (price(spot=s + h) - 2 * base + price(spot=s - h)) / (h * h)
    fd_vega = (price(sigma=v + 1e-5) - price(sigma=v - 1e-5)) / 2e-5
    fd_theta = -(price(t=t + 1e-5) - price(t=t - 1e-5)) / 2e-5
    fd_rho = (price(r=r + 1e-5) - price(r=r - 1e-5)) / 2e-5
    np.testing.assert_allclose(ours.delta, fd_delta, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.gamma, fd_gamma, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.vega, fd_vega, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(ours.theta, fd_theta, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.rho, fd_rho, rtol=1e-7, atol=1e-7)


def test_implied_vol_flags_each_ill_posed_case_with_nan() -> None:
    call = True
    # forward 100*exp(0.03*0.5) ~ 101.51; discounted intrinsic of the 90 call ~ 11.33; maximum = S exp(-q t).
    rows = [
        (5.0, 100.0, 90.0, 0.5, BELOW_INTRINSIC),
        (99.6, 100.0, 90.0, 0.5, ABOVE_MAX),
        (5.0, 100.0, 100.0, 0.0, EXPIRED),
        (5.0, 100.0, 100.0, -0.1, EXPIRED),
        (0.0, 100.0, 100.0, 0.5, BAD_INPUT),
        (-1.0, 100.0, 100.0, 0.5, BAD_INPUT),
        (math.nan, 100.0, 100.0, 0.5, BAD_INPUT),
        (5.0, math.inf, 100.0, 0.5, BAD_INPUT),
        (5.0, 100.0, 0.0, 0.5, BAD_INPUT),
        (5.0, -100.0, 100.0, 0.5, BAD_INPUT),
        (5.0, 100.0, 100.0, math.nan, BAD_INPUT),
    ]
    price, spot, strike, t, expected = (np.array(col) for col in zip(*rows, strict=True))
    sigma, status = greeks.implied_vol(price, spot, strike, t, 0.04, 0.01, call)
    assert status.tolist() == expected.tolist()
    assert np.all(np.isnan(sigma))
    res = greeks.implied_vol_and_greeks(price, spot, strike, t, 0.04, 0.01, call)
    assert res.status.tolist() == expected.tolist()
    assert all(np.all(np.isnan(a)) for a in res.greeks())
    _, bad_rate = greeks.implied_vol(5.0, 100.0, 100.0, 0.5, math.nan, 0.01, call)
    assert int(bad_rate) == BAD_INPUT


def test_min_time_value_flags_quotes_within_half_a_tick_of_intrinsic() -> None:
    intrinsic = 100.0 * math.exp(-0.01 * 0.1) - 80.0 * math.exp(-0.04 * 0.1)
    prices = np.array([intrinsic + 0.004, intrinsic + 0.006])
    _, status = greeks.implied_vol(prices, 100.0, 80.0, 0.1, 0.04, 0.01, True, min_time_value=0.005)
    assert status.tolist() == [NO_TIME_VALUE, OK]
    _, status = greeks.implied_vol(prices, 100.0, 80.0, 0.1, 0.04, 0.01, True)
    assert status.tolist() == [OK, OK]


def test_prices_at_bad_inputs_are_nan() -> None:
    out = greeks.black_scholes_price([100.0, -1.0, 100.0, 100.0], 100.0, [0.5, 0.5, 0.0, 0.5], 0.04, 0.0,
                                     [0.2, 0.2, 0.2, math.nan], True)  # fmt: skip
    assert math.isfinite(out[0]) and np.all(np.isnan(out[1:]))
    g = greeks.black_scholes_greeks(100.0, 100.0, 0.5, 0.04, 0.0, [0.2, 0.0, -0.1], True)
    assert math.isfinite(g.delta[0]) and np.all(np.isnan(g.delta[1:]))


def test_scalar_inputs_give_zero_dimensional_results() -> None:
    price = greeks.black_scholes_price(100.0, 100.0, 0.5, 0.04, 0.01, 0.2, False)
    sigma, status = greeks.implied_vol(price, 100.0, 100.0, 0.5, 0.04, 0.01, False)
    assert price.shape == () and sigma.shape == () and status.shape == ()
    assert float(sigma) == pytest.approx(0.2, abs=1e-14) and int(status) == OK


def test_fused_pass_writes_into_preallocated_output_and_respects_mask() -> None:
    n = 6
    strike = np.linspace(80.0, 120.0, n)
    sigma_true = np.linspace(0.15, 0.4, n)
    is_call = np.array([True, False] * 3)
    price = greeks.black_scholes_price(100.0, strike, 0.25, 0.04, 0.0, sigma_true, is_call)
    out = greeks.IvGreeks.empty(n)
    out.delta[:] = 7.0
    mask = np.array([True, False, True, False, True, False])
    res = greeks.implied_vol_and_greeks(price, 100.0, strike, 0.25, 0.04, 0.0, is_call, out=out, mask=mask)
    assert res is out
    np.testing.assert_allclose(out.sigma[mask], sigma_true[mask], atol=1e-13)
    assert np.all(out.status[mask] == OK) and np.all(out.status[~mask] == NOT_COMPUTED)
    assert np.all(out.delta[~mask] == 7.0)
    expected = greeks.black_scholes_greeks(100.0, strike, 0.25, 0.04, 0.0, sigma_true, is_call)
    np.testing.assert_allclose(out.delta[mask], expected.delta[mask], rtol=1e-11)

    gout = greeks.Greeks.empty(n)
    greeks.greeks_at_vol(100.0, strike, 0.25, 0.04, 0.0, sigma_true, is_call, out=gout, mask=~mask)
    np.testing.assert_allclose(gout.gamma[~mask], expected.gamma[~mask], rtol=1e-14)
    assert np.all(np.isnan(gout.gamma[mask]))


def test_parallel_kernels_agree_with_serial() -> None:
    g = _grid(5_000, seed=1)
    price = greeks.black_scholes_price(g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"])
    args = (price, g["spot"], g["strike"], g["t"], g["r"], g["q"], g["is_call"])
    a = greeks.implied_vol_and_greeks(*args)
    b = greeks.implied_vol_and_greeks(*args, parallel=True)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.sigma, b.sigma)
    np.testing.assert_array_equal(a.theta, b.theta)
    ga = greeks.greeks_at_vol(g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"], parallel=True)
    gb = greeks.greeks_at_vol(g["spot"], g["strike"], g["t"], g["r"], g["q"], g["sigma"], g["is_call"])
    np.testing.assert_array_equal(ga.rho, gb.rho)


def test_mask_of_wrong_length_is_rejected_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="mask has 2 rows"):
        greeks.implied_vol_and_greeks([1.0, 2.0, 3.0], 100.0, 100.0, 0.5, 0.04, 0.0, True, mask=[True, False])
