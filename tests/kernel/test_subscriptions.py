"""Subscription budget: cap never exceeded, pinned contracts always in, hysteresis, DTE window."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernel.subscriptions import BudgetConfig, Contract, SubscriptionBudget
from greeks.occ import format_occ

TODAY = dt.date(2026, 11, 20)


def chain(
    underlying: str, spot: float, step: float = 5.0, n_strikes: int = 60, dtes: tuple[int, ...] = (0, 7, 14, 28, 60)
) -> list[Contract]:
    out = []
    for d in dtes:
        e = TODAY + dt.timedelta(days=d)
        for i in range(n_strikes):
            k = spot + (i - n_strikes // 2) * step
            for call in (True, False):
                out.append(Contract(format_occ(underlying, e, call, k), underlying, e, k, call, 0))
    return out


def test_window_is_expiries_in_range_times_strikes_around_spot() -> None:
    budget = SubscriptionBudget(BudgetConfig(cap=40, dte_ranges=((0, 20),), max_expiries=4))
    contracts = chain("SPY", 600.0)
    chosen = budget.plan({"SPY": contracts}, {"SPY": 600.0}, TODAY)
    by_symbol = {c.symbol: c for c in contracts}
    assert len(chosen) == 40
    assert {by_symbol[s].expiry for s in chosen} == {TODAY + dt.timedelta(days=d) for d in (0, 7, 14)}
    for d in (0, 7, 14):
        expiry = TODAY + dt.timedelta(days=d)
        strikes = {by_symbol[s].strike for s in chosen if by_symbol[s].expiry == expiry}
        window = budget.half_width(600.0, expiry, TODAY)
        # Within the expiry's window (a narrow window is topped up with the nearest strikes outside it).
        assert max(abs(k - 600.0) for k in strikes) <= max(window, 5.0 * (len(strikes) // 2 + 1))
        assert 600.0 in strikes


def test_every_strategy_range_gets_an_expiry_and_far_ones_reach_the_wings() -> None:
    # 0DTE, a gamma scalper's 7-30 and a condor's 30-45: each gets streamed, the condor's out to ~1 sigma.
    budget = SubscriptionBudget(BudgetConfig(cap=120, dte_ranges=((0, 0), (7, 30), (30, 45))))
    contracts = chain("SPY", 600.0, step=1.0, n_strikes=200, dtes=(0, 1, 2, 7, 14, 35, 60))
    chosen = budget.plan({"SPY": contracts}, {"SPY": 600.0}, TODAY)
    by_symbol = {c.symbol: c for c in contracts}
    dtes = {(by_symbol[s].expiry - TODAY).days for s in chosen}
    assert {0, 7, 35} <= dtes
    far = [by_symbol[s].strike for s in chosen if (by_symbol[s].expiry - TODAY).days == 35]
    one_sigma = 0.25 * (35 / 365) ** 0.5 * 600.0
    assert min(far) <= 600.0 - one_sigma and max(far) >= 600.0 + one_sigma
    assert len(chosen) <= 120


def test_pinned_contracts_are_always_included_even_far_out() -> None:
    budget = SubscriptionBudget(BudgetConfig(cap=20, dte_ranges=((0, 10),)))
    far = format_occ("SPY", TODAY + dt.timedelta(days=60), True, 800.0)
    chosen = budget.plan({"SPY": chain("SPY", 600.0)}, {"SPY": 600.0}, TODAY, pinned=[far])
    assert far in chosen and len(chosen) == 20


def test_small_spot_moves_keep_the_set_and_large_ones_recentre_it() -> None:
    budget = SubscriptionBudget(BudgetConfig(cap=40, dte_ranges=((0, 10),), max_expiries=2))
    contracts = {"SPY": chain("SPY", 600.0)}
    first = budget.plan(contracts, {"SPY": 600.0}, TODAY)
    assert budget.plan(contracts, {"SPY": 603.0}, TODAY) == first  # inside the band: no churn
    moved = budget.plan(contracts, {"SPY": 650.0}, TODAY)
    assert moved != first and budget.centers["SPY"] == 650.0


@settings(max_examples=50, deadline=None)
@given(
    cap=st.integers(1, 300),
    n_pinned=st.integers(0, 400),
    spots=st.tuples(st.floats(100, 1000), st.floats(100, 1000)),
)
def test_cap_is_never_exceeded(cap: int, n_pinned: int, spots: tuple[float, float]) -> None:
    universe = {
        "SPY": chain("SPY", round(spots[0]), 1.0, 40, (0, 7, 30)),
        "QQQ": chain("QQQ", round(spots[1]), 1.0, 40, (0, 7, 30)),
    }
    pinned = [c.symbol for c in universe["SPY"][:n_pinned]]
    chosen = SubscriptionBudget(BudgetConfig(cap=cap)).plan(universe, {"SPY": spots[0], "QQQ": spots[1]}, TODAY, pinned)
    assert len(chosen) <= cap
    if n_pinned <= cap:
        assert set(pinned) <= chosen


def test_cap_is_shared_between_underlyings() -> None:
    universe = {"SPY": chain("SPY", 600.0), "QQQ": chain("QQQ", 500.0)}
    chosen = SubscriptionBudget(BudgetConfig(cap=100)).plan(universe, {"SPY": 600.0, "QQQ": 500.0}, TODAY)
    assert sum(s.startswith("SPY") for s in chosen) == 50 and sum(s.startswith("QQQ") for s in chosen) == 50


async def test_the_contract_catalog_keeps_only_the_current_day() -> None:
    """Found by the soak: a cache entry per trading day, never evicted, grew the engine by a day's listings
    at every session roll (+4-5 MiB per simulated day). Only today's windows stay; yesterday's are dropped."""
    from engine.kernel.subscriptions import ContractCatalog
    from engine.kernel.venue_types import Listing

    calls: list[str] = []
    held_while_fetching: list[int] = []

    class Reference:  # the part of ReferenceData the catalog uses
        async def listed_contracts(self, underlying: str, first: dt.date, last: dt.date) -> Listing:
            calls.append(first.isoformat())
            held_while_fetching.append(len(catalog._cache))
            return Listing(contracts=[Contract(format_occ("SPY", first, True, 600.0 + i), "SPY", first, 600.0 + i, True,
                                               1) for i in range(3)], listed=3)

    catalog = ContractCatalog(Reference())  # type: ignore[arg-type]
    day1, day2 = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
    first = await catalog.contracts("SPY", day1, 30)
    assert await catalog.contracts("SPY", day1, 30) is first and len(calls) == 1  # cached within the day
    await catalog.contracts("SPY", day2, 30)
    assert [k[1] for k in catalog._cache] == [day2]
    assert held_while_fetching == [0, 0]  # yesterday's listing is let go before today's is decoded
