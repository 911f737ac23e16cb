"""Start-up against the broker: the account, and the restart reconciliation carried out on the kernel.

``engine/service/reconcile.py`` decides (journal + broker truth -> a plan); this module reads the broker,
carries the plan out (cancel, adopt, import fills, rebuild the portfolio and the strategies' structures)
and, once the order stream listens, reads the broker's own recent orders once more (a liquidation can
fill between the restart's reads and the stream's subscription, and the stream does not replay).

The broker is read from the journal's checkpoint on (``BrokerCheckpoint``, less ``CHECKPOINT_OVERLAP_NS``):
orders submitted and FILL activities after it, all open orders, and each order still working in the journal
that the window does not show. Only when such an older order has fills the journal lacks is every FILL
activity read (its missing fills may predate the window). Without a checkpoint (a first start) the broker is
read whole. Each restart stores the newest venue time it read as the next checkpoint; the running engine
moves it on (``advance_checkpoint``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from domain.orders import OrderFilled, OrderUpdated
from domain.views import AccountView
from engine.kernel.alerts import Alert
from engine.kernel.events import FeedDisconnected
from engine.kernel.kernel import TradingKernel
from engine.kernel.orders import OrderTags
from engine.kernel.outputs import OutcomePublisher
from engine.kernel.ports import ExecutionClient
from engine.kernel.venue_types import Execution, RateLimited, VenueError, VenueOrder
from engine.service.journal import BoundAccount, BrokerCheckpoint, Journal, JournalState
from engine.service.reconcile import (
    AccountMismatch,
    BrokerState,
    ReconcilePolicy,
    abandoned_update,
    check_account,
    leg_filled,
    reconcile,
    replacement_base,
)
from engine.service.recovery import recovered_structures
from engine.service.venue import StartupError
from strategies.tracking import RecoveredStructure

log = structlog.get_logger(__name__)

T = TypeVar("T")
CHECKPOINT_OVERLAP_NS = 15 * 60 * 1_000_000_000
"""Read this much venue time before the checkpoint again (clock skew, a stream event in flight)."""
CHECKPOINT_LAG_NS = 5 * 60 * 1_000_000_000
"""The running engine's checkpoint trails its clock by this much (events still in flight)."""
CHECKPOINT_SETTLE_S = 60.0
"""The running engine moves the checkpoint only to venue times it saw at least this long ago (wall)."""
CHECKPOINT_STEP_NS = 60 * 1_000_000_000
"""It is written again once it would move by this much venue time (a meta row per minute of trading)."""


