"""The ports through which the kernel reaches the execution venue: the calls it makes, typed in
``engine.kernel.venue_types``. The Alpaca adapter (``AlpacaExecution``) implements both over Alpaca's REST API;
the replay's ``ReplayBroker`` implements ``ExecutionClient`` over the in-process exchange.

Every call may raise a :class:`VenueError`: :class:`Rejected` (and :class:`NotFound`), :class:`RateLimited`,
:class:`OutcomeUnknown` (a write that may have taken effect: look the order up by its client id) or
:class:`Unavailable`. Writes are never retried by the adapter (idempotency is the router's job, through the
client id); reads may be.

``submit`` is a plain call returning an awaitable: an adapter may put the order on the wire before it returns
(the router calls it on the tick's own stack once the intent is journaled) and leave only the answer to await;
a coroutine function fits as well (its request goes out when the router awaits it). Its errors come through
the awaitable, never from the call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Sequence
from typing import Literal, Protocol

from domain.orders import OrderIntent
from engine.kernel.venue_types import (
    Account,
    Contract,
    Execution,
    LegFill,
    Listing,
    NotFound,
    OrderEvent,
    OrderRequest,
    OutcomeUnknown,
    Position,
    Quote,
    RateLimited,
    Rejected,
    Settlement,
    Snapshot,
    Unavailable,
    VenueError,
    VenueOrder,
)

__all__ = [
    "Account", "Contract", "Execution", "ExecutionClient", "IntentJournal", "LegFill", "Listing", "NotFound",
    "OrderEvent", "OrderRequest", "OutcomeUnknown", "Position", "Quote", "RateLimited", "ReferenceData", "Rejected",
    "Settlement", "Snapshot", "Unavailable", "VenueError", "VenueOrder",
]


class ExecutionClient(Protocol):
    """Orders and the account at the venue (the router, the settlement poller, restart reconciliation)."""

    def submit(self, request: OrderRequest) -> Awaitable[VenueOrder]:
        """Place an order (the request may be sent before this returns); the venue's answer (id, status, fills)."""
        ...

    async def replace(self, order_id: str, *, limit: float, client_id: str) -> VenueOrder:
        """Move a working order's limit; returns the new order (the old one ends ``replaced``)."""
        ...

    async def cancel(self, order_id: str) -> None:
        """Ask for a cancel (the final state comes on the order stream, or from a read)."""
        ...

    async def order(self, order_id: str) -> VenueOrder: ...

    async def order_by_client_id(self, client_id: str) -> VenueOrder | None:
        """The order with this client id, or None when the venue has none."""
        ...

    async def orders(self, status: Literal["open", "all"] = "open", after_ns: int | None = None) -> list[VenueOrder]:
        """Open orders, or the most recent ones of any status (with their legs); with ``after_ns``, every one
        submitted after that venue time."""
        ...

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def executions(self, after_ns: int | None = None) -> list[Execution]:
        """Every fill on the account's record (after ``after_ns``, venue time, when given), oldest first."""
        ...

    async def settlements(self) -> list[Settlement]:
        """Option expiries, exercises and assignments, oldest first."""
        ...


class ReferenceData(Protocol):
    """Contract listings and snapshots (the subscription budget and the book's priming)."""

    async def listed_contracts(self, underlying: str, first: dt.date, last: dt.date) -> Listing:
        """Active contracts of ``underlying`` expiring from ``first`` to ``last`` (inclusive)."""
        ...

    async def option_snapshots(self, symbols: Sequence[str]) -> dict[str, Snapshot]:
        """Latest quotes of ``symbols`` (those without one are left out)."""
        ...

    async def stock_quote(self, symbol: str) -> Quote | None: ...


class IntentJournal(Protocol):
    """Where intents are written before they are submitted (the service's journal)."""

    def record_intent(self, intent: OrderIntent, client_order_id: str) -> Awaitable[None]:
        """Write the intent; awaited before its order is sent. An ``asyncio.Future`` already done when this
        returns (the intent is durable) lets the router send the order on the caller's stack."""
        ...
