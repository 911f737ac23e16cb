"""Structure types: exact max loss, max profit and breakevens against hand-computed payoffs at expiry."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from support.synthetic import SyntheticChain, ny_ns

from domain.orders import PositionIntent, Side
from strategies.structures import (
    StructureKind,
    calendar,
    iron_butterfly,
    iron_condor,
    straddle,
    strangle,
    vertical,
)

NEAR, FAR = dt.date(2026, 12, 18), dt.date(2027, 1, 15)


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    return SyntheticChain("XYZ", 100.0, ny_ns(2026, 11, 16, 10, 0), [NEAR, FAR], [80.0 + 5 * i for i in range(9)])


def row(chain: SyntheticChain, strike: float, right: str, expiry: dt.date = NEAR) -> int:
    return chain.row_of(chain.symbol_at(expiry, strike, right == "C"))


def test_put_credit_spread(chain: SyntheticChain) -> None:
    s = vertical(chain, row(chain, 90, "P"), row(chain, 95, "P"))
    # Credit 1.50 on a 5-wide spread: lose 5 - 1.5 below 90, keep 1.5 above 95.
    assert s.max_loss_usd(-1.5) == pytest.approx(350.0)
    assert s.max_profit_usd(-1.5) == pytest.approx(150.0)
    assert s.breakevens(-1.5) == pytest.approx((93.5,))
    assert s.max_loss_usd(-1.5, qty=3) == pytest.approx(1050.0)
    assert s.payoff_at(92.0, -1.5) == pytest.approx((-3.0 + 1.5) * 100)


def test_call_debit_spread(chain: SyntheticChain) -> None:
    s = vertical(chain, row(chain, 100, "C"), row(chain, 105, "C"))
    assert s.kind is StructureKind.VERTICAL
    assert s.max_loss_usd(2.0) == pytest.approx(200.0)
    assert s.max_profit_usd(2.0) == pytest.approx(300.0)
    assert s.breakevens(2.0) == pytest.approx((102.0,))


def test_long_straddle(chain: SyntheticChain) -> None:
    s = straddle(chain, row(chain, 100, "C"), row(chain, 100, "P"))
    assert s.max_loss_usd(6.0) == pytest.approx(600.0)
    assert math.isinf(s.max_profit_usd(6.0))
    assert s.breakevens(6.0) == pytest.approx((94.0, 106.0))
    assert s.payoff_at(0.0, 6.0) == pytest.approx((100 - 6) * 100)


def test_short_strangle_has_unbounded_loss(chain: SyntheticChain) -> None:
    s = strangle(chain, row(chain, 105, "C"), row(chain, 95, "P"), long=False)
    assert math.isinf(s.max_loss_usd(-3.0))
    assert s.max_profit_usd(-3.0) == pytest.approx(300.0)
    assert s.breakevens(-3.0) == pytest.approx((92.0, 108.0))


def test_iron_condor_with_equal_wings(chain: SyntheticChain) -> None:
    s = iron_condor(chain, row(chain, 85, "P"), row(chain, 90, "P"), row(chain, 110, "C"), row(chain, 115, "C"))
    assert s.kind is StructureKind.IRON_CONDOR and s.width == 5.0
    assert s.max_loss_usd(-1.2) == pytest.approx(380.0)
    assert s.max_profit_usd(-1.2) == pytest.approx(120.0)
    assert s.breakevens(-1.2) == pytest.approx((88.8, 111.2))


def test_iron_condor_with_unequal_wings_loses_on_the_wide_side(chain: SyntheticChain) -> None:
    s = iron_condor(chain, row(chain, 85, "P"), row(chain, 90, "P"), row(chain, 110, "C"), row(chain, 120, "C"))
    assert s.width == 10.0
    assert s.max_loss_usd(-1.5) == pytest.approx(850.0)
    assert s.payoff_at(80.0, -1.5) == pytest.approx(-350.0)  # the narrow side loses only 5 - 1.5


def test_iron_butterfly(chain: SyntheticChain) -> None:
    s = iron_butterfly(chain, row(chain, 90, "P"), row(chain, 100, "P"), row(chain, 100, "C"), row(chain, 110, "C"))
    assert s.kind is StructureKind.IRON_BUTTERFLY
    assert s.max_loss_usd(-6.0) == pytest.approx(400.0)
    assert s.max_profit_usd(-6.0) == pytest.approx(600.0)
    assert s.breakevens(-6.0) == pytest.approx((94.0, 106.0))


def test_long_calendar_risks_its_debit(chain: SyntheticChain) -> None:
    s = calendar(chain, row(chain, 100, "C", NEAR), row(chain, 100, "C", FAR))
    assert s.kind is StructureKind.CALENDAR and s.expiry == NEAR
    assert s.max_loss_usd(2.0) == pytest.approx(200.0)


def test_structure_legs_open_and_close_with_matching_position_intents(chain: SyntheticChain) -> None:
    s = iron_condor(chain, row(chain, 85, "P"), row(chain, 90, "P"), row(chain, 110, "C"), row(chain, 115, "C"))
    opens, closes = s.open_legs(), s.close_legs()
    assert [leg.side for leg in opens] == [Side.BUY, Side.SELL, Side.SELL, Side.BUY]
    assert [leg.side for leg in closes] == [Side.SELL, Side.BUY, Side.BUY, Side.SELL]
    assert closes[1].position_intent is PositionIntent.BUY_TO_CLOSE


def test_structure_greeks_aggregate_rows_in_trader_units(chain: SyntheticChain) -> None:
    c, p = row(chain, 100, "C"), row(chain, 100, "P")
    g = straddle(chain, c, p).greeks(chain, qty=2)
    assert g.delta_shares == pytest.approx(200 * (chain.delta[c] + chain.delta[p]))
    assert g.vega_usd_per_vol_pt == pytest.approx(2 * (chain.vega[c] + chain.vega[p]))
    assert g.theta_usd_per_day == pytest.approx(200 * (chain.theta[c] + chain.theta[p]) / 365)


def test_builders_reject_malformed_structures(chain: SyntheticChain) -> None:
    with pytest.raises(ValueError, match="same right"):
        vertical(chain, row(chain, 90, "P"), row(chain, 95, "C"))
    with pytest.raises(ValueError, match="out of order"):
        iron_condor(chain, row(chain, 90, "P"), row(chain, 85, "P"), row(chain, 110, "C"), row(chain, 115, "C"))
    with pytest.raises(ValueError, match="near leg"):
        calendar(chain, row(chain, 100, "C", FAR), row(chain, 100, "C", NEAR))
