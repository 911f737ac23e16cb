"""What a replay saw over event time, for the session report: P&L, Greeks, fills, denials, trades."""

from __future__ import annotations

import collections

from domain.orders import IntentDenied, OrderFilled
from engine.kernel.portfolio import Portfolio
from engine.report.data import SessionData


class Timeline:
    """Samples P&L per strategy and portfolio Greeks every ``every_ns`` of event time; logs fills and denials."""

    def __init__(self, strategies: list[str], every_ns: int) -> None:
        self.strategies = strategies
        self.every_ns = max(1, every_ns)
        self._next_ns = 0
        self.pnl: dict[str, list[tuple[int, float]]] = {s: [] for s in strategies}
        self.greeks: list[tuple[int, float, float, float, float]] = []
        self.fills: list[tuple[int, str, str, str, float, float]] = []
        self.denials: collections.Counter[str] = collections.Counter()

    def sample(self, now_ns: int, portfolio: Portfolio, *, force: bool = False) -> None:
        if now_ns <= 0 or (now_ns < self._next_ns and not force):
            return
        self._next_ns = (now_ns // self.every_ns + 1) * self.every_ns
        for sid in self.strategies:
            self.pnl[sid].append((now_ns, portfolio.strategy_summary(sid).pnl_usd))
        g = portfolio.greeks()
        self.greeks.append((now_ns, g.delta_shares, g.gamma_shares_per_usd, g.vega_usd_per_vol_pt,
                            g.theta_usd_per_day))

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append((fill.ts_event_ns, fill.strategy_id, fill.symbol, fill.side.value, fill.qty, fill.price))

    def on_denied(self, denied: IntentDenied) -> None:
        for reason in denied.reasons:
            self.denials[reason] += 1

    def session(self, portfolio: Portfolio, *, title: str, source: str, latency_ns: list[int],
                summary: dict[str, object]) -> SessionData:
        """Everything the report needs, as plain data."""
        trades = {sid: [s.realized_usd for s in sorted(portfolio.structures(sid, open_only=False),
                                                         key=lambda s: (s.closed_ns, s.structure_id))
                        if not s.is_open]
                  for sid in self.strategies}
        return SessionData(title=title, source=source, strategies=list(self.strategies), pnl=self.pnl,
                           greeks=self.greeks, fills=self.fills, denials=dict(self.denials),
                           latency_ns=list(latency_ns), trades=trades, sample_interval_s=self.every_ns / 1e9,
                           summary=summary)
