"""OCC option symbols as Alpaca writes them: ROOT + YYMMDD + C|P + strike x 1000 (8 digits).

Alpaca drops the OCC space padding of the root, and adjusted contracts carry a digit in the root
(``CSGP1251017P00001000``), so a symbol is parsed from the right: the last 15 characters are the
date (6), the right (1) and the strike (8); the rest is the root.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

OCC_TAIL_LEN = 15
STRIKE_SCALE = 1000


class OccSymbol(NamedTuple):
    """The parts of an OCC option symbol."""

    root: str
    expiry: dt.date
    is_call: bool
    strike: float


class OccSymbolError(ValueError):
    """A string that is not an OCC option symbol."""


def parse_occ(symbol: str) -> OccSymbol:
    """Split an OCC symbol into root, expiry date, right and strike; raise OccSymbolError if malformed."""
    if not isinstance(symbol, str) or len(symbol) < OCC_TAIL_LEN + 1 or len(symbol) > OCC_TAIL_LEN + 6:
        raise OccSymbolError(f"not an OCC option symbol: {symbol!r}")
    root, date_s, right, strike_s = (
        symbol[:-OCC_TAIL_LEN],
        symbol[-OCC_TAIL_LEN:-9],
        symbol[-9],
        symbol[-8:],
    )
    if not (root.isalnum() and root.isupper() and root[0].isalpha()):
        raise OccSymbolError(f"bad root in option symbol: {symbol!r}")
    if right not in ("C", "P") or not date_s.isdigit() or not strike_s.isdigit():
        raise OccSymbolError(f"not an OCC option symbol: {symbol!r}")
    try:
        expiry = dt.date(2000 + int(date_s[:2]), int(date_s[2:4]), int(date_s[4:6]))
    except ValueError as exc:
        raise OccSymbolError(f"bad expiry date in option symbol: {symbol!r}") from exc
    strike_milli = int(strike_s)
    if strike_milli <= 0:
        raise OccSymbolError(f"non-positive strike in option symbol: {symbol!r}")
    return OccSymbol(root, expiry, right == "C", strike_milli / STRIKE_SCALE)


def format_occ(root: str, expiry: dt.date, is_call: bool, strike: float) -> str:
    """Build the OCC symbol for a contract (strike rounded to a tenth of a cent)."""
    strike_milli = round(strike * STRIKE_SCALE)
    if not 0 < strike_milli < 100_000_000:
        raise OccSymbolError(f"strike out of OCC range: {strike}")
    return f"{root}{expiry:%y%m%d}{'C' if is_call else 'P'}{strike_milli:08d}"


def is_occ_symbol(symbol: str) -> bool:
    """True when ``symbol`` parses as an OCC option symbol."""
    try:
        parse_occ(symbol)
    except OccSymbolError:
        return False
    return True
