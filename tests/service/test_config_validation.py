"""Config types, the shipped engine.toml, check-config, and where keys may come from."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from engine.service.cli import main as cli_main
from engine.service.config import (
    AlpacaSection,
    ConfigError,
    EngineSection,
    RedisSection,
    RiskSection,
    is_hot,
    load_config,
    parse_config_text,
)
from engine.service.config_cli import config_reference, update_reference
from engine.service.secrets import SecretError, command_secret, load_credentials, require_live_confirmation

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "engine.toml"


def _struct_fields(cls) -> set[str]:
    out = set()
    for f in msgspec.structs.fields(cls):
        out.add(f.name)
    return out


def test_shipped_engine_toml_is_valid_sim_mode_with_all_three_strategies():
    cfg = load_config(SHIPPED)
    assert cfg.engine.mode == "sim"
    assert set(cfg.strategy_configs()) == {"gamma_scalper", "iron_condor", "zero_dte"}


def test_every_field_is_documented_in_the_shipped_file():
    text = SHIPPED.read_text()
    for cls in (EngineSection, AlpacaSection, RedisSection):  # hand-written docs, real values
        for name in _struct_fields(cls):
            assert re.search(rf"^#.*\b{name}\b", text, re.M) and re.search(rf"^{name} = ", text, re.M), (
                f"{cls.__name__}.{name} is not documented and set in engine.toml"
            )
    # sections owned elsewhere: every field (nested tables too) listed, as `check-config --reference` prints it
    for section in ("sim", "risk", "strategies"):
        for line in config_reference(section).splitlines():
            if " = " in line and not line.startswith("#     "):
                name = line[2:].split(" = ")[0]
                assert re.search(rf"^# {name} = ", text, re.M), (
                    f"{section}: {name} is missing from engine.toml; refresh the generated blocks with "
                    "`options-engine check-config --update-reference engine.toml`"
                )


def test_reference_lists_fields_with_defaults_and_hot_or_cold():
    ref = config_reference("engine")
    assert '# mode = "sim"   (COLD)' in ref and '# log_level = "info"   (HOT)' in ref


def test_every_error_is_collected_with_its_path():
    text = """
