"""The full reliability run: fault matrix, kill -9 loop and a million fuzz inputs (RELIABILITY.md).

    .venv/bin/python bench/faults.py --json faults.json                 # everything (about 20 minutes)
    .venv/bin/python bench/faults.py --skip-fuzz --kill-iterations 20   # a shorter pass

Matrix and kill loop: the simulator (``options-engine sim``) and the engine (``options-engine run``, paper
mode against the simulator, Redis on, all three strategies) run as separate processes, exactly as in the CI
suite (tests/reliability) but with longer holds, bigger bursts and 100 kill -9 iterations. Fuzzing runs every
target of ``tests/fuzz/targets.py`` under atheris (coverage-guided, one subprocess per target) when it is
installed, otherwise under a seeded mutation loop. Ratios are against measurements of the same run: restart
time against the first start, fault-check time against the clean check before any fault.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from reliability.harness import (  # noqa: E402
    EngineProcess,
    RedisServer,
    SimProcess,
    check_invariants,
)
from reliability.scenarios import Rig, kill9_once, matrix  # noqa: E402


def keep_evidence(work: Path, keep: Path | None, label: str) -> None:
    """Copy the logs and the journal of a failed check out of the temporary rig (for the post-mortem)."""
    if keep is None:
        return
    dest = keep / label
    dest.mkdir(parents=True, exist_ok=True)
    for src in (*work.glob("*/*.log"), *work.glob("engine/state/journal.sqlite3*")):
        shutil.copy2(src, dest / f"{src.parent.name}-{src.name}")
    print(f"evidence of {label} kept in {dest}", flush=True)


def run_matrix_and_kills(work: Path, hold_s: float, kills: int, seed: int, skip_matrix: bool,
                         keep: Path | None = None) -> dict[str, Any]:
    sim = SimProcess(work / "sim")
    redis = RedisServer(work / "redis")
    out: dict[str, Any] = {"matrix": [], "kill9": {}}
    sim.start()
    redis.start()
    engine = EngineProcess(work / "engine", sim, redis.url)
    try:
        t0 = time.monotonic()
        engine.start()
        first_start_s = time.monotonic() - t0
        time.sleep(3.0)
        base = check_invariants(sim, engine, redis)
        out["baseline_check"] = {"ok": base.ok, "s": base.waited_s, "violations": base.violations}
        rig = Rig(sim, engine, redis, work, hold_s=hold_s, full=True)
        for scenario in ([] if skip_matrix else matrix()):
            if not engine.alive():
                engine.start()
            t = time.monotonic()
            row: dict[str, Any] = {"fault": scenario.__name__}
            try:
                row["observed"] = scenario(rig)
                row["expectation_ok"] = True
            except AssertionError as exc:
                row["observed"], row["expectation_ok"] = {"error": str(exc)}, False
            check = check_invariants(sim, engine, redis, within_s=20.0)
            row.update(invariants_ok=check.ok, violations=check.violations, counts=check.counts,
                       settle_s=check.waited_s, seconds=round(time.monotonic() - t, 1))
            out["matrix"].append(row)
            if not (check.ok and row["expectation_ok"]):
                keep_evidence(work, keep, f"matrix-{row['fault']}")
            print(f"{row['fault']:55s} {'PASS' if check.ok and row['expectation_ok'] else 'FAIL'} "
                  f"{row['seconds']:6.1f}s {json.dumps(row['observed'])[:110]} {check.violations}", flush=True)
        rng = random.Random(seed)
        sim.clear()
        restarts, failures = [], []
        for i in range(kills):
            r = kill9_once(rig, rng, max_wait_s=3.0)
            restarts.append(r["restart_s"])
            check = check_invariants(sim, engine, redis, within_s=20.0)
            if not check.ok:
                failures.append({"iteration": i, "violations": check.violations})
                print(f"kill -9 iteration {i + 1} FAILED: {check.violations}", flush=True)
                keep_evidence(work, keep, f"kill9-{i + 1}")
            if (i + 1) % 10 == 0:
                print(f"kill -9 iteration {i + 1}/{kills}: restart {r['restart_s']} s, failures so far "
                      f"{len(failures)}, fills {check.counts.get('broker_fills')}", flush=True)
        code = engine.stop()
        final = check_invariants(sim, engine, redis, need_alive=False)
        restarts.sort()
        out["kill9"] = {
            "iterations": kills, "failures": failures, "first_start_s": round(first_start_s, 2),
            "restart_p50_s": restarts[len(restarts) // 2] if restarts else None,
            "restart_max_s": restarts[-1] if restarts else None,
            "restart_p50_vs_first_start": round(restarts[len(restarts) // 2] / first_start_s, 2) if restarts else None,
            "clean_stop_exit": code, "final_ok": final.ok, "final_violations": final.violations,
            "final_counts": final.counts,
        }
        print(f"kill -9 loop: {kills} iterations, {len(failures)} failures; final check {final.ok} {final.counts}",
              flush=True)
    finally:
        engine.stop()
        sim.stop()
        redis.stop()
    return out


# ------------------------------------------------------------------------------------------ fuzzing

def _seed_corpus(target: str, directory: Path) -> None:
    from fuzz.targets import seeds

    directory.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds()[target]):
        (directory / f"seed{i}").write_bytes(s)


def fuzz_worker(target: str, runs: int, corpus: Path, artifacts: Path) -> None:
    """Inside a subprocess: atheris over one target until ``runs`` inputs (libFuzzer exits the process)."""
    import atheris
    from fuzz.targets import TARGETS, seeds

    for raw in seeds()[target]:  # compile every numba kernel the target reaches before instrumenting
        TARGETS[target](raw)
    atheris.instrument_all()  # bytecode coverage hooks in every loaded Python function (numba's already compiled)
    fn = TARGETS[target]
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096", f"-artifact_prefix={artifacts}/",
                   str(corpus)], fn)
    atheris.Fuzz()


def fuzz_atheris(total: int, work: Path) -> dict[str, Any]:
    from fuzz.targets import TARGETS

    per = total // len(TARGETS)
    results: dict[str, Any] = {}
    for name in TARGETS:
        corpus, artifacts = work / "corpus" / name, work / "artifacts" / name
        artifacts.mkdir(parents=True, exist_ok=True)
        _seed_corpus(name, corpus)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, __file__, "--fuzz-worker", name, "--runs", str(per),
                               "--corpus", str(corpus), "--artifacts", str(artifacts)],
                              capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - t0
        done = re.findall(r"Done (\d+) runs", proc.stderr)
        executed = int(done[-1]) if done else 0
        crashes = sorted(p.name for p in artifacts.iterdir())
        results[name] = {"inputs": executed, "seconds": round(seconds, 1), "exit": proc.returncode,
                         "crashes": crashes, "per_s": round(executed / seconds) if seconds else 0,
                         "tail": proc.stderr[-600:] if proc.returncode else ""}
        print(f"fuzz {name:18s} {executed:8d} inputs {seconds:6.1f}s exit {proc.returncode} crashes {crashes}",
              flush=True)
    return {"engine": "atheris", "targets": results,
            "inputs": sum(r["inputs"] for r in results.values()),
            "crashes": sum(len(r["crashes"]) + (r["exit"] != 0) for r in results.values())}


def fuzz_mutation(total: int, seed: int) -> dict[str, Any]:
    """Without atheris: seeded random mutation of the seeds plus random bytes, same targets."""
    from fuzz.targets import TARGETS, seeds

    rng = random.Random(seed)
    per = total // len(TARGETS)
    corpus = seeds()
    results: dict[str, Any] = {}
    for name, fn in TARGETS.items():
        crashes: list[str] = []
        t0 = time.monotonic()
        for _ in range(per):
            if rng.random() < 0.2:
                data = rng.randbytes(rng.randint(0, 256))
            else:
                buf = bytearray(rng.choice(corpus[name]))
                for _ in range(rng.randint(1, 8)):
                    pos = rng.randint(0, max(len(buf) - 1, 0))
                    op = rng.randint(0, 3)
                    if op == 0 and buf:
                        buf[pos] = rng.randint(0, 255)
                    elif op == 1:
                        buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
                    elif op == 2:
                        del buf[pos:pos + rng.randint(1, 8)]
                    else:
                        buf = buf[:pos]
                data = bytes(buf)
            try:
                fn(data)
            except Exception as exc:  # every escape is a finding
                crashes.append(f"{type(exc).__name__}: {exc}"[:200])
        seconds = time.monotonic() - t0
        results[name] = {"inputs": per, "seconds": round(seconds, 1), "crashes": crashes[:5],
                         "per_s": round(per / seconds) if seconds else 0}
        print(f"fuzz {name:18s} {per:8d} inputs {seconds:6.1f}s crashes {len(crashes)}", flush=True)
    return {"engine": "mutation", "targets": results, "inputs": per * len(TARGETS),
            "crashes": sum(len(r["crashes"]) for r in results.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--kill-iterations", type=int, default=100)
    ap.add_argument("--fuzz-inputs", type=int, default=1_000_000)
    ap.add_argument("--hold-s", type=float, default=2.0, help="how long each fault is held")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--skip-matrix", action="store_true")
    ap.add_argument("--skip-kill", action="store_true")
    ap.add_argument("--skip-fuzz", action="store_true")
    ap.add_argument("--keep-failures", type=Path, metavar="DIR",
                    help="copy the logs and journal of every failed check here")
    ap.add_argument("--no-atheris", action="store_true", help="use the mutation loop even if atheris is installed")
    ap.add_argument("--fuzz-worker", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--artifacts", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the children
    if args.fuzz_worker:
        fuzz_worker(args.fuzz_worker, args.runs, args.corpus, args.artifacts)
        return 0
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        work = Path(tmp)
        if not (args.skip_matrix and args.skip_kill):
            kills = 0 if args.skip_kill else args.kill_iterations
            results.update(run_matrix_and_kills(work / "rig", args.hold_s, kills, args.seed, args.skip_matrix,
                                                args.keep_failures))
        if not args.skip_fuzz:
            try:
                import atheris  # noqa: F401

                has_atheris = not args.no_atheris
            except ImportError:
                has_atheris = False
            results["fuzz"] = (fuzz_atheris(args.fuzz_inputs, work / "fuzz") if has_atheris
                               else fuzz_mutation(args.fuzz_inputs, args.seed))
    results["wall_s"] = round(time.monotonic() - t0, 1)
    matrix_ok = all(r["invariants_ok"] and r["expectation_ok"] for r in results.get("matrix", []))
    kill_ok = not results.get("kill9", {}).get("failures") and results.get("kill9", {}).get("final_ok", True)
    fuzz_ok = results.get("fuzz", {}).get("crashes", 0) == 0
    results["passed"] = bool(matrix_ok and kill_ok and fuzz_ok)
    print(f"passed={results['passed']} (matrix {matrix_ok}, kill -9 {kill_ok}, fuzz {fuzz_ok}) "
          f"in {results['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
