"""A recording's market alone: its frames applied to an engine ``Market``, paused at each session's close.

No kernel, strategies or exchange: META ``contracts`` records add contracts, option and stock frames go through
the live parsers (``OptionProtocol``, ``StockProtocol``) into the book, which reprices as in the engine. The
walk stops after the last frame of each session (the first frame at or past that session's close ends it; so
do ``until_ns`` and the end of the recording) and hands back the session's date and the event time of its last
frame, the book then holding the market as of that instant. A frame after a close (or on a day without a
session) belongs to the next session.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.kernel.market import Market
from engine.kernel.market_data import DataBatch
from engine.replay.format import META, OPTIONS, STOCKS, read_records, recording_files
from greeks.calendar import MarketCalendar, market_calendar, ny_date


class _Contracts(msgspec.Struct):
    kind: str
    underlying: str = ""
    symbols: list[str] = []
    open_interest: list[int] = []


class RecordingWalk:
    """Walks ``path`` (a recording or a directory of rotated ones) session by session over one ``Market``."""

    def __init__(self, path: str | Path, *, rate: float = 0.04, calendar: MarketCalendar | None = None) -> None:
        self.files = recording_files(path)
        self.market = Market(rate=rate)
        self.calendar = calendar or market_calendar()
        self._options = OptionProtocol("", "", self.market.option_index)
        self._stocks = StockProtocol("", "", self.market.stock_index)
        self.last_ns = 0
        """Event time of the last data frame applied."""

    def sessions(self, until_ns: int | None = None) -> Iterator[tuple[dt.date, int]]:
        """(session date, event time of its last frame) after each session's frames are applied."""
        day: dt.date | None = None
        close_ns = 0
        for path in self.files:
            for stream, recv_ns, frame in read_records(path):
                if until_ns is not None and recv_ns > until_ns:
                    if day is not None:
                        yield day, self.last_ns
                    return
                if day is not None and recv_ns >= close_ns:
                    yield day, self.last_ns
                    day = None
                if stream == META:
                    self._on_meta(frame)
                    continue
                if stream not in (OPTIONS, STOCKS) or not self._apply(stream, frame):
                    continue
                self.last_ns = recv_ns
                if day is None:
                    session = self.calendar.session_on_or_after(ny_date(recv_ns))
                    if recv_ns >= session.close_ns:  # after a close: the next session's
                        session = self.calendar.next_session(session.day)
                    day, close_ns = session.day, session.close_ns
        if day is not None:
            yield day, self.last_ns

    def _apply(self, stream: int, frame: bytes) -> bool:
        protocol = self._options if stream == OPTIONS else self._stocks
        applied = False
        for ev in protocol.receive(frame):
            if isinstance(ev, DataBatch) and ev.n:
                if stream == OPTIONS:
                    self.market.apply(ev, time.time_ns())
                else:
                    self.market.apply_stock_batch(ev, time.time_ns())
                applied = True
        return applied

    def _on_meta(self, frame: bytes) -> None:
        try:
            meta = msgspec.json.decode(frame, type=_Contracts)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if meta.kind == "contracts" and meta.underlying:
            self.market.book(meta.underlying)
            fresh = [s for s in meta.symbols if self.market.option_index.id_of(s) < 0]
            if fresh:
                oi = dict(zip(meta.symbols, meta.open_interest, strict=False))
                self.market.add_contracts(meta.underlying, fresh, [oi.get(s, 0) for s in fresh] if oi else None)
