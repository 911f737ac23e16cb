"""``VolStats`` of a refitted surface: term metrics (``greeks.term_structure``) and IV rank (``greeks.iv_rank``).

The surface service (``engine.kernel.vol_surface.VolSurfaces``) calls a ``VolStatsMaker`` after each refit with
the published smiles and the look-back of daily 30-day ATM IVs the service shell handed it.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.views import VolStats
from greeks.iv_rank import iv_rank
from greeks.surface import PublishedSmile
from greeks.term_structure import term_metrics


class VolStatsMaker:
    """Turns (underlying, published smiles, history, now) into ``VolStats``; rank needs ``min_days`` of history."""

    def __init__(self, min_days: int) -> None:
        self.min_days = min_days

    def __call__(
        self, underlying: str, published: Sequence[PublishedSmile], history: Sequence[float], ts_ns: int
    ) -> VolStats | None:
        m = term_metrics(published, ts_ns)
        if m is None:
            return None
        r = iv_rank(history, m.atm_iv_30d, self.min_days)
        return VolStats(underlying, ts_ns, m.atm_iv_30d, m.rr25, m.bf25, m.term_slope, r.rank, r.percentile, r.n,
                        r.ready)
