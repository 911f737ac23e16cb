"""The plain data a session report is made from (written by a replay, readable as JSON)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class SmileShot(msgspec.Struct, frozen=True, kw_only=True):
    """One expiry's fitted smile and its market points, as they stood at a traded structure's entry or exit."""

    strategy: str
    structure_id: str
    moment: Literal["entry", "exit", "end"]
    """``end``: the structure was still open when the session ended (the last surface of the session)."""
    ts_ns: int
    """The fill (entry, exit) or the end of the session."""
    fit_ts_ns: int
    """When the surface was fitted (the newest fit at ``ts_ns``)."""
    underlying: str
    spot: float
    expiry: str
    t: float
    forward: float
    """The book's forward of the expiry at ``ts_ns``: strike = forward * exp(k)."""
    status: str
    params: tuple[float, ...]
    """Raw SVI (a, b, rho, m, sigma) of total variance against k = ln(K / F), or empty (no fit passed)."""
    wings: tuple[float, ...] = ()
    """Its wing terms beyond the quoted range (``greeks.svi.smile_from_fields(params, wings)``)."""
    k: tuple[float, ...]
    iv_mid: tuple[float, ...]
    iv_bid: tuple[float, ...]
    iv_ask: tuple[float, ...]
    strikes: tuple[float, ...] = ()
    """The structure's strikes on this expiry."""


class SessionData(msgspec.Struct, kw_only=True):
    """One session: P&L and Greeks over event time, fills, gate denials, latencies, closed trades, smiles."""

    title: str
    source: str = ""
    strategies: list[str]
    pnl: dict[str, list[tuple[int, float]]]
    """Per strategy: (event ns, realized + open P&L at the marks in USD), sampled at ``sample_interval_s``; a leg
    with a bad quote is marked from the volatility surface (``engine.kernel.portfolio.MarkPolicy``)."""
    pnl_raw: dict[str, list[tuple[int, float]]] = {}
    """The same samples with every leg at its raw quote mid (empty: not recorded)."""
    realized: dict[str, list[tuple[int, float]]] = {}
    """The same samples of realized P&L (closed structures): it moves only on a closing fill."""
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
    smiles: list[SmileShot] = []
    leg_samples: int = 0
    """Held legs summed over the P&L samples; ``surface_leg_samples`` of them were marked from the surface."""
    surface_leg_samples: int = 0
    summary: dict[str, Any] = {}
