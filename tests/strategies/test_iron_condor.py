"""Iron condor actor on a synthetic SPY book driven through event time, with the real gate and portfolio."""

from __future__ import annotations

import datetime as dt

import pytest
from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import IntentAction, PositionIntent, Side
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.tracking import StructureStatus

DAY = dt.date(2026, 11, 16)  # a Monday
MIN_NS = 60 * 1_000_000_000
DAY_NS = 86_400 * 1_000_000_000


def make(config: IronCondorConfig | None = None, spot: float = 600.0) -> Harness:
    now = ny_ns(2026, 11, 16, 10, 0)
    chain = SyntheticChain("SPY", spot, now, standard_expiries(DAY, (0, 7, 14, 21, 30, 37, 44, 60)),
                           strike_ladder(spot, 1.0, 80))
    cfg = config or IronCondorConfig(underlyings=("SPY",))
    return Harness(IronCondor("ic", cfg), [chain], now)


def opened(h: Harness) -> Harness:
    h.advance(h.now_ns + MIN_NS)
    assert len(h.approved) == 1, h.denied
    return h


def test_condor_opens_as_one_four_leg_credit_order_with_short_deltas_in_band() -> None:
    h = opened(make())
    intent = h.approved[0]
    chain = h.chain()
    assert intent.action is IntentAction.OPEN and len(intent.legs) == 4
    sides = [(leg.side, leg.position_intent) for leg in intent.legs]
    assert sides == [(Side.BUY, PositionIntent.BUY_TO_OPEN), (Side.SELL, PositionIntent.SELL_TO_OPEN),
                     (Side.SELL, PositionIntent.SELL_TO_OPEN), (Side.BUY, PositionIntent.BUY_TO_OPEN)]
    rows = [chain.row_of(leg.symbol) for leg in intent.legs]
    assert 0.15 <= abs(chain.delta[rows[1]]) <= 0.20 and 0.15 <= abs(chain.delta[rows[2]]) <= 0.20
    k = [chain.strike[r] for r in rows]
    assert k[0] < k[1] < k[2] < k[3] and k[1] - k[0] >= 6.0 and k[3] - k[2] >= 6.0
    dte = (chain.expiry[rows[0]].item() - DAY).days
    assert 30 <= dte <= 45
    # The limit is a credit and never less than min_credit_ratio x width.
    assert intent.price_policy.limit_price is not None and intent.price_policy.limit_price <= -0.15 * 6.0
    t = next(iter(h.strategy.tracker.structures.values()))
    assert t.status is StructureStatus.OPEN and t.units == intent.qty
    assert h.portfolio.open_structures() == 1 and h.portfolio.risk_capital_usd("SPY") > 0


def test_condor_takes_profit_when_half_the_credit_is_earned() -> None:
    h = opened(make())
    h.advance(h.now_ns + 5 * DAY_NS, vol_shift=-0.06)
    closes = [i for i in h.approved if i.action is IntentAction.CLOSE]
    assert len(closes) == 1 and closes[0].tag == "take_profit" and len(closes[0].legs) == 4
    assert {leg.position_intent for leg in closes[0].legs} == {PositionIntent.BUY_TO_CLOSE,
                                                               PositionIntent.SELL_TO_CLOSE}
    assert h.portfolio.open_structures() == 0 and not h.portfolio.positions()
    assert h.strategy.tracker.realized_usd > 0


def test_condor_stops_when_the_loss_reaches_the_credit_multiple() -> None:
    # The same market move: a loss of ~1.1x credit stops a multiple-1 condor but not a multiple-2 one.
    results = {}
    for multiple in (1.0, 2.0):
        h = opened(make(IronCondorConfig(underlyings=("SPY",), close_on_breach=False, stop_loss_multiple=multiple)))
        h.advance(h.now_ns + MIN_NS, vol_shift=0.03)
        assert not [i for i in h.approved if i.action is IntentAction.CLOSE]
        h.advance(h.now_ns + MIN_NS, spot=625.0, vol_shift=0.10)
        results[multiple] = [i.tag for i in h.approved if i.action is IntentAction.CLOSE]
        if multiple == 1.0:
            assert h.strategy.tracker.realized_usd < 0
    assert results == {1.0: ["stop"], 2.0: []}


def test_condor_closes_at_seven_days_to_expiry() -> None:
    h = opened(make(IronCondorConfig(underlyings=("SPY",), take_profit_pct=0.99)))
    t = next(iter(h.strategy.tracker.structures.values()))
    days_left = (t.structure.expiry - DAY).days
    h.advance(h.now_ns + (days_left - 8) * DAY_NS)
    assert not [i for i in h.approved if i.action is IntentAction.CLOSE]
    h.advance(h.now_ns + DAY_NS)
    assert [i.tag for i in h.approved if i.action is IntentAction.CLOSE] == ["dte"]


