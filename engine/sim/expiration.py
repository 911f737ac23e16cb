"""Alpaca's expiration process on an expiry day: liquidation of what the account cannot carry, then the close.

A mixin of ``Exchange`` (through ``Settlement``). Rules and switches (``[sim.expiration]``):

* **Liquidation** (``liquidate``), from ``liquidation_minutes_before_close`` before the session's close (45 min:
  15:15 ET, and 12:15 on a 13:00 half day, the same offset) until the close, re-checked after every step:
  the expiring positions that are in the money or near it (``near_money_fraction`` of the spot) and that the
  account cannot *carry* are closed by the broker with market orders of its own (a fresh ``client_order_id``
  that is not the client's, reported on ``trade_updates`` and as ``FILL`` activities like any order). The
  account's open orders on such a contract are cancelled first (otherwise a closing order working there
  would close the position a second time).
* **Carry**: with the underlying at its current price and moved by ``near_money_fraction`` either way, every
  contract expiring today that would be in the money by at least ``exercise_threshold_usd`` is exercised or
  assigned into shares at the strike (long puts only up to the available shares, see below) and the rest
  expires; the account carries its expiring positions when its buying power afterwards (the simulator's
  rule: cash plus the worst case at expiry of what remains, short shares at Reg T's 150 %) is not negative
  in any of the three cases. When it is, positions are closed one at a time, the one whose closing helps the
  buying power most first, until what remains can be carried.
* **Long puts** (``long_puts_need_shares``): an in-the-money long put is exercised only against *available*
  long shares: the shares held minus 100 per short call not covered by a long call (those secure covered
  calls). The contracts beyond them are closed from the liquidation time, or left to expire (``OPEXP``) at
  the close. Deeper puts get the shares first.
* **Automatic exercise** at the close: at least ``exercise_threshold_usd`` ($0.01) in the money on the
  underlying's closing price: long exercised (``OPEXC``) unless marked do-not-exercise, short assigned
  (``OPASN``); the rest expires (``OPEXP``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.sim.account import MULTIPLIER, Account, Instrument, Position, worst_case
from engine.sim.config import SimConfig
from engine.sim.errors import AlpacaError
from engine.sim.market import Market
from engine.sim.orders import LegRequest, Order, OrderRequest


def intrinsic(inst: Instrument, spot: float) -> float:
    """In-the-money amount per share of an option at ``spot``."""
    return max(spot - inst.strike, 0.0) if inst.is_call else max(inst.strike - spot, 0.0)


def in_the_money(inst: Instrument, spot: float, threshold_usd: float) -> bool:
    """At least ``threshold_usd`` in the money with the underlying at ``spot`` taken as a price in cents (an
    official close is one): $600.01 puts a 600 call $0.01 in the money, not a float's hair short of it."""
    return round(intrinsic(inst, round(spot, 2)), 6) >= threshold_usd


@dataclass(slots=True)
class PendingAssignment:
    """Contracts of a short position OCC assigned overnight, booked at the next open."""

    symbol: str
    contracts: int
    reason: str  # "dividend", "early" or "requested"


@dataclass(slots=True)
class ExpiryState:
    """What the expiration process and early assignment remember between steps."""

    seed: int
    liquidations: dict[str, str] = field(default_factory=dict)
    """Contract -> id of the last broker liquidation order sent for it."""
    pending: list[PendingAssignment] = field(default_factory=list)
    """Early assignments decided at the close, booked at the next open."""
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 97])

    def to_json(self) -> dict[str, Any]:
        return {
            "liquidation_orders": dict(self.liquidations),
            "pending_assignments": [
                {"symbol": p.symbol, "contracts": p.contracts, "reason": p.reason} for p in self.pending
            ],
        }


