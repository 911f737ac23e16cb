"""A multi-expiry SVI surface: per-expiry fits tied by the calendar constraint, and the "last good fit" state.

From one expiry's book: ``smile_inputs`` turns out-of-the-money mids (puts below the forward, calls at or above)
with two-sided quotes into (k, IV mid, IV bid, IV ask, weights, call delta). ``SurfaceFitter.fit`` fits the
expiries free, then in order of maturity publishes each at total variance at or above the expiry published
before it and below the later free fits: its free fit with wing terms beyond its quotes where that will do
(``shape_wings``: lifted over the earlier expiry, bent under the later ones), else a refit held above the earlier
expiry over its own quotes widened plus wing terms, else a refit held above it on the whole grid (see
``greeks.svi`` for the method and why). Butterfly and calendar freedom are checked on one fine log-moneyness
grid shared by the whole surface, and only fits that pass are published; an expiry whose fit fails keeps its last good
parameters, reported with their age. Inputs are European (or European-equivalent, ``european_equivalent_iv``)
volatilities.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from greeks.black import implied_vol
from greeks.svi import (
    BAND_FLOOR,
    BAND_FLOOR_REL,
    CHECK_POINTS,
    FIT_CALENDAR,
    FIT_OK,
    FloatArray,
    SviParams,
    check_butterfly,
    check_calendar,
    check_grid,
    fit_svi,
    fit_weights,
    shape_wings,
    total_variance,
)

REFIT_MARGIN = 0.3
"""A refit against the earlier expiry holds it over its own quoted range widened by this fraction of the span on
each side (instead of the whole check grid); beyond that its wings take wing terms (``shape_wings``)."""


class SmileInputs(NamedTuple):
    """One expiry's fit inputs: log-moneyness, IV mid/bid/ask (NaN bid IV when the bid is below intrinsic)."""

    k: FloatArray
    iv_mid: FloatArray
    iv_bid: FloatArray
    iv_ask: FloatArray
    weights: FloatArray
    call_delta: FloatArray


class ExpiryQuotes(NamedTuple):
    """What ``SurfaceFitter.fit`` needs of one expiry: an id, years to expiry and its ``SmileInputs``."""

    expiry: str
    t: float
    inputs: SmileInputs


class PublishedSmile(NamedTuple):
    """One expiry as published: the parameters in force, this round's fit status and the fit time of the params."""

    expiry: str
    t: float
    params: SviParams | None
    status: int
    fitted_at: float
    age: float


def smile_inputs(
    strike: npt.ArrayLike,
    call_bid: npt.ArrayLike,
    call_ask: npt.ArrayLike,
    put_bid: npt.ArrayLike,
    put_ask: npt.ArrayLike,
    forward: float,
    discount: float,
    t: float,
) -> SmileInputs:
    """OTM two-sided quotes of one expiry as fit inputs (IVs against the forward; NaN quotes are skipped)."""
    k_ = np.asarray(strike, dtype=np.float64)
    use_call = k_ >= forward
    bid = np.where(use_call, np.asarray(call_bid, np.float64), np.asarray(put_bid, np.float64))
    ask = np.where(use_call, np.asarray(call_ask, np.float64), np.asarray(put_ask, np.float64))
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid > 0.0) & (ask >= bid)
    k_, bid, ask, use_call = k_[ok], bid[ok], ask[ok], use_call[ok]
    undisc = 1.0 / discount
    prices = np.concatenate([0.5 * (bid + ask), bid, ask]) * undisc
    kk = np.concatenate([k_, k_, k_])
    cc = np.concatenate([use_call, use_call, use_call])
    sig, _ = implied_vol(prices, forward, kk, t, 0.0, 0.0, cc)
    n = k_.shape[0]
    mid, ivb, iva = sig[:n], sig[n : 2 * n], sig[2 * n :]
    iva = np.where(np.isfinite(iva), iva, mid + 1.0)
    ivb = np.where(np.isfinite(ivb), ivb, np.maximum(mid - (iva - mid), 0.0))
    good = np.isfinite(mid)
    k_, mid, ivb, iva = k_[good], mid[good], ivb[good], iva[good]
    lk = np.log(k_ / forward)
    sd = mid * math.sqrt(t)
    d1 = -lk / sd + 0.5 * sd
    call_delta = np.asarray([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in d1], dtype=np.float64)
    # the weights' band floor from the strikes a surface fits by default (call delta in [0.05, 0.95])
    core = (call_delta >= 0.05) & (call_delta <= 0.95) & np.isfinite(iva - ivb)
    half = 0.5 * (iva - ivb)[core] if core.any() else 0.5 * (iva - ivb)
    floor = max(BAND_FLOOR, BAND_FLOOR_REL * float(np.median(half))) if half.size else BAND_FLOOR
    return SmileInputs(lk, mid, ivb, iva, fit_weights(mid, ivb, iva, t, floor), call_delta)


