"""Fuzz targets: one function per parser the engine exposes to bytes it does not control.

Each target takes raw input and must either accept it or reject it *with a reason*, the way the engine
does in production; anything else (an unexpected exception, a rejection without a reason) is a bug and
raises :class:`FuzzFailure` or propagates. The hypothesis suite (``tests/fuzz``) and the million-input
run (``bench/faults.py --fuzz``, atheris when installed) share these targets and seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgpack

from engine.alpaca.broker import BrokerError, ListedContract, decode_response
from engine.alpaca.broker import OptionContract as _Contract
from engine.alpaca.feeds.marketdata import Malformed as DataMalformed
from engine.alpaca.feeds.options.protocol import OptionProtocol
from engine.alpaca.feeds.stocks.protocol import StockProtocol
from engine.alpaca.feeds.trading.models import Account, Order, Position
from engine.alpaca.feeds.trading.protocol import Malformed as TradingMalformed
from engine.alpaca.feeds.trading.protocol import TradingProtocol
from engine.kernel.symbols import SymbolIndex
from engine.service.commands import CommandVerifier, sign_command
from engine.service.config import ConfigError, parse_config_text
from engine.service.secrets import Secret

SECRET = "fuzz-secret"
OPTION_SYMBOLS = ("SPY261224C00600000", "SPY261224P00590000", "QQQ261123C00520000")
STOCK_SYMBOLS = ("SPY", "QQQ")


class FuzzFailure(AssertionError):
    """An input was mishandled (crash, or a rejection without a reason)."""


def _authenticated(proto: OptionProtocol | StockProtocol) -> OptionProtocol | StockProtocol:
    proto.connection_made()
    proto.receive(msgpack.packb([{"T": "success", "msg": "connected"}]))
    proto.receive(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
    proto.data_to_send()
    return proto


def _option_proto() -> OptionProtocol:
    index = SymbolIndex()
    for s in OPTION_SYMBOLS:
        index.add(s)
    p = _authenticated(OptionProtocol("k", "s", index))
    assert isinstance(p, OptionProtocol)
    return p


def _stock_proto() -> StockProtocol:
    index = SymbolIndex()
    for s in STOCK_SYMBOLS:
        index.add(s)
    p = _authenticated(StockProtocol("k", "s", index))
    assert isinstance(p, StockProtocol)
    return p


_OPTIONS = _option_proto()
_STOCKS = _stock_proto()
_TRADING = TradingProtocol("k", "s")
_TRADING.connection_made()
_TRADING.receive(b'{"stream":"authorization","data":{"status":"authorized","action":"authenticate"}}')
_TRADING.receive(b'{"stream":"listening","data":{"streams":["trade_updates"]}}')


def _market_frame(proto: OptionProtocol | StockProtocol, data: bytes | str) -> None:
    events = proto.receive(data)
    for e in events:
        if isinstance(e, DataMalformed) and not e.reason:
            raise FuzzFailure("market-data frame rejected without a reason")


def option_frame(data: bytes) -> None:
    """A binary (msgpack) frame on the options stream."""
    _market_frame(_OPTIONS, data)


def option_frame_text(data: bytes) -> None:
    """A text (JSON) frame on the options stream (Alpaca only sends msgpack there; it must still not crash)."""
    _market_frame(_OPTIONS, data.decode("utf-8", errors="replace"))


def stock_frame(data: bytes) -> None:
    _market_frame(_STOCKS, data)
    _market_frame(_STOCKS, data.decode("utf-8", errors="replace"))


def trading_frame(data: bytes) -> None:
    for e in _TRADING.receive(data):
        if isinstance(e, TradingMalformed) and not e.reason:
            raise FuzzFailure("trade update rejected without a reason")


_REST_TYPES: tuple[object, ...] = (Order, Account, list[Position], list[Order], list[_Contract],
                                  list[ListedContract])


def rest_response(data: bytes) -> None:
    """A 2xx REST body decoded as each type the broker client reads: a value or a BrokerError with a reason."""
    for typ in _REST_TYPES:
        try:
            decode_response(data, typ, "GET", "/fuzz")
        except BrokerError as exc:
            if "undecodable response" not in str(exc):
                raise FuzzFailure(f"rejection without a reason: {exc}") from None


def config_text(data: bytes) -> None:
    """engine.toml text: an EngineConfig, or a ConfigError listing at least one issue."""
    try:
        parse_config_text(data.decode("utf-8", errors="replace"))
    except ConfigError as exc:
        if not exc.issues:
            raise FuzzFailure("config rejected without issues") from None


_VERIFIER = CommandVerifier(Secret(SECRET))


def command(data: bytes) -> None:
    """A message on <prefix>:commands: a command, or None with a reason."""
    name, reason, _ = _VERIFIER.verify(data, time.time_ns())
    if name is None and not reason:
        raise FuzzFailure("command refused without a reason")
    if name is not None and reason != "ok":
        raise FuzzFailure(f"command accepted with reason {reason!r}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "option_frame": option_frame,
    "option_frame_text": option_frame_text,
    "stock_frame": stock_frame,
    "trading_frame": trading_frame,
    "rest_response": rest_response,
    "config_text": config_text,
    "command": command,
}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target: the fuzzers mutate these (a random byte string rarely gets past the tag)."""
    t = msgpack.Timestamp(1795450000, 123)
    quote = {"T": "q", "S": OPTION_SYMBOLS[0], "t": t, "bx": "C", "bp": 1.5, "bs": 3, "ax": "C", "ap": 1.6, "as": 4,
             "c": "A"}
    trade = {"T": "t", "S": OPTION_SYMBOLS[1], "t": t, "p": 2.84, "s": 1, "x": "N", "c": "S"}
    stock_q = {"T": "q", "S": "SPY", "t": t, "bx": "V", "bp": 600.0, "bs": 1, "ax": "V", "ap": 600.1, "as": 2,
               "c": ["R"], "z": "B"}
    order = (b'{"id":"o1","client_order_id":"oe-1","symbol":"SPY","qty":"1","filled_qty":"0","side":"buy",'
             b'"type":"limit","time_in_force":"day","status":"new","order_class":"simple","limit_price":"1.5",'
             b'"created_at":"2026-11-23T14:30:00Z"}')
    update = (b'{"stream":"trade_updates","data":{"event":"fill","execution_id":"e1","price":"1.5","qty":"1",'
              b'"position_qty":"1","timestamp":"2026-11-23T14:30:00.5Z","order":' + order + b"}}")
    return {
        "option_frame": [msgpack.packb([quote]), msgpack.packb([trade, quote]),
                         msgpack.packb([{"T": "error", "code": 405, "msg": "symbol limit exceeded"}])],
        "option_frame_text": [b'[{"T":"success","msg":"authenticated"}]'],
        "stock_frame": [msgpack.packb([stock_q]), b'[{"T":"subscription","quotes":["SPY"],"trades":[]}]'],
        "trading_frame": [update, b'{"stream":"listening","data":{"streams":["trade_updates"]}}'],
        "rest_response": [order, b"[" + order + b"]",
                          b'{"id":"a","account_number":"PA1","status":"ACTIVE","currency":"USD","cash":"1000",'
                          b'"equity":"1000","buying_power":"2000"}'],
        "config_text": [b'[engine]\nmode = "sim"\n[strategies.iron_condor]\nmax_qty = 3\n',
                        b'[risk.breakers]\nstale_data_after_ms = 2000\n'],
        "command": [sign_command(SECRET, "pause"), sign_command(SECRET, "flatten")],
    }
