"""The garbage collector for a long-running engine: start-up objects frozen, young collections made rarer.

Start-up objects (modules, Numba, the book) leave the collector's view: a full collection over them stopped the
loop for ~0.3 s now and then; what the running engine allocates is still collected. The running engine keeps
few of the objects it makes, so collections at ten times the interpreter's young threshold cost less in total
(BENCHMARKS.md, "Latency (tick to order)", GC).
"""

from __future__ import annotations

import gc

GC_THRESHOLD = (7_000, 20, 20)
"""The collector's thresholds once READY (the interpreter's are 700, 10, 10)."""


def settle_for_running() -> tuple[int, int, int]:
    """Collect, freeze what start-up made, set ``GC_THRESHOLD``; return the thresholds it replaced."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    return before


def restore_after_run(threshold: tuple[int, int, int] | None) -> None:
    """Undo ``settle_for_running`` (the process may go on: tests, embedding)."""
    gc.unfreeze()
    if threshold is not None:
        gc.set_threshold(*threshold)
