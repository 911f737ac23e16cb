"""Secrets set in the environment never appear in the JSON logs."""

from __future__ import annotations

import io
import json

import structlog

from engine.service.config import parse_config_text
from engine.service.logging import configure_logging
from engine.service.secrets import load_credentials, secret_values

KEY_ID = "PK" "Q7ZL2M9X4C8V1B3N6T"
SECRET = "uJ8s0Vb2Lq9ZkR4mWx7Ty1Nc5Hf3Gd6Pa0Es2Qw9"
CMD_SECRET = "operator-command-secret-9f8e7d"


def test_secret_values_from_the_environment_are_redacted_everywhere(monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("OE_CMD", CMD_SECRET)
    cfg = parse_config_text('[engine]\nmode = "paper"\n[redis]\nenabled = true\ncommand_secret_env = "OE_CMD"\n')
    out = io.StringIO()
    configure_logging("debug", secret_values(cfg), stream=out)
    try:
        log = structlog.get_logger("test")
        creds = load_credentials(cfg)
        structlog.contextvars.bind_contextvars(strategy_id="iron_condor")
        log.info("credentials_loaded", credentials=creds, source="environment")
        log.info("http_request", headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET})
        log.warning("feed_auth_failed", detail=f"server said: key {KEY_ID} with secret {SECRET} rejected")
        log.info("command_received", raw=f'{{"secret": "{CMD_SECRET}"}}', api_key="whatever-value")
        log.debug(
            "unrelated_key_shape",
            key="AK" "ZZZZZZZZZZZZZZZZZZ",
            symbols=["AK" "AM261127C00050000", "CK" "PTX261127P00012500"],
        )
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            log.exception("unexpected_error")
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    text = out.getvalue()
    for value in (KEY_ID, SECRET, CMD_SECRET, "whatever-value", "AK" "ZZZZZZZZZZZZZZZZZZ"):
        assert value not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert "AK" "AM261127C00050000" in text and "CK" "PTX261127P00012500" in text  # option symbols are not keys
    assert [line["event"] for line in lines] == [
        "credentials_loaded",
        "http_request",
        "feed_auth_failed",
        "command_received",
        "unrelated_key_shape",
        "unexpected_error",
    ]
    assert all(line["strategy_id"] == "iron_condor" for line in lines)  # contextvars merged
    assert lines[2]["detail"] == "server said: key *** with secret *** rejected"
    assert lines[0]["source"] == "environment" and lines[0]["level"] == "info" and lines[0]["timestamp"]