[engine]
mode = "margin"
metrics_port = 70000
colour = "blue"
[redis]
stream_maxlen = 5
[risk]
max_spread_pct = -1
"""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text)
    got = {i.path: i.reason for i in info.value.issues}
    assert set(got) == {
        "engine.mode",
        "engine.metrics_port",
        "engine.colour",
        "redis.stream_maxlen",
        "risk.max_spread_pct",
    }
    assert got["engine.mode"] == "'margin' is not one of 'sim', 'paper', 'live'"
    assert got["engine.metrics_port"] == "Expected `int` <= 65535; value: 70000"
    assert got["engine.colour"].startswith("unknown field")


def test_a_bad_sim_field_is_reported_with_its_path():
    with pytest.raises(ConfigError) as info:
        parse_config_text("[sim]\nspeed = -1\ntick_ms = 0\nwarp = true\n")
    got = {i.path: i.reason for i in info.value.issues}
    assert set(got) == {"sim.speed", "sim.tick_ms", "sim.warp"}
    assert got["sim.speed"] == "Expected `float` >= 0.0; value: -1"
    assert got["sim.warp"].startswith("unknown field (known: ")
    cfg = parse_config_text("[sim]\nrisk_free_rate = 0.05\n")
    assert cfg.sim.risk_free_rate == 0.05  # typed: the simulator's own SimConfig


def test_an_unknown_strategy_kind_names_the_known_kinds():
    with pytest.raises(ConfigError) as info:
        parse_config_text("[strategies.iron_condr]\nqty = 1\n")
    assert [str(i) for i in info.value.issues] == [
        "strategies.iron_condr: unknown strategy kind (known: gamma_scalper, iron_condor, zero_dte)"
    ]


def test_cross_field_rules_are_checked():
    with pytest.raises(ConfigError) as info:
        parse_config_text('[engine]\nmode = "live"\n[redis]\ncommand_secret_env = "CMD_SECRET"\n')
    paths = {i.path for i in info.value.issues}
    assert paths == {"alpaca.options_feed", "redis.command_secret_env"}


def test_check_config_exits_2_and_lists_every_error(tmp_path: Path, capsys):
    bad = tmp_path / "engine.toml"
    bad.write_text('[engine]\nmode = "paper"\nlog_level = "loud"\n[redis]\nprefix = ""\n[alpaca]\nstock_feed = 1\n')
    assert cli_main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "3 error(s)" in err
    for path in ("engine.log_level:", "redis.prefix:", "alpaca.stock_feed:"):
        assert path in err


def test_check_config_prints_the_effective_config(capsys):
    assert cli_main(["check-config", "-c", str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    data = msgspec.json.decode(out[out.index("{") :])
    assert data["engine"]["metrics_port"] == 9464 and data["redis"]["prefix"] == "options-engine"


def test_live_mode_is_refused_without_explicit_confirmation(tmp_path: Path, monkeypatch, capsys):
    cfg_path = tmp_path / "engine.toml"
    cfg_path.write_text('[engine]\nmode = "live"\n[alpaca]\noptions_feed = "opra"\n')
    monkeypatch.setenv("APCA_API_KEY_ID", "PK" "TESTKEY00000000000")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "live-secret-value-123456")
    monkeypatch.delenv("OPTIONS_ENGINE_LIVE", raising=False)
    cfg = load_config(cfg_path)
    with pytest.raises(SecretError, match=r"refusing to trade live.*OPTIONS_ENGINE_LIVE=1"):
        require_live_confirmation(cfg)
    assert cli_main(["check-config", "-c", str(cfg_path)]) == 2
    assert "refusing to trade live" in capsys.readouterr().err
    monkeypatch.setenv("OPTIONS_ENGINE_LIVE", "1")
    require_live_confirmation(cfg)
    assert cli_main(["check-config", "-c", str(cfg_path)]) == 0


def test_paper_mode_needs_keys_and_names_the_missing_variables(tmp_path: Path):
    cfg = parse_config_text('[engine]\nmode = "paper"\n[alpaca]\nkey_id_env = "MY_KEY"\nsecret_key_env = "MY_SECRET"\n')
    with pytest.raises(SecretError, match="MY_KEY, MY_SECRET not set"):
        load_credentials(cfg, {})
    creds = load_credentials(cfg, {"MY_KEY": "PK" "ABCDEFGHIJKLMNOPQR", "MY_SECRET": "sec-ret-value-42"})
    assert creds is not None and creds.key_id.reveal() == "PK" "ABCDEFGHIJKLMNOPQR"
    assert "PK" "ABCDEFGHIJKLMNOPQR" not in repr(creds) and "sec-ret-value-42" not in repr(creds)
    assert load_credentials(parse_config_text(""), {}) is None  # sim needs no keys


def test_keys_come_from_the_systemd_credentials_directory(tmp_path: Path):
    creds_dir = tmp_path / "creds"
    creds_dir.mkdir()
    (creds_dir / "alpaca").write_text(
        "# comment\nAPCA_API_KEY_ID=PK" "FROMFILE0000000000\n"
        "APCA_API_SECRET_KEY='file-secret-value'\nCMD=cmd-secret-value\n"
    )
    cfg = parse_config_text(
        '[engine]\nmode = "paper"\n[alpaca]\ncredentials_file = "alpaca"\n'
        '[redis]\nenabled = true\ncommand_secret_env = "CMD"\n'
    )
    env = {"CREDENTIALS_DIRECTORY": str(creds_dir)}
    creds = load_credentials(cfg, env)
    assert creds is not None
    assert (creds.key_id.reveal(), creds.secret_key.reveal()) == ("PK" "FROMFILE0000000000", "file-secret-value")
    assert creds.source == "credentials file alpaca"
    # the environment wins over the file
    env_creds = load_credentials(
        cfg, {**env, "APCA_API_KEY_ID": "PK" "FROMENV00000000000", "APCA_API_SECRET_KEY": "env-secret-value"}
    )
    assert env_creds is not None and env_creds.key_id.reveal() == "PK" "FROMENV00000000000"
    secret = command_secret(cfg, env)
    assert secret is not None and secret.reveal() == "cmd-secret-value" and "cmd-secret" not in repr(secret)


def test_fields_are_classified_hot_or_cold():
    assert is_hot(("engine", "log_level")) and is_hot(("engine", "unknown_order_policy"))
    assert not is_hot(("engine", "mode")) and not is_hot(("engine", "state_dir"))
    assert not is_hot(("alpaca", "options_feed")) and not is_hot(("redis", "prefix"))
    assert not is_hot(("sim", "seed"))
    assert is_hot(("risk", "max_spread_pct")) and is_hot(("risk", "per_underlying", "max_abs_delta_shares"))
    if isinstance(RiskSection, type) and "max_legs" in _struct_fields(RiskSection):
        assert not is_hot(("risk", "max_legs"))
    assert not is_hot(("strategies", "iron_condor"))  # adding/removing a strategy needs a restart


def test_update_reference_rewrites_only_the_generated_blocks():
    text = (
        "# my own comment\n[risk]\n# --- begin generated: risk ---\n# stale line\n# --- end generated ---\n"
        "max_open_structures = 3\n"
    )
    updated = update_reference(text)
    assert updated.startswith("# my own comment\n[risk]\n# --- begin generated: risk ---\n")
    assert "# stale line" not in updated and "# max_open_structures = 20   (HOT)" in updated
    assert updated.endswith("# --- end generated ---\nmax_open_structures = 3\n")
    assert parse_config_text(updated).risk.max_open_structures == 3
    assert update_reference(updated) == updated
