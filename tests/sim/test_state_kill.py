"""kill -9 of ``options-engine sim --state-dir``: the saved state is never behind what a client has seen.

A client sends orders over REST and reads trade_updates over the trading stream while the simulator
reports fills a little later (``fill_latency_ms``, so most fills come from market steps, not from the
order request). The simulator is killed the moment a fill event arrives (what a market step made
visible) or the moment an order is answered (what a request made visible); the state it left must
hold every order the client got an answer for and every execution the client saw, at least as filled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from engine.sim.config import SimConfig
from engine.sim.server import Simulator

ROOT = Path(__file__).resolve().parents[2]
SIM_TOML = """
[sim]
speed = 20.0
start = "2026-11-23T10:00:00"
fill_latency_ms = 300
partial_fill_probability = 0.4
rate_limit_per_min = 0
"""

pytestmark = pytest.mark.timeout(120)


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``options-engine sim --state-dir`` in its own process; its first stdout line (the URLs)."""
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SIM_TOML)
    with open(tmp_path / "sim.log", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "sim", "-c", str(cfg), "--state-dir",
                                 str(tmp_path / "state")], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(90)
    assert line and line[0].strip(), (tmp_path / "sim.log").read_text()[-2000:]
    return proc, json.loads(line[0])


@pytest.mark.parametrize("kill_on", ["fill_event", "order_answer"])
async def test_saved_state_holds_every_order_and_fill_a_client_saw_before_a_kill(tmp_path: Path,
                                                                                 kill_on: str) -> None:
    proc, urls = _start(tmp_path)
    answered: set[str] = set()
    filled: dict[str, float] = {}  # order id -> filled_qty as the last event showed it
    executions: set[str] = set()
    headers = {"APCA-API-KEY-ID": urls["key"], "APCA-API-SECRET-KEY": urls["secret"]}
    try:
        async with connect(urls["trading_stream_url"]) as ws, aiohttp.ClientSession(headers=headers) as http:
            await ws.send(json.dumps({"action": "auth", "key": urls["key"], "secret": urls["secret"]}))
            await ws.recv()
            await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            await ws.recv()

            async def send_orders() -> None:
                for i in range(10_000):
                    body = {"symbol": "SPY", "qty": 7, "side": "buy" if i % 2 else "sell", "type": "market",
                            "time_in_force": "day", "client_order_id": f"k-{i}"}
                    async with http.post(urls["trading_url"] + "/v2/orders", json=body) as resp:
                        assert resp.status == 200, await resp.text()
                        answered.add((await resp.json())["id"])
                    if kill_on == "order_answer" and len(executions) >= 40:
                        os.kill(proc.pid, signal.SIGKILL)  # the moment an order has been answered
                        return
                    await asyncio.sleep(0.01)

            sender = asyncio.create_task(send_orders())
            try:
                while not sender.done():
                    try:
                        frame = await asyncio.wait_for(ws.recv(), 30)
                    except ConnectionClosed:
                        break
                    data = json.loads(frame)["data"]
                    if data["event"] in ("fill", "partial_fill"):
                        executions.add(data["execution_id"])
                        filled[data["order"]["id"]] = float(data["order"]["filled_qty"])
                        if kill_on == "fill_event" and len(executions) >= 40:
                            os.kill(proc.pid, signal.SIGKILL)  # the moment a fill has been seen
                            break
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    saved = Simulator(SimConfig(speed=0.0), state_dir=tmp_path / "state")
    try:
        assert saved.resumed
        ex = saved.exchange
        assert answered <= set(ex.orders), "orders answered over REST are missing from the saved state"
        assert executions <= {f["execution_id"] for f in ex.fills}, "fills seen on the stream were not saved"
        for order_id, qty in filled.items():
            assert ex.orders[order_id].filled_qty >= qty
        position = sum((f["qty"] if f["side"] == "buy" else -f["qty"]) for f in ex.fills)
        held = ex.account.positions.get("SPY")
        assert (held.qty if held else 0.0) == pytest.approx(position)  # the account agrees with its fills
    finally:
        assert saved.store is not None
        saved.store.close()

