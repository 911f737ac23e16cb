"""A recording made from a simulator session replays to the same strategy decisions as the session made.

The engine runs in sim mode (accelerated) with ``[record] enabled``; the recorder taps the three feeds'
raw frames and notes the contracts and snapshot quotes the engine primed its book with. Replaying that
recording with the same config must approve the same intents (ids, legs, quantities) in the same order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from domain.orders import OrderIntent
from domain.views import AccountView
from engine.kernel.kernel import TradingKernel
from engine.replay.driver import Replay
from engine.replay.format import META, OPTIONS, STOCKS, SURFACE, TRADING, read_records, recording_files
from engine.service.app import Engine
from engine.service.config import parse_config_text

pytestmark = pytest.mark.timeout(180)

CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0

[record]
enabled = true
flush_interval_s = 0.2

[sim]
speed = 300.0
start = "2026-11-23T09:58:00"
option_quote_rate = 0.2
seed = 11

[strategies.iron_condor]
underlyings = ["SPY"]
take_profit_pct = 0.05
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 30.0, walk_step_fraction = 0.5, timeout_s = 600.0 }}

[strategies.zero_dte]
underlyings = ["SPY"]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
"""


def _decision(intent: OrderIntent) -> tuple[object, ...]:
    """What was decided: strategy, action, quantity and legs. (The intent id also carries the event second of
    the decision, which moves with how the live bus happened to conflate book updates; see docs/replay.md.)"""
    action = "open" if "-open-" in intent.intent_id else "close" if "-close-" in intent.intent_id else "other"
    legs = tuple((leg.symbol, leg.side.value, leg.ratio) for leg in intent.legs)
    return (intent.strategy_id, action, intent.qty, legs)


async def test_recording_of_a_sim_session_replays_to_the_same_decisions(tmp_path: Path) -> None:
    cfg = parse_config_text(CONFIG.format(state=tmp_path / "state"))
    live: list[tuple[object, ...]] = []

    class Watched(Engine):
        def _build_kernel(self, account: AccountView) -> TradingKernel:
            kernel = super()._build_kernel(account)
            # watch from the first decision on (the kernel starts inside start)
            kernel.core.on_intent_approved = lambda intent, _wall: live.append(_decision(intent))
            return kernel

    engine = Watched(cfg)
    await engine.start()
    # run until two decisions were made (event time, not wall time: a cold start may take a while)
    for _ in range(600):
        if len(live) >= 2:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # let the orders of those decisions reach the tape
    engine.request_stop()
    await engine.run_started()
    assert live, "the live session approved no intent: nothing to compare"

    rec_dir = tmp_path / "state" / "recordings"
    files = recording_files(rec_dir)
    records = [s for f in files for s, _, _ in read_records(f)]
    assert {META, OPTIONS, STOCKS, TRADING, SURFACE} <= set(records)

    replay = Replay(cfg, rec_dir)
    result = await replay.run()
    replayed = [_decision(i) for i in result.approved]
    # the live session stopped mid-way: compare what both decided (either may have one more near the end)
    n = min(len(live), len(replayed))
    assert n >= 1
    assert replayed[:n] == live[:n]
    assert result.fills, "the replay exchange filled nothing"
    # the live surfaces came from a worker process at moments of its own: the replay applied those, fitting none
    assert replay.kernel.surfaces.refits == records.count(SURFACE) and not replay.kernel.surfaces.pending_fits()
    # backtest/live parity rests on one wiring: both runs decided through the same kernel class
    assert type(engine.kernel) is TradingKernel and type(replay.kernel) is TradingKernel
