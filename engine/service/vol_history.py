"""The daily IV history (one row per underlying and session, in the journal database) and a book's surface summary.

Rows are written at each session close from the kernel's ``VolStats`` (``rows_at_close``), and back-filled by
``options-engine iv-history backfill`` from recordings; both upsert on (underlying, session_date), so writing
a day twice keeps one row (the later one). At start the look-back (``[vol_history] lookback_days`` sessions
before today) is read and handed to the kernel's surface service, which ranks today's 30-day ATM IV in it.

``scan_book`` fits one book's surface and summarises it (term metrics and fit quality) for the scanner and the
back-fill; the fit inputs come from ``book_expiry_quotes`` (OTM two-sided quotes per expiry against the expiry's
put-call-parity forward).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import msgspec
import structlog

from domain.views import MarketView
from engine.kernel.book import OptionBook
from engine.kernel.vol_surface import expiry_quotes
from greeks.calendar import ny_date
from greeks.smile_quality import FitQuality, fit_quality
from greeks.surface import ExpiryQuotes, PublishedSmile, SurfaceFitter
from greeks.term_structure import TermMetrics, term_metrics

if TYPE_CHECKING:
    from engine.service.app import Engine

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS iv_history (
  underlying TEXT NOT NULL, session_date TEXT NOT NULL, atm_iv_30d REAL, rr25 REAL, bf25 REAL, term_slope REAL,
  source TEXT NOT NULL, ts_ns INTEGER NOT NULL, PRIMARY KEY (underlying, session_date));
"""
_UPSERT = (
    "INSERT INTO iv_history VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(underlying, session_date) DO UPDATE SET "
    "atm_iv_30d=excluded.atm_iv_30d, rr25=excluded.rr25, bf25=excluded.bf25, term_slope=excluded.term_slope, "
    "source=excluded.source, ts_ns=excluded.ts_ns"
)
MIN_QUOTES_PER_EXPIRY = 5
"""An expiry with fewer usable OTM quotes is left out of the fit."""


class IvHistoryRow(msgspec.Struct, frozen=True):
    """One underlying's surface summary at one session's close (vols as fractions; NaN where unknown)."""

    underlying: str
    session_date: str
    """New York date of the session, ISO (``2019-05-01``)."""
    atm_iv_30d: float
    rr25: float
    bf25: float
    term_slope: float
    source: str
    """``session_close`` (the running engine) or ``backfill:<recording name>``."""
    ts_ns: int
    """Event time of the surface the row was read from."""


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _sql(v: float) -> float | None:
    return v if math.isfinite(v) else None


def upsert_rows(conn: sqlite3.Connection, rows: Iterable[IvHistoryRow]) -> int:
    """Insert or replace ``rows`` by (underlying, session_date); how many were written."""
    data = [(r.underlying, r.session_date, _sql(r.atm_iv_30d), _sql(r.rr25), _sql(r.bf25), _sql(r.term_slope),
             r.source, r.ts_ns) for r in rows]  # fmt: skip
    conn.executemany(_UPSERT, data)
    return len(data)


def read_rows(
    conn: sqlite3.Connection, underlying: str, *, before: dt.date | None = None, limit: int = 1_000_000
) -> list[IvHistoryRow]:
    """The last ``limit`` sessions of ``underlying`` strictly before ``before`` (all when None), oldest first."""
    cutoff = "9999-12-31" if before is None else before.isoformat()
    cur = conn.execute(
        "SELECT underlying, session_date, atm_iv_30d, rr25, bf25, term_slope, source, ts_ns FROM iv_history "
        "WHERE underlying = ? AND session_date < ? ORDER BY session_date DESC LIMIT ?",
        (underlying, cutoff, limit),
    )
    rows = [IvHistoryRow(u, d, _nan(a), _nan(r), _nan(b), _nan(s), src, int(ts))
            for u, d, a, r, b, s, src, ts in cur]  # fmt: skip
    rows.reverse()
    return rows


