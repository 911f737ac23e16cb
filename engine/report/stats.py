"""Per-strategy statistics of a session: trades, win rate, profit factor, Sharpe, max drawdown.

Definitions (plain, so a reader can check them by hand):

* trades: closed structures; a win is a closed structure with realized P&L > 0;
* profit factor: gross profit / gross loss of the closed structures (inf with no losing trade);
* Sharpe: mean / sample standard deviation of the P&L changes between samples of the P&L curve, times
  sqrt(samples per year), with a year of 252 sessions of 6.5 hours;
* max drawdown: the largest fall of the P&L curve from a previous peak, in USD;
* largest jump: the largest absolute change of the P&L curve between two consecutive samples, in USD;
* largest true fill P&L change: the largest absolute change of the realized P&L between two consecutive
  samples. Realized P&L moves only when a fill closes a structure, and then by that round trip's result at
  executed prices: it is the biggest move in one sample interval that the day's fills prove. A mark-to-market
  curve that jumps further than this in one interval moves on its marks, not on trading.

Each is computed on the surface-marked curve (the report's P&L) and on the raw-mid one where both exist.
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
    max_drawdown_raw_usd: float | None = None
    """Of the raw-mid curve (None without one)."""
    largest_jump_usd: float = 0.0
    largest_jump_raw_usd: float | None = None
    largest_fill_change_usd: float = 0.0


class MarkCheck(msgspec.Struct, frozen=True):
    """The session's mark quality: curve jumps against the largest P&L change fills prove, over all strategies."""

    largest_jump_usd: float
    """Of the surface-marked curves."""
    largest_jump_raw_usd: float | None
    largest_fill_change_usd: float

    @property
    def ok(self) -> bool:
        """No surface-marked jump beyond the largest true fill P&L change."""
        return self.largest_jump_usd <= self.largest_fill_change_usd + 1e-6


def max_drawdown(curve: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for v in curve:
        peak = max(peak, v)
        worst = max(worst, peak - v)
    return worst


def largest_jump(curve: Sequence[float]) -> float:
    """The largest absolute change between consecutive values (0 with fewer than 2)."""
    return max((abs(b - a) for a, b in itertools.pairwise(curve)), default=0.0)


def mark_check(stats: Sequence[StrategyStats]) -> MarkCheck:
    """The largest jumps and the largest true fill P&L change over all strategies."""
    raw = [s.largest_jump_raw_usd for s in stats if s.largest_jump_raw_usd is not None]
    return MarkCheck(max((s.largest_jump_usd for s in stats), default=0.0), max(raw) if raw else None,
                     max((s.largest_fill_change_usd for s in stats), default=0.0))


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


def strategy_stats(trades: Sequence[float], curve: Sequence[float], sample_interval_s: float, *,
                   raw_curve: Sequence[float] | None = None,
                   realized_curve: Sequence[float] | None = None) -> StrategyStats:
    """Statistics of one strategy from its closed trades and its P&L curves (surface-marked, raw-mid, realized)."""
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
        max_drawdown_raw_usd=max_drawdown(raw_curve) if raw_curve else None, largest_jump_usd=largest_jump(curve),
        largest_jump_raw_usd=largest_jump(raw_curve) if raw_curve else None,
        largest_fill_change_usd=largest_jump(realized_curve) if realized_curve else 0.0,
    )
