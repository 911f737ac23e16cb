"""Per-expiry raw-SVI smile fit, quasi-explicit, with butterfly and calendar constraints and their checks.

Raw SVI in total variance w = sigma_iv^2 T against log-moneyness k = ln(K / F):
``w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + s^2))``; beyond an expiry's quoted range a smile may carry wing
terms (``SviWings``, below).

Why quasi-explicit (Zeliade, De Marco & Martini 2009): with y = (k - m) / s the model is linear in
(a, d = rho b s, c = b s): ``w = a + d y + c sqrt(y^2 + 1)``. For fixed (m, s) the best (a, c, d) is a
3-variable least-squares problem over the box |a| <= max w times the kite |d| <= R c, c + |d| <= 2 s (Lee's
bound: wing slopes b (1 + |rho|) <= 2; R = 1 is raw SVI's |rho| <= 1, see ``RHO_MAX``), solved exactly here from
ten weighted moments (interior solution, else the 4 edges, for a free or at either bound), so the only nonlinear search is a 2-D Nelder-Mead over
(m, log s) from a few starts. That is deterministic, needs no derivatives and no start for (a, b, rho), and
costs O(n) per step: far cheaper and more robust than a 5-D Levenberg-Marquardt on raw SVI. A trial point whose
data objective alone already loses to the simplex skips the bounds and the penalty.

Why calendar-constrained SVI rather than SSVI: SSVI is arbitrage-free by construction but ties every expiry to
one skew shape phi(theta), which fits the steep, short SPX weeklies poorly; fitting each expiry in its own
5-parameter family and imposing w_T(k) >= w_{T_prev}(k) keeps the per-expiry quality. Bounds on the fit (a
shorter expiry's w below, ``previous``, hard; a longer one's above, ``later``, hard; a ``ceiling``, soft) enter
as heavy pseudo-quotes at the bound where the inner solution crosses it, after which (a, c, d) are solved again
(the wings bend), and a hard bound's remaining gap is closed by shifting ``a``; the outer search sees the cost.
Which expiry gives way matters: consecutive free fits on SPX cross only outside the shorter one's quotes, so
``greeks.surface`` fits every expiry free first, then shortest first holds each above the one published
before it (hard) and below the later free fits inside their quoted ranges (soft ceiling).

Butterfly freedom (Gatheral's g(k) >= 0, and min w > 0; Zeliade's a >= 0 is replaced by min w >= a quarter
of the lowest quoted total variance, since short SPX smiles want a < 0 but a wing falling to w = 0 leaves no
room below it) enters the outer search as a penalty on a coarse grid; both conditions are checked after every
fit on the fine grid (``check_butterfly``, ``check_calendar``). Where the fine grid finds g < 0 between the
coarse points, its worst point joins the search grid and the fit is polished again (up to 4 times); a fit still
failing carries a non-OK status and must not be published (``greeks.surface`` keeps the last good one).

Wing terms (``SviWings``): raw SVI inside the quoted range [k_left, k_right], plus on each side beyond it
``lift phi(x)``, phi(x) = x^3 / (x^2 + width^2) (x the distance past the edge): zero with two derivatives at the
edge, slope -> lift far out. Inside the quotes the smile is exactly the raw formula of its first five fields
(anything evaluating those there agrees); ``total_variance``, ``implied_vol_from_svi`` and the checks evaluate
the terms (g analytically, Lee's slope bound and slopes >= 0 beyond the grid). Three uses: (1) SPX smiles nearly
straight in w through the money and flattening after want rho < -1 (the previous fit sat at rho = -1 on those
days); a fit without calendar bounds may take |rho| up to ``RHO_MAX``, the raw formula inside the quotes, with
the lift that brings the falling far wing's slope back to >= 0 (the search's penalty and the checks see the
winged smile); (2) ``shape_wings`` lifts a longer expiry's wing over the shorter one's beyond its own quotes
(the calendar constraint on the surface-wide check grid reaches far past the quotes, where a raw-SVI wing is a
straight line), and (3) bends a shorter expiry's wing down under the later expiries' free fits, as far as it
stays above its own floor and butterfly-free. So the calendar constraint no longer bends the quoted smiles:
``greeks.surface`` publishes most expiries as their free fit with wing terms.

Weights: each strike's weight goes as its bid/ask IV half-band to the power -1/4 (the band floored at the
expiry's median half-band, ``fit_weights``, ``BAND_POWER``), close to the plain IV residual the RMSE measures:
the fit minimises sum(((w_fit - w_mid) / (2 sigma_mid T tol))^2), tol = median^(7/8) band^(1/8); after the
search ``IRLS_STEPS`` reweighting steps give a quote the fit leaves outside its tolerance by u the weight 1/u^2
(a Cauchy-like loss: lost causes stop pulling the quotes at their band's edge), then the polish. Over all 20
SPX May 2019 days that moves the in-band share from 85.2 % (band weights, one step) to 87.2 %, and the bench
RMSE from 0.054 to 0.050 together with the wing terms.

American names: ``european_equivalent_iv`` gives the European-equivalent IV of an American price by the
de-Americanisation step the book recipe uses (European IV of the price less the early-exercise premium at that
IV), iterated twice; fit the smile on those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]

FIT_OK = 0
"""The fit passed the butterfly and calendar checks."""
FIT_BUTTERFLY = 1
"""Gatheral's g(k) < 0 (or w <= 0) somewhere on the check grid."""
FIT_CALENDAR = 2
"""Total variance below the previous expiry's somewhere on the check grid."""
FIT_TOO_FEW = 3
"""Fewer than ``MIN_POINTS`` usable quotes."""
FIT_BAD_INPUT = 4
"""Non-finite or non-positive inputs."""
FIT_STATUS_NAMES = {FIT_OK: "ok", FIT_BUTTERFLY: "butterfly", FIT_CALENDAR: "calendar", FIT_TOO_FEW: "too_few",
                    FIT_BAD_INPUT: "bad_input"}  # fmt: skip

