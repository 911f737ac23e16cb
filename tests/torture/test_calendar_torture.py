"""Calendar torture (CI-sized): the engine with all three strategies through half days, holidays, a Thursday
expiry before Good Friday, both DST switches, weekend rolls and an ex-dividend day with in-the-money short calls.

Every run checks the five invariants of ``harness.check_invariants``; some add what their day is about.
``bench/torture.py`` runs the same scenarios over longer windows and more seeds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.service.app import Engine
from greeks.calendar import NEW_YORK, ny_date
from greeks.occ import parse_occ

from .harness import Outcome, Scenario, check_invariants, run

pytestmark = pytest.mark.timeout(300)


def ny(y: int, m: int, d: int, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=NEW_YORK)


def opened_on(outcome: Outcome, strategy: str, day: dt.date) -> int:
    """Structures ``strategy`` opened (first fill) on ``day``."""
    first: dict[str, int] = {}
    for fill in outcome.journal_fills:
        if fill.strategy_id == strategy and fill.structure_id:
            first[fill.structure_id] = min(first.get(fill.structure_id, fill.ts_event_ns), fill.ts_event_ns)
    return sum(1 for ns in first.values() if ny_date(ns) == day)


CALENDAR_DAYS = [
    # Half day after Thanksgiving (13:00 close), then the weekend roll to Monday.
    Scenario("half_day_2026_11_27", ny(2026, 11, 27, 9, 50), ny(2026, 11, 30, 9, 50)),
    # Christmas Eve (13:00 close), Christmas, the weekend, Monday.
    Scenario("christmas_eve_2026", ny(2026, 12, 24, 9, 50), ny(2026, 12, 28, 9, 50)),
    # Good Friday 2027-03-26 has no session: that week's Friday expiries trade out on Thursday 03-25.
    Scenario("good_friday_2027", ny(2027, 3, 25, 13, 30), ny(2027, 3, 29, 9, 50)),
    # DST ends 2026-11-01 and begins 2027-03-14: both over a weekend roll.
    Scenario("dst_fall_2026", ny(2026, 10, 30, 14, 0), ny(2026, 11, 2, 9, 50)),
    Scenario("dst_spring_2027", ny(2027, 3, 12, 14, 0), ny(2027, 3, 15, 9, 50)),
]


@pytest.mark.parametrize("scenario", CALENDAR_DAYS, ids=lambda s: s.name)
async def test_calendar_day(scenario: Scenario, tmp_path: Path) -> None:
    outcome = await run(scenario, tmp_path)
    check_invariants(outcome)
    if scenario.name == "half_day_2026_11_27":
        # the 0DTE trades the half day on windows measured from the 13:00 close (it opened nothing there before)
        assert opened_on(outcome, "zero_dte", dt.date(2026, 11, 27)) >= 1, outcome.summary["strategies"]


def _put_condor_short_calls_in_the_money(engine: Engine) -> None:
    """Move SPY 0.4 % through the highest short call any condor holds (a dividend-driven assignment candidate)."""
    shorts = [parse_occ(s) for snap in engine.portfolio.structures() if snap.strategy_id == "iron_condor"
              for s, q in snap.legs.items() if q < 0 and len(s) > 12 and parse_occ(s).is_call]
    assert shorts, "no condor held a short call before the ex-date: the scenario tests nothing"
    strike = max(o.strike for o in shorts)
    spot = engine.sim.market.spot("SPY")
    engine.sim.move_underlying("SPY", strike * 1.004 / spot - 1.0)


def ex_dividend_scenario() -> Scenario:
    """SPY goes ex $1.95 on 2026-12-18; a one-day condor that stays on when its short call goes in the money."""
    return Scenario(
        "ex_dividend_2026_12_18", ny(2026, 12, 17, 12, 0), ny(2026, 12, 18, 10, 0),
        sim_extra="""
[sim.assignment]
dividend_probability = 1.0
probability = 0.0
""",
        strategies={"iron_condor": """dte_min = 1
dte_max = 1
exit_dte = 0
close_on_breach = false
stop_loss_multiple = 50.0
take_profit_pct = 0.95
wing_width_pct = 0.004
min_credit_ratio = 0.05
short_delta_min = 0.15
short_delta_max = 0.35
"""},
        actions=[(ny(2026, 12, 17, 14, 30), _put_condor_short_calls_in_the_money)],
    )


async def test_ex_dividend_day_with_in_the_money_short_calls(tmp_path: Path) -> None:
    """A one-day condor's short call is put in the money the afternoon before SPY's ex-date: with less time value
    than the dividend it is assigned overnight (OPASN at the open, with its quantity); the engine books the
    contracts and shares the activity names, unwinds the shares, and flattens the rest of the condor before the
    ex-date's liquidation window."""
    outcome = await run(ex_dividend_scenario(), tmp_path)
    check_invariants(outcome)
    assigned = [a for a in outcome.activities if a.get("activity_type") == "OPASN"]
    assert assigned and all(parse_occ(a["symbol"]).is_call for a in assigned), assigned
