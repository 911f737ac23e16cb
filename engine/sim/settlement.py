"""Positions outside the order flow: closing, exercise, do-not-exercise, and the session close.

A mixin of ``Exchange``. The expiration process (expiry-day liquidation, automatic exercise, long puts
against available shares) lives in ``engine.sim.expiration`` and early assignment (dividend-driven and
otherwise) in ``engine.sim.assignment``; this module holds what they share: exercising or assigning ``k``
contracts of a position into shares at the strike, and expiring contracts, each recorded as the account
activities Alpaca sends:

* ``OPEXC`` (exercise), ``OPASN`` (assignment), ``OPEXP`` (expiry): ``symbol`` the contract, ``qty`` the
  change of the position in contracts (``-2`` when 2 long contracts are exercised or expire, ``2`` when 2
  short ones are assigned or expire), ``net_amount`` 0;
* ``OPTRD`` beside each exercise or assignment: ``symbol`` the underlying, ``qty`` the signed shares
  delivered, ``price`` the strike, ``net_amount`` the cash moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from engine.sim.account import MULTIPLIER, Account, Instrument
from engine.sim.assignment import EarlyAssignment
from engine.sim.config import SimConfig
from engine.sim.errors import AlpacaError, forbidden, not_found
from engine.sim.expiration import ExpirationProcess, intrinsic
from engine.sim.market import Market
from engine.sim.orders import Order, dec

DESCRIPTIONS = {"OPEXC": "Option Exercise", "OPASN": "Option Assignment", "OPEXP": "Option Expiry"}


class Settlement(ExpirationProcess, EarlyAssignment):
    """Position operations and the close (needs the attributes declared below)."""

    config: SimConfig
    account: Account
    market: Market
    orders: dict[str, Order]
    submit: Callable[[Any], dict[str, Any]]
    cancel_all: Callable[[], list[dict[str, Any]]]
    emit: Callable[..., None]
    mark: Callable[[str], float]
    instrument: Callable[[str], Instrument]
    instrument_any: Callable[[str], Instrument]

    @property
    def now_ns(self) -> int:
        """Event time (the market's clock)."""
        return self.market.now_ns

    # ---- positions -----------------------------------------------------------------------------
    def close_position(self, symbol: str, qty: float | None = None, percentage: float | None = None) -> dict[str, Any]:
        pos = self.account.positions.get(symbol) or self._position_by_id(symbol)
        if pos is None:
            raise not_found("position not found")
        held = abs(pos.qty)
        amount = held if qty is None else qty
        if percentage is not None:
            amount = held * percentage / 100.0
            if pos.instrument.asset_class == "us_option":
                amount = math.floor(amount)
        if amount <= 0 or amount > held + 1e-9:
            raise forbidden(f"insufficient qty available for order (requested: {dec(amount)}, available: {dec(held)})")
        side = "sell" if pos.qty > 0 else "buy"
        body: dict[str, Any] = {
            "symbol": pos.instrument.symbol,
            "qty": amount,
            "side": side,
            "type": "market",
            "time_in_force": "day",
        }
        if pos.instrument.asset_class == "us_option":
            body["position_intent"] = f"{side}_to_close"
        return self.submit(body)

    def _position_by_id(self, asset_id: str) -> Any:
        return next((p for p in self.account.positions.values() if p.instrument.asset_id == asset_id), None)

    def close_all(self, cancel_orders: bool) -> list[dict[str, Any]]:
        if cancel_orders:
            self.cancel_all()
        out: list[dict[str, Any]] = []
        # shorts first, so closing a spread's long leg never leaves its short leg uncovered
        for symbol in sorted(self.account.positions, key=lambda s: (self.account.positions[s].qty > 0, s)):
            try:
                out.append({"symbol": symbol, "status": 200, "body": self.close_position(symbol)})
            except AlpacaError as exc:
                out.append({"symbol": symbol, "status": exc.status, "body": {**exc.body(), "symbol": symbol}})
        return out

    def exercise(self, symbol_or_id: str) -> None:
        """POST /v2/positions/{symbol}/exercise: exercise every held contract now."""
        pos = self.account.positions.get(symbol_or_id) or self._position_by_id(symbol_or_id)
        if pos is None or pos.instrument.asset_class != "us_option":
            raise AlpacaError(403, 40310000, "no available position for the specified contract")
        if pos.qty < 0:
            raise AlpacaError(403, 40310001, "cannot exercise short position")
        self.settle(pos.instrument, pos.qty, "OPEXC")

    def do_not_exercise(self, symbol_or_id: str) -> None:
        pos = self.account.positions.get(symbol_or_id) or self._position_by_id(symbol_or_id)
        if pos is None or pos.instrument.asset_class != "us_option":
            raise AlpacaError(403, 40310000, "no available position for the specified contract")
        if pos.qty < 0:
            raise AlpacaError(403, 40310001, "cannot submit do-not-exercise for a short position")
        pos.do_not_exercise = True

    # ---- settlement primitives -----------------------------------------------------------------
    def settle(self, inst: Instrument, qty: float, activity: str) -> None:
        """Exercise (``qty`` > 0 of a long position) or assignment (``qty`` < 0 of a short one) of ``|qty|``
        contracts into shares at the strike; the rest of the position stays."""
        shares = qty * MULTIPLIER * (1 if inst.is_call else -1)
        self.account.deliver(self.instrument(inst.underlying), shares, inst.strike)
        self._reduce(inst.symbol, qty)
        self._record_option(activity, inst.symbol, qty)
        self.account.record(
            "OPTRD",
            self.now_ns,
            symbol=inst.underlying,
            qty=dec(shares),
            price=dec(inst.strike),
            net_amount=dec(round(-shares * inst.strike, 2)),
            description="Option Trade",
        )

    def expire(self, inst: Instrument, qty: float) -> None:
        """``|qty|`` contracts of a position (signed like it) expire worthless (or not exercised)."""
        self._reduce(inst.symbol, qty)
        self._record_option("OPEXP", inst.symbol, qty)

    def _reduce(self, symbol: str, qty: float) -> None:
        pos = self.account.positions[symbol]
        pos.qty = round(pos.qty - qty, 9)
        if pos.qty == 0:
            self.account.remove(symbol)

    def _record_option(self, activity: str, symbol: str, qty: float) -> None:
        self.account.record(
            activity, self.now_ns, symbol=symbol, qty=dec(-qty), net_amount="0", description=DESCRIPTIONS[activity]
        )

    # ---- close ---------------------------------------------------------------------------------
    def on_close(self) -> None:
        """At the session close: expire day orders, settle expiring contracts, decide tonight's early
        assignments (booked at the next open), mark-to-market."""
        now = self.now_ns
        today = self.market.clock.today()
        for order in list(self.orders.values()):
            if order.parent is not None or not order.is_open:
                continue
            legs = order.legs or [order]
            expiring = any(self.instrument_any(o.symbol).expiry == today for o in legs)
            if order.time_in_force == "day" or expiring:
                order.expired_ns = now
                order.set_status("expired", now)
                self.emit("expired", order)
        self.settle_expiring(today)
        self.expiry_state.liquidations.clear()  # day orders on today's contracts: expired above
        self.decide_early_assignments(today)
        self.market.universe.deactivate_expired(now)
        prices = {s: self.mark(s) for s in self.account.positions}
        equity = self.account.cash + sum(
            p.qty * prices[s] * p.instrument.multiplier for s, p in self.account.positions.items()
        )
        self.account.last_equity = equity
        for s, p in self.account.positions.items():
            p.lastday_price = prices[s]


__all__ = ["DESCRIPTIONS", "Settlement", "intrinsic"]