MIN_POINTS = 5
BAND_FLOOR = 0.0003
"""Smallest IV half-band used as a tolerance (0.03 vol point), so one tight quote cannot dominate."""
BAND_FLOOR_REL = 1.0
"""... and at least this fraction of the expiry's median half-band."""
BAND_POWER = 0.25
"""A quote's weight goes as its (floored) half-band to the power -BAND_POWER: 2 weighs by the band (the quote's
tolerance), 0 not at all (what the IV RMSE measures)."""
G_TOL = 1e-9
"""Slack on g(k) >= 0 and on the calendar inequality in the checks (total-variance units)."""
G_MARGIN = 1e-3
"""The search asks g(k) >= G_MARGIN on its coarse grid."""
CHECK_POINTS = 2001
"""Points of the fine grid the published checks use."""
W_FLOOR = 0.25
"""The fit keeps min_k w(k) >= W_FLOOR times the lowest quoted total variance: a wing falling to w = 0 outside
the quotes (rho -> -1, a -> 0) would leave no room for the shorter expiries below it."""
IRLS_STEPS = 4
"""Reweighting steps after the search (see ``_fit_kernel``), then the polish."""
CAL_WEIGHT = 100.0
"""Weight of a calendar pseudo-quote, in mean quote weights."""
WING_LEN = 11
"""Length of the array form of a smile's parameters (``params_array``)."""
LIFT_WIDTH = 0.25
"""Onset width of a wing term (``_phi``), as a fraction of the expiry's quoted log-moneyness span."""
RHO_MAX = 1.5
"""|rho| may reach this in a fit without calendar bounds: SPX smiles straight in total variance through the money
and then flattening want rho < -1; inside the quotes that is the raw-SVI formula, beyond them wing terms bring
the far slopes back to >= 0 (``_wing_params``), and the butterfly penalty and checks see the winged smile."""
WING_EXTRA = 1e-3
"""Lifts restoring a far wing's slope give it this fraction of the fall they undo."""
CUT_FRACTIONS = (1.0, 0.5, 0.25)
"""Fractions of a bend-down tried, largest first, until the wing passes the checks."""
LIFT_SLACK = 1e-10
"""Wing terms aim this far above the earlier expiry (total variance), inside the checks' tolerance."""
PENALTY_POINTS = 51
GLOBAL_POINTS = 41
"""Points over the expiry's own (widened) quoted range on which the search penalises arbitrage (plus 61 over the
whole check grid)."""


class SviParams(NamedTuple):
    """Raw SVI parameters of total variance: w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float


class SviWings(SviParams):
    """Raw SVI inside the quoted range [k_left, k_right], with a wing term on each side beyond it:

    ``w(k) = w_svi(k) + lift_left phi(k_left - k; width_left) + lift_right phi(k - k_right; width_right)``,
    phi(x; d) = x^3 / (x^2 + d^2) for x > 0, else 0: zero with its first two derivatives at the edge (w stays C2,
    so g is continuous), slope -> 1 far out. A positive lift raises a wing (a longer expiry clearing a shorter
    one's wing beyond its quotes), a negative one bends it down (a shorter expiry's wing kept under the longer
    ones'). Inside [k_left, k_right] this is exactly the raw-SVI smile of the first five fields (the tuple is
    those five), so anything evaluating the raw formula on the quoted range agrees; ``total_variance``,
    ``implied_vol_from_svi`` and the checks evaluate the wing terms (``shape_wings`` makes them)."""

    k_left: float
    lift_left: float
    width_left: float
    k_right: float
    lift_right: float
    width_right: float

    def __new__(cls, a: float, b: float, rho: float, m: float, sigma: float, k_left: float = -math.inf,
                lift_left: float = 0.0, width_left: float = 1.0, k_right: float = math.inf, lift_right: float = 0.0,
                width_right: float = 1.0) -> SviWings:  # fmt: skip
        self = super().__new__(cls, a, b, rho, m, sigma)
        self.k_left, self.lift_left, self.width_left = k_left, lift_left, width_left
        self.k_right, self.lift_right, self.width_right = k_right, lift_right, width_right
        return self

    def wings(self) -> tuple[float, float, float, float, float, float]:
        """(k_left, lift_left, width_left, k_right, lift_right, width_right)."""
        return self.k_left, self.lift_left, self.width_left, self.k_right, self.lift_right, self.width_right

    def __repr__(self) -> str:
        names = ("k_left", "lift_left", "width_left", "k_right", "lift_right", "width_right")
        extra = ", ".join(f"{n}={v!r}" for n, v in zip(names, self.wings(), strict=True))
        return f"SviWings(a={self.a!r}, b={self.b!r}, rho={self.rho!r}, m={self.m!r}, sigma={self.sigma!r}, {extra})"

    def __reduce__(self) -> tuple[type[SviWings], tuple[float, ...]]:
        return SviWings, (*self, *self.wings())

    def _replace(self, **kwargs: float) -> SviWings:
        names = ("a", "b", "rho", "m", "sigma", "k_left", "lift_left", "width_left", "k_right", "lift_right",
                 "width_right")  # fmt: skip
        values = dict(zip(names, (*self, *self.wings()), strict=True))
        values.update(kwargs)
        return SviWings(**values)


def params_array(p: SviParams) -> FloatArray:
    """(a, b, rho, m, sigma, k_left, lift_left, width_left, k_right, lift_right, width_right) of a smile."""
    if isinstance(p, SviWings):
        return np.array([*p, *p.wings()], dtype=np.float64)
    return np.array([*p, -math.inf, 0.0, 1.0, math.inf, 0.0, 1.0], dtype=np.float64)


class SviFit(NamedTuple):
    """One expiry's fit: parameters, status (``FIT_*``), weighted objective, evaluations used."""

    params: SviParams
    status: int
    objective: float
    evaluations: int


# --- scalar kernels ------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def svi_total_variance(k: float, a: float, b: float, rho: float, m: float, s: float) -> float:
    """Raw-SVI total variance at log-moneyness ``k``."""
    x = k - m
    return a + b * (rho * x + math.sqrt(x * x + s * s))


@njit(cache=True, nogil=True, error_model="numpy")
def svi_g(k: float, a: float, b: float, rho: float, m: float, s: float) -> tuple[float, float]:
    """(g(k), w(k)): Gatheral's butterfly density factor, >= 0 where the smile is free of butterfly arbitrage."""
    x = k - m
    r = math.sqrt(x * x + s * s)
    w = a + b * (rho * x + r)
    w1 = b * (rho + x / r)
    w2 = b * s * s / (r * r * r)
    if w <= 0.0:
        return -1.0, w
    u = 1.0 - k * w1 / (2.0 * w)
    return u * u - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2, w


@njit(cache=True, nogil=True, error_model="numpy")
def _min_g(grid: FloatArray, a: float, b: float, rho: float, m: float, s: float) -> float:
    worst = math.inf
    for i in range(grid.shape[0]):
        g, _ = svi_g(grid[i], a, b, rho, m, s)
        if g < worst:
            worst = g
    return worst


@njit(cache=True, nogil=True, error_model="numpy")
def _phi(x: float, dl: float) -> tuple[float, float, float]:
    """The wing lift's shape and its first two derivatives: x^3 / (x^2 + dl^2) for x > 0, else 0 (C2 at 0)."""
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    d2 = dl * dl
    q = 1.0 / (x * x + d2)
    x2 = x * x
    return x2 * x * q, (3.0 * x2 - 2.0 * x2 * x2 * q) * q, (6.0 * x - 14.0 * x2 * x * q + 8.0 * x2 * x2 * x * q * q) * q


