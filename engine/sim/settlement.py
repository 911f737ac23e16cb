"""Positions outside the order flow: closing, exercise, do-not-exercise and the session close (expiry).

A mixin of ``Exchange``. At the close, day orders and orders on expiring contracts expire; expiring
positions settle: ITM by at least $0.01 is exercised (long, ``OPEXC``) or assigned (short, ``OPASN``)
into shares at the strike, unless a long position asked not to be exercised; the rest expire
(``OPEXP``). Shares move at the strike, cash with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from engine.sim.account import MULTIPLIER, Account, Instrument
from engine.sim.errors import AlpacaError, forbidden, not_found
from engine.sim.market import Market
from engine.sim.orders import Order, dec


class Settlement:
    """Position operations and the close (needs the attributes declared below)."""

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
        self._settle(pos.instrument, pos.qty, "OPEXC", "exercise")

    def do_not_exercise(self, symbol_or_id: str) -> None:
        pos = self.account.positions.get(symbol_or_id) or self._position_by_id(symbol_or_id)
        if pos is None or pos.instrument.asset_class != "us_option":
            raise AlpacaError(403, 40310000, "no available position for the specified contract")
        if pos.qty < 0:
            raise AlpacaError(403, 40310001, "cannot submit do-not-exercise for a short position")
        pos.do_not_exercise = True

    def _settle(self, inst: Instrument, qty: float, activity: str, why: str) -> None:
        """Exercise (long) or assignment (short) of ``qty`` contracts into shares at the strike."""
        shares = qty * MULTIPLIER * (1 if inst.is_call else -1)
        stock = self.instrument(inst.underlying)
        self.account.deliver(stock, shares, inst.strike)
        self.account.remove(inst.symbol)
        self.account.record(
            activity,
            self.now_ns,
            symbol=inst.symbol,
            qty=dec(qty),
            price=dec(inst.strike),
            net_amount="0",
            description=f"Option {why}: {dec(abs(shares))} shares of {inst.underlying} at {dec(inst.strike)}",
        )

    # ---- close ---------------------------------------------------------------------------------
    def on_close(self) -> None:
        """At the session close: expire day orders, settle expiring contracts, mark-to-market."""
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
        for symbol, pos in list(self.account.positions.items()):
            inst = pos.instrument
            if inst.asset_class != "us_option" or inst.expiry is None or inst.expiry > today:
                continue
            spot = self.market.spot(inst.underlying)
            intrinsic = max(spot - inst.strike, 0.0) if inst.is_call else max(inst.strike - spot, 0.0)
            if intrinsic >= 0.01 and not (pos.qty > 0 and pos.do_not_exercise):
                if pos.qty > 0:
                    self._settle(inst, pos.qty, "OPEXC", "exercise at expiry")
                else:
                    self._settle(inst, pos.qty, "OPASN", "assignment")
            else:
                self.account.remove(symbol)
                self.account.record(
                    "OPEXP",
                    now,
                    symbol=symbol,
                    qty=dec(pos.qty),
                    price="0",
                    net_amount="0",
                    description=f"Option expiry: {symbol} expired worthless",
                )
        self.market.universe.deactivate_expired(now)
        prices = {s: self.mark(s) for s in self.account.positions}
        equity = self.account.cash + sum(
            p.qty * prices[s] * p.instrument.multiplier for s, p in self.account.positions.items()
        )
        self.account.last_equity = equity
        for s, p in self.account.positions.items():
            p.lastday_price = prices[s]
