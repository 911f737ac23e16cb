"""The tick class table (listing first, then engine.toml's tables), the reasons broker refusals become, and what
a restart makes of an intent whose refused replace was being redone as cancel + new order when the engine died."""

from __future__ import annotations

from pathlib import Path

from domain.orders import OrderStatus
from engine.alpaca.broker import BrokerRejected
from engine.alpaca.execution import venue_error
from engine.kernel.order_rules import OrdersSection, TickTable
from engine.kernel.venue_types import Rejected
from engine.service.journal import Journal
from engine.service.reconcile import ReconcilePolicy, decode_broker, reconcile
from tests.service.helpers import CALL, make_intent, make_update

NOW = 1_795_000_000_000_000_000


def test_tick_class_comes_from_the_listing_then_the_tables_then_the_default() -> None:
    table = TickTable(OrdersSection(penny_underlyings=("AAPL",)))
    assert [table.tick_class(u) for u in ("SPY", "IWM", "AAPL", "XYZ")] == ["penny_all", "penny_all", "penny",
                                                                            "non_penny"]
    table.observe("XYZ", True)
    table.observe("AAPL", False)  # the broker's word beats the table
    table.observe("QQQ", True)  # ppind cannot say "all penny": the table's class stands
    table.observe("SPY", None)  # no ppind given: nothing learnt
    assert [table.tick_class(u) for u in ("XYZ", "AAPL", "QQQ", "SPY")] == ["penny", "non_penny", "penny_all",
                                                                            "penny_all"]
    ignoring = TickTable(OrdersSection(use_listing_ppind=False))
    ignoring.observe("XYZ", True)
    assert ignoring.tick_class("XYZ") == "non_penny"


def _broker_order(coid: str, oid: str, status: str) -> dict[str, str]:
    return {"id": oid, "client_order_id": coid, "status": status, "symbol": CALL, "side": "sell", "qty": "1",
            "filled_qty": "0", "order_class": "simple", "asset_class": "us_option", "limit_price": "1.10"}


async def _crashed_mid_fallback(tmp_path: Path) -> Journal:
    """The journal as the router leaves it: the intent, its order cancelled by the fallback, the new id journaled."""
    j = Journal.open(tmp_path / "state")
    j.start()
    intent = make_intent()
    await j.record_intent(intent, "oe-in-1")
    j.record_order(make_update("oe-in-1", "ord-1", OrderStatus.NEW))
    j.record_order(make_update("oe-in-1", "ord-1", OrderStatus.CANCELED))
    await j.record_intent(intent, "oe-in-1.r2")  # journaled before its POST, like every submit
    await j.aclose()
    return j


async def test_a_restart_adopts_the_new_order_of_a_fallback_that_reached_the_broker(tmp_path: Path) -> None:
    state = (await _crashed_mid_fallback(tmp_path)).read_state()
    broker = decode_broker([_broker_order("oe-in-1.r2", "ord-2", "new")],
                           [_broker_order("oe-in-1", "ord-1", "canceled"), _broker_order("oe-in-1.r2", "ord-2", "new")],
                           [], [])
    plan = reconcile(state, broker, ReconcilePolicy("cancel", "oe"), NOW)
    assert [(a.order_id, a.known, a.intent_id, a.structure_id) for a in plan.adopt] == [("ord-2", True, "in-1", "st-1")]
    assert not plan.cancel and not plan.abandon  # one live order, managed; nothing sent again


async def test_a_restart_sends_nothing_for_a_fallback_whose_new_order_never_left(tmp_path: Path) -> None:
    state = (await _crashed_mid_fallback(tmp_path)).read_state()
    broker = decode_broker([], [_broker_order("oe-in-1", "ord-1", "canceled")], [], [])
    plan = reconcile(state, broker, ReconcilePolicy("cancel", "oe"), NOW)
    assert not plan.adopt and not plan.cancel  # no live order at all: the intent is over, never resubmitted
    assert [a.client_order_id for a in plan.abandon] == ["oe-in-1.r2"]
    assert [a.code for a in plan.alerts] == ["intent_not_submitted"]


def test_broker_refusals_become_machine_readable_reasons() -> None:
    def reason(status: int, message: str) -> str:
        exc = venue_error(BrokerRejected(message, body={"code": status * 100000, "message": message},
                                         status=status))
        assert isinstance(exc, Rejected) and exc.message == message
        return exc.reason

    assert reason(403, "potential wash trade detected. use complex orders") == "wash_trade"
    assert reason(403, "market is closed: orders are not accepted ...") == "market_closed"
    assert reason(403, "account is restricted to closing transactions: ...") == "closing_only"
    assert reason(403, "insufficient qty available for order (requested: 1, available: 0)") == "insufficient_qty"
    assert reason(422, "invalid limit_price 3.01. sub-penny increment ...") == "broker_rejected_422"