@njit(cache=True, nogil=True, error_model="numpy")
def _wx(k: float, p: FloatArray) -> float:
    """Total variance of the smile ``p`` (``params_array``) at ``k``."""
    w = svi_total_variance(k, p[0], p[1], p[2], p[3], p[4])
    if p[6] != 0.0 and k < p[5]:
        w += p[6] * _phi(p[5] - k, p[7])[0]
    if p[9] != 0.0 and k > p[8]:
        w += p[9] * _phi(k - p[8], p[10])[0]
    return w


@njit(cache=True, nogil=True, error_model="numpy")
def _gx(k: float, p: FloatArray) -> tuple[float, float]:
    """(g(k), w(k)) of the smile ``p`` (``params_array``)."""
    x = k - p[3]
    r = math.sqrt(x * x + p[4] * p[4])
    w = p[0] + p[1] * (p[2] * x + r)
    w1 = p[1] * (p[2] + x / r)
    w2 = p[1] * p[4] * p[4] / (r * r * r)
    if p[6] != 0.0 and k < p[5]:
        f, f1, f2 = _phi(p[5] - k, p[7])
        w += p[6] * f
        w1 -= p[6] * f1
        w2 += p[6] * f2
    if p[9] != 0.0 and k > p[8]:
        f, f1, f2 = _phi(k - p[8], p[10])
        w += p[9] * f
        w1 += p[9] * f1
        w2 += p[9] * f2
    if w <= 0.0:
        return -1.0, w
    u = 1.0 - k * w1 / (2.0 * w)
    return u * u - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2, w


@njit(cache=True, nogil=True, error_model="numpy")
def _min_gx(grid: FloatArray, p: FloatArray) -> float:
    worst = math.inf
    for i in range(grid.shape[0]):
        g, _ = _gx(grid[i], p)
        if g < worst:
            worst = g
    return worst


@njit(cache=True, nogil=True, error_model="numpy")
def _min_gw(grid: FloatArray, p: FloatArray) -> tuple[float, float]:
    """(min g, min w) of the smile ``p`` (``params_array``) on ``grid``."""
    g_min = w_min = math.inf
    for i in range(grid.shape[0]):
        g, w = _gx(grid[i], p)
        g_min = min(g_min, g)
        w_min = min(w_min, w)
    return g_min, w_min


@njit(cache=True, nogil=True, error_model="numpy")
def _wing_params(p: FloatArray, a: float, c: float, d: float, m: float, s: float) -> None:
    """Raw SVI (a, c, d, m, s) into ``p`` (its edges and widths set) with the least wing lifts that keep both far
    wings' slopes >= 0: b (1 -+ rho) < 0 when |rho| > 1, the lift restoring it to 0."""
    b = c / s
    rho = d / c if c > 0.0 else 0.0
    p[0] = a
    p[1] = b
    p[2] = rho
    p[3] = m
    p[4] = s
    p[6] = max(0.0, -b * (1.0 - rho)) * (1.0 + WING_EXTRA)
    p[9] = max(0.0, -b * (1.0 + rho)) * (1.0 + WING_EXTRA)


