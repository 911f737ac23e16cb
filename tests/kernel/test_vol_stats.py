"""The surface service's VolStats: term metrics of the published smiles and IV rank in the handed history."""

from __future__ import annotations

import math

import pytest

from engine.kernel.vol_stats import VolStatsMaker
from greeks.surface import PublishedSmile
from greeks.svi import FIT_OK, SviParams
from greeks.term_structure import T_30D


def flat(vol: float, t: float) -> PublishedSmile:
    return PublishedSmile("e", t, SviParams(vol * vol * t, 0.0, 0.0, 0.0, 0.1), FIT_OK, 0.0, 0.0)


def test_stats_carry_the_30_day_vol_and_its_rank() -> None:
    make = VolStatsMaker(min_days=3)
    s = make("SPY", [flat(0.2, T_30D)], [0.1, 0.3, 0.15], 5)
    assert s is not None and s.underlying == "SPY" and s.ts_ns == 5
    assert s.atm_iv_30d == pytest.approx(0.2) and s.rr25 == pytest.approx(0.0, abs=1e-12)
    assert s.rank_ready and s.iv_rank == pytest.approx(50.0) and s.iv_percentile == pytest.approx(200 / 3)
    short = make("SPY", [flat(0.2, T_30D)], [0.1, 0.3], 5)
    assert short is not None and not short.rank_ready and math.isnan(short.iv_rank) and short.history_days == 2
    assert make("SPY", [], [0.1, 0.2, 0.3], 5) is None
