"""Orders as Alpaca models them: request parsing and validation, the order record and its JSON.

Parsing here checks only what the request alone decides (types, required fields, mleg shape, tick
increments are checked by the exchange, which knows the quote). Messages follow Alpaca's where known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.sim.clock import rfc3339
from engine.sim.errors import invalid

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
SIDES = ("buy", "sell")
INTENTS = ("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close")
OPEN_STATUSES = frozenset({"pending_new", "accepted", "new", "partially_filled", "pending_cancel", "pending_replace"})
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "done_for_day"})


def dec(x: float | None) -> str | None:
    """Alpaca decimal text: ``1.62``, ``1``, ``-0.5``; None stays None."""
    if x is None:
        return None
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def number(body: dict[str, Any], name: str, required: bool = False) -> float | None:
    """A decimal field that may be a JSON number or a numeric string."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"{name} is required")
        return None
    if isinstance(value, bool):
        raise invalid(f"{name} must be a number")
    if isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            raise invalid(f"invalid {name}: {value!r} is not a number") from None
    else:
        raise invalid(f"{name} must be a number")
    if not math.isfinite(x):
        raise invalid(f"invalid {name}: must be finite")
    return x


def text(body: dict[str, Any], name: str, choices: tuple[str, ...] | None = None, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    if choices is not None and value not in choices:
        raise invalid(f"invalid {name}: {value!r} (expected one of {', '.join(choices)})")
    return value


def whole(x: float, name: str) -> int:
    if x <= 0 or x != int(x):
        raise invalid(f"{name} must be a positive whole number")
    return int(x)


@dataclass(slots=True)
class LegRequest:
    symbol: str
    ratio_qty: int
    side: str
    position_intent: str | None


@dataclass(slots=True)
class OrderRequest:
    """A parsed POST /v2/orders body (not yet checked against the market or the account)."""

    order_class: str  # "simple" or "mleg"
    type: str
    time_in_force: str
    qty: float
    symbol: str | None = None
    side: str | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    client_order_id: str | None = None
    position_intent: str | None = None
    extended_hours: bool = False
    legs: list[LegRequest] = field(default_factory=list)


def _side_of(intent: str | None, side: str | None, where: str) -> str:
    if side is None and intent is None:
        raise invalid(f"{where}: side or position_intent is required")
    implied = intent.split("_", 1)[0] if intent else None
    if side is not None and implied is not None and side != implied:
        raise invalid(f"{where}: side {side} contradicts position_intent {intent}")
    return side or implied  # type: ignore[return-value]


def parse_order_request(body: Any) -> OrderRequest:
    """Validate the shape of an order request; raise AlpacaError (422) with Alpaca's wording."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    order_type = text(body, "type", ORDER_TYPES, required=True)
    tif = text(body, "time_in_force", TIME_IN_FORCE, required=True)
    order_class = text(body, "order_class", ("simple", "mleg", "bracket", "oco", "oto")) or "simple"
    if order_class in ("bracket", "oco", "oto"):
        raise invalid(f"order_class {order_class} is not supported by the simulator")
    if body.get("notional") not in (None, ""):
        raise invalid("notional orders are not supported; send qty")
    if order_type == "trailing_stop":
        raise invalid("trailing_stop orders are not supported by the simulator")
    ext = body.get("extended_hours", False)
    if not isinstance(ext, bool) and ext is not None:
        raise invalid("extended_hours must be a boolean")
    coid = body.get("client_order_id")
    if coid is not None and (not isinstance(coid, str) or len(coid) > 128):
        raise invalid("client_order_id must be a string of at most 128 characters")
    qty = number(body, "qty", required=True)
    assert qty is not None and order_type is not None and tif is not None
    if qty <= 0:
        raise invalid("qty must be > 0")
    req = OrderRequest(
        order_class=order_class,
        type=order_type,
        time_in_force=tif,
        qty=qty,
        limit_price=number(body, "limit_price"),
        stop_price=number(body, "stop_price"),
        client_order_id=coid or None,
        extended_hours=bool(ext),
        position_intent=text(body, "position_intent", INTENTS),
    )
    if order_type in ("limit", "stop_limit") and req.limit_price is None:
        raise invalid("limit_price is required for limit orders")
    if order_type in ("stop", "stop_limit") and req.stop_price is None:
        raise invalid("stop_price is required for stop orders")
    if order_type in ("market", "stop") and req.limit_price is not None:
        raise invalid("limit_price must not be specified for market and stop orders")
    if order_class == "mleg":
        _parse_mleg(body, req)
    else:
        symbol = text(body, "symbol", required=True)
        assert symbol is not None
        req.symbol = symbol.upper()
        req.side = _side_of(req.position_intent, text(body, "side", SIDES), "order")
        if req.limit_price is not None and req.limit_price <= 0:
            raise invalid("limit_price must be > 0")
        if req.stop_price is not None and req.stop_price <= 0:
            raise invalid("stop_price must be > 0")
    return req


def _parse_mleg(body: dict[str, Any], req: OrderRequest) -> None:
    if body.get("symbol") not in (None, ""):
        raise invalid("symbol must not be specified for multi-leg orders")
    if req.type not in ("market", "limit"):
        raise invalid("multi-leg orders must be market or limit orders")
    req.qty = whole(req.qty, "qty")
    legs = body.get("legs")
    if not isinstance(legs, list) or not legs:
        raise invalid("legs are required for multi-leg orders")
    if not 2 <= len(legs) <= 4:
        raise invalid(f"multi-leg orders must have between 2 and 4 legs, got {len(legs)}")
    seen: set[str] = set()
    for i, leg in enumerate(legs):
        where = f"legs[{i}]"
        if not isinstance(leg, dict):
            raise invalid(f"{where} must be an object")
        symbol = text(leg, "symbol", required=True)
        assert symbol is not None
        symbol = symbol.upper()
        if symbol in seen:
            raise invalid(f"duplicate leg symbol {symbol}: legs must be unique")
        seen.add(symbol)
        ratio = number(leg, "ratio_qty", required=True)
        assert ratio is not None
        intent = text(leg, "position_intent", INTENTS)
        side = _side_of(intent, text(leg, "side", SIDES), where)
        req.legs.append(LegRequest(symbol, whole(ratio, f"{where}.ratio_qty"), side, intent))
    if math.gcd(*(leg.ratio_qty for leg in req.legs)) != 1:
        ratios = ":".join(str(leg.ratio_qty) for leg in req.legs)
        raise invalid(f"leg ratios {ratios} are not in simplest form: the gcd of ratio_qty must be 1")


@dataclass(slots=True, eq=False)
class Order:
    """The simulator's order record (parent of an mleg order holds its legs)."""

    id: str
    client_order_id: str
    created_ns: int
    order_class: str
    type: str
    time_in_force: str
    qty: float
    symbol: str = ""
    asset_id: str = ""
    asset_class: str = ""
    side: str = ""
    position_intent: str | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    ratio_qty: int | None = None
    status: str = "pending_new"
    updated_ns: int = 0
    submitted_ns: int = 0
    filled_ns: int | None = None
    expired_ns: int | None = None
    canceled_ns: int | None = None
    failed_ns: int | None = None
    replaced_ns: int | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    expires_ns: int | None = None
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    legs: list[Order] = field(default_factory=list)
    parent: Order | None = None
    stop_triggered: bool = False
    in_flight: bool = False
    by_broker: bool = False
    """Originated by the broker itself (an expiry-day liquidation), not submitted by the client."""

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> float | None:
        if self.filled_qty <= 0:
            return None
        return self.filled_notional / self.filled_qty

    def set_status(self, status: str, now_ns: int) -> None:
        self.status = status
        self.updated_ns = now_ns
        for leg in self.legs:
            leg.status = status
            leg.updated_ns = now_ns

    def to_json(self, nested: bool = True) -> dict[str, Any]:
        """The order as Alpaca's REST and trade_updates render it."""
        is_leg = self.parent is not None
        mleg_parent = self.order_class == "mleg" and not is_leg
        avg = self.filled_avg_price
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": rfc3339(self.created_ns),
            "updated_at": rfc3339(self.updated_ns or self.created_ns),
            "submitted_at": rfc3339(self.submitted_ns or self.created_ns),
            "filled_at": _ts(self.filled_ns),
            "expired_at": _ts(self.expired_ns),
            "canceled_at": _ts(self.canceled_ns),
            "failed_at": _ts(self.failed_ns),
            "replaced_at": _ts(self.replaced_ns),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": ZERO_UUID if mleg_parent else self.asset_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": None,
            "qty": dec(self.qty),
            "filled_qty": dec(self.filled_qty),
            "filled_avg_price": dec(avg) if avg is not None else None,
            "order_class": self.order_class,
            "order_type": "" if is_leg else self.type,
            "type": "" if is_leg else self.type,
            "side": self.side,
            "position_intent": self.position_intent or "",
            "time_in_force": self.time_in_force,
            "limit_price": dec(self.limit_price),
            "stop_price": dec(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": [leg.to_json() for leg in self.legs] if (self.legs and nested) else None,
            "ratio_qty": str(self.ratio_qty) if self.ratio_qty is not None else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "expires_at": _ts(self.expires_ns),
            "source": None,
            "subtag": None,
        }


def _ts(ns: int | None) -> str | None:
    return None if ns is None else rfc3339(ns)
