"""Start-up against the broker: the account, and the restart reconciliation carried out on the kernel.

``engine/service/reconcile.py`` decides (journal + broker truth -> a plan); this module reads the broker,
carries the plan out (cancel, adopt, import fills, rebuild the portfolio and the strategies' structures)
and, once the order stream listens, reads the broker's own recent orders once more (a liquidation can
fill between the restart's reads and the stream's subscription, and the stream does not replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from domain.orders import OrderFilled, OrderUpdated
from domain.views import AccountView
from engine.kernel.alerts import Alert
from engine.kernel.kernel import TradingKernel
from engine.kernel.orders import OrderTags
from engine.kernel.outputs import OutcomePublisher
from engine.kernel.ports import ExecutionClient
from engine.kernel.venue_types import RateLimited, VenueError
from engine.service.journal import BoundAccount, Journal
from engine.service.reconcile import (
    AccountMismatch,
    BrokerState,
    ReconcilePolicy,
    abandoned_update,
    check_account,
    reconcile,
)
from engine.service.recovery import recovered_structures
from engine.service.venue import StartupError
from strategies.tracking import RecoveredStructure

log = structlog.get_logger(__name__)

T = TypeVar("T")


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

    async def run(self) -> None:
        """Adopt, cancel, import; rebuild the portfolio from fills and each strategy's structures."""
        kernel, journal, broker = self.kernel, self.journal, self.broker
        state = journal.read_state()
        open_orders = await startup_call(lambda: broker.orders("open"))
        recent = await startup_call(lambda: broker.orders("all"))
        positions = await startup_call(broker.positions)
        executions = await startup_call(broker.executions)  # every page (one page only missed fills)
        now = time.time_ns()
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
                        "journal_fills": len(state.fills)}
        log.info("reconciled", **self.summary)

    async def reread_broker_orders(self) -> None:
        """Orders the broker placed itself (an expiry-day liquidation) can fill between the restart's reads and
        the order stream's subscription, and the stream does not replay: once it listens, read the recent ones
        again, each through the order state machine preloaded with what the journal holds, so only what the
        journal lacks is booked (and the stream's report of it, if it comes, is absorbed)."""
        journaled, self._journaled = self._journaled, {}
        broker, orders = self.broker, self.kernel.orders
        try:
            recent = await startup_call(lambda: broker.orders("all"))
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
