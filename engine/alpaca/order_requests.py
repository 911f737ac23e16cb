"""Broker order requests for intents, and what a broker refusal means for one.

Prices follow Alpaca's conventions: an mleg order's ``limit_price`` is the signed net per unit (+debit,
-credit); a single-leg order's is the positive price. Quantities are contracts (single legs: units x ratio),
shares, or mleg units.
"""

from __future__ import annotations

from typing import Any

from domain.orders import OrderIntent, Side
from engine.alpaca.broker import BrokerRejected, LegRequest, OrderRequest, decimal_text


def order_limit(intent: OrderIntent, net: float) -> float:
    """The limit price field for a net price: mleg orders take the signed net, single legs a positive price."""
    if intent.is_multi_leg:
        return net
    return -net if intent.legs[0].side is Side.SELL else net


def order_request(intent: OrderIntent, client_order_id: str, limit: float | None,
                  qty: float | None = None) -> OrderRequest:
    """The POST body for ``intent`` at ``limit`` (None = market) for ``qty`` (default: the whole intent)."""
    price = None if limit is None else decimal_text(limit)
    order_type: Any = "market" if limit is None else "limit"
    if intent.is_multi_leg:
        legs = tuple(
            LegRequest(leg.symbol, str(leg.ratio), leg.side.value,
                       None if leg.position_intent is None else leg.position_intent.value)
            for leg in intent.legs
        )
        return OrderRequest(
            qty=decimal_text(intent.qty if qty is None else qty), type=order_type, time_in_force="day",
            order_class="mleg", legs=legs, limit_price=price, client_order_id=client_order_id,
        )
    leg = intent.legs[0]
    return OrderRequest(
        qty=decimal_text(intent.qty * leg.ratio if qty is None else qty), type=order_type,
        time_in_force="day" if intent.is_stock else intent.time_in_force, symbol=leg.symbol,
        side=leg.side.value, limit_price=price, client_order_id=client_order_id,
        position_intent=None if intent.is_stock or leg.position_intent is None else leg.position_intent.value,
    )


_REASONS = (
    ("wash trade", "wash_trade"),
    ("market is closed", "market_closed"),
    ("restricted to closing transactions", "closing_only"),
    ("insufficient qty available", "insufficient_qty"),
)


def broker_reason(exc: BrokerRejected) -> str:
    """The machine-readable denial reason of a broker refusal: ``wash_trade``, ``market_closed``,
    ``closing_only``, ``insufficient_qty``, or ``broker_rejected_<status>``."""
    message = str(exc.body.get("message", "")).lower()
    return next((reason for text, reason in _REASONS if text in message), f"broker_rejected_{exc.status}")
