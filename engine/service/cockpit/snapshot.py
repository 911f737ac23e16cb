"""The dashboard's document: everything the page shows, built once a second from the engine as it stands.

Strategy P&L is ``TradingKernel.strategy_summary`` (what ``/status`` reports under ``summary``), structure P&L and
Greeks the portfolio's snapshots, portfolio Greeks the portfolio's totals against ``[risk]``'s limits, the what-if
the gate's stress code (``whatif.py``). What the bus carries and the kernel does not keep (recent fills, the last
surface per underlying, the session's P&L curve) is kept by :class:`CockpitState`.
"""

from __future__ import annotations

import collections
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.orders import OrderFilled
from domain.views import PortfolioGreeks
from engine.kernel.events import SurfaceFitted
from engine.kernel.kernel import TradingKernel
from engine.service.cockpit.whatif import build_whatif
from engine.service.vitals import latency_stats
from greeks.calendar import ny_datetime
from greeks.svi import implied_vol_from_svi, smile_from_fields
from risk.limits import GreekLimits
from strategies.base import StructureStrategy
from strategies.exit_watch import nearest
from strategies.tracking import Tracked

if TYPE_CHECKING:
    from engine.service.app import Engine

MAX_SERIES = 720
"""P&L points kept for the session chart (halved by dropping every other one when full)."""
MAX_SMILES = 8
"""Expiries per underlying drawn (the nearest ones with a published smile)."""


def _num(v: float, digits: int = 2) -> float | None:
    """A finite number rounded for display; None for NaN or infinity (JSON has neither)."""
    return round(float(v), digits) if math.isfinite(v) else None


def _greeks(g: PortfolioGreeks) -> dict[str, float | None]:
    return {"delta": _num(g.delta_shares), "gamma": _num(g.gamma_shares_per_usd, 4),
            "vega": _num(g.vega_usd_per_vol_pt), "theta": _num(g.theta_usd_per_day)}


def _limits(g: PortfolioGreeks, lim: GreekLimits) -> list[dict[str, Any]]:
    """Each Greek against its cap (theta against the burn allowed: only negative theta counts)."""
    return [
        {"greek": "delta", "value": _num(g.delta_shares), "limit": lim.max_abs_delta_shares},
        {"greek": "gamma", "value": _num(g.gamma_shares_per_usd, 4), "limit": lim.max_abs_gamma_shares_per_usd},
        {"greek": "vega", "value": _num(g.vega_usd_per_vol_pt), "limit": lim.max_abs_vega_usd_per_vol_pt},
        {"greek": "theta", "value": _num(g.theta_usd_per_day), "limit": lim.max_theta_burn_usd_per_day},
    ]


class CockpitState:
    """What the dashboard remembers between snapshots: recent fills, surfaces, the P&L curve, order-stream news."""

    def __init__(self) -> None:
        self.fills: collections.deque[OrderFilled] = collections.deque(maxlen=50)
        self.surfaces: dict[str, SurfaceFitted] = {}
        self._smiles: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.series: list[tuple[int, float, float]] = []
        """(event ns, strategies' P&L, the day's P&L) per snapshot, thinned to at most ``MAX_SERIES``."""
        self._every = 1
        self._taken = 0
        self.last_order_event_mono = 0.0

    def on_event(self, event: Any) -> None:
        """A bus event (fills, order updates, surfaces)."""
        if isinstance(event, SurfaceFitted):
            self.surfaces[event.underlying] = event
            return
        self.last_order_event_mono = time.monotonic()
        if isinstance(event, OrderFilled):
            self.fills.append(event)

    def sample(self, ts_ns: int, pnl: float, daily: float) -> None:
        """One P&L point; every other point is dropped when the curve is full (it keeps the whole session)."""
        self._taken += 1
        if self._taken % self._every:
            return
        self.series.append((ts_ns, pnl, daily))
        if len(self.series) > MAX_SERIES:
            self.series = self.series[::2]
            self._every *= 2

    def smiles(self, underlying: str) -> list[dict[str, Any]]:
        """The last surface's nearest smiles: market points and the fitted curve (computed once per refit)."""
        ev = self.surfaces.get(underlying)
        if ev is None:
            return []
        cached = self._smiles.get(underlying)
        if cached is not None and cached[0] == ev.ts_init_ns:
            return cached[1]
        out = []
        for s in [s for s in ev.smiles if s.params and s.k][:MAX_SMILES]:
            k = np.asarray(s.k)
            grid = np.linspace(float(k.min()), float(k.max()), 41)
            curve = implied_vol_from_svi(smile_from_fields(s.params, s.wings), grid, s.t)
            out.append({"expiry": s.expiry, "t": s.t, "status": s.status, "age_s": s.age_s,
                        "k": [_num(x, 4) for x in s.k], "iv_mid": [_num(100 * x, 3) for x in s.iv_mid],
                        "iv_bid": [_num(100 * x, 3) for x in s.iv_bid], "iv_ask": [_num(100 * x, 3) for x in s.iv_ask],
                        "curve_k": [_num(x, 4) for x in grid], "curve_iv": [_num(100 * x, 3) for x in curve]})
        self._smiles[underlying] = (ev.ts_init_ns, out)
        return out


