"""Trading-domain value types shared by risk/, strategies/ and engine/.

These live at the bottom of the dependency chain (engine -> strategies -> risk -> greeks) so that
strategies, the gate and the engine speak about the same intent, leg and fill without importing
upward. All are frozen msgspec Structs; timestamps are integer nanoseconds since the epoch:
``ts_event_ns`` when it happened (event time), ``ts_init_ns`` when we made the object.
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

CONTRACT_MULTIPLIER = 100
"""Shares per standard US equity option contract."""


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class PositionIntent(enum.StrEnum):
    BUY_TO_OPEN = "buy_to_open"
    BUY_TO_CLOSE = "buy_to_close"
    SELL_TO_OPEN = "sell_to_open"
    SELL_TO_CLOSE = "sell_to_close"


class AssetClass(enum.StrEnum):
    OPTION = "us_option"
    EQUITY = "us_equity"


class TradingState(enum.IntEnum):
    """The kill switch: ACTIVE trades freely, REDUCE_ONLY only reduces risk, HALTED only cancels."""

    ACTIVE = 0
    REDUCE_ONLY = 1
    HALTED = 2


class IntentAction(enum.StrEnum):
    OPEN = "open"
    CLOSE = "close"
    ADJUST = "adjust"
    HEDGE = "hedge"


class Leg(msgspec.Struct, frozen=True):
    """One leg of an intent: an OCC option symbol (or the underlying for a stock hedge) and its ratio."""

    symbol: str
    side: Side
    ratio: int = 1
    position_intent: PositionIntent | None = None
    asset_class: AssetClass = AssetClass.OPTION


class PricePolicy(msgspec.Struct, frozen=True):
    """How the router prices a working order.

    Start at mid (rounded to the tick), every ``walk_every_s`` seconds concede ``walk_step_fraction``
    of the half-spread toward natural, never past ``max_concession_fraction`` of the way from mid to
    natural nor past ``limit_price`` (net, +debit/-credit per unit), and cancel after ``timeout_s``.
    ``kind="market"`` sends a market order (stock hedges only, by default).
    """

    kind: Literal["limit", "market"] = "limit"
    walk_every_s: float = 5.0
    walk_step_fraction: float = 0.25
    max_concession_fraction: float = 1.0
    limit_price: float | None = None
    timeout_s: float = 60.0


class OrderIntent(msgspec.Struct, frozen=True):
    """What a strategy wants: a whole structure (1-4 legs) in ``qty`` units, priced by a policy.

    ``net_sign`` of the structure follows Alpaca's mleg convention: a positive net price is a debit,
    a negative one a credit. A single stock leg is a hedge order.
    """

    intent_id: str
    strategy_id: str
    structure_id: str
    underlying: str
    action: IntentAction
    legs: tuple[Leg, ...]
    qty: int
    price_policy: PricePolicy = PricePolicy()
    time_in_force: Literal["day", "gtc"] = "day"
    tag: str = ""
    ts_event_ns: int = 0
    ts_init_ns: int = 0

    @property
    def is_stock(self) -> bool:
        return len(self.legs) == 1 and self.legs[0].asset_class is AssetClass.EQUITY

    @property
    def is_multi_leg(self) -> bool:
        return len(self.legs) > 1

    def leg_quantities(self) -> dict[str, int]:
        """Signed contract (or share) quantity per symbol for the whole intent."""
        out: dict[str, int] = {}
        for leg in self.legs:
            out[leg.symbol] = out.get(leg.symbol, 0) + leg.side.sign * leg.ratio * self.qty
        return out


class OrderFilled(msgspec.Struct, frozen=True):
    """One execution of one leg (an mleg fill becomes one per leg, each carrying the parent's net price)."""

    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    ts_event_ns: int
    ts_init_ns: int
    asset_class: AssetClass = AssetClass.OPTION
    strategy_id: str = ""
    structure_id: str = ""
    intent_id: str = ""
    parent_order_id: str = ""
    parent_net_price: float | None = None
    position_qty_after: float | None = None

    @property
    def signed_qty(self) -> float:
        return self.side.sign * self.qty


class OrderStatus(enum.StrEnum):
    """Alpaca's order statuses (the ones the engine acts on; others map to the nearest)."""

    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    CALCULATED = "calculated"
    HELD = "held"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED, OrderStatus.REJECTED,
     OrderStatus.DONE_FOR_DAY}
)


class OrderUpdated(msgspec.Struct, frozen=True):
    """An order changed state (from a trade update or a REST response)."""

    order_id: str
    client_order_id: str
    status: OrderStatus
    filled_qty: float
    qty: float
    ts_event_ns: int
    ts_init_ns: int
    strategy_id: str = ""
    structure_id: str = ""
    intent_id: str = ""
    filled_avg_price: float | None = None
    limit_price: float | None = None
    replaced_by: str | None = None
    reason: str = ""


class IntentDenied(msgspec.Struct, frozen=True):
    """The gate (or the broker, for 403/422) refused an intent; ``reasons`` are machine-readable codes."""

    intent_id: str
    strategy_id: str
    structure_id: str
    reasons: tuple[str, ...]
    detail: str
    ts_event_ns: int
    ts_init_ns: int
    source: Literal["gate", "broker"] = "gate"
