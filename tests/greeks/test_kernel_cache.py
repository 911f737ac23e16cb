"""Cached kernels load at start-up: every signature an earlier process ran is ready before the first call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

KERNELS = '''
import numpy as np
from numba import njit


@njit(cache=True)
def scaled(x, k):
    return x * k


@njit("float64(float64)", cache=True)
def declared(x):
    return x + 1.0


@njit(cache=False)
def uncached(x):
    return x
'''

FIRST = """
import numpy as np
import warmkernels as w
w.scaled(np.arange(3.0), 2.0)      # two signatures into the cache
w.scaled(np.arange(3), 2)
w.uncached(1.0)
"""

SECOND = """
import json
import numpy as np
import warmkernels as w
from greeks.kernel_cache import load_cached_kernels

before = len(w.scaled.signatures)
load = load_cached_kernels(("warmkernels",))
print(json.dumps({
    "before": before,
    "after": [str(s) for s in w.scaled.signatures],
    "loaded": load.overloads,
    "kernels": load.kernels,
    "skipped": load.skipped,
    "cache_misses": sum(w.scaled.stats.cache_misses.values()),
    "cache_hits": sum(w.scaled.stats.cache_hits.values()),
    "uncached": len(w.uncached.signatures),
}))
"""


def _run(script: str, tmp: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": f"{tmp}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout


def test_every_cached_signature_is_loaded_from_the_cache_without_a_call(tmp_path: Path) -> None:
    (tmp_path / "warmkernels.py").write_text(KERNELS)
    _run(FIRST, tmp_path)
    got = json.loads(_run(SECOND, tmp_path).strip().splitlines()[-1])
    assert got["before"] == 0
    assert sorted(got["after"]) == sorted(["(Array(float64, 1, 'C', False, aligned=True), float64)",
                                           "(Array(int64, 1, 'C', False, aligned=True), int64)"])
    assert got["loaded"] == 2 and got["cache_hits"] == 2 and got["cache_misses"] == 0  # loaded, not compiled
    assert got["kernels"] == 2  # scaled and uncached; declared was compiled at import
    assert got["uncached"] == 0 and got["skipped"] == []


def test_an_edited_kernel_does_not_load_the_old_code(tmp_path: Path) -> None:
    (tmp_path / "warmkernels.py").write_text(KERNELS)
    _run(FIRST, tmp_path)
    (tmp_path / "warmkernels.py").write_text(KERNELS.replace("return x * k", "return x * k + 1"))
    got = json.loads(_run(SECOND, tmp_path).strip().splitlines()[-1])
    assert got["after"] == [] and got["loaded"] == 0
