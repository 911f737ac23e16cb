"""Expiry, exercise and assignment: account activities become fills the portfolio and strategies book.

Alpaca does not send these on the trade_updates stream; they appear as account activities
(``OPEXP`` expired worthless, ``OPEXC`` exercised, ``OPASN`` assigned; on paper only the next day).
The poller reads them after a cursor and turns each into settlement fills, booked to the structure
that held the contract:

* the option position is flattened at 0 (its value left as cash or as shares);
* on exercise or assignment, shares move at the strike (+100 per long call exercised, -100 per short
  call assigned, and the reverse for puts).

Each settlement fill's ``execution_id`` is derived from the activity id, so a repeated poll or a
restart books it once. Assigned or exercised shares are unwound by a stock order when the policy
says so (``unwind``); ``hold`` keeps them for the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Literal

import structlog

from engine.broker import Activity, AlpacaBroker, BrokerError
from engine.feeds.trading.models import rfc3339_to_ns
from engine.portfolio import Portfolio, underlying_of
from greeks.occ import OccSymbolError, parse_occ
from risk.model import (
    CONTRACT_MULTIPLIER,
    AssetClass,
    IntentAction,
    Leg,
    OrderFilled,
    OrderIntent,
    PricePolicy,
    Side,
)

log = structlog.get_logger(__name__)

SETTLEMENT_TYPES = ("OPEXP", "OPEXC", "OPASN")
SETTLEMENT_STRATEGY = "settlement"
AssignmentPolicy = Literal["unwind", "hold"]


def settlement_fills(activity: Activity, portfolio: Portfolio, ts_init_ns: int) -> list[OrderFilled]:
    """The fills one settlement activity implies (none for a contract the portfolio does not hold)."""
    symbol = activity.symbol or ""
    try:
        occ = parse_occ(symbol)
    except OccSymbolError:
        log.warning("settlement_unknown_symbol", activity_id=activity.id, symbol=symbol)
        return []
    held = portfolio.position(symbol)
    if abs(held) < 1e-9:
        return []
    ts = _ts_ns(activity.transaction_time) or ts_init_ns
    structure_id, strategy_id = _owner(portfolio, symbol)
    base = dict(order_id=f"activity-{activity.id}", client_order_id="", ts_event_ns=ts, ts_init_ns=ts_init_ns,
                strategy_id=strategy_id, structure_id=structure_id)
    close_side = Side.SELL if held > 0 else Side.BUY
    fills = [OrderFilled(f"{activity.id}:{symbol}", symbol=symbol, side=close_side, qty=abs(held), price=0.0,
                         asset_class=AssetClass.OPTION, **base)]  # type: ignore[arg-type]
    if activity.activity_type in ("OPEXC", "OPASN"):
        shares = held * CONTRACT_MULTIPLIER * (1 if occ.is_call else -1)
        underlying = _underlying_of(portfolio, symbol, occ.root)
        fills.append(OrderFilled(f"{activity.id}:{underlying}", symbol=underlying,
                                 side=Side.BUY if shares > 0 else Side.SELL, qty=abs(shares), price=occ.strike,
                                 asset_class=AssetClass.EQUITY, **base))  # type: ignore[arg-type]
    return fills


def unwind_intent(fill: OrderFilled, seq: int, now_ns: int) -> OrderIntent:
    """A market stock order that gives back the shares of an exercise or assignment."""
    side = Side.SELL if fill.side is Side.BUY else Side.BUY
    sid = fill.structure_id or f"{SETTLEMENT_STRATEGY}-{fill.symbol}"
    return OrderIntent(f"{sid}-unwind-{seq}", fill.strategy_id or SETTLEMENT_STRATEGY, sid, fill.symbol,
                       IntentAction.CLOSE, (Leg(fill.symbol, side, 1, None, AssetClass.EQUITY),), round(fill.qty),
                       PricePolicy(kind="market", timeout_s=300.0), tag="assignment_unwind",
                       ts_event_ns=now_ns, ts_init_ns=time.time_ns())


class SettlementPoller:
    """Reads settlement activities after a cursor and hands their fills (and unwind intents) to the engine."""

    def __init__(
        self,
        broker: AlpacaBroker,
        portfolio: Portfolio,
        on_fill: Callable[[OrderFilled], None],
        submit: Callable[[OrderIntent], None],
        *,
        policy: AssignmentPolicy = "unwind",
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.broker = broker
        self.portfolio = portfolio
        self.on_fill = on_fill
        self.submit = submit
        self.policy = policy
        self.now_ns = now_ns
        self.seen: set[str] = set()
        self.settled = 0
        self.unwinds = 0

    async def poll(self) -> int:
        """Fetch new settlement activities and book them; the number of activities handled."""
        try:
            activities = await self.broker.activities(SETTLEMENT_TYPES)
        except BrokerError as exc:
            log.warning("settlement_poll_failed", error=str(exc))
            return 0
        return self.apply(activities)

    def apply(self, activities: Iterable[Activity]) -> int:
        handled = 0
        for activity in activities:
            if activity.id in self.seen or activity.activity_type not in SETTLEMENT_TYPES:
                continue
            self.seen.add(activity.id)
            handled += 1
            for fill in settlement_fills(activity, self.portfolio, time.time_ns()):
                self.on_fill(fill)
                if fill.asset_class is AssetClass.EQUITY and self.policy == "unwind":
                    self.unwinds += 1
                    self.submit(unwind_intent(fill, self.unwinds, self.now_ns()))
            log.info("settled", activity_type=activity.activity_type, symbol=activity.symbol, qty=str(activity.qty))
        self.settled += handled
        return handled


def _owner(portfolio: Portfolio, symbol: str) -> tuple[str, str]:
    for snap in portfolio.structures():
        if abs(snap.legs.get(symbol, 0.0)) > 1e-9:
            return snap.structure_id, snap.strategy_id
    return "", SETTLEMENT_STRATEGY


def _underlying_of(portfolio: Portfolio, symbol: str, root: str) -> str:
    return underlying_of(symbol) or root


def _ts_ns(text: str | None) -> int:
    return rfc3339_to_ns(text) if text else 0
