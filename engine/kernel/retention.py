"""Bounded memory for a process that runs for months: the newest ids kept, older ones asked of an archive.

``RecentIds`` is an insertion-ordered set that forgets its oldest members beyond ``capacity``; the owner
answers a miss from its archive (the journal's tables), so memory stays flat however long the history.
``BloomFilter`` (1 MiB) tells most ids never seen from the rest without asking the archive.
"""

from __future__ import annotations

from collections import deque


class RecentIds:
    """A set of the ``capacity`` most recently added strings (the oldest leave first)."""

    __slots__ = ("_ids", "_order", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: set[str] = set()
        self._order: deque[str] = deque()
        """Insertion order (a dict popped from the front slows down: its iteration skips the holes)."""

    def add(self, item: str) -> None:
        if item in self._ids:
            return
        self._ids.add(item)
        self._order.append(item)
        while len(self._order) > self.capacity:
            self._ids.discard(self._order.popleft())

    def discard(self, item: str) -> None:
        if item in self._ids:
            self._ids.discard(item)
            self._order.remove(item)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class BloomFilter:
    """A fixed-size set of strings that may answer "maybe" for one never added (about 4 % at a million members
    with the defaults, more beyond), never "no" for one added: the owner confirms a "maybe" in its archive.
    Positions come from the built-in ``hash`` (per process: the filter is rebuilt at each start)."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits_log2: int = 23) -> None:
        self._bits = bytearray(1 << (bits_log2 - 3))
        self._mask = (1 << bits_log2) - 1

    def add(self, item: str) -> None:
        h, m, bits = hash(item), self._mask, self._bits
        a, b, c = h & m, (h >> 23) & m, (h >> 41) & m
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        bits[c >> 3] |= 1 << (c & 7)

    def __contains__(self, item: object) -> bool:
        h, m, bits = hash(item), self._mask, self._bits
        a, b, c = h & m, (h >> 23) & m, (h >> 41) & m
        return bool(bits[a >> 3] & (1 << (a & 7)) and bits[b >> 3] & (1 << (b & 7))
                    and bits[c >> 3] & (1 << (c & 7)))
