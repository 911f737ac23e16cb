"""``options-engine sweep SWEEP.toml``: a parameter sweep (or walk-forward run) over recorded days.

Runs over a local process pool (``--workers``, default: every core) or a Ray cluster (``--ray ADDRESS``); results
go to the SQLite file the sweep names, and a rerun resumes (stored trials are not replayed again). ``--report``
writes the HTML report; ``--apply TRIAL -o OUT.toml`` writes a trial's parameters into a copy of the base config.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from engine.research.spec import SweepError, load_sweep
from engine.service.config import ConfigError


class ProgressBar:
    """``[#####.....] 5/16 units  0:12 left`` on a terminal; nothing otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.t0 = time.monotonic()

    def __call__(self, done: int, planned: int) -> None:
        if not self.enabled or planned <= 0:
            return
        elapsed = time.monotonic() - self.t0
        left = elapsed / done * (planned - done) if done else 0.0
        filled = int(30 * done / planned)
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{planned} units  "
                          f"{int(left) // 60}:{int(left) % 60:02d} left ")
        if done == planned:
            self.stream.write("\n")
        self.stream.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", help="the sweep file (sweep.toml)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local worker processes (default: the cores; 1 runs in this process)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run the trials on the Ray cluster at ADDRESS (host:port, or 'auto')")
    parser.add_argument("--report", default=None, metavar="OUT.html", help="write the HTML report here")
    parser.add_argument("--apply", type=int, default=None, metavar="TRIAL",
                        help="write TRIAL's parameters into a copy of the base config (-o), then exit")
    parser.add_argument("-o", "--output", default=None, metavar="OUT.toml",
                        help="--apply: where to write the config (default: <config stem>.trial<N>.toml)")
    parser.add_argument("--list", action="store_true", help="print the best stored trials, then exit")


def _fail(exc: Exception) -> int:
    issues = getattr(exc, "issues", None) or [exc]
    print("options-engine sweep: invalid sweep", file=sys.stderr)
    for issue in issues:
        print(f"  {issue}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from engine.research.apply import apply_trial, trial_table

    try:
        sweep = load_sweep(args.sweep)
    except SweepError as exc:
        return _fail(exc)
    if args.list:
        print(trial_table(sweep))
        return 0
    if args.apply is not None:
        out = Path(args.output) if args.output else sweep.config_path.with_suffix(f".trial{args.apply}.toml")
        try:
            cold = apply_trial(sweep, args.apply, out)
        except (SweepError, ConfigError) as exc:
            return _fail(exc)
        print(f"wrote {out} (check-config passed)")
        if cold:
            print(f"COLD fields (need a restart, not a reload): {', '.join(cold)}")
        return 0
    from engine.research.executors import make_executor
    from engine.research.runner import SweepRunner, describe
    from engine.service.logging import configure_logging

    configure_logging("error", stream=sys.stderr)
    executor = make_executor(args.workers, args.ray)
    try:
        outcome = SweepRunner(sweep, executor, progress=ProgressBar(sys.stderr)).run()
    finally:
        executor.close()
    print(describe(outcome))
    print(f"results: {sweep.results}")
    if args.report:
        from engine.research.report import render_sweep_report

        Path(args.report).write_text(render_sweep_report(sweep), encoding="utf-8")
        print(f"report: {args.report}")
    return 0
