"""Position sizing: how many units of a structure to trade for a given risk budget.

Both rules size on the structure's exact max loss per unit (``risk.payoff``), so a 5-wide condor
and a 10-wide condor with the same credit get different quantities for the same risk.
"""

from __future__ import annotations

import math


def fixed_fractional_qty(equity_usd: float, risk_fraction: float, max_loss_per_unit_usd: float,
                         max_qty: int | None = None) -> int:
    """Units such that the total max loss is at most ``risk_fraction`` of equity (0 if not even one fits)."""
    if not (equity_usd > 0 and risk_fraction > 0 and max_loss_per_unit_usd > 0):
        return 0
    if not math.isfinite(max_loss_per_unit_usd):
        return 0
    qty = math.floor(equity_usd * risk_fraction / max_loss_per_unit_usd + 1e-9)
    return max(0, min(qty, max_qty) if max_qty is not None else qty)


def kelly_fraction(win_probability: float, win_usd: float, loss_usd: float) -> float:
    """Full Kelly fraction of capital to risk for a bet that wins ``win_usd`` or loses ``loss_usd`` per unit.

    f* = p / L - q / W expressed as the fraction of capital put at risk: f* = p - q / b with b = W / L.
    Returns 0 for a bet without an edge (never a negative size).
    """
    if not (0.0 < win_probability < 1.0) or not (win_usd > 0 and loss_usd > 0):
        return 0.0
    b = win_usd / loss_usd
    f = win_probability - (1.0 - win_probability) / b
    return max(f, 0.0)


def fractional_kelly_qty(equity_usd: float, win_probability: float, win_usd: float, loss_usd: float,
                         kelly_multiplier: float = 0.25, max_risk_fraction: float = 0.05,
                         max_qty: int | None = None) -> int:
    """Units for a fraction of Kelly, capped at ``max_risk_fraction`` of equity at risk."""
    f = min(kelly_fraction(win_probability, win_usd, loss_usd) * kelly_multiplier, max_risk_fraction)
    return fixed_fractional_qty(equity_usd, f, loss_usd, max_qty) if f > 0 else 0
