"""What the kernel and the execution venue say to each other, in the kernel's words (no venue's wire names).

Timestamps are int nanoseconds since the epoch (0 = not given), prices and quantities floats. Prices follow one
convention: a single-leg order's limit is the (positive) price, a multi-leg order's the signed net per unit
(+debit, -credit). An adapter (Alpaca's) turns these into its venue's requests and its answers back
into these; ``engine.kernel.ports`` says which calls the kernel makes.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NamedTuple

import msgspec

from domain.orders import AssetClass, Leg, OrderStatus, Side

# --- errors ------------------------------------------------------------------------------------------------


class VenueError(Exception):
    """Root of the venue's errors; ``status`` is the venue's own status code (0 when there was no answer)."""

    def __init__(self, text: str, *, status: int = 0) -> None:
        super().__init__(text)
        self.message = text
        self.status = status


class Rejected(VenueError):
    """The venue answered no; nothing was placed or changed.

    ``reason`` is machine-readable: ``wash_trade``, ``market_closed``, ``closing_only``, ``insufficient_qty``, or
    ``broker_rejected_<status>``; ``duplicate`` is True when the client id is already taken (an order with that id
    may exist). ``message`` is the venue's own words (the exception's text also says which request)."""

    def __init__(self, text: str, *, status: int = 0, code: int = 0, message: str = "", reason: str = "",
                 duplicate: bool = False) -> None:
        super().__init__(text, status=status)
        self.message = message or text
        self.code = code
        self.reason = reason or f"broker_rejected_{status}"
        self.duplicate = duplicate


class NotFound(Rejected):
    """No such order, position or contract."""


class RateLimited(VenueError):
    """Over the request budget; nothing was processed. Retry after ``retry_after`` seconds."""

    def __init__(self, text: str, *, retry_after: float, status: int = 429) -> None:
        super().__init__(text, status=status)
        self.retry_after = retry_after


class OutcomeUnknown(VenueError):
    """A write may or may not have taken effect (server error, timeout or dropped connection after sending)."""


class Unavailable(VenueError):
    """The request certainly did not take effect (no connection, or a read kept failing); retry later."""


# --- orders ------------------------------------------------------------------------------------------------


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A new order: ``qty`` units of the legs (a single leg: contracts or shares) at ``limit`` (None: market)."""

    client_id: str
    legs: tuple[Leg, ...]
    qty: float
    limit: float | None = None
    time_in_force: Literal["day", "gtc", "ioc", "fok"] = "day"

    @property
    def is_multi_leg(self) -> bool:
        return len(self.legs) > 1


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's view of an order; a multi-leg order's legs are orders of their own (``legs``)."""

    id: str
    client_id: str = ""
    status: OrderStatus = OrderStatus.NEW
    symbol: str = ""
    """Empty for a multi-leg parent."""
    side: Side | None = None
    asset_class: AssetClass = AssetClass.OPTION
    qty: float = 0.0
    filled_qty: float = 0.0
    avg_price: float | None = None
    """Average fill price (a multi-leg parent: the net)."""
    limit: float | None = None
    multi_leg: bool = False
    replaced_by: str | None = None
    replaces: str | None = None
    updated_ns: int = 0
    submitted_ns: int = 0
    """When the venue took it (0: not reported)."""
    legs: tuple[VenueOrder, ...] = ()

    @property
    def has_legs(self) -> bool:
        """A multi-leg order listed with its legs."""
        return self.multi_leg and bool(self.legs)


class LegFill(msgspec.Struct, frozen=True, kw_only=True):
    """One leg's execution inside a multi-leg fill."""

    execution_id: str
    symbol: str
    qty: float
    price: float | None
    order_id: str = ""
    ts_ns: int = 0


FILL_KINDS = frozenset({"fill", "partial_fill"})
NOTICE_KINDS = frozenset({"order_cancel_rejected", "order_replace_rejected", "rejected"})
"""Order events reported even without a status change: a refused cancel or replace, a rejection."""


class OrderEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the venue's order stream: ``kind`` (``new``, ``fill``, ``partial_fill``, ``canceled``,
    ``replaced``, ``order_cancel_rejected``, ...) and the order as it stands after it.

    A fill carries ``execution_id``, ``price`` and ``qty`` (single leg) or ``legs`` (multi-leg);
    ``position_qty`` / ``position_qtys`` are the account's positions after it when the venue says."""

    kind: str
    order: VenueOrder
    ts_ns: int
    event_id: str = ""
    """Tells two notices of one kind apart (the venue's event id, else its timestamp)."""
    execution_id: str = ""
    price: float | None = None
    qty: float | None = None
    position_qty: float | None = None
    position_qtys: dict[str, float] | None = None
    legs: tuple[LegFill, ...] = ()


# --- account -----------------------------------------------------------------------------------------------


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    equity: float = 0.0
    cash: float = 0.0
    buying_power: float = 0.0
    options_buying_power: float | None = None
    options_level: int | None = None


class Position(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    qty: float
    """Signed."""


class Execution(msgspec.Struct, frozen=True, kw_only=True):
    """A fill as the account's activity record has it (restart reconciliation imports fills from these)."""

    id: str
    order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    ts_ns: int = 0


SettlementKind = Literal["expired", "exercised", "assigned"]


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """An option expired worthless, exercised or assigned: ``qty`` contracts of ``symbol`` (None: not given)."""

    id: str
    kind: SettlementKind
    symbol: str = ""
    qty: float | None = None
    ts_ns: int = 0
    date: dt.date | None = None
    """The day it settled, when the venue gives one (non-trade records carry a date, not a time)."""


# --- reference data ----------------------------------------------------------------------------------------


class Contract(NamedTuple):
    """A listed option contract."""

    symbol: str
    underlying: str
    expiry: dt.date
    strike: float
    is_call: bool
    open_interest: int


class Listing(msgspec.Struct, kw_only=True):
    """The tradable contracts of one underlying in an expiry range; ``penny``: the listing says its options
    trade in the penny tick class (None: it does not say); ``listed``: records listed, tradable or not."""

    contracts: list[Contract]
    penny: bool | None = None
    listed: int = 0


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A contract's latest quote (and last trade price, NaN when none)."""

    bid: float
    ask: float
    bid_size: int
    ask_size: int
    ts_ns: int
    last: float = float("nan")


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    bid: float
    ask: float
    ts_ns: int
