"""The recording format and the recorder: round trips, a cut-short file, rotation within a size bound."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.kernel.market import Market
from engine.kernel.market_data import DataBatch
from engine.replay.format import (
    META,
    OPTIONS,
    STOCKS,
    TRADING,
    BlockWriter,
    RecordingError,
    read_records,
    recording_files,
)
from engine.service.config import RecordSection
from engine.service.record import Recorder

records_st = st.lists(
    st.tuples(st.sampled_from([OPTIONS, STOCKS, TRADING, META]), st.integers(0, 2**63 - 1), st.binary(max_size=300)),
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(records_st, st.integers(64, 4096), st.sampled_from([0, 1, 3]))
def test_records_round_trip_across_blocks(tmp_path_factory: pytest.TempPathFactory,
                                          records: list[tuple[int, int, bytes]], block_bytes: int,
                                          prefetch: int) -> None:
    path = tmp_path_factory.mktemp("rt") / "r.oerec"
    with BlockWriter(path, block_bytes=block_bytes) as w:
        for stream, ts, frame in records:
            w.write(stream, ts, frame)
    assert [tuple(r) for r in read_records(path, prefetch=prefetch)] == records


def test_a_damaged_block_is_reported_through_the_read_ahead_thread(tmp_path: Path) -> None:
    path = tmp_path / "damaged.oerec"
    with BlockWriter(path, block_bytes=1) as w:
        for i in range(3):
            w.write(OPTIONS, i, b"x" * 100)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # inside the last block's compressed bytes
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(RecordingError, match="damaged block"):
        for r in read_records(path, prefetch=2):
            got.append(r.recv_ns)
    assert got == [0, 1]


def test_a_file_cut_short_keeps_every_complete_block(tmp_path: Path) -> None:
    path = tmp_path / "cut.oerec"
    with BlockWriter(path, block_bytes=1) as w:  # one record per block
        for i in range(5):
            w.write(OPTIONS, i, bytes([i]) * 50)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert [r.recv_ns for r in read_records(path)] == [0, 1, 2, 3]


def test_a_foreign_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.oerec"
    bad.write_bytes(b"PK\x03\x04 a zip file, not a recording")
    with pytest.raises(RecordingError, match="not a recording"):
        list(read_records(bad))
    with pytest.raises(RecordingError, match="no such recording"):
        recording_files(tmp_path / "missing.oerec")
    with pytest.raises(RecordingError, match=r"no \.oerec files"):
        recording_files(_empty_dir(tmp_path))


def _empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_recorder_appends_frames_with_receive_times_and_rotates_within_the_bound(tmp_path: Path) -> None:
    cfg = RecordSection(enabled=True, max_file_mb=0.02, max_total_mb=0.06, flush_interval_s=0.05, compress_level=1)
    rec = Recorder(tmp_path / "rec", cfg)
    rec.start()
    rng = np.random.default_rng(3)
    tap = rec.tap(OPTIONS)
    before = time.time_ns()
    sent = []
    for i in range(400):
        frame = rng.bytes(200)  # incompressible: forces several rotations
        sent.append(frame)
        tap(frame)
        if i % 50 == 0:
            time.sleep(0.06)
    rec.tap(TRADING)('{"stream":"trade_updates"}')
    rec.close()
    files = recording_files(tmp_path / "rec")
    total = sum(f.stat().st_size for f in files)
    assert rec.files_deleted >= 1 and len(files) >= 2
    assert total <= cfg.max_total_mb * (1 << 20) + cfg.max_file_mb * (1 << 20)
    got = [r for f in files for r in read_records(f)]
    frames = [r.frame for r in got if r.stream == OPTIONS]
    assert frames == sent[-len(frames):]  # the newest frames survive, in order
    assert all(r.recv_ns >= before for r in got)
    assert got[-1] == (TRADING, got[-1].recv_ns, b'{"stream":"trade_updates"}')
    assert rec.dropped == 0


def test_recorder_notes_the_primed_book_so_replay_starts_from_it(tmp_path: Path) -> None:
    market = Market()
    book = market.book("SPY")
    market.on_underlying_quote("SPY", 599.0, 601.0, 1_795_000_000_000_000_000)
    market.add_contracts("SPY", ["SPY261231C00600000", "SPY261231P00600000"], [10, 20])
    assert book.load_snapshot("SPY261231C00600000", 10.0, 10.5, 5, 6, 1_795_000_000_100_000_000)
    rec = Recorder(tmp_path / "rec", RecordSection(enabled=True))
    rec.start()
    rec.note_book(market)
    rec.note_book(market)  # nothing new: nothing written twice
    rec.close()
    got = list(read_records(recording_files(tmp_path / "rec")[0]))
    assert [r.stream for r in got] == [META, STOCKS, OPTIONS]
    index = market.option_index
    events = OptionProtocol("", "", index).receive(got[2].frame)
    batch = next(e for e in events if isinstance(e, DataBatch))
    row = book.row_of("SPY261231C00600000")
    assert (batch.bid[0], batch.ask[0]) == (book.bid[row], book.ask[row])
    spot = next(e for e in StockProtocol("", "", market.stock_index).receive(got[1].frame) if isinstance(e, DataBatch))
    assert spot.bid[0] == pytest.approx(600.0)
