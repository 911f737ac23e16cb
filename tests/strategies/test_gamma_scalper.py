"""Gamma scalper actor: straddle entry, hedging only out of band and never on stale data, and its exits."""

from __future__ import annotations

import datetime as dt

from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import AssetClass, IntentAction, Side
from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.tracking import StructureStatus

DAY = dt.date(2026, 11, 16)
MIN_NS = 60 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


def make(**overrides: object) -> Harness:
    now = ny_ns(2026, 11, 16, 10, 0)
    chain = SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 7, 14, 21, 30, 44, 60, 90)),
                           strike_ladder(600.0, 1.0, 40))
    cfg = GammaScalperConfig(**overrides)  # type: ignore[arg-type]
    h = Harness(GammaScalper("gs", cfg), [chain], now)
    h.advance(now + MIN_NS)
    return h


def hedges(h: Harness) -> list:
    return [i for i in h.approved if i.action is IntentAction.HEDGE]


def test_scalper_buys_an_atm_straddle_in_the_dte_window() -> None:
    h = make()
    (intent,) = h.approved
    chain = h.chain()
    assert intent.action is IntentAction.OPEN and len(intent.legs) == 2
    assert all(leg.side is Side.BUY for leg in intent.legs)
    rows = [chain.row_of(leg.symbol) for leg in intent.legs]
    assert chain.strike[rows[0]] == chain.strike[rows[1]]
    assert bool(chain.is_call[rows[0]]) != bool(chain.is_call[rows[1]])
    assert abs(chain.strike[rows[0]] - chain.forward[rows[0]]) <= 0.5 + 1e-9
    assert 14 <= (chain.expiry[rows[0]].item() - DAY).days <= 60
    assert h.strategy.tracker.active()[0].status is StructureStatus.OPEN


def _atm_rows(chain: SyntheticChain, expiry: dt.date) -> list[int]:
    rows = [i for i in range(len(chain)) if chain.expiry[i].item() == expiry]
    atm = min((chain.strike[i] for i in rows), key=lambda k: abs(k - chain.forward[rows[0]]))
    return [i for i in rows if chain.strike[i] == atm]


def _atm_gamma_per_theta(chain: SyntheticChain, expiry: dt.date) -> float:
    rows = _atm_rows(chain, expiry)
    return float(sum(chain.gamma[r] for r in rows) / abs(sum(chain.theta[r] for r in rows)))


def test_scalper_prefers_gamma_per_theta_and_penalises_wide_spreads() -> None:
    h = make(dte_min=14, dte_max=60, max_spread_pct=0.5)
    chain = h.chain()
    chosen = chain.expiry[chain.row_of(h.approved[0].legs[0].symbol)].item()
    window = [e for e in standard_expiries(DAY, (0, 7, 14, 21, 30, 44, 60, 90)) if 14 <= (e - DAY).days <= 60]
    assert chosen == max(window, key=lambda e: _atm_gamma_per_theta(chain, e))
    # Same book, but the favourite's ATM quotes are 20% wide: the score now picks another expiry.
    h2 = make(dte_min=14, dte_max=60, max_spread_pct=0.5, entries_enabled=False)
    c2 = h2.chain()
    for i in _atm_rows(c2, chosen):
        m = 0.5 * (c2.bid[i] + c2.ask[i])
        c2.bid[i], c2.ask[i] = round(m * 0.9, 2), round(m * 1.1, 2)
    pick = h2.strategy.select(c2, h2.now_ns)
    assert pick is not None and pick.expiry != chosen


def test_scalper_hedges_only_when_delta_leaves_the_band() -> None:
    h = make(hedge_mode="fixed", hedge_band_shares=10.0, min_hedge_interval_s=0.0)
    t = h.strategy.tracker.active()[0]
    chain = h.chain()
    h.advance(h.now_ns + MIN_NS, spot=600.5)
    delta, _ = h.strategy.net_delta(chain, t)
    assert abs(delta) <= 10.0 and hedges(h) == []
    h.advance(h.now_ns + MIN_NS, spot=606.0)
    (hedge,) = hedges(h)
    assert hedge.is_stock and hedge.legs[0].asset_class is AssetClass.EQUITY and hedge.legs[0].side is Side.SELL
    after, _ = h.strategy.net_delta(chain, t)
    assert abs(after) < 1.0 and t.shares == -hedge.qty
    h.advance(h.now_ns + MIN_NS, spot=606.2)
    assert len(hedges(h)) == 1  # back inside the band: no new hedge
    h.advance(h.now_ns + MIN_NS, spot=596.0)
    assert len(hedges(h)) == 2 and hedges(h)[1].legs[0].side is Side.BUY


