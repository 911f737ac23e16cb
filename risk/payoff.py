"""Exact payoff at expiry of a set of option and stock legs, with max loss, max profit and breakevens.

A position in options of one expiry (plus stock) has a piecewise-linear payoff in the terminal spot
``S``: its kinks are the strikes. The exact minimum and maximum over ``S >= 0`` are therefore found by
evaluating the payoff at ``S = 0`` and at every strike, plus the slope beyond the last strike (a
negative slope there means an unbounded loss, a positive one an unbounded profit). Breakevens are
the roots of the piecewise-linear function, found segment by segment.

Mixed expiries (calendars) are valued at the earliest expiry with later legs at intrinsic value:
a long later leg is then worth at least that much, so the loss bound stays exact for the usual
long calendar (max loss = the debit) and conservative otherwise.

Money is per structure in dollars: ``qty`` units, each leg ``ratio`` contracts of ``multiplier``
shares; ``net_premium`` is per unit in Alpaca's mleg sign convention (+debit paid, -credit received).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from domain.orders import CONTRACT_MULTIPLIER


class PayoffLeg(NamedTuple):
    """One leg for payoff purposes: signed quantity per structure unit (+long, -short).

    ``strike`` is ignored for stock (``is_stock=True``); stock legs count shares, option legs contracts.
    ``expiry_key`` orders expiries (a date ordinal or the time to expiry); only relative order matters.
    """

    qty: float
    strike: float
    is_call: bool
    expiry_key: float = 0.0
    is_stock: bool = False


class PayoffSummary(NamedTuple):
    """Extremes of a structure's payoff at (the earliest) expiry, in dollars for the whole quantity."""

    max_loss_usd: float
    """Largest possible loss, >= 0 (inf when unbounded)."""
    max_profit_usd: float
    """Largest possible profit (inf when unbounded; may be negative for a sure loss)."""
    breakevens: tuple[float, ...]
    """Terminal spots where the payoff (premium included) is zero, ascending."""


def _leg_value(leg: PayoffLeg, spot: float) -> float:
    """Value per unit (in underlying price terms, before the multiplier) of one leg at terminal ``spot``."""
    if leg.is_stock:
        return leg.qty * spot
    intrinsic = max(spot - leg.strike, 0.0) if leg.is_call else max(leg.strike - spot, 0.0)
    return leg.qty * intrinsic


def payoff_usd(legs: Sequence[PayoffLeg], net_premium: float, spot: float, qty: float = 1.0,
               multiplier: int = CONTRACT_MULTIPLIER) -> float:
    """Payoff at the earliest expiry in dollars, premium included, at terminal ``spot``."""
    total = 0.0
    for leg in legs:
        value = _leg_value(leg, spot)
        # Stock legs are in shares already: their multiplier is 1 per share, so undo the contract one.
        total += value / multiplier if leg.is_stock else value
    return (total - net_premium) * multiplier * qty


def _extremes(legs: Sequence[PayoffLeg], net_premium: float, scale: float,
              multiplier: int) -> tuple[list[float], list[float], float]:
    """Kinks (0 and every strike), payoff in dollars at each, and the slope beyond the last one."""
    strikes = sorted({leg.strike for leg in legs if not leg.is_stock})
    points = [0.0, *strikes]
    values: list[float] = []
    slope = 0.0
    for leg in legs:
        if leg.is_stock:
            slope += leg.qty / multiplier
        elif leg.is_call:
            slope += leg.qty
    for x in points:
        total = 0.0
        for q, k, is_call, _, is_stock in legs:
            if is_stock:
                total += q * x / multiplier
            elif is_call:
                if x > k:
                    total += q * (x - k)
            elif k > x:
                total += q * (k - x)
        values.append((total - net_premium) * scale)
    return points, values, slope * scale


def max_loss_usd(legs: Sequence[PayoffLeg], net_premium: float, qty: float = 1.0,
                 multiplier: int = CONTRACT_MULTIPLIER) -> float:
    """Exact max loss only (the gate's fast path of ``summarize``)."""
    if not legs:
        return max(net_premium * multiplier * qty, 0.0)
    _, values, slope = _extremes(legs, net_premium, multiplier * qty, multiplier)
    return math.inf if slope < 0 else max(-min(values), 0.0)


