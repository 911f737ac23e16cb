"""Alpaca's REST request and response bodies as msgspec Structs (decimals arrive as strings).

The trading endpoints' Order, Position and Account are in ``engine.alpaca.feeds.trading.models`` (the trading
stream carries the same Order). Pages (``...Page``) are the envelopes of paginated answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from engine.alpaca.feeds.trading.models import Decimal

MAX_SYMBOLS_PER_REQUEST = 100
"""Latest quotes and snapshots by symbols take at most 100 symbols per request."""


class RateLimit(msgspec.Struct, frozen=True):
    """The ``X-RateLimit-*`` headers of the last response."""

    limit: int
    remaining: int
    reset_epoch_s: float


class LegRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    symbol: str
    ratio_qty: str
    side: Literal["buy", "sell"] | None = None
    position_intent: str | None = None


class OrderRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Body of POST /v2/orders (single-leg: ``symbol``+``side``; mleg: ``order_class="mleg"`` + ``legs``).

    Decimals are strings, as in Alpaca's own examples; ``limit_price`` of an mleg order is the net
    price per unit (+debit, -credit).
    """

    qty: str
    type: Literal["market", "limit", "stop", "stop_limit"]
    time_in_force: Literal["day", "gtc", "ioc", "fok", "opg", "cls"]
    symbol: str | None = None
    side: Literal["buy", "sell"] | None = None
    limit_price: str | None = None
    stop_price: str | None = None
    client_order_id: str | None = None
    order_class: Literal["simple", "mleg"] | None = None
    position_intent: str | None = None
    legs: tuple[LegRequest, ...] | None = None


def decimal_text(value: float) -> str:
    """A price or quantity as a decimal string without float noise (1.05 -> "1.05", 2.0 -> "2")."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class OptionContract(msgspec.Struct, kw_only=True):
    """GET /v2/options/contracts entry."""

    symbol: str
    id: str = ""
    name: str = ""
    status: str = ""
    tradable: bool = True
    expiration_date: str = ""
    root_symbol: str = ""
    underlying_symbol: str = ""
    type: str = ""
    style: str = ""
    strike_price: Decimal = None
    multiplier: Decimal = None
    size: Decimal = None
    open_interest: Decimal = None
    close_price: Decimal = None


class ContractsPage(msgspec.Struct):
    option_contracts: list[OptionContract] = []
    next_page_token: str | None = None


class ListedContract(msgspec.Struct, kw_only=True):
    """The fields of a /v2/options/contracts entry the contract catalog keeps. Decoding only these skips the
    rest of each record without allocating it: a day's listing is thousands of records, and decoding them
    whole at every session roll left the allocator megabytes it never gave back (the 1-hour soak)."""

    symbol: str
    underlying_symbol: str = ""
    expiration_date: dt.date
    type: str = ""
    strike_price: Decimal = None
    open_interest: Decimal = None
    tradable: bool = True
    ppind: bool | None = None
    """Penny program indicator (the contract trades in the penny tick class); None when not given."""


class ListingPage(msgspec.Struct):
    option_contracts: list[ListedContract] = []
    next_page_token: str | None = None



class SnapshotQuote(msgspec.Struct, kw_only=True):
    t: str | None = None
    bp: float = float("nan")
    ap: float = float("nan")
    bs: int = 0
    as_: int = msgspec.field(name="as", default=0)
    bx: str = ""
    ax: str = ""


class SnapshotTrade(msgspec.Struct, kw_only=True):
    t: str | None = None
    p: float = float("nan")
    s: int = 0
    x: str = ""


class SnapshotGreeks(msgspec.Struct, kw_only=True):
    delta: float | None = None
    gamma: float | None = None
    rho: float | None = None
    theta: float | None = None
    vega: float | None = None


class OptionSnapshot(msgspec.Struct, kw_only=True):
    """One contract of /v1beta1/options/snapshots."""

    latestQuote: SnapshotQuote | None = None
    latestTrade: SnapshotTrade | None = None
    greeks: SnapshotGreeks | None = None
    impliedVolatility: float | None = None


class SnapshotsPage(msgspec.Struct):
    snapshots: dict[str, OptionSnapshot] = {}
    next_page_token: str | None = None


class QuotesPage(msgspec.Struct):
    quotes: dict[str, SnapshotQuote] = {}


class StockQuoteRest(msgspec.Struct, kw_only=True):
    t: str | None = None
    bp: float = float("nan")
    ap: float = float("nan")
    bs: int = 0
    as_: int = msgspec.field(name="as", default=0)


class StockQuotePage(msgspec.Struct):
    symbol: str = ""
    quote: StockQuoteRest | None = None


class StockSnapshot(msgspec.Struct, kw_only=True):
    latestQuote: StockQuoteRest | None = None
    latestTrade: SnapshotTrade | None = None


class Activity(msgspec.Struct, kw_only=True):
    """An account activity (fills ``FILL``; option assignment/exercise/expiry ``OPASN``/``OPEXC``/``OPEXP``)."""

    id: str
    activity_type: str
    transaction_time: str | None = None
    date: str | None = None
    symbol: str | None = None
    side: str | None = None
    qty: Decimal = None
    price: Decimal = None
    net_amount: Decimal = None
    order_id: str | None = None
    description: str | None = None


class CancelResult(msgspec.Struct, kw_only=True):
    id: str
    status: int


class ErrorBody(msgspec.Struct):
    code: int = 0
    message: str = ""
