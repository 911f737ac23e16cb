"""American implied volatility, American Greeks, and the book-level recipe that keeps both cheap.

``american_implied_vol``: one de-Americanisation step (European IV of the price less the premium at the
European IV) gives a start within a fraction of a vol point; a secant iteration on the ALO pricer, kept
inside a bracket (bisection when a step leaves it), then solves A(sigma) = price.

The book recipe (``book_implied_vol_and_greeks`` with an ``EepCache``): every row gets the European-
equivalent IV and Greeks from (mid - cached EEP), one fused kernel call; the cached EEP is refreshed only
for rows whose spot or time moved enough since it was computed; only rows whose EEP exceeds half a tick
get the exact American IV (and American Greeks by finite differences of the pricer), since below that the
premium cannot move the quote.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from greeks.american import FAST, AmericanScheme, _Work, american_row, make_work
from greeks.black import (
    PRICE_ROUNDING,
    SIGMA_RESOLUTION,
    BoolArray,
    FloatArray,
    Greeks,
    IvGreeks,
    StatusArray,
    greeks_row,
    implied_vol_and_greeks,
    implied_vol_row,
)
from greeks.status import ABOVE_MAX, BAD_INPUT, BELOW_INTRINSIC, EXPIRED, NO_TIME_VALUE, OK

SIGMA_MIN = 1e-4
SIGMA_MAX = 10.0
MAX_ITERATIONS = 40
PRICE_TOLERANCE = 1e-11
"""Stop when |A(sigma) - price| is below this fraction of the price (far below the pricer's own error)."""


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _identified(
    sigma: float,
    price: float,
    spot: float,
    strike: float,
    t: float,
    r: float,
    q: float,
    is_call: bool,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
) -> tuple[float, int]:
    """(sigma, OK) if the price pins sigma down, else (NaN, NO_TIME_VALUE).

    Where the American price barely depends on sigma (deep in the exercise region, or a time value that is
    carry rather than volatility) a wide range of sigma reproduces it and no volatility is identifiable. As
    in ``greeks.black``: rounding of the price must move sigma by less than SIGMA_RESOLUTION, with the
    American vega taken by a central difference of the pricer.
    """
    h = 1e-4 * sigma
    up = american_row(spot, strike, t, r, q, sigma + h, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
    down = american_row(spot, strike, t, r, q, sigma - h, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
    vega = (up - down) / (2.0 * h)
    if not (PRICE_ROUNDING * price <= SIGMA_RESOLUTION * vega) or sigma >= SIGMA_MAX * (1.0 - 1e-9):
        return math.nan, NO_TIME_VALUE
    return sigma, OK


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def american_iv_row(
    price: float,
    spot: float,
    strike: float,
    t: float,
    r: float,
    q: float,
    is_call: bool,
    min_time_value: float,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
) -> tuple[float, int]:
    """(sigma, status) such that the American price at sigma equals ``price``."""
    nan = math.nan
    if not (
        price > 0.0
        and spot > 0.0
        and strike > 0.0
        and math.isfinite(price)
        and math.isfinite(spot)
        and math.isfinite(strike)
        and math.isfinite(t)
        and math.isfinite(r)
        and math.isfinite(q)
    ):
        return nan, BAD_INPUT
    if t <= 0.0:
        return nan, EXPIRED
    intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    if price < intrinsic:
        return nan, BELOW_INTRINSIC
    # No-arbitrage maxima: S (S e^{-qt} when q < 0) for a call, K (K e^{-rt} when r < 0) for a put.
    if price >= (spot * max(1.0, math.exp(-q * t)) if is_call else strike * max(1.0, math.exp(-r * t))):
        return nan, ABOVE_MAX
    if price - intrinsic <= max(min_time_value, PRICE_ROUNDING * price):
        return nan, NO_TIME_VALUE

    def f(sigma: float) -> tuple[float, int]:
        a, _, code = american_row(spot, strike, t, r, q, sigma, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)
        return a - price, code

    # De-Americanisation: European IV of (price - EEP at the European IV).
    s0, c0 = implied_vol_row(price, spot, strike, t, r, q, is_call, 0.0)
    if c0 != OK:
        s0 = 0.3
    _, eep0, code = american_row(spot, strike, t, r, q, s0, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)
    if code != OK:
        return nan, code
    s1, c1 = implied_vol_row(price - eep0, spot, strike, t, r, q, is_call, 0.0)
    x0 = s1 if c1 == OK else s0
    x0 = min(max(x0, SIGMA_MIN), SIGMA_MAX)
    tol = PRICE_TOLERANCE * price
    lo, hi = SIGMA_MIN, SIGMA_MAX
    f0, _ = f(x0)
    if abs(f0) <= tol:
        return _identified(x0, price, spot, strike, t, r, q, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)
    if f0 < 0.0:
        lo = x0
    else:
        hi = x0
    # Second point: a Newton step with the European vega at x0 (the premium's vega is second order).
    vega = greeks_row(spot, strike, t, r, q, x0, is_call)[2]
    x1 = x0 - f0 / vega if vega > 0.0 else x0 * (1.2 if f0 < 0.0 else 0.8)
    if not (lo < x1 < hi):
        x1 = 0.5 * (lo + hi)
    for _ in range(MAX_ITERATIONS):
        f1, _ = f(x1)
        if abs(f1) <= tol:
            return _identified(x1, price, spot, strike, t, r, q, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work)
        if f1 < 0.0:
            lo = x1
        else:
            hi = x1
        if hi - lo <= 1e-13 * hi:
            break
        x2 = x1 - f1 * (x1 - x0) / (f1 - f0) if f1 != f0 else 0.5 * (lo + hi)
        if not (lo < x2 < hi) or not math.isfinite(x2):
            x2 = 0.5 * (lo + hi)
        x0, f0 = x1, f1
        x1 = x2
    if lo <= SIGMA_MIN * (1.0 + 1e-12):
        # Even the smallest volatility prices above the quote: its time value is below what exercise offers.
        return nan, NO_TIME_VALUE
    if hi - lo <= 1e-9 * hi:
        return _identified(
            0.5 * (lo + hi), price, spot, strike, t, r, q, is_call, fp_x, fp_w, iterations, pr_x, pr_w, work
        )
    return nan, NO_TIME_VALUE


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _american_iv_kernel(
    price: FloatArray,
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    mask: BoolArray,
    use_mask: bool,
    min_time_value: float,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
    sigma: FloatArray,
    status: StatusArray,
) -> None:
    for i in range(sigma.shape[0]):
        if use_mask and not mask[i]:
            continue
        s, c = american_iv_row(price[i], spot[i], strike[i], t[i], r[i], q[i], is_call[i], min_time_value,
                               fp_x, fp_w, iterations, pr_x, pr_w, work)  # fmt: skip
        sigma[i] = s
        status[i] = c


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _american_greeks_kernel(
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    mask: BoolArray,
    use_mask: bool,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in range(delta.shape[0]):
        if use_mask and not mask[i]:
            continue
        s, k, tt, rr, qq, v, c = spot[i], strike[i], t[i], r[i], q[i], sigma[i], is_call[i]
        # The ALO price is a smooth function of its inputs (fixed nodes and quadrature), so central
        # differences with small relative bumps are accurate to ~1e-8 relative.
        hs = 1e-4 * s
        hv = 1e-5
        ht = min(1e-5, 0.5 * tt)
        hr = 1e-5
        p0 = american_row(s, k, tt, rr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
        pu = american_row(s + hs, k, tt, rr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
        pd = american_row(s - hs, k, tt, rr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
        delta[i] = (pu - pd) / (2.0 * hs)
        gamma[i] = (pu - 2.0 * p0 + pd) / (hs * hs)
        vega[i] = (american_row(s, k, tt, rr, qq, v + hv, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
                   - american_row(s, k, tt, rr, qq, v - hv, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]) / (2.0 * hv)  # fmt: skip
        theta[i] = -(american_row(s, k, tt + ht, rr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
                     - american_row(s, k, tt - ht, rr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]) / (2.0 * ht)  # fmt: skip
        rho[i] = (american_row(s, k, tt, rr + hr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]
                  - american_row(s, k, tt, rr - hr, qq, v, c, fp_x, fp_w, iterations, pr_x, pr_w, work)[0]) / (2.0 * hr)  # fmt: skip


def _flat(is_call: npt.ArrayLike, *args: npt.ArrayLike) -> tuple[tuple[int, ...], BoolArray, list[FloatArray]]:
    flags = np.asarray(is_call, dtype=np.bool_)
    arrays = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(flags.shape, *(a.shape for a in arrays))
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).reshape(-1) for a in arrays]
    return shape, np.ascontiguousarray(np.broadcast_to(flags, shape)).reshape(-1), flat


def _mask(mask: npt.ArrayLike | None, n: int) -> tuple[BoolArray, bool]:
    if mask is None:
        return np.zeros(0, dtype=np.bool_), False
    m = np.ascontiguousarray(np.asarray(mask, dtype=np.bool_)).reshape(-1)
    if m.shape[0] != n:
        raise ValueError(f"mask has {m.shape[0]} rows, inputs have {n}")
    return m, True


def american_implied_vol(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
    min_time_value: float = 0.0,
    scheme: AmericanScheme = FAST,
) -> tuple[FloatArray, StatusArray]:
    """Volatility at which the American (ALO) price equals ``price``; returns ``(sigma, status)``.

    BELOW_INTRINSIC is against immediate exercise, max(+-(S - K), 0); ABOVE_MAX against S (call) or K (put).
    """
    shape, c_, (p_, s_, k_, t_, r_, q_) = _flat(is_call, price, spot, strike, t, r, q)
    n = p_.shape[0]
    sigma = np.full(n, np.nan)
    status = np.full(n, BAD_INPUT, dtype=np.int8)
    _american_iv_kernel(p_, s_, k_, t_, r_, q_, c_, np.zeros(0, dtype=np.bool_), False, float(min_time_value),
                        scheme.fp_nodes, scheme.fp_weights, scheme.iterations, scheme.premium_nodes,
                        scheme.premium_weights, make_work(scheme), sigma, status)  # fmt: skip
    return sigma.reshape(shape), status.reshape(shape)


def american_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    scheme: AmericanScheme = FAST,
    out: Greeks | None = None,
    mask: npt.ArrayLike | None = None,
) -> Greeks:
    """Greeks of American options (units as the European ones) by central differences of the ALO price.

    Nine prices per row: use for the rows where the premium matters, not for a whole chain per tick.
    """
    shape, c_, (s_, k_, t_, r_, q_, v_) = _flat(is_call, spot, strike, t, r, q, sigma)
    n = s_.shape[0]
    m_, use_mask = _mask(mask, n)
    res = Greeks.empty(n) if out is None else out
    _american_greeks_kernel(s_, k_, t_, r_, q_, v_, c_, m_, use_mask, scheme.fp_nodes, scheme.fp_weights,
                            scheme.iterations, scheme.premium_nodes, scheme.premium_weights, make_work(scheme),
                            *res)  # fmt: skip
    if out is None:
        return Greeks(*(a.reshape(shape) for a in res))
    return res


class EepCache:
    """Early-exercise premium per book row, with the spot and time it was computed at.

    The premium moves slowly with spot and time, so the book keeps it between frames and refreshes only the
    rows that moved more than ``spot_move`` (relative) or ``time_move`` (years) since the last computation.
    """

    def __init__(self, n: int, spot_move: float = 0.0025, time_move: float = 1.0 / (365.0 * 24.0)) -> None:
        self.eep: FloatArray = np.zeros(n)
        self.spot_ref: FloatArray = np.full(n, np.nan)
        self.t_ref: FloatArray = np.full(n, np.nan)
        self.spot_move = spot_move
        self.time_move = time_move

    def stale(self, spot: npt.ArrayLike, t: npt.ArrayLike) -> BoolArray:
        """Rows whose premium was never computed or whose spot or time moved past the thresholds."""
        s = np.broadcast_to(np.asarray(spot, dtype=np.float64), self.eep.shape)
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), self.eep.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            moved = (np.abs(s / self.spot_ref - 1.0) > self.spot_move) | (np.abs(tt - self.t_ref) > self.time_move)
        return np.asarray(moved | np.isnan(self.spot_ref), dtype=np.bool_)

    def refresh(
        self,
        spot: npt.ArrayLike,
        strike: npt.ArrayLike,
        t: npt.ArrayLike,
        r: npt.ArrayLike,
        q: npt.ArrayLike,
        sigma: npt.ArrayLike,
        is_call: npt.ArrayLike,
        mask: npt.ArrayLike,
        scheme: AmericanScheme = FAST,
    ) -> int:
        """Recompute the premium at ``sigma`` for the masked rows that have a finite sigma; return how many."""
        from greeks.american import american_price_and_premium

        n = self.eep.shape[0]
        s, k, tt, rr, qq, v = (
            np.broadcast_to(np.asarray(a, dtype=np.float64), (n,)) for a in (spot, strike, t, r, q, sigma)
        )
        c = np.broadcast_to(np.asarray(is_call, dtype=np.bool_), (n,))
        rows = np.flatnonzero(np.asarray(mask, dtype=np.bool_) & np.isfinite(v))
        if rows.size == 0:
            return 0
        res = american_price_and_premium(s[rows], k[rows], tt[rows], rr[rows], qq[rows], v[rows], c[rows], scheme)
        good = res.status == OK
        self.eep[rows] = np.where(good, res.eep, 0.0)
        self.spot_ref[rows] = np.where(good, s[rows], np.nan)
        self.t_ref[rows] = np.where(good, tt[rows], np.nan)
        return int(rows.size)


def book_implied_vol_and_greeks(
    mid: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
    eep: npt.ArrayLike,
    half_tick: float = 0.005,
    out: IvGreeks | None = None,
    mask: npt.ArrayLike | None = None,
    scheme: AmericanScheme = FAST,
) -> IvGreeks:
    """IV and Greeks for American quotes: European-equivalent from (mid - eep) everywhere, exact where it counts.

    Every (masked) row: IV and Greeks of the European option worth ``mid - eep`` (one fused kernel call;
    time value at or below ``half_tick`` flags NO_TIME_VALUE). Rows with ``eep > half_tick``: sigma and status
    from ``american_implied_vol`` on ``mid`` and American Greeks by differences of the pricer. ``eep`` comes
    from an ``EepCache``. Returns (and fills ``out`` if given) an ``IvGreeks`` of flat arrays.
    """
    _, c_, (m_, s_, k_, t_, r_, q_, e_) = _flat(is_call, mid, spot, strike, t, r, q, eep)
    n = m_.shape[0]
    mask_, use_mask = _mask(mask, n)
    res = implied_vol_and_greeks(
        m_ - e_, s_, k_, t_, r_, q_, c_, out=out, mask=mask_ if use_mask else None, min_time_value=half_tick
    )
    exact = e_ > half_tick
    if use_mask:
        exact &= mask_
    if exact.any():
        rows = np.flatnonzero(exact)
        sig, st = american_implied_vol(m_[rows], s_[rows], k_[rows], t_[rows], r_[rows], q_[rows], c_[rows],
                                       half_tick, scheme)  # fmt: skip
        res.sigma[rows] = sig
        res.status[rows] = st
        g = american_greeks(s_[rows], k_[rows], t_[rows], r_[rows], q_[rows], sig, c_[rows], scheme)
        for dst, src in zip(res.greeks(), g, strict=True):
            dst[rows] = src
    return res
