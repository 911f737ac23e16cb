"""The whole engine as a service: Redis out, hot reload in, sd_notify around it, across a Redis outage.

One engine run (sim mode at 600x, Redis enabled against a private redis-server, $NOTIFY_SOCKET on a test
datagram socket, the config in a file the test edits). While it trades the test stops Redis and starts it
again (empty: no persistence), makes a hot change, a cold change and an invalid edit to the config file.
Afterwards: a subscriber saw fills and alerts on pub/sub; the fills stream holds every journaled fill
(deduplicated by execution id); the hot change was applied, the cold one reported and not applied, the
invalid file rejected with its error while trading went on; and systemd heard READY (after the feeds were
up), RELOADING with MONOTONIC_USEC then READY, STATUS lines and STOPPING, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from engine.service.app import Engine
from engine.service.config import load_config

pytestmark = pytest.mark.timeout(240)

PREFIX = "oe-svc-test"

CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0
reload_poll_s = 0.2

[redis]
enabled = true
url = "{redis}"
prefix = "{prefix}"

[sim]
speed = 600.0
start = "2026-11-23T10:05:00"
option_quote_rate = 0.2
seed = 3

[strategies.gamma_scalper]
hedge_band_shares = {band}
underlyings = {underlyings}
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}

[strategies.zero_dte]
open_policy = {{ walk_every_s = 30.0, timeout_s = 600.0 }}
close_policy = {{ walk_every_s = 20.0, walk_step_fraction = 0.5, timeout_s = 300.0 }}
"""


def write_config(path: Path, state: Path, redis_url: str, band: float = 10.0,
                 underlyings: str = '["SPY"]') -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(CONFIG.format(state=state, redis=redis_url, prefix=PREFIX, band=band, underlyings=underlyings))
    tmp.replace(path)  # atomically, as editors do


class Subscriber:
    """A pub/sub listener that reconnects after an outage, as a real consumer would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: dict[str, list[dict[str, Any]]] = {"fills": [], "alerts": []}
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            client = aioredis.from_url(self.url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(f"{PREFIX}:fills", f"{PREFIX}:alerts")
                self.subscribed.set()
                async for msg in pubsub.listen():
                    if msg["type"] == "message":
                        channel = msg["channel"].decode().rsplit(":", 1)[1]
                        self.messages[channel].append(json.loads(msg["data"]))
            except (redis.exceptions.ConnectionError, OSError):
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


def journal_execution_ids(state: Path) -> set[str]:
    with sqlite3.connect(state / "journal.sqlite3") as conn:
        return {row[0] for row in conn.execute("SELECT execution_id FROM fills")}


async def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_engine_publishes_reloads_and_notifies_across_a_redis_outage(
    tmp_path: Path, redis_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify_path = str(tmp_path / "notify.sock")
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(notify_path)
    systemd.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path)
    notifications: list[str] = []
    feeds_at_ready: set[str] = set()

    def drain_notifications(engine: Engine) -> None:
        while True:
            try:
                text = systemd.recv(4096).decode()
            except BlockingIOError:
                return
            if "READY=1" in text and not notifications:
                feeds_at_ready.update(f.feed for f in (engine.option_feed, engine.stock_feed, engine.trading_feed)
                                      if f is not None and f.connected.is_set())
            notifications.append(text)

    state = tmp_path / "state"
    config_path = tmp_path / "engine.toml"
    write_config(config_path, state, redis_process.url)
    engine = Engine(load_config(config_path), config_path, duration_s=120.0)
    subscriber = Subscriber(redis_process.url)
    sub_task = asyncio.create_task(subscriber.run())
    await asyncio.wait_for(subscriber.subscribed.wait(), 10)

    await engine.start()
    drain_notifications(engine)
    run_task = asyncio.create_task(engine.run_started())
    try:
        # Trading, with fills reaching Redis.
        await wait_for(lambda: len(journal_execution_ids(state)) >= 2, 60, "the first fills")
        await wait_for(lambda: subscriber.messages["fills"], 20, "a fill on pub/sub")

        # Redis goes away; the engine keeps trading; Redis comes back empty.
        redis_process.stop()
        fills_before_outage = len(journal_execution_ids(state))
        await wait_for(lambda: len(journal_execution_ids(state)) > fills_before_outage, 60,
                       "a fill while Redis is down")
        assert not run_task.done()
        redis_process.start()

        # Hot change (applied), cold change (reported, kept), then an invalid file (rejected).
        actor = next(a for a in engine.actors if a.strategy_id == "gamma_scalper")
        write_config(config_path, state, redis_process.url, band=25.0, underlyings='["SPY", "QQQ"]')
        await wait_for(lambda: actor.config.hedge_band_shares == 25.0, 20, "the hot change")
        assert actor.config.underlyings == ("SPY",)
        await wait_for(lambda: any(a.code == "config_restart_required" for a in engine.alerts), 10, "cold report")
        config_path.write_text(config_path.read_text().replace("hedge_band_shares = 25.0",
                                                               "hedge_band_shares = -3"))
        await wait_for(lambda: any(a.code == "config_rejected" for a in engine.alerts), 10, "the rejection")
        rejected = next(a for a in engine.alerts if a.code == "config_rejected")
        assert "hedge_band_shares" in rejected.message
        assert actor.config.hedge_band_shares == 25.0
        fills_now = len(journal_execution_ids(state))
        await wait_for(lambda: len(journal_execution_ids(state)) > fills_now, 60, "trading after the rejection")
    finally:
        engine.request_stop()
        summary = await run_task
        drain_notifications(engine)
        systemd.close()

    # Every journaled fill is on the stream, whatever the outage did (consumers dedupe by execution id).
    await asyncio.sleep(0)
    client = aioredis.from_url(redis_process.url)
    try:
        entries = await client.xrange(f"{PREFIX}:stream:fills")
    finally:
        await client.aclose()
    sub_task.cancel()
    await asyncio.gather(sub_task, return_exceptions=True)
    on_stream = {json.loads(fields[b"data"])["execution_id"] for _, fields in entries}
    assert on_stream == journal_execution_ids(state)
    assert subscriber.messages["alerts"], "no alert reached the subscriber"
    assert summary["strategies"]["gamma_scalper"]["fills"] >= 1

    # sd_notify: READY only once the feeds were up; RELOADING+MONOTONIC_USEC then READY; STOPPING last.
    assert notifications[0].startswith("READY=1")
    assert feeds_at_ready == {"options", "stocks", "trading"}
    reload_at = next(i for i, n in enumerate(notifications) if "RELOADING=1" in n)
    assert "MONOTONIC_USEC=" in notifications[reload_at]
    assert any("READY=1" in n for n in notifications[reload_at + 1:])
    # the status line reaches systemd (with READY=1, then on each housekeeping tick)
    assert any(line.startswith("STATUS=streaming") for n in notifications for line in n.splitlines())
    assert "STOPPING=1" in notifications[-1]
