"""Per-strategy statistics of a session: trades, win rate, profit factor, Sharpe, max drawdown.

Definitions (plain, so a reader can check them by hand):

* trades: closed structures; a win is a closed structure with realized P&L > 0;
* profit factor: gross profit / gross loss of the closed structures (inf with no losing trade);
* Sharpe: mean / sample standard deviation of the P&L changes between samples of the P&L curve, times
  sqrt(samples per year), with a year of 252 sessions of 6.5 hours;
* max drawdown: the largest fall of the P&L curve from a previous peak, in USD.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import msgspec

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


class StrategyStats(msgspec.Struct, frozen=True):
    trades: int
    wins: int
    win_rate: float | None
    profit_factor: float | None
    sharpe: float | None
    max_drawdown_usd: float
    pnl_usd: float


def max_drawdown(curve: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for v in curve:
        peak = max(peak, v)
        worst = max(worst, peak - v)
    return worst


def sharpe(curve: Sequence[float], periods_per_year: float) -> float | None:
    """Annualized Sharpe of the curve's increments (None with fewer than 2 increments or no variation)."""
    inc = [b - a for a, b in itertools.pairwise(curve)]
    if len(inc) < 2:
        return None
    mean = sum(inc) / len(inc)
    var = sum((x - mean) ** 2 for x in inc) / (len(inc) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def strategy_stats(trades: Sequence[float], curve: Sequence[float], sample_interval_s: float) -> StrategyStats:
    wins = [t for t in trades if t > 0]
    losses = [t for t in trades if t < 0]
    gross_loss = -sum(losses)
    if not trades:
        pf = None
    elif gross_loss > 0:
        pf = sum(wins) / gross_loss
    else:
        pf = math.inf if wins else None
    per_year = TRADING_SECONDS_PER_YEAR / sample_interval_s if sample_interval_s > 0 else 1.0
    return StrategyStats(
        trades=len(trades), wins=len(wins), win_rate=len(wins) / len(trades) if trades else None,
        profit_factor=pf, sharpe=sharpe(curve, per_year), max_drawdown_usd=max_drawdown(curve),
        pnl_usd=curve[-1] if curve else 0.0,
    )
