"""The journal's intent log file: one JSON line per intent, appended through a shared memory map.

An order may go out only once its intent would survive a crash of the process (kill -9), i.e. is in the page
cache. A store into a ``MAP_SHARED`` mapping of the file is in the page cache when it completes, as a ``write``
that returned is, but without the system call: the event loop keeps the GIL. (``write`` releases it; another
thread of the engine that takes it then holds the order back behind its intent, up to the interpreter's switch
interval of 5 ms.) Like ``write`` without ``fsync``, it does not survive a power loss.

The file is reserved ahead in steps of ``STEP`` bytes with ``posix_fallocate`` (a store into a hole the disk
cannot fill would kill the process with SIGBUS instead of failing); the unused tail reads as NUL bytes and
``close`` cuts it off. Where the file cannot be reserved or mapped, appends fall back to ``pwrite``.
"""

from __future__ import annotations

import mmap
import os
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
        self._reserve(step)

    @property
    def mapped(self) -> bool:
        """Appends are stores into the mapping (False: ``pwrite`` after a failed reservation)."""
        return self._map is not None

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

    def close(self) -> None:
        """Cut the reserved tail off and close the file."""
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
