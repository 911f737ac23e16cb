"""Sizing a structure for a strategy: fixed fractional risk or fractional Kelly on its exact payoff.

Both size on the structure's exact max loss at the order's worst price (its limit). Kelly treats the
trade as a two-outcome bet - max profit with probability ``p``, max loss otherwise - with ``p`` from
the book's deltas: for short strikes, the chance all of them expire out of the money is taken as
``1 - sum |delta_short|`` (delta as the probability of finishing in the money). This is conservative
for structures that are managed early (take-profit at part of the credit), so Kelly sizes smaller.
"""

from __future__ import annotations

import math
from typing import Literal

from domain.views import ChainView
from risk.sizing import fixed_fractional_qty, fractional_kelly_qty
from strategies.structures import Structure

SizingMode = Literal["fixed_fractional", "kelly"]


def profit_probability(structure: Structure, chain: ChainView) -> float:
    """Probability that every short leg expires out of the money, from the book's deltas (NaN if unknown)."""
    total = 0.0
    for leg in structure.legs:
        if leg.ratio < 0:
            r = chain.row_of(leg.symbol)
            if r < 0:
                return math.nan
            total += abs(float(chain.delta[r]))
    return min(max(1.0 - total, 0.0), 1.0)


def size_structure(structure: Structure, chain: ChainView, limit_price: float, equity_usd: float,
                   mode: SizingMode, risk_fraction: float, kelly_multiplier: float, max_qty: int) -> int:
    """Units to trade: at most ``risk_fraction`` of equity at risk, less under Kelly when the edge is thin."""
    summary = structure.summary(limit_price)
    loss = summary.max_loss_usd
    if mode == "fixed_fractional":
        return fixed_fractional_qty(equity_usd, risk_fraction, loss, max_qty)
    p = profit_probability(structure, chain)
    if not math.isfinite(p) or not math.isfinite(summary.max_profit_usd):
        return 0
    return fractional_kelly_qty(equity_usd, p, summary.max_profit_usd, loss, kelly_multiplier, risk_fraction,
                                max_qty)
