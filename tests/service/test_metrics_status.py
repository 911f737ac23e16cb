"""The metrics server over real HTTP: Prometheus text, /healthz, /status and `options-engine status`."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp

from engine.service.cli import main as cli_main
from engine.service.metrics import LoopLagMonitor, Metrics, MetricsServer


async def test_metrics_are_scraped_as_prometheus_text():
    m = Metrics()
    m.feed_messages.inc("options", 3)
    m.feed_reconnects.inc("stocks")
    m.gate_denials.inc("delta_limit")
    m.gate_denials.inc("delta_limit")
    m.orders.inc("filled")
    for v in (0.0002, 0.003, 0.003, 2.0):
        m.reprice_seconds.observe(v)
    m.tick_to_order_seconds.observe(0.004)
    m.quote_age_seconds.observe(0.7)
    depth = {"value": 42}
    m.gauge("options_engine_redis_queue_depth", "Messages waiting for Redis.", lambda: depth["value"])
    m.labelled_gauge(
        "options_engine_orders_open",
        "Working orders by state.",
        "state",
        lambda: {"new": 2, "partially_filled": 1},
    )
    lag = LoopLagMonitor(m, interval_s=0.01)
    lag.start()
    server = MetricsServer(m, "127.0.0.1", 0)
    port = await server.start()
    try:
        await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
    finally:
        await lag.stop()
        await server.stop()
    assert 'options_engine_feed_messages_total{feed="options"} 3' in text
    assert 'options_engine_gate_denials_total{reason="delta_limit"} 2' in text
    assert 'options_engine_order_updates_total{state="filled"} 1' in text
    assert "options_engine_redis_queue_depth 42" in text
    assert 'options_engine_orders_open{state="partially_filled"} 1' in text
    # histogram buckets are cumulative and end with +Inf == count
    assert 'options_engine_reprice_seconds_bucket{le="0.00025"} 1' in text
    assert 'options_engine_reprice_seconds_bucket{le="0.005"} 3' in text
    assert 'options_engine_reprice_seconds_bucket{le="+Inf"} 4' in text
    assert "options_engine_reprice_seconds_count 4" in text
    assert "# TYPE options_engine_tick_to_order_seconds histogram" in text
    lag_count = int(re.search(r"options_engine_event_loop_lag_hist_seconds_count (\d+)", text).group(1))
    assert lag_count >= 1


async def test_healthz_follows_the_health_predicate():
    state = {"ok": True}
    server = MetricsServer(
        Metrics(), "127.0.0.1", 0, health=lambda: (state["ok"], "feeds stale" if not state["ok"] else "ok")
    )
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
            state["ok"] = False
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 503 and "feeds stale" in await r.text()
    finally:
        await server.stop()


async def test_status_command_queries_the_running_engine(capsys):
    status = {"mode": "sim", "state": "running", "contracts": 812, "strategies": 3, "open_structures": 2}
    server = MetricsServer(Metrics(), "127.0.0.1", 0, status=lambda: status)
    port = await server.start()
    capsys.readouterr()  # drop the server's start-up log line
    try:
        rc = await asyncio.to_thread(cli_main, ["status", "--url", f"http://127.0.0.1:{port}/status", "--json"])
    finally:
        await server.stop()
    assert rc == 0
    body = json.loads(capsys.readouterr().out)
    assert body["contracts"] == 812 and body["state"] == "running" and body["uptime_s"] >= 0


def test_status_command_fails_clearly_when_no_engine_runs(capsys):
    rc = cli_main(["status", "--url", "http://127.0.0.1:1/status", "--timeout", "1"])
    assert rc == 1
    assert "no engine answered at http://127.0.0.1:1/status" in capsys.readouterr().err
