"""Market-data protocol (options and stocks): bytes in, events and bytes-to-send out, on recorded frames."""

from __future__ import annotations

import datetime as dt
import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alpaca.feeds.marketdata import (
    Authenticated,
    DataBatch,
    DataState,
    Greeted,
    Malformed,
    ServerError,
    SubscriptionAck,
)
from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.kernel.market_data import KIND_QUOTE, KIND_TRADE
from engine.kernel.symbols import SymbolIndex


def ts(text: str) -> msgpack.Timestamp:
    """msgpack Timestamp of an RFC-3339 text with nanoseconds (as the server sends ``t``)."""
    base, frac = text.rstrip("Z").split(".")
    seconds = int(dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC).timestamp())
    return msgpack.Timestamp(seconds, int(frac.ljust(9, "0")))


def ns(text: str) -> int:
    t = ts(text)
    return t.seconds * 1_000_000_000 + t.nanoseconds


# Option messages shaped as docs/alpaca.md §3 describes, as msgpack (t as Timestamp ext -1).
DOC_TRADE = {
    "T": "t",
    "S": "AAPL240315C00172500",
    "t": ts("2024-03-11T13:35:35.13312256Z"),
    "p": 2.84,
    "s": 1,
    "x": "N",
    "c": "S",
}
DOC_QUOTE = {
    "T": "q",
    "S": "SPXW240327P04925000",
    "t": ts("2024-03-12T11:59:38.897261568Z"),
    "bx": "C",
    "bp": 9.46,
    "bs": 53,
    "ax": "C",
    "ap": 9.66,
    "as": 38,
    "c": "A",
}


def handshake(proto: OptionProtocol | StockProtocol) -> list[bytes]:
    proto.connection_made()
    sent: list[bytes] = []
    assert isinstance(proto.receive(msgpack.packb([{"T": "success", "msg": "connected"}]))[0], Greeted)
    sent += proto.data_to_send()
    assert isinstance(proto.receive(msgpack.packb([{"T": "success", "msg": "authenticated"}]))[0], Authenticated)
    sent += proto.data_to_send()
    return sent


def option_proto(*symbols: str, cap: int | None = None) -> OptionProtocol:
    index = SymbolIndex()
    for s in symbols:
        index.add(s)
    return OptionProtocol("KEY", "SECRET", index, max_quotes=cap)


def test_handshake_sends_auth_then_full_subscription() -> None:
    proto = option_proto()
    proto.set_subscription(["SPXW240327P04925000"], ["AAPL240315C00172500"])
    sent = handshake(proto)
    assert msgpack.unpackb(sent[0]) == {"action": "auth", "key": "KEY", "secret": "SECRET"}
    assert msgpack.unpackb(sent[1]) == {
        "action": "subscribe",
        "quotes": ["SPXW240327P04925000"],
        "trades": ["AAPL240315C00172500"],
    }
    assert proto.state is DataState.AUTHENTICATED


def test_reconnect_resends_the_whole_subscription() -> None:
    proto = option_proto()
    handshake(proto)
    proto.set_subscription(["A240315C00001000", "B240315C00001000"])
    proto.data_to_send()
    again = handshake(proto)
    assert msgpack.unpackb(again[1])["quotes"] == ["A240315C00001000", "B240315C00001000"]


def test_subscription_change_is_one_unsubscribe_and_one_subscribe_diff() -> None:
    proto = option_proto()
    handshake(proto)
    proto.set_subscription(["A240315C00001000", "B240315C00001000"])
    proto.data_to_send()
    assert proto.set_subscription(["B240315C00001000", "C240315C00001000"]) == (1, 1)
    unsub, sub = (msgpack.unpackb(b) for b in proto.data_to_send())
    assert unsub == {"action": "unsubscribe", "quotes": ["A240315C00001000"]}
    assert sub == {"action": "subscribe", "quotes": ["C240315C00001000"]}


def test_quote_cap_and_wildcard_are_refused_before_sending() -> None:
    proto = option_proto(cap=2)
    handshake(proto)
    with pytest.raises(ValueError, match="cap of 2"):
        proto.set_subscription(["A240315C00001000", "B240315C00001000", "C240315C00001000"])
    with pytest.raises(ValueError, match="wildcard"):
        proto.set_subscription(["*"])
    assert proto.data_to_send() == []


def test_doc_example_quote_and_trade_decode_to_columns() -> None:
    proto = option_proto("SPXW240327P04925000", "AAPL240315C00172500")
    handshake(proto)
    (batch,) = proto.receive(msgpack.packb([DOC_QUOTE, DOC_TRADE]))
    assert isinstance(batch, DataBatch) and batch.n == 2
    assert list(batch.kind) == [KIND_QUOTE, KIND_TRADE]
    assert list(batch.gid) == [0, 1]
    assert batch.ts_ns[0] == ns("2024-03-12T11:59:38.897261568Z")
    assert batch.ts_ns[1] == ns("2024-03-11T13:35:35.13312256Z")
    assert (batch.bid[0], batch.ask[0], batch.bid_size[0], batch.ask_size[0]) == (9.46, 9.66, 53, 38)
    assert (batch.price[1], batch.size[1]) == (2.84, 1)


def test_unknown_symbol_gets_id_minus_one() -> None:
    proto = option_proto()
    (batch,) = proto.receive(msgpack.packb([DOC_QUOTE]))
    assert isinstance(batch, DataBatch) and batch.gid[0] == -1


