"""``options-engine sim``: run the Alpaca-compatible simulator alone until SIGINT/SIGTERM.

The first line on stdout is one JSON object with the URLs and credentials to use
(``trading_url``, ``data_url``, ``options_stream_url``, ``stocks_stream_url``,
``trading_stream_url``, ``key``, ``secret``, ``control_url``).

With ``--state-dir DIR`` the account persists in DIR and the next start continues it (clock, market,
orders, fills); ``--fresh`` first moves a saved state into ``DIR/archive-<time>``. Without it the
account lives only as long as the process.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from engine.sim.config import SimConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", type=Path, help="engine.toml whose [sim] section configures the simulator")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default: a free port)")
    parser.add_argument("--stream-port", type=int, help="websocket port (default: --port + 1, or a free port)")
    parser.add_argument("--seed", type=int, help="market seed")
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second (0 = paused)")
    parser.add_argument("--key", help="API key id to accept")
    parser.add_argument("--secret", help="API secret to accept")
    parser.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep the account in DIR and continue it at the next start (default: not kept)")
    parser.add_argument("--fresh", action="store_true",
                        help="with --state-dir: start a new account; the saved one is moved to DIR/archive-<time>")


def load_config(args: argparse.Namespace) -> SimConfig:
    """The [sim] section of the config file (if any) with the command-line overrides applied."""
    table: dict[str, Any] = {}
    if args.config is not None:
        with open(args.config, "rb") as fh:
            table = dict(tomllib.load(fh).get("sim", {}))
    overrides = {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "speed": args.speed,
        "key": args.key,
        "secret": args.secret,
    }
    table.update({k: v for k, v in overrides.items() if v is not None})
    if args.stream_port is not None:
        table["stream_port"] = args.stream_port
    elif args.port:
        table.setdefault("stream_port", args.port + 1)
    if args.allow_remote:
        table["allow_remote"] = True
    return msgspec.convert(table, SimConfig, strict=False)


def _configure_logging() -> None:
    """JSON logs on stderr: stdout's first line belongs to the URLs."""
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def _run(config: SimConfig, state_dir: Path | None) -> int:
    from engine.sim.server import Simulator

    sim = Simulator(config, state_dir=state_dir)
    urls = await sim.start()
    sys.stdout.write(msgspec.json.encode(urls).decode() + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(sim.wait_failed())
    try:
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        crashed = failed.result() if failed.done() else None
    finally:
        for task in (stopped, failed):
            task.cancel()
        await sim.stop()
    if crashed is not None:
        print(f"options-engine sim: market loop failed: {crashed!r}", file=sys.stderr)
        return 1
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        print(f"options-engine sim: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.fresh and args.state_dir is None:
        print("options-engine sim: --fresh needs --state-dir (without it every start is a new account)",
              file=sys.stderr)
        return 2
    from engine.sim.server import SimError

    _configure_logging()
    if args.fresh:
        import structlog

        from engine.sim.state import StateError
        from engine.sim.store import archive_sim_state

        try:
            archived = archive_sim_state(args.state_dir)
        except (OSError, StateError) as exc:
            print(f"options-engine sim: cannot archive {args.state_dir}: {exc}", file=sys.stderr)
            return 2
        structlog.get_logger("engine.sim").info(
            "sim_state_archived" if archived else "sim_fresh_start", state_dir=str(args.state_dir),
            archived_to=str(archived) if archived else None)

    try:
        return asyncio.run(_run(config, args.state_dir))
    except SimError as exc:
        print(f"options-engine sim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"options-engine sim: cannot bind: {exc}", file=sys.stderr)
        return 2