def _structure(engine: Engine, kernel: TradingKernel, actor: StructureStrategy[Any], t: Tracked) -> dict[str, Any]:
    """One open structure: legs (held, cost, mark), entry, mark, P&L, Greeks and its exit rules."""
    pf = kernel.portfolio
    snap = pf.structure(t.structure_id)
    chain = kernel.market.chain(t.structure.underlying)
    legs = []
    for leg in t.structure.legs:
        pos, mark = pf.leg(leg.symbol), pf.mark(leg.symbol)
        legs.append({"symbol": leg.symbol, "ratio": leg.ratio, "held": t.filled.get(leg.symbol, 0.0),
                     "avg_price": _num(pos.avg_price, 4) if pos else None,
                     "mark": _num(mark.value, 4) if mark else None, "bid": _num(mark.bid, 4) if mark else None,
                     "ask": _num(mark.ask, 4) if mark else None,
                     "from_surface": bool(mark.from_surface) if mark else False})
    watches = actor.exit_watch(chain, t, engine.clock.now_ns()) if chain is not None else []
    near = nearest(watches)
    return {
        "structure_id": t.structure_id, "underlying": t.structure.underlying, "kind": str(t.structure.kind),
        "status": str(t.status), "qty": t.qty, "shares": t.shares + t.settled_shares,
        "entry": _num(t.entry_net_price, 4), "entry_spot": _num(t.entry_spot),
        "mark": _num(t.value_per_unit(chain)[0], 4) if chain is not None else None,
        "pnl": _num(snap.pnl_mid_usd) if snap else None, "greeks": _greeks(snap.greeks) if snap else None,
        "legs": legs, "exits": [{"rule": w.rule, "progress": _num(w.progress, 3), "detail": w.detail} for w in watches],
        "nearest_exit": None if near is None else {"rule": near.rule, "progress": _num(near.progress, 3),
                                                   "detail": near.detail},
    }


def _feeds(engine: Engine, state: CockpitState) -> list[dict[str, Any]]:
    mono = time.monotonic()
    out = []
    for feed in (engine.option_feed, engine.stock_feed, engine.trading_feed):
        if feed is None:
            continue
        last = getattr(feed, "last_data_mono", 0.0) if feed.feed != "trading" else state.last_order_event_mono
        out.append({"feed": feed.feed, "connected": feed.connected.is_set(),
                    "last_message_age_s": _num(mono - last, 1) if last else None,
                    "reconnects": int(engine.metrics.feed_reconnects.values.get(feed.feed, 0)),
                    "failure": str(feed.failure) if feed.failure is not None else None})
    return out


def _orders(kernel: TradingKernel) -> list[dict[str, Any]]:
    out = []
    for wo in kernel.router.working.values():
        p = wo.intent.price_policy
        out.append({"intent_id": wo.intent.intent_id, "strategy": wo.intent.strategy_id,
                    "structure_id": wo.intent.structure_id, "action": str(wo.intent.action), "qty": wo.intent.qty,
                    "legs": [f"{leg.side} {leg.ratio}x {leg.symbol}" for leg in wo.intent.legs],
                    "limit_price": wo.limit_price, "step": wo.step,
                    "max_steps": math.ceil(p.max_concession_fraction / p.walk_step_fraction)
                    if p.walk_step_fraction > 0 else None,
                    "replacements": wo.replacements, "busy": wo.busy, "waiting": wo.waiting,
                    "order_id": wo.order_id})
    return out


def sample_pnl(engine: Engine, state: CockpitState) -> None:
    """One point of the session's P&L curve (strategies' P&L as in the summary, and the day's)."""
    kernel, now = engine.kernel, engine.clock.now_ns()
    if kernel is not None and now:
        pnl = sum(s.pnl_usd for s in (kernel.portfolio.strategy_summary(a.strategy_id) for a in kernel.actors))
        state.sample(now, pnl, kernel.portfolio.daily_pnl_usd())


