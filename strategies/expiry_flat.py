"""Legs expiring today: which structures must be flat by ``expiry_flat_by``, and what "carry" means.

Alpaca liquidates expiring positions an account cannot exercise or carry from 15:15 New York time
(45 minutes before the close; earlier in volatile markets): in-the-money short legs it would assign
into a position the account cannot hold, and in-the-money long legs the account cannot exercise (a
long put needs the shares to deliver). A strategy therefore closes every structure holding a leg that
expires today before its ``expiry_flat_by`` (the whole structure: its long legs are what keeps the
short side defined-risk), unless it opted in with ``carry_expiring`` and the account can carry the
outcome.

Carry is judged conservatively, over the whole portfolio (every strategy's same-day legs, so two
strategies cannot count the same cash twice) and as if every same-day leg ended in the money, no leg
offsetting another:

- cash: short puts (assigned: buy at the strike) and long calls (exercised: buy at the strike) need
  the strikes times 100 times the contracts, summed, at most the account's cash and its buying power;
- shares: short calls (assigned: deliver) and long puts (exercised: deliver) need 100 shares of the
  underlying per contract, held.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict

from domain.orders import CONTRACT_MULTIPLIER
from domain.views import AccountView, PortfolioView
from greeks.calendar import CalendarRangeError, market_calendar
from greeks.occ import OccSymbolError, parse_occ
from strategies.structures import StructureLeg
from strategies.tracking import Tracked

_EPS = 1e-9


@functools.lru_cache(maxsize=1024)
def expiry_day(expiry: dt.date) -> dt.date:
    """The session day a contract expiring on ``expiry`` trades out on (the previous session on a holiday)."""
    try:
        return market_calendar().expiry_session(expiry).day
    except CalendarRangeError:
        return expiry


def expiring_legs(t: Tracked, day: dt.date) -> list[tuple[StructureLeg, float]]:
    """The legs of ``t`` held (with their signed contracts) that expire at ``day``'s close."""
    out = []
    for leg in t.structure.legs:
        q = t.filled.get(leg.symbol, 0.0)
        if abs(q) > _EPS and expiry_day(leg.expiry) == day:
            out.append((leg, q))
    return out


def carry_shortfall(portfolio: PortfolioView, account: AccountView, day: dt.date) -> str:
    """Why the account cannot carry every leg expiring on ``day`` into the close ("" when it can)."""
    cash_needed = 0.0
    shares_needed: dict[str, float] = defaultdict(float)
    for symbol, q in portfolio.positions().items():
        if abs(q) <= _EPS:
            continue
        try:
            occ = parse_occ(symbol)
        except OccSymbolError:
            continue  # a stock position is not an expiring leg
        if expiry_day(occ.expiry) != day:
            continue
        if occ.is_call is (q < 0):  # a short call or a long put delivers shares
            shares_needed[occ.root] += abs(q) * CONTRACT_MULTIPLIER
        else:  # a short put or a long call buys them
            cash_needed += occ.strike * abs(q) * CONTRACT_MULTIPLIER
    cash = min(account.cash, account.buying_power)
    if cash_needed > cash + _EPS:
        return f"same-day legs need {cash_needed:,.0f} cash if they end in the money, the account has {cash:,.0f}"
    for root, need in sorted(shares_needed.items()):
        held = portfolio.position(root)
        if held + _EPS < need:
            return f"same-day {root} legs need {need:,.0f} shares to deliver, {held:,.0f} held"
    return ""
