"""The trading kernel: one object that owns the decision path, built the same way for live, sim and replay.

It owns the event clock, the market (books and Greeks), the order state machine, the portfolio, the
strategies, the risk gate and breakers, the router and the settlement poller, and talks to the outside
through ports only: an execution client (orders and account), the quote batches its feeds hand it
(``on_option_batch`` / ``on_stock_batch``), the order events of the venue's order stream
(``on_order_event``), and the journal, publisher and metrics of ``engine.kernel.outputs``.

What differs between runs is what the caller plugs in: the live service passes the Alpaca adapter, the
wall-clock bus and its journal; replay passes the in-process exchange, a deterministic event queue and
the recorded clock. The path of a quote: feed -> ``on_*_batch`` -> ``Market`` -> ``BookUpdated`` on the
bus (inline) -> ``dispatch`` -> ``TradingCore.on_book`` -> strategies -> gate -> ``Router`` -> execution.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from domain.orders import IntentDenied, OrderFilled, OrderIntent, OrderUpdated, TradingState
from domain.views import AccountView
from engine.kernel.alerts import Alert
from engine.kernel.attribution import attribute_broker_fill, is_broker_fill, portfolio_holders
from engine.kernel.clock import EventClock
from engine.kernel.core import TradingCore
from engine.kernel.events import BookUpdated, FeedConnected, FeedStale
from engine.kernel.market import Market
from engine.kernel.market_data import DataBatch
from engine.kernel.order_rules import OrdersSection
from engine.kernel.orders import OrderArchive, OrderStateMachine
from engine.kernel.outputs import KernelMetrics, OutcomePublisher, TradeJournal
from engine.kernel.portfolio import MarkPolicy, Portfolio
from engine.kernel.ports import ExecutionClient
from engine.kernel.request_budget import RequestBudget
from engine.kernel.router import Router, RouterConfig
from engine.kernel.settlements import SettlementPoller
from engine.kernel.venue_types import OrderEvent
from engine.kernel.vol_stats import VolStatsMaker
from engine.kernel.vol_surface import ProcessOffload, SurfaceSettings, VolSurfaces
from risk.breakers import Breakers
from risk.gate import RiskGate
from risk.limits import RiskLimits
from strategies.base import Strategy
from strategies.registry import build_strategy
from strategies.tracking import RecoveredStructure

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KernelSettings:
    """What the kernel is built from (the service derives it from ``engine.toml``)."""

    strategies: Mapping[str, Any] = field(default_factory=dict)
    """Strategy name -> its config; the enabled ones become actors."""
    risk: RiskLimits = field(default_factory=RiskLimits)
    orders: OrdersSection = field(default_factory=OrdersSection)
    client_order_prefix: str = "oe"
    risk_free_rate: float = 0.04
    dividend_yields: Mapping[str, float] = field(default_factory=dict)
    surface: SurfaceSettings = field(default_factory=SurfaceSettings)
    iv_rank_min_days: int = 20
    """Sessions of IV history below which IV rank and percentile are "insufficient history" (``VolStats``)."""


class TradingKernel:
    """Clock, market, orders, portfolio, strategies, gate and router, wired once."""

    def __init__(
        self,
        settings: KernelSettings,
        execution: ExecutionClient,
        *,
        publish: Callable[[Any], None],
        account: AccountView,
        clock: EventClock | None = None,
        quote_clock: Callable[[], int] = time.time_ns,
        journal: TradeJournal | None = None,
        publisher: OutcomePublisher | None = None,
        metrics: KernelMetrics | None = None,
        alert: Callable[[Alert], None] | None = None,
        request_budget: RequestBudget | None = None,
        settlements: bool = True,
        extra_actors: Sequence[Strategy[Any]] = (),
        surface_worker: bool = False,
        order_archive: OrderArchive | None = None,
    ) -> None:
        """``publish`` puts an event on the bus the kernel's ``dispatch`` listens to (the live ``Bus`` or a
        replay queue); ``quote_clock`` is the time the market judges quote staleness by; ``surface_worker``
        fits volatility surfaces in a worker process (live) instead of inline (replay: deterministic);
        ``order_archive`` (the journal) takes final orders off the state machine's hands (bounded memory)."""
        self.settings = settings
        self.execution = execution
        self.clock = clock or EventClock()
        self.publish = publish
        self.market = Market(publish=publish, now_ns=quote_clock, rate=settings.risk_free_rate,
                             div_yields=dict(settings.dividend_yields))
        self.orders = OrderStateMachine(archive=order_archive)
        self.surfaces = VolSurfaces(self.market, self.clock, publish, settings.surface,
                                    offload=ProcessOffload() if surface_worker else None,
                                    vol_stats=VolStatsMaker(settings.iv_rank_min_days))
        self.portfolio = Portfolio(marks=MarkPolicy(settings.surface.max_mark_spread_pct,
                                                    settings.surface.max_mark_spread_usd))
        self.actors: list[Strategy[Any]] = [build_strategy(name, scfg) for name, scfg in settings.strategies.items()
                                            if scfg.enabled]
        self.actors.extend(extra_actors)
        self.router = Router(execution, self.orders, self.market, self.clock, publish, journal=journal,
                             config=RouterConfig(requests_per_minute=settings.orders.requests_per_minute),
                             budget=request_budget, rules=settings.orders,
                             client_order_prefix=settings.client_order_prefix)
        self.settlements = SettlementPoller(execution, self.portfolio, publish, self.submit_engine_intent,
                                            now_ns=self.clock.now_ns, busy=self.structure_busy,
                                            spot=self.market.spot) if settlements else None
        self.core = TradingCore(clock=self.clock, market=self.market, portfolio=self.portfolio, router=self.router,
                                gate=RiskGate(settings.risk), breakers=Breakers(settings.risk.breakers),
                                actors=self.actors, account=account, journal=journal, publisher=publisher,
                                metrics=metrics, alert=alert)
        prefix_len = len(settings.client_order_prefix) + 1
        self.router.on_order_written = lambda cid, wall: self._order_written(cid[prefix_len:], wall)
        self.tick_to_order_ns: collections.deque[int] = collections.deque(maxlen=100_000)
        """Frame arrival to order written, per order a book update triggered (wall ns)."""
        self._intents_seen = 0
        self._rereads: set[asyncio.Task[int]] = set()

    # ------------------------------------------------------------------------------------ life cycle

    def start(self, recovered: Mapping[str, list[RecoveredStructure]] = {}) -> None:
        """Start the strategies, then hand each the structures it held when the engine stopped (before any
        book update, so each manages what it held from the first tick on)."""
        self.core.start()
        self.surfaces.start()
        for actor in self.actors:
            held = recovered.get(actor.strategy_id)
            if held:
                self.core.recover(actor, held)

    def stop(self) -> None:
        """No actor decides anything new; fills and updates are still booked (see ``TradingCore.stop``)."""
        self.core.stop()
        self.surfaces.stop()

    # ------------------------------------------------------------------------------------ inputs

    def on_option_batch(self, batch: DataBatch, arrival_ns: int) -> None:
        """One option-feed frame (the hot path: arrays in, one book update per underlying out)."""
        self.market.apply(batch, arrival_ns)
        self.clock.advance(batch.last_ts_ns)

    def on_stock_batch(self, batch: DataBatch, arrival_ns: int) -> None:
        self.market.apply_stock_batch(batch, arrival_ns)
        self.clock.advance(batch.last_ts_ns)
        self.core.on_feed_recovered("stocks", batch.last_ts_ns)

    def on_order_event(self, event: OrderEvent, wall_ns: int = 0) -> None:
        """One event of the venue's order stream, through the order state machine onto the bus."""
        for out in self.orders.on_event(event, wall_ns or time.time_ns()):
            self.publish(out)

    def dispatch(self, event: Any) -> None:
        """An event off the bus, to the core (the only consumer of book, order, fill and denial events)."""
        core = self.core
        if isinstance(event, BookUpdated):
            core.on_book(event)
            self.surfaces.on_book(event)
        elif isinstance(event, OrderFilled):
            if is_broker_fill(event):  # an order the engine did not place: a broker liquidation, an operator
                for part in self._attribute(event):
                    core.on_fill(part)
            else:
                core.on_fill(event)
        elif isinstance(event, OrderUpdated):
            core.on_order_update(event)
        elif isinstance(event, IntentDenied):
            core.on_denied(event)
        elif isinstance(event, FeedStale):
            core.on_feed_stale(event)
        elif isinstance(event, FeedConnected) and event.feed == "trading" and event.attempt > 1:
            # the order stream does not replay what it missed while down: read working orders over REST
            task = asyncio.get_running_loop().create_task(self.router.reconcile_open_orders())
            self._rereads.add(task)  # held until done (the loop keeps only a weak reference)
            task.add_done_callback(self._rereads.discard)

    def _attribute(self, fill: OrderFilled) -> list[OrderFilled]:
        """A fill of an order the engine did not place, booked to the structures it closed. The order state
        machine passes each execution once (by execution id), so each is split once."""
        parts = attribute_broker_fill(fill, portfolio_holders(self.portfolio, fill.symbol))
        log.warning("broker_order_fill", order_id=fill.order_id, client_order_id=fill.client_order_id,
                    symbol=fill.symbol, side=str(fill.side), qty=fill.qty,
                    structures=[p.structure_id for p in parts])
        return parts

    # ------------------------------------------------------------------------------------ operator commands

    def set_paused(self, paused: bool) -> None:
        self.core.paused = paused

    def resume(self) -> None:
        self.core.paused = False
        self.core.set_state(TradingState.ACTIVE, "resume command")

    def halt(self) -> None:
        self.core.set_state(TradingState.HALTED, "halt command")

    def flatten(self) -> None:
        self.core.flatten()

    def submit_engine_intent(self, intent: OrderIntent) -> None:
        """An intent of the engine's own (a settlement unwind), through the gate like any other."""
        self.core.submit(intent)

    # ------------------------------------------------------------------------------------ queries

    def order_started(self) -> bool:
        """True once per new intent the router took: a feed then lets its POST out before the next frame."""
        n = self.router.counters["intents"]
        if n == self._intents_seen:
            return False
        self._intents_seen = n
        return True

    def structure_busy(self, structure_id: str) -> bool:
        """An order of the structure is in the router or working at the broker (adopted ones included)."""
        if any(wo.intent.structure_id == structure_id for wo in self.router.working.values()):
            return True
        return any(o.tags.structure_id == structure_id for o in self.orders.working_orders())

    def strategy_summary(self) -> dict[str, dict[str, Any]]:
        """Per strategy: structures opened and closed, fills, P&L, max |delta|, intents, approvals, denials."""
        out: dict[str, dict[str, Any]] = {}
        for actor in self.actors:
            sid = actor.strategy_id
            s = self.portfolio.strategy_summary(sid)
            tally = self.core.tally.get(sid)
            out[sid] = {
                "structures_opened": s.structures_opened, "structures_closed": s.structures_closed, "fills": s.fills,
                "pnl": round(s.pnl_usd, 2), "realized_pnl": round(s.realized_usd, 2),
                "max_abs_delta": round(tally.max_abs_delta, 2) if tally else 0.0,
                "intents": tally.intents if tally else 0, "approved": tally.approved if tally else 0,
                "gate_denials": dict(tally.denials) if tally else {},
                "stats": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in actor.stats().items()},
            }
        return out

    def surface_summary(self) -> dict[str, Any]:
        """Surface refits and their mean cost, and which marks came from the surface (re-marks since start, and
        the held contracts marked from it now)."""
        s = self.surfaces
        return {"refits": s.refits, "fit_ms_mean": round(s.fit_ns_total / s.refits / 1e6, 3) if s.refits else 0.0,
                "apply_ms_mean": round(s.apply_ns_total / s.refits / 1e6, 3) if s.refits else 0.0,
                "dropped": s.dropped, "failures": s.failures,
                "surface_marks": self.portfolio.surface_marks,
                "surface_marked_legs": self.portfolio.surface_marked()}

    def _order_written(self, intent_id: str, wall_ns: int) -> None:
        latency = self.core.on_order_written(intent_id, wall_ns)
        if latency is not None:
            self.tick_to_order_ns.append(latency)
