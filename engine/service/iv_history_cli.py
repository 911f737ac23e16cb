"""``options-engine iv-history``: back-fill the daily IV history from recordings, or show it.

``backfill --recording PATH`` walks a recording session by session (``engine.replay.chain_walk``), fits each
underlying's surface at the session's last frame and upserts one row per underlying and session into the
journal database under ``engine.state_dir`` (a second run over the same data rewrites the same rows).
``backfill --cboe FILE...`` first imports Cboe SPX daily chains into a temporary recording.
``show UNDERLYING`` prints the stored look-back.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from engine.service.config import ConfigError, EngineConfig, load_config, parse_config_text, state_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fill = sub.add_parser("backfill", help="fit each session close of a recording and store its row")
    src = fill.add_mutually_exclusive_group(required=True)
    src.add_argument("--recording", metavar="PATH", help="a recording (.oerec) or a directory of them")
    src.add_argument("--cboe", nargs="+", metavar="FILE", help="Cboe SPX daily chain files (SPX_YYYYMMDD.csv.gz)")
    fill.add_argument("--underlying", action="append", default=None, help="only this underlying (repeatable)")
    show = sub.add_parser("show", help="print the stored history of one underlying")
    show.add_argument("underlying")
    show.add_argument("--json", action="store_true", help="one JSON object per session")
    for p in (fill, show):
        p.add_argument("-c", "--config", default=None, help="config file (default: engine.toml if present)")
        p.add_argument("--state-dir", default=None, help="journal directory (default: engine.state_dir)")


def config_from(path: str | None) -> EngineConfig:
    """The config at ``path``, else ./engine.toml when present, else the defaults (raises ConfigError)."""
    if path is not None:
        return load_config(path)
    return load_config("engine.toml") if Path("engine.toml").exists() else parse_config_text("")


def backfill(cfg: EngineConfig, recording: Path, state_dir: Path, underlyings: list[str] | None = None,
             source: str | None = None) -> list[tuple[str, str, float]]:
    """Fit every session close of ``recording`` and upsert the rows; (underlying, date, ATM IV 30d) written."""
    from engine.replay.chain_walk import RecordingWalk
    from engine.service.journal import Journal
    from engine.service.settings import kernel_settings
    from engine.service.vol_history import history_row, scan_book

    walk = RecordingWalk(recording, rate=kernel_settings(cfg).risk_free_rate)
    tag = source or f"backfill:{recording.name}"
    rows = []
    for day, ts_ns in walk.sessions():
        for u, book in sorted(walk.market.books.items()):
            if underlyings and u not in underlyings:
                continue
            row = history_row(scan_book(book, ts_ns), day, tag)
            if row is not None:
                rows.append(row)
    journal = Journal.open(state_dir)
    journal.write_iv_history(rows)
    return [(r.underlying, r.session_date, r.atm_iv_30d) for r in rows]


def main(args: argparse.Namespace) -> int:
    try:
        cfg = config_from(args.config)
    except ConfigError as exc:
        print(f"options-engine: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir) if args.state_dir else state_path(cfg, args.config)
    if args.action == "show":
        from engine.service.journal import Journal

        for r in Journal.open(state_dir).read_iv_history(args.underlying):
            if args.json:
                print(json.dumps({"underlying": r.underlying, "session_date": r.session_date,
                                  "atm_iv_30d": r.atm_iv_30d, "rr25": r.rr25, "bf25": r.bf25,
                                  "term_slope": r.term_slope, "source": r.source}))
            else:
                print(f"{r.session_date}  atm30 {100 * r.atm_iv_30d:6.2f}  rr25 {100 * r.rr25:6.2f}  "
                      f"bf25 {100 * r.bf25:5.2f}  slope {100 * r.term_slope:6.2f}  {r.source}")
        return 0
    from engine.replay.format import RecordingError
    from engine.service.logging import configure_logging

    configure_logging("warning", stream=sys.stderr)
    try:
        if args.cboe:
            from engine.replay.importers.cboe import import_cboe_days

            with tempfile.TemporaryDirectory() as tmp:
                rec = Path(tmp) / "cboe.oerec"
                import_cboe_days(args.cboe, rec)
                written = backfill(cfg, rec, state_dir, args.underlying, source="backfill:cboe")
        else:
            written = backfill(cfg, Path(args.recording), state_dir, args.underlying)
    except (RecordingError, FileNotFoundError) as exc:
        print(f"options-engine iv-history: {exc}", file=sys.stderr)
        return 2
    for u, day, atm in written:
        print(f"{u} {day} atm_iv_30d {atm:.4f}")
    print(f"{len(written)} rows written to {state_dir}")
    return 0
