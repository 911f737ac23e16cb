"""Alpaca's answers in the kernel's words: wire structs (and plain JSON) -> ``engine.kernel.venue_types``.

The one decoder of Alpaca orders: REST answers, the trading stream's trade updates and restart reconciliation's
reads all pass here. Decimal strings become floats (``""`` and null: absent), RFC-3339 text nanoseconds, status
text ``OrderStatus``, activity codes settlement kinds.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from domain.orders import AssetClass, OrderStatus, Side
from engine.alpaca.feeds.trading.models import Account as WireAccount
from engine.alpaca.feeds.trading.models import Order, TradeUpdate, num, rfc3339_to_ns
from engine.alpaca.feeds.trading.models import Position as WirePosition
from engine.alpaca.rest_models import Activity, ListedContract, OptionSnapshot, StockQuoteRest
from engine.kernel.venue_types import (
    Account,
    Contract,
    Execution,
    LegFill,
    Listing,
    OrderEvent,
    Position,
    Quote,
    Settlement,
    SettlementKind,
    Snapshot,
    VenueOrder,
)

_STATUS_ALIASES = {"accepted_for_bidding": OrderStatus.ACCEPTED}
_KNOWN = frozenset(s.value for s in OrderStatus)
SETTLEMENT_TYPES: dict[str, SettlementKind] = {"OPEXP": "expired", "OPEXC": "exercised", "OPASN": "assigned"}
"""Alpaca's activity types of option settlements (none of them comes on the trading stream)."""


def parse_status(text: str) -> OrderStatus:
    """Alpaca status text as an OrderStatus; unknown text raises ValueError naming it."""
    alias = _STATUS_ALIASES.get(text)
    if alias is not None:
        return alias
    try:
        return OrderStatus(text)
    except ValueError:
        raise ValueError(f"unknown order status {text!r}") from None


def _side(order: Order) -> Side | None:
    """Side of an order or leg, from ``side`` or else ``position_intent``; None when neither says."""
    if order.side == "buy":
        return Side.BUY
    if order.side == "sell":
        return Side.SELL
    intent = order.position_intent or ""
    if intent.startswith("buy"):
        return Side.BUY
    if intent.startswith("sell"):
        return Side.SELL
    return None


def venue_order(o: Order, parent_status: OrderStatus | None = None) -> VenueOrder:
    """An Alpaca order (and its legs). A leg's unknown status is its parent's (the kernel reads the parent's)."""
    if parent_status is None:
        status = parse_status(o.status)
    else:
        status = _STATUS_ALIASES.get(o.status) or (OrderStatus(o.status) if o.status in _KNOWN else parent_status)
    return VenueOrder(
        id=o.id,
        client_id=o.client_order_id,
        status=status,
        symbol=o.symbol or "",
        side=_side(o),
        asset_class=AssetClass.EQUITY if o.asset_class == "us_equity" else AssetClass.OPTION,
        qty=num(o.qty) or 0.0,
        filled_qty=num(o.filled_qty) or 0.0,
        avg_price=num(o.filled_avg_price),
        limit=num(o.limit_price),
        multi_leg=o.order_class == "mleg",
        replaced_by=o.replaced_by,
        replaces=o.replaces,
        updated_ns=o.updated_ns,
        submitted_ns=rfc3339_to_ns(o.submitted_at),
        legs=tuple(venue_order(leg, status) for leg in o.legs) if o.legs else (),
    )


def order_event(u: TradeUpdate) -> OrderEvent:
    """A ``trade_updates`` message as the kernel's order event."""
    order = venue_order(u.order)
    qtys = u.position_qtys
    return OrderEvent(
        kind=u.event,
        order=order,
        ts_ns=rfc3339_to_ns(u.timestamp or u.at) or order.updated_ns,
        event_id=u.event_id or u.timestamp or "",
        execution_id=u.execution_id or "",
        price=num(u.price),
        qty=num(u.qty),
        position_qty=num(u.position_qty),
        position_qtys=None if qtys is None else {s: q for s, v in qtys.items() if (q := num(v)) is not None},
        legs=tuple(
            LegFill(execution_id=x.execution_id, symbol=x.symbol, qty=num(x.qty) or 0.0, price=num(x.price),
                    order_id=x.order_id, ts_ns=rfc3339_to_ns(x.timestamp))
            for x in u.legs
        ) if u.legs else (),
    )


