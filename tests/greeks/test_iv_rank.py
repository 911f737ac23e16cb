"""IV rank and percentile against a look-back history, with the "insufficient history" state."""

from __future__ import annotations

import math

import pytest

from greeks.iv_rank import iv_rank


def test_rank_and_percentile_by_hand() -> None:
    history = [0.10, 0.20, 0.15, 0.30, 0.25]
    r = iv_rank(history, 0.22, min_days=5)
    assert r.ready and r.n == 5
    assert r.rank == pytest.approx(100.0 * (0.22 - 0.10) / (0.30 - 0.10))  # 60
    assert r.percentile == pytest.approx(60.0)  # 0.10, 0.20, 0.15 below


def test_percentile_counts_only_days_strictly_below() -> None:
    r = iv_rank([0.2, 0.2, 0.1, 0.3], 0.2, min_days=1)
    assert r.percentile == pytest.approx(25.0)
    assert r.rank == pytest.approx(50.0)


def test_insufficient_history_is_nan_and_not_ready() -> None:
    r = iv_rank([0.1, 0.2, math.nan], 0.15, min_days=3)
    assert not r.ready and r.n == 2
    assert math.isnan(r.rank) and math.isnan(r.percentile)
    assert not iv_rank([], 0.15, min_days=0).ready


def test_current_outside_the_history_pins_the_rank_to_the_ends() -> None:
    assert iv_rank([0.1, 0.2], 0.5, 2).rank == pytest.approx(100.0)
    low = iv_rank([0.1, 0.2], 0.05, 2)
    assert low.rank == pytest.approx(0.0) and low.percentile == pytest.approx(0.0)


def test_flat_history_ranks_zero_on_it_and_one_hundred_above() -> None:
    on = iv_rank([0.2] * 30, 0.2, 20)
    assert on.ready and on.rank == 0.0 and on.percentile == 0.0
    above = iv_rank([0.2] * 30, 0.21, 20)
    assert above.rank == pytest.approx(100.0) and above.percentile == pytest.approx(100.0)


def test_nan_current_gives_nan_but_keeps_readiness() -> None:
    r = iv_rank([0.1, 0.2], math.nan, 2)
    assert r.ready and math.isnan(r.rank) and math.isnan(r.percentile)
