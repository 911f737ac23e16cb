"""American options under Black-Scholes-Merton: the Andersen-Lake-Offengelden method in Numba.

L. Andersen, M. Lake, D. Offengelden, "High-performance American option pricing", J. Comp. Finance 20(1),
2016. A put with continuous r and q (a call by McDonald-Schroder symmetry, C(S, K, r, q) = P(K, S, q, r)):

1. Exercise boundary B(tau) on n+1 Chebyshev-Lobatto nodes in sqrt(tau), interpolating
   H(z) = ln(B / X)^2 with X = B(0+) = K min(1, r/q), z = 2 sqrt(tau / T) - 1 (smooth in z).
2. Start from the QD+ approximation (Li 2005) solved by Halley's method at each node.
3. One Jacobi-Newton step then m - 1 plain fixed-point steps on B = K exp(-(r - q) tau) N(tau, B) / D(tau, B)
   (the form with Phi; the form with the densities when |r - q| < 0.001, where it is stable, as QuantLib's
   QdFpAmericanEngine chooses).
4. Early-exercise premium = integral over t in (0, T) of r K e^{-rt} Phi(-d-) - q S e^{-qt} Phi(-d+) at
   B(T - t).

Every integral is split in the middle with a square-root substitution at each end (u = w^2 near 0,
u = tau - w^2 near tau) and done by Gauss-Legendre on both halves: that removes the endpoint singularities that
make plain Gauss-Legendre (QuantLib's fast and accurate schemes) converge slowly, so the error left is that of
the boundary iteration. ``FAST`` (l=5 points per half, m=4, n=8, p=12) and ``ACCURATE`` (8, 8, 12, 16) are
sized from measured error against QuantLib's high-precision scheme (tests and bench/kernels.py).
Rows that are not solvable get NaN and a status code; the put double-boundary regime q < r < 0 (a call
with r < q < 0) is reported as BAD_INPUT.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from greeks.black import BoolArray, FloatArray, StatusArray, price_row
from greeks.special import DBL_EPSILON, ONE_OVER_SQRT_TWO, ONE_OVER_SQRT_TWO_PI
from greeks.status import BAD_INPUT, EXPIRED, OK


class AmericanScheme(NamedTuple):
    """Discretisation of the ALO method: quadrature nodes and weights on [-1, 1] and iteration counts."""

    fp_nodes: FloatArray
    fp_weights: FloatArray
    iterations: int
    chebyshev_nodes: int
    premium_nodes: FloatArray
    premium_weights: FloatArray


def make_scheme(l: int, m: int, n: int, p: int) -> AmericanScheme:
    """Scheme with l-point fixed-point quadrature, m iterations (1 Jacobi-Newton + m-1 plain), n+1 Chebyshev
    nodes and p-point premium quadrature."""
    if min(l, m, n, p) < 1:
        raise ValueError(f"scheme sizes must be positive, got l={l} m={m} n={n} p={p}")
    x_l, w_l = np.polynomial.legendre.leggauss(l)
    x_p, w_p = np.polynomial.legendre.leggauss(p)
    return AmericanScheme(x_l, w_l, m, n, x_p, w_p)


FAST = make_scheme(5, 4, 8, 12)
"""Max relative error about 2e-5 against QuantLib's high-precision scheme, ~50k prices/s; the default."""
ACCURATE = make_scheme(8, 8, 12, 16)
"""Max relative error about 1e-6; about three times slower than FAST."""


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _cdf(z: float) -> float:
    return 0.5 * math.erfc(-z * ONE_OVER_SQRT_TWO)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _pdf(z: float) -> float:
    return ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * z * z)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _x_max(k: float, r: float, q: float) -> float:
    """B(0+) of a put: K min(1, r/q)."""
    return k * min(1.0, r / (q if q != 0.0 else DBL_EPSILON))


