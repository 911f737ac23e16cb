"""Cold start: importing greeks keeps Numba's scipy BLAS probe off the first call, and BLAS still works later."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import numpy as np
import greeks

res = greeks.implied_vol_and_greeks([5.0], 100.0, 100.0, 0.5, 0.04, 0.0, True)
assert res.status[0] == greeks.OK, res
print("scipy_linalg_loaded_by_first_call", "scipy.linalg" in sys.modules)

from numba import njit

@njit(cache=False)
def dot(a, b):
    return np.dot(a, b), a @ b

print("numba_dot", dot(np.arange(3.0), np.ones(3)))

import scipy.linalg

print("scipy_det", scipy.linalg.det(np.array([[2.0, 0.0], [0.0, 3.0]])), scipy.linalg.cython_blas.__name__)
"""


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed: there is no probe")
def test_first_kernel_call_does_not_import_scipy_linalg_and_numba_blas_still_works() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "scipy_linalg_loaded_by_first_call False" in out
    assert "numba_dot (3.0, 3.0)" in out
    assert "scipy_det 6.0 scipy.linalg.cython_blas" in out


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed: there is no probe")
def test_probe_skip_can_be_turned_off_by_environment() -> None:
    code = (
        "import sys, greeks; greeks.implied_vol([5.0], 100.0, 100.0, 0.5, 0.04, 0.0, True); "
        "print('scipy.linalg' in sys.modules)"
    )
    env = dict(os.environ, GREEKS_NUMBA_BLAS_PROBE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True, env=env
    ).stdout
    assert out.strip().splitlines()[-1] == "True"
