"""Constant-maturity ATM volatility, 25-delta risk reversal and butterfly, and term slope from published smiles.

Notation: k = ln(K / F) against each expiry's forward, w(k) the smile's total variance, T in years (365-day
calendar year, as ``greeks.calendar.year_fraction``), forward delta of a call N(d1) with
d1 = -k / sqrt(w) + sqrt(w) / 2. ATM is ATM-forward (k = 0).

Per published expiry (params not None, 0 < T finite) three total variances are read: w(0), and w at the strikes
whose forward call delta is 0.25 (the 25-delta call) and 0.75 (the 25-delta put, put delta -0.25), each found by
a safeguarded Newton solve on k. A constant maturity T* is then read between the two published expiries that
bracket it, linearly in total variance at each of the three points (w(T*) = w1 + (w2 - w1)(T* - T1)/(T2 - T1),
sigma = sqrt(w(T*) / T*)); that keeps total variance increasing where the surface is calendar-free. Outside the
published range the volatility is held flat: T* below the shortest expiry takes the shortest expiry's three
vols, T* beyond the longest the longest's (``TermMetrics.extrapolated`` says so).

RR25 = sigma(25d call) - sigma(25d put); BF25 = (sigma(25d call) + sigma(25d put)) / 2 - sigma(ATM); term
slope = ATM sigma at 90 days - ATM sigma at 30 days (positive: contango).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

from greeks.surface import PublishedSmile
from greeks.svi import SviParams, total_variance_and_slope

DAYS_PER_YEAR = 365.0
T_30D = 30.0 / DAYS_PER_YEAR
"""30 calendar days in years."""
T_90D = 90.0 / DAYS_PER_YEAR
"""90 calendar days in years."""
Z_25 = NormalDist().inv_cdf(0.25)
"""d1 of the 25-delta call, N(d1) = 0.25 (-0.6744897501960817); the 25-delta put has d1 = -Z_25."""
_K_TOL = 1e-12
_MAX_ITER = 60


class TenorVols(NamedTuple):
    """Implied vols at one constant maturity: ATM-forward, 25-delta call, 25-delta put; whether extrapolated."""

    atm: float
    call25: float
    put25: float
    extrapolated: bool


class TermMetrics(NamedTuple):
    """The surface summary at ``ts_ns``: 30-day ATM IV, RR25, BF25, term slope, and what they were read from."""

    ts_ns: int
    atm_iv_30d: float
    rr25: float
    bf25: float
    term_slope: float
    atm_iv_90d: float
    expiries: int
    """Published smiles used (params not None)."""
    extrapolated: bool
    """True when 30 or 90 days lies outside the published expiries (flat-vol extrapolation)."""


class _Point(NamedTuple):
    t: float
    w_atm: float
    w_call: float
    w_put: float


def _w(p: SviParams, k: float) -> float:
    return total_variance_and_slope(p, k)[0]


def _d1_and_slope(p: SviParams, k: float) -> tuple[float, float, float]:
    """(d1(k), d d1 / dk, w(k)); d1 NaN where w <= 0. Wing terms beyond the quoted range included."""
    w, w1 = total_variance_and_slope(p, k)
    if not w > 0.0:
        return math.nan, math.nan, w
    sw = math.sqrt(w)
    return -k / sw + 0.5 * sw, -1.0 / sw + k * w1 / (2.0 * w * sw) + w1 / (4.0 * sw), w


def strike_at_delta(p: SviParams, z: float) -> float:
    """k where the smile's forward call delta has d1 = ``z`` (N(d1) the delta); NaN if no root is bracketed.

    d1 falls with k on the smiles the fitter publishes; the root is bracketed by doubling steps from the
    flat-smile guess, then solved by Newton steps kept inside the bracket (bisection when a step leaves it).
    """
    w0 = _w(p, 0.0)
    if not w0 > 0.0:
        return math.nan
    k = -z * math.sqrt(w0) + 0.5 * w0  # exact for a flat smile of total variance w0
    f, _, _ = _d1_and_slope(p, k)
    if f != f:
        return math.nan
    f -= z
    if f == 0.0:
        return k
    step = max(math.sqrt(w0), 1e-3)
    sign = 1.0 if f > 0.0 else -1.0  # d1 too high: the root lies to the right
    lo = hi = k
    for _ in range(40):
        nxt = k + sign * step
        g, _, _ = _d1_and_slope(p, nxt)
        if g != g:
            return math.nan
        if (g - z) * f <= 0.0:
            lo, hi = (k, nxt) if sign > 0.0 else (nxt, k)
            break
        k = nxt
        step *= 2.0
    else:
        return math.nan
    x = 0.5 * (lo + hi)
    for _ in range(_MAX_ITER):
        g, dg, _ = _d1_and_slope(p, x)
        g -= z
        if g == 0.0:
            return x
        if g > 0.0:
            lo = x
        else:
            hi = x
        nxt = x - g / dg if dg < 0.0 else math.nan
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= _K_TOL * (1.0 + abs(x)):
            return nxt
        x = nxt
    return x


def _point(s: PublishedSmile) -> _Point:
    p = s.params
    assert p is not None
    kc = strike_at_delta(p, Z_25)
    kp = strike_at_delta(p, -Z_25)
    return _Point(s.t, _w(p, 0.0), _w(p, kc) if kc == kc else math.nan, _w(p, kp) if kp == kp else math.nan)


def _vol(w: float, t: float) -> float:
    return math.sqrt(w / t) if w > 0.0 else math.nan


def vols_at(smiles: Sequence[PublishedSmile], t_target: float) -> TenorVols | None:
    """ATM, 25-delta call and put vols at the constant maturity ``t_target`` (None: nothing published)."""
    usable = sorted((s for s in smiles if s.params is not None and 0.0 < s.t < math.inf), key=lambda s: s.t)
    return _vols_sorted(usable, t_target)


def _vols_sorted(usable: Sequence[PublishedSmile], t_target: float) -> TenorVols | None:
    if not usable:
        return None
    if t_target <= usable[0].t or t_target >= usable[-1].t:
        edge = usable[0] if t_target <= usable[0].t else usable[-1]
        p = _point(edge)
        exact = t_target == edge.t
        return TenorVols(_vol(p.w_atm, p.t), _vol(p.w_call, p.t), _vol(p.w_put, p.t), not exact)
    j = next(i for i, s in enumerate(usable) if s.t >= t_target)
    p1, p2 = _point(usable[j - 1]), _point(usable[j])
    lam = (t_target - p1.t) / (p2.t - p1.t)

    def interp(w1: float, w2: float) -> float:
        return _vol(w1 + lam * (w2 - w1), t_target)

    return TenorVols(interp(p1.w_atm, p2.w_atm), interp(p1.w_call, p2.w_call), interp(p1.w_put, p2.w_put), False)


def term_metrics(smiles: Sequence[PublishedSmile], ts_ns: int) -> TermMetrics | None:
    """The 30-day ATM IV, RR25, BF25 and the 90-30 day term slope of one surface (None: no published smile)."""
    usable = sorted((s for s in smiles if s.params is not None and 0.0 < s.t < math.inf), key=lambda s: s.t)
    v30 = _vols_sorted(usable, T_30D)
    v90 = _vols_sorted(usable, T_90D)
    if v30 is None or v90 is None:
        return None
    return TermMetrics(
        ts_ns=ts_ns,
        atm_iv_30d=v30.atm,
        rr25=v30.call25 - v30.put25,
        bf25=0.5 * (v30.call25 + v30.put25) - v30.atm,
        term_slope=v90.atm - v30.atm,
        atm_iv_90d=v90.atm,
        expiries=len(usable),
        extrapolated=v30.extrapolated or v90.extrapolated,
    )
