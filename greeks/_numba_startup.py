"""Keep Numba's one-off start-up work off the cold start: its BLAS probe imports all of scipy.linalg.

When Numba initialises its CPU target (first compile or first cache load in a process) it imports
``numba.np.arraymath``, whose module body probes for BLAS with ``import scipy.linalg.cython_blas``. With scipy
installed that import executes ``scipy.linalg``'s package and scipy's array-API layer, which clones numpy and
so imports numpy.f2py, numpy.ma and more: 0.4-0.7 s of a warm-cache cold start of about 1 s. No greeks kernel
uses BLAS. The probe's only lasting effect is one flag, read when Numba compiles ``np.convolve`` or
``np.correlate`` (BLAS inner product or a plain loop); ``np.dot``, ``@`` and ``np.linalg`` import scipy
themselves when first compiled, so they keep working (``tests/greeks/test_cold_start.py``).

``skip_blas_probe()`` imports ``numba.np.arraymath`` once with the probe answered "absent" and then removes
the block, so a later ``import scipy.linalg`` is untouched. It does nothing if Numba's target is already up,
if scipy.linalg is already loaded (then the probe is free), or when ``GREEKS_NUMBA_BLAS_PROBE=1``.
"""

from __future__ import annotations

import os
import sys

_PROBED_MODULE = "scipy.linalg.cython_blas"


def skip_blas_probe() -> bool:
    """Import ``numba.np.arraymath`` without its scipy BLAS probe; True if this call did so."""
    if os.environ.get("GREEKS_NUMBA_BLAS_PROBE") == "1":
        return False
    if "numba.np.arraymath" in sys.modules or _PROBED_MODULE in sys.modules:
        return False
    sys.modules[_PROBED_MODULE] = None  # type: ignore[assignment]  # import raises ImportError: "no BLAS"
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if _PROBED_MODULE in sys.modules and sys.modules[_PROBED_MODULE] is None:
            del sys.modules[_PROBED_MODULE]
    return True
