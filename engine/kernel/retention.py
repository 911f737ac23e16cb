"""Bounded memory for a process that runs for months: the newest ids kept, older ones asked of an archive.

``RecentIds`` is an insertion-ordered set that forgets its oldest members beyond ``capacity``; the owner
answers a miss from its archive (the journal's tables), so memory stays flat however long the history.
"""

from __future__ import annotations


class RecentIds:
    """A set of the ``capacity`` most recently added strings (the oldest leave first)."""

    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def add(self, item: str) -> None:
        ids = self._ids
        if item in ids:
            return
        ids[item] = None
        if len(ids) > self.capacity:
            del ids[next(iter(ids))]

    def discard(self, item: str) -> None:
        self._ids.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)
