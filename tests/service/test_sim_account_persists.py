"""Sim mode keeps its account: ``options-engine run`` twice in a row, and once more after a kill -9.

The engine runs as users start it (``python -m engine run -c engine.toml --duration ...``, sim mode, so
the simulator runs inside the engine's process and keeps its account under ``<state_dir>/sim``),
accelerated (600x) and tuned only so that trading starts within seconds. After each run the simulator's
saved account is opened and compared with the engine's summary: same account, same positions. The
second run must reconcile with no ``position_mismatch``, no phantom or incomplete structure and no
unexplained position, and its simulator must continue the first one's cash and positions.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.service.config import load_config
from tests.service.helpers import SIM_TRADING_DAY

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)

CONFIG = """
[engine]
mode = "sim"
state_dir = "state"
metrics_port = 0
shutdown_timeout_s = 15.0

"""

PHANTOMS = ("position_mismatch", "structure_incomplete", "unattributed_position", "fills_missing",
            "journal_order_not_at_broker")
"""Alerts that say the journal and the account disagree (what a fresh simulator account used to cause)."""


def _command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "engine", "run", "-c", str(config), "--no-table", *args]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("STATE_DIRECTORY", None)
    return env


class Run:
    """One finished ``options-engine run``: exit code, JSON log events, stderr and the summary."""

    def __init__(self, rc: int, stdout: str, stderr: str, summary_path: Path) -> None:
        self.rc = rc
        self.stderr = stderr
        self.events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        self.summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events if e.get("event") == name]
        assert found, f"no {name} event"
        return found[-1]

    def alert_codes(self) -> list[str]:
        return [e["code"] for e in self.events if e.get("event") == "alert"]


def run(workdir: Path, duration_s: float, *args: str, name: str = "run") -> Run:
    summary = workdir / f"{name}.json"
    proc = subprocess.run(_command(workdir / "engine.toml", "--duration", str(duration_s), "--summary-json",
                                   str(summary), *args),
                          cwd=workdir, env=_env(), capture_output=True, text=True, timeout=duration_s + 90)
    (workdir / f"{name}.log").write_text(proc.stdout + proc.stderr)
    return Run(proc.returncode, proc.stdout, proc.stderr, summary)


def saved_account(workdir: Path) -> dict[str, Any]:
    """The simulator's account as saved under ``state/sim`` (what the next run will continue), read from the
    database itself rather than through the simulator's own restore code."""
    conn = sqlite3.connect(workdir / "state" / "sim" / "sim.sqlite3")
    try:
        meta = {k: msgspec.msgpack.decode(v) for k, v in conn.execute("SELECT key, value FROM meta")}
        fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    finally:
        conn.close()
    account = meta["account"]
    return {"account_id": account["account_id"], "cash": account["cash"], "fills": fills,
            "positions": {s: p["qty"] for s, p in account["positions"].items()}, "now_ns": meta["world"]["now_ns"]}


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "engine.toml").write_text(CONFIG + SIM_TRADING_DAY)
    return tmp_path


def _check_continues(second: Run, before: dict[str, Any]) -> None:
    """The run reconciled cleanly against the account ``before`` described, and its simulator continued it."""
    assert second.rc == 0, second.stderr[-3000:]
    assert not [c for c in second.alert_codes() if c in PHANTOMS], second.alert_codes()
    resumed = second.event("sim_resumed")
    assert resumed["account_id"] == before["account_id"]
    assert resumed["cash"] == round(before["cash"], 2) and resumed["positions"] == len(before["positions"])
    assert resumed["fills"] == before["fills"]
    assert second.summary["account"]["id"] == before["account_id"]


def test_two_runs_in_a_row_continue_one_account_and_fresh_starts_another(tmp_path: Path) -> None:
    work = _workdir(tmp_path)
    first = run(work, 20.0, name="first")
    assert first.rc == 0, first.stderr[-3000:]
    after_first = saved_account(work)
    assert after_first["fills"] and after_first["positions"], "the first run should have traded"
    assert first.summary["positions"] == after_first["positions"]
    assert first.summary["account"]["id"] == after_first["account_id"]
    assert first.event("sim_started")["resumed"] is False

    second = run(work, 12.0, name="second")
    _check_continues(second, after_first)
    # every strategy gets back the structures it still held: it manages them, and does not open them again
    held = {name for name, st in first.summary["strategies"].items()
            if st["structures_opened"] > st["structures_closed"]}
    recovered = {e["strategy"] for e in second.events if e.get("event") == "structures_recovered"}
    assert held and recovered == held, (held, recovered)
    assert second.summary["reconcile"]["journal_fills"] == after_first["fills"]
    after_second = saved_account(work)
    assert second.summary["positions"] == after_second["positions"]
    assert after_second["now_ns"] > after_first["now_ns"]  # the clock went on from where the first run stopped

    # The simulator's account is lost (moved away by hand): the journal refuses the new one.
    (work / "state" / "sim").rename(work / "sim-moved-away")
    refused = run(work, 5.0, name="refused")
    assert refused.rc == 2
    new_account = refused.event("sim_started")["account_id"]
    assert after_first["account_id"] in refused.stderr and new_account in refused.stderr
    assert "--fresh" in refused.stderr and not refused.summary

    fresh = run(work, 6.0, "--fresh", name="fresh")
    assert fresh.rc == 0, fresh.stderr[-3000:]
    archived = Path(fresh.summary["archived_to"])
    assert archived.parent == work / "state" and archived.name.startswith("archive-")
    assert (archived / "journal.sqlite3").exists() and (archived / "sim" / "sim.sqlite3").exists()
    assert fresh.event("state_archived")["archived_to"] == str(archived)
    assert fresh.summary["account"]["id"] not in (after_first["account_id"], new_account)
    assert fresh.summary["reconcile"]["journal_fills"] == 0 and not [c for c in fresh.alert_codes() if c in PHANTOMS]
    assert (work / "sim-moved-away" / "sim.sqlite3").exists()  # nothing is ever deleted


def _inspect(urls: dict[str, str], part: str) -> Any:
    req = urllib.request.Request(f"{urls['trading_url']}/sim/inspect/{part}", headers=urls["headers"])  # type: ignore[arg-type]
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_a_run_after_a_kill_9_mid_trading_continues_the_account(tmp_path: Path) -> None:
    work = _workdir(tmp_path)
    log = open(work / "killed.log", "w")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(_command(work / "engine.toml", "--duration", "120"), cwd=work, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    open_orders: list[Any] = []
    try:
        deadline = time.monotonic() + 60
        urls: dict[str, Any] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if not urls:
                for line in (work / "killed.log").read_text().splitlines():
                    if '"sim_started"' in line:
                        event = json.loads(line)
                        cfg = load_config(work / "engine.toml")
                        urls = {"trading_url": event["trading_url"],
                                "headers": {"APCA-API-KEY-ID": cfg.sim.key, "APCA-API-SECRET-KEY": cfg.sim.secret}}
                continue
            fills = _inspect(urls, "fills")
            open_orders = [o for o in _inspect(urls, "orders") if o["status"] in ("new", "partially_filled")]
            if len(fills) >= 6 and open_orders:
                break  # mid-trading: the account holds positions and an order is working
        assert proc.poll() is None, (work / "killed.log").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert open_orders, "the engine was not trading when it was killed"
    killed = saved_account(work)
    assert killed["positions"]

    after = run(work, 12.0, name="after-kill")
    _check_continues(after, killed)
    assert after.event("reconciled")["cancelled"] == 0  # every working order was the engine's own
    final = saved_account(work)
    assert after.summary["positions"] == final["positions"]
