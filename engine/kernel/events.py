"""The engine's typed events and the topics they travel on.

Every event is a frozen msgspec Struct carrying ``ts_event_ns`` (when it happened, event time) and
``ts_init_ns`` (when we made it). Trading outcomes (fills, order updates, denials) are defined in
``domain/orders.py`` and re-exported here; engine-only events (book updates, feed health, alerts) are
defined below. A topic is bound to its type exactly once, in ``TOPIC_OF``, right next to the types;
the bus routes by type, so no call site ever spells a topic as a string.

Delivery modes (see ``engine/kernel/bus.py``): ``CONFLATED`` topics keep only the newest event per key
(a slow subscriber sees the latest book, never a backlog); ``LOSSLESS`` topics deliver every event
in publish order.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from domain.orders import (
    IntentDenied,
    OrderFilled,
    OrderStatus,
    OrderUpdated,
    Side,
)
from domain.views import VolStats

__all__ = [
    "TOPIC_OF",
    "BookUpdated",
    "Delivery",
    "Event",
    "FeedConnected",
    "FeedDisconnected",
    "FeedError",
    "FeedFailed",
    "FeedName",
    "FeedStale",
    "GapDetected",
    "IntentDenied",
    "OrderFilled",
    "OrderStatus",
    "OrderUpdated",
    "Side",
    "StockQuote",
    "SubscriberFailed",
    "SubscriptionChanged",
    "SurfaceFitted",
    "SurfaceSmile",
    "Topic",
    "conflation_key",
    "register",
    "topic_of",
]


class Delivery(enum.Enum):
    CONFLATED = "conflated"
    LOSSLESS = "lossless"


class Topic(enum.StrEnum):
    """Bus topics; the delivery mode of each is fixed in ``DELIVERY``."""

    BOOK = "book"
    SURFACE = "surface"
    STOCK_QUOTES = "stock_quotes"
    ORDERS = "orders"
    FILLS = "fills"
    DENIALS = "denials"
    FEED = "feed"
    ALERTS = "alerts"
    CONTROL = "control"
    """Commands and life-cycle events of other parts (config reloads, pause/halt); register types with ``register``."""

    @property
    def delivery(self) -> Delivery:
        return DELIVERY[self]


DELIVERY: dict[Topic, Delivery] = {
    Topic.BOOK: Delivery.CONFLATED,
    Topic.SURFACE: Delivery.CONFLATED,
    Topic.STOCK_QUOTES: Delivery.CONFLATED,
    Topic.ORDERS: Delivery.LOSSLESS,
    Topic.FILLS: Delivery.LOSSLESS,
    Topic.DENIALS: Delivery.LOSSLESS,
    Topic.FEED: Delivery.LOSSLESS,
    Topic.ALERTS: Delivery.LOSSLESS,
    Topic.CONTROL: Delivery.LOSSLESS,
}

FeedName = Literal["options", "stocks", "trading"]


# --- market data (conflated) -------------------------------------------------------------------


class BookUpdated(msgspec.Struct, frozen=True):
    """The option book of ``underlying`` changed; read it through ``MarketView.chain(underlying)``.

    ``seq`` increases by one per applied batch of that underlying, so a conflated subscriber can tell
    how many updates it skipped. ``rows_repriced`` counts rows whose IV/Greeks were recomputed
    (the whole chain on an underlying move).
    """

    underlying: str
    seq: int
    rows_changed: int
    rows_repriced: int
    spot: float
    reason: Literal["quotes", "trades", "spot", "snapshot", "clock"]
    ts_event_ns: int
    ts_init_ns: int


class SurfaceSmile(msgspec.Struct, frozen=True):
    """One expiry of a fitted surface: raw SVI parameters of total variance against k = ln(K / F) (empty when
    no fit has passed its checks), this round's status, and the market points it was fitted on."""

    expiry: str
    t: float
    status: str
    age_s: float
    """Event-time seconds since ``params`` were fitted (0 when fitted this round; -1 without params)."""
    params: tuple[float, ...]
    """(a, b, rho, m, sigma), or empty."""
    wings: tuple[float, ...]
    """The wing terms beyond the quoted range (``greeks.svi.wing_fields``; empty for plain raw SVI); the smile is
    ``greeks.svi.smile_from_fields(params, wings)``."""
    k: tuple[float, ...]
    iv_mid: tuple[float, ...]
    iv_bid: tuple[float, ...]
    iv_ask: tuple[float, ...]


class SurfaceFitted(msgspec.Struct, frozen=True):
    """The volatility surface of ``underlying`` was refitted (conflated per underlying: the newest is what counts)."""

    underlying: str
    spot: float
    smiles: tuple[SurfaceSmile, ...]
    stats: VolStats | None
    fit_us: int
    ts_event_ns: int
    ts_init_ns: int


