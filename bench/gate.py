"""Benchmark the pre-trade gate: latency of ``check_intent`` on a 5,000-contract book with open positions.

The book is a synthetic SPY chain (``support.synthetic``) of about 5,000 contracts priced through
``greeks``; the portfolio holds a condor, a hedged straddle and a same-day condor (so the stress runs
its to-the-close scenarios). Intents cycle through a 4-leg condor open, a 2-leg straddle open, a
4-leg close and a stock hedge. ``gate_cold_cache_*`` writes 4 MB before each check (untimed), as the
frames between two triggers do in the engine: what the same check costs with the CPU caches cold.
The baseline, measured in the same run, is the gate with only the state, shape, quote and liquidity
checks (what a gate without portfolio risk checks costs), so the ratio shows what the Greeks,
max-loss, capital and stress checks add.

    .venv/bin/python bench/gate.py [--n 20000] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import time

import numpy as np
from benchlib import print_result
from support.synthetic import SyntheticChain, SyntheticMarket, ny_ns, standard_expiries, strike_ladder

from domain.orders import AssetClass, IntentAction, Leg, OrderFilled, OrderIntent, PositionIntent, PricePolicy, Side
from domain.orders import TradingState as TS
from domain.views import AccountView
from engine.kernel.portfolio import Portfolio
from risk.gate import Approved, RiskGate, _check_shape, _scan_legs
from risk.limits import RiskLimits
from risk.rate import RateBudget

DAY = dt.date(2026, 11, 16)
NOW = ny_ns(2026, 11, 16, 11, 0)


def build() -> tuple[SyntheticChain, SyntheticMarket, Portfolio, list[OrderIntent]]:
    expiries = standard_expiries(DAY, (0, 1, 2, 3, 4, 7, 14, 21, 28, 32, 37, 44, 60, 90, 120, 180, 270, 365))
    chain = SyntheticChain("SPY", 600.0, NOW, expiries, strike_ladder(600.0, 1.0, 69))
    market = SyntheticMarket(chain)
    portfolio = Portfolio()

    def sym(e: dt.date, k: float, right: str) -> str:
        return chain.symbol_at(e, k, right == "C")

    def leg(e: dt.date, k: float, right: str, side: Side, closing: bool = False) -> Leg:
        pi = {(Side.BUY, False): PositionIntent.BUY_TO_OPEN, (Side.SELL, False): PositionIntent.SELL_TO_OPEN,
              (Side.BUY, True): PositionIntent.BUY_TO_CLOSE, (Side.SELL, True): PositionIntent.SELL_TO_CLOSE}
        return Leg(sym(e, k, right), side, 1, pi[(side, closing)])

    e37, e14, e0 = expiries[10], expiries[6], expiries[0]
    held = [
        ("ic", [(e37, 570, "P", Side.BUY), (e37, 576, "P", Side.SELL), (e37, 625, "C", Side.SELL),
                (e37, 631, "C", Side.BUY)], 2),
        ("gs", [(e14, 600, "C", Side.BUY), (e14, 600, "P", Side.BUY)], 2),
        ("zd", [(e0, 594, "P", Side.BUY), (e0, 597, "P", Side.SELL), (e0, 603, "C", Side.SELL),
                (e0, 606, "C", Side.BUY)], 3),
    ]
    n = 0
    for sid, legs, qty in held:
        for e, k, r, side in legs:
            n += 1
            row = chain.row_of(sym(e, k, r))
            px = float(0.5 * (chain.bid[row] + chain.ask[row]))
            portfolio.on_fill(OrderFilled(f"x{n}", "o", "c", sym(e, k, r), side, float(qty), px, NOW, NOW,
                                          structure_id=sid, strategy_id=sid))
    portfolio.on_fill(OrderFilled("xh", "o", "c", "SPY", Side.SELL, 12.0, 600.0, NOW, NOW, AssetClass.EQUITY,
                                  structure_id="gs", strategy_id="gs"))
    portfolio.on_book(chain)
    e44 = expiries[11]
    intents = [
        OrderIntent("open_condor", "ic", "ic2", "SPY", IntentAction.OPEN,
                    (leg(e44, 565, "P", Side.BUY), leg(e44, 571, "P", Side.SELL), leg(e44, 628, "C", Side.SELL),
                     leg(e44, 634, "C", Side.BUY)), 2),
        OrderIntent("open_straddle", "gs", "gs2", "SPY", IntentAction.OPEN,
                    (leg(e14, 601, "C", Side.BUY), leg(e14, 601, "P", Side.BUY)), 1),
        OrderIntent("close_condor", "ic", "ic", "SPY", IntentAction.CLOSE,
                    (leg(e37, 570, "P", Side.SELL, True), leg(e37, 576, "P", Side.BUY, True),
                     leg(e37, 625, "C", Side.BUY, True), leg(e37, 631, "C", Side.SELL, True)), 2),
        OrderIntent("hedge", "gs", "gs", "SPY", IntentAction.HEDGE,
                    (Leg("SPY", Side.BUY, 1, None, AssetClass.EQUITY),), 7, PricePolicy(kind="market")),
    ]
    return chain, market, portfolio, intents


def measure(fn, n: int, before=None) -> list[float]:  # type: ignore[no-untyped-def]
    """Wall us of ``n`` calls of ``fn`` (after a warm-up), ``before()`` run untimed ahead of each."""
    for _ in range(min(n, 500)):
        fn()
    out = []
    gc.disable()
    try:
        for _ in range(n):
            if before is not None:
                before()
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e3)
    finally:
        gc.enable()
    return out


def cpu_mean_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Mean CPU time per call (process CPU clock): what a call costs when the machine is not contended."""
    gc.disable()
    try:
        t0 = time.process_time_ns()
        for _ in range(n):
            fn()
        return (time.process_time_ns() - t0) / n / 1e3
    finally:
        gc.enable()


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="checks per measurement")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    chain, market, portfolio, intents = build()
    account = AccountView(200_000.0, 200_000.0, 400_000.0, 200_000.0)
    gate = RiskGate(RiskLimits())
    rate = RateBudget()
    for it in intents:
        v = gate.check(it, portfolio, market, account, TS.ACTIVE, NOW, rate)
        if not isinstance(v, Approved):
            raise SystemExit(f"bench intent {it.intent_id} denied: {v}")
    cycle = iter(range(1 << 62))

    def full() -> None:
        it = intents[next(cycle) & 3]
        gate.check(it, portfolio, market, account, TS.ACTIVE, NOW, rate)

    def shape_only() -> None:
        it = intents[next(cycle) & 3]
        legs = _check_shape(it, chain, portfolio.positions_of("SPY"), NOW, 4, lambda c, d: None)
        if legs is not None and not it.is_stock:
            _scan_legs(chain, legs, NOW, 5_000_000_000, gate.limits, lambda c, d: None)

    frame = iter(range(1 << 62))

    def full_new_frame() -> None:
        # A new book frame (event time moves 1 ms) before each check.
        chain.ts_ns = NOW + next(frame) * 1_000_000
        full()

    def full_moved() -> None:
        # Every check after the underlying moved enough to recompute the held book's stress (cache miss).
        chain.ts_ns = NOW + next(frame) * 1_000_000
        chain.spot = 600.0 * (1.002 if chain.spot < 600.5 else 1.0)
        full()

    scratch = np.zeros(1 << 19)  # 4 MB: more than this box's L2 per core

    def evict() -> None:
        scratch[::8] += 1.0  # one write per cache line, as a frame's numeric pass between two checks would

    cold_t = measure(full_new_frame, args.n // 4, before=evict)
    base = measure(shape_only, args.n)
    full_t = measure(full, args.n)
    frame_t = measure(full_new_frame, args.n)
    miss_t = measure(full_moved, args.n // 4)
    chain.ts_ns, chain.spot = NOW, 600.0
    cpu_full = cpu_mean_us(full_new_frame, args.n)
    cpu_base = cpu_mean_us(shape_only, args.n)
    chain.ts_ns = NOW
    per_kind = {}
    for i, it in enumerate(intents):
        per_kind[it.intent_id] = statistics.median(
            measure(lambda it=it: gate.check(it, portfolio, market, account, TS.ACTIVE, NOW, rate), args.n // 4))
        del i
    result = {
        "book_contracts": len(chain),
        "held_contracts": len(portfolio.positions()),
        "gate_p50_us": round(pct(full_t, 0.5), 2),
        "gate_p99_us": round(pct(full_t, 0.99), 2),
        "gate_max_us": round(max(full_t), 2),
        "gate_new_frame_p50_us": round(pct(frame_t, 0.5), 2),
        "gate_new_frame_p99_us": round(pct(frame_t, 0.99), 2),
        "gate_stress_recompute_p50_us": round(pct(miss_t, 0.5), 2),
        "gate_stress_recompute_p99_us": round(pct(miss_t, 0.99), 2),
        "gate_cold_cache_p50_us": round(pct(cold_t, 0.5), 2),
        "gate_cold_cache_p99_us": round(pct(cold_t, 0.99), 2),
        "warm_cache": {"hits": gate.warm.hits, "misses": gate.warm.misses},
        "gate_cpu_mean_us": round(cpu_full, 2),
        "baseline_cpu_mean_us": round(cpu_base, 2),
        "baseline_shape_quotes_p50_us": round(pct(base, 0.5), 2),
        "baseline_shape_quotes_p99_us": round(pct(base, 0.99), 2),
        "ratio_p50_full_vs_shape_quotes": round(pct(full_t, 0.5) / pct(base, 0.5), 2),
        "p50_us_by_intent": {k: round(v, 2) for k, v in per_kind.items()},
        "n": args.n,
        "stress_rows_sample": int(np.count_nonzero(chain.t_years > 0)),
    }
    return print_result(result, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