def build_snapshot(engine: Engine, state: CockpitState, seq: int, control_enabled: bool) -> dict[str, Any]:
    """The dashboard's document (see the module docstring); ``seq`` numbers it for ``/status``'s matching copy."""
    kernel = engine.kernel
    now = engine.clock.now_ns()
    doc: dict[str, Any] = {"seq": seq, "ts_ns": time.time_ns(), "event_ns": now,
                           "event_time": ny_datetime(now).isoformat(timespec="seconds") if now else "",
                           "mode": engine.cfg.engine.mode, "status": engine.status_line(),
                           "control": {"enabled": control_enabled}}
    if kernel is None:
        return doc | {"trading": {"state": "STARTING", "why": []}}
    core, pf = kernel.core, kernel.portfolio
    summary = kernel.strategy_summary()
    strategies: dict[str, Any] = {}
    for actor in kernel.actors:
        sid = actor.strategy_id
        s = summary[sid]
        structures = ([_structure(engine, kernel, actor, t) for t in actor.tracker.active()]
                      if isinstance(actor, StructureStrategy) else [])
        strategies[sid] = {"kind": actor.KIND, "pnl": s["pnl"], "realized_pnl": s["realized_pnl"],
                           "greeks": _greeks(pf.strategy_summary(sid).greeks), "opened": s["structures_opened"],
                           "closed": s["structures_closed"], "fills": s["fills"], "gate_denials": s["gate_denials"],
                           "last_action": actor.last_action, "structures": structures}
    pnl = float(sum(s["pnl"] for s in summary.values()))
    daily = pf.daily_pnl_usd()
    limits = core.gate.limits
    greeks = [{"scope": "total", "bars": _limits(pf.greeks(), limits.total)}]
    greeks += [{"scope": u, "bars": _limits(pf.greeks(u), limits.per_underlying)}
               for u in sorted(kernel.market.books) if pf.positions_of(u)]
    lat = latency_stats(kernel.tick_to_order_ns)
    recent = sorted(list(kernel.tick_to_order_ns)[-1000:])
    if recent:
        lat |= {"p90_us": recent[int(len(recent) * 0.9)] / 1e3, "max_us": recent[-1] / 1e3}
    why = [{"code": str(t.code), "state": t.state.name, "detail": t.detail} for t in core.breakers.trips]
    if core.paused:
        why.append({"code": "paused", "state": "ACTIVE", "detail": "entries paused by command"})
    return doc | {
        "trading": {"state": core.breakers.state.name, "paused": core.paused, "why": why,
                    "consecutive_losses": core.breakers.consecutive_losses},
        "pnl": {"strategies": _num(pnl), "daily": _num(daily),
                "series": [[t, _num(p), _num(d)] for t, p, d in state.series]},
        "feeds": _feeds(engine, state),
        "strategies": strategies,
        "greeks": greeks,
        "orders": _orders(kernel),
        "fills": [{"ts_ns": f.ts_event_ns, "strategy": f.strategy_id, "structure_id": f.structure_id,
                   "symbol": f.symbol, "side": str(f.side), "qty": f.qty, "price": f.price}
                  for f in reversed(state.fills)],
        "denials": {"by_reason": dict(engine.metrics.gate_denials.values),
                    "by_strategy": {sid: s["gate_denials"] for sid, s in summary.items()}},
        "alerts": [{"ts_ns": a.ts_ns, "code": a.code, "severity": a.severity, "message": a.message}
                   for a in engine.alerts[-20:][::-1]],
        "latency": lat,
        "surfaces": {u: {"spot": _num(state.surfaces[u].spot), "smiles": state.smiles(u)}
                     for u in sorted(state.surfaces)},
        "whatif": build_whatif(kernel),
    }


def status_copy(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a snapshot ``/status`` repeats (P&L and Greeks per strategy, the trading state), with its ``seq``:
    the page and ``/status`` then show the same numbers for the same snapshot."""
    return {"seq": doc["seq"], "ts_ns": doc["ts_ns"], "trading_state": doc.get("trading", {}).get("state"),
            "pnl": doc.get("pnl", {}).get("strategies"),
            "strategies": {sid: {"pnl": s["pnl"], "greeks": s["greeks"]}
                           for sid, s in doc.get("strategies", {}).items()},
            "greeks": doc["greeks"][0]["bars"] if doc.get("greeks") else []}
