"""The trading core: book updates and order outcomes in, strategy hooks, gate checks and orders out.

One object, driven from the event loop, owns the decision path. It implements the strategies'
``StrategyContext``: ``submit`` only queues an intent; after the hook that queued it returns, the
core runs each queued intent through the risk gate and hands approved ones to the router. Order
outcomes (fills, order updates, denials) are journaled, booked in the portfolio, delivered to the
owning actor, and published. Nothing here awaits: the router and the publisher own the I/O.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from domain.orders import (
    IntentAction,
    IntentDenied,
    OrderFilled,
    OrderIntent,
    OrderStatus,
    OrderUpdated,
    TradingState,
)
from domain.views import AccountView, PortfolioGreeks
from engine.kernel.alerts import Alert
from engine.kernel.clock import EventClock, Timer
from engine.kernel.events import BookUpdated, FeedStale
from engine.kernel.market import Market
from engine.kernel.outputs import KernelMetrics, OutcomePublisher, StructureRecord, TradeJournal
from engine.kernel.portfolio import Portfolio
from engine.kernel.router import Router
from risk.breakers import BreakerChange, Breakers
from risk.gate import Approved, RiskGate
from risk.rate import RateBudget
from strategies.base import Strategy
from strategies.tracking import RecoveredStructure

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class StrategyTally:
    """Per-strategy counts for the live table and the run summary."""

    intents: int = 0
    approved: int = 0
    fills: int = 0
    denials: collections.Counter[str] = field(default_factory=collections.Counter)
    max_abs_delta: float = 0.0


_OPTION_DATA_REASONS = frozenset({"quotes", "trades", "snapshot"})
"""BookUpdated reasons that carry option-stream data (a "spot" update comes from the stock stream)."""


class ActorContext:
    """The ``StrategyContext`` one actor sees; everything it does goes through the core."""

    def __init__(self, core: TradingCore, actor: Strategy[Any]) -> None:
        self._core = core
        self._actor = actor
        self._timers: dict[str, Timer] = {}

    @property
    def now_ns(self) -> int:
        return self._core.clock.now_ns()

    @property
    def market(self) -> Market:
        return self._core.market

    @property
    def portfolio(self) -> Portfolio:
        return self._core.portfolio

    def account(self) -> AccountView:
        return self._core.account

    def submit(self, intent: OrderIntent) -> None:
        if self._core.stopped:
            # Shutdown: an order sent now could fill after the trading stream closes, unbooked.
            self._core.intents_dropped_stopping += 1
            return
        self._core.pending.append(intent)

    def cancel(self, intent_id: str) -> None:
        self._core.router.cancel(intent_id)

    def set_timer(self, name: str, at_ns: int) -> None:
        self.cancel_timer(name)

        def fire(now_ns: int) -> None:
            self._core.fire_timer(self._actor, self._timers, name, now_ns)

        self._timers[name] = self._core.clock.call_at(at_ns, fire, name=name)

    def cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_all_timers(self) -> None:
        for name in list(self._timers):
            self.cancel_timer(name)


class TradingCore:
    """Strategies, gate, router, portfolio, journal and publisher wired on the event loop."""

    def __init__(
        self,
        *,
        clock: EventClock,
        market: Market,
        portfolio: Portfolio,
        router: Router,
        gate: RiskGate,
        breakers: Breakers,
        actors: Iterable[Strategy[Any]],
        account: AccountView,
        journal: TradeJournal | None = None,
        publisher: OutcomePublisher | None = None,
        metrics: KernelMetrics | None = None,
        alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.clock = clock
        self.market = market
        self.portfolio = portfolio
        self.router = router
        self.gate = gate
        self.breakers = breakers
        self.actors: dict[str, Strategy[Any]] = {a.strategy_id: a for a in actors}
        self.account = account
        self.journal = journal
        self.publisher = publisher
        self.metrics = metrics
        self._alert = alert
        self.rate = RateBudget()
        self.pending: collections.deque[OrderIntent] = collections.deque()
        self.contexts: dict[str, ActorContext] = {}
        self.tally: dict[str, StrategyTally] = {sid: StrategyTally() for sid in self.actors}
        self.paused = False
        self.started = False
        self.stopped = False
        """Set by ``stop``: actors get no more book updates or timers, and what they submit is dropped."""
        self.intents_dropped_stopping = 0
        self._trigger_wall_ns = 0
        """Wall time the frame behind the book update being handled arrived (0 outside ``on_book``)."""
        self.trigger_by_intent: dict[str, int] = {}
        """Frame arrival (wall ns) per approved intent that a book update triggered, until its order is written."""
        self.on_intent_approved: Callable[[OrderIntent, int], None] | None = None
        self.on_intent_denied: Callable[[IntentDenied], None] | None = None
        """Observers (replay's record of the run): every approval, and every denial by the gate or the broker."""

    # ------------------------------------------------------------------------------ life cycle

    def start(self) -> None:
        for sid, actor in self.actors.items():
            ctx = ActorContext(self, actor)
            self.contexts[sid] = ctx
            actor.on_start(ctx)
        self.started = True
        self._process_pending()

    def stop(self) -> None:
        """Stop the actors for good: fills and order updates are still booked (and delivered) while the engine
        shuts down, but no actor decides anything new; engine intents (settlement unwinds) still go out."""
        for actor in self.actors.values():
            try:
                actor.on_stop()
            except Exception:
                log.exception("strategy_stop_failed", strategy=actor.strategy_id)
        self.stopped = True
        for ctx in self.contexts.values():
            ctx.cancel_all_timers()
        queued = len(self.pending)
        self.pending = collections.deque(i for i in self.pending if i.strategy_id not in self.actors)
        self.intents_dropped_stopping += queued - len(self.pending)
        if self.intents_dropped_stopping:
            log.info("intents_dropped_stopping", count=self.intents_dropped_stopping)

    # ------------------------------------------------------------------------------ inputs

    def on_book(self, event: BookUpdated) -> None:
        """A (conflated) book update: mark the portfolio, check loss breakers, let actors react."""
        chain = self.market.chain(event.underlying)
        if chain is None:
            return
        self._trigger_wall_ns = event.ts_init_ns
        self.portfolio.on_book(chain)
        self._breaker(self.breakers.on_daily_pnl(self.portfolio.daily_pnl_usd(), event.ts_event_ns))
        if event.reason in _OPTION_DATA_REASONS:  # a spot move reprices at held IVs: it is not option data
            self._breaker(self.breakers.on_feed_data("options", event.ts_event_ns))
        for actor in () if self.stopped else self.actors.values():
            if event.underlying in actor.underlyings:
                self._guard(actor, actor.on_book, chain)
        self._process_pending()  # orders first: the delta tally below is reporting, off the tick-to-order path
        self._trigger_wall_ns = 0
        self._track_delta()

    def on_fill(self, fill: OrderFilled) -> None:
        """Book a fill exactly once: journal, portfolio, breakers, the owning actor, Redis."""
        before = self.portfolio.greeks()
        seq = self.journal.record_fill(fill, before, None) if self.journal is not None else 0
        if seq is None:
            return  # a duplicate execution the journal already holds
        result = self.portfolio.on_fill(fill)
        if not result.applied:
            return
        after = self.portfolio.greeks()
        if self.metrics is not None:
            self.metrics.fills.inc()
        if self.publisher is not None and seq:
            self.publisher.publish_fill(seq, fill, before, after)
        if result.structure_closed is not None:
            self._breaker(self.breakers.on_structure_closed(result.structure_closed.realized_pnl_usd,
                                                            fill.ts_event_ns))
        tally = self.tally.get(fill.strategy_id)
        if tally is not None:
            tally.fills += 1
        actor = self.actors.get(fill.strategy_id)
        if actor is not None:
            self._guard(actor, actor.on_fill, fill)
        self._process_pending()

    def on_order_update(self, update: OrderUpdated) -> None:
        if self.journal is not None:
            self.journal.record_order(update)
        if self.metrics is not None:
            self.metrics.orders.inc(str(update.status))
        if self.publisher is not None:
            self.publisher.publish_order(update)
        absorbed = self.router.on_order_update(update)
        if update.status is OrderStatus.REPLACED or absorbed:
            return  # the router's price walk (a replace, or a cancel it redoes as a new order): the intent lives on
        actor = self.actors.get(update.strategy_id)
        if actor is not None:
            self._guard(actor, actor.on_order_update, update)
        self._process_pending()

    def on_denied(self, denied: IntentDenied) -> None:
        if self.on_intent_denied is not None:
            self.on_intent_denied(denied)
        tally = self.tally.get(denied.strategy_id)
        for reason in denied.reasons:
            if tally is not None:
                tally.denials[reason] += 1
            if self.metrics is not None:
                self.metrics.gate_denials.inc(reason)
        self.alert(Alert("intent_denied", "warning", denied.detail or ",".join(denied.reasons), {
            "intent_id": denied.intent_id, "strategy_id": denied.strategy_id, "reasons": list(denied.reasons),
            "source": denied.source,
        }))
        actor = self.actors.get(denied.strategy_id)
        if actor is not None:
            self._guard(actor, actor.on_denied, denied)
        self._process_pending()

    def on_feed_stale(self, event: FeedStale) -> None:
        self._breaker(self.breakers.on_feed_stale(event.feed, self.clock.now_ns(), f"silent {event.silent_s:.1f}s"))

    def on_feed_recovered(self, feed: str, ts_event_ns: int) -> None:
        """Data from ``feed`` again: lifts a stale declaration the breakers could not clear from book updates."""
        self._breaker(self.breakers.on_feed_recovered(feed, ts_event_ns))

    def check_stale(self) -> None:
        """Periodic: trip the stale-data breaker when the market data stopped moving (market hours only)."""
        self._breaker(self.breakers.check_stale(self.clock.now_ns()))

    def fire_timer(self, actor: Strategy[Any], timers: dict[str, Timer], name: str, now_ns: int) -> None:
        timers.pop(name, None)
        if self.stopped:
            return
        self._guard(actor, actor.on_timer, name, now_ns)
        self._process_pending()

    def on_order_written(self, intent_id: str, wall_ns: int) -> int | None:
        """The order of ``intent_id`` was written: its tick-to-order latency in ns (None when no frame triggered it)."""
        trigger = self.trigger_by_intent.pop(intent_id, 0)
        if not trigger:
            return None
        latency = wall_ns - trigger
        if self.metrics is not None:
            self.metrics.tick_to_order_seconds.observe(latency / 1e9)
        return latency

    def submit(self, intent: OrderIntent) -> None:
        """An engine-made intent (e.g. unwinding assigned shares): through the gate like any other."""
        self.pending.append(intent)
        self._process_pending()

    # ------------------------------------------------------------------------------ commands

    def set_state(self, state: TradingState, detail: str) -> None:
        """Manual kill switch (``halt`` -> HALTED, ``resume`` -> ACTIVE)."""
        now = self.clock.now_ns()
        change = self.breakers.resume(now) if state is TradingState.ACTIVE else self.breakers.kill(state, now, detail)
        self._breaker(change)

    def flatten(self) -> int:
        """Close every open structure of every actor (used by the ``flatten`` command)."""
        count = 0
        for actor in self.actors.values():
            count += int(self._guard(actor, actor.close_all, "flatten") or 0)
        self._process_pending()
        return count

    # ------------------------------------------------------------------------------ internals

    def _process_pending(self) -> None:
        """Run queued intents through the gate; approved ones go to the router (never re-entrantly)."""
        while self.pending:
            intent = self.pending.popleft()
            tally = self.tally.setdefault(intent.strategy_id, StrategyTally())
            tally.intents += 1
            now = self.clock.now_ns()
            if self.paused and intent.action.value == "open":
                self._deliver_denial(IntentDenied(intent.intent_id, intent.strategy_id, intent.structure_id,
                                                  ("paused",), "entries paused by command", now, time.time_ns()))
                continue
            verdict = self.gate.check(intent, self.portfolio, self.market, self.account, self.breakers.state, now,
                                      self.rate)
            if isinstance(verdict, Approved):
                self.rate.record(now)
                tally.approved += 1
                if self._trigger_wall_ns:
                    self.trigger_by_intent[intent.intent_id] = self._trigger_wall_ns
                if self.on_intent_approved is not None:
                    self.on_intent_approved(intent, self._trigger_wall_ns)
                if intent.action is IntentAction.OPEN:
                    self._record_structure(intent, now)
                self.router.submit(intent)
            else:
                self._deliver_denial(verdict.to_event(intent, now, time.time_ns()))

    def recover(self, actor: Strategy[Any], structures: list[RecoveredStructure]) -> None:
        """Hand ``actor`` back the structures it held when the engine stopped (once, after ``start``)."""
        self._guard(actor, actor.on_recover, structures)
        log.info("structures_recovered", strategy=actor.strategy_id, structures=[r.open_intent.structure_id
                                                                                  for r in structures])

    def _record_structure(self, intent: OrderIntent, now_ns: int) -> None:
        """Journal what a restart needs to hand the structure back to its strategy (kind, entry spot and IV)."""
        actor = self.actors.get(intent.strategy_id)
        if self.journal is None or actor is None:
            return
        extra = self._guard(actor, actor.structure_record, intent.structure_id) or {}
        self.journal.record_structure(StructureRecord(intent.structure_id, intent.strategy_id, intent.underlying,
                                                      "open", dict(intent.leg_quantities()), now_ns, extra))

    def _deliver_denial(self, denied: IntentDenied) -> None:
        self.on_denied(denied)

    def _breaker(self, change: BreakerChange | None) -> None:
        if change is None:
            return
        log.warning("trading_state_changed", before=change.before.name, after=change.after.name,
                    code=str(change.code), tripped=change.tripped, detail=change.detail)
        self.alert(Alert("trading_state_changed", "critical" if change.after is TradingState.HALTED else "warning",
                         f"trading state {change.before.name} -> {change.after.name} ({change.code}: {change.detail})",
                         {"before": change.before.name, "after": change.after.name, "code": str(change.code),
                          "tripped": change.tripped}))
        if change.after is TradingState.HALTED:
            self.router.cancel_all()

    def _track_delta(self) -> None:
        for sid, tally in self.tally.items():
            if sid not in self.actors:
                continue
            delta = abs(self.portfolio.open_delta_shares(sid))
            if math.isfinite(delta) and delta > tally.max_abs_delta:
                tally.max_abs_delta = delta

    def _guard(self, actor: Strategy[Any], hook: Callable[..., Any], *args: Any) -> Any:
        """Call an actor hook; an exception is logged and alerted, never allowed to stop the engine."""
        try:
            return hook(*args)
        except Exception as exc:
            log.exception("strategy_hook_failed", strategy=actor.strategy_id, hook=getattr(hook, "__name__", "?"))
            self.alert(Alert("strategy_error", "error", f"{actor.strategy_id}: {type(exc).__name__}: {exc}",
                             {"strategy_id": actor.strategy_id}))
            return None

    def alert(self, alert: Alert) -> None:
        if self.metrics is not None:
            self.metrics.alerts.inc(alert.code)
        if self._alert is not None:
            self._alert(alert)
        elif self.publisher is not None:
            self.publisher.publish_alert(alert)

    def portfolio_greeks(self) -> tuple[PortfolioGreeks, dict[str, PortfolioGreeks]]:
        by_u = {u: self.portfolio.greeks(u) for u in self.market.books}
        return self.portfolio.greeks(), by_u