async def startup_call(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """A start-up REST call that waits out 429s (a restart must not die on the rate limit it shares with the
    run before it): up to ``attempts`` tries, each after the broker's reset (at most 65 s). Other errors
    still fail the start."""
    for attempt in range(attempts):
        try:
            return await call()
        except RateLimited as exc:
            if attempt == attempts - 1:
                raise
            wait = min(max(exc.retry_after, 0.5), 65.0)
            log.warning("startup_rate_limited", retry_in_s=round(wait, 1), attempt=attempt + 1)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


async def fetch_account(venue: ExecutionClient, mode: str) -> tuple[AccountView, BoundAccount]:
    """The account as the gate sees it, and its identity for the journal."""
    acct = await venue.account()
    equity = acct.equity
    view = AccountView(equity, acct.cash, acct.buying_power,
                       equity if acct.options_buying_power is None else acct.options_buying_power,
                       3 if acct.options_level is None else acct.options_level)
    return view, BoundAccount(acct.id, mode)


def bind_journal(journal: Journal, account: BoundAccount) -> None:
    """The journal must belong to the account the broker reports; a journal is bound on its first use."""
    try:
        first_use = check_account(journal.bound_account(), account, journal.has_history(), str(journal.path))
    except AccountMismatch as exc:
        raise StartupError(str(exc)) from exc
    if first_use:
        journal.bind_account(account)
        log.info("journal_bound_to_account", account_id=account.account_id, mode=account.mode)


class RestartReconciliation:
    """Journal vs broker after a restart, carried out on the kernel before it starts."""

    def __init__(self, kernel: TradingKernel, journal: Journal, broker: ExecutionClient, policy: ReconcilePolicy,
                 *, publisher: OutcomePublisher | None, alert: Callable[[Alert], None]) -> None:
        self.kernel = kernel
        self.journal = journal
        self.broker = broker
        self.policy = policy
        self.publisher = publisher
        self.alert = alert
        self.adoption_events: list[OrderUpdated | OrderFilled] = []
        """What reading the orders adopted at restart showed, published once the kernel listens."""
        self.recovered: dict[str, list[RecoveredStructure]] = {}
        """Per strategy, the structures it held when the engine stopped (handed back when the kernel starts)."""
        self.summary: dict[str, int] = {}
        self._journaled: dict[str, list[OrderFilled]] = {}
        """The journal's fills by order at the restart's read, for the re-read of broker orders after it."""
        self.window_after_ns: int | None = None
        """Venue time the broker was read from (None: read whole)."""
        self.full_activity_read = True
        """Whether every FILL activity was read (no checkpoint, or an older order lacking fills)."""
        self.checkpoint: BrokerCheckpoint | None = None
        self._received: collections.deque[tuple[float, int]] = collections.deque()
        """(monotonic s, venue ns) at each order or fill event of the last ``CHECKPOINT_SETTLE_S``."""
        self.stream_gap_ns: int | None = None
        """Venue time of the order stream's first drop since the start, less the lag (the checkpoint stops there)."""

    async def run(self) -> None:
        """Adopt, cancel, import; rebuild the portfolio from fills and each strategy's structures."""
        kernel, journal, broker = self.kernel, self.journal, self.broker
        state = journal.read_state()
        checkpoint = journal.broker_checkpoint()
        after = None if checkpoint is None else _window_start(state, checkpoint.ts_ns - CHECKPOINT_OVERLAP_NS)
        self.window_after_ns = after
        open_orders = await startup_call(lambda: broker.orders("open"))
        recent = await startup_call(lambda: broker.orders("all", after_ns=after))
        older = await self._working_before_window(state, open_orders, recent) if after is not None else []
        recent = recent + older
        positions = await startup_call(broker.positions)
        if after is not None and _lacks_fills(state, [*open_orders, *older]):
            after = None  # an order from before the window has fills the journal lacks: they may predate it
        executions = await startup_call(lambda: broker.executions(after_ns=after))
        self.full_activity_read = after is None
        now = time.time_ns()
        self._store_checkpoint(checkpoint, recent, executions)
        plan = reconcile(state, BrokerState(open_orders, recent, positions, executions), self.policy, now)
        for cancel in plan.cancel:
            with contextlib.suppress(VenueError):
                await broker.cancel(cancel.order_id)
        journaled: dict[str, list[OrderFilled]] = {}
        for fill in [jf.fill for jf in state.fills] + list(plan.import_fills):  # the imports are journaled below
            journaled.setdefault(fill.parent_order_id or fill.order_id, []).append(fill)
        self._journaled = journaled
        for adopt in plan.adopt:
            kernel.orders.expect(adopt.client_order_id, OrderTags(adopt.strategy_id, adopt.structure_id,
                                                                  adopt.intent_id))
            kernel.orders.preload(adopt.order_id, journaled.get(adopt.order_id, ()))
            with contextlib.suppress(VenueError):
                # The order may have filled since the open-orders snapshot: what this read shows is counted by
                # the state machine now and must be booked, or no later read would ever book it again.
                self.adoption_events.extend(kernel.orders.on_order(await broker.order(adopt.order_id), now))
        adopted = {a.order_id for a in plan.adopt}
        for order in recent:
            # Any recent order can be read again later (a re-read of open orders, a late stream event) and the
            # fresh state machine would take its whole filled quantity for news: the journal's fills count first.
            held = journaled.get(order.id)
            if held and order.id not in adopted:
                kernel.orders.preload(order.id, held)
        for update in plan.order_updates:
            journal.record_order(update)
        for abandon in plan.abandon:
            journal.record_order(abandoned_update(abandon, state, now))
        for jf in state.fills:
            kernel.portfolio.on_fill(jf.fill)
        completed: list[OrderFilled] = []
        if kernel.settlements is not None:
            completed = kernel.settlements.resume([jf.fill for jf in state.fills],
                                                  [i.intent.intent_id for i in state.intents.values()])
        for fill, source in [(f, "broker_activity") for f in plan.import_fills] + [(f, "engine") for f in completed]:
            seq = journal.record_fill(fill, source=source)
            if seq is not None:
                kernel.portfolio.on_fill(fill)
                if self.publisher is not None:  # the fills stream must carry every journaled fill
                    self.publisher.publish_fill(seq, fill)
        open_ids = [s.structure_id for s in kernel.portfolio.structures() if s.is_open]
        fills = [jf.fill for jf in state.fills] + list(plan.import_fills) + completed
        self.recovered = recovered_structures(state, fills, open_ids)
        for alert in plan.alerts:
            self.alert(alert)
        self.summary = {"adopted": len(plan.adopt), "cancelled": len(plan.cancel),
                        "imported_fills": len(plan.import_fills), "alerts": len(plan.alerts),
                        "journal_fills": len(state.fills), "broker_orders_read": len(recent),
                        "activities_read": len(executions)}
        self.store_checkpoint()
        log.info("reconciled", window_after_ns=self.window_after_ns, **self.summary)

    async def _working_before_window(self, state: JournalState, open_orders: list[VenueOrder],
                                     recent: list[VenueOrder]) -> list[VenueOrder]:
        """Orders working in the journal, or with fewer fills journaled than its row's filled quantity (a crash
        between the two commits), that neither the open orders nor the window shows: read one by one."""
        shown = {o.client_id for o in open_orders} | {o.client_id for o in recent}
        have: dict[str, float] = {}
        for jf in state.fills:
            have[jf.fill.client_order_id] = have.get(jf.fill.client_order_id, 0.0) + jf.fill.qty
        out = []
        for j in state.orders.values():
            settled = j.status.is_terminal and j.filled_qty <= have.get(j.client_order_id, 0.0) + 1e-9
            if settled or j.client_order_id in shown or not j.order_id:
                continue
            with contextlib.suppress(VenueError):  # not at the broker: reconciliation alerts on it
                out.append(await startup_call(functools.partial(self.broker.order, j.order_id)))
        return out

    def _store_checkpoint(self, old: BrokerCheckpoint | None, orders: list[VenueOrder],
                          executions: list[Execution]) -> None:
        """The newest venue time read becomes the checkpoint (written after this restart's journal writes)."""
        newest = max([o.submitted_ns for o in orders] + [e.ts_ns for e in executions], default=0)
        last = max(executions, key=lambda e: e.ts_ns, default=None)
        ts = max(newest, old.ts_ns if old is not None else 0)
        if ts > 0:
            self.checkpoint = BrokerCheckpoint(ts, last.id if last is not None else "")

    def on_event(self, event: object) -> None:
        """The running engine's order, fill and feed events (off the bus) move the checkpoint on, to the venue
        time of a minute ago (wall) less ``CHECKPOINT_LAG_NS``."""
        now_ns = self.kernel.clock.now_ns()
        if isinstance(event, FeedDisconnected) and event.feed == "trading":
            self.stream_dropped(now_ns)
        elif isinstance(event, OrderUpdated | OrderFilled):
            # Venue time as of a minute of wall time ago: whatever the speed of the venue's clock (a simulator
            # runs it hundreds of times faster), what was in flight then on the order stream has arrived.
            mono = time.monotonic()
            self._received.append((mono, now_ns))
            settled = 0
            while self._received and mono - self._received[0][0] >= CHECKPOINT_SETTLE_S:
                settled = self._received.popleft()[1]
            if settled and (self.checkpoint is None
                            or settled - self.checkpoint.ts_ns >= CHECKPOINT_LAG_NS + CHECKPOINT_STEP_NS):
                self.advance_checkpoint(settled)

    def advance_checkpoint(self, now_ns: int) -> None:
        """Move the checkpoint on to ``now_ns`` (venue time) less ``CHECKPOINT_LAG_NS``: what happened before
        is journaled (the order stream delivered it), or still working. After the stream dropped
        (``stream_gap_ns``) it stays at the drop: a broker order the stream missed is read at the next restart."""
        ts = now_ns - CHECKPOINT_LAG_NS
        if self.stream_gap_ns is not None:
            ts = min(ts, self.stream_gap_ns)
        if ts > 0 and (self.checkpoint is None or ts > self.checkpoint.ts_ns):
            self.checkpoint = BrokerCheckpoint(ts)
            self.journal.set_broker_checkpoint(self.checkpoint)

    def stream_dropped(self, now_ns: int) -> None:
        """The order stream lost its socket at ``now_ns`` (venue time): the checkpoint stops there."""
        if self.stream_gap_ns is None:
            self.stream_gap_ns = now_ns - CHECKPOINT_LAG_NS

    def store_checkpoint(self) -> None:
        """Write the checkpoint this restart read up to (call once its fills and orders are queued)."""
        if self.checkpoint is not None:
            self.journal.set_broker_checkpoint(self.checkpoint)

    async def reread_broker_orders(self) -> None:
        """Orders the broker placed itself (an expiry-day liquidation) can fill between the restart's reads and
        the order stream's subscription, and the stream does not replay: once it listens, read the recent ones
        again, each through the order state machine preloaded with what the journal holds, so only what the
        journal lacks is booked (and the stream's report of it, if it comes, is absorbed)."""
        journaled, self._journaled = self._journaled, {}
        broker, orders = self.broker, self.kernel.orders
        try:
            recent = await startup_call(lambda: broker.orders("all", after_ns=self.window_after_ns))
        except VenueError as exc:
            log.warning("broker_orders_reread_failed", error=str(exc))
            return
        ours = self.policy.client_order_prefix + "-"
        now = time.time_ns()
        for order in recent:
            if order.client_id.startswith(ours) or not order.filled_qty > 0.0:
                continue
            if orders.get(order.id) is None:
                orders.preload(order.id, journaled.get(order.id, ()))
            for event in orders.on_order(order, now):
                self.kernel.publish(event)


def _window_start(state: JournalState, after_ns: int) -> int | None:
    """``after_ns``, moved back to the intent of any order whose outcome the journal does not hold yet (an intent
    without an order row: the POST may have gone out; an order still working: a replacement may exist); None
    (read everything) when such an intent has no time."""
    working = {replacement_base(j.client_order_id) or j.client_order_id
               for j in state.orders.values() if not j.status.is_terminal}
    for i in state.intents.values():
        if i.client_order_id in state.orders and i.client_order_id not in working:
            continue
        if i.intent.ts_event_ns <= 0:
            return None
        after_ns = min(after_ns, i.intent.ts_event_ns - CHECKPOINT_OVERLAP_NS)
    return after_ns


def _lacks_fills(state: JournalState, orders: list[VenueOrder]) -> bool:
    """Whether the broker shows more filled on any of ``orders`` than the journal's fills of it."""
    have: dict[tuple[str, str], float] = {}
    for jf in state.fills:
        key = (jf.fill.client_order_id, jf.fill.symbol)
        have[key] = have.get(key, 0.0) + jf.fill.qty
    return any(filled > have.get((o.client_id, symbol), 0.0) + 1e-9
               for o in orders for symbol, filled in leg_filled(o).items())
