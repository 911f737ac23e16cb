"""Encoding of market-data frames exactly as Alpaca sends them, fast.

Option quotes and trades are the hot path (hundreds of thousands of messages per second), so they
are not packed map by map: every message of one symbol length has the same msgpack layout, so a
numpy structured array with a fixed template (map header, keys, symbol) is filled column-wise with
the big-endian values and dumped with ``tobytes()``. The result is byte-for-byte what
``msgpack.packb`` would give for the same maps with ``t`` as a 64-bit Timestamp (ext type -1,
Alpaca's wire format; see docs/alpaca.md §4). Control messages and the low-rate stock
feed use ``msgpack``/``json`` directly.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import numpy as np

from engine.sim.clock import rfc3339
from greeks.calendar import NS_PER_SECOND

MAX_FIXSTR = 31


def _key(name: str) -> bytes:
    return bytes([0xA0 | len(name)]) + name.encode()


def _layout(symbol_len: int, kind: str) -> tuple[np.dtype, bytes]:
    """The record dtype and template bytes of one option quote ('q') or trade ('t') message."""
    if symbol_len > MAX_FIXSTR:
        raise ValueError("option symbols are at most 21 characters")
    parts: list[tuple[str, bytes, str | None, int]] = []  # (field name, fixed prefix, dtype, size)

    def fixed(b: bytes) -> None:
        parts.append(("", b, None, 0))

    def value(name: str, prefix: bytes, fmt: str, size: int) -> None:
        parts.append((name, prefix, fmt, size))

    sym_prefix = _key("S") + bytes([0xA0 | symbol_len])
    if kind == "q":
        fixed(b"\x8a" + _key("T") + _key("q") + sym_prefix)
        value("S", b"", f"S{symbol_len}", symbol_len)
        value("t", _key("t") + b"\xd7\xff", ">u8", 8)
        value("bx", _key("bx") + b"\xa1", "S1", 1)
        value("bp", _key("bp") + b"\xcb", ">f8", 8)
        value("bs", _key("bs") + b"\xce", ">u4", 4)
        value("ax", _key("ax") + b"\xa1", "S1", 1)
        value("ap", _key("ap") + b"\xcb", ">f8", 8)
        value("as", _key("as") + b"\xce", ">u4", 4)
        value("c", _key("c") + b"\xa1", "S1", 1)
    else:
        fixed(b"\x87" + _key("T") + _key("t") + sym_prefix)
        value("S", b"", f"S{symbol_len}", symbol_len)
        value("t", _key("t") + b"\xd7\xff", ">u8", 8)
        value("p", _key("p") + b"\xcb", ">f8", 8)
        value("s", _key("s") + b"\xce", ">u4", 4)
        value("x", _key("x") + b"\xa1", "S1", 1)
        value("c", _key("c") + b"\xa1", "S1", 1)
    names: list[str] = []
    formats: list[str] = []
    offsets: list[int] = []
    template = bytearray()
    for name, prefix, fmt, size in parts:
        template += prefix
        if fmt is not None:
            names.append(name)
            formats.append(fmt)
            offsets.append(len(template))
            template += b"\x00" * size
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": len(template)})
    return dtype, bytes(template)


_LAYOUTS: dict[tuple[int, str], tuple[np.dtype, bytes]] = {}


def layout(symbol_len: int, kind: str) -> tuple[np.dtype, bytes]:
    key = (symbol_len, kind)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _layout(symbol_len, kind)
    return _LAYOUTS[key]


def timestamp64(ns: np.ndarray) -> np.ndarray:
    """msgpack Timestamp 64 payloads (nanoseconds << 34 | seconds) of epoch nanoseconds."""
    ns = ns.astype(np.uint64)
    sec = ns // np.uint64(NS_PER_SECOND)
    nsec = ns % np.uint64(NS_PER_SECOND)
    return (nsec << np.uint64(34)) | sec


def array_header(count: int) -> bytes:
    """msgpack array header for ``count`` elements."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


class RecordBlock:
    """Pre-filled records for a fixed set of symbols of equal length (one block per length)."""

    def __init__(self, symbols: list[bytes], kind: str) -> None:
        self.kind = kind
        dtype, template = layout(len(symbols[0]), kind)
        self.dtype = dtype
        self.raw = np.frombuffer(template * len(symbols), dtype=np.uint8).reshape(len(symbols), -1).copy()
        self.raw.view(dtype)[:, 0]["S"] = np.array(symbols, dtype=f"S{len(symbols[0])}")

    def encode(self, which: np.ndarray, columns: dict[str, np.ndarray]) -> bytes:
        """Bytes of the records at positions ``which`` with ``columns`` written in (no array header)."""
        # index the raw bytes (a structured copy would drop the template bytes between fields)
        raw = self.raw[which]
        rec = raw.view(self.dtype)[:, 0]
        for name, values in columns.items():
            rec[name] = values
        return bytes(raw.tobytes())


def pack_control(message: dict[str, Any]) -> bytes:
    """One control message (success/error/subscription) as a msgpack one-element array."""
    return bytes(msgpack.packb([message]))


def control_json(message: dict[str, Any]) -> str:
    return json.dumps([message], separators=(",", ":"))


def msgpack_time(ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp(ns // NS_PER_SECOND, ns % NS_PER_SECOND)


def encode_messages(messages: list[dict[str, Any]], binary: bool) -> bytes | str:
    """A data frame of arbitrary messages; ``t`` holds epoch ns and becomes a Timestamp or RFC-3339 text."""
    if binary:
        return bytes(msgpack.packb([{**m, "t": msgpack_time(m["t"])} for m in messages]))
    return json.dumps([{**m, "t": rfc3339(m["t"])} for m in messages], separators=(",", ":"))
