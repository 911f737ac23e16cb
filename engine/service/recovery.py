"""What each strategy held when the engine stopped, rebuilt from the journal for ``Strategy.on_recover``.

The portfolio is rebuilt from the journal's fills at every start; a strategy's own view of its structures is
not journaled as such, so it is rebuilt here from the same record: the intent that opened each structure (its
legs and ratios), every intent made for it since (so new ones are numbered after them: client order ids never
repeat), every fill booked to it (replayed by the strategy's tracker, the same path as live), and the structure
record written when it opened (its kind, the spot and IV at entry).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from domain.orders import IntentAction, OrderFilled
from engine.service.journal import JournalState
from strategies.tracking import RecoveredStructure

_SEQ = re.compile(r"-(\d+)$")


def recovered_structures(state: JournalState, fills: Iterable[OrderFilled],
                         open_ids: Iterable[str]) -> dict[str, list[RecoveredStructure]]:
    """Per strategy, the structures among ``open_ids`` it opened (an opening intent is journaled), with their
    intents and ``fills`` (the journal's, plus what the restart imported). Structures no strategy opened (the
    quantity a settlement could not attribute) are left out: nothing manages them but the settlement poller."""
    wanted = set(open_ids)
    intents: dict[str, list[str]] = {}
    opening: dict[str, str] = {}
    for intent_id, ji in state.intents.items():
        sid = ji.intent.structure_id
        if sid not in wanted:
            continue
        intents.setdefault(sid, []).append(intent_id)
        if ji.intent.action is IntentAction.OPEN and (sid not in opening or _seq(intent_id) < _seq(opening[sid])):
            opening[sid] = intent_id
    booked: dict[str, list[OrderFilled]] = {}
    for fill in fills:
        if fill.structure_id in opening:
            booked.setdefault(fill.structure_id, []).append(fill)
    out: dict[str, list[RecoveredStructure]] = {}
    for sid, intent_id in opening.items():
        intent = state.intents[intent_id].intent
        record = state.structures.get(sid)
        extra = record.extra if record is not None else {}
        out.setdefault(intent.strategy_id, []).append(RecoveredStructure(
            intent,
            tuple(sorted(intents[sid], key=_seq)),
            tuple(sorted(booked.get(sid, ()), key=lambda f: f.ts_event_ns)),
            kind=str(extra.get("kind", "")),
            entry_spot=float(extra.get("entry_spot", math.nan)),
            entry_iv=float(extra.get("entry_iv", math.nan)),
        ))
    return out


def _seq(intent_id: str) -> int:
    m = _SEQ.search(intent_id)
    return int(m.group(1)) if m else 0
