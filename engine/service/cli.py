"""The ``options-engine`` command line: one sub-command per job.

Each sub-command lives in the module that owns the job and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this file only routes, so importing it stays cheap (no Numba, no sockets).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("engine.service.app_cli",
            "run the engine (mode from engine.toml; sim mode trades against the built-in simulator)"),
    "sim": ("engine.sim.cli", "run the Alpaca-compatible exchange simulator alone"),
    "check-config": ("engine.service.config_cli", "validate engine.toml and print the effective config"),
    "replay": ("engine.service.replay_cli", "replay a recording through the engine"),
    "status": ("engine.service.status_cli", "ask a running engine for its status"),
    "iv-history": ("engine.service.iv_history_cli", "back-fill the daily IV history from recordings, or show it"),
    "scan": ("engine.service.scan_cli", "ATM IV, IV rank, skew, term slope and fit quality per underlying"),
    "sweep": ("engine.research.cli", "parameter sweeps and walk-forward runs over recorded days"),
    "days": ("engine.research.days_cli", "record a library of simulated days (seeded regimes) to sweep over"),
}


def build_parser(available: dict[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="options-engine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in available.items():
        help_text = SUBCOMMANDS[name][1]
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)  # type: ignore[attr-defined]
    return parser


def _load(name: str) -> object | None:
    module_name = SUBCOMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = [a for a in argv if a in SUBCOMMANDS][:1]
    names = wanted or list(SUBCOMMANDS)
    available = {n: m for n in names if (m := _load(n)) is not None}
    if wanted and not available:
        print(f"options-engine: '{wanted[0]}' is not available in this build", file=sys.stderr)
        return 2
    args = build_parser(available).parse_args(argv)
    return int(available[args.command].main(args))  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
