"""The recorder: raw frames of the option, stock and trading streams, with receive times, to disk.

Switched on by ``[record] enabled = true``. The feed clients hand every frame to ``Recorder.tap``
before decoding it; the tap only appends a reference to the frame and ``time.time_ns()`` to a list
(under a lock, a few hundred nanoseconds, no copy). A writer thread swaps the buffer out every
``flush_interval_s``, compresses it (zlib releases the GIL) and appends it as one block to the current
file under ``<state_dir>/<dir>``; files rotate at ``max_file_mb`` and the oldest are deleted to keep the
directory under ``max_total_mb``. If the disk cannot keep up the buffer stops growing at
``max_buffer_mb`` and frames are dropped (counted in ``dropped``), never blocking the feeds.

Besides the frames, ``note_book`` records what the engine learned over REST, which the streams never
carry: the contracts it subscribed to (META ``contracts`` records) and the snapshot quotes and
underlying quote it primed the book with (as synthetic stream frames), so a replay starts from the
same book. The file format is in ``engine/replay/format.py``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from engine.kernel.vol_surface import FitKey, VolSurfaces, encode_fit
from engine.replay.format import META, OPTIONS, STOCKS, SUFFIX, SURFACE, compress_block, meta_frame, pack_record
from engine.service.config import RecordSection as RecordConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.kernel.market import Market

log = structlog.get_logger(__name__)

MB = 1 << 20


class Recorder:
    """Appends frames to a rotating, size-bounded set of ``*.oerec`` files in ``directory``."""

    def __init__(self, directory: str | Path, config: RecordConfig = RecordConfig()) -> None:
        self.directory = Path(directory)
        self.config = config
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, bytes]] = []
        """(stream, receive ns, frame) not yet written: the loop only appends references, no copies."""
        self._pending_bytes = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._fh: Any = None
        self._file_bytes = 0
        self._file_no = 0
        self.path: Path | None = None
        self.frames = 0
        self.dropped = 0
        self.bytes_written = 0
        self.files_deleted = 0
        self._contracts: dict[str, dict[str, int]] = {}
        """Contracts recorded per underlying (symbol -> open interest), re-written at each rotation."""
        self._spot_recorded: set[str] = set()
        self._max_buffer = int(config.max_buffer_mb * MB)

    # --- hot path ------------------------------------------------------------------------------

    def record(self, stream: int, frame: bytes | str) -> None:
        """Append one frame with its receive time (called by the feeds before they decode it)."""
        now = time.time_ns()
        data = frame.encode() if isinstance(frame, str) else frame
        with self._lock:
            if self._pending_bytes > self._max_buffer:
                self.dropped += 1
                return
            self._pending.append((stream, now, data))
            self._pending_bytes += len(data)
        self.frames += 1

    def tap(self, stream: int) -> Callable[[bytes | str], None]:
        """The raw-frame callback for one feed client."""

        def on_frame(frame: bytes | str) -> None:
            self.record(stream, frame)

        return on_frame

    # --- what REST told the engine ---------------------------------------------------------------

    def note_book(self, market: Market) -> None:
        """Record contracts the book gained since the last call, with their snapshot quotes and the spot."""
        from engine.sim.wire import encode_messages

        now = time.time_ns()
        for underlying, book in market.books.items():
            first = underlying not in self._contracts
            known = self._contracts.setdefault(underlying, {})
            fresh = [i for i, s in enumerate(book.symbols) if s not in known]
            if fresh or first:
                symbols = [book.symbols[i] for i in fresh]
                oi = [int(book.open_interest[i]) for i in fresh]
                known.update(zip(symbols, oi, strict=True))
                self._append(META, now, meta_frame({"kind": "contracts", "underlying": underlying,
                                                    "symbols": symbols, "open_interest": oi, "primed": True}))
            if underlying not in self._spot_recorded and np.isfinite(book.spot) and book.spot_ts_ns:
                self._spot_recorded.add(underlying)
                frame = encode_messages([{"T": "q", "S": underlying, "t": book.spot_ts_ns, "bx": "V",
                                          "bp": book.spot, "bs": 1, "ax": "V", "ap": book.spot, "as": 1,
                                          "c": ["R"], "z": "C"}], True)
                self._append(STOCKS, now, frame.encode() if isinstance(frame, str) else frame)
            if not fresh:
                continue
            quoted = [i for i in fresh
                      if book.quote_ts_ns[i] > 0 and np.isfinite(book.bid[i]) and np.isfinite(book.ask[i])]
            quotes = [{"T": "q", "S": book.symbols[i], "t": int(book.quote_ts_ns[i]), "bx": "",
                       "bp": float(book.bid[i]), "bs": int(book.bid_size[i]), "ax": "", "ap": float(book.ask[i]),
                       "as": int(book.ask_size[i]), "c": " "} for i in quoted]
            for lo in range(0, len(quotes), 500):
                frame = encode_messages(quotes[lo : lo + 500], True)
                self._append(OPTIONS, now, frame.encode() if isinstance(frame, str) else frame)

    def attach_surfaces(self, surfaces: VolSurfaces) -> None:
        """Record every volatility-surface fit the engine puts in force (``SURFACE`` records), announced by a
        META record, so that a replay applies the live fits instead of fitting on its own clock."""
        if not surfaces.settings.enabled:
            return
        self._append(META, time.time_ns(), meta_frame({"kind": "surfaces", "recorded": True}))

        def on_applied(key: FitKey, result: Any) -> None:
            self._append(SURFACE, time.time_ns(), encode_fit(key, result))

        surfaces.on_applied = on_applied

    def _append(self, stream: int, ts_ns: int, data: bytes) -> None:
        with self._lock:
            self._pending.append((stream, ts_ns, data))
            self._pending_bytes += len(data)

    # --- writer thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_next()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        log.info("recorder_started", path=str(self.path))

    def close(self) -> None:
        """Write what is buffered and close the file (blocks briefly: call it at shutdown)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self._flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        log.info("recorder_stopped", frames=self.frames, dropped=self.dropped, bytes=self.bytes_written)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            try:
                self._flush()
            except OSError as exc:  # a full or failing disk must not take the engine down
                log.error("recorder_write_failed", error=str(exc))
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            pending = self._pending
            self._pending, self._pending_bytes = [], 0
        buf = bytearray()
        for stream, ts_ns, data in pending:
            pack_record(stream, ts_ns, data, buf)
        count = len(pending)
        if self._fh is None:
            self._open_next()
        block = compress_block(buf, count, self.config.compress_level)
        self._fh.write(block)
        self._fh.flush()
        self._file_bytes += len(block)
        self.bytes_written += len(block)
        if self._file_bytes >= self.config.max_file_mb * MB:
            self._rotate()
        self._enforce_total()

    def _rotate(self) -> None:
        self._fh.close()
        self._open_next()
        # each file starts with every contract known so far, so it replays on its own
        payload = bytearray()
        n = 0
        now = time.time_ns()
        for underlying, known in self._contracts.items():
            if known:
                pack_record(META, now, meta_frame({"kind": "contracts", "underlying": underlying,
                                                   "symbols": list(known), "open_interest": list(known.values())}),
                            payload)
                n += 1
        if n:
            block = compress_block(payload, n, self.config.compress_level)
            self._fh.write(block)
            self._file_bytes += len(block)

    def _open_next(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        self._file_no += 1
        self.path = self.directory / f"rec-{stamp}-{self._file_no:04d}{SUFFIX}"
        self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close/_rotate)
        self._file_bytes = 0

    def _enforce_total(self) -> None:
        files = sorted(self.directory.glob(f"*{SUFFIX}"))
        sizes = [f.stat().st_size for f in files]
        total = sum(sizes)
        limit = self.config.max_total_mb * MB
        for f, size in zip(files, sizes, strict=True):
            if total <= limit or f == self.path:
                break
            f.unlink(missing_ok=True)
            total -= size
            self.files_deleted += 1
            log.info("recording_deleted", path=str(f), reason="max_total_mb")


def recorder_for(cfg: Any, state_dir: Path) -> Recorder | None:
    """The recorder ``cfg.record`` asks for, started (None when recording is off)."""
    rc: RecordConfig = cfg.record
    if not rc.enabled:
        return None
    d = Path(rc.dir)
    recorder = Recorder(d if d.is_absolute() else state_dir / d, rc)
    recorder.start()
    return recorder
