"""The market-data port: the column batch a quote feed hands the kernel, and what a feed client offers.

A venue adapter decodes its wire format into ``BatchColumns`` (reusable arrays, grown when a frame is
larger) and hands the kernel a ``DataBatch`` view of the rows of one frame. No per-message Python
objects cross the port: the book reads the columns with array operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

KIND_OTHER = 0
"""A data message the kernel does not consume (bars, statuses, ...): skipped."""
KIND_QUOTE = 1
KIND_TRADE = 2


class BatchColumns:
    """Reusable column arrays a decoder writes rows into (``capacity`` rows)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.gid = np.zeros(capacity, dtype=np.int32)
        self.ts = np.zeros(capacity, dtype=np.int64)
        self.bid = np.zeros(capacity, dtype=np.float64)
        self.ask = np.zeros(capacity, dtype=np.float64)
        self.bid_size = np.zeros(capacity, dtype=np.int64)
        self.ask_size = np.zeros(capacity, dtype=np.int64)
        self.price = np.zeros(capacity, dtype=np.float64)
        self.size = np.zeros(capacity, dtype=np.int64)
        self.newest = np.zeros(1, dtype=np.int64)

    def as_args(self) -> tuple[np.ndarray, ...]:
        """The arrays in the order a compiled scanner takes them."""
        return (self.kind, self.gid, self.ts, self.bid, self.ask, self.bid_size, self.ask_size, self.price,
                self.size, self.newest)


class DataBatch:
    """Column view of the data messages of one frame; valid only until the feed decodes the next one.

    Row i: ``kind`` (KIND_QUOTE/KIND_TRADE/KIND_OTHER), ``gid`` (symbol id in the feed's symbol index, -1
    when the symbol is not indexed), ``ts_ns``, quote fields ``bid ask bid_size ask_size``, trade fields
    ``price size`` (NaN/0 where not applicable).
    """

    __slots__ = ("ask", "ask_size", "bid", "bid_size", "gid", "kind", "last_ts_ns", "n", "price", "size", "ts_ns")

    def __init__(self, cols: BatchColumns, n: int, last_ts_ns: int) -> None:
        self.n = n
        self.last_ts_ns = last_ts_ns
        """Newest message timestamp in the frame (0 if none)."""
        self.kind = cols.kind[:n]
        self.gid = cols.gid[:n]
        self.ts_ns = cols.ts[:n]
        self.bid = cols.bid[:n]
        self.ask = cols.ask[:n]
        self.bid_size = cols.bid_size[:n]
        self.ask_size = cols.ask_size[:n]
        self.price = cols.price[:n]
        self.size = cols.size[:n]


class QuoteFeed(Protocol):
    """A quote feed as the kernel sees it: it streams what it is subscribed to and hands each frame to the
    callback it was built with, ``on_batch(batch, arrival_ns)`` (the kernel's ``on_option_batch`` or
    ``on_stock_batch``), with symbol ids from the kernel's symbol index."""

    def set_subscription(self, quotes: Iterable[str], trades: Iterable[str] = ()) -> tuple[int, int]:
        """Replace the subscription; the number of quote and trade symbols now subscribed."""
        ...


OnBatch = Callable[[DataBatch, int], object]
"""What a feed calls with each frame's batch and the wall time the frame arrived."""
