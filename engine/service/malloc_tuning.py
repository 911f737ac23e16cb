"""Fixed glibc malloc thresholds for a process that runs for weeks.

glibc raises its mmap threshold to the size of every large block it frees (up to 32 MiB), so after the
first multi-megabyte transient - the day's contract listing, a snapshot page - blocks of that size come
from the brk heap instead of their own mapping, and the heap keeps whatever high-water the next such
transient leaves behind. The 1-hour soak saw the heap step up by ~4 MiB at a session roll this way.
Setting the thresholds explicitly turns the adjustment off (mallopt(3)): large blocks always get their
own mapping and go back to the kernel when freed. A user's own ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` environment settings win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value
TRIM_THRESHOLD_BYTES = 128 * 1024


def pin_malloc_thresholds() -> bool:
    """Fix the mmap and trim thresholds at glibc's initial values; False where glibc is not the allocator
    or the environment already sets them."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                 TRIM_THRESHOLD_BYTES))