class StockQuote(msgspec.Struct, frozen=True):
    """The newest quote of an underlying (conflated per symbol)."""

    symbol: str
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    ts_event_ns: int
    ts_init_ns: int

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)


# --- feed health (lossless) --------------------------------------------------------------------


class FeedConnected(msgspec.Struct, frozen=True):
    """A feed finished its handshake (and, for data feeds, re-sent its full subscription)."""

    feed: FeedName
    url: str
    attempt: int
    ts_event_ns: int
    ts_init_ns: int


class FeedDisconnected(msgspec.Struct, frozen=True):
    """A feed lost its socket; ``retry_in_s`` is the backoff before the next attempt (None if fatal)."""

    feed: FeedName
    reason: str
    retry_in_s: float | None
    ts_event_ns: int
    ts_init_ns: int


class SubscriptionChanged(msgspec.Struct, frozen=True):
    """The server acknowledged a subscription set (the complete current set, per channel)."""

    feed: FeedName
    quotes: int
    trades: int
    ts_event_ns: int
    ts_init_ns: int


# --- alerts (lossless) -------------------------------------------------------------------------


class FeedStale(msgspec.Struct, frozen=True):
    """A connected feed delivered no market data for ``silent_s`` while the market was open."""

    feed: FeedName
    silent_s: float
    ts_event_ns: int
    ts_init_ns: int


class FeedError(msgspec.Struct, frozen=True):
    """The server sent an error message, or a frame could not be decoded (``code`` 0 = malformed)."""

    feed: FeedName
    code: int
    message: str
    ts_event_ns: int
    ts_init_ns: int


class FeedFailed(msgspec.Struct, frozen=True):
    """A feed stopped for good (bad credentials 402, feed not in plan 409); operator action needed."""

    feed: FeedName
    code: int
    message: str
    ts_event_ns: int
    ts_init_ns: int


class GapDetected(msgspec.Struct, frozen=True):
    """Data may be missing between ``from_ns`` and ``to_ns`` (a reconnect); trading gaps call for reconciliation."""

    feed: FeedName
    from_ns: int
    to_ns: int
    detail: str
    ts_event_ns: int
    ts_init_ns: int


class SubscriberFailed(msgspec.Struct, frozen=True):
    """A bus subscriber raised; ``disabled`` when it failed too often in a row and was removed."""

    subscriber: str
    error: str
    consecutive_failures: int
    disabled: bool
    ts_event_ns: int
    ts_init_ns: int


Event = (
    BookUpdated
    | SurfaceFitted
    | StockQuote
    | FeedConnected
    | FeedDisconnected
    | SubscriptionChanged
    | FeedStale
    | FeedError
    | FeedFailed
    | GapDetected
    | SubscriberFailed
    | OrderFilled
    | OrderUpdated
    | IntentDenied
)

# The one place where a type is bound to its topic.
TOPIC_OF: dict[type, Topic] = {
    BookUpdated: Topic.BOOK,
    SurfaceFitted: Topic.SURFACE,
    StockQuote: Topic.STOCK_QUOTES,
    OrderUpdated: Topic.ORDERS,
    OrderFilled: Topic.FILLS,
    IntentDenied: Topic.DENIALS,
    FeedConnected: Topic.FEED,
    FeedDisconnected: Topic.FEED,
    SubscriptionChanged: Topic.FEED,
    FeedStale: Topic.ALERTS,
    FeedError: Topic.ALERTS,
    FeedFailed: Topic.ALERTS,
    GapDetected: Topic.ALERTS,
    SubscriberFailed: Topic.ALERTS,
}


def register(event_type: type, topic: Topic) -> None:
    """Bind an event type defined elsewhere (e.g. ``ConfigReloaded``) to a lossless topic, once."""
    if topic.delivery is Delivery.CONFLATED:
        raise ValueError(f"{topic} is conflated; only the engine's market-data events may use it")
    bound = TOPIC_OF.get(event_type)
    if bound is not None and bound is not topic:
        raise ValueError(f"{event_type.__name__} is already bound to topic {bound}")
    TOPIC_OF[event_type] = topic


def topic_of(event: object) -> Topic:
    """Topic of an event instance; KeyError names the unregistered type."""
    try:
        return TOPIC_OF[type(event)]
    except KeyError:
        raise KeyError(f"no topic registered for event type {type(event).__name__}") from None


def conflation_key(event: object) -> str:
    """Key under which a conflated event replaces its predecessor (underlying or symbol)."""
    if isinstance(event, (BookUpdated, SurfaceFitted)):
        return event.underlying
    if isinstance(event, StockQuote):
        return event.symbol
    raise TypeError(f"{type(event).__name__} is not a conflated event")
