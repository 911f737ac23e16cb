"""Trading-stream protocol: both auth shapes, listen, binary and text JSON frames, errors as events."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alpaca.feeds.trading.protocol import (
    Authorized,
    Listening,
    Malformed,
    StreamError,
    TradeUpdateReceived,
    TradingProtocol,
    TradingState,
    Unauthorized,
)

AUTHORIZED = b'{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}'
LISTENING = b'{"stream":"listening","data":{"streams":["trade_updates"]}}'


def test_current_auth_shape_then_listen_on_authorization() -> None:
    proto = TradingProtocol("KEY", "SECRET")
    proto.connection_made()
    assert [json.loads(b) for b in proto.data_to_send()] == [{"action": "auth", "key": "KEY", "secret": "SECRET"}]
    assert proto.receive(AUTHORIZED) == [Authorized()]
    assert [json.loads(b) for b in proto.data_to_send()] == [
        {"action": "listen", "data": {"streams": ["trade_updates"]}}
    ]
    assert proto.receive(LISTENING.decode()) == [Listening(("trade_updates",))]  # text frame too
    assert proto.state is TradingState.LISTENING


def test_legacy_auth_shape_as_alpaca_py_sends_it() -> None:
    proto = TradingProtocol("KEY", "SECRET", auth_shape="legacy")
    proto.connection_made()
    assert json.loads(proto.data_to_send()[0]) == {
        "action": "authenticate",
        "data": {"key_id": "KEY", "secret_key": "SECRET"},
    }


def test_unauthorized_is_reported_and_fails_the_stream() -> None:
    proto = TradingProtocol("KEY", "BAD")
    proto.connection_made()
    proto.data_to_send()
    events = proto.receive(b'{"stream":"authorization","data":{"status":"unauthorized","action":"authenticate"}}')
    assert events == [Unauthorized("authenticate")]
    assert proto.state is TradingState.FAILED
    proto.connection_made()
    assert proto.data_to_send() == []  # never retries bad keys


def test_in_stream_error_and_unknown_messages_are_events() -> None:
    proto = TradingProtocol("k", "s")
    assert proto.receive(b'{"action":"error","data":{"error_message":"internal server error"}}') == [
        StreamError("internal server error")
    ]
    (ev,) = proto.receive(b'{"stream":"surprise","data":{}}')
    assert isinstance(ev, Malformed) and "surprise" in ev.reason


def test_trade_update_decodes_with_nanosecond_timestamps_and_string_decimals() -> None:
    proto = TradingProtocol("k", "s")
    frame = json.dumps(
        {
            "stream": "trade_updates",
            "data": {
                "event": "partial_fill",
                "execution_id": "e1",
                "price": "1.05",
                "qty": "2",
                "position_qty": "-2",
                "timestamp": "2026-01-05T15:00:01.000000123Z",
                "order": {
                    "id": "o1",
                    "client_order_id": "c1",
                    "status": "partially_filled",
                    "symbol": "SPY260130P00600000",
                    "side": "sell",
                    "qty": "5",
                    "filled_qty": "2",
                    "filled_avg_price": "1.05",
                    "asset_class": "us_option",
                    "created_at": "2026-01-05T15:00:00Z",
                    "updated_at": "2026-01-05T15:00:01.000000123Z",
                    "submitted_at": "2026-01-05T15:00:00Z",
                    "extended_hours": False,
                    "legs": None,
                },
            },
        }
    ).encode()
    (ev,) = proto.receive(frame)
    assert isinstance(ev, TradeUpdateReceived)
    assert ev.update.ts_ns % 1_000_000_000 == 123
    assert ev.update.order.side == "sell" and float(ev.update.price or 0) == 1.05


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_never_raises(data: bytes) -> None:
    proto = TradingProtocol("k", "s")
    events = proto.receive(data)
    assert len(events) == 1
