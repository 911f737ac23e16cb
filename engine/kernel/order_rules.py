"""The broker's order rules as the router obeys them: tick classes, wash-trade conflicts, the session.

* ``OrdersSection`` is ``[orders]`` in engine.toml.
* ``TickTable`` says which tick class each underlying's options trade in: the contract listing's ``ppind``
  (penny program indicator) where the broker gives it, otherwise the table in ``[orders]``. ``ppind`` cannot
  tell the all-penny names (SPY, QQQ, IWM: $0.01 at every price) from the rest of the penny program, so
  ``penny_all_underlyings`` comes first.
* ``wash_conflicts`` lists the account's working orders that a new single-leg order could trade against
  (same symbol, opposite side, prices crossing or either a market order); a working mleg order's legs count
  as market-priced (only the package has a price). Alpaca refuses such an order ("potential wash trade
  detected. use complex orders"); complex (mleg) orders are never checked.
* ``session_open`` asks the market calendar whether the regular session trades at an event time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
import structlog

from domain.orders import Side
from engine.kernel.order_pricing import TickClass, TickGrid
from greeks.calendar import CalendarRangeError, MarketCalendar, market_calendar

log = structlog.get_logger(__name__)

Ticker = Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9.]{0,9}$")]


class OrdersSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[orders]``: how the router keeps to the broker's order rules (ticks, wash trades, replace fallback)."""

    penny_all_underlyings: tuple[Ticker, ...] = ("SPY", "QQQ", "IWM")
    """Underlyings whose options trade in $0.01 at every price (the listing's ppind cannot say so)."""
    penny_underlyings: tuple[Ticker, ...] = ()
    """Penny Interval Program names ($0.01 below $3.00, $0.05 at or above), used when the contract listing
    carries no ppind for them."""
    default_tick_class: Literal["penny", "non_penny"] = "non_penny"
    """Class of an underlying neither the listing nor the tables above classify. "non_penny" ($0.05 below $3.00,
    $0.10 at or above) is safe: its prices are valid in every class."""
    use_listing_ppind: bool = True
    """Take the class from the contract listing's ppind (true: penny, false: non-penny) when it has one."""
    wash_trade_wait_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0
    """A single-leg order that could trade against another structure's working order on its symbol waits this
    long (event time) for that order to finish, then is denied "wash_trade_conflict"."""
    cancel_confirm_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    """Replace refused: how long (seconds) the router waits for the cancel of the old order to be confirmed
    before it gives up the fallback (no new order is sent while the old one may still be live)."""
    requests_per_minute: Annotated[float, msgspec.Meta(gt=0)] = 180.0
    """Trading REST requests per (wall-clock) minute the router allows itself: under Alpaca's 200 per minute per
    key. Raise it only against a simulator run with its limit off (``[sim] rate_limit_per_min = 0``), e.g. an
    accelerated test, where a wall-clock minute is many simulated ones."""


class TickTable:
    """Tick class per underlying: ``penny_all_underlyings``, then the listing's ppind, then the tables."""

    def __init__(self, config: OrdersSection = OrdersSection()) -> None:
        self.config = config
        self.ppind: dict[str, bool] = {}
        """What the contract listing said, per underlying."""

    def observe(self, underlying: str, ppind: bool | None) -> None:
        """A listed contract's ppind (None when the broker did not say)."""
        if ppind is None or not self.config.use_listing_ppind:
            return
        if self.ppind.get(underlying) != ppind:
            log.info("tick_class_from_listing", underlying=underlying, ppind=ppind)
        self.ppind[underlying] = ppind

    def tick_class(self, underlying: str) -> TickClass:
        cfg = self.config
        listed = self.ppind.get(underlying)
        if underlying in cfg.penny_all_underlyings and listed is not False:
            return "penny_all"
        if listed is not None:
            return "penny" if listed else "non_penny"
        if underlying in cfg.penny_underlyings:
            return "penny"
        return cfg.default_tick_class

    def grid(self, underlying: str) -> TickGrid:
        return TickGrid.of_class(self.tick_class(underlying))


@dataclass(frozen=True, slots=True)
class WorkingLeg:
    """One leg of an order working at the broker, as the wash-trade check sees it."""

    order_id: str
    symbol: str
    side: Side
    limit_price: float | None
    """The price it could trade at; None for a market (or stop) order and for an mleg leg."""
    strategy_id: str
    structure_id: str
    intent_id: str


def wash_conflicts(symbol: str, side: Side, limit_price: float | None,
                   working: Iterable[WorkingLeg]) -> list[WorkingLeg]:
    """Working legs a single-leg order (``limit_price`` None = market) could execute against."""
    out = []
    for leg in working:
        if leg.symbol != symbol or leg.side is side:
            continue
        buy, sell = (limit_price, leg.limit_price) if side is Side.BUY else (leg.limit_price, limit_price)
        if buy is None or sell is None or buy >= sell - 1e-9:
            out.append(leg)
    return out


def session_open(now_ns: int, calendar: Callable[[], MarketCalendar] = market_calendar) -> bool:
    """True while a regular session trades at event time ``now_ns`` (half days close at 13:00). An unknown time
    (0, before any data) or a date outside the calendar is not judged here: the broker decides."""
    if now_ns <= 0:
        return True
    try:
        return calendar().is_open(now_ns)
    except CalendarRangeError:
        return True