# --- QD+ initial boundary (Li 2005), as in QuantLib's QdPlusBoundaryEvaluator ----------------------------


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _qd_plus_eval(s: float, k: float, r: float, q: float, sigma: float, tau: float) -> tuple[float, float, float]:
    """(f, f', f'') of the QD+ boundary equation for a put at asset level s."""
    sigma2 = sigma * sigma
    v = sigma * math.sqrt(tau)
    dr = math.exp(-r * tau)
    dq = math.exp(-q * tau)
    omega = 2.0 * (r - q) / sigma2
    root = math.sqrt((omega - 1.0) ** 2 + 8.0 * r / (sigma2 * (1.0 - dr)))
    lam = 0.5 * (-(omega - 1.0) - root)
    lam_prime = 2.0 * r / (sigma2 * (1.0 - dr) ** 2 * root)
    alpha = 2.0 * dr * r / (sigma2 * (2.0 * lam + omega - 1.0))
    beta = alpha * (1.0 / (1.0 - dr) + lam_prime / (2.0 * lam + omega - 1.0)) - lam
    s = max(DBL_EPSILON, s)
    dp = math.log(s * dq / (k * dr)) / v + 0.5 * v
    dm = dp - v
    phi_cdf_dp = _cdf(-dp)
    phi_cdf_dm = _cdf(-dm)
    phi_dp = _pdf(dp)
    npv = dr * k * phi_cdf_dm - s * dq * phi_cdf_dp
    theta = r * k * dr * phi_cdf_dm - q * s * dq * phi_cdf_dp - sigma2 * s / (2.0 * v) * dq * phi_dp
    charm = -dq * (phi_dp * ((r - q) / v - dm / (2.0 * tau)) + q * phi_cdf_dp)
    gap = k - s - npv
    if abs(gap) <= 1e-14 * k:
        f = (1.0 - dq * phi_cdf_dp) * s + alpha * theta / (dr * r)
    else:
        c0 = -beta - lam + alpha * theta / (dr * r * gap)
        f = (1.0 - dq * phi_cdf_dp) * s + (lam + c0) * gap
    fp = 1.0 - dq * phi_cdf_dp + dq / v * phi_dp + beta * (1.0 - dq * phi_cdf_dp) + alpha / (r * dr) * charm
    gamma = phi_dp * dq / (v * s)
    colour = gamma * (q + (r - q) * dp / v + (1.0 - dp * dm) / (2.0 * tau))
    fpp = dq * (phi_dp / (s * v) - phi_dp * dp / (s * v * v)) + beta * gamma + alpha / (r * dr) * colour
    return f, fp, fpp


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _qd_plus_boundary(k: float, r: float, q: float, sigma: float, tau: float, x_max: float) -> float:
    """QD+ put exercise boundary at time to maturity tau: Halley from x_max, bisection if it stalls."""
    if tau < DBL_EPSILON:
        return x_max
    x_min = DBL_EPSILON * 1e4 * x_max
    x = x_max
    converged = False
    for _ in range(10):
        f, fp, fpp = _qd_plus_eval(x, k, r, q, sigma, tau)
        if not (math.isfinite(f) and math.isfinite(fp) and fp != 0.0):
            break
        lf = f * fpp / (fp * fp)
        step = f / fp / (1.0 - 0.5 * lf)
        x_new = max(x_min, x - step)
        done = abs(x_new - x) < 0.5e-8
        x = x_new
        if done:
            converged = True
            break
    if converged and math.isfinite(x):
        return min(x, x_max)
    # Bracket [x_min, x_max] (f changes sign across the boundary) and bisect.
    lo, hi = x_min, x_max
    f_lo = _qd_plus_eval(lo, k, r, q, sigma, tau)[0]
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        f_mid = _qd_plus_eval(mid, k, r, q, sigma, tau)[0]
        if (f_mid > 0.0) == (f_lo > 0.0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
        if hi - lo < 1e-10 * x_max:
            break
    return 0.5 * (lo + hi)


# --- Chebyshev interpolation on Lobatto nodes z_j = -cos(j pi / N) -----------------------------------------


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _chebyshev_eval(coef: FloatArray, z: float) -> float:
    """Clenshaw sum of sum'' c_j T_j(z) (first and last terms halved)."""
    n = coef.shape[0] - 1
    z2 = 2.0 * z
    b1: float = 0.5 * coef[n]
    b2 = 0.0
    for j in range(n - 1, 0, -1):
        b0: float = coef[j] + z2 * b1 - b2
        b2 = b1
        b1 = b0
    result: float = 0.5 * coef[0] + z * b1 - b2
    return result


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _boundary(coef: FloatArray, tau: float, t_max: float, x_max: float) -> float:
    z = 2.0 * math.sqrt(abs(tau) / t_max) - 1.0
    h = _chebyshev_eval(coef, z)
    return x_max * math.exp(-math.sqrt(max(0.0, h)))


# --- fixed-point iteration on the boundary ---------------------------------------------------------------
#
# The integrals over u in (0, tau_j) are split at tau_j / 2: u = w^2 on the first half (B(u) is smooth in
# sqrt(u)) and u = tau_j - w^2 on the second (removes the sqrt(tau_j - u) singularity of d+-), Gauss-Legendre
# in w on both. Everything that does not depend on the iterate (u, sqrt(tau - u), the weights, e^{ru}, e^{qu}
# and the Chebyshev basis T_k(z(u))) is tabulated once per option, so an iteration costs a dot product, a
# square root and two normal CDFs per quadrature point: ln(b / B(u)) = ln(b / X) + sqrt(H(z(u))).


class _Work(NamedTuple):
    y: FloatArray
    coef: FloatArray
    taus: FloatArray
    u_sqrt_tm: FloatArray  # (nodes, points): sqrt(tau_j - u)
    u_weight: FloatArray  # quadrature weight times Jacobian
    u_eru: FloatArray
    u_equ: FloatArray
    basis: FloatArray  # (nodes, points, n+1): T_k(z(u)) with the end-term halving folded in
    cos_table: FloatArray  # (n+1, n+1): cos(j (n - k) pi / n) for the coefficient transform


def make_work(scheme: AmericanScheme) -> _Work:
    """Scratch arrays for one option at a time under ``scheme`` (reused across the rows of a batch)."""
    n = scheme.chebyshev_nodes
    pts = 2 * scheme.fp_nodes.shape[0]
    j = np.arange(n + 1)
    cos_table = np.cos(np.outer(j, n - j) * np.pi / n)
    return _Work(
        np.empty(n + 1), np.empty(n + 1), np.empty(n + 1),
        np.empty((n + 1, pts)), np.empty((n + 1, pts)), np.empty((n + 1, pts)), np.empty((n + 1, pts)),
        np.empty((n + 1, pts, n + 1)), cos_table,
    )  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _coefficients(y: FloatArray, cos_table: FloatArray, coef: FloatArray) -> None:
    n = y.shape[0] - 1
    for j in range(n + 1):
        acc = 0.5 * (y[0] * cos_table[j, 0] + y[n] * cos_table[j, n])
        for k in range(1, n):
            acc += y[k] * cos_table[j, k]
        coef[j] = 2.0 * acc / n


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _tabulate(
    t_max: float,
    r: float,
    q: float,
    xi: FloatArray,
    wi: FloatArray,
    taus: FloatArray,
    sqrt_tm: FloatArray,
    weight: FloatArray,
    eru: FloatArray,
    equ: FloatArray,
    basis: FloatArray,
) -> None:
    n = taus.shape[0] - 1
    L = xi.shape[0]
    for j in range(n + 1):
        tau = taus[j]
        hw = 0.5 * math.sqrt(0.5 * tau)
        for h in range(2):
            for i in range(L):
                e = h * L + i
                w = hw * xi[i] + hw
                if h == 0:
                    u = w * w
                    stm = math.sqrt(max(tau - u, 0.0))
                else:
                    u = tau - w * w
                    stm = w
                sqrt_tm[j, e] = stm
                weight[j, e] = hw * wi[i] * 2.0 * w
                eru[j, e] = math.exp(r * u)
                equ[j, e] = math.exp(q * u)
                z = 2.0 * math.sqrt(max(u, 0.0) / t_max) - 1.0
                t0 = 1.0
                t1 = z
                basis[j, e, 0] = 0.5
                for k in range(1, n + 1):
                    basis[j, e, k] = t1
                    t0, t1 = t1, 2.0 * z * t1 - t0
                basis[j, e, n] *= 0.5


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _fp_update(
    j: int,
    k: float,
    r: float,
    q: float,
    sigma: float,
    x_max: float,
    use_density_form: bool,
    newton: bool,
    y: FloatArray,
    coef: FloatArray,
    taus: FloatArray,
    sqrt_tm: FloatArray,
    weight: FloatArray,
    eru: FloatArray,
    equ: FloatArray,
    basis: FloatArray,
) -> float:
    """New boundary value at node j from the current interpolant (Jacobi-Newton when ``newton``)."""
    tau = taus[j]
    sqrt_tau = math.sqrt(tau)
    v = sigma * sqrt_tau
    ln_b_x = -math.sqrt(max(y[j], 0.0))  # ln(b / X) at the node itself
    b = x_max * math.exp(ln_b_x)
    mu = r - q
    dp = (ln_b_x + math.log(x_max / k) + mu * tau) / v + 0.5 * v
    dm = dp - v
    acc_n = 0.0
    acc_d = 0.0
    n_basis = coef.shape[0]
    for e in range(sqrt_tm.shape[1]):
        h = 0.0
        for m in range(n_basis):
            h += coef[m] * basis[j, e, m]
        stm = sqrt_tm[j, e]
        vv = sigma * stm
        if vv <= 0.0:
            continue
        ddp = (ln_b_x + math.sqrt(max(h, 0.0)) + mu * stm * stm) / vv + 0.5 * vv
        ddm = ddp - vv
        if use_density_form:
            acc_d += weight[j, e] * equ[j, e] * (_cdf(ddp) + _pdf(ddp) / vv)
            acc_n += weight[j, e] * eru[j, e] * _pdf(ddm) / vv
        else:
            acc_n += weight[j, e] * eru[j, e] * _cdf(ddm)
            acc_d += weight[j, e] * equ[j, e] * _cdf(ddp)
    if use_density_form:
        n_ = _pdf(dm) / v + r * acc_n
        d_ = _pdf(dp) / v + _cdf(dp) + q * acc_d
    else:
        n_ = _cdf(dm) + r * acc_n
        d_ = _cdf(dp) + q * acc_d
    alpha = k * math.exp(-mu * tau)
    fv: float = alpha * n_ / d_
    if not newton:
        return fv
    if use_density_form:
        dd = -_pdf(dp) * dp / (b * sigma * sigma * tau) + _pdf(dp) / (b * v)
        nd = -_pdf(dm) * dm / (b * sigma * sigma * tau)
    else:
        nd = _pdf(dm) / (b * v)
        dd = _pdf(dp) / (b * v)
    fd = alpha * (nd / d_ - dd * n_ / (d_ * d_))
    b_new: float = b - (fv - b) / (fd - 1.0)
    if not (b_new > 0.0 and math.isfinite(b_new)):
        return fv
    return b_new


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _premium_rate(
    s: float, k: float, r: float, q: float, sigma: float, t: float, coef: FloatArray, t_max: float, x_max: float
) -> float:
    """Rate of early-exercise value accrued at time t from now (integrand of the premium)."""
    b_t = _boundary(coef, t_max - t, t_max, x_max)
    v = sigma * math.sqrt(t)
    if v < DBL_EPSILON or b_t <= DBL_EPSILON:
        return 0.0
    dr = math.exp(-r * t)
    dq = math.exp(-q * t)
    dp = math.log(s * dq / (b_t * dr)) / v + 0.5 * v
    return r * k * dr * _cdf(-dp + v) - q * s * dq * _cdf(-dp)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _put_premium(
    s: float,
    k: float,
    t_max: float,
    r: float,
    q: float,
    sigma: float,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    y: FloatArray,
    coef: FloatArray,
    taus: FloatArray,
    sqrt_tm: FloatArray,
    weight: FloatArray,
    eru: FloatArray,
    equ: FloatArray,
    basis: FloatArray,
    cos_table: FloatArray,
) -> float:
    """Early-exercise premium of an American put (r > 0 assumed by the caller)."""
    n_cheb = y.shape[0] - 1
    x_max = _x_max(k, r, q)
    sqrt_t = math.sqrt(t_max)
    for j in range(n_cheb + 1):
        x = 0.5 * sqrt_t * (1.0 - math.cos(j * math.pi / n_cheb))
        taus[j] = x * x
    y[0] = 0.0
    for j in range(1, n_cheb + 1):
        b = _qd_plus_boundary(k, r, q, sigma, taus[j], x_max)
        lb = math.log(b / x_max) if b > 0.0 else -745.0
        y[j] = lb * lb
    _tabulate(t_max, r, q, fp_x, fp_w, taus, sqrt_tm, weight, eru, equ, basis)
    _coefficients(y, cos_table, coef)
    use_density_form = abs(r - q) < 0.001
    for it in range(iterations):
        for j in range(1, n_cheb + 1):
            fv = _fp_update(j, k, r, q, sigma, x_max, use_density_form, it == 0,
                            y, coef, taus, sqrt_tm, weight, eru, equ, basis)  # fmt: skip
            lb = math.log(fv / x_max) if fv > 0.0 else -745.0
            y[j] = lb * lb
        # Jacobi: all nodes see the previous interpolant, so the transform is refreshed after the sweep.
        _coefficients(y, cos_table, coef)
    # Premium = integral over t in (0, T) of r K e^{-rt} Phi(-d-) - q S e^{-qt} Phi(-d+) at B(T - t), split at
    # T/2 with t = z^2 and t = T - u^2 for the same reasons as above.
    half = 0.5 * math.sqrt(0.5 * t_max)
    total = 0.0
    for i in range(pr_x.shape[0]):
        w = half * pr_x[i] + half
        t_lo = w * w
        total += pr_w[i] * 2.0 * w * _premium_rate(s, k, r, q, sigma, t_lo, coef, t_max, x_max)
        total += pr_w[i] * 2.0 * w * _premium_rate(s, k, r, q, sigma, t_max - t_lo, coef, t_max, x_max)
    return max(0.0, half * total)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def american_row(
    spot: float,
    strike: float,
    t: float,
    r: float,
    q: float,
    sigma: float,
    is_call: bool,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
) -> tuple[float, float, int]:
    """(American price, early-exercise premium, status) of one option."""
    nan = math.nan
    if not (
        spot > 0.0
        and strike > 0.0
        and sigma > 0.0
        and math.isfinite(spot)
        and math.isfinite(strike)
        and math.isfinite(sigma)
        and math.isfinite(r)
        and math.isfinite(q)
        and math.isfinite(t)
    ):
        return nan, nan, BAD_INPUT
    if t <= 0.0:
        return nan, nan, EXPIRED
    european = price_row(spot, strike, t, r, q, sigma, is_call)
    # Put-call symmetry: a call is a put with spot and strike, r and q swapped.
    ps, pk, pr, pq = (strike, spot, q, r) if is_call else (spot, strike, r, q)
    # r t below 1e-12 bounds the premium by r K t, far below any price resolution.
    if pr * t < 1e-12:
        if not (pr >= 0.0 or pr <= pq):
            return nan, nan, BAD_INPUT  # double exercise boundary (q < r < 0 for the put): not supported
        eep = 0.0  # early exercise never optimal
    else:
        eep = _put_premium(
            ps, pk, t, pr, pq, sigma, fp_x, fp_w, iterations, pr_x, pr_w, work.y, work.coef, work.taus,
            work.u_sqrt_tm, work.u_weight, work.u_eru, work.u_equ, work.basis, work.cos_table,
        )  # fmt: skip
    price = european + eep
    if not math.isfinite(price):
        return nan, nan, BAD_INPUT  # outside the method's numerical domain (e.g. extreme r/sigma^2)
    intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    # Never below immediate exercise (rounding deep in the exercise region, or a European value a hair under).
    if price < intrinsic:
        price = intrinsic
        eep = intrinsic - european
    return price, eep, OK


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _american_kernel(
    spot: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    sigma: FloatArray,
    is_call: BoolArray,
    fp_x: FloatArray,
    fp_w: FloatArray,
    iterations: int,
    pr_x: FloatArray,
    pr_w: FloatArray,
    work: _Work,
    price: FloatArray,
    eep: FloatArray,
    status: StatusArray,
) -> None:
    for i in range(price.shape[0]):
        p, e, code = american_row(
            spot[i], strike[i], t[i], r[i], q[i], sigma[i], is_call[i], fp_x, fp_w, iterations, pr_x, pr_w, work
        )
        price[i] = p
        eep[i] = e
        status[i] = code


class AmericanResult(NamedTuple):
    """American price, early-exercise premium (price minus the European price) and status per row."""

    price: FloatArray
    eep: FloatArray
    status: StatusArray


def _broadcast(is_call: npt.ArrayLike, *args: npt.ArrayLike) -> tuple[tuple[int, ...], BoolArray, list[FloatArray]]:
    flags = np.asarray(is_call, dtype=np.bool_)
    arrays = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(flags.shape, *(a.shape for a in arrays))
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).reshape(-1) for a in arrays]
    return shape, np.ascontiguousarray(np.broadcast_to(flags, shape)).reshape(-1), flat


