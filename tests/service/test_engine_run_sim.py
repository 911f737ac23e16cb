"""The whole engine in sim mode, accelerated: all three strategies trade through the gate and the router.

One run of about 40 s of wall time at 600x (a trading day and a bit) with the shipped strategies, tuned
only so that exits happen within the run (a condor take-profit of 5 % of credit, order policies slow
enough in event time for REST round trips at this speed). Checked afterwards: each strategy opened a
structure, the gamma scalper hedged with stock, the condor and the 0DTE structures were closed, every
order the simulator received belongs to an intent the gate approved (the broker's own expiry-day liquidations
aside: a 0DTE long wing bid at zero cannot be sold, and when it drifts near the money by 15:15 the broker closes
it), and positions agree exactly.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from domain.orders import OrderIntent
from domain.views import AccountView
from engine.kernel.kernel import TradingKernel
from engine.service.app import Engine
from engine.service.config import parse_config_text
from engine.service.gc_tuning import GC_THRESHOLD
from engine.service.kernel_warmup import PACKAGES
from greeks.kernel_cache import cached_signatures, dispatchers
from tests.service.helpers import SIM_TRADING_DAY

pytestmark = pytest.mark.timeout(240)

CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0

"""


async def test_all_strategies_trade_hedge_and_exit_through_the_gate(tmp_path: Path) -> None:
    cfg = parse_config_text(CONFIG.format(state=tmp_path / "state") + SIM_TRADING_DAY)
    approved: set[str] = set()

    class Watched(Engine):
        def _build_kernel(self, account: AccountView) -> TradingKernel:
            kernel = super()._build_kernel(account)

            # watched from the first decision on: strategies can act before start() returns (the feeds connect
            # inside it), and an order approved before a hook set afterwards would look unapproved
            def on_approved(intent: OrderIntent, _trigger_ns: int) -> None:
                approved.add(f"{cfg.engine.client_order_prefix}-{intent.intent_id}")

            kernel.core.on_intent_approved = on_approved
            return kernel

    engine = Watched(cfg, duration_s=40.0)
    before = gc.get_threshold()

    async def run() -> dict[str, Any]:
        await engine.start()
        assert engine.core is not None
        assert gc.get_threshold() == GC_THRESHOLD  # tuned once READY
        # every kernel overload this installation has cached is loaded by READY, none left to the first tick
        for kernel in dispatchers(PACKAGES):
            assert set(cached_signatures(kernel)) <= set(kernel.overloads), kernel
        return await engine.run_started()

    summary = await run()
    assert gc.get_threshold() == before  # put back at shutdown
    s = summary["strategies"]
    for name in ("gamma_scalper", "iron_condor", "zero_dte"):
        assert s[name]["structures_opened"] >= 1, (name, s[name])
    assert s["gamma_scalper"]["stats"]["hedges"] >= 1
    stock_fills = [f for f in engine.sim.inspect()["fills"] if f["symbol"] == "SPY" or f["symbol"] == "QQQ"]
    assert stock_fills, "the gamma scalper's hedges never reached the exchange"
    assert s["iron_condor"]["structures_closed"] >= 1, s["iron_condor"]
    assert s["zero_dte"]["structures_closed"] >= 1, s["zero_dte"]
    assert not [a for a in engine.alerts if a.code == "strategy_error"]

    view = engine.sim.inspect()
    assert view["orders"]
    broker = set(view["broker_orders"])
    for order in view["orders"]:
        if order["client_order_id"] in broker:
            # the broker's expiry-day liquidation of a leg the engine could not sell (bid at zero): a closing
            # order of a contract expiring today, never one of ours
            assert order["position_intent"] in ("sell_to_close", "buy_to_close"), order
            assert order["symbol"][-15:-9] == view["session"][2:].replace("-", ""), order
            continue
        base = order["client_order_id"].split(".r")[0]
        assert base in approved, f"order {order['client_order_id']} has no approved intent"

    sim_positions = {k: v for k, v in engine.sim.inspect()["positions"].items() if abs(v) > 1e-9}
    ours = {k: v for k, v in engine.portfolio.positions().items() if abs(v) > 1e-9}
    assert ours == sim_positions
