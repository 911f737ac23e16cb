"""What-if: the held book's P&L over spot moves x IV shocks (and to today's close), by the gate's stress code.

Per underlying held, the gate's own scenarios (``RiskGate.grid``, the ``[risk.stress]`` limits in force) priced by
``risk.stress.held_pnl`` at the spot and time to the close the gate uses (``risk.stress.stress_inputs``): the
numbers a pre-trade check would see for the book as it stands. Beside them a wider grid for display: spot from
-2x to +2x in steps of x/2 against parallel vol shifts -2y..+2y, and, when a leg expires today, spot moves at the
close. The portfolio row adds the underlyings up under the same relative moves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.kernel.kernel import TradingKernel
from risk.limits import StressLimits
from risk.stress import StressGrid, held_pnl, stress_inputs


def display_grid(limits: StressLimits) -> StressGrid:
    """The gate's grid widened for display: 9 spot moves (-2x..2x) x parallel vol shifts (-2y..2y), no skew."""
    grid = StressGrid(limits)
    x, y = limits.spot_shock_pct, limits.vol_shock_vol_pts / 100.0
    grid.spot_moves = np.clip(np.linspace(-2 * x, 2 * x, 9), -0.95, None)
    grid.vol_moves = np.array([-2 * y, -y, 0.0, y, 2 * y]) if y > 0 else np.array([0.0])
    grid.skew_moves = np.zeros_like(grid.vol_moves)
    grid.n_grid = grid.spot_moves.shape[0] * grid.vol_moves.shape[0]
    grid.n_max = grid.n_grid + grid.close_moves.shape[0]
    return grid


def _floats(values: Any) -> list[float | None]:
    """Dollar values rounded to cents, NaN (unpriceable) as None (JSON has no NaN)."""
    return [round(float(v), 2) if np.isfinite(v) else None for v in values]


def build_whatif(kernel: TradingKernel, grid: StressGrid | None = None) -> dict[str, Any]:
    """The what-if document (``/whatif`` and the dashboard): per underlying held, the gate's scenarios and the
    display grid; then the portfolio's grid."""
    gate = kernel.core.gate
    shown = grid if grid is not None else display_grid(gate.limits.stress)
    n_spot, n_vol = shown.spot_moves.shape[0], shown.vol_moves.shape[0]
    total = np.zeros(shown.n_max)
    any_same_day = False
    out: dict[str, Any] = {}
    for u in sorted(kernel.market.books):
        held = dict(kernel.portfolio.positions_of(u))
        chain = kernel.market.chain(u)
        if not held or chain is None:
            continue
        spot, to_close = stress_inputs(chain, kernel.market.spot(u))
        _, pnl, same_day = held_pnl(chain, held, u, spot, to_close, gate.grid)
        n = gate.grid.n_max if same_day else gate.grid.n_grid
        _, wide, _ = held_pnl(chain, held, u, spot, to_close, shown)
        total += wide
        any_same_day |= same_day
        out[u] = {
            "spot": spot, "to_close_years": to_close, "same_day": same_day, "chain_ts_ns": int(chain.ts_ns),
            "positions": held,
            "gate": {"labels": gate.grid.labels(same_day), "pnl": _floats(pnl[:n]),
                     "worst": _floats([pnl[:n].min()])[0] if n else None},
            "grid": [_floats(row) for row in wide[: shown.n_grid].reshape(n_spot, n_vol)],
            "close": _floats(wide[shown.n_grid:]) if same_day else [],
        }
    return {
        "spot_moves_pct": [round(100 * float(m), 3) for m in shown.spot_moves],
        "vol_moves_pts": [round(100 * float(v), 3) for v in shown.vol_moves],
        "close_moves_pct": [round(100 * float(m), 3) for m in shown.close_moves],
        "max_loss_usd": gate.limits.stress.max_loss_usd,
        "underlyings": out,
        "portfolio": {"grid": [_floats(row) for row in total[: shown.n_grid].reshape(n_spot, n_vol)],
                      "close": _floats(total[shown.n_grid:]) if any_same_day else []},
    }
