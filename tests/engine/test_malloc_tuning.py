"""glibc allocator helpers for a process that runs for weeks (engine/malloc_tuning.py)."""

from __future__ import annotations

import ctypes.util

import pytest

from engine.malloc_tuning import rss_bytes, trim_heap

glibc = pytest.mark.skipif(ctypes.util.find_library("c") is None or rss_bytes() == 0, reason="glibc and /proc")


@glibc
def test_trim_heap_gives_the_pages_of_scattered_freed_chunks_back() -> None:
    """What a session roll leaves: many mid-sized transients freed, a few survivors pinning the heap between
    them. glibc keeps those freed pages resident until ``malloc_trim`` hands them back."""
    keep: list[bytearray] = []
    transient: list[bytearray] = []
    for i in range(60_000):  # ~60 MiB in 1 KiB malloc'd blocks (above pymalloc's 512-byte limit)
        block = bytearray(b"x" * 1000)
        (keep if i % 64 == 0 else transient).append(block)
    transient.clear()
    before = rss_bytes()
    assert trim_heap()
    released = before - rss_bytes()
    assert released > 20 * 2**20, f"only {released / 2**20:.1f} MiB released"
    assert len(keep) == 938
