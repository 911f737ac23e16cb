"""The per-frame path keeps nothing: frames through the whole kernel (book, bus, core, portfolio, breakers, the
surface hook, an actor) leave no new object behind for the collector and no live block after a full collection."""

from __future__ import annotations

import gc
import sys

from in_memory_kernel import CALL, NS, T0, Run

from engine.kernel.market_data import KIND_QUOTE, BatchColumns, DataBatch
from greeks.occ import format_occ

FRAMES = 1_000
ROWS = 40


def _contracts() -> list[str]:
    import datetime as dt

    return [format_occ("SPY", dt.date(2026, 12, 31), c, k) for c in (True, False)
            for k in range(590, 590 + ROWS // 2)]


def _drain(run: Run) -> None:
    while run.events:
        run.kernel.dispatch(run.events.popleft())


def test_frames_through_the_kernel_keep_no_memory() -> None:
    run = Run()
    kernel = run.kernel
    syms = [*_contracts(), CALL]
    kernel.market.book("SPY")
    kernel.market.add_contracts("SPY", syms, [500] * len(syms))
    kernel.start()
    stock = BatchColumns(1)
    stock.kind[0], stock.gid[0], stock.ts[0] = KIND_QUOTE, kernel.market.stock_index.id_of("SPY"), T0
    stock.bid[0], stock.ask[0] = 604.99, 605.01
    kernel.on_stock_batch(DataBatch(stock, 1, T0), T0)
    cols = BatchColumns(len(syms))  # reused frame to frame, as the feed's decoder reuses its columns
    gids = [kernel.market.option_index.id_of(s) for s in syms]
    run.actor.sent = True  # the actor looks at every book update but sends nothing

    def frame(i: int) -> None:
        ts = T0 + NS + i * 1_000_000
        for j, g in enumerate(gids):
            cols.kind[j], cols.gid[j], cols.ts[j] = KIND_QUOTE, g, ts
            cols.bid[j], cols.ask[j] = 5.00 + 0.01 * (i % 7), 5.20 + 0.01 * (i % 5)
            cols.bid_size[j] = cols.ask_size[j] = 10
        kernel.on_option_batch(DataBatch(cols, len(gids), ts), ts)
        _drain(run)

    for i in range(500):  # warm-up: JIT, first marks, caches filled once
        frame(i)
    gc.collect()
    gc.disable()
    try:
        tracked0 = {id(o) for o in gc.get_objects()}
        blocks0 = sys.getallocatedblocks()
        for i in range(500, 500 + FRAMES):
            frame(i)
        kept: list[object] = []
        for o in gc.get_objects():
            if id(o) not in tracked0 and o is not tracked0 and o is not kept:
                kept.append(o)
        del tracked0
        gc.collect()  # also empties CPython's free lists, which hold a few recycled blocks between frames
        blocks1 = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert kernel.market.books["SPY"].seq >= FRAMES  # every frame reached the book and the core
    assert not kept, f"{len(kept)} objects kept over {FRAMES} frames, e.g. {[type(o).__name__ for o in kept[:5]]}"
    assert blocks1 - blocks0 < FRAMES // 100, f"{blocks1 - blocks0} blocks kept over {FRAMES} frames"
