"""Forward and carry per expiry: parity-implied forward from call/put quotes, escrowed discrete dividends.

The kernels take (spot, r, q); an expiry's market forward F enters through the implied carry
``q = r - ln(F / S) / t`` (``implied_carry``), so every contract of that expiry prices off the same forward.
With known discrete dividends, the escrowed-dividend model prices off ``S* = S - PV(dividends before expiry)``
(``escrowed_spot``) with q = 0 (or a borrow rate).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_NEAR_PAIRS = 8
"""Strikes nearest the fallback forward used for the parity estimate."""
DEFAULT_MAX_REL_SPREAD = 0.25
"""A pair is skipped when either side's bid/ask spread exceeds this fraction of its mid."""
DEFAULT_MAX_DEVIATION = 0.10
"""A parity forward further than this fraction from spot * exp((r - q) t) is rejected as a bad print."""


class ForwardEstimate(NamedTuple):
    """The forward for one expiry and where it came from."""

    forward: float
    pairs_used: int
    from_parity: bool


def carry_forward(spot: float, t: float, r: float, q: float = 0.0) -> float:
    """Forward from continuous carry: spot * exp((r - q) t)."""
    return spot * math.exp((r - q) * t)


def implied_carry(forward: npt.ArrayLike, spot: npt.ArrayLike, t: npt.ArrayLike, r: npt.ArrayLike) -> FloatArray:
    """Continuous yield q that makes spot * exp((r - q) t) equal ``forward`` (NaN where t <= 0)."""
    f, s, tt, rr = (np.asarray(a, dtype=np.float64) for a in (forward, spot, t, r))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = rr - np.log(f / s) / tt
    return np.asarray(np.where(tt > 0.0, q, np.nan), dtype=np.float64)


def _weighted_median(values: FloatArray, weights: FloatArray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[np.searchsorted(cum, 0.5 * cum[-1])])


def parity_forward(
    strike: npt.ArrayLike,
    call_bid: npt.ArrayLike,
    call_ask: npt.ArrayLike,
    put_bid: npt.ArrayLike,
    put_ask: npt.ArrayLike,
    spot: float,
    t: float,
    r: float,
    q: float = 0.0,
    n_near: int = DEFAULT_NEAR_PAIRS,
    max_rel_spread: float = DEFAULT_MAX_REL_SPREAD,
    max_deviation: float = DEFAULT_MAX_DEVIATION,
) -> ForwardEstimate:
    """Estimate one expiry's forward from put-call parity C - P = D (F - K) near the money.

    Each usable strike (two-sided, uncrossed quotes no wider than ``max_rel_spread`` of mid) gives
    F_k = K + (C_mid - P_mid) / D; among the ``n_near`` strikes closest to spot * exp((r - q) t) the estimate is
    the median weighted by 1/(spread_C + spread_P)^2, so one stale or wide pair cannot move it. Falls back to
    spot * exp((r - q) t) when no pair qualifies or the estimate deviates by more than ``max_deviation``.
    """
    fallback = carry_forward(spot, t, r, q)
    k, cb, ca, pb, pa = (
        np.asarray(a, dtype=np.float64).reshape(-1) for a in (strike, call_bid, call_ask, put_bid, put_ask)
    )
    if not (math.isfinite(fallback) and t > 0.0 and k.size):
        return ForwardEstimate(fallback, 0, False)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm, pm = 0.5 * (cb + ca), 0.5 * (pb + pa)
        cs, ps = ca - cb, pa - pb
        usable = (
            np.isfinite(k + cb + ca + pb + pa)
            & (k > 0.0)
            & (cb > 0.0)
            & (pb > 0.0)
            & (cs >= 0.0)
            & (ps >= 0.0)
            & (cs <= max_rel_spread * cm)
            & (ps <= max_rel_spread * pm)
        )
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        return ForwardEstimate(fallback, 0, False)
    idx = idx[np.argsort(np.abs(k[idx] - fallback), kind="stable")[:n_near]]
    discount = math.exp(-r * t)
    f_k = k[idx] + (cm[idx] - pm[idx]) / discount
    # A zero spread (locked quotes) gets the weight of a one-hundredth-of-a-cent spread, not infinity.
    width = np.maximum(cs[idx] + ps[idx], 1e-4)
    forward = _weighted_median(f_k, 1.0 / (width * width))
    if not (math.isfinite(forward) and abs(forward / fallback - 1.0) <= max_deviation):
        return ForwardEstimate(fallback, 0, False)
    return ForwardEstimate(forward, int(idx.size), True)


def dividends_present_value(
    t: npt.ArrayLike, r: npt.ArrayLike, dividend_t: npt.ArrayLike, dividend_amount: npt.ArrayLike
) -> FloatArray:
    """PV of the cash dividends whose ex-date falls in (0, t], per row of ``t`` (years from now)."""
    tt = np.asarray(t, dtype=np.float64)
    rr = np.asarray(r, dtype=np.float64)
    dt_ = np.asarray(dividend_t, dtype=np.float64).reshape(-1)
    amt = np.asarray(dividend_amount, dtype=np.float64).reshape(-1)
    if dt_.shape != amt.shape:
        raise ValueError(f"{dt_.size} dividend times but {amt.size} amounts")
    tt_b, rr_b = np.broadcast_arrays(tt, rr)
    live = (dt_ > 0.0) & (dt_[None, :] <= tt_b.reshape(-1, 1))
    pv = np.where(live, amt * np.exp(-rr_b.reshape(-1, 1) * dt_), 0.0).sum(axis=1)
    return np.asarray(pv.reshape(tt_b.shape), dtype=np.float64)


def escrowed_spot(
    spot: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    dividend_t: npt.ArrayLike,
    dividend_amount: npt.ArrayLike,
) -> FloatArray:
    """Spot less the PV of dividends going ex before expiry (the escrowed-dividend model's underlying)."""
    return np.asarray(spot, dtype=np.float64) - dividends_present_value(t, r, dividend_t, dividend_amount)


def forward_with_dividends(
    spot: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    dividend_t: npt.ArrayLike,
    dividend_amount: npt.ArrayLike,
    q: npt.ArrayLike = 0.0,
) -> FloatArray:
    """Forward with discrete dividends: (S - PV(divs)) exp((r - q) t); q is an extra yield (e.g. borrow)."""
    s_star = escrowed_spot(spot, t, r, dividend_t, dividend_amount)
    tt, rr, qq = (np.asarray(a, dtype=np.float64) for a in (t, r, q))
    return np.asarray(s_star * np.exp((rr - qq) * tt), dtype=np.float64)
