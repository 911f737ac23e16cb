"""Default configs trade in the simulator's market: each actor finds a structure the default gate approves.

The book here is built from the simulator's own quote model (``engine.sim.market``: SPY and QQQ, daily,
weekly and monthly expiries, its smile and spread rules), read directly rather than over the wire.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from support.synthetic import ArrayChain, ArrayMarket

from domain.orders import TradingState
from domain.views import AccountView
from engine.kernel.portfolio import Portfolio
from engine.sim.clock import SimClock
from engine.sim.config import SimConfig
from engine.sim.market import Market
from engine.sim.pricing import years_to
from risk.gate import Approved, check_intent
from risk.limits import RiskLimits
from risk.rate import RateBudget
from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.zero_dte import ZeroDte, ZeroDteConfig


@pytest.fixture(scope="module")
def sim_market() -> ArrayMarket:
    cfg = SimConfig()
    clock = SimClock(dt.datetime(2026, 11, 23, 10, 30))
    market = Market(cfg, clock)
    uni = market.universe
    chains = []
    for ui, und in enumerate(cfg.underlyings):
        rows = np.flatnonzero((uni.und == ui) & uni.active)
        q = market.option_quotes(rows)
        expiry_ns = uni.expiry_ns[rows]
        expiry = [dt.datetime.fromtimestamp(e / 1e9, dt.UTC).date() for e in expiry_ns]
        chains.append(ArrayChain(
            und.symbol, market.spot(und.symbol), clock.now_ns, [uni.symbols[r] for r in rows], uni.strike[rows],
            expiry, uni.is_call[rows], q.bid, q.ask, q.sigma, years_to(expiry_ns, clock.now_ns), cfg.risk_free_rate,
            und.dividend_yield))
    return ArrayMarket(*chains)


class Ctx:
    def __init__(self, market: ArrayMarket) -> None:
        self.market = market
        self.portfolio = Portfolio()
        self.now_ns = next(iter(market.chains.values())).ts_ns
        self.intents: list = []
        self.timers: dict[str, int] = {}

    def account(self) -> AccountView:
        return AccountView(100_000.0, 100_000.0, 200_000.0, 100_000.0)

    def submit(self, intent) -> None:  # type: ignore[no-untyped-def]
        self.intents.append(intent)

    def cancel(self, intent_id: str) -> None: ...

    def set_timer(self, name: str, at_ns: int) -> None:
        self.timers[name] = at_ns

    def cancel_timer(self, name: str) -> None: ...


@pytest.mark.parametrize("actor", [
    GammaScalper("gs", GammaScalperConfig()),
    IronCondor("ic", IronCondorConfig()),
    ZeroDte("zd", ZeroDteConfig()),
], ids=lambda a: a.KIND)
def test_default_config_opens_and_passes_the_default_gate(sim_market: ArrayMarket, actor) -> None:  # type: ignore[no-untyped-def]
    ctx = Ctx(sim_market)
    actor.on_start(ctx)
    for u in actor.underlyings:
        chain = sim_market.chain(u)
        assert chain is not None
        actor.on_book(chain)
    assert {i.underlying for i in ctx.intents} == set(actor.underlyings), actor.last_action
    for intent in ctx.intents:
        v = check_intent(intent, ctx.portfolio, sim_market, ctx.account(), RiskLimits(), TradingState.ACTIVE,
                         ctx.now_ns, RateBudget())
        assert isinstance(v, Approved), v
