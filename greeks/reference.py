"""Slow, obviously correct oracle for the tests: Black-Scholes-Merton in 50-digit arithmetic (mpmath).

Straight from the textbook formulas, one option at a time; never used by the engine.
"""

from __future__ import annotations

from typing import NamedTuple

import mpmath as mp

mp.mp.dps = 50


class ReferenceGreeks(NamedTuple):
    """Price and Greeks of one option (units as in ``greeks.black``)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


def _d1_d2(spot: mp.mpf, strike: mp.mpf, t: mp.mpf, r: mp.mpf, q: mp.mpf, sigma: mp.mpf) -> tuple[mp.mpf, mp.mpf]:
    s = sigma * mp.sqrt(t)
    d1 = (mp.log(spot / strike) + (r - q + sigma**2 / 2) * t) / s
    return d1, d1 - s


def bsm(spot: float, strike: float, t: float, r: float, q: float, sigma: float, is_call: bool) -> ReferenceGreeks:
    """Price, delta, gamma, vega, theta (-dV/dT per year) and rho of a European option, to 50 digits."""
    S, K, T, R, Q, V = (mp.mpf(v) for v in (spot, strike, t, r, q, sigma))
    d1, d2 = _d1_d2(S, K, T, R, Q, V)
    dq, dr = mp.exp(-Q * T), mp.exp(-R * T)
    pdf = mp.npdf(d1)
    w = 1 if is_call else -1
    nd1, nd2 = mp.ncdf(w * d1), mp.ncdf(w * d2)
    price = w * (S * dq * nd1 - K * dr * nd2)
    delta = w * dq * nd1
    gamma = dq * pdf / (S * V * mp.sqrt(T))
    vega = S * dq * pdf * mp.sqrt(T)
    theta = -S * dq * pdf * V / (2 * mp.sqrt(T)) - w * R * K * dr * nd2 + w * Q * S * dq * nd1
    rho = w * K * T * dr * nd2
    return ReferenceGreeks(*(float(v) for v in (price, delta, gamma, vega, theta, rho)))


def bsm_price_mp(spot: float, strike: float, t: float, r: float, q: float, sigma: mp.mpf, is_call: bool) -> mp.mpf:
    """Price as an mpmath number (for root finding)."""
    S, K, T, R, Q = (mp.mpf(v) for v in (spot, strike, t, r, q))
    d1, d2 = _d1_d2(S, K, T, R, Q, mp.mpf(sigma))
    w = 1 if is_call else -1
    return w * (S * mp.exp(-Q * T) * mp.ncdf(w * d1) - K * mp.exp(-R * T) * mp.ncdf(w * d2))


def implied_vol(price: float, spot: float, strike: float, t: float, r: float, q: float, is_call: bool) -> float:
    """Volatility reproducing ``price`` exactly (bisection in 50 digits); NaN outside (intrinsic, maximum)."""
    target = mp.mpf(price)
    lo, hi = mp.mpf("1e-8"), mp.mpf(20)
    if not bsm_price_mp(spot, strike, t, r, q, lo, is_call) < target < bsm_price_mp(spot, strike, t, r, q, hi, is_call):
        return float("nan")
    for _ in range(200):
        mid = (lo + hi) / 2
        if bsm_price_mp(spot, strike, t, r, q, mid, is_call) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < mp.mpf("1e-30"):
            break
    return float((lo + hi) / 2)
