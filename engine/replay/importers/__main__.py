"""``python -m engine.replay.importers``: turn real data into recordings (see docs/replay.md).

    python -m engine.replay.importers lean  TIDY_DIR ROOT YYYYMMDD OUT.oerec [--underlying-root spx]
    python -m engine.replay.importers cboe  OUT.oerec FILE...

Each recording gets its manifest ``OUT.json`` (``engine.replay.manifest``): underlyings, date, source, cadence.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from engine.replay.importers.cboe import import_cboe_days
from engine.replay.importers.lean import UNDERLYING_OF_ROOT, import_lean_day
from engine.replay.manifest import Manifest, write_manifest


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
    for q in (lean, cboe):
        q.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
                       help="a config field this day needs, kept in its manifest (TOML value; repeatable)")
    args = p.parse_args(argv)
    try:
        pairs = (o.partition("=") for o in args.overrides)
        overrides = {k.strip(): tomllib.loads(f"v = {v}")["v"] for k, _, v in pairs}
    except tomllib.TOMLDecodeError as exc:
        print(f"bad --set value: {exc}", file=sys.stderr)
        return 2
    try:
        if args.source == "lean":
            stats = import_lean_day(args.tidy, args.root, args.day, args.out, underlying_root=args.underlying_root)
            und = UNDERLYING_OF_ROOT.get(args.root.upper(), args.root.upper())
            day = f"{args.day[:4]}-{args.day[4:6]}-{args.day[6:]}"
            manifest = Manifest(underlyings=[und], date=day, source="lean", cadence_s=60.0, overrides=overrides)
        else:
            stats = import_cboe_days(args.files, args.out)
            dates = sorted(m.group(1) for f in args.files if (m := re.search(r"(\d{8})", Path(f).name)))
            manifest = Manifest(underlyings=["SPX"], date=dates[0] if dates else "", source="cboe", cadence_s=86400.0,
                                overrides=overrides)
        write_manifest(Path(args.out), manifest)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
