"""Strategy sizing: fixed fractional on exact max loss, and fractional Kelly from the book's deltas."""

from __future__ import annotations

import datetime as dt

import pytest
from support.synthetic import SyntheticChain, ny_ns

from risk.sizing import kelly_fraction
from strategies.sizing import profit_probability, size_structure
from strategies.structures import iron_condor

EXPIRY = dt.date(2026, 12, 18)


@pytest.fixture(scope="module")
def chain() -> SyntheticChain:
    return SyntheticChain("XYZ", 100.0, ny_ns(2026, 11, 16, 10, 0), [EXPIRY], [80.0 + 5 * i for i in range(9)])


def condor(chain: SyntheticChain):  # type: ignore[no-untyped-def]
    def row(k: float, c: bool) -> int:
        return chain.row_of(chain.symbol_at(EXPIRY, k, c))

    return iron_condor(chain, row(85, False), row(90, False), row(110, True), row(115, True))


def test_fixed_fractional_sizes_on_the_exact_max_loss(chain: SyntheticChain) -> None:
    s = condor(chain)
    # Credit 1.00 on 5-wide wings: max loss 400 a unit; 2 % of 100k = 2,000 -> 5 units.
    assert size_structure(s, chain, -1.0, 100_000, "fixed_fractional", 0.02, 0.25, 50) == 5
    assert size_structure(s, chain, -1.0, 100_000, "fixed_fractional", 0.02, 0.25, 3) == 3


def test_profit_probability_is_one_minus_the_short_deltas(chain: SyntheticChain) -> None:
    s = condor(chain)
    rows = [chain.row_of(leg.symbol) for leg in s.legs if leg.ratio < 0]
    assert profit_probability(s, chain) == pytest.approx(1 - sum(abs(chain.delta[r]) for r in rows))


def test_kelly_sizes_by_edge_and_never_beyond_the_risk_cap(chain: SyntheticChain) -> None:
    s = condor(chain)
    p = profit_probability(s, chain)
    # A rich credit has an edge: quarter Kelly of it, capped at 2 % of equity at risk.
    rich = -3.0
    f = kelly_fraction(p, 300.0, 200.0) * 0.25
    assert f > 0
    expected = min(int(100_000 * min(f, 0.02) / 200.0 + 1e-9), 50)
    assert size_structure(s, chain, rich, 100_000, "kelly", 0.02, 0.25, 50) == expected
    # A thin credit has none under the two-outcome model: no trade.
    assert size_structure(s, chain, -0.2, 100_000, "kelly", 0.02, 0.25, 50) == 0
