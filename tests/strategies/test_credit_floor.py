"""Credit structures never accept less than their minimum credit, however wide the market.

On a wide market the mid credit can clear ``min_credit_ratio`` while the natural credit does not. The open
intent's limit is then the minimum credit itself, and the router's price walk (which caps every step at the
policy's limit) stops there instead of conceding down to natural.
"""

from __future__ import annotations

import datetime as dt

from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction, OrderIntent
from engine.kernel.order_pricing import NetQuote, walked_price
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.zero_dte import ZeroDte, ZeroDteConfig

DAY = dt.date(2026, 11, 16)  # a Monday
MIN_NS = 60 * 1_000_000_000


def _open(h: Harness) -> OrderIntent:
    opens = [i for i in h.approved if i.action is IntentAction.OPEN]
    assert len(opens) == 1, (h.denied, h.strategy.last_action)
    return opens[0]


def _assert_floor(h: Harness, intent: OrderIntent, min_credit: float) -> None:
    chain = h.chain()
    mid, natural = h.strategy.tracker.structures[intent.structure_id].structure.net_prices(chain)
    assert -mid >= min_credit > -natural, "the market must be wide enough for natural to break the floor"
    assert intent.price_policy.limit_price == round(-min_credit, 2)
    quote = NetQuote(mid, natural, chain.ts_ns)
    walk = [walked_price(quote, step, 0.01, intent.price_policy) for step in range(1, 40)]
    assert max(walk) <= -min_credit + 1e-9  # every step of the walk still collects at least the minimum


def test_condor_limit_is_the_minimum_credit_when_natural_pays_less() -> None:
    now = ny_ns(2026, 11, 16, 10, 0)
    chain = SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 7, 14, 21, 30, 37, 44, 60)),
                           strike_ladder(600.0, 1.0, 80), spread_pct=0.2)
    h = Harness(IronCondor("ic", IronCondorConfig(underlyings=("SPY",))), [chain], now)
    h.advance(now + MIN_NS)
    intent = _open(h)
    width = h.strategy.tracker.structures[intent.structure_id].structure.width
    _assert_floor(h, intent, 0.15 * width)


def test_zero_dte_limit_is_the_minimum_credit_when_natural_pays_less() -> None:
    now = ny_ns(2026, 11, 16, 10, 5)
    chain = SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 1, 7)), strike_ladder(600.0, 1.0, 30),
                           spread_pct=0.2)
    cfg = ZeroDteConfig(underlyings=("SPY",), min_credit_ratio=0.21)
    h = Harness(ZeroDte("zd", cfg), [chain], now)
    h.advance(now + MIN_NS)
    intent = _open(h)
    width = h.strategy.tracker.structures[intent.structure_id].structure.width
    _assert_floor(h, intent, 0.21 * width)
