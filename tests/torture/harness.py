"""The calendar torture harness: the whole engine, all three strategies, through the days options lose money on.

Each scenario starts the engine in sim mode (the in-process simulator, every Alpaca rule on: expiry-day
liquidation, automatic exercise, early and dividend-driven assignment, the order rules) at a chosen instant,
lets event time run at high speed to a chosen end, optionally acts on the market on the way (a move that puts
short calls in the money before an ex-date), then checks the invariants:

1. no strategy holds a same-day short leg at the start of the liquidation window (close - 45 min; half days
   included), unless a scenario configures it to carry;
2. no order reaches the broker outside the session: every order the simulator accepted was submitted inside
   a session, and it refused none for a closed market;
3. every expiry, exercise and assignment activity is booked with its quantity (contracts, and 100 shares per
   contract exercised or assigned);
4. the engine's positions equal the simulator's;
5. nothing is submitted twice: every client order id reached the broker once and is one order.

The CI-sized scenarios live in ``tests/torture``; ``bench/torture.py`` runs longer windows and more seeds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.service.app import Engine
from engine.service.config import parse_config_text
from engine.sim.clock import from_ns
from engine.sim.errors import AlpacaError
from greeks.calendar import NEW_YORK, NS_PER_SECOND, market_calendar, ny_instant_ns
from greeks.occ import OccSymbolError, parse_occ

SETTLEMENT_TYPES = ("OPEXC", "OPASN", "OPEXP")
LIQUIDATION_LEAD_NS = 45 * 60 * NS_PER_SECOND
EPS = 1e-9

BASE_CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0
shutdown_timeout_s = 30.0

[sim]
speed = {speed}
start = "{start}"
seed = {seed}
option_quote_rate = 0.2
stock_quote_rate = 2.0
stock_trade_rate = 1.0
partial_fill_probability = 0.1
rate_limit_per_min = 0

[orders]
# Alpaca's limit is 200 requests per wall-clock minute; at {speed}x a wall minute is {speed} simulated ones
requests_per_minute = 1000000.0

[risk.breakers]
max_daily_loss_usd = 50000.0

{sim_extra}
[strategies.gamma_scalper]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
{gamma_scalper}
[strategies.iron_condor]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
{iron_condor}
[strategies.zero_dte]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
{zero_dte}
"""
DEFAULT_OVERRIDES = {
    "iron_condor": "take_profit_pct = 0.05",
    "zero_dte": "take_profit_pct = 0.99\nstop_loss_multiple = 25.0\nunderlying_stop_pct = 0.05\n"
                "pin_distance_pct = 0.0001",
}
"""The condor exits within a short run (5 % of its credit); the 0DTE keeps its same-day condors on until its
cut-off, so every run puts the expiry-day rules (cut-off, expiry_flat_by, the liquidation window) to work."""


Action = Callable[[Engine], Awaitable[None] | None]


@dataclass
class Scenario:
    """One torture run: where event time starts and ends, extra config, actions at event instants."""

    name: str
    start: dt.datetime
    """New York wall time the simulated market starts at."""
    end: dt.datetime
    """New York wall time event time must reach before the engine is stopped."""
    speed: float = 600.0
    seed: int = 7
    sim_extra: str = ""
    """TOML tables under ``[sim]`` (e.g. ``[sim.assignment]``), added to the base config."""
    strategies: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_OVERRIDES))
    """Extra ``key = value`` lines per strategy table (replacing the defaults above)."""
    actions: list[tuple[dt.datetime, Action]] = field(default_factory=list)
    """(New York instant, action): run once when event time passes the instant."""
    wall_limit_s: float = 180.0


@dataclass
class Outcome:
    """What a run left behind, for the invariants and for the report."""

    scenario: Scenario
    engine: Engine
    summary: dict[str, Any]
    refusals: list[tuple[str, int, str, str]]
    """Every order write the simulator refused: (POST|PATCH, status, message, client_order_id)."""
    orders: list[dict[str, Any]]
    activities: list[dict[str, Any]]
    journal_fills: list[Any]
    sim_positions: dict[str, float]
    submissions: dict[str, int]
    actions_run: list[str]


def config_text(scenario: Scenario, state: Path) -> str:
    start = scenario.start.replace(tzinfo=None).isoformat(timespec="seconds")
    lines = {name: scenario.strategies.get(name, "") for name in ("gamma_scalper", "iron_condor", "zero_dte")}
    return BASE_CONFIG.format(state=state, speed=scenario.speed, start=start, seed=scenario.seed,
                              sim_extra=scenario.sim_extra, **lines)


