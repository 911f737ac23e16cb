"""Writing market data as Alpaca stream frames into a recording (shared by every importer).

An importer turns its source into per-instant quote columns and calls ``QuoteFrameWriter``: option
quotes become msgpack frames byte-identical to the options stream's (``T="q"``, ``t`` a msgpack
Timestamp ext -1), underlying quotes become stock-stream frames. The contracts of each underlying go
first as a ``contracts`` META record, so replay can index them before their quotes arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.replay.format import OPTIONS, STOCKS, BlockWriter
from engine.sim.wire import RecordBlock, array_header, encode_messages, timestamp64

MAX_FRAME_MESSAGES = 400
"""Alpaca batches a few hundred messages per frame at most; keep imported frames alike."""


class QuoteFrameWriter:
    """Option and stock quote frames for a fixed contract list, appended to a recording."""

    def __init__(self, path: str | Path, source: str) -> None:
        self.writer = BlockWriter(path)
        self.source = source
        self.symbols: list[str] = []
        self._blocks: dict[int, tuple[RecordBlock, np.ndarray]] = {}
        self._pos = np.zeros(0, dtype=np.int64)
        self.option_messages = 0
        self.stock_messages = 0
        self.first_ns = 0
        self.last_ns = 0

    def session(self, ts_ns: int, **info: object) -> None:
        self.writer.meta(ts_ns, {"kind": "session", "source": self.source, **info})

    def contracts(self, ts_ns: int, underlying: str, symbols: Sequence[str]) -> None:
        """Declare the contracts of ``underlying`` (call once per underlying before its quotes)."""
        self.symbols.extend(symbols)
        self.writer.meta(ts_ns, {"kind": "contracts", "underlying": underlying, "symbols": list(symbols)})
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(self.symbols):
            by_len.setdefault(len(s), []).append(i)
        self._blocks = {
            n: (RecordBlock([self.symbols[i].encode() for i in idx], "q"), np.array(idx, dtype=np.int64))
            for n, idx in by_len.items()
        }
        pos = np.zeros(len(self.symbols), dtype=np.int64)
        for _, idx in self._blocks.values():
            pos[idx] = np.arange(len(idx))
        self._pos = pos

    def option_quotes(
        self,
        ts_ns: int,
        which: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bid_size: np.ndarray,
        ask_size: np.ndarray,
    ) -> None:
        """Quotes of contracts ``which`` (indices into the declared list) at ``ts_ns``, split into frames."""
        which = np.asarray(which, dtype=np.int64)
        for lo in range(0, len(which), MAX_FRAME_MESSAGES):
            sel = slice(lo, lo + MAX_FRAME_MESSAGES)
            self._option_frame(ts_ns, which[sel], bid[sel], ask[sel], bid_size[sel], ask_size[sel])

    def _option_frame(self, ts_ns: int, which: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                      bs: np.ndarray, asz: np.ndarray) -> None:
        n = len(which)
        if n == 0:
            return
        parts = [array_header(n)]
        lengths = np.fromiter((len(self.symbols[i]) for i in which), dtype=np.int64, count=n)
        stamp = timestamp64(np.full(n, ts_ns, dtype=np.int64))
        for length, (block, _) in self._blocks.items():
            m = lengths == length
            if not m.any():
                continue
            parts.append(block.encode(self._pos[which[m]], {
                "t": stamp[m], "bx": np.full(int(m.sum()), b"C", dtype="S1"), "bp": bid[m].astype(np.float64),
                "bs": bs[m].astype(np.uint32), "ax": np.full(int(m.sum()), b"C", dtype="S1"),
                "ap": ask[m].astype(np.float64), "as": asz[m].astype(np.uint32),
                "c": np.full(int(m.sum()), b" ", dtype="S1"),
            }))
        self.writer.write(OPTIONS, ts_ns, b"".join(parts))
        self.option_messages += n
        self._seen(ts_ns)

    def stock_quote(self, ts_ns: int, symbol: str, bid: float, ask: float, bid_size: int = 1,
                    ask_size: int = 1) -> None:
        frame = encode_messages([{"T": "q", "S": symbol, "t": ts_ns, "bx": "V", "bp": float(bid), "bs": int(bid_size),
                                  "ax": "V", "ap": float(ask), "as": int(ask_size), "c": ["R"], "z": "C"}], True)
        assert isinstance(frame, bytes)
        self.writer.write(STOCKS, ts_ns, frame)
        self.stock_messages += 1
        self._seen(ts_ns)

    def _seen(self, ts_ns: int) -> None:
        self.first_ns = self.first_ns or ts_ns
        self.last_ns = max(self.last_ns, ts_ns)

    def close(self) -> dict[str, int]:
        self.writer.close()
        return {"option_messages": self.option_messages, "stock_messages": self.stock_messages,
                "records": self.writer.records, "bytes": self.writer.bytes_written}
