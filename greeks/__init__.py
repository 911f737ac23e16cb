"""Pricing kernels: Black-Scholes, implied volatility, Greeks, American exercise, forwards, year fractions.

Numba kernels over whole arrays (``cache=True``); scalars are accepted and broadcast. Kernels never raise on
bad numbers: such rows get NaN and a status code (``greeks.status``). Argument order everywhere:
(price,) spot, strike, t, r, q, (sigma,) is_call. Units: see ``greeks.black``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from greeks._numba_startup import skip_blas_probe

skip_blas_probe()  # before any kernel loads: see greeks/_numba_startup.py

from greeks.black import (  # noqa: E402
    Greeks,
    IvGreeks,
    black_scholes_greeks,
    black_scholes_price,
    greeks_at_vol,
    implied_vol,
    implied_vol_and_greeks,
)
from greeks.status import (  # noqa: E402
    ABOVE_MAX,
    BAD_INPUT,
    BELOW_INTRINSIC,
    EXPIRED,
    NO_TIME_VALUE,
    NOT_COMPUTED,
    OK,
    STATUS_NAMES,
)

if TYPE_CHECKING:
    from greeks.american import (
        ACCURATE,
        FAST,
        AmericanResult,
        AmericanScheme,
        american_price,
        american_price_and_premium,
        early_exercise_premium,
        make_scheme,
    )
    from greeks.american_iv import EepCache, american_greeks, american_implied_vol, book_implied_vol_and_greeks
    from greeks.calendar import YEAR_NS, expiry_close_ns, expiry_close_ns_many, year_fraction
    from greeks.chain import ChainGreeks, chain_implied_vol_and_greeks
    from greeks.forward import (
        ForwardEstimate,
        carry_forward,
        escrowed_spot,
        forward_with_dividends,
        implied_carry,
        parity_forward,
    )

# Hot-path names above load eagerly; the rest load on first use, which keeps a cold start short.
_LAZY = {
    "ACCURATE": "greeks.american",
    "AmericanResult": "greeks.american",
    "AmericanScheme": "greeks.american",
    "ChainGreeks": "greeks.chain",
    "EepCache": "greeks.american_iv",
    "FAST": "greeks.american",
    "ForwardEstimate": "greeks.forward",
    "carry_forward": "greeks.forward",
    "escrowed_spot": "greeks.forward",
    "forward_with_dividends": "greeks.forward",
    "implied_carry": "greeks.forward",
    "parity_forward": "greeks.forward",
    "YEAR_NS": "greeks.calendar",
    "american_greeks": "greeks.american_iv",
    "american_implied_vol": "greeks.american_iv",
    "american_price": "greeks.american",
    "american_price_and_premium": "greeks.american",
    "book_implied_vol_and_greeks": "greeks.american_iv",
    "chain_implied_vol_and_greeks": "greeks.chain",
    "early_exercise_premium": "greeks.american",
    "expiry_close_ns": "greeks.calendar",
    "expiry_close_ns_many": "greeks.calendar",
    "make_scheme": "greeks.american",
    "year_fraction": "greeks.calendar",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greeks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ABOVE_MAX",
    "ACCURATE",
    "BAD_INPUT",
    "BELOW_INTRINSIC",
    "EXPIRED",
    "FAST",
    "NOT_COMPUTED",
    "NO_TIME_VALUE",
    "OK",
    "STATUS_NAMES",
    "YEAR_NS",
    "AmericanResult",
    "AmericanScheme",
    "ChainGreeks",
    "EepCache",
    "ForwardEstimate",
    "Greeks",
    "IvGreeks",
    "american_greeks",
    "american_implied_vol",
    "american_price",
    "american_price_and_premium",
    "black_scholes_greeks",
    "black_scholes_price",
    "book_implied_vol_and_greeks",
    "carry_forward",
    "chain_implied_vol_and_greeks",
    "early_exercise_premium",
    "escrowed_spot",
    "expiry_close_ns",
    "expiry_close_ns_many",
    "forward_with_dividends",
    "greeks_at_vol",
    "implied_carry",
    "implied_vol",
    "implied_vol_and_greeks",
    "make_scheme",
    "parity_forward",
    "year_fraction",
]
