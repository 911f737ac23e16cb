"""Hypothesis fuzzing of every parser fed by bytes the engine does not control (~10k inputs in all).

Feed frames (options msgpack and JSON, stocks, trade updates), REST response bodies, engine.toml text and
Redis command messages: each input is accepted or rejected with a reason, never a crash or a hang (each
example is timed). Inputs are random bytes, mutated valid messages (``targets.seeds``) and structured
messages with hostile field values. The million-input run is ``bench/faults.py --fuzz``.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .targets import OPTION_SYMBOLS, SECRET, TARGETS, seeds

SEEDS = seeds()
BATCH = 4  # inputs per example: 7 targets x 360 examples x 4 = ~10k inputs, plus the structured tests
FAST = settings(max_examples=360, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SLOW_BOUND_S = 0.5


def _run(target: str, data: bytes) -> None:
    t0 = time.perf_counter()
    TARGETS[target](data)
    elapsed = time.perf_counter() - t0
    assert elapsed < SLOW_BOUND_S, f"{target} took {elapsed:.3f}s on {data[:80]!r}"


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    """A seed with random byte flips, insertions, deletions and truncation."""
    base = bytearray(draw(st.sampled_from(SEEDS[target])))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(len(base) - 1, 0)))
        if op == 0 and base:
            base[pos] = draw(st.integers(0, 255))
        elif op == 1:
            base[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and base:
            del base[pos:pos + draw(st.integers(1, 8))]
        else:
            base = base[:pos]
    return bytes(base)


def inputs(target: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), mutated(target))


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=24), st.binary(max_size=16))


@st.composite
def hostile_market_message(draw: st.DrawFn) -> dict[str, Any]:
    msg: dict[str, Any] = {"T": draw(st.sampled_from(["q", "t", "b", "success", "error", "subscription", "x", ""]))}
    msg["S"] = draw(st.one_of(st.sampled_from(OPTION_SYMBOLS), st.text(max_size=30), scalars))
    for key in draw(st.lists(st.sampled_from(["t", "bp", "bs", "ap", "as", "p", "s", "bx", "ax", "c", "x", "msg",
                                              "code", "quotes", "trades"]), max_size=8)):
        stamp = st.builds(msgpack.Timestamp, st.integers(-(2**33), 2**33), st.integers(0, 10**9 - 1))
        msg[key] = draw(st.one_of(scalars, st.lists(scalars, max_size=3), stamp))
    return msg


@pytest.mark.parametrize("target", ["option_frame", "option_frame_text", "stock_frame", "trading_frame",
                                    "rest_response", "config_text", "command"])
@FAST
@given(data=st.data())
def test_random_and_mutated_input_is_accepted_or_rejected_with_a_reason(target: str, data: st.DataObject) -> None:
    for raw in data.draw(st.lists(inputs(target), min_size=BATCH, max_size=BATCH)):
        _run(target, raw)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.lists(hostile_market_message(), min_size=1, max_size=6))
def test_market_messages_with_hostile_field_values_never_crash_the_scanner(msgs: list[dict[str, Any]]) -> None:
    frame = msgpack.packb(msgs, default=repr)
    _run("option_frame", frame)
    _run("stock_frame", frame)


json_values = st.recursive(scalars.filter(lambda v: not isinstance(v, bytes)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.dictionaries(st.sampled_from(["event", "order", "execution_id", "price", "qty", "legs", "position_qty",
                                        "timestamp", "position_qtys"]), json_values, max_size=8))
def test_trade_updates_with_any_json_shape_are_handled(data: dict[str, Any]) -> None:
    import json

    body = json.dumps({"stream": "trade_updates", "data": data}, default=repr).encode()
    _run("trading_frame", body)
    _run("rest_response", json.dumps(data, default=repr).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.dictionaries(st.sampled_from(["v", "command", "id", "ts_ns", "sig", "args", "extra"]), json_values,
                       max_size=7))
def test_command_messages_of_any_shape_are_refused_with_a_reason(msg: dict[str, Any]) -> None:
    import json

    _run("command", json.dumps(msg, default=repr).encode())


def test_a_signed_command_is_accepted_once_and_its_replay_refused() -> None:
    """The positive control: the target accepts what it should (otherwise every run above would be vacuous)."""
    from engine.service.commands import CommandVerifier, sign_command
    from engine.service.secrets import Secret

    v = CommandVerifier(Secret(SECRET))
    raw = sign_command(SECRET, "pause")
    assert v.verify(raw)[0] == "pause"
    assert v.verify(raw)[1].startswith("replayed")


def test_an_undecodable_rest_body_is_a_broker_error_with_the_reason() -> None:
    """Regression: a 2xx body that is not JSON escaped as msgspec.DecodeError past every ``except BrokerError``."""
    from engine.alpaca.broker import BrokerError, decode_response
    from engine.alpaca.feeds.trading.models import Account

    with pytest.raises(BrokerError, match="undecodable response to GET /v2/account"):
        decode_response(b"<html>gateway</html>", Account, "GET", "/v2/account")


def test_a_timestamp_beyond_int64_nanoseconds_is_a_malformed_frame_not_a_crash() -> None:
    """Regression (atheris, bench/faults.py): a msgpack Timestamp of ~2**64 s made the column write raise
    OverflowError out of receive; the options feed task would have died on one hostile frame."""
    from engine.alpaca.feeds.marketdata import Malformed

    from .targets import _option_proto

    frame = bytes.fromhex(
        "918aa154a132a13030a174d728000001ec6b046490a278a143a26270cb3ff8000000000000a23631"
        "35a174d7ffffffffffffff0190a26278a19aa2617304a163a141"
    )
    events = _option_proto().receive(frame)
    assert any(isinstance(e, Malformed) and "bad message" in e.reason for e in events)
