"""``--speed``: parsing, and a paced replay that takes event time / N of wall time."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pytest

from engine.replay.driver import Replay
from engine.replay.importers.frames import QuoteFrameWriter
from engine.service.config import parse_config_text
from engine.service.replay_cli import parse_speed

T0 = 1_795_446_000_000_000_000  # 2026-11-23 14:40 UTC, a Monday session


def test_speed_is_max_or_a_positive_multiple() -> None:
    assert parse_speed("max") is None
    assert parse_speed("1x") == 1.0
    assert parse_speed("60x") == 60.0
    assert parse_speed("2.5") == 2.5
    for bad in ("0x", "-1x", "fast", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_speed(bad)


def _small_recording(path: Path, span_s: float, steps: int) -> None:
    w = QuoteFrameWriter(path, "test")
    w.contracts(T0, "SPY", ["SPY261231C00600000", "SPY261231P00600000"])
    for k in range(steps):
        ts = T0 + int(k * span_s / (steps - 1) * 1e9)
        w.stock_quote(ts, "SPY", 600.0 + 0.01 * k, 600.02 + 0.01 * k)
        w.option_quotes(ts, np.array([0, 1]), np.array([10.0, 9.0]) + 0.01 * k, np.array([10.2, 9.2]) + 0.01 * k,
                        np.array([5, 5]), np.array([5, 5]))
    w.close()


async def test_a_paced_replay_follows_event_time(tmp_path: Path) -> None:
    rec = tmp_path / "small.oerec"
    _small_recording(rec, span_s=2.0, steps=11)
    cfg = parse_config_text("[engine]\nmode = \"paper\"\n")
    t0 = time.monotonic()
    paced = await Replay(cfg, rec, speed=4.0).run()  # 2 s of event time at 4x: about 0.5 s
    elapsed = time.monotonic() - t0
    assert paced.messages == 11 * 3
    assert 0.45 <= elapsed < 3.0
    t0 = time.monotonic()
    await Replay(cfg, rec).run()
    assert time.monotonic() - t0 < elapsed
