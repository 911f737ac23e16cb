"""Chain helper: one implied volatility per strike from the out-of-the-money side, Greeks for both sides.

Per strike the out-of-the-money option carries the information (its price is all time value, and its quote
is the tighter one): puts below the forward, calls at or above it. Where that side cannot be inverted (no
quote, below intrinsic, no time value) the in-the-money side is tried. The call and the put of the strike then
share that sigma, so both sides' Greeks are consistent with parity. One Numba pass over the strikes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from greeks.black import BoolArray, FloatArray, Greeks, StatusArray, greeks_row, implied_vol_row
from greeks.status import NOT_COMPUTED, OK, STATUS_DTYPE

SideArray = npt.NDArray[np.int8]
CALL_SIDE = 1
PUT_SIDE = -1
NO_SIDE = 0


class ChainGreeks(NamedTuple):
    """Per strike: sigma, status, the side it came from (+1 call, -1 put, 0 none) and both sides' Greeks."""

    sigma: FloatArray
    status: StatusArray
    side: SideArray
    call: Greeks
    put: Greeks

    @classmethod
    def empty(cls, n: int) -> ChainGreeks:
        """Preallocate outputs for ``n`` strikes (NaN values, status NOT_COMPUTED, side 0)."""
        return cls(
            np.full(n, np.nan),
            np.full(n, NOT_COMPUTED, dtype=STATUS_DTYPE),
            np.zeros(n, dtype=np.int8),
            Greeks.empty(n),
            Greeks.empty(n),
        )


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _write_greeks(i: int, g: tuple[float, float, float, float, float], out: tuple[FloatArray, ...]) -> None:
    out[0][i] = g[0]
    out[1][i] = g[1]
    out[2][i] = g[2]
    out[3][i] = g[3]
    out[4][i] = g[4]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _chain_kernel(
    call_price: FloatArray,
    put_price: FloatArray,
    strike: FloatArray,
    spot: FloatArray,
    t: FloatArray,
    r: FloatArray,
    q: FloatArray,
    mask: BoolArray,
    use_mask: bool,
    min_time_value: float,
    sigma: FloatArray,
    status: StatusArray,
    side: SideArray,
    call_out: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    put_out: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
) -> None:
    for i in range(sigma.shape[0]):
        if use_mask and not mask[i]:
            continue
        s, k, tt, rr, qq = spot[i], strike[i], t[i], r[i], q[i]
        # Strike vs forward, compared in logs: ln(S/K) + (r - q) t > 0 means K is below the forward.
        otm_is_call = not (math.log(s / k) + (rr - qq) * tt > 0.0) if s > 0.0 and k > 0.0 else True
        first = call_price[i] if otm_is_call else put_price[i]
        vol, code = implied_vol_row(first, s, k, tt, rr, qq, otm_is_call, min_time_value)
        used = CALL_SIDE if otm_is_call else PUT_SIDE
        if code != OK:
            second = put_price[i] if otm_is_call else call_price[i]
            vol2, code2 = implied_vol_row(second, s, k, tt, rr, qq, not otm_is_call, min_time_value)
            if code2 == OK:
                vol, code = vol2, code2
                used = -used
        sigma[i] = vol
        status[i] = code
        side[i] = used if code == OK else NO_SIDE
        _write_greeks(i, greeks_row(s, k, tt, rr, qq, vol, True), call_out)
        _write_greeks(i, greeks_row(s, k, tt, rr, qq, vol, False), put_out)


def chain_implied_vol_and_greeks(
    call_price: npt.ArrayLike,
    put_price: npt.ArrayLike,
    strike: npt.ArrayLike,
    spot: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    q: npt.ArrayLike,
    out: ChainGreeks | None = None,
    mask: npt.ArrayLike | None = None,
    min_time_value: float = 0.0,
) -> ChainGreeks:
    """Sigma per strike from the out-of-the-money side (vs the forward S exp((r - q) t)), Greeks for both sides.

    Rows are strikes; ``call_price``/``put_price`` are that strike's call and put prices (NaN when absent).
    For an expiry's market forward F, pass ``q = implied_carry(F, S, t, r)``. ``out``/``mask`` work as in
    ``implied_vol_and_greeks``. The status is that of the side used (or of the out-of-the-money side if
    neither could be inverted); both sides' Greeks are NaN where sigma is.
    Outputs are flat arrays, one row per strike.
    """
    flags = np.zeros(0, dtype=np.bool_)
    arrays = [np.asarray(a, dtype=np.float64) for a in (call_price, put_price, strike, spot, t, r, q)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    c_, p_, k_, s_, t_, r_, q_ = (np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1) for a in arrays)
    n = k_.shape[0]
    if mask is None:
        m_, use_mask = flags, False
    else:
        m_ = np.ascontiguousarray(np.asarray(mask, dtype=np.bool_)).reshape(-1)
        use_mask = True
        if m_.shape[0] != n:
            raise ValueError(f"mask has {m_.shape[0]} rows, inputs have {n}")
    res = ChainGreeks.empty(n) if out is None else out
    _chain_kernel(
        c_, p_, k_, s_, t_, r_, q_, m_, use_mask, float(min_time_value),
        res.sigma, res.status, res.side, res.call, res.put,
    )  # fmt: skip
    return res
