"""Sweep throughput: the same sweep with 1 worker, a local pool of 2 and a Ray cluster of 2 worker CPUs.

The sweep: 8 trials (2 x 2 x 2 grid over zero_dte and gate parameters) x 2 simulated days (SPY, calm and gap
open, recorded by ``engine.research.library``) under the shipped ``engine.toml`` as it is (``--no-surface``
turns the inline surface fit off). Each executor gets a fresh results file and is warmed up first (worker
processes started, the replay stack imported); its start-up is reported apart. Ray: a head node and one worker
node with one CPU each, started here on loopback. Reported: trials per hour for each, the 2-worker speedup, Ray's
overhead per trial against the local pool, and whether every trial's ``fills_hash`` agreed across the three.

    .venv/bin/python bench/sweep.py [--json] [--no-ray] [--no-surface]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchlib import print_result  # noqa: E402

from engine.research.executors import PoolExecutor, SequentialExecutor, _warm_up  # noqa: E402
from engine.research.library import record_sim_day  # noqa: E402
from engine.research.runner import SweepRunner  # noqa: E402
from engine.research.spec import load_sweep  # noqa: E402

SWEEP = """
[sweep]
config = "engine.toml"
days = ["days/*.oerec"]
results = "{results}"
[objective]
metric = "pnl_usd"
[params]
"strategies.zero_dte.wing_width_pct" = {{ values = [0.002, 0.004] }}
"strategies.zero_dte.take_profit_pct" = {{ values = [0.3, 0.6] }}
"risk.max_spread_pct" = {{ values = [0.3, 0.6] }}
"""
TRIALS = 8


def _hashes(results: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(results) as db:
        return {(p, d): h for p, d, h in db.execute("SELECT params, day, fills_hash FROM units")}


def _run(root: Path, name: str, executor: object) -> tuple[float, dict[tuple[str, str], str]]:
    path = root / f"{name}.toml"
    path.write_text(SWEEP.format(results=f"{name}.sqlite"))
    sweep = load_sweep(path)
    t0 = time.perf_counter()
    SweepRunner(sweep, executor).run()
    return time.perf_counter() - t0, _hashes(sweep.results)


def _ray_cluster(temp: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus=1", "--object-store-memory=100000000", "--node-ip-address=127.0.0.1"]
    procs = [subprocess.Popen([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                               f"--temp-dir={temp}", *common], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    procs.append(subprocess.Popen([ray, "start", f"--address=127.0.0.1:{port}", *common], env=env,
                                  start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return f"127.0.0.1:{port}", procs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--no-surface", action="store_true")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    (root / "days").mkdir()
    for i, regime in enumerate(("calm", "gap_open")):
        record_sim_day(root / "days" / f"sim_{i}_{regime}.oerec", day=dt.date(2026, 11, 2 + 3 * i), seed=11 + i,
                       regime=regime)
    text = (REPO / "engine.toml").read_text()
    if args.no_surface:
        text = text.replace("\n[surface]\n", "\n[surface]\nenabled = false\n", 1)
    (root / "engine.toml").write_text(text)
    _warm_up()
    out: dict[str, object] = {"trials": TRIALS, "days": 2, "surface": not args.no_surface}
    wall1, h1 = _run(root, "one", SequentialExecutor())
    t0 = time.perf_counter()
    pool = PoolExecutor(2)
    list(pool.pool.map(abs, [1, 2]))  # both workers up and warmed
    out["pool_startup_s"] = round(time.perf_counter() - t0, 2)
    try:
        wall2, h2 = _run(root, "two", pool)
    finally:
        pool.close()
    out["trials_per_hour_1"] = round(TRIALS / wall1 * 3600)
    out["trials_per_hour_2"] = round(TRIALS / wall2 * 3600)
    out["speedup_2_workers"] = round(wall1 / wall2, 3)
    same = h1 == h2
    if not args.no_ray:
        from engine.research.executors import RayExecutor

        t0 = time.perf_counter()
        address, procs = _ray_cluster(Path(tempfile.mkdtemp(prefix="ray", dir="/tmp")))
        try:
            import ray

            executor = RayExecutor(address)
            while len([n for n in ray.nodes() if n["Alive"]]) < 2:
                time.sleep(0.2)
            out["ray_startup_s"] = round(time.perf_counter() - t0, 2)
            try:
                wall_ray, h_ray = _run(root, "ray", executor)
            finally:
                executor.close()
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        out["trials_per_hour_ray_2"] = round(TRIALS / wall_ray * 3600)
        out["ray_overhead_per_trial_s"] = round((wall_ray - wall2) / TRIALS, 3)
        same = same and h_ray == h1
    out["wall_s_1"], out["wall_s_2"] = round(wall1, 2), round(wall2, 2)
    if not args.no_ray:
        out["wall_s_ray_2"] = round(wall_ray, 2)
    out["identical_fills_hash"] = same
    return print_result(out, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