def rows_at_close(
    market: MarketView, underlyings: Iterable[str], day: dt.date, source: str = "session_close"
) -> list[IvHistoryRow]:
    """A history row per underlying with a 30-day ATM IV in its current ``VolStats`` (others are skipped)."""
    out = []
    for u in underlyings:
        s = market.vol_stats(u)
        if s is None or not math.isfinite(s.atm_iv_30d):
            continue
        out.append(IvHistoryRow(u, day.isoformat(), s.atm_iv_30d, s.rr25, s.bf25, s.term_slope, source, s.ts_ns))
    return out


# --------------------------------------------------------------------------------------------- a book's surface


def book_expiry_quotes(book: OptionBook, now_ns: int) -> list[ExpiryQuotes]:
    """Fit inputs per unexpired expiry of ``book``, as the engine's surface takes them (``expiry_quotes``: OTM
    two-sided quotes against the parity forward of an index, European-equivalent for an American name), with
    times to expiry at ``now_ns``."""
    if len(book) == 0 or not (book.spot > 0.0):
        return []
    if now_ns > book.ts_ns:
        book.reprice_all(now_ns)
    return [ExpiryQuotes(e.expiry, e.t, e.inputs) for e in expiry_quotes(book)
            if e.inputs.k.shape[0] >= MIN_QUOTES_PER_EXPIRY]


class SurfaceScan(NamedTuple):
    """One underlying's fitted surface: its term metrics (None: nothing published), fit quality, the smiles."""

    underlying: str
    ts_ns: int
    spot: float
    metrics: TermMetrics | None
    quality: FitQuality
    published: list[PublishedSmile]


def scan_book(book: OptionBook, now_ns: int, fitter: SurfaceFitter | None = None) -> SurfaceScan:
    """Fit ``book``'s surface at ``now_ns`` and summarise it."""
    fitter = fitter or SurfaceFitter()
    quotes = book_expiry_quotes(book, now_ns)
    published = fitter.fit(quotes, now_ns / 1e9) if quotes else []
    return SurfaceScan(book.underlying, now_ns, book.spot, term_metrics(published, now_ns),
                       fit_quality(quotes, published, fitter.delta_range), published)


def history_row(scan: SurfaceScan, day: dt.date, source: str) -> IvHistoryRow | None:
    """The history row of a scanned surface (None when nothing was published)."""
    m = scan.metrics
    if m is None:
        return None
    return IvHistoryRow(scan.underlying, day.isoformat(), m.atm_iv_30d, m.rr25, m.bf25, m.term_slope, source,
                        scan.ts_ns)


def atm_series(rows: Sequence[IvHistoryRow]) -> list[float]:
    """The 30-day ATM IVs of ``rows`` in order (what the kernel ranks today's value in)."""
    return [r.atm_iv_30d for r in rows]


def _underlyings(engine: Engine) -> list[str]:
    return sorted({u for a in engine.actors for u in a.underlyings})


def _today(engine: Engine) -> dt.date:
    return ny_date(engine.clock.now_ns() or time.time_ns())


def hand_history(engine: Engine) -> None:
    """The engine's kernel gets each underlying's look-back of 30-day ATM IVs (sessions before today, oldest
    first) for IV rank and percentile."""
    journal, kernel = engine.journal, engine.kernel
    if journal is None or kernel is None:
        return
    for u in _underlyings(engine):
        rows = journal.read_iv_history(u, before=_today(engine), limit=engine.cfg.vol_history.lookback_days)
        kernel.surfaces.set_history(u, atm_series(rows))


def record_session_close(engine: Engine) -> list[IvHistoryRow]:
    """At a session's close: upsert each underlying's surface summary for the session into the history, then
    hand the kernel the look-back including it. The rows written."""
    journal, kernel = engine.journal, engine.kernel
    if journal is None or kernel is None:
        return []
    day = engine.calendar.session_on_or_before(_today(engine)).day
    rows = rows_at_close(engine.market, _underlyings(engine), day)
    journal.record_iv_history(rows)
    log.info("iv_history_recorded", session=day.isoformat(), underlyings=[r.underlying for r in rows])
    for r in rows:
        history = journal.read_iv_history(r.underlying, before=day, limit=engine.cfg.vol_history.lookback_days - 1)
        kernel.surfaces.set_history(r.underlying, [*(h.atm_iv_30d for h in history), r.atm_iv_30d])
    return rows
