"""The pre-trade gate, check by check: one denial per reason, REDUCE_ONLY and HALTED, and clean approvals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.synthetic import SyntheticChain, SyntheticMarket, ny_ns, standard_expiries, strike_ladder

from domain.orders import (
    AssetClass,
    IntentAction,
    Leg,
    OrderFilled,
    OrderIntent,
    PositionIntent,
    PricePolicy,
    Side,
    TradingState,
)
from domain.views import FLAG_CROSSED, AccountView
from engine.kernel.portfolio import Portfolio
from risk.gate import Approved, Denied, DenyReason, check_intent
from risk.limits import GreekLimits, RiskLimits, StressLimits
from risk.rate import RateBudget

DAY = dt.date(2026, 11, 16)
NOW = ny_ns(2026, 11, 16, 11, 0)
EXPIRY = dt.date(2026, 12, 18)


@dataclass
class Env:
    chain: SyntheticChain
    market: SyntheticMarket
    portfolio: Portfolio = field(default_factory=Portfolio)
    account: AccountView = field(default_factory=lambda: AccountView(100_000, 100_000, 200_000, 100_000))
    limits: RiskLimits = field(default_factory=RiskLimits)
    state: TradingState = TradingState.ACTIVE
    rate: RateBudget = field(default_factory=RateBudget)
    now_ns: int = NOW
    fills: int = 0

    def sym(self, strike: float, right: str, expiry: dt.date = EXPIRY) -> str:
        return self.chain.symbol_at(expiry, strike, right == "C")

    def check(self, intent: OrderIntent) -> Approved | Denied:
        return check_intent(intent, self.portfolio, self.market, self.account, self.limits, self.state, self.now_ns,
                            self.rate)

    def hold(self, intent: OrderIntent) -> None:
        """Book ``intent`` as filled at mid (what the engine does after the router fills it)."""
        for leg in intent.legs:
            self.fills += 1
            if leg.asset_class is AssetClass.EQUITY:
                price = self.chain.spot
            else:
                r = self.chain.row_of(leg.symbol)
                price = 0.5 * (self.chain.bid[r] + self.chain.ask[r])
            self.portfolio.on_fill(OrderFilled(
                f"x{self.fills}", "o", "c", leg.symbol, leg.side, float(leg.ratio * intent.qty), float(price), NOW,
                NOW, leg.asset_class, intent.strategy_id, intent.structure_id, intent.intent_id))
        self.portfolio.on_book(self.chain)


@pytest.fixture
def env() -> Env:
    chain = SyntheticChain("SPY", 600.0, NOW, standard_expiries(DAY, (0, 7, 32, 60)), strike_ladder(600.0, 5.0, 12))
    qqq = SyntheticChain("QQQ", 500.0, NOW, standard_expiries(DAY, (32,)), strike_ladder(500.0, 5.0, 4))
    return Env(chain, SyntheticMarket(chain, qqq))


def opening(side: Side) -> PositionIntent:
    return PositionIntent.BUY_TO_OPEN if side is Side.BUY else PositionIntent.SELL_TO_OPEN


def intent(env: Env, legs: list[tuple[float, str, Side]] | list[Leg], qty: int = 1, iid: str = "i1",
           action: IntentAction = IntentAction.OPEN, policy: PricePolicy | None = None,
           underlying: str = "SPY") -> OrderIntent:
    built = [leg if isinstance(leg, Leg) else Leg(env.sym(leg[0], leg[1]), leg[2], 1, opening(leg[2]))
             for leg in legs]
    return OrderIntent(iid, "test", f"s-{iid}", underlying, action, tuple(built), qty,
                       policy or PricePolicy())


def condor(env: Env, qty: int = 1, iid: str = "ic") -> OrderIntent:
    return intent(env, [(570, "P", Side.BUY), (580, "P", Side.SELL), (620, "C", Side.SELL), (630, "C", Side.BUY)],
                  qty, iid)


def close_of(env: Env, opened: OrderIntent, iid: str = "close") -> OrderIntent:
    legs = [Leg(leg.symbol, Side.SELL if leg.side is Side.BUY else Side.BUY, leg.ratio,
                PositionIntent.SELL_TO_CLOSE if leg.side is Side.BUY else PositionIntent.BUY_TO_CLOSE,
                leg.asset_class) for leg in opened.legs]
    return OrderIntent(iid, "test", opened.structure_id, opened.underlying, IntentAction.CLOSE, tuple(legs),
                       opened.qty)


def stock(env: Env, shares: int, iid: str = "h") -> OrderIntent:
    side = Side.BUY if shares > 0 else Side.SELL
    return OrderIntent(iid, "test", "s-hedge", "SPY", IntentAction.HEDGE,
                       (Leg("SPY", side, 1, None, AssetClass.EQUITY),), abs(shares), PricePolicy(kind="market"))


def reasons(verdict: Approved | Denied) -> set[str]:
    return set(verdict.reasons) if isinstance(verdict, Denied) else set()


def with_limits(env: Env, **changes: object) -> None:
    env.limits = msgspec.structs.replace(env.limits, **changes)


# ---------------------------------------------------------------------------------------------- approvals


def test_gate_approves_a_liquid_condor_and_reports_its_exact_max_loss(env: Env) -> None:
    it = condor(env, qty=2)
    v = env.check(it)
    assert isinstance(v, Approved), v
    mid = sum(leg.side.sign * 0.5 * (env.chain.bid[r] + env.chain.ask[r])
              for leg in it.legs for r in [env.chain.row_of(leg.symbol)])
    nat = sum(leg.side.sign * (env.chain.ask[r] if leg.side is Side.BUY else env.chain.bid[r])
              for leg in it.legs for r in [env.chain.row_of(leg.symbol)])
    assert mid < 0 and nat < 0
    # Worst price the default policy may pay is natural: max loss = (width - natural credit) x 100 x qty.
    assert v.max_loss_usd == pytest.approx((10 + nat) * 100 * 2)
    assert v.worst_stress_pnl_usd < 0


def test_gate_approves_a_stock_hedge(env: Env) -> None:
    assert isinstance(env.check(stock(env, -25)), Approved)


# ---------------------------------------------------------------------------------------------- one denial per reason

Case = Callable[[Env], OrderIntent]


def _halted(env: Env) -> OrderIntent:
    env.state = TradingState.HALTED
    return condor(env)


def _reduce_only(env: Env) -> OrderIntent:
    env.state = TradingState.REDUCE_ONLY
    return condor(env)


def _too_many_legs(env: Env) -> OrderIntent:
    return intent(env, [(570, "P", Side.BUY), (580, "P", Side.SELL), (620, "C", Side.SELL), (630, "C", Side.BUY),
                        (640, "C", Side.BUY)])


def _ratio_gcd(env: Env) -> OrderIntent:
    legs = [Leg(env.sym(570, "P"), Side.BUY, 2, PositionIntent.BUY_TO_OPEN),
            Leg(env.sym(580, "P"), Side.SELL, 2, PositionIntent.SELL_TO_OPEN)]
    return intent(env, legs)


def _bad_ratio(env: Env) -> OrderIntent:
    return intent(env, [Leg(env.sym(570, "P"), Side.BUY, 0, PositionIntent.BUY_TO_OPEN)])


def _duplicate(env: Env) -> OrderIntent:
    return intent(env, [(570, "P", Side.BUY), (570, "P", Side.SELL)])


def _mixed_underlying(env: Env) -> OrderIntent:
    qqq = env.market.chain("QQQ")
    assert qqq is not None
    legs = [Leg(env.sym(570, "P"), Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
            Leg(qqq.symbol_at(qqq.expiry[0].item(), 500.0, False), Side.SELL, 1, PositionIntent.SELL_TO_OPEN)]
    return intent(env, legs)


def _mixed_asset(env: Env) -> OrderIntent:
    return intent(env, [Leg(env.sym(600, "C"), Side.SELL, 1, PositionIntent.SELL_TO_OPEN),
                        Leg("SPY", Side.BUY, 1, None, AssetClass.EQUITY)])


def _not_in_book(env: Env) -> OrderIntent:
    return intent(env, [Leg("SPY261218C00999000", Side.BUY, 1, PositionIntent.BUY_TO_OPEN)])


def _expired(env: Env) -> OrderIntent:
    # Today's expiry, checked after today's close.
    env.now_ns = ny_ns(2026, 11, 16, 16, 1)
    env.chain.reprice(now_ns=env.now_ns)
    return intent(env, [Leg(env.chain.symbol_at(DAY, 600.0, True), Side.BUY, 1, PositionIntent.BUY_TO_OPEN)])


def _stale(env: Env) -> OrderIntent:
    env.now_ns = NOW + 6_000_000_000
    return condor(env)


def _stale_stock(env: Env) -> OrderIntent:
    env.now_ns = NOW + 6_000_000_000
    return stock(env, 10)


def _invalid_quote(env: Env) -> OrderIntent:
    it = condor(env)
    env.chain.flags[env.chain.row_of(it.legs[1].symbol)] = FLAG_CROSSED
    return it


def _no_bid_to_sell(env: Env) -> OrderIntent:
    it = condor(env)
    env.chain.bid[env.chain.row_of(it.legs[2].symbol)] = 0.0
    return it


def _spread(env: Env) -> OrderIntent:
    it = condor(env)
    r = env.chain.row_of(it.legs[1].symbol)
    env.chain.ask[r] = env.chain.bid[r] * 1.6
    return it


def _open_interest(env: Env) -> OrderIntent:
    with_limits(env, min_open_interest=5_000)
    return condor(env)


def _volume(env: Env) -> OrderIntent:
    with_limits(env, min_volume=5_000)
    return condor(env)


def _market_option(env: Env) -> OrderIntent:
    return intent(env, [(600, "C", Side.BUY)], policy=PricePolicy(kind="market"))


def _collar_price(env: Env) -> OrderIntent:
    r = env.chain.row_of(env.sym(600, "C"))
    return intent(env, [(600, "C", Side.BUY)], policy=PricePolicy(limit_price=float(env.chain.ask[r]) + 1.0))


def _collar_policy(env: Env) -> OrderIntent:
    return intent(env, [(600, "C", Side.BUY)], policy=PricePolicy(max_concession_fraction=3.0))


def _greek(name: str, scope: str) -> Case:
    caps = {"delta": "max_abs_delta_shares", "gamma": "max_abs_gamma_shares_per_usd",
            "vega": "max_abs_vega_usd_per_vol_pt", "theta": "max_theta_burn_usd_per_day"}

    def case(env: Env) -> OrderIntent:
        tiny = msgspec.structs.replace(GreekLimits(), **{caps[name]: 0.01})
        with_limits(env, **{"per_underlying" if scope == "underlying" else "total": tiny})
        # A long call has delta, gamma, vega and (negative) theta.
        return intent(env, [(600, "C", Side.BUY)])

    return case


def _uncovered(env: Env) -> OrderIntent:
    return intent(env, [(620, "C", Side.SELL)])


def _max_loss(env: Env) -> OrderIntent:
    return condor(env, qty=10)


def _max_open(env: Env) -> OrderIntent:
    with_limits(env, max_open_structures=1)
    env.hold(intent(env, [(600, "C", Side.BUY)], iid="held", underlying="SPY"))
    return condor(env)


def _max_open_u(env: Env) -> OrderIntent:
    with_limits(env, max_open_structures_per_underlying=1)
    env.hold(intent(env, [(600, "C", Side.BUY)], iid="held"))
    return condor(env)


def _concentration(env: Env) -> OrderIntent:
    with_limits(env, max_underlying_risk_pct=0.005)
    return condor(env)


def _allocation(env: Env) -> OrderIntent:
    env.hold(condor(env, qty=2, iid="held"))
    assert env.portfolio.risk_capital_usd() > 1_000
    with_limits(env, max_options_allocation_pct=0.01, max_underlying_risk_pct=1.0)
    return condor(env, iid="second")


def _buying_power(env: Env) -> OrderIntent:
    env.account = AccountView(100_000, 100_000, 200_000, 100.0)
    return condor(env)


def _equity(env: Env) -> OrderIntent:
    env.account = AccountView(0.0, 0.0, 0.0, 100_000)
    return condor(env)


def _rate(env: Env) -> OrderIntent:
    with_limits(env, max_orders_per_second=2)
    env.rate.record(NOW - 1)
    env.rate.record(NOW - 1)
    return condor(env)


def _stress(env: Env) -> OrderIntent:
    with_limits(env, stress=StressLimits(max_loss_usd=100.0))
    return intent(env, [(600, "C", Side.BUY)], qty=3)


def _unpriceable(env: Env) -> OrderIntent:
    # A whole expiry without IVs: no neighbouring strike can stand in for the leg.
    it = condor(env)
    t = env.chain.t_years[env.chain.row_of(it.legs[0].symbol)]
    env.chain.iv[env.chain.t_years == t] = np.nan
    return it


CASES: dict[str, tuple[Case, ...]] = {
    DenyReason.HALTED: (_halted,),
    DenyReason.REDUCE_ONLY: (_reduce_only,),
    DenyReason.BAD_QTY: (lambda env: condor(env, qty=0),),
    DenyReason.NO_LEGS: (lambda env: intent(env, []),),
    DenyReason.TOO_MANY_LEGS: (_too_many_legs,),
    DenyReason.BAD_RATIO: (_bad_ratio,),
    DenyReason.RATIO_GCD: (_ratio_gcd,),
    DenyReason.DUPLICATE_SYMBOL: (_duplicate,),
    DenyReason.MIXED_UNDERLYING: (_mixed_underlying,),
    DenyReason.MIXED_ASSET_CLASS: (_mixed_asset,),
    DenyReason.NOT_IN_BOOK: (_not_in_book,),
    DenyReason.EXPIRED: (_expired,),
    DenyReason.QUOTE_STALE: (_stale, _stale_stock),
    DenyReason.QUOTE_INVALID: (_invalid_quote, _no_bid_to_sell),
    DenyReason.SPREAD_TOO_WIDE: (_spread,),
    DenyReason.OPEN_INTEREST_LOW: (_open_interest,),
    DenyReason.VOLUME_LOW: (_volume,),
    DenyReason.MARKET_ORDER_OPTION: (_market_option,),
    DenyReason.COLLAR_PRICE: (_collar_price,),
    DenyReason.COLLAR_POLICY: (_collar_policy,),
    DenyReason.DELTA_LIMIT_UNDERLYING: (_greek("delta", "underlying"),),
    DenyReason.GAMMA_LIMIT_UNDERLYING: (_greek("gamma", "underlying"),),
    DenyReason.VEGA_LIMIT_UNDERLYING: (_greek("vega", "underlying"),),
    DenyReason.THETA_LIMIT_UNDERLYING: (_greek("theta", "underlying"),),
    DenyReason.DELTA_LIMIT_TOTAL: (_greek("delta", "total"),),
    DenyReason.GAMMA_LIMIT_TOTAL: (_greek("gamma", "total"),),
    DenyReason.VEGA_LIMIT_TOTAL: (_greek("vega", "total"),),
    DenyReason.THETA_LIMIT_TOTAL: (_greek("theta", "total"),),
    DenyReason.UNCOVERED_SHORT: (_uncovered,),
    DenyReason.MAX_LOSS_STRUCTURE: (_max_loss,),
    DenyReason.MAX_OPEN_STRUCTURES: (_max_open,),
    DenyReason.MAX_OPEN_STRUCTURES_UNDERLYING: (_max_open_u,),
    DenyReason.CONCENTRATION_UNDERLYING: (_concentration,),
    DenyReason.OPTIONS_ALLOCATION: (_allocation,),
    DenyReason.OPTIONS_BUYING_POWER: (_buying_power,),
    DenyReason.ACCOUNT_EQUITY: (_equity,),
    DenyReason.RATE_LIMIT: (_rate,),
    DenyReason.STRESS_LOSS: (_stress,),
    DenyReason.STRESS_UNPRICEABLE: (_unpriceable,),
}


def test_every_deny_reason_has_a_case() -> None:
    assert set(CASES) == set(DenyReason)


@pytest.mark.parametrize(("reason", "case"), [(r, c) for r, cs in CASES.items() for c in cs],
                         ids=lambda x: x if isinstance(x, str) else getattr(x, "__name__", "case"))
def test_gate_denies_with_reason(env: Env, reason: str, case: Case) -> None:
    it = case(env)
    v = env.check(it)
    assert isinstance(v, Denied), f"expected {reason}, got {v}"
    assert reason in v.reasons, v
    assert v.detail
    event = v.to_event(it, env.now_ns, env.now_ns)
    assert event.reasons == v.reasons and event.intent_id == it.intent_id and event.source == "gate"


# ---------------------------------------------------------------------------------------------- states, reduction


def test_halted_denies_even_closes(env: Env) -> None:
    opened = condor(env)
    env.hold(opened)
    env.state = TradingState.HALTED
    assert reasons(env.check(close_of(env, opened))) == {DenyReason.HALTED}


def test_reduce_only_allows_closing_a_structure(env: Env) -> None:
    opened = condor(env)
    env.hold(opened)
    env.state = TradingState.REDUCE_ONLY
    assert isinstance(env.check(close_of(env, opened)), Approved)


def test_a_close_is_not_blocked_by_a_leg_without_greeks(env: Env) -> None:
    """A leg whose IV cannot be solved (NaN Greeks) must not trap a structure: closing only removes exposure."""
    opened = condor(env)
    env.hold(opened)
    row = env.chain.row_of(opened.legs[0].symbol)
    env.chain.delta[row] = env.chain.gamma[row] = env.chain.vega[row] = env.chain.theta[row] = np.nan
    verdict = env.check(close_of(env, opened))
    assert not {r for r in reasons(verdict) if "limit" in r}, verdict


def test_reduce_only_allows_a_hedge_that_reduces_delta_but_not_one_that_adds(env: Env) -> None:
    env.hold(intent(env, [(600, "C", Side.BUY)], qty=2, iid="long_calls"))
    delta = env.portfolio.greeks("SPY").delta_shares
    assert delta > 50
    env.state = TradingState.REDUCE_ONLY
    assert isinstance(env.check(stock(env, -round(delta / 2))), Approved)
    assert reasons(env.check(stock(env, 20))) == {DenyReason.REDUCE_ONLY}
    # Overshooting through zero to a larger |delta| is not a reduction either.
    assert reasons(env.check(stock(env, -round(3 * delta)))) == {DenyReason.REDUCE_ONLY}


def test_greek_limits_do_not_block_trades_that_shrink_an_exceeded_greek(env: Env) -> None:
    env.hold(intent(env, [(600, "C", Side.BUY)], qty=2, iid="long_calls"))
    with_limits(env, per_underlying=GreekLimits(max_abs_delta_shares=10.0))
    assert DenyReason.DELTA_LIMIT_UNDERLYING in reasons(env.check(stock(env, 5)))
    assert isinstance(env.check(stock(env, -20)), Approved)


def test_closing_a_long_that_covers_a_short_is_denied_as_uncovering(env: Env) -> None:
    spread = intent(env, [(620, "C", Side.SELL), (630, "C", Side.BUY)], iid="spread")
    env.hold(spread)
    sell_wing = intent(env, [Leg(env.sym(630, "C"), Side.SELL, 1, PositionIntent.SELL_TO_CLOSE)], iid="w",
                       action=IntentAction.CLOSE)
    assert DenyReason.UNCOVERED_SHORT in reasons(env.check(sell_wing))


def test_short_call_covered_by_shares_is_allowed(env: Env) -> None:
    env.hold(stock(env, 100, iid="shares"))
    assert DenyReason.UNCOVERED_SHORT not in reasons(env.check(intent(env, [(620, "C", Side.SELL)])))


def test_liquidity_does_not_block_a_close(env: Env) -> None:
    opened = condor(env)
    env.hold(opened)
    r = env.chain.row_of(opened.legs[1].symbol)
    env.chain.ask[r] = env.chain.bid[r] * 2
    with_limits(env, min_open_interest=10**6)
    assert isinstance(env.check(close_of(env, opened)), Approved)


def test_same_day_book_is_stressed_to_the_close(env: Env) -> None:
    # A 0DTE short put spread: tiny at today's vol, but a 1% drop at the close costs most of the width.
    legs = [Leg(env.chain.symbol_at(DAY, 595.0, False), Side.BUY, 1, PositionIntent.BUY_TO_OPEN),
            Leg(env.chain.symbol_at(DAY, 600.0, False), Side.SELL, 1, PositionIntent.SELL_TO_OPEN)]
    it = intent(env, legs, qty=5)
    with_limits(env, stress=StressLimits(spot_shock_pct=0.001, vol_shock_vol_pts=0.0, to_close_spot_shock_pct=0.02,
                                         max_loss_usd=1_500.0))
    v = env.check(it)
    assert isinstance(v, Denied) and DenyReason.STRESS_LOSS in v.reasons and "to_close" in v.detail
    with_limits(env, stress=StressLimits(spot_shock_pct=0.001, vol_shock_vol_pts=0.0, to_close_spot_shock_pct=0.001,
                                         max_loss_usd=1_500.0))
    assert DenyReason.STRESS_LOSS not in reasons(env.check(it))


def test_gate_collects_every_failing_reason(env: Env) -> None:
    with_limits(env, min_open_interest=5_000, min_volume=5_000)
    v = env.check(condor(env, qty=10))
    assert {DenyReason.OPEN_INTEREST_LOW, DenyReason.VOLUME_LOW, DenyReason.MAX_LOSS_STRUCTURE} <= reasons(v)


def test_gate_does_not_mutate_its_inputs(env: Env) -> None:
    before = (dict(env.portfolio.positions()), env.limits, env.rate.count_since(0))
    env.check(condor(env))
    assert (dict(env.portfolio.positions()), env.limits, env.rate.count_since(0)) == before


def test_held_book_stress_is_reused_only_while_it_cannot_have_changed(env: Env) -> None:
    from risk.gate import RiskGate

    env.hold(condor(env, qty=2, iid="held"))
    gate = RiskGate(env.limits)
    it = intent(env, [(600, "C", Side.BUY)], iid="probe")

    def check() -> Approved | Denied:
        return gate.check(it, env.portfolio, env.market, env.account, env.state, env.now_ns, env.rate)

    first = check()
    assert isinstance(first, Approved) and gate.cache.misses == 1
    env.now_ns += 1_000_000
    env.chain.reprice(600.3, env.now_ns)  # 0.05 % and a millisecond: same held stress
    check()
    assert (gate.cache.hits, gate.cache.misses) == (1, 1)
    env.now_ns += 1_000_000
    env.chain.reprice(601.0, env.now_ns)  # 0.17 % from where it was computed: recompute
    check()
    assert gate.cache.misses == 2
    env.now_ns += 1_000_000
    env.chain.reprice(601.0, env.now_ns, vol_shift=0.01)  # IV up a point: recompute
    check()
    assert gate.cache.misses == 3
    env.hold(intent(env, [(600, "P", Side.BUY)], iid="more"))  # positions changed: recompute
    check()
    assert gate.cache.misses == 4
    env.chain.generation = getattr(env.chain, "generation", 0) + 1  # the book dropped rows: row numbers moved
    check()
    assert gate.cache.misses == 5
    # A cached verdict equals the uncached one.
    env.chain.reprice(601.0, env.now_ns)
    cached, fresh = check(), env.check(it)
    assert isinstance(cached, Approved) and isinstance(fresh, Approved)
    assert cached.worst_stress_pnl_usd == pytest.approx(fresh.worst_stress_pnl_usd, rel=1e-9)


def test_selling_the_shares_that_cover_a_short_call_is_denied(env: Env) -> None:
    env.hold(stock(env, 100, iid="shares"))
    env.hold(intent(env, [(620, "C", Side.SELL)], iid="covered_call"))
    assert DenyReason.UNCOVERED_SHORT in reasons(env.check(stock(env, -100, iid="dump")))
    assert DenyReason.UNCOVERED_SHORT not in reasons(env.check(stock(env, 50, iid="add")))


_SYMS = st.sampled_from(["SPY", "QQQ", "SPY261218C00600000", "SPY261218P00580000", "SPY261218C00620000",
                         "SPY261218P00570000", "QQQ261218C00500000", "SPY261218C00999000", "NOTASYMBOL", ""])
_LEGS = st.lists(st.builds(Leg, _SYMS, st.sampled_from(list(Side)), st.integers(-1, 4),
                           st.sampled_from([None, *PositionIntent]), st.sampled_from(list(AssetClass))),
                 max_size=5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(legs=_LEGS, qty=st.integers(-2, 50), action=st.sampled_from(list(IntentAction)),
       state=st.sampled_from(list(TradingState)), market=st.booleans(),
       limit=st.none() | st.floats(-50, 50, allow_nan=False))
def test_gate_returns_a_verdict_for_any_intent(env: Env, legs: list[Leg], qty: int, action: IntentAction,
                                               state: TradingState, market: bool, limit: float | None) -> None:
    env.state = state
    policy = PricePolicy(kind="market" if market else "limit", limit_price=limit)
    it = OrderIntent("fuzz", "test", "s-fuzz", "SPY", action, tuple(legs), qty, policy)
    v = env.check(it)
    assert isinstance(v, Approved | Denied)
    if isinstance(v, Denied):
        assert v.reasons and all(r in set(DenyReason) for r in v.reasons)
    else:
        assert state is not TradingState.HALTED and 1 <= len(legs) <= 4 and qty > 0


def test_stress_uses_the_payoff_range_bound_only_when_it_proves_the_limit_holds(env: Env) -> None:
    from risk.stress import StressGrid, scenario_pnl

    it = condor(env, qty=2)
    rows = np.array([env.chain.row_of(leg.symbol) for leg in it.legs], dtype=np.int64)
    qty = np.array([leg.side.sign * 2.0 for leg in it.legs])
    c = env.chain
    grid = StressGrid(env.limits.stress)
    exact = float(scenario_pnl(grid, c.forward, c.strike, c.t_years, c.iv, c.is_call, rows, qty,
                               c.spot)[:grid.n_grid].min())
    v = env.check(it)
    assert isinstance(v, Approved)
    # The bound: 10-wide wings x 2 units, widened for discounting; never above the exact worst.
    assert -2_100.0 < v.worst_stress_pnl_usd <= exact
    # A limit between the exact loss and the bound forces the exact computation, which passes.
    with_limits(env, stress=StressLimits(max_loss_usd=(-exact - v.worst_stress_pnl_usd) / 2 - exact))
    v2 = env.check(it)
    assert isinstance(v2, Approved) and v2.worst_stress_pnl_usd == pytest.approx(exact)


def test_a_leg_without_iv_borrows_its_neighbours_for_the_stress(env: Env) -> None:
    """A one-sided quote (no IV) on one leg must not make the whole book unpriceable (it blocked hedges)."""
    it = condor(env)
    env.chain.iv[env.chain.row_of(it.legs[0].symbol)] = np.nan
    verdict = env.check(it)
    assert DenyReason.STRESS_UNPRICEABLE not in getattr(verdict, "reasons", ())
