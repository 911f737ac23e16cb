"""``options-engine run``: the engine's main job (in sim mode, trading against the built-in simulator)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from engine.service.config import ConfigError, load_config
from engine.service.logging import configure_logging
from engine.service.secrets import SecretError, require_live_confirmation, secret_values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="engine.toml", help="config file (default: engine.toml)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="stop after S seconds of wall time and print the summary")
    parser.add_argument("--summary-json", default=None, metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--no-table", action="store_true", help="no live table even on a terminal")
    parser.add_argument("--fresh", action="store_true",
                        help="sim mode: start a new simulated account; the journal and the simulator's saved "
                             "account are moved to <state_dir>/archive-<time> (never deleted)")


def main(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        cfg = load_config(path)
        require_live_confirmation(cfg)
    except (ConfigError, SecretError) as exc:
        print(f"options-engine: {exc}", file=sys.stderr)
        return 2
    if args.fresh and cfg.engine.mode != "sim":
        print(f"options-engine: --fresh starts a new simulated account and applies to sim mode only (mode is "
              f"{cfg.engine.mode!r}; for a new journal point engine.state_dir elsewhere)", file=sys.stderr)
        return 2
    table = sys.stdout.isatty() and not args.no_table
    # On a terminal the live table owns stdout; the JSON log goes to stderr.
    configure_logging(cfg.engine.log_level if not table else "warning", secret_values(cfg),
                      stream=sys.stderr if table else None)
    from engine.service.app import Engine
    from engine.service.live_table import render_table
    from engine.service.malloc_tuning import pin_malloc_thresholds
    from engine.service.venue import StartupError

    pin_malloc_thresholds()

    def on_tick(engine: Engine) -> None:
        if table:
            sys.stdout.write("\x1b[H\x1b[2J" + render_table(engine))
            sys.stdout.flush()

    engine = Engine(cfg, path, duration_s=args.duration, on_tick=on_tick, fresh=args.fresh)
    try:
        summary = asyncio.run(engine.run())
    except StartupError as exc:
        print(f"options-engine: cannot start: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    if summary.get("archived_to"):
        print(f"the previous journal and simulated account were archived to {summary['archived_to']}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text summary of a run: one block per strategy."""
    lines = [f"run summary (event time {summary.get('event_time', '')}, wall {summary.get('wall_s', 0)} s, "
             f"trading state {summary.get('trading_state', '')})"]
    for sid, s in summary.get("strategies", {}).items():
        denials = ", ".join(f"{k}={v}" for k, v in sorted(s["gate_denials"].items())) or "none"
        lines.append(f"  {sid:14s} opened {s['structures_opened']:3d}  closed {s['structures_closed']:3d}  "
                     f"fills {s['fills']:4d}  pnl {s['pnl']:10.2f}  max|delta| {s['max_abs_delta']:8.1f}  "
                     f"denials: {denials}")
    if "router" in summary:
        lines.append("  router: " + ", ".join(f"{k}={v}" for k, v in summary["router"].items()))
    return "\n".join(lines)