@njit(cache=True, nogil=True, error_model="numpy")
def _lee_ok(p: FloatArray) -> bool:
    """Lee's bound on the far wings' slopes (beyond any grid): b (1 -+ rho) plus the lift in [0, 2] on each side
    (>= 0: w stays bounded below)."""
    left = p[1] * (1.0 - p[2]) + p[6]
    right = p[1] * (1.0 + p[2]) + p[9]
    return bool(0.0 <= left <= 2.0) and bool(0.0 <= right <= 2.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _side_ok(grid: FloatArray, lo: int, hi: int, p: FloatArray, wf: FloatArray) -> bool:
    """Grid points lo..hi-1 (one side beyond the quotes): g >= 0 and w >= the floor ``wf``."""
    for i in range(lo, hi):
        g, w = _gx(grid[i], p)
        if g < 0.0 or w < wf[i]:
            return False
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _shape_kernel(grid: FloatArray, p: FloatArray, wf: FloatArray, cap: FloatArray, span: float,
                  checked: bool) -> bool:  # fmt: skip
    """Set the wing terms of ``p`` (``params_array``, wings zero) in place, see ``shape_wings``; False: none fits.

    ``checked``: the raw smile with its slope-restoring lifts passed the butterfly check on ``grid`` already, so
    only the sides given other wing terms need checking again."""
    n = grid.shape[0]
    klo = p[5]
    khi = p[8]
    i_lo = 0  # grid[:i_lo] < klo; grid[i_hi:] > khi
    while i_lo < n and grid[i_lo] < klo:
        i_lo += 1
    i_hi = i_lo
    while i_hi < n and grid[i_hi] <= khi:
        i_hi += 1
    w0 = np.empty(n)
    for i in range(n):
        w0[i] = svi_total_variance(grid[i], p[0], p[1], p[2], p[3], p[4])
        if i_lo <= i < i_hi and w0[i] < wf[i]:
            return False  # below the earlier expiry inside the quotes: no wing term helps
    dl = LIFT_WIDTH * span
    for side in range(2):
        lo, hi = (0, i_lo) if side == 0 else (i_hi, n)
        if lo == hi:
            continue
        t_col = 6 if side == 0 else 9
        p[t_col + 1] = dl
        slope = p[1] * (1.0 - p[2]) if side == 0 else p[1] * (1.0 + p[2])  # the raw far wing's slope
        lift = max(0.0, -slope) * (1.0 + WING_EXTRA)  # smallest lift clearing the floor (and slope >= 0)
        cut = 0.0  # bend down towards the cap (negative)
        room = math.inf  # largest bend keeping the floor
        for i in range(lo, hi):
            f = _phi(klo - grid[i] if side == 0 else grid[i] - khi, dl)[0]
            if f <= 0.0:
                continue
            if wf[i] > w0[i]:
                lift = max(lift, (wf[i] - w0[i] + LIFT_SLACK) / f)
            else:
                room = min(room, (w0[i] - wf[i] - LIFT_SLACK) / f)
            if w0[i] > cap[i]:
                cut = max(cut, (w0[i] - cap[i]) / f)
        if lift > 0.0:
            p[t_col] = lift
            if not (_lee_ok(p) and _side_ok(grid, lo, hi, p, wf)):
                return False
        elif cut > 0.0 and room > 0.0:
            t = min(cut, room, slope)
            for frac in CUT_FRACTIONS:
                p[t_col] = -frac * t
                if _side_ok(grid, lo, hi, p, wf):
                    break
                p[t_col] = 0.0
    return _lee_ok(p) and (checked or _min_gx(grid, p) >= 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _quad1(p0c: float, p0d: float, ec: float, ed: float, acc: float, acd: float, add: float, bc: float,
           bd: float) -> tuple[float, float, float]:  # fmt: skip
    """Minimise q(c, d) = [c d] A [c d]' - 2 b'[c d] on the segment p0 + t e, t in [0, 1]: (c, d, q)."""
    # q(t) = q0 + 2 t (e' A p0 - b' e) + t^2 e' A e
    aee = ec * (acc * ec + acd * ed) + ed * (acd * ec + add * ed)
    lin = ec * (acc * p0c + acd * p0d) + ed * (acd * p0c + add * p0d) - (bc * ec + bd * ed)
    t = 0.0
    if aee > 0.0:
        t = min(1.0, max(0.0, -lin / aee))
    elif lin < 0.0:
        t = 1.0
    c = p0c + t * ec
    d = p0d + t * ed
    q = c * (acc * c + acd * d) + d * (acd * c + add * d) - 2.0 * (bc * c + bd * d)
    return c, d, q


@njit(cache=True, nogil=True, error_model="numpy")
def _qp_diamond(acc: float, acd: float, add: float, bc: float, bd: float, s: float,
                rr: float) -> tuple[float, float, float]:  # fmt: skip
    """Minimise [c d] A [c d]' - 2 b'[c d] over |d| <= rr c, c + |d| <= 2 s: (c, d, q) (q without the constant).

    rr = 1 is raw SVI's |rho| <= 1 (the Lee diamond); rr > 1 lets |rho| exceed 1 (see ``RHO_MAX``)."""
    det = acc * add - acd * acd
    if det > 1e-300 * (abs(acc * add) + 1e-300):
        c = (add * bc - acd * bd) / det
        d = (acc * bd - acd * bc) / det
        if abs(d) <= rr * c and c + abs(d) <= 2.0 * s:
            q = c * (acc * c + acd * d) + d * (acd * c + add * d) - 2.0 * (bc * c + bd * d)
            return c, d, q
    h = 2.0 * s / (1.0 + rr)
    e = 2.0 * s - h
    best_c, best_d, best_q = _quad1(0.0, 0.0, h, rr * h, acc, acd, add, bc, bd)
    c, d, q = _quad1(h, rr * h, e, -rr * h, acc, acd, add, bc, bd)
    if q < best_q:
        best_c, best_d, best_q = c, d, q
    c, d, q = _quad1(2.0 * s, 0.0, -e, -rr * h, acc, acd, add, bc, bd)
    if q < best_q:
        best_c, best_d, best_q = c, d, q
    c, d, q = _quad1(h, -rr * h, -h, rr * h, acc, acd, add, bc, bd)
    if q < best_q:
        best_c, best_d, best_q = c, d, q
    return best_c, best_d, best_q


@njit(cache=True, nogil=True, error_model="numpy")
def _solve_acd(s1: float, sy: float, sz: float, syy: float, szz: float, syz: float, sv: float, svy: float,
               svz: float, s: float, amax: float, rr: float) -> tuple[float, float, float]:  # fmt: skip
    """Weighted least-squares (a, c, d) from the moments, |a| <= amax, (c, d) in the Lee diamond."""
    # a free: substitute a* = (sv - d sy - c sz) / s1 (Schur complement)
    best = math.inf
    ba = bc_ = bd_ = 0.0
    c, d, q = _qp_diamond(szz - sz * sz / s1, syz - sy * sz / s1, syy - sy * sy / s1,
                          svz - sv * sz / s1, svy - sv * sy / s1, s, rr)  # fmt: skip
    a = (sv - d * sy - c * sz) / s1
    if -amax <= a <= amax:
        best = q - sv * sv / s1
        ba, bc_, bd_ = a, c, d
    for a in (-amax, amax):
        c, d, q = _qp_diamond(szz, syz, syy, svz - a * sz, svy - a * sy, s, rr)
        q += a * a * s1 - 2.0 * a * sv
        if q < best:
            best = q
            ba, bc_, bd_ = a, c, d
    return ba, bc_, bd_


@njit(cache=True, nogil=True, error_model="numpy")
def _gaps(grid: FloatArray, bnd: FloatArray, has_lower: bool, has_upper: bool, a: float,
          c: float, d: float, m: float, s: float) -> tuple[float, float]:  # fmt: skip
    """(largest shortfall below ``bnd[0]``, largest excess above ``bnd[1]``) of (a, c, d, m, s) on ``grid``."""
    b = c / s
    rho = d / c if c > 0.0 else 0.0
    short = 0.0
    excess = 0.0
    for i in range(grid.shape[0]):
        w = svi_total_variance(grid[i], a, b, rho, m, s)
        if has_lower and bnd[0, i] - w > short:
            short = bnd[0, i] - w
        if has_upper and w - bnd[1, i] > excess:
            excess = w - bnd[1, i]
    return short, excess


@njit(cache=True, nogil=True, error_model="numpy")
def _quad_obj(a: float, c: float, d: float, s1: float, sy: float, sz: float, syy: float, szz: float, syz: float,
              sv: float, svy: float, svz: float, svv: float) -> float:  # fmt: skip
    return (a * a * s1 + d * d * syy + c * c * szz + 2.0 * a * d * sy + 2.0 * a * c * sz + 2.0 * d * c * syz
            - 2.0 * (a * sv + d * svy + c * svz) + svv)  # fmt: skip


@njit(cache=True, nogil=True, error_model="numpy")
def _inner(m: float, s: float, k: FloatArray, v: FloatArray, wt: FloatArray, amax: float, wfloor: float,
           grid: FloatArray, bnd: FloatArray, has_lower: bool, has_upper: bool, upper_hard: bool, wx: FloatArray,
           bound: float = math.inf) -> tuple[float, float, float, float, float]:  # fmt: skip
    """Best (a, c, d) for fixed (m, s), then the calendar bounds and the butterfly penalty: (obj, a, c, d, viol).

    If the unconstrained objective is already >= ``bound`` it is returned at once (viol 0): the bounds and the
    penalty only add to it, and the caller needs no more than that it is not below ``bound``."""
    s1 = sy = sz = syy = szz = syz = sv = svy = svz = svv = 0.0
    for i in range(k.shape[0]):
        y = (k[i] - m) / s
        z = math.sqrt(y * y + 1.0)
        w = wt[i]
        vi = v[i]
        s1 += w
        sy += w * y
        sz += w * z
        syy += w * y * y
        szz += w * z * z
        syz += w * y * z
        sv += w * vi
        svy += w * vi * y
        svz += w * vi * z
        svv += w * vi * vi
    a, c, d = _solve_acd(s1, sy, sz, syy, szz, syz, sv, svy, svz, s, amax, wx[11])
    if bound < math.inf:
        obj = _quad_obj(a, c, d, s1, sy, sz, syy, szz, syz, sv, svy, svz, svv)
        if obj >= bound:
            return obj, a, c, d, 0.0
    if abs(d) > c:
        # |rho| > 1 (only in a fit without bounds): the wing terms beyond the quotes hold w up (``_wing_params``);
        # the penalty and the w floor on the winged smile, in one pass (two if the floor shifts it)
        _wing_params(wx, a, c, d, m, s)
        g_min, w_min = _min_gw(grid, wx)
        if w_min < wfloor:
            a += wfloor - w_min
            wx[0] = a
            g_min, w_min = _min_gw(grid, wx)
        obj = _quad_obj(a, c, d, s1, sy, sz, syy, szz, syz, sv, svy, svz, svv)
        viol = G_MARGIN - g_min
        if w_min < wfloor * (1.0 - 1e-12):
            viol = max(viol, 0.0) + 1.0 + (wfloor - w_min) / wfloor
        return max(obj, 0.0), a, c, d, max(viol, 0.0)
    w_min = a + math.sqrt(max(c * c - d * d, 0.0))  # the minimum of w over all k
    if w_min < wfloor:
        a += wfloor - w_min
    if has_lower or has_upper:
        # where the free solution crosses a bound (the shorter expiry's total variance below, the longer one's
        # above), pin it there by heavy pseudo-quotes at the bound and solve again, then shift it by what is left:
        # the wings bend instead of the whole smile being shifted by its largest crossing
        short, excess = _gaps(grid, bnd, has_lower, has_upper, a, c, d, m, s)
        if short > 0.0 or excess > 0.0:
            big = CAL_WEIGHT * s1 / k.shape[0]
            b = c / s
            rho = d / c if c > 0.0 else 0.0
            p1 = py = pz = pyy = pzz = pyz = pv = pvy = pvz = 0.0
            for i in range(grid.shape[0]):
                w = svi_total_variance(grid[i], a, b, rho, m, s)
                if has_lower and bnd[0, i] > w:
                    vi = bnd[0, i]
                    q = big
                elif has_upper and bnd[1, i] < w:
                    vi = bnd[1, i]
                    q = big * bnd[2, i]
                else:
                    continue
                y = (grid[i] - m) / s
                z = math.sqrt(y * y + 1.0)
                p1 += q
                py += q * y
                pz += q * z
                pyy += q * y * y
                pzz += q * z * z
                pyz += q * y * z
                pv += q * vi
                pvy += q * vi * y
                pvz += q * vi * z
            a, c, d = _solve_acd(s1 + p1, sy + py, sz + pz, syy + pyy, szz + pzz, syz + pyz, sv + pv, svy + pvy,
                                 svz + pvz, s, amax, wx[11])  # fmt: skip
            short, excess = _gaps(grid, bnd, has_lower, has_upper and upper_hard, a, c, d, m, s)
            a += short - excess
    b = c / s
    rho = d / c if c > 0.0 else 0.0
    obj = _quad_obj(a, c, d, s1, sy, sz, syy, szz, syz, sv, svy, svz, svv)
    viol = G_MARGIN - _min_g(grid, a, b, rho, m, s)  # a margin, so g stays >= 0 between the search's points
    w_min = a + math.sqrt(max(c * c - d * d, 0.0))
    if w_min < wfloor:
        viol = max(viol, 0.0) + 1.0 + (wfloor - w_min) / wfloor
    return max(obj, 0.0), a, c, d, max(viol, 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _outer_obj(x0: float, x1: float, k: FloatArray, v: FloatArray, wt: FloatArray, amax: float, wfloor: float,
               grid: FloatArray, bnd: FloatArray, has_lower: bool, has_upper: bool,
               upper_hard: bool, n_scale: float, wx: FloatArray, bound: float = math.inf) -> float:  # fmt: skip
    """The search's objective at (m, log s): data + penalty; any value >= ``bound`` may stand for one above it."""
    s = math.exp(x1)
    if s < 1e-5 or s > 5.0:
        return math.inf
    obj, _, _, _, viol = _inner(x0, s, k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper, upper_hard, wx,
                                 bound)  # fmt: skip
    if viol > 0.0:
        obj += n_scale * (1.0 + 1e4 * viol)
    return obj


@njit(cache=True, nogil=True, error_model="numpy")
def _nelder_mead(m0: float, l0: float, step_m: float, step_l: float, k: FloatArray, v: FloatArray, wt: FloatArray,
                 amax: float, wfloor: float, grid: FloatArray, bnd: FloatArray, has_lower: bool,
                 has_upper: bool, upper_hard: bool, n_scale: float, wx: FloatArray,
                 max_eval: int, ftol: float) -> tuple[float, float, float, int]:  # fmt: skip
    """2-D Nelder-Mead over (m, log s): (m, log s, objective, evaluations)."""
    px = np.empty(3)
    py = np.empty(3)
    pf = np.empty(3)
    px[0], py[0] = m0, l0
    px[1], py[1] = m0 + step_m, l0
    px[2], py[2] = m0, l0 + step_l
    for j in range(3):
        pf[j] = _outer_obj(px[j], py[j], k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper, upper_hard,
                           n_scale, wx)  # fmt: skip
    n_eval = 3
    while n_eval < max_eval:
        # order: 0 best, 2 worst
        for i in range(2):
            for j in range(2 - i):
                if pf[j + 1] < pf[j]:
                    pf[j], pf[j + 1] = pf[j + 1], pf[j]
                    px[j], px[j + 1] = px[j + 1], px[j]
                    py[j], py[j + 1] = py[j + 1], py[j]
        if abs(pf[2] - pf[0]) <= ftol * (abs(pf[0]) + 1e-12) and n_eval > 20:
            break
        cx = 0.5 * (px[0] + px[1])
        cy = 0.5 * (py[0] + py[1])
        rx = cx + (cx - px[2])
        ry = cy + (cy - py[2])
        fr = _outer_obj(rx, ry, k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper, upper_hard, n_scale, wx,
                        pf[2])  # fmt: skip
        n_eval += 1
        if fr < pf[0]:
            ex = cx + 2.0 * (cx - px[2])
            ey = cy + 2.0 * (cy - py[2])
            fe = _outer_obj(ex, ey, k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper, upper_hard, n_scale, wx,
                            fr)  # fmt: skip
            n_eval += 1
            if fe < fr:
                px[2], py[2], pf[2] = ex, ey, fe
            else:
                px[2], py[2], pf[2] = rx, ry, fr
        elif fr < pf[1]:
            px[2], py[2], pf[2] = rx, ry, fr
        else:
            if fr < pf[2]:
                hx = cx + 0.5 * (rx - cx)
                hy = cy + 0.5 * (ry - cy)
            else:
                hx = cx + 0.5 * (px[2] - cx)
                hy = cy + 0.5 * (py[2] - cy)
            fh = _outer_obj(hx, hy, k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper, upper_hard, n_scale, wx,
                            min(fr, pf[2]))  # fmt: skip
            n_eval += 1
            if fh < min(fr, pf[2]):
                px[2], py[2], pf[2] = hx, hy, fh
            else:
                for j in (1, 2):
                    px[j] = px[0] + 0.5 * (px[j] - px[0])
                    py[j] = py[0] + 0.5 * (py[j] - py[0])
                    pf[j] = _outer_obj(px[j], py[j], k, v, wt, amax, wfloor, grid, bnd, has_lower, has_upper,
                                       upper_hard, n_scale, wx)  # fmt: skip
                n_eval += 2
    j = 0
    for i in range(1, 3):
        if pf[i] < pf[j]:
            j = i
    return px[j], py[j], pf[j], n_eval


@njit(cache=True, nogil=True, error_model="numpy")
def _fit_kernel(k: FloatArray, v: FloatArray, wt: FloatArray, grid: FloatArray, prev: FloatArray, has_prev: bool,
                nxt: FloatArray, has_next: bool, ceil: FloatArray, has_upper: bool, check_grid: FloatArray,
                start: FloatArray, out: FloatArray) -> tuple[int, float, int]:  # fmt: skip
    """Fit one expiry; ``out`` gets its ``params_array`` (11); returns (status, objective, evaluations).

    Hard bounds: ``prev`` below, ``nxt`` above (checked on ``check_grid``); ``ceil`` (ceiling, pseudo-quote weight
    factor) on ``grid``: a soft ceiling (pseudo-quotes only, not checked; with ``has_next`` it must include ``nxt``)."""
    bnd = np.zeros((3, grid.shape[0]))
    bnd[1:] = ceil
    if has_prev:
        for i in range(grid.shape[0]):
            bnd[0, i] = _wx(grid[i], prev)
    n = k.shape[0]
    wt0 = wt
    kmin = k.min()
    kmax = k.max()
    span = max(kmax - kmin, 1e-3)
    amax = v.max()
    wfloor = W_FLOOR * v.min()
    n_scale = float(n) * 100.0
    # the wing terms' frame (used when |rho| > 1, only in a fit without bounds) and the bound on |rho| (wx[11])
    wx = np.zeros(12)
    wx[5] = kmin
    wx[8] = kmax
    wx[7] = wx[10] = LIFT_WIDTH * span
    wx[11] = 1.0 if (has_prev or has_upper or has_next) else RHO_MAX
    # starts: m at the lowest quoted variance and at the middle of the range; s a fraction of the range
    imin = 0
    for i in range(n):
        if v[i] < v[imin]:
            imin = i
    best_f = math.inf
    bm = k[imin]
    bl = math.log(0.1 * span)
    total = 0
    starts = [(k[imin], math.log(0.1 * span)), (0.5 * (kmin + kmax), math.log(0.1 * span))]
    if start[1] > 0.0:  # a warm start (m, s) first, e.g. this expiry's fit without the calendar bounds
        starts.insert(0, (start[0], math.log(start[1])))
    for m0, l0 in starts:
        m1, l1, f1, ne = _nelder_mead(m0, l0, 0.1 * span, 0.7, k, v, wt, amax, wfloor, grid, bnd, has_prev,
                                      has_upper, has_next, n_scale, wx, 40, 1e-7)  # fmt: skip
        total += ne
        if f1 < best_f:
            best_f, bm, bl = f1, m1, l1
    if IRLS_STEPS > 0:
        # quotes the fit leaves outside their tolerance by a factor u > 1 weigh 1/u^2 as much: a fit that counts the
        # strikes inside their band gains more from the quotes at the band's edge than from the lost causes
        wt = wt.copy()
        for _ in range(IRLS_STEPS):
            s = math.exp(bl)
            _, a, c, d, _ = _inner(bm, s, k, v, wt, amax, wfloor, grid, bnd, has_prev, has_upper, has_next, wx)
            b = c / s
            rho = d / c if c > 0.0 else 0.0
            for i in range(n):
                u = abs(svi_total_variance(k[i], a, b, rho, bm, s) - v[i]) * math.sqrt(wt0[i])
                wt[i] = wt0[i] / (u * u) if u > 1.0 else wt0[i]
            best_f = _outer_obj(bm, bl, k, v, wt, amax, wfloor, grid, bnd, has_prev, has_upper, has_next, n_scale, wx)
    # polish from the best; if the fine grid finds butterfly arbitrage between the search's points, add the
    # worst fine-grid point to the search grid and polish again
    status = FIT_BUTTERFLY
    obj = math.inf
    for attempt in range(4):
        m1, l1, f1, ne = _nelder_mead(bm, bl, 0.02 * span, 0.2, k, v, wt, amax, wfloor, grid, bnd,
                                      has_prev, has_upper, has_next, n_scale, wx, 60, 1e-9)  # fmt: skip
        total += ne
        if f1 < best_f or attempt > 0:
            best_f, bm, bl = f1, m1, l1
        s = math.exp(bl)
        obj, a, c, d, _ = _inner(bm, s, k, v, wt, amax, wfloor, grid, bnd, has_prev, has_upper, has_next, wx)
        out[0] = a
        out[1] = c / s
        out[2] = d / c if c > 0.0 else 0.0
        out[3] = bm
        out[4] = s
        # the search held the bounds on its coarse grid; close the gaps between its points on the fine grid
        short = 0.0
        excess = 0.0
        for i in range(check_grid.shape[0]):
            w = svi_total_variance(check_grid[i], out[0], out[1], out[2], out[3], out[4])
            if has_prev:
                short = max(short, _wx(check_grid[i], prev) - w)
            if has_next:
                excess = max(excess, w - _wx(check_grid[i], nxt))
        _wing_params(wx, out[0] + short - excess, c, d, bm, s)
        for j in range(WING_LEN):
            out[j] = wx[j]
        status = _check_kernel(out, prev, has_prev, nxt, has_next, check_grid)
        if status != FIT_BUTTERFLY:
            break
        worst = 0
        g_worst = math.inf
        for i in range(check_grid.shape[0]):
            g, _ = _gx(check_grid[i], out)
            if g < g_worst:
                g_worst = g
                worst = i
        kw = check_grid[worst]
        grid = np.append(grid, kw)
        col = np.empty((3, 1))
        col[0, 0] = _wx(kw, prev) if has_prev else 0.0
        col[1, 0] = _wx(kw, nxt) if has_next else math.inf
        col[2, 0] = 1.0
        bnd = np.concatenate((bnd, col), axis=1)
        best_f = _outer_obj(bm, bl, k, v, wt, amax, wfloor, grid, bnd, has_prev, has_upper, has_next, n_scale, wx)
    return status, obj, total


@njit(cache=True, nogil=True, error_model="numpy")
def _check_kernel(p: FloatArray, prev: FloatArray, has_prev: bool, nxt: FloatArray, has_next: bool,
                  grid: FloatArray) -> int:  # fmt: skip
    if not _lee_ok(p) or _min_gx(grid, p) < -G_TOL:
        return FIT_BUTTERFLY
    if not (has_prev or has_next):
        return FIT_OK
    for i in range(grid.shape[0]):
        w = _wx(grid[i], p)
        if has_prev and w < _wx(grid[i], prev) - G_TOL:
            return FIT_CALENDAR
        if has_next and w > _wx(grid[i], nxt) + G_TOL:
            return FIT_CALENDAR
    return FIT_OK


# --- public API ----------------------------------------------------------------------------------------------


def check_grid(k_lo: float, k_hi: float, n: int = CHECK_POINTS) -> FloatArray:
    """The grid the checks use: [k_lo, k_hi] widened by half its span on each side."""
    span = max(k_hi - k_lo, 1e-3)
    return np.linspace(k_lo - 0.5 * span, k_hi + 0.5 * span, n)


@njit(cache=True, nogil=True, error_model="numpy")
def _wx_array(k: FloatArray, p: FloatArray) -> FloatArray:
    out = np.empty(k.shape[0])
    for i in range(k.shape[0]):
        out[i] = _wx(k[i], p)
    return out


def total_variance(params: SviParams, k: npt.ArrayLike) -> FloatArray:
    """w(k) of a smile: raw SVI ``params``, with its wing terms if ``SviWings``."""
    kk = np.asarray(k, dtype=np.float64)
    if isinstance(params, SviWings):
        flat = np.ascontiguousarray(kk.reshape(-1))
        return _wx_array(flat, params_array(params)).reshape(kk.shape)
    x = kk - params.m
    return np.asarray(params.a + params.b * (params.rho * x + np.sqrt(x * x + params.sigma * params.sigma)),
                      dtype=np.float64)  # fmt: skip


def wing_fields(params: SviParams) -> tuple[float, ...]:
    """The wing terms of ``params`` as plain numbers (empty for plain raw SVI), for records and events;
    ``smile_from_fields`` rebuilds the smile."""
    if not isinstance(params, SviWings):
        return ()
    return (params.k_left, params.lift_left, params.width_left, params.k_right, params.lift_right, params.width_right)


def smile_from_fields(raw: Sequence[float], wings: Sequence[float] = ()) -> SviParams:
    """The smile of five raw-SVI fields and, if any, the six ``wing_fields``."""
    a, b, rho, m, sigma = raw
    if not wings:
        return SviParams(a, b, rho, m, sigma)
    return SviWings(a, b, rho, m, sigma, *wings)


def total_variance_and_slope(params: SviParams, k: float) -> tuple[float, float]:
    """(w(k), dw/dk) of a smile at one ``k``, wing terms included (for root finders such as
    ``greeks.term_structure.strike_at_delta``, which evaluate the raw formula and so disagree with
    ``total_variance`` beyond the quoted range of an ``SviWings``)."""
    x = k - params.m
    r = math.sqrt(x * x + params.sigma * params.sigma)
    w = params.a + params.b * (params.rho * x + r)
    w1 = params.b * (params.rho + x / r)
    if isinstance(params, SviWings):
        if params.lift_left != 0.0 and k < params.k_left:
            f, f1, _ = _phi(params.k_left - k, params.width_left)
            w += params.lift_left * f
            w1 -= params.lift_left * f1
        if params.lift_right != 0.0 and k > params.k_right:
            f, f1, _ = _phi(k - params.k_right, params.width_right)
            w += params.lift_right * f
            w1 += params.lift_right * f1
    return float(w), float(w1)


def implied_vol_from_svi(params: SviParams, k: npt.ArrayLike, t: float) -> FloatArray:
    """Black implied volatility sqrt(w(k) / t)."""
    return np.sqrt(np.maximum(total_variance(params, k), 0.0) / t)


def check_butterfly(params: SviParams, grid: FloatArray) -> bool:
    """True when g(k) >= 0 and w(k) > 0 at every grid point (and, with wing terms, Lee's far-wing slope bound)."""
    g = np.ascontiguousarray(grid, dtype=np.float64)
    if isinstance(params, SviWings):
        p = params_array(params)
        return bool(_lee_ok(p) and _min_gx(g, p) >= -G_TOL)
    return bool(_min_g(g, *params) >= -G_TOL)


def shape_wings(params: SviParams, grid: FloatArray, k_lo: float, k_hi: float, floor: SviParams | None = None,
                cap: FloatArray | None = None, checked: bool = False) -> SviParams | None:  # fmt: skip
    """Raw SVI ``params`` with wing terms beyond [k_lo, k_hi] (``SviWings``), or None if none will do.

    On each side: the smallest lift that puts the smile at or above ``floor`` (the expiry published before it)
    on ``grid``; where it is above already, a bend down towards ``cap`` (total variance on ``grid``, inf where
    none: the later expiries' free fits), only as far as it stays at or above ``floor`` and butterfly-free. The
    result passes the butterfly check on ``grid`` (g >= 0, Lee's slope bound) and is at or above ``floor``;
    ``params`` itself is returned when no wing term is needed and it passes. None if it falls below ``floor``
    inside [k_lo, k_hi] (no wing term helps there) or no lift passes. ``checked``: ``params`` is a fit that
    passed the butterfly check on ``grid`` with the same quoted range (``fit_svi`` with ``grid``), so the sides
    left as they are need no check again."""
    g = np.ascontiguousarray(grid, dtype=np.float64)
    p = np.array([*params[:5], k_lo, 0.0, 1.0, k_hi, 0.0, 1.0], dtype=np.float64)
    wf = total_variance(floor, g) if floor is not None else np.full(g.shape[0], -np.inf)
    cp = np.full(g.shape[0], np.inf) if cap is None else np.ascontiguousarray(cap, dtype=np.float64)
    if not _shape_kernel(g, p, wf, cp, max(k_hi - k_lo, 1e-3), checked):
        return None
    if p[6] == 0.0 and p[9] == 0.0:
        return params
    return SviWings(*(float(x) for x in p))


def check_calendar(earlier: SviParams, later: SviParams, grid: FloatArray) -> bool:
    """True when the later expiry's total variance is nowhere below the earlier one's on the grid."""
    return bool(np.all(total_variance(later, grid) >= total_variance(earlier, grid) - G_TOL))


def fit_weights(iv_mid: FloatArray, iv_bid: FloatArray, iv_ask: FloatArray, t: float,
                floor: float | None = None) -> FloatArray:  # fmt: skip
    """Least-squares weights in total variance: 1 / (2 sigma_mid t tol)^2, tol = floor (half_band / floor)^(p/2)
    with the half-band floored and p = ``BAND_POWER`` (p = 2: tol is the band; p = 1/4, the default, close to
    unweighted IV residuals, which the RMSE measures; the reweighting steps of the fit then look after the
    in-band share).

    The floor (default: the larger of ``BAND_FLOOR`` and ``BAND_FLOOR_REL`` times the median half-band of the
    strikes given; ``smile_inputs`` takes the median over the strikes the surface fits) keeps the tightest quotes
    (often one tick, near the money) from outweighing the rest."""
    half = 0.5 * (iv_ask - iv_bid)
    half = np.where(np.isfinite(half), half, 1.0)
    if floor is None:
        finite = half[np.isfinite(iv_mid)]
        floor = max(BAND_FLOOR, BAND_FLOOR_REL * float(np.median(finite))) if finite.size else BAND_FLOOR
    half = np.maximum(half, floor)
    dw = 2.0 * iv_mid * t * floor * (half / floor) ** (0.5 * BAND_POWER)
    return np.asarray(1.0 / (dw * dw), dtype=np.float64)


def fit_svi(
    k: npt.ArrayLike,
    iv_mid: npt.ArrayLike,
    t: float,
    weights: npt.ArrayLike | None = None,
    previous: SviParams | None = None,
    grid: FloatArray | None = None,
    later: SviParams | None = None,
    start: tuple[float, float] | None = None,
    ceiling: FloatArray | None = None,
) -> SviFit:
    """Fit raw SVI to one expiry's implied vols (``k`` = ln(K/F)), optionally between neighbouring expiries.

    ``weights`` are total-variance least-squares weights (``fit_weights`` from the bid/ask IV band); default
    equal. ``previous``: the earlier expiry's parameters, imposed as w >= w_previous on ``grid`` (default
    ``check_grid`` over the quoted range); ``later``: a later expiry's, imposed as w <= w_later. ``ceiling``:
    a soft upper bound on ``grid`` (inf where none), pulled towards but not checked. ``start``: an (m, sigma)
    to start the search from besides the usual starts (e.g. the fit without bounds). The result's status is
    ``FIT_OK`` only if the butterfly check (and the calendar checks against ``previous`` and ``later``) pass
    on the fine grid; any other status must not be published.
    """
    k_ = np.ascontiguousarray(k, dtype=np.float64)
    iv = np.ascontiguousarray(iv_mid, dtype=np.float64)
    wt = np.ones_like(k_) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    nan_params = SviParams(math.nan, math.nan, math.nan, math.nan, math.nan)
    ok = np.isfinite(k_) & np.isfinite(iv) & (iv > 0.0) & np.isfinite(wt) & (wt > 0.0)
    if not (t > 0.0 and math.isfinite(t)):
        return SviFit(nan_params, FIT_BAD_INPUT, math.nan, 0)
    if int(ok.sum()) < MIN_POINTS:
        return SviFit(nan_params, FIT_TOO_FEW, math.nan, 0)
    k_, iv, wt = k_[ok], iv[ok], wt[ok]
    v = iv * iv * t
    fine = check_grid(float(k_.min()), float(k_.max())) if grid is None else np.ascontiguousarray(grid, np.float64)
    own = check_grid(float(k_.min()), float(k_.max()), PENALTY_POINTS)
    coarse = np.unique(np.concatenate([own[(own >= fine[0]) & (own <= fine[-1])],
                                       np.linspace(fine[0], fine[-1], GLOBAL_POINTS)]))  # fmt: skip
    prev = np.zeros(WING_LEN) if previous is None else params_array(previous)
    nxt = np.zeros(WING_LEN) if later is None else params_array(later)
    upper = np.full((2, coarse.shape[0]), np.inf)
    upper[1] = 1.0
    if ceiling is not None:  # soft, given on the fine grid (inf where none): onto the search grid
        upper[0] = np.interp(coarse, fine, np.where(np.isfinite(ceiling), ceiling, 1e300))
    if later is not None:
        upper[0] = np.minimum(upper[0], total_variance(later, coarse))
    st = np.array([0.0, 0.0] if start is None else start, dtype=np.float64)
    out = np.empty(WING_LEN)
    status, obj, n_eval = _fit_kernel(k_, v, wt, coarse, prev, previous is not None, nxt, later is not None, upper,
                                      later is not None or ceiling is not None, fine, st, out)  # fmt: skip
    if out[6] != 0.0 or out[9] != 0.0:
        return SviFit(SviWings(*(float(x) for x in out)), int(status), float(obj), int(n_eval))
    return SviFit(SviParams(*(float(x) for x in out[:5])), int(status), float(obj), int(n_eval))


def european_equivalent_iv(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    """European-equivalent IV of American prices: the European IV of (price - EEP at that IV), two passes."""
    return early_exercise_premium_of_prices(price, spot, strike, t, r, q, is_call, passes=2)[1]


def early_exercise_premium_of_prices(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    is_call: npt.ArrayLike,
    passes: int = 2,
) -> tuple[FloatArray, FloatArray]:
    """(early-exercise premium, European-equivalent IV) of American prices, by the de-Americanisation recipe:
    the premium at the European IV of the price, then at the European IV of (price - premium), ``passes`` times.
    A price with no IV is priced at 20 % vol for its premium; the premium is 0 where it cannot be computed."""
    from greeks.american import early_exercise_premium
    from greeks.black import implied_vol

    p = np.asarray(price, dtype=np.float64)
    sigma = implied_vol(p, spot, strike, t, r, q, is_call)[0]
    eep = np.zeros_like(p)
    for _ in range(passes):
        eep = np.nan_to_num(early_exercise_premium(spot, strike, t, r, q, np.where(np.isfinite(sigma), sigma, 0.2),
                                                   is_call))
        sigma = implied_vol(p - eep, spot, strike, t, r, q, is_call)[0]
    return np.asarray(eep, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