def american_price_and_premium(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    scheme: AmericanScheme = FAST,
) -> AmericanResult:
    """American prices with their early-exercise premiums and status codes (NaN where not OK)."""
    shape, c_, (s_, k_, t_, r_, q_, v_) = _broadcast(is_call, spot, strike, t, r, q, sigma)
    n = s_.shape[0]
    price = np.empty(n)
    eep = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    _american_kernel(s_, k_, t_, r_, q_, v_, c_, scheme.fp_nodes, scheme.fp_weights, scheme.iterations,
                     scheme.premium_nodes, scheme.premium_weights, make_work(scheme), price, eep, status)  # fmt: skip
    return AmericanResult(price.reshape(shape), eep.reshape(shape), status.reshape(shape))


def american_price(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    scheme: AmericanScheme = FAST,
) -> FloatArray:
    """Price American options (continuous r and q) by Andersen-Lake-Offengelden; NaN on invalid rows."""
    return american_price_and_premium(spot, strike, t, r, q, sigma, is_call, scheme).price


def early_exercise_premium(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    scheme: AmericanScheme = FAST,
) -> FloatArray:
    """American minus European price at the same inputs (>= 0); NaN on invalid rows."""
    return american_price_and_premium(spot, strike, t, r, q, sigma, is_call, scheme).eep
