"""Alpaca's Order and trade-update payloads as msgspec Structs (shared by the trading stream and REST).

Decimals arrive as strings in Alpaca's JSON (numbers are accepted too), sometimes as ``""`` on mleg
parents; ``num()`` turns either into a float or None. Timestamps are RFC-3339 with up to nanosecond
precision; ``rfc3339_to_ns`` keeps all nine digits (``datetime`` would truncate to microseconds).
See docs/alpaca.md §7.1 and §7.2.
"""

from __future__ import annotations

import datetime as dt

import msgspec

Decimal = str | float | None


def num(value: Decimal) -> float | None:
    """A wire decimal (string, number, ``""`` or null) as a float, or None when absent/empty."""
    if value is None or value == "":
        return None
    return float(value)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def rfc3339_to_ns(text: str | None) -> int:
    """Nanoseconds since the epoch of an RFC-3339 timestamp; 0 for None or empty.

    Raises ValueError naming the text when it is not RFC-3339.
    """
    if not text:
        return 0
    s = text.strip()
    frac_ns = 0
    dot = s.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(s) and s[end].isdigit():
            end += 1
        digits = s[dot + 1 : end]
        if not digits:
            raise ValueError(f"bad RFC-3339 timestamp: {text!r}")
        frac_ns = int(digits[:9].ljust(9, "0"))
        s = s[:dot] + s[end:]
    try:
        parsed = dt.datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"bad RFC-3339 timestamp: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + frac_ns


def ns_to_rfc3339(ts_ns: int) -> str:
    """RFC-3339 UTC text with nanoseconds for ``ts_ns``."""
    seconds, frac = divmod(ts_ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


class Order(msgspec.Struct, kw_only=True):
    """An Alpaca order as REST returns it and trade updates carry it (unknown fields ignored)."""

    id: str
    client_order_id: str = ""
    status: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    submitted_at: str | None = None
    filled_at: str | None = None
    canceled_at: str | None = None
    expired_at: str | None = None
    failed_at: str | None = None
    replaced_at: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    asset_id: str | None = None
    symbol: str | None = None
    asset_class: str | None = None
    qty: Decimal = None
    filled_qty: Decimal = None
    filled_avg_price: Decimal = None
    order_class: str | None = None
    type: str | None = None
    side: str | None = None
    position_intent: str | None = None
    time_in_force: str | None = None
    limit_price: Decimal = None
    stop_price: Decimal = None
    extended_hours: bool | None = None
    ratio_qty: Decimal = None
    legs: list[Order] | None = None

    @property
    def is_mleg(self) -> bool:
        return self.order_class == "mleg" and bool(self.legs)

    @property
    def updated_ns(self) -> int:
        return rfc3339_to_ns(self.updated_at or self.submitted_at or self.created_at)


class LegExecution(msgspec.Struct, kw_only=True):
    """One leg's execution inside an mleg fill (``legs`` of the trade update)."""

    execution_id: str
    symbol: str
    qty: Decimal
    price: Decimal
    order_id: str = ""
    timestamp: str | None = None


class TradeUpdate(msgspec.Struct, kw_only=True):
    """``data`` of a ``trade_updates`` message (docs/alpaca.md §7.1)."""

    event: str
    order: Order
    timestamp: str | None = None
    at: str | None = None
    event_id: str | None = None
    execution_id: str | None = None
    price: Decimal = None
    qty: Decimal = None
    position_qty: Decimal = None
    position_qtys: dict[str, Decimal] | None = None
    legs: list[LegExecution] | None = None

    @property
    def ts_ns(self) -> int:
        return rfc3339_to_ns(self.timestamp or self.at) or self.order.updated_ns


class Position(msgspec.Struct, kw_only=True):
    """GET /v2/positions entry (docs/alpaca.md §8.3); ``qty`` is signed."""

    symbol: str
    qty: Decimal
    asset_id: str = ""
    asset_class: str = ""
    avg_entry_price: Decimal = None
    side: str = ""
    market_value: Decimal = None
    cost_basis: Decimal = None
    unrealized_pl: Decimal = None
    current_price: Decimal = None


class Account(msgspec.Struct, kw_only=True):
    """GET /v2/account, the fields the engine reads (docs/alpaca.md §8.4)."""

    id: str
    account_number: str = ""
    status: str = ""
    currency: str = "USD"
    cash: Decimal = None
    equity: Decimal = None
    last_equity: Decimal = None
    buying_power: Decimal = None
    options_buying_power: Decimal = None
    options_approved_level: int | None = None
    options_trading_level: int | None = None
    trading_blocked: bool | None = None
    account_blocked: bool | None = None
