"""The recording file format: raw frames with receive timestamps in zlib-compressed blocks.

A recording (``*.oerec``) is a sequence of independent blocks, so a file cut short by a crash loses at
most its last block and a reader can stream it without holding it in memory::

    block  = b"OEB1" | u32 raw_len | u32 compressed_len | u32 records | zlib(payload)
    payload = record*
    record = u8 stream | u64 recv_ns | u32 length | frame bytes          (little endian)

``stream`` says which websocket the frame came from (``OPTIONS``, ``STOCKS``, ``TRADING``) or marks a
``META`` record: a JSON object the recorder or an importer writes, e.g. ``{"kind": "contracts",
"underlying": "GOOG", "symbols": [...]}`` (contracts the engine subscribed to; replay registers them in
the book before their quotes arrive) or ``{"kind": "session", ...}`` (free-form provenance).

``SURFACE`` records hold the volatility-surface fits the live engine put in force (msgpack,
``engine.kernel.vol_surface.encode_fit``), at the point between frames where it did: the fits come from a
worker process, so a replay applies them instead of fitting, and decides as the live session did.

Frames are stored exactly as received (msgpack for the data streams, JSON for the trading stream), so
replay pushes them through the same protocol parsers as the live feeds.
"""

from __future__ import annotations

import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgspec

OPTIONS, STOCKS, TRADING, META, SURFACE = 0, 1, 2, 3, 4
STREAM_NAMES = {OPTIONS: "options", STOCKS: "stocks", TRADING: "trading", META: "meta", SURFACE: "surface"}
BLOCK_MAGIC = b"OEB1"
_BLOCK = struct.Struct("<4sIII")
_RECORD = struct.Struct("<BQI")
SUFFIX = ".oerec"


class RecordingError(Exception):
    """A file that is not a recording, or a block that is damaged beyond the truncated tail."""


class Record(NamedTuple):
    stream: int
    recv_ns: int
    frame: bytes


def pack_record(stream: int, recv_ns: int, frame: bytes, out: bytearray) -> None:
    """Append one record to ``out`` (the recorder's hot path: two appends, no objects kept)."""
    out += _RECORD.pack(stream, recv_ns, len(frame))
    out += frame


def compress_block(payload: bytes | bytearray, records: int, level: int = 3) -> bytes:
    """One block ready to be written: header plus the compressed payload."""
    data = zlib.compress(payload, level)
    return _BLOCK.pack(BLOCK_MAGIC, len(payload), len(data), records) + data


def meta_frame(obj: dict[str, object]) -> bytes:
    return msgspec.json.encode(obj)


class BlockWriter:
    """Writes blocks of records to one file (importers use it directly; the recorder adds rotation)."""

    def __init__(self, path: str | Path, *, block_bytes: int = 1 << 20, level: int = 3) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._buf = bytearray()
        self._count = 0
        self.block_bytes = block_bytes
        self.level = level
        self.records = 0
        self.bytes_written = 0

    def write(self, stream: int, recv_ns: int, frame: bytes) -> None:
        pack_record(stream, recv_ns, frame, self._buf)
        self._count += 1
        self.records += 1
        if len(self._buf) >= self.block_bytes:
            self.flush()

    def meta(self, recv_ns: int, obj: dict[str, object]) -> None:
        self.write(META, recv_ns, meta_frame(obj))

    def flush(self) -> None:
        if not self._count:
            return
        block = compress_block(self._buf, self._count, self.level)
        self._fh.write(block)
        self.bytes_written += len(block)
        self._buf = bytearray()
        self._count = 0

    def close(self) -> None:
        self.flush()
        self._fh.close()

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_blocks(path: str | Path) -> Iterator[bytes]:
    """Decompressed payloads of the file's blocks; a truncated last block ends the iteration quietly."""
    with open(path, "rb") as fh:
        first = True
        while True:
            head = fh.read(_BLOCK.size)
            if len(head) < _BLOCK.size:
                if first and head:
                    raise RecordingError(f"{path}: too short to be a recording")
                return
            magic, raw_len, comp_len, _records = _BLOCK.unpack(head)
            if magic != BLOCK_MAGIC:
                raise RecordingError(f"{path}: not a recording (block magic {magic!r} at offset {fh.tell() - 16})")
            data = fh.read(comp_len)
            if len(data) < comp_len:
                return  # cut short while writing: everything before is intact
            try:
                payload = zlib.decompress(data)
            except zlib.error as exc:
                raise RecordingError(f"{path}: damaged block at offset {fh.tell() - comp_len}: {exc}") from exc
            if len(payload) != raw_len:
                raise RecordingError(f"{path}: block length {len(payload)} != header {raw_len}")
            first = False
            yield payload


def iter_payload(payload: bytes) -> Iterator[Record]:
    """The records of one decompressed block."""
    pos, end, unpack = 0, len(payload), _RECORD.unpack_from
    size = _RECORD.size
    mv = memoryview(payload)
    while pos < end:
        stream, recv_ns, length = unpack(payload, pos)
        pos += size
        yield Record(stream, recv_ns, bytes(mv[pos : pos + length]))
        pos += length


def read_records(path: str | Path, *, prefetch: int = 0) -> Iterator[Record]:
    """Every record of a recording, in file order.

    ``prefetch`` > 0 reads and decompresses up to that many blocks ahead in a thread (zlib releases the
    GIL, so this overlaps with the consumer on another core).
    """
    blocks = read_blocks(path) if prefetch <= 0 else _prefetched(path, prefetch)
    for payload in blocks:
        yield from iter_payload(payload)


def _prefetched(path: str | Path, depth: int) -> Iterator[bytes]:
    done = object()
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            for payload in read_blocks(path):
                while not stop.is_set():
                    try:
                        q.put(payload, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=reader, name="recording-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def recording_files(path: str | Path) -> list[Path]:
    """A file, or every ``*.oerec`` in a directory in name order (the recorder's rotation order)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob(f"*{SUFFIX}"))
        if not files:
            raise RecordingError(f"{p}: no {SUFFIX} files")
        return files
    if not p.exists():
        raise RecordingError(f"{p}: no such recording")
    return [p]
