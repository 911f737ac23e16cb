"""The gate's warm path (``risk.warm.GateCache``): a repeat check reuses what it learnt, and never a stale value."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from support.synthetic import SyntheticChain, SyntheticMarket, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction, Leg, OrderFilled, OrderIntent, PositionIntent, PricePolicy, Side, TradingState
from domain.views import AccountView
from engine.kernel.portfolio import Portfolio
from risk.gate import Approved, Denied, DenyReason, RiskGate, check_intent
from risk.limits import RiskLimits
from risk.rate import RateBudget
from risk.stress import usable_iv, usable_iv_rows

DAY = dt.date(2026, 11, 16)
NOW = ny_ns(2026, 11, 16, 11, 0)
EXPIRY = dt.date(2026, 12, 18)
ACCOUNT = AccountView(100_000, 100_000, 200_000, 100_000)


class Desk:
    """A book, a portfolio and one ``RiskGate`` (with its caches) checking intents against them."""

    def __init__(self) -> None:
        self.chain = SyntheticChain("SPY", 600.0, NOW, standard_expiries(DAY, (0, 7, 32, 60)),
                                    strike_ladder(600.0, 5.0, 12))
        self.market = SyntheticMarket(self.chain)
        self.portfolio = Portfolio()
        self.gate = RiskGate(RiskLimits())
        self.rate = RateBudget()
        self.fills = 0

    def sym(self, strike: float, right: str) -> str:
        return self.chain.symbol_at(EXPIRY, strike, right == "C")

    def check(self, intent: OrderIntent) -> Approved | Denied:
        return self.gate.check(intent, self.portfolio, self.market, ACCOUNT, TradingState.ACTIVE, NOW, self.rate)

    def cold(self, intent: OrderIntent) -> Approved | Denied:
        """The same check without any cache."""
        return check_intent(intent, self.portfolio, self.market, ACCOUNT, self.gate.limits, TradingState.ACTIVE, NOW,
                            self.rate)

    def fill(self, symbol: str, side: Side, qty: float) -> None:
        self.fills += 1
        r = self.chain.row_of(symbol)
        px = float(0.5 * (self.chain.bid[r] + self.chain.ask[r]))
        self.portfolio.on_fill(OrderFilled(f"x{self.fills}", "o", "c", symbol, side, qty, px, NOW, NOW,
                                           structure_id=f"s{self.fills}", strategy_id="t"))
        self.portfolio.on_book(self.chain)


def _intent(desk: Desk, legs: list[tuple[float, str, Side, PositionIntent]], action: IntentAction,
            iid: str = "i") -> OrderIntent:
    built = tuple(Leg(desk.sym(k, r), side, 1, pi) for k, r, side, pi in legs)
    return OrderIntent(iid, "t", f"s-{iid}", "SPY", action, built, 1, PricePolicy())


def _spread(desk: Desk) -> OrderIntent:
    return _intent(desk, [(620, "C", Side.SELL, PositionIntent.SELL_TO_OPEN),
                          (630, "C", Side.BUY, PositionIntent.BUY_TO_OPEN)], IntentAction.OPEN)


@pytest.fixture
def desk() -> Desk:
    return Desk()


def test_a_repeat_check_takes_the_structure_from_the_cache_and_decides_as_a_cold_check(desk: Desk) -> None:
    it = _spread(desk)
    first = desk.check(it)
    misses = desk.gate.warm.misses
    second = desk.check(it)
    assert desk.gate.warm.misses == misses and desk.gate.warm.hits >= 1
    assert isinstance(first, Approved) and second == first == desk.cold(it)


def test_a_leg_that_left_the_book_is_seen_on_the_next_check(desk: Desk) -> None:
    it = _spread(desk)
    assert isinstance(desk.check(it), Approved)
    # The book drops the short leg's row (as ``OptionBook.drop_rows`` does: the row map changes, generation bumps).
    del desk.chain._index[it.legs[0].symbol]
    desk.chain.generation = 1  # type: ignore[attr-defined]
    v = desk.check(it)
    assert isinstance(v, Denied) and DenyReason.NOT_IN_BOOK in v.reasons
    assert v == desk.cold(it)


def test_a_quote_change_between_two_checks_is_seen(desk: Desk) -> None:
    it = _spread(desk)
    assert isinstance(desk.check(it), Approved)
    r = desk.chain.row_of(it.legs[0].symbol)
    desk.chain.bid[r], desk.chain.ask[r] = desk.chain.ask[r] + 0.1, desk.chain.ask[r]  # crossed
    v = desk.check(it)
    assert isinstance(v, Denied) and DenyReason.QUOTE_INVALID in v.reasons


def test_a_fill_between_two_checks_changes_the_coverage_seen_before_the_trade(desk: Desk) -> None:
    # Held: long 1 C630, short 3 C620 (2 naked). Selling the long leaves 3 naked: more than before, denied.
    desk.fill(desk.sym(630, "C"), Side.BUY, 1.0)
    desk.fill(desk.sym(620, "C"), Side.SELL, 3.0)
    sell_long = _intent(desk, [(630, "C", Side.SELL, PositionIntent.SELL_TO_CLOSE)], IntentAction.CLOSE)
    v1 = desk.check(sell_long)
    assert isinstance(v1, Denied) and DenyReason.UNCOVERED_SHORT in v1.reasons
    # Buy back 2 shorts: 0 naked before the trade, 1 after: still more than before, still denied. A cache that
    # kept the first book's 2 naked would let this through.
    desk.fill(desk.sym(620, "C"), Side.BUY, 2.0)
    v2 = desk.check(sell_long)
    assert isinstance(v2, Denied) and DenyReason.UNCOVERED_SHORT in v2.reasons
    assert v2 == desk.cold(sell_long)


def test_held_coverage_is_recomputed_when_a_held_row_s_time_to_expiry_moves(desk: Desk) -> None:
    # Coverage orders expiries by time to expiry: the cached value holds only while those read as they did.
    desk.fill(desk.sym(630, "C"), Side.BUY, 1.0)
    desk.fill(desk.sym(620, "C"), Side.SELL, 3.0)
    sell_long = _intent(desk, [(630, "C", Side.SELL, PositionIntent.SELL_TO_CLOSE)], IntentAction.CLOSE)
    desk.check(sell_long)
    misses = desk.gate.warm.misses
    desk.check(sell_long)
    assert desk.gate.warm.misses == misses
    desk.chain.t_years[desk.chain.row_of(desk.sym(620, "C"))] += 1e-9
    desk.check(sell_long)
    assert desk.gate.warm.misses == misses + 1


def test_usable_iv_rows_equals_the_rows_of_usable_iv(desk: Desk) -> None:
    chain = desk.chain
    rows = np.array([chain.row_of(desk.sym(k, "C")) for k in (590, 600, 620)], dtype=np.int64)
    chain.surface_iv[rows[0]] = 0.31  # one row on the surface, the others at their own IV
    assert np.array_equal(usable_iv_rows(chain, rows), usable_iv(chain, rows)[rows])
    chain.iv[rows[2]] = np.nan  # no IV of its own: the nearest strike's of its expiry
    assert np.array_equal(usable_iv_rows(chain, rows), usable_iv(chain, rows)[rows])
    assert np.isfinite(usable_iv_rows(chain, rows)).all()
