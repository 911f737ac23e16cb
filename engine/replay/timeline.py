"""What a replay saw over event time, for the session report: P&L, Greeks, fills, denials, trades, smiles."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Literal

import numpy as np

from domain.orders import IntentDenied, OrderFilled
from engine.kernel.events import SurfaceFitted
from engine.kernel.market import Market
from engine.kernel.portfolio import Portfolio
from engine.report.data import SessionData, SmileShot
from greeks.occ import OccSymbolError, parse_occ

MAX_TRACED_STRUCTURES = 40
"""Structures whose entry and exit smiles are kept (the first ones of the session): two surface references each."""


@dataclass(slots=True)
class _Moment:
    """The newest surface of an underlying at a fill, and the book's forwards by expiry then."""

    ts_ns: int
    surface: SurfaceFitted
    forwards: dict[str, float]


@dataclass(slots=True)
class _Traced:
    strategy: str
    underlying: str
    entry: _Moment | None
    exit: _Moment | None = None


class Timeline:
    """Samples P&L per strategy (surface-marked, raw-mid, realized) and portfolio Greeks every ``every_ns`` of event
    time; logs fills and denials; keeps the surface at each traded structure's entry and exit fill."""

    def __init__(self, strategies: list[str], every_ns: int, market: Market | None = None) -> None:
        self.strategies = strategies
        self.every_ns = max(1, every_ns)
        self.market = market
        self._next_ns = 0
        self.pnl: dict[str, list[tuple[int, float]]] = {s: [] for s in strategies}
        self.pnl_raw: dict[str, list[tuple[int, float]]] = {s: [] for s in strategies}
        self.realized: dict[str, list[tuple[int, float]]] = {s: [] for s in strategies}
        self.greeks: list[tuple[int, float, float, float, float]] = []
        self.fills: list[tuple[int, str, str, str, float, float]] = []
        self.denials: collections.Counter[str] = collections.Counter()
        self.leg_samples = 0
        self.surface_leg_samples = 0
        self._surfaces: dict[str, SurfaceFitted] = {}
        self._traced: dict[str, _Traced] = {}

    def sample(self, now_ns: int, portfolio: Portfolio, *, force: bool = False) -> None:
        if now_ns <= 0 or (now_ns < self._next_ns and not force):
            return
        self._next_ns = (now_ns // self.every_ns + 1) * self.every_ns
        for sid in self.strategies:
            s = portfolio.strategy_summary(sid)
            self.pnl[sid].append((now_ns, s.pnl_usd))
            self.pnl_raw[sid].append((now_ns, s.pnl_quote_mid_usd))
            self.realized[sid].append((now_ns, s.realized_usd))
        self.leg_samples += len(portfolio.positions())
        self.surface_leg_samples += len(portfolio.surface_marked())
        g = portfolio.greeks()
        self.greeks.append((now_ns, g.delta_shares, g.gamma_shares_per_usd, g.vega_usd_per_vol_pt,
                            g.theta_usd_per_day))

    def on_surface(self, event: SurfaceFitted) -> None:
        """Keep the newest surface per underlying (a reference: the event is immutable)."""
        self._surfaces[event.underlying] = event

    def on_fill(self, fill: OrderFilled, portfolio: Portfolio | None = None) -> None:
        """Log the fill; with the portfolio that booked it, note the surface at its structure's entry or exit."""
        self.fills.append((fill.ts_event_ns, fill.strategy_id, fill.symbol, fill.side.value, fill.qty, fill.price))
        if portfolio is None or not fill.structure_id:
            return
        snap = portfolio.structure(fill.structure_id)
        if snap is None:
            return
        traced = self._traced.get(fill.structure_id)
        if traced is None:
            if len(self._traced) >= MAX_TRACED_STRUCTURES:
                return
            traced = _Traced(fill.strategy_id, snap.underlying, self._moment(snap.underlying, fill.ts_event_ns))
            self._traced[fill.structure_id] = traced
        if not snap.is_open:
            traced.exit = self._moment(snap.underlying, fill.ts_event_ns)

    def _moment(self, underlying: str, ts_ns: int) -> _Moment | None:
        surface = self._surfaces.get(underlying)
        if surface is None:
            return None
        forwards: dict[str, float] = {}
        book = self.market.books.get(underlying) if self.market is not None else None
        if book is not None and len(book):
            expiries, first = np.unique(book.expiry.astype(str), return_index=True)
            forwards = {str(e): float(book.forward[i]) for e, i in zip(expiries, first, strict=True)}
        return _Moment(ts_ns, surface, forwards)

    def on_denied(self, denied: IntentDenied) -> None:
        for reason in denied.reasons:
            self.denials[reason] += 1

    def smiles(self, portfolio: Portfolio, now_ns: int) -> list[SmileShot]:
        """Per traced structure and expiry it trades: the smile at entry, and at exit (or at ``now_ns``, open)."""
        out: list[SmileShot] = []
        for structure_id, traced in self._traced.items():
            snap = portfolio.structure(structure_id)
            if snap is None:
                continue
            strikes: dict[str, set[float]] = {}
            for sym in snap.legs:
                try:
                    occ = parse_occ(sym)
                except OccSymbolError:
                    continue  # the stock hedge
                strikes.setdefault(occ.expiry.isoformat(), set()).add(occ.strike)
            end = traced.exit if not snap.is_open else self._moment(traced.underlying, now_ns)
            last: Literal["exit", "end"] = "exit" if not snap.is_open else "end"
            moments: tuple[tuple[Literal["entry", "exit", "end"], _Moment | None], ...] = (
                ("entry", traced.entry), (last, end))
            for moment, at in moments:
                if at is None:
                    continue
                for smile in at.surface.smiles:
                    if smile.expiry in strikes:
                        out.append(SmileShot(
                            strategy=traced.strategy, structure_id=structure_id, moment=moment,
                            ts_ns=at.ts_ns, fit_ts_ns=at.surface.ts_event_ns, underlying=traced.underlying,
                            spot=at.surface.spot, expiry=smile.expiry, t=smile.t,
                            forward=at.forwards.get(smile.expiry, float("nan")), status=smile.status,
                            params=smile.params, wings=smile.wings, k=smile.k, iv_mid=smile.iv_mid, iv_bid=smile.iv_bid,
                            iv_ask=smile.iv_ask, strikes=tuple(sorted(strikes[smile.expiry]))))
        return out

    def session(self, portfolio: Portfolio, *, title: str, source: str, latency_ns: list[int],
                summary: dict[str, object], now_ns: int = 0) -> SessionData:
        """Everything the report needs, as plain data."""
        trades = {sid: [s.realized_usd for s in sorted(portfolio.structures(sid, open_only=False),
                                                         key=lambda s: (s.closed_ns, s.structure_id))
                        if not s.is_open]
                  for sid in self.strategies}
        return SessionData(title=title, source=source, strategies=list(self.strategies), pnl=self.pnl,
                           pnl_raw=self.pnl_raw, realized=self.realized, greeks=self.greeks, fills=self.fills,
                           denials=dict(self.denials), latency_ns=list(latency_ns), trades=trades,
                           sample_interval_s=self.every_ns / 1e9, smiles=self.smiles(portfolio, now_ns),
                           leg_samples=self.leg_samples, surface_leg_samples=self.surface_leg_samples,
                           summary=summary)
