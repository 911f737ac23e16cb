"""Special functions for the kernels: normal pdf/cdf/quantile and the scaled complementary error function.

Scalar Numba functions (``cache=True``), called from inside other kernels. ``erfcx`` is W. J. Cody's rational
Chebyshev approximation ("Rational Chebyshev approximations for the error function", Math. Comp. 1969,
pp. 631-638); ``inverse_norm_cdf`` is Wichura's AS241 (Appl. Statist. 1988, 37(3)), accurate to about 1e-16;
both as used in Peter Jaeckel's "Let's Be Rational" (copyright 2013-2014 Peter Jaeckel; permission to use,
copy, modify and distribute freely granted provided this notice is preserved; provided "as is" without
warranty of any kind).
"""

from __future__ import annotations

import math
import sys

from numba import njit

DBL_EPSILON = sys.float_info.epsilon
DBL_MIN = sys.float_info.min
DBL_MAX = sys.float_info.max
ONE_OVER_SQRT_TWO = 0.7071067811865475244008443621048490392848359376887
ONE_OVER_SQRT_TWO_PI = 0.3989422804014326779399460599343818684758586311649
SQRT_TWO_PI = 2.506628274631000502415765284811045253006986740610
SQRPI = 0.56418958354775628695  # 1/sqrt(pi)

# Below -10 the asymptotic series (Abramowitz & Stegun 26.2.12) is used for Phi: 17 terms give 1.64e-16 relative.
NORM_CDF_ASYMPTOTIC_FIRST_THRESHOLD = -10.0
NORM_CDF_ASYMPTOTIC_SECOND_THRESHOLD = -1.0 / math.sqrt(DBL_EPSILON)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return ONE_OVER_SQRT_TWO_PI * math.exp(-0.5 * x * x)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def norm_cdf(z: float) -> float:
    """Standard normal distribution function, accurate in the far left tail."""
    if z <= NORM_CDF_ASYMPTOTIC_FIRST_THRESHOLD:
        total = 1.0
        if z >= NORM_CDF_ASYMPTOTIC_SECOND_THRESHOLD:
            zsqr = z * z
            i = 1.0
            g = 1.0
            lasta = DBL_MAX
            a = DBL_MAX
            while True:
                x = (4.0 * i - 3.0) / zsqr
                y = x * ((4.0 * i - 1.0) / zsqr)
                a = g * (x - y)
                total -= a
                g *= y
                i += 1.0
                a = abs(a)
                if not (lasta > a >= abs(total * DBL_EPSILON)):
                    break
                lasta = a
        return -norm_pdf(z) * total / z
    return 0.5 * math.erfc(-z * ONE_OVER_SQRT_TWO)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _exp_x_squared(y: float) -> float:
    """exp(y*y) without the rounding error of squaring y first (Cody's split)."""
    ysq = math.floor(y * 16.0) / 16.0 if y > 0 else -math.floor(-y * 16.0) / 16.0
    delta = (y - ysq) * (y + ysq)
    return math.exp(ysq * ysq) * math.exp(delta)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def erfcx(x: float) -> float:
    """Scaled complementary error function exp(x*x)*erfc(x) (Cody's rational approximation)."""
    y = abs(x)
    if y <= 0.46875:
        ysq = y * y if y > 1.11e-16 else 0.0
        xnum = 0.185777706184603153 * ysq
        xden = ysq
        xnum = (xnum + 3.1611237438705656) * ysq
        xden = (xden + 23.6012909523441209) * ysq
        xnum = (xnum + 113.864154151050156) * ysq
        xden = (xden + 244.024637934444173) * ysq
        xnum = (xnum + 377.485237685302021) * ysq
        xden = (xden + 1282.61652607737228) * ysq
        result = 1.0 - x * (xnum + 3209.37758913846947) / (xden + 2844.23683343917062)
        return result * math.exp(ysq)
    if y <= 4.0:
        xnum = 2.15311535474403846e-8 * y
        xden = y
        xnum = (xnum + 0.564188496988670089) * y
        xden = (xden + 15.7449261107098347) * y
        xnum = (xnum + 8.88314979438837594) * y
        xden = (xden + 117.693950891312499) * y
        xnum = (xnum + 66.1191906371416295) * y
        xden = (xden + 537.181101862009858) * y
        xnum = (xnum + 298.635138197400131) * y
        xden = (xden + 1621.38957456669019) * y
        xnum = (xnum + 881.95222124176909) * y
        xden = (xden + 3290.79923573345963) * y
        xnum = (xnum + 1712.04761263407058) * y
        xden = (xden + 4362.61909014324716) * y
        xnum = (xnum + 2051.07837782607147) * y
        xden = (xden + 3439.36767414372164) * y
        result = (xnum + 1230.33935479799725) / (xden + 1230.33935480374942)
    elif y >= 6.71e7:
        result = SQRPI / y
    else:
        ysq = 1.0 / (y * y)
        xnum = 0.0163153871373020978 * ysq
        xden = ysq
        xnum = (xnum + 0.305326634961232344) * ysq
        xden = (xden + 2.56852019228982242) * ysq
        xnum = (xnum + 0.360344899949804439) * ysq
        xden = (xden + 1.87295284992346047) * ysq
        xnum = (xnum + 0.125781726111229246) * ysq
        xden = (xden + 0.527905102951428412) * ysq
        xnum = (xnum + 0.0160837851487422766) * ysq
        xden = (xden + 0.0605183413124413191) * ysq
        result = ysq * (xnum + 6.58749161529837803e-4) / (xden + 0.00233520497626869185)
        result = (SQRPI - result) / y
    if x < 0.0:
        if x < -26.628:
            return 1.79e308
        e = _exp_x_squared(x)
        result = e + e - result
    return result


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def inverse_norm_cdf(u: float) -> float:
    """Standard normal quantile (AS241, about 1e-16 relative)."""
    if u <= 0.0:
        return math.log(u) if u == 0.0 else math.nan
    if u >= 1.0:
        return math.log(1.0 - u) if u == 1.0 else math.nan
    q = u - 0.5
    # fmt: off
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return (
            q
            * (((((((2.5090809287301226727e3 * r + 3.3430575583588128105e4) * r + 6.7265770927008700853e4) * r
                    + 4.5921953931549871457e4) * r + 1.3731693765509461125e4) * r + 1.9715909503065514427e3) * r
                 + 1.3314166789178437745e2) * r + 3.3871328727963666080e0)
            / (((((((5.2264952788528545610e3 * r + 2.8729085735721942674e4) * r + 3.9307895800092710610e4) * r
                   + 2.1213794301586595867e4) * r + 5.3941960214247511077e3) * r + 6.8718700749205790830e2) * r
                + 4.2313330701600911252e1) * r + 1.0)
        )
    r = u if q < 0.0 else 1.0 - u
    r = math.sqrt(-math.log(r))
    if r < 5.0:
        r -= 1.6
        ret = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r
                   + 1.27045825245236838258e0) * r + 3.64784832476320460504e0) * r + 5.76949722146069140550e0) * r
                + 4.63033784615654529590e0) * r + 1.42343711074968357734e0) / (
            ((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r
                 + 1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e0) * r
              + 2.05319162663775882187e0) * r + 1.0
        )
    else:
        r -= 5.0
        ret = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r
                   + 2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e0) * r
                + 5.46378491116411436990e0) * r + 6.65790464350110377720e0) / (
            ((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r
                 + 7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
              + 5.99832206555887937690e-1) * r + 1.0
        )
    # fmt: on
    return -ret if q < 0.0 else ret
