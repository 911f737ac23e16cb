"""Compiled single-pass decoder of market-data frames (msgpack) straight into column arrays.

A data frame is a msgpack array of maps, each with ``T`` = ``"q"`` (quote) or ``"t"`` (trade)
(docs/alpaca.md §3-5). ``scan_frame`` walks the bytes once and writes one row per
message into preallocated columns, resolving the symbol to an id through ``SymbolIndex``'s table,
so no Python object is created per message. Anything it does not handle on the fast path - control
messages (``success``/``error``/``subscription``), an encoding it does not expect, truncated bytes -
makes it return a status instead of raising; the protocol then decodes that frame with msgspec.

Timestamps: msgpack Timestamp extension (type -1) in its 32-, 64- and 96-bit forms, to int64 ns.
Numbers: any msgpack float or integer is accepted for prices and sizes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from engine.kernel.market_data import KIND_OTHER, KIND_QUOTE, KIND_TRADE
from engine.kernel.symbols import lookup

# Scan status.
SCAN_OK = 0
SCAN_CONTROL = 1
"""A message other than a data message (e.g. subscription ack): decode the frame with msgspec."""
SCAN_MALFORMED = 2
"""Bytes the scanner does not understand: msgspec decides (and reports) what they are."""
SCAN_CAPACITY = 3
"""More messages than the columns hold; ``n`` is the count needed."""

U8 = npt.NDArray[np.uint8]
# Bytes (tag included) of float32, float64, uint8..uint64, int8..int64 (tags 0xCA..0xD3).
_NUMBER_BYTES = np.array([5, 9, 2, 3, 5, 9, 2, 3, 5, 9], dtype=np.int64)


@njit(cache=True, inline="always")
def _be(buf: U8, pos: int, nbytes: int) -> int:
    v = 0
    for i in range(nbytes):
        v = (v << 8) | int(buf[pos + i])
    return v


@njit(cache=True)
def _container_len(buf: U8, pos: int, end: int) -> tuple[int, int, int]:
    """(kind 1=array 2=map 0=neither or truncated, length, position after the header)."""
    b = int(buf[pos])
    if ((b == 0xDC or b == 0xDE) and pos + 3 > end) or ((b == 0xDD or b == 0xDF) and pos + 5 > end):
        return 0, 0, pos
    if 0x90 <= b <= 0x9F:
        return 1, b & 0x0F, pos + 1
    if 0x80 <= b <= 0x8F:
        return 2, b & 0x0F, pos + 1
    if b == 0xDC:
        return 1, _be(buf, pos + 1, 2), pos + 3
    if b == 0xDD:
        return 1, _be(buf, pos + 1, 4), pos + 5
    if b == 0xDE:
        return 2, _be(buf, pos + 1, 2), pos + 3
    if b == 0xDF:
        return 2, _be(buf, pos + 1, 4), pos + 5
    return 0, 0, pos


@njit(cache=True)
def _str(buf: U8, pos: int, end: int) -> tuple[int, int, int]:
    """(start, length, position after) of a msgpack string at ``pos``; length -1 if not one (or truncated)."""
    b = int(buf[pos])
    start = -1
    n = 0
    if 0xA0 <= b <= 0xBF:
        start, n = pos + 1, b & 0x1F
    elif b == 0xD9 and pos + 2 <= end:
        start, n = pos + 2, int(buf[pos + 1])
    elif b == 0xDA and pos + 3 <= end:
        start, n = pos + 3, _be(buf, pos + 1, 2)
    elif b == 0xDB and pos + 5 <= end:
        start, n = pos + 5, _be(buf, pos + 1, 4)
    if start < 0 or start + n > end:
        return pos, -1, pos
    return start, n, start + n


@njit(cache=True)
def _skip(buf: U8, pos: int, end: int) -> int:
    """Position after the value at ``pos`` (nested containers included); -1 if malformed/truncated."""
    todo = 1
    while todo > 0:
        if pos >= end:
            return -1
        todo -= 1
        b = int(buf[pos])
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            pos += 1
        elif 0x80 <= b <= 0x8F:
            todo += 2 * (b & 0x0F)
            pos += 1
        elif 0x90 <= b <= 0x9F:
            todo += b & 0x0F
            pos += 1
        elif 0xA0 <= b <= 0xBF:
            pos += 1 + (b & 0x1F)
        elif b == 0xCC or b == 0xD0:
            pos += 2
        elif b == 0xCD or b == 0xD1:
            pos += 3
        elif b == 0xCE or b == 0xD2 or b == 0xCA:
            pos += 5
        elif b == 0xCF or b == 0xD3 or b == 0xCB:
            pos += 9
        elif b == 0xD9 or b == 0xC4:
            if pos + 1 >= end:
                return -1
            pos += 2 + int(buf[pos + 1])
        elif b == 0xDA or b == 0xC5:
            if pos + 2 >= end:
                return -1
            pos += 3 + _be(buf, pos + 1, 2)
        elif b == 0xDB or b == 0xC6:
            if pos + 4 >= end:
                return -1
            pos += 5 + _be(buf, pos + 1, 4)
        elif b == 0xD4:
            pos += 3
        elif b == 0xD5:
            pos += 4
        elif b == 0xD6:
            pos += 6
        elif b == 0xD7:
            pos += 10
        elif b == 0xD8:
            pos += 18
        elif b == 0xC7:
            if pos + 1 >= end:
                return -1
            pos += 3 + int(buf[pos + 1])
        elif b == 0xC8:
            if pos + 2 >= end:
                return -1
            pos += 4 + _be(buf, pos + 1, 2)
        elif b == 0xC9:
            if pos + 4 >= end:
                return -1
            pos += 6 + _be(buf, pos + 1, 4)
        elif b == 0xDC:
            if pos + 2 >= end:
                return -1
            todo += _be(buf, pos + 1, 2)
            pos += 3
        elif b == 0xDD:
            if pos + 4 >= end:
                return -1
            todo += _be(buf, pos + 1, 4)
            pos += 5
        elif b == 0xDE:
            if pos + 2 >= end:
                return -1
            todo += 2 * _be(buf, pos + 1, 2)
            pos += 3
        elif b == 0xDF:
            if pos + 4 >= end:
                return -1
            todo += 2 * _be(buf, pos + 1, 4)
            pos += 5
        else:
            return -1  # 0xC1 is never used
    return pos if pos <= end else -1


@njit(cache=True)
def _number(buf: U8, pos: int, end: int, scratch: U8, f64: npt.NDArray[np.float64]) -> tuple[float, int]:
    """(value, position after) of a msgpack number; position -1 if not a number (or truncated)."""
    b = int(buf[pos])
    if b >= 0xCA and b <= 0xD3 and pos + _NUMBER_BYTES[b - 0xCA] > end:
        return 0.0, -1
    if b <= 0x7F:
        return float(b), pos + 1
    if b >= 0xE0:
        return float(b - 256), pos + 1
    if b == 0xCB:
        for j in range(8):
            scratch[7 - j] = buf[pos + 1 + j]
        return f64[0], pos + 9
    if b == 0xCA:
        for j in range(4):
            scratch[3 - j] = buf[pos + 1 + j]
        return float(scratch[:4].view(np.float32)[0]), pos + 5
    if b == 0xCC:
        return float(buf[pos + 1]), pos + 2
    if b == 0xCD:
        return float(_be(buf, pos + 1, 2)), pos + 3
    if b == 0xCE:
        return float(_be(buf, pos + 1, 4)), pos + 5
    if b == 0xCF:
        return float(np.uint64(_be(buf, pos + 1, 8))), pos + 9
    if b == 0xD0:
        v = int(buf[pos + 1])
        return float(v - 256 if v >= 128 else v), pos + 2
    if b == 0xD1:
        v = _be(buf, pos + 1, 2)
        return float(v - 65536 if v >= 32768 else v), pos + 3
    if b == 0xD2:
        v = _be(buf, pos + 1, 4)
        return float(v - 4294967296 if v >= 2147483648 else v), pos + 5
    if b == 0xD3:
        for j in range(8):
            scratch[7 - j] = buf[pos + 1 + j]
        return float(scratch.view(np.int64)[0]), pos + 9
    return 0.0, -1


@njit(cache=True)
def _timestamp(buf: U8, pos: int, end: int, scratch: U8) -> tuple[int, int]:
    """(ns since epoch, position after) of a msgpack Timestamp (ext -1); position -1 otherwise."""
    b = int(buf[pos])
    if pos + (6 if b == 0xD6 else (10 if b == 0xD7 else 15)) > end:
        return 0, -1
    if b == 0xD6 and buf[pos + 1] == 0xFF:
        return _be(buf, pos + 2, 4) * 1_000_000_000, pos + 6
    if b == 0xD7 and buf[pos + 1] == 0xFF:
        hi = _be(buf, pos + 2, 4)
        lo = _be(buf, pos + 6, 4)
        nanos = hi >> 2
        seconds = ((hi & 0x3) << 32) | lo
        return seconds * 1_000_000_000 + nanos, pos + 10
    if b == 0xC7 and buf[pos + 1] == 12 and buf[pos + 2] == 0xFF:
        nanos = _be(buf, pos + 3, 4)
        for j in range(8):
            scratch[7 - j] = buf[pos + 7 + j]
        return int(scratch.view(np.int64)[0]) * 1_000_000_000 + nanos, pos + 15
    return 0, -1


@njit(cache=True)
def scan_frame(
    buf: U8,
    keys: U8,
    key_len: npt.NDArray[np.int16],
    values: npt.NDArray[np.int32],
    kind: npt.NDArray[np.int8],
    gid: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    bid_size: npt.NDArray[np.int64],
    ask_size: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.int64],
    newest: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Decode one frame into the columns; return ``(n, status)`` (see SCAN_*); ``newest[0]`` = latest ts."""
    end = buf.shape[0]
    if end == 0:
        return 0, SCAN_MALFORMED
    scratch = np.empty(8, dtype=np.uint8)
    f64 = scratch.view(np.float64)
    ck, n, pos = _container_len(buf, 0, end)
    if ck != 1:
        return 0, SCAN_MALFORMED
    if n > end - pos:
        return 0, SCAN_MALFORMED  # every message takes at least one byte: the header lies
    if n > kind.shape[0]:
        return n, SCAN_CAPACITY
    latest = 0
    for i in range(n):
        if pos >= end:
            return i, SCAN_MALFORMED
        mk, fields, pos = _container_len(buf, pos, end)
        if mk != 2:
            return i, SCAN_MALFORMED
        k = -1
        g = -1
        t = 0
        b_ = np.nan
        a_ = np.nan
        bs_ = 0
        as_ = 0
        p_ = np.nan
        s_ = 0
        for _ in range(fields):
            if pos >= end:
                return i, SCAN_MALFORMED
            ks, kl, pos = _str(buf, pos, end)
            if kl < 0 or pos >= end:
                return i, SCAN_MALFORMED
            c0 = buf[ks]
            c1 = buf[ks + 1] if kl == 2 else 0
            if kl == 1 and c0 == 84:  # "T"
                vs, vl, pos = _str(buf, pos, end)
                if vl != 1:
                    return i, SCAN_CONTROL  # "success", "error", "subscription" (or not a string)
                v = buf[vs]
                k = KIND_QUOTE if v == 113 else (KIND_TRADE if v == 116 else KIND_OTHER)
                continue
            if kl == 1 and c0 == 83:  # "S"
                vs, vl, pos = _str(buf, pos, end)
                if vl < 0:
                    return i, SCAN_MALFORMED
                g = lookup(buf, vs, vl, keys, key_len, values)
                continue
            if kl == 1 and c0 == 116:  # "t"
                t, pos = _timestamp(buf, pos, end, scratch)
                if pos < 0:
                    return i, SCAN_MALFORMED
                continue
            if kl == 2 and c1 == 112 and (c0 == 98 or c0 == 97):  # "bp" / "ap"
                x, pos = _number(buf, pos, end, scratch, f64)
                if pos < 0:
                    return i, SCAN_MALFORMED
                if c0 == 98:
                    b_ = x
                else:
                    a_ = x
                continue
            if kl == 2 and c1 == 115 and (c0 == 98 or c0 == 97):  # "bs" / "as"
                x, pos = _number(buf, pos, end, scratch, f64)
                if pos < 0:
                    return i, SCAN_MALFORMED
                if c0 == 98:
                    bs_ = int(x)
                else:
                    as_ = int(x)
                continue
            if kl == 1 and (c0 == 112 or c0 == 115):  # "p" / "s"
                x, pos = _number(buf, pos, end, scratch, f64)
                if pos < 0:
                    return i, SCAN_MALFORMED
                if c0 == 112:
                    p_ = x
                else:
                    s_ = int(x)
                continue
            pos = _skip(buf, pos, end)  # bx, ax, x, c, z, i, r, ...: not needed by the book
            if pos < 0:
                return i, SCAN_MALFORMED
        if k < 0:
            return i, SCAN_MALFORMED  # a message without "T"
        kind[i] = k
        gid[i] = g
        ts[i] = t
        bid[i] = b_
        ask[i] = a_
        bid_size[i] = bs_
        ask_size[i] = as_
        price[i] = p_
        size[i] = s_
        if t > latest:
            latest = t
    if pos != end:
        return n, SCAN_MALFORMED
    newest[0] = latest
    return n, SCAN_OK
