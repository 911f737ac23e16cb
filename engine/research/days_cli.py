"""``options-engine days record DIR --days N``: a library of simulated days to sweep over.

Each day is a full session of the simulator's market (seeded; the regimes calm, trending, volatility_spike and
gap_open in turn) recorded at full speed, with its manifest beside it. Real data goes into the same directory
with ``python -m engine.replay.importers`` (which writes manifests too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record N simulated sessions")
    rec.add_argument("dir", help="the library directory")
    rec.add_argument("--days", type=int, default=4, help="sessions to record (default 4: one per regime)")
    rec.add_argument("--seed", type=int, default=1, help="seed of the first day (the next days: seed+1, ...)")
    rec.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 11, 2),
                     help="first session (YYYY-MM-DD; default 2026-11-02)")
    rec.add_argument("--underlyings", default="SPY", help="comma-separated (default SPY)")
    rec.add_argument("--cadence-s", type=float, default=60.0, help="seconds between quote updates (default 60)")


def main(args: argparse.Namespace) -> int:
    from engine.research.library import record_library

    t0 = time.perf_counter()
    unds = tuple(u.strip().upper() for u in args.underlyings.split(",") if u.strip())
    paths = record_library(Path(args.dir), days=args.days, seed=args.seed, start=args.start, underlyings=unds,
                           cadence_s=args.cadence_s)
    for p in paths:
        print(f"{p}  ({p.stat().st_size / 1e6:.1f} MB)")
    print(f"recorded {len(paths)} days in {time.perf_counter() - t0:.1f} s")
    return 0
