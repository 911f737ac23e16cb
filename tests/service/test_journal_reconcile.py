"""Journal round trip (real SQLite in WAL mode) and restart reconciliation cases."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from domain.orders import OrderStatus, Side
from domain.views import PortfolioGreeks
from engine.kernel.outputs import StructureRecord
from engine.service.journal import Journal, JournalState
from engine.service.reconcile import ReconcilePolicy, abandoned_update, decode_broker, reconcile
from tests.service.helpers import CALL, PUT, make_fill, make_intent, make_update


@pytest.fixture
async def journal(tmp_path: Path):
    j = Journal.open(tmp_path / "state")
    j.start()
    yield j
    await j.aclose()


async def test_journal_round_trip_survives_reopen(journal: Journal, tmp_path: Path):
    intent = make_intent()
    await journal.record_intent(intent, "oe-1")
    journal.record_order(make_update("oe-1", "ord-1", OrderStatus.NEW))
    journal.record_order(make_update("oe-1", "ord-1", OrderStatus.PARTIALLY_FILLED, filled=1.0, qty=2.0))
    greeks = PortfolioGreeks(delta_shares=-40.0)
    assert journal.record_fill(make_fill(1, CALL, Side.SELL), greeks, greeks) == 1
    assert journal.record_fill(make_fill(1, CALL, Side.SELL)) is None  # same execution_id: ignored
    assert journal.record_fill(make_fill(2, PUT, Side.SELL)) == 2
    journal.record_structure(
        StructureRecord("st-1", "iron_condor", "SPY", "open", {CALL: -1.0, PUT: -1.0}, time.time_ns(), {"credit": 1.1})
    )
    journal.record_config_diff([{"path": "risk.max_spread_pct", "old": 0.3, "new": 0.2}], [])
    await journal.aclose()

    assert sqlite3.connect(journal.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = Journal.open(tmp_path / "state")
    state = again.read_state()
    assert state.intents["in-1"].intent == intent and state.intents["in-1"].client_order_id == "oe-1"
    order = state.orders["oe-1"]
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_qty == 1.0 and order.intent_id == "in-1"
    assert [f.fill.execution_id for f in state.fills] == ["exec-1", "exec-2"]
    assert state.fills[0].greeks_before == greeks
    assert state.positions() == {CALL: -1.0, PUT: -1.0}
    assert state.structures["st-1"].extra == {"credit": 1.1}
    assert again.read_config_diffs()[0][1][0]["path"] == "risk.max_spread_pct"
    # the fill index is reloaded: a redelivered execution is still a duplicate, numbering continues
    assert again.record_fill(make_fill(2, PUT, Side.SELL)) is None
    assert again.has_execution("exec-1")


async def test_intent_is_committed_before_record_intent_completes(journal: Journal):
    await journal.record_intent(make_intent("in-9"), "oe-9")
    # a second connection (another process after a SIGKILL) sees it without any further flush
    assert "in-9" in Journal.open(journal.path.parent).read_state().intents


async def test_fills_after_sees_writes_queued_before_it(journal: Journal):
    for i in range(5):
        journal.record_fill(make_fill(i))
    fills = await journal.fills_after(2)
    assert [f.seq for f in fills] == [3, 4, 5]


# --- reconciliation -------------------------------------------------------------------------------

NOW = 1_795_000_000_000_000_000


def _order(
    coid: str,
    oid: str,
    status: str,
    symbol: str = CALL,
    qty: str = "1",
    filled: str = "0",
    legs: list | None = None,
) -> dict:
    o = {
        "id": oid,
        "client_order_id": coid,
        "status": status,
        "symbol": symbol,
        "side": "sell",
        "qty": qty,
        "filled_qty": filled,
        "order_class": "simple",
        "asset_class": "us_option",
        "limit_price": "1.10",
        "created_at": "2026-11-20T15:00:00Z",
        "extended_hours": False,
    }
    if legs is not None:
        o.update(symbol="", order_class="mleg", legs=legs)
    return o


async def _journal_with(tmp_path: Path, *, fills=(), orders=(), intents=(), structures=()) -> JournalState:
    j = Journal.open(tmp_path / "r")
    j.start()
    for intent, coid in intents:
        await j.record_intent(intent, coid)
    for u in orders:
        j.record_order(u)
    for f in fills:
        j.record_fill(f)
    for s in structures:
        j.record_structure(s)
    await j.aclose()
    return j.read_state()


async def test_known_open_order_is_adopted_and_unknown_one_cancelled_by_policy(tmp_path: Path):
    state = await _journal_with(
        tmp_path, intents=[(make_intent(), "oe-1")], orders=[make_update("oe-1", "ord-1", OrderStatus.NEW)]
    )
    broker = decode_broker([_order("oe-1", "ord-1", "new"), _order("manual-7", "ord-7", "new")], [], [], [])
    plan = reconcile(state, broker, ReconcilePolicy("cancel", "oe"), NOW)
    assert [(a.client_order_id, a.known, a.structure_id) for a in plan.adopt] == [("oe-1", True, "st-1")]
    assert [(c.order_id, c.reason) for c in plan.cancel] == [("ord-7", "unknown_order")]
    assert [a.code for a in plan.alerts] == ["unknown_order_cancelled"]
    assert plan.import_fills == []


async def test_unknown_order_is_adopted_when_policy_says_adopt(tmp_path: Path):
    state = await _journal_with(tmp_path)
    broker = decode_broker([_order("manual-7", "ord-7", "accepted")], [], [], [])
    plan = reconcile(state, broker, ReconcilePolicy("adopt", "oe"), NOW)
    assert plan.cancel == []
    assert [(a.order_id, a.known, a.status) for a in plan.adopt] == [("ord-7", False, OrderStatus.ACCEPTED)]
    assert [a.code for a in plan.alerts] == ["unknown_order_adopted"]


async def test_intent_journaled_but_never_submitted_is_abandoned_not_resubmitted(tmp_path: Path):
    state = await _journal_with(tmp_path, intents=[(make_intent("in-5"), "oe-5")])
    plan = reconcile(state, decode_broker([], [], [], []), ReconcilePolicy(), NOW)
    assert [(a.intent_id, a.client_order_id) for a in plan.abandon] == [("in-5", "oe-5")]
    assert plan.adopt == [] and plan.cancel == []
    assert "intent_not_submitted" in [a.code for a in plan.alerts]
    # journaling the abandonment makes the next restart quiet about it
    again = await _journal_with(
        tmp_path, orders=[abandoned_update(plan.abandon[0], state, NOW)], intents=[(make_intent("in-5"), "oe-5")]
    )
    replan = reconcile(again, decode_broker([], [], [], []), ReconcilePolicy(), NOW)
    assert replan.abandon == [] and replan.alerts == []


async def test_order_submitted_before_the_crash_is_adopted_through_its_intent(tmp_path: Path):
    # SIGKILL after the intent was committed and the order sent, before the order row was journaled
    state = await _journal_with(tmp_path, intents=[(make_intent("in-6", "st-6"), "oe-6")])
    plan = reconcile(state, decode_broker([_order("oe-6", "ord-6", "new")], [], [], []), ReconcilePolicy(), NOW)
    assert [(a.client_order_id, a.known, a.intent_id, a.structure_id) for a in plan.adopt] == [
        ("oe-6", True, "in-6", "st-6")
    ]
    assert plan.abandon == [] and plan.cancel == []


async def test_position_mismatch_is_reported_and_no_fill_is_invented(tmp_path: Path):
    state = await _journal_with(
        tmp_path,
        orders=[make_update("oe-1", "ord-1", OrderStatus.FILLED, filled=1.0)],
        fills=[make_fill(1, CALL, Side.SELL, coid="oe-1", order_id="ord-1")],
        structures=[StructureRecord("st-1", "iron_condor", "SPY", "open", {CALL: -1.0}, NOW)],
    )
    positions = [{"symbol": CALL, "qty": "-3", "asset_class": "us_option", "side": "short"}]
    broker = decode_broker([], [_order("oe-1", "ord-1", "filled", filled="1")], positions, [])
    plan = reconcile(state, broker, ReconcilePolicy(), NOW)
    assert plan.import_fills == []
    mismatch = [a for a in plan.alerts if a.code == "position_mismatch"]
    assert len(mismatch) == 1 and mismatch[0].details == {
        "symbol": CALL,
        "journal_qty": -1.0,
        "broker_qty": -3.0,
    }
    assert plan.positions == {CALL: -3.0}
    assert [s.structure_id for s in plan.structures] == ["st-1"]


async def test_structures_are_rebuilt_from_their_fills_and_only_what_none_holds_is_unattributed(tmp_path: Path):
    """The engine journals fills with their structure, not structure records: every held leg of an open
    structure used to be reported as unexplained at each restart (1,017 alerts in one kill -9 loop)."""
    fills = [make_fill(1, CALL, Side.SELL, coid="oe-1", order_id="ord-1"),
             make_fill(2, PUT, Side.SELL, coid="oe-1", order_id="ord-1"),
             make_fill(3, PUT, Side.BUY, coid="oe-2", order_id="ord-2")]  # the put leg closed again
    state = await _journal_with(tmp_path, fills=fills)
    positions = [{"symbol": CALL, "qty": "-1", "asset_class": "us_option", "side": "short"},
                 {"symbol": "SPY", "qty": "100", "asset_class": "us_equity", "side": "long"}]
    plan = reconcile(state, decode_broker([], [], positions, []), ReconcilePolicy(), NOW)
    assert [(s.structure_id, s.legs) for s in plan.structures] == [("st-1", {CALL: -1.0})]
    unattributed = [a.details["symbol"] for a in plan.alerts if a.code == "unattributed_position"]
    assert unattributed == ["SPY"]  # the journal has no fill for it: that one is unexplained
    assert "structure_incomplete" not in [a.code for a in plan.alerts]


async def test_fill_missed_during_the_crash_is_imported_from_broker_activities(tmp_path: Path):
    state = await _journal_with(
        tmp_path,
        intents=[(make_intent(), "oe-1")],
        orders=[make_update("oe-1", "ord-1", OrderStatus.PARTIALLY_FILLED, filled=1.0, qty=2.0)],
        fills=[make_fill(1, CALL, Side.SELL, coid="oe-1", order_id="ord-1")],
    )
    acts = [
        {
            "id": "20261120150000000::a1",
            "activity_type": "FILL",
            "order_id": "ord-1",
            "symbol": CALL,
            "side": "sell",
            "qty": "1",
            "price": "1.10",
            "transaction_time": "2026-11-20T15:00:00Z",
        },
        {
            "id": "20261120150100000::a2",
            "activity_type": "FILL",
            "order_id": "ord-1",
            "symbol": CALL,
            "side": "sell",
            "qty": "1",
            "price": "1.05",
            "transaction_time": "2026-11-20T15:01:00Z",
        },
    ]
    broker = decode_broker(
        [], [_order("oe-1", "ord-1", "filled", qty="2", filled="2")], [{"symbol": CALL, "qty": "-2"}], acts
    )
    plan = reconcile(state, broker, ReconcilePolicy(), NOW)
    assert [(f.execution_id, f.qty, f.price, f.side) for f in plan.import_fills] == [
        ("20261120150100000::a2", 1.0, 1.05, Side.SELL)
    ]
    assert [u.status for u in plan.order_updates] == [OrderStatus.FILLED]
    assert "position_mismatch" not in [a.code for a in plan.alerts]


async def test_broker_fill_without_an_activity_is_an_alert_not_a_fill(tmp_path: Path):
    state = await _journal_with(
        tmp_path, intents=[(make_intent(), "oe-1")], orders=[make_update("oe-1", "ord-1", OrderStatus.NEW)]
    )
    broker = decode_broker([], [_order("oe-1", "ord-1", "filled", filled="1")], [{"symbol": CALL, "qty": "-1"}], [])
    plan = reconcile(state, broker, ReconcilePolicy(), NOW)
    assert plan.import_fills == []
    codes = [a.code for a in plan.alerts]
    assert "fills_missing" in codes and "position_mismatch" in codes


async def test_mleg_order_legs_are_reconciled_per_symbol(tmp_path: Path):
    legs = [
        {
            "id": "leg-c",
            "symbol": CALL,
            "side": "sell",
            "ratio_qty": "1",
            "filled_qty": "1",
            "status": "filled",
        },
        {
            "id": "leg-p",
            "symbol": PUT,
            "side": "sell",
            "ratio_qty": "1",
            "filled_qty": "1",
            "status": "filled",
        },
    ]
    state = await _journal_with(
        tmp_path,
        intents=[(make_intent(), "oe-1")],
        orders=[make_update("oe-1", "par-1", OrderStatus.NEW)],
        fills=[make_fill(1, CALL, Side.SELL, coid="oe-1", order_id="leg-c")],
    )
    acts = [
        {
            "id": "a-put",
            "order_id": "leg-p",
            "symbol": PUT,
            "side": "sell",
            "qty": "1",
            "price": "0.9",
            "transaction_time": "2026-11-20T15:00:00Z",
        }
    ]
    broker = decode_broker(
        [],
        [_order("oe-1", "par-1", "filled", filled="1", legs=legs)],
        [{"symbol": CALL, "qty": "-1"}, {"symbol": PUT, "qty": "-1"}],
        acts,
    )
    plan = reconcile(state, broker, ReconcilePolicy(), NOW)
    assert [(f.symbol, f.execution_id, f.parent_order_id) for f in plan.import_fills] == [(PUT, "a-put", "par-1")]
    assert "position_mismatch" not in [a.code for a in plan.alerts]


async def test_a_replacement_the_crash_kept_from_the_journal_is_ours_and_its_fills_are_imported(tmp_path: Path):
    """Regression (kill -9 loop): SIGKILL after the broker replaced ``oe-3`` by ``oe-3.r1`` and filled it, before
    the journal heard of ``oe-3.r1``. The replacement belongs to the journaled order chain: its fills are imported
    with the intent's strategy and structure, and an open replacement is adopted, never cancelled as unknown."""
    state = await _journal_with(
        tmp_path, intents=[(make_intent("in-3", "st-3"), "oe-3")],
        orders=[make_update("oe-3", "ord-3", OrderStatus.REPLACED, intent_id="in-3", structure_id="st-3")],
    )
    fill = {"id": "20261120150200000::r1", "activity_type": "FILL", "order_id": "ord-3r1", "symbol": CALL,
            "side": "sell", "qty": "1", "price": "1.20", "transaction_time": "2026-11-20T15:02:00Z"}
    recent = [_order("oe-3", "ord-3", "replaced"), _order("oe-3.r1", "ord-3r1", "filled", filled="1")]
    broker = decode_broker([], recent, [{"symbol": CALL, "qty": "-1"}], [fill])
    plan = reconcile(state, broker, ReconcilePolicy("cancel", "oe"), NOW)
    assert [(f.execution_id, f.client_order_id, f.structure_id, f.strategy_id, f.intent_id, f.signed_qty)
            for f in plan.import_fills] == [("20261120150200000::r1", "oe-3.r1", "st-3", "iron_condor", "in-3", -1.0)]
    codes = [a.code for a in plan.alerts]
    assert "position_mismatch" not in codes and "unknown_fill_at_broker" not in codes

    working = decode_broker([_order("oe-3.r2", "ord-3r2", "new")], [_order("oe-3", "ord-3", "replaced")], [], [])
    plan = reconcile(state, working, ReconcilePolicy("cancel", "oe"), NOW)
    assert plan.cancel == []
    assert [(a.client_order_id, a.known, a.intent_id, a.structure_id) for a in plan.adopt] == [
        ("oe-3.r2", True, "in-3", "st-3")
    ]
