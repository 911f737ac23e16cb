"""The live table ``options-engine run`` shows on a terminal: per strategy, what it holds and did last."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.service.app import Engine


def render_table(engine: Engine) -> str:
    """One screen: header line, then a row per strategy (open structures, P&L, Greeks, last action)."""
    summary = engine.summary()
    head = (f"options-engine  {engine.cfg.engine.mode}  event time {summary['event_time']}  "
            f"state {summary['trading_state']}  {engine.status_line()}\n\n")
    cols = f"{'strategy':14s} {'open':>5s} {'closed':>6s} {'fills':>6s} {'P&L $':>10s} {'delta sh':>9s} " \
           f"{'gamma':>8s} {'vega $':>8s} {'theta $/d':>9s}  last action\n"
    rows = []
    for actor in engine.actors:
        sid = actor.strategy_id
        s = engine.portfolio.strategy_summary(sid)
        g = s.greeks
        rows.append(
            f"{sid:14s} {s.structures_opened - s.structures_closed:5d} {s.structures_closed:6d} {s.fills:6d} "
            f"{s.pnl_usd:10.2f} "
            f"{g.delta_shares:9.1f} {g.gamma_shares_per_usd:8.2f} {g.vega_usd_per_vol_pt:8.1f} "
            f"{g.theta_usd_per_day:9.1f}  {actor.last_action[:60]}\n"
        )
    total = engine.portfolio.greeks()
    foot = (f"\nportfolio: delta {total.delta_shares:.1f} sh, gamma {total.gamma_shares_per_usd:.2f}, "
            f"vega {total.vega_usd_per_vol_pt:.1f} $/pt, theta {total.theta_usd_per_day:.1f} $/day, "
            f"day P&L {engine.portfolio.daily_pnl_usd():.2f}\n")
    return head + cols + "".join(rows) + foot
