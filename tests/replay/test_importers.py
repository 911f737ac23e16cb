"""Importers write Alpaca frames the feeds' own protocols decode, with the source's numbers (README spot checks)."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.kernel.market_data import DataBatch
from engine.kernel.symbols import SymbolIndex
from engine.replay.format import META, OPTIONS, read_records
from engine.replay.importers.cboe import import_cboe_days
from engine.replay.importers.lean import import_lean_day
from tests.replay.conftest import CBOE, LEAN_TIDY, need

NY = ZoneInfo("America/New_York")


def _last_quotes(path: Path, until_ns: int) -> tuple[dict[str, tuple[float, float]], dict[str, float], int]:
    """Decode every frame up to ``until_ns`` with the feeds' protocols: last (bid, ask) per symbol, spots, messages."""
    opt_index, stk_index = SymbolIndex(), SymbolIndex(64)
    opt, stk = OptionProtocol("", "", opt_index), StockProtocol("", "", stk_index)
    quotes: dict[str, tuple[float, float]] = {}
    spots: dict[str, float] = {}
    n = 0
    for stream, recv_ns, frame in read_records(path):
        if stream == META:
            meta = msgspec.json.decode(frame)
            for s in meta.get("symbols", []):
                opt_index.add(s)
            if meta.get("underlying"):
                stk_index.add(meta["underlying"])
            continue
        if recv_ns > until_ns:
            break
        proto, index = (opt, opt_index) if stream == OPTIONS else (stk, stk_index)
        for ev in proto.receive(frame):
            assert isinstance(ev, DataBatch)
            n += ev.n
            for i in range(ev.n):
                sym = index.symbol(int(ev.gid[i]))
                if stream == OPTIONS:
                    quotes[sym] = (float(ev.bid[i]), float(ev.ask[i]))
                else:
                    spots[sym] = 0.5 * (float(ev.bid[i]) + float(ev.ask[i]))
    return quotes, spots, n


def test_lean_goog_day_has_the_readme_quotes_at_1130(goog_recording: Path) -> None:
    # README: GOOG 2015-12-24 11:30 ET, GOOG mid ~750.25, 0DTE K=750: C 1.0/1.2, P 0.7/1.15 (the 11:30 bar's close)
    until = int(dt.datetime(2015, 12, 24, 11, 31, tzinfo=NY).timestamp()) * 1_000_000_000
    quotes, spots, _ = _last_quotes(goog_recording, until)
    assert quotes["GOOG151224C00750000"] == (1.0, 1.2)
    assert quotes["GOOG151224P00750000"] == (0.7, 1.15)
    assert spots["GOOG"] == pytest.approx(750.25, abs=0.2)
    assert len({s for s in quotes if s.startswith("GOOG")}) > 1500


def test_lean_spxw_0dte_books_under_spx_with_the_index_as_spot(tmp_path: Path) -> None:
    tidy = need(LEAN_TIDY)
    out = tmp_path / "spxw.oerec"
    stats = import_lean_day(tidy, "spxw", "20210104", out, underlying_root="spx")
    assert stats["option_messages"] == 4565  # README: 4,565 rows
    metas = [msgspec.json.decode(f) for s, _, f in read_records(out) if s == META]
    assert {m.get("underlying") for m in metas if m["kind"] == "contracts"} == {"SPX"}
    # README: SPX 3749.96 at 10:00 ET (the close of the bar starting 10:00, stamped at its end)
    until = int(dt.datetime(2021, 1, 4, 10, 1, tzinfo=NY).timestamp()) * 1_000_000_000
    _, spots, _ = _last_quotes(out, until)
    assert spots["SPX"] == pytest.approx(3749.96)


def test_cboe_days_replay_every_row_and_the_spx_level(tmp_path: Path) -> None:
    files = [need(CBOE) / "SPX_20190501.csv.gz", CBOE / "SPX_20190502.csv.gz"]
    out = tmp_path / "cboe.oerec"
    stats = import_cboe_days(files, out)
    rows = sum(_rows(f) for f in files)
    assert stats["option_messages"] == rows
    first_day_end = int(dt.datetime(2019, 5, 1, 15, 0, tzinfo=NY).timestamp()) * 1_000_000_000
    quotes, spots, n = _last_quotes(out, first_day_end)
    assert spots["SPX"] == pytest.approx(2946.73)  # underlying_last of 2019-05-01
    assert quotes["SPXW190501C01800000"] == (1136.6, 1154.7)  # the file's first row
    assert n == _rows(files[0]) + 1  # every option row of the day and one SPX quote


def _rows(path: Path) -> int:
    with gzip.open(path, "rt") as fh:
        return sum(1 for _ in fh) - 1  # the header
