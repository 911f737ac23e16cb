"""The journal's intent log file: one JSON line per intent, appended through a shared memory map.

An order may go out only once its intent would survive a crash of the process (kill -9), i.e. is in the page
cache. A store into a ``MAP_SHARED`` mapping of the file is in the page cache when it completes, as a ``write``
that returned is, but without the system call: the event loop keeps the GIL. (``write`` releases it; another
thread of the engine that takes it then holds the order back behind its intent, up to the interpreter's switch
interval of 5 ms.) Like ``write`` without ``fsync``, it does not survive a power loss.

The file is reserved ahead in steps of ``STEP`` bytes with ``posix_fallocate`` (a store into a hole the disk
cannot fill would kill the process with SIGBUS instead of failing); the unused tail reads as NUL bytes and
``close`` cuts it off. Where the file cannot be reserved or mapped, appends fall back to ``pwrite``.

The file stays bounded while the engine runs for weeks: once the journal's table holds every line up to an
offset, ``restart(offset)`` moves the lines after it into a fresh file that atomically takes the log's name.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

STEP = 4 << 20
"""Bytes reserved at a time (some 6,000 intents)."""


class IntentLog:
    """An append-only file of lines, emptied when opened; ``append`` returns once the line is in the page cache."""

    def __init__(self, path: Path, step: int = STEP) -> None:
        self.path = path
        self._step = step
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._map: mmap.mmap | None = None
        self._size = 0
        self._used = 0
        self._lock = threading.Lock()  # restart (on the loop) against close (the journal's closing thread)
        self._closed = False
        self._reserve(step)

    @property
    def mapped(self) -> bool:
        """Appends are stores into the mapping (False: ``pwrite`` after a failed reservation)."""
        return self._map is not None

    @property
    def used(self) -> int:
        """Bytes appended so far (the offset ``restart`` takes)."""
        return self._used

    @property
    def needs_room(self) -> bool:
        """Three quarters of the reserved file are used: call ``make_room`` off the order path."""
        return self._map is not None and self._used * 4 > self._size * 3

    def append(self, line: bytes) -> None:
        """Append ``line``; raises ``OSError`` when it cannot be written."""
        end = self._used + len(line)
        if self._map is not None and (end <= self._size or self._reserve(max(2 * self._size, end + self._step))):
            self._map[self._used : end] = line
        elif os.pwrite(self._fd, line, self._used) != len(line):
            raise OSError(f"short write to {self.path}")
        self._used = end

    def make_room(self) -> None:
        """Reserve the next step ahead of need."""
        if self.needs_room:
            self._reserve(2 * self._size)

    def restart(self, committed: int) -> None:
        """Start a new file holding only the lines after offset ``committed`` (everything before it is in the
        journal's table); it replaces the old one under the same name, so a crash finds one or the other."""
        with self._lock:
            if not self._closed:
                self._restart(committed)

    def _restart(self, committed: int) -> None:
        tail = self._map[committed : self._used] if self._map is not None else os.pread(
            self._fd, self._used - committed, committed)
        fresh = self.path.with_name(self.path.name + ".new")
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.pwrite(fd, tail, 0) != len(tail):
                raise OSError(f"short write to {fresh}")
            os.replace(fresh, self.path)
        except OSError:
            os.close(fd)
            raise
        if self._map is not None:
            self._map.close()
            self._map = None
        os.close(self._fd)
        self._fd, self._size, self._used = fd, len(tail), len(tail)
        self._reserve(max(self._step, 2 * len(tail)))

    def close(self) -> None:
        """Cut the reserved tail off and close the file."""
        with self._lock:
            self._closed = True
            if self._map is not None:
                self._map.close()
                self._map = None
            os.ftruncate(self._fd, self._used)
            os.close(self._fd)

    def _reserve(self, size: int) -> bool:
        try:
            os.posix_fallocate(self._fd, 0, size)
            mapping = mmap.mmap(self._fd, size)
        except OSError as exc:
            log.warning("intent_log_not_mapped", path=str(self.path), bytes=size, error=str(exc))
            if self._map is not None:
                self._map.close()
                self._map = None
            return False
        if self._map is not None:
            self._map.close()
        self._map, self._size = mapping, size
        return True
