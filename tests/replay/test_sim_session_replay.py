"""A recording made from a simulator session replays to the same strategy decisions as the session made.

The engine runs in sim mode (accelerated) with ``[record] enabled``; the recorder taps the three feeds'
raw frames and notes the contracts and snapshot quotes the engine primed its book with. Replaying that
recording with the same config must approve the same intents (strategy, action, legs, quantities) in the same
order up to the first fill (after it, decisions follow fills, and the replay exchange fills on its own rules).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from domain.orders import OrderIntent
from domain.views import AccountView
from engine.kernel.events import Topic
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
    live_at: list[int] = []  # event time of each live decision

    class Watched(Engine):
        def _build_kernel(self, account: AccountView) -> TradingKernel:
            kernel = super()._build_kernel(account)
            # watch from the first decision on (the kernel starts inside start)
            def approved(intent: OrderIntent, _wall: int) -> None:
                live.append(_decision(intent))
                live_at.append(kernel.clock.now_ns())

            kernel.core.on_intent_approved = approved
            return kernel

    engine = Watched(cfg)
    await engine.start()
    live_fills: list[int] = []
    engine.bus.subscribe("test-fills", lambda fill: live_fills.append(fill.ts_event_ns), (Topic.FILLS,))
    # run until two decisions were made and a surface fit was put in force (the fit worker starts cold: on a
    # loaded machine its imports alone can outlast two decisions)
    kernel = engine.kernel
    assert kernel is not None
    for _ in range(600):
        if len(live) >= 2 and kernel.surfaces.refits >= 1:
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
    replayed_at: list[int] = []
    approved_hook = replay.core.on_intent_approved

    def replay_approved(intent: OrderIntent, wall: int) -> None:
        replayed_at.append(replay.clock.now_ns())
        if approved_hook is not None:
            approved_hook(intent, wall)

    replay.core.on_intent_approved = replay_approved
    result = await replay.run()
    replayed = [_decision(i) for i in result.approved]
    # Every decision up to the first fill of either run rests on market data alone, and must be the same; after
    # it, closes and further entries follow the fills, and the replay exchange fills on its own rules.
    first_fill = min([*live_fills, *(f.ts_event_ns for f in result.fills)], default=2**63)
    ours = [d for d, t in zip(live, live_at, strict=True) if t <= first_fill]
    theirs = [d for d, t in zip(replayed, replayed_at, strict=True) if t <= first_fill]
    assert ours, live
    # the live session stopped mid-way: either may have one more near the end
    n = min(len(ours), len(theirs))
    assert theirs[:n] == ours[:n] and n >= 1
    assert result.fills, "the replay exchange filled nothing"
    # the live surfaces came from a worker process at moments of its own: the replay applied those, fitting none
    assert replay.kernel.surfaces.refits == records.count(SURFACE) and not replay.kernel.surfaces.pending_fits()
    # backtest/live parity rests on one wiring: both runs decided through the same kernel class
    assert type(engine.kernel) is TradingKernel and type(replay.kernel) is TradingKernel
