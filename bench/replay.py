"""Replay speed: messages per second through the whole engine with every strategy on.

The recording: the real GOOG 2015-12-24 chain (2,192 contracts, Lean minute bars) imported with each bar
sent as its open/high/low/close path (4 quotes per bar): about 1.1M option messages plus the
underlying. It is replayed at ``--speed max`` with gamma_scalper, iron_condor and zero_dte tuned to GOOG
(the test config of tests/replay). Reported: ``replay_msgs_per_s`` (option + stock messages decoded,
booked, repriced and reacted to, per wall second, excluding start-up), and as a baseline measured in
the same run, the protocol decode alone over the same frames (``decode_msgs_per_s``), with their ratio.

    .venv/bin/python bench/replay.py [--json] [--keep FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import print_result  # noqa: E402

from engine.alpaca.feeds.options.protocol import OptionProtocol  # noqa: E402
from engine.kernel.symbols import SymbolIndex  # noqa: E402
from engine.replay.driver import Replay  # noqa: E402
from engine.replay.format import META, OPTIONS, read_records  # noqa: E402
from engine.replay.importers.lean import import_lean_day  # noqa: E402
from engine.service.config import RecordSection, parse_config_text  # noqa: E402
from engine.service.logging import configure_logging  # noqa: E402
from engine.service.record import Recorder  # noqa: E402

TIDY = REPO.parent / "shared" / "data" / "lean_minute_options" / "tidy"
TARGET = 300_000


def _config(state: Path) -> str:
    sys.path.insert(0, str(REPO / "tests" / "replay"))
    from conftest import GOOG_CONFIG  # the acceptance test's GOOG tuning

    return str(GOOG_CONFIG).format(state=state)


def decode_only(path: Path) -> tuple[int, float]:
    """The baseline: the options protocol decoding the same frames into columns, nothing else."""
    index = SymbolIndex()
    records = list(read_records(path))
    for stream, _, frame in records:
        if stream == META:
            meta = json.loads(frame)
            for s in meta.get("symbols", []):
                index.add(s)
    proto = OptionProtocol("", "", index)
    frames = [f for s, _, f in records if s == OPTIONS]
    t0 = time.perf_counter()
    n = 0
    for f in frames:
        for ev in proto.receive(f):
            n += getattr(ev, "n", 0)
    return n, time.perf_counter() - t0


def recorder_tap_ns(directory: Path, frames: list[bytes]) -> float:
    """What the event loop pays per frame with recording on: the tap (buffer append under a lock)."""
    rec = Recorder(directory, RecordSection(enabled=True, flush_interval_s=0.2))
    rec.start()
    tap = rec.tap(OPTIONS)
    t0 = time.perf_counter_ns()
    for f in frames:
        tap(f)
    per = (time.perf_counter_ns() - t0) / len(frames)
    rec.close()
    return per


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", default=None, help="keep the generated recording here")
    args = ap.parse_args()
    configure_logging("error", stream=sys.stderr)  # stdout carries only the figures
    if not TIDY.exists():
        print(f"bench/replay.py: the Lean data is missing at {TIDY}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(args.keep) if args.keep else Path(tmp) / "goog_ohlc.oerec"
        imported = import_lean_day(TIDY, "goog", "20151224", rec, ohlc_path=True)
        cfg = parse_config_text(_config(Path(tmp) / "state"))
        replay = Replay(cfg, rec)
        result = asyncio.run(replay.run())
        n_dec, s_dec = decode_only(rec)
        frames = [f for s, _, f in read_records(rec) if s == OPTIONS]
        tap_ns = recorder_tap_ns(Path(tmp) / "rec", frames)
    out = {
        "recording_messages": imported["option_messages"] + imported["stock_messages"],
        "recording_bytes": imported["bytes"],
        "messages": result.messages, "frames": result.frames, "wall_s": round(result.wall_s, 3),
        "replay_msgs_per_s": round(result.msgs_per_s),
        "decode_msgs_per_s": round(n_dec / s_dec),
        "replay_vs_decode_ratio": round(result.msgs_per_s / (n_dec / s_dec), 3),
        "record_tap_ns_per_frame": round(tap_ns),
        "record_tap_ns_per_msg": round(tap_ns * len(frames) / max(imported["option_messages"], 1), 1),
        "intents_approved": len(result.approved), "fills": len(result.fills), "fills_hash": result.fills_hash,
        "target_msgs_per_s": TARGET, "meets_target": result.msgs_per_s >= TARGET,
    }
    return print_result(out, args.json, width=24, indent=2)


if __name__ == "__main__":
    raise SystemExit(main())
