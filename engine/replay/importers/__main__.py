"""``python -m engine.replay.importers``: turn real data into recordings (see docs/replay.md).

    python -m engine.replay.importers lean  TIDY_DIR ROOT YYYYMMDD OUT.oerec [--underlying-root spx]
    python -m engine.replay.importers cboe  OUT.oerec FILE...
"""

from __future__ import annotations

import argparse
import sys

from engine.replay.importers.cboe import import_cboe_days
from engine.replay.importers.lean import import_lean_day


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.replay.importers", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="source", required=True)
    lean = sub.add_parser("lean", help="one day of a Lean minute option chain (tidy/ CSVs)")
    lean.add_argument("tidy")
    lean.add_argument("root", help="option root as in the file names: goog, spxw, spx, spy")
    lean.add_argument("day", help="YYYYMMDD")
    lean.add_argument("out")
    lean.add_argument("--underlying-root", default=None, help="file prefix of the underlying bars (spx for spxw)")
    cboe = sub.add_parser("cboe", help="Cboe SPX daily chains")
    cboe.add_argument("out")
    cboe.add_argument("files", nargs="+")
    args = p.parse_args(argv)
    try:
        if args.source == "lean":
            stats = import_lean_day(args.tidy, args.root, args.day, args.out, underlying_root=args.underlying_root)
        else:
            stats = import_cboe_days(args.files, args.out)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
