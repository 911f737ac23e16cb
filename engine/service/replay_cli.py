"""``options-engine replay FILE``: a recording through the engine against the in-process exchange.

Prints the run summary and, last, ``fills_hash: <hex>`` (the same file and config give the same hash).
``--speed max`` (default) runs as fast as it can; ``1x``/``Nx`` paces the frames at N times event time.
``--report out.html`` writes the self-contained session report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from engine.service.config import ConfigError, EngineConfig, decode_config, load_config, parse_config_text
from engine.service.logging import configure_logging


def parse_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible); ``1x``, ``60x`` or ``2.5`` -> that multiple of event time."""
    t = text.strip().lower()
    if t == "max":
        return None
    try:
        value = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be 'max' or like '1x', '60x' (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be positive (got {text!r})")
    return value


def for_recording(cfg: EngineConfig, recording: Path, underlyings: str | None) -> EngineConfig:
    """``cfg`` mapped onto the recording's underlyings and quote cadence (``--underlyings``, else its manifest)."""
    from engine.replay.manifest import day_config

    data = cfg.to_builtins()
    data["strategies"] = {k: v for k, v in data["strategies"].items() if v is not None}
    wanted = [u.strip().upper() for u in underlyings.split(",") if u.strip()] if underlyings else None
    adapted = day_config(data, recording, wanted)
    if adapted is data:
        return cfg
    new, issues = decode_config(adapted)
    if new is None:
        raise ConfigError(issues)
    return new


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a recording (.oerec) or a directory of rotated recordings")
    parser.add_argument("-c", "--config", default=None, help="config file (default: engine.toml if present)")
    parser.add_argument("--speed", type=parse_speed, default=None, metavar="max|1x|Nx",
                        help="pace: max (default) or N times event time")
    parser.add_argument("--report", default=None, metavar="OUT.html", help="write the session report here")
    parser.add_argument("--summary-json", default=None, metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--underlyings", default=None, metavar="SYM[,SYM]",
                        help="trade these underlyings (default: the recording's manifest, else the config's)")
    parser.add_argument("--no-manifest", action="store_true",
                        help="replay with the config exactly as written (ignore the recording's manifest)")


def main(args: argparse.Namespace) -> int:
    from engine.replay.driver import Replay
    from engine.replay.format import RecordingError

    try:
        if args.config is not None:
            cfg = load_config(args.config)
        elif Path("engine.toml").exists():
            cfg = load_config("engine.toml")
        else:
            cfg = parse_config_text("")
    except ConfigError as exc:
        print(f"options-engine: {exc}", file=sys.stderr)
        return 2
    if not args.no_manifest:
        try:
            cfg = for_recording(cfg, Path(args.file), args.underlyings)
        except ConfigError as exc:
            print(f"options-engine: {exc}", file=sys.stderr)
            return 2
    configure_logging("warning", stream=sys.stderr)  # stdout: the summary and the fills_hash line
    try:
        replay = Replay(cfg, args.file, speed=args.speed)
        result = asyncio.run(replay.run())
    except RecordingError as exc:
        print(f"options-engine replay: {exc}", file=sys.stderr)
        return 2
    summary = result.summary
    print(f"replayed {result.frames} frames, {result.messages} messages in {result.wall_s:.2f} s "
          f"({result.msgs_per_s:,.0f} msgs/s); {len(result.approved)} intents approved, {len(result.fills)} fills")
    for sid, s in summary["strategies"].items():
        denials = ", ".join(f"{k}={v}" for k, v in sorted(s["gate_denials"].items())) or "none"
        print(f"  {sid:14s} opened {s['structures_opened']:3d}  closed {s['structures_closed']:3d}  "
              f"fills {s['fills']:4d}  pnl {s['pnl']:10.2f}  denials: {denials}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, sort_keys=True))
    if args.report:
        from engine.report.html import render_report

        data = replay.session_data(title=f"Replay of {Path(args.file).name}")
        Path(args.report).write_text(render_report(data))
        print(f"report: {args.report}")
    print(f"fills_hash: {result.fills_hash}")
    return 0
