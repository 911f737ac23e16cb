"""Load the compiled kernels from Numba's on-disk cache at start-up, before the first tick needs them.

An ``@njit(cache=True)`` function is loaded from its cache file at its first *call*: in the engine that is the
first frame, the first order's gate check or the first surface put in force, each paying a few milliseconds
(a cache load) or seconds (a compile), and the process's memory steps up mid-session. ``load_cached_kernels``
walks the kernels of the loaded modules of the given packages and loads every overload their cache index holds
for the current code and CPU: the signatures this installation has run before. On a cold cache nothing is
listed and the kernels compile at first use, as without it.

Numba has no public call for "every cached signature", so this reads the cache's index through
``numba.core.caching`` internals (checked on Numba 0.68); if they change, it loads nothing and says so in
``KernelLoad.skipped``, and the kernels load lazily as before.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class KernelLoad:
    """What ``load_cached_kernels`` did."""

    kernels: int = 0
    """Kernels (dispatchers) visited."""
    overloads: int = 0
    """Overloads loaded from the cache."""
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    """Kernels whose cache could not be read or loaded (``module.name: reason``)."""


def dispatchers(packages: tuple[str, ...]) -> list[Any]:
    """The ``@njit`` functions defined in the loaded modules of ``packages`` that compile at their first call
    (one declared with its signatures compiled, or loaded, when its module was imported)."""
    from numba.core.registry import CPUDispatcher

    out = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name in packages or name.startswith(tuple(p + "." for p in packages))):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == name and getattr(obj, "_can_compile", True):
                out.append(obj)
    return out


def cached_signatures(dispatcher: Any) -> list[tuple[Any, ...]]:
    """The argument signatures ``dispatcher``'s cache holds for its current code and this CPU."""
    cache: Any = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache is None or cache_file is None:  # cache=False: a NullCache
        return []
    codegen = dispatcher.targetctx.codegen()
    # an index key is (signature, CPU and flags, hashes of the bytecode): keep the keys the current code would use
    return [key[0] for key in cache_file._load_index() if key == cache._index_key(key[0], codegen)]


def load_cached_kernels(packages: tuple[str, ...]) -> KernelLoad:
    """Load every cached overload of the kernels in the loaded modules of ``packages`` (see the module doc)."""
    t0 = time.perf_counter()
    result = KernelLoad()
    for dispatcher in dispatchers(packages):
        result.kernels += 1
        label = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
        try:
            for sig in cached_signatures(dispatcher):
                if sig not in dispatcher.overloads:
                    dispatcher.compile(sig)  # found in the cache: a load, not a compile
                    result.overloads += 1
        except Exception as exc:
            result.skipped.append(f"{label}: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - t0
    return result