def loss_and_range_usd(legs: Sequence[PayoffLeg], net_premium: float, qty: float = 1.0,
                       multiplier: int = CONTRACT_MULTIPLIER) -> tuple[float, float]:
    """(exact max loss, max payoff - min payoff) in dollars; the range is inf when the payoff is unbounded."""
    if not legs:
        return max(net_premium * multiplier * qty, 0.0), 0.0
    _, values, slope = _extremes(legs, net_premium, multiplier * qty, multiplier)
    lo = min(values)
    loss = math.inf if slope < 0 else max(-lo, 0.0)
    return loss, (max(values) - lo if slope == 0 else math.inf)


def summarize(legs: Sequence[PayoffLeg], net_premium: float, qty: float = 1.0,
              multiplier: int = CONTRACT_MULTIPLIER) -> PayoffSummary:
    """Exact max loss, max profit and breakevens of ``legs`` bought for ``net_premium`` per unit."""
    if not legs:
        pnl = -net_premium * multiplier * qty
        return PayoffSummary(max(-pnl, 0.0), pnl, ())
    points, values, slope = _extremes(legs, net_premium, multiplier * qty, multiplier)
    # Beyond the last kink the payoff is linear with ``slope``.
    max_loss = math.inf if slope < 0 else max(-min(values), 0.0)
    max_profit = math.inf if slope > 0 else max(values)
    return PayoffSummary(max_loss, max_profit, _breakevens(points, values, slope))


def _breakevens(points: Sequence[float], values: Sequence[float], slope_tail: float) -> tuple[float, ...]:
    roots: list[float] = []
    for i in range(len(points) - 1):
        x0, x1, y0, y1 = points[i], points[i + 1], values[i], values[i + 1]
        if y0 == 0.0:
            roots.append(x0)
        elif (y0 < 0.0) != (y1 < 0.0) and y1 != 0.0:
            roots.append(x0 + (x1 - x0) * (-y0) / (y1 - y0))
    x_last, y_last = points[-1], values[-1]
    if y_last == 0.0:
        roots.append(x_last)
    elif slope_tail != 0.0 and (y_last < 0.0) == (slope_tail > 0.0):
        roots.append(x_last - y_last / slope_tail)
    # Kinks where the payoff touches zero can be reported twice (end of one segment, start of the next).
    out: list[float] = []
    for r in roots:
        if not out or abs(r - out[-1]) > 1e-9:
            out.append(r)
    return tuple(out)


def uncovered_short_contracts(legs: Sequence[PayoffLeg], shares: float = 0.0,
                              multiplier: int = CONTRACT_MULTIPLIER) -> float:
    """Short option contracts not covered by a long of the same right expiring no earlier (or by shares).

    Short calls are covered first by long calls, then by long shares (``multiplier`` shares each);
    short puts only by long puts. Returns the number of naked contracts (0 when fully covered).
    """
    naked = 0.0
    spare_shares = max(shares, 0.0)
    for is_call in (True, False):
        shorts = [leg for leg in legs if not leg.is_stock and leg.is_call is is_call and leg.qty < 0]
        if not shorts:
            continue
        longs = [[leg.expiry_key, leg.qty] for leg in legs
                 if not leg.is_stock and leg.is_call is is_call and leg.qty > 0]
        latest_short = max(leg.expiry_key for leg in shorts)
        short_total = -sum(leg.qty for leg in shorts)
        if sum(q for key, q in longs if key >= latest_short) >= short_total:
            continue  # every short is matched by longs expiring no earlier than any short
        # Greedy: the latest shorts take the latest longs first.
        longs.sort(key=lambda e: -e[0])
        for short in sorted(shorts, key=lambda leg: -leg.expiry_key):
            need = -short.qty
            for entry in longs:
                if need <= 0:
                    break
                if entry[0] >= short.expiry_key and entry[1] > 0:
                    used = min(entry[1], need)
                    entry[1] -= used
                    need -= used
            if need > 0 and is_call and spare_shares > 0:
                used = min(spare_shares / multiplier, need)
                spare_shares -= used * multiplier
                need -= used
            naked += max(need, 0.0)
    return naked
