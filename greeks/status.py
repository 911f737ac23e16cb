"""Per-row status codes returned by the kernels (numpy int8 arrays).

A row that is not ``OK`` carries NaN outputs: a kernel never returns a number that is not a solution.
"""

from __future__ import annotations

from typing import Final

import numpy as np

OK: Final = 0
"""Solved; outputs are valid."""
BELOW_INTRINSIC: Final = 1
"""Price below the (forward) intrinsic value: no volatility reproduces it."""
ABOVE_MAX: Final = 2
"""Price at or above the no-arbitrage maximum (discounted forward for a call, discounted strike for a put)."""
NO_TIME_VALUE: Final = 3
"""Time value not above the caller's threshold (e.g. half a tick) or below numerical resolution."""
EXPIRED: Final = 4
"""Time to expiry is zero or negative."""
BAD_INPUT: Final = 5
"""NaN or infinite input, or non-positive price, strike, spot or volatility."""
NOT_COMPUTED: Final = 6
"""Row excluded by the caller's mask in a freshly allocated output (masked rows of ``out`` are left untouched)."""

FROM_SURFACE: Final = 7
"""IV and Greeks come from the fitted volatility surface: the row's own quote is stale, one-sided, crossed or
unsolvable (set by the engine's book, never by a kernel)."""

STATUS_DTYPE: Final = np.int8

STATUS_NAMES: Final[dict[int, str]] = {
    OK: "OK",
    BELOW_INTRINSIC: "BELOW_INTRINSIC",
    ABOVE_MAX: "ABOVE_MAX",
    NO_TIME_VALUE: "NO_TIME_VALUE",
    EXPIRED: "EXPIRED",
    BAD_INPUT: "BAD_INPUT",
    NOT_COMPUTED: "NOT_COMPUTED",
    FROM_SURFACE: "FROM_SURFACE",
}
