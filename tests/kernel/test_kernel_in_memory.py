"""The trading kernel with in-memory ports: no venue adapter, no service, no simulator takes part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from in_memory_kernel import CALL, NS, T0, BuyOnceConfig, quotes, scenario
from support.memory_venue import MemoryVenue

from domain.orders import Side
from domain.views import AccountView, ChainView
from engine.kernel.clock import EventClock
from engine.kernel.kernel import KernelSettings, TradingKernel
from strategies.base import Strategy


async def test_quotes_in_an_order_out_and_its_fill_booked_through_the_ports_alone() -> None:
    run = await scenario()
    (request,) = run.venue.requests
    assert [(leg.symbol, leg.side) for leg in request.legs] == [(CALL, Side.BUY)]
    assert request.qty == 1 and request.limit == 5.10  # the router starts at the mid of the batch's 5.00 x 5.20
    assert run.book_updates >= 2  # the spot and the option frame each reached the core through the bus queue
    (fill,) = run.actor.fills
    assert (fill.symbol, fill.side, fill.qty, fill.price, fill.structure_id) == (CALL, Side.BUY, 1.0, 5.15, "bo1")
    assert run.kernel.portfolio.position(CALL) == 1.0
    assert not run.kernel.router.working
    assert run.kernel.strategy_summary()["buy_once"]["fills"] == 1


def test_a_whole_kernel_run_loads_no_venue_adapter_service_or_simulator() -> None:
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(here / "in_memory_kernel.py")], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"')))
    assert "kernel" in loaded
    assert not loaded & {"alpaca", "service", "sim", "replay", "report"}, loaded


class _Watcher(Strategy[BuyOnceConfig]):
    """Records the event time each book update is seen at, and the call's bid when its timer fires."""

    KIND: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__("watcher", BuyOnceConfig())
        self.seen_at: list[int] = []
        self.bid_at_timer: list[float] = []
        self.chain: ChainView | None = None

    def on_book(self, chain: ChainView) -> None:
        self.seen_at.append(self.ctx.now_ns)
        self.chain = chain
        if len(self.seen_at) == 1:
            self.ctx.set_timer("check", T0 + 2 * NS)

    def on_timer(self, name: str, now_ns: int) -> None:
        assert self.chain is not None
        self.bid_at_timer.append(float(self.chain.bid[self.chain.row_of(CALL)]))


def test_a_strategy_sees_a_frame_at_its_own_time_and_its_timers_see_the_frame_in_the_book() -> None:
    """The service dispatches book updates inline (in ``publish``), as here. A strategy that saw the previous
    frame's time decided one frame later than a replay of the same recording (whose strategies react after the
    clock moved): the 0DTE entry at the window's start picked strikes one apart."""
    clock = EventClock(T0)
    watcher = _Watcher()
    holder: list[TradingKernel] = []
    kernel = TradingKernel(KernelSettings(), MemoryVenue(clock), publish=lambda event: holder[0].dispatch(event),
                           account=AccountView(1e5, 1e5, 1e5, 1e5, 3), clock=clock, quote_clock=clock.now_ns,
                           settlements=False, extra_actors=[watcher])
    holder.append(kernel)
    kernel.market.book("SPY")
    kernel.market.add_contracts("SPY", [CALL], [500])
    kernel.start()
    kernel.on_stock_batch(quotes(kernel.market.stock_index, [("SPY", 604.99, 605.01)], T0 + NS), T0)
    kernel.on_option_batch(quotes(kernel.market.option_index, [(CALL, 5.00, 5.20)], T0 + 3 * NS), T0)
    assert watcher.seen_at[-1] == T0 + 3 * NS  # the frame's own time, not the one before it
    assert watcher.bid_at_timer == [5.00]  # the timer due by the frame fired with the frame in the book
