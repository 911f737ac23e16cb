"""``options-engine scan``: per underlying, 30-day ATM IV, IV rank and percentile, skew, term slope, fit quality.

The chains come from a recording (``--recording PATH``, as of ``--at`` or its end: ``engine.replay.chain_walk``)
or from the venue over REST (listed contracts up to ``--max-dte`` days and their option snapshots; in
``mode = "sim"`` the built-in simulator, started on loopback in a temporary directory). Each underlying's surface
is fitted (``engine.service.vol_history.scan_book``) and its 30-day ATM IV ranked in the journal's IV history
(``[vol_history]``): "insufficient history" when fewer than ``min_days`` sessions are stored. A table on a
terminal, or ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.service.config import ConfigError, EngineConfig, state_path
from engine.service.iv_history_cli import config_from

INSUFFICIENT = "insufficient history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=None, help="config file (default: engine.toml if present)")
    parser.add_argument("--recording", default=None, metavar="PATH", help="scan a recording instead of the venue")
    parser.add_argument("--at", default=None, metavar="TIME",
                        help="with --recording: the chain as of this New York time (ISO, e.g. 2019-05-15T15:30)")
    parser.add_argument("--underlying", action="append", default=None,
                        help="scan this underlying (repeatable; default: the configured strategies' universe)")
    parser.add_argument("--max-dte", type=int, default=120, help="venue scan: expiries up to this many days")
    parser.add_argument("--state-dir", default=None, help="journal with the IV history (default: engine.state_dir)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def universe(cfg: EngineConfig) -> list[str]:
    """The underlyings of the configured, enabled strategies."""
    return sorted({u for c in cfg.strategy_configs().values() if c.enabled for u in c.underlyings})


def _finite(v: float) -> float | None:
    return round(v, 6) if math.isfinite(v) else None


def scan_rows(
    cfg: EngineConfig, market: Any, underlyings: list[str], ts_ns: int, state_dir: Path
) -> list[dict[str, Any]]:
    """One result per underlying: the surface summary, and its IV rank in the stored history."""
    from engine.service.journal import Journal
    from engine.service.vol_history import atm_series, scan_book
    from greeks.calendar import ny_date
    from greeks.iv_rank import iv_rank

    journal = Journal.open(state_dir)
    day = ny_date(ts_ns)
    out = []
    for u in underlyings:
        book = market.books.get(u)
        row: dict[str, Any] = {"underlying": u, "ts_ns": ts_ns, "session_date": day.isoformat()}
        if book is None or len(book) == 0:
            out.append({**row, "status": "no chain"})
            continue
        scan = scan_book(book, ts_ns)
        m, q = scan.metrics, scan.quality
        history = journal.read_iv_history(u, before=day, limit=cfg.vol_history.lookback_days)
        atm = m.atm_iv_30d if m is not None else math.nan
        rank = iv_rank(atm_series(history), atm, cfg.vol_history.min_days)
        out.append({
            **row,
            "status": "ok" if m is not None else "no surface",
            "spot": _finite(scan.spot),
            "atm_iv_30d": _finite(atm),
            "iv_rank": _finite(rank.rank),
            "iv_percentile": _finite(rank.percentile),
            "history_days": rank.n,
            "rank_ready": rank.ready,
            "rank_status": "ok" if rank.ready else INSUFFICIENT,
            "rr25": _finite(m.rr25) if m is not None else None,
            "bf25": _finite(m.bf25) if m is not None else None,
            "term_slope": _finite(m.term_slope) if m is not None else None,
            "atm_iv_90d": _finite(m.atm_iv_90d) if m is not None else None,
            "extrapolated": m.extrapolated if m is not None else None,
            "fit": {"expiries": q.expiries, "fitted": q.fitted, "published": q.published,
                    "median_rmse_vol_pts": _finite(q.median_rmse_vol_pts), "in_band": _finite(q.in_band)},
        })  # fmt: skip
    return out


def _recording_market(path: Path, at: str | None, rate: float) -> tuple[Any, int]:
    from engine.replay.chain_walk import RecordingWalk
    from greeks.calendar import NEW_YORK

    until = None
    if at is not None:
        moment = dt.datetime.fromisoformat(at)
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=NEW_YORK)
        until = int(moment.timestamp() * 1e9)
    walk = RecordingWalk(path, rate=rate)
    for _ in walk.sessions(until):
        pass
    return walk.market, walk.last_ns


async def venue_market(cfg: EngineConfig, underlyings: list[str], max_dte: int) -> tuple[Any, int]:
    """The chains of ``underlyings`` over REST (listings and option snapshots) in an engine ``Market``."""
    from engine.kernel.market import Market
    from engine.service.settings import kernel_settings
    from engine.service.venue import start_simulator
    from engine.service.venues import open_venue
    from greeks.calendar import ny_date

    settings = kernel_settings(cfg)
    market = Market(rate=settings.risk_free_rate, div_yields=dict(settings.dividend_yields))
    now = 0
    with tempfile.TemporaryDirectory() as tmp:
        sim, endpoints = (await start_simulator(cfg, Path(tmp))) if cfg.engine.mode == "sim" else (None, None)
        venue = open_venue(cfg, endpoints=endpoints)
        try:
            ref = venue.execution
            for u in underlyings:
                quote = await ref.stock_quote(u)
                if quote is None or not (quote.bid > 0 and quote.ask > 0):
                    continue
                now = max(now, quote.ts_ns)
                today = ny_date(quote.ts_ns)
                listing = await ref.listed_contracts(u, today, today + dt.timedelta(days=max_dte))
                symbols = [c.symbol for c in listing.contracts]
                market.add_contracts(u, symbols, [c.open_interest for c in listing.contracts])
                market.on_underlying_quote(u, quote.bid, quote.ask, quote.ts_ns)
                book = market.book(u)
                for s, snap in (await ref.option_snapshots(symbols)).items():
                    book.load_snapshot(s, snap.bid, snap.ask, snap.bid_size, snap.ask_size, snap.ts_ns)
                    now = max(now, snap.ts_ns)
                market.snapshot_loaded(u)
        finally:
            await venue.close()
            if sim is not None:
                await sim.stop()
    return market, now


def _pct(v: Any, width: int = 6, digits: int = 2) -> str:
    return f"{100 * v:{width}.{digits}f}" if isinstance(v, float) else f"{'-':>{width}}"


def render_table(rows: list[dict[str, Any]]) -> str:
    """The results as a fixed-width table (vols and skew in vol points)."""
    head = (f"{'underlying':10s} {'spot':>9s} {'atm30':>6s} {'rank':>6s} {'pctl':>6s} {'rr25':>6s} {'bf25':>6s} "
            f"{'slope':>6s} {'fit':>7s} {'rmse':>5s} {'band':>5s}  history")
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['underlying']:10s} {r['status']}")
            continue
        fit = r["fit"]
        rank = f"{r['iv_rank']:6.1f}" if r["rank_ready"] else f"{'-':>6s}"
        pctl = f"{r['iv_percentile']:6.1f}" if r["rank_ready"] else f"{'-':>6s}"
        hist = f"{r['history_days']} days" if r["rank_ready"] else f"{INSUFFICIENT} ({r['history_days']} days)"
        rmse = f"{fit['median_rmse_vol_pts']:5.2f}" if fit["median_rmse_vol_pts"] is not None else f"{'-':>5s}"
        band = f"{100 * fit['in_band']:4.0f}%" if fit["in_band"] is not None else f"{'-':>5s}"
        lines.append(f"{r['underlying']:10s} {r['spot']:9.2f} {_pct(r['atm_iv_30d'])} {rank} {pctl} "
                     f"{_pct(r['rr25'])} {_pct(r['bf25'])} {_pct(r['term_slope'])} "
                     f"{fit['published']:3d}/{fit['expiries']:<3d} {rmse} {band}  {hist}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from engine.service.logging import configure_logging
    from engine.service.settings import kernel_settings

    try:
        cfg = config_from(args.config)
    except ConfigError as exc:
        print(f"options-engine: {exc}", file=sys.stderr)
        return 2
    configure_logging("warning", stream=sys.stderr)
    state_dir = Path(args.state_dir) if args.state_dir else state_path(cfg, args.config)
    if args.recording is not None:
        from engine.replay.format import RecordingError

        try:
            market, ts_ns = _recording_market(Path(args.recording), args.at, kernel_settings(cfg).risk_free_rate)
        except (RecordingError, ValueError) as exc:
            print(f"options-engine scan: {exc}", file=sys.stderr)
            return 2
        underlyings = args.underlying or sorted(market.books)
    else:
        underlyings = args.underlying or universe(cfg)
        market, ts_ns = asyncio.run(venue_market(cfg, underlyings, args.max_dte))
    rows = scan_rows(cfg, market, underlyings, ts_ns, state_dir)
    print(json.dumps(rows, indent=2) if args.json else render_table(rows))
    return 0
