"""Option tick classes: the minimum price increment of a contract depends on its class and on the price itself.

``penny_all`` (SPY, QQQ, IWM) trades in $0.01 at every price; ``penny`` (Penny Interval Program) in $0.01
below $3.00 and $0.05 at or above; ``non_penny`` in $0.05 below $3.00 and $0.10 at or above. $3.00 itself is
on every grid, so rounding below the break uses the small tick and above it the large one. Classes are kept
as small integer codes so the market can quote whole chains with numpy.
"""

from __future__ import annotations

import numpy as np

from engine.sim.config import TickClass

PENNY, PENNY_ALL, NON_PENNY = 0, 1, 2
CODE: dict[TickClass, int] = {"penny": PENNY, "penny_all": PENNY_ALL, "non_penny": NON_PENNY}
BREAK_USD = 3.0
_BELOW = np.array([0.01, 0.01, 0.05])
_AT_OR_ABOVE = np.array([0.05, 0.01, 0.10])
_EPS = 1e-9


def tick_at(code: int, price: float) -> float:
    """The minimum increment of a price in class ``code`` (the tick of the price itself, not of the quote)."""
    return float(_AT_OR_ABOVE[code] if abs(price) >= BREAK_USD - _EPS else _BELOW[code])


def on_grid(code: int, price: float) -> bool:
    """Whether ``price`` is a whole number of its class's ticks."""
    units = abs(price) / tick_at(code, price)
    return abs(units - round(units)) <= 1e-6


def floor_grid(codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The largest grid price <= ``x`` per element (``x`` >= 0)."""
    tick = np.where(x >= BREAK_USD - _EPS, _AT_OR_ABOVE[codes], _BELOW[codes])
    out: np.ndarray = np.floor(x / tick + _EPS) * tick
    return out


def ceil_grid(codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The smallest grid price >= ``x`` per element (``x`` >= 0)."""
    tick = np.where(x > BREAK_USD + _EPS, _AT_OR_ABOVE[codes], _BELOW[codes])
    out: np.ndarray = np.ceil(x / tick - _EPS) * tick
    return out
