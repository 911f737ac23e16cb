"""Hot reload: hot changes applied in one call, cold changes reported and kept, invalid files rejected."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from engine.kernel.alerts import Alert
from engine.service.config import EngineConfig, load_config
from engine.service.journal import Journal
from engine.service.reload import ConfigChange, ConfigReloader, diff_configs

BASE = """
[engine]
mode = "sim"
log_level = "info"
[redis]
prefix = "first"
[risk]
max_spread_pct = 0.30
max_open_structures = 20
"""


def write_atomically(path: Path, text: str) -> None:
    """What editors and config managers do: write a temp file beside it, then rename over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Recorder:
    def __init__(self) -> None:
        self.applied: list[tuple[EngineConfig, list[ConfigChange]]] = []
        self.alerts: list[Alert] = []

    def apply(self, cfg: EngineConfig, changes: list[ConfigChange]) -> None:
        self.applied.append((cfg, changes))

    def alert(self, a: Alert) -> None:
        self.alerts.append(a)

    def codes(self) -> list[str]:
        return [a.code for a in self.alerts]


async def _until(cond, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_file_change_applies_hot_field_and_reports_cold_field_without_applying_it(tmp_path: Path):
    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    rec = Recorder()
    journal = Journal.open(tmp_path / "state")
    journal.start()
    reloader = ConfigReloader(path, load_config(path), rec.apply, rec.alert, journal=journal, poll_s=0.05)
    reloader.start()
    try:
        write_atomically(path, BASE.replace("0.30", "0.20").replace('"first"', '"second"').replace('"info"', '"debug"'))
        await _until(lambda: bool(rec.applied))
        cfg, changes = rec.applied[0]
        assert cfg.risk.max_spread_pct == 0.20 and cfg.engine.log_level == "debug"
        assert sorted(c.path for c in changes) == ["engine.log_level", "risk.max_spread_pct"]
        assert cfg.redis.prefix == "first"  # cold: kept
        assert reloader.config is cfg
        assert rec.codes() == ["config_restart_required", "config_reloaded"]
        assert "redis.prefix" in rec.alerts[0].message
        assert rec.alerts[0].details["cold"][0] == {
            "path": "redis.prefix",
            "old": "first",
            "new": "second",
            "hot": False,
        }
        await journal.flush()
        ((_, applied, cold),) = journal.read_config_diffs()
        assert {c["path"] for c in applied} == {"engine.log_level", "risk.max_spread_pct"}
        assert [c["path"] for c in cold] == ["redis.prefix"]
    finally:
        await reloader.stop()
        await journal.aclose()


async def test_invalid_file_is_rejected_with_exact_errors_and_old_config_kept(tmp_path: Path):
    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    rec = Recorder()
    original = load_config(path)
    reloader = ConfigReloader(path, original, rec.apply, rec.alert, poll_s=0.05)
    reloader.start()
    try:
        write_atomically(
            path,
            BASE.replace("0.30", "-1").replace(
                "max_open_structures = 20", "max_open_structures = 20\nmax_open_structurs = 3"
            ),
        )
        await _until(lambda: bool(rec.alerts))
        assert rec.applied == []
        assert reloader.config is original
        (alert,) = rec.alerts
        assert alert.code == "config_rejected" and alert.severity == "error"
        paths = {e["path"]: e["reason"] for e in alert.details["errors"]}
        assert paths["risk.max_spread_pct"] == "Expected `float` > 0.0; value: -1"
        assert paths["risk.max_open_structurs"].startswith("unknown field")
        # a TOML syntax error is reported too, and a later good file still applies
        write_atomically(path, BASE + "\n[risk\n")
        await _until(lambda: len(rec.alerts) == 2)
        assert rec.alerts[1].code == "config_rejected" and "TOML syntax error" in rec.alerts[1].message
        write_atomically(path, BASE.replace("= 20", "= 7"))
        await _until(lambda: bool(rec.applied))
        assert rec.applied[0][0].risk.max_open_structures == 7
    finally:
        await reloader.stop()


async def test_sighup_triggers_a_reload(tmp_path: Path):
    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    rec = Recorder()
    reloader = ConfigReloader(path, load_config(path), rec.apply, rec.alert, poll_s=60)  # no polling here
    reloader.install_signal_handler()
    reloader.start()
    try:
        write_atomically(path, BASE.replace("= 20", "= 9"))
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(lambda: bool(rec.applied))
        assert rec.applied[0][0].risk.max_open_structures == 9
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await reloader.stop()


async def test_apply_failure_keeps_the_running_config(tmp_path: Path):
    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    alerts: list[Alert] = []
    original = load_config(path)

    def refuse(cfg: EngineConfig, changes: list[ConfigChange]) -> None:
        raise ValueError("strategy iron_condor refused wing_width")

    reloader = ConfigReloader(path, original, refuse, alerts.append)
    write_atomically(path, BASE.replace("= 20", "= 9"))
    assert await reloader.reload() is None
    assert reloader.config is original
    assert alerts[0].code == "config_rejected" and "refused wing_width" in alerts[0].message


def test_adding_a_strategy_table_is_one_cold_change(tmp_path: Path):
    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    old = load_config(path)
    path.write_text(BASE + "\n[strategies.iron_condor]\n")
    new = load_config(path)
    (change,) = diff_configs(old, new)
    assert change.path == "strategies.iron_condor" and change.old is None and change.hot is False


async def test_strategy_delta_band_is_hot_and_its_underlyings_cold(tmp_path: Path):
    path = tmp_path / "engine.toml"
    text = '[strategies.gamma_scalper]\nhedge_band_shares = 10.0\nunderlyings = ["SPY"]\n'
    path.write_text(text)
    rec = Recorder()
    reloader = ConfigReloader(path, load_config(path), rec.apply, rec.alert)
    write_atomically(path, text.replace("10.0", "25.0").replace('["SPY"]', '["QQQ"]'))
    outcome = await reloader.reload()
    assert outcome is not None
    assert [c.path for c in outcome.applied] == ["strategies.gamma_scalper.hedge_band_shares"]
    assert [c.path for c in outcome.cold] == ["strategies.gamma_scalper.underlyings"]
    strategy = reloader.config.strategy_configs()["gamma_scalper"]
    assert strategy.hedge_band_shares == 25.0 and tuple(strategy.underlyings) == ("SPY",)


def _running_engine_parts(cfg: EngineConfig):
    from risk.breakers import Breakers
    from risk.gate import RiskGate
    from strategies.registry import build_strategy

    actors = [build_strategy(name, scfg) for name, scfg in cfg.strategy_configs().items()]
    return actors, RiskGate(cfg.risk), Breakers(cfg.risk.breakers)


def test_a_reload_with_one_invalid_strategy_change_applies_none():
    import msgspec
    import pytest

    from engine.service.config import ConfigError, parse_config_text
    from engine.service.reload import stage_hot_changes

    old = parse_config_text("[strategies.gamma_scalper]\nqty = 2\n[strategies.zero_dte]\nshort_delta = 0.2\n")
    actors, gate, breakers = _running_engine_parts(old)
    gamma, zero = actors
    before = [a.config for a in actors]
    # One valid change (gamma qty) and one the running zero_dte cannot take (short_delta above short_delta_max;
    # built without validation, as a change that only fails against the running actor would be).
    bad_zero = msgspec.structs.replace(old.strategies.zero_dte)
    msgspec.structs.force_setattr(bad_zero, "short_delta", 0.45)
    strategies = msgspec.structs.replace(
        old.strategies, gamma_scalper=msgspec.structs.replace(old.strategies.gamma_scalper, qty=5), zero_dte=bad_zero
    )
    new = msgspec.structs.replace(old, strategies=strategies,
                                  risk=msgspec.structs.replace(old.risk, max_open_structures=3))
    with pytest.raises(ConfigError) as info:
        stage_hot_changes(new, actors, gate, breakers)
    assert [i.path for i in info.value.issues] == ["strategies.zero_dte"]
    assert "short_delta_min <= short_delta <= short_delta_max" in info.value.issues[0].reason
    assert [a.config for a in actors] == before and gamma.config.qty == 2 and zero.config.short_delta == 0.2
    assert gate.limits is old.risk  # the gate's limits were not touched either

    ok = msgspec.structs.replace(new, strategies=msgspec.structs.replace(strategies, zero_dte=old.strategies.zero_dte))
    stage_hot_changes(ok, actors, gate, breakers)()
    assert gamma.config.qty == 5 and gate.limits.max_open_structures == 3


def test_a_field_error_from_the_engine_rejects_the_reload_naming_it(tmp_path: Path):
    from engine.service.config import ConfigError, ConfigIssue

    path = tmp_path / "engine.toml"
    path.write_text(BASE)
    alerts: list[Alert] = []
    original = load_config(path)

    def refuse(cfg: EngineConfig, changes: list[ConfigChange]) -> None:
        raise ConfigError([ConfigIssue("strategies.zero_dte.short_delta", "Expected `float` < 1.0")])

    reloader = ConfigReloader(path, original, refuse, alerts.append)
    write_atomically(path, BASE.replace("= 20", "= 9"))
    assert asyncio.run(reloader.reload()) is None
    assert reloader.config is original
    assert alerts[0].code == "config_rejected"
    assert alerts[0].details["errors"] == [
        {"path": "strategies.zero_dte.short_delta", "reason": "Expected `float` < 1.0"}
    ]
