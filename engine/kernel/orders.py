"""The order state machine: the venue's order events and order reads in, OrderUpdated / OrderFilled out.

Exactness under duplicates and reordering rests on two rules, kept per fill account (one per
single-leg order, one per leg of an mleg order):

* an execution is counted once, by its ``execution_id``;
* a read of the order (or a multi-leg event without per-leg executions) whose cumulative ``filled_qty`` exceeds
  what executions accounted for books the difference as a reconciliation fill (priced from the
  average fill price); executions that arrive later absorb that quantity first instead of counting
  it twice. Whatever the order of arrival, the total counted equals the broker's total.

Status never regresses: a terminal status is sticky, and an older update (by ``updated_ns``, then by
lifecycle rank) does not overwrite a newer one. Multi-leg fills become one ``OrderFilled`` per leg, each
carrying the leg's execution price and the parent's net price.

Memory stays bounded over months: with an ``OrderArchive`` (the journal), an order final for
``retire_after_s`` with every filled contract counted is let go of. That time is on the machine's own
monotonic clock: callers' timestamps mix wall and event time, and an accelerated simulator's event time runs
days ahead of the wall (a read stamped with it once retired every final order at once, before the journal had
committed the fills of the newest; the read's answer then booked them a second time). A later event or read
of a retired order (a late duplicate on the stream) revives it from the archive - its owner and the fills
journaled for it count as already booked - so only an execution the journal lacks is booked, and a
duplicate never is.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import structlog

from domain.orders import AssetClass, OrderFilled, OrderStatus, OrderUpdated, Side
from engine.kernel.venue_types import FILL_KINDS, NOTICE_KINDS, LegFill, OrderEvent, VenueOrder

log = structlog.get_logger(__name__)

# Lifecycle rank for ordering non-terminal states when timestamps tie or are missing.
_RANK: dict[OrderStatus, int] = {
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.HELD: 1,
    OrderStatus.NEW: 2,
    OrderStatus.SUSPENDED: 2,
    OrderStatus.CALCULATED: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.PENDING_CANCEL: 4,
    OrderStatus.PENDING_REPLACE: 4,
    OrderStatus.STOPPED: 4,
}
_QTY_EPS = 1e-9


class OrderTags(msgspec.Struct, frozen=True):
    """Who an order belongs to; the router registers these under the client_order_id before submitting."""

    strategy_id: str = ""
    structure_id: str = ""
    intent_id: str = ""


class RetiredOrder(msgspec.Struct, frozen=True):
    """What the archive holds of an order the state machine let go of."""

    tags: OrderTags
    fills: list[OrderFilled]
    status: OrderStatus | None = None
    """Its last journaled status (a revival that shows nothing new is not announced again)."""


class OrderArchive(Protocol):
    """Where final orders are retired to (the journal)."""

    def retired_order(self, order_id: str) -> RetiredOrder | None:
        """The owner and journaled fills of ``order_id``, or None when the archive never saw it."""
        ...


@dataclass(slots=True)
class FillAccount:
    """Executions counted for one order (or one leg of an mleg order)."""

    symbol: str
    side: Side
    asset_class: AssetClass
    counted_qty: float = 0.0
    counted_notional: float = 0.0
    unmatched_reconciled_qty: float = 0.0
    """Quantity booked from cumulative totals that no execution has claimed yet."""
    execution_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class TrackedOrder:
    """The engine's view of one broker order (parents only; mleg legs live in ``accounts``)."""

    order_id: str
    client_order_id: str
    status: OrderStatus
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    limit_price: float | None
    multi_leg: bool
    symbols: tuple[str, ...]
    tags: OrderTags
    updated_ns: int
    replaced_by: str | None = None
    accounts: dict[str, FillAccount] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
    """Refused cancel/replace notices already passed on (kind, event id)."""
    final_ns: int = 0
    """Wall ns when it was first seen final (0 while working)."""

    @property
    def is_working(self) -> bool:
        return not self.status.is_terminal


