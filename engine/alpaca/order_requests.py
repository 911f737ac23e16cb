"""Alpaca's order bodies for the kernel's order requests, and what an Alpaca refusal means for one.

Prices follow Alpaca's conventions, which are the kernel's: an mleg order's ``limit_price`` is the signed net per
unit (+debit, -credit); a single-leg order's is the positive price. Quantities are contracts (single legs), shares,
or mleg units.

``order_json`` and ``replace_json`` are the order write path's bodies: the same bytes as encoding ``order_body`` and
``replace_body`` with msgspec, pasted from a template and from each leg's cached fragment (a third of the time).
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.orders import AssetClass, Leg
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


_quote = msgspec.json.Encoder().encode
_LEG_FRAGMENTS: dict[Leg, bytes] = {}
_MAX_LEG_FRAGMENTS = 20_000


def order_json(request: VenueRequest) -> bytes:
    """The POST /v2/orders body for ``request``: ``order_body`` encoded, built from a template."""
    limit = b"" if request.limit is None else b'"limit_price":"%s",' % decimal_text(request.limit).encode()
    head = b'{"qty":"%s","type":"%s","time_in_force":%s,' % (
        decimal_text(request.qty).encode(), b"market" if request.limit is None else b"limit",
        _quote(request.time_in_force))
    cid = _quote(request.client_id)
    if request.is_multi_leg:
        legs = b",".join([_leg_fragment(leg) for leg in request.legs])
        return b'%s%s"client_order_id":%s,"order_class":"mleg","legs":[%s]}' % (head, limit, cid, legs)
    leg = request.legs[0]
    intent = b"" if leg.asset_class is AssetClass.EQUITY or leg.position_intent is None else (
        b',"position_intent":%s' % _quote(leg.position_intent.value))
    return b'%s"symbol":%s,"side":%s,%s"client_order_id":%s%s}' % (
        head, _quote(leg.symbol), _quote(leg.side.value), limit, cid, intent)


def replace_json(limit: float, client_id: str) -> bytes:
    """The PATCH /v2/orders/{id} body: ``replace_body`` encoded."""
    return b'{"limit_price":"%s","client_order_id":%s}' % (decimal_text(limit).encode(), _quote(client_id))


def _leg_fragment(leg: Leg) -> bytes:
    """An mleg leg's JSON object (cached: a book's symbols come back again and again)."""
    fragment = _LEG_FRAGMENTS.get(leg)
    if fragment is None:
        intent = b"" if leg.position_intent is None else b',"position_intent":%s' % _quote(leg.position_intent.value)
        fragment = b'{"symbol":%s,"ratio_qty":"%d","side":%s%s}' % (
            _quote(leg.symbol), leg.ratio, _quote(leg.side.value), intent)
        if len(_LEG_FRAGMENTS) >= _MAX_LEG_FRAGMENTS:
            _LEG_FRAGMENTS.clear()
        _LEG_FRAGMENTS[leg] = fragment
    return fragment


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
