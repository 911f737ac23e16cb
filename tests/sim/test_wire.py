"""Frames are exactly Alpaca's msgpack: the fast record encoder against msgpack's own decoder."""

from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sim.wire import RecordBlock, array_header, timestamp64

SYMBOLS = [b"SPY261123C00600000", b"QQQ261218P00471500", b"SPY270115C01000000"]
prices = st.floats(min_value=0, max_value=1e6, allow_nan=False)
sizes = st.integers(min_value=0, max_value=2**32 - 1)
times = st.integers(min_value=0, max_value=2**63 - 1)  # int64 epoch ns (Timestamp 64 covers it)


@settings(max_examples=40, deadline=None)
@given(bp=prices, ap=prices, bs=sizes, asz=sizes, t=times, pick=st.lists(st.integers(0, 2), min_size=1, max_size=5))
def test_quote_records_decode_to_alpacas_quote_maps(
    bp: float, ap: float, bs: int, asz: int, t: int, pick: list[int]
) -> None:
    block = RecordBlock(SYMBOLS, "q")
    n = len(pick)
    cols = {
        "t": timestamp64(np.full(n, t, dtype=np.int64)),
        "bx": np.full(n, b"C", dtype="S1"),
        "bp": np.full(n, bp),
        "bs": np.full(n, bs, dtype=np.uint32),
        "ax": np.full(n, b"X", dtype="S1"),
        "ap": np.full(n, ap),
        "as": np.full(n, asz, dtype=np.uint32),
        "c": np.full(n, b"A", dtype="S1"),
    }
    decoded = msgpack.unpackb(array_header(n) + block.encode(np.array(pick), cols))
    expected = {
        "T": "q",
        "t": msgpack.Timestamp(t // 10**9, t % 10**9),
        "bx": "C",
        "bp": bp,
        "bs": bs,
        "ax": "X",
        "ap": ap,
        "as": asz,
        "c": "A",
    }
    assert decoded == [{**expected, "S": SYMBOLS[i].decode()} for i in pick]
    assert list(decoded[0]) == ["T", "S", "t", "bx", "bp", "bs", "ax", "ap", "as", "c"]


def test_trade_records_decode_to_alpacas_trade_maps() -> None:
    block = RecordBlock(SYMBOLS[:2], "t")
    cols = {
        "t": timestamp64(np.array([1_763_908_200_123_456_789])),
        "p": np.array([2.84]),
        "s": np.array([7], dtype=np.uint32),
        "x": np.array([b"N"]),
        "c": np.array([b"I"]),
    }
    decoded = msgpack.unpackb(array_header(1) + block.encode(np.array([1]), cols))
    assert decoded == [
        {
            "T": "t",
            "S": "QQQ261218P00471500",
            "t": msgpack.Timestamp(1_763_908_200, 123_456_789),
            "p": 2.84,
            "s": 7,
            "x": "N",
            "c": "I",
        }
    ]


def test_array_headers_for_every_size_class() -> None:
    for n in (0, 15, 16, 65535, 65536):
        assert msgpack.unpackb(array_header(n) + b"\xc0" * n) == [None] * n


def test_a_full_frame_stays_well_under_one_mebibyte() -> None:
    block = RecordBlock([b"SPXW261123C05000000"] * 5000, "q")
    frame = array_header(5000) + block.encode(np.arange(5000), {})
    assert len(frame) < 600 * 1024