@pytest.mark.parametrize(
    "stamp",
    [msgpack.Timestamp(1710244778, 0), msgpack.Timestamp(1710244778, 897261568), msgpack.Timestamp(-1, 5)],
    ids=["ts32", "ts64", "ts96"],
)
def test_all_three_timestamp_widths_decode_to_the_same_nanoseconds(stamp: msgpack.Timestamp) -> None:
    proto = option_proto("SPXW240327P04925000")
    (batch,) = proto.receive(msgpack.packb([{**DOC_QUOTE, "t": stamp}]))
    assert isinstance(batch, DataBatch)
    assert batch.ts_ns[0] == stamp.seconds * 1_000_000_000 + stamp.nanoseconds


def test_integer_prices_and_float32_are_accepted() -> None:
    proto = option_proto("SPXW240327P04925000")
    frame = msgpack.packb([{**DOC_QUOTE, "bp": 9, "ap": 10}], use_single_float=True)
    (batch,) = proto.receive(frame)
    assert isinstance(batch, DataBatch) and (batch.bid[0], batch.ask[0]) == (9.0, 10.0)


def test_control_messages_become_events() -> None:
    proto = option_proto()
    (ack,) = proto.receive(msgpack.packb([{"T": "subscription", "trades": [], "quotes": ["SPXW240327P04925000"]}]))
    assert ack == SubscriptionAck(("SPXW240327P04925000",), ())
    (err,) = proto.receive(msgpack.packb([{"T": "error", "code": 406, "msg": "connection limit exceeded"}]))
    assert err == ServerError(406, "connection limit exceeded")


def test_json_text_frames_are_understood() -> None:
    proto = option_proto()
    (err,) = proto.receive(
        json.dumps([{"T": "error", "code": 412, "msg": "option messages are only available in MsgPack format"}])
    )
    assert isinstance(err, ServerError) and err.code == 412


def test_json_quote_with_rfc3339_time_matches_msgpack_decoding() -> None:
    proto = option_proto("SPXW240327P04925000")
    doc = {**DOC_QUOTE, "t": "2024-03-12T11:59:38.897261568Z"}
    (batch,) = proto.receive(json.dumps([doc]))
    assert isinstance(batch, DataBatch) and batch.ts_ns[0] == ns("2024-03-12T11:59:38.897261568Z")


def test_stock_quote_with_condition_array_and_tape_decodes() -> None:
    index = SymbolIndex()
    index.add("FAKEPACA")
    proto = StockProtocol("k", "s", index)
    doc = {
        "T": "q",
        "S": "FAKEPACA",
        "bx": "O",
        "bp": 133.85,
        "bs": 4,
        "ax": "R",
        "ap": 135.77,
        "as": 5,
        "c": ["R"],
        "z": "A",
        "t": ts("2024-07-24T07:56:53.639713735Z"),
    }
    bar = {
        "T": "b",
        "S": "FAKEPACA",
        "o": 132.65,
        "h": 136,
        "l": 132.12,
        "c": 134.65,
        "v": 205,
        "t": ts("2024-07-24T07:56:00.0Z"),
        "n": 16,
        "vw": 133.7,
    }
    (batch,) = proto.receive(msgpack.packb([doc, bar]))
    assert isinstance(batch, DataBatch)
    assert (batch.gid[0], batch.bid[0], batch.ask[0], batch.kind[1]) == (0, 133.85, 135.77, 0)


def test_truncated_and_garbage_frames_become_malformed_events_and_counters() -> None:
    proto = option_proto("SPXW240327P04925000")
    good = msgpack.packb([DOC_QUOTE])
    for bad in (good[:-3], b"\xc1\x00", b"", msgpack.packb({"T": "q"}), msgpack.packb([{"S": "X"}])):
        events = proto.receive(bad)
        assert len(events) == 1 and isinstance(events[0], Malformed), bad
    assert proto.malformed_frames == 5
    (batch,) = proto.receive(good)  # the stream goes on
    assert isinstance(batch, DataBatch)


def test_frames_larger_than_the_columns_grow_them() -> None:
    proto = OptionProtocol("k", "s", SymbolIndex(), capacity=4)
    (batch,) = proto.receive(msgpack.packb([DOC_QUOTE] * 10))
    assert isinstance(batch, DataBatch) and batch.n == 10


quote_maps = st.fixed_dictionaries(
    {
        "T": st.just("q"),
        "S": st.sampled_from(["SPXW240327P04925000", "AAPL240315C00172500", "ZZZ240315C00172500"]),
        "t": st.builds(msgpack.Timestamp, st.integers(0, 2**33), st.integers(0, 999_999_999)),
        "bp": st.floats(0, 1e5),
        "ap": st.floats(0, 1e5),
        "bs": st.integers(0, 2**31),
        "as": st.integers(0, 2**31),
        "bx": st.text(max_size=2),
        "c": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=2))),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(quote_maps, min_size=1, max_size=20))
def test_scanner_agrees_with_a_generic_msgpack_decoder(msgs: list[dict[str, object]]) -> None:
    proto = option_proto("SPXW240327P04925000", "AAPL240315C00172500")
    (batch,) = proto.receive(msgpack.packb(msgs))
    assert isinstance(batch, DataBatch)
    ids = {"SPXW240327P04925000": 0, "AAPL240315C00172500": 1}
    for i, m in enumerate(msgpack.unpackb(msgpack.packb(msgs))):
        assert batch.gid[i] == ids.get(m["S"], -1)
        assert batch.ts_ns[i] == m["t"].to_unix_nano()
        assert batch.bid[i] == m["bp"] and batch.ask[i] == m["ap"]
        assert batch.bid_size[i] == m["bs"] and batch.ask_size[i] == m["as"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    proto = option_proto("SPXW240327P04925000")
    events = proto.receive(data)
    assert all(
        isinstance(e, (Malformed, DataBatch, ServerError, SubscriptionAck, Greeted, Authenticated)) for e in events
    )
