"""The order router: approved intents become venue orders (an ``ExecutionClient``, ``engine.kernel.ports``),
worked with a price walk, never sent twice.

* The client id is ``<prefix>-<intent id>`` (``<structure>-<action>-<n>``; a replacement appends ``.r<k>``).
  One id never makes two orders: after ``RateLimited`` the router waits and resends; after ``OutcomeUnknown``
  it first asks the venue for that id and adopts the order if it exists, and so after a duplicate-id refusal.
* A limit order starts at mid (rounded to the tick) and walks toward natural every ``walk_every_s`` of event
  time by replace, within the policy's concession bound and limit price; it is cancelled after ``timeout_s``. A
  fill racing a replace or a cancel is normal: the venue's answer (refusal, or ``fill``) wins; the walk stops.
* Refusals become ``IntentDenied`` (source ``broker``) with the venue's reason and message.
* A replace the venue refuses for anything but the fill/cancel race (Alpaca refuses to replace a closing
  spread: its legs are held by the order being replaced) falls back to cancel, a confirmed cancel (the
  stream's ``canceled`` or a read), then a new order for what is left at the walked price. The new order is
  named like a replacement (``.r<k>``, the next k) and journaled before it is sent, so restart reconciliation
  adopts it as part of the intent's order chain; two orders of one intent are never live at once.
* Guards before anything is sent (``engine.kernel.router_guards``): no order outside the regular session (the
  market calendar, event time; denied ``market_closed``), and no single-leg order that could trade
  against the account's own working order on its symbol (wait for it, or cancel it first when it is the
  same structure's; denied ``wash_trade_conflict`` after ``[orders] wash_trade_wait_s``).
* Single-leg option prices sit on the tick of the contract's class at the price itself (``TickTable``).
* Every venue call spends a token of the rate budget (Alpaca allows 200 requests per minute).
* The first order of an intent is placed on the caller's stack (``submit``: guards, budget token, price,
  journal, ``ExecutionClient.submit``, which may write it to the socket before it returns); only the wait
  for the answer runs in a task. Whatever must wait (no token now, an intent the journal has not made
  durable yet) goes through the task instead, in the same order.
* ``reconcile_open_orders`` (after any reconnect) re-reads open orders and the working ones the
  engine knows, so a fill the stream missed is still booked exactly once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from domain.orders import IntentDenied, OrderFilled, OrderIntent, OrderStatus, OrderUpdated
from domain.views import MarketView
from engine.kernel.clock import EventClock, Timer
from engine.kernel.order_pricing import (
    MLEG_GRID,
    NetQuote,
    TickGrid,
    net_quote,
    order_limit,
    order_request,
    start_price,
    walked_price,
)
from engine.kernel.order_rules import OrdersSection, TickTable, session_open
from engine.kernel.orders import OrderStateMachine, OrderTags
from engine.kernel.ports import ExecutionClient, IntentJournal
from engine.kernel.request_budget import RequestBudget
from engine.kernel.router_fallback import ReplaceFallback
from engine.kernel.router_guards import RouterGuards
from engine.kernel.venue_types import (
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    VenueError,
    VenueOrder,
)
from greeks.calendar import NS_PER_SECOND

log = structlog.get_logger(__name__)

Event = OrderUpdated | OrderFilled | IntentDenied


class RouterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Retry and rate settings of the router."""

    requests_per_minute: float = 180.0
    """Stay under Alpaca's 200 trading requests per minute per key."""
    submit_attempts: int = 5
    """Submit attempts for one client id before giving up (rate limits, timeouts and server errors)."""
    retry_backoff_s: float = 0.25
    """First wait between attempts after an unknown outcome (doubles each time)."""
    max_submit_wait_s: float = 2.0
    """A limit-priced intent that would wait longer than this for the request budget (a 429 pauses every
    request until the venue's window resets, up to a minute) is denied ``rate_limited`` instead of going out
    later at a price made for a market that has moved; one that waited that long anyway is re-priced."""


