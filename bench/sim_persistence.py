"""What keeping the simulated account on disk costs per fill (``engine/sim/store.py``).

A paused simulator with a state directory takes orders that fill at once, the way a REST request does
(submit, then the commit the request middleware makes before answering). Measured per commit, with
the order history the account already has (``--history``) and the orders working meanwhile
(``--working``), for a single-leg fill, a 4-leg fill and the once-a-second commit with nothing new.
The same order flow without a state directory gives the baseline (submit and fill alone).

    .venv/bin/python bench/sim_persistence.py [--json] [--fills 400] [--history 2000] [--working 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.sim.config import SimConfig
from engine.sim.server import Simulator

CONFIG = SimConfig(speed=0.0, rate_limit_per_min=0, partial_fill_probability=0.0, initial_cash=1e9)


def _calls(sim: Simulator, n: int) -> list[str]:
    uni = sim.market.universe
    today = sim.clock.today()
    expiry = sorted({d for d in uni.expiry_dates if d > today + dt.timedelta(days=20)})[0]
    spot = sim.market.spot("SPY")
    rows = [i for i, s in enumerate(uni.symbols) if s.startswith("SPY") and uni.expiry_dates[i] == expiry
            and uni.is_call[i]]
    rows.sort(key=lambda i: abs(float(uni.strike[i]) - spot))
    return sorted(uni.symbols[i] for i in rows[:n])


def _stats(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {"n": len(s), "mean_us": round(statistics.fmean(s) / 1e3, 1), "p50_us": round(s[len(s) // 2] / 1e3, 1),
            "p99_us": round(s[min(len(s) - 1, int(len(s) * 0.99))] / 1e3, 1)}


def run(fills: int, history: int, working: int, persist: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(CONFIG, state_dir=Path(tmp) if persist else None)
        ex = sim.exchange
        calls = _calls(sim, 8)
        seq = iter(range(10**9))

        def order(symbol: str, side: str, **extra: Any) -> dict[str, Any]:
            return {"symbol": symbol, "qty": 1, "side": side, "type": "market", "time_in_force": "gtc",
                    "client_order_id": f"b-{next(seq)}", **extra}

        def commit() -> None:
            if sim.store is not None:
                sim.store.commit(sim, force=True)  # what the REST middleware does after each request

        for i in range(history):  # an account with a past: filled orders and fills
            ex.submit(order(calls[i % 4], "sell" if i % 2 else "buy"))
            if i % 50 == 0:
                commit()
        for i in range(working):  # limit orders that stay working
            ex.submit(order(calls[4 + i % 4], "buy", type="limit", limit_price=0.01))
        commit()
        mleg = {"order_class": "mleg", "qty": 1, "type": "market", "time_in_force": "day",
                "legs": [{"symbol": s, "ratio_qty": 1, "side": side}
                         for s, side in zip(calls[:4], ("buy", "sell", "sell", "buy"), strict=True)]}

        def timed(make: Callable[[int], Any]) -> tuple[list[int], list[int]]:
            total, persisted = [], []
            for i in range(fills):
                t0 = time.perf_counter_ns()
                make(i)
                t1 = time.perf_counter_ns()
                commit()
                t2 = time.perf_counter_ns()
                total.append(t2 - t0)
                persisted.append(t2 - t1)
            return total, persisted

        single_total, single_commit = timed(lambda i: ex.submit(order(calls[i % 4], "sell" if i % 2 else "buy")))
        mleg_total, mleg_commit = timed(lambda i: ex.submit({**mleg, "client_order_id": f"m-{i}"}))
        idle: list[int] = []
        for _ in range(fills):
            t0 = time.perf_counter_ns()
            commit()
            idle.append(time.perf_counter_ns() - t0)
        out = {
            "persist": persist,
            "single_leg_fill": {"total": _stats(single_total), "commit": _stats(single_commit)},
            "four_leg_fill": {"total": _stats(mleg_total), "commit": _stats(mleg_commit)},
            "idle_commit": _stats(idle),
            "orders": len(ex.orders),
            "fills": len(ex.fills),
        }
        if sim.store is not None:
            sim.save()
            wal = Path(tmp) / "sim.sqlite3-wal"
            out["wal_bytes_unchecked"] = wal.stat().st_size  # no checkpoint ran: the worst case
            sim.store.checkpoint()
            out["db_bytes"] = (Path(tmp) / "sim.sqlite3").stat().st_size
            out["commits"] = sim.store.stats.commits
            sim.store.close()
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=400)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--working", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    results = [run(args.fills, args.history, args.working, persist) for persist in (False, True)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    base, kept = results
    print(f"history {args.history} orders, {args.working} working; {args.fills} fills of each kind")
    for kind in ("single_leg_fill", "four_leg_fill"):
        b, k = base[kind]["total"], kept[kind]
        print(f"  {kind:16s} submit+fill {b['p50_us']:7.1f} us p50 | with state: commit {k['commit']['p50_us']:7.1f} "
              f"us p50, {k['commit']['p99_us']:7.1f} us p99 (total {k['total']['p50_us']:7.1f} us p50)")
    print(f"  idle commit      {kept['idle_commit']['p50_us']:7.1f} us p50, {kept['idle_commit']['p99_us']:7.1f} us p99"
          f"; database {kept['db_bytes'] / 1e6:.1f} MB for {kept['orders']} orders, {kept['fills']} fills "
          f"(WAL {kept['wal_bytes_unchecked'] / 1e6:.1f} MB after {kept['commits']} commits without a checkpoint)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
