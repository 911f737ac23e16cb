"""The trading kernel with in-memory ports: no venue adapter, no service, no simulator takes part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from in_memory_kernel import CALL, scenario

from domain.orders import Side


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
