"""Bounded memory: final orders and closed structures leave the kernel's memory, and the journal still answers
for them. Against the simulator over loopback with a real SQLite journal: many orders run to their final
state, the in-memory records stay bounded, and a late duplicate of a retired order (a stream event, a REST
read) is recognised - never booked twice - while an execution the journal lacks is still booked."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Literal

import msgspec
import pytest

from domain.orders import OrderFilled, Side
from domain.views import AccountView
from engine.alpaca.broker import AlpacaBroker, OrderRequest
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.kernel import portfolio as portfolio_module
from engine.kernel.kernel import KernelSettings, TradingKernel
from engine.kernel.orders import OrderTags
from engine.kernel.venue_types import OrderEvent
from engine.service import journal as journal_module
from engine.service.journal import Journal
from engine.sim.config import SimConfig, UnderlyingConfig
from engine.sim.server import Simulator
from tests.service.helpers import until

SIM = SimConfig(seed=11, speed=5.0, publish_interval_ms=20, option_quote_rate=2.0, rate_limit_per_min=0,
                partial_fill_probability=0.0, option_symbol_cap=40,
                underlyings=(UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, daily_expiry_sessions=3,
                                              weekly_expiry_weeks=1, monthly_expiry_months=1),))
ROUND_TRIPS = 30


def make_fill(n: int) -> OrderFilled:
    return OrderFilled(f"exec-{n}", "ord-1", "oe-1", "SPY261127C00600000", Side.BUY, 1.0, 1.25, n + 1, n + 1)


def journal_fills(journal: Journal) -> list[OrderFilled]:
    return [jf.fill for jf in journal.read_state().fills]


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows far below the number of orders run, so retirement is exercised rather than the windows."""
    monkeypatch.setattr(portfolio_module, "CLOSED_KEPT", 4)
    monkeypatch.setattr(portfolio_module, "RECENT_EXECUTIONS", 4)
    monkeypatch.setattr(journal_module, "EXECUTIONS_IN_MEMORY", 4)


async def test_retired_orders_stay_bounded_and_late_duplicates_are_not_booked_twice(
        tmp_path: Path, small_windows: None) -> None:
    sim = Simulator(SIM)
    await sim.start()
    urls = sim.urls
    assert urls is not None
    broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, option_feed="opra")
    venue = AlpacaExecution(broker)
    journal = Journal.open(tmp_path)
    journal.start()
    box: list[TradingKernel] = []
    kernel = TradingKernel(KernelSettings(), venue, publish=lambda e: box[0].dispatch(e),
                           account=AccountView(1e6, 1e6, 1e6, 1e6, 3), journal=journal, order_archive=journal,
                           settlements=False)
    box.append(kernel)
    kernel.orders.retire_after_ns = 0  # retire at the next input once final
    updates: list[OrderEvent] = []

    def on_update(update: OrderEvent) -> None:
        updates.append(update)
        kernel.on_order_event(update)

    stream = TradingStreamClient(urls.trading_stream_url, urls.key, urls.secret, on_update=on_update,
                                 publish=lambda e: None, config=FeedConfig(mute_timeout_s=None))
    task = asyncio.create_task(stream.run())
    try:
        await until(lambda: stream.connected.is_set())
        today = dt.date.fromisoformat(sim.inspect()["session"])
        listing = await venue.listed_contracts("SPY", today, today + dt.timedelta(days=10))
        symbol = sorted(c.symbol for c in listing.contracts if c.is_call)[len(listing.contracts) // 4]
        orders = kernel.orders
        for i in range(ROUND_TRIPS):
            sides: tuple[tuple[str, Literal["buy", "sell"]], ...] = (("open", "buy"), ("close", "sell"))
            for action, side in sides:
                cid = f"oe-st{i}-{action}-1"
                orders.expect(cid, OrderTags("endure", f"st{i}", f"st{i}-{action}-1"))
                await broker.submit_order(OrderRequest(qty="1", type="market", time_in_force="day", symbol=symbol,
                                                       side=side, client_order_id=cid))
                await until(lambda cid=cid: any(u.order.client_id == cid and u.order.status.is_terminal
                                                for u in updates))
        await journal.flush()
        n_fills = len(journal_fills(journal))
        assert n_fills == 2 * ROUND_TRIPS and kernel.portfolio.position(symbol) == 0.0
        # bounded: only the orders since the last retirement sweep, the newest closed structures and ids
        orders.retire_final(2**62)
        assert orders.sizes()["orders"] == 0 and orders.sizes()["expected"] == 0
        assert orders.retired == 2 * ROUND_TRIPS
        sizes = kernel.portfolio.sizes()
        assert sizes["structures"] <= 5 and sizes["executions"] <= 4
        assert kernel.portfolio.strategy_summary("endure").structures_closed == ROUND_TRIPS
        assert kernel.portfolio.strategy_summary("endure").fills == 2 * ROUND_TRIPS
        assert len(journal._executions) <= 4

        # A REST read of a retired order (a re-read after a reconnect): its cumulative quantity is already
        # counted, no reconciliation fill is invented for it.
        second = next(u for u in updates if u.order.client_id == "oe-st1-open-1")
        for out in orders.on_order(await venue.order(second.order.id), 0):
            kernel.dispatch(out)
        # A late copy of the first order's fill event: revived from the journal, its execution recognised.
        first_fill = next(u for u in updates if u.order.client_id == "oe-st0-open-1" and u.execution_id)
        kernel.on_order_event(first_fill)
        await journal.flush()
        assert orders.revived == 2 and orders.duplicates_ignored >= 1
        assert len(journal_fills(journal)) == n_fills
        assert kernel.portfolio.position(symbol) == 0.0

        # An execution of a retired order the journal lacks is booked (once), never forgotten.
        orders.retire_final(2**62)
        fresh = msgspec.structs.replace(first_fill, execution_id="late-exec-1")
        kernel.on_order_event(fresh)
        kernel.on_order_event(fresh)
        await journal.flush()
        assert orders.revived >= 3
        assert [f.execution_id for f in journal_fills(journal)].count("late-exec-1") == 1
        assert kernel.portfolio.position(symbol) == 1.0
    finally:
        stream.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        await journal.aclose()
        await broker.close()
        await sim.stop()


async def test_the_journal_recognises_an_execution_long_out_of_its_memory_window(
        tmp_path: Path, small_windows: None) -> None:
    journal = Journal.open(tmp_path)
    journal.start()
    try:
        for n in range(50):
            assert journal.record_fill(make_fill(n)) is not None
        await journal.flush()
        assert len(journal._executions) <= 4
        assert journal.record_fill(make_fill(0)) is None  # from the table, past the window
        assert journal.has_execution("exec-49") and not journal.has_execution("exec-50")
    finally:
        await journal.aclose()
    reopened = Journal.open(tmp_path)  # a new process: the filter is rebuilt from the table
    reopened.start()
    try:
        assert reopened.record_fill(make_fill(7)) is None and reopened.record_fill(make_fill(50)) is not None
    finally:
        await reopened.aclose()
