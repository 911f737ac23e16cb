"""The long calendar torture run: the CI scenarios of ``tests/torture`` over whole days and several seeds.

    .venv/bin/python bench/torture.py                       # every scenario, seeds 1-3, 300x (about 15 minutes)
    .venv/bin/python bench/torture.py --seeds 7 --speed 600 --only half_day --json torture.json

Each run starts the engine in sim mode (all three strategies, every Alpaca rule of the simulator on) at the
first day's 09:35, runs to 11:00 of the session after it, and checks the five invariants of
``tests/torture/harness.py``. It prints one line per run and, with ``--json``, the violations and what each run
did (structures opened and closed, activities by type, broker liquidation orders, router counters). The exit
status is 1 when any run broke an invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from torture.harness import Scenario, facts, run, violations  # noqa: E402
from torture.test_calendar_torture import CALENDAR_DAYS, ex_dividend_scenario  # noqa: E402

from greeks.calendar import market_calendar  # noqa: E402


def whole_days(scenario: Scenario, seed: int, speed: float) -> Scenario:
    """``scenario`` from 09:35 of its first day to 11:00 of the session after it."""
    first = scenario.start.date()
    after = market_calendar().next_session(first).day
    tz = scenario.start.tzinfo
    return Scenario(scenario.name, dt.datetime.combine(first, dt.time(9, 35), tz),
                    dt.datetime.combine(after, dt.time(11, 0), tz), speed=speed, seed=seed,
                    sim_extra=scenario.sim_extra, strategies=dict(scenario.strategies), actions=list(scenario.actions),
                    wall_limit_s=scenario.wall_limit_s * 4)


async def run_one(scenario: Scenario) -> dict[str, Any]:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            outcome = await run(scenario, Path(tmp))
        except AssertionError as exc:  # the run itself could not finish (event time did not reach the end)
            return {"name": scenario.name, "seed": scenario.seed, "ok": False, "violations": [str(exc)],
                    "wall_s": round(time.monotonic() - t0, 1)}
        broken = violations(outcome)
        return {"name": scenario.name, "seed": scenario.seed, "ok": not broken, "violations": broken,
                "wall_s": round(time.monotonic() - t0, 1), **facts(outcome)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--speed", type=float, default=300.0)
    ap.add_argument("--only", nargs="*", default=None, help="scenario names (or prefixes) to run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    scenarios = [*CALENDAR_DAYS, ex_dividend_scenario()]
    if args.only:
        scenarios = [s for s in scenarios if any(s.name.startswith(o) for o in args.only)]
    results = []
    for scenario in scenarios:
        for seed in args.seeds:
            result = asyncio.run(run_one(whole_days(scenario, seed, args.speed)))
            results.append(result)
            status = "ok " if result["ok"] else "BROKEN"
            print(f"{status} {result['name']} seed={seed} wall={result['wall_s']}s "
                  f"{result.get('strategies', '')} {result.get('activities', '')}", flush=True)
            for v in result["violations"]:
                print(f"    {v}", flush=True)
    broken = sum(1 for r in results if not r["ok"])
    print(f"torture: {len(results) - broken}/{len(results)} runs kept every invariant (speed {args.speed}x)")
    if args.json is not None:
        args.json.write_text(json.dumps({"speed": args.speed, "runs": results}, indent=2, default=str))
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
