"""How well published smiles fit their quotes: expiries fitted / published, median RMSE, share inside the band.

Scored as the fitter selects its inputs: strikes whose call delta (at the mid IV) lies in ``delta_range``. RMSE
is in vol points (100 x IV units) per published expiry, its median over expiries; "in band" is the share of
those strikes, pooled, whose fitted IV lies within the quote's bid/ask IV band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from greeks.surface import ExpiryQuotes, PublishedSmile
from greeks.svi import FIT_OK, implied_vol_from_svi


class FitQuality(NamedTuple):
    """Expiries quoted, fitted this round (status ok), published (params in force); median RMSE; in-band share."""

    expiries: int
    fitted: int
    published: int
    median_rmse_vol_pts: float
    in_band: float


def fit_quality(
    quotes: Sequence[ExpiryQuotes], published: Sequence[PublishedSmile], delta_range: tuple[float, float] = (0.05, 0.95)
) -> FitQuality:
    """Score ``published`` against the ``quotes`` it was fitted on (NaN statistics when nothing is published)."""
    by_id = {q.expiry: q for q in quotes}
    lo, hi = delta_range
    rmse: list[float] = []
    inside = total = 0
    for p in published:
        q = by_id.get(p.expiry)
        if p.params is None or q is None:
            continue
        i = q.inputs
        sel = (i.call_delta >= lo) & (i.call_delta <= hi)
        if not sel.any():
            continue
        fit = implied_vol_from_svi(p.params, i.k[sel], q.t)
        rmse.append(100.0 * float(np.sqrt(np.mean((fit - i.iv_mid[sel]) ** 2))))
        inside += int(np.sum((fit >= i.iv_bid[sel]) & (fit <= i.iv_ask[sel])))
        total += int(sel.sum())
    return FitQuality(
        expiries=len(quotes),
        fitted=sum(1 for p in published if p.status == FIT_OK),
        published=sum(1 for p in published if p.params is not None),
        median_rmse_vol_pts=float(np.median(rmse)) if rmse else math.nan,
        in_band=inside / total if total else math.nan,
    )
