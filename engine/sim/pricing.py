"""The simulator's theoretical option values: a vol surface plus ``greeks/`` kernels, with a cache.

Quotes are priced with the American pricer from ``greeks`` when it is exported (the European
Black-Scholes price otherwise, see ``PRICER``). Pricing thousands of contracts on every market step
would be wasteful, so each contract keeps a cached value with its delta and gamma at a reference
spot; between refreshes the value moves by a second-order Taylor step in spot. A row is repriced
when spot moved more than ``SPOT_MOVE`` (relative), its vol moved more than ``VOL_MOVE`` or enough
time passed for theta to matter.
"""

from __future__ import annotations

import numpy as np

import greeks
from engine.sim.config import UnderlyingConfig

_american = getattr(greeks, "american_price", None)
PRICER = "american" if _american is not None else "black_scholes"
"""Which kernel prices quotes (reported by ``/sim/state``)."""

SPOT_MOVE = 0.002
VOL_MOVE = 0.0025
MIN_REPRICE_S = 60.0
YEAR_S = 365.0 * 86400.0
MIN_T_YEARS = 1.0 / (365.0 * 24 * 60)  # one minute: a contract at its close still has a value


def price(
    spot: np.ndarray, strike: np.ndarray, t: np.ndarray, r: float, q: np.ndarray, sigma: np.ndarray, is_call: np.ndarray
) -> np.ndarray:
    """Option values per share (American when available)."""
    rr = np.full(len(strike), r)
    if _american is not None:
        return np.asarray(_american(spot, strike, t, rr, q, sigma, is_call), dtype=np.float64)
    return np.asarray(greeks.black_scholes_price(spot, strike, t, rr, q, sigma, is_call), dtype=np.float64)


class VolSurface:
    """Skewed smile with term structure around a stochastic short-end level."""

    def __init__(self, und: UnderlyingConfig) -> None:
        self.long_vol = und.atm_vol
        self.skew = und.skew
        self.curvature = und.smile_curvature
        self.term_slope = und.term_slope

    def sigma(self, inst_vol: float, spot: float, strike: np.ndarray, t: np.ndarray, r: float, q: float) -> np.ndarray:
        """Implied vol per contract: short expiries follow ``inst_vol``, long ones ``long_vol``."""
        w = np.exp(-t / 0.25)
        atm = inst_vol * w + self.long_vol * (1.0 - w) + self.term_slope * (np.minimum(t, 1.0) - 0.5)
        fwd = spot * np.exp((r - q) * t)
        x = np.log(strike / fwd) / np.sqrt(np.maximum(t, 1.0 / (365.0 * 4)))
        factor = np.clip(1.0 + self.skew * x + self.curvature * x * x, 0.5, 3.0)
        return np.asarray(np.maximum(atm, 0.03) * factor, dtype=np.float64)


class PriceCache:
    """Cached theoretical values (and their delta/gamma) per contract row."""

    def __init__(self) -> None:
        self.ref_spot = np.empty(0)
        self.ref_sigma = np.empty(0)
        self.ref_ns = np.empty(0, np.int64)
        self.value = np.empty(0)
        self.delta = np.empty(0)
        self.gamma = np.empty(0)
        self.repriced = 0
        """Rows repriced with the kernel so far (a cost counter for benchmarks)."""

    def grow(self, n: int) -> None:
        """Make room for ``n`` contracts (new rows start stale)."""
        extra = n - len(self.value)
        if extra <= 0:
            return
        self.ref_spot = np.concatenate([self.ref_spot, np.full(extra, np.nan)])
        self.ref_sigma = np.concatenate([self.ref_sigma, np.full(extra, np.nan)])
        self.ref_ns = np.concatenate([self.ref_ns, np.zeros(extra, np.int64)])
        self.value = np.concatenate([self.value, np.zeros(extra)])
        self.delta = np.concatenate([self.delta, np.zeros(extra)])
        self.gamma = np.concatenate([self.gamma, np.zeros(extra)])

    def theo(
        self,
        rows: np.ndarray,
        spot: np.ndarray,
        sigma: np.ndarray,
        t: np.ndarray,
        now_ns: int,
        strike: np.ndarray,
        is_call: np.ndarray,
        r: float,
        q: np.ndarray,
    ) -> np.ndarray:
        """Values of ``rows`` at the current state, repricing the stale ones in one kernel call."""
        age_s = (now_ns - self.ref_ns[rows]) / 1e9
        max_age = np.maximum(MIN_REPRICE_S, 0.02 * t * YEAR_S)
        stale = (
            np.isnan(self.ref_spot[rows])
            | (np.abs(spot / self.ref_spot[rows] - 1.0) > SPOT_MOVE)
            | (np.abs(sigma - self.ref_sigma[rows]) > VOL_MOVE)
            | (age_s > max_age)
        )
        if stale.any():
            s = np.flatnonzero(stale)
            rs = rows[s]
            tt = np.maximum(t[s], MIN_T_YEARS)
            self.value[rs] = price(spot[s], strike[s], tt, r, q[s], sigma[s], is_call[s])
            g = greeks.black_scholes_greeks(spot[s], strike[s], tt, np.full(len(s), r), q[s], sigma[s], is_call[s])
            self.delta[rs] = np.nan_to_num(np.asarray(g.delta))
            self.gamma[rs] = np.nan_to_num(np.asarray(g.gamma))
            self.ref_spot[rs] = spot[s]
            self.ref_sigma[rs] = sigma[s]
            self.ref_ns[rs] = now_ns
            self.repriced += len(s)
        ds = spot - self.ref_spot[rows]
        val = self.value[rows] + self.delta[rows] * ds + 0.5 * self.gamma[rows] * ds * ds
        intrinsic = np.where(is_call, spot - strike, strike - spot)
        return np.asarray(np.maximum(np.nan_to_num(val), np.maximum(intrinsic, 0.0)), dtype=np.float64)


def years_to(expiry_ns: np.ndarray, now_ns: int) -> np.ndarray:
    """Calendar years from ``now_ns`` to each expiry (zero once passed)."""
    return np.asarray(np.maximum(expiry_ns - now_ns, 0) / (YEAR_S * 1e9), dtype=np.float64)