async def run(scenario: Scenario, tmp: Path) -> Outcome:
    """Run the engine through ``scenario`` and collect what the invariants need."""
    cfg = parse_config_text(config_text(scenario, tmp / "state"))
    engine = Engine(cfg, duration_s=scenario.wall_limit_s)
    refusals: list[tuple[str, int, str, str]] = []
    actions_run: list[str] = []
    await engine.start()
    try:
        _record_refusals(engine, refusals)
        end_ns = ny_instant_ns(scenario.end.date(), scenario.end.time())
        pending = sorted(scenario.actions, key=lambda a: a[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scenario.wall_limit_s
        while engine.sim.now_ns < end_ns and loop.time() < deadline and not engine.stop_event.is_set():
            now = engine.sim.now_ns
            while pending and ny_instant_ns(pending[0][0].date(), pending[0][0].time()) <= now:
                at, action = pending.pop(0)
                result = action(engine)
                if asyncio.iscoroutine(result):
                    await result
                actions_run.append(at.isoformat())
            await asyncio.sleep(0.02)
        assert engine.sim.now_ns >= end_ns, (
            f"{scenario.name}: event time reached {from_ns(engine.sim.now_ns).astimezone(NEW_YORK)} "
            f"of {scenario.end} within {scenario.wall_limit_s} s of wall time")
        engine.request_stop()
        summary = await engine.run_started()
    except BaseException:
        await engine.shutdown()
        raise
    view = engine.sim.inspect()
    assert engine.journal is not None
    return Outcome(
        scenario, engine, summary, refusals, view["orders"], list(engine.sim.exchange.account.activities),
        [jf.fill for jf in engine.journal.read_state().fills],
        {s: q for s, q in view["positions"].items() if abs(q) > EPS}, view["submissions"], actions_run,
    )


def _record_refusals(engine: Engine, out: list[tuple[str, int, str, str]]) -> None:
    exchange = engine.sim.exchange
    for method, name in (("POST", "submit"), ("PATCH", "replace")):
        original = getattr(exchange, name)

        def recorded(*args: Any, _original: Any = original, _method: str = method, **kwargs: Any) -> Any:
            try:
                return _original(*args, **kwargs)
            except AlpacaError as exc:
                body = args[-1] if args and isinstance(args[-1], dict) else {}
                out.append((_method, exc.status, exc.message, str(body.get("client_order_id", ""))))
                raise

        setattr(exchange, name, recorded)


# ------------------------------------------------------------------------------------------ invariants


def short_same_day_legs_at_liquidation(outcome: Outcome) -> dict[str, float]:
    """Option positions short at the start of their expiry's liquidation window (windows the run reached), from
    the journal's fills."""
    cal = market_calendar()
    reached_ns = outcome.engine.sim.now_ns
    by_symbol: dict[str, list[Any]] = {}
    for fill in outcome.journal_fills:
        if len(fill.symbol) > 12:
            by_symbol.setdefault(fill.symbol, []).append(fill)
    held: dict[str, float] = {}
    for symbol, fills in by_symbol.items():
        try:
            occ = parse_occ(symbol)
        except OccSymbolError:
            continue
        window_ns = cal.expiry_close_ns(occ.expiry) - LIQUIDATION_LEAD_NS
        if window_ns > reached_ns:
            continue
        qty = sum(f.signed_qty for f in fills if f.ts_event_ns < window_ns)
        if qty < -EPS:
            held[symbol] = qty
    return held


def orders_outside_the_session(outcome: Outcome, prefix: str = "oe-") -> list[str]:
    """Engine orders the broker accepted with a submission time outside every session."""
    cal = market_calendar()
    out = []
    for order in outcome.orders:
        if not order["client_order_id"].startswith(prefix):
            continue  # the broker's own orders (expiry-day liquidations) follow the broker's clock
        ts = order.get("submitted_at") or order["created_at"]
        ns = _rfc3339_ns(ts)
        if not cal.is_open(ns):
            out.append(f"{order['client_order_id']} at {ts}")
    return out


def unbooked_activities(outcome: Outcome) -> list[str]:
    """Settlement activities whose contracts (and shares) the journal does not hold in full."""
    booked: dict[str, dict[str, float]] = {}
    for fill in outcome.journal_fills:
        if fill.order_id.startswith("activity-"):
            per = booked.setdefault(fill.order_id.removeprefix("activity-"), {})
            per[fill.symbol] = per.get(fill.symbol, 0.0) + fill.qty
    problems = []
    for act in outcome.activities:
        if act.get("activity_type") not in SETTLEMENT_TYPES:
            continue
        contracts = abs(float(act["qty"]))
        got = booked.get(act["id"], {})
        if not math.isclose(got.get(act["symbol"], 0.0), contracts, abs_tol=EPS):
            problems.append(f"{act['activity_type']} {act['symbol']} qty {act['qty']}: booked {got}")
            continue
        if act["activity_type"] in ("OPEXC", "OPASN"):
            shares = sum(q for s, q in got.items() if s != act["symbol"])
            if not math.isclose(shares, 100 * contracts, abs_tol=EPS):
                problems.append(f"{act['activity_type']} {act['symbol']}: {shares} shares booked for {contracts}")
    return problems


def position_differences(outcome: Outcome) -> dict[str, tuple[float, float]]:
    ours = {s: q for s, q in outcome.engine.portfolio.positions().items() if abs(q) > EPS}
    return {s: (ours.get(s, 0.0), outcome.sim_positions.get(s, 0.0))
            for s in set(ours) | set(outcome.sim_positions)
            if not math.isclose(ours.get(s, 0.0), outcome.sim_positions.get(s, 0.0), abs_tol=EPS)}


def submitted_twice(outcome: Outcome) -> dict[str, int]:
    counts: dict[str, int] = {}
    for order in outcome.orders:
        counts[order["client_order_id"]] = counts.get(order["client_order_id"], 0) + 1
    twice = {cid: n for cid, n in outcome.submissions.items() if n > 1}
    twice.update({cid: n for cid, n in counts.items() if n > 1})
    return twice


def violations(outcome: Outcome, *, carry: bool = False) -> list[str]:
    """The invariants the run broke (the first is skipped when a strategy is configured to carry)."""
    out = []
    if not carry and (held := short_same_day_legs_at_liquidation(outcome)):
        out.append(f"short same-day legs at the liquidation window: {held}")
    if outside := orders_outside_the_session(outcome):
        out.append(f"orders outside the session: {outside}")
    if closed := [r for r in outcome.refusals if "market is closed" in r[2]]:
        out.append(f"the broker refused orders for a closed market: {closed}")
    if unbooked := unbooked_activities(outcome):
        out.append(f"activities not booked with their quantity: {unbooked}")
    if diff := position_differences(outcome):
        out.append(f"positions differ (engine, broker): {diff}")
    if twice := submitted_twice(outcome):
        out.append(f"submitted twice: {twice}")
    if errors := [(a.code, a.message) for a in outcome.engine.alerts if a.code in ("strategy_error",
                                                                                  "position_mismatch")]:
        out.append(f"alerts: {errors}")
    return out


def check_invariants(outcome: Outcome, *, carry: bool = False) -> None:
    """Assert the five invariants (the first only when no strategy is configured to carry)."""
    broken = violations(outcome, carry=carry)
    assert not broken, f"{outcome.scenario.name}: " + "; ".join(broken)


def facts(outcome: Outcome) -> dict[str, Any]:
    """What the run did, for reports: structures per strategy, activities by type, broker orders, router counts."""
    activities: dict[str, int] = {}
    for act in outcome.activities:
        activities[act["activity_type"]] = activities.get(act["activity_type"], 0) + 1
    strategies = {name: {k: st[k] for k in ("structures_opened", "structures_closed", "fills", "pnl")}
                  for name, st in outcome.summary["strategies"].items()}
    router = outcome.summary.get("router", {})
    return {
        "strategies": strategies,
        "activities": activities,
        "broker_orders": sum(1 for o in outcome.orders if not o["client_order_id"].startswith("oe-")),
        "orders": len(outcome.orders),
        "refusals": len(outcome.refusals),
        "router": {k: v for k, v in router.items() if v and k in (
            "replace_fallbacks", "fallback_orders", "market_closed", "wash_waits", "wash_cancels", "wash_holds",
            "wash_denied", "timeouts", "replaces")},
    }


def _rfc3339_ns(text: str) -> int:
    base, _, frac = text.rstrip("Z").partition(".")
    seconds = int(dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC).timestamp())
    return seconds * NS_PER_SECOND + int((frac or "0").ljust(9, "0")[:9])
