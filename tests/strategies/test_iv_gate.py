"""Entry gating on IV rank: condor, 0DTE and gamma scalper open only inside the bounds; exits are never gated."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import pytest
from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction
from domain.views import VolStats
from engine.service.config import ConfigError, is_hot, parse_config_text
from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.iv_gate import iv_block_reason
from strategies.zero_dte import ZeroDte, ZeroDteConfig

DAY = dt.date(2026, 11, 16)
MIN_NS = 60 * 1_000_000_000
START = ny_ns(2026, 11, 16, 10, 0)


def stats(rank: float, ready: bool = True) -> VolStats:
    return VolStats("SPY", START, 0.18, -0.05, 0.01, 0.01, rank, rank, 252 if ready else 5, ready)


def condor(vol: VolStats | None, **bounds: float | None) -> Harness:
    chain = SyntheticChain("SPY", 600.0, START, standard_expiries(DAY, (0, 7, 14, 21, 30, 37, 44, 60)),
                           strike_ladder(600.0, 1.0, 80))
    h = Harness(IronCondor("ic", IronCondorConfig(underlyings=("SPY",), **bounds)), [chain], START)  # type: ignore[arg-type]
    if vol is not None:
        h.market.vol["SPY"] = vol
    return h


def opens(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.OPEN]


def test_block_reasons() -> None:
    assert iv_block_reason(None, None, None) == ""
    assert iv_block_reason(None, 50.0, None) == "no_surface"
    assert iv_block_reason(stats(80.0, ready=False), 50.0, None) == "insufficient_history"
    assert iv_block_reason(stats(math.nan), None, 90.0) == "insufficient_history"
    assert iv_block_reason(stats(40.0), 50.0, None) == "below_min_rank"
    assert iv_block_reason(stats(95.0), 50.0, 90.0) == "above_max_rank"
    assert iv_block_reason(stats(50.0), 50.0, 50.0) == ""


def test_condor_opens_when_rank_is_at_or_above_the_floor() -> None:
    h = condor(stats(70.0), min_iv_rank=50.0)
    h.advance(START + MIN_NS)
    assert len(opens(h)) == 1
    assert not any(k.startswith("iv_skip") for k in h.strategy.stats())


@pytest.mark.parametrize(("vol", "bounds", "reason"), [
    (stats(30.0), {"min_iv_rank": 50.0}, "below_min_rank"),
    (stats(70.0), {"max_iv_rank": 60.0}, "above_max_rank"),
    (stats(70.0, ready=False), {"min_iv_rank": 50.0}, "insufficient_history"),
    (None, {"min_iv_rank": 50.0}, "no_surface"),
])  # fmt: skip
def test_condor_does_not_open_outside_the_bounds_and_counts_why(
    vol: VolStats | None, bounds: dict[str, float], reason: str
) -> None:
    h = condor(vol, **bounds)
    h.advance(START + MIN_NS)
    h.advance(START + 3 * MIN_NS)  # two entry attempts (one a minute)
    assert opens(h) == []
    assert h.strategy.stats()[f"iv_skip_{reason}"] == 2


def test_without_bounds_no_surface_is_needed() -> None:
    h = condor(None)
    h.advance(START + MIN_NS)
    assert len(opens(h)) == 1


def test_hot_reload_of_the_bounds_takes_effect_on_the_next_entry() -> None:
    h = condor(stats(30.0), min_iv_rank=50.0)
    h.advance(START + MIN_NS)
    assert opens(h) == []
    cold = h.strategy.on_params(msgspec.structs.replace(h.strategy.config, min_iv_rank=20.0))
    assert cold == {} and h.strategy.config.min_iv_rank == 20.0
    h.advance(START + 3 * MIN_NS)
    assert len(opens(h)) == 1


def test_exits_are_not_gated() -> None:
    h = condor(stats(70.0), min_iv_rank=50.0)
    h.advance(START + MIN_NS)
    assert len(opens(h)) == 1
    h.market.vol["SPY"] = stats(5.0)  # now far below the floor
    h.advance(START + 2 * MIN_NS, spot=560.0)  # through the short put: breach
    assert [i for i in h.approved if i.action is IntentAction.CLOSE]


def test_zero_dte_entry_is_gated() -> None:
    start = ny_ns(2026, 11, 16, 9, 59)
    chain = SyntheticChain("SPY", 600.0, start, standard_expiries(DAY, (0, 1, 7)), strike_ladder(600.0, 1.0, 30))
    h = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",), max_iv_rank=40.0)), [chain], start)
    h.market.vol["SPY"] = stats(60.0)
    h.advance(ny_ns(2026, 11, 16, 10, 0))
    assert opens(h) == [] and h.strategy.stats()["iv_skip_above_max_rank"] == 1
    h.market.vol["SPY"] = stats(35.0)
    h.advance(ny_ns(2026, 11, 16, 10, 1))
    assert len(opens(h)) == 1


def test_gamma_scalper_entry_is_gated() -> None:
    chain = SyntheticChain("SPY", 600.0, START, standard_expiries(DAY, (0, 7, 14, 21, 30, 44, 60, 90)),
                           strike_ladder(600.0, 1.0, 40))
    h = Harness(GammaScalper("gs", GammaScalperConfig(max_iv_rank=30.0)), [chain], START)
    h.market.vol["SPY"] = stats(80.0)
    h.advance(START + MIN_NS)
    assert opens(h) == [] and h.strategy.stats()["iv_skip_above_max_rank"] == 1
    h.market.vol["SPY"] = stats(10.0)
    h.advance(START + 2 * MIN_NS)
    assert len(opens(h)) == 1


def test_config_names_a_bad_bound_and_the_bounds_are_hot() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config_text("[strategies.iron_condor]\nmin_iv_rank = 120\n")
    assert [i.path for i in err.value.issues] == ["strategies.iron_condor.min_iv_rank"]
    with pytest.raises(ConfigError) as err:
        parse_config_text("[strategies.iron_condor]\nmin_iv_rank = 80\nmax_iv_rank = 20\n")
    assert "min_iv_rank" in str(err.value) and err.value.issues[0].path.startswith("strategies.iron_condor")
    assert is_hot(("strategies", "iron_condor", "min_iv_rank")) and is_hot(("strategies", "zero_dte", "max_iv_rank"))
