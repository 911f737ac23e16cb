"""Chain helper (OTM-side IV), parity forward, escrowed dividends and expiry year fractions."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import greeks
from greeks.calendar import YEAR_NS, CalendarRangeError, is_half_day
from greeks.chain import CALL_SIDE, PUT_SIDE

NY = ZoneInfo("America/New_York")


def _smile(k: np.ndarray) -> np.ndarray:
    return 0.2 + 0.3 * (np.log(k / 100.0)) ** 2


def test_chain_takes_sigma_from_the_otm_side_and_gives_both_sides_greeks() -> None:
    k = np.linspace(70.0, 130.0, 25)
    t, r, q = 0.25, 0.04, 0.01
    sig = _smile(k)
    call = greeks.black_scholes_price(100.0, k, t, r, q, sig, True)
    put = greeks.black_scholes_price(100.0, k, t, r, q, sig, False)
    # Corrupt the ITM side of every strike: the chain must not use it.
    fwd = 100.0 * math.exp((r - q) * t)
    call_q = np.where(k < fwd, call + 0.5, call)
    put_q = np.where(k >= fwd, put + 0.5, put)
    res = greeks.chain_implied_vol_and_greeks(call_q, put_q, k, 100.0, t, r, q)
    np.testing.assert_allclose(res.sigma, sig, atol=1e-12)
    assert np.all(res.side == np.where(k < fwd, PUT_SIDE, CALL_SIDE))
    assert np.all(res.status == greeks.OK)
    expected_put = greeks.black_scholes_greeks(100.0, k, t, r, q, sig, False)
    np.testing.assert_allclose(res.put.delta, expected_put.delta, rtol=1e-10)
    np.testing.assert_allclose(res.call.delta - res.put.delta, math.exp(-q * t), rtol=1e-12)


def test_chain_falls_back_to_the_itm_side_when_the_otm_quote_is_missing() -> None:
    k = np.array([90.0, 110.0])
    sig = np.array([0.25, 0.22])
    call = greeks.black_scholes_price(100.0, k, 0.5, 0.03, 0.0, sig, True)
    put = greeks.black_scholes_price(100.0, k, 0.5, 0.03, 0.0, sig, False)
    put[0] = np.nan  # the OTM side of the 90 strike
    call[1] = np.nan  # and of the 110 strike, and its ITM side is fine too
    res = greeks.chain_implied_vol_and_greeks(call, put, k, 100.0, 0.5, 0.03, 0.0)
    np.testing.assert_allclose(res.sigma, sig, atol=1e-12)
    assert res.side.tolist() == [CALL_SIDE, PUT_SIDE]
    both_missing = greeks.chain_implied_vol_and_greeks(np.nan, np.nan, 100.0, 100.0, 0.5, 0.03, 0.0)
    assert int(both_missing.status[0]) == greeks.BAD_INPUT and int(both_missing.side[0]) == 0
    assert np.isnan(both_missing.call.delta[0])


def test_parity_forward_recovers_the_forward_and_ignores_a_stale_wide_pair() -> None:
    k = np.arange(90.0, 111.0, 2.5)
    t, r, q = 0.5, 0.045, 0.012
    true_fwd = 100.0 * math.exp((r - q) * t)
    sig = _smile(k)
    call = greeks.black_scholes_price(100.0, k, t, r, q, sig, True)
    put = greeks.black_scholes_price(100.0, k, t, r, q, sig, False)
    half = 0.05
    cb, ca, pb, pa = call - half, call + half, put - half, put + half
    cb[4] += 3.0  # a stale, crossed-looking call quote near the money
    ca[4] += 3.0
    pb[5] -= 0.8  # a wide put quote
    pa[5] += 0.8
    # The fallback (q = 0) is wrong on purpose: parity must find the true carry.
    est = greeks.parity_forward(k, cb, ca, pb, pa, spot=100.0, t=t, r=r, q=0.0)
    assert est.from_parity and est.pairs_used >= 6
    assert est.forward == pytest.approx(true_fwd, abs=1e-9)
    q_hat = float(greeks.implied_carry(est.forward, 100.0, t, r))
    assert q_hat == pytest.approx(q, abs=1e-9)


def test_parity_forward_falls_back_to_carry_without_usable_pairs() -> None:
    nan = np.full(3, np.nan)
    est = greeks.parity_forward([95.0, 100.0, 105.0], nan, nan, nan, nan, spot=100.0, t=0.5, r=0.04, q=0.01)
    assert not est.from_parity and est.pairs_used == 0
    assert est.forward == pytest.approx(100.0 * math.exp(0.03 * 0.5), rel=1e-15)


def test_escrowed_dividends_reproduce_the_discrete_dividend_forward() -> None:
    t = np.array([0.1, 0.3, 1.0])
    div_t, div_amt = [0.2, 0.45, 0.7], [0.5, 0.5, 0.6]
    pv = np.array(
        [
            0.0,
            0.5 * math.exp(-0.04 * 0.2),
            sum(a * math.exp(-0.04 * x) for a, x in zip(div_amt, div_t, strict=True)),
        ]
    )
    np.testing.assert_allclose(greeks.escrowed_spot(100.0, t, 0.04, div_t, div_amt), 100.0 - pv, rtol=1e-15)
    fwd = greeks.forward_with_dividends(100.0, t, 0.04, div_t, div_amt)
    # Forward = S e^{rt} - sum of dividends compounded from ex-date to expiry.
    direct = [
        100.0 * math.exp(0.04 * x)
        - sum(a * math.exp(0.04 * (x - d)) for a, d in zip(div_amt, div_t, strict=True) if d <= x)
        for x in t
    ]
    np.testing.assert_allclose(fwd, direct, rtol=1e-14)
    with pytest.raises(ValueError, match="2 dividend times but 1 amounts"):
        greeks.escrowed_spot(100.0, 1.0, 0.04, [0.1, 0.2], [1.0])


def _ns(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, ss, tzinfo=NY).timestamp()) * 1_000_000_000


def test_expiry_is_the_close_at_16_et_and_13_et_on_half_days() -> None:
    assert greeks.expiry_close_ns(dt.date(2024, 11, 27)) == _ns(2024, 11, 27, 16, 0)
    assert greeks.expiry_close_ns(dt.date(2024, 11, 29)) == _ns(2024, 11, 29, 13, 0)  # day after Thanksgiving
    assert is_half_day(dt.date(2024, 11, 29)) and not is_half_day(dt.date(2024, 11, 27))
    assert greeks.expiry_close_ns(dt.date(2024, 7, 1)) == _ns(2024, 7, 1, 16, 0)
    # Good Friday 2024-03-29 has no session: the expiry trades out at Thursday's close.
    assert greeks.expiry_close_ns(dt.date(2024, 3, 29)) == _ns(2024, 3, 28, 16, 0)
    with pytest.raises(CalendarRangeError):
        greeks.expiry_close_ns(dt.date(1990, 1, 2))


def test_year_fraction_has_second_resolution_through_the_last_minutes_of_0dte() -> None:
    close = greeks.expiry_close_ns(dt.date(2022, 11, 2))
    now = np.array([_ns(2022, 11, 2, 9, 30), _ns(2022, 11, 2, 15, 59, 59), close, close + 60 * 10**9])
    t = greeks.year_fraction(now, close)
    assert t[0] == pytest.approx(6.5 * 3600 / (365 * 86400), rel=1e-15)
    assert t[1] == 10**9 / YEAR_NS
    assert t[2] == 0.0 and t[3] < 0.0
    # One second before the close a 0DTE ATM option still inverts; at the close it is EXPIRED.
    price = greeks.black_scholes_price(3800.0, 3800.0, t[1], 0.0, 0.0, 0.3, True)
    sigma, status = greeks.implied_vol(price, 3800.0, 3800.0, t[1:3], 0.0, 0.0, True)
    assert status.tolist() == [greeks.OK, greeks.EXPIRED]
    assert sigma[0] == pytest.approx(0.3, abs=1e-12)
    many = greeks.expiry_close_ns_many([dt.date(2022, 11, 2), dt.date(2022, 11, 4)])
    assert many.dtype == np.int64 and many[1] - many[0] == 2 * 86400 * 10**9


def test_escrowed_spot_prices_match_quantlib_discrete_dividend_engine() -> None:
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot, r, sigma = 100.0, 0.05, 0.25
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    ex_days, amounts = [40, 131, 222], [0.8, 0.8, 0.9]
    dividends = ql.DividendVector([today + d for d in ex_days], amounts)
    for days, strike, is_call in ((180, 105.0, True), (250, 95.0, False), (30, 100.0, True)):
        option = ql.VanillaOption(
            ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
            ql.EuropeanExercise(today + days),
        )
        option.setPricingEngine(ql.AnalyticDividendEuropeanEngine(process, dividends))
        t = days / 365.0
        s_star = float(greeks.escrowed_spot(spot, t, r, [d / 365.0 for d in ex_days], amounts))
        assert float(greeks.black_scholes_price(s_star, strike, t, r, 0.0, sigma, is_call)) == pytest.approx(
            option.NPV(), rel=1e-12
        )
        assert float(greeks.black_scholes_greeks(s_star, strike, t, r, 0.0, sigma, is_call).delta) == pytest.approx(
            option.delta(), rel=1e-12
        )
