"""The paper account: cash, positions with average price and P&L, activities, buying power.

Buying power follows the idea of Alpaca's universal spread rule: for each underlying, the value at
expiry of every option position (plus the shares held) is a piecewise-linear function of the
underlying price; its minimum over 0, every strike and the slope at infinity is the worst case the
account must be able to pay. ``buying_power = cash + sum(worst case per underlying)``; an
unbounded worst case (a short call not covered by long calls or shares) is not allowed at Level 3.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.sim.clock import NY, from_ns, rfc3339
from engine.sim.orders import dec

MULTIPLIER = 100
ACCOUNT_NUMBER = "PA3SIMULATOR"


@dataclass(slots=True)
class Instrument:
    """What the account needs to know about a tradable symbol."""

    symbol: str
    asset_id: str
    asset_class: str  # "us_option" or "us_equity"
    underlying: str
    strike: float = 0.0
    is_call: bool = False
    expiry: dt.date | None = None

    @property
    def multiplier(self) -> int:
        return MULTIPLIER if self.asset_class == "us_option" else 1

    def payoff(self, s: float) -> float:
        """Value per share (per unit of qty for stock) at expiry when the underlying is at ``s``."""
        if self.asset_class == "us_equity":
            return s
        return max(s - self.strike, 0.0) if self.is_call else max(self.strike - s, 0.0)


@dataclass(slots=True)
class Position:
    instrument: Instrument
    qty: float
    avg_entry_price: float
    lastday_price: float
    do_not_exercise: bool = False


SHORT_STOCK_REQUIREMENT = 1.5
"""Reg T: a short sale not covered by long calls must be backed by 150 % of its value (proceeds included)."""


def worst_case(holdings: list[tuple[Instrument, float]], spot: float) -> float:
    """Worst value at expiry over the underlying's price of one underlying's holdings (-inf when unbounded).

    Option payoffs and shares are piecewise linear in the price, so the minimum sits at 0, at a strike
    or at infinity (the slope). Short shares beyond what long calls cover are charged Reg T's 150 %
    of their value at ``spot`` instead of an unbounded loss.
    """
    call_slope = sum(qty * MULTIPLIER for inst, qty in holdings if inst.asset_class == "us_option" and inst.is_call)
    shares = sum(qty for inst, qty in holdings if inst.asset_class == "us_equity")
    uncovered_short = max(0.0, -shares - max(call_slope, 0.0))
    if call_slope + max(shares, 0.0) < -1e-9:
        return -math.inf  # naked short calls
    grid = {0.0} | {inst.strike for inst, _ in holdings if inst.asset_class == "us_option"}
    covered_shares = shares + uncovered_short

    def value(s: float) -> float:
        options = sum(qty * MULTIPLIER * inst.payoff(s) for inst, qty in holdings if inst.asset_class == "us_option")
        return options + covered_shares * s

    return min(value(s) for s in grid) - SHORT_STOCK_REQUIREMENT * uncovered_short * spot


class Account:
    """Cash, positions and the activity log of the one simulated account.

    Every instance attribute is saved and restored by the simulator's state store
    (``engine/sim/state.py``) from its class annotation below, except those in ``TRANSIENT``: a new
    attribute only needs its annotation here to persist.
    """

    TRANSIENT: ClassVar[frozenset[str]] = frozenset({"spot_of", "options_level"})
    """Attributes rebuilt from the configuration at every start, never saved."""

    account_id: str
    cash: float
    last_equity: float
    positions: dict[str, Position]
    activities: list[dict[str, Any]]
    realized_pl: float
    created_ns: int

    def __init__(
        self, initial_cash: float, options_level: int, spot_of: Callable[[str], float], account_id: str | None = None
    ) -> None:
        self.account_id = account_id or str(uuid.uuid4())
        """A new account gets a new id; a restored one keeps its own (the engine's journal is bound to it)."""
        self.spot_of = spot_of
        self.cash = initial_cash
        self.last_equity = initial_cash
        self.options_level = options_level
        self.positions: dict[str, Position] = {}
        self.activities: list[dict[str, Any]] = []
        self.realized_pl = 0.0
        self.created_ns = 0

    # ---- fills ---------------------------------------------------------------------------------
    def apply_fill(self, inst: Instrument, side: str, qty: float, price: float) -> float:
        """Book an execution; return the signed position quantity afterwards."""
        signed = qty if side == "buy" else -qty
        self.cash -= signed * price * inst.multiplier
        return self._move(inst, signed, price)

    def _move(self, inst: Instrument, signed: float, price: float) -> float:
        pos = self.positions.get(inst.symbol)
        if pos is None:
            pos = self.positions[inst.symbol] = Position(inst, 0.0, 0.0, price)
        old = pos.qty
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            pos.avg_entry_price = (abs(old) * pos.avg_entry_price + abs(signed) * price) / abs(new)
        else:
            closed = min(abs(signed), abs(old))
            self.realized_pl += closed * (price - pos.avg_entry_price) * (1 if old > 0 else -1) * inst.multiplier
            if abs(signed) > abs(old):
                pos.avg_entry_price = price  # flipped through zero: the rest opens at this price
        pos.qty = round(new, 9)
        if pos.qty == 0:
            del self.positions[inst.symbol]
        return pos.qty

    def deliver(self, inst: Instrument, signed_shares: float, price: float) -> None:
        """Move shares at ``price`` for an exercise or assignment (cash changes with it)."""
        self.cash -= signed_shares * price
        self._move(inst, signed_shares, price)

    def remove(self, symbol: str) -> None:
        self.positions.pop(symbol, None)

    # ---- risk ----------------------------------------------------------------------------------
    def holdings_by_underlying(
        self, extra: Sequence[tuple[Instrument, float]] = ()
    ) -> dict[str, list[tuple[Instrument, float]]]:
        out: dict[str, list[tuple[Instrument, float]]] = {}
        for pos in self.positions.values():
            out.setdefault(pos.instrument.underlying, []).append((pos.instrument, pos.qty))
        for inst, qty in extra:
            out.setdefault(inst.underlying, []).append((inst, qty))
        return out

    def buying_power(self, extra: Sequence[tuple[Instrument, float]] = (), cash_delta: float = 0.0) -> float:
        """Cash plus the worst case of every underlying, with ``extra`` hypothetical holdings added."""
        total = self.cash + cash_delta
        for holdings in self.holdings_by_underlying(extra).values():
            total += worst_case(holdings, self.spot_of(holdings[0][0].underlying))
        return total

    def margin(self) -> float:
        """Collateral held against short risk (sum of the negative worst cases)."""
        return sum(
            max(0.0, -worst_case(h, self.spot_of(h[0][0].underlying))) for h in self.holdings_by_underlying().values()
        )

    # ---- activities ----------------------------------------------------------------------------
    def record(self, activity_type: str, now_ns: int, **fields: Any) -> dict[str, Any]:
        stamp = from_ns(now_ns).strftime("%Y%m%d%H%M%S%f")[:17]
        activity = {
            "id": f"{stamp}::{uuid.uuid5(uuid.NAMESPACE_OID, f'{self.account_id}:{now_ns}:{len(self.activities)}')}",
            "account_id": self.account_id,
            "activity_type": activity_type,
            **fields,
        }
        if activity_type != "FILL":
            activity.setdefault("date", from_ns(now_ns).astimezone(NY).date().isoformat())
            activity.setdefault("status", "executed")
        else:
            activity["transaction_time"] = rfc3339(now_ns)
        activity["_ns"] = now_ns
        self.activities.append(activity)
        return activity

    # ---- rendering -----------------------------------------------------------------------------
    def position_json(self, pos: Position, price: float) -> dict[str, Any]:
        inst = pos.instrument
        mult = inst.multiplier
        mv = pos.qty * price * mult
        cost = pos.qty * pos.avg_entry_price * mult
        upl = mv - cost
        last = pos.lastday_price
        intraday = pos.qty * (price - last) * mult
        return {
            "asset_id": inst.asset_id,
            "symbol": inst.symbol,
            "exchange": "" if inst.asset_class == "us_option" else "ARCA",
            "asset_class": inst.asset_class,
            "asset_marginable": inst.asset_class == "us_equity",
            "avg_entry_price": dec(pos.avg_entry_price),
            "qty": dec(pos.qty),
            "qty_available": dec(pos.qty),
            "side": "long" if pos.qty > 0 else "short",
            "market_value": dec(round(mv, 2)),
            "cost_basis": dec(round(cost, 2)),
            "unrealized_pl": dec(round(upl, 2)),
            "unrealized_plpc": dec(round(upl / abs(cost), 6)) if cost else "0",
            "unrealized_intraday_pl": dec(round(intraday, 2)),
            "unrealized_intraday_plpc": dec(round((price - last) / last, 6)) if last else "0",
            "current_price": dec(price),
            "lastday_price": dec(last),
            "change_today": dec(round((price - last) / last, 6)) if last else "0",
        }

    def account_json(self, prices: dict[str, float], now_ns: int) -> dict[str, Any]:
        long_mv = sum(p.qty * prices[s] * p.instrument.multiplier for s, p in self.positions.items() if p.qty > 0)
        short_mv = sum(p.qty * prices[s] * p.instrument.multiplier for s, p in self.positions.items() if p.qty < 0)
        equity = self.cash + long_mv + short_mv
        bp = max(0.0, self.buying_power())
        margin = self.margin()
        return {
            "id": self.account_id,
            "account_number": ACCOUNT_NUMBER,
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": dec(round(bp, 2)),
            "regt_buying_power": dec(round(bp, 2)),
            "non_marginable_buying_power": dec(round(bp, 2)),
            "effective_buying_power": dec(round(bp, 2)),
            "options_buying_power": dec(round(bp, 2)),
            "cash": dec(round(self.cash, 2)),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": dec(round(equity, 2)),
            "equity": dec(round(equity, 2)),
            "last_equity": dec(round(self.last_equity, 2)),
            "long_market_value": dec(round(long_mv, 2)),
            "short_market_value": dec(round(short_mv, 2)),
            "position_market_value": dec(round(long_mv - short_mv, 2)),
            "initial_margin": dec(round(margin, 2)),
            "maintenance_margin": dec(round(margin, 2)),
            "last_maintenance_margin": dec(round(margin, 2)),
            "sma": "0",
            "multiplier": "1",
            "shorting_enabled": True,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "created_at": rfc3339(self.created_ns or now_ns),
            "balance_asof": from_ns(now_ns).astimezone(NY).date().isoformat(),
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
            "options_approved_level": self.options_level,
            "options_trading_level": self.options_level,
        }
