"""Restart reconciliation hands the fresh order state machine the journal's fills of every recent order, not only
of the orders it adopts.

Found by the CI-sized fault matrix under load (fill racing a cancel): the engine journaled a hedge's fill from
the stream, stopped, and after the restart a re-read of the broker's orders showed that filled order again; the
new state machine had no record of it and booked its whole filled quantity a second time (journal 22 shares,
broker 11)."""

from __future__ import annotations

import msgspec
from support.memory_venue import MemoryVenue

from domain.orders import OrderStatus, Side
from domain.views import AccountView
from engine.kernel.clock import EventClock
from engine.kernel.kernel import KernelSettings, TradingKernel
from engine.kernel.ports import ExecutionClient
from engine.kernel.venue_types import VenueOrder
from engine.service.journal import Journal
from engine.service.reconcile import ReconcilePolicy
from engine.service.restart import RestartReconciliation
from tests.service.helpers import make_fill, make_update

NS = 1_000_000_000
T0 = 1_795_446_000 * NS


async def test_an_order_filled_before_the_restart_and_read_again_after_it_is_not_booked_twice(tmp_path) -> None:
    journal = Journal.open(tmp_path)
    journal.start()
    fill = make_fill(1, symbol="SPY", side=Side.BUY, qty=11.0, price=586.07, coid="oe-hedge-28", order_id="ord-28")
    journal.record_order(make_update("oe-hedge-28", "ord-28", OrderStatus.FILLED, filled=11.0, qty=11.0))
    assert journal.record_fill(fill) is not None
    await journal.aclose()

    clock = EventClock(T0)
    venue = MemoryVenue(clock)
    filled = VenueOrder(id="ord-28", client_id="oe-hedge-28", symbol="SPY", side=Side.BUY, qty=11.0,
                        filled_qty=11.0, avg_price=586.07, status=OrderStatus.FILLED)
    venue.orders_by_id["ord-28"] = filled
    port: ExecutionClient = venue
    kernel = TradingKernel(KernelSettings(), port, publish=lambda e: None,
                           account=AccountView(1e5, 1e5, 1e5, 1e5, 3), clock=clock, settlements=False)
    journal = Journal.open(tmp_path)
    journal.start()
    try:
        restart = RestartReconciliation(kernel, journal, port, ReconcilePolicy(), publisher=None,
                                        alert=lambda a: None)
        await restart.run()
        assert restart.summary["adopted"] == 0 and restart.summary["imported_fills"] == 0
        # later, the order is read again (a re-read of working or open orders, a late stream event)
        again = kernel.orders.on_order(msgspec.structs.replace(filled, updated_ns=T0 + NS), T0 + NS)
        assert [e for e in again if type(e).__name__ == "OrderFilled"] == []
        assert kernel.portfolio.position("SPY") == 11.0  # from the journal, once
    finally:
        await journal.aclose()
