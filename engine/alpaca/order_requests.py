"""Alpaca's order bodies for the kernel's order requests, and what an Alpaca refusal means for one.

Prices follow Alpaca's conventions, which are the kernel's: an mleg order's ``limit_price`` is the signed net per
unit (+debit, -credit); a single-leg order's is the positive price. Quantities are contracts (single legs), shares,
or mleg units.
"""

from __future__ import annotations

from typing import Any

from domain.orders import AssetClass
from engine.alpaca.rest_models import LegRequest, OrderRequest, decimal_text
from engine.kernel.venue_types import OrderRequest as VenueRequest


def order_body(request: VenueRequest) -> OrderRequest:
    """The POST /v2/orders body for ``request``."""
    price = None if request.limit is None else decimal_text(request.limit)
    order_type: Any = "market" if request.limit is None else "limit"
    if request.is_multi_leg:
        legs = tuple(
            LegRequest(leg.symbol, str(leg.ratio), leg.side.value,
                       None if leg.position_intent is None else leg.position_intent.value)
            for leg in request.legs
        )
        return OrderRequest(
            qty=decimal_text(request.qty), type=order_type, time_in_force=request.time_in_force,
            order_class="mleg", legs=legs, limit_price=price, client_order_id=request.client_id,
        )
    leg = request.legs[0]
    stock = leg.asset_class is AssetClass.EQUITY
    return OrderRequest(
        qty=decimal_text(request.qty), type=order_type, time_in_force=request.time_in_force, symbol=leg.symbol,
        side=leg.side.value, limit_price=price, client_order_id=request.client_id,
        position_intent=None if stock or leg.position_intent is None else leg.position_intent.value,
    )


def replace_body(limit: float, client_id: str) -> dict[str, str]:
    """The PATCH /v2/orders/{id} body that moves an order's limit under a new client id."""
    return {"limit_price": decimal_text(limit), "client_order_id": client_id}


_REASONS = (
    ("wash trade", "wash_trade"),
    ("market is closed", "market_closed"),
    ("restricted to closing transactions", "closing_only"),
    ("insufficient qty available", "insufficient_qty"),
)


def broker_reason(status: int, body: dict[str, Any]) -> str:
    """The machine-readable reason of an Alpaca refusal (its status and JSON body): ``wash_trade`` (403
    "potential wash trade detected"), ``market_closed``, ``closing_only``, ``insufficient_qty``, or
    ``broker_rejected_<status>``."""
    message = str(body.get("message", "")).lower()
    return next((reason for text, reason in _REASONS if text in message), f"broker_rejected_{status}")


def is_duplicate_client_id(status: int, body: dict[str, Any]) -> bool:
    """A 422 saying the client_order_id is taken (an order with it may exist)."""
    message = str(body.get("message", "")).lower()
    return status == 422 and "client_order_id" in message and ("duplicate" in message or "unique" in message)
