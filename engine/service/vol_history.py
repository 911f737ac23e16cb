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
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from domain.views import MarketView
from engine.kernel.book import OptionBook
from greeks.calendar import YEAR_NS
from greeks.forward import parity_forward
from greeks.smile_quality import FitQuality, fit_quality
from greeks.surface import ExpiryQuotes, PublishedSmile, SurfaceFitter, smile_inputs
from greeks.term_structure import TermMetrics, term_metrics

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
    """Fit inputs per unexpired expiry of ``book``: OTM two-sided quotes against the parity forward."""
    out: list[ExpiryQuotes] = []
    spot = book.spot
    if not (math.isfinite(spot) and spot > 0.0) or len(book) == 0:
        return out
    expiries = np.unique(book.expiry)
    for expiry in expiries:
        rows = np.flatnonzero(book.expiry == expiry)
        close_ns = int(book.close_ns[rows[0]])
        t = (close_ns - now_ns) / YEAR_NS
        if not t > 0.0:
            continue
        strikes = np.unique(book.strike[rows])
        quotes = np.full((4, strikes.shape[0]), np.nan)
        col = np.searchsorted(strikes, book.strike[rows])
        calls = book.is_call[rows]
        for side, arr in ((0, book.bid), (1, book.ask)):
            quotes[side, col[calls]] = arr[rows[calls]]
            quotes[2 + side, col[~calls]] = arr[rows[~calls]]
        cb, ca, pb, pa = quotes
        r, q = book.rate, book.div_yield
        forward = parity_forward(strikes, cb, ca, pb, pa, spot, t, r, q).forward
        inputs = smile_inputs(strikes, cb, ca, pb, pa, forward, math.exp(-r * t), t)
        if inputs.k.shape[0] >= MIN_QUOTES_PER_EXPIRY:
            out.append(ExpiryQuotes(str(expiry), t, inputs))
    return out


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