def test_condor_closes_when_spot_breaches_a_short_strike() -> None:
    h = opened(make())
    t = next(iter(h.strategy.tracker.structures.values()))
    short_put = max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
    h.advance(h.now_ns + MIN_NS, spot=short_put - 0.5)
    assert [i.tag for i in h.approved if i.action is IntentAction.CLOSE] == ["breach"]
    assert h.portfolio.open_structures() == 0


def test_condor_skips_entry_when_credit_is_below_the_minimum_ratio() -> None:
    h = make(IronCondorConfig(underlyings=("SPY",), min_credit_ratio=0.9))
    h.advance(h.now_ns + MIN_NS)
    assert h.submitted == [] and "credit" in h.strategy.last_action


def test_condor_neither_enters_nor_exits_on_stale_quotes() -> None:
    h = make()
    h.advance(h.now_ns + 10 * MIN_NS, quotes=False)
    assert h.submitted == []
    h.advance(h.now_ns + MIN_NS)
    assert len(h.approved) == 1
    t = next(iter(h.strategy.tracker.structures.values()))
    short_put = max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
    h.advance(h.now_ns + 10 * MIN_NS, spot=short_put - 1, quotes=False)
    assert [i.action for i in h.submitted] == [IntentAction.OPEN]


def test_condor_retries_a_close_that_ended_unfilled() -> None:
    h = opened(make())
    h.fill = False
    t = next(iter(h.strategy.tracker.structures.values()))
    short_put = max(leg.strike for leg in t.structure.legs if not leg.is_call and leg.ratio < 0)
    h.advance(h.now_ns + MIN_NS, spot=short_put - 0.5)
    assert t.status is StructureStatus.CLOSING
    h.expire_working()
    assert t.status is StructureStatus.OPEN
    h.fill = True
    h.advance(h.now_ns + 2 * MIN_NS, spot=short_put - 0.5)
    assert t.status is StructureStatus.CLOSED
    assert [i.tag for i in h.approved if i.action is IntentAction.CLOSE] == ["breach", "breach"]


@pytest.mark.parametrize("field", ["dte_min", "take_profit_pct", "max_qty"])
def test_condor_reload_applies_hot_fields(field: str) -> None:
    h = make()
    old = h.strategy.config
    new_value = {"dte_min": 25, "take_profit_pct": 0.6, "max_qty": 3}[field]
    import msgspec

    cold = h.strategy.on_params(msgspec.structs.replace(old, **{field: new_value}))
    assert cold == {} and getattr(h.strategy.config, field) == new_value


def test_condor_reload_keeps_cold_fields_and_reports_them() -> None:
    import msgspec

    h = make()
    cold = h.strategy.on_params(msgspec.structs.replace(h.strategy.config, underlyings=("QQQ",), exit_dte=5))
    assert cold == {"underlyings": ("QQQ",)}
    assert h.strategy.config.underlyings == ("SPY",) and h.strategy.config.exit_dte == 5


def test_tracker_values_an_unpriced_mleg_leg_through_the_parent_net_price() -> None:
    from domain.orders import OrderFilled
    from strategies.tracking import option_cash_usd

    f = OrderFilled("x", "o", "c", "SPY261218P00570000", Side.BUY, 4.0, float("nan"), 1, 1,
                    parent_net_price=-1.25)
    assert option_cash_usd(f, "SPY261218P00570000", 2) == pytest.approx(1.25 * 2 * 100)
    assert option_cash_usd(f, "SPY261218C00630000", 1) == 0.0
    priced = OrderFilled("y", "o", "c", "SPY261218P00570000", Side.SELL, 2.0, 1.5, 1, 1)
    assert option_cash_usd(priced, "SPY261218P00570000", 1) == pytest.approx(300.0)


def test_a_vanished_bid_on_a_wing_never_fakes_a_take_profit() -> None:
    """With a long wing's bid gone (0 bid, ask kept), its mid would overstate what it can be sold for."""
    h = opened(make(IronCondorConfig(underlyings=("SPY",), take_profit_pct=0.05)))
    t = next(iter(h.strategy.tracker.structures.values()))
    chain = h.chain()
    mid_before, _ = t.value_per_unit(chain)
    long_wing = next(leg for leg in t.structure.legs if leg.ratio > 0)
    row = chain.row_of(long_wing.symbol)
    wing_mid = 0.5 * (float(chain.bid[row]) + float(chain.ask[row]))
    chain.bid[row] = 0.0
    mid_after, _ = t.value_per_unit(chain)
    # The wing is marked at what it can be sold for (its bid, 0), not at ask/2.
    assert mid_after == pytest.approx(mid_before - long_wing.ratio * wing_mid)