class SurfaceFitter:
    """Fits a whole surface each round and keeps, per expiry, the last parameters that passed the checks."""

    def __init__(self, check_points: int = CHECK_POINTS, delta_range: tuple[float, float] = (0.05, 0.95)) -> None:
        self.check_points = check_points
        self.delta_range = delta_range
        self.grid: FloatArray = np.empty(0)
        """The check grid of the last round."""
        self._good: dict[str, tuple[SviParams, float, float]] = {}  # expiry -> (params, t at fit, fitted_at)

    def last_good(self, expiry: str) -> tuple[SviParams, float] | None:
        """(params, fitted_at) of the last published fit of ``expiry``, if any."""
        got = self._good.get(expiry)
        return None if got is None else (got[0], got[2])

    def fit(self, expiries: list[ExpiryQuotes], now: float) -> list[PublishedSmile]:
        """Fit every expiry (shortest first), publish those that pass, keep the last good one for the others.

        Only strikes whose call delta (at the mid IV) lies in ``delta_range`` enter the fit: the far wings' quotes
        are mostly one tick wide and would dominate a fit that must stay arbitrage-free. The calendar constraint
        ties each expiry to the one published just before it; the checks run on one grid spanning all expiries'
        quoted log-moneyness (widened by half its span each side).
        """
        lo, hi = self.delta_range
        order = []
        for e in sorted(expiries, key=lambda e: e.t):
            i = e.inputs
            sel = (i.call_delta >= lo) & (i.call_delta <= hi)
            order.append(e._replace(inputs=SmileInputs(*(x[sel] for x in i))))
        ks = [e.inputs.k for e in order if e.inputs.k.shape[0] > 0]
        if not ks:
            return []
        grid = check_grid(min(float(k.min()) for k in ks), max(float(k.max()) for k in ks), self.check_points)
        self.grid = grid
        out: list[PublishedSmile] = []
        # pass 1: each expiry on its own (butterfly-free on the grid). Where consecutive free fits cross, it is
        # outside the shorter one's quotes, so extrapolations are what should give way: pass 2, shortest first,
        # holds each expiry above the one published before it (hard) and below every later free fit (soft),
        # by wing terms beyond its quotes where those will do, so the quoted smile stays the free fit
        free = [fit_svi(e.inputs.k, e.inputs.iv_mid, e.t, e.inputs.weights, None, grid) for e in order]
        rng = [(float(e.inputs.k.min()), float(e.inputs.k.max())) if e.inputs.k.shape[0] else (0.0, -1.0)
               for e in order]  # fmt: skip
        free_w = [total_variance(f.params, grid) if f.status == FIT_OK else None for f in free]
        # ceilings: the lowest later free fit, each over its own quoted range (suffix minima, longest first)
        ceilings: list[FloatArray] = [np.empty(0)] * len(order)
        env = np.full(grid.shape[0], np.inf)
        for j in range(len(order) - 1, -1, -1):
            ceilings[j] = env
            w = free_w[j]
            if w is not None:
                lo, hi = rng[j]
                env = env.copy()
                inside = (grid >= lo) & (grid <= hi)
                env[inside] = np.minimum(env[inside], w[inside])
        # caps for the wings beyond an expiry's quotes: the lowest later free fit, over the whole grid
        capf: list[FloatArray | None] = [None] * len(order)
        envf = np.full(grid.shape[0], np.inf)
        for j in range(len(order) - 1, -1, -1):
            capf[j] = envf
            w = free_w[j]
            if w is not None:
                envf = np.minimum(envf, w)
        prev: SviParams | None = None
        for j, e in enumerate(order):
            inp = e.inputs
            fit = free[j]
            own = free_w[j]
            ceil = ceilings[j]
            lo_j, hi_j = rng[j]
            params: SviParams | None = None
            has_ceil = bool(np.isfinite(ceil).any())
            if own is not None and not bool(np.any(own > ceil + 1e-9)):
                # the free fit, its wings lifted beyond its quotes where the earlier expiry's are higher
                params = shape_wings(fit.params, grid, lo_j, hi_j, prev, capf[j], checked=True)
            start = (fit.params.m, fit.params.sigma) if fit.status == FIT_OK else None
            if params is None and prev is not None:
                # held above the earlier expiry only over its own quotes widened, the wings lifted beyond
                mu = REFIT_MARGIN * max(hi_j - lo_j, 1e-3)
                near = (grid >= lo_j - mu) & (grid <= hi_j + mu)
                sub = fit_svi(inp.k, inp.iv_mid, e.t, e.inputs.weights, prev, grid[near], start=start,
                              ceiling=ceil[near] if has_ceil else None)  # fmt: skip
                if sub.status == FIT_OK:
                    params = shape_wings(sub.params, grid, lo_j, hi_j, prev, capf[j])
                    if params is not None:
                        fit = sub
            if params is None:
                fit = fit_svi(inp.k, inp.iv_mid, e.t, e.inputs.weights, prev, grid, start=start,
                              ceiling=ceil if has_ceil else None)  # fmt: skip
            elif fit.status != FIT_OK or params is not fit.params:
                fit = fit._replace(params=params, status=FIT_OK)
            status = fit.status
            if status == FIT_OK:
                self._good[e.expiry] = (fit.params, e.t, now)
            kept = self._good.get(e.expiry)
            # a kept fit must still sit above the expiry just published, or it is withheld
            if kept is not None and status != FIT_OK and prev is not None and not check_calendar(prev, kept[0], grid):
                kept = None
                status = FIT_CALENDAR
            if kept is None:
                out.append(PublishedSmile(e.expiry, e.t, None, status, math.nan, math.inf))
                continue
            params, _, fitted_at = kept
            prev = params
            out.append(PublishedSmile(e.expiry, e.t, params, status, fitted_at, now - fitted_at))
        return out


def surface_arbitrage_free(published: list[PublishedSmile], grid: FloatArray) -> tuple[int, int]:
    """(butterfly violations, calendar violations) among the published smiles on ``grid``, shortest first."""
    fly = cal = 0
    prev: SviParams | None = None
    for p in sorted(published, key=lambda e: e.t):
        if p.params is None:
            continue
        fly += 0 if check_butterfly(p.params, grid) else 1
        if prev is not None:
            cal += 0 if check_calendar(prev, p.params, grid) else 1
        prev = p.params
    return fly, cal
