"""Restart reads only what changed since the journal's broker checkpoint. Against the simulator over loopback
with a real SQLite journal: a first start reads the broker whole and stores a checkpoint; the engine trades
(the journal books every fill off the stream) and moves the checkpoint on; an order fills while the engine is
down and a resting order from before the checkpoint is cancelled; the restart asks for orders and FILL activities
``after`` the checkpoint only (and for the resting order by id), imports exactly the fill it lacks, journals the
resting order's end, and rebuilds a portfolio equal to the broker's positions."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Literal

from domain.orders import IntentAction, Leg, OrderIntent, OrderStatus, Side
from domain.views import AccountView
from engine.alpaca.broker import AlpacaBroker, OrderRequest
from engine.alpaca.execution import AlpacaExecution
from engine.alpaca.feeds.connection import FeedConfig
from engine.alpaca.feeds.trading.client import TradingStreamClient
from engine.alpaca.feeds.trading.models import rfc3339_to_ns
from engine.kernel.alerts import Alert
from engine.kernel.kernel import KernelSettings, TradingKernel
from engine.kernel.orders import OrderTags
from engine.kernel.venue_types import OrderEvent
from engine.service.journal import Journal
from engine.service.reconcile import ReconcilePolicy
from engine.service.restart import CHECKPOINT_OVERLAP_NS, RestartReconciliation
from engine.sim.config import SimConfig, UnderlyingConfig
from engine.sim.server import Simulator
from tests.service.helpers import until

SIM = SimConfig(seed=12, speed=50.0, publish_interval_ms=20, option_quote_rate=2.0, rate_limit_per_min=0,
                partial_fill_probability=0.0, option_symbol_cap=40,
                underlyings=(UnderlyingConfig(symbol="SPY", spot=600.0, atm_vol=0.16, daily_expiry_sessions=3,
                                              weekly_expiry_weeks=1, monthly_expiry_months=1),))
ROUND_TRIPS = 6


def kernel_for(venue: AlpacaExecution, journal: Journal) -> TradingKernel:
    box: list[TradingKernel] = []
    kernel = TradingKernel(KernelSettings(), venue, publish=lambda e: box[0].dispatch(e),
                           account=AccountView(1e6, 1e6, 1e6, 1e6, 3), journal=journal, order_archive=journal,
                           settlements=False)
    box.append(kernel)
    return kernel


async def restart(venue: AlpacaExecution, journal: Journal,
                  alerts: list[Alert] | None = None) -> tuple[TradingKernel, RestartReconciliation]:
    kernel = kernel_for(venue, journal)
    run = RestartReconciliation(kernel, journal, venue, ReconcilePolicy(), publisher=None,
                                alert=(alerts if alerts is not None else []).append)
    await run.run()
    await journal.flush()
    return kernel, run


def reads(sim: Simulator, path: str) -> list[dict[str, str]]:
    return [q for method, p, q in sim.rest_log if method == "GET" and p == path]


async def test_restart_reads_the_broker_from_the_checkpoint_and_rebuilds_the_portfolio_exactly(
        tmp_path: Path) -> None:
    sim = Simulator(SIM)
    await sim.start()
    urls = sim.urls
    assert urls is not None
    broker = AlpacaBroker(urls.trading_url, urls.data_url, urls.key, urls.secret, option_feed="opra")
    venue = AlpacaExecution(broker)
    journal = Journal.open(tmp_path)
    journal.start()
    try:
        # first start: no checkpoint, the broker is read whole
        kernel, first = await restart(venue, journal)
        assert first.window_after_ns is None and first.full_activity_read
        assert all("after" not in q for q in reads(sim, "/v2/account/activities"))

        # the engine trades; the journal books every fill off the order stream
        updates: list[OrderEvent] = []

        def on_update(update: OrderEvent) -> None:
            updates.append(update)
            kernel.on_order_event(update)

        stream = TradingStreamClient(urls.trading_stream_url, urls.key, urls.secret, on_update=on_update,
                                     publish=lambda e: None, config=FeedConfig(mute_timeout_s=None))
        task = asyncio.create_task(stream.run())
        await until(lambda: stream.connected.is_set())
        today = dt.date.fromisoformat(sim.inspect()["session"])
        listing = await venue.listed_contracts("SPY", today, today + dt.timedelta(days=10))
        symbol = sorted(c.symbol for c in listing.contracts if c.is_call)[len(listing.contracts) // 4]
        sides: tuple[tuple[str, Literal["buy", "sell"]], ...] = (("open", "buy"), ("close", "sell"))
        for i in range(ROUND_TRIPS):
            for action, side in sides:
                cid = f"oe-st{i}-{action}-1"
                kernel.orders.expect(cid, OrderTags("endure", f"st{i}", f"st{i}-{action}-1"))
                await broker.submit_order(OrderRequest(qty="1", type="market", time_in_force="day", symbol=symbol,
                                                       side=side, client_order_id=cid))
                await until(lambda cid=cid: any(u.order.client_id == cid and u.order.status.is_terminal
                                                for u in updates))
        # a resting order, working in the journal, that the broker cancels while the engine is down
        kernel.orders.expect("oe-rest-open-1", OrderTags("endure", "rest", "rest-open-1"))
        resting = await broker.submit_order(OrderRequest(qty="1", type="limit", limit_price="0.05",
                                                         time_in_force="day", symbol=symbol, side="buy",
                                                         client_order_id="oe-rest-open-1"))
        await until(lambda: any(u.order.client_id == "oe-rest-open-1" for u in updates))
        sim.advance(3600.0)  # the engine runs on: an hour later its trades are behind the checkpoint
        first.advance_checkpoint(sim.now_ns)  # as the running engine does off its order and fill events
        await journal.flush()
        stream.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        checkpoint = journal.broker_checkpoint()
        assert checkpoint is not None

        # down: an intent was journaled and its order fills while the engine is away
        intent = OrderIntent(intent_id="late-open-1", strategy_id="endure", structure_id="late", underlying="SPY",
                             action=IntentAction.OPEN, legs=(Leg(symbol, Side.BUY),), qty=2,
                             ts_event_ns=time.time_ns())
        await journal.record_intent(intent, "oe-late-open-1")
        await journal.aclose()
        await broker.cancel_order(resting.id)
        sim.advance(1800.0)  # half an hour of venue time passes: the checkpoint's overlap is behind the late order
        await broker.submit_order(OrderRequest(qty="2", type="market", time_in_force="day", symbol=symbol,
                                               side="buy", client_order_id="oe-late-open-1"))
        await until(lambda: sim.inspect()["positions"].get(symbol) in (2, "2", 2.0))
        activities_total = len(await venue.executions())
        sim.rest_log.clear()

        journal = Journal.open(tmp_path)
        journal.start()
        alerts: list[Alert] = []
        kernel, second = await restart(venue, journal, alerts)
        window = checkpoint.ts_ns - CHECKPOINT_OVERLAP_NS
        assert second.window_after_ns == window and not second.full_activity_read
        activity_reads = reads(sim, "/v2/account/activities")
        assert activity_reads and all(rfc3339_to_ns(q["after"]) == window for q in activity_reads)
        assert [rfc3339_to_ns(q["after"]) for q in reads(sim, "/v2/orders") if q.get("status") == "all"] == [window]
        assert second.summary["activities_read"] == 1 < activities_total
        assert second.summary["imported_fills"] == 1
        assert kernel.portfolio.positions() == {symbol: 2.0}
        assert {s: float(q) for s, q in sim.inspect()["positions"].items() if float(q)} == {symbol: 2.0}
        state = journal.read_state()
        assert len(state.fills) == 2 * ROUND_TRIPS + 1
        # the resting order, submitted before the window, was read on its own: its end is journaled
        assert state.orders["oe-rest-open-1"].status is OrderStatus.CANCELED
        assert not [a for a in alerts if a.code == "journal_order_not_at_broker"]
        assert journal.broker_checkpoint() is not None and journal.broker_checkpoint().ts_ns > checkpoint.ts_ns  # type: ignore[union-attr]
    finally:
        await journal.aclose()
        await broker.close()
        await sim.stop()