class ExpirationProcess:
    """Expiry-day liquidation and the settlement of expiring contracts (needs the attributes declared below)."""

    config: SimConfig
    account: Account
    market: Market
    orders: dict[str, Order]
    expiry_state: ExpiryState
    emit: Callable[..., None]
    mark: Callable[[str], float]
    instrument: Callable[[str], Instrument]
    new_id: Callable[[], str]
    cancel: Callable[[str], None]
    settle: Callable[[Instrument, float, str], None]
    expire: Callable[[Instrument, float], None]
    _create: Callable[[OrderRequest, list[tuple[LegRequest, Instrument]]], Order]
    _try_fill: Callable[[Order], None]

    # ---- when ----------------------------------------------------------------------------------
    def liquidation_ns(self) -> int:
        """Today's liquidation instant: ``liquidation_minutes_before_close`` before the session's close."""
        minutes = self.config.expiration.liquidation_minutes_before_close
        return self.market.clock.close_ns - int(minutes * 60e9)

    def next_checkpoint_ns(self, now_ns: int) -> int | None:
        """The first step boundary at or after today's liquidation instant, while it is still ahead: the market
        loop stops there, so a long ``advance`` checks the liquidation at 15:15 and not only at the close."""
        if not self.config.expiration.liquidate:
            return None
        at = self.liquidation_ns()
        if now_ns >= at:
            return None
        tick = self.market.tick_ns
        stop = now_ns + -(-(at - now_ns) // tick) * tick
        return stop if stop < self.market.clock.close_ns else None

    # ---- liquidation ---------------------------------------------------------------------------
    def expiry_step(self) -> None:
        """After a step: from the liquidation instant on an expiry day, close what the account cannot carry."""
        if not self.config.expiration.liquidate or self.market.now_ns < self.liquidation_ns():
            return
        today = self.market.clock.today()
        if not any(_expires(p, today) for p in self.account.positions.values()):
            return
        for pos, contracts in self.liquidation_plan(today):
            self._liquidate(pos, contracts)

    def liquidation_plan(self, today: dt.date) -> list[tuple[Position, float]]:
        """(position, contracts) the broker closes now: long puts beyond the available shares, then whatever
        keeps the account from carrying the rest (the simulator's definition of carry, module docstring)."""
        cfg = self.config.expiration
        expiring = [p for p in self.account.positions.values() if _expires(p, today)]
        at_risk = [p for p in expiring if self._at_risk(p.instrument)]
        closing: dict[str, float] = {}
        if cfg.long_puts_need_shares:
            closing.update(self._puts_beyond_shares([(p, p.qty) for p in at_risk], self._spot_of))
        while self._carry_margin(expiring, closing) < 0:
            best: tuple[float, str] | None = None
            for pos in at_risk:
                symbol = pos.instrument.symbol
                if closing.get(symbol, 0.0) >= abs(pos.qty):
                    continue
                margin = self._carry_margin(expiring, {**closing, symbol: abs(pos.qty)})
                if best is None or margin > best[0]:
                    best = (margin, symbol)
            if best is None:
                break  # everything at risk is being closed already
            closing[best[1]] = abs(self.account.positions[best[1]].qty)
        return [(self.account.positions[s], q) for s, q in closing.items() if q > 0]

    def _spot_of(self, inst: Instrument) -> float:
        return self.market.spot(inst.underlying)

    def _at_risk(self, inst: Instrument) -> bool:
        cfg = self.config.expiration
        spot = self.market.spot(inst.underlying)
        return in_the_money(inst, spot, cfg.exercise_threshold_usd) or abs(spot - inst.strike) <= (
            cfg.near_money_fraction * spot
        )

    def available_shares(self, underlying: str) -> float:
        """Long shares of ``underlying`` not securing a covered call: held minus 100 per short call that no long
        call covers (calls of every expiry; 0 when the account is short or flat)."""
        shares = 0.0
        calls = 0.0
        for pos in self.account.positions.values():
            inst = pos.instrument
            if inst.underlying != underlying:
                continue
            if inst.asset_class == "us_equity":
                shares += pos.qty
            elif inst.is_call:
                calls += pos.qty
        return max(0.0, shares - MULTIPLIER * max(0.0, -calls))

    def _puts_beyond_shares(
        self, holdings: list[tuple[Position, float]], spot_of: Callable[[Instrument], float]
    ) -> dict[str, float]:
        """Of ``(position, contracts)``, the long puts in the money at ``spot_of`` -> contracts that the available
        shares do not cover (deeper puts take the shares first)."""
        threshold = self.config.expiration.exercise_threshold_usd
        left: dict[str, float] = {}
        out: dict[str, float] = {}
        puts = [
            (p, n)
            for p, n in holdings
            if n > 0 and not p.instrument.is_call and in_the_money(p.instrument, spot_of(p.instrument), threshold)
        ]
        for pos, n in sorted(puts, key=lambda h: (-h[0].instrument.strike, h[0].instrument.symbol)):
            und = pos.instrument.underlying
            if und not in left:
                left[und] = math.floor(self.available_shares(und) / MULTIPLIER + 1e-9)
            covered = min(n, left[und])
            left[und] -= covered
            if n - covered > 0:
                out[pos.instrument.symbol] = n - covered
        return out

    def _carry_margin(self, expiring: list[Position], closing: dict[str, float]) -> float:
        """The lowest buying power, over the three underlying moves, once the ``closing`` contracts are sold or
        bought back at the mid and every other contract expiring today is settled (module docstring)."""
        cfg = self.config.expiration
        band = cfg.near_money_fraction
        worst = math.inf
        for move in (-band, 0.0, band):

            def spot_of(inst: Instrument, move: float = move) -> float:
                return self.market.spot(inst.underlying) * (1.0 + move)

            cash = self.account.cash
            extra: list[tuple[Instrument, float]] = []
            settling: list[tuple[Position, float]] = []
            for pos in expiring:
                inst = pos.instrument
                sign = 1.0 if pos.qty > 0 else -1.0
                closed = min(closing.get(inst.symbol, 0.0), abs(pos.qty))
                cash += sign * closed * MULTIPLIER * self.mark(inst.symbol)
                extra.append((inst, -pos.qty))  # every contract expiring today is gone tomorrow
                left = pos.qty - sign * closed
                itm = in_the_money(inst, spot_of(inst), cfg.exercise_threshold_usd)
                if left != 0 and itm and not (left > 0 and pos.do_not_exercise):
                    settling.append((pos, left))
            unexercised = self._puts_beyond_shares(settling, spot_of) if cfg.long_puts_need_shares else {}
            for pos, left in settling:
                inst = pos.instrument
                n = left - unexercised.get(inst.symbol, 0.0)
                if n == 0:
                    continue
                shares = n * MULTIPLIER * (1 if inst.is_call else -1)
                extra.append((self.instrument(inst.underlying), shares))
                cash -= shares * inst.strike
            total = cash
            for holdings in self.account.holdings_by_underlying(extra).values():
                total += worst_case(holdings, spot_of(holdings[0][0]))
            worst = min(worst, total)
        return worst

    def _liquidate(self, pos: Position, contracts: float) -> None:
        """Close ``contracts`` of ``pos`` with a broker market order, unless one is already working."""
        state = self.expiry_state
        inst = pos.instrument
        working = state.liquidations.get(inst.symbol)
        if working is not None and self.orders[working].is_open:
            return
        clients = [o for o in self.orders.values() if o.parent is None and o.is_open and _touches(o, inst.symbol)]
        for order in clients:
            with contextlib.suppress(AlpacaError):  # pending_cancel/pending_replace: already on its way out
                self.cancel(order.id)
        if any(o.is_open for o in clients):
            return  # a cancel waits on a fill in flight: liquidate at a later step, against what is left
        contracts = min(contracts, abs(pos.qty))
        side = "sell" if pos.qty > 0 else "buy"
        intent = f"{side}_to_close"
        req = OrderRequest(
            order_class="simple",
            type="market",
            time_in_force="day",
            qty=contracts,
            symbol=inst.symbol,
            side=side,
            client_order_id=self.new_id(),
            position_intent=intent,
        )
        order = self._create(req, [(LegRequest(inst.symbol, 1, side, intent), inst)])
        order.by_broker = True
        state.liquidations[inst.symbol] = order.id
        self.emit("pending_new", order)
        order.set_status("new", self.market.now_ns)
        self.emit("new", order)
        self._try_fill(order)

    # ---- the close -----------------------------------------------------------------------------
    def settle_expiring(self, today: dt.date) -> None:
        """Automatic exercise and assignment at the close; long puts only against available shares."""
        cfg = self.config.expiration
        expiring = [p for p in list(self.account.positions.values()) if _expires(p, today)]
        unexercised: dict[str, float] = {}
        if cfg.long_puts_need_shares:
            # the shares held before the close decide (the assignments of the same close add none)
            unexercised = self._puts_beyond_shares([(p, p.qty) for p in expiring], self._spot_of)
        for pos in expiring:
            inst = pos.instrument
            qty = pos.qty
            itm = in_the_money(inst, self._spot_of(inst), cfg.exercise_threshold_usd)
            if not itm or (qty > 0 and pos.do_not_exercise):
                self.expire(inst, qty)
            elif qty < 0:
                self.settle(inst, qty, "OPASN")
            else:
                left = unexercised.get(inst.symbol, 0.0)
                if qty - left > 0:
                    self.settle(inst, qty - left, "OPEXC")
                if left > 0:
                    self.expire(inst, left)


def _expires(pos: Position, today: dt.date) -> bool:
    inst = pos.instrument
    return inst.asset_class == "us_option" and inst.expiry is not None and inst.expiry <= today


def _touches(order: Order, symbol: str) -> bool:
    return any(o.symbol == symbol for o in (order.legs or [order]))
