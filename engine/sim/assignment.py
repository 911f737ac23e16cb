"""Early assignment of American short options, and dividends, at the session boundary.

A mixin of ``Exchange`` (through ``Settlement``). OCC assigns overnight: at each close (after the expiring
contracts are settled) the short in-the-money positions that do not expire today are examined on the closing
prices, and the contracts assigned that night are booked at the next session's open as ``OPASN`` (with the
``OPTRD`` of the shares), stamped with that open. ``[sim.assignment]``:

* **dividend**: a short call in the money by at least ``[sim.expiration] exercise_threshold_usd`` whose time
  value (the simulator's price minus intrinsic) is below the dividend of the underlying going ex at the next
  session: each contract is assigned with ``dividend_probability`` (a binomial count, so often a part of the
  position), the rational holder exercising to collect the dividend;
* **early**: any other short in-the-money option with at most ``max_time_value_usd`` of time value: each
  contract with ``probability``.

Draws come from one generator seeded by the simulator's seed, taken in a fixed order (contracts sorted by
symbol), so the same seed and the same positions assign the same contracts. ``assign`` books an assignment of
a chosen size now (or at the next open) for tests and rehearsals.

Dividends: at an ex-date's open the spot has gapped down by the dividend (``Market``); stock positions are paid
it (short positions charged) as a ``DIV`` activity, after the night's assignments (an assigned call writer is
short the shares on the ex-date and owes it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

import numpy as np

from engine.sim.account import Account, Instrument
from engine.sim.config import SimConfig
from engine.sim.errors import AlpacaError, invalid
from engine.sim.expiration import ExpiryState, PendingAssignment, in_the_money, intrinsic
from engine.sim.market import Market
from engine.sim.orders import dec


class EarlyAssignment:
    """Decides early assignments at the close and books them at the open (needs the attributes below)."""

    config: SimConfig
    account: Account
    market: Market
    expiry_state: ExpiryState
    settle: Callable[[Instrument, float, str], None]

    def decide_early_assignments(self, today: dt.date) -> list[PendingAssignment]:
        """At the close: the contracts OCC assigns tonight (booked by ``on_open``); returns the new ones."""
        cfg = self.config.assignment
        threshold = self.config.expiration.exercise_threshold_usd
        state = self.expiry_state
        next_day = self.market.clock.calendar.next_session(today).day
        uni = self.market.universe
        new: list[PendingAssignment] = []
        for symbol in sorted(self.account.positions):
            pos = self.account.positions[symbol]
            inst = pos.instrument
            if inst.asset_class != "us_option" or pos.qty >= 0 or inst.expiry is None or inst.expiry <= today:
                continue
            spot = self.market.spot(inst.underlying)
            if not in_the_money(inst, spot, threshold):
                continue
            value = intrinsic(inst, spot)
            theo = float(self.market.option_quotes(np.array([uni.index[symbol]])).theo[0])
            time_value = max(theo - value, 0.0)
            dividend = self.market.dividend_on(inst.underlying, next_day) if inst.is_call else 0.0
            if dividend > 0 and time_value < dividend:
                probability, reason = cfg.dividend_probability, "dividend"
            elif time_value <= cfg.max_time_value_usd:
                probability, reason = cfg.probability, "early"
            else:
                continue
            contracts = int(state.rng.binomial(round(-pos.qty), probability))
            if contracts > 0:
                new.append(PendingAssignment(symbol, contracts, reason))
        state.pending.extend(new)
        return new

    def on_open(self) -> None:
        """At a session's open: book the night's assignments, then pay the dividends going ex today."""
        state = self.expiry_state
        pending, state.pending = state.pending, []
        for p in pending:
            pos = self.account.positions.get(p.symbol)
            if pos is None or pos.qty >= 0:
                continue
            self.settle(pos.instrument, -min(p.contracts, -pos.qty), "OPASN")
        today = self.market.clock.today()
        for pos in list(self.account.positions.values()):
            inst = pos.instrument
            amount = self.market.dividend_on(inst.symbol, today) if inst.asset_class == "us_equity" else 0.0
            if amount > 0:
                cash = round(pos.qty * amount, 2)
                self.account.cash += cash
                self.account.record(
                    "DIV",
                    self.market.now_ns,
                    symbol=inst.symbol,
                    qty=dec(pos.qty),
                    per_share_amount=dec(amount),
                    net_amount=dec(cash),
                    description="Cash dividend" if pos.qty > 0 else "Dividend charged on a short position",
                )

    def assign(self, symbol: str, contracts: int, at: Literal["now", "next_open"] = "now") -> None:
        """Assign ``contracts`` of the short position in ``symbol`` now, or at the next open (as OCC would)."""
        pos = self.account.positions.get(symbol)
        if pos is None or pos.instrument.asset_class != "us_option" or pos.qty >= 0:
            raise AlpacaError(404, 40410000, f"no short option position in {symbol}")
        if contracts < 1 or contracts > -pos.qty:
            raise invalid(f"contracts must be between 1 and {dec(-pos.qty)} (the short position in {symbol})")
        if at == "now":
            self.settle(pos.instrument, -contracts, "OPASN")
        else:
            self.expiry_state.pending.append(PendingAssignment(symbol, contracts, "requested"))