@dataclass(slots=True)
class WorkingOrder:
    """An intent the router is working: its current broker order and where its price walk stands."""

    intent: OrderIntent
    client_order_id: str
    order_id: str = ""
    limit_price: float | None = None
    step: int = 0
    replacements: int = 0
    started_ns: int = 0
    busy: bool = False
    """A PATCH or DELETE is in flight: the walk waits for its answer."""
    done: bool = False
    cancel_requested: bool = False
    timer: Timer | None = None
    fallback_from: str = ""
    """Replace refused: the order being cancelled before a new one is sent (its ``canceled`` is not the
    intent's end)."""
    settled: asyncio.Event | None = None
    """Set when ``fallback_from`` reaches a final state."""
    retired: set[str] = field(default_factory=set)
    """Orders of this intent cancelled by the fallback and followed by a new one (their news is not its news)."""
    waiting: bool = False
    """Held back by the wash-trade guard (nothing sent yet)."""
    wash_deadline_ns: int = 0
    wait_timer: Timer | None = None


class Router(RouterGuards, ReplaceFallback):
    """Turns approved intents into broker orders and works them until filled, cancelled or timed out."""

    def __init__(
        self,
        broker: ExecutionClient,
        orders: OrderStateMachine,
        market: MarketView,
        clock: EventClock,
        emit: Callable[[Event], None],
        *,
        journal: IntentJournal | None = None,
        config: RouterConfig = RouterConfig(),
        budget: RequestBudget | None = None,
        rules: OrdersSection = OrdersSection(),
        ticks: TickTable | None = None,
        market_open: Callable[[int], bool] = session_open,
        client_order_prefix: str = "oe",
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.broker = broker
        self.orders = orders
        self.market = market
        self.clock = clock
        self.emit = emit
        self.journal = journal
        self.config = config
        self.budget = budget or RequestBudget(config.requests_per_minute)
        self.rules = rules
        self.ticks = ticks or TickTable(rules)
        self.market_open = market_open
        """Whether the regular session trades at an event time (the market calendar)."""
        self.client_order_prefix = client_order_prefix
        self._wall_ns = wall_ns
        self.working: dict[str, WorkingOrder] = {}
        """Working intents by intent id."""
        self._by_order_id: dict[str, WorkingOrder] = {}
        self._waiting: dict[str, WorkingOrder] = {}
        self._retiring: set[str] = set()
        """Orders the replace fallback cancels: their ``canceled`` (events are delivered later, through the
        bus) is not their intent's end."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.submitted: dict[str, int] = {}
        """POSTs sent per client_order_id of a working intent (a value above 1 only ever follows an unknown
        outcome)."""
        self.counters: dict[str, int] = {
            "intents": 0, "orders_placed": 0, "adopted_after_unknown": 0, "rejected": 0, "replaces": 0,
            "replace_rejected": 0, "cancels": 0, "timeouts": 0, "gave_up": 0, "rate_limited": 0,
            "replace_fallbacks": 0, "fallback_orders": 0, "fallback_unconfirmed": 0, "market_closed": 0,
            "wash_waits": 0, "wash_cancels": 0, "wash_holds": 0, "wash_denied": 0, "broker_wash_trade": 0,
        }
        self.on_order_written: Callable[[str, int], None] | None = None
        """Hook called with (client_order_id, wall ns) right after an order request is written."""

    # ------------------------------------------------------------------------------------ intake

    def submit(self, intent: OrderIntent) -> None:
        """Start working an approved intent: its order is sent now when nothing has to wait (the answer, and
        anything that must wait, is awaited in a task of its own)."""
        if intent.intent_id in self.working:
            log.warning("router_duplicate_intent", intent_id=intent.intent_id)
            return
        self.counters["intents"] += 1
        wo = WorkingOrder(intent, f"{self.client_order_prefix}-{intent.intent_id}", started_ns=self.clock.now_ns())
        self.working[intent.intent_id] = wo
        self.orders.expect(wo.client_order_id, self._tags(intent))
        self._place_now(wo)

    def cancel(self, intent_id: str) -> None:
        """Cancel the working order of ``intent_id`` (no-op when it is not working)."""
        wo = self.working.get(intent_id)
        if wo is not None and not wo.done:
            wo.cancel_requested = True
            if wo.waiting:
                self._deny(wo.intent, ("cancelled",), "cancelled before its order was sent")
                self._finish(wo)
            elif wo.order_id and not wo.busy:
                self._spawn(self._cancel(wo))

    def cancel_all(self) -> None:
        for intent_id in list(self.working):
            self.cancel(intent_id)

    def on_order_update(self, update: OrderUpdated) -> bool:
        """Follow the broker's word on a working order (call for every OrderUpdated on the bus).

        Returns True when the update is the router's own business and not the intent's outcome: the
        ``canceled`` of an order the replace fallback cancels (a new order follows). The owner must not hear
        of it as the end of its intent."""
        absorbed = self._follow(update)
        if update.status.is_terminal and self._waiting:
            self._resume_waiting()  # an order ended: intents held back by the wash-trade guard may go
        return absorbed

    def _follow(self, update: OrderUpdated) -> bool:
        wo = self._by_order_id.get(update.order_id)
        if wo is None:
            wo = self.working.get(update.intent_id) if update.intent_id else None
        if wo is not None and update.order_id == wo.fallback_from and update.status.is_terminal:
            assert wo.settled is not None
            wo.settled.set()
        if update.status is OrderStatus.CANCELED and update.order_id in self._retiring:
            self._retiring.discard(update.order_id)
            return True  # the replace fallback sends the rest as a new order
        if wo is None or wo.order_id not in ("", update.order_id) or update.order_id in wo.retired:
            return False  # not (or no longer) the order the intent lives in
        if update.status is OrderStatus.REPLACED and update.replaced_by:
            return False  # the PATCH response (or the new order's own update) moves us to the new order
        if update.status.is_terminal:
            self._finish(wo)
        return False

    # ------------------------------------------------------------------------------------ placing

    def _place_now(self, wo: WorkingOrder) -> None:
        """``_place`` on the caller's stack, up to the order's write; what has to wait goes on in a task."""
        if not self._session_or_deny(wo):
            return
        if self.budget.delay_s() > 0:
            self._spawn(self._place(wo))  # no token now: the task waits for one (or denies)
            return
        request = self._priced(wo)
        if request is None or self._hold_for_wash(wo):
            return
        if self.journal is not None:
            written = self.journal.record_intent(wo.intent, wo.client_order_id)
            if not _durable(written):
                self._spawn(self._place_journaled(wo, request, written))
                return
        if not self.budget.try_acquire():
            self._spawn(self._placed(wo, request))
            return
        self._spawn(self._placed(wo, request, self._write(wo, request)))

    async def _place(self, wo: WorkingOrder) -> None:
        intent = wo.intent
        if wo.done or not self._session_or_deny(wo):
            return
        wait = self.budget.delay_s()
        if intent.price_policy.kind == "limit" and wait > self.config.max_submit_wait_s:
            self.counters["rate_limited"] += 1
            self._deny(intent, ("rate_limited",), f"broker rate limit: no request may go out for {wait:.1f} s")
            self._finish(wo)
            return
        request = self._priced(wo)
        if request is None:
            return
        if self._hold_for_wash(wo):
            return  # placed again when the conflicting order ends (or denied at the deadline)
        if self.journal is not None:
            await self.journal.record_intent(intent, wo.client_order_id)
        await self._placed(wo, request)

    async def _place_journaled(self, wo: WorkingOrder, request: OrderRequest, written: Awaitable[None]) -> None:
        await written
        await self._placed(wo, request)

    def _priced(self, wo: WorkingOrder) -> OrderRequest | None:
        """The intent's first order, or None when it has no quote to price from (then it is denied)."""
        try:
            return self._initial_request(wo)
        except _Unpriceable as exc:
            self._deny(wo.intent, ("no_quote",), str(exc))
            self._finish(wo)
            return None

    async def _placed(self, wo: WorkingOrder, request: OrderRequest, sent: Awaitable[VenueOrder] | None = None) -> None:
        """Submit the journaled ``request`` (or await ``sent``, its first attempt already written), then work it."""
        intent = wo.intent
        order = await self._submit_once(wo, request, sent)
        if order is None:
            self._finish(wo)
            return
        self._adopt(wo, order)
        if wo.cancel_requested and not wo.done:
            await self._cancel(wo)
        elif not wo.done and intent.price_policy.kind == "limit":
            self._schedule_walk(wo)
        elif not wo.done:
            self._schedule_timeout(wo)

    async def _submit_once(self, wo: WorkingOrder, request: OrderRequest,
                           sent: Awaitable[VenueOrder] | None = None) -> VenueOrder | None:
        """POST the order so that at most one exists for its client_order_id, whatever the broker answers
        (``sent``: the first attempt, already handed to the venue with its budget token)."""
        cid = wo.client_order_id
        backoff = self.config.retry_backoff_s
        for attempt in range(self.config.submit_attempts):
            if sent is None:
                asked = time.monotonic()
                await self.budget.acquire()
                if wo.intent.price_policy.kind == "limit" and time.monotonic() - asked > self.config.max_submit_wait_s:
                    try:
                        request = self._initial_request(wo)  # the same client_order_id at today's price
                    except _Unpriceable as exc:
                        if attempt == 0:
                            self._deny(wo.intent, ("no_quote",), str(exc))
                            return None
                        # an earlier POST may have reached the broker: keep its price rather than lose track of it
                sent = self._write(wo, request)
            attempted, sent = sent, None
            try:
                order = await attempted
                self.counters["orders_placed"] += 1
                return order
            except RateLimited as exc:
                self.budget.on_rate_limited(exc.retry_after)
            except (OutcomeUnknown, Unavailable) as exc:
                log.warning("order_outcome_unknown", client_order_id=cid, attempt=attempt + 1, error=str(exc))
                found = await self._lookup(cid)
                if found is not None:
                    self.counters["adopted_after_unknown"] += 1
                    return found
                await asyncio.sleep(backoff)
                backoff *= 2
            except Rejected as exc:
                if exc.duplicate:
                    found = await self._lookup(cid)
                    if found is not None:
                        self.counters["adopted_after_unknown"] += 1
                        return found
                self.counters["rejected"] += 1
                if exc.reason == "wash_trade":
                    self.counters["broker_wash_trade"] += 1
                    log.warning("broker_wash_trade", client_order_id=cid, intent_id=wo.intent.intent_id)
                self._deny(wo.intent, (exc.reason,), exc.message)
                return None
        # Out of attempts: one last look, so an order that did arrive is adopted, not forgotten.
        found = await self._lookup(cid)
        if found is not None:
            self.counters["adopted_after_unknown"] += 1
            return found
        self.counters["gave_up"] += 1
        self._deny(wo.intent, ("broker_unavailable",), f"no answer for {cid} after {self.config.submit_attempts} tries")
        return None

    def _write(self, wo: WorkingOrder, request: OrderRequest) -> Awaitable[VenueOrder]:
        """Hand ``request`` to the venue (its budget token taken): the venue may write it before returning."""
        cid = wo.client_order_id
        self.submitted[cid] = self.submitted.get(cid, 0) + 1
        sent = self.broker.submit(request)
        if self.on_order_written is not None:
            self.on_order_written(cid, self._wall_ns())
        return sent

    async def _lookup(self, cid: str) -> VenueOrder | None:
        for _ in range(self.config.submit_attempts):
            await self.budget.acquire()
            try:
                return await self.broker.order_by_client_id(cid)
            except RateLimited as exc:
                self.budget.on_rate_limited(exc.retry_after)
            except VenueError as exc:
                log.warning("order_lookup_failed", client_order_id=cid, error=str(exc))
                await asyncio.sleep(self.config.retry_backoff_s)
        return None

    def _adopt(self, wo: WorkingOrder, order: VenueOrder) -> None:
        wo.order_id = order.id
        self._by_order_id[order.id] = wo
        self._publish(self.orders.on_order(order, self.clock.now_ns()))
        tracked = self.orders.get(order.id)
        if tracked is not None and tracked.status.is_terminal and tracked.status is not OrderStatus.REPLACED:
            self._finish(wo)

    # ------------------------------------------------------------------------------------ walking

    def _schedule_walk(self, wo: WorkingOrder) -> None:
        policy = wo.intent.price_policy
        deadline = wo.started_ns + int(policy.timeout_s * NS_PER_SECOND)
        due = min(self.clock.now_ns() + int(policy.walk_every_s * NS_PER_SECOND), deadline)
        wo.timer = self.clock.call_at(due, lambda now: self._on_walk_due(wo, now), name=f"walk:{wo.client_order_id}")

    def _schedule_timeout(self, wo: WorkingOrder) -> None:
        deadline = wo.started_ns + int(wo.intent.price_policy.timeout_s * NS_PER_SECOND)
        wo.timer = self.clock.call_at(deadline, lambda now: self._on_walk_due(wo, now), name="order_timeout")

    def _on_walk_due(self, wo: WorkingOrder, now_ns: int) -> None:
        if wo.done:
            return
        if now_ns >= wo.started_ns + int(wo.intent.price_policy.timeout_s * NS_PER_SECOND):
            self.counters["timeouts"] += 1
            wo.cancel_requested = True
            if not wo.busy:
                self._spawn(self._cancel(wo))
            return
        if not wo.busy:
            self._spawn(self._walk(wo))
        self._schedule_walk(wo)

    async def _walk(self, wo: WorkingOrder) -> None:
        """One step of the price walk; a cancel asked for meanwhile (the timeout, a strategy) is sent at the end,
        whatever way the step ended: the timeout only marks a busy order, so nothing else would send it."""
        try:
            await self._walk_step(wo)
        finally:
            if wo.cancel_requested and not wo.done and not wo.busy:
                await self._cancel(wo)

    async def _walk_step(self, wo: WorkingOrder) -> None:
        quote = self._quote(wo.intent)
        if quote is None or not self.market_open(self.clock.now_ns()):
            return
        net = walked_price(quote, wo.step + 1, self._grid(wo.intent), wo.intent.price_policy)
        price = self._limit(wo.intent, net)
        if wo.limit_price is not None and math.isclose(price, wo.limit_price, abs_tol=1e-9):
            wo.step += 1
            return
        if self._walk_would_wash(wo, price):
            return  # hold the price: the account's own opposite order sits there
        wo.busy = True
        wo.replacements += 1
        new_cid = f"{self.client_order_prefix}-{wo.intent.intent_id}.r{wo.replacements}"
        self.orders.expect(new_cid, self._tags(wo.intent))
        fallback = False
        try:
            await self.budget.acquire()
            if wo.done or wo.cancel_requested:
                return
            order = await self.broker.replace(wo.order_id, limit=price, client_id=new_cid)
        except RateLimited as exc:
            self.budget.on_rate_limited(exc.retry_after)
            return
        except Rejected as exc:
            self.counters["replace_rejected"] += 1
            log.info("replace_rejected", client_order_id=wo.client_order_id, status=exc.status, error=str(exc))
            if exc.reason == "wash_trade":
                return  # keep the order as it is: a new one would be refused the same way
            # A fill or a cancel that got there first ends the order (the stream or this read settles it);
            # an order still working was refused for another reason: cancel it and send the rest anew.
            await self._refresh(wo)
            tracked = self.orders.get(wo.order_id)
            fallback = (not wo.done and not wo.cancel_requested and tracked is not None
                        and tracked.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED))
            if not fallback:
                return
        except (OutcomeUnknown, Unavailable):
            await self._refresh(wo, replacement_cid=new_cid)
            return
        finally:
            if not fallback:
                wo.busy = False
        if fallback:
            try:
                await self._cancel_then_new(wo, net)
            finally:
                wo.busy = False
            return
        self.counters["replaces"] += 1
        wo.step += 1
        self._move_to(wo, order)

    def _move_to(self, wo: WorkingOrder, order: VenueOrder) -> None:
        """The working intent now lives in ``order`` (the result of a replace)."""
        self._by_order_id.pop(wo.order_id, None)
        wo.client_order_id = order.client_id or wo.client_order_id
        wo.limit_price = order.limit
        self._adopt(wo, order)

    async def _refresh(self, wo: WorkingOrder, replacement_cid: str | None = None) -> None:
        """Re-read the working order (and a replacement that may exist) after an unclear answer."""
        if replacement_cid is not None:
            replacement = await self._lookup(replacement_cid)
            if replacement is not None:
                self._move_to(wo, replacement)
                return
        await self.budget.acquire()
        try:
            order = await self.broker.order(wo.order_id)
        except VenueError as exc:
            log.warning("order_refresh_failed", order_id=wo.order_id, error=str(exc))
            return
        self._publish(self.orders.on_order(order, self.clock.now_ns()))
        if order.replaced_by:
            await self.budget.acquire()
            try:
                new = await self.broker.order(order.replaced_by)
            except VenueError:
                return
            self._move_to(wo, new)
        elif self.orders.get(order.id) is not None and not self.orders.get(order.id).is_working:  # type: ignore[union-attr]
            self._finish(wo)

    async def _cancel(self, wo: WorkingOrder) -> None:
        if wo.done or not wo.order_id:
            return
        wo.busy = True
        try:
            await self.budget.acquire()
            await self.broker.cancel(wo.order_id)
            self.counters["cancels"] += 1
        except RateLimited as exc:
            self.budget.on_rate_limited(exc.retry_after)
            wo.busy = False
            self._spawn(self._cancel_later(wo, exc.retry_after))
            return
        except Rejected:
            await self._refresh(wo)  # not cancelable: already filled or cancelled; learn which
        except (OutcomeUnknown, Unavailable):
            await self._refresh(wo)
        finally:
            wo.busy = False

    def _cancel_by_order_id(self, order_id: str) -> None:
        """Cancel an order no working intent owns (one adopted at restart); its final state comes on the stream."""

        async def cancel() -> None:
            await self.budget.acquire()
            try:
                await self.broker.cancel(order_id)
                self.counters["cancels"] += 1
            except VenueError as exc:
                log.info("cancel_failed", order_id=order_id, error=str(exc))

        self._spawn(cancel())

    async def _cancel_later(self, wo: WorkingOrder, delay_s: float) -> None:
        await asyncio.sleep(max(delay_s, 0.05))
        await self._cancel(wo)

    def _finish(self, wo: WorkingOrder) -> None:
        if wo.done:
            return
        wo.done = True
        if wo.timer is not None:
            wo.timer.cancel()
        if wo.wait_timer is not None:
            wo.wait_timer.cancel()
        wo.waiting = False
        self._waiting.pop(wo.intent.intent_id, None)
        self.working.pop(wo.intent.intent_id, None)
        self._by_order_id.pop(wo.order_id, None)
        self.submitted.pop(wo.client_order_id, None)  # bounded: the count matters while the intent is worked
        self.orders.forget_expected(f"{self.client_order_prefix}-{wo.intent.intent_id}", wo.replacements)
        if self._waiting:
            self._resume_waiting()

    # ------------------------------------------------------------------------------------ reconciliation

    async def reconcile_open_orders(self) -> int:
        """After a reconnect: re-read open orders and every order the engine thinks is working; return changes."""
        await self.budget.acquire()
        try:
            open_orders = await self.broker.orders("open")
        except VenueError as exc:
            log.warning("reconcile_open_orders_failed", error=str(exc))
            return 0
        events: list[Event] = []
        seen = set()
        for order in open_orders:
            seen.add(order.id)
            events.extend(self.orders.on_order(order, self.clock.now_ns()))
        for tracked in self.orders.working_orders():
            if tracked.order_id in seen:
                continue
            await self.budget.acquire()
            try:
                order = await self.broker.order(tracked.order_id)
            except VenueError as exc:
                log.warning("reconcile_order_failed", order_id=tracked.order_id, error=str(exc))
                continue
            events.extend(self.orders.on_order(order, self.clock.now_ns()))
        self._publish(events)
        return len(events)

    # ------------------------------------------------------------------------------------ helpers

    def _initial_request(self, wo: WorkingOrder) -> OrderRequest:
        """The first order of an intent: whole quantity, limit at the policy's start price."""
        intent = wo.intent
        policy = intent.price_policy
        if policy.kind == "market":
            return self._request(wo, None)
        quote = self._quote(intent)
        if quote is None:
            what = intent.legs[0].symbol if intent.is_stock else f"every leg of {intent.intent_id}"
            raise _Unpriceable(f"no quote for {what}" if intent.is_stock else f"no two-sided quote for {what}")
        net = start_price(quote, self._grid(intent), policy)
        return self._request(wo, abs(net) if intent.is_stock else self._limit(intent, net))

    def _limit(self, intent: OrderIntent, net: float) -> float:
        """The order's limit field for net price ``net``; a single-leg option price is at least one tick (a sell
        walking toward a bid that fell to zero would otherwise ask for 0, which the broker refuses)."""
        price = order_limit(intent, net)
        if intent.is_multi_leg or intent.is_stock:
            return price
        return max(price, self._grid(intent).below)

    def _request(self, wo: WorkingOrder, limit: float | None, qty: float | None = None) -> OrderRequest:
        """The order for ``wo`` at ``limit`` (None = market), for ``qty`` (default the intent's whole quantity)."""
        wo.limit_price = limit
        return order_request(wo.intent, wo.client_order_id, limit, qty)

    def _quote(self, intent: OrderIntent) -> NetQuote | None:
        return net_quote(intent.legs, self.market, intent.underlying)

    def _grid(self, intent: OrderIntent) -> TickGrid:
        """Where prices of ``intent`` may sit: mleg nets and shares in cents, single options by their class."""
        if intent.is_multi_leg or intent.is_stock:
            return MLEG_GRID
        return self.ticks.grid(intent.underlying)

    @staticmethod
    def _tags(intent: OrderIntent) -> OrderTags:
        return OrderTags(intent.strategy_id, intent.structure_id, intent.intent_id)

    def _deny(self, intent: OrderIntent, reasons: tuple[str, ...], detail: str) -> None:
        now = self.clock.now_ns()
        self.emit(IntentDenied(intent.intent_id, intent.strategy_id, intent.structure_id, reasons, detail,
                               now, self._wall_ns(), source="broker"))

    def _publish(self, events: Sequence[Event]) -> None:
        for event in events:
            self.emit(event)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("router_task_failed", error=repr(task.exception()))

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for in-flight requests (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)


def _durable(written: Awaitable[None]) -> bool:
    """The journal's write has completed (a future already done without error): the order may go now."""
    return (isinstance(written, asyncio.Future) and written.done() and not written.cancelled()
            and written.exception() is None)


class _Unpriceable(Exception):
    """An intent whose legs have no usable quote to price from."""
