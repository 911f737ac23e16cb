"""The operator's cockpit against the real engine in sim mode, real HTTP on loopback and headless Chromium.

One engine serves the module (a start costs ~15 s): the sim runs at 200x so the session (and the values on the
page) keeps moving for about two minutes of wall time. The tests run in file order: the browser reads a moving
market first, the what-if then freezes the market (feeds stopped), the controls come last (they pause and halt).
"""

from __future__ import annotations

import asyncio
import base64
import collections.abc
import math
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from engine.service.app import Engine
from engine.service.cockpit import Cockpit
from engine.service.config import parse_config_text
from engine.service.metrics import MetricsServer
from engine.service.secrets import Secret
from risk.stress import held_pnl, stress_inputs
from tests.service.helpers import SIM_TRADING_DAY

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

TOKEN = "cockpit-test-token-3f9a"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONFIG = """
[engine]
mode = "sim"
state_dir = "{state}"
metrics_port = 0
dashboard_token_env = "COCKPIT_TEST_TOKEN"

[alpaca]
credentials_file = "{creds}"

"""
STRATEGIES = ("gamma_scalper", "iron_condor", "zero_dte")


async def _until(check: collections.abc.Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> collections.abc.AsyncIterator[Engine]:
    tmp = tmp_path_factory.mktemp("cockpit")
    creds = tmp / "credentials.env"
    creds.write_text(f"COCKPIT_TEST_TOKEN={TOKEN}\n")
    cfg = parse_config_text(CONFIG.format(state=tmp / "state", creds=creds)
                            + SIM_TRADING_DAY.replace("speed = 600.0", "speed = 200.0"))
    eng = Engine(cfg)
    await eng.start()
    run = asyncio.create_task(eng.run_started())
    try:
        yield eng
    finally:
        eng.request_stop()
        await run


def _url(engine: Engine, path: str) -> str:
    assert engine.metrics_server is not None
    return f"http://127.0.0.1:{engine.metrics_server.port}{path}"


def _open_structures(engine: Engine) -> int:
    return engine.portfolio.open_structures()


# ------------------------------------------------------------------------------------ the page in Chromium

READ_PAGE = """() => {
  const out = {seq: Number(document.getElementById("seq").dataset.seq), strategies: {}};
  for (const el of document.querySelectorAll("[data-strategy]")) {
    const g = {};
    const cells = el.querySelectorAll('tr[data-field="greeks"] td[data-field]');
    for (const td of cells) g[td.dataset.field] = td.dataset.value;
    out.strategies[el.dataset.strategy] = {pnl: el.querySelector('[data-field="pnl"]').dataset.value, greeks: g};
  }
  return out;
}"""


def _as_number(text: str) -> float | None:
    return None if text == "" else float(text)


async def _page_and_status(page: Any, session: aiohttp.ClientSession, engine: Engine) -> tuple[dict[str, Any],
                                                                                                 dict[str, Any]]:
    """The page's values and ``/status``'s copy of the same snapshot (read until both show the same ``seq``)."""
    for _ in range(40):
        before = await page.evaluate(READ_PAGE)
        async with session.get(_url(engine, "/status")) as r:
            status = (await r.json())["cockpit"]
        after = await page.evaluate(READ_PAGE)
        if before["seq"] == status["seq"] == after["seq"]:
            return before, status
        await asyncio.sleep(0.1)
    raise AssertionError("the page and /status never showed the same snapshot")


def _assert_same(shown: dict[str, Any], status: dict[str, Any]) -> None:
    for sid in STRATEGIES:
        assert _as_number(shown["strategies"][sid]["pnl"]) == status["strategies"][sid]["pnl"], sid
        for greek, value in status["strategies"][sid]["greeks"].items():
            assert _as_number(shown["strategies"][sid]["greeks"][greek]) == value, (sid, greek)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
async def test_dashboard_renders_and_follows_status_in_headless_chromium(engine: Engine, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    await _until(lambda: _open_structures(engine) >= 2, 90, "open structures")
    errors: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(_url(engine, "/"))
            await page.wait_for_selector('[data-strategy="zero_dte"] [data-field="pnl"]', timeout=15_000)
            text = await page.inner_text("#strategies")
            for sid in STRATEGIES:
                assert sid in text
            assert await page.inner_text("#state") in ("ACTIVE", "REDUCE_ONLY", "HALTED")
            assert await page.eval_on_selector("#controls", "e => e.style.display") == ""  # a token is configured

            async with aiohttp.ClientSession() as session:
                first, status_first = await _page_and_status(page, session, engine)
                shot_first = await page.screenshot(path=str(tmp_path / "first.png"), full_page=True)
                _assert_same(first, status_first)
                await asyncio.sleep(4.0)
                second, status_second = await _page_and_status(page, session, engine)
                shot_second = await page.screenshot(path=str(tmp_path / "second.png"), full_page=True)
                _assert_same(second, status_second)
        finally:
            await browser.close()
    assert second["seq"] >= first["seq"] + 3, "the page did not follow the server's pushes"
    assert first["strategies"] != second["strategies"], "P&L and Greeks did not change on the page"
    assert shot_first != shot_second
    assert not errors, errors


# ------------------------------------------------------------------------------------ what-if


async def test_whatif_equals_the_gate_stress_numbers(engine: Engine) -> None:
    await _until(lambda: _open_structures(engine) >= 1, 90, "an open structure")
    assert engine.option_feed is not None and engine.stock_feed is not None
    engine.option_feed.stop()  # the book stands still from here on: /whatif and the gate see the same one
    engine.stock_feed.stop()
    await asyncio.sleep(1.0)
    kernel = engine.kernel
    assert kernel is not None
    gate = kernel.core.gate
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.get(_url(engine, "/whatif")) as r:
                assert r.status == 200
                doc = await r.json()
            held = {u: dict(kernel.portfolio.positions_of(u)) for u in doc["underlyings"]}
            if doc["underlyings"] and all(doc["underlyings"][u]["positions"] == held[u] for u in held):
                break
            await asyncio.sleep(0.5)  # a fill arrived in between: read again
        else:
            raise AssertionError("positions kept changing")
    assert doc["underlyings"]
    n_vol = len(doc["vol_moves_pts"])
    for u, shown in doc["underlyings"].items():
        chain = kernel.market.chain(u)
        assert chain is not None and shown["chain_ts_ns"] == chain.ts_ns
        spot, to_close = stress_inputs(chain, kernel.market.spot(u))
        _, pnl, same_day = held_pnl(chain, held[u], u, spot, to_close, gate.grid)
        n = gate.grid.n_max if same_day else gate.grid.n_grid
        assert shown["gate"]["labels"] == gate.grid.labels(same_day)
        assert shown["gate"]["pnl"] == [round(float(v), 2) for v in pnl[:n]]
        assert any(abs(v) > 1.0 for v in shown["gate"]["pnl"])
        # the display grid holds the gate's parallel scenarios: spot -x..x at rows 2..6, vol -y..y at columns 1..3
        gate_vols = len(gate.grid.vol_moves)
        for i in range(5):
            for j in range(3):
                assert shown["grid"][i + 2][j + 1] == pytest.approx(pnl[i * gate_vols + j], abs=0.011), (u, i, j)
    portfolio = doc["portfolio"]["grid"]
    for i in range(len(portfolio)):
        for j in range(n_vol):
            total = sum(x["grid"][i][j] for x in doc["underlyings"].values())
            assert portfolio[i][j] == pytest.approx(total, abs=0.05)
    assert math.isfinite(doc["max_loss_usd"])


# ------------------------------------------------------------------------------------ controls


async def test_control_needs_token_csrf_and_confirmation_and_is_journaled(engine: Engine) -> None:
    assert engine.journal is not None and engine.core is not None
    token = {"X-Engine-Token": TOKEN}
    async with aiohttp.ClientSession() as s:
        async with s.post(_url(engine, "/control/halt")) as r:
            assert r.status == 403
        async with s.get(_url(engine, "/control/csrf"), headers={"X-Engine-Token": "wrong"}) as r:
            assert r.status == 403
        async with s.get(_url(engine, "/control/csrf"), headers=token) as r:
            assert r.status == 200
            csrf = (await r.json())["csrf"]
        async with s.post(_url(engine, "/control/pause"), headers=token) as r:
            assert r.status == 403, "no CSRF token"
        both = {**token, "X-CSRF-Token": csrf}
        async with s.post(_url(engine, "/control/pause"), headers={**both, "Origin": "http://evil.example"}) as r:
            assert r.status == 403, "cross-site"
        async with s.post(_url(engine, "/control/pause"), headers=both, json={}) as r:
            assert r.status == 200
            confirm = (await r.json())["confirm"]
        assert not engine.core.paused, "nothing happens before the confirmation"
        async with s.post(_url(engine, "/control/resume"), headers=both, json={"confirm": confirm}) as r:
            assert r.status == 409, "a confirmation is for its own action"
        async with s.post(_url(engine, "/control/pause"), headers=both, json={}) as r:
            confirm = (await r.json())["confirm"]
        async with s.post(_url(engine, "/control/pause"), headers=both, json={"confirm": confirm}) as r:
            assert r.status == 200 and (await r.json())["paused"] is True
        assert engine.core.paused
        async with s.post(_url(engine, "/control/pause"), headers=both, json={"confirm": confirm}) as r:
            assert r.status == 409, "a confirmation is spent once"
        basic = "Basic " + base64.b64encode(f"operator:{TOKEN}".encode()).decode()
        both_basic = {"Authorization": basic, "X-CSRF-Token": csrf}
        async with s.post(_url(engine, "/control/halt"), headers=both_basic, json={}) as r:
            confirm = (await r.json())["confirm"]
        async with s.post(_url(engine, "/control/halt"), headers=both_basic, json={"confirm": confirm}) as r:
            assert r.status == 200 and (await r.json())["trading_state"] == "HALTED"
    assert engine.core.breakers.state.name == "HALTED"
    await engine.journal.flush()
    actions = engine.journal.read_operator_actions()
    done = [a.action for a in actions if a.outcome == "done"]
    assert done == ["pause", "halt"]
    refused = [(a.action, a.outcome) for a in actions if a.outcome != "done"]
    assert ("halt", "refused: missing or wrong token") in refused
    assert ("pause", "refused: cross-site request") in refused
    assert all(a.source.startswith("dashboard ") and TOKEN not in a.source + a.detail for a in actions)
    codes = [a.code for a in engine.alerts]
    assert codes.count("operator_action") == 2 and "control_rejected" in codes
    assert not any(TOKEN in a.message for a in engine.alerts)


# ------------------------------------------------------------------------------------ off loopback


async def _serve(host: str, token: Secret | None) -> tuple[MetricsServer, Cockpit]:
    eng = Engine(parse_config_text('[engine]\nmode = "sim"\n'))
    cockpit = Cockpit(eng, token, host)
    server = MetricsServer(eng.metrics, host, 0, status=eng.status, extend=cockpit.install)
    await server.start()
    return server, cockpit


PATHS = ("/", "/events", "/snapshot", "/whatif", "/status", "/metrics", "/healthz", "/control/csrf")


async def test_off_loopback_every_request_needs_the_token() -> None:
    server, _ = await _serve("0.0.0.0", Secret(TOKEN))
    base = f"http://127.0.0.1:{server.port}"
    basic = "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()
    try:
        async with aiohttp.ClientSession() as s:
            for path in PATHS:
                async with s.get(base + path) as r:
                    assert r.status == 401, path
                    assert r.headers["WWW-Authenticate"].startswith("Basic")
                async with s.get(base + path, headers={"X-Engine-Token": "nope"}) as r:
                    assert r.status == 401, path
            for path in ("/", "/snapshot", "/status", "/metrics"):
                async with s.get(base + path, headers={"X-Engine-Token": TOKEN}) as r:
                    assert r.status == 200, path
                async with s.get(base + path, headers={"Authorization": basic}) as r:
                    assert r.status == 200, path
    finally:
        await server.stop()


async def test_off_loopback_without_a_token_serves_nothing_and_loopback_is_read_only() -> None:
    server, _ = await _serve("0.0.0.0", None)
    try:
        async with aiohttp.ClientSession() as s:
            for path in PATHS:
                async with s.get(f"http://127.0.0.1:{server.port}{path}") as r:
                    assert r.status == 403, path
    finally:
        await server.stop()
    server, _ = await _serve("127.0.0.1", None)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{server.port}/") as r:
                assert r.status == 200 and "options-engine" in await r.text()
            async with s.get(f"http://127.0.0.1:{server.port}/snapshot") as r:
                assert (await r.json())["control"]["enabled"] is False
            async with s.post(f"http://127.0.0.1:{server.port}/control/halt", headers={"X-Engine-Token": "x"}) as r:
                assert r.status == 403 and "read-only" in (await r.json())["error"]
    finally:
        await server.stop()
