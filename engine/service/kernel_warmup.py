"""The compiled kernels loaded before READY (``greeks.kernel_cache``), in a thread while the start waits on I/O.

Without it the first frame, the first gate check and the first surface put in force each load their kernels
from Numba's cache mid-session (milliseconds each, and a step in the process's memory after the warm-up).
"""

from __future__ import annotations

import asyncio

import structlog

from greeks.kernel_cache import KernelLoad, load_cached_kernels

log = structlog.get_logger("engine.service.kernel_warmup")

PACKAGES = ("greeks", "engine", "risk", "strategies")
"""Where the engine's kernels live (in sim mode ``engine.sim``'s too)."""


async def load_kernels() -> KernelLoad:
    """Load every cached overload of the kernels of ``PACKAGES`` in a worker thread; log what it did."""
    result = await asyncio.to_thread(load_cached_kernels, PACKAGES)
    log.info("kernels_loaded", kernels=result.kernels, overloads=result.overloads, ms=round(result.seconds * 1e3))
    if result.skipped:
        log.warning("kernels_not_loaded", count=len(result.skipped), first=result.skipped[:3])
    return result
