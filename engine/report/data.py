"""The plain data a session report is made from (written by a replay, readable as JSON)."""

from __future__ import annotations

from typing import Any

import msgspec


class SessionData(msgspec.Struct, kw_only=True):
    """One session: P&L and Greeks over event time, fills, gate denials, latencies, closed trades."""

    title: str
    source: str = ""
    strategies: list[str]
    pnl: dict[str, list[tuple[int, float]]]
    """Per strategy: (event ns, realized + open P&L at mid in USD), sampled at ``sample_interval_s``."""
    greeks: list[tuple[int, float, float, float, float]]
    """(event ns, delta shares, gamma shares/USD, vega USD/vol pt, theta USD/day) of the whole portfolio."""
    fills: list[tuple[int, str, str, str, float, float]]
    """(event ns, strategy, symbol, side, qty, price) per leg execution."""
    denials: dict[str, int]
    latency_ns: list[int]
    """Tick-to-order latencies (frame handed to the engine -> order request written)."""
    trades: dict[str, list[float]]
    """Per strategy: realized P&L of each closed structure, in closing order."""
    sample_interval_s: float = 60.0
    summary: dict[str, Any] = {}
