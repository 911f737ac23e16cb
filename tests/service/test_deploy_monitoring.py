"""The Grafana dashboard and Prometheus rules in deploy/ against promtool and the metrics the engine exports.

promtool comes from Debian's ``prometheus`` package (``.ci/run`` installs it); without it the promtool tests skip
with a message. The name check runs the engine in sim mode, scrapes ``/metrics`` over HTTP and compares every
metric name the dashboard and the rules use with what it exported.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.service.app import Engine
from engine.service.config import parse_config_text
from tests.service.helpers import SIM_TRADING_DAY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "options-engine.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for every target (the rules may use them; the engine does not export them)."""

PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"inf", "nan"}
)
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def promtool() -> str:
    """The promtool binary, or skip the test saying how to get it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run installs it)")
    return path


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and durations left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range and subquery selectors
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)  # label lists
    s = re.sub(r"\$\w+", "", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", s):
        name, call = m.group(1), m.group(2)
        if call is None and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def unknown_names(exprs: Iterable[str], exported: set[str]) -> dict[str, set[str]]:
    """Per expression, the metric names it uses that ``exported`` does not contain."""
    out = {}
    for e in exprs:
        missing = metric_names(e) - exported - PROMETHEUS_OWN
        if missing:
            out[e] = missing
    return out


def exported_names(exposition: str) -> set[str]:
    """Series names in a Prometheus text exposition, histograms expanded to _bucket, _sum and _count."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        names.add(name)
        if kind in ("histogram", "summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and the variables' ``label_values`` queries."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dashboard["panels"]):
        for t in p.get("targets", []):
            yield t["expr"]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
            yield m.group(1) if m else q


def rule_exprs(text: str) -> list[str]:
    """The ``expr`` of each rule in a rules file written as alerts.yml is: a plain scalar or a ``|`` block.

    (PyYAML is not a dependency; the test compares the count with promtool's.)"""
    exprs = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r"(\s*)expr:\s*(.*)", line)
        if m is None:
            continue
        indent, value = len(m.group(1)), m.group(2).strip()
        if value in ("|", "|-", ">", ">-"):
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt.strip())
            value = " ".join(b for b in block if b)
        exprs.append(value)
    return exprs


def firing_expectations(text: str) -> set[str]:
    """Alert names a promtool test file expects to fire (an ``alertname`` whose ``exp_alerts`` is not empty)."""
    return set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", text))


# ------------------------------------------------------------------------------------ promtool


def test_promtool_accepts_the_alert_rules() -> None:
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", r.stdout)
    assert found and int(found.group(1)) == len(rule_exprs(RULES.read_text())) == RULES.read_text().count("- alert:")


def test_alert_unit_tests_pass_feed_silent_and_halted_fire() -> None:
    """alerts_test.yml feeds synthetic series; among its cases, feed-silent and halted must fire."""
    assert {"OptionsEngineFeedSilent", "OptionsEngineHalted"} <= firing_expectations(RULES_TEST.read_text())
    r = subprocess.run(
        [promtool(), "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=60, cwd=RULES.parent
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_accepts_the_example_prometheus_config() -> None:
    r = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_expressions_parse_as_promql(tmp_path: Path) -> None:
    """Each panel expression, Grafana variables substituted, loads as a recording rule in promtool."""
    rules = []
    for i, e in enumerate(dashboard_exprs(json.loads(DASHBOARD.read_text()))):
        for var, value in GRAFANA_VARS.items():
            e = e.replace(var, value)
        rules.append({"record": f"dashboard:expr_{i}", "expr": re.sub(r"\$\w+", ".*", e)})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # YAML reads JSON
    r = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------------------------ the name check


def test_metric_names_finds_a_misspelt_metric() -> None:
    exported = {"options_engine_fills_total", "options_engine_tick_to_order_seconds_bucket"}
    good = (
        'histogram_quantile(0.99, sum by (le) (rate(options_engine_tick_to_order_seconds_bucket{instance=~"$i"}'
        "[$__rate_interval])))"
    )
    bogus = 'sum by (strategy) (rate(options_engine_fils_total{state="rejected"}[5m])) > on (instance) bool 3'
    assert metric_names(good) == {"options_engine_tick_to_order_seconds_bucket"}
    assert unknown_names([good], exported) == {}
    assert unknown_names([good, bogus], exported) == {bogus: {"options_engine_fils_total"}}


CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0

[redis]
enabled = true
url = "{redis}"
"""


@pytest.mark.timeout(120)
async def test_dashboard_and_rules_use_only_metrics_the_engine_exports(tmp_path: Path, redis_url: str) -> None:
    """A sim engine with Redis scraped over HTTP: every name used is exported, and the cockpit gauges read true."""
    cfg = parse_config_text(CONFIG.format(state=tmp_path / "state", redis=redis_url) + SIM_TRADING_DAY)
    engine = Engine(cfg)
    await engine.start()
    try:
        assert engine.metrics_server is not None and engine.kernel is not None
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{engine.metrics_server.port}/metrics") as r,
        ):
            assert r.status == 200
            scraped = await r.text()
        direct, pnl = engine.metrics.render(), engine.portfolio.daily_pnl_usd()  # no await between: same instant
        engine.kernel.halt()
        halted = engine.metrics.render()
    finally:
        await engine.shutdown()

    exported = exported_names(scraped)
    exprs = [*dashboard_exprs(json.loads(DASHBOARD.read_text())), *rule_exprs(RULES.read_text())]
    assert len(exprs) > 30
    assert unknown_names(exprs, exported) == {}

    def value(text: str, series: str) -> float:
        m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
        assert m, f"{series} not exported"
        return float(m.group(1))

    assert value(direct, "options_engine_daily_pnl_usd") == pytest.approx(pnl)
    assert math.isfinite(pnl)
    assert value(direct, "options_engine_daily_loss_limit_usd") == cfg.risk.breakers.max_daily_loss_usd
    assert value(direct, "options_engine_trading_state") == 0
    assert value(halted, "options_engine_trading_state") == 2
    assert value(direct, "options_engine_market_open") == 1
    for feed in ("options", "stocks", "trading"):
        assert value(scraped, f'options_engine_feed_connected{{feed="{feed}"}}') == 1
    assert 0 <= value(scraped, 'options_engine_feed_message_age_seconds{feed="options"}') < 30
    limit = cfg.risk.total.max_abs_delta_shares
    assert value(direct, 'options_engine_portfolio_greek_limit{greek="delta_shares"}') == limit
    assert 'options_engine_underlying_delta_shares{underlying="SPY"}' in direct
    assert value(scraped, "options_engine_redis_connected") == 1
    assert value(scraped, 'options_engine_order_updates_total{state="rejected"}') >= 0
    strategies = set(re.findall(r'^options_engine_strategy_fills_total\{strategy="(\w+)"\}', direct, re.M))
    assert strategies == {a.strategy_id for a in engine.actors}
