"""Black-Scholes-Merton price, implied volatility and Greeks over whole arrays (one Numba call per batch).

Inputs: ``spot`` S, ``strike`` K, ``t`` years to expiry (calendar, see ``greeks.calendar``), ``r`` continuous
risk-free rate, ``q`` continuous dividend yield (or carry adjustment), ``sigma`` volatility per sqrt(year),
``is_call`` (bool). Forward F = S exp((r - q) t), discount D = exp(-r t).

Units of the Greeks (all per one option on one unit of the underlying, no contract multiplier):
- delta = dV/dS, gamma = d2V/dS2;
- vega = dV/dsigma per 1.00 of sigma (divide by 100 for "per vol point");
- theta = dV/dt per year of calendar time as time passes, i.e. -dV/dT (divide by 365 for per day);
- rho = dV/dr per 1.00 of r (spot held fixed, so the forward moves with r).

Every public function accepts numpy arrays or scalars (broadcast together) and returns arrays of the broadcast
shape. Rows that cannot be priced or inverted get NaN and a status code from ``greeks.status``; nothing raises
on bad numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from greeks.lets_be_rational import (
    IMPLIED_VOLATILITY_MAXIMUM_ITERATIONS,
    normalised_black,
    normalised_implied_volatility_otm_call,
    normalised_intrinsic,
    normalised_vega,
)
from greeks.special import DBL_EPSILON, DBL_MAX, ONE_OVER_SQRT_TWO, ONE_OVER_SQRT_TWO_PI
from greeks.status import (
    ABOVE_MAX,
    BAD_INPUT,
    BELOW_INTRINSIC,
    EXPIRED,
    NO_TIME_VALUE,
    NOT_COMPUTED,
    OK,
    STATUS_DTYPE,
)

FloatArray = npt.NDArray[np.float64]

SIGMA_RESOLUTION = 1e-9
"""Largest volatility error that rounding of the input price may cause before a row is flagged NO_TIME_VALUE."""
TINY_NORMALISED_PRICE = 1e-290
"""Normalised time value below which the price is treated as carrying no time value at all."""
PRICE_ROUNDING = 4.0 * DBL_EPSILON
"""Relative error assumed on an input price (its rounding plus the forward and discount factors)."""
BoolArray = npt.NDArray[np.bool_]
StatusArray = npt.NDArray[np.int8]


class Greeks(NamedTuple):
    """First- and second-order sensitivities as a struct of arrays (units in the module docstring)."""

    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray

    @classmethod
    def empty(cls, n: int) -> Greeks:
        """Preallocate NaN-filled output arrays for ``n`` rows (for the ``out=`` argument)."""
        return cls(*(np.full(n, np.nan) for _ in range(5)))


class IvGreeks(NamedTuple):
    """Implied volatility, its status and the Greeks at that volatility, as a struct of arrays."""

    sigma: FloatArray
    status: StatusArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray

    @classmethod
    def empty(cls, n: int) -> IvGreeks:
        """Preallocate outputs for ``n`` rows: NaN values and status NOT_COMPUTED."""
        return cls(
            np.full(n, np.nan),
            np.full(n, NOT_COMPUTED, dtype=STATUS_DTYPE),
            *(np.full(n, np.nan) for _ in range(5)),
        )

    def greeks(self) -> Greeks:
        """The Greeks part as a ``Greeks`` tuple (views, no copy)."""
        return Greeks(self.delta, self.gamma, self.vega, self.theta, self.rho)


# --- scalar cores --------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _phi(z: float) -> float:
    """Standard normal CDF via erfc (accurate relative error in both tails)."""
    return 0.5 * math.erfc(-z * ONE_OVER_SQRT_TWO)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _inputs_ok(spot: float, strike: float, t: float, r: float, q: float) -> bool:
    return (
        spot > 0.0
        and strike > 0.0
        and math.isfinite(spot)
        and math.isfinite(strike)
        and math.isfinite(t)
        and math.isfinite(r)
        and math.isfinite(q)
    )


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def price_row(spot: float, strike: float, t: float, r: float, q: float, sigma: float, is_call: bool) -> float:
    """Discounted BSM price of one option; NaN on bad input or at t <= 0."""
    if not _inputs_ok(spot, strike, t, r, q) or not (sigma >= 0.0) or not math.isfinite(sigma) or t <= 0.0:
        return math.nan
    theta = 1.0 if is_call else -1.0
    x = math.log(spot / strike) + (r - q) * t
    sqrt_fk = math.sqrt(spot * strike) * math.exp(0.5 * (r - q) * t)
    discount = math.exp(-r * t)
    s = sigma * math.sqrt(t)
    return discount * sqrt_fk * normalised_black(x, s, theta)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _greeks_core(
    spot: float,
    strike: float,
    t: float,
    sqrt_t: float,
    r: float,
    q: float,
    sigma: float,
    d1: float,
    dq: float,
    dr: float,
    is_call: bool,
) -> tuple[float, float, float, float, float]:
    """Greeks from d1 = ln(F/K)/(sigma sqrt t) + sigma sqrt(t)/2, dq = exp(-q t) and dr = exp(-r t)."""
    pdf = ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * d1 * d1)
    return _greeks_from_pdf(spot, strike, t, sqrt_t, r, q, sigma, d1, pdf, dq, dr, is_call)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _greeks_from_pdf(
    spot: float,
    strike: float,
    t: float,
    sqrt_t: float,
    r: float,
    q: float,
    sigma: float,
    d1: float,
    pdf: float,
    dq: float,
    dr: float,
    is_call: bool,
) -> tuple[float, float, float, float, float]:
    """``_greeks_core`` with the normal density at d1 already known."""
    s = sigma * sqrt_t
    d2 = d1 - s
    gamma = dq * pdf / (spot * s)
    vega = spot * dq * pdf * sqrt_t
    decay = -spot * dq * pdf * sigma / (2.0 * sqrt_t)
    if is_call:
        nd1 = _phi(d1)
        nd2 = _phi(d2)
        return dq * nd1, gamma, vega, decay - r * strike * dr * nd2 + q * spot * dq * nd1, strike * t * dr * nd2
    nd1 = _phi(-d1)
    nd2 = _phi(-d2)
    return -dq * nd1, gamma, vega, decay + r * strike * dr * nd2 - q * spot * dq * nd1, -strike * t * dr * nd2


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def greeks_row(
    spot: float, strike: float, t: float, r: float, q: float, sigma: float, is_call: bool
) -> tuple[float, float, float, float, float]:
    """(delta, gamma, vega, theta, rho) of one option at volatility sigma; NaNs on bad input."""
    nan = math.nan
    if not _inputs_ok(spot, strike, t, r, q) or not (sigma > 0.0) or not math.isfinite(sigma) or t <= 0.0:
        return nan, nan, nan, nan, nan
    sqrt_t = math.sqrt(t)
    d1 = (math.log(spot / strike) + (r - q) * t) / (sigma * sqrt_t) + 0.5 * sigma * sqrt_t
    return _greeks_core(spot, strike, t, sqrt_t, r, q, sigma, d1, math.exp(-q * t), math.exp(-r * t), is_call)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _implied_normalised(
    price: float, spot: float, strike: float, t: float, r: float, q: float, is_call: bool, min_time_value: float
) -> tuple[float, int, float, float, float, float]:
    """(s = sigma sqrt(t), status, x = ln(F/K), discount exp(-r t), sqrt(F K), db/ds at s) by Let's Be Rational.

    The last four are returned so the Greeks reuse them instead of recomputing exponentials.
    """
    nan = math.nan
    if not (_inputs_ok(spot, strike, t, r, q) and price > 0.0 and math.isfinite(price)):
        return nan, BAD_INPUT, nan, nan, nan, nan
    if t <= 0.0:
        return nan, EXPIRED, nan, nan, nan, nan
    x = math.log(spot / strike) + (r - q) * t
    sqrt_fk = math.sqrt(spot * strike) * math.exp(0.5 * (r - q) * t)
    discount = math.exp(-r * t)
    beta = price / (discount * sqrt_fk)
    theta = 1.0 if is_call else -1.0
    intrinsic = normalised_intrinsic(x, theta)
    if beta < intrinsic:
        return nan, BELOW_INTRINSIC, x, discount, sqrt_fk, nan
    # Maximum: F/sqrt(FK) = sqrt(FK)/K for a call, K/sqrt(FK) for a put (exp(theta x / 2) without an exp).
    b_max = sqrt_fk / strike if is_call else strike / sqrt_fk
    if beta >= b_max:
        return nan, ABOVE_MAX, x, discount, sqrt_fk, nan
    # Subnormal (or nearly so) prices carry too few bits to define a volatility.
    if beta - intrinsic < TINY_NORMALISED_PRICE or (beta - intrinsic) * discount * sqrt_fk <= min_time_value:
        return nan, NO_TIME_VALUE, x, discount, sqrt_fk, nan
    # Out-of-the-money equivalent (paper, section 2): strip the intrinsic value computed above, and use
    # b(x, s, -1) = b(-x, s, +1), so the inverse always sees a call with x <= 0.
    s = normalised_implied_volatility_otm_call(
        abs(max(beta - intrinsic, 0.0)), -abs(x), IMPLIED_VOLATILITY_MAXIMUM_ITERATIONS
    )
    if not (s > 0.0) or s >= DBL_MAX or not math.isfinite(s):
        # Time value below floating-point resolution of the price: no volatility is identifiable.
        return nan, NO_TIME_VALUE, x, discount, sqrt_fk, nan
    # One rounding of the input price moves sigma by about eps * beta / (db/ds) / sqrt(t); when that exceeds
    # SIGMA_RESOLUTION the time value is below what the price can carry and the "solution" is noise.
    vega_n = normalised_vega(x, s)
    if PRICE_ROUNDING * beta > SIGMA_RESOLUTION * math.sqrt(t) * vega_n:
        return nan, NO_TIME_VALUE, x, discount, sqrt_fk, nan
    return s, OK, x, discount, sqrt_fk, vega_n


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def implied_vol_row(
    price: float, spot: float, strike: float, t: float, r: float, q: float, is_call: bool, min_time_value: float
) -> tuple[float, int]:
    """(sigma, status) of one European option from its discounted price."""
    s, code, _, _, _, _ = _implied_normalised(price, spot, strike, t, r, q, is_call, min_time_value)
    if code != OK:
        return math.nan, code
    return s / math.sqrt(t), OK


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _iv_then_greeks_row(
    price: float,
    spot: float,
    strike: float,
    t: float,
    r: float,
    q: float,
    is_call: bool,
    min_time_value: float,
    with_greeks: bool,
) -> tuple[float, int, float, float, float, float, float]:
    """``iv_greeks_row``, with the Greeks left NaN when ``with_greeks`` is False (one compiled body for both)."""
    s, code, x, discount, sqrt_fk, vega_n = _implied_normalised(price, spot, strike, t, r, q, is_call, min_time_value)
    nan = math.nan
    if code != OK:
        return nan, code, nan, nan, nan, nan, nan
    sqrt_t = math.sqrt(t)
    sigma = s / sqrt_t
    if not with_greeks:
        return sigma, OK, nan, nan, nan, nan, nan
    # exp(-q t) = exp(-r t) F / S with F = sqrt(F K)^2 / K; phi(d1) = (db/ds) exp(-x/2) = (db/ds) K / sqrt(F K).
    dq = discount * (sqrt_fk * (sqrt_fk / strike)) / spot
    pdf = vega_n * (strike / sqrt_fk)
    g = _greeks_from_pdf(spot, strike, t, sqrt_t, r, q, sigma, x / s + 0.5 * s, pdf, dq, discount, is_call)
    return sigma, OK, g[0], g[1], g[2], g[3], g[4]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def iv_greeks_row(
    price: float, spot: float, strike: float, t: float, r: float, q: float, is_call: bool, min_time_value: float
) -> tuple[float, int, float, float, float, float, float]:
    """(sigma, status, delta, gamma, vega, theta, rho), reusing the inversion's logs and exponentials."""
    return _iv_then_greeks_row(price, spot, strike, t, r, q, is_call, min_time_value, True)


