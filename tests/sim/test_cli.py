"""``options-engine sim`` as users run it: first stdout line is the URLs, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_cli_prints_urls_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text('[sim]\nseed = 4\nspeed = 5.0\noption_symbol_cap = 50\n[engine]\nmode = "sim"\n')
    proc = start("-c", str(config), "--key", "K1", "--secret", "S1")
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert set(urls) >= {
            "trading_url",
            "data_url",
            "options_stream_url",
            "stocks_stream_url",
            "trading_stream_url",
            "key",
            "secret",
        }
        assert urls["key"] == "K1" and urls["trading_url"].startswith("http://127.0.0.1:")
        assert urls["options_stream_url"].startswith("ws://127.0.0.1:") and urls["trading_stream_url"].endswith(
            "/stream"
        )
        state = requests.get(
            f"{urls['trading_url']}/sim/state",
            headers={"APCA-API-KEY-ID": "K1", "APCA-API-SECRET-KEY": "S1"},
            timeout=10,
        )
        assert state.json()["seed"] == 4 and state.json()["speed"] == 5.0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_config_and_remote_bind(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text("[sim]\nsped = 2\n")
    proc = start("-c", str(config))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "sped" in err
    proc = start("--host", "0.0.0.0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "allow_remote" in err
