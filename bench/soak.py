"""Soak: the engine under a steady quote flood for a long time, watched for leaks and latency creep.

    .venv/bin/python bench/soak.py --minutes 60 --json soak.json     # the full soak (RELIABILITY.md)
    .venv/bin/python bench/soak.py --minutes 2                       # the CI-sized soak
    .venv/bin/python bench/soak.py --days 100 --json days.json       # 100 trading days at high speed

The simulator (its own process) floods the engine (``options-engine run``, paper mode against it, all three
strategies on, fills and alerts to a private redis-server unless ``--no-redis``) with option quotes at about
``--quotes-per-s``; every ``--sample-s`` the runner reads the engine's ``/status`` (RSS, asyncio tasks, open
sockets) and ``/metrics`` (the tick-to-order histogram).
The run lasts ``--minutes`` and then until the simulated clock is back at the time of day the first minute
ended (at most one more session), so the last minute covers the same part of a session as the first: the
strategies enter at set times of day, and a last minute at another hour may hold no order to time.
Pass criteria: RSS at the end within 5 % of RSS after the first minute (warm-up), tick-to-order p99 of the
last minute within 20 % of the first minute's (histogram bucket resolution; both windows need samples), and
no growth in asyncio tasks or open sockets (last minute's median <= first minute's median: a single sample
with a request or reconcile task in flight is not growth).

``--days N`` runs N simulated trading days instead (the simulator skips closed hours; ``--days-speed``
simulated seconds per wall second, quotes thinned to keep the flood near the minutes mode's): the RSS of
each day (median of its samples) and the least-squares slope over the days after ``--warmup-days``, with
its standard error; "flat" is a slope within two standard errors of zero or under 16 KiB a day (4 MiB a
year). It also times the engine's start: the first (empty journal), a restart after the N days (from the
journal's broker checkpoint) and one with the checkpoint removed (the whole broker history read, as before
checkpoints), ``--restarts`` pairs of them (medians); pass: restart within 1.5x of the first start. For
reading that ratio it also times a start with an empty journal on the last simulated date (``fresh_at_end``)
and reports the contracts each start listed. Each of these starts runs with the simulator's market paused
(``POST /sim/clock/pause``; resumed at ready), the first start included: at ``--days-speed`` the simulator
spends most of a core pricing a hundred simulated seconds of trades per step, and a start's requests wait
behind those steps, a cost of the test rig that a broker's servers do not have and that changes with the
simulated market (its volatility drifts over the days). One more restart, with the market running
(``after_days_market_running``), is reported beside them. The simulator starts with a seasoned chain
(``--listing-history-days``, default 400: every expiry with the strikes of its own first listing day, as a real
chain has them); listed fresh at the start, the chain widened over the first weeks and a restart after them
listed 2.3x the contracts of the first start, which a start pays for whatever the journal holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability.harness import EngineProcess, RedisServer, SimProcess, SimSettings  # noqa: E402

from greeks.calendar import NEW_YORK  # noqa: E402

BUCKET = re.compile(r'^\w+_tick_to_order_seconds_bucket\{le="([^"]+)"\} (\d+)', re.M)


def histogram(port: int) -> list[tuple[float, int]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [(float("inf") if le == "+Inf" else float(le), int(n)) for le, n in BUCKET.findall(text)]


def p99(before: list[tuple[float, int]], after: list[tuple[float, int]]) -> tuple[float | None, int]:
    """p99 (bucket upper bound, seconds) of the observations between two cumulative snapshots, and their count."""
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = diff[-1][1] if diff else 0
    if total == 0:
        return None, 0
    for le, n in diff:
        if n >= 0.99 * total:
            return le, total
    return diff[-1][0], total


def median_growth(first: list[dict[str, Any]], last: list[dict[str, Any]], key: str) -> float:
    """How much the last window's median of ``key`` exceeds the first window's."""
    return float(statistics.median(s[key] for s in last) - statistics.median(s[key] for s in first))


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope of ys on xs and its standard error."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    resid = [y - my - b * (x - mx) for x, y in zip(xs, ys, strict=True)]
    se = (sum(r * r for r in resid) / max(n - 2, 1) / sxx) ** 0.5
    return b, se


def start_redis(args: argparse.Namespace, work: Path) -> RedisServer | None:
    """A private redis-server for the engine's fills and alerts, as in production (``--no-redis``: none; the
    engine then keeps alerts in its bounded buffer)."""
    if not args.redis:
        return None
    if shutil.which("redis-server") is None:
        sys.exit("soak: redis-server is not installed (apt-get install redis-server), or pass --no-redis")
    redis = RedisServer(work / "redis")
    redis.start()
    return redis


def timed_start(engine: EngineProcess, sim: SimProcess | None = None) -> dict[str, Any]:
    """Start the engine; seconds to ready and what its restart reconciliation read. With ``sim``, its market is
    paused for the start (see ``run_days``)."""
    if sim is not None:
        sim.control("POST", "/clock/pause", {"paused": True})
    try:
        t = time.monotonic()
        engine.start(timeout_s=300.0)
        ready_s = time.monotonic() - t
    finally:
        if sim is not None:
            sim.control("POST", "/clock/pause", {"paused": False})
    events = engine.events()
    rec: dict[str, Any] = next((e for e in events if e.get("event") == "reconciled"), {})
    listed = sum(int(e.get("contracts", 0)) for e in events if e.get("event") == "contracts_loaded")
    return {"ready_s": round(ready_s, 2), "contracts_listed": listed, **{k: rec.get(k) for k in
            ("journal_fills", "broker_orders_read", "activities_read", "imported_fills", "window_after_ns")}}


def at_phase(now: dt.datetime, phase: dt.datetime | None, samples: list[dict[str, Any]],
             args: argparse.Namespace, window_s: float) -> bool:
    """Whether the run may end now: the simulated clock is back at the time of day the first minute ended (on a
    later session), so the last minute covers the same part of a session as the first (the strategies enter at
    set times of day: a last minute at another hour may hold no order to time). At most one more session
    (6.5 simulated hours) past ``--minutes``."""
    overtime = samples[-1]["t"] - args.minutes * 60
    if phase is None or overtime >= 6.5 * 3600 / args.speed + 2 * args.sample_s:
        return True
    before = dt.datetime.fromisoformat(samples[-2]["sim_now"]) if len(samples) > 1 else now
    return now.date() > phase.date() and now.time() >= phase.time() and (
        before.time() < phase.time() or before.date() < now.date())


def run_days(args: argparse.Namespace) -> int:
    """``--days``: RSS per simulated day with its slope, and start-up time after the days vs the first start."""
    with tempfile.TemporaryDirectory(prefix="soak-days-") as tmp:
        work = Path(tmp)
        sim = SimProcess(work / "sim", SimSettings(speed=args.days_speed, option_quote_rate=args.days_quote_rate,
                                                   partial_fill_probability=0.1, start="2026-11-23T09:30:00",
                                                   rate_limit_per_min=0,
                                                   extra=f"publish_interval_ms = {args.publish_interval_ms}\n"
                                                         "option_symbol_cap = 1000\n"
                                                         f"listing_history_days = {args.listing_history_days}\n"))
        sim.start()
        redis = start_redis(args, work)
        redis_url = redis.url if redis is not None else None
        engine = EngineProcess(work / "engine", sim, redis_url, stale_ms=600_000, options_feed=args.options_feed)
        days: dict[str, list[dict[str, Any]]] = {}
        starts: dict[str, Any] = {}
        try:
            starts["first"] = timed_start(engine, sim)
            first_day = sim.state()["session"]
            while len(days) <= args.days:
                time.sleep(args.sample_s)
                session = sim.state()["session"]
                st = engine.status()
                sample = {"rss": st["process"]["rss_bytes"], "records": st.get("records", {}),
                          "orders": st["summary"].get("router", {}).get("orders_placed", 0),
                          "state": st["trading_state"]}
                days.setdefault(session, []).append(sample)
                if len(days[session]) == 1:
                    print(f"day {len(days):3d} {session}: rss={sample['rss'] / 2**20:7.1f}MiB "
                          f"orders={sample['orders']} records={sample['records']} {sample['state']}", flush=True)
            alive = engine.alive()
            for _ in range(args.restarts):  # alternate: from the checkpoint, then with it removed
                engine.stop()
                starts.setdefault("after_days", []).append(timed_start(engine, sim))
                engine.stop()
                with sqlite3.connect(engine.journal_path) as db:
                    db.execute("DELETE FROM meta WHERE key = 'broker_checkpoint'")
                starts.setdefault("after_days_no_checkpoint", []).append(timed_start(engine, sim))
            engine.stop()
            # Diagnostic, not the criterion: a restart while the simulator's market runs on at --days-speed
            # (the simulator's steps then share its loop, and the box, with the start's requests).
            starts["after_days_market_running"] = timed_start(engine)
            engine.stop()
            # Diagnostic, not the criterion: a first start (empty journal) on the same simulated date, whose
            # listing has grown with the days (strikes follow the spot), against the same account.
            fresh = EngineProcess(work / "engine-fresh", sim, redis_url, stale_ms=600_000,
                                  options_feed=args.options_feed)
            starts["fresh_at_end"] = timed_start(fresh, sim)
            fresh.stop()
        finally:
            engine.stop()
            sim.stop()
            if redis is not None:
                redis.stop()
    names = list(days)[1:-1]  # whole days only (the first may start late, the last is cut off)
    rss = [statistics.median(s["rss"] for s in days[d]) / 2**20 for d in names]
    xs = list(range(len(rss)))[args.warmup_days:]
    b, se = slope([float(x) for x in xs], rss[args.warmup_days:])
    flat = abs(b) <= 2 * se or abs(b) * 1024 < 16
    restart_s = statistics.median(s["ready_s"] for s in starts["after_days"])
    ratio = restart_s / starts["first"]["ready_s"]
    result = {"days": len(names), "first_day": first_day, "days_speed": args.days_speed, "alive_at_end": alive,
              "rss_mib_by_day": [round(r, 2) for r in rss], "rss_slope_kib_per_day": round(b * 1024, 1),
              "rss_slope_stderr_kib_per_day": round(se * 1024, 1), "rss_flat": flat,
              "records_last_day": days[names[-1]][-1]["records"] if names else {},
              "orders_placed": max(s["orders"] for ss in days.values() for s in ss),
              "starts": starts, "restart_median_s": restart_s,
              "restart_no_checkpoint_median_s": statistics.median(
                  s["ready_s"] for s in starts["after_days_no_checkpoint"]),
              "restart_vs_first": round(ratio, 2),
              "restart_market_running_s": starts["after_days_market_running"]["ready_s"],
              "restart_vs_fresh_start_at_end": round(restart_s / starts["fresh_at_end"]["ready_s"], 2)}
    result["checks"] = {"alive": alive, "rss_flat": flat, "restart_within_1_5x": ratio <= 1.5}
    result["passed"] = all(result["checks"].values())
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib_by_day"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--days", type=int, default=0, help="simulated trading days (instead of --minutes)")
    ap.add_argument("--days-speed", type=float, default=3000.0)
    ap.add_argument("--days-quote-rate", type=float, default=0.002)
    ap.add_argument("--warmup-days", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=3, help="restart pairs timed after the days (median)")
    ap.add_argument("--listing-history-days", type=int, default=400,
                    help="--days: the simulator starts with the chain it would list after this many days (its "
                         "[sim] listing_history_days), so the first start and the restarts list alike")
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    ap.add_argument("--option-quote-rate", type=float, default=10.0,
                    help="quotes per contract per simulated second")
    ap.add_argument("--publish-interval-ms", type=float, default=35.0,
                    help="wall ms between simulator steps; at most one quote per contract per step, so this and "
                         "the subscribed contracts set the flood: ~800 contracts / 35 ms = ~23k quotes/s")
    ap.add_argument("--options-feed", choices=("indicative", "opra"), default="opra",
                    help="opra: up to 1,000 streamed contracts (indicative: 200)")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--no-redis", dest="redis", action="store_false",
                    help="run the engine without Redis (by default a private redis-server takes its fills and "
                         "alerts, as in production; without one the engine keeps alerts in a bounded buffer)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the children
    if args.days:
        return run_days(args)
    window_s = 60.0
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        sim = SimProcess(work / "sim", SimSettings(speed=args.speed, option_quote_rate=args.option_quote_rate,
                                                   partial_fill_probability=0.1, start="2026-11-23T09:35:00",
                                                   extra=f"publish_interval_ms = {args.publish_interval_ms}\n"
                                                         "option_symbol_cap = 1000\n"))
        sim.start()
        redis = start_redis(args, work)
        engine = EngineProcess(work / "engine", sim, redis.url if redis is not None else None, stale_ms=10_000,
                               options_feed=args.options_feed)
        samples: list[dict[str, Any]] = []
        try:
            engine.start()
            t0 = time.monotonic()
            q0 = sim.state()["quotes_sent"]
            phase: dt.datetime | None = None  # simulated time at the end of the first minute
            while True:
                time.sleep(args.sample_s)
                st = engine.status()
                sim_state = sim.state()
                now = dt.datetime.fromisoformat(sim_state["now"].replace("Z", "+00:00")).astimezone(NEW_YORK)
                sample = {"t": round(time.monotonic() - t0, 1), "quotes": sim_state["quotes_sent"] - q0,
                          "sim_now": now.isoformat(), "hist": histogram(engine.port), **st["process"],
                          "trading_state": st["trading_state"],
                          "orders": st["summary"].get("router", {}).get("orders_placed", 0)}
                samples.append(sample)
                if sample["t"] <= window_s:
                    phase = now
                if sample["t"] >= args.minutes * 60 and at_phase(now, phase, samples, args, window_s):
                    break
                print(f"t={sample['t']:7.1f}s quotes/s={sample['quotes'] / sample['t']:8.0f} "
                      f"rss={sample['rss_bytes'] / 2**20:7.1f}MiB tasks={sample['asyncio_tasks']:3d} "
                      f"sockets={sample['open_sockets']:3d} orders={sample['orders']} {sample['trading_state']}",
                      flush=True)
            alive = engine.alive()
        finally:
            engine.stop()
            sim.stop()
            if redis is not None:
                redis.stop()
    first = [s for s in samples if s["t"] <= window_s]
    last = [s for s in samples if s["t"] > samples[-1]["t"] - window_s]
    zero = [(le, 0) for le, _ in samples[0]["hist"]]
    p99_first, n_first = p99(zero, first[-1]["hist"])
    before_last = [s for s in samples if s["t"] <= samples[-1]["t"] - window_s]
    p99_last, n_last = p99(before_last[-1]["hist"] if before_last else zero, samples[-1]["hist"])
    rss_ref = first[-1]["rss_bytes"]
    rss_drift = (samples[-1]["rss_bytes"] - rss_ref) / rss_ref
    tasks_growth = median_growth(first, last, "asyncio_tasks")
    sockets_growth = median_growth(first, last, "open_sockets")
    p99_ratio = (p99_last / p99_first) if p99_first and p99_last else None
    result = {
        "minutes": args.minutes, "ran_minutes": round(samples[-1]["t"] / 60, 2), "speed": args.speed,
        "first_minute_ended_at": first[-1]["sim_now"],
        "ended_at": samples[-1]["sim_now"], "alive_at_end": alive,
        "quotes_per_s": round(samples[-1]["quotes"] / samples[-1]["t"]),
        "rss_first_minute_mib": round(rss_ref / 2**20, 1), "rss_end_mib": round(samples[-1]["rss_bytes"] / 2**20, 1),
        "rss_drift_pct": round(100 * rss_drift, 2),
        "tick_to_order_p99_first_minute_ms": None if p99_first is None else p99_first * 1e3,
        "tick_to_order_p99_last_minute_ms": None if p99_last is None else p99_last * 1e3,
        "orders_first_minute": n_first, "orders_last_minute": n_last, "p99_ratio_last_vs_first": p99_ratio,
        "asyncio_tasks_growth": tasks_growth, "open_sockets_growth": sockets_growth,
        "samples": [{k: v for k, v in s.items() if k != "hist"} for s in samples],
    }
    checks = {"alive": alive, "rss_drift_under_5pct": rss_drift < 0.05,
              "p99_within_20pct": p99_ratio is not None and p99_ratio <= 1.2,
              "no_task_growth": tasks_growth <= 0, "no_socket_growth": sockets_growth <= 0}
    result["checks"] = checks
    result["passed"] = all(checks.values())
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