def account(a: WireAccount) -> Account:
    return Account(id=a.id, equity=num(a.equity) or 0.0, cash=num(a.cash) or 0.0,
                   buying_power=num(a.buying_power) or 0.0, options_buying_power=num(a.options_buying_power),
                   options_level=a.options_trading_level)


def position(p: WirePosition) -> Position:
    return Position(symbol=p.symbol, qty=num(p.qty) or 0.0)


def execution(a: Activity) -> Execution:
    """A FILL activity."""
    return Execution(id=a.id, order_id=a.order_id or "", symbol=a.symbol or "", side=Side(a.side or ""),
                     qty=num(a.qty) or 0.0, price=num(a.price) or 0.0, ts_ns=rfc3339_to_ns(a.transaction_time))


def settlement(a: Activity) -> Settlement | None:
    """An OPEXP/OPEXC/OPASN activity (None for any other type)."""
    kind = SETTLEMENT_TYPES.get(a.activity_type)
    if kind is None:
        return None
    day = None
    if a.date:
        try:
            day = dt.date.fromisoformat(a.date[:10])
        except ValueError:
            day = None
    return Settlement(id=a.id, kind=kind, symbol=a.symbol or "", qty=num(a.qty),
                      ts_ns=rfc3339_to_ns(a.transaction_time), date=day)


def listing(records: list[ListedContract]) -> Listing:
    """The tradable contracts of a /v2/options/contracts listing (its ppind read off the first record)."""
    return Listing(
        contracts=[
            Contract(c.symbol, sys.intern(c.underlying_symbol), c.expiration_date, num(c.strike_price) or 0.0,
                     c.type == "call", int(num(c.open_interest) or 0))
            for c in records if c.tradable
        ],
        penny=records[0].ppind if records else None,
        listed=len(records),
    )


def snapshots(snaps: Mapping[str, OptionSnapshot]) -> dict[str, Snapshot]:
    """Contracts with a latest quote, as the kernel's snapshots."""
    out: dict[str, Snapshot] = {}
    for symbol, snap in snaps.items():
        q = snap.latestQuote
        if q is None:
            continue
        last = snap.latestTrade.p if snap.latestTrade is not None else float("nan")
        out[symbol] = Snapshot(bid=q.bp, ask=q.ap, bid_size=q.bs, ask_size=q.as_, ts_ns=rfc3339_to_ns(q.t), last=last)
    return out


def quote(q: StockQuoteRest | None) -> Quote | None:
    return None if q is None else Quote(bid=q.bp, ask=q.ap, ts_ns=rfc3339_to_ns(q.t))


# --- plain JSON (lists of dicts, as the REST API returns them) ----------------------------------------------


def orders_from_json(data: Iterable[Any]) -> list[VenueOrder]:
    return [venue_order(o) for o in msgspec.convert(list(data), list[Order], strict=False)]


def positions_from_json(data: Iterable[Any]) -> list[Position]:
    return [position(p) for p in msgspec.convert(list(data), list[WirePosition], strict=False)]


def executions_from_json(data: Iterable[Any]) -> list[Execution]:
    """The FILL activities among ``data`` (a record without a type counts as one)."""
    fills = [{"activity_type": "FILL", **a} for a in data if a.get("activity_type", "FILL") == "FILL"]
    return [execution(a) for a in msgspec.convert(fills, list[Activity], strict=False)]


def settlements_from_json(data: Iterable[Any]) -> list[Settlement]:
    """The option settlements among ``data`` (account activities of any type)."""
    records = [a for a in data if a.get("activity_type") in SETTLEMENT_TYPES]
    return [s for a in msgspec.convert(records, list[Activity], strict=False) if (s := settlement(a)) is not None]
