"""An execution venue in memory, for kernel tests: the port (``engine.kernel.ports.ExecutionClient``) and
nothing of any real venue's wire types. Orders live in a dict; each change is queued as an ``OrderEvent``."""

from __future__ import annotations

import itertools
from typing import Any, Literal

import msgspec

from domain.orders import OrderStatus
from engine.kernel.clock import EventClock
from engine.kernel.venue_types import (
    Account,
    Execution,
    LegFill,
    OrderEvent,
    OrderRequest,
    Position,
    Rejected,
    Settlement,
    VenueOrder,
)


class MemoryVenue:
    """Orders kept in a dict; every change goes to ``stream`` as the venue's order events."""

    def __init__(self, now: EventClock) -> None:
        self.now = now
        self.orders_by_id: dict[str, VenueOrder] = {}
        self.requests: list[OrderRequest] = []
        self.stream: list[OrderEvent] = []
        self.fail_next: list[Exception] = []
        """Raised by the next submits, in order (an ``OutcomeUnknown`` after the order was placed)."""
        self.refuse_next: list[Rejected] = []
        """Raised by the next submits before anything is placed."""
        self._ids = itertools.count(1)

    def _set(self, order: VenueOrder, kind: str, **fill: Any) -> VenueOrder:
        order = msgspec.structs.replace(order, updated_ns=self.now.now_ns() + next(self._ids))
        self.orders_by_id[order.id] = order
        self.stream.append(OrderEvent(kind=kind, order=order, ts_ns=order.updated_ns, **fill))
        return order

    async def submit(self, request: OrderRequest) -> VenueOrder:
        self.requests.append(request)
        if self.refuse_next:
            raise self.refuse_next.pop(0)
        legs = tuple(VenueOrder(id=f"leg-{next(self._ids)}", symbol=leg.symbol, side=leg.side,
                                qty=request.qty * leg.ratio) for leg in request.legs) if request.is_multi_leg else ()
        order = self._set(VenueOrder(id=f"ord-{next(self._ids)}", client_id=request.client_id,
                                     symbol="" if legs else request.legs[0].symbol,
                                     side=None if legs else request.legs[0].side, qty=request.qty,
                                     limit=request.limit, multi_leg=bool(legs), legs=legs), "new")
        if self.fail_next:
            raise self.fail_next.pop(0)  # the order exists, but the answer was lost
        return order

    async def replace(self, order_id: str, *, limit: float, client_id: str) -> VenueOrder:
        old = self.orders_by_id[order_id]
        if old.status.is_terminal:
            raise Rejected("not replaceable", status=422)
        new_id = f"ord-{next(self._ids)}"
        self._set(msgspec.structs.replace(old, status=OrderStatus.REPLACED, replaced_by=new_id), "replaced")
        return self._set(msgspec.structs.replace(old, id=new_id, client_id=client_id, limit=limit, replaces=order_id),
                         "new")

    async def cancel(self, order_id: str) -> None:
        order = self.orders_by_id[order_id]
        if order.status.is_terminal:
            raise Rejected("not cancelable", status=422)
        self._set(msgspec.structs.replace(order, status=OrderStatus.CANCELED), "canceled")

    async def order(self, order_id: str) -> VenueOrder:
        return self.orders_by_id[order_id]

    async def order_by_client_id(self, client_id: str) -> VenueOrder | None:
        return next((o for o in self.orders_by_id.values() if o.client_id == client_id), None)

    async def orders(self, status: Literal["open", "all"] = "open", after_ns: int | None = None) -> list[VenueOrder]:
        return [o for o in self.orders_by_id.values() if status == "all" or not o.status.is_terminal]

    async def account(self) -> Account:
        return Account(id="memory", equity=1e5, cash=1e5, buying_power=1e5)

    async def positions(self) -> list[Position]:
        return []

    async def executions(self, after_ns: int | None = None) -> list[Execution]:
        return []

    async def settlements(self) -> list[Settlement]:
        return []

    def fill(self, order_id: str, price: float) -> None:
        """The whole order fills at ``price`` (a multi-leg order: each leg at ``price`` per unit of net)."""
        order = self.orders_by_id[order_id]
        legs = tuple(msgspec.structs.replace(leg, filled_qty=leg.qty, avg_price=price) for leg in order.legs)
        filled = msgspec.structs.replace(order, status=OrderStatus.FILLED, filled_qty=order.qty, avg_price=price,
                                         legs=legs)
        executions = tuple(LegFill(execution_id=f"x-{leg.id}", symbol=leg.symbol, qty=leg.qty, price=price,
                                   order_id=leg.id) for leg in legs)
        self._set(filled, "fill", execution_id=f"x-{order_id}", price=price, qty=order.qty, legs=executions)
