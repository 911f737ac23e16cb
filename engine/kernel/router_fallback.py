"""The router's fallback when the broker refuses a replace: cancel, a confirmed cancel, then a new order.

A mixin of ``engine.kernel.router.Router``. Alpaca refuses to replace the closing order of a spread (its legs are held
by the order being replaced: reason ``insufficient_qty``); the walk must go on all the same. The old order
is cancelled and the new one is sent only once the old one is final (the stream's ``canceled``, or a GET
saying so), so an intent never has two live orders; if it filled instead, the intent is done. The new order
carries the next replacement id (``<prefix>-<intent>.r<k>``) and is journaled before its POST like every
submit: a restart adopts it as part of the intent's order chain, or abandons the id if the POST never left.
The ``canceled`` of the old order is the router's business: ``Router.on_order_update`` tells its caller not
to hand it to the intent's owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from domain.orders import OrderFilled, OrderIntent, OrderStatus, OrderUpdated
from engine.kernel.clock import EventClock
from engine.kernel.order_rules import OrdersSection
from engine.kernel.orders import OrderStateMachine, OrderTags, TrackedOrder
from engine.kernel.ports import ExecutionClient, IntentJournal
from engine.kernel.request_budget import RequestBudget
from engine.kernel.venue_types import (
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    VenueError,
    VenueOrder,
)

if TYPE_CHECKING:
    from engine.kernel.router import WorkingOrder

log = structlog.get_logger("engine.kernel.router")


class ReplaceFallback:
    """Cancel, confirmed cancel, new order (mixin of ``Router``)."""

    broker: ExecutionClient
    orders: OrderStateMachine
    clock: EventClock
    rules: OrdersSection
    budget: RequestBudget
    journal: IntentJournal | None
    client_order_prefix: str
    counters: dict[str, int]
    _by_order_id: dict[str, WorkingOrder]
    _retiring: set[str]
    _deny: Callable[[OrderIntent, tuple[str, ...], str], None]
    _finish: Callable[[WorkingOrder], None]
    _session_or_deny: Callable[[WorkingOrder], bool]
    _request: Callable[..., OrderRequest]
    _limit: Callable[[OrderIntent, float], float]
    _submit_once: Callable[[WorkingOrder, OrderRequest], Any]
    _adopt: Callable[[WorkingOrder, VenueOrder], None]
    _tags: Callable[[OrderIntent], OrderTags]
    _publish: Callable[[Sequence[OrderUpdated | OrderFilled]], None]

    async def _cancel_then_new(self, wo: WorkingOrder, net: float) -> None:
        """Replace refused: cancel the order, wait until the cancel is confirmed, then send what is left anew.

        The new order goes out only once the old one is final, so the intent never has two live orders; if
        the old one filled instead, the intent is done. If the cancel is never confirmed, nothing is sent
        and the intent stays on the old order (its final state ends it as usual)."""
        old_id = wo.order_id
        self.counters["replace_fallbacks"] += 1
        log.info("replace_fallback_cancel", client_order_id=wo.client_order_id, order_id=old_id)
        wo.fallback_from = old_id
        wo.settled = asyncio.Event()
        self._retiring.add(old_id)
        final = None
        try:
            final = await self._cancel_confirmed(wo, old_id)
        finally:
            wo.fallback_from = ""
            wo.settled = None
            if final is None or final.status is not OrderStatus.CANCELED:
                self._retiring.discard(old_id)  # its final state is the intent's business as usual
        if final is None:
            self.counters["fallback_unconfirmed"] += 1
            log.error("replace_fallback_unconfirmed", client_order_id=wo.client_order_id, order_id=old_id)
            return
        if wo.done:
            return
        left = final.qty - final.filled_qty
        if final.status is not OrderStatus.CANCELED or left <= 1e-9:
            self._finish(wo)  # filled (or ended otherwise): nothing left to send
            return
        wo.retired.add(old_id)
        self._by_order_id.pop(old_id, None)
        wo.order_id = ""  # no live order now; the next one is the new order
        if wo.cancel_requested:
            self._deny(wo.intent, ("cancelled",), "cancelled while the refused replace was being redone")
            self._finish(wo)
            return
        if not self._session_or_deny(wo):
            return
        wo.replacements += 1
        wo.client_order_id = f"{self.client_order_prefix}-{wo.intent.intent_id}.r{wo.replacements}"
        self.orders.expect(wo.client_order_id, self._tags(wo.intent))
        request = self._request(wo, self._limit(wo.intent, net), left)
        if self.journal is not None:
            await self.journal.record_intent(wo.intent, wo.client_order_id)
        order = await self._submit_once(wo, request)
        if order is None:
            self._finish(wo)
            return
        self.counters["fallback_orders"] += 1
        wo.step += 1
        log.info("replace_fallback_new_order", client_order_id=wo.client_order_id, qty=left)
        self._adopt(wo, order)

    async def _cancel_confirmed(self, wo: WorkingOrder, order_id: str) -> TrackedOrder | None:
        """Cancel ``order_id`` and return its tracked state once final (None if not confirmed in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rules.cancel_confirm_s
        sent = False
        while not sent and loop.time() < deadline:
            await self.budget.acquire()
            try:
                await self.broker.cancel(order_id)
                self.counters["cancels"] += 1
                sent = True
            except RateLimited as exc:
                self.budget.on_rate_limited(exc.retry_after)
                await asyncio.sleep(min(max(exc.retry_after, 0.05), max(deadline - loop.time(), 0)))
            except (Rejected, OutcomeUnknown, Unavailable) as exc:
                log.info("replace_fallback_cancel_answer", order_id=order_id, error=str(exc))
                sent = True  # refused: not cancelable (it filled or is gone) or unclear: the order's state tells
        poll = True  # read it at once: the stream's word may take a while (or, replaying, come only later)
        while True:
            tracked = self.orders.get(order_id)
            if tracked is not None and tracked.status.is_terminal:
                return tracked
            left = deadline - loop.time()
            if left <= 0:
                return None
            if poll:
                poll = False
                await self.budget.acquire()
                try:
                    self._publish(self.orders.on_order(await self.broker.order(order_id), self.clock.now_ns()))
                except VenueError as exc:
                    log.warning("order_refresh_failed", order_id=order_id, error=str(exc))
                continue
            assert wo.settled is not None
            try:
                await asyncio.wait_for(wo.settled.wait(), timeout=min(1.0, left))
            except TimeoutError:
                poll = True
