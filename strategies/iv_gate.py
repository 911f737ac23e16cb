"""Entry gating on the underlying's IV rank: a strategy opens only while its surface's IV rank is in bounds.

``min_iv_rank`` / ``max_iv_rank`` (0-100, each optional) are per-strategy config fields; with neither set
nothing is gated. Otherwise an entry needs a ``VolStats`` for the underlying (else ``no_surface``), a rank the
history supports (``rank_ready``, else ``insufficient_history``) and ``min_iv_rank <= rank <= max_iv_rank``
(else ``below_min_rank`` / ``above_max_rank``). Exits are never gated.
"""

from __future__ import annotations

import math
from typing import Literal

from domain.views import VolStats

IvBlock = Literal["", "no_surface", "insufficient_history", "below_min_rank", "above_max_rank"]


def iv_block_reason(stats: VolStats | None, min_rank: float | None, max_rank: float | None) -> IvBlock:
    """Why an entry is blocked by the IV-rank bounds ("" when it may go ahead)."""
    if min_rank is None and max_rank is None:
        return ""
    if stats is None:
        return "no_surface"
    if not stats.rank_ready or not math.isfinite(stats.iv_rank):
        return "insufficient_history"
    if min_rank is not None and stats.iv_rank < min_rank:
        return "below_min_rank"
    if max_rank is not None and stats.iv_rank > max_rank:
        return "above_max_rank"
    return ""
