"""Symbol -> integer id, as a hash table in arrays so compiled code can resolve symbols from raw bytes.

The market-data scanner (``engine/alpaca/feeds/scan.py``) reads a symbol's bytes straight out of a frame and
looks it up here without creating a Python string. Ids are dense (0, 1, 2, ...), so they can index other
arrays (e.g. which book and row a contract lives in). Forgotten symbols (contracts evicted after expiry)
give their ids back for reuse: a service running for months would otherwise index every contract it
ever streamed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from numba import njit

MAX_SYMBOL_BYTES = 32


@njit(cache=True, inline="always")
def fnv1a(buf: npt.NDArray[np.uint8], start: int, length: int) -> np.uint64:
    h = np.uint64(14695981039346656037)
    for i in range(start, start + length):
        h ^= np.uint64(buf[i])
        h *= np.uint64(1099511628211)
    return h


@njit(cache=True)
def lookup(
    buf: npt.NDArray[np.uint8],
    start: int,
    length: int,
    keys: npt.NDArray[np.uint8],
    key_len: npt.NDArray[np.int16],
    values: npt.NDArray[np.int32],
) -> int:
    """Id of the symbol ``buf[start:start+length]``, or -1 when absent (open addressing, linear probe)."""
    if length <= 0 or length > keys.shape[1]:
        return -1
    mask = keys.shape[0] - 1
    slot = np.int64(fnv1a(buf, start, length) & np.uint64(mask))
    while True:
        n = key_len[slot]
        if n == 0:
            return -1
        if n == length:
            same = True
            for j in range(length):
                if keys[slot, j] != buf[start + j]:
                    same = False
                    break
            if same:
                return int(values[slot])
        slot = (slot + 1) & mask


@njit(cache=True)
def _insert(
    sym: npt.NDArray[np.uint8],
    gid: int,
    keys: npt.NDArray[np.uint8],
    key_len: npt.NDArray[np.int16],
    values: npt.NDArray[np.int32],
) -> None:
    length = sym.shape[0]
    mask = keys.shape[0] - 1
    slot = np.int64(fnv1a(sym, 0, length) & np.uint64(mask))
    while key_len[slot] != 0:
        slot = (slot + 1) & mask
    key_len[slot] = length
    for j in range(length):
        keys[slot, j] = sym[j]
    values[slot] = gid


class SymbolIndex:
    """Dense ids for symbols, mirrored in a compiled-code-friendly hash table (load factor <= 1/2)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._ids: dict[str, int] = {}
        self._symbols: list[str] = []
        self._free: list[int] = []
        self._alloc(max(16, 1 << (2 * capacity - 1).bit_length()))

    def _alloc(self, slots: int) -> None:
        self.keys = np.zeros((slots, MAX_SYMBOL_BYTES), dtype=np.uint8)
        self.key_len = np.zeros(slots, dtype=np.int16)
        self.values = np.full(slots, -1, dtype=np.int32)

    def __len__(self) -> int:
        """The size of the id space: every id in use is below it (arrays indexed by id need this many)."""
        return len(self._symbols)

    @property
    def live(self) -> int:
        """Symbols currently indexed."""
        return len(self._ids)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._ids

    def add(self, symbol: str) -> int:
        """Id of ``symbol``, assigning the next id when new; ValueError if it does not fit."""
        gid = self._ids.get(symbol)
        if gid is not None:
            return gid
        raw = symbol.encode("ascii")
        if not 0 < len(raw) <= MAX_SYMBOL_BYTES:
            raise ValueError(f"symbol must be 1..{MAX_SYMBOL_BYTES} ASCII bytes: {symbol!r}")
        if self._free:
            gid = self._free.pop()
            self._symbols[gid] = symbol
        else:
            gid = len(self._symbols)
            self._symbols.append(symbol)
        self._ids[symbol] = gid
        if 2 * len(self._ids) > self.key_len.shape[0]:
            self._alloc(2 * self.key_len.shape[0])
            self._reinsert()
        else:
            _insert(np.frombuffer(raw, dtype=np.uint8), gid, self.keys, self.key_len, self.values)
        return gid

    def forget(self, symbols: Iterable[str]) -> int:
        """Remove ``symbols``; later adds reuse their ids. The table is rebuilt in place (open addressing
        cannot simply clear a slot), so a scanner holding the arrays stays valid. Returns how many were removed."""
        removed = 0
        for symbol in symbols:
            gid = self._ids.pop(symbol, None)
            if gid is not None:
                self._symbols[gid] = ""
                self._free.append(gid)
                removed += 1
        if removed:
            self.key_len[:] = 0
            self.values[:] = -1
            self._reinsert()
        return removed

    def _reinsert(self) -> None:
        for s, i in self._ids.items():
            _insert(np.frombuffer(s.encode("ascii"), dtype=np.uint8), i, self.keys, self.key_len, self.values)

    def id_of(self, symbol: str) -> int:
        """Id of ``symbol`` or -1."""
        return self._ids.get(symbol, -1)

    def symbol(self, gid: int) -> str:
        return self._symbols[gid]
