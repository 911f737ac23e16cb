"""Net prices of a structure and the router's price walk: start at mid, walk toward natural.

Prices follow the venue port's sign convention (``engine.kernel.venue_types``): a positive net price per
unit is a debit (we pay), a negative one a credit (we receive). ``natural`` is what crossing the spread on
every leg costs (buy at the ask, sell at the bid); ``mid`` is the sum of leg mids. Since every ask >= its bid,
natural >= mid for debits and credits alike: conceding always raises the net price (pay more, or
receive less), and the passive side is always the lower price.

Prices land on a ``TickGrid``: one tick below $3.00 and another at or above, chosen from the price itself
(never from the quote's mid), so a single-leg price walking past $3.00 in the penny class goes 2.99, 3.00,
3.05 and never sends 3.01. $3.00 is on every grid, so rounding up stays on the small tick up to $3.00 and
rounding down on the large one down to it.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import msgspec

from domain.orders import Leg, OrderIntent, PricePolicy, Side
from domain.views import MarketView
from engine.kernel.venue_types import OrderRequest

PENNY_ALL_PRICES = frozenset({"SPY", "QQQ", "IWM"})
"""Underlyings quoted in pennies at every price (Penny Interval Program, all-penny class)."""
PENNY_BREAK = 3.00
MLEG_TICK = 0.01
"""Complex (mleg) orders price in penny increments at the net level."""
TickClass = Literal["penny_all", "penny", "non_penny"]
"""``penny_all``: $0.01 at every price (SPY, QQQ, IWM); ``penny`` (Penny Interval Program): $0.01 below $3.00,
$0.05 at or above; ``non_penny``: $0.05 below $3.00, $0.10 at or above."""
RoundMode = Literal["up", "down", "nearest"]


class TickGrid(NamedTuple):
    """Valid prices: multiples of ``below`` under ``break_usd``, of ``at_or_above`` from it up."""

    below: float
    at_or_above: float
    break_usd: float = PENNY_BREAK

    @classmethod
    def fixed(cls, tick: float) -> TickGrid:
        return cls(tick, tick)

    @classmethod
    def of_class(cls, tick_class: TickClass) -> TickGrid:
        return _CLASS_GRIDS[tick_class]

    def tick_at(self, price: float) -> float:
        """The increment of ``price`` itself (a price of exactly the break uses the large tick)."""
        return self.at_or_above if abs(price) >= self.break_usd - 1e-9 else self.below

    def round_price(self, price: float, mode: RoundMode) -> float:
        """A non-negative price onto the grid."""
        if mode == "up":
            return round_to_tick(price, self.at_or_above if price > self.break_usd + 1e-9 else self.below, "up")
        if mode == "down":
            return round_to_tick(price, self.tick_at(price), "down")
        lo, hi = self.round_price(price, "down"), self.round_price(price, "up")
        return lo if price - lo < hi - price else hi

    def round_net(self, net: float, mode: RoundMode) -> float:
        """A signed net price (+debit/-credit) onto the grid of its magnitude; ``up``/``down`` in net terms."""
        if net >= 0:
            return self.round_price(net, mode)
        flipped: RoundMode = "down" if mode == "up" else "up" if mode == "down" else "nearest"
        return -self.round_price(-net, flipped)


_CLASS_GRIDS: dict[str, TickGrid] = {
    "penny_all": TickGrid(0.01, 0.01),
    "penny": TickGrid(0.01, 0.05),
    "non_penny": TickGrid(0.05, 0.10),
}
MLEG_GRID = TickGrid.fixed(MLEG_TICK)


class NetQuote(msgspec.Struct, frozen=True):
    """Net mid and natural of a structure per unit, and the worst leg quote age."""

    mid: float
    natural: float
    oldest_quote_ns: int

    @property
    def is_debit(self) -> bool:
        return self.mid > 0

    @property
    def half_spread(self) -> float:
        """Mid-to-natural distance per unit (the sum of the legs' half-spreads times ratios)."""
        return self.natural - self.mid


def option_tick(price: float, underlying: str, penny: bool = True) -> float:
    """Minimum price increment of a single option at ``price``."""
    if underlying in PENNY_ALL_PRICES:
        return 0.01
    if penny:
        return 0.01 if abs(price) < PENNY_BREAK else 0.05
    return 0.05 if abs(price) < PENNY_BREAK else 0.10


def _grid(tick: float | TickGrid) -> TickGrid:
    return tick if isinstance(tick, TickGrid) else TickGrid.fixed(tick)


def round_to_tick(price: float, tick: float, mode: str = "nearest") -> float:
    """Round ``price`` to a multiple of ``tick`` (``up``, ``down`` or ``nearest``), without float dust."""
    units = price / tick
    if mode == "up":
        n = math.ceil(units - 1e-9)
    elif mode == "down":
        n = math.floor(units + 1e-9)
    else:
        n = math.floor(units + 0.5)
    return round(n * tick, 4)


def net_quote(legs: tuple[Leg, ...], market: MarketView, underlying: str) -> NetQuote | None:
    """Net mid and natural per unit of ``legs`` (stock legs at the spot); None if a leg lacks a two-sided quote."""
    mid = 0.0
    natural = 0.0
    oldest = 2**63 - 1
    chain = market.chain(underlying)
    for leg in legs:
        sign = 1.0 if leg.side is Side.BUY else -1.0
        if leg.symbol == underlying:
            spot = market.spot(underlying)
            if not math.isfinite(spot) or spot <= 0:
                return None
            bid = ask = spot
            ts = market.spot_ts_ns(underlying)
        else:
            if chain is None:
                return None
            row = chain.row_of(leg.symbol)
            if row < 0:
                return None
            bid = float(chain.bid[row])
            ask = float(chain.ask[row])
            ts = int(chain.quote_ts_ns[row])
            if not (math.isfinite(bid) and math.isfinite(ask)) or ask <= 0 or bid < 0 or bid > ask:
                return None
        mid += sign * leg.ratio * 0.5 * (bid + ask)
        natural += sign * leg.ratio * (ask if sign > 0 else bid)
        oldest = min(oldest, ts)
    return NetQuote(mid, natural, oldest)


def start_price(quote: NetQuote, tick: float | TickGrid, policy: PricePolicy) -> float:
    """The first limit: mid rounded down to the tick (the passive side), capped by the policy's limit."""
    grid = _grid(tick)
    return cap_to_limit(grid.round_net(quote.mid, "down"), policy, grid)


def walked_price(quote: NetQuote, step: int, tick: float | TickGrid, policy: PricePolicy) -> float:
    """The limit after ``step`` walks: mid plus ``step`` concessions toward natural, within the policy's bounds.

    Each step concedes ``walk_step_fraction`` of the mid-to-natural distance (at least one tick), never more
    than ``max_concession_fraction`` of it; the price is rounded up (toward natural) so every step makes progress,
    but never past the concession bound rounded up.
    """
    grid = _grid(tick)
    distance = quote.half_spread
    bound = quote.mid + policy.max_concession_fraction * distance
    raw = quote.mid + step * max(policy.walk_step_fraction * distance, grid.below)
    price = min(grid.round_net(raw, "up"), grid.round_net(bound, "up"))
    return cap_to_limit(price, policy, grid)


def cap_to_limit(price: float, policy: PricePolicy, grid: TickGrid | None = None) -> float:
    """Never worse than the policy's limit: the net price (debit positive, credit negative) never above it; a
    capped price is rounded down (the passive way) onto ``grid`` when the limit itself is off it."""
    if policy.limit_price is None or price <= policy.limit_price:
        return price
    return policy.limit_price if grid is None else grid.round_net(policy.limit_price, "down")


def order_limit(intent: OrderIntent, net: float) -> float:
    """The limit of an order for net price ``net``: multi-leg orders take the signed net, single legs a positive
    price."""
    if intent.is_multi_leg:
        return net
    return -net if intent.legs[0].side is Side.SELL else net


def order_request(intent: OrderIntent, client_id: str, limit: float | None, qty: float | None = None) -> OrderRequest:
    """The order for ``intent`` at ``limit`` (None = market) for ``qty`` (default: the whole intent; a single leg
    counts contracts or shares, units x ratio)."""
    if intent.is_multi_leg:
        return OrderRequest(client_id=client_id, legs=intent.legs, qty=intent.qty if qty is None else qty,
                            limit=limit)
    return OrderRequest(client_id=client_id, legs=intent.legs,
                        qty=intent.qty * intent.legs[0].ratio if qty is None else qty, limit=limit,
                        time_in_force="day" if intent.is_stock else intent.time_in_force)
