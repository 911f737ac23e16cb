"""No strategy opens a leg on the other side of a position the account already holds in that contract.

The broker holds one net position per contract: a 0DTE condor selling the strike an earlier condor's unsellable
long wing still holds could later buy back only the net, and its closing order was refused for "insufficient
qty" until the liquidation window (seen in two `make run`s in a row).
"""

from __future__ import annotations

import datetime as dt

from strategy_harness import Harness
from support.synthetic import SyntheticChain, ny_ns, standard_expiries, strike_ladder

from domain.orders import AssetClass, OrderFilled, Side
from strategies.gamma_scalper import GammaScalper, GammaScalperConfig
from strategies.iron_condor import IronCondor, IronCondorConfig
from strategies.structures import Structure
from strategies.zero_dte import ZeroDte, ZeroDteConfig

DAY = dt.date(2026, 11, 16)


def _hold(h: Harness, symbol: str, qty: float) -> None:
    side = Side.BUY if qty > 0 else Side.SELL
    h.portfolio.on_fill(OrderFilled(f"other-{symbol}", "o-other", "c-other", symbol, side, abs(qty), 0.05, 1, 1,
                                    AssetClass.OPTION, "zero_dte", "an-earlier-structure"))


def _legs(structure: Structure | None) -> dict[str, int]:
    assert structure is not None
    return {leg.symbol: leg.ratio for leg in structure.legs}


def test_zero_dte_never_sells_a_contract_the_account_is_long_or_buys_one_it_is_short() -> None:
    now = ny_ns(2026, 11, 16, 10, 5)
    chain = SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 1, 7)), strike_ladder(600.0, 1.0, 30))
    h = Harness(ZeroDte("zd", ZeroDteConfig(underlyings=("SPY",))), [chain], now)
    first = _legs(h.strategy.select(chain, now, DAY))
    short_put = next(s for s, r in first.items() if r < 0 and "P" in s[9:])
    long_call = next(s for s, r in first.items() if r > 0 and "C" in s[9:])
    _hold(h, short_put, +3)  # an earlier condor's long wing, left because its bid was zero
    _hold(h, long_call, -2)
    second = _legs(h.strategy.select(chain, now, DAY))
    assert short_put not in second and long_call not in second
    assert second, "a condor is still chosen on the other strikes"


def test_condor_and_scalper_keep_off_the_other_side_of_held_contracts() -> None:
    now = ny_ns(2026, 11, 16, 10, 0)
    chain = SyntheticChain("SPY", 600.0, now, standard_expiries(DAY, (0, 7, 14, 21, 30, 37, 44, 60)),
                           strike_ladder(600.0, 1.0, 80))
    condor = Harness(IronCondor("ic", IronCondorConfig(underlyings=("SPY",))), [chain], now)
    legs = _legs(condor.strategy.select(chain, now))
    short_call = next(s for s, r in legs.items() if r < 0 and "C" in s[9:])
    _hold(condor, short_call, +1)
    assert short_call not in _legs(condor.strategy.select(chain, now))

    scalper = Harness(GammaScalper("gs", GammaScalperConfig()), [chain], now)
    straddle = _legs(scalper.strategy.select(chain, now))
    call = next(s for s in straddle if "C" in s[9:])
    _hold(scalper, call, -1)
    assert call not in _legs(scalper.strategy.select(chain, now))
