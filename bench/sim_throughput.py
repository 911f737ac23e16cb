"""How many option quote messages per second the simulator pushes to one websocket client.

The simulator runs in its own process (as ``options-engine sim`` would), the client here counts
messages from each frame's msgpack array header and fully decodes a sample of frames to check they
are valid Alpaca quotes. Baseline, measured in the same run: encoding the same quotes the obvious
way (``msgpack.packb`` of a list of dicts), to show what the record encoder buys.

    .venv/bin/python bench/sim_throughput.py [--json] [--seconds 5] [--symbols 2000] [--compression]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.sim.config import SimConfig

TARGET = 200_000


def bench_config(symbols: int) -> SimConfig:
    return SimConfig(
        seed=1,
        speed=1.0,
        tick_ms=1,
        publish_interval_ms=0,
        option_quote_rate=1e6,
        option_trade_rate=0.0,
        option_symbol_cap=max(symbols, 1),
        max_frame_messages=1000,
        rate_limit_per_min=0,
    )


def serve(symbols: int, ready: Any, stop: Any) -> None:
    from engine.sim.cli import _configure_logging
    from engine.sim.server import Simulator

    _configure_logging()

    async def main() -> None:
        sim = Simulator(bench_config(symbols))
        urls = await sim.start()
        ready.send(msgspec_builtins(urls))
        await asyncio.to_thread(stop.wait)
        ready.send(sim.state())
        await sim.stop()

    asyncio.run(main())


def msgspec_builtins(urls: Any) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(urls)
    return out


async def consume(urls: dict[str, Any], symbols: list[str], seconds: float, compression: bool) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with connect(
        urls["options_stream_url"],
        additional_headers={"Content-Type": "application/msgpack"},
        compression="deflate" if compression else None,
        max_size=1 << 20,
    ) as ws:
        await ws.recv()
        await ws.send(msgpack.packb({"action": "auth", "key": urls["key"], "secret": urls["secret"]}))
        assert msgpack.unpackb(await ws.recv())[0]["msg"] == "authenticated"
        await ws.send(msgpack.packb({"action": "subscribe", "quotes": symbols}))
        assert msgpack.unpackb(await ws.recv())[0]["T"] == "subscription"
        warm_until = time.perf_counter() + 0.5
        while time.perf_counter() < warm_until:
            await ws.recv()
        count = frames = max_frame = 0
        checked = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            head = frame[0]
            n = (
                head & 0x0F
                if head & 0xF0 == 0x90
                else int.from_bytes(frame[1:3] if head == 0xDC else frame[1:5], "big")
            )
            count += n
            frames += 1
            max_frame = max(max_frame, len(frame))
            if frames % 50 == 1:
                msgs = msgpack.unpackb(frame)
                assert len(msgs) == n and msgs[0]["T"] == "q" and isinstance(msgs[0]["t"], msgpack.Timestamp)
                assert msgs[0]["bp"] < msgs[0]["ap"]
                checked += 1
        elapsed = now - start
    return {
        "quotes": count,
        "frames": frames,
        "seconds": elapsed,
        "max_frame_bytes": max_frame,
        "checked_frames": checked,
    }


def baseline_packb_rate(n: int = 20_000) -> float:
    """Messages per second when each quote is a dict packed by msgpack (the obvious encoder)."""
    t = msgpack.Timestamp(1_763_908_200, 123_456_789)
    msgs = [
        {
            "T": "q",
            "S": f"SPY261123C00{600000 + i:06d}",
            "t": t,
            "bx": "C",
            "bp": 1.05,
            "bs": 10,
            "ax": "X",
            "ap": 1.10,
            "as": 12,
            "c": " ",
        }
        for i in range(1000)
    ]
    start = time.perf_counter()
    for _ in range(n // 1000):
        msgpack.packb(msgs)
    return n / (time.perf_counter() - start)


def record_encoder_rate(n: int = 200_000) -> float:
    from engine.sim.wire import RecordBlock, array_header, timestamp64

    block = RecordBlock([f"SPY261123C00{600000 + i:06d}".encode() for i in range(1000)], "q")
    which = np.arange(1000)
    cols = {
        "t": timestamp64(np.full(1000, 1_763_908_200_123_456_789)),
        "bx": np.full(1000, b"C", dtype="S1"),
        "bp": np.full(1000, 1.05),
        "bs": np.full(1000, 10, np.uint32),
        "ax": np.full(1000, b"X", dtype="S1"),
        "ap": np.full(1000, 1.10),
        "as": np.full(1000, 12, np.uint32),
        "c": np.full(1000, b" ", dtype="S1"),
    }
    start = time.perf_counter()
    for _ in range(n // 1000):
        array_header(1000) + block.encode(which, cols)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--compression", action="store_true", help="negotiate permessage-deflate like alpaca-py")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=serve, args=(args.symbols, child, stop), daemon=True)
    proc.start()
    try:
        if not parent.poll(120):
            raise SystemExit("simulator did not start")
        urls = parent.recv()
        from engine.sim.clock import SimClock
        from engine.sim.market import Market  # symbols as the simulator lists them

        cfg = bench_config(args.symbols)
        universe = Market(cfg, SimClock(cfg.start)).universe
        symbols = [s for s in universe.symbols][: args.symbols]
        result = asyncio.run(consume(urls, symbols, args.seconds, args.compression))
        stop.set()
        state = parent.recv() if parent.poll(30) else {}
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    quotes_per_s = result["quotes"] / result["seconds"]
    packb = baseline_packb_rate()
    records = record_encoder_rate()
    out = {
        "quotes_per_s": round(quotes_per_s),
        "target_quotes_per_s": TARGET,
        "ratio_to_target": round(quotes_per_s / TARGET, 2),
        "subscribed_symbols": args.symbols,
        "compression": args.compression,
        "frames_per_s": round(result["frames"] / result["seconds"], 1),
        "max_frame_bytes": result["max_frame_bytes"],
        "checked_frames": result["checked_frames"],
        "encoder_msgs_per_s": round(records),
        "baseline_packb_msgs_per_s": round(packb),
        "encoder_speedup_vs_packb": round(records / packb, 1),
        "server_pricer": state.get("pricer"),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>28}: {value}")
    return 0 if quotes_per_s >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