# --- array kernels -------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _price_kernel(
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    out: FloatArray,
) -> None:
    for i in range(out.shape[0]):
        out[i] = price_row(spot[i], strike[i], t[i], r[i], q[i], sigma[i], is_call[i])


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _greeks_at(
    i: int,
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    g = greeks_row(spot[i], strike[i], t[i], r[i], q[i], sigma[i], is_call[i])
    delta[i] = g[0]
    gamma[i] = g[1]
    vega[i] = g[2]
    theta[i] = g[3]
    rho[i] = g[4]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _greeks_kernel(
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    mask: BoolArray,
    use_mask: bool,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    # Rows of one expiry share (t, r, q): carry sqrt(t) and the two discount factors from the previous row.
    last_t = math.nan
    last_r = math.nan
    last_q = math.nan
    sqrt_t = dq = dr = math.nan
    nan = math.nan
    for i in range(delta.shape[0]):
        if use_mask and not mask[i]:
            continue
        ti, ri, qi, si, ki, vi = t[i], r[i], q[i], spot[i], strike[i], sigma[i]
        if not (_inputs_ok(si, ki, ti, ri, qi) and vi > 0.0 and math.isfinite(vi) and ti > 0.0):
            delta[i] = gamma[i] = vega[i] = theta[i] = rho[i] = nan
            continue
        if ti != last_t or ri != last_r or qi != last_q:
            last_t, last_r, last_q = ti, ri, qi
            sqrt_t = math.sqrt(ti)
            dq = math.exp(-qi * ti)
            dr = math.exp(-ri * ti)
        d1 = (math.log(si / ki) + (ri - qi) * ti) / (vi * sqrt_t) + 0.5 * vi * sqrt_t
        g = _greeks_core(si, ki, ti, sqrt_t, ri, qi, vi, d1, dq, dr, is_call[i])
        delta[i] = g[0]
        gamma[i] = g[1]
        vega[i] = g[2]
        theta[i] = g[3]
        rho[i] = g[4]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, parallel=True)
def _greeks_kernel_parallel(
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    mask: BoolArray,
    use_mask: bool,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in prange(delta.shape[0]):
        if not use_mask or mask[i]:
            _greeks_at(i, spot, strike, t, r, q, sigma, is_call, delta, gamma, vega, theta, rho)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _iv_greeks_at(
    i: int,
    price: FloatArray,
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    is_call: BoolArray,
    min_time_value: float,
    with_greeks: bool,
    sigma: FloatArray,
    status: StatusArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    g = _iv_then_greeks_row(price[i], spot[i], strike[i], t[i], r[i], q[i], is_call[i], min_time_value, with_greeks)
    sigma[i] = g[0]
    status[i] = g[1]
    if not with_greeks:
        return
    delta[i] = g[2]
    gamma[i] = g[3]
    vega[i] = g[4]
    theta[i] = g[5]
    rho[i] = g[6]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _iv_greeks_kernel(
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
    with_greeks: bool,
    sigma: FloatArray,
    status: StatusArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in range(sigma.shape[0]):
        if not use_mask or mask[i]:
            _iv_greeks_at(
                i,
                price,
                spot,
                strike,
                t,
                r,
                q,
                is_call,
                min_time_value,
                with_greeks,
                sigma,
                status,
                delta,
                gamma,
                vega,
                theta,
                rho,
            )


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, parallel=True)
def _iv_greeks_kernel_parallel(
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
    with_greeks: bool,
    sigma: FloatArray,
    status: StatusArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
    rho: FloatArray,
) -> None:
    for i in prange(sigma.shape[0]):
        if not use_mask or mask[i]:
            _iv_greeks_at(
                i,
                price,
                spot,
                strike,
                t,
                r,
                q,
                is_call,
                min_time_value,
                with_greeks,
                sigma,
                status,
                delta,
                gamma,
                vega,
                theta,
                rho,
            )


iv_greeks_kernel = _iv_greeks_kernel
iv_greeks_at = _iv_greeks_at
"""One row of ``iv_greeks_kernel`` (row ``i`` of the arrays, in place), for callers' own compiled loops."""
"""The fused kernel itself, for callers that hold flat contiguous arrays and want no wrapper at all:
``iv_greeks_kernel(price, spot, strike, t, r, q, is_call, mask, use_mask, min_time_value, with_greeks,
sigma, status, delta, gamma, vega, theta, rho)`` (all arrays of one length; ``mask`` may be empty when
``use_mask`` is False). Keep this signature stable: the engine's book calls it per frame."""

# --- public API ----------------------------------------------------------------------------------------------

_NO_MASK: BoolArray = np.zeros(0, dtype=np.bool_)


def _all_flat(is_call: object, args: tuple[object, ...]) -> bool:
    if not (type(is_call) is np.ndarray and is_call.dtype == np.bool_ and is_call.ndim == 1):
        return False
    n = is_call.shape[0]
    if not is_call.flags.c_contiguous:
        return False
    for a in args:
        if not (
            type(a) is np.ndarray and a.dtype == np.float64 and a.ndim == 1 and a.shape[0] == n and a.flags.c_contiguous
        ):
            return False
    return True


def _prepare(is_call: npt.ArrayLike, *args: npt.ArrayLike) -> tuple[tuple[int, ...], BoolArray, list[FloatArray]]:
    """Broadcast inputs together; return the shape, flat bool ``is_call`` and flat contiguous float64 arrays.

    Arrays that are already flat, contiguous and of the right dtype pass through without a copy.
    """
    if _all_flat(is_call, args):
        # Fast path for the book's per-frame call: everything already flat, contiguous, same length.
        flat_args = cast(list[FloatArray], list(args))
        return flat_args[0].shape, cast(BoolArray, is_call), flat_args
    flags = np.asarray(is_call, dtype=np.bool_)
    arrays = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(flags.shape, *(a.shape for a in arrays))
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).reshape(-1) for a in arrays]
    return shape, np.ascontiguousarray(np.broadcast_to(flags, shape)).reshape(-1), flat


def _as_mask(mask: npt.ArrayLike | None, n: int) -> tuple[BoolArray, bool]:
    if mask is None:
        return _NO_MASK, False
    m = np.ascontiguousarray(np.asarray(mask, dtype=np.bool_)).reshape(-1)
    if m.shape[0] != n:
        raise ValueError(f"mask has {m.shape[0]} rows, inputs have {n}")
    return m, True


def black_scholes_price(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    """Price European options under Black-Scholes-Merton (discounted, per unit of underlying); NaN if invalid."""
    shape, c_, (s_, k_, t_, r_, q_, v_) = _prepare(is_call, spot, strike, t, r, q, sigma)
    out = np.empty(s_.shape[0])
    _price_kernel(s_, k_, t_, r_, q_, v_, c_, out)
    return out.reshape(shape)


def greeks_at_vol(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    out: Greeks | None = None,
    mask: npt.ArrayLike | None = None,
    parallel: bool = False,
) -> Greeks:
    """Compute the five Greeks at given volatilities (the pass for ticks where only the underlying moved).

    With ``mask``, only rows where it is True are written; the others keep the contents of ``out`` (NaN in a
    fresh output). ``out`` must hold flat float64 arrays of the input length. Rows with bad input get NaN.
    """
    shape, c_, (s_, k_, t_, r_, q_, v_) = _prepare(is_call, spot, strike, t, r, q, sigma)
    n = s_.shape[0]
    m_, use_mask = _as_mask(mask, n)
    res = Greeks.empty(n) if out is None else out
    kernel = _greeks_kernel_parallel if parallel else _greeks_kernel
    kernel(s_, k_, t_, r_, q_, v_, c_, m_, use_mask, *res)
    if out is None:
        return Greeks(*(a.reshape(shape) for a in res))
    return res


def black_scholes_greeks(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> Greeks:
    """Compute delta, gamma, vega (per 1.00 sigma), theta (per year, -dV/dT) and rho (per 1.00 r)."""
    return greeks_at_vol(spot, strike, t, r, q, sigma, is_call)


def implied_vol(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
    min_time_value: float = 0.0,
) -> tuple[FloatArray, StatusArray]:
    """Invert European prices to volatilities to machine precision; returns ``(sigma, status)``.

    ``min_time_value`` (currency units) flags rows whose time value is not above it as NO_TIME_VALUE; pass half
    a tick for market quotes. Rows that are not OK have NaN sigma.
    """
    res = implied_vol_and_greeks(price, spot, strike, t, r, q, is_call, min_time_value=min_time_value, greeks=False)
    return res.sigma, res.status


def implied_vol_and_greeks(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
    out: IvGreeks | None = None,
    mask: npt.ArrayLike | None = None,
    min_time_value: float = 0.0,
    parallel: bool = False,
    greeks: bool = True,
) -> IvGreeks:
    """Implied volatility and the five Greeks at it, fused in one pass over the rows (the book's per-frame call).

    ``out``: preallocated ``IvGreeks`` of flat arrays (see ``IvGreeks.empty``) written in place and returned.
    ``mask``: only rows where True are computed; other rows of ``out`` are left untouched (status NOT_COMPUTED
    and NaN in a fresh output). ``min_time_value``: see ``implied_vol``. ``parallel``: use all cores (prange).
    ``greeks=False`` skips the Greeks (their arrays are then left untouched).
    """
    shape, c_, (p_, s_, k_, t_, r_, q_) = _prepare(is_call, price, spot, strike, t, r, q)
    n = p_.shape[0]
    m_, use_mask = _as_mask(mask, n)
    res = IvGreeks.empty(n) if out is None else out
    kernel = _iv_greeks_kernel_parallel if parallel else _iv_greeks_kernel
    kernel(p_, s_, k_, t_, r_, q_, c_, m_, use_mask, float(min_time_value), greeks, *res)
    if out is None:
        return IvGreeks(res.sigma.reshape(shape), res.status.reshape(shape), *(a.reshape(shape) for a in res.greeks()))
    return res
