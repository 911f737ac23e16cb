"""One unit of sweep work: a trial's parameters replayed over one day, and the statistics of sets of days.

A unit is a deterministic replay (``engine.replay.driver.Replay``) of one recording under the base config with
the trial's parameters set; its result is a function of the recording, the base config and the parameters, so
its ``unit_key`` (a hash of the three) identifies it for resuming and its ``fills_hash`` is the same whoever
runs it (sequentially, in a process pool, on Ray).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.report.stats import TRADING_SECONDS_PER_YEAR, max_drawdown, sharpe


class DayResult(msgspec.Struct, frozen=True):
    """What one day did under one trial's parameters."""

    pnl_usd: float
    trades: int
    """Closed structures."""
    fills: int
    approved: int
    denials: int
    max_drawdown_usd: float
    fills_hash: str
    curve: list[float]
    """Total P&L (all strategies, USD) sampled every ``sample_every_s`` of event time."""
    wall_s: float


class Metrics(msgspec.Struct, frozen=True):
    """The objective's inputs over a set of days (the days' P&L curves joined end to end)."""

    sharpe: float | None
    pnl_usd: float
    max_drawdown_usd: float
    trades: int
    fills: int
    pnl_per_trade_usd: float | None
    days: int


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def file_digest(path: Path) -> str:
    """SHA-256 of a recording (every file of a directory of rotated ones, in name order)."""
    from engine.replay.format import recording_files

    h = hashlib.sha256()
    for f in recording_files(path):
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def unit_key(base: dict[str, Any], params: dict[str, Any], day_digest: str, sample_every_s: float) -> str:
    """Identity of one unit of work: what its result depends on, hashed."""
    text = json.dumps({"base": base, "params": params, "day": day_digest, "sample_s": sample_every_s},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_day(base: dict[str, Any], params: dict[str, Any], recording: Path, sample_every_s: float) -> DayResult:
    """Replay one recording with the trial's parameters set on the base config."""
    from engine.replay.driver import Replay
    from engine.research.spec import config_of

    cfg = config_of(base, params)
    t0 = time.perf_counter()
    replay = Replay(cfg, recording, sample_every_s=sample_every_s)
    result = asyncio.run(replay.run())
    tl = result.timeline
    curves = [[v for _, v in tl.pnl[sid]] for sid in tl.strategies]
    curve = [round(sum(vals), 2) for vals in zip(*curves, strict=True)] if curves else []
    strategies = result.summary["strategies"].values()
    return DayResult(
        pnl_usd=round(sum(s["pnl"] for s in strategies), 2),
        trades=sum(s["structures_closed"] for s in strategies), fills=len(result.fills),
        approved=len(result.approved), denials=len(result.denials), max_drawdown_usd=round(max_drawdown(curve), 2),
        fills_hash=result.fills_hash, curve=curve, wall_s=round(time.perf_counter() - t0, 4))


def metrics(days: Sequence[DayResult], sample_every_s: float) -> Metrics:
    """Sharpe, P&L, drawdown and trade counts over ``days``, each day's curve starting where the last ended."""
    joined: list[float] = []
    offset = 0.0
    for d in days:
        joined.extend(v + offset for v in (d.curve or [0.0]))
        offset = joined[-1]
    trades = sum(d.trades for d in days)
    pnl = sum(d.pnl_usd for d in days)
    s = sharpe(joined, TRADING_SECONDS_PER_YEAR / sample_every_s)
    return Metrics(sharpe=None if s is None or not math.isfinite(s) else round(s, 4), pnl_usd=round(pnl, 2),
                   max_drawdown_usd=round(max_drawdown(joined), 2) if joined else 0.0, trades=trades,
                   fills=sum(d.fills for d in days), pnl_per_trade_usd=round(pnl / trades, 2) if trades else None,
                   days=len(days))
