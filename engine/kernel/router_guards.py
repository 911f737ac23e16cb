"""The router's guards before anything goes to the broker: the session and the account's own working orders.

A mixin of ``engine.kernel.router.Router`` (one concept per file; it reads the router's state declared below).

* Session: no order (and no replace) while the regular session is closed, half days' afternoons included
  (``greeks.calendar`` at event time); the intent is denied ``market_closed``.
* Wash trades: Alpaca refuses a single-leg order that could execute against the account's own working
  order on the same symbol. Before a single-leg order goes out the router looks for such orders among every
  working order it tracks (its own, orders adopted at restart, and POSTs still in flight):
  - one of the same structure: that order is cancelled first (the structure's newer decision replaces it),
    then the new order is placed;
  - another structure's: the new order waits until that one ends (fills, is cancelled or times out);
  - after ``[orders] wash_trade_wait_s`` of event time still blocked: denied ``wash_trade_conflict``.
  The router never nets the two orders into one: fills are booked to the structure whose order made them.
  A walking order holds its price instead of stepping onto the account's own opposite order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from domain.orders import OrderIntent
from engine.kernel.clock import EventClock
from engine.kernel.order_rules import OrdersSection, WorkingLeg, wash_conflicts
from engine.kernel.orders import OrderStateMachine
from greeks.calendar import NS_PER_SECOND

if TYPE_CHECKING:
    from engine.kernel.router import WorkingOrder

log = structlog.get_logger("engine.kernel.router")


class RouterGuards:
    """Session and wash-trade guards (mixin of ``Router``)."""

    orders: OrderStateMachine
    clock: EventClock
    rules: OrdersSection
    market_open: Callable[[int], bool]
    working: dict[str, WorkingOrder]
    counters: dict[str, int]
    _deny: Callable[[OrderIntent, tuple[str, ...], str], None]
    _finish: Callable[[WorkingOrder], None]
    _spawn: Callable[[Any], None]
    _place: Callable[[WorkingOrder], Any]
    cancel: Callable[[str], None]
    _cancel_by_order_id: Callable[[str], None]
    _waiting: dict[str, WorkingOrder]
    """Intents held back by the wash-trade guard, by intent id."""

    # ---- the session -------------------------------------------------------------------------------
    def _session_or_deny(self, wo: WorkingOrder) -> bool:
        """True while the session trades; otherwise the intent is denied ``market_closed`` and ends."""
        now = self.clock.now_ns()
        if self.market_open(now):
            return True
        self.counters["market_closed"] += 1
        log.info("order_outside_session", intent_id=wo.intent.intent_id, now_ns=now)
        self._deny(wo.intent, ("market_closed",), "the market is closed: no order is sent outside the session")
        self._finish(wo)
        return False

    # ---- wash trades -------------------------------------------------------------------------------
    def _working_legs(self, exclude_intent: str) -> list[WorkingLeg]:
        """Every leg working at the broker (or on its way there), but those of ``exclude_intent``."""
        out: list[WorkingLeg] = []
        tracked_ids: set[str] = set()
        for tracked in self.orders.working_orders():
            tracked_ids.add(tracked.order_id)
            tags = tracked.tags
            if tags.intent_id and tags.intent_id == exclude_intent:
                continue
            limit = None if tracked.multi_leg else tracked.limit_price
            for account in tracked.accounts.values():
                out.append(WorkingLeg(tracked.order_id, account.symbol, account.side, limit, tags.strategy_id,
                                      tags.structure_id, tags.intent_id))
        for wo in self.working.values():
            # a POST in flight, or an order being redone after a refused replace: not (or no longer) tracked
            if wo.done or wo.waiting or wo.intent.intent_id == exclude_intent or wo.order_id in tracked_ids:
                continue
            ended = self.orders.get(wo.order_id) if wo.order_id else None
            if ended is not None and not wo.fallback_from:
                continue  # its order ended (the router hears of it shortly); one being cancelled to be redone counts
            if not wo.order_id and wo.limit_price is None and wo.intent.price_policy.kind == "limit":
                continue  # not priced yet: nothing decided, nothing sent
            intent = wo.intent
            limit = None if intent.is_multi_leg else wo.limit_price
            for leg in intent.legs:
                out.append(WorkingLeg(wo.order_id, leg.symbol, leg.side, limit, intent.strategy_id,
                                      intent.structure_id, intent.intent_id))
        return out

    def _conflicts(self, wo: WorkingOrder, limit: float | None) -> list[WorkingLeg]:
        intent = wo.intent
        if intent.is_multi_leg:
            return []  # complex orders are Alpaca's way out of the wash-trade rule
        leg = intent.legs[0]
        return wash_conflicts(leg.symbol, leg.side, limit, self._working_legs(intent.intent_id))

    def _hold_for_wash(self, wo: WorkingOrder) -> bool:
        """True when ``wo`` (priced, not sent) must not go out yet; it is then waiting or denied."""
        conflicts = self._conflicts(wo, wo.limit_price)
        if not conflicts:
            return False
        intent = wo.intent
        now = self.clock.now_ns()
        first = wo.wash_deadline_ns == 0
        if first:
            wo.wash_deadline_ns = now + int(self.rules.wash_trade_wait_s * NS_PER_SECOND)
        if now >= wo.wash_deadline_ns:
            self._deny_wash(wo, conflicts)
            return True
        own = [c for c in conflicts if c.structure_id == intent.structure_id and c.strategy_id == intent.strategy_id]
        action = "cancel_first" if own else "wait"
        if first:
            self.counters["wash_cancels" if own else "wash_waits"] += 1
            log.info("wash_trade_avoided", action=action, intent_id=intent.intent_id, symbol=intent.legs[0].symbol,
                     against=sorted({c.order_id or c.intent_id for c in conflicts}))
        for c in own if first else ():
            if c.intent_id in self.working:
                self.cancel(c.intent_id)
            elif c.order_id:
                self._cancel_by_order_id(c.order_id)
        wo.waiting = True
        wo.limit_price = None  # re-priced when it goes
        self._waiting[intent.intent_id] = wo
        if wo.wait_timer is None:
            wo.wait_timer = self.clock.call_at(wo.wash_deadline_ns, lambda _now: self._wash_deadline(wo),
                                               name=f"wash_wait:{intent.intent_id}")
        return True

    def _wash_deadline(self, wo: WorkingOrder) -> None:
        if wo.done or not wo.waiting:
            return
        self._deny_wash(wo, self._conflicts(wo, None))

    def _deny_wash(self, wo: WorkingOrder, conflicts: list[WorkingLeg]) -> None:
        self.counters["wash_denied"] += 1
        against = sorted({c.order_id or c.intent_id for c in conflicts})
        log.warning("wash_trade_denied", intent_id=wo.intent.intent_id, against=against)
        self._deny(wo.intent, ("wash_trade_conflict",),
                   f"{wo.intent.legs[0].symbol}: the account's own working order(s) {', '.join(against)} on the "
                   f"same symbol did not end within {self.rules.wash_trade_wait_s:g} s")
        self._finish(wo)

    def _resume_waiting(self) -> None:
        """An order ended: try every waiting intent again (placing re-prices it and checks again; one still
        blocked goes back to waiting under its first deadline)."""
        for wo in list(self._waiting.values()):
            del self._waiting[wo.intent.intent_id]
            if wo.done:
                continue
            wo.waiting = False  # out of the table first: a second resume must not place it twice
            self._spawn(self._place(wo))

    def _walk_would_wash(self, wo: WorkingOrder, price: float) -> bool:
        """A walk step onto the account's own opposite order is skipped (the price holds)."""
        if wo.intent.is_multi_leg or not self._conflicts(wo, price):
            return False
        self.counters["wash_holds"] += 1
        log.info("wash_trade_avoided", action="hold_price", intent_id=wo.intent.intent_id, price=price)
        return True