class OrderStateMachine:
    """Tracks orders and the fills derived from them; positions follow from the counted fills."""

    def __init__(self, archive: OrderArchive | None = None, retire_after_s: float = 60.0,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._orders: dict[str, TrackedOrder] = {}
        self._by_client_id: dict[str, str] = {}
        self._tags_by_client_id: dict[str, OrderTags] = {}
        self._positions: dict[str, float] = {}
        self._preloaded: dict[str, list[OrderFilled]] = {}
        self.archive = archive
        """Final orders are retired to it (None: kept for the life of the process, as a replay does)."""
        self.retire_after_ns = int(retire_after_s * 1e9)
        self._clock = clock
        """Times retirement only (ns)."""
        self._final: collections.deque[tuple[int, str]] = collections.deque()
        self.duplicates_ignored = 0
        self.stale_updates_ignored = 0
        self.retired = 0
        self.revived = 0

    # --- registration and queries ------------------------------------------------------------

    def expect(self, client_order_id: str, tags: OrderTags) -> None:
        """Remember who owns an order about to be submitted (before the broker knows its id)."""
        self._tags_by_client_id[client_order_id] = tags

    def forget_expected(self, client_order_id: str, replacements: int) -> None:
        """An intent is over: drop the owners registered for its client ids (``<id>``, ``<id>.r1``..) that never
        became a tracked order (a refused POST or replace); tracked ones leave when the order is retired."""
        for k in range(replacements + 1):
            cid = f"{client_order_id}.r{k}" if k else client_order_id
            if cid not in self._by_client_id:
                self._tags_by_client_id.pop(cid, None)

    def get(self, order_id: str) -> TrackedOrder | None:
        return self._orders.get(order_id)

    def by_client_order_id(self, client_order_id: str) -> TrackedOrder | None:
        order_id = self._by_client_id.get(client_order_id)
        return None if order_id is None else self._orders.get(order_id)

    def working_orders(self) -> list[TrackedOrder]:
        return [o for o in self._orders.values() if o.is_working]

    def working_symbols(self) -> set[str]:
        """Contracts with a working order (the subscription budget always streams them)."""
        return {s for o in self._orders.values() if o.is_working for s in o.symbols}

    def positions(self) -> dict[str, float]:
        """Signed quantity per symbol from every fill counted so far (flat symbols omitted)."""
        return {s: q for s, q in self._positions.items() if abs(q) > _QTY_EPS}

    def sizes(self) -> dict[str, int]:
        """How many records are held in memory (the soak and the endurance tests watch these)."""
        return {"orders": len(self._orders), "client_ids": len(self._by_client_id),
                "expected": len(self._tags_by_client_id), "preloaded": len(self._preloaded),
                "final_queue": len(self._final), "positions": len(self._positions)}

    # --- retirement ------------------------------------------------------------------------------

    def _note_final(self, tracked: TrackedOrder) -> None:
        if self.archive is not None and tracked.status.is_terminal and not tracked.final_ns:
            tracked.final_ns = self._clock() or 1
            self._final.append((tracked.final_ns, tracked.order_id))

    def retire_final(self, now_ns: int | None = None) -> int:
        """Let go of orders final for ``retire_after_s`` whose filled quantity is all counted (their fills are
        journaled by then); returns how many. Called on every input; cheap when nothing is due. ``now_ns`` is on
        the machine's clock (default: now)."""
        now_ns = self._clock() if now_ns is None else now_ns
        final, due, n = self._final, now_ns - self.retire_after_ns, 0
        while final and final[0][0] <= due:
            _, order_id = final.popleft()
            tracked = self._orders.get(order_id)
            if tracked is None or not tracked.status.is_terminal:
                continue
            if not tracked.multi_leg and tracked.filled_qty > sum(
                    a.counted_qty for a in tracked.accounts.values()) + _QTY_EPS:
                final.append((now_ns, order_id))  # executions the stream owes it: look again later
                continue
            del self._orders[order_id]
            if self._by_client_id.get(tracked.client_order_id) == order_id:
                del self._by_client_id[tracked.client_order_id]
            self._tags_by_client_id.pop(tracked.client_order_id, None)
            self._preloaded.pop(order_id, None)
            n += 1
        self.retired += n
        return n

    def _revive(self, order: VenueOrder) -> RetiredOrder | None:
        """An order not tracked: one retired earlier comes back with its journaled fills counted."""
        if self.archive is None or order.client_id in self._tags_by_client_id:
            return None  # no archive, or an order this process is placing right now
        retired = self.archive.retired_order(order.id)
        if retired is None:
            return None
        self.revived += 1
        self._preloaded[order.id] = [*retired.fills, *self._preloaded.get(order.id, ())]
        if order.client_id:
            self._tags_by_client_id[order.client_id] = retired.tags
        log.info("order_revived", order_id=order.id, fills=len(retired.fills))
        return retired

    # --- inputs ------------------------------------------------------------------------------

    def on_event(self, update: OrderEvent, ts_init_ns: int) -> list[OrderUpdated | OrderFilled]:
        """Apply one event of the venue's order stream; return the events it causes (none for a pure duplicate)."""
        ts_event_ns = update.ts_ns
        if self._final:
            self.retire_final()
        tracked, out = self._apply_order(update.order, ts_event_ns, ts_init_ns)
        fills: list[OrderUpdated | OrderFilled] = []
        if update.kind in FILL_KINDS:
            fills = self._apply_executions(tracked, update, ts_event_ns, ts_init_ns)
        elif update.kind in NOTICE_KINDS:
            # A refused cancel/replace leaves the status as it was, yet the router must hear of it (once).
            key = (update.kind, update.event_id)
            if key not in tracked.notices:
                tracked.notices.add(key)
                notice = msgspec.structs.replace(self._updated(tracked, ts_event_ns, ts_init_ns), reason=update.kind)
                out = [notice]
        self._note_final(tracked)
        # Fills first: a subscriber seeing "filled" can rely on the position already being booked.
        return fills + out

    def on_order(self, order: VenueOrder, ts_init_ns: int) -> list[OrderUpdated | OrderFilled]:
        """Apply an order as the venue answered a request or a read; book fills the stream never reported."""
        ts_event_ns = order.updated_ns or ts_init_ns
        if self._final:
            self.retire_final()
        tracked, out = self._apply_order(order, ts_event_ns, ts_init_ns)
        fills = self._reconcile_fills(tracked, order, ts_event_ns, ts_init_ns)
        self._note_final(tracked)
        return fills + out

    # --- internals: order state ----------------------------------------------------------------

    def _apply_order(
        self, order: VenueOrder, ts_event_ns: int, ts_init_ns: int
    ) -> tuple[TrackedOrder, list[OrderUpdated | OrderFilled]]:
        status = order.status
        updated_ns = order.updated_ns or ts_event_ns
        filled_qty = order.filled_qty
        tracked = self._orders.get(order.id)
        if tracked is None:
            revived = self._revive(order)
            tracked = self._track(order, status, updated_ns)
            if revived is not None:
                for fill in revived.fills:
                    account = tracked.accounts.get(fill.symbol)
                    if account is not None and ":cum:" in fill.execution_id:
                        # Booked from a cumulative total: the executions it stood for were absorbed, never
                        # journaled under their ids; a late copy of one must be absorbed again.
                        account.unmatched_reconciled_qty += fill.qty
                if revived.status is tracked.status:
                    return tracked, []  # nothing new about it
            return tracked, [self._updated(tracked, ts_event_ns, ts_init_ns)]
        self._ensure_accounts(tracked, order)
        changed = False
        if self._is_newer(tracked, status, updated_ns):
            if status is not tracked.status:
                tracked.status = status
                changed = True
            tracked.updated_ns = max(tracked.updated_ns, updated_ns)
            limit = order.limit
            if limit is not None and limit != tracked.limit_price:
                tracked.limit_price = limit
                changed = True
            if order.replaced_by and order.replaced_by != tracked.replaced_by:
                tracked.replaced_by = order.replaced_by
                changed = True
        else:
            self.stale_updates_ignored += 1
        if filled_qty > tracked.filled_qty + _QTY_EPS:
            tracked.filled_qty = filled_qty
            tracked.filled_avg_price = order.avg_price
            changed = True
        if not changed:
            return tracked, []
        return tracked, [self._updated(tracked, ts_event_ns, ts_init_ns)]

    @staticmethod
    def _is_newer(tracked: TrackedOrder, status: OrderStatus, updated_ns: int) -> bool:
        if tracked.status.is_terminal:
            # Terminal is sticky; two terminal reports (a fill racing a cancel) resolve by time.
            return status.is_terminal and updated_ns > tracked.updated_ns
        if status.is_terminal:
            return True
        if updated_ns != tracked.updated_ns and updated_ns and tracked.updated_ns:
            return updated_ns > tracked.updated_ns
        return _RANK.get(status, 0) >= _RANK.get(tracked.status, 0)

    def _track(self, order: VenueOrder, status: OrderStatus, updated_ns: int) -> TrackedOrder:
        tags = self._tags_by_client_id.get(order.client_id)
        if tags is None and order.replaces and order.replaces in self._orders:
            tags = self._orders[order.replaces].tags  # a replacement inherits its owner
        tracked = TrackedOrder(
            order_id=order.id,
            client_order_id=order.client_id,
            status=status,
            qty=order.qty,
            filled_qty=order.filled_qty,
            filled_avg_price=order.avg_price,
            limit_price=order.limit,
            multi_leg=order.multi_leg,
            symbols=(),
            tags=tags or OrderTags(),
            updated_ns=updated_ns,
            replaced_by=order.replaced_by,
        )
        self._ensure_accounts(tracked, order)
        self._orders[order.id] = tracked
        if order.client_id:
            self._by_client_id[order.client_id] = order.id
        return tracked

    def preload(self, order_id: str, fills: Iterable[OrderFilled]) -> None:
        """Fills of ``order_id`` (or of its legs) the journal already holds, for an order adopted at restart:
        they count as booked once the order is tracked, so reading it books only what the broker filled
        beyond them (a fresh state machine took the broker's whole filled quantity for news)."""
        self._preloaded[order_id] = list(fills)

    def _ensure_accounts(self, tracked: TrackedOrder, order: VenueOrder) -> None:
        """Open a fill account per leg (per order when single-leg) once the order shows its legs."""
        if tracked.accounts:
            return
        if order.multi_leg and not order.legs:
            return  # a multi-leg order listed without its legs: wait for a full view
        for leg_order in order.legs if order.has_legs else (order,):
            symbol = leg_order.symbol
            side = leg_order.side
            if not symbol or side is None:
                log.error("order_leg_unusable", order_id=order.id, leg_id=leg_order.id, symbol=symbol)
                continue
            tracked.accounts[symbol] = FillAccount(
                symbol=symbol,
                side=side,
                asset_class=leg_order.asset_class,
            )
        tracked.symbols = tuple(tracked.accounts)
        for fill in self._preloaded.pop(tracked.order_id, ()):
            account = tracked.accounts.get(fill.symbol)
            if account is None or fill.execution_id in account.execution_ids:
                continue
            account.execution_ids.add(fill.execution_id)
            account.counted_qty += fill.qty
            account.counted_notional += fill.qty * (fill.price if math.isfinite(fill.price) else 0.0)

    def _updated(self, tracked: TrackedOrder, ts_event_ns: int, ts_init_ns: int) -> OrderUpdated:
        return OrderUpdated(
            order_id=tracked.order_id,
            client_order_id=tracked.client_order_id,
            status=tracked.status,
            filled_qty=tracked.filled_qty,
            qty=tracked.qty,
            ts_event_ns=ts_event_ns,
            ts_init_ns=ts_init_ns,
            strategy_id=tracked.tags.strategy_id,
            structure_id=tracked.tags.structure_id,
            intent_id=tracked.tags.intent_id,
            filled_avg_price=tracked.filled_avg_price,
            limit_price=tracked.limit_price,
            replaced_by=tracked.replaced_by,
        )

    # --- internals: fills --------------------------------------------------------------------

    def _apply_executions(
        self, tracked: TrackedOrder, update: OrderEvent, ts_event_ns: int, ts_init_ns: int
    ) -> list[OrderUpdated | OrderFilled]:
        order = update.order
        out: list[OrderUpdated | OrderFilled] = []
        if order.has_legs:
            net_price = update.price
            leg_ids = {leg.symbol: leg.id for leg in order.legs}
            executions: Iterable[LegFill] = update.legs
            if not update.legs:
                # No per-leg executions in this message: fall back to the legs' cumulative quantities.
                return self._reconcile_fills(tracked, order, ts_event_ns, ts_init_ns)
            for ex in executions:
                account = tracked.accounts.get(ex.symbol)
                if account is None:
                    log.warning("fill_for_unknown_leg", order_id=tracked.order_id, symbol=ex.symbol)
                    continue
                position_after = None
                if update.position_qtys is not None and ex.symbol in update.position_qtys:
                    position_after = update.position_qtys[ex.symbol]
                fill = self._count(
                    tracked,
                    account,
                    ex.execution_id,
                    ex.qty,
                    ex.price,
                    ex.ts_ns or ts_event_ns,
                    ts_init_ns,
                    order_id=ex.order_id or leg_ids.get(ex.symbol, ""),
                    parent_net_price=net_price,
                    position_after=position_after,
                )
                if fill is not None:
                    out.append(fill)
            return out
        account = tracked.accounts.get(order.symbol)
        if account is None:
            log.error("fill_for_untracked_order_leg", order_id=order.id, symbol=order.symbol)
            return out
        execution_id = update.execution_id or f"{order.id}:cum:{order.filled_qty}"
        fill = self._count(
            tracked,
            account,
            execution_id,
            update.qty or 0.0,
            update.price,
            ts_event_ns,
            ts_init_ns,
            order_id=order.id,
            parent_net_price=None,
            position_after=update.position_qty,
        )
        if fill is not None:
            out.append(fill)
        return out

    def _reconcile_fills(
        self, tracked: TrackedOrder, order: VenueOrder, ts_event_ns: int, ts_init_ns: int
    ) -> list[OrderUpdated | OrderFilled]:
        """Book whatever cumulative fill quantity exceeds what executions already accounted for."""
        out: list[OrderUpdated | OrderFilled] = []
        legs = order.legs if order.has_legs else None
        for leg_order in legs or (order,):
            account = tracked.accounts.get(leg_order.symbol)
            cum = leg_order.filled_qty
            if account is None or cum <= account.counted_qty + _QTY_EPS:
                continue
            missing = cum - account.counted_qty
            avg = leg_order.avg_price
            price = None if avg is None else (avg * cum - account.counted_notional) / missing
            account.unmatched_reconciled_qty += missing
            fill = self._count(
                tracked,
                account,
                f"{leg_order.id}:cum:{cum:g}",
                missing,
                price,
                ts_event_ns,
                ts_init_ns,
                order_id=leg_order.id,
                parent_net_price=order.avg_price if legs else None,
                position_after=None,
                reconciliation=True,
            )
            if fill is not None:
                out.append(fill)
        return out

    def _count(
        self,
        tracked: TrackedOrder,
        account: FillAccount,
        execution_id: str,
        qty: float,
        price: float | None,
        ts_event_ns: int,
        ts_init_ns: int,
        *,
        order_id: str,
        parent_net_price: float | None,
        position_after: float | None,
        reconciliation: bool = False,
    ) -> OrderFilled | None:
        if execution_id in account.execution_ids:
            self.duplicates_ignored += 1
            return None
        account.execution_ids.add(execution_id)
        if not reconciliation and account.unmatched_reconciled_qty > _QTY_EPS:
            # This execution (or part of it) was already booked from a cumulative total.
            absorbed = min(qty, account.unmatched_reconciled_qty)
            account.unmatched_reconciled_qty -= absorbed
            qty -= absorbed
        if qty <= _QTY_EPS:
            self.duplicates_ignored += 1
            return None
        account.counted_qty += qty
        account.counted_notional += qty * (price if price is not None else 0.0)
        position = self._positions.get(account.symbol, 0.0) + account.side.sign * qty
        if abs(position) > _QTY_EPS:
            self._positions[account.symbol] = position
        else:
            self._positions.pop(account.symbol, None)  # flat: a contract a day would otherwise stay forever
        is_leg = order_id != tracked.order_id
        return OrderFilled(
            execution_id=execution_id,
            order_id=order_id,
            client_order_id=tracked.client_order_id,
            symbol=account.symbol,
            side=account.side,
            qty=qty,
            price=float("nan") if price is None else price,
            ts_event_ns=ts_event_ns,
            ts_init_ns=ts_init_ns,
            asset_class=account.asset_class,
            strategy_id=tracked.tags.strategy_id,
            structure_id=tracked.tags.structure_id,
            intent_id=tracked.tags.intent_id,
            parent_order_id=tracked.order_id if is_leg else "",
            parent_net_price=parent_net_price,
            position_qty_after=position_after,
        )

