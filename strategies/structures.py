"""Option structures: vertical, straddle, strangle, iron condor, iron butterfly, calendar.

A ``Structure`` is a named set of legs with signed ratios per unit (+long, -short). It knows its
payoff at expiry, its exact max loss and max profit and its breakevens for a given net premium
(``risk.payoff``), its aggregated Greeks from a book, its mid and natural net prices, and the
``Leg``s of the intent that opens or closes it. Builders take contracts as book rows, so a strategy
selects rows with ``strategies.selection`` and wraps them here.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence

import msgspec
import numpy as np

from domain.orders import CONTRACT_MULTIPLIER, Leg, PositionIntent, Side
from domain.views import ChainView, PortfolioGreeks
from risk.payoff import PayoffLeg, PayoffSummary, payoff_usd, summarize


class StructureKind(enum.StrEnum):
    VERTICAL = "vertical"
    STRADDLE = "straddle"
    STRANGLE = "strangle"
    IRON_CONDOR = "iron_condor"
    IRON_BUTTERFLY = "iron_butterfly"
    CALENDAR = "calendar"


class StructureLeg(msgspec.Struct, frozen=True):
    """One contract of a structure and its signed ratio per unit (+long, -short)."""

    symbol: str
    strike: float
    is_call: bool
    expiry: dt.date
    ratio: int


class Structure(msgspec.Struct, frozen=True):
    kind: StructureKind
    underlying: str
    legs: tuple[StructureLeg, ...]

    # ---- payoff
    def payoff_legs(self) -> list[PayoffLeg]:
        return [PayoffLeg(float(leg.ratio), leg.strike, leg.is_call, float(leg.expiry.toordinal()))
                for leg in self.legs]

    def summary(self, net_premium: float, qty: int = 1) -> PayoffSummary:
        """Max loss, max profit (dollars for ``qty`` units) and breakevens at ``net_premium`` (+debit/-credit)."""
        return summarize(self.payoff_legs(), net_premium, float(qty))

    def payoff_at(self, spot: float, net_premium: float, qty: int = 1) -> float:
        """Dollar payoff at (the earliest) expiry for terminal ``spot``, premium included."""
        return payoff_usd(self.payoff_legs(), net_premium, spot, float(qty))

    def max_loss_usd(self, net_premium: float, qty: int = 1) -> float:
        return self.summary(net_premium, qty).max_loss_usd

    def max_profit_usd(self, net_premium: float, qty: int = 1) -> float:
        return self.summary(net_premium, qty).max_profit_usd

    def breakevens(self, net_premium: float) -> tuple[float, ...]:
        return self.summary(net_premium).breakevens

    @property
    def width(self) -> float:
        """The widest distance between a short strike and the long strike protecting it (0 if none)."""
        w = 0.0
        for is_call in (True, False):
            shorts = [leg.strike for leg in self.legs if leg.is_call is is_call and leg.ratio < 0]
            longs = [leg.strike for leg in self.legs if leg.is_call is is_call and leg.ratio > 0]
            for s in shorts:
                dists = [abs(k - s) for k in longs]
                if dists:
                    w = max(w, min(dists))
        return w

    @property
    def expiry(self) -> dt.date:
        """The earliest expiry of the legs."""
        return min(leg.expiry for leg in self.legs)

    # ---- market
    def rows(self, chain: ChainView) -> list[int]:
        return [chain.row_of(leg.symbol) for leg in self.legs]

    def net_prices(self, chain: ChainView) -> tuple[float, float]:
        """(mid, natural) net price per unit to OPEN (+debit/-credit); NaN when a leg is not in the book."""
        mid = nat = 0.0
        for leg in self.legs:
            r = chain.row_of(leg.symbol)
            if r < 0:
                return math.nan, math.nan
            bid, ask = float(chain.bid[r]), float(chain.ask[r])
            mid += leg.ratio * 0.5 * (bid + ask)
            nat += leg.ratio * (ask if leg.ratio > 0 else bid)
        return mid, nat

    def greeks(self, chain: ChainView, qty: float = 1.0) -> PortfolioGreeks:
        """Aggregated Greeks of ``qty`` units in trader units (shares, shares per $1, $ per vol pt, $ per day)."""
        d = g = v = th = 0.0
        for leg in self.legs:
            r = chain.row_of(leg.symbol)
            if r < 0:
                return PortfolioGreeks(math.nan, math.nan, math.nan, math.nan)
            q = leg.ratio * qty * CONTRACT_MULTIPLIER
            d += q * float(chain.delta[r])
            g += q * float(chain.gamma[r])
            v += q * float(chain.vega[r])
            th += q * float(chain.theta[r])
        return PortfolioGreeks(d, g, v / 100.0, th / 365.0)

    # ---- orders
    def open_legs(self) -> tuple[Leg, ...]:
        return tuple(
            Leg(leg.symbol, Side.BUY if leg.ratio > 0 else Side.SELL, abs(leg.ratio),
                PositionIntent.BUY_TO_OPEN if leg.ratio > 0 else PositionIntent.SELL_TO_OPEN)
            for leg in self.legs)

    def close_legs(self) -> tuple[Leg, ...]:
        return tuple(
            Leg(leg.symbol, Side.SELL if leg.ratio > 0 else Side.BUY, abs(leg.ratio),
                PositionIntent.SELL_TO_CLOSE if leg.ratio > 0 else PositionIntent.BUY_TO_CLOSE)
            for leg in self.legs)


# ---------------------------------------------------------------------------------------------- builders


def leg_from_row(chain: ChainView, row: int, ratio: int) -> StructureLeg:
    """The structure leg for book row ``row`` with signed ``ratio``."""
    expiry = chain.expiry[row].astype("datetime64[D]").item()
    return StructureLeg(str(chain.symbols[row]), float(chain.strike[row]), bool(chain.is_call[row]), expiry, ratio)


def _check(chain: ChainView, rows: Sequence[int]) -> None:
    if any(r < 0 for r in rows):
        raise ValueError(f"structure leg not in the {chain.underlying} book: rows {list(rows)}")


def vertical(chain: ChainView, long_row: int, short_row: int) -> Structure:
    """A call or put spread: long one contract, short another of the same right and expiry."""
    _check(chain, (long_row, short_row))
    if bool(chain.is_call[long_row]) != bool(chain.is_call[short_row]):
        raise ValueError("a vertical needs two contracts of the same right")
    if chain.expiry[long_row] != chain.expiry[short_row]:
        raise ValueError("a vertical needs two contracts of the same expiry")
    return Structure(StructureKind.VERTICAL, chain.underlying,
                     (leg_from_row(chain, long_row, 1), leg_from_row(chain, short_row, -1)))


def straddle(chain: ChainView, call_row: int, put_row: int, long: bool = True) -> Structure:
    _check(chain, (call_row, put_row))
    if chain.strike[call_row] != chain.strike[put_row] or chain.expiry[call_row] != chain.expiry[put_row]:
        raise ValueError("a straddle needs a call and a put of the same strike and expiry")
    s = 1 if long else -1
    return Structure(StructureKind.STRADDLE, chain.underlying,
                     (leg_from_row(chain, call_row, s), leg_from_row(chain, put_row, s)))


def strangle(chain: ChainView, call_row: int, put_row: int, long: bool = True) -> Structure:
    _check(chain, (call_row, put_row))
    if chain.expiry[call_row] != chain.expiry[put_row]:
        raise ValueError("a strangle needs a call and a put of the same expiry")
    s = 1 if long else -1
    return Structure(StructureKind.STRANGLE, chain.underlying,
                     (leg_from_row(chain, call_row, s), leg_from_row(chain, put_row, s)))


def iron_condor(chain: ChainView, long_put: int, short_put: int, short_call: int, long_call: int) -> Structure:
    """Short put spread plus short call spread (credit): long_put < short_put <= short_call < long_call."""
    rows = (long_put, short_put, short_call, long_call)
    _check(chain, rows)
    k = [float(chain.strike[r]) for r in rows]
    if not (k[0] < k[1] <= k[2] < k[3]):
        raise ValueError(f"iron condor strikes out of order: {k}")
    if len({chain.expiry[r] for r in rows}) != 1:
        raise ValueError("an iron condor needs one expiry")
    kind = StructureKind.IRON_BUTTERFLY if k[1] == k[2] else StructureKind.IRON_CONDOR
    return Structure(kind, chain.underlying, (
        leg_from_row(chain, long_put, 1), leg_from_row(chain, short_put, -1),
        leg_from_row(chain, short_call, -1), leg_from_row(chain, long_call, 1)))


def iron_butterfly(chain: ChainView, long_put: int, short_put: int, short_call: int, long_call: int) -> Structure:
    """An iron condor whose short put and short call share the strike."""
    if chain.strike[short_put] != chain.strike[short_call]:
        raise ValueError("an iron butterfly's short strikes must be equal")
    return iron_condor(chain, long_put, short_put, short_call, long_call)


def calendar(chain: ChainView, near_row: int, far_row: int) -> Structure:
    """Long calendar: short the near expiry, long the far one, same strike and right."""
    _check(chain, (near_row, far_row))
    if chain.strike[near_row] != chain.strike[far_row] or bool(chain.is_call[near_row]) != bool(chain.is_call[far_row]):
        raise ValueError("a calendar needs the same strike and right in two expiries")
    if not chain.expiry[near_row] < chain.expiry[far_row]:
        raise ValueError("a calendar's near leg must expire first")
    return Structure(StructureKind.CALENDAR, chain.underlying,
                     (leg_from_row(chain, near_row, -1), leg_from_row(chain, far_row, 1)))


def expiry_of(chain: ChainView, row: int) -> dt.date:
    value: dt.date = np.datetime64(chain.expiry[row], "D").item()
    return value
