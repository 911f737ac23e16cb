"""What the status endpoint and the run summary report: the kernel's tallies, resources held, latency."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greeks.calendar import ny_datetime

if TYPE_CHECKING:
    from engine.service.app import Engine


def process_stats() -> dict[str, int]:
    """Resource counts the soak watches for leaks: RSS, asyncio tasks, open file descriptors and sockets."""
    rss = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fds = sockets = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            fds += 1
            with contextlib.suppress(OSError):
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return {"rss_bytes": rss, "asyncio_tasks": len(asyncio.all_tasks()), "open_fds": fds, "open_sockets": sockets}


def latency_stats(samples: collections.deque[int], last: int = 1000) -> dict[str, float]:
    """Tick-to-order latency over the last ``last`` orders (microseconds) and the count ever kept."""
    recent = list(samples)[-last:]
    if not recent:
        return {"n": 0, "p50_us": 0.0, "p99_us": 0.0}
    recent.sort()
    return {"n": len(samples), "p50_us": recent[len(recent) // 2] / 1e3,
            "p99_us": recent[min(len(recent) - 1, int(len(recent) * 0.99))] / 1e3}


def run_status(engine: Engine) -> dict[str, Any]:
    """The status endpoint's document; ``cockpit`` repeats the dashboard's newest snapshot's P&L and Greeks."""
    kernel = engine.kernel
    return {"status": engine.status_line(), "mode": engine.cfg.engine.mode, "summary": run_summary(engine),
            "trading_state": kernel.core.breakers.state.name if kernel else "STARTING",
            "positions": dict(kernel.portfolio.positions()) if kernel else {}, "process": process_stats(),
            "tick_to_order": latency_stats(kernel.tick_to_order_ns if kernel else collections.deque()),
            "records": {**kernel.orders.sizes(), **kernel.portfolio.sizes()} if kernel else {},
            "cockpit": cockpit.status_part() if (cockpit := getattr(engine, "cockpit", None)) else None}


def run_summary(engine: Engine) -> dict[str, Any]:
    """Per strategy: structures opened and closed, fills, P&L, max |delta|, gate denials by reason; then the
    router's counts, the trading state, the account, positions and what the restart reconciled."""
    kernel = engine.kernel
    started = engine.started_monotonic
    out: dict[str, Any] = {"strategies": kernel.strategy_summary() if kernel else {},
                           "event_time": _iso(engine.clock.now_ns()),
                           "wall_s": round(time.monotonic() - started, 1) if started else 0}
    if kernel is not None:
        out["router"] = dict(kernel.router.counters)
        out["surface"] = kernel.surface_summary()
    out["trading_state"] = kernel.core.breakers.state.name if kernel else "STARTING"
    if engine.broker_account is not None:
        out["account"] = {"id": engine.broker_account.account_id, "mode": engine.broker_account.mode,
                          "cash": kernel.core.account.cash if kernel else None,
                          "equity": kernel.core.account.equity if kernel else None}
    positions = kernel.portfolio.positions() if kernel else {}
    out["positions"] = {s: q for s, q in sorted(positions.items()) if abs(q) > 1e-9}
    if engine.archived_to is not None:
        out["archived_to"] = str(engine.archived_to)
    out["reconcile"] = engine.reconcile_summary
    out["alerts"] = len(engine.alerts)
    return out


def _iso(ts_ns: int) -> str:
    return ny_datetime(ts_ns).isoformat(timespec="seconds") if ts_ns else ""
