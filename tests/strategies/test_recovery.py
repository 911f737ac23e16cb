"""A restart hands each strategy back the structures it held: managed from the first book, numbered on.

Without it a 0DTE condor opened before a restart had no owner: nothing closed it at the cut-off (its short legs
went into the expiry-day liquidation), and the strategy opened new ones as if it held nothing.
"""

from __future__ import annotations

import datetime as dt

from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction
from engine.kernel.outputs import StructureRecord
from engine.service.journal import JournalFill, JournalIntent, JournalState
from engine.service.recovery import recovered_structures
from strategies.tracking import StructureStatus
from strategies.zero_dte import ZeroDte, ZeroDteConfig

DAY = dt.date(2026, 11, 16)
MIN_NS = 60 * 1_000_000_000


def _chain(now: int) -> SyntheticChain:
    return SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 1, 7)), strike_ladder(600.0, 1.0, 30))


def _journal_of(h: Harness) -> JournalState:
    """What the engine's journal holds after ``h``'s run: intents, fills and the structure records."""
    intents = {i.intent_id: JournalIntent(i, f"oe-{i.intent_id}") for i in h.approved}
    fills = [JournalFill(n, f, "engine") for n, f in enumerate(h.fills)]
    structures = {i.structure_id: StructureRecord(i.structure_id, i.strategy_id, i.underlying, "open",
                                                   dict(i.leg_quantities()), i.ts_event_ns,
                                                   h.strategy.structure_record(i.structure_id))
                  for i in h.approved if i.action is IntentAction.OPEN}
    return JournalState(intents, {}, fills, structures)


def test_a_zero_dte_condor_held_across_a_restart_is_closed_at_the_cutoff_and_not_opened_again() -> None:
    opened_at = ny_ns(2026, 11, 16, 10, 5)
    before = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",), max_entries_per_day=1)),
                     [_chain(opened_at)], opened_at)
    before.advance(opened_at + MIN_NS)
    (opening,) = [i for i in before.approved if i.action is IntentAction.OPEN]
    sid = opening.structure_id
    state = _journal_of(before)

    restart = ny_ns(2026, 11, 16, 11, 0)
    after = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",), max_entries_per_day=1)),
                    [_chain(restart)], restart)
    for fill in before.fills:  # the engine rebuilds its portfolio from the same journal
        after.portfolio.on_fill(fill)
    recovered = recovered_structures(state, [jf.fill for jf in state.fills], [sid])
    after.strategy.on_recover(recovered["zd"])
    t = after.strategy.tracker.structures[sid]
    assert t.status is StructureStatus.OPEN and t.structure.kind.value == "iron_condor"
    assert t.filled == before.strategy.tracker.structures[sid].filled
    assert t.entry_net_price == before.strategy.tracker.structures[sid].entry_net_price < 0  # the credit taken
    assert t.entry_spot == before.strategy.tracker.structures[sid].entry_spot

    after.advance(restart + 30 * MIN_NS)  # still inside the entry window: the day's one entry is taken already
    assert not [i for i in after.approved if i.action is IntentAction.OPEN]
    after.advance(ny_ns(2026, 11, 16, 15, 1))  # the cut-off (close-60m)
    closes = [i for i in after.approved if i.action is IntentAction.CLOSE]
    assert closes and closes[0].structure_id == sid and closes[0].tag == "cutoff"
    assert closes[0].intent_id not in state.intents  # numbered after the journal's: a new client order id
    shorts = {sym: q for sym, q in after.portfolio.positions().items() if q < 0}
    assert shorts == {}, shorts  # a long wing bid at zero may stay; no short goes into the liquidation window


def test_structures_no_strategy_opened_are_not_handed_to_one() -> None:
    opened_at = ny_ns(2026, 11, 16, 10, 5)
    before = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",))), [_chain(opened_at)], opened_at)
    before.advance(opened_at + MIN_NS)
    state = _journal_of(before)
    assert recovered_structures(state, [jf.fill for jf in state.fills], ["settlement-SPY"]) == {}


def test_the_days_entries_count_the_structures_taken_back() -> None:
    """One entry a day: the condor opened before the restart is that entry, even once it is closed."""
    opened_at = ny_ns(2026, 11, 16, 10, 5)
    cfg = ZeroDteConfig(underlyings=("SPY",), max_entries_per_day=1, entry_interval_s=60.0)
    before = Harness(ZeroDte("zd", cfg), [_chain(opened_at)], opened_at)
    before.advance(opened_at + MIN_NS)
    state = _journal_of(before)
    sid = next(i.structure_id for i in before.approved if i.action is IntentAction.OPEN)

    restart = ny_ns(2026, 11, 16, 11, 0)
    after = Harness(ZeroDte("zd", cfg), [_chain(restart)], restart)
    for fill in before.fills:
        after.portfolio.on_fill(fill)
    after.strategy.on_recover(recovered_structures(state, [jf.fill for jf in state.fills], [sid])["zd"])
    after.advance(restart + MIN_NS)
    assert after.strategy.entries_today == 1
    assert after.strategy.close_all("test") == 1
    after.advance(restart + 60 * MIN_NS)
    assert after.strategy.tracker.structures[sid].status is not StructureStatus.OPEN
    assert not [i for i in after.approved if i.action is IntentAction.OPEN]
