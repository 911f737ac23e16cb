"""The built-in simulator for ``mode = "sim"``: started on loopback, its endpoints for the Alpaca venue (it speaks
Alpaca's protocol); in paper/live the venue connects where its own config says (``engine.service.venues``).

The simulator continues the account it keeps under ``<state_dir>/sim``; ``--fresh`` first moves the journal
and that account aside (never deleted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from engine.alpaca.endpoints import Endpoints
from engine.service.config import EngineConfig
from engine.service.journal import journal_files

__all__ = ["SIM_STATE_DIR", "Endpoints", "StartupError", "archive_for_fresh_start", "start_simulator"]

log = structlog.get_logger(__name__)

SIM_STATE_DIR = "sim"
"""Where, under ``engine.state_dir``, sim mode keeps the simulated account."""


class StartupError(Exception):
    """The engine cannot start as configured (the message says why and what to do)."""


async def start_simulator(cfg: EngineConfig, state_dir: Path) -> tuple[Any, Endpoints]:
    """Start the built-in simulator on loopback (continuing its saved account); it and its endpoints."""
    from engine.sim.server import SimError, Simulator

    try:
        sim = Simulator(cfg.sim, state_dir=state_dir / SIM_STATE_DIR)
    except SimError as exc:
        raise StartupError(str(exc)) from exc
    urls = await sim.start()
    return sim, Endpoints(urls.trading_url, urls.data_url, urls.options_stream_url, urls.stocks_stream_url,
                          urls.trading_stream_url, urls.key, urls.secret)


def archive_for_fresh_start(cfg: EngineConfig, state_dir: Path) -> Path | None:
    """``--fresh``: move the journal and the simulator's saved account aside and say where (None: nothing)."""
    if cfg.engine.mode != "sim":
        raise StartupError(f"--fresh starts a new simulated account; in {cfg.engine.mode} mode the account "
                           "is Alpaca's (point engine.state_dir elsewhere for a new journal)")
    from engine.sim.state import StateError
    from engine.sim.store import archive, archive_dir_name, unused

    into = archive_dir_name(state_dir)
    try:
        with unused(state_dir / SIM_STATE_DIR):
            moved = archive([*journal_files(state_dir), state_dir / SIM_STATE_DIR], into)
    except StateError as exc:
        raise StartupError(f"cannot archive for --fresh: {exc}") from exc
    if moved:
        log.info("state_archived", archived_to=str(into), files=[p.name for p in moved])
        return into
    log.info("fresh_start", state_dir=str(state_dir), archived_to=None)
    return None