def test_scalper_gamma_band_scales_with_position_gamma() -> None:
    h = make(hedge_mode="gamma", band_move_pct=0.004, min_band_shares=1.0)
    t = h.strategy.tracker.active()[0]
    chain = h.chain()
    _, gamma = h.strategy.net_delta(chain, t)
    assert abs(h.strategy.band(chain, gamma) - gamma * 600.0 * 0.004) < 1e-9
    h2 = make(hedge_mode="gamma", band_move_pct=0.004, min_band_shares=1.0, qty=1)
    t2 = h2.strategy.tracker.active()[0]
    _, gamma2 = h2.strategy.net_delta(h2.chain(), t2)
    assert abs(h2.strategy.band(h2.chain(), gamma2) / h.strategy.band(chain, gamma) - 0.5) < 1e-9


def test_scalper_never_hedges_on_stale_quotes() -> None:
    h = make(hedge_mode="fixed", hedge_band_shares=5.0, min_hedge_interval_s=0.0)
    h.advance(h.now_ns + 10 * MIN_NS, spot=610.0, quotes=False)
    assert hedges(h) == [] and h.strategy.hedges_skipped_stale >= 1
    h.advance(h.now_ns + MIN_NS, spot=610.0)
    assert len(hedges(h)) == 1


def test_scalper_waits_for_a_working_hedge_before_sending_another() -> None:
    h = make(hedge_mode="fixed", hedge_band_shares=5.0, min_hedge_interval_s=0.0)
    h.fill = False
    h.advance(h.now_ns + MIN_NS, spot=610.0)
    h.advance(h.now_ns + MIN_NS, spot=612.0)
    assert len(hedges(h)) == 1
    h.fill_working()
    h.fill = True
    h.advance(h.now_ns + MIN_NS, spot=616.0)
    assert len(hedges(h)) == 2


def test_scalper_tracks_hedge_pnl_against_theta_paid() -> None:
    h = make(hedge_mode="fixed", hedge_band_shares=5.0, min_hedge_interval_s=0.0)
    for s in [606, 600, 606, 600, 606, 600]:
        h.advance(h.now_ns + 30 * MIN_NS, spot=float(s))
    stats = h.strategy.stats()
    assert stats["hedges"] >= 5
    assert stats["hedge_pnl_usd"] > 0  # sold high, bought low
    assert stats["theta_paid_usd"] > 0


def test_scalper_exits_on_the_vol_target() -> None:
    h = make(exit_vol_gain_pts=3.0)
    h.advance(h.now_ns + MIN_NS, vol_shift=0.02)
    assert not [i for i in h.approved if i.action is IntentAction.CLOSE]
    h.advance(h.now_ns + MIN_NS, vol_shift=0.035)
    closes = [i for i in h.approved if i.action is IntentAction.CLOSE]
    assert [c.tag for c in closes] == ["vol_target"] and len(closes[0].legs) == 2
    assert h.portfolio.open_structures() == 0


def test_scalper_exits_on_max_loss_and_flattens_its_shares() -> None:
    h = make(max_loss_usd=300.0, hedge_mode="fixed", hedge_band_shares=5.0, min_hedge_interval_s=0.0)
    h.advance(h.now_ns + MIN_NS, spot=606.0)
    assert len(hedges(h)) == 1
    h.advance(h.now_ns + MIN_NS, spot=606.0, vol_shift=-0.04)
    closes = [i for i in h.approved if i.action is IntentAction.CLOSE]
    assert {c.tag for c in closes} == {"max_loss"}
    assert any(c.is_stock for c in closes) and any(c.is_multi_leg for c in closes)
    assert h.portfolio.positions() == {}


def test_scalper_exits_at_minimum_dte_and_waits_before_reentering() -> None:
    h = make(exit_dte=50, reentry_cooldown_s=3600.0)
    t = h.strategy.tracker.active()[0]
    days_left = (t.structure.expiry - DAY).days
    h.advance(h.now_ns + (days_left - 50) * DAY_NS)
    assert [i.tag for i in h.approved if i.action is IntentAction.CLOSE] == ["dte"]
    h.advance(h.now_ns + 10 * MIN_NS)
    assert len([i for i in h.approved if i.action is IntentAction.OPEN]) == 1
    h.advance(h.now_ns + 61 * MIN_NS)
    assert len([i for i in h.approved if i.action is IntentAction.OPEN]) == 2


def test_scalper_skips_the_hedge_when_a_leg_has_no_delta() -> None:
    """Regression (fault matrix): a leg whose IV could not be solved has NaN Greeks; ``round(nan)`` raised
    ValueError inside on_book ("strategy_hook_failed") on every book update instead of skipping the hedge."""
    h = make(hedge_mode="fixed", hedge_band_shares=5.0, min_hedge_interval_s=0.0)
    t = h.strategy.tracker.active()[0]
    chain = h.chain()
    row = chain.row_of(next(iter(t.filled)))
    chain.delta[row] = float("nan")
    h.strategy._maybe_hedge(chain, t, h.now_ns)  # quotes fresh: only the missing delta can stop it
    assert hedges(h) == [] and h.strategy.hedges_skipped_stale == 0
